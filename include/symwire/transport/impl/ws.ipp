// File: symwire/transport/impl/ws.ipp
// Out-of-line bodies of ws.hpp (layer 3; the symwire::transport target).
#ifndef SYMWIRE_TRANSPORT_IMPL_WS_IPP_
#define SYMWIRE_TRANSPORT_IMPL_WS_IPP_

#include <sys/random.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/ip/address.hpp"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/impl/ws_stream.hpp"
#include "symwire/transport/ws.hpp"

namespace symwire {
namespace detail {

namespace {

std::string WsCloseCodeName(int code) {
  switch (code) {
    case 1000:
      return "normal";
    case 1001:
      return "going away";
    case 1002:
      return "protocol error";
    case 1003:
      return "unsupported data: a text message";
    case 1005:
      return "no status code";
    case 1007:
      return "invalid payload data";
    case 1008:
      return "policy violation: ping flood";
    case 1009:
      return "message too big";
    case 1011:
      return "internal error";
    default:
      return "see RFC 6455 §7.4";
  }
}

// boost::system::error_category's destructor is protected and not
// virtual by design (categories are never deleted through it).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class WsLocalCloseCategoryImpl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "symwire.ws.local"; }
  std::string message(int code) const override {
    return absl::StrCat("ended for WebSocket close code ", code, " (",
                        WsCloseCodeName(code), ")");
  }
};

class WsPeerCloseCategoryImpl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "symwire.ws.peer"; }
  std::string message(int code) const override {
    return absl::StrCat("closed by peer with WebSocket code ", code, " (",
                        WsCloseCodeName(code), ")");
  }
};

#pragma GCC diagnostic pop

}  // namespace

SYMWIRE_DECL const boost::system::error_category& WsLocalCloseCategory() {
  static const WsLocalCloseCategoryImpl category;
  return category;
}

SYMWIRE_DECL const boost::system::error_category& WsPeerCloseCategory() {
  static const WsPeerCloseCategoryImpl category;
  return category;
}

SYMWIRE_DECL void WsRandomBytes(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // ENOSYS (a kernel before 3.17): libstdc++'s random_device reads the
      // kernel's pool (or RDRAND) too.
      std::random_device device;
      for (; done < out.size(); ++done) {
        out[done] = static_cast<uint8_t>(device());
      }
    }
  }
}

SYMWIRE_DECL std::string WsPeerText(const asio::ip::tcp::endpoint& endpoint) {
  const asio::ip::address a = endpoint.address();
  if (a.is_v6()) return absl::StrCat("[", a.to_string(), "]:", endpoint.port());
  return absl::StrCat(a.to_string(), ":", endpoint.port());
}

SYMWIRE_DECL void ConnectTcpSocket(const asio::any_io_executor& executor,
                                   const std::string& host, uint16_t port,
                                   const TcpOptions& tcp_options,
                                   WsClock::time_point deadline,
                                   SocketHandler handler) {
  struct Op {
    Op(const asio::any_io_executor& ex, SocketHandler h)
        : socket(ex), resolver(ex), timer(ex), handler(std::move(h)) {}
    asio::ip::tcp::socket socket;
    asio::ip::tcp::resolver resolver;
    asio::steady_timer timer;
    SocketHandler handler;
    bool done = false;
    void Finish(absl::StatusOr<asio::ip::tcp::socket> result) {
      if (done) return;
      done = true;
      timer.cancel();
      SocketHandler h = std::move(handler);
      h(std::move(result));
    }
  };
  auto op = std::make_shared<Op>(executor, std::move(handler));
  const std::string target = absl::StrCat(host, ":", port);
  op->timer.expires_at(deadline);
  op->timer.async_wait([op, target](const boost::system::error_code& ec) {
    if (ec || op->done) return;
    op->resolver.cancel();
    boost::system::error_code ignored;
    op->socket.close(ignored);
    op->Finish(MakeError(ErrorCode::kConnectionLost,
                         absl::StrCat("connect to ", target, " timed out")));
  });
  op->resolver.async_resolve(
      host, std::to_string(port),
      [op, target, tcp_options](
          const boost::system::error_code& ec,
          const asio::ip::tcp::resolver::results_type& results) {
        if (op->done) return;
        if (ec) {
          op->Finish(ToStatus(ec, absl::StrCat("resolve ", target)));
          return;
        }
        asio::async_connect(
            op->socket, results,
            [op, target, tcp_options](const boost::system::error_code& cec,
                                      const asio::ip::tcp::endpoint&) {
              if (op->done) return;
              if (cec) {
                op->Finish(ToStatus(cec, absl::StrCat("connect to ", target)));
                return;
              }
              absl::Status st = ApplyTcpOptions(op->socket, tcp_options);
              if (!st.ok()) {
                op->Finish(std::move(st));
                return;
              }
              op->Finish(std::move(op->socket));
            });
      });
}

}  // namespace detail

SYMWIRE_DECL absl::StatusOr<WsUrl> ParseWsUrl(std::string_view url) {
  auto bad = [url](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "websocket url \"", absl::string_view(url.data(), url.size()),
        "\": ", absl::string_view(why.data(), why.size())));
  };
  WsUrl out;
  std::string_view rest;
  if (url.starts_with("ws://")) {
    rest = url.substr(5);
    out.port = 80;
  } else if (url.starts_with("wss://")) {
    rest = url.substr(6);
    out.port = 443;
    out.secure = true;
  } else {
    return bad("the scheme must be ws:// or wss://");
  }
  if (rest.find('#') != std::string_view::npos) {
    return bad("a fragment (#) is not allowed");
  }
  const size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    out.target = std::string(rest.substr(slash));
    if (out.target.front() == '?') out.target.insert(0, "/");
  }
  if (authority.find('@') != std::string_view::npos) {
    return bad("userinfo (user@) is not allowed; use an Authorization header");
  }
  std::string_view port_text;
  if (authority.starts_with("[")) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return bad("unterminated IPv6 literal");
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after the IPv6 literal");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    const size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (out.host.empty()) return bad("empty host");
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(
        port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() ||
        value == 0 || value > 65535) {
      return bad("the port must be 1-65535");
    }
    out.port = static_cast<uint16_t>(value);
  }
  return out;
}

SYMWIRE_DECL void ConnectWs(const asio::any_io_executor& executor,
                            const std::string& url,
                            const WsClientOptions& options,
                            DialHandler handler) {
  absl::StatusOr<WsUrl> parsed = ParseWsUrl(url);
  if (parsed.ok() && parsed->secure) {
    parsed = absl::InvalidArgumentError(absl::StrCat(
        "websocket url \"", url,
        "\": wss:// needs TLS: use ConnectWss or WssDialer (wss.hpp)"));
  }
  if (!parsed.ok()) {
    asio::post(executor, [h = std::move(handler),
                          s = parsed.status()]() mutable { h(std::move(s)); });
    return;
  }
  const detail::WsClock::time_point deadline =
      detail::WsClock::now() + options.timeout;
  WsUrl u = *std::move(parsed);
  detail::ConnectTcpSocket(
      executor, u.host, u.port, options.tcp, deadline,
      [u, options, deadline, handler = std::move(handler)](
          absl::StatusOr<asio::ip::tcp::socket> socket) mutable {
        if (!socket.ok()) {
          handler(socket.status());
          return;
        }
        auto state = std::make_shared<detail::WsState<asio::ip::tcp::socket>>(
            nullptr, *std::move(socket));
        std::string host_header = options.host_header;
        if (host_header.empty()) {
          host_header = u.host.find(':') != std::string::npos
                            ? absl::StrCat("[", u.host, "]:", u.port)
                            : absl::StrCat(u.host, ":", u.port);
        }
        std::string description = absl::StrCat("ws ", host_header, u.target);
        detail::StartWsClientUpgrade(std::move(state), host_header, u.target,
                                     options.headers, options.ws,
                                     options.transport, std::move(description),
                                     deadline, std::move(handler));
      });
}

SYMWIRE_DECL Dialer WsDialer(asio::any_io_executor executor, std::string url,
                             WsClientOptions options) {
  return [executor = std::move(executor), url = std::move(url),
          options = std::move(options)](DialHandler handler) {
    ConnectWs(executor, url, options, std::move(handler));
  };
}

SYMWIRE_DECL std::function<void(asio::ip::tcp::socket, DialHandler)> WsUpgrade(
    WsServerOptions options, WsUpgradeCounters* counters) {
  auto shared = std::make_shared<detail::WsUpgradeShared>();
  shared->options = std::move(options);
  shared->counters = counters != nullptr ? counters : &shared->own_counters;
  return [shared](asio::ip::tcp::socket socket, DialHandler done) {
    if (!shared->TakePending()) {
      boost::system::error_code ignored;
      socket.close(ignored);
      asio::post(socket.get_executor(), [d = std::move(done)]() mutable {
        d(MakeError(ErrorCode::kConnectionLost,
                    "ws upgrade refused: max_pending_upgrades reached"));
      });
      return;
    }
    auto slot = std::make_shared<detail::WsPendingSlot>(shared);
    boost::system::error_code ec;
    const asio::ip::tcp::endpoint remote = socket.remote_endpoint(ec);
    const std::string peer = ec ? "?" : detail::WsPeerText(remote);
    auto state = std::make_shared<detail::WsState<asio::ip::tcp::socket>>(
        nullptr, std::move(socket));
    auto op = std::make_shared<detail::WsHandshakeOp>(state->ws.get_executor(),
                                                      std::move(done));
    op->timer.expires_after(shared->options.upgrade_timeout);
    op->timer.async_wait([op, state](const boost::system::error_code& tec) {
      if (tec || op->finished) return;
      op->timed_out = true;
      state->CloseSocket();
    });
    detail::StartWsServerUpgrade(std::move(state), slot, std::move(op), peer,
                                 "ws");
  };
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_WS_IPP_
