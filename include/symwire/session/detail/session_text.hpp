// File: symwire/session/detail/session_text.hpp
// Layer 2 helper. Small formatting and unit helpers shared by the parts of
// the session implementation (session/impl/session*.ipp): names and hex ids
// for messages, duration <-> wire microseconds, and the one answer to a
// resume the acceptor cannot serve (§16.2).
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_SESSION_TEXT_HPP_
#define SYMWIRE_SESSION_DETAIL_SESSION_TEXT_HPP_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/message_type.hpp"

namespace symwire::detail {

inline absl::string_view TypeName(MessageType type) {
  return MessageTypeName(type);
}

inline std::string HexId(absl::Span<const std::byte> id) {
  std::string out;
  for (std::byte b : id) {
    absl::StrAppendFormat(&out, "%02x", static_cast<unsigned>(b));
  }
  return out;
}

inline uint64_t DurationMicros(absl::Duration d) {
  const int64_t us = absl::ToInt64Microseconds(d);
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

// §16.2: the one answer to a resume the acceptor cannot serve, whether the
// session is unknown, has ended, or the proof does not match.
inline absl::Status ResumeUnavailable(const SessionId& id) {
  return MakeError(ErrorCode::kSessionExpired,
                   absl::StrFormat("session %s is unknown or has ended, or "
                                   "the resume proof does not match",
                                   HexId(id)));
}

inline absl::Duration MicrosDuration(uint64_t us) {
  // Wire values are at most 2^62 - 1, which fits int64.
  return absl::Microseconds(static_cast<int64_t>(us));
}

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_SESSION_TEXT_HPP_
