// File: bench/nats_bench.cpp
// symwire-nats-bench (issue #15): tasks/s and latency through one NATS
// JetStream server, a symwire pool (NatsOrchestrator + NatsAgent) against a
// plain libnats loop of the same message flow, alternated in one run.
//
// Both sides do, per task: the orchestrator publishes the task and waits
// for the stream's acknowledgement (keeping --window tasks in flight); an
// agent fetches it (a pull consumer shared by the agents), publishes one
// response (the final; acknowledged by the stream) and then acks the task;
// the orchestrator fetches the response and acks it. File storage. The
// plain loop has none of symwire's frames, checksums, Nats-Msg-Id headers,
// cancel look-up, in-progress pinger or attempt bookkeeping: its payload
// goes out as it is (the first 8 bytes name the task).
//
// The orchestrator is the main thread; each agent is a thread with a
// connection of its own (as a process would have). A nats-server of its own
// (symwire/testing/nats_server.hpp) unless --url. For each payload in
// --payloads and each agent count in --agents it runs --rounds rounds, each
// round the plain loop then the pool (a fresh stream each time), and prints
// one JSON line per measurement and, at the end, a table of medians with
// the ratio symwire / plain.
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/args.hpp"
#include "symwire/nats/pool.hpp"
#include "symwire/testing/nats_server.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  double tasks_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  std::string error;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(
      v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

Result Summarise(const std::vector<double>& lat_us, Clock::duration wall,
                 uint64_t tasks) {
  Result r;
  r.tasks_per_s =
      static_cast<double>(tasks) / std::chrono::duration<double>(wall).count();
  r.p50_us = Percentile(lat_us, 0.50);
  r.p99_us = Percentile(lat_us, 0.99);
  return r;
}

std::string Check(natsStatus s, const char* what) {
  if (s == NATS_OK) return {};
  return absl::StrCat(what, ": ", natsStatus_GetText(s), " ",
                      nats_GetLastError(nullptr));
}

// ---- plain libnats ------------------------------------------------------

struct Conn {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ~Conn() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
  }
};

std::string Open(const std::string& url, Conn& c) {
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url.c_str());
  natsOptions_SetSendAsap(o, true);
  std::string err = Check(natsConnection_Connect(&c.nc, o), "connect");
  natsOptions_Destroy(o);
  if (err.empty())
    err = Check(natsConnection_JetStream(&c.js, c.nc, nullptr), "js");
  return err;
}

std::string AddStream(jsCtx* js, const std::string& name,
                      const std::string& subject, bool work_queue) {
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = name.c_str();
  const char* subjects[] = {subject.c_str()};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Retention = work_queue ? js_WorkQueuePolicy : js_LimitsPolicy;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  return Check(js_AddStream(nullptr, js, &sc, nullptr, &jerr), "js_AddStream");
}

std::string AddConsumer(jsCtx* js, const std::string& stream,
                        const std::string& durable) {
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.AckPolicy = js_AckExplicit;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  return Check(js_AddConsumer(nullptr, js, stream.c_str(), &cc, nullptr, &jerr),
               "js_AddConsumer");
}

natsSubscription* Pull(jsCtx* js, const std::string& subject,
                       const std::string& stream, const std::string& durable) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = durable.c_str();
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (js_PullSubscribe(&sub, js, subject.c_str(), durable.c_str(), nullptr, &so,
                       &jerr) != NATS_OK) {
    return nullptr;
  }
  return sub;
}

natsMsg* FetchOne(natsSubscription* sub, int64_t timeout_ms) {
  natsMsgList list{nullptr, 0};
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (natsSubscription_Fetch(&list, sub, 1, timeout_ms, &jerr) != NATS_OK) {
    return nullptr;
  }
  natsMsg* m = nullptr;
  if (list.Count > 0) {
    m = list.Msgs[0];
    list.Msgs[0] = nullptr;
  }
  natsMsgList_Destroy(&list);
  return m;
}

Result RunPlain(const std::string& url, int round, uint32_t payload,
                uint32_t agents, uint64_t tasks, uint32_t window) {
  const std::string tag =
      absl::StrCat("plain", round, "a", agents, "p", payload);
  const std::string task_stream = absl::StrCat("T_", tag);
  const std::string resp_stream = absl::StrCat("R_", tag);
  const std::string task_subject = absl::StrCat("bench.", tag, ".task");
  const std::string resp_subject = absl::StrCat("bench.", tag, ".resp");
  Conn orch;
  Result r;
  r.error = Open(url, orch);
  if (r.error.empty())
    r.error = AddStream(orch.js, task_stream, task_subject, true);
  if (r.error.empty())
    r.error = AddStream(orch.js, resp_stream, resp_subject, true);
  if (r.error.empty()) r.error = AddConsumer(orch.js, task_stream, "agents");
  if (r.error.empty()) r.error = AddConsumer(orch.js, resp_stream, "orch");
  if (!r.error.empty()) return r;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (uint32_t a = 0; a < agents; ++a) {
    threads.emplace_back([&] {
      Conn c;
      if (!Open(url, c).empty()) return;
      natsSubscription* sub = Pull(c.js, task_subject, task_stream, "agents");
      if (sub == nullptr) return;
      std::string out;
      while (!stop.load()) {
        natsMsg* m = FetchOne(sub, 100);
        if (m == nullptr) continue;
        out.assign(natsMsg_GetData(m),
                   static_cast<size_t>(natsMsg_GetDataLength(m)));
        jsErrCode jerr = static_cast<jsErrCode>(0);
        jsPubAck* pa = nullptr;
        if (js_Publish(&pa, c.js, resp_subject.c_str(), out.data(),
                       static_cast<int>(out.size()), nullptr,
                       &jerr) == NATS_OK) {
          natsMsg_AckSync(m, nullptr, &jerr);
        }
        jsPubAck_Destroy(pa);
        natsMsg_Destroy(m);
      }
      natsSubscription_Destroy(sub);
    });
  }
  natsSubscription* responses =
      Pull(orch.js, resp_subject, resp_stream, "orch");
  std::vector<Clock::time_point> sent(tasks);
  std::vector<double> lat;
  lat.reserve(tasks);
  std::string body(std::max<uint32_t>(payload, 8), 'x');
  uint64_t submitted = 0;
  uint64_t done = 0;
  const Clock::time_point start = Clock::now();
  const Clock::time_point give_up = start + std::chrono::seconds(120);
  while (done < tasks && responses != nullptr) {
    if (Clock::now() > give_up) {
      r.error = "time bound";
      break;
    }
    while (submitted < tasks && submitted - done < window) {
      std::memcpy(body.data(), &submitted, 8);
      sent[submitted] = Clock::now();
      jsErrCode jerr = static_cast<jsErrCode>(0);
      jsPubAck* pa = nullptr;
      const natsStatus s =
          js_Publish(&pa, orch.js, task_subject.c_str(), body.data(),
                     static_cast<int>(payload), nullptr, &jerr);
      jsPubAck_Destroy(pa);
      if (s != NATS_OK) {
        r.error = Check(s, "js_Publish");
        break;
      }
      ++submitted;
    }
    if (!r.error.empty()) break;
    natsMsg* m = FetchOne(responses, 1000);
    if (m == nullptr) continue;
    uint64_t index = 0;
    if (natsMsg_GetDataLength(m) >= 8) {
      std::memcpy(&index, natsMsg_GetData(m), 8);
    }
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsMsg_AckSync(m, nullptr, &jerr);
    natsMsg_Destroy(m);
    if (index < tasks) {
      lat.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - sent[index])
              .count());
    }
    ++done;
  }
  const Clock::duration wall = Clock::now() - start;
  stop = true;
  for (auto& t : threads) t.join();
  if (responses != nullptr) natsSubscription_Destroy(responses);
  js_DeleteStream(orch.js, task_stream.c_str(), nullptr, nullptr);
  js_DeleteStream(orch.js, resp_stream.c_str(), nullptr, nullptr);
  Result out = Summarise(lat, wall, done);
  out.error = r.error;
  return out;
}

// ---- symwire pool -------------------------------------------------------

Result RunSymwire(const std::string& url, int round, uint32_t payload,
                  uint32_t agents, uint64_t tasks, uint32_t window) {
  Result r;
  symwire::NatsConnectOptions co;
  co.url = url;
  absl::StatusOr<symwire::NatsClient> client = symwire::NatsClient::Connect(co);
  if (!client.ok()) {
    r.error = client.status().ToString();
    return r;
  }
  symwire::NatsOrchestratorOptions oo;
  oo.pool.pool = absl::StrCat("bench", round, "a", agents, "p", payload);
  oo.identity = "bench";
  absl::StatusOr<symwire::NatsOrchestrator> orch =
      symwire::NatsOrchestrator::Create(*client, oo);
  if (!orch.ok()) {
    r.error = orch.status().ToString();
    return r;
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (uint32_t a = 0; a < agents; ++a) {
    threads.emplace_back([&] {
      absl::StatusOr<symwire::NatsClient> c = symwire::NatsClient::Connect(co);
      if (!c.ok()) return;
      symwire::NatsAgentOptions ao;
      ao.pool = oo.pool;
      absl::StatusOr<symwire::NatsAgent> agent = symwire::NatsAgent::Create(
          *c, ao,
          [](symwire::NatsTaskContext& t) -> absl::StatusOr<std::string> {
            return std::string(
                reinterpret_cast<const char*>(t.payload().data()),
                t.payload().size());
          });
      if (!agent.ok()) return;
      while (!stop.load()) (void)agent->RunOnce(absl::Milliseconds(100));
    });
  }
  absl::flat_hash_map<uint64_t, Clock::time_point> sent;
  std::vector<double> lat;
  lat.reserve(tasks);
  const std::string body(payload, 'x');
  const absl::Span<const std::byte> bytes(
      reinterpret_cast<const std::byte*>(body.data()), body.size());
  uint64_t submitted = 0;
  uint64_t done = 0;
  const Clock::time_point start = Clock::now();
  const Clock::time_point give_up = start + std::chrono::seconds(120);
  while (done < tasks) {
    if (Clock::now() > give_up) {
      r.error = "time bound";
      break;
    }
    while (submitted < tasks && submitted - done < window) {
      const Clock::time_point t = Clock::now();
      absl::StatusOr<uint64_t> id = orch->Submit(bytes);
      if (!id.ok()) {
        r.error = id.status().ToString();
        break;
      }
      sent[*id] = t;
      ++submitted;
    }
    if (!r.error.empty()) break;
    absl::StatusOr<std::optional<symwire::NatsResponse>> n =
        orch->Next(absl::Seconds(1));
    if (!n.ok()) {
      r.error = n.status().ToString();
      break;
    }
    if (!n->has_value()) continue;
    if ((*n)->kind != symwire::NatsResponse::Kind::kFinal) {
      if ((*n)->kind == symwire::NatsResponse::Kind::kFailed) {
        r.error = (*n)->status.ToString();
        break;
      }
      continue;
    }
    auto it = sent.find((*n)->task_id);
    if (it != sent.end()) {
      lat.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - it->second)
              .count());
      sent.erase(it);
    }
    ++done;
  }
  const Clock::duration wall = Clock::now() - start;
  stop = true;
  for (auto& t : threads) t.join();
  Result out = Summarise(lat, wall, done);
  out.error = r.error;
  return out;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  uint64_t tasks = 3000;
  uint32_t window = 64;
  int rounds = 3;
  std::string payloads = "64,16384";
  std::string agent_counts = "1,2";
  symwire_cli::Args args(
      "symwire-nats-bench", "[flags]",
      "tasks/s and latency of a symwire NATS pool against a plain libnats "
      "JetStream loop\nof the same message flow, alternated in one run "
      "(bench/README.md, \"NATS JetStream\").");
  args.String("--url", &url, "URL", "the NATS server")
      .Default("a nats-server of its own on 127.0.0.1")
      .Int("--tasks", &tasks, "N", "tasks per measurement", uint64_t{1},
           uint64_t{100000000})
      .Int("--window", &window, "W", "tasks in flight", uint32_t{1},
           uint32_t{100000})
      .Int("--rounds", &rounds, "R", "rounds (plain, then symwire, each)", 1,
           100)
      .String("--payloads", &payloads, "B,B", "payload sizes")
      .String("--agents", &agent_counts, "A,A", "agent counts");
  args.Parse(argc, argv);
  std::vector<uint32_t> sizes;
  std::vector<uint32_t> counts;
  for (absl::string_view p : absl::StrSplit(payloads, ',')) {
    uint32_t v = 0;
    if (!absl::SimpleAtoi(p, &v) || v < 8 || v > (1u << 20)) {
      args.Fail("--payloads: sizes in 8..1048576");
    }
    sizes.push_back(v);
  }
  for (absl::string_view p : absl::StrSplit(agent_counts, ',')) {
    uint32_t v = 0;
    if (!absl::SimpleAtoi(p, &v) || v < 1 || v > 64) {
      args.Fail("--agents: counts in 1..64");
    }
    counts.push_back(v);
  }
  std::unique_ptr<symwire::testing::NatsServer> server;
  if (url.empty()) {
    symwire::testing::NatsServerOptions so;
    so.max_file_store_bytes = int64_t{2} << 30;
    absl::StatusOr<std::unique_ptr<symwire::testing::NatsServer>> s =
        symwire::testing::NatsServer::Start(so);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
      return 1;
    }
    server = std::move(*s);
    url = server->url();
  }
  struct Row {
    uint32_t payload;
    uint32_t agents;
    std::vector<double> plain_rate, sym_rate, plain_p50, sym_p50, plain_p99,
        sym_p99;
  };
  std::vector<Row> rows;
  bool failed = false;
  for (const uint32_t size : sizes) {
    for (const uint32_t a : counts) {
      Row row{size, a, {}, {}, {}, {}, {}, {}};
      for (int round = 0; round < rounds; ++round) {
        for (const bool sym : {false, true}) {
          const Result res =
              sym ? RunSymwire(url, round, size, a, tasks, window)
                  : RunPlain(url, round, size, a, tasks, window);
          std::printf(
              "{\"mode\":\"%s\",\"payload\":%u,\"agents\":%u,\"round\":%d,"
              "\"tasks\":%llu,\"window\":%u,\"tasks_per_s\":%.0f,"
              "\"p50_us\":%.0f,\"p99_us\":%.0f,\"error\":\"%s\"}\n",
              sym ? "symwire" : "plain", size, a, round,
              static_cast<unsigned long long>(tasks), window, res.tasks_per_s,
              res.p50_us, res.p99_us, res.error.c_str());
          std::fflush(stdout);
          if (!res.error.empty()) failed = true;
          (sym ? row.sym_rate : row.plain_rate).push_back(res.tasks_per_s);
          (sym ? row.sym_p50 : row.plain_p50).push_back(res.p50_us);
          (sym ? row.sym_p99 : row.plain_p99).push_back(res.p99_us);
        }
      }
      rows.push_back(std::move(row));
    }
  }
  std::printf(
      "\n| payload | agents | plain tasks/s | symwire tasks/s | symwire / "
      "plain "
      "| plain p50 / p99 µs | symwire p50 / p99 µs |\n"
      "|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    const double pr = Median(r.plain_rate);
    const double sr = Median(r.sym_rate);
    std::printf(
        "| %u B | %u | %.0f | %.0f | %.0f%% | %.0f / %.0f | %.0f / %.0f |\n",
        r.payload, r.agents, pr, sr, pr > 0 ? 100.0 * sr / pr : 0.0,
        Median(r.plain_p50), Median(r.plain_p99), Median(r.sym_p50),
        Median(r.sym_p99));
  }
  return failed ? 1 : 0;
}
