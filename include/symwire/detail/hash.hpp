// File: symwire/detail/hash.hpp
// Layer 1 helper. The only header that includes xxhash.h. XXH3 is compiled
// inline (XXH_INLINE_ALL): Debian's shared libxxhash is several times slower
// at 16 KiB than the inline build, and inlining lets the compiler keep the
// hash loop in the decoder's frame. Users never include this directly.
#ifndef SYMWIRE_DETAIL_HASH_HPP_
#define SYMWIRE_DETAIL_HASH_HPP_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#define SYMWIRE_DEFINED_XXH_INLINE_ALL_
#endif
#include <xxhash.h>
#ifdef SYMWIRE_DEFINED_XXH_INLINE_ALL_
#undef XXH_INLINE_ALL
#undef SYMWIRE_DEFINED_XXH_INLINE_ALL_
#endif

namespace symwire::detail {

// Xxh3Hash64
// XXH3_64bits(data, seed 0): the payload checksum of SPEC.md §6.
// Xxh3Hash64({}) == 0x2D06800538D394C2. Thread-safe; does not allocate.
inline uint64_t Xxh3Hash64(absl::Span<const std::byte> data) noexcept {
  return XXH3_64bits(data.data(), data.size());
}

}  // namespace symwire::detail

#endif  // SYMWIRE_DETAIL_HASH_HPP_
