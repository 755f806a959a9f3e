// File: symwire/runtime/peer.hpp
// Layer 3b (runtime). Peer: one session driven over a sequence of
// transports (the driver loop of STYLE.md §1).
#ifndef SYMWIRE_RUNTIME_PEER_HPP_
#define SYMWIRE_RUNTIME_PEER_HPP_

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
#include "symwire/runtime/incoming_task.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/runtime/task_call.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/session/session.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

class Client;
class Server;
namespace detail {
struct CallState;
struct IncomingState;
}  // namespace detail

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
                    std::shared_ptr<Session> session, PeerOptions options);

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
  // Shared with the Server's Endpoint on the server side (session/
  // endpoint.hpp: it creates and registers acceptor sessions).
  std::shared_ptr<Session> session_;
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
  // The Endpoint's handle of this connection while its handshake runs (0:
  // none): its bytes go through Server::OnHandshakeData.
  ConnectionHandle handshake_ = 0;
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

}  // namespace symwire

// Header-only mode: the bodies need Server (and server.hpp needs Peer
// complete first, so it includes this header after defining Server).
#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/runtime/impl/incoming_task.ipp"
#include "symwire/runtime/impl/peer.ipp"
#include "symwire/runtime/impl/task_call.ipp"
#include "symwire/runtime/server.hpp"
#endif

#endif  // SYMWIRE_RUNTIME_PEER_HPP_
