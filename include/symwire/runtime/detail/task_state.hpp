// File: symwire/runtime/detail/task_state.hpp
// Layer 3b (runtime), internal. The shared state behind the TaskCall and
// IncomingTask handles.
#ifndef SYMWIRE_RUNTIME_DETAIL_TASK_STATE_HPP_
#define SYMWIRE_RUNTIME_DETAIL_TASK_STATE_HPP_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/incoming_task.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/runtime/task_call.hpp"

namespace symwire {

class Channel;

namespace detail {

// ObservedTask: what the observer hooks need of a task (ChannelOptions::
// observer); untouched when no observer is set.
struct ObservedTask {
  std::string method;  // the task's method (SPEC.md §5.1); "": none
  absl::Time since;    // submitted / received (Channel::Now)
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  bool responded = false;  // a first response was seen
  bool finished = false;   // OnTaskFinished reported
};

// CallName: how the errors of a call name it (CallOptions::label):
// `method "m", task "label"`, `method "m", task <id>`, `task "label"`; ""
// with neither a method nor a label (messages are then left as they are).
inline std::string CallName(absl::string_view method, absl::string_view label,
                            TaskId id) {
  std::string out;
  if (!method.empty()) absl::StrAppend(&out, "method \"", method, "\"");
  if (!label.empty()) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", "task \"", label, "\"");
  } else if (!out.empty() && id != 0) {
    absl::StrAppend(&out, ", task ", id);
  }
  return out;
}

// Named: `status` with its message prefixed by CallName (its code and
// payloads, hence its symwire detail, kept). A leading "task <id>: " of the
// session's messages is dropped (the name replaces the internal id); a
// message already named is left alone.
inline absl::Status Named(const absl::Status& status, absl::string_view method,
                          absl::string_view label, TaskId id) {
  if (status.ok() || (method.empty() && label.empty())) return status;
  const std::string name = CallName(method, label, id);
  absl::string_view message = status.message();
  if (absl::StartsWith(message, absl::StrCat(name, ": "))) return status;
  if (id != 0) {
    absl::ConsumePrefix(&message, absl::StrCat("task ", id, ": "));
  }
  absl::Status out(status.code(), absl::StrCat(name, ": ", message));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& p) {
    out.SetPayload(url, p);
  });
  return out;
}

struct CallState;
struct IncomingState;

// CallBackend, IncomingBackend
// What serves a TaskCall or IncomingTask that no Channel owns: the NATS
// pool runtime (symwire/nats_runtime/) hands out the same handles, backed
// by these. Null for a Channel's tasks. Called on the handle's executor.
struct CallBackend {
  virtual ~CallBackend() = default;
  // TaskCall::Cancel of an open task.
  virtual absl::Status Cancel(CallState& call) = 0;
};
struct IncomingBackend {
  virtual ~IncomingBackend() = default;
  // IncomingTask::Respond / async_respond, and Fail.
  virtual absl::Status Respond(IncomingState& task,
                               absl::Span<const std::byte> payload,
                               bool final) = 0;
  virtual absl::Status Fail(IncomingState& task, const absl::Status& status,
                            bool retryable) = 0;
};

struct CallState {
  // User-provided, so that make_shared<CallState>() (value-initialisation)
  // does not zero the whole object before constructing it: every member
  // initialises itself, and the 432-byte `rep stosq` was measurable per
  // submitted task (bench/README.md, "Zeroing on the per-frame paths").
  CallState() {}  // not "= default", which would bring the zeroing back
  // What Channel::Submit sets for every task, constructed in place rather
  // than assigned after default construction (no temporary method string,
  // no std::function move-assignments; no measurable change on its own:
  // bench/README.md, "The session's `Task` in its slot").
  CallState(std::weak_ptr<Channel> of, const asio::any_io_executor& ex,
            TaskId task, absl::string_view method_name, TaskCallbacks cb)
      : channel(std::move(of)),
        executor(ex),
        id(task),
        method(method_name),
        callbacks(std::move(cb)) {}
  std::weak_ptr<Channel> channel;
  std::shared_ptr<CallBackend> backend;  // instead of `channel`
  asio::any_io_executor executor;
  TaskId id = 0;
  // What errors name the task by (Named): CallOptions::method and label.
  std::string method;
  std::string label;
  // Name: CallName, or "task <id>" with neither a method nor a label.
  std::string Name() const {
    return method.empty() && label.empty() ? absl::StrCat("task ", id)
                                           : CallName(method, label, id);
  }
  TaskCallbacks callbacks;
  // Unread responses (async_next), from queue_head. A vector, not a
  // std::deque: libstdc++'s deque allocates when constructed, and most
  // calls (TaskCallbacks) never queue anything.
  std::vector<Response> queue;
  size_t queue_head = 0;
  std::optional<absl::Status> result;
  bool retryable = false;
  Completion<void(absl::StatusOr<Response>)> next;
  // The trace context sent with the task (TaskCall::trace_parent).
  std::optional<TraceParent> trace_parent;
  ObservedTask observed;
};

// CallRun: one Channel::async_call across its attempts (RetryPolicy).
struct CallRun {
  std::string result;  // the responses of the current attempt, joined
  Completion<void(absl::StatusOr<std::string>)> done;
  TaskCall call;  // the current attempt's task, once submitted
  // Kept for another attempt; Reset once none can follow.
  HeldPayload payload{std::string()};
  CallOptions options;  // likewise (the deadline: see deadline_at)
  RetryPolicy policy;   // CallOptions::retry or ChannelOptions::retry
  std::unique_ptr<asio::steady_timer> backoff;      // between two attempts
  absl::Time deadline_at = absl::InfiniteFuture();  // CallOptions::deadline
  uint32_t attempt = 0;                             // attempts started
  bool responded = false;    // the current attempt got a response: committed
  bool idempotent = false;   // CallOptions::idempotent or idempotent_methods
  bool cancellable = false;  // the op has a cancellation slot
  // Complete: the op's one completion; later calls are no-ops.
  void Complete(absl::StatusOr<std::string> r) {
    if (!done) return;
    auto d = std::move(done);
    done = nullptr;
    payload.Reset();
    d(std::move(r));
  }
};

struct IncomingState {
  IncomingState() {}  // not "= default": as CallState
  std::weak_ptr<Channel> channel;
  // The same channel, valid while `channel` has not expired: Respond checks
  // expired() and calls through this instead of lock(), whose
  // compare-and-swap is atomic even in a single-threaded program (10 % of
  // an agent's CPU streaming 64 B responses; bench/README.md, "Respond
  // without weak_ptr::lock").
  Channel* channel_ptr = nullptr;
  std::shared_ptr<IncomingBackend> backend;  // instead of `channel`
  asio::any_io_executor executor;
  TaskId id = 0;
  absl::Span<const std::byte> payload;  // during the handler call only
  std::optional<absl::Time> deadline;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::optional<TraceParent> trace_parent;
  std::string method;  // SPEC.md §5.1; empty: none
  bool cancelled = false;
  bool done = false;
  absl::Status cancel_status;
  std::function<void(const absl::Status&)> on_cancel;
  ObservedTask observed;
};

// HandleAccess: makes the TaskCall and IncomingTask handles of a backend's
// states (their constructors are private).
struct HandleAccess {
  static TaskCall Call(std::shared_ptr<CallState> state) {
    return TaskCall(std::move(state));
  }
  static IncomingTask Incoming(std::shared_ptr<IncomingState> state) {
    return IncomingTask(std::move(state));
  }
};

}  // namespace detail

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_TASK_STATE_HPP_
