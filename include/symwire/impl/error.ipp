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
      return absl::StatusCode::kInvalidArgument;
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
      return true;
  }
}

SYMWIRE_DECL absl::Status MakeError(ErrorCode code, absl::string_view message) {
  SYMWIRE_REQUIRE(code != ErrorCode::kOk);
  absl::Status status(CanonicalCode(code), message);
  status.SetPayload(kErrorCodePayloadUrl,
                    absl::Cord(std::to_string(static_cast<unsigned>(code))));
  return status;
}

SYMWIRE_DECL ErrorCode GetErrorCode(const absl::Status& status) {
  if (status.ok()) return ErrorCode::kOk;
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
