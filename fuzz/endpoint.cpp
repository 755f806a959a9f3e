// File: fuzz/endpoint.cpp
// libFuzzer target for the acceptor's Endpoint (session/endpoint.hpp): one
// Endpoint with an established session S (a real handshake in memory,
// fuzz/session_fuzz.hpp's BuildPair), whose connection is then cut (or
// left half-open), and up to kMaxConnections new connections whose bytes
// the input interleaves: raw bytes, resume HELLOs for S (or an unknown
// id), PROOFs made with S's token, a forged token or none, timers, and
// the loss of connections. So it drives forged and stale resumes, two or
// more connections racing to resume S, resumes after S expired or was
// removed, supersede of a half-open connection, and floods of
// half-finished handshakes. Sharded (byte 0 bit 2): the Endpoint is shard
// 0 of 2 of a sharded server (EndpointConfig::shards) and a second
// Endpoint, shard 1, accepts connections too; a resume of S arriving there
// is ResumeElsewhere{0}: the harness hands it off (HandOff) and shard 0
// adopts it (Adopt), as runtime/server.hpp does across threads.
//
// Input layout: byte 0 bit 0: S's connection half-open (only the
// initiator was told); bit 1: payload checksums off; bit 2: sharded. Then
// operations, each one byte `op` plus operands:
//   op % 8 == 0  Accept a new connection (sharded, with op bit 3: on
//               shard 1)
//            1  [k][n] n bytes of the input to connection k (raw)
//            2  [k][last] a resume HELLO for S (id of S; last_received =
//               `last` % 8) to connection k; with op bit 3, an unknown id
//            3  [k][how] the PROOF of connection k's resume: how % 3 == 0
//               S's token, 1 a forged token, 2 the zero token
//            4  [ms] the clock moves ms milliseconds; timers run
//            5  [k] connection k's transport is lost
//            6  the Endpoint forgets S (Remove)
//            7  the clock moves past S's resume window (S expires)
// (k is taken modulo the connections accepted so far.)
//
// Invariants (FUZZ_CHECK): besides every session's checks (CheckedSession,
// OutputChecker): handshakes() <= max_handshakes, sessions() <=
// max_sessions, and handshake(c) exists exactly for the connections whose
// handshake runs; a session has at most one live connection: a resume
// supersedes exactly when S was connected, and the connection superseded is
// closed; a resume is accepted only with S's token, for S, while S is
// registered and not ended, and never for a connection accepted before S's
// current connection while S is connected (a lost race is rejected with
// CONNECTION_LOST); every rejection fails the fresh session with a code and
// leaves S as it was; what a handshaking session holds of its input stays
// under the bound of session.hpp. Sharded: ResumeElsewhere comes only
// from shard 1, names shard 0 (S's id and the unknown one end in 0), HandOff
// retires the handle there and returns the connection's session, and
// Adopt at shard 0 resumes or rejects it (never runs or starts), with the
// race rule counting the connection as accepted at Adopt.
#include "symwire/session/endpoint.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fuzz_check.hpp"
#include "session_fuzz.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"

namespace {

using symwire::ConnectionHandle;
using symwire::ConnectionOutcome;
using symwire::SessionState;
using symwire::fuzz::Bytes;
using symwire::fuzz::CheckedSession;

constexpr size_t kMaxConnections = 12;
constexpr size_t kMaxHandshakes = 4;
constexpr size_t kMaxOps = 256;

class Reader {
 public:
  explicit Reader(Bytes in) : in_(in) {}
  bool empty() const { return in_.empty(); }
  uint8_t Byte() {
    if (in_.empty()) return 0;
    const auto b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return b;
  }
  Bytes Take(size_t n) {
    n = std::min(n, in_.size());
    Bytes out = in_.first(n);
    in_.remove_prefix(n);
    return out;
  }

 private:
  Bytes in_;
};

std::vector<std::byte> InitFrame(const symwire::InitMessage& m) {
  std::vector<std::byte> payload;
  FUZZ_CHECK(symwire::AppendInit(m, payload).ok());
  symwire::FrameHeader h;
  h.type = symwire::MessageType::kAgentInit;
  h.flags = symwire::kFlagChecksum;
  std::vector<std::byte> out(*symwire::EncodedSize(h, payload.size()));
  FUZZ_CHECK(symwire::EncodeFrame(h, payload, absl::MakeSpan(out)).ok());
  return out;
}

struct Connection {
  ConnectionHandle handle = 0;
  std::unique_ptr<CheckedSession> fresh;
  uint64_t accepted_tick = 0;
  bool handshaking = true;
  bool live = true;  // its transport is up (as far as the harness knows)
  bool attached_to_s = false;
  bool on_shard1 = false;  // sharded: accepted by shard 1 (its handle)
  // The resume this harness sent on it, if any.
  std::optional<symwire::InitMessage> hello;
  std::vector<std::byte> challenge_in;  // what the fresh session wrote
};

class Run {
 public:
  Run(bool half_open, bool checksums, bool sharded)
      : server_(symwire::AgentRole::kAgent, symwire::fuzz::AuthKind::kNone,
                checksums, kMaxHandshakes, 0, sharded ? 2 : 1) {
    if (sharded) {
      shard1_ = std::make_unique<symwire::fuzz::FuzzServer>(
          symwire::AgentRole::kAgent, symwire::fuzz::AuthKind::kNone, checksums,
          kMaxHandshakes, 1, 2);
    }
    symwire::fuzz::PairSpec spec;
    spec.roles = symwire::fuzz::RolesFor(0);
    spec.checksums = checksums;
    pair_ = symwire::fuzz::BuildPair(spec, &server_);
    now_ = pair_.now;
    s_ = pair_.acceptor->shared();
    token_ = pair_.initiator->s().resume_token();
    last_ = pair_.initiator->s().last_received();
    s_tick_ = ++tick_;
    pair_.initiator->TransportLost(now_);
    if (!half_open) pair_.acceptor->TransportLost(now_);
    s_connected_ = half_open;
    if (sharded) FUZZ_CHECK(s_->session_id().back() == std::byte{0});
    Check();
  }

  void Step(uint8_t op, Reader& in) {
    switch (op % 8) {
      case 0:
        Accept(shard1_ != nullptr && (op & 8) != 0);
        break;
      case 1: {
        Connection* c = Pick(in.Byte());
        const Bytes b = in.Take(in.Byte());
        if (c != nullptr) Feed(*c, b);
        break;
      }
      case 2: {
        Connection* c = Pick(in.Byte());
        const uint8_t last = in.Byte();
        if (c != nullptr) Hello(*c, (op & 8) != 0, last % 8);
        break;
      }
      case 3: {
        Connection* c = Pick(in.Byte());
        const uint8_t how = in.Byte();
        if (c != nullptr) Proof(*c, how % 3);
        break;
      }
      case 4:
        Clock(absl::Milliseconds(in.Byte()));
        break;
      case 5: {
        Connection* c = Pick(in.Byte());
        if (c != nullptr) Lose(*c);
        break;
      }
      case 6:
        static_cast<void>(server_.endpoint().Remove(s_->session_id()));
        break;
      case 7:
        Clock(s_->config().resume_window + absl::Seconds(1));
        break;
    }
    if (s_->state() != SessionState::kEstablished || s_->ConnectionClosing()) {
      // S's connection ended (timers, bad bytes): it is no longer live.
      s_connected_ = false;
      for (Connection& c : conns_) {
        if (c.attached_to_s) c.attached_to_s = c.live = false;
      }
    }
    Check();
  }

 private:
  Connection* Pick(uint8_t k) {
    if (conns_.empty()) return nullptr;
    return &conns_[k % conns_.size()];
  }

  // The Endpoint that accepted `c` (its handle is that Endpoint's).
  symwire::Endpoint& EndpointOf(const Connection& c) {
    return c.on_shard1 ? shard1_->endpoint() : server_.endpoint();
  }

  void Accept(bool on_shard1) {
    if (conns_.size() >= kMaxConnections) return;
    symwire::fuzz::FuzzServer& server = on_shard1 ? *shard1_ : server_;
    const size_t before = server.endpoint().handshakes();
    ConnectionHandle h = 0;
    auto fresh =
        server.Accept(symwire::fuzz::kFreshSeed + conns_.size(), now_, &h);
    if (fresh == nullptr) {
      FUZZ_CHECK(before == kMaxHandshakes);
      return;
    }
    Connection c;
    c.handle = h;
    c.on_shard1 = on_shard1;
    c.fresh = std::move(fresh);
    c.fresh->set_capture(true);
    c.fresh->NewConnection();
    c.fresh->Drain(now_);
    c.accepted_tick = ++tick_;
    conns_.push_back(std::move(c));
  }

  void Feed(Connection& c, Bytes b) {
    if (!c.live || b.empty()) return;
    if (!c.handshaking) {
      // Routed: the bytes go to the session that has the connection.
      if (c.attached_to_s) {
        pair_.acceptor->Receive(b, now_);
      } else {
        c.fresh->Receive(b, now_);
      }
      return;
    }
    const Snapshot before = Snap();
    Settle(c, c.fresh->ReceiveRouted(EndpointOf(c), c.handle, b, now_), before);
  }

  void Hello(Connection& c, bool unknown, uint64_t last) {
    if (!c.live || !c.handshaking || c.hello) return;
    const symwire::SessionConfig& ic = pair_.initiator->s().config();
    symwire::InitMessage m;
    m.phase = symwire::InitPhase::kHello;
    m.min_version = ic.min_version;
    m.max_version = ic.max_version;
    m.agent_id = ic.agent_id;
    m.role = ic.role;
    m.capabilities = ic.capabilities;
    m.max_payload_bytes = ic.max_payload_bytes;
    m.max_header_bytes = ic.max_header_bytes;
    m.max_tasks = ic.max_tasks;
    m.replay_bytes = ic.replay_bytes;
    m.replay_frames = ic.replay_frames;
    m.ping_interval_us = 1'000'000;
    for (size_t k = 0; k < symwire::kNonceSize; ++k) {
      m.nonce[k] = std::byte(static_cast<uint8_t>(k * 7 + c.handle));
    }
    m.session_id = s_->session_id();
    if (unknown) (*m.session_id)[0] ^= std::byte{0xA5};
    m.last_received = std::min<uint64_t>(last, last_);
    c.hello = m;
    std::vector<std::byte> in;
    if (c.fresh->checker().frames() == 0) {
      // Nothing received yet: the preface first.
      in.assign(symwire::kPrefaceBytes.begin(), symwire::kPrefaceBytes.end());
    }
    const std::vector<std::byte> f = InitFrame(m);
    in.insert(in.end(), f.begin(), f.end());
    Feed(c, in);
  }

  void Proof(Connection& c, uint8_t how) {
    if (!c.live || !c.handshaking || !c.hello) return;
    // The CHALLENGE's nonce, from what the fresh session wrote.
    const std::vector<std::byte> out = c.fresh->TakeOutput();
    c.challenge_in.insert(c.challenge_in.end(), out.begin(), out.end());
    symwire::FrameDecoder d(symwire::DecoderOptions{.expect_preface = true});
    Bytes rest(c.challenge_in);
    std::optional<symwire::InitMessage> challenge;
    while (!rest.empty()) {
      auto step = d.Decode(rest);
      if (!step.ok() || step->consumed == 0) break;
      rest.remove_prefix(step->consumed);
      if (step->kind != symwire::DecodeStep::Kind::kFrame) continue;
      if (step->frame.type() != symwire::MessageType::kAgentInit) continue;
      auto m = symwire::ParseInit(step->frame.payload());
      if (m.ok() && m->phase == symwire::InitPhase::kChallenge) challenge = *m;
    }
    if (!challenge) return;
    symwire::ResumeToken token{};
    if (how == 0) token = token_;
    if (how == 1) {
      token = token_;
      token[5] ^= std::byte{0x10};
    }
    symwire::InitMessage proof;
    proof.phase = symwire::InitPhase::kProof;
    auto p = symwire::ComputeResumeProof(
        token, symwire::ResumeProofSide::kClient, c.hello->nonce,
        challenge->nonce, *c.hello->session_id, *c.hello->last_received);
    FUZZ_CHECK(p.ok());
    proof.resume_proof = *p;
    proof_ok_ = how == 0 && *c.hello->session_id == s_->session_id();
    feeding_proof_ = true;
    Feed(c, InitFrame(proof));
    feeding_proof_ = false;
    proof_ok_ = false;
  }

  void Lose(Connection& c) {
    if (!c.live) return;
    c.live = false;
    if (c.handshaking) {
      c.fresh->TransportLost(now_);
      const Snapshot before = Snap();
      Settle(c, EndpointOf(c).Route(c.handle, now_), before);
      if (c.handshaking) {
        EndpointOf(c).Release(c.handle);
        c.handshaking = false;
      }
    } else if (c.attached_to_s) {
      c.attached_to_s = false;
      pair_.acceptor->TransportLost(now_);
      s_connected_ = false;
    }
  }

  void Clock(absl::Duration d) {
    std::vector<CheckedSession*> all = {pair_.acceptor.get()};
    for (Connection& c : conns_) {
      if (c.handshaking) all.push_back(c.fresh.get());
    }
    symwire::fuzz::RunClock(all, now_, now_ + d);
    if (s_->state() != SessionState::kEstablished) s_connected_ = false;
    for (Connection& c : conns_) {
      if (!c.handshaking) continue;
      const Snapshot before = Snap();
      Settle(c, EndpointOf(c).Route(c.handle, now_), before);
    }
  }

  struct Snapshot {
    SessionState state;
    uint64_t resumes;
    bool connected;
    bool registered;
  };
  Snapshot Snap() const {
    return {s_->state(), s_->counters().resumes, s_connected_,
            server_.endpoint().Find(s_->session_id()) != nullptr};
  }

  void Settle(Connection& c, const ConnectionOutcome& o, const Snapshot& b) {
    symwire::Endpoint& ep = EndpointOf(c);
    if (std::holds_alternative<symwire::HandshakeRunning>(o)) {
      FUZZ_CHECK(ep.handshake(c.handle) == &c.fresh->s());
      FUZZ_CHECK(c.fresh->s().receive_buffered_bytes() <=
                 2 * (c.fresh->s().config().max_header_bytes + 8200));
      return;
    }
    if (const auto* e = std::get_if<symwire::ResumeElsewhere>(&o)) {
      // Sharded only, naming the other shard (S's id and the unknown one,
      // its first byte changed, end in 0; raw bytes may name shard 1).
      FUZZ_CHECK(shard1_ != nullptr && e->shard == (c.on_shard1 ? 0U : 1U));
      FUZZ_CHECK(c.fresh->s().state() != SessionState::kFailed);
      if (symwire::fuzz::Verbose()) {
        std::fprintf(stderr, "endpoint: connection %llu: handed to shard %u\n",
                     static_cast<unsigned long long>(c.handle), e->shard);
      }
      std::shared_ptr<symwire::Session> moved = ep.HandOff(c.handle);
      FUZZ_CHECK(moved == c.fresh->shared());
      FUZZ_CHECK(ep.handshake(c.handle) == nullptr);
      // The race rule counts the connection as accepted at Adopt.
      c.accepted_tick = ++tick_;
      symwire::Endpoint& owner =
          c.on_shard1 ? server_.endpoint() : shard1_->endpoint();
      const size_t running = owner.handshakes();
      const ConnectionOutcome adopted = owner.Adopt(std::move(moved), now_);
      FUZZ_CHECK(owner.handshakes() == running);  // decided at once
      FUZZ_CHECK(std::holds_alternative<symwire::SessionResumed>(adopted) ||
                 std::holds_alternative<symwire::ConnectionRejected>(adopted));
      Settle(c, adopted, b);
      return;
    }
    c.handshaking = false;
    FUZZ_CHECK(ep.handshake(c.handle) == nullptr);
    if (symwire::fuzz::Verbose()) {
      const auto* rej = std::get_if<symwire::ConnectionRejected>(&o);
      std::fprintf(stderr, "endpoint: connection %llu: %s %s\n",
                   static_cast<unsigned long long>(c.handle),
                   std::holds_alternative<symwire::SessionResumed>(o)
                       ? (std::get<symwire::SessionResumed>(o).superseded
                              ? "resumed (superseded)"
                              : "resumed")
                   : rej != nullptr ? "rejected"
                                    : "started",
                   rej != nullptr ? rej->status.ToString().c_str() : "");
    }
    if (const auto* r = std::get_if<symwire::SessionResumed>(&o)) {
      const std::string what =
          absl::StrCat("resume on connection ", c.handle, " state before ",
                       symwire::SessionStateName(b.state));
      FUZZ_CHECK_MSG(r->session == s_, what);
      FUZZ_CHECK_MSG(b.registered, what);
      FUZZ_CHECK_MSG(proof_ok_, what);  // only with S's token
      FUZZ_CHECK_MSG(b.state == SessionState::kEstablished ||
                         b.state == SessionState::kDisconnected,
                     what);
      FUZZ_CHECK_MSG(r->superseded == (b.state == SessionState::kEstablished),
                     what);
      // A lost race is never accepted.
      FUZZ_CHECK_MSG(
          !(b.state == SessionState::kEstablished && s_tick_ > c.accepted_tick),
          what);
      FUZZ_CHECK(c.fresh->s().state() == SessionState::kClosed);
      FUZZ_CHECK(s_->state() == SessionState::kEstablished);
      FUZZ_CHECK(s_->counters().resumes == b.resumes + 1);
      // At most one live connection per session: close the superseded one.
      for (Connection& other : conns_) {
        if (other.attached_to_s) {
          FUZZ_CHECK(r->superseded || !other.live);
          other.attached_to_s = false;
          other.live = false;
        }
      }
      c.fresh->Drain(now_);
      pair_.acceptor->TakeConnectionFrom(*c.fresh);
      pair_.acceptor->Drain(now_);
      c.attached_to_s = true;
      s_connected_ = true;
      s_tick_ = ++tick_;
    } else if (const auto* rej = std::get_if<symwire::ConnectionRejected>(&o)) {
      c.fresh->Drain(now_);
      FUZZ_CHECK(!rej->status.ok());
      FUZZ_CHECK_MSG(c.fresh->s().state() == SessionState::kFailed,
                     symwire::fuzz::Text(rej->status));
      // S is left as it was.
      FUZZ_CHECK_MSG(
          s_->state() == b.state && s_->counters().resumes == b.resumes,
          symwire::fuzz::Text(rej->status));
      if (feeding_proof_ && symwire::GetErrorCode(rej->status) ==
                                symwire::ErrorCode::kConnectionLost) {
        // A lost race: only with a valid proof, while S was connected by a
        // connection accepted after this one.
        FUZZ_CHECK_MSG(proof_ok_ && b.state == SessionState::kEstablished &&
                           s_tick_ > c.accepted_tick,
                       symwire::fuzz::Text(rej->status));
      }
      c.live = false;
    } else {
      // A new session from raw bytes: registered, within max_sessions.
      const auto& st = std::get<symwire::SessionStarted>(o);
      FUZZ_CHECK(st.session == c.fresh->shared());
      FUZZ_CHECK(ep.Find(st.session->session_id()) == st.session);
      if (shard1_ != nullptr) {
        // A sharded Endpoint's ids end in its shard's index.
        FUZZ_CHECK(st.session->session_id().back() ==
                   std::byte{c.on_shard1 ? uint8_t{1} : uint8_t{0}});
      }
    }
  }

  void Check() {
    const symwire::Endpoint& ep = server_.endpoint();
    FUZZ_CHECK(ep.handshakes() <= kMaxHandshakes);
    FUZZ_CHECK(ep.sessions() <= ep.config().max_sessions);
    size_t running = 0;
    size_t running1 = 0;
    for (Connection& c : conns_) {
      FUZZ_CHECK((EndpointOf(c).handshake(c.handle) != nullptr) ==
                 c.handshaking);
      if (c.handshaking) ++(c.on_shard1 ? running1 : running);
    }
    FUZZ_CHECK(running == ep.handshakes());
    if (shard1_ != nullptr) {
      FUZZ_CHECK(shard1_->endpoint().handshakes() <= kMaxHandshakes);
      FUZZ_CHECK(running1 == shard1_->endpoint().handshakes());
    }
    size_t attached = 0;
    for (const Connection& c : conns_) attached += c.attached_to_s ? 1 : 0;
    FUZZ_CHECK(attached <= 1);
  }

  symwire::fuzz::FuzzServer server_;  // shard 0 when sharded: S's
  std::unique_ptr<symwire::fuzz::FuzzServer> shard1_;  // sharded only
  symwire::fuzz::Pair pair_;
  absl::Time now_;
  std::shared_ptr<symwire::Session> s_;
  symwire::ResumeToken token_{};
  uint64_t last_ = 0;
  std::vector<Connection> conns_;
  uint64_t tick_ = 0;
  uint64_t s_tick_ = 0;  // when S's current connection became S's
  bool s_connected_ = false;
  bool proof_ok_ = false;  // the PROOF being fed carries S's token for S
  bool feeding_proof_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Reader in(symwire::fuzz::AsBytes(data, size));
  const uint8_t control = in.Byte();
  Run run((control & 1) != 0, (control & 2) == 0, (control & 4) != 0);
  for (size_t n = 0; n < kMaxOps && !in.empty(); ++n) run.Step(in.Byte(), in);
  return 0;
}
