// File: symwire/session/impl/control.ipp
// Out-of-line bodies of control.hpp: the parameter-list codec of SPEC.md
// §11. One table per message drives a single parsing pass in wire order;
// error text is built only on the (cold) failure paths, so a successful
// parse does not allocate. Encoders validate the whole message first, then
// size it with a counting pass and write it with a second pass of the same
// code, so nothing is appended on error.
#ifndef SYMWIRE_SESSION_IMPL_CONTROL_IPP_
#define SYMWIRE_SESSION_IMPL_CONTROL_IPP_

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/detail/control_params.hpp"

namespace symwire {

SYMWIRE_DECL absl::string_view AgentRoleName(AgentRole role) noexcept {
  switch (role) {
    case AgentRole::kOrchestrator:
      return "orchestrator";
    case AgentRole::kAgent:
      return "agent";
    case AgentRole::kPeer:
      return "peer";
  }
  return "unknown";
}

SYMWIRE_DECL absl::string_view InitPhaseName(InitPhase phase) noexcept {
  switch (phase) {
    case InitPhase::kHello:
      return "HELLO";
    case InitPhase::kChallenge:
      return "CHALLENGE";
    case InitPhase::kProof:
      return "PROOF";
    case InitPhase::kWelcome:
      return "WELCOME";
  }
  return "UNKNOWN";
}

SYMWIRE_DECL absl::Status AppendInit(const InitMessage& message,
                                     std::vector<std::byte>& out) {
  if (absl::Status s = detail::control::ValidateInit(message); !s.ok()) {
    return s;
  }
  detail::control::AppendWith(
      out, [&](auto& sink) { detail::control::WriteInit(message, sink); });
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status AppendSync(const SyncMessage& message,
                                     std::vector<std::byte>& out) {
  using detail::control::CheckVarintParam;
  const std::pair<uint64_t, const std::optional<uint64_t>*> fields[] = {
      {param::kSyncAck, &message.ack},
      {param::kSyncPing, &message.ping},
      {param::kSyncPong, &message.pong},
      {param::kSyncDrain, &message.drain},
  };
  for (const auto& [id, value] : fields) {
    if (*value) {
      absl::Status s =
          CheckVarintParam(detail::control::kSyncList, id, **value);
      if (!s.ok()) return s;
    }
  }
  detail::control::AppendWith(out, [&](auto& sink) {
    for (const auto& [id, value] : fields) {
      if (*value) sink.Varint(id, **value);
    }
    if (message.bye) sink.Flag(param::kSyncBye);
  });
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status AppendError(const ErrorMessage& message,
                                      std::vector<std::byte>& out) {
  namespace c = detail::control;
  const auto code = static_cast<uint64_t>(static_cast<int>(message.code));
  // A negative code converts to a huge value and fails the range check.
  if (absl::Status s =
          c::CheckVarintParam(c::kErrorList, param::kErrorCode, code);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = c::CheckBytesParam(c::kErrorList, param::kErrorMessage,
                                          message.message.size());
      !s.ok()) {
    return s;
  }
  c::AppendWith(out, [&](auto& sink) {
    sink.Varint(param::kErrorCode, code);
    if (!message.message.empty()) {
      sink.Bytes(param::kErrorMessage, c::AsBytes(message.message));
    }
    if (message.retryable) sink.Flag(param::kErrorRetryable);
    if (message.detail != ErrorCode::kOk) {
      sink.Varint(param::kErrorDetail, static_cast<uint64_t>(message.detail));
    }
  });
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status AppendCancel(const CancelMessage& message,
                                       std::vector<std::byte>& out) {
  namespace c = detail::control;
  const auto reason = static_cast<uint64_t>(static_cast<int>(message.reason));
  if (absl::Status s =
          c::CheckVarintParam(c::kCancelList, param::kCancelReason, reason);
      !s.ok()) {
    return s;
  }
  // Absent means CANCELLED (SPEC.md §11.2): only DEADLINE_EXCEEDED is
  // written, so a plain cancel has an empty payload.
  if (message.reason == absl::StatusCode::kDeadlineExceeded) {
    c::AppendWith(
        out, [&](auto& sink) { sink.Varint(param::kCancelReason, reason); });
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::StatusOr<InitMessage> ParseInit(
    absl::Span<const std::byte> payload) {
  namespace c = detail::control;
  InitMessage m;
  c::ListState state;
  absl::Status s =
      c::ParseList(payload, c::kInitList, state, [&m](const c::Param& p) {
        switch (p.id) {
          case param::kPhase:
            m.phase = static_cast<InitPhase>(p.number);
            break;
          case param::kMinVersion:
            m.min_version = p.number;
            break;
          case param::kMaxVersion:
            m.max_version = p.number;
            break;
          case param::kVersion:
            m.version = p.number;
            break;
          case param::kAgentId:
            m.agent_id = c::AsStringView(p.bytes);
            break;
          case param::kRole:
            m.role = static_cast<AgentRole>(p.number);
            break;
          case param::kCapabilities:
            m.capabilities = p.number;
            break;
          case param::kMaxPayloadBytes:
            m.max_payload_bytes = p.number;
            break;
          case param::kMaxHeaderBytes:
            m.max_header_bytes = p.number;
            break;
          case param::kMaxTasks:
            m.max_tasks = p.number;
            break;
          case param::kReplayBytes:
            m.replay_bytes = p.number;
            break;
          case param::kReplayFrames:
            m.replay_frames = p.number;
            break;
          case param::kPingIntervalUs:
            m.ping_interval_us = p.number;
            break;
          case param::kMinPingIntervalUs:
            m.min_ping_interval_us = p.number;
            break;
          case param::kAuthMethod:
            m.auth_method = static_cast<AuthMethod>(p.number);
            break;
          case param::kAuthData:
            m.auth_data = c::AsStringView(p.bytes);
            break;
          case param::kNonce:
            m.nonce = c::ToArray<kNonceSize>(p.bytes);
            break;
          case param::kSessionId:
            m.session_id = c::ToArray<kSessionIdSize>(p.bytes);
            break;
          case param::kResumeToken:
            m.resume_token = c::ToArray<kResumeTokenSize>(p.bytes);
            break;
          case param::kLastReceived:
            m.last_received = p.number;
            break;
          case param::kResumed:
            m.resumed = true;
            break;
          case param::kResumeWindowUs:
            m.resume_window_us = p.number;
            break;
          case param::kResumeProof:
            m.resume_proof = c::ToArray<kResumeProofSize>(p.bytes);
            break;
          default:
            SYMWIRE_ASSERT(false);
        }
      });
  if (!s.ok()) return s;
  // Rule 5. A HELLO that has session_id or last_received resumes and
  // needs both; a WELCOME needs resume_proof if it resumes, resume_token
  // otherwise (§11.1).
  const bool hello = m.phase == InitPhase::kHello;
  const bool welcome = m.phase == InitPhase::kWelcome;
  uint32_t extra = 0;
  if (hello && (state.seen & c::kResumeSet) != 0) extra = c::kResumeSet;
  if (welcome) {
    extra =
        m.resumed ? c::Bit(param::kResumeProof) : c::Bit(param::kResumeToken);
  }
  s = c::CheckRequired(c::kInitList, state, extra, payload.size());
  if (!s.ok()) return s;
  // §11.1: max_version below min_version, checked after the list.
  if (hello && m.max_version < m.min_version) {
    return c::ListError(
        ErrorCode::kMalformedPayload, c::kInitList,
        absl::StrCat("param 3 (max_version) value ", m.max_version,
                     " is below min_version ", m.min_version),
        state.value_offset[param::kMaxVersion]);
  }
  // §11.1: a WELCOME carries resume_token or resume_proof, never both (the
  // token crosses the wire only when the session is created, §16.2).
  if (welcome && m.resumed && m.resume_token) {
    return c::ListError(ErrorCode::kMalformedPayload, c::kInitList,
                        "param 19 (resume_token) in a resumed WELCOME",
                        state.value_offset[param::kResumeToken]);
  }
  if (welcome && !m.resumed && m.resume_proof) {
    return c::ListError(ErrorCode::kMalformedPayload, c::kInitList,
                        "param 23 (resume_proof) in a WELCOME that does not "
                        "resume",
                        state.value_offset[param::kResumeProof]);
  }
  return m;
}

SYMWIRE_DECL absl::StatusOr<SyncMessage> ParseSync(
    absl::Span<const std::byte> payload) {
  namespace c = detail::control;
  SyncMessage m;
  c::ListState state;
  absl::Status s =
      c::ParseList(payload, c::kSyncList, state, [&m](const c::Param& p) {
        switch (p.id) {
          case param::kSyncAck:
            m.ack = p.number;
            break;
          case param::kSyncPing:
            m.ping = p.number;
            break;
          case param::kSyncPong:
            m.pong = p.number;
            break;
          case param::kSyncDrain:
            m.drain = p.number;
            break;
          default:
            m.bye = true;
            break;
        }
      });
  if (!s.ok()) return s;
  return m;
}

SYMWIRE_DECL absl::StatusOr<ErrorMessage> ParseError(
    absl::Span<const std::byte> payload) {
  namespace c = detail::control;
  ErrorMessage m;
  c::ListState state;
  absl::Status s =
      c::ParseList(payload, c::kErrorList, state, [&m](const c::Param& p) {
        switch (p.id) {
          case param::kErrorCode:
            m.code = static_cast<absl::StatusCode>(p.number);
            break;
          case param::kErrorMessage:
            m.message = c::AsStringView(p.bytes);
            break;
          case param::kErrorRetryable:
            m.retryable = true;
            break;
          default:
            m.detail = static_cast<ErrorCode>(p.number);
            break;
        }
      });
  if (!s.ok()) return s;
  s = c::CheckRequired(c::kErrorList, state, 0, payload.size());
  if (!s.ok()) return s;
  return m;
}

SYMWIRE_DECL absl::StatusOr<CancelMessage> ParseCancel(
    absl::Span<const std::byte> payload) {
  namespace c = detail::control;
  CancelMessage m;
  c::ListState state;
  absl::Status s =
      c::ParseList(payload, c::kCancelList, state, [&m](const c::Param& p) {
        m.reason = static_cast<absl::StatusCode>(p.number);
      });
  if (!s.ok()) return s;
  return m;
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_CONTROL_IPP_
