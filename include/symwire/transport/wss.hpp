// File: symwire/transport/wss.hpp
// Layer 3. WebSocket over TLS (`wss://`): the TLS handshake of tls.hpp
// under the WebSocket mapping of ws.hpp (SPEC.md §20.1). Part of the
// symwire::tls target, the only one that links libssl; the plain ws://
// transport is in symwire::transport.
//
// Security defaults are those of tls.hpp: the client verifies the server's
// certificate chain and name unless its context was built with
// TlsClientOptions::verify_peer = false; mutual TLS is the server
// context's choice.
//
// Thread-safety: as for ws.hpp.
#ifndef SYMWIRE_TRANSPORT_WSS_HPP_
#define SYMWIRE_TRANSPORT_WSS_HPP_

#include <functional>
#include <memory>
#include <string>

#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl/context.hpp"
#include "symwire/config.hpp"
#include "symwire/transport/tls.hpp"
#include "symwire/transport/ws.hpp"

namespace symwire {

// ConnectWss
// As ConnectWs (ws.hpp) for a `wss://` URL (ws:// is refused with
// kInvalidArgument): connects over TCP, runs the TLS client handshake
// with `context` checking `server_name` (empty: the URL's host, a DNS
// name or an IP literal), then the WebSocket upgrade, all within
// options.timeout. Completes with a Transport
// ("wss localhost:8443/agents"). Errors: those of ConnectWs, and those of
// AsyncTlsClientHandshake (tls.hpp) for the TLS step (UNAUTHENTICATED for
// a certificate that fails verification).
// REQUIRES: `context` is not null and was made for clients.
SYMWIRE_DECL void ConnectWss(const asio::any_io_executor& executor,
                             const std::string& url,
                             std::shared_ptr<asio::ssl::context> context,
                             std::string server_name,
                             const WsClientOptions& options,
                             DialHandler handler);

// WssDialer
// A Dialer for Client that calls ConnectWss with fixed arguments; every
// dial shares `context` (and OpenSSL's session cache).
// REQUIRES: `context` is not null.
SYMWIRE_DECL Dialer WssDialer(asio::any_io_executor executor, std::string url,
                              std::shared_ptr<asio::ssl::context> context,
                              WsClientOptions options = {},
                              std::string server_name = {});

// WssUpgrade
// As WsUpgrade (ws.hpp), behind the TLS server handshake with `context`:
// the TLS handshake and the HTTP upgrade together must finish within
// options.upgrade_timeout. Transports are described "wss <peer>".
// REQUIRES: `context` is not null and was made for servers.
SYMWIRE_DECL std::function<void(asio::ip::tcp::socket, DialHandler)> WssUpgrade(
    std::shared_ptr<asio::ssl::context> context, WsServerOptions options,
    WsUpgradeCounters* counters = nullptr);

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/wss.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_WSS_HPP_
