// File: symwire/runtime/impl/channel.ipp
// Out-of-line bodies of runtime/channel.hpp (layer 3b): construction, the
// event handlers (one per Event type), the task table and the user calls.
// The driver loop itself is in impl/connection_driver.ipp.
#ifndef SYMWIRE_RUNTIME_IMPL_CHANNEL_IPP_
#define SYMWIRE_RUNTIME_IMPL_CHANNEL_IPP_

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

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/detail/client_part.hpp"
#include "symwire/runtime/detail/server_part.hpp"
#include "symwire/runtime/detail/task_state.hpp"
#include "symwire/runtime/server.hpp"
#include "symwire/runtime/trace.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

// ---- Channel: construction
// ------------------------------------------------------

SYMWIRE_DECL Channel::Channel(Private, asio::any_io_executor executor,
                              std::shared_ptr<Session> session,
                              ChannelOptions options)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      session_(std::move(session)),
      driver_(*this, executor_, session_, options_.early_flush_bytes,
              options_.send_backlog_bytes) {}

SYMWIRE_DECL Channel::~Channel() { driver_.CloseQuietly(); }

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Channel>> Channel::Make(
    asio::any_io_executor executor, ChannelOptions options, SessionSide side) {
  options.session.side = side;
  if (!options.session.random) options.session.random = SystemRandom();
  auto channel = std::make_shared<Channel>(Private{}, std::move(executor),
                                           nullptr, std::move(options));
  auto session =
      Session::Create(channel->options_.session, channel->Now(Reading::kFresh));
  if (!session.ok()) return session.status();
  channel->session_ = std::move(*session);
  return channel;
}

SYMWIRE_DECL std::shared_ptr<Server> Channel::OwningServer() const {
  return server_ ? server_->server.lock() : nullptr;
}

SYMWIRE_DECL void Channel::Notify(ChannelEvent::Kind kind, absl::Status status,
                                  uint32_t attempt) {
  if (observer_) observer_(ChannelEvent{kind, std::move(status), attempt});
}

SYMWIRE_DECL void Channel::HandleEvent(Event& event) {
  std::visit([this](auto& e) { Handle(e); }, event);
}

SYMWIRE_DECL TaskInfo Channel::ObservedInfo(
    const detail::ObservedTask& t, TaskId id, TaskInfo::Side side,
    const std::optional<TraceParent>& trace) const {
  TaskInfo info;
  info.method = t.method;
  info.peer = observed_peer_;
  info.trace_parent = trace ? &*trace : nullptr;
  info.id = id;
  info.side = side;
  return info;
}

SYMWIRE_DECL void Channel::ObserveResponse(
    detail::ObservedTask& t, TaskId id, TaskInfo::Side side,
    const std::optional<TraceParent>& trace, size_t bytes) {
  (side == TaskInfo::Side::kSubmitter ? t.bytes_in : t.bytes_out) += bytes;
  if (t.responded) return;
  t.responded = true;
  options_.observer->OnTaskFirstResponse(ObservedInfo(t, id, side, trace),
                                         Now(Reading::kFresh) - t.since);
}

SYMWIRE_DECL void Channel::ObserveFinished(
    detail::ObservedTask& t, TaskId id, TaskInfo::Side side,
    const std::optional<TraceParent>& trace, const absl::Status& status) {
  if (t.finished) return;
  t.finished = true;
  options_.observer->OnTaskFinished(
      ObservedInfo(t, id, side, trace),
      TaskEnd{status, Now(Reading::kFresh) - t.since, t.bytes_in, t.bytes_out});
}

SYMWIRE_DECL void Channel::Handle(TaskReceived& t) {
  auto state = std::make_shared<detail::IncomingState>();
  state->channel = weak_from_this();
  state->channel_ptr = this;
  state->executor = executor_;
  state->id = t.task;
  state->payload = t.payload();
  state->deadline = t.deadline;
  state->trace_parent = t.frame.trace_parent();
  for (const MetadataEntry& m : t.frame.metadata()) {
    state->metadata.emplace_back(std::string(m.key), std::string(m.value));
  }
  incoming_[t.task] = state;
  if (RuntimeObserver* obs = options_.observer.get()) {
    state->observed.method = std::string(t.frame.method());
    state->observed.since = Now(Reading::kFresh);
    state->observed.bytes_in = t.payload().size();
    obs->OnTaskStarted(ObservedInfo(state->observed, t.task,
                                    TaskInfo::Side::kExecutor,
                                    state->trace_parent));
  }
  // Routing (Server::Handle): a task with a method goes to its handler, the
  // health method to the server, an unknown method is UNIMPLEMENTED; a task
  // without one to the catch-all handler_.
  const TaskHandler* handler = &handler_;
  if (const absl::string_view method = t.frame.method(); !method.empty()) {
    state->method = std::string(method);
    detail::MethodTable* methods = server_ ? server_->methods.get() : nullptr;
    handler = methods ? methods->Find(method) : nullptr;
    if (handler == nullptr) {
      IncomingTask task(state);
      if (method == kHealthMethod) {
        // SPEC.md §13.6: one byte, the final response. async_respond waits
        // for room in the send window instead of failing. A Client's
        // channel (role peer) has no server: it serves while it runs.
        const auto health = static_cast<char>(methods ? methods->Health()
                                                      : HealthStatus::kServing);
        task.async_respond(std::string(1, health), true,
                           [](const absl::Status&) {});
      } else {
        // SPEC.md §13.5: not run, so retryable (another agent may have it).
        static_cast<void>(
            task.Fail(MakeError(ErrorCode::kUnimplemented,
                                absl::StrCat("unknown method \"",
                                             absl::CHexEscape(method), "\"")),
                      true));
      }
      state->payload = {};
      return;
    }
  }
  if (*handler) {
    (*handler)(IncomingTask(state));
  } else {
    static_cast<void>(session_->FailTask(
        t.task, absl::UnimplementedError("no task handler"), true, Now()));
    if (options_.observer) {
      ObserveFinished(state->observed, t.task, TaskInfo::Side::kExecutor,
                      state->trace_parent,
                      absl::UnimplementedError("no task handler"));
    }
    state->done = true;
    incoming_.erase(t.task);
  }
  state->payload = {};
}

SYMWIRE_DECL void Channel::Handle(ResponseReceived& r) {
  if (r.task != found_call_id_ || found_call_id_ == 0) {
    auto it = calls_.find(r.task);
    if (it == calls_.end()) return;
    found_call_id_ = r.task;
    found_call_ = &it->second;
  }
  // A copy: the callbacks may end the call (Cancel) and so erase its slot.
  const std::shared_ptr<detail::CallState> call = *found_call_;
  if (options_.observer) {
    ObserveResponse(call->observed, r.task, TaskInfo::Side::kSubmitter,
                    call->trace_parent, r.payload.size());
  }
  if (call->callbacks.on_response) {
    call->callbacks.on_response(r.payload, r.final);
  } else if (!call->callbacks.on_done) {
    Response resp{std::string(reinterpret_cast<const char*>(r.payload.data()),
                              r.payload.size()),
                  r.final};
    if (call->next) {
      auto next = std::move(call->next);
      call->next = nullptr;
      next(std::move(resp));
    } else {
      UnreadChanged(static_cast<int64_t>(resp.payload.size()));
      call->queue.push_back(std::move(resp));
    }
  }
  if (r.final) FinishCall(r.task, absl::OkStatus());
}

namespace detail {
// ServerGone: on a client, a session that can no longer be resumed (the
// resume window passed, or the server answered a resume with
// SESSION_EXPIRED because it restarted or forgot the session) means "the
// server is gone": kUnavailable, which a user can act on (go elsewhere,
// reconnect), instead of SESSION_EXPIRED's canonical kDataLoss. The
// symwire detail code (SESSION_EXPIRED) and the message are kept.
inline absl::Status ServerGone(const absl::Status& status) {
  if (GetErrorCode(status) != ErrorCode::kSessionExpired) return status;
  absl::Status out(absl::StatusCode::kUnavailable,
                   absl::StrCat("the server is gone: ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& p) {
    out.SetPayload(url, p);
  });
  return out;
}
}  // namespace detail

SYMWIRE_DECL void Channel::Handle(TaskFailed& f) {
  auto it = calls_.find(f.task);
  if (it != calls_.end()) {
    it->second->retryable = f.retryable;
    FinishCall(f.task, client_ ? detail::ServerGone(f.status) : f.status);
  } else {
    EndIncoming(f.task, f.status);
  }
}

SYMWIRE_DECL void Channel::Handle(TaskCancelled& c) {
  if (c.submitted_here) {
    FinishCall(c.task, c.status);
  } else {
    EndIncoming(c.task, c.status);
  }
}

SYMWIRE_DECL void Channel::Handle(Writable&) { RunWritableWaiters(); }

SYMWIRE_DECL void Channel::Handle(Established& e) {
  const bool first = !established_once_;
  established_once_ = true;
  outage_attempts_ = 0;
  if (e.resumed) ++reconnects_;
  if (client_) client_->OutageEnds();
  auto waiters = std::move(established_waiters_);
  established_waiters_.clear();
  for (auto& w : waiters) w(absl::OkStatus());
  // Submissions made before the handshake, or during an outage with
  // CallOptions::wait_for_ready.
  RunWritableWaiters();
  if (auto server = OwningServer(); server && first && !server_->registered) {
    server->OnEstablished(shared_from_this());
  }
  if (e.resumed && options_.observer) {
    options_.observer->OnConnectionResumed(
        ConnectionInfo{observed_peer_, server_ ? server_->source : ""});
  }
  Notify(e.resumed ? ChannelEvent::Kind::kResumed
                   : ChannelEvent::Kind::kConnected);
}

SYMWIRE_DECL void Channel::Handle(ConnectionLost& lost) {
  // A client that cannot redial (Client::Start over pipes) ends here; a
  // server-side session waits for a resume.
  if (!established_once_ || (client_ && !client_->reconnect)) {
    // The first connection or handshake failed, or this transport cannot
    // be redialled: end the session rather than retry unseen.
    session_->Abort(lost.status, Now());
    return;
  }
  if (client_) {
    // The first loss of an outage begins it; a loss while it lasts (a
    // resume handshake's connection) is a failure (CallOptions::
    // wait_for_ready: calls fail fast from then on).
    client_->NoteFailure(lost.status, Now(Reading::kFresh));
    client_->OutageBegins(*this);
  }
  Notify(ChannelEvent::Kind::kReconnecting, lost.status, outage_attempts_);
}

SYMWIRE_DECL void Channel::Handle(ReconnectDue& due) {
  outage_attempts_ = due.attempt;
  if (client_ && client_->dialer && client_->reconnect) {
    if (observer_) {
      ChannelEvent event{ChannelEvent::Kind::kReconnectAttempt,
                         client_->last_failure, due.attempt};
      event.delay = std::max(absl::ZeroDuration(),
                             Now(Reading::kFresh) - client_->last_failure_at);
      observer_(event);
    }
    client_->Dial(*this);
  } else {
    // Nothing can redial: report the dial as failed so the session backs
    // off and, at the end of its resume window, expires.
    session_->TransportLost(
        MakeError(ErrorCode::kConnectionLost, "no dialer to reconnect"), Now());
  }
}

SYMWIRE_DECL void Channel::Handle(ResumeRequested&) {
  // Informational: the Server's Endpoint, which accepted the connection,
  // routes the resume itself (Server::OnHandshakeData).
}

SYMWIRE_DECL void Channel::Handle(PeerDraining&) {
  Notify(ChannelEvent::Kind::kPeerDraining);
}

SYMWIRE_DECL void Channel::Handle(SessionClosed&) {
  SessionEnded(absl::OkStatus());
  Notify(ChannelEvent::Kind::kClosed);
}

SYMWIRE_DECL void Channel::Handle(SessionFailed& sf) {
  if (!established_once_ && client_ &&
      client_->MaybeRetryFirst(*this, sf.status)) {
    return;
  }
  const absl::Status why = client_ ? detail::ServerGone(sf.status) : sf.status;
  SessionEnded(why);
  Notify(ChannelEvent::Kind::kFailed, why);
}

SYMWIRE_DECL void Channel::FinishCall(TaskId id, const absl::Status& status) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  const std::shared_ptr<detail::CallState> call = it->second;
  if (id == found_call_id_) found_call_id_ = 0;
  calls_.erase(it);
  // Errors name the call (CallOptions::label), not only its id.
  const absl::Status named =
      detail::Named(status, call->method, call->label, id);
  call->result = named;
  if (options_.observer) {
    ObserveFinished(call->observed, id, TaskInfo::Side::kSubmitter,
                    call->trace_parent, named);
  }
  if (call->callbacks.on_done) call->callbacks.on_done(named);
  if (call->next) {
    auto next = std::move(call->next);
    call->next = nullptr;
    next(named.ok() ? absl::StatusOr<Response>(absl::OutOfRangeError(
                          absl::StrCat(call->Name(), " finished")))
                    : absl::StatusOr<Response>(named));
  }
}

SYMWIRE_DECL void Channel::EndIncoming(TaskId id,
                                       const absl::Status& cancel_status) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  const std::shared_ptr<detail::IncomingState> task = it->second;
  incoming_.erase(it);
  task->done = true;
  task->cancelled = true;
  task->cancel_status = cancel_status;
  if (options_.observer) {
    ObserveFinished(task->observed, id, TaskInfo::Side::kExecutor,
                    task->trace_parent, cancel_status);
  }
  if (task->on_cancel) {
    auto cb = std::move(task->on_cancel);
    task->on_cancel = nullptr;
    cb(cancel_status);
  }
}

SYMWIRE_DECL absl::Status Channel::RespondFor(
    detail::IncomingState& task, absl::Span<const std::byte> payload,
    bool final, const SharedPayload* shared) {
  if (task.done) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("task ", task.id, " already ended"));
  }
  // The caller may hold no reference to this channel (IncomingTask::Respond
  // does not lock its weak one). What runs user code below, the observer
  // and the events AfterInput dispatches after a refusal, could release
  // the last one: hold one for them. SendResponse and AfterUserCall run
  // none (a transport reports its write's completion in a handler of its
  // own, never inside the call that started it).
  std::shared_ptr<Channel> keep;
  if (options_.observer) keep = shared_from_this();
  if (driver_.SendBacklogFull()) return SendBacklogError();
  absl::Status st =
      shared != nullptr
          ? session_->SendResponse(task.id, *shared, final, Now())
          : session_->SendResponse(task.id, payload, final, Now());
  if (st.ok() && options_.observer) {
    ObserveResponse(task.observed, task.id, TaskInfo::Side::kExecutor,
                    task.trace_parent, payload.size());
    if (final) {
      ObserveFinished(task.observed, task.id, TaskInfo::Side::kExecutor,
                      task.trace_parent, absl::OkStatus());
    }
  }
  if (st.ok() && final) {
    task.done = true;
    incoming_.erase(task.id);
  }
  if (st.ok()) {
    AfterUserCall();
  } else {
    if (!keep) keep = shared_from_this();
    AfterInput();  // a refusal may have queued Writable
  }
  return st;
}

SYMWIRE_DECL absl::Status Channel::SendBacklogError() const {
  const std::shared_ptr<Transport>& t = driver_.transport();
  return MakeError(ErrorCode::kReplayBufferFull,
                   absl::StrCat("send backlog full: ",
                                (t ? t->pending_bytes() : 0) +
                                    session_->transmit_pending_bytes(),
                                " bytes wait behind the connection's write "
                                "(ChannelOptions::send_backlog_bytes ",
                                options_.send_backlog_bytes, ")"));
}

SYMWIRE_DECL void Channel::RunWritableWaiters() {
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

SYMWIRE_DECL void Channel::SessionEnded(const absl::Status& status) {
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
  // Calls waiting out a retry's backoff: the next attempt now fails at
  // once (the session is gone) and ends the call with that error.
  for (const std::weak_ptr<detail::CallRun>& w : std::exchange(backoffs_, {})) {
    if (auto run = w.lock(); run && run->backoff) run->backoff->cancel();
  }
  if (close_timer_) close_timer_->cancel();
  auto closers = std::move(close_waiters_);
  close_waiters_.clear();
  for (auto& w : closers) w(status);
  if (auto server = OwningServer()) server->OnChannelEnded(this);
}

SYMWIRE_DECL void Channel::UnreadChanged(int64_t delta) {
  unread_bytes_ =
      static_cast<size_t>(static_cast<int64_t>(unread_bytes_) + delta);
  if (driver_.transport() && driver_.transport()->reading_paused() &&
      unread_bytes_ <= options_.max_unread_response_bytes / 2) {
    driver_.transport()->ResumeReading();
  }
}

// ---- Channel: user calls
// --------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<TaskCall> Channel::Submit(
    absl::Span<const std::byte> payload, const TaskOptions& options,
    TaskCallbacks callbacks) {
  return SubmitImpl(payload, nullptr, options, std::move(callbacks));
}

SYMWIRE_DECL absl::StatusOr<TaskCall> Channel::Submit(
    const SharedPayload& payload, const TaskOptions& options,
    TaskCallbacks callbacks) {
  return SubmitImpl(payload.bytes(), &payload, options, std::move(callbacks));
}

SYMWIRE_DECL absl::StatusOr<TaskCall> Channel::SubmitImpl(
    absl::Span<const std::byte> payload, const SharedPayload* shared,
    const TaskOptions& options, TaskCallbacks callbacks) {
  // A deadline is relative to now: read the clock for it; otherwise the
  // turn's reading will do (Now()).
  if (driver_.SendBacklogFull()) return SendBacklogError();
  const absl::Time now =
      Now(options.deadline ? Reading::kFresh : Reading::kTurn);
  absl::StatusOr<TaskId> id = shared != nullptr
                                  ? session_->SubmitTask(*shared, options, now)
                                  : session_->SubmitTask(payload, options, now);
  if (!id.ok()) {
    AfterInput();  // a refusal may have queued Writable
    return id.status();
  }
  auto state = std::make_shared<detail::CallState>(
      weak_from_this(), executor_, *id, options.method, std::move(callbacks));
  if (options.trace_parent) state->trace_parent = options.trace_parent;
  calls_.emplace(*id, state);
  found_call_id_ = 0;  // the insert may have moved every slot
  if (RuntimeObserver* obs = options_.observer.get()) {
    state->observed.method = std::string(options.method);
    state->observed.since = Now(Reading::kFresh);
    state->observed.bytes_out = payload.size();
    obs->OnTaskSubmitted(ObservedInfo(
        state->observed, *id, TaskInfo::Side::kSubmitter, state->trace_parent));
  }
  AfterUserCall();
  return TaskCall(std::move(state));
}

SYMWIRE_DECL void Channel::SubmitWhenWritable(
    std::shared_ptr<const detail::HeldPayload> payload, CallOptions options,
    TaskCallbacks callbacks,
    absl::AnyInvocable<void(absl::StatusOr<TaskCall>)> done,
    std::function<bool()> abandoned) {
  const bool fail_fast =
      client_ && client_->transient_failure && !options.wait_for_ready;
  // A failed submission names the call (CallOptions::label).
  if (!options.method.empty() || !options.label.empty()) {
    done = [method = options.method, label = options.label,
            d = std::move(done)](absl::StatusOr<TaskCall> call) mutable {
      if (!call.ok()) call = detail::Named(call.status(), method, label, 0);
      d(std::move(call));
    };
  }
  // wait_for_ready with a deadline: the wait is bounded by it.
  absl::Time queued_at = absl::InfinitePast();
  if (options.wait_for_ready && options.deadline) {
    queued_at = Now(Reading::kFresh);
    auto shared =
        std::make_shared<absl::AnyInvocable<void(absl::StatusOr<TaskCall>)>>(
            std::move(done));
    auto timer = std::make_shared<asio::steady_timer>(executor_);
    timer->expires_at(detail::ToSteady(queued_at + *options.deadline));
    timer->async_wait([shared, deadline = *options.deadline](
                          const boost::system::error_code& ec) {
      if (ec || !*shared) return;
      auto d = std::move(*shared);
      *shared = nullptr;
      d(absl::DeadlineExceededError(
          absl::StrCat("deadline exceeded while waiting for the connection (",
                       absl::FormatDuration(deadline), ", wait_for_ready)")));
    });
    done = [shared, timer](absl::StatusOr<TaskCall> call) {
      timer->cancel();
      if (!*shared) {
        // Timed out already: a task sent anyway is cancelled.
        if (call.ok()) static_cast<void>(call->Cancel());
        return;
      }
      auto d = std::move(*shared);
      *shared = nullptr;
      d(std::move(call));
    };
    abandoned = [shared, timer, prior = std::move(abandoned)] {
      const bool gone = !*shared || (prior && prior());
      if (gone) timer->cancel();
      return gone;
    };
  }
  auto attempt = [weak = weak_from_this(), payload = std::move(payload),
                  queued_at, options = std::move(options),
                  callbacks = std::move(callbacks), done = std::move(done),
                  abandoned = std::move(abandoned)]() mutable -> bool {
    // Cancelled while queued: drop it unsent (it already completed).
    if (abandoned && abandoned()) return true;
    auto self = weak.lock();
    if (!self) {
      done(MakeError(ErrorCode::kSessionClosed, "the session is gone"));
      return true;
    }
    // Before the first handshake completes, wait for it (Established runs
    // the waiters); if it fails, the session's end fails this submission.
    if (!self->established_once_ && !self->ended_) return false;
    // A call that waited (for the handshake, a resume or credit) while the
    // session ended: the session's error says why.
    if (self->ended_ && !self->session_->status().ok()) {
      done(self->client_ ? detail::ServerGone(self->session_->status())
                         : self->session_->status());
      return true;
    }
    // An outage of a client's connection (CallOptions::wait_for_ready).
    if (self->client_ && !self->ended_ && self->client_->transient_failure) {
      if (options.wait_for_ready) return false;  // Established runs it
      const absl::Status& why = self->client_->last_failure;
      done(MakeError(absl::StatusCode::kUnavailable, ErrorCode::kConnectionLost,
                     absl::StrCat("connection down, reconnecting: ",
                                  why.ok() ? absl::string_view("no connection")
                                           : why.message())));
      return true;
    }
    std::vector<MetadataEntry> metadata;
    metadata.reserve(options.metadata.size());
    for (const auto& [k, v] : options.metadata) {
      metadata.push_back(MetadataEntry{k, v});
    }
    TaskOptions o;
    o.deadline = options.deadline;
    if (o.deadline && queued_at != absl::InfinitePast()) {
      // What is left of it after waiting (wait_for_ready).
      *o.deadline -= self->Now(Reading::kFresh) - queued_at;
      if (*o.deadline <= absl::ZeroDuration()) {
        done(absl::DeadlineExceededError(absl::StrCat(
            "deadline exceeded while waiting for the connection (",
            absl::FormatDuration(*options.deadline), ", wait_for_ready)")));
        return true;
      }
    }
    o.trace_parent = options.trace_parent;
    if (o.trace_parent && options.trace_child_span) {
      // A span of its own per task, a child of the caller's (issue #14).
      o.trace_parent =
          ChildTraceParent(*o.trace_parent, self->options_.session.random);
      options.trace_child_span = false;  // once, even if retried
      options.trace_parent = o.trace_parent;
    }
    o.trace_state = options.trace_state;
    o.metadata = metadata;
    o.method = options.method;
    // A SharedPayload goes by reference (the same bytes for every attempt
    // of an async_call), a string by copy.
    absl::StatusOr<TaskCall> call =
        self->SubmitImpl(payload->bytes(), payload->shared(), o, callbacks);
    const ErrorCode code = GetErrorCode(call.status());
    if (code == ErrorCode::kNoCredit || code == ErrorCode::kReplayBufferFull) {
      return false;
    }
    if (call.ok() && !options.label.empty()) {
      call->state_->label = options.label;
    }
    done(std::move(call));
    return true;
  };
  // A call that fails fast does not queue behind blocked ones.
  if ((writable_waiters_.empty() || fail_fast) && attempt()) return;
  writable_waiters_.push_back(std::move(attempt));
}

SYMWIRE_DECL void Channel::StartSubmit(
    detail::HeldPayload payload, CallOptions options, TaskCallbacks callbacks,
    detail::Completion<void(absl::StatusOr<TaskCall>)> done,
    const detail::OpCancelPtr& cancel) {
  auto held = std::make_shared<detail::HeldPayload>(std::move(payload));
  if (cancel) {
    // Completing the op (sent, failed or cancelled while queued) lets go of
    // the payload at once, not when the queued submission's turn comes.
    done = [held, d = std::move(done)](absl::StatusOr<TaskCall> call) mutable {
      held->Reset();
      d(std::move(call));
    };
  }
  // Any cancellation type: a submission still queued is dropped unsent;
  // once sent, the op has completed and cancelling is a no-op.
  std::shared_ptr<const detail::Completion<void(absl::StatusOr<TaskCall>)>>
      waiting;
  done = detail::CancellableWait(std::move(done), cancel,
                                 asio::cancellation_type::all, "async_submit",
                                 &waiting);
  std::function<bool()> abandoned;
  if (waiting) abandoned = [waiting] { return !*waiting; };
  SubmitWhenWritable(std::move(held), std::move(options), std::move(callbacks),
                     std::move(done), std::move(abandoned));
}

SYMWIRE_DECL void Channel::StartCheckHealth(
    CallOptions options,
    detail::Completion<void(absl::StatusOr<HealthStatus>)> done,
    const detail::OpCancelPtr& cancel) {
  options.method = std::string(kHealthMethod);
  // async_call does the work (and its cancellation); the answer is parsed
  // here (SPEC.md §13.6).
  StartCall(
      detail::HeldPayload(std::string()), std::move(options),
      [d = std::move(done)](absl::StatusOr<std::string> answer) mutable {
        if (!answer.ok()) {
          d(answer.status());
          return;
        }
        d(ParseHealthStatus(absl::MakeConstSpan(
            reinterpret_cast<const std::byte*>(answer->data()),
            answer->size())));
      },
      cancel);
}

SYMWIRE_DECL void Channel::StartCall(
    detail::HeldPayload payload, CallOptions options,
    detail::Completion<void(absl::StatusOr<std::string>)> done,
    const detail::OpCancelPtr& cancel) {
  // One completion, reached by the last attempt's failure, by the task's
  // end or by cancellation: shared between the paths and the attempts.
  auto run = std::make_shared<detail::CallRun>();
  run->done = std::move(done);
  run->policy = options.retry ? *options.retry : options_.retry;
  run->idempotent =
      options.idempotent ||
      (!options.method.empty() &&
       std::find(options_.idempotent_methods.begin(),
                 options_.idempotent_methods.end(),
                 options.method) != options_.idempotent_methods.end());
  // RetryPolicy: the deadline bounds every attempt together.
  if (options.deadline && run->policy.max_attempts > 1) {
    run->deadline_at = Now(Reading::kFresh) + *options.deadline;
  }
  run->payload = std::move(payload);
  run->options = std::move(options);
  if (cancel) {
    // Before a submission is sent, and during a retry's backoff, any type
    // drops the call (no side effect). After, only terminal: the result
    // cannot be abandoned without ending the task, so the task is
    // cancelled on the wire (AGENT_CANCEL, SPEC.md §13.3) and the call
    // completes at once.
    run->cancellable = true;
    cancel->hook = [run](asio::cancellation_type type) {
      if (!run->done) return true;
      if (run->call && (type & asio::cancellation_type::terminal) ==
                           asio::cancellation_type::none) {
        return false;
      }
      // Taken first: the cancel below ends the task (on_done) at once.
      auto d = std::move(run->done);
      run->done = nullptr;
      run->payload.Reset();  // a queued attempt is dropped: let go of it
      if (TaskCall call = std::exchange(run->call, TaskCall())) {
        static_cast<void>(call.Cancel());
      }
      if (run->backoff) run->backoff->cancel();
      d(detail::Named(detail::OperationAborted("async_call"),
                      run->options.method, run->options.label, 0));
      return true;
    };
  }
  StartAttempt(run);
}

SYMWIRE_DECL void Channel::StartAttempt(
    const std::shared_ptr<detail::CallRun>& run) {
  ++run->attempt;
  run->responded = false;
  run->result.clear();
  // The last attempt takes the options; earlier ones copy. Every attempt
  // sends run->payload (a SharedPayload by reference, the same bytes each
  // time; a string is copied into the replay store when sent).
  const bool last = run->attempt >= run->policy.max_attempts;
  CallOptions options = last ? std::move(run->options) : run->options;
  if (last) {  // what naming an error later needs
    run->options.method = options.method;
    run->options.label = options.label;
  }
  if (run->attempt > 1 && run->deadline_at != absl::InfiniteFuture()) {
    // A retry is sent with what is left of the call's deadline.
    options.deadline = run->deadline_at - Now(Reading::kFresh);
    if (*options.deadline <= absl::ZeroDuration()) {
      run->Complete(
          detail::Named(absl::DeadlineExceededError(absl::StrCat(
                            "deadline exceeded before attempt ", run->attempt)),
                        options.method, options.label, 0));
      return;
    }
  }
  TaskCallbacks callbacks;
  callbacks.on_response = [run](absl::Span<const std::byte> p, bool) {
    run->responded = true;  // committed (RetryPolicy)
    run->result.append(reinterpret_cast<const char*>(p.data()), p.size());
  };
  callbacks.on_done = [weak = weak_from_this(),
                       run](const absl::Status& status) {
    const bool retryable = run->call && run->call.retryable();
    const TaskId task = run->call ? run->call.id() : 0;
    run->call = TaskCall();  // breaks the run <-> CallState cycle
    if (!run->done) return;
    if (status.ok()) {
      run->Complete(std::move(run->result));
      return;
    }
    auto self = weak.lock();
    if (!self) {
      run->Complete(status);
      return;
    }
    self->AttemptFailed(run, status, retryable, task);
  };
  std::function<bool()> abandoned;
  if (run->cancellable) abandoned = [run] { return !run->done; };
  SubmitWhenWritable(
      // Aliasing: shares run's ownership, no allocation.
      std::shared_ptr<const detail::HeldPayload>(run, &run->payload),
      std::move(options), std::move(callbacks),
      [weak = weak_from_this(), run,
       last](const absl::StatusOr<TaskCall>& call) {
        if (call.ok()) {
          run->call = *call;
          // No attempt follows: the session holds what it needs.
          if (last) run->payload.Reset();
          return;
        }
        if (!run->done) return;
        auto self = weak.lock();
        if (!self) {
          run->Complete(call.status());
          return;
        }
        // Never sent: the agent did not start it.
        self->AttemptFailed(run, call.status(), true, 0);
      },
      std::move(abandoned));
}

SYMWIRE_DECL void Channel::AttemptFailed(
    const std::shared_ptr<detail::CallRun>& run, const absl::Status& status,
    bool not_started, TaskId task) {
  const RetryPolicy& policy = run->policy;
  const ErrorCode detail_code = GetErrorCode(status);
  // RetryPolicy's conditions, in its order.
  const bool retry =
      std::find(policy.retryable_codes.begin(), policy.retryable_codes.end(),
                status.code()) != policy.retryable_codes.end() &&
      !run->responded && run->attempt < policy.max_attempts && !ended_ &&
      detail_code != ErrorCode::kPeerDraining &&
      detail_code != ErrorCode::kSessionClosed &&
      (not_started || run->idempotent);
  if (!retry) {
    run->Complete(status);
    return;
  }
  // The n-th retry's bound: initial * multiplier^(n-1), capped.
  absl::Duration bound = policy.initial_backoff;
  for (uint32_t n = 1; n < run->attempt && bound < policy.max_backoff; ++n) {
    bound = bound * policy.backoff_multiplier;
  }
  bound = std::max(absl::ZeroDuration(), std::min(bound, policy.max_backoff));
  absl::Duration delay = bound;
  if (policy.jitter > 0) {
    std::array<std::byte, 8> bytes{};
    options_.session.random(absl::MakeSpan(bytes));
    uint64_t r = 0;
    std::memcpy(&r, bytes.data(), sizeof(r));
    const double u = static_cast<double>(r >> 11) * 0x1.0p-53;  // [0, 1)
    delay = bound * (1.0 - std::min(policy.jitter, 1.0) * u);
  }
  const absl::Time now = Now(Reading::kFresh);
  if (run->deadline_at != absl::InfiniteFuture() &&
      now + delay >= run->deadline_at) {
    absl::Status out(
        status.code(),
        absl::StrCat(status.message(), " (not retried: the backoff of ",
                     absl::ToInt64Milliseconds(delay),
                     " ms would pass the call's deadline)"));
    status.ForEachPayload([&](absl::string_view url, const absl::Cord& p) {
      out.SetPayload(url, p);
    });
    run->Complete(std::move(out));
    return;
  }
  if (RuntimeObserver* obs = options_.observer.get()) {
    TaskInfo info;
    info.method = run->options.method;
    info.peer = observed_peer_;
    info.id = task;
    info.side = TaskInfo::Side::kSubmitter;
    obs->OnTaskRetry(info, TaskRetry{status, delay, run->attempt + 1});
  }
  if (!run->backoff) {
    run->backoff = std::make_unique<asio::steady_timer>(executor_);
    // Bounded by the live runs: the finished ones go before it doubles.
    if (backoffs_.size() >= 16 && backoffs_.size() == backoffs_.capacity()) {
      std::erase_if(backoffs_, [](const std::weak_ptr<detail::CallRun>& w) {
        return w.expired();
      });
    }
    backoffs_.push_back(run);
  }
  run->backoff->expires_at(detail::ToSteady(now + delay));
  run->backoff->async_wait(
      [weak = weak_from_this(), run](const boost::system::error_code&) {
        if (!run->done) return;  // cancelled during the backoff
        auto self = weak.lock();
        if (!self) {
          run->Complete(
              MakeError(ErrorCode::kSessionClosed, "the session is gone"));
          return;
        }
        self->StartAttempt(run);
      });
}

SYMWIRE_DECL absl::Status Channel::Close() {
  user_ended_ = true;
  if (client_ && client_->retry_pending) {
    client_->EndPendingRetry(*this);
    return absl::OkStatus();
  }
  absl::Status st = session_->Close(Now(Reading::kFresh));
  AfterInput();
  return st;
}

SYMWIRE_DECL void Channel::StartClose(
    detail::Completion<void(absl::Status)> done,
    const detail::OpCancelPtr& cancel) {
  if (ended_) {
    done(client_ ? detail::ServerGone(session_->status()) : session_->status());
    return;
  }
  // Terminal and partial: the wait ends at once, the graceful close it
  // started goes on (a side effect that cannot be undone, so not total).
  done = detail::CancellableWait(
      std::move(done), cancel,
      asio::cancellation_type::terminal | asio::cancellation_type::partial,
      "async_close");
  close_waiters_.push_back(std::move(done));
  static_cast<void>(Close());
  // ChannelOptions::close_timeout: the first async_close arms it.
  if (ended_ || close_timer_ ||
      options_.close_timeout == absl::InfiniteDuration()) {
    return;
  }
  close_timer_ = std::make_unique<asio::steady_timer>(executor_);
  close_timer_->expires_at(
      detail::ToSteady(Now(Reading::kFresh) + options_.close_timeout));
  close_timer_->async_wait(
      [weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec || self->ended_) return;
        self->session_->Abort(
            absl::DeadlineExceededError(absl::StrCat(
                "async_close: the session did not close within ",
                absl::ToInt64Milliseconds(self->options_.close_timeout),
                " ms (ChannelOptions::close_timeout)")),
            self->Now(Reading::kFresh));
        self->AfterInput();
      });
}

SYMWIRE_DECL void Channel::StartWaitEstablished(
    detail::Completion<void(absl::Status)> done,
    const detail::OpCancelPtr& cancel) {
  if (ended_) {
    done(session_->status().ok()
             ? MakeError(ErrorCode::kSessionClosed, "session closed")
             : (client_ ? detail::ServerGone(session_->status())
                        : session_->status()));
    return;
  }
  if (established_once_) {
    done(absl::OkStatus());
    return;
  }
  // Any cancellation type: only a wait.
  established_waiters_.push_back(detail::CancellableWait(
      std::move(done), cancel, asio::cancellation_type::all,
      "async_wait_established"));
}

SYMWIRE_DECL void Channel::Abort(const absl::Status& status) {
  SYMWIRE_REQUIRE(!status.ok());
  user_ended_ = true;
  if (client_ && client_->retry_pending) {
    client_->EndPendingRetry(*this);
    return;
  }
  session_->Abort(status, Now(Reading::kFresh));
  AfterInput();
}

SYMWIRE_DECL void Channel::KillConnection() {
  if (!driver_.transport()) return;
  std::shared_ptr<Transport> t = driver_.transport();
  // Close reports back through OnTransportClosed, like a network failure.
  t->Close(MakeError(ErrorCode::kConnectionLost, "connection killed here"));
}

SYMWIRE_DECL std::string Channel::transport_description() const {
  return driver_.transport() ? driver_.transport()->description()
                             : std::string();
}

SYMWIRE_DECL TransportCounters Channel::transport_counters() const {
  return driver_.transport() ? driver_.transport()->counters()
                             : TransportCounters{};
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_CHANNEL_IPP_
