// File: examples/cancel_deadline.cpp
// Cancellation and deadlines, seen from both sides.
//
// The agent runs "work N": N steps of 20 ms, streaming "step i" after each,
// then a final "done". It registers IncomingTask::OnCancel to learn when to
// stop, and checks cancelled() before each step.
//
// 1. Cancel: the orchestrator starts "work 50" (a second of work) and calls
//    TaskCall::Cancel() after the third step arrives. Its side ends at once
//    with CANCELLED; the agent's OnCancel sees CANCELLED and it stops.
// 2. Deadline: the orchestrator starts "work 50" with a 150 ms deadline
//    (CallOptions::deadline). When it passes, the orchestrator's side
//    completes with DEADLINE_EXCEEDED and its session cancels the task with
//    that reason, so the agent's OnCancel sees DEADLINE_EXCEEDED too
//    (SPEC.md §13.4: the submitter's deadline is authoritative; the agent's
//    session tracks the same deadline on its own clock as a backstop, in
//    case the cancel is delayed by a slow or broken connection).
//
// Each part waits for both sides' observations before the next starts.
// Usage: cancel_deadline. Exit status 0, last line "all ok", when both
// sides saw what they should.
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>

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

constexpr std::chrono::milliseconds kStep{20};

// What one part observed, on each side.
struct Observed {
  absl::Status orchestrator = absl::UnknownError("not seen");
  absl::Status agent = absl::UnknownError("not seen");
  int steps_done_by_agent = 0;
  int steps_received = 0;
  int sides = 0;               // sides that reported
  std::function<void()> next;  // runs once both sides reported
  void SideDone() {
    if (++sides == 2 && next) next();
  }
};

// Step: the agent's loop, one timer tick per step.
void Step(const std::shared_ptr<asio::steady_timer>& timer,
          symwire::IncomingTask task, int i, int n, Observed& seen) {
  timer->expires_after(kStep);
  timer->async_wait(
      [timer, task, i, n, &seen](const boost::system::error_code&) mutable {
        if (task.cancelled()) return;  // OnCancel has reported it
        seen.steps_done_by_agent = i;
        if (i == n) {
          static_cast<void>(task.Respond("done", true));
          return;
        }
        static_cast<void>(task.Respond(absl::StrCat("step ", i), false));
        Step(timer, task, i + 1, n, seen);
      });
}

// Expect: prints and counts a check.
int failures = 0;
void Expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main() try {
  asio::io_context io;
  Observed part[2];
  int current = 0;  // the part the agent's next task belongs to
  // Part 1's task, to cancel. A handle held here rather than in a
  // shared_ptr captured by the task's own callbacks, which would be a
  // reference cycle.
  symwire::TaskCall to_cancel;

  symwire::ServerOptions agent_options;
  agent_options.session.agent_id = "worker";
  agent_options.session.role = symwire::AgentRole::kAgent;
  auto server = symwire::Server::Create(
      io.get_executor(), agent_options,
      [&](const std::shared_ptr<symwire::Channel>& session) {
        session->SetTaskHandler([&](symwire::IncomingTask task) {
          Observed& seen = part[current];
          const std::string text = task.payload_string();
          absl::string_view arg(text);
          int n = 0;
          if (!absl::ConsumePrefix(&arg, "work ") ||
              !absl::SimpleAtoi(arg, &n)) {
            static_cast<void>(
                task.Fail(absl::InvalidArgumentError("expected 'work N'")));
            return;
          }
          task.OnCancel([&seen, id = task.id()](const absl::Status& why) {
            std::printf("  agent: task %llu stopped after step %d: %s\n",
                        static_cast<unsigned long long>(id),
                        seen.steps_done_by_agent, why.ToString().c_str());
            seen.agent = why;
            seen.SideDone();
          });
          Step(std::make_shared<asio::steady_timer>(io), task, 1, n, seen);
        });
      });
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  auto endpoint = (*server)->ListenTcp("127.0.0.1", 0);
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
  std::shared_ptr<symwire::Channel> agent = *client;
  auto finish = [agent, server = *server] {
    agent->async_close([server](const absl::Status&) { server->Stop(); });
  };

  // Part 2: a deadline that passes while the agent works.
  auto deadline_part = [&] {
    current = 1;
    Observed& seen = part[1];
    seen.next = [&seen, &finish] {
      Expect(seen.orchestrator.code() == absl::StatusCode::kDeadlineExceeded,
             absl::StrCat("orchestrator: work 50 with a 150 ms deadline -> ",
                          seen.orchestrator.ToString(), " after ",
                          seen.steps_received, " steps"));
      Expect(seen.agent.code() == absl::StatusCode::kDeadlineExceeded &&
                 seen.steps_done_by_agent < 50,
             absl::StrCat("agent: saw ", seen.agent.ToString(),
                          ", stopped at step ", seen.steps_done_by_agent));
      finish();
    };
    std::printf("2. deadline: work 50 with a 150 ms deadline\n");
    symwire::TaskCallbacks cb;
    cb.on_response = [&seen](absl::Span<const std::byte>, bool) {
      ++seen.steps_received;
    };
    cb.on_done = [&seen](const absl::Status& st) {
      std::printf("  orchestrator: task ended: %s\n", st.ToString().c_str());
      seen.orchestrator = st;
      seen.SideDone();
    };
    symwire::CallOptions call;
    call.deadline = absl::Milliseconds(150);
    agent->async_submit("work 50", call, std::move(cb),
                        [](const absl::StatusOr<symwire::TaskCall>& c) {
                          if (!c.ok()) Expect(false, c.status().ToString());
                        });
  };

  // Part 1: the orchestrator cancels after the third step.
  {
    Observed& seen = part[0];
    seen.next = [&seen, &deadline_part] {
      Expect(seen.orchestrator.code() == absl::StatusCode::kCancelled &&
                 seen.steps_received == 3,
             absl::StrCat("orchestrator: cancelled after ", seen.steps_received,
                          " steps -> ", seen.orchestrator.ToString()));
      Expect(seen.agent.code() == absl::StatusCode::kCancelled &&
                 seen.steps_done_by_agent < 50,
             absl::StrCat("agent: saw ", seen.agent.ToString(),
                          ", stopped at step ", seen.steps_done_by_agent));
      deadline_part();
    };
    std::printf("1. cancel: work 50, cancelled after 3 steps\n");
    symwire::TaskCallbacks cb;
    cb.on_response = [&seen, &to_cancel](absl::Span<const std::byte>, bool) {
      if (++seen.steps_received == 3) {
        std::printf("  orchestrator: 3 steps received; Cancel()\n");
        static_cast<void>(to_cancel.Cancel());
      }
    };
    cb.on_done = [&seen](const absl::Status& st) {
      std::printf("  orchestrator: task ended: %s\n", st.ToString().c_str());
      seen.orchestrator = st;
      seen.SideDone();
    };
    agent->async_submit("work 50", {}, std::move(cb),
                        [&to_cancel](absl::StatusOr<symwire::TaskCall> c) {
                          if (c.ok()) {
                            to_cancel = *std::move(c);
                          } else {
                            Expect(false, c.status().ToString());
                          }
                        });
  }

  io.run_for(std::chrono::seconds(20));
  const bool ok = failures == 0 && part[0].sides == 2 && part[1].sides == 2;
  std::printf("%s\n", ok ? "all ok" : "FAILED");
  return ok ? 0 : 1;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
