// File: tools/soak_nats.cpp
// symwire-soak --transport nats: the soak's workload through a NATS
// JetStream pool (SPEC.md §21), agents in processes of their own that are
// killed with SIGKILL at random and restarted.
//
// The orchestrator (this process) starts a nats-server of its own (a free
// port on 127.0.0.1, a temporary store directory, stopped by pid:
// symwire/testing/nats_server.hpp) unless --nats-url names one (a cluster:
// tools/nats_cluster_soak.sh), creates a pool, starts --agents agent
// processes (this program with --role nats-agent), and submits --tasks
// tasks keeping --window in flight. Every --kill-agents MIN..MAX ms (a
// seeded random interval) it SIGKILLs a random agent and starts a new one
// in its place: the task that agent held is redelivered after the pool's
// ack wait (--ack-wait-ms) to another agent, which answers it again as a
// new delivery attempt.
//
// Payloads carry the task index, the part index and an FNV-1a checksum of
// the rest, padded to --payload bytes. The agent checks the task payload
// and answers 3 (or, with --partials K, a seeded 1..K, named in the task)
// partial responses, each after 0..--part-delay-ms ms, then a final one
// naming the count. The orchestrator checks, through NatsOrchestrator::Next
// (which applies SPEC.md §21.3):
//   - each task's partials in order within an attempt (a kRestarted report
//     starts them again), then exactly one final naming their count;
//   - nothing after a task's end, and nothing for a task never submitted
//     (duplicated); every payload intact (corrupted);
//   - every task ends (lost = tasks without a final when the run ends;
//     failed = tasks that ended with an error).
// The JSON line has the fields of the other transports plus agents,
// agents_killed, redeliveries (sum over tasks of the final's attempt - 1),
// restarts (kRestarted reports), discarded_frames, rejected_messages,
// submit_retries and longest_stall_ms (the longest time without any task
// ending, from the first submit to the last end).
#include "soak_nats.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "symwire/nats/pool.hpp"
#include "symwire/testing/nats_server.hpp"

extern char** environ;

namespace symwire_soak {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// "<kind> <index> <n> <filler>#<fnv of all before, 16 hex>", the filler
// making it `size` bytes when that is long enough.
std::string MakePayload(char kind, uint64_t index, uint64_t n, uint32_t size) {
  std::string s = absl::StrCat(std::string(1, kind), " ", index, " ", n, " ");
  constexpr size_t kTrailer = 17;  // '#' + 16 hex digits
  for (size_t i = 0; s.size() + kTrailer < size; ++i) {
    s.push_back(static_cast<char>('a' + (index * 31 + i * 7) % 26));
  }
  const uint64_t h = Fnv1a(s);
  absl::StrAppend(&s, "#", absl::Hex(h, absl::kZeroPad16));
  return s;
}

// The inverse; false for any damage.
bool CheckPayload(absl::string_view s, char kind, uint64_t& index,
                  uint64_t& n) {
  const size_t hash = s.rfind('#');
  if (hash == absl::string_view::npos || s.size() - hash != 17) return false;
  uint64_t want = 0;
  if (!absl::SimpleHexAtoi(s.substr(hash + 1), &want) ||
      Fnv1a(s.substr(0, hash)) != want) {
    return false;
  }
  const std::vector<absl::string_view> parts =
      absl::StrSplit(s.substr(0, hash), absl::MaxSplits(' ', 3));
  if (parts.size() != 4 || parts[0].size() != 1 || parts[0][0] != kind ||
      !absl::SimpleAtoi(parts[1], &index) || !absl::SimpleAtoi(parts[2], &n)) {
    return false;
  }
  for (size_t i = 0; i < parts[3].size(); ++i) {
    if (parts[3][i] != static_cast<char>('a' + (index * 31 + i * 7) % 26)) {
      return false;
    }
  }
  return true;
}

absl::Span<const std::byte> AsBytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00",
                      absl::Hex(static_cast<uint8_t>(c), absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

symwire::NatsPoolOptions PoolOptions(const NatsSoakOptions& o) {
  symwire::NatsPoolOptions p;
  p.pool = o.pool;
  p.storage = o.storage == "memory" ? symwire::NatsStorage::kMemory
                                    : symwire::NatsStorage::kFile;
  p.replicas = static_cast<int>(o.replicas);
  p.ack_wait = absl::Milliseconds(static_cast<int64_t>(o.ack_wait_ms));
  p.max_deliveries = o.max_deliveries;
  return p;
}

symwire::NatsConnectOptions ConnectOptions(const NatsSoakOptions& o,
                                           const char* name) {
  symwire::NatsConnectOptions c;
  c.url = o.url;
  c.connection_name = name;
  return c;
}

// One agent process (this program with --role nats-agent).
class AgentProcess {
 public:
  AgentProcess(const NatsSoakOptions& o, uint64_t seed) {
    std::vector<std::string> args = {o.self,
                                     "--role",
                                     "nats-agent",
                                     "--nats-url",
                                     o.url,
                                     "--nats-pool",
                                     o.pool,
                                     "--nats-storage",
                                     o.storage,
                                     "--nats-replicas",
                                     absl::StrCat(o.replicas),
                                     "--ack-wait-ms",
                                     absl::StrCat(o.ack_wait_ms),
                                     "--max-deliveries",
                                     absl::StrCat(o.max_deliveries),
                                     "--part-delay-ms",
                                     absl::StrCat(o.part_delay_ms),
                                     "--seed",
                                     absl::StrCat(seed)};
    if (o.verbose) args.emplace_back("--verbose");
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    if (!o.verbose) {
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null",
                                       O_WRONLY, 0);
    }
    const int rc =
        posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = -1;
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  ~AgentProcess() { Kill(); }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // SIGKILL and reap (bounded: SIGKILL cannot be caught).
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // True if it exited on its own (e.g. it could not reach the server).
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
};

struct Expect {
  uint64_t attempt = 0;
  uint64_t next_part = 0;
  uint64_t parts = 0;  // named in the task
  bool ended = false;
};

}  // namespace

int RunNatsAgent(const NatsSoakOptions& o) {
  absl::StatusOr<symwire::NatsClient> client = symwire::NatsClient::Connect(
      ConnectOptions(o, "symwire-soak nats-agent"));
  if (!client.ok()) {
    std::fprintf(stderr, "nats-agent: %s\n",
                 client.status().ToString().c_str());
    return 1;
  }
  std::mt19937_64 rng(o.seed);
  const uint32_t max_delay = o.part_delay_ms;
  symwire::NatsAgentOptions options;
  options.pool = PoolOptions(o);
  absl::StatusOr<symwire::NatsAgent> agent = symwire::NatsAgent::Create(
      *client, options,
      [&rng, max_delay](
          symwire::NatsTaskContext& task) -> absl::StatusOr<std::string> {
        const std::string in(
            reinterpret_cast<const char*>(task.payload().data()),
            task.payload().size());
        uint64_t index = 0;
        uint64_t parts = 0;
        if (!CheckPayload(in, 'T', index, parts) || parts > 1000) {
          return absl::DataLossError("corrupted task payload");
        }
        const auto size = static_cast<uint32_t>(in.size());
        for (uint64_t i = 0; i < parts; ++i) {
          if (max_delay > 0) {
            std::this_thread::sleep_for(
                std::chrono::milliseconds(rng() % (max_delay + 1)));
          }
          if (absl::Status s =
                  task.Respond(AsBytes(MakePayload('P', index, i, size)));
              !s.ok()) {
            return s;
          }
        }
        return MakePayload('F', index, parts, size);
      });
  if (!agent.ok()) {
    std::fprintf(stderr, "nats-agent: %s\n", agent.status().ToString().c_str());
    return 1;
  }
  for (;;) {  // until killed
    absl::StatusOr<symwire::NatsAgentOutcome> r =
        agent->RunOnce(absl::Seconds(1));
    if (!r.ok()) {
      if (o.verbose) {
        std::fprintf(stderr, "nats-agent: %s\n", r.status().ToString().c_str());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

int RunNatsSoak(const NatsSoakOptions& options) {
  NatsSoakOptions o = options;
  const Clock::time_point start = Clock::now();
  const uint64_t max_seconds =
      o.max_seconds > 0 ? o.max_seconds : 60 + o.tasks / 100;
  const Clock::time_point give_up = start + std::chrono::seconds(max_seconds);
  std::string fatal;
  std::unique_ptr<symwire::testing::NatsServer> server;
  if (o.url.empty()) {
    absl::StatusOr<std::unique_ptr<symwire::testing::NatsServer>> s =
        symwire::testing::NatsServer::Start();
    if (!s.ok()) {
      std::fprintf(stderr, "symwire-soak: %s\n", s.status().ToString().c_str());
      return 1;
    }
    server = std::move(*s);
    o.url = server->url();
  }
  if (o.pool.empty()) o.pool = absl::StrCat("soak-", o.seed, "-", ::getpid());
  std::mt19937_64 rng(o.seed);

  absl::StatusOr<symwire::NatsClient> client = symwire::NatsClient::Connect(
      ConnectOptions(o, "symwire-soak orchestrator"));
  std::optional<symwire::NatsOrchestrator> orch;
  if (!client.ok()) {
    fatal = client.status().ToString();
  } else {
    symwire::NatsOrchestratorOptions oo;
    oo.pool = PoolOptions(o);
    oo.identity = "soak";
    absl::StatusOr<symwire::NatsOrchestrator> created =
        symwire::NatsOrchestrator::Create(*client, oo);
    if (created.ok()) {
      orch.emplace(std::move(*created));
    } else {
      fatal = created.status().ToString();
    }
  }

  std::vector<std::unique_ptr<AgentProcess>> agents;
  uint64_t agents_started = 0;
  const auto spawn = [&]() {
    auto a = std::make_unique<AgentProcess>(o, o.seed * 1000 + agents_started);
    ++agents_started;
    return a;
  };
  for (uint32_t i = 0; i < o.agents && fatal.empty(); ++i) {
    agents.push_back(spawn());
    if (!agents.back()->started()) fatal = "cannot start an agent process";
  }
  if (o.narrate && fatal.empty()) {
    std::string pids;
    for (const auto& a : agents) absl::StrAppend(&pids, " ", a->pid());
    std::printf(
        "pool '%s' on %s (%s storage, %u replica(s), ack wait %llu ms)\n"
        "%u agent processes, pids%s\n",
        o.pool.c_str(), o.url.c_str(), o.storage.c_str(), o.replicas,
        static_cast<unsigned long long>(o.ack_wait_ms), o.agents, pids.c_str());
    std::fflush(stdout);
  }
  const bool killing = o.kill_max_ms > 0;
  const auto next_kill_in = [&] {
    return std::chrono::milliseconds(
        o.kill_min_ms + rng() % (o.kill_max_ms - o.kill_min_ms + 1));
  };
  Clock::time_point next_kill = Clock::now() + next_kill_in();

  // Like the library's own ids: a rerun with the same pool and identity
  // does not reuse them.
  const auto id_base = static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  std::vector<Expect> expected(o.tasks);
  absl::flat_hash_map<uint64_t, uint64_t> index_of;  // task id -> index
  uint64_t submitted = 0;
  uint64_t ended = 0;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t duplicated = 0;
  uint64_t out_of_order = 0;
  uint64_t corrupted = 0;
  uint64_t responses = 0;
  uint64_t redeliveries = 0;
  uint64_t restarts = 0;
  uint64_t agents_killed = 0;
  uint64_t submit_retries = 0;
  std::string first_failure;
  Clock::time_point last_end = Clock::now();
  Clock::duration longest_stall{0};
  bool first_submit = true;

  while (fatal.empty() && ended < o.tasks) {
    const Clock::time_point now = Clock::now();
    if (now >= give_up) {
      fatal = absl::StrCat("time bound of ", max_seconds, " s ran out");
      break;
    }
    if (killing && now >= next_kill &&
        (o.max_kills == 0 || agents_killed < o.max_kills)) {
      const size_t victim = rng() % agents.size();
      const pid_t old_pid = agents[victim]->pid();
      agents[victim]->Kill();
      ++agents_killed;
      agents[victim] = spawn();
      if (o.narrate) {
        std::printf(
            "  ** SIGKILL agent pid %d (mid-run, %llu of %llu tasks ended); "
            "started pid %d in its place\n",
            static_cast<int>(old_pid), static_cast<unsigned long long>(ended),
            static_cast<unsigned long long>(o.tasks),
            static_cast<int>(agents[victim]->pid()));
        std::fflush(stdout);
      }
      if (o.verbose) {
        std::fprintf(stderr, "killed agent %zu; %llu/%llu tasks ended\n",
                     victim, static_cast<unsigned long long>(ended),
                     static_cast<unsigned long long>(o.tasks));
      }
      next_kill = now + next_kill_in();
    }
    for (auto& a : agents) {  // one that gave up (e.g. during a failover)
      if (a->Exited()) a = spawn();
    }
    // Submit up to the window.
    while (submitted < o.tasks && submitted - ended < o.window) {
      const uint64_t index = submitted;
      const uint64_t parts = o.partials == 0 ? 3 : 1 + rng() % o.partials;
      const std::string payload = MakePayload('T', index, parts, o.payload);
      symwire::NatsSubmitOptions so;
      // Ids of our own, so that a retried submit names the same task (it
      // is stored once, §21.2).
      so.task_id = id_base + index;
      std::optional<uint64_t> id;
      for (int attempt = 0; !id && Clock::now() < give_up; ++attempt) {
        absl::StatusOr<uint64_t> r = orch->Submit(AsBytes(payload), so);
        if (r.ok()) {
          id = *r;
        } else if (r.status().code() == absl::StatusCode::kUnavailable ||
                   r.status().code() == absl::StatusCode::kDeadlineExceeded ||
                   r.status().code() == absl::StatusCode::kInternal) {
          ++submit_retries;
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        } else {
          fatal = r.status().ToString();
          break;
        }
      }
      if (!id) {
        if (fatal.empty()) fatal = "submit did not succeed in time";
        break;
      }
      if (first_submit) {
        last_end = Clock::now();
        first_submit = false;
      }
      if (!index_of.emplace(*id, index).second) {
        fatal = absl::StrCat("task id ", *id, " given twice");
        break;
      }
      expected[index].parts = parts;
      ++submitted;
    }
    if (!fatal.empty()) break;
    absl::StatusOr<std::optional<symwire::NatsResponse>> next =
        orch->Next(absl::Milliseconds(50));
    if (!next.ok()) {
      if (o.verbose) {
        std::fprintf(stderr, "next: %s\n", next.status().ToString().c_str());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (!next->has_value()) continue;
    const symwire::NatsResponse& r = **next;
    ++responses;
    auto it = index_of.find(r.task_id);
    if (it == index_of.end()) {
      ++duplicated;  // a task never submitted
      continue;
    }
    Expect& e = expected[it->second];
    if (e.ended) {
      ++duplicated;  // after its end
      continue;
    }
    using Kind = symwire::NatsResponse::Kind;
    if (r.kind == Kind::kRestarted) {
      if (o.narrate) {
        std::printf(
            "  task %3llu: its agent died after %llu partial(s); redelivered, "
            "attempt %llu starts again\n",
            static_cast<unsigned long long>(it->second),
            static_cast<unsigned long long>(e.next_part),
            static_cast<unsigned long long>(r.attempt));
      }
      ++restarts;
      e.next_part = 0;
      e.attempt = r.attempt;
      continue;
    }
    if (e.attempt != 0 && r.attempt != e.attempt && r.kind != Kind::kFailed) {
      if (e.next_part != 0) ++out_of_order;  // a switch without kRestarted
      e.next_part = 0;
    }
    if (r.kind != Kind::kFailed) e.attempt = r.attempt;
    uint64_t index = 0;
    uint64_t n = 0;
    if (r.kind == Kind::kPartial) {
      if (!CheckPayload(r.payload, 'P', index, n) || index != it->second) {
        ++corrupted;
      } else if (n != e.next_part) {
        ++out_of_order;
      }
      ++e.next_part;
      continue;
    }
    e.ended = true;
    ++ended;
    const Clock::time_point t = Clock::now();
    longest_stall = std::max(longest_stall, t - last_end);
    last_end = t;
    if (r.kind == Kind::kFinal) {
      if (!CheckPayload(r.payload, 'F', index, n) || index != it->second ||
          n != e.parts) {
        ++corrupted;
      } else if (e.next_part != e.parts) {
        ++out_of_order;
      } else {
        ++completed;
        redeliveries += r.attempt > 0 ? r.attempt - 1 : 0;
        if (o.narrate) {
          std::printf("  task %3llu: completed (%llu partials, attempt %llu)\n",
                      static_cast<unsigned long long>(it->second),
                      static_cast<unsigned long long>(e.parts),
                      static_cast<unsigned long long>(r.attempt));
        }
      }
    } else {
      ++failed;
      if (r.status.code() == absl::StatusCode::kDataLoss) ++corrupted;
      if (first_failure.empty()) {
        first_failure =
            absl::StrCat("task ", r.task_id, ": ", r.status.ToString());
      }
    }
  }
  const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                        Clock::now() - start)
                        .count();
  agents.clear();  // SIGKILL: they hold no state of their own
  if (fatal.empty() && !first_failure.empty()) fatal = first_failure;
  const uint64_t lost = o.tasks - ended;
  const bool ok = fatal.empty() && lost == 0 && duplicated == 0 &&
                  out_of_order == 0 && corrupted == 0 && failed == 0 &&
                  completed == o.tasks;
  if (o.narrate) {
    std::printf(
        "%llu tasks submitted, %llu completed exactly once: %llu lost, %llu "
        "duplicated, %llu out of order, %llu corrupted, %llu failed; %llu "
        "agent(s) killed, %llu redelivered task(s)%s%s\n",
        static_cast<unsigned long long>(o.tasks),
        static_cast<unsigned long long>(completed),
        static_cast<unsigned long long>(lost),
        static_cast<unsigned long long>(duplicated),
        static_cast<unsigned long long>(out_of_order),
        static_cast<unsigned long long>(corrupted),
        static_cast<unsigned long long>(failed),
        static_cast<unsigned long long>(agents_killed),
        static_cast<unsigned long long>(redeliveries),
        fatal.empty() ? "" : "; error: ", fatal.c_str());
  }
  std::printf(
      "%s\n",
      absl::StrCat(
          "{\"transport\":\"nats\",\"tasks\":", o.tasks, ",\"completed\":",
          completed, ",\"lost\":", lost, ",\"duplicated\":", duplicated,
          ",\"out_of_order\":", out_of_order, ",\"corrupted\":", corrupted,
          ",\"failed\":", failed, ",\"responses\":", responses,
          ",\"agents\":", o.agents, ",\"agents_killed\":", agents_killed,
          ",\"redeliveries\":", redeliveries, ",\"restarts\":", restarts,
          ",\"discarded_frames\":", orch ? orch->discarded_frames() : 0,
          ",\"rejected_messages\":", orch ? orch->rejected_messages() : 0,
          ",\"submit_retries\":", submit_retries, ",\"replicas\":", o.replicas,
          ",\"longest_stall_ms\":",
          std::chrono::duration_cast<std::chrono::milliseconds>(longest_stall)
              .count(),
          ",\"wall_ms\":", wall, ",\"seed\":", o.seed, ",\"ok\":",
          ok ? "true" : "false", ",\"error\":", JsonString(fatal), "}")
          .c_str());
  std::fflush(stdout);
  return ok ? 0 : 1;
}

}  // namespace symwire_soak
