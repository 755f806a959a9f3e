// File: tests/transport/shards_test.cpp
// A Server on several threads (ServerOptions::threads, issue #13): the
// shards over real sockets on 127.0.0.1. Connections are spread over the
// shards round-robin, so a client's redial lands on the next shard: its
// resume is handed to the shard that owns the session. Clients run on the
// test's io_context; every wait is bounded (RunUntil).
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/bind_executor.hpp"
#include "boost/asio/io_context.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using testing::EchoStreamingAgent;
using testing::FastClient;
using testing::FastServer;
using testing::RespondCheck;
using testing::RunUntil;

// A sharded server and what its on_session saw (from the shards' threads).
struct Sharded {
  std::mutex mu;
  std::vector<std::shared_ptr<Channel>> sessions;
  std::set<std::thread::id> threads;
  std::shared_ptr<Server> server;
  uint16_t port = 0;

  explicit Sharded(ServerOptions so) {
    auto s = Server::Create(so, [this](const std::shared_ptr<Channel>& p) {
      // Catch2 assertions are not thread-safe: the agent ignores failures.
      EchoStreamingAgent(p, RespondCheck::kIgnore);
      const std::lock_guard<std::mutex> lock(mu);
      sessions.push_back(p);
      threads.insert(std::this_thread::get_id());
    });
    REQUIRE(s.ok());
    server = *s;
    auto ep = server->ListenTcp("127.0.0.1", 0);
    REQUIRE(ep.ok());
    port = ep->port();
  }
  // The shards' Channels (their timers, their sockets) belong to the
  // server's io_contexts: released before the server.
  ~Sharded() {
    std::vector<std::shared_ptr<Channel>> drop;
    {
      const std::lock_guard<std::mutex> lock(mu);
      drop.swap(sessions);
    }
    drop.clear();
    server.reset();
  }
  size_t session_count() {
    const std::lock_guard<std::mutex> lock(mu);
    return sessions.size();
  }
  size_t thread_count() {
    const std::lock_guard<std::mutex> lock(mu);
    return threads.size();
  }
};

ServerOptions Threads(uint32_t n) {
  ServerOptions so = FastServer();
  so.threads = n;
  return so;
}

std::shared_ptr<Channel> Connect(asio::io_context& io, uint16_t port) {
  auto c = Client::Connect(io.get_executor(),
                           TcpDialer(io.get_executor(), "127.0.0.1", port),
                           FastClient());
  REQUIRE(c.ok());
  absl::Status established = absl::UnknownError("pending");
  (*c)->async_wait_established(
      [&](absl::Status st) { established = std::move(st); });
  RunUntil(io, [&] { return !absl::IsUnknown(established); });
  REQUIRE(established.ok());
  return *c;
}

TEST_CASE("server threads: connections are spread over the shards",
          "[runtime][shards]") {
  asio::io_context io;
  Sharded s(Threads(4));
  CHECK(s.server->threads() == 4);
  std::vector<std::shared_ptr<Channel>> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(Connect(io, s.port));
  RunUntil(io, [&] { return s.session_count() == 8; });
  CHECK(s.thread_count() == 4);  // round-robin: two sessions per shard
  std::map<int, absl::StatusOr<std::string>> results;
  for (int i = 0; i < 8; ++i) {
    clients[static_cast<size_t>(i)]->async_call(
        absl::StrCat("1c", i), {},
        [&results, i](absl::StatusOr<std::string> r) {
          results.emplace(i, r);
        });
  }
  RunUntil(io, [&] { return results.size() == 8; });
  for (const auto& [i, r] : results) {
    REQUIRE(r.ok());
    CHECK(*r == absl::StrCat("1c", i, ":0;1c", i, ":done"));
  }
  const ServerCounters c = s.server->counters();
  CHECK(c.connections_accepted == 8);
  CHECK(c.sessions_established == 8);
  CHECK(c.resumes_handed_off == 0);
  CHECK(s.server->sessions() == 8);
  CHECK(s.server->connections() == 8);
}

TEST_CASE(
    "server threads: a resume landing on another shard is handed to "
    "the owner; nothing lost, doubled or reordered",
    "[runtime][shards]") {
  asio::io_context io;
  Sharded s(Threads(4));
  auto client = Connect(io, s.port);  // shard 0 (the first accepted)
  constexpr int kTasks = 300;
  std::map<int, std::string> results;
  size_t failed = 0;
  for (int i = 0; i < kTasks; ++i) {
    client->async_call(absl::StrCat("2t", i), {},
                       [&, i](absl::StatusOr<std::string> r) {
                         if (!r.ok()) {
                           ++failed;
                           return;
                         }
                         CHECK(results.emplace(i, *r).second);
                       });
    // Each redial is the next accepted connection: the next shard.
    if (i % 60 == 30) client->KillConnection();
  }
  RunUntil(io, [&] { return results.size() + failed == size_t{kTasks}; });
  CHECK(failed == 0);
  for (int i = 0; i < kTasks; ++i) {
    CHECK(results[i] == absl::StrCat("2t", i, ":0;2t", i, ":1;2t", i, ":done"));
  }
  CHECK(client->reconnects() >= 1);
  const ServerCounters c = s.server->counters();
  CHECK(c.resumes_handed_off >= 1);
  CHECK(c.resumes >= 1);
  CHECK(c.resumes_rejected == 0);
  CHECK(c.sessions_established == 1);
  CHECK(s.session_count() == 1);  // the same session, resumed
  RunUntil(io, [&] { return s.server->connections() == 1; });
  CHECK(s.server->sessions() == 1);
}

TEST_CASE("server threads: async_shutdown drains every shard",
          "[runtime][shards]") {
  asio::io_context io;
  Sharded s(Threads(3));
  std::vector<std::shared_ptr<Channel>> clients;
  for (int i = 0; i < 6; ++i) clients.push_back(Connect(io, s.port));
  RunUntil(io, [&] { return s.server->sessions() == 6; });
  absl::Status shut = absl::UnknownError("pending");
  s.server->async_shutdown(
      asio::bind_executor(io, [&](absl::Status st) { shut = std::move(st); }));
  RunUntil(io, [&] { return !absl::IsUnknown(shut); });
  CHECK(shut.ok());
  CHECK(s.server->sessions() == 0);
  for (auto& c : clients) {
    RunUntil(io, [&] { return c->state() == SessionState::kClosed; });
  }
}

TEST_CASE("server threads: max_connections holds across shards",
          "[runtime][shards]") {
  asio::io_context io;
  ServerOptions so = Threads(4);
  so.max_connections = 3;
  Sharded s(so);
  std::vector<std::shared_ptr<Channel>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(Connect(io, s.port));
  // Two more: each lands on a shard that has no connection of its own,
  // and is refused by the server-wide count.
  for (int i = 0; i < 2; ++i) {
    auto c = Client::Connect(io.get_executor(),
                             TcpDialer(io.get_executor(), "127.0.0.1", s.port),
                             FastClient());
    REQUIRE(c.ok());
    clients.push_back(*c);
  }
  RunUntil(io, [&] { return s.server->counters().connections_refused >= 2; });
  CHECK(s.server->connections() <= 3);
  CHECK(s.server->counters().sessions_established == 3);
}

}  // namespace
}  // namespace symwire
