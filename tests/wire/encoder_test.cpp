// File: tests/wire/encoder_test.cpp
// Tests for wire/encoder.hpp: frames written out byte by byte from SPEC.md
// §3-§6 (the CRC computed with Crc32c over the hand-written bytes), the
// header_length 1-/2-byte boundary, the largest header, every error path of
// EncodeFrame/EncodedSize/EncodedHeaderSize/EncodeGather (with a sentinel-
// filled buffer to show nothing is written), EncodeGather's parts
// against EncodeFrame's bytes, and the plain-frame path against the
// general one.
#include "symwire/wire/encoder.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "symwire/detail/hash.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/detail/plain_frame.hpp"
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
using testing::Str;
using testing::WithCrc;

constexpr std::byte kSentinel{0xA5};

std::string Hex(absl::Span<const std::byte> b) {
  return testing::HexPreview(b, 100000);
}

bool AllSentinel(absl::Span<const std::byte> b) {
  return std::all_of(b.begin(), b.end(),
                     [](std::byte x) { return x == kSentinel; });
}

Bytes EncodeOk(const FrameHeader& header, const FrameExtensions& ext,
               absl::Span<const std::byte> payload) {
  auto size = EncodedSize(header, ext, payload.size());
  REQUIRE(size.ok());
  Bytes out(*size + 3, kSentinel);  // a guard after the frame
  auto n = EncodeFrame(header, ext, payload, absl::MakeSpan(out));
  REQUIRE(n.ok());
  REQUIRE(*n == *size);
  REQUIRE(AllSentinel(absl::MakeConstSpan(out).subspan(*n)));
  out.resize(*n);
  return out;
}

TraceParent W3cExampleTraceParent() {
  // The example of the W3C Trace Context spec:
  // 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
  TraceParent tp;
  tp.version = 0;
  const Bytes trace = B({0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3,
                         0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36});
  const Bytes parent = B({0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7});
  std::copy(trace.begin(), trace.end(), tp.trace_id.begin());
  std::copy(parent.begin(), parent.end(), tp.parent_id.begin());
  tp.trace_flags = 1;
  return tp;
}

// The decoder must accept what the encoder wrote, yielding one frame.
void RequireDecodes(const Bytes& frame, DecoderOptions options = {}) {
  options.expect_preface = false;
  const testing::Transcript t = testing::DecodeAllWays(frame, options);
  REQUIRE(t.size() == 1);
  REQUIRE(t[0].kind == testing::StepRecord::Kind::kFrame);
  REQUIRE(t[0].consumed == frame.size());
}

// ---------------------------------------------------------------------------
// Exact bytes, written by hand from SPEC.md.

TEST_CASE("encoder: XXH3-64 of the empty input is SPEC §6's value",
          "[encoder]") {
  CHECK(detail::Xxh3Hash64({}) == 0x2D06800538D394C2u);
}

TEST_CASE("encoder: EncodePreface writes SPEC §3's 8 bytes", "[encoder]") {
  const Bytes expected = B({0x89, 0x53, 0x59, 0x4D, 0x57, 0x0D, 0x0A, 0x01});
  Bytes out(12, kSentinel);
  auto n = EncodePreface(absl::MakeSpan(out));
  REQUIRE(n.ok());
  CHECK(*n == 8);
  CHECK(Hex(absl::MakeConstSpan(out).first(8)) == Hex(expected));
  CHECK(AllSentinel(absl::MakeConstSpan(out).subspan(8)));

  for (size_t size : {size_t{0}, size_t{1}, size_t{7}}) {
    INFO("buffer of " << size);
    Bytes small(size + 1, kSentinel);
    auto r = EncodePreface(absl::MakeSpan(small.data(), size));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
    CHECK(GetErrorCode(r.status()) == ErrorCode::kBufferTooSmall);
    CHECK(AllSentinel(small));
  }
}

TEST_CASE("encoder: smallest frame (AGENT_SYNC, no payload) by hand",
          "[encoder]") {
  // SPEC.md §4: "09 tt ff ss qq ll c0 c1 c2 c3" - header_length counts the
  // 9 bytes after itself.
  const Bytes expected = WithCrc(B({0x09, 0x05, 0x00, 0x00, 0x00, 0x00}));
  const Bytes got = EncodeOk({MessageType::kAgentSync, 0, 0, 0}, {}, {});
  CHECK(Hex(got) == Hex(expected));
  CHECK(got.size() == 10);
  RequireDecodes(got);
}

TEST_CASE("encoder: empty payload with CHECKSUM carries XXH3 of nothing",
          "[encoder]") {
  // AGENT_INIT, flags CHECKSUM; trailer = 0x2D06800538D394C2 (SPEC.md §6).
  const Bytes expected =
      Cat({WithCrc(B({0x09, 0x00, 0x01, 0x00, 0x00, 0x00})),
           B({0x2D, 0x06, 0x80, 0x05, 0x38, 0xD3, 0x94, 0xC2})});
  const Bytes got =
      EncodeOk({MessageType::kAgentInit, kFlagChecksum, 0, 0}, {}, {});
  CHECK(Hex(got) == Hex(expected));
  RequireDecodes(got);
}

TEST_CASE("encoder: AGENT_TASK with a 2-byte sequence and a payload",
          "[encoder]") {
  // header_length 10 (0A): type 01, flags 00, stream 01, seq 64 = 40 40,
  // payload_length 02, 4 CRC bytes; then "hi".
  const Bytes expected =
      Cat({WithCrc(B({0x0A, 0x01, 0x00, 0x01, 0x40, 0x40, 0x02})), Str("hi")});
  const Bytes got =
      EncodeOk({MessageType::kAgentTask, 0, 1, 64}, {}, Str("hi"));
  CHECK(Hex(got) == Hex(expected));
  RequireDecodes(got);
}

TEST_CASE("encoder: FINAL|CHECKSUM response with a DEADLINE", "[encoder]") {
  // 1500000 us needs 4 bytes: 0x80000000 | 1500000 = 80 16 E3 60.
  // TLV 01 04 80 16 E3 60; header_length 5+6+4 = 15 = 0x0F.
  const Bytes payload = Str("hello");
  const Bytes expected =
      Cat({WithCrc(B({0x0F, 0x02, 0x03, 0x07, 0x2A, 0x05, 0x01, 0x04, 0x80,
                      0x16, 0xE3, 0x60})),
           payload, BigEndian64(detail::Xxh3Hash64(payload))});
  FrameExtensions ext;
  ext.deadline_us = 1500000;
  const Bytes got =
      EncodeOk({MessageType::kAgentResponse, kFlagFinal | kFlagChecksum, 7, 42},
               ext, payload);
  CHECK(Hex(got) == Hex(expected));
  RequireDecodes(got);
}

TEST_CASE("encoder: AGENT_ERROR with every kind of extension, in order",
          "[encoder]") {
  // Order (frame.hpp FrameExtensions): DEADLINE, TRACEPARENT, TRACESTATE,
  // METADATA..., other... . sequence 2^30 takes 8 bytes.
  const Bytes tp_value =
      B({0x00, 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
         0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36, 0x00,
         0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7, 0x01});
  REQUIRE(tp_value.size() == 26);
  // header_length: 12 field bytes + 41 TLV bytes + 4 CRC = 57 = 0x39; with
  // its own byte the header has 58.
  const Bytes expected = WithCrc(Cat({
      B({0x39, 0x03, 0x00, 0x00}),
      B({0xC0, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00}),
      B({0x00}),
      B({0x02, 0x1A}),
      tp_value,
      B({0x04, 0x03}),
      Str("a=b"),
      B({0x06, 0x03, 0x01}),
      Str("kv"),
      B({0x08, 0x01, 0xAA}),
  }));
  const std::array<MetadataEntry, 1> meta = {MetadataEntry{"k", "v"}};
  const Bytes other_value = B({0xAA});
  const std::array<RawExtension, 1> other = {RawExtension{8, other_value}};
  FrameExtensions ext;
  ext.trace_parent = W3cExampleTraceParent();
  ext.trace_state = "a=b";
  ext.metadata = meta;
  ext.other = other;
  const Bytes got =
      EncodeOk({MessageType::kAgentError, 0, 0, uint64_t{1} << 30}, ext, {});
  CHECK(Hex(got) == Hex(expected));
  auto header_size = EncodedHeaderSize(
      {MessageType::kAgentError, 0, 0, uint64_t{1} << 30}, ext, 0);
  REQUIRE(header_size.ok());
  CHECK(*header_size == 58);
  RequireDecodes(got);
}

TEST_CASE("encoder: a 64-byte metadata key takes a 2-byte key_length",
          "[encoder]") {
  // METADATA value = 40 40 + 64 key bytes (66); TLV 06 40 42 + value (69).
  // header_length = fields 04 00 05 01 00 (5) + 69 + CRC 4 = 78 = 40 4E (2
  // bytes), so the header has 80.
  const std::string key(64, 'x');
  const Bytes expected = WithCrc(Cat({B({0x40, 0x4E, 0x04, 0x00, 0x05, 0x01,
                                         0x00, 0x06, 0x40, 0x42, 0x40, 0x40}),
                                      Str(key)}));
  const std::array<MetadataEntry, 1> meta = {MetadataEntry{key, ""}};
  FrameExtensions ext;
  ext.metadata = meta;
  const Bytes got = EncodeOk({MessageType::kAgentCancel, 0, 5, 1}, ext, {});
  CHECK(got.size() == 80);
  CHECK(Hex(got) == Hex(expected));
  RequireDecodes(got);
}

// ---------------------------------------------------------------------------
// header_length boundary.

// AGENT_TASK stream 1, seq 0, no payload, one unknown even TLV (type 8)
// whose value has `value_size` bytes: 5 field bytes + TLV + 4 CRC bytes.
Bytes BoundaryFrame(size_t value_size) {
  const Bytes value(value_size, std::byte{0x5C});
  const std::array<RawExtension, 1> other = {RawExtension{8, value}};
  FrameExtensions ext;
  ext.other = other;
  return EncodeOk({MessageType::kAgentTask, 0, 1, 0}, ext, {});
}

TEST_CASE("encoder: header of exactly 63 bytes", "[encoder]") {
  // header_length = 5 field bytes + TLV 08 33 + 51 value bytes + 4 CRC = 62.
  const Bytes value(51, std::byte{0x5C});
  const Bytes expected = WithCrc(
      Cat({B({0x3E, 0x01, 0x00, 0x01, 0x00, 0x00, 0x08, 0x33}), value}));
  const Bytes got = BoundaryFrame(51);
  REQUIRE(got.size() == 63);
  CHECK(Hex(got) == Hex(expected));
  RequireDecodes(got);
}

TEST_CASE("encoder: 64 bytes is the largest header with a 1-byte length",
          "[encoder]") {
  // header_length 63 = 3F, the largest 1-byte varint.
  const Bytes value(52, std::byte{0x5C});
  const Bytes expected = WithCrc(
      Cat({B({0x3F, 0x01, 0x00, 0x01, 0x00, 0x00, 0x08, 0x34}), value}));
  const Bytes got = BoundaryFrame(52);
  REQUIRE(got.size() == 64);
  CHECK(Hex(got) == Hex(expected));
  RequireDecodes(got);
}

TEST_CASE("encoder: one byte more gives 66, with a 2-byte header_length",
          "[encoder]") {
  // header_length 64 needs 2 bytes (40 40): the header jumps from 64 to 66.
  const Bytes value(53, std::byte{0x5C});
  const Bytes expected = WithCrc(
      Cat({B({0x40, 0x40, 0x01, 0x00, 0x01, 0x00, 0x00, 0x08, 0x35}), value}));
  const Bytes got = BoundaryFrame(53);
  REQUIRE(got.size() == 66);
  CHECK(Hex(got) == Hex(expected));
  RequireDecodes(got);
}

TEST_CASE("encoder: no header is ever exactly 65 bytes", "[encoder]") {
  // SPEC.md §4: header_length counts the bytes after it. 63 fits one byte
  // (a 64-byte header), 64 needs two (66), so 65 cannot occur - and each
  // header has one encoding.
  for (size_t v = 0; v <= 120; ++v) {
    INFO("TLV value of " << v << " bytes");
    const Bytes f = BoundaryFrame(v);
    // header_length; the TLV length takes 2 bytes from 64.
    const size_t length = 5 + 1 + (v < 64 ? 1 : 2) + v + 4;
    const size_t expected = length <= 63 ? length + 1 : length + 2;
    REQUIRE(f.size() == expected);
    REQUIRE(f.size() != 65);
    if (length <= 63) {
      REQUIRE(f[0] == static_cast<std::byte>(length));
    } else {
      REQUIRE(f[0] == static_cast<std::byte>(0x40 | (length >> 8)));
      REQUIRE(f[1] == static_cast<std::byte>(length & 0xFF));
    }
  }
}

TEST_CASE("encoder: the largest header is 16385 bytes", "[encoder]") {
  // header_length 16383 (7F FF, the largest 2-byte varint) = 5 field bytes
  // + TLV (1 type + 2 length + 16371 value) + 4 CRC; the header has 16385.
  const Bytes value(16371, std::byte{0x01});
  std::array<RawExtension, 1> other = {RawExtension{8, value}};
  FrameExtensions ext;
  ext.other = other;
  const FrameHeader h{MessageType::kAgentTask, 0, 1, 0};
  auto size = EncodedHeaderSize(h, ext, 0);
  REQUIRE(size.ok());
  CHECK(*size == 16385);
  const Bytes got = EncodeOk(h, ext, {});
  REQUIRE(got.size() == 16385);
  CHECK(got[0] == std::byte{0x7F});
  CHECK(got[1] == std::byte{0xFF});
  DecoderOptions options;
  options.max_header_bytes = 16385;
  RequireDecodes(got, options);

  // One value byte more: header_length 16384 cannot be written.
  const Bytes bigger(16372, std::byte{0x01});
  other = {RawExtension{8, bigger}};
  ext.other = other;
  auto too_big = EncodedHeaderSize(h, ext, 0);
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(GetErrorCode(too_big.status()) == ErrorCode::kHeaderTooLarge);
}

// ---------------------------------------------------------------------------
// Sizes.

TEST_CASE("encoder: EncodedSize and EncodedHeaderSize match what is written",
          "[encoder]") {
  const Bytes payload(300, std::byte{0x42});
  const std::array<MetadataEntry, 2> meta = {MetadataEntry{"model", "m"},
                                             MetadataEntry{"k", ""}};
  for (uint8_t flags : {uint8_t{0}, kFlagChecksum}) {
    for (size_t plen :
         {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{300}}) {
      for (bool with_ext : {false, true}) {
        INFO("flags " << int{flags} << " payload " << plen << " ext "
                      << with_ext);
        FrameExtensions ext;
        if (with_ext) {
          ext.deadline_us = 70000;
          ext.metadata = meta;
        }
        const FrameHeader h{MessageType::kAgentTask, flags, 3, 4};
        const auto span = absl::MakeConstSpan(payload).first(plen);
        auto total = EncodedSize(h, ext, plen);
        auto header = EncodedHeaderSize(h, ext, plen);
        REQUIRE(total.ok());
        REQUIRE(header.ok());
        CHECK(*total == *header + plen + (flags != 0 ? 8 : 0));
        const Bytes f = EncodeOk(h, ext, span);
        CHECK(f.size() == *total);
        if (!with_ext) {
          auto short_form = EncodedSize(h, plen);
          REQUIRE(short_form.ok());
          CHECK(*short_form == *total);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Errors: every function reports the same error and writes nothing.

struct ErrorCase {
  std::string name;
  FrameHeader header;
  FrameExtensions ext;
  size_t payload_size = 0;
  ErrorCode error;
  std::string needle;  // a substring the message must contain
};

// Runs `c` through all four functions.
void RequireEncodeError(const ErrorCase& c) {
  INFO(c.name);
  const absl::StatusCode code = CanonicalCode(c.error);
  auto check = [&](const absl::Status& s, const char* fn) {
    INFO(fn << ": " << s);
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == code);
    CHECK(GetErrorCode(s) == c.error);
    if (!c.needle.empty()) {
      CHECK_THAT(std::string(s.message()), Catch::Contains(c.needle));
    }
  };
  check(EncodedHeaderSize(c.header, c.ext, c.payload_size).status(),
        "EncodedHeaderSize");
  check(EncodedSize(c.header, c.ext, c.payload_size).status(), "EncodedSize");

  // A payload span of the asked size. Sizes above 1 GiB - 1 are never
  // materialised: the encoder must reject them before touching the bytes.
  static const std::array<std::byte, 1> kOne{};
  Bytes storage;
  absl::Span<const std::byte> payload;
  if (c.payload_size <= 4096) {
    storage.assign(c.payload_size, std::byte{0x11});
    payload = storage;
  } else {
    payload = absl::Span<const std::byte>(kOne.data(), c.payload_size);
  }
  Bytes out(70000, kSentinel);
  check(EncodeFrame(c.header, c.ext, payload, absl::MakeSpan(out)).status(),
        "EncodeFrame");
  CHECK(AllSentinel(out));
  check(EncodeGather(c.header, c.ext, payload, absl::MakeSpan(out)).status(),
        "EncodeGather");
  CHECK(AllSentinel(out));
}

TEST_CASE("encoder: INVALID_FRAME for a type that is not one of the six",
          "[encoder]") {
  for (int type : {6, 7, 0x80, 0xFF}) {
    RequireEncodeError({absl::StrCat("type ", type),
                        {static_cast<MessageType>(type), 0, 1, 0},
                        {},
                        0,
                        ErrorCode::kInvalidFrame,
                        absl::StrCat(type)});
  }
}

TEST_CASE("encoder: INVALID_FRAME for each reserved flag bit", "[encoder]") {
  for (int bit = 2; bit < 8; ++bit) {
    const auto flags = static_cast<uint8_t>(1u << bit);
    RequireEncodeError({absl::StrCat("flag bit ", bit),
                        {MessageType::kAgentResponse, flags, 1, 0},
                        {},
                        0,
                        ErrorCode::kInvalidFrame,
                        absl::StrCat("0x", absl::Hex(flags, absl::kZeroPad2))});
  }
}

TEST_CASE("encoder: INVALID_FRAME for FINAL off AGENT_RESPONSE", "[encoder]") {
  const std::pair<MessageType, uint64_t> cases[] = {
      {MessageType::kAgentInit, 0},  {MessageType::kAgentTask, 1},
      {MessageType::kAgentError, 1}, {MessageType::kAgentCancel, 1},
      {MessageType::kAgentSync, 0},
  };
  for (const auto& [type, stream] : cases) {
    RequireEncodeError({absl::StrCat("FINAL on ", MessageTypeName(type)),
                        {type, kFlagFinal, stream, 0},
                        {},
                        0,
                        ErrorCode::kInvalidFrame,
                        "FINAL"});
  }
  // FINAL is fine on AGENT_RESPONSE, with or without CHECKSUM.
  EncodeOk({MessageType::kAgentResponse, kFlagFinal, 1, 0}, {}, {});
  EncodeOk({MessageType::kAgentResponse, kFlagFinal | kFlagChecksum, 1, 0}, {},
           {});
}

TEST_CASE("encoder: INVALID_FRAME for a stream id that breaks SPEC §4.1",
          "[encoder]") {
  const std::pair<MessageType, uint64_t> bad[] = {
      {MessageType::kAgentInit, 1},   {MessageType::kAgentInit, 64},
      {MessageType::kAgentSync, 1},   {MessageType::kAgentSync, kVarintMax},
      {MessageType::kAgentTask, 0},   {MessageType::kAgentResponse, 0},
      {MessageType::kAgentCancel, 0},
  };
  for (const auto& [type, stream] : bad) {
    RequireEncodeError({absl::StrCat(MessageTypeName(type), " stream ", stream),
                        {type, 0, stream, 0},
                        {},
                        0,
                        ErrorCode::kInvalidFrame,
                        absl::StrCat(stream)});
  }
  // AGENT_ERROR takes any stream id.
  EncodeOk({MessageType::kAgentError, 0, 0, 0}, {}, {});
  EncodeOk({MessageType::kAgentError, 0, kVarintMax, 0}, {}, {});
}

TEST_CASE("encoder: VARINT_OUT_OF_RANGE for stream_id, sequence, deadline",
          "[encoder]") {
  const uint64_t too_big[] = {uint64_t{1} << 62,
                              std::numeric_limits<uint64_t>::max()};
  for (uint64_t v : too_big) {
    RequireEncodeError({absl::StrCat("stream_id ", v),
                        {MessageType::kAgentTask, 0, v, 0},
                        {},
                        0,
                        ErrorCode::kVarintOutOfRange,
                        absl::StrCat(v)});
    RequireEncodeError({absl::StrCat("AGENT_ERROR stream_id ", v),
                        {MessageType::kAgentError, 0, v, 0},
                        {},
                        0,
                        ErrorCode::kVarintOutOfRange,
                        absl::StrCat(v)});
    RequireEncodeError({absl::StrCat("sequence ", v),
                        {MessageType::kAgentSync, 0, 0, v},
                        {},
                        0,
                        ErrorCode::kVarintOutOfRange,
                        absl::StrCat(v)});
    FrameExtensions ext;
    ext.deadline_us = v;
    RequireEncodeError({absl::StrCat("deadline_us ", v),
                        {MessageType::kAgentTask, 0, 1, 0},
                        ext,
                        0,
                        ErrorCode::kVarintOutOfRange,
                        absl::StrCat(v)});
  }
  // 2^62 - 1 itself is fine everywhere.
  FrameExtensions ext;
  ext.deadline_us = kVarintMax;
  const Bytes f =
      EncodeOk({MessageType::kAgentTask, 0, kVarintMax, kVarintMax}, ext, {});
  RequireDecodes(f);
}

TEST_CASE("encoder: INVALID_FRAME for a payload above 1 GiB - 1", "[encoder]") {
  RequireEncodeError({"payload 2^30",
                      {MessageType::kAgentTask, 0, 1, 0},
                      {},
                      size_t{1} << 30,
                      ErrorCode::kInvalidFrame,
                      absl::StrCat(size_t{1} << 30)});
  RequireEncodeError({"payload 2^40",
                      {MessageType::kAgentTask, kFlagChecksum, 1, 0},
                      {},
                      size_t{1} << 40,
                      ErrorCode::kInvalidFrame,
                      ""});
  // 2^30 - 1 is allowed (only its size is computed here).
  auto size = EncodedSize({MessageType::kAgentTask, 0, 1, 0}, {},
                          (size_t{1} << 30) - 1);
  REQUIRE(size.ok());
  // A 13-byte header: payload_length takes 4 bytes.
  CHECK(*size == 13 + (size_t{1} << 30) - 1);
}

TEST_CASE("encoder: INVALID_FRAME for a TRACEPARENT SPEC §5 forbids",
          "[encoder]") {
  TraceParent tp = W3cExampleTraceParent();
  tp.version = 0xFF;
  FrameExtensions ext;
  ext.trace_parent = tp;
  RequireEncodeError({"version 0xff",
                      {MessageType::kAgentTask, 0, 1, 0},
                      ext,
                      0,
                      ErrorCode::kInvalidFrame,
                      "version"});
  tp = W3cExampleTraceParent();
  tp.trace_id = {};
  ext.trace_parent = tp;
  RequireEncodeError({"zero trace_id",
                      {MessageType::kAgentTask, 0, 1, 0},
                      ext,
                      0,
                      ErrorCode::kInvalidFrame,
                      "trace_id"});
  tp = W3cExampleTraceParent();
  tp.parent_id = {};
  ext.trace_parent = tp;
  RequireEncodeError({"zero parent_id",
                      {MessageType::kAgentTask, 0, 1, 0},
                      ext,
                      0,
                      ErrorCode::kInvalidFrame,
                      "parent_id"});
  // Version 0xFE, flags 0xFF and ids with a single non-zero byte are fine.
  tp = W3cExampleTraceParent();
  tp.version = 0xFE;
  tp.trace_flags = 0xFF;
  tp.trace_id = {};
  tp.trace_id[15] = std::byte{1};
  tp.parent_id = {};
  tp.parent_id[0] = std::byte{1};
  ext.trace_parent = tp;
  RequireDecodes(EncodeOk({MessageType::kAgentTask, 0, 1, 0}, ext, {}));
}

TEST_CASE("encoder: INVALID_FRAME for a TRACESTATE SPEC §5 forbids",
          "[encoder]") {
  const std::string too_long(513, 'a');
  FrameExtensions ext;
  ext.trace_state = too_long;
  RequireEncodeError({"513 bytes",
                      {MessageType::kAgentTask, 0, 1, 0},
                      ext,
                      0,
                      ErrorCode::kInvalidFrame,
                      "513"});
  for (char c : {'\x1F', '\x7F', '\x80', '\n', '\0'}) {
    std::string s = "ab";
    s += c;
    s += "cd";
    ext.trace_state = s;
    RequireEncodeError(
        {absl::StrCat("byte ", static_cast<int>(static_cast<unsigned char>(c))),
         {MessageType::kAgentTask, 0, 1, 0},
         ext,
         0,
         ErrorCode::kInvalidFrame,
         ""});
  }
  // 512 bytes, and every printable character, are fine.
  const std::string max_len(512, '~');
  ext.trace_state = max_len;
  RequireDecodes(EncodeOk({MessageType::kAgentTask, 0, 1, 0}, ext, {}));
  std::string printable;
  for (int c = 0x20; c <= 0x7E; ++c) printable += static_cast<char>(c);
  ext.trace_state = printable;
  RequireDecodes(EncodeOk({MessageType::kAgentTask, 0, 1, 0}, ext, {}));
}

TEST_CASE("encoder: INVALID_FRAME for a METHOD SPEC §5.1 forbids",
          "[encoder]") {
  const std::string too_long(256, 'a');
  FrameExtensions ext;
  ext.method = too_long;
  RequireEncodeError({"256 bytes",
                      {MessageType::kAgentTask, 0, 1, 0},
                      ext,
                      0,
                      ErrorCode::kInvalidFrame,
                      "256"});
  for (char c : {' ', '\x1F', '\x7F', '\x80', '\n', '\0'}) {
    std::string s = "ab";
    s += c;
    ext.method = s;
    RequireEncodeError(
        {absl::StrCat("byte ", static_cast<int>(static_cast<unsigned char>(c))),
         {MessageType::kAgentTask, 0, 1, 0},
         ext,
         0,
         ErrorCode::kInvalidFrame,
         "index 2"});
  }
  // 255 bytes decode; the TLV is written after METADATA (FrameExtensions).
  const std::string max_len(255, '~');
  ext.method = max_len;
  RequireDecodes(EncodeOk({MessageType::kAgentTask, 0, 1, 0}, ext, {}));
  const std::array<MetadataEntry, 1> meta = {MetadataEntry{"k", "v"}};
  ext.method = "m";
  ext.metadata = meta;
  const Bytes out = EncodeOk({MessageType::kAgentTask, 0, 1, 0}, ext, {});
  // 11 01 00 01 00 00 | 06 03 01 6b 76 | 09 01 6d | crc: 18 bytes.
  REQUIRE(out.size() == 18);
  CHECK(out[0] == std::byte{0x11});
  CHECK(out[6] == std::byte{0x06});
  CHECK(out[11] == std::byte{0x09});
  CHECK(out[13] == std::byte{0x6D});
}

TEST_CASE("encoder: METADATA with an empty key is INVALID_FRAME", "[encoder]") {
  const std::array<MetadataEntry, 2> meta = {MetadataEntry{"a", "1"},
                                             MetadataEntry{"", "x"}};
  FrameExtensions ext;
  ext.metadata = meta;
  RequireEncodeError({"empty key",
                      {MessageType::kAgentTask, 0, 1, 0},
                      ext,
                      0,
                      ErrorCode::kInvalidFrame,
                      "key"});
}

TEST_CASE("encoder: INVALID_FRAME for an `other` TLV of type 0 or known",
          "[encoder]") {
  const Bytes value = B({1, 2});
  for (uint64_t type : {uint64_t{0}, kExtDeadline, kExtTraceParent,
                        kExtTraceState, kExtMetadata, kExtMethod}) {
    const std::array<RawExtension, 1> other = {RawExtension{type, value}};
    FrameExtensions ext;
    ext.other = other;
    RequireEncodeError({absl::StrCat("other type ", type),
                        {MessageType::kAgentTask, 0, 1, 0},
                        ext,
                        0,
                        ErrorCode::kInvalidFrame,
                        absl::StrCat(type)});
  }
}

TEST_CASE("encoder: an `other` TLV type above 2^62-1 is rejected",
          "[encoder]") {
  // encoder.hpp lists VARINT_OUT_OF_RANGE only for stream_id, sequence and
  // deadline_us; for an extension type either code is a reasonable reading,
  // so this accepts both but requires kInvalidArgument and nothing written.
  const Bytes value = B({1});
  const std::array<RawExtension, 1> other = {
      RawExtension{uint64_t{1} << 62, value}};
  FrameExtensions ext;
  ext.other = other;
  const FrameHeader h{MessageType::kAgentTask, 0, 1, 0};
  Bytes out(256, kSentinel);
  auto r = EncodeFrame(h, ext, {}, absl::MakeSpan(out));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  const ErrorCode code = GetErrorCode(r.status());
  CHECK((code == ErrorCode::kInvalidFrame ||
         code == ErrorCode::kVarintOutOfRange));
  CHECK(AllSentinel(out));
}

TEST_CASE("encoder: HEADER_TOO_LARGE for extensions that cannot fit",
          "[encoder]") {
  const FrameHeader h{MessageType::kAgentTask, 0, 1, 0};
  {
    const std::string key(16384, 'k');
    const std::array<MetadataEntry, 1> meta = {MetadataEntry{key, ""}};
    FrameExtensions ext;
    ext.metadata = meta;
    RequireEncodeError(
        {"metadata key 16384", h, ext, 0, ErrorCode::kHeaderTooLarge, ""});
  }
  {
    const std::string value(16384, 'v');
    const std::array<MetadataEntry, 1> meta = {MetadataEntry{"k", value}};
    FrameExtensions ext;
    ext.metadata = meta;
    RequireEncodeError(
        {"metadata value 16384", h, ext, 0, ErrorCode::kHeaderTooLarge, ""});
  }
  {
    // Each entry fits; together they do not.
    const std::string value(6000, 'v');
    const std::array<MetadataEntry, 3> meta = {MetadataEntry{"a", value},
                                               MetadataEntry{"b", value},
                                               MetadataEntry{"c", value}};
    FrameExtensions ext;
    ext.metadata = meta;
    RequireEncodeError({"three 6000-byte metadata", h, ext, 0,
                        ErrorCode::kHeaderTooLarge, ""});
  }
  {
    const Bytes value(16384, std::byte{0});
    const std::array<RawExtension, 1> other = {RawExtension{8, value}};
    FrameExtensions ext;
    ext.other = other;
    RequireEncodeError(
        {"other value 16384", h, ext, 0, ErrorCode::kHeaderTooLarge, ""});
  }
  {
    const Bytes value(9000, std::byte{0});
    const std::array<RawExtension, 2> other = {RawExtension{8, value},
                                               RawExtension{10, value}};
    FrameExtensions ext;
    ext.other = other;
    RequireEncodeError(
        {"two 9000-byte others", h, ext, 0, ErrorCode::kHeaderTooLarge, ""});
  }
  {
    // The region fits in 16383 but header_length does not (16384).
    const Bytes value(16372, std::byte{0});
    const std::array<RawExtension, 1> other = {RawExtension{8, value}};
    FrameExtensions ext;
    ext.other = other;
    RequireEncodeError(
        {"header 16384", h, ext, 0, ErrorCode::kHeaderTooLarge, "16384"});
  }
}

TEST_CASE("encoder: BUFFER_TOO_SMALL writes nothing", "[encoder]") {
  const Bytes payload = Str("payload bytes");
  FrameExtensions ext;
  ext.deadline_us = 5;
  for (uint8_t flags : {uint8_t{0}, kFlagChecksum}) {
    const FrameHeader h{MessageType::kAgentTask, flags, 9, 9};
    auto total = EncodedSize(h, ext, payload.size());
    auto header = EncodedHeaderSize(h, ext, payload.size());
    REQUIRE(total.ok());
    REQUIRE(header.ok());
    for (size_t size :
         {size_t{0}, size_t{1}, *header - 1, *header, *total - 1}) {
      INFO("flags " << int{flags} << " EncodeFrame into " << size << " of "
                    << *total);
      Bytes out(size + 4, kSentinel);
      auto r = EncodeFrame(h, ext, payload, absl::MakeSpan(out.data(), size));
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
      CHECK(GetErrorCode(r.status()) == ErrorCode::kBufferTooSmall);
      CHECK_THAT(std::string(r.status().message()),
                 Catch::Contains(absl::StrCat(*total)));
      CHECK(AllSentinel(out));
    }
    for (size_t size : {size_t{0}, *header - 1}) {
      INFO("flags " << int{flags} << " EncodeGather into " << size);
      Bytes out(size + 4, kSentinel);
      auto r = EncodeGather(h, ext, payload, absl::MakeSpan(out.data(), size));
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
      CHECK(GetErrorCode(r.status()) == ErrorCode::kBufferTooSmall);
      CHECK(AllSentinel(out));
    }
    // Exactly the header is enough for EncodeGather.
    Bytes out(*header, kSentinel);
    CHECK(EncodeGather(h, ext, payload, absl::MakeSpan(out)).ok());
  }
}

// ---------------------------------------------------------------------------
// EncodeGather.

TEST_CASE("encoder: EncodeGather's header+payload+trailer == EncodeFrame",
          "[encoder]") {
  const Bytes big(70000, std::byte{0x3C});
  const std::array<MetadataEntry, 2> meta = {MetadataEntry{"x", "y"},
                                             MetadataEntry{"model", "gpt"}};
  const Bytes unknown_value = B({9, 8, 7});
  const std::array<RawExtension, 1> other = {RawExtension{64, unknown_value}};
  struct Case {
    FrameHeader header;
    size_t payload_size;
    bool extensions;
  };
  const Case cases[] = {
      {{MessageType::kAgentSync, 0, 0, 0}, 0, false},
      {{MessageType::kAgentInit, kFlagChecksum, 0, 1}, 0, false},
      {{MessageType::kAgentTask, kFlagChecksum, 77, 16384}, 5, true},
      {{MessageType::kAgentResponse, kFlagFinal, 1, 2}, 64, true},
      {{MessageType::kAgentResponse, kFlagFinal | kFlagChecksum, kVarintMax,
        kVarintMax},
       70000,
       true},
      {{MessageType::kAgentError, 0, 0, 3}, 1, false},
      {{MessageType::kAgentCancel, kFlagChecksum, 3, 0}, 70000, false},
  };
  for (const Case& c : cases) {
    INFO(MessageTypeName(c.header.type)
         << " flags " << int{c.header.flags} << " payload " << c.payload_size);
    FrameExtensions ext;
    if (c.extensions) {
      ext.deadline_us = 123456789;
      ext.trace_parent = W3cExampleTraceParent();
      ext.trace_state = "vendor=value";
      ext.metadata = meta;
      ext.other = other;
    }
    const auto payload = absl::MakeConstSpan(big).first(c.payload_size);
    const Bytes whole = EncodeOk(c.header, ext, payload);

    Bytes header_out(20000, kSentinel);
    auto g = EncodeGather(c.header, ext, payload, absl::MakeSpan(header_out));
    REQUIRE(g.ok());
    auto header_size = EncodedHeaderSize(c.header, ext, c.payload_size);
    REQUIRE(header_size.ok());
    CHECK(g->header().size() == *header_size);
    CHECK(g->header().data() == header_out.data());
    CHECK(AllSentinel(absl::MakeConstSpan(header_out).subspan(*header_size)));
    // The payload is referenced, not copied.
    CHECK(g->payload().data() == payload.data());
    CHECK(g->payload().size() == payload.size());
    CHECK(g->trailer().size() ==
          ((c.header.flags & kFlagChecksum) != 0 ? 8u : 0u));
    CHECK(g->size() == whole.size());
    Bytes joined;
    for (auto part : {g->header(), g->payload(), g->trailer()}) {
      joined.insert(joined.end(), part.begin(), part.end());
    }
    CHECK(joined == whole);
  }
}

TEST_CASE("encoder: the plain-frame path agrees with PlanFrame and WriteHeader",
          "[encoder]") {
  // EncodeFrame and the session write frames without extensions through
  // detail::PlainHeaderSize/EncodePlain; PlanFrame and EncodePlanned are the
  // general path. Every value around each varint boundary and each limit,
  // every type (and two that are not), the flag bits one at a time: the
  // plain path accepts exactly what PlanFrame accepts, with the same size
  // and the same bytes.
  const uint64_t ids[] = {0,
                          1,
                          63,
                          64,
                          16383,
                          16384,
                          (1u << 30) - 1,
                          1u << 30,
                          kVarintMax,
                          kVarintMax + 1};
  const size_t sizes[] = {0,
                          1,
                          63,
                          64,
                          16383,
                          16384,
                          kMaxPayloadSizeLimit,
                          kMaxPayloadSizeLimit + 1};
  const uint8_t flag_sets[] = {
      0, kFlagChecksum, kFlagFinal, kFlagChecksum | kFlagFinal, 0x04, 0x80};
  const Bytes payload(16384, std::byte{0x5A});
  int accepted = 0;
  int refused = 0;
  for (unsigned type = 0; type <= 7; ++type) {
    for (uint8_t flags : flag_sets) {
      for (uint64_t id : ids) {
        for (uint64_t seq : ids) {
          for (size_t n : sizes) {
            const FrameHeader h{static_cast<MessageType>(type), flags, id, seq};
            const size_t plain = detail::PlainHeaderSize(h, n);
            auto plan = detail::PlanFrame(h, kNoExtensions, n);
            if (!plan.ok()) {
              if (plain != 0) {
                FAIL("plain path accepted type "
                     << type << " flags " << int{flags} << " id " << id
                     << " seq " << seq << " size " << n << ": "
                     << plan.status());
              }
              ++refused;
              continue;
            }
            INFO("type " << type << " flags " << int{flags} << " id " << id
                         << " seq " << seq << " size " << n);
            REQUIRE(plain == plan->header_size);
            ++accepted;
            if (n > payload.size()) continue;  // never materialised
            const auto span = absl::MakeConstSpan(payload).first(n);
            const size_t total = plan->FrameSize(h, n);
            Bytes general(total, kSentinel);
            Bytes fast(total, kSentinel);
            REQUIRE(detail::EncodePlanned(*plan, h, kNoExtensions, span,
                                          general.data()) == total);
            REQUIRE(detail::EncodePlain(h, plain, span, fast.data()) == total);
            if (fast != general) {
              FAIL("plain " << Hex(fast) << "\ngeneral " << Hex(general));
            }
          }
        }
      }
    }
  }
  // Both outcomes were reached often (a sweep that accepted or refused
  // everything would prove nothing).
  CHECK(accepted > 1000);
  CHECK(refused > 1000);
}

TEST_CASE("encoder: encoding is deterministic", "[encoder]") {
  // The same input twice gives the same bytes, whatever came in between.
  const Bytes p = Str("abc");
  const Bytes a =
      EncodeOk({MessageType::kAgentTask, kFlagChecksum, 5, 6}, {}, p);
  EncodeOk({MessageType::kAgentSync, 0, 0, 99}, {}, {});
  const Bytes b =
      EncodeOk({MessageType::kAgentTask, kFlagChecksum, 5, 6}, {}, p);
  CHECK(a == b);
}

}  // namespace
}  // namespace symwire
