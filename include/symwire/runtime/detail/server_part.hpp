// File: symwire/runtime/detail/server_part.hpp
// Layer 3b (runtime), internal. ServerPart: what a Channel accepted by a
// Server owns besides the driver: its entry in the server's books (the
// connection's source, the bytes received before establishment, its
// handshake at the server's Endpoint, when it was last disconnected,
// whether it is in the registry).
#ifndef SYMWIRE_RUNTIME_DETAIL_SERVER_PART_HPP_
#define SYMWIRE_RUNTIME_DETAIL_SERVER_PART_HPP_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "symwire/runtime/detail/method_table.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

class Server;

namespace detail {

struct ServerPart {
  // Attached: a transport now carries the session. Counts the connection
  // and, before establishment, keeps its read buffer small (ServerOptions,
  // "Memory before authentication"); a resumed connection is lifted.
  void Attached(Transport& transport, bool established_once);
  // Detached: the session lost its transport at `now` (eviction order).
  void Detached(absl::Time now);
  // CountHandshakeBytes: `n` more bytes arrived before establishment.
  // Errors: RESOURCE_EXHAUSTED past ServerOptions::max_handshake_bytes.
  absl::Status CountHandshakeBytes(size_t n);

  std::weak_ptr<Server> server;  // the server that owns this session
  // The server's handlers by method and its health (Server::Handle).
  std::shared_ptr<MethodTable> methods;
  std::string source;  // ServerOptions, "Sources"
  size_t handshake_bytes = 0;
  size_t handshake_byte_limit = SIZE_MAX;
  absl::Time disconnected_at = absl::InfiniteFuture();
  // The Endpoint's handle of this connection while its handshake runs (0:
  // none): its bytes go through Server::OnHandshakeData.
  ConnectionHandle handshake = 0;
  bool registered = false;  // in the server's registry
};

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_SERVER_PART_HPP_
