// File: symwire/transport/impl/ws_transport.hpp
// Layer 3, internal to ws.hpp and wss.hpp (through impl/ws_stream.hpp): the
// WebSocket Transport over one established connection, a template over
// the stream below the WebSocket layer (a TCP socket for ws://,
// asio::ssl::stream for wss://). The frames are parsed by the sans-I/O
// WsFrameParser (detail/ws_frame.hpp); this adapter owns the socket, the
// buffers, the ping budget, the masking keys and the closing handshake.
#ifndef SYMWIRE_TRANSPORT_IMPL_WS_TRANSPORT_HPP_
#define SYMWIRE_TRANSPORT_IMPL_WS_TRANSPORT_HPP_

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/stream_traits.hpp"
#include "boost/beast/websocket/stream.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/detail/ws_frame.hpp"
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

// Fills `out` from the kernel's CSPRNG (getrandom(2), which blocks only
// until the pool is first seeded at boot), retrying interrupted and short
// calls; std::random_device where getrandom fails (ENOSYS).
SYMWIRE_DECL void WsRandomBytes(std::span<uint8_t> out);

// WsMaskKeys
// The masking keys of a client's frames. RFC 6455 §5.3 requires each to be
// unpredictable, from a strong source of entropy (§10.3: so that a script
// cannot choose the bytes a proxy sees): they are taken from a buffer of
// kKeys keys that `fill` (WsRandomBytes; tests pass their own) refills, one
// system call per kKeys frames and none for a side that masks nothing.
class WsMaskKeys {
 public:
  static constexpr size_t kKeys = 64;
  using Fill = void (*)(std::span<uint8_t>);
  explicit WsMaskKeys(Fill fill = &WsRandomBytes) : fill_(fill) {}

  // The next 4-byte key; valid until the next call.
  const uint8_t* Next() {
    if (pos_ == buffer_.size()) {
      fill_(buffer_);
      pos_ = 0;
    }
    const uint8_t* key = buffer_.data() + pos_;
    pos_ += 4;
    return key;
  }

 private:
  std::array<uint8_t, 4 * kKeys> buffer_{};
  size_t pos_ = buffer_.size();
  Fill fill_;
};

// One WebSocket connection's stream. The Beast stream performs the HTTP
// upgrade; after it, WsTransport reads and writes RFC 6455 frames on the
// next layer itself (Beast's own message reads return at most one message
// each, which made every small message cost a wake-up: bench/README.md,
// "WebSocket and TLS").
template <class NextLayer>
struct WsState {
  // permessage-deflate is compiled out: it is never offered or accepted.
  using Stream = websocket::stream<NextLayer, false>;

  template <class... Args>
  explicit WsState(std::shared_ptr<void> keep, Args&&... args)
      : keep_alive(std::move(keep)), ws(std::forward<Args>(args)...) {}

  // What the next layer needs alive (the TLS context); declared before
  // the stream so that it outlives it.
  std::shared_ptr<void> keep_alive;
  Stream ws;

  void CloseSocket() {
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws).close(ignored);
  }
};

// The Transport over one established WebSocket connection (either role):
// SPEC.md §20.1. Reads go to the socket in large pieces and every whole
// frame buffered is parsed in one pass, so one transport read delivers the
// payloads of all the messages that arrived together, like a TCP read (an
// error found after some payload is delivered after it). Each write batch
// goes out as binary messages of at most max_write_message_bytes, each one
// frame, in one gather write (the client masks into one buffer). Control
// frames: pings are answered (within the ping budget, else 1008), pongs
// ignored, a close frame is answered with the same code and ends reading.
// This side closes with a close frame: 1000 for the graceful close
// (ShutdownSend), 1001 for an abrupt one (CloseStream), 1002 for a
// protocol error, 1003 for a text message, 1008 for a ping flood, 1009 for
// a message over the limit; then it waits (at most close_timeout) for the
// peer's close frame or end of stream before closing the socket.
template <class NextLayer>
class WsTransport final : public Transport {
 public:
  WsTransport(std::shared_ptr<WsState<NextLayer>> state,
              std::string description, TransportOptions options,
              const WsOptions& ws, bool client,
              std::span<const std::byte> initial = {})
      : Transport(state->ws.get_executor(), std::move(description), options),
        state_(std::move(state)),
        ws_(ws),
        close_timer_(state_->ws.get_executor()),
        ping_refill_(WsClock::now()),
        ping_tokens_(static_cast<double>(ws.ping_burst)),
        parser_(client, ws.max_read_message_bytes),
        client_(client) {
    // Frames that came with the upgrade's response.
    in_.assign(initial.begin(), initial.end());
    in_end_ = in_.size();
  }
  ~WsTransport() override { state_->CloseSocket(); }

 private:
  NextLayer& next() { return state_->ws.next_layer(); }
  asio::any_io_executor executor() { return state_->ws.get_executor(); }

  // ---- reading ----

  void AsyncReadSome(asio::mutable_buffer buffer) override {
    out_ = buffer;
    produced_ = 0;
    base_read_ = true;
    if (!read_error_ && in_pos_ == in_end_) {
      ReadSocket();
      return;
    }
    // Buffered frames or an error: delivered now, but not from inside
    // this call.
    asio::post(executor(), [self = shared_from_this(), this] { Continue(); });
  }

  // Parses what is buffered into out_, then delivers or reads more.
  void Continue() {
    if (stream_closed_) {
      DrainStep();
      return;
    }
    if (!base_read_) return;
    if (!read_error_) Parse();
    if (produced_ > 0 || read_error_) {
      Deliver();
      return;
    }
    ReadSocket();
  }

  void Deliver() {
    base_read_ = false;
    const size_t n = produced_;
    produced_ = 0;
    // An error goes after the data: on the next read.
    ReadDone(n > 0 ? boost::system::error_code() : read_error_, n);
  }

  void ReadSocket() {
    if (read_in_flight_) return;
    read_in_flight_ = true;
    const size_t room = discard_ ? 0 : out_.size() - produced_;
    if (!parse_stop_ && parser_.payload_remaining() >= kDirectRead &&
        room >= kDirectRead && in_pos_ == in_end_) {
      // Inside a large frame's payload: straight into the caller's buffer.
      std::byte* out = static_cast<std::byte*>(out_.data()) + produced_;
      const size_t want = static_cast<size_t>(
          std::min<uint64_t>(parser_.payload_remaining(), room));
      next().async_read_some(
          asio::buffer(out, want),
          [self = shared_from_this(), this, out](
              const boost::system::error_code& ec, size_t n) {
            read_in_flight_ = false;
            if (n > 0) {
              parser_.TakePayload(out, n);
              if (!stream_closed_) produced_ += n;
            }
            OnSocketRead(ec);
          });
      return;
    }
    if (parse_stop_) {
      in_pos_ = in_end_ = 0;  // draining after a protocol error: raw bytes
    } else if (in_pos_ > 0) {
      std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
      in_end_ -= in_pos_;
      in_pos_ = 0;
    }
    const size_t size = std::max(discard_ ? 0 : out_.size(), kMinInBuffer);
    if (in_.size() < size) in_.resize(size);
    next().async_read_some(
        asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
        [self = shared_from_this(), this](const boost::system::error_code& ec,
                                          size_t n) {
          read_in_flight_ = false;
          in_end_ += n;
          OnSocketRead(ec);
        });
  }

  void OnSocketRead(const boost::system::error_code& ec) {
    if (ec) {
      // The peer's end of stream, or a failure: the read side is over
      // once the bytes before it are parsed.
      peer_closed_ = true;
      if (!stream_closed_) Parse();
      parse_stop_ = true;
      if (!read_error_) read_error_ = ec;
    }
    Continue();
  }

  // Parses whole frame headers, control frames and payload from in_ into
  // out_ (discarded while draining), until out_ is full, more bytes are
  // needed, or an error or the peer's close frame stops it.
  void Parse() {
    while (!parse_stop_ && (discard_ || !read_error_)) {
      std::span<std::byte> out;
      if (!discard_) {
        out = std::span<std::byte>(
            static_cast<std::byte*>(out_.data()) + produced_,
            out_.size() - produced_);
      }
      const WsFrameParser::Step step = parser_.Parse(
          std::span<const std::byte>(in_.data() + in_pos_, in_end_ - in_pos_),
          out);
      in_pos_ += step.consumed;
      produced_ += step.produced;
      switch (step.kind) {
        case WsFrameParser::Step::Kind::kNeedMore:
        case WsFrameParser::Step::Kind::kOutputFull:
        case WsFrameParser::Step::Kind::kDone:
          return;
        case WsFrameParser::Step::Kind::kControl:
          OnControl(step);
          break;
        case WsFrameParser::Step::Kind::kError:
          OnParseError(step);
          return;
      }
    }
  }

  void OnParseError(const WsFrameParser::Step& step) {
    if (step.close_code == 1009) {
      Fail(1009, absl::StrCat("a message over ", ws_.max_read_message_bytes,
                              " bytes"));
    } else if (step.close_code != 1002) {
      Fail(step.close_code, step.reason);
    } else if (step.opcode == kWsOpClose && step.payload.size() >= 2) {
      Broken(absl::StrCat(step.reason, ": code ",
                          (std::to_integer<unsigned>(step.payload[0]) << 8) |
                              std::to_integer<unsigned>(step.payload[1])));
    } else {
      Broken(step.reason);
    }
  }

  void OnControl(const WsFrameParser::Step& step) {
    if (step.opcode == kWsOpPong) return;
    if (step.opcode == kWsOpPing) {
      if (close_queued_ || discard_) return;
      if (!TakePing()) {
        Fail(1008, "pings over the rate limit");
        return;
      }
      // Pongs not yet handed to the socket are superseded by this one
      // (RFC 6455 §5.5.3 allows answering only the latest ping): a peer that
      // pings within the rate limit but never reads cannot grow ctrl_, which
      // holds nothing else until our close is queued.
      ctrl_.clear();
      std::array<uint8_t, kWsMaxHeader> header{};
      const size_t n = WsEncodeHeader(kWsOpPong, step.payload.size(), NextKey(),
                                      header.data());
      AppendControl(header.data(), n, step.payload.data(), step.payload.size());
      StartWrite();
      return;
    }
    // A close frame (its code checked by the parser): the peer sends
    // nothing more.
    peer_closed_ = true;
    parse_stop_ = true;
    if (!read_error_) {
      read_error_ = boost::system::error_code(static_cast<int>(step.close_code),
                                              WsPeerCloseCategory());
    }
    QueueClose(step.close_code == 1005 ? 1000 : step.close_code, "");
  }

  // A protocol error: the framing can no longer be followed.
  void Broken(const std::string& why) {
    parse_stop_ = true;
    Fail(1002, why);
  }

  // Ends reading with `code` (sent in a close frame with `why` as reason).
  void Fail(uint16_t code, const std::string& why) {
    if (!read_error_) {
      read_error_ = boost::system::error_code(code, WsLocalCloseCategory());
    }
    QueueClose(code, why);
  }

  // The ping budget (WsOptions::ping_burst, pings_per_second).
  bool TakePing() {
    const WsClock::time_point now = WsClock::now();
    const double seconds =
        std::chrono::duration<double>(now - ping_refill_).count();
    ping_refill_ = now;
    ping_tokens_ = std::min(
        static_cast<double>(ws_.ping_burst),
        ping_tokens_ + seconds * static_cast<double>(ws_.pings_per_second));
    if (ping_tokens_ < 1) return false;
    ping_tokens_ -= 1;
    return true;
  }

  // ---- writing ----

  void AsyncWriteAll(std::span<const asio::const_buffer> buffers) override {
    if (close_queued_ || socket_closed_ || write_failed_) {
      asio::post(executor(), [self = shared_from_this(), this] {
        WriteDone(asio::error::operation_aborted, 0);
      });
      return;
    }
    data_ = buffers;
    data_waiting_ = true;
    StartWrite();
  }

  // A masking key for the next frame (client), or null (server); valid
  // until the next call.
  const uint8_t* NextKey() { return client_ ? keys_.Next() : nullptr; }

  void AppendControl(const uint8_t* header, size_t n, const std::byte* payload,
                     size_t len) {
    const size_t at = ctrl_.size();
    ctrl_.resize(at + n + len);
    std::memcpy(ctrl_.data() + at, header, n);
    if (len > 0) std::memcpy(ctrl_.data() + at + n, payload, len);
    if (client_) WsMask(ctrl_.data() + at + n, len, header + n - 4, 0);
  }

  // Queues our close frame (once) and bounds the closing handshake.
  void QueueClose(uint16_t code, const std::string& why) {
    if (close_queued_ || socket_closed_) return;
    close_queued_ = true;
    std::shared_ptr<Transport> self = weak_from_this().lock();
    if (!self) {
      // Closed while being destroyed: no closing handshake.
      CloseSocket();
      return;
    }
    std::array<std::byte, kWsMaxControlPayload> payload{};
    payload[0] = std::byte{static_cast<uint8_t>(code >> 8)};
    payload[1] = std::byte{static_cast<uint8_t>(code)};
    const size_t reason = std::min(why.size(), kWsMaxControlPayload - 2);
    std::memcpy(payload.data() + 2, why.data(), reason);
    std::array<uint8_t, kWsMaxHeader> header{};
    const size_t n =
        WsEncodeHeader(kWsOpClose, 2 + reason, NextKey(), header.data());
    close_end_ = ctrl_.size() + n + 2 + reason;
    AppendControl(header.data(), n, payload.data(), 2 + reason);
    close_timer_.expires_after(ws_.close_timeout);
    close_timer_.async_wait(
        [self = std::move(self), this](const boost::system::error_code& ec) {
          if (!ec) CloseSocket();
        });
    StartWrite();
  }

  // Starts one gather write of the waiting data (as binary messages) and
  // then the queued control frames, unless a write is in flight.
  void StartWrite() {
    if (writing_ || socket_closed_ || write_failed_) return;
    iov_.clear();
    size_t data_bytes = 0;
    if (data_waiting_) {
      data_waiting_ = false;
      data_in_flight_ = true;
      data_bytes = EncodeData();
    }
    bool carries_close = false;
    if (!ctrl_.empty()) {
      ctrl_flight_.swap(ctrl_);
      ctrl_.clear();
      iov_.emplace_back(ctrl_flight_.data(), ctrl_flight_.size());
      carries_close = close_end_ != 0;
      close_end_ = 0;
    }
    if (iov_.empty()) return;
    writing_ = true;
    asio::async_write(
        next(), iov_,
        [this, last = size_t{0}](const boost::system::error_code& ec,
                                 size_t n) mutable -> size_t {
          if (n != last) {
            last = n;
            NoteWriteProgress();
          }
          return ec ? 0 : size_t{65536};
        },
        [self = shared_from_this(), this, data_bytes, carries_close](
            const boost::system::error_code& ec, size_t) {
          writing_ = false;
          ctrl_flight_.clear();
          if (carries_close && !ec) close_written_ = true;
          if (ec) write_failed_ = true;
          if (data_in_flight_) {
            data_in_flight_ = false;
            WriteDone(ec, ec ? 0 : data_bytes);
          }
          if (ec) {
            CloseSocket();
            return;
          }
          StartWrite();
          MaybeFinish();
        });
  }

  // Appends the waiting data to iov_ as binary messages; returns its size.
  size_t EncodeData() {
    size_t total = 0;
    for (const asio::const_buffer& b : data_) total += b.size();
    const size_t limit = std::max<size_t>(ws_.max_write_message_bytes, 1);
    const size_t messages = (total + limit - 1) / limit;
    size_t index = 0;
    size_t offset = 0;
    if (client_) {
      // Masked: copied into one buffer, then masked in place.
      wbuf_.resize(total + messages * kWsMaxHeader);
      auto* w = reinterpret_cast<uint8_t*>(wbuf_.data());
      size_t at = 0;
      for (size_t left = total; left > 0;) {
        const size_t m = std::min(left, limit);
        const uint8_t* key = NextKey();
        at += WsEncodeHeader(kWsOpBinary, m, key, w + at);
        const size_t start = at;
        for (size_t need = m; need > 0;) {
          const asio::const_buffer b = data_[index] + offset;
          const size_t take = std::min(need, b.size());
          std::memcpy(w + at, b.data(), take);
          at += take;
          need -= take;
          offset += take;
          if (offset == data_[index].size()) {
            ++index;
            offset = 0;
          }
        }
        WsMask(wbuf_.data() + start, m, key, 0);
        left -= m;
      }
      iov_.emplace_back(wbuf_.data(), at);
      return total;
    }
    headers_.resize(messages * kWsMaxHeader);
    auto* h = reinterpret_cast<uint8_t*>(headers_.data());
    size_t message = 0;
    for (size_t left = total; left > 0; ++message) {
      const size_t m = std::min(left, limit);
      uint8_t* header = h + message * kWsMaxHeader;
      iov_.emplace_back(header,
                        WsEncodeHeader(kWsOpBinary, m, nullptr, header));
      for (size_t need = m; need > 0;) {
        const asio::const_buffer b = data_[index] + offset;
        const size_t take = std::min(need, b.size());
        if (take > 0) iov_.emplace_back(b.data(), take);
        need -= take;
        offset += take;
        if (offset == data_[index].size()) {
          ++index;
          offset = 0;
        }
      }
      left -= m;
    }
    return total;
  }

  // ---- closing ----

  // Graceful close (the last data is written): our close frame (1000);
  // the Transport reads on until the peer's close frame ends the read.
  void ShutdownSend() override { QueueClose(1000, ""); }

  // The Transport is done with the connection: a close frame (1001) if
  // none was sent or received, then the socket closes once the closing
  // handshake ends (MaybeFinish), within close_timeout.
  void CloseStream() override {
    if (stream_closed_) return;
    stream_closed_ = true;
    discard_ = true;
    parser_.Discard();
    if (!peer_closed_) QueueClose(1001, "");
    MaybeFinish();
  }

  // After CloseStream: closes the socket once our close frame is written
  // and the peer's close frame (or end of stream) has arrived; until then
  // reads and discards, having half-closed TCP after our close frame.
  void MaybeFinish() {
    if (!stream_closed_ || socket_closed_) return;
    if (close_queued_ && !close_written_) return;  // the write continues
    if (peer_closed_) {
      CloseSocket();
      return;
    }
    if (!shut_) {
      shut_ = true;
      boost::system::error_code ignored;
      beast::get_lowest_layer(state_->ws)
          .shutdown(asio::socket_base::shutdown_send, ignored);
    }
    DrainStep();
  }

  void DrainStep() {
    if (socket_closed_) return;
    if (base_read_) {
      // The Transport is closed: its read ends unheard.
      base_read_ = false;
      produced_ = 0;
      ReadDone(asio::error::operation_aborted, 0);
    }
    Parse();
    if (peer_closed_) {
      MaybeFinish();
      return;
    }
    ReadSocket();
  }

  void CloseSocket() {
    socket_closed_ = true;
    close_timer_.cancel();
    state_->CloseSocket();
  }

  static constexpr size_t kDirectRead = 512;
  static constexpr size_t kMinInBuffer = 512;

  std::shared_ptr<WsState<NextLayer>> state_;
  WsOptions ws_;
  asio::steady_timer close_timer_;
  WsClock::time_point ping_refill_;
  double ping_tokens_;
  WsFrameParser parser_;
  // Reading: bytes read and not parsed are in_[in_pos_, in_end_); the
  // Transport's buffer out_ has produced_ payload bytes.
  asio::mutable_buffer out_;
  std::vector<std::byte> in_;
  size_t in_pos_ = 0;
  size_t in_end_ = 0;
  size_t produced_ = 0;
  boost::system::error_code read_error_;  // delivered after the data
  // Writing: the Transport's batch (data_), control frames queued (ctrl_)
  // and in flight.
  std::span<const asio::const_buffer> data_;
  std::vector<asio::const_buffer> iov_;
  std::vector<std::byte> wbuf_;     // client: headers and masked payload
  std::vector<std::byte> headers_;  // server: one header per message
  std::vector<std::byte> ctrl_;
  std::vector<std::byte> ctrl_flight_;
  WsMaskKeys keys_;       // client: its frames' masking keys
  size_t close_end_ = 0;  // ctrl_ holds our close frame (its end) if not 0
  bool client_;
  bool base_read_ = false;  // an AsyncReadSome has not completed
  bool read_in_flight_ = false;
  bool parse_stop_ = false;   // a protocol error, the peer's close or end
  bool discard_ = false;      // after CloseStream: payload is dropped
  bool peer_closed_ = false;  // the peer's close frame or end of stream
  bool data_waiting_ = false;
  bool data_in_flight_ = false;
  bool writing_ = false;
  bool write_failed_ = false;
  bool close_queued_ = false;
  bool close_written_ = false;
  bool stream_closed_ = false;  // CloseStream ran
  bool shut_ = false;           // TCP half-closed
  bool socket_closed_ = false;
};

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_WS_TRANSPORT_HPP_
