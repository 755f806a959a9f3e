// Encodes and decodes one frame through an installed symwire.
#include <array>
#include <cstdio>

#include "symwire/symwire.hpp"

int main() {
  std::array<std::byte, 64> buf{};
  const std::array<std::byte, 3> payload{std::byte{'a'}, std::byte{'b'},
                                         std::byte{'c'}};
  symwire::FrameHeader h{symwire::MessageType::kAgentTask, 0, 1, 0};
  auto n = symwire::EncodeFrame(h, payload, absl::MakeSpan(buf));
  if (!n.ok()) return 1;
  symwire::FrameDecoder decoder({.expect_preface = false});
  auto step = decoder.Decode(absl::MakeConstSpan(buf.data(), *n));
  if (!step.ok() || step->kind != symwire::DecodeStep::Kind::kFrame) return 2;
  std::printf("%s\n", symwire::FormatFrame(step->frame).c_str());
  return step->frame.payload().size() == 3 ? 0 : 3;
}
