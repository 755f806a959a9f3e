// File: symwire/wire/detail/plain_frame.hpp
// Layer 1 internals. The encoder's per-frame path for a plain frame: one
// without extensions (SPEC.md §4), which is every response, every task
// without options and every control frame the session writes.
//
// PlanFrame and WriteHeader handle every header: they walk the extension
// fields, return a StatusOr and write through a generic varint loop; for a
// 64 B response that was ~210 instructions of the ~890 a streaming agent
// spends per response (cachegrind, bench/README.md "The plain-frame
// encoder"). A plain header has one shape: header_length is at most
// 2 + 8 + 8 + 4 + 4 = 26, so its varint is one byte, and the rest is type,
// flags, three varints and the CRC. Here every check PlanFrame makes on
// such a frame is one branch, and the header is written inline. When the
// branch fails the caller runs PlanFrame, which names the error: the two
// never disagree (tests/wire/encoder_test.cpp compares them field by field).
// Users never include this directly.
#ifndef SYMWIRE_WIRE_DETAIL_PLAIN_FRAME_HPP_
#define SYMWIRE_WIRE_DETAIL_PLAIN_FRAME_HPP_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/detail/hash.hpp"
#include "symwire/wire/detail/crc32c_short.hpp"
#include "symwire/wire/detail/layout.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire::detail {

// The message types (bit t for type t) on which SPEC.md §4.1's stream-id
// rule refuses a zero id, and those on which it refuses a non-zero one.
constexpr unsigned StreamIdRuleMask(StreamIdRule rule) noexcept {
  unsigned mask = 0;
  for (unsigned t = 0; t <= kMaxMessageType; ++t) {
    if (StreamIdRuleFor(static_cast<MessageType>(t)) == rule) mask |= 1u << t;
  }
  return mask;
}

// PlainHeaderSize
// The size of the header of a frame without extensions, or 0 when
// PlanFrame(header, kNoExtensions, payload_size) would refuse the fields
// (then call PlanFrame for the error). Otherwise equal to that plan's
// header_size.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline size_t PlainHeaderSize(
    const FrameHeader& header, size_t payload_size) noexcept {
  constexpr unsigned kRefuseZeroId = StreamIdRuleMask(StreamIdRule::kNonZero);
  constexpr unsigned kRefuseNonZeroId = StreamIdRuleMask(StreamIdRule::kZero);
  const auto type = static_cast<unsigned>(header.type);
  const unsigned refuses =
      header.stream_id == 0 ? kRefuseZeroId : kRefuseNonZeroId;
  const bool final_misplaced = (header.flags & kFlagFinal) != 0 &&
                               header.type != MessageType::kAgentResponse;
  if (SYMWIRE_UNLIKELY(type > kMaxMessageType ||
                       (header.flags & kFlagsReserved) != 0 ||
                       final_misplaced || ((refuses >> type) & 1u) != 0 ||
                       (header.stream_id | header.sequence) > kVarintMax ||
                       payload_size > kMaxPayloadSizeLimit)) {
    return 0;
  }
  // header_length's own varint (one byte: at most 26) and header_length.
  return 1 + 2 + VarintSize(header.stream_id) + VarintSize(header.sequence) +
         VarintSize(payload_size) + kHeaderCrcSize;
}

// PlainFrameSize
// The whole frame's size (header, payload, trailer) for a header_size
// PlainHeaderSize returned.
inline size_t PlainFrameSize(const FrameHeader& header, size_t header_size,
                             size_t payload_size) noexcept {
  return header_size + payload_size +
         ((header.flags & kFlagChecksum) != 0 ? kPayloadChecksumSize : 0);
}

// EncodePlain
// Writes the whole frame (header, payload, trailer) at `out`; returns its
// size. REQUIRES: header_size == PlainHeaderSize(header, payload.size())
// and is not 0; `out` has header_size + payload.size() (+ 8 with
// kFlagChecksum) bytes. The bytes are EncodeFrame's.
inline size_t EncodePlain(const FrameHeader& header, size_t header_size,
                          absl::Span<const std::byte> payload,
                          std::byte* out) noexcept {
  SYMWIRE_ASSERT(header_size != 0 &&
                 header_size == PlainHeaderSize(header, payload.size()));
  std::byte* p = out;
  *p++ = static_cast<std::byte>(header_size - 1);  // header_length < 64
  *p++ = static_cast<std::byte>(header.type);
  *p++ = static_cast<std::byte>(header.flags);
  p += EncodeVarintUnchecked(header.stream_id, p);
  p += EncodeVarintUnchecked(header.sequence, p);
  p += EncodeVarintUnchecked(payload.size(), p);
  const auto crc_pos = static_cast<size_t>(p - out);
  SYMWIRE_ASSERT(crc_pos + kHeaderCrcSize == header_size);
  StoreBig32(p, Crc32cShort(out, crc_pos));
  p += kHeaderCrcSize;
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  p += payload.size();
  if ((header.flags & kFlagChecksum) != 0) {
    StoreBig64(p, Xxh3Hash64(payload));
    p += kPayloadChecksumSize;
  }
  return static_cast<size_t>(p - out);
}

}  // namespace symwire::detail

#endif  // SYMWIRE_WIRE_DETAIL_PLAIN_FRAME_HPP_
