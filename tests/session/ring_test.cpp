// File: tests/session/ring_test.cpp
// Tests for session/detail/ring.hpp, the FIFO of the session's replay
// entries: order across growth with the head anywhere in the array, a
// model check against std::deque over random pushes and pops, clear, and
// moves.
#include "symwire/session/detail/ring.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <utility>

namespace symwire::detail {
namespace {

struct Entry {
  uint64_t seq;
  uint32_t size;
};

TEST_CASE("ring: grows with the head in the middle and keeps the order",
          "[session][ring]") {
  Ring<Entry> r;
  CHECK(r.empty());
  // Move the head to the middle of the first array, then fill past it.
  for (uint64_t i = 0; i < 40; ++i) r.push_back({i, 1});
  for (int i = 0; i < 30; ++i) r.pop_front();
  for (uint64_t i = 40; i < 1000; ++i) r.push_back({i, 1});
  REQUIRE(r.size() == 970);
  for (size_t i = 0; i < r.size(); ++i) REQUIRE(r[i].seq == 30 + i);
  for (uint64_t want = 30; want < 1000; ++want) {
    REQUIRE(r.front().seq == want);
    r.pop_front();
  }
  CHECK(r.empty());
}

TEST_CASE("ring: model check against std::deque", "[session][ring]") {
  std::mt19937_64 rng(7);
  Ring<Entry> r;
  std::deque<Entry> model;
  uint64_t next = 0;
  for (int step = 0; step < 200000; ++step) {
    const unsigned op = static_cast<unsigned>(rng() % 100);
    if (op < 55) {
      const Entry e{next++, static_cast<uint32_t>(rng())};
      r.push_back(e);
      model.push_back(e);
    } else if (op < 99) {
      if (!model.empty()) {
        REQUIRE(r.front().seq == model.front().seq);
        REQUIRE(r.front().size == model.front().size);
        r.pop_front();
        model.pop_front();
      }
    } else {
      r.clear();
      model.clear();
    }
    REQUIRE(r.size() == model.size());
    REQUIRE(r.empty() == model.empty());
  }
  CHECK(next > 100000);
}

TEST_CASE("ring: a moved ring keeps its entries, the source is empty",
          "[session][ring]") {
  Ring<Entry> a;
  for (uint64_t i = 0; i < 100; ++i) a.push_back({i, 2});
  Ring<Entry> b(std::move(a));
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state
  REQUIRE(b.size() == 100);
  CHECK(b.front().seq == 0);
  a.push_back({7, 7});  // usable again
  CHECK(a.front().seq == 7);
  a = std::move(b);
  REQUIRE(a.size() == 100);
  CHECK(a[99].seq == 99);
}

}  // namespace
}  // namespace symwire::detail
