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
// bytes plus at most one partly dead block at each end, plus one spare
// block kept for reuse so that a steady stream allocates nothing.
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
// holds the reference, even if the session drops the piece meanwhile. A
// block still referenced is not reused as the spare.
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_
#define SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
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
    Piece* last = pieces_.empty() ? nullptr : &pieces_.back();
    if (last != nullptr && last->in_block && last->owner == block_ &&
        last->data + last->size == p) {
      last->size += size;
    } else {
      pieces_.push_back(Piece{end_, p, size, block_cap_, block_, true});
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
    pieces_.push_back(
        Piece{end_, bytes.data(), bytes.size(), 0, std::move(owner), false});
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
  // once no piece, and no holder of Contiguous's reference, uses it).
  void DropBefore(uint64_t pos) {
    while (!pieces_.empty() &&
           pieces_.front().base + pieces_.front().size <= pos) {
      Piece p = std::move(pieces_.front());
      pieces_.pop_front();
      // The last user of a usual-sized block (not the one Append fills,
      // which block_ holds): keep it as the spare. An oversized block (one
      // large frame) is freed.
      if (p.in_block && p.block_cap == kBlockBytes && !spare_ &&
          p.owner.use_count() == 1) {
        spare_ = std::static_pointer_cast<std::byte>(
            std::const_pointer_cast<void>(std::move(p.owner)));
      }
    }
  }

  // Clear: drops everything; positions restart at 0.
  void Clear() {
    pieces_.clear();
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
    size_t block_cap = 0;               // the block's capacity (in_block only)
    std::shared_ptr<const void> owner;  // the block or the payload's owner
    bool in_block = false;              // a store block (else referenced)
  };

  void NewBlock(size_t need) {
    // The spare may have been handed out since it was kept.
    if (spare_ && spare_.use_count() != 1) spare_.reset();
    if (need <= kBlockBytes && spare_) {
      block_ = std::move(spare_);
      block_cap_ = kBlockBytes;
    } else {
      block_cap_ = std::max(need, kBlockBytes);
      // Not value-initialised: the encoder writes every byte it appends.
      block_ = std::shared_ptr<std::byte>(new std::byte[block_cap_],
                                          std::default_delete<std::byte[]>());
    }
    block_used_ = 0;
  }

  std::deque<Piece> pieces_;
  std::shared_ptr<std::byte> block_;  // the block Append fills
  std::shared_ptr<std::byte> spare_;  // a free kBlockBytes block
  size_t block_cap_ = 0;
  size_t block_used_ = 0;
  uint64_t end_ = 0;
};

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_REPLAY_STORE_HPP_
