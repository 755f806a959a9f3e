// File: symwire/detail/hash.hpp
// Layer 1 helper. The only header that includes xxhash.h. XXH3 is compiled
// inline (XXH_INLINE_ALL): Debian's shared libxxhash is several times slower
// at 16 KiB than the inline build, and inlining lets the compiler keep the
// hash loop in the decoder's frame. Users never include this directly.
//
// Runtime dispatch to AVX-512 or AVX2. The inline build uses what the
// compiler may assume, on x86-64 without -march flags only SSE2: 16 KiB
// hashed at about 16 GB/s, about 1 µs per frame on each side (the
// receiver's largest cost at 16 KiB, bench/README.md). Where the compiler
// targets x86-64 below AVX2, xxhash.h also compiles its AVX2 and AVX-512
// loops (XXH_DISPATCH_AVX2 / _AVX512, the mechanism of its own
// xxh_x86dispatch.c, which prefers AVX-512 the same way) under target
// attributes, and inputs past XXH3's mid-size range (240 bytes) use the
// widest the CPU has (16 KiB on an AMD EPYC VM: SSE2 ~16 GB/s, AVX2 ~47,
// AVX-512 ~64). Same function, same result (tests/wire/hash_test.cpp
// checks every path against the reference values); shorter inputs never
// reach the vector loop.
#ifndef SYMWIRE_DETAIL_HASH_HPP_
#define SYMWIRE_DETAIL_HASH_HPP_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

// (Only if this translation unit has not compiled xxhash.h's inline
// implementation already, with other settings.)
#if defined(__x86_64__) && !defined(__AVX2__) && \
    (defined(__GNUC__) || defined(__clang__)) && \
    !defined(XXH_INLINE_ALL_31684351384) && !defined(XXH_ACC_ALIGN)
#define SYMWIRE_XXH3_AVX2_DISPATCH 1
#define XXH_DISPATCH_AVX2 1
#define XXH_DISPATCH_AVX512 1
#define XXH_TARGET_AVX2 __attribute__((__target__("avx2")))
#define XXH_TARGET_AVX512 __attribute__((__target__("avx512f")))
// The accumulator is loaded with aligned 512-bit loads (SSE2's own
// setting would be 16).
#define XXH_ACC_ALIGN 64
// g++ 12's avx512fintrin.h makes its "undefined" vectors by self-
// initialisation (`__m512i __Y = __Y;`), which -W(maybe-)uninitialized
// reports wherever the intrinsics are inlined (GCC bug 105593, fixed in
// 13): not a use of an uninitialised value of ours.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define SYMWIRE_POP_XXH_DIAGNOSTIC_ 1
#endif
#include <immintrin.h>  // the vector types, declared whatever the target
#else
#define SYMWIRE_XXH3_AVX2_DISPATCH 0
#endif

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#define SYMWIRE_DEFINED_XXH_INLINE_ALL_
#endif
#include <xxhash.h>
#ifdef SYMWIRE_DEFINED_XXH_INLINE_ALL_
#undef XXH_INLINE_ALL
#undef SYMWIRE_DEFINED_XXH_INLINE_ALL_
#endif
#ifdef SYMWIRE_POP_XXH_DIAGNOSTIC_
#pragma GCC diagnostic pop
#undef SYMWIRE_POP_XXH_DIAGNOSTIC_
#endif

namespace symwire::detail {

// Xxh3Hash64Portable
// XXH3_64bits as compiled for the target the compiler assumes.
inline uint64_t Xxh3Hash64Portable(absl::Span<const std::byte> data) noexcept {
  return XXH3_64bits(data.data(), data.size());
}

#if SYMWIRE_XXH3_AVX2_DISPATCH
// Xxh3HashLongAvx2
// XXH3_64bits (seed 0, the default secret) of an input longer than
// XXH3_MIDSIZE_MAX, with the AVX2 loop. REQUIRES: the CPU has AVX2.
XXH_TARGET_AVX2 inline uint64_t Xxh3HashLongAvx2(
    absl::Span<const std::byte> data) noexcept {
  return XXH3_hashLong_64b_internal(
      data.data(), data.size(), XXH3_kSecret, sizeof(XXH3_kSecret),
      XXH3_accumulate_512_avx2, XXH3_scrambleAcc_avx2);
}

// Xxh3HashLongAvx512: the same with the AVX-512 loop. REQUIRES: the CPU
// has AVX-512F.
XXH_TARGET_AVX512 inline uint64_t Xxh3HashLongAvx512(
    absl::Span<const std::byte> data) noexcept {
  return XXH3_hashLong_64b_internal(
      data.data(), data.size(), XXH3_kSecret, sizeof(XXH3_kSecret),
      XXH3_accumulate_512_avx512, XXH3_scrambleAcc_avx512);
}

// CpuVectorLevel: 0 (neither), 1 (AVX2), 2 (AVX-512F); read once.
inline int CpuVectorLevel() noexcept {
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") != 0) return 2;
    return __builtin_cpu_supports("avx2") != 0 ? 1 : 0;
  }();
  return level;
}
inline bool CpuHasAvx2() noexcept { return CpuVectorLevel() >= 1; }
inline bool CpuHasAvx512() noexcept { return CpuVectorLevel() >= 2; }
#endif

// Xxh3Hash64
// XXH3_64bits(data, seed 0): the payload checksum of SPEC.md §6.
// Xxh3Hash64({}) == 0x2D06800538D394C2. Thread-safe; does not allocate.
inline uint64_t Xxh3Hash64(absl::Span<const std::byte> data) noexcept {
#if SYMWIRE_XXH3_AVX2_DISPATCH
  if (data.size() > XXH3_MIDSIZE_MAX) {
    const int level = CpuVectorLevel();
    if (level == 2) return Xxh3HashLongAvx512(data);
    if (level == 1) return Xxh3HashLongAvx2(data);
  }
#endif
  return Xxh3Hash64Portable(data);
}

}  // namespace symwire::detail

#endif  // SYMWIRE_DETAIL_HASH_HPP_
