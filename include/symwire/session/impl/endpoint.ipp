// File: symwire/session/impl/endpoint.ipp
// Out-of-line bodies for session/endpoint.hpp.
#ifndef SYMWIRE_SESSION_IMPL_ENDPOINT_IPP_
#define SYMWIRE_SESSION_IMPL_ENDPOINT_IPP_

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "symwire/session/endpoint.hpp"

namespace symwire {
namespace detail {

inline bool SessionEnded(const Session& s) {
  return s.state() == SessionState::kClosed ||
         s.state() == SessionState::kFailed;
}

}  // namespace detail

SYMWIRE_DECL absl::Status ValidateEndpointConfig(const EndpointConfig& config) {
  if (config.session.side != SessionSide::kAcceptor) {
    return absl::InvalidArgumentError(
        "EndpointConfig.session.side must be kAcceptor");
  }
  if (config.max_handshakes == 0) {
    return absl::InvalidArgumentError("EndpointConfig.max_handshakes is 0");
  }
  if (config.max_handshake_bytes == 0) {
    return absl::InvalidArgumentError(
        "EndpointConfig.max_handshake_bytes is 0");
  }
  if (config.max_sessions == 0) {
    return absl::InvalidArgumentError("EndpointConfig.max_sessions is 0");
  }
  if (config.shards == 0 || config.shards > 256 ||
      config.shard >= config.shards) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EndpointConfig.shard ", config.shard, " of shards ", config.shards,
        " (needs 1 <= shards <= 256, shard < "
        "shards)"));
  }
  return ValidateConfig(config.session);
}

SYMWIRE_DECL absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Create(
    EndpointConfig config) {
  if (absl::Status s = ValidateEndpointConfig(config); !s.ok()) return s;
  return std::unique_ptr<Endpoint>(new Endpoint(std::move(config)));
}

SYMWIRE_DECL Endpoint::Endpoint(EndpointConfig config)
    : config_(std::move(config)) {
  if (config_.shards > 1) {
    config_.session.session_id_tag = static_cast<uint8_t>(config_.shard);
  }
}

SYMWIRE_DECL Endpoint::~Endpoint() = default;

SYMWIRE_DECL absl::StatusOr<Accepted> Endpoint::Accept(absl::Time now) {
  if (handshakes_.size() >= config_.max_handshakes) {
    ++counters_.accepts_refused;
    return absl::ResourceExhaustedError(
        absl::StrCat("endpoint has ", handshakes_.size(),
                     " handshaking connections (max_handshakes ",
                     config_.max_handshakes, ")"));
  }
  auto created = Session::Create(config_.session, now);
  if (!created.ok()) return created.status();
  std::shared_ptr<Session> session(std::move(*created));
  // A new acceptor session always takes its first connection.
  const absl::Status connected = session->TransportConnected(now);
  SYMWIRE_ASSERT(connected.ok());
  static_cast<void>(connected);
  const ConnectionHandle c = next_handle_++;
  handshakes_[c] = Handshake{session, ++tick_, 0};
  ++counters_.accepted;
  return Accepted{c, std::move(session)};
}

SYMWIRE_DECL ConnectionOutcome Endpoint::Receive(
    ConnectionHandle c, absl::Span<const std::byte> bytes, absl::Time now) {
  auto it = handshakes_.find(c);
  SYMWIRE_REQUIRE(it != handshakes_.end());
  Handshake& h = it->second;
  h.bytes += bytes.size();
  if (h.bytes > config_.max_handshake_bytes) {
    // Bounded memory before authentication: the bytes are not even fed.
    // No symwire detail code fits; the peer sees RESOURCE_EXHAUSTED.
    absl::Status s = absl::ResourceExhaustedError(
        absl::StrCat("handshake sent ", h.bytes, " bytes (max_handshake_bytes ",
                     config_.max_handshake_bytes, ")"));
    h.session->Abort(s, now);
    ++counters_.handshakes_failed;
    return Reject(c, std::move(s));
  }
  static_cast<void>(h.session->Receive(bytes, now));
  return Route(c, now);
}

SYMWIRE_DECL ConnectionOutcome Endpoint::Route(ConnectionHandle c,
                                               absl::Time now) {
  auto it = handshakes_.find(c);
  SYMWIRE_REQUIRE(it != handshakes_.end());
  Handshake& h = it->second;
  Session& s = *h.session;
  if (detail::SessionEnded(s)) {
    ++counters_.handshakes_failed;
    absl::Status st = s.status();
    if (st.ok())
      st = MakeError(ErrorCode::kConnectionLost,
                     "connection ended during its handshake");
    return Reject(c, std::move(st));
  }
  if (const SessionId* id = detail::SessionHandover::ResumeTarget(s)) {
    const SessionId target = *id;
    // Sharded: the id's last byte names its shard (EndpointConfig). An
    // index past the last shard is no shard's: unknown, answered here.
    const auto owner = std::to_integer<uint32_t>(target.back());
    if (config_.shards > 1 && owner != config_.shard &&
        owner < config_.shards) {
      return ResumeElsewhere{owner};
    }
    return Resume(c, h, target, now);
  }
  if (s.state() == SessionState::kEstablished) return Start(c, h, now);
  return HandshakeRunning{};
}

SYMWIRE_DECL ConnectionOutcome Endpoint::Start(ConnectionHandle c, Handshake& h,
                                               absl::Time now) {
  if (sessions_.size() >= config_.max_sessions) DropEnded();
  if (sessions_.size() >= config_.max_sessions) {
    ++counters_.sessions_refused;
    // No symwire detail code fits; the peer sees RESOURCE_EXHAUSTED.
    absl::Status st = absl::ResourceExhaustedError(
        absl::StrCat("endpoint holds ", sessions_.size(),
                     " sessions (max_sessions ", config_.max_sessions, ")"));
    h.session->Abort(st, now);
    return Reject(c, std::move(st));
  }
  std::shared_ptr<Session> session = std::move(h.session);
  handshakes_.erase(c);
  // Session ids are drawn from the injected random source (16 bytes): a
  // collision means the source repeats itself, a caller's bug.
  const bool inserted =
      sessions_.emplace(session->session_id(), Registered{session, ++tick_})
          .second;
  SYMWIRE_ASSERT(inserted);
  static_cast<void>(inserted);
  ++counters_.sessions_started;
  return SessionStarted{std::move(session)};
}

SYMWIRE_DECL ConnectionOutcome Endpoint::Resume(ConnectionHandle c,
                                                Handshake& h,
                                                const SessionId& id,
                                                absl::Time now) {
  Session& fresh = *h.session;
  auto it = sessions_.find(id);
  if (it != sessions_.end() && detail::SessionEnded(*it->second.session)) {
    sessions_.erase(it);
    it = sessions_.end();
  }
  if (it == sessions_.end()) {
    // Unknown: the same work and answer as a wrong proof (§16.2).
    ++counters_.resumes_rejected;
    detail::SessionHandover::RejectUnknown(fresh, now);
    return Reject(c, fresh.status());
  }
  Registered& r = it->second;
  // A session in kEstablished has a connection (the acceptor's is never
  // handshaking): this resume supersedes it if it was accepted after that
  // connection became the session's, and lost a race otherwise.
  const bool had_connection = r.session->state() == SessionState::kEstablished;
  const bool lost_race = had_connection && r.attached_tick > h.accepted_tick;
  const absl::Status st =
      detail::SessionHandover::Adopt(*r.session, fresh, lost_race, now);
  if (!st.ok()) {
    ++counters_.resumes_rejected;
    if (lost_race && GetErrorCode(st) == ErrorCode::kConnectionLost) {
      ++counters_.resumes_lost_race;
    }
    // Adopt fails `fresh` on every error but misuse, which Route's checks
    // exclude.
    SYMWIRE_ASSERT(fresh.state() == SessionState::kFailed);
    return Reject(c, st);
  }
  r.attached_tick = ++tick_;
  ++counters_.resumes;
  if (had_connection) ++counters_.superseded;
  std::shared_ptr<Session> session = r.session;
  handshakes_.erase(c);
  return SessionResumed{std::move(session), had_connection};
}

SYMWIRE_DECL ConnectionOutcome Endpoint::Reject(ConnectionHandle c,
                                                absl::Status status) {
  handshakes_.erase(c);
  return ConnectionRejected{std::move(status)};
}

SYMWIRE_DECL std::shared_ptr<Session> Endpoint::HandOff(ConnectionHandle c) {
  auto it = handshakes_.find(c);
  SYMWIRE_REQUIRE(it != handshakes_.end());
  std::shared_ptr<Session> fresh = std::move(it->second.session);
  handshakes_.erase(it);
  return fresh;
}

SYMWIRE_DECL ConnectionOutcome Endpoint::Adopt(std::shared_ptr<Session> fresh,
                                               absl::Time now) {
  SYMWIRE_REQUIRE(fresh != nullptr);
  const SessionId* id = detail::SessionHandover::ResumeTarget(*fresh);
  SYMWIRE_REQUIRE(id != nullptr);
  const SessionId target = *id;
  const ConnectionHandle c = next_handle_++;
  Handshake& h = handshakes_[c];
  h.session = std::move(fresh);
  h.accepted_tick = ++tick_;
  return Resume(c, h, target, now);
}

SYMWIRE_DECL void Endpoint::Release(ConnectionHandle c) {
  handshakes_.erase(c);
}

SYMWIRE_DECL std::shared_ptr<Session> Endpoint::Find(
    const SessionId& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.session;
}

SYMWIRE_DECL bool Endpoint::Remove(const SessionId& id) {
  return sessions_.erase(id) > 0;
}

SYMWIRE_DECL Session* Endpoint::handshake(ConnectionHandle c) const {
  auto it = handshakes_.find(c);
  return it == handshakes_.end() ? nullptr : it->second.session.get();
}

SYMWIRE_DECL void Endpoint::DropEnded() {
  absl::erase_if(sessions_, [](const auto& entry) {
    return detail::SessionEnded(*entry.second.session);
  });
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_ENDPOINT_IPP_
