// File: examples/ws_agent.cpp
// An agent behind a WebSocket gateway path (issue #17): a symwire Server
// accepting WebSocket upgrades on ws://ADDRESS:PORT/agents (SPEC.md
// §20.1) next to whatever else that port's gateway routes. Each task
// "<text>" is answered with a partial "working on <text>" and a final
// "done: <text>".
//
// Usage:
//   ws_agent             serves on 127.0.0.1 (any port), connects a Client
//                        through ws://…/agents, runs two tasks, and prints
//                        "all ok".
//   ws_agent --serve     serves on 127.0.0.1 (any port), prints the line
//                        "listening ws://127.0.0.1:PORT/agents", and runs
//                        until its standard input closes (for clients in
//                        other languages: tests/transport/ws_interop.py).
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "cli/args.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/ws.hpp"

namespace {

namespace asio = boost::asio;

constexpr char kPath[] = "/agents";

void Answer(symwire::IncomingTask task) {
  const std::string text = task.payload_string();
  if (!task.Respond(absl::StrCat("working on ", text), false).ok() ||
      !task.Respond(absl::StrCat("done: ", text), true).ok()) {
    std::fprintf(stderr, "FAIL: respond\n");
  }
}

}  // namespace

int main(int argc, char** argv) try {
  bool serve = false;
  symwire_cli::Args args("ws_agent", "[--serve]",
                         "An agent behind the WebSocket gateway path "
                         "/agents on 127.0.0.1 (any port). Without --serve "
                         "it runs two tasks through a Client over ws:// and "
                         "prints \"all ok\".");
  args.Switch("--serve", &serve,
              "serve until standard input closes; first prints "
              "\"listening ws://127.0.0.1:PORT/agents\"");
  args.Parse(argc, argv);
  asio::io_context io;
  symwire::ServerOptions so;
  so.session.agent_id = "ws-agent";
  so.session.role = symwire::AgentRole::kAgent;
  auto server = symwire::Server::Create(
      io.get_executor(), so, [](const std::shared_ptr<symwire::Channel>& peer) {
        peer->SetTaskHandler(Answer);
      });
  if (!server.ok()) throw std::runtime_error(server.status().ToString());
  symwire::WsServerOptions wo;
  wo.path = kPath;
  auto endpoint = (*server)->ListenTcp("127.0.0.1", 0, symwire::WsUpgrade(wo));
  if (!endpoint.ok()) throw std::runtime_error(endpoint.status().ToString());
  const std::string url =
      absl::StrCat("ws://127.0.0.1:", endpoint->port(), kPath);

  if (serve) {
    std::printf("listening %s\n", url.c_str());
    std::fflush(stdout);
    // Serve until standard input closes.
    std::thread stdin_watch([&io, s = *server] {
      char c = 0;
      while (::read(STDIN_FILENO, &c, 1) > 0) {
      }
      asio::post(io, [s] { s->Stop(); });
    });
    io.run();
    stdin_watch.join();
    return 0;
  }

  symwire::ClientOptions co;
  co.session.agent_id = "ws-orchestrator";
  co.session.role = symwire::AgentRole::kOrchestrator;
  auto client = symwire::Client::Connect(
      io.get_executor(), symwire::WsDialer(io.get_executor(), url), co);
  if (!client.ok()) throw std::runtime_error(client.status().ToString());
  int done = 0;
  int correct = 0;
  for (const char* text : {"summarise", "translate"}) {
    (*client)->async_call(text, {}, [&, text](absl::StatusOr<std::string> r) {
      std::printf("%s -> %s\n", text,
                  r.ok() ? r->c_str() : r.status().ToString().c_str());
      if (r.ok() && *r == absl::StrCat("working on ", text, "done: ", text)) {
        ++correct;
      }
      if (++done == 2) {
        (*client)->async_close(
            [s = *server](const absl::Status&) { s->Stop(); });
      }
    });
  }
  io.run();
  if (correct != 2) {
    std::printf("FAIL: %d of 2 tasks answered as expected\n", correct);
    return 1;
  }
  std::printf("all ok\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "FAIL: %s\n", e.what());
  return 1;
}
