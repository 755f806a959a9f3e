// File: symwire/session/impl/session_frames.ipp
// Out-of-line bodies for session/session.hpp, part: the received frames
// after the handshake (TASK, RESPONSE, ERROR, CANCEL: SPEC.md §13; SYNC
// and stream-0 ERROR: §14, §15.3).
#ifndef SYMWIRE_SESSION_IMPL_SESSION_FRAMES_IPP_
#define SYMWIRE_SESSION_IMPL_SESSION_FRAMES_IPP_

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symwire/session/detail/session_text.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/encoder.hpp"

namespace symwire {

// ---- tasks (§13) ----------------------------------------------------------

SYMWIRE_DECL absl::Status Session::HandleTask(const FrameView& frame,
                                              absl::Time now) {
  const TaskId id = frame.stream_id();
  if (!RoleRunsTasks(config_.role) || !RoleSendsTasks(peer_.role)) {
    absl::Status s =
        MakeError(ErrorCode::kUnexpectedFrame,
                  absl::StrFormat("AGENT_TASK %d from a %s to a %s", id,
                                  AgentRoleName(peer_.role),
                                  AgentRoleName(config_.role)));
    Fail(s, now, true);
    return s;
  }
  if (IsOwnTaskId(id) || id <= last_peer_task_id_) {
    absl::Status s = MakeError(
        ErrorCode::kTaskIdReused,
        absl::StrFormat("AGENT_TASK id %d: ids from this peer are %s and "
                        "must exceed %d",
                        id,
                        config_.side == SessionSide::kAcceptor ? "odd" : "even",
                        last_peer_task_id_));
    Fail(s, now, true);
    return s;
  }
  last_peer_task_id_ = id;
  if (peer_open_ >= config_.max_tasks) {
    absl::Status s =
        MakeError(ErrorCode::kTaskLimitExceeded,
                  absl::StrFormat("AGENT_TASK %d exceeds max_tasks %d", id,
                                  config_.max_tasks));
    Fail(s, now, true);
    return s;
  }
  if (draining_) {
    // §15.3: not processed; safe to retry elsewhere. Its slot is held until
    // the error is acknowledged, like any terminal frame (§15.1).
    ++peer_open_;
    SendInternalError(id, absl::StatusCode::kUnavailable,
                      "not processed: the peer is draining", true,
                      ErrorCode::kPeerDraining);
    HoldSlotUntilAcked();
    return absl::OkStatus();
  }
  Task t;
  t.state = TaskState::kRunning;
  if (auto us = frame.deadline_us()) {
    t.deadline = now + detail::MicrosDuration(*us);
  }
  tasks_.emplace(id, t);
  ForgetFoundTask();  // the insert may have moved every slot
  ++peer_open_;
  ++counters_.tasks_received;
  if (t.deadline) PushDeadline(*t.deadline, id);
  Emit(TaskReceived{id, frame, t.deadline});
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::CheckOwnTaskFrame(const FrameView& frame,
                                                     Task*& task) {
  const TaskId id = frame.stream_id();
  if (!IsOwnTaskId(id) || id >= next_task_id_) {
    return MakeError(
        ErrorCode::kUnknownTask,
        absl::StrFormat("%s for task %d, which this side never submitted",
                        detail::TypeName(frame.type()), id));
  }
  task = FindTask(id);
  if (task == nullptr) {
    return MakeError(ErrorCode::kTaskStateViolation,
                     absl::StrFormat("%s for task %d, which has ended",
                                     detail::TypeName(frame.type()), id));
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleResponse(const FrameView& frame,
                                                  absl::Time now) {
  Task* task = nullptr;
  if (absl::Status s = CheckOwnTaskFrame(frame, task); !s.ok()) {
    Fail(s, now, true);
    return s;
  }
  const TaskId id = frame.stream_id();
  if (task->state == TaskState::kCancelling) {
    // §13.3: crossed the cancel; expected.
    ++counters_.late_frames_discarded;
    if (frame.is_final()) EndTask(id, *task);
    return absl::OkStatus();
  }
  Emit(ResponseReceived{id, frame.payload(), frame.is_final()});
  if (frame.is_final()) {
    EndTask(id, *task);
  } else {
    task->state = TaskState::kRunning;
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleTaskError(const FrameView& frame,
                                                   absl::Time now) {
  Task* task = nullptr;
  absl::Status s = CheckOwnTaskFrame(frame, task);
  auto m =
      s.ok() ? ParseError(frame.payload()) : absl::StatusOr<ErrorMessage>(s);
  if (!m.ok()) {
    Fail(m.status(), now, true);
    return m.status();
  }
  const TaskId id = frame.stream_id();
  if (task->state == TaskState::kCancelling) {
    ++counters_.late_frames_discarded;
    EndTask(id, *task);
    return absl::OkStatus();
  }
  // §13.2: the executor's status as it sent it: its canonical code and
  // message, and its symwire code only if it sent one (PEER_ERROR is for a
  // stream-0 AGENT_ERROR, §16.1), so an agent's Fail(NotFoundError("x"))
  // reaches the submitter as NotFoundError("x").
  absl::Status status = m->detail == ErrorCode::kOk
                            ? absl::Status(m->code, m->message)
                            : MakeError(m->code, m->detail, m->message);
  Emit(TaskFailed{id, std::move(status), m->retryable});
  EndTask(id, *task);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleCancel(const FrameView& frame,
                                                absl::Time now) {
  const TaskId id = frame.stream_id();
  if (IsOwnTaskId(id) || id > last_peer_task_id_) {
    absl::Status s = MakeError(
        ErrorCode::kUnknownTask,
        absl::StrFormat("AGENT_CANCEL for task %d, which the peer never "
                        "submitted",
                        id));
    Fail(s, now, true);
    return s;
  }
  auto m = ParseCancel(frame.payload());
  if (!m.ok()) {
    Fail(m.status(), now, true);
    return m.status();
  }
  auto it = tasks_.find(id);
  if (it == tasks_.end()) {
    // §13.3: the task ended; our terminal frame crossed the cancel.
    ++counters_.late_frames_discarded;
    return absl::OkStatus();
  }
  const bool deadline = m->reason == absl::StatusCode::kDeadlineExceeded;
  absl::Status status =
      deadline
          ? absl::DeadlineExceededError(absl::StrFormat(
                "task %d: deadline exceeded (the submitter's deadline passed)",
                id))
          : absl::CancelledError(
                absl::StrFormat("task %d: cancelled by the submitter", id));
  Emit(TaskCancelled{id, status, false});
  SendInternalError(id, m->reason, deadline ? "deadline exceeded" : "cancelled",
                    false, ErrorCode::kOk);
  EndTask(id, it->second);
  return absl::OkStatus();
}

// ---- SYNC (§14, §15.3) --------------------------------------------------

SYMWIRE_DECL absl::Status Session::HandleAck(uint64_t ack, absl::Time now) {
  const detail::AckTracker::AckKind kind = acks_.OnAck(ack);
  if (kind == detail::AckTracker::AckKind::kBeyondSent) {
    absl::Status s =
        MakeError(ErrorCode::kBadAck,
                  absl::StrFormat("ack %d is beyond the last sequence sent, %d",
                                  ack, acks_.last_sent()));
    Fail(s, now, true);
    return s;
  }
  ++counters_.acks_received;
  if (kind == detail::AckTracker::AckKind::kOld) return absl::OkStatus();
  FreeAcked(ack);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleSync(const FrameView& frame,
                                              absl::Time now) {
  auto m = ParseSync(frame.payload());
  if (!m.ok()) {
    Fail(m.status(), now, true);
    return m.status();
  }
  // §14.1: what this SYNC brings that is new, decided before it is applied.
  const bool useful = (m->ack && *m->ack > acks_.acked()) || m->ping ||
                      (m->pong && conn_.pings_unanswered > 0) ||
                      (m->drain && !peer_draining_) || m->bye;
  if (m->pong && conn_.pings_unanswered > 0) --conn_.pings_unanswered;
  if (absl::Status s =
          CountProgress(useful, frame, conn_.rx_frame_end - frame.size(), now);
      !s.ok()) {
    return s;
  }
  if (m->ack) {
    if (absl::Status s = HandleAck(*m->ack, now); !s.ok()) return s;
  }
  if (m->ping) {
    // §14.1: strikes for pings faster than we accept.
    Connection& c = conn_;
    if (c.last_ping_rx != absl::InfinitePast() &&
        now - c.last_ping_rx < config_.min_peer_ping_interval / 2) {
      if (++c.ping_strikes > config_.max_ping_strikes) {
        absl::Status s = MakeError(
            ErrorCode::kPingFlood,
            absl::StrFormat(
                "%d pings closer than half of "
                "min_peer_ping_interval (%s)",
                c.ping_strikes,
                absl::FormatDuration(config_.min_peer_ping_interval)));
        Fail(s, now, true);
        return s;
      }
    } else {
      c.ping_strikes = 0;
    }
    c.last_ping_rx = now;
    c.sync.pong = *m->ping;  // a newer ping replaces a pending pong
  }
  if (m->pong) {
    const uint64_t t = ClockMicros(now);
    if (*m->pong <= t) {
      const absl::Duration sample = detail::MicrosDuration(t - *m->pong);
      ++counters_.pongs_received;
      counters_.rtt_last = sample;
      counters_.rtt_smoothed =
          counters_.pongs_received == 1
              ? sample
              : counters_.rtt_smoothed * 7 / 8 + sample / 8;
    }
  }
  if (m->drain && !peer_draining_) {
    peer_draining_ = true;
    Emit(PeerDraining{*m->drain});
  }
  if (m->bye) {
    // §15.3: the peer ended the session. A bye that does not answer ours
    // is answered with bye (its sender waits for it), then both end.
    if (!conn_.bye_sent) {
      conn_.sync.bye = true;
      FlushSync(now);
      conn_.bye_sent = true;
    }
    EndClosed(now);
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleSessionError(const FrameView& frame,
                                                      absl::Time now) {
  auto m = ParseError(frame.payload());
  if (!m.ok()) {
    Fail(m.status(), now, false);
    return m.status();
  }
  // §7, §16.1, §18: a detail of connection scope (a framing error, a
  // timeout) ends only the connection; the session resumes as after any
  // loss. PAYLOAD_TOO_LARGE after the handshake has session scope (§15.2).
  const bool conn_scope = m->detail != ErrorCode::kOk &&
                          ScopeOf(m->detail) == ErrorScope::kConnection &&
                          !(m->detail == ErrorCode::kPayloadTooLarge &&
                            conn_.handshake == Handshake::kDone);
  if (conn_scope) {
    absl::Status lost =
        MakeError(m->code, m->detail,
                  absl::StrFormat("peer ended the connection: %s: %s",
                                  ErrorCodeName(m->detail), m->message));
    ConnectionFailed(lost, now);
    return lost;
  }
  // §15.3: a side that said bye with nothing outstanding and cannot resume
  // (the acceptor ended the session on that bye) has closed.
  if (bye_sent_ && tasks_.empty() && conn_.handshake != Handshake::kDone) {
    conn_.closing = true;
    conn_.up = false;
    EndClosed(now);
    return absl::OkStatus();
  }
  // The peer's detail code, when it is a session-scope one, is the most
  // precise reason (e.g. SESSION_EXPIRED); PEER_ERROR otherwise, so a peer
  // cannot make this failure look local or resumable (ScopeOf).
  const bool precise = m->detail != ErrorCode::kOk &&
                       ScopeOf(m->detail) == ErrorScope::kSession &&
                       IsFatal(m->detail);
  absl::Status s = MakeError(
      m->code, precise ? m->detail : ErrorCode::kPeerError,
      absl::StrFormat(
          "peer ended the session: %s: %s",
          m->detail == ErrorCode::kOk ? "-" : ErrorCodeName(m->detail),
          m->message));
  Fail(s, now, false);
  return s;
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_SESSION_FRAMES_IPP_
