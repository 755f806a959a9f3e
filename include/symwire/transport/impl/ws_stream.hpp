// File: symwire/transport/impl/ws_stream.hpp
// Layer 3, internal to ws.hpp and wss.hpp: the client and server HTTP
// upgrades as templates over the stream below the WebSocket layer (a TCP
// socket for ws://, asio::ssl::stream for wss://), instantiated by
// impl/ws.ipp and impl/wss.ipp; they hand the connection to WsTransport
// (impl/ws_transport.hpp), whose frames WsFrameParser parses
// (detail/ws_frame.hpp). SPEC.md §20.1 is the mapping implemented here.
#ifndef SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_
#define SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/stream_traits.hpp"
#include "boost/beast/http/empty_body.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/rfc7230.hpp"
#include "boost/beast/http/string_body.hpp"
#include "boost/beast/http/write.hpp"
#include "boost/beast/websocket/detail/hybi13.hpp"
#include "boost/beast/websocket/rfc6455.hpp"
#include "boost/beast/websocket/stream.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/impl/ws_transport.hpp"
#include "symwire/transport/ws.hpp"

namespace symwire {
namespace detail {

// Resolves `host`, connects within `deadline` and applies `tcp_options`;
// completes once on `executor` with the socket or CONNECTION_LOST.
using SocketHandler =
    absl::AnyInvocable<void(absl::StatusOr<asio::ip::tcp::socket>)>;
SYMWIRE_DECL void ConnectTcpSocket(const asio::any_io_executor& executor,
                                   const std::string& host, uint16_t port,
                                   const TcpOptions& tcp_options,
                                   WsClock::time_point deadline,
                                   SocketHandler handler);

// "127.0.0.1:80", "[::1]:80".
SYMWIRE_DECL std::string WsPeerText(const asio::ip::tcp::endpoint& endpoint);

// Shared by every connection of one WsUpgrade/WssUpgrade, which a sharded
// Server calls on each shard's thread: `options` is read-only, the
// counters and `pending` are atomic.
struct WsUpgradeShared {
  WsServerOptions options;
  WsUpgradeCounters own_counters;
  WsUpgradeCounters* counters = nullptr;
  std::atomic<size_t> pending{0};

  // Takes one of `pending` (released by WsPendingSlot); false, counting
  // over_limit, when max_pending_upgrades are in progress. One atomic
  // increment, so concurrent shards cannot overshoot the limit together.
  bool TakePending() {
    if (pending.fetch_add(1) >= options.max_pending_upgrades) {
      --pending;
      ++counters->over_limit;
      return false;
    }
    return true;
  }
};

// Holds one of WsUpgradeShared::pending (taken by TakePending) while an
// upgrade runs.
class WsPendingSlot {
 public:
  explicit WsPendingSlot(std::shared_ptr<WsUpgradeShared> shared)
      : shared_(std::move(shared)) {}
  WsPendingSlot(const WsPendingSlot&) = delete;
  WsPendingSlot& operator=(const WsPendingSlot&) = delete;
  ~WsPendingSlot() { --shared_->pending; }
  WsUpgradeShared& shared() { return *shared_; }

 private:
  std::shared_ptr<WsUpgradeShared> shared_;
};

// Keeps `done` until called once, and the timer bounding an upgrade.
struct WsHandshakeOp {
  WsHandshakeOp(const asio::any_io_executor& ex, DialHandler d)
      : timer(ex), done(std::move(d)) {}
  asio::steady_timer timer;
  DialHandler done;
  bool finished = false;
  bool timed_out = false;
  void Finish(DialResult result) {
    if (finished) return;
    finished = true;
    timer.cancel();
    DialHandler h = std::move(done);
    h(std::move(result));
  }
};

// The client's upgrade on an established next layer: sends the request
// (Sec-WebSocket-Protocol: symwire.v1 and `headers`), checks the
// response, and completes `done` with the transport. Done here rather than
// by Beast's handshake, which keeps bytes that follow the 101 response in
// the same read (the server's first frames) in its own buffer: here they
// go to the transport.
template <class NextLayer>
void StartWsClientUpgrade(
    std::shared_ptr<WsState<NextLayer>> state, const std::string& host_header,
    const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers,
    const WsOptions& ws_options, TransportOptions transport_options,
    std::string description, WsClock::time_point deadline, DialHandler done) {
  struct Op : WsHandshakeOp {
    using WsHandshakeOp::WsHandshakeOp;
    websocket::detail::sec_ws_key_type key;
    http::request<http::empty_body> request;
    beast::flat_buffer buffer{size_t{64} << 10};
    http::response_parser<http::string_body> parser;
  };
  auto op = std::make_shared<Op>(state->ws.get_executor(), std::move(done));
  op->timer.expires_at(deadline);
  op->timer.async_wait([op, state](const boost::system::error_code& ec) {
    if (ec || op->finished) return;
    op->timed_out = true;
    state->CloseSocket();
  });
  http::request<http::empty_body>& req = op->request;
  for (const auto& [name, value] : headers) req.set(name, value);
  req.method(http::verb::get);
  req.target(target);
  req.version(11);
  req.set(http::field::host, host_header);
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::connection, "Upgrade");
  websocket::detail::make_sec_ws_key(op->key);
  req.set(http::field::sec_websocket_key,
          beast::string_view(op->key.data(), op->key.size()));
  req.set(http::field::sec_websocket_version, "13");
  req.set(http::field::sec_websocket_protocol, std::string(kWsSubprotocol));
  op->parser.header_limit(16 << 10);
  op->parser.body_limit(16 << 10);
  const std::string where = absl::StrCat(host_header, target);
  auto fail = [op, state](absl::Status status) {
    state->CloseSocket();
    op->Finish(std::move(status));
  };
  auto on_response = [op, state, where, ws_options, transport_options, fail,
                      description = std::move(description)](
                         const boost::system::error_code& ec, size_t) mutable {
    if (op->finished) return;
    if (op->timed_out) {
      op->Finish(
          MakeError(ErrorCode::kHandshakeTimeout,
                    absl::StrCat("ws upgrade to ", where, " timed out")));
      return;
    }
    if (ec && !op->parser.is_header_done()) {
      fail(ToStatus(ec, absl::StrCat("ws upgrade to ", where)));
      return;
    }
    const auto& res = op->parser.get();
    const unsigned status = res.result_int();
    if (status != 101) {
      std::string body = res.body().substr(0, 200);
      absl::StripTrailingAsciiWhitespace(&body);
      const ErrorCode code = (status == 401 || status == 403)
                                 ? ErrorCode::kUnauthenticated
                                 : ErrorCode::kConnectionLost;
      fail(MakeError(
          code, absl::StrCat("ws upgrade to ", where, " refused: HTTP ", status,
                             " ", std::string(res.reason()),
                             body.empty() ? "" : ": ", body)));
      return;
    }
    websocket::detail::sec_ws_accept_type accept;
    websocket::detail::make_sec_ws_accept(
        accept, beast::string_view(op->key.data(), op->key.size()));
    const char* bad = nullptr;
    if (res.version() != 11) {
      bad = "not HTTP/1.1";
    } else if (!http::token_list{res[http::field::connection]}.exists(
                   "upgrade")) {
      bad = "no Connection: upgrade";
    } else if (!http::token_list{res[http::field::upgrade]}.exists(
                   "websocket")) {
      bad = "no Upgrade: websocket";
    } else if (res[http::field::sec_websocket_accept] !=
               beast::string_view(accept.data(), accept.size())) {
      bad = "a wrong Sec-WebSocket-Accept";
    } else if (res.count(http::field::sec_websocket_extensions) != 0) {
      bad = "an extension we did not offer (Sec-WebSocket-Extensions)";
    }
    if (bad != nullptr) {
      fail(MakeError(
          ErrorCode::kConnectionLost,
          absl::StrCat("ws upgrade to ", where, ": bad 101 response: ", bad)));
      return;
    }
    const auto protocol = res[http::field::sec_websocket_protocol];
    if (std::string_view(protocol.data(), protocol.size()) != kWsSubprotocol) {
      fail(MakeError(
          ErrorCode::kVersionMismatch,
          absl::StrCat("ws upgrade to ", where,
                       ": the server did not select the subprotocol ",
                       kWsSubprotocol, " (Sec-WebSocket-Protocol: \"",
                       std::string(protocol.data(), protocol.size()), "\")")));
      return;
    }
    // Bytes after the response are the server's first frames.
    const auto rest = op->buffer.data();
    op->Finish(std::make_shared<WsTransport<NextLayer>>(
        state, std::move(description), transport_options, ws_options,
        /*client=*/true,
        std::span<const std::byte>(static_cast<const std::byte*>(rest.data()),
                                   rest.size())));
  };
  http::async_write(state->ws.next_layer(), op->request,
                    [op, state, fail, on_response = std::move(on_response)](
                        const boost::system::error_code& ec, size_t) mutable {
                      if (op->finished) return;
                      if (ec) {
                        on_response(ec, 0);
                        return;
                      }
                      http::async_read(state->ws.next_layer(), op->buffer,
                                       op->parser, std::move(on_response));
                    });
}

// True if the comma-separated Sec-WebSocket-Protocol fields of `req` name
// symwire.v1.
template <class Request>
bool WsOffersSubprotocol(const Request& req) {
  auto range = req.equal_range(http::field::sec_websocket_protocol);
  for (auto it = range.first; it != range.second; ++it) {
    const auto v = it->value();
    for (absl::string_view token :
         absl::StrSplit(absl::string_view(v.data(), v.size()), ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (std::string_view(token.data(), token.size()) == kWsSubprotocol) {
        return true;
      }
    }
  }
  return false;
}

// The server's upgrade on an established next layer (after TLS for wss),
// within `op`'s deadline (already armed by the caller to close the
// socket). Reads the request, refuses what SPEC.md §20.1 refuses with a
// status and a text body, accepts the rest.
template <class NextLayer>
void StartWsServerUpgrade(std::shared_ptr<WsState<NextLayer>> state,
                          const std::shared_ptr<WsPendingSlot>& slot,
                          std::shared_ptr<WsHandshakeOp> op, std::string peer,
                          std::string scheme) {
  struct Read {
    explicit Read(size_t limit) : buffer(limit) {
      parser.header_limit(
          static_cast<std::uint32_t>(std::min<size_t>(limit, UINT32_MAX)));
    }
    beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
    http::response<http::string_body> refusal;
    std::array<char, 512> discard{};
  };
  // Reads and discards until the client closes or the upgrade timer fires,
  // then closes and finishes `op` with `status`. A handler object rather
  // than a self-referencing std::function: when the io_context is destroyed
  // with the read pending, destroying the handler frees everything.
  struct Drain {
    std::shared_ptr<WsState<NextLayer>> state;
    std::shared_ptr<WsHandshakeOp> op;
    std::shared_ptr<Read> rd;
    absl::Status status;
    void Start() {
      auto& socket = beast::get_lowest_layer(state->ws);
      auto buffer = asio::buffer(rd->discard);
      socket.async_read_some(buffer, std::move(*this));
    }
    void operator()(const boost::system::error_code& ec, size_t) {
      if (!ec && !op->timed_out) {
        Start();
        return;
      }
      state->CloseSocket();
      op->Finish(std::move(status));
    }
  };
  WsUpgradeShared& shared = slot->shared();
  auto rd = std::make_shared<Read>(shared.options.max_header_bytes);
  http::async_read(
      state->ws.next_layer(), rd->buffer, rd->parser,
      [state, slot, op, rd, peer = std::move(peer), scheme = std::move(scheme)](
          const boost::system::error_code& ec, size_t) mutable {
        WsUpgradeShared& sh = slot->shared();
        WsUpgradeCounters& counters = *sh.counters;
        if (op->timed_out) {
          ++counters.timed_out;
          op->Finish(MakeError(
              ErrorCode::kHandshakeTimeout,
              absl::StrCat(scheme, " upgrade from ", peer, " timed out after ",
                           sh.options.upgrade_timeout.count(), " ms")));
          return;
        }
        // Refuses with `status` and `why` (the body), then closes.
        auto refuse = [&](http::status status, const std::string& why,
                          std::atomic<uint64_t>& counter) {
          ++counter;
          auto& res = rd->refusal;
          res.version(11);
          res.result(status);
          res.set(http::field::content_type, "text/plain");
          res.set(http::field::connection, "close");
          if (status == http::status::upgrade_required) {
            res.set(http::field::upgrade, "websocket");
          }
          if (status != http::status::not_found) {
            res.set(http::field::sec_websocket_protocol,
                    std::string(kWsSubprotocol));
          }
          res.body() = why + "\n";
          res.prepare_payload();
          absl::Status st = MakeError(
              ErrorCode::kConnectionLost,
              absl::StrCat(scheme, " upgrade from ", peer, " refused: ",
                           static_cast<unsigned>(status), " ", why));
          http::async_write(
              state->ws.next_layer(), res,
              [state, op, rd, st = std::move(st)](
                  const boost::system::error_code& wec, size_t) mutable {
                if (wec || !std::is_same_v<NextLayer, asio::ip::tcp::socket>) {
                  state->CloseSocket();
                  op->Finish(std::move(st));
                  return;
                }
                // Half-close and drain what the client still sends, so
                // that closing does not reset the connection before the
                // response is read (bounded by the upgrade timer).
                boost::system::error_code ignored;
                beast::get_lowest_layer(state->ws).shutdown(
                    asio::socket_base::shutdown_send, ignored);
                Drain{std::move(state), std::move(op), std::move(rd),
                      std::move(st)}
                    .Start();
              });
        };
        if (ec == http::error::header_limit ||
            ec == http::error::buffer_overflow) {
          refuse(http::status::request_header_fields_too_large,
                 absl::StrCat("request header fields over ",
                              sh.options.max_header_bytes, " bytes"),
                 counters.headers_too_large);
          return;
        }
        if (ec == http::error::end_of_stream || ec == asio::error::eof ||
            ec == asio::error::connection_reset) {
          ++counters.failed;
          state->CloseSocket();
          op->Finish(ToStatus(
              ec, absl::StrCat(scheme, " upgrade from ", peer, ": read")));
          return;
        }
        if (ec) {
          refuse(http::status::bad_request,
                 absl::StrCat("malformed HTTP request: ", ec.message()),
                 counters.bad_request);
          return;
        }
        const auto& req = rd->parser.get();
        const auto target = req.target();
        std::string_view path(target.data(), target.size());
        path = path.substr(0, path.find('?'));
        if (path != sh.options.path) {
          refuse(http::status::not_found,
                 absl::StrCat("no WebSocket endpoint at ",
                              absl::string_view(path.data(), path.size())),
                 counters.not_found);
          return;
        }
        if (!websocket::is_upgrade(req)) {
          refuse(http::status::upgrade_required,
                 absl::StrCat("this is a symwire WebSocket endpoint: send a "
                              "WebSocket upgrade (RFC 6455) with "
                              "Sec-WebSocket-Protocol: ",
                              kWsSubprotocol),
                 counters.not_websocket);
          return;
        }
        if (!WsOffersSubprotocol(req)) {
          refuse(http::status::bad_request,
                 absl::StrCat("the WebSocket subprotocol ", kWsSubprotocol,
                              " is required (Sec-WebSocket-Protocol)"),
                 counters.bad_subprotocol);
          return;
        }
        if (rd->buffer.size() != 0) {
          // RFC 6455 §4.1: the client waits for the response first.
          refuse(http::status::bad_request,
                 "bytes after the upgrade request before its response",
                 counters.bad_request);
          return;
        }
        state->ws.set_option(websocket::stream_base::decorator(
            [](websocket::response_type& res) {
              res.set(http::field::sec_websocket_protocol,
                      std::string(kWsSubprotocol));
            }));
        state->ws.async_accept(
            req, [state, slot, op, rd, peer = std::move(peer),
                  scheme = std::move(scheme)](
                     const boost::system::error_code& aec) mutable {
              WsUpgradeShared& s = slot->shared();
              if (op->timed_out) {
                ++s.counters->timed_out;
                op->Finish(MakeError(
                    ErrorCode::kHandshakeTimeout,
                    absl::StrCat(scheme, " upgrade from ", peer,
                                 " timed out after ",
                                 s.options.upgrade_timeout.count(), " ms")));
                return;
              }
              if (aec) {
                // Beast answered a bad handshake (400/426) itself.
                ++s.counters->failed;
                state->CloseSocket();
                op->Finish(ToStatus(
                    aec, absl::StrCat(scheme, " upgrade from ", peer)));
                return;
              }
              ++s.counters->upgraded;
              op->Finish(std::make_shared<WsTransport<NextLayer>>(
                  state, absl::StrCat(scheme, " ", peer), s.options.transport,
                  s.options.ws, /*client=*/false));
            });
      });
}

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_
