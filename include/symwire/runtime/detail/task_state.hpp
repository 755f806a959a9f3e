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
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "boost/asio/any_io_executor.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/options.hpp"

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

struct CallState {
  std::weak_ptr<Channel> channel;
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
  // The trace context sent with the task (TaskCall::trace_parent).
  std::optional<TraceParent> trace_parent;
  ObservedTask observed;
};

struct IncomingState {
  std::weak_ptr<Channel> channel;
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

}  // namespace detail

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_TASK_STATE_HPP_
