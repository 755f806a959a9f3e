// File: symwire/runtime/pool.hpp
// Layer 3b (runtime). Pool: one orchestrator handle over several agent
// endpoints (a list of addresses, or every address a DNS name resolves to),
// with round-robin or least-outstanding-tasks balancing; PoolOptions,
// PoolEndpoint, EndpointState, EndpointStatus, PoolEvent (issue #14 §4).
#ifndef SYMWIRE_RUNTIME_POOL_HPP_
#define SYMWIRE_RUNTIME_POOL_HPP_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/config.hpp"
#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/client.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/runtime/task_call.hpp"
#include "symwire/shared_payload.hpp"
#include "symwire/transport/tcp.hpp"

namespace symwire {

namespace detail {
struct PoolEndpointState;
struct PoolRequest;
}  // namespace detail

// PoolPolicy
// How a Pool picks the endpoint of a new task among the ready ones.
enum class PoolPolicy : uint8_t {
  kRoundRobin,        // each ready endpoint in turn
  kLeastOutstanding,  // the fewest outstanding tasks (ties: in turn)
};

// EndpointState
// An endpoint of a Pool, as the pool sees it. Only kReady takes new tasks.
enum class EndpointState : uint8_t {
  kConnecting,  // its first connection is under way (calls may wait)
  kReady,       // connected, established, not draining, healthy
  kDraining,    // the agent closes gracefully (PEER_DRAINING): its running
                // tasks finish, it gets no new one
  kFailed,      // the connection is lost or cannot be made (the session
                // resumes, or the pool dials a new one)
  kUnhealthy,   // the health check (PoolOptions::health_check_interval)
                // answered NOT_SERVING or DRAINING, or failed
};
// EndpointStateName: "CONNECTING", "READY", "DRAINING", "FAILED",
// "UNHEALTHY".
SYMWIRE_DECL std::string_view EndpointStateName(EndpointState state);

// PoolEndpoint
// One agent endpoint: a label (shown in EndpointStatus, PoolEvent, errors)
// and the Dialer the endpoint's Client connects with (TcpDialer,
// UnixDialer, WsDialer, TlsDialer: any transport a Client accepts).
struct PoolEndpoint {
  std::string address;
  Dialer dialer;
};

// EndpointStatus
// A snapshot of one endpoint (Pool::endpoints()).
struct EndpointStatus {
  std::string address;
  absl::Status last_error;  // why it was last down (OK: never down)
  uint64_t completed = 0;   // tasks it finished for this pool (any result)
  size_t outstanding = 0;   // calls and submitted tasks not yet finished
  EndpointState state = EndpointState::kConnecting;
};

// PoolEvent
// What a Pool reports to its observer (Pool::SetObserver), inline on the
// pool's executor. `address` is valid during the call only.
struct PoolEvent {
  enum class Kind : uint8_t {
    kEndpointUp,       // became kReady: new tasks go to it
    kEndpointDown,     // left kReady (`state` says for what; `status` why)
    kEndpointAdded,    // a DNS pool found a new address
    kEndpointRemoved,  // a DNS pool lost an address (closed gracefully)
  };
  absl::Status status;
  std::string_view address;
  Kind kind = Kind::kEndpointUp;
  EndpointState state = EndpointState::kConnecting;
};

// PoolOptions
struct PoolOptions {
  // Every endpoint's Client (ClientOptions: session config, reconnect,
  // first-connect retries, unreachable_timeout, observer). The observer, if
  // set, also gets OnEndpointUp / OnEndpointDown (runtime/observer.hpp).
  ClientOptions client;
  PoolPolicy policy = PoolPolicy::kRoundRobin;
  // Health checking (SPEC.md §13.6; Channel::async_check_health): every
  // interval, each connected endpoint is asked; NOT_SERVING, DRAINING or a
  // failed check (other than UNIMPLEMENTED: an agent without a health
  // method is taken as serving) takes it out as kUnhealthy, SERVING brings
  // it back. ZeroDuration() (default): no health checks.
  absl::Duration health_check_interval = absl::ZeroDuration();
  absl::Duration health_check_timeout = absl::Seconds(2);
  // When an endpoint's session ends (the agent closed it after draining,
  // the client gave up at unreachable_timeout, its first connection could
  // not be made), the pool starts a new session to it this long after.
  absl::Duration redial_delay = absl::Milliseconds(500);
  // DNS pools (Pool::Resolve): how often the name is resolved again. It is
  // also resolved again (at most once per redial_delay) when no endpoint
  // is ready.
  absl::Duration resolve_interval = absl::Seconds(30);
};

// Pool
// One orchestrator handle over several agents. Each endpoint has its own
// Client session (Client::Connect: redials and resumes after a lost
// connection). A new task goes to a kReady endpoint chosen by
// PoolOptions::policy; an endpoint that drains, fails (connection lost,
// unreachable) or is unhealthy is taken out until it comes back (resume or
// new session established, health SERVING again).
//
// When no endpoint is ready:
//   - while an endpoint's first connection (or a DNS pool's first
//     resolution) is under way, calls wait for it, as a Client's calls wait
//     for the first handshake;
//   - otherwise a call fails at once with kUnavailable / CONNECTION_LOST
//     "pool: no endpoint available (<each address: its state and last
//     error>)", unless CallOptions::wait_for_ready, which waits for an
//     endpoint, bounded by CallOptions::deadline (then kDeadlineExceeded;
//     the deadline sent with the task is what is left of it).
// A submission the chosen session refuses before sending (PEER_DRAINING,
// SESSION_CLOSED: the state changed in the same turn) goes to another
// endpoint: it never reached an agent. A task is never sent twice: one that
// was sent and then lost with its agent ends as that endpoint's session
// says (resumed, or kUnavailable at ClientOptions::unreachable_timeout);
// retrying it is the caller's decision.
//
// Threading: as Channel (runtime.hpp): the pool and its sessions live on
// one executor; the async_* functions may be called from any thread; the
// synchronous members must be called on the executor. Always held by
// shared_ptr. Destroying the pool drops its sessions as destroying their
// Channels would: async_close first for a graceful end.
class Pool : public std::enable_shared_from_this<Pool> {
 public:
  // Create
  // A pool over `endpoints`; every endpoint starts connecting now.
  // Errors: kInvalidArgument for an empty list, an endpoint without a
  // dialer, or ClientOptions that Client::Connect rejects.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Pool>> Create(
      const asio::any_io_executor& executor,
      std::vector<PoolEndpoint> endpoints, PoolOptions options);
  // Create over addresses: "host:port", "[v6]:port", "tcp://host:port"
  // (TcpDialer) or "unix:PATH" (UnixDialer). Errors: kInvalidArgument
  // naming an address that is none of these.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Pool>> Create(
      const asio::any_io_executor& executor,
      const std::vector<std::string>& addresses, PoolOptions options);
  // Resolve
  // A pool over every address `host` resolves to (IPv4 and IPv6), on
  // `port`, over TCP. The name is resolved now and again every
  // resolve_interval (and when no endpoint is ready): a new address is
  // added, a vanished one is closed gracefully (its running tasks finish).
  // A resolution failure keeps the current endpoints (a first one that
  // fails makes waiting calls fail with kUnavailable naming it).
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Pool>> Resolve(
      const asio::any_io_executor& executor, std::string host, uint16_t port,
      PoolOptions options);

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  SYMWIRE_DECL ~Pool();

  const asio::any_io_executor& get_executor() const { return executor_; }

  // SetObserver: endpoint events (PoolEvent), inline on the executor.
  void SetObserver(std::function<void(const PoolEvent&)> observer) {
    observer_ = std::move(observer);
  }

  // async_submit
  // As Channel::async_submit, on an endpoint the policy picks. The TaskCall
  // belongs to that endpoint's channel. Errors: the channel's; kUnavailable
  // when no endpoint is available (see above); kCancelled / SESSION_CLOSED
  // after async_close. Cancellation as Channel::async_submit (a call still
  // waiting for an endpoint: all three types). Signature:
  // void(absl::StatusOr<TaskCall>).
  template <class CompletionToken>
  auto async_submit(std::string payload, CallOptions options,
                    CompletionToken&& token) {
    return async_submit(std::move(payload), std::move(options), TaskCallbacks{},
                        std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_submit(std::string payload, CallOptions options,
                    TaskCallbacks callbacks, CompletionToken&& token);
  // The same with the payload handed over (Channel::async_submit of a
  // SharedPayload): kept by reference, never copied.
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
  // As Channel::async_call, on an endpoint the policy picks: submits and
  // waits for the whole result. Errors as async_submit, then the task's.
  // Cancellation as Channel::async_call (terminal after submission cancels
  // the task on the wire). Signature: void(absl::StatusOr<std::string>).
  // A SharedPayload is kept by reference, never copied (Channel::
  // async_call of one).
  template <class CompletionToken>
  auto async_call(std::string payload, CallOptions options,
                  CompletionToken&& token);
  template <class CompletionToken>
  auto async_call(SharedPayload payload, CallOptions options,
                  CompletionToken&& token);

  // async_close
  // Fails the calls still waiting for an endpoint (kCancelled /
  // SESSION_CLOSED "pool closed"), stops health checks, redials and
  // resolution, and closes every endpoint's session gracefully
  // (Channel::async_close, bounded by ChannelOptions::close_timeout).
  // Completes with OK, or the first session's error. Signature:
  // void(absl::Status).
  template <class CompletionToken>
  auto async_close(CompletionToken&& token);

  // endpoints: a snapshot of every endpoint, in the order given (a DNS
  // pool: in resolution order). Executor only.
  SYMWIRE_DECL std::vector<EndpointStatus> endpoints() const;
  // ready: how many endpoints take new tasks now. Executor only.
  SYMWIRE_DECL size_t ready() const;
  // The session of the endpoint at `address`, or nullptr (tests,
  // diagnostics; it changes when the pool dials a new session).
  SYMWIRE_DECL std::shared_ptr<Channel> channel(std::string_view address) const;

 private:
  struct Private {};
  enum class Kind : uint8_t { kSubmit, kCall };

 public:
  // Use Create / Resolve.
  SYMWIRE_DECL Pool(Private, asio::any_io_executor executor,
                    PoolOptions options);

 private:
  void AddEndpoint(PoolEndpoint endpoint);
  void Connect(const std::shared_ptr<detail::PoolEndpointState>& ep);
  void OnChannelEvent(const std::shared_ptr<detail::PoolEndpointState>& ep,
                      uint64_t generation, const ChannelEvent& event);
  void Update(detail::PoolEndpointState& ep, const absl::Status& why);
  void Emit(PoolEvent::Kind kind, const detail::PoolEndpointState& ep,
            const absl::Status& status);
  detail::PoolEndpointState* Pick();
  bool AnyConnecting() const;
  absl::Status NoEndpointError() const;
  void Start(std::shared_ptr<detail::PoolRequest> request);
  void Route(std::shared_ptr<detail::PoolRequest> request);
  void Dispatch(detail::PoolEndpointState& ep,
                std::shared_ptr<detail::PoolRequest> request);
  void Enqueue(std::shared_ptr<detail::PoolRequest> request);
  void DrainWaiters();
  void FailWaiters(bool all, const absl::Status& status);
  void ArmHealthTimer();
  void CheckHealth();
  void StartResolve();
  void ArmResolveTimer(absl::Duration after);
  void OnResolved(const absl::Status& status,
                  const std::vector<asio::ip::tcp::endpoint>& found);
  void StartSubmit(detail::HeldPayload payload, CallOptions options,
                   TaskCallbacks callbacks,
                   detail::Completion<void(absl::StatusOr<TaskCall>)> done,
                   const detail::OpCancelPtr& cancel);
  void StartCall(detail::HeldPayload payload, CallOptions options,
                 detail::Completion<void(absl::StatusOr<std::string>)> done,
                 const detail::OpCancelPtr& cancel);
  void StartClose(detail::Completion<void(absl::Status)> done);

  asio::any_io_executor executor_;
  PoolOptions options_;
  std::function<void(const PoolEvent&)> observer_;
  std::vector<std::shared_ptr<detail::PoolEndpointState>> endpoints_;
  // Calls waiting for a ready endpoint, in submission order.
  std::deque<std::shared_ptr<detail::PoolRequest>> waiting_;
  std::unique_ptr<asio::steady_timer> health_timer_;
  // DNS pools (Resolve): the name, the resolver and its timer.
  std::string resolve_host_;
  std::unique_ptr<asio::ip::tcp::resolver> resolver_;
  std::unique_ptr<asio::steady_timer> resolve_timer_;
  absl::Status resolve_error_;
  absl::Time last_resolve_ = absl::InfinitePast();
  size_t next_ = 0;  // round-robin position
  uint16_t resolve_port_ = 0;
  bool resolving_ = false;
  bool resolved_once_ = false;
  bool closing_ = false;
};

template <class CompletionToken>
auto Pool::async_submit(std::string payload, CallOptions options,
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
auto Pool::async_submit(SharedPayload payload, CallOptions options,
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
auto Pool::async_call(std::string payload, CallOptions options,
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
auto Pool::async_call(SharedPayload payload, CallOptions options,
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
auto Pool::async_close(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      executor_,
      [self = shared_from_this()](auto done) {
        self->StartClose(std::move(done));
      },
      std::forward<CompletionToken>(token));
}

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/runtime/impl/pool.ipp"
#endif

#endif  // SYMWIRE_RUNTIME_POOL_HPP_
