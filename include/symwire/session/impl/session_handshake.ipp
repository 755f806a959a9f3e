// File: symwire/session/impl/session_handshake.ipp
// Out-of-line bodies for session/session.hpp, part: the handshake and the
// resume (INIT, CHALLENGE, PROOF, WELCOME; adopting a resumed connection;
// SPEC.md §12, §16).
#ifndef SYMWIRE_SESSION_IMPL_SESSION_HANDSHAKE_IPP_
#define SYMWIRE_SESSION_IMPL_SESSION_HANDSHAKE_IPP_

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symwire/session/detail/handshake.hpp"
#include "symwire/session/detail/session_text.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/encoder.hpp"

namespace symwire {

// ---- handshake (§12) ----------------------------------------------------

SYMWIRE_DECL absl::Status Session::HandleInit(const FrameView& frame,
                                              absl::Time now) {
  auto init = ParseInit(frame.payload());
  if (!init.ok()) {
    FailHandshake(init.status(), now);
    return init.status();
  }
  const Handshake h = conn_.handshake;
  const InitPhase phase = init->phase;
  const bool expected =
      (h == Handshake::kAwaitHello && phase == InitPhase::kHello) ||
      (h == Handshake::kAwaitProof && phase == InitPhase::kProof) ||
      (h == Handshake::kAwaitServer &&
       (phase == InitPhase::kChallenge || phase == InitPhase::kWelcome)) ||
      (h == Handshake::kAwaitWelcome && phase == InitPhase::kWelcome);
  if (!expected) {
    absl::Status s = MakeError(
        absl::StatusCode::kUnauthenticated, ErrorCode::kUnexpectedFrame,
        absl::StrFormat("AGENT_INIT phase %s is not expected now",
                        InitPhaseName(phase)));
    FailHandshake(s, now);
    return s;
  }
  switch (phase) {
    case InitPhase::kHello:
      return HandleHello(*init, now);
    case InitPhase::kProof:
      return HandleProof(*init, frame.payload().size(), now);
    case InitPhase::kChallenge:
    case InitPhase::kWelcome:
      return HandleServerInit(*init, now);
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleHello(const InitMessage& hello,
                                               absl::Time now) {
  // §12.2, in order: parameters (parsed), version, roles, auth, resume.
  const uint64_t lo = std::max(config_.min_version, hello.min_version);
  const uint64_t hi = std::min(config_.max_version, hello.max_version);
  if (lo > hi) {
    absl::Status s = MakeError(
        ErrorCode::kVersionMismatch,
        absl::StrFormat("no common session version: local %d..%d, peer %d..%d",
                        config_.min_version, config_.max_version,
                        hello.min_version, hello.max_version));
    FailHandshake(s, now);
    return s;
  }
  if (!detail::RolesCompatible(config_.role, hello.role)) {
    absl::Status s =
        MakeError(ErrorCode::kIncompatibleRoles,
                  absl::StrFormat(
                      "roles %s (local) and %s (peer): neither may send "
                      "tasks to the other",
                      AgentRoleName(config_.role), AgentRoleName(hello.role)));
    FailHandshake(s, now);
    return s;
  }
  const AuthMethod method = config_.authenticator->method();
  if (hello.auth_method != method) {
    absl::Status s = MakeError(
        ErrorCode::kUnauthenticated,
        absl::StrFormat("auth method %d not accepted; this peer requires %d",
                        static_cast<uint64_t>(hello.auth_method),
                        static_cast<uint64_t>(method)));
    FailHandshake(s, now);
    return s;
  }
  Hello& saved = conn_.hello.emplace();
  saved.agent_id.assign(hello.agent_id.data(), hello.agent_id.size());
  saved.message = hello;
  saved.message.agent_id = {};
  saved.message.auth_data = {};
  saved.message.version = hi;
  conn_.auth.client_nonce = hello.nonce;
  conn_.auth.initiator_agent_id = saved.agent_id;
  auto decision = config_.authenticator->ServerHello(
      absl::Span<const std::byte>(
          reinterpret_cast<const std::byte*>(hello.auth_data.data()),
          hello.auth_data.size()),
      conn_.auth);
  if (!decision.ok()) {
    FailHandshake(decision.status(), now);
    return decision.status();
  }
  // §16.2: a resuming HELLO is always challenged, so that PROOF can prove
  // the resume token against this connection's fresh server nonce.
  const bool method_challenges =
      decision->kind == AuthDecision::Kind::kChallenge;
  if (method_challenges || hello.session_id) {
    InitMessage challenge;
    challenge.phase = InitPhase::kChallenge;
    challenge.nonce = conn_.auth.server_nonce;
    if (method_challenges) challenge.auth_data = decision->data;
    SendInit(challenge);
    if (!method_challenges) {
      saved.welcome_auth_data = std::move(decision->data);
      conn_.resume_challenge_only = true;
    }
    conn_.challenged = true;
    conn_.handshake = Handshake::kAwaitProof;
    return absl::OkStatus();
  }
  saved.welcome_auth_data = std::move(decision->data);
  return FinishAcceptorHandshake(now);
}

SYMWIRE_DECL absl::Status Session::HandleProof(const InitMessage& proof,
                                               size_t payload_size,
                                               absl::Time now) {
  SYMWIRE_ASSERT(conn_.hello.has_value());
  Hello& hello = *conn_.hello;
  // §16.2: a PROOF answering a resuming HELLO carries resume_proof; any
  // other PROOF does not.
  absl::Status s;
  if (hello.message.session_id && !proof.resume_proof) {
    s = MakeError(ErrorCode::kMissingParam,
                  absl::StrFormat("agent_init PROOF is missing required param "
                                  "23 (resume_proof) (the HELLO resumes) at "
                                  "payload offset %d",
                                  payload_size));
  } else if (!hello.message.session_id && proof.resume_proof) {
    s = MakeError(absl::StatusCode::kUnauthenticated,
                  ErrorCode::kUnexpectedFrame,
                  "PROOF carries resume_proof but the HELLO did not resume");
  } else if (conn_.resume_challenge_only && !proof.auth_data.empty()) {
    s = MakeError(
        ErrorCode::kUnauthenticated,
        absl::StrFormat("auth method %d has no challenge: PROOF "
                        "auth_data must be empty, got %d bytes",
                        static_cast<uint64_t>(config_.authenticator->method()),
                        proof.auth_data.size()));
  }
  if (!s.ok()) {
    FailHandshake(s, now);
    return s;
  }
  if (!conn_.resume_challenge_only) {
    conn_.auth.initiator_agent_id = hello.agent_id;
    auto welcome_data = config_.authenticator->ServerVerifyProof(
        absl::Span<const std::byte>(
            reinterpret_cast<const std::byte*>(proof.auth_data.data()),
            proof.auth_data.size()),
        conn_.auth);
    if (!welcome_data.ok()) {
      FailHandshake(welcome_data.status(), now);
      return welcome_data.status();
    }
    hello.welcome_auth_data = std::move(*welcome_data);
  }
  hello.resume_proof = proof.resume_proof;
  return FinishAcceptorHandshake(now);
}

SYMWIRE_DECL absl::Status Session::FinishAcceptorHandshake(absl::Time now) {
  Hello& hello = *conn_.hello;
  if (hello.message.session_id) {
    // §16.2: the Endpoint's registry decides (AdoptConnection /
    // RejectResume through detail::SessionHandover).
    conn_.handshake = Handshake::kAwaitResume;
    Emit(ResumeRequested{*hello.message.session_id});
    return absl::OkStatus();
  }
  config_.random(absl::Span<std::byte>(session_id_));
  if (config_.session_id_tag) {
    session_id_.back() = std::byte{*config_.session_id_tag};
  }
  config_.random(absl::Span<std::byte>(resume_token_));
  has_session_ = true;
  hello.message.agent_id = hello.agent_id;
  detail::FillPeer(hello.message, config_.capabilities, peer_);
  peer_.version = hello.message.version;
  peer_.resume_window = config_.resume_window;
  InitMessage welcome = detail::LocalInit(config_, InitPhase::kWelcome);
  welcome.version = hello.message.version;
  welcome.auth_data = hello.welcome_auth_data;
  welcome.nonce = conn_.auth.server_nonce;
  welcome.session_id = session_id_;
  welcome.resume_token = resume_token_;
  welcome.last_received = acks_.received();
  SendInit(welcome);
  Establish(false, now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleServerInit(const InitMessage& init,
                                                    absl::Time now) {
  conn_.auth.initiator_agent_id = config_.agent_id;
  if (init.phase == InitPhase::kChallenge) {
    conn_.auth.server_nonce = init.nonce;
    conn_.challenged = true;
    InitMessage m;
    m.phase = InitPhase::kProof;
    absl::StatusOr<std::string> proof = std::string();
    if (!has_session_ || config_.authenticator->HasChallenge()) {
      proof = config_.authenticator->ClientProof(
          absl::Span<const std::byte>(
              reinterpret_cast<const std::byte*>(init.auth_data.data()),
              init.auth_data.size()),
          conn_.auth);
    } else if (!init.auth_data.empty()) {
      // §16.2: the resume's own CHALLENGE carries only the nonce.
      proof =
          MakeError(ErrorCode::kUnauthenticated,
                    absl::StrFormat(
                        "auth method %d has no challenge, but "
                        "the CHALLENGE carries %d bytes of "
                        "auth_data",
                        static_cast<uint64_t>(config_.authenticator->method()),
                        init.auth_data.size()));
    }
    if (proof.ok() && has_session_) {
      // §16.2: possession of the resume token, bound to both nonces.
      auto r = ComputeResumeProof(
          resume_token_, ResumeProofSide::kClient, conn_.auth.client_nonce,
          conn_.auth.server_nonce, session_id_, acks_.received());
      if (r.ok()) {
        m.resume_proof = *r;
      } else {
        proof = r.status();
      }
    }
    if (!proof.ok()) {
      FailHandshake(proof.status(), now);
      return proof.status();
    }
    m.auth_data = *proof;
    SendInit(m);
    conn_.handshake = Handshake::kAwaitWelcome;
    return absl::OkStatus();
  }
  // WELCOME. §12.2 for the initiator: version, roles, the method's check.
  absl::Status s;
  if (init.version < config_.min_version ||
      init.version > config_.max_version) {
    s = MakeError(ErrorCode::kVersionMismatch,
                  absl::StrFormat("acceptor chose session version %d outside "
                                  "the local range %d..%d",
                                  init.version, config_.min_version,
                                  config_.max_version));
  } else if (!detail::RolesCompatible(config_.role, init.role)) {
    s = MakeError(
        ErrorCode::kIncompatibleRoles,
        absl::StrFormat("roles %s (local) and %s (peer): neither may "
                        "send tasks to the other",
                        AgentRoleName(config_.role), AgentRoleName(init.role)));
  } else if (conn_.challenged && init.nonce != conn_.auth.server_nonce) {
    s = MakeError(ErrorCode::kUnauthenticated,
                  "WELCOME nonce differs from the CHALLENGE's");
  }
  if (s.ok()) {
    conn_.auth.server_nonce = init.nonce;
    s = config_.authenticator->ClientVerifyWelcome(
        absl::Span<const std::byte>(
            reinterpret_cast<const std::byte*>(init.auth_data.data()),
            init.auth_data.size()),
        conn_.auth);
  }
  if (s.ok() && has_session_ &&
      (!init.resumed || init.session_id != session_id_)) {
    s = MakeError(ErrorCode::kResumeRejected,
                  absl::StrFormat("asked to resume session %s; the acceptor "
                                  "answered with a new session",
                                  detail::HexId(session_id_)));
  }
  if (s.ok() && !has_session_ && init.resumed) {
    s = MakeError(ErrorCode::kResumeRejected,
                  "WELCOME claims a resumed session this side never had");
  }
  if (s.ok() && has_session_) {
    // §16.2: the acceptor proves it holds the token too (mutual), so a
    // peer that is not the session's acceptor cannot make this side drop
    // its replay buffer. The parser guarantees resume_proof here.
    auto expected = ComputeResumeProof(
        resume_token_, ResumeProofSide::kServer, conn_.auth.client_nonce,
        conn_.auth.server_nonce, session_id_, *init.last_received);
    if (!expected.ok()) {
      s = expected.status();
    } else if (!init.resume_proof ||
               !detail::ConstantTimeEquals(
                   absl::Span<const std::byte>(*init.resume_proof),
                   absl::Span<const std::byte>(*expected))) {
      s = MakeError(ErrorCode::kResumeRejected,
                    "resumed WELCOME's resume_proof does not match this "
                    "session's token");
    }
  }
  if (!s.ok()) {
    FailHandshake(s, now);
    return s;
  }
  const bool resumed = has_session_;
  if (resumed) {
    // §16.2: the same contract as the first WELCOME, and a last_received
    // this side can serve. The acceptor is authenticated by now: these end
    // the session.
    absl::Status r = detail::CheckResumeIdentity(peer_, init, init.version);
    if (r.ok()) r = CheckPeerLastReceived(*init.last_received);
    if (!r.ok()) {
      Fail(r, now, true);
      return r;
    }
  }
  detail::FillPeer(init, config_.capabilities, peer_);
  peer_.version = init.version;
  peer_.resume_window = detail::MicrosDuration(init.resume_window_us);
  if (resumed) {
    ApplyPeerLastReceived(*init.last_received);
  } else {
    session_id_ = *init.session_id;
    resume_token_ = *init.resume_token;
    has_session_ = true;
    if (*init.last_received != 0) {
      absl::Status r =
          MakeError(ErrorCode::kBadAck,
                    absl::StrFormat("new session WELCOME has last_received %d",
                                    *init.last_received));
      Fail(r, now, true);
      return r;
    }
  }
  Establish(resumed, now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::CheckPeerLastReceived(uint64_t last) const {
  return acks_.CheckResumePoint(last);  // §16.2
}

SYMWIRE_DECL void Session::ApplyPeerLastReceived(uint64_t last) {
  SYMWIRE_ASSERT(CheckPeerLastReceived(last).ok());
  const uint64_t resent = acks_.ResumeFrom(last);
  ReleaseAckedSlots(last);
  while (!replay_.empty() && replay_.front().seq <= last) replay_.pop_front();
  send_pos_ = replay_.empty() ? store_.end() : replay_.front().pos;
  CompactStore();
  counters_.retransmitted_frames += resent;
}

SYMWIRE_DECL absl::Status Session::AdoptConnection(Session& fresh,
                                                   bool lost_race,
                                                   absl::Time now) {
  BeginInput();
  fresh.BeginInput();
  if (&fresh == this || fresh.config_.side != SessionSide::kAcceptor ||
      config_.side != SessionSide::kAcceptor || !fresh.conn_.up ||
      fresh.conn_.handshake != Handshake::kAwaitResume || !fresh.conn_.hello) {
    return LocalError(ErrorCode::kWrongState,
                      "AdoptConnection needs a fresh acceptor session that "
                      "reported ResumeRequested");
  }
  // §12.2 step 5, §16.2: every check runs before anything changes here; a
  // failure is answered on the new connection only, so a resume that
  // fails — whoever sent it — never harms this session.
  const Hello& hello = *fresh.conn_.hello;
  const SessionId& id = *hello.message.session_id;
  // The proof is computed whatever the outcome, so that an ended session,
  // a bad proof and (RejectResume) an unknown session take the same work
  // and get the same answer: an unauthenticated peer learns nothing about
  // which sessions exist (§16.2).
  auto expected = ComputeResumeProof(
      resume_token_, ResumeProofSide::kClient, fresh.conn_.auth.client_nonce,
      fresh.conn_.auth.server_nonce, id, *hello.message.last_received);
  const bool proven = expected.ok() && hello.resume_proof &&
                      detail::ConstantTimeEquals(
                          absl::Span<const std::byte>(*hello.resume_proof),
                          absl::Span<const std::byte>(*expected));
  absl::Status s;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed ||
      !has_session_ || id != session_id_ || !proven) {
    s = detail::ResumeUnavailable(id);
  } else {
    InitMessage claimed = hello.message;
    claimed.agent_id = hello.agent_id;
    s = detail::CheckResumeIdentity(peer_, claimed, hello.message.version);
    if (s.ok()) s = CheckPeerLastReceived(*hello.message.last_received);
    // Checked last, after the proof: only a holder of the token learns
    // that another connection took the session over (Endpoint).
    if (s.ok() && lost_race) {
      s = MakeError(ErrorCode::kConnectionLost,
                    absl::StrFormat("session %s was resumed on another "
                                    "connection while this one was "
                                    "handshaking",
                                    detail::HexId(id)));
    }
  }
  if (!s.ok()) {
    fresh.FailHandshake(s, now);
    fresh.EndInput(now);
    return s;
  }
  // Take the connection over (§16.2). A connection this session still
  // had (half-open) is replaced.
  if (conn_.up) {
    Emit(ConnectionLost{MakeError(ErrorCode::kConnectionLost,
                                  "replaced by a resumed connection")});
  }
  conn_ = std::move(fresh.conn_);
  fresh.conn_ = Connection{};
  // The liveness deadlines run from times the connection keeps; derive
  // them with this session's timeouts.
  conn_.timers.Set(detail::Timer::kDeadPeer,
                   conn_.last_rx + config_.dead_peer_timeout);
  if (!conn_.rx.empty()) {
    conn_.timers.Set(detail::Timer::kFrame,
                     conn_.rx_since + config_.frame_timeout);
  }
  fresh.state_ = SessionState::kClosed;
  Hello& h = *conn_.hello;
  h.message.agent_id = h.agent_id;
  ++counters_.connections;
  ApplyPeerLastReceived(*h.message.last_received);
  // Limits that may change on resume (ping intervals, replay window,
  // capabilities) take effect now; the others were checked equal.
  detail::FillPeer(h.message, config_.capabilities, peer_);
  peer_.version = h.message.version;
  InitMessage welcome = detail::LocalInit(config_, InitPhase::kWelcome);
  welcome.version = h.message.version;
  welcome.auth_data = h.welcome_auth_data;
  welcome.nonce = conn_.auth.server_nonce;
  welcome.session_id = session_id_;
  welcome.last_received = acks_.received();
  welcome.resumed = true;
  // §16.2: the acceptor's proof of the token, bound to both nonces and to
  // its own last_received.
  auto server_proof = ComputeResumeProof(
      resume_token_, ResumeProofSide::kServer, conn_.auth.client_nonce,
      conn_.auth.server_nonce, session_id_, acks_.received());
  SYMWIRE_ASSERT(server_proof.ok());  // the client proof was computed above
  welcome.resume_proof = *server_proof;
  SendInit(welcome);
  Establish(true, now);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL void Session::RejectResume(absl::Time now) {
  BeginInput();
  if (conn_.handshake != Handshake::kAwaitResume || !conn_.hello) return;
  // The same work and answer as a bad proof in AdoptConnection (§16.2).
  const Hello& hello = *conn_.hello;
  auto decoy = ComputeResumeProof(
      ResumeToken{}, ResumeProofSide::kClient, conn_.auth.client_nonce,
      conn_.auth.server_nonce, *hello.message.session_id,
      *hello.message.last_received);
  if (decoy.ok() && hello.resume_proof) {
    (void)detail::ConstantTimeEquals(
        absl::Span<const std::byte>(*hello.resume_proof),
        absl::Span<const std::byte>(*decoy));
  }
  FailHandshake(detail::ResumeUnavailable(*hello.message.session_id), now);
  EndInput(now);
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_SESSION_HANDSHAKE_IPP_
