// File: tests/support/bytes.hpp
// Test support: small builders for byte strings written by hand from
// SPEC.md (hex literals, text, concatenation, big-endian integers, a header
// with its CRC32C appended). Namespace symwire::testing.
#ifndef SYMWIRE_TESTS_SUPPORT_BYTES_HPP_
#define SYMWIRE_TESTS_SUPPORT_BYTES_HPP_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "absl/strings/string_view.h"
#include "symwire/wire/crc32c.hpp"

namespace symwire::testing {

using Bytes = std::vector<std::byte>;

// B({0x0a, 0x01}): bytes from integer literals.
inline Bytes B(std::initializer_list<int> values) {
  Bytes out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

// The bytes of a string.
inline Bytes Str(absl::string_view s) {
  Bytes out;
  for (char c : s) out.push_back(static_cast<std::byte>(c));
  return out;
}

// The concatenation of `parts`.
inline Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// `n` bytes of `value`.
inline Bytes Repeat(int value, size_t n) {
  return Bytes(n, static_cast<std::byte>(value));
}

inline Bytes BigEndian32(uint32_t v) {
  Bytes out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::byte>((v >> shift) & 0xFF));
  }
  return out;
}

inline Bytes BigEndian64(uint64_t v) {
  Bytes out;
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::byte>((v >> shift) & 0xFF));
  }
  return out;
}

// `header` followed by the big-endian CRC32C of all of it (SPEC.md §4 row
// 8: every header byte before the CRC, header_length's own bytes included).
inline Bytes WithCrc(Bytes header) {
  const Bytes crc = BigEndian32(Crc32c(header));
  header.insert(header.end(), crc.begin(), crc.end());
  return header;
}

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTS_SUPPORT_BYTES_HPP_
