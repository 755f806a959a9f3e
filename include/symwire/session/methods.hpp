// File: symwire/session/methods.hpp
// Layer 2 (session). Task methods (SPEC.md §5.1, §13.5): the name rules a
// caller checks before submitting, the reserved "symwire." prefix, and the
// built-in health method's payload (HealthStatus).
#ifndef SYMWIRE_SESSION_METHODS_HPP_
#define SYMWIRE_SESSION_METHODS_HPP_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "symwire/error.hpp"
#include "symwire/wire/message_type.hpp"

namespace symwire {

// kReservedMethodPrefix: methods starting with it are symwire's own
// (SPEC.md §13.5); a server never dispatches them to a user's handler.
inline constexpr absl::string_view kReservedMethodPrefix = "symwire.";
// kHealthMethod: the built-in health check (SPEC.md §13.6).
inline constexpr absl::string_view kHealthMethod = "symwire.health";

// ValidateMethodName
// OK if `method` may be sent as a METHOD value: 1..255 bytes, each 0x21..0x7e
// (visible ASCII: no space, no control byte, no UTF-8). Errors:
// kInvalidArgument / INVALID_FRAME naming the bad byte and its index, or
// the length. Does not allocate on success.
inline absl::Status ValidateMethodName(absl::string_view method) {
  if (method.empty() || method.size() > kMaxMethodSize) {
    return MakeError(
        ErrorCode::kInvalidFrame,
        absl::StrCat("method of ", method.size(), " bytes, expected 1..255"));
  }
  for (size_t i = 0; i < method.size(); ++i) {
    const auto c = static_cast<uint8_t>(method[i]);
    if (!IsMethodByte(c)) {
      return MakeError(
          ErrorCode::kInvalidFrame,
          absl::StrCat("method \"", absl::CHexEscape(method.substr(0, 64)),
                       "\": byte 0x", absl::Hex(c, absl::kZeroPad2),
                       " at index ", i, " is not visible ASCII (0x21..0x7e)"));
    }
  }
  return absl::OkStatus();
}

// IsReservedMethod: true for "symwire." and everything below it.
inline bool IsReservedMethod(absl::string_view method) {
  return method.substr(0, kReservedMethodPrefix.size()) ==
         kReservedMethodPrefix;
}

// HealthStatus
// The answer of the health method (SPEC.md §13.6): one byte, the final
// response's whole payload. Values as gRPC's health checking protocol where
// they overlap (SERVING 1, NOT_SERVING 2); 3 is symwire's DRAINING.
enum class HealthStatus : uint8_t {
  kServing = 1,     // accepts tasks
  kNotServing = 2,  // up, but its user says it must not get tasks
  kDraining = 3,    // closing gracefully: running tasks finish, send none
};

// HealthStatusName: "SERVING", "NOT_SERVING", "DRAINING", or "UNKNOWN".
inline absl::string_view HealthStatusName(HealthStatus status) {
  switch (status) {
    case HealthStatus::kServing:
      return "SERVING";
    case HealthStatus::kNotServing:
      return "NOT_SERVING";
    case HealthStatus::kDraining:
      return "DRAINING";
  }
  return "UNKNOWN";
}

// ParseHealthStatus
// Reads a health answer's payload. Errors: kInvalidArgument /
// MALFORMED_PAYLOAD when it is not exactly one byte of value 1..3 (the
// message names the size or the value, at payload offset 0).
inline absl::StatusOr<HealthStatus> ParseHealthStatus(
    absl::Span<const std::byte> payload) {
  if (payload.size() != 1) {
    return MakeError(ErrorCode::kMalformedPayload,
                     absl::StrCat("health answer of ", payload.size(),
                                  " bytes, expected 1 at offset 0"));
  }
  const auto v = static_cast<uint8_t>(payload[0]);
  if (v < 1 || v > 3) {
    return MakeError(
        ErrorCode::kMalformedPayload,
        absl::StrCat("health status ", v, " at offset 0 is not 1..3"));
  }
  return static_cast<HealthStatus>(v);
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_METHODS_HPP_
