// File: symwire/wire/encoder.hpp
// Layer 1 (frame codec). Writes the preface and frames of SPEC.md into
// caller buffers: whole frames (EncodeFrame), or the header and trailer only
// so the payload goes out by scatter/gather without a copy (EncodeGather).
// Every function validates its input against SPEC.md, so the encoder never
// writes a malformed frame. It does not know the receiver's limits: a header
// larger than the receiver's max header bytes (default 4096), more
// extensions than its limit (default 32), or an `other` extension of an odd
// (critical) type the receiver does not implement is well-formed but may be
// rejected by that receiver; the session handshake exchanges the limits.
#ifndef SYMWIRE_WIRE_ENCODER_HPP_
#define SYMWIRE_WIRE_ENCODER_HPP_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"

namespace symwire {

// EncodePreface
// Writes the 8-byte connection preface (SPEC.md §3); returns 8.
// Errors: BUFFER_TOO_SMALL (kResourceExhausted) if out.size() < 8.
SYMWIRE_DECL absl::StatusOr<size_t> EncodePreface(absl::Span<std::byte> out);

// EncodedHeaderSize
// The whole header size (header_length varint + header_length) a frame
// with these fields would have.
// Errors: INVALID_FRAME, VARINT_OUT_OF_RANGE (kInvalidArgument) if the
// frame is not encodable (see EncodeFrame); HEADER_TOO_LARGE
// (kResourceExhausted) if header_length would exceed 16383.
// Does not allocate on success.
SYMWIRE_DECL absl::StatusOr<size_t> EncodedHeaderSize(
    const FrameHeader& header, const FrameExtensions& extensions,
    size_t payload_size);

// EncodedSize
// Total bytes EncodeFrame writes: header + payload + (8 if kFlagChecksum).
// Errors: as EncodedHeaderSize.
SYMWIRE_DECL absl::StatusOr<size_t> EncodedSize(
    const FrameHeader& header, const FrameExtensions& extensions,
    size_t payload_size);
inline absl::StatusOr<size_t> EncodedSize(const FrameHeader& header,
                                          size_t payload_size) {
  return EncodedSize(header, kNoExtensions, payload_size);
}

// EncodeFrame
// Writes one whole frame into `out`; returns the bytes written.
// Errors:
//   INVALID_FRAME (kInvalidArgument): type not one of the six; reserved flag
//     bits; kFlagFinal on a type other than AGENT_RESPONSE; stream_id breaks
//     SPEC.md §4.1; payload larger than 1 GiB - 1; an extension that breaks
//     SPEC.md §5 (trace_state not 1-512 printable ASCII bytes, empty
//     metadata key, TRACEPARENT version 0xFF or zero ids, an `other` TLV of
//     type 0, above 2^62 - 1 or of a known type).
//   VARINT_OUT_OF_RANGE (kInvalidArgument): stream_id, sequence or
//     deadline_us above 2^62 - 1.
//   HEADER_TOO_LARGE (kResourceExhausted): header_length above 16383.
//   BUFFER_TOO_SMALL (kResourceExhausted): out.size() < EncodedSize().
// Nothing is written on error. Does not allocate on success. Thread-safe.
SYMWIRE_DECL absl::StatusOr<size_t> EncodeFrame(
    const FrameHeader& header, const FrameExtensions& extensions,
    absl::Span<const std::byte> payload, absl::Span<std::byte> out);
inline absl::StatusOr<size_t> EncodeFrame(const FrameHeader& header,
                                          absl::Span<const std::byte> payload,
                                          absl::Span<std::byte> out) {
  return EncodeFrame(header, kNoExtensions, payload, out);
}

class GatherFrame;

namespace detail {

// FramePlan: what PlanFrame found (SPEC.md §4).
struct FramePlan {
  size_t header_length = 0;  // the field's value
  size_t header_size = 0;    // the whole header
  size_t extensions_size = 0;
  // The whole frame: header, payload and the trailer kFlagChecksum adds.
  size_t FrameSize(const FrameHeader& header, size_t payload_size) const {
    return header_size + payload_size +
           ((header.flags & kFlagChecksum) != 0 ? kPayloadChecksumSize : 0);
  }
};

// PlanFrame: every check EncodeFrame makes (same errors, BUFFER_TOO_SMALL
// aside) and the header's size, for a caller that sizes its buffer first
// and then encodes (the session's replay store), so the fields are checked
// and measured once per frame, not twice.
SYMWIRE_DECL absl::StatusOr<FramePlan> PlanFrame(
    const FrameHeader& header, const FrameExtensions& extensions,
    size_t payload_size);

// EncodePlanned: EncodeFrame for fields PlanFrame accepted.
// REQUIRES: `plan` came from PlanFrame(header, extensions, payload.size());
// `out` has plan.header_size + payload.size() (+ 8 with kFlagChecksum)
// bytes. Returns the bytes written.
SYMWIRE_DECL size_t EncodePlanned(const FramePlan& plan,
                                  const FrameHeader& header,
                                  const FrameExtensions& extensions,
                                  absl::Span<const std::byte> payload,
                                  std::byte* out);

// EncodeGatherPlanned: EncodeGather for fields PlanFrame accepted.
// REQUIRES: as EncodePlanned; `header_out` has plan.header_size bytes.
SYMWIRE_DECL GatherFrame
EncodeGatherPlanned(const FramePlan& plan, const FrameHeader& header,
                    const FrameExtensions& extensions,
                    absl::Span<const std::byte> payload, std::byte* header_out);

}  // namespace detail

// GatherFrame
// A frame ready for a vectored write: header bytes (in the caller's
// buffer), the payload (the caller's span, not copied) and the 0- or 8-byte
// checksum trailer (stored inside this object).
class GatherFrame {
 public:
  absl::Span<const std::byte> header() const { return header_; }
  absl::Span<const std::byte> payload() const { return payload_; }
  // Valid while this object lives and is not moved.
  absl::Span<const std::byte> trailer() const ABSL_ATTRIBUTE_LIFETIME_BOUND {
    return absl::Span<const std::byte>(trailer_.data(), trailer_size_);
  }
  size_t size() const {
    return header_.size() + payload_.size() + trailer_size_;
  }

 private:
  friend SYMWIRE_DECL GatherFrame detail::EncodeGatherPlanned(
      const detail::FramePlan&, const FrameHeader&, const FrameExtensions&,
      absl::Span<const std::byte>, std::byte*);
  absl::Span<const std::byte> header_;
  absl::Span<const std::byte> payload_;
  std::array<std::byte, kPayloadChecksumSize> trailer_{};
  size_t trailer_size_ = 0;
};

// EncodeGather
// Writes only the header into `header_out` and computes the trailer; the
// payload is referenced, not copied. Sending header(), payload(), trailer()
// in order is byte-for-byte what EncodeFrame writes.
// Errors: as EncodeFrame, with BUFFER_TOO_SMALL if header_out is smaller
// than EncodedHeaderSize(). Does not allocate on success.
SYMWIRE_DECL absl::StatusOr<GatherFrame> EncodeGather(
    const FrameHeader& header, const FrameExtensions& extensions,
    absl::Span<const std::byte> payload, absl::Span<std::byte> header_out);

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/wire/impl/encoder.ipp"
#endif

#endif  // SYMWIRE_WIRE_ENCODER_HPP_
