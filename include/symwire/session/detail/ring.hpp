// File: symwire/session/detail/ring.hpp
// Layer 2 helper. Ring<T>: a FIFO of trivially copyable values in one
// power-of-two array that doubles when full: push_back, pop_front, front,
// size and clear, each a few instructions. The session keeps one entry per
// unacknowledged sequenced frame (ReplayEntry), pushed for every frame
// sent; std::deque's push_back (a call, its node bookkeeping) and size()
// (computed from the node map) were ~35 of the ~750 instructions a
// streaming agent spent per response (bench/README.md, "The plain-frame
// encoder"). Memory: the array of the largest number of entries held at
// once, rounded up to a power of two (64 at least, once used), kept until the
// ring is destroyed.
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_RING_HPP_
#define SYMWIRE_SESSION_DETAIL_RING_HPP_

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include "symwire/config.hpp"

namespace symwire::detail {

template <typename T>
class Ring {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  Ring() = default;
  Ring(Ring&& other) noexcept { *this = std::move(other); }
  Ring& operator=(Ring&& other) noexcept {
    data_ = std::move(other.data_);
    mask_ = std::exchange(other.mask_, 0);
    head_ = std::exchange(other.head_, 0);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  // REQUIRES: !empty().
  const T& front() const {
    SYMWIRE_ASSERT(size_ != 0);
    return data_[head_];
  }
  // The i-th entry from the front. REQUIRES: i < size().
  const T& operator[](size_t i) const {
    SYMWIRE_ASSERT(i < size_);
    return data_[(head_ + i) & mask_];
  }

  void push_back(const T& value) {
    if (SYMWIRE_UNLIKELY(data_ == nullptr || size_ == mask_ + 1)) Grow();
    data_[(head_ + size_) & mask_] = value;
    ++size_;
  }
  // REQUIRES: !empty().
  void pop_front() {
    SYMWIRE_ASSERT(size_ != 0);
    head_ = (head_ + 1) & mask_;
    --size_;
  }
  // Empties it; the array stays for reuse.
  void clear() {
    head_ = 0;
    size_ = 0;
  }

 private:
  static constexpr size_t kInitialCapacity = 64;

  void Grow() {
    const size_t capacity =
        data_ == nullptr ? kInitialCapacity : 2 * (mask_ + 1);
    // Not value-initialised: every slot is written before it is read.
    std::unique_ptr<T[]> grown(new T[capacity]);
    for (size_t i = 0; i < size_; ++i) grown[i] = data_[(head_ + i) & mask_];
    data_ = std::move(grown);
    mask_ = capacity - 1;
    head_ = 0;
  }

  std::unique_ptr<T[]> data_;
  size_t mask_ = 0;  // capacity - 1 (capacity a power of two)
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_RING_HPP_
