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
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
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
inline EndpointConfig ServerEndpointConfig(const ServerOptions& options) {
  EndpointConfig config;
  config.session = options.session;
  config.max_handshakes = options.max_handshaking_connections;
  config.max_handshake_bytes = options.max_handshake_bytes;
  config.max_sessions = options.max_sessions + 1;
  return config;
}

}  // namespace detail

SYMWIRE_DECL Server::Server(Private, asio::any_io_executor executor,
                            ServerOptions options, SessionHandler on_session)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      on_session_(std::move(on_session)) {
  auto endpoint = Endpoint::Create(detail::ServerEndpointConfig(options_));
  SYMWIRE_REQUIRE(endpoint.ok());  // Create validated the options
  endpoint_ = std::move(*endpoint);
}

SYMWIRE_DECL Server::~Server() {
  boost::system::error_code ignored;
  for (auto& a : tcp_acceptors_) a->close(ignored);
  for (auto& a : unix_acceptors_) a->close(ignored);
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
  return std::make_shared<Server>(Private{}, std::move(executor),
                                  std::move(options), std::move(on_session));
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
          boost::system::error_code rec;
          const asio::ip::tcp::endpoint remote = socket.remote_endpoint(rec);
          std::string source =
              rec ? std::string("tcp") : remote.address().to_string();
          if (!rec && self->SourceBlocked(source)) {
            // Failed authentications (max_auth_failures_per_source):
            // refused before any TLS or symwire work is spent on it.
            ++self->counters_.connections_refused;
            ++self->counters_.auth_refused;
          } else if (!rec && ApplyTcpOptions(socket, self->options_.tcp).ok()) {
            if (upgrade) {
              upgrade(std::move(socket),
                      [weak, source = std::move(source)](DialResult r) mutable {
                        auto s = weak.lock();
                        if (!s) return;
                        if (!r.ok()) {
                          ++s->counters_.handshakes_failed;
                          return;
                        }
                        s->Accept(std::move(*r), std::move(source));
                      });
            } else {
              self->Accept(
                  MakeTransport(std::move(socket), DescribeEndpoint(remote),
                                self->options_.transport),
                  std::move(source));
            }
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

SYMWIRE_DECL void Server::AcceptUnixLoop(
    const std::shared_ptr<asio::local::stream_protocol::acceptor>& acceptor) {
  acceptor->async_accept([weak = weak_from_this(), acceptor](
                             const boost::system::error_code& ec,
                             asio::local::stream_protocol::socket socket) {
    auto self = weak.lock();
    if (!self || self->stopping_ || !acceptor->is_open()) return;
    if (!ec) {
      // The source of a Unix-domain peer is its uid (SO_PEERCRED).
      std::string source = "unix";
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred,
                       &len) == 0) {
        source = absl::StrCat("uid:", cred.uid);
      }
      self->Accept(MakeTransport(std::move(socket), "unix (accepted)",
                                 self->options_.transport),
                   std::move(source));
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
  if (stopping_) {
    transport->Close();
    return;
  }
  if (live_connections_ >= options_.max_connections) {
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
  ++counters_.connections_accepted;
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
  ++sessions_per_source_[channel->server_->source];
  if (channel->transport_) channel->transport_->LimitReadBuffer(SIZE_MAX);
  if (on_session_) on_session_(channel);
}

SYMWIRE_DECL bool Server::EvictIdle(const std::string* source) {
  // A linear scan, only when the registry (or a source) is full: cheap next
  // to the handshake that asks for it.
  std::shared_ptr<Channel> victim;
  for (const auto& [id, p] : registry_) {
    if (p->transport_ || p->ended_ || p->dispatching_) continue;
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
  if (options_.max_auth_failures_per_source == 0) return false;
  auto it = auth_failures_.find(source);
  if (it == auth_failures_.end()) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now < it->second.blocked_until) return true;
  if (it->second.count >= options_.max_auth_failures_per_source) {
    auth_failures_.erase(it);  // the block is over: a fresh window
  }
  return false;
}

SYMWIRE_DECL void Server::CountAuthFailure(const std::string& source) {
  ++counters_.auth_failures;
  if (options_.max_auth_failures_per_source == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (auth_failures_.size() >= auth_sweep_at_) {
    // Bounded memory against many sources: forget the stale ones.
    absl::erase_if(auth_failures_, [&](const auto& e) {
      return now >= e.second.blocked_until &&
             now - e.second.window_start >= options_.auth_failure_window;
    });
    auth_sweep_at_ = std::max<size_t>(1024, 2 * auth_failures_.size());
  }
  AuthFailures& f = auth_failures_[source];
  if (f.count == 0 || now - f.window_start >= options_.auth_failure_window) {
    f.window_start = now;
    f.count = 0;
  }
  if (++f.count >= options_.max_auth_failures_per_source) {
    f.blocked_until = now + options_.auth_block_time;
  }
}

SYMWIRE_DECL void Server::OnHandshakeData(const std::shared_ptr<Channel>& fresh,
                                          absl::Span<const std::byte> bytes,
                                          absl::Time now) {
  const uint64_t rejected_before = endpoint_->counters().resumes_rejected;
  const ConnectionOutcome outcome =
      endpoint_->Receive(fresh->server_->handshake, bytes, now);
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
  std::shared_ptr<Transport> t = fresh->transport_;
  fresh->Detach();
  if (existing->transport_) {
    // A half-open connection the new one supersedes (the session already
    // reported ConnectionLost for it).
    std::shared_ptr<Transport> old = existing->transport_;
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
  auto it = registry_.find(id);
  return it == registry_.end() ? nullptr : it->second;
}

SYMWIRE_DECL void Server::Stop() {
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
