// File: symwire/session/control.hpp
// Layer 2 (session). The payloads of the control messages AGENT_INIT,
// AGENT_SYNC, AGENT_ERROR and AGENT_CANCEL: parameter lists (SPEC.md §11)
// as typed values, with their encoders (Append*) and parsers (Parse*).
// Pure functions over spans; no state, no I/O. Public so that tools (a
// dump, a dissector test, another implementation's tests) can use them.
// Golden vectors: tests/vectors/session_payloads.md. Thread-compatible; the
// parameter tables are constant.
#ifndef SYMWIRE_SESSION_CONTROL_HPP_
#define SYMWIRE_SESSION_CONTROL_HPP_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/error.hpp"

namespace symwire {

// The session protocol versions this implementation speaks (SPEC.md §12.2).
inline constexpr uint64_t kSessionVersionMin = 1;
inline constexpr uint64_t kSessionVersionMax = 1;

// InitPhase: the `phase` parameter of AGENT_INIT (SPEC.md §11.1).
enum class InitPhase : uint8_t {
  kHello = 0,
  kChallenge = 1,
  kProof = 2,
  kWelcome = 3,
};

// AgentRole: SPEC.md §11.3.
enum class AgentRole : uint8_t {
  kOrchestrator = 0,  // sends tasks
  kAgent = 1,         // runs tasks
  kPeer = 2,          // both
};
constexpr bool RoleSendsTasks(AgentRole r) { return r != AgentRole::kAgent; }
constexpr bool RoleRunsTasks(AgentRole r) {
  return r != AgentRole::kOrchestrator;
}
// AgentRoleName
// "orchestrator", "agent" or "peer" (the names of SPEC.md §11.3), "unknown"
// for any other value. Does not allocate.
SYMWIRE_DECL absl::string_view AgentRoleName(AgentRole role) noexcept;

// AuthMethod: the `auth_method` parameter (SPEC.md §12.3).
enum class AuthMethod : uint64_t {
  kNone = 0,
  kToken = 1,
  kHmacSha256 = 2,
};

// Capability bits (SPEC.md §11.4).
inline constexpr uint64_t kCapPayloadChecksums = 1u << 0;
inline constexpr uint64_t kCapTraceContext = 1u << 1;
inline constexpr uint64_t kCapMetadata = 1u << 2;
inline constexpr uint64_t kCapDrain = 1u << 3;
// The sender understands the METHOD extension (SPEC.md §5.1, §13.5): a peer
// sends METHOD only to a side that announced this bit.
inline constexpr uint64_t kCapMethods = 1u << 4;

inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kSessionIdSize = 16;
inline constexpr size_t kResumeTokenSize = 16;
inline constexpr size_t kResumeProofSize = 32;
inline constexpr size_t kMaxAgentIdSize = 255;
inline constexpr size_t kMaxAuthDataSize = 1024;
inline constexpr size_t kMaxErrorMessageSize = 4096;
// Every control payload fits in this; receivers accept control payloads up
// to it whatever their max_payload_bytes (SPEC.md §15.2).
inline constexpr uint64_t kMaxControlPayloadSize = 8192;

using Nonce = std::array<std::byte, kNonceSize>;
using SessionId = std::array<std::byte, kSessionIdSize>;
using ResumeToken = std::array<std::byte, kResumeTokenSize>;
// HMAC-SHA256 proving possession of a resume token (SPEC.md §16.2).
using ResumeProof = std::array<std::byte, kResumeProofSize>;

// Parameter ids (SPEC.md §11.1, §11.2).
namespace param {
inline constexpr uint64_t kPhase = 1;
inline constexpr uint64_t kMinVersion = 2;
inline constexpr uint64_t kMaxVersion = 3;
inline constexpr uint64_t kVersion = 4;
inline constexpr uint64_t kAgentId = 5;
inline constexpr uint64_t kRole = 6;
inline constexpr uint64_t kCapabilities = 7;
inline constexpr uint64_t kMaxPayloadBytes = 8;
inline constexpr uint64_t kMaxHeaderBytes = 9;
inline constexpr uint64_t kMaxTasks = 10;
inline constexpr uint64_t kReplayBytes = 11;
inline constexpr uint64_t kReplayFrames = 12;
inline constexpr uint64_t kPingIntervalUs = 13;
inline constexpr uint64_t kMinPingIntervalUs = 14;
inline constexpr uint64_t kAuthMethod = 15;
inline constexpr uint64_t kAuthData = 16;
inline constexpr uint64_t kNonce = 17;
inline constexpr uint64_t kSessionId = 18;
inline constexpr uint64_t kResumeToken = 19;
inline constexpr uint64_t kLastReceived = 20;
inline constexpr uint64_t kResumed = 21;
inline constexpr uint64_t kResumeWindowUs = 22;
inline constexpr uint64_t kResumeProof = 23;
inline constexpr uint64_t kSyncAck = 1;
inline constexpr uint64_t kSyncPing = 2;
inline constexpr uint64_t kSyncPong = 3;
inline constexpr uint64_t kSyncDrain = 4;
inline constexpr uint64_t kSyncBye = 5;
inline constexpr uint64_t kErrorCode = 1;
inline constexpr uint64_t kErrorMessage = 2;
inline constexpr uint64_t kErrorRetryable = 3;
inline constexpr uint64_t kErrorDetail = 4;
inline constexpr uint64_t kCancelReason = 1;
}  // namespace param

// InitMessage
// One AGENT_INIT payload. Which fields are written or required depends on
// `phase` (SPEC.md §11.1); fields not defined for the phase are ignored by
// AppendInit and left at their defaults by ParseInit. After ParseInit the
// string_views point into the parsed payload. capabilities 0 and an empty
// auth_data mean the same as their absence. In a HELLO, session_id and
// last_received are both set (resuming) or both unset. A WELCOME has
// resume_token if it creates the session, resume_proof if it resumes one
// (`resumed`); the encoder writes only the one that matches `resumed`.
struct InitMessage {
  // HELLO
  uint64_t min_version = 0;
  uint64_t max_version = 0;
  AuthMethod auth_method = AuthMethod::kNone;
  // WELCOME
  uint64_t version = 0;
  // HELLO and WELCOME
  absl::string_view agent_id;
  uint64_t capabilities = 0;
  uint64_t max_payload_bytes = 0;
  uint64_t max_header_bytes = 0;
  uint64_t max_tasks = 0;
  uint64_t replay_bytes = 0;
  uint64_t replay_frames = 0;
  uint64_t ping_interval_us = 0;
  uint64_t min_ping_interval_us = 0;
  // WELCOME
  uint64_t resume_window_us = 0;
  // Any phase (empty = absent).
  absl::string_view auth_data;
  // HELLO, CHALLENGE, WELCOME
  Nonce nonce{};
  // HELLO when resuming, WELCOME (required).
  std::optional<SessionId> session_id;
  // WELCOME of a new session (required there).
  std::optional<ResumeToken> resume_token;
  // HELLO when resuming, WELCOME (required).
  std::optional<uint64_t> last_received;
  // PROOF answering a resuming HELLO's CHALLENGE (the initiator's proof),
  // resumed WELCOME (the acceptor's): SPEC.md §16.2.
  std::optional<ResumeProof> resume_proof;
  // The one-byte fields last, together (no padding between wide fields).
  InitPhase phase = InitPhase::kHello;
  AgentRole role = AgentRole::kPeer;  // HELLO and WELCOME
  bool resumed = false;               // WELCOME
};

// SyncMessage: one AGENT_SYNC payload (SPEC.md §11.2, §14, §15.3).
struct SyncMessage {
  std::optional<uint64_t> ack;
  std::optional<uint64_t> ping;
  std::optional<uint64_t> pong;
  std::optional<uint64_t> drain;
  bool bye = false;

  bool empty() const { return !ack && !ping && !pong && !drain && !bye; }
};

// ErrorMessage: one AGENT_ERROR payload (SPEC.md §11.2). `message` is a
// view (into the parsed payload after ParseError).
struct ErrorMessage {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  absl::string_view message;
  bool retryable = false;
  ErrorCode detail = ErrorCode::kOk;  // kOk = absent
};

// CancelMessage: one AGENT_CANCEL payload. reason is kCancelled or
// kDeadlineExceeded.
struct CancelMessage {
  absl::StatusCode reason = absl::StatusCode::kCancelled;
};

// AppendInit / AppendSync / AppendError / AppendCancel
// Append the encoded payload to `out` (after what it already holds),
// parameters in ascending id order, each varint canonical. Written are:
//   INIT    the parameters defined for `phase`, except capabilities when
//           0, auth_data when empty, the HELLO resume pair when unset,
//           resumed when false, resume_token in a resumed WELCOME and
//           resume_proof when unset or in a WELCOME that does not resume;
//   SYNC    the fields that are set, bye only when true (an empty SyncMessage
//           is an empty payload);
//   ERROR   code; message only if non-empty, retryable only if true, detail
//           only if not kOk;
//   CANCEL  reason only when it is DEADLINE_EXCEEDED: absent means CANCELLED
//           (SPEC.md §11.2), so a plain cancel is an empty payload.
// This is the canonical encoding: Parse* then Append* of a canonical payload
// gives back the same bytes (the vectors marked encoder=same).
// Errors: INVALID_FRAME (kInvalidArgument) if a value breaks SPEC.md §11
// (an agent_id of 0 or > 255 bytes, auth_data > 1024 bytes, a varint above
// 2^62 - 1, an out-of-range limit, max_version < min_version, a phase or
// role outside its enum, a HELLO with only one of session_id /
// last_received, a WELCOME without session_id or last_received, a new
// session's WELCOME without resume_token, a resumed one without
// resume_proof, an error
// code of OK or > 16, a message > 4096 bytes, a cancel reason other than
// CANCELLED/DEADLINE_EXCEEDED); nothing is appended then. Allocates only by
// growing `out` (once).
SYMWIRE_DECL absl::Status AppendInit(const InitMessage& message,
                                     std::vector<std::byte>& out);
SYMWIRE_DECL absl::Status AppendSync(const SyncMessage& message,
                                     std::vector<std::byte>& out);
SYMWIRE_DECL absl::Status AppendError(const ErrorMessage& message,
                                      std::vector<std::byte>& out);
SYMWIRE_DECL absl::Status AppendCancel(const CancelMessage& message,
                                       std::vector<std::byte>& out);

// ParseInit / ParseSync / ParseError / ParseCancel
// Parse a payload by the rules of SPEC.md §11 in one pass in wire order and
// report the first failure. Within one parameter: param_id, param_length
// (each must fit in the payload, then be canonical) and the value's fit
// (rule 1); for INIT's first parameter, that it is `phase`; whether the id
// is defined for the message (INIT: for the phase; undefined even ids are
// skipped, rule 2); duplicates (rule 3); the value's type and range (rule 4:
// a varint value is exactly one canonical varint, a flag has length 0).
// After the list: the lowest missing required id (rule 5; a HELLO with
// session_id or last_received needs both; a WELCOME needs resume_proof if
// it has `resumed`, resume_token otherwise), then max_version >=
// min_version, then that a resumed WELCOME has no resume_token and any
// other WELCOME no resume_proof (MALFORMED_PAYLOAD at that value).
// Errors (messages are lowercase and name the message, the parameter as
// "param <id> (<name>)", the offending value or length — never the bytes
// of a value — and "at payload offset <n>"):
//   MALFORMED_PAYLOAD (kInvalidArgument)       rules 1, 3, 4; max < min;
//                                              resume_token in a resumed
//                                              WELCOME, resume_proof in
//                                              another
//   UNKNOWN_CRITICAL_PARAM (kUnimplemented)    rule 2
//   MISSING_PARAM (kInvalidArgument)           rule 5; INIT without phase
//                                              first (offset 0)
// The offset is that of the param_id or param_length varint at fault, of
// the param_length for a value that runs past the payload, of the param_id
// for rules 2 and 3, of the value's first byte for rule 4 and max < min,
// and the payload's size for rule 5 (tests/vectors/session_payloads.md).
// Views in the result point into `payload` and are valid as long as it is.
// Does not allocate on success.
SYMWIRE_DECL absl::StatusOr<InitMessage> ParseInit(
    absl::Span<const std::byte> payload);
SYMWIRE_DECL absl::StatusOr<SyncMessage> ParseSync(
    absl::Span<const std::byte> payload);
SYMWIRE_DECL absl::StatusOr<ErrorMessage> ParseError(
    absl::Span<const std::byte> payload);
SYMWIRE_DECL absl::StatusOr<CancelMessage> ParseCancel(
    absl::Span<const std::byte> payload);

// InitPhaseName: "HELLO", "CHALLENGE", "PROOF", "WELCOME"; "UNKNOWN" for
// any other value. Does not allocate.
SYMWIRE_DECL absl::string_view InitPhaseName(InitPhase phase) noexcept;

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/session/impl/control.ipp"
#endif

#endif  // SYMWIRE_SESSION_CONTROL_HPP_
