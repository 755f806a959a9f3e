// File: tests/wire/alloc_test.cpp
// STYLE.md §3: "The decode path never allocates or copies payload; a test
// with a counting operator new enforces it." This is that test, and the same
// for the encoder's success path (encoder.hpp: "Does not allocate on
// success"). It replaces every global operator new/delete (plain, array,
// nothrow, aligned, sized), so it is its own executable
// (tests/CMakeLists.txt builds it apart from wire_tests).
//
// Counting is switched on only around the code under test; nothing inside
// a counting window uses Catch2, strings or containers that could grow.
// The first test case shows the counter does see allocations, including
// those made inside the symwire library and Abseil.
#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "symwire/session/control.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "tests/support/control_messages.hpp"

namespace {

std::atomic<bool> g_counting{false};
std::atomic<size_t> g_allocations{0};
std::atomic<size_t> g_deallocations{0};

void* Allocate(std::size_t size, std::size_t align) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  void* p = nullptr;
  if (posix_memalign(&p, align, size) != 0) return nullptr;
  return p;
}

void* AllocateOrThrow(std::size_t size, std::size_t align) {
  void* p = Allocate(size, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void Deallocate(void* p) noexcept {
  if (p == nullptr) return;
  if (g_counting.load(std::memory_order_relaxed)) {
    g_deallocations.fetch_add(1, std::memory_order_relaxed);
  }
  std::free(p);
}

std::size_t Align(std::align_val_t a) { return static_cast<std::size_t>(a); }

}  // namespace

// The replaceable global allocation functions ([new.delete]), all of them,
// so no sanitizer or library definition is linked in beside these.
void* operator new(std::size_t n) { return AllocateOrThrow(n, 0); }
void* operator new[](std::size_t n) { return AllocateOrThrow(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return Allocate(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return Allocate(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, Align(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, Align(a));
}
void* operator new(std::size_t n, std::align_val_t a,
                   const std::nothrow_t&) noexcept {
  return Allocate(n, Align(a));
}
void* operator new[](std::size_t n, std::align_val_t a,
                     const std::nothrow_t&) noexcept {
  return Allocate(n, Align(a));
}
void operator delete(void* p) noexcept { Deallocate(p); }
void operator delete[](void* p) noexcept { Deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  Deallocate(p);
}
void operator delete(void* p, std::size_t) noexcept { Deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { Deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { Deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  Deallocate(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  Deallocate(p);
}
void operator delete(void* p, std::align_val_t,
                     const std::nothrow_t&) noexcept {
  Deallocate(p);
}
void operator delete[](void* p, std::align_val_t,
                       const std::nothrow_t&) noexcept {
  Deallocate(p);
}

namespace symwire {
namespace {

// Counts allocations and deallocations between Start() and Stop().
class Counting {
 public:
  void Start() {
    g_allocations.store(0);
    g_deallocations.store(0);
    g_counting.store(true);
  }
  void Stop() {
    g_counting.store(false);
    allocations_ = g_allocations.load();
    deallocations_ = g_deallocations.load();
  }
  size_t allocations() const { return allocations_; }
  size_t deallocations() const { return deallocations_; }

 private:
  size_t allocations_ = 0;
  size_t deallocations_ = 0;
};

// Keeps the optimizer from removing an allocation whose result is unused.
int* volatile g_sink = nullptr;
struct alignas(64) OverAligned {
  char bytes[64];
};
OverAligned* volatile g_aligned_sink = nullptr;

TEST_CASE("alloc: the counter sees allocations", "[alloc]") {
  Counting c;
  c.Start();
  g_sink = new int(7);
  c.Stop();
  CHECK(c.allocations() == 1);
  c.Start();
  delete g_sink;
  c.Stop();
  CHECK(c.deallocations() == 1);
  CHECK(c.allocations() == 0);

  c.Start();
  g_aligned_sink = new OverAligned[3];
  delete[] g_aligned_sink;
  c.Stop();
  CHECK(c.allocations() == 1);
  CHECK(c.deallocations() == 1);

  // Inside the library: a decode error builds a Status with a message
  // (StrCat in symwire and Abseil), which allocates.
  FrameDecoder d;
  const std::array<std::byte, 1> bad = {std::byte{0x47}};  // "G", not 0x89
  c.Start();
  const bool ok = d.Decode(bad).ok();
  c.Stop();
  CHECK_FALSE(ok);
  CHECK(c.allocations() > 0);
}

// What the test encodes, and what it expects back.
struct Expected {
  FrameHeader header;
  size_t payload_size;
  bool extensions;
};

constexpr size_t kFrames = 8;
const std::array<Expected, kFrames> kExpected = {{
    {{MessageType::kAgentInit, kFlagChecksum, 0, 0}, 0, true},
    {{MessageType::kAgentTask, kFlagChecksum, 1, 1}, 100, true},
    {{MessageType::kAgentResponse, kFlagChecksum, 1, 2}, 5000, true},
    {{MessageType::kAgentResponse, kFlagChecksum | kFlagFinal, 1, 16384},
     70000,
     true},
    {{MessageType::kAgentError, kFlagChecksum, 0, 4}, 3, true},
    {{MessageType::kAgentCancel, kFlagChecksum, 1, 5}, 1, true},
    {{MessageType::kAgentSync, kFlagChecksum, 0, uint64_t{1} << 40}, 0, true},
    {{MessageType::kAgentSync, 0, 0, 7}, 0, false},
}};

// Filled by the decode loops without allocating.
struct Seen {
  FrameHeader header;
  size_t payload_size = 0;
  const std::byte* payload_data = nullptr;
  uint64_t payload_sum = 0;
  uint64_t deadline = 0;
  bool has_trace_parent = false;
  size_t trace_state_size = 0;
  uint32_t extensions = 0;
  uint32_t metadata = 0;
  size_t metadata_key_bytes = 0;
  size_t unknown = 0;
};

struct Fixture {
  std::vector<std::vector<std::byte>> payloads;
  std::array<MetadataEntry, 2> metadata = {MetadataEntry{"model", "m-1"},
                                           MetadataEntry{"k", ""}};
  std::array<std::byte, 3> unknown_value = {std::byte{1}, std::byte{2},
                                            std::byte{3}};
  std::array<RawExtension, 1> other;
  FrameExtensions with;
  FrameExtensions without;
  std::vector<std::byte> stream;

  Fixture() {
    other = {RawExtension{8, unknown_value}};
    TraceParent tp;
    tp.trace_id.fill(std::byte{0x11});
    tp.parent_id.fill(std::byte{0x22});
    tp.trace_flags = 1;
    with.deadline_us = 1500000;
    with.trace_parent = tp;
    with.trace_state = "vendor=abc";
    with.metadata = metadata;
    with.other = other;
    for (const Expected& e : kExpected) {
      std::vector<std::byte> p(e.payload_size);
      for (size_t i = 0; i < p.size(); ++i) {
        p[i] = static_cast<std::byte>((i * 31 + 7) & 0xFF);
      }
      payloads.push_back(std::move(p));
    }
  }
};

uint64_t Sum(absl::Span<const std::byte> bytes) {
  uint64_t s = 0;
  for (std::byte b : bytes) s = s * 131 + static_cast<uint64_t>(b);
  return s;
}

// Records a decoded frame. Does not allocate.
void Record(const FrameView& f, Seen& seen) {
  seen.header = f.header();
  seen.payload_size = f.payload().size();
  seen.payload_data = f.payload().data();
  seen.payload_sum = Sum(f.payload());
  seen.deadline = f.deadline_us().value_or(0);
  seen.has_trace_parent = f.trace_parent().has_value();
  seen.trace_state_size = f.trace_state().size();
  seen.extensions = f.extension_count();
  seen.metadata = f.metadata_count();
  for (const RawExtension& e : f.extensions()) {
    if (e.type == kExtMetadata) {
      seen.metadata_key_bytes += ParseMetadataValue(e.value).key.size();
    } else if (!IsKnownExtension(e.type)) {
      ++seen.unknown;
    }
  }
}

void CheckSeen(const Fixture& fx, const std::array<Seen, kFrames>& seen) {
  for (size_t i = 0; i < kFrames; ++i) {
    INFO("frame " << i);
    const Expected& e = kExpected[i];
    const Seen& s = seen[i];
    CHECK(s.header == e.header);
    CHECK(s.payload_size == e.payload_size);
    CHECK(s.payload_sum == Sum(fx.payloads[i]));
    if (e.extensions) {
      CHECK(s.deadline == 1500000);
      CHECK(s.has_trace_parent);
      CHECK(s.trace_state_size == 10);
      CHECK(s.extensions == 6);
      CHECK(s.metadata == 2);
      CHECK(s.metadata_key_bytes == 6);
      CHECK(s.unknown == 1);
    } else {
      CHECK(s.extensions == 0);
    }
  }
}

TEST_CASE("alloc: encoding and decoding a stream allocate nothing", "[alloc]") {
  Fixture fx;
  // Size the stream before counting.
  size_t total = kPrefaceSize;
  for (size_t i = 0; i < kFrames; ++i) {
    const auto& ext = kExpected[i].extensions ? fx.with : fx.without;
    auto size = EncodedSize(kExpected[i].header, ext, fx.payloads[i].size());
    REQUIRE(size.ok());
    total += *size;
  }
  fx.stream.assign(total, std::byte{0});
  std::array<std::byte, 512> gather_header{};
  std::array<size_t, kFrames> gather_sizes{};

  // --- encode ---
  bool encode_ok = true;
  size_t pos = 0;
  Counting c;
  c.Start();
  {
    auto p = EncodePreface(absl::MakeSpan(fx.stream));
    encode_ok = encode_ok && p.ok();
    pos = p.ok() ? *p : 0;
    for (size_t i = 0; i < kFrames && encode_ok; ++i) {
      const auto& ext = kExpected[i].extensions ? fx.with : fx.without;
      auto size = EncodedSize(kExpected[i].header, ext, fx.payloads[i].size());
      auto header_size =
          EncodedHeaderSize(kExpected[i].header, ext, fx.payloads[i].size());
      auto n = EncodeFrame(kExpected[i].header, ext, fx.payloads[i],
                           absl::MakeSpan(fx.stream).subspan(pos));
      auto g = EncodeGather(kExpected[i].header, ext, fx.payloads[i],
                            absl::MakeSpan(gather_header));
      encode_ok = encode_ok && size.ok() && header_size.ok() && n.ok() &&
                  g.ok() && *n == *size;
      if (encode_ok) {
        gather_sizes[i] = g->size();
        pos += *n;
      }
    }
  }
  c.Stop();
  REQUIRE(encode_ok);
  CHECK(pos == total);
  CHECK(c.allocations() == 0);
  CHECK(c.deallocations() == 0);
  for (size_t i = 0; i < kFrames; ++i) CHECK(gather_sizes[i] > 0);

  // --- decode, whole ---
  {
    FrameDecoder d;
    std::array<Seen, kFrames> seen{};
    size_t frames = 0;
    bool preface = false;
    bool ok = true;
    absl::Span<const std::byte> in(fx.stream);
    c.Start();
    for (;;) {
      auto r = d.Decode(in);
      if (!r.ok()) {
        ok = false;
        break;
      }
      if (r->kind == DecodeStep::Kind::kNeedMore) break;
      if (r->kind == DecodeStep::Kind::kPreface) preface = true;
      if (r->kind == DecodeStep::Kind::kFrame && frames < kFrames) {
        Record(r->frame, seen[frames++]);
      }
      in.remove_prefix(r->consumed);
    }
    c.Stop();
    REQUIRE(ok);
    CHECK(preface);
    CHECK(frames == kFrames);
    CHECK(in.empty());
    REQUIRE(c.allocations() == 0);
    CHECK(c.deallocations() == 0);
    CheckSeen(fx, seen);
    // Zero-copy: payloads point into the stream buffer.
    for (size_t i = 0; i < kFrames; ++i) {
      if (seen[i].payload_size == 0) continue;
      CHECK(seen[i].payload_data >= fx.stream.data());
      CHECK(seen[i].payload_data < fx.stream.data() + fx.stream.size());
    }
  }

  // --- decode in batches (DecodeBatch into 3 views per call) ---
  {
    FrameDecoder d;
    std::array<Seen, kFrames> seen{};
    std::array<FrameView, 3> views{};
    size_t frames = 0;
    bool ok = true;
    absl::Span<const std::byte> in(fx.stream);
    c.Start();
    for (;;) {
      auto r = d.DecodeBatch(in, absl::MakeSpan(views));
      if (!r.ok()) {
        ok = false;
        break;
      }
      for (size_t i = 0; i < r->frames && frames < kFrames; ++i) {
        Record(views[i], seen[frames++]);
      }
      in.remove_prefix(r->consumed);
      if (r->bytes_needed != 0) break;
    }
    c.Stop();
    REQUIRE(ok);
    CHECK(frames == kFrames);
    CHECK(in.empty());
    REQUIRE(c.allocations() == 0);
    CHECK(c.deallocations() == 0);
    CheckSeen(fx, seen);
  }

  // --- decode, one byte at a time into a pre-reserved buffer ---
  {
    FrameDecoder d;
    std::vector<std::byte> buffer;
    buffer.reserve(fx.stream.size());
    const std::byte* const storage = buffer.data();
    std::array<Seen, kFrames> seen{};
    size_t frames = 0;
    size_t calls = 0;
    bool ok = true;
    c.Start();
    for (size_t i = 0; i < fx.stream.size() && ok; ++i) {
      buffer.push_back(fx.stream[i]);
      for (;;) {
        ++calls;
        auto r = d.Decode(buffer);
        if (!r.ok()) {
          ok = false;
          break;
        }
        if (r->kind == DecodeStep::Kind::kNeedMore) break;
        if (r->kind == DecodeStep::Kind::kFrame && frames < kFrames) {
          Record(r->frame, seen[frames++]);
        }
        buffer.erase(buffer.begin(),
                     buffer.begin() + static_cast<std::ptrdiff_t>(r->consumed));
      }
    }
    c.Stop();
    REQUIRE(ok);
    CHECK(frames == kFrames);
    CHECK(buffer.empty());
    CHECK(buffer.data() == storage);  // the reservation held
    CHECK(calls > fx.stream.size());
    REQUIRE(c.allocations() == 0);
    CHECK(c.deallocations() == 0);
    CheckSeen(fx, seen);
  }
}

TEST_CASE("alloc: CRC32C and the decoder's hot paths with checks off",
          "[alloc]") {
  Fixture fx;
  size_t total = 0;
  std::vector<std::byte> frame(200000);
  auto n = EncodeFrame(kExpected[3].header, fx.with, fx.payloads[3],
                       absl::MakeSpan(frame));
  REQUIRE(n.ok());
  total = *n;
  DecoderOptions options;
  options.expect_preface = false;
  options.verify_header_crc = false;
  options.verify_payload_checksum = false;
  FrameDecoder d(options);
  Counting c;
  c.Start();
  const uint32_t crc = Crc32c(absl::MakeConstSpan(frame).first(total));
  auto r = d.Decode(absl::MakeConstSpan(frame).first(total));
  const bool ok = r.ok() && r->kind == DecodeStep::Kind::kFrame;
  c.Stop();
  CHECK(ok);
  CHECK(crc != 0);
  CHECK(c.allocations() == 0);
}

TEST_CASE("alloc: parsing control payloads allocates nothing",
          "[alloc][control]") {
  // Built outside the counted region; parsing returns views into them.
  const std::string auth_data(300, 't');
  const std::string message(1000, 'm');
  std::vector<std::vector<std::byte>> inits;
  InitMessage hello = testing::BaseInit(InitPhase::kHello);
  hello.auth_method = AuthMethod::kToken;
  hello.auth_data = auth_data;
  // A resuming HELLO (no token, SPEC.md §16.2), its PROOF, and the resumed
  // WELCOME.
  hello.session_id = SessionId{};
  hello.last_received = 12345;
  InitMessage proof;
  proof.phase = InitPhase::kProof;
  proof.auth_data = auth_data;
  proof.resume_proof = ResumeProof{};
  InitMessage welcome = testing::BaseInit(InitPhase::kWelcome);
  welcome.resumed = true;
  welcome.resume_token.reset();
  welcome.resume_proof = ResumeProof{};
  for (const InitMessage* m : {&hello, &proof, &welcome}) {
    inits.emplace_back();
    REQUIRE(AppendInit(*m, inits.back()).ok());
  }
  std::vector<std::byte> sync, error, cancel;
  SyncMessage sm;
  sm.ack = 99;
  sm.ping = 1;
  sm.pong = 2;
  sm.drain = 7;
  sm.bye = true;
  REQUIRE(AppendSync(sm, sync).ok());
  ErrorMessage em;
  em.code = absl::StatusCode::kUnavailable;
  em.message = message;
  em.retryable = true;
  em.detail = ErrorCode::kPeerDraining;
  REQUIRE(AppendError(em, error).ok());
  REQUIRE(
      AppendCancel(CancelMessage{absl::StatusCode::kDeadlineExceeded}, cancel)
          .ok());

  Counting c;
  c.Start();
  bool ok = true;
  for (int round = 0; round < 100; ++round) {
    for (const auto& p : inits) ok = ok && ParseInit(p).ok();
    ok = ok && ParseSync(sync).ok();
    ok = ok && ParseError(error).ok();
    ok = ok && ParseCancel(cancel).ok();
  }
  c.Stop();
  CHECK(ok);
  CHECK(c.allocations() == 0);
}

}  // namespace
}  // namespace symwire
