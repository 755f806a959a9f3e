// File: bench/wire_bench.cpp
// Benchmarks of layer 1 (frame codec): encode and decode with and without the
// payload checksum, CRC32C and XXH3 alone, and two framing baselines (a bare
// 4-byte length-prefix scanner and memcpy), all in one binary so ratios are
// taken within one run. bench/README.md says what each one measures and
// records a run.
//
// Counters: every codec benchmark reports bytes_per_second (wire bytes of
// the frames: header + payload + trailer), `frames/s` and `payload_B/s`. The
// XXH3 verify pair reports payload bytes as bytes_per_second on both sides.
//
// This binary replaces the global operator new with a counting one. Decode
// benchmarks fail with "decode allocated" if a timed pass allocates
// (STYLE.md: the decode path never allocates).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "symwire/detail/hash.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"

// ---------------------------------------------------------------------------
// Counting allocator. Every replaceable allocation function goes through
// CountedAlloc, so any heap use inside a timed decode pass shows up.
namespace {

std::atomic<uint64_t> g_allocations{0};

uint64_t Allocations() { return g_allocations.load(std::memory_order_relaxed); }

void* CountedAlloc(std::size_t size, std::size_t alignment) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  // aligned_alloc wants a size that is a multiple of the alignment.
  size = (size + alignment - 1) / alignment * alignment;
  return std::aligned_alloc(alignment, size);
}

void* CountedAllocOrThrow(std::size_t size, std::size_t alignment) {
  void* p = CountedAlloc(size, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t size) {
  return CountedAllocOrThrow(size, alignof(std::max_align_t));
}
void* operator new[](std::size_t size) {
  return CountedAllocOrThrow(size, alignof(std::max_align_t));
}
void* operator new(std::size_t size, std::align_val_t al) {
  return CountedAllocOrThrow(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al) {
  return CountedAllocOrThrow(size, static_cast<std::size_t>(al));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return CountedAlloc(size, alignof(std::max_align_t));
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return CountedAlloc(size, alignof(std::max_align_t));
}
void* operator new(std::size_t size, std::align_val_t al,
                   const std::nothrow_t&) noexcept {
  return CountedAlloc(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al,
                     const std::nothrow_t&) noexcept {
  return CountedAlloc(size, static_cast<std::size_t>(al));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t,
                     const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t,
                       const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace {

using Bytes = absl::Span<const std::byte>;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * kKiB;
// Payload sizes of the codec benchmarks and baselines (the list).
const std::vector<int64_t> kPayloadSizes = {0, 64, 1024, 16 * 1024,
                                            1024 * 1024};
// Input sizes of the CRC32C / XXH3 benchmarks. 8 is not in the list:
// it is what the header CRC covers for a 64-byte-payload frame (12-byte
// header minus the 4-byte CRC), so it prices the decoder's CRC step.
const std::vector<int64_t> kHashSizes = {8, 16, 64, 1024, 16 * 1024};

size_t PayloadArg(const benchmark::State& state) {
  return static_cast<size_t>(state.range(0));
}
bool ChecksumArg(const benchmark::State& state) { return state.range(1) != 0; }

// Frames per buffer: ~4 MiB of payload, at most 4096 frames (so the 0- and
// 64-byte buffers stay cache-resident, as a receive buffer would be) and at
// least 8 (the 1 MiB case: 8 MiB).
size_t FrameCount(size_t payload_size) {
  if (payload_size == 0) return 4096;
  return std::clamp<size_t>(4 * kMiB / payload_size, 8, 4096);
}

// Deterministic, incompressible-looking payload bytes.
std::vector<std::byte> MakePayload(size_t size, uint32_t seed) {
  std::vector<std::byte> out(size);
  uint32_t x = seed * 2654435761u + 1u;
  for (auto& b : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::byte>(x & 0xFFu);
  }
  return out;
}

// The header every benchmark frame carries: a streamed response, the shape of
// the bulk of a session's traffic. `sequence` makes headers differ.
symwire::FrameHeader BenchHeader(bool checksum, uint64_t sequence) {
  symwire::FrameHeader h;
  h.type = symwire::MessageType::kAgentResponse;
  h.flags = checksum ? symwire::kFlagChecksum : uint8_t{0};
  h.stream_id = 7;
  h.sequence = sequence;
  return h;
}

// A buffer of `frames` back-to-back encoded frames (no preface).
struct FrameBuffer {
  std::vector<std::byte> bytes;
  std::vector<size_t> payload_offsets;  // where each payload starts
  size_t payload_size = 0;
  size_t frames = 0;
  size_t payload_bytes() const { return payload_size * frames; }
};

// Built once per (size, checksum) and reused across repetitions; building
// allocates, so it must happen outside the timed loop anyway.
const FrameBuffer& GetFrameBuffer(size_t payload_size, bool checksum) {
  static std::map<std::pair<size_t, bool>, FrameBuffer> cache;
  auto [it, inserted] = cache.try_emplace({payload_size, checksum});
  FrameBuffer& fb = it->second;
  if (!inserted) return fb;
  fb.payload_size = payload_size;
  fb.frames = FrameCount(payload_size);
  fb.payload_offsets.reserve(fb.frames);
  for (size_t i = 0; i < fb.frames; ++i) {
    const std::vector<std::byte> payload =
        MakePayload(payload_size, static_cast<uint32_t>(i));
    const symwire::FrameHeader h = BenchHeader(checksum, i);
    const size_t size = symwire::EncodedSize(h, payload.size()).value();
    const size_t pos = fb.bytes.size();
    fb.bytes.resize(pos + size);
    const size_t written =
        symwire::EncodeFrame(h, payload, absl::MakeSpan(fb.bytes).subspan(pos))
            .value();
    if (written != size) std::abort();
    fb.payload_offsets.push_back(
        pos + size - payload_size -
        (checksum ? symwire::kPayloadChecksumSize : 0));
  }
  return fb;
}

// The same payloads framed by a bare 4-byte big-endian length prefix.
const std::vector<std::byte>& GetLengthPrefixBuffer(size_t payload_size) {
  static std::map<size_t, std::vector<std::byte>> cache;
  auto [it, inserted] = cache.try_emplace(payload_size);
  std::vector<std::byte>& buf = it->second;
  if (!inserted) return buf;
  const size_t frames = FrameCount(payload_size);
  buf.reserve(frames * (4 + payload_size));
  for (size_t i = 0; i < frames; ++i) {
    const auto len = static_cast<uint32_t>(payload_size);
    for (int shift = 24; shift >= 0; shift -= 8) {
      buf.push_back(static_cast<std::byte>((len >> shift) & 0xFFu));
    }
    const std::vector<std::byte> payload =
        MakePayload(payload_size, static_cast<uint32_t>(i));
    buf.insert(buf.end(), payload.begin(), payload.end());
  }
  return buf;
}

void SetCodecCounters(benchmark::State& state, size_t frames_per_pass,
                      size_t wire_bytes_per_pass,
                      size_t payload_bytes_per_pass) {
  const auto passes = static_cast<double>(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(wire_bytes_per_pass));
  state.counters["frames/s"] =
      benchmark::Counter(passes * static_cast<double>(frames_per_pass),
                         benchmark::Counter::kIsRate);
  state.counters["payload_B/s"] =
      benchmark::Counter(passes * static_cast<double>(payload_bytes_per_pass),
                         benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------------------
// Encode: per pass, EncodeFrame writes FrameCount(size) frames back to back
// into a preallocated buffer (sequence = frame index), from one payload
// buffer. Includes PlanFrame's validation, the header CRC and, with the
// checksum, XXH3 over the payload. `allocs/frame` must stay 0.
void BM_EncodeFrame(benchmark::State& state) {
  const size_t payload_size = PayloadArg(state);
  const bool checksum = ChecksumArg(state);
  const FrameBuffer& ref = GetFrameBuffer(payload_size, checksum);
  const std::vector<std::byte> payload = MakePayload(payload_size, 1);
  std::vector<std::byte> out(ref.bytes.size());
  const uint64_t allocs_before = Allocations();
  for (auto _ : state) {
    absl::Span<std::byte> rest = absl::MakeSpan(out);
    for (size_t i = 0; i < ref.frames; ++i) {
      auto written =
          symwire::EncodeFrame(BenchHeader(checksum, i), payload, rest);
      if (!written.ok()) {
        state.SkipWithError("encode failed");
        break;
      }
      rest.remove_prefix(*written);
    }
    benchmark::ClobberMemory();
  }
  const uint64_t allocs = Allocations() - allocs_before;
  SetCodecCounters(state, ref.frames, ref.bytes.size(), ref.payload_bytes());
  state.counters["allocs/frame"] =
      static_cast<double>(allocs) /
      std::max(1.0, static_cast<double>(state.iterations()) *
                        static_cast<double>(ref.frames));
}
BENCHMARK(BM_EncodeFrame)
    ->ArgsProduct({kPayloadSizes, {0, 1}})
    ->ArgNames({"payload", "checksum"});

// ---------------------------------------------------------------------------
// Decode: per pass, one FrameDecoder (expect_preface=false, constructed in
// the pass, as a new connection would) decodes every frame of the buffer,
// advancing by step->consumed; each frame's payload span goes through
// DoNotOptimize. Any heap allocation during a pass fails the benchmark.
void RunDecode(benchmark::State& state, const FrameBuffer& fb,
               symwire::DecoderOptions options) {
  options.expect_preface = false;
  for (auto _ : state) {
    const uint64_t allocs_before = Allocations();
    symwire::FrameDecoder decoder(options);
    Bytes rest(fb.bytes);
    size_t frames = 0;
    while (!rest.empty()) {
      auto step = decoder.Decode(rest);
      if (!step.ok() || step->kind != symwire::DecodeStep::Kind::kFrame) {
        state.SkipWithError("decode failed");
        break;
      }
      Bytes payload = step->frame.payload();
      benchmark::DoNotOptimize(payload);
      rest.remove_prefix(step->consumed);
      ++frames;
    }
    if (state.error_occurred()) break;
    if (Allocations() != allocs_before) {
      state.SkipWithError("decode allocated");
      break;
    }
    if (frames != fb.frames) {
      state.SkipWithError("decoded the wrong number of frames");
      break;
    }
  }
}

void BM_DecodeFrame(benchmark::State& state) {
  const FrameBuffer& fb = GetFrameBuffer(PayloadArg(state), ChecksumArg(state));
  RunDecode(state, fb, symwire::DecoderOptions{});
  SetCodecCounters(state, fb.frames, fb.bytes.size(), fb.payload_bytes());
}
BENCHMARK(BM_DecodeFrame)
    ->ArgsProduct({kPayloadSizes, {0, 1}})
    ->ArgNames({"payload", "checksum"});

// Decode in batches: per pass, one FrameDecoder (constructed in the pass, as
// for BM_DecodeFrame) fills an array of kBatchFrames FrameViews per
// DecodeBatch call until the buffer is consumed; then each view's payload
// span goes through DoNotOptimize, as BM_DecodeFrame does per frame. Every
// check is made (header CRC, fields, limits, checksum). Any heap allocation
// during a pass fails the benchmark.
constexpr size_t kBatchFrames = 64;

void RunDecodeBatch(benchmark::State& state, const FrameBuffer& fb) {
  symwire::DecoderOptions options;
  options.expect_preface = false;
  std::vector<symwire::FrameView> views(kBatchFrames);
  const absl::Span<symwire::FrameView> out(views);
  for (auto _ : state) {
    const uint64_t allocs_before = Allocations();
    symwire::FrameDecoder decoder(options);
    Bytes rest(fb.bytes);
    size_t frames = 0;
    while (!rest.empty()) {
      auto batch = decoder.DecodeBatch(rest, out);
      if (!batch.ok() || batch->frames == 0) {
        state.SkipWithError("decode failed");
        break;
      }
      for (size_t i = 0; i < batch->frames; ++i) {
        Bytes payload = out[i].payload();
        benchmark::DoNotOptimize(payload);
      }
      rest.remove_prefix(batch->consumed);
      frames += batch->frames;
    }
    if (state.error_occurred()) break;
    if (Allocations() != allocs_before) {
      state.SkipWithError("decode allocated");
      break;
    }
    if (frames != fb.frames) {
      state.SkipWithError("decoded the wrong number of frames");
      break;
    }
  }
}

void BM_DecodeBatch(benchmark::State& state) {
  const FrameBuffer& fb = GetFrameBuffer(PayloadArg(state), ChecksumArg(state));
  RunDecodeBatch(state, fb);
  SetCodecCounters(state, fb.frames, fb.bytes.size(), fb.payload_bytes());
}
BENCHMARK(BM_DecodeBatch)
    ->ArgsProduct({kPayloadSizes, {0, 1}})
    ->ArgNames({"payload", "checksum"});

// The worst case for DecodeBatch's layout prediction: 4096 frames whose
// payloads alternate between 10 and 100 bytes (a 1- and a 2-byte
// payload_length), so no two consecutive frames share a layout. `batch` 0:
// Decode per frame (as BM_DecodeFrame); 1: DecodeBatch (as BM_DecodeBatch).
void BM_DecodeAlternating(benchmark::State& state) {
  static const FrameBuffer fb = [] {
    FrameBuffer b;
    b.frames = 4096;
    for (size_t i = 0; i < b.frames; ++i) {
      const std::vector<std::byte> payload =
          MakePayload(i % 2 == 0 ? 10 : 100, static_cast<uint32_t>(i));
      const symwire::FrameHeader h = BenchHeader(false, i);
      const size_t size = symwire::EncodedSize(h, payload.size()).value();
      const size_t pos = b.bytes.size();
      b.bytes.resize(pos + size);
      if (symwire::EncodeFrame(h, payload, absl::MakeSpan(b.bytes).subspan(pos))
              .value() != size) {
        std::abort();
      }
    }
    b.payload_size = 55;  // the mean, for payload_B/s
    return b;
  }();
  if (state.range(0) == 0) {
    RunDecode(state, fb, symwire::DecoderOptions{});
  } else {
    RunDecodeBatch(state, fb);
  }
  SetCodecCounters(state, fb.frames, fb.bytes.size(), fb.payload_bytes());
}
BENCHMARK(BM_DecodeAlternating)->ArgName("batch")->Arg(0)->Arg(1);

// As BM_DecodeFrame with verify_header_crc=false: the difference is the
// header CRC32C's cost. (Only fuzzers and this benchmark turn it off.)
void BM_DecodeFrameNoCrc(benchmark::State& state) {
  const FrameBuffer& fb = GetFrameBuffer(PayloadArg(state), ChecksumArg(state));
  symwire::DecoderOptions options;
  options.verify_header_crc = false;
  RunDecode(state, fb, options);
  SetCodecCounters(state, fb.frames, fb.bytes.size(), fb.payload_bytes());
}
BENCHMARK(BM_DecodeFrameNoCrc)
    ->ArgsProduct({kPayloadSizes, {0}})
    ->ArgNames({"payload", "checksum"});

// ---------------------------------------------------------------------------
// The XXH3 verify pair (goal 2). Both sides count payload bytes only as
// bytes_per_second, over the same buffer of checksummed frames.
// BM_DecodeVerifyXxh3: full decode with the payload checksum verified.
void BM_DecodeVerifyXxh3(benchmark::State& state) {
  const FrameBuffer& fb = GetFrameBuffer(PayloadArg(state), true);
  RunDecode(state, fb, symwire::DecoderOptions{});
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(fb.payload_bytes()));
  state.counters["frames/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(fb.frames),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeVerifyXxh3)
    ->ArgName("payload")
    ->Arg(1024)
    ->Arg(16 * 1024)
    ->Arg(1024 * 1024);

// BM_Xxh3Payloads: symwire::detail::Xxh3Hash64 over each payload of that buffer
// in place (offsets precomputed), nothing else: the floor for goal 2.
void BM_Xxh3Payloads(benchmark::State& state) {
  const FrameBuffer& fb = GetFrameBuffer(PayloadArg(state), true);
  for (auto _ : state) {
    for (const size_t off : fb.payload_offsets) {
      uint64_t h = symwire::detail::Xxh3Hash64(
          Bytes(fb.bytes).subspan(off, fb.payload_size));
      benchmark::DoNotOptimize(h);
    }
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(fb.payload_bytes()));
  state.counters["frames/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(fb.frames),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Xxh3Payloads)
    ->ArgName("payload")
    ->Arg(1024)
    ->Arg(16 * 1024)
    ->Arg(1024 * 1024);

// ---------------------------------------------------------------------------
// Baseline (a), the framing floor: the same payloads behind a bare 4-byte
// big-endian length; per frame read the length, bounds-check it, make a
// span for the payload, DoNotOptimize it, advance. No validation, no CRC.
void BM_LengthPrefixScan(benchmark::State& state) {
  const size_t payload_size = PayloadArg(state);
  const std::vector<std::byte>& buf = GetLengthPrefixBuffer(payload_size);
  const size_t expected = FrameCount(payload_size);
  for (auto _ : state) {
    const std::byte* p = buf.data();
    const std::byte* const end = p + buf.size();
    size_t frames = 0;
    while (end - p >= 4) {
      uint32_t be;
      std::memcpy(&be, p, sizeof(be));
      const uint32_t len = __builtin_bswap32(be);
      p += 4;
      if (len > static_cast<size_t>(end - p)) break;
      Bytes payload(p, len);
      benchmark::DoNotOptimize(payload);
      p += len;
      ++frames;
    }
    if (frames != expected) {
      state.SkipWithError("scanned the wrong number of frames");
      break;
    }
  }
  SetCodecCounters(state, expected, buf.size(), expected * payload_size);
}
BENCHMARK(BM_LengthPrefixScan)
    ->ArgName("payload")
    ->ArgsProduct({kPayloadSizes});

// Baseline (b): memcpy of the same payload bytes, frame by frame, from the
// encoded buffer into a same-sized destination at the same offsets: what a
// copying decoder would pay on top of framing.
void BM_Memcpy(benchmark::State& state) {
  const FrameBuffer& fb = GetFrameBuffer(PayloadArg(state), false);
  std::vector<std::byte> dst(fb.bytes.size());
  for (auto _ : state) {
    for (const size_t off : fb.payload_offsets) {
      std::memcpy(dst.data() + off, fb.bytes.data() + off, fb.payload_size);
    }
    benchmark::ClobberMemory();
  }
  SetCodecCounters(state, fb.frames, fb.payload_bytes(), fb.payload_bytes());
}
BENCHMARK(BM_Memcpy)->ArgName("payload")->ArgsProduct({kPayloadSizes});

// ---------------------------------------------------------------------------
// Checksums alone, over one buffer of the given size (throughput of
// independent calls; the buffer stays in L1/L2).
template <uint32_t (*Crc)(uint32_t, Bytes) noexcept>
void RunCrc(benchmark::State& state) {
  const std::vector<std::byte> data = MakePayload(PayloadArg(state), 3);
  for (auto _ : state) {
    Bytes in(data);
    benchmark::DoNotOptimize(in);
    uint32_t crc = Crc(0, in);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(data.size()));
}

// BM_Crc32c: the public, run-time dispatched symwire::Crc32c.
void BM_Crc32c(benchmark::State& state) {
  const std::vector<std::byte> data = MakePayload(PayloadArg(state), 3);
  for (auto _ : state) {
    Bytes in(data);
    benchmark::DoNotOptimize(in);
    uint32_t crc = symwire::Crc32c(in);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_Crc32c)->ArgName("bytes")->ArgsProduct({kHashSizes});

// BM_Crc32cPortable: the slicing-by-8 table path.
void BM_Crc32cPortable(benchmark::State& state) {
  RunCrc<symwire::detail::Crc32cExtendPortable>(state);
}
BENCHMARK(BM_Crc32cPortable)->ArgName("bytes")->ArgsProduct({kHashSizes});

// BM_Crc32cHardware: the SSE4.2 path (skipped on CPUs without it).
void BM_Crc32cHardware(benchmark::State& state) {
  if (!symwire::detail::Crc32cHardwareAvailable()) {
    state.SkipWithError("no SSE4.2 crc32 on this CPU");
    return;
  }
  RunCrc<symwire::detail::Crc32cExtendHardware>(state);
}
BENCHMARK(BM_Crc32cHardware)->ArgName("bytes")->ArgsProduct({kHashSizes});

// BM_Xxh3: symwire::detail::Xxh3Hash64 (XXH3_64bits inline, seed 0).
void BM_Xxh3(benchmark::State& state) {
  const std::vector<std::byte> data = MakePayload(PayloadArg(state), 3);
  for (auto _ : state) {
    Bytes in(data);
    benchmark::DoNotOptimize(in);
    uint64_t h = symwire::detail::Xxh3Hash64(in);
    benchmark::DoNotOptimize(h);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_Xxh3)->ArgName("bytes")->ArgsProduct({kHashSizes});

// Fails loudly if the operator new replacement is not in effect: the
// "decode allocated" check would otherwise pass vacuously.
bool AllocationCounterWorks() {
  const uint64_t before = Allocations();
  auto* p = new std::vector<int>(3);
  benchmark::DoNotOptimize(p);
  delete p;
  return Allocations() - before >= 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (!AllocationCounterWorks()) {
    std::fprintf(stderr,
                 "wire_bench: the counting operator new is not in effect\n");
    return 1;
  }
  benchmark::AddCustomContext(
      "crc32c_path",
      symwire::detail::Crc32cHardwareAvailable() ? "sse4.2" : "portable");
  benchmark::AddCustomContext(
      "frames_per_pass",
      "payload 0/64/1024: 4096, 16384: 256, 1048576: 8 (decoder per pass)");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
