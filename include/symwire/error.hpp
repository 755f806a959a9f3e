// File: symwire/error.hpp
// Layer 1-2 error vocabulary: symwire::ErrorCode (values are part of the wire
// protocol: SPEC.md §7, never renumbered), the mapping onto
// absl::StatusCode, and helpers that attach/read the code on an absl::Status.
//
// Every absl::Status produced by symwire for untrusted input carries an
// ErrorCode payload under kErrorCodePayloadUrl, so a caller can branch on the
// precise condition (GetErrorCode) while generic code uses the canonical
// absl::StatusCode.
#ifndef SYMWIRE_ERROR_HPP_
#define SYMWIRE_ERROR_HPP_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "symwire/config.hpp"

namespace symwire {

// ErrorCode
// The specific reason for a failure. Values 1..99 are framing (layer 1),
// 100..199 are the session layer's (SPEC.md §18). 0 means "no symwire code".
enum class ErrorCode : uint16_t {
  kOk = 0,
  // --- connection preface (SPEC.md §3) ---
  kBadPreface = 1,          // kInvalidArgument: magic bytes do not match
  kUnsupportedVersion = 2,  // kUnimplemented: wire version not supported
  // --- varints (SPEC.md §2) ---
  kNonCanonicalVarint = 3,  // kInvalidArgument: not the shortest encoding
  kVarintOutOfRange = 4,    // kInvalidArgument: value > 2^62-1 (encoder)
  // --- frame header (SPEC.md §4) ---
  kBadHeaderLength = 5,     // kInvalidArgument: header_length < 9
  kHeaderTooLarge = 6,      // kResourceExhausted: header size > limit
  kHeaderCrcMismatch = 7,   // kDataLoss: CRC32C of the header differs
  kUnknownMessageType = 8,  // kInvalidArgument: type byte > 5
  kReservedFlags = 9,       // kInvalidArgument: reserved flag bit set, or
                            //   a flag not allowed on this message type
  kBadStreamId = 10,        // kInvalidArgument: stream id 0 / non-0 rule
  kMalformedHeader = 11,    // kInvalidArgument: a field overruns the header
  kPayloadTooLarge = 12,    // kResourceExhausted: payload_length > limit
  kPayloadChecksumMismatch = 13,  // kDataLoss: XXH3-64 of payload differs
  // --- extensions (SPEC.md §5) ---
  kMalformedExtension = 14,        // kInvalidArgument: bad TLV or value
  kUnknownCriticalExtension = 15,  // kUnimplemented: odd unknown TLV type
  kDuplicateExtension = 16,        // kInvalidArgument: singleton repeated
  kTooManyExtensions = 17,         // kResourceExhausted: count > limit
  // --- encoder only ---
  kBufferTooSmall = 18,  // kResourceExhausted: output span too small
  kInvalidFrame = 19,    // kInvalidArgument: the caller asked the
                         //   encoder for a frame the spec forbids
  // --- session layer (SPEC.md §18); scope in brackets (ScopeOf) ---
  kMalformedPayload = 100,      // kInvalidArgument [session]: §11 rules
  kUnknownCriticalParam = 101,  // kUnimplemented [session]: odd unknown id
  kMissingParam = 102,          // kInvalidArgument [session]
  kVersionMismatch = 103,       // kUnimplemented [session]: no common version
  kIncompatibleRoles = 104,     // kFailedPrecondition [session]
  kUnauthenticated = 105,       // kUnauthenticated [session]
  kHandshakeTimeout = 106,      // kDeadlineExceeded [connection]
  kUnexpectedFrame = 107,       // kInvalidArgument [session]
  kSequenceGap = 108,           // kDataLoss [session]
  kBadAck = 109,                // kInvalidArgument [session]
  kUnknownTask = 110,           // kInvalidArgument [session]
  kTaskStateViolation = 111,    // kInvalidArgument [session]
  kTaskIdReused = 112,          // kInvalidArgument [session]
  kTaskLimitExceeded = 113,     // kResourceExhausted [session]
  kNoCredit = 114,              // kResourceExhausted [local]
  kReplayBufferFull = 115,      // kResourceExhausted [local]
  kPeerUnresponsive = 116,      // kDeadlineExceeded [connection]
  kPingFlood = 117,             // kResourceExhausted [session]: pings, or
                                //   frames carrying nothing new (§14.1)
  kSessionExpired = 118,        // kDataLoss [session]
  kResumeGap = 119,             // kDataLoss [session]
  kResumeRejected = 120,        // kPermissionDenied [session]
  kConnectionLost = 121,        // kUnavailable [connection]
  kPeerDraining = 122,          // kUnavailable [local]
  kSessionClosed = 123,         // kFailedPrecondition [local]
  kFrameTooLarge = 124,         // kInvalidArgument [local]
  kWrongState = 125,            // kFailedPrecondition [local]
  kPeerError = 126,             // the peer's code [session]
  kUnimplemented = 127,         // kUnimplemented [task]: no handler for the
                                // task's METHOD, or a METHOD for a peer
                                // that did not announce it (SPEC.md §13.5)
};

// ErrorScope
// What an error ends (SPEC.md §18): one API call (kLocal), the connection
// while the session resumes (kConnection), or the whole session (kSession).
enum class ErrorScope : uint8_t { kLocal, kConnection, kSession };

// ScopeOf
// The scope of `code`: every framing code (1..19) is kConnection (a byte
// stream that broke cannot be trusted, but a new connection can resume the
// session); session codes as in SPEC.md §18; kOk and unknown codes kSession.
SYMWIRE_DECL ErrorScope ScopeOf(ErrorCode code) noexcept;

// The type URL under which the ErrorCode is stored in an absl::Status.
inline constexpr absl::string_view kErrorCodePayloadUrl =
    "type.symwire.dev/symwire.ErrorCode";

// ErrorCodeName
// Returns the stable upper-case name of `code` ("HEADER_CRC_MISMATCH"), or
// "UNKNOWN" for a value this version does not define. Does not allocate.
SYMWIRE_DECL absl::string_view ErrorCodeName(ErrorCode code) noexcept;

// CanonicalCode
// Returns the absl::StatusCode that `code` maps onto (SPEC.md §7, §18);
// kUnknown for PEER_ERROR, whose code is the peer's.
SYMWIRE_DECL absl::StatusCode CanonicalCode(ErrorCode code) noexcept;

// IsFatal
// True if the condition ends at least the connection: every framing error
// (after one the byte stream cannot be resynchronised safely) and every
// session error of scope kConnection or kSession. False for encoder-side
// conditions and local (one API call) refusals.
SYMWIRE_DECL bool IsFatal(ErrorCode code) noexcept;

// MakeError
// Builds an absl::Status with CanonicalCode(code), the message `message`
// and `code` attached as payload. REQUIRES: code != ErrorCode::kOk.
SYMWIRE_DECL absl::Status MakeError(ErrorCode code, absl::string_view message);
// As above with an explicit canonical code, for PEER_ERROR (whose canonical
// code is the one the peer sent). REQUIRES: neither is OK.
SYMWIRE_DECL absl::Status MakeError(absl::StatusCode canonical, ErrorCode code,
                                    absl::string_view message);

// GetErrorCode
// Returns the ErrorCode attached to `status` by MakeError, ErrorCode::kOk for
// an OK status, and ErrorCode::kOk as well for a status without a symwire
// payload (it did not come from symwire). Inline for the OK case: a sender
// that checks every send's code for a retry pays no call for a success.
namespace detail {
SYMWIRE_DECL ErrorCode ErrorCodeOfFailure(const absl::Status& status);
}  // namespace detail
inline ErrorCode GetErrorCode(const absl::Status& status) {
  return status.ok() ? ErrorCode::kOk : detail::ErrorCodeOfFailure(status);
}

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/impl/error.ipp"
#endif

#endif  // SYMWIRE_ERROR_HPP_
