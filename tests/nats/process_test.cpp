// An agent process killed with SIGKILL in the middle of a task's stream of
// responses (tests/nats/agent_main.cpp): JetStream redelivers the task
// after the ack wait, another agent runs it, and the orchestrator reports
// it complete exactly once (SPEC.md §21.3, §21.4).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "symwire/nats/client.hpp"
#include "symwire/nats/pool.hpp"
#include "symwire/testing/nats_server.hpp"

extern char** environ;

namespace symwire {
namespace {

using testing::NatsServer;
using Kind = NatsResponse::Kind;

// AgentProcess
// nats_test_agent with its stdout on a pipe; killed (SIGKILL) and reaped
// by the destructor if still running.
class AgentProcess {
 public:
  AgentProcess(const std::string& url, const std::string& pool, int ack_wait_ms,
               int part_delay_ms) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    read_fd_ = fds[0];
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<std::string> args = {SYMWIRE_NATS_TEST_AGENT, url, pool,
                                     std::to_string(ack_wait_ms),
                                     std::to_string(part_delay_ms)};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc =
        posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    REQUIRE(rc == 0);
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  ~AgentProcess() {
    Kill();
    ::close(read_fd_);
  }

  // The next line of its output, waiting at most `timeout`; "" on timeout
  // or end of output.
  std::string ReadLine(std::chrono::milliseconds timeout) {
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      pollfd p{read_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[256];
      const ssize_t n = ::read(read_fd_, chunk, sizeof(chunk));
      if (n <= 0) return {};
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);  // SIGKILL: bounded
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
  std::string buffer_;
};

TEST_CASE("nats process: agent SIGKILLed mid-stream, the task completes once") {
  absl::StatusOr<std::unique_ptr<NatsServer>> server = NatsServer::Start();
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  NatsConnectOptions connect;
  connect.url = (*server)->url();
  NatsPoolOptions pool;
  pool.pool = "proc";
  pool.ack_wait = absl::Seconds(1);
  pool.max_deliveries = 3;
  absl::StatusOr<NatsOrchestrator> orch =
      NatsOrchestrator::Create(*NatsClient::Connect(connect), {pool, "orch"});
  REQUIRE(orch.ok());

  // Slow parts: the kill lands between the first and second partial.
  AgentProcess doomed((*server)->url(), "proc", 1000, 10000);
  REQUIRE(doomed.ReadLine(std::chrono::seconds(10)) == "ready");
  const std::string job = "job";
  absl::StatusOr<uint64_t> id = orch->Submit(
      {reinterpret_cast<const std::byte*>(job.data()), job.size()});
  REQUIRE(id.ok());
  REQUIRE(doomed.ReadLine(std::chrono::seconds(10)) ==
          absl::StrCat("partial ", *id, " 0"));
  doomed.Kill();

  // Its partial reached the orchestrator.
  absl::StatusOr<std::optional<NatsResponse>> first =
      orch->Next(absl::Seconds(5));
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  CHECK((*first)->payload == "job/part0");
  CHECK((*first)->attempt == 1);

  // Another agent process gets the task after the ack wait.
  AgentProcess survivor((*server)->url(), "proc", 1000, 0);
  REQUIRE(survivor.ReadLine(std::chrono::seconds(10)) == "ready");
  std::vector<NatsResponse> rest;
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((rest.empty() || rest.back().kind != Kind::kFinal) &&
         std::chrono::steady_clock::now() < give_up) {
    absl::StatusOr<std::optional<NatsResponse>> r =
        orch->Next(absl::Seconds(1));
    REQUIRE(r.ok());
    if (r->has_value()) rest.push_back(**r);
  }
  REQUIRE(rest.size() == 5);
  CHECK(rest[0].kind == Kind::kRestarted);
  CHECK(rest[0].attempt == 2);
  for (int i = 0; i < 3; ++i) {
    CHECK(rest[static_cast<size_t>(i) + 1].kind == Kind::kPartial);
    CHECK(rest[static_cast<size_t>(i) + 1].payload ==
          absl::StrCat("job/part", i));
  }
  CHECK(rest[4].kind == Kind::kFinal);
  CHECK(rest[4].payload == "job/done");
  CHECK(rest[4].attempt == 2);
  // Nothing more: the task was acknowledged once, after its final response.
  absl::StatusOr<std::optional<NatsResponse>> none =
      orch->Next(absl::Milliseconds(1500));
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
}

}  // namespace
}  // namespace symwire
