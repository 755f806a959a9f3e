// File: symwire/transport/tcp.hpp
// Layer 3. TCP (IPv4 and IPv6) and Unix-domain stream sockets: socket
// options, connecting with a timeout, and Dialers (the factories a Client
// uses to make each new connection). Listening is Server's job
// (runtime.hpp: Server::ListenTcp / ListenUnix).
//
// Thread-safety: every function here runs on, and completes on, the given
// executor; the returned Transport belongs to that executor.
#ifndef SYMWIRE_TRANSPORT_TCP_HPP_
#define SYMWIRE_TRANSPORT_TCP_HPP_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "symwire/config.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

// TcpOptions
// Applied to every TCP socket symwire connects or accepts.
struct TcpOptions {
  // Frames are written in coalesced batches already (transport.hpp), so
  // Nagle's algorithm only adds latency.
  bool no_delay = true;
  // Kernel keepalive as a backstop under the session's own heartbeats
  // (SPEC.md §14), for half-open connections while the session is idle.
  bool keep_alive = true;
  std::chrono::seconds keep_alive_idle{30};
  std::chrono::seconds keep_alive_interval{10};
  int keep_alive_count = 3;
  // Kernel socket buffers; 0 keeps the system default.
  int send_buffer_bytes = 0;
  int receive_buffer_bytes = 0;
};

// ApplyTcpOptions
// Sets `options` on a connected or accepted socket. Errors: the failing
// option and the system error (kUnavailable / CONNECTION_LOST).
SYMWIRE_DECL absl::Status ApplyTcpOptions(asio::ip::tcp::socket& socket,
                                          const TcpOptions& options);

// ApplyUnixOptions
// Sets TransportOptions::unix_send_buffer_bytes on a connected or accepted
// Unix-domain socket. Errors: the system error (kUnavailable /
// CONNECTION_LOST).
SYMWIRE_DECL absl::Status ApplyUnixOptions(
    asio::local::stream_protocol::socket& socket,
    const TransportOptions& options);

// DialResult / DialHandler / Dialer
// A Dialer makes one new connection each time it is called and completes
// its handler exactly once, on the dialer's executor, with the connected
// transport or the reason it failed. A Client calls it for the first
// connection and for every reconnect.
using DialResult = absl::StatusOr<std::shared_ptr<Transport>>;
using DialHandler = absl::AnyInvocable<void(DialResult)>;
using Dialer = std::function<void(DialHandler)>;

// ConnectTcp
// Resolves `host` (a name, an IPv4 or an IPv6 literal), connects to the
// first address that answers within `timeout` overall, and applies
// `tcp_options`. A literal is used as it is: no resolver, so no resolver
// thread (asio starts one per io_context on the first name resolved). Errors
// (CONNECTION_LOST, kUnavailable): resolution failure, refused, unreachable, or
// "connect to host:port timed out after N ms".
SYMWIRE_DECL void ConnectTcp(const asio::any_io_executor& executor,
                             const std::string& host, uint16_t port,
                             const TcpOptions& tcp_options,
                             std::chrono::milliseconds timeout,
                             const TransportOptions& transport_options,
                             DialHandler handler);

// ConnectUnix
// Connects to a Unix-domain stream socket at `path` within `timeout`.
SYMWIRE_DECL void ConnectUnix(const asio::any_io_executor& executor,
                              const std::string& path,
                              std::chrono::milliseconds timeout,
                              const TransportOptions& transport_options,
                              DialHandler handler);

// TcpDialer / UnixDialer
// Dialers that call ConnectTcp / ConnectUnix with fixed arguments.
SYMWIRE_DECL Dialer
TcpDialer(asio::any_io_executor executor, std::string host, uint16_t port,
          TcpOptions tcp_options = {},
          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000),
          TransportOptions transport_options = {});
SYMWIRE_DECL Dialer
UnixDialer(asio::any_io_executor executor, std::string path,
           std::chrono::milliseconds timeout = std::chrono::milliseconds(10000),
           TransportOptions transport_options = {});

// DescribeEndpoint: "tcp 127.0.0.1:7000", "tcp [::1]:7000".
SYMWIRE_DECL std::string DescribeEndpoint(
    const asio::ip::tcp::endpoint& endpoint);

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/tcp.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_TCP_HPP_
