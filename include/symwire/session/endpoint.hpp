// File: symwire/session/endpoint.hpp
// Layer 2 (session). Endpoint: the acceptor side's set of sessions, sans
// I/O (quinn-proto's Endpoint is the model). One connection's session is a
// Session; the sessions a listener serves are an Endpoint.
//
// The Endpoint creates the fresh acceptor Session of each new connection
// (Accept, which hands out a ConnectionHandle), owns it while its handshake
// runs, keeps the registry of established sessions by session id, and
// decides what a connection became once its handshake ends (SPEC.md §12,
// §16.2): a new session, registered; a resume, moved to the session it
// names (which supersedes an older, half-open connection of that session);
// or a rejection with the §18 error the peer was sent. It returns that
// decision as a ConnectionOutcome, so a driver never infers it from states
// and no Session ever changes another through the public API.
//
// A driver's loop for one accepted connection (`c`, with session `s` from
// Accept): feed bytes through Endpoint::Receive(c, ...) (not s.Receive)
// while the outcome is HandshakeRunning, and drive `s` otherwise as
// session.hpp says (PollTransmit, PollEvent, NextDeadline, HandleTimeout).
// After an input given to `s` directly while handshaking (HandleTimeout,
// TransportLost), call Route(c, now). Then:
//   SessionStarted{session}   the connection belongs to `session` (== s);
//                             keep driving it.
//   SessionResumed{session}   the connection now belongs to `session` (the
//                             resumed one, != s): drive `session` with this
//                             connection's bytes from now on and drop `s`
//                             (closed; it has nothing more to send). If
//                             `superseded`, `session` dropped its older
//                             connection (it reported ConnectionLost):
//                             close that transport.
//   ConnectionRejected{status} `s` failed: write what s.PollTransmit()
//                             still returns (the AGENT_ERROR), then close.
// Either of the last three retires the handle. A connection that ends
// while HandshakeRunning is given back with Release(c).
//
// Supersede and races (SPEC.md §16.2). A resume whose connection was
// accepted after the session's current connection became the session's
// replaces that connection (the client dialled again: the old one is
// half-open). A resume whose connection was accepted before that (two
// connections raced to resume one session, and the other one won) is
// rejected with CONNECTION_LOST once its proof has been checked: exactly one
// of racing connections wins, and the loser's initiator redials (§16.1).
//
// Bounds. At most max_handshakes connections handshake at once (Accept
// refuses more), each may send at most max_handshake_bytes before its
// handshake ends (then it is rejected), and at most max_sessions sessions
// are registered (a new session beyond is rejected, after ended sessions
// were dropped). Memory is thus bounded whatever connections send. Eviction
// policies that need more than a Session's state (per-source limits, idle
// sessions with a driver's unread responses) are the driver's: it can
// Remove() sessions itself.
//
// Thread-compatible: one thread at a time.
#ifndef SYMWIRE_SESSION_ENDPOINT_HPP_
#define SYMWIRE_SESSION_ENDPOINT_HPP_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/session.hpp"

namespace symwire {

// ConnectionHandle
// Names one accepted connection while its handshake runs. Handed out by
// Endpoint::Accept, increasing from 1, never reused; 0 is never a handle.
using ConnectionHandle = uint64_t;

// EndpointConfig
struct EndpointConfig {
  // The config of every connection's fresh session. REQUIRES: side ==
  // SessionSide::kAcceptor, and ValidateConfig passes. Its RandomSource is
  // shared by all sessions: it must not repeat itself when copied
  // (SeededRandom and the transport's source do not).
  SessionConfig session;
  // Connections whose handshake runs at once; Accept refuses more.
  size_t max_handshakes = 1024;
  // Bytes a connection may send before its handshake ends (the preface and
  // a few control frames, each at most 8 KiB, SPEC.md §15.2).
  size_t max_handshake_bytes = size_t{32} << 10;
  // Established sessions registered (connected or awaiting resume).
  size_t max_sessions = 10000;
  // Sharding (a Server on several threads, runtime/server.hpp): this
  // Endpoint is shard `shard` of `shards` Endpoints that share a listener,
  // each on its own thread. Every session id it creates ends in the byte
  // `shard` (SessionConfig::session_id_tag), and a resume naming an id that
  // ends in another shard's index is not looked up here: Route returns
  // ResumeElsewhere, and the owning shard's Endpoint takes the connection
  // over with Adopt. 1: not sharded (ids are fully random). REQUIRES:
  // 1 <= shards <= 256, shard < shards.
  uint32_t shards = 1;
  uint32_t shard = 0;
};

// ValidateEndpointConfig
// Errors: kInvalidArgument (no symwire code) naming the field: the session
// config fails ValidateConfig, its side is not the acceptor, or a limit is
// 0.
SYMWIRE_DECL absl::Status ValidateEndpointConfig(const EndpointConfig& config);

// Accepted: what Endpoint::Accept returns.
struct Accepted {
  ConnectionHandle connection = 0;
  // The connection's fresh session, TransportConnected already (its preface
  // is in PollTransmit).
  std::shared_ptr<Session> session;
};

// ConnectionOutcome alternatives (see the file comment).
// HandshakeRunning: nothing decided yet; the handle stays valid.
struct HandshakeRunning {};
// SessionStarted: the handshake created a new session, now registered
// under session->session_id(); it reported Established.
struct SessionStarted {
  std::shared_ptr<Session> session;
};
// SessionResumed: the connection moved to the registered `session` (which
// reported Established{resumed}); the fresh session is closed.
struct SessionResumed {
  std::shared_ptr<Session> session;
  // `session` had a connection (half-open), which it dropped.
  bool superseded = false;
};
// ConnectionRejected: the handshake failed or was refused; the fresh
// session failed with `status` and holds the AGENT_ERROR to write.
// Codes: those of Session::Receive and HandleTimeout during a handshake;
// for a resume SESSION_EXPIRED (unknown id, ended session, wrong proof:
// one answer for all), RESUME_REJECTED, BAD_ACK, RESUME_GAP,
// CONNECTION_LOST (lost a race, above); RESOURCE_EXHAUSTED (no symwire
// code) past max_handshake_bytes or max_sessions.
struct ConnectionRejected {
  absl::Status status;
};
// ResumeElsewhere: (sharded Endpoints only) the connection resumes a
// session of shard `shard` (!= this one). The handle stays valid: hand the
// connection over with HandOff, and Adopt it at that shard's Endpoint.
struct ResumeElsewhere {
  uint32_t shard = 0;
};
using ConnectionOutcome =
    std::variant<HandshakeRunning, SessionStarted, SessionResumed,
                 ConnectionRejected, ResumeElsewhere>;

// EndpointCounters: monotonic, for metrics.
struct EndpointCounters {
  uint64_t accepted = 0;
  uint64_t accepts_refused = 0;  // over max_handshakes
  uint64_t sessions_started = 0;
  uint64_t sessions_refused = 0;  // over max_sessions
  uint64_t resumes = 0;
  uint64_t resumes_rejected = 0;  // every rejected resume
  uint64_t resumes_lost_race = 0;
  uint64_t superseded = 0;
  uint64_t handshakes_failed = 0;  // non-resume handshakes that failed
};

// Endpoint
class Endpoint {
 public:
  // Create
  // Errors: kInvalidArgument if ValidateEndpointConfig fails.
  SYMWIRE_DECL static absl::StatusOr<std::unique_ptr<Endpoint>> Create(
      EndpointConfig config);

  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  SYMWIRE_DECL ~Endpoint();

  // Accept
  // A connection was accepted: creates its fresh session and calls
  // TransportConnected. Errors: kResourceExhausted (no symwire code) when
  // max_handshakes connections are handshaking; close the connection.
  SYMWIRE_DECL absl::StatusOr<Accepted> Accept(absl::Time now);

  // Receive
  // Feeds bytes read from handshaking connection `c` to its fresh session
  // (Session::Receive, same span lifetime rules), then Route(c, now).
  // REQUIRES: `c` is handshaking (Accept returned it and no outcome but
  // HandshakeRunning was returned for it, nor Release called).
  SYMWIRE_DECL ConnectionOutcome Receive(ConnectionHandle c,
                                         absl::Span<const std::byte> bytes,
                                         absl::Time now);

  // Route
  // Decides what handshaking connection `c` became, after any input to its
  // session (see the file comment); HandshakeRunning while undecided.
  // REQUIRES: as Receive.
  SYMWIRE_DECL ConnectionOutcome Route(ConnectionHandle c, absl::Time now);

  // HandOff
  // Gives up handshaking connection `c`, for which Route returned
  // ResumeElsewhere: returns its fresh session (untouched; the caller moves
  // it, with the connection's transport, to the owning shard) and forgets
  // the handle. REQUIRES: as Receive.
  SYMWIRE_DECL std::shared_ptr<Session> HandOff(ConnectionHandle c);

  // Adopt
  // Takes over a connection another shard's Endpoint handed off (HandOff)
  // because it resumes a session of this one, and routes it (as Route
  // does: SessionResumed or ConnectionRejected, never HandshakeRunning).
  // For the race rule (file comment) the connection counts as accepted
  // when Adopt is called. Does not count against max_handshakes.
  // REQUIRES: `fresh` came from HandOff of an Endpoint with the same
  // session config.
  SYMWIRE_DECL ConnectionOutcome Adopt(std::shared_ptr<Session> fresh,
                                       absl::Time now);

  // Release
  // Handshaking connection `c` ended (transport lost, handshake timeout):
  // the Endpoint forgets it. No-op for a retired or unknown handle.
  SYMWIRE_DECL void Release(ConnectionHandle c);

  // Find: the registered session with this id, or null.
  SYMWIRE_DECL std::shared_ptr<Session> Find(const SessionId& id) const;
  // Remove: unregisters a session (a driver's eviction, or it ended); a
  // later resume of it is rejected (SESSION_EXPIRED). False if unknown.
  SYMWIRE_DECL bool Remove(const SessionId& id);

  // The fresh session of handshaking connection `c`, or null.
  SYMWIRE_DECL Session* handshake(ConnectionHandle c) const;
  size_t handshakes() const { return handshakes_.size(); }
  size_t sessions() const { return sessions_.size(); }
  const EndpointConfig& config() const { return config_; }
  const EndpointCounters& counters() const { return counters_; }

 private:
  struct Handshake {
    std::shared_ptr<Session> session;
    uint64_t accepted_tick = 0;  // tick_ when accepted
    uint64_t bytes = 0;          // bytes received so far
  };
  struct Registered {
    std::shared_ptr<Session> session;
    // tick_ when its current connection became the session's.
    uint64_t attached_tick = 0;
  };
  struct IdHash {
    size_t operator()(const SessionId& id) const {
      return absl::HashOf(absl::string_view(
          reinterpret_cast<const char*>(id.data()), id.size()));
    }
  };

  explicit Endpoint(EndpointConfig config);
  ConnectionOutcome Resume(ConnectionHandle c, Handshake& h,
                           const SessionId& id, absl::Time now);
  ConnectionOutcome Start(ConnectionHandle c, Handshake& h, absl::Time now);
  ConnectionOutcome Reject(ConnectionHandle c, absl::Status status);
  void DropEnded();

  EndpointConfig config_;
  absl::flat_hash_map<ConnectionHandle, Handshake> handshakes_;
  absl::flat_hash_map<SessionId, Registered, IdHash> sessions_;
  // Orders accepts and attachments (supersede versus race, above).
  uint64_t tick_ = 0;
  ConnectionHandle next_handle_ = 1;
  EndpointCounters counters_;
};

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/session/impl/endpoint.ipp"
#endif

#endif  // SYMWIRE_SESSION_ENDPOINT_HPP_
