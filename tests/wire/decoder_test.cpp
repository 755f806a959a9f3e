// File: tests/wire/decoder_test.cpp
// Tests for wire/decoder.hpp (and the FrameView of wire/frame.hpp, the
// renderings of wire/dump.hpp, the error vocabulary of error.hpp).
//
// Every error of SPEC.md §7 a decoder can produce is reached with bytes
// written by hand from SPEC.md §3-§5; headers get a correct CRC32C (computed
// with Crc32c over the hand-written bytes) so the intended check, not the
// CRC, is what fails. Each input is decoded whole, byte by byte, at every
// split point and at random split points (tests/support/feed.hpp), which
// must all agree. Errors are checked for their absl::StatusCode (from the
// SPEC.md §7 table, written out here), their ErrorCode, the exact stream
// offset of SPEC.md §7.1 and the offending value in the message.
#include "symwire/wire/decoder.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "symwire/detail/hash.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/dump.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "tests/support/bytes.hpp"
#include "tests/support/feed.hpp"

namespace symwire {
namespace {

using testing::B;
using testing::BigEndian32;
using testing::BigEndian64;
using testing::Bytes;
using testing::Cat;
using testing::Repeat;
using testing::StepRecord;
using testing::Str;
using testing::Transcript;
using testing::WithCrc;
using Kind = StepRecord::Kind;

// ---------------------------------------------------------------------------
// Byte helpers.

// SPEC.md §3.
Bytes Preface() { return B({0x89, 0x53, 0x59, 0x4D, 0x57, 0x0D, 0x0A, 0x01}); }

// Bytes taken by header_length for a header with `fields` bytes between
// header_length and the CRC (SPEC.md §4: header_length counts the bytes
// after it, CRC included, as the shortest varint).
size_t LengthSize(size_t fields) { return fields + 4 <= 63 ? 1 : 2; }

// A header: `length_bytes` as given, then `fields`, then the CRC32C of all
// of it, big-endian.
Bytes HeaderWithLength(const Bytes& length_bytes, const Bytes& fields) {
  Bytes h = Cat({length_bytes, fields});
  return Cat({h, BigEndian32(Crc32c(h))});
}

// A header with the canonical header_length for `fields`.
Bytes Header(const Bytes& fields) {
  const size_t length = fields.size() + 4;
  const Bytes varint = length <= 63 ? B({static_cast<int>(length)})
                                    : B({0x40 | static_cast<int>(length >> 8),
                                         static_cast<int>(length & 0xFF)});
  return HeaderWithLength(varint, fields);
}

// AGENT_TASK, stream 1, sequence 0, payload_length `plen` (< 64), `tlvs`.
Bytes TaskHeader(const Bytes& tlvs, int plen = 0) {
  return Header(Cat({B({0x01, 0x00, 0x01, 0x00, plen}), tlvs}));
}

// Stream offset of the first TLV of TaskHeader(tlvs) right after a preface.
uint64_t FirstTlv(const Bytes& tlvs) {
  return 8 + LengthSize(5 + tlvs.size()) + 5;
}

// The W3C Trace Context example as a TRACEPARENT value:
// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.
Bytes TraceParentValue() {
  return B({0x00, 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
            0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36, 0x00,
            0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7, 0x01});
}

Bytes EncodeOk(const FrameHeader& header, const FrameExtensions& ext,
               absl::Span<const std::byte> payload) {
  auto size = EncodedSize(header, ext, payload.size());
  REQUIRE(size.ok());
  Bytes out(*size);
  auto n = EncodeFrame(header, ext, payload, absl::MakeSpan(out));
  REQUIRE(n.ok());
  return out;
}

// ---------------------------------------------------------------------------
// Expectations.

// The absl::StatusCode column of SPEC.md §7, written out independently of
// error.ipp's CanonicalCode().
absl::StatusCode SpecStatusCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kUnknownCriticalExtension:
      return absl::StatusCode::kUnimplemented;
    case ErrorCode::kHeaderCrcMismatch:
    case ErrorCode::kPayloadChecksumMismatch:
      return absl::StatusCode::kDataLoss;
    case ErrorCode::kHeaderTooLarge:
    case ErrorCode::kPayloadTooLarge:
    case ErrorCode::kTooManyExtensions:
    case ErrorCode::kBufferTooSmall:
      return absl::StatusCode::kResourceExhausted;
    case ErrorCode::kOk:
      return absl::StatusCode::kOk;
    default:
      return absl::StatusCode::kInvalidArgument;
  }
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return s;
}

// True if `message` contains the decimal `n` not as part of a longer number.
bool ContainsNumber(const std::string& message, uint64_t n) {
  const std::string digits = absl::StrCat(n);
  for (size_t at = message.find(digits); at != std::string::npos;
       at = message.find(digits, at + 1)) {
    const bool left_ok =
        at == 0 || !std::isdigit(static_cast<unsigned char>(message[at - 1]));
    const size_t end = at + digits.size();
    const bool right_ok =
        end == message.size() ||
        !std::isdigit(static_cast<unsigned char>(message[end]));
    if (left_ok && right_ok) return true;
  }
  return false;
}

std::string Hex8(uint32_t v) {
  return absl::StrCat("0x", absl::Hex(v, absl::kZeroPad8));
}
std::string Hex16(uint64_t v) {
  return absl::StrCat("0x", absl::Hex(v, absl::kZeroPad16));
}
std::string Hex2(int v) {
  return absl::StrCat("0x",
                      absl::Hex(static_cast<uint8_t>(v), absl::kZeroPad2));
}

DecoderOptions NoPreface() {
  DecoderOptions o;
  o.expect_preface = false;
  return o;
}

// The smallest valid frame (AGENT_SYNC, all zero), valid under every
// option set used here. After a decoded frame the decoder may take its
// inline fast path, which must fall back to the general path for anything
// it does not accept; putting this frame first exercises that.
Bytes SmallFrame() { return Header(B({0x05, 0x00, 0x00, 0x00, 0x00})); }

// Decodes `input` in every feeding mode; requires that it ends in `code`
// at stream offset `offset`, the message naming every value of `numbers`
// and containing every `needles` (case-insensitive). If `input` starts with
// a preface and the error is past it, the same is required of the input
// with SmallFrame() inserted after the preface (offset moved by 10).
// Returns the transcript of `input`.
Transcript RequireError(const Bytes& input, ErrorCode code, uint64_t offset,
                        std::initializer_list<uint64_t> numbers = {},
                        std::initializer_list<std::string> needles = {},
                        const DecoderOptions& options = {}) {
  auto check = [&](const Bytes& in, uint64_t at) {
    INFO("input " << testing::HexPreview(in, 200));
    const Transcript t = testing::DecodeAllWays(in, options);
    INFO("transcript:\n" << testing::ToString(t));
    REQUIRE_FALSE(t.empty());
    const StepRecord& e = t.back();
    REQUIRE(e.kind == Kind::kError);
    CHECK(ErrorCodeName(e.error) == ErrorCodeName(code));
    CHECK(e.status_code == SpecStatusCode(code));
    CHECK_THAT(e.message, Catch::Contains(absl::StrCat("at offset ", at)));
    CHECK(e.offset == at);
    for (uint64_t n : numbers) {
      INFO("value " << n << " in: " << e.message);
      CHECK(ContainsNumber(e.message, n));
    }
    for (const std::string& needle : needles) {
      CHECK_THAT(Lower(e.message), Catch::Contains(Lower(needle)));
    }
    return t;
  };
  const Transcript t = check(input, offset);
  const Bytes preface = Preface();
  if (options.expect_preface && offset >= 8 && input.size() >= 8 &&
      std::equal(preface.begin(), preface.end(), input.begin())) {
    INFO("with a frame before the bad bytes");
    const Bytes shifted =
        Cat({preface, SmallFrame(), Bytes(input.begin() + 8, input.end())});
    const Transcript ts = check(shifted, offset + 10);
    REQUIRE(ts.size() == t.size() + 1);
    CHECK(ts[1].kind == Kind::kFrame);
  }
  return t;
}

// Decodes `input` in every feeding mode; requires that every step is a
// preface or frame (no error, nothing left over). Returns the transcript.
Transcript RequireOk(const Bytes& input, const DecoderOptions& options = {}) {
  INFO("input " << testing::HexPreview(input, 200));
  const Transcript t = testing::DecodeAllWays(input, options);
  INFO("transcript:\n" << testing::ToString(t));
  for (const StepRecord& s : t) {
    REQUIRE((s.kind == Kind::kPreface || s.kind == Kind::kFrame));
  }
  return t;
}

// The single frame of RequireOk(Preface() + frame).
StepRecord RequireOneFrame(const Bytes& frame,
                           const DecoderOptions& options = {}) {
  const Transcript t = RequireOk(Cat({Preface(), frame}), options);
  REQUIRE(t.size() == 2);
  REQUIRE(t[1].kind == Kind::kFrame);
  REQUIRE(t[1].consumed == frame.size());
  return t[1];
}

// ---------------------------------------------------------------------------
// The test support itself: its checks must be able to fail.

TEST_CASE("feed: transcripts that differ are told apart", "[feed]") {
  const Bytes stream = Cat({Preface(), SmallFrame(), SmallFrame()});
  const Transcript a = testing::FeedWhole(stream).steps;
  REQUIRE(a.size() == 3);
  CHECK(testing::DiffTranscripts(a, a).empty());
  Transcript b = a;
  b[2].header.sequence = 1;
  CHECK_FALSE(testing::DiffTranscripts(a, b).empty());
  b = a;
  b[1].payload.push_back(std::byte{0});
  CHECK_FALSE(testing::DiffTranscripts(a, b).empty());
  b = a;
  b.pop_back();
  CHECK_FALSE(testing::DiffTranscripts(a, b).empty());
  // A truncated stream ends in kIncomplete with the leftover and the hint.
  const Transcript cut =
      testing::FeedBytewise(Bytes(stream.begin(), stream.end() - 3)).steps;
  REQUIRE(cut.size() == 3);
  CHECK(cut[2].kind == Kind::kIncomplete);
  CHECK(cut[2].offset == 18);
  CHECK(cut[2].consumed == 7);
  CHECK(cut[2].bytes_needed == 10);
  CHECK_FALSE(testing::DiffTranscripts(a, cut).empty());
}

TEST_CASE("feed: offsets are parsed from messages exactly", "[feed]") {
  CHECK(testing::OffsetInMessage("bad thing at offset 12") == 12u);
  CHECK(testing::OffsetInMessage("at offset 0") == 0u);
  CHECK(testing::OffsetInMessage("x at offset 123 (more)") == 123u);
  CHECK_FALSE(testing::OffsetInMessage("no offset here").has_value());
  CHECK_FALSE(testing::OffsetInMessage("at offset x").has_value());
  CHECK(ContainsNumber("value 12 at offset 3", 12));
  CHECK_FALSE(ContainsNumber("value 123 at offset 3", 12));
  CHECK_FALSE(ContainsNumber("value 112", 12));
}

TEST_CASE("feed: every feeding mode yields the same transcript", "[feed]") {
  // Valid frames of both kinds (fast-path eligible and not) interleaved.
  const Bytes payload = Str("payload");
  const Bytes with_ext = Cat({TaskHeader(B({0x01, 0x01, 0x07}), 7), payload});
  const Bytes checksummed =
      Cat({Header(B({0x01, 0x01, 0x02, 0x00, 0x07})), payload,
           BigEndian64(detail::Xxh3Hash64(payload))});
  const Bytes stream = Cat({Preface(), SmallFrame(), with_ext, SmallFrame(),
                            checksummed, SmallFrame(), SmallFrame()});
  const Transcript t = RequireOk(stream);
  REQUIRE(t.size() == 7);
  for (size_t cut = 0; cut < stream.size(); ++cut) {
    // Every prefix ends with the frames it holds and an incomplete rest.
    const Transcript p = testing::DecodeAllWays(
        Bytes(stream.begin(),
              stream.begin() + static_cast<std::ptrdiff_t>(cut)),
        {}, {false, 0, 1, cut});
    REQUIRE_FALSE((p.empty() && cut > 0));
    for (size_t i = 0; i + 1 < p.size(); ++i) CHECK(p[i] == t[i]);
    if (!p.empty() && p.back().kind == Kind::kIncomplete) {
      CHECK(p.back().offset + p.back().consumed == cut);
    }
  }
}

// ---------------------------------------------------------------------------
// Error vocabulary (error.hpp against SPEC.md §7).

TEST_CASE("errors: codes, names and canonical codes are SPEC §7's table",
          "[errors]") {
  struct Row {
    int value;
    ErrorCode code;
    const char* name;
  };
  const Row rows[] = {
      {1, ErrorCode::kBadPreface, "BAD_PREFACE"},
      {2, ErrorCode::kUnsupportedVersion, "UNSUPPORTED_VERSION"},
      {3, ErrorCode::kNonCanonicalVarint, "NON_CANONICAL_VARINT"},
      {4, ErrorCode::kVarintOutOfRange, "VARINT_OUT_OF_RANGE"},
      {5, ErrorCode::kBadHeaderLength, "BAD_HEADER_LENGTH"},
      {6, ErrorCode::kHeaderTooLarge, "HEADER_TOO_LARGE"},
      {7, ErrorCode::kHeaderCrcMismatch, "HEADER_CRC_MISMATCH"},
      {8, ErrorCode::kUnknownMessageType, "UNKNOWN_MESSAGE_TYPE"},
      {9, ErrorCode::kReservedFlags, "RESERVED_FLAGS"},
      {10, ErrorCode::kBadStreamId, "BAD_STREAM_ID"},
      {11, ErrorCode::kMalformedHeader, "MALFORMED_HEADER"},
      {12, ErrorCode::kPayloadTooLarge, "PAYLOAD_TOO_LARGE"},
      {13, ErrorCode::kPayloadChecksumMismatch, "PAYLOAD_CHECKSUM_MISMATCH"},
      {14, ErrorCode::kMalformedExtension, "MALFORMED_EXTENSION"},
      {15, ErrorCode::kUnknownCriticalExtension, "UNKNOWN_CRITICAL_EXTENSION"},
      {16, ErrorCode::kDuplicateExtension, "DUPLICATE_EXTENSION"},
      {17, ErrorCode::kTooManyExtensions, "TOO_MANY_EXTENSIONS"},
      {18, ErrorCode::kBufferTooSmall, "BUFFER_TOO_SMALL"},
      {19, ErrorCode::kInvalidFrame, "INVALID_FRAME"},
  };
  for (const Row& r : rows) {
    INFO(r.name);
    CHECK(static_cast<int>(r.code) == r.value);
    CHECK(ErrorCodeName(r.code) == r.name);
    CHECK(CanonicalCode(r.code) == SpecStatusCode(r.code));
    const absl::Status s = MakeError(r.code, "some message");
    CHECK(s.code() == SpecStatusCode(r.code));
    CHECK(s.message() == "some message");
    CHECK(GetErrorCode(s) == r.code);
  }
  CHECK(GetErrorCode(absl::OkStatus()) == ErrorCode::kOk);
  CHECK(GetErrorCode(absl::InternalError("not ours")) == ErrorCode::kOk);
  CHECK(ErrorCodeName(static_cast<ErrorCode>(99)) == "UNKNOWN");
  // SPEC.md §7: every framing error is fatal; the encoder-only ones concern
  // one call.
  for (int v = 1; v <= 17; ++v) {
    if (v == 4) continue;
    CHECK(IsFatal(static_cast<ErrorCode>(v)));
  }
  CHECK_FALSE(IsFatal(ErrorCode::kVarintOutOfRange));
  CHECK_FALSE(IsFatal(ErrorCode::kBufferTooSmall));
  CHECK_FALSE(IsFatal(ErrorCode::kInvalidFrame));
}

// ---------------------------------------------------------------------------
// Valid streams.

TEST_CASE("decoder: preface and a frame of every type, field by field",
          "[decoder]") {
  const Bytes hello = Str("hello");
  const Bytes f_sync = Header(B({0x05, 0x00, 0x00, 0x07, 0x00}));
  const Bytes f_init = Header(B({0x00, 0x00, 0x00, 0x00, 0x00}));
  const Bytes f_task =
      Cat({Header(B({0x01, 0x00, 0x40, 0x40, 0x09, 0x05})), hello});
  const Bytes f_resp =
      Cat({Header(B({0x02, 0x03, 0x80, 0x00, 0x40, 0x00, 0x00, 0x05})), hello,
           BigEndian64(detail::Xxh3Hash64(hello))});
  const Bytes f_error = Header(B({0x03, 0x00, 0x00, 0x3F, 0x00}));
  const Bytes f_cancel = Header(B({0x04, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0x01, 0x00}));
  const Bytes stream =
      Cat({Preface(), f_sync, f_init, f_task, f_resp, f_error, f_cancel});
  const Transcript t = RequireOk(stream);
  REQUIRE(t.size() == 7);

  CHECK(t[0].kind == Kind::kPreface);
  CHECK(t[0].offset == 0);
  CHECK(t[0].consumed == 8);
  CHECK(t[0].wire_version == 1);

  struct Want {
    FrameHeader header;
    size_t size;
    Bytes payload;
    size_t trailer;
  };
  const Want want[] = {
      {{MessageType::kAgentSync, 0, 0, 7}, 10, {}, 0},
      {{MessageType::kAgentInit, 0, 0, 0}, 10, {}, 0},
      {{MessageType::kAgentTask, 0, 64, 9}, 11 + 5, hello, 0},
      {{MessageType::kAgentResponse, 3, 16384, 0}, 13 + 5 + 8, hello, 8},
      {{MessageType::kAgentError, 0, 0, 63}, 10, {}, 0},
      {{MessageType::kAgentCancel, 0, kVarintMax, 1}, 17, {}, 0},
  };
  uint64_t offset = 8;
  for (size_t i = 0; i < 6; ++i) {
    const StepRecord& s = t[i + 1];
    INFO(testing::ToString(s));
    CHECK(s.kind == Kind::kFrame);
    CHECK(s.offset == offset);
    CHECK(s.header == want[i].header);
    CHECK(s.consumed == want[i].size);
    CHECK(s.payload == want[i].payload);
    CHECK(s.trailer.size() == want[i].trailer);
    CHECK(s.extensions.empty());
    CHECK(s.extension_count == 0);
    offset += want[i].size;
  }
  CHECK(offset == stream.size());
}

TEST_CASE("decoder: several frames in one buffer come one per call",
          "[decoder]") {
  const Bytes f = Header(B({0x05, 0x00, 0x00, 0x00, 0x00}));
  const Bytes stream = Cat({Preface(), f, f, f});
  FrameDecoder d;
  absl::Span<const std::byte> in(stream);
  auto r = d.Decode(in);
  REQUIRE(r.ok());
  CHECK(r->kind == DecodeStep::Kind::kPreface);
  CHECK(r->consumed == 8);
  CHECK(r->wire_version == 1);
  CHECK(d.preface_done());
  in.remove_prefix(r->consumed);
  for (int i = 0; i < 3; ++i) {
    r = d.Decode(in);
    REQUIRE(r.ok());
    CHECK(r->kind == DecodeStep::Kind::kFrame);
    CHECK(r->consumed == 10);
    CHECK(r->frame.bytes().data() == in.data());
    in.remove_prefix(r->consumed);
    CHECK(d.stream_offset() == 8u + 10u * static_cast<uint64_t>(i + 1));
  }
  r = d.Decode(in);
  REQUIRE(r.ok());
  CHECK(r->kind == DecodeStep::Kind::kNeedMore);
  CHECK(r->bytes_needed == 1);
  CHECK(r->consumed == 0);
}

TEST_CASE("decoder: bytes_needed is exactly what the next step needs",
          "[decoder]") {
  // Preface: always all 8 bytes. Frame: the header_length varint, then
  // header_length bytes, then the whole frame (SPEC.md §7.1 steps 1, 2, 5).
  const Bytes payload = Str("0123456789");
  const Bytes frame = Cat({Header(Cat({B({0x01, 0x01, 0x05, 0x00, 0x0A}),
                                       B({0x08, 0x3C}), Repeat(0x77, 60)})),
                           payload, BigEndian64(detail::Xxh3Hash64(payload))});
  REQUIRE(frame[0] == std::byte{0x40});  // 2-byte header_length
  const size_t header_size = 2 + 5 + 62 + 4;
  REQUIRE(frame[1] == static_cast<std::byte>(header_size - 2));

  FrameDecoder d;
  const Bytes stream = Cat({Preface(), frame});
  auto need = [&](size_t prefix_len) {
    auto r = d.Decode(absl::MakeConstSpan(stream).first(prefix_len));
    REQUIRE(r.ok());
    REQUIRE(r->kind == DecodeStep::Kind::kNeedMore);
    CHECK(r->consumed == 0);
    return r->bytes_needed;
  };
  for (size_t n = 0; n < 8; ++n) CHECK(need(n) == 8);
  auto r = d.Decode(absl::MakeConstSpan(stream).first(8));
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kPreface);

  auto frame_need = [&](size_t prefix_len) {
    auto s = d.Decode(absl::MakeConstSpan(frame).first(prefix_len));
    REQUIRE(s.ok());
    REQUIRE(s->kind == DecodeStep::Kind::kNeedMore);
    return s->bytes_needed;
  };
  CHECK(frame_need(0) == 1);
  CHECK(frame_need(1) == 2);
  for (size_t n = 2; n < header_size; ++n) CHECK(frame_need(n) == header_size);
  for (size_t n = header_size; n < frame.size(); ++n) {
    CHECK(frame_need(n) == frame.size());
  }
  r = d.Decode(frame);
  REQUIRE(r.ok());
  CHECK(r->kind == DecodeStep::Kind::kFrame);
}

// ---------------------------------------------------------------------------
// Preface (SPEC.md §3).

TEST_CASE("decoder: BAD_PREFACE at each magic byte, as soon as it arrives",
          "[decoder][preface]") {
  const Bytes good = Preface();
  for (size_t i = 0; i < 7; ++i) {
    for (int flip : {0x01, 0x20, 0x80, 0xFF}) {
      Bytes bad = good;
      bad[i] = static_cast<std::byte>(static_cast<int>(good[i]) ^ flip);
      const int bad_byte = static_cast<int>(bad[i]);
      INFO("byte " << i << " = " << Hex2(bad_byte));
      // Only the bytes up to the bad one: it fails without waiting for 8.
      const Bytes prefix(bad.begin(),
                         bad.begin() + static_cast<std::ptrdiff_t>(i + 1));
      RequireError(prefix, ErrorCode::kBadPreface, i, {},
                   {Hex2(bad_byte), Hex2(static_cast<int>(good[i]))});
      // The whole preface and a frame after it: the same error.
      RequireError(Cat({bad, Header(B({0x05, 0x00, 0x00, 0x00, 0x00}))}),
                   ErrorCode::kBadPreface, i, {}, {Hex2(bad_byte)});
    }
  }
}

TEST_CASE("decoder: foreign protocols fail at their first byte",
          "[decoder][preface]") {
  // HTTP/1.1, HTTP/2's preface, TLS ClientHello, SSH, and a frame sent
  // without a preface.
  const Bytes inputs[] = {
      Str("GET / HTTP/1.1\r\n"),
      Str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      B({0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC}),
      Str("SSH-2.0-OpenSSH_9.2\r\n"),
      Header(B({0x05, 0x00, 0x00, 0x00, 0x00})),
  };
  for (const Bytes& in : inputs) {
    RequireError(in, ErrorCode::kBadPreface, 0, {},
                 {Hex2(static_cast<int>(in[0])), "0x89"});
  }
  // A TLS record (a ClientHello 0x16 0x03, an alert 0x15 0x03) where the
  // preface belongs: one side speaks TLS, the other not; the error says so
  // (issue #14 §3). Other foreign bytes do not get the hint.
  for (const Bytes& in : {B({0x16, 0x03, 0x01, 0x02, 0x00, 0x01}),
                          B({0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46})}) {
    RequireError(in, ErrorCode::kBadPreface, 0, {},
                 {"the peer answered with a TLS record: is it a tls:// "
                  "endpoint"});
  }
  const Transcript http = testing::DecodeAllWays(Str("GET / HTTP/1.1\r\n"));
  REQUIRE_FALSE(http.empty());
  CHECK_THAT(http.back().message, !Catch::Contains("TLS"));
  // Line-ending translation (CR LF -> LF) fails at offset 5.
  RequireError(B({0x89, 0x53, 0x59, 0x4D, 0x57, 0x0A, 0x01}),
               ErrorCode::kBadPreface, 5, {}, {"0x0a", "0x0d"});
}

TEST_CASE("decoder: UNSUPPORTED_VERSION at offset 7", "[decoder][preface]") {
  for (int version : {0x00, 0x02, 0x7F, 0xFF}) {
    Bytes p = Preface();
    p[7] = static_cast<std::byte>(version);
    RequireError(p, ErrorCode::kUnsupportedVersion, 7,
                 {static_cast<uint64_t>(version)});
  }
  // A correct magic and no version byte yet is not an error.
  const Bytes preface = Preface();
  const Bytes seven(preface.begin(), preface.begin() + 7);
  const Transcript whole = testing::DecodeAllWays(seven);
  REQUIRE(whole.size() == 1);
  CHECK(whole[0].kind == Kind::kIncomplete);
  CHECK(whole[0].consumed == 7);
  CHECK(whole[0].bytes_needed == 8);
}

TEST_CASE("decoder: expect_preface=false starts with a frame at offset 0",
          "[decoder][preface]") {
  const Bytes f = Header(B({0x01, 0x00, 0x02, 0x03, 0x00}));
  const Transcript t = RequireOk(Cat({f, f}), NoPreface());
  REQUIRE(t.size() == 2);
  CHECK(t[0].kind == Kind::kFrame);
  CHECK(t[0].offset == 0);
  CHECK(t[1].offset == f.size());
  CHECK(t[0].header == FrameHeader{MessageType::kAgentTask, 0, 2, 3});
  FrameDecoder d(NoPreface());
  CHECK(d.preface_done());

  // A preface where a frame is expected is a header_length: 89 53 59 4D is
  // the canonical 4-byte varint 0x0953594D = 156457293, too large (a header
  // of 156457297 bytes).
  RequireError(Cat({Preface(), f}), ErrorCode::kHeaderTooLarge, 0,
               {156457297, 4096}, {}, NoPreface());
  // Error offsets count from the first frame byte.
  RequireError(Cat({f, Header(B({0x06, 0x00, 0x00, 0x00, 0x00}))}),
               ErrorCode::kUnknownMessageType, f.size() + 1, {6}, {},
               NoPreface());
}

// ---------------------------------------------------------------------------
// header_length (SPEC.md §7.1 step 1).

TEST_CASE("decoder: non-canonical header_length is NON_CANONICAL_VARINT",
          "[decoder][header_length]") {
  struct Case {
    Bytes bytes;
    uint64_t value;
  };
  const Case cases[] = {
      {B({0x40, 0x0A}), 10},
      {B({0x40, 0x3F}), 63},
      {B({0x40, 0x05}), 5},  // non-canonical wins over "below 9"
      {B({0x80, 0x00, 0x00, 0x0A}), 10},
      {B({0x80, 0x00, 0x3F, 0xFF}), 16383},
      {B({0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0A}), 10},
      {B({0xC0, 0x00, 0x00, 0x00, 0x3F, 0xFF, 0xFF, 0xFF}), (1u << 30) - 1},
  };
  for (const Case& c : cases) {
    // Only the varint's bytes: the check is made as soon as they are there.
    RequireError(Cat({Preface(), c.bytes}), ErrorCode::kNonCanonicalVarint, 8,
                 {c.value}, {"header_length"});
    // With a frame's worth of bytes after it: the same.
    RequireError(Cat({Preface(), c.bytes, Repeat(0, 20)}),
                 ErrorCode::kNonCanonicalVarint, 8, {c.value},
                 {"header_length"});
  }
}

TEST_CASE("decoder: header_length below 9 is BAD_HEADER_LENGTH",
          "[decoder][header_length]") {
  // SPEC.md §4: at least type, flags, three 1-byte varints and the CRC.
  for (int n = 0; n < 9; ++n) {
    RequireError(Cat({Preface(), B({n})}), ErrorCode::kBadHeaderLength, 8,
                 {static_cast<uint64_t>(n)});
  }
  // After a frame, at that frame's end.
  const Bytes f = Header(B({0x05, 0x00, 0x00, 0x00, 0x00}));
  RequireError(Cat({Preface(), f, B({0x08}), Repeat(0, 9)}),
               ErrorCode::kBadHeaderLength, 8 + f.size(), {8});
  // 9 is the minimum: with one byte the decoder waits for the 10-byte
  // header.
  const Transcript t = testing::DecodeAllWays(Cat({Preface(), B({0x09})}));
  REQUIRE(t.size() == 2);
  CHECK(t[1].kind == Kind::kIncomplete);
  CHECK(t[1].bytes_needed == 10);
}

TEST_CASE("decoder: a header above the limit is HEADER_TOO_LARGE",
          "[decoder][header_length]") {
  // The limit is on the whole header: header_length's varint plus its value
  // (SPEC.md §8).
  struct Case {
    Bytes bytes;
    uint64_t value;
    uint64_t header;
  };
  const Case cases[] = {
      {B({0x4F, 0xFF}), 4095, 4097},  // one byte over the default 4096
      {B({0x50, 0x01}), 4097, 4099},
      {B({0x7F, 0xFF}), 16383, 16385},
      {B({0x80, 0x00, 0x40, 0x00}), 16384, 16388},
      {B({0xC0, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00}), 1u << 30,
       (1u << 30) + 8},
      {B({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), kVarintMax,
       kVarintMax + 8},
  };
  for (const Case& c : cases) {
    // Reported without waiting for the header.
    RequireError(Cat({Preface(), c.bytes}), ErrorCode::kHeaderTooLarge, 8,
                 {c.header, 4096});
  }
  // header_length 4094 (4F FE) is a 4096-byte header: the decoder waits.
  const Transcript wait =
      testing::DecodeAllWays(Cat({Preface(), B({0x4F, 0xFE})}));
  REQUIRE(wait.size() == 2);
  CHECK(wait[1].kind == Kind::kIncomplete);
  CHECK(wait[1].bytes_needed == 4096);
  // A 4096-byte header is within the default limit.
  const Bytes big_fields =
      Cat({B({0x01, 0x00, 0x01, 0x00, 0x00, 0x08, 0x4F, 0xF2}),
           Repeat(0x31, 4096 - 2 - 8 - 4)});
  const Bytes h4096 = Header(big_fields);
  REQUIRE(h4096.size() == 4096);
  RequireOneFrame(h4096);

  // A configured limit.
  DecoderOptions ten;
  ten.max_header_bytes = 10;
  RequireOneFrame(Header(B({0x05, 0x00, 0x00, 0x00, 0x00})), ten);
  RequireError(
      Cat({Preface(), Header(B({0x05, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00}))}),
      ErrorCode::kHeaderTooLarge, 8, {12, 10}, {}, ten);
  // The same for an 11-byte header without extensions or checksum (a frame
  // the decoder's fast path would otherwise take after a decoded frame).
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x40, 0x40, 0x00, 0x00}))}),
      ErrorCode::kHeaderTooLarge, 8, {11, 10}, {}, ten);
  // The largest header: header_length 16383 (7F FF), 16385 bytes.
  DecoderOptions max;
  max.max_header_bytes = 16385;
  const Bytes h16385 =
      Header(Cat({B({0x01, 0x00, 0x01, 0x00, 0x00, 0x08, 0x7F, 0xF3}),
                  Repeat(0x32, 16371)}));
  REQUIRE(h16385.size() == 16385);
  testing::AllWaysOptions fast;
  fast.bytewise = false;
  const Transcript t =
      testing::DecodeAllWays(Cat({Preface(), h16385}), max, fast);
  REQUIRE(t.size() == 2);
  CHECK(t[1].kind == Kind::kFrame);
  CHECK(t[1].header_size == 16385);
  // One limit byte less rejects it.
  max.max_header_bytes = 16384;
  RequireError(Cat({Preface(), h16385}), ErrorCode::kHeaderTooLarge, 8,
               {16385, 16384}, {}, max);
}

TEST_CASE("decoder: headers of 64 and 66 bytes; each has one encoding",
          "[decoder][header_length]") {
  // header_length 63 (3F) is the largest 1-byte value: a 64-byte header.
  const Bytes fields59 =
      Cat({B({0x01, 0x00, 0x01, 0x00, 0x00, 0x08, 0x34}), Repeat(0x5C, 52)});
  const Bytes h64 = HeaderWithLength(B({0x3F}), fields59);
  REQUIRE(h64.size() == 64);
  REQUIRE(h64 == Header(fields59));
  const StepRecord s64 = RequireOneFrame(h64);
  CHECK(s64.header_size == 64);
  REQUIRE(s64.extensions.size() == 1);
  CHECK(s64.extensions[0].value == Repeat(0x5C, 52));
  // header_length 64 (40 40) is the smallest 2-byte value: 66 bytes.
  const Bytes fields60 =
      Cat({B({0x01, 0x00, 0x01, 0x00, 0x00, 0x08, 0x35}), Repeat(0x5C, 53)});
  const Bytes h66 = HeaderWithLength(B({0x40, 0x40}), fields60);
  REQUIRE(h66.size() == 66);
  REQUIRE(h66 == Header(fields60));
  CHECK(RequireOneFrame(h66).header_size == 66);
  // The 2-byte form of 63 is not another encoding of the 64-byte header.
  RequireError(Cat({Preface(), HeaderWithLength(B({0x40, 0x3F}), fields59)}),
               ErrorCode::kNonCanonicalVarint, 8, {63}, {"header_length"});
}

// ---------------------------------------------------------------------------
// Header CRC (SPEC.md §7.1 step 2).

TEST_CASE("decoder: HEADER_CRC_MISMATCH names the CRC offset and both values",
          "[decoder][crc]") {
  const Bytes payload = Str("abc");
  const Bytes good = TaskHeader(B({0x08, 0x01, 0x99}), 3);
  const size_t crc_pos = good.size() - 4;
  const uint32_t computed = Crc32c(absl::MakeConstSpan(good).first(crc_pos));
  for (size_t k = 0; k < 4; ++k) {
    for (int bit : {0x01, 0x80}) {
      Bytes bad = good;
      bad[crc_pos + k] ^= static_cast<std::byte>(bit);
      uint32_t stored = 0;
      for (size_t i = 0; i < 4; ++i) {
        stored = (stored << 8) | static_cast<uint32_t>(bad[crc_pos + i]);
      }
      INFO("CRC byte " << k << " bit " << bit);
      // Reported with only the header present.
      RequireError(Cat({Preface(), bad}), ErrorCode::kHeaderCrcMismatch,
                   8 + crc_pos, {}, {Hex8(stored), Hex8(computed)});
      RequireError(Cat({Preface(), bad, payload}),
                   ErrorCode::kHeaderCrcMismatch, 8 + crc_pos);
    }
  }
}

TEST_CASE("decoder: the CRC covers every header byte before it",
          "[decoder][crc]") {
  const Bytes good = TaskHeader(B({0x08, 0x01, 0x99}));
  const size_t crc_pos = good.size() - 4;
  // Any single changed byte between header_length and the CRC is a
  // mismatch, reported before the field it makes invalid (type 9, reserved
  // flags, ...).
  for (size_t i = 1; i < crc_pos; ++i) {
    Bytes bad = good;
    bad[i] ^= std::byte{0x09};
    INFO("changed byte " << i);
    RequireError(Cat({Preface(), bad}), ErrorCode::kHeaderCrcMismatch,
                 8 + crc_pos);
  }
  // A CRC computed without the header_length byte does not match.
  Bytes skip = good;
  const uint32_t without_length =
      Crc32c(absl::MakeConstSpan(good).subspan(1, crc_pos - 1));
  const Bytes be = BigEndian32(without_length);
  std::copy(be.begin(), be.end(), skip.begin() + static_cast<long>(crc_pos));
  RequireError(Cat({Preface(), skip}), ErrorCode::kHeaderCrcMismatch,
               8 + crc_pos);
  // A little-endian CRC does not match (the CRC is not a palindrome).
  Bytes little = good;
  std::reverse(little.begin() + static_cast<long>(crc_pos), little.end());
  REQUIRE(little != good);
  RequireError(Cat({Preface(), little}), ErrorCode::kHeaderCrcMismatch,
               8 + crc_pos);
}

TEST_CASE("decoder: CRC offsets with a 2-byte header_length, after a frame",
          "[decoder][crc]") {
  const Bytes first = Header(B({0x05, 0x00, 0x00, 0x00, 0x00}));
  Bytes second = TaskHeader(Cat({B({0x08, 0x3C}), Repeat(0x10, 60)}));
  REQUIRE(second.size() == 2 + 5 + 62 + 4);
  second.back() ^= std::byte{0x40};
  RequireError(Cat({Preface(), first, second}), ErrorCode::kHeaderCrcMismatch,
               8 + first.size() + second.size() - 4);
}

TEST_CASE("decoder: verify_header_crc=false skips the CRC only",
          "[decoder][crc][options]") {
  DecoderOptions off;
  off.verify_header_crc = false;
  Bytes f = Cat({TaskHeader(B({0x01, 0x01, 0x05}), 2), Str("hi")});
  f[f.size() - 3] ^= std::byte{0xFF};  // inside the CRC
  const StepRecord s = RequireOneFrame(f, off);
  CHECK(s.header == FrameHeader{MessageType::kAgentTask, 0, 1, 0});
  CHECK(s.payload == Str("hi"));
  CHECK(s.deadline_us == 5u);
  // Field checks still run: type 6 with a garbage CRC.
  const Bytes bad_type = B({0x09, 0x06, 0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0});
  RequireError(Cat({Preface(), bad_type}), ErrorCode::kUnknownMessageType, 9,
               {6}, {}, off);
  // And with the CRC on, the same bytes fail on the CRC.
  RequireError(Cat({Preface(), bad_type}), ErrorCode::kHeaderCrcMismatch, 14);
}

// ---------------------------------------------------------------------------
// Fixed fields (SPEC.md §7.1 step 3).

TEST_CASE("decoder: UNKNOWN_MESSAGE_TYPE for type > 5", "[decoder][fields]") {
  for (int type : {6, 7, 0x3F, 0x80, 0xFF}) {
    RequireError(Cat({Preface(), Header(B({type, 0x00, 0x01, 0x00, 0x00}))}),
                 ErrorCode::kUnknownMessageType, 9,
                 {static_cast<uint64_t>(type)});
  }
  // With a 2-byte header_length the type is at frame offset 2.
  RequireError(
      Cat({Preface(), Header(Cat({B({0x06, 0x00, 0x01, 0x00, 0x00, 0x08, 0x3C}),
                                  Repeat(0, 60)}))}),
      ErrorCode::kUnknownMessageType, 10, {6});
  // Type is checked before flags.
  RequireError(Cat({Preface(), Header(B({0x06, 0xFC, 0x01, 0x00, 0x00}))}),
               ErrorCode::kUnknownMessageType, 9, {6});
}

TEST_CASE("decoder: RESERVED_FLAGS for each reserved bit and misplaced FINAL",
          "[decoder][fields]") {
  for (int bit = 2; bit < 8; ++bit) {
    const int flags = 1 << bit;
    RequireError(Cat({Preface(), Header(B({0x02, flags, 0x01, 0x00, 0x00}))}),
                 ErrorCode::kReservedFlags, 10, {}, {Hex2(flags)});
    // With FINAL and CHECKSUM also set: still the reserved bit.
    RequireError(
        Cat({Preface(), Header(B({0x02, flags | 0x03, 0x01, 0x00, 0x00}))}),
        ErrorCode::kReservedFlags, 10, {}, {Hex2(flags | 0x03)});
  }
  struct Case {
    int type;
    int stream;
    const char* name;
  };
  for (const Case& c : {Case{0, 0, "AGENT_INIT"}, Case{1, 1, "AGENT_TASK"},
                        Case{3, 0, "AGENT_ERROR"}, Case{4, 1, "AGENT_CANCEL"},
                        Case{5, 0, "AGENT_SYNC"}}) {
    RequireError(
        Cat({Preface(), Header(B({c.type, 0x02, c.stream, 0x00, 0x00}))}),
        ErrorCode::kReservedFlags, 10, {}, {"FINAL", c.name});
  }
  // Reserved bits are reported before the FINAL rule.
  RequireError(Cat({Preface(), Header(B({0x01, 0x06, 0x01, 0x00, 0x00}))}),
               ErrorCode::kReservedFlags, 10, {}, {"0x04"});
  // FINAL and CHECKSUM on AGENT_RESPONSE are fine.
  const StepRecord s =
      RequireOneFrame(Cat({Header(B({0x02, 0x03, 0x01, 0x00, 0x00})),
                           BigEndian64(0x2D06800538D394C2u)}));
  CHECK(s.header.flags == 3);
  CHECK(s.trailer == BigEndian64(0x2D06800538D394C2u));
}

TEST_CASE("decoder: BAD_STREAM_ID when SPEC §4.1's rule is broken",
          "[decoder][fields]") {
  struct Case {
    Bytes fields;
    uint64_t stream;
    const char* name;
  };
  const Case cases[] = {
      {B({0x00, 0x00, 0x01, 0x00, 0x00}), 1, "AGENT_INIT"},
      {B({0x05, 0x00, 0x80, 0x00, 0x40, 0x00, 0x00, 0x00}), 16384,
       "AGENT_SYNC"},
      {B({0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00,
          0x00}),
       kVarintMax, "AGENT_SYNC"},
      {B({0x01, 0x00, 0x00, 0x00, 0x00}), 0, "AGENT_TASK"},
      {B({0x02, 0x00, 0x00, 0x00, 0x00}), 0, "AGENT_RESPONSE"},
      {B({0x04, 0x00, 0x00, 0x00, 0x00}), 0, "AGENT_CANCEL"},
      // The rule is checked before sequence is read (here it would overrun).
      {B({0x00, 0x00, 0x01, 0xC0, 0x00}), 1, "AGENT_INIT"},
  };
  for (const Case& c : cases) {
    RequireError(Cat({Preface(), Header(c.fields)}), ErrorCode::kBadStreamId,
                 11, {c.stream}, {c.name});
  }
  // AGENT_ERROR takes any stream id.
  CHECK(RequireOneFrame(Header(B({0x03, 0x00, 0x00, 0x00, 0x00})))
            .header.stream_id == 0);
  CHECK(RequireOneFrame(Header(B({0x03, 0x00, 0x40, 0x40, 0x00, 0x00})))
            .header.stream_id == 64);
}

TEST_CASE("decoder: non-canonical fixed fields are NON_CANONICAL_VARINT",
          "[decoder][fields]") {
  // stream_id 0 in 2 bytes on AGENT_TASK: canonical form is checked before
  // the stream-id rule.
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x40, 0x00, 0x00, 0x00}))}),
      ErrorCode::kNonCanonicalVarint, 11, {0}, {"stream_id"});
  RequireError(
      Cat({Preface(),
           Header(B({0x01, 0x00, 0x80, 0x00, 0x00, 0x07, 0x00, 0x00}))}),
      ErrorCode::kNonCanonicalVarint, 11, {7}, {"stream_id"});
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x01, 0x40, 0x05, 0x00}))}),
      ErrorCode::kNonCanonicalVarint, 12, {5}, {"sequence"});
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x01, 0x00, 0x40, 0x05}))}),
      ErrorCode::kNonCanonicalVarint, 13, {5}, {"payload_length"});
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x01, 0x00, 0xC0, 0x00, 0x00, 0x00,
                                0x00, 0x00, 0x00, 0x01}))}),
      ErrorCode::kNonCanonicalVarint, 13, {1}, {"payload_length"});
}

TEST_CASE("decoder: MALFORMED_HEADER when a fixed field runs past the CRC",
          "[decoder][fields]") {
  struct Case {
    Bytes fields;
    uint64_t offset;
    const char* field;
  };
  const Case cases[] = {
      // 4-byte stream_id with 3 bytes before the CRC.
      {B({0x01, 0x00, 0x80, 0x00, 0x01}), 11, "stream_id"},
      // 8-byte sequence with 2 bytes left.
      {B({0x01, 0x00, 0x01, 0xC0, 0x00}), 12, "sequence"},
      // 2-byte payload_length with 1 byte left.
      {B({0x01, 0x00, 0x01, 0x00, 0x40}), 13, "payload_length"},
      // No byte left for payload_length.
      {B({0x01, 0x00, 0x40, 0x40, 0x05}), 14, "payload_length"},
      // No byte left for sequence.
      {B({0x01, 0x00, 0x80, 0x00, 0x40, 0x00}), 15, "sequence"},
  };
  for (const Case& c : cases) {
    const Bytes h = Header(c.fields);
    REQUIRE(h.size() == 1 + c.fields.size() + 4);
    RequireError(Cat({Preface(), h}), ErrorCode::kMalformedHeader, c.offset, {},
                 {c.field});
  }
}

TEST_CASE("decoder: SetMaxPayloadBytes applies from the next header on",
          "[decoder][fields][options]") {
  // A session holds 8192 before its handshake (SPEC.md §15.2) and raises the
  // limit once established.
  DecoderOptions hundred;
  hundred.max_payload_bytes = 100;
  const Bytes f101 =
      Cat({Header(B({0x01, 0x00, 0x01, 0x00, 0x40, 0x65})), Repeat(0x61, 101)});
  const Bytes f50 =
      Cat({Header(B({0x01, 0x00, 0x01, 0x00, 0x32})), Repeat(0x62, 50)});
  const Bytes in = Cat({Preface(), f101, f101});
  {
    FrameDecoder d(hundred);
    auto step = d.Decode(in);
    REQUIRE(step.ok());
    REQUIRE(step->kind == DecodeStep::Kind::kPreface);
    auto refused = d.Decode(absl::MakeConstSpan(in).subspan(8));
    CHECK(GetErrorCode(refused.status()) == ErrorCode::kPayloadTooLarge);
  }
  {
    FrameDecoder d(hundred);
    REQUIRE(d.Decode(in).ok());
    d.SetMaxPayloadBytes(101);
    CHECK(d.options().max_payload_bytes == 101);
    auto step = d.Decode(absl::MakeConstSpan(in).subspan(8));
    REQUIRE(step.ok());
    REQUIRE(step->kind == DecodeStep::Kind::kFrame);
    CHECK(step->frame.payload().size() == 101);
    // Lowered again: the next header is checked against the new limit.
    d.SetMaxPayloadBytes(100);
    auto refused = d.Decode(absl::MakeConstSpan(in).subspan(8 + f101.size()));
    CHECK(GetErrorCode(refused.status()) == ErrorCode::kPayloadTooLarge);
    CHECK_THAT(std::string(refused.status().message()),
               Catch::Contains("payload_length 101 exceeds max 100"));
  }
  {
    // A header accepted while its payload is awaited keeps its limit.
    FrameDecoder d(hundred);
    const Bytes two = Cat({Preface(), f50, f50});
    REQUIRE(d.Decode(two).ok());
    auto step = d.Decode(absl::MakeConstSpan(two).subspan(8, 20));
    REQUIRE(step.ok());
    REQUIRE(step->kind == DecodeStep::Kind::kNeedMore);
    d.SetMaxPayloadBytes(10);
    step = d.Decode(absl::MakeConstSpan(two).subspan(8, f50.size()));
    REQUIRE(step.ok());
    REQUIRE(step->kind == DecodeStep::Kind::kFrame);
    auto refused = d.Decode(absl::MakeConstSpan(two).subspan(8 + f50.size()));
    CHECK(GetErrorCode(refused.status()) == ErrorCode::kPayloadTooLarge);
  }
}

TEST_CASE("decoder: PAYLOAD_TOO_LARGE is reported with only the header",
          "[decoder][fields][options]") {
  DecoderOptions hundred;
  hundred.max_payload_bytes = 100;
  // payload_length 101 = 40 65, at frame offset 5.
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x01, 0x00, 0x40, 0x65}))}),
      ErrorCode::kPayloadTooLarge, 13, {101, 100}, {}, hundred);
  // 100 is accepted, also with a checksum (the limit is on the payload).
  const Bytes p100 = Repeat(0x61, 100);
  RequireOneFrame(Cat({Header(B({0x01, 0x00, 0x01, 0x00, 0x40, 0x64})), p100}),
                  hundred);
  RequireOneFrame(Cat({Header(B({0x01, 0x01, 0x01, 0x00, 0x40, 0x64})), p100,
                       BigEndian64(detail::Xxh3Hash64(p100))}),
                  hundred);

  // Default limit 16 MiB: 16777217 = 81 00 00 01.
  RequireError(
      Cat({Preface(),
           Header(B({0x01, 0x00, 0x01, 0x00, 0x81, 0x00, 0x00, 0x01}))}),
      ErrorCode::kPayloadTooLarge, 13, {16777217, 16777216});
  // 2^62-1.
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
                                0xFF, 0xFF, 0xFF, 0xFF}))}),
      ErrorCode::kPayloadTooLarge, 13, {kVarintMax});
  // Exactly 16 MiB: the header is accepted and the decoder asks for the
  // whole frame (without the payload being given here).
  const Bytes h16m =
      Header(B({0x01, 0x00, 0x01, 0x00, 0x81, 0x00, 0x00, 0x00}));
  const Transcript t = testing::DecodeAllWays(Cat({Preface(), h16m}));
  REQUIRE(t.size() == 2);
  CHECK(t[1].kind == Kind::kIncomplete);
  CHECK(t[1].consumed == h16m.size());
  CHECK(t[1].bytes_needed == h16m.size() + 16777216);

  // max 0: only empty payloads.
  DecoderOptions zero;
  zero.max_payload_bytes = 0;
  RequireOneFrame(Header(B({0x05, 0x00, 0x00, 0x00, 0x00})), zero);
  RequireError(
      Cat({Preface(), Header(B({0x05, 0x00, 0x00, 0x00, 0x01})), B({0x00})}),
      ErrorCode::kPayloadTooLarge, 13, {1, 0}, {}, zero);

  // Canonical form first, then the limit.
  RequireError(
      Cat({Preface(), Header(B({0x01, 0x00, 0x01, 0x00, 0x40, 0x05}))}),
      ErrorCode::kNonCanonicalVarint, 13, {5}, {}, zero);
  // The limit before any extension.
  RequireError(
      Cat({Preface(),
           Header(B({0x01, 0x00, 0x01, 0x00, 0x40, 0x65, 0x00, 0x00}))}),
      ErrorCode::kPayloadTooLarge, 13, {101}, {}, hundred);
}

// ---------------------------------------------------------------------------
// Payload checksum (SPEC.md §7.1 step 5).

TEST_CASE("decoder: PAYLOAD_CHECKSUM_MISMATCH at the checksum's offset",
          "[decoder][checksum]") {
  const Bytes payload = Str("hello, checksum");
  // AGENT_TASK with flag CHECKSUM.
  const Bytes h =
      Header(B({0x01, 0x01, 0x01, 0x00, static_cast<int>(payload.size())}));
  const uint64_t good_sum = detail::Xxh3Hash64(payload);
  const Bytes good = Cat({h, payload, BigEndian64(good_sum)});
  const StepRecord ok = RequireOneFrame(good);
  CHECK(ok.payload == payload);
  CHECK(ok.trailer == BigEndian64(good_sum));
  const uint64_t sum_offset = 8 + h.size() + payload.size();

  for (size_t i = 0; i < payload.size(); i += 7) {
    Bytes bad_payload = payload;
    bad_payload[i] ^= std::byte{0x01};
    const uint64_t computed = detail::Xxh3Hash64(bad_payload);
    REQUIRE(computed != good_sum);
    RequireError(Cat({Preface(), h, bad_payload, BigEndian64(good_sum)}),
                 ErrorCode::kPayloadChecksumMismatch, sum_offset, {},
                 {Hex16(good_sum), Hex16(computed)});
  }
  for (size_t i = 0; i < 8; ++i) {
    Bytes bad = good;
    bad[h.size() + payload.size() + i] ^= std::byte{0x80};
    RequireError(Cat({Preface(), bad}), ErrorCode::kPayloadChecksumMismatch,
                 sum_offset, {}, {Hex16(good_sum)});
  }
  // Empty payload: the trailer must be XXH3-64("") = 2D06800538D394C2.
  const Bytes h0 = Header(B({0x05, 0x01, 0x00, 0x00, 0x00}));
  RequireOneFrame(
      Cat({h0, B({0x2D, 0x06, 0x80, 0x05, 0x38, 0xD3, 0x94, 0xC2})}));
  RequireError(Cat({Preface(), h0, Repeat(0, 8)}),
               ErrorCode::kPayloadChecksumMismatch, 8 + h0.size(), {},
               {Hex16(0), Hex16(0x2D06800538D394C2u)});
  // A mismatch after a good frame names the stream offset.
  Bytes bad = good;
  bad.back() ^= std::byte{1};
  RequireError(Cat({Preface(), good, bad}), ErrorCode::kPayloadChecksumMismatch,
               sum_offset + good.size());
}

TEST_CASE("decoder: verify_payload_checksum=false still needs the trailer",
          "[decoder][checksum][options]") {
  DecoderOptions off;
  off.verify_payload_checksum = false;
  const Bytes payload = Str("data");
  const Bytes h = Header(B({0x01, 0x01, 0x01, 0x00, 0x04}));
  const Bytes junk = B({1, 2, 3, 4, 5, 6, 7, 8});
  const StepRecord s = RequireOneFrame(Cat({h, payload, junk}), off);
  CHECK(s.payload == payload);
  CHECK(s.trailer == junk);
  CHECK(s.consumed == h.size() + 4 + 8);
  // Without its last trailer byte the frame is incomplete, not decoded.
  const Bytes short_frame =
      Cat({Preface(), h, payload, B({1, 2, 3, 4, 5, 6, 7})});
  const testing::FeedResult r = testing::FeedWhole(short_frame, off);
  REQUIRE(r.problems.empty());
  REQUIRE(r.steps.size() == 2);
  CHECK(r.steps[1].kind == Kind::kIncomplete);
  CHECK(r.steps[1].bytes_needed == h.size() + 4 + 8);
  // And the frame after it is found where the trailer ends.
  const Bytes next = Header(B({0x05, 0x00, 0x00, 0x00, 0x00}));
  const Transcript t = RequireOk(Cat({Preface(), h, payload, junk, next}), off);
  REQUIRE(t.size() == 3);
  CHECK(t[2].header.type == MessageType::kAgentSync);
}

// ---------------------------------------------------------------------------
// Extensions (SPEC.md §5, §7.1 step 4).

TEST_CASE("decoder: MALFORMED_EXTENSION for broken TLV framing",
          "[decoder][extensions]") {
  struct Case {
    Bytes tlvs;
    uint64_t delta;  // from the first TLV
    std::vector<uint64_t> numbers;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {B({0x00, 0x00}), 0, {0}, "type"},                    // type 0
      {B({0x08, 0x00, 0x00, 0x01, 0xAA}), 2, {0}, "type"},  // later type 0
      {B({0x08, 0x00, 0x40}), 2, {}, "type"},               // type overruns
      {B({0x08, 0x00, 0xC0, 0, 0, 0}), 2, {}, "type"},      // 8-byte type
      {B({0x08}), 1, {}, "length"},                         // no length
      {B({0x08, 0x40}), 1, {}, "length"},                   // length overruns
      {B({0x08, 0x05, 0x01, 0x02}), 1, {5}, "length"},      // value overruns
      {B({0x08, 0x01}), 1, {1}, "length"},                  // value missing
  };
  for (const Case& c : cases) {
    INFO("TLVs " << testing::HexPreview(c.tlvs));
    const Transcript t = RequireError(
        Cat({Preface(), TaskHeader(c.tlvs)}), ErrorCode::kMalformedExtension,
        FirstTlv(c.tlvs) + c.delta, {}, {c.needle});
    for (uint64_t n : c.numbers) CHECK(ContainsNumber(t.back().message, n));
  }
}

TEST_CASE("decoder: MALFORMED_EXTENSION for values that break §5",
          "[decoder][extensions]") {
  const Bytes tp = TraceParentValue();
  Bytes tp_bad_version = tp;
  tp_bad_version[0] = std::byte{0xFF};
  Bytes tp_zero_trace = tp;
  std::fill(tp_zero_trace.begin() + 1, tp_zero_trace.begin() + 17,
            std::byte{0});
  Bytes tp_zero_parent = tp;
  std::fill(tp_zero_parent.begin() + 17, tp_zero_parent.begin() + 25,
            std::byte{0});
  struct Case {
    const char* name;
    Bytes tlvs;
    uint64_t delta;  // value offset from the first TLV
    std::vector<uint64_t> numbers;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"DEADLINE empty", B({0x01, 0x00}), 2, {0}, {"DEADLINE"}},
      {"DEADLINE 2 bytes, 1-byte varint",
       B({0x01, 0x02, 0x05, 0x00}),
       2,
       {2},
       {"DEADLINE"}},
      {"DEADLINE 1 byte, 2-byte varint",
       B({0x01, 0x01, 0x40}),
       2,
       {1},
       {"DEADLINE"}},
      {"DEADLINE 8 bytes, 4-byte varint",
       B({0x01, 0x08, 0x80, 0, 0x40, 0, 0, 0, 0, 0}),
       2,
       {8},
       {"DEADLINE"}},
      {"TRACEPARENT 25 bytes",
       Cat({B({0x02, 0x19}), Bytes(tp.begin(), tp.begin() + 25)}),
       2,
       {25},
       {"TRACEPARENT"}},
      {"TRACEPARENT 27 bytes",
       Cat({B({0x02, 0x1B}), tp, B({0x00})}),
       2,
       {27},
       {"TRACEPARENT"}},
      {"TRACEPARENT empty", B({0x02, 0x00}), 2, {0}, {"TRACEPARENT"}},
      {"TRACEPARENT version ff",
       Cat({B({0x02, 0x1A}), tp_bad_version}),
       2,
       {},
       {"version", "0xff"}},
      {"TRACEPARENT zero trace_id",
       Cat({B({0x02, 0x1A}), tp_zero_trace}),
       2,
       {},
       {"trace_id"}},
      {"TRACEPARENT zero parent_id",
       Cat({B({0x02, 0x1A}), tp_zero_parent}),
       2,
       {},
       {"parent_id"}},
      {"TRACESTATE empty", B({0x04, 0x00}), 2, {0}, {"TRACESTATE"}},
      {"TRACESTATE 513 bytes",
       Cat({B({0x04, 0x42, 0x01}), Repeat(0x61, 513)}),
       3,
       {513},
       {"TRACESTATE"}},
      {"TRACESTATE 0x1f",
       Cat({B({0x04, 0x05}), Str("abc\x1F"
                                 "d")}),
       2,
       {3},
       {"0x1f"}},
      {"TRACESTATE 0x7f",
       Cat({B({0x04, 0x02}), B({0x7F, 0x61})}),
       2,
       {0},
       {"0x7f"}},
      {"TRACESTATE 0x80",
       Cat({B({0x04, 0x02}), B({0x61, 0x80})}),
       2,
       {1},
       {"0x80"}},
      // METHOD (SPEC.md §5.1): offset is the value's first byte; the
      // message names the bad byte, its index and its stream offset.
      {"METHOD empty", B({0x09, 0x00}), 2, {0}, {"METHOD"}},
      {"METHOD 256 bytes",
       Cat({B({0x09, 0x41, 0x00}), Repeat(0x61, 256)}),
       3,
       {256},
       {"METHOD", "1..255"}},
      {"METHOD space", Cat({B({0x09, 0x03}), Str("a b")}), 2, {1}, {"0x20"}},
      {"METHOD 0x7f", B({0x09, 0x02, 0x61, 0x7F}), 2, {1}, {"0x7f"}},
      {"METHOD 0x80", B({0x09, 0x01, 0x80}), 2, {0}, {"0x80"}},
      {"METADATA empty", B({0x06, 0x00}), 2, {}, {"METADATA"}},
      {"METADATA key_length overruns",
       B({0x06, 0x01, 0x40}),
       2,
       {},
       {"METADATA"}},
      {"METADATA empty key",
       B({0x06, 0x02, 0x00, 0x61}),
       2,
       {},
       {"METADATA", "key"}},
      {"METADATA key past value",
       B({0x06, 0x02, 0x05, 0x41}),
       2,
       {5},
       {"METADATA"}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const Transcript t = RequireError(Cat({Preface(), TaskHeader(c.tlvs)}),
                                      ErrorCode::kMalformedExtension,
                                      FirstTlv(c.tlvs) + c.delta);
    for (uint64_t n : c.numbers) {
      INFO("value " << n << " in " << t.back().message);
      CHECK(ContainsNumber(t.back().message, n));
    }
    for (const std::string& s : c.needles) {
      CHECK_THAT(Lower(t.back().message), Catch::Contains(Lower(s)));
    }
  }
}

TEST_CASE("decoder: boundary values that §5 allows", "[decoder][extensions]") {
  Bytes tp = TraceParentValue();
  tp[0] = std::byte{0xFE};  // any version but 0xFF
  std::fill(tp.begin() + 1, tp.begin() + 16, std::byte{0});   // trace_id 00..01
  std::fill(tp.begin() + 18, tp.begin() + 25, std::byte{0});  // parent 01 00..
  tp[17] = std::byte{0x01};
  tp[25] = std::byte{0xFF};  // any trace_flags
  std::string printable;
  for (int c = 0x20; c <= 0x7E; ++c) printable += static_cast<char>(c);
  REQUIRE(printable.size() == 95);
  const Bytes tlvs =
      Cat({B({0x01, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),
           B({0x02, 0x1A}), tp, B({0x04, 0x40, 0x5F}), Str(printable),
           B({0x06, 0x02, 0x01, 0x00})});  // key "\0", empty value
  const StepRecord s = RequireOneFrame(TaskHeader(tlvs));
  CHECK(s.deadline_us == kVarintMax);
  REQUIRE(s.trace_parent.has_value());
  CHECK(s.trace_parent->version == 0xFE);
  CHECK(s.trace_parent->trace_flags == 0xFF);
  CHECK(s.trace_parent->trace_id[15] == std::byte{0x36});
  CHECK(s.trace_parent->parent_id[0] == std::byte{0x01});
  CHECK(s.trace_state == printable);
  REQUIRE(s.metadata.size() == 1);
  CHECK(s.metadata[0].first == std::string(1, '\0'));
  CHECK(s.metadata[0].second.empty());
  // 512 printable bytes of TRACESTATE.
  const StepRecord s512 = RequireOneFrame(
      TaskHeader(Cat({B({0x04, 0x42, 0x00}), Repeat(0x7E, 512)})));
  CHECK(s512.trace_state == std::string(512, '~'));
  // The last TLV may end exactly at the CRC with an empty value.
  const StepRecord empty_last =
      RequireOneFrame(TaskHeader(B({0x06, 0x02, 0x01, 0x41, 0x0A, 0x00})));
  CHECK(empty_last.extensions.back() == testing::ExtensionRecord{10, {}});
  CHECK(empty_last.metadata.front().first == "A");
}

TEST_CASE("decoder: non-canonical varints inside TLVs",
          "[decoder][extensions]") {
  struct Case {
    const char* name;
    Bytes tlvs;
    uint64_t delta;
    uint64_t value;
  };
  const Case cases[] = {
      {"type", B({0x40, 0x08, 0x00}), 0, 8},
      {"type after a TLV", B({0x08, 0x00, 0x80, 0x00, 0x00, 0x08, 0x00}), 2, 8},
      {"length", B({0x08, 0x40, 0x01, 0xAA}), 1, 1},
      {"DEADLINE value", B({0x01, 0x02, 0x40, 0x05}), 2, 5},
      {"DEADLINE value, 8 bytes",
       B({0x01, 0x08, 0xC0, 0, 0, 0, 0, 0, 0x40, 0x00}), 2, 16384},
      {"METADATA key_length", B({0x06, 0x03, 0x40, 0x01, 0x41}), 2, 1},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    RequireError(Cat({Preface(), TaskHeader(c.tlvs)}),
                 ErrorCode::kNonCanonicalVarint, FirstTlv(c.tlvs) + c.delta,
                 {c.value});
  }
}

TEST_CASE("decoder: UNKNOWN_CRITICAL_EXTENSION for odd unknown types",
          "[decoder][extensions]") {
  struct Case {
    Bytes type;
    uint64_t value;
  };
  const Case cases[] = {
      {B({0x03}), 3},
      {B({0x05}), 5},
      {B({0x07}), 7},
      {B({0x3F}), 63},
      {B({0x40, 0x41}), 65},
      {B({0x80, 0x00, 0x40, 0x01}), 16385},
      {B({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), kVarintMax},
  };
  for (const Case& c : cases) {
    // First TLV, and after a known and an unknown even one.
    const Bytes alone = Cat({c.type, B({0x01, 0xAA})});
    RequireError(Cat({Preface(), TaskHeader(alone)}),
                 ErrorCode::kUnknownCriticalExtension, FirstTlv(alone),
                 {c.value});
    const Bytes after =
        Cat({B({0x01, 0x01, 0x05, 0x08, 0x00}), c.type, B({0x00})});
    RequireError(Cat({Preface(), TaskHeader(after)}),
                 ErrorCode::kUnknownCriticalExtension, FirstTlv(after) + 5,
                 {c.value});
  }
}

TEST_CASE("decoder: unknown even extensions are skipped and kept in order",
          "[decoder][extensions]") {
  const Bytes tlvs = Cat({
      B({0x08, 0x01, 0xAA}),                          // 8
      B({0x40, 0x40, 0x00}),                          // 64, empty
      B({0x80, 0x00, 0x40, 0x00, 0x02, 0xBB, 0xCC}),  // 16384
      B({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0x01, 0xDD}),
      B({0x08, 0x01, 0xEE}),  // 8 again
  });
  const StepRecord s = RequireOneFrame(TaskHeader(tlvs));
  const std::vector<testing::ExtensionRecord> want = {
      {8, B({0xAA})},           {64, {}},
      {16384, B({0xBB, 0xCC})}, {kVarintMax - 1, B({0xDD})},
      {8, B({0xEE})},
  };
  CHECK(s.extensions == want);
  CHECK(s.extension_count == 5);
  CHECK(s.metadata_count == 0);
  CHECK_FALSE(s.deadline_us.has_value());
  CHECK_FALSE(s.trace_parent.has_value());
  CHECK(s.trace_state.empty());
}

TEST_CASE("decoder: DUPLICATE_EXTENSION for a repeated singleton",
          "[decoder][extensions]") {
  const Bytes tp = Cat({B({0x02, 0x1A}), TraceParentValue()});
  struct Case {
    const char* name;
    Bytes tlvs;
    uint64_t delta;  // of the second TLV's type
  };
  const std::vector<Case> cases = {
      {"DEADLINE", B({0x01, 0x01, 0x05, 0x01, 0x01, 0x06}), 3},
      {"TRACEPARENT", Cat({tp, tp}), 28},
      {"TRACESTATE", B({0x04, 0x01, 0x61, 0x04, 0x01, 0x62}), 3},
      {"METHOD", B({0x09, 0x01, 0x61, 0x09, 0x01, 0x62}), 3},
      // The duplicate is reported before its value is judged.
      {"METHOD", B({0x09, 0x01, 0x61, 0x09, 0x01, 0x20}), 3},
      // Other TLVs in between do not matter.
      {"DEADLINE",
       B({0x01, 0x01, 0x05, 0x08, 0x00, 0x06, 0x02, 0x01, 0x6B, 0x01, 0x01,
          0x06}),
       9},
      // The duplicate is reported before its value is judged.
      {"DEADLINE", B({0x01, 0x01, 0x05, 0x01, 0x00}), 3},
      {"TRACESTATE", B({0x04, 0x01, 0x61, 0x04, 0x01, 0x01}), 3},
  };
  for (const Case& c : cases) {
    INFO(c.name << " " << testing::HexPreview(c.tlvs));
    RequireError(Cat({Preface(), TaskHeader(c.tlvs)}),
                 ErrorCode::kDuplicateExtension, FirstTlv(c.tlvs) + c.delta, {},
                 {c.name});
  }
  // METADATA repeats freely, even with the same key.
  const StepRecord s = RequireOneFrame(TaskHeader(
      B({0x06, 0x03, 0x01, 0x6B, 0x31, 0x06, 0x03, 0x01, 0x6B, 0x32})));
  const std::vector<std::pair<std::string, std::string>> want = {{"k", "1"},
                                                                 {"k", "2"}};
  CHECK(s.metadata == want);
  CHECK(s.metadata_count == 2);
}

TEST_CASE("decoder: TOO_MANY_EXTENSIONS above max_extensions",
          "[decoder][extensions][options]") {
  auto empties = [](size_t n) {
    Bytes out;
    for (size_t i = 0; i < n; ++i) {
      out.push_back(std::byte{0x08});
      out.push_back(std::byte{0x00});
    }
    return out;
  };
  // Default 32.
  const StepRecord s32 = RequireOneFrame(TaskHeader(empties(32)));
  CHECK(s32.extension_count == 32);
  const Bytes e33 = empties(33);
  RequireError(Cat({Preface(), TaskHeader(e33)}), ErrorCode::kTooManyExtensions,
               FirstTlv(e33) + 64, {33, 32});
  // Counted across kinds, METADATA included.
  DecoderOptions two;
  two.max_extensions = 2;
  const Bytes three =
      B({0x06, 0x02, 0x01, 0x61, 0x01, 0x01, 0x05, 0x06, 0x02, 0x01, 0x62});
  RequireError(Cat({Preface(), TaskHeader(three)}),
               ErrorCode::kTooManyExtensions, FirstTlv(three) + 7, {3, 2}, {},
               two);
  // max 0: no extension at all; a frame without any is fine.
  DecoderOptions zero;
  zero.max_extensions = 0;
  RequireOneFrame(TaskHeader({}), zero);
  RequireError(Cat({Preface(), TaskHeader(B({0x08, 0x00}))}),
               ErrorCode::kTooManyExtensions, FirstTlv(B({0x08, 0x00})), {0},
               {}, zero);
  // SPEC.md §7.1 step 4 order: length before count, count before
  // unknown-critical.
  RequireError(Cat({Preface(), TaskHeader(B({0x08, 0x05, 0x01}))}),
               ErrorCode::kMalformedExtension,
               FirstTlv(B({0x08, 0x05, 0x01})) + 1, {}, {}, zero);
  RequireError(Cat({Preface(), TaskHeader(B({0x03, 0x00}))}),
               ErrorCode::kTooManyExtensions, FirstTlv(B({0x03, 0x00})), {}, {},
               zero);
  // Type 0 is reported before the length is looked at.
  RequireError(Cat({Preface(), TaskHeader(B({0x00, 0x40}))}),
               ErrorCode::kMalformedExtension, FirstTlv(B({0x00, 0x40})), {0},
               {"type"});
  // Critical before the value rules of known types is moot; critical
  // before a later duplicate:
  RequireError(
      Cat({Preface(),
           TaskHeader(B({0x01, 0x01, 0x05, 0x03, 0x00, 0x01, 0x01, 0x05}))}),
      ErrorCode::kUnknownCriticalExtension,
      FirstTlv(B({0x01, 0x01, 0x05, 0x03, 0x00, 0x01, 0x01, 0x05})) + 3, {3});
}

// ---------------------------------------------------------------------------
// Consecutive small frames (the decoder's inline fast path, which predicts
// the varint layout of the previous frame, must agree with the general
// path in every case).

TEST_CASE("decoder: same header_length, different varint layouts",
          "[decoder][fastpath]") {
  const Bytes p5 = Str("abcde");
  const Bytes p64 = Repeat(0x70, 64);
  // a, b, c, d with header_length 10 (0A): stream/sequence/payload_length
  // sizes (1,2,1), (2,1,1), (1,1,2) and (1,1,2) with CHECKSUM.
  const Bytes a = Cat({Header(B({0x01, 0x00, 0x01, 0x40, 0x40, 0x05})), p5});
  const Bytes b = Cat({Header(B({0x01, 0x00, 0x40, 0x40, 0x01, 0x05})), p5});
  const Bytes c = Cat({Header(B({0x01, 0x00, 0x01, 0x01, 0x40, 0x40})), p64});
  // e: (1,1,1) plus a 2-byte TLV, header_length 11.
  const Bytes d = Cat({Header(B({0x02, 0x03, 0x01, 0x01, 0x40, 0x40})), p64,
                       BigEndian64(detail::Xxh3Hash64(p64))});
  const Bytes e =
      Cat({Header(B({0x01, 0x00, 0x02, 0x03, 0x05, 0x08, 0x00})), p5});
  for (const Bytes* f : {&a, &b, &c, &d}) REQUIRE((*f)[0] == std::byte{10});
  REQUIRE(e[0] == std::byte{11});

  const Bytes stream = Cat({Preface(), a, a, b, b, c, a, d, d, e, e, a, c, b});
  const Transcript t = RequireOk(stream);
  REQUIRE(t.size() == 14);
  const std::vector<FrameHeader> want = {
      {MessageType::kAgentTask, 0, 1, 64},
      {MessageType::kAgentTask, 0, 1, 64},
      {MessageType::kAgentTask, 0, 64, 1},
      {MessageType::kAgentTask, 0, 64, 1},
      {MessageType::kAgentTask, 0, 1, 1},
      {MessageType::kAgentTask, 0, 1, 64},
      {MessageType::kAgentResponse, 3, 1, 1},
      {MessageType::kAgentResponse, 3, 1, 1},
      {MessageType::kAgentTask, 0, 2, 3},
      {MessageType::kAgentTask, 0, 2, 3},
      {MessageType::kAgentTask, 0, 1, 64},
      {MessageType::kAgentTask, 0, 1, 1},
      {MessageType::kAgentTask, 0, 64, 1},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("frame " << i);
    CHECK(t[i + 1].header == want[i]);
  }
  CHECK(t[5].payload == p64);
  CHECK(t[9].extensions == std::vector<testing::ExtensionRecord>{{8, {}}});

  // Errors in a frame whose layout is the one predicted. (The fast path
  // learns a layout from the first frame of a new header_length, so each
  // lead-in has two frames of the layout under test.)
  const Bytes lead = Cat({Preface(), c, c});
  const uint64_t at = lead.size();
  // (1,1,2) like c, payload_length 5 in 2 bytes.
  RequireError(Cat({lead, Header(B({0x01, 0x00, 0x01, 0x01, 0x40, 0x05})), p5}),
               ErrorCode::kNonCanonicalVarint, at + 5, {5}, {"payload_length"});
  // (1,1,2) like c, stream_id 0 on AGENT_TASK.
  RequireError(
      Cat({lead, Header(B({0x01, 0x00, 0x00, 0x01, 0x40, 0x40})), p64}),
      ErrorCode::kBadStreamId, at + 3, {0});
  // (1,1,2) like c, payload over a 64-byte limit.
  DecoderOptions small;
  small.max_payload_bytes = 64;
  const Bytes p65 = Repeat(0x71, 65);
  RequireError(
      Cat({lead, Header(B({0x01, 0x00, 0x02, 0x01, 0x40, 0x41})), p65}),
      ErrorCode::kPayloadTooLarge, at + 5, {65, 64}, {}, small);
  // Like d, with a bad checksum after a good checksummed frame.
  Bytes bad_d = d;
  bad_d.back() ^= std::byte{1};
  RequireError(Cat({lead, d, bad_d}), ErrorCode::kPayloadChecksumMismatch,
               at + d.size() + 11 + 64);
  // Like a (1,2,1), but the 2-byte sequence is non-canonical.
  const Bytes lead_a = Cat({Preface(), a, a});
  RequireError(
      Cat({lead_a, Header(B({0x01, 0x00, 0x01, 0x40, 0x3F, 0x05})), p5}),
      ErrorCode::kNonCanonicalVarint, lead_a.size() + 4, {63}, {"sequence"});
  DecoderOptions five;
  five.max_payload_bytes = 5;
  RequireError(
      Cat({lead_a, Header(B({0x01, 0x00, 0x01, 0x40, 0x40, 0x06})), p5}),
      ErrorCode::kPayloadTooLarge, lead_a.size() + 6, {6, 5}, {}, five);
  // (1,1,1) with a 1-byte extension region: header_length 10 again.
  RequireError(Cat({lead, Header(B({0x01, 0x00, 0x01, 0x01, 0x00, 0x08}))}),
               ErrorCode::kMalformedExtension, at + 7, {}, {"length"});
  // Same header_length, reserved flag / FINAL on a task / type 6.
  RequireError(Cat({lead, Header(B({0x01, 0x80, 0x01, 0x01, 0x40, 0x40}))}),
               ErrorCode::kReservedFlags, at + 2);
  RequireError(Cat({lead, Header(B({0x01, 0x02, 0x01, 0x01, 0x40, 0x40}))}),
               ErrorCode::kReservedFlags, at + 2, {}, {"FINAL"});
  RequireError(Cat({lead, Header(B({0x06, 0x00, 0x01, 0x01, 0x40, 0x40}))}),
               ErrorCode::kUnknownMessageType, at + 1, {6});
  // And a CRC error in a frame of the predicted layout.
  Bytes bad_crc = c;
  bad_crc[8] ^= std::byte{0x10};
  RequireError(Cat({lead, bad_crc}), ErrorCode::kHeaderCrcMismatch, at + 7);
}

// ---------------------------------------------------------------------------
// Stickiness and state.

TEST_CASE("decoder: errors are sticky", "[decoder]") {
  const Bytes good = Header(B({0x05, 0x00, 0x00, 0x00, 0x00}));
  const Bytes bad = Header(B({0x07, 0x00, 0x00, 0x00, 0x00}));
  const Bytes stream = Cat({Preface(), good, bad, good});
  FrameDecoder d;
  absl::Span<const std::byte> in(stream);
  for (int i = 0; i < 2; ++i) {
    auto r = d.Decode(in);
    REQUIRE(r.ok());
    in.remove_prefix(r->consumed);
  }
  const uint64_t offset = d.stream_offset();
  CHECK(offset == 18);
  auto r = d.Decode(in);
  REQUIRE_FALSE(r.ok());
  const absl::Status first = r.status();
  CHECK(GetErrorCode(first) == ErrorCode::kUnknownMessageType);
  CHECK(d.status() == first);
  // Skipping the bad frame does not help; nor does an empty span, a fresh
  // preface or anything else.
  in.remove_prefix(bad.size());
  for (absl::Span<const std::byte> next :
       {in, absl::Span<const std::byte>(), absl::MakeConstSpan(stream)}) {
    auto again = d.Decode(next);
    REQUIRE_FALSE(again.ok());
    CHECK(again.status() == first);
    CHECK(again.status().message() == first.message());
    CHECK(GetErrorCode(again.status()) == ErrorCode::kUnknownMessageType);
  }
  CHECK(d.stream_offset() == offset);
  // Another decoder is unaffected.
  FrameDecoder other;
  CHECK(other.status().ok());
  CHECK(other.Decode(stream).ok());
}

TEST_CASE("decoder: a buffer that moves while a frame is pending",
          "[decoder]") {
  const Bytes payload = Repeat(0x42, 1000);
  const std::array<MetadataEntry, 2> meta = {MetadataEntry{"model", "gpt"},
                                             MetadataEntry{"k", "v"}};
  FrameExtensions ext;
  ext.deadline_us = 250000;
  ext.trace_state = "a=b,c=d";
  ext.metadata = meta;
  {
    TraceParent tp;
    const Bytes v = TraceParentValue();
    tp = ParseTraceParentValue(v);
    ext.trace_parent = tp;
  }
  const Bytes frame =
      EncodeOk({MessageType::kAgentResponse, kFlagChecksum | kFlagFinal, 9, 10},
               ext, payload);
  FrameDecoder d(NoPreface());

  // Header and a bit of payload, in a buffer that is then poisoned and
  // freed.
  auto first = std::make_unique<Bytes>(frame.begin(), frame.begin() + 80);
  auto r = d.Decode(*first);
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kNeedMore);
  CHECK(r->bytes_needed == frame.size());
  std::fill(first->begin(), first->end(), std::byte{0xEE});
  first.reset();

  // More, in another buffer (at a different address, with slack in front
  // so the frame does not sit at the start of the allocation).
  auto second = std::make_unique<Bytes>(frame.size() + 64, std::byte{0xEE});
  std::copy(frame.begin(), frame.begin() + 600, second->begin() + 17);
  r = d.Decode(absl::MakeConstSpan(*second).subspan(17, 600));
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kNeedMore);
  CHECK(r->bytes_needed == frame.size());
  std::fill(second->begin(), second->end(), std::byte{0xEE});
  second.reset();

  // All of it, plus the start of another frame, in a third buffer.
  const Bytes next = Header(B({0x05, 0x00, 0x00, 0x00, 0x00}));
  const Bytes third = Cat({frame, Bytes(next.begin(), next.begin() + 3)});
  r = d.Decode(third);
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kFrame);
  const FrameView& f = r->frame;
  CHECK(r->consumed == frame.size());
  CHECK(f.bytes().data() == third.data());
  CHECK(f.payload().data() == third.data() + f.header_size());
  CHECK(Bytes(f.payload().begin(), f.payload().end()) == payload);
  CHECK(f.deadline_us() == 250000u);
  CHECK(f.trace_state() == "a=b,c=d");
  CHECK(f.trace_state().data() >= reinterpret_cast<const char*>(third.data()));
  CHECK(f.trace_state().data() <
        reinterpret_cast<const char*>(third.data() + f.header_size()));
  REQUIRE(f.trace_parent().has_value());
  CHECK(*f.trace_parent() == *ext.trace_parent);
  std::vector<MetadataEntry> got;
  for (const RawExtension& e : f.extensions()) {
    CHECK(e.value.data() >= third.data());
    CHECK(e.value.data() + e.value.size() <=
          third.data() + f.header_size() - 4);
    if (e.type == kExtMetadata) got.push_back(ParseMetadataValue(e.value));
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0] == meta[0]);
  CHECK(got[1] == meta[1]);
  CHECK(f.is_final());
  CHECK(f.has_payload_checksum());
}

// ---------------------------------------------------------------------------
// FrameView accessors.

TEST_CASE("decoder: FrameView accessors over a frame with every extension",
          "[decoder][frameview]") {
  // TLVs in an order the encoder would not use, to show wire order is kept.
  const Bytes tp = TraceParentValue();
  const Bytes tlvs = Cat({
      B({0x08, 0x02, 0xAA, 0xBB}),                     // unknown even 8
      B({0x06, 0x07, 0x05}), Str("model"), B({0x61}),  // model=a
      B({0x40, 0x40, 0x00}),                           // unknown even 64, empty
      B({0x01, 0x04, 0x80, 0x16, 0xE3, 0x60}),         // DEADLINE 1500000
      B({0x06, 0x02, 0x01}), Str("k"),                 // k=""
      B({0x04, 0x03}), Str("x=y"),                     // TRACESTATE
      B({0x02, 0x1A}), tp,                             // TRACEPARENT
      B({0x0A, 0x01, 0xCC}),                           // unknown even 10
  });
  const Bytes payload = Str("the payload");
  const Bytes header = Header(Cat(
      {B({0x02, 0x03, 0x07, 0x2A, static_cast<int>(payload.size())}), tlvs}));
  const Bytes frame =
      Cat({header, payload, BigEndian64(detail::Xxh3Hash64(payload))});
  const Bytes stream = Cat({Preface(), frame});

  FrameDecoder d;
  auto r = d.Decode(stream);
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kPreface);
  const absl::Span<const std::byte> in = absl::MakeConstSpan(stream).subspan(8);
  r = d.Decode(in);
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kFrame);
  const FrameView f = r->frame;  // a copy is as good as the original

  CHECK(f.type() == MessageType::kAgentResponse);
  CHECK(f.flags() == 3);
  CHECK(f.stream_id() == 7);
  CHECK(f.sequence() == 42);
  CHECK(f.header() == FrameHeader{MessageType::kAgentResponse, 3, 7, 42});
  CHECK(f.is_final());
  CHECK(f.has_payload_checksum());
  CHECK(f.header_size() == header.size());
  CHECK(f.size() == frame.size());
  CHECK(f.bytes().data() == in.data());
  CHECK(f.bytes().size() == frame.size());
  CHECK(f.payload().data() == in.data() + header.size());
  CHECK(Bytes(f.payload().begin(), f.payload().end()) == payload);
  CHECK(f.deadline_us() == 1500000u);
  REQUIRE(f.trace_parent().has_value());
  const TraceParent got_tp = *f.trace_parent();
  CHECK(got_tp.version == 0);
  CHECK(Bytes(got_tp.trace_id.begin(), got_tp.trace_id.end()) ==
        Bytes(tp.begin() + 1, tp.begin() + 17));
  CHECK(Bytes(got_tp.parent_id.begin(), got_tp.parent_id.end()) ==
        Bytes(tp.begin() + 17, tp.begin() + 25));
  CHECK(got_tp.trace_flags == 1);
  CHECK(f.trace_state() == "x=y");
  CHECK(f.extension_count() == 8);
  CHECK(f.metadata_count() == 2);

  std::vector<uint64_t> types;
  std::vector<MetadataEntry> meta;
  std::vector<Bytes> unknown;
  for (const RawExtension& e : f.extensions()) {
    types.push_back(e.type);
    if (e.type == kExtMetadata) meta.push_back(ParseMetadataValue(e.value));
    if (!IsKnownExtension(e.type)) {
      unknown.emplace_back(e.value.begin(), e.value.end());
    }
  }
  CHECK(types == std::vector<uint64_t>{8, 6, 64, 1, 6, 4, 2, 10});
  REQUIRE(meta.size() == 2);
  CHECK(meta[0] == MetadataEntry{"model", "a"});
  CHECK(meta[1] == MetadataEntry{"k", ""});
  CHECK(unknown == std::vector<Bytes>{B({0xAA, 0xBB}), {}, B({0xCC})});
  // The range is a forward range: iterating twice gives the same.
  size_t n = 0;
  for (auto it = f.extensions().begin(); it != f.extensions().end(); ++it) {
    CHECK(it->type == types[n++]);
  }
  CHECK(n == types.size());
  CHECK_FALSE(f.extensions().empty());
}

TEST_CASE("decoder: FrameView without extensions or payload",
          "[decoder][frameview]") {
  const Bytes frame = Header(B({0x05, 0x00, 0x00, 0x00, 0x00}));
  FrameDecoder d(NoPreface());
  auto r = d.Decode(frame);
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kFrame);
  const FrameView& f = r->frame;
  CHECK(f.payload().empty());
  CHECK(f.size() == 10);
  CHECK(f.header_size() == 10);
  CHECK_FALSE(f.deadline_us().has_value());
  CHECK_FALSE(f.trace_parent().has_value());
  CHECK(f.trace_state().empty());
  CHECK(f.extension_count() == 0);
  CHECK(f.metadata_count() == 0);
  CHECK(f.extensions().empty());
  CHECK(f.extensions().begin() == f.extensions().end());
  CHECK_FALSE(f.is_final());
  CHECK_FALSE(f.has_payload_checksum());
}

TEST_CASE("decoder: a default FrameView is empty", "[decoder][frameview]") {
  // DecodeStep carries a default FrameView for kNeedMore and kPreface.
  const FrameView f;
  CHECK(f.payload().empty());
  CHECK(f.bytes().empty());
  CHECK(f.size() == 0);
  CHECK(f.header_size() == 0);
  CHECK_FALSE(f.deadline_us().has_value());
  CHECK_FALSE(f.trace_parent().has_value());
  CHECK(f.trace_state().empty());
  CHECK(f.extension_count() == 0);
  // Checked with REQUIRE before iterating: a broken range would be
  // iterated through a null pointer.
  REQUIRE(f.extensions().empty());
  CHECK(f.extensions().begin() == f.extensions().end());

  FrameDecoder d;
  auto r = d.Decode(Preface());
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kPreface);
  REQUIRE(r->frame.extensions().empty());
}

// ---------------------------------------------------------------------------
// dump.hpp.

TEST_CASE("dump: FormatFlags", "[dump]") {
  CHECK(FormatFlags(0) == "0");
  CHECK(FormatFlags(kFlagChecksum) == "CHECKSUM");
  CHECK(FormatFlags(kFlagFinal) == "FINAL");
  CHECK(FormatFlags(kFlagFinal | kFlagChecksum) == "FINAL|CHECKSUM");
  CHECK(FormatFlags(0x80) == "0x80");
  CHECK(FormatFlags(0x84) == "0x84");
  CHECK(FormatFlags(0x81) == "CHECKSUM|0x80");
}

// Decodes the single frame in `frame` and formats it.
std::string Format(const Bytes& frame, size_t max_payload = 32) {
  FrameDecoder d(NoPreface());
  auto r = d.Decode(frame);
  REQUIRE(r.ok());
  REQUIRE(r->kind == DecodeStep::Kind::kFrame);
  return FormatFrame(r->frame, max_payload);
}

TEST_CASE("dump: FormatFrame", "[dump]") {
  // dump.hpp's own example.
  const Bytes hello = Str("hello");
  const Bytes example =
      Cat({Header(Cat({B({0x02, 0x03, 0x07, 0x2A, 0x05}),
                       B({0x01, 0x04, 0x80, 0x16, 0xE3, 0x60}),
                       B({0x06, 0x09, 0x05}), Str("modelgpt")})),
           hello, BigEndian64(detail::Xxh3Hash64(hello))});
  CHECK(Format(example) ==
        "AGENT_RESPONSE stream=7 seq=42 flags=FINAL|CHECKSUM len=5 \"hello\" "
        "deadline_us=1500000 meta{model=\"gpt\"}");

  CHECK(Format(Header(B({0x05, 0x00, 0x00, 0x00, 0x00}))) ==
        "AGENT_SYNC stream=0 seq=0 flags=0 len=0");

  // Binary payload as hex.
  CHECK(Format(Cat({Header(B({0x01, 0x00, 0x01, 0x02, 0x03})),
                    B({0x00, 0xFF, 0x10})})) ==
        "AGENT_TASK stream=1 seq=2 flags=0 len=3 0x00ff10");

  // Truncated after max_payload_bytes.
  CHECK(
      Format(Cat({Header(B({0x01, 0x00, 0x01, 0x02, 0x28})), Repeat(0x61, 40)}),
             8) == "AGENT_TASK stream=1 seq=2 flags=0 len=40 \"aaaaaaaa\"...");

  // TRACEPARENT, TRACESTATE, two METADATA, unknown extensions.
  const Bytes all = Header(Cat({
      B({0x03, 0x00, 0x00, 0x05, 0x00}),
      B({0x02, 0x1A}),
      TraceParentValue(),
      B({0x04, 0x03}),
      Str("a=b"),
      B({0x06, 0x02, 0x01}),
      Str("x"),
      B({0x08, 0x01, 0xAA}),
      B({0x06, 0x03, 0x01}),
      Str("yz"),
      B({0x0A, 0x02}),
      Str("hi"),
  }));
  CHECK(Format(all) ==
        "AGENT_ERROR stream=0 seq=5 flags=0 len=0 "
        "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "
        "tracestate=\"a=b\" meta{x=\"\" y=\"z\"} ext{8:0xaa 10:\"hi\"}");
}

TEST_CASE("decoder: METHOD is known and method() returns it",
          "[decoder][extensions]") {
  // SPEC.md §5.1: type 9 is critical, so before this version it was
  // UNKNOWN_CRITICAL_EXTENSION; now it decodes, and method() is a view of
  // the value. Every visible ASCII byte is allowed, at 1 and 255 bytes.
  std::string all;
  for (int c = 0x21; c <= 0x7E; ++c) all += static_cast<char>(c);
  for (const std::string& name :
       {std::string("summarize"), std::string("a"), all, std::string(255, '~'),
        std::string("/pkg.Svc/Do")}) {
    INFO(name);
    const Bytes tlvs =
        Cat({B({0x09}),
             name.size() < 64 ? B({static_cast<uint8_t>(name.size())})
                              : B({0x40, static_cast<uint8_t>(name.size())}),
             Str(name)});
    const Bytes stream = Cat({Preface(), TaskHeader(tlvs)});
    FrameDecoder dec;
    auto step = dec.Decode(stream);
    REQUIRE(step.ok());
    REQUIRE(step->kind == DecodeStep::Kind::kPreface);
    auto frame = dec.Decode(absl::MakeConstSpan(stream).subspan(8));
    REQUIRE(frame.ok());
    REQUIRE(frame->kind == DecodeStep::Kind::kFrame);
    CHECK(frame->frame.method() == name);
    CHECK(frame->frame.extension_count() == 1);
  }
  // No METHOD: empty.
  const Bytes plain = Cat({Preface(), TaskHeader(B({0x08, 0x00}))});
  FrameDecoder dec;
  REQUIRE(dec.Decode(plain).ok());
  auto frame = dec.Decode(absl::MakeConstSpan(plain).subspan(8));
  REQUIRE(frame.ok());
  CHECK(frame->frame.method().empty());
}

}  // namespace
}  // namespace symwire
