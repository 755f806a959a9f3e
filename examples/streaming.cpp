// File: examples/streaming.cpp
// Token-by-token responses, the way a language-model agent answers: the
// agent streams its answer one word at a time (a partial AGENT_RESPONSE per
// word, a steady_timer standing in for generation time), and the
// orchestrator prints each word as it arrives, long before the answer is
// complete.
//
// Two prompts run at once on one connection (their responses interleave),
// each consumed with one of the two APIs:
//   #1 a C++20 coroutine: async_submit, then TaskCall::async_next per word;
//   #2 TaskCallbacks: on_response runs, zero-copy, as each frame arrives.
// The agent side is a coroutine too, using async_respond (which waits for
// room in the send window instead of failing when it is full).
//
// g++ 12 destroys some temporaries of a co_await expression twice, so every
// awaitable below is created in its own statement and then co_awaited.
// Usage: streaming. Exit status 0, last line "all ok", when both answers
// arrived whole, word by word.
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kTokenGap{25};

// Answer: what the agent "generates" for a prompt.
std::string Answer(const std::string& prompt) {
  if (prompt == "haiku") {
    return "frames cross the wire / every header checked / nothing lost "
           "twice";
  }
  return "Symwire streams each token as a partial response, then a final "
         "one.";
}

// Generate: the agent's side of one task, as a coroutine. Streams the
// answer word by word (each partial ends with a space so the parts join
// back into the text), then an empty final response.
asio::awaitable<void> Generate(symwire::IncomingTask task) {
  asio::steady_timer timer(task.get_executor());
  const std::vector<std::string> words =
      absl::StrSplit(Answer(task.payload_string()), ' ');
  for (size_t i = 0; i < words.size(); ++i) {
    timer.expires_after(kTokenGap);
    auto tick = timer.async_wait(asio::as_tuple(asio::use_awaitable));
    static_cast<void>(co_await std::move(tick));
    if (task.cancelled()) co_return;
    std::string token = words[i] + (i + 1 < words.size() ? " " : "");
    auto send =
        task.async_respond(std::move(token), false, asio::use_awaitable);
    const absl::Status st = co_await std::move(send);
    if (!st.ok()) co_return;
  }
  auto last = task.async_respond("", true, asio::use_awaitable);
  static_cast<void>(co_await std::move(last));
}

long long MsSince(Clock::time_point start) {
  return static_cast<long long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                            start)
          .count());
}

// Outcome: what the orchestrator saw of one stream.
struct Outcome {
  std::string text;
  int tokens = 0;
  long long first_ms = -1;
  long long total_ms = -1;
  absl::Status status = absl::UnknownError("not finished");
};

// ConsumeWithNext: stream #1, through async_next in a coroutine.
asio::awaitable<void> ConsumeWithNext(std::shared_ptr<symwire::Channel> agent,
                                      Clock::time_point start, Outcome& out) {
  auto submit = agent->async_submit("haiku", {}, asio::use_awaitable);
  absl::StatusOr<symwire::TaskCall> call = co_await std::move(submit);
  if (!call.ok()) {
    out.status = call.status();
    co_return;
  }
  while (true) {
    auto next = call->async_next(asio::use_awaitable);
    absl::StatusOr<symwire::Response> r = co_await std::move(next);
    if (!r.ok()) {
      out.status = r.status();
      co_return;
    }
    if (!r->payload.empty()) {
      if (out.first_ms < 0) out.first_ms = MsSince(start);
      std::printf("  [%4lld ms] #1 %s\n", MsSince(start), r->payload.c_str());
      std::fflush(stdout);
      out.text += r->payload;
      ++out.tokens;
    }
    if (r->final) break;
  }
  out.total_ms = MsSince(start);
  out.status = absl::OkStatus();
}

}  // namespace

int main() try {
  asio::io_context io;
  symwire::ServerOptions agent_options;
  agent_options.session.agent_id = "writer";
  agent_options.session.role = symwire::AgentRole::kAgent;
  auto server = symwire::Server::Create(
      io.get_executor(), agent_options,
      [](const std::shared_ptr<symwire::Channel>& session) {
        session->SetTaskHandler([](symwire::IncomingTask task) {
          auto ex = task.get_executor();
          asio::co_spawn(ex, Generate(std::move(task)), asio::detached);
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
  const Clock::time_point start = Clock::now();
  Outcome one;
  Outcome two;
  int open = 2;
  // Both streams done: close the session, then stop the agent.
  auto finished = [&open, agent, server = *server] {
    if (--open == 0) {
      agent->async_close([server](const absl::Status&) { server->Stop(); });
    }
  };

  // #1: a coroutine pulling each response with async_next.
  asio::co_spawn(io, ConsumeWithNext(agent, start, one),
                 [&finished](const std::exception_ptr&) { finished(); });

  // #2: callbacks, run inline as each response frame arrives. The payload
  // span is valid during the call only: copy what you keep.
  symwire::TaskCallbacks callbacks;
  callbacks.on_response = [&two, start](absl::Span<const std::byte> payload,
                                        bool /*final*/) {
    if (payload.empty()) return;
    const std::string token(reinterpret_cast<const char*>(payload.data()),
                            payload.size());
    if (two.first_ms < 0) two.first_ms = MsSince(start);
    std::printf("  [%4lld ms] #2 %s\n", MsSince(start), token.c_str());
    std::fflush(stdout);
    two.text += token;
    ++two.tokens;
  };
  callbacks.on_done = [&two, &finished, start](const absl::Status& st) {
    two.status = st;
    two.total_ms = MsSince(start);
    finished();
  };
  agent->async_submit(
      "summary", {}, std::move(callbacks),
      [&two, &finished](const absl::StatusOr<symwire::TaskCall>& call) {
        if (!call.ok()) {  // on_done is not called for a failed submission
          two.status = call.status();
          finished();
        }
      });

  io.run_for(std::chrono::seconds(20));

  int failures = 0;
  const Outcome* outcomes[] = {&one, &two};
  for (int i = 0; i < 2; ++i) {
    const Outcome& o = *outcomes[i];
    const std::string want = Answer(i == 0 ? "haiku" : "summary");
    const std::vector<std::string> words = absl::StrSplit(want, ' ');
    const bool ok = o.status.ok() && o.text == want &&
                    o.tokens == static_cast<int>(words.size()) &&
                    o.first_ms >= 0 && o.first_ms < o.total_ms;
    if (!ok) ++failures;
    std::printf(
        "%s #%d: %d tokens, first after %lld ms, whole answer after %lld ms "
        "(%s)\n",
        ok ? "ok  " : "FAIL", i + 1, o.tokens, o.first_ms, o.total_ms,
        o.status.ToString().c_str());
  }
  std::printf("%s\n", failures == 0 ? "all ok" : "FAILED");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
