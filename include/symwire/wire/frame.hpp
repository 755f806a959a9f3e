// File: symwire/wire/frame.hpp
// Layer 1 (frame codec). The value types of a frame: FrameHeader (the fixed
// fields), FrameExtensions (what an encoder is asked to write as TLVs) and
// FrameView (a decoded frame pointing into the caller's buffer), plus the
// ranges that iterate a decoded frame's extensions. SPEC.md §4-§5.
#ifndef SYMWIRE_WIRE_FRAME_HPP_
#define SYMWIRE_WIRE_FRAME_HPP_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>

#include "absl/base/attributes.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire {

// FrameHeader
// The fixed header fields of a frame (SPEC.md §4). `flags` holds the
// kFlag* bits; kFlagChecksum asks the encoder for a payload checksum.
// A plain value type; the payload length is the payload's size.
struct FrameHeader {
  MessageType type = MessageType::kAgentInit;
  uint8_t flags = 0;
  uint64_t stream_id = 0;
  uint64_t sequence = 0;

  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

// TraceParent
// The binary W3C trace context carried by the TRACEPARENT extension
// (SPEC.md §5): version, 16-byte trace id, 8-byte parent (span) id, flags.
struct TraceParent {
  uint8_t version = 0;
  std::array<std::byte, 16> trace_id{};
  std::array<std::byte, 8> parent_id{};
  uint8_t trace_flags = 0;

  friend bool operator==(const TraceParent&, const TraceParent&) = default;
};

// MetadataEntry
// One METADATA extension: a non-empty key and a (possibly empty) value.
// Both are raw bytes; symwire does not require UTF-8.
struct MetadataEntry {
  absl::string_view key;
  absl::string_view value;

  friend bool operator==(const MetadataEntry& a, const MetadataEntry& b) {
    return a.key == b.key && a.value == b.value;
  }
};

// RawExtension
// An extension TLV as it is on the wire: type and value bytes.
struct RawExtension {
  uint64_t type = 0;
  absl::Span<const std::byte> value;

  friend bool operator==(const RawExtension& a, const RawExtension& b) {
    return a.type == b.type && a.value == b.value;
  }
};

// FrameExtensions
// What an encoder writes into a header's extension region, in this order:
// DEADLINE, TRACEPARENT, TRACESTATE, each METADATA, METHOD, then each
// `other` TLV verbatim (for forwarding extensions this version does not
// know; their types must not be known ones). Spans and views must outlive the
// encode call only.
struct FrameExtensions {
  std::optional<uint64_t> deadline_us;  // remaining budget, microseconds
  std::optional<TraceParent> trace_parent;
  absl::string_view trace_state;  // empty = absent
  absl::Span<const MetadataEntry> metadata;
  absl::Span<const RawExtension> other;
  // The task's method (SPEC.md §5.1), empty = absent: 1..255 bytes of
  // 0x21..0x7E, else the encoder fails with INVALID_FRAME. (Last, so that
  // aggregate initialisers written before it existed keep their meaning.)
  absl::string_view method;

  bool empty() const noexcept {
    return !deadline_us && !trace_parent && method.empty() &&
           trace_state.empty() && metadata.empty() && other.empty();
  }
};

// kNoExtensions: none, for the encoders' per-frame paths; a FrameExtensions{}
// temporary is ~120 bytes zeroed (rep stosq) on every call, which was a
// quarter of Session::SendResponseImpl's samples streaming 64 B responses.
inline constexpr FrameExtensions kNoExtensions{};

// ExtensionRange
// Iterates the TLVs of an already validated extension region, yielding a
// RawExtension per TLV in wire order. Views into the frame's buffer; valid as
// long as that buffer. Does not allocate.
class ExtensionRange {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = RawExtension;
    using difference_type = std::ptrdiff_t;
    using pointer = const RawExtension*;
    using reference = const RawExtension&;

    Iterator() = default;
    reference operator*() const { return current_; }
    pointer operator->() const { return &current_; }
    Iterator& operator++() {
      pos_ = next_;
      Load();
      return *this;
    }
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) {
      return a.pos_ == b.pos_;
    }

   private:
    friend class ExtensionRange;
    Iterator(const std::byte* pos, const std::byte* end)
        : pos_(pos), end_(end) {
      Load();
    }
    // The region was validated by the decoder (or written by the encoder),
    // so no bounds can be violated here; the asserts document it.
    void Load() {
      if (pos_ == end_) return;
      size_t n = VarintSizeFromFirstByte(*pos_);
      SYMWIRE_ASSERT(pos_ + n <= end_);
      current_.type = detail::LoadVarint(pos_, n);
      const std::byte* p = pos_ + n;
      n = VarintSizeFromFirstByte(*p);
      SYMWIRE_ASSERT(p + n <= end_);
      const uint64_t len = detail::LoadVarint(p, n);
      p += n;
      SYMWIRE_ASSERT(len <= static_cast<uint64_t>(end_ - p));
      current_.value = absl::Span<const std::byte>(p, static_cast<size_t>(len));
      next_ = p + len;
    }

    const std::byte* pos_ = nullptr;
    const std::byte* end_ = nullptr;
    const std::byte* next_ = nullptr;
    RawExtension current_;
  };

  ExtensionRange() = default;
  explicit ExtensionRange(absl::Span<const std::byte> region)
      : region_(region) {}

  Iterator begin() const {
    return Iterator(region_.data(), region_.data() + region_.size());
  }
  Iterator end() const {
    return Iterator(region_.data() + region_.size(),
                    region_.data() + region_.size());
  }
  bool empty() const { return region_.empty(); }

 private:
  absl::Span<const std::byte> region_;
};

// ParseMetadataValue
// Splits a validated METADATA value into key and value. REQUIRES: `value` is
// the value of a METADATA TLV accepted by the decoder or the encoder.
inline MetadataEntry ParseMetadataValue(absl::Span<const std::byte> value) {
  const size_t n = VarintSizeFromFirstByte(value[0]);
  const auto key_len = static_cast<size_t>(detail::LoadVarint(value.data(), n));
  const char* base = reinterpret_cast<const char*>(value.data());
  return MetadataEntry{
      absl::string_view(base + n, key_len),
      absl::string_view(base + n + key_len, value.size() - n - key_len)};
}

// MetadataRange
// Iterates the METADATA entries of a decoded frame (SPEC.md §5) in wire
// order, yielding a MetadataEntry per METADATA TLV and skipping every other
// TLV; what FrameView::metadata() returns. The decoder already validated
// each entry (canonical key_length, non-empty key that fits the value), so
// iterating checks nothing and cannot fail. Views into the frame's buffer;
// valid as long as that buffer. Does not allocate.
class MetadataRange {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = MetadataEntry;
    using difference_type = std::ptrdiff_t;
    using pointer = const MetadataEntry*;
    using reference = const MetadataEntry&;

    Iterator() = default;
    reference operator*() const { return current_; }
    pointer operator->() const { return &current_; }
    Iterator& operator++() {
      ++it_;
      Skip();
      return *this;
    }
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) {
      return a.it_ == b.it_;
    }

   private:
    friend class MetadataRange;
    Iterator(ExtensionRange::Iterator it, ExtensionRange::Iterator end)
        : it_(it), end_(end) {
      Skip();
    }
    // Moves to the next METADATA TLV (or the end) and splits its value.
    void Skip() {
      while (it_ != end_ && it_->type != kExtMetadata) ++it_;
      if (it_ != end_) current_ = ParseMetadataValue(it_->value);
    }

    ExtensionRange::Iterator it_;
    ExtensionRange::Iterator end_;
    MetadataEntry current_;
  };

  MetadataRange() = default;
  explicit MetadataRange(ExtensionRange extensions) : extensions_(extensions) {}

  Iterator begin() const {
    return Iterator(extensions_.begin(), extensions_.end());
  }
  Iterator end() const {
    return Iterator(extensions_.end(), extensions_.end());
  }
  bool empty() const { return begin() == end(); }

 private:
  ExtensionRange extensions_;
};

// ParseTraceParentValue
// Converts a validated 26-byte TRACEPARENT value to a TraceParent.
inline TraceParent ParseTraceParentValue(absl::Span<const std::byte> value) {
  SYMWIRE_ASSERT(value.size() == kTraceParentSize);
  TraceParent tp;
  tp.version = static_cast<uint8_t>(value[0]);
  std::memcpy(tp.trace_id.data(), value.data() + 1, 16);
  std::memcpy(tp.parent_id.data(), value.data() + 17, 8);
  tp.trace_flags = static_cast<uint8_t>(value[25]);
  return tp;
}

// FrameView
// A decoded frame. Every span and string_view it returns points into the
// buffer passed to FrameDecoder::Decode and is valid until the caller
// releases or overwrites that range of bytes. Cheap to copy (a few words).
// Thread-compatible.
class FrameView {
 public:
  FrameView() = default;

  const FrameHeader& header() const { return header_; }
  MessageType type() const { return header_.type; }
  uint8_t flags() const { return header_.flags; }
  uint64_t stream_id() const { return header_.stream_id; }
  uint64_t sequence() const { return header_.sequence; }
  bool is_final() const { return (header_.flags & kFlagFinal) != 0; }
  bool has_payload_checksum() const {
    return (header_.flags & kFlagChecksum) != 0;
  }

  // The payload bytes (without the checksum trailer).
  absl::Span<const std::byte> payload() const ABSL_ATTRIBUTE_LIFETIME_BOUND {
    return {data_ + header_size_, payload_size_};
  }
  // Every byte of the frame: header, payload and trailer.
  absl::Span<const std::byte> bytes() const ABSL_ATTRIBUTE_LIFETIME_BOUND {
    return {data_, size_};
  }
  size_t header_size() const { return header_size_; }
  size_t size() const { return size_; }

  // Typed extensions, parsed and validated by the decoder.
  std::optional<uint64_t> deadline_us() const {
    if (!has_deadline_) return std::nullopt;
    return deadline_us_;
  }
  std::optional<TraceParent> trace_parent() const {
    if (trace_parent_offset_ == 0) return std::nullopt;
    return ParseTraceParentValue(absl::Span<const std::byte>(
        data_ + trace_parent_offset_, kTraceParentSize));
  }
  absl::string_view trace_state() const ABSL_ATTRIBUTE_LIFETIME_BOUND {
    return absl::string_view(
        reinterpret_cast<const char*>(data_) + trace_state_offset_,
        trace_state_size_);
  }
  // The METHOD extension's value (SPEC.md §5.1), validated by the decoder
  // (1..255 bytes of 0x21..0x7E); empty when the frame has none. Code above
  // layer 1 reads the method here instead of parsing TLVs. Does not
  // allocate.
  absl::string_view method() const ABSL_ATTRIBUTE_LIFETIME_BOUND {
    if (method_size_ == 0) return {};  // skips the scan
    for (const RawExtension& e : extensions()) {
      if (e.type == kExtMethod) {
        return absl::string_view(reinterpret_cast<const char*>(e.value.data()),
                                 e.value.size());
      }
    }
    SYMWIRE_ASSERT(false && "method_size_ set without a METHOD TLV");
    return {};
  }
  uint32_t extension_count() const { return extension_count_; }
  uint32_t metadata_count() const { return metadata_count_; }
  // Every TLV in wire order, known or not.
  ExtensionRange extensions() const ABSL_ATTRIBUTE_LIFETIME_BOUND {
    if (header_size_ == 0) return ExtensionRange();  // default-constructed
    const size_t end = header_size_ - kHeaderCrcSize;
    return ExtensionRange(absl::Span<const std::byte>(data_ + extensions_begin_,
                                                      end - extensions_begin_));
  }
  // The METADATA entries (key, value) in wire order, as views into the
  // frame's buffer, already validated by the decoder: code above layer 1
  // reads them here instead of parsing TLVs. metadata_count() entries.
  // Does not allocate.
  MetadataRange metadata() const ABSL_ATTRIBUTE_LIFETIME_BOUND {
    if (metadata_count_ == 0) return MetadataRange();  // skips the scan
    return MetadataRange(extensions());
  }

 private:
  friend class FrameDecoder;

  // Offsets are relative to data_, so the decoder can re-point a pending
  // view at a moved buffer by replacing data_ alone. The layout is kept to
  // one 64-byte cache line: the decoder returns a view per frame, and a
  // larger object measurably slowed decoding of small frames.
  FrameHeader header_;
  const std::byte* data_ = nullptr;
  uint32_t size_ = 0;          // whole frame; <= 16385 + 2^30 - 1 + 8
  uint32_t payload_size_ = 0;  // <= 2^30 - 1
  uint64_t deadline_us_ = 0;
  uint16_t header_size_ = 0;  // <= 16385
  uint16_t extensions_begin_ = 0;
  uint16_t extension_count_ = 0;
  uint16_t metadata_count_ = 0;
  // 0 means absent (no extension value starts at offset 0).
  uint16_t trace_parent_offset_ = 0;
  uint16_t trace_state_offset_ = 0;
  uint16_t trace_state_size_ = 0;
  bool has_deadline_ = false;
  // METHOD's value size, 0 = absent (a METHOD is 1..255 bytes); method()
  // finds its bytes by scanning the TLVs: an offset would not fit the
  // cache line, and only a task's receiver asks, once.
  uint8_t method_size_ = 0;
};

}  // namespace symwire

#endif  // SYMWIRE_WIRE_FRAME_HPP_
