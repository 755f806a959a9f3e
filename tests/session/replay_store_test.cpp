// File: tests/session/replay_store_test.cpp
// Tests for session/detail/replay_store.hpp, the session's block store of
// encoded sequenced frames: positions stay contiguous across blocks, a
// frame is never split, appended bytes never move while stored, dropping
// frees whole dead blocks only, a frame larger than a block gets its own,
// freed blocks are reused through BlockCache (never while a driver still
// holds one), new blocks are populated in one call (PrefaultForWrite, no
// page fault per page), and a model check against a plain byte vector over
// random appends (copied and referenced), sends and drops.
#include "symwire/session/detail/replay_store.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#include <sys/resource.h>
#endif

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <utility>
#include <vector>

namespace symwire::detail {
namespace {

constexpr size_t kBlock = ReplayStore::kBlockBytes;

void Fill(absl::Span<std::byte> out, uint64_t pos) {
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::byte>((pos + i) * 131 % 251);
  }
}

bool Holds(absl::Span<const std::byte> bytes, uint64_t pos) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != static_cast<std::byte>((pos + i) * 131 % 251)) {
      return false;
    }
  }
  return true;
}

TEST_CASE("replay store: positions, blocks, no straddling",
          "[session][replay_store]") {
  ReplayStore s;
  CHECK(s.empty());
  CHECK(s.begin() == 0);
  CHECK(s.end() == 0);
  CHECK(s.Contiguous(0).empty());

  // Fill most of a block, then a frame that does not fit starts a new one.
  absl::Span<std::byte> a = s.Append(kBlock - 100);
  Fill(a, 0);
  absl::Span<std::byte> b = s.Append(200);
  Fill(b, kBlock - 100);
  CHECK(s.end() == kBlock + 100);
  CHECK(s.begin() == 0);
  // Positions are contiguous; each block is one span.
  CHECK(s.Contiguous(0).size() == kBlock - 100);
  CHECK(s.Contiguous(10).size() == kBlock - 110);
  CHECK(s.Contiguous(kBlock - 100).size() == 200);
  CHECK(s.Contiguous(kBlock - 100).data() == b.data());
  CHECK(s.Contiguous(s.end()).empty());
  CHECK(Holds(s.Contiguous(0), 0));
  CHECK(Holds(s.Contiguous(kBlock - 100), kBlock - 100));
  // A reference to the block only for spans of at least min_owned bytes.
  std::shared_ptr<const void> owner;
  CHECK(s.Contiguous(kBlock - 100, &owner, 201).size() == 200);
  CHECK(owner == nullptr);
  CHECK(s.Contiguous(kBlock - 100, &owner, 200).size() == 200);
  CHECK(owner != nullptr);

  // Appending more never moves what is stored.
  const std::byte* before = s.Contiguous(0).data();
  for (int i = 0; i < 100; ++i) {
    const uint64_t pos = s.end();
    Fill(s.Append(5000), pos);
  }
  CHECK(s.Contiguous(0).data() == before);
  CHECK(Holds(s.Contiguous(0), 0));

  // Dropping frees only whole dead blocks.
  s.DropBefore(kBlock - 101);
  CHECK(s.begin() == 0);
  s.DropBefore(kBlock - 100);
  CHECK(s.begin() == kBlock - 100);
  CHECK(Holds(s.Contiguous(kBlock - 100), kBlock - 100));
  s.DropBefore(s.end());
  CHECK(s.empty());
  CHECK(s.begin() == s.end());

  s.Clear();
  CHECK(s.end() == 0);
}

TEST_CASE("replay store: a frame larger than a block gets its own",
          "[session][replay_store]") {
  ReplayStore s;
  Fill(s.Append(10), 0);
  absl::Span<std::byte> big = s.Append(3 * kBlock + 7);
  Fill(big, 10);
  absl::Span<std::byte> tail = s.Append(10);
  Fill(tail, 10 + 3 * kBlock + 7);
  CHECK(s.Contiguous(10).size() == 3 * kBlock + 7);
  CHECK(Holds(s.Contiguous(10), 10));
  CHECK(s.Contiguous(10 + 3 * kBlock + 7).size() == 10);
  s.DropBefore(10 + 3 * kBlock + 7);
  CHECK(s.begin() == 10 + 3 * kBlock + 7);
}

TEST_CASE("replay store: freed blocks are reused, held ones are not",
          "[session][replay_store]") {
  BlockCache& cache = BlockCache::Instance();
  if (!BlockCache::kEnabled) {
    // Under ASan nothing is cached, so a use after free stays visible.
    ReplayStore s;
    Fill(s.Append(kBlock), 0);
    Fill(s.Append(100), kBlock);
    s.Clear();
    CHECK(cache.size() == 0);
    return;
  }
  ReplayStore s;
  // Block A, then block B (A is full).
  Fill(s.Append(kBlock), 0);
  const std::byte* a = s.Contiguous(0).data();
  Fill(s.Append(100), kBlock);
  const std::byte* b = s.Contiguous(kBlock).data();
  REQUIRE(a != b);
  const size_t cached = cache.size();

  // A driver still writes from A: dropping A keeps it out of the cache.
  std::shared_ptr<const void> held;
  REQUIRE(s.Contiguous(0, &held).data() == a);
  s.DropBefore(kBlock);
  CHECK(cache.size() == cached);
  // Its last reference goes: A is cached, and the next block is A again,
  // page-faulted in already, not a fresh one from the heap.
  held.reset();
  CHECK(cache.size() == cached + 1);
  Fill(s.Append(kBlock), kBlock + 100);  // B is too full: a new block
  CHECK(s.Contiguous(kBlock + 100).data() == a);
  CHECK(Holds(s.Contiguous(kBlock + 100), kBlock + 100));
  CHECK(cache.size() == cached);

  // A frame larger than a block gets its own, which is not cached.
  Fill(s.Append(kBlock + 1), 2 * kBlock + 100);
  s.DropBefore(s.end());
  s.Clear();
  // A and B came back (the oversized block did not), at most kMaxBlocks.
  CHECK(cache.size() == std::min(cached + 2, BlockCache::kMaxBlocks));
}

#if defined(__linux__)
// Minor page faults of this process so far.
long MinorFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Writes one byte in every 512 of [p, p + n), as an encoder writes a
// block through. Not instrumented: under a sanitizer each write would first
// read its shadow memory, and those reads fault too.
__attribute__((no_sanitize("address", "thread"))) void WriteThrough(
    std::byte* p, size_t n) {
  for (size_t i = 0; i < n; i += 512) p[i] = std::byte{1};
}

TEST_CASE("replay store: a new block is populated in one call",
          "[session][replay_store]") {
  // Memory fresh from the kernel (an anonymous mapping, as glibc uses for
  // chunks this large), written through page by page as an encoder does.
  constexpr size_t kBytes = size_t{1} << 20;  // 256 pages
  for (const bool populate : {false, true}) {
    void* m = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    auto* p = static_cast<std::byte*>(m) + 16;  // unaligned, as new[] gives
    bool populated = false;
    if (populate) populated = PrefaultForWrite(p, kBytes - 16);
    const long before = MinorFaults();
    WriteThrough(p, kBytes - 16);
    const long faults = MinorFaults() - before;
    munmap(m, kBytes);
    INFO("populate " << populate << ": " << faults << " page faults");
    if (!populate) {
      // The control: the same writes fault page by page, so the check
      // below can fail (transparent huge pages would fault less).
      CHECK(faults >= 2);
    } else if (populated) {
      // Only the partial first page faults (the last page is whole here).
      CHECK(faults <= 1);
    } else {
      WARN("MADV_POPULATE_WRITE unavailable here: nothing to check");
    }
  }
  // Degenerate ranges: no whole page, nothing done.
  std::byte small[16];
  CHECK_FALSE(PrefaultForWrite(small, sizeof(small)));
  CHECK_FALSE(PrefaultForWrite(small, 0));
}
#endif

TEST_CASE("replay store: model check against a byte vector",
          "[session][replay_store]") {
  std::mt19937_64 rng(42);
  ReplayStore s;
  uint64_t sent = 0;
  uint64_t dropped = 0;
  std::deque<std::pair<uint64_t, size_t>> frames;  // live: pos, size
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      const size_t size = rng() % 4 == 0 ? 1 + rng() % 40000 : 1 + rng() % 300;
      if (rng() % 3 == 0) {
        // A referenced frame (SharedPayload): header in the block, the
        // payload referenced, trailer in the block after it. Appends after
        // it start a new piece; the three are checked as separate spans.
        const size_t header = 1 + rng() % 30;
        uint64_t pos = s.end();
        Fill(s.Append(header), pos);
        frames.emplace_back(pos, header);
        pos = s.end();
        auto payload = std::make_shared<std::vector<std::byte>>(size);
        Fill(absl::MakeSpan(*payload), pos);
        s.AppendShared(*payload, payload);
        frames.emplace_back(pos, size);
        pos = s.end();
        Fill(s.Append(8), pos);
        frames.emplace_back(pos, 8);
        continue;
      }
      const uint64_t pos = s.end();
      Fill(s.Append(size), pos);
      frames.emplace_back(pos, size);
    } else if (op < 8) {
      // "PollTransmit": everything unsent, block by block.
      while (sent < s.end()) {
        absl::Span<const std::byte> out = s.Contiguous(sent);
        REQUIRE(!out.empty());
        REQUIRE(Holds(out, sent));
        sent += out.size();
      }
    } else if (!frames.empty()) {
      // "Ack": free some sent frames from the front.
      size_t n = 1 + rng() % frames.size();
      while (n-- > 0 && !frames.empty() &&
             frames.front().first + frames.front().second <= sent) {
        dropped = frames.front().first + frames.front().second;
        frames.pop_front();
      }
      s.DropBefore(dropped);
      REQUIRE(s.begin() <= dropped);
      // Every live frame is still there, whole and in one span.
      for (const auto& [pos, size] : frames) {
        absl::Span<const std::byte> out = s.Contiguous(pos);
        REQUIRE(out.size() >= size);
        REQUIRE(Holds(out.subspan(0, size), pos));
      }
    }
  }
}

}  // namespace
}  // namespace symwire::detail
