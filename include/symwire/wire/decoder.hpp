// File: symwire/wire/decoder.hpp
// Layer 1 (frame codec). FrameDecoder: an incremental, zero-copy,
// allocation-free decoder for the byte stream of SPEC.md (preface, then
// frames). Sans-I/O: the caller owns the buffer and feeds it in any split.
#ifndef SYMWIRE_WIRE_DECODER_HPP_
#define SYMWIRE_WIRE_DECODER_HPP_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/detail/crc32c_short.hpp"
#include "symwire/wire/detail/layout.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/varint.hpp"

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
  // Largest accepted header, counting the header_length varint and every
  // byte after it. REQUIRES: kMinHeaderSize..kMaxHeaderSizeLimit (10..16385).
  uint32_t max_header_bytes = kDefaultMaxHeaderSize;
  // Largest accepted payload_length. REQUIRES: <= kMaxPayloadSizeLimit.
  uint64_t max_payload_bytes = kDefaultMaxPayloadSize;
  // Most extensions accepted in one header. REQUIRES: <= 16383.
  uint32_t max_extensions = kDefaultMaxExtensions;
  // Decode common frames on the inline fast path. A testing aid: false sends
  // every frame through the general path, with identical results (the tests
  // and the decode_frame fuzzer compare the two); only speed differs.
  bool use_fast_path = true;
};

// DecodeStep
// The result of one successful FrameDecoder::Decode call.
// (Field order and widths keep it at 80 bytes: GCC zeroes objects of up to
// 80 bytes with a few vector stores but larger ones with `rep stos`, whose
// start-up cost alone was a third of the time to decode a small frame.)
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
  // With kFrame: the decoded frame.
  FrameView frame;
  // Bytes at the front of the input that this step used up. The caller must
  // drop them before the next call (0 for kNeedMore).
  size_t consumed = 0;
  // With kNeedMore; at most 16385 + 2^30 - 1 + 8, so 32 bits suffice.
  uint32_t bytes_needed = 0;
  Kind kind = Kind::kNeedMore;
  uint8_t wire_version = 0;
};
static_assert(sizeof(DecodeStep) <= 80, "see the comment on DecodeStep");

// BatchResult
// The result of one successful FrameDecoder::DecodeBatch call.
struct BatchResult {
  // Frames decoded, written to out[0], ..., out[frames - 1].
  size_t frames = 0;
  // Bytes at the front of the input that this call used up: the preface (if
  // accepted by this call) and the frames. The caller must drop them before
  // the next call.
  size_t consumed = 0;
  // 0 if the call stopped because `out` was full (or an error follows, see
  // DecodeBatch). Otherwise the call ran out of input, and this is the
  // DecodeStep::bytes_needed a Decode of the unconsumed bytes (input from
  // offset `consumed`) reports: counted from the first unconsumed byte.
  uint32_t bytes_needed = 0;
  // The preface's version byte if this call accepted the preface, else 0.
  uint8_t wire_version = 0;
};

namespace detail {

// Outcome of reading a varint field that must lie in [pos, end).
enum class FieldResult : uint8_t { kOk, kOverrun, kNonCanonical };

// ReadField
// Reads one varint field of `header` at `pos`; advances `pos` on success.
// Status-free so that it inlines; callers turn failures into a Status.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FieldResult ReadField(
    absl::Span<const std::byte> header, size_t& pos, size_t end,
    uint64_t& value, size_t& size) {
  if (SYMWIRE_UNLIKELY(pos >= end)) {
    size = 0;
    return FieldResult::kOverrun;
  }
  size = VarintSizeFromFirstByte(header[pos]);
  if (SYMWIRE_UNLIKELY(size > end - pos)) return FieldResult::kOverrun;
  value = LoadVarint(header.data() + pos, size);
  if (SYMWIRE_UNLIKELY(!IsCanonicalVarint(value, size))) {
    return FieldResult::kNonCanonical;
  }
  pos += size;
  return FieldResult::kOk;
}

// What the frames of a DecodeBatch run must share with the validated frame
// that started it (FrameDecoder::PrepareRun).
struct RunShape {
  uint64_t mask = 0;    // header bytes 0-7 that must equal...
  uint64_t expect = 0;  // ...these (as a little-endian word)
  uint64_t lo1 = 0;     // stream_id in [lo1, lo1 + span1]
  uint64_t span1 = 0;
  uint64_t span3 = 0;  // payload_length in [min canonical, + span3]
  size_t trailer = 0;  // 0 or kPayloadChecksumSize
  MessageType type = MessageType::kAgentInit;
  uint8_t flags = 0;
  bool verify_checksum = false;
};

// True if the 8 bytes after `payload` hold its XXH3-64 (SPEC.md §6). Out of
// line so that xxhash.h stays out of this public header.
SYMWIRE_DECL bool PayloadChecksumMatches(const std::byte* payload,
                                         size_t size) noexcept;
}  // namespace detail

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
// decoding never copies payload and never allocates (only building an error
// Status does); the header CRC is
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
  absl::StatusOr<DecodeStep> Decode(absl::Span<const std::byte> input) {
    // One named result returned on every path, so it is constructed in the
    // caller's return slot (NRVO) and filled in place: copying a freshly
    // written view costs a store-forwarding stall per frame.
    absl::StatusOr<DecodeStep> result(absl::in_place);
    if (SYMWIRE_LIKELY(fast_path_ready_) && DecodeFast(input, *result)) {
      return result;
    }
    if (absl::Status s = DecodeInto(input, *result);
        SYMWIRE_UNLIKELY(!s.ok())) {
      result = std::move(s);
    }
    return result;
  }

  // SetMaxPayloadBytes
  // Changes DecoderOptions::max_payload_bytes mid-stream: every frame header
  // validated after the call is checked against `max_payload_bytes`
  // (PAYLOAD_TOO_LARGE at §7.1 step 3, before the payload is awaited). A
  // frame whose header was already accepted and whose payload is still
  // awaited keeps the limit it was accepted under. A session holds the
  // pre-handshake limit of SPEC.md §15.2 with it and raises the limit once
  // established. REQUIRES: max_payload_bytes <= kMaxPayloadSizeLimit.
  // Does not allocate.
  void SetMaxPayloadBytes(uint64_t max_payload_bytes) {
    SYMWIRE_REQUIRE(max_payload_bytes <= kMaxPayloadSizeLimit);
    options_.max_payload_bytes = max_payload_bytes;
    run_loop_ = nullptr;  // DecodeBatch's prediction embeds the old limit
  }

  // DecodeBatch
  // Decodes as many frames as fit in `out` from `input` in one call: the
  // same steps as calling Decode repeatedly (and dropping each step's bytes)
  // until `out` is full or the input runs out, with identical results:
  // the same frames, the same kNeedMore hint, the same error and offset.
  // For runs of small frames; a frame whose header matches the previous
  // frame's layout, type and flags (the common case in a stream) is checked
  // by comparing its fixed header bytes with those already validated, then
  // CRC, varints, stream-id rule, payload limit and checksum as always:
  // every check of SPEC.md §7.1 is made on every frame.
  //
  // `input` follows the rules of Decode (all unconsumed bytes, starting
  // where the last consumed bytes ended). Stops when `out` is full, when
  // the input ends inside the preface or a frame (bytes_needed != 0), or at
  // the first error. An error on the first step is returned as the status
  // (the same error Decode returns, sticky). An error after at least one
  // preface or frame of this call is recorded (status() holds it) and the
  // steps before it are returned; the next call returns the error, as the
  // next Decode would.
  //
  // Errors: those of Decode (see the class comment), all fatal.
  // REQUIRES: !out.empty().
  // Lifetime: the views written to `out` point into `input`, valid until the
  // caller drops or overwrites those bytes. Entries of `out` past `frames`
  // are unspecified. Does not allocate (only building an error Status does).
  SYMWIRE_DECL absl::StatusOr<BatchResult> DecodeBatch(
      absl::Span<const std::byte> input, absl::Span<FrameView> out);

  // The sticky error, or OK.
  const absl::Status& status() const { return status_; }
  // Stream offset of the next unconsumed byte (bytes consumed so far).
  uint64_t stream_offset() const { return offset_; }
  bool preface_done() const { return preface_done_; }
  const DecoderOptions& options() const { return options_; }

 private:
  // The fast path, inline: a complete frame with a 1-byte header_length and
  // no extensions, every check passing. It only
  // ever accepts; on anything else it returns false having changed nothing
  // but `step`, and DecodeInto, the single authority on errors, redoes the
  // work and reports precisely. Must accept exactly what DecodeInto accepts
  // for such frames (the fuzzers compare split and whole feeding, which
  // take different paths).
  ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool DecodeFast(
      absl::Span<const std::byte> input, DecodeStep& step);
  // The general path: preface, pending frames, extensions, checksums and
  // every error.
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
  // DecodeBatch's inner loop: decodes frames of `input` from `pos` into
  // out[n...] while they have the layout, type and flags of `like` (a frame
  // this decoder accepted); returns the new n and advances pos. Stops,
  // having changed nothing for that frame, at the first one that differs
  // or fails any check: a single step then decodes or rejects it.
  // Sets run_ and run_loop_ for frames like `like` (a frame this decoder
  // accepted), or clears run_loop_ if its layout has no run loop.
  SYMWIRE_DECL void PrepareRun(const FrameView& like);
  // The run loop for varints of kS1, kS2 and kS3 bytes (defined in
  // impl/decoder.ipp, instantiated there only).
  template <size_t kS1, size_t kS2, size_t kS3>
  size_t DecodeRunOf(const detail::RunShape& shape,
                     absl::Span<const std::byte> input, size_t& pos,
                     absl::Span<FrameView> out, size_t n);
  using RunLoop = size_t (FrameDecoder::*)(const detail::RunShape&,
                                           absl::Span<const std::byte>, size_t&,
                                           absl::Span<FrameView>, size_t);
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
  // preface_done_ && pending_size_ == 0 && status_.ok(), kept as one flag
  // for the inline fast path.
  bool fast_path_ready_ = false;
  // The fast path's layout prediction: header_length and the sizes of the
  // three varints of the last frame it decoded (header_length 0 = none).
  struct FastShape {
    uint8_t header_length = 0;
    uint8_t sizes[3] = {0, 0, 0};
  };
  FastShape shape_;
  // DecodeBatch's prediction: the shape of the last frame a single step
  // decoded, kept across calls, and the loop for its layout (null: none).
  detail::RunShape run_;
  RunLoop run_loop_ = nullptr;
  // After a run that decoded nothing, the number of single-step frames to
  // wait before predicting again (run_wait_), doubling per miss.
  uint8_t run_backoff_ = 0;
  uint8_t run_wait_ = 0;
};

inline bool FrameDecoder::DecodeFast(absl::Span<const std::byte> input,
                                     DecodeStep& step) {
  if (SYMWIRE_UNLIKELY(input.empty())) return false;
  // A 1-byte header_length is the byte itself (top bits 00 => value < 64);
  // the header is that many bytes plus the length byte.
  const auto header_length = static_cast<size_t>(input[0]);
  const size_t header_size = header_length + 1;
  if (SYMWIRE_UNLIKELY(header_length < kMinHeaderLength || header_length > 63 ||
                       header_size > options_.max_header_bytes ||
                       input.size() < header_size)) {
    return false;
  }
  const std::byte* h = input.data();
  const size_t crc_pos = header_size - kHeaderCrcSize;
  if (options_.verify_header_crc &&
      SYMWIRE_UNLIKELY(detail::Crc32cShort(h, crc_pos) !=
                       detail::LoadBig32(h + crc_pos))) {
    return false;
  }
  const auto type = static_cast<uint8_t>(h[1]);
  const auto flags = static_cast<uint8_t>(h[2]);
  if (SYMWIRE_UNLIKELY(
          !IsValidMessageType(type) || (flags & kFlagsReserved) != 0 ||
          ((flags & kFlagFinal) != 0 &&
           type != static_cast<uint8_t>(MessageType::kAgentResponse)))) {
    return false;
  }
  const auto message_type = static_cast<MessageType>(type);
  // The three varints (stream_id, sequence, payload_length) follow at
  // offset 3 and, with no extensions, end at the CRC. Found one after the
  // other, each varint's offset depends on the previous one's length: a
  // serial chain of loads that dominated decoding. Consecutive frames
  // nearly always share their layout, so the layout of the last one is
  // predicted, the three loads issue in parallel, and the prediction is
  // verified by the length tags (which also proves there are no TLVs, since
  // header_length matches too).
  size_t s1 = shape_.sizes[0], s2 = shape_.sizes[1], s3 = shape_.sizes[2];
  if (SYMWIRE_UNLIKELY(header_length != shape_.header_length ||
                       VarintSizeFromFirstByte(h[3]) != s1 ||
                       VarintSizeFromFirstByte(h[3 + s1]) != s2 ||
                       VarintSizeFromFirstByte(h[3 + s1 + s2]) != s3)) {
    // Learn the new layout. All reads stay before the CRC: 3 < crc_pos.
    // (The tag reads above are safe too: they run only when header_length
    // equals the learned one, whose offsets all lie before the same CRC.)
    s1 = VarintSizeFromFirstByte(h[3]);
    if (3 + s1 >= crc_pos) return false;
    s2 = VarintSizeFromFirstByte(h[3 + s1]);
    if (3 + s1 + s2 >= crc_pos) return false;
    s3 = VarintSizeFromFirstByte(h[3 + s1 + s2]);
    if (3 + s1 + s2 + s3 != crc_pos) return false;  // TLVs: general path
    shape_ = FastShape{static_cast<uint8_t>(header_length),
                       {static_cast<uint8_t>(s1), static_cast<uint8_t>(s2),
                        static_cast<uint8_t>(s3)}};
  }
  // Values by value, not through references: an out-parameter made GCC
  // spill a byte and reload 8, defeating store forwarding.
  const uint64_t stream_id = detail::LoadVarint(h + 3, s1);
  const uint64_t sequence = detail::LoadVarint(h + 3 + s1, s2);
  const uint64_t payload_length = detail::LoadVarint(h + 3 + s1 + s2, s3);
  if (SYMWIRE_UNLIKELY(!detail::IsCanonicalVarint(stream_id, s1) ||
                       !detail::IsCanonicalVarint(sequence, s2) ||
                       !detail::IsCanonicalVarint(payload_length, s3) ||
                       payload_length > options_.max_payload_bytes)) {
    return false;
  }
  const StreamIdRule rule = StreamIdRuleFor(message_type);
  if (SYMWIRE_UNLIKELY((rule == StreamIdRule::kZero && stream_id != 0) ||
                       (rule == StreamIdRule::kNonZero && stream_id == 0))) {
    return false;
  }
  const bool checksum = (flags & kFlagChecksum) != 0;
  const size_t total = header_size + static_cast<size_t>(payload_length) +
                       (checksum ? kPayloadChecksumSize : 0);
  if (input.size() < total) return false;
  if (checksum && options_.verify_payload_checksum &&
      SYMWIRE_UNLIKELY(!detail::PayloadChecksumMatches(
          h + header_size, static_cast<size_t>(payload_length)))) {
    return false;
  }
  FrameView& view = step.frame;
  view.header_ = FrameHeader{message_type, flags, stream_id, sequence};
  view.data_ = h;
  view.size_ = static_cast<uint32_t>(total);
  view.payload_size_ = static_cast<uint32_t>(payload_length);
  view.header_size_ = static_cast<uint16_t>(header_size);
  view.extensions_begin_ = static_cast<uint16_t>(crc_pos);
  step.kind = DecodeStep::Kind::kFrame;
  step.consumed = total;
  offset_ += total;
  return true;
}

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/wire/impl/decoder.ipp"
#endif

#endif  // SYMWIRE_WIRE_DECODER_HPP_
