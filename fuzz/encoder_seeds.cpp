// File: fuzz/encoder_seeds.cpp
// Writes a few extra seeds for fuzz/corpus/decode_frame/ (files enc-*) made
// with symwire's own encoder: streams of several frames with extensions,
// which the hand-checked golden vectors (the vec-* seeds) cover one at a
// time. Seeds only: golden vectors are never generated from the encoder
// under test (STYLE.md §6). Usage: fuzz_encoder_seeds OUTPUT_DIR
// (make_seeds.py --encoder BINARY runs it). Each file is the 10-byte
// control block of decode_frame.cpp followed by the stream.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"

namespace {

using symwire::FrameExtensions;
using symwire::FrameHeader;
using symwire::MessageType;

// decode_frame.cpp control block: mode, split, limits (default values).
std::vector<std::byte> Control(uint8_t mode, uint8_t split) {
  const uint8_t c[10] = {mode, split, 0x10, 0x00,  // max_header_bytes 4096
                         0x01, 0x00,  0x00, 0x00,  // max_payload_bytes 16 MiB
                         0x00, 0x20};              // max_extensions 32
  std::vector<std::byte> out;
  for (uint8_t b : c) out.push_back(static_cast<std::byte>(b));
  return out;
}

absl::Span<const std::byte> Text(const char* s) {
  return absl::Span<const std::byte>(reinterpret_cast<const std::byte*>(s),
                                     std::char_traits<char>::length(s));
}

class Stream {
 public:
  explicit Stream(bool preface) {
    if (preface) Append(symwire::kPrefaceBytes);
  }
  void Append(absl::Span<const std::byte> b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
  }
  void Frame(const FrameHeader& h, const FrameExtensions& e,
             absl::Span<const std::byte> payload) {
    std::vector<std::byte> out(20000);
    auto n = symwire::EncodeFrame(h, e, payload, absl::MakeSpan(out));
    if (!n.ok()) {
      std::fprintf(stderr, "encode: %s\n", n.status().ToString().c_str());
      std::exit(1);
    }
    Append(absl::MakeConstSpan(out.data(), *n));
  }
  const std::vector<std::byte>& bytes() const { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

bool Write(const std::string& dir, const std::string& name, uint8_t mode,
           uint8_t split, const Stream& s) {
  std::vector<std::byte> file = Control(mode, split);
  file.insert(file.end(), s.bytes().begin(), s.bytes().end());
  const std::string path = dir + "/enc-" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const size_t n = std::fwrite(file.data(), 1, file.size(), f);
  return std::fclose(f) == 0 && n == file.size();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  // Mode 0x1F: preface, CRC and checksum verified as is (what a peer does).
  // Mode 0x15: preface, CRC and checksum fixed up, then verified.
  constexpr uint8_t kStrict = 0x1F;
  constexpr uint8_t kFixUp = 0x15;

  symwire::TraceParent tp;
  tp.version = 0;
  for (size_t i = 0; i < tp.trace_id.size(); ++i) {
    tp.trace_id[i] = static_cast<std::byte>(0xA0 + i);
  }
  for (size_t i = 0; i < tp.parent_id.size(); ++i) {
    tp.parent_id[i] = static_cast<std::byte>(0xB0 + i);
  }
  tp.trace_flags = 1;
  const std::array<symwire::MetadataEntry, 2> meta = {
      symwire::MetadataEntry{"model", "gpt"}, symwire::MetadataEntry{"k", ""}};
  const std::array<std::byte, 3> unknown_value = {std::byte{1}, std::byte{2},
                                                  std::byte{3}};
  const std::array<symwire::RawExtension, 2> unknown = {
      symwire::RawExtension{8, unknown_value},
      symwire::RawExtension{16384, {}}};

  // A whole conversation: init, task with every extension, responses,
  // cancel, error, sync.
  Stream conv(true);
  conv.Frame({MessageType::kAgentInit, 0, 0, 0}, {}, Text("hello"));
  FrameExtensions all;
  all.deadline_us = 2'000'000;
  all.trace_parent = tp;
  all.trace_state = "vendor=abc,x=1";
  all.metadata = meta;
  all.other = unknown;
  conv.Frame({MessageType::kAgentTask, symwire::kFlagChecksum, 1, 1}, all,
             Text("summarize this"));
  conv.Frame({MessageType::kAgentResponse, 0, 1, 2}, {}, Text("part"));
  conv.Frame({MessageType::kAgentResponse,
              symwire::kFlagFinal | symwire::kFlagChecksum, 1, 3},
             {}, Text("done"));
  conv.Frame({MessageType::kAgentCancel, 0, 70000, 4}, {}, {});
  conv.Frame({MessageType::kAgentError, 0, 0, 5}, {}, Text("oops"));
  conv.Frame({MessageType::kAgentSync, 0, 0, (uint64_t{1} << 40)}, {}, {});
  bool ok = Write(dir, "conversation", kStrict, 0, conv);
  ok = ok && Write(dir, "conversation-bytewise", kStrict, 1, conv);
  ok = ok && Write(dir, "conversation-fixup-random", kFixUp, 0x8F, conv);

  // header_length around the 1-/2-byte boundary (SPEC.md §4: it counts the
  // header bytes after itself): 63 (`3f`, the largest 1-byte value) and 64
  // (`40 40`, the smallest 2-byte one); 5 fixed-field bytes + 2 TLV head
  // bytes + 4 CRC bytes + a TRACESTATE of 52 or 53 bytes get there.
  Stream edge(false);
  const std::string s52(52, 'a');
  const std::string s53(53, 'b');
  FrameExtensions e63;
  e63.trace_state = s52;
  edge.Frame({MessageType::kAgentTask, 0, 1, 0}, e63, {});
  FrameExtensions e64;
  e64.trace_state = s53;
  edge.Frame({MessageType::kAgentTask, 0, 1, 1}, e64, Text("x"));
  ok = ok && Write(dir, "header-length-edges", 0x1E, 3, edge);

  // Large varints everywhere.
  Stream wide(true);
  FrameExtensions big;
  big.deadline_us = symwire::kVarintMax;
  wide.Frame({MessageType::kAgentError, symwire::kFlagChecksum,
              symwire::kVarintMax, symwire::kVarintMax},
             big, Text("wide"));
  ok = ok && Write(dir, "max-varints", kStrict, 0x85, wide);

  if (!ok) {
    std::fprintf(stderr, "cannot write seeds to %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
