// File: symwire/transport/transport.hpp
// Layer 3. Transport: one connected byte stream of any kind (TCP, Unix
// socket, TLS, pipes, the in-memory pipe), type-erased behind a small
// buffered interface that the session driver (runtime.hpp) talks to.
// MakeTransport wraps any Asio stream; adding an adapter means writing a
// function that produces a connected Asio stream, nothing more (STYLE.md §1:
// adapters never touch the codec or the session).
//
// Batches, copies and references. Bytes are queued into a pending batch,
// and a write takes the whole batch at once: while one write is in flight
// everything the session produces accumulates into the next one, so a busy
// connection sends many frames per system call (write coalescing) and an
// idle one sends each batch at once. Most Session::PollTransmit spans stay
// valid only until the session's next input, so Queue copies them (a
// memcpy of bytes hot in cache). Spans of the session's replay store come
// with a reference that keeps them valid (Session::PollTransmit(owner)),
// and QueueShared takes those by reference when they are large enough for
// a copy to cost more than an extra iovec: the batch is then a gather list
// of copied and referenced pieces, and a stream of large frames is written
// straight from the replay store. What is queued is bounded because the
// session bounds what it produces (the replay window plus coalesced
// control frames).
//
// Why type erasure rather than a Driver<Stream> template (STYLE.md §2
// sketches transport/driver.hpp and concepts.hpp): the driver (Channel,
// runtime/channel.hpp) and Client/Server then compile once, in
// src/symwire_transport.cpp, instead of in every program that names a
// stream type (Asio costs seconds per translation unit), and a server can
// hold sessions over different transports side by side. The price is one
// virtual call per read and per write batch, which is noise next to the
// system call it wraps.
//
// Thread-safety: a Transport is used only on its executor's thread (like
// an Asio socket). Every callback into the Sink runs there.
#ifndef SYMWIRE_TRANSPORT_TRANSPORT_HPP_
#define SYMWIRE_TRANSPORT_TRANSPORT_HPP_

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/buffer.hpp"
#include "boost/asio/error.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/system/error_code.hpp"
#include "symwire/config.hpp"

namespace symwire {

namespace asio = boost::asio;

// TransportOptions
struct TransportOptions {
  // Bytes read per system call at most. The buffer starts at 4 KiB and
  // grows (x4) up to this while reads fill it, so idle connections stay
  // cheap.
  size_t read_buffer_bytes = size_t{64} * 1024;
  // Bounded spin-before-block reads (latency mode, off by default). After
  // each batch of input the transport retries a non-blocking read for up
  // to this long before arming an asynchronous read. On a machine where
  // waking an idle core costs tens of microseconds this trades CPU for
  // round-trip latency. Streams without a non-blocking read (TLS, the
  // in-memory pipe) ignore it.
  std::chrono::microseconds spin_read{0};
  // Write-progress timeout (issue #11): while bytes wait to be written and
  // no write has made progress (no byte accepted by the stream) for this
  // long, the connection ends with PEER_UNRESPONSIVE (kDeadlineExceeded, a
  // connection-scope error: the session resumes on a new connection). It
  // catches a peer that keeps its connection alive but never reads, which
  // would otherwise hold our output, and the session's replay buffer,
  // forever. A reader that pauses longer than this on purpose (back-
  // pressure from a consumer that does not take its responses) sees its
  // connection cycled and resumed; nothing is lost. Over pipes (stdio, a
  // child process), which cannot be redialled, it ends the session: raise
  // it, or set zero, if that peer may block its event loop that long.
  // Detected this long after the last progress (one timer per connection,
  // re-armed only when it fires). Zero disables it.
  std::chrono::milliseconds write_progress_timeout{30000};
  // Unix-domain stream sockets only (UnixDialer and Server::ListenUnix
  // set it on both ends): SO_SNDBUF, which on a Unix socket bounds the
  // bytes written but not yet read by the peer. Unlike TCP's, it does not
  // grow on its own: at the system default (net.core.wmem_default, 208 KiB
  // on Debian) a 16 KiB stream made the writer wait for the reader every
  // dozen frames, at two thirds of the rate 1 MiB gives (bench/README.md,
  // "Unix sockets: the send buffer"). Memory is charged only for bytes
  // waiting; the kernel caps the value at net.core.wmem_max. 0 keeps the
  // system default.
  int unix_send_buffer_bytes = 1 << 20;
};

// TransportCounters
// What the transport did, for observability and for the benchmarks.
struct TransportCounters {
  uint64_t reads = 0;   // completed read calls that returned bytes
  uint64_t writes = 0;  // completed write batches
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t spin_hits = 0;  // reads satisfied by the spin loop
  // Connections ended by TransportOptions::write_progress_timeout.
  uint64_t write_timeouts = 0;
};

// ToStatus
// Converts an Asio/system error into a Status with ErrorCode
// CONNECTION_LOST (kUnavailable) and a message naming `what` and the
// error. End of stream becomes "… closed by peer".
SYMWIRE_DECL absl::Status ToStatus(const boost::system::error_code& ec,
                                   std::string_view what);

// Transport
// Create with MakeTransport (or an adapter's connect/accept helper). The
// object is shared: pending operations hold a reference, so it may be
// released at any time after Close().
class SYMWIRE_API Transport : public std::enable_shared_from_this<Transport> {
 public:
  // Sink
  // Receives what the transport reads and when it ends. Runs on the
  // executor. A sink may call any Transport method from these callbacks.
  class Sink {
   public:
    // OnTransportData: bytes read; the span is valid during the call only.
    virtual void OnTransportData(Transport& transport,
                                 absl::Span<const std::byte> bytes) = 0;
    // OnTransportClosed: the stream ended (peer close, error, or Close());
    // called once per transport, after which no other callback comes.
    virtual void OnTransportClosed(Transport& transport,
                                   const absl::Status& status) = 0;
    // OnTransportDrained: asked for by NotifyWhenDrained; the bytes that
    // were queued behind a write in flight have gone to the system
    // (pending_bytes() is 0 again). Not called for a closed transport.
    virtual void OnTransportDrained(Transport& /*transport*/) {}

   protected:
    virtual ~Sink() = default;
  };

  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  SYMWIRE_DECL virtual ~Transport();

  const asio::any_io_executor& executor() const { return executor_; }
  // "tcp 127.0.0.1:7000", "unix /run/agent.sock", "memory", ...
  const std::string& description() const { return description_; }

  // Start
  // Attaches `sink` and begins reading. REQUIRES: not started yet.
  SYMWIRE_DECL void Start(Sink* sink);

  // SetSink
  // Re-targets callbacks (a server handing a resumed connection to the
  // session it belongs to), or detaches with nullptr: bytes read while
  // detached are dropped and the close is not reported.
  void SetSink(Sink* sink) { sink_ = sink; }
  Sink* sink() const { return sink_; }

  // Queue / QueueShared / Flush / Send
  // Queue appends `bytes` (copied) to the pending batch; QueueShared
  // appends bytes that stay valid and unchanged while `owner` is held,
  // by reference when there are at least kMinSharedBytes of them (else
  // copied); Flush starts a write of the batch unless one is in flight
  // (then the batch goes when it completes); Send is Queue and Flush.
  // Ignored once closing.
  static constexpr size_t kMinSharedBytes = 2048;
  SYMWIRE_DECL void Queue(absl::Span<const std::byte> bytes);
  SYMWIRE_DECL void QueueShared(absl::Span<const std::byte> bytes,
                                std::shared_ptr<const void> owner);
  SYMWIRE_DECL void Flush();
  void Send(absl::Span<const std::byte> bytes) {
    Queue(bytes);
    Flush();
  }

  // CloseAfterFlush
  // Graceful close: writes what is queued, half-closes for sending, and
  // discards what still arrives until the peer closes too or `linger`
  // passes (closing with unread input would make the kernel send a reset,
  // which can destroy the bytes just written before the peer reads them).
  // Reported to the sink (if one is still attached) as OK.
  SYMWIRE_DECL void CloseAfterFlush(
      std::chrono::milliseconds linger = std::chrono::milliseconds(1000));

  // Close
  // Closes now, dropping queued bytes; `status` is what the sink is told.
  SYMWIRE_DECL void Close(const absl::Status& status = absl::OkStatus());

  // MoveTo
  // Moves the connection to a new Transport on `executor` (another
  // io_context: a sharded Server hands a resuming connection to the shard
  // that owns its session, runtime/server.hpp) and returns it, not started.
  // This transport is left closed; its sink is not told. Call on this
  // transport's executor, between reads (from OnTransportData, or before
  // Start). Bytes already delivered stay delivered; the next read is the
  // new transport's.
  // Errors: kUnimplemented when the stream cannot move (only plain TCP and
  // Unix-domain sockets can: not TLS, not memory pipes); kFailedPrecondition
  // when bytes are queued or being written (queued_bytes() != 0); kUnavailable
  // (CONNECTION_LOST) when closed or the socket fails.
  SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Transport>> MoveTo(
      const asio::any_io_executor& executor);

  // LimitReadBuffer
  // Caps the read buffer at `bytes` (at least 1; it never shrinks below
  // what it is): a server keeps connections whose session is not
  // established at the initial 4 KiB, so an unauthenticated peer cannot
  // make it grow (issue #11). SIZE_MAX lifts the cap (back to
  // TransportOptions::read_buffer_bytes).
  SYMWIRE_DECL void LimitReadBuffer(size_t bytes);
  static constexpr size_t kInitialReadBuffer = 4096;

  // WriteInPieces
  // The next `total_bytes` bytes written go out in writes of at most
  // `piece_bytes` each (then writes take whole batches again). The runtime
  // uses it for the frames replayed after a resume (issue #11): on TLS one
  // write is one record, which the peer can only decrypt whole, so over
  // connections that die every few KiB one large write would never arrive;
  // small pieces deliver something on every connection. Not for normal
  // traffic: each piece is a system call.
  SYMWIRE_DECL void WriteInPieces(size_t piece_bytes, uint64_t total_bytes);

  // PauseReading / ResumeReading
  // Flow control towards the peer: while paused no read is started (one
  // already in flight still delivers), so the kernel's buffers fill and
  // the peer's writes block.
  void PauseReading() { paused_ = true; }
  SYMWIRE_DECL void ResumeReading();
  bool reading_paused() const { return paused_; }

  bool is_open() const { return !closed_; }
  // Bytes queued and not yet written (the pending batch plus the one in
  // flight).
  size_t pending_bytes() const { return pending_.total; }
  size_t queued_bytes() const { return pending_.total + writing_.total; }
  // NotifyWhenDrained
  // The sink's OnTransportDrained is called once, the next time a write
  // completes and leaves no pending batch behind it (the pending one, if
  // any, has started); never once the transport is closed.
  void NotifyWhenDrained() { drain_wanted_ = true; }
  // True from NotifyWhenDrained until the sink has been told (never, once
  // the transport is closed).
  bool drain_notice_wanted() const { return drain_wanted_; }
  const TransportCounters& counters() const { return counters_; }

 protected:
  SYMWIRE_DECL Transport(asio::any_io_executor executor,
                         std::string description, TransportOptions options);

  // The stream primitives an adapter implements. Each asynchronous one
  // completes by calling ReadDone / WriteDone exactly once, on the
  // executor, keeping `shared_from_this()` alive until then.
  virtual void AsyncReadSome(asio::mutable_buffer buffer) = 0;
  // `buffers` stays valid until WriteDone.
  virtual void AsyncWriteAll(std::span<const asio::const_buffer> buffers) = 0;
  // A non-blocking read; return 0 with would_block when nothing is there.
  // The default says "unsupported" and disables the spin mode.
  virtual size_t TryReadSome(asio::mutable_buffer buffer,
                             boost::system::error_code& ec) {
    static_cast<void>(buffer);
    ec = asio::error::operation_not_supported;
    return 0;
  }
  // Half-close for sending after the last byte (graceful close); closing
  // the stream. Neither may throw.
  virtual void ShutdownSend() {}
  virtual void CloseStream() = 0;
  // MoveStream: MoveTo's part that is the stream's: releases the socket
  // into a new transport on `executor`; null with `ec` clear when the
  // stream cannot move (the default).
  virtual std::shared_ptr<Transport> MoveStream(
      const asio::any_io_executor& executor, const std::string& description,
      const TransportOptions& options, boost::system::error_code& ec) {
    static_cast<void>(executor);
    static_cast<void>(description);
    static_cast<void>(options);
    ec.clear();
    return nullptr;
  }

  SYMWIRE_DECL void ReadDone(const boost::system::error_code& ec, size_t n);
  SYMWIRE_DECL void WriteDone(const boost::system::error_code& ec, size_t n);
  // NoteWriteProgress: an adapter whose AsyncWriteAll takes several system
  // calls reports each one that wrote bytes (write_progress_timeout);
  // otherwise only completed writes count as progress.
  void NoteWriteProgress() {
    last_write_progress_ = std::chrono::steady_clock::now();
  }

 private:
  void ReadMore();
  void StartWrite();
  void WriteSome();
  void ArmWriteTimer();
  void BeginLinger();
  void Report(const absl::Status& status);

  asio::any_io_executor executor_;
  std::string description_;
  TransportOptions options_;
  Sink* sink_ = nullptr;
  std::vector<std::byte> read_buffer_;
  // A write batch: pieces in order, each copied into `bytes` or referenced
  // (kept alive by `owners`).
  struct Batch {
    struct Piece {
      const std::byte* ref = nullptr;  // nullptr: bytes[offset, +size)
      size_t offset = 0;
      size_t size = 0;
    };
    std::vector<std::byte> bytes;
    std::vector<Piece> pieces;
    std::vector<std::shared_ptr<const void>> owners;
    size_t total = 0;
    bool empty() const { return total == 0; }
    SYMWIRE_DECL void Clear();
  };
  Batch pending_;
  Batch writing_;
  std::vector<asio::const_buffer> iov_;        // writing_ as buffers
  std::vector<asio::const_buffer> piece_iov_;  // one piece of it
  size_t write_pos_ = 0;                       // bytes of writing_ written
  size_t piece_bytes_ = 0;                     // WriteInPieces
  uint64_t piece_budget_ = 0;
  size_t read_buffer_limit_ = SIZE_MAX;  // LimitReadBuffer
  // write_progress_timeout: the last time a write made progress (or began
  // after none was in flight), and the one timer that checks it.
  std::chrono::steady_clock::time_point last_write_progress_;
  std::unique_ptr<asio::steady_timer> write_timer_;
  bool write_timer_armed_ = false;
  TransportCounters counters_;
  std::unique_ptr<asio::steady_timer> linger_timer_;
  std::chrono::milliseconds linger_{1000};
  bool started_ = false;
  bool reading_ = false;
  bool paused_ = false;
  bool write_in_flight_ = false;
  bool close_after_flush_ = false;  // no more Queue; close when written
  bool lingering_ = false;          // half-closed, discarding input
  bool closed_ = false;             // the stream is closed
  bool reported_ = false;           // the sink was told
  bool drain_wanted_ = false;       // NotifyWhenDrained
};

namespace detail {

template <class Stream>
void CloseAnyStream(Stream& stream) {
  boost::system::error_code ignored;
  if constexpr (requires { stream.lowest_layer(); }) {
    stream.lowest_layer().close(ignored);
  } else {
    stream.close(ignored);
  }
}

// StreamTransport: the Transport over one Asio stream.
template <class Stream>
class StreamTransport final : public Transport {
 public:
  StreamTransport(Stream stream, std::string description,
                  TransportOptions options)
      : Transport(stream.get_executor(), std::move(description), options),
        stream_(std::move(stream)) {}
  ~StreamTransport() override { CloseAnyStream(stream_); }

  Stream& stream() { return stream_; }

 private:
  void AsyncReadSome(asio::mutable_buffer buffer) override {
    stream_.async_read_some(buffer, [self = shared_from_this(), this](
                                        const boost::system::error_code& ec,
                                        size_t n) { ReadDone(ec, n); });
  }
  // A plain socket (TCP, Unix): the batch goes out in sendmsg calls of up
  // to kMaxIov buffers each, one after another while the socket takes
  // bytes, all in one executor turn; only a full socket buffer waits (for
  // writability). Asio's async_write instead gives each write_some at most
  // 64 buffers and completes each one in an executor turn of its own (an
  // epoll_wait and a handler): a gather batch of referenced payloads
  // (header, payload and trailer per frame) then went out 21 frames per
  // system call, and the receiver, woken per call, slept and woke three
  // times as often as with the copying path's contiguous blocks.
  static constexpr bool kGatherWrite =
      requires(Stream & s, boost::system::error_code& e) {
    typename Stream::protocol_type;
    { s.native_handle() } -> std::convertible_to<int>;
    s.non_blocking(true, e);
    s.async_wait(Stream::wait_write, [](const boost::system::error_code&) {});
  };
  static constexpr size_t kMaxIov = 1024;  // Linux's IOV_MAX
  static constexpr size_t kMaxWriteSomeBytes = size_t{1} << 20;

  void AsyncWriteAll(std::span<const asio::const_buffer> buffers) override {
    if constexpr (kGatherWrite) {
      gather_ = buffers;
      gather_at_ = 0;
      gather_skip_ = 0;
      gather_done_ = 0;
      GatherWrite(true);
    } else {
      // Other streams (TLS, pipes): Asio's composed write.
      // The completion condition runs before each write_some: every call
      // after one that wrote bytes is progress (write_progress_timeout).
      // Each write_some may take up to kMaxWriteSomeBytes (Asio's own
      // transfer_all stops at 64 KiB): every write_some that completes is one
      // more executor turn (and epoll_wait) before the next, so a large
      // batch goes in as few system calls as the socket buffer allows.
      asio::async_write(
          stream_, buffers,
          [this, last = size_t{0}](const boost::system::error_code& ec,
                                   size_t n) mutable -> size_t {
            if (n != last) {
              last = n;
              NoteWriteProgress();
            }
            return ec ? 0 : kMaxWriteSomeBytes;
          },
          [self = shared_from_this(), this](const boost::system::error_code& ec,
                                            size_t n) { WriteDone(ec, n); });
    }
  }

  // GatherWrite: writes gather_ from (gather_at_, gather_skip_) until it is
  // all written, the socket is full (then waits and continues) or fails.
  // `initiating`: called from AsyncWriteAll, so the completion is posted
  // (WriteDone never runs inside the call that started the write).
  void GatherWrite(bool initiating) {
    boost::system::error_code ec;
    if (!non_blocking_set_) {
      stream_.non_blocking(true, ec);
      if (!ec) non_blocking_set_ = true;
    }
    std::array<iovec, kMaxIov> iov;
    while (!ec) {
      size_t n = 0;
      size_t skip = gather_skip_;
      for (size_t i = gather_at_; i < gather_.size() && n < kMaxIov; ++i) {
        const asio::const_buffer& b = gather_[i];
        if (b.size() > skip) {
          iov[n].iov_base = const_cast<std::byte*>(
              static_cast<const std::byte*>(b.data()) + skip);
          iov[n].iov_len = b.size() - skip;
          ++n;
        }
        skip = 0;
      }
      if (n == 0) break;  // all written
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = n;
      const ssize_t w = ::sendmsg(stream_.native_handle(), &msg, MSG_NOSIGNAL);
      if (w < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
          stream_.async_wait(Stream::wait_write,
                             [self = shared_from_this(),
                              this](const boost::system::error_code& e) {
                               if (e) {
                                 WriteDone(e, gather_done_);
                                 return;
                               }
                               GatherWrite(false);
                             });
          return;
        }
        ec.assign(err, asio::error::get_system_category());
        break;
      }
      // Past the buffers the call took whole, into the one it took part of.
      auto left = static_cast<size_t>(w);
      gather_done_ += left;
      while (left > 0) {
        const size_t in_this = gather_[gather_at_].size() - gather_skip_;
        if (left < in_this) {
          gather_skip_ += left;
          break;
        }
        left -= in_this;
        ++gather_at_;
        gather_skip_ = 0;
      }
      NoteWriteProgress();
    }
    if (initiating) {
      asio::post(stream_.get_executor(),
                 [self = shared_from_this(), this, ec, n = gather_done_] {
                   WriteDone(ec, n);
                 });
    } else {
      WriteDone(ec, gather_done_);
    }
  }

  size_t TryReadSome(asio::mutable_buffer buffer,
                     boost::system::error_code& ec) override {
    if constexpr (requires {
                    stream_.non_blocking(true, ec);
                    stream_.read_some(buffer, ec);
                  }) {
      if (!non_blocking_set_) {
        stream_.non_blocking(true, ec);
        if (ec) return 0;
        non_blocking_set_ = true;
      }
      return stream_.read_some(buffer, ec);
    } else {
      return Transport::TryReadSome(buffer, ec);
    }
  }
  void ShutdownSend() override {
    if constexpr (requires(boost::system::error_code & e) {
                    stream_.shutdown(Stream::shutdown_send, e);
                  }) {
      boost::system::error_code ignored;
      stream_.shutdown(Stream::shutdown_send, ignored);
    }
  }
  void CloseStream() override { CloseAnyStream(stream_); }
  std::shared_ptr<Transport> MoveStream(
      const asio::any_io_executor& executor, const std::string& description,
      const TransportOptions& options, boost::system::error_code& ec) override {
    // A plain socket: its descriptor moves to a socket of the new executor.
    if constexpr (requires {
                    stream_.release(ec);
                    Stream(executor, stream_.local_endpoint(ec).protocol(),
                           stream_.native_handle());
                  }) {
      const auto protocol = stream_.local_endpoint(ec).protocol();
      if (ec) return nullptr;
      const auto fd = stream_.release(ec);
      if (ec) return nullptr;
      Stream moved(executor);
      moved.assign(protocol, fd, ec);
      if (ec) {
        ::close(fd);
        return nullptr;
      }
      return std::make_shared<StreamTransport>(std::move(moved), description,
                                               options);
    } else {
      ec.clear();
      return nullptr;
    }
  }

  Stream stream_;
  bool non_blocking_set_ = false;
  // The batch GatherWrite is writing: the next byte is gather_skip_ bytes
  // into gather_[gather_at_]; gather_done_ bytes written so far.
  std::span<const asio::const_buffer> gather_;
  size_t gather_at_ = 0;
  size_t gather_skip_ = 0;
  size_t gather_done_ = 0;
};

}  // namespace detail

// MakeTransport
// Wraps a connected Asio stream (anything with async_read_some,
// async_write_some, get_executor and close() or lowest_layer().close()).
template <class Stream>
std::shared_ptr<Transport> MakeTransport(Stream stream, std::string description,
                                         TransportOptions options = {}) {
  return std::make_shared<detail::StreamTransport<Stream>>(
      std::move(stream), std::move(description), options);
}

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/transport.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_TRANSPORT_HPP_
