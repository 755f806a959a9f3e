// File: symwire/wire/impl/decoder.ipp
// Out-of-line bodies of FrameDecoder. Check order follows SPEC.md §7.1 so
// every implementation reports the same error for the same bytes.
#ifndef SYMWIRE_WIRE_IMPL_DECODER_IPP_
#define SYMWIRE_WIRE_IMPL_DECODER_IPP_

#include <algorithm>
#include <boost/endian/conversion.hpp>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "symwire/detail/hash.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/detail/crc32c_short.hpp"
#include "symwire/wire/detail/layout.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire {
namespace detail {

// Error builders live out of line and cold so the decode fast path stays a
// short run of compares and loads.
SYMWIRE_COLD inline absl::Status DecodeError(ErrorCode code,
                                             absl::string_view what,
                                             uint64_t offset) {
  return MakeError(code, absl::StrCat(what, " at offset ", offset));
}

inline absl::Status NeedMore(DecodeStep& step, size_t bytes_needed) {
  step.kind = DecodeStep::Kind::kNeedMore;
  step.bytes_needed = static_cast<uint32_t>(bytes_needed);
  return absl::OkStatus();
}

// The Status for a failed ReadField at header offset `pos`: `overrun` is
// MALFORMED_HEADER for fixed fields and MALFORMED_EXTENSION inside TLVs.
SYMWIRE_COLD inline absl::Status FieldError(FieldResult result,
                                            ErrorCode overrun,
                                            absl::string_view what,
                                            uint64_t value, size_t size,
                                            size_t left, uint64_t offset) {
  if (result == FieldResult::kNonCanonical) {
    return NonCanonicalVarintError(value, size, offset, what);
  }
  const absl::string_view region = overrun == ErrorCode::kMalformedHeader
                                       ? "the header fields"
                                       : "the extension region";
  if (size == 0) {
    return DecodeError(
        overrun, absl::StrCat(what, " is missing: no bytes left in ", region),
        offset);
  }
  return DecodeError(
      overrun,
      absl::StrCat(size, "-byte ", what, " runs past the end of ", region, " (",
                   left, " bytes left)"),
      offset);
}

inline bool IsAllZero(absl::Span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](std::byte b) { return b == std::byte{0}; });
}

SYMWIRE_DECL bool PayloadChecksumMatches(const std::byte* payload,
                                         size_t size) noexcept {
  return Xxh3Hash64(absl::Span<const std::byte>(payload, size)) ==
         LoadBig64(payload + size);
}

}  // namespace detail

SYMWIRE_DECL FrameDecoder::FrameDecoder(DecoderOptions options)
    : options_(options),
      preface_done_(!options.expect_preface),
      fast_path_ready_(!options.expect_preface && options.use_fast_path) {
  SYMWIRE_REQUIRE(options.max_header_bytes >= kMinHeaderSize &&
                  options.max_header_bytes <= kMaxHeaderSizeLimit);
  SYMWIRE_REQUIRE(options.max_payload_bytes <= kMaxPayloadSizeLimit);
  SYMWIRE_REQUIRE(options.max_extensions <= kMaxExtensionsLimit);
}

SYMWIRE_DECL absl::Status FrameDecoder::Fail(absl::Status status) {
  fast_path_ready_ = false;
  status_ = std::move(status);
  return status_;
}

SYMWIRE_DECL absl::Status FrameDecoder::DecodeInto(
    absl::Span<const std::byte> input, DecodeStep& step) {
  if (SYMWIRE_UNLIKELY(!status_.ok())) return status_;
  if (SYMWIRE_UNLIKELY(!preface_done_)) return DecodePreface(input, step);
  if (pending_size_ != 0) {
    if (input.size() < pending_size_) {
      return detail::NeedMore(step, pending_size_);
    }
    step.frame = pending_;
    return Complete(input, pending_size_, step);
  }

  // SPEC.md §7.1 step 1: header_length, checked as soon as it is complete.
  if (input.empty()) return detail::NeedMore(step, 1);
  const size_t length_size = VarintSizeFromFirstByte(input[0]);
  if (input.size() < length_size) return detail::NeedMore(step, length_size);
  const uint64_t header_length = detail::LoadVarint(input.data(), length_size);
  if (SYMWIRE_UNLIKELY(
          !detail::IsCanonicalVarint(header_length, length_size))) {
    return Fail(detail::NonCanonicalVarintError(header_length, length_size,
                                                offset_, "header_length"));
  }
  if (SYMWIRE_UNLIKELY(header_length < kMinHeaderLength)) {
    return Fail(detail::DecodeError(
        ErrorCode::kBadHeaderLength,
        absl::StrCat("header_length ", header_length, " is below minimum ",
                     kMinHeaderLength),
        offset_));
  }
  // A canonical varint of up to 8 bytes plus its value cannot overflow.
  const uint64_t whole_header = length_size + header_length;
  if (SYMWIRE_UNLIKELY(whole_header > options_.max_header_bytes)) {
    return Fail(detail::DecodeError(
        ErrorCode::kHeaderTooLarge,
        absl::StrCat("header of ", whole_header, " bytes (header_length ",
                     header_length, ") exceeds max ",
                     options_.max_header_bytes),
        offset_));
  }
  const auto header_size = static_cast<size_t>(whole_header);
  if (input.size() < header_size) return detail::NeedMore(step, header_size);

  // Step 2: the CRC, before any other field is believed.
  const absl::Span<const std::byte> header = input.first(header_size);
  if (options_.verify_header_crc) {
    const size_t crc_pos = header_size - kHeaderCrcSize;
    const uint32_t computed = Crc32c(header.first(crc_pos));
    const uint32_t stored = detail::LoadBig32(header.data() + crc_pos);
    if (SYMWIRE_UNLIKELY(computed != stored)) {
      return Fail(detail::DecodeError(
          ErrorCode::kHeaderCrcMismatch,
          absl::StrCat("header crc32c 0x", absl::Hex(stored, absl::kZeroPad8),
                       " does not match computed 0x",
                       absl::Hex(computed, absl::kZeroPad8)),
          offset_ + crc_pos));
    }
  }

  // Steps 3-4: fields and extensions, written straight into the result.
  if (absl::Status s = ParseHeader(header, length_size, step.frame);
      SYMWIRE_UNLIKELY(!s.ok())) {
    return Fail(std::move(s));
  }
  // header_size <= 16385 and payload < 1 GiB: the sum cannot overflow.
  const size_t total =
      header_size + step.frame.payload_size_ +
      (step.frame.has_payload_checksum() ? kPayloadChecksumSize : 0);
  if (input.size() < total) {
    // Step 5 waits: keep the validated header so later calls with more
    // bytes only compare sizes.
    pending_ = step.frame;
    pending_size_ = total;
    fast_path_ready_ = false;
    step.frame = FrameView();
    return detail::NeedMore(step, total);
  }
  return Complete(input, total, step);
}

SYMWIRE_DECL absl::StatusOr<BatchResult> FrameDecoder::DecodeBatch(
    absl::Span<const std::byte> input, absl::Span<FrameView> out) {
  SYMWIRE_REQUIRE(!out.empty());
  BatchResult result;
  size_t pos = 0;
  size_t n = 0;
  bool need_more = false;
  while (n < out.size() && !need_more) {
    // The frames that look like the last one a single step decoded, in a
    // tight loop...
    if (run_loop_ != nullptr && fast_path_ready_) {
      const size_t before = n;
      n = (this->*run_loop_)(run_, input, pos, out, n);
      if (n == out.size()) break;
      if (n == before && pos != input.size()) {
        // A miss (not just the end of the input): frames of changing shapes.
        // Predict again only after 1, 3, 7, ... 63 single steps, so such a
        // stream costs about what single steps cost instead of a failed
        // prediction per frame.
        run_backoff_ =
            static_cast<uint8_t>(std::min(2 * unsigned{run_backoff_} + 1, 63u));
        run_wait_ = run_backoff_;
        run_loop_ = nullptr;
      } else {
        run_backoff_ = 0;
      }
    }
    // ...then one single step, exactly as Decode does it; at the end of the
    // input, when Decode would return kNeedMore for 1 byte (the preface
    // accepted, nothing pending, no error: fast_path_ready_), without it.
    if (pos == input.size() && fast_path_ready_) {
      result.bytes_needed = 1;
      break;
    }
    DecodeStep step;
    const absl::Span<const std::byte> rest = input.subspan(pos);
    if (!(fast_path_ready_ && DecodeFast(rest, step))) {
      if (absl::Status s = DecodeInto(rest, step); SYMWIRE_UNLIKELY(!s.ok())) {
        if (pos == 0) return s;
        break;  // recorded as sticky: the next call returns it
      }
    }
    switch (step.kind) {
      case DecodeStep::Kind::kNeedMore:
        result.bytes_needed = step.bytes_needed;
        need_more = true;
        break;
      case DecodeStep::Kind::kPreface:
        result.wire_version = step.wire_version;
        pos += step.consumed;
        break;
      case DecodeStep::Kind::kFrame:
        out[n++] = step.frame;
        pos += step.consumed;
        // A new prediction unless backing off or the frame already fits
        // the current one (it then stopped the run on a value, not on its
        // shape).
        if (run_wait_ != 0) {
          --run_wait_;
        } else if (run_loop_ == nullptr ||
                   (boost::endian::load_little_u64(
                        detail::AsUChars(step.frame.data_)) &
                    run_.mask) != run_.expect) {
          PrepareRun(step.frame);
        }
        break;
    }
  }
  result.frames = n;
  result.consumed = pos;
  return result;
}

namespace detail {
// The smallest value a canonical varint of `size` bytes holds (SPEC.md §2).
constexpr uint64_t MinCanonicalVarint(size_t size) noexcept {
  return size == 1 ? 0 : size == 2 ? 64 : size == 4 ? 16384 : uint64_t{1} << 30;
}
// The value bits of a `size`-byte varint.
constexpr uint64_t VarintValueMask(size_t size) noexcept {
  return size == 8 ? kVarintMax : (uint64_t{1} << (8 * size - 2)) - 1;
}
}  // namespace detail

SYMWIRE_DECL void FrameDecoder::PrepareRun(const FrameView& like) {
  run_loop_ = nullptr;
  // The run's layout is that of `like`, which passed every check: a 1-byte
  // header_length (header <= 64 bytes), no TLVs, and a stream_id, sequence
  // and payload_length of 1, 2 or 4 bytes each (a session's ids and
  // sequences pass 16383, the 2-byte limit, within seconds). Other frames
  // take single steps.
  const size_t header_size = like.header_size_;
  const size_t crc_pos = header_size - kHeaderCrcSize;
  if (header_size > 64 || like.extensions_begin_ != crc_pos) return;
    // The loop checks the CRC with the inline SSE4.2 instruction; without
    // it, or with the CRC check off (fuzzers, benchmarks), single steps.
#ifdef SYMWIRE_HAS_INLINE_CRC32C
  if (!detail::kCrc32cInlineHardware || !options_.verify_header_crc) return;
#else
  return;
#endif
  const std::byte* const first = like.data_;
  const size_t s1 = VarintSizeFromFirstByte(first[3]);
  const size_t s2 = VarintSizeFromFirstByte(first[3 + s1]);
  if (s1 > 4 || s2 > 4) return;
  const size_t p3 = 3 + s1 + s2;
  const size_t s3 = VarintSizeFromFirstByte(first[p3]);
  if (s3 > 4) return;
  SYMWIRE_ASSERT(p3 + s3 == crc_pos);

  detail::RunShape& shape = run_;
  // Bytes 0-2 (header_length, type, flags) and the three length tags of a
  // frame, read as one little-endian word, must equal those of `like`:
  // equal bytes pass the checks of §7.1 steps 1 and 3 (header_length range
  // and limit, type, reserved flags, FINAL rule) exactly as they passed for
  // `like`, and equal tags put the varints where they were, ending at the
  // CRC (so there are no TLVs). The varints' values are checked per frame.
  // The first two tags always lie in bytes 3-7; the third does when p3 < 8,
  // and otherwise the loop compares it on its own (DecodeRunOf).
  shape.mask = uint64_t{0xFFFFFF} | (uint64_t{0xC0} << 24) |
               (uint64_t{0xC0} << (8 * (3 + s1))) |
               (p3 < 8 ? uint64_t{0xC0} << (8 * p3) : 0);
  shape.expect =
      boost::endian::load_little_u64(detail::AsUChars(first)) & shape.mask;
  // Canonical form and the stream-id rule of §4.1 as one range per field.
  // `like` satisfied them, so no range is empty.
  uint64_t lo1 = detail::MinCanonicalVarint(s1);
  uint64_t hi1 = kVarintMax;
  switch (StreamIdRuleFor(like.type())) {
    case StreamIdRule::kZero:
      hi1 = 0;
      break;
    case StreamIdRule::kNonZero:
      lo1 = std::max<uint64_t>(lo1, 1);
      break;
    case StreamIdRule::kAny:
      break;
  }
  SYMWIRE_ASSERT(lo1 <= hi1);
  shape.lo1 = lo1;
  shape.span1 = hi1 - lo1;
  const uint64_t lo3 = detail::MinCanonicalVarint(s3);
  SYMWIRE_ASSERT(lo3 <= options_.max_payload_bytes);
  shape.span3 = options_.max_payload_bytes - lo3;
  const bool checksum = like.has_payload_checksum();
  shape.trailer = checksum ? kPayloadChecksumSize : 0;
  shape.type = like.header_.type;
  shape.flags = like.header_.flags;
  shape.verify_checksum = checksum && options_.verify_payload_checksum;

  // One loop per layout, so that every offset and size is a constant.
  static constexpr RunLoop kLoops[3][3][3] = {
      {{&FrameDecoder::DecodeRunOf<1, 1, 1>,
        &FrameDecoder::DecodeRunOf<1, 1, 2>,
        &FrameDecoder::DecodeRunOf<1, 1, 4>},
       {&FrameDecoder::DecodeRunOf<1, 2, 1>,
        &FrameDecoder::DecodeRunOf<1, 2, 2>,
        &FrameDecoder::DecodeRunOf<1, 2, 4>},
       {&FrameDecoder::DecodeRunOf<1, 4, 1>,
        &FrameDecoder::DecodeRunOf<1, 4, 2>,
        &FrameDecoder::DecodeRunOf<1, 4, 4>}},
      {{&FrameDecoder::DecodeRunOf<2, 1, 1>,
        &FrameDecoder::DecodeRunOf<2, 1, 2>,
        &FrameDecoder::DecodeRunOf<2, 1, 4>},
       {&FrameDecoder::DecodeRunOf<2, 2, 1>,
        &FrameDecoder::DecodeRunOf<2, 2, 2>,
        &FrameDecoder::DecodeRunOf<2, 2, 4>},
       {&FrameDecoder::DecodeRunOf<2, 4, 1>,
        &FrameDecoder::DecodeRunOf<2, 4, 2>,
        &FrameDecoder::DecodeRunOf<2, 4, 4>}},
      {{&FrameDecoder::DecodeRunOf<4, 1, 1>,
        &FrameDecoder::DecodeRunOf<4, 1, 2>,
        &FrameDecoder::DecodeRunOf<4, 1, 4>},
       {&FrameDecoder::DecodeRunOf<4, 2, 1>,
        &FrameDecoder::DecodeRunOf<4, 2, 2>,
        &FrameDecoder::DecodeRunOf<4, 2, 4>},
       {&FrameDecoder::DecodeRunOf<4, 4, 1>,
        &FrameDecoder::DecodeRunOf<4, 4, 2>,
        &FrameDecoder::DecodeRunOf<4, 4, 4>}}};
  // Varint sizes 1, 2, 4 to indexes 0, 1, 2.
  run_loop_ = kLoops[s1 / 2][s2 / 2][s3 / 2];
}

template <size_t kS1, size_t kS2, size_t kS3>
size_t FrameDecoder::DecodeRunOf(const detail::RunShape& shape,
                                 absl::Span<const std::byte> input, size_t& pos,
                                 absl::Span<FrameView> out, size_t n) {
  constexpr size_t kP2 = 3 + kS1;
  constexpr size_t kP3 = kP2 + kS2;
  constexpr size_t kCrcPos = kP3 + kS3;
  constexpr size_t kHeaderSize = kCrcPos + kHeaderCrcSize;  // >= 10
  constexpr uint64_t kLo2 = detail::MinCanonicalVarint(kS2);
  constexpr uint64_t kLo3 = detail::MinCanonicalVarint(kS3);
  const detail::RunShape r = shape;  // in registers, not behind a pointer
  const size_t fixed = kHeaderSize + r.trailer;
  const std::byte* const base = input.data();
  const size_t end = input.size();
  const size_t start = pos;
  size_t p = pos;
  while (n < out.size()) {
    const size_t left = end - p;
    if (left < kHeaderSize) break;
    const std::byte* const h = base + p;
    const uint64_t word = boost::endian::load_little_u64(detail::AsUChars(h));
    const uint64_t stream_id = detail::LoadVarint(h + 3, kS1);
    const uint64_t sequence = detail::LoadVarint(h + kP2, kS2);
    const uint64_t payload_length = detail::LoadVarint(h + kP3, kS3);
    // One branch for all checks: each is predictable on its own, but
    // together they would be a dozen branches per frame.
    bool bad = ((word & r.mask) != r.expect) | (stream_id - r.lo1 > r.span1) |
               (sequence < kLo2) | (payload_length - kLo3 > r.span3);
    if constexpr (kP3 >= 8) {
      // The third tag, past the word (PrepareRun): the size kS3 says.
      constexpr auto kTag3 = static_cast<uint8_t>(kS3 == 1   ? 0x00
                                                  : kS3 == 2 ? 0x40
                                                             : 0x80);
      bad |= (static_cast<uint8_t>(h[kP3]) & 0xC0) != kTag3;
    }
#ifdef SYMWIRE_HAS_INLINE_CRC32C
    // PrepareRun made sure the instruction is there and the check is on.
    bad |= detail::Crc32cShortHardware(h, kCrcPos) !=
           detail::LoadBig32(h + kCrcPos);
#endif
    const size_t total = fixed + static_cast<size_t>(payload_length);
    if (SYMWIRE_UNLIKELY(bad) || total > left) break;
    if (r.verify_checksum &&
        SYMWIRE_UNLIKELY(!detail::PayloadChecksumMatches(
            h + kHeaderSize, static_cast<size_t>(payload_length)))) {
      break;
    }
    // Every member written as a scalar store: copying a model view made
    // GCC rebuild it on the stack each frame and reload it as vectors, a
    // store-forwarding stall per frame.
    FrameView& view = out[n];
    view.header_.type = r.type;
    view.header_.flags = r.flags;
    view.header_.stream_id = stream_id;
    view.header_.sequence = sequence;
    view.data_ = h;
    view.size_ = static_cast<uint32_t>(total);
    view.payload_size_ = static_cast<uint32_t>(payload_length);
    view.deadline_us_ = 0;
    view.header_size_ = static_cast<uint16_t>(kHeaderSize);
    view.extensions_begin_ = static_cast<uint16_t>(kCrcPos);
    view.extension_count_ = 0;
    view.metadata_count_ = 0;
    view.trace_parent_offset_ = 0;
    view.trace_state_offset_ = 0;
    view.trace_state_size_ = 0;
    view.has_deadline_ = false;
    view.method_size_ = 0;
    p += total;
    ++n;
  }
  offset_ += p - start;
  pos = p;
  return n;
}

SYMWIRE_DECL absl::Status FrameDecoder::Complete(
    absl::Span<const std::byte> input, size_t total, DecodeStep& step) {
  FrameView& view = step.frame;
  view.data_ = input.data();
  view.size_ = static_cast<uint32_t>(total);
  if (view.has_payload_checksum() && options_.verify_payload_checksum) {
    const size_t sum_pos = view.header_size_ + view.payload_size_;
    const uint64_t computed = detail::Xxh3Hash64(view.payload());
    const uint64_t stored = detail::LoadBig64(input.data() + sum_pos);
    if (SYMWIRE_UNLIKELY(computed != stored)) {
      return Fail(detail::DecodeError(
          ErrorCode::kPayloadChecksumMismatch,
          absl::StrCat("payload xxh3-64 0x",
                       absl::Hex(stored, absl::kZeroPad16),
                       " does not match computed 0x",
                       absl::Hex(computed, absl::kZeroPad16)),
          offset_ + sum_pos));
    }
  }
  pending_size_ = 0;
  fast_path_ready_ = options_.use_fast_path;
  offset_ += total;
  step.kind = DecodeStep::Kind::kFrame;
  step.consumed = total;
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status FrameDecoder::DecodePreface(
    absl::Span<const std::byte> input, DecodeStep& step) {
  // Compare what has arrived so far: a foreign peer fails at its first
  // differing byte instead of after 8 bytes (SPEC.md §3).
  const size_t have = std::min(input.size(), kPrefaceMagicSize);
  for (size_t i = 0; i < have; ++i) {
    if (SYMWIRE_UNLIKELY(input[i] != kPrefaceBytes[i])) {
      // A TLS record where the preface belongs (a first byte that is a TLS
      // content type, 0x14-0x17: a ClientHello starts 0x16 0x03, an alert
      // 0x15 0x03): one side speaks TLS, the other does not. Say so. The
      // first byte alone decides, so that the error is the same however
      // the bytes are split.
      const auto first = static_cast<unsigned>(input[0]);
      const bool tls = offset_ == 0 && i == 0 && first >= 0x14 && first <= 0x17;
      return Fail(detail::DecodeError(
          ErrorCode::kBadPreface,
          absl::StrCat(
              "preface byte 0x",
              absl::Hex(static_cast<unsigned>(input[i]), absl::kZeroPad2),
              " is not the expected 0x",
              absl::Hex(static_cast<unsigned>(kPrefaceBytes[i]),
                        absl::kZeroPad2),
              tls ? " (the peer answered with a TLS record: is it a tls:// "
                    "endpoint, or a TLS client on a plain port?)"
                  : ""),
          offset_ + i));
    }
  }
  if (input.size() < kPrefaceSize) {
    return detail::NeedMore(step, kPrefaceSize);
  }
  const auto version = static_cast<uint8_t>(input[kPrefaceMagicSize]);
  if (SYMWIRE_UNLIKELY(version != kWireVersion)) {
    return Fail(detail::DecodeError(
        ErrorCode::kUnsupportedVersion,
        absl::StrCat("wire version ", version,
                     " is not supported (supported: ", kWireVersion, ")"),
        offset_ + kPrefaceMagicSize));
  }
  preface_done_ = true;
  fast_path_ready_ = options_.use_fast_path;
  offset_ += kPrefaceSize;
  step.kind = DecodeStep::Kind::kPreface;
  step.consumed = kPrefaceSize;
  step.wire_version = version;
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status FrameDecoder::ParseHeader(
    absl::Span<const std::byte> header, size_t length_size, FrameView& view) {
  // header_length >= 9 counts type, flags, three varints and the CRC, so
  // type and flags always fit before the CRC.
  const size_t end = header.size() - kHeaderCrcSize;
  size_t pos = length_size;
  SYMWIRE_ASSERT(end - pos >= 2);

  const auto type = static_cast<uint8_t>(header[pos]);
  if (SYMWIRE_UNLIKELY(!IsValidMessageType(type))) {
    return detail::DecodeError(
        ErrorCode::kUnknownMessageType,
        absl::StrCat("message type ", type, " is not one of 0..",
                     kMaxMessageType),
        offset_ + pos);
  }
  ++pos;
  const auto flags = static_cast<uint8_t>(header[pos]);
  if (SYMWIRE_UNLIKELY((flags & kFlagsReserved) != 0)) {
    return detail::DecodeError(
        ErrorCode::kReservedFlags,
        absl::StrCat("flags 0x", absl::Hex(flags, absl::kZeroPad2),
                     " set reserved bits 0x",
                     absl::Hex(flags & kFlagsReserved, absl::kZeroPad2)),
        offset_ + pos);
  }
  const auto message_type = static_cast<MessageType>(type);
  if (SYMWIRE_UNLIKELY((flags & kFlagFinal) != 0 &&
                       message_type != MessageType::kAgentResponse)) {
    return detail::DecodeError(ErrorCode::kReservedFlags,
                               absl::StrCat("flag FINAL is not allowed on ",
                                            MessageTypeName(message_type)),
                               offset_ + pos);
  }
  ++pos;

  uint64_t stream_id = 0;
  size_t size = 0;
  const size_t stream_pos = pos;
  if (auto r = detail::ReadField(header, pos, end, stream_id, size);
      SYMWIRE_UNLIKELY(r != detail::FieldResult::kOk)) {
    return detail::FieldError(r, ErrorCode::kMalformedHeader, "stream_id",
                              stream_id, size, end - pos, offset_ + pos);
  }
  const StreamIdRule rule = StreamIdRuleFor(message_type);
  if (SYMWIRE_UNLIKELY((rule == StreamIdRule::kZero && stream_id != 0) ||
                       (rule == StreamIdRule::kNonZero && stream_id == 0))) {
    return detail::DecodeError(
        ErrorCode::kBadStreamId,
        absl::StrCat("stream_id ", stream_id, " on ",
                     MessageTypeName(message_type), " must ",
                     rule == StreamIdRule::kZero ? "be 0" : "not be 0"),
        offset_ + stream_pos);
  }
  uint64_t sequence = 0;
  if (auto r = detail::ReadField(header, pos, end, sequence, size);
      SYMWIRE_UNLIKELY(r != detail::FieldResult::kOk)) {
    return detail::FieldError(r, ErrorCode::kMalformedHeader, "sequence",
                              sequence, size, end - pos, offset_ + pos);
  }
  uint64_t payload_length = 0;
  const size_t length_pos = pos;
  if (auto r = detail::ReadField(header, pos, end, payload_length, size);
      SYMWIRE_UNLIKELY(r != detail::FieldResult::kOk)) {
    return detail::FieldError(r, ErrorCode::kMalformedHeader, "payload_length",
                              payload_length, size, end - pos, offset_ + pos);
  }
  if (SYMWIRE_UNLIKELY(payload_length > options_.max_payload_bytes)) {
    return detail::DecodeError(
        ErrorCode::kPayloadTooLarge,
        absl::StrCat("payload_length ", payload_length, " exceeds max ",
                     options_.max_payload_bytes),
        offset_ + length_pos);
  }

  view.header_ = FrameHeader{message_type, flags, stream_id, sequence};
  view.payload_size_ = static_cast<uint32_t>(payload_length);
  view.header_size_ = static_cast<uint16_t>(header.size());
  view.extensions_begin_ = static_cast<uint16_t>(pos);
  if (pos == end) return absl::OkStatus();  // the common case: no TLVs
  return ParseExtensions(header, pos, view);
}

SYMWIRE_DECL absl::Status FrameDecoder::ParseExtensions(
    absl::Span<const std::byte> header, size_t begin, FrameView& view) {
  const size_t end = header.size() - kHeaderCrcSize;
  size_t pos = begin;
  uint32_t count = 0;
  size_t size = 0;
  while (pos < end) {
    const size_t type_pos = pos;
    uint64_t type = 0;
    if (auto r = detail::ReadField(header, pos, end, type, size);
        r != detail::FieldResult::kOk) {
      return detail::FieldError(r, ErrorCode::kMalformedExtension,
                                "extension type", type, size, end - pos,
                                offset_ + pos);
    }
    if (type == 0) {
      return detail::DecodeError(ErrorCode::kMalformedExtension,
                                 "extension type 0 is reserved",
                                 offset_ + type_pos);
    }
    const size_t length_pos = pos;
    uint64_t length = 0;
    if (auto r = detail::ReadField(header, pos, end, length, size);
        r != detail::FieldResult::kOk) {
      return detail::FieldError(r, ErrorCode::kMalformedExtension,
                                "extension length", length, size, end - pos,
                                offset_ + pos);
    }
    if (length > end - pos) {
      return detail::DecodeError(
          ErrorCode::kMalformedExtension,
          absl::StrCat("extension ", type, " length ", length,
                       " runs past the end of the header (", end - pos,
                       " bytes left)"),
          offset_ + length_pos);
    }
    if (++count > options_.max_extensions) {
      return detail::DecodeError(
          ErrorCode::kTooManyExtensions,
          absl::StrCat("extension ", count, " exceeds max ",
                       options_.max_extensions, " per frame"),
          offset_ + type_pos);
    }
    if (!IsKnownExtension(type) && IsCriticalExtension(type)) {
      return detail::DecodeError(
          ErrorCode::kUnknownCriticalExtension,
          absl::StrCat("unknown critical (odd) extension type ", type),
          offset_ + type_pos);
    }
    const size_t value_pos = pos;
    const absl::Span<const std::byte> value =
        header.subspan(value_pos, static_cast<size_t>(length));
    pos += value.size();
    auto duplicate = [&](absl::string_view name) {
      return detail::DecodeError(ErrorCode::kDuplicateExtension,
                                 absl::StrCat("second ", name, " extension"),
                                 offset_ + type_pos);
    };
    auto malformed = [&](absl::string_view why) {
      return detail::DecodeError(ErrorCode::kMalformedExtension, why,
                                 offset_ + value_pos);
    };
    switch (type) {
      case kExtDeadline: {
        if (view.has_deadline_) return duplicate("DEADLINE");
        if (value.empty() ||
            VarintSizeFromFirstByte(value[0]) != value.size()) {
          return malformed(absl::StrCat("DEADLINE value of ", value.size(),
                                        " bytes is not exactly one varint"));
        }
        const uint64_t us = detail::LoadVarint(value.data(), value.size());
        if (!detail::IsCanonicalVarint(us, value.size())) {
          return detail::NonCanonicalVarintError(
              us, value.size(), offset_ + value_pos, "DEADLINE");
        }
        view.has_deadline_ = true;
        view.deadline_us_ = us;
        break;
      }
      case kExtTraceParent: {
        if (view.trace_parent_offset_ != 0) return duplicate("TRACEPARENT");
        if (value.size() != kTraceParentSize) {
          return malformed(absl::StrCat("TRACEPARENT value of ", value.size(),
                                        " bytes, expected 26"));
        }
        if (value[0] == std::byte{0xFF}) {
          return malformed("TRACEPARENT version 0xff is invalid");
        }
        if (detail::IsAllZero(value.subspan(1, 16))) {
          return malformed("TRACEPARENT trace_id is all zero");
        }
        if (detail::IsAllZero(value.subspan(17, 8))) {
          return malformed("TRACEPARENT parent_id is all zero");
        }
        view.trace_parent_offset_ = static_cast<uint16_t>(value_pos);
        break;
      }
      case kExtMethod: {
        // SPEC.md §5.1: 1..255 visible ASCII bytes; offset: the value.
        if (view.method_size_ != 0) return duplicate("METHOD");
        if (value.empty() || value.size() > kMaxMethodSize) {
          return malformed(absl::StrCat("METHOD value of ", value.size(),
                                        " bytes, expected 1..255"));
        }
        for (size_t i = 0; i < value.size(); ++i) {
          const auto c = static_cast<uint8_t>(value[i]);
          if (!IsMethodByte(c)) {
            return malformed(
                absl::StrCat("METHOD byte 0x", absl::Hex(c, absl::kZeroPad2),
                             " at value index ", i, " (stream offset ",
                             offset_ + value_pos + i,
                             ") is not visible ASCII (0x21..0x7e)"));
          }
        }
        view.method_size_ = static_cast<uint8_t>(value.size());
        break;
      }
      case kExtTraceState: {
        if (view.trace_state_size_ != 0) return duplicate("TRACESTATE");
        if (value.empty() || value.size() > kMaxTraceStateSize) {
          return malformed(absl::StrCat("TRACESTATE value of ", value.size(),
                                        " bytes, expected 1..512"));
        }
        for (size_t i = 0; i < value.size(); ++i) {
          const auto c = static_cast<uint8_t>(value[i]);
          if (c < 0x20 || c > 0x7E) {
            return malformed(absl::StrCat(
                "TRACESTATE byte 0x", absl::Hex(c, absl::kZeroPad2),
                " at value index ", i, " is not printable ASCII"));
          }
        }
        view.trace_state_offset_ = static_cast<uint16_t>(value_pos);
        view.trace_state_size_ = static_cast<uint16_t>(value.size());
        break;
      }
      case kExtMetadata: {
        if (value.empty()) return malformed("METADATA value is empty");
        const size_t n = VarintSizeFromFirstByte(value[0]);
        if (n > value.size()) {
          return malformed(absl::StrCat("METADATA key_length varint of ", n,
                                        " bytes runs past the value"));
        }
        const uint64_t key_length = detail::LoadVarint(value.data(), n);
        if (!detail::IsCanonicalVarint(key_length, n)) {
          return detail::NonCanonicalVarintError(
              key_length, n, offset_ + value_pos, "METADATA key_length");
        }
        if (key_length == 0) return malformed("METADATA key is empty");
        if (key_length > value.size() - n) {
          return malformed(absl::StrCat("METADATA key_length ", key_length,
                                        " runs past the value (",
                                        value.size() - n, " bytes left)"));
        }
        ++view.metadata_count_;
        break;
      }
      default:
        break;  // unknown even type: skipped, still listed by extensions()
    }
  }
  view.extension_count_ = static_cast<uint16_t>(count);
  return absl::OkStatus();
}

}  // namespace symwire

#endif  // SYMWIRE_WIRE_IMPL_DECODER_IPP_
