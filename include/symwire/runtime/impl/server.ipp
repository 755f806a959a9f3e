// File: symwire/runtime/impl/server.ipp
// Out-of-line bodies of runtime/server.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_SERVER_IPP_
#define SYMWIRE_RUNTIME_IMPL_SERVER_IPP_

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/detail/server_part.hpp"
#include "symwire/runtime/detail/task_state.hpp"
#include "symwire/runtime/server.hpp"

namespace symwire {

// ---- ServerPart --------------------------------------------------------

namespace detail {

SYMWIRE_DECL void ServerPart::Attached(Transport& transport,
                                       bool established_once) {
  disconnected_at = absl::InfiniteFuture();
  if (auto s = server.lock()) s->OnConnectionCountChanged(1);
  transport.LimitReadBuffer(established_once ? SIZE_MAX
                                             : Transport::kInitialReadBuffer);
}

SYMWIRE_DECL void ServerPart::Detached(absl::Time now) {
  disconnected_at = now;
  if (auto s = server.lock()) s->OnConnectionCountChanged(-1);
}

SYMWIRE_DECL absl::Status ServerPart::CountHandshakeBytes(size_t n) {
  handshake_bytes += n;
  if (handshake_bytes <= handshake_byte_limit) return absl::OkStatus();
  if (auto s = server.lock()) ++s->counters_.handshakes_oversized;
  return absl::ResourceExhaustedError(
      absl::StrCat("handshake: the peer sent ", handshake_bytes,
                   " bytes before the session was established "
                   "(max_handshake_bytes ",
                   handshake_byte_limit, ")"));
}

}  // namespace detail

// ---- Server ----------------------------------------------------------------

SYMWIRE_DECL size_t
Server::SessionIdHash::operator()(const SessionId& id) const {
  uint64_t h = 0;
  static_assert(sizeof(SessionId) >= sizeof(h));
  std::memcpy(&h, id.data(), sizeof(h));  // random bytes (SPEC.md §16.2)
  return static_cast<size_t>(h);
}

namespace detail {

// The Endpoint of a Server: its limits are the server's. max_sessions is a
// backstop one above the server's own (OnEstablished evicts or refuses
// first; a session it drops leaves the Endpoint too).
inline EndpointConfig ServerEndpointConfig(const ServerOptions& options,
                                           uint32_t shard = 0,
                                           uint32_t shards = 1) {
  EndpointConfig config;
  config.shard = shard;
  config.shards = shards;
  config.session = options.session;
  config.max_handshakes = options.max_handshaking_connections;
  config.max_handshake_bytes = options.max_handshake_bytes;
  config.max_sessions = options.max_sessions + 1;
  return config;
}

// MoveSocketTo: the same connection as a socket of `executor` (another
// shard's io_context); nullopt (and `socket` closed) when that fails.
template <class Socket>
std::optional<Socket> MoveSocketTo(Socket& socket,
                                   const asio::any_io_executor& executor) {
  boost::system::error_code ec;
  const auto protocol = socket.local_endpoint(ec).protocol();
  if (ec) return std::nullopt;
  const auto fd = socket.release(ec);
  if (ec) return std::nullopt;
  Socket moved(executor);
  moved.assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
    return std::nullopt;
  }
  return moved;
}

}  // namespace detail

SYMWIRE_DECL void detail::ServerCounterCells::AddTo(ServerCounters& c) const {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  c.connections_accepted += connections_accepted.load(kRelaxed);
  c.connections_refused += connections_refused.load(kRelaxed);
  c.handshakes_refused += handshakes_refused.load(kRelaxed);
  c.auth_refused += auth_refused.load(kRelaxed);
  c.sessions_established += sessions_established.load(kRelaxed);
  c.sessions_refused += sessions_refused.load(kRelaxed);
  c.sessions_refused_per_source += sessions_refused_per_source.load(kRelaxed);
  c.sessions_evicted += sessions_evicted.load(kRelaxed);
  c.resumes += resumes.load(kRelaxed);
  c.resumes_handed_off += resumes_handed_off.load(kRelaxed);
  c.resumes_rejected += resumes_rejected.load(kRelaxed);
  c.handshakes_failed += handshakes_failed.load(kRelaxed);
  c.handshakes_oversized += handshakes_oversized.load(kRelaxed);
  c.auth_failures += auth_failures.load(kRelaxed);
}

SYMWIRE_DECL Server::Server(Private, asio::any_io_executor executor,
                            ServerOptions options, SessionHandler on_session)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      on_session_(std::move(on_session)) {
  auto endpoint = Endpoint::Create(detail::ServerEndpointConfig(options_));
  SYMWIRE_REQUIRE(endpoint.ok());  // Create validated the options
  endpoint_ = std::move(*endpoint);
  own_auth_failures_ = std::make_unique<detail::AuthFailureTable>();
  auth_failures_ = own_auth_failures_.get();
  methods_ = std::make_shared<detail::MethodTable>();
}

SYMWIRE_DECL absl::Status Server::Handle(absl::string_view method,
                                         const TaskHandler& handler) {
  if (methods_->serving.load(std::memory_order_acquire)) {
    return MakeError(ErrorCode::kWrongState,
                     absl::StrCat("Handle(\"", absl::CHexEscape(method),
                                  "\"): register methods before the server "
                                  "listens or accepts"));
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
  if (methods_->handlers.contains(method)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "Handle(\"", method, "\"): a handler is already registered"));
  }
  methods_->handlers.emplace(std::string(method), handler);
  return absl::OkStatus();
}

SYMWIRE_DECL void Server::SetServingStatus(HealthStatus status) {
  methods_->status.store(status, std::memory_order_release);
}

SYMWIRE_DECL HealthStatus Server::serving_status() const {
  return methods_->Health();
}

SYMWIRE_DECL Server::~Server() {
  boost::system::error_code ignored;
  for (auto& a : tcp_acceptors_) a->close(ignored);
  for (auto& a : unix_acceptors_) a->close(ignored);
  if (!owned_shards_) return;
  // The front of a sharded server: stop the shards' threads and wait for
  // them (the last one out frees the set, shards before contexts).
  // From a shard's own thread (the last reference dropped in a handler),
  // that thread leaves run() once the handler returns.
  // Each thread holds the set too: joined, they have dropped it, and the
  // set (shards, then contexts) goes with this server. From a shard's
  // thread, that thread is detached and frees the set when it leaves.
  detail::ShardSet& set = *owned_shards_;
  for (auto& g : set.guards) g.reset();
  for (auto& c : set.contexts) c->stop();
  for (auto& t : set.threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();
    } else if (t.joinable()) {
      t.join();
    }
  }
}

SYMWIRE_DECL ServerOptions Server::ShardOptions(uint32_t shard,
                                                uint32_t shards) const {
  static_cast<void>(shard);
  // Limits split evenly (server.hpp, "Threads"); max_connections and the
  // failed-authentication table are shared instead.
  ServerOptions o = options_;
  const auto split = [shards](size_t limit) {
    return limit == 0 ? size_t{0} : std::max<size_t>(1, limit / shards);
  };
  o.max_handshaking_connections = split(o.max_handshaking_connections);
  o.max_sessions = split(o.max_sessions);
  o.max_sessions_per_source = split(o.max_sessions_per_source);
  o.threads = 1;
  return o;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Server>> Server::Create(
    asio::any_io_executor executor, ServerOptions options,
    SessionHandler on_session) {
  options.session.side = SessionSide::kAcceptor;
  if (!options.session.random) options.session.random = SystemRandom();
  if (absl::Status st = ValidateConfig(options.session); !st.ok()) return st;
  if (absl::Status st =
          ValidateEndpointConfig(detail::ServerEndpointConfig(options));
      !st.ok()) {
    return st;
  }
  if (options.threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ServerOptions.threads ", options.threads, " exceeds 256"));
  }
  const uint32_t threads = std::max<uint32_t>(1, options.threads);
  if (!executor) {
    // Create(options, handler): the server owns even one thread.
  } else if (threads == 1) {
    return std::make_shared<Server>(Private{}, std::move(executor),
                                    std::move(options), std::move(on_session));
  }
  // Sharded: a front (accept loops, the user's handle) and `threads`
  // shards, each with its own io_context and thread.
  auto set = std::make_shared<detail::ShardSet>();
  for (uint32_t i = 0; i < threads; ++i) {
    set->contexts.push_back(std::make_unique<asio::io_context>(1));
    set->guards.emplace_back(set->contexts.back()->get_executor());
  }
  asio::any_io_executor front_executor =
      executor ? std::move(executor)
               : asio::any_io_executor(set->contexts[0]->get_executor());
  auto front = std::make_shared<Server>(Private{}, std::move(front_executor),
                                        options, on_session);
  for (uint32_t i = 0; i < threads; ++i) {
    auto shard =
        std::make_shared<Server>(Private{}, set->contexts[i]->get_executor(),
                                 front->ShardOptions(i, threads), on_session);
    auto endpoint = Endpoint::Create(
        detail::ServerEndpointConfig(shard->options_, i, threads));
    SYMWIRE_REQUIRE(endpoint.ok());
    shard->endpoint_ = std::move(*endpoint);
    shard->shards_ = set.get();
    shard->shard_index_ = i;
    shard->auth_failures_ = &set->auth;
    shard->methods_ = front->methods_;
    set->shards.push_back(std::move(shard));
  }
  front->owned_shards_ = set;
  front->shards_ = set.get();
  front->auth_failures_ = &set->auth;
  for (uint32_t i = 0; i < threads; ++i) {
    set->threads.emplace_back([set, i]() mutable {
      set->contexts[i]->run();
      set.reset();  // before the thread counts as joined
    });
  }
  return front;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Server>> Server::Create(
    ServerOptions options, SessionHandler on_session) {
  if (options.threads == 0) {
    options.threads = std::max(1U, std::thread::hardware_concurrency());
    options.threads = std::min<uint32_t>(options.threads, 256);
  }
  return Create(asio::any_io_executor(), std::move(options),
                std::move(on_session));
}

SYMWIRE_DECL size_t Server::threads() const {
  return owned_shards_ ? owned_shards_->shards.size() : 1;
}

SYMWIRE_DECL ServerCounters Server::counters() const {
  ServerCounters c;
  counters_.AddTo(c);
  if (owned_shards_) {
    for (const auto& shard : owned_shards_->shards) shard->counters_.AddTo(c);
  }
  return c;
}

SYMWIRE_DECL size_t Server::connections() const {
  if (shards_ != nullptr) {
    return shards_->connections.load(std::memory_order_relaxed);
  }
  return live_connections_;
}

SYMWIRE_DECL size_t Server::sessions() const {
  if (!owned_shards_) return registered_.load(std::memory_order_relaxed);
  size_t n = 0;
  for (const auto& shard : owned_shards_->shards) {
    n += shard->registered_.load(std::memory_order_relaxed);
  }
  return n;
}

SYMWIRE_DECL void Server::OnConnectionCountChanged(int delta) {
  live_connections_ =
      static_cast<size_t>(static_cast<int64_t>(live_connections_) + delta);
  if (shards_ != nullptr) {
    if (delta > 0) {
      shards_->connections.fetch_add(static_cast<size_t>(delta));
    } else {
      shards_->connections.fetch_sub(static_cast<size_t>(-delta));
    }
  }
}

SYMWIRE_DECL const std::shared_ptr<Server>& Server::NextShard() const {
  return owned_shards_->shards[owned_shards_->Next()];
}

SYMWIRE_DECL absl::StatusOr<asio::ip::tcp::endpoint> Server::ListenTcp(
    const std::string& address, uint16_t port, Upgrade upgrade) {
  boost::system::error_code ec;
  const asio::ip::address addr = asio::ip::make_address(address, ec);
  if (ec) {
    return MakeError(absl::StatusCode::kInvalidArgument,
                     ErrorCode::kConnectionLost,
                     absl::StrCat("listen: bad address '", address, "'"));
  }
  const asio::ip::tcp::endpoint endpoint(addr, port);
  methods_->serving.store(true, std::memory_order_release);
  auto acceptor = std::make_shared<asio::ip::tcp::acceptor>(executor_);
  const std::string where = DescribeEndpoint(endpoint);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ToStatus(ec, absl::StrCat("listen on ", where));
  const asio::ip::tcp::endpoint bound = acceptor->local_endpoint(ec);
  if (ec) return ToStatus(ec, absl::StrCat("listen on ", where));
  tcp_acceptors_.push_back(acceptor);
  AcceptTcpLoop(acceptor, std::move(upgrade));
  return bound;
}

SYMWIRE_DECL absl::Status Server::ListenUnix(const std::string& path) {
  ::unlink(path.c_str());  // a stale socket file from an earlier run
  methods_->serving.store(true, std::memory_order_release);
  boost::system::error_code ec;
  auto acceptor =
      std::make_shared<asio::local::stream_protocol::acceptor>(executor_);
  const asio::local::stream_protocol::endpoint endpoint(path);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ToStatus(ec, absl::StrCat("listen on unix ", path));
  unix_acceptors_.push_back(acceptor);
  AcceptUnixLoop(acceptor);
  return absl::OkStatus();
}

SYMWIRE_DECL void Server::AcceptTcpLoop(
    const std::shared_ptr<asio::ip::tcp::acceptor>& acceptor, Upgrade upgrade) {
  acceptor->async_accept(
      [weak = weak_from_this(), acceptor, upgrade = std::move(upgrade)](
          const boost::system::error_code& ec,
          asio::ip::tcp::socket socket) mutable {
        auto self = weak.lock();
        if (!self || self->stopping_ || !acceptor->is_open()) return;
        if (!ec) {
          if (self->owned_shards_) {
            // Sharded: the socket moves to its shard, which serves it.
            const std::shared_ptr<Server>& shard = self->NextShard();
            if (auto moved = detail::MoveSocketTo(socket, shard->executor_)) {
              asio::post(shard->executor_,
                         [shard, upgrade, s = std::move(*moved)]() mutable {
                           shard->ServeTcpSocket(std::move(s), upgrade);
                         });
            }
          } else {
            self->ServeTcpSocket(std::move(socket), upgrade);
          }
          self->AcceptTcpLoop(acceptor, std::move(upgrade));
          return;
        }
        // Out of descriptors or a transient failure: retry shortly rather than
        // spin on an error the next accept returns at once.
        auto timer = std::make_shared<asio::steady_timer>(self->executor_);
        timer->expires_after(std::chrono::milliseconds(50));
        timer->async_wait([weak, acceptor, timer, upgrade = std::move(upgrade)](
                              const boost::system::error_code&) mutable {
          if (auto s = weak.lock())
            s->AcceptTcpLoop(acceptor, std::move(upgrade));
        });
      });
}

SYMWIRE_DECL void Server::ServeTcpSocket(asio::ip::tcp::socket socket,
                                         const Upgrade& upgrade) {
  if (stopping_) return;
  boost::system::error_code rec;
  const asio::ip::tcp::endpoint remote = socket.remote_endpoint(rec);
  std::string source = rec ? std::string("tcp") : remote.address().to_string();
  if (!rec && SourceBlocked(source)) {
    // Failed authentications (max_auth_failures_per_source): refused
    // before any TLS or symwire work is spent on it.
    ++counters_.connections_refused;
    ++counters_.auth_refused;
  } else if (!rec && ApplyTcpOptions(socket, options_.tcp).ok()) {
    if (upgrade) {
      // Accepted now, before the upgrade (TLS) handshake, which may fail:
      // connections_accepted counts it either way (issue #14).
      ++counters_.connections_accepted;
      std::string peer = DescribeEndpoint(remote);
      if (options_.observer) {
        options_.observer->OnConnectionAccepted(ConnectionInfo{peer, source});
      }
      upgrade(std::move(socket),
              [weak = weak_from_this(), source = std::move(source),
               peer = std::move(peer)](DialResult r) mutable {
                auto s = weak.lock();
                if (!s) return;
                if (!r.ok()) {
                  ++s->counters_.handshakes_failed;
                  if (s->options_.observer) {
                    s->options_.observer->OnHandshakeFailed(
                        ConnectionInfo{peer, source}, r.status());
                  }
                  return;
                }
                s->AcceptTransport(std::move(*r), std::move(source), true);
              });
    } else {
      Accept(MakeTransport(std::move(socket), DescribeEndpoint(remote),
                           options_.transport),
             std::move(source));
    }
  }
}

SYMWIRE_DECL void Server::ServeUnixSocket(
    asio::local::stream_protocol::socket socket) {
  if (stopping_) return;
  // As for TCP (ApplyTcpOptions): a socket that refuses its options is
  // dropped.
  if (!ApplyUnixOptions(socket, options_.transport).ok()) return;
  // The source of a Unix-domain peer is its uid (SO_PEERCRED).
  std::string source = "unix";
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred,
                   &len) == 0) {
    source = absl::StrCat("uid:", cred.uid);
  }
  Accept(
      MakeTransport(std::move(socket), "unix (accepted)", options_.transport),
      std::move(source));
}

SYMWIRE_DECL void Server::AcceptUnixLoop(
    const std::shared_ptr<asio::local::stream_protocol::acceptor>& acceptor) {
  acceptor->async_accept([weak = weak_from_this(), acceptor](
                             const boost::system::error_code& ec,
                             asio::local::stream_protocol::socket socket) {
    auto self = weak.lock();
    if (!self || self->stopping_ || !acceptor->is_open()) return;
    if (!ec) {
      if (self->owned_shards_) {
        const std::shared_ptr<Server>& shard = self->NextShard();
        if (auto moved = detail::MoveSocketTo(socket, shard->executor_)) {
          asio::post(shard->executor_,
                     [shard, s = std::move(*moved)]() mutable {
                       shard->ServeUnixSocket(std::move(s));
                     });
        }
      } else {
        self->ServeUnixSocket(std::move(socket));
      }
      self->AcceptUnixLoop(acceptor);
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(self->executor_);
    timer->expires_after(std::chrono::milliseconds(50));
    timer->async_wait(
        [weak, acceptor, timer](const boost::system::error_code&) {
          if (auto s = weak.lock()) s->AcceptUnixLoop(acceptor);
        });
  });
}

SYMWIRE_DECL void Server::Accept(std::shared_ptr<Transport> transport) {
  Accept(std::move(transport), "accepted");
}

SYMWIRE_DECL void Server::Accept(std::shared_ptr<Transport> transport,
                                 std::string source) {
  methods_->serving.store(true, std::memory_order_release);
  AcceptTransport(std::move(transport), std::move(source), false);
}

SYMWIRE_DECL void Server::AcceptTransport(std::shared_ptr<Transport> transport,
                                          std::string source, bool counted) {
  if (stopping_) {
    transport->Close();
    return;
  }
  if (owned_shards_) {
    // Sharded: the transport moves to its shard's thread (plain sockets
    // only; Transport::MoveTo).
    const std::shared_ptr<Server>& shard = NextShard();
    absl::StatusOr<std::shared_ptr<Transport>> moved =
        transport->MoveTo(shard->executor_);
    if (!moved.ok()) {
      ++counters_.connections_refused;
      transport->Close(moved.status());
      return;
    }
    asio::post(
        shard->executor_, [shard, t = std::move(*moved),
                           source = std::move(source), counted]() mutable {
          shard->AcceptTransport(std::move(t), std::move(source), counted);
        });
    return;
  }
  if (connections() >= options_.max_connections) {
    ++counters_.connections_refused;
    transport->Close();
    return;
  }
  if (pending_.size() >= options_.max_handshaking_connections ||
      endpoint_->handshakes() >= options_.max_handshaking_connections) {
    // ServerOptions, "Memory before authentication".
    ++counters_.connections_refused;
    ++counters_.handshakes_refused;
    transport->Close();
    return;
  }
  if (SourceBlocked(source)) {
    ++counters_.connections_refused;
    ++counters_.auth_refused;
    transport->Close();
    return;
  }
  if (!counted) {
    ++counters_.connections_accepted;
    if (options_.observer) {
      options_.observer->OnConnectionAccepted(
          ConnectionInfo{transport->description(), source});
    }
  }
  // The Endpoint creates the connection's session (TransportConnected
  // already: its preface is queued).
  absl::StatusOr<Accepted> accepted = endpoint_->Accept(SteadyNow());
  if (!accepted.ok()) {
    transport->Close(accepted.status());
    return;
  }
  auto p = std::make_shared<Channel>(Channel::Private{}, executor_,
                                     std::move(accepted->session), options_);
  auto part = std::make_unique<detail::ServerPart>();
  part->server = weak_from_this();
  part->methods = methods_;
  part->source = std::move(source);
  part->handshake_byte_limit = options_.max_handshake_bytes;
  part->handshake = accepted->connection;
  p->server_ = std::move(part);
  pending_[p.get()] = p;
  p->Attach(std::move(transport), true);
  p->AfterInput();
}

SYMWIRE_DECL void Server::OnEstablished(
    const std::shared_ptr<Channel>& channel) {
  pending_.erase(channel.get());
  const auto refuse = [&](const std::string& why) {
    ++counters_.sessions_refused;
    // No symwire detail code fits; the peer sees RESOURCE_EXHAUSTED.
    channel->session_->Abort(absl::ResourceExhaustedError(why), channel->Now());
    static_cast<void>(endpoint_->Remove(channel->session_->session_id()));
  };
  if (options_.max_sessions_per_source > 0) {
    auto it = sessions_per_source_.find(channel->server_->source);
    if (it != sessions_per_source_.end() &&
        it->second >= options_.max_sessions_per_source &&
        !EvictIdle(&channel->server_->source)) {
      ++counters_.sessions_refused_per_source;
      refuse(absl::StrCat("source ", channel->server_->source, " holds ",
                          it->second, " sessions (max_sessions_per_source ",
                          options_.max_sessions_per_source, ")"));
      return;
    }
  }
  if (registry_.size() >= options_.max_sessions && !EvictIdle(nullptr)) {
    refuse(absl::StrCat("server holds ", registry_.size(),
                        " sessions, none idle (max_sessions ",
                        options_.max_sessions, ")"));
    return;
  }
  ++counters_.sessions_established;
  channel->server_->registered = true;
  registry_[channel->session_->session_id()] = channel;
  registered_.store(registry_.size(), std::memory_order_relaxed);
  ++sessions_per_source_[channel->server_->source];
  if (channel->driver_.transport())
    channel->driver_.transport()->LimitReadBuffer(SIZE_MAX);
  if (on_session_) on_session_(channel);
}

SYMWIRE_DECL bool Server::EvictIdle(const std::string* source) {
  // A linear scan, only when the registry (or a source) is full: cheap next
  // to the handshake that asks for it.
  std::shared_ptr<Channel> victim;
  for (const auto& [id, p] : registry_) {
    if (p->driver_.transport() || p->ended_ || p->driver_.dispatching())
      continue;
    if (source != nullptr && p->server_->source != *source) continue;
    const Session& s = *p->session_;
    if (s.state() != SessionState::kDisconnected || s.open_tasks() != 0 ||
        s.replay_frames_in_use() != 0 || !p->calls_.empty() ||
        !p->incoming_.empty()) {
      continue;
    }
    if (!victim ||
        p->server_->disconnected_at < victim->server_->disconnected_at)
      victim = p;
  }
  if (!victim) return false;
  ++counters_.sessions_evicted;
  victim->Abort(MakeError(
      ErrorCode::kSessionExpired,
      absl::StrCat("session evicted while disconnected with nothing to "
                   "resume: the server's registry is full",
                   source != nullptr ? absl::StrCat(" for source ", *source)
                                     : std::string())));
  // Abort ended it (SessionEnded -> OnChannelEnded unregisters it).
  SYMWIRE_ASSERT(!victim->server_->registered);
  return true;
}

SYMWIRE_DECL bool Server::SourceBlocked(const std::string& source) {
  return auth_failures_->Blocked(source, options_.max_auth_failures_per_source);
}

SYMWIRE_DECL void Server::CountAuthFailure(const std::string& source) {
  ++counters_.auth_failures;
  auth_failures_->Count(source, options_.max_auth_failures_per_source,
                        options_.auth_failure_window, options_.auth_block_time);
}

SYMWIRE_DECL void Server::OnHandshakeData(const std::shared_ptr<Channel>& fresh,
                                          absl::Span<const std::byte> bytes,
                                          absl::Time now) {
  const uint64_t rejected_before = endpoint_->counters().resumes_rejected;
  const ConnectionOutcome outcome =
      endpoint_->Receive(fresh->server_->handshake, bytes, now);
  if (const auto* elsewhere = std::get_if<ResumeElsewhere>(&outcome)) {
    HandOffResume(fresh, elsewhere->shard, now);
    return;
  }
  OnHandshakeOutcome(fresh, outcome, rejected_before);
}

SYMWIRE_DECL void Server::OnHandshakeOutcome(
    const std::shared_ptr<Channel>& fresh, const ConnectionOutcome& outcome,
    uint64_t rejected_before) {
  if (!std::holds_alternative<HandshakeRunning>(outcome))
    fresh->server_->handshake = 0;
  const auto* resumed = std::get_if<SessionResumed>(&outcome);
  if (resumed == nullptr) {
    // Running, a new session (OnEstablished registers it when the
    // Channel delivers Established) or a rejection (answered on `fresh`, which
    // then ends: OnChannelEnded).
    if (endpoint_->counters().resumes_rejected != rejected_before) {
      ++counters_.resumes_rejected;
    }
    fresh->AfterInput();
    return;
  }
  // The Endpoint moved the connection to a session it has registered; the
  // Channel of that session takes the transport over.
  auto it = registry_.find(resumed->session->session_id());
  if (it == registry_.end() || it->second->session_ != resumed->session) {
    // Every session the Endpoint holds is registered here (OnEstablished,
    // OnChannelEnded and the refusals keep the two in step).
    SYMWIRE_ASSERT(false);
    fresh->AfterInput();
    return;
  }
  const std::shared_ptr<Channel> existing = it->second;
  ++counters_.resumes;
  // Whatever `fresh` still has goes out first, on its connection.
  fresh->DrainTransmit();
  std::shared_ptr<Transport> t = fresh->driver_.transport();
  fresh->Detach();
  if (existing->driver_.transport()) {
    // A half-open connection the new one supersedes (the session already
    // reported ConnectionLost for it).
    std::shared_ptr<Transport> old = existing->driver_.transport();
    existing->Detach();
    old->Close(MakeError(ErrorCode::kConnectionLost,
                         "superseded by a resumed connection"));
  }
  if (t) {
    existing->Attach(std::move(t), false);
    // WELCOME first, flushed alone, then the replay in small writes.
    existing->BeginReplay(true);
  }
  existing->AfterInput();
  fresh->AfterInput();
}

SYMWIRE_DECL void Server::HandOffResume(const std::shared_ptr<Channel>& fresh,
                                        uint32_t shard, absl::Time now) {
  SYMWIRE_ASSERT(shards_ != nullptr && shard < shards_->shards.size() &&
                 shard != shard_index_);
  const std::shared_ptr<Server> owner = shards_->shards[shard];
  fresh->DrainTransmit();
  absl::StatusOr<std::shared_ptr<Transport>> moved =
      fresh->driver_.transport()
          ? fresh->driver_.transport()->MoveTo(owner->executor_)
          : absl::StatusOr<std::shared_ptr<Transport>>(
                absl::UnavailableError("no connection"));
  if (!moved.ok()) {
    // A stream that cannot move (TLS): a connection-scope answer, so the
    // initiator redials and resumes again (SPEC.md §16.1) on some other
    // connection, which may land on the owner. The session is untouched.
    fresh->session_->Abort(
        MakeError(ErrorCode::kConnectionLost,
                  absl::StrCat("resume arrived on shard ", shard_index_,
                               " of a session of shard ", shard,
                               " and cannot move there (",
                               moved.status().message(), "): redial")),
        now);
    const uint64_t rejected_before = endpoint_->counters().resumes_rejected;
    OnHandshakeOutcome(fresh, endpoint_->Route(fresh->server_->handshake, now),
                       rejected_before);
    return;
  }
  ++counters_.resumes_handed_off;
  std::shared_ptr<Session> session =
      endpoint_->HandOff(fresh->server_->handshake);
  fresh->server_->handshake = 0;
  std::string source = fresh->server_->source;
  // Retire `fresh` here without touching the session again: it now belongs
  // to the owner's thread. Its transport is closed (moved) and detached;
  // nothing of it reaches the session any more (no timer, no sink).
  fresh->Detach();
  pending_.erase(fresh.get());
  fresh->ended_ = true;
  fresh->driver_.CancelTimer();
  fresh->session_.reset();
  asio::post(owner->executor_, [owner, t = std::move(*moved),
                                session = std::move(session),
                                source = std::move(source)]() mutable {
    owner->AdoptResume(std::move(t), std::move(session), std::move(source));
  });
}

SYMWIRE_DECL void Server::AdoptResume(std::shared_ptr<Transport> transport,
                                      std::shared_ptr<Session> fresh,
                                      std::string source) {
  if (stopping_) {
    // A stopping server takes no resume (ForgetSessionsForShutdown).
    transport->Close();
    return;
  }
  auto p =
      std::make_shared<Channel>(Channel::Private{}, executor_, fresh, options_);
  auto part = std::make_unique<detail::ServerPart>();
  part->server = weak_from_this();
  part->methods = methods_;
  part->source = std::move(source);
  part->handshake_byte_limit = options_.max_handshake_bytes;
  p->server_ = std::move(part);
  pending_[p.get()] = p;
  p->Attach(std::move(transport), true);
  const uint64_t rejected_before = endpoint_->counters().resumes_rejected;
  const ConnectionOutcome outcome =
      endpoint_->Adopt(std::move(fresh), p->Now(Channel::Reading::kFresh));
  OnHandshakeOutcome(p, outcome, rejected_before);
}

SYMWIRE_DECL void Server::ForgetSessionsForShutdown() {
  // A server that shuts down takes no resume: the Endpoint forgets its
  // sessions, so a resume is rejected (SESSION_EXPIRED) like one of an
  // unknown session.
  for (const auto& [id, channel] : registry_) {
    static_cast<void>(endpoint_->Remove(id));
  }
}

SYMWIRE_DECL void Server::OnChannelEnded(Channel* channel) {
  // The channel stays alive until its own call stack unwinds (it holds a
  // reference in AfterInput). A connection that ends failed before its
  // session was established is a failed handshake (bad bytes, timeout,
  // authentication, a rejected resume); a resumed one ends kClosed.
  if (channel->server_->handshake != 0) {
    // Ended before the Endpoint decided (timeout, transport lost, abort).
    endpoint_->Release(channel->server_->handshake);
    channel->server_->handshake = 0;
  }
  if (pending_.erase(channel) > 0 && !stopping_ &&
      channel->session_->state() == SessionState::kFailed) {
    ++counters_.handshakes_failed;
    if (options_.observer) {
      options_.observer->OnHandshakeFailed(
          ConnectionInfo{channel->observed_peer_, channel->server_->source},
          channel->session_->status());
    }
    if (GetErrorCode(channel->session_->status()) ==
        ErrorCode::kUnauthenticated) {
      CountAuthFailure(channel->server_->source);
    }
  }
  if (channel->server_->registered) {
    channel->server_->registered = false;
    auto it = registry_.find(channel->session_->session_id());
    if (it != registry_.end() && it->second.get() == channel) {
      registry_.erase(it);
      registered_.store(registry_.size(), std::memory_order_relaxed);
      if (endpoint_->Find(channel->session_->session_id()) ==
          channel->session_) {
        static_cast<void>(endpoint_->Remove(channel->session_->session_id()));
      }
      auto src = sessions_per_source_.find(channel->server_->source);
      if (src != sessions_per_source_.end() && --src->second == 0) {
        sessions_per_source_.erase(src);
      }
    }
  }
  MaybeFinishShutdown();
}

SYMWIRE_DECL std::shared_ptr<Channel> Server::Find(const SessionId& id) const {
  if (owned_shards_) {
    const auto shard = std::to_integer<size_t>(id.back());
    if (shard >= owned_shards_->shards.size() || !owned_shards_->contexts[shard]
                                                      ->get_executor()
                                                      .running_in_this_thread())
      return nullptr;
    return owned_shards_->shards[shard]->Find(id);
  }
  auto it = registry_.find(id);
  return it == registry_.end() ? nullptr : it->second;
}

SYMWIRE_DECL void Server::Stop() {
  if (owned_shards_) {
    stopping_ = true;
    boost::system::error_code ignored;
    for (auto& a : tcp_acceptors_) a->close(ignored);
    for (auto& a : unix_acceptors_) a->close(ignored);
    for (const auto& shard : owned_shards_->shards) {
      asio::post(shard->executor_, [shard] { shard->Stop(); });
    }
    return;
  }
  stopping_ = true;
  ForgetSessionsForShutdown();
  boost::system::error_code ignored;
  for (auto& a : tcp_acceptors_) a->close(ignored);
  for (auto& a : unix_acceptors_) a->close(ignored);
  std::vector<std::shared_ptr<Channel>> all;
  for (const auto& [p, channel] : pending_) all.push_back(channel);
  for (const auto& [id, channel] : registry_) all.push_back(channel);
  // Plain UNAVAILABLE (no symwire detail code fits): retry elsewhere.
  const absl::Status why = absl::UnavailableError("server stopped");
  for (const auto& channel : all) {
    if (!channel->ended_) channel->Abort(why);
  }
  MaybeFinishShutdown();
}

SYMWIRE_DECL void Server::StartShutdown(
    detail::Completion<void(absl::Status)> done) {
  // The health method answers DRAINING from now on (SPEC.md §13.6).
  methods_->shutting_down.store(true, std::memory_order_release);
  if (owned_shards_) {
    // Every shard drains on its own thread; done when the last one is.
    stopping_ = true;
    boost::system::error_code ignored;
    for (auto& a : tcp_acceptors_) a->close(ignored);
    for (auto& a : unix_acceptors_) a->close(ignored);
    struct Join {
      std::atomic<size_t> remaining;
      detail::Completion<void(absl::Status)> done;
    };
    auto join = std::make_shared<Join>();
    join->remaining = owned_shards_->shards.size();
    join->done = std::move(done);
    for (const auto& shard : owned_shards_->shards) {
      asio::post(shard->executor_, [shard, join, front = executor_] {
        shard->StartShutdown([join, front](const absl::Status&) {
          // Completed on the front's executor, where a cancellation of the
          // wait (async_shutdown's slot) runs too.
          if (join->remaining.fetch_sub(1) == 1) {
            asio::post(front, [join] { join->done(absl::OkStatus()); });
          }
        });
      });
    }
    return;
  }
  shutdown_waiters_.push_back(std::move(done));
  if (stopping_) {
    MaybeFinishShutdown();
    return;
  }
  ForgetSessionsForShutdown();
  stopping_ = true;
  boost::system::error_code ignored;
  for (auto& a : tcp_acceptors_) a->close(ignored);
  for (auto& a : unix_acceptors_) a->close(ignored);
  std::vector<std::shared_ptr<Channel>> handshaking;
  for (const auto& [p, channel] : pending_) handshaking.push_back(channel);
  for (const auto& channel : handshaking) {
    channel->Abort(absl::UnavailableError("server shutting down"));
  }
  std::vector<std::shared_ptr<Channel>> live;
  for (const auto& [id, channel] : registry_) live.push_back(channel);
  for (const auto& channel : live) static_cast<void>(channel->Close());
  drain_timer_ = std::make_unique<asio::steady_timer>(executor_);
  drain_timer_->expires_after(options_.drain_timeout);
  drain_timer_->async_wait(
      [weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec) return;
        self->Stop();  // whatever did not drain in time
      });
  MaybeFinishShutdown();
}

SYMWIRE_DECL void Server::MaybeFinishShutdown() {
  if (!stopping_ || !pending_.empty() || !registry_.empty()) return;
  if (drain_timer_) drain_timer_->cancel();
  auto waiters = std::move(shutdown_waiters_);
  shutdown_waiters_.clear();
  for (auto& w : waiters) w(absl::OkStatus());
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_SERVER_IPP_
