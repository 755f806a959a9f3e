// examples/session_memory.cpp
// Two symwire Sessions — an orchestrator and an agent — joined in memory,
// with the time simulated. The orchestrator submits tasks; the agent streams
// two partial responses and a final one for each. Halfway, the connection
// is cut with bytes in flight: the orchestrator waits for its backoff,
// "dials" again, the server side hands the new connection to the existing
// session, and both replay what the other lacks. Every task completes once.
#include <cstdio>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "symwire/session/session.hpp"

using namespace symwire;

namespace {

absl::Time now = absl::UnixEpoch();
std::unique_ptr<Session> orchestrator, agent, fresh;
Session* server_end = nullptr;  // the acceptor session on the connection
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
  } else if (std::get_if<ResumeRequested>(&e) != nullptr) {  // the registry
    if (agent->AdoptConnection(*fresh, now).ok()) server_end = agent.get();
  } else if (const auto* c = std::get_if<ConnectionLost>(&e)) {
    std::printf("%s: connection lost: %s\n", self.config().agent_id.c_str(),
                c->status.ToString().c_str());
  } else if (const auto* est = std::get_if<Established>(&e)) {
    std::printf("%s: established%s\n", self.config().agent_id.c_str(),
                est->resumed ? " (resumed)" : "");
  }
}

// Moves bytes from one session to the other and handles the events.
void Move(Session& from, Session* to) {
  std::vector<std::byte> wire;
  for (auto s = from.PollTransmit(); !s.empty(); s = from.PollTransmit()) {
    wire.insert(wire.end(), s.begin(), s.end());
  }
  if (to == nullptr || wire.empty()) return;
  (void)to->Receive(wire, now);
  while (auto e = to->PollEvent()) OnEvent(*to, *e);
}

void Pump() {
  for (int i = 0; i < 8; ++i) {
    Move(*orchestrator, server_end);
    Move(*server_end, orchestrator.get());
  }
}

void Connect() {  // a new connection: a fresh acceptor session answers it
  SessionConfig c;
  c.side = SessionSide::kAcceptor;
  c.role = AgentRole::kAgent;
  c.agent_id = "agent";
  static uint64_t connections = 0;
  c.random = SeededRandom(100 + connections++);  // tests: deterministic
  fresh = std::move(*Session::Create(c, now));
  if (!agent) agent = std::move(fresh), fresh = nullptr;
  server_end = fresh ? fresh.get() : agent.get();
  (void)server_end->TransportConnected(now);
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
  Connect();
  for (int i = 0; i < 10; ++i) {
    (void)orchestrator->SubmitTask(Bytes("task " + std::to_string(i)), {}, now);
    if (i == 4) {  // cut: what is in flight is lost
      while (!orchestrator->PollTransmit().empty()) {
      }
      orchestrator->TransportLost(absl::UnavailableError("cable cut"), now);
      agent->TransportLost(absl::UnavailableError("cable cut"), now);
      while (auto e = orchestrator->PollEvent()) OnEvent(*orchestrator, *e);
      while (auto e = agent->PollEvent()) OnEvent(*agent, *e);
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
