// File: symwire/transport/impl/ws_stream.hpp
// Layer 3, internal to ws.hpp and wss.hpp: the WebSocket Transport and the
// client and server upgrades as templates over the stream below the
// WebSocket layer (a TCP socket for ws://, asio::ssl::stream for wss://),
// instantiated by impl/ws.ipp and impl/wss.ipp. SPEC.md §20.1 is the
// mapping implemented here.
#ifndef SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_
#define SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_

#include <algorithm>
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
#include "boost/beast/http/string_body.hpp"
#include "boost/beast/http/write.hpp"
#include "boost/beast/websocket/rfc6455.hpp"
#include "boost/beast/websocket/stream.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/ws.hpp"

namespace symwire {
namespace detail {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using WsClock = std::chrono::steady_clock;

// Error categories for the reasons a WebSocket transport ends, so that the
// Status a session sees names the close code (ToStatus in transport.hpp
// prints the message): a close this side started for a protocol reason
// (the value is the code sent: 1003, 1008, 1009) and a close the peer
// started (the value is the peer's code).
SYMWIRE_DECL const boost::system::error_category& WsLocalCloseCategory();
SYMWIRE_DECL const boost::system::error_category& WsPeerCloseCategory();

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

// One WebSocket connection's state, shared by the transport and by a
// closing handshake that may outlive it (bounded by close_timeout).
template <class NextLayer>
struct WsState : std::enable_shared_from_this<WsState<NextLayer>> {
  // permessage-deflate is compiled out: it is never offered or accepted.
  using Stream = websocket::stream<NextLayer, false>;

  template <class... Args>
  explicit WsState(std::shared_ptr<void> keep, Args&&... args)
      : keep_alive(std::move(keep)),
        ws(std::forward<Args>(args)...),
        close_timer(ws.get_executor()) {}

  // What the next layer needs alive (the TLS context); declared before
  // the stream so that it outlives it.
  std::shared_ptr<void> keep_alive;
  Stream ws;
  asio::steady_timer close_timer;
  WsOptions options;
  WsClock::time_point ping_refill{};
  double ping_tokens = 0;
  // The close code this side sent for a protocol reason (1003, 1008,
  // 1009), 0 if none.
  uint16_t local_close_code = 0;
  bool closing = false;  // a close frame was started, or the socket closed
  // A Beast read is in flight (the transport reads all the time).
  bool read_pending = false;
  bool close_frame_started = false;  // SendClose ran

  void CloseSocket() {
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws).close(ignored);
  }

  // Starts the closing handshake with `code`, at most once; the socket is
  // closed when it ends or after options.close_timeout, whichever first.
  void StartClose(websocket::close_code code) {
    if (closing) return;
    closing = true;
    if (!ws.is_open()) {
      CloseSocket();
      return;
    }
    auto self = this->shared_from_this();
    close_timer.expires_after(options.close_timeout);
    close_timer.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->CloseSocket();
    });
    if (read_pending) {
      // No close frame while a read is in flight: Beast 1.81 deadlocks
      // (both operations suspended for good, holding the state and the
      // executor's work) when a close operation waits for the read lock
      // of a read that then receives the peer's close frame and waits for
      // the close operation's write lock. A graceful close half-closes
      // the TCP connection instead (SPEC.md §20.1: a TCP end counts as a
      // close), reading on until the peer closes or the timer above
      // fires; any other close closes the socket now.
      boost::system::error_code ignored;
      if (code == websocket::close_code::normal) {
        beast::get_lowest_layer(ws).shutdown(asio::socket_base::shutdown_send,
                                             ignored);
      } else {
        close_timer.cancel();
        CloseSocket();
      }
      return;
    }
    SendClose(code);
  }

  void SendClose(websocket::close_code code) {
    close_frame_started = true;
    auto self = this->shared_from_this();
    ws.async_close(code, [self](const boost::system::error_code&) {
      self->close_timer.cancel();
      self->CloseSocket();
    });
  }

  // The ping budget (WsOptions::ping_burst, pings_per_second).
  bool TakePing() {
    const WsClock::time_point now = WsClock::now();
    const double seconds =
        std::chrono::duration<double>(now - ping_refill).count();
    ping_refill = now;
    ping_tokens = std::min(
        static_cast<double>(options.ping_burst),
        ping_tokens + seconds * static_cast<double>(options.pings_per_second));
    if (ping_tokens < 1) return false;
    ping_tokens -= 1;
    return true;
  }

  // Settings of an established connection (both roles).
  void Configure(const WsOptions& o) {
    options = o;
    ping_tokens = static_cast<double>(o.ping_burst);
    ping_refill = WsClock::now();
    ws.binary(true);
    // One frame per message: fragmenting is legal but buys nothing here.
    ws.auto_fragment(false);
    ws.read_message_max(o.max_read_message_bytes);
    // Beast's timer bounds a closing handshake (handshake_timeout applies
    // to the closing state); symwire's heartbeats watch an open one.
    websocket::stream_base::timeout t{};
    t.handshake_timeout = o.close_timeout;
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws.set_option(t);
    std::weak_ptr<WsState> weak = this->shared_from_this();
    ws.control_callback([weak](websocket::frame_type kind, beast::string_view) {
      if (kind != websocket::frame_type::ping) return;
      auto self = weak.lock();
      if (!self || self->closing || self->TakePing()) return;
      // Over the budget: the connection ends (reported as 1008). The
      // read that runs this callback is in flight, so no close frame
      // (StartClose): the socket is closed. Posted: the read operation
      // still holds the stream.
      self->local_close_code =
          static_cast<uint16_t>(websocket::close_code::policy_error);
      asio::post(self->ws.get_executor(), [self] {
        self->StartClose(websocket::close_code::policy_error);
      });
    });
  }
};

// The Transport over one established WebSocket connection.
template <class NextLayer>
class WsTransport final : public Transport {
 public:
  WsTransport(std::shared_ptr<WsState<NextLayer>> state,
              std::string description, TransportOptions options)
      : Transport(state->ws.get_executor(), std::move(description), options),
        state_(std::move(state)) {}
  ~WsTransport() override {
    if (!state_->closing) state_->CloseSocket();
  }

 private:
  void AsyncReadSome(asio::mutable_buffer buffer) override {
    state_->read_pending = true;
    state_->ws.async_read_some(buffer, [self = shared_from_this(), this](
                                           const boost::system::error_code& ec,
                                           size_t n) { OnRead(ec, n); });
  }

  void OnRead(boost::system::error_code ec, size_t n) {
    WsState<NextLayer>& s = *state_;
    s.read_pending = false;
    if (!ec && !s.ws.got_binary()) {
      // SPEC.md §20.1: symwire travels in binary messages only.
      s.local_close_code =
          static_cast<uint16_t>(websocket::close_code::unknown_data);
      s.StartClose(websocket::close_code::unknown_data);
      ReadDone(
          boost::system::error_code(s.local_close_code, WsLocalCloseCategory()),
          0);
      return;
    }
    if (ec) {
      if (ec == websocket::error::message_too_big) {
        // Beast has sent 1009 and closed.
        s.local_close_code =
            static_cast<uint16_t>(websocket::close_code::too_big);
      }
      if (s.local_close_code != 0) {
        ec = boost::system::error_code(s.local_close_code,
                                       WsLocalCloseCategory());
      } else if (ec == websocket::error::closed) {
        ec = boost::system::error_code(s.ws.reason().code,
                                       WsPeerCloseCategory());
      }
    }
    ReadDone(ec, n);
  }

  void AsyncWriteAll(std::span<const asio::const_buffer> buffers) override {
    buffers_ = buffers;
    index_ = 0;
    offset_ = 0;
    written_ = 0;
    WriteNext();
  }

  // Writes the next message: at most max_write_message_bytes of what is
  // left (SPEC.md §20.1: a receiver joins messages into one stream).
  void WriteNext() {
    chunk_.clear();
    size_t room = std::max<size_t>(state_->options.max_write_message_bytes, 1);
    while (room > 0 && index_ < buffers_.size()) {
      const asio::const_buffer b = buffers_[index_] + offset_;
      const size_t take = std::min(room, b.size());
      if (take > 0) chunk_.emplace_back(b.data(), take);
      room -= take;
      offset_ += take;
      if (offset_ == buffers_[index_].size()) {
        ++index_;
        offset_ = 0;
      }
    }
    state_->ws.async_write(chunk_,
                           [self = shared_from_this(), this](
                               const boost::system::error_code& ec, size_t n) {
                             written_ += n;
                             if (ec) {
                               WriteDone(ec, written_);
                               return;
                             }
                             NoteWriteProgress();
                             if (index_ < buffers_.size()) {
                               WriteNext();
                               return;
                             }
                             WriteDone(ec, written_);
                           });
  }

  // Graceful close: our close frame (1000) after the last message; the
  // transport keeps reading until the peer's close frame ends the read.
  void ShutdownSend() override {
    state_->StartClose(websocket::close_code::normal);
  }
  // An abrupt close still says goodbye (1001) when the stream is open,
  // without waiting: the closing handshake runs on its own, bounded.
  void CloseStream() override {
    WsState<NextLayer>& s = *state_;
    if (s.closing && !s.close_frame_started) {
      // After a half-close (StartClose): the transport is done with it.
      s.close_timer.cancel();
      s.CloseSocket();
      return;
    }
    s.StartClose(websocket::close_code::going_away);
  }

  std::shared_ptr<WsState<NextLayer>> state_;
  std::span<const asio::const_buffer> buffers_;
  std::vector<asio::const_buffer> chunk_;
  size_t index_ = 0;
  size_t offset_ = 0;
  size_t written_ = 0;
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
// response, and completes `done` with the transport.
template <class NextLayer>
void StartWsClientUpgrade(
    std::shared_ptr<WsState<NextLayer>> state, std::string host_header,
    std::string target,
    std::vector<std::pair<std::string, std::string>> headers,
    const WsOptions& ws_options, TransportOptions transport_options,
    std::string description, WsClock::time_point deadline, DialHandler done) {
  struct Op : WsHandshakeOp {
    using WsHandshakeOp::WsHandshakeOp;
    websocket::response_type response;
  };
  auto op = std::make_shared<Op>(state->ws.get_executor(), std::move(done));
  op->timer.expires_at(deadline);
  op->timer.async_wait([op, state](const boost::system::error_code& ec) {
    if (ec || op->finished) return;
    op->timed_out = true;
    state->CloseSocket();
  });
  state->ws.set_option(websocket::stream_base::decorator(
      [headers = std::move(headers)](websocket::request_type& req) {
        for (const auto& [name, value] : headers) req.set(name, value);
        req.set(http::field::sec_websocket_protocol,
                std::string(kWsSubprotocol));
      }));
  const std::string where = absl::StrCat(host_header, target);
  state->ws.async_handshake(
      op->response, host_header, target,
      [op, state, where, ws_options, transport_options,
       description = std::move(description)](
          const boost::system::error_code& ec) mutable {
        if (op->finished) return;
        if (op->timed_out) {
          op->Finish(
              MakeError(ErrorCode::kHandshakeTimeout,
                        absl::StrCat("ws upgrade to ", where, " timed out")));
          return;
        }
        if (ec == websocket::error::upgrade_declined) {
          const unsigned status = op->response.result_int();
          std::string body = op->response.body().substr(0, 200);
          absl::StripTrailingAsciiWhitespace(&body);
          const ErrorCode code = (status == 401 || status == 403)
                                     ? ErrorCode::kUnauthenticated
                                     : ErrorCode::kConnectionLost;
          state->CloseSocket();
          op->Finish(MakeError(
              code,
              absl::StrCat("ws upgrade to ", where, " refused: HTTP ", status,
                           " ", std::string(op->response.reason()),
                           body.empty() ? "" : ": ", body)));
          return;
        }
        if (ec) {
          state->CloseSocket();
          op->Finish(ToStatus(ec, absl::StrCat("ws upgrade to ", where)));
          return;
        }
        const auto protocol = op->response[http::field::sec_websocket_protocol];
        if (std::string_view(protocol.data(), protocol.size()) !=
            kWsSubprotocol) {
          state->CloseSocket();
          op->Finish(MakeError(
              ErrorCode::kVersionMismatch,
              absl::StrCat("ws upgrade to ", where,
                           ": the server did not select the subprotocol ",
                           kWsSubprotocol, " (Sec-WebSocket-Protocol: \"",
                           std::string(protocol.data(), protocol.size()),
                           "\")")));
          return;
        }
        state->Configure(ws_options);
        op->Finish(std::make_shared<WsTransport<NextLayer>>(
            state, std::move(description), transport_options));
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
              state->Configure(s.options.ws);
              op->Finish(std::make_shared<WsTransport<NextLayer>>(
                  state, absl::StrCat(scheme, " ", peer), s.options.transport));
            });
      });
}

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_
