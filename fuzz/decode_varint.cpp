// File: fuzz/decode_varint.cpp
// libFuzzer target for the canonical varint codec (SPEC.md §2,
// include/symwire/wire/varint.hpp).
//
// Checks, against an independent reading of SPEC.md §2 written here:
//  - DecodeVarint of the input: incomplete inputs report the size the first
//    byte announces; a longer-than-needed encoding is NON_CANONICAL_VARINT
//    (kInvalidArgument, message "... at offset N"); a complete canonical
//    varint has the reference value, and EncodeVarint of that value writes
//    exactly the input bytes (canonical => the encoding is unique).
//  - the input read as a run of varints (as the header fields are read),
//    with offsets in the error messages.
//  - EncodeVarint of values taken from the input, at every width: values
//    above 2^62-1 are VARINT_OUT_OF_RANGE, a short buffer BUFFER_TOO_SMALL,
//    and everything else decodes back to itself.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "fuzz_check.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/varint.hpp"

namespace {

using symwire::ErrorCode;
using symwire::fuzz::HexOf;

// SPEC.md §2 table: the smallest value that needs each length.
uint64_t MinValueForSize(size_t size) {
  switch (size) {
    case 2:
      return uint64_t{1} << 6;
    case 4:
      return uint64_t{1} << 14;
    case 8:
      return uint64_t{1} << 30;
    default:
      return 0;
  }
}

void CheckError(const absl::Status& s, ErrorCode code, uint64_t offset) {
  FUZZ_CHECK_MSG(symwire::GetErrorCode(s) == code, s.ToString());
  FUZZ_CHECK_MSG(s.code() == symwire::CanonicalCode(code), s.ToString());
  FUZZ_CHECK_MSG(
      absl::StrContains(s.message(), absl::StrCat("at offset ", offset)),
      s.ToString());
}

// Decodes `in` (stream offset `offset`) and checks the result against the
// reference. Returns the bytes consumed, or 0 if decoding stopped (error or
// incomplete).
size_t CheckDecode(absl::Span<const std::byte> in, uint64_t offset) {
  auto r = symwire::DecodeVarint(in, offset, "fuzzed");
  if (in.empty()) {
    FUZZ_CHECK(r.ok() && !r->complete && r->size == 1);
    return 0;
  }
  // Reference decoding, straight from the §2 table.
  const size_t size = size_t{1} << (static_cast<unsigned>(in[0]) >> 6);
  if (in.size() < size) {
    FUZZ_CHECK_MSG(r.ok() && !r->complete && r->size == size, HexOf(in));
    return 0;
  }
  uint64_t value = static_cast<uint64_t>(in[0]) & 0x3F;
  for (size_t i = 1; i < size; ++i) {
    value = (value << 8) | static_cast<uint64_t>(in[i]);
  }
  const bool canonical = value >= MinValueForSize(size);
  if (!canonical) {
    FUZZ_CHECK_MSG(!r.ok(), HexOf(in.first(size)));
    CheckError(r.status(), ErrorCode::kNonCanonicalVarint, offset);
    FUZZ_CHECK(absl::StrContains(r.status().message(), "fuzzed"));
    return 0;
  }
  FUZZ_CHECK_MSG(r.ok(), r.status().ToString());
  FUZZ_CHECK(r->complete && r->size == size && r->value == value);
  FUZZ_CHECK(r->value <= symwire::kVarintMax);
  FUZZ_CHECK(symwire::VarintSize(r->value) == size);
  // Canonical => unique: re-encoding gives back exactly the input bytes.
  std::array<std::byte, symwire::kMaxVarintSize> buf{};
  auto w = symwire::EncodeVarint(r->value, absl::MakeSpan(buf));
  FUZZ_CHECK(w.ok() && *w == size);
  FUZZ_CHECK_MSG(absl::MakeConstSpan(buf.data(), size) == in.first(size),
                 HexOf(in.first(size)) + " re-encoded as " +
                     HexOf(absl::MakeConstSpan(buf.data(), size)));
  return size;
}

void CheckEncode(uint64_t value) {
  std::array<std::byte, symwire::kMaxVarintSize> buf{};
  auto w = symwire::EncodeVarint(value, absl::MakeSpan(buf));
  if (value > symwire::kVarintMax) {
    FUZZ_CHECK(!w.ok());
    FUZZ_CHECK(symwire::GetErrorCode(w.status()) ==
               ErrorCode::kVarintOutOfRange);
    FUZZ_CHECK(w.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK_MSG(w.ok(), w.status().ToString());
  const size_t size = *w;
  FUZZ_CHECK(size == symwire::VarintSize(value));
  FUZZ_CHECK(symwire::VarintSizeFromFirstByte(buf[0]) == size);
  auto r = symwire::DecodeVarint(absl::MakeConstSpan(buf.data(), size));
  FUZZ_CHECK(r.ok() && r->complete && r->size == size && r->value == value);
  // Every shorter prefix is incomplete, not an error.
  for (size_t k = 0; k < size; ++k) {
    auto p = symwire::DecodeVarint(absl::MakeConstSpan(buf.data(), k));
    FUZZ_CHECK(p.ok() && !p->complete && p->size == (k == 0 ? 1 : size));
  }
  // A buffer one byte short is BUFFER_TOO_SMALL and nothing is written.
  std::array<std::byte, symwire::kMaxVarintSize> small{};
  auto s = symwire::EncodeVarint(value, absl::MakeSpan(small.data(), size - 1));
  FUZZ_CHECK(!s.ok() &&
             symwire::GetErrorCode(s.status()) == ErrorCode::kBufferTooSmall);
  FUZZ_CHECK(s.status().code() == absl::StatusCode::kResourceExhausted);
  for (std::byte b : small) FUZZ_CHECK(b == std::byte{0});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const std::byte> in = symwire::fuzz::AsBytes(data, size);

  // The input as one varint, then as a run of varints (offsets advance as
  // they would through a header's fields).
  CheckDecode(in, 0);
  for (size_t pos = 0; pos < in.size();) {
    const size_t n = CheckDecode(in.subspan(pos), pos);
    if (n == 0) break;
    pos += n;
  }

  // The encoder side: the first 8 bytes as a value, and the same value cut
  // to every varint width and its boundaries.
  symwire::fuzz::ByteReader reader(in);
  const uint64_t v = reader.U64();
  CheckEncode(v);
  for (unsigned bits : {6u, 14u, 30u, 62u}) {
    const uint64_t mask = (uint64_t{1} << bits) - 1;
    CheckEncode(v & mask);
    CheckEncode((v & mask) + 1);  // the first value of the next width
  }
  CheckEncode(v >> 2);
  CheckEncode(v | (uint64_t{1} << 62));  // always out of range
  return 0;
}
