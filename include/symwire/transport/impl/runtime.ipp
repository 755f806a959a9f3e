// File: symwire/transport/impl/runtime.ipp
// Out-of-line bodies of runtime.hpp (layer 3): the driver loop, Client and
// Server.
#ifndef SYMWIRE_TRANSPORT_IMPL_RUNTIME_IPP_
#define SYMWIRE_TRANSPORT_IMPL_RUNTIME_IPP_

#include <openssl/rand.h>
#include <sys/socket.h>
#include <unistd.h>

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
  } else if (auto* rr = std::get_if<ResumeRequested>(&event)) {
    if (auto server = server_.lock()) {
      server->OnResumeRequested(shared_from_this(), rr->session_id);
    } else {
      detail::SessionHandover::RejectUnknown(*session_, SteadyNow());
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

// ---- Client ----------------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Peer>> Client::Connect(
    const asio::any_io_executor& executor, Dialer dialer,
    ClientOptions options) {
  const bool reconnect = options.reconnect;
  const bool retry_first = options.retry_first_connect;
  const uint32_t first_attempts = options.first_connect_attempts;
  const absl::Duration first_timeout = options.first_connect_timeout;
  absl::StatusOr<std::shared_ptr<Peer>> peer =
      Peer::Make(executor, std::move(options), SessionSide::kInitiator);
  if (!peer.ok()) return peer.status();
  (*peer)->dialer_ = std::move(dialer);
  (*peer)->reconnect_ = reconnect;
  (*peer)->retry_first_ = retry_first && first_attempts > 1;
  (*peer)->first_max_attempts_ = first_attempts;
  (*peer)->first_deadline_ = SteadyNow() + first_timeout;
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
          std::string source =
              rec ? std::string("tcp") : remote.address().to_string();
          if (!rec && self->SourceBlocked(source)) {
            // Failed authentications (max_auth_failures_per_source):
            // refused before any TLS or symwire work is spent on it.
            ++self->counters_.connections_refused;
            ++self->counters_.auth_refused;
          } else if (!rec && ApplyTcpOptions(socket, self->options_.tcp).ok()) {
            if (upgrade) {
              upgrade(std::move(socket),
                      [weak, source = std::move(source)](DialResult r) mutable {
                        auto s = weak.lock();
                        if (!s) return;
                        if (!r.ok()) {
                          ++s->counters_.handshakes_failed;
                          return;
                        }
                        s->Accept(std::move(*r), std::move(source));
                      });
            } else {
              self->Accept(
                  MakeTransport(std::move(socket), DescribeEndpoint(remote),
                                self->options_.transport),
                  std::move(source));
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
      // The source of a Unix-domain peer is its uid (SO_PEERCRED).
      std::string source = "unix";
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred,
                       &len) == 0) {
        source = absl::StrCat("uid:", cred.uid);
      }
      self->Accept(MakeTransport(std::move(socket), "unix (accepted)",
                                 self->options_.transport),
                   std::move(source));
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
  Accept(std::move(transport), "accepted");
}

SYMWIRE_DECL void Server::Accept(std::shared_ptr<Transport> transport,
                                 std::string source) {
  if (stopping_) {
    transport->Close();
    return;
  }
  if (live_connections_ >= options_.max_connections) {
    ++counters_.connections_refused;
    transport->Close();
    return;
  }
  if (pending_.size() >= options_.max_handshaking_connections) {
    // ServerOptions, "Memory before authentication".
    ++counters_.connections_refused;
    ++counters_.handshakes_refused;
    transport->Close();
    return;
  }
  if (SourceBlocked(source)) {
    ++counters_.connections_refused;
    ++counters_.auth_refused;
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
  p->source_ = std::move(source);
  p->handshake_byte_limit_ = options_.max_handshake_bytes;
  pending_[p.get()] = p;
  p->Attach(std::move(transport), true);
  static_cast<void>(p->session_->TransportConnected(SteadyNow()));
  p->AfterInput();
}

SYMWIRE_DECL void Server::OnEstablished(const std::shared_ptr<Peer>& peer) {
  pending_.erase(peer.get());
  const auto refuse = [&](const std::string& why) {
    ++counters_.sessions_refused;
    // No symwire detail code fits; the peer sees RESOURCE_EXHAUSTED.
    peer->session_->Abort(absl::ResourceExhaustedError(why), SteadyNow());
  };
  if (options_.max_sessions_per_source > 0) {
    auto it = sessions_per_source_.find(peer->source_);
    if (it != sessions_per_source_.end() &&
        it->second >= options_.max_sessions_per_source &&
        !EvictIdle(&peer->source_)) {
      ++counters_.sessions_refused_per_source;
      refuse(absl::StrCat("source ", peer->source_, " holds ", it->second,
                          " sessions (max_sessions_per_source ",
                          options_.max_sessions_per_source, ")"));
      return;
    }
  }
  if (registry_.size() >= options_.max_sessions && !EvictIdle(nullptr)) {
    refuse(absl::StrCat("server holds ", registry_.size(),
                        " sessions, none idle (max_sessions ",
                        options_.max_sessions, ")"));
    return;
  }
  ++counters_.sessions_established;
  peer->registered_ = true;
  registry_[peer->session_->session_id()] = peer;
  ++sessions_per_source_[peer->source_];
  if (peer->transport_) peer->transport_->LimitReadBuffer(SIZE_MAX);
  if (on_session_) on_session_(peer);
}

SYMWIRE_DECL bool Server::EvictIdle(const std::string* source) {
  // A linear scan, only when the registry (or a source) is full: cheap next
  // to the handshake that asks for it.
  std::shared_ptr<Peer> victim;
  for (const auto& [id, p] : registry_) {
    if (p->transport_ || p->ended_ || p->dispatching_) continue;
    if (source != nullptr && p->source_ != *source) continue;
    const Session& s = *p->session_;
    if (s.state() != SessionState::kDisconnected || s.open_tasks() != 0 ||
        s.replay_frames_in_use() != 0 || !p->calls_.empty() ||
        !p->incoming_.empty()) {
      continue;
    }
    if (!victim || p->disconnected_at_ < victim->disconnected_at_) victim = p;
  }
  if (!victim) return false;
  ++counters_.sessions_evicted;
  victim->Abort(MakeError(
      ErrorCode::kSessionExpired,
      absl::StrCat("session evicted while disconnected with nothing to "
                   "resume: the server's registry is full",
                   source != nullptr ? absl::StrCat(" for source ", *source)
                                     : std::string())));
  // Abort ended it (SessionEnded -> OnPeerEnded unregisters it).
  SYMWIRE_ASSERT(!victim->registered_);
  return true;
}

SYMWIRE_DECL bool Server::SourceBlocked(const std::string& source) {
  if (options_.max_auth_failures_per_source == 0) return false;
  auto it = auth_failures_.find(source);
  if (it == auth_failures_.end()) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now < it->second.blocked_until) return true;
  if (it->second.count >= options_.max_auth_failures_per_source) {
    auth_failures_.erase(it);  // the block is over: a fresh window
  }
  return false;
}

SYMWIRE_DECL void Server::CountAuthFailure(const std::string& source) {
  ++counters_.auth_failures;
  if (options_.max_auth_failures_per_source == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (auth_failures_.size() >= auth_sweep_at_) {
    // Bounded memory against many sources: forget the stale ones.
    absl::erase_if(auth_failures_, [&](const auto& e) {
      return now >= e.second.blocked_until &&
             now - e.second.window_start >= options_.auth_failure_window;
    });
    auth_sweep_at_ = std::max<size_t>(1024, 2 * auth_failures_.size());
  }
  AuthFailures& f = auth_failures_[source];
  if (f.count == 0 || now - f.window_start >= options_.auth_failure_window) {
    f.window_start = now;
    f.count = 0;
  }
  if (++f.count >= options_.max_auth_failures_per_source) {
    f.blocked_until = now + options_.auth_block_time;
  }
}

SYMWIRE_DECL void Server::OnResumeRequested(const std::shared_ptr<Peer>& fresh,
                                            const SessionId& id) {
  const absl::Time now = SteadyNow();
  auto it = registry_.find(id);
  if (it == registry_.end() || stopping_) {
    ++counters_.resumes_rejected;
    detail::SessionHandover::RejectUnknown(*fresh->session_, now);
    fresh->AfterInput();
    return;
  }
  const std::shared_ptr<Peer> existing = it->second;
  const absl::Status st = detail::SessionHandover::Adopt(
      *existing->session_, *fresh->session_, false, now);
  // Whatever `fresh` still has goes out first, on its connection.
  fresh->DrainTransmit();
  // The connection moved when `fresh` is closed, which is on success only:
  // a failed resume is answered on `fresh` and leaves `existing` as it was.
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
  if (t) {
    existing->Attach(std::move(t), false);
    // WELCOME first, flushed alone, then the replay in small writes.
    if (st.ok()) existing->BeginReplay(true);
  }
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
    if (GetErrorCode(peer->session_->status()) == ErrorCode::kUnauthenticated) {
      CountAuthFailure(peer->source_);
    }
  }
  if (peer->registered_) {
    peer->registered_ = false;
    auto it = registry_.find(peer->session_->session_id());
    if (it != registry_.end() && it->second.get() == peer) {
      registry_.erase(it);
      auto src = sessions_per_source_.find(peer->source_);
      if (src != sessions_per_source_.end() && --src->second == 0) {
        sessions_per_source_.erase(src);
      }
    }
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
