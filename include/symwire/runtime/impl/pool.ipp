// File: symwire/runtime/impl/pool.ipp
// Out-of-line bodies of runtime/pool.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_POOL_IPP_
#define SYMWIRE_RUNTIME_IMPL_POOL_IPP_

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "boost/asio/bind_cancellation_slot.hpp"
#include "boost/asio/cancellation_signal.hpp"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/pool.hpp"

namespace symwire {

namespace detail {

// One endpoint's books. Its state is derived from the flags (Compute); the
// flags follow the endpoint's channel events and health checks.
struct PoolEndpointState {
  std::string address;
  Dialer dialer;
  std::shared_ptr<Channel> channel;
  absl::Status last_error;
  // Tasks of async_submit, until seen done (pruned lazily).
  std::vector<TaskCall> submitted;
  std::unique_ptr<asio::steady_timer> redial_timer;
  uint64_t completed = 0;
  uint64_t generation = 0;  // one per channel: older events are stale
  size_t in_progress = 0;   // async_calls in flight, submissions under way
  size_t prune_at = 32;
  EndpointState state = EndpointState::kConnecting;
  bool link_up = false;    // established, connected
  bool ever_down = false;  // its first connection is behind it
  bool draining = false;
  bool unhealthy = false;
  bool health_pending = false;
  bool removed = false;

  EndpointState Compute() const {
    if (draining) return EndpointState::kDraining;
    if (!link_up) {
      return ever_down ? EndpointState::kFailed : EndpointState::kConnecting;
    }
    if (unhealthy) return EndpointState::kUnhealthy;
    return EndpointState::kReady;
  }
  size_t DoneSubmitted() const {
    return static_cast<size_t>(
        std::count_if(submitted.begin(), submitted.end(),
                      [](const TaskCall& c) { return c.done(); }));
  }
  size_t Outstanding() const {
    return in_progress + submitted.size() - DoneSubmitted();
  }
  void Prune() {
    const auto end = std::remove_if(submitted.begin(), submitted.end(),
                                    [](const TaskCall& c) { return c.done(); });
    completed += static_cast<uint64_t>(submitted.end() - end);
    submitted.erase(end, submitted.end());
  }
};

// A call on its way through the pool: waiting for an endpoint, then handed
// to one endpoint's channel.
struct PoolRequest {
  // A string is copied into each channel call it is handed to (a refused
  // one may go to another endpoint); a SharedPayload's reference is.
  HeldPayload payload{std::string()};
  CallOptions options;
  TaskCallbacks callbacks;
  Completion<void(absl::StatusOr<TaskCall>)> submit_done;
  Completion<void(absl::StatusOr<std::string>)> call_done;
  OpCancelPtr cancel;
  std::unique_ptr<asio::steady_timer> timer;  // the deadline, while waiting
  absl::Time deadline = absl::InfiniteFuture();
  size_t refusals = 0;  // sent elsewhere after an unsent refusal
  bool call = false;
  bool finished = false;

  void Fail(const absl::Status& status) {
    if (finished) return;
    finished = true;
    if (timer) timer->cancel();
    if (call) {
      call_done(status);
    } else {
      submit_done(status);
    }
  }
};

// PoolRefusedUnsent: a submission the chosen channel refused before sending
// anything, so another endpoint may take it (PoolOptions: never a retry).
// Submissions (no TaskCall): PEER_DRAINING or SESSION_CLOSED from
// Session::SubmitTask. Calls: PEER_DRAINING only (a sent task never ends
// with it; SESSION_CLOSED also ends tasks that were sent).
inline bool PoolRefusedUnsent(const absl::Status& status, bool call) {
  const ErrorCode code = GetErrorCode(status);
  return code == ErrorCode::kPeerDraining ||
         (!call && code == ErrorCode::kSessionClosed);
}

inline std::string PoolAddress(const asio::ip::tcp::endpoint& e) {
  const asio::ip::address a = e.address();
  return a.is_v6() ? absl::StrCat("[", a.to_string(), "]:", e.port())
                   : absl::StrCat(a.to_string(), ":", e.port());
}

// PoolEndpointFor: "host:port", "[v6]:port", "tcp://host:port", "unix:PATH".
inline absl::StatusOr<PoolEndpoint> PoolEndpointFor(
    const asio::any_io_executor& ex, const std::string& address) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool address \"", address, "\": ", why,
        " (expected host:port, [v6]:port, tcp://host:port or unix:PATH)"));
  };
  absl::string_view rest = address;
  if (absl::ConsumePrefix(&rest, "unix:")) {
    absl::ConsumePrefix(&rest, "//");
    if (rest.empty()) return bad("empty path");
    return PoolEndpoint{address, UnixDialer(ex, std::string(rest))};
  }
  absl::ConsumePrefix(&rest, "tcp://");
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos) return bad("no port");
  absl::string_view host = rest.substr(0, colon);
  uint32_t port = 0;
  if (!absl::SimpleAtoi(rest.substr(colon + 1), &port) || port == 0 ||
      port > 65535) {
    return bad("bad port");
  }
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return bad("unbalanced [");
  }
  if (host.empty()) return bad("empty host");
  return PoolEndpoint{
      address, TcpDialer(ex, std::string(host), static_cast<uint16_t>(port))};
}

inline absl::string_view PoolStateName(EndpointState state) {
  const std::string_view name = EndpointStateName(state);
  return {name.data(), name.size()};
}

}  // namespace detail

SYMWIRE_DECL std::string_view EndpointStateName(EndpointState state) {
  switch (state) {
    case EndpointState::kConnecting:
      return "CONNECTING";
    case EndpointState::kReady:
      return "READY";
    case EndpointState::kDraining:
      return "DRAINING";
    case EndpointState::kFailed:
      return "FAILED";
    case EndpointState::kUnhealthy:
      return "UNHEALTHY";
  }
  return "UNKNOWN";
}

SYMWIRE_DECL Pool::Pool(Private, asio::any_io_executor executor,
                        PoolOptions options)
    : executor_(std::move(executor)), options_(std::move(options)) {}

SYMWIRE_DECL Pool::~Pool() = default;

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Pool>> Pool::Create(
    const asio::any_io_executor& executor, std::vector<PoolEndpoint> endpoints,
    PoolOptions options) {
  if (endpoints.empty()) {
    return absl::InvalidArgumentError("pool: no endpoints");
  }
  for (const PoolEndpoint& e : endpoints) {
    if (!e.dialer) {
      return absl::InvalidArgumentError(
          absl::StrCat("pool: endpoint \"", e.address, "\" has no dialer"));
    }
  }
  auto pool = std::make_shared<Pool>(Private{}, executor, std::move(options));
  for (PoolEndpoint& e : endpoints) {
    pool->AddEndpoint(std::move(e));
    const auto& ep = pool->endpoints_.back();
    pool->Connect(ep);
    // A configuration Client::Connect rejects is the same for every
    // endpoint: refuse the pool.
    if (!ep->channel) return ep->last_error;
  }
  pool->ArmHealthTimer();
  return pool;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Pool>> Pool::Create(
    const asio::any_io_executor& executor,
    const std::vector<std::string>& addresses, PoolOptions options) {
  std::vector<PoolEndpoint> endpoints;
  endpoints.reserve(addresses.size());
  for (const std::string& a : addresses) {
    auto e = detail::PoolEndpointFor(executor, a);
    if (!e.ok()) return e.status();
    endpoints.push_back(std::move(*e));
  }
  return Create(executor, std::move(endpoints), std::move(options));
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Pool>> Pool::Resolve(
    const asio::any_io_executor& executor, std::string host, uint16_t port,
    PoolOptions options) {
  if (host.empty() || port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool: bad name to resolve \"", host, "\" port ", port));
  }
  auto pool = std::make_shared<Pool>(Private{}, executor, std::move(options));
  pool->resolve_host_ = std::move(host);
  pool->resolve_port_ = port;
  pool->resolver_ = std::make_unique<asio::ip::tcp::resolver>(executor);
  asio::post(executor, [weak = pool->weak_from_this()] {
    if (auto self = weak.lock()) self->StartResolve();
  });
  pool->ArmHealthTimer();
  return pool;
}

SYMWIRE_DECL void Pool::AddEndpoint(PoolEndpoint endpoint) {
  auto ep = std::make_shared<detail::PoolEndpointState>();
  ep->address = std::move(endpoint.address);
  ep->dialer = std::move(endpoint.dialer);
  endpoints_.push_back(std::move(ep));
}

SYMWIRE_DECL void Pool::Connect(
    const std::shared_ptr<detail::PoolEndpointState>& ep) {
  const uint64_t generation = ++ep->generation;
  ep->link_up = false;
  ep->draining = false;
  ep->unhealthy = false;
  ep->health_pending = false;
  auto c = Client::Connect(executor_, ep->dialer, options_.client);
  if (!c.ok()) {
    ep->channel = nullptr;
    ep->last_error = c.status();
    ep->ever_down = true;
    Update(*ep, c.status());
    return;
  }
  ep->channel = *c;
  // Posted: the channel reports inline from its event loop, and the pool
  // then submits to channels (never inside another's dispatch).
  ep->channel->SetObserver([weak = weak_from_this(),
                            weak_ep = std::weak_ptr(ep), generation,
                            ex = executor_](const ChannelEvent& event) {
    asio::post(ex, [weak, weak_ep, generation, event] {
      auto self = weak.lock();
      auto e = weak_ep.lock();
      if (self && e) self->OnChannelEvent(e, generation, event);
    });
  });
}

SYMWIRE_DECL void Pool::OnChannelEvent(
    const std::shared_ptr<detail::PoolEndpointState>& ep, uint64_t generation,
    const ChannelEvent& event) {
  if (ep->generation != generation || ep->removed || closing_) return;
  switch (event.kind) {
    case ChannelEvent::Kind::kConnected:
    case ChannelEvent::Kind::kResumed:
      ep->link_up = true;
      break;
    case ChannelEvent::Kind::kReconnecting:
    case ChannelEvent::Kind::kReconnectAttempt:
      ep->link_up = false;
      ep->ever_down = true;
      if (!event.status.ok()) ep->last_error = event.status;
      break;
    case ChannelEvent::Kind::kPeerDraining:
      ep->draining = true;
      ep->last_error =
          MakeError(ErrorCode::kPeerDraining, "the agent is draining");
      break;
    case ChannelEvent::Kind::kClosed:
    case ChannelEvent::Kind::kFailed: {
      ep->link_up = false;
      ep->ever_down = true;
      ep->draining = false;
      ep->last_error = event.status.ok()
                           ? MakeError(ErrorCode::kSessionClosed,
                                       "the agent closed the session")
                           : event.status;
      // A new session after redial_delay (the agent may be back).
      if (!ep->redial_timer) {
        ep->redial_timer = std::make_unique<asio::steady_timer>(executor_);
      }
      ep->redial_timer->expires_after(
          absl::ToChronoNanoseconds(options_.redial_delay));
      ep->redial_timer->async_wait(
          [weak = weak_from_this(), weak_ep = std::weak_ptr(ep),
           generation](const boost::system::error_code& ec) {
            auto self = weak.lock();
            auto e = weak_ep.lock();
            if (ec || !self || !e || self->closing_ || e->removed ||
                e->generation != generation) {
              return;
            }
            self->Connect(e);
          });
      break;
    }
  }
  Update(*ep, ep->last_error);
}

SYMWIRE_DECL void Pool::Emit(PoolEvent::Kind kind,
                             const detail::PoolEndpointState& ep,
                             const absl::Status& status) {
  if (options_.client.observer) {
    const PoolEndpointInfo info{ep.address, EndpointStateName(ep.state)};
    if (kind == PoolEvent::Kind::kEndpointUp) {
      options_.client.observer->OnEndpointUp(info);
    } else if (kind == PoolEvent::Kind::kEndpointDown) {
      options_.client.observer->OnEndpointDown(info, status);
    }
  }
  if (observer_) {
    PoolEvent e;
    e.kind = kind;
    e.address = ep.address;
    e.state = ep.state;
    e.status = status;
    observer_(e);
  }
}

SYMWIRE_DECL void Pool::Update(detail::PoolEndpointState& ep,
                               const absl::Status& why) {
  const EndpointState before = ep.state;
  const EndpointState now = ep.Compute();
  if (before == now) return;
  ep.state = now;
  if (now == EndpointState::kReady) {
    Emit(PoolEvent::Kind::kEndpointUp, ep, absl::OkStatus());
    DrainWaiters();
    return;
  }
  if (before == EndpointState::kReady) {
    Emit(PoolEvent::Kind::kEndpointDown, ep, why);
  }
  if (ready() == 0) {
    if (!AnyConnecting()) FailWaiters(false, NoEndpointError());
    // A DNS pool with nothing ready looks again (the agents may have moved).
    if (resolver_ && !resolving_ && !closing_ &&
        SteadyNow() - last_resolve_ >= options_.redial_delay) {
      StartResolve();
    }
  }
}

SYMWIRE_DECL size_t Pool::ready() const {
  return static_cast<size_t>(std::count_if(
      endpoints_.begin(), endpoints_.end(),
      [](const auto& ep) { return ep->state == EndpointState::kReady; }));
}

SYMWIRE_DECL bool Pool::AnyConnecting() const {
  if (resolver_ && !resolved_once_) return true;
  return std::any_of(endpoints_.begin(), endpoints_.end(), [](const auto& ep) {
    return ep->state == EndpointState::kConnecting;
  });
}

SYMWIRE_DECL absl::Status Pool::NoEndpointError() const {
  std::string why;
  for (const auto& ep : endpoints_) {
    absl::StrAppend(&why, why.empty() ? "" : "; ", ep->address, ": ",
                    detail::PoolStateName(ep->state));
    if (!ep->last_error.ok()) {
      absl::StrAppend(&why, ": ", ep->last_error.message());
    }
  }
  if (resolver_) {
    absl::StrAppend(&why, why.empty() ? "" : "; ", "resolving ", resolve_host_,
                    ":", resolve_port_, ": ",
                    resolve_error_.ok()
                        ? (endpoints_.empty() ? "no address" : "ok")
                        : resolve_error_.message());
  }
  return MakeError(ErrorCode::kConnectionLost,
                   absl::StrCat("pool: no endpoint available (", why, ")"));
}

SYMWIRE_DECL std::vector<EndpointStatus> Pool::endpoints() const {
  std::vector<EndpointStatus> out;
  out.reserve(endpoints_.size());
  for (const auto& ep : endpoints_) {
    EndpointStatus s;
    s.address = ep->address;
    s.last_error = ep->last_error;
    s.completed = ep->completed + ep->DoneSubmitted();
    s.outstanding = ep->Outstanding();
    s.state = ep->state;
    out.push_back(std::move(s));
  }
  return out;
}

SYMWIRE_DECL std::shared_ptr<Channel> Pool::channel(
    std::string_view address) const {
  for (const auto& ep : endpoints_) {
    if (ep->address == address) return ep->channel;
  }
  return nullptr;
}

// Pick: the next ready endpoint by the policy, or nullptr. Both policies
// scan from the round-robin position, so least-outstanding spreads ties.
SYMWIRE_DECL detail::PoolEndpointState* Pool::Pick() {
  const size_t n = endpoints_.size();
  detail::PoolEndpointState* best = nullptr;
  size_t best_load = 0;
  size_t best_index = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (next_ + k) % n;
    detail::PoolEndpointState& ep = *endpoints_[i];
    if (ep.state != EndpointState::kReady) continue;
    if (options_.policy == PoolPolicy::kRoundRobin) {
      next_ = i + 1;
      return &ep;
    }
    const size_t load = ep.Outstanding();
    if (best == nullptr || load < best_load) {
      best = &ep;
      best_load = load;
      best_index = i;
    }
  }
  if (best != nullptr) next_ = best_index + 1;
  return best;
}

SYMWIRE_DECL void Pool::StartSubmit(
    detail::HeldPayload payload, CallOptions options, TaskCallbacks callbacks,
    detail::Completion<void(absl::StatusOr<TaskCall>)> done,
    const detail::OpCancelPtr& cancel) {
  auto r = std::make_shared<detail::PoolRequest>();
  r->payload = std::move(payload);
  r->options = std::move(options);
  r->callbacks = std::move(callbacks);
  r->submit_done = std::move(done);
  r->cancel = cancel;
  Start(std::move(r));
}

SYMWIRE_DECL void Pool::StartCall(
    detail::HeldPayload payload, CallOptions options,
    detail::Completion<void(absl::StatusOr<std::string>)> done,
    const detail::OpCancelPtr& cancel) {
  auto r = std::make_shared<detail::PoolRequest>();
  r->payload = std::move(payload);
  r->options = std::move(options);
  r->call_done = std::move(done);
  r->call = true;
  r->cancel = cancel;
  Start(std::move(r));
}

SYMWIRE_DECL void Pool::Start(std::shared_ptr<detail::PoolRequest> request) {
  if (closing_) {
    request->Fail(MakeError(absl::StatusCode::kCancelled,
                            ErrorCode::kSessionClosed, "pool closed"));
    return;
  }
  if (request->options.deadline) {
    request->deadline = SteadyNow() + *request->options.deadline;
  }
  Route(std::move(request));
}

SYMWIRE_DECL void Pool::Route(std::shared_ptr<detail::PoolRequest> request) {
  if (detail::PoolEndpointState* ep = Pick()) {
    Dispatch(*ep, std::move(request));
    return;
  }
  if (request->options.wait_for_ready || AnyConnecting()) {
    Enqueue(std::move(request));
    return;
  }
  request->Fail(NoEndpointError());
}

SYMWIRE_DECL void Pool::Enqueue(std::shared_ptr<detail::PoolRequest> request) {
  const std::weak_ptr<Pool> weak = weak_from_this();
  const std::weak_ptr<detail::PoolRequest> weak_request = request;
  const auto remove = [weak, weak_request](const absl::Status& status) {
    auto self = weak.lock();
    auto r = weak_request.lock();
    if (!self || !r || r->finished) return;
    auto& w = self->waiting_;
    w.erase(std::remove(w.begin(), w.end(), r), w.end());
    r->Fail(status);
  };
  if (request->deadline != absl::InfiniteFuture()) {
    request->timer = std::make_unique<asio::steady_timer>(executor_);
    request->timer->expires_at(detail::ToSteady(request->deadline));
    request->timer->async_wait([remove, budget = *request->options.deadline](
                                   const boost::system::error_code& ec) {
      if (ec) return;
      remove(absl::DeadlineExceededError(
          absl::StrCat("pool: no endpoint became available within the "
                       "call's deadline of ",
                       absl::FormatDuration(budget))));
    });
  }
  if (request->cancel) {
    // Waiting has no side effect: every cancellation type ends it.
    request->cancel->hook = [remove,
                             call = request->call](asio::cancellation_type) {
      remove(detail::OperationAborted(call ? "pool: async_call"
                                           : "pool: async_submit"));
      return true;
    };
  }
  waiting_.push_back(std::move(request));
}

SYMWIRE_DECL void Pool::DrainWaiters() {
  while (!waiting_.empty()) {
    detail::PoolEndpointState* ep = Pick();
    if (ep == nullptr) return;
    std::shared_ptr<detail::PoolRequest> r = std::move(waiting_.front());
    waiting_.pop_front();
    if (r->finished) continue;
    Dispatch(*ep, std::move(r));
  }
}

SYMWIRE_DECL void Pool::FailWaiters(bool all, const absl::Status& status) {
  std::deque<std::shared_ptr<detail::PoolRequest>> keep;
  std::deque<std::shared_ptr<detail::PoolRequest>> fail;
  for (auto& r : waiting_) {
    (all || !r->options.wait_for_ready ? fail : keep).push_back(std::move(r));
  }
  waiting_ = std::move(keep);
  for (auto& r : fail) r->Fail(status);
}

SYMWIRE_DECL void Pool::Dispatch(detail::PoolEndpointState& ep,
                                 std::shared_ptr<detail::PoolRequest> request) {
  if (request->timer) request->timer->cancel();
  CallOptions options = request->options;
  if (request->deadline != absl::InfiniteFuture()) {
    const absl::Duration left = request->deadline - SteadyNow();
    if (left <= absl::ZeroDuration()) {
      request->Fail(absl::DeadlineExceededError(
          "pool: the call's deadline passed while waiting for an endpoint"));
      return;
    }
    options.deadline = left;
  }
  // The endpoint's books: held by the completion (a DNS pool may drop the
  // endpoint meanwhile).
  std::shared_ptr<detail::PoolEndpointState> held;
  for (const auto& e : endpoints_) {
    if (e.get() == &ep) held = e;
  }
  SYMWIRE_ASSERT(held != nullptr);
  ++ep.in_progress;
  // Cancellation reaches the channel's op through a signal of our own: the
  // channel decides which types it honours (returning false keeps our hook
  // armed until the call completes).
  std::shared_ptr<asio::cancellation_signal> signal;
  if (request->cancel) {
    signal = std::make_shared<asio::cancellation_signal>();
    request->cancel->hook = [signal](asio::cancellation_type type) {
      signal->emit(type);
      return false;
    };
  }
  // `send(payload)` with the request's payload as the channel's calls take
  // it: a SharedPayload (a reference) or a copy of the string.
  const auto with_payload = [&](auto send) {
    if (const SharedPayload* shared = request->payload.shared()) {
      send(*shared);
    } else {
      const absl::Span<const std::byte> b = request->payload.bytes();
      send(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
    }
  };
  const auto send_call = [&](auto handler) {
    with_payload([&](auto payload) {
      if (signal) {
        ep.channel->async_call(
            std::move(payload), std::move(options),
            asio::bind_cancellation_slot(signal->slot(), std::move(handler)));
      } else {
        ep.channel->async_call(std::move(payload), std::move(options),
                               std::move(handler));
      }
    });
  };
  const auto send_submit = [&](auto handler) {
    with_payload([&](auto payload) {
      if (signal) {
        ep.channel->async_submit(
            std::move(payload), std::move(options), request->callbacks,
            asio::bind_cancellation_slot(signal->slot(), std::move(handler)));
      } else {
        ep.channel->async_submit(std::move(payload), std::move(options),
                                 request->callbacks, std::move(handler));
      }
    });
  };
  // Refused unsent (the endpoint changed state in this turn): another
  // endpoint may take it, at most once per endpoint.
  const auto refused = [weak = weak_from_this()](detail::PoolRequest& r,
                                                 const absl::Status& st) {
    auto self = weak.lock();
    return self && !self->closing_ && detail::PoolRefusedUnsent(st, r.call) &&
           r.refusals++ < self->endpoints_.size();
  };
  if (request->call) {
    send_call([weak = weak_from_this(), held, request, signal,
               refused](absl::StatusOr<std::string> result) {
      --held->in_progress;
      auto self = weak.lock();
      if (!result.ok() && refused(*request, result.status())) {
        self->Route(request);
        return;
      }
      ++held->completed;
      if (request->finished) return;
      request->finished = true;
      request->call_done(std::move(result));
    });
  } else {
    send_submit([weak = weak_from_this(), held, request, signal,
                 refused](absl::StatusOr<TaskCall> result) {
      --held->in_progress;
      auto self = weak.lock();
      if (!result.ok() && refused(*request, result.status())) {
        self->Route(request);
        return;
      }
      if (result.ok()) {
        if (held->submitted.size() >= held->prune_at) {
          held->Prune();
          held->prune_at = std::max<size_t>(32, 2 * held->submitted.size());
        }
        held->submitted.push_back(*result);
      }
      if (request->finished) return;
      request->finished = true;
      request->submit_done(std::move(result));
    });
  }
}

SYMWIRE_DECL void Pool::ArmHealthTimer() {
  if (options_.health_check_interval <= absl::ZeroDuration() || closing_) {
    return;
  }
  if (!health_timer_) {
    health_timer_ = std::make_unique<asio::steady_timer>(executor_);
  }
  health_timer_->expires_after(
      absl::ToChronoNanoseconds(options_.health_check_interval));
  health_timer_->async_wait(
      [weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->closing_) return;
        self->CheckHealth();
        self->ArmHealthTimer();
      });
}

SYMWIRE_DECL void Pool::CheckHealth() {
  for (const auto& ep : endpoints_) {
    if (!ep->link_up || ep->draining || ep->health_pending || !ep->channel) {
      continue;
    }
    ep->health_pending = true;
    CallOptions o;
    o.deadline = options_.health_check_timeout;
    ep->channel->async_check_health(
        std::move(o), [weak = weak_from_this(), weak_ep = std::weak_ptr(ep),
                       generation = ep->generation](
                          const absl::StatusOr<HealthStatus>& health) {
          auto self = weak.lock();
          auto e = weak_ep.lock();
          if (!self || !e || e->generation != generation) return;
          e->health_pending = false;
          if (self->closing_ || e->removed) return;
          absl::Status why;
          if (health.ok()) {
            e->unhealthy = *health != HealthStatus::kServing;
            if (e->unhealthy) {
              why = MakeError(
                  ErrorCode::kConnectionLost,
                  absl::StrCat("health check: ", HealthStatusName(*health)));
            }
          } else if (health.status().code() ==
                     absl::StatusCode::kUnimplemented) {
            e->unhealthy = false;  // no health method: taken as serving
          } else if (!e->link_up ||
                     health.status().code() == absl::StatusCode::kUnavailable) {
            // The connection's loss (even one whose event is still
            // queued) is the channel's event, not the agent's health.
            return;
          } else {
            e->unhealthy = true;
            why = health.status();
          }
          if (!why.ok()) e->last_error = why;
          self->Update(*e, why);
        });
  }
}

SYMWIRE_DECL void Pool::StartResolve() {
  if (resolving_ || closing_ || !resolver_) return;
  resolving_ = true;
  last_resolve_ = SteadyNow();
  resolver_->async_resolve(
      resolve_host_, std::to_string(resolve_port_),
      [weak = weak_from_this()](
          const boost::system::error_code& ec,
          const asio::ip::tcp::resolver::results_type& results) {
        auto self = weak.lock();
        if (!self) return;
        self->resolving_ = false;
        std::vector<asio::ip::tcp::endpoint> found;
        absl::Status status;
        if (ec) {
          status = MakeError(ErrorCode::kConnectionLost,
                             absl::StrCat("resolve ", self->resolve_host_, ": ",
                                          ec.message()));
        } else {
          for (const auto& entry : results) found.push_back(entry.endpoint());
        }
        self->OnResolved(status, found);
      });
}

SYMWIRE_DECL void Pool::ArmResolveTimer(absl::Duration after) {
  if (closing_ || after <= absl::ZeroDuration()) return;
  if (!resolve_timer_) {
    resolve_timer_ = std::make_unique<asio::steady_timer>(executor_);
  }
  resolve_timer_->expires_after(absl::ToChronoNanoseconds(after));
  resolve_timer_->async_wait(
      [weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        self->StartResolve();
      });
}

SYMWIRE_DECL void Pool::OnResolved(
    const absl::Status& status,
    const std::vector<asio::ip::tcp::endpoint>& found) {
  if (closing_) return;
  resolved_once_ = true;
  resolve_error_ = status;
  if (status.ok()) {
    std::vector<std::string> names;
    for (const auto& e : found) {
      std::string name = detail::PoolAddress(e);
      if (std::find(names.begin(), names.end(), name) != names.end()) continue;
      names.push_back(name);
      const bool known =
          std::any_of(endpoints_.begin(), endpoints_.end(),
                      [&](const auto& ep) { return ep->address == name; });
      if (known) continue;
      AddEndpoint(PoolEndpoint{
          name, TcpDialer(executor_, e.address().to_string(), e.port())});
      const auto& ep = endpoints_.back();
      Emit(PoolEvent::Kind::kEndpointAdded, *ep, absl::OkStatus());
      Connect(ep);
    }
    // Vanished addresses: closed gracefully (their running tasks finish).
    for (auto it = endpoints_.begin(); it != endpoints_.end();) {
      const std::shared_ptr<detail::PoolEndpointState> ep = *it;
      if (std::find(names.begin(), names.end(), ep->address) != names.end()) {
        ++it;
        continue;
      }
      ep->removed = true;
      const absl::Status why = MakeError(
          ErrorCode::kSessionClosed,
          absl::StrCat(resolve_host_, " no longer resolves to ", ep->address));
      if (ep->state == EndpointState::kReady) {
        ep->state = EndpointState::kFailed;
        Emit(PoolEvent::Kind::kEndpointDown, *ep, why);
      }
      Emit(PoolEvent::Kind::kEndpointRemoved, *ep, why);
      if (ep->redial_timer) ep->redial_timer->cancel();
      if (std::shared_ptr<Channel> ch = ep->channel) {
        ch->async_close([ch](const absl::Status&) {});
      }
      it = endpoints_.erase(it);
    }
  }
  ArmResolveTimer(options_.resolve_interval);
  if (ready() == 0 && !AnyConnecting()) FailWaiters(false, NoEndpointError());
}

SYMWIRE_DECL void Pool::StartClose(
    detail::Completion<void(absl::Status)> done) {
  if (!closing_) {
    closing_ = true;
    FailWaiters(true, MakeError(absl::StatusCode::kCancelled,
                                ErrorCode::kSessionClosed, "pool closed"));
    if (health_timer_) health_timer_->cancel();
    if (resolve_timer_) resolve_timer_->cancel();
    if (resolver_) resolver_->cancel();
  }
  struct Closing {
    absl::Status first;
    detail::Completion<void(absl::Status)> done;
    size_t remaining = 1;
    void Done(const absl::Status& st) {
      if (!st.ok() && first.ok()) first = st;
      if (--remaining == 0) done(first);
    }
  };
  auto closing = std::make_shared<Closing>();
  closing->done = std::move(done);
  for (const auto& ep : endpoints_) {
    if (ep->redial_timer) ep->redial_timer->cancel();
    const std::shared_ptr<Channel> ch = ep->channel;
    // A session that already ended (waiting for a redial) has nothing to
    // close; its error is the endpoint's, not the close's.
    if (!ch || ch->state() == SessionState::kClosed ||
        ch->state() == SessionState::kFailed) {
      continue;
    }
    ++closing->remaining;
    ch->async_close(
        [closing, ch](const absl::Status& st) { closing->Done(st); });
  }
  closing->Done(absl::OkStatus());
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_POOL_IPP_
