// File: symwire/runtime/impl/peer.ipp
// Out-of-line bodies of runtime/peer.hpp (layer 3b): the driver loop.
#ifndef SYMWIRE_RUNTIME_IMPL_PEER_IPP_
#define SYMWIRE_RUNTIME_IMPL_PEER_IPP_

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/detail/task_state.hpp"
#include "symwire/runtime/peer.hpp"
#include "symwire/runtime/server.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

namespace detail {

// The most bytes of one write while frames are replayed after a resume
// (BeginReplay, Transport::WriteInPieces): on TLS one write is one record,
// decrypted only whole, so each piece is something a connection that lives
// a few KiB still delivers.
inline constexpr size_t kReplayPieceBytes = 2048;

// A first-connection failure that a new attempt cannot fix
// (ClientOptions::retry_first_connect): the peer refused us for who we are
// or what we speak, or our own configuration is wrong.
inline bool DefinitiveFirstFailure(const absl::Status& status) {
  switch (GetErrorCode(status)) {
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kVersionMismatch:
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kIncompatibleRoles:
      return true;
    default:
      break;
  }
  switch (status.code()) {
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    case absl::StatusCode::kInvalidArgument:
      // Without a symwire code: a bad configuration. With one: bytes that
      // arrived damaged (a flipped bit), worth another connection.
      return GetErrorCode(status) == ErrorCode::kOk;
    default:
      return false;
  }
}

inline std::chrono::steady_clock::time_point ToSteady(absl::Time t) {
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          absl::ToChronoNanoseconds(t - absl::UnixEpoch())));
}

}  // namespace detail

// ---- Peer: construction
// ------------------------------------------------------

SYMWIRE_DECL Peer::Peer(Private, asio::any_io_executor executor,
                        std::shared_ptr<Session> session, PeerOptions options)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      session_(std::move(session)),
      timer_(executor_) {}

SYMWIRE_DECL Peer::~Peer() {
  if (!transport_) return;
  transport_->SetSink(nullptr);  // nobody to tell: close quietly
  try {
    transport_->Close();
  } catch (...) {  // Asio's timer cancel may throw; a destructor must not
  }
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Peer>> Peer::Make(
    asio::any_io_executor executor, PeerOptions options, SessionSide side) {
  options.session.side = side;
  if (!options.session.random) options.session.random = SystemRandom();
  auto session = Session::Create(options.session, SteadyNow());
  if (!session.ok()) return session.status();
  return std::make_shared<Peer>(Private{}, std::move(executor),
                                std::move(*session), std::move(options));
}

// ---- Peer: the driver loop
// ---------------------------------------------------

SYMWIRE_DECL void Peer::Attach(std::shared_ptr<Transport> transport,
                               bool start) {
  SYMWIRE_ASSERT(!transport_);
  transport_ = std::move(transport);
  disconnected_at_ = absl::InfiniteFuture();
  if (auto server = server_.lock()) {
    server->OnConnectionCountChanged(1);
    // Before establishment the read buffer stays small (ServerOptions,
    // "Memory before authentication"); a resumed connection is lifted.
    transport_->LimitReadBuffer(
        established_once_ ? SIZE_MAX : Transport::kInitialReadBuffer);
  }
  if (start) {
    transport_->Start(this);
  } else {
    transport_->SetSink(this);
  }
  if (unread_bytes_ > options_.max_unread_response_bytes) {
    transport_->PauseReading();
  }
}

SYMWIRE_DECL void Peer::Detach() {
  if (!transport_) return;
  transport_->SetSink(nullptr);
  transport_.reset();
  disconnected_at_ = SteadyNow();
  if (auto server = server_.lock()) server->OnConnectionCountChanged(-1);
}

SYMWIRE_DECL void Peer::DrainTransmit() {
  std::shared_ptr<const void> owner;
  for (;;) {
    const absl::Span<const std::byte> bytes =
        session_->PollTransmit(&owner, Transport::kMinSharedBytes);
    if (bytes.empty()) break;
    // Without a connection the bytes belong to one that is gone.
    if (!transport_) continue;
    // Replay-store bytes come with a reference: large runs of them are
    // written from the store, not copied (transport.hpp).
    if (owner) {
      transport_->QueueShared(bytes, std::move(owner));
    } else {
      transport_->Queue(bytes);
    }
    if (first_span_alone_) {
      // BeginReplay: the WELCOME is written before, and apart from, the
      // frames it lets the peer replay.
      first_span_alone_ = false;
      transport_->Flush();
    }
  }
}

SYMWIRE_DECL void Peer::BeginReplay(bool first_span_alone) {
  if (!transport_) return;
  transport_->WriteInPieces(detail::kReplayPieceBytes,
                            session_->transmit_pending_bytes());
  first_span_alone_ = first_span_alone;
}

SYMWIRE_DECL void Peer::MaybeFlushEarly() {
  if (transport_ && transport_->pending_bytes() >= options_.early_flush_bytes) {
    transport_->Flush();
  }
}

SYMWIRE_DECL void Peer::AfterInput() {
  DrainTransmit();
  if (dispatching_) return;  // the outer AfterInput continues
  const std::shared_ptr<Peer> keep = shared_from_this();
  dispatching_ = true;
  for (;;) {
    bool progressed = false;
    while (std::optional<Event> event = session_->PollEvent()) {
      HandleEvent(*event);
      DrainTransmit();
      progressed = true;
      MaybeFlushEarly();
    }
    if (transport_ && session_->ConnectionClosing()) {
      // The session is done with this connection (an error, a bye, a
      // handover): write what it queued, then close.
      std::shared_ptr<Transport> t = transport_;
      Detach();
      t->Flush();
      t->CloseAfterFlush();
      session_->TransportLost(
          MakeError(ErrorCode::kConnectionLost, "connection closed here"),
          SteadyNow());
      DrainTransmit();
      progressed = true;
    }
    if (!progressed) break;
  }
  dispatching_ = false;
  now_valid_ = false;  // the turn is over (Now())
  if (transport_) transport_->Flush();
  ArmTimer();
}

SYMWIRE_DECL absl::Time Peer::Now() {
  if (!now_valid_) return FreshNow();
  return now_;
}

SYMWIRE_DECL absl::Time Peer::FreshNow() {
  now_ = SteadyNow();
  now_valid_ = true;
  return now_;
}

SYMWIRE_DECL void Peer::AfterUserCall() {
  // Inside the dispatch loop, the loop drains and flushes after the event.
  if (dispatching_) return;
  if (transport_ &&
      session_->transmit_pending_bytes() >= options_.early_flush_bytes) {
    DrainTransmit();
    transport_->Flush();
  }
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(executor_, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    self->flush_posted_ = false;
    self->AfterInput();
  });
}

SYMWIRE_DECL void Peer::ArmTimer() {
  const absl::Time due =
      ended_ ? absl::InfiniteFuture() : session_->NextDeadline();
  if (due == absl::InfiniteFuture()) {
    if (timer_at_ != absl::InfiniteFuture()) {
      ++timer_generation_;
      timer_at_ = absl::InfiniteFuture();
      timer_.cancel();
    }
    return;
  }
  // A later deadline leaves the armed timer alone: it fires early, which
  // HandleTimeout allows, and re-arms. Pushing heartbeat and ack timers
  // back on every frame would otherwise cost a timerfd update per batch.
  if (due >= timer_at_) return;
  timer_at_ = due;
  const uint64_t generation = ++timer_generation_;
  timer_.expires_at(detail::ToSteady(due));
  timer_.async_wait(
      [weak = weak_from_this(), generation](const boost::system::error_code&) {
        auto self = weak.lock();
        if (!self || generation != self->timer_generation_) return;
        self->timer_at_ = absl::InfiniteFuture();
        self->session_->HandleTimeout(self->FreshNow());
        self->AfterInput();
      });
}

SYMWIRE_DECL void Peer::OnTransportData(Transport& transport,
                                        absl::Span<const std::byte> bytes) {
  if (&transport != transport_.get()) return;
  if (!established_once_ && handshake_byte_limit_ != SIZE_MAX) {
    // ServerOptions::max_handshake_bytes: before the session is
    // established only a preface and a few control frames are legal.
    handshake_bytes_ += bytes.size();
    if (handshake_bytes_ > handshake_byte_limit_) {
      if (auto server = server_.lock()) {
        ++server->counters_.handshakes_oversized;
      }
      session_->Abort(
          absl::ResourceExhaustedError(absl::StrCat(
              "handshake: the peer sent ", handshake_bytes_,
              " bytes before the session was established (max_handshake_"
              "bytes ",
              handshake_byte_limit_, ")")),
          FreshNow());
      AfterInput();
      return;
    }
  }
  if (handshake_ != 0) {
    // The server's Endpoint decides what this connection becomes.
    if (auto server = server_.lock()) {
      server->OnHandshakeData(shared_from_this(), bytes, FreshNow());
      return;
    }
  }
  const uint64_t resumes = session_->counters().resumes;
  // Errors are reported as events (ConnectionLost, SessionFailed).
  static_cast<void>(session_->Receive(bytes, FreshNow()));
  if (session_->counters().resumes != resumes) BeginReplay(false);
  AfterInput();
  if (transport_ && unread_bytes_ > options_.max_unread_response_bytes) {
    transport_->PauseReading();
  }
}

SYMWIRE_DECL void Peer::OnTransportClosed(Transport& transport,
                                          const absl::Status& status) {
  if (&transport != transport_.get()) return;
  Detach();
  session_->TransportLost(status.ok() ? MakeError(ErrorCode::kConnectionLost,
                                                  "connection closed by peer")
                                      : status,
                          SteadyNow());
  AfterInput();
}

SYMWIRE_DECL void Peer::Notify(PeerEvent::Kind kind, absl::Status status,
                               uint32_t attempt) {
  if (observer_) observer_(PeerEvent{kind, std::move(status), attempt});
}

SYMWIRE_DECL void Peer::HandleEvent(Event& event) {
  if (auto* t = std::get_if<TaskReceived>(&event)) {
    auto state = std::make_shared<detail::IncomingState>();
    state->peer = weak_from_this();
    state->executor = executor_;
    state->id = t->task;
    state->payload = t->payload();
    state->deadline = t->deadline;
    state->trace_parent = t->frame.trace_parent();
    for (const MetadataEntry& m : t->frame.metadata()) {
      state->metadata.emplace_back(std::string(m.key), std::string(m.value));
    }
    incoming_[t->task] = state;
    if (handler_) {
      handler_(IncomingTask(state));
    } else {
      static_cast<void>(session_->FailTask(
          t->task, absl::UnimplementedError("no task handler"), true,
          SteadyNow()));
      state->done = true;
      incoming_.erase(t->task);
    }
    state->payload = {};
  } else if (auto* r = std::get_if<ResponseReceived>(&event)) {
    auto it = calls_.find(r->task);
    if (it == calls_.end()) return;
    const std::shared_ptr<detail::CallState> call = it->second;
    if (call->callbacks.on_response) {
      call->callbacks.on_response(r->payload, r->final);
    } else if (!call->callbacks.on_done) {
      Response resp{
          std::string(reinterpret_cast<const char*>(r->payload.data()),
                      r->payload.size()),
          r->final};
      if (call->next) {
        auto next = std::move(call->next);
        call->next = nullptr;
        next(std::move(resp));
      } else {
        UnreadChanged(static_cast<int64_t>(resp.payload.size()));
        call->queue.push_back(std::move(resp));
      }
    }
    if (r->final) FinishCall(r->task, absl::OkStatus());
  } else if (auto* f = std::get_if<TaskFailed>(&event)) {
    auto it = calls_.find(f->task);
    if (it != calls_.end()) {
      it->second->retryable = f->retryable;
      FinishCall(f->task, f->status);
    } else {
      EndIncoming(f->task, f->status);
    }
  } else if (auto* c = std::get_if<TaskCancelled>(&event)) {
    if (c->submitted_here) {
      FinishCall(c->task, c->status);
    } else {
      EndIncoming(c->task, c->status);
    }
  } else if (std::holds_alternative<Writable>(event)) {
    RunWritableWaiters();
  } else if (auto* e = std::get_if<Established>(&event)) {
    const bool first = !established_once_;
    established_once_ = true;
    outage_attempts_ = 0;
    if (e->resumed) ++reconnects_;
    auto waiters = std::move(established_waiters_);
    established_waiters_.clear();
    for (auto& w : waiters) w(absl::OkStatus());
    if (first) RunWritableWaiters();  // submissions made before the handshake
    if (auto server = server_.lock(); server && !registered_ && first) {
      server->OnEstablished(shared_from_this());
    }
    Notify(e->resumed ? PeerEvent::Kind::kResumed
                      : PeerEvent::Kind::kConnected);
  } else if (auto* lost = std::get_if<ConnectionLost>(&event)) {
    // reconnect_ is false for a Client that cannot redial (Client::Start
    // over pipes) and true for server-side peers, which wait for a resume.
    if (!established_once_ || !reconnect_) {
      // The first connection or handshake failed, or this transport cannot
      // be redialled: end the session rather than retry unseen.
      session_->Abort(lost->status, SteadyNow());
      return;
    }
    Notify(PeerEvent::Kind::kReconnecting, lost->status, outage_attempts_);
  } else if (auto* due = std::get_if<ReconnectDue>(&event)) {
    outage_attempts_ = due->attempt;
    if (dialer_ && reconnect_) {
      Dial();
    } else {
      // Nothing can redial: report the dial as failed so the session backs
      // off and, at the end of its resume window, expires.
      session_->TransportLost(
          MakeError(ErrorCode::kConnectionLost, "no dialer to reconnect"),
          SteadyNow());
    }
  } else if (std::holds_alternative<PeerDraining>(event)) {
    Notify(PeerEvent::Kind::kPeerDraining);
  } else if (std::holds_alternative<SessionClosed>(event)) {
    SessionEnded(absl::OkStatus());
    Notify(PeerEvent::Kind::kClosed);
  } else if (auto* sf = std::get_if<SessionFailed>(&event)) {
    if (!established_once_ && MaybeRetryFirst(sf->status)) return;
    SessionEnded(sf->status);
    Notify(PeerEvent::Kind::kFailed, sf->status);
  }
}

SYMWIRE_DECL void Peer::FinishCall(TaskId id, const absl::Status& status) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  const std::shared_ptr<detail::CallState> call = it->second;
  calls_.erase(it);
  call->result = status;
  if (call->callbacks.on_done) call->callbacks.on_done(status);
  if (call->next) {
    auto next = std::move(call->next);
    call->next = nullptr;
    next(status.ok() ? absl::StatusOr<Response>(absl::OutOfRangeError(
                           absl::StrCat("task ", id, " finished")))
                     : absl::StatusOr<Response>(status));
  }
}

SYMWIRE_DECL void Peer::EndIncoming(TaskId id,
                                    const absl::Status& cancel_status) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  const std::shared_ptr<detail::IncomingState> task = it->second;
  incoming_.erase(it);
  task->done = true;
  task->cancelled = true;
  task->cancel_status = cancel_status;
  if (task->on_cancel) {
    auto cb = std::move(task->on_cancel);
    task->on_cancel = nullptr;
    cb(cancel_status);
  }
}

SYMWIRE_DECL absl::Status Peer::RespondFor(detail::IncomingState& task,
                                           absl::Span<const std::byte> payload,
                                           bool final) {
  if (task.done) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("task ", task.id, " already ended"));
  }
  absl::Status st = session_->SendResponse(task.id, payload, final, Now());
  if (st.ok() && final) {
    task.done = true;
    incoming_.erase(task.id);
  }
  if (st.ok()) {
    AfterUserCall();
  } else {
    AfterInput();  // a refusal may have queued Writable
  }
  return st;
}

SYMWIRE_DECL void Peer::RunWritableWaiters() {
  while (!writable_waiters_.empty()) {
    // Move the front out before running it: it may queue more waiters.
    auto waiter = std::move(writable_waiters_.front());
    writable_waiters_.pop_front();
    if (!waiter()) {
      writable_waiters_.push_front(std::move(waiter));
      return;  // still blocked; the next Writable retries, in order
    }
  }
}

SYMWIRE_DECL void Peer::SessionEnded(const absl::Status& status) {
  ended_ = true;
  // Every open task got its terminal event from the session; anything left
  // (never reached by an event) ends with the session's status too.
  const absl::Status end =
      status.ok() ? MakeError(ErrorCode::kSessionClosed, "session closed")
                  : status;
  std::vector<TaskId> ids;
  for (const auto& [id, call] : calls_) ids.push_back(id);
  for (TaskId id : ids) FinishCall(id, end);
  ids.clear();
  for (const auto& [id, task] : incoming_) ids.push_back(id);
  for (TaskId id : ids) EndIncoming(id, end);
  // Blocked submissions and responses now fail (SESSION_CLOSED).
  RunWritableWaiters();
  auto established = std::move(established_waiters_);
  established_waiters_.clear();
  for (auto& w : established) {
    w(established_once_ ? end : (status.ok() ? end : status));
  }
  auto closers = std::move(close_waiters_);
  close_waiters_.clear();
  for (auto& w : closers) w(status);
  if (auto server = server_.lock()) server->OnPeerEnded(this);
}

SYMWIRE_DECL void Peer::UnreadChanged(int64_t delta) {
  unread_bytes_ =
      static_cast<size_t>(static_cast<int64_t>(unread_bytes_) + delta);
  if (transport_ && transport_->reading_paused() &&
      unread_bytes_ <= options_.max_unread_response_bytes / 2) {
    transport_->ResumeReading();
  }
}

SYMWIRE_DECL void Peer::Dial() {
  if (dialing_ || ended_) return;
  dialing_ = true;
  dialer_([weak = weak_from_this()](DialResult result) {
    auto self = weak.lock();
    if (!self) {
      if (result.ok()) (*result)->Close();
      return;
    }
    self->dialing_ = false;
    if (self->ended_) {
      if (result.ok()) (*result)->Close();
      return;
    }
    const absl::Time now = SteadyNow();
    if (!result.ok()) {
      if (!self->established_once_) {
        self->session_->Abort(result.status(), now);
      } else {
        self->session_->TransportLost(result.status(), now);
      }
      self->AfterInput();
      return;
    }
    self->Attach(std::move(*result), true);
    const absl::Status st = self->session_->TransportConnected(now);
    if (!st.ok()) {
      std::shared_ptr<Transport> t = self->transport_;
      self->Detach();
      t->Close(st);
    }
    self->AfterInput();
  });
}

SYMWIRE_DECL bool Peer::MaybeRetryFirst(const absl::Status& status) {
  if (!retry_first_ || user_ended_ || ended_ || !dialer_ || retry_pending_) {
    return false;
  }
  if (detail::DefinitiveFirstFailure(status)) return false;
  ++first_attempts_;  // connections tried so far, all failed
  if (first_attempts_ >= first_max_attempts_) return false;
  // SPEC.md §16.1's backoff, as between reconnects.
  const BackoffConfig& b = options_.session.backoff;
  double delay =
      absl::ToDoubleSeconds(b.initial) *
      std::pow(b.multiplier, static_cast<double>(first_attempts_ - 1));
  delay = std::min(delay, absl::ToDoubleSeconds(b.max));
  std::array<std::byte, 8> r;
  options_.session.random(absl::Span<std::byte>(r));
  uint64_t x;
  std::memcpy(&x, r.data(), sizeof x);
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  delay *= 1.0 + b.jitter * u;
  const absl::Time at = SteadyNow() + absl::Seconds(delay);
  if (at > first_deadline_) return false;
  retry_pending_ = true;
  first_failure_ = status;
  Notify(PeerEvent::Kind::kReconnecting, status, first_attempts_);
  if (!retry_timer_)
    retry_timer_ = std::make_unique<asio::steady_timer>(executor_);
  retry_timer_->expires_at(detail::ToSteady(at));
  retry_timer_->async_wait(
      [weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec || !self->retry_pending_) return;
        self->retry_pending_ = false;
        if (self->ended_) return;
        // The failed session is done; a fresh one handshakes on the next
        // connection (a session that failed its handshake cannot be reused).
        if (self->transport_) {
          std::shared_ptr<Transport> t = self->transport_;
          self->Detach();
          t->Close();
        }
        auto session = Session::Create(self->options_.session, SteadyNow());
        if (!session.ok()) {
          self->SessionEnded(session.status());
          self->Notify(PeerEvent::Kind::kFailed, session.status());
          return;
        }
        self->session_ = std::move(*session);
        self->Dial();
      });
  return true;
}

// ---- Peer: user calls
// --------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<TaskCall> Peer::Submit(
    absl::Span<const std::byte> payload, const TaskOptions& options,
    TaskCallbacks callbacks) {
  // A deadline is relative to now: read the clock for it; otherwise the
  // turn's reading will do (Now()).
  absl::StatusOr<TaskId> id = session_->SubmitTask(
      payload, options, options.deadline ? FreshNow() : Now());
  if (!id.ok()) {
    AfterInput();  // a refusal may have queued Writable
    return id.status();
  }
  auto state = std::make_shared<detail::CallState>();
  state->peer = weak_from_this();
  state->executor = executor_;
  state->id = *id;
  state->callbacks = std::move(callbacks);
  calls_[*id] = state;
  AfterUserCall();
  return TaskCall(std::move(state));
}

SYMWIRE_DECL void Peer::SubmitWhenWritable(
    std::string payload, CallOptions options, TaskCallbacks callbacks,
    absl::AnyInvocable<void(absl::StatusOr<TaskCall>)> done) {
  auto attempt = [weak = weak_from_this(), payload = std::move(payload),
                  options = std::move(options),
                  callbacks = std::move(callbacks),
                  done = std::move(done)]() mutable -> bool {
    auto self = weak.lock();
    if (!self) {
      done(MakeError(ErrorCode::kSessionClosed, "the session is gone"));
      return true;
    }
    // Before the first handshake completes, wait for it (Established runs
    // the waiters); if it fails, the session's end fails this submission.
    if (!self->established_once_ && !self->ended_) return false;
    std::vector<MetadataEntry> metadata;
    metadata.reserve(options.metadata.size());
    for (const auto& [k, v] : options.metadata) {
      metadata.push_back(MetadataEntry{k, v});
    }
    TaskOptions o;
    o.deadline = options.deadline;
    o.trace_parent = options.trace_parent;
    o.trace_state = options.trace_state;
    o.metadata = metadata;
    absl::StatusOr<TaskCall> call = self->Submit(
        absl::MakeConstSpan(reinterpret_cast<const std::byte*>(payload.data()),
                            payload.size()),
        o, callbacks);
    const ErrorCode code = GetErrorCode(call.status());
    if (code == ErrorCode::kNoCredit || code == ErrorCode::kReplayBufferFull) {
      return false;
    }
    done(std::move(call));
    return true;
  };
  if (writable_waiters_.empty() && attempt()) return;
  writable_waiters_.push_back(std::move(attempt));
}

SYMWIRE_DECL void Peer::StartSubmit(
    std::string payload, CallOptions options, TaskCallbacks callbacks,
    detail::Completion<void(absl::StatusOr<TaskCall>)> done) {
  SubmitWhenWritable(std::move(payload), std::move(options),
                     std::move(callbacks), std::move(done));
}

SYMWIRE_DECL void Peer::StartCall(
    std::string payload, CallOptions options,
    detail::Completion<void(absl::StatusOr<std::string>)> done) {
  // One completion, reached either by a failed submission or by the task's
  // end: shared between the two paths.
  struct Collect {
    std::string result;
    detail::Completion<void(absl::StatusOr<std::string>)> done;
  };
  auto collect = std::make_shared<Collect>();
  collect->done = std::move(done);
  TaskCallbacks callbacks;
  callbacks.on_response = [collect](absl::Span<const std::byte> p, bool) {
    collect->result.append(reinterpret_cast<const char*>(p.data()), p.size());
  };
  callbacks.on_done = [collect](const absl::Status& status) {
    if (!collect->done) return;
    auto d = std::move(collect->done);
    collect->done = nullptr;
    if (status.ok()) {
      d(std::move(collect->result));
    } else {
      d(status);
    }
  };
  SubmitWhenWritable(std::move(payload), std::move(options),
                     std::move(callbacks),
                     [collect](const absl::StatusOr<TaskCall>& call) {
                       if (call.ok() || !collect->done) return;
                       auto d = std::move(collect->done);
                       collect->done = nullptr;
                       d(call.status());
                     });
}

SYMWIRE_DECL void Peer::EndPendingRetry() {
  // Between two first-connection attempts the session has already failed:
  // end with its error now instead of dialling again.
  if (!retry_pending_) return;
  retry_pending_ = false;
  if (retry_timer_) retry_timer_->cancel();
  const absl::Status why = first_failure_;
  SessionEnded(why);
  Notify(PeerEvent::Kind::kFailed, why);
}

SYMWIRE_DECL absl::Status Peer::Close() {
  user_ended_ = true;
  if (retry_pending_) {
    EndPendingRetry();
    return absl::OkStatus();
  }
  absl::Status st = session_->Close(FreshNow());
  AfterInput();
  return st;
}

SYMWIRE_DECL void Peer::StartClose(
    detail::Completion<void(absl::Status)> done) {
  if (ended_) {
    done(session_->status());
    return;
  }
  close_waiters_.push_back(std::move(done));
  static_cast<void>(Close());
}

SYMWIRE_DECL void Peer::StartWaitEstablished(
    detail::Completion<void(absl::Status)> done) {
  if (ended_) {
    done(session_->status().ok()
             ? MakeError(ErrorCode::kSessionClosed, "session closed")
             : session_->status());
    return;
  }
  if (established_once_) {
    done(absl::OkStatus());
    return;
  }
  established_waiters_.push_back(std::move(done));
}

SYMWIRE_DECL void Peer::Abort(const absl::Status& status) {
  SYMWIRE_REQUIRE(!status.ok());
  user_ended_ = true;
  if (retry_pending_) {
    EndPendingRetry();
    return;
  }
  session_->Abort(status, FreshNow());
  AfterInput();
}

SYMWIRE_DECL void Peer::KillConnection() {
  if (!transport_) return;
  std::shared_ptr<Transport> t = transport_;
  // Close reports back through OnTransportClosed, like a network failure.
  t->Close(MakeError(ErrorCode::kConnectionLost, "connection killed here"));
}

SYMWIRE_DECL std::string Peer::transport_description() const {
  return transport_ ? transport_->description() : std::string();
}

SYMWIRE_DECL TransportCounters Peer::transport_counters() const {
  return transport_ ? transport_->counters() : TransportCounters{};
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_PEER_IPP_
