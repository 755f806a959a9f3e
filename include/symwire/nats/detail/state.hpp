// File: symwire/nats/detail/state.hpp
// symwire::nats internals: what a NatsClient shares between its copies.
#ifndef SYMWIRE_NATS_DETAIL_STATE_HPP_
#define SYMWIRE_NATS_DETAIL_STATE_HPP_

#include "symwire/nats/client.hpp"
#include "symwire/nats/detail/cnats.hpp"

namespace symwire::nats_detail {

// ClientState
// The connection and its JetStream context; `js` is declared after
// `connection` so that it is destroyed first.
struct ClientState {
  NatsConnectOptions options;
  ConnectionPtr connection;
  JsPtr js;
};

}  // namespace symwire::nats_detail

#endif  // SYMWIRE_NATS_DETAIL_STATE_HPP_
