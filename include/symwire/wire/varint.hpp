// File: symwire/wire/varint.hpp
// Layer 1 (frame codec). Canonical QUIC-style varints (SPEC.md §2): the top
// two bits of the first byte give the length (1, 2, 4 or 8 bytes), the rest
// is the value, big-endian. Only the shortest encoding of a value is valid.
// Everything here is header-only, does not allocate (except to build an error
// Status) and is thread-compatible.
#ifndef SYMWIRE_WIRE_VARINT_HPP_
#define SYMWIRE_WIRE_VARINT_HPP_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/detail/layout.hpp"

namespace symwire {

// The largest value a varint can hold: 2^62 - 1.
inline constexpr uint64_t kVarintMax = (uint64_t{1} << 62) - 1;
inline constexpr size_t kMaxVarintSize = 8;

// VarintSize
// The encoded size (1, 2, 4 or 8) of `value`. REQUIRES: value <= kVarintMax.
constexpr size_t VarintSize(uint64_t value) noexcept {
  if (value < (uint64_t{1} << 6)) return 1;
  if (value < (uint64_t{1} << 14)) return 2;
  if (value < (uint64_t{1} << 30)) return 4;
  return 8;
}

// VarintSizeFromFirstByte
// The total encoded size announced by the first byte of a varint.
constexpr size_t VarintSizeFromFirstByte(std::byte first) noexcept {
  return size_t{1} << (static_cast<unsigned>(first) >> 6);
}

// EncodeVarintUnchecked
// Writes the canonical encoding of `value` at `out` and returns its size.
// REQUIRES: value <= kVarintMax; `out` has room for VarintSize(value) bytes.
// Does not allocate.
inline size_t EncodeVarintUnchecked(uint64_t value, std::byte* out) noexcept {
  SYMWIRE_ASSERT(value <= kVarintMax);
  // One big-endian store per size, the length tag (log2 of the size) in
  // the top two bits; a byte loop over the size cost ~7 instructions a byte.
  if (value < (uint64_t{1} << 6)) {
    out[0] = static_cast<std::byte>(value);
    return 1;
  }
  if (value < (uint64_t{1} << 14)) {
    detail::StoreBig16(out, static_cast<uint16_t>(value | 0x4000u));
    return 2;
  }
  if (value < (uint64_t{1} << 30)) {
    detail::StoreBig32(out, static_cast<uint32_t>(value | 0x80000000u));
    return 4;
  }
  detail::StoreBig64(out, value | (uint64_t{3} << 62));
  return 8;
}

// EncodeVarint
// Writes the canonical encoding of `value` into `out`; returns bytes written.
// Errors:
//   VARINT_OUT_OF_RANGE (kInvalidArgument)  value > kVarintMax
//   BUFFER_TOO_SMALL (kResourceExhausted)   out.size() < VarintSize(value)
inline absl::StatusOr<size_t> EncodeVarint(uint64_t value,
                                           absl::Span<std::byte> out) {
  if (value > kVarintMax) {
    return MakeError(ErrorCode::kVarintOutOfRange,
                     absl::StrCat("varint value ", value,
                                  " exceeds maximum 4611686018427387903"));
  }
  const size_t size = VarintSize(value);
  if (out.size() < size) {
    return MakeError(ErrorCode::kBufferTooSmall,
                     absl::StrCat("varint of ", size, " bytes does not fit in ",
                                  out.size(), " bytes"));
  }
  return EncodeVarintUnchecked(value, out.data());
}

// VarintDecode
// Result of DecodeVarint. If `complete` is false, `size` is the total number
// of input bytes needed (the caller should retry with at least that many).
struct VarintDecode {
  bool complete = false;
  size_t size = 0;     // bytes consumed (complete) or needed (!complete)
  uint64_t value = 0;  // valid when complete
};

namespace detail {
// Reads a varint whose `size` bytes (1, 2, 4 or 8) are all present: one
// big-endian load and a mask. Does not check canonical form.
inline uint64_t LoadVarint(const std::byte* in, size_t size) noexcept {
  switch (size) {
    case 1:
      return static_cast<uint64_t>(in[0]) & 0x3F;
    case 2:
      return LoadBig16(in) & 0x3FFFu;
    case 4:
      return LoadBig32(in) & 0x3FFFFFFFu;
    default:
      SYMWIRE_ASSERT(size == 8);
      return LoadBig64(in) & kVarintMax;
  }
}
// True if `value` is the shortest encoding for a varint of `size` bytes.
constexpr bool IsCanonicalVarint(uint64_t value, size_t size) noexcept {
  return size == 1 || VarintSize(value) == size;
}
SYMWIRE_COLD inline absl::Status NonCanonicalVarintError(
    uint64_t value, size_t size, uint64_t offset, absl::string_view what) {
  return MakeError(ErrorCode::kNonCanonicalVarint,
                   absl::StrCat("non-canonical ", size, "-byte varint for ",
                                what, " value ", value, " at offset ", offset));
}
}  // namespace detail

// DecodeVarint
// Decodes one varint from the front of `in`. `offset` is the stream offset of
// in[0], used only in error messages; `what` names the field in them.
// Returns {complete=false, size=needed} if `in` is too short (not an error).
// Errors:
//   NON_CANONICAL_VARINT (kInvalidArgument)  a longer encoding than needed
// Does not allocate on success.
inline absl::StatusOr<VarintDecode> DecodeVarint(
    absl::Span<const std::byte> in, uint64_t offset = 0,
    absl::string_view what = "varint") {
  if (in.empty()) return VarintDecode{false, 1, 0};
  const size_t size = VarintSizeFromFirstByte(in[0]);
  if (in.size() < size) return VarintDecode{false, size, 0};
  const uint64_t value = detail::LoadVarint(in.data(), size);
  if (!detail::IsCanonicalVarint(value, size)) {
    return detail::NonCanonicalVarintError(value, size, offset, what);
  }
  return VarintDecode{true, size, value};
}

}  // namespace symwire

#endif  // SYMWIRE_WIRE_VARINT_HPP_
