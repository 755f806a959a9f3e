// File: examples/orchestrator_worker.cpp
// Orchestrator-worker: one orchestrator fans a queue of tasks out to
// several agents and aggregates their answers.
//
// Each agent is a Server listening on its own 127.0.0.1 port; the
// orchestrator holds one Client per agent (the shape of a real deployment,
// where every agent is a process or a machine of its own; here they share
// this process to keep the example self-contained). Dispatch is pull-style:
// every agent has at most kWindow tasks in flight, and each answer frees a
// slot for the next task in the queue, so faster agents take more of the
// work. Agent i needs 2^i ms per task (a stand-in for real effort).
//
// Tasks are "square K"; the orchestrator checks every answer and the sum.
// Usage: orchestrator_worker. Exit status 0 when every task was answered
// correctly; the last line is then "all ok".
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"

namespace {

namespace asio = boost::asio;

constexpr int kAgents = 3;
constexpr int64_t kTasks = 70;
constexpr int kWindow = 4;  // tasks in flight per agent

// StartAgent: an agent answering "square K" with K*K after `work`.
absl::StatusOr<std::shared_ptr<symwire::Server>> StartAgent(
    asio::io_context& io, int index, std::chrono::milliseconds work) {
  symwire::ServerOptions options;
  options.session.agent_id = absl::StrCat("worker-", index);
  options.session.role = symwire::AgentRole::kAgent;
  return symwire::Server::Create(
      io.get_executor(), options,
      [&io, work](const std::shared_ptr<symwire::Channel>& session) {
        session->SetTaskHandler([&io, work](symwire::IncomingTask task) {
          const std::string text = task.payload_string();
          absl::string_view arg(text);
          int64_t k = 0;
          if (!absl::ConsumePrefix(&arg, "square ") ||
              !absl::SimpleAtoi(arg, &k)) {
            static_cast<void>(task.Fail(absl::InvalidArgumentError(
                absl::StrCat("expected 'square K', got '", text, "'"))));
            return;
          }
          // The "work": a timer, so the agent keeps serving other tasks
          // meanwhile (never block the executor).
          auto timer = std::make_shared<asio::steady_timer>(io, work);
          timer->async_wait(
              [task, k, timer](const boost::system::error_code&) mutable {
                static_cast<void>(task.Respond(absl::StrCat(k * k), true));
              });
        });
      });
}

// Worker: the orchestrator's view of one agent.
struct Worker {
  std::string name;
  std::shared_ptr<symwire::Server> server;   // the agent (in-process here)
  std::shared_ptr<symwire::Channel> client;  // the orchestrator's session
  int in_flight = 0;
  int done = 0;
};

// Orchestrator: the task queue and the aggregate.
struct Orchestrator {
  std::vector<Worker> workers;
  int64_t next_task = 1;  // tasks are square 1 .. square kTasks
  int64_t answered = 0;
  int64_t sum = 0;
  int errors = 0;
  std::chrono::steady_clock::time_point start;

  // Dispatch: fills every agent's window from the queue.
  void Dispatch() {
    for (Worker& w : workers) {
      while (w.in_flight < kWindow && next_task <= kTasks) {
        Send(w, next_task++);
      }
    }
  }

  void Send(Worker& w, int64_t k) {
    ++w.in_flight;
    // async_call waits for the handshake and for credit, and joins a
    // streamed answer; CallOptions could add a deadline or metadata.
    w.client->async_call(
        absl::StrCat("square ", k), {},
        [this, &w, k](const absl::StatusOr<std::string>& r) {
          --w.in_flight;
          ++w.done;
          int64_t v = 0;
          if (r.ok() && absl::SimpleAtoi(*r, &v) && v == k * k) {
            sum += v;
          } else {
            ++errors;
            std::printf("FAIL square %lld -> %s\n", static_cast<long long>(k),
                        r.ok() ? r->c_str() : r.status().ToString().c_str());
          }
          if (++answered == kTasks) {
            Finish();
          } else {
            Dispatch();
          }
        });
  }

  // Finish: prints the summary, closes the sessions, stops the agents.
  void Finish() {
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    for (const Worker& w : workers) {
      std::printf("  %-9s %3d tasks\n", w.name.c_str(), w.done);
    }
    const int64_t expected = kTasks * (kTasks + 1) * (2 * kTasks + 1) / 6;
    std::printf("%lld tasks over %d agents in %lld ms, %d errors\n",
                static_cast<long long>(kTasks), kAgents,
                static_cast<long long>(elapsed.count()), errors);
    std::printf("%s sum of squares %lld (expected %lld)\n",
                sum == expected ? "ok  " : "FAIL", static_cast<long long>(sum),
                static_cast<long long>(expected));
    if (sum != expected) ++errors;
    for (Worker& w : workers) {
      // Graceful close: the session ends once both sides are idle.
      w.client->async_close(
          [server = w.server](const absl::Status&) { server->Stop(); });
    }
  }
};

}  // namespace

int main() try {
  asio::io_context io;
  Orchestrator orchestrator;
  for (int i = 0; i < kAgents; ++i) {
    Worker w;
    w.name = absl::StrCat("worker-", i);
    auto server = StartAgent(io, i, std::chrono::milliseconds(1 << i));
    if (!server.ok()) {
      std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
      return 1;
    }
    w.server = *server;
    auto endpoint = w.server->ListenTcp("127.0.0.1", 0);
    if (!endpoint.ok()) {
      std::fprintf(stderr, "%s\n", endpoint.status().ToString().c_str());
      return 1;
    }
    symwire::ClientOptions options;
    options.session.agent_id = "orchestrator";
    options.session.role = symwire::AgentRole::kOrchestrator;
    auto client = symwire::Client::Connect(
        io.get_executor(),
        symwire::TcpDialer(io.get_executor(), "127.0.0.1", endpoint->port()),
        options);
    if (!client.ok()) {
      std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
      return 1;
    }
    w.client = *client;
    std::printf("%s: %s, %d ms per task\n", w.name.c_str(),
                symwire::DescribeEndpoint(*endpoint).c_str(), 1 << i);
    orchestrator.workers.push_back(std::move(w));
  }
  orchestrator.start = std::chrono::steady_clock::now();
  orchestrator.Dispatch();
  io.run_for(std::chrono::seconds(20));
  const bool ok = orchestrator.answered == kTasks && orchestrator.errors == 0;
  std::printf("%s\n", ok ? "all ok" : "FAILED");
  return ok ? 0 : 1;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
