// File: symwire/transport/runtime.hpp
// Layer 3. The runtime users write orchestrators and agents against: Peer
// (one session, driven over real transports), TaskCall (a task this side
// submitted), IncomingTask (a task this side executes), Client (dials,
// reconnects and resumes) and Server (accepts, keeps the registry that
// routes resumes, drains on shutdown).
//
// The driver. Peer is the one generic loop of STYLE.md §1 over any
// Transport: it feeds what the transport reads to Session::Receive, copies
// what PollTransmit returns into the transport's pending batch (written
// with coalescing), delivers PollEvent's events, and keeps one timer armed
// for NextDeadline(). It is the only code that reads a clock
// (steady_clock).
//
// Threading. Every object here belongs to one executor (an io_context, or
// a strand): its callbacks run there, and its synchronous member functions
// must be called there (like an Asio socket). The async_* functions may be
// called from any thread: they hop to the executor. Completion handlers
// run on the handler's associated executor (Asio's rules), never inline
// inside the initiating call. One io_context per core works: give each
// Client its own context; a Server and its sessions live on one executor.
//
// Completion tokens. Every async_* function follows Asio's completion-token
// convention: pass a callback, asio::use_awaitable (C++20 coroutines),
// asio::use_future, or asio::deferred. Signatures carry absl::Status /
// absl::StatusOr, never exceptions, so use_future yields a
// std::future<absl::StatusOr<T>>.
#ifndef SYMWIRE_TRANSPORT_RUNTIME_HPP_
#define SYMWIRE_TRANSPORT_RUNTIME_HPP_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "boost/asio/associated_executor.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/execution/outstanding_work.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/prefer.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/config.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/event.hpp"
#include "symwire/session/session.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

class Peer;
class Server;

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

// PeerEvent
// What a Peer reports to its observer (SetObserver): connection-level
// changes the user may want to log or show. Tasks are never lost across
// kReconnecting -> kResumed.
struct PeerEvent {
  enum class Kind : uint8_t {
    kConnected,     // first handshake done
    kReconnecting,  // connection lost; the session resumes (client:
                    // redials); or a first connection failed and is
                    // retried (ClientOptions::retry_first_connect)
    kResumed,       // resumed on a new connection; nothing lost
    kPeerDraining,  // the peer closes gracefully; start no more tasks
    kClosed,        // the session ended gracefully
    kFailed,        // the session ended on `status`
  };
  Kind kind;
  absl::Status status;   // kReconnecting, kFailed: why
  uint32_t attempt = 0;  // kReconnecting: dials so far in this outage
};
SYMWIRE_DECL std::string_view PeerEventName(PeerEvent::Kind kind);

// PeerOptions
// The runtime's settings for one session.
struct PeerOptions {
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
};

// CallOptions
// TaskOptions that own their strings, for the asynchronous calls (which
// outlive the caller's buffers).
struct CallOptions {
  std::optional<absl::Duration> deadline;  // relative budget
  std::optional<TraceParent> trace_parent;
  std::string trace_state;
  std::vector<std::pair<std::string, std::string>> metadata;
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

namespace detail {
struct CallState;
struct IncomingState;
template <class Signature>
using Completion = absl::AnyInvocable<Signature>;

// Wraps an Asio completion handler so that it runs on its associated
// executor (posted: never inline in the caller), and keeps that executor
// busy until then.
template <class R, class Handler>
Completion<void(R)> MakeCompletion(const asio::any_io_executor& ex,
                                   Handler&& handler) {
  auto work = asio::prefer(asio::get_associated_executor(handler, ex),
                           asio::execution::outstanding_work.tracked);
  return [h = std::forward<Handler>(handler),
          work = std::move(work)](R result) mutable {
    asio::post(work, [h = std::move(h), r = std::move(result)]() mutable {
      std::move(h)(std::move(r));
    });
  };
}
}  // namespace detail

// TaskCall
// A task this side submitted (Peer::Submit / async_submit). A cheap
// handle: copies refer to the same task. Members run on the peer's
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

  // async_next
  // The next response (partials, then the final one with final == true),
  // in order. After the final response: OUT_OF_RANGE "task finished".
  // On failure or cancellation: the task's error (TaskFailed's status, see
  // retryable(); kCancelled after Cancel()).
  // REQUIRES: no other async_next of this task is pending.
  // Signature: void(absl::StatusOr<Response>).
  template <class CompletionToken>
  auto async_next(CompletionToken&& token);

  // Cancel
  // Cancels the task (SPEC.md §13.3); a pending async_next completes with
  // kCancelled. Errors: WRONG_STATE if it already ended.
  SYMWIRE_DECL absl::Status Cancel();

  explicit operator bool() const { return state_ != nullptr; }
  // The peer's executor (where the task's callbacks run).
  SYMWIRE_DECL asio::any_io_executor get_executor() const;

 private:
  friend class Peer;
  explicit TaskCall(std::shared_ptr<detail::CallState> state)
      : state_(std::move(state)) {}
  SYMWIRE_DECL void StartNext(
      detail::Completion<void(absl::StatusOr<Response>)> done);
  std::shared_ptr<detail::CallState> state_;
};

// IncomingTask
// A task this side executes, handed to the task handler (SetTaskHandler).
// A cheap handle: keep a copy to answer later (on the peer's executor).
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
  // WRONG_STATE (task ended), REPLAY_BUFFER_FULL (the send window is full:
  // use async_respond, which waits), FRAME_TOO_LARGE, SESSION_CLOSED.
  SYMWIRE_DECL absl::Status Respond(absl::Span<const std::byte> payload,
                                    bool final);
  absl::Status Respond(std::string_view payload, bool final) {
    return Respond(AsBytes(payload), final);
  }
  // async_respond: Respond, waiting for room in the send window instead of
  // failing with REPLAY_BUFFER_FULL. The payload is copied at once.
  // Signature: void(absl::Status).
  template <class CompletionToken>
  auto async_respond(std::string payload, bool final, CompletionToken&& token);

  // Fail
  // Ends the task with an error; `retryable` tells the submitter the work
  // was not done. REQUIRES: !status.ok(). Errors: WRONG_STATE,
  // SESSION_CLOSED.
  SYMWIRE_DECL absl::Status Fail(const absl::Status& status,
                                 bool retryable = false);

  explicit operator bool() const { return state_ != nullptr; }
  // The peer's executor: answer the task there.
  SYMWIRE_DECL asio::any_io_executor get_executor() const;

 private:
  friend class Peer;
  static absl::Span<const std::byte> AsBytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }
  explicit IncomingTask(std::shared_ptr<detail::IncomingState> state)
      : state_(std::move(state)) {}
  SYMWIRE_DECL void StartRespond(std::string payload, bool final,
                                 detail::Completion<void(absl::Status)> done);
  std::shared_ptr<detail::IncomingState> state_;
};

// TaskHandler: runs inline, on the executor, for each task received.
using TaskHandler = std::function<void(IncomingTask task)>;

// Peer
// One session, driven over a sequence of transports. Created by Client
// (initiator) or Server (acceptor); always held by shared_ptr.
class Peer : public std::enable_shared_from_this<Peer>,
             private Transport::Sink {
 public:
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  SYMWIRE_DECL ~Peer();

  const asio::any_io_executor& get_executor() const { return executor_; }

  // SetTaskHandler
  // Where received tasks go. Without a handler, a task is failed with
  // kUnimplemented ("no task handler").
  void SetTaskHandler(TaskHandler handler) { handler_ = std::move(handler); }
  // SetObserver: connection-level events (PeerEvent), inline.
  void SetObserver(std::function<void(const PeerEvent&)> observer) {
    observer_ = std::move(observer);
  }

  // Submit
  // Sends a task: encoded at once, written with everything else produced in
  // the same executor turn (one write per burst of Submits, not one per
  // call). Errors as Session::SubmitTask: NO_CREDIT and
  // REPLAY_BUFFER_FULL mean "wait" (async_submit does), PEER_DRAINING and
  // SESSION_CLOSED mean "go elsewhere". With `callbacks`, responses are
  // delivered zero-copy through them instead of TaskCall::async_next.
  SYMWIRE_DECL absl::StatusOr<TaskCall> Submit(
      absl::Span<const std::byte> payload, const TaskOptions& options = {},
      TaskCallbacks callbacks = {});
  absl::StatusOr<TaskCall> Submit(std::string_view payload,
                                  const TaskOptions& options = {},
                                  TaskCallbacks callbacks = {}) {
    return Submit(IncomingTask::AsBytes(payload), options,
                  std::move(callbacks));
  }

  // async_submit
  // Submit, waiting (in submission order) for the first handshake and
  // while the peer's task credit or the send window is exhausted. Signature:
  // void(absl::StatusOr<TaskCall>).
  template <class CompletionToken>
  auto async_submit(std::string payload, CallOptions options,
                    CompletionToken&& token) {
    return async_submit(std::move(payload), std::move(options), TaskCallbacks{},
                        std::forward<CompletionToken>(token));
  }
  // With `callbacks`: responses are delivered zero-copy through them (the
  // TaskCall's async_next then has nothing to return).
  template <class CompletionToken>
  auto async_submit(std::string payload, CallOptions options,
                    TaskCallbacks callbacks, CompletionToken&& token);

  // async_call
  // Submits and waits for the whole result: the concatenation of every
  // partial and the final payload (a streamed answer, joined). Errors: the
  // submission's, then the task's. Signature:
  // void(absl::StatusOr<std::string>).
  template <class CompletionToken>
  auto async_call(std::string payload, CallOptions options,
                  CompletionToken&& token);

  // Close
  // Graceful close (SPEC.md §15.3): accepted tasks finish, then bye.
  // async_close completes when the session has ended: OK when it closed,
  // its error when it failed. Signature: void(absl::Status).
  SYMWIRE_DECL absl::Status Close();
  template <class CompletionToken>
  auto async_close(CompletionToken&& token);

  // Abort: ends the session now with `status` (sent to the peer).
  SYMWIRE_DECL void Abort(const absl::Status& status);

  // async_wait_established: completes once the session is established (at
  // once if it is), or with the error that ended it. Signature:
  // void(absl::Status).
  template <class CompletionToken>
  auto async_wait_established(CompletionToken&& token);

  // Observers.
  const Session& session() const { return *session_; }
  SessionState state() const { return session_->state(); }
  bool connected() const { return transport_ != nullptr; }
  const SessionCounters& counters() const { return session_->counters(); }
  // The current transport's description ("tcp 127.0.0.1:7000"), or "".
  SYMWIRE_DECL std::string transport_description() const;
  // The current transport's counters (zero when disconnected).
  SYMWIRE_DECL TransportCounters transport_counters() const;
  uint64_t reconnects() const { return reconnects_; }

  // KillConnection: drops the current connection abruptly, as a network
  // failure would (tests, demos, operators forcing a reconnect).
  SYMWIRE_DECL void KillConnection();

 private:
  friend class TaskCall;
  friend class IncomingTask;
  friend class Server;
  friend class Client;
  struct Private {};

 public:
  // Use Client / Server.
  SYMWIRE_DECL Peer(Private, asio::any_io_executor executor,
                    std::unique_ptr<Session> session, PeerOptions options);

 private:
  // Transport::Sink
  void OnTransportData(Transport& transport,
                       absl::Span<const std::byte> bytes) override;
  void OnTransportClosed(Transport& transport,
                         const absl::Status& status) override;

  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Peer>> Make(
      asio::any_io_executor executor, PeerOptions options, SessionSide side);
  void Attach(std::shared_ptr<Transport> transport, bool start);
  void Detach();
  // AfterInput: after an input to the session, dispatch its events, hand
  // its bytes to the transport, flush, re-arm the timer.
  void AfterInput();
  // AfterUserCall: after a Submit or Respond that succeeded. Inside the
  // dispatch loop nothing (the loop drains after each event); outside it,
  // one AfterInput is posted for the whole burst, so N calls in one handler
  // cost one flush, one write and one timer check instead of N (plus the
  // early flushes of PeerOptions::early_flush_bytes).
  void AfterUserCall();
  // MaybeFlushEarly: PeerOptions::early_flush_bytes.
  void MaybeFlushEarly();
  // Now: the clock for user calls, read once per executor turn (valid until
  // the turn's AfterInput ends). Submit and Respond only use `now` for
  // bookkeeping whose timers may fire early (acks, close), so a reading a
  // few microseconds old is harmless and saves a clock read (~25 ns) per
  // call; anything relative to now (a task deadline) uses FreshNow().
  absl::Time Now();
  absl::Time FreshNow();
  void DrainTransmit();
  void HandleEvent(Event& event);
  void ArmTimer();
  void Notify(PeerEvent::Kind kind, absl::Status status = absl::OkStatus(),
              uint32_t attempt = 0);
  void Dial();
  // A first-connection failure: false if it ends the session, true if a
  // fresh attempt was scheduled (ClientOptions::retry_first_connect).
  bool MaybeRetryFirst(const absl::Status& status);
  void EndPendingRetry();
  // After a resume handshake: the replayed frames go out in small writes.
  void BeginReplay(bool first_span_alone);
  void FinishCall(TaskId id, const absl::Status& status);
  void EndIncoming(TaskId id, const absl::Status& cancel_status);
  void RunWritableWaiters();
  void SessionEnded(const absl::Status& status);
  void UnreadChanged(int64_t delta);
  void SubmitWhenWritable(
      std::string payload, CallOptions options, TaskCallbacks callbacks,
      absl::AnyInvocable<void(absl::StatusOr<TaskCall>)> done);
  void StartSubmit(std::string payload, CallOptions options,
                   TaskCallbacks callbacks,
                   detail::Completion<void(absl::StatusOr<TaskCall>)> done);
  void StartCall(std::string payload, CallOptions options,
                 detail::Completion<void(absl::StatusOr<std::string>)> done);
  void StartClose(detail::Completion<void(absl::Status)> done);
  void StartWaitEstablished(detail::Completion<void(absl::Status)> done);
  absl::Status RespondFor(detail::IncomingState& task,
                          absl::Span<const std::byte> payload, bool final);

  asio::any_io_executor executor_;
  PeerOptions options_;
  std::unique_ptr<Session> session_;
  std::shared_ptr<Transport> transport_;
  asio::steady_timer timer_;
  absl::Time timer_at_ = absl::InfiniteFuture();
  uint64_t timer_generation_ = 0;
  TaskHandler handler_;
  std::function<void(const PeerEvent&)> observer_;
  absl::flat_hash_map<TaskId, std::shared_ptr<detail::CallState>> calls_;
  absl::flat_hash_map<TaskId, std::shared_ptr<detail::IncomingState>> incoming_;
  // Work waiting for a Writable event (credit or send window), in order.
  std::deque<absl::AnyInvocable<bool()>> writable_waiters_;
  std::vector<detail::Completion<void(absl::Status)>> close_waiters_;
  std::vector<detail::Completion<void(absl::Status)>> established_waiters_;
  // Client only.
  Dialer dialer_;
  bool dialing_ = false;
  bool reconnect_ = true;
  // Server only: the server that owns this peer, the connection's source
  // (ServerOptions), the bytes received before establishment
  // (max_handshake_bytes) and when the session last lost its connection
  // (eviction order).
  std::weak_ptr<Server> server_;
  std::string source_;
  size_t handshake_bytes_ = 0;
  size_t handshake_byte_limit_ = SIZE_MAX;
  absl::Time disconnected_at_ = absl::InfiniteFuture();
  bool registered_ = false;
  bool user_ended_ = false;  // Close or Abort called (no first retry)
  // Client only: first-connection retries (ClientOptions).
  bool retry_first_ = false;
  bool retry_pending_ = false;  // a fresh attempt is scheduled
  absl::Status first_failure_;  // why the last attempt failed
  uint32_t first_attempts_ = 0;
  uint32_t first_max_attempts_ = 1;
  absl::Time first_deadline_ = absl::InfiniteFuture();
  std::unique_ptr<asio::steady_timer> retry_timer_;
  bool established_once_ = false;
  bool dispatching_ = false;
  bool flush_posted_ = false;  // an AfterInput is posted (AfterUserCall)
  bool now_valid_ = false;
  bool first_span_alone_ = false;  // BeginReplay: flush the WELCOME alone
  absl::Time now_;
  bool ended_ = false;
  uint32_t outage_attempts_ = 0;
  uint64_t reconnects_ = 0;
  size_t unread_bytes_ = 0;
};

// ClientOptions
struct ClientOptions : PeerOptions {
  // Redial and resume after a connection is lost (SessionConfig::backoff
  // paces the dials). False: a lost connection fails the session (for
  // transports that cannot be redialled, such as a child's pipes).
  bool reconnect = true;
  // First-connection retries (Client::Connect only; issue #11). When the
  // first connection cannot be made or its handshake fails on a transient
  // error (a dial failure, a lost or reset connection, which is also how a
  // server over its connection limits refuses, a framing or CRC error, a
  // handshake timeout, a SESSION_ERROR with a retryable code such as
  // UNAVAILABLE), the client waits SessionConfig::backoff and dials again
  // with a fresh handshake (PeerEvent kReconnecting, `attempt` = failures
  // so far), up to `first_connect_attempts` connections in all and no new
  // attempt later than `first_connect_timeout` after Connect. A definitive
  // refusal is not retried: UNAUTHENTICATED, VERSION_MISMATCH,
  // UNSUPPORTED_VERSION, INCOMPATIBLE_ROLES, PERMISSION_DENIED, a bad
  // configuration; nor is a session the server refuses once its handshake
  // completed (RESOURCE_EXHAUSTED for a full registry: the session was
  // established). async_wait_established then completes with the last
  // error. 1 (or retry_first_connect = false) turns retries off: the first
  // failure ends the session, as before.
  bool retry_first_connect = true;
  uint32_t first_connect_attempts = 8;
  absl::Duration first_connect_timeout = absl::Seconds(60);
};

// Client
// The initiator side: Connect creates the session and dials.
class Client {
 public:
  // Connect
  // Creates a Peer that dials with `dialer` now and again after every
  // loss. Wait for the handshake with Peer::async_wait_established: the
  // first connection is retried on transient failures
  // (ClientOptions::retry_first_connect); later losses are repaired by
  // resuming. Errors: kInvalidArgument for a bad config.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Peer>> Connect(
      const asio::any_io_executor& executor, Dialer dialer,
      ClientOptions options);

  // Over an already-connected transport (no reconnect, no retry of the
  // first connection): a child process's pipes, a memory pipe.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Peer>> Start(
      const std::shared_ptr<Transport>& transport, PeerOptions options);
};

// ServerOptions
//
// Memory before authentication (issue #11). A connection whose session is
// not established yet costs at most: its read buffer, held at
// Transport::kInitialReadBuffer (4 KiB) until establishment; the bytes its
// session buffers, at most max_handshake_bytes (the connection is closed
// when its peer sends more before the handshake completes; the session
// also limits a frame to 8 KiB until then, SPEC.md §15.2); its output (a
// preface and a few control frames, well under 1 KiB); and the fixed state
// of a Session, a Peer and a Transport (an idle handshaking connection
// measured about 16 KiB in all, read buffer included, in
// tests/transport/hostile_test.cpp). With the defaults that is under
// 48 KiB per connection, and max_handshaking_connections bounds how many
// exist at once: about 48 MiB in all, whatever the peers send (kernel
// socket buffers excluded). Past the limit, new connections are closed at
// once (ServerCounters::handshakes_refused) until handshakes finish or
// time out (SessionConfig::handshake_timeout).
//
// The registry (issue #11). An established session is kept while
// connected and, after its connection is lost, for its resume window.
// When a new session would exceed max_sessions (or its source's
// max_sessions_per_source), the server first evicts a disconnected session
// with nothing to resume (no open task in either direction, nothing
// unacknowledged in its replay buffer), the one disconnected longest,
// from that source when the source is at its limit. A later resume of an
// evicted session is rejected (SESSION_EXPIRED): every task the server
// knew of had ended and been acknowledged, so the peer loses at most tasks
// it sent that never arrived (never run, safe to retry). Only when no such
// session exists is the new one refused with RESOURCE_EXHAUSTED. So a full
// registry never refuses a fresh client while it holds evictable sessions.
// Evictions happen only under that pressure: otherwise a disconnected
// session is kept for its whole resume window.
//
// Sources. A TCP or TLS connection's source is its peer's IP address; a
// Unix-domain connection's is its peer's uid ("uid:1000"); a transport
// handed to Accept without one shares the source "accepted".
struct ServerOptions : PeerOptions {
  // Connections accepted and not yet closed (handshaking, idle or live);
  // more are closed at once.
  size_t max_connections = 10000;
  // Connections whose session is not established yet (pre-authentication);
  // more are closed at once. See "Memory before authentication" above.
  size_t max_handshaking_connections = 1024;
  // Bytes a connection may send before its session is established (the
  // preface and the handshake's control frames, each at most 8 KiB); a
  // peer sending more is cut off with RESOURCE_EXHAUSTED.
  size_t max_handshake_bytes = size_t{32} << 10;
  // Established sessions kept (connected or awaiting resume); a handshake
  // beyond it evicts an idle disconnected session (above) or is refused
  // with RESOURCE_EXHAUSTED.
  size_t max_sessions = 10000;
  // Established sessions kept per source (above); 0: no per-source limit.
  size_t max_sessions_per_source = 1000;
  // Failed authentications (handshakes ending with UNAUTHENTICATED) per
  // source: after `max_auth_failures_per_source` of them within
  // `auth_failure_window`, new connections from that source are closed at
  // once (ServerCounters::auth_refused) until `auth_block_time` has passed.
  // 0: no limit.
  uint32_t max_auth_failures_per_source = 10;
  std::chrono::milliseconds auth_failure_window{10000};
  std::chrono::milliseconds auth_block_time{30000};
  // async_shutdown: how long sessions may drain before they are aborted.
  std::chrono::milliseconds drain_timeout{5000};
  TcpOptions tcp;
  TransportOptions transport;
};

// ServerCounters
struct ServerCounters {
  uint64_t connections_accepted = 0;
  // Connections closed at once when accepted: over max_connections, over
  // max_handshaking_connections (also in handshakes_refused), or from a
  // source blocked for failed authentications (also in auth_refused).
  uint64_t connections_refused = 0;
  uint64_t handshakes_refused = 0;
  uint64_t auth_refused = 0;
  uint64_t sessions_established = 0;
  // Handshakes refused over max_sessions or max_sessions_per_source (the
  // latter also in sessions_refused_per_source).
  uint64_t sessions_refused = 0;
  uint64_t sessions_refused_per_source = 0;
  // Idle disconnected sessions evicted to make room (see ServerOptions).
  uint64_t sessions_evicted = 0;
  uint64_t resumes = 0;           // connections handed to a session
  uint64_t resumes_rejected = 0;  // unknown or expired session
  // Connections that ended before establishing a session: bad bytes, a
  // handshake timeout, failed authentication or TLS, a rejected resume
  // (also counted in resumes_rejected), more than max_handshake_bytes
  // (also in handshakes_oversized).
  uint64_t handshakes_failed = 0;
  uint64_t handshakes_oversized = 0;
  // Handshakes that failed authentication (UNAUTHENTICATED).
  uint64_t auth_failures = 0;
};

// Server
// The acceptor side. Each accepted connection gets a fresh session; a new
// session is announced to `on_session` once established (set its task
// handler there); a resuming connection is handed to the session it
// belongs to (the registry, by session id).
class Server : public std::enable_shared_from_this<Server> {
 public:
  using SessionHandler = std::function<void(const std::shared_ptr<Peer>&)>;

  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Server>> Create(
      asio::any_io_executor executor, ServerOptions options,
      SessionHandler on_session);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  SYMWIRE_DECL ~Server();

  const asio::any_io_executor& get_executor() const { return executor_; }

  // ListenTcp
  // Listens on `address`:`port` (port 0: any; see the returned endpoint).
  // `upgrade`, if set, turns each accepted socket into a transport (the TLS
  // handshake, tls.hpp) instead of using it as is. Errors: the bind or
  // listen failure (CONNECTION_LOST, naming the address).
  using Upgrade =
      std::function<void(asio::ip::tcp::socket socket, DialHandler done)>;
  SYMWIRE_DECL absl::StatusOr<asio::ip::tcp::endpoint> ListenTcp(
      const std::string& address, uint16_t port, Upgrade upgrade = {});
  // ListenUnix: listens on a Unix-domain socket at `path` (an existing
  // socket file there is replaced).
  SYMWIRE_DECL absl::Status ListenUnix(const std::string& path);

  // Accept
  // Serves one already-connected transport (any kind: stdio, a memory
  // pipe, a socket accepted elsewhere).
  SYMWIRE_DECL void Accept(std::shared_ptr<Transport> transport);
  // With the connection's source (ServerOptions, "Sources"): a peer
  // address or identity that per-source limits count by.
  SYMWIRE_DECL void Accept(std::shared_ptr<Transport> transport,
                           std::string source);

  // async_shutdown
  // Stops listening, closes every session gracefully (accepted tasks
  // finish; SPEC.md §15.3), aborts what is still open after drain_timeout,
  // and completes with OK. Signature: void(absl::Status).
  template <class CompletionToken>
  auto async_shutdown(CompletionToken&& token);

  // Stop: closes listeners and aborts every session and connection now.
  SYMWIRE_DECL void Stop();

  const ServerCounters& counters() const { return counters_; }
  // Transports attached to this server's sessions (handshaking, live).
  size_t connections() const { return live_connections_; }
  size_t sessions() const { return registry_.size(); }
  // The established session with this id, or nullptr.
  SYMWIRE_DECL std::shared_ptr<Peer> Find(const SessionId& id) const;

 private:
  friend class Peer;
  struct Private {};

 public:
  SYMWIRE_DECL Server(Private, asio::any_io_executor executor,
                      ServerOptions options, SessionHandler on_session);

 private:
  struct SessionIdHash {
    size_t operator()(const SessionId& id) const;
  };
  void AcceptTcpLoop(const std::shared_ptr<asio::ip::tcp::acceptor>& acceptor,
                     Upgrade upgrade);
  void AcceptUnixLoop(
      const std::shared_ptr<asio::local::stream_protocol::acceptor>& acceptor);
  // From Peer.
  void OnEstablished(const std::shared_ptr<Peer>& peer);
  // Evicts the idle disconnected session disconnected longest (of `source`
  // if not null); false if there is none.
  bool EvictIdle(const std::string* source);
  bool SourceBlocked(const std::string& source);
  void CountAuthFailure(const std::string& source);
  void OnResumeRequested(const std::shared_ptr<Peer>& fresh,
                         const SessionId& id);
  void OnPeerEnded(Peer* peer);
  void OnConnectionCountChanged(int delta) {
    live_connections_ =
        static_cast<size_t>(static_cast<int64_t>(live_connections_) + delta);
  }
  void StartShutdown(detail::Completion<void(absl::Status)> done);
  void MaybeFinishShutdown();

  asio::any_io_executor executor_;
  ServerOptions options_;
  SessionHandler on_session_;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> tcp_acceptors_;
  std::vector<std::shared_ptr<asio::local::stream_protocol::acceptor>>
      unix_acceptors_;
  // Connections whose session is not established yet.
  absl::flat_hash_map<Peer*, std::shared_ptr<Peer>> pending_;
  absl::flat_hash_map<SessionId, std::shared_ptr<Peer>, SessionIdHash>
      registry_;
  size_t live_connections_ = 0;
  // Registered sessions per source (max_sessions_per_source).
  absl::flat_hash_map<std::string, size_t> sessions_per_source_;
  // Failed authentications per source (max_auth_failures_per_source).
  struct AuthFailures {
    std::chrono::steady_clock::time_point window_start;
    uint32_t count = 0;
    std::chrono::steady_clock::time_point blocked_until;
  };
  absl::flat_hash_map<std::string, AuthFailures> auth_failures_;
  size_t auth_sweep_at_ = 1024;  // sweep stale entries past this size
  ServerCounters counters_;
  bool stopping_ = false;
  std::unique_ptr<asio::steady_timer> drain_timer_;
  std::vector<detail::Completion<void(absl::Status)>> shutdown_waiters_;
};

// ---- template bodies ---------------------------------------------------

namespace detail {
// InitiateOn
// The shape of every async_* function here: the handler is wrapped to
// complete on its own executor (MakeCompletion), then `start(done, args...)`
// runs on `ex` (at once when already there, else posted: the call may come
// from any thread).
template <class R, class CompletionToken, class Start, class... Args>
auto InitiateOn(const asio::any_io_executor& ex, Start start,
                CompletionToken&& token, Args&&... args) {
  return asio::async_initiate<CompletionToken, void(R)>(
      [ex, start = std::move(start)](auto handler, auto... a) mutable {
        auto done = MakeCompletion<R>(ex, std::move(handler));
        asio::dispatch(ex, [start = std::move(start), done = std::move(done),
                            ... a = std::move(a)]() mutable {
          start(std::move(done), std::move(a)...);
        });
      },
      token, std::forward<Args>(args)...);
}
}  // namespace detail

template <class CompletionToken>
auto TaskCall::async_next(CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<Response>>(
      get_executor(),
      [self = *this](auto done) mutable { self.StartNext(std::move(done)); },
      std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto IncomingTask::async_respond(std::string payload, bool final,
                                 CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      get_executor(),
      [self = *this, final](auto done, std::string&& p) mutable {
        self.StartRespond(std::move(p), final, std::move(done));
      },
      std::forward<CompletionToken>(token), std::move(payload));
}

template <class CompletionToken>
auto Peer::async_submit(std::string payload, CallOptions options,
                        TaskCallbacks callbacks, CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<TaskCall>>(
      executor_,
      [self = shared_from_this()](auto done, std::string&& p, CallOptions&& o,
                                  TaskCallbacks&& c) {
        self->StartSubmit(std::move(p), std::move(o), std::move(c),
                          std::move(done));
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options), std::move(callbacks));
}

template <class CompletionToken>
auto Peer::async_call(std::string payload, CallOptions options,
                      CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<std::string>>(
      executor_,
      [self = shared_from_this()](auto done, std::string&& p, CallOptions&& o) {
        self->StartCall(std::move(p), std::move(o), std::move(done));
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options));
}

template <class CompletionToken>
auto Peer::async_close(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      executor_,
      [self = shared_from_this()](auto done) {
        self->StartClose(std::move(done));
      },
      std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto Peer::async_wait_established(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      executor_,
      [self = shared_from_this()](auto done) {
        self->StartWaitEstablished(std::move(done));
      },
      std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto Server::async_shutdown(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      executor_,
      [self = shared_from_this()](auto done) {
        self->StartShutdown(std::move(done));
      },
      std::forward<CompletionToken>(token));
}

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/runtime.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_RUNTIME_HPP_
