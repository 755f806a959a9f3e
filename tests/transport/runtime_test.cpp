// File: tests/transport/runtime_test.cpp
// The runtime (runtime.hpp) over real sockets on 127.0.0.1 and Unix
// sockets: tasks, streaming, cancel, deadlines, reconnect and resume,
// graceful close and shutdown, and the three completion-token styles.
// Every test runs its io_context with a time bound and fails past it.
#include "symwire/runtime/runtime.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <optional>
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
#include "symwire/testing/fault_proxy.hpp"
#include "symwire/transport/memory.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using namespace std::chrono_literals;

using testing::EchoStreamingAgent;
using testing::FastClient;
using testing::FastServer;
using testing::ListenAndConnect;
using testing::RunUntil;

struct TcpFixture {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::vector<std::shared_ptr<Channel>> sessions;
  uint16_t port = 0;
  std::shared_ptr<Channel> client;
  std::vector<ChannelEvent> client_events;

  explicit TcpFixture(ServerOptions so = FastServer(),
                      ClientOptions co = FastClient()) {
    auto s = Server::Create(io.get_executor(), so,
                            [this](const std::shared_ptr<Channel>& p) {
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
        [this](const ChannelEvent& e) { client_events.push_back(e); });
    absl::Status established = absl::UnknownError("pending");
    client->async_wait_established(
        [&](absl::Status st) { established = std::move(st); });
    RunUntil(io, [&] { return !absl::IsUnknown(established); });
    REQUIRE(established.ok());
  }
  int Count(ChannelEvent::Kind kind) const {
    int n = 0;
    for (const auto& e : client_events) n += e.kind == kind ? 1 : 0;
    return n;
  }
};

TEST_CASE("runtime: a task streams its responses over TCP", "[runtime]") {
  TcpFixture f;
  CHECK(f.Count(ChannelEvent::Kind::kConnected) == 1);
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

// Submits 1,000 tasks (the agent's default max_tasks is 1024) of 300 bytes
// in one go, about 320 KB; returns what the session still held for the
// transport at the end of the burst, before the posted flush ran.
uint64_t HeldAfterBurst(size_t early_flush_bytes) {
  ClientOptions co = FastClient();
  co.early_flush_bytes = early_flush_bytes;
  TcpFixture f(FastServer(), co);
  int done = 0;
  const std::string payload(300, 'p');
  for (int i = 0; i < 1000; ++i) {
    TaskCallbacks cb;
    cb.on_done = [&done](const absl::Status& st) {
      CHECK(st.ok());
      ++done;
    };
    REQUIRE(f.client->Submit(payload, {}, std::move(cb)).ok());
  }
  const uint64_t held = f.client->session().transmit_pending_bytes();
  RunUntil(f.io, [&] { return done == 1000; });
  CHECK(f.client->session().transmit_pending_bytes() == 0);
  CHECK(f.client->transport_counters().bytes_written > 300000);
  return held;
}

TEST_CASE(
    "runtime: a burst of Submits waits for the end of the turn; "
    "early flush hands it to the transport in pieces",
    "[runtime]") {
  CHECK(HeldAfterBurst(SIZE_MAX) > 300000);  // all: one write after it
  CHECK(HeldAfterBurst(8192) < 8192);        // handed over as it grew
}

TEST_CASE("runtime: cancel reaches the agent; the submitter sees kCancelled",
          "[runtime]") {
  TcpFixture f;
  // Replace the agent with one that holds the task open.
  std::vector<IncomingTask> held;
  absl::Status agent_saw;
  absl::StatusOr<TaskCall> warmup = f.client->Submit("0warm");
  REQUIRE(warmup.ok());
  RunUntil(f.io, [&] { return warmup->done(); });
  REQUIRE(f.sessions.size() == 1);
  f.sessions[0]->SetTaskHandler([&](IncomingTask t) {
    t.OnCancel([&](const absl::Status& st) { agent_saw = st; });
    held.push_back(t);
  });
  absl::StatusOr<TaskCall> call = f.client->Submit("slow");
  REQUIRE(call.ok());
  RunUntil(f.io, [&] { return held.size() == 1; });
  CHECK(held[0].payload().empty());  // valid during the handler only
  REQUIRE(call->Cancel().ok());
  CHECK(call->done());
  CHECK(call->result()->code() == absl::StatusCode::kCancelled);
  RunUntil(f.io, [&] { return held[0].cancelled(); });
  CHECK(agent_saw.code() == absl::StatusCode::kCancelled);
  // Answering a cancelled task is refused, not sent.
  CHECK(GetErrorCode(held[0].Respond("late", true)) == ErrorCode::kWrongState);
}

TEST_CASE("runtime: deadlines end the task on both sides", "[runtime]") {
  TcpFixture f;
  std::vector<IncomingTask> held;
  absl::StatusOr<TaskCall> warmup = f.client->Submit("0warm");
  REQUIRE(warmup.ok());
  RunUntil(f.io, [&] { return warmup->done(); });
  f.sessions[0]->SetTaskHandler([&](IncomingTask t) { held.push_back(t); });
  TaskOptions o;
  o.deadline = absl::Milliseconds(50);
  absl::StatusOr<TaskCall> call = f.client->Submit("late", o);
  REQUIRE(call.ok());
  RunUntil(f.io, [&] { return held.size() == 1; });
  REQUIRE(held[0].deadline_remaining().has_value());
  CHECK(*held[0].deadline_remaining() <= absl::Milliseconds(50));
  RunUntil(f.io, [&] { return call->done() && held[0].cancelled(); });
  CHECK(call->result()->code() == absl::StatusCode::kDeadlineExceeded);
}

TEST_CASE("runtime: a killed connection is resumed; nothing lost or doubled",
          "[runtime]") {
  TcpFixture f;
  constexpr int kTasks = 200;
  std::map<int, std::string> results;
  int submitted = 0;
  for (int i = 0; i < kTasks; ++i) {
    f.client->async_call(absl::StrCat("2t", i), {},
                         [&results, i](absl::StatusOr<std::string> r) {
                           REQUIRE(r.ok());
                           CHECK(results.emplace(i, *r).second);
                         });
    ++submitted;
    if (i == 50) f.client->KillConnection();           // client side
    if (i == 120) f.sessions.at(0)->KillConnection();  // server side
  }
  RunUntil(f.io, [&] { return results.size() == kTasks; });
  for (int i = 0; i < kTasks; ++i) {
    CHECK(results[i] == absl::StrCat("2t", i, ":0;2t", i, ":1;2t", i, ":done"));
  }
  CHECK(f.Count(ChannelEvent::Kind::kReconnecting) >= 1);
  CHECK(f.Count(ChannelEvent::Kind::kResumed) >= 1);
  CHECK(f.client->reconnects() >= 1);
  CHECK(f.server->counters().resumes >= 1);
  CHECK(f.server->sessions() == 1);
  CHECK(f.sessions.size() == 1);  // the same session, resumed
  RunUntil(f.io, [&] { return f.server->connections() == 1; });
}

TEST_CASE("runtime: graceful close and server shutdown", "[runtime]") {
  TcpFixture f;
  absl::StatusOr<std::string> r = absl::UnknownError("pending");
  f.client->async_call("1q", {}, [&](absl::StatusOr<std::string> x) { r = x; });
  absl::Status closed = absl::UnknownError("pending");
  f.client->async_close([&](absl::Status st) { closed = st; });
  RunUntil(f.io, [&] { return !absl::IsUnknown(closed); });
  CHECK(closed.ok());
  // The task submitted before the close finished first.
  REQUIRE(r.ok());
  CHECK(*r == "1q:0;1q:done");
  CHECK(f.client->state() == SessionState::kClosed);
  CHECK(f.Count(ChannelEvent::Kind::kClosed) == 1);
  RunUntil(f.io, [&] { return f.server->sessions() == 0; });
  absl::Status shut = absl::UnknownError("pending");
  f.server->async_shutdown([&](absl::Status st) { shut = st; });
  RunUntil(f.io, [&] { return !absl::IsUnknown(shut); });
  CHECK(shut.ok());
}

TEST_CASE(
    "runtime: a task held past its channel's end answers SESSION_CLOSED, "
    "both Respond overloads",
    "[runtime]") {
  // IncomingTask::Respond checks its weak reference without locking it and
  // calls through a raw pointer (IncomingState::channel_ptr): once the
  // channel is destroyed it must refuse, never touch the pointer (ASan).
  TcpFixture f;
  REQUIRE(f.sessions.size() == 1);
  std::optional<IncomingTask> held;
  f.sessions[0]->SetTaskHandler([&](IncomingTask t) { held = std::move(t); });
  TaskCallbacks cb;
  cb.on_done = [](const absl::Status&) {};
  REQUIRE(f.client->Submit("hold", {}, std::move(cb)).ok());
  RunUntil(f.io, [&] { return held.has_value(); });
  std::weak_ptr<Channel> agent_side = f.sessions[0];
  f.server->Stop();
  f.sessions.clear();
  f.server.reset();
  RunUntil(f.io, [&] { return agent_side.expired(); });
  const absl::Status st = held->Respond("late", true);
  CHECK(GetErrorCode(st) == ErrorCode::kSessionClosed);
  CHECK(absl::StrContains(st.message(), "the session is gone"));
  const absl::Status shared =
      held->Respond(SharedPayload(std::string("late")), true);
  CHECK(GetErrorCode(shared) == ErrorCode::kSessionClosed);
}

TEST_CASE("runtime: Unix-domain sockets", "[runtime]") {
  asio::io_context io;
  const std::string path =
      absl::StrCat("/tmp/symwire-test-", ::getpid(), ".sock");
  std::shared_ptr<Channel> agent;
  auto server = Server::Create(io.get_executor(), FastServer(),
                               [&](const std::shared_ptr<Channel>& p) {
                                 agent = p;
                                 EchoStreamingAgent(p);
                               });
  REQUIRE(server.ok());
  REQUIRE((*server)->ListenUnix(path).ok());
  auto client = Client::Connect(
      io.get_executor(), UnixDialer(io.get_executor(), path), FastClient());
  REQUIRE(client.ok());
  absl::StatusOr<std::string> r = absl::UnknownError("pending");
  (*client)->async_call("2u", {},
                        [&](absl::StatusOr<std::string> x) { r = x; });
  RunUntil(io, [&] { return !absl::IsUnknown(r.status()); });
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(*r == "2u:0;2u:1;2u:done");
  CHECK(absl::StrContains((*client)->transport_description(), "unix"));
  (*client)->KillConnection();
  absl::StatusOr<std::string> r2 = absl::UnknownError("pending");
  (*client)->async_call("1v", {},
                        [&](absl::StatusOr<std::string> x) { r2 = x; });
  RunUntil(io, [&] { return !absl::IsUnknown(r2.status()); });
  INFO(r2.status().ToString());
  REQUIRE(r2.ok());
  CHECK(*r2 == "1v:0;1v:done");
  CHECK((*client)->reconnects() == 1);
  ::unlink(path.c_str());
}

TEST_CASE("runtime: the first connection is retried through resets and flips",
          "[runtime][issue11]") {
  asio::io_context io;
  ServerOptions so = FastServer();
  auto server = Server::Create(
      io.get_executor(), so,
      [](const std::shared_ptr<Channel>& p) { EchoStreamingAgent(p); });
  REQUIRE(server.ok());
  auto ep = (*server)->ListenTcp("127.0.0.1", 0);
  REQUIRE(ep.ok());
  testing::FaultOptions faults;
  faults.seed = 3;
  const bool flips = GENERATE(false, true);
  if (flips) {
    faults.flip_per_million = 20000;  // one byte in 50: every handshake
  } else {
    faults.kill_min_bytes = 20;  // inside the first handshake
    faults.kill_max_bytes = 120;
    faults.kill_with_reset = true;
  }
  testing::FaultProxy proxy(io.get_executor(), *ep, faults);
  const auto& pe = std::get<asio::ip::tcp::endpoint>(proxy.endpoint());
  auto client = Client::Connect(
      io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", pe.port()),
      FastClient());
  REQUIRE(client.ok());
  std::vector<absl::Status> retries;
  (*client)->SetObserver([&](const ChannelEvent& e) {
    if (e.kind == ChannelEvent::Kind::kReconnecting)
      retries.push_back(e.status);
  });
  absl::Status st = absl::UnknownError("pending");
  (*client)->async_wait_established([&](absl::Status s) { st = s; });
  // Two failed first handshakes, then a clean network.
  RunUntil(io, [&] {
    if (retries.size() >= 2) proxy.SetEnabled(false);
    return !absl::IsUnknown(st);
  });
  INFO("flips: " << flips << "; " << st.ToString());
  for (const absl::Status& r : retries) INFO("retried after " << r.ToString());
  REQUIRE(st.ok());
  CHECK(retries.size() >= 2);
  CHECK((*client)->reconnects() == 0);
  absl::StatusOr<std::string> r = absl::UnknownError("pending");
  (*client)->async_call("1x", {},
                        [&](absl::StatusOr<std::string> x) { r = x; });
  RunUntil(io, [&] { return !absl::IsUnknown(r.status()); });
  REQUIRE(r.ok());
  CHECK(*r == "1x:0;1x:done");
  (*server)->Stop();
}

TEST_CASE("runtime: a failed authentication is not retried",
          "[runtime][issue11]") {
  asio::io_context io;
  ServerOptions so = FastServer();
  so.session.authenticator = TokenAuthenticator("right");
  auto server = Server::Create(io.get_executor(), so, nullptr);
  REQUIRE(server.ok());
  auto ep = (*server)->ListenTcp("127.0.0.1", 0);
  REQUIRE(ep.ok());
  ClientOptions co = FastClient();
  co.session.authenticator = TokenAuthenticator("wrong");
  auto client = Client::Connect(
      io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", ep->port()),
      co);
  REQUIRE(client.ok());
  int retries = 0;
  (*client)->SetObserver([&](const ChannelEvent& e) {
    if (e.kind == ChannelEvent::Kind::kReconnecting) ++retries;
  });
  absl::Status st = absl::UnknownError("pending");
  (*client)->async_wait_established([&](absl::Status s) { st = s; });
  RunUntil(io, [&] { return !absl::IsUnknown(st); });
  INFO(st.ToString());
  CHECK(GetErrorCode(st) == ErrorCode::kUnauthenticated);
  CHECK(retries == 0);
  CHECK((*client)->state() == SessionState::kFailed);
  RunUntil(io, [&] { return (*server)->connections() == 0; });
  CHECK((*server)->counters().connections_accepted == 1);
  (*server)->Stop();
}

TEST_CASE("runtime: the first connection failing fails the session",
          "[runtime]") {
  asio::io_context io;
  // A port nobody listens on: bind one, then close it.
  uint16_t port = 0;
  {
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  ClientOptions co = FastClient();
  co.first_connect_attempts = 4;
  auto client = Client::Connect(
      io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", port), co);
  REQUIRE(client.ok());
  int retries = 0;
  (*client)->SetObserver([&](const ChannelEvent& e) {
    if (e.kind == ChannelEvent::Kind::kReconnecting) ++retries;
  });
  absl::Status st = absl::UnknownError("pending");
  (*client)->async_wait_established([&](absl::Status s) { st = s; });
  RunUntil(io, [&] { return !absl::IsUnknown(st); });
  // Retried (ClientOptions::retry_first_connect), but bounded: four
  // connections in all, then the last error.
  CHECK(retries == 3);
  CHECK(GetErrorCode(st) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(st.message(), absl::StrCat("127.0.0.1:", port)));
  CHECK((*client)->state() == SessionState::kFailed);
  // Submitting afterwards is refused locally.
  CHECK_FALSE((*client)->Submit("x").ok());
}

TEST_CASE("runtime: coroutines (use_awaitable) on both sides", "[runtime]") {
  asio::io_context io;
  auto server = Server::Create(
      io.get_executor(), FastServer(), [](const std::shared_ptr<Channel>& p) {
        p->SetTaskHandler([](IncomingTask t) {
          // An agent coroutine: streams three tokens, waiting for room.
          asio::co_spawn(
              t.get_executor(),
              [t]() mutable -> asio::awaitable<void> {
                const std::string prompt = t.payload_string();
                // g++ 12 destroys some temporaries of a co_await
                // full-expression twice: build each awaitable in its own
                // statement, then co_await it.
                for (int i = 0; i < 3; ++i) {
                  auto respond = t.async_respond(absl::StrCat("tok", i, " "),
                                                 false, asio::use_awaitable);
                  const absl::Status st = co_await std::move(respond);
                  if (!st.ok()) co_return;
                }
                auto last = t.async_respond(absl::StrCat("end of ", prompt),
                                            true, asio::use_awaitable);
                static_cast<void>(co_await std::move(last));
              },
              asio::detached);
        });
      });
  REQUIRE(server.ok());
  const std::shared_ptr<Channel> client = ListenAndConnect(io, **server);
  std::string text;
  bool finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        absl::Status st =
            co_await client->async_wait_established(asio::use_awaitable);
        REQUIRE(st.ok());
        auto submit = client->async_submit("story", {}, asio::use_awaitable);
        absl::StatusOr<TaskCall> call = co_await std::move(submit);
        REQUIRE(call.ok());
        for (;;) {
          absl::StatusOr<Response> r =
              co_await call->async_next(asio::use_awaitable);
          if (!r.ok()) break;
          text += r->payload;
        }
        finished = true;
      },
      asio::detached);
  RunUntil(io, [&] { return finished; });
  CHECK(text == "tok0 tok1 tok2 end of story");
}

TEST_CASE("runtime: use_future from another thread", "[runtime]") {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  std::shared_ptr<Server> server;
  std::shared_ptr<Channel> client;
  // Set up on the io thread (synchronous members belong to it).
  std::promise<void> ready;
  asio::post(io, [&] {
    auto s = Server::Create(
        io.get_executor(), FastServer(),
        [](const std::shared_ptr<Channel>& p) { EchoStreamingAgent(p); });
    REQUIRE(s.ok());
    server = *s;
    auto ep = server->ListenTcp("127.0.0.1", 0);
    REQUIRE(ep.ok());
    auto c = Client::Connect(
        io.get_executor(),
        TcpDialer(io.get_executor(), "127.0.0.1", ep->port()), FastClient());
    REQUIRE(c.ok());
    client = *c;
    ready.set_value();
  });
  ready.get_future().wait();
  std::future<absl::Status> established =
      client->async_wait_established(asio::use_future);
  REQUIRE(established.wait_for(10s) == std::future_status::ready);
  CHECK(established.get().ok());
  std::future<absl::StatusOr<std::string>> f =
      client->async_call("2f", {}, asio::use_future);
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  absl::StatusOr<std::string> r = f.get();
  REQUIRE(r.ok());
  CHECK(*r == "2f:0;2f:1;2f:done");
  std::future<absl::Status> closed = client->async_close(asio::use_future);
  REQUIRE(closed.wait_for(10s) == std::future_status::ready);
  CHECK(closed.get().ok());
  std::future<absl::Status> shut = server->async_shutdown(asio::use_future);
  REQUIRE(shut.wait_for(10s) == std::future_status::ready);
  CHECK(shut.get().ok());
  asio::post(io, [&] {
    client.reset();
    server.reset();
  });
  work.reset();
  runner.join();
}

TEST_CASE("runtime: one server holds 1,000 concurrent sessions", "[runtime]") {
  // Two descriptors per session (both ends live in this process).
  rlimit limit{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  constexpr rlim_t kNeed = 2300;
  if (limit.rlim_cur < kNeed) {
    limit.rlim_cur = std::min<rlim_t>(kNeed, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < kNeed) {
    WARN("RLIMIT_NOFILE hard limit " << limit.rlim_max << " is too low");
    return;
  }
  asio::io_context io;
  // 1,000 handshakes at once on one thread can take longer than the 10 s
  // default handshake_timeout under ThreadSanitizer on a loaded machine; a
  // client whose timer fired after the server had established its session
  // then retried with a fresh one (1,153 sessions_established seen). The
  // timeout is not what this test checks, so it matches the wait below.
  ServerOptions so = FastServer();
  so.session.handshake_timeout = absl::Seconds(60);
  ClientOptions co = FastClient();
  co.session.handshake_timeout = absl::Seconds(60);
  auto server = Server::Create(
      io.get_executor(), so,
      [](const std::shared_ptr<Channel>& p) { EchoStreamingAgent(p); });
  REQUIRE(server.ok());
  auto ep = (*server)->ListenTcp("127.0.0.1", 0);
  REQUIRE(ep.ok());
  constexpr int kSessions = 1000;
  std::vector<std::shared_ptr<Channel>> clients;
  int answered = 0;
  for (int i = 0; i < kSessions; ++i) {
    auto c = Client::Connect(
        io.get_executor(),
        TcpDialer(io.get_executor(), "127.0.0.1", ep->port()), co);
    REQUIRE(c.ok());
    clients.push_back(*c);
    (*c)->async_call(absl::StrCat("1s", i), {},
                     [&answered, i](const absl::StatusOr<std::string>& r) {
                       REQUIRE(r.ok());
                       CHECK(*r == absl::StrCat("1s", i, ":0;1s", i, ":done"));
                       ++answered;
                     });
  }
  RunUntil(
      io, [&] { return answered == kSessions; }, 60000ms);
  CHECK((*server)->sessions() == kSessions);
  CHECK((*server)->connections() == kSessions);
  CHECK((*server)->counters().sessions_established == kSessions);
  // All sessions stay usable: a second round on every one.
  answered = 0;
  for (int i = 0; i < kSessions; ++i) {
    clients[static_cast<size_t>(i)]->async_call(
        absl::StrCat("0r", i), {},
        [&answered](const absl::StatusOr<std::string>& r) {
          CHECK(r.ok());
          ++answered;
        });
  }
  RunUntil(
      io, [&] { return answered == kSessions; }, 60000ms);
  absl::Status shut = absl::UnknownError("pending");
  (*server)->async_shutdown([&](absl::Status st) { shut = st; });
  RunUntil(
      io, [&] { return !absl::IsUnknown(shut); }, 60000ms);
  CHECK(shut.ok());
  // The drain closed every session gracefully on both sides.
  RunUntil(io, [&] {
    return std::all_of(clients.begin(), clients.end(), [](const auto& c) {
      return c->state() == SessionState::kClosed;
    });
  });
}

TEST_CASE(
    "runtime: a client over a transport it cannot redial fails at once "
    "when the connection is lost",
    "[runtime]") {
  asio::io_context io;
  auto [a, b] = MakeMemoryTransportPair(io.get_executor());
  std::vector<IncomingTask> held;
  auto server = Server::Create(io.get_executor(), FastServer(),
                               [&held](const std::shared_ptr<Channel>& p) {
                                 p->SetTaskHandler([&held](IncomingTask t) {
                                   held.push_back(std::move(t));
                                 });
                               });
  REQUIRE(server.ok());
  (*server)->Accept(b);
  auto client = Client::Start(a, FastClient());
  REQUIRE(client.ok());
  absl::StatusOr<std::string> r = absl::UnknownError("pending");
  (*client)->async_call("1x", {},
                        [&](absl::StatusOr<std::string> x) { r = x; });
  RunUntil(io, [&] { return held.size() == 1; });
  // The pipe breaks: no redial is possible, so the session (and its open
  // task) must end now rather than wait out the resume window.
  (*client)->KillConnection();
  RunUntil(
      io, [&] { return !absl::IsUnknown(r.status()); }, 2000ms);
  CHECK(GetErrorCode(r.status()) == ErrorCode::kConnectionLost);
  CHECK((*client)->state() == SessionState::kFailed);
}

}  // namespace
}  // namespace symwire

namespace symwire {
namespace {

// An agent answering one task with `total` responses of 16 KiB in one
// burst (Respond until refused, then async_respond one by one): reports
// how many the burst took before the first refusal, and that refusal.
struct BacklogRun {
  size_t taken_in_burst = 0;  // before the first refusal
  absl::Status refusal;       // the first one
  int refusals = 0;
  std::vector<Response> got;
  absl::Status end;
};

BacklogRun StreamInOneBurst(size_t send_backlog_bytes, int total,
                            bool kill_midway) {
  ServerOptions so = FastServer();
  so.send_backlog_bytes = send_backlog_bytes;
  BacklogRun run;
  asio::io_context io;
  auto chunk = [](int i) {
    std::string s(16384, static_cast<char>('a' + i % 26));
    std::memcpy(s.data(), &i, sizeof i);
    return s;
  };
  auto server = Server::Create(
      io.get_executor(), so, [&](const std::shared_ptr<Channel>& p) {
        p->SetTaskHandler([&run, chunk, total, kill_midway,
                           agent = std::weak_ptr<Channel>(p)](IncomingTask t) {
          // Bursts: Respond until refused, then async_respond that one
          // and burst again when it is sent (the way a producer keeps a
          // connection busy; bench/e2e_symwire.cpp's Streamer).
          auto burst = std::make_shared<std::function<void(int)>>();
          *burst = [&run, kill_midway, agent, t, total, chunk,
                    burst](int k) mutable {
            for (; k < total; ++k) {
              absl::Status st = t.Respond(chunk(k), k + 1 == total);
              if (st.ok()) continue;
              if (run.refusal.ok()) {
                run.refusal = st;
                run.taken_in_burst = static_cast<size_t>(k);
              }
              // The 20th time the producer waits for the backlog, the
              // connection breaks: the session resumes on a new one and
              // replays what the old one lost, and the waiting response
              // is retried (into the send window, or onto the new one).
              if (++run.refusals == 20 && kill_midway) {
                agent.lock()->KillConnection();
              }
              t.async_respond(chunk(k), k + 1 == total,
                              [burst, k](absl::Status sent) {
                                REQUIRE(sent.ok());
                                (*burst)(k + 1);
                              });
              return;
            }
          };
          (*burst)(0);
        });
      });
  REQUIRE(server.ok());
  const std::shared_ptr<Channel> client = ListenAndConnect(io, **server);
  absl::Status established = absl::UnknownError("pending");
  client->async_wait_established(
      [&](absl::Status st) { established = std::move(st); });
  RunUntil(io, [&] { return !absl::IsUnknown(established); });
  REQUIRE(established.ok());
  absl::StatusOr<TaskCall> call = client->Submit("go");
  REQUIRE(call.ok());
  std::function<void()> next = [&] {
    call->async_next([&](absl::StatusOr<Response> r) {
      if (!r.ok()) {
        run.end = r.status();
        return;
      }
      run.got.push_back(*r);
      next();
    });
  };
  next();
  RunUntil(
      io, [&] { return !run.end.ok(); }, 30000ms);
  return run;
}

void CheckAllInOrder(const BacklogRun& run, int total) {
  REQUIRE(run.got.size() == static_cast<size_t>(total));
  for (int i = 0; i < total; ++i) {
    const Response& r = run.got[static_cast<size_t>(i)];
    int index = -1;
    std::memcpy(&index, r.payload.data(), sizeof index);
    CHECK(index == i);
    CHECK(r.payload.size() == 16384);
    CHECK(r.final == (i + 1 == total));
  }
  CHECK(run.end.code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE(
    "runtime: the send backlog refuses a fast producer until the write in "
    "flight completes; async_respond waits; nothing is lost",
    "[runtime]") {
  // 64 KiB of backlog: the first response is written at once (early
  // flush), the next ones wait behind that write until 64 KiB of them do;
  // then REPLAY_BUFFER_FULL, long before the 8 MiB send window is full.
  BacklogRun small = StreamInOneBurst(size_t{64} << 10, 200, false);
  CHECK(small.taken_in_burst >= 4);
  CHECK(small.taken_in_burst <= 8);
  CHECK(GetErrorCode(small.refusal) == ErrorCode::kReplayBufferFull);
  CHECK(absl::StrContains(small.refusal.message(), "send backlog full"));
  CHECK(absl::StrContains(small.refusal.message(),
                          "ChannelOptions::send_backlog_bytes 65536"));
  CheckAllInOrder(small, 200);

  // SIZE_MAX: only the send window refuses (8 MiB: about 511 frames of
  // 16 KiB and their headers), and says so.
  BacklogRun unbounded = StreamInOneBurst(SIZE_MAX, 600, false);
  CHECK(unbounded.taken_in_burst > 400);
  CHECK(unbounded.taken_in_burst < 512);
  CHECK(GetErrorCode(unbounded.refusal) == ErrorCode::kReplayBufferFull);
  CHECK_FALSE(absl::StrContains(unbounded.refusal.message(), "backlog"));
  CheckAllInOrder(unbounded, 600);
}

TEST_CASE(
    "runtime: a connection lost while the producer waits for the backlog "
    "is resumed; every response arrives once, in order",
    "[runtime]") {
  BacklogRun run = StreamInOneBurst(size_t{64} << 10, 600, true);
  CHECK(run.refusals > 20);
  CheckAllInOrder(run, 600);
}

}  // namespace
}  // namespace symwire
