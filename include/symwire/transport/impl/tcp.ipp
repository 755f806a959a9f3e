// File: symwire/transport/impl/tcp.ipp
// Out-of-line bodies of tcp.hpp (layer 3).
#ifndef SYMWIRE_TRANSPORT_IMPL_TCP_IPP_
#define SYMWIRE_TRANSPORT_IMPL_TCP_IPP_

#include <array>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/ip/address.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/tcp.hpp"

namespace symwire {

SYMWIRE_DECL std::string DescribeEndpoint(
    const asio::ip::tcp::endpoint& endpoint) {
  const asio::ip::address a = endpoint.address();
  if (a.is_v6())
    return absl::StrCat("tcp [", a.to_string(), "]:", endpoint.port());
  return absl::StrCat("tcp ", a.to_string(), ":", endpoint.port());
}

SYMWIRE_DECL absl::Status ApplyTcpOptions(asio::ip::tcp::socket& socket,
                                          const TcpOptions& options) {
  boost::system::error_code ec;
  socket.set_option(asio::ip::tcp::no_delay(options.no_delay), ec);
  if (ec) return ToStatus(ec, "set TCP_NODELAY");
  socket.set_option(asio::socket_base::keep_alive(options.keep_alive), ec);
  if (ec) return ToStatus(ec, "set SO_KEEPALIVE");
  if (options.keep_alive) {
    using Idle =
        asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>;
    using Interval =
        asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>;
    using Count =
        asio::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPCNT>;
    socket.set_option(Idle(static_cast<int>(options.keep_alive_idle.count())),
                      ec);
    if (ec) return ToStatus(ec, "set TCP_KEEPIDLE");
    socket.set_option(
        Interval(static_cast<int>(options.keep_alive_interval.count())), ec);
    if (ec) return ToStatus(ec, "set TCP_KEEPINTVL");
    socket.set_option(Count(options.keep_alive_count), ec);
    if (ec) return ToStatus(ec, "set TCP_KEEPCNT");
  }
  if (options.send_buffer_bytes > 0) {
    socket.set_option(
        asio::socket_base::send_buffer_size(options.send_buffer_bytes), ec);
    if (ec) return ToStatus(ec, "set SO_SNDBUF");
  }
  if (options.receive_buffer_bytes > 0) {
    socket.set_option(
        asio::socket_base::receive_buffer_size(options.receive_buffer_bytes),
        ec);
    if (ec) return ToStatus(ec, "set SO_RCVBUF");
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status ApplyUnixOptions(
    asio::local::stream_protocol::socket& socket,
    const TransportOptions& options) {
  if (options.unix_send_buffer_bytes <= 0) return absl::OkStatus();
  boost::system::error_code ec;
  socket.set_option(
      asio::socket_base::send_buffer_size(options.unix_send_buffer_bytes), ec);
  if (ec) return ToStatus(ec, "set SO_SNDBUF");
  return absl::OkStatus();
}

namespace detail {

// One connect attempt: the socket, the timer that bounds it, and the
// handler, completed exactly once.
template <class Protocol>
struct ConnectOp {
  ConnectOp(const asio::any_io_executor& ex, DialHandler h)
      : socket(ex), timer(ex), handler(std::move(h)) {}
  typename Protocol::socket socket;
  asio::steady_timer timer;
  DialHandler handler;
  bool done = false;

  void Complete(DialResult result) {
    if (done) return;
    done = true;
    timer.cancel();
    handler(std::move(result));
  }
};

}  // namespace detail

namespace detail {

// ConnectTcpTo: the connect step of ConnectTcp, over resolved endpoints
// (tried in order by async_connect).
template <class Endpoints>
void ConnectTcpTo(const std::shared_ptr<ConnectOp<asio::ip::tcp>>& op,
                  const Endpoints& endpoints, const std::string& target,
                  const TcpOptions& tcp_options,
                  const TransportOptions& transport_options) {
  asio::async_connect(
      op->socket, endpoints,
      [op, target, tcp_options, transport_options](
          const boost::system::error_code& ec,
          const asio::ip::tcp::endpoint& endpoint) {
        if (op->done) return;
        if (ec) {
          op->Complete(ToStatus(ec, absl::StrCat("connect to ", target)));
          return;
        }
        absl::Status st = ApplyTcpOptions(op->socket, tcp_options);
        if (!st.ok()) {
          op->Complete(std::move(st));
          return;
        }
        op->Complete(MakeTransport(std::move(op->socket),
                                   DescribeEndpoint(endpoint),
                                   transport_options));
      });
}

}  // namespace detail

SYMWIRE_DECL void ConnectTcp(const asio::any_io_executor& executor,
                             const std::string& host, uint16_t port,
                             const TcpOptions& tcp_options,
                             std::chrono::milliseconds timeout,
                             const TransportOptions& transport_options,
                             DialHandler handler) {
  using Op = detail::ConnectOp<asio::ip::tcp>;
  auto op = std::make_shared<Op>(executor, std::move(handler));
  const std::string target = absl::StrCat(host, ":", port);
  // An address literal needs no resolver. asio resolves on a thread of its
  // own, started on first use and kept for the io_context's life; skipping
  // it keeps a single-threaded program single-threaded, which lets
  // libstdc++ count shared_ptr references without atomic instructions
  // (bench/README.md, "The resolver's thread").
  boost::system::error_code literal_ec;
  const asio::ip::address literal = asio::ip::make_address(host, literal_ec);
  std::shared_ptr<asio::ip::tcp::resolver> resolver;
  if (literal_ec)
    resolver = std::make_shared<asio::ip::tcp::resolver>(executor);
  op->timer.expires_after(timeout);
  op->timer.async_wait(
      [op, resolver, target, timeout](const boost::system::error_code& ec) {
        if (ec || op->done) return;
        if (resolver) resolver->cancel();
        boost::system::error_code ignored;
        op->socket.close(ignored);
        op->Complete(
            MakeError(ErrorCode::kConnectionLost,
                      absl::StrCat("connect to ", target, " timed out after ",
                                   timeout.count(), " ms")));
      });
  if (!resolver) {
    const std::array<asio::ip::tcp::endpoint, 1> endpoints{
        asio::ip::tcp::endpoint(literal, port)};
    detail::ConnectTcpTo(op, endpoints, target, tcp_options, transport_options);
    return;
  }
  resolver->async_resolve(
      host, std::to_string(port),
      [op, resolver, target, tcp_options, transport_options](
          const boost::system::error_code& ec,
          const asio::ip::tcp::resolver::results_type& results) {
        if (op->done) return;
        if (ec) {
          op->Complete(ToStatus(ec, absl::StrCat("resolve ", target)));
          return;
        }
        detail::ConnectTcpTo(op, results, target, tcp_options,
                             transport_options);
      });
}

SYMWIRE_DECL void ConnectUnix(const asio::any_io_executor& executor,
                              const std::string& path,
                              std::chrono::milliseconds timeout,
                              const TransportOptions& transport_options,
                              DialHandler handler) {
  using Op = detail::ConnectOp<asio::local::stream_protocol>;
  auto op = std::make_shared<Op>(executor, std::move(handler));
  op->timer.expires_after(timeout);
  op->timer.async_wait(
      [op, path, timeout](const boost::system::error_code& ec) {
        if (ec || op->done) return;
        boost::system::error_code ignored;
        op->socket.close(ignored);
        op->Complete(MakeError(
            ErrorCode::kConnectionLost,
            absl::StrCat("connect to unix ", path, " timed out after ",
                         timeout.count(), " ms")));
      });
  op->socket.async_connect(
      asio::local::stream_protocol::endpoint(path),
      [op, path, transport_options](const boost::system::error_code& ec) {
        if (op->done) return;
        if (ec) {
          op->Complete(ToStatus(ec, absl::StrCat("connect to unix ", path)));
          return;
        }
        if (absl::Status st = ApplyUnixOptions(op->socket, transport_options);
            !st.ok()) {
          op->Complete(st);
          return;
        }
        op->Complete(MakeTransport(std::move(op->socket),
                                   absl::StrCat("unix ", path),
                                   transport_options));
      });
}

SYMWIRE_DECL Dialer TcpDialer(asio::any_io_executor executor, std::string host,
                              uint16_t port, TcpOptions tcp_options,
                              std::chrono::milliseconds timeout,
                              TransportOptions transport_options) {
  return [executor = std::move(executor), host = std::move(host), port,
          tcp_options, timeout, transport_options](DialHandler handler) {
    ConnectTcp(executor, host, port, tcp_options, timeout, transport_options,
               std::move(handler));
  };
}

SYMWIRE_DECL Dialer UnixDialer(asio::any_io_executor executor, std::string path,
                               std::chrono::milliseconds timeout,
                               TransportOptions transport_options) {
  return [executor = std::move(executor), path = std::move(path), timeout,
          transport_options](DialHandler handler) {
    ConnectUnix(executor, path, timeout, transport_options, std::move(handler));
  };
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_TCP_IPP_
