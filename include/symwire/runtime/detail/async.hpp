// File: symwire/runtime/detail/async.hpp
// Layer 3b (runtime), internal. The completion plumbing every async_*
// function of the runtime shares: Completion, MakeCompletion, InitiateOn.
#ifndef SYMWIRE_RUNTIME_DETAIL_ASYNC_HPP_
#define SYMWIRE_RUNTIME_DETAIL_ASYNC_HPP_

#include <chrono>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/associated_executor.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/execution/outstanding_work.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/prefer.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

namespace detail {
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
