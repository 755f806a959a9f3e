// File: symwire/nats/names.hpp
// symwire::nats (a runtime on layers 1-2 and cnats). The names a NATS
// JetStream pool uses (SPEC.md §21.1, §21.2): stream names, subjects and
// Nats-Msg-Id values, derived from the pool name, the orchestrator identity,
// the task id, the delivery attempt and the frame index. Pure functions; no
// NATS call. Golden vectors: tests/vectors/nats_mapping.md.
#ifndef SYMWIRE_NATS_NAMES_HPP_
#define SYMWIRE_NATS_NAMES_HPP_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "symwire/config.hpp"

namespace symwire {

// kNatsMaxNameBytes
// Longest pool name or orchestrator identity (SPEC.md §21.1).
inline constexpr size_t kNatsMaxNameBytes = 64;

// ValidateNatsName
// OK when `name` is a valid pool name or orchestrator identity: 1-64 bytes
// of [A-Za-z0-9-] (SPEC.md §21.1). `what` names the field in the error
// ("pool name", "orchestrator identity").
// Errors: INVALID_ARGUMENT (kInvalidArgument): empty, longer than 64 bytes,
//   or a byte outside the set (the message gives the byte and its offset).
// Thread-safe.
SYMWIRE_DECL absl::Status ValidateNatsName(absl::string_view name,
                                           absl::string_view what);

// ValidateNatsTaskId
// OK when `task_id` is a valid task id of a pool: 1 .. 2^62 - 1 (SPEC.md
// §21.1: the stream_id of an AGENT_TASK frame).
// Errors: INVALID_ARGUMENT. Thread-safe.
SYMWIRE_DECL absl::Status ValidateNatsTaskId(uint64_t task_id);

// NatsPoolNames
// Every name of one pool (SPEC.md §21.1, §21.2). Built by MakeNatsPoolNames.
struct NatsPoolNames {
  std::string pool;                   // P
  std::string task_stream;            // SYMWIRE_TASKS_<P>
  std::string task_subject;           // symwire.v1.<P>.tasks
  std::string agents_consumer;        // agents
  std::string cancel_stream;          // SYMWIRE_CANCEL_<P>
  std::string cancel_stream_subject;  // symwire.v1.<P>.cancel.*.*
  std::string cancel_wildcard;        // symwire.v1.<P>.cancel.> (agents)
  std::string dead_stream;            // SYMWIRE_DEAD_<P>
  std::string dead_subject;           // symwire.v1.<P>.dead
};

// MakeNatsPoolNames
// The names of pool `pool`.
// Errors: INVALID_ARGUMENT from ValidateNatsName. Thread-safe.
SYMWIRE_DECL absl::StatusOr<NatsPoolNames> MakeNatsPoolNames(
    absl::string_view pool);

// NatsOrchestratorNames
// The names belonging to orchestrator identity `O` in pool `P`.
struct NatsOrchestratorNames {
  std::string orchestrator;           // O
  std::string response_stream;        // SYMWIRE_RESP_<P>_<O>
  std::string response_subject;       // symwire.v1.<P>.resp.<O>
  std::string orchestrator_consumer;  // orchestrator
};

// MakeNatsOrchestratorNames
// Errors: INVALID_ARGUMENT from ValidateNatsName (pool first). Thread-safe.
SYMWIRE_DECL absl::StatusOr<NatsOrchestratorNames> MakeNatsOrchestratorNames(
    absl::string_view pool, absl::string_view orchestrator);

// NatsCancelSubject, NatsTaskMsgId, NatsResponseMsgId, NatsCancelMsgId
// symwire.v1.<P>.cancel.<O>.<T>; t.<O>.<T>; r.<O>.<T>.<A>.<I>; c.<O>.<T>
// (SPEC.md §21.2), decimal without leading zeros.
// REQUIRES: the names are valid (ValidateNatsName), the task id too.
// Thread-safe.
SYMWIRE_DECL std::string NatsCancelSubject(absl::string_view pool,
                                           absl::string_view orchestrator,
                                           uint64_t task_id);
SYMWIRE_DECL std::string NatsTaskMsgId(absl::string_view orchestrator,
                                       uint64_t task_id);
SYMWIRE_DECL std::string NatsResponseMsgId(absl::string_view orchestrator,
                                           uint64_t task_id, uint64_t attempt,
                                           uint64_t index);
SYMWIRE_DECL std::string NatsCancelMsgId(absl::string_view orchestrator,
                                         uint64_t task_id);

// NatsTaskRef
// What a task's Nats-Msg-Id names (ParseNatsTaskMsgId).
struct NatsTaskRef {
  std::string orchestrator;
  uint64_t task_id = 0;
};

// ParseNatsTaskMsgId
// Parses `t.<O>.<T>` (SPEC.md §21.2). The header is untrusted input.
// Errors: INVALID_ARGUMENT naming the offset of the first bad byte: not
//   starting with "t.", an invalid identity, a task id that is empty, not
//   decimal, has a leading zero, is 0 or above 2^62 - 1.
// Thread-safe.
SYMWIRE_DECL absl::StatusOr<NatsTaskRef> ParseNatsTaskMsgId(
    absl::string_view msg_id);

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/nats/impl/names.ipp"
#endif

#endif  // SYMWIRE_NATS_NAMES_HPP_
