// File: symwire/wire/decoder.hpp
// Layer 1 (frame codec). FrameDecoder: an incremental, zero-copy,
// allocation-free decoder for the byte stream of SPEC.md (preface, then
// frames). Sans-I/O: the caller owns the buffer and feeds it in any split.
#ifndef SYMWIRE_WIRE_DECODER_HPP_
#define SYMWIRE_WIRE_DECODER_HPP_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"

namespace symwire {

// DecoderOptions
// Limits and switches of a FrameDecoder (SPEC.md §8). Defaults are safe
// against a hostile peer.
struct DecoderOptions {
  // Expect the 8-byte connection preface before the first frame.
  bool expect_preface = true;
  // Check the header CRC32C. Turn off only in fuzzers (so they reach the
  // field checks) and in benchmarks that measure the CRC's cost.
  bool verify_header_crc = true;
  // Check the XXH3-64 trailer of frames with flag CHECKSUM. When off, the
  // trailer is still required and skipped.
  bool verify_payload_checksum = true;
  // Largest accepted header_length. REQUIRES: kMinHeaderSize..16383.
  uint32_t max_header_bytes = kDefaultMaxHeaderSize;
  // Largest accepted payload_length. REQUIRES: <= kMaxPayloadSizeLimit.
  uint64_t max_payload_bytes = kDefaultMaxPayloadSize;
  // Most extensions accepted in one header. REQUIRES: <= 16383.
  uint32_t max_extensions = kDefaultMaxExtensions;
};

// DecodeStep
// The result of one successful FrameDecoder::Decode call.
struct DecodeStep {
  enum class Kind : uint8_t {
    // Not enough input. `bytes_needed` is the input size (counted from the
    // start of the span passed to Decode) that lets the next call progress;
    // it never exceeds what the decoder's limits allow for one frame.
    kNeedMore,
    // The preface was accepted; `wire_version` holds its version byte.
    kPreface,
    // A frame was decoded into `frame`.
    kFrame,
  };
  Kind kind = Kind::kNeedMore;
  // Bytes at the front of the input that this step used up. The caller must
  // drop them before the next call (0 for kNeedMore).
  size_t consumed = 0;
  size_t bytes_needed = 0;
  uint8_t wire_version = 0;
  FrameView frame;
};

// FrameDecoder
// Decodes the stream one step at a time. Protocol per call:
//   auto step = decoder.Decode(unconsumed_bytes);
//   if (!step.ok()) -> fatal; close the connection.
//   kFrame / kPreface -> use it, then drop step->consumed bytes.
//   kNeedMore -> read more (at least up to step->bytes_needed) and retry.
// The caller passes, at every call, all bytes it received and has not yet
// dropped, starting where the previous consumed step ended. The buffer may
// move between calls (e.g. to grow); only its contents must be the same.
//
// Guarantees: any split of the input yields the same frames and errors;
// decoding never allocates and never copies payload; the header CRC is
// checked before any field is trusted; an oversized header or payload is
// reported before it is buffered; errors are sticky (every later call
// returns the first error again) and name the value and the stream offset.
//
// Errors (all fatal; SPEC.md §7): BAD_PREFACE, UNSUPPORTED_VERSION,
// NON_CANONICAL_VARINT, BAD_HEADER_LENGTH, HEADER_TOO_LARGE,
// HEADER_CRC_MISMATCH, UNKNOWN_MESSAGE_TYPE, RESERVED_FLAGS, BAD_STREAM_ID,
// MALFORMED_HEADER, PAYLOAD_TOO_LARGE, PAYLOAD_CHECKSUM_MISMATCH,
// MALFORMED_EXTENSION, UNKNOWN_CRITICAL_EXTENSION, DUPLICATE_EXTENSION,
// TOO_MANY_EXTENSIONS.
//
// Thread-compatible: one decoder per connection direction.
class FrameDecoder {
 public:
  // REQUIRES: the options are within the ranges documented above.
  SYMWIRE_DECL explicit FrameDecoder(DecoderOptions options = {});

  // Decode
  // Performs one step on `input` (see the class comment). Spans in the
  // returned FrameView point into `input`.
  SYMWIRE_DECL absl::StatusOr<DecodeStep> Decode(
      absl::Span<const std::byte> input);

  // The sticky error, or OK.
  const absl::Status& status() const { return status_; }
  // Stream offset of the next unconsumed byte (bytes consumed so far).
  uint64_t stream_offset() const { return offset_; }
  bool preface_done() const { return preface_done_; }
  const DecoderOptions& options() const { return options_; }

 private:
  // The work of Decode, writing into the caller's (Decode's return value's)
  // DecodeStep so a frame view is built in place, never copied: copying a
  // freshly written view costs a store-forwarding stall per frame.
  SYMWIRE_DECL absl::Status DecodeInto(absl::Span<const std::byte> input,
                                       DecodeStep& step);
  SYMWIRE_DECL absl::Status DecodePreface(absl::Span<const std::byte> input,
                                          DecodeStep& step);
  // Parses and validates a header whose CRC has been checked; fills every
  // field of `view` but data_ and size_.
  SYMWIRE_DECL absl::Status ParseHeader(absl::Span<const std::byte> header,
                                        size_t length_size, FrameView& view);
  SYMWIRE_DECL absl::Status ParseExtensions(absl::Span<const std::byte> header,
                                            size_t begin, FrameView& view);
  // Finishes step.frame (a validated header of a `total`-byte frame) once
  // all its bytes are in `input`, checking the payload checksum; otherwise
  // keeps the view as pending_ and asks for more.
  SYMWIRE_DECL absl::Status Complete(absl::Span<const std::byte> input,
                                     size_t total, DecodeStep& step);
  // Records `status` as the sticky error and returns it.
  SYMWIRE_DECL absl::Status Fail(absl::Status status);

  DecoderOptions options_;
  absl::Status status_;
  uint64_t offset_ = 0;
  // A header validated while its payload is still awaited, so a caller that
  // feeds a byte at a time does not have the header re-validated each call.
  FrameView pending_;
  size_t pending_size_ = 0;  // whole frame; 0 = nothing pending
  bool preface_done_ = false;
};

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/wire/impl/decoder.ipp"
#endif

#endif  // SYMWIRE_WIRE_DECODER_HPP_
