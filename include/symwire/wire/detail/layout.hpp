// File: symwire/wire/detail/layout.hpp
// Layer 1 internals: big-endian loads and stores of the fixed-width fields
// (header CRC, payload checksum) through Boost.Endian, which compiles to a
// single unaligned load/store plus bswap. Internal; not for users.
#ifndef SYMWIRE_WIRE_DETAIL_LAYOUT_HPP_
#define SYMWIRE_WIRE_DETAIL_LAYOUT_HPP_

#include <boost/endian/conversion.hpp>
#include <cstddef>
#include <cstdint>

namespace symwire::detail {

inline const unsigned char* AsUChars(const std::byte* p) noexcept {
  return reinterpret_cast<const unsigned char*>(p);
}
inline unsigned char* AsUChars(std::byte* p) noexcept {
  return reinterpret_cast<unsigned char*>(p);
}

inline uint16_t LoadBig16(const std::byte* p) noexcept {
  return boost::endian::load_big_u16(AsUChars(p));
}
inline uint32_t LoadBig32(const std::byte* p) noexcept {
  return boost::endian::load_big_u32(AsUChars(p));
}
inline uint64_t LoadBig64(const std::byte* p) noexcept {
  return boost::endian::load_big_u64(AsUChars(p));
}
inline void StoreBig16(std::byte* p, uint16_t v) noexcept {
  boost::endian::store_big_u16(AsUChars(p), v);
}
inline void StoreBig32(std::byte* p, uint32_t v) noexcept {
  boost::endian::store_big_u32(AsUChars(p), v);
}
inline void StoreBig64(std::byte* p, uint64_t v) noexcept {
  boost::endian::store_big_u64(AsUChars(p), v);
}

}  // namespace symwire::detail

#endif  // SYMWIRE_WIRE_DETAIL_LAYOUT_HPP_
