// File: symwire/runtime/impl/incoming_task.ipp
// Out-of-line bodies of runtime/incoming_task.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_INCOMING_TASK_IPP_
#define SYMWIRE_RUNTIME_IMPL_INCOMING_TASK_IPP_

#include <algorithm>
#include <functional>
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
  auto channel = state_->channel.lock();
  if (!channel) {
    return MakeError(ErrorCode::kSessionClosed, "the session is gone");
  }
  return channel->RespondFor(*state_, payload, final);
}

SYMWIRE_DECL absl::Status IncomingTask::Fail(const absl::Status& status,
                                             bool retryable) {
  SYMWIRE_REQUIRE(!status.ok());
  auto channel = state_->channel.lock();
  if (!channel) {
    return MakeError(ErrorCode::kSessionClosed, "the session is gone");
  }
  if (state_->done) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("task ", state_->id, " already ended"));
  }
  absl::Status st = channel->session_->FailTask(
      state_->id, status, retryable, channel->Now(Channel::Reading::kFresh));
  if (st.ok()) {
    state_->done = true;
    channel->incoming_.erase(state_->id);
  }
  channel->AfterInput();
  return st;
}

SYMWIRE_DECL void IncomingTask::StartRespond(
    std::string payload, bool final,
    detail::Completion<void(absl::Status)> done) {
  auto channel = state_->channel.lock();
  if (!channel) {
    done(MakeError(ErrorCode::kSessionClosed, "the session is gone"));
    return;
  }
  auto attempt = [state = state_, payload = std::move(payload), final,
                  done = std::move(done)]() mutable -> bool {
    auto p = state->channel.lock();
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
  if (channel->writable_waiters_.empty() && attempt()) return;
  channel->writable_waiters_.push_back(std::move(attempt));
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_INCOMING_TASK_IPP_
