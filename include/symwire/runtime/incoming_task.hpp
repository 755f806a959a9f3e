// File: symwire/runtime/incoming_task.hpp
// Layer 3b (runtime). IncomingTask: the handle of a task this side
// executes, and TaskHandler.
#ifndef SYMWIRE_RUNTIME_INCOMING_TASK_HPP_
#define SYMWIRE_RUNTIME_INCOMING_TASK_HPP_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "boost/asio/any_io_executor.hpp"
#include "symwire/config.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/shared_payload.hpp"

namespace symwire {

namespace detail {
struct IncomingState;
struct HandleAccess;

// HeldPayload
// The payload of an async_* call while it waits for the send window: the
// std::string the call took over (sent by copy, as Respond/Submit of a
// span) or a SharedPayload (sent by reference). Reset drops it (a
// cancelled op lets go of the bytes at once). Copying copies the string's
// bytes or the SharedPayload's reference.
class HeldPayload {
 public:
  explicit HeldPayload(std::string bytes) : held_(std::move(bytes)) {}
  explicit HeldPayload(SharedPayload payload) : held_(std::move(payload)) {}
  absl::Span<const std::byte> bytes() const {
    if (const SharedPayload* p = shared()) return p->bytes();
    if (const auto* s = std::get_if<std::string>(&held_)) {
      return {reinterpret_cast<const std::byte*>(s->data()), s->size()};
    }
    return {};
  }
  // The SharedPayload, or nullptr for a string (or after Reset).
  const SharedPayload* shared() const {
    return std::get_if<SharedPayload>(&held_);
  }
  void Reset() { held_ = std::monostate(); }

 private:
  std::variant<std::monostate, std::string, SharedPayload> held_;
};
}  // namespace detail

// IncomingTask
// A task this side executes, handed to the task handler (SetTaskHandler).
// A cheap handle: keep a copy to answer later (on the channel's executor).
class IncomingTask {
 public:
  IncomingTask() = default;
  TaskId id() const;
  // The task's payload. Valid during the handler call only: copy what you
  // keep (payload_string() does).
  absl::Span<const std::byte> payload() const;
  std::string payload_string() const;
  // The deadline on the driver's clock (SteadyNow()), if the submitter set
  // one; deadline_remaining() is what is left of it now.
  std::optional<absl::Time> deadline() const;
  std::optional<absl::Duration> deadline_remaining() const;
  // METADATA entries (key, value) and W3C trace context, copied.
  const std::vector<std::pair<std::string, std::string>>& metadata() const;
  std::optional<TraceParent> trace_parent() const;
  // The task's method (CallOptions::method, SPEC.md §5.1), or "" if it has
  // none. Valid as long as a handle to the task exists.
  const std::string& method() const;

  // True once the submitter cancelled, the deadline passed, or the
  // session ended: stop working; Respond and Fail then return WRONG_STATE.
  bool cancelled() const;
  // True once the task ended for any reason (answered, failed, cancelled).
  bool done() const;
  // OnCancel: `callback(status)` runs once if the task is cancelled
  // (kCancelled, or kDeadlineExceeded for a deadline); immediately (posted)
  // if it already was.
  SYMWIRE_DECL void OnCancel(std::function<void(const absl::Status&)> callback);

  // Respond
  // Streams a partial (final == false) or the final response. The frame is
  // encoded at once; it is written with everything else produced in the
  // same executor turn (one write per burst: see AfterUserCall). Errors:
  // WRONG_STATE (task ended), REPLAY_BUFFER_FULL (the send window, or the
  // send backlog of ChannelOptions::send_backlog_bytes, is full: use
  // async_respond, which waits), FRAME_TOO_LARGE, SESSION_CLOSED.
  SYMWIRE_DECL absl::Status Respond(absl::Span<const std::byte> payload,
                                    bool final);
  absl::Status Respond(std::string_view payload, bool final) {
    return Respond(AsBytes(payload), final);
  }
  // The same with the payload handed over instead of copied (the session
  // keeps a reference until the peer acknowledges the frame;
  // Session::SendResponse(SharedPayload)). The same errors.
  SYMWIRE_DECL absl::Status Respond(const SharedPayload& payload, bool final);
  // async_respond: Respond, waiting for room in the send window instead of
  // failing with REPLAY_BUFFER_FULL. The std::string is taken over and
  // copied into the replay store when sent; a SharedPayload is kept by
  // reference while the response waits and handed over when it is sent
  // (Respond(const SharedPayload&)), never copied. Signature:
  // void(absl::Status). Per-operation cancellation: terminal, partial and
  // total; a response still waiting for room is dropped unsent (its
  // payload released at once) and the op completes with kCancelled "...
  // operation aborted by its cancellation slot" (once sent, the op has
  // completed).
  template <class CompletionToken>
  auto async_respond(std::string payload, bool final, CompletionToken&& token);
  template <class CompletionToken>
  auto async_respond(SharedPayload payload, bool final,
                     CompletionToken&& token);

  // Fail
  // Ends the task with an error; `retryable` tells the submitter the work
  // was not done. REQUIRES: !status.ok(). Errors: WRONG_STATE,
  // SESSION_CLOSED.
  SYMWIRE_DECL absl::Status Fail(const absl::Status& status,
                                 bool retryable = false);

  // False for a default-constructed or moved-from handle: every other member
  // then fails SYMWIRE_REQUIRE (aborts with a message).
  explicit operator bool() const { return state_ != nullptr; }
  // The channel's executor: answer the task there.
  SYMWIRE_DECL asio::any_io_executor get_executor() const;

 private:
  friend class Channel;
  friend struct detail::HandleAccess;
  static absl::Span<const std::byte> AsBytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }
  // State: the shared state. Every member but operator bool goes through
  // it. REQUIRES: a live handle, not a default-constructed or moved-from
  // one (config.hpp: a REQUIRE failure aborts with a message, never a
  // segfault).
  detail::IncomingState& State() const {
    SYMWIRE_REQUIRE(state_ != nullptr &&
                    "IncomingTask used after a move or default construction");
    return *state_;
  }
  explicit IncomingTask(std::shared_ptr<detail::IncomingState> state)
      : state_(std::move(state)) {}
  SYMWIRE_DECL void StartRespond(detail::HeldPayload payload, bool final,
                                 detail::Completion<void(absl::Status)> done,
                                 const detail::OpCancelPtr& cancel);
  std::shared_ptr<detail::IncomingState> state_;
};

// TaskHandler: runs inline, on the executor, for each task received.
using TaskHandler = std::function<void(IncomingTask task)>;

template <class CompletionToken>
auto IncomingTask::async_respond(std::string payload, bool final,
                                 CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      get_executor(),
      [self = *this, final](auto done, const detail::OpCancelPtr& cancel,
                            std::string&& p) mutable {
        self.StartRespond(detail::HeldPayload(std::move(p)), final,
                          std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(payload));
}

template <class CompletionToken>
auto IncomingTask::async_respond(SharedPayload payload, bool final,
                                 CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      get_executor(),
      [self = *this, final](auto done, const detail::OpCancelPtr& cancel,
                            SharedPayload&& p) mutable {
        self.StartRespond(detail::HeldPayload(std::move(p)), final,
                          std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(payload));
}

}  // namespace symwire

// Header-only mode: the out-of-line bodies (impl/incoming_task.ipp) need
// Channel, so channel.hpp includes them.
#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/runtime/channel.hpp"
#endif

#endif  // SYMWIRE_RUNTIME_INCOMING_TASK_HPP_
