// File: examples/reconnect.cpp
// Tasks survive connection cuts. The orchestrator submits a task every
// 3 ms; the agent answers each one 10 ms later. Twice during the run the
// agent's side drops its TCP connection abruptly (Channel::KillConnection on
// the server's session, as a network failure would: the server keeps
// running and keeps the session). The orchestrator's Client sees the loss
// ("reconnecting"), redials after its backoff and resumes the session
// ("resumed"): tasks submitted during the outage are sent then, answers
// the agent produced during the outage are replayed, and nothing is lost
// or run twice.
//
// At the end it checks that every task was answered exactly once, and
// that the agent ran every task exactly once.
// Usage: reconnect. Exit status 0, last line "all ok", when all of that
// held and both cuts were resumed.
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr int kTasks = 200;
constexpr std::chrono::milliseconds kSubmitGap{3};
constexpr std::chrono::milliseconds kWork{10};
constexpr int kCutsAt[] = {60, 140};  // tasks answered when a cut happens

long long MsSince(Clock::time_point start) {
  return static_cast<long long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                            start)
          .count());
}

}  // namespace

int main() try {
  asio::io_context io;
  const Clock::time_point start = Clock::now();
  std::map<std::string, int> runs;     // agent: times each task ran
  std::map<std::string, int> answers;  // orchestrator: answers per task
  std::shared_ptr<symwire::Channel> agent_session;  // the server's side
  int reconnecting = 0;
  int resumed = 0;
  auto log_event = [start](const char* who, const symwire::ChannelEvent& e) {
    std::printf("  [%4lld ms] %s: %s%s%s\n", MsSince(start), who,
                std::string(symwire::ChannelEventName(e.kind)).c_str(),
                e.status.ok() ? "" : " - ",
                e.status.ok() ? "" : e.status.ToString().c_str());
  };

  // The agent: runs each task once, answers kWork later.
  symwire::ServerOptions agent_options;
  agent_options.session.agent_id = "worker";
  agent_options.session.role = symwire::AgentRole::kAgent;
  auto server = symwire::Server::Create(
      io.get_executor(), agent_options,
      [&](const std::shared_ptr<symwire::Channel>& session) {
        agent_session = session;
        session->SetObserver(
            [&](const symwire::ChannelEvent& e) { log_event("agent", e); });
        session->SetTaskHandler([&](symwire::IncomingTask task) {
          const std::string text = task.payload_string();
          ++runs[text];
          auto timer = std::make_shared<asio::steady_timer>(io, kWork);
          timer->async_wait(
              [task, text, timer](const boost::system::error_code&) mutable {
                // Answered whether or not the connection is up: the session
                // keeps the response and replays it after the resume.
                static_cast<void>(task.Respond("done: " + text, true));
              });
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

  // The orchestrator: a Client, which redials and resumes by itself. The
  // default backoff starts at 1 s (gRPC's); 100 ms keeps the example short.
  symwire::ClientOptions options;
  options.session.agent_id = "orchestrator";
  options.session.role = symwire::AgentRole::kOrchestrator;
  options.session.backoff.initial = absl::Milliseconds(100);
  auto client = symwire::Client::Connect(
      io.get_executor(),
      symwire::TcpDialer(io.get_executor(), "127.0.0.1", endpoint->port()),
      options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<symwire::Channel> agent = *client;
  agent->SetObserver([&](const symwire::ChannelEvent& e) {
    log_event("orchestrator", e);
    if (e.kind == symwire::ChannelEvent::Kind::kReconnecting) ++reconnecting;
    if (e.kind == symwire::ChannelEvent::Kind::kResumed) ++resumed;
  });

  int submitted = 0;
  int answered = 0;
  int failed = 0;
  size_t next_cut = 0;
  auto on_answer = [&](const std::string& text,
                       const absl::StatusOr<std::string>& r) {
    ++answered;
    ++answers[text];
    if (!r.ok() || *r != "done: " + text) {
      ++failed;
      std::printf("FAIL %s -> %s\n", text.c_str(),
                  r.ok() ? r->c_str() : r.status().ToString().c_str());
    }
    if (next_cut < std::size(kCutsAt) && answered == kCutsAt[next_cut]) {
      ++next_cut;
      std::printf(
          "  [%4lld ms] cut %zu: the agent drops the connection "
          "(%d tasks submitted, %d answered)\n",
          MsSince(start), next_cut, submitted, answered);
      agent_session->KillConnection();
    }
    if (answered == kTasks) {
      agent->async_close(
          [server = *server](const absl::Status&) { server->Stop(); });
    }
  };

  // Submit one task every kSubmitGap, outages or not: async_call waits
  // (it queues while the connection is down) and completes exactly once.
  asio::steady_timer pacer(io);
  std::function<void()> submit_next = [&] {
    std::string text = absl::StrCat("task ", submitted++);
    agent->async_call(text, {},
                      [&on_answer, text](const absl::StatusOr<std::string>& r) {
                        on_answer(text, r);
                      });
    if (submitted == kTasks) return;
    pacer.expires_after(kSubmitGap);
    pacer.async_wait([&](const boost::system::error_code&) { submit_next(); });
  };
  submit_next();

  io.run_for(std::chrono::seconds(20));

  int ran_once = 0;
  int answered_once = 0;
  for (const auto& [text, n] : runs) ran_once += n == 1;
  for (const auto& [text, n] : answers) answered_once += n == 1;
  int failures = failed;
  auto expect = [&failures](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
  };
  expect(answered == kTasks && answered_once == kTasks,
         absl::StrCat(answered, " of ", kTasks, " tasks answered, ",
                      answered_once, " exactly once, ", failed, " wrong"));
  expect(ran_once == kTasks && runs.size() == static_cast<size_t>(kTasks),
         absl::StrCat("the agent ran ", runs.size(), " distinct tasks, ",
                      ran_once, " exactly once"));
  expect(reconnecting == 2 && resumed == 2 && agent->reconnects() == 2,
         absl::StrCat("orchestrator: ", reconnecting, " reconnecting, ",
                      resumed, " resumed"));
  std::printf("%s\n", failures == 0 ? "all ok" : "FAILED");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
