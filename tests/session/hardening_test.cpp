// Hostile-peer regressions of the session layer (issue #11): memory before
// authentication (SPEC.md §15.2), no-op control-frame floods (§14.1), frames
// dripped byte by byte (§14.1), and what a task's terminal event says when
// the session ends before the peer acknowledged it (§16.3). Deterministic:
// a simulated clock and tests/support/session_pair.hpp.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/encoder.hpp"
#include "tests/support/session_pair.hpp"

namespace symwire {
namespace {

using testing::AcceptorConfig;
using testing::AsBytes;
using testing::Dir;
using testing::InitiatorConfig;
using testing::PairOptions;
using testing::SessionPair;
using testing::Side;

PairOptions Fast() { return testing::FastPairOptions(); }

std::vector<std::byte> Bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

// Encodes one frame (no preface).
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

std::vector<std::byte> SyncFrame(const SyncMessage& m) {
  std::vector<std::byte> p;
  REQUIRE(AppendSync(m, p).ok());
  return Frame(MessageType::kAgentSync, 0, 0, p, p.empty() ? 0 : kFlagChecksum);
}

absl::Status Inject(SessionPair& pair, Side side,
                    const std::vector<std::byte>& bytes) {
  return pair.Do(
      side, [&](Session& s, absl::Time now) { return s.Receive(bytes, now); });
}

std::unique_ptr<Session> Connected(SessionConfig config, absl::Time now) {
  auto s = *Session::Create(std::move(config), now);
  REQUIRE(s->TransportConnected(now).ok());
  while (!s->PollTransmit().empty()) {
  }
  return s;
}

// ---------------------------------------------------------------------------
// Item 1: memory before authentication (SPEC.md §15.2)

// The bytes of issue #11: the preface, then an AGENT_INIT header (CRC
// valid) declaring a payload of 16,777,215 bytes. payload_length is the
// 4-byte varint at stream offset 13.
const std::vector<std::byte> kHugeInit =
    Bytes({0x89, 0x53, 0x59, 0x4d, 0x57, 0x0d, 0x0a, 0x01, 0x0c, 0x00, 0x00,
           0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0x10, 0x62, 0xcd, 0x42});

void CheckHugeInitError(const absl::Status& s) {
  CHECK(GetErrorCode(s) == ErrorCode::kPayloadTooLarge);
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  const std::string m(s.message());
  CHECK_THAT(m, Catch::Contains("16777215"));
  CHECK_THAT(m, Catch::Contains("8192"));
  CHECK_THAT(m, Catch::Contains("offset 13"));
  CHECK_THAT(m, Catch::Contains("before the handshake completes"));
}

TEST_CASE("an unauthenticated peer cannot make the acceptor buffer a huge INIT",
          "[session][handshake][hardening]") {
  const absl::Time now = absl::UnixEpoch();
  SECTION("whole") {
    auto a = Connected(AcceptorConfig(), now);
    absl::Status s = a->Receive(kHugeInit, now);
    CheckHugeInitError(s);
    CHECK(a->state() == SessionState::kFailed);
    CHECK(a->ConnectionClosing());
    CHECK(a->receive_buffered_bytes() == 0);
    // More bytes are refused; nothing is buffered.
    std::vector<std::byte> more(65536, std::byte{0});
    CHECK_FALSE(a->Receive(more, now).ok());
    CHECK(a->receive_buffered_bytes() == 0);
  }
  SECTION("byte by byte: the header's last (CRC) byte decides") {
    auto a = Connected(AcceptorConfig(), now);
    for (size_t i = 0; i + 1 < kHugeInit.size(); ++i) {
      REQUIRE(a->Receive(absl::MakeConstSpan(&kHugeInit[i], 1), now).ok());
      CHECK(a->receive_buffered_bytes() <= kHugeInit.size());
    }
    CheckHugeInitError(a->Receive(
        absl::MakeConstSpan(&kHugeInit[kHugeInit.size() - 1], 1), now));
    CHECK(a->state() == SessionState::kFailed);
  }
  SECTION("the connection's counters record it") {
    auto a = Connected(AcceptorConfig(), now);
    (void)a->Receive(kHugeInit, now);
    CHECK(a->counters().errors_by_code[static_cast<size_t>(
              ErrorCode::kPayloadTooLarge)] == 1);
  }
}

TEST_CASE("the initiator holds the pre-handshake limit too",
          "[session][handshake][hardening]") {
  const absl::Time now = absl::UnixEpoch();
  auto i = Connected(InitiatorConfig(), now);
  CheckHugeInitError(i->Receive(kHugeInit, now));
  // Only the connection ends (§15.2): the initiator will dial again.
  CHECK(i->state() == SessionState::kDisconnected);
  CHECK(i->ConnectionClosing());
}

TEST_CASE("before the handshake a payload of 8192 bytes is buffered, 8193 not",
          "[session][handshake][hardening]") {
  const absl::Time now = absl::UnixEpoch();
  auto frame_of = [](size_t payload_size) {
    std::vector<std::byte> payload(payload_size, std::byte{0x41});
    std::vector<std::byte> in(kPrefaceBytes.begin(), kPrefaceBytes.end());
    auto f = Frame(MessageType::kAgentInit, 0, 0, payload, kFlagChecksum);
    in.insert(in.end(), f.begin(), f.end());
    return in;
  };
  SECTION("8192: accepted by the decoder, held while it arrives") {
    auto a = Connected(AcceptorConfig(), now);
    const auto in = frame_of(8192);
    const size_t part = in.size() - 100;
    REQUIRE(a->Receive(absl::MakeConstSpan(in).first(part), now).ok());
    CHECK(a->receive_buffered_bytes() == part - kPrefaceSize);
    CHECK(a->state() == SessionState::kHandshaking);
  }
  SECTION("8193: refused at its header, nothing of it buffered") {
    auto a = Connected(AcceptorConfig(), now);
    const auto in = frame_of(8193);
    absl::Status s = a->Receive(absl::MakeConstSpan(in).first(40), now);
    CHECK(GetErrorCode(s) == ErrorCode::kPayloadTooLarge);
    CHECK_THAT(std::string(s.message()), Catch::Contains("8193"));
    CHECK(a->receive_buffered_bytes() == 0);
  }
}

TEST_CASE(
    "once established, payloads up to max_payload_bytes arrive, also "
    "after a resume",
    "[session][handshake][resume][hardening]") {
  PairOptions o = Fast();
  o.acceptor.max_payload_bytes = 100'000;
  o.initiator.max_payload_bytes = 100'000;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  const std::string big(60'000, 'x');
  auto t1 = pair.Submit(Side::kInitiator, big);
  REQUIRE(t1.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; }));
  REQUIRE(pair.Respond(Side::kAcceptor, *t1, big, true).ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<ResponseReceived>(Side::kInitiator) == 1; }));
  // Cut; the resumed connection (routed by the Endpoint) gets the
  // full limit once its handshake completes.
  pair.Cut();
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<Established>(Side::kInitiator) == 2; }));
  auto t2 = pair.Submit(Side::kInitiator, big);
  REQUIRE(t2.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 2; }));
  REQUIRE(pair.Respond(Side::kAcceptor, *t2, big, true).ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<ResponseReceived>(Side::kInitiator) == 2; }));
  CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
  CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
  CHECK(pair.problems().empty());
}

// ---------------------------------------------------------------------------
// Item 5: frames that carry nothing new (SPEC.md §14.1)

// Injects `frame` into the established acceptor `n` times, one Receive each;
// returns the first failure (or OK).
absl::Status Flood(SessionPair& pair, const std::vector<std::byte>& frame,
                   int n) {
  for (int i = 0; i < n; ++i) {
    absl::Status s = Inject(pair, Side::kAcceptor, frame);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void CheckFlood(SessionPair& pair, const absl::Status& s) {
  CHECK(GetErrorCode(s) == ErrorCode::kPingFlood);
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(s.message()),
             Catch::Contains("101 consecutive frames carrying nothing new") &&
                 Catch::Contains("max_noop_frames 100"));
  const auto* failed = pair.LastEvent<SessionFailed>(Side::kAcceptor);
  REQUIRE(failed != nullptr);
  CHECK(GetErrorCode(failed->status) == ErrorCode::kPingFlood);
  // The peer is told (a stream-0 AGENT_ERROR), and fails too.
  pair.RunUntilIdleNow();
  const auto* peer = pair.LastEvent<SessionFailed>(Side::kInitiator);
  REQUIRE(peer != nullptr);
  CHECK(GetErrorCode(peer->status) == ErrorCode::kPingFlood);
}

TEST_CASE("a flood of empty SYNCs ends the session with PING_FLOOD",
          "[session][sync][hardening]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  const auto empty = SyncFrame(SyncMessage{});
  // max_noop_frames (100) are accepted; the next one is not.
  REQUIRE(Flood(pair, empty, 100).ok());
  CHECK(pair.acceptor()->state() == SessionState::kEstablished);
  CheckFlood(pair, Flood(pair, empty, 1));
}

TEST_CASE("SYNCs repeating an ack end the session with PING_FLOOD",
          "[session][sync][hardening]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  // The acceptor sends two frames and gets them acknowledged.
  auto t = pair.Submit(Side::kInitiator, "work");
  REQUIRE(t.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; }));
  REQUIRE(pair.Respond(Side::kAcceptor, *t, "part", false).ok());
  REQUIRE(pair.Respond(Side::kAcceptor, *t, "more", false).ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.acceptor()->replay_frames_in_use() == 0; }));
  pair.RunUntilIdleNow();
  const uint64_t acked = pair.acceptor()->last_sent();
  REQUIRE(acked == 2);
  SyncMessage same;
  same.ack = acked;
  SyncMessage lower;
  lower.ack = 1;
  SECTION("the same ack") {
    CheckFlood(pair, Flood(pair, SyncFrame(same), 101));
  }
  SECTION("a lower ack") {
    CheckFlood(pair, Flood(pair, SyncFrame(lower), 101));
  }
  SECTION("mixed, counted together") {
    REQUIRE(Flood(pair, SyncFrame(same), 50).ok());
    REQUIRE(Flood(pair, SyncFrame(SyncMessage{}), 25).ok());
    CheckFlood(pair, Flood(pair, SyncFrame(lower), 26));
  }
}

TEST_CASE("repeated drains, unasked pongs and duplicates are floods too",
          "[session][sync][hardening]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  SECTION("drain: the first is news, the rest are not") {
    SyncMessage drain;
    drain.drain = 0;
    REQUIRE(Flood(pair, SyncFrame(drain), 101).ok());
    CHECK(pair.Count<PeerDraining>(Side::kAcceptor) == 1);
    CheckFlood(pair, Flood(pair, SyncFrame(drain), 1));
  }
  SECTION("pongs for pings never sent") {
    SyncMessage pong;
    pong.pong = 1;
    CheckFlood(pair, Flood(pair, SyncFrame(pong), 101));
  }
  SECTION("a duplicate sequenced frame") {
    auto t = pair.Submit(Side::kInitiator, "work");
    REQUIRE(t.ok());
    REQUIRE(pair.RunUntil(
        [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; }));
    pair.RunUntilIdleNow();
    const auto task = Frame(MessageType::kAgentTask, *t, 1, AsBytes("work"), 0);
    CheckFlood(pair, Flood(pair, task, 101));
    CHECK(pair.Count<TaskReceived>(Side::kAcceptor) == 1);
  }
}

TEST_CASE("anything new resets the count of frames carrying nothing new",
          "[session][sync][hardening]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  const auto empty = SyncFrame(SyncMessage{});
  SyncMessage ping;
  ping.ping = 7;
  for (int round = 0; round < 5; ++round) {
    REQUIRE(Flood(pair, empty, 100).ok());
    // A ping, spaced so that it is no strike (§14.1).
    pair.clock().Advance(absl::Milliseconds(100));
    REQUIRE(Inject(pair, Side::kAcceptor, SyncFrame(ping)).ok());
  }
  // A task (a new sequenced frame) resets it too.
  REQUIRE(Flood(pair, empty, 100).ok());
  auto t = pair.Submit(Side::kInitiator, "work");
  REQUIRE(t.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; }));
  pair.RunUntilIdleNow();
  REQUIRE(Flood(pair, empty, 100).ok());
  CHECK(pair.acceptor()->state() == SessionState::kEstablished);
  CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
}

TEST_CASE(
    "conforming peers never send two frames in a row that carry "
    "nothing new",
    "[session][sync][resume][hardening]") {
  // max_noop_frames = 1 on both sides: the strictest setting must survive
  // tasks, streamed responses, cancels, coalesced and timed acks, pings,
  // cuts with resumption (whose first SYNC may repeat an ack and a drain),
  // and a graceful close.
  PairOptions o = Fast();
  o.initiator.max_noop_frames = 1;
  o.acceptor.max_noop_frames = 1;
  o.initiator.replay_frames = 64;  // an ack every 4 frames
  o.acceptor.replay_frames = 64;
  o.initiator.max_tasks = 32;
  o.acceptor.max_tasks = 32;
  SessionPair pair(o);
  pair.set_split(testing::Split::Random(40));
  REQUIRE(pair.Handshake());
  testing::SimRandom rng(11);
  std::vector<TaskId> open;
  for (int round = 0; round < 300; ++round) {
    const uint64_t pick = rng.Between(0, 9);
    if (pick < 4 || open.empty()) {
      auto t = pair.Submit(Side::kInitiator, "task");
      if (t.ok()) open.push_back(*t);
    } else if (pick < 7) {
      const TaskId t = open[rng.Between(0, open.size() - 1)];
      if (pair.acceptor()->task_state(t) == TaskState::kRunning) {
        (void)pair.Respond(Side::kAcceptor, t, "part", false);
        if (rng.Chance(1, 2)) {
          (void)pair.Respond(Side::kAcceptor, t, "done", true);
        }
      }
    } else if (pick < 8) {
      const TaskId t = open[rng.Between(0, open.size() - 1)];
      (void)pair.Cancel(Side::kInitiator, t);
    } else if (pick < 9) {
      pair.RunFor(absl::Milliseconds(rng.Between(1, 1500)));  // pings, acks
    } else if (rng.Chance(1, 4)) {
      pair.Cut();
    }
    pair.RunFor(absl::Milliseconds(rng.Between(0, 20)));
    std::erase_if(open, [&](TaskId t) {
      return pair.initiator().task_state(t) == TaskState::kNone;
    });
    REQUIRE(pair.Count<SessionFailed>(Side::kInitiator) == 0);
    REQUIRE(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
  }
  // Drain and close; the acceptor finishes what is still running.
  REQUIRE(pair.Close(Side::kInitiator).ok());
  pair.Cut();  // the drain is repeated on the resumed connection
  for (int i = 0; i < 200 && pair.Count<SessionClosed>(Side::kInitiator) == 0;
       ++i) {
    pair.RunFor(absl::Milliseconds(50));
    for (TaskId t : open) {
      if (pair.acceptor()->task_state(t) == TaskState::kRunning) {
        (void)pair.Respond(Side::kAcceptor, t, "done", true);
      }
    }
  }
  CHECK(pair.Count<SessionClosed>(Side::kInitiator) == 1);
  CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
  CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
  CHECK(pair.initiator().counters().errors_by_code[117] == 0);
  CHECK(pair.acceptor()->counters().errors_by_code[117] == 0);
  CHECK(pair.initiator().counters().pongs_received > 10);
  CHECK(pair.links_created() > 5);
  CHECK(pair.problems().empty());
}

// ---------------------------------------------------------------------------
// Item 6: a frame dripped byte by byte (SPEC.md §14.1 frame_timeout)

TEST_CASE(
    "a frame dripped a byte at a time ends the connection at "
    "frame_timeout",
    "[session][sync][hardening]") {
  PairOptions o = Fast();  // dead_peer_timeout 5 s
  o.acceptor.frame_timeout = absl::Seconds(3);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  // Only the dripped bytes reach the acceptor from now on.
  pair.link()->Stall(Dir::kToAcceptor, absl::InfiniteFuture());
  const uint64_t offset = pair.link()->delivered(Dir::kToAcceptor);
  const std::vector<std::byte> payload(200, std::byte{0x61});
  const auto task = Frame(MessageType::kAgentTask, 1, 1, payload, 0);
  Session* const acceptor = pair.acceptor();
  const absl::Time start = pair.now();
  size_t sent = 0;
  for (; sent < task.size() && pair.Count<ConnectionLost>(Side::kAcceptor) == 0;
       ++sent) {
    REQUIRE(Inject(pair, Side::kAcceptor, {task[sent]}).ok());
    // The deadline is visible to the driver.
    CHECK(acceptor->NextDeadline() <= start + absl::Seconds(3));
    pair.RunFor(absl::Seconds(1));  // one byte a second: "alive"
  }
  const auto* lost = pair.LastEvent<ConnectionLost>(Side::kAcceptor);
  REQUIRE(lost != nullptr);
  CHECK(pair.Last<ConnectionLost>(Side::kAcceptor)->at ==
        start + absl::Seconds(3));
  CHECK(sent == 3);
  CHECK(GetErrorCode(lost->status) == ErrorCode::kPeerUnresponsive);
  CHECK(lost->status.code() == absl::StatusCode::kDeadlineExceeded);
  CHECK_THAT(std::string(lost->status.message()),
             Catch::Contains(absl::StrCat("frame started at stream offset ",
                                          offset, " not complete after 3s")) &&
                 Catch::Contains("3 bytes of at least"));
  // Only the connection ended: the session resumes.
  CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<Established>(Side::kInitiator) == 2; }));
  CHECK(pair.problems().empty());
}

TEST_CASE("frames that keep arriving are not cut by frame_timeout",
          "[session][sync][hardening]") {
  // Each frame completes well within frame_timeout although together they
  // take far longer, and a slow frame that does complete in time is fine.
  PairOptions o = Fast();
  o.acceptor.frame_timeout = absl::Seconds(3);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  pair.link()->Stall(Dir::kToAcceptor, absl::InfiniteFuture());
  SyncMessage ping;
  for (int i = 0; i < 10; ++i) {
    ping.ping = static_cast<uint64_t>(i);
    const auto f = SyncFrame(ping);
    for (size_t k = 0; k < f.size(); ++k) {
      REQUIRE(Inject(pair, Side::kAcceptor, {f[k]}).ok());
      pair.RunFor(absl::Milliseconds(2900) / static_cast<int64_t>(f.size()));
    }
  }
  CHECK(pair.Count<ConnectionLost>(Side::kAcceptor) == 0);
  CHECK(pair.acceptor()->state() == SessionState::kEstablished);
}

TEST_CASE(
    "deadlines due at once act in timer order: a stalled frame fails the "
    "connection, and dead-peer and ping then do not act",
    "[session][sync][hardening][timers]") {
  PairOptions o = Fast();  // dead_peer_timeout 5 s, ping every 1 s
  o.acceptor.frame_timeout = absl::Seconds(3);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.RunUntilIdleNow();
  pair.link()->Stall(Dir::kToAcceptor, absl::InfiniteFuture());
  const uint64_t offset = pair.link()->delivered(Dir::kToAcceptor);
  const std::vector<std::byte> payload(200, std::byte{0x61});
  const auto task = Frame(MessageType::kAgentTask, 1, 1, payload, 0);
  REQUIRE(Inject(pair, Side::kAcceptor, {task[0]}).ok());
  Session* const acceptor = pair.acceptor();
  const uint64_t pings = acceptor->counters().pings_sent;
  // Frame, dead-peer and ping deadlines have all passed at this call.
  pair.clock().Advance(absl::Seconds(60));
  REQUIRE(acceptor->NextDeadline() < pair.now());
  pair.Do(Side::kAcceptor,
          [](Session& s, absl::Time now) {
            s.HandleTimeout(now);
            return absl::OkStatus();
          })
      .IgnoreError();
  REQUIRE(pair.Count<ConnectionLost>(Side::kAcceptor) == 1);
  const auto* lost = pair.LastEvent<ConnectionLost>(Side::kAcceptor);
  REQUIRE(lost != nullptr);
  CHECK_THAT(std::string(lost->status.message()),
             Catch::Contains(absl::StrCat("frame started at stream offset ",
                                          offset, " not complete after 1m")));
  CHECK(acceptor->counters().pings_sent == pings);
}

// ---------------------------------------------------------------------------
// Item 9: at the session's end, "may have run" and "never ran" differ
// (SPEC.md §16.3)

const TaskFailed* FailedEvent(const SessionPair& pair, TaskId task) {
  auto found = pair.FindTask<TaskFailed>(Side::kInitiator, task);
  REQUIRE(found.size() == 1);
  return &found.front()->As<TaskFailed>();
}

void CheckReceived(const SessionPair& pair, TaskId task) {
  const TaskFailed* f = FailedEvent(pair, task);
  INFO(f->status.ToString());
  CHECK(GetErrorCode(f->status) == ErrorCode::kSessionExpired);
  CHECK(f->status.code() == absl::StatusCode::kDataLoss);
  CHECK_FALSE(f->retryable);
  CHECK_THAT(std::string(f->status.message()),
             Catch::Contains("was received by the peer (acknowledged) and may "
                             "have run"));
}

void CheckMaybeReceived(const SessionPair& pair, TaskId task) {
  const TaskFailed* f = FailedEvent(pair, task);
  INFO(f->status.ToString());
  CHECK(GetErrorCode(f->status) == ErrorCode::kSessionExpired);
  CHECK(f->status.code() == absl::StatusCode::kDataLoss);
  CHECK_FALSE(f->retryable);
  CHECK_THAT(std::string(f->status.message()),
             Catch::Contains("sent but not acknowledged"));
}

void CheckNeverSent(const SessionPair& pair, TaskId task) {
  const TaskFailed* f = FailedEvent(pair, task);
  INFO(f->status.ToString());
  CHECK(GetErrorCode(f->status) == ErrorCode::kConnectionLost);
  CHECK(f->status.code() == absl::StatusCode::kUnavailable);
  CHECK(f->retryable);
  CHECK_THAT(std::string(f->status.message()),
             Catch::Contains("never reached the peer; safe to retry"));
}

TEST_CASE(
    "at expiry, acknowledged, unacknowledged and unsent tasks end "
    "differently",
    "[session][resume][hardening]") {
  PairOptions o = Fast();
  o.acceptor.resume_window = absl::Seconds(2);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  // Acknowledged by the peer.
  auto acked = pair.Submit(Side::kInitiator, "one");
  REQUIRE(acked.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.initiator().replay_frames_in_use() == 0; }));
  // Written to the connection, but it never arrives.
  pair.link()->Stall(Dir::kToAcceptor, absl::InfiniteFuture());
  auto sent = pair.Submit(Side::kInitiator, "two");
  REQUIRE(sent.ok());
  pair.set_dials_fail(true);
  pair.Cut();
  // Submitted while disconnected: never leaves this side.
  auto unsent = pair.Submit(Side::kInitiator, "three");
  REQUIRE(unsent.ok());
  pair.RunFor(absl::Seconds(5));
  const auto* failed = pair.LastEvent<SessionFailed>(Side::kInitiator);
  REQUIRE(failed != nullptr);
  CHECK(GetErrorCode(failed->status) == ErrorCode::kSessionExpired);
  CHECK(failed->affected_tasks == std::vector<TaskId>{*acked, *sent, *unsent});
  CheckReceived(pair, *acked);
  CheckMaybeReceived(pair, *sent);
  CheckNeverSent(pair, *unsent);
}

TEST_CASE(
    "after the acceptor lost the session, tasks submitted during the "
    "outage are safe to retry",
    "[session][resume][hardening]") {
  // The server-crash case: the resume is answered SESSION_EXPIRED.
  PairOptions o = Fast();
  o.acceptor.resume_window = absl::Seconds(1);
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  auto acked = pair.Submit(Side::kInitiator, "one");
  REQUIRE(acked.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.initiator().replay_frames_in_use() == 0; }));
  // The acceptor forgets the session; the initiator notices only later.
  pair.Cut(/*notify_initiator=*/false, /*notify_acceptor=*/true);
  pair.RunFor(absl::Milliseconds(1500));
  REQUIRE(pair.Count<SessionFailed>(Side::kAcceptor) == 1);
  pair.Do(Side::kInitiator, [](Session& s, absl::Time now) {
    s.TransportLost(absl::UnavailableError("noticed at last"), now);
  });
  auto unsent = pair.Submit(Side::kInitiator, "two");
  REQUIRE(unsent.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<SessionFailed>(Side::kInitiator) == 1; }));
  const auto* failed = pair.LastEvent<SessionFailed>(Side::kInitiator);
  CHECK(GetErrorCode(failed->status) == ErrorCode::kSessionExpired);
  // The answer to a resume that proved the token (CHALLENGE, then PROOF
  // with resume_proof) for a session that has ended (SPEC.md §16.2).
  CHECK_THAT(std::string(failed->status.message()),
             Catch::Contains("is unknown or has ended"));
  CHECK(pair.initiator().counters().resumes == 0);
  CHECK(failed->affected_tasks == std::vector<TaskId>{*acked, *unsent});
  CheckReceived(pair, *acked);
  CheckNeverSent(pair, *unsent);
}

}  // namespace
}  // namespace symwire
