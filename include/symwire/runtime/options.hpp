// File: symwire/runtime/options.hpp
// Layer 3b (runtime). The plain settings and value types of the runtime:
// SystemRandom, SteadyNow, Response, ChannelEvent, ChannelOptions, CallOptions,
// TaskCallbacks. (RuntimeObserver: runtime/observer.hpp.)
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
