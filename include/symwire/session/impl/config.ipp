// File: symwire/session/impl/config.ipp
// Out-of-line bodies for session/config.hpp.
#ifndef SYMWIRE_SESSION_IMPL_CONFIG_IPP_
#define SYMWIRE_SESSION_IMPL_CONFIG_IPP_

#include <cstring>
#include <memory>

#include "absl/strings/str_format.h"
#include "symwire/session/config.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire {

SYMWIRE_DECL RandomSource SeededRandom(uint64_t seed) {
  // SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and every seed gives
  // a full-period, well-mixed stream. Shared state so copies of the
  // std::function draw from one stream.
  auto state = std::make_shared<uint64_t>(seed);
  return [state](absl::Span<std::byte> out) {
    size_t i = 0;
    while (i < out.size()) {
      uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      // Little-endian bytes on every host, so that a seed gives the same
      // stream everywhere (tests/vectors/session_transcripts.md relies on it).
      const size_t n = std::min<size_t>(8, out.size() - i);
      for (size_t k = 0; k < n; ++k) {
        out[i + k] = static_cast<std::byte>(z >> (8 * k));
      }
      i += n;
    }
  };
}

SYMWIRE_DECL absl::Status ValidateConfig(const SessionConfig& c) {
  auto bad = [](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("session config: %s %s", field, why));
  };
  if (c.agent_id.empty() || c.agent_id.size() > kMaxAgentIdSize) {
    return bad("agent_id", absl::StrFormat("has %d bytes; must be 1..255",
                                           c.agent_id.size()));
  }
  if (c.min_version < 1 || c.max_version < c.min_version ||
      c.max_version > kVarintMax) {
    return bad("min_version..max_version",
               absl::StrFormat("is %d..%d; must be a non-empty range from 1",
                               c.min_version, c.max_version));
  }
  if (!c.random)
    return bad("random", "is not set (a RandomSource is required)");
  if (static_cast<uint8_t>(c.role) > 2) return bad("role", "is not 0..2");
  if (c.max_tasks < 1) return bad("max_tasks", "must be >= 1");
  if (c.max_payload_bytes > kMaxPayloadSizeLimit) {
    return bad("max_payload_bytes",
               absl::StrFormat("%d exceeds %d", c.max_payload_bytes,
                               kMaxPayloadSizeLimit));
  }
  if (c.max_header_bytes < kMinHeaderSize ||
      c.max_header_bytes > kMaxHeaderSizeLimit) {
    return bad("max_header_bytes",
               absl::StrFormat("%d is outside 10..16385", c.max_header_bytes));
  }
  if (c.max_extensions > kMaxExtensionsLimit) {
    return bad("max_extensions", "exceeds 16383");
  }
  if (c.replay_bytes < 1 || c.replay_bytes > kVarintMax) {
    return bad("replay_bytes", "must be >= 1");
  }
  if (c.replay_frames < 1 || c.replay_frames > kVarintMax) {
    return bad("replay_frames", "must be >= 1");
  }
  const absl::Duration zero = absl::ZeroDuration();
  if (c.handshake_timeout <= zero)
    return bad("handshake_timeout", "must be > 0");
  if (c.ping_interval < absl::Microseconds(1)) {
    return bad("ping_interval", "must be >= 1us");
  }
  if (c.min_peer_ping_interval < zero) {
    return bad("min_peer_ping_interval", "must be >= 0");
  }
  if (c.dead_peer_timeout <= zero)
    return bad("dead_peer_timeout", "must be > 0");
  if (c.frame_timeout <= zero) return bad("frame_timeout", "must be > 0");
  if (c.ack_delay < zero) return bad("ack_delay", "must be >= 0");
  if (c.resume_window <= zero) return bad("resume_window", "must be > 0");
  if (c.max_noop_frames < 1) return bad("max_noop_frames", "must be >= 1");
  if (c.backoff.initial <= zero || c.backoff.max < c.backoff.initial) {
    return bad("backoff", "needs 0 < initial <= max");
  }
  if (!(c.backoff.multiplier >= 1.0) || !(c.backoff.jitter >= 0.0) ||
      !(c.backoff.jitter < 1.0)) {
    return bad("backoff", "needs multiplier >= 1 and jitter in [0, 1)");
  }
  return absl::OkStatus();
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_CONFIG_IPP_
