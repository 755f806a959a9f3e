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

  Dialer dialer;               // empty for Client::Start: nothing to redial
  absl::Status first_failure;  // why the last first attempt failed
  absl::Time first_deadline = absl::InfiniteFuture();
  std::unique_ptr<asio::steady_timer> retry_timer;
  uint32_t first_attempts = 0;
  uint32_t first_max_attempts = 1;
  bool reconnect = true;  // redial and resume after a loss
  bool dialing = false;
  bool retry_first = false;
  bool retry_pending = false;  // a fresh first attempt is scheduled
};

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_CLIENT_PART_HPP_
