// File: tests/transport/failure_test.cpp
// The client's failure policy (issue #14 §3) over 127.0.0.1: the agent
// "killed" (a FaultProxy in front of it stops: every connection closed, new
// dials refused, as after kill -9 of the agent's process, while the agent's
// own session waits), wait_for_ready, ClientOptions::unreachable_timeout,
// ChannelOptions::close_timeout, one event per redial, and a restarted
// server reported as UNAVAILABLE. The agent holds the tasks it is given
// until the test answers them; every wait is bounded (RunUntil).
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "boost/asio/io_context.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/testing/fault_proxy.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using namespace std::chrono_literals;
using testing::FastClient;
using testing::FastServer;
using testing::RunUntil;
using Clock = std::chrono::steady_clock;
using Result = std::optional<absl::StatusOr<std::string>>;

// An agent that holds a task whose payload is "hold" and answers any other
// with its payload; a FaultProxy in front of it (the client dials the
// proxy, so stopping the proxy is the agent "dying" as the client sees it).
struct Rig {
  asio::io_context io;
  std::shared_ptr<Server> server;
  asio::ip::tcp::endpoint server_ep;
  std::unique_ptr<testing::FaultProxy> proxy;
  uint16_t port = 0;  // the proxy's: where the client dials
  std::shared_ptr<Channel> client;
  std::vector<IncomingTask> held;
  std::vector<ChannelEvent> events;

  explicit Rig(ClientOptions options) {
    server = MakeServer();
    proxy = std::make_unique<testing::FaultProxy>(io.get_executor(), server_ep);
    port = std::get<asio::ip::tcp::endpoint>(proxy->endpoint()).port();
    auto c = Client::Connect(io.get_executor(),
                             TcpDialer(io.get_executor(), "127.0.0.1", port),
                             std::move(options));
    REQUIRE(c.ok());
    client = *c;
    client->SetObserver([this](const ChannelEvent& e) { events.push_back(e); });
    absl::Status established = absl::UnknownError("pending");
    client->async_wait_established(
        [&](absl::Status st) { established = std::move(st); });
    RunUntil(io, [&] { return !absl::IsUnknown(established); });
    REQUIRE(established.ok());
  }
  ~Rig() {
    if (server) server->Stop();
  }
  std::shared_ptr<Server> MakeServer() {
    auto s =
        Server::Create(io.get_executor(), FastServer(),
                       [this](const std::shared_ptr<Channel>& p) {
                         p->SetTaskHandler([this](IncomingTask t) {
                           if (t.payload_string() == "hold") {
                             held.push_back(t);
                           } else {
                             REQUIRE(t.Respond(t.payload_string(), true).ok());
                           }
                         });
                       });
    REQUIRE(s.ok());
    auto ep = (*s)->ListenTcp("127.0.0.1", 0);
    REQUIRE(ep.ok());
    server_ep = *ep;
    return *s;
  }
  // An async_call whose result lands in the returned slot.
  std::shared_ptr<Result> Call(const std::string& payload,
                               CallOptions options = {}) {
    auto result = std::make_shared<Result>();
    client->async_call(
        payload, std::move(options),
        [result](absl::StatusOr<std::string> r) { *result = std::move(r); });
    return result;
  }
  // The agent "dies": its connections close and new dials are refused.
  // Runs until the client has seen a redial fail (its second attempt is
  // due), so the outage is a transient failure.
  void KillAgent() {
    proxy->Stop();
    RunUntil(
        io, [&] { return Attempts() >= 2; }, "a failed redial");
  }
  // The agent "comes back" on the same port, in front of `to`.
  void Restore(const asio::ip::tcp::endpoint& to) {
    testing::FaultOptions o;
    o.tcp_listen_port = port;
    proxy = std::make_unique<testing::FaultProxy>(io.get_executor(), to, o);
  }
  uint32_t Attempts() const {
    uint32_t n = 0;
    for (const ChannelEvent& e : events) {
      if (e.kind == ChannelEvent::Kind::kReconnectAttempt) n = e.attempt;
    }
    return n;
  }
};

ClientOptions Options(absl::Duration unreachable) {
  ClientOptions o = FastClient();
  o.unreachable_timeout = unreachable;
  return o;
}

TEST_CASE(
    "failure: the agent dies: fast failure without wait_for_ready, in-flight "
    "calls end at the unreachable bound with UNAVAILABLE",
    "[runtime][failure]") {
  Rig rig(Options(absl::Milliseconds(1500)));
  auto in_flight = rig.Call("hold");
  RunUntil(rig.io, [&] { return rig.held.size() == 1; });
  const auto killed = Clock::now();
  rig.KillAgent();
  REQUIRE_FALSE(in_flight->has_value());  // kept while the client redials

  // Without wait_for_ready: at once, unsent, naming why.
  auto fast = rig.Call("x");
  // With it and a deadline: until the deadline.
  CallOptions ready_deadline;
  ready_deadline.wait_for_ready = true;
  ready_deadline.deadline = absl::Milliseconds(100);
  auto bounded = rig.Call("x", ready_deadline);
  // With it and no deadline: until the unreachable bound.
  CallOptions ready;
  ready.wait_for_ready = true;
  auto waiting = rig.Call("x", ready);
  RunUntil(
      rig.io, [&] { return fast->has_value(); }, "the fast failure");
  INFO(fast->value().status().ToString());
  CHECK(fast->value().status().code() == absl::StatusCode::kUnavailable);
  CHECK(GetErrorCode(fast->value().status()) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(fast->value().status().message(),
                          "connection down, reconnecting: "));
  CHECK_FALSE(waiting->has_value());
  RunUntil(
      rig.io, [&] { return bounded->has_value(); }, "the deadline");
  CHECK(bounded->value().status().code() ==
        absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::StrContains(bounded->value().status().message(),
                          "while waiting for the connection"));

  RunUntil(
      rig.io, [&] { return in_flight->has_value() && waiting->has_value(); },
      "the unreachable bound");
  const auto after = Clock::now() - killed;
  const absl::Status st = in_flight->value().status();
  INFO(st.ToString());
  CHECK(after >= 1500ms);
  CHECK(st.code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StrContains(st.message(), "server unreachable for 1500 ms: "));
  // The agent had the task: the message says it may have run.
  CHECK(absl::StrContains(st.message(), "the peer may have"));
  CHECK(waiting->value().status().code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StrContains(waiting->value().status().message(),
                          "server unreachable for 1500 ms"));
  CHECK(rig.client->state() == SessionState::kFailed);

  // One event per redial: attempts 1, 2, 3, ... each with the error of the
  // loss or of the dial before it.
  uint32_t expected = 1;
  for (const ChannelEvent& e : rig.events) {
    if (e.kind != ChannelEvent::Kind::kReconnectAttempt) continue;
    CHECK(e.attempt == expected);
    CHECK_FALSE(e.status.ok());
    CHECK(e.delay >= absl::ZeroDuration());
    ++expected;
  }
  CHECK(expected >= 3);

  // async_close of the ended session: at once, with its status.
  std::optional<absl::Status> closed;
  rig.client->async_close([&](absl::Status s) { closed = s; });
  RunUntil(rig.io, [&] { return closed.has_value(); });
  CHECK(closed->code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("failure: async_close of an unreachable session ends at its limit",
          "[runtime][failure]") {
  ClientOptions o = Options(absl::InfiniteDuration());
  o.close_timeout = absl::Milliseconds(300);
  Rig rig(o);
  auto in_flight = rig.Call("hold");
  RunUntil(rig.io, [&] { return rig.held.size() == 1; });
  rig.KillAgent();
  std::optional<absl::Status> closed;
  const auto start = Clock::now();
  rig.client->async_close([&](absl::Status s) { closed = s; });
  RunUntil(
      rig.io, [&] { return closed.has_value(); }, "async_close");
  INFO(closed->ToString());
  CHECK(Clock::now() - start >= 300ms);
  CHECK(closed->code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::StrContains(closed->message(), "did not close within 300 ms"));
  RunUntil(rig.io, [&] { return in_flight->has_value(); });
  CHECK(in_flight->value().status().code() ==
        absl::StatusCode::kDeadlineExceeded);
}

TEST_CASE(
    "failure: wait_for_ready waits for the resume; in-flight calls survive "
    "it",
    "[runtime][failure]") {
  Rig rig(Options(absl::Seconds(30)));
  auto in_flight = rig.Call("hold");
  RunUntil(rig.io, [&] { return rig.held.size() == 1; });
  rig.KillAgent();
  CallOptions ready;
  ready.wait_for_ready = true;
  auto waiting = rig.Call("after", ready);
  auto fast = rig.Call("x");
  RunUntil(rig.io, [&] { return fast->has_value(); });
  CHECK(fast->value().status().code() == absl::StatusCode::kUnavailable);
  rig.Restore(rig.server_ep);
  RunUntil(
      rig.io, [&] { return waiting->has_value(); }, "the resume");
  INFO(waiting->value().status().ToString());
  REQUIRE(waiting->value().ok());
  CHECK(waiting->value().value() == "after");
  CHECK(rig.client->reconnects() == 1);
  REQUIRE(rig.held[0].Respond("held answer", true).ok());
  RunUntil(rig.io, [&] { return in_flight->has_value(); });
  REQUIRE(in_flight->value().ok());
  CHECK(in_flight->value().value() == "held answer");
  // Connected again: calls go through without wait_for_ready.
  auto later = rig.Call("later");
  RunUntil(rig.io, [&] { return later->has_value(); });
  CHECK(later->value().ok());
}

TEST_CASE(
    "failure: a restarted server refuses the resume: UNAVAILABLE (detail "
    "SESSION_EXPIRED), not DATA_LOSS",
    "[runtime][failure]") {
  Rig rig(Options(absl::Seconds(30)));
  auto in_flight = rig.Call("hold");
  RunUntil(rig.io, [&] { return rig.held.size() == 1; });
  rig.KillAgent();
  // A fresh server (it never knew the session) on the same address.
  std::shared_ptr<Server> old = rig.server;
  rig.server = rig.MakeServer();
  rig.Restore(rig.server_ep);
  RunUntil(
      rig.io, [&] { return in_flight->has_value(); }, "the refused resume");
  const absl::Status st = in_flight->value().status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kUnavailable);
  CHECK(GetErrorCode(st) == ErrorCode::kSessionExpired);
  CHECK(absl::StrContains(st.message(), "the server is gone"));
  std::optional<absl::Status> closed;
  rig.client->async_close([&](absl::Status s) { closed = s; });
  RunUntil(rig.io, [&] { return closed.has_value(); });
  CHECK(closed->code() == absl::StatusCode::kUnavailable);
  old->Stop();
}

TEST_CASE("failure: an agent's Fail(status) reaches the submitter unchanged",
          "[runtime][failure]") {
  Rig rig(Options(absl::Seconds(30)));
  auto call = rig.Call("hold");
  RunUntil(rig.io, [&] { return rig.held.size() == 1; });
  REQUIRE(rig.held[0].Fail(absl::NotFoundError("no such document")).ok());
  RunUntil(rig.io, [&] { return call->has_value(); });
  CHECK(call->value().status() == absl::NotFoundError("no such document"));
}

}  // namespace
}  // namespace symwire
