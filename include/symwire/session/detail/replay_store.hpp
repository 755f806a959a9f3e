// File: symwire/session/detail/replay_store.hpp
// Layer 2 helper. ReplayStore: the bytes of the session's encoded sequenced
// frames, from the oldest unacknowledged one (SPEC.md §14.2), addressed by
// absolute positions that never decrease.
//
// Blocks, not one vector. A frame is encoded into the store once and sent
// from there (the only copy on the send side); it lives until acknowledged.
// A single vector has to be compacted as acks free its front, and every
// compaction moves the live bytes: at 16 KiB payloads that was a second
// memcpy of most bytes sent. Here a frame is appended to the newest block
// (or a new block when it does not fit), and freeing is dropping whole
// blocks whose bytes are all dead. Nothing is ever moved; memory is the live
// bytes plus at most one partly dead block at each end.
//
// Freed blocks go to BlockCache, a small process-wide cache (lock-free),
// not back to malloc: glibc hands a 256 KiB chunk back to the kernel (heap trim
// or munmap) and the next block then page-faults on every 4 KiB page it is
// written through; at 16 KiB payloads those faults were 6-8 % of the
// sender's CPU. A block returns to the cache when its last reference goes,
// the store's or a driver's (see Contiguous), on whatever thread that is.
//
// Referenced payloads (SharedPayload). AppendShared stores a reference to
// bytes the caller guarantees immutable instead of a copy: the frame is then
// three pieces, its header (copied into the block), the referenced payload
// and its trailer (copied into the same block, right after the header: the
// block is shared by the pieces around the reference). The store is a list
// of pieces, each one contiguous span of positions in a block or in a
// referenced buffer; a piece holds a reference to what it points into.
//
// Positions are contiguous across pieces (a block's unused tail takes no
// position), so "end() - pos" is the exact byte count of frames from pos,
// referenced bytes included.
//
// Pieces are shared: Contiguous() can hand out the reference of the piece,
// so a driver may write stored bytes without copying them, and the bytes
// stay valid (and unchanged: stored frames are never rewritten) while it
// holds the reference, even if the session drops the piece meanwhile.
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_
#define SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <memory>
#include <utility>

#include "absl/types/span.h"
#include "symwire/config.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace symwire::detail {

// PrefaultForWrite
// Asks the kernel to map every whole page of [p, p + n) now, in one call
// (Linux's MADV_POPULATE_WRITE; elsewhere, or on a kernel without it,
// nothing happens). For a block a busy sender is about to write through:
// every page would fault anyway, and one page fault at a time cost 11-12
// us per 4 KiB page on the 2-vCPU VMs we measure on (an 8 MiB buffer
// touched page by page), against 0.9 us per page populated in one call;
// the faults of new 256 KiB blocks were part of the stall of a fresh
// connection's first 16 KiB tasks (bench/README.md, "Page faults").
// Pages already mapped (memory malloc kept) cost only the page-table walk.
// Returns true when the kernel populated the range (false: not Linux, a
// kernel without MADV_POPULATE_WRITE, or no whole page in the range).
inline bool PrefaultForWrite(void* p, size_t n) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  constexpr size_t kPage = 4096;
  // The whole pages: from the first page boundary at or after p.
  const size_t lead = (kPage - reinterpret_cast<uintptr_t>(p) % kPage) % kPage;
  if (n <= lead) return false;
  const size_t length = (n - lead) / kPage * kPage;
  if (length == 0) return false;
  // Failure (an old kernel: EINVAL) only means the pages fault later.
  return madvise(static_cast<std::byte*>(p) + lead, length,
                 MADV_POPULATE_WRITE) == 0;
#else
  static_cast<void>(p);
  static_cast<void>(n);
  return false;
#endif
}

// BlockCache
// Free blocks of kBytes, at most kMaxBlocks of them (4 MiB) for the whole
// process. Thread-safe without a lock (layer 2 takes no mutex): each of
// kMaxBlocks slots holds one free block or none, and a block changes hands
// by an atomic exchange of its slot. Blocks are given to the lowest empty
// slot and taken from the highest full one, so on one thread the block
// freed last is reused first (still warm in cache). Sessions on many
// threads share it, and a driver may drop a block's last reference
// anywhere. Under AddressSanitizer it caches nothing, so a use of a freed
// block is still caught.
class BlockCache {
 public:
  static constexpr size_t kBytes = size_t{256} * 1024;
  static constexpr size_t kMaxBlocks = 16;
#if defined(__SANITIZE_ADDRESS__)
  static constexpr bool kEnabled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  static constexpr bool kEnabled = false;
#else
  static constexpr bool kEnabled = true;
#endif
#else
  static constexpr bool kEnabled = true;
#endif

  // Never destroyed (a session may outlive static destructors); the
  // blocks it holds at exit stay reachable.
  static BlockCache& Instance() {
    static BlockCache* const cache = new BlockCache;
    return *cache;
  }

  // A block of kBytes, shared; it comes back here when the last copy of
  // the pointer goes. Not value-initialised: the encoder writes every byte
  // it appends. `populate`: a block fresh from the heap is populated at
  // once (PrefaultForWrite); a cached one is already.
  std::shared_ptr<std::byte> Take(bool populate) {
    std::byte* block = nullptr;
    for (size_t i = kMaxBlocks; i-- > 0 && block == nullptr;) {
      if (slots_[i].load(std::memory_order_relaxed) != nullptr) {
        block = slots_[i].exchange(nullptr, std::memory_order_acquire);
      }
    }
    if (block == nullptr) {
      block = new std::byte[kBytes];
      if (populate) static_cast<void>(PrefaultForWrite(block, kBytes));
    }
    return std::shared_ptr<std::byte>(
        block, [](std::byte* b) { BlockCache::Instance().Give(b); });
  }

  // The number of blocks cached now (tests; a snapshot).
  size_t size() const {
    size_t n = 0;
    for (const std::atomic<std::byte*>& slot : slots_) {
      if (slot.load(std::memory_order_relaxed) != nullptr) ++n;
    }
    return n;
  }

 private:
  BlockCache() = default;

  void Give(std::byte* block) {
    if (kEnabled) {
      for (std::atomic<std::byte*>& slot : slots_) {
        std::byte* empty = nullptr;
        if (slot.load(std::memory_order_relaxed) == nullptr &&
            slot.compare_exchange_strong(empty, block,
                                         std::memory_order_release,
                                         std::memory_order_relaxed)) {
          return;
        }
      }
    }
    delete[] block;
  }

  std::array<std::atomic<std::byte*>, kMaxBlocks> slots_{};
};

class ReplayStore {
 public:
  // kBlockBytes: the usual block. A larger frame gets a block of its own.
  static constexpr size_t kBlockBytes = BlockCache::kBytes;

  // begin(): the first position still stored; end(): the next position.
  uint64_t begin() const {
    return pieces_.empty() ? end_ : pieces_.front().base;
  }
  uint64_t end() const { return end_; }
  bool empty() const { return pieces_.empty(); }

  // Append: `size` writable bytes at position end() (before the call); they
  // stay at that address until dropped.
  absl::Span<std::byte> Append(size_t size) {
    if (!block_ || block_cap_ - block_used_ < size) NewBlock(size);
    std::byte* p = block_.get() + block_used_;
    block_used_ += size;
    // Extends the last piece when it ends right here in the same block.
    if (tail_open_) {
      SYMWIRE_ASSERT(pieces_.back().in_block &&
                     pieces_.back().owner == block_ &&
                     pieces_.back().data + pieces_.back().size == p);
      pieces_.back().size += size;
    } else {
      pieces_.push_back(Piece{end_, p, size, block_, true});
      tail_open_ = true;
    }
    end_ += size;
    return {p, size};
  }

  // AppendShared: takes positions [end(), end() + bytes.size()) for
  // `bytes`, referenced, not copied. REQUIRES: `owner` keeps them valid and
  // unchanged for as long as it lives.
  void AppendShared(absl::Span<const std::byte> bytes,
                    std::shared_ptr<const void> owner) {
    if (bytes.empty()) return;
    tail_open_ = false;
    pieces_.push_back(
        Piece{end_, bytes.data(), bytes.size(), std::move(owner), false});
    end_ += bytes.size();
  }

  // Contiguous: the stored bytes from `pos` to the end of pos's piece (at
  // most to end()); empty when pos == end(). pos must be in
  // [begin(), end()]. With `owner`, also a reference that keeps them valid
  // when there are at least `min_owned` of them (else *owner is left as is).
  absl::Span<const std::byte> Contiguous(
      uint64_t pos, std::shared_ptr<const void>* owner = nullptr,
      size_t min_owned = 0) const {
    if (pieces_.empty() || pos < pieces_.front().base) return {};
    // The send position is nearly always in the newest piece; otherwise
    // (a replay after a resume walks the whole store, three pieces per
    // referenced frame) a binary search over the increasing bases, so a
    // replay costs O(pieces log pieces), not O(pieces^2).
    auto it = std::prev(pieces_.end());
    if (pos < it->base) {
      it = std::prev(std::upper_bound(
          pieces_.begin(), it, pos,
          [](uint64_t p, const Piece& piece) { return p < piece.base; }));
    }
    if (pos >= it->base + it->size) return {};
    const auto n = static_cast<size_t>(it->base + it->size - pos);
    if (owner != nullptr && n >= min_owned) *owner = it->owner;
    return {it->data + (pos - it->base), n};
  }

  // DropBefore: frees the pieces whose bytes all precede `pos` (a block
  // once no piece, and no holder of Contiguous's reference, uses it: a
  // usual-sized one goes to BlockCache, a larger one to the heap).
  void DropBefore(uint64_t pos) {
    while (!pieces_.empty() &&
           pieces_.front().base + pieces_.front().size <= pos) {
      pieces_.pop_front();
    }
    if (pieces_.empty()) tail_open_ = false;
  }

  // Clear: drops everything; positions restart at 0.
  void Clear() {
    pieces_.clear();
    tail_open_ = false;
    block_.reset();
    block_cap_ = 0;
    block_used_ = 0;
    end_ = 0;
  }

 private:
  struct Piece {
    uint64_t base = 0;
    const std::byte* data = nullptr;
    size_t size = 0;
    std::shared_ptr<const void> owner;  // the block or the payload's owner
    bool in_block = false;              // a store block (else referenced)
  };

  void NewBlock(size_t need) {
    tail_open_ = false;
    if (need <= kBlockBytes) {
      // Populated only once this store has filled a block: a bulk sender
      // writes the new one through within moments, while an idle or
      // lightly used session (thousands of them on a server) keeps only
      // the pages it has written resident.
      block_ = BlockCache::Instance().Take(/*populate=*/block_ != nullptr);
      block_cap_ = kBlockBytes;
    } else {
      block_cap_ = need;
      // Not value-initialised: the encoder writes every byte it appends.
      block_ = std::shared_ptr<std::byte>(new std::byte[block_cap_],
                                          std::default_delete<std::byte[]>());
      // The frame fills it at once.
      static_cast<void>(PrefaultForWrite(block_.get(), block_cap_));
    }
    block_used_ = 0;
  }

  std::deque<Piece> pieces_;
  std::shared_ptr<std::byte> block_;  // the block Append fills
  size_t block_cap_ = 0;
  size_t block_used_ = 0;
  uint64_t end_ = 0;
  // The last piece is block_'s and ends at block_used_: Append extends it.
  bool tail_open_ = false;
};

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_
