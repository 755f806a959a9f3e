// File: tests/support/transport_support.hpp
// Test support for tests/transport: a Transport::Sink that records what it
// is given, byte views and patterns, bounded runs of an io_context, and the
// runtime fixtures' options and echoing agent. Namespace symwire::testing.
#ifndef SYMWIRE_TESTS_SUPPORT_TRANSPORT_SUPPORT_HPP_
#define SYMWIRE_TESTS_SUPPORT_TRANSPORT_SUPPORT_HPP_

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "boost/asio/io_context.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire::testing {

// ---- transports ---------------------------------------------------------

// Recorder: a Transport::Sink that appends every byte delivered to `data`,
// counts closes and keeps the last close status; `on_data`, if set, runs
// after each delivery.
struct Recorder final : Transport::Sink {
  std::string data;
  int closes = 0;
  absl::Status status;
  std::function<void(Transport&)> on_data;
  void OnTransportData(Transport& t, absl::Span<const std::byte> b) override {
    data.append(reinterpret_cast<const char*>(b.data()), b.size());
    if (on_data) on_data(t);
  }
  void OnTransportClosed(Transport&, const absl::Status& s) override {
    ++closes;
    status = s;
  }
};

// The bytes of `s` as a span (valid while `s` is).
inline absl::Span<const std::byte> ByteSpan(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// `n` bytes of a pattern that does not repeat at short distances.
inline std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + 7) % 251);
  return s;
}

// ---- bounded runs ---------------------------------------------------------

inline constexpr std::chrono::milliseconds kRunBound{10000};

// TryRunUntil: runs `io` until `done()` holds or `timeout` passes; false on
// timeout (the caller decides: REQUIRE(TryRunUntil(...))).
template <class Pred>
bool TryRunUntil(asio::io_context& io, Pred done,
                 std::chrono::milliseconds timeout = kRunBound) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return true;
}

// RunUntil: runs `io` until `done()` holds; REQUIREs, at every turn, that
// `bound` has not passed, so a timeout fails the test.
template <class Pred>
void RunUntil(asio::io_context& io, Pred done,
              std::chrono::milliseconds bound = kRunBound) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    io.run_for(std::chrono::milliseconds(5));
    if (io.stopped()) io.restart();
  }
}

// RunUntil with a description: the same, but a timeout fails the test with
// a message naming `what`, and passing turns assert nothing.
template <class Pred>
void RunUntil(asio::io_context& io, Pred done, absl::string_view what,
              std::chrono::milliseconds bound = kRunBound) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) {
      FAIL("timed out after " << bound.count() << " ms waiting for: " << what);
    }
    io.run_for(std::chrono::milliseconds(5));
    if (io.stopped()) io.restart();
  }
}

// ---- the runtime ------------------------------------------------------------

// Server options for tests: agent role, a 2 s drain timeout.
inline ServerOptions FastServer(absl::string_view agent_id = "test-agent") {
  ServerOptions o;
  o.session.agent_id = std::string(agent_id);
  o.session.role = AgentRole::kAgent;
  o.drain_timeout = std::chrono::milliseconds(2000);
  return o;
}

// Client options for tests: orchestrator role, quick reconnects.
inline ClientOptions FastClient(
    absl::string_view agent_id = "test-orchestrator") {
  ClientOptions o;
  o.session.agent_id = std::string(agent_id);
  o.session.role = AgentRole::kOrchestrator;
  // Reconnect quickly in tests.
  o.session.backoff.initial = absl::Milliseconds(5);
  o.session.backoff.max = absl::Milliseconds(50);
  return o;
}

// ListenAndConnect: `server` listens on 127.0.0.1 (a free port) and a
// client with `options` dials it there; REQUIREs both (the handshake is
// not awaited).
inline std::shared_ptr<Channel> ListenAndConnect(
    asio::io_context& io, Server& server,
    const ClientOptions& options = FastClient()) {
  auto ep = server.ListenTcp("127.0.0.1", 0);
  REQUIRE(ep.ok());
  auto client = Client::Connect(
      io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", ep->port()),
      options);
  REQUIRE(client.ok());
  return *client;
}

// What EchoStreamingAgent does when a Respond fails.
enum class RespondCheck {
  kRequireOk,  // REQUIRE that every Respond succeeds
  kIgnore,     // ignore it (the peer may be under attack or going away)
};

// An agent that answers "<payload>" with parts "<payload>:0;" ..
// "<payload>:<n-1>;" and a final "<payload>:done", n taken from the
// payload's leading digit (0 when it has none).
inline void EchoStreamingAgent(const std::shared_ptr<Channel>& peer,
                               RespondCheck check = RespondCheck::kRequireOk) {
  peer->SetTaskHandler([check](IncomingTask task) {
    const std::string p = task.payload_string();
    const int parts = p.empty() || p[0] < '0' || p[0] > '9' ? 0 : p[0] - '0';
    for (int i = 0; i < parts; ++i) {
      const absl::Status s = task.Respond(absl::StrCat(p, ":", i, ";"), false);
      if (check == RespondCheck::kRequireOk) REQUIRE(s.ok());
    }
    const absl::Status s = task.Respond(absl::StrCat(p, ":done"), true);
    if (check == RespondCheck::kRequireOk) REQUIRE(s.ok());
  });
}

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTS_SUPPORT_TRANSPORT_SUPPORT_HPP_
