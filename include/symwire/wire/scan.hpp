// File: symwire/wire/scan.hpp
// Layer 1 (frame codec). Helpers for tools that look for frames in bytes of
// unknown alignment, such as symwire-dump after a framing error (SPEC.md
// §7.2, informative): is there a genuine frame header here, how long is the
// frame it announces, and where is the next such header. A receiver never
// uses these (it ends the connection on a framing error, SPEC.md §7); they
// exist so that no code above layer 1 re-implements the header layout.
#ifndef SYMWIRE_WIRE_SCAN_HPP_
#define SYMWIRE_WIRE_SCAN_HPP_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/types/span.h"
#include "symwire/config.hpp"

namespace symwire {

// HeaderCandidate
// A frame header found by ProbeFrameHeader.
struct HeaderCandidate {
  // The whole header: the header_length varint plus header_length bytes.
  size_t header_size = 0;
  // The whole frame (header, payload_length bytes of payload and the 8-byte
  // trailer if flag CHECKSUM is set), when the header's flags have no
  // reserved bit set (a future flag may change how a frame is delimited,
  // SPEC.md §4.2) and its type, flags, stream_id, sequence and
  // payload_length fields lie before the CRC with canonical varints; empty
  // otherwise. Other field rules (type range, stream-id rule, limits,
  // extensions) are not checked: a header with a matching CRC is genuine,
  // so its length can be believed even when the frame breaks a rule.
  std::optional<uint64_t> frame_size;

  friend bool operator==(const HeaderCandidate&,
                         const HeaderCandidate&) = default;
};

// ProbeFrameHeader
// Whether a complete, genuine frame header starts at the front of `data`:
// its header_length varint is canonical and at most 2 bytes, header_length
// is >= 9 (kMinHeaderLength), the whole header is at most
// `max_header_bytes` and lies inside `data`, and the CRC32C of its bytes
// before the CRC equals the stored one (SPEC.md §4, §7.1 steps 1-2).
// Returns the header's size and, where it can be read, the frame's size;
// std::nullopt when any of that fails, including when `data` ends inside
// the header. Never reads outside `data`. Does not allocate.
// Thread-safe (a pure function).
SYMWIRE_DECL std::optional<HeaderCandidate> ProbeFrameHeader(
    absl::Span<const std::byte> data, size_t max_header_bytes) noexcept;

// FindFrameHeader
// The first position p >= `from` in `data` where
// ProbeFrameHeader(data.subspan(p), max_header_bytes) finds a header, or
// std::nullopt if there is none (also when from >= data.size()). The
// one-byte-at-a-time scan of SPEC.md §7.2: for arbitrary bytes about one
// position in 2^32 passes the CRC, so a match is likely but not certainly
// a real header. Cost: O((data.size() - from) * max_header_bytes) in the
// worst case. Does not allocate. Thread-safe (a pure function).
SYMWIRE_DECL std::optional<size_t> FindFrameHeader(
    absl::Span<const std::byte> data, size_t from,
    size_t max_header_bytes) noexcept;

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/wire/impl/scan.ipp"
#endif

#endif  // SYMWIRE_WIRE_SCAN_HPP_
