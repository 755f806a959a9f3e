// File: examples/stdio_orchestrator.cpp
// An orchestrator that spawns an agent process (examples/stdio_agent.cpp)
// and drives it over the child's stdin/stdout: a streamed task, a task it
// cancels midway, a task whose 100 ms deadline expires, a task the agent
// rejects, a method call ("text.upper"),
// an unknown method (UNIMPLEMENTED), the health method, then a graceful
// close and the child's exit status.
//
// SYMWIRE_STDIO_AUTH=token:SECRET or hmac:KEY in the environment selects the
// authentication method of both ends (the child inherits it); unset: none.
// Usage: stdio_orchestrator [path-to-stdio_agent]
// Exit status 0 when every step behaved as expected.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boost/asio/io_context.hpp"
#include "cli/args.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/process.hpp"

namespace asio = boost::asio;

namespace {

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

}  // namespace

int main(int argc, char** argv) try {
  std::string agent_path = "./stdio_agent";
  symwire_cli::Args args("stdio_orchestrator", "[path-to-stdio_agent]",
                         "Spawns the agent and drives it over its "
                         "stdin/stdout; exit status 0 when every step "
                         "behaved as expected.");
  args.Positional("path-to-stdio_agent", &agent_path,
                  "the agent program (examples/stdio_agent.cpp)");
  args.Parse(argc, argv);
  auto auth = AuthFromEnvironment();
  if (!auth.ok()) {
    std::fprintf(stderr, "%s\n", auth.status().ToString().c_str());
    return 2;
  }
  asio::io_context io;
  absl::StatusOr<symwire::ChildProcess> child =
      symwire::SpawnChild(io.get_executor(), {agent_path});
  if (!child.ok()) {
    std::fprintf(stderr, "%s\n", child.status().ToString().c_str());
    return 1;
  }
  symwire::ChannelOptions options;
  options.session.agent_id = "stdio-orchestrator";
  options.session.role = symwire::AgentRole::kOrchestrator;
  options.session.authenticator = *std::move(auth);
  auto peer = symwire::Client::Start(child->transport(), options);
  if (!peer.ok()) {
    std::fprintf(stderr, "%s\n", peer.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<symwire::Channel> agent = *peer;
  int failures = 0;
  auto expect = [&failures](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
  };

  // 1. A streamed answer, joined.
  agent->async_call("stream 5", {}, [&](const absl::StatusOr<std::string>& r) {
    expect(r.ok() && *r == "1 2 3 4 5 done",
           absl::StrCat("stream 5 -> ", r.ok() ? *r : r.status().ToString()));
  });
  // 2. Cancelled after its first partial response.
  symwire::TaskCallbacks cb;
  std::shared_ptr<symwire::TaskCall> slow =
      std::make_shared<symwire::TaskCall>();
  int parts = 0;
  cb.on_response = [&](absl::Span<const std::byte>, bool) {
    if (++parts == 1) static_cast<void>(slow->Cancel());
  };
  cb.on_done = [&](const absl::Status& st) {
    expect(st.code() == absl::StatusCode::kCancelled && parts == 1,
           absl::StrCat("slow 100 cancelled after ", parts,
                        " part(s): ", st.ToString()));
  };
  agent->async_submit("slow 100", {}, cb,
                      [&](absl::StatusOr<symwire::TaskCall> call) {
                        if (call.ok()) *slow = *call;
                        expect(call.ok(), "slow 100 submitted");
                      });
  // 3. A deadline that expires (SPEC.md §13.4): the agent streams for 2 s.
  symwire::CallOptions short_deadline;
  short_deadline.deadline = absl::Milliseconds(100);
  agent->async_call(
      "slow 100", short_deadline, [&](const absl::StatusOr<std::string>& r) {
        expect(r.status().code() == absl::StatusCode::kDeadlineExceeded,
               absl::StrCat("slow 100 with a 100 ms deadline -> ",
                            r.status().ToString()));
      });
  // 3b. Rejected by the agent.
  agent->async_call("dance", {}, [&](const absl::StatusOr<std::string>& r) {
    expect(r.status().code() == absl::StatusCode::kInvalidArgument,
           absl::StrCat("dance -> ", r.status().ToString()));
  });
  // 4. Methods (SPEC.md §13.5, §13.6): one the agent has, one it does not
  // (UNIMPLEMENTED, nothing run), and the built-in health method.
  symwire::CallOptions upper;
  upper.method = "text.upper";
  agent->async_call("hello", upper, [&](const absl::StatusOr<std::string>& r) {
    expect(r.ok() && *r == "HELLO",
           absl::StrCat("text.upper(hello) -> ",
                        r.ok() ? *r : r.status().ToString()));
  });
  symwire::CallOptions translate;
  translate.method = "text.translate";
  agent->async_call(
      "hello", translate, [&](const absl::StatusOr<std::string>& r) {
        expect(r.status().code() == absl::StatusCode::kUnimplemented &&
                   symwire::GetErrorCode(r.status()) ==
                       symwire::ErrorCode::kUnimplemented,
               absl::StrCat("text.translate -> ", r.status().ToString()));
      });
  agent->async_check_health(
      {}, [&](const absl::StatusOr<symwire::HealthStatus>& h) {
        expect(h.ok() && *h == symwire::HealthStatus::kServing,
               absl::StrCat("health -> ", h.ok() ? symwire::HealthStatusName(*h)
                                                 : h.status().ToString()));
        // 5. Everything answered (the agent answers in order): close, then
        // collect the child's exit.
        agent->async_close([&](const absl::Status& st) {
          expect(st.ok(), absl::StrCat("close -> ", st.ToString()));
          child->AsyncWait([&](absl::StatusOr<symwire::ExitStatus> exit) {
            expect(exit.ok() && exit->success(),
                   absl::StrCat("agent exit code ",
                                exit.ok() ? exit->exit_code : -1));
          });
        });
      });
  io.run_for(std::chrono::seconds(20));
  std::printf("%s\n", failures == 0 ? "all ok" : "FAILED");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
