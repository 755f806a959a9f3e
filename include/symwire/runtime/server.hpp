// File: symwire/runtime/server.hpp
// Layer 3b (runtime). Server: the acceptor side (accepts, keeps the
// registry that routes resumes, drains on shutdown), ServerOptions and
// ServerCounters.
#ifndef SYMWIRE_RUNTIME_SERVER_HPP_
#define SYMWIRE_RUNTIME_SERVER_HPP_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/config.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/detail/method_table.hpp"
#include "symwire/runtime/detail/shards.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

class Channel;
namespace detail {
struct ServerPart;
}  // namespace detail

// ServerOptions
//
// Memory before authentication (issue #11). A connection whose session is
// not established yet costs at most: its read buffer, held at
// Transport::kInitialReadBuffer (4 KiB) until establishment; the bytes its
// session buffers, at most max_handshake_bytes (the connection is closed
// when its peer sends more before the handshake completes; the session
// also limits a frame to 8 KiB until then, SPEC.md §15.2); its output (a
// preface and a few control frames, well under 1 KiB); and the fixed state
// of a Session, a Channel and a Transport (an idle handshaking connection
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
// Threads (issue #13). A Server created without an executor owns
// `threads` threads; one created on a caller's executor serves there alone
// (threads 0 or 1, the behaviour of earlier versions) unless `threads` > 1
// asks it to own threads too. With owned threads the server is a set of
// shared-nothing shards: each an io_context on its own thread with its own
// sessions, Endpoint and counters. Accepted connections are spread over the
// shards round-robin (the accept loop runs on the server's executor and
// moves each socket to its shard), so each session, its Channel, its
// on_session call and its task handlers live on one shard's thread: a
// handler that touches shared state of the application must synchronise.
// A session id ends in its shard's index (EndpointConfig::shards); a
// resuming connection that arrives on another shard is moved, without a
// lock, to the owning shard (its socket and the handshake state so far;
// ServerCounters::resumes_handed_off). Only plain TCP and Unix-domain
// sockets can move between threads: a TLS resume landing on another shard
// is answered CONNECTION_LOST, whose initiator redials (SPEC.md §16.1) and
// lands on another shard: nothing is lost, the resume costs a redial per
// miss (tls.hpp, "Threads", says why). Limits across shards:
// max_connections is server-wide (one shared atomic count); failed
// authentications are counted per source server-wide (one table under a
// mutex, taken per accepted connection and per failure, never per
// message); max_handshaking_connections, max_sessions and
// max_sessions_per_source are split evenly: each shard takes limit/threads
// (at least 1), so the server never holds more than the limit (when the
// limit is at least `threads`) and, connections being spread evenly, a
// shard reaches its share about when the server reaches the limit; eviction
// of idle sessions picks from the shard's own. counters() sums the shards.
// The RandomSource of `session` is called from every shard's thread
// (SystemRandom is thread-safe). Clients can share one thread pool: give
// each Client (Client::Create) an executor of one io_context run by several
// threads through its own strand (asio::make_strand), or one io_context per
// thread, round-robin.
//
// Sources. A TCP or TLS connection's source is its peer's IP address; a
// Unix-domain connection's is its peer's uid ("uid:1000"); a transport
// handed to Accept without one shares the source "accepted".
struct ServerOptions : ChannelOptions {
  // Threads serving connections ("Threads" above). 0: one per hardware
  // thread (std::thread::hardware_concurrency(), at least 1) for a Server
  // created without an executor, 1 (the caller's executor) for one created
  // on an executor. At most 256.
  uint32_t threads = 0;
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
  // Connections taken from a listener or given to Accept, whatever became
  // of them: a TLS connection counts when accepted, before its TLS
  // handshake (one that then fails is also in handshakes_failed; one
  // refused after it, also in connections_refused).
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
  uint64_t resumes = 0;  // connections handed to a session
  // Resuming connections that arrived on another shard and were moved to
  // the one owning their session ("Threads" above; also in resumes once
  // the owner accepts them).
  uint64_t resumes_handed_off = 0;
  // Resumes the Endpoint rejected: unknown or expired session, wrong proof,
  // changed contract, bad last_received, a lost race.
  uint64_t resumes_rejected = 0;
  // Connections that ended before establishing a session: bad bytes, a
  // handshake timeout, failed authentication or TLS, a rejected resume
  // (also counted in resumes_rejected), more than max_handshake_bytes
  // (also in handshakes_oversized).
  uint64_t handshakes_failed = 0;
  uint64_t handshakes_oversized = 0;
  // Handshakes that failed authentication (UNAUTHENTICATED).
  uint64_t auth_failures = 0;
};

namespace detail {
struct ShardSet;
// ServerCounterCells: a Server's (one shard's) counters, written on its
// thread and read from any (counters() sums the shards).
struct ServerCounterCells {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> handshakes_refused{0};
  std::atomic<uint64_t> auth_refused{0};
  std::atomic<uint64_t> sessions_established{0};
  std::atomic<uint64_t> sessions_refused{0};
  std::atomic<uint64_t> sessions_refused_per_source{0};
  std::atomic<uint64_t> sessions_evicted{0};
  std::atomic<uint64_t> resumes{0};
  std::atomic<uint64_t> resumes_handed_off{0};
  std::atomic<uint64_t> resumes_rejected{0};
  std::atomic<uint64_t> handshakes_failed{0};
  std::atomic<uint64_t> handshakes_oversized{0};
  std::atomic<uint64_t> auth_failures{0};
  void AddTo(ServerCounters& c) const;
};
}  // namespace detail

// Server
// The acceptor side. Each accepted connection gets a fresh session; a new
// session is announced to `on_session` once established (set its task
// handler there); a resuming connection is handed to the session it
// belongs to (the registry, by session id).
class Server : public std::enable_shared_from_this<Server> {
 public:
  using SessionHandler = std::function<void(const std::shared_ptr<Channel>&)>;

  // Create
  // A server on `executor` (with options.threads > 1: the accept loop runs
  // there and the sessions on the server's own threads). Errors:
  // kInvalidArgument for options the session or Endpoint config rejects,
  // or threads > 256.
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Server>> Create(
      asio::any_io_executor executor, ServerOptions options,
      SessionHandler on_session);
  // A server that owns its threads (options.threads; 0: one per hardware
  // thread) and runs its accept loop on the first. Destroying it stops its
  // threads (what is still open is dropped: async_shutdown first for a
  // graceful end), waits until they have left their handlers and frees
  // their io_contexts: release every Channel on_session gave you first
  // (its timer and socket belong to its shard's io_context; use a Channel
  // on its shard's thread, Channel::get_executor()).
  SYMWIRE_DECL static absl::StatusOr<std::shared_ptr<Server>> Create(
      ServerOptions options, SessionHandler on_session);
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

  // Handle
  // Registers `handler` for the tasks whose method (CallOptions::method,
  // SPEC.md §5.1, §13.5) is `method`, on every session of this server (all
  // shards). Routing of a received task:
  //   - no method: the Channel's task handler (Channel::SetTaskHandler, set
  //     in on_session), as before methods existed; without one, UNIMPLEMENTED
  //     "no task handler";
  //   - "symwire.health": answered by the server itself (SetServingStatus);
  //   - a method registered here: its handler, on the session's executor;
  //   - any other method: failed at once with kUnimplemented / UNIMPLEMENTED
  //     (retryable: it was not run), message "unknown method "<method>"";
  //     the Channel's task handler is not a fallback for methods.
  // REQUIRES: called before the server listens or accepts (ListenTcp,
  // ListenUnix, Accept); not thread-safe with serving. Errors:
  // kInvalidArgument / INVALID_FRAME for a bad name (1..255 bytes of
  // 0x21..0x7e), a name under the reserved prefix "symwire.", or an empty
  // handler; kAlreadyExists for a method registered twice; kFailedPrecondition
  // / WRONG_STATE once the server serves.
  SYMWIRE_DECL absl::Status Handle(absl::string_view method,
                                   const TaskHandler& handler);

  // SetServingStatus
  // What the built-in health method answers (SPEC.md §13.6): kServing (the
  // default), kNotServing (up, but send it no tasks: a load balancer takes
  // it out) or kDraining (announce a coming shutdown). Once async_shutdown
  // has started the answer is kDraining whatever was set. Any thread.
  SYMWIRE_DECL void SetServingStatus(HealthStatus status);
  // serving_status: what the health method answers now. Any thread.
  SYMWIRE_DECL HealthStatus serving_status() const;

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
  // Per-operation cancellation (as Channel::async_close): terminal and
  // partial end the wait at once with kCancelled "async_shutdown: operation
  // aborted by its cancellation slot"; the shutdown it started goes on
  // (still bounded by drain_timeout).
  template <class CompletionToken>
  auto async_shutdown(CompletionToken&& token);

  // Stop: closes listeners and aborts every session and connection now
  // (with threads: each shard on its own thread, posted). Call it on the
  // server's executor (get_executor(): the accept loop's, which owns the
  // listeners), like ListenTcp, or while that executor is not running;
  // from another thread, asio::post(server->get_executor(), ...) it.
  SYMWIRE_DECL void Stop();

  // counters: a snapshot (summed over the shards). Any thread.
  SYMWIRE_DECL ServerCounters counters() const;
  // Transports attached to this server's sessions (handshaking, live).
  // Any thread.
  SYMWIRE_DECL size_t connections() const;
  // Established sessions registered. Any thread.
  SYMWIRE_DECL size_t sessions() const;
  // The established session with this id, or nullptr. With threads: call
  // on the thread of the shard that owns it (its on_session, its handlers);
  // elsewhere returns nullptr.
  SYMWIRE_DECL std::shared_ptr<Channel> Find(const SessionId& id) const;
  // threads: the shards (1 when not sharded).
  SYMWIRE_DECL size_t threads() const;

 private:
  friend class Channel;
  friend struct detail::ServerPart;
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
  // One accepted socket, on this server's (shard's) thread.
  void ServeTcpSocket(asio::ip::tcp::socket socket, const Upgrade& upgrade);
  void ServeUnixSocket(asio::local::stream_protocol::socket socket);
  // Accept; `counted`: connections_accepted (and OnConnectionAccepted)
  // already counted it (a TLS connection, counted before its handshake).
  void AcceptTransport(std::shared_ptr<Transport> transport, std::string source,
                       bool counted);
  // Front of a sharded server: the shard that serves the next connection.
  const std::shared_ptr<Server>& NextShard() const;
  // Acts on what the Endpoint decided for handshaking connection `fresh`.
  void OnHandshakeOutcome(const std::shared_ptr<Channel>& fresh,
                          const ConnectionOutcome& outcome,
                          uint64_t rejected_before);
  // A resume for shard `shard`'s session arrived here: moves the
  // connection there (or answers CONNECTION_LOST when it cannot move).
  void HandOffResume(const std::shared_ptr<Channel>& fresh, uint32_t shard,
                     absl::Time now);
  // On the owning shard: a connection HandOffResume moved here.
  void AdoptResume(std::shared_ptr<Transport> transport,
                   std::shared_ptr<Session> fresh, std::string source);
  ServerOptions ShardOptions(uint32_t shard, uint32_t shards) const;
  // From Channel.
  void OnEstablished(const std::shared_ptr<Channel>& channel);
  // Evicts the idle disconnected session disconnected longest (of `source`
  // if not null); false if there is none.
  bool EvictIdle(const std::string* source);
  bool SourceBlocked(const std::string& source);
  void CountAuthFailure(const std::string& source);
  // Bytes of a handshaking connection: through the Endpoint, then acts on
  // its outcome (a new session, a resume moved to its Channel, a
  // rejection).
  void OnHandshakeData(const std::shared_ptr<Channel>& fresh,
                       absl::Span<const std::byte> bytes, absl::Time now);
  void OnChannelEnded(Channel* channel);
  void ForgetSessionsForShutdown();
  void OnConnectionCountChanged(int delta);
  void StartShutdown(detail::Completion<void(absl::Status)> done);
  void MaybeFinishShutdown();

  asio::any_io_executor executor_;
  ServerOptions options_;
  SessionHandler on_session_;
  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> tcp_acceptors_;
  std::vector<std::shared_ptr<asio::local::stream_protocol::acceptor>>
      unix_acceptors_;
  // Connections whose session is not established yet.
  absl::flat_hash_map<Channel*, std::shared_ptr<Channel>> pending_;
  // The sans-I/O registry (session/endpoint.hpp): it creates each
  // connection's session, routes resumes and bounds handshakes. registry_
  // maps its sessions to their Channels; the policies that need a Channel's
  // state (per-source limits, eviction of idle sessions, which must not
  // drop a user's unread responses) stay here, and a session the server
  // drops is removed from the Endpoint too.
  std::unique_ptr<Endpoint> endpoint_;
  absl::flat_hash_map<SessionId, std::shared_ptr<Channel>, SessionIdHash>
      registry_;
  size_t live_connections_ = 0;
  // Registered sessions per source (max_sessions_per_source).
  absl::flat_hash_map<std::string, size_t> sessions_per_source_;
  // Failed authentications per source (max_auth_failures_per_source):
  // the shards' shared table, or this server's own.
  std::unique_ptr<detail::AuthFailureTable> own_auth_failures_;
  detail::AuthFailureTable* auth_failures_ = nullptr;
  detail::ServerCounterCells counters_;
  std::atomic<size_t> registered_{0};  // registry_.size(), for any thread
  // Sharded ("Threads" above): the front (the server the user holds) owns
  // the set; each shard points to it and knows its index.
  std::shared_ptr<detail::ShardSet> owned_shards_;
  detail::ShardSet* shards_ = nullptr;
  uint32_t shard_index_ = 0;
  bool stopping_ = false;
  // Handlers by method and the health status (Handle); one table shared by
  // the front and its shards.
  std::shared_ptr<detail::MethodTable> methods_;
  std::unique_ptr<asio::steady_timer> drain_timer_;
  std::vector<detail::Completion<void(absl::Status)>> shutdown_waiters_;
};

// ---- template bodies ---------------------------------------------------

template <class CompletionToken>
auto Server::async_shutdown(CompletionToken&& token) {
  return detail::InitiateOn<absl::Status>(
      executor_,
      [self = shared_from_this()](auto done,
                                  const detail::OpCancelPtr& cancel) {
        self->StartShutdown(
            detail::CancellableWait(std::move(done), cancel,
                                    asio::cancellation_type::terminal |
                                        asio::cancellation_type::partial,
                                    "async_shutdown"));
      },
      std::forward<CompletionToken>(token));
}

}  // namespace symwire

// Channel after Server: Server only names Channel, and in header-only mode
// channel.hpp's bodies need Server complete.
#include "symwire/runtime/channel.hpp"  // IWYU pragma: export

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/runtime/impl/server.ipp"
#endif

#endif  // SYMWIRE_RUNTIME_SERVER_HPP_
