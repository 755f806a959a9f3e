// File: symwire/session/impl/session_api.ipp
// Out-of-line bodies for session/session.hpp, part: the calls of the
// driver and the application (submit, respond, cancel, close, abort,
// timeouts, transport lost).
#ifndef SYMWIRE_SESSION_IMPL_SESSION_API_IPP_
#define SYMWIRE_SESSION_IMPL_SESSION_API_IPP_

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symwire/session/detail/session_text.hpp"
#include "symwire/session/methods.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/encoder.hpp"

namespace symwire {

// ---- API inputs -------------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<TaskId> Session::SubmitTaskImpl(
    absl::Time now, absl::Span<const std::byte> payload,
    const std::shared_ptr<const void>* payload_owner,
    const TaskOptions& options) {
  ObserveNow(now);
  BeginInput();
  absl::Status s;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    s = EndedError();
  } else if (!has_session_) {
    s = MakeError(ErrorCode::kWrongState, "session not established yet");
  } else if (draining_) {
    s = MakeError(ErrorCode::kSessionClosed, "session is draining");
  } else if (peer_draining_) {
    s = MakeError(ErrorCode::kPeerDraining,
                  "peer is draining; submit elsewhere");
  } else if (!RoleSendsTasks(config_.role) || !RoleRunsTasks(peer_.role)) {
    s = MakeError(ErrorCode::kWrongState,
                  absl::StrFormat("a %s may not submit tasks to a %s",
                                  AgentRoleName(config_.role),
                                  AgentRoleName(peer_.role)));
  } else if (payload.size() > peer_.max_payload_bytes) {
    s = MakeError(ErrorCode::kFrameTooLarge,
                  absl::StrFormat("payload of %d bytes exceeds the peer's "
                                  "max_payload_bytes %d",
                                  payload.size(), peer_.max_payload_bytes));
  } else if (own_open_ >= peer_.max_tasks) {
    blocked_ = true;
    s = MakeError(ErrorCode::kNoCredit,
                  absl::StrFormat("%d tasks open, the peer's max_tasks; wait "
                                  "for Writable",
                                  own_open_));
  } else if (options.deadline && *options.deadline < absl::ZeroDuration()) {
    s = MakeError(ErrorCode::kInvalidFrame, "negative task deadline");
  } else if (!options.method.empty() &&
             !(s = ValidateMethodName(options.method)).ok()) {
    // s holds the error (INVALID_FRAME naming the byte and its index).
  } else if (!options.method.empty() &&
             (peer_.capabilities & kCapMethods) == 0) {
    // SPEC.md §9, §13.5: METHOD is critical; a peer that did not announce
    // it would end the connection on it.
    s = MakeError(
        ErrorCode::kUnimplemented,
        absl::StrFormat("method \"%s\": peer \"%s\" did not announce "
                        "capability METHODS (bit 4)",
                        absl::CHexEscape(options.method.substr(0, 64)),
                        absl::CHexEscape(peer_.agent_id)));
  }
  if (!s.ok()) {
    CountError(s);
    return s;
  }
  const TaskId id = next_task_id_;
  FrameHeader header;
  header.type = MessageType::kAgentTask;
  // §10.1: an empty payload never carries a checksum.
  header.flags =
      config_.payload_checksums && !payload.empty() ? kFlagChecksum : 0;
  header.stream_id = id;
  if (!options.deadline && !options.trace_parent &&
      options.trace_state.empty() && options.metadata.empty() &&
      options.method.empty()) {
    // No extensions: the constant, not a FrameExtensions zeroed per task.
    s = EncodeSequenced(header, kNoExtensions, payload, false, payload_owner);
  } else {
    FrameExtensions ext;
    if (options.deadline) {
      ext.deadline_us = detail::DurationMicros(*options.deadline);
    }
    ext.trace_parent = options.trace_parent;
    ext.trace_state = options.trace_state;
    ext.metadata = options.metadata;
    ext.method = options.method;
    s = EncodeSequenced(header, ext, payload, false, payload_owner);
  }
  if (!s.ok()) {
    if (GetErrorCode(s) == ErrorCode::kReplayBufferFull) blocked_ = true;
    CountError(s);
    return s;
  }
  // §15.1: the executor counts this task on arrival, plus every task open
  // here and every terminal frame accepted here whose ack it has not seen.
  // If that would exceed its max_tasks, the ack goes first: FlushSync
  // (EndInput) writes it as a connection frame, ahead of this task's bytes
  // in the same batch. Off the wire, the resume's last_received carries
  // the ack before any replayed task (§16.2).
  if (acks_.unacked_terminals() > 0 &&
      own_open_ + acks_.unacked_terminals() >= peer_.max_tasks) {
    conn_.sync.ack = true;
  }
  next_task_id_ += 2;
  // Filled in place: a Task built on the stack and copied into its slot was
  // read back in 16-byte pieces spanning its narrower stores, a failed store
  // forward (perf: 6 % of a client's samples on 8 connections; the client
  // got 2 % faster, bench/README.md, "The session's `Task` in its slot").
  Task& t = tasks_.try_emplace(id).first->second;
  ForgetFoundTask();  // the insert may have moved every slot
  t.state = TaskState::kSubmitted;
  t.own = true;
  t.seq = acks_.last_sent();
  t.end_pos = store_.end();
  ++own_open_;
  ++counters_.tasks_submitted;
  if (options.deadline) {
    t.deadline = now + *options.deadline;
    PushDeadline(*t.deadline, id);
  }
  EndInput(now);
  return id;
}

SYMWIRE_DECL absl::Status Session::SendResponseImpl(
    TaskId task, absl::Time now, absl::Span<const std::byte> payload,
    const std::shared_ptr<const void>* payload_owner, bool final) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  Task* const t = FindTask(task);
  if (t == nullptr || t->own) {
    return LocalError(
        ErrorCode::kWrongState,
        absl::StrFormat("task %d is not running on this side", task));
  }
  if (payload.size() > peer_.max_payload_bytes) {
    return LocalError(ErrorCode::kFrameTooLarge,
                      absl::StrFormat("payload of %d bytes exceeds the peer's "
                                      "max_payload_bytes %d",
                                      payload.size(), peer_.max_payload_bytes));
  }
  FrameHeader header;
  header.type = MessageType::kAgentResponse;
  // §10.1: an empty payload never carries a checksum.
  header.flags = static_cast<uint8_t>(
      (config_.payload_checksums && !payload.empty() ? kFlagChecksum : 0) |
      (final ? kFlagFinal : 0));
  header.stream_id = task;
  absl::Status s =
      EncodeSequenced(header, kNoExtensions, payload, false, payload_owner);
  if (!s.ok()) {
    if (GetErrorCode(s) == ErrorCode::kReplayBufferFull) blocked_ = true;
    CountError(s);
    return s;
  }
  if (final) EndTask(task, *t);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::FailTask(TaskId task,
                                            const absl::Status& status,
                                            bool retryable, absl::Time now) {
  ObserveNow(now);
  SYMWIRE_REQUIRE(!status.ok());
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  auto it = tasks_.find(task);
  if (it == tasks_.end() || it->second.own) {
    return LocalError(
        ErrorCode::kWrongState,
        absl::StrFormat("task %d is not running on this side", task));
  }
  const int code = static_cast<int>(status.code());
  const ErrorCode detail = GetErrorCode(status);
  SendInternalError(
      task,
      code >= 1 && code <= 16 ? status.code() : absl::StatusCode::kUnknown,
      status.message(), retryable, detail);
  EndTask(task, it->second);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::CancelTask(TaskId task, absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  auto it = tasks_.find(task);
  if (it == tasks_.end() || !it->second.own ||
      it->second.state == TaskState::kCancelling) {
    return LocalError(
        ErrorCode::kWrongState,
        absl::StrFormat("task %d is not an open task submitted here", task));
  }
  it->second.state = TaskState::kCancelling;
  Emit(TaskCancelled{
      task, absl::CancelledError(absl::StrFormat("task %d: cancelled", task)),
      true});
  SendCancel(task, absl::StatusCode::kCancelled);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::Close(absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  if (!has_session_) {
    state_ = SessionState::kClosed;
    conn_.closing = conn_.up;
    conn_.up = false;
    Emit(SessionClosed{});
    return absl::OkStatus();
  }
  if (!closing_) {
    closing_ = draining_ = true;
    drain_last_ = last_peer_task_id_;
    conn_.sync.drain = drain_last_;  // sent now, or on resume (Establish)
  }
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL void Session::Abort(const absl::Status& status, absl::Time now) {
  ObserveNow(now);
  SYMWIRE_REQUIRE(!status.ok());
  BeginInput();
  Fail(status, now, true);
}

SYMWIRE_DECL void Session::HandleTimeout(absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  // In the order of detail::Timer (detail/deadlines.hpp says what it
  // decides). Armed-ness is checked at each timer's turn, so an earlier
  // action disarms later ones (a failed connection's, an ended session's);
  // after a connection failure no other connection timer acts.
  bool connection_failed = false;
  for (detail::Timer timer : detail::kTimerOrder) {
    if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
      break;
    }
    if (connection_failed &&
        detail::ScopeOf(timer) != detail::TimerScope::kSession) {
      continue;
    }
    if (!TimerArmed(timer) || !TimersOf(timer).Expired(timer, now)) continue;
    OnTimer(timer, now);
    connection_failed = connection_failed || detail::FailsConnection(timer);
  }
  EndInput(now);
}

SYMWIRE_DECL void Session::OnTimer(detail::Timer timer, absl::Time now) {
  Connection& c = conn_;
  switch (timer) {
    case detail::Timer::kHandshake:
      ConnectionFailed(
          MakeError(
              ErrorCode::kHandshakeTimeout,
              absl::StrFormat("handshake not completed within %s",
                              absl::FormatDuration(config_.handshake_timeout))),
          now);
      return;
    case detail::Timer::kBye:
      // §15.3: our bye went unanswered: treat the connection as dead (it
      // may be half-open). The initiator resumes to say bye again; either
      // side ends closed if the session cannot be resumed in its window.
      ConnectionFailed(
          MakeError(
              ErrorCode::kPeerUnresponsive,
              absl::StrFormat("bye not answered within %s",
                              absl::FormatDuration(config_.handshake_timeout))),
          now);
      return;
    case detail::Timer::kFrame:
      // §14.1: bytes trickling in are liveness, but a frame must complete.
      ConnectionFailed(
          MakeError(ErrorCode::kPeerUnresponsive,
                    absl::StrFormat("frame started at stream offset %d not "
                                    "complete after %s (%d bytes of at least "
                                    "%d)",
                                    c.rx_since_offset,
                                    absl::FormatDuration(now - c.rx_since),
                                    c.rx.size(), c.rx_need)),
          now);
      return;
    case detail::Timer::kDeadPeer:
      ConnectionFailed(
          MakeError(ErrorCode::kPeerUnresponsive,
                    absl::StrFormat("nothing received for %s",
                                    absl::FormatDuration(now - c.last_rx))),
          now);
      return;
    case detail::Timer::kPing:
      c.sync.ping = ClockMicros(now);
      ++counters_.pings_sent;
      ++c.pings_unanswered;
      c.timers.Set(detail::Timer::kPing, now + EffectivePingInterval());
      return;
    case detail::Timer::kAck:
      c.sync.ack = true;
      return;
    case detail::Timer::kTaskDeadline:
      RunTaskDeadlines(now);
      return;
    case detail::Timer::kExpire:
      if (state_ != SessionState::kDisconnected &&
          state_ != SessionState::kHandshaking) {
        return;
      }
      if (bye_sent_ && tasks_.empty()) {
        // §15.3: the bye went out with nothing outstanding; only its answer
        // (or the bye itself) was lost with the connection.
        EndClosed(now);
      } else {
        Fail(MakeError(
                 ErrorCode::kSessionExpired,
                 absl::StrFormat(
                     "disconnected for longer than the resume "
                     "window (%s)",
                     absl::FormatDuration(config_.side == SessionSide::kAcceptor
                                              ? config_.resume_window
                                              : peer_.resume_window))),
             now, false);
      }
      return;
    case detail::Timer::kReconnect:
      if (config_.side == SessionSide::kInitiator &&
          state_ == SessionState::kDisconnected) {
        timers_.Clear(detail::Timer::kReconnect);
        Emit(ReconnectDue{attempt_});
      }
      return;
  }
}

SYMWIRE_DECL void Session::TransportLost(const absl::Status& reason,
                                         absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  absl::Status status =
      GetErrorCode(reason) != ErrorCode::kOk
          ? reason
          : MakeError(ErrorCode::kConnectionLost,
                      absl::StrFormat("transport lost: %s", reason.message()));
  if (conn_.up) {
    ConnectionFailed(status, now);
  } else if (config_.side == SessionSide::kInitiator &&
             state_ == SessionState::kDisconnected &&
             !timers_.IsSet(detail::Timer::kReconnect)) {
    // A dial after ReconnectDue failed: back off further.
    CountError(status);
    ScheduleReconnect(now);
  }
  EndInput(now);
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_SESSION_API_IPP_
