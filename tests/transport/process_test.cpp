// File: tests/transport/process_test.cpp
// Pipes and child processes (process.hpp): echo through /bin/cat, exit
// codes, spawn errors, Kill, SIGPIPE, the child's clean signal state,
// environment and working directory, reaping on destruction, PipeStream
// over pipe2() descriptors, and MakeStdioTransport on swapped fds 0 and 1.
#include "symwire/transport/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "boost/asio/io_context.hpp"
#include "symwire/error.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using testing::ByteSpan;
using testing::Pattern;
using testing::Recorder;
using testing::TryRunUntil;

TEST_CASE("process: /bin/cat echoes bytes through the transport", "[process]") {
  asio::io_context io;
  auto child = SpawnChild(io.get_executor(), {"/bin/cat"});
  REQUIRE(child.ok());
  const std::shared_ptr<Transport>& t = child->transport();
  CHECK(t->description() ==
        "child /bin/cat pid " + std::to_string(child->pid()));
  Recorder r;
  t->Start(&r);
  // More than a pipe holds (64 KiB) in both directions: needs reads and
  // writes to progress together.
  const std::string data = Pattern(1 << 20);
  for (size_t i = 0; i < data.size(); i += 16384) {
    t->Send(ByteSpan(data.substr(i, 16384)));
  }
  // Once everything came back (a closing transport discards input), close:
  // cat reads end of stream on stdin and exits; then its stdout ends,
  // which finishes the graceful close.
  r.on_data = [&](Transport& self) {
    if (r.data.size() == data.size()) self.CloseAfterFlush();
  };
  REQUIRE(TryRunUntil(io, [&] { return r.closes == 1; }));
  CHECK(r.status.ok());
  CHECK(r.data.size() == data.size());
  CHECK(r.data == data);
  auto exit = child->Wait();
  REQUIRE(exit.ok());
  CHECK(exit->success());
}

TEST_CASE("process: a child that exits ends the transport; Wait gives 3",
          "[process]") {
  const bool use_pidfd = GENERATE(true, false);
  CAPTURE(use_pidfd);
  asio::io_context io;
  ChildOptions options;
  options.use_pidfd = use_pidfd;
  auto child =
      SpawnChild(io.get_executor(), {"/bin/sh", "-c", "exit 3"}, options);
  REQUIRE(child.ok());
  Recorder r;
  child->transport()->Start(&r);
  std::optional<absl::StatusOr<ExitStatus>> async_exit;
  child->AsyncWait(
      [&](absl::StatusOr<ExitStatus> e) { async_exit = std::move(e); });
  CHECK_FALSE(async_exit.has_value());  // never inside the call
  REQUIRE(TryRunUntil(io, [&] { return r.closes == 1 && async_exit; }));
  CHECK(GetErrorCode(r.status) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(r.status.message(), "closed by peer"));
  REQUIRE(async_exit->ok());
  CHECK((*async_exit)->exit_code == 3);
  CHECK((*async_exit)->exited());
  CHECK_FALSE((*async_exit)->success());
  // Reaped once; Wait and TryWait give the same answer again.
  auto exit = child->Wait();
  REQUIRE(exit.ok());
  CHECK(exit->exit_code == 3);
  auto again = child->TryWait();
  REQUIRE(again.ok());
  REQUIRE(again->has_value());
  CHECK((*again)->exit_code == 3);
  // AsyncWait after the reap completes with the cached status.
  std::optional<absl::StatusOr<ExitStatus>> late;
  child->AsyncWait([&](absl::StatusOr<ExitStatus> e) { late = std::move(e); });
  REQUIRE(TryRunUntil(io, [&] { return late.has_value(); }));
  REQUIRE(late->ok());
  CHECK((*late)->exit_code == 3);
}

TEST_CASE("process: spawn errors are clear statuses", "[process]") {
  asio::io_context io;
  auto missing = SpawnChild(io.get_executor(), {"/nonexistent/program"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() ==
        "spawn /nonexistent/program: No such file or directory");

  auto not_in_path =
      SpawnChild(io.get_executor(), {"symwire-no-such-program-xyz"});
  REQUIRE_FALSE(not_in_path.ok());
  CHECK(not_in_path.status().code() == absl::StatusCode::kNotFound);
  CHECK(absl::StrContains(not_in_path.status().message(),
                          "spawn symwire-no-such-program-xyz: "));

  auto directory = SpawnChild(io.get_executor(), {"/tmp"});
  REQUIRE_FALSE(directory.ok());
  CHECK(directory.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(directory.status().message() == "spawn /tmp: Permission denied");

  auto empty = SpawnChild(io.get_executor(), {});
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().code() == absl::StatusCode::kInvalidArgument);

  ChildOptions bad_env;
  bad_env.env = {{"A=B", "c"}};
  auto env = SpawnChild(io.get_executor(), {"/bin/cat"}, bad_env);
  REQUIRE_FALSE(env.ok());
  CHECK(env.status().code() == absl::StatusCode::kInvalidArgument);

  ChildOptions bad_dir;
  bad_dir.working_directory = "/nonexistent/dir";
  auto dir = SpawnChild(io.get_executor(), {"/bin/cat"}, bad_dir);
  REQUIRE_FALSE(dir.ok());
  CHECK(dir.status().code() == absl::StatusCode::kNotFound);
  CHECK(dir.status().message() ==
        "spawn /bin/cat: working directory /nonexistent/dir: No such file "
        "or directory");
}

TEST_CASE("process: Kill ends the child", "[process]") {
  asio::io_context io;
  auto child = SpawnChild(io.get_executor(), {"/bin/cat"});
  REQUIRE(child.ok());
  auto running = child->TryWait();
  REQUIRE(running.ok());
  CHECK_FALSE(running->has_value());
  REQUIRE(child->Kill(SIGTERM).ok());
  auto exit = child->Wait();
  REQUIRE(exit.ok());
  CHECK(exit->term_signal == SIGTERM);
  CHECK(exit->exit_code == -1);
  CHECK_FALSE(exit->exited());
  const absl::Status again = child->Kill(SIGTERM);
  CHECK(again.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(again.message(), "already reaped"));
}

TEST_CASE("process: writing to a child that closed stdin gives a status",
          "[process]") {
  asio::io_context io;
  auto child =
      SpawnChild(io.get_executor(),
                 {"/bin/sh", "-c", "exec 0<&-; echo ready; exec sleep 30"});
  REQUIRE(child.ok());
  Recorder r;
  bool sent = false;
  // The child closed its stdin before it said "ready": this write has no
  // reader, which raises SIGPIPE unless the library ignores it.
  r.on_data = [&](Transport& t) {
    if (!sent && absl::StrContains(r.data, "ready")) {
      sent = true;
      t.Send(ByteSpan("are you there?"));
    }
  };
  child->transport()->Start(&r);
  REQUIRE(TryRunUntil(io, [&] { return r.closes == 1; }));
  CHECK(sent);
  CHECK(GetErrorCode(r.status) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(r.status.message(), "write"));
  CHECK(absl::StrContains(r.status.message(),
                          std::generic_category().message(EPIPE)));
  struct sigaction current = {};
  REQUIRE(sigaction(SIGPIPE, nullptr, &current) == 0);
  CHECK(current.sa_handler == SIG_IGN);
  // Destroying the ChildProcess kills and reaps the sleeping shell.
}

// The hexadecimal mask on the `field` line of /proc/<pid>/status.
uint64_t ProcStatusMask(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stoull(line.substr(field.size() + 1), nullptr, 16);
    }
  }
  FAIL("no " << field << " in /proc/" << pid << "/status");
  return 0;
}

TEST_CASE("process: the child starts with default signal dispositions",
          "[process]") {
  asio::io_context io;
  auto child = SpawnChild(io.get_executor(), {"/bin/cat"});
  REQUIRE(child.ok());
  // posix_spawn returns after the exec: this is cat's state.
  const uint64_t ignored = ProcStatusMask(child->pid(), "SigIgn");
  const uint64_t blocked = ProcStatusMask(child->pid(), "SigBlk");
  CHECK((ignored & (uint64_t{1} << (SIGPIPE - 1))) == 0);
  CHECK(blocked == 0);
}

TEST_CASE("process: environment, working directory and stderr", "[process]") {
  asio::io_context io;
  ChildOptions options;
  options.env = {{"SYMWIRE_TEST_VAR", "hello"}, {"HOME", "/nowhere"}};
  options.working_directory = "/tmp";
  options.child_stderr = ChildStderr::kNull;
  auto child = SpawnChild(io.get_executor(),
                          {"sh", "-c",
                           "echo this goes to /dev/null >&2; "
                           "printf '%s|%s|%s' \"$SYMWIRE_TEST_VAR\" "
                           "\"$HOME\" \"$(pwd)\""},
                          options);
  REQUIRE(child.ok());
  Recorder r;
  child->transport()->Start(&r);
  REQUIRE(TryRunUntil(io, [&] { return r.closes == 1; }));
  CHECK(r.data == "hello|/nowhere|/tmp");
  auto exit = child->Wait();
  REQUIRE(exit.ok());
  CHECK(exit->success());
}

TEST_CASE("process: destroying a ChildProcess kills and reaps the child",
          "[process]") {
  asio::io_context io;
  pid_t pid = -1;
  std::optional<absl::StatusOr<ExitStatus>> async_exit;
  {
    auto child = SpawnChild(io.get_executor(), {"/bin/cat"});
    REQUIRE(child.ok());
    pid = child->pid();
    child->AsyncWait(
        [&](absl::StatusOr<ExitStatus> e) { async_exit = std::move(e); });
    io.poll();
  }
  // Reaped: no longer our child (not a zombie).
  errno = 0;
  CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);
  CHECK(errno == ECHILD);
  // The pending AsyncWait learns how it ended.
  REQUIRE(TryRunUntil(io, [&] { return async_exit.has_value(); }));
  REQUIRE(async_exit->ok());
  CHECK((*async_exit)->term_signal == SIGKILL);
}

TEST_CASE("process: PipeStream over pipe2() descriptors", "[process]") {
  asio::io_context io;
  int ab[2];  // a writes [1], b reads [0]
  int ba[2];  // b writes [1], a reads [0]
  REQUIRE(::pipe2(ab, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(ba, O_CLOEXEC) == 0);
  auto a = PipeStream::Adopt(io.get_executor(), ba[0], ab[1]);
  auto b = PipeStream::Adopt(io.get_executor(), ab[0], ba[1]);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  TransportOptions spin;
  spin.spin_read = std::chrono::microseconds(100);  // read_some path
  auto ta = MakeTransport(std::move(*a), "pipe a");
  auto tb = MakeTransport(std::move(*b), "pipe b", spin);
  Recorder ra, rb;
  const std::string data = Pattern(300000);
  size_t echoed = 0;
  // b echoes everything back; a closes gracefully once all came back.
  rb.on_data = [&](Transport& t) {
    t.Send(ByteSpan(rb.data.substr(echoed)));
    echoed = rb.data.size();
  };
  ra.on_data = [&](Transport& t) {
    if (ra.data.size() == data.size()) t.CloseAfterFlush();
  };
  ta->Start(&ra);
  tb->Start(&rb);
  ta->Send(ByteSpan(data));
  REQUIRE(TryRunUntil(io, [&] { return ra.closes == 1 && rb.closes == 1; }));
  CHECK(ra.data == data);
  CHECK(rb.data == data);
  CHECK(ra.status.ok());  // half-close, then b's close ended the linger
  CHECK(absl::StrContains(rb.status.message(), "pipe b: read"));
  CHECK(absl::StrContains(rb.status.message(), "closed by peer"));
}

// An unnamed regular file holding `content`, positioned at its start.
int RegularFileWith(const std::string& content) {
  const int fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return fd;
  const ssize_t n = ::write(fd, content.data(), content.size());
  if (n != static_cast<ssize_t>(content.size()) || ::lseek(fd, 0, SEEK_SET)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_CASE("process: PipeStream reads a regular file to its end", "[process]") {
  // epoll refuses regular files; Asio then reads them directly.
  asio::io_context io;
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  const int file_fd = RegularFileWith("file contents");
  REQUIRE(file_fd >= 0);
  auto s = PipeStream::Adopt(io.get_executor(), file_fd, p[1]);
  REQUIRE(s.ok());
  auto t = MakeTransport(std::move(*s), "file");
  Recorder r;
  t->Start(&r);
  REQUIRE(TryRunUntil(io, [&] { return r.closes == 1; }));
  CHECK(r.data == "file contents");
  CHECK(absl::StrContains(r.status.message(), "closed by peer"));
  ::close(p[0]);
}

// Runs `make` with fds 0 and 1 temporarily replaced by `in` and `out`
// (restored before returning, so test output is unaffected).
absl::StatusOr<std::shared_ptr<Transport>> WithStdio(
    int in, int out,
    const std::function<absl::StatusOr<std::shared_ptr<Transport>>()>& make) {
  std::cout.flush();
  std::fflush(stdout);
  const int saved_in = ::fcntl(0, F_DUPFD_CLOEXEC, 3);
  const int saved_out = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  ::dup2(in, 0);
  ::dup2(out, 1);
  auto result = make();
  ::dup2(saved_in, 0);
  ::dup2(saved_out, 1);
  ::close(saved_in);
  ::close(saved_out);
  return result;
}

TEST_CASE("process: MakeStdioTransport speaks on stdin and stdout",
          "[process]") {
  asio::io_context io;
  int to_agent[2];    // the agent's stdin
  int from_agent[2];  // the agent's stdout
  REQUIRE(::pipe2(to_agent, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(from_agent, O_CLOEXEC) == 0);
  auto agent = WithStdio(to_agent[0], from_agent[1],
                         [&] { return MakeStdioTransport(io.get_executor()); });
  // The transport holds its own duplicates.
  ::close(to_agent[0]);
  ::close(from_agent[1]);
  REQUIRE(agent.ok());
  CHECK((*agent)->description() == "stdio");
  auto peer_stream =
      PipeStream::Adopt(io.get_executor(), from_agent[0], to_agent[1]);
  REQUIRE(peer_stream.ok());
  auto peer = MakeTransport(std::move(*peer_stream), "orchestrator");
  Recorder ra, rp;
  (*agent)->Start(&ra);
  peer->Start(&rp);
  (*agent)->Send(ByteSpan("from agent"));
  peer->Send(ByteSpan("from orchestrator"));
  REQUIRE(TryRunUntil(io, [&] {
    return ra.data == "from orchestrator" && rp.data == "from agent";
  }));
  (*agent)->CloseAfterFlush();
  REQUIRE(TryRunUntil(io, [&] { return ra.closes == 1 && rp.closes == 1; }));
  CHECK(ra.status.ok());
  CHECK(absl::StrContains(rp.status.message(), "closed by peer"));
  // The process's own fds 0 and 1 are still open.
  CHECK(::fcntl(0, F_GETFD) != -1);
  CHECK(::fcntl(1, F_GETFD) != -1);
}

TEST_CASE("process: MakeStdioTransport reads a file given as stdin",
          "[process]") {
  asio::io_context io;
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  const int file_fd = RegularFileWith("task input");
  REQUIRE(file_fd >= 0);
  auto agent = WithStdio(file_fd, p[1],
                         [&] { return MakeStdioTransport(io.get_executor()); });
  ::close(file_fd);
  ::close(p[1]);
  REQUIRE(agent.ok());
  Recorder r;
  (*agent)->Start(&r);
  REQUIRE(TryRunUntil(io, [&] { return r.closes == 1; }));
  CHECK(r.data == "task input");
  CHECK(absl::StrContains(r.status.message(), "stdio: read: closed by peer"));
  ::close(p[0]);
}

}  // namespace
}  // namespace symwire
