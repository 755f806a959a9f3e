// File: tests/wire/vectors_test.cpp
// Runs every golden vector of tests/vectors/*.md (SPEC.md's normative
// examples) against the C++ codec. Stream vectors are decoded whole, byte by
// byte, split in two at every point and at random points (support/feed.hpp);
// every mode must reproduce the vector's log exactly. The vectors were
// written from SPEC.md with an independent reference (tools/vectors_ref.py),
// never generated from this codec.
#include "tests/support/vectors.hpp"

#include <catch2/catch.hpp>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "symwire/error.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/varint.hpp"
#include "tests/support/feed.hpp"

namespace symwire {
namespace {

using testing::LoadVectorFile;
using testing::StepRecord;
using testing::ToLogHex;
using testing::Vector;

std::string Hex(const std::vector<std::byte>& bytes) {
  return ToLogHex(std::span<const std::byte>(bytes.data(), bytes.size()));
}
std::string Hex(absl::string_view s) {
  return ToLogHex(std::span<const std::byte>(
      reinterpret_cast<const std::byte*>(s.data()), s.size()));
}

// Renders a transcript entry in the vectors' log syntax (frames.md header).
std::string ToLogLine(const StepRecord& s) {
  switch (s.kind) {
    case StepRecord::Kind::kPreface:
      return absl::StrCat("preface version=", s.wire_version);
    case StepRecord::Kind::kIncomplete:
      return "incomplete";
    case StepRecord::Kind::kError:
      return absl::StrCat("error code=", ErrorCodeName(s.error),
                          " offset=", s.offset);
    case StepRecord::Kind::kFrame:
      break;
  }
  char flags[8];
  std::snprintf(flags, sizeof flags, "0x%02x", s.header.flags);
  std::string line =
      absl::StrCat("frame offset=", s.offset, " size=", s.consumed,
                   " type=", MessageTypeName(s.header.type), " flags=", flags,
                   " stream=", s.header.stream_id, " seq=", s.header.sequence,
                   " payload=", Hex(s.payload));
  if (s.deadline_us) absl::StrAppend(&line, " deadline_us=", *s.deadline_us);
  if (s.trace_parent) {
    const TraceParent& tp = *s.trace_parent;
    std::vector<std::byte> raw;
    raw.push_back(std::byte{tp.version});
    raw.insert(raw.end(), tp.trace_id.begin(), tp.trace_id.end());
    raw.insert(raw.end(), tp.parent_id.begin(), tp.parent_id.end());
    raw.push_back(std::byte{tp.trace_flags});
    absl::StrAppend(&line, " traceparent=", Hex(raw));
  }
  if (!s.trace_state.empty()) {
    absl::StrAppend(&line, " tracestate=", Hex(s.trace_state));
  }
  for (const auto& [key, value] : s.metadata) {
    absl::StrAppend(&line, " metadata=", Hex(key), ":", Hex(value));
  }
  if (!s.method.empty()) absl::StrAppend(&line, " method=", Hex(s.method));
  for (const auto& ext : s.extensions) {
    absl::StrAppend(&line, " ext=", ext.type, ":", Hex(ext.value));
  }
  return line;
}

DecoderOptions OptionsFor(const Vector& v) {
  DecoderOptions options;
  for (const auto& [key, value] : v.options) {
    if (key == "preface" && value == "off") {
      options.expect_preface = false;
    } else if (key == "max_header_bytes") {
      options.max_header_bytes = static_cast<uint32_t>(std::stoul(value));
    } else if (key == "max_payload_bytes") {
      options.max_payload_bytes = std::stoull(value);
    } else if (key == "max_extensions") {
      options.max_extensions = static_cast<uint32_t>(std::stoul(value));
    } else {
      FAIL("vector " << v.name << ": unknown option " << key << "=" << value);
    }
  }
  return options;
}

void RunStreamVectors(const std::string& file) {
  const std::vector<Vector> vectors = LoadVectorFile(file);
  REQUIRE(!vectors.empty());
  size_t frames = 0, errors = 0;
  for (const Vector& v : vectors) {
    INFO(file << ": " << v.name);
    testing::AllWaysOptions ways;
    // Every split point is quadratic; the largest vectors (16 KiB payload,
    // 4 KiB header) get it too, which is affordable because a decoder with
    // a pending frame only compares sizes.
    ways.every_split_limit = 20000;
    const testing::Transcript transcript =
        testing::DecodeAllWays(v.input, OptionsFor(v), ways);
    std::vector<std::string> got;
    for (const StepRecord& s : transcript) {
      got.push_back(ToLogLine(s));
      frames += s.kind == StepRecord::Kind::kFrame;
      errors += s.kind == StepRecord::Kind::kError;
    }
    CHECK(absl::StrJoin(got, "\n") == absl::StrJoin(v.log, "\n"));
  }
  INFO(file << ": " << vectors.size() << " vectors, " << frames << " frames, "
            << errors << " errors");
  CHECK(vectors.size() > 0);
}

TEST_CASE("preface vectors", "[vectors]") { RunStreamVectors("preface.md"); }
TEST_CASE("frame vectors", "[vectors]") { RunStreamVectors("frames.md"); }
TEST_CASE("frame error vectors", "[vectors]") {
  RunStreamVectors("frame_errors.md");
}

TEST_CASE("every decoder error code has a vector", "[vectors]") {
  std::string all;
  for (const Vector& v : LoadVectorFile("frame_errors.md")) {
    for (const std::string& line : v.log) absl::StrAppend(&all, line, "\n");
  }
  for (ErrorCode code :
       {ErrorCode::kBadPreface, ErrorCode::kUnsupportedVersion,
        ErrorCode::kNonCanonicalVarint, ErrorCode::kBadHeaderLength,
        ErrorCode::kHeaderTooLarge, ErrorCode::kHeaderCrcMismatch,
        ErrorCode::kUnknownMessageType, ErrorCode::kReservedFlags,
        ErrorCode::kBadStreamId, ErrorCode::kMalformedHeader,
        ErrorCode::kPayloadTooLarge, ErrorCode::kPayloadChecksumMismatch,
        ErrorCode::kMalformedExtension, ErrorCode::kUnknownCriticalExtension,
        ErrorCode::kDuplicateExtension, ErrorCode::kTooManyExtensions}) {
    INFO(ErrorCodeName(code));
    CHECK(all.find(absl::StrCat("error code=", ErrorCodeName(code), " ")) !=
          std::string::npos);
  }
}

TEST_CASE("varint vectors", "[vectors]") {
  for (const Vector& v : LoadVectorFile("varint.md")) {
    INFO("varint.md: " << v.name);
    REQUIRE(v.log.size() == 1);
    // Whole, then every proper prefix must be "incomplete" or the same error
    // (a varint's length is known from its first byte).
    auto decoded = DecodeVarint(v.input);
    std::string got;
    if (!decoded.ok()) {
      got = absl::StrCat(
          "error code=", ErrorCodeName(GetErrorCode(decoded.status())),
          " offset=0");
    } else if (!decoded->complete) {
      got = "incomplete";
    } else {
      got = absl::StrCat("value=", decoded->value, " size=", decoded->size);
      // Canonical form: re-encoding gives the same bytes.
      std::vector<std::byte> again(kMaxVarintSize);
      auto n = EncodeVarint(decoded->value, absl::MakeSpan(again));
      REQUIRE(n.ok());
      again.resize(*n);
      CHECK(Hex(again) == Hex(v.input));
    }
    CHECK(got == v.log[0]);
    for (size_t len = 0; len < v.input.size(); ++len) {
      auto prefix = DecodeVarint(absl::MakeConstSpan(v.input.data(), len));
      if (prefix.ok()) {
        CHECK(!prefix->complete);
        CHECK(prefix->size > len);
      }
    }
  }
}

TEST_CASE("crc32c vectors", "[vectors]") {
  for (const Vector& v : LoadVectorFile("crc32c.md")) {
    INFO("crc32c.md: " << v.name);
    REQUIRE(v.log.size() == 1);
    char expect[32];
    std::snprintf(expect, sizeof expect, "crc=0x%08" PRIX32,
                  Crc32c(absl::MakeConstSpan(v.input)));
    CHECK(std::string(expect) == v.log[0]);
    // The portable path must agree with the dispatched one.
    CHECK(detail::Crc32cExtendPortable(0, v.input) ==
          Crc32c(absl::MakeConstSpan(v.input)));
  }
}

}  // namespace
}  // namespace symwire
