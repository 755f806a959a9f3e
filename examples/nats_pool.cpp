// File: examples/nats_pool.cpp
// One orchestrator and one agent's handlers, written once against the
// runtime's user API (async_call, async_submit, TaskCall::async_next,
// Handle with IncomingTask), run either over TCP (Client and Server) or
// over a NATS JetStream pool (NatsPoolChannel and NatsPoolServer, issue
// #15): moving between the two is the configuration in main(), nothing
// else.
// Usage: nats_pool [tcp | nats [URL]]. "nats" without a URL starts a
// nats-server of its own on 127.0.0.1 (nats-server must be on PATH;
// tools/deps.sh installs it). Exit status 0, last line "all ok", when every
// answer was right.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "symwire/nats_runtime/pool.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/testing/nats_server.hpp"
#include "symwire/transport/tcp.hpp"

namespace {

namespace asio = boost::asio;

// The agent's handlers: registered on a Server or a NatsPoolServer.
template <class ServerPtr>
void Register(const ServerPtr& server) {
  static_cast<void>(server->Handle("upper", [](symwire::IncomingTask t) {
    std::string s = t.payload_string();
    for (char& c : s) c = static_cast<char>(std::toupper(c));
    static_cast<void>(t.Respond(s, true));
  }));
  // Streams its input back one word per partial response.
  static_cast<void>(server->Handle("words", [](symwire::IncomingTask t) {
    const std::string s = t.payload_string();
    size_t start = 0;
    while (start < s.size()) {
      const size_t end = std::min(s.find(' ', start), s.size());
      static_cast<void>(t.Respond(s.substr(start, end - start + 1), false));
      start = end + 1;
    }
    static_cast<void>(t.Respond("", true));
  }));
}

// The orchestrator: the same code for a Channel and a NatsPoolChannel.
// Returns the number of wrong answers.
template <class ChannelPtr>
asio::awaitable<int> Orchestrate(ChannelPtr channel) {
  int failures = 0;
  auto check = [&failures](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
  };
  symwire::CallOptions upper;
  upper.method = "upper";
  upper.deadline = absl::Seconds(5);
  auto call = channel->async_call("hello", upper, asio::use_awaitable);
  absl::StatusOr<std::string> r = co_await std::move(call);
  check(r.ok() && *r == "HELLO",
        "upper(hello) = " + (r.ok() ? *r : r.status().ToString()));

  symwire::CallOptions words;
  words.method = "words";
  auto submit =
      channel->async_submit("one frame at a time", words, asio::use_awaitable);
  absl::StatusOr<symwire::TaskCall> task = co_await std::move(submit);
  std::string joined;
  int parts = 0;
  while (task.ok()) {
    auto next = task->async_next(asio::use_awaitable);
    absl::StatusOr<symwire::Response> part = co_await std::move(next);
    if (!part.ok()) break;
    std::printf("     words: '%s'%s\n", part->payload.c_str(),
                part->final ? " (final)" : "");
    joined += part->payload;
    ++parts;
  }
  check(joined == "one frame at a time" && parts == 6,
        absl::StrCat("words streamed in ", parts, " responses"));

  symwire::CallOptions unknown;
  unknown.method = "translate";
  auto missing = channel->async_call("x", unknown, asio::use_awaitable);
  r = co_await std::move(missing);
  check(r.status().code() == absl::StatusCode::kUnimplemented,
        "translate: " + r.status().ToString());
  co_return failures;
}

template <class ChannelPtr>
int Run(asio::io_context& io, ChannelPtr channel) {
  std::optional<int> failures;
  asio::co_spawn(io, Orchestrate(channel),
                 [&](const std::exception_ptr& e, int n) {
                   if (e) std::rethrow_exception(e);
                   failures = n;
                 });
  while (!failures && io.run_one_for(std::chrono::seconds(30)) > 0) {
  }
  if (!failures) std::printf("FAIL timed out\n");
  return failures.value_or(1);
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string transport = argc > 1 ? argv[1] : "tcp";
  asio::io_context io;
  auto ex = io.get_executor();
  int failures = 0;
  if (transport == "tcp") {
    symwire::ServerOptions agent;
    agent.session.role = symwire::AgentRole::kAgent;
    auto server =
        symwire::Server::Create(ex, agent, [](const auto&) {}).value();
    Register(server);
    const uint16_t port = server->ListenTcp("127.0.0.1", 0).value().port();
    symwire::ClientOptions orchestrator;
    orchestrator.session.role = symwire::AgentRole::kOrchestrator;
    auto channel =
        symwire::Client::Connect(ex, symwire::TcpDialer(ex, "127.0.0.1", port),
                                 orchestrator)
            .value();
    failures = Run(io, channel);
    channel->Abort(absl::CancelledError("done"));
    server->Stop();
  } else if (transport == "nats") {
    std::unique_ptr<symwire::testing::NatsServer> own;
    std::string url = argc > 2 ? argv[2] : "";
    if (url.empty()) {
      own = symwire::testing::NatsServer::Start().value();
      url = own->url();
    }
    symwire::NatsConnectOptions connect;
    connect.url = url;
    symwire::NatsClient client = symwire::NatsClient::Connect(connect).value();
    symwire::NatsPoolOptions pool;
    pool.pool = "example";
    pool.storage = symwire::NatsStorage::kMemory;
    symwire::NatsPoolServerOptions agent;
    agent.agent.pool = pool;
    auto server = symwire::NatsPoolServer::Create(ex, client, agent).value();
    Register(server);
    if (absl::Status s = server->Start(); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    symwire::NatsPoolChannelOptions orchestrator;
    orchestrator.orchestrator = {pool, "example-orchestrator"};
    auto channel =
        symwire::NatsPoolChannel::Create(ex, client, orchestrator).value();
    failures = Run(io, channel);
  } else {
    std::fprintf(stderr, "usage: nats_pool [tcp | nats [URL]]\n");
    return 2;
  }
  if (failures == 0) std::printf("all ok\n");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "FAIL %s\n", e.what());
  return 1;
}
