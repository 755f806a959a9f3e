// File: symwire/runtime/impl/incoming_task.ipp
// Out-of-line bodies of runtime/incoming_task.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_INCOMING_TASK_IPP_
#define SYMWIRE_RUNTIME_IMPL_INCOMING_TASK_IPP_

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/detail/task_state.hpp"
#include "symwire/runtime/incoming_task.hpp"

namespace symwire {

// ---- IncomingTask ----------------------------------------------------------

SYMWIRE_DECL TaskId IncomingTask::id() const { return State().id; }
SYMWIRE_DECL absl::Span<const std::byte> IncomingTask::payload() const {
  return State().payload;
}
SYMWIRE_DECL std::string IncomingTask::payload_string() const {
  return std::string(reinterpret_cast<const char*>(State().payload.data()),
                     State().payload.size());
}
SYMWIRE_DECL std::optional<absl::Time> IncomingTask::deadline() const {
  return State().deadline;
}
SYMWIRE_DECL std::optional<absl::Duration> IncomingTask::deadline_remaining()
    const {
  if (!State().deadline) return std::nullopt;
  return std::max(absl::ZeroDuration(), *State().deadline - SteadyNow());
}
SYMWIRE_DECL const std::vector<std::pair<std::string, std::string>>&
IncomingTask::metadata() const {
  return State().metadata;
}
SYMWIRE_DECL std::optional<TraceParent> IncomingTask::trace_parent() const {
  return State().trace_parent;
}
SYMWIRE_DECL const std::string& IncomingTask::method() const {
  return State().method;
}
SYMWIRE_DECL bool IncomingTask::cancelled() const { return State().cancelled; }
SYMWIRE_DECL bool IncomingTask::done() const { return State().done; }
SYMWIRE_DECL asio::any_io_executor IncomingTask::get_executor() const {
  return State().executor;
}

SYMWIRE_DECL void IncomingTask::OnCancel(
    std::function<void(const absl::Status&)> callback) {
  if (State().cancelled) {
    asio::post(State().executor, [cb = std::move(callback),
                                  st = State().cancel_status] { cb(st); });
    return;
  }
  State().on_cancel = std::move(callback);
}

SYMWIRE_DECL absl::Status IncomingTask::Respond(
    absl::Span<const std::byte> payload, bool final) {
  if (State().backend) return State().backend->Respond(State(), payload, final);
  // Not lock(): RespondFor holds a reference where it runs user code
  // (IncomingState::channel_ptr).
  if (State().channel.expired()) {
    return MakeError(ErrorCode::kSessionClosed, "the session is gone");
  }
  return State().channel_ptr->RespondFor(State(), payload, final);
}

SYMWIRE_DECL absl::Status IncomingTask::Respond(const SharedPayload& payload,
                                                bool final) {
  // Another backend (NATS) takes the bytes its own way.
  if (State().backend) {
    return State().backend->Respond(State(), payload.bytes(), final);
  }
  if (State().channel.expired()) {  // not lock(): as above
    return MakeError(ErrorCode::kSessionClosed, "the session is gone");
  }
  return State().channel_ptr->RespondFor(State(), payload.bytes(), final,
                                         &payload);
}

SYMWIRE_DECL absl::Status IncomingTask::Fail(const absl::Status& status,
                                             bool retryable) {
  SYMWIRE_REQUIRE(!status.ok());
  if (State().backend) return State().backend->Fail(State(), status, retryable);
  auto channel = State().channel.lock();
  if (!channel) {
    return MakeError(ErrorCode::kSessionClosed, "the session is gone");
  }
  if (State().done) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("task ", State().id, " already ended"));
  }
  absl::Status st = channel->session_->FailTask(
      State().id, status, retryable, channel->Now(Channel::Reading::kFresh));
  if (st.ok()) {
    if (channel->options_.observer) {
      channel->ObserveFinished(State().observed, State().id,
                               TaskInfo::Side::kExecutor, State().trace_parent,
                               status);
    }
    State().done = true;
    channel->incoming_.erase(State().id);
  }
  channel->AfterInput();
  return st;
}

SYMWIRE_DECL void IncomingTask::StartRespond(
    detail::HeldPayload payload, bool final,
    detail::Completion<void(absl::Status)> done,
    const detail::OpCancelPtr& cancel) {
  if (State().backend) {  // no send window to wait for
    done(State().backend->Respond(State(), payload.bytes(), final));
    return;
  }
  auto channel = State().channel.lock();
  if (!channel) {
    done(MakeError(ErrorCode::kSessionClosed, "the session is gone"));
    return;
  }
  // With a cancellation slot the payload waits in a slot of its own, which
  // completing the op (sent, failed or cancelled) empties: a cancelled
  // response lets go of its bytes at once, not when its turn in the queue
  // comes.
  std::shared_ptr<detail::HeldPayload> slot;
  std::optional<detail::HeldPayload> held_here;  // without a slot
  if (cancel) {
    slot = std::make_shared<detail::HeldPayload>(std::move(payload));
    done = [slot, d = std::move(done)](absl::Status st) mutable {
      slot->Reset();
      d(std::move(st));
    };
  } else {
    held_here.emplace(std::move(payload));
  }
  // Any cancellation type: a response still waiting for the send window is
  // dropped unsent; once sent, the op has completed.
  std::shared_ptr<const detail::Completion<void(absl::Status)>> waiting;
  done = detail::CancellableWait(
      std::move(done), cancel, asio::cancellation_type::all,
      absl::StrCat("task ", State().id, ": async_respond"), &waiting);
  auto attempt = [state = state_, held_here = std::move(held_here),
                  slot = std::move(slot), final, done = std::move(done),
                  waiting = std::move(waiting)]() mutable -> bool {
    if (waiting && !*waiting) return true;  // cancelled while queued
    const detail::HeldPayload& held = slot ? *slot : *held_here;
    auto p = state->channel.lock();
    absl::Status st =
        p ? p->RespondFor(*state, held.bytes(), final, held.shared())
          : MakeError(ErrorCode::kSessionClosed, "the session is gone");
    if (GetErrorCode(st) == ErrorCode::kReplayBufferFull) return false;
    done(std::move(st));
    return true;
  };
  if (channel->writable_waiters_.empty() && attempt()) return;
  channel->writable_waiters_.push_back(std::move(attempt));
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_INCOMING_TASK_IPP_
