// File: symwire/wire/message_type.hpp
// Layer 1 (frame codec). The six message types, the flag bits, the
// connection preface and the protocol constants and limits of SPEC.md.
// Does not allocate; everything here is constexpr.
#ifndef SYMWIRE_WIRE_MESSAGE_TYPE_HPP_
#define SYMWIRE_WIRE_MESSAGE_TYPE_HPP_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace symwire {

// MessageType
// The frame type byte (SPEC.md §4.1). Wire values; never renumbered.
enum class MessageType : uint8_t {
  kAgentInit = 0,
  kAgentTask = 1,
  kAgentResponse = 2,
  kAgentError = 3,
  kAgentCancel = 4,
  kAgentSync = 5,
};

// The largest valid MessageType value.
inline constexpr uint8_t kMaxMessageType = 5;

// IsValidMessageType
// True if `value` is one of the six MessageType values.
constexpr bool IsValidMessageType(uint8_t value) noexcept {
  return value <= kMaxMessageType;
}

// MessageTypeName
// "AGENT_INIT" ... "AGENT_SYNC"; "UNKNOWN" for anything else.
constexpr absl::string_view MessageTypeName(MessageType type) noexcept {
  switch (type) {
    case MessageType::kAgentInit:
      return "AGENT_INIT";
    case MessageType::kAgentTask:
      return "AGENT_TASK";
    case MessageType::kAgentResponse:
      return "AGENT_RESPONSE";
    case MessageType::kAgentError:
      return "AGENT_ERROR";
    case MessageType::kAgentCancel:
      return "AGENT_CANCEL";
    case MessageType::kAgentSync:
      return "AGENT_SYNC";
  }
  return "UNKNOWN";
}

// StreamIdRule
// What SPEC.md §4.1 requires of a frame's stream_id for a type.
enum class StreamIdRule : uint8_t { kZero, kNonZero, kAny };

constexpr StreamIdRule StreamIdRuleFor(MessageType type) noexcept {
  switch (type) {
    case MessageType::kAgentInit:
    case MessageType::kAgentSync:
      return StreamIdRule::kZero;
    case MessageType::kAgentTask:
    case MessageType::kAgentResponse:
    case MessageType::kAgentCancel:
      return StreamIdRule::kNonZero;
    case MessageType::kAgentError:
      return StreamIdRule::kAny;
  }
  return StreamIdRule::kAny;
}

// IsSequencedFrame
// True if a frame of `type` on `stream_id` is sequenced (SPEC.md §10):
// AGENT_TASK, AGENT_RESPONSE, AGENT_CANCEL, and AGENT_ERROR on a stream
// (stream_id != 0). Those carry sequence 1, 2, 3, ... per direction, are
// kept for replay and acknowledged; every other frame (AGENT_INIT,
// AGENT_SYNC, a session-level AGENT_ERROR) is not. The one definition the
// session, the tools and the tests use.
constexpr bool IsSequencedFrame(MessageType type, uint64_t stream_id) noexcept {
  switch (type) {
    case MessageType::kAgentTask:
    case MessageType::kAgentResponse:
    case MessageType::kAgentCancel:
      return true;
    case MessageType::kAgentError:
      return stream_id != 0;
    case MessageType::kAgentInit:
    case MessageType::kAgentSync:
      return false;
  }
  return false;
}

// Frame flag bits (SPEC.md §4.2).
inline constexpr uint8_t kFlagChecksum = 0x01;   // XXH3-64 trailer present
inline constexpr uint8_t kFlagFinal = 0x02;      // last AGENT_RESPONSE
inline constexpr uint8_t kFlagsReserved = 0xFC;  // must be zero

// Extension (TLV) types (SPEC.md §5). An odd type is critical.
inline constexpr uint64_t kExtDeadline = 1;
inline constexpr uint64_t kExtTraceParent = 2;
inline constexpr uint64_t kExtMethod = 9;  // critical: SPEC.md §5.1
inline constexpr uint64_t kExtTraceState = 4;
inline constexpr uint64_t kExtMetadata = 6;

constexpr bool IsCriticalExtension(uint64_t type) noexcept {
  return (type & 1u) != 0;
}
constexpr bool IsKnownExtension(uint64_t type) noexcept {
  return type == kExtDeadline || type == kExtTraceParent ||
         type == kExtMethod || type == kExtTraceState || type == kExtMetadata;
}

// Sizes and limits (SPEC.md §4, §5, §8).
inline constexpr size_t kPrefaceSize = 8;
inline constexpr uint8_t kWireVersion = 1;
inline constexpr std::array<std::byte, kPrefaceSize> kPrefaceBytes = {
    std::byte{0x89}, std::byte{0x53}, std::byte{0x59}, std::byte{0x4D},
    std::byte{0x57}, std::byte{0x0D}, std::byte{0x0A}, std::byte{kWireVersion}};
inline constexpr size_t kPrefaceMagicSize = 7;

inline constexpr size_t kHeaderCrcSize = 4;
inline constexpr size_t kPayloadChecksumSize = 8;
// header_length counts the header bytes after its own varint (SPEC.md §4).
inline constexpr size_t kMinHeaderLength = 9;
inline constexpr size_t kMaxHeaderLength = 16383;  // 2-byte varint max
// Whole headers: the header_length varint plus header_length.
inline constexpr size_t kMinHeaderSize = 10;
inline constexpr size_t kMaxHeaderSizeLimit = 16385;
inline constexpr size_t kDefaultMaxHeaderSize = 4096;
inline constexpr uint64_t kMaxPayloadSizeLimit = (uint64_t{1} << 30) - 1;
inline constexpr uint64_t kDefaultMaxPayloadSize = uint64_t{16} << 20;
inline constexpr uint32_t kDefaultMaxExtensions = 32;
inline constexpr uint32_t kMaxExtensionsLimit = 16383;
inline constexpr size_t kTraceParentSize = 26;
inline constexpr size_t kMaxTraceStateSize = 512;
// METHOD (SPEC.md §5.1): 1..255 bytes, each a visible ASCII character.
inline constexpr size_t kMaxMethodSize = 255;
constexpr bool IsMethodByte(uint8_t c) noexcept {
  return c >= 0x21 && c <= 0x7E;
}

}  // namespace symwire

#endif  // SYMWIRE_WIRE_MESSAGE_TYPE_HPP_
