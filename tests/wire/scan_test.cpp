// File: tests/wire/scan_test.cpp
// The layer-1 helpers that keep frame layout out of the layers above:
// ProbeFrameHeader and FindFrameHeader (symwire-dump's resynchronisation,
// SPEC.md §7.2), FrameView::metadata() and IsSequencedFrame (SPEC.md §10).
#include "symwire/wire/scan.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "symwire/error.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"
#include "tests/support/bytes.hpp"
#include "tests/support/feed.hpp"

namespace symwire {
namespace {

using testing::B;
using testing::Bytes;
using testing::Cat;
using testing::StepRecord;
using testing::WithCrc;

Bytes Encode(const FrameHeader& h, size_t payload_size,
             const FrameExtensions& ext = {}) {
  const Bytes payload(payload_size, std::byte{'x'});
  Bytes out(EncodedSize(h, ext, payload_size).value());
  REQUIRE(EncodeFrame(h, ext, payload, absl::MakeSpan(out)).value() ==
          out.size());
  return out;
}

FrameHeader Response(uint8_t flags = 0) {
  FrameHeader h;
  h.type = MessageType::kAgentResponse;
  h.flags = flags;
  h.stream_id = 7;
  h.sequence = 300;
  return h;
}

constexpr size_t kMax = kDefaultMaxHeaderSize;

TEST_CASE("ProbeFrameHeader: a genuine header and its frame size", "[scan]") {
  for (const uint8_t flags : {uint8_t{0}, kFlagChecksum}) {
    const Bytes f = Encode(Response(flags), 100);
    const auto c = ProbeFrameHeader(f, kMax);
    REQUIRE(c.has_value());
    CHECK(c->header_size == 12);  // 1+1+1+1+2+2+4
    REQUIRE(c->frame_size.has_value());
    CHECK(*c->frame_size == f.size());
  }
  // With extensions: the header grows, the frame size still adds up.
  const MetadataEntry meta[] = {{"key", "value"}};
  FrameExtensions ext;
  ext.metadata = meta;
  ext.deadline_us = 1000;
  const Bytes f = Encode(Response(), 5, ext);
  const auto c = ProbeFrameHeader(f, kMax);
  REQUIRE(c.has_value());
  CHECK(c->frame_size == f.size());
  // The payload need not be there: only the header is looked at.
  CHECK(ProbeFrameHeader(absl::Span<const std::byte>(f).first(c->header_size),
                         kMax) == c);
}

TEST_CASE("ProbeFrameHeader: every truncation of a header is no header",
          "[scan]") {
  const Bytes f = Encode(Response(), 10);
  const size_t header_size = ProbeFrameHeader(f, kMax)->header_size;
  for (size_t n = 0; n < header_size; ++n) {
    INFO("first " << n << " bytes");
    CHECK_FALSE(
        ProbeFrameHeader(absl::Span<const std::byte>(f).first(n), kMax));
  }
}

TEST_CASE("ProbeFrameHeader: hostile headers", "[scan]") {
  const Bytes good = Encode(Response(), 10);
  SECTION("every single-bit flip of the header breaks the CRC match") {
    const size_t header_size = ProbeFrameHeader(good, kMax)->header_size;
    for (size_t i = 0; i < header_size; ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        Bytes f = good;
        f[i] ^= static_cast<std::byte>(1 << bit);
        INFO("byte " << i << " bit " << bit);
        const auto c = ProbeFrameHeader(f, kMax);
        // A flip in header_length changes which bytes the CRC covers; none
        // may pass as a header of the original size.
        CHECK((!c || c->header_size != header_size));
      }
    }
  }
  SECTION("header_length below 9, with a matching CRC") {
    // 8 = type, flags, 2 varints, CRC: one byte short.
    CHECK_FALSE(ProbeFrameHeader(WithCrc(B({8, 2, 0, 7, 1})), kMax));
  }
  SECTION("non-canonical header_length (9 in two bytes)") {
    CHECK_FALSE(ProbeFrameHeader(WithCrc(B({0x40, 9, 2, 0, 7, 1, 0})), kMax));
  }
  SECTION("a 4-byte header_length varint") {
    CHECK_FALSE(
        ProbeFrameHeader(WithCrc(B({0x80, 0, 0, 9, 2, 0, 7, 1, 0})), kMax));
  }
  SECTION("a header larger than the limit") {
    const size_t header_size = ProbeFrameHeader(good, kMax)->header_size;
    CHECK(ProbeFrameHeader(good, header_size));
    CHECK_FALSE(ProbeFrameHeader(good, header_size - 1));
  }
  SECTION("reserved flags: a header, but its length is not believed") {
    const auto c = ProbeFrameHeader(WithCrc(B({9, 2, 0x80, 7, 1, 0})), kMax);
    REQUIRE(c.has_value());
    CHECK(c->header_size == 10);
    CHECK_FALSE(c->frame_size.has_value());
  }
  SECTION("fixed fields that overrun the CRC or are not canonical") {
    // payload_length's tag announces 2 bytes, 1 is left before the CRC.
    auto c = ProbeFrameHeader(WithCrc(B({9, 2, 0, 7, 1, 0x40})), kMax);
    REQUIRE(c.has_value());
    CHECK_FALSE(c->frame_size.has_value());
    // No payload_length at all (stream_id 71 in two bytes, sequence 1).
    c = ProbeFrameHeader(WithCrc(B({9, 2, 0, 0x40, 0x47, 1})), kMax);
    REQUIRE(c.has_value());
    CHECK_FALSE(c->frame_size.has_value());
    // sequence 1 in two bytes.
    c = ProbeFrameHeader(WithCrc(B({10, 2, 0, 7, 0x40, 1, 0})), kMax);
    REQUIRE(c.has_value());
    CHECK_FALSE(c->frame_size.has_value());
  }
  SECTION("field rules are not its business: a genuine header is believed") {
    // Unknown type 9 and stream 0 on a response: still delimited.
    auto c = ProbeFrameHeader(WithCrc(B({9, 9, 0, 0, 1, 3})), kMax);
    REQUIRE(c.has_value());
    CHECK(c->frame_size == 13);
  }
}

TEST_CASE("FindFrameHeader: at every offset in noise", "[scan]") {
  const Bytes frame = Encode(Response(), 20);
  const size_t header_size = ProbeFrameHeader(frame, kMax)->header_size;
  std::mt19937 rng(7);
  Bytes noise(300);
  for (auto& b : noise) b = static_cast<std::byte>(rng() & 0xFF);
  REQUIRE_FALSE(FindFrameHeader(noise, 0, kMax).has_value());
  for (size_t at = 0; at <= noise.size(); at += 7) {
    Bytes data(noise.begin(), noise.begin() + static_cast<ptrdiff_t>(at));
    data.insert(data.end(), frame.begin(), frame.end());
    data.insert(data.end(), noise.begin() + static_cast<ptrdiff_t>(at),
                noise.end());
    INFO("frame at " << at);
    CHECK(FindFrameHeader(data, 0, kMax) == at);
    CHECK(FindFrameHeader(data, at, kMax) == at);
    CHECK_FALSE(FindFrameHeader(data, at + 1, kMax).has_value());
    // Cut inside the header: not found.
    CHECK_FALSE(FindFrameHeader(absl::Span<const std::byte>(data).first(
                                    at + header_size - 1),
                                0, kMax)
                    .has_value());
  }
  CHECK_FALSE(FindFrameHeader(frame, frame.size(), kMax).has_value());
  CHECK_FALSE(FindFrameHeader(frame, frame.size() + 5, kMax).has_value());
  CHECK_FALSE(FindFrameHeader({}, 0, kMax).has_value());
}

TEST_CASE("FrameView::metadata(): the METADATA entries, in wire order",
          "[metadata]") {
  const MetadataEntry meta[] = {
      {"model", "small"}, {"empty", ""}, {absl::string_view("k\0y", 3), "v"}};
  const std::byte unknown_value[] = {std::byte{1}, std::byte{2}};
  const RawExtension other[] = {{8, unknown_value}};
  FrameExtensions ext;
  ext.metadata = meta;
  ext.deadline_us = 77;
  ext.trace_state = "a=b";
  ext.other = other;
  FrameHeader h;
  h.type = MessageType::kAgentTask;
  h.stream_id = 1;
  h.sequence = 1;
  h.flags = kFlagChecksum;
  const Bytes f = Encode(h, 3, ext);
  DecoderOptions options;
  options.expect_preface = false;
  FrameDecoder d(options);
  auto step = d.Decode(f);
  REQUIRE(step.ok());
  REQUIRE(step->kind == DecodeStep::Kind::kFrame);
  const FrameView& v = step->frame;
  std::vector<MetadataEntry> got;
  for (const MetadataEntry& m : v.metadata()) got.push_back(m);
  REQUIRE(got.size() == 3);
  CHECK(got[0] == meta[0]);
  CHECK(got[1] == meta[1]);
  CHECK(got[2] == meta[2]);
  CHECK(got.size() == v.metadata_count());
  CHECK_FALSE(v.metadata().empty());
  // Views into the frame's buffer.
  CHECK(got[0].key.data() >= reinterpret_cast<const char*>(f.data()));
  CHECK(got[0].key.data() <
        reinterpret_cast<const char*>(f.data() + v.header_size()));
  // Iterator basics: post-increment, ->, equality.
  auto it = v.metadata().begin();
  CHECK(it->key == "model");
  auto before = it++;
  CHECK(before->key == "model");
  CHECK(it->key == "empty");
  CHECK(it != v.metadata().end());

  // Every feeding mode (whole, byte by byte, every split, batches): the
  // feed driver checks metadata() against the raw TLVs at each frame.
  const auto t = testing::DecodeAllWays(f, options);
  REQUIRE(t.size() == 1);
  CHECK(t[0].metadata.size() == 3);
}

TEST_CASE("FrameView::metadata(): empty without METADATA", "[metadata]") {
  CHECK(FrameView().metadata().empty());
  CHECK(FrameView().metadata().begin() == FrameView().metadata().end());
  FrameExtensions ext;
  ext.deadline_us = 5;
  const Bytes f = Encode(Response(), 2, ext);
  DecoderOptions options;
  options.expect_preface = false;
  FrameDecoder d(options);
  auto step = d.Decode(f);
  REQUIRE(step.ok());
  CHECK(step->frame.metadata().empty());
  size_t n = 0;
  for (const MetadataEntry& m : step->frame.metadata()) {
    static_cast<void>(m);
    ++n;
  }
  CHECK(n == 0);
}

TEST_CASE("FrameView::metadata(): malformed METADATA never reaches it",
          "[metadata]") {
  // Truncated and broken METADATA values are rejected by the decoder (at
  // every split point), so metadata() only ever sees validated entries.
  struct Bad {
    std::string what;
    Bytes tlv;
    ErrorCode code;
  };
  const std::vector<Bad> bad = {
      {"empty value", B({6, 0}), ErrorCode::kMalformedExtension},
      {"key_length overruns the value", B({6, 1, 0x40}),
       ErrorCode::kMalformedExtension},
      {"empty key", B({6, 1, 0}), ErrorCode::kMalformedExtension},
      {"key longer than the value", B({6, 2, 5, 'k'}),
       ErrorCode::kMalformedExtension},
      {"non-canonical key_length", B({6, 3, 0x40, 1, 'k'}),
       ErrorCode::kNonCanonicalVarint},
      {"TLV length past the region", B({6, 9, 1, 'k'}),
       ErrorCode::kMalformedExtension},
      {"TLV length missing", B({6}), ErrorCode::kMalformedExtension},
  };
  for (const auto& [what, tlv, code] : bad) {
    INFO(what);
    // header: type RESPONSE, flags 0, stream 7, seq 1, payload 0, the TLV.
    const Bytes fields = Cat({B({2, 0, 7, 1, 0}), tlv});
    const Bytes header =
        WithCrc(Cat({B({static_cast<int>(fields.size() + 4)}), fields}));
    DecoderOptions options;
    options.expect_preface = false;
    const auto t = testing::DecodeAllWays(header, options);
    REQUIRE(t.size() == 1);
    CHECK(t[0].kind == StepRecord::Kind::kError);
    CHECK(t[0].error == code);
  }
}

TEST_CASE("IsSequencedFrame follows SPEC.md §10", "[sequenced]") {
  CHECK(IsSequencedFrame(MessageType::kAgentTask, 1));
  CHECK(IsSequencedFrame(MessageType::kAgentResponse, 9));
  CHECK(IsSequencedFrame(MessageType::kAgentCancel, 3));
  CHECK(IsSequencedFrame(MessageType::kAgentError, 3));
  CHECK_FALSE(IsSequencedFrame(MessageType::kAgentError, 0));
  CHECK_FALSE(IsSequencedFrame(MessageType::kAgentInit, 0));
  CHECK_FALSE(IsSequencedFrame(MessageType::kAgentSync, 0));
  // Depends on the stream only for AGENT_ERROR.
  CHECK(IsSequencedFrame(MessageType::kAgentTask, 0));
  CHECK_FALSE(IsSequencedFrame(MessageType::kAgentSync, 5));
  static_assert(IsSequencedFrame(MessageType::kAgentTask, 1));
  CHECK_FALSE(IsSequencedFrame(static_cast<MessageType>(9), 1));
}

}  // namespace
}  // namespace symwire
