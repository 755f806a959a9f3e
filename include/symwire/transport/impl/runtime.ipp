// File: symwire/transport/impl/runtime.ipp
// Out-of-line bodies of runtime.hpp (layer 3): the driver loop, Client and
// Server.
#ifndef SYMWIRE_TRANSPORT_IMPL_RUNTIME_IPP_
#define SYMWIRE_TRANSPORT_IMPL_RUNTIME_IPP_

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/transport/runtime.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

namespace detail {

struct CallState {
  std::weak_ptr<Peer> peer;
  asio::any_io_executor executor;
  TaskId id = 0;
  TaskCallbacks callbacks;
  // Unread responses (async_next), from queue_head. A vector, not a
  // std::deque: libstdc++'s deque allocates when constructed, and most
  // calls (TaskCallbacks) never queue anything.
  std::vector<Response> queue;
  size_t queue_head = 0;
  std::optional<absl::Status> result;
  bool retryable = false;
  Completion<void(absl::StatusOr<Response>)> next;
};

struct IncomingState {
  std::weak_ptr<Peer> peer;
  asio::any_io_executor executor;
  TaskId id = 0;
  absl::Span<const std::byte> payload;  // during the handler call only
  std::optional<absl::Time> deadline;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::optional<TraceParent> trace_parent;
  bool cancelled = false;
  bool done = false;
  absl::Status cancel_status;
  std::function<void(const absl::Status&)> on_cancel;
};

inline std::chrono::steady_clock::time_point ToSteady(absl::Time t) {
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          absl::ToChronoNanoseconds(t - absl::UnixEpoch())));
}

}  // namespace detail

// ---- free functions ------------------------------------------------------

SYMWIRE_DECL RandomSource SystemRandom() {
  return [](absl::Span<std::byte> out) {
    // RAND_bytes fails only if the system's entropy source is unusable;
    // continuing with predictable ids and tokens would be worse than
    // stopping.
    SYMWIRE_REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                               static_cast<int>(out.size())) == 1);
  };
}

SYMWIRE_DECL absl::Time SteadyNow() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()));
}

SYMWIRE_DECL std::string_view PeerEventName(PeerEvent::Kind kind) {
  switch (kind) {
    case PeerEvent::Kind::kConnected:
      return "connected";
    case PeerEvent::Kind::kReconnecting:
      return "reconnecting";
    case PeerEvent::Kind::kResumed:
      return "resumed";
    case PeerEvent::Kind::kPeerDraining:
      return "peer-draining";
    case PeerEvent::Kind::kClosed:
      return "closed";
    case PeerEvent::Kind::kFailed:
      return "failed";
  }
  return "unknown";
}

// ---- TaskCall --------------------------------------------------------------

SYMWIRE_DECL TaskId TaskCall::id() const { return state_->id; }
SYMWIRE_DECL bool TaskCall::done() const { return state_->result.has_value(); }
SYMWIRE_DECL bool TaskCall::retryable() const { return state_->retryable; }
SYMWIRE_DECL std::optional<absl::Status> TaskCall::result() const {
  return state_->result;
}
SYMWIRE_DECL asio::any_io_executor TaskCall::get_executor() const {
  return state_->executor;
}

SYMWIRE_DECL void TaskCall::StartNext(
    detail::Completion<void(absl::StatusOr<Response>)> done) {
  detail::CallState& s = *state_;
  if (s.queue_head < s.queue.size()) {
    Response r = std::move(s.queue[s.queue_head++]);
    if (s.queue_head == s.queue.size()) {
      s.queue.clear();
      s.queue_head = 0;
    }
    if (auto peer = s.peer.lock()) {
      peer->UnreadChanged(-static_cast<int64_t>(r.payload.size()));
    }
    done(std::move(r));
    return;
  }
  if (s.result.has_value()) {
    done(s.result->ok() ? absl::OutOfRangeError(absl::StrCat(
                              "task ", s.id, " finished: no more responses"))
                        : *s.result);
    return;
  }
  if (s.next) {
    done(absl::FailedPreconditionError(
        absl::StrCat("task ", s.id, ": async_next is already pending")));
    return;
  }
  s.next = std::move(done);
}

SYMWIRE_DECL absl::Status TaskCall::Cancel() {
  auto peer = state_->peer.lock();
  if (!peer || state_->result.has_value()) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("task ", state_->id, " already ended"));
  }
  absl::Status st = peer->session_->CancelTask(state_->id, peer->FreshNow());
  peer->AfterInput();
  return st;
}

// ---- IncomingTask ----------------------------------------------------------

SYMWIRE_DECL TaskId IncomingTask::id() const { return state_->id; }
SYMWIRE_DECL absl::Span<const std::byte> IncomingTask::payload() const {
  return state_->payload;
}
SYMWIRE_DECL std::string IncomingTask::payload_string() const {
  return std::string(reinterpret_cast<const char*>(state_->payload.data()),
                     state_->payload.size());
}
SYMWIRE_DECL std::optional<absl::Time> IncomingTask::deadline() const {
  return state_->deadline;
}
SYMWIRE_DECL std::optional<absl::Duration> IncomingTask::deadline_remaining()
    const {
  if (!state_->deadline) return std::nullopt;
  return std::max(absl::ZeroDuration(), *state_->deadline - SteadyNow());
}
SYMWIRE_DECL const std::vector<std::pair<std::string, std::string>>&
IncomingTask::metadata() const {
  return state_->metadata;
}
SYMWIRE_DECL std::optional<TraceParent> IncomingTask::trace_parent() const {
  return state_->trace_parent;
}
SYMWIRE_DECL bool IncomingTask::cancelled() const { return state_->cancelled; }
SYMWIRE_DECL bool IncomingTask::done() const { return state_->done; }
SYMWIRE_DECL asio::any_io_executor IncomingTask::get_executor() const {
  return state_->executor;
}

SYMWIRE_DECL void IncomingTask::OnCancel(
    std::function<void(const absl::Status&)> callback) {
  if (state_->cancelled) {
    asio::post(state_->executor, [cb = std::move(callback),
                                  st = state_->cancel_status] { cb(st); });
    return;
  }
  state_->on_cancel = std::move(callback);
}

SYMWIRE_DECL absl::Status IncomingTask::Respond(
    absl::Span<const std::byte> payload, bool final) {
  auto peer = state_->peer.lock();
  if (!peer) {
    return MakeError(ErrorCode::kSessionClosed, "the session is gone");
  }
  return peer->RespondFor(*state_, payload, final);
}

SYMWIRE_DECL absl::Status IncomingTask::Fail(const absl::Status& status,
                                             bool retryable) {
  SYMWIRE_REQUIRE(!status.ok());
  auto peer = state_->peer.lock();
  if (!peer) {
    return MakeError(ErrorCode::kSessionClosed, "the session is gone");
  }
  if (state_->done) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("task ", state_->id, " already ended"));
  }
  absl::Status st =
      peer->session_->FailTask(state_->id, status, retryable, peer->FreshNow());
  if (st.ok()) {
    state_->done = true;
    peer->incoming_.erase(state_->id);
  }
  peer->AfterInput();
  return st;
}

SYMWIRE_DECL void IncomingTask::StartRespond(
    std::string payload, bool final,
    detail::Completion<void(absl::Status)> done) {
  auto peer = state_->peer.lock();
  if (!peer) {
    done(MakeError(ErrorCode::kSessionClosed, "the session is gone"));
    return;
  }
  auto attempt = [state = state_, payload = std::move(payload), final,
                  done = std::move(done)]() mutable -> bool {
    auto p = state->peer.lock();
    absl::Status st =
        p ? p->RespondFor(
                *state,
                absl::MakeConstSpan(
                    reinterpret_cast<const std::byte*>(payload.data()),
                    payload.size()),
                final)
          : MakeError(ErrorCode::kSessionClosed, "the session is gone");
    if (GetErrorCode(st) == ErrorCode::kReplayBufferFull) return false;
    done(std::move(st));
    return true;
  };
  if (peer->writable_waiters_.empty() && attempt()) return;
  peer->writable_waiters_.push_back(std::move(attempt));
}

// ---- Peer: construction
// ------------------------------------------------------

SYMWIRE_DECL Peer::Peer(Private, asio::any_io_executor executor,
                        std::unique_ptr<Session> session, PeerOptions options)
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
  if (auto server = server_.lock()) server->OnConnectionCountChanged(1);
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
  }
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
  // Errors are reported as events (ConnectionLost, SessionFailed).
  static_cast<void>(session_->Receive(bytes, FreshNow()));
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
  } else if (auto* rr = std::get_if<ResumeRequested>(&event)) {
    if (auto server = server_.lock()) {
      server->OnResumeRequested(shared_from_this(), rr->session_id);
    } else {
      session_->RejectResume(SteadyNow());
    }
  } else if (std::holds_alternative<PeerDraining>(event)) {
    Notify(PeerEvent::Kind::kPeerDraining);
  } else if (std::holds_alternative<SessionClosed>(event)) {
    SessionEnded(absl::OkStatus());
    Notify(PeerEvent::Kind::kClosed);
  } else if (auto* sf = std::get_if<SessionFailed>(&event)) {
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

SYMWIRE_DECL absl::Status Peer::Close() {
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

// ---- Client ----------------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Peer>> Client::Connect(
    const asio::any_io_executor& executor, Dialer dialer,
    ClientOptions options) {
  const bool reconnect = options.reconnect;
  absl::StatusOr<std::shared_ptr<Peer>> peer =
      Peer::Make(executor, std::move(options), SessionSide::kInitiator);
  if (!peer.ok()) return peer.status();
  (*peer)->dialer_ = std::move(dialer);
  (*peer)->reconnect_ = reconnect;
  asio::dispatch(executor, [p = *peer] { p->Dial(); });
  return peer;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Peer>> Client::Start(
    const std::shared_ptr<Transport>& transport, PeerOptions options) {
  absl::StatusOr<std::shared_ptr<Peer>> peer = Peer::Make(
      transport->executor(), std::move(options), SessionSide::kInitiator);
  if (!peer.ok()) return peer.status();
  (*peer)->reconnect_ = false;
  asio::dispatch(transport->executor(), [p = *peer, transport] {
    p->Attach(transport, true);
    static_cast<void>(p->session_->TransportConnected(SteadyNow()));
    p->AfterInput();
  });
  return peer;
}

// ---- Server ----------------------------------------------------------------

SYMWIRE_DECL size_t
Server::SessionIdHash::operator()(const SessionId& id) const {
  uint64_t h = 0;
  static_assert(sizeof(SessionId) >= sizeof(h));
  std::memcpy(&h, id.data(), sizeof(h));  // random bytes (SPEC.md §16.2)
  return static_cast<size_t>(h);
}

SYMWIRE_DECL Server::Server(Private, asio::any_io_executor executor,
                            ServerOptions options, SessionHandler on_session)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      on_session_(std::move(on_session)) {}

SYMWIRE_DECL Server::~Server() {
  boost::system::error_code ignored;
  for (auto& a : tcp_acceptors_) a->close(ignored);
  for (auto& a : unix_acceptors_) a->close(ignored);
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Server>> Server::Create(
    asio::any_io_executor executor, ServerOptions options,
    SessionHandler on_session) {
  options.session.side = SessionSide::kAcceptor;
  if (!options.session.random) options.session.random = SystemRandom();
  if (absl::Status st = ValidateConfig(options.session); !st.ok()) return st;
  return std::make_shared<Server>(Private{}, std::move(executor),
                                  std::move(options), std::move(on_session));
}

SYMWIRE_DECL absl::StatusOr<asio::ip::tcp::endpoint> Server::ListenTcp(
    const std::string& address, uint16_t port, Upgrade upgrade) {
  boost::system::error_code ec;
  const asio::ip::address addr = asio::ip::make_address(address, ec);
  if (ec) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kConnectionLost,
                     absl::StrCat("listen: bad address '", address, "'"));
  }
  const asio::ip::tcp::endpoint endpoint(addr, port);
  auto acceptor = std::make_shared<asio::ip::tcp::acceptor>(executor_);
  const std::string where = DescribeEndpoint(endpoint);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ToStatus(ec, absl::StrCat("listen on ", where));
  const asio::ip::tcp::endpoint bound = acceptor->local_endpoint(ec);
  if (ec) return ToStatus(ec, absl::StrCat("listen on ", where));
  tcp_acceptors_.push_back(acceptor);
  AcceptTcpLoop(acceptor, std::move(upgrade));
  return bound;
}

SYMWIRE_DECL absl::Status Server::ListenUnix(const std::string& path) {
  ::unlink(path.c_str());  // a stale socket file from an earlier run
  boost::system::error_code ec;
  auto acceptor =
      std::make_shared<asio::local::stream_protocol::acceptor>(executor_);
  const asio::local::stream_protocol::endpoint endpoint(path);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ToStatus(ec, absl::StrCat("listen on unix ", path));
  unix_acceptors_.push_back(acceptor);
  AcceptUnixLoop(acceptor);
  return absl::OkStatus();
}

SYMWIRE_DECL void Server::AcceptTcpLoop(
    const std::shared_ptr<asio::ip::tcp::acceptor>& acceptor, Upgrade upgrade) {
  acceptor->async_accept(
      [weak = weak_from_this(), acceptor, upgrade = std::move(upgrade)](
          const boost::system::error_code& ec,
          asio::ip::tcp::socket socket) mutable {
        auto self = weak.lock();
        if (!self || self->stopping_ || !acceptor->is_open()) return;
        if (!ec) {
          boost::system::error_code rec;
          const asio::ip::tcp::endpoint remote = socket.remote_endpoint(rec);
          if (!rec && ApplyTcpOptions(socket, self->options_.tcp).ok()) {
            if (upgrade) {
              upgrade(std::move(socket), [weak](DialResult r) {
                auto s = weak.lock();
                if (!s) return;
                if (!r.ok()) {
                  ++s->counters_.handshakes_failed;
                  return;
                }
                s->Accept(std::move(*r));
              });
            } else {
              self->Accept(MakeTransport(std::move(socket),
                                         DescribeEndpoint(remote),
                                         self->options_.transport));
            }
          }
          self->AcceptTcpLoop(acceptor, std::move(upgrade));
          return;
        }
        // Out of descriptors or a transient failure: retry shortly rather than
        // spin on an error the next accept returns at once.
        auto timer = std::make_shared<asio::steady_timer>(self->executor_);
        timer->expires_after(std::chrono::milliseconds(50));
        timer->async_wait([weak, acceptor, timer, upgrade = std::move(upgrade)](
                              const boost::system::error_code&) mutable {
          if (auto s = weak.lock())
            s->AcceptTcpLoop(acceptor, std::move(upgrade));
        });
      });
}

SYMWIRE_DECL void Server::AcceptUnixLoop(
    const std::shared_ptr<asio::local::stream_protocol::acceptor>& acceptor) {
  acceptor->async_accept([weak = weak_from_this(), acceptor](
                             const boost::system::error_code& ec,
                             asio::local::stream_protocol::socket socket) {
    auto self = weak.lock();
    if (!self || self->stopping_ || !acceptor->is_open()) return;
    if (!ec) {
      self->Accept(MakeTransport(std::move(socket), "unix (accepted)",
                                 self->options_.transport));
      self->AcceptUnixLoop(acceptor);
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(self->executor_);
    timer->expires_after(std::chrono::milliseconds(50));
    timer->async_wait(
        [weak, acceptor, timer](const boost::system::error_code&) {
          if (auto s = weak.lock()) s->AcceptUnixLoop(acceptor);
        });
  });
}

SYMWIRE_DECL void Server::Accept(std::shared_ptr<Transport> transport) {
  if (stopping_) {
    transport->Close();
    return;
  }
  if (live_connections_ >= options_.max_connections) {
    ++counters_.connections_refused;
    transport->Close();
    return;
  }
  ++counters_.connections_accepted;
  absl::StatusOr<std::shared_ptr<Peer>> peer =
      Peer::Make(executor_, options_, SessionSide::kAcceptor);
  if (!peer.ok()) {
    transport->Close(peer.status());
    return;
  }
  std::shared_ptr<Peer> p = std::move(*peer);
  p->server_ = weak_from_this();
  pending_[p.get()] = p;
  p->Attach(std::move(transport), true);
  static_cast<void>(p->session_->TransportConnected(SteadyNow()));
  p->AfterInput();
}

SYMWIRE_DECL void Server::OnEstablished(const std::shared_ptr<Peer>& peer) {
  pending_.erase(peer.get());
  if (registry_.size() >= options_.max_sessions) {
    ++counters_.sessions_refused;
    // No symwire detail code fits; the peer sees RESOURCE_EXHAUSTED.
    peer->session_->Abort(
        absl::ResourceExhaustedError(absl::StrCat(
            "server holds ", registry_.size(), " sessions (max_sessions)")),
        SteadyNow());
    return;
  }
  ++counters_.sessions_established;
  peer->registered_ = true;
  registry_[peer->session_->session_id()] = peer;
  if (on_session_) on_session_(peer);
}

SYMWIRE_DECL void Server::OnResumeRequested(const std::shared_ptr<Peer>& fresh,
                                            const SessionId& id) {
  const absl::Time now = SteadyNow();
  auto it = registry_.find(id);
  if (it == registry_.end() || stopping_) {
    ++counters_.resumes_rejected;
    fresh->session_->RejectResume(now);
    fresh->AfterInput();
    return;
  }
  const std::shared_ptr<Peer> existing = it->second;
  const absl::Status st =
      existing->session_->AdoptConnection(*fresh->session_, now);
  // Whatever `fresh` still has goes out first, on its connection.
  fresh->DrainTransmit();
  // The connection moved when `fresh` is closed: on success, and on
  // RESUME_GAP / BAD_ACK, where `existing` sends the error on it.
  const bool moved = fresh->session_->state() == SessionState::kClosed;
  if (!moved) {
    ++counters_.resumes_rejected;
    fresh->AfterInput();
    return;
  }
  if (st.ok()) ++counters_.resumes;
  std::shared_ptr<Transport> t = fresh->transport_;
  fresh->Detach();
  if (existing->transport_) {
    // A half-open connection the new one supersedes (the session already
    // reported ConnectionLost for it).
    std::shared_ptr<Transport> old = existing->transport_;
    existing->Detach();
    old->Close(MakeError(ErrorCode::kConnectionLost,
                         "superseded by a resumed connection"));
  }
  if (t) existing->Attach(std::move(t), false);
  existing->AfterInput();
  fresh->AfterInput();
}

SYMWIRE_DECL void Server::OnPeerEnded(Peer* peer) {
  // The peer stays alive until its own call stack unwinds (it holds a
  // reference in AfterInput). A connection that ends failed before its
  // session was established is a failed handshake (bad bytes, timeout,
  // authentication, a rejected resume); a resumed one ends kClosed.
  if (pending_.erase(peer) > 0 && !stopping_ &&
      peer->session_->state() == SessionState::kFailed) {
    ++counters_.handshakes_failed;
  }
  if (peer->registered_) {
    auto it = registry_.find(peer->session_->session_id());
    if (it != registry_.end() && it->second.get() == peer) registry_.erase(it);
  }
  MaybeFinishShutdown();
}

SYMWIRE_DECL std::shared_ptr<Peer> Server::Find(const SessionId& id) const {
  auto it = registry_.find(id);
  return it == registry_.end() ? nullptr : it->second;
}

SYMWIRE_DECL void Server::Stop() {
  stopping_ = true;
  boost::system::error_code ignored;
  for (auto& a : tcp_acceptors_) a->close(ignored);
  for (auto& a : unix_acceptors_) a->close(ignored);
  std::vector<std::shared_ptr<Peer>> all;
  for (const auto& [p, peer] : pending_) all.push_back(peer);
  for (const auto& [id, peer] : registry_) all.push_back(peer);
  // Plain UNAVAILABLE (no symwire detail code fits): retry elsewhere.
  const absl::Status why = absl::UnavailableError("server stopped");
  for (const auto& peer : all) {
    if (!peer->ended_) peer->Abort(why);
  }
  MaybeFinishShutdown();
}

SYMWIRE_DECL void Server::StartShutdown(
    detail::Completion<void(absl::Status)> done) {
  shutdown_waiters_.push_back(std::move(done));
  if (stopping_) {
    MaybeFinishShutdown();
    return;
  }
  stopping_ = true;
  boost::system::error_code ignored;
  for (auto& a : tcp_acceptors_) a->close(ignored);
  for (auto& a : unix_acceptors_) a->close(ignored);
  std::vector<std::shared_ptr<Peer>> handshaking;
  for (const auto& [p, peer] : pending_) handshaking.push_back(peer);
  for (const auto& peer : handshaking) {
    peer->Abort(absl::UnavailableError("server shutting down"));
  }
  std::vector<std::shared_ptr<Peer>> live;
  for (const auto& [id, peer] : registry_) live.push_back(peer);
  for (const auto& peer : live) static_cast<void>(peer->Close());
  drain_timer_ = std::make_unique<asio::steady_timer>(executor_);
  drain_timer_->expires_after(options_.drain_timeout);
  drain_timer_->async_wait(
      [weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec) return;
        self->Stop();  // whatever did not drain in time
      });
  MaybeFinishShutdown();
}

SYMWIRE_DECL void Server::MaybeFinishShutdown() {
  if (!stopping_ || !pending_.empty() || !registry_.empty()) return;
  if (drain_timer_) drain_timer_->cancel();
  auto waiters = std::move(shutdown_waiters_);
  shutdown_waiters_.clear();
  for (auto& w : waiters) w(absl::OkStatus());
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_RUNTIME_IPP_
