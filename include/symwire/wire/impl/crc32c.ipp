// File: symwire/wire/impl/crc32c.ipp
// Layer 1. Out-of-line bodies of wire/crc32c.hpp: the portable slicing-by-8
// CRC32C, the x86-64 SSE4.2 path and the run-time dispatch between them.
//
// The CRC register is kept "raw" inside (no initial or final inversion), which
// is also what the SSE4.2 crc32 instruction computes; Crc32cExtend* invert on
// entry and exit (SPEC.md §6: init 0xFFFFFFFF, final xor 0xFFFFFFFF).
// Bit i of the reflected register is the coefficient of x^(31-i).
#ifndef SYMWIRE_WIRE_IMPL_CRC32C_IPP_
#define SYMWIRE_WIRE_IMPL_CRC32C_IPP_

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/wire/crc32c.hpp"

// The hardware path needs GCC/Clang's per-function target attribute, so
// header-only users need no -msse4.2 (and the binary still runs on CPUs
// without SSE4.2). Undefined again at the end of this file.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SYMWIRE_DETAIL_CRC32C_X86_64 1
#include <nmmintrin.h>
#endif

namespace symwire::detail {

inline constexpr uint32_t kCrc32cPoly = 0x82F63B78u;  // reflected 0x1EDC6F41

using Crc32cTable = std::array<uint32_t, 256>;
using Crc32cGf2Matrix = std::array<uint32_t, 32>;  // column j = M * (1 << j)

// kCrc32cSlice8[k][b]: the raw CRC of byte b followed by k zero bytes.
constexpr std::array<Crc32cTable, 8> MakeCrc32cSlice8Tables() noexcept {
  std::array<Crc32cTable, 8> t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit) {
      c = (c & 1u) != 0 ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    }
    t[0][b] = c;
  }
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::size_t b = 0; b < 256; ++b) {
      const uint32_t prev = t[k - 1][b];
      t[k][b] = (prev >> 8) ^ t[0][prev & 0xFFu];
    }
  }
  return t;
}
inline constexpr std::array<Crc32cTable, 8> kCrc32cSlice8 =
    MakeCrc32cSlice8Tables();

constexpr uint32_t Crc32cGf2Apply(const Crc32cGf2Matrix& m,
                                  uint32_t v) noexcept {
  uint32_t sum = 0;
  for (std::size_t j = 0; v != 0; ++j, v >>= 1) {
    if ((v & 1u) != 0) sum ^= m[j];
  }
  return sum;
}

// a * b (apply b first).
constexpr Crc32cGf2Matrix Crc32cGf2Multiply(const Crc32cGf2Matrix& a,
                                            const Crc32cGf2Matrix& b) noexcept {
  Crc32cGf2Matrix r{};
  for (std::size_t j = 0; j < 32; ++j) r[j] = Crc32cGf2Apply(a, b[j]);
  return r;
}

// The linear map "feed `nbytes` zero bytes to the raw register", i.e.
// multiplication by x^(8 * nbytes) mod P, as in zlib's crc32_combine.
constexpr Crc32cGf2Matrix Crc32cZerosOperator(std::size_t nbytes) noexcept {
  Crc32cGf2Matrix op{};  // one zero bit
  op[0] = kCrc32cPoly;
  for (std::size_t j = 1; j < 32; ++j) op[j] = uint32_t{1} << (j - 1);
  for (int i = 0; i < 3; ++i) op = Crc32cGf2Multiply(op, op);  // one byte
  Crc32cGf2Matrix result{};
  for (std::size_t j = 0; j < 32; ++j) result[j] = uint32_t{1} << j;
  for (; nbytes != 0; nbytes >>= 1) {
    if ((nbytes & 1u) != 0) result = Crc32cGf2Multiply(op, result);
    op = Crc32cGf2Multiply(op, op);
  }
  return result;
}

// Byte-wise lookup tables for the zeros operator, so shifting a CRC past
// `nbytes` zeros costs four loads (Crc32cShift).
constexpr std::array<Crc32cTable, 4> MakeCrc32cShiftTables(
    std::size_t nbytes) noexcept {
  const Crc32cGf2Matrix op = Crc32cZerosOperator(nbytes);
  std::array<Crc32cTable, 4> t{};
  for (std::size_t k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      t[k][b] = Crc32cGf2Apply(op, b << (8 * k));
    }
  }
  return t;
}

inline uint32_t Crc32cShift(const std::array<Crc32cTable, 4>& t,
                            uint32_t crc) noexcept {
  return t[0][crc & 0xFFu] ^ t[1][(crc >> 8) & 0xFFu] ^
         t[2][(crc >> 16) & 0xFFu] ^ t[3][crc >> 24];
}

inline uint64_t Crc32cLoadLe64(const unsigned char* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) {
    v = __builtin_bswap64(v);
  }
  return v;
}

SYMWIRE_DECL uint32_t
Crc32cExtendPortable(uint32_t crc, absl::Span<const std::byte> data) noexcept {
  const auto& t = kCrc32cSlice8;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  uint32_t c = ~crc;
  for (; n >= 8; p += 8, n -= 8) {
    const uint64_t w = Crc32cLoadLe64(p) ^ c;
    c = t[7][w & 0xFFu] ^ t[6][(w >> 8) & 0xFFu] ^ t[5][(w >> 16) & 0xFFu] ^
        t[4][(w >> 24) & 0xFFu] ^ t[3][(w >> 32) & 0xFFu] ^
        t[2][(w >> 40) & 0xFFu] ^ t[1][(w >> 48) & 0xFFu] ^ t[0][w >> 56];
  }
  for (; n != 0; ++p, --n) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFFu];
  return ~c;
}

#ifdef SYMWIRE_DETAIL_CRC32C_X86_64

// Three interleaved streams hide the crc32 instruction's 3-cycle latency
// (throughput is one per cycle). Each round covers 3 * block bytes and then
// joins the streams with a table shift; 8 KiB blocks amortise the join for
// long inputs, 256-byte blocks start paying off at 768 bytes.
inline constexpr std::size_t kCrc32cLongBlock = 8192;
inline constexpr std::size_t kCrc32cShortBlock = 256;
inline constexpr std::array<Crc32cTable, 4> kCrc32cShiftLong =
    MakeCrc32cShiftTables(kCrc32cLongBlock);
inline constexpr std::array<Crc32cTable, 4> kCrc32cShiftShort =
    MakeCrc32cShiftTables(kCrc32cShortBlock);

__attribute__((target("sse4.2"))) inline uint64_t Crc32cSse42Rounds(
    uint64_t c, const unsigned char*& p, std::size_t& n, std::size_t block,
    const std::array<Crc32cTable, 4>& shift) noexcept {
  while (n >= 3 * block) {
    uint64_t c1 = 0;
    uint64_t c2 = 0;
    const unsigned char* const end = p + block;
    do {
      c = _mm_crc32_u64(c, Crc32cLoadLe64(p));
      c1 = _mm_crc32_u64(c1, Crc32cLoadLe64(p + block));
      c2 = _mm_crc32_u64(c2, Crc32cLoadLe64(p + 2 * block));
      p += 8;
    } while (p != end);
    c = Crc32cShift(shift, static_cast<uint32_t>(c)) ^ c1;
    c = Crc32cShift(shift, static_cast<uint32_t>(c)) ^ c2;
    p += 2 * block;
    n -= 3 * block;
  }
  return c;
}

// The body of Crc32cExtendHardware without its precondition check.
__attribute__((target("sse4.2"))) SYMWIRE_DECL uint32_t
Crc32cExtendSse42(uint32_t crc, absl::Span<const std::byte> data) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  uint64_t c = ~crc;
  if (n >= 3 * kCrc32cShortBlock) {
    // Align so no load of the three streams crosses a cache line.
    for (; (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0; ++p, --n) {
      c = _mm_crc32_u8(static_cast<uint32_t>(c), *p);
    }
    c = Crc32cSse42Rounds(c, p, n, kCrc32cLongBlock, kCrc32cShiftLong);
    c = Crc32cSse42Rounds(c, p, n, kCrc32cShortBlock, kCrc32cShiftShort);
  }
  // Frame headers (10-30 bytes) only take this path.
  for (; n >= 8; p += 8, n -= 8) c = _mm_crc32_u64(c, Crc32cLoadLe64(p));
  auto c32 = static_cast<uint32_t>(c);
  if ((n & 4u) != 0) {
    uint32_t v;
    std::memcpy(&v, p, sizeof(v));
    c32 = _mm_crc32_u32(c32, v);
    p += 4;
  }
  if ((n & 2u) != 0) {
    uint16_t v;
    std::memcpy(&v, p, sizeof(v));
    c32 = _mm_crc32_u16(c32, v);
    p += 2;
  }
  if ((n & 1u) != 0) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}

// What Crc32cDetectSse42 found: 0 not yet known, 1 SSE4.2, 2 no SSE4.2.
// A relaxed atomic rather than a function-local static: the hot path is one
// load and a branch, with no guard and no call. Racing first calls all store
// the same value, so there is nothing to order.
inline std::atomic<uint8_t> crc32c_sse42_state{0};

SYMWIRE_COLD SYMWIRE_DECL bool Crc32cDetectSse42() noexcept {
  // cpu_init makes this safe even when run from another static initialiser.
  __builtin_cpu_init();
  const bool available = __builtin_cpu_supports("sse4.2") != 0;
  crc32c_sse42_state.store(available ? 1 : 2, std::memory_order_relaxed);
  return available;
}

SYMWIRE_DECL bool Crc32cHardwareAvailable() noexcept {
  const uint8_t state = crc32c_sse42_state.load(std::memory_order_relaxed);
  if (SYMWIRE_LIKELY(state != 0)) return state == 1;
  return Crc32cDetectSse42();
}

// Crc32cExtend before detection has run; kept out of line so the hot path
// is a load, a compare and a tail call, with no registers to save.
SYMWIRE_COLD SYMWIRE_DECL uint32_t
Crc32cExtendFirstCall(uint32_t crc, absl::Span<const std::byte> data) noexcept {
  return Crc32cDetectSse42() ? Crc32cExtendSse42(crc, data)
                             : Crc32cExtendPortable(crc, data);
}

SYMWIRE_DECL uint32_t
Crc32cExtendHardware(uint32_t crc, absl::Span<const std::byte> data) noexcept {
  SYMWIRE_REQUIRE(Crc32cHardwareAvailable());
  return Crc32cExtendSse42(crc, data);
}

#else  // !SYMWIRE_DETAIL_CRC32C_X86_64

SYMWIRE_DECL bool Crc32cHardwareAvailable() noexcept { return false; }

// No hardware path on this target: the portable one stands in.
SYMWIRE_DECL uint32_t
Crc32cExtendHardware(uint32_t crc, absl::Span<const std::byte> data) noexcept {
  return Crc32cExtendPortable(crc, data);
}

#endif  // SYMWIRE_DETAIL_CRC32C_X86_64

}  // namespace symwire::detail

namespace symwire {

SYMWIRE_DECL uint32_t Crc32cExtend(uint32_t crc,
                                   absl::Span<const std::byte> data) noexcept {
#ifdef SYMWIRE_DETAIL_CRC32C_X86_64
  const uint8_t state =
      detail::crc32c_sse42_state.load(std::memory_order_relaxed);
  if (SYMWIRE_LIKELY(state == 1)) return detail::Crc32cExtendSse42(crc, data);
  if (SYMWIRE_UNLIKELY(state == 0)) {
    return detail::Crc32cExtendFirstCall(crc, data);
  }
#endif
  return detail::Crc32cExtendPortable(crc, data);
}

}  // namespace symwire

#undef SYMWIRE_DETAIL_CRC32C_X86_64

#endif  // SYMWIRE_WIRE_IMPL_CRC32C_IPP_
