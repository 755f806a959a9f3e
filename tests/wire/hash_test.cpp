// File: tests/wire/hash_test.cpp
// Tests for detail/hash.hpp: Xxh3Hash64 against XXH3_64bits values
// computed by Debian's python3-xxhash (libxxhash, a separate build of the
// reference), on each of its paths where the build has several (the
// portable inline build and the AVX2 and AVX-512 loops chosen at run time,
// each where the CPU has it), at every size around
// the boundaries of XXH3's size classes, stripes and blocks.
#include "symwire/detail/hash.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace symwire::detail {
namespace {

std::vector<std::byte> Pattern(size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 131 % 251);
  return v;
}

TEST_CASE("xxh3: reference values", "[wire][hash]") {
  // /usr/bin/python3 -c "import xxhash; print(hex(xxhash.xxh3_64_intdigest(
  //     bytes((i * 131) % 251 for i in range(N)))))"
  struct Case {
    size_t size;
    uint64_t want;
  };
  const Case cases[] = {{241, 0x179ead905bf75a05u},
                        {1000, 0x6c2862d159774f7bu},
                        {16384, 0xc4ac2c861266151fu},
                        {100003, 0x7477bedb4e72225eu}};
  for (const Case& c : cases) {
    CAPTURE(c.size);
    const std::vector<std::byte> v = Pattern(c.size);
    CHECK(Xxh3Hash64(v) == c.want);
    CHECK(Xxh3Hash64Portable(v) == c.want);
#if SYMWIRE_XXH3_AVX2_DISPATCH
    if (CpuHasAvx2()) CHECK(Xxh3HashLongAvx2(v) == c.want);
    if (CpuHasAvx512()) CHECK(Xxh3HashLongAvx512(v) == c.want);
#endif
  }
  CHECK(Xxh3Hash64({}) == 0x2D06800538D394C2u);
}

TEST_CASE("xxh3: the dispatched path equals the portable one", "[wire][hash]") {
  std::mt19937_64 rng(7);
  std::vector<std::byte> data(70000);
  for (std::byte& b : data) b = static_cast<std::byte>(rng());
  // Every size up to past two 1 KiB blocks (stripes of 64 bytes, the last
  // partial stripe, the mid-size boundary at 240), then random ones, at
  // unaligned offsets.
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 2200; ++n) sizes.push_back(n);
  for (int i = 0; i < 300; ++i) sizes.push_back(rng() % 65000);
  for (size_t n : sizes) {
    const size_t offset = n % 7;
    const absl::Span<const std::byte> in(data.data() + offset, n);
    const uint64_t portable = Xxh3Hash64Portable(in);
    if (Xxh3Hash64(in) != portable) FAIL("size " << n);
#if SYMWIRE_XXH3_AVX2_DISPATCH
    if (n > XXH3_MIDSIZE_MAX && CpuHasAvx2() &&
        Xxh3HashLongAvx2(in) != portable) {
      FAIL("AVX2, size " << n);
    }
    if (n > XXH3_MIDSIZE_MAX && CpuHasAvx512() &&
        Xxh3HashLongAvx512(in) != portable) {
      FAIL("AVX-512, size " << n);
    }
#endif
  }
  SUCCEED("sizes checked: " << sizes.size());
}

}  // namespace
}  // namespace symwire::detail
