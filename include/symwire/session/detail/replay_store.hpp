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
// (or a new block when it does not fit: frames never straddle blocks, so
// each is one contiguous span), and freeing is dropping whole blocks whose
// bytes are all dead. Nothing is ever moved; memory is the live bytes plus
// at most one partly dead block at each end, plus one spare block kept for
// reuse so that a steady stream allocates nothing.
//
// Positions are contiguous across blocks (a block's unused tail takes no
// position), so "end() - pos" is the exact byte count of frames from pos.
//
// Blocks are shared: Contiguous() can hand out a reference to the block, so
// a driver may write stored bytes without copying them, and the bytes stay
// valid (and unchanged: stored frames are never rewritten) while it holds
// the reference, even if the session drops the block meanwhile. A block
// still referenced is not reused as the spare.
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_
#define SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>

#include "absl/types/span.h"
#include "symwire/config.hpp"

namespace symwire::detail {

class ReplayStore {
 public:
  // kBlockBytes: the usual block. A larger frame gets a block of its own.
  static constexpr size_t kBlockBytes = size_t{256} * 1024;

  // begin(): the first position still stored; end(): the next position.
  uint64_t begin() const {
    return blocks_.empty() ? end_ : blocks_.front().base;
  }
  uint64_t end() const { return end_; }
  bool empty() const { return blocks_.empty(); }

  // Append: `size` writable bytes at position end() (before the call); they
  // stay at that address until dropped.
  absl::Span<std::byte> Append(size_t size) {
    if (blocks_.empty() || blocks_.back().cap - blocks_.back().size < size) {
      NewBlock(size);
    }
    Block& b = blocks_.back();
    std::byte* p = b.data.get() + b.size;
    b.size += size;
    end_ += size;
    return {p, size};
  }

  // Contiguous: the stored bytes from `pos` to the end of pos's block (at
  // most to end()); empty when pos == end(). pos must be in
  // [begin(), end()]. With `owner`, also a reference that keeps them valid
  // when there are at least `min_owned` of them (else *owner is left as is).
  absl::Span<const std::byte> Contiguous(
      uint64_t pos, std::shared_ptr<const void>* owner = nullptr,
      size_t min_owned = 0) const {
    // From the newest block: the send position is nearly always there.
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
      if (pos >= it->base) {
        if (pos >= it->base + it->size) return {};
        const auto n = static_cast<size_t>(it->base + it->size - pos);
        if (owner != nullptr && n >= min_owned) *owner = it->data;
        return {it->data.get() + (pos - it->base), n};
      }
    }
    return {};
  }

  // DropBefore: frees the blocks whose bytes all precede `pos`.
  void DropBefore(uint64_t pos) {
    while (!blocks_.empty() &&
           blocks_.front().base + blocks_.front().size <= pos) {
      Block b = std::move(blocks_.front());
      blocks_.pop_front();
      if (b.cap == kBlockBytes && !spare_.data && b.data.use_count() == 1) {
        spare_ = std::move(b);
      }
    }
  }

  // Clear: drops everything; positions restart at 0.
  void Clear() {
    blocks_.clear();
    end_ = 0;
  }

 private:
  struct Block {
    uint64_t base = 0;
    size_t size = 0;
    size_t cap = 0;
    std::shared_ptr<std::byte[]> data;
  };

  void NewBlock(size_t need) {
    Block b;
    // The spare may have been handed out since it was kept.
    if (spare_.data && spare_.data.use_count() != 1) spare_ = Block{};
    if (need <= kBlockBytes && spare_.data) {
      b = std::move(spare_);
      spare_ = Block{};
    } else {
      b.cap = std::max(need, kBlockBytes);
      // Not value-initialised: the encoder writes every byte it appends.
      b.data.reset(new std::byte[b.cap]);
    }
    b.base = end_;
    b.size = 0;
    blocks_.push_back(std::move(b));
  }

  std::deque<Block> blocks_;
  Block spare_;
  uint64_t end_ = 0;
};

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_
