// File: symwire/transport/impl/ws_stream.hpp
// Layer 3, internal to ws.hpp and wss.hpp: the WebSocket Transport and the
// client and server upgrades as templates over the stream below the
// WebSocket layer (a TCP socket for ws://, asio::ssl::stream for wss://),
// instantiated by impl/ws.ipp and impl/wss.ipp. SPEC.md §20.1 is the
// mapping implemented here.
#ifndef SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_
#define SYMWIRE_TRANSPORT_IMPL_WS_STREAM_HPP_

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
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

// RFC 6455 §5.2 frame fields.
inline constexpr uint8_t kWsFin = 0x80;
inline constexpr uint8_t kWsRsv = 0x70;
inline constexpr uint8_t kWsMaskBit = 0x80;
inline constexpr uint8_t kWsOpContinuation = 0x0;
inline constexpr uint8_t kWsOpText = 0x1;
inline constexpr uint8_t kWsOpBinary = 0x2;
inline constexpr uint8_t kWsOpClose = 0x8;
inline constexpr uint8_t kWsOpPing = 0x9;
inline constexpr uint8_t kWsOpPong = 0xA;
inline constexpr size_t kWsMaxHeader = 14;
inline constexpr size_t kWsMaxControlPayload = 125;

// Writes the header of a final frame with opcode `op` and `length` payload
// bytes into `out` (kWsMaxHeader bytes of room), masked with `key` when
// not null; returns its size.
inline size_t WsEncodeHeader(uint8_t op, uint64_t length, const uint8_t* key,
                             uint8_t* out) {
  out[0] = static_cast<uint8_t>(kWsFin | op);
  const uint8_t mask = key != nullptr ? kWsMaskBit : 0;
  size_t n = 2;
  if (length < 126) {
    out[1] = static_cast<uint8_t>(mask | length);
  } else if (length <= 0xFFFF) {
    out[1] = static_cast<uint8_t>(mask | 126);
    out[2] = static_cast<uint8_t>(length >> 8);
    out[3] = static_cast<uint8_t>(length);
    n = 4;
  } else {
    out[1] = static_cast<uint8_t>(mask | 127);
    for (int i = 0; i < 8; ++i) {
      out[2 + i] = static_cast<uint8_t>(length >> (56 - 8 * i));
    }
    n = 10;
  }
  if (key != nullptr) {
    std::memcpy(out + n, key, 4);
    n += 4;
  }
  return n;
}

// XORs `size` bytes at `data` with the masking key `key`, the first byte
// with key[pos] (RFC 6455 §5.3); returns the key position after them.
inline size_t WsMask(std::byte* data, size_t size, const uint8_t* key,
                     size_t pos) {
  std::array<uint8_t, 8> k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = key[(pos + i) & 3];
  uint64_t k64 = 0;
  std::memcpy(&k64, k.data(), sizeof(k64));
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, data + i, sizeof(w));
    w ^= k64;
    std::memcpy(data + i, &w, sizeof(w));
  }
  for (; i < size; ++i) data[i] ^= std::byte{k[i & 7]};
  return (pos + size) & 3;
}

// True for the close codes a close frame may carry (RFC 6455 §7.4).
inline bool WsValidCloseCode(unsigned code) {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 &&
         code != 1006;
}

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
        client_(client) {
    if (client_) {
      std::random_device rd;
      rng_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
      if (rng_ == 0) rng_ = 0x9E3779B97F4A7C15ULL;
    }
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
    if (!parse_stop_ && frame_remain_ >= kDirectRead && room >= kDirectRead &&
        in_pos_ == in_end_) {
      // Inside a large frame's payload: straight into the caller's buffer.
      std::byte* out = static_cast<std::byte*>(out_.data()) + produced_;
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(frame_remain_, room));
      next().async_read_some(
          asio::buffer(out, want),
          [self = shared_from_this(), this, out](
              const boost::system::error_code& ec, size_t n) {
            read_in_flight_ = false;
            if (n > 0) {
              if (masked_) key_pos_ = WsMask(out, n, key_.data(), key_pos_);
              frame_remain_ -= n;
              if (!stream_closed_) produced_ += n;
              if (frame_remain_ == 0 && frame_fin_) in_message_ = false;
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
      const size_t avail = in_end_ - in_pos_;
      if (frame_remain_ > 0) {
        if (avail == 0) return;
        size_t take =
            static_cast<size_t>(std::min<uint64_t>(avail, frame_remain_));
        if (!discard_) {
          take = std::min(take, out_.size() - produced_);
          if (take == 0) return;
          std::byte* out = static_cast<std::byte*>(out_.data()) + produced_;
          std::memcpy(out, in_.data() + in_pos_, take);
          if (masked_) key_pos_ = WsMask(out, take, key_.data(), key_pos_);
          produced_ += take;
        }
        in_pos_ += take;
        frame_remain_ -= take;
        if (frame_remain_ == 0 && frame_fin_) in_message_ = false;
        continue;
      }
      if (avail < 2) return;
      const auto* p = reinterpret_cast<const uint8_t*>(in_.data() + in_pos_);
      const bool fin = (p[0] & kWsFin) != 0;
      const uint8_t op = p[0] & 0x0F;
      const bool masked = (p[1] & kWsMaskBit) != 0;
      uint64_t len = p[1] & 0x7F;
      const size_t header = size_t{2} + (len == 126 ? 2U : 0U) +
                            (len == 127 ? 8U : 0U) + (masked ? 4U : 0U);
      if (avail < header) return;
      if (len == 126) {
        len = (uint64_t{p[2]} << 8) | p[3];
        if (len < 126) return Broken("a 16-bit payload length below 126");
      } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
        if ((len >> 63) != 0 || len <= 0xFFFF) {
          return Broken("a 64-bit payload length not in 65536..2^63-1");
        }
      }
      if ((p[0] & kWsRsv) != 0) {
        return Broken("reserved bits set (no extension was negotiated)");
      }
      if (masked == client_) {
        return Broken(client_ ? "a masked frame from the server"
                              : "an unmasked frame from the client");
      }
      std::array<uint8_t, 4> key{};
      if (masked) std::memcpy(key.data(), p + header - 4, 4);
      if ((op & 0x8) != 0) {
        if (op != kWsOpClose && op != kWsOpPing && op != kWsOpPong) {
          return Broken("an unknown control opcode");
        }
        if (!fin || len > kWsMaxControlPayload) {
          return Broken("a fragmented or oversized control frame");
        }
        if (avail < header + len) return;  // control frames are taken whole
        std::array<std::byte, kWsMaxControlPayload> payload{};
        std::memcpy(payload.data(), p + header, static_cast<size_t>(len));
        if (masked) WsMask(payload.data(), len, key.data(), 0);
        in_pos_ += header + static_cast<size_t>(len);
        OnControl(op, payload.data(), static_cast<size_t>(len));
        continue;
      }
      if (op == kWsOpContinuation) {
        if (!in_message_)
          return Broken("a continuation frame outside a message");
      } else if (op == kWsOpText || op == kWsOpBinary) {
        if (in_message_) return Broken("a new message inside a fragmented one");
        message_bytes_ = 0;
      } else {
        return Broken("an unknown data opcode");
      }
      in_pos_ += header;
      frame_remain_ = len;
      frame_fin_ = fin;
      masked_ = masked;
      key_ = key;
      key_pos_ = 0;
      in_message_ = !(fin && len == 0);
      if (op == kWsOpText && !discard_) {
        // SPEC.md §20.1: nothing of a text message reaches the session.
        return Fail(1003, "symwire travels in binary messages");
      }
      if (len > ws_.max_read_message_bytes - message_bytes_) {
        message_bytes_ = ws_.max_read_message_bytes;
        if (!discard_) {
          return Fail(1009, absl::StrCat("a message over ",
                                         ws_.max_read_message_bytes, " bytes"));
        }
      } else {
        message_bytes_ += static_cast<size_t>(len);
      }
    }
  }

  void OnControl(uint8_t op, const std::byte* payload, size_t len) {
    if (op == kWsOpPong) return;
    if (op == kWsOpPing) {
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
      const size_t n = WsEncodeHeader(kWsOpPong, len, NextKey(), header.data());
      AppendControl(header.data(), n, payload, len);
      StartWrite();
      return;
    }
    // A close frame: the peer sends nothing more.
    unsigned code = 1005;  // RFC 6455 §7.1.5: no status code present
    if (len == 1) return Broken("a close frame with a 1-byte payload");
    if (len >= 2) {
      code = (std::to_integer<unsigned>(payload[0]) << 8) |
             std::to_integer<unsigned>(payload[1]);
      if (!WsValidCloseCode(code)) {
        return Broken(absl::StrCat("close code ", code, " is not allowed"));
      }
    }
    peer_closed_ = true;
    parse_stop_ = true;
    if (!read_error_) {
      read_error_ = boost::system::error_code(static_cast<int>(code),
                                              WsPeerCloseCategory());
    }
    QueueClose(code == 1005 ? 1000 : static_cast<uint16_t>(code), "");
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

  // A masking key for the next frame (client), or null (server).
  const uint8_t* NextKey() {
    if (!client_) return nullptr;
    // xorshift64*: unpredictable enough that a peer cannot choose what
    // the masked bytes look like on the wire (RFC 6455 §10.3).
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    const uint64_t v = rng_ * 0x2545F4914F6CDD1DULL;
    std::memcpy(next_key_.data(), &v, 4);
    return next_key_.data();
  }

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
  uint64_t rng_ = 0;
  // Reading: bytes read and not parsed are in_[in_pos_, in_end_); the
  // Transport's buffer out_ has produced_ payload bytes.
  asio::mutable_buffer out_;
  std::vector<std::byte> in_;
  size_t in_pos_ = 0;
  size_t in_end_ = 0;
  size_t produced_ = 0;
  uint64_t frame_remain_ = 0;  // payload bytes left in the current frame
  size_t message_bytes_ = 0;   // payload of the current message so far
  size_t key_pos_ = 0;
  boost::system::error_code read_error_;  // delivered after the data
  // Writing: the Transport's batch (data_), control frames queued (ctrl_)
  // and in flight.
  std::span<const asio::const_buffer> data_;
  std::vector<asio::const_buffer> iov_;
  std::vector<std::byte> wbuf_;     // client: headers and masked payload
  std::vector<std::byte> headers_;  // server: one header per message
  std::vector<std::byte> ctrl_;
  std::vector<std::byte> ctrl_flight_;
  size_t close_end_ = 0;  // ctrl_ holds our close frame (its end) if not 0
  std::array<uint8_t, 4> key_{};
  std::array<uint8_t, 4> next_key_{};
  bool client_;
  bool frame_fin_ = false;
  bool masked_ = false;
  bool in_message_ = false;  // a data message is open (fragmented)
  bool base_read_ = false;   // an AsyncReadSome has not completed
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
