// File: symwire/session/config.hpp
// Layer 2 (session). SessionConfig: identity, limits, timers, backoff and
// the injected random source of a Session (SPEC.md §19 lists the
// defaults), ValidateConfig, and SeededRandom, a deterministic source for
// tests and simulations.
#ifndef SYMWIRE_SESSION_CONFIG_HPP_
#define SYMWIRE_SESSION_CONFIG_HPP_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/session/auth.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/message_type.hpp"

namespace symwire {

// SessionSide
// Which end of the connection a Session is: the initiator dials (and
// reconnects), the acceptor accepts (and keeps the session for resumption).
enum class SessionSide : uint8_t { kInitiator, kAcceptor };

// RandomSource
// Fills the span with random bytes. The session draws nonces, session ids,
// resume tokens and backoff jitter from it and from nothing else. Use a
// cryptographic source in production (the transport layer provides one
// backed by OpenSSL's RAND_bytes); SeededRandom in tests.
using RandomSource = std::function<void(absl::Span<std::byte>)>;

// SeededRandom
// A deterministic RandomSource (SplitMix64 of `seed`). NOT cryptographic:
// resume tokens and nonces drawn from it are predictable. For tests,
// simulations and benchmarks only.
SYMWIRE_DECL RandomSource SeededRandom(uint64_t seed);

// BackoffConfig
// Reconnect backoff of the initiator (SPEC.md §16.1); defaults from gRPC's
// connection-backoff specification.
struct BackoffConfig {
  absl::Duration initial = absl::Seconds(1);
  double multiplier = 1.6;
  double jitter = 0.2;  // in [0, 1)
  absl::Duration max = absl::Seconds(120);
};

// SessionConfig
// Everything a Session needs. Defaults are safe against a hostile peer.
struct SessionConfig {
  SessionSide side = SessionSide::kInitiator;
  AgentRole role = AgentRole::kPeer;
  std::string agent_id = "symwire";  // 1..255 bytes
  uint64_t min_version = kSessionVersionMin;
  uint64_t max_version = kSessionVersionMax;
  // The authentication method; null means NoAuthenticator(). Both sides
  // must use the same method (SPEC.md §12.3).
  std::shared_ptr<const Authenticator> authenticator;
  // REQUIRED (ValidateConfig fails without one).
  RandomSource random;
  // Acceptor only. When set, the last byte of each session id this session
  // creates is this value instead of a random byte (the other 15 bytes stay
  // random). A sharded Endpoint (EndpointConfig::shards) sets it to its
  // shard index, so a resume names the shard that owns the session; ids
  // stay opaque to the peer (SPEC.md §16.2).
  std::optional<uint8_t> session_id_tag;
  uint64_t capabilities = kCapPayloadChecksums | kCapTraceContext |
                          kCapMetadata | kCapDrain | kCapMethods;
  // Checksum task and response payloads (SPEC.md §10.1). Control payloads
  // are always checksummed.
  bool payload_checksums = true;

  // Limits this side enforces and announces (SPEC.md §11.1, §15).
  uint32_t max_tasks = 1024;  // tasks from the peer run at once
  uint64_t max_payload_bytes = kDefaultMaxPayloadSize;
  uint32_t max_header_bytes = kDefaultMaxHeaderSize;
  uint32_t max_extensions = kDefaultMaxExtensions;
  uint64_t replay_bytes = uint64_t{8} << 20;  // send window, bytes
  uint64_t replay_frames = 65536;             // send window, frames

  // Timers (SPEC.md §12.1, §14, §16).
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration ping_interval = absl::Seconds(10);
  absl::Duration min_peer_ping_interval = absl::Seconds(1);
  absl::Duration dead_peer_timeout = absl::Seconds(30);
  // Once established, how long one frame may take to arrive once its first
  // byte has (SPEC.md §14.1); then the connection ends with
  // PEER_UNRESPONSIVE, however many bytes trickle in. A frame of
  // max_payload_bytes must fit: 16 MiB in 30 s needs about 4.5 Mbit/s. (The
  // handshake_timeout bounds frames before the handshake.) REQUIRES: > 0.
  absl::Duration frame_timeout = absl::Seconds(30);
  absl::Duration ack_delay = absl::Milliseconds(5);
  absl::Duration resume_window = absl::Seconds(60);
  uint32_t max_ping_strikes = 2;
  // Most consecutive frames carrying nothing new (SPEC.md §14.1: a SYNC
  // whose ack does not advance and that has no ping, no pong answering an
  // unanswered ping of ours, no first drain and no bye; a duplicate
  // sequenced frame) accepted on one connection; one more ends the session
  // with PING_FLOOD. A conforming peer sends at most one in a row (its
  // first SYNC on a resumed connection may repeat an ack and a drain).
  // REQUIRES: >= 1.
  uint32_t max_noop_frames = 100;
  BackoffConfig backoff;
};

// ValidateConfig
// Checks every field against its range. Errors: kInvalidArgument without a
// symwire ErrorCode (a bad configuration is the caller's error, not a
// protocol condition), with a message naming the field and its value.
SYMWIRE_DECL absl::Status ValidateConfig(const SessionConfig& config);

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/session/impl/config.ipp"
#endif

#endif  // SYMWIRE_SESSION_CONFIG_HPP_
