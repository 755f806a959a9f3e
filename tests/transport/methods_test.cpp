// File: tests/transport/methods_test.cpp
// Task routing by method (issue #14 §2; SPEC.md §5.1, §13.5, §13.6) through
// the runtime over 127.0.0.1: Server::Handle routes to two handlers, a task
// without a method reaches the catch-all handler, an unknown method is
// answered UNIMPLEMENTED automatically, the built-in health method answers
// SERVING / NOT_SERVING / DRAINING, and methods are refused locally for a
// bad name or a peer that did not announce them. Every wait is bounded.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "boost/asio/io_context.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using testing::FastClient;
using testing::FastServer;
using testing::RunUntil;

// An agent with handlers "upper" and "reverse" and a catch-all that
// answers "plain:<payload>"; `methods_seen` records IncomingTask::method()
// as each handler saw it.
struct MethodAgent {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::shared_ptr<Channel> client;
  std::vector<std::string> methods_seen;

  explicit MethodAgent(ServerOptions options = FastServer(),
                       ClientOptions client_options = FastClient()) {
    auto s = Server::Create(
        io.get_executor(), std::move(options),
        [this](const std::shared_ptr<Channel>& p) {
          p->SetTaskHandler([this](IncomingTask t) {
            methods_seen.push_back("catch-all:" + t.method());
            REQUIRE(t.Respond("plain:" + t.payload_string(), true).ok());
          });
        });
    REQUIRE(s.ok());
    server = *s;
    REQUIRE(server
                ->Handle("upper",
                         [this](IncomingTask t) {
                           methods_seen.push_back(t.method());
                           std::string p = t.payload_string();
                           for (char& c : p) {
                             if (c >= 'a' && c <= 'z')
                               c = static_cast<char>(c - 32);
                           }
                           REQUIRE(t.Respond(p, true).ok());
                         })
                .ok());
    REQUIRE(
        server
            ->Handle(
                "text/reverse",
                [this](IncomingTask t) {
                  methods_seen.push_back(t.method());
                  std::string p = t.payload_string();
                  REQUIRE(
                      t.Respond(std::string(p.rbegin(), p.rend()), true).ok());
                })
            .ok());
    auto ep = server->ListenTcp("127.0.0.1", 0);
    REQUIRE(ep.ok());
    auto c =
        Client::Connect(io.get_executor(),
                        TcpDialer(io.get_executor(), "127.0.0.1", ep->port()),
                        std::move(client_options));
    REQUIRE(c.ok());
    client = *c;
    absl::Status established = absl::UnknownError("pending");
    client->async_wait_established(
        [&](absl::Status st) { established = std::move(st); });
    RunUntil(io, [&] { return !absl::IsUnknown(established); });
    REQUIRE(established.ok());
  }

  absl::StatusOr<std::string> Call(const std::string& payload,
                                   const std::string& method) {
    CallOptions o;
    o.method = method;
    bool done = false;
    absl::StatusOr<std::string> result = absl::UnknownError("pending");
    client->async_call(payload, std::move(o),
                       [&](absl::StatusOr<std::string> r) {
                         result = std::move(r);
                         done = true;
                       });
    RunUntil(
        io, [&] { return done; }, "async_call completes");
    return result;
  }

// g++ 12 at -O3 warns (-Wmaybe-uninitialized, a false positive) on reading
// the value of a StatusOr<HealthStatus> that went through the completion's
// binder, even behind ok(). TODO(#14): give async_check_health a completion
// type g++ follows (examples/methods.cpp, which only reads the value in a
// conditional expression, compiles clean).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  absl::StatusOr<HealthStatus> Health() {
    bool done = false;
    absl::Status status = absl::UnknownError("pending");
    HealthStatus value = HealthStatus::kServing;
    client->async_check_health(CallOptions{},
                               [&](const absl::StatusOr<HealthStatus>& r) {
                                 status = r.status();
                                 if (r.ok()) value = *r;
                                 done = true;
                               });
    RunUntil(
        io, [&] { return done; }, "async_check_health completes");
    if (!status.ok()) return status;
    return value;
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
};

TEST_CASE("methods: tasks are routed to the handler of their method",
          "[runtime][methods]") {
  MethodAgent f;
  auto a = f.Call("hello", "upper");
  REQUIRE(a.ok());
  CHECK(*a == "HELLO");
  auto b = f.Call("hello", "text/reverse");
  REQUIRE(b.ok());
  CHECK(*b == "olleh");
  // No method: the catch-all handler, which sees method() == "".
  auto c = f.Call("hello", "");
  REQUIRE(c.ok());
  CHECK(*c == "plain:hello");
  CHECK(f.methods_seen ==
        std::vector<std::string>{"upper", "text/reverse", "catch-all:"});
}

TEST_CASE("methods: an unknown method is answered UNIMPLEMENTED, naming it",
          "[runtime][methods]") {
  MethodAgent f;
  auto r = f.Call("x", "summarize");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kUnimplemented);
  CHECK(GetErrorCode(r.status()) == ErrorCode::kUnimplemented);
  CHECK_THAT(std::string(r.status().message()),
             Catch::Contains("unknown method \"summarize\""));
  // Neither the catch-all nor another handler ran it, and the session goes
  // on: the next task is served.
  CHECK(f.methods_seen.empty());
  // A reserved name nobody implements is unknown too.
  auto reserved = f.Call("x", "symwire.nothing");
  CHECK(reserved.status().code() == absl::StatusCode::kUnimplemented);
  auto ok = f.Call("abc", "upper");
  REQUIRE(ok.ok());
  CHECK(*ok == "ABC");
  CHECK(f.client->state() == SessionState::kEstablished);
}

TEST_CASE("methods: the health method answers SERVING, NOT_SERVING, DRAINING",
          "[runtime][methods][health]") {
  MethodAgent f;
  auto h = f.Health();
  REQUIRE(h.ok());
  CHECK(*h == HealthStatus::kServing);
  f.server->SetServingStatus(HealthStatus::kNotServing);
  h = f.Health();
  REQUIRE(h.ok());
  CHECK(*h == HealthStatus::kNotServing);
  f.server->SetServingStatus(HealthStatus::kDraining);
  h = f.Health();
  REQUIRE(h.ok());
  CHECK(*h == HealthStatus::kDraining);
  f.server->SetServingStatus(HealthStatus::kServing);
  h = f.Health();
  REQUIRE(h.ok());
  CHECK(*h == HealthStatus::kServing);
  // The health method never reached a user handler.
  CHECK(f.methods_seen.empty());
  // Once a shutdown starts, the answer is DRAINING whatever was set.
  bool shut = false;
  f.server->async_shutdown([&](absl::Status) { shut = true; });
  RunUntil(
      f.io,
      [&] { return f.server->serving_status() == HealthStatus::kDraining; },
      "the status turns DRAINING once the shutdown starts");
  RunUntil(
      f.io, [&] { return shut; }, "shutdown completes");
}

TEST_CASE("methods: the health answer is one byte 1..3 (ParseHealthStatus)",
          "[runtime][methods][health]") {
  const std::byte serving[] = {std::byte{1}};
  const std::byte draining[] = {std::byte{3}};
  const std::byte zero[] = {std::byte{0}};
  const std::byte four[] = {std::byte{4}};
  const std::byte two_bytes[] = {std::byte{1}, std::byte{1}};
  CHECK(*ParseHealthStatus(serving) == HealthStatus::kServing);
  CHECK(*ParseHealthStatus(draining) == HealthStatus::kDraining);
  for (auto bad :
       {absl::Span<const std::byte>(zero), absl::Span<const std::byte>(four),
        absl::Span<const std::byte>(two_bytes),
        absl::Span<const std::byte>()}) {
    auto r = ParseHealthStatus(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(GetErrorCode(r.status()) == ErrorCode::kMalformedPayload);
    CHECK_THAT(std::string(r.status().message()), Catch::Contains("offset 0"));
  }
}

TEST_CASE("methods: Server::Handle validates its arguments and the time",
          "[runtime][methods]") {
  asio::io_context io;
  auto s = Server::Create(io.get_executor(), FastServer(),
                          [](const std::shared_ptr<Channel>&) {});
  REQUIRE(s.ok());
  auto noop = [](IncomingTask) {};
  CHECK((*s)->Handle("a", noop).ok());
  absl::Status dup = (*s)->Handle("a", noop);
  CHECK(dup.code() == absl::StatusCode::kAlreadyExists);
  for (const std::string& bad :
       {std::string(""), std::string("a b"), std::string(256, 'x'),
        std::string("symwire.health"), std::string("symwire.mine")}) {
    INFO(bad);
    absl::Status st = (*s)->Handle(bad, noop);
    CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK((*s)->Handle("b", TaskHandler()).code() ==
        absl::StatusCode::kInvalidArgument);
  REQUIRE((*s)->ListenTcp("127.0.0.1", 0).ok());
  absl::Status late = (*s)->Handle("c", noop);
  CHECK(late.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(GetErrorCode(late) == ErrorCode::kWrongState);
  (*s)->Stop();
}

TEST_CASE("methods: a bad CallOptions::method is refused locally",
          "[runtime][methods]") {
  MethodAgent f;
  auto r = f.Call("x", "has space");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(GetErrorCode(r.status()) == ErrorCode::kInvalidFrame);
  CHECK_THAT(std::string(r.status().message()),
             Catch::Contains("0x20 at index 3"));
  CHECK(f.methods_seen.empty());
  CHECK(f.client->state() == SessionState::kEstablished);
}

TEST_CASE("methods: no method to an agent that did not announce METHODS",
          "[runtime][methods]") {
  // An agent configured like an implementation without methods (SPEC.md
  // §11.4): the client refuses methods and the health check locally, and
  // plain tasks still work.
  ServerOptions o = FastServer();
  o.session.capabilities &= ~kCapMethods;
  MethodAgent f(o);
  auto r = f.Call("x", "upper");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kUnimplemented);
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("METHODS"));
  auto h = f.Health();
  REQUIRE_FALSE(h.ok());
  CHECK(GetErrorCode(h.status()) == ErrorCode::kUnimplemented);
  auto plain = f.Call("x", "");
  REQUIRE(plain.ok());
  CHECK(*plain == "plain:x");
  CHECK(f.methods_seen == std::vector<std::string>{"catch-all:"});
}

TEST_CASE("methods: RuntimeMetrics labels tasks with their method",
          "[runtime][methods][observability]") {
  auto server_metrics = std::make_shared<RuntimeMetrics>();
  auto client_metrics = std::make_shared<RuntimeMetrics>();
  ServerOptions so = FastServer();
  so.observer = server_metrics;
  ClientOptions co = FastClient();
  co.observer = client_metrics;
  MethodAgent f(so, co);
  REQUIRE(f.Call("a", "upper").ok());
  REQUIRE(f.Call("b", "upper").ok());
  REQUIRE(f.Call("c", "").ok());
  // sides[0]: the submitter's view, sides[1]: the executor's.
  auto finished = [](const RuntimeMetrics& m, std::string_view method,
                     size_t side) -> uint64_t {
    const RuntimeMetrics::MethodStats* s = m.Find(method);
    return s == nullptr ? 0 : s->sides[side].finished_ok.load();
  };
  RunUntil(f.io, [&] {
    return finished(*server_metrics, "upper", 1) == 2 &&
           finished(*server_metrics, "", 1) == 1;
  });
  CHECK(finished(*server_metrics, "upper", 1) == 2);
  CHECK(finished(*server_metrics, "", 1) == 1);
  CHECK(finished(*client_metrics, "upper", 0) == 2);
  CHECK(finished(*client_metrics, "", 0) == 1);
  CHECK(server_metrics->Find("text/reverse") == nullptr);
}

}  // namespace
}  // namespace symwire
