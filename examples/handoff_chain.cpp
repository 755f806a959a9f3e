// File: examples/handoff_chain.cpp
// A handoff chain: orchestrator -> A -> B -> C. Each hop is an agent that
// does some work of its own, then hands a sub-task to the next agent, and
// the last hop answers. The orchestrator's deadline is a budget for the
// whole chain: each hop forwards what is left of its own deadline
// (IncomingTask::deadline_remaining()) minus a margin it keeps to process
// the answer, as the next call's CallOptions::deadline. Budgets therefore
// shrink along the chain, and a downstream deadline always passes before
// the upstream one, so a failure travels back up in time to be reported.
//
// Run 1 has a comfortable budget and is answered. Run 2's budget is too
// small: the deadline passes at C, C sees its task cancelled with
// DEADLINE_EXCEEDED, and each hop passes that error back up to the
// orchestrator (a hop whose remaining budget cannot cover the margin fails
// at once instead of forwarding a doomed task).
//
// Each agent is a Server on its own 127.0.0.1 port (in this process, to
// keep the example self-contained); A and B hold a Client to the next hop.
// Usage: handoff_chain. Exit status 0, last line "all ok", when run 1 is
// answered and run 2 fails with DEADLINE_EXCEEDED.
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"

namespace {

namespace asio = boost::asio;

constexpr std::chrono::milliseconds kWork{30};  // each hop's own work
constexpr absl::Duration kMargin = absl::Milliseconds(20);  // kept per hop

long long Ms(absl::Duration d) {
  return static_cast<long long>(absl::ToInt64Milliseconds(d));
}

// Hop: one agent of the chain.
struct Hop {
  std::string name;
  std::shared_ptr<symwire::Server> server;
  std::shared_ptr<symwire::Channel> next;  // to the next hop; null for the last
  std::string next_name;
};

// Forward: the hop's work is done; hand the task on (or answer).
void Forward(Hop& hop, symwire::IncomingTask task) {
  if (task.cancelled()) return;  // the deadline passed meanwhile (OnCancel)
  if (hop.next == nullptr) {
    std::printf("  %s: answers\n", hop.name.c_str());
    static_cast<void>(task.Respond(absl::StrCat(hop.name, " answered"), true));
    return;
  }
  const absl::Duration left =
      task.deadline_remaining().value_or(absl::InfiniteDuration());
  const absl::Duration budget = left - kMargin;
  if (budget <= absl::ZeroDuration()) {
    std::printf("  %s: %lld ms left, not enough for %s; fails at once\n",
                hop.name.c_str(), Ms(left), hop.next_name.c_str());
    static_cast<void>(task.Fail(absl::DeadlineExceededError(
        absl::StrCat(hop.name, ": no budget left for ", hop.next_name))));
    return;
  }
  std::printf("  %s: %lld ms left; forwards to %s with %lld ms\n",
              hop.name.c_str(), Ms(left), hop.next_name.c_str(), Ms(budget));
  symwire::CallOptions options;
  options.deadline = budget;
  hop.next->async_call(
      task.payload_string(), options,
      [&hop, task](const absl::StatusOr<std::string>& r) mutable {
        if (r.ok()) {
          static_cast<void>(
              task.Respond(absl::StrCat(*r, ", via ", hop.name), true));
          return;
        }
        std::printf(
            "  %s: %s failed (%s); passes it back\n", hop.name.c_str(),
            hop.next_name.c_str(),
            std::string(absl::StatusCodeToString(r.status().code())).c_str());
        // The downstream status as it is: code, symwire ErrorCode, message.
        static_cast<void>(task.Fail(r.status()));
      });
}

// HandleTask: a hop received a task.
void HandleTask(asio::io_context& io, Hop& hop, symwire::IncomingTask task) {
  const absl::Duration left =
      task.deadline_remaining().value_or(absl::InfiniteDuration());
  std::printf("  %s: received, %lld ms left; works %lld ms\n", hop.name.c_str(),
              Ms(left), static_cast<long long>(kWork.count()));
  task.OnCancel([&hop](const absl::Status& why) {
    std::printf("  %s: task cancelled: %s\n", hop.name.c_str(),
                why.ToString().c_str());
  });
  auto timer = std::make_shared<asio::steady_timer>(io, kWork);
  timer->async_wait([&hop, task, timer](const boost::system::error_code&) {
    Forward(hop, task);
  });
}

// StartHop: the hop's Server, and its Client to `next` (if any).
absl::Status StartHop(asio::io_context& io, Hop& hop, const Hop* next) {
  symwire::ServerOptions options;
  options.session.agent_id = hop.name;
  options.session.role = symwire::AgentRole::kAgent;
  auto server = symwire::Server::Create(
      io.get_executor(), options,
      [&io, &hop](const std::shared_ptr<symwire::Channel>& session) {
        session->SetTaskHandler([&io, &hop](symwire::IncomingTask task) {
          HandleTask(io, hop, std::move(task));
        });
      });
  if (!server.ok()) return server.status();
  hop.server = *server;
  if (next == nullptr) return absl::OkStatus();
  auto endpoint = next->server->ListenTcp("127.0.0.1", 0);
  if (!endpoint.ok()) return endpoint.status();
  symwire::ClientOptions client_options;
  client_options.session.agent_id = hop.name;
  client_options.session.role = symwire::AgentRole::kOrchestrator;
  auto client = symwire::Client::Connect(
      io.get_executor(),
      symwire::TcpDialer(io.get_executor(), "127.0.0.1", endpoint->port()),
      client_options);
  if (!client.ok()) return client.status();
  hop.next = *client;
  hop.next_name = next->name;
  return absl::OkStatus();
}

}  // namespace

int main() try {
  asio::io_context io;
  // Built back to front, so each hop can dial the next. The vector is
  // sized once: handlers keep references to its elements.
  std::vector<Hop> hops(4);
  const char* const names[] = {"orchestrator", "A", "B", "C"};
  for (size_t i = 0; i < hops.size(); ++i) hops[i].name = names[i];
  for (size_t i = hops.size(); i-- > 1;) {
    const Hop* next = i + 1 < hops.size() ? &hops[i + 1] : nullptr;
    if (absl::Status st = StartHop(io, hops[i], next); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  // hops[0] is the orchestrator: no server of its own, only a client to A.
  Hop& orchestrator = hops[0];
  auto a = hops[1].server->ListenTcp("127.0.0.1", 0);
  if (!a.ok()) {
    std::fprintf(stderr, "%s\n", a.status().ToString().c_str());
    return 1;
  }
  symwire::ClientOptions options;
  options.session.agent_id = "orchestrator";
  options.session.role = symwire::AgentRole::kOrchestrator;
  auto client = symwire::Client::Connect(
      io.get_executor(),
      symwire::TcpDialer(io.get_executor(), "127.0.0.1", a->port()), options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  orchestrator.next = *client;

  int failures = 0;
  auto expect = [&failures](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
  };
  auto shut_down = [&hops] {
    for (Hop& hop : hops) {
      if (hop.next) {
        hop.next->async_close([](const absl::Status&) {});
      }
    }
    for (Hop& hop : hops) {
      if (hop.server) hop.server->async_shutdown([](const absl::Status&) {});
    }
  };
  // Run 1, then run 2.
  auto run = [&](absl::Duration budget, auto then) {
    std::printf("orchestrator -> A with a %lld ms budget\n", Ms(budget));
    symwire::CallOptions call;
    call.deadline = budget;
    orchestrator.next->async_call("plan a trip", call, then);
  };
  run(absl::Milliseconds(1000), [&](const absl::StatusOr<std::string>& r1) {
    expect(r1.ok() && *r1 == "C answered, via B, via A",
           absl::StrCat("run 1: ", r1.ok() ? *r1 : r1.status().ToString()));
    run(absl::Milliseconds(120), [&](const absl::StatusOr<std::string>& r2) {
      expect(r2.status().code() == absl::StatusCode::kDeadlineExceeded,
             absl::StrCat("run 2: ", r2.status().ToString()));
      shut_down();
    });
  });
  io.run_for(std::chrono::seconds(20));
  std::printf("%s\n", failures == 0 ? "all ok" : "FAILED");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
