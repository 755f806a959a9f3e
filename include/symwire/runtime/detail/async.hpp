// File: symwire/runtime/detail/async.hpp
// Layer 3b (runtime), internal. The completion plumbing every async_*
// function of the runtime shares: Completion, MakeCompletion, InitiateOn.
#ifndef SYMWIRE_RUNTIME_DETAIL_ASYNC_HPP_
#define SYMWIRE_RUNTIME_DETAIL_ASYNC_HPP_

#include <chrono>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/associated_cancellation_slot.hpp"
#include "boost/asio/associated_executor.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/cancellation_type.hpp"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/execution/outstanding_work.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/prefer.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

namespace detail {
template <class Signature>
using Completion = absl::AnyInvocable<Signature>;

// OpCancel
// An operation's side of Asio per-operation cancellation. InitiateOn
// creates one when the handler has a connected cancellation slot (else the
// op gets nullptr and costs nothing). While the op waits, it sets `hook`;
// an emitted slot runs the hook on the channel's executor (posted), with
// the emitted type. The hook returns false when the op cannot honour that
// type (it then stays pending and the hook stays armed). Completing the op
// normally resets the hook, so a later emit is a no-op; the slot itself is
// cleared just before the handler runs, on the handler's executor (where
// the slot's signal is emitted), so no slot handler outlives the op.
// Channel executor only.
struct OpCancel {
  absl::AnyInvocable<bool(asio::cancellation_type)> hook;
  bool completed = false;
};
using OpCancelPtr = std::shared_ptr<OpCancel>;

// The handler installed in the user's cancellation slot.
class CancelSlotHandler {
 public:
  CancelSlotHandler(asio::any_io_executor ex, OpCancelPtr op)
      : ex_(std::move(ex)), op_(std::move(op)) {}
  void operator()(asio::cancellation_type type) {
    // Posted: the emitter may run on another thread, and running the hook
    // inline would run session code inside the user's emit.
    asio::post(ex_, [op = op_, type] {
      if (op->completed || !op->hook) return;
      auto hook = std::move(op->hook);
      op->hook = nullptr;
      if (!hook(type) && !op->completed && !op->hook) {
        op->hook = std::move(hook);
      }
    });
  }

 private:
  asio::any_io_executor ex_;
  OpCancelPtr op_;
};

// OperationAborted: the status of an operation ended by per-operation
// cancellation (the runtime's asio::error::operation_aborted): kCancelled,
// "<op>: operation aborted by its cancellation slot".
inline absl::Status OperationAborted(absl::string_view op) {
  return absl::CancelledError(
      absl::StrCat(op, ": operation aborted by its cancellation slot"));
}

// Wraps an Asio completion handler so that it runs on its associated
// executor (posted: never inline in the caller), and keeps that executor
// busy until then. With `cancel`: completing disarms its hook, and the
// handler's cancellation slot is cleared before the handler runs.
template <class R, class Handler>
Completion<void(R)> MakeCompletion(const asio::any_io_executor& ex,
                                   Handler&& handler,
                                   OpCancelPtr cancel = nullptr) {
  auto work = asio::prefer(asio::get_associated_executor(handler, ex),
                           asio::execution::outstanding_work.tracked);
  return [h = std::forward<Handler>(handler), work = std::move(work),
          cancel = std::move(cancel)](R result) mutable {
    const bool slotted = cancel != nullptr;
    if (slotted) {
      cancel->completed = true;
      cancel->hook = nullptr;
      cancel = nullptr;
    }
    asio::post(work,
               [h = std::move(h), r = std::move(result), slotted]() mutable {
                 if (slotted) asio::get_associated_cancellation_slot(h).clear();
                 std::move(h)(std::move(r));
               });
  };
}

// CancellableWait
// For an op that only waits (no side effect to undo): returns the
// completion to hand to whatever completes the wait normally, and arms
// `cancel` so that a slot emitted with a type in `supported` completes the
// op at once with OperationAborted(op); whichever comes first wins, the
// other is a no-op. `*waiting` (optional) tells the waiter whether the op
// still waits (false once it completed or was cancelled), so that queued
// work can drop itself. Without `cancel`, returns `done` unchanged.
template <class R>
Completion<void(R)> CancellableWait(
    Completion<void(R)> done, const OpCancelPtr& cancel,
    asio::cancellation_type supported, absl::string_view op,
    std::shared_ptr<const Completion<void(R)>>* waiting = nullptr) {
  if (!cancel) return done;
  auto shared = std::make_shared<Completion<void(R)>>(std::move(done));
  if (waiting != nullptr) *waiting = shared;
  cancel->hook = [shared, supported,
                  op = std::string(op)](asio::cancellation_type type) {
    if ((type & supported) == asio::cancellation_type::none) return false;
    if (*shared) {
      auto d = std::move(*shared);
      *shared = nullptr;
      d(OperationAborted(op));
    }
    return true;
  };
  return [shared](R result) {
    if (!*shared) return;
    auto d = std::move(*shared);
    *shared = nullptr;
    d(std::move(result));
  };
}

// InitiateOn
// The shape of every async_* function here: the handler is wrapped to
// complete on its own executor (MakeCompletion), then `start(done, args...)`
// (or `start(done, cancel, args...)` for an op that supports per-operation
// cancellation: `cancel` is nullptr when the handler has no connected
// cancellation slot) runs on `ex` (at once when already there, else posted:
// the call may come from any thread).
template <class R, class CompletionToken, class Start, class... Args>
auto InitiateOn(const asio::any_io_executor& ex, Start start,
                CompletionToken&& token, Args&&... args) {
  return asio::async_initiate<CompletionToken, void(R)>(
      [ex, start = std::move(start)](auto handler, auto... a) mutable {
        constexpr bool kCancellable =
            std::is_invocable_v<Start&, Completion<void(R)>, OpCancelPtr,
                                decltype(a)...>;
        OpCancelPtr cancel;
        if constexpr (kCancellable) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          if (slot.is_connected()) {
            cancel = std::make_shared<OpCancel>();
            slot.template emplace<CancelSlotHandler>(ex, cancel);
          }
        }
        auto done = MakeCompletion<R>(ex, std::move(handler), cancel);
        asio::dispatch(
            ex, [start = std::move(start), done = std::move(done),
                 cancel = std::move(cancel), ... a = std::move(a)]() mutable {
              if constexpr (kCancellable) {
                start(std::move(done), std::move(cancel), std::move(a)...);
              } else {
                start(std::move(done), std::move(a)...);
              }
            });
      },
      token, std::forward<Args>(args)...);
}
// ToSteady: an absl::Time of SteadyNow()'s scale as a steady_clock time
// point (to arm an Asio timer for a session deadline).
inline std::chrono::steady_clock::time_point ToSteady(absl::Time t) {
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          absl::ToChronoNanoseconds(t - absl::UnixEpoch())));
}

}  // namespace detail

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_ASYNC_HPP_
