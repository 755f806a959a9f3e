// File: symwire/runtime/options.hpp
// Layer 3b (runtime). The plain settings and value types of the runtime:
// SystemRandom, SteadyNow, Response, ChannelEvent, RetryPolicy,
// ChannelOptions, CallOptions, TaskCallbacks. (RuntimeObserver:
// runtime/observer.hpp.)
#ifndef SYMWIRE_RUNTIME_OPTIONS_HPP_
#define SYMWIRE_RUNTIME_OPTIONS_HPP_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/runtime/observer.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/event.hpp"
#include "symwire/session/methods.hpp"

namespace symwire {

// SystemRandom
// A cryptographic RandomSource (OpenSSL RAND_bytes) for SessionConfig:
// session ids, resume tokens, challenges and backoff jitter. The runtime
// uses it when SessionConfig::random is empty.
SYMWIRE_DECL RandomSource SystemRandom();

// SteadyNow
// The driver's clock: steady_clock as an absl::Time (on the Unix epoch
// scale, meaningful only relative to other SteadyNow values).
SYMWIRE_DECL absl::Time SteadyNow();

// Response
// One AGENT_RESPONSE of a task, owned.
struct Response {
  std::string payload;
  bool final = false;
};

// ChannelEvent
// What a Channel reports to its observer (SetObserver): connection-level
// changes the user may want to log or show. Tasks are never lost across
// kReconnecting -> kResumed.
struct ChannelEvent {
  enum class Kind : uint8_t {
    kConnected,         // first handshake done
    kReconnecting,      // connection lost; the session resumes (client:
                        // redials); or a first connection failed and is
                        // retried (ClientOptions::retry_first_connect)
    kResumed,           // resumed on a new connection; nothing lost
    kPeerDraining,      // the peer closes gracefully; start no more tasks
    kClosed,            // the session ended gracefully
    kFailed,            // the session ended on `status`
    kReconnectAttempt,  // client: a redial starts (one per dial of an
                        // outage): `attempt` counts from 1, `delay` is the
                        // backoff waited since the loss or the last failed
                        // dial, `status` that loss's or dial's error
  };
  Kind kind;
  absl::Status status;   // kReconnecting, kReconnectAttempt, kFailed: why
  uint32_t attempt = 0;  // kReconnecting: dials so far in this outage
  absl::Duration delay = absl::ZeroDuration();  // kReconnectAttempt
};
SYMWIRE_DECL std::string_view ChannelEventName(ChannelEvent::Kind kind);

// RetryPolicy
// When Channel::async_call (and async_check_health) submits a task again
// after a failed attempt; gRPC's retry policy is the model (its
// retryableStatusCodes, maxAttempts, initialBackoff, maxBackoff,
// backoffMultiplier and "committed" rule). The default (max_attempts 1)
// never retries. ChannelOptions::retry is the channel's default,
// CallOptions::retry a per-call override.
//
// An attempt that failed is retried when all of these hold:
//   - its status's canonical code is in `retryable_codes`;
//   - the call is not committed: no response (partial or final) of the
//     attempt has been received (gRPC's rule: once a response reached the
//     caller, another attempt could duplicate it);
//   - fewer than `max_attempts` attempts were made;
//   - the channel's session is still alive and takes new tasks: an ended
//     session (SESSION_CLOSED, "the server is gone", the unreachable bound)
//     or a peer that drains (detail PEER_DRAINING, locally or from the
//     agent) is never retried on this channel: the status says "go
//     elsewhere" (a pool retries on another endpoint);
//   - the agent did not start the task, or the task is idempotent
//     (CallOptions::idempotent, ChannelOptions::idempotent_methods).
// "The agent did not start it" means exactly one of:
//   - the task was never sent: the submission failed here, e.g. with
//     wait_for_ready = false while the connection is down (kUnavailable,
//     detail CONNECTION_LOST, "connection down, reconnecting: ...");
//   - the agent answered AGENT_ERROR with the `retryable` flag (SPEC.md
//     §11.2, §13.2: "the work was not done"): IncomingTask::Fail(status,
//     /*retryable=*/true), e.g. an overloaded agent's kResourceExhausted;
//     TaskCall::retryable() is true;
//   - the session ended the task as never written to any connection
//     (SPEC.md §16.3; retryable, but the session has ended: see above).
// Any other failure may come from a task the agent received and ran, at
// least in part: an AGENT_ERROR without `retryable`, or a task that was
// written to a connection that died before any response (SPEC.md §16.3,
// "the peer may have received and run it"). Such a task is retried only
// when idempotent. Local cancellation (kCancelled) and the call's deadline
// (kDeadlineExceeded) end the call; they are not retryable codes unless
// the user lists them.
//
// Backoff (gRPC's): the n-th retry (n = 1, 2, ...) waits
// bound(n) = min(initial_backoff * backoff_multiplier^(n-1), max_backoff),
// less a random part: bound(n) * (1 - jitter * u), u uniform in [0, 1)
// from the session's RandomSource (jitter 1 is gRPC's random(0, bound)).
// The call's deadline
// (CallOptions::deadline) bounds all attempts together: each attempt is
// sent with what is left of it, and a backoff that would end at or after
// it is not waited: the call completes at once with the last attempt's
// error, its message ending "(not retried: the backoff of N ms would pass
// the call's deadline)". Cancelling the call during a backoff completes it
// at once (per-operation cancellation, any type; Channel::async_submit),
// and so does the end of its session (Close, Abort, a failure): with
// SESSION_CLOSED or the session's error, no further attempt being possible.
//
// Every retry is a new task on the wire: a new task id (stream id), sent
// again in full; the agent cannot tell it from another task (SPEC.md is
// unchanged). The observer (RuntimeObserver::OnTaskRetry) is told of each
// retry before its backoff; RuntimeMetrics counts them.
struct RetryPolicy {
  // Codes that may be retried (gRPC's retryableStatusCodes).
  std::vector<absl::StatusCode> retryable_codes = {
      absl::StatusCode::kUnavailable, absl::StatusCode::kResourceExhausted};
  // The bound of the first retry's random delay, and the cap of any.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2.0;
  // The random fraction of each delay, 0..1 (0: none; 1: gRPC's full
  // jitter). It spreads the retries of many callers refused at once.
  double jitter = 0.2;
  // Attempts in all, the first included (gRPC's maxAttempts). 0 and 1: no
  // retry.
  uint32_t max_attempts = 1;
};

// ChannelOptions
// The runtime's settings for one session.
struct ChannelOptions {
  // The session's configuration (SPEC.md §19 defaults). `side` is set by
  // Client / Server; an empty `random` becomes SystemRandom().
  SessionConfig session;
  // Bytes of received responses that TaskCall::async_next has not taken
  // yet, summed over the session's tasks. Above it the peer stops reading
  // from the connection (TCP-style back-pressure) until the user catches
  // up to half of it. Bounds memory against a fast agent and a slow
  // orchestrator.
  size_t max_unread_response_bytes = size_t{64} << 20;
  // Early flush: once this many bytes wait to be written, a write starts
  // at once (if none is in flight) instead of at the end of the batch of
  // input or of the executor turn. A large batch (a read carrying hundreds
  // of tasks, a handler answering them) then reaches the peer in pieces
  // while the rest is still being produced, so the two sides work in
  // parallel instead of taking turns; small batches still cost one write.
  // 64-byte request/response throughput over TCP between two vCPUs went
  // from 1.9 M to 4.5-5.3 M msgs/s with 4-8 KiB here (bench/README.md);
  // 0 flushes after every frame, SIZE_MAX only at the end of each batch.
  size_t early_flush_bytes = 8192;
  // Send backlog: once this many bytes wait behind a write in flight (the
  // system has not taken the last batch yet), Submit and Respond are
  // refused with REPLAY_BUFFER_FULL until that write completes (the
  // async_ forms wait). The send window (SessionConfig::replay_bytes)
  // still bounds what is unacknowledged; this bounds what is produced
  // ahead of the connection, so that a fast producer encodes each frame
  // shortly before the system copies it (still in cache) instead of
  // megabytes ahead. SIZE_MAX: only the send window limits.
  size_t send_backlog_bytes = size_t{512} << 10;
  // Hooks for every task and connection (runtime/observer.hpp; e.g. a
  // RuntimeMetrics). Unset: no observer work at all. Called on the
  // channel's executor: with a sharded Server, from every shard's thread.
  std::shared_ptr<RuntimeObserver> observer;
  // async_close's time limit: a graceful close not finished this long after
  // it started (the peer does not answer, or is unreachable and the session
  // waits for a resume) is aborted, and async_close completes with
  // kDeadlineExceeded "async_close: the session did not close within N ms"
  // (the peer's tasks still open then end with that status too).
  // InfiniteDuration(): no limit (the resume window, SessionConfig, still
  // ends a disconnected session).
  absl::Duration close_timeout = absl::Seconds(10);
  // The default retry policy of this channel's calls (RetryPolicy; off by
  // default). CallOptions::retry overrides it per call.
  RetryPolicy retry;
  // Methods (CallOptions::method) whose tasks are idempotent: running one
  // twice does no harm, so RetryPolicy may retry it even after the agent
  // may have run it. CallOptions::idempotent marks a single call.
  std::vector<std::string> idempotent_methods;
};

// CallOptions
// TaskOptions that own their strings, for the asynchronous calls (which
// outlive the caller's buffers).
struct CallOptions {
  std::optional<absl::Duration> deadline;  // relative budget
  std::optional<TraceParent> trace_parent;
  std::string trace_state;
  std::vector<std::pair<std::string, std::string>> metadata;
  // The task's method (SPEC.md §5.1): which handler of the agent runs it
  // (Server::Handle). Empty: none (the agent's catch-all task handler).
  // 1..255 bytes of 0x21..0x7e: otherwise the submission fails with
  // kInvalidArgument / INVALID_FRAME naming the byte and its index. To a
  // peer that did not announce methods (capability METHODS): kUnimplemented
  // / UNIMPLEMENTED, nothing sent. An agent without a handler for it
  // answers kUnimplemented / UNIMPLEMENTED "unknown method ...".
  std::string method;
  // The retry policy of this call (RetryPolicy); unset: the channel's
  // (ChannelOptions::retry). Used by async_call and async_check_health;
  // async_submit and Submit never retry (the TaskCall is the caller's:
  // TaskCall::retryable() says whether the agent started it).
  std::optional<RetryPolicy> retry;
  // A label of the user's for this task ("doc-17"), never sent: every
  // error the call returns (submission, the task's status, async_next,
  // cancellation) names it, with the method, in its message:
  //   method "summarize", task "doc-17": <the error>
  // With a method and no label: method "summarize", task 5: <the error>.
  // The leading "task <id>: " of a session message is dropped; with
  // neither set, messages are unchanged. The status's code and symwire
  // detail are unchanged.
  std::string label;
  // With trace_parent: send a child span of it instead (ChildTraceParent,
  // runtime/trace.hpp: same trace, a fresh span id per task, from the
  // session's RandomSource); TaskCall::trace_parent() returns what was sent.
  bool trace_child_span = false;
  // wait_for_ready (gRPC's semantics; async_submit and async_call, on a
  // Client's channel). When a connection is lost, the client redials at
  // once; while that first redial (and its resume handshake) is under way
  // every call waits for it, as gRPC's CONNECTING state. Once a redial or
  // resume of the outage has failed (gRPC's TRANSIENT_FAILURE, until a
  // resume completes):
  //   false (default): a call fails at once, unsent, with kUnavailable
  //     (detail CONNECTION_LOST) "connection down, reconnecting: <the
  //     last dial's or the connection's error>";
  //   true: it waits for the resume (in submission order), bounded by
  //     `deadline` if set (then kDeadlineExceeded; the deadline sent is
  //     what is left of it) and by ClientOptions::unreachable_timeout.
  // Calls already submitted when the connection drops (sent or queued) are
  // kept and resumed by the session (SPEC.md §16) either way; only the
  // unreachable bound ends them. Before the first handshake, every call
  // waits for it (Client::Connect's retries bound that wait).
  // Channel::Submit (synchronous) ignores it: while disconnected it queues
  // the task for the resume.
  bool wait_for_ready = false;
  // The task is idempotent (see RetryPolicy): it may be retried even after
  // the agent may have run it. Also true for a method listed in
  // ChannelOptions::idempotent_methods.
  bool idempotent = false;
};

// TaskCallbacks
// Zero-copy alternative to TaskCall::async_next: called inline on the
// executor as frames arrive. `on_response` gets each partial and the final
// payload (the span is valid during the call only); `on_done` is called
// exactly once with OK after the final response, or the task's error.
struct TaskCallbacks {
  std::function<void(absl::Span<const std::byte> payload, bool final)>
      on_response;
  std::function<void(const absl::Status& status)> on_done;
};

// The old names (README, "Upgrading").
using PeerEvent [[deprecated("use symwire::ChannelEvent")]] = ChannelEvent;
using PeerOptions [[deprecated("use symwire::ChannelOptions")]] =
    ChannelOptions;
[[deprecated("use symwire::ChannelEventName")]] inline std::string_view
PeerEventName(ChannelEvent::Kind kind) {
  return ChannelEventName(kind);
}

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/runtime/impl/options.ipp"
#endif

#endif  // SYMWIRE_RUNTIME_OPTIONS_HPP_
