// File: tests/transport/shards_test.cpp
// A Server on several threads (ServerOptions::threads, issue #13): the
// shards over real sockets on 127.0.0.1. Connections are spread over the
// shards round-robin, so a client's redial lands on the next shard: its
// resume is handed to the shard that owns the session. Clients run on the
// test's io_context; every wait is bounded (RunUntil).
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/bind_executor.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/session/auth.hpp"
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

  using Agent = std::function<void(const std::shared_ptr<Channel>&)>;
  // `agent` sets each session's task handler (on its shard's thread); by
  // default an echo agent. Catch2 assertions are not thread-safe: agents
  // must not use them.
  explicit Sharded(ServerOptions so, Agent agent = {}) {
    if (!agent) {
      agent = [](const std::shared_ptr<Channel>& p) {
        EchoStreamingAgent(p, RespondCheck::kIgnore);
      };
    }
    auto s =
        Server::Create(so, [this, agent](const std::shared_ptr<Channel>& p) {
          agent(p);
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

TEST_CASE(
    "server threads: failed authentications block their source on every "
    "shard",
    "[runtime][shards]") {
  asio::io_context io;
  ServerOptions so = Threads(4);
  so.session.authenticator = TokenAuthenticator("right token");
  so.max_auth_failures_per_source = 2;
  so.auth_failure_window = std::chrono::seconds(60);
  so.auth_block_time = std::chrono::seconds(60);
  Sharded s(so);
  const auto attempt = [&](const std::string& token) {
    ClientOptions co = FastClient();
    co.session.authenticator = TokenAuthenticator(token);
    co.retry_first_connect = false;
    auto c =
        Client::Connect(io.get_executor(),
                        TcpDialer(io.get_executor(), "127.0.0.1", s.port), co);
    REQUIRE(c.ok());
    absl::Status st = absl::UnknownError("pending");
    (*c)->async_wait_established([&st](absl::Status r) { st = std::move(r); });
    RunUntil(
        io, [&] { return !absl::IsUnknown(st); }, "an attempt to end");
    return st;
  };
  // Round-robin: the two failures are counted on shards 0 and 1 (each
  // shard sees one: a per-shard count would block nothing).
  for (int i = 0; i < 2; ++i) {
    const absl::Status st = attempt("wrong token");
    INFO(st.ToString());
    CHECK(GetErrorCode(st) == ErrorCode::kUnauthenticated);
  }
  RunUntil(
      io, [&] { return s.server->counters().auth_failures == 2; },
      "both failures counted");
  // Shards 2 and 3 have seen no failure of their own: they refuse the
  // source all the same, even with the right token.
  for (int i = 0; i < 2; ++i) {
    const absl::Status st = attempt("right token");
    INFO(st.ToString());
    CHECK(GetErrorCode(st) == ErrorCode::kConnectionLost);
  }
  const ServerCounters c = s.server->counters();
  CHECK(c.auth_refused == 2);
  CHECK(c.sessions_established == 0);
}

TEST_CASE(
    "server threads: async_shutdown waits for tasks in flight on every "
    "shard, then ends them all",
    "[runtime][shards]") {
  asio::io_context io;
  // The agent holds each task (answered below, on its shard's thread).
  std::mutex mu;
  std::vector<std::pair<std::shared_ptr<Channel>, IncomingTask>> held;
  std::set<std::thread::id> holding_threads;
  Sharded s(Threads(3), [&](const std::shared_ptr<Channel>& p) {
    std::weak_ptr<Channel> weak = p;
    p->SetTaskHandler([&, weak](IncomingTask task) {
      const std::lock_guard<std::mutex> lock(mu);
      held.emplace_back(weak.lock(), std::move(task));
      holding_threads.insert(std::this_thread::get_id());
    });
  });
  // What is held belongs to the shards' io_contexts: dropped before the
  // server (also when a REQUIRE below ends the test early).
  struct DropHeld {
    std::function<void()> drop;
    ~DropHeld() { drop(); }
  } drop_held{[&] {
    const std::lock_guard<std::mutex> lock(mu);
    held.clear();
  }};
  constexpr int kClients = 6;
  std::vector<std::shared_ptr<Channel>> clients;
  std::vector<int> draining(kClients, 0);
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Connect(io, s.port));
    clients.back()->SetObserver(
        [&draining, k = static_cast<size_t>(i)](const ChannelEvent& e) {
          if (e.kind == ChannelEvent::Kind::kPeerDraining) ++draining[k];
        });
  }
  std::map<int, absl::StatusOr<std::string>> results;
  for (int i = 0; i < kClients; ++i) {
    clients[static_cast<size_t>(i)]->async_call(
        absl::StrCat("6d", i), {},
        [&results, i](absl::StatusOr<std::string> r) {
          results.emplace(i, std::move(r));
        });
  }
  const auto held_count = [&] {
    const std::lock_guard<std::mutex> lock(mu);
    return held.size();
  };
  RunUntil(
      io, [&] { return held_count() == size_t{kClients}; },
      "every task held by its shard");
  {
    const std::lock_guard<std::mutex> lock(mu);
    CHECK(holding_threads.size() == 3);  // in flight on every shard
  }
  absl::Status shut = absl::UnknownError("pending");
  s.server->async_shutdown(
      asio::bind_executor(io, [&](absl::Status st) { shut = std::move(st); }));
  // Every shard drains (each client is told), and the server is not done
  // while any shard still has a task in flight.
  RunUntil(
      io,
      [&] {
        return std::all_of(draining.begin(), draining.end(),
                           [](int d) { return d > 0; });
      },
      "every client told of the drain");
  CHECK(absl::IsUnknown(shut));
  CHECK(results.empty());
  {
    // Each task answered on its own shard's thread.
    const std::lock_guard<std::mutex> lock(mu);
    for (auto& [channel, task] : held) {
      REQUIRE(channel != nullptr);
      asio::post(channel->get_executor(), [t = std::move(task)]() mutable {
        static_cast<void>(t.Respond(std::string_view("drained"), true));
      });
    }
    held.clear();
  }
  RunUntil(
      io, [&] { return !absl::IsUnknown(shut); }, "the shutdown");
  CHECK(shut.ok());
  RunUntil(
      io, [&] { return results.size() == size_t{kClients}; }, "every answer");
  for (const auto& [i, r] : results) {
    INFO(i);
    REQUIRE(r.ok());
    CHECK(*r == "drained");
  }
  CHECK(s.server->sessions() == 0);
  for (auto& c : clients) {
    RunUntil(io, [&] { return c->state() == SessionState::kClosed; });
  }
}

}  // namespace
}  // namespace symwire
