// File: tests/transport/runtime_test.cpp
// The runtime (runtime.hpp) over real sockets on 127.0.0.1 and Unix
// sockets: tasks, streaming, cancel, deadlines, reconnect and resume,
// graceful close and shutdown, and the three completion-token styles.
// Every test runs its io_context with a time bound and fails past it.
#include "symwire/transport/runtime.hpp"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/asio/use_future.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/tcp.hpp"

namespace symwire {
namespace {

using namespace std::chrono_literals;

ServerOptions FastServer() {
  ServerOptions o;
  o.session.agent_id = "test-agent";
  o.session.role = AgentRole::kAgent;
  o.drain_timeout = 2000ms;
  return o;
}

ClientOptions FastClient() {
  ClientOptions o;
  o.session.agent_id = "test-orchestrator";
  o.session.role = AgentRole::kOrchestrator;
  // Reconnect quickly in tests.
  o.session.backoff.initial = absl::Milliseconds(5);
  o.session.backoff.max = absl::Milliseconds(50);
  return o;
}

// An agent that answers "<payload>" with parts "<payload>:0".."<payload>:n-1"
// and a final "<payload>:done", n taken from the payload's leading digit.
void EchoStreamingAgent(const std::shared_ptr<Peer>& peer) {
  peer->SetTaskHandler([](IncomingTask task) {
    const std::string p = task.payload_string();
    const int parts = p.empty() || p[0] < '0' || p[0] > '9' ? 0 : p[0] - '0';
    for (int i = 0; i < parts; ++i) {
      REQUIRE(task.Respond(absl::StrCat(p, ":", i, ";"), false).ok());
    }
    REQUIRE(task.Respond(absl::StrCat(p, ":done"), true).ok());
  });
}

// Runs `io` until `done` or the time bound; fails the test on timeout.
template <class Pred>
void RunUntil(asio::io_context& io, Pred done,
              std::chrono::milliseconds bound = 10000ms) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    io.run_for(5ms);
    if (io.stopped()) io.restart();
  }
}

struct TcpFixture {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::vector<std::shared_ptr<Peer>> sessions;
  uint16_t port = 0;
  std::shared_ptr<Peer> client;
  std::vector<PeerEvent> client_events;

  explicit TcpFixture(ServerOptions so = FastServer(),
                      ClientOptions co = FastClient()) {
    auto s = Server::Create(io.get_executor(), so,
                            [this](const std::shared_ptr<Peer>& p) {
                              sessions.push_back(p);
                              EchoStreamingAgent(p);
                            });
    REQUIRE(s.ok());
    server = *s;
    auto ep = server->ListenTcp("127.0.0.1", 0);
    REQUIRE(ep.ok());
    port = ep->port();
    auto c = Client::Connect(
        io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", port), co);
    REQUIRE(c.ok());
    client = *c;
    client->SetObserver(
        [this](const PeerEvent& e) { client_events.push_back(e); });
    absl::Status established = absl::UnknownError("pending");
    client->async_wait_established(
        [&](absl::Status st) { established = std::move(st); });
    RunUntil(io, [&] { return !absl::IsUnknown(established); });
    REQUIRE(established.ok());
  }
  int Count(PeerEvent::Kind kind) const {
    int n = 0;
    for (const auto& e : client_events) n += e.kind == kind ? 1 : 0;
    return n;
  }
};

TEST_CASE("runtime: a task streams its responses over TCP", "[runtime]") {
  TcpFixture f;
  CHECK(f.Count(PeerEvent::Kind::kConnected) == 1);
  CHECK(absl::StrContains(f.client->transport_description(), "127.0.0.1"));
  absl::StatusOr<std::string> result = absl::UnknownError("pending");
  f.client->async_call("3abc", {}, [&](absl::StatusOr<std::string> r) {
    result = std::move(r);
  });
  RunUntil(f.io, [&] { return !absl::IsUnknown(result.status()); });
  REQUIRE(result.ok());
  CHECK(*result == "3abc:0;3abc:1;3abc:2;3abc:done");
  REQUIRE(f.sessions.size() == 1);
  CHECK(f.server->sessions() == 1);
  CHECK(f.server->connections() == 1);
}

TEST_CASE("runtime: async_next yields partials in order, then the final",
          "[runtime]") {
  TcpFixture f;
  absl::StatusOr<TaskCall> call = f.client->Submit("2xy");
  REQUIRE(call.ok());
  std::vector<Response> got;
  absl::Status end;
  std::function<void()> next = [&] {
    call->async_next([&](absl::StatusOr<Response> r) {
      if (!r.ok()) {
        end = r.status();
        return;
      }
      got.push_back(*r);
      next();
    });
  };
  next();
  RunUntil(f.io, [&] { return !end.ok(); });
  REQUIRE(got.size() == 3);
  CHECK(got[0].payload == "2xy:0;");
  CHECK_FALSE(got[0].final);
  CHECK(got[2].payload == "2xy:done");
  CHECK(got[2].final);
  CHECK(end.code() == absl::StatusCode::kOutOfRange);
  CHECK(call->done());
  CHECK(call->result()->ok());
}

}  // namespace
}  // namespace symwire
