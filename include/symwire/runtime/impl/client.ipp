// File: symwire/runtime/impl/client.ipp
// Out-of-line bodies of runtime/client.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_CLIENT_IPP_
#define SYMWIRE_RUNTIME_IMPL_CLIENT_IPP_

#include <memory>
#include <utility>

#include "boost/asio/dispatch.hpp"
#include "symwire/runtime/client.hpp"

namespace symwire {

// ---- Client ----------------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Peer>> Client::Connect(
    const asio::any_io_executor& executor, Dialer dialer,
    ClientOptions options) {
  const bool reconnect = options.reconnect;
  const bool retry_first = options.retry_first_connect;
  const uint32_t first_attempts = options.first_connect_attempts;
  const absl::Duration first_timeout = options.first_connect_timeout;
  absl::StatusOr<std::shared_ptr<Peer>> peer =
      Peer::Make(executor, std::move(options), SessionSide::kInitiator);
  if (!peer.ok()) return peer.status();
  (*peer)->dialer_ = std::move(dialer);
  (*peer)->reconnect_ = reconnect;
  (*peer)->retry_first_ = retry_first && first_attempts > 1;
  (*peer)->first_max_attempts_ = first_attempts;
  (*peer)->first_deadline_ = SteadyNow() + first_timeout;
  asio::dispatch(executor, [p = *peer] { p->Dial(); });
  return peer;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Peer>> Client::Start(
    const std::shared_ptr<Transport>& transport, PeerOptions options) {
  absl::StatusOr<std::shared_ptr<Peer>> peer = Peer::Make(
      transport->executor(), std::move(options), SessionSide::kInitiator);
  if (!peer.ok()) return peer.status();
  (*peer)->reconnect_ = false;
  asio::dispatch(transport->executor(), [p = *peer, transport] {
    p->Attach(transport, true);
    static_cast<void>(p->session_->TransportConnected(SteadyNow()));
    p->AfterInput();
  });
  return peer;
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_CLIENT_IPP_
