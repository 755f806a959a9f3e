// File: symwire/session/detail/control_params.hpp
// Layer 2 helper. The engine behind control.hpp's parameter-list codec
// (SPEC.md §11): one rule table per message (§11.1, §11.2), the single
// parsing pass in wire order with its cold-path error text, the required-
// parameter check, and the counting / writing sinks the encoders share.
// session/impl/control.ipp builds the public Append* / Parse* on it.
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_CONTROL_PARAMS_HPP_
#define SYMWIRE_SESSION_DETAIL_CONTROL_PARAMS_HPP_

#include <array>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire {
namespace detail {
// A nested namespace: src/symwire.cpp compiles every .ipp in one unit, and
// these short names must not meet the other session files' helpers.
namespace control {

enum class ValueKind : uint8_t { kVarint, kBytes, kFlag };

// Phase bits of a rule's `defined` / `required` masks: 1 << phase. The
// lists without phases (SYNC, ERROR, CANCEL) use kAnyPhase and evaluate
// their masks at kNoPhases.
inline constexpr uint8_t kHello = 1u << 0;
inline constexpr uint8_t kChallenge = 1u << 1;
inline constexpr uint8_t kProof = 1u << 2;
inline constexpr uint8_t kWelcome = 1u << 3;
inline constexpr uint8_t kAnyPhase = 0x0F;
inline constexpr uint8_t kHelloWelcome = kHello | kWelcome;
inline constexpr uint8_t kNoPhases = kHello;  // "the" phase of a flat list

// One row of SPEC.md §11.1 / §11.2, indexed by param_id - 1.
struct ParamRule {
  absl::string_view name;
  uint64_t min;     // varint: smallest value; bytes: shortest length
  uint64_t max;     // varint: largest value; bytes: longest length
  uint64_t one_of;  // varint: if non-zero, bit v set = value v allowed
  ValueKind kind;
  uint8_t defined;   // phases the parameter is defined in (rule 2)
  uint8_t required;  // phases it is required in (rule 5)
};

inline constexpr uint64_t kAnyVarint = kVarintMax;

// SPEC.md §11.1. max_version's ">= min_version" is checked after the list.
// session_id and last_received are optional in HELLO but come as a pair
// (ParseInit); they are required in WELCOME. resume_token and resume_proof
// are required in WELCOME by whether it resumes (ParseInit), resume_proof
// is optional in PROOF (the session requires it when resuming).
inline constexpr ParamRule kInitRules[] = {
    {"phase", 0, 3, 0, ValueKind::kVarint, kAnyPhase, kAnyPhase},
    {"min_version", 1, kAnyVarint, 0, ValueKind::kVarint, kHello, kHello},
    {"max_version", 0, kAnyVarint, 0, ValueKind::kVarint, kHello, kHello},
    {"version", 0, kAnyVarint, 0, ValueKind::kVarint, kWelcome, kWelcome},
    {"agent_id", 1, kMaxAgentIdSize, 0, ValueKind::kBytes, kHelloWelcome,
     kHelloWelcome},
    {"role", 0, 2, 0, ValueKind::kVarint, kHelloWelcome, kHelloWelcome},
    {"capabilities", 0, kAnyVarint, 0, ValueKind::kVarint, kHelloWelcome, 0},
    {"max_payload_bytes", 0, (uint64_t{1} << 30) - 1, 0, ValueKind::kVarint,
     kHelloWelcome, kHelloWelcome},
    {"max_header_bytes", 10, 16385, 0, ValueKind::kVarint, kHelloWelcome,
     kHelloWelcome},
    {"max_tasks", 1, (uint64_t{1} << 32) - 1, 0, ValueKind::kVarint,
     kHelloWelcome, kHelloWelcome},
    {"replay_bytes", 1, kAnyVarint, 0, ValueKind::kVarint, kHelloWelcome,
     kHelloWelcome},
    {"replay_frames", 1, kAnyVarint, 0, ValueKind::kVarint, kHelloWelcome,
     kHelloWelcome},
    {"ping_interval_us", 1, kAnyVarint, 0, ValueKind::kVarint, kHelloWelcome,
     kHelloWelcome},
    {"min_ping_interval_us", 0, kAnyVarint, 0, ValueKind::kVarint,
     kHelloWelcome, kHelloWelcome},
    {"auth_method", 0, kAnyVarint, 0, ValueKind::kVarint, kHello, kHello},
    {"auth_data", 0, kMaxAuthDataSize, 0, ValueKind::kBytes, kAnyPhase, 0},
    {"nonce", kNonceSize, kNonceSize, 0, ValueKind::kBytes,
     kHello | kChallenge | kWelcome, kHello | kChallenge | kWelcome},
    {"session_id", kSessionIdSize, kSessionIdSize, 0, ValueKind::kBytes,
     kHelloWelcome, kWelcome},
    {"resume_token", kResumeTokenSize, kResumeTokenSize, 0, ValueKind::kBytes,
     kWelcome, 0},
    {"last_received", 0, kAnyVarint, 0, ValueKind::kVarint, kHelloWelcome,
     kWelcome},
    {"resumed", 0, 0, 0, ValueKind::kFlag, kWelcome, 0},
    {"resume_window_us", 0, kAnyVarint, 0, ValueKind::kVarint, kWelcome,
     kWelcome},
    {"resume_proof", kResumeProofSize, kResumeProofSize, 0, ValueKind::kBytes,
     kProof | kWelcome, 0},
};

// SPEC.md §11.2.
inline constexpr ParamRule kSyncRules[] = {
    {"ack", 0, kAnyVarint, 0, ValueKind::kVarint, kAnyPhase, 0},
    {"ping", 0, kAnyVarint, 0, ValueKind::kVarint, kAnyPhase, 0},
    {"pong", 0, kAnyVarint, 0, ValueKind::kVarint, kAnyPhase, 0},
    {"drain", 0, kAnyVarint, 0, ValueKind::kVarint, kAnyPhase, 0},
    {"bye", 0, 0, 0, ValueKind::kFlag, kAnyPhase, 0},
};
inline constexpr ParamRule kErrorRules[] = {
    {"code", 1, 16, 0, ValueKind::kVarint, kAnyPhase, kAnyPhase},
    {"message", 0, kMaxErrorMessageSize, 0, ValueKind::kBytes, kAnyPhase, 0},
    {"retryable", 0, 0, 0, ValueKind::kFlag, kAnyPhase, 0},
    {"detail", 0, 65535, 0, ValueKind::kVarint, kAnyPhase, 0},
};
inline constexpr ParamRule kCancelRules[] = {
    {"reason", 1, 4, (1u << 1) | (1u << 4), ValueKind::kVarint, kAnyPhase, 0},
};

struct ListRules {
  absl::string_view message;  // error-message prefix: "agent_init"
  const ParamRule* rules;
  size_t count;
  bool init;  // AGENT_INIT: phase first, rules per phase
};

inline constexpr ListRules kInitList{"agent_init", kInitRules,
                                     std::size(kInitRules), true};
inline constexpr ListRules kSyncList{"agent_sync", kSyncRules,
                                     std::size(kSyncRules), false};
inline constexpr ListRules kErrorList{"agent_error", kErrorRules,
                                      std::size(kErrorRules), false};
inline constexpr ListRules kCancelList{"agent_cancel", kCancelRules,
                                       std::size(kCancelRules), false};

// Every table has fewer than 32 rows: `seen` masks fit in 32 bits.
inline constexpr size_t kMaxRules = 23;
static_assert(std::size(kInitRules) == kMaxRules);

inline const ParamRule* RuleFor(const ListRules& list, uint64_t id) {
  return id >= 1 && id <= list.count ? &list.rules[id - 1] : nullptr;
}

inline absl::string_view ParamName(const ListRules& list, uint64_t id) {
  const ParamRule* rule = RuleFor(list, id);
  return rule != nullptr ? rule->name : absl::string_view("unknown");
}

inline constexpr uint32_t Bit(uint64_t id) {
  return uint32_t{1} << static_cast<unsigned>(id);
}

inline absl::string_view PhaseLabel(uint8_t phase_bit) {
  switch (phase_bit) {
    case kHello:
      return "HELLO";
    case kChallenge:
      return "CHALLENGE";
    case kProof:
      return "PROOF";
    case kWelcome:
      return "WELCOME";
  }
  return "UNKNOWN";
}

// ---------------------------------------------------------------------------
// Errors. Offsets follow SPEC.md §7.1's table for TLVs (which §11 rule 2
// borrows): a param_id or param_length that overruns or is not canonical is
// reported at its own first byte; a value that runs past the payload at its
// param_length; an undefined critical or duplicate parameter at its
// param_id; a value rule (including the varint inside a varint value) at the
// value's first byte; a parameter missing after the list at the end of the
// payload; INIT without phase first at offset 0. Byte values are never
// echoed (auth_data and resume_token are secrets); only their lengths.

SYMWIRE_COLD inline absl::Status ListError(ErrorCode code,
                                           const ListRules& list,
                                           absl::string_view what,
                                           size_t offset) {
  return MakeError(code, absl::StrCat(list.message, " ", what,
                                      " at payload offset ", offset));
}

SYMWIRE_COLD inline std::string ParamLabel(const ListRules& list, uint64_t id) {
  return absl::StrCat("param ", id, " (", ParamName(list, id), ")");
}

enum class Read : uint8_t { kOk, kOverrun, kNonCanonical };

// Reads the varint at payload[pos], which must lie wholly inside the
// payload (SPEC.md §11 rule 1: first the fit, then the canonical form).
inline Read ReadListVarint(absl::Span<const std::byte> payload, size_t pos,
                           uint64_t& value, size_t& size) {
  if (pos >= payload.size()) {
    size = 0;
    return Read::kOverrun;
  }
  size = VarintSizeFromFirstByte(payload[pos]);
  if (size > payload.size() - pos) return Read::kOverrun;
  value = LoadVarint(payload.data() + pos, size);
  return IsCanonicalVarint(value, size) ? Read::kOk : Read::kNonCanonical;
}

// A param_id (id == nullptr) or the param_length of param *id that is
// missing (size 0), runs past the payload, or is not canonical.
SYMWIRE_COLD inline absl::Status VarintFieldError(const ListRules& list,
                                                  const uint64_t* id, Read read,
                                                  uint64_t value, size_t size,
                                                  size_t left, size_t offset) {
  std::string what;
  if (read == Read::kNonCanonical) {
    // A non-canonical id is rejected, but its value still names it.
    what = id == nullptr
               ? absl::StrCat("param_id ", value, " (", ParamName(list, value),
                              ") is a non-canonical ", size, "-byte varint")
               : absl::StrCat(ParamLabel(list, *id), " param_length ", value,
                              " is a non-canonical ", size, "-byte varint");
  } else {
    const std::string field =
        id == nullptr ? std::string("param_id")
                      : absl::StrCat(ParamLabel(list, *id), " param_length");
    what = size == 0 ? absl::StrCat(field, " is missing: the payload ends")
                     : absl::StrCat(field, ": ", size,
                                    "-byte varint runs past the end of the "
                                    "payload (",
                                    left, " bytes left)");
  }
  return ListError(ErrorCode::kMalformedPayload, list, what, offset);
}

SYMWIRE_COLD inline absl::Status ValueOverrunError(const ListRules& list,
                                                   uint64_t id, uint64_t length,
                                                   size_t left, size_t offset) {
  return ListError(ErrorCode::kMalformedPayload, list,
                   absl::StrCat(ParamLabel(list, id), " value of ", length,
                                " bytes runs past the end of the payload (",
                                left, " bytes left)"),
                   offset);
}

SYMWIRE_COLD inline absl::Status CriticalParamError(const ListRules& list,
                                                    uint64_t id,
                                                    uint8_t phase_bit,
                                                    size_t offset) {
  const std::string where = RuleFor(list, id) != nullptr && list.init
                                ? absl::StrCat(" in ", PhaseLabel(phase_bit))
                                : std::string();
  return ListError(ErrorCode::kUnknownCriticalParam, list,
                   absl::StrCat(ParamLabel(list, id), " is not defined", where,
                                " and is critical (odd)"),
                   offset);
}

SYMWIRE_COLD inline absl::Status DuplicateParamError(const ListRules& list,
                                                     uint64_t id,
                                                     size_t offset) {
  return ListError(ErrorCode::kMalformedPayload, list,
                   absl::StrCat(ParamLabel(list, id), " appears twice"),
                   offset);
}

SYMWIRE_COLD inline std::string RangeText(const ParamRule& rule) {
  if (rule.one_of != 0) {
    std::string out = "is not one of";
    for (unsigned v = 0; v < 64; ++v) {
      if ((rule.one_of >> v) & 1u) absl::StrAppend(&out, " ", v);
    }
    return out;
  }
  if (rule.max == kAnyVarint) return absl::StrCat("is below ", rule.min);
  return absl::StrCat("out of range ", rule.min, "..", rule.max);
}

// Explains why a value broke its rule (SPEC.md §11 rule 4, and rule 1 for
// the varint inside a varint value).
SYMWIRE_COLD inline absl::Status ValueError(const ListRules& list, uint64_t id,
                                            absl::Span<const std::byte> value,
                                            size_t offset) {
  const ParamRule& rule = *RuleFor(list, id);
  const std::string label = ParamLabel(list, id);
  std::string why;
  switch (rule.kind) {
    case ValueKind::kFlag:
      why = absl::StrCat("is a flag with length ", value.size(),
                         "; a flag has length 0");
      break;
    case ValueKind::kBytes:
      why = rule.min == rule.max
                ? absl::StrCat("length ", value.size(), " is not ", rule.min)
                : absl::StrCat("length ", value.size(), " out of range ",
                               rule.min, "..", rule.max);
      break;
    case ValueKind::kVarint: {
      if (value.empty()) {
        why = "value is empty; expected one varint";
        break;
      }
      const size_t size = VarintSizeFromFirstByte(value[0]);
      if (size > value.size()) {
        why = absl::StrCat("value: ", size,
                           "-byte varint runs past the end of the ",
                           value.size(), "-byte value");
        break;
      }
      const uint64_t v = LoadVarint(value.data(), size);
      if (!IsCanonicalVarint(v, size)) {
        why = absl::StrCat("value ", v, " is a non-canonical ", size,
                           "-byte varint");
      } else if (size != value.size()) {
        why = absl::StrCat("value ", v, " is followed by ", value.size() - size,
                           " trailing bytes");
      } else {
        why = absl::StrCat("value ", v, " ", RangeText(rule));
      }
      break;
    }
  }
  return ListError(ErrorCode::kMalformedPayload, list,
                   absl::StrCat(label, " ", why), offset);
}

SYMWIRE_COLD inline absl::Status PhaseNotFirstError(const ListRules& list,
                                                    const uint64_t* found) {
  return ListError(
      ErrorCode::kMissingParam, list,
      found == nullptr
          ? std::string("param 1 (phase) is missing: the payload is empty")
          : absl::StrCat("param 1 (phase) must be the first parameter, "
                         "found ",
                         ParamLabel(list, *found)),
      0);
}

SYMWIRE_COLD inline absl::Status MissingParamError(const ListRules& list,
                                                   uint8_t phase_bit,
                                                   uint64_t id, bool resuming,
                                                   size_t offset) {
  absl::string_view why;
  if (resuming) {
    why = phase_bit == kHello
              ? " (a resuming HELLO has session_id and last_received)"
              : " (a resumed WELCOME has resume_proof, a new session's "
                "resume_token)";
  }
  return ListError(
      ErrorCode::kMissingParam, list,
      absl::StrCat(
          list.init ? absl::StrCat(PhaseLabel(phase_bit), " ") : std::string(),
          "is missing required ", ParamLabel(list, id), why),
      offset);
}

// ---------------------------------------------------------------------------
// The parsing pass.

// A defined parameter, as handed to a list's store function.
struct Param {
  uint64_t id = 0;
  uint64_t number = 0;                // varint values
  absl::Span<const std::byte> bytes;  // bytes values (views into payload)
};

struct ListState {
  uint32_t seen = 0;      // Bit(id) of every defined parameter seen
  uint8_t phase_bit = 0;  // INIT: 1 << phase once known
  std::array<size_t, kMaxRules + 1> value_offset{};  // by id
};

// Checks `value` against `rule` (rule 4). On success fills param.
inline bool CheckValue(const ParamRule& rule, absl::Span<const std::byte> value,
                       Param& param) {
  switch (rule.kind) {
    case ValueKind::kFlag:
      return value.empty();
    case ValueKind::kBytes:
      param.bytes = value;
      return value.size() >= rule.min && value.size() <= rule.max;
    case ValueKind::kVarint:
      break;
  }
  // Exactly one canonical varint filling the value.
  if (value.empty() || VarintSizeFromFirstByte(value[0]) != value.size()) {
    return false;
  }
  const uint64_t v = LoadVarint(value.data(), value.size());
  if (!IsCanonicalVarint(v, value.size())) return false;
  param.number = v;
  if (rule.one_of != 0) return v < 64 && ((rule.one_of >> v) & 1u) != 0;
  return v >= rule.min && v <= rule.max;
}

// Runs SPEC.md §11 rules 1-4 over `payload` in wire order, calling
// store(param) for every defined parameter; rule 5 is the caller's.
template <typename Store>
absl::Status ParseList(absl::Span<const std::byte> payload,
                       const ListRules& list, ListState& state, Store&& store) {
  const size_t end = payload.size();
  state.phase_bit = list.init ? 0 : kNoPhases;
  size_t pos = 0;
  while (pos < end) {
    const size_t id_at = pos;
    uint64_t id = 0;
    size_t size = 0;
    Read read = ReadListVarint(payload, pos, id, size);
    if (SYMWIRE_UNLIKELY(read != Read::kOk)) {
      return VarintFieldError(list, nullptr, read, id, size, end - pos, pos);
    }
    pos += size;
    const size_t length_at = pos;
    uint64_t length = 0;
    read = ReadListVarint(payload, pos, length, size);
    if (SYMWIRE_UNLIKELY(read != Read::kOk)) {
      return VarintFieldError(list, &id, read, length, size, end - pos, pos);
    }
    pos += size;
    if (SYMWIRE_UNLIKELY(length > end - pos)) {
      return ValueOverrunError(list, id, length, end - pos, length_at);
    }
    const size_t value_at = pos;
    const absl::Span<const std::byte> value =
        payload.subspan(pos, static_cast<size_t>(length));
    pos += static_cast<size_t>(length);

    // §11: INIT's first parameter MUST be phase, which says what the
    // others mean; it takes rule 2's place for that parameter.
    if (state.phase_bit == 0 && id != param::kPhase) {
      return PhaseNotFirstError(list, &id);
    }
    const ParamRule* rule = RuleFor(list, id);
    if (rule == nullptr ||
        (state.phase_bit != 0 && (rule->defined & state.phase_bit) == 0)) {
      if (id % 2 == 0) continue;  // rule 2: undefined even ids are skipped
      return CriticalParamError(list, id, state.phase_bit, id_at);
    }
    if (SYMWIRE_UNLIKELY((state.seen & Bit(id)) != 0)) {  // rule 3
      return DuplicateParamError(list, id, id_at);
    }
    Param param;
    param.id = id;
    if (SYMWIRE_UNLIKELY(!CheckValue(*rule, value, param))) {  // rule 4
      return ValueError(list, id, value, value_at);
    }
    state.seen |= Bit(id);
    state.value_offset[id] = value_at;
    if (state.phase_bit == 0) {
      state.phase_bit = static_cast<uint8_t>(1u << param.number);
    }
    store(param);
  }
  if (state.phase_bit == 0) return PhaseNotFirstError(list, nullptr);
  return absl::OkStatus();
}

// Rule 5: the lowest required id not seen, reported at the payload's end.
inline absl::Status CheckRequired(const ListRules& list, const ListState& state,
                                  uint32_t extra, size_t end) {
  uint32_t required = extra;
  for (size_t i = 0; i < list.count; ++i) {
    if ((list.rules[i].required & state.phase_bit) != 0) required |= Bit(i + 1);
  }
  const uint32_t missing = required & ~state.seen;
  if (SYMWIRE_LIKELY(missing == 0)) return absl::OkStatus();
  for (uint64_t id = 1; id <= list.count; ++id) {
    if ((missing & Bit(id)) != 0) {
      return MissingParamError(list, state.phase_bit, id,
                               (extra & Bit(id)) != 0, end);
    }
  }
  SYMWIRE_ASSERT(false);
  return absl::OkStatus();
}

inline absl::string_view AsStringView(absl::Span<const std::byte> bytes) {
  return absl::string_view(reinterpret_cast<const char*>(bytes.data()),
                           bytes.size());
}

template <size_t N>
std::array<std::byte, N> ToArray(absl::Span<const std::byte> bytes) {
  SYMWIRE_ASSERT(bytes.size() == N);
  std::array<std::byte, N> out;
  std::memcpy(out.data(), bytes.data(), N);
  return out;
}

inline constexpr uint32_t kResumeSet =
    Bit(param::kSessionId) | Bit(param::kLastReceived);

// ---------------------------------------------------------------------------
// Encoding. A Sink either counts (CountSink) or writes (WriteSink), so one
// function per message both sizes and writes it. Values were validated
// before either pass.

struct CountSink {
  size_t size = 0;
  void Varint(uint64_t id, uint64_t value) {
    size += VarintSize(id) + VarintSize(VarintSize(value)) + VarintSize(value);
  }
  void Bytes(uint64_t id, absl::Span<const std::byte> value) {
    size += VarintSize(id) + VarintSize(value.size()) + value.size();
  }
  void Flag(uint64_t id) { size += VarintSize(id) + 1; }
};

struct WriteSink {
  std::byte* p;
  void Varint(uint64_t id, uint64_t value) {
    p += EncodeVarintUnchecked(id, p);
    p += EncodeVarintUnchecked(VarintSize(value), p);
    p += EncodeVarintUnchecked(value, p);
  }
  void Bytes(uint64_t id, absl::Span<const std::byte> value) {
    p += EncodeVarintUnchecked(id, p);
    p += EncodeVarintUnchecked(value.size(), p);
    if (!value.empty()) std::memcpy(p, value.data(), value.size());
    p += value.size();
  }
  void Flag(uint64_t id) {
    p += EncodeVarintUnchecked(id, p);
    *p++ = std::byte{0};
  }
};

// Sizes `write` with a CountSink, grows `out` once and writes.
template <typename Write>
void AppendWith(std::vector<std::byte>& out, Write&& write) {
  CountSink count;
  write(count);
  const size_t old_size = out.size();
  out.resize(old_size + count.size);
  WriteSink sink{out.data() + old_size};
  write(sink);
  SYMWIRE_ASSERT(sink.p == out.data() + out.size());
}

inline absl::Span<const std::byte> AsBytes(absl::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

SYMWIRE_COLD inline absl::Status EncodeError(const ListRules& list,
                                             absl::string_view what) {
  return MakeError(ErrorCode::kInvalidFrame,
                   absl::StrCat(list.message, " ", what));
}

// Validates a value against its row of the tables (the parser's rule 4),
// so encoder and parser cannot disagree on a range.
inline absl::Status CheckVarintParam(const ListRules& list, uint64_t id,
                                     uint64_t value) {
  const ParamRule& rule = *RuleFor(list, id);
  if (SYMWIRE_UNLIKELY(value > kVarintMax)) {
    return EncodeError(
        list, absl::StrCat(ParamLabel(list, id), " value ", value,
                           " exceeds the varint maximum ", kVarintMax));
  }
  const bool ok = rule.one_of != 0
                      ? value < 64 && ((rule.one_of >> value) & 1u) != 0
                      : value >= rule.min && value <= rule.max;
  if (SYMWIRE_LIKELY(ok)) return absl::OkStatus();
  return EncodeError(list, absl::StrCat(ParamLabel(list, id), " value ", value,
                                        " ", RangeText(rule)));
}

inline absl::Status CheckBytesParam(const ListRules& list, uint64_t id,
                                    size_t size) {
  const ParamRule& rule = *RuleFor(list, id);
  if (SYMWIRE_LIKELY(size >= rule.min && size <= rule.max)) {
    return absl::OkStatus();
  }
  return EncodeError(list,
                     absl::StrCat(ParamLabel(list, id), " length ", size,
                                  " out of range ", rule.min, "..", rule.max));
}

SYMWIRE_COLD inline absl::Status MissingForEncode(const ListRules& list,
                                                  absl::string_view phase,
                                                  uint64_t id) {
  return EncodeError(
      list, absl::StrCat(phase, " needs ", ParamLabel(list, id), " to be set"));
}

inline absl::Status ValidateInit(const InitMessage& m) {
  const ListRules& list = kInitList;
  const auto phase = static_cast<unsigned>(m.phase);
  if (phase > 3) {
    return EncodeError(list, absl::StrCat("phase ", phase, " is not 0..3"));
  }
  const bool hello = m.phase == InitPhase::kHello;
  const bool welcome = m.phase == InitPhase::kWelcome;
  auto check = [&](uint64_t id, uint64_t value) {
    return CheckVarintParam(list, id, value);
  };
  absl::Status s;
  if (hello) {
    if (!(s = check(param::kMinVersion, m.min_version)).ok()) return s;
    if (!(s = check(param::kMaxVersion, m.max_version)).ok()) return s;
    if (m.max_version < m.min_version) {
      return EncodeError(
          list, absl::StrCat("param 3 (max_version) value ", m.max_version,
                             " is below min_version ", m.min_version));
    }
    if (!(s = check(param::kAuthMethod, static_cast<uint64_t>(m.auth_method)))
             .ok()) {
      return s;
    }
    // A HELLO resumes iff it has session_id, and then has last_received
    // too (SPEC.md §11.1); a position without a session is a bug. (The
    // resume token is never sent in a HELLO, §16.2.)
    if (m.session_id.has_value() != m.last_received.has_value()) {
      return EncodeError(list,
                         "HELLO sets only one of session_id and "
                         "last_received");
    }
  }
  if (welcome) {
    if (!(s = check(param::kVersion, m.version)).ok()) return s;
    if (!m.session_id) {
      return MissingForEncode(list, "WELCOME", param::kSessionId);
    }
    // §16.2: a new session's WELCOME carries the token, a resumed one
    // the acceptor's proof of it.
    if (!m.resumed && !m.resume_token) {
      return MissingForEncode(list, "WELCOME", param::kResumeToken);
    }
    if (m.resumed && !m.resume_proof) {
      return MissingForEncode(list, "resumed WELCOME", param::kResumeProof);
    }
    if (!m.last_received) {
      return MissingForEncode(list, "WELCOME", param::kLastReceived);
    }
    if (!(s = check(param::kResumeWindowUs, m.resume_window_us)).ok()) {
      return s;
    }
  }
  if ((hello || welcome) && m.last_received &&
      !(s = check(param::kLastReceived, *m.last_received)).ok()) {
    return s;
  }
  if (hello || welcome) {
    if (!(s = CheckBytesParam(list, param::kAgentId, m.agent_id.size())).ok()) {
      return s;
    }
    const std::pair<uint64_t, uint64_t> limits[] = {
        {param::kRole, static_cast<uint64_t>(m.role)},
        {param::kCapabilities, m.capabilities},
        {param::kMaxPayloadBytes, m.max_payload_bytes},
        {param::kMaxHeaderBytes, m.max_header_bytes},
        {param::kMaxTasks, m.max_tasks},
        {param::kReplayBytes, m.replay_bytes},
        {param::kReplayFrames, m.replay_frames},
        {param::kPingIntervalUs, m.ping_interval_us},
        {param::kMinPingIntervalUs, m.min_ping_interval_us},
    };
    for (const auto& [id, value] : limits) {
      if (!(s = check(id, value)).ok()) return s;
    }
  }
  return CheckBytesParam(list, param::kAuthData, m.auth_data.size());
}

template <typename Sink>
void WriteInit(const InitMessage& m, Sink& sink) {
  const bool hello = m.phase == InitPhase::kHello;
  const bool welcome = m.phase == InitPhase::kWelcome;
  const bool hello_welcome = hello || welcome;
  sink.Varint(param::kPhase, static_cast<uint64_t>(m.phase));
  if (hello) {
    sink.Varint(param::kMinVersion, m.min_version);
    sink.Varint(param::kMaxVersion, m.max_version);
  }
  if (welcome) sink.Varint(param::kVersion, m.version);
  if (hello_welcome) {
    sink.Bytes(param::kAgentId, AsBytes(m.agent_id));
    sink.Varint(param::kRole, static_cast<uint64_t>(m.role));
    if (m.capabilities != 0) sink.Varint(param::kCapabilities, m.capabilities);
    sink.Varint(param::kMaxPayloadBytes, m.max_payload_bytes);
    sink.Varint(param::kMaxHeaderBytes, m.max_header_bytes);
    sink.Varint(param::kMaxTasks, m.max_tasks);
    sink.Varint(param::kReplayBytes, m.replay_bytes);
    sink.Varint(param::kReplayFrames, m.replay_frames);
    sink.Varint(param::kPingIntervalUs, m.ping_interval_us);
    sink.Varint(param::kMinPingIntervalUs, m.min_ping_interval_us);
  }
  if (hello) {
    sink.Varint(param::kAuthMethod, static_cast<uint64_t>(m.auth_method));
  }
  if (!m.auth_data.empty()) sink.Bytes(param::kAuthData, AsBytes(m.auth_data));
  if (m.phase != InitPhase::kProof) sink.Bytes(param::kNonce, m.nonce);
  // Validated: in HELLO both or neither, in WELCOME both.
  if (hello_welcome && m.session_id) {
    sink.Bytes(param::kSessionId, *m.session_id);
    if (welcome && !m.resumed) sink.Bytes(param::kResumeToken, *m.resume_token);
    sink.Varint(param::kLastReceived, *m.last_received);
  }
  if (welcome) {
    if (m.resumed) sink.Flag(param::kResumed);
    sink.Varint(param::kResumeWindowUs, m.resume_window_us);
  }
  const bool proof_phase = m.phase == InitPhase::kProof;
  if (m.resume_proof && (proof_phase || (welcome && m.resumed))) {
    sink.Bytes(param::kResumeProof, *m.resume_proof);
  }
}

}  // namespace control
}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_SESSION_DETAIL_CONTROL_PARAMS_HPP_
