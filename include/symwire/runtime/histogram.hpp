// File: symwire/runtime/histogram.hpp
// Layer 3b (runtime). LatencyHistogram (log-bucketed, fixed memory,
// lock-free recording, mergeable) and HistogramSnapshot (its plain value:
// merge, percentiles). Pure computation: no I/O, no clock.
#ifndef SYMWIRE_RUNTIME_HISTOGRAM_HPP_
#define SYMWIRE_RUNTIME_HISTOGRAM_HPP_

#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace symwire {

// HistogramBuckets
// The bucket math of LatencyHistogram, HDR-style: values (nanoseconds, or
// any unsigned unit) below 2^kSubBits have a bucket each; above, each
// power-of-two range [2^e, 2^(e+1)) is split into 2^kSubBits equal
// buckets, so a bucket's width is at most 1/16 (6.25 %) of its values.
// The mapping is shifted by one (bucket of v is that of v - 1), so that
// every power of two 2^k (k >= kSubBits) is the INCLUSIVE upper bound of a
// bucket: "values <= 2^k" is an exact sum of whole buckets, as
// Prometheus's `le` needs (PrometheusText::Histogram). 0 and 1 share
// bucket 0. 976 buckets cover all of uint64_t.
struct HistogramBuckets {
  static constexpr uint32_t kSubBits = 4;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr size_t kCount = (64 - kSubBits + 1) * kSub;

  // Index: the bucket of `value`. Does not allocate.
  static constexpr size_t Index(uint64_t value) {
    const uint64_t u = value == 0 ? 0 : value - 1;
    if (u < kSub) return static_cast<size_t>(u);
    const uint32_t e = 63 - static_cast<uint32_t>(std::countl_zero(u));
    const uint64_t mantissa = (u >> (e - kSubBits)) - kSub;  // 0 .. kSub-1
    return static_cast<size_t>((e - kSubBits + 1) * kSub + mantissa);
  }
  // Lower(i): the smallest u = value - 1 of bucket `i`.
  static constexpr uint64_t LowerU(size_t i) {
    if (i < kSub) return i;
    const uint64_t e = i / kSub + kSubBits - 1;
    const uint64_t mantissa = i % kSub;
    return (kSub + mantissa) << (e - kSubBits);
  }
  // UpperBound(i): the largest value in bucket `i` (inclusive).
  static constexpr uint64_t UpperBound(size_t i) {
    return i + 1 >= kCount ? UINT64_MAX : LowerU(i + 1);
  }
  // LowerBound(i): the smallest value in bucket `i` (0 for bucket 0).
  static constexpr uint64_t LowerBound(size_t i) {
    return i == 0 ? 0 : LowerU(i) + 1;
  }
};

// HistogramSnapshot
// A histogram as a plain value: counts per bucket (HistogramBuckets), the
// number of values and their sum (saturating at UINT64_MAX). Merge adds
// another in (snapshots of several threads' or shards' histograms merge to
// the histogram of all their values). Thread-compatible.
struct HistogramSnapshot {
  std::array<uint64_t, HistogramBuckets::kCount> counts{};
  uint64_t count = 0;
  uint64_t sum = 0;

  void Record(uint64_t value) {
    ++counts[HistogramBuckets::Index(value)];
    ++count;
    sum = sum > UINT64_MAX - value ? UINT64_MAX : sum + value;
  }
  void Merge(const HistogramSnapshot& other) {
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
    count += other.count;
    sum = sum > UINT64_MAX - other.sum ? UINT64_MAX : sum + other.sum;
  }
  // CountAtMost: how many values are <= bucket `i`'s upper bound.
  uint64_t CountThrough(size_t i) const {
    uint64_t n = 0;
    for (size_t j = 0; j <= i && j < counts.size(); ++j) n += counts[j];
    return n;
  }
  // Percentile
  // The value at quantile `q` (0..1; clamped): the upper bound of the
  // bucket holding the ceil(q * count)-th smallest value (at least the 1st),
  // so the true value is at most 6.25 % lower. 0 when empty.
  uint64_t Percentile(double q) const {
    if (count == 0) return 0;
    if (!(q > 0)) q = 0;  // also NaN
    if (q > 1) q = 1;
    auto rank =
        static_cast<uint64_t>(std::ceil(q * static_cast<double>(count)));
    if (rank == 0) rank = 1;
    if (rank > count) rank = count;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      seen += counts[i];
      if (seen >= rank) return HistogramBuckets::UpperBound(i);
    }
    return UINT64_MAX;  // unreachable: the counts sum to `count`
  }
};

// LatencyHistogram
// HistogramSnapshot with atomic cells: Record from any number of threads
// at once (relaxed atomics: three fetch_adds, no lock, no allocation);
// Snapshot from any thread (each cell read once; a snapshot taken during
// recording may be off by the values in flight). About 7.8 KiB.
class LatencyHistogram {
 public:
  void Record(uint64_t value) {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    counts_[HistogramBuckets::Index(value)].fetch_add(1, kRelaxed);
    count_.fetch_add(1, kRelaxed);
    sum_.fetch_add(value, kRelaxed);  // wraps after ~584 years of ns
  }
  HistogramSnapshot Snapshot() const {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    HistogramSnapshot s;
    for (size_t i = 0; i < counts_.size(); ++i) {
      s.counts[i] = counts_[i].load(kRelaxed);
    }
    s.count = count_.load(kRelaxed);
    s.sum = sum_.load(kRelaxed);
    return s;
  }
  // MergeInto: adds this histogram's values to `out`.
  void MergeInto(HistogramSnapshot& out) const { out.Merge(Snapshot()); }

 private:
  std::array<std::atomic<uint64_t>, HistogramBuckets::kCount> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_HISTOGRAM_HPP_
