// File: symwire/runtime/prometheus.hpp
// Layer 3b (runtime). PrometheusText: renders counters, gauges and
// histograms in the Prometheus text exposition format 0.0.4 (what a
// /metrics endpoint serves with Content-Type
// "text/plain; version=0.0.4; charset=utf-8"). No dependency on a
// Prometheus library; pure string building.
#ifndef SYMWIRE_RUNTIME_PROMETHEUS_HPP_
#define SYMWIRE_RUNTIME_PROMETHEUS_HPP_

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symwire/config.hpp"
#include "symwire/runtime/histogram.hpp"

namespace symwire {

// PrometheusText
// Collects metric families, then Render()s them. Each family (one name)
// gets one "# HELP" and one "# TYPE" line, followed by all its samples,
// in the order families were first added; samples keep their order.
// Label values are escaped (backslash, double quote, newline), HELP text
// too (backslash, newline). Histograms are in seconds, from
// HistogramSnapshot's nanoseconds: cumulative `_bucket{le="..."}` lines at
// powers of two from 2^10 ns (~1 us) to 2^40 ns (~18 min), exact because
// every power of two is a bucket bound (HistogramBuckets), then
// `le="+Inf"`, `_sum` and `_count`.
// REQUIRES: names match [a-zA-Z_:][a-zA-Z0-9_:]* and label names
// [a-zA-Z_][a-zA-Z0-9_]* (checked with SYMWIRE_REQUIRE: they are the
// program's, never a peer's); one family keeps one type. Thread-compatible.
class PrometheusText {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  static constexpr std::string_view kContentType =
      "text/plain; version=0.0.4; charset=utf-8";
  static constexpr int kFirstBoundLog2 = 10;
  static constexpr int kLastBoundLog2 = 40;

  void Counter(std::string_view name, std::string_view help,
               const Labels& labels, uint64_t value) {
    Family& f = FamilyFor(name, help, "counter");
    absl::StrAppend(&f.samples, f.name, LabelText(labels), " ", value, "\n");
  }
  void Gauge(std::string_view name, std::string_view help, const Labels& labels,
             double value) {
    Family& f = FamilyFor(name, help, "gauge");
    absl::StrAppend(&f.samples, f.name, LabelText(labels), " ", Number(value),
                    "\n");
  }
  // Histogram: `snapshot` holds nanoseconds; rendered in seconds.
  void Histogram(std::string_view name, std::string_view help,
                 const Labels& labels, const HistogramSnapshot& snapshot) {
    Family& f = FamilyFor(name, help, "histogram");
    uint64_t cumulative = 0;
    size_t next = 0;  // buckets summed so far
    for (int k = kFirstBoundLog2; k <= kLastBoundLog2; ++k) {
      const uint64_t bound = uint64_t{1} << k;
      while (next < snapshot.counts.size() &&
             HistogramBuckets::UpperBound(next) <= bound) {
        cumulative += snapshot.counts[next++];
      }
      Labels with_le = labels;
      with_le.emplace_back("le", Seconds(bound));
      absl::StrAppend(&f.samples, f.name, "_bucket", LabelText(with_le), " ",
                      cumulative, "\n");
    }
    Labels inf = labels;
    inf.emplace_back("le", "+Inf");
    absl::StrAppend(&f.samples, f.name, "_bucket", LabelText(inf), " ",
                    snapshot.count, "\n");
    absl::StrAppend(&f.samples, f.name, "_sum", LabelText(labels), " ",
                    Seconds(snapshot.sum), "\n");
    absl::StrAppend(&f.samples, f.name, "_count", LabelText(labels), " ",
                    snapshot.count, "\n");
  }

  std::string Render() const {
    std::string out;
    for (const Family& f : families_) {
      absl::StrAppend(&out, "# HELP ", f.name, " ", EscapeHelp(f.help), "\n",
                      "# TYPE ", f.name, " ", f.type, "\n", f.samples);
    }
    return out;
  }

  // The escapes of the format (exposed for tests).
  static std::string EscapeLabelValue(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '"') {
        out += "\\\"";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    return out;
  }
  static std::string EscapeHelp(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    return out;
  }
  // Seconds: `ns` nanoseconds as an exact decimal number of seconds.
  static std::string Seconds(uint64_t ns) {
    std::string frac = absl::StrFormat("%09d", ns % 1000000000);
    while (frac.size() > 1 && frac.back() == '0') frac.pop_back();
    return absl::StrCat(ns / 1000000000, ".", frac);
  }

 private:
  struct Family {
    std::string name;
    std::string help;
    std::string type;
    std::string samples;
  };
  static bool ValidName(std::string_view n, bool colon) {
    if (n.empty()) return false;
    for (size_t i = 0; i < n.size(); ++i) {
      const char c = n[i];
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         c == '_' || (colon && c == ':');
      if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
  }
  Family& FamilyFor(std::string_view name, std::string_view help,
                    std::string_view type) {
    SYMWIRE_REQUIRE(ValidName(name, true) && "bad Prometheus metric name");
    for (Family& f : families_) {
      if (f.name == name) {
        SYMWIRE_REQUIRE(f.type == type && "one metric family, one type");
        return f;
      }
    }
    families_.push_back(
        Family{std::string(name), std::string(help), std::string(type), {}});
    return families_.back();
  }
  static std::string LabelText(const Labels& labels) {
    if (labels.empty()) return {};
    std::string out = "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      SYMWIRE_REQUIRE(ValidName(labels[i].first, false) &&
                      "bad Prometheus label name");
      absl::StrAppend(&out, i == 0 ? "" : ",", labels[i].first, "=\"",
                      EscapeLabelValue(labels[i].second), "\"");
    }
    out += "}";
    return out;
  }
  static std::string Number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return absl::StrFormat("%.17g", v);
  }

  std::vector<Family> families_;
};

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_PROMETHEUS_HPP_
