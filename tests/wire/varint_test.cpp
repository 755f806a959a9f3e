// File: tests/wire/varint_test.cpp
// Tests for wire/varint.hpp (SPEC.md §2): the encoding of every length
// boundary written out by hand, the out-of-range and buffer-too-small
// errors, rejection of every longer-than-needed form, incomplete input, and
// seeded random round trips.
#include "symwire/wire/varint.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "tests/support/feed.hpp"

namespace symwire {
namespace {

using Bytes = std::vector<std::byte>;

Bytes B(std::initializer_list<int> values) {
  Bytes out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::string Hex(const Bytes& b) { return testing::HexPreview(b, 64); }

struct Known {
  uint64_t value;
  Bytes bytes;
};

// Written by hand from SPEC.md §2: top two bits = log2(length), then the
// value big-endian. The last four are RFC 9000 §A.1's examples.
std::vector<Known> KnownEncodings() {
  return {
      {0, B({0x00})},
      {1, B({0x01})},
      {37, B({0x25})},
      {63, B({0x3F})},
      {64, B({0x40, 0x40})},
      {300, B({0x41, 0x2C})},
      {15293, B({0x7B, 0xBD})},
      {16383, B({0x7F, 0xFF})},
      {16384, B({0x80, 0x00, 0x40, 0x00})},
      {494878333, B({0x9D, 0x7F, 0x3E, 0x7D})},
      {(uint64_t{1} << 30) - 1, B({0xBF, 0xFF, 0xFF, 0xFF})},
      {uint64_t{1} << 30, B({0xC0, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00})},
      {151288809941952652u,
       B({0xC2, 0x19, 0x7C, 0x5E, 0xFF, 0x14, 0xE8, 0x8C})},
      {(uint64_t{1} << 62) - 1,
       B({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})},
  };
}

TEST_CASE("varint: constants match SPEC.md §2", "[varint]") {
  STATIC_REQUIRE(kVarintMax == 4611686018427387903u);
  STATIC_REQUIRE(kMaxVarintSize == 8);
}

TEST_CASE("varint: VarintSize at every length boundary", "[varint]") {
  CHECK(VarintSize(0) == 1);
  CHECK(VarintSize(63) == 1);
  CHECK(VarintSize(64) == 2);
  CHECK(VarintSize(16383) == 2);
  CHECK(VarintSize(16384) == 4);
  CHECK(VarintSize((uint64_t{1} << 30) - 1) == 4);
  CHECK(VarintSize(uint64_t{1} << 30) == 8);
  CHECK(VarintSize((uint64_t{1} << 62) - 1) == 8);
}

TEST_CASE("varint: VarintSizeFromFirstByte reads the top two bits",
          "[varint]") {
  for (int b = 0; b < 256; ++b) {
    INFO("first byte " << b);
    const size_t expected = b < 0x40 ? 1 : b < 0x80 ? 2 : b < 0xC0 ? 4 : 8;
    CHECK(VarintSizeFromFirstByte(static_cast<std::byte>(b)) == expected);
  }
}

TEST_CASE("varint: encodes boundaries and RFC 9000 examples exactly",
          "[varint]") {
  for (const Known& k : KnownEncodings()) {
    INFO("value " << k.value << " expected " << Hex(k.bytes));
    REQUIRE(VarintSize(k.value) == k.bytes.size());

    // Exact-size buffer.
    Bytes out(k.bytes.size(), std::byte{0xA5});
    auto n = EncodeVarint(k.value, absl::MakeSpan(out));
    REQUIRE(n.ok());
    CHECK(*n == k.bytes.size());
    CHECK(Hex(out) == Hex(k.bytes));

    // Larger buffer: only the varint's bytes are written.
    Bytes big(k.bytes.size() + 5, std::byte{0xA5});
    n = EncodeVarint(k.value, absl::MakeSpan(big));
    REQUIRE(n.ok());
    CHECK(*n == k.bytes.size());
    CHECK(Hex(Bytes(big.begin(), big.begin() + static_cast<std::ptrdiff_t>(
                                                   k.bytes.size()))) ==
          Hex(k.bytes));
    CHECK(std::all_of(big.begin() + static_cast<std::ptrdiff_t>(k.bytes.size()),
                      big.end(),
                      [](std::byte b) { return b == std::byte{0xA5}; }));

    // The unchecked variant writes the same.
    Bytes raw(8, std::byte{0});
    CHECK(EncodeVarintUnchecked(k.value, raw.data()) == k.bytes.size());
    raw.resize(k.bytes.size());
    CHECK(Hex(raw) == Hex(k.bytes));
  }
}

TEST_CASE("varint: decodes boundaries and RFC 9000 examples exactly",
          "[varint]") {
  for (const Known& k : KnownEncodings()) {
    INFO("value " << k.value << " bytes " << Hex(k.bytes));
    auto d = DecodeVarint(k.bytes);
    REQUIRE(d.ok());
    CHECK(d->complete);
    CHECK(d->size == k.bytes.size());
    CHECK(d->value == k.value);

    // Trailing bytes are not consumed.
    Bytes longer = k.bytes;
    longer.push_back(std::byte{0xFF});
    longer.push_back(std::byte{0x00});
    d = DecodeVarint(longer);
    REQUIRE(d.ok());
    CHECK(d->complete);
    CHECK(d->size == k.bytes.size());
    CHECK(d->value == k.value);
  }
}

TEST_CASE("varint: values above 2^62-1 are VARINT_OUT_OF_RANGE", "[varint]") {
  for (uint64_t v : {uint64_t{1} << 62, (uint64_t{1} << 62) + 1,
                     uint64_t{1} << 63, std::numeric_limits<uint64_t>::max()}) {
    INFO("value " << v);
    Bytes out(16, std::byte{0xA5});
    auto n = EncodeVarint(v, absl::MakeSpan(out));
    REQUIRE_FALSE(n.ok());
    CHECK(n.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(GetErrorCode(n.status()) == ErrorCode::kVarintOutOfRange);
    CHECK_THAT(std::string(n.status().message()),
               Catch::Contains(absl::StrCat(v)));
    CHECK(std::all_of(out.begin(), out.end(),
                      [](std::byte b) { return b == std::byte{0xA5}; }));
  }
  // Out of range wins over a too-small buffer: the value is the bug.
  auto n = EncodeVarint(uint64_t{1} << 62, absl::Span<std::byte>());
  REQUIRE_FALSE(n.ok());
  CHECK(GetErrorCode(n.status()) == ErrorCode::kVarintOutOfRange);
}

TEST_CASE("varint: a buffer one byte short is BUFFER_TOO_SMALL, untouched",
          "[varint]") {
  for (const Known& k : KnownEncodings()) {
    for (size_t size = 0; size < k.bytes.size(); ++size) {
      INFO("value " << k.value << " buffer " << size);
      Bytes out(size + 1, std::byte{0xA5});  // the extra byte is a guard
      auto n = EncodeVarint(k.value, absl::MakeSpan(out.data(), size));
      REQUIRE_FALSE(n.ok());
      CHECK(n.status().code() == absl::StatusCode::kResourceExhausted);
      CHECK(GetErrorCode(n.status()) == ErrorCode::kBufferTooSmall);
      CHECK(std::all_of(out.begin(), out.end(),
                        [](std::byte b) { return b == std::byte{0xA5}; }));
    }
  }
}

// Writes `value` as a varint of exactly `size` bytes (1, 2, 4, 8), whether
// or not that is its shortest form.
Bytes ForceVarint(uint64_t value, size_t size) {
  const uint64_t tag = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;
  const uint64_t tagged = value | (tag << (size * 8 - 2));
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) {
    out[i] = static_cast<std::byte>((tagged >> (8 * (size - 1 - i))) & 0xFF);
  }
  return out;
}

void RequireNonCanonical(const Bytes& bytes, uint64_t value,
                         uint64_t offset = 0) {
  INFO("bytes " << Hex(bytes) << " value " << value);
  auto d = DecodeVarint(bytes, offset, "test_field");
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(GetErrorCode(d.status()) == ErrorCode::kNonCanonicalVarint);
  const std::string message(d.status().message());
  CHECK_THAT(message, Catch::Contains("test_field"));
  CHECK_THAT(message, Catch::Contains(absl::StrCat(" ", value, " ")) ||
                          Catch::Contains(absl::StrCat(" ", value)));
  CHECK(testing::OffsetInMessage(message) == offset);
}

TEST_CASE("varint: every 2-byte form of 0..63 is NON_CANONICAL_VARINT",
          "[varint]") {
  for (uint64_t v = 0; v < 64; ++v) RequireNonCanonical(ForceVarint(v, 2), v);
  // And every 2-byte value from 64 up is canonical (exhaustive).
  for (uint64_t v = 64; v < 16384; ++v) {
    auto d = DecodeVarint(ForceVarint(v, 2));
    REQUIRE(d.ok());
    REQUIRE(d->value == v);
    REQUIRE(d->size == 2);
  }
}

TEST_CASE("varint: every 4-byte form of 0..16383 is NON_CANONICAL_VARINT",
          "[varint]") {
  // Exhaustive, without Catch assertions in the loop (they are slow).
  uint64_t bad = 0;
  uint64_t first_bad = 0;
  for (uint64_t v = 0; v < 16384; ++v) {
    auto d = DecodeVarint(ForceVarint(v, 4));
    if (d.ok() || GetErrorCode(d.status()) != ErrorCode::kNonCanonicalVarint) {
      if (bad++ == 0) first_bad = v;
    }
  }
  INFO("first accepted/misreported 4-byte non-canonical value " << first_bad);
  CHECK(bad == 0);
  for (uint64_t v : {uint64_t{0}, uint64_t{5}, uint64_t{63}, uint64_t{64},
                     uint64_t{16383}}) {
    RequireNonCanonical(ForceVarint(v, 4), v, 1234);
  }
  // 16384 is the smallest canonical 4-byte value.
  auto d = DecodeVarint(ForceVarint(16384, 4));
  REQUIRE(d.ok());
  CHECK(d->value == 16384);
}

TEST_CASE("varint: 8-byte forms of values below 2^30 are NON_CANONICAL",
          "[varint]") {
  // 2^30 values cannot all be tried: the boundaries of every shorter length
  // plus a seeded sample.
  for (uint64_t v :
       {uint64_t{0}, uint64_t{1}, uint64_t{63}, uint64_t{64}, uint64_t{16383},
        uint64_t{16384}, (uint64_t{1} << 30) - 1}) {
    RequireNonCanonical(ForceVarint(v, 8), v, 99);
  }
  const uint64_t seed = testing::TestSeed(0x5eed'0001);
  INFO("seed " << seed << " (set SYMWIRE_TEST_SEED to reproduce)");
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint64_t> below(0, (uint64_t{1} << 30) - 1);
  uint64_t bad = 0;
  for (int i = 0; i < 20000; ++i) {
    const uint64_t v = below(rng);
    auto d = DecodeVarint(ForceVarint(v, 8));
    if (d.ok() || GetErrorCode(d.status()) != ErrorCode::kNonCanonicalVarint) {
      ++bad;
    }
  }
  CHECK(bad == 0);
  auto d = DecodeVarint(ForceVarint(uint64_t{1} << 30, 8));
  REQUIRE(d.ok());
  CHECK(d->value == uint64_t{1} << 30);
}

TEST_CASE("varint: SPEC example 00 05 is not 5", "[varint]") {
  // SPEC.md §2 writes the example as "00 05"; as a varint that is the
  // 1-byte value 0 followed by a stray byte. The 2-byte form of 5 is 40 05.
  RequireNonCanonical(B({0x40, 0x05}), 5);
  auto d = DecodeVarint(B({0x00, 0x05}));
  REQUIRE(d.ok());
  CHECK(d->value == 0);
  CHECK(d->size == 1);
}

TEST_CASE("varint: incomplete input asks for the full length", "[varint]") {
  auto d = DecodeVarint(Bytes{});
  REQUIRE(d.ok());
  CHECK_FALSE(d->complete);
  CHECK(d->size == 1);

  struct Case {
    int first;
    size_t length;
  };
  for (const Case& c : {Case{0x40, 2}, Case{0x7F, 2}, Case{0x80, 4},
                        Case{0xBF, 4}, Case{0xC0, 8}, Case{0xFF, 8}}) {
    for (size_t have = 1; have < c.length; ++have) {
      INFO("first byte " << c.first << " with " << have << " bytes");
      Bytes in(have, std::byte{0x00});
      in[0] = static_cast<std::byte>(c.first);
      d = DecodeVarint(in);
      REQUIRE(d.ok());
      CHECK_FALSE(d->complete);
      CHECK(d->size == c.length);
    }
  }
  // An incomplete non-canonical prefix is not yet an error.
  d = DecodeVarint(B({0x40}));
  REQUIRE(d.ok());
  CHECK_FALSE(d->complete);
}

// A value of the given encoded width, edges included.
uint64_t RandomOfWidth(std::mt19937_64& rng, size_t width) {
  uint64_t lo = 0;
  uint64_t hi = 63;
  if (width == 2) lo = 64, hi = 16383;
  if (width == 4) lo = 16384, hi = (uint64_t{1} << 30) - 1;
  if (width == 8) lo = uint64_t{1} << 30, hi = kVarintMax;
  switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
    case 0:
      return lo;
    case 1:
      return hi;
    default:
      return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  }
}

TEST_CASE("varint: random round trips over every width", "[varint]") {
  const uint64_t seed = testing::TestSeed(0x5eed'0002);
  INFO("seed " << seed << " (set SYMWIRE_TEST_SEED to reproduce)");
  std::mt19937_64 rng(seed);
  const std::array<size_t, 4> widths = {1, 2, 4, 8};
  size_t failures = 0;
  std::string first_failure;
  for (int i = 0; i < 50000; ++i) {
    const size_t width = widths[static_cast<size_t>(i) % widths.size()];
    const uint64_t v = RandomOfWidth(rng, width);
    std::array<std::byte, 12> buf{};
    std::fill(buf.begin(), buf.end(), std::byte{0xA5});
    auto n = EncodeVarint(v, absl::MakeSpan(buf));
    bool ok = n.ok() && *n == width && VarintSize(v) == width &&
              buf[width] == std::byte{0xA5};
    // The first byte carries the length tag.
    ok = ok && VarintSizeFromFirstByte(buf[0]) == width;
    auto d = DecodeVarint(absl::MakeConstSpan(buf));  // trailing 0xA5 bytes
    ok = ok && d.ok() && d->complete && d->size == width && d->value == v;
    // Any shorter prefix is incomplete and asks for `width` bytes.
    if (ok && width > 1) {
      auto part = DecodeVarint(absl::MakeConstSpan(buf.data(), width - 1));
      ok = part.ok() && !part->complete && part->size == width;
    }
    if (!ok && failures++ == 0) {
      first_failure = absl::StrCat("value ", v, " width ", width);
    }
  }
  INFO(first_failure);
  CHECK(failures == 0);
}

TEST_CASE("varint: exhaustive 1- and 2-byte decoding agrees with §2",
          "[varint]") {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const Bytes in = B({a, b});
      auto d = DecodeVarint(in);
      if (a < 0x40) {
        REQUIRE(d.ok());
        REQUIRE(d->size == 1);
        REQUIRE(d->value == static_cast<uint64_t>(a));
      } else if (a < 0x80) {
        const uint64_t v = static_cast<uint64_t>(((a & 0x3F) << 8) | b);
        if (v < 64) {
          REQUIRE_FALSE(d.ok());
          REQUIRE(GetErrorCode(d.status()) == ErrorCode::kNonCanonicalVarint);
        } else {
          REQUIRE(d.ok());
          REQUIRE(d->complete);
          REQUIRE(d->value == v);
        }
      } else {
        REQUIRE(d.ok());
        REQUIRE_FALSE(d->complete);
      }
    }
  }
}

}  // namespace
}  // namespace symwire
