// File: fuzz/session_fuzz.hpp
// Helpers shared by the session fuzz targets (session_handshake.cpp,
// session_receive.cpp) and their seed generator (session_seeds.cpp). Not
// part of the library.
//
//   FuzzConfig      small, fast configs (max_tasks 8, replay 32 frames /
//                   64 KiB, payloads up to 64 KiB, millisecond timers) with
//                   SeededRandom sources, so every input replays exactly.
//   OutputChecker   decodes everything a session writes on one connection
//                   with a strict FrameDecoder (largest limits) and traps if
//                   a session ever writes a frame its peer could not accept:
//                   a framing error, a connection frame (INIT, SYNC, stream-0
//                   ERROR) with a sequence or without CHECKSUM, sequenced
//                   frames that do not count up by one, a CANCEL/ERROR with
//                   a payload but no CHECKSUM, a control payload that its
//                   own parser (ParseInit/Sync/Error/Cancel) refuses.
//   CheckedSession        one Session plus its OutputChecker; every input goes
//                   through it and is followed by Drain(), which takes every
//                   PollTransmit span and every event and checks:
//                     - every non-OK status (Receive's result, the sticky
//                       status(), ConnectionLost, SessionFailed) carries a
//                       symwire ErrorCode; failure is sticky;
//                     - Receive never refuses with WRONG_STATE while a
//                       connection is up (events are always drained first);
//                     - after HandleTimeout(now), NextDeadline() > now;
//                     - state() == kFailed exactly when !status().ok();
//                     - open_tasks() <= max_tasks + the peer's max_tasks;
//                       replay_frames_in_use() <= replay_frames + both
//                       max_tasks (frames that bypass the window, §15.1);
//                     - task ids: TaskReceived has the peer's parity and
//                       increases; responses, failures and submitter-side
//                       cancels are for this side's ids; at most one
//                       terminal event per task; every task a SessionFailed
//                       lists had its terminal event;
//                     - ReconnectDue only on an initiator, ResumeRequested
//                       only on an acceptor.
//   FuzzServer      a symwire::Endpoint (the acceptor side) whose fresh
//                   sessions draw from the random streams the corpus seeds
//                   were recorded with.
//   BuildPair       a real, deterministic handshake between two CheckedSessions
//                   in memory (optionally with some task traffic left
//                   unacknowledged), for targets that start established;
//                   with a FuzzServer, the acceptor is accepted and
//                   registered by its Endpoint.
#ifndef SYMWIRE_FUZZ_SESSION_FUZZ_HPP_
#define SYMWIRE_FUZZ_SESSION_FUZZ_HPP_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fuzz_check.hpp"
#include "symwire/error.hpp"
#include "symwire/session/auth.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/session/event.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"

namespace symwire::fuzz {

using Bytes = absl::Span<const std::byte>;

inline absl::Time FuzzEpoch() {
  return absl::UnixEpoch() + absl::Seconds(1000);
}

// Seeds of the sessions' random sources (the seed generator relies on them).
inline constexpr uint64_t kInitiatorSeed = 11;
inline constexpr uint64_t kAcceptorSeed = 22;
inline constexpr uint64_t kFreshSeed = 33;

enum class AuthKind : uint8_t { kNone = 0, kToken = 1, kHmac = 2 };

inline AuthKind AuthFor(unsigned selector) {
  switch (selector & 3u) {
    case 1:
      return AuthKind::kToken;
    case 2:
      return AuthKind::kHmac;
    default:
      return AuthKind::kNone;
  }
}

inline std::shared_ptr<const Authenticator> MakeAuth(AuthKind kind) {
  // One instance per method, shared like a server shares it.
  static const auto token = TokenAuthenticator("symwire-fuzz-token");
  static const auto hmac =
      HmacAuthenticator("symwire-fuzz-hmac-key-0123456789abcdef");
  switch (kind) {
    case AuthKind::kToken:
      return token;
    case AuthKind::kHmac:
      return hmac;
    case AuthKind::kNone:
      break;
  }
  return NoAuthenticator();
}

struct Roles {
  AgentRole initiator = AgentRole::kOrchestrator;
  AgentRole acceptor = AgentRole::kAgent;
};

// 0 orchestrator->agent, 1 agent->orchestrator (the acceptor submits),
// 2 peer<->peer, 3 orchestrator->orchestrator (incompatible).
inline Roles RolesFor(unsigned selector) {
  switch (selector & 3u) {
    case 1:
      return {AgentRole::kAgent, AgentRole::kOrchestrator};
    case 2:
      return {AgentRole::kPeer, AgentRole::kPeer};
    case 3:
      return {AgentRole::kOrchestrator, AgentRole::kOrchestrator};
    default:
      return {};
  }
}

inline SessionConfig FuzzConfig(SessionSide side, AgentRole role, AuthKind auth,
                                uint64_t seed, bool checksums = true) {
  SessionConfig c;
  c.side = side;
  c.role = role;
  c.agent_id =
      side == SessionSide::kInitiator ? "fuzz-initiator" : "fuzz-acceptor";
  c.authenticator = MakeAuth(auth);
  c.random = SeededRandom(seed);
  c.payload_checksums = checksums;
  c.max_tasks = 8;
  c.max_payload_bytes = 64 * 1024;
  c.replay_frames = 32;
  c.replay_bytes = 64 * 1024;
  c.handshake_timeout = absl::Seconds(1);
  c.ping_interval = absl::Seconds(1);
  c.min_peer_ping_interval = absl::Milliseconds(100);
  c.dead_peer_timeout = absl::Seconds(5);
  c.ack_delay = absl::Milliseconds(1);
  c.resume_window = absl::Seconds(10);
  c.backoff.initial = absl::Milliseconds(10);
  c.backoff.max = absl::Seconds(1);
  return c;
}

inline std::string Text(const absl::Status& s) {
  return absl::StrCat(s.ToString(), " [", ErrorCodeName(GetErrorCode(s)), "]");
}

// ---- what a session writes --------------------------------------------------

class OutputChecker {
 public:
  OutputChecker() : decoder_(Options()) {}

  void Feed(Bytes bytes) {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    size_t pos = 0;
    for (;;) {
      absl::StatusOr<DecodeStep> step =
          decoder_.Decode(Bytes(buf_).subspan(pos));
      FUZZ_CHECK_MSG(step.ok(),
                     "a session wrote bytes its peer cannot "
                     "decode: " +
                         Text(step.status()));
      if (step->kind == DecodeStep::Kind::kNeedMore) break;
      if (step->kind == DecodeStep::Kind::kFrame) Check(step->frame);
      pos += step->consumed;
    }
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos));
  }
  uint64_t frames() const { return frames_; }
  // The last ping value the session sent (for a pong that echoes it).
  std::optional<uint64_t> last_ping() const { return last_ping_; }

 private:
  static DecoderOptions Options() {
    DecoderOptions o;
    o.max_header_bytes = static_cast<uint32_t>(kMaxHeaderSizeLimit);
    o.max_payload_bytes = kMaxPayloadSizeLimit;
    o.max_extensions = kMaxExtensionsLimit;
    return o;
  }

  void Check(const FrameView& f) {
    ++frames_;
    const bool connection_frame = !IsSequencedFrame(f.type(), f.stream_id());
    const std::string what = absl::StrCat(MessageTypeName(f.type()), " stream ",
                                          f.stream_id(), " seq ", f.sequence());
    if (connection_frame) {
      // SPEC.md §10: connection frames carry sequence 0; §10.1: and
      // CHECKSUM.
      FUZZ_CHECK_MSG(f.sequence() == 0, what);
      FUZZ_CHECK_MSG(f.has_payload_checksum(), what);
    } else {
      FUZZ_CHECK_MSG(f.sequence() >= 1, what);
      FUZZ_CHECK_MSG(last_seq_ == 0 || f.sequence() == last_seq_ + 1,
                     absl::StrCat(what, " after seq ", last_seq_));
      last_seq_ = f.sequence();
      if ((f.type() == MessageType::kAgentCancel ||
           f.type() == MessageType::kAgentError) &&
          !f.payload().empty()) {
        FUZZ_CHECK_MSG(f.has_payload_checksum(), what);
      }
    }
    absl::Status parsed;
    switch (f.type()) {
      case MessageType::kAgentInit:
        parsed = ParseInit(f.payload()).status();
        break;
      case MessageType::kAgentSync: {
        absl::StatusOr<SyncMessage> m = ParseSync(f.payload());
        parsed = m.status();
        if (m.ok() && m->ping) last_ping_ = *m->ping;
        break;
      }
      case MessageType::kAgentError:
        parsed = ParseError(f.payload()).status();
        break;
      case MessageType::kAgentCancel:
        parsed = ParseCancel(f.payload()).status();
        break;
      default:
        break;
    }
    FUZZ_CHECK_MSG(parsed.ok(), what + ": " + Text(parsed));
  }

  FrameDecoder decoder_;
  std::vector<std::byte> buf_;
  uint64_t frames_ = 0;
  uint64_t last_seq_ = 0;
  std::optional<uint64_t> last_ping_;
};

// ---- one checked session ------------------------------------------------

class CheckedSession {
 public:
  CheckedSession(const SessionConfig& config, absl::Time now)
      : own_odd_(config.side == SessionSide::kInitiator) {
    absl::StatusOr<std::unique_ptr<Session>> s = Session::Create(config, now);
    FUZZ_CHECK_MSG(s.ok(), Text(s.status()));
    session_ = std::move(*s);
  }
  // A fresh acceptor session from Endpoint::Accept (connected already:
  // Drain() takes its preface).
  explicit CheckedSession(std::shared_ptr<Session> accepted)
      : session_(std::move(accepted)), own_odd_(false) {
    FUZZ_CHECK(session_->side() == SessionSide::kAcceptor);
  }
  const std::shared_ptr<Session>& shared() const { return session_; }

  Session& s() { return *session_; }
  const Session& s() const { return *session_; }
  bool initiator() const { return own_odd_; }
  // Bytes written since the last TakeOutput (when capturing).
  void set_capture(bool on) { capture_ = on; }
  std::vector<std::byte> TakeOutput() { return std::exchange(outbox_, {}); }
  // The events of the last Drain (TaskReceived::frame and
  // ResponseReceived::payload cleared).
  const std::vector<Event>& events() const { return events_; }
  // Open tasks as seen through the events and calls (for choosing ids).
  const std::vector<TaskId>& own_open() const { return own_open_; }
  const std::vector<TaskId>& peer_open() const { return peer_open_; }
  TaskId last_peer_task() const { return last_peer_task_; }
  TaskId last_own_task() const { return last_own_task_; }
  const OutputChecker& checker() const { return checker_; }
  // True from a ReconnectDue event until the next TransportConnected.
  bool reconnect_due() const { return reconnect_due_; }

  // A new connection: a new byte stream to check.
  void NewConnection() { checker_ = OutputChecker(); }
  // The connection of `fresh` moved here (a resume): so does the
  // stream it was writing.
  void TakeConnectionFrom(CheckedSession& fresh) {
    checker_ = std::move(fresh.checker_);
    fresh.checker_ = OutputChecker();
  }

  // The inputs: each checks what it can, then drains. last_status() is
  // what the call returned.
  void TransportConnected(absl::Time now) {
    const absl::Status st = s().TransportConnected(now);
    CheckStatus(st, "TransportConnected");
    if (st.ok()) {
      // A new byte stream (what is drained below starts with a preface).
      NewConnection();
      reconnect_due_ = false;
    } else {
      CheckLocal(st);
    }
    Finish(st, now);
  }
  void Receive(Bytes bytes, absl::Time now) {
    const bool connected = Connected();
    const bool failed = s().state() == SessionState::kFailed;
    const absl::Status before = s().status();
    const absl::Status st = s().Receive(bytes, now);
    CheckStatus(st, "Receive");
    if (connected) {
      // A refusal with WRONG_STATE would mean events were still queued; a
      // peer's stream-0 AGENT_ERROR may carry WRONG_STATE as its detail,
      // which the session adopts as its (failed) status.
      FUZZ_CHECK_MSG(GetErrorCode(st) != ErrorCode::kWrongState ||
                         s().state() == SessionState::kFailed,
                     Text(st));
    }
    if (failed) FUZZ_CHECK_MSG(st == before, Text(st) + " vs " + Text(before));
    Finish(st, now);
  }
  // Receive through the Endpoint that accepted this (handshaking) session:
  // the same checks, and the Endpoint's outcome.
  ConnectionOutcome ReceiveRouted(Endpoint& endpoint, ConnectionHandle c,
                                  Bytes bytes, absl::Time now) {
    FUZZ_CHECK(endpoint.handshake(c) == session_.get());
    const bool failed = s().state() == SessionState::kFailed;
    ConnectionOutcome o = endpoint.Receive(c, bytes, now);
    absl::Status st;
    if (const auto* r = std::get_if<ConnectionRejected>(&o)) {
      st = r->status;
      FUZZ_CHECK_MSG(!st.ok() && s().state() == SessionState::kFailed,
                     Text(st));
      // The Endpoint's own refusals (max_handshake_bytes) carry no symwire
      // code, like an Abort.
      if (GetErrorCode(st) == ErrorCode::kOk) aborted_with_ = st;
    } else {
      FUZZ_CHECK(!failed);
    }
    CheckStatus(st, "Endpoint::Receive");
    Finish(st, now);
    return o;
  }
  void HandleTimeout(absl::Time now) {
    s().HandleTimeout(now);
    Drain(now);
    FUZZ_CHECK_MSG(
        s().NextDeadline() > now,
        absl::StrCat("NextDeadline ", absl::FormatTime(s().NextDeadline()),
                     " not after HandleTimeout(", absl::FormatTime(now), ")"));
  }
  void TransportLost(absl::Time now) {
    s().TransportLost(
        MakeError(ErrorCode::kConnectionLost, "fuzz: transport lost"), now);
    Drain(now);
  }
  void Submit(Bytes payload, const TaskOptions& options, absl::Time now) {
    absl::StatusOr<TaskId> id = s().SubmitTask(payload, options, now);
    if (id.ok()) {
      FUZZ_CHECK(OwnId(*id) && *id > last_own_task_);
      last_own_task_ = *id;
      own_open_.push_back(*id);
    } else {
      CheckLocal(id.status());
    }
    Finish(id.status(), now);
  }
  void Respond(TaskId task, Bytes payload, bool final, absl::Time now) {
    const absl::Status st = s().SendResponse(task, payload, final, now);
    if (st.ok()) {
      FUZZ_CHECK(!OwnId(task));
      if (final) EndPeerTask(task);
    } else {
      CheckLocal(st);
    }
    Finish(st, now);
  }
  void FailTask(TaskId task, absl::Time now) {
    const absl::Status st = s().FailTask(
        task, absl::InternalError("fuzz: task failed"), false, now);
    if (st.ok()) {
      EndPeerTask(task);
    } else {
      CheckLocal(st);
    }
    Finish(st, now);
  }
  void Cancel(TaskId task, absl::Time now) {
    const absl::Status st = s().CancelTask(task, now);
    if (!st.ok()) CheckLocal(st);
    Finish(st, now);
  }
  void Close(absl::Time now) {
    const absl::Status st = s().Close(now);
    if (!st.ok()) CheckLocal(st);
    Finish(st, now);
  }
  const absl::Status& last_status() const { return last_status_; }
  // Abort's status is the caller's: the one failure without an ErrorCode.
  void Abort(absl::Time now) {
    if (s().state() != SessionState::kFailed &&
        s().state() != SessionState::kClosed) {
      aborted_with_ = absl::InternalError("fuzz: abort");
    }
    s().Abort(absl::InternalError("fuzz: abort"), now);
    Drain(now);
  }

  // True if a connection is up as far as the API tells.
  bool Connected() const {
    return (s().state() == SessionState::kEstablished ||
            s().state() == SessionState::kHandshaking) &&
           !s().ConnectionClosing();
  }

  // Takes every output and checks everything listed in the file comment.
  void Drain(absl::Time now) {
    static_cast<void>(now);
    for (;;) {
      Bytes out = s().PollTransmit();
      if (out.empty()) break;
      checker_.Feed(out);
      if (capture_) outbox_.insert(outbox_.end(), out.begin(), out.end());
    }
    events_.clear();
    while (std::optional<Event> e = s().PollEvent()) {
      CheckEvent(*e);
      if (auto* t = std::get_if<TaskReceived>(&*e)) t->frame = FrameView();
      if (auto* r = std::get_if<ResponseReceived>(&*e)) r->payload = {};
      events_.push_back(std::move(*e));
    }
    FUZZ_CHECK(!s().PollEvent().has_value());
    CheckState();
  }

 private:
  bool OwnId(TaskId id) const { return (id % 2 == 1) == own_odd_; }
  void Finish(const absl::Status& st, absl::Time now) {
    last_status_ = st;
    Drain(now);
  }

  void CheckStatus(const absl::Status& st, const char* what) const {
    if (!st.ok()) {
      FUZZ_CHECK_MSG(GetErrorCode(st) != ErrorCode::kOk || st == aborted_with_,
                     std::string(what) + ": " + Text(st));
    }
  }
  // A refused API call: a local error (or the sticky failure); nothing
  // changes.
  void CheckLocal(const absl::Status& st) {
    const ErrorCode code = GetErrorCode(st);
    FUZZ_CHECK_MSG(code != ErrorCode::kOk, Text(st));
    if (s().state() != SessionState::kFailed) {
      FUZZ_CHECK_MSG(ScopeOf(code) == ErrorScope::kLocal ||
                         code == ErrorCode::kInvalidFrame ||
                         code == ErrorCode::kVarintOutOfRange,
                     Text(st));
    }
  }

  void EndPeerTask(TaskId id) {
    FUZZ_CHECK_MSG(terminal_.insert(id).second,
                   absl::StrCat("second terminal for task ", id));
    peer_open_.erase(std::remove(peer_open_.begin(), peer_open_.end(), id),
                     peer_open_.end());
  }
  void EndOwnTask(TaskId id) {
    FUZZ_CHECK_MSG(OwnId(id), absl::StrCat("terminal event for peer id ", id));
    FUZZ_CHECK_MSG(terminal_.insert(id).second,
                   absl::StrCat("second terminal event for task ", id));
    own_open_.erase(std::remove(own_open_.begin(), own_open_.end(), id),
                    own_open_.end());
  }

  void CheckEvent(const Event& e) {
    if (const auto* t = std::get_if<TaskReceived>(&e)) {
      FUZZ_CHECK_MSG(
          !OwnId(t->task) && t->task > last_peer_task_,
          absl::StrCat("TaskReceived ", t->task, " after ", last_peer_task_));
      FUZZ_CHECK(t->frame.type() == MessageType::kAgentTask &&
                 t->frame.stream_id() == t->task);
      last_peer_task_ = t->task;
      peer_open_.push_back(t->task);
    } else if (const auto* r = std::get_if<ResponseReceived>(&e)) {
      FUZZ_CHECK_MSG(OwnId(r->task), absl::StrCat("response to ", r->task));
      FUZZ_CHECK(terminal_.count(r->task) == 0);
      if (r->final) EndOwnTask(r->task);
    } else if (const auto* f = std::get_if<TaskFailed>(&e)) {
      FUZZ_CHECK(!f->status.ok());
      EndOwnTask(f->task);
    } else if (const auto* c = std::get_if<TaskCancelled>(&e)) {
      FUZZ_CHECK(!c->status.ok());
      if (c->submitted_here) {
        EndOwnTask(c->task);
      } else {
        FUZZ_CHECK_MSG(!OwnId(c->task), absl::StrCat("cancel of ", c->task));
        EndPeerTask(c->task);
      }
    } else if (const auto* l = std::get_if<ConnectionLost>(&e)) {
      FUZZ_CHECK_MSG(GetErrorCode(l->status) != ErrorCode::kOk,
                     Text(l->status));
    } else if (std::holds_alternative<ReconnectDue>(e)) {
      FUZZ_CHECK(own_odd_);
      reconnect_due_ = true;
    } else if (std::holds_alternative<ResumeRequested>(e)) {
      FUZZ_CHECK(!own_odd_);
    } else if (const auto* sf = std::get_if<SessionFailed>(&e)) {
      FUZZ_CHECK_MSG(GetErrorCode(sf->status) != ErrorCode::kOk ||
                         sf->status == aborted_with_,
                     Text(sf->status));
      for (TaskId id : sf->affected_tasks) {
        FUZZ_CHECK_MSG(terminal_.count(id) == 1,
                       absl::StrCat("task ", id, " ended without its event"));
      }
      own_open_.clear();
      peer_open_.clear();
    }
  }

  void CheckState() {
    const Session& x = s();
    const bool failed = x.state() == SessionState::kFailed;
    FUZZ_CHECK_MSG(
        failed == !x.status().ok(),
        absl::StrCat(SessionStateName(x.state()), " ", Text(x.status())));
    if (failed) {
      FUZZ_CHECK_MSG(GetErrorCode(x.status()) != ErrorCode::kOk ||
                         x.status() == aborted_with_,
                     Text(x.status()));
    }
    const uint64_t peer_max = x.peer().max_tasks;
    FUZZ_CHECK_MSG(x.open_tasks() <= x.config().max_tasks + peer_max,
                   absl::StrCat("open_tasks ", x.open_tasks()));
    FUZZ_CHECK_MSG(
        x.replay_frames_in_use() <=
            x.config().replay_frames + x.config().max_tasks + peer_max,
        absl::StrCat("replay_frames_in_use ", x.replay_frames_in_use()));
    if (failed || x.state() == SessionState::kClosed) {
      FUZZ_CHECK(x.open_tasks() == 0);
    }
  }

  std::shared_ptr<Session> session_;
  bool own_odd_;
  bool capture_ = false;
  bool reconnect_due_ = false;
  absl::Status last_status_;
  absl::Status aborted_with_ = absl::UnknownError("not aborted");
  std::vector<std::byte> outbox_;
  std::vector<Event> events_;
  OutputChecker checker_;
  absl::flat_hash_set<TaskId> terminal_;
  std::vector<TaskId> own_open_;
  std::vector<TaskId> peer_open_;
  TaskId last_peer_task_ = 0;
  TaskId last_own_task_ = 0;
};

template <typename T>
bool HasEvent(const CheckedSession& e) {
  for (const Event& ev : e.events()) {
    if (std::holds_alternative<T>(ev)) return true;
  }
  return false;
}

// Runs every timer of `endpoints` due up to `until`, in deadline order,
// moving `now` forward (at most `max_rounds` rounds; the targets must not
// hang whatever the input).
inline void RunClock(absl::Span<CheckedSession* const> endpoints,
                     absl::Time& now, absl::Time until, int max_rounds = 64) {
  for (int round = 0; round < max_rounds; ++round) {
    absl::Time next = absl::InfiniteFuture();
    for (const CheckedSession* e : endpoints) {
      if (e != nullptr) next = std::min(next, e->s().NextDeadline());
    }
    if (next > until) break;
    now = std::max(now, next);
    for (CheckedSession* e : endpoints) {
      if (e != nullptr && e->s().NextDeadline() <= now) e->HandleTimeout(now);
    }
  }
  now = std::max(now, until);
}

// Delivers what each side captured to the other until both are quiet.
inline void Exchange(CheckedSession& a, CheckedSession& b, absl::Time now) {
  for (int i = 0; i < 64; ++i) {
    std::vector<std::byte> to_b = a.TakeOutput();
    std::vector<std::byte> to_a = b.TakeOutput();
    if (to_a.empty() && to_b.empty()) return;
    if (!to_b.empty()) b.Receive(to_b, now);
    if (!to_a.empty()) a.Receive(to_a, now);
  }
}

inline Bytes AsBytes(absl::string_view s) {
  return Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

// ---- an established pair ------------------------------------------------

struct PairSpec {
  Roles roles;
  AuthKind auth = AuthKind::kNone;
  bool checksums = true;
  // Leave history behind: tasks each way the roles allow, partial
  // responses, one acknowledged round, then one task and one partial
  // response written but never delivered (unacknowledged).
  bool traffic = true;
};

struct Pair {
  absl::Time now = FuzzEpoch();
  std::unique_ptr<CheckedSession> initiator;
  std::unique_ptr<CheckedSession> acceptor;
};

// FuzzServer
// The acceptor side of a harness: a symwire::Endpoint made from the
// acceptor config. Each Accept picks the random stream of the session it
// creates (SeededRandom(seed)), so that the sessions are the ones the
// corpus seeds were recorded with; a session draws only while it
// handshakes, and the harnesses run one handshake at a time.
class FuzzServer {
 public:
  // With `shards` > 1: shard `shard` of a sharded server
  // (EndpointConfig::shards; its session ids end in `shard`).
  FuzzServer(AgentRole role, AuthKind auth, bool checksums,
             size_t max_handshakes = 16, uint32_t shard = 0,
             uint32_t shards = 1)
      : current_(std::make_shared<RandomSource>(SeededRandom(kFreshSeed))) {
    EndpointConfig config;
    config.shard = shard;
    config.shards = shards;
    config.session =
        FuzzConfig(SessionSide::kAcceptor, role, auth, kFreshSeed, checksums);
    config.session.random = [current = current_](absl::Span<std::byte> out) {
      (*current)(out);
    };
    config.max_handshakes = max_handshakes;
    config.max_sessions = max_handshakes;
    absl::StatusOr<std::unique_ptr<Endpoint>> e =
        Endpoint::Create(std::move(config));
    FUZZ_CHECK_MSG(e.ok(), Text(e.status()));
    endpoint_ = std::move(*e);
  }
  Endpoint& endpoint() { return *endpoint_; }
  const Endpoint& endpoint() const { return *endpoint_; }
  // Accept: nullptr when the Endpoint refuses (max_handshakes).
  std::unique_ptr<CheckedSession> Accept(uint64_t seed, absl::Time now,
                                         ConnectionHandle* handle) {
    *current_ = SeededRandom(seed);
    absl::StatusOr<Accepted> a = endpoint_->Accept(now);
    if (!a.ok()) {
      FUZZ_CHECK_MSG(a.status().code() == absl::StatusCode::kResourceExhausted,
                     Text(a.status()));
      return nullptr;
    }
    *handle = a->connection;
    return std::make_unique<CheckedSession>(a->session);
  }

 private:
  std::shared_ptr<RandomSource> current_;
  std::unique_ptr<Endpoint> endpoint_;
};

// BuildPair: with `server`, its Endpoint accepts the acceptor (seed
// kAcceptorSeed) and registers it once established.
inline Pair BuildPair(const PairSpec& spec, FuzzServer* server = nullptr) {
  Pair p;
  p.initiator = std::make_unique<CheckedSession>(
      FuzzConfig(SessionSide::kInitiator, spec.roles.initiator, spec.auth,
                 kInitiatorSeed, spec.checksums),
      p.now);
  ConnectionHandle handle = 0;
  if (server != nullptr) {
    p.acceptor = server->Accept(kAcceptorSeed, p.now, &handle);
    FUZZ_CHECK(p.acceptor != nullptr);
  } else {
    p.acceptor = std::make_unique<CheckedSession>(
        FuzzConfig(SessionSide::kAcceptor, spec.roles.acceptor, spec.auth,
                   kAcceptorSeed, spec.checksums),
        p.now);
  }
  CheckedSession& i = *p.initiator;
  CheckedSession& a = *p.acceptor;
  i.set_capture(true);
  a.set_capture(true);
  i.TransportConnected(p.now);
  if (server != nullptr) {
    a.NewConnection();
    a.Drain(p.now);
  } else {
    a.TransportConnected(p.now);
  }
  Exchange(i, a, p.now);
  if (server != nullptr) {
    // Fed directly, so asked afterwards (Endpoint::Route).
    const ConnectionOutcome o = server->endpoint().Route(handle, p.now);
    const auto* started = std::get_if<SessionStarted>(&o);
    FUZZ_CHECK(started != nullptr && started->session == a.shared());
  }
  FUZZ_CHECK_MSG(i.s().state() == SessionState::kEstablished &&
                     a.s().state() == SessionState::kEstablished,
                 absl::StrCat("pair: ", SessionStateName(i.s().state()), "/",
                              SessionStateName(a.s().state()), " ",
                              Text(i.s().status()), " ", Text(a.s().status())));
  if (spec.traffic) {
    const bool i_submits = RoleSendsTasks(spec.roles.initiator) &&
                           RoleRunsTasks(spec.roles.acceptor);
    const bool a_submits = RoleSendsTasks(spec.roles.acceptor) &&
                           RoleRunsTasks(spec.roles.initiator);
    p.now += absl::Milliseconds(1);
    if (i_submits) {
      i.Submit(AsBytes("task one"), {}, p.now);
      i.Submit(AsBytes("task two"), {}, p.now);
    }
    if (a_submits) a.Submit(AsBytes("task from acceptor"), {}, p.now);
    Exchange(i, a, p.now);
    if (!a.peer_open().empty()) {
      a.Respond(a.peer_open().front(), AsBytes("partial"), false, p.now);
    }
    if (!i.peer_open().empty()) {
      i.Respond(i.peer_open().front(), AsBytes("partial"), false, p.now);
    }
    Exchange(i, a, p.now);
    // Acks (ack_delay 1 ms).
    CheckedSession* both[] = {&i, &a};
    RunClock(both, p.now, p.now + absl::Milliseconds(2));
    Exchange(i, a, p.now);
    // Written, never delivered: unacknowledged on resume.
    p.now += absl::Milliseconds(1);
    if (i_submits) i.Submit(AsBytes("task three"), {}, p.now);
    if (!a.peer_open().empty()) {
      a.Respond(a.peer_open().front(), AsBytes("partial two"), false, p.now);
    }
  }
  i.TakeOutput();
  a.TakeOutput();
  i.set_capture(false);
  a.set_capture(false);
  return p;
}

// Reconnect
// The pair's connection dies (both sides told unless `acceptor_half_open`);
// the clock runs to the initiator's ReconnectDue, and the initiator gets
// TransportConnected (its preface and resume HELLO are then written).
inline void Reconnect(Pair& p, bool acceptor_half_open) {
  p.now += absl::Milliseconds(1);
  p.initiator->TransportLost(p.now);
  if (!acceptor_half_open) p.acceptor->TransportLost(p.now);
  CheckedSession* both[] = {p.initiator.get(), p.acceptor.get()};
  for (int i = 0; i < 16 && !p.initiator->reconnect_due(); ++i) {
    const absl::Time next = p.initiator->s().NextDeadline();
    if (next == absl::InfiniteFuture()) break;
    RunClock(both, p.now, next, 1);
  }
  FUZZ_CHECK(p.initiator->reconnect_due());
  p.initiator->TransportConnected(p.now);
}

}  // namespace symwire::fuzz

#endif  // SYMWIRE_FUZZ_SESSION_FUZZ_HPP_
