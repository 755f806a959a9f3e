// File: symwire/runtime/channel.hpp
// Layer 3b (runtime). Channel: one session driven over a sequence of
// transports (the driver loop of STYLE.md §1).
#ifndef SYMWIRE_RUNTIME_CHANNEL_HPP_
#define SYMWIRE_RUNTIME_CHANNEL_HPP_

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
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/config.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/detail/driver.hpp"
#include "symwire/runtime/incoming_task.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/runtime/task_call.hpp"
#include "symwire/session/session.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

class Client;
class Server;
namespace detail {
struct CallRun;
struct CallState;
struct IncomingState;
struct ObservedTask;
struct ClientPart;
struct ServerPart;
}  // namespace detail

// Channel
// One session as the user holds it, on either side: the Session (layer 2,
// the protocol state machine) driven over a sequence of Transports (layer
// 3, one connection each; a resume moves the channel to a new one). Created
// by Client (initiator) or Server (acceptor); always held by shared_ptr.
// Formerly Peer (deprecated alias below): "peer" now only means the other
// side of a connection.
class Channel : public std::enable_shared_from_this<Channel>,
                private detail::DriverHost {
 public:
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  SYMWIRE_DECL ~Channel();

  const asio::any_io_executor& get_executor() const { return executor_; }

  // SetTaskHandler
  // Where received tasks go. Without a handler, a task is failed with
  // kUnimplemented ("no task handler").
  void SetTaskHandler(TaskHandler handler) { handler_ = std::move(handler); }
  // SetObserver: connection-level events (ChannelEvent), inline.
  void SetObserver(std::function<void(const ChannelEvent&)> observer) {
    observer_ = std::move(observer);
  }

  // Submit
  // Sends a task: encoded at once, written with everything else produced in
  // the same executor turn (one write per burst of Submits, not one per
  // call). Errors as Session::SubmitTask: NO_CREDIT and
  // REPLAY_BUFFER_FULL (the send window, or the send backlog of
  // ChannelOptions::send_backlog_bytes, is full) mean "wait" (async_submit
  // does), PEER_DRAINING and
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
  // The same with the payload handed over instead of copied: the session
  // keeps a reference to it until the peer acknowledges the frame, and the
  // transport writes it from there (Session::SubmitTask(SharedPayload)).
  SYMWIRE_DECL absl::StatusOr<TaskCall> Submit(const SharedPayload& payload,
                                               const TaskOptions& options = {},
                                               TaskCallbacks callbacks = {});

  // async_submit
  // Submit, waiting (in submission order) for the first handshake and
  // while the peer's task credit or the send window is exhausted. Signature:
  // void(absl::StatusOr<TaskCall>).
  //
  // Per-operation cancellation. Every async_* of the runtime (Channel,
  // TaskCall, IncomingTask) honours the cancellation slot associated with
  // its handler (asio::bind_cancellation_slot, awaitable_operators' `||`,
  // a coroutine's cancellation state). A cancelled op completes at once
  // (posted, on the handler's executor) with kCancelled "<op>: operation
  // aborted by its cancellation slot", the runtime's operation_aborted.
  // The slot's handler is removed when the op completes; a later emit is a
  // no-op. Types honoured, by Asio's rules (total = no side effect,
  // partial = a side effect but a known state, terminal = anything):
  //   async_submit, async_wait_established, TaskCall::async_next,
  //   IncomingTask::async_respond: all three (a queued submission or
  //     response is dropped unsent; a wait is just a wait);
  //   async_call: all three before the task is sent and during a retry's
  //     backoff (RetryPolicy); after, terminal only, which cancels the task
  //     on the wire (AGENT_CANCEL, SPEC.md §13.3);
  //   async_close: terminal and partial; the wait ends, the graceful close
  //     it started goes on.
  // A type an op does not honour leaves it pending (the slot stays armed).
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
  // The same with the payload handed over instead of copied: a submission
  // that waits keeps the reference, and the session keeps it once sent
  // (Submit(const SharedPayload&)); a cancelled one releases it at once.
  template <class CompletionToken>
  auto async_submit(SharedPayload payload, CallOptions options,
                    CompletionToken&& token) {
    return async_submit(std::move(payload), std::move(options), TaskCallbacks{},
                        std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_submit(SharedPayload payload, CallOptions options,
                    TaskCallbacks callbacks, CompletionToken&& token);

  // async_call
  // Submits and waits for the whole result: the concatenation of every
  // partial and the final payload (a streamed answer, joined). Errors: the
  // submission's, then the task's (their messages name the call:
  // CallOptions::label). A failed attempt is retried as RetryPolicy says
  // (CallOptions::retry, ChannelOptions::retry; off by default); the
  // error is then the last attempt's. Signature:
  // void(absl::StatusOr<std::string>).
  // Terminal cancellation after submission cancels the task (AGENT_CANCEL)
  // and completes at once (see async_submit for the cancellation rules).
  // The std::string is taken over (and copied into the replay store by
  // each attempt that is sent); a SharedPayload is kept by reference, and
  // every attempt sends the same bytes by reference. The call lets go of
  // its payload once it completes (or is cancelled) or its last attempt
  // is sent; the session keeps the reference until the peer acknowledges.
  template <class CompletionToken>
  auto async_call(std::string payload, CallOptions options,
                  CompletionToken&& token);
  template <class CompletionToken>
  auto async_call(SharedPayload payload, CallOptions options,
                  CompletionToken&& token);

  // async_check_health
  // Asks the peer's built-in health method (SPEC.md §13.6; gRPC's health
  // checking protocol): an async_call of method "symwire.health" with an
  // empty payload and `options` (a deadline, say; its method is replaced).
  // Completes with kServing, kNotServing or kDraining
  // (Server::SetServingStatus). Errors: the call's (kUnimplemented /
  // UNIMPLEMENTED from a peer that has no health method or did not
  // announce methods; PEER_DRAINING once the peer drains: it takes no new
  // task), kInvalidArgument / MALFORMED_PAYLOAD for an answer that is not
  // one byte 1..3. Cancellation as async_call. Signature:
  // void(absl::StatusOr<HealthStatus>).
  template <class CompletionToken>
  auto async_check_health(CallOptions options, CompletionToken&& token);

  // Close
  // Graceful close (SPEC.md §15.3): accepted tasks finish, then bye.
  // async_close completes when the session has ended: OK when it closed,
  // its error when it failed, kDeadlineExceeded when it did not end within
  // ChannelOptions::close_timeout (the session is then aborted). A client
  // whose server is unreachable ends sooner, at
  // ClientOptions::unreachable_timeout, with kUnavailable. Signature:
  // void(absl::Status).
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
  bool connected() const { return driver_.transport() != nullptr; }
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
  friend struct detail::ClientPart;
  friend struct detail::ServerPart;
  struct Private {};

 public:
  // Use Client / Server.
  SYMWIRE_DECL Channel(Private, asio::any_io_executor executor,
                       std::shared_ptr<Session> session,
                       ChannelOptions options);

 private:
  // ---- The connection (impl/driver.ipp): Channel as the host of its
  // ConnectionDriver (detail/driver.hpp: the loop of STYLE.md §1, the
  // transport, the timer and the clock), and Attach and Detach.
  // detail::DriverHost
  void HandleEvent(Event& event) override;
  bool InterceptData(absl::Span<const std::byte> bytes) override;
  bool ReadingOverLimit() const override {
    return unread_bytes_ > options_.max_unread_response_bytes;
  }
  void DetachConnection(const absl::Status& why) override { Detach(why); }
  absl::Status LostReason(Transport& transport,
                          const absl::Status& status) override;
  bool Ended() const override { return ended_; }
  void SendBacklogDrained() override { RunWritableWaiters(); }
  std::shared_ptr<void> KeepAlive() override { return shared_from_this(); }
  std::weak_ptr<void> WeakOwner() override { return weak_from_this(); }

  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Channel>> Make(
      asio::any_io_executor executor, ChannelOptions options, SessionSide side);
  void Attach(std::shared_ptr<Transport> transport, bool start);
  // Detach: `why` the connection ends, for OnConnectionClosed.
  void Detach(const absl::Status& why = absl::OkStatus());
  // The driver's calls, as the rest of the runtime uses them
  // (detail/driver.hpp).
  using Reading = detail::ConnectionDriver::Reading;
  void AfterInput() { driver_.AfterInput(); }
  void AfterUserCall() { driver_.AfterUserCall(); }
  absl::Time Now(Reading reading = Reading::kTurn) {
    return driver_.Now(reading);
  }
  void DrainTransmit() { driver_.DrainTransmit(); }
  // After a resume handshake: the replayed frames go out in small writes.
  void BeginReplay(bool first_span_alone) {
    driver_.BeginReplay(first_span_alone);
  }
  // ---- Delivery (impl/channel.ipp): one handler per event type, the task
  // table, the user calls.
  // HandleEvent (above): std::visit over the event, one Handle per event
  // type.
  void Handle(TaskReceived& t);
  void Handle(ResponseReceived& r);
  void Handle(TaskFailed& f);
  void Handle(TaskCancelled& c);
  void Handle(Writable& w);
  void Handle(Established& e);
  void Handle(ConnectionLost& lost);
  void Handle(ReconnectDue& due);
  void Handle(ResumeRequested& rr);
  void Handle(PeerDraining& d);
  void Handle(SessionClosed& c);
  void Handle(SessionFailed& sf);
  // ---- Observer hooks (ChannelOptions::observer; runtime/observer.hpp).
  // Each is called only when an observer is set.
  TaskInfo ObservedInfo(const detail::ObservedTask& t, TaskId id,
                        TaskInfo::Side side,
                        const std::optional<TraceParent>& trace) const;
  void ObserveResponse(detail::ObservedTask& t, TaskId id, TaskInfo::Side side,
                       const std::optional<TraceParent>& trace, size_t bytes);
  void ObserveFinished(detail::ObservedTask& t, TaskId id, TaskInfo::Side side,
                       const std::optional<TraceParent>& trace,
                       const absl::Status& status);
  void Notify(ChannelEvent::Kind kind, absl::Status status = absl::OkStatus(),
              uint32_t attempt = 0);
  // The server that accepted this session, or nullptr.
  std::shared_ptr<Server> OwningServer() const;
  void FinishCall(TaskId id, const absl::Status& status);
  void EndIncoming(TaskId id, const absl::Status& cancel_status);
  void RunWritableWaiters();
  absl::Status SendBacklogError() const;
  void SessionEnded(const absl::Status& status);
  void UnreadChanged(int64_t delta);
  // SubmitWhenWritable: `abandoned` (optional) is polled before each
  // attempt: true drops the submission unsent (its op was cancelled).
  // `payload` is shared with the caller, which may Reset it once the op
  // completes (a SharedPayload is then released at once).
  void SubmitWhenWritable(
      std::shared_ptr<const detail::HeldPayload> payload, CallOptions options,
      TaskCallbacks callbacks,
      absl::AnyInvocable<void(absl::StatusOr<TaskCall>)> done,
      std::function<bool()> abandoned = nullptr);
  SYMWIRE_DECL void StartSubmit(
      detail::HeldPayload payload, CallOptions options, TaskCallbacks callbacks,
      detail::Completion<void(absl::StatusOr<TaskCall>)> done,
      const detail::OpCancelPtr& cancel);
  SYMWIRE_DECL void StartCall(
      detail::HeldPayload payload, CallOptions options,
      detail::Completion<void(absl::StatusOr<std::string>)> done,
      const detail::OpCancelPtr& cancel);
  // The attempts of an async_call (RetryPolicy): StartAttempt submits one;
  // AttemptFailed decides whether another follows (after its backoff) or
  // the call completes with `status`. `not_started`: the task was never
  // sent, or the agent said it did not run it (TaskCall::retryable);
  // `task`: the failed attempt's id, 0 if it was never sent.
  void StartAttempt(const std::shared_ptr<detail::CallRun>& run);
  void AttemptFailed(const std::shared_ptr<detail::CallRun>& run,
                     const absl::Status& status, bool not_started, TaskId task);
  void StartCheckHealth(
      CallOptions options,
      detail::Completion<void(absl::StatusOr<HealthStatus>)> done,
      const detail::OpCancelPtr& cancel);
  void StartClose(detail::Completion<void(absl::Status)> done,
                  const detail::OpCancelPtr& cancel);
  void StartWaitEstablished(detail::Completion<void(absl::Status)> done,
                            const detail::OpCancelPtr& cancel);
  // With `shared` (whose bytes are `payload`), the payload is handed over.
  absl::Status RespondFor(detail::IncomingState& task,
                          absl::Span<const std::byte> payload, bool final,
                          const SharedPayload* shared = nullptr);
  absl::StatusOr<TaskCall> SubmitImpl(absl::Span<const std::byte> payload,
                                      const SharedPayload* shared,
                                      const TaskOptions& options,
                                      TaskCallbacks callbacks);

  asio::any_io_executor executor_;
  ChannelOptions options_;
  // Shared with the Server's Endpoint on the server side (session/
  // endpoint.hpp: it creates and registers acceptor sessions).
  std::shared_ptr<Session> session_;
  // The loop over session_ and the current transport (after session_:
  // it refers to it).
  detail::ConnectionDriver driver_;
  TaskHandler handler_;
  std::function<void(const ChannelEvent&)> observer_;
  // The current connection's description, kept for the observer hooks
  // (set on Attach only when ChannelOptions::observer is set).
  std::string observed_peer_;
  absl::flat_hash_map<TaskId, std::shared_ptr<detail::CallState>> calls_;
  // The call a response found last (as Session::FindTask): a streamed
  // call's responses find it without hashing. Points into calls_, valid
  // while found_call_id_ is not 0: its one insert (SubmitImpl, which may
  // rehash) and its one erase (FinishCall) reset found_call_id_.
  TaskId found_call_id_ = 0;
  std::shared_ptr<detail::CallState>* found_call_ = nullptr;
  absl::flat_hash_map<TaskId, std::shared_ptr<detail::IncomingState>> incoming_;
  // Work waiting for a Writable event (credit or send window), in order.
  std::deque<absl::AnyInvocable<bool()>> writable_waiters_;
  std::vector<detail::Completion<void(absl::Status)>> close_waiters_;
  std::vector<detail::Completion<void(absl::Status)>> established_waiters_;
  // The side-specific part, exactly one of the two: the client part
  // (detail/client_part.hpp, client.ipp) dials, redials and retries a first
  // connection; the server part (detail/server_part.hpp, server.ipp) is the
  // session's entry in its Server's books.
  std::unique_ptr<detail::ClientPart> client_;
  std::unique_ptr<detail::ServerPart> server_;
  // ChannelOptions::close_timeout, armed by the first async_close.
  std::unique_ptr<asio::steady_timer> close_timer_;
  // async_call runs that waited in a retry's backoff (some may have moved
  // on or completed since): SessionEnded wakes them, so that a call whose
  // session ends fails then instead of when its backoff runs out.
  std::vector<std::weak_ptr<detail::CallRun>> backoffs_;
  bool user_ended_ = false;  // Close or Abort called (no first retry)
  bool established_once_ = false;
  bool ended_ = false;
  uint32_t outage_attempts_ = 0;
  uint64_t reconnects_ = 0;
  size_t unread_bytes_ = 0;
};

// Peer: the old name of Channel (README, "Upgrading").
using Peer [[deprecated("use symwire::Channel")]] = Channel;

template <class CompletionToken>
auto Channel::async_submit(std::string payload, CallOptions options,
                           TaskCallbacks callbacks, CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<TaskCall>>(
      executor_,
      [self = shared_from_this()](auto done, const detail::OpCancelPtr& cancel,
                                  std::string&& p, CallOptions&& o,
                                  TaskCallbacks&& c) {
        self->StartSubmit(detail::HeldPayload(std::move(p)), std::move(o),
                          std::move(c), std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options), std::move(callbacks));
}

template <class CompletionToken>
auto Channel::async_submit(SharedPayload payload, CallOptions options,
                           TaskCallbacks callbacks, CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<TaskCall>>(
      executor_,
      [self = shared_from_this()](auto done, const detail::OpCancelPtr& cancel,
                                  SharedPayload&& p, CallOptions&& o,
                                  TaskCallbacks&& c) {
        self->StartSubmit(detail::HeldPayload(std::move(p)), std::move(o),
                          std::move(c), std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options), std::move(callbacks));
}

template <class CompletionToken>
auto Channel::async_call(std::string payload, CallOptions options,
                         CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<std::string>>(
      executor_,
      [self = shared_from_this()](auto done, const detail::OpCancelPtr& cancel,
                                  std::string&& p, CallOptions&& o) {
        self->StartCall(detail::HeldPayload(std::move(p)), std::move(o),
                        std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options));
}

template <class CompletionToken>
auto Channel::async_call(SharedPayload payload, CallOptions options,
                         CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<std::string>>(
      executor_,
      [self = shared_from_this()](auto done, const detail::OpCancelPtr& cancel,
                                  SharedPayload&& p, CallOptions&& o) {
        self->StartCall(detail::HeldPayload(std::move(p)), std::move(o),
                        std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options));
}

template <class CompletionToken>
auto Channel::async_check_health(CallOptions options, CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<HealthStatus>>(
      executor_,
      [self = shared_from_this()](auto done, const detail::OpCancelPtr& cancel,
                                  CallOptions&& o) {
        self->StartCheckHealth(std::move(o), std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(options));
}

template <class CompletionToken>
auto Channel::async_close(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      executor_,
      [self = shared_from_this()](auto done,
                                  const detail::OpCancelPtr& cancel) {
        self->StartClose(std::move(done), cancel);
      },
      std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto Channel::async_wait_established(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      executor_,
      [self = shared_from_this()](auto done,
                                  const detail::OpCancelPtr& cancel) {
        self->StartWaitEstablished(std::move(done), cancel);
      },
      std::forward<CompletionToken>(token));
}

}  // namespace symwire

// Header-only mode: the bodies need Server (and server.hpp needs Channel
// complete first, so it includes this header after defining Server).
#ifdef SYMWIRE_HEADER_ONLY
// The order matters.
// clang-format off
#include "symwire/runtime/client.hpp"
#include "symwire/runtime/server.hpp"
#include "symwire/runtime/impl/incoming_task.ipp"
#include "symwire/runtime/impl/channel.ipp"
#include "symwire/runtime/impl/connection_driver.ipp"
#include "symwire/runtime/impl/driver.ipp"
#include "symwire/runtime/impl/task_call.ipp"
// clang-format on
#endif

#endif  // SYMWIRE_RUNTIME_CHANNEL_HPP_
