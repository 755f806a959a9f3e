// Deterministic tests of the session state machine (SPEC.md §10-§19) on a
// simulated clock: two Sessions joined by tests/support/session_pair.hpp.
#include "symwire/session/session.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/encoder.hpp"
#include "tests/support/session_pair.hpp"

namespace symwire {
namespace {

using testing::AcceptorConfig;
using testing::AsBytes;
using testing::Dir;
using testing::FastTimers;
using testing::HelloFrom;
using testing::InitiatorConfig;
using testing::PairOptions;
using testing::SessionPair;
using testing::Side;

PairOptions Fast() { return testing::FastPairOptions(); }

// Encodes one frame (no preface) for injection into an established session.
std::vector<std::byte> Frame(MessageType type, uint64_t stream, uint64_t seq,
                             absl::Span<const std::byte> payload = {},
                             uint8_t flags = 0) {
  FrameHeader h;
  h.type = type;
  h.flags = flags;
  h.stream_id = stream;
  h.sequence = seq;
  std::vector<std::byte> out(*EncodedSize(h, payload.size()));
  REQUIRE(EncodeFrame(h, payload, absl::MakeSpan(out)).ok());
  return out;
}

// Feeds `bytes` to `side`'s session through the harness (which then pumps).
absl::Status Inject(SessionPair& pair, Side side,
                    const std::vector<std::byte>& bytes) {
  return pair.Do(
      side, [&](Session& s, absl::Time now) { return s.Receive(bytes, now); });
}

std::vector<std::byte> SyncPayload(const SyncMessage& m) {
  std::vector<std::byte> p;
  REQUIRE(AppendSync(m, p).ok());
  return p;
}

// Decodes the frames in `bytes` (no preface).
std::vector<std::vector<std::byte>> Frames(absl::Span<const std::byte> bytes) {
  std::vector<std::vector<std::byte>> out;
  FrameDecoder d(DecoderOptions{.expect_preface = false});
  while (!bytes.empty()) {
    auto step = d.Decode(bytes);
    REQUIRE(step.ok());
    REQUIRE(step->kind == DecodeStep::Kind::kFrame);
    out.emplace_back(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(
                                                        step->consumed));
    bytes.remove_prefix(step->consumed);
  }
  return out;
}

std::vector<std::byte> Drain(Session& s) {
  std::vector<std::byte> out;
  for (auto sp = s.PollTransmit(); !sp.empty(); sp = s.PollTransmit()) {
    out.insert(out.end(), sp.begin(), sp.end());
  }
  return out;
}

// The HELLO the initiator of SessionPair(Fast()) sends (no resume).
InitMessage BaseHello() {
  static const SessionConfig c = FastTimers(InitiatorConfig());
  return HelloFrom(c);
}

// A fresh acceptor session that ran a resume handshake (HELLO, CHALLENGE,
// PROOF with the proof of `token`) with a peer that may lie about its
// state, and reported ResumeRequested. The HELLO describes the initiator
// of SessionPair(Fast()); `edit` may change it.
std::unique_ptr<Session> FreshResume(
    absl::Time now, const SessionId& id, const ResumeToken& token,
    uint64_t last_received,
    const std::function<void(InitMessage&)>& edit = nullptr) {
  auto fresh = *Session::Create(AcceptorConfig(9), now);
  REQUIRE(fresh->TransportConnected(now).ok());
  REQUIRE(Drain(*fresh).size() == kPrefaceSize);
  InitMessage hello = BaseHello();
  hello.session_id = id;
  hello.last_received = last_received;
  if (edit) edit(hello);
  std::vector<std::byte> payload;
  REQUIRE(AppendInit(hello, payload).ok());
  std::vector<std::byte> in(kPrefaceBytes.begin(), kPrefaceBytes.end());
  auto f = Frame(MessageType::kAgentInit, 0, 0, payload, kFlagChecksum);
  in.insert(in.end(), f.begin(), f.end());
  REQUIRE(fresh->Receive(in, now).ok());
  // SPEC.md §16.2: a resuming HELLO is always challenged.
  const auto out = Frames(Drain(*fresh));
  REQUIRE(out.size() == 1);
  FrameDecoder d(DecoderOptions{.expect_preface = false});
  auto step = d.Decode(out[0]);
  REQUIRE(step.ok());
  auto challenge = ParseInit(step->frame.payload());
  REQUIRE(challenge.ok());
  REQUIRE(challenge->phase == InitPhase::kChallenge);
  InitMessage proof;
  proof.phase = InitPhase::kProof;
  auto p = ComputeResumeProof(token, ResumeProofSide::kClient, hello.nonce,
                              challenge->nonce, id, *hello.last_received);
  REQUIRE(p.ok());
  proof.resume_proof = *p;
  payload.clear();
  REQUIRE(AppendInit(proof, payload).ok());
  REQUIRE(
      fresh
          ->Receive(
              Frame(MessageType::kAgentInit, 0, 0, payload, kFlagChecksum), now)
          .ok());
  auto e = fresh->PollEvent();
  REQUIRE(e.has_value());
  REQUIRE(std::holds_alternative<ResumeRequested>(*e));
  return fresh;
}

// Submits a task from the initiator and runs until the acceptor has it.
TaskId StartTask(SessionPair& pair, absl::string_view payload,
                 const TaskOptions& options = {}) {
  const size_t before = pair.Count<TaskReceived>(Side::kAcceptor);
  auto id = pair.Submit(Side::kInitiator, payload, options);
  REQUIRE(id.ok());
  pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) > before; });
  return *id;
}

bool Ok(SessionPair& pair) {
  if (!pair.problems().empty()) {
    for (const auto& p : pair.problems()) UNSCOPED_INFO(p);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Handshake

TEST_CASE("handshake establishes a new session with the peer's limits",
          "[session][handshake]") {
  PairOptions o;
  o.acceptor.max_tasks = 7;
  o.acceptor.max_payload_bytes = 1000;
  o.acceptor.capabilities = kCapPayloadChecksums | kCapMetadata;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  Session& i = pair.initiator();
  Session& a = *pair.acceptor();
  CHECK(i.session_id() == a.session_id());
  CHECK(i.peer().agent_id == "acceptor");
  CHECK(a.peer().agent_id == "initiator");
  CHECK(i.peer().role == AgentRole::kAgent);
  CHECK(i.peer().max_tasks == 7);
  CHECK(i.peer().max_payload_bytes == 1000);
  CHECK(i.peer().version == 1);
  CHECK(i.peer().negotiated_capabilities ==
        (kCapPayloadChecksums | kCapMetadata));
  const auto* est = pair.LastEvent<Established>(Side::kInitiator);
  REQUIRE(est != nullptr);
  CHECK_FALSE(est->resumed);
  CHECK(Ok(pair));
}

TEST_CASE("handshake works at every split, including byte by byte",
          "[session][handshake]") {
  for (size_t split :
       {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}}) {
    PairOptions o;
    o.split = testing::Split::Fixed(split);
    SessionPair pair(o);
    REQUIRE(pair.Handshake());
    CHECK(Ok(pair));
  }
}

TEST_CASE("version mismatch names both ranges", "[session][handshake]") {
  PairOptions o;
  o.initiator.min_version = 2;
  o.initiator.max_version = 3;
  SessionPair pair(o);
  pair.Connect();
  pair.RunFor(absl::Seconds(1));
  const auto* failed = pair.LastEvent<SessionFailed>(Side::kAcceptor);
  REQUIRE(failed != nullptr);
  CHECK(GetErrorCode(failed->status) == ErrorCode::kVersionMismatch);
  CHECK_THAT(std::string(failed->status.message()),
             Catch::Contains("local 1..1, peer 2..3"));
  const auto* peer_failed = pair.LastEvent<SessionFailed>(Side::kInitiator);
  REQUIRE(peer_failed != nullptr);
  CHECK(peer_failed->status.code() == absl::StatusCode::kUnimplemented);
  CHECK(GetErrorCode(peer_failed->status) == ErrorCode::kVersionMismatch);
}

TEST_CASE("incompatible roles fail the handshake", "[session][handshake]") {
  PairOptions o;
  o.acceptor.role = AgentRole::kOrchestrator;
  SessionPair pair(o);
  pair.Connect();
  pair.RunFor(absl::Seconds(1));
  const auto* failed = pair.LastEvent<SessionFailed>(Side::kInitiator);
  REQUIRE(failed != nullptr);
  CHECK(GetErrorCode(failed->status) == ErrorCode::kIncompatibleRoles);
}

TEST_CASE("every authenticator succeeds with the right secret",
          "[session][auth]") {
  std::vector<std::shared_ptr<const Authenticator>> methods = {
      NoAuthenticator(), TokenAuthenticator("s3cret-token"),
      HmacAuthenticator("0123456789abcdef0123456789abcdef")};
  for (const auto& m : methods) {
    PairOptions o;
    o.initiator.authenticator = m;
    o.acceptor.authenticator = m;
    o.split = testing::Split::Random(5);
    SessionPair pair(o);
    REQUIRE(pair.Handshake());
    CHECK(Ok(pair));
  }
}

TEST_CASE("authentication failures end with UNAUTHENTICATED on both sides",
          "[session][auth]") {
  struct Case {
    std::shared_ptr<const Authenticator> initiator, acceptor;
  };
  std::vector<Case> cases = {
      {TokenAuthenticator("wrong"), TokenAuthenticator("right")},
      {HmacAuthenticator("key-one-key-one"), HmacAuthenticator("key-two")},
      {NoAuthenticator(), TokenAuthenticator("required")},  // absent
      {TokenAuthenticator("x"), HmacAuthenticator("x")},    // wrong method
  };
  for (const auto& c : cases) {
    PairOptions o;
    o.initiator.authenticator = c.initiator;
    o.acceptor.authenticator = c.acceptor;
    SessionPair pair(o);
    pair.Connect();
    pair.RunFor(absl::Seconds(1));
    for (Side side : {Side::kAcceptor, Side::kInitiator}) {
      const auto* failed = pair.LastEvent<SessionFailed>(side);
      REQUIRE(failed != nullptr);
      CHECK(failed->status.code() == absl::StatusCode::kUnauthenticated);
    }
    CHECK(pair.Count<Established>(Side::kInitiator) == 0);
  }
}

TEST_CASE("a frame before the handshake is answered with UNAUTHENTICATED",
          "[session][handshake]") {
  auto a = *Session::Create(AcceptorConfig(), absl::UnixEpoch());
  REQUIRE(a->TransportConnected(absl::UnixEpoch()).ok());
  while (!a->PollTransmit().empty()) {
  }
  std::vector<std::byte> in(kPrefaceBytes.begin(), kPrefaceBytes.end());
  auto task = Frame(MessageType::kAgentTask, 1, 1, AsBytes("sneaky"));
  in.insert(in.end(), task.begin(), task.end());
  absl::Status s = a->Receive(in, absl::UnixEpoch());
  CHECK(s.code() == absl::StatusCode::kUnauthenticated);
  CHECK(GetErrorCode(s) == ErrorCode::kUnexpectedFrame);
  CHECK_THAT(std::string(s.message()), Catch::Contains("stream offset 8"));
  // The answer is a stream-0 AGENT_ERROR, then the connection closes.
  std::vector<std::byte> out;
  for (auto sp = a->PollTransmit(); !sp.empty(); sp = a->PollTransmit()) {
    out.insert(out.end(), sp.begin(), sp.end());
  }
  FrameDecoder d(DecoderOptions{.expect_preface = false});
  auto step = d.Decode(out);
  REQUIRE(step.ok());
  REQUIRE(step->kind == DecodeStep::Kind::kFrame);
  CHECK(step->frame.type() == MessageType::kAgentError);
  auto err = ParseError(step->frame.payload());
  REQUIRE(err.ok());
  CHECK(err->code == absl::StatusCode::kUnauthenticated);
  CHECK(a->ConnectionClosing());
  CHECK(a->state() == SessionState::kFailed);
}

TEST_CASE("a handshake that never finishes times out", "[session][handshake]") {
  PairOptions o = Fast();
  SessionPair pair(o);
  pair.Connect();
  pair.link()->Stall(Dir::kToAcceptor, absl::InfiniteFuture());
  pair.RunFor(absl::Seconds(3));
  // The fresh acceptor has nothing to resume: it fails.
  const auto* failed = pair.LastEvent<SessionFailed>(Side::kAcceptor);
  REQUIRE(failed != nullptr);
  CHECK(GetErrorCode(failed->status) == ErrorCode::kHandshakeTimeout);
  // The initiator's connection timed out too; it keeps trying.
  CHECK(pair.Count<ConnectionLost>(Side::kInitiator) >= 1);
  CHECK(pair.Count<ReconnectDue>(Side::kInitiator) >= 1);
}

// ---------------------------------------------------------------------------
// Tasks

TEST_CASE("streamed responses arrive in order, then one final",
          "[session][tasks]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  std::vector<TaskId> ids;
  for (int i = 0; i < 20; ++i) {
    auto id = pair.Submit(Side::kInitiator, "task " + std::to_string(i));
    REQUIRE(id.ok());
    ids.push_back(*id);
  }
  CHECK(ids[0] == 1);
  CHECK(ids[1] == 3);  // initiator ids are odd (§13.1)
  pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 20; });
  for (TaskId id : ids) {
    for (int p = 0; p < 3; ++p) {
      REQUIRE(
          pair.Respond(Side::kAcceptor, id, "part" + std::to_string(p), false)
              .ok());
    }
    REQUIRE(pair.Respond(Side::kAcceptor, id, "done", true).ok());
  }
  pair.RunFor(absl::Milliseconds(50));
  for (TaskId id : ids) {
    auto recs = pair.FindTask<ResponseReceived>(Side::kInitiator, id);
    REQUIRE(recs.size() == 4);
    for (int p = 0; p < 3; ++p) {
      CHECK(recs[static_cast<size_t>(p)]->payload ==
            "part" + std::to_string(p));
      CHECK_FALSE(recs[static_cast<size_t>(p)]->As<ResponseReceived>().final);
    }
    CHECK(recs[3]->As<ResponseReceived>().final);
  }
  CHECK(pair.initiator().open_tasks() == 0);
  CHECK(pair.acceptor()->open_tasks() == 0);
  // Acks were coalesced and freed both replay buffers.
  CHECK(pair.initiator().replay_frames_in_use() == 0);
  CHECK(pair.acceptor()->replay_frames_in_use() == 0);
  CHECK(pair.acceptor()->counters().acks_sent < 20);
  CHECK(Ok(pair));
}

TEST_CASE("task extensions travel: deadline, trace context, metadata",
          "[session][tasks]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  TraceParent tp;
  tp.trace_id[0] = std::byte{1};
  tp.parent_id[0] = std::byte{2};
  std::vector<MetadataEntry> md = {{"tenant", "acme"}, {"model", "m1"}};
  TaskOptions opt;
  opt.deadline = absl::Seconds(30);
  opt.trace_parent = tp;
  opt.trace_state = "k=v";
  opt.metadata = md;
  auto id = pair.Submit(Side::kInitiator, "x", opt);
  REQUIRE(id.ok());
  pair.RunUntil([&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; });
  const auto* rec = pair.Last<TaskReceived>(Side::kAcceptor);
  REQUIRE(rec != nullptr);
  CHECK(rec->deadline_us == 30'000'000);
  CHECK(rec->trace_parent == tp);
  CHECK(rec->trace_state == "k=v");
  REQUIRE(rec->metadata.size() == 2);
  CHECK(rec->metadata[1].second == "m1");
  REQUIRE(rec->As<TaskReceived>().deadline.has_value());
}

TEST_CASE("methods: METHOD travels on AGENT_TASK (SPEC.md §5.1, §13.5)",
          "[session][tasks][methods]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  CHECK((pair.initiator().peer().capabilities & kCapMethods) != 0);
  TaskOptions opt;
  opt.method = "llm.summarize";
  auto id = pair.Submit(Side::kInitiator, "x", opt);
  REQUIRE(id.ok());
  auto plain = pair.Submit(Side::kInitiator, "y");
  REQUIRE(plain.ok());
  pair.RunUntil([&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 2; });
  auto recs = pair.FindTask<TaskReceived>(Side::kAcceptor, *id);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0]->method == "llm.summarize");
  auto plain_recs = pair.FindTask<TaskReceived>(Side::kAcceptor, *plain);
  REQUIRE(plain_recs.size() == 1);
  CHECK(plain_recs[0]->method.empty());
  // The executor's UNIMPLEMENTED answer (§13.5) reaches the submitter with
  // its code and detail, retryable, and ends that task only.
  REQUIRE(pair.Do(Side::kAcceptor,
                  [&](Session& s, absl::Time now) {
                    return s.FailTask(
                        *id,
                        MakeError(ErrorCode::kUnimplemented,
                                  "unknown method \"llm.summarize\""),
                        true, now);
                  })
              .ok());
  pair.RunFor(absl::Milliseconds(10));
  const auto* f = pair.LastEvent<TaskFailed>(Side::kInitiator);
  REQUIRE(f != nullptr);
  CHECK(f->task == *id);
  CHECK(f->retryable);
  CHECK(f->status.code() == absl::StatusCode::kUnimplemented);
  CHECK(GetErrorCode(f->status) == ErrorCode::kUnimplemented);
  CHECK_THAT(std::string(f->status.message()),
             Catch::Contains("llm.summarize"));
  CHECK(pair.initiator().state() == SessionState::kEstablished);
  CHECK(Ok(pair));
}

TEST_CASE("methods: a bad method name is refused locally, nothing sent",
          "[session][tasks][methods]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  const uint64_t frames = pair.initiator().counters().frames_out;
  for (const std::string& bad : {std::string("a b"), std::string("caf\xC3\xA9"),
                                 std::string(256, 'a'), std::string("x\n")}) {
    INFO(bad);
    TaskOptions opt;
    opt.method = bad;
    auto id = pair.Submit(Side::kInitiator, "x", opt);
    REQUIRE_FALSE(id.ok());
    CHECK(id.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(GetErrorCode(id.status()) == ErrorCode::kInvalidFrame);
  }
  TaskOptions opt;
  opt.method = "a b";
  CHECK_THAT(
      std::string(pair.Submit(Side::kInitiator, "x", opt).status().message()),
      Catch::Contains("0x20 at index 1"));
  CHECK(pair.initiator().counters().frames_out == frames);
  CHECK(pair.initiator().open_tasks() == 0);
}

TEST_CASE("methods: no METHOD to a peer that did not announce METHODS",
          "[session][tasks][methods]") {
  // SPEC.md §9, §11.4: METHOD is critical; a peer without the bit (an
  // older implementation) would end the connection on it, so the sender
  // refuses locally with UNIMPLEMENTED. Tasks without a method still flow.
  PairOptions o = Fast();
  o.acceptor.capabilities &= ~kCapMethods;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  CHECK((pair.initiator().peer().capabilities & kCapMethods) == 0);
  const uint64_t frames = pair.initiator().counters().frames_out;
  TaskOptions opt;
  opt.method = "summarize";
  auto id = pair.Submit(Side::kInitiator, "x", opt);
  REQUIRE_FALSE(id.ok());
  CHECK(id.status().code() == absl::StatusCode::kUnimplemented);
  CHECK(GetErrorCode(id.status()) == ErrorCode::kUnimplemented);
  CHECK_THAT(std::string(id.status().message()), Catch::Contains("summarize"));
  CHECK_THAT(std::string(id.status().message()), Catch::Contains("METHODS"));
  CHECK(pair.initiator().counters().frames_out == frames);
  CHECK(pair.initiator().state() == SessionState::kEstablished);
  auto plain = pair.Submit(Side::kInitiator, "y");
  REQUIRE(plain.ok());
  pair.RunUntil([&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; });
  CHECK(Ok(pair));
}

TEST_CASE("executor-side failures reach the submitter with code and flag",
          "[session][tasks]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto id = StartTask(pair, "x");
  REQUIRE(pair.Do(Side::kAcceptor,
                  [&](Session& s, absl::Time now) {
                    return s.FailTask(id,
                                      absl::ResourceExhaustedError("gpu busy"),
                                      true, now);
                  })
              .ok());
  pair.RunFor(absl::Milliseconds(10));
  const auto* f = pair.LastEvent<TaskFailed>(Side::kInitiator);
  REQUIRE(f != nullptr);
  CHECK(f->task == id);
  CHECK(f->retryable);
  CHECK(f->status.code() == absl::StatusCode::kResourceExhausted);
  CHECK(f->status.message() == "gpu busy");
  // The executor's status unchanged (SPEC.md §13.2): no PEER_ERROR
  // payload, so it compares equal (issue #14 §3).
  CHECK(f->status == absl::ResourceExhaustedError("gpu busy"));
  CHECK(GetErrorCode(f->status) == ErrorCode::kOk);
  // The task has ended on both sides; a second terminal is refused locally.
  CHECK(GetErrorCode(pair.Respond(Side::kAcceptor, id, "late", true)) ==
        ErrorCode::kWrongState);
}

TEST_CASE("cancel: exactly one terminal event on each side",
          "[session][cancel]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto id = StartTask(pair, "long job");
  REQUIRE(pair.Respond(Side::kAcceptor, id, "p1", false).ok());
  REQUIRE(pair.Cancel(Side::kInitiator, id).ok());
  CHECK(GetErrorCode(pair.Cancel(Side::kInitiator, id)) ==
        ErrorCode::kWrongState);
  pair.RunFor(absl::Milliseconds(50));
  auto ic = pair.FindTask<TaskCancelled>(Side::kInitiator, id);
  auto ac = pair.FindTask<TaskCancelled>(Side::kAcceptor, id);
  REQUIRE(ic.size() == 1);
  REQUIRE(ac.size() == 1);
  CHECK(ic[0]->As<TaskCancelled>().status.code() ==
        absl::StatusCode::kCancelled);
  CHECK(ac[0]->As<TaskCancelled>().status.code() ==
        absl::StatusCode::kCancelled);
  CHECK(pair.FindTask<TaskFailed>(Side::kInitiator, id).empty());
  CHECK(pair.initiator().open_tasks() == 0);
  CHECK(pair.acceptor()->open_tasks() == 0);
  CHECK(Ok(pair));
}

TEST_CASE("cancel crossing the final response on the wire is not an error",
          "[session][cancel]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto id = StartTask(pair, "job");
  // Hold the executor's bytes so its final response and partials are in
  // flight when the cancel is sent.
  pair.link()->Stall(Dir::kToInitiator, pair.now() + absl::Milliseconds(20));
  REQUIRE(pair.Respond(Side::kAcceptor, id, "p", false).ok());
  REQUIRE(pair.Respond(Side::kAcceptor, id, "final", true).ok());
  REQUIRE(pair.Cancel(Side::kInitiator, id).ok());
  pair.RunFor(absl::Milliseconds(100));
  // Submitter: one terminal (Cancelled); the crossing frames were absorbed.
  CHECK(pair.FindTask<TaskCancelled>(Side::kInitiator, id).size() == 1);
  CHECK(pair.FindTask<ResponseReceived>(Side::kInitiator, id).empty());
  CHECK(pair.initiator().counters().late_frames_discarded == 2);
  // Executor: its final response was its terminal; the cancel is ignored.
  CHECK(pair.FindTask<TaskCancelled>(Side::kAcceptor, id).empty());
  CHECK(pair.acceptor()->counters().late_frames_discarded == 1);
  CHECK(pair.initiator().state() == SessionState::kEstablished);
  CHECK(pair.acceptor()->state() == SessionState::kEstablished);
  CHECK(pair.initiator().open_tasks() == 0);
  CHECK(Ok(pair));
}

TEST_CASE("an expired deadline cancels the task on both sides",
          "[session][deadline]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  TaskOptions opt;
  opt.deadline = absl::Milliseconds(100);
  auto id = *pair.Submit(Side::kInitiator, "slow", opt);
  pair.RunFor(absl::Milliseconds(300));
  auto ic = pair.FindTask<TaskCancelled>(Side::kInitiator, id);
  auto ac = pair.FindTask<TaskCancelled>(Side::kAcceptor, id);
  REQUIRE(ic.size() == 1);
  REQUIRE(ac.size() == 1);
  CHECK(ic[0]->As<TaskCancelled>().status.code() ==
        absl::StatusCode::kDeadlineExceeded);
  CHECK(ac[0]->As<TaskCancelled>().status.code() ==
        absl::StatusCode::kDeadlineExceeded);
  CHECK(ic[0]->at - pair.events(Side::kInitiator).front().at <=
        absl::Milliseconds(300));
  CHECK(pair.initiator().open_tasks() == 0);
  CHECK(pair.acceptor()->open_tasks() == 0);
  CHECK(Ok(pair));
}

TEST_CASE(
    "a deadline the submitter's cancel reports first does not read "
    "'cancelled' on the executor",
    "[session][deadline]") {
  // The task reaches the executor 50 ms late, so its own deadline is 50 ms
  // after the submitter's: the AGENT_CANCEL (reason DEADLINE_EXCEEDED)
  // ends it first. The agent's view of a deadline is not "cancelled by
  // the submitter" (issue #14 §3).
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  TaskOptions opt;
  opt.deadline = absl::Milliseconds(100);
  pair.link()->Stall(Dir::kToAcceptor, pair.now() + absl::Milliseconds(50));
  auto id = *pair.Submit(Side::kInitiator, "slow", opt);
  pair.RunFor(absl::Milliseconds(300));
  auto ac = pair.FindTask<TaskCancelled>(Side::kAcceptor, id);
  REQUIRE(ac.size() == 1);
  const absl::Status& st = ac[0]->As<TaskCancelled>().status;
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::StrContains(st.message(), "the submitter's deadline passed"));
  CHECK_FALSE(absl::StrContains(st.message(), "cancelled"));
  CHECK(Ok(pair));
}

TEST_CASE(
    "the executor's own deadline fires when the submitter's cancel "
    "is delayed",
    "[session][deadline]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  TaskOptions opt;
  opt.deadline = absl::Milliseconds(100);
  auto id = StartTask(pair, "slow", opt);
  pair.link()->Stall(Dir::kToAcceptor, pair.now() + absl::Milliseconds(500));
  pair.RunFor(absl::Milliseconds(800));
  auto ac = pair.FindTask<TaskCancelled>(Side::kAcceptor, id);
  REQUIRE(ac.size() == 1);
  CHECK(ac[0]->As<TaskCancelled>().status.code() ==
        absl::StatusCode::kDeadlineExceeded);
  CHECK(pair.FindTask<TaskCancelled>(Side::kInitiator, id).size() == 1);
  CHECK(pair.initiator().open_tasks() == 0);
  CHECK(pair.acceptor()->open_tasks() == 0);
  CHECK(Ok(pair));
}

// ---------------------------------------------------------------------------
// Flow control and drain

// Session::FindTask keeps the slot of the task found last, so that a
// streamed task's frames skip the hash; an insert may move every slot
// (rehash) and EndTask erases one. Here a stream's responses alternate with
// 300 other tasks arriving and ending on both sides (the tables grow
// several times), and after the stream ends neither side finds it again.
TEST_CASE("a streamed task is found across other tasks' arrivals and ends",
          "[session][tasks]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  const TaskId stream = *pair.Submit(Side::kInitiator, "stream");
  pair.RunUntilIdleNow();
  int parts = 0;
  for (int i = 0; i < 300; ++i) {
    REQUIRE(pair.Respond(Side::kAcceptor, stream, "part", false).ok());
    ++parts;
    auto other = pair.Submit(Side::kInitiator, "other");
    REQUIRE(other.ok());
    pair.RunUntilIdleNow();
    REQUIRE(pair.Respond(Side::kAcceptor, stream, "part", false).ok());
    ++parts;
    // Half the others stay open until the end, so the tables keep growing.
    if (i % 2 == 0) {
      REQUIRE(pair.Respond(Side::kAcceptor, *other, "done", true).ok());
    }
    pair.RunUntilIdleNow();
  }
  CHECK(pair.initiator().open_tasks() == 151);
  REQUIRE(pair.Respond(Side::kAcceptor, stream, "end", true).ok());
  pair.RunUntilIdleNow();
  const auto got = pair.FindTask<ResponseReceived>(Side::kInitiator, stream);
  REQUIRE(got.size() == static_cast<size_t>(parts) + 1);
  CHECK(got.back()->As<ResponseReceived>().final);
  // Ended on the executor: its slot was the one found last.
  absl::Status late = pair.Respond(Side::kAcceptor, stream, "late", false);
  CHECK(GetErrorCode(late) == ErrorCode::kWrongState);
  CHECK(pair.initiator().open_tasks() == 150);
  CHECK(Ok(pair));
  // Ended on the submitter: a response for it now is a violation.
  Session& i = pair.initiator();
  absl::Status s =
      Inject(pair, Side::kInitiator,
             Frame(MessageType::kAgentResponse, stream, i.last_received() + 1));
  CHECK(GetErrorCode(s) == ErrorCode::kTaskStateViolation);
  CHECK_THAT(std::string(s.message()), Catch::Contains("which has ended"));
}

TEST_CASE("task credit: NO_CREDIT, then Writable", "[session][flow]") {
  PairOptions o = Fast();
  o.acceptor.max_tasks = 2;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  auto a = *pair.Submit(Side::kInitiator, "a");
  REQUIRE(pair.Submit(Side::kInitiator, "b").ok());
  auto c = pair.Submit(Side::kInitiator, "c");
  REQUIRE_FALSE(c.ok());
  CHECK(GetErrorCode(c.status()) == ErrorCode::kNoCredit);
  CHECK(pair.Count<Writable>(Side::kInitiator) == 0);
  pair.RunUntil([&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 2; });
  REQUIRE(pair.Respond(Side::kAcceptor, a, "ok", true).ok());
  pair.RunUntil([&] { return pair.Count<Writable>(Side::kInitiator) == 1; });
  CHECK(pair.Submit(Side::kInitiator, "c").ok());
  CHECK(pair.initiator().counters().errors_by_code[114] == 1);
}

// SPEC.md §15.1: the ack of a final response is coalesced (§14.2) rather
// than written at once in a SYNC of its own; it goes ahead of a task only
// when that task would otherwise find the executor's max_tasks full.

// Runs one request/response from the initiator without moving the clock:
// submit, the acceptor answers with a final response, the initiator has it.
void RoundTripNow(SessionPair& pair, absl::string_view payload) {
  const size_t received = pair.Count<TaskReceived>(Side::kAcceptor);
  const size_t answered = pair.Count<ResponseReceived>(Side::kInitiator);
  auto id = pair.Submit(Side::kInitiator, payload);
  REQUIRE(id.ok());
  pair.RunUntilIdleNow();
  REQUIRE(pair.Count<TaskReceived>(Side::kAcceptor) == received + 1);
  REQUIRE(pair.Respond(Side::kAcceptor, *id, "ok", true).ok());
  pair.RunUntilIdleNow();
  REQUIRE(pair.Count<ResponseReceived>(Side::kInitiator) == answered + 1);
}

TEST_CASE("request/response: a final response costs the submitter no SYNC",
          "[session][flow][ack]") {
  SessionPair pair(Fast());  // acceptor max_tasks 1024, ack_delay 1 ms
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  Session& i = pair.initiator();
  Session& a = *pair.acceptor();
  const absl::Time t = pair.now();
  const SessionCounters before = i.counters();
  for (int n = 0; n < 8; ++n) RoundTripNow(pair, "req");
  REQUIRE(pair.now() == t);  // no timer ran
  // Eight tasks and nothing else: no SYNC per final response (the old rule
  // wrote one after each, eight in all).
  CHECK(i.counters().frames_out - before.frames_out == 8);
  CHECK(i.counters().acks_sent == before.acks_sent);
  CHECK(i.open_tasks() == 0);
  // The acceptor holds the eight final responses (and their slots) until
  // the ack, which comes within the initiator's ack_delay.
  CHECK(a.replay_frames_in_use() == 8);
  CHECK(i.NextDeadline() <= t + absl::Milliseconds(1));
  REQUIRE(pair.RunUntil([&] { return a.replay_frames_in_use() == 0; },
                        absl::Milliseconds(50)));
  CHECK(pair.now() - t <= absl::Milliseconds(1));
  CHECK(i.counters().acks_sent == before.acks_sent + 1);
  CHECK(i.counters().frames_out - before.frames_out == 9);
  CHECK(Ok(pair));
}

TEST_CASE(
    "the ack of a final response goes ahead of a task that needs its "
    "slot",
    "[session][flow][ack]") {
  // o + u >= max_tasks (§15.1): with max_tasks 1 every task after the first
  // carries the ack just ahead of it; with 3, one task in three does. A
  // task sent without it would end the session with TASK_LIMIT_EXCEEDED.
  const uint32_t max_tasks = GENERATE(1u, 3u);
  PairOptions o = Fast();
  o.acceptor.max_tasks = max_tasks;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  Session& i = pair.initiator();
  const absl::Time t = pair.now();
  const SessionCounters before = i.counters();
  constexpr int kTasks = 7;
  for (int n = 0; n < kTasks; ++n) RoundTripNow(pair, "req");
  REQUIRE(pair.now() == t);
  const uint64_t forced = (kTasks - 1) / max_tasks;  // 6 or 2
  CHECK(i.counters().acks_sent - before.acks_sent == forced);
  CHECK(i.counters().frames_out - before.frames_out == kTasks + forced);
  CHECK(pair.acceptor()->counters().errors_by_code[static_cast<size_t>(
            ErrorCode::kTaskLimitExceeded)] == 0);
  CHECK(Ok(pair));
}

TEST_CASE("an unsent ack of a final response is carried by the resume",
          "[session][flow][ack][resume]") {
  // The connection ends before the coalesced ack went out, and the next
  // task (which needs the slot, max_tasks 1) is queued meanwhile: the
  // resume's last_received releases the slot before the replayed task.
  PairOptions o = Fast();
  o.acceptor.max_tasks = 1;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  RoundTripNow(pair, "first");
  REQUIRE(pair.acceptor()->replay_frames_in_use() == 1);  // not acked yet
  pair.set_auto_dial(false);
  pair.Cut();
  pair.RunUntilIdleNow();
  auto second = pair.Submit(Side::kInitiator, "second");
  REQUIRE(second.ok());
  pair.Connect();
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 2; },
      absl::Seconds(5)));
  REQUIRE(pair.Respond(Side::kAcceptor, *second, "ok", true).ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<ResponseReceived>(Side::kInitiator) == 2; },
      absl::Seconds(5)));
  CHECK(Ok(pair));
}

TEST_CASE(
    "close waits for a coalesced ack of a final response no longer "
    "than ack_delay",
    "[session][flow][ack][drain]") {
  // Either side closes right after the last final response: the
  // initiator's bye carries the ack; the acceptor waits for the ack (its
  // replay buffer must be empty before its bye), which the initiator's
  // ack_delay timer (1 ms) sends.
  const Side closer = GENERATE(Side::kInitiator, Side::kAcceptor);
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  RoundTripNow(pair, "last");
  REQUIRE(pair.acceptor()->replay_frames_in_use() == 1);
  const absl::Time t = pair.now();
  REQUIRE(pair.Close(closer).ok());
  REQUIRE(pair.RunUntil(
      [&] {
        return pair.Count<SessionClosed>(Side::kInitiator) == 1 &&
               pair.Count<SessionClosed>(Side::kAcceptor) == 1;
      },
      absl::Milliseconds(50)));
  // Bounded by the ack delays (1 ms each way), not by any longer timer.
  CHECK(pair.now() - t <= absl::Milliseconds(2));
  CHECK(Ok(pair));
}

TEST_CASE("send window: REPLAY_BUFFER_FULL, then Writable after the ack",
          "[session][flow]") {
  PairOptions o = Fast();
  o.initiator.replay_frames = 4;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  std::vector<std::byte> big(100, std::byte{1});
  int accepted = 0;
  absl::Status refused;
  for (int i = 0; i < 10 && refused.ok(); ++i) {
    auto id = pair.Submit(Side::kInitiator, "t");
    if (id.ok()) {
      ++accepted;
    } else {
      refused = id.status();
    }
  }
  CHECK(accepted == 4);
  CHECK(GetErrorCode(refused) == ErrorCode::kReplayBufferFull);
  pair.RunUntil([&] { return pair.Count<Writable>(Side::kInitiator) == 1; });
  CHECK(pair.initiator().replay_frames_in_use() == 0);
  CHECK(pair.Submit(Side::kInitiator, "t").ok());
  CHECK(Ok(pair));
}

TEST_CASE("drain: accepted tasks finish, crossing ones fail retryably",
          "[session][drain]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto first = StartTask(pair, "accepted");
  // A task is in flight when the acceptor starts draining.
  pair.link()->Stall(Dir::kToAcceptor, pair.now() + absl::Milliseconds(5));
  auto crossing = *pair.Submit(Side::kInitiator, "crossing");
  REQUIRE(pair.Close(Side::kAcceptor).ok());
  pair.RunUntil(
      [&] { return pair.Count<PeerDraining>(Side::kInitiator) == 1; });
  CHECK(pair.LastEvent<PeerDraining>(Side::kInitiator)->last_accepted == first);
  CHECK(GetErrorCode(pair.Submit(Side::kInitiator, "late").status()) ==
        ErrorCode::kPeerDraining);
  pair.RunFor(absl::Milliseconds(20));
  const auto* f = pair.LastEvent<TaskFailed>(Side::kInitiator);
  REQUIRE(f != nullptr);
  CHECK(f->task == crossing);
  CHECK(f->retryable);
  CHECK(f->status.code() == absl::StatusCode::kUnavailable);
  CHECK(GetErrorCode(f->status) == ErrorCode::kPeerDraining);
  CHECK(pair.Count<TaskReceived>(Side::kAcceptor) == 1);
  // The accepted task completes; then the session closes on both sides.
  REQUIRE(pair.Respond(Side::kAcceptor, first, "done", true).ok());
  pair.RunFor(absl::Milliseconds(50));
  CHECK(pair.FindTask<ResponseReceived>(Side::kInitiator, first).size() == 1);
  CHECK(pair.Count<SessionClosed>(Side::kAcceptor) == 1);
  CHECK(pair.Count<SessionClosed>(Side::kInitiator) == 1);
  CHECK(pair.initiator().state() == SessionState::kClosed);
  CHECK(Ok(pair));
}

// A lost bye (SPEC.md §15.3): the closer's bye, or the peer's answer, is
// lost with the connection. Both sides must still end closed, not failed,
// well within the resume window (60 s here).
TEST_CASE("a lost bye or a lost answer to it: both sides end closed",
          "[session][drain][resume]") {
  struct Case {
    const char* name;
    Side closer;
    Dir lost;  // the direction cut just before the close
  };
  const Case cases[] = {
      {"initiator closes, its bye is lost", Side::kInitiator, Dir::kToAcceptor},
      {"initiator closes, the answer is lost", Side::kInitiator,
       Dir::kToInitiator},
      {"acceptor closes, its bye is lost", Side::kAcceptor, Dir::kToInitiator},
      {"acceptor closes, the answer is lost", Side::kAcceptor,
       Dir::kToAcceptor},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    PairOptions o = Fast();
    // §14.1: neither the bye, its answer, the resume's CHALLENGE / PROOF
    // nor the bye sent again after the resume is a frame carrying nothing
    // new: the strictest no-op limit must not end the session.
    o.initiator.max_noop_frames = 1;
    o.acceptor.max_noop_frames = 1;
    SessionPair pair(o);
    REQUIRE(pair.Handshake());
    auto t = StartTask(pair, "one");
    REQUIRE(pair.Respond(Side::kAcceptor, t, "done", true).ok());
    pair.RunFor(absl::Milliseconds(20));  // everything acknowledged
    Session& acceptor = *pair.acceptor();
    REQUIRE(acceptor.replay_frames_in_use() == 0);
    REQUIRE(pair.initiator().replay_frames_in_use() == 0);
    testing::Link* link = pair.link();
    link->CutAfter(c.lost, link->delivered(c.lost));
    REQUIRE(pair.Close(c.closer).ok());
    const absl::Time start = pair.now();
    pair.RunUntil([&] {
      return pair.initiator().state() != SessionState::kEstablished &&
             pair.initiator().state() != SessionState::kDisconnected &&
             pair.initiator().state() != SessionState::kHandshaking &&
             acceptor.state() != SessionState::kEstablished &&
             acceptor.state() != SessionState::kDisconnected;
    });
    CHECK(pair.now() - start < absl::Seconds(5));
    CHECK(pair.initiator().state() == SessionState::kClosed);
    CHECK(acceptor.state() == SessionState::kClosed);
    CHECK(pair.Count<SessionClosed>(Side::kInitiator) == 1);
    CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
    size_t acceptor_failed = 0, acceptor_closed = 0;
    for (const auto& r : pair.events(Side::kAcceptor)) {
      if (r.session != &acceptor) continue;  // fresh resume sessions
      acceptor_failed += r.Is<SessionFailed>() ? 1u : 0u;
      acceptor_closed += r.Is<SessionClosed>() ? 1u : 0u;
    }
    CHECK(acceptor_failed == 0);
    CHECK(acceptor_closed == 1);
    CHECK(pair.problems().empty());
  }
}

TEST_CASE("a bye is answered before the closer reports SessionClosed",
          "[session][drain]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  pair.link()->Stall(Dir::kToAcceptor, pair.now() + absl::Milliseconds(50));
  REQUIRE(pair.Close(Side::kInitiator).ok());
  pair.RunFor(absl::Milliseconds(10));
  // The bye is on its way; no answer yet.
  CHECK(pair.initiator().state() == SessionState::kEstablished);
  CHECK(pair.Count<SessionClosed>(Side::kInitiator) == 0);
  pair.RunFor(absl::Milliseconds(100));
  CHECK(pair.Count<SessionClosed>(Side::kAcceptor) == 1);
  CHECK(pair.Count<SessionClosed>(Side::kInitiator) == 1);
  CHECK(pair.initiator().state() == SessionState::kClosed);
  CHECK(Ok(pair));
}

TEST_CASE("every authenticator resumes, with one CHALLENGE round",
          "[session][resume][auth]") {
  // SPEC.md 12.1, 16.2: methods 0 and 1 get a CHALLENGE for the resume
  // alone; method 2's own CHALLENGE carries both proofs.
  std::vector<std::shared_ptr<const Authenticator>> methods = {
      NoAuthenticator(), TokenAuthenticator("s3cret-token"),
      HmacAuthenticator("0123456789abcdef0123456789abcdef")};
  for (const auto& m : methods) {
    INFO(static_cast<int>(m->method()));
    PairOptions o = Fast();
    o.initiator.authenticator = m;
    o.acceptor.authenticator = m;
    o.split = testing::Split::Random(5);
    // §14.1: the resume's CHALLENGE and PROOF are not no-op frames.
    o.initiator.max_noop_frames = 1;
    o.acceptor.max_noop_frames = 1;
    SessionPair pair(o);
    REQUIRE(pair.Handshake());
    auto t = StartTask(pair, "one");
    for (uint64_t k = 1; k <= 3; ++k) {
      pair.Cut();
      pair.RunUntil([&] { return pair.initiator().counters().resumes == k; });
      REQUIRE(pair.initiator().state() == SessionState::kEstablished);
    }
    REQUIRE(pair.Respond(Side::kAcceptor, t, "done", true).ok());
    pair.RunFor(absl::Milliseconds(20));
    CHECK(pair.FindTask<ResponseReceived>(Side::kInitiator, t).size() == 1);
    CHECK(pair.acceptor()->counters().resumes == 3);
    CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
    CHECK(Ok(pair));
  }
}

TEST_CASE("a PROOF must carry resume_proof exactly when the HELLO resumes",
          "[session][resume]") {
  const absl::Time t0 = absl::UnixEpoch();
  auto proof_frame = [](bool with_proof) {
    InitMessage proof;
    proof.phase = InitPhase::kProof;
    if (with_proof) proof.resume_proof.emplace();
    std::vector<std::byte> payload;
    REQUIRE(AppendInit(proof, payload).ok());
    return Frame(MessageType::kAgentInit, 0, 0, payload,
                 payload.empty() ? 0 : kFlagChecksum);
  };
  SECTION("missing in a resume: MISSING_PARAM") {
    auto fresh = *Session::Create(AcceptorConfig(9), t0);
    REQUIRE(fresh->TransportConnected(t0).ok());
    // The resuming HELLO of FreshResume, without its PROOF.
    InitMessage hello = BaseHello();
    hello.session_id.emplace();
    hello.last_received = 0;
    std::vector<std::byte> payload;
    REQUIRE(AppendInit(hello, payload).ok());
    std::vector<std::byte> in(kPrefaceBytes.begin(), kPrefaceBytes.end());
    auto f = Frame(MessageType::kAgentInit, 0, 0, payload, kFlagChecksum);
    in.insert(in.end(), f.begin(), f.end());
    REQUIRE(fresh->Receive(in, t0).ok());
    absl::Status s = fresh->Receive(proof_frame(false), t0);
    CHECK(GetErrorCode(s) == ErrorCode::kMissingParam);
    CHECK_THAT(std::string(s.message()), Catch::Contains("resume_proof"));
    CHECK(fresh->state() == SessionState::kFailed);
  }
  SECTION("present in a new session's PROOF: UNEXPECTED_FRAME") {
    auto a = *Session::Create(
        AcceptorConfig(2, AgentRole::kAgent, HmacAuthenticator("k")), t0);
    auto i = *Session::Create(
        InitiatorConfig(1, AgentRole::kOrchestrator, HmacAuthenticator("k")),
        t0);
    REQUIRE(a->TransportConnected(t0).ok());
    REQUIRE(i->TransportConnected(t0).ok());
    REQUIRE(a->Receive(Drain(*i), t0).ok());  // HELLO -> CHALLENGE
    absl::Status s = a->Receive(proof_frame(true), t0);
    CHECK(GetErrorCode(s) == ErrorCode::kUnexpectedFrame);
    CHECK(s.code() == absl::StatusCode::kUnauthenticated);
  }
}

TEST_CASE("the initiator rejects a resumed WELCOME whose proof does not match",
          "[session][resume]") {
  // An acceptor that does not hold the token (a redirected reconnect)
  // cannot make the initiator drop its replay buffer (SPEC.md 16.2).
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto t = StartTask(pair, "one");
  pair.set_auto_dial(false);
  pair.Cut();
  pair.RunUntilIdleNow();
  Session& i = pair.initiator();
  const absl::Time now = pair.now();
  REQUIRE(i.TransportConnected(now).ok());
  (void)Drain(i);  // preface, HELLO
  Nonce ns;
  ns.fill(std::byte{0x42});
  InitMessage challenge;
  challenge.phase = InitPhase::kChallenge;
  challenge.nonce = ns;
  std::vector<std::byte> payload;
  REQUIRE(AppendInit(challenge, payload).ok());
  std::vector<std::byte> in(kPrefaceBytes.begin(), kPrefaceBytes.end());
  auto f = Frame(MessageType::kAgentInit, 0, 0, payload, kFlagChecksum);
  in.insert(in.end(), f.begin(), f.end());
  REQUIRE(i.Receive(in, now).ok());
  (void)Drain(i);  // PROOF
  const PeerInfo& p = i.peer();
  InitMessage welcome;
  welcome.phase = InitPhase::kWelcome;
  welcome.version = p.version;
  welcome.agent_id = p.agent_id;
  welcome.role = p.role;
  welcome.max_payload_bytes = p.max_payload_bytes;
  welcome.max_header_bytes = p.max_header_bytes;
  welcome.max_tasks = p.max_tasks;
  welcome.replay_bytes = p.replay_bytes;
  welcome.replay_frames = p.replay_frames;
  welcome.ping_interval_us = 1'000'000;
  welcome.nonce = ns;
  welcome.session_id = i.session_id();
  welcome.last_received = 1;  // "got your task": would free it
  welcome.resumed = true;
  welcome.resume_proof.emplace();  // not the HMAC of the token
  payload.clear();
  REQUIRE(AppendInit(welcome, payload).ok());
  absl::Status s = i.Receive(
      Frame(MessageType::kAgentInit, 0, 0, payload, kFlagChecksum), now);
  CHECK(GetErrorCode(s) == ErrorCode::kResumeRejected);
  CHECK(i.state() == SessionState::kFailed);
  CHECK(i.counters().resumes == 0);
  CHECK(pair.initiator().task_state(t) == TaskState::kNone);  // ended, told
}

TEST_CASE("a resumed connection starts its ack counting afresh",
          "[session][resume]") {
  // SPEC.md 16.2: the HELLO's last_received acknowledged everything the
  // initiator had received, so frames received on the old connection do
  // not count toward the next ack (here: every 2 frames, 32 / 16).
  PairOptions o = Fast();
  o.acceptor.replay_frames = 32;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  auto t = StartTask(pair, "one");
  REQUIRE(pair.Respond(Side::kAcceptor, t, "p1", false).ok());
  pair.RunUntilIdleNow();  // delivered; its ack waits for ack_delay
  REQUIRE(pair.FindTask<ResponseReceived>(Side::kInitiator, t).size() == 1);
  pair.Cut();
  pair.RunUntil([&] { return pair.initiator().counters().resumes == 1; });
  REQUIRE(pair.initiator().state() == SessionState::kEstablished);
  pair.RunUntilIdleNow();
  const uint64_t acks = pair.initiator().counters().acks_sent;
  REQUIRE(pair.Respond(Side::kAcceptor, t, "p2", false).ok());
  pair.RunUntilIdleNow();
  REQUIRE(pair.FindTask<ResponseReceived>(Side::kInitiator, t).size() == 2);
  // One frame on this connection: below the threshold, no ack yet.
  CHECK(pair.initiator().counters().acks_sent == acks);
  pair.RunFor(absl::Milliseconds(5));  // ack_delay
  CHECK(pair.initiator().counters().acks_sent == acks + 1);
  CHECK(Ok(pair));
}

TEST_CASE(
    "a stream-0 AGENT_ERROR ends the connection for a connection-scoped "
    "detail and the session otherwise",
    "[session][resume]") {
  struct Case {
    const char* name;
    ErrorCode detail;
    absl::StatusCode code;
    bool session_ends;
  };
  const Case cases[] = {
      {"framing error", ErrorCode::kHeaderCrcMismatch,
       absl::StatusCode::kDataLoss, false},
      {"peer unresponsive", ErrorCode::kPeerUnresponsive,
       absl::StatusCode::kDeadlineExceeded, false},
      // After the handshake PAYLOAD_TOO_LARGE has session scope (15.2).
      {"payload too large", ErrorCode::kPayloadTooLarge,
       absl::StatusCode::kResourceExhausted, true},
      {"session error", ErrorCode::kTaskIdReused,
       absl::StatusCode::kInvalidArgument, true},
      {"no detail", ErrorCode::kOk, absl::StatusCode::kInternal, true},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    SessionPair pair(Fast());
    REQUIRE(pair.Handshake());
    auto t = StartTask(pair, "one");
    ErrorMessage m;
    m.code = c.code;
    m.message = "from the peer";
    m.detail = c.detail;
    std::vector<std::byte> payload;
    REQUIRE(AppendError(m, payload).ok());
    absl::Status s =
        Inject(pair, Side::kInitiator,
               Frame(MessageType::kAgentError, 0, 0, payload, kFlagChecksum));
    CHECK(s.code() == c.code);
    pair.RunFor(absl::Milliseconds(200));
    if (c.session_ends) {
      CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 1);
    } else {
      CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
      CHECK(pair.Count<ConnectionLost>(Side::kInitiator) == 1);
      CHECK(pair.initiator().counters().resumes == 1);
      CHECK(pair.initiator().task_state(t) == TaskState::kSubmitted);
      CHECK(Ok(pair));
    }
  }
}

TEST_CASE("close with nothing open: drain and bye share one SYNC",
          "[session][drain]") {
  // SPEC.md §15.3: both forms are valid; this one is what a side that
  // closes with nothing open sends, and the peer must accept it.
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  std::vector<std::byte> out;
  pair.Do(Side::kAcceptor, [&](Session& s, absl::Time now) {
    REQUIRE(s.Close(now).ok());
    for (auto sp = s.PollTransmit(); !sp.empty(); sp = s.PollTransmit()) {
      out.insert(out.end(), sp.begin(), sp.end());
    }
  });
  FrameDecoder d(DecoderOptions{.expect_preface = false});
  auto step = d.Decode(out);
  REQUIRE(step.ok());
  REQUIRE(step->kind == DecodeStep::Kind::kFrame);
  REQUIRE(step->frame.type() == MessageType::kAgentSync);
  auto m = ParseSync(step->frame.payload());
  REQUIRE(m.ok());
  CHECK(m->drain == std::optional<uint64_t>(0));
  CHECK(m->bye);
  // The peer takes the shared form as drain, then bye, and answers the bye
  // with its own (§15.3); both end closed after the exchange.
  const std::vector<std::byte> frame(
      out.begin(), out.begin() + static_cast<std::ptrdiff_t>(step->consumed));
  CHECK(Inject(pair, Side::kInitiator, frame).ok());
  CHECK(pair.Count<PeerDraining>(Side::kInitiator) == 1);
  CHECK(pair.Count<SessionClosed>(Side::kInitiator) == 1);
  CHECK(pair.initiator().state() == SessionState::kClosed);
  CHECK(pair.Count<SessionClosed>(Side::kAcceptor) == 0);  // awaits the answer
  pair.RunFor(absl::Milliseconds(20));
  CHECK(pair.Count<SessionClosed>(Side::kAcceptor) == 1);
  CHECK(pair.acceptor()->state() == SessionState::kClosed);
  CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
  CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
}

// ---------------------------------------------------------------------------
// Heartbeats and dead peers

TEST_CASE("heartbeats measure RTT at the negotiated interval",
          "[session][sync]") {
  PairOptions o = Fast();
  o.initiator.ping_interval = absl::Milliseconds(10);  // wants 10 ms...
  o.acceptor.min_peer_ping_interval = absl::Milliseconds(200);  // ...gets 200
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.RunFor(absl::Seconds(2));
  const auto& c = pair.initiator().counters();
  CHECK(c.pings_sent >= 9);
  CHECK(c.pings_sent <= 11);
  CHECK(c.pongs_received >= 9);
  CHECK(pair.acceptor()->state() == SessionState::kEstablished);
  CHECK(pair.acceptor()->counters().errors_by_code[117] == 0);
  CHECK(Ok(pair));
}

// Runs `side`'s timers at its next deadline and returns the SYNC payloads
// it writes then (the harness would otherwise deliver them unseen).
std::vector<SyncMessage> SyncsAtNextDeadline(SessionPair& pair, Side side) {
  pair.clock().AdvanceTo(pair.session(side).NextDeadline());
  std::vector<std::byte> out;
  pair.Do(side, [&](Session& s, absl::Time now) {
    s.HandleTimeout(now);
    for (auto sp = s.PollTransmit(); !sp.empty(); sp = s.PollTransmit()) {
      out.insert(out.end(), sp.begin(), sp.end());
    }
  });
  std::vector<SyncMessage> syncs;
  FrameDecoder d(DecoderOptions{.expect_preface = false});
  absl::Span<const std::byte> rest(out);
  while (!rest.empty()) {
    auto step = d.Decode(rest);
    REQUIRE(step.ok());
    REQUIRE(step->kind == DecodeStep::Kind::kFrame);
    if (step->frame.type() == MessageType::kAgentSync) {
      auto m = ParseSync(step->frame.payload());
      REQUIRE(m.ok());
      syncs.push_back(*m);
    }
    rest.remove_prefix(step->consumed);
  }
  return syncs;
}

TEST_CASE("a SYNC omits ack until a sequenced frame was accepted",
          "[session][sync]") {
  // SPEC.md §14.2: no `ack = 0` before anything was received.
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto first = SyncsAtNextDeadline(pair, Side::kAcceptor);
  REQUIRE(first.size() == 1);
  CHECK(first[0].ping.has_value());
  CHECK(!first[0].ack.has_value());
  StartTask(pair, "job");
  pair.RunFor(absl::Milliseconds(10));
  auto later = SyncsAtNextDeadline(pair, Side::kAcceptor);
  REQUIRE(!later.empty());
  CHECK(later.back().ack == std::optional<uint64_t>(1));
  CHECK(Ok(pair));
}

TEST_CASE("a ping flood ends the session with PING_FLOOD", "[session][sync]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  for (int i = 0; i < 4; ++i) {
    SyncMessage m;
    m.ping = static_cast<uint64_t>(i);
    (void)Inject(
        pair, Side::kAcceptor,
        Frame(MessageType::kAgentSync, 0, 0, SyncPayload(m), kFlagChecksum));
  }
  const auto* failed = pair.LastEvent<SessionFailed>(Side::kAcceptor);
  REQUIRE(failed != nullptr);
  CHECK(GetErrorCode(failed->status) == ErrorCode::kPingFlood);
}

TEST_CASE(
    "silence beyond dead_peer_timeout ends the connection, then the "
    "session resumes",
    "[session][sync][resume]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto id = StartTask(pair, "work");
  pair.link()->Stall(Dir::kToAcceptor, absl::InfiniteFuture());
  pair.link()->Stall(Dir::kToInitiator, absl::InfiniteFuture());
  pair.RunUntil(
      [&] { return pair.Count<ConnectionLost>(Side::kInitiator) == 1; },
      absl::Seconds(10));
  const auto* lost = pair.LastEvent<ConnectionLost>(Side::kInitiator);
  REQUIRE(lost != nullptr);
  CHECK(GetErrorCode(lost->status) == ErrorCode::kPeerUnresponsive);
  pair.RunUntil([&] {
    return pair.initiator().state() == SessionState::kEstablished &&
           pair.Count<Established>(Side::kInitiator) == 2;
  });
  CHECK(pair.LastEvent<Established>(Side::kInitiator)->resumed);
  REQUIRE(pair.Respond(Side::kAcceptor, id, "done", true).ok());
  pair.RunFor(absl::Milliseconds(50));
  CHECK(pair.FindTask<ResponseReceived>(Side::kInitiator, id).size() == 1);
  CHECK(Ok(pair));
}

// ---------------------------------------------------------------------------
// Resumption

// Runs a fixed conversation (tasks with streamed responses), cutting the
// connection once when `cut_dir` has delivered `cut_at` bytes, and checks
// that everything arrived exactly once and in order.
void RunCutScenario(Dir cut_dir, uint64_t cut_at, size_t split) {
  PairOptions o = Fast();
  o.split = split == 0 ? testing::Split::Whole() : testing::Split::Fixed(split);
  SessionPair pair(o);
  pair.on_event = [](SessionPair& p, const testing::EventRecord& r) {
    if (r.side == Side::kAcceptor && r.Is<TaskReceived>()) {
      const TaskId id = r.As<TaskReceived>().task;
      (void)p.Respond(Side::kAcceptor, id, absl::StrCat("a:", r.payload),
                      false);
      (void)p.Respond(Side::kAcceptor, id, absl::StrCat("b:", r.payload), true);
    }
  };
  REQUIRE(pair.Handshake());
  pair.link()->CutAfter(cut_dir, cut_at);
  constexpr int kTasks = 6;
  for (int i = 0; i < kTasks; ++i) {
    REQUIRE(pair.Submit(Side::kInitiator, absl::StrCat("t", i)).ok());
  }
  pair.RunUntil(
      [&] {
        return pair.Count<ResponseReceived>(Side::kInitiator) == 2 * kTasks;
      },
      absl::Seconds(30));
  INFO("cut " << (cut_dir == Dir::kToAcceptor ? "to acceptor" : "to initiator")
              << " after " << cut_at << " bytes, split " << split);
  // Every task received once, in order; every response once, in order.
  auto received = pair.Find<TaskReceived>(Side::kAcceptor);
  REQUIRE(received.size() == kTasks);
  for (int i = 0; i < kTasks; ++i) {
    CHECK(received[static_cast<size_t>(i)]->payload == absl::StrCat("t", i));
  }
  auto responses = pair.Find<ResponseReceived>(Side::kInitiator);
  REQUIRE(responses.size() == 2 * kTasks);
  for (int i = 0; i < kTasks; ++i) {
    const std::string t = absl::StrCat("t", i);
    CHECK(responses[2 * static_cast<size_t>(i)]->payload ==
          absl::StrCat("a:", t));
    CHECK(responses[2 * static_cast<size_t>(i) + 1]->payload ==
          absl::StrCat("b:", t));
  }
  CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
  CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
  CHECK(Ok(pair));
}

TEST_CASE(
    "a cut at any byte, in either direction, loses and duplicates "
    "nothing",
    "[session][resume]") {
  // Bytes the conversation moves after the handshake, per direction, are
  // a few hundred; cut at every one of them.
  for (Dir d : {Dir::kToAcceptor, Dir::kToInitiator}) {
    for (uint64_t at = 0; at < 520; at += 1) {
      // Cut points count from the start of the link, handshake included.
      RunCutScenario(d, at, at % 3 == 0 ? 0 : (at % 7) + 1);
    }
  }
}

TEST_CASE("resume after many cuts with random splits", "[session][resume]") {
  PairOptions o = Fast();
  o.split = testing::Split::Random(40);
  SessionPair pair(o);
  pair.on_event = [](SessionPair& p, const testing::EventRecord& r) {
    if (r.side == Side::kAcceptor && r.Is<TaskReceived>()) {
      (void)p.Respond(Side::kAcceptor, r.As<TaskReceived>().task, r.payload,
                      true);
    }
  };
  REQUIRE(pair.Handshake());
  testing::SimRandom rng(7);
  int submitted = 0;
  for (int round = 0; round < 40; ++round) {
    for (int k = 0; k < 10; ++k) {
      if (pair.Submit(Side::kInitiator, std::to_string(submitted)).ok()) {
        ++submitted;
      }
    }
    pair.link()->CutAfter(
        rng.Chance(1, 2) ? Dir::kToAcceptor : Dir::kToInitiator,
        pair.link()->delivered(Dir::kToAcceptor) + rng.Between(0, 400));
    pair.RunFor(absl::Milliseconds(200));
  }
  pair.RunUntil(
      [&] {
        return pair.Count<ResponseReceived>(Side::kInitiator) ==
               static_cast<size_t>(submitted);
      },
      absl::Seconds(60));
  auto responses = pair.Find<ResponseReceived>(Side::kInitiator);
  REQUIRE(responses.size() == static_cast<size_t>(submitted));
  for (int i = 0; i < submitted; ++i) {
    CHECK(responses[static_cast<size_t>(i)]->payload == std::to_string(i));
  }
  CHECK(pair.initiator().counters().resumes >= 10);
  CHECK(Ok(pair));
}

TEST_CASE("a flipped bit is caught by the checksums; the session resumes",
          "[session][resume]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  for (uint64_t off = 0; off < 40; ++off) {
    pair.link()->CorruptAt(Dir::kToInitiator,
                           pair.link()->delivered(Dir::kToInitiator) + off,
                           std::byte{0x10});
    auto id = *pair.Submit(Side::kInitiator, "q");
    pair.RunUntil([&] {
      return !pair.FindTask<TaskReceived>(Side::kAcceptor, id).empty();
    });
    REQUIRE(pair.Respond(Side::kAcceptor, id, "payload-" + std::to_string(off),
                         true)
                .ok());
    pair.RunUntil([&] {
      return !pair.FindTask<ResponseReceived>(Side::kInitiator, id).empty();
    });
    auto r = pair.FindTask<ResponseReceived>(Side::kInitiator, id);
    REQUIRE(r.size() == 1);
    CHECK(r[0]->payload == "payload-" + std::to_string(off));
  }
  CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
  CHECK(pair.initiator().counters().resumes >= 1);
  CHECK(Ok(pair));
}

TEST_CASE("reconnect backoff grows by 1.6 with bounded jitter",
          "[session][resume]") {
  PairOptions o;
  o.initiator.backoff.initial = absl::Seconds(1);
  o.initiator.resume_window = absl::Hours(1);
  o.acceptor.resume_window = absl::Hours(1);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.set_dials_fail(true);
  pair.Cut();
  pair.RunFor(absl::Seconds(400));
  auto due = pair.Find<ReconnectDue>(Side::kInitiator);
  REQUIRE(due.size() >= 6);
  absl::Time prev = pair.Find<ConnectionLost>(Side::kInitiator)[0]->at;
  for (size_t n = 0; n < due.size(); ++n) {
    const double expect =
        std::min(std::pow(1.6, static_cast<double>(n)), 120.0);
    const double got = absl::ToDoubleSeconds(due[n]->at - prev);
    CHECK(got >= expect * 0.8 - 1e-6);
    CHECK(got <= expect * 1.2 + 1e-6);
    prev = due[n]->at;
  }
}

TEST_CASE("an expired session fails loudly on both sides, listing its tasks",
          "[session][resume]") {
  PairOptions o = Fast();
  o.acceptor.resume_window = absl::Seconds(2);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  auto t1 = *pair.Submit(Side::kInitiator, "one");
  auto t2 = *pair.Submit(Side::kInitiator, "two");
  pair.RunUntil([&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 2; });
  pair.set_dials_fail(true);
  pair.Cut();
  pair.RunFor(absl::Seconds(3));
  // Acceptor: expired after its window, each task ended, the list given.
  const auto* af = pair.LastEvent<SessionFailed>(Side::kAcceptor);
  REQUIRE(af != nullptr);
  CHECK(GetErrorCode(af->status) == ErrorCode::kSessionExpired);
  CHECK(af->status.code() == absl::StatusCode::kDataLoss);
  CHECK(af->affected_tasks == std::vector<TaskId>{t1, t2});
  CHECK(pair.Count<TaskCancelled>(Side::kAcceptor) == 2);
  // Initiator: its window (announced by the acceptor) passed too.
  pair.RunFor(absl::Seconds(2));
  const auto* inf = pair.LastEvent<SessionFailed>(Side::kInitiator);
  REQUIRE(inf != nullptr);
  CHECK(GetErrorCode(inf->status) == ErrorCode::kSessionExpired);
  CHECK(inf->affected_tasks == std::vector<TaskId>{t1, t2});
  CHECK(pair.Count<TaskFailed>(Side::kInitiator) == 2);
}

TEST_CASE(
    "resuming a session the acceptor no longer has fails with "
    "SESSION_EXPIRED",
    "[session][resume]") {
  PairOptions o = Fast();
  o.acceptor.resume_window = absl::Seconds(1);
  o.initiator.resume_window = absl::Seconds(1);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  auto t = StartTask(pair, "one");
  // The acceptor forgets the session (expiry), but the initiator believes
  // the window is longer (a half-open connection it never noticed).
  pair.Cut(/*notify_initiator=*/false, /*notify_acceptor=*/true);
  pair.RunFor(absl::Seconds(2));
  REQUIRE(pair.Count<SessionFailed>(Side::kAcceptor) == 1);
  pair.Do(Side::kInitiator, [](Session& s, absl::Time now) {
    s.TransportLost(absl::UnavailableError("noticed at last"), now);
  });
  pair.RunFor(absl::Seconds(1));
  const auto* f = pair.LastEvent<SessionFailed>(Side::kInitiator);
  REQUIRE(f != nullptr);
  CHECK(GetErrorCode(f->status) == ErrorCode::kSessionExpired);
  CHECK(f->status.code() == absl::StatusCode::kDataLoss);
  CHECK(f->affected_tasks == std::vector<TaskId>{t});
}

// The stream-0 AGENT_ERROR a failed resume sends on the new connection
// (after the preface), and that the connection closes.
ErrorMessage ResumeAnswer(Session& fresh, std::vector<std::byte>& out) {
  out = Drain(fresh);
  CHECK(fresh.ConnectionClosing());
  CHECK(fresh.state() == SessionState::kFailed);
  FrameDecoder d(DecoderOptions{.expect_preface = false});
  auto step = d.Decode(out);
  REQUIRE(step.ok());
  REQUIRE(step->kind == DecodeStep::Kind::kFrame);
  CHECK(step->frame.type() == MessageType::kAgentError);
  CHECK(step->frame.stream_id() == 0);
  CHECK(step->consumed == out.size());  // then closed
  auto err = ParseError(step->frame.payload());
  REQUIRE(err.ok());
  return *err;
}

TEST_CASE(
    "a failed resume is answered on the new connection and never harms the "
    "established session",
    "[session][resume]") {
  struct Case {
    const char* name;
    ErrorCode want;
    absl::StatusCode code;
    bool wrong_token;
    uint64_t last_received;  // kOwn: the initiator's own
    std::function<void(InitMessage&)> edit;
  };
  constexpr uint64_t kOwn = ~uint64_t{0};
  const std::vector<Case> cases = {
      // Frames the acceptor freed (acknowledged) cannot be replayed.
      {"stale last_received", ErrorCode::kResumeGap,
       absl::StatusCode::kDataLoss, false, 0, nullptr},
      {"last_received beyond what was sent", ErrorCode::kBadAck,
       absl::StatusCode::kInvalidArgument, false, 99, nullptr},
      // Indistinguishable from an unknown session (SPEC.md 16.2).
      {"wrong token", ErrorCode::kSessionExpired, absl::StatusCode::kDataLoss,
       true, kOwn, nullptr},
      {"another agent_id", ErrorCode::kResumeRejected,
       absl::StatusCode::kPermissionDenied, false, kOwn,
       [](InitMessage& m) { m.agent_id = "impostor"; }},
      {"lower max_payload_bytes", ErrorCode::kResumeRejected,
       absl::StatusCode::kPermissionDenied, false, kOwn,
       [](InitMessage& m) { m.max_payload_bytes = 100; }},
      {"lower max_tasks", ErrorCode::kResumeRejected,
       absl::StatusCode::kPermissionDenied, false, kOwn,
       [](InitMessage& m) { m.max_tasks = 1; }},
  };
  for (bool connected : {true, false}) {
    for (const Case& c : cases) {
      INFO(c.name << (connected ? ", session connected" : ", disconnected"));
      SessionPair pair(Fast());
      REQUIRE(pair.Handshake());
      auto t = StartTask(pair, "one");
      REQUIRE(pair.Respond(Side::kAcceptor, t, "partial", false).ok());
      pair.RunFor(absl::Milliseconds(20));  // acked: the acceptor freed it
      Session& acceptor = *pair.acceptor();
      REQUIRE(acceptor.replay_frames_in_use() == 0);
      REQUIRE(acceptor.last_sent() == 1);
      if (!connected) {
        pair.set_auto_dial(false);
        pair.Cut();
        pair.RunUntilIdleNow();
        REQUIRE(acceptor.state() == SessionState::kDisconnected);
      }
      const SessionState before = acceptor.state();
      const size_t failed_before = pair.Count<SessionFailed>(Side::kAcceptor);
      ResumeToken token = pair.initiator().resume_token();
      if (c.wrong_token) token[0] ^= std::byte{1};
      const uint64_t last = c.last_received == kOwn
                                ? pair.initiator().last_received()
                                : c.last_received;
      auto fresh =
          FreshResume(pair.now(), acceptor.session_id(), token, last, c.edit);
      absl::Status s =
          detail::SessionHandover::Adopt(acceptor, *fresh, false, pair.now());
      CHECK(GetErrorCode(s) == c.want);
      CHECK(s.code() == c.code);
      std::vector<std::byte> out;
      const ErrorMessage answer = ResumeAnswer(*fresh, out);
      CHECK(answer.detail == c.want);
      CHECK(answer.code == c.code);
      CHECK(!answer.message.empty());
      // The established session: exactly as it was.
      CHECK(acceptor.state() == before);
      CHECK(acceptor.PollEvent() == std::nullopt);
      CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == failed_before);
      CHECK(acceptor.task_state(t) == TaskState::kRunning);
      CHECK(acceptor.counters().resumes == 0);
      if (connected) {
        // ...and still serves its real peer.
        REQUIRE(pair.Respond(Side::kAcceptor, t, "done", true).ok());
        pair.RunFor(absl::Milliseconds(20));
        CHECK(pair.FindTask<ResponseReceived>(Side::kInitiator, t).size() == 2);
      } else {
        // ...and the real initiator still resumes it.
        pair.set_auto_dial(true);
        pair.Connect();
        pair.RunUntil([&] { return acceptor.counters().resumes == 1; });
        CHECK(acceptor.state() == SessionState::kEstablished);
        REQUIRE(pair.Respond(Side::kAcceptor, t, "done", true).ok());
        pair.RunFor(absl::Milliseconds(20));
        CHECK(!pair.FindTask<ResponseReceived>(Side::kInitiator, t).empty());
      }
      CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
    }
  }
}

TEST_CASE("a bad resume proof and an unknown session get the same answer",
          "[session][resume]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  Session& acceptor = *pair.acceptor();
  ResumeToken wrong = pair.initiator().resume_token();
  wrong[15] ^= std::byte{0x80};
  const uint64_t last = pair.initiator().last_received();
  auto bad_proof = FreshResume(pair.now(), acceptor.session_id(), wrong, last);
  CHECK(!detail::SessionHandover::Adopt(acceptor, *bad_proof, false, pair.now())
             .ok());
  auto unknown = FreshResume(pair.now(), acceptor.session_id(),
                             pair.initiator().resume_token(), last);
  detail::SessionHandover::RejectUnknown(*unknown, pair.now());
  std::vector<std::byte> a, b;
  const ErrorMessage ea = ResumeAnswer(*bad_proof, a);
  const ErrorMessage eb = ResumeAnswer(*unknown, b);
  CHECK(ea.detail == ErrorCode::kSessionExpired);
  CHECK(eb.detail == ErrorCode::kSessionExpired);
  CHECK(a == b);  // byte for byte
  CHECK(acceptor.state() == SessionState::kEstablished);
}

TEST_CASE("the resume token never crosses the wire after the first WELCOME",
          "[session][resume]") {
  // Every byte both sides write over a handshake and two resumes: the
  // token's 16 bytes appear once (the first WELCOME), never again, and the
  // token stays the same (not rotated, SPEC.md 16.2).
  const absl::Time t0 = absl::UnixEpoch();
  auto a = *Session::Create(AcceptorConfig(), t0);
  auto i = *Session::Create(InitiatorConfig(), t0);
  std::vector<std::byte> wire;
  auto move = [&](Session& from, Session& to) {
    const std::vector<std::byte> bytes = Drain(from);
    wire.insert(wire.end(), bytes.begin(), bytes.end());
    REQUIRE(to.Receive(bytes, t0).ok());
    while (to.PollEvent()) {
    }
  };
  REQUIRE(a->TransportConnected(t0).ok());
  REQUIRE(i->TransportConnected(t0).ok());
  move(*i, *a);
  move(*a, *i);
  REQUIRE(i->state() == SessionState::kEstablished);
  const ResumeToken token = i->resume_token();
  auto count = [&] {
    int n = 0;
    for (auto it = wire.begin();
         (it = std::search(it, wire.end(), token.begin(), token.end())) !=
         wire.end();
         ++it) {
      ++n;
    }
    return n;
  };
  CHECK(count() == 1);
  std::vector<std::unique_ptr<Session>> fresh;
  for (uint64_t k = 0; k < 2; ++k) {
    i->TransportLost(absl::UnavailableError("cut"), t0);
    a->TransportLost(absl::UnavailableError("cut"), t0);
    fresh.push_back(*Session::Create(AcceptorConfig(20 + k), t0));
    Session& f = *fresh.back();
    REQUIRE(i->TransportConnected(t0).ok());
    REQUIRE(f.TransportConnected(t0).ok());
    move(*i, f);  // HELLO
    move(f, *i);  // CHALLENGE
    move(*i, f);  // PROOF -> ResumeRequested
    REQUIRE(detail::SessionHandover::Adopt(*a, f, false, t0).ok());
    move(*a, *i);  // WELCOME
    REQUIRE(i->state() == SessionState::kEstablished);
    REQUIRE(a->state() == SessionState::kEstablished);
  }
  CHECK(i->counters().resumes == 2);
  CHECK(count() == 1);
  CHECK(i->resume_token() == token);
  CHECK(a->resume_token() == token);
}

TEST_CASE(
    "a resume with a stale last_received is answered with RESUME_GAP named "
    "on the wire",
    "[session][resume]") {
  // The initiator's session lost track of what it received (as after a
  // restart from old persisted state): the acceptor's answer says why.
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto t = StartTask(pair, "one");
  REQUIRE(pair.Respond(Side::kAcceptor, t, "partial", false).ok());
  pair.RunFor(absl::Milliseconds(20));
  Session& acceptor = *pair.acceptor();
  auto fresh = FreshResume(pair.now(), acceptor.session_id(),
                           pair.initiator().resume_token(), 0);
  REQUIRE(!detail::SessionHandover::Adopt(acceptor, *fresh, false, pair.now())
               .ok());
  std::vector<std::byte> out;
  const ErrorMessage answer = ResumeAnswer(*fresh, out);
  CHECK(answer.detail == ErrorCode::kResumeGap);
  CHECK_THAT(std::string(answer.message),
             Catch::Contains("last_received 0") && Catch::Contains("1"));
  CHECK(acceptor.state() == SessionState::kEstablished);
}

// ---------------------------------------------------------------------------
// Protocol violations by the peer

TEST_CASE("protocol violations end the session with their specific code",
          "[session][violations]") {
  struct Case {
    const char* name;
    ErrorCode want;
    std::function<std::vector<std::byte>(Session&)> frame;
  };
  std::vector<Case> cases = {
      {"response for a task never submitted", ErrorCode::kUnknownTask,
       [](Session& i) {
         return Frame(MessageType::kAgentResponse, 99, i.last_received() + 1);
       }},
      {"sequence gap", ErrorCode::kSequenceGap,
       [](Session& i) {
         return Frame(MessageType::kAgentResponse, 1, i.last_received() + 2);
       }},
      {"connection frame with a sequence", ErrorCode::kSequenceGap,
       [](Session&) { return Frame(MessageType::kAgentSync, 0, 5); }},
      {"ack beyond what was sent", ErrorCode::kBadAck,
       [](Session&) {
         SyncMessage m;
         m.ack = 1000;
         return Frame(MessageType::kAgentSync, 0, 0, SyncPayload(m),
                      kFlagChecksum);
       }},
      {"INIT after the handshake", ErrorCode::kUnexpectedFrame,
       [](Session&) { return Frame(MessageType::kAgentInit, 0, 0); }},
      {"task sent to an orchestrator", ErrorCode::kUnexpectedFrame,
       [](Session& i) {
         return Frame(MessageType::kAgentTask, 2, i.last_received() + 1);
       }},
      {"response payload above the decoder's limit (SPEC 15.2)",
       ErrorCode::kPayloadTooLarge,
       [](Session& i) {
         // Only the header and a few payload bytes are needed: the decoder
         // rejects the length once the header's CRC matched.
         const size_t over = i.config().max_payload_bytes + 1;
         std::vector<std::byte> f =
             Frame(MessageType::kAgentResponse, 1, i.last_received() + 1,
                   std::vector<std::byte>(over), kFlagFinal);
         f.resize(f.size() - over + 16);
         return f;
       }},
      {"malformed SYNC payload", ErrorCode::kMalformedPayload,
       [](Session&) {
         std::vector<std::byte> bad = {std::byte{0x01}, std::byte{0x05}};
         return Frame(MessageType::kAgentSync, 0, 0, bad, kFlagChecksum);
       }},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    SessionPair pair(Fast());
    REQUIRE(pair.Handshake());
    auto t = *pair.Submit(Side::kInitiator, "x");
    pair.RunUntilIdleNow();
    Session& i = pair.initiator();
    absl::Status s = Inject(pair, Side::kInitiator, c.frame(i));
    CHECK(GetErrorCode(s) == c.want);
    const auto* failed = pair.LastEvent<SessionFailed>(Side::kInitiator);
    REQUIRE(failed != nullptr);
    CHECK(failed->affected_tasks == std::vector<TaskId>{t});
    CHECK(pair.FindTask<TaskFailed>(Side::kInitiator, t).size() == 1);
    // The peer was told (stream-0 AGENT_ERROR) and failed too.
    pair.RunFor(absl::Milliseconds(10));
    CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 1);
  }
}

// Established, Receive decodes the frames of its input a batch at a time
// (FrameDecoder::DecodeBatch) before handling them one by one: the handling
// must be that of frames decoded alone, and an error must name the stream
// offset of its own frame, not of the batch's end.
TEST_CASE(
    "frames received at once are handled in order; an error names its "
    "frame's offset",
    "[session][violations]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  const TaskId t = *pair.Submit(Side::kInitiator, "stream");
  pair.RunUntilIdleNow();
  Session& i = pair.initiator();
  const uint64_t start = i.counters().bytes_in;  // one connection so far
  const uint64_t seq = i.last_received();
  std::vector<std::byte> input;
  std::vector<uint64_t> offsets;
  for (uint64_t k = 0; k < 40; ++k) {
    offsets.push_back(start + input.size());
    // Frame 35 skips a sequence number: the decoder accepts it (same
    // layout, so inside the batch's run), the session must not.
    const std::vector<std::byte> f =
        Frame(MessageType::kAgentResponse, t, seq + 1 + k + (k >= 35 ? 1 : 0));
    input.insert(input.end(), f.begin(), f.end());
  }
  absl::Status s = Inject(pair, Side::kInitiator, input);
  CHECK(GetErrorCode(s) == ErrorCode::kSequenceGap);
  CHECK_THAT(
      std::string(s.message()),
      Catch::Contains(absl::StrCat("sequence ", seq + 37, " at stream offset ",
                                   offsets[35], "; expected ", seq + 36)));
  CHECK(pair.FindTask<ResponseReceived>(Side::kInitiator, t).size() == 35);
}

TEST_CASE("executor-side violations: reused task id, task limit",
          "[session][violations]") {
  SECTION("TASK_ID_REUSED") {
    SessionPair pair(Fast());
    REQUIRE(pair.Handshake());
    REQUIRE(pair.Submit(Side::kInitiator, "x").ok());
    pair.RunUntilIdleNow();
    Session& a = *pair.acceptor();
    absl::Status s =
        Inject(pair, Side::kAcceptor,
               Frame(MessageType::kAgentTask, 1, a.last_received() + 1));
    CHECK(GetErrorCode(s) == ErrorCode::kTaskIdReused);
  }
  SECTION("TASK_LIMIT_EXCEEDED") {
    PairOptions o = Fast();
    o.acceptor.max_tasks = 2;
    SessionPair pair(o);
    REQUIRE(pair.Handshake());
    pair.RunUntilIdleNow();
    Session& a = *pair.acceptor();
    absl::Status s;
    for (uint64_t id = 1; id <= 5 && s.ok(); id += 2) {
      s = Inject(pair, Side::kAcceptor,
                 Frame(MessageType::kAgentTask, id, a.last_received() + 1));
    }
    CHECK(GetErrorCode(s) == ErrorCode::kTaskLimitExceeded);
  }
  SECTION("a duplicate sequenced frame is discarded, not delivered twice") {
    SessionPair pair(Fast());
    REQUIRE(pair.Handshake());
    REQUIRE(pair.Submit(Side::kInitiator, "x").ok());
    pair.RunUntilIdleNow();
    const auto* rec = pair.Last<TaskReceived>(Side::kAcceptor);
    REQUIRE(rec != nullptr);
    CHECK(Inject(pair, Side::kAcceptor, rec->frame_bytes).ok());
    CHECK(pair.Count<TaskReceived>(Side::kAcceptor) == 1);
    CHECK(pair.acceptor()->counters().duplicates_discarded == 1);
  }
}

TEST_CASE("a peer that never acknowledges cannot grow the replay buffer",
          "[session][violations]") {
  // Task + cancel, over and over, never acking: each cancel makes the
  // executor send a terminal AGENT_ERROR outside the send window. The slot
  // stays taken until that error is acknowledged (SPEC.md §15.1), so the
  // attack ends at max_tasks with TASK_LIMIT_EXCEEDED, memory bounded.
  PairOptions o = Fast();
  o.acceptor.max_tasks = 4;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  Session& a = *pair.acceptor();
  absl::Status s;
  uint64_t id = 1;
  for (int round = 0; round < 100 && s.ok(); ++round, id += 2) {
    s = Inject(pair, Side::kAcceptor,
               Frame(MessageType::kAgentTask, id, a.last_received() + 1));
    if (!s.ok()) break;
    s = Inject(pair, Side::kAcceptor,
               Frame(MessageType::kAgentCancel, id, a.last_received() + 1));
    CHECK(a.replay_frames_in_use() <= 4);
  }
  CHECK(GetErrorCode(s) == ErrorCode::kTaskLimitExceeded);
  CHECK(id == 9);  // the fifth task
}

TEST_CASE("Receive refuses to run while events pointing into input are queued",
          "[session][api]") {
  const absl::Time t0 = absl::UnixEpoch();
  auto a = *Session::Create(AcceptorConfig(), t0);
  auto i = *Session::Create(InitiatorConfig(), t0);
  auto move = [&](Session& from, Session& to) {
    std::vector<std::byte> bytes;
    for (auto s = from.PollTransmit(); !s.empty(); s = from.PollTransmit()) {
      bytes.insert(bytes.end(), s.begin(), s.end());
    }
    return to.Receive(bytes, t0);
  };
  REQUIRE(a->TransportConnected(t0).ok());
  REQUIRE(i->TransportConnected(t0).ok());
  REQUIRE(move(*i, *a).ok());  // HELLO -> Established queued on `a`
  // An Established event holds no views: it does not block Receive.
  CHECK(a->Receive({}, t0).ok());
  REQUIRE(move(*a, *i).ok());
  while (i->PollEvent()) {
  }
  REQUIRE(i->SubmitTask(AsBytes("work"), {}, t0).ok());
  REQUIRE(move(*i, *a).ok());  // TaskReceived queued, pointing into input
  absl::Status s = a->Receive({}, t0);
  CHECK(GetErrorCode(s) == ErrorCode::kWrongState);
  int n = 0;
  while (auto e = a->PollEvent()) ++n;
  CHECK(n == 2);  // Established (kept, not dropped) and TaskReceived
  CHECK(a->Receive({}, t0).ok());
}

TEST_CASE("API misuse is refused locally with specific codes",
          "[session][api]") {
  PairOptions o = Fast();
  o.acceptor.max_payload_bytes = 16;
  SessionPair pair(o);
  CHECK(
      GetErrorCode(
          pair.initiator().SubmitTask(AsBytes("x"), {}, pair.now()).status()) ==
      ErrorCode::kWrongState);
  REQUIRE(pair.Handshake());
  CHECK(GetErrorCode(
            pair.Submit(Side::kInitiator, std::string(17, 'x')).status()) ==
        ErrorCode::kFrameTooLarge);
  CHECK(GetErrorCode(
            pair.Submit(Side::kAcceptor, "agents do not submit").status()) ==
        ErrorCode::kWrongState);
  CHECK(GetErrorCode(pair.Respond(Side::kAcceptor, 77, "x", true)) ==
        ErrorCode::kWrongState);
  CHECK(GetErrorCode(pair.Cancel(Side::kInitiator, 77)) ==
        ErrorCode::kWrongState);
  SessionConfig bad = InitiatorConfig();
  bad.random = nullptr;
  CHECK(Session::Create(bad, pair.now()).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace symwire
