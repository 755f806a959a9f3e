// Moving an orchestrator and its agents from TCP to a NATS pool is a
// configuration change (issue #15; nats_runtime/pool.hpp): the same
// templated orchestrator code and the same agent handlers run against a
// Client/Server over TCP and against a NatsPoolChannel/NatsPoolServer on a
// real nats-server, and report the same results: a plain call, a streamed
// response (async_next and async_call), an unregistered method, a cancel
// (both sides' statuses) and a deadline (both sides).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/nats_runtime/pool.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/testing/nats_server.hpp"
#include "symwire/transport/tcp.hpp"

namespace symwire {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Event: a one-shot signal an awaiting coroutine sees whether it was
// raised before or after it started waiting.
struct Event {
  explicit Event(const asio::any_io_executor& ex) : timer(ex) {
    timer.expires_at(Clock::time_point::max());
  }
  void Raise() { timer.expires_at(Clock::time_point::min()); }
  asio::awaitable<void> Wait() {
    auto w = timer.async_wait(asio::as_tuple(asio::use_awaitable));
    static_cast<void>(co_await std::move(w));
  }
  asio::steady_timer timer;
};

// What the agent's handlers saw.
struct Probe {
  explicit Probe(const asio::any_io_executor& ex)
      : slow_started(ex), slow_ended(ex), sleepy_ended(ex) {}
  Event slow_started, slow_ended, sleepy_ended;
  absl::Status slow_status, sleepy_status;
  bool slow_cancelled_flag = false;
};

// Task ids differ between the two runs: "task <id>".
std::string Normal(const absl::Status& s) {
  static const std::regex kId("task [0-9]+");
  return absl::StrCat(
      absl::StatusCodeToString(s.code()), " ", ErrorCodeName(GetErrorCode(s)),
      " ", std::regex_replace(std::string(s.message()), kId, "task <id>"));
}

// The agent's handlers, registered unchanged on a Server and on a
// NatsPoolServer.
template <class ServerPtr>
void RegisterHandlers(const ServerPtr& server, Probe& probe) {
  REQUIRE(server
              ->Handle("echo",
                       [](IncomingTask t) {
                         std::string out = t.payload_string();
                         for (const auto& [k, v] : t.metadata()) {
                           absl::StrAppend(&out, "|", k, "=", v);
                         }
                         static_cast<void>(t.Respond(out, true));
                       })
              .ok());
  REQUIRE(server
              ->Handle("stream",
                       [](IncomingTask t) {
                         for (const char* w : {"one ", "two ", "three"}) {
                           REQUIRE(t.Respond(w, false).ok());
                         }
                         REQUIRE(t.Respond("", true).ok());
                       })
              .ok());
  REQUIRE(server
              ->Handle("slow",
                       [&probe](IncomingTask t) {
                         t.OnCancel([&probe, t](const absl::Status& why) {
                           probe.slow_status = why;
                           probe.slow_cancelled_flag = t.cancelled();
                           probe.slow_ended.Raise();
                         });
                         probe.slow_started.Raise();
                       })
              .ok());
  REQUIRE(server
              ->Handle("sleepy",
                       [&probe](IncomingTask t) {
                         t.OnCancel([&probe](const absl::Status& why) {
                           probe.sleepy_status = why;
                           probe.sleepy_ended.Raise();
                         });
                       })
              .ok());
}

// The orchestrator, unchanged for both: one line per observation.
template <class ChannelPtr>
asio::awaitable<std::vector<std::string>> Orchestrate(ChannelPtr channel,
                                                      Probe& probe) {
  std::vector<std::string> out;
  auto established = channel->async_wait_established(asio::use_awaitable);
  const absl::Status up = co_await std::move(established);
  out.push_back(absl::StrCat("established ", up.ToString()));

  CallOptions echo;
  echo.method = "echo";
  echo.metadata = {{"k", "v"}};
  auto call = channel->async_call("hi", echo, asio::use_awaitable);
  absl::StatusOr<std::string> r = co_await std::move(call);
  out.push_back(absl::StrCat("echo ", r.ok() ? *r : Normal(r.status())));

  CallOptions stream;
  stream.method = "stream";
  auto submit = channel->async_submit("go", stream, asio::use_awaitable);
  absl::StatusOr<TaskCall> task = co_await std::move(submit);
  REQUIRE(task.ok());
  for (int i = 0; i < 6; ++i) {
    auto next = task->async_next(asio::use_awaitable);
    absl::StatusOr<Response> resp = co_await std::move(next);
    if (!resp.ok()) {
      out.push_back(absl::StrCat("stream end ", Normal(resp.status())));
      break;
    }
    out.push_back(absl::StrCat("stream ", resp->final ? "final" : "partial",
                               " '", resp->payload, "'"));
  }
  auto joined = channel->async_call("go", stream, asio::use_awaitable);
  r = co_await std::move(joined);
  out.push_back(absl::StrCat("stream call ", r.ok() ? *r : "error"));

  CallOptions nope;
  nope.method = "nope";
  auto unknown = channel->async_submit("x", nope, asio::use_awaitable);
  task = co_await std::move(unknown);
  REQUIRE(task.ok());
  auto failed = task->async_next(asio::use_awaitable);
  absl::StatusOr<Response> f = co_await std::move(failed);
  out.push_back(absl::StrCat("unknown ", Normal(f.status()), " retryable ",
                             task->retryable()));

  CallOptions slow;
  slow.method = "slow";
  slow.label = "job-1";
  auto slow_submit = channel->async_submit("x", slow, asio::use_awaitable);
  task = co_await std::move(slow_submit);
  REQUIRE(task.ok());
  co_await probe.slow_started.Wait();
  out.push_back(absl::StrCat("cancel ", task->Cancel().ToString()));
  auto cancelled = task->async_next(asio::use_awaitable);
  f = co_await std::move(cancelled);
  out.push_back(absl::StrCat("cancelled ", Normal(f.status())));
  co_await probe.slow_ended.Wait();
  out.push_back(absl::StrCat("agent saw ", Normal(probe.slow_status),
                             " cancelled() ", probe.slow_cancelled_flag));

  CallOptions sleepy;
  sleepy.method = "sleepy";
  sleepy.deadline = absl::Milliseconds(300);
  auto late = channel->async_call("x", sleepy, asio::use_awaitable);
  r = co_await std::move(late);
  out.push_back(
      absl::StrCat("deadline ", absl::StatusCodeToString(r.status().code())));
  co_await probe.sleepy_ended.Wait();
  // Which of the two ends the agent's task first (its own deadline or the
  // submitter's cancel) is a race on both transports: the code is what
  // both guarantee.
  out.push_back(absl::StrCat(
      "agent deadline ", absl::StatusCodeToString(probe.sleepy_status.code())));
  co_return out;
}

// Run: the orchestrator on `io`, bounded.
template <class ChannelPtr>
std::vector<std::string> Run(asio::io_context& io, ChannelPtr channel,
                             Probe& probe) {
  std::optional<std::vector<std::string>> lines;
  asio::co_spawn(io, Orchestrate(channel, probe),
                 [&](std::exception_ptr e, std::vector<std::string> v) {
                   if (e) std::rethrow_exception(e);
                   lines = std::move(v);
                 });
  const auto give_up = Clock::now() + std::chrono::seconds(30);
  while (!lines && Clock::now() < give_up) {
    io.run_for(std::chrono::milliseconds(50));
  }
  REQUIRE(lines.has_value());
  return *lines;
}

TEST_CASE("same API: an orchestrator and its handlers, over TCP and a pool",
          "[nats][same_api]") {
  std::vector<std::string> tcp_lines;
  {
    asio::io_context io;
    Probe probe(io.get_executor());
    ServerOptions agent;
    agent.session.role = AgentRole::kAgent;
    auto server = Server::Create(io.get_executor(), agent, [](const auto&) {});
    REQUIRE(server.ok());
    RegisterHandlers(*server, probe);
    auto endpoint = (*server)->ListenTcp("127.0.0.1", 0);
    REQUIRE(endpoint.ok());
    ClientOptions orchestrator;
    orchestrator.session.role = AgentRole::kOrchestrator;
    auto client = Client::Connect(
        io.get_executor(),
        TcpDialer(io.get_executor(), "127.0.0.1", endpoint->port()),
        orchestrator);
    REQUIRE(client.ok());
    tcp_lines = Run(io, *client, probe);
    (*client)->Abort(absl::CancelledError("test over"));
    (*server)->Stop();
    io.run_for(std::chrono::milliseconds(50));
  }

  std::vector<std::string> nats_lines;
  {
    absl::StatusOr<std::unique_ptr<testing::NatsServer>> broker =
        testing::NatsServer::Start();
    INFO(broker.status().ToString());
    REQUIRE(broker.ok());
    NatsConnectOptions connect;
    connect.url = (*broker)->url();
    absl::StatusOr<NatsClient> client = NatsClient::Connect(connect);
    REQUIRE(client.ok());
    NatsPoolOptions pool;
    pool.pool = "same";
    pool.storage = NatsStorage::kMemory;

    asio::io_context io;
    Probe probe(io.get_executor());
    // The configuration change: these two objects instead of a Server and
    // a Client.
    NatsPoolServerOptions agent;
    agent.agent.pool = pool;
    agent.concurrency = 2;  // the slow task holds one agent
    auto server = NatsPoolServer::Create(io.get_executor(), *client, agent);
    REQUIRE(server.ok());
    RegisterHandlers(*server, probe);
    REQUIRE((*server)->Start().ok());
    NatsPoolChannelOptions orchestrator;
    orchestrator.orchestrator = {pool, "orch"};
    auto channel =
        NatsPoolChannel::Create(io.get_executor(), *client, orchestrator);
    INFO(channel.status().ToString());
    REQUIRE(channel.ok());
    nats_lines = Run(io, *channel, probe);
    CHECK((*channel)->open_tasks() == 0);
  }

  const std::vector<std::string> want = {
      "established OK",
      "echo hi|k=v",
      "stream partial 'one '",
      "stream partial 'two '",
      "stream partial 'three'",
      "stream final ''",
      "stream end OUT_OF_RANGE OK method \"stream\", task <id> finished: no "
      "more responses",
      "stream call one two three",
      "unknown UNIMPLEMENTED UNIMPLEMENTED method \"nope\", task <id>: "
      "unknown method \"nope\" retryable 1",
      "cancel OK",
      "cancelled CANCELLED OK method \"slow\", task \"job-1\": cancelled",
      "agent saw CANCELLED OK task <id>: cancelled by the submitter "
      "cancelled() 1",
      "deadline DEADLINE_EXCEEDED",
      "agent deadline DEADLINE_EXCEEDED",
  };
  CHECK(tcp_lines == want);
  CHECK(nats_lines == tcp_lines);
}

}  // namespace
}  // namespace symwire

namespace symwire {
namespace {

// Runs `io` until `done()` (bounded: fails the test after 20 s).
template <class Done>
void RunUntil(asio::io_context& io, Done done) {
  const auto give_up = Clock::now() + std::chrono::seconds(20);
  while (!done() && Clock::now() < give_up) {
    io.run_for(std::chrono::milliseconds(10));
  }
  REQUIRE(done());
}

TEST_CASE("NatsPoolServer: a stopped agent gives its running task back",
          "[nats][same_api]") {
  absl::StatusOr<std::unique_ptr<testing::NatsServer>> broker =
      testing::NatsServer::Start();
  INFO(broker.status().ToString());
  REQUIRE(broker.ok());
  NatsConnectOptions connect;
  connect.url = (*broker)->url();
  absl::StatusOr<NatsClient> client = NatsClient::Connect(connect);
  REQUIRE(client.ok());
  NatsPoolServerOptions agent;
  agent.agent.pool.pool = "release";
  agent.agent.pool.storage = NatsStorage::kMemory;

  asio::io_context io;
  bool started = false;
  std::optional<absl::Status> first_cancel;
  auto first = NatsPoolServer::Create(io.get_executor(), *client, agent);
  REQUIRE(first.ok());
  REQUIRE((*first)
              ->Handle("work",
                       [&](IncomingTask t) {
                         t.OnCancel([&](const absl::Status& why) {
                           first_cancel = why;
                         });
                         started = true;  // and never answers
                       })
              .ok());
  REQUIRE((*first)->Start().ok());
  auto channel = NatsPoolChannel::Create(io.get_executor(), *client,
                                         {{agent.agent.pool, "orch"}});
  REQUIRE(channel.ok());
  std::optional<absl::StatusOr<std::string>> result;
  CallOptions work;
  work.method = "work";
  (*channel)->async_call(
      "x", work, [&](absl::StatusOr<std::string> r) { result = std::move(r); });
  RunUntil(io, [&] { return started; });
  first->reset();  // stops its agent mid-task: -NAK, not an error
  RunUntil(io, [&] { return first_cancel.has_value(); });
  CHECK(first_cancel->code() == absl::StatusCode::kUnavailable);

  auto second = NatsPoolServer::Create(io.get_executor(), *client, agent);
  REQUIRE(second.ok());
  REQUIRE((*second)
              ->Handle("work",
                       [](IncomingTask t) {
                         static_cast<void>(t.Respond("done", true));
                       })
              .ok());
  REQUIRE((*second)->Start().ok());
  RunUntil(io, [&] { return result.has_value(); });
  INFO(result->status().ToString());
  REQUIRE(result->ok());
  CHECK(**result == "done");
}

}  // namespace
}  // namespace symwire
