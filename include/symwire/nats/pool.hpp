// File: symwire/nats/pool.hpp
// symwire::nats (a runtime on layers 1-2 and cnats; SPEC.md §21). The two
// ends of a NATS JetStream pool: NatsOrchestrator submits tasks and reads
// their responses; NatsAgent fetches tasks, runs a handler and answers.
// The shape mirrors the stream runtime (submit / next response / handler):
// an orchestrator or agent moves from a TCP connection to a pool by
// changing how it is created.
//
// Threading. cnats runs its own threads. NatsOrchestrator::Submit and
// Cancel are thread-safe; Next must be called by one thread at a time.
// NatsAgent::RunOnce must be called by one thread at a time per agent (run
// several agents for parallelism; they share the pool's consumer); the
// handler runs on the calling thread; NatsTaskContext::Respond and
// cancelled() are safe from that thread only, except cancelled(), which
// may be read from any thread.
#ifndef SYMWIRE_NATS_POOL_HPP_
#define SYMWIRE_NATS_POOL_HPP_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/nats/client.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

namespace nats_detail {
struct OrchestratorState;
struct AgentState;
}  // namespace nats_detail

// NatsSubmitOptions
// Per-task options of NatsOrchestrator::Submit.
struct NatsSubmitOptions {
  // The task id (SPEC.md §21.1). Empty: the next id of this orchestrator
  // (the first is the wall clock in microseconds at creation, so a
  // restarted orchestrator does not reuse the ids of its previous run).
  // Give the same id again to retry a submit whose outcome is unknown: it
  // is stored once within the pool's duplicate window.
  std::optional<uint64_t> task_id;
  // Remaining budget (the DEADLINE extension, SPEC.md §21.6).
  std::optional<absl::Duration> deadline;
  // As CallOptions (runtime/options.hpp), carried by the task's frame
  // (SPEC.md §21.2) and handed to the agent's handler (NatsTaskContext).
  // The task's method (the METHOD extension, SPEC.md §5.1): 1..255 bytes of
  // 0x21..0x7e, "" = none; otherwise Submit fails with INVALID_ARGUMENT
  // (detail INVALID_FRAME) naming the byte, nothing published.
  std::string method;
  // W3C trace context (TRACE_PARENT, TRACE_STATE) and METADATA entries
  // (key, value), sent as they are.
  std::optional<TraceParent> trace_parent;
  std::string trace_state;
  std::vector<std::pair<std::string, std::string>> metadata;
};

// NatsResponse
// What NatsOrchestrator::Next reports: one response, or the end of a task.
struct NatsResponse {
  uint64_t task_id = 0;
  std::string payload;  // kPartial, kFinal
  // The task's error (kFailed): the agent's AGENT_ERROR (code and message),
  // DATA_LOSS for a rejected message.
  absl::Status status;
  uint64_t attempt = 0;  // the delivery attempt of the frame (§21.3)
  enum class Kind : uint8_t {
    kPartial,    // a partial response
    kFinal,      // the final response: the task completed
    kFailed,     // the task ended with `status`
    kRestarted,  // the task was redelivered: its earlier partials are void
  };
  Kind kind = Kind::kPartial;
  bool retryable = false;  // kFailed: the agent marked the error retryable
};

// NatsOrchestratorOptions
struct NatsOrchestratorOptions {
  NatsPoolOptions pool;
  std::string identity;  // O: 1-64 bytes of [A-Za-z0-9-]
};

// NatsOrchestrator
// Submits tasks to a pool and collects their responses from its own
// response stream (SPEC.md §21.3). Responses of tasks submitted by an
// earlier process with the same identity are collected too.
class NatsOrchestrator {
 public:
  // Create
  // Ensures the pool and this identity's response stream (EnsurePool,
  // EnsureOrchestrator) and binds to its consumer.
  // Errors: those of EnsurePool / EnsureOrchestrator.
  SYMWIRE_DECL static absl::StatusOr<NatsOrchestrator> Create(
      NatsClient client, NatsOrchestratorOptions options);

  // Submit
  // Publishes the task's AGENT_TASK frame and returns its id once the
  // broker stored it.
  // Errors: INVALID_ARGUMENT (a bad task id, a payload over 1 GiB);
  //   FAILED_PRECONDITION (the id names a task cancelled here, §21.3);
  //   RESOURCE_EXHAUSTED (the pool is full); UNAVAILABLE, DEADLINE_EXCEEDED
  //   (the broker; retry with the same task_id).
  SYMWIRE_DECL absl::StatusOr<uint64_t> Submit(
      absl::Span<const std::byte> payload,
      const NatsSubmitOptions& options = {});

  // Cancel
  // Publishes AGENT_CANCEL for `task_id` (SPEC.md §21.7). The task ends at
  // once as the user sees it (Next reports nothing more for it). A Submit
  // of the same id still running on another thread is waited for, so the
  // cancel follows the task (§21.3). A task whose Submit failed with
  // UNAVAILABLE or DEADLINE_EXCEEDED may be stored later: submit it again
  // (same id) before cancelling it.
  // Errors: INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED.
  SYMWIRE_DECL absl::Status Cancel(uint64_t task_id);

  // Next
  // The next response of any task, waiting up to `timeout`; nullopt when
  // none came. Applies §21.3: one attempt per task, exactly one terminal
  // response per task.
  // Errors: UNAVAILABLE (the connection), INTERNAL.
  SYMWIRE_DECL absl::StatusOr<std::optional<NatsResponse>> Next(
      absl::Duration timeout);

  // Counters: frames discarded by §21.3 (other attempts, after the end),
  // and messages rejected by §21.8.
  SYMWIRE_DECL uint64_t discarded_frames() const;
  SYMWIRE_DECL uint64_t rejected_messages() const;

  // tracked_tasks
  // Task records held: open tasks, and ended ones for the pool's ack_wait
  // x max_deliveries after their end (§21.3), after which a frame for one
  // is still discarded (counted in discarded_frames). Records of tasks
  // with ids below this process's first id (collected from an earlier
  // process, or explicit ids) are kept while the orchestrator lives.
  SYMWIRE_DECL size_t tracked_tasks() const;

 private:
  explicit NatsOrchestrator(std::shared_ptr<nats_detail::OrchestratorState> s)
      : state_(std::move(s)) {}
  std::shared_ptr<nats_detail::OrchestratorState> state_;
};

// NatsTaskContext
// What a NatsAgent handler gets for one task.
class NatsTaskContext {
 public:
  virtual ~NatsTaskContext() = default;
  virtual uint64_t task_id() const = 0;
  virtual uint64_t attempt() const = 0;  // 1 on the first delivery
  virtual absl::Span<const std::byte> payload() const = 0;
  // The task's deadline on this host's wall clock (§21.6), if it has one.
  virtual std::optional<absl::Time> deadline() const = 0;
  // What the submitter sent in NatsSubmitOptions (as IncomingTask in the
  // stream runtime): the method ("" = none), the trace context and the
  // METADATA entries in order. Valid during the handler call.
  virtual absl::string_view method() const { return {}; }
  virtual std::optional<TraceParent> trace_parent() const {
    return std::nullopt;
  }
  virtual absl::string_view trace_state() const { return {}; }
  virtual const std::vector<std::pair<std::string, std::string>>& metadata()
      const {
    static const std::vector<std::pair<std::string, std::string>> none;
    return none;
  }
  // Respond
  // Publishes a partial response (the handler's return value gives the
  // final one). Errors: UNAVAILABLE, DEADLINE_EXCEEDED (the broker);
  // CANCELLED once the task was cancelled (stop working).
  virtual absl::Status Respond(absl::Span<const std::byte> payload) = 0;
  // True once an AGENT_CANCEL for this task arrived.
  virtual bool cancelled() const = 0;
  // SetErrorRetryable
  // Marks the error the handler returns as retryable: the work was not
  // done, another agent may take it (SPEC.md §13.2; IncomingTask::Fail's
  // `retryable`). The error's symwire detail (GetErrorCode) is sent too.
  virtual void SetErrorRetryable(bool retryable) = 0;
  // Release
  // Gives the task back to the pool: whatever the handler returns is not
  // published; the agent sends -NAK, so the task is delivered again at once
  // (a new attempt, to any agent), as for an agent that stops gracefully
  // mid-task (SPEC.md §21.4). Partial responses already published are
  // void for the orchestrator (§21.3). RunOnce then returns kReleased.
  virtual void Release() = 0;
};

// NatsHandler
// Runs one task: returns the final response payload, or the task's error
// (published as AGENT_ERROR with the status code and message).
using NatsHandler =
    std::function<absl::StatusOr<std::string>(NatsTaskContext& task)>;

// NatsAgentOptions
struct NatsAgentOptions {
  NatsPoolOptions pool;
};

// NatsAgentOutcome
// What one RunOnce did.
enum class NatsAgentOutcome : uint8_t {
  kIdle,             // no task within the timeout
  kCompleted,        // ran the handler; final response or error published
  kDeadLetter,       // max deliveries exceeded (§21.5)
  kRejected,         // the message failed §21.8
  kExpired,          // deadline passed before it ran (§21.6)
  kCancelledBefore,  // cancelled before it ran (§21.7)
  kReleased,         // the handler gave it back (NatsTaskContext::Release)
};

// NatsAgent
// Fetches tasks from the pool's shared consumer and runs `handler` on each
// (SPEC.md §21.4).
class NatsAgent {
 public:
  // Create
  // Ensures the pool, subscribes to its cancels and binds to the agents'
  // consumer. Errors: those of EnsurePool.
  SYMWIRE_DECL static absl::StatusOr<NatsAgent> Create(NatsClient client,
                                                       NatsAgentOptions options,
                                                       NatsHandler handler);

  // RunOnce
  // Fetches one task (waiting up to `fetch_timeout`) and handles it: the
  // checks of §21.4, the handler with in-progress acks every ack_wait / 3,
  // the responses, then the ack.
  // Errors: UNAVAILABLE, DEADLINE_EXCEEDED (publishing to the broker: the
  //   task is left unacknowledged and will be redelivered), INTERNAL.
  SYMWIRE_DECL absl::StatusOr<NatsAgentOutcome> RunOnce(
      absl::Duration fetch_timeout);

  // Tasks whose cancel this agent looked up in the cancel stream (one
  // broker round trip each): those stored before its cancel subscription
  // became active, or before it last lost a cancel (§21.4). Others are
  // decided by the cancels it received.
  SYMWIRE_DECL uint64_t stored_cancel_lookups() const;

 private:
  explicit NatsAgent(std::shared_ptr<nats_detail::AgentState> s)
      : state_(std::move(s)) {}
  std::shared_ptr<nats_detail::AgentState> state_;
};

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/nats/impl/pool.ipp"
#endif

#endif  // SYMWIRE_NATS_POOL_HPP_
