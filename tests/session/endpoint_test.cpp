// Deterministic tests of the acceptor's Endpoint (session/endpoint.hpp) on
// a simulated clock: new sessions, resumes routed to their session, forged
// and stale resumes, races, supersede, and the handshake bounds.
#include "symwire/session/endpoint.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "symwire/error.hpp"
#include "symwire/session/auth.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"
#include "tests/support/session_pair.hpp"

namespace symwire {
namespace {

using testing::AcceptorConfig;
using testing::FakeClock;
using testing::FastTimers;
using testing::HelloFrom;
using testing::InitiatorConfig;

std::vector<std::byte> Drain(Session& s) {
  std::vector<std::byte> out;
  for (auto sp = s.PollTransmit(); !sp.empty(); sp = s.PollTransmit()) {
    out.insert(out.end(), sp.begin(), sp.end());
  }
  return out;
}

std::vector<Event> Events(Session& s) {
  std::vector<Event> out;
  while (auto e = s.PollEvent()) out.push_back(std::move(*e));
  return out;
}

template <typename T>
bool Has(const std::vector<Event>& events) {
  for (const Event& e : events) {
    if (std::holds_alternative<T>(e)) return true;
  }
  return false;
}

EndpointConfig Config() {
  EndpointConfig c;
  c.session = FastTimers(AcceptorConfig());
  return c;
}

std::unique_ptr<Endpoint> MakeEndpoint(EndpointConfig c = Config()) {
  auto e = Endpoint::Create(std::move(c));
  REQUIRE(e.ok());
  return std::move(*e);
}

// One accepted connection between a real initiator Session and the
// Endpoint: bytes go through Endpoint::Receive while the handshake runs,
// then to the session the outcome names.
struct Conn {
  Endpoint& ep;
  ConnectionHandle handle = 0;
  std::shared_ptr<Session> fresh;
  Session* server = nullptr;  // the acceptor session driving the connection
  bool handshaking = true;
  ConnectionOutcome outcome = HandshakeRunning{};
  std::vector<Event> server_events;
  // Sharded Endpoints by index: a ResumeElsewhere is handed to its owner.
  std::vector<Endpoint*> shards;

  Conn(Endpoint& endpoint, absl::Time now) : ep(endpoint) {
    auto a = ep.Accept(now);
    REQUIRE(a.ok());
    handle = a->connection;
    fresh = a->session;
    server = fresh.get();
  }

  // Bytes from the peer.
  void In(absl::Span<const std::byte> bytes, absl::Time now) {
    if (handshaking) {
      outcome = ep.Receive(handle, bytes, now);
      if (const auto* e = std::get_if<ResumeElsewhere>(&outcome)) {
        REQUIRE(e->shard < shards.size());
        std::shared_ptr<Session> handed = ep.HandOff(handle);
        CHECK(handed == fresh);
        outcome = shards[e->shard]->Adopt(std::move(handed), now);
        CHECK(!std::holds_alternative<HandshakeRunning>(outcome));
      }
      if (!std::holds_alternative<HandshakeRunning>(outcome)) {
        handshaking = false;
        if (auto* r = std::get_if<SessionResumed>(&outcome)) {
          server = r->session.get();
        }
      }
    } else {
      static_cast<void>(server->Receive(bytes, now));
    }
    for (Event& e : Events(*fresh)) server_events.push_back(std::move(e));
    if (server != fresh.get()) {
      for (Event& e : Events(*server)) server_events.push_back(std::move(e));
    }
  }
  // Bytes to the peer (the fresh session's first: a rejection's error).
  std::vector<std::byte> Out() {
    std::vector<std::byte> out = Drain(*fresh);
    if (server != fresh.get()) {
      std::vector<std::byte> more = Drain(*server);
      out.insert(out.end(), more.begin(), more.end());
    }
    return out;
  }
};

// Runs initiator `client` against `conn` until no bytes move.
void Exchange(Session& client, Conn& conn, absl::Time now) {
  for (int round = 0; round < 64; ++round) {
    const std::vector<std::byte> up = Drain(client);
    if (!up.empty()) conn.In(up, now);
    const std::vector<std::byte> down = conn.Out();
    if (!down.empty() && client.state() != SessionState::kFailed) {
      static_cast<void>(client.Receive(down, now));
    }
    static_cast<void>(Events(client));
    if (up.empty() && down.empty()) return;
  }
  FAIL("connection did not settle");
}

std::unique_ptr<Session> Client(absl::Time now, uint64_t seed = 1) {
  auto c = Session::Create(FastTimers(InitiatorConfig(seed)), now);
  REQUIRE(c.ok());
  return std::move(*c);
}

// A peer that speaks the resume handshake by hand (as the initiator of
// InitiatorConfig() would), with any token: HELLO, then PROOF once the
// CHALLENGE is in.
struct RawResume {
  Conn conn;
  InitMessage hello;

  RawResume(Endpoint& ep, absl::Time now, const SessionId& id,
            uint64_t last_received, uint8_t nonce_seed)
      : conn(ep, now) {
    const SessionConfig c = FastTimers(InitiatorConfig());
    hello = HelloFrom(c);
    for (size_t k = 0; k < kNonceSize; ++k) {
      hello.nonce[k] = std::byte(static_cast<uint8_t>(k + nonce_seed));
    }
    hello.session_id = id;
    hello.last_received = last_received;
    std::vector<std::byte> payload;
    REQUIRE(AppendInit(hello, payload).ok());
    std::vector<std::byte> in(kPrefaceBytes.begin(), kPrefaceBytes.end());
    const std::vector<std::byte> f = Init(payload);
    in.insert(in.end(), f.begin(), f.end());
    conn.In(in, now);
    REQUIRE(std::holds_alternative<HandshakeRunning>(conn.outcome));
  }

  static std::vector<std::byte> Init(absl::Span<const std::byte> payload) {
    FrameHeader h;
    h.type = MessageType::kAgentInit;
    h.flags = kFlagChecksum;
    std::vector<std::byte> out(*EncodedSize(h, payload.size()));
    REQUIRE(EncodeFrame(h, payload, absl::MakeSpan(out)).ok());
    return out;
  }

  // Sends the PROOF made with `token`; returns the outcome.
  ConnectionOutcome Prove(const ResumeToken& token, absl::Time now) {
    std::vector<std::byte> out = conn.Out();
    // Preface, then the CHALLENGE.
    REQUIRE(out.size() > kPrefaceSize);
    FrameDecoder d(DecoderOptions{.expect_preface = true});
    absl::Span<const std::byte> rest(out);
    std::optional<InitMessage> challenge;
    while (!rest.empty() && !challenge) {
      auto step = d.Decode(rest);
      REQUIRE(step.ok());
      rest.remove_prefix(step->consumed);
      if (step->kind != DecodeStep::Kind::kFrame) continue;
      auto m = ParseInit(step->frame.payload());
      REQUIRE(m.ok());
      challenge = *m;
    }
    REQUIRE(challenge);
    REQUIRE(challenge->phase == InitPhase::kChallenge);
    InitMessage proof;
    proof.phase = InitPhase::kProof;
    auto p = ComputeResumeProof(token, ResumeProofSide::kClient, hello.nonce,
                                challenge->nonce, *hello.session_id,
                                *hello.last_received);
    REQUIRE(p.ok());
    proof.resume_proof = *p;
    std::vector<std::byte> payload;
    REQUIRE(AppendInit(proof, payload).ok());
    conn.In(Init(payload), now);
    return conn.outcome;
  }
};

// The stream-0 AGENT_ERROR a rejected connection's fresh session answered
// (its message copied: ErrorMessage points into the frame).
struct Answered {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  ErrorCode detail = ErrorCode::kOk;
  std::string message;
};
Answered Answer(Session& fresh) {
  const std::vector<std::byte> out = Drain(fresh);
  CHECK(fresh.ConnectionClosing());
  FrameDecoder d(DecoderOptions{.expect_preface = false});
  auto step = d.Decode(out);
  REQUIRE(step.ok());
  REQUIRE(step->kind == DecodeStep::Kind::kFrame);
  CHECK(step->frame.type() == MessageType::kAgentError);
  auto err = ParseError(step->frame.payload());
  REQUIRE(err.ok());
  return {err->code, err->detail, std::string(err->message)};
}

ErrorCode RejectedCode(const ConnectionOutcome& o) {
  const auto* r = std::get_if<ConnectionRejected>(&o);
  REQUIRE(r != nullptr);
  return GetErrorCode(r->status);
}

// An established session with one real initiator; returns the client.
struct Established1 {
  FakeClock clock;
  std::unique_ptr<Endpoint> ep;
  std::unique_ptr<Session> client;
  std::unique_ptr<Conn> conn;
  std::shared_ptr<Session> session;

  explicit Established1(EndpointConfig c = Config()) : ep(MakeEndpoint(c)) {
    client = Client(clock.Now());
    REQUIRE(client->TransportConnected(clock.Now()).ok());
    conn = std::make_unique<Conn>(*ep, clock.Now());
    Exchange(*client, *conn, clock.Now());
    auto* started = std::get_if<SessionStarted>(&conn->outcome);
    REQUIRE(started != nullptr);
    session = started->session;
    REQUIRE(client->state() == SessionState::kEstablished);
  }
  // Both ends learn that the connection died.
  void Cut() {
    const absl::Status lost = MakeError(ErrorCode::kConnectionLost, "cut");
    client->TransportLost(lost, clock.Now());
    session->TransportLost(lost, clock.Now());
    static_cast<void>(Events(*client));
    static_cast<void>(Events(*session));
    REQUIRE(session->state() == SessionState::kDisconnected);
  }
  // The client's reconnect timer fires and it reconnects through a new
  // connection of the endpoint, which resumes `session` over it.
  std::unique_ptr<Conn> Resume() {
    clock.Advance(absl::Seconds(2));
    client->HandleTimeout(clock.Now());
    REQUIRE(Has<ReconnectDue>(Events(*client)));
    REQUIRE(client->TransportConnected(clock.Now()).ok());
    auto again = std::make_unique<Conn>(*ep, clock.Now());
    Exchange(*client, *again, clock.Now());
    const auto* resumed = std::get_if<SessionResumed>(&again->outcome);
    REQUIRE(resumed != nullptr);
    CHECK(resumed->session == session);
    return again;
  }
};

TEST_CASE("endpoint: a new connection becomes a registered session",
          "[endpoint]") {
  Established1 r;
  CHECK(r.ep->sessions() == 1);
  CHECK(r.ep->handshakes() == 0);
  CHECK(r.ep->Find(r.session->session_id()) == r.session);
  CHECK(r.session.get() == r.conn->fresh.get());
  CHECK(r.session->state() == SessionState::kEstablished);
  CHECK(Has<Established>(r.conn->server_events));
  CHECK(r.ep->handshake(r.conn->handle) == nullptr);  // retired
  CHECK(r.ep->counters().sessions_started == 1);
}

TEST_CASE("endpoint: a resume is routed to its session", "[endpoint]") {
  Established1 r;
  auto task = r.client->SubmitTask(testing::AsBytes("job"), {}, r.clock.Now());
  REQUIRE(task.ok());
  r.Cut();  // the task never left the client: it is replayed
  const std::unique_ptr<Conn> again = r.Resume();
  CHECK(!std::get<SessionResumed>(again->outcome).superseded);
  CHECK(again->fresh->state() == SessionState::kClosed);
  CHECK(r.session->state() == SessionState::kEstablished);
  CHECK(r.client->state() == SessionState::kEstablished);
  CHECK(r.client->counters().resumes == 1);
  CHECK(r.ep->sessions() == 1);
  CHECK(r.ep->handshakes() == 0);
  CHECK(r.ep->counters().resumes == 1);
  // The task submitted while disconnected arrived through the session.
  bool got = false;
  for (const Event& e : again->server_events) {
    if (const auto* t = std::get_if<TaskReceived>(&e)) got = t->task == *task;
  }
  CHECK(got);
}

TEST_CASE(
    "endpoint: a forged token and an unknown session get the same "
    "SESSION_EXPIRED answer, and the session is unharmed",
    "[endpoint]") {
  Established1 r;
  r.Cut();
  const SessionId id = r.session->session_id();
  const uint64_t last = r.client->last_received();
  ResumeToken forged = r.client->resume_token();
  forged[3] ^= std::byte{0x40};

  RawResume bad(*r.ep, r.clock.Now(), id, last, 7);
  const ConnectionOutcome o1 = bad.Prove(forged, r.clock.Now());
  CHECK(RejectedCode(o1) == ErrorCode::kSessionExpired);
  CHECK(r.session->state() == SessionState::kDisconnected);
  CHECK(r.ep->Find(id) == r.session);
  const Answered a1 = Answer(*bad.conn.fresh);

  // The same id once the endpoint no longer has it, with the right token.
  REQUIRE(r.ep->Remove(id));
  RawResume unknown(*r.ep, r.clock.Now(), id, last, 9);
  const ConnectionOutcome o2 =
      unknown.Prove(r.client->resume_token(), r.clock.Now());
  CHECK(RejectedCode(o2) == ErrorCode::kSessionExpired);
  const Answered a2 = Answer(*unknown.conn.fresh);
  CHECK(a1.detail == ErrorCode::kSessionExpired);
  CHECK(a1.code == a2.code);
  CHECK(a1.detail == a2.detail);
  CHECK(a1.message == a2.message);
  CHECK(r.ep->handshakes() == 0);
  CHECK(r.ep->counters().resumes_rejected == 2);
}

TEST_CASE("endpoint: a resume of an id never registered is rejected",
          "[endpoint]") {
  FakeClock clock;
  auto ep = MakeEndpoint();
  SessionId id{};
  id[0] = std::byte{0x5a};
  RawResume raw(*ep, clock.Now(), id, 0, 1);
  ResumeToken token{};
  CHECK(RejectedCode(raw.Prove(token, clock.Now())) ==
        ErrorCode::kSessionExpired);
  CHECK(raw.conn.fresh->state() == SessionState::kFailed);
  CHECK(ep->sessions() == 0);
  CHECK(ep->handshakes() == 0);
}

TEST_CASE("endpoint: a valid token after the session expired is rejected",
          "[endpoint]") {
  Established1 r;
  r.Cut();
  const SessionId id = r.session->session_id();
  // The acceptor keeps a disconnected session for its resume window.
  r.clock.Advance(r.session->config().resume_window + absl::Seconds(1));
  r.session->HandleTimeout(r.clock.Now());
  REQUIRE(r.session->state() == SessionState::kFailed);
  RawResume late(*r.ep, r.clock.Now(), id, r.client->last_received(), 3);
  CHECK(RejectedCode(late.Prove(r.client->resume_token(), r.clock.Now())) ==
        ErrorCode::kSessionExpired);
  CHECK(r.ep->Find(id) == nullptr);  // the ended session was dropped
}

TEST_CASE(
    "endpoint: two connections racing to resume one session: the first "
    "valid proof wins, the other is rejected",
    "[endpoint]") {
  const bool a_first = GENERATE(true, false);
  Established1 r;
  r.Cut();
  const SessionId id = r.session->session_id();
  const uint64_t last = r.client->last_received();
  const ResumeToken token = r.client->resume_token();
  RawResume a(*r.ep, r.clock.Now(), id, last, 11);
  RawResume b(*r.ep, r.clock.Now(), id, last, 13);
  RawResume& first = a_first ? a : b;
  RawResume& second = a_first ? b : a;
  const ConnectionOutcome o1 = first.Prove(token, r.clock.Now());
  const auto* won = std::get_if<SessionResumed>(&o1);
  REQUIRE(won != nullptr);
  CHECK(won->session == r.session);
  CHECK(!won->superseded);
  static_cast<void>(Events(*r.session));
  // The loser: its proof is valid, yet another connection took the session
  // over while it was handshaking.
  const ConnectionOutcome o2 = second.Prove(token, r.clock.Now());
  CHECK(RejectedCode(o2) == ErrorCode::kConnectionLost);
  const Answered answer = Answer(*second.conn.fresh);
  CHECK(answer.detail == ErrorCode::kConnectionLost);
  // The winner keeps its connection: no ConnectionLost on the session.
  CHECK(r.session->state() == SessionState::kEstablished);
  CHECK(!Has<ConnectionLost>(Events(*r.session)));
  CHECK(r.ep->counters().resumes == 1);
  CHECK(r.ep->counters().resumes_lost_race == 1);
  CHECK(r.ep->handshakes() == 0);
}

TEST_CASE(
    "endpoint: an initiator whose resume lost a race keeps its session and "
    "redials",
    "[endpoint]") {
  Established1 r;
  r.Cut();
  r.clock.Advance(absl::Seconds(2));
  r.client->HandleTimeout(r.clock.Now());
  REQUIRE(Has<ReconnectDue>(Events(*r.client)));
  REQUIRE(r.client->TransportConnected(r.clock.Now()).ok());
  Conn loser(*r.ep, r.clock.Now());           // accepted first
  loser.In(Drain(*r.client), r.clock.Now());  // preface, HELLO
  REQUIRE(r.client->Receive(loser.Out(), r.clock.Now()).ok());  // CHALLENGE
  const std::vector<std::byte> proof = Drain(*r.client);
  REQUIRE(!proof.empty());
  // Another connection, accepted later, resumes the session first.
  RawResume winner(*r.ep, r.clock.Now(), r.session->session_id(),
                   r.client->last_received(), 21);
  REQUIRE(std::holds_alternative<SessionResumed>(
      winner.Prove(r.client->resume_token(), r.clock.Now())));
  loser.In(proof, r.clock.Now());
  CHECK(RejectedCode(loser.outcome) == ErrorCode::kConnectionLost);
  static_cast<void>(r.client->Receive(loser.Out(), r.clock.Now()));
  const std::vector<Event> events = Events(*r.client);
  CHECK(Has<ConnectionLost>(events));
  CHECK(!Has<SessionFailed>(events));
  // Connection scope (SPEC.md §16.1): the initiator schedules a redial.
  CHECK(r.client->state() == SessionState::kDisconnected);
}

TEST_CASE("endpoint: a racing loser without the token learns nothing",
          "[endpoint]") {
  Established1 r;
  r.Cut();
  const SessionId id = r.session->session_id();
  const uint64_t last = r.client->last_received();
  RawResume a(*r.ep, r.clock.Now(), id, last, 11);
  RawResume b(*r.ep, r.clock.Now(), id, last, 13);
  REQUIRE(std::holds_alternative<SessionResumed>(
      a.Prove(r.client->resume_token(), r.clock.Now())));
  ResumeToken forged = r.client->resume_token();
  forged[0] ^= std::byte{1};
  CHECK(RejectedCode(b.Prove(forged, r.clock.Now())) ==
        ErrorCode::kSessionExpired);
}

TEST_CASE(
    "endpoint: a resume accepted later supersedes the session's half-open "
    "connection",
    "[endpoint]") {
  Established1 r;
  // The client's connection died, the acceptor did not notice (half-open).
  r.client->TransportLost(MakeError(ErrorCode::kConnectionLost, "cut"),
                          r.clock.Now());
  static_cast<void>(Events(*r.client));
  static_cast<void>(Events(*r.session));
  REQUIRE(r.session->state() == SessionState::kEstablished);
  const std::unique_ptr<Conn> again = r.Resume();
  CHECK(std::get<SessionResumed>(again->outcome).superseded);
  CHECK(Has<ConnectionLost>(again->server_events));  // the old connection
  CHECK(r.client->state() == SessionState::kEstablished);
  CHECK(r.session->state() == SessionState::kEstablished);
  CHECK(r.ep->counters().superseded == 1);
}

TEST_CASE("endpoint: a flood of half-finished handshakes stays bounded",
          "[endpoint]") {
  FakeClock clock;
  EndpointConfig c = Config();
  c.max_handshakes = 8;
  c.max_handshake_bytes = 512;
  auto ep = MakeEndpoint(c);
  std::vector<ConnectionHandle> handles;
  std::vector<std::shared_ptr<Session>> fresh;
  const std::vector<std::byte> preface(kPrefaceBytes.begin(),
                                       kPrefaceBytes.end());
  for (int k = 0; k < 8; ++k) {
    auto a = ep->Accept(clock.Now());
    REQUIRE(a.ok());
    handles.push_back(a->connection);
    fresh.push_back(a->session);
    // The preface and a frame header that never completes.
    CHECK(std::holds_alternative<HandshakeRunning>(
        ep->Receive(a->connection, preface, clock.Now())));
  }
  auto refused = ep->Accept(clock.Now());
  CHECK(refused.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(ep->handshakes() == 8);
  CHECK(ep->counters().accepts_refused == 1);

  // A connection that keeps sending is cut at max_handshake_bytes, whatever
  // it sends: here byte after byte of a frame that would be 4 KiB.
  const std::vector<std::byte> big =
      RawResume::Init(std::vector<std::byte>(4000, std::byte{0}));
  ConnectionOutcome o = HandshakeRunning{};
  size_t sent = preface.size();
  for (size_t k = 0;
       k < big.size() && std::holds_alternative<HandshakeRunning>(o); ++k) {
    o = ep->Receive(handles[0], absl::MakeConstSpan(&big[k], 1), clock.Now());
    ++sent;
  }
  CHECK(sent == c.max_handshake_bytes + 1);
  const auto* rejected = std::get_if<ConnectionRejected>(&o);
  REQUIRE(rejected != nullptr);
  CHECK(rejected->status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(fresh[0]->receive_buffered_bytes() <= c.max_handshake_bytes);
  CHECK(ep->handshakes() == 7);

  // Released and timed-out handshakes make room again.
  ep->Release(handles[1]);
  clock.Advance(fresh[2]->config().handshake_timeout + absl::Seconds(1));
  fresh[2]->HandleTimeout(clock.Now());
  CHECK(std::holds_alternative<ConnectionRejected>(
      ep->Route(handles[2], clock.Now())));
  CHECK(ep->handshakes() == 5);
  for (int k = 0; k < 3; ++k) CHECK(ep->Accept(clock.Now()).ok());
  CHECK(!ep->Accept(clock.Now()).ok());
}

TEST_CASE("endpoint: max_sessions refuses a new session until one ends",
          "[endpoint]") {
  FakeClock clock;
  EndpointConfig c = Config();
  c.max_sessions = 1;
  auto ep = MakeEndpoint(c);
  auto c1 = Client(clock.Now(), 1);
  REQUIRE(c1->TransportConnected(clock.Now()).ok());
  Conn k1(*ep, clock.Now());
  Exchange(*c1, k1, clock.Now());
  REQUIRE(std::holds_alternative<SessionStarted>(k1.outcome));
  auto c2 = Client(clock.Now(), 2);
  REQUIRE(c2->TransportConnected(clock.Now()).ok());
  Conn k2(*ep, clock.Now());
  Exchange(*c2, k2, clock.Now());
  CHECK(RejectedCode(k2.outcome) == ErrorCode::kOk);  // no symwire code
  CHECK(std::get<ConnectionRejected>(k2.outcome).status.code() ==
        absl::StatusCode::kResourceExhausted);
  CHECK(ep->sessions() == 1);
  // Once the first session ended, its slot is free.
  k1.fresh->Abort(absl::CancelledError("done"), clock.Now());
  auto c3 = Client(clock.Now(), 3);
  REQUIRE(c3->TransportConnected(clock.Now()).ok());
  Conn k3(*ep, clock.Now());
  Exchange(*c3, k3, clock.Now());
  CHECK(std::holds_alternative<SessionStarted>(k3.outcome));
  CHECK(ep->sessions() == 1);
}

EndpointConfig Shard(uint32_t shard, uint32_t shards) {
  EndpointConfig c = Config();
  c.shard = shard;
  c.shards = shards;
  return c;
}

TEST_CASE(
    "endpoint: sharded ids end in the shard index; a resume that "
    "reaches another shard is handed to the owner",
    "[endpoint]") {
  Established1 r(Shard(2, 3));  // the session lives on shard 2 of 3
  CHECK(r.session->session_id().back() == std::byte{2});
  auto other = MakeEndpoint(Shard(0, 3));
  auto task = r.client->SubmitTask(testing::AsBytes("job"), {}, r.clock.Now());
  REQUIRE(task.ok());
  r.Cut();
  r.clock.Advance(absl::Seconds(2));
  r.client->HandleTimeout(r.clock.Now());
  REQUIRE(Has<ReconnectDue>(Events(*r.client)));
  REQUIRE(r.client->TransportConnected(r.clock.Now()).ok());
  Conn again(*other, r.clock.Now());  // accepted by shard 0
  again.shards = {other.get(), nullptr, r.ep.get()};
  Exchange(*r.client, again, r.clock.Now());
  const auto* resumed = std::get_if<SessionResumed>(&again.outcome);
  REQUIRE(resumed != nullptr);
  CHECK(resumed->session == r.session);
  CHECK(r.client->state() == SessionState::kEstablished);
  CHECK(other->handshakes() == 0);
  CHECK(other->counters().resumes == 0);
  CHECK(r.ep->handshakes() == 0);
  CHECK(r.ep->counters().resumes == 1);
  bool got = false;
  for (const Event& e : again.server_events) {
    if (const auto* t = std::get_if<TaskReceived>(&e)) got = t->task == *task;
  }
  CHECK(got);
}

TEST_CASE(
    "endpoint: a sharded resume naming no shard is rejected where it "
    "lands, like an unknown id",
    "[endpoint]") {
  FakeClock clock;
  auto ep = MakeEndpoint(Shard(1, 2));
  SessionId id{};
  id.back() = std::byte{7};  // no shard 7 of 2
  RawResume raw(*ep, clock.Now(), id, 0, 1);
  CHECK(RejectedCode(raw.Prove(ResumeToken{}, clock.Now())) ==
        ErrorCode::kSessionExpired);
  CHECK(ep->handshakes() == 0);
}

TEST_CASE("endpoint: an unsharded endpoint looks every id up itself",
          "[endpoint]") {
  FakeClock clock;
  auto ep = MakeEndpoint();
  SessionId id{};
  id.back() = std::byte{1};
  RawResume raw(*ep, clock.Now(), id, 0, 1);
  CHECK(RejectedCode(raw.Prove(ResumeToken{}, clock.Now())) ==
        ErrorCode::kSessionExpired);
}

TEST_CASE("endpoint: configuration is validated", "[endpoint]") {
  CHECK(!Endpoint::Create(Shard(2, 2)).ok());
  CHECK(!Endpoint::Create(Shard(0, 0)).ok());
  CHECK(!Endpoint::Create(Shard(0, 257)).ok());
  CHECK(Endpoint::Create(Shard(255, 256)).ok());
  EndpointConfig c = Config();
  c.session.side = SessionSide::kInitiator;
  CHECK(!Endpoint::Create(c).ok());
  c = Config();
  c.max_handshakes = 0;
  CHECK(!Endpoint::Create(c).ok());
  CHECK(Endpoint::Create(Config()).ok());
}

}  // namespace
}  // namespace symwire
