// File: symwire/nats_runtime/pool.hpp
// symwire::nats_runtime: the stream runtime's user API (layer 3b,
// runtime/) over a NATS JetStream pool (symwire::nats, SPEC.md §21).
// NatsPoolChannel is the orchestrator's side, with Channel's member
// functions (async_submit, async_call, TaskCall::async_next, Cancel);
// NatsPoolServer is an agent's side, with Server's Handle and the same
// TaskHandler and IncomingTask. An orchestrator templated on its channel
// type, and an agent's handlers, run unchanged over TCP and over a pool:
// moving them is a configuration change (tests/nats/same_api_test.cpp runs
// the same code against both).
//
// How it runs. cnats and the blocking pool API (NatsOrchestrator,
// NatsAgent) run on threads these classes own; everything the user sees
// (completions, TaskCall and IncomingTask members, handlers) runs on the
// executor given to Create, as with a Channel. NatsPoolChannel has two
// threads: one publishes submissions and cancels in call order, one reads
// the responses (NatsOrchestrator::Next) and posts them to the executor.
// NatsPoolServer has one thread per concurrent task (options.concurrency),
// each a NatsAgent: it fetches a task, posts the handler call to the
// executor, and publishes what the handler responds, in order, until its
// final response or failure; the NatsAgent then acknowledges the task.
//
// What holds as on a stream (runtime/channel.hpp): the same option, result
// and handle types; a task's responses in order, then its end; errors named
// by CallOptions::label and method (detail::Named); deadlines (the
// submitter ends the task with kDeadlineExceeded "task N: deadline
// exceeded" and the agent's task is cancelled with kDeadlineExceeded);
// TaskCall::Cancel (kCancelled "task N: cancelled" at once, the agent's
// IncomingTask sees cancelled() and its OnCancel callback with kCancelled
// "task N: cancelled by the submitter"); an unregistered method (kUnimplemented
// / UNIMPLEMENTED "unknown method "m"", retryable); the built-in health
// method (answers kServing); per-operation cancellation of async_next
// (TaskCall) and terminal cancellation of async_call.
//
// What does not hold (the pool has no session):
//   - No session-level events, handshake or resumption: there is no
//     ChannelEvent, no observer, no async_check_health of a peer (ask one
//     agent nothing: any agent takes a task), and async_wait_established
//     completes at once (cnats reconnects to the broker by itself).
//   - No RetryPolicy: CallOptions::retry with max_attempts > 1 fails
//     async_call with kInvalidArgument. The pool redelivers a task whose
//     agent died (SPEC.md §21.4) instead.
//   - No flow control: the pool queues tasks (NatsPoolOptions bounds it),
//     so async_submit never waits for credit and wait_for_ready, idempotent
//     and trace_child_span have no effect (trace_parent is sent as given).
//   - Redelivery. A task whose agent died is run again by another agent
//     (a new attempt, SPEC.md §21.3). async_call drops the responses of the
//     abandoned attempt; a TaskCall drops those not yet taken by
//     async_next, and fails with kAborted if async_next already returned
//     one (they cannot be taken back).
//   - Responses of tasks submitted by an earlier process with the same
//     identity have no TaskCall here: they are dropped
//     (orphaned_responses). Collect them with NatsOrchestrator::Next before
//     creating a channel.
//   - IncomingTask::async_respond never waits (nothing like a send window):
//     Respond queues the payload for the agent's thread and returns; a
//     publish that fails breaks the attempt (the task is delivered again,
//     SPEC.md §21.4), and a Respond after that returns kCancelled.
//   - A cancel reaches a running task through the pool's cancel stream: its
//     IncomingTask notices it within 20 ms (the agent polls cnats' flag).
#ifndef SYMWIRE_NATS_RUNTIME_POOL_HPP_
#define SYMWIRE_NATS_RUNTIME_POOL_HPP_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "symwire/config.hpp"
#include "symwire/nats/client.hpp"
#include "symwire/nats/pool.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/incoming_task.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/runtime/task_call.hpp"

namespace symwire {

namespace nats_detail {
struct PoolChannelCore;
struct PoolServerCore;
}  // namespace nats_detail

// NatsPoolChannelOptions
struct NatsPoolChannelOptions {
  NatsOrchestratorOptions orchestrator;  // the pool and this identity
  // How long the response thread waits in one NatsOrchestrator::Next: the
  // bound on how long destroying the channel waits for that thread.
  absl::Duration poll_interval = absl::Milliseconds(100);
};

// NatsPoolChannel
// The orchestrator's side of a pool, with a Channel's user API (see the
// file comment for what differs). Always held by shared_ptr.
// Thread-safety: the async_* functions may be called from any thread
// (they run on the executor); the rest on the executor.
class NatsPoolChannel : public std::enable_shared_from_this<NatsPoolChannel> {
 public:
  // Create
  // Connects the orchestrator (NatsOrchestrator::Create: ensures the pool
  // and this identity's response stream) and starts its two threads.
  // Errors: those of NatsOrchestrator::Create.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<NatsPoolChannel>> Create(
      asio::any_io_executor executor, NatsClient client,
      NatsPoolChannelOptions options);
  NatsPoolChannel(const NatsPoolChannel&) = delete;
  NatsPoolChannel& operator=(const NatsPoolChannel&) = delete;
  // Stops the threads (waits up to poll_interval, and for a publish under
  // way). Open tasks are left to the pool; their TaskCalls never end.
  SYMWIRE_DECL ~NatsPoolChannel();

  SYMWIRE_DECL const asio::any_io_executor& get_executor() const;

  // async_submit
  // As Channel::async_submit: publishes the task (one broker round trip on
  // the channel's thread) and completes with its TaskCall once the broker
  // stored it. Errors: NatsOrchestrator::Submit's (INVALID_ARGUMENT for a
  // bad method; RESOURCE_EXHAUSTED for a full pool; UNAVAILABLE,
  // DEADLINE_EXCEEDED from the broker), named as a Channel names them;
  // kFailedPrecondition / SESSION_CLOSED after async_close.
  // Signature: void(absl::StatusOr<TaskCall>). No per-operation
  // cancellation (a submission under way cannot be taken back).
  template <class CompletionToken>
  auto async_submit(std::string payload, CallOptions options,
                    CompletionToken&& token);

  // async_call
  // As Channel::async_call: submits and completes with the concatenation
  // of the task's responses (of the attempt that completed), or its error.
  // Errors: async_submit's, the task's; kInvalidArgument for
  // CallOptions::retry with max_attempts > 1. Terminal cancellation
  // (only) cancels the task and completes at once with kCancelled.
  // Signature: void(absl::StatusOr<std::string>).
  template <class CompletionToken>
  auto async_call(std::string payload, CallOptions options,
                  CompletionToken&& token);

  // async_wait_established: OK at once (Create connected; see the file
  // comment). Signature: void(absl::Status).
  template <class CompletionToken>
  auto async_wait_established(CompletionToken&& token);

  // async_close
  // Takes no new task (async_submit and async_call then fail with
  // SESSION_CLOSED) and completes with OK once every open task has ended.
  // Signature: void(absl::Status).
  template <class CompletionToken>
  auto async_close(CompletionToken&& token);

  // Tasks submitted here and not ended. Executor only.
  SYMWIRE_DECL size_t open_tasks() const;
  // Responses for tasks with no TaskCall here: an earlier process's (see
  // the file comment), and those of a task ended here (cancelled, expired)
  // that were under way. Executor only.
  SYMWIRE_DECL uint64_t orphaned_responses() const;

 private:
  struct Private {};

 public:
  // Use Create.
  SYMWIRE_DECL NatsPoolChannel(Private,
                               std::shared_ptr<nats_detail::PoolChannelCore>);

 private:
  SYMWIRE_DECL void StartSubmit(
      std::string payload, CallOptions options,
      detail::Completion<void(absl::StatusOr<TaskCall>)> done);
  SYMWIRE_DECL void StartCall(
      std::string payload, CallOptions options,
      detail::Completion<void(absl::StatusOr<std::string>)> done,
      const detail::OpCancelPtr& cancel);
  SYMWIRE_DECL void StartClose(detail::Completion<void(absl::Status)> done);
  std::shared_ptr<nats_detail::PoolChannelCore> core_;
};

// NatsPoolServerOptions
struct NatsPoolServerOptions {
  NatsAgentOptions agent;  // the pool
  // Tasks run at once: one NatsAgent (a cnats pull subscription and a
  // thread) each. At least 1.
  uint32_t concurrency = 1;
  // How long one fetch waits: the bound on how long a stop waits for an
  // idle agent thread.
  absl::Duration fetch_timeout = absl::Milliseconds(100);
};

// NatsPoolServer
// An agent's side of a pool, with a Server's handler registration: tasks
// fetched from the pool go to the TaskHandler of their method (Handle), or
// to the task handler (SetTaskHandler) when they have none, called on the
// executor with an IncomingTask, as a Server's Channel calls them.
// Routing as Server::Handle: no method and no task handler: UNIMPLEMENTED
// "no task handler"; "symwire.health": answered kServing; an unregistered
// method: kUnimplemented / UNIMPLEMENTED "unknown method "<m>"", retryable.
// Always held by shared_ptr.
class NatsPoolServer : public std::enable_shared_from_this<NatsPoolServer> {
 public:
  // Create
  // Checks the options. Nothing is fetched before Start.
  // Errors: kInvalidArgument (concurrency 0, a non-positive fetch_timeout).
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<NatsPoolServer>> Create(
      asio::any_io_executor executor, NatsClient client,
      NatsPoolServerOptions options);
  NatsPoolServer(const NatsPoolServer&) = delete;
  NatsPoolServer& operator=(const NatsPoolServer&) = delete;
  // Stops fetching and joins the threads: a task still running is given
  // back to the pool (-NAK: delivered again at once, to another agent;
  // SPEC.md §21.4) and its IncomingTask is cancelled with kUnavailable
  // "task N: the agent stopped". Use async_shutdown first to let running tasks
  // finish. The threads never wait for the executor, so it may run on the
  // executor.
  SYMWIRE_DECL ~NatsPoolServer();

  SYMWIRE_DECL const asio::any_io_executor& get_executor() const;

  // Handle
  // As Server::Handle. REQUIRES: before Start. Errors: as Server::Handle
  // (kInvalidArgument / INVALID_FRAME for a bad or reserved name or an
  // empty handler, kAlreadyExists, kFailedPrecondition / WRONG_STATE after
  // Start).
  SYMWIRE_DECL absl::Status Handle(absl::string_view method,
                                   const TaskHandler& handler);
  // SetTaskHandler: tasks without a method (Channel::SetTaskHandler).
  // REQUIRES: before Start.
  SYMWIRE_DECL void SetTaskHandler(TaskHandler handler);

  // Start
  // Binds `concurrency` agents to the pool (NatsAgent::Create) and starts
  // their threads. Errors: NatsAgent::Create's; kFailedPrecondition when
  // started already.
  SYMWIRE_DECL absl::Status Start();

  // async_shutdown
  // Stops fetching new tasks, lets the running ones finish, and completes
  // with OK once every agent thread has left. Signature: void(absl::Status).
  template <class CompletionToken>
  auto async_shutdown(CompletionToken&& token);

  // Tasks taken from the pool (handed to a handler or answered by routing),
  // and RunOnce failures (broker errors; the agent retries). Any thread.
  SYMWIRE_DECL uint64_t tasks_fetched() const;
  SYMWIRE_DECL uint64_t fetch_errors() const;

 private:
  struct Private {};

 public:
  // Use Create.
  SYMWIRE_DECL NatsPoolServer(Private,
                              std::shared_ptr<nats_detail::PoolServerCore>);

 private:
  SYMWIRE_DECL void StartShutdown(detail::Completion<void(absl::Status)> done);
  std::shared_ptr<nats_detail::PoolServerCore> core_;
};

// ---- template bodies ---------------------------------------------------

template <class CompletionToken>
auto NatsPoolChannel::async_submit(std::string payload, CallOptions options,
                                   CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<TaskCall>>(
      get_executor(),
      [self = shared_from_this()](auto done, std::string&& p, CallOptions&& o) {
        self->StartSubmit(std::move(p), std::move(o), std::move(done));
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options));
}

template <class CompletionToken>
auto NatsPoolChannel::async_call(std::string payload, CallOptions options,
                                 CompletionToken&& token) {
  return detail::InitiateOn<absl::StatusOr<std::string>>(
      get_executor(),
      [self = shared_from_this()](auto done, const detail::OpCancelPtr& cancel,
                                  std::string&& p, CallOptions&& o) {
        self->StartCall(std::move(p), std::move(o), std::move(done), cancel);
      },
      std::forward<CompletionToken>(token), std::move(payload),
      std::move(options));
}

template <class CompletionToken>
auto NatsPoolChannel::async_wait_established(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      get_executor(), [](auto done) { done(absl::OkStatus()); },
      std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto NatsPoolChannel::async_close(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      get_executor(),
      [self = shared_from_this()](auto done) {
        self->StartClose(std::move(done));
      },
      std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto NatsPoolServer::async_shutdown(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      get_executor(),
      [self = shared_from_this()](auto done) {
        self->StartShutdown(std::move(done));
      },
      std::forward<CompletionToken>(token));
}

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/nats_runtime/impl/pool_channel.ipp"
#include "symwire/nats_runtime/impl/pool_server.ipp"
#endif

#endif  // SYMWIRE_NATS_RUNTIME_POOL_HPP_
