// examples/session_memory.cpp
// Two symwire Sessions — an orchestrator and an agent — joined in memory,
// with the time simulated. The orchestrator submits tasks; the agent streams
// two partial responses and a final one for each. Halfway, the connection
// is cut with bytes in flight: the orchestrator waits for its backoff,
// "dials" again, the server's Endpoint hands the new connection to the
// existing session, and both replay what the other lacks. Every task
// completes once.
#include <cstdio>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "symwire/session/endpoint.hpp"
#include "symwire/session/session.hpp"

using namespace symwire;

namespace {

absl::Time now = absl::UnixEpoch();
std::unique_ptr<Session> orchestrator;
std::unique_ptr<Endpoint> server;     // the acceptor's sessions
std::shared_ptr<Session> server_end;  // the acceptor session on the connection
ConnectionHandle handshaking = 0;     // while the connection's handshake runs
int finals = 0;

absl::Span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

void OnEvent(Session& self, const Event& e) {
  if (const auto* t = std::get_if<TaskReceived>(&e)) {  // the agent works
    (void)self.SendResponse(t->task, Bytes("thinking"), false, now);
    (void)self.SendResponse(t->task, Bytes("more"), false, now);
    (void)self.SendResponse(t->task, Bytes("answer"), true, now);
  } else if (const auto* r = std::get_if<ResponseReceived>(&e)) {
    if (r->final) ++finals;
  } else if (const auto* c = std::get_if<ConnectionLost>(&e)) {
    std::printf("%s: connection lost: %s\n", self.config().agent_id.c_str(),
                c->status.ToString().c_str());
  } else if (const auto* est = std::get_if<Established>(&e)) {
    std::printf("%s: established%s\n", self.config().agent_id.c_str(),
                est->resumed ? " (resumed)" : "");
  }
}

// Moves bytes from one session to the other and handles the events.
std::vector<std::byte> Take(Session& from) {
  std::vector<std::byte> wire;
  for (auto s = from.PollTransmit(); !s.empty(); s = from.PollTransmit()) {
    wire.insert(wire.end(), s.begin(), s.end());
  }
  return wire;
}

void Pump() {
  for (int i = 0; i < 8; ++i) {
    std::vector<std::byte> up = Take(*orchestrator);
    if (!up.empty() && handshaking != 0) {  // the Endpoint routes it
      std::shared_ptr<Session> fresh = server_end;
      ConnectionOutcome o = server->Receive(handshaking, up, now);
      while (auto e = fresh->PollEvent()) OnEvent(*fresh, *e);
      if (auto* r = std::get_if<SessionResumed>(&o)) server_end = r->session;
      if (!std::holds_alternative<HandshakeRunning>(o)) handshaking = 0;
    } else if (!up.empty()) {
      (void)server_end->Receive(up, now);
    }
    while (auto e = server_end->PollEvent()) OnEvent(*server_end, *e);
    std::vector<std::byte> down = Take(*server_end);
    if (down.empty()) continue;
    (void)orchestrator->Receive(down, now);
    while (auto e = orchestrator->PollEvent()) OnEvent(*orchestrator, *e);
  }
}

void Connect() {  // a new connection: the Endpoint gives it a fresh session
  Accepted a = std::move(*server->Accept(now));
  handshaking = a.connection;
  server_end = std::move(a.session);
  (void)orchestrator->TransportConnected(now);
  Pump();
}

}  // namespace

int main() {
  SessionConfig c;
  c.side = SessionSide::kInitiator;
  c.role = AgentRole::kOrchestrator;
  c.agent_id = "orchestrator";
  c.random = SeededRandom(1);
  orchestrator = std::move(*Session::Create(c, now));
  EndpointConfig server_config;
  server_config.session.side = SessionSide::kAcceptor;
  server_config.session.role = AgentRole::kAgent;
  server_config.session.agent_id = "agent";
  server_config.session.random = SeededRandom(100);  // tests: deterministic
  server = std::move(*Endpoint::Create(server_config));
  Connect();
  for (int i = 0; i < 10; ++i) {
    (void)orchestrator->SubmitTask(Bytes("task " + std::to_string(i)), {}, now);
    if (i == 4) {  // cut: what is in flight is lost
      while (!orchestrator->PollTransmit().empty()) {
      }
      orchestrator->TransportLost(absl::UnavailableError("cable cut"), now);
      server_end->TransportLost(absl::UnavailableError("cable cut"), now);
      while (auto e = orchestrator->PollEvent()) OnEvent(*orchestrator, *e);
      while (auto e = server_end->PollEvent()) OnEvent(*server_end, *e);
      now = orchestrator->NextDeadline();  // the reconnect backoff
      orchestrator->HandleTimeout(now);
      while (auto e = orchestrator->PollEvent()) {
        if (std::holds_alternative<ReconnectDue>(*e)) Connect();
      }
    }
    Pump();
  }
  now += absl::Milliseconds(10);  // let the coalesced acks go out
  orchestrator->HandleTimeout(now);
  server_end->HandleTimeout(now);
  Pump();
  std::printf(
      "tasks completed: %d of 10, resumes: %llu, retransmitted "
      "frames: %llu, unacknowledged: %zu\n",
      finals, static_cast<unsigned long long>(orchestrator->counters().resumes),
      static_cast<unsigned long long>(
          orchestrator->counters().retransmitted_frames),
      orchestrator->replay_frames_in_use());
  return finals == 10 ? 0 : 1;
}
