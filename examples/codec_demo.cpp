// File: examples/codec_demo.cpp
// The codec demo (layer 1 only, no I/O): encodes a conversation with frames
// of every message type, decodes it back from random-sized chunks (as a
// socket would deliver it), shows what a corrupted byte does, then measures
// codec throughput. (The README's demo, examples/demo.cpp, runs
// orchestrator and agents over TCP.)
// Usage: symwire_codec_demo [--frames N] (frames per throughput round).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cli/args.hpp"
#include "symwire/symwire.hpp"

namespace {

using symwire::MessageType;

absl::Span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Appends one frame to `wire`; aborts the demo on an encoder error.
void Append(std::vector<std::byte>& wire, const symwire::FrameHeader& header,
            std::string_view payload,
            const symwire::FrameExtensions& ext = {}) {
  auto size = symwire::EncodedSize(header, ext, payload.size());
  if (!size.ok()) {
    std::fprintf(stderr, "encode: %s\n", size.status().ToString().c_str());
    std::exit(1);
  }
  const size_t at = wire.size();
  wire.resize(at + *size);
  (void)*symwire::EncodeFrame(header, ext, Bytes(payload),
                              absl::MakeSpan(wire).subspan(at));
}

// Feeds `wire` to a decoder in random chunks, printing every step. Returns
// the decoder's final status.
absl::Status DecodeInChunks(absl::Span<const std::byte> wire, std::mt19937& rng,
                            bool print) {
  symwire::FrameDecoder decoder;
  std::vector<std::byte> buffer;  // what a driver would hold
  std::uniform_int_distribution<size_t> chunk(1, 40);
  size_t fed = 0;
  while (fed < wire.size()) {
    const size_t n = std::min(chunk(rng), wire.size() - fed);
    buffer.insert(buffer.end(), wire.begin() + static_cast<long>(fed),
                  wire.begin() + static_cast<long>(fed + n));
    fed += n;
    while (true) {
      auto step = decoder.Decode(buffer);
      if (!step.ok()) return step.status();
      if (step->kind == symwire::DecodeStep::Kind::kNeedMore) break;
      if (print && step->kind == symwire::DecodeStep::Kind::kPreface) {
        std::printf("  preface, wire version %d\n", step->wire_version);
      } else if (print) {
        std::printf("  %s\n", symwire::FormatFrame(step->frame, 40).c_str());
      }
      buffer.erase(buffer.begin(),
                   buffer.begin() + static_cast<long>(step->consumed));
    }
  }
  return absl::OkStatus();
}

double MedianOf5(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t frames = 200000;
  symwire_cli::Args args(
      "symwire_codec_demo", "[--frames N]",
      "Frames of every type encoded, decoded from random chunks, a "
      "corrupted bit caught,\nand the codec's throughput.");
  args.Int<size_t>("--frames", &frames, "N",
                   "frames per throughput measurement", 1, size_t{1} << 32);
  args.Parse(argc, argv);

  // 1. A short orchestrator <-> agent exchange, both directions in one
  //    buffer for the demo's sake.
  std::vector<std::byte> wire(symwire::kPrefaceSize);
  (void)*symwire::EncodePreface(absl::MakeSpan(wire));
  Append(wire, {MessageType::kAgentInit, 0, 0, 0},
         R"({"agent":"summarizer-7","versions":[1,1]})");
  symwire::MetadataEntry meta[] = {{"model", "small-llm"}, {"tenant", "acme"}};
  symwire::FrameExtensions task_ext;
  task_ext.deadline_us = 30'000'000;
  task_ext.trace_parent =
      symwire::TraceParent{0,
                           {std::byte{0x4b}, std::byte{0xf9}, std::byte{0x2f}},
                           {std::byte{1}},
                           1};
  task_ext.metadata = meta;
  Append(wire, {MessageType::kAgentTask, symwire::kFlagChecksum, 1, 1},
         "Summarize the attached report in three bullet points.", task_ext);
  Append(wire, {MessageType::kAgentResponse, 0, 1, 2}, "- Revenue grew 12%");
  Append(wire, {MessageType::kAgentResponse, 0, 1, 3}, "\n- Costs fell 3%");
  Append(wire,
         {MessageType::kAgentResponse,
          symwire::kFlagFinal | symwire::kFlagChecksum, 1, 4},
         "\n- Outlook: stable");
  Append(wire, {MessageType::kAgentTask, 0, 3, 5}, "Translate to French.");
  Append(wire, {MessageType::kAgentCancel, 0, 3, 6}, "");
  Append(wire, {MessageType::kAgentError, 0, 3, 7},
         R"({"code":1,"message":"cancelled","retryable":false})");
  Append(wire, {MessageType::kAgentSync, 0, 0, 8}, "ping t=1700000000123");

  std::printf("Encoded %zu bytes: preface + 9 frames of all six types.\n",
              wire.size());
  std::printf("Decoding them from random 1..40-byte chunks:\n");
  std::mt19937 rng(7);
  if (absl::Status s = DecodeInChunks(wire, rng, true); !s.ok()) {
    std::printf("unexpected: %s\n", s.ToString().c_str());
    return 1;
  }

  // 2. One flipped bit in the task's header: the CRC32C catches it, and the
  //    error names the value and the stream offset.
  std::vector<std::byte> corrupt = wire;
  corrupt[wire.size() / 4] ^= std::byte{0x10};
  absl::Status bad = DecodeInChunks(corrupt, rng, false);
  std::printf(
      "\nSame stream with bit 4 of byte %zu flipped:\n  %s (%s)\n",
      wire.size() / 4, bad.ToString().c_str(),
      std::string(symwire::ErrorCodeName(symwire::GetErrorCode(bad))).c_str());

  // 3. Throughput of the codec alone: 64-byte payloads, no I/O.
  const std::string payload(64, 'x');
  const symwire::FrameHeader header{MessageType::kAgentResponse, 0, 42, 0};
  // Sequence numbers grow, and so may their varints: size for the largest.
  symwire::FrameHeader last = header;
  last.sequence = frames;
  const size_t max_frame_size = *symwire::EncodedSize(last, payload.size());
  std::vector<std::byte> stream(frames * max_frame_size);
  size_t stream_size = 0;
  std::vector<double> enc_rates, dec_rates;
  for (int round = 0; round < 5; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    size_t at = 0;
    for (size_t i = 0; i < frames; ++i) {
      symwire::FrameHeader h = header;
      h.sequence = i;
      at += *symwire::EncodeFrame(h, Bytes(payload),
                                  absl::MakeSpan(stream).subspan(at));
    }
    auto t1 = std::chrono::steady_clock::now();
    symwire::FrameDecoder decoder({.expect_preface = false});
    absl::Span<const std::byte> in(stream.data(), at);
    size_t decoded = 0;
    while (!in.empty()) {
      auto step = decoder.Decode(in);
      if (!step.ok() || step->kind != symwire::DecodeStep::Kind::kFrame) {
        std::printf("unexpected decode result\n");
        return 1;
      }
      decoded += step->frame.payload().size() == payload.size();
      in.remove_prefix(step->consumed);
    }
    auto t2 = std::chrono::steady_clock::now();
    if (decoded != frames) return 1;
    stream_size = at;
    enc_rates.push_back(static_cast<double>(frames) /
                        std::chrono::duration<double>(t1 - t0).count());
    dec_rates.push_back(static_cast<double>(frames) /
                        std::chrono::duration<double>(t2 - t1).count());
  }
  const double enc = MedianOf5(enc_rates), dec = MedianOf5(dec_rates);
  const double frame_size =
      static_cast<double>(stream_size) / static_cast<double>(frames);
  std::printf(
      "\nCodec throughput, %zu frames of 64 B payload (%.1f B on the wire), "
      "median of 5 rounds:\n  encode %.1f M frames/s (%.2f GB/s)\n"
      "  decode %.1f M frames/s (%.2f GB/s), header CRC32C checked\n",
      frames, frame_size, enc / 1e6, enc * frame_size / 1e9, dec / 1e6,
      dec * frame_size / 1e9);
  return 0;
}
