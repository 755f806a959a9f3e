// File: symwire/session/impl/session_state.ipp
// Out-of-line bodies for session/session.hpp, part: state changes of the
// session and its connection (flushing SYNC, task ends and deadlines, bye,
// close, failure, reconnect backoff, establishment; SPEC.md §13-§16).
#ifndef SYMWIRE_SESSION_IMPL_SESSION_STATE_IPP_
#define SYMWIRE_SESSION_IMPL_SESSION_STATE_IPP_

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

// ---------------------------------------------------------------------------
// State changes

SYMWIRE_DECL void Session::PushDeadline(absl::Time when, TaskId task) {
  auto later = [](const auto& a, const auto& b) { return a.first > b.first; };
  // Entries of ended tasks are skipped lazily; rebuild when they dominate.
  if (deadlines_.size() > 2 * tasks_.size() + 64) {
    deadlines_.clear();
    for (const auto& [id, t] : tasks_) {
      if (t.deadline) deadlines_.emplace_back(*t.deadline, id);
    }
    std::make_heap(deadlines_.begin(), deadlines_.end(), later);
  }
  deadlines_.emplace_back(when, task);
  std::push_heap(deadlines_.begin(), deadlines_.end(), later);
  SyncTaskTimer();
}

SYMWIRE_DECL void Session::SyncTaskTimer() {
  if (deadlines_.empty()) {
    timers_.Clear(detail::Timer::kTaskDeadline);
  } else {
    timers_.Set(detail::Timer::kTaskDeadline, deadlines_.front().first);
  }
}

SYMWIRE_DECL void Session::EndTask(TaskId id, Task& task) {
  if (task.own) {
    // §15.1: the slot is free here at once. The ack of this terminal frame
    // is coalesced like any other (§14.2: thresholds or ack_delay); only a
    // task that would find the executor's count full takes it along, in
    // the same batch ahead of itself (SubmitTask). Acking every terminal
    // frame at once cost request/response one write and one peer wake-up
    // per task.
    --own_open_;
    acks_.OnTerminalReceived();
  } else {
    // §15.1: the executor's slot stays taken until the submitter
    // acknowledges the terminal frame just sent (the last sequence).
    HoldSlotUntilAcked();
  }
  if (id == found_id_) ForgetFoundTask();
  tasks_.erase(id);
}

SYMWIRE_DECL void Session::HoldSlotUntilAcked() {
  unacked_terminals_.push_back(acks_.last_sent());
}

SYMWIRE_DECL void Session::ReleaseAckedSlots(uint64_t ack) {
  while (!unacked_terminals_.empty() && unacked_terminals_.front() <= ack) {
    unacked_terminals_.pop_front();
    --peer_open_;
  }
}

SYMWIRE_DECL void Session::MaybeWritable() {
  if (!blocked_ || !has_session_) return;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  if (own_open_ < peer_.max_tasks &&
      (replay_.empty() || (replay_.size() < config_.replay_frames &&
                           replay_bytes_in_use() < config_.replay_bytes))) {
    blocked_ = false;
    Emit(Writable{});
  }
}

SYMWIRE_DECL void Session::MaybeFinishClose(absl::Time now) {
  // §15.3: bye once nothing is open and everything sent was acknowledged,
  // once per connection; the session ends when the peer's bye answers it.
  if (!closing_ || state_ != SessionState::kEstablished) return;
  if (!tasks_.empty() || !replay_.empty() || conn_.bye_sent) return;
  conn_.sync.bye = true;
  FlushSync(now);
  conn_.bye_sent = true;
  // A connection on which the answer does not come is treated as dead
  // (HandleTimeout), so a half-open one cannot hold the close.
  conn_.timers.Set(detail::Timer::kBye, now + config_.handshake_timeout);
  bye_sent_ = true;
}

SYMWIRE_DECL void Session::EndClosed(absl::Time now) {
  (void)now;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  // Any task still open (none, for a conforming peer) ends with
  // UNAVAILABLE (§15.3).
  const absl::Status closed =
      MakeError(ErrorCode::kConnectionLost, "peer closed the session");
  std::vector<TaskId> open;
  for (const auto& [id, t] : tasks_) open.push_back(id);
  std::sort(open.begin(), open.end());
  for (TaskId id : open) {
    const Task& t = tasks_[id];
    if (t.own && t.state != TaskState::kCancelling) {
      Emit(TaskFailed{id, closed, false});
    } else if (!t.own) {
      Emit(TaskCancelled{id, closed, false});
    }
  }
  tasks_.clear();
  ForgetFoundTask();
  own_open_ = peer_open_ = 0;
  unacked_terminals_.clear();
  timers_.Clear(detail::Timer::kReconnect);
  timers_.Clear(detail::Timer::kExpire);
  state_ = SessionState::kClosed;
  conn_.closing = conn_.closing || conn_.up;
  Emit(SessionClosed{});
}

SYMWIRE_DECL void Session::FreeAcked(uint64_t ack) {
  ReleaseAckedSlots(ack);
  while (!replay_.empty() && replay_.front().seq <= ack) replay_.pop_front();
  CompactStore();
}

SYMWIRE_DECL void Session::CompactStore() {
  const uint64_t head = replay_.empty() ? store_.end() : replay_.front().pos;
  // Bytes before send_pos_ that are not retained can go too; bytes not yet
  // handed to the driver cannot. Whole blocks only: nothing is moved.
  store_.DropBefore(std::min(head, send_pos_));
}

SYMWIRE_DECL void Session::ScheduleReconnect(absl::Time now) {
  // §16.1: min(initial * multiplier^n, max) * (1 + jitter * u), u in [-1, 1].
  const BackoffConfig& b = config_.backoff;
  double delay = absl::ToDoubleSeconds(b.initial) *
                 std::pow(b.multiplier, static_cast<double>(attempt_));
  delay = std::min(delay, absl::ToDoubleSeconds(b.max));
  // The 8 random bytes are an unsigned little-endian integer x, whatever the
  // host's byte order; u = 2 * floor(x / 2^11) / 2^53 - 1 (§16.1).
  std::array<std::byte, 8> r;
  config_.random(absl::Span<std::byte>(r));
  uint64_t x = 0;
  for (size_t k = 0; k < r.size(); ++k) {
    x |= static_cast<uint64_t>(r[k]) << (8 * k);
  }
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  delay *= 1.0 + b.jitter * u;
  ++attempt_;
  timers_.Set(detail::Timer::kReconnect, now + absl::Seconds(delay));
}

SYMWIRE_DECL void Session::ConnectionFailed(const absl::Status& status,
                                            absl::Time now) {
  Connection& c = conn_;
  if (!c.up) return;
  c.up = false;
  c.closing = true;
  c.store_enabled = false;
  c.sync = PendingSync{};
  if (config_.side == SessionSide::kAcceptor && !has_session_) {
    // A fresh acceptor has nothing to resume (Fail counts the error).
    Fail(status, now, false);
    return;
  }
  CountError(status);
  state_ = SessionState::kDisconnected;
  Emit(ConnectionLost{status});
  if (config_.side == SessionSide::kInitiator) {
    ScheduleReconnect(now);
    if (has_session_ && !timers_.IsSet(detail::Timer::kExpire)) {
      timers_.Set(detail::Timer::kExpire, now + peer_.resume_window);
    }
  } else {
    timers_.Set(detail::Timer::kExpire, now + config_.resume_window);
  }
}

SYMWIRE_DECL absl::Status Session::DecodeFailed(const absl::Status& status,
                                                absl::Time now) {
  if (GetErrorCode(status) == ErrorCode::kPayloadTooLarge) {
    if (conn_.handshake == Handshake::kDone) {
      // SPEC.md §15.2: a payload above the announced limit, in a header
      // whose CRC matched (the decoder checks the limit only after the CRC,
      // §7.1, so a flipped bit cannot cause it), was sent on purpose; a
      // resume would replay the frame and fail again. It ends the session.
      Fail(status, now, true);
      return status;
    }
    // §15.2: before the handshake completes the limit is 8192 for every
    // frame type; this ends the connection, like every framing error.
    absl::Status s = MakeError(
        ErrorCode::kPayloadTooLarge,
        absl::StrFormat("%s (the limit for every frame before the handshake "
                        "completes)",
                        status.message()));
    ConnectionFailed(s, now);
    return s;
  }
  // Every other framing error ends only the connection (§16.1).
  ConnectionFailed(status, now);
  return status;
}

SYMWIRE_DECL void Session::Fail(const absl::Status& status, absl::Time now,
                                bool tell_peer) {
  (void)now;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  CountError(status);
  if (tell_peer && conn_.up && !conn_.closing) SendSessionError(status);
  conn_.closing = conn_.closing || conn_.up;
  conn_.up = false;
  conn_.store_enabled = false;
  std::vector<TaskId> affected;
  affected.reserve(tasks_.size());
  for (const auto& [id, t] : tasks_) affected.push_back(id);
  std::sort(affected.begin(), affected.end());
  for (TaskId id : affected) {
    const Task& t = tasks_[id];
    if (t.own) {
      // A cancelling task already had its terminal event.
      if (t.state != TaskState::kCancelling) {
        bool retryable = false;
        absl::Status end = OwnTaskEndStatus(id, t, status, &retryable);
        Emit(TaskFailed{id, std::move(end), retryable});
      }
    } else {
      Emit(TaskCancelled{id, status, false});
    }
  }
  tasks_.clear();
  ForgetFoundTask();
  own_open_ = peer_open_ = 0;
  unacked_terminals_.clear();
  replay_.clear();
  store_.Clear();
  send_pos_ = 0;
  deadlines_.clear();
  SyncTaskTimer();
  timers_.Clear(detail::Timer::kReconnect);
  timers_.Clear(detail::Timer::kExpire);
  state_ = SessionState::kFailed;
  failure_ = status;
  Emit(SessionFailed{status, std::move(affected)});
}

SYMWIRE_DECL absl::Status Session::OwnTaskEndStatus(TaskId id, const Task& task,
                                                    const absl::Status& status,
                                                    bool* retryable) const {
  // §16.3. Acknowledged: the peer has it and may have run it. Never handed
  // to a connection: it cannot have reached the peer, so it is safe to
  // retry. Sent but not acknowledged: unknown (the ack may have been lost
  // with the connection), so it counts as received.
  *retryable = false;
  std::string message;
  if (task.seq <= acks_.acked()) {
    message = absl::StrFormat(
        "task %d was received by the peer (acknowledged) and may have run: %s",
        id, status.message());
  } else if (task.end_pos > sent_pos_high_) {
    *retryable = true;
    return MakeError(
        ErrorCode::kConnectionLost,
        absl::StrFormat("task %d never reached the peer; safe to retry (the "
                        "session ended: %s)",
                        id, status.message()));
  } else {
    message = absl::StrFormat(
        "task %d was sent but not acknowledged: the peer may have received "
        "and run it: %s",
        id, status.message());
  }
  absl::Status out(status.code(), message);
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

SYMWIRE_DECL void Session::FailHandshake(const absl::Status& status,
                                         absl::Time now) {
  Fail(status, now, true);
}

SYMWIRE_DECL void Session::Establish(bool resumed, absl::Time now) {
  Connection& c = conn_;
  c.handshake = Handshake::kDone;
  c.hello.reset();
  c.store_enabled = true;
  c.timers.Clear(detail::Timer::kHandshake);
  // §15.2: tasks and responses may now arrive (control payloads stay
  // accepted up to 8192 bytes whatever the limit).
  c.decoder.SetMaxPayloadBytes(
      std::max(config_.max_payload_bytes, kMaxControlPayloadSize));
  c.last_rx = now;
  c.timers.Set(detail::Timer::kDeadPeer, now + config_.dead_peer_timeout);
  c.timers.Set(detail::Timer::kPing, now + EffectivePingInterval());
  state_ = SessionState::kEstablished;
  attempt_ = 0;
  timers_.Clear(detail::Timer::kReconnect);
  timers_.Clear(detail::Timer::kExpire);
  uint64_t replayed = 0;
  if (resumed) {
    ++counters_.resumes;
    replayed = replay_.size();
  }
  // §16.2: the HELLO / WELCOME carried last_received, which acknowledges
  // everything received so far; ack counting starts over on this
  // connection (the rest of its state is new: Connection{}).
  acks_.MarkAckSent();
  if (draining_) c.sync.drain = drain_last_;
  Emit(Established{resumed, replayed});
}

SYMWIRE_DECL void Session::RunTaskDeadlines(absl::Time now) {
  auto later = [](const auto& a, const auto& b) { return a.first > b.first; };
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    const auto [when, id] = deadlines_.front();
    std::pop_heap(deadlines_.begin(), deadlines_.end(), later);
    deadlines_.pop_back();
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !it->second.deadline ||
        *it->second.deadline != when) {
      continue;  // ended meanwhile
    }
    Task& t = it->second;
    const absl::Status expired = absl::DeadlineExceededError(
        absl::StrFormat("task %d: deadline exceeded", id));
    if (t.own) {
      if (t.state == TaskState::kCancelling) continue;
      // §13.4: the submitter's deadline is authoritative; cancel with
      // reason DEADLINE_EXCEEDED.
      t.state = TaskState::kCancelling;
      Emit(TaskCancelled{id, expired, true});
      SendCancel(id, absl::StatusCode::kDeadlineExceeded);
    } else {
      Emit(TaskCancelled{id, expired, false});
      SendInternalError(id, absl::StatusCode::kDeadlineExceeded,
                        "deadline exceeded", false, ErrorCode::kOk);
      EndTask(id, t);
    }
  }
  SyncTaskTimer();
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_SESSION_STATE_IPP_
