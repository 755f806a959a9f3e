// File: symwire/transport/memory.hpp
// Layer 3. The in-memory duplex pipe: two connected Asio streams
// (MemoryStream) that exchange bytes through memory instead of a socket,
// for tests and for agents living in the same process as their
// orchestrator. MakeMemoryTransportPair wraps both ends as Transports.
//
// For tests it injects the faults a network produces (modelled on
// Boost.Beast's test stream, beast/_experimental/test/stream.hpp): reads and
// writes split at chosen sizes, the Nth read or write failing, a failure
// after N bytes, an end closing (the peer reads eof) or resetting (the peer
// fails with connection_reset), and a bounded buffer that makes writers wait
// for the reader (backpressure).
//
// Semantics, per direction, as a connected stream socket:
//   - bytes arrive in order; a read returns what is buffered (at most
//     max_read_bytes), a write stores what fits (at most max_write_bytes and
//     the free capacity) and waits while the buffer is full;
//   - after the writer closes or shuts down sending, the reader gets the
//     buffered bytes and then asio::error::eof;
//   - after the reader closes, writes fail with asio::error::broken_pipe;
//   - after a reset (MemoryStreamControl::Reset), the peer's reads and
//     writes fail at once with the reset error and buffered bytes are lost;
//   - an operation pending on an end when that end closes completes with
//     asio::error::operation_aborted; one started after with bad_descriptor.
//
// Completions never run inside the initiating call: each goes through
// asio::post to the stream's executor, then to the handler's associated
// executor. A pending operation counts as outstanding work (like a socket's:
// io_context::run() does not return while a read waits). When the
// execution context shuts down, pending operations are destroyed without
// being invoked, which breaks handler -> stream ownership cycles.
#ifndef SYMWIRE_TRANSPORT_MEMORY_HPP_
#define SYMWIRE_TRANSPORT_MEMORY_HPP_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/append.hpp"
#include "boost/asio/associated_executor.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/buffer.hpp"
#include "boost/asio/error.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/post.hpp"
#include "boost/system/error_code.hpp"
#include "symwire/config.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

// MemoryFaults
// Failures injected into one end of a memory pipe. Each is sticky, like a
// broken connection: once it triggers, every later call of that kind fails
// with `error` (and transfers nothing). Counts are per end, since the pipe
// was made (MemoryStreamControl::stats() shows them).
struct MemoryFaults {
  // The Nth async_read_some / async_write_some call (1-based) and every
  // later one fails.
  std::optional<uint64_t> fail_read_at;
  std::optional<uint64_t> fail_write_at;
  // Reads stop at exactly this many bytes read in total (a read is cut
  // short to reach it); the next read fails. Likewise for writes.
  std::optional<uint64_t> fail_read_after_bytes;
  std::optional<uint64_t> fail_write_after_bytes;
  // What a failed call completes with (connection_reset if left empty).
  boost::system::error_code error = asio::error::connection_reset;
};

// MemoryPipeOptions
// Shape of a memory pipe; the defaults behave like a local socket pair.
struct MemoryPipeOptions {
  // Bytes one async_read_some / async_write_some transfers at most
  // (0: no cap). Small values force the splits that real networks make.
  size_t max_read_bytes = 0;
  size_t max_write_bytes = 0;
  // Bytes buffered per direction at most (0: unbounded). A write to a full
  // buffer waits until the reader makes room (backpressure). The default
  // bounds memory like a kernel socket buffer does.
  size_t capacity_bytes = size_t{1} << 20;
  // Faults of the first and the second end of the pair.
  MemoryFaults first_faults;
  MemoryFaults second_faults;
};

// MemoryEndStats
// What one end of a memory pipe did.
struct MemoryEndStats {
  uint64_t read_calls = 0;   // async_read_some calls (as fault counts)
  uint64_t write_calls = 0;  // async_write_some calls (as fault counts)
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
};

namespace detail {

class MemoryPipeState;

// MemoryOp: one pending read or write with its handler, type-erased so the
// pipe's logic is compiled once (impl/memory.ipp).
class MemoryOp {
 public:
  MemoryOp(const MemoryOp&) = delete;
  MemoryOp& operator=(const MemoryOp&) = delete;
  virtual ~MemoryOp() = default;

  // Bytes the operation's buffers hold.
  size_t size() const { return size_; }
  // A read copies `n` bytes from `bytes` into its buffers; a write copies
  // its first `n` bytes into `bytes`. REQUIRES: n <= size().
  virtual void Copy(std::byte* bytes, size_t n) = 0;
  // Posts the handler with (ec, n). Called at most once, never while the
  // pipe's mutex is held.
  virtual void Complete(const boost::system::error_code& ec, size_t n) = 0;

 protected:
  explicit MemoryOp(size_t size) : size_(size) {}

 private:
  size_t size_;
};

template <class Buffers, class Handler, bool kIsRead>
class MemoryOpImpl final : public MemoryOp {
 public:
  MemoryOpImpl(const Buffers& buffers, Handler handler,
               const asio::any_io_executor& executor)
      : MemoryOp(asio::buffer_size(buffers)),
        buffers_(buffers),
        handler_(std::move(handler)),
        io_work_(executor),
        handler_work_(asio::get_associated_executor(handler_, executor)) {}

  void Copy(std::byte* bytes, size_t n) override {
    if constexpr (kIsRead) {
      asio::buffer_copy(buffers_, asio::buffer(bytes, n));
    } else {
      asio::buffer_copy(asio::buffer(bytes, n), buffers_, n);
    }
  }

  void Complete(const boost::system::error_code& ec, size_t n) override {
    // post(), not dispatch(): the caller may be inside the initiating
    // function. post() then hands over to the handler's own executor.
    asio::post(io_work_.get_executor(),
               asio::append(std::move(handler_), ec, n));
  }

 private:
  Buffers buffers_;
  Handler handler_;
  asio::executor_work_guard<asio::any_io_executor> io_work_;
  asio::executor_work_guard<
      asio::associated_executor_t<Handler, asio::any_io_executor>>
      handler_work_;
};

}  // namespace detail

// MemoryStreamControl
// A handle on one end of a memory pipe that stays valid after the stream
// was moved into a Transport: tests use it to close or reset that end,
// change its faults and read its statistics. Copyable; a default-made one
// does nothing and reports zeros.
// Thread-safety: as the stream's (see MemoryStream).
class MemoryStreamControl {
 public:
  MemoryStreamControl() = default;

  // Close
  // Closes the end, as its stream's close() does: operations pending on it
  // complete with operation_aborted, the peer reads the buffered bytes and
  // then eof, and the peer's writes fail with broken_pipe.
  SYMWIRE_DECL void Close();

  // Reset
  // Closes the end abortively: the peer's pending and later reads and
  // writes fail at once with `error` (by default connection_reset) and the
  // bytes buffered in both directions are discarded.
  SYMWIRE_DECL void Reset(
      boost::system::error_code error = asio::error::connection_reset);

  // SetFaults
  // Replaces the end's faults (counts keep running from the pipe's start).
  SYMWIRE_DECL void SetFaults(const MemoryFaults& faults);

  SYMWIRE_DECL MemoryEndStats stats() const;
  // Bytes written to this end that it has not read yet.
  SYMWIRE_DECL size_t buffered_bytes() const;
  SYMWIRE_DECL bool is_open() const;

 private:
  friend class MemoryStream;
  MemoryStreamControl(std::shared_ptr<detail::MemoryPipeState> state, int side)
      : state_(std::move(state)), side_(side) {}

  std::shared_ptr<detail::MemoryPipeState> state_;
  int side_ = 0;
};

class MemoryStream;

// MakeMemoryStreamPair
// Returns two connected ends: what one writes the other reads. Both use
// `executor` (see MemoryStream for the thread-safety contract).
// REQUIRES: `executor` is not empty.
SYMWIRE_DECL std::pair<MemoryStream, MemoryStream> MakeMemoryStreamPair(
    asio::any_io_executor executor, const MemoryPipeOptions& options = {});

// MemoryStream
// One end of an in-memory duplex pipe (MakeMemoryStreamPair); an Asio
// AsyncReadStream and AsyncWriteStream that MakeTransport accepts. The
// asynchronous operations take any completion token and complete with
// void(boost::system::error_code, size_t); error codes are those of the
// file comment plus the injected faults' (MemoryFaults::error).
// Destroying an end closes it.
//
// REQUIRES: at most one read and one write in flight per end (as Asio's
// composed operations do).
// Thread-safety: the contract is that both ends are used from the one
// executor given to MakeMemoryStreamPair (a single-threaded io_context or
// a strand), like the two sockets of a socketpair owned by one thread; one
// end is never used by two threads at once. The shared state is also
// behind a mutex, so two ends driven from different threads of a
// multi-threaded io_context (each serialized, e.g. by its own strand) are
// safe too.
class MemoryStream {
 public:
  using executor_type = asio::any_io_executor;
  // Asio spells these (socket_base::shutdown_type): Transport's graceful
  // close calls shutdown(shutdown_send, ec).
  // NOLINTBEGIN(readability-identifier-naming)
  enum shutdown_type { shutdown_receive, shutdown_send, shutdown_both };
  // NOLINTEND(readability-identifier-naming)

  SYMWIRE_DECL MemoryStream(MemoryStream&& other) noexcept;
  SYMWIRE_DECL MemoryStream& operator=(MemoryStream&& other) noexcept;
  SYMWIRE_DECL ~MemoryStream();

  executor_type get_executor() const noexcept { return executor_; }

  // async_read_some
  // Reads up to buffer_size(buffers) bytes (and max_read_bytes), waiting
  // until some are buffered or the stream ends. Completes with eof after
  // the writer closed and the buffered bytes were read. A read of zero
  // bytes completes at once with 0.
  template <class MutableBufferSequence, class ReadToken>
  auto async_read_some(const MutableBufferSequence& buffers,
                       ReadToken&& token) {
    return asio::async_initiate<ReadToken,
                                void(boost::system::error_code, size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          StartRead(
              std::make_unique<detail::MemoryOpImpl<MutableBufferSequence,
                                                    decltype(handler), true>>(
                  b, std::move(handler), executor_));
        },
        token, buffers);
  }

  // async_write_some
  // Writes up to buffer_size(buffers) bytes (and max_write_bytes and the
  // free capacity), waiting while the buffer is full. Completes with
  // broken_pipe once the peer closed.
  template <class ConstBufferSequence, class WriteToken>
  auto async_write_some(const ConstBufferSequence& buffers,
                        WriteToken&& token) {
    return asio::async_initiate<WriteToken,
                                void(boost::system::error_code, size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          StartWrite(
              std::make_unique<detail::MemoryOpImpl<ConstBufferSequence,
                                                    decltype(handler), false>>(
                  b, std::move(handler), executor_));
        },
        token, buffers);
  }

  // close
  // Closes this end (see MemoryStreamControl::Close). Never fails; `ec` is
  // cleared. Closing twice is harmless.
  SYMWIRE_DECL void close(boost::system::error_code& ec);

  // shutdown
  // shutdown_send: the peer reads the buffered bytes and then eof; this
  // end's later writes fail with broken_pipe; a write waiting for room
  // completes with operation_aborted. shutdown_receive: buffered and later
  // incoming bytes are discarded, the peer's writes fail with broken_pipe
  // and this end's reads complete with eof. Fails with bad_descriptor on a
  // closed end.
  SYMWIRE_DECL void shutdown(shutdown_type what, boost::system::error_code& ec);

  SYMWIRE_DECL bool is_open() const;

  // control
  // A handle on this end that outlives moves of the stream.
  SYMWIRE_DECL MemoryStreamControl control() const;

 private:
  friend std::pair<MemoryStream, MemoryStream> MakeMemoryStreamPair(
      asio::any_io_executor executor, const MemoryPipeOptions& options);

  SYMWIRE_DECL MemoryStream(asio::any_io_executor executor,
                            std::shared_ptr<detail::MemoryPipeState> state,
                            int side);
  SYMWIRE_DECL void StartRead(std::unique_ptr<detail::MemoryOp> op);
  SYMWIRE_DECL void StartWrite(std::unique_ptr<detail::MemoryOp> op);

  asio::any_io_executor executor_;
  std::shared_ptr<detail::MemoryPipeState> state_;  // null when moved from
  int side_ = 0;                                    // 0 first, 1 second
};

// MakeMemoryTransportPair
// MakeMemoryStreamPair wrapped by MakeTransport: Transports described as
// "memory a" (first) and "memory b" (second). Errors reach the sinks as
// ToStatus() statuses (ErrorCode CONNECTION_LOST). For control over an
// end (Close, Reset, faults set later), make the streams with
// MakeMemoryStreamPair, keep their control(), then call MakeTransport.
SYMWIRE_DECL std::pair<std::shared_ptr<Transport>, std::shared_ptr<Transport>>
MakeMemoryTransportPair(asio::any_io_executor executor,
                        const MemoryPipeOptions& options = {},
                        const TransportOptions& transport_options = {});

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/memory.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_MEMORY_HPP_
