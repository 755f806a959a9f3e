// File: tests/wire/batch_test.cpp
// FrameDecoder::DecodeBatch against the single-step Decode: the same frames,
// kNeedMore hints, errors and offsets, whole, byte by byte and at every split
// point (tests/support/feed.hpp runs every feeding mode in batches too; the
// golden vectors go through it in vectors_test.cpp). Here: long runs of
// frames of one layout, where DecodeBatch takes its run loop, with each
// check of SPEC.md §7.1 broken at several places in the run.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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

using testing::Bytes;
using testing::StepRecord;
using testing::Transcript;

Bytes Encode(const FrameHeader& h, size_t payload_size,
             const FrameExtensions& ext = {}) {
  Bytes payload(payload_size);
  for (size_t i = 0; i < payload_size; ++i) {
    payload[i] = static_cast<std::byte>('a' + (h.sequence + i) % 26);
  }
  Bytes out(EncodedSize(h, ext, payload_size).value());
  REQUIRE(EncodeFrame(h, ext, payload, absl::MakeSpan(out)).value() ==
          out.size());
  return out;
}

// Recomputes the header CRC of the frame at `at` (1-byte header_length).
void FixCrc(Bytes& stream, size_t at) {
  const size_t header_size = static_cast<size_t>(stream[at]) + 1;
  const size_t crc_pos = header_size - kHeaderCrcSize;
  const uint32_t crc =
      Crc32c(absl::Span<const std::byte>(stream.data() + at, crc_pos));
  for (size_t i = 0; i < 4; ++i) {
    stream[at + crc_pos + i] = static_cast<std::byte>(crc >> (24 - 8 * i));
  }
}

struct Run {
  Bytes bytes;
  std::vector<size_t> starts;  // offset of each frame
};

// `count` frames made by `make(i)`, back to back.
Run MakeRun(size_t count, const std::function<Bytes(size_t)>& make) {
  Run run;
  for (size_t i = 0; i < count; ++i) {
    run.starts.push_back(run.bytes.size());
    const Bytes f = make(i);
    run.bytes.insert(run.bytes.end(), f.begin(), f.end());
  }
  return run;
}

DecoderOptions NoPreface() {
  DecoderOptions o;
  o.expect_preface = false;
  return o;
}

testing::AllWaysOptions Ways() {
  testing::AllWaysOptions ways;
  ways.every_split_limit = 8192;
  ways.random_runs = 1;
  return ways;
}

// Decodes `input` every way (single steps and batches must agree) and
// returns the transcript's last entry.
StepRecord Last(const Bytes& input, const DecoderOptions& options) {
  const Transcript t = testing::DecodeAllWays(input, options, Ways());
  REQUIRE(!t.empty());
  return t.back();
}

TEST_CASE("DecodeBatch: a mixed stream decodes as single steps do", "[batch]") {
  Bytes input(kPrefaceBytes.begin(), kPrefaceBytes.end());
  const MetadataEntry meta[] = {{"k", "v"}};
  for (size_t i = 0; i < 150; ++i) {
    FrameHeader h;
    h.sequence = i + 1;  // crosses the 1-to-2-byte varint boundary at 64
    h.stream_id = 1 + i / 40;
    switch (i % 7) {
      case 0:
      case 1:
      case 2:
        h.type = MessageType::kAgentResponse;
        h.flags = i % 14 == 2 ? kFlagFinal : 0;
        break;
      case 3:
        h.type = MessageType::kAgentTask;
        h.flags = kFlagChecksum;
        break;
      case 4:
        h.type = MessageType::kAgentSync;
        h.stream_id = 0;
        h.sequence = 0;
        h.flags = kFlagChecksum;
        break;
      case 5:
        h.type = MessageType::kAgentError;
        h.stream_id = i % 2 == 0 ? 0 : h.stream_id;
        h.flags = kFlagChecksum;
        break;
      default:
        h.type = MessageType::kAgentCancel;
        break;
    }
    FrameExtensions ext;
    if (i % 11 == 0) ext.metadata = meta;
    if (i % 13 == 0) ext.deadline_us = 5000;
    const size_t payload = (i * 37) % 90;  // 0..89: 1- and 2-byte lengths
    const Bytes f = Encode(h, payload, ext);
    input.insert(input.end(), f.begin(), f.end());
  }
  const Transcript t = testing::DecodeAllWays(input, {}, Ways());
  REQUIRE(t.size() == 151);
  CHECK(t.front().kind == StepRecord::Kind::kPreface);
  CHECK(t.back().kind == StepRecord::Kind::kFrame);
}

TEST_CASE("DecodeBatch: long runs of one layout, payload sizes, checksums",
          "[batch]") {
  // stream_id and sequence of 1, 2 and 4 bytes (a session passes 16383,
  // the 2-byte limit, within seconds); 16350 + i crosses from 2 to 4 bytes
  // inside the run.
  struct Ids {
    uint64_t stream_id, sequence;
  };
  for (const Ids ids :
       {Ids{7, 200}, Ids{20000, 16350}, Ids{5, uint64_t{1} << 20},
        Ids{(uint64_t{1} << 29) + 1, 3}}) {
    for (const size_t payload :
         {size_t{0}, size_t{5}, size_t{64}, size_t{300}}) {
      for (const bool checksum : {false, true}) {
        INFO("stream_id " << ids.stream_id << " sequence " << ids.sequence
                          << " payload " << payload << " checksum "
                          << checksum);
        const Run run = MakeRun(100, [&](size_t i) {
          FrameHeader h;
          h.type = MessageType::kAgentResponse;
          h.flags = checksum ? kFlagChecksum : 0;
          h.stream_id = ids.stream_id;
          h.sequence = ids.sequence + i;
          return Encode(h, payload);
        });
        const Transcript t =
            testing::DecodeAllWays(run.bytes, NoPreface(), Ways());
        REQUIRE(t.size() == 100);
        CHECK(t.back().kind == StepRecord::Kind::kFrame);
        CHECK(t.back().header.sequence == ids.sequence + 99);
      }
    }
  }
}

// A run of 30 frames of one layout in which frame `k` is broken by
// `corrupt` (given the stream and the frame's offset); every feeding mode
// must report `code` at the same offset.
void CheckBrokenRun(const std::string& what, const FrameHeader& model,
                    size_t payload, const DecoderOptions& options,
                    const std::function<void(Bytes&, size_t)>& corrupt,
                    ErrorCode code) {
  for (const size_t k : {size_t{0}, size_t{1}, size_t{17}, size_t{29}}) {
    INFO(what << ", frame " << k);
    Run run = MakeRun(30, [&](size_t i) {
      FrameHeader h = model;
      if (h.sequence != 0) h.sequence += i;
      return Encode(h, payload);
    });
    corrupt(run.bytes, run.starts[k]);
    const StepRecord last = Last(run.bytes, options);
    REQUIRE(last.kind == StepRecord::Kind::kError);
    CHECK(last.error == code);
    CHECK(last.offset >= run.starts[k]);
  }
}

TEST_CASE("DecodeBatch: every check is made inside a run", "[batch]") {
  FrameHeader response;
  response.type = MessageType::kAgentResponse;
  response.stream_id = 100;  // 2-byte varint
  response.sequence = 100;   // 2-byte varint
  const DecoderOptions options = NoPreface();
  // Header of `response` with a 70-byte payload: length, type, flags,
  // stream_id (2), sequence (2), payload_length (2), CRC.
  constexpr size_t kType = 1, kFlags = 2, kStream = 3, kSequence = 5,
                   kLength = 7;

  CheckBrokenRun(
      "header crc", response, 70, options,
      [](Bytes& s, size_t at) { s[at + 9] ^= std::byte{0x01}; },
      ErrorCode::kHeaderCrcMismatch);
  CheckBrokenRun(
      "unknown type", response, 70, options,
      [&](Bytes& s, size_t at) {
        s[at + kType] = std::byte{6};
        FixCrc(s, at);
      },
      ErrorCode::kUnknownMessageType);
  CheckBrokenRun(
      "reserved flag", response, 70, options,
      [&](Bytes& s, size_t at) {
        s[at + kFlags] = std::byte{0x04};
        FixCrc(s, at);
      },
      ErrorCode::kReservedFlags);
  CheckBrokenRun(
      "non-canonical stream_id", response, 70, options,
      [&](Bytes& s, size_t at) {
        s[at + kStream] = std::byte{0x40};
        s[at + kStream + 1] = std::byte{0x3F};
        FixCrc(s, at);
      },
      ErrorCode::kNonCanonicalVarint);
  CheckBrokenRun(
      "non-canonical sequence", response, 70, options,
      [&](Bytes& s, size_t at) {
        s[at + kSequence] = std::byte{0x40};
        s[at + kSequence + 1] = std::byte{0x05};
        FixCrc(s, at);
      },
      ErrorCode::kNonCanonicalVarint);
  CheckBrokenRun(
      "non-canonical payload_length", response, 70, options,
      [&](Bytes& s, size_t at) {
        // 0x40 0x3F: 63 in two bytes; the frame stays delimited the same
        // way up to the error, which comes first.
        s[at + kLength] = std::byte{0x40};
        s[at + kLength + 1] = std::byte{0x3F};
        FixCrc(s, at);
      },
      ErrorCode::kNonCanonicalVarint);
  DecoderOptions small = options;
  small.max_payload_bytes = 80;
  CheckBrokenRun(
      "payload too large", response, 70, small,
      [&](Bytes& s, size_t at) {
        s[at + kLength + 1] = std::byte{81};
        FixCrc(s, at);
      },
      ErrorCode::kPayloadTooLarge);

  FrameHeader final_response = response;
  final_response.flags = kFlagFinal;
  FrameHeader task = response;
  task.type = MessageType::kAgentTask;
  CheckBrokenRun(
      "FINAL on a task", task, 70, options,
      [&](Bytes& s, size_t at) {
        s[at + kFlags] = std::byte{kFlagFinal};
        FixCrc(s, at);
      },
      ErrorCode::kReservedFlags);
  CheckBrokenRun(
      "FINAL run, then a task with FINAL", final_response, 70, options,
      [&](Bytes& s, size_t at) {
        s[at + kType] = std::byte{1};
        FixCrc(s, at);
      },
      ErrorCode::kReservedFlags);

  // Stream-id rules: a response on stream 0 (1-byte stream_id layout)...
  FrameHeader small_response = response;
  small_response.stream_id = 5;
  CheckBrokenRun(
      "stream 0 on a response", small_response, 70, options,
      [&](Bytes& s, size_t at) {
        s[at + kStream] = std::byte{0};
        FixCrc(s, at);
      },
      ErrorCode::kBadStreamId);
  // ...and a SYNC (stream 0 required, sequence 0) on stream 5.
  FrameHeader sync;
  sync.type = MessageType::kAgentSync;
  sync.flags = kFlagChecksum;
  CheckBrokenRun(
      "stream 5 on a sync", sync, 20, options,
      [&](Bytes& s, size_t at) {
        s[at + 3] = std::byte{5};
        FixCrc(s, at);
      },
      ErrorCode::kBadStreamId);
  // An ERROR may use any stream: changing it is no error, so the run
  // decodes to the end.
  {
    FrameHeader error;
    error.type = MessageType::kAgentError;
    error.stream_id = 3;
    error.sequence = 1;
    Run run = MakeRun(30, [&](size_t i) {
      FrameHeader h = error;
      h.sequence += i;
      return Encode(h, 4);
    });
    run.bytes[run.starts[9] + 3] = std::byte{0};
    FixCrc(run.bytes, run.starts[9]);
    const Transcript t = testing::DecodeAllWays(run.bytes, options, Ways());
    REQUIRE(t.size() == 30);
    CHECK(t[9].header.stream_id == 0);
  }

  // The widest layout: stream_id and sequence of 4 bytes each put the
  // payload_length tag at byte 11, past the word the run compares at once.
  FrameHeader wide = response;
  wide.stream_id = 1 << 20;
  wide.sequence = 1 << 20;
  constexpr size_t kWideLength = 11;  // header: 1 + 2 + 4 + 4 + 2 + 4 = 17
  CheckBrokenRun(
      "wide: header crc", wide, 70, options,
      [](Bytes& s, size_t at) { s[at + 14] ^= std::byte{0x01}; },
      ErrorCode::kHeaderCrcMismatch);
  // Overwrites the frame's bytes from `offset` with `with`, then fixes its
  // header CRC, so that only the varint check can fail.
  const auto rewrite = [](size_t offset, std::vector<uint8_t> with) {
    return [offset, with](Bytes& s, size_t at) {
      for (size_t i = 0; i < with.size(); ++i) {
        s[at + offset + i] = static_cast<std::byte>(with[i]);
      }
      FixCrc(s, at);
    };
  };
  CheckBrokenRun("wide: non-canonical payload_length", wide, 70, options,
                 rewrite(kWideLength, {0x40, 0x3F}),
                 ErrorCode::kNonCanonicalVarint);
  // The sequence: 4 bytes holding 5.
  CheckBrokenRun("wide: non-canonical sequence", wide, 70, options,
                 rewrite(7, {0x80, 0x00, 0x00, 0x05}),
                 ErrorCode::kNonCanonicalVarint);
  {
    // The third tag changed from 2 to 1 byte (0x40 0x46 -> 0x06 0x46): a
    // 1-byte length of 6 followed by a byte the layout does not have.
    // Whatever a single step makes of it, the run must not take it as a
    // frame of its layout (DecodeAllWays requires every way to agree).
    Run run = MakeRun(30, [&](size_t i) {
      FrameHeader h = wide;
      h.sequence += i;
      return Encode(h, 70);
    });
    run.bytes[run.starts[17] + kWideLength] = std::byte{0x06};
    FixCrc(run.bytes, run.starts[17]);
    const Transcript t = testing::DecodeAllWays(run.bytes, options, Ways());
    REQUIRE(t.size() >= 18);
    CHECK(t[16].kind == StepRecord::Kind::kFrame);
    CHECK_FALSE((t[17].kind == StepRecord::Kind::kFrame &&
                 t[17].consumed == t[16].consumed));
  }

  FrameHeader summed = response;
  summed.flags = kFlagChecksum;
  CheckBrokenRun(
      "payload checksum", summed, 70, options,
      [&](Bytes& s, size_t at) { s[at + 12 + 30] ^= std::byte{0x80}; },
      ErrorCode::kPayloadChecksumMismatch);
}

TEST_CASE("DecodeBatch: result fields", "[batch]") {
  FrameHeader h;
  h.type = MessageType::kAgentResponse;
  h.stream_id = 7;
  Bytes input(kPrefaceBytes.begin(), kPrefaceBytes.end());
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 10; ++i) {
    h.sequence = i + 1;
    const Bytes f = Encode(h, 3);
    sizes.push_back(f.size());
    input.insert(input.end(), f.begin(), f.end());
  }
  const absl::Span<const std::byte> all(input);

  SECTION("out full: bytes_needed 0, the rest on the next call") {
    FrameDecoder d;
    std::vector<FrameView> out(4);
    auto r = d.DecodeBatch(all, absl::MakeSpan(out));
    REQUIRE(r.ok());
    CHECK(r->frames == 4);
    CHECK(r->wire_version == kWireVersion);
    CHECK(r->bytes_needed == 0);
    CHECK(r->consumed == kPrefaceSize + 4 * sizes[0]);
    CHECK(out[0].sequence() == 1);
    CHECK(out[3].sequence() == 4);
    CHECK(out[3].bytes().data() == input.data() + kPrefaceSize + 3 * sizes[0]);
    CHECK(d.stream_offset() == r->consumed);
    auto r2 = d.DecodeBatch(all.subspan(r->consumed), absl::MakeSpan(out));
    REQUIRE(r2.ok());
    CHECK(r2->frames == 4);
    CHECK(r2->wire_version == 0);
    CHECK(out[0].sequence() == 5);
  }
  SECTION("input ends inside a frame: the hint of a single Decode") {
    const size_t cut = input.size() - 2;
    FrameDecoder d;
    std::vector<FrameView> out(64);
    auto r = d.DecodeBatch(all.first(cut), absl::MakeSpan(out));
    REQUIRE(r.ok());
    CHECK(r->frames == 9);
    CHECK(r->consumed == input.size() - sizes[9]);
    FrameDecoder single;
    size_t pos = 0;
    for (;;) {
      auto step = single.Decode(all.first(cut).subspan(pos));
      REQUIRE(step.ok());
      if (step->kind == DecodeStep::Kind::kNeedMore) {
        CHECK(r->bytes_needed == step->bytes_needed);
        break;
      }
      pos += step->consumed;
    }
    CHECK(pos == r->consumed);
  }
  SECTION("an error after frames: the frames now, the error next call") {
    Bytes bad = input;
    const size_t at = kPrefaceSize + 5 * sizes[0];
    bad[at + 9] ^= std::byte{0xFF};  // the 6th frame's CRC
    FrameDecoder d;
    std::vector<FrameView> out(64);
    auto r = d.DecodeBatch(bad, absl::MakeSpan(out));
    REQUIRE(r.ok());
    CHECK(r->frames == 5);
    CHECK(r->consumed == at);
    CHECK(r->bytes_needed == 0);
    CHECK_FALSE(d.status().ok());
    auto r2 = d.DecodeBatch(absl::Span<const std::byte>(bad).subspan(at),
                            absl::MakeSpan(out));
    REQUIRE_FALSE(r2.ok());
    CHECK(GetErrorCode(r2.status()) == ErrorCode::kHeaderCrcMismatch);
    CHECK(r2.status() == d.status());
    // The same error as single steps give, offset included.
    FrameDecoder single;
    size_t pos = 0;
    absl::Status error;
    for (;;) {
      auto step = single.Decode(absl::Span<const std::byte>(bad).subspan(pos));
      if (!step.ok()) {
        error = step.status();
        break;
      }
      pos += step->consumed;
    }
    CHECK(error == r2.status());
  }
  SECTION("an error first: returned at once, and sticky") {
    Bytes bad = input;
    bad[0] = std::byte{0x00};
    FrameDecoder d;
    std::vector<FrameView> out(8);
    auto r = d.DecodeBatch(bad, absl::MakeSpan(out));
    REQUIRE_FALSE(r.ok());
    CHECK(GetErrorCode(r.status()) == ErrorCode::kBadPreface);
    CHECK(d.DecodeBatch(all, absl::MakeSpan(out)).status() == r.status());
  }
}

}  // namespace
}  // namespace symwire

namespace symwire {
namespace {

// SetMaxPayloadBytes between two batches: the run prediction was built under
// the old limit and must not let a frame above the new one through.
TEST_CASE("DecodeBatch: a lowered payload limit applies inside a run",
          "[batch]") {
  const Run run = MakeRun(40, [](size_t i) {
    FrameHeader h;
    h.type = MessageType::kAgentResponse;
    h.stream_id = 1;
    h.sequence = i + 1;
    return Encode(h, 40);
  });
  FrameDecoder decoder(NoPreface());
  std::vector<FrameView> out(20);
  auto first = decoder.DecodeBatch(run.bytes, absl::MakeSpan(out));
  REQUIRE(first.ok());
  REQUIRE(first->frames == 20);
  decoder.SetMaxPayloadBytes(39);
  auto second = decoder.DecodeBatch(
      absl::Span<const std::byte>(run.bytes).subspan(first->consumed),
      absl::MakeSpan(out));
  REQUIRE(!second.ok());
  CHECK(GetErrorCode(second.status()) == ErrorCode::kPayloadTooLarge);
}

}  // namespace
}  // namespace symwire
