// File: symwire/nats_runtime/impl/pool_channel.ipp
// Out-of-line bodies of NatsPoolChannel (nats_runtime/pool.hpp).
#ifndef SYMWIRE_NATS_RUNTIME_IMPL_POOL_CHANNEL_IPP_
#define SYMWIRE_NATS_RUNTIME_IMPL_POOL_CHANNEL_IPP_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/nats_runtime/pool.hpp"
#include "symwire/runtime/detail/task_state.hpp"

namespace symwire {
namespace nats_detail {

// PoolChannelCore
// The state of a NatsPoolChannel. `orchestrator`, the queue and the flags
// under `mu` are shared with the two threads; the rest is the executor's.
struct PoolChannelCore final : detail::CallBackend,
                               std::enable_shared_from_this<PoolChannelCore> {
  // One open task.
  struct Open {
    std::shared_ptr<detail::CallState> state;
    // async_call: the joined responses of the current attempt, and the
    // op's completion (null for async_submit, or once cancelled).
    bool joined = false;
    std::string result;
    detail::Completion<void(absl::StatusOr<std::string>)> call_done;
    uint64_t delivered = 0;  // responses of the current attempt handed over
  };

  PoolChannelCore(asio::any_io_executor ex, NatsOrchestrator o,
                  absl::Duration poll_interval)
      : executor(std::move(ex)),
        orchestrator(std::move(o)),
        poll(poll_interval) {}

  // ---- the threads ----
  void StartThreads() {
    sender = std::thread([self = shared_from_this()] { self->SendLoop(); });
    receiver =
        std::thread([self = shared_from_this()] { self->ReceiveLoop(); });
  }
  void StopThreads() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (sender.joinable()) sender.join();
    if (receiver.joinable()) receiver.join();
  }
  // Enqueue: blocking broker work, run in order on the sender thread.
  void Enqueue(absl::AnyInvocable<void()> work) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return;
      queue.push_back(std::move(work));
    }
    cv.notify_all();
  }
  void SendLoop() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      cv.wait(lock, [this] { return stopping || !queue.empty(); });
      if (stopping) return;
      absl::AnyInvocable<void()> work = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      work();
      lock.lock();
    }
  }
  void ReceiveLoop() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopping) return;
      }
      absl::StatusOr<std::optional<NatsResponse>> r = orchestrator.Next(poll);
      if (!r.ok() || !r->has_value()) {
        // UNAVAILABLE: cnats reconnects by itself; ask again after a poll
        // (bounded by `stopping`).
        if (!r.ok()) {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait_for(lock, absl::ToChronoNanoseconds(poll),
                      [this] { return stopping; });
        }
        continue;
      }
      asio::post(executor,
                 [self = shared_from_this(), resp = std::move(**r)]() mutable {
                   self->Route(std::move(resp));
                 });
    }
  }

  // ---- the executor's part ----
  // Route: one report of NatsOrchestrator::Next, to its task.
  void Route(NatsResponse r) {
    auto it = open.find(r.task_id);
    if (it == open.end()) {
      ++orphaned;
      return;
    }
    Open& o = it->second;
    switch (r.kind) {
      case NatsResponse::Kind::kPartial:
        Deliver(o, std::move(r.payload), false);
        return;
      case NatsResponse::Kind::kFinal:
        Deliver(o, std::move(r.payload), true);
        Finish(r.task_id, absl::OkStatus());
        return;
      case NatsResponse::Kind::kFailed:
        o.state->retryable = r.retryable;
        Finish(r.task_id, r.status);
        return;
      case NatsResponse::Kind::kRestarted: {
        // SPEC.md §21.3: the earlier attempt's responses are void.
        detail::CallState& s = *o.state;
        const size_t unread = s.queue.size() - s.queue_head;
        if (!o.joined && o.delivered > unread) {
          o.state->retryable = false;
          Finish(r.task_id,
                 absl::AbortedError(absl::StrCat(
                     "task ", r.task_id,
                     ": redelivered to another agent after async_next "
                     "returned responses of the abandoned attempt "
                     "(SPEC.md §21.3)")));
          return;
        }
        s.queue.clear();
        s.queue_head = 0;
        o.result.clear();
        o.delivered = 0;
        return;
      }
    }
  }
  void Deliver(Open& o, std::string payload, bool final) {
    ++o.delivered;
    if (o.joined) {
      o.result.append(payload);
      return;
    }
    detail::CallState& s = *o.state;
    Response resp{std::move(payload), final};
    if (s.next) {
      auto next = std::move(s.next);
      s.next = nullptr;
      next(std::move(resp));
    } else {
      s.queue.push_back(std::move(resp));
    }
  }
  // Finish: as Channel::FinishCall.
  void Finish(uint64_t id, const absl::Status& status) {
    auto it = open.find(id);
    if (it == open.end()) return;
    Open o = std::move(it->second);
    open.erase(it);
    detail::CallState& s = *o.state;
    const absl::Status named = detail::Named(status, s.method, s.label, id);
    s.result = named;
    if (o.call_done) {
      auto d = std::move(o.call_done);
      d(named.ok() ? absl::StatusOr<std::string>(std::move(o.result))
                   : absl::StatusOr<std::string>(named));
    }
    if (s.next) {
      auto next = std::move(s.next);
      s.next = nullptr;
      next(named.ok() ? absl::StatusOr<Response>(absl::OutOfRangeError(
                            absl::StrCat(s.Name(), " finished")))
                      : absl::StatusOr<Response>(named));
    }
    s.backend = nullptr;  // breaks the state <-> core cycle
    if (open.empty()) {
      auto waiters = std::move(close_waiters);
      close_waiters.clear();
      for (auto& w : waiters) w(absl::OkStatus());
    }
  }
  // CallBackend: TaskCall::Cancel (SPEC.md §21.7). Ends the task here at
  // once, as Session::CancelTask does, and publishes the cancel after the
  // task's submission (the sender thread keeps call order).
  absl::Status Cancel(detail::CallState& call) override {
    // Finish drops the call's reference to this core: keep it alive.
    const std::shared_ptr<PoolChannelCore> self = shared_from_this();
    const uint64_t id = call.id;
    Finish(id, absl::CancelledError(absl::StrCat("task ", id, ": cancelled")));
    Enqueue([self, id] {
      // Best effort, as AGENT_CANCEL on a stream: a cancel that cannot be
      // published lets the task run; its result is discarded.
      static_cast<void>(self->orchestrator.Cancel(id));
    });
    return absl::OkStatus();
  }

  // Submit: registers the task (so that a response arriving before the
  // broker's acknowledgement finds it) and publishes it on the sender.
  // `done` gets the submission's outcome on the executor.
  using Submitted = absl::AnyInvocable<void(
      absl::StatusOr<std::shared_ptr<detail::CallState>>)>;
  void Submit(std::string payload, CallOptions options, Open entry,
              Submitted done) {
    if (closed) {
      const absl::Status st =
          detail::Named(MakeError(ErrorCode::kSessionClosed,
                                  "the pool channel is closed (async_close)"),
                        options.method, options.label, 0);
      if (entry.call_done) entry.call_done(st);
      done(st);
      return;
    }
    const uint64_t id = next_id++;
    auto state = std::make_shared<detail::CallState>();
    state->executor = executor;
    state->id = id;
    state->method = options.method;
    state->label = options.label;
    state->trace_parent = options.trace_parent;
    state->backend = shared_from_this();
    entry.state = state;
    open.emplace(id, std::move(entry));
    NatsSubmitOptions so;
    so.task_id = id;
    so.deadline = options.deadline;
    so.method = std::move(options.method);
    so.trace_parent = options.trace_parent;
    so.trace_state = std::move(options.trace_state);
    so.metadata = std::move(options.metadata);
    Enqueue([self = shared_from_this(), id, state, payload = std::move(payload),
             so = std::move(so), done = std::move(done)]() mutable {
      absl::StatusOr<uint64_t> r = self->orchestrator.Submit(
          {reinterpret_cast<const std::byte*>(payload.data()), payload.size()},
          so);
      asio::post(self->executor, [self, id, st = r.status(), state,
                                  done = std::move(done)]() mutable {
        if (st.ok()) {
          done(state);
          return;
        }
        st = detail::Named(st, state->method, state->label, 0);
        if (auto it = self->open.find(id); it != self->open.end()) {
          if (it->second.call_done) {
            auto d = std::move(it->second.call_done);
            d(st);
          }
          state->backend = nullptr;
          self->open.erase(it);
        }
        done(st);
      });
    });
  }

  asio::any_io_executor executor;
  NatsOrchestrator orchestrator;
  absl::Duration poll;
  // Shared with the threads (mu).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<absl::AnyInvocable<void()>> queue;
  bool stopping = false;
  std::thread sender;
  std::thread receiver;
  // The executor's.
  absl::flat_hash_map<uint64_t, Open> open;
  // Task ids: the wall clock in microseconds at creation, then one each, as
  // NatsOrchestrator's own (SPEC.md §21.1): a restarted process does not
  // reuse its predecessor's.
  uint64_t next_id = static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  uint64_t orphaned = 0;
  bool closed = false;
  std::vector<detail::Completion<void(absl::Status)>> close_waiters;
};

}  // namespace nats_detail

// ---- NatsPoolChannel -------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<NatsPoolChannel>>
NatsPoolChannel::Create(asio::any_io_executor executor, NatsClient client,
                        NatsPoolChannelOptions options) {
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "poll_interval ", absl::FormatDuration(options.poll_interval),
        " must be positive"));
  }
  absl::StatusOr<NatsOrchestrator> o = NatsOrchestrator::Create(
      std::move(client), std::move(options.orchestrator));
  if (!o.ok()) return o.status();
  auto core = std::make_shared<nats_detail::PoolChannelCore>(
      std::move(executor), std::move(*o), options.poll_interval);
  core->StartThreads();
  return std::make_shared<NatsPoolChannel>(Private{}, std::move(core));
}

SYMWIRE_DECL NatsPoolChannel::NatsPoolChannel(
    Private, std::shared_ptr<nats_detail::PoolChannelCore> core)
    : core_(std::move(core)) {}

SYMWIRE_DECL NatsPoolChannel::~NatsPoolChannel() { core_->StopThreads(); }

SYMWIRE_DECL const asio::any_io_executor& NatsPoolChannel::get_executor()
    const {
  return core_->executor;
}

SYMWIRE_DECL size_t NatsPoolChannel::open_tasks() const {
  return core_->open.size();
}
SYMWIRE_DECL uint64_t NatsPoolChannel::orphaned_responses() const {
  return core_->orphaned;
}

SYMWIRE_DECL void NatsPoolChannel::StartSubmit(
    std::string payload, CallOptions options,
    detail::Completion<void(absl::StatusOr<TaskCall>)> done) {
  core_->Submit(
      std::move(payload), std::move(options), {},
      [done = std::move(done)](
          absl::StatusOr<std::shared_ptr<detail::CallState>> state) mutable {
        if (!state.ok()) {
          done(state.status());
          return;
        }
        done(detail::HandleAccess::Call(std::move(*state)));
      });
}

SYMWIRE_DECL void NatsPoolChannel::StartCall(
    std::string payload, CallOptions options,
    detail::Completion<void(absl::StatusOr<std::string>)> done,
    const detail::OpCancelPtr& cancel) {
  if (options.retry && options.retry->max_attempts > 1) {
    done(detail::Named(
        absl::InvalidArgumentError(
            "CallOptions::retry: a NATS pool does not retry calls (it "
            "redelivers a task whose agent died, SPEC.md §21.4)"),
        options.method, options.label, 0));
    return;
  }
  nats_detail::PoolChannelCore::Open entry;
  entry.joined = true;
  entry.call_done = std::move(done);
  const std::string method = options.method;
  const std::string label = options.label;
  const uint64_t id = core_->next_id;  // the id Submit takes
  core_->Submit(std::move(payload), std::move(options), std::move(entry),
                [](const absl::StatusOr<std::shared_ptr<detail::CallState>>&) {
                  // The outcome reaches the op through entry.call_done.
                });
  if (!cancel) return;
  // Terminal only: the task is cancelled (AGENT_CANCEL through the pool)
  // and the op completes at once, as Channel::async_call.
  cancel->hook = [weak = std::weak_ptr<nats_detail::PoolChannelCore>(core_), id,
                  method, label](asio::cancellation_type type) {
    if ((type & asio::cancellation_type::terminal) ==
        asio::cancellation_type::none) {
      return false;
    }
    auto core = weak.lock();
    if (!core) return true;
    auto it = core->open.find(id);
    if (it == core->open.end() || !it->second.call_done) return true;
    auto d = std::move(it->second.call_done);
    it->second.call_done = nullptr;
    d(detail::Named(detail::OperationAborted("async_call"), method, label, 0));
    static_cast<void>(core->Cancel(*it->second.state));
    return true;
  };
}

SYMWIRE_DECL void NatsPoolChannel::StartClose(
    detail::Completion<void(absl::Status)> done) {
  core_->closed = true;
  if (core_->open.empty()) {
    done(absl::OkStatus());
    return;
  }
  core_->close_waiters.push_back(std::move(done));
}

}  // namespace symwire

#endif  // SYMWIRE_NATS_RUNTIME_IMPL_POOL_CHANNEL_IPP_
