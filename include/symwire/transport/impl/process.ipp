// File: symwire/transport/impl/process.ipp
// Out-of-line bodies of process.hpp (layer 3, Linux/POSIX).
#ifndef SYMWIRE_TRANSPORT_IMPL_PROCESS_IPP_
#define SYMWIRE_TRANSPORT_IMPL_PROCESS_IPP_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/append.hpp"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/transport/process.hpp"

namespace symwire {
namespace detail {

// What a ChildProcess shares with its pending waits.
struct ChildState {
  ChildState(asio::any_io_executor ex, pid_t child_pid, std::string program,
             std::chrono::milliseconds interval)
      : executor(std::move(ex)),
        pid(child_pid),
        argv0(std::move(program)),
        poll_interval(interval) {}

  std::string Name() const { return absl::StrCat(argv0, " pid ", pid); }

  asio::any_io_executor executor;
  pid_t pid;
  std::string argv0;
  std::chrono::milliseconds poll_interval;
  std::optional<ExitStatus> exit;  // set once reaped
  std::optional<asio::posix::stream_descriptor> pidfd;
  std::optional<asio::steady_timer> timer;  // when there is no pidfd
  bool armed = false;                       // a pidfd or timer wait pending
  std::vector<asio::any_completion_handler<void(absl::StatusOr<ExitStatus>)>>
      waiters;
};

namespace process {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    Reset(other.Release());
    return *this;
  }
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

SYMWIRE_DECL absl::StatusCode ErrnoCode(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case EACCES:
    case EPERM:
      return absl::StatusCode::kPermissionDenied;
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case ENOMEM:
    case ENOSPC:  // epoll: max_user_watches
      return absl::StatusCode::kResourceExhausted;
    case ECHILD:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

// "<what>: <errno text>"
SYMWIRE_DECL absl::Status ErrnoError(int err, std::string_view what) {
  return absl::Status(ErrnoCode(err),
                      absl::StrCat(absl::string_view(what.data(), what.size()),
                                   ": ", std::generic_category().message(err)));
}

SYMWIRE_DECL void IgnoreSigpipe() {
  // Only replace the default action: a handler (or SIG_IGN) the program
  // chose stays.
  struct sigaction current = {};
  if (::sigaction(SIGPIPE, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) {
    return;
  }
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGPIPE, &ignore, nullptr);
}

// Registers an owned descriptor with the reactor (closing it on failure);
// `name` names it in errors.
SYMWIRE_DECL absl::StatusOr<asio::posix::stream_descriptor> AdoptFd(
    const asio::any_io_executor& executor, UniqueFd fd, std::string_view name) {
  // Children spawned later must not inherit it (they would hold the pipe
  // open and hide its end of stream).
  const int flags = ::fcntl(fd.get(), F_GETFD);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFD, flags | FD_CLOEXEC);
  asio::posix::stream_descriptor descriptor(executor);
  boost::system::error_code ec;
  descriptor.assign(fd.get(), ec);
  if (ec) {
    // (epoll refusing a regular file is not an error: Asio then performs
    // each operation directly, as such files never block.)
    return absl::Status(
        ErrnoCode(ec.value()),
        absl::StrCat(absl::string_view(name.data(), name.size()), ": ",
                     ec.message()));
  }
  fd.Release();  // the descriptor owns it now
  return descriptor;
}

SYMWIRE_DECL ExitStatus FromWaitStatus(int status) {
  ExitStatus exit;
  if (WIFEXITED(status)) {
    exit.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit.term_signal = WTERMSIG(status);
  }
  return exit;
}

// Reaps the child if it ended (blocking until it does if `block`): true
// once reaped, false while it runs.
SYMWIRE_DECL absl::StatusOr<bool> Reap(ChildState& state, bool block) {
  if (state.exit) return true;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(state.pid, &status, block ? 0 : WNOHANG);
    if (r == state.pid) {
      state.exit = FromWaitStatus(status);
      return true;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    return ErrnoError(errno, absl::StrCat("wait ", state.Name()));
  }
}

// After a reap outside the wait machinery: wake the pending wait so that
// it delivers the status.
SYMWIRE_DECL void CancelWait(ChildState& state) {
  boost::system::error_code ignored;
  if (state.pidfd) state.pidfd->cancel(ignored);
  if (state.timer) state.timer->cancel();
}

SYMWIRE_DECL void Deliver(const std::shared_ptr<ChildState>& state,
                          const absl::StatusOr<ExitStatus>& result) {
  auto waiters = std::move(state->waiters);
  state->waiters.clear();
  for (auto& handler : waiters) {
    // dispatch: this runs in a completion on the executor, never inside
    // AsyncWait; the handler still moves to its associated executor.
    asio::dispatch(state->executor, asio::append(std::move(handler), result));
  }
}

SYMWIRE_DECL void ArmWait(const std::shared_ptr<ChildState>& state);

SYMWIRE_DECL void OnWaitEvent(const std::shared_ptr<ChildState>& state,
                              const boost::system::error_code& ec) {
  state->armed = false;
  if (state->waiters.empty()) return;
  absl::StatusOr<bool> reaped = Reap(*state, false);
  if (!reaped.ok()) return Deliver(state, reaped.status());
  if (*reaped) return Deliver(state, *state->exit);
  if (ec == asio::error::operation_aborted) {
    return Deliver(state, absl::CancelledError(absl::StrCat(
                              "wait ", state->Name(), ": cancelled")));
  }
  // The reactor refused the pidfd: poll from now on.
  if (ec && state->pidfd) state->pidfd.reset();
  ArmWait(state);  // a poll tick, or a spurious wake-up
}

SYMWIRE_DECL void ArmWait(const std::shared_ptr<ChildState>& state) {
  if (state->armed) return;
  state->armed = true;
  auto on_event = [state](const boost::system::error_code& ec) {
    OnWaitEvent(state, ec);
  };
  if (state->pidfd) {
    // A pidfd becomes readable when the process ends. Asio re-arms the
    // descriptor (EPOLL_CTL_MOD) when the wait starts, so an exit that
    // happened before is reported too.
    state->pidfd->async_wait(asio::posix::descriptor_base::wait_read,
                             std::move(on_event));
  } else {
    if (!state->timer) state->timer.emplace(state->executor);
    state->timer->expires_after(state->poll_interval);
    state->timer->async_wait(std::move(on_event));
  }
}

}  // namespace process
}  // namespace detail

// --- PipeStream ---

SYMWIRE_DECL absl::StatusOr<PipeStream> PipeStream::Adopt(
    const asio::any_io_executor& executor, int read_fd, int write_fd) {
  SYMWIRE_REQUIRE(read_fd >= 0 && write_fd >= 0 && read_fd != write_fd);
  detail::process::UniqueFd r(read_fd);
  detail::process::UniqueFd w(write_fd);
  detail::process::IgnoreSigpipe();
  auto read = detail::process::AdoptFd(executor, std::move(r),
                                       absl::StrCat("read fd ", read_fd));
  if (!read.ok()) return read.status();
  auto write = detail::process::AdoptFd(executor, std::move(w),
                                        absl::StrCat("write fd ", write_fd));
  if (!write.ok()) return write.status();
  return PipeStream(std::move(*read), std::move(*write));
}

SYMWIRE_DECL void PipeStream::non_blocking(bool mode,
                                           boost::system::error_code& ec) {
  ec = {};
  if (read_.is_open()) read_.non_blocking(mode, ec);
  if (!ec && write_.is_open()) write_.non_blocking(mode, ec);
}

SYMWIRE_DECL void PipeStream::close(boost::system::error_code& ec) {
  boost::system::error_code write_ec;
  read_.close(ec);
  write_.close(write_ec);
  if (!ec) ec = write_ec;
}

SYMWIRE_DECL void PipeStream::shutdown(shutdown_type what,
                                       boost::system::error_code& ec) {
  ec = {};
  if (what != shutdown_receive) write_.close(ec);
  if (what != shutdown_send) {
    boost::system::error_code read_ec;
    read_.close(read_ec);
    if (!ec) ec = read_ec;
  }
}

// --- stdio ---

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Transport>> MakeStdioTransport(
    const asio::any_io_executor& executor, TransportOptions options) {
  detail::process::IgnoreSigpipe();
  // Duplicates above 2, close-on-exec: closing the transport leaves fds 0
  // and 1 alone, and children spawned later do not inherit them.
  detail::process::UniqueFd in(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3));
  if (in.get() < 0)
    return detail::process::ErrnoError(errno, "stdio: dup stdin");
  detail::process::UniqueFd out(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3));
  if (out.get() < 0) {
    return detail::process::ErrnoError(errno, "stdio: dup stdout");
  }
  auto read = detail::process::AdoptFd(executor, std::move(in), "stdio: stdin");
  if (!read.ok()) return read.status();
  auto write =
      detail::process::AdoptFd(executor, std::move(out), "stdio: stdout");
  if (!write.ok()) return write.status();
  return MakeTransport(PipeStream(std::move(*read), std::move(*write)), "stdio",
                       options);
}

// --- ChildProcess ---

SYMWIRE_DECL ChildProcess& ChildProcess::operator=(
    ChildProcess&& other) noexcept {
  if (this != &other) {
    // Release() can throw (bad_alloc, system_error); this must not.
    try {
      Release();
    } catch (...) {
    }
    state_ = std::move(other.state_);
    transport_ = std::move(other.transport_);
    pid_ = other.pid_;
  }
  return *this;
}

SYMWIRE_DECL ChildProcess::~ChildProcess() {
  // Release() can throw (bad_alloc, system_error); this must not.
  try {
    Release();
  } catch (...) {
  }
}

SYMWIRE_DECL void ChildProcess::Release() {
  if (state_ == nullptr) return;
  if (!state_->exit) {
    // Not reaped: end it so that no zombie stays behind. Reaping right
    // after SIGKILL blocks only for the kernel to tear the process down.
    ::kill(state_->pid, SIGKILL);
    static_cast<void>(detail::process::Reap(*state_, true));
  }
  detail::process::CancelWait(*state_);  // pending AsyncWaits get the status
  state_.reset();
  transport_.reset();
}

SYMWIRE_DECL absl::Status ChildProcess::Kill(int sig) {
  if (state_ == nullptr) {
    return absl::FailedPreconditionError("kill: moved-from ChildProcess");
  }
  if (state_->exit) {
    return absl::FailedPreconditionError(
        absl::StrCat("kill ", state_->Name(), ": already reaped"));
  }
  if (::kill(state_->pid, sig) != 0) {
    return detail::process::ErrnoError(errno,
                                       absl::StrCat("kill ", state_->Name()));
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::StatusOr<ExitStatus> ChildProcess::Wait() {
  if (state_ == nullptr) {
    return absl::FailedPreconditionError("wait: moved-from ChildProcess");
  }
  absl::StatusOr<bool> reaped = detail::process::Reap(*state_, true);
  if (!reaped.ok()) return reaped.status();
  detail::process::CancelWait(*state_);
  return *state_->exit;
}

SYMWIRE_DECL absl::StatusOr<std::optional<ExitStatus>> ChildProcess::TryWait() {
  if (state_ == nullptr) {
    return absl::FailedPreconditionError("wait: moved-from ChildProcess");
  }
  absl::StatusOr<bool> reaped = detail::process::Reap(*state_, false);
  if (!reaped.ok()) return reaped.status();
  if (!*reaped) return std::optional<ExitStatus>();
  detail::process::CancelWait(*state_);
  return std::optional<ExitStatus>(*state_->exit);
}

SYMWIRE_DECL void ChildProcess::StartWait(
    asio::any_completion_handler<void(absl::StatusOr<ExitStatus>)> handler) {
  SYMWIRE_REQUIRE(state_ != nullptr);
  std::shared_ptr<detail::ChildState> state = state_;
  state->waiters.push_back(std::move(handler));
  if (state->exit) {
    // Never complete inside the initiating call.
    asio::post(state->executor,
               [state] { detail::process::Deliver(state, *state->exit); });
    return;
  }
  detail::process::ArmWait(state);
}

// --- SpawnChild ---

SYMWIRE_DECL absl::StatusOr<ChildProcess> SpawnChild(
    const asio::any_io_executor& executor, std::vector<std::string> argv,
    ChildOptions options) {
  using detail::process::ErrnoError;
  using detail::process::UniqueFd;
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("spawn: empty argv");
  }
  const std::string name = argv[0];
  const std::string what = absl::StrCat("spawn ", name);
  for (const auto& [key, value] : options.env) {
    if (key.empty() || key.find('=') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": bad environment variable name \"", key, "\""));
    }
  }
  if (!options.working_directory.empty()) {
    // posix_spawn reports a bad directory as the program's ENOENT; say
    // which it is (racy, but only for the message).
    struct stat st = {};
    if (::stat(options.working_directory.c_str(), &st) != 0) {
      return ErrnoError(errno, absl::StrCat(what, ": working directory ",
                                            options.working_directory));
    }
  }
  detail::process::IgnoreSigpipe();

  // O_CLOEXEC from the start: a concurrent spawn in another thread must not
  // inherit these pipes (it would keep them open).
  int in_pipe[2];   // the child's stdin: it reads [0], we write [1]
  int out_pipe[2];  // the child's stdout: it writes [1], we read [0]
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
    return ErrnoError(errno, absl::StrCat(what, ": pipe"));
  }
  UniqueFd child_in(in_pipe[0]);
  UniqueFd our_in(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return ErrnoError(errno, absl::StrCat(what, ": pipe"));
  }
  UniqueFd our_out(out_pipe[0]);
  UniqueFd child_out(out_pipe[1]);
  // Keep the child's ends above 2: dup2(fd, fd) would neither move them nor
  // clear close-on-exec, and one dup2 could overwrite the other's source.
  for (UniqueFd* fd : {&child_in, &child_out}) {
    if (fd->get() <= STDERR_FILENO) {
      const int moved = ::fcntl(fd->get(), F_DUPFD_CLOEXEC, 3);
      if (moved < 0) return ErrnoError(errno, absl::StrCat(what, ": dup"));
      fd->Reset(moved);
    }
  }

  // posix_spawn (glibc: clone(CLONE_VM | CLONE_VFORK) + exec) runs only
  // async-signal-safe code in the child and reports exec errors back.
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  if (int err = ::posix_spawn_file_actions_init(&actions); err != 0) {
    return ErrnoError(err, what);
  }
  if (int err = ::posix_spawnattr_init(&attr); err != 0) {
    ::posix_spawn_file_actions_destroy(&actions);
    return ErrnoError(err, what);
  }
  int err = ::posix_spawn_file_actions_adddup2(&actions, child_in.get(),
                                               STDIN_FILENO);
  if (err == 0) {
    err = ::posix_spawn_file_actions_adddup2(&actions, child_out.get(),
                                             STDOUT_FILENO);
  }
  if (err == 0 && options.child_stderr == ChildStderr::kNull) {
    err = ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                             "/dev/null", O_WRONLY, 0);
  }
  if (err == 0 && !options.working_directory.empty()) {
    err = ::posix_spawn_file_actions_addchdir_np(
        &actions, options.working_directory.c_str());
  }
  // The child starts clean: no blocked signals, every disposition default
  // (dispositions set to SIG_IGN, like our SIGPIPE, survive exec).
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t all_signals;
  sigfillset(&all_signals);
  sigdelset(&all_signals, SIGKILL);
  sigdelset(&all_signals, SIGSTOP);
  if (err == 0) err = ::posix_spawnattr_setsigmask(&attr, &no_signals);
  if (err == 0) err = ::posix_spawnattr_setsigdefault(&attr, &all_signals);
  if (err == 0) {
    err = ::posix_spawnattr_setflags(
        &attr, static_cast<short>(POSIX_SPAWN_SETSIGMASK |  // NOLINT
                                  POSIX_SPAWN_SETSIGDEF));
  }

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view line(*entry);
    const std::string_view key = line.substr(0, line.find('='));
    const bool replaced =
        std::any_of(options.env.begin(), options.env.end(),
                    [&](const auto& kv) { return kv.first == key; });
    if (!replaced) env_strings.emplace_back(line);
  }
  for (const auto& [key, value] : options.env) {
    env_strings.push_back(absl::StrCat(key, "=", value));
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  if (err == 0) {
    err = ::posix_spawnp(&pid, name.c_str(), &actions, &attr, args.data(),
                         envp.data());
  }
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (err != 0) return ErrnoError(err, what);

  // Only the child may hold its ends: our copies would hide the end of
  // stream of its stdout (and keep its stdin readable).
  child_in.Reset();
  child_out.Reset();
  auto kill_and_reap = [pid] {
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  };
  auto read = detail::process::AdoptFd(executor, std::move(our_out),
                                       absl::StrCat(what, ": stdout pipe"));
  if (!read.ok()) {
    kill_and_reap();
    return read.status();
  }
  auto write = detail::process::AdoptFd(executor, std::move(our_in),
                                        absl::StrCat(what, ": stdin pipe"));
  if (!write.ok()) {
    kill_and_reap();
    return write.status();
  }

  auto state = std::make_shared<detail::ChildState>(executor, pid, name,
                                                    options.wait_poll_interval);
#ifdef SYS_pidfd_open
  if (options.use_pidfd) {
    // Race-free: the pid cannot be reused before we reap it. pidfds are
    // always close-on-exec. On failure (ENOSYS before Linux 5.3, EPERM
    // under some seccomp profiles) AsyncWait polls instead.
    const long pidfd = ::syscall(SYS_pidfd_open, pid, 0);
    if (pidfd >= 0) {
      auto descriptor = detail::process::AdoptFd(
          executor, UniqueFd(static_cast<int>(pidfd)), "pidfd");
      if (descriptor.ok()) state->pidfd.emplace(std::move(*descriptor));
    }
  }
#endif
  auto transport = MakeTransport(
      PipeStream(std::move(*read), std::move(*write)),
      absl::StrCat("child ", name, " pid ", pid), options.transport);
  return ChildProcess(std::move(state), std::move(transport), pid);
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_PROCESS_IPP_
