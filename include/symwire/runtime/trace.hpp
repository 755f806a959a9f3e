// File: symwire/runtime/trace.hpp
// Layer 3b (runtime). W3C Trace Context helpers over TraceParent (the
// binary form the TRACEPARENT extension carries, SPEC.md §5): parse,
// format and validate the `traceparent` header text, and derive a child
// span or a new root. No OpenTelemetry dependency: an OTel SDK takes the
// text form (its TextMapPropagator) or the ids.
#ifndef SYMWIRE_RUNTIME_TRACE_HPP_
#define SYMWIRE_RUNTIME_TRACE_HPP_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "symwire/error.hpp"
#include "symwire/session/config.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

// kTraceFlagSampled: the W3C `sampled` bit of trace_flags.
inline constexpr uint8_t kTraceFlagSampled = 0x01;

namespace detail {
inline int HexValueLower(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // W3C: lowercase hex only
}
// Parses 2 * out.size() lowercase hex digits at text[offset].
inline absl::Status ParseHexField(std::string_view text, size_t offset,
                                  absl::Span<std::byte> out,
                                  std::string_view field) {
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexValueLower(text[offset + 2 * i]);
    const int lo = HexValueLower(text[offset + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      const size_t at = offset + 2 * i + (hi < 0 ? 0 : 1);
      return MakeError(absl::StatusCode::kInvalidArgument,
                       ErrorCode::kMalformedExtension,
                       absl::StrCat("traceparent: ", std::string(field),
                                    " has a character that is not lowercase "
                                    "hex at offset ",
                                    at));
    }
    out[i] = static_cast<std::byte>(hi * 16 + lo);
  }
  return absl::OkStatus();
}
inline void AppendHex(std::string& out, absl::Span<const std::byte> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::byte b : bytes) {
    const auto v = std::to_integer<unsigned>(b);
    out += kDigits[v >> 4];
    out += kDigits[v & 15];
  }
}
template <size_t N>
bool AllZero(const std::array<std::byte, N>& a) {
  return std::all_of(a.begin(), a.end(),
                     [](std::byte b) { return b == std::byte{0}; });
}
}  // namespace detail

// ValidateTraceParent
// The W3C rules on the binary form: version 0xff is invalid, trace_id and
// parent_id must not be all zero. Errors: kInvalidArgument
// (MALFORMED_EXTENSION) naming the field.
inline absl::Status ValidateTraceParent(const TraceParent& tp) {
  if (tp.version == 0xff) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kMalformedExtension,
                     "traceparent: version ff is invalid");
  }
  if (detail::AllZero(tp.trace_id)) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kMalformedExtension,
                     "traceparent: trace-id is all zero");
  }
  if (detail::AllZero(tp.parent_id)) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kMalformedExtension,
                     "traceparent: parent-id is all zero");
  }
  return absl::OkStatus();
}

// ParseTraceparent
// Parses a `traceparent` header value (W3C Trace Context, level 1):
// "vv-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>", lowercase hex
// only. Version 00 must be exactly 55 characters; a higher version may
// carry more after a '-' at offset 55 (ignored, as the spec requires of a
// version-00 parser). Errors: kInvalidArgument (MALFORMED_EXTENSION) with
// the offset: wrong length, a missing '-', a non-lowercase-hex character,
// version ff, an all-zero trace-id or parent-id.
inline absl::StatusOr<TraceParent> ParseTraceparent(std::string_view text) {
  constexpr size_t kLength = 55;
  const auto bad = [](const std::string& why) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kMalformedExtension,
                     absl::StrCat("traceparent: ", why));
  };
  if (text.size() < kLength) {
    return bad(absl::StrCat("length ", text.size(), " is below 55"));
  }
  TraceParent tp;
  std::array<std::byte, 1> one{};
  if (absl::Status st =
          detail::ParseHexField(text, 0, absl::MakeSpan(one), "version");
      !st.ok()) {
    return st;
  }
  tp.version = std::to_integer<uint8_t>(one[0]);
  if (tp.version == 0 && text.size() != kLength) {
    return bad(absl::StrCat("version 00 has length ", text.size(), ", not 55"));
  }
  if (text.size() > kLength && text[kLength] != '-') {
    return bad("expected '-' at offset 55");
  }
  for (size_t dash : {size_t{2}, size_t{35}, size_t{52}}) {
    if (text[dash] != '-') {
      return bad(absl::StrCat("expected '-' at offset ", dash));
    }
  }
  if (absl::Status st = detail::ParseHexField(
          text, 3, absl::MakeSpan(tp.trace_id), "trace-id");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = detail::ParseHexField(
          text, 36, absl::MakeSpan(tp.parent_id), "parent-id");
      !st.ok()) {
    return st;
  }
  if (absl::Status st =
          detail::ParseHexField(text, 53, absl::MakeSpan(one), "trace-flags");
      !st.ok()) {
    return st;
  }
  tp.trace_flags = std::to_integer<uint8_t>(one[0]);
  if (absl::Status st = ValidateTraceParent(tp); !st.ok()) return st;
  return tp;
}

// FormatTraceparent: the header text of `tp` (55 characters, lowercase).
inline std::string FormatTraceparent(const TraceParent& tp) {
  std::string out;
  out.reserve(55);
  const std::array<std::byte, 1> version{std::byte{tp.version}};
  const std::array<std::byte, 1> flags{std::byte{tp.trace_flags}};
  detail::AppendHex(out, version);
  out += '-';
  detail::AppendHex(out, tp.trace_id);
  out += '-';
  detail::AppendHex(out, tp.parent_id);
  out += '-';
  detail::AppendHex(out, flags);
  return out;
}

// ChildTraceParent
// A new span in `parent`'s trace: the same trace-id and flags, a fresh
// random non-zero parent-id (the child's span id) from `random`, version
// 00. Send it with a task so the agent's spans are children of this one.
inline TraceParent ChildTraceParent(const TraceParent& parent,
                                    const RandomSource& random) {
  TraceParent child = parent;
  child.version = 0;
  do {
    random(absl::MakeSpan(child.parent_id));
  } while (detail::AllZero(child.parent_id));
  return child;
}

// NewTraceParent: the root span of a new trace (random non-zero ids),
// sampled or not.
inline TraceParent NewTraceParent(const RandomSource& random,
                                  bool sampled = true) {
  TraceParent tp;
  do {
    random(absl::MakeSpan(tp.trace_id));
  } while (detail::AllZero(tp.trace_id));
  tp.trace_flags = sampled ? kTraceFlagSampled : 0;
  return ChildTraceParent(tp, random);
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_TRACE_HPP_
