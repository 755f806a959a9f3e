// File: symwire/transport/process.hpp
// Layer 3. Transports over pipes (Linux/POSIX): PipeStream, a duplex Asio
// stream over a read descriptor and a write descriptor; SpawnChild, which
// starts an agent as a child process speaking symwire on its stdin/stdout;
// and MakeStdioTransport, the agent's side of that arrangement.
//
// stdout is the protocol channel. An agent started this way must write
// nothing else to stdout (no printf, no std::cout, no library banners):
// one stray byte breaks the framing. Log to stderr, which SpawnChild
// inherits (or discards, ChildOptions::child_stderr).
//
// SIGPIPE. Writing to a pipe whose reader is gone raises SIGPIPE, whose
// default action kills the whole process. A per-write guard is not possible
// here (Asio performs the write; MSG_NOSIGNAL exists for sockets only), so
// PipeStream::Adopt, SpawnChild and MakeStdioTransport set SIGPIPE's
// disposition to SIG_IGN process-wide when it is still SIG_DFL; a handler
// the program installed is left alone. The failed write then reports
// broken_pipe, which the Transport turns into a CONNECTION_LOST status.
// Children get the default disposition back (see SpawnChild).
#ifndef SYMWIRE_TRANSPORT_PROCESS_HPP_
#define SYMWIRE_TRANSPORT_PROCESS_HPP_

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/any_completion_handler.hpp"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/posix/stream_descriptor.hpp"
#include "boost/system/error_code.hpp"
#include "symwire/config.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

// PipeStream
// A duplex byte stream made of two descriptors, one read and one written:
// a child's stdout and stdin pipes, or a process's own stdin and stdout.
// An Asio AsyncReadStream/AsyncWriteStream (and SyncReadStream, for the
// Transport's spin-read mode) that MakeTransport accepts; operations
// complete as those of asio::posix::stream_descriptor.
// Half-close: shutdown(shutdown_send) closes the write descriptor, which
// the peer reads as end of stream (Transport::CloseAfterFlush uses it).
// Thread-safety: as an Asio socket (one executor; distinct objects are
// independent).
class PipeStream {
 public:
  using executor_type = asio::any_io_executor;
  // Asio spells these (socket_base::shutdown_type): Transport's graceful
  // close calls shutdown(shutdown_send, ec).
  // NOLINTBEGIN(readability-identifier-naming)
  enum shutdown_type { shutdown_receive, shutdown_send, shutdown_both };
  // NOLINTEND(readability-identifier-naming)

  // Adopt
  // Takes ownership of `read_fd` and `write_fd` (closed on every path,
  // errors included), marks them close-on-exec, and registers them with
  // the executor's reactor. Ignores SIGPIPE (see the file comment).
  // REQUIRES: read_fd != write_fd, both >= 0.
  // Descriptors epoll cannot watch (regular files, /dev/null) work too:
  // Asio performs their operations directly since they never block, and a
  // read at the end of a file reports end of stream.
  // Errors: the reactor's registration errno as a status naming the
  // descriptor ("read fd 5: …"; kResourceExhausted for ENOMEM/ENOSPC).
  SYMWIRE_DECL static absl::StatusOr<PipeStream> Adopt(
      const asio::any_io_executor& executor, int read_fd, int write_fd);

  // Wraps two open descriptors. REQUIRES: both use the same executor.
  PipeStream(asio::posix::stream_descriptor read,
             asio::posix::stream_descriptor write)
      : read_(std::move(read)), write_(std::move(write)) {}

  executor_type get_executor() { return read_.get_executor(); }

  template <class MutableBufferSequence, class ReadToken>
  auto async_read_some(const MutableBufferSequence& buffers,
                       ReadToken&& token) {
    return read_.async_read_some(buffers, std::forward<ReadToken>(token));
  }
  template <class ConstBufferSequence, class WriteToken>
  auto async_write_some(const ConstBufferSequence& buffers,
                        WriteToken&& token) {
    return write_.async_write_some(buffers, std::forward<WriteToken>(token));
  }
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers,
                   boost::system::error_code& ec) {
    return read_.read_some(buffers, ec);
  }
  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers,
                    boost::system::error_code& ec) {
    return write_.write_some(buffers, ec);
  }
  // Non-blocking mode of the synchronous read_some/write_some (both
  // descriptors).
  SYMWIRE_DECL void non_blocking(bool mode, boost::system::error_code& ec);

  // close: closes both descriptors; pending operations complete with
  // operation_aborted.
  SYMWIRE_DECL void close(boost::system::error_code& ec);
  // shutdown: shutdown_send closes the write descriptor, shutdown_receive
  // the read descriptor, shutdown_both both.
  SYMWIRE_DECL void shutdown(shutdown_type what, boost::system::error_code& ec);
  bool is_open() const { return read_.is_open() || write_.is_open(); }

  asio::posix::stream_descriptor& read_descriptor() { return read_; }
  asio::posix::stream_descriptor& write_descriptor() { return write_; }

 private:
  asio::posix::stream_descriptor read_;
  asio::posix::stream_descriptor write_;
};

// MakeStdioTransport
// The agent's side: a Transport (description "stdio") reading the
// process's stdin and writing its stdout. It works on duplicates of fds 0
// and 1 (dup, close-on-exec), so closing the transport does not close the
// process's own fds 0 and 1; the peer sees end of stream only when every
// copy of the write end is closed, so an agent that wants its
// orchestrator to see the close must also close(1) (or exit).
// Caveat: a duplicate shares the open file description, and Asio puts it
// in non-blocking mode, so fds 0 and 1 become non-blocking too (another
// reason not to print to stdout).
// stdin and stdout may be pipes, sockets, terminals or files (an agent
// can read its input from a file: the transport closes with end of stream
// after the last byte).
// Errors: dup or registration failures, e.g. kResourceExhausted for
// EMFILE; messages start "stdio: ".
// Ignores SIGPIPE (see the file comment).
SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Transport>> MakeStdioTransport(
    const asio::any_io_executor& executor, TransportOptions options = {});

// ExitStatus
// How a child process ended.
struct ExitStatus {
  int exit_code = -1;   // the child's exit code; -1 when a signal ended it
  int term_signal = 0;  // the signal that ended it; 0 when it exited
  bool exited() const { return term_signal == 0; }
  bool success() const { return term_signal == 0 && exit_code == 0; }
};

// ChildStderr: what the child's stderr is.
enum class ChildStderr {
  kInherit,  // the parent's stderr (agents log there)
  kNull,     // /dev/null
};

// ChildOptions
struct ChildOptions {
  // Variables added to the parent's environment, replacing those of the
  // same name. Names must be non-empty and contain no '='. The program is
  // looked up in the parent's PATH, not in these.
  std::vector<std::pair<std::string, std::string>> env;
  // The child's working directory; empty keeps the parent's.
  std::string working_directory;
  ChildStderr child_stderr = ChildStderr::kInherit;
  TransportOptions transport;
  // How AsyncWait learns of the exit: a pidfd (pidfd_open(2), Linux 5.3)
  // watched by the reactor, exact and without SIGCHLD; when the kernel or
  // a seccomp sandbox refuses pidfd_open, or use_pidfd is false, polling
  // waitpid(WNOHANG) every wait_poll_interval on a steady_timer.
  bool use_pidfd = true;
  std::chrono::milliseconds wait_poll_interval{10};
};

namespace detail {
struct ChildState;
}  // namespace detail

class ChildProcess;

// SpawnChild
// Starts argv[0] (looked up in PATH when it has no '/') with arguments
// argv[1..] via posix_spawnp, its stdin and stdout connected through pipes
// to the returned ChildProcess's transport. Every descriptor symwire opens
// is close-on-exec, so children do not inherit each other's pipes. The
// child starts with an empty signal mask and every signal at its default
// disposition (it does not inherit the parent's SIG_IGN of SIGPIPE).
// Ignores SIGPIPE in the parent (see the file comment).
// Errors (message "spawn <argv0>: <errno text>"): kInvalidArgument for an
// empty argv or a bad env name; kNotFound (ENOENT: no such program, or no
// such working directory, which the message then names);
// kPermissionDenied (EACCES); kResourceExhausted (EMFILE, EAGAIN, ENOMEM);
// kInternal otherwise.
// Thread-safety: any thread; reads `environ`, so not concurrently with
// setenv.
SYMWIRE_DECL absl::StatusOr<ChildProcess> SpawnChild(
    const asio::any_io_executor& executor, std::vector<std::string> argv,
    ChildOptions options = {});

// ChildProcess
// A child started by SpawnChild, its stdin and stdout connected to
// transport(). Move-only.
//
// Destruction never leaves a zombie: if the child was not reaped yet, the
// destructor sends SIGKILL and reaps it (blocking only for the kernel to
// finish the kill). To let a child finish its work, CloseAfterFlush() the
// transport (the child reads end of stream on stdin) and Wait/AsyncWait
// before destroying the object. The transport is shared and is not closed
// by the destructor; it reports the end of the child's stdout as usual.
// The pid stays reserved until symwire reaps it, so Kill never signals an
// unrelated process; a program that reaps children itself (waitpid(-1),
// SIGCHLD set to SIG_IGN) breaks that guarantee and makes waits fail with
// ECHILD.
// Thread-safety: use on the executor's thread, like the transport.
// Neither this object nor the transport may outlive the execution context.
class ChildProcess {
 public:
  ChildProcess(ChildProcess&& other) noexcept = default;
  SYMWIRE_DECL ChildProcess& operator=(ChildProcess&& other) noexcept;
  SYMWIRE_DECL ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Description "child <argv0> pid <N>".
  const std::shared_ptr<Transport>& transport() const { return transport_; }

  // Kill
  // Sends `sig` to the child. Errors: kFailedPrecondition once the child
  // was reaped (its pid may belong to another process by then); the
  // errno of kill(2) otherwise.
  SYMWIRE_DECL absl::Status Kill(int sig = SIGTERM);

  // Wait
  // Blocks until the child ends and reaps it; returns at once once reaped
  // (repeatable). Errors: kFailedPrecondition "… No child processes" when
  // something else reaped it.
  SYMWIRE_DECL absl::StatusOr<ExitStatus> Wait();

  // TryWait
  // Reaps the child if it ended; nullopt while it runs. Errors as Wait.
  SYMWIRE_DECL absl::StatusOr<std::optional<ExitStatus>> TryWait();

  // AsyncWait
  // Completes with void(absl::StatusOr<ExitStatus>) once the child ended
  // (reaping it), through any completion token; never inside the call.
  // Several may be pending. Errors as Wait; kCancelled if the wait machinery
  // was cancelled without an exit (not expected in practice).
  template <class WaitToken>
  auto AsyncWait(WaitToken&& token) {
    return asio::async_initiate<WaitToken, void(absl::StatusOr<ExitStatus>)>(
        [this](auto handler) {
          StartWait(
              asio::any_completion_handler<void(absl::StatusOr<ExitStatus>)>(
                  std::move(handler)));
        },
        token);
  }

 private:
  friend absl::StatusOr<ChildProcess> SpawnChild(
      const asio::any_io_executor& executor, std::vector<std::string> argv,
      ChildOptions options);

  ChildProcess(std::shared_ptr<detail::ChildState> state,
               std::shared_ptr<Transport> transport, pid_t pid)
      : state_(std::move(state)), transport_(std::move(transport)), pid_(pid) {}

  SYMWIRE_DECL void StartWait(
      asio::any_completion_handler<void(absl::StatusOr<ExitStatus>)> handler);
  SYMWIRE_DECL void Release();

  std::shared_ptr<detail::ChildState> state_;  // null when moved from
  std::shared_ptr<Transport> transport_;
  pid_t pid_ = -1;
};

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/process.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_PROCESS_HPP_
