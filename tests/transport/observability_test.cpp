// File: tests/transport/observability_test.cpp
// Observability (issue #14 §5): the bucket math, percentiles and merging
// of LatencyHistogram; the Prometheus text renderer; the W3C traceparent
// helpers; and the runtime's observer hooks over real TCP sessions
// (single-threaded and sharded servers, a resume, a failed task, child
// spans).
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boost/asio/io_context.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/histogram.hpp"
#include "symwire/runtime/observer.hpp"
#include "symwire/runtime/prometheus.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/runtime/trace.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using testing::EchoStreamingAgent;
using testing::FastClient;
using testing::FastServer;
using testing::RunUntil;
using B = HistogramBuckets;

// ---- histograms -------------------------------------------------------------

TEST_CASE("observability: histogram buckets tile uint64 with <= 1/16 width",
          "[observability]") {
  CHECK(B::LowerBound(0) == 0);
  CHECK(B::UpperBound(B::kCount - 1) == UINT64_MAX);
  for (size_t i = 0; i + 1 < B::kCount; ++i) {
    INFO("bucket " << i);
    REQUIRE(B::UpperBound(i) >= B::LowerBound(i));
    REQUIRE(B::UpperBound(i) + 1 == B::LowerBound(i + 1));
    REQUIRE(B::Index(B::LowerBound(i)) == i);
    REQUIRE(B::Index(B::UpperBound(i)) == i);
    if (B::LowerBound(i) >= 32) {
      // Relative width: at most 1/16 of the bucket's smallest value.
      REQUIRE(B::UpperBound(i) - B::LowerBound(i) + 1 <=
              B::LowerBound(i) / 16 + 1);
    }
  }
  // Every power of two from 2^4 on is an inclusive upper bound (the `le`
  // of the Prometheus renderer is exact).
  for (int k = 4; k < 64; ++k) {
    const uint64_t p = uint64_t{1} << k;
    INFO("2^" << k);
    CHECK(B::UpperBound(B::Index(p)) == p);
    CHECK(B::Index(p + 1) == B::Index(p) + 1);
  }
  CHECK(B::Index(0) == 0);
  CHECK(B::Index(1) == 0);
  CHECK(B::Index(2) == 1);
  CHECK(B::Index(17) == 16);
  CHECK(B::Index(UINT64_MAX) == B::kCount - 1);
}

TEST_CASE("observability: percentiles are bucket upper bounds",
          "[observability]") {
  HistogramSnapshot s;
  CHECK(s.Percentile(0.5) == 0);                            // empty
  for (uint64_t v = 1; v <= 1000; ++v) s.Record(v * 1000);  // 1..1000 us
  CHECK(s.count == 1000);
  CHECK(s.sum == 500500 * uint64_t{1000});
  const uint64_t p50 = s.Percentile(0.5);
  CHECK(p50 >= 500000);
  CHECK(p50 <= 500000 + 500000 / 16);
  const uint64_t p99 = s.Percentile(0.99);
  CHECK(p99 >= 990000);
  CHECK(p99 <= 990000 + 990000 / 16);
  CHECK(s.Percentile(1.0) >= 1000000);
  CHECK(s.Percentile(0.0) == B::UpperBound(B::Index(1000)));
  CHECK(s.Percentile(-3) == s.Percentile(0));
  CHECK(s.Percentile(7) == s.Percentile(1));
}

TEST_CASE("observability: histograms of several threads merge exactly",
          "[observability]") {
  constexpr int kThreads = 4;
  constexpr uint64_t kPerThread = 20000;
  const auto value = [](int t, uint64_t i) {
    return (i * 7919 + static_cast<uint64_t>(t) * 104729) % 5000000;
  };
  LatencyHistogram shared;
  std::vector<std::unique_ptr<LatencyHistogram>> own;
  for (int t = 0; t < kThreads; ++t) {
    own.push_back(std::make_unique<LatencyHistogram>());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPerThread; ++i) {
        shared.Record(value(t, i));
        own[static_cast<size_t>(t)]->Record(value(t, i));
      }
    });
  }
  for (auto& th : threads) th.join();
  HistogramSnapshot expected;
  for (int t = 0; t < kThreads; ++t) {
    for (uint64_t i = 0; i < kPerThread; ++i) expected.Record(value(t, i));
  }
  HistogramSnapshot merged;
  for (const auto& h : own) h->MergeInto(merged);
  const HistogramSnapshot all = shared.Snapshot();
  CHECK(all.count == kThreads * kPerThread);
  CHECK(all.counts == expected.counts);
  CHECK(all.sum == expected.sum);
  CHECK(merged.counts == expected.counts);
  CHECK(merged.count == expected.count);
  CHECK(merged.sum == expected.sum);
  CHECK(merged.Percentile(0.9) == expected.Percentile(0.9));
}

// ---- Prometheus -------------------------------------------------------------

TEST_CASE("observability: Prometheus text format 0.0.4", "[observability]") {
  PrometheusText p;
  p.Counter("symwire_x_total", "Help with \\ and\nnewline.",
            {{"method", "a\"b\\c\nd"}}, 7);
  p.Gauge("symwire_g", "A gauge.", {}, 1.5);
  p.Counter("symwire_x_total", "ignored", {{"method", ""}}, 0);
  HistogramSnapshot h;
  h.Record(1000);     // <= 2^10 ns
  h.Record(3000);     // <= 2^12 ns
  h.Record(1500000);  // 1.5 ms
  p.Histogram("symwire_d_seconds", "Durations.", {{"side", "executor"}}, h);
  const std::string text = p.Render();
  INFO(text);
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  REQUIRE(lines.size() > 10);
  CHECK(lines[0] == "# HELP symwire_x_total Help with \\\\ and\\nnewline.");
  CHECK(lines[1] == "# TYPE symwire_x_total counter");
  // The family's samples stay together although added apart.
  CHECK(lines[2] == "symwire_x_total{method=\"a\\\"b\\\\c\\nd\"} 7");
  CHECK(lines[3] == "symwire_x_total{method=\"\"} 0");
  CHECK(lines[4] == "# HELP symwire_g A gauge.");
  CHECK(lines[5] == "# TYPE symwire_g gauge");
  CHECK(lines[6] == "symwire_g 1.5");
  CHECK(lines[7] == "# HELP symwire_d_seconds Durations.");
  CHECK(lines[8] == "# TYPE symwire_d_seconds histogram");
  CHECK(lines[9] ==
        "symwire_d_seconds_bucket{side=\"executor\",le=\"0.000001024\"} 1");
  CHECK(lines[10] ==
        "symwire_d_seconds_bucket{side=\"executor\",le=\"0.000002048\"} 1");
  CHECK(lines[11] ==
        "symwire_d_seconds_bucket{side=\"executor\",le=\"0.000004096\"} 2");
  CHECK(absl::StrContains(
      text,
      "symwire_d_seconds_bucket{side=\"executor\",le=\"0.001048576\"} 2"));
  CHECK(absl::StrContains(
      text,
      "symwire_d_seconds_bucket{side=\"executor\",le=\"0.002097152\"} 3"));
  CHECK(absl::StrContains(
      text,
      "symwire_d_seconds_bucket{side=\"executor\",le=\"1099.511627776\"} 3"));
  CHECK(absl::StrContains(
      text,
      "symwire_d_seconds_bucket{side=\"executor\",le=\"+Inf\"} 3\n"
      "symwire_d_seconds_sum{side=\"executor\"} 0.001504\n"
      "symwire_d_seconds_count{side=\"executor\"} 3\n"));
  // Exactly one HELP and TYPE per family.
  size_t helps = 0;
  for (const auto& l : lines)
    helps += absl::StartsWith(l, "# HELP") ? size_t{1} : size_t{0};
  CHECK(helps == 3);
  CHECK(text.back() == '\n');
  CHECK(PrometheusText::Seconds(0) == "0.0");
  CHECK(PrometheusText::Seconds(2500000000) == "2.5");
}

// ---- traceparent ------------------------------------------------------------

TEST_CASE("observability: W3C traceparent parse, format, validate",
          "[observability]") {
  const std::string example =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  absl::StatusOr<TraceParent> tp = ParseTraceparent(example);
  REQUIRE(tp.ok());
  CHECK(tp->version == 0);
  CHECK(tp->trace_id[0] == std::byte{0x4b});
  CHECK(tp->trace_id[15] == std::byte{0x36});
  CHECK(tp->parent_id[0] == std::byte{0x00});
  CHECK(tp->parent_id[7] == std::byte{0xb7});
  CHECK(tp->trace_flags == kTraceFlagSampled);
  CHECK(FormatTraceparent(*tp) == example);
  CHECK(ValidateTraceParent(*tp).ok());

  // A future version may append fields after a '-'.
  absl::StatusOr<TraceParent> future = ParseTraceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-next");
  REQUIRE(future.ok());
  CHECK(future->version == 0xcc);

  struct Bad {
    std::string text;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
       "trace-id has a character that is not lowercase hex at offset 4"},
      {"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
       "trace-id is all zero"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
       "parent-id is all zero"},
      {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
       "version ff is invalid"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
       "length 54 is below 55"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
       "version 00 has length 56, not 55"},
      {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
       "expected '-' at offset 55"},
      {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
       "expected '-' at offset 2"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
       "trace-flags has a character that is not lowercase hex at offset 54"},
  };
  for (const Bad& b : bad) {
    INFO(b.text);
    absl::StatusOr<TraceParent> r = ParseTraceparent(b.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(GetErrorCode(r.status()) == ErrorCode::kMalformedExtension);
    CHECK(absl::StrContains(r.status().message(), b.message));
  }

  const RandomSource random = SeededRandom(7);
  const TraceParent child = ChildTraceParent(*tp, random);
  CHECK(child.trace_id == tp->trace_id);
  CHECK(child.trace_flags == tp->trace_flags);
  CHECK(child.parent_id != tp->parent_id);
  CHECK(ValidateTraceParent(child).ok());
  const TraceParent root = NewTraceParent(random, false);
  CHECK(ValidateTraceParent(root).ok());
  CHECK(root.trace_flags == 0);
  CHECK(ParseTraceparent(FormatTraceparent(root)).value() == root);
}

// ---- runtime hooks ----------------------------------------------------------

// Records every hook as a line, in order (one thread: the test's).
struct Recorder final : RuntimeObserver {
  std::vector<std::string> events;
  std::vector<TaskEnd> ends;
  std::vector<std::string> peers;
  std::vector<TraceParent> traces;
  static const char* SideName(const TaskInfo& i) {
    return i.side == TaskInfo::Side::kSubmitter ? "submitter" : "executor";
  }
  void OnTaskSubmitted(const TaskInfo& i) override {
    events.push_back(absl::StrCat("submitted ", i.id, " ", SideName(i)));
    if (i.trace_parent != nullptr) traces.push_back(*i.trace_parent);
  }
  void OnTaskStarted(const TaskInfo& i) override {
    events.push_back(absl::StrCat("started ", i.id, " ", SideName(i)));
    if (i.trace_parent != nullptr) traces.push_back(*i.trace_parent);
  }
  void OnTaskFirstResponse(const TaskInfo& i, absl::Duration since) override {
    events.push_back(absl::StrCat("first ", i.id, " ", SideName(i)));
    CHECK(since >= absl::ZeroDuration());
  }
  void OnTaskFinished(const TaskInfo& i, const TaskEnd& end) override {
    events.push_back(absl::StrCat("finished ", i.id, " ", SideName(i), " ",
                                  absl::StatusCodeToString(end.status.code())));
    ends.push_back(end);
    peers.emplace_back(i.peer);
  }
  void OnConnectionAccepted(const ConnectionInfo& c) override {
    events.push_back(absl::StrCat("accepted ", std::string(c.source)));
  }
  void OnHandshakeFailed(const ConnectionInfo&, const absl::Status&) override {
    events.push_back("handshake failed");
  }
  void OnConnectionResumed(const ConnectionInfo&) override {
    events.push_back("resumed");
  }
  void OnConnectionClosed(const ConnectionInfo&, const absl::Status&) override {
    events.push_back("closed");
  }
  int Count(std::string_view prefix) const {
    int n = 0;
    for (const auto& e : events) n += e.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }
};

TEST_CASE("observability: hooks report every task and connection, both sides",
          "[observability]") {
  asio::io_context io;
  auto server_obs = std::make_shared<Recorder>();
  auto client_obs = std::make_shared<Recorder>();
  ServerOptions so = FastServer();
  so.observer = server_obs;
  ClientOptions co = FastClient();
  co.observer = client_obs;
  std::vector<TraceParent> seen;  // by the handler
  auto server = Server::Create(
      io.get_executor(), so, [&](const std::shared_ptr<Channel>& ch) {
        ch->SetTaskHandler([&seen](IncomingTask task) {
          if (task.trace_parent()) seen.push_back(*task.trace_parent());
          if (task.payload_string() == "fail") {
            REQUIRE(task.Fail(absl::NotFoundError("no such thing")).ok());
            return;
          }
          REQUIRE(task.Respond("ab", false).ok());
          REQUIRE(task.Respond("cde", true).ok());
        });
      });
  REQUIRE(server.ok());
  auto ep = (*server)->ListenTcp("127.0.0.1", 0);
  REQUIRE(ep.ok());
  auto client = Client::Connect(
      io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", ep->port()),
      co);
  REQUIRE(client.ok());

  // One task with a child span, answered in two parts.
  CallOptions with_trace;
  with_trace.trace_parent =
      ParseTraceparent(
          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
          .value();
  with_trace.trace_child_span = true;
  std::optional<absl::StatusOr<TaskCall>> call;
  (*client)->async_submit("hello", with_trace,
                          [&](absl::StatusOr<TaskCall> c) { call = c; });
  RunUntil(io, [&] { return call && call->ok() && (*call)->done(); });
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].trace_id == with_trace.trace_parent->trace_id);
  CHECK(seen[0].parent_id != with_trace.trace_parent->parent_id);
  REQUIRE((*call)->trace_parent().has_value());
  CHECK(*(*call)->trace_parent() == seen[0]);  // what went out
  REQUIRE(client_obs->traces.size() == 1);
  CHECK(client_obs->traces[0] == seen[0]);

  const TaskId id = (*call)->id();
  CHECK(
      client_obs->events ==
      std::vector<std::string>{absl::StrCat("submitted ", id, " submitter"),
                               absl::StrCat("first ", id, " submitter"),
                               absl::StrCat("finished ", id, " submitter OK")});
  REQUIRE(client_obs->ends.size() == 1);
  CHECK(client_obs->ends[0].bytes_out == 5);
  CHECK(client_obs->ends[0].bytes_in == 5);
  CHECK(client_obs->ends[0].latency > absl::ZeroDuration());
  CHECK(absl::StrContains(client_obs->peers[0], "127.0.0.1"));
  // The server: accepted from source 127.0.0.1, then the task.
  CHECK(server_obs->events ==
        std::vector<std::string>{
            "accepted 127.0.0.1", absl::StrCat("started ", id, " executor"),
            absl::StrCat("first ", id, " executor"),
            absl::StrCat("finished ", id, " executor OK")});
  REQUIRE(server_obs->ends.size() == 1);
  CHECK(server_obs->ends[0].bytes_in == 5);
  CHECK(server_obs->ends[0].bytes_out == 5);

  // A failed task: finished with its error on both sides, no first response.
  std::optional<absl::StatusOr<std::string>> failed;
  (*client)->async_call("fail", {}, [&](absl::StatusOr<std::string> r) {
    failed = std::move(r);
  });
  RunUntil(io, [&] { return failed.has_value(); });
  REQUIRE_FALSE(failed->ok());
  CHECK(client_obs->Count("finished") == 2);
  CHECK(absl::StrContains(client_obs->events.back(), "finished"));
  CHECK_FALSE(absl::StrContains(client_obs->events.back(), " OK"));
  CHECK(server_obs->Count("finished") == 2);
  CHECK(client_obs->Count("first") == 1);
  CHECK(server_obs->ends.back().bytes_in == 4);
  CHECK(server_obs->ends.back().bytes_out == 0);

  // A cut connection: closed and resumed on both sides; the server
  // accepts the new connection.
  (*client)->KillConnection();
  RunUntil(io, [&] {
    return client_obs->Count("resumed") == 1 &&
           server_obs->Count("resumed") == 1;
  });
  CHECK(client_obs->Count("closed") == 1);
  RunUntil(io, [&] { return server_obs->Count("closed") == 1; });
  CHECK(server_obs->Count("accepted") == 2);
  CHECK((*server)->counters().connections_accepted == 2);
  CHECK(server_obs->Count("handshake failed") == 0);
}

TEST_CASE("observability: RuntimeMetrics on a sharded server sums the shards",
          "[observability]") {
  asio::io_context io;
  auto metrics = std::make_shared<RuntimeMetrics>();
  ServerOptions so = FastServer();
  so.threads = 3;
  so.observer = metrics;
  auto server = Server::Create(so, [](const std::shared_ptr<Channel>& ch) {
    EchoStreamingAgent(ch, testing::RespondCheck::kIgnore);
  });
  REQUIRE(server.ok());
  auto ep = (*server)->ListenTcp("127.0.0.1", 0);
  REQUIRE(ep.ok());
  constexpr int kClients = 6;
  constexpr int kTasksEach = 20;
  std::vector<std::shared_ptr<Channel>> clients;
  for (int i = 0; i < kClients; ++i) {
    auto c = Client::Connect(
        io.get_executor(),
        TcpDialer(io.get_executor(), "127.0.0.1", ep->port()), FastClient());
    REQUIRE(c.ok());
    clients.push_back(*c);
  }
  int done = 0;
  for (const auto& c : clients) {
    for (int t = 0; t < kTasksEach; ++t) {
      c->async_call("2xy", {}, [&](const absl::StatusOr<std::string>& r) {
        CHECK(r.ok());
        ++done;
      });
    }
  }
  constexpr uint64_t kTotal = kClients * kTasksEach;
  const RuntimeMetrics::MethodStats* stats = nullptr;
  RunUntil(io, [&] {
    stats = metrics->Find("");
    return done == kClients * kTasksEach && stats != nullptr &&
           stats->sides[1].finished_ok.load() == kTotal;
  });
  const RuntimeMetrics::SideStats& exec = stats->sides[1];
  CHECK(exec.started.load() == kTotal);
  CHECK(exec.finished_error.load() == 0);
  CHECK(exec.bytes_in.load() == 3 * kTotal);
  // "2xy:0;" "2xy:1;" "2xy:done"
  CHECK(exec.bytes_out.load() == 20 * kTotal);
  CHECK(exec.latency.Snapshot().count == kTotal);
  CHECK(exec.first_response.Snapshot().count == kTotal);
  CHECK(stats->sides[0].started.load() == 0);  // nothing submitted there
  CHECK(metrics->connections_accepted() == kClients);
  CHECK((*server)->counters().connections_accepted == kClients);
  PrometheusText text;
  metrics->AppendPrometheus(text);
  const std::string out = text.Render();
  INFO(out);
  CHECK(absl::StrContains(
      out, absl::StrCat("symwire_tasks_total{method=\"\",side=\"executor\","
                        "result=\"ok\"} ",
                        kTotal, "\n")));
  CHECK(absl::StrContains(
      out, absl::StrCat("symwire_task_duration_seconds_count{method=\"\","
                        "side=\"executor\"} ",
                        kTotal, "\n")));
  CHECK(absl::StrContains(
      out, "symwire_connection_events_total{event=\"accepted\"} 6\n"));
  for (const auto& c : clients) static_cast<void>(c->Close());
  RunUntil(io, [&] {
    return std::all_of(clients.begin(), clients.end(), [](const auto& c) {
      return c->state() == SessionState::kClosed ||
             c->state() == SessionState::kFailed;
    });
  });
  clients.clear();
}

}  // namespace
}  // namespace symwire
