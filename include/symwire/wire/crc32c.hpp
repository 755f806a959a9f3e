// File: symwire/wire/crc32c.hpp
// Layer 1 (frame codec). CRC32C (Castagnoli; SPEC.md §6), the checksum of
// every frame header. A hardware path (SSE4.2 crc32 instruction, three
// interleaved streams for long inputs) is chosen at run time when the CPU
// has it; otherwise a portable slicing-by-8 table implementation runs.
// All functions are thread-safe and do not allocate.
#ifndef SYMWIRE_WIRE_CRC32C_HPP_
#define SYMWIRE_WIRE_CRC32C_HPP_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "symwire/config.hpp"

namespace symwire {

// Crc32cExtend
// Continues a CRC32C: Crc32cExtend(Crc32c(a), b) == Crc32c(a ++ b).
// `crc` is a finished CRC value (as returned by Crc32c); start with 0.
SYMWIRE_DECL uint32_t Crc32cExtend(uint32_t crc,
                                   absl::Span<const std::byte> data) noexcept;

// Crc32c
// The CRC32C of `data`. Crc32c("123456789") == 0xE3069283.
inline uint32_t Crc32c(absl::Span<const std::byte> data) noexcept {
  return Crc32cExtend(0, data);
}

namespace detail {
// The two implementations, exposed so tests and benchmarks can compare them.
SYMWIRE_DECL uint32_t
Crc32cExtendPortable(uint32_t crc, absl::Span<const std::byte> data) noexcept;
// Crc32cExtendHardware
// The SSE4.2 path. REQUIRES on x86-64: Crc32cHardwareAvailable() (checked;
// aborts otherwise). On other targets it runs the portable path.
SYMWIRE_DECL uint32_t
Crc32cExtendHardware(uint32_t crc, absl::Span<const std::byte> data) noexcept;
// Crc32cHardwareAvailable
// True if this CPU has the SSE4.2 crc32 instruction (checked once, on first
// call; always false off x86-64).
SYMWIRE_DECL bool Crc32cHardwareAvailable() noexcept;
}  // namespace detail

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/wire/impl/crc32c.ipp"
#endif

#endif  // SYMWIRE_WIRE_CRC32C_HPP_
