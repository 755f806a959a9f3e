// File: symwire/impl/error.ipp
// Out-of-line bodies for error.hpp.
#ifndef SYMWIRE_IMPL_ERROR_IPP_
#define SYMWIRE_IMPL_ERROR_IPP_

#include <string>

#include "absl/strings/cord.h"
#include "symwire/error.hpp"

namespace symwire {

SYMWIRE_DECL absl::string_view ErrorCodeName(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk:
      return "OK";
    case ErrorCode::kBadPreface:
      return "BAD_PREFACE";
    case ErrorCode::kUnsupportedVersion:
      return "UNSUPPORTED_VERSION";
    case ErrorCode::kNonCanonicalVarint:
      return "NON_CANONICAL_VARINT";
    case ErrorCode::kVarintOutOfRange:
      return "VARINT_OUT_OF_RANGE";
    case ErrorCode::kBadHeaderLength:
      return "BAD_HEADER_LENGTH";
    case ErrorCode::kHeaderTooLarge:
      return "HEADER_TOO_LARGE";
    case ErrorCode::kHeaderCrcMismatch:
      return "HEADER_CRC_MISMATCH";
    case ErrorCode::kUnknownMessageType:
      return "UNKNOWN_MESSAGE_TYPE";
    case ErrorCode::kReservedFlags:
      return "RESERVED_FLAGS";
    case ErrorCode::kBadStreamId:
      return "BAD_STREAM_ID";
    case ErrorCode::kMalformedHeader:
      return "MALFORMED_HEADER";
    case ErrorCode::kPayloadTooLarge:
      return "PAYLOAD_TOO_LARGE";
    case ErrorCode::kPayloadChecksumMismatch:
      return "PAYLOAD_CHECKSUM_MISMATCH";
    case ErrorCode::kMalformedExtension:
      return "MALFORMED_EXTENSION";
    case ErrorCode::kUnknownCriticalExtension:
      return "UNKNOWN_CRITICAL_EXTENSION";
    case ErrorCode::kDuplicateExtension:
      return "DUPLICATE_EXTENSION";
    case ErrorCode::kTooManyExtensions:
      return "TOO_MANY_EXTENSIONS";
    case ErrorCode::kBufferTooSmall:
      return "BUFFER_TOO_SMALL";
    case ErrorCode::kInvalidFrame:
      return "INVALID_FRAME";
    case ErrorCode::kMalformedPayload:
      return "MALFORMED_PAYLOAD";
    case ErrorCode::kUnknownCriticalParam:
      return "UNKNOWN_CRITICAL_PARAM";
    case ErrorCode::kMissingParam:
      return "MISSING_PARAM";
    case ErrorCode::kVersionMismatch:
      return "VERSION_MISMATCH";
    case ErrorCode::kIncompatibleRoles:
      return "INCOMPATIBLE_ROLES";
    case ErrorCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    case ErrorCode::kHandshakeTimeout:
      return "HANDSHAKE_TIMEOUT";
    case ErrorCode::kUnexpectedFrame:
      return "UNEXPECTED_FRAME";
    case ErrorCode::kSequenceGap:
      return "SEQUENCE_GAP";
    case ErrorCode::kBadAck:
      return "BAD_ACK";
    case ErrorCode::kUnknownTask:
      return "UNKNOWN_TASK";
    case ErrorCode::kTaskStateViolation:
      return "TASK_STATE_VIOLATION";
    case ErrorCode::kTaskIdReused:
      return "TASK_ID_REUSED";
    case ErrorCode::kTaskLimitExceeded:
      return "TASK_LIMIT_EXCEEDED";
    case ErrorCode::kNoCredit:
      return "NO_CREDIT";
    case ErrorCode::kReplayBufferFull:
      return "REPLAY_BUFFER_FULL";
    case ErrorCode::kPeerUnresponsive:
      return "PEER_UNRESPONSIVE";
    case ErrorCode::kPingFlood:
      return "PING_FLOOD";
    case ErrorCode::kSessionExpired:
      return "SESSION_EXPIRED";
    case ErrorCode::kResumeGap:
      return "RESUME_GAP";
    case ErrorCode::kResumeRejected:
      return "RESUME_REJECTED";
    case ErrorCode::kConnectionLost:
      return "CONNECTION_LOST";
    case ErrorCode::kPeerDraining:
      return "PEER_DRAINING";
    case ErrorCode::kSessionClosed:
      return "SESSION_CLOSED";
    case ErrorCode::kFrameTooLarge:
      return "FRAME_TOO_LARGE";
    case ErrorCode::kWrongState:
      return "WRONG_STATE";
    case ErrorCode::kPeerError:
      return "PEER_ERROR";
    case ErrorCode::kUnimplemented:
      return "UNIMPLEMENTED";
  }
  return "UNKNOWN";
}

SYMWIRE_DECL absl::StatusCode CanonicalCode(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk:
      return absl::StatusCode::kOk;
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kUnknownCriticalExtension:
      return absl::StatusCode::kUnimplemented;
    case ErrorCode::kHeaderCrcMismatch:
    case ErrorCode::kPayloadChecksumMismatch:
      return absl::StatusCode::kDataLoss;
    case ErrorCode::kHeaderTooLarge:
    case ErrorCode::kPayloadTooLarge:
    case ErrorCode::kTooManyExtensions:
    case ErrorCode::kBufferTooSmall:
      return absl::StatusCode::kResourceExhausted;
    case ErrorCode::kBadPreface:
    case ErrorCode::kNonCanonicalVarint:
    case ErrorCode::kVarintOutOfRange:
    case ErrorCode::kBadHeaderLength:
    case ErrorCode::kUnknownMessageType:
    case ErrorCode::kReservedFlags:
    case ErrorCode::kBadStreamId:
    case ErrorCode::kMalformedHeader:
    case ErrorCode::kMalformedExtension:
    case ErrorCode::kDuplicateExtension:
    case ErrorCode::kInvalidFrame:
    // Session layer (SPEC.md §18). PEER_ERROR carries the peer's code, so
    // it is built with the MakeError overload that takes one.
    case ErrorCode::kMalformedPayload:
    case ErrorCode::kMissingParam:
    case ErrorCode::kUnexpectedFrame:
    case ErrorCode::kBadAck:
    case ErrorCode::kUnknownTask:
    case ErrorCode::kTaskStateViolation:
    case ErrorCode::kTaskIdReused:
    case ErrorCode::kFrameTooLarge:
      return absl::StatusCode::kInvalidArgument;
    case ErrorCode::kUnknownCriticalParam:
    case ErrorCode::kVersionMismatch:
    case ErrorCode::kUnimplemented:
      return absl::StatusCode::kUnimplemented;
    case ErrorCode::kIncompatibleRoles:
    case ErrorCode::kSessionClosed:
    case ErrorCode::kWrongState:
      return absl::StatusCode::kFailedPrecondition;
    case ErrorCode::kUnauthenticated:
      return absl::StatusCode::kUnauthenticated;
    case ErrorCode::kHandshakeTimeout:
    case ErrorCode::kPeerUnresponsive:
      return absl::StatusCode::kDeadlineExceeded;
    case ErrorCode::kSequenceGap:
    case ErrorCode::kSessionExpired:
    case ErrorCode::kResumeGap:
      return absl::StatusCode::kDataLoss;
    case ErrorCode::kTaskLimitExceeded:
    case ErrorCode::kNoCredit:
    case ErrorCode::kReplayBufferFull:
    case ErrorCode::kPingFlood:
      return absl::StatusCode::kResourceExhausted;
    case ErrorCode::kResumeRejected:
      return absl::StatusCode::kPermissionDenied;
    case ErrorCode::kConnectionLost:
    case ErrorCode::kPeerDraining:
      return absl::StatusCode::kUnavailable;
    case ErrorCode::kPeerError:
      return absl::StatusCode::kUnknown;
  }
  return absl::StatusCode::kUnknown;
}

SYMWIRE_DECL bool IsFatal(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk:
    // Encoder-side conditions concern one call, not the connection.
    case ErrorCode::kBufferTooSmall:
    case ErrorCode::kInvalidFrame:
    case ErrorCode::kVarintOutOfRange:
      return false;
    default:
      return ScopeOf(code) != ErrorScope::kLocal;
  }
}

SYMWIRE_DECL ErrorScope ScopeOf(ErrorCode code) noexcept {
  const auto value = static_cast<unsigned>(code);
  if (value >= 1 && value <= 19) return ErrorScope::kConnection;
  switch (code) {
    case ErrorCode::kHandshakeTimeout:
    case ErrorCode::kPeerUnresponsive:
    case ErrorCode::kConnectionLost:
      return ErrorScope::kConnection;
    case ErrorCode::kNoCredit:
    case ErrorCode::kReplayBufferFull:
    case ErrorCode::kPeerDraining:
    case ErrorCode::kSessionClosed:
    case ErrorCode::kFrameTooLarge:
    case ErrorCode::kWrongState:
    // Ends one task (SPEC.md §13.5), or refuses one submission.
    case ErrorCode::kUnimplemented:
      return ErrorScope::kLocal;
    default:
      return ErrorScope::kSession;
  }
}

SYMWIRE_DECL absl::Status MakeError(absl::StatusCode canonical, ErrorCode code,
                                    absl::string_view message) {
  SYMWIRE_REQUIRE(code != ErrorCode::kOk && canonical != absl::StatusCode::kOk);
  absl::Status status(canonical, message);
  status.SetPayload(kErrorCodePayloadUrl,
                    absl::Cord(std::to_string(static_cast<unsigned>(code))));
  return status;
}

SYMWIRE_DECL absl::Status MakeError(ErrorCode code, absl::string_view message) {
  SYMWIRE_REQUIRE(code != ErrorCode::kOk);
  absl::Status status(CanonicalCode(code), message);
  status.SetPayload(kErrorCodePayloadUrl,
                    absl::Cord(std::to_string(static_cast<unsigned>(code))));
  return status;
}

SYMWIRE_DECL ErrorCode detail::ErrorCodeOfFailure(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorCodePayloadUrl);
  if (!payload.has_value()) return ErrorCode::kOk;
  unsigned value = 0;
  for (char c : std::string(*payload)) {
    if (c < '0' || c > '9' || value > 65535) return ErrorCode::kOk;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return static_cast<ErrorCode>(value);
}

}  // namespace symwire

#endif  // SYMWIRE_IMPL_ERROR_IPP_
