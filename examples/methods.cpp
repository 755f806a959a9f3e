// File: examples/methods.cpp
// Task routing by method (SPEC.md §5.1, §13.5) and the health check
// (§13.6): an agent registers one handler per method with Server::Handle;
// the orchestrator names the method in CallOptions::method. A method the
// agent does not have is answered UNIMPLEMENTED without any code of the
// agent's; the built-in "symwire.health" answers SERVING, then NOT_SERVING
// once the agent's operator says so.
// Usage: methods. Exit status 0 when everything behaved; the last line is
// then "all ok".
#include <cctype>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "boost/asio/io_context.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"

int main() try {
  boost::asio::io_context io;
  auto ex = io.get_executor();
  int failures = 0;
  auto check = [&failures](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
  };

  // The agent: one handler per method, registered before it listens.
  symwire::ServerOptions agent;
  agent.session.role = symwire::AgentRole::kAgent;
  auto server = symwire::Server::Create(ex, agent, [](const auto&) {}).value();
  static_cast<void>(server->Handle("text.upper", [](symwire::IncomingTask t) {
    std::string s = t.payload_string();
    for (char& c : s) c = static_cast<char>(std::toupper(c));
    static_cast<void>(t.Respond(s, true));
  }));
  static_cast<void>(server->Handle("text.length", [](symwire::IncomingTask t) {
    static_cast<void>(t.Respond(std::to_string(t.payload().size()), true));
  }));
  const uint16_t port = server->ListenTcp("127.0.0.1", 0).value().port();

  // The orchestrator.
  symwire::ClientOptions orchestrator;
  orchestrator.session.role = symwire::AgentRole::kOrchestrator;
  auto client = symwire::Client::Connect(
                    ex, symwire::TcpDialer(ex, "127.0.0.1", port), orchestrator)
                    .value();
  auto call = [&client](const std::string& method, const std::string& input,
                        auto done) {
    symwire::CallOptions options;
    options.method = method;
    options.deadline = absl::Seconds(5);
    client->async_call(input, options, std::move(done));
  };

  call("text.upper", "hello", [&](const absl::StatusOr<std::string>& r) {
    check(r.ok() && *r == "HELLO",
          "text.upper(hello) = " + (r.ok() ? *r : r.status().ToString()));
  });
  call("text.length", "hello", [&](const absl::StatusOr<std::string>& r) {
    check(r.ok() && *r == "5",
          "text.length(hello) = " + (r.ok() ? *r : r.status().ToString()));
  });
  call("text.translate", "hello", [&](const absl::StatusOr<std::string>& r) {
    check(r.status().code() == absl::StatusCode::kUnimplemented,
          "text.translate: " + r.status().ToString());
  });
  client->async_check_health(
      symwire::CallOptions{},
      [&](const absl::StatusOr<symwire::HealthStatus>& h) {
        check(h.ok() && *h == symwire::HealthStatus::kServing,
              "health: " + std::string(h.ok() ? HealthStatusName(*h)
                                              : h.status().ToString()));
        // The operator takes the agent out of rotation.
        server->SetServingStatus(symwire::HealthStatus::kNotServing);
        client->async_check_health(
            symwire::CallOptions{},
            [&](const absl::StatusOr<symwire::HealthStatus>& h2) {
              check(h2.ok() && *h2 == symwire::HealthStatus::kNotServing,
                    "health after SetServingStatus: " +
                        std::string(h2.ok() ? HealthStatusName(*h2)
                                            : h2.status().ToString()));
              client->async_close([&](const absl::Status&) { server->Stop(); });
            });
      });
  io.run_for(std::chrono::seconds(20));
  std::printf("%s\n", failures == 0 ? "all ok" : "FAILED");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
