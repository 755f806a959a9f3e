// File: symwire/runtime/client.hpp
// Layer 3b (runtime). Client: the initiator side (dials, reconnects and
// resumes), and ClientOptions.
#ifndef SYMWIRE_RUNTIME_CLIENT_HPP_
#define SYMWIRE_RUNTIME_CLIENT_HPP_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "symwire/config.hpp"
#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

// ClientOptions
struct ClientOptions : ChannelOptions {
  // Redial and resume after a connection is lost (SessionConfig::backoff
  // paces the dials). False: a lost connection fails the session (for
  // transports that cannot be redialled, such as a child's pipes).
  bool reconnect = true;
  // First-connection retries (Client::Connect only; issue #11). When the
  // first connection cannot be made or its handshake fails on a transient
  // error (a dial failure, a lost or reset connection, which is also how a
  // server over its connection limits refuses, a framing or CRC error, a
  // handshake timeout, a SESSION_ERROR with a retryable code such as
  // UNAVAILABLE), the client waits SessionConfig::backoff and dials again
  // with a fresh handshake (ChannelEvent kReconnecting, `attempt` = failures
  // so far), up to `first_connect_attempts` connections in all and no new
  // attempt later than `first_connect_timeout` after Connect. A definitive
  // refusal is not retried: UNAUTHENTICATED, VERSION_MISMATCH,
  // UNSUPPORTED_VERSION, INCOMPATIBLE_ROLES, PERMISSION_DENIED, a bad
  // configuration; nor is a session the server refuses once its handshake
  // completed (RESOURCE_EXHAUSTED for a full registry: the session was
  // established). async_wait_established then completes with the last
  // error. 1 (or retry_first_connect = false) turns retries off: the first
  // failure ends the session, as before.
  bool retry_first_connect = true;
  uint32_t first_connect_attempts = 8;
  absl::Duration first_connect_timeout = absl::Seconds(60);
  // unreachable_timeout: how long an established session may stay without
  // a connection (the server is gone, crashed, or unreachable) before the
  // client gives up on it: the session is aborted with kUnavailable
  // (detail CONNECTION_LOST) "server unreachable for N ms: <the last
  // connection or dial error>", and every task still open, every queued
  // call and async_close complete with that status (a task the peer may
  // have run says so, SPEC.md §16.3). Counted from the loss of the
  // connection to the next completed resume. Keep it below the resume
  // window (SessionConfig::resume_window, 60 s by default), where the
  // session would end anyway; InfiniteDuration(): only the resume window.
  absl::Duration unreachable_timeout = absl::Seconds(20);
};

// Client
// The initiator side: Connect creates the session and dials.
class Client {
 public:
  // Connect
  // Creates a Channel that dials with `dialer` now and again after every
  // loss. Wait for the handshake with Channel::async_wait_established: the
  // first connection is retried on transient failures
  // (ClientOptions::retry_first_connect); later losses are repaired by
  // resuming. Errors: kInvalidArgument for a bad config.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Channel>> Connect(
      const asio::any_io_executor& executor, Dialer dialer,
      ClientOptions options);

  // Over an already-connected transport (no reconnect, no retry of the
  // first connection): a child process's pipes, a memory pipe.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Channel>> Start(
      const std::shared_ptr<Transport>& transport, ChannelOptions options);
};

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/runtime/impl/client.ipp"
#endif

#endif  // SYMWIRE_RUNTIME_CLIENT_HPP_
