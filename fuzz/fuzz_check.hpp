// File: fuzz/fuzz_check.hpp
// Helpers shared by the fuzz targets (not part of the library): a check
// macro that reports the broken invariant and traps, so libFuzzer (and the
// replay main under g++) stop on it like on a sanitizer report, and a
// small reader that turns fuzzer bytes into structured values.
#ifndef SYMWIRE_FUZZ_FUZZ_CHECK_HPP_
#define SYMWIRE_FUZZ_FUZZ_CHECK_HPP_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace symwire::fuzz {

// Prints the failed invariant and traps. Not an assert: it is active in
// every build type (the fuzz preset is RelWithDebInfo, i.e. NDEBUG).
[[noreturn]] inline void CheckFailed(const char* expr, const char* file,
                                     int line, const std::string& detail) {
  std::fprintf(stderr, "symwire fuzz invariant failed: %s\n  at %s:%d\n", expr,
               file, line);
  if (!detail.empty()) std::fprintf(stderr, "  %s\n", detail.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

}  // namespace symwire::fuzz

#define FUZZ_CHECK(cond)                                         \
  (__builtin_expect(static_cast<bool>(cond), 1)                  \
       ? static_cast<void>(0)                                    \
       : ::symwire::fuzz::CheckFailed(#cond, __FILE__, __LINE__, \
                                      std::string()))
// FUZZ_CHECK_MSG(cond, detail): `detail` (a std::string expression) is
// evaluated only on failure.
#define FUZZ_CHECK_MSG(cond, detail)            \
  (__builtin_expect(static_cast<bool>(cond), 1) \
       ? static_cast<void>(0)                   \
       : ::symwire::fuzz::CheckFailed(#cond, __FILE__, __LINE__, (detail)))

namespace symwire::fuzz {

// True if SYMWIRE_FUZZ_VERBOSE is set: the targets then print what each
// input did (for reading a finding or a seed with the replay binary).
inline bool Verbose() {
  static const bool verbose = std::getenv("SYMWIRE_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

inline absl::Span<const std::byte> AsBytes(const uint8_t* data, size_t size) {
  return absl::Span<const std::byte>(reinterpret_cast<const std::byte*>(data),
                                     size);
}

// ByteReader
// Consumes fuzzer bytes front to back. Reading past the end yields zeros
// (never fails), so every input maps to some structured value and short
// inputs still exercise the common paths.
class ByteReader {
 public:
  explicit ByteReader(absl::Span<const std::byte> data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return remaining() == 0; }

  uint8_t U8() {
    if (pos_ >= data_.size()) return 0;
    return static_cast<uint8_t>(data_[pos_++]);
  }
  bool Bool() { return (U8() & 1) != 0; }
  // Big-endian, `n` <= 8 bytes.
  uint64_t UBig(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | U8();
    return v;
  }
  uint16_t U16() { return static_cast<uint16_t>(UBig(2)); }
  uint32_t U32() { return static_cast<uint32_t>(UBig(4)); }
  uint64_t U64() { return UBig(8); }
  // A value in [0, bound], bound < 2^32, from as few bytes as needed.
  uint32_t Below(uint32_t bound) {
    if (bound == 0) return 0;
    const size_t n = bound < 0x100 ? 1 : bound < 0x10000 ? 2 : 4;
    return static_cast<uint32_t>(UBig(n) % (uint64_t{bound} + 1));
  }
  // Up to `max` bytes (fewer if the input ends), as a view into the input.
  absl::Span<const std::byte> Bytes(size_t max) {
    const size_t n = max < remaining() ? max : remaining();
    absl::Span<const std::byte> out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  // A length-prefixed byte string (one length byte, scaled by `unit`).
  absl::Span<const std::byte> ShortBytes(size_t unit = 1) {
    return Bytes(size_t{U8()} * unit);
  }
  absl::Span<const std::byte> Rest() { return Bytes(remaining()); }

 private:
  absl::Span<const std::byte> data_;
  size_t pos_ = 0;
};

inline absl::string_view AsStringView(absl::Span<const std::byte> bytes) {
  return absl::string_view(reinterpret_cast<const char*>(bytes.data()),
                           bytes.size());
}

inline std::string HexOf(absl::Span<const std::byte> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 3);
  for (std::byte b : bytes) {
    const auto v = static_cast<unsigned>(b);
    if (!out.empty()) out.push_back(' ');
    out.push_back(kDigits[v >> 4]);
    out.push_back(kDigits[v & 15]);
  }
  return out;
}

inline std::string StatusText(const absl::Status& s) { return s.ToString(); }

// Chunker
// Chunk sizes for feeding a stream, chosen by one fuzzer byte: 0 = whole,
// 1..127 = fixed chunks of that size, 128..255 = pseudo-random sizes in
// 1..(split & 127) + 1 (xorshift32 seeded by the byte; Rand() exposes it).
class Chunker {
 public:
  explicit Chunker(uint8_t split)
      : split_(split), state_(split * 0x9E3779B9u + 1) {}
  size_t Next(size_t left) {
    size_t n = left;
    if (split_ >= 1 && split_ < 128) {
      n = split_;
    } else if (split_ >= 128) {
      n = 1 + Rand() % ((split_ & 127u) + 1u);
    }
    return std::min(n, left);
  }
  uint32_t Rand() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }

 private:
  uint8_t split_;
  uint32_t state_;
};

}  // namespace symwire::fuzz

#endif  // SYMWIRE_FUZZ_FUZZ_CHECK_HPP_
