// File: symwire/runtime/detail/client_part.hpp
// Layer 3b (runtime), internal. ClientPart: what a Channel created by Client
// owns besides the driver: the dialer, redialling after a loss, and the
// retries of a first connection (ClientOptions).
#ifndef SYMWIRE_RUNTIME_DETAIL_CLIENT_PART_HPP_
#define SYMWIRE_RUNTIME_DETAIL_CLIENT_PART_HPP_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "boost/asio/steady_timer.hpp"
#include "symwire/transport/tcp.hpp"

namespace symwire {

class Channel;

namespace detail {

struct ClientPart {
  // Dial: connects with `dialer` and hands the transport to the session
  // (a fresh handshake, or a resume after a loss).
  void Dial(Channel& channel);
  // MaybeRetryFirst: after a first-connection failure, false if it ends
  // the session, true if a fresh attempt was scheduled
  // (ClientOptions::retry_first_connect).
  bool MaybeRetryFirst(Channel& channel, const absl::Status& status);
  // EndPendingRetry: between two first-connection attempts, ends the
  // session with the last attempt's error instead of dialling again.
  void EndPendingRetry(Channel& channel);
  // NoteFailure: the connection was lost or a redial failed, at `now`
  // (what kReconnectAttempt and the unreachable bound report).
  void NoteFailure(const absl::Status& status, absl::Time now);
  // Outage bookkeeping (ClientOptions::unreachable_timeout): OutageBegins
  // arms the bound at the first loss of an outage (not again for a failed
  // redial or resume handshake); OutageEnds disarms it (a resume completed).
  void OutageBegins(Channel& channel);
  void OutageEnds();

  Dialer dialer;               // empty for Client::Start: nothing to redial
  absl::Status first_failure;  // why the last first attempt failed
  absl::Status last_failure;   // NoteFailure: the last loss or dial error
  absl::Time last_failure_at = absl::InfinitePast();
  absl::Duration unreachable_timeout = absl::InfiniteDuration();
  std::unique_ptr<asio::steady_timer> unreachable_timer;  // OutageBegins
  absl::Time first_deadline = absl::InfiniteFuture();
  std::unique_ptr<asio::steady_timer> retry_timer;
  uint32_t first_attempts = 0;
  uint32_t first_max_attempts = 1;
  bool reconnect = true;  // redial and resume after a loss
  bool dialing = false;
  bool retry_first = false;
  bool retry_pending = false;  // a fresh first attempt is scheduled
  bool outage = false;         // between OutageBegins and OutageEnds
  // A redial or resume of this outage failed (gRPC's TRANSIENT_FAILURE):
  // CallOptions::wait_for_ready = false calls fail fast. OutageEnds clears.
  bool transient_failure = false;
};

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_CLIENT_PART_HPP_
