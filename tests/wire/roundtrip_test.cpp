// File: tests/wire/roundtrip_test.cpp
// Property tests of the frame codec: seeded random frames over every field
// range (all six types with a valid stream id, FINAL only on AGENT_RESPONSE,
// random CHECKSUM, stream_id/sequence/deadline over every varint width,
// payloads from 0 bytes to 1 MiB, every mix of DEADLINE, TRACEPARENT,
// TRACESTATE, METADATA and unknown even extensions) are encoded into one
// stream after a preface, decoded at random split points (and byte by byte
// where the stream is small) through tests/support/feed.hpp, and every field
// of every frame is compared with what was encoded.
//
// The seed is fixed by default and printed on failure; set the environment
// variable SYMWIRE_TEST_SEED to run with another one.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "symwire/detail/hash.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/varint.hpp"
#include "tests/support/feed.hpp"

namespace symwire {
namespace {

using Bytes = std::vector<std::byte>;
using testing::ExtensionRecord;
using testing::StepRecord;
using testing::Transcript;

constexpr uint64_t kDefaultSeed = 0x53594D57'00000001;  // "SYMW", 1

// What one frame should be: the encoder's input and the decoder's output.
struct FrameSpec {
  FrameHeader header;
  Bytes payload;
  std::optional<uint64_t> deadline_us;
  std::optional<TraceParent> trace_parent;
  std::string trace_state;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<std::pair<uint64_t, Bytes>> other;

  size_t extension_count() const {
    return (deadline_us ? 1u : 0u) + (trace_parent ? 1u : 0u) +
           (trace_state.empty() ? 0u : 1u) + metadata.size() + other.size();
  }
};

std::string Describe(const FrameSpec& s) {
  std::string out =
      absl::StrCat(MessageTypeName(s.header.type), " flags=", s.header.flags,
                   " stream=", s.header.stream_id, " seq=", s.header.sequence,
                   " payload=", s.payload.size());
  if (s.deadline_us) absl::StrAppend(&out, " deadline=", *s.deadline_us);
  if (s.trace_parent) absl::StrAppend(&out, " traceparent");
  if (!s.trace_state.empty()) {
    absl::StrAppend(&out, " tracestate=", s.trace_state.size(), "B");
  }
  absl::StrAppend(&out, " metadata=", s.metadata.size(),
                  " other=", s.other.size());
  return out;
}

// Knobs for the generator.
struct Profile {
  size_t frames = 200;
  // Payload sizes: mostly small; big ones are added by the test itself.
  size_t max_small_payload = 2048;
  size_t max_metadata = 12;
  size_t max_other = 4;
  size_t max_header = kMaxHeaderSizeLimit;  // regenerate frames above it
  size_t max_extensions = 64;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  bool Chance(int percent) {
    return Uniform(0, 99) < static_cast<uint64_t>(percent);
  }

  // A value of a random varint width (1, 2, 4 or 8 bytes), often an edge of
  // that width's range, never below `min`.
  uint64_t Varint(uint64_t min = 0) {
    static constexpr std::array<std::pair<uint64_t, uint64_t>, 4> kWidths = {{
        {0, 63},
        {64, 16383},
        {16384, (uint64_t{1} << 30) - 1},
        {uint64_t{1} << 30, kVarintMax},
    }};
    const auto& [lo, hi] = kWidths[Uniform(0, 3)];
    uint64_t v = 0;
    switch (Uniform(0, 4)) {
      case 0:
        v = lo;
        break;
      case 1:
        v = hi;
        break;
      default:
        v = Uniform(lo, hi);
        break;
    }
    return std::max(v, min);
  }

  Bytes RandomBytes(size_t n) {
    Bytes out(n);
    size_t i = 0;
    while (i < n) {
      uint64_t word = rng_();
      for (int k = 0; k < 8 && i < n; ++k, ++i) {
        out[i] = static_cast<std::byte>(word & 0xFF);
        word >>= 8;
      }
    }
    return out;
  }

  std::string RandomString(size_t n, int lo_char, int hi_char) {
    std::string s(n, ' ');
    for (char& c : s) {
      c = static_cast<char>(Uniform(static_cast<uint64_t>(lo_char),
                                    static_cast<uint64_t>(hi_char)));
    }
    return s;
  }

  // Small sizes dominate; every few frames a medium one.
  size_t SmallPayloadSize(size_t max) {
    switch (Uniform(0, 9)) {
      case 0:
      case 1:
        return 0;
      case 2:
      case 3:
      case 4:
        return Uniform(1, std::min<size_t>(16, max));
      case 5:
      case 6:
      case 7:
        return Uniform(0, std::min<size_t>(256, max));
      default:
        return Uniform(0, max);
    }
  }

  TraceParent RandomTraceParent() {
    TraceParent tp;
    tp.version = static_cast<uint8_t>(Uniform(0, 0xFE));
    const Bytes id = RandomBytes(24);
    std::copy(id.begin(), id.begin() + 16, tp.trace_id.begin());
    std::copy(id.begin() + 16, id.end(), tp.parent_id.begin());
    // Sometimes ids with a single non-zero byte (still valid).
    if (Chance(10)) {
      tp.trace_id = {};
      tp.trace_id[Uniform(0, 15)] = std::byte{1};
    }
    if (Chance(10)) {
      tp.parent_id = {};
      tp.parent_id[Uniform(0, 7)] = std::byte{0x80};
    }
    if (std::all_of(tp.trace_id.begin(), tp.trace_id.end(),
                    [](std::byte b) { return b == std::byte{0}; })) {
      tp.trace_id[0] = std::byte{1};
    }
    if (std::all_of(tp.parent_id.begin(), tp.parent_id.end(),
                    [](std::byte b) { return b == std::byte{0}; })) {
      tp.parent_id[7] = std::byte{1};
    }
    tp.trace_flags = static_cast<uint8_t>(Uniform(0, 255));
    return tp;
  }

  uint64_t UnknownEvenType() {
    static constexpr std::array<uint64_t, 10> kTypes = {8,
                                                        10,
                                                        62,
                                                        64,
                                                        66,
                                                        1000,
                                                        16382,
                                                        16384,
                                                        uint64_t{1} << 30,
                                                        kVarintMax - 1};
    if (Chance(70)) return kTypes[Uniform(0, kTypes.size() - 1)];
    uint64_t t = Varint(8) & ~uint64_t{1};
    return std::max<uint64_t>(t, 8);
  }

  FrameSpec Frame(size_t payload_size, const Profile& p) {
    FrameSpec s;
    s.header.type = static_cast<MessageType>(Uniform(0, kMaxMessageType));
    switch (StreamIdRuleFor(s.header.type)) {
      case StreamIdRule::kZero:
        s.header.stream_id = 0;
        break;
      case StreamIdRule::kNonZero:
        s.header.stream_id = Varint(1);
        break;
      case StreamIdRule::kAny:
        s.header.stream_id = Chance(30) ? 0 : Varint();
        break;
    }
    s.header.sequence = Varint();
    if (Chance(50)) s.header.flags |= kFlagChecksum;
    if (s.header.type == MessageType::kAgentResponse && Chance(50)) {
      s.header.flags |= kFlagFinal;
    }
    s.payload = RandomBytes(payload_size);

    if (Chance(30)) s.deadline_us = Varint();
    if (Chance(30)) s.trace_parent = RandomTraceParent();
    if (Chance(30)) {
      const size_t n = Chance(70)   ? Uniform(1, 16)
                       : Chance(80) ? Uniform(17, 511)
                                    : kMaxTraceStateSize;
      s.trace_state = RandomString(n, 0x20, 0x7E);
    }
    if (Chance(50) && p.max_metadata > 0) {
      const size_t n = Uniform(1, p.max_metadata);
      for (size_t i = 0; i < n; ++i) {
        // Keys and values are raw bytes; sometimes long enough for 2-byte
        // key_length and TLV length varints.
        const size_t key_len = Chance(90) ? Uniform(1, 20) : Uniform(64, 100);
        const size_t value_len = Chance(20)   ? 0
                                 : Chance(85) ? Uniform(1, 40)
                                              : Uniform(60, 200);
        s.metadata.emplace_back(RandomString(key_len, 0, 255),
                                RandomString(value_len, 0, 255));
      }
    }
    if (Chance(40) && p.max_other > 0) {
      const size_t n = Uniform(1, p.max_other);
      for (size_t i = 0; i < n; ++i) {
        const size_t len = Chance(85) ? Uniform(0, 30) : Uniform(60, 200);
        s.other.emplace_back(UnknownEvenType(), RandomBytes(len));
      }
    }
    return s;
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

// The FrameExtensions view of a spec, valid while both live.
struct ExtensionsFor {
  explicit ExtensionsFor(const FrameSpec& s) {
    for (const auto& [k, v] : s.metadata) meta.push_back({k, v});
    for (const auto& [t, v] : s.other) other.push_back({t, v});
    ext.deadline_us = s.deadline_us;
    ext.trace_parent = s.trace_parent;
    ext.trace_state = s.trace_state;
    ext.metadata = meta;
    ext.other = other;
  }
  std::vector<MetadataEntry> meta;
  std::vector<RawExtension> other;
  FrameExtensions ext;
};

Bytes VarintBytes(uint64_t v) {
  Bytes out(VarintSize(v));
  auto n = EncodeVarint(v, absl::MakeSpan(out));
  REQUIRE(n.ok());
  return out;
}

Bytes ToBytes(absl::string_view s) {
  Bytes out;
  for (char c : s) out.push_back(static_cast<std::byte>(c));
  return out;
}

// The TLVs a spec must decode to, in the encoder's documented order
// (frame.hpp FrameExtensions): DEADLINE, TRACEPARENT, TRACESTATE, METADATA,
// other.
std::vector<ExtensionRecord> ExpectedTlvs(const FrameSpec& s) {
  std::vector<ExtensionRecord> out;
  if (s.deadline_us) out.push_back({kExtDeadline, VarintBytes(*s.deadline_us)});
  if (s.trace_parent) {
    Bytes v;
    v.push_back(static_cast<std::byte>(s.trace_parent->version));
    v.insert(v.end(), s.trace_parent->trace_id.begin(),
             s.trace_parent->trace_id.end());
    v.insert(v.end(), s.trace_parent->parent_id.begin(),
             s.trace_parent->parent_id.end());
    v.push_back(static_cast<std::byte>(s.trace_parent->trace_flags));
    out.push_back({kExtTraceParent, v});
  }
  if (!s.trace_state.empty()) {
    out.push_back({kExtTraceState, ToBytes(s.trace_state)});
  }
  for (const auto& [k, v] : s.metadata) {
    Bytes value = VarintBytes(k.size());
    const Bytes kb = ToBytes(k);
    const Bytes vb = ToBytes(v);
    value.insert(value.end(), kb.begin(), kb.end());
    value.insert(value.end(), vb.begin(), vb.end());
    out.push_back({kExtMetadata, value});
  }
  for (const auto& [t, v] : s.other) out.push_back({t, v});
  return out;
}

Bytes BigEndian64(uint64_t v) {
  Bytes out;
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::byte>((v >> shift) & 0xFF));
  }
  return out;
}

// An encoded stream and what it holds.
struct Stream {
  Bytes bytes;
  std::vector<FrameSpec> frames;
  std::vector<uint64_t> offsets;     // of each frame
  std::vector<size_t> header_sizes;  // EncodedHeaderSize of each
};

// Encodes `specs` after a preface; frames whose header would exceed
// `max_header` or carry more than `max_extensions` TLVs are dropped by the
// caller's generator loop, not here.
Stream Encode(std::vector<FrameSpec> specs) {
  Stream st;
  size_t total = kPrefaceSize;
  for (const FrameSpec& s : specs) {
    const ExtensionsFor e(s);
    auto size = EncodedSize(s.header, e.ext, s.payload.size());
    INFO(Describe(s));
    REQUIRE(size.ok());
    total += *size;
  }
  st.bytes.assign(total, std::byte{0});
  auto p = EncodePreface(absl::MakeSpan(st.bytes));
  REQUIRE(p.ok());
  size_t pos = *p;
  for (const FrameSpec& s : specs) {
    const ExtensionsFor e(s);
    auto header_size = EncodedHeaderSize(s.header, e.ext, s.payload.size());
    REQUIRE(header_size.ok());
    auto n = EncodeFrame(s.header, e.ext, s.payload,
                         absl::MakeSpan(st.bytes).subspan(pos));
    REQUIRE(n.ok());
    st.offsets.push_back(pos);
    st.header_sizes.push_back(*header_size);
    pos += *n;
  }
  REQUIRE(pos == total);
  st.frames = std::move(specs);
  return st;
}

// Compares a decoded frame with its spec; "" if equal.
std::string Compare(const FrameSpec& s, const StepRecord& got, uint64_t offset,
                    size_t header_size) {
  const bool checksum = (s.header.flags & kFlagChecksum) != 0;
  const size_t size = header_size + s.payload.size() + (checksum ? 8 : 0);
  std::string why;
  auto expect = [&why](bool ok, absl::string_view what) {
    if (!ok) absl::StrAppend(&why, " ", what, ";");
  };
  expect(got.kind == StepRecord::Kind::kFrame, "not a frame");
  expect(got.offset == offset, "offset");
  expect(got.consumed == size, "consumed/size");
  expect(got.header == s.header, "header fields");
  expect(got.header_size == header_size, "header_size");
  expect(got.payload == s.payload, "payload bytes");
  expect(got.trailer ==
             (checksum ? BigEndian64(detail::Xxh3Hash64(s.payload)) : Bytes{}),
         "checksum trailer");
  expect(got.deadline_us == s.deadline_us, "deadline_us");
  expect(got.trace_parent == s.trace_parent, "trace_parent");
  expect(got.trace_state == s.trace_state, "trace_state");
  expect(got.metadata == s.metadata, "metadata");
  expect(got.extensions == ExpectedTlvs(s), "extension TLVs");
  expect(got.extension_count == s.extension_count(), "extension_count");
  expect(got.metadata_count == s.metadata.size(), "metadata_count");
  return why;
}

// Decodes `st` through feed.hpp and compares every frame.
void DecodeAndCompare(const Stream& st, const DecoderOptions& options,
                      const testing::AllWaysOptions& ways) {
  const Transcript t = testing::DecodeAllWays(st.bytes, options, ways);
  REQUIRE(t.size() == st.frames.size() + 1);
  REQUIRE(t[0].kind == StepRecord::Kind::kPreface);
  REQUIRE(t[0].wire_version == 1);
  size_t failures = 0;
  for (size_t i = 0; i < st.frames.size(); ++i) {
    const std::string why =
        Compare(st.frames[i], t[i + 1], st.offsets[i], st.header_sizes[i]);
    if (!why.empty()) {
      ++failures;
      FAIL_CHECK("frame " << i << " (" << Describe(st.frames[i])
                          << ") differs in:" << why
                          << "\n  decoded: " << testing::ToString(t[i + 1]));
      if (failures >= 5) break;
    }
  }
  CHECK(failures == 0);
}

// Generates `n` frames whose payload sizes come from `sizes` (or the small
// distribution when empty), regenerating any frame that breaks the
// profile's header or extension limits.
std::vector<FrameSpec> Generate(Generator& g, const Profile& p,
                                const std::vector<size_t>& sizes) {
  std::vector<FrameSpec> out;
  for (size_t i = 0; i < p.frames; ++i) {
    const size_t payload =
        i < sizes.size() ? sizes[i] : g.SmallPayloadSize(p.max_small_payload);
    for (;;) {
      FrameSpec s = g.Frame(payload, p);
      const ExtensionsFor e(s);
      auto h = EncodedHeaderSize(s.header, e.ext, s.payload.size());
      if (h.ok() && *h <= p.max_header &&
          s.extension_count() <= p.max_extensions) {
        out.push_back(std::move(s));
        break;
      }
    }
  }
  return out;
}

TEST_CASE("roundtrip: random frames with big payloads, random splits",
          "[roundtrip]") {
  const uint64_t base = testing::TestSeed(kDefaultSeed);
  // Three independent streams per run.
  const uint64_t round = GENERATE(uint64_t{0}, uint64_t{1}, uint64_t{2});
  const uint64_t seed = base + 1000 * round;
  INFO("seed " << seed << " (rerun with SYMWIRE_TEST_SEED=" << base << ")");
  Generator g(seed);
  Profile p;
  p.frames = 250;
  // Several payloads above 64 KiB and one of exactly 1 MiB, at random
  // places among the small ones.
  std::vector<size_t> sizes(p.frames);
  for (size_t& s : sizes) s = g.SmallPayloadSize(p.max_small_payload);
  std::vector<size_t> big = {65536 + 1, 65536 + g.Uniform(2, 30000),
                             g.Uniform(100000, 300000), 1 << 20};
  for (size_t b : big) sizes[g.Uniform(0, sizes.size() - 1)] = b;
  sizes[sizes.size() / 2] = 1 << 20;  // at least one exactly 1 MiB
  std::vector<FrameSpec> specs = Generate(g, p, sizes);
  const Stream st = Encode(std::move(specs));

  // Coverage of what was generated (a generator change must not silently
  // drop a case).
  std::array<int, 6> types{};
  int final_flags = 0, checksums = 0, over_64k = 0, one_mib = 0;
  std::array<int, 4> seq_widths{};
  for (const FrameSpec& s : st.frames) {
    ++types[static_cast<size_t>(s.header.type)];
    final_flags += (s.header.flags & kFlagFinal) != 0 ? 1 : 0;
    checksums += (s.header.flags & kFlagChecksum) != 0 ? 1 : 0;
    over_64k += s.payload.size() > 65536 ? 1 : 0;
    one_mib += s.payload.size() == (1u << 20) ? 1 : 0;
    const size_t w = VarintSize(s.header.sequence);
    ++seq_widths[w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3];
  }
  for (int n : types) CHECK(n > 0);
  for (int n : seq_widths) CHECK(n > 0);
  CHECK(final_flags > 0);
  CHECK(checksums > 0);
  CHECK(over_64k >= 3);
  CHECK(one_mib >= 1);

  DecoderOptions options;
  options.max_header_bytes = kMaxHeaderSizeLimit;
  options.max_extensions = 64;
  testing::AllWaysOptions ways;
  ways.bytewise = false;  // 1.5 MB byte by byte is left to the small stream
  ways.random_runs = 6;
  ways.seed = seed;
  DecodeAndCompare(st, options, ways);
}

TEST_CASE("roundtrip: many small frames, byte by byte and random splits",
          "[roundtrip]") {
  const uint64_t seed = testing::TestSeed(kDefaultSeed) + 1;
  INFO("seed " << seed << " (rerun with SYMWIRE_TEST_SEED=" << seed - 1 << ")");
  Generator g(seed);
  Profile p;
  p.frames = 3000;
  p.max_small_payload = 300;
  p.max_metadata = 6;
  p.max_other = 3;
  // Within the default decoder limits.
  p.max_header = kDefaultMaxHeaderSize;
  p.max_extensions = kDefaultMaxExtensions;
  const Stream st = Encode(Generate(g, p, {}));
  testing::AllWaysOptions ways;
  ways.bytewise = true;
  ways.random_runs = 4;
  ways.seed = seed;
  DecodeAndCompare(st, DecoderOptions{}, ways);
}

TEST_CASE("roundtrip: extension-heavy headers up to the 16385-byte maximum",
          "[roundtrip]") {
  const uint64_t seed = testing::TestSeed(kDefaultSeed) + 2;
  INFO("seed " << seed << " (rerun with SYMWIRE_TEST_SEED=" << seed - 2 << ")");
  Generator g(seed);
  std::vector<FrameSpec> specs;
  size_t two_byte_length = 0;
  for (int i = 0; i < 100; ++i) {
    FrameSpec s = g.Frame(g.SmallPayloadSize(64), Profile{});
    // Pile on metadata until the header is large, sometimes up to the
    // 16385-byte maximum, with hundreds of extensions.
    const size_t target =
        g.Chance(25) ? kMaxHeaderSizeLimit : g.Uniform(50, 9000);
    for (;;) {
      FrameSpec bigger = s;
      const size_t len = g.Chance(50) ? g.Uniform(0, 8) : g.Uniform(0, 300);
      bigger.metadata.emplace_back(g.RandomString(1 + len % 7, 0x61, 0x7A),
                                   g.RandomString(len, 0, 255));
      const ExtensionsFor e(bigger);
      auto h = EncodedHeaderSize(bigger.header, e.ext, bigger.payload.size());
      if (!h.ok() || *h > target) break;
      s = std::move(bigger);
    }
    const ExtensionsFor e(s);
    auto h = EncodedHeaderSize(s.header, e.ext, s.payload.size());
    REQUIRE(h.ok());
    two_byte_length += *h > 64 ? 1u : 0u;
    specs.push_back(std::move(s));
  }
  CHECK(two_byte_length > 0);
  const Stream st = Encode(std::move(specs));
  DecoderOptions options;
  options.max_header_bytes = kMaxHeaderSizeLimit;
  options.max_extensions = kMaxExtensionsLimit;
  testing::AllWaysOptions ways;
  ways.bytewise = false;
  ways.random_runs = 3;
  ways.seed = seed;
  DecodeAndCompare(st, options, ways);
}

TEST_CASE("roundtrip: every combination of extensions on every type",
          "[roundtrip]") {
  const uint64_t seed = testing::TestSeed(kDefaultSeed) + 4;
  INFO("seed " << seed);
  Generator g(seed);
  std::vector<FrameSpec> specs;
  for (uint8_t type = 0; type <= kMaxMessageType; ++type) {
    for (unsigned mask = 0; mask < 32; ++mask) {
      for (bool checksum : {false, true}) {
        FrameSpec s;
        s.header.type = static_cast<MessageType>(type);
        switch (StreamIdRuleFor(s.header.type)) {
          case StreamIdRule::kZero:
            break;
          case StreamIdRule::kNonZero:
            s.header.stream_id = g.Varint(1);
            break;
          case StreamIdRule::kAny:
            s.header.stream_id = g.Varint();
            break;
        }
        s.header.sequence = g.Varint();
        if (checksum) s.header.flags |= kFlagChecksum;
        if (s.header.type == MessageType::kAgentResponse && (mask & 1) != 0) {
          s.header.flags |= kFlagFinal;
        }
        s.payload = g.RandomBytes(g.SmallPayloadSize(100));
        if ((mask & 1) != 0) s.deadline_us = g.Varint();
        if ((mask & 2) != 0) s.trace_parent = g.RandomTraceParent();
        if ((mask & 4) != 0) {
          s.trace_state = g.RandomString(g.Uniform(1, 40), 0x20, 0x7E);
        }
        if ((mask & 8) != 0) {
          for (uint64_t i = 0, n = g.Uniform(1, 3); i < n; ++i) {
            s.metadata.emplace_back(g.RandomString(g.Uniform(1, 8), 0, 255),
                                    g.RandomString(g.Uniform(0, 8), 0, 255));
          }
        }
        if ((mask & 16) != 0) {
          for (uint64_t i = 0, n = g.Uniform(1, 2); i < n; ++i) {
            s.other.emplace_back(g.UnknownEvenType(),
                                 g.RandomBytes(g.Uniform(0, 8)));
          }
        }
        specs.push_back(std::move(s));
      }
    }
  }
  // Shuffled, so each kind of frame follows each other kind somewhere.
  std::shuffle(specs.begin(), specs.end(), g.rng());
  const Stream st = Encode(std::move(specs));
  testing::AllWaysOptions ways;
  ways.seed = seed;
  ways.random_runs = 4;
  DecodeAndCompare(st, DecoderOptions{}, ways);
}

TEST_CASE("roundtrip: headers around the 1-/2-byte header_length boundary",
          "[roundtrip]") {
  // Every header size from 10 to 140 that exists (all but 65: header_length
  // 63 is 1 byte, a 64-byte header; 64 takes 2, a 66-byte header), each
  // decoded every way.
  const uint64_t seed = testing::TestSeed(kDefaultSeed) + 3;
  INFO("seed " << seed);
  Generator g(seed);
  std::vector<FrameSpec> specs;
  std::vector<bool> seen(141, false);
  for (size_t pad = 0; pad <= 130; ++pad) {
    // A 1- and a 2-byte payload_length, so that every size is reachable
    // although the TLV length varint grows by a byte at 64.
    for (size_t payload : {pad % 5, 64 + pad % 5}) {
      FrameSpec s;
      s.header = {MessageType::kAgentTask, 0, 1, 0};
      s.payload = g.RandomBytes(payload);
      if (pad > 0) s.other.emplace_back(8, g.RandomBytes(pad - 1));
      const ExtensionsFor e(s);
      auto h = EncodedHeaderSize(s.header, e.ext, s.payload.size());
      REQUIRE(h.ok());
      if (*h <= 140) seen[*h] = true;
      specs.push_back(std::move(s));
    }
  }
  for (size_t n = 10; n <= 140; ++n) {
    if (n == 65) continue;
    INFO("header size " << n);
    CHECK(seen[n]);
  }
  CHECK_FALSE(seen[65]);
  const Stream st = Encode(std::move(specs));
  testing::AllWaysOptions ways;
  ways.seed = seed;
  DecodeAndCompare(st, DecoderOptions{}, ways);
}

}  // namespace
}  // namespace symwire
