// File: examples/stdio_agent.cpp
// An agent that speaks symwire on its own stdin/stdout, the way CLI agents
// are driven by an orchestrator that spawns them (examples/
// stdio_orchestrator.cpp). It logs to stderr only: stdout carries protocol
// bytes.
//
// Tasks it understands:
//   "stream N"  answers "1 ", "2 ", ... "N " as partial responses, then a
//               final "done";
//   "slow N"    the same, one part every 20 ms (so it can be cancelled
//               midway; it logs "agent: task T cancelled" when it is);
//   anything else fails with INVALID_ARGUMENT.
// Methods (SPEC.md §13.5, Server::Handle): "text.upper" answers its payload
// in upper case; any other method fails UNIMPLEMENTED; "symwire.health" is
// answered by the server (SERVING).
// It exits when the orchestrator closes the session or the pipe ends.
// SYMWIRE_STDIO_AUTH=token:SECRET or hmac:KEY in the environment selects the
// authentication method (as in stdio_orchestrator); unset: none.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/process.hpp"

namespace {

namespace asio = boost::asio;

// The authentication method of both ends (SPEC.md §12.3), from the
// environment, so that an orchestrator and the agent it spawns agree:
// SYMWIRE_STDIO_AUTH=token:SECRET or hmac:KEY; unset, empty or "none": none.
// A malformed value is an error, not a silent "none".
absl::StatusOr<std::shared_ptr<const symwire::Authenticator>>
AuthFromEnvironment() {
  const char* value = std::getenv("SYMWIRE_STDIO_AUTH");
  auto auth = symwire::AuthenticatorFromSpec(value != nullptr ? value : "");
  if (!auth.ok()) {
    return absl::Status(
        auth.status().code(),
        absl::StrCat("SYMWIRE_STDIO_AUTH: ", auth.status().message()));
  }
  return auth;
}

// Streams parts next..n of `task`, one every `gap` (zero: all at once).
void StreamParts(const symwire::IncomingTask& task, int n, int next,
                 std::chrono::milliseconds gap,
                 const std::shared_ptr<asio::steady_timer>& timer) {
  for (; next <= n && !task.cancelled(); ++next) {
    if (!symwire::IncomingTask(task)
             .Respond(absl::StrCat(next, " "), false)
             .ok()) {
      return;
    }
    if (gap.count() > 0 && next < n) {
      timer->expires_after(gap);
      timer->async_wait(
          [task, n, next, gap, timer](const boost::system::error_code& ec) {
            if (!ec) StreamParts(task, n, next + 1, gap, timer);
          });
      return;
    }
  }
  if (!task.cancelled()) {
    static_cast<void>(symwire::IncomingTask(task).Respond("done", true));
  }
}

void HandleTask(symwire::IncomingTask task, const asio::any_io_executor& ex) {
  const std::string text = task.payload_string();
  absl::string_view rest(text);
  std::chrono::milliseconds gap(0);
  int n = 0;
  if (absl::ConsumePrefix(&rest, "slow ")) gap = std::chrono::milliseconds(20);
  if ((gap.count() > 0 || absl::ConsumePrefix(&rest, "stream ")) &&
      absl::SimpleAtoi(rest, &n) && n >= 0 && n <= 100000) {
    task.OnCancel([id = task.id()](const absl::Status& why) {
      std::fprintf(stderr, "agent: task %llu cancelled (%s)\n",
                   static_cast<unsigned long long>(id), why.ToString().c_str());
    });
    StreamParts(task, n, 1, gap, std::make_shared<asio::steady_timer>(ex));
    return;
  }
  static_cast<void>(task.Fail(
      absl::InvalidArgumentError(absl::StrCat("unknown task '", text, "'"))));
}

}  // namespace

int main() try {
  asio::io_context io;
  absl::StatusOr<std::shared_ptr<symwire::Transport>> stdio =
      symwire::MakeStdioTransport(io.get_executor());
  if (!stdio.ok()) {
    std::fprintf(stderr, "agent: %s\n", stdio.status().ToString().c_str());
    return 1;
  }
  symwire::ServerOptions options;
  options.session.agent_id = "stdio-agent";
  options.session.role = symwire::AgentRole::kAgent;
  auto auth = AuthFromEnvironment();
  if (!auth.ok()) {
    std::fprintf(stderr, "agent: %s\n", auth.status().ToString().c_str());
    return 2;
  }
  options.session.authenticator = *std::move(auth);
  auto server = symwire::Server::Create(
      io.get_executor(), options,
      [&io](const std::shared_ptr<symwire::Channel>& session) {
        std::fprintf(stderr, "agent: session established\n");
        session->SetTaskHandler([&io](symwire::IncomingTask task) {
          HandleTask(std::move(task), io.get_executor());
        });
        // A pipe cannot be redialled: once it breaks or the session ends,
        // there is nothing left to do.
        session->SetObserver([&io](const symwire::ChannelEvent& e) {
          if (e.kind == symwire::ChannelEvent::Kind::kReconnecting ||
              e.kind == symwire::ChannelEvent::Kind::kClosed ||
              e.kind == symwire::ChannelEvent::Kind::kFailed) {
            std::fprintf(
                stderr, "agent: session %s; exiting\n",
                std::string(symwire::ChannelEventName(e.kind)).c_str());
            io.stop();
          }
        });
      });
  if (!server.ok()) {
    std::fprintf(stderr, "agent: %s\n", server.status().ToString().c_str());
    return 1;
  }
  if (absl::Status s =
          (*server)->Handle("text.upper",
                            [](symwire::IncomingTask t) {
                              std::string text = t.payload_string();
                              for (char& c : text) {
                                c = static_cast<char>(std::toupper(c));
                              }
                              static_cast<void>(t.Respond(text, true));
                            });
      !s.ok()) {
    std::fprintf(stderr, "agent: %s\n", s.ToString().c_str());
    return 1;
  }
  (*server)->Accept(*stdio);
  io.run();
  return 0;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
