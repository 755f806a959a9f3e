// File: symwire/shared_payload.hpp
// Layers 2-3 vocabulary type. SharedPayload: an immutable, reference-counted
// payload that a caller hands over to the session instead of having it
// copied (Session::SubmitTask / SendResponse, and the runtime's Submit,
// Call and Respond overloads that take one).
//
// Why: the copying calls encode each payload into the session's replay
// store, the bytes a resumed connection sends again (SPEC.md §14.2); at
// 16 KiB that copy, into store blocks that cycle through the whole send
// window and so are cold in cache, costs as much as the kernel's own copy.
// A SharedPayload is kept by reference instead: the store holds the
// encoded header and checksum trailer of the frame and a reference to the
// payload, the transport writes header, payload and trailer by gather
// (writev), and a resumed connection replays the same bytes from the same
// references. The send window (`replay_bytes`) counts referenced bytes
// exactly as it counts copied ones.
//
// The bytes never change after construction: every constructor takes the
// buffer over (or copies it, for Copy), and no accessor hands out a
// mutable pointer, so a payload may be sent many times, on several
// sessions, while earlier sends are still unacknowledged. The checksum
// (XXH3, SPEC.md §10.1) is computed for each send, never cached here.
//
// Copying a SharedPayload copies a reference (an atomic increment); the
// bytes live until the last copy (the caller's, the replay store's, or a
// write in flight) is gone. Thread-safety: like std::shared_ptr<const T>:
// copies may be used and destroyed on different threads.
#ifndef SYMWIRE_SHARED_PAYLOAD_HPP_
#define SYMWIRE_SHARED_PAYLOAD_HPP_

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace symwire {

class SharedPayload {
 public:
  // No default constructor, so that `{}` in a call with both a span and a
  // SharedPayload overload still means an empty span. An empty payload is
  // SharedPayload(std::string()). (Not even a deleted one: that would
  // still take part in overload resolution.)
  SharedPayload(const SharedPayload&) = default;
  SharedPayload& operator=(const SharedPayload&) = default;
  // A moved-from payload is empty.
  SharedPayload(SharedPayload&& other) noexcept
      : owner_(std::move(other.owner_)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  SharedPayload& operator=(SharedPayload&& other) noexcept {
    owner_ = std::move(other.owner_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }
  ~SharedPayload() = default;

  // SharedPayload(std::string / std::vector<std::byte> / std::vector<char>)
  // Takes the container over (moved into one allocation shared by the
  // copies; its bytes are not copied when the container is moved in).
  explicit SharedPayload(std::string bytes) { Own(std::move(bytes)); }
  explicit SharedPayload(std::vector<std::byte> bytes) {
    Own(std::move(bytes));
  }
  explicit SharedPayload(std::vector<char> bytes) { Own(std::move(bytes)); }

  // SharedPayload(unique_ptr, size)
  // Takes over `size` bytes at `bytes.get()` (REQUIRES: the array holds at
  // least `size` bytes).
  SharedPayload(std::unique_ptr<std::byte[]> bytes, size_t size)
      : data_(bytes.get()), size_(size) {
    owner_ = std::shared_ptr<const std::byte[]>(std::move(bytes));
  }

  // Wrap
  // Bytes kept valid and unchanged by `owner` for as long as any copy of
  // `owner` lives (e.g. a region of a larger buffer, with `owner` an
  // aliasing shared_ptr). REQUIRES: nobody writes to them afterwards.
  static SharedPayload Wrap(std::shared_ptr<const void> owner,
                            absl::Span<const std::byte> bytes) {
    return SharedPayload(std::move(owner), bytes.data(), bytes.size());
  }

  // Copy
  // A payload holding a copy of `bytes` (one allocation, one memcpy).
  static SharedPayload Copy(absl::Span<const std::byte> bytes) {
    auto buffer = std::make_unique_for_overwrite<std::byte[]>(bytes.size());
    if (!bytes.empty()) std::memcpy(buffer.get(), bytes.data(), bytes.size());
    return SharedPayload(std::move(buffer), bytes.size());
  }
  static SharedPayload Copy(std::string_view bytes) {
    return Copy(absl::Span<const std::byte>(
        reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  }

  // bytes() / view() / size() / empty()
  // The payload; valid while this object (or any copy of it) lives.
  absl::Span<const std::byte> bytes() const { return {data_, size_}; }
  std::string_view view() const {
    return {reinterpret_cast<const char*>(data_), size_};
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // owner
  // The reference that keeps bytes() valid (null once moved from).
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  SharedPayload(std::shared_ptr<const void> owner, const std::byte* data,
                size_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {}

  template <class Container>
  void Own(Container bytes) {
    auto held = std::make_shared<const Container>(std::move(bytes));
    data_ = reinterpret_cast<const std::byte*>(held->data());
    size_ = held->size();
    owner_ = std::move(held);
  }

  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace symwire

#endif  // SYMWIRE_SHARED_PAYLOAD_HPP_
