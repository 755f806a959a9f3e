// File: symwire/transport/impl/wss.ipp
// Out-of-line bodies of wss.hpp (layer 3; the symwire::tls target).
#ifndef SYMWIRE_TRANSPORT_IMPL_WSS_IPP_
#define SYMWIRE_TRANSPORT_IMPL_WSS_IPP_

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl/stream.hpp"
#include "boost/beast/websocket/ssl.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/impl/ws_stream.hpp"
#include "symwire/transport/wss.hpp"

namespace symwire {
namespace detail {

// Helpers of impl/tls.ipp (the same library), declared here rather than
// included: src/symwire_tls.cpp compiles them once.
SYMWIRE_DECL std::string TlsPeerText(const asio::ip::tcp::endpoint& endpoint);
SYMWIRE_DECL absl::Status TlsHandshakeError(const boost::system::error_code& ec,
                                            SSL* ssl, absl::string_view peer,
                                            absl::string_view expected_name);
SYMWIRE_DECL absl::Status SetTlsPeerName(SSL* ssl, const std::string& name);

using WssNextLayer = asio::ssl::stream<asio::ip::tcp::socket>;
using WssState = WsState<WssNextLayer>;

// Makes the state of one wss connection; null if OpenSSL cannot allocate.
SYMWIRE_DECL std::shared_ptr<WssState> MakeWssState(
    const std::shared_ptr<asio::ssl::context>& context,
    asio::ip::tcp::socket socket) {
  try {
    return std::make_shared<WssState>(context, std::move(socket), *context);
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace detail

SYMWIRE_DECL void ConnectWss(const asio::any_io_executor& executor,
                             const std::string& url,
                             std::shared_ptr<asio::ssl::context> context,
                             std::string server_name,
                             const WsClientOptions& options,
                             DialHandler handler) {
  SYMWIRE_REQUIRE(context != nullptr);
  absl::StatusOr<WsUrl> parsed = ParseWsUrl(url);
  if (parsed.ok() && !parsed->secure) {
    parsed = absl::InvalidArgumentError(absl::StrCat(
        "websocket url \"", url, "\": ConnectWss takes wss:// URLs"));
  }
  if (!parsed.ok()) {
    asio::post(executor, [h = std::move(handler),
                          s = parsed.status()]() mutable { h(std::move(s)); });
    return;
  }
  const detail::WsClock::time_point deadline =
      detail::WsClock::now() + options.timeout;
  WsUrl u = *std::move(parsed);
  if (server_name.empty()) server_name = u.host;
  detail::ConnectTcpSocket(
      executor, u.host, u.port, options.tcp, deadline,
      [u, options, deadline, context = std::move(context),
       server_name = std::move(server_name), handler = std::move(handler)](
          absl::StatusOr<asio::ip::tcp::socket> socket) mutable {
        if (!socket.ok()) {
          handler(socket.status());
          return;
        }
        boost::system::error_code ec;
        const asio::ip::tcp::endpoint remote = socket->remote_endpoint(ec);
        const std::string peer = ec ? u.host : detail::TlsPeerText(remote);
        std::shared_ptr<detail::WssState> state =
            detail::MakeWssState(context, *std::move(socket));
        if (state == nullptr) {
          handler(MakeError(ErrorCode::kConnectionLost,
                            absl::StrCat("wss to ", peer,
                                         ": cannot allocate a TLS session")));
          return;
        }
        absl::Status st = detail::SetTlsPeerName(
            state->ws.next_layer().native_handle(), server_name);
        if (!st.ok()) {
          handler(std::move(st));
          return;
        }
        auto op = std::make_shared<detail::WsHandshakeOp>(
            state->ws.get_executor(), std::move(handler));
        op->timer.expires_at(deadline);
        op->timer.async_wait([op, state](const boost::system::error_code& t) {
          if (t || op->finished) return;
          op->timed_out = true;
          state->CloseSocket();
        });
        state->ws.next_layer().async_handshake(
            asio::ssl::stream_base::client,
            [op, state, u, options, deadline, peer,
             server_name](const boost::system::error_code& hec) mutable {
              if (op->finished) return;
              if (op->timed_out || hec) {
                absl::Status s =
                    op->timed_out
                        ? MakeError(ErrorCode::kHandshakeTimeout,
                                    absl::StrCat("tls handshake with ", peer,
                                                 " timed out"))
                        : detail::TlsHandshakeError(
                              hec, state->ws.next_layer().native_handle(), peer,
                              server_name);
                state->CloseSocket();
                op->Finish(std::move(s));
                return;
              }
              // The upgrade arms its own timer to the same deadline.
              op->finished = true;
              op->timer.cancel();
              std::string host_header = options.host_header;
              if (host_header.empty()) {
                host_header = u.host.find(':') != std::string::npos
                                  ? absl::StrCat("[", u.host, "]:", u.port)
                                  : absl::StrCat(u.host, ":", u.port);
              }
              std::string description =
                  absl::StrCat("wss ", host_header, u.target);
              detail::StartWsClientUpgrade(
                  state, host_header, u.target, options.headers, options.ws,
                  options.transport, std::move(description), deadline,
                  std::move(op->done));
            });
      });
}

SYMWIRE_DECL Dialer WssDialer(asio::any_io_executor executor, std::string url,
                              std::shared_ptr<asio::ssl::context> context,
                              WsClientOptions options,
                              std::string server_name) {
  SYMWIRE_REQUIRE(context != nullptr);
  return [executor = std::move(executor), url = std::move(url),
          context = std::move(context), options = std::move(options),
          server_name = std::move(server_name)](DialHandler handler) {
    ConnectWss(executor, url, context, server_name, options,
               std::move(handler));
  };
}

SYMWIRE_DECL std::function<void(asio::ip::tcp::socket, DialHandler)> WssUpgrade(
    std::shared_ptr<asio::ssl::context> context, WsServerOptions options,
    WsUpgradeCounters* counters) {
  SYMWIRE_REQUIRE(context != nullptr);
  auto shared = std::make_shared<detail::WsUpgradeShared>();
  shared->options = std::move(options);
  shared->counters = counters != nullptr ? counters : &shared->own_counters;
  return [shared, context = std::move(context)](asio::ip::tcp::socket socket,
                                                DialHandler done) {
    const asio::any_io_executor ex = socket.get_executor();
    auto fail = [&ex, &done](std::string why) {
      asio::post(ex, [d = std::move(done), w = std::move(why)]() mutable {
        d(MakeError(ErrorCode::kConnectionLost, w));
      });
    };
    if (!shared->TakePending()) {
      boost::system::error_code ignored;
      socket.close(ignored);
      fail("wss upgrade refused: max_pending_upgrades reached");
      return;
    }
    boost::system::error_code ec;
    const asio::ip::tcp::endpoint remote = socket.remote_endpoint(ec);
    const std::string peer = ec ? "?" : detail::WsPeerText(remote);
    auto slot = std::make_shared<detail::WsPendingSlot>(shared);
    std::shared_ptr<detail::WssState> state =
        detail::MakeWssState(context, std::move(socket));
    if (state == nullptr) {
      ++shared->counters->failed;
      fail(absl::StrCat("wss from ", peer, ": cannot allocate a TLS session"));
      return;
    }
    auto op = std::make_shared<detail::WsHandshakeOp>(state->ws.get_executor(),
                                                      std::move(done));
    op->timer.expires_after(shared->options.upgrade_timeout);
    op->timer.async_wait([op, state](const boost::system::error_code& tec) {
      if (tec || op->finished) return;
      op->timed_out = true;
      state->CloseSocket();
    });
    state->ws.next_layer().async_handshake(
        asio::ssl::stream_base::server,
        [state, slot, op, peer](const boost::system::error_code& hec) mutable {
          if (op->finished) return;
          if (op->timed_out) {
            ++slot->shared().counters->timed_out;
            op->Finish(MakeError(
                ErrorCode::kHandshakeTimeout,
                absl::StrCat("wss upgrade from ", peer, " timed out after ",
                             slot->shared().options.upgrade_timeout.count(),
                             " ms")));
            return;
          }
          if (hec) {
            ++slot->shared().counters->failed;
            absl::Status s = detail::TlsHandshakeError(
                hec, state->ws.next_layer().native_handle(), peer, "");
            state->CloseSocket();
            op->Finish(std::move(s));
            return;
          }
          detail::StartWsServerUpgrade(std::move(state), slot, std::move(op),
                                       peer, "wss");
        });
  };
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_WSS_IPP_
