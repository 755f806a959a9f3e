// File: symwire/runtime/impl/task_call.ipp
// Out-of-line bodies of runtime/task_call.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_TASK_CALL_IPP_
#define SYMWIRE_RUNTIME_IMPL_TASK_CALL_IPP_

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/detail/task_state.hpp"
#include "symwire/runtime/task_call.hpp"

namespace symwire {

// ---- TaskCall --------------------------------------------------------------

SYMWIRE_DECL TaskId TaskCall::id() const { return State().id; }
SYMWIRE_DECL bool TaskCall::done() const { return State().result.has_value(); }
SYMWIRE_DECL bool TaskCall::retryable() const { return State().retryable; }

SYMWIRE_DECL std::optional<TraceParent> TaskCall::trace_parent() const {
  return State().trace_parent;
}
SYMWIRE_DECL std::optional<absl::Status> TaskCall::result() const {
  return State().result;
}
SYMWIRE_DECL asio::any_io_executor TaskCall::get_executor() const {
  return State().executor;
}

SYMWIRE_DECL void TaskCall::StartNext(
    detail::Completion<void(absl::StatusOr<Response>)> done,
    const detail::OpCancelPtr& cancel) {
  detail::CallState& s = State();
  if (s.queue_head < s.queue.size()) {
    Response r = std::move(s.queue[s.queue_head++]);
    if (s.queue_head == s.queue.size()) {
      s.queue.clear();
      s.queue_head = 0;
    }
    if (auto channel = s.channel.lock()) {
      channel->UnreadChanged(-static_cast<int64_t>(r.payload.size()));
    }
    done(std::move(r));
    return;
  }
  if (s.result.has_value()) {
    done(s.result->ok() ? absl::OutOfRangeError(absl::StrCat(
                              s.Name(), " finished: no more responses"))
                        : *s.result);
    return;
  }
  if (s.next) {
    done(absl::FailedPreconditionError(
        absl::StrCat(s.Name(), ": async_next is already pending")));
    return;
  }
  s.next = std::move(done);
  if (cancel) {
    // Any cancellation type: taking the pending completion back out of
    // s.next undoes the wait without side effects, and a response that
    // arrives later is queued for the next async_next (issue #14).
    cancel->hook = [weak = std::weak_ptr<detail::CallState>(state_)](
                       asio::cancellation_type) {
      auto st = weak.lock();
      if (st && st->next) {
        auto next = std::move(st->next);
        st->next = nullptr;
        next(
            detail::OperationAborted(absl::StrCat(st->Name(), ": async_next")));
      }
      return true;
    };
  }
}

SYMWIRE_DECL absl::Status TaskCall::Cancel() {
  if (State().backend && !State().result.has_value()) {
    return State().backend->Cancel(State());
  }
  auto channel = State().channel.lock();
  if (!channel || State().result.has_value()) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat(State().Name(), " already ended"));
  }
  absl::Status st = channel->session_->CancelTask(
      State().id, channel->Now(Channel::Reading::kFresh));
  channel->AfterInput();
  return st;
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_TASK_CALL_IPP_
