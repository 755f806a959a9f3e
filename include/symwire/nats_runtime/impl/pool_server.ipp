// File: symwire/nats_runtime/impl/pool_server.ipp
// Out-of-line bodies of NatsPoolServer (nats_runtime/pool.hpp).
#ifndef SYMWIRE_NATS_RUNTIME_IMPL_POOL_SERVER_IPP_
#define SYMWIRE_NATS_RUNTIME_IMPL_POOL_SERVER_IPP_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/nats_runtime/pool.hpp"
#include "symwire/runtime/detail/method_table.hpp"
#include "symwire/runtime/detail/task_state.hpp"
#include "symwire/session/methods.hpp"

namespace symwire {
namespace nats_detail {

// TaskBridge
// One task between an agent's thread (in its NatsHandler) and the
// IncomingTask on the executor: the handler's responses are queued here
// and published by the agent's thread, which also watches for a cancel, the
// deadline and a stop. Every member under `mu`.
struct TaskBridge final : detail::IncomingBackend {
  struct Answer {
    std::string payload;
    absl::Status status;  // not OK: Fail
    bool final = false;
    bool retryable = false;
  };

  absl::Status Respond(detail::IncomingState& task,
                       absl::Span<const std::byte> payload,
                       bool final) override {
    return Push(task,
                {std::string(reinterpret_cast<const char*>(payload.data()),
                             payload.size()),
                 absl::OkStatus(), final, false});
  }
  absl::Status Fail(detail::IncomingState& task, const absl::Status& status,
                    bool retryable) override {
    return Push(task, {std::string(), status, true, retryable});
  }
  absl::Status Push(detail::IncomingState& task, Answer answer) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (ended || task.done) {
        return MakeError(ErrorCode::kWrongState,
                         absl::StrCat("task ", task.id, " already ended"));
      }
      if (!publish_error.ok()) return publish_error;
      if (answer.final) task.done = true;  // the executor's thread
      answers.push_back(std::move(answer));
    }
    cv.notify_all();
    return absl::OkStatus();
  }

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Answer> answers;
  absl::Status publish_error;  // kCancelled once a response failed
  bool ended = false;          // the agent's thread returned
  std::string task_payload;    // the task's, for IncomingTask::payload()
};

// PoolServerCore
struct PoolServerCore : std::enable_shared_from_this<PoolServerCore> {
  PoolServerCore(asio::any_io_executor ex, NatsClient c,
                 NatsPoolServerOptions o)
      : executor(std::move(ex)), client(std::move(c)), options(std::move(o)) {}

  // The handler's view of how long it still has, and why it ends.
  absl::StatusOr<std::string> RunTask(NatsTaskContext& ctx) {
    tasks_fetched.fetch_add(1, std::memory_order_relaxed);
    const std::string method(ctx.method());
    // Routing: as Channel::Handle(TaskReceived) (Server::Handle).
    const TaskHandler* handler = &task_handler;
    if (!method.empty()) {
      handler = methods.Find(method);
      if (handler == nullptr) {
        if (method == kHealthMethod) {
          return std::string(1, static_cast<char>(HealthStatus::kServing));
        }
        // SPEC.md §13.5: not run, so retryable.
        ctx.SetErrorRetryable(true);
        return MakeError(
            ErrorCode::kUnimplemented,
            absl::StrCat("unknown method \"", absl::CHexEscape(method), "\""));
      }
    }
    if (!*handler) {
      ctx.SetErrorRetryable(true);
      return absl::UnimplementedError("no task handler");
    }
    auto bridge = std::make_shared<TaskBridge>();
    bridge->task_payload.assign(
        reinterpret_cast<const char*>(ctx.payload().data()),
        ctx.payload().size());
    auto state = std::make_shared<detail::IncomingState>();
    state->executor = executor;
    state->backend = bridge;
    state->id = ctx.task_id();
    state->method = method;
    state->trace_parent = ctx.trace_parent();
    state->metadata = ctx.metadata();
    // The task's deadline on the driver's clock (IncomingTask::deadline).
    std::optional<absl::Time> wall_deadline = ctx.deadline();
    if (wall_deadline) {
      state->deadline = SteadyNow() + (*wall_deadline - absl::Now());
    }
    // `self`: `handler` points into this core.
    asio::post(executor, [self = shared_from_this(), handler, state, bridge] {
      state->payload = absl::MakeConstSpan(
          reinterpret_cast<const std::byte*>(bridge->task_payload.data()),
          bridge->task_payload.size());
      (*handler)(detail::HandleAccess::Incoming(state));
      state->payload = {};  // valid during the handler call only
    });
    return Wait(ctx, *bridge, state, wall_deadline);
  }

  // Wait: publishes the handler's partial responses as they come and
  // returns its final one or error; or ends the task on a cancel, the
  // deadline or a stop (the IncomingTask is then cancelled, as on a
  // stream).
  absl::StatusOr<std::string> Wait(
      NatsTaskContext& ctx, TaskBridge& bridge,
      const std::shared_ptr<detail::IncomingState>& state,
      std::optional<absl::Time> deadline) {
    const uint64_t id = ctx.task_id();
    std::unique_lock<std::mutex> lock(bridge.mu);
    for (;;) {
      while (!bridge.answers.empty()) {
        TaskBridge::Answer a = std::move(bridge.answers.front());
        bridge.answers.pop_front();
        if (!a.status.ok()) {
          bridge.ended = true;
          ctx.SetErrorRetryable(a.retryable);
          return a.status;
        }
        if (a.final) {
          bridge.ended = true;
          return std::move(a.payload);
        }
        lock.unlock();
        absl::Status s =
            ctx.Respond({reinterpret_cast<const std::byte*>(a.payload.data()),
                         a.payload.size()});
        lock.lock();
        if (!s.ok() && bridge.publish_error.ok()) {
          // The attempt is broken (SPEC.md §21.4): the agent leaves the task
          // to a redelivery (or it was cancelled: handled below).
          bridge.publish_error = absl::CancelledError(
              absl::StrCat("task ", id, ": ", s.message()));
        }
      }
      absl::Status end;
      const bool expired = deadline && absl::Now() >= *deadline;
      if (!bridge.publish_error.ok()) {
        end = bridge.publish_error;
      } else if (ctx.cancelled()) {
        end = expired ? absl::DeadlineExceededError(absl::StrFormat(
                            "task %d: deadline exceeded (the submitter's "
                            "deadline passed)",
                            id))
                      : absl::CancelledError(absl::StrFormat(
                            "task %d: cancelled by the submitter", id));
      } else if (expired) {
        end = absl::DeadlineExceededError(
            absl::StrFormat("task %d: deadline exceeded", id));
      } else if (stopping.load(std::memory_order_acquire) && hard_stop) {
        end = absl::UnavailableError(
            absl::StrFormat("task %d: the agent stopped", id));
      }
      if (!end.ok()) {
        bridge.ended = true;
        // The IncomingTask ends as Channel::EndIncoming ends it.
        asio::post(executor, [state, end] {
          if (state->done) return;
          state->done = true;
          state->cancelled = true;
          state->cancel_status = end;
          if (state->on_cancel) {
            auto cb = std::move(state->on_cancel);
            state->on_cancel = nullptr;
            cb(end);
          }
        });
        if (end.code() == absl::StatusCode::kUnavailable) {
          ctx.Release();  // another agent runs it (SPEC.md §21.4)
          return end;
        }
        // What the agent publishes for a cancelled or expired task.
        return end.code() == absl::StatusCode::kDeadlineExceeded
                   ? absl::DeadlineExceededError("deadline exceeded")
                   : absl::CancelledError("cancelled");
      }
      // A cancel is a flag set by cnats' thread: looked at every 20 ms.
      absl::Duration wait = absl::Milliseconds(20);
      if (deadline) wait = std::min(wait, *deadline - absl::Now());
      bridge.cv.wait_for(lock, absl::ToChronoNanoseconds(
                                   std::max(wait, absl::Microseconds(100))));
    }
  }

  void RunAgent(NatsAgent agent) {
    while (!stopping.load(std::memory_order_acquire)) {
      absl::StatusOr<NatsAgentOutcome> r = agent.RunOnce(options.fetch_timeout);
      if (!r.ok()) {
        fetch_errors.fetch_add(1, std::memory_order_relaxed);
        // The broker: cnats reconnects; try again after a fetch timeout
        // (cut short by a stop).
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, absl::ToChronoNanoseconds(options.fetch_timeout),
                    [this] { return stopping.load(); });
      }
    }
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      last = --running_agents == 0;
    }
    if (last) {
      asio::post(executor, [self = shared_from_this()] {
        auto waiters = std::move(self->shutdown_waiters);
        self->shutdown_waiters.clear();
        self->agents_done = true;
        for (auto& w : waiters) w(absl::OkStatus());
      });
    }
  }

  void Stop(bool hard) {
    hard_stop = hard;
    stopping.store(true, std::memory_order_release);
    cv.notify_all();
  }

  asio::any_io_executor executor;
  NatsClient client;
  NatsPoolServerOptions options;
  // Written before Start only (as a Server's MethodTable).
  detail::MethodTable methods;
  TaskHandler task_handler;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  std::atomic<bool> hard_stop{false};
  std::atomic<uint64_t> tasks_fetched{0};
  std::atomic<uint64_t> fetch_errors{0};
  std::mutex mu;
  std::condition_variable cv;
  size_t running_agents = 0;  // mu
  // The executor's.
  bool started = false;
  bool agents_done = false;
  std::vector<detail::Completion<void(absl::Status)>> shutdown_waiters;
};

}  // namespace nats_detail

// ---- NatsPoolServer --------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<NatsPoolServer>>
NatsPoolServer::Create(asio::any_io_executor executor, NatsClient client,
                       NatsPoolServerOptions options) {
  if (options.concurrency == 0) {
    return absl::InvalidArgumentError("concurrency 0: at least 1");
  }
  if (options.fetch_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fetch_timeout ", absl::FormatDuration(options.fetch_timeout),
        " must be positive"));
  }
  return std::make_shared<NatsPoolServer>(
      Private{},
      std::make_shared<nats_detail::PoolServerCore>(
          std::move(executor), std::move(client), std::move(options)));
}

SYMWIRE_DECL NatsPoolServer::NatsPoolServer(
    Private, std::shared_ptr<nats_detail::PoolServerCore> core)
    : core_(std::move(core)) {}

SYMWIRE_DECL NatsPoolServer::~NatsPoolServer() {
  core_->Stop(true);
  for (std::thread& t : core_->threads) t.join();
}

SYMWIRE_DECL const asio::any_io_executor& NatsPoolServer::get_executor() const {
  return core_->executor;
}

SYMWIRE_DECL absl::Status NatsPoolServer::Handle(absl::string_view method,
                                                 const TaskHandler& handler) {
  if (core_->started) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("Handle(\"", absl::CHexEscape(method),
                                  "\"): register methods before Start"));
  }
  if (absl::Status st = ValidateMethodName(method); !st.ok()) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kInvalidFrame,
                     absl::StrCat("Handle: ", st.message()));
  }
  if (IsReservedMethod(method)) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kInvalidFrame,
                     absl::StrCat("Handle(\"", method, "\"): the prefix \"",
                                  kReservedMethodPrefix,
                                  "\" is reserved for symwire's own methods"));
  }
  if (!handler) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kInvalidFrame,
                     absl::StrCat("Handle(\"", method, "\"): empty handler"));
  }
  if (core_->methods.handlers.contains(method)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "Handle(\"", method, "\"): a handler is already registered"));
  }
  core_->methods.handlers.emplace(std::string(method), handler);
  return absl::OkStatus();
}

SYMWIRE_DECL void NatsPoolServer::SetTaskHandler(TaskHandler handler) {
  SYMWIRE_REQUIRE(!core_->started && "SetTaskHandler after Start");
  core_->task_handler = std::move(handler);
}

SYMWIRE_DECL absl::Status NatsPoolServer::Start() {
  if (core_->started) {
    return absl::FailedPreconditionError("NatsPoolServer already started");
  }
  std::vector<NatsAgent> agents;
  for (uint32_t i = 0; i < core_->options.concurrency; ++i) {
    // The handler holds the core weakly: the core owns the threads that run
    // the agents.
    absl::StatusOr<NatsAgent> agent = NatsAgent::Create(
        core_->client, core_->options.agent,
        [weak = std::weak_ptr<nats_detail::PoolServerCore>(core_)](
            NatsTaskContext& ctx) -> absl::StatusOr<std::string> {
          auto core = weak.lock();
          if (!core) {
            ctx.SetErrorRetryable(true);
            return absl::UnavailableError("the agent stopped");
          }
          return core->RunTask(ctx);
        });
    if (!agent.ok()) return agent.status();
    agents.push_back(std::move(*agent));
  }
  core_->started = true;
  core_->running_agents = agents.size();
  for (NatsAgent& agent : agents) {
    core_->threads.emplace_back(
        [core = core_.get(), a = std::move(agent)]() mutable {
          core->RunAgent(std::move(a));
        });
  }
  return absl::OkStatus();
}

SYMWIRE_DECL void NatsPoolServer::StartShutdown(
    detail::Completion<void(absl::Status)> done) {
  if (!core_->started || core_->agents_done) {
    done(absl::OkStatus());
    return;
  }
  core_->shutdown_waiters.push_back(std::move(done));
  core_->Stop(false);
}

SYMWIRE_DECL uint64_t NatsPoolServer::tasks_fetched() const {
  return core_->tasks_fetched.load(std::memory_order_relaxed);
}
SYMWIRE_DECL uint64_t NatsPoolServer::fetch_errors() const {
  return core_->fetch_errors.load(std::memory_order_relaxed);
}

}  // namespace symwire

#endif  // SYMWIRE_NATS_RUNTIME_IMPL_POOL_SERVER_IPP_
