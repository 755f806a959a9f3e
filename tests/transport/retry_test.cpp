// File: tests/transport/retry_test.cpp
// The retry policy of async_call (issue #14 §3; RetryPolicy in
// runtime/options.hpp) and the naming of a call's errors
// (CallOptions::label) over 127.0.0.1: a refusal the agent marks as "not
// run" is retried, a failure of a task the agent may have run only when it
// is idempotent, max_attempts, backoff against the call's deadline,
// cancellation during a backoff, one observer event per retry. The agent's
// answers are scripted per payload; backoffs have no jitter (exact), and
// every wait is bounded by an event (RunUntil).
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/bind_cancellation_slot.hpp"
#include "boost/asio/cancellation_signal.hpp"
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

// What the observer saw of one retry.
struct SeenRetry {
  std::string method;
  TaskId id = 0;
  TaskRetry retry;
};

// RuntimeMetrics that also records each OnTaskRetry.
struct RetryLog : RuntimeMetrics {
  std::vector<SeenRetry> retries;
  void OnTaskRetry(const TaskInfo& info, const TaskRetry& r) override {
    RuntimeMetrics::OnTaskRetry(info, r);
    retries.push_back(SeenRetry{std::string(info.method), info.id, r});
  }
};

// A retry policy without jitter (the backoffs are exact).
RetryPolicy Policy(uint32_t attempts,
                   absl::Duration backoff = absl::Milliseconds(10)) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.initial_backoff = backoff;
  p.max_backoff = absl::Seconds(60);
  p.jitter = 0;
  return p;
}

// An agent whose methods "work" and "idem" run `script(task, n)`, n being
// how many tasks with that payload it has seen (1 for the first); the
// client's default retry policy is `policy`, "idem" is idempotent.
struct RetryRig {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::shared_ptr<Channel> client;
  std::shared_ptr<RetryLog> log = std::make_shared<RetryLog>();
  std::function<void(IncomingTask&, int)> script;
  std::map<std::string, int> seen;  // tasks per payload
  std::vector<TaskId> ids;          // every task, in arrival order
  std::vector<IncomingTask> held;
  // The client dials the agent through a FaultProxy: stopping it is the
  // agent "dying" (KillAgent), a new one on its port its return (Restore).
  asio::ip::tcp::endpoint server_ep;
  std::unique_ptr<testing::FaultProxy> proxy;
  uint16_t port = 0;
  uint32_t redials = 0;  // ChannelEvent kReconnectAttempt: the last attempt

  explicit RetryRig(RetryPolicy policy) {
    auto s = Server::Create(io.get_executor(), FastServer(),
                            [](const std::shared_ptr<Channel>&) {});
    REQUIRE(s.ok());
    server = *s;
    auto handler = [this](IncomingTask t) {
      ids.push_back(t.id());
      script(t, ++seen[t.payload_string()]);
    };
    REQUIRE(server->Handle("work", handler).ok());
    REQUIRE(server->Handle("idem", handler).ok());
    auto ep = server->ListenTcp("127.0.0.1", 0);
    REQUIRE(ep.ok());
    server_ep = *ep;
    proxy = std::make_unique<testing::FaultProxy>(io.get_executor(), *ep);
    port = std::get<asio::ip::tcp::endpoint>(proxy->endpoint()).port();
    ClientOptions o = FastClient();
    o.retry = std::move(policy);
    o.idempotent_methods = {"idem"};
    o.observer = log;
    auto c = Client::Connect(io.get_executor(),
                             TcpDialer(io.get_executor(), "127.0.0.1", port),
                             std::move(o));
    REQUIRE(c.ok());
    client = *c;
    client->SetObserver([this](const ChannelEvent& e) {
      if (e.kind == ChannelEvent::Kind::kReconnectAttempt) redials = e.attempt;
    });
    absl::Status established = absl::UnknownError("pending");
    client->async_wait_established(
        [&](absl::Status st) { established = std::move(st); });
    RunUntil(io, [&] { return !absl::IsUnknown(established); });
    REQUIRE(established.ok());
  }
  ~RetryRig() { server->Stop(); }

  // The agent "dies"; runs until a redial has failed (the outage is a
  // transient failure: calls without wait_for_ready fail fast, unsent).
  void KillAgent() {
    proxy->Stop();
    RunUntil(
        io, [&] { return redials >= 2; }, "a failed redial");
  }
  void Restore() {
    testing::FaultOptions o;
    o.tcp_listen_port = port;
    proxy =
        std::make_unique<testing::FaultProxy>(io.get_executor(), server_ep, o);
  }

  std::shared_ptr<Result> Call(const std::string& payload,
                               CallOptions options) {
    if (options.method.empty()) options.method = "work";
    auto result = std::make_shared<Result>();
    client->async_call(
        payload, std::move(options),
        [result](absl::StatusOr<std::string> r) { *result = std::move(r); });
    return result;
  }
  absl::StatusOr<std::string> CallAndWait(const std::string& payload,
                                          CallOptions options = {}) {
    auto r = Call(payload, std::move(options));
    RunUntil(
        io, [&] { return r->has_value(); }, "the call's result");
    return **r;
  }
  uint64_t MetricRetries(std::string_view method) const {
    const RuntimeMetrics::MethodStats* m = log->Find(method);
    return m == nullptr ? 0 : m->sides[0].retries.load();
  }
};

// The agent answers "ok:<payload>".
void Answer(IncomingTask& t) {
  REQUIRE(t.Respond("ok:" + t.payload_string(), true).ok());
}

TEST_CASE(
    "retry: an agent's refusal marked not-run (overloaded) is retried; the "
    "2nd attempt succeeds as a new task",
    "[runtime][retry]") {
  RetryRig rig(Policy(3));
  rig.script = [](IncomingTask& t, int n) {
    if (n == 1) {
      REQUIRE(t.Fail(absl::ResourceExhaustedError("overloaded"), true).ok());
    } else {
      Answer(t);
    }
  };
  auto r = rig.CallAndWait("job");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(*r == "ok:job");
  // Two tasks on the wire, each with an id of its own.
  REQUIRE(rig.ids.size() == 2);
  CHECK(rig.ids[0] != rig.ids[1]);
  // One retry event, about the first attempt.
  REQUIRE(rig.log->retries.size() == 1);
  const SeenRetry& seen = rig.log->retries[0];
  CHECK(seen.method == "work");
  CHECK(seen.id == rig.ids[0]);
  CHECK(seen.retry.attempt == 2);
  CHECK(seen.retry.backoff == absl::Milliseconds(10));
  CHECK(seen.retry.status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(absl::StrContains(seen.retry.status.message(), "overloaded"));
  CHECK(rig.MetricRetries("work") == 1);
}

TEST_CASE(
    "retry: a call that failed fast, unsent, while the agent was down is "
    "retried and goes through once the connection is back",
    "[runtime][retry]") {
  RetryPolicy policy = Policy(200, absl::Milliseconds(5));
  policy.max_backoff = absl::Milliseconds(40);
  RetryRig rig(policy);
  rig.script = [](IncomingTask& t, int) { Answer(t); };
  rig.KillAgent();
  auto r = rig.Call("job", {});
  RunUntil(
      rig.io, [&] { return !rig.log->retries.empty(); }, "a retry");
  const SeenRetry first = rig.log->retries[0];
  CHECK(first.id == 0);  // never sent
  CHECK(first.retry.status.code() == absl::StatusCode::kUnavailable);
  CHECK(GetErrorCode(first.retry.status) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(first.retry.status.message(),
                          "connection down, reconnecting"));
  CHECK_FALSE(r->has_value());
  rig.Restore();
  RunUntil(
      rig.io, [&] { return r->has_value(); }, "the retried call");
  INFO((*r)->status().ToString());
  REQUIRE((*r)->ok());
  CHECK((*r)->value() == "ok:job");
  CHECK(rig.seen["job"] == 1);  // the agent got it once
}

TEST_CASE(
    "retry: a task the agent may have run is retried only when idempotent",
    "[runtime][retry]") {
  RetryRig rig(Policy(3));
  // The first task of each payload fails without the `retryable` flag: the
  // agent started it (a backend connection died under it, say).
  rig.script = [](IncomingTask& t, int n) {
    if (n == 1) {
      REQUIRE(t.Fail(absl::UnavailableError("backend connection lost")).ok());
    } else {
      Answer(t);
    }
  };
  // Not idempotent: one attempt, its error.
  auto plain = rig.CallAndWait("plain");
  CHECK(plain.status().code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StrContains(plain.status().message(), "backend connection lost"));
  CHECK(rig.seen["plain"] == 1);
  CHECK(rig.log->retries.empty());
  // Idempotent by CallOptions.
  CallOptions idempotent;
  idempotent.idempotent = true;
  auto marked = rig.CallAndWait("marked", idempotent);
  INFO(marked.status().ToString());
  REQUIRE(marked.ok());
  CHECK(*marked == "ok:marked");
  CHECK(rig.seen["marked"] == 2);
  // Idempotent by ChannelOptions::idempotent_methods.
  CallOptions idem;
  idem.method = "idem";
  auto listed = rig.CallAndWait("listed", idem);
  REQUIRE(listed.ok());
  CHECK(rig.seen["listed"] == 2);
  CHECK(rig.log->retries.size() == 2);
  // A code not in retryable_codes is never retried, idempotent or not.
  rig.script = [](IncomingTask& t, int) {
    REQUIRE(t.Fail(absl::InvalidArgumentError("bad input"), true).ok());
  };
  auto bad = rig.CallAndWait("bad", idempotent);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(rig.seen["bad"] == 1);
}

TEST_CASE(
    "retry: max_attempts is honoured; the observer and the metrics see each "
    "retry with its backoff",
    "[runtime][retry]") {
  RetryRig rig(Policy(3));
  rig.script = [](IncomingTask& t, int) {
    REQUIRE(t.Fail(absl::ResourceExhaustedError("overloaded"), true).ok());
  };
  auto r = rig.CallAndWait("job");
  CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(rig.seen["job"] == 3);
  REQUIRE(rig.log->retries.size() == 2);
  CHECK(rig.log->retries[0].retry.attempt == 2);
  CHECK(rig.log->retries[0].retry.backoff == absl::Milliseconds(10));
  CHECK(rig.log->retries[1].retry.attempt == 3);
  CHECK(rig.log->retries[1].retry.backoff == absl::Milliseconds(20));
  CHECK(rig.log->retries[1].id == rig.ids[1]);
  CHECK(rig.MetricRetries("work") == 2);
  PrometheusText text;
  rig.log->AppendPrometheus(text);
  CHECK(absl::StrContains(
      text.Render(),
      "symwire_task_retries_total{method=\"work\",side=\"submitter\"} 2\n"));

  // A per-call policy overrides the channel's; jitter stays in its range.
  CallOptions once;
  once.retry = Policy(2, absl::Milliseconds(40));
  once.retry->jitter = 0.5;
  auto r2 = rig.CallAndWait("job2", once);
  CHECK(r2.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(rig.seen["job2"] == 2);
  REQUIRE(rig.log->retries.size() == 3);
  CHECK(rig.log->retries[2].retry.backoff > absl::Milliseconds(20));
  CHECK(rig.log->retries[2].retry.backoff <= absl::Milliseconds(40));
}

TEST_CASE("retry: the call's deadline bounds the attempts and their backoff",
          "[runtime][retry]") {
  RetryRig rig(Policy(3, absl::Milliseconds(30)));
  std::vector<absl::Duration> deadlines;
  rig.script = [&](IncomingTask& t, int n) {
    REQUIRE(t.deadline_remaining().has_value());
    deadlines.push_back(*t.deadline_remaining());
    if (n == 1) {
      REQUIRE(t.Fail(absl::UnavailableError("busy"), true).ok());
    } else {
      Answer(t);
    }
  };
  // A retry is sent with what is left of the deadline.
  CallOptions o;
  o.deadline = absl::Seconds(20);
  auto ok = rig.CallAndWait("a", o);
  REQUIRE(ok.ok());
  REQUIRE(deadlines.size() == 2);
  CHECK(deadlines[1] < deadlines[0]);
  CHECK(deadlines[1] < absl::Seconds(20) - absl::Milliseconds(30));

  // A backoff (10 s) that would pass the deadline (3 s) is not waited: the
  // call completes at once with the attempt's error.
  o.retry = Policy(3, absl::Seconds(10));
  o.deadline = absl::Seconds(3);
  const auto start = Clock::now();
  auto late = rig.CallAndWait("b", o);
  CHECK(Clock::now() - start < 3s);
  INFO(late.status().ToString());
  CHECK(late.status().code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StrContains(late.status().message(),
                          "(not retried: the backoff of 10000 ms would pass "
                          "the call's deadline)"));
  CHECK(rig.seen["b"] == 1);
}

TEST_CASE("retry: cancelling a call during its backoff completes it at once",
          "[runtime][retry]") {
  RetryRig rig(Policy(3, absl::Seconds(30)));
  rig.script = [](IncomingTask& t, int) {
    REQUIRE(t.Fail(absl::ResourceExhaustedError("overloaded"), true).ok());
  };
  asio::cancellation_signal sig;
  Result result;
  CallOptions o;
  o.method = "work";
  o.label = "doc-9";
  rig.client->async_call("job", o,
                         asio::bind_cancellation_slot(
                             sig.slot(), [&](absl::StatusOr<std::string> r) {
                               result = std::move(r);
                             }));
  RunUntil(
      rig.io, [&] { return rig.log->retries.size() == 1; }, "the retry");
  CHECK_FALSE(result.has_value());  // in its 30 s backoff
  // Any type: nothing is in flight during a backoff.
  sig.emit(asio::cancellation_type::total);
  RunUntil(
      rig.io, [&] { return result.has_value(); }, "the cancelled call", 5000ms);
  INFO(result->status().ToString());
  CHECK(result->status().code() == absl::StatusCode::kCancelled);
  CHECK(absl::StrContains(result->status().message(),
                          "method \"work\", task \"doc-9\": async_call: "
                          "operation aborted by its cancellation slot"));
  rig.io.poll();
  CHECK(rig.seen["job"] == 1);
}

TEST_CASE(
    "retry: a call in its backoff ends when its session ends, not when the "
    "backoff runs out",
    "[runtime][retry]") {
  RetryRig rig(Policy(3, absl::Seconds(30)));
  rig.script = [](IncomingTask& t, int) {
    REQUIRE(t.Fail(absl::ResourceExhaustedError("overloaded"), true).ok());
  };
  CallOptions o;
  o.label = "doc-4";
  auto result = rig.Call("job", o);
  RunUntil(
      rig.io, [&] { return rig.log->retries.size() == 1; }, "the retry");
  CHECK_FALSE(result->has_value());  // in its 30 s backoff
  const Clock::time_point closed_at = Clock::now();
  REQUIRE(rig.client->Close().ok());
  RunUntil(
      rig.io, [&] { return result->has_value(); }, "the call's end", 5000ms);
  CHECK(Clock::now() - closed_at < 5s);
  REQUIRE_FALSE((*result)->ok());
  INFO((*result)->status().ToString());
  CHECK(GetErrorCode((*result)->status()) == ErrorCode::kSessionClosed);
  CHECK(absl::StrContains((*result)->status().message(),
                          "method \"work\", task \"doc-4\""));
  // No second task reached the agent.
  rig.io.poll();
  CHECK(rig.seen["job"] == 1);
}

TEST_CASE("retry: errors name the method and the user's label, not the task id",
          "[runtime][retry]") {
  RetryRig rig(RetryPolicy{});
  rig.script = [&](IncomingTask& t, int) {
    if (t.payload_string() == "hold") {
      rig.held.push_back(t);
    } else {
      REQUIRE(t.Fail(absl::NotFoundError("no such document")).ok());
    }
  };
  // The agent's Fail: its code and message, named.
  CallOptions o;
  o.method = "work";
  o.label = "doc-17";
  auto failed = rig.CallAndWait("x", o);
  CHECK(failed.status().code() == absl::StatusCode::kNotFound);
  CHECK(failed.status().message() ==
        "method \"work\", task \"doc-17\": no such document");
  // A method and no label: the id stands in for the label.
  auto unlabelled = rig.CallAndWait("y");
  CHECK(unlabelled.status().message() == absl::StrCat("method \"work\", task ",
                                                      rig.ids.back(),
                                                      ": no such document"));

  // A local deadline: kDeadlineExceeded, named; the agent's view of it is
  // a deadline, not "cancelled by the submitter".
  CallOptions timed = o;
  timed.label = "slow";
  timed.deadline = absl::Milliseconds(100);
  auto r = rig.Call("hold", timed);
  RunUntil(rig.io, [&] { return rig.held.size() == 1; });
  std::optional<absl::Status> agent_view;
  rig.held[0].OnCancel([&](const absl::Status& s) { agent_view = s; });
  RunUntil(rig.io, [&] { return r->has_value() && agent_view.has_value(); });
  const absl::Status local = r->value().status();
  INFO(local.ToString());
  CHECK(local.code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::StartsWith(local.message(),
                         "method \"work\", task \"slow\": deadline exceeded"));
  CHECK_FALSE(absl::StrContains(local.message(),
                                absl::StrCat("task ", rig.ids.back())));
  CHECK(agent_view->code() == absl::StatusCode::kDeadlineExceeded);
  CHECK_FALSE(absl::StrContains(agent_view->message(), "cancelled by"));

  // A local cancel of a submitted task: async_next's error, named.
  CallOptions c = o;
  c.label = "doc-18";
  std::optional<absl::StatusOr<TaskCall>> submitted;
  rig.client->async_submit(
      "hold", c, [&](absl::StatusOr<TaskCall> t) { submitted = std::move(t); });
  RunUntil(rig.io, [&] { return submitted.has_value(); });
  REQUIRE(submitted->ok());
  TaskCall call = submitted->value();
  REQUIRE(call.Cancel().ok());
  std::optional<absl::StatusOr<Response>> next;
  call.async_next([&](absl::StatusOr<Response> n) { next = std::move(n); });
  RunUntil(rig.io, [&] { return next.has_value(); });
  CHECK(next->status().code() == absl::StatusCode::kCancelled);
  CHECK(next->status().message() ==
        "method \"work\", task \"doc-18\": cancelled");

  // A submission refused locally (a bad method name): named too.
  CallOptions bad = o;
  bad.method = "no spaces";
  bad.label = "doc-19";
  auto refused = rig.CallAndWait("x", bad);
  CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StartsWith(refused.status().message(),
                         "method \"no spaces\", task \"doc-19\": "));
}

}  // namespace
}  // namespace symwire
