// File: tests/wire/crc32c_test.cpp
// Tests for wire/crc32c.hpp: published check values, chaining, the portable
// and SSE4.2 paths against each other and against a bit-at-a-time reference
// written from the textbook (unreflected) definition.
#include "symwire/wire/crc32c.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "symwire/wire/detail/crc32c_short.hpp"

namespace symwire {
namespace {

using Crc32cFn = uint32_t (*)(uint32_t, absl::Span<const std::byte>);

struct Impl {
  const char* name;
  Crc32cFn fn;
};

// Every implementation this machine can run.
std::vector<Impl> Impls() {
  std::vector<Impl> impls = {{"Crc32cExtend", &Crc32cExtend},
                             {"portable", &detail::Crc32cExtendPortable}};
  if (detail::Crc32cHardwareAvailable()) {
    impls.push_back({"hardware", &detail::Crc32cExtendHardware});
  }
  return impls;
}

std::vector<std::byte> Bytes(std::string_view s) {
  std::vector<std::byte> out;
  for (char ch : s) out.push_back(static_cast<std::byte>(ch));
  return out;
}

std::vector<std::byte> Pattern32(uint8_t first, int step) {
  std::vector<std::byte> out;
  out.reserve(32);
  for (int i = 0; i < 32; ++i) {
    out.push_back(static_cast<std::byte>(first + step * i));
  }
  return out;
}

std::vector<std::byte> RandomBytes(std::mt19937_64& rng, std::size_t n) {
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng() & 0xFFu);
  return out;
}

// The RFC 3720 §B.4 iSCSI SCSI Read (10) command PDU (48 bytes).
std::vector<std::byte> IscsiReadPdu() {
  const uint8_t raw[48] = {
      0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
      0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  std::vector<std::byte> out;
  for (uint8_t b : raw) out.push_back(static_cast<std::byte>(b));
  return out;
}

// Independent reference: the CRC as a polynomial division, most significant
// bit first with the unreflected generator 0x1EDC6F41. CRC32C is defined
// with reflected input and output, so each input byte is bit-reversed on
// the way in and the remainder on the way out (no tables, no shortcuts).
uint32_t ReverseBits(uint32_t v, int width) {
  uint32_t r = 0;
  for (int i = 0; i < width; ++i) {
    r = (r << 1) | ((v >> i) & 1u);
  }
  return r;
}

uint32_t ReferenceCrc32c(absl::Span<const std::byte> data) {
  uint32_t reg = 0xFFFFFFFFu;
  for (std::byte b : data) {
    const uint32_t in = ReverseBits(std::to_integer<uint32_t>(b), 8);
    for (int i = 7; i >= 0; --i) {
      const uint32_t in_bit = (in >> i) & 1u;
      const uint32_t top = reg >> 31;
      reg <<= 1;
      if ((top ^ in_bit) != 0) reg ^= 0x1EDC6F41u;
    }
  }
  return ReverseBits(reg, 32) ^ 0xFFFFFFFFu;
}

absl::Span<const std::byte> Sub(const std::vector<std::byte>& v,
                                std::size_t offset, std::size_t length) {
  return absl::Span<const std::byte>(v).subspan(offset, length);
}

TEST_CASE("Crc32c RFC 3720 check values", "[crc32c]") {
  struct Vector {
    const char* name;
    std::vector<std::byte> input;
    uint32_t crc;
  };
  const std::vector<Vector> vectors = {
      {"123456789", Bytes("123456789"), 0xE3069283u},
      {"32 zero bytes", std::vector<std::byte>(32, std::byte{0x00}),
       0x8A9136AAu},
      {"32 0xFF bytes", std::vector<std::byte>(32, std::byte{0xFF}),
       0x62A8AB43u},
      {"32 ascending bytes", Pattern32(0, 1), 0x46DD794Eu},
      {"32 descending bytes", Pattern32(31, -1), 0x113FDB5Cu},
      {"iSCSI read PDU", IscsiReadPdu(), 0xD9963A56u},
  };
  for (const auto& v : vectors) {
    INFO(v.name);
    CHECK(Crc32c(v.input) == v.crc);
    CHECK(ReferenceCrc32c(v.input) == v.crc);
    for (const auto& impl : Impls()) {
      INFO(impl.name);
      CHECK(impl.fn(0, v.input) == v.crc);
    }
  }
}

// Vectors from Couchbase's platform crc32c test: long inputs that reach the
// three-stream paths (8000 bytes: short blocks; 1 MiB: long blocks).
TEST_CASE("Crc32c long third-party vectors", "[crc32c]") {
  const std::vector<std::byte> pdu = IscsiReadPdu();
  auto make = [&](std::size_t size, bool strict) {
    std::vector<std::byte> buf(size, std::byte{0x7A});
    std::size_t left = size - 1024;
    for (std::size_t at = 1024; strict ? left > 48 : left > 0;
         at += 48, left -= 48) {
      std::copy(pdu.begin(), pdu.end(),
                buf.begin() + static_cast<std::ptrdiff_t>(at));
    }
    return buf;
  };
  struct Vector {
    std::vector<std::byte> input;
    uint32_t crc;
  };
  const std::vector<Vector> vectors = {
      {make(8000, true), 0x9966C079u},
      {make(std::size_t{1} << 20, false), 0x93A9AE7Au}};
  for (const auto& v : vectors) {
    INFO("size " << v.input.size());
    CHECK(ReferenceCrc32c(v.input) == v.crc);
    for (std::size_t misalign : {0u, 1u, 5u}) {
      INFO("misalignment " << misalign);
      std::vector<std::byte> shifted(misalign, std::byte{0x55});
      shifted.insert(shifted.end(), v.input.begin(), v.input.end());
      for (const auto& impl : Impls()) {
        INFO(impl.name);
        CHECK(impl.fn(0, Sub(shifted, misalign, v.input.size())) == v.crc);
      }
    }
  }
}

TEST_CASE("Crc32c of empty input", "[crc32c]") {
  const std::vector<std::byte> empty;
  CHECK(Crc32c(absl::Span<const std::byte>()) == 0u);
  CHECK(Crc32c(empty) == 0u);
  for (const auto& impl : Impls()) {
    INFO(impl.name);
    CHECK(impl.fn(0, absl::Span<const std::byte>()) == 0u);
    // Extending by nothing leaves any CRC unchanged.
    CHECK(impl.fn(0xE3069283u, empty) == 0xE3069283u);
    CHECK(impl.fn(0xDEADBEEFu, empty) == 0xDEADBEEFu);
  }
}

TEST_CASE("Crc32cExtend chaining equals whole at every split", "[crc32c]") {
  std::mt19937_64 rng(0x5157'0001u);
  // Long enough that both halves cross the 768-byte three-stream threshold.
  const std::vector<std::byte> buf = RandomBytes(rng, 2500);
  const uint32_t whole = ReferenceCrc32c(buf);
  for (const auto& impl : Impls()) {
    INFO(impl.name);
    REQUIRE(impl.fn(0, buf) == whole);
    for (std::size_t split = 0; split <= buf.size(); ++split) {
      INFO("split " << split);
      const uint32_t head = impl.fn(0, Sub(buf, 0, split));
      CHECK(impl.fn(head, Sub(buf, split, buf.size() - split)) == whole);
    }
  }
}

TEST_CASE("Crc32cExtend chaining over many pieces", "[crc32c]") {
  std::mt19937_64 rng(0x5157'0002u);
  // Past 3 * 8 KiB, so pieces hit the long-block path too.
  const std::vector<std::byte> buf = RandomBytes(rng, 200'000);
  const uint32_t whole = detail::Crc32cExtendPortable(0, buf);
  CHECK(whole == ReferenceCrc32c(buf));
  std::uniform_int_distribution<std::size_t> piece(0, 40'000);
  for (const auto& impl : Impls()) {
    INFO(impl.name);
    for (int round = 0; round < 8; ++round) {
      uint32_t crc = 0;
      std::size_t at = 0;
      while (at < buf.size()) {
        const std::size_t len = std::min(piece(rng), buf.size() - at);
        crc = impl.fn(crc, Sub(buf, at, len));
        at += len;
      }
      CHECK(crc == whole);
    }
  }
}

TEST_CASE("Crc32c portable and hardware paths agree", "[crc32c]") {
  if (!detail::Crc32cHardwareAvailable()) {
    WARN("no SSE4.2 on this machine (or not x86-64): hardware path skipped");
    return;
  }
  constexpr std::size_t kMaxLen = 5000;
  constexpr std::size_t kMaxMisalign = 15;
  std::mt19937_64 rng(0x5157'0003u);
  const std::vector<std::byte> buf =
      RandomBytes(rng, kMaxLen + kMaxMisalign + 1);
  auto check = [&](std::size_t offset, std::size_t len) {
    const auto data = Sub(buf, offset, len);
    const uint32_t sw = detail::Crc32cExtendPortable(0, data);
    const uint32_t hw = detail::Crc32cExtendHardware(0, data);
    if (sw != hw) {
      FAIL_CHECK("offset " << offset << " length " << len << ": portable " << sw
                           << " hardware " << hw);
    }
    // A nonzero starting CRC goes through the same inversion on both paths.
    const uint32_t seed = static_cast<uint32_t>(rng());
    if (detail::Crc32cExtendPortable(seed, data) !=
        detail::Crc32cExtendHardware(seed, data)) {
      FAIL_CHECK("offset " << offset << " length " << len << " seed " << seed);
    }
    return sw == hw;
  };
  std::size_t agreed = 0;
  std::size_t total = 0;
  SECTION("random lengths 0..5000, every misalignment 0..15") {
    std::uniform_int_distribution<std::size_t> length(0, kMaxLen);
    for (int i = 0; i < 400; ++i) {
      const std::size_t len = length(rng);
      for (std::size_t misalign = 0; misalign <= kMaxMisalign; ++misalign) {
        if (check(misalign, len)) ++agreed;
        ++total;
      }
    }
  }
  SECTION("every length 0..2400 at misalignments 0, 3, 8") {
    for (std::size_t len = 0; len <= 2400; ++len) {
      for (std::size_t misalign : {0u, 3u, 8u}) {
        if (check(misalign, len)) ++agreed;
        ++total;
      }
    }
  }
  CHECK(agreed == total);
}

TEST_CASE("Crc32c long inputs around the block thresholds", "[crc32c]") {
  std::mt19937_64 rng(0x5157'0004u);
  // The hardware path's block sizes (an implementation detail, so a change
  // there only weakens this test, it does not break it).
  constexpr std::size_t kShort = 256;
  constexpr std::size_t kLong = 8192;
  const std::vector<std::size_t> lengths = {3 * kShort - 1,
                                            3 * kShort,
                                            3 * kShort + 1,
                                            3 * kLong - 1,
                                            3 * kLong,
                                            3 * kLong + 1,
                                            3 * kLong + 3 * kShort + 65,
                                            6 * kLong + 65,
                                            100'003};
  const std::vector<std::byte> buf = RandomBytes(rng, 100'003 + 16);
  for (std::size_t len : lengths) {
    for (std::size_t misalign : {0u, 1u, 7u, 8u, 13u}) {
      INFO("length " << len << " misalignment " << misalign);
      const auto data = Sub(buf, misalign, len);
      const uint32_t want = ReferenceCrc32c(data);
      for (const auto& impl : Impls()) {
        INFO(impl.name);
        CHECK(impl.fn(0, data) == want);
      }
    }
  }
}

TEST_CASE("Crc32c agrees with the bitwise reference on random inputs",
          "[crc32c]") {
  std::mt19937_64 rng(0x5157'0005u);
  std::uniform_int_distribution<std::size_t> length(0, 3000);
  for (int i = 0; i < 300; ++i) {
    // Mostly short (frame headers), some past the three-stream threshold.
    const std::size_t len = i % 4 == 0 ? length(rng) : length(rng) % 64;
    const std::vector<std::byte> data = RandomBytes(rng, len);
    const uint32_t want = ReferenceCrc32c(data);
    for (const auto& impl : Impls()) {
      INFO(impl.name << " length " << len);
      CHECK(impl.fn(0, data) == want);
    }
  }
}

TEST_CASE("Crc32c detects every single-bit flip", "[crc32c]") {
  std::mt19937_64 rng(0x5157'0006u);
  std::vector<std::byte> data = RandomBytes(rng, 30);
  const uint32_t crc = Crc32c(data);
  for (std::size_t i = 0; i < data.size() * 8; ++i) {
    data[i / 8] ^= static_cast<std::byte>(1u << (i % 8));
    CHECK(Crc32c(data) != crc);
    data[i / 8] ^= static_cast<std::byte>(1u << (i % 8));
  }
  CHECK(Crc32c(data) == crc);
}

// The decoder's inlined short-input CRC (wire/detail/crc32c_short.hpp).
TEST_CASE("Crc32cShort agrees with the reference", "[crc32c]") {
  const std::vector<std::byte> check = Bytes("123456789");
  CHECK(detail::Crc32cShort(check.data(), check.size()) == 0xE3069283u);
  std::mt19937_64 rng(0x5157'0007u);
  const std::vector<std::byte> buf = RandomBytes(rng, 100 + 16);
  for (std::size_t len = 0; len <= 100; ++len) {
    for (std::size_t misalign = 0; misalign < 16; ++misalign) {
      INFO("length " << len << " misalignment " << misalign);
      CHECK(detail::Crc32cShort(buf.data() + misalign, len) ==
            ReferenceCrc32c(Sub(buf, misalign, len)));
    }
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
TEST_CASE("Crc32cHardwareAvailable matches the CPU", "[crc32c]") {
  __builtin_cpu_init();
  CHECK(detail::Crc32cHardwareAvailable() ==
        (__builtin_cpu_supports("sse4.2") != 0));
}
#endif

}  // namespace
}  // namespace symwire
