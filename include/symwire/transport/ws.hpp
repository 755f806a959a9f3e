// File: symwire/transport/ws.hpp
// Layer 3. WebSocket (RFC 6455) as a symwire transport, plain `ws://`
// (this header, part of the symwire::transport target); `wss://` (TLS) is
// in wss.hpp (the symwire::tls target, which links libssl). Boost.Beast
// performs the HTTP upgrade; the frames after it are read and written
// here (impl/ws_transport.hpp, parsed by the sans-I/O WsFrameParser of
// detail/ws_frame.hpp), batched like TCP reads and writes, and mapped
// onto a Transport (transport.hpp) as SPEC.md §20.1 says:
//   - the HTTP upgrade carries the subprotocol `symwire.v1`
//     (Sec-WebSocket-Protocol), which both sides require;
//   - symwire bytes travel in binary messages; the receiver treats the
//     payloads of successive messages as one byte stream, so a symwire
//     frame may span messages and a message may carry several frames;
//   - a text message closes the connection with 1003, a message over the
//     size limit with 1009, a ping flood with 1008, a protocol error with
//     1002; a graceful close sends 1000, an abrupt one 1001, and a peer's
//     close frame is answered and reported with its code;
//   - permessage-deflate is never offered nor accepted.
// The symwire handshake, authentication and resumption then run inside,
// as on any stream: a Client reconnects and resumes through WsDialer like
// through TcpDialer, and a Server serves upgrades through
// Server::ListenTcp(address, port, WsUpgrade(...)), so WebSocket sessions
// share its registry, limits and drain with every other transport.
//
// Thread-safety: as for Transport. Every function here runs on, and
// completes on, the given executor (for WsUpgrade: the socket's).
#ifndef SYMWIRE_TRANSPORT_WS_HPP_
#define SYMWIRE_TRANSPORT_WS_HPP_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "symwire/config.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

// kWsSubprotocol
// The WebSocket subprotocol both sides name in the upgrade (SPEC.md §20.1).
inline constexpr char kWsSubprotocol[] = "symwire.v1";

// WsOptions
// What both sides of an established WebSocket connection apply.
struct WsOptions {
  // The largest message accepted; a bigger one closes the connection with
  // 1009 (message too big). SPEC.md §20.1: every receiver accepts at
  // least 1 MiB. Enforced while the message arrives: nothing is buffered
  // per message (payload goes to the session as it is read).
  size_t max_read_message_bytes = size_t{1} << 20;
  // The largest message this side sends: a write batch larger than this
  // goes out as several messages (the receiver joins them, SPEC.md
  // §20.1). At most 1 MiB so that any conforming receiver takes it.
  size_t max_write_message_bytes = size_t{64} << 10;
  // Ping flood limit: pings are answered with pongs while the peer stays
  // within a budget of `ping_burst` pings refilled at `pings_per_second`;
  // the ping over it closes the connection with 1008 (policy violation).
  uint32_t ping_burst = 32;
  uint32_t pings_per_second = 4;
  // How long a closing handshake (our close frame, the peer's reply) may
  // take before the socket is closed anyway.
  std::chrono::milliseconds close_timeout{1000};
};

// WsUrl / ParseWsUrl
// The parts of `ws://host[:port][/path]` or `wss://…`: host (IPv6
// literals in brackets, returned without them), port (default 80 for ws,
// 443 for wss), path with its query (default "/"). Errors
// (kInvalidArgument, naming the URL and the offending part): another
// scheme, an empty host, a bad port, userinfo or a fragment.
struct WsUrl {
  std::string host;
  std::string target = "/";
  uint16_t port = 0;
  bool secure = false;
};
SYMWIRE_DECL absl::StatusOr<WsUrl> ParseWsUrl(std::string_view url);

// WsClientOptions
struct WsClientOptions {
  // Extra HTTP header fields for the upgrade request, e.g.
  // {"Authorization", "Bearer …"} for a gateway. The fields the
  // WebSocket handshake itself sets (Host, Upgrade, Connection,
  // Sec-WebSocket-*) cannot be overridden.
  std::vector<std::pair<std::string, std::string>> headers;
  // The Host header; empty: "host:port" from the URL.
  std::string host_header;
  TcpOptions tcp;
  TransportOptions transport;
  WsOptions ws;
  // Connect, (TLS) and upgrade together, within this.
  std::chrono::milliseconds timeout{10000};
};

// WsServerOptions
struct WsServerOptions {
  // The request target upgrades are accepted on (the query, if any, is
  // ignored). Another path gets 404.
  std::string path = "/";
  // Bound on the upgrade request's start line and header fields; more
  // gets 431 (Request Header Fields Too Large).
  size_t max_header_bytes = 8192;
  // The whole upgrade (for wss the TLS handshake too) must finish within
  // this, or the connection is closed without a response (slowloris).
  std::chrono::milliseconds upgrade_timeout{10000};
  // Upgrades in progress at once (per WsUpgrade/WssUpgrade object, over
  // all of a sharded Server's threads); a connection over it is closed at
  // once.
  size_t max_pending_upgrades = 1024;
  TransportOptions transport;
  WsOptions ws;
};

// WsUpgradeCounters
// What a WsUpgrade/WssUpgrade refused, by reason (tests, observability).
// Each field is atomic: with ServerOptions::threads > 1 the upgrades run
// on every shard's thread, so read the fields from any thread (each is
// exact on its own; several read together need not be one moment's).
struct WsUpgradeCounters {
  std::atomic<uint64_t> upgraded{0};
  std::atomic<uint64_t> not_found{0};          // 404: another path
  std::atomic<uint64_t> not_websocket{0};      // 426: a plain HTTP request
  std::atomic<uint64_t> bad_subprotocol{0};    // 400: no symwire.v1 offered
  std::atomic<uint64_t> headers_too_large{0};  // 431
  std::atomic<uint64_t> bad_request{0};  // 400: malformed, a body, early data
  std::atomic<uint64_t> timed_out{0};    // closed after upgrade_timeout
  std::atomic<uint64_t> over_limit{0};   // max_pending_upgrades
  std::atomic<uint64_t> failed{0};       // TLS or socket failures, the rest
};

// ConnectWs
// Resolves and connects to `url` (ws:// only; wss:// is ConnectWss in
// wss.hpp), performs the upgrade and completes `handler` exactly once on
// `executor` with a Transport ("ws 127.0.0.1:8080/agents").
// Errors:
//   kInvalidArgument: a bad URL or a wss:// URL.
//   CONNECTION_LOST (kUnavailable): the errors of ConnectTcp (tcp.hpp);
//     an upgrade the server refused with any status but 401/403 ("ws
//     upgrade to 127.0.0.1:8080/x refused: HTTP 404 Not Found: <body>");
//     a response without Sec-WebSocket-Protocol: symwire.v1.
//   UNAUTHENTICATED (kUnauthenticated): refused with 401 or 403.
//   HANDSHAKE_TIMEOUT (kDeadlineExceeded): the upgrade did not finish
//     within what is left of `options.timeout` after the connect.
SYMWIRE_DECL void ConnectWs(const asio::any_io_executor& executor,
                            const std::string& url,
                            const WsClientOptions& options,
                            DialHandler handler);

// WsDialer
// A Dialer (tcp.hpp) for Client that calls ConnectWs with fixed arguments.
SYMWIRE_DECL Dialer WsDialer(asio::any_io_executor executor, std::string url,
                             WsClientOptions options = {});

// WsUpgrade
// What Server::ListenTcp's `upgrade` takes: reads the HTTP request on each
// accepted socket within options.upgrade_timeout and answers it:
//   another path: 404; not a WebSocket upgrade: 426 (Upgrade: websocket);
//   no `symwire.v1` in Sec-WebSocket-Protocol: 400; header fields over
//   options.max_header_bytes: 431; a malformed request, one with a body,
//   or bytes after it before our response: 400 (each with a text/plain
//   body saying why, then the connection is closed); a bad WebSocket
//   handshake (version, key): Beast's 400/426.
// A valid upgrade gets 101 with Sec-WebSocket-Protocol: symwire.v1 and
// completes with a Transport ("ws 127.0.0.1:50512"). `counters`, when not
// null, counts the outcomes (it must outlive the returned function).
SYMWIRE_DECL std::function<void(asio::ip::tcp::socket, DialHandler)> WsUpgrade(
    WsServerOptions options, WsUpgradeCounters* counters = nullptr);

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/ws.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_WS_HPP_
