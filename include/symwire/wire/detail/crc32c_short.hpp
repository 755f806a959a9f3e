// File: symwire/wire/detail/crc32c_short.hpp
// Layer 1 internals. An inlinable CRC32C for short inputs (frame headers,
// typically 10-30 bytes), used by the decoder's fast path. The out-of-line
// Crc32c() costs a call and a dispatch per header, a large share of the
// ~10 ns budget of a small frame. GCC and clang refuse to inline functions
// compiled for a different target (sse4.2) into generic code, so the
// instruction is written as inline assembly, which needs no target flag;
// it runs only after the CPU check said SSE4.2 is there.
#ifndef SYMWIRE_WIRE_DETAIL_CRC32C_SHORT_HPP_
#define SYMWIRE_WIRE_DETAIL_CRC32C_SHORT_HPP_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"
#include "symwire/config.hpp"
#include "symwire/wire/crc32c.hpp"

namespace symwire::detail {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Read once before main(). Code that runs earlier (another static
// initialiser) sees false and takes the always-correct out-of-line path.
inline const bool kCrc32cInlineHardware = Crc32cHardwareAvailable();
#define SYMWIRE_HAS_INLINE_CRC32C 1
#endif

#ifdef SYMWIRE_HAS_INLINE_CRC32C
// Crc32cShortHardware
// Crc32c(data, size) with the SSE4.2 instruction, no CPU check (a loop that
// checked kCrc32cInlineHardware once calls this per header).
// REQUIRES: kCrc32cInlineHardware.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint32_t Crc32cShortHardware(
    const std::byte* data, size_t size) noexcept {
  uint64_t crc = 0xFFFFFFFFu;
  while (size >= 8) {
    uint64_t v;
    std::memcpy(&v, data, 8);
    __asm__("crc32q %1, %0" : "+r"(crc) : "rm"(v));
    data += 8;
    size -= 8;
  }
  auto crc32 = static_cast<uint32_t>(crc);
  if (size >= 4) {
    uint32_t v;
    std::memcpy(&v, data, 4);
    __asm__("crc32l %1, %0" : "+r"(crc32) : "rm"(v));
    data += 4;
    size -= 4;
  }
  if (size >= 2) {
    uint16_t v;
    std::memcpy(&v, data, 2);
    __asm__("crc32w %1, %0" : "+r"(crc32) : "rm"(v));
    data += 2;
    size -= 2;
  }
  if (size != 0) {
    const auto v = static_cast<uint8_t>(*data);
    __asm__("crc32b %1, %0" : "+r"(crc32) : "rm"(v));
  }
  return ~crc32;
}
#endif

// Crc32cShort
// Crc32c(data, size), inlined for the hardware path.
inline uint32_t Crc32cShort(const std::byte* data, size_t size) noexcept {
#ifdef SYMWIRE_HAS_INLINE_CRC32C
  if (SYMWIRE_LIKELY(kCrc32cInlineHardware)) {
    return Crc32cShortHardware(data, size);
  }
#endif
  return Crc32c(absl::Span<const std::byte>(data, size));
}

}  // namespace symwire::detail

#endif  // SYMWIRE_WIRE_DETAIL_CRC32C_SHORT_HPP_
