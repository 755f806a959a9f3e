// File: symwire/runtime/task_call.hpp
// Layer 3b (runtime). TaskCall: the handle of a task this side submitted.
#ifndef SYMWIRE_RUNTIME_TASK_CALL_HPP_
#define SYMWIRE_RUNTIME_TASK_CALL_HPP_

#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/any_io_executor.hpp"
#include "symwire/config.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/options.hpp"

namespace symwire {

namespace detail {
struct CallState;
struct HandleAccess;
}  // namespace detail

// TaskCall
// A task this side submitted (Channel::Submit / async_submit). A cheap
// handle: copies refer to the same task. Members run on the channel's
// executor.
class TaskCall {
 public:
  TaskCall() = default;
  TaskId id() const;
  // True once the terminal event (final response, failure, cancel) came.
  bool done() const;
  // The failure was marked retryable by the executor (the work was not
  // done; SPEC.md §13.2).
  bool retryable() const;
  // OK after a final response; the error otherwise; nullopt while open.
  std::optional<absl::Status> result() const;
  // The W3C trace context sent with the task (CallOptions::trace_parent,
  // or its child span with CallOptions::trace_child_span), if any.
  std::optional<TraceParent> trace_parent() const;

  // async_next
  // The next response (partials, then the final one with final == true),
  // in order. After the final response: OUT_OF_RANGE "task finished".
  // On failure or cancellation: the task's error (TaskFailed's status, see
  // retryable(); kCancelled after Cancel()).
  // REQUIRES: no other async_next of this task is pending.
  // Signature: void(absl::StatusOr<Response>).
  // Per-operation cancellation (the handler's associated cancellation slot,
  // e.g. asio::bind_cancellation_slot, or the `||` of awaitable_operators):
  // terminal, partial and total. A cancelled wait completes at once with
  // kCancelled "task N: async_next: operation aborted by its cancellation
  // slot" (the runtime's asio::error::operation_aborted) and never takes a
  // response: the next async_next gets it. The task itself goes on (Cancel
  // ends it). Cancelling after completion is a no-op.
  template <class CompletionToken>
  auto async_next(CompletionToken&& token);

  // Cancel
  // Cancels the task (SPEC.md §13.3); a pending async_next completes with
  // kCancelled. Errors: WRONG_STATE if it already ended.
  SYMWIRE_DECL absl::Status Cancel();

  // False for a default-constructed or moved-from handle: every other member
  // then fails SYMWIRE_REQUIRE (aborts with a message).
  explicit operator bool() const { return state_ != nullptr; }
  // The channel's executor (where the task's callbacks run).
  SYMWIRE_DECL asio::any_io_executor get_executor() const;

 private:
  friend class Channel;
  friend struct detail::HandleAccess;
  // State: the shared state. Every member but operator bool goes through
  // it. REQUIRES: a live handle, not a default-constructed or moved-from
  // one (config.hpp: a REQUIRE failure aborts with a message, never a
  // segfault).
  detail::CallState& State() const {
    SYMWIRE_REQUIRE(state_ != nullptr &&
                    "TaskCall used after a move or default construction");
    return *state_;
  }
  explicit TaskCall(std::shared_ptr<detail::CallState> state)
      : state_(std::move(state)) {}
  SYMWIRE_DECL void StartNext(
      detail::Completion<void(absl::StatusOr<Response>)> done,
      const detail::OpCancelPtr& cancel);
  std::shared_ptr<detail::CallState> state_;
};

template <class CompletionToken>
auto TaskCall::async_next(CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<Response>>(
      get_executor(),
      [self = *this](auto done, const detail::OpCancelPtr& cancel) mutable {
        self.StartNext(std::move(done), cancel);
      },
      std::forward<CompletionToken>(token));
}

}  // namespace symwire

// Header-only mode: the out-of-line bodies (impl/task_call.ipp) need Channel,
// so channel.hpp includes them.
#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/runtime/channel.hpp"
#endif

#endif  // SYMWIRE_RUNTIME_TASK_CALL_HPP_
