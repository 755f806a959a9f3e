// File: symwire/nats/impl/names.ipp
// Out-of-line bodies of symwire/nats/names.hpp (SPEC.md §21.1, §21.2).
#ifndef SYMWIRE_NATS_IMPL_NAMES_IPP_
#define SYMWIRE_NATS_IMPL_NAMES_IPP_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symwire/nats/names.hpp"

namespace symwire {
namespace nats_detail {

inline bool IsNameByte(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-';
}

constexpr uint64_t kMaxTaskId = (uint64_t{1} << 62) - 1;

}  // namespace nats_detail

SYMWIRE_DECL absl::Status ValidateNatsName(absl::string_view name,
                                           absl::string_view what) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (name.size() > kNatsMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s is %d bytes, more than %d", what, name.size(), kNatsMaxNameBytes));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (!nats_detail::IsNameByte(name[i])) {
      // §21.1: '.', '*', '>' and whitespace are subject syntax; '_'
      // separates the parts of stream names.
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s has byte 0x%02x at offset %d; allowed: A-Z a-z 0-9 -", what,
          static_cast<unsigned char>(name[i]), i));
    }
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status ValidateNatsTaskId(uint64_t task_id) {
  if (task_id == 0 || task_id > nats_detail::kMaxTaskId) {
    return absl::InvalidArgumentError(
        absl::StrCat("task id ", task_id, " is outside 1..2^62-1"));
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::StatusOr<NatsPoolNames> MakeNatsPoolNames(
    absl::string_view pool) {
  if (absl::Status s = ValidateNatsName(pool, "pool name"); !s.ok()) return s;
  const std::string prefix = absl::StrCat("symwire.v1.", pool);
  NatsPoolNames names;
  names.pool = std::string(pool);
  names.task_stream = absl::StrCat("SYMWIRE_TASKS_", pool);
  names.task_subject = absl::StrCat(prefix, ".tasks");
  names.agents_consumer = "agents";
  names.cancel_stream = absl::StrCat("SYMWIRE_CANCEL_", pool);
  names.cancel_stream_subject = absl::StrCat(prefix, ".cancel.*.*");
  names.cancel_wildcard = absl::StrCat(prefix, ".cancel.>");
  names.dead_stream = absl::StrCat("SYMWIRE_DEAD_", pool);
  names.dead_subject = absl::StrCat(prefix, ".dead");
  return names;
}

SYMWIRE_DECL absl::StatusOr<NatsOrchestratorNames> MakeNatsOrchestratorNames(
    absl::string_view pool, absl::string_view orchestrator) {
  if (absl::Status s = ValidateNatsName(pool, "pool name"); !s.ok()) return s;
  if (absl::Status s = ValidateNatsName(orchestrator, "orchestrator identity");
      !s.ok()) {
    return s;
  }
  NatsOrchestratorNames names;
  names.orchestrator = std::string(orchestrator);
  names.response_stream =
      absl::StrCat("SYMWIRE_RESP_", pool, "_", orchestrator);
  names.response_subject =
      absl::StrCat("symwire.v1.", pool, ".resp.", orchestrator);
  names.orchestrator_consumer = "orchestrator";
  return names;
}

SYMWIRE_DECL std::string NatsCancelSubject(absl::string_view pool,
                                           absl::string_view orchestrator,
                                           uint64_t task_id) {
  return absl::StrCat("symwire.v1.", pool, ".cancel.", orchestrator, ".",
                      task_id);
}

SYMWIRE_DECL std::string NatsTaskMsgId(absl::string_view orchestrator,
                                       uint64_t task_id) {
  return absl::StrCat("t.", orchestrator, ".", task_id);
}

SYMWIRE_DECL std::string NatsResponseMsgId(absl::string_view orchestrator,
                                           uint64_t task_id, uint64_t attempt,
                                           uint64_t index) {
  return absl::StrCat("r.", orchestrator, ".", task_id, ".", attempt, ".",
                      index);
}

SYMWIRE_DECL std::string NatsCancelMsgId(absl::string_view orchestrator,
                                         uint64_t task_id) {
  return absl::StrCat("c.", orchestrator, ".", task_id);
}

SYMWIRE_DECL absl::StatusOr<NatsTaskRef> ParseNatsTaskMsgId(
    absl::string_view msg_id) {
  if (msg_id.size() < 2 || msg_id[0] != 't' || msg_id[1] != '.') {
    return absl::InvalidArgumentError(
        "task Nats-Msg-Id does not start with \"t.\" at offset 0");
  }
  const size_t dot = msg_id.find('.', 2);
  if (dot == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "task Nats-Msg-Id has no '.' after the identity (%d bytes)",
        msg_id.size()));
  }
  const absl::string_view orchestrator = msg_id.substr(2, dot - 2);
  if (absl::Status s = ValidateNatsName(orchestrator, "orchestrator identity");
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task Nats-Msg-Id: ", s.message(), " (identity at offset 2)"));
  }
  const absl::string_view digits = msg_id.substr(dot + 1);
  const size_t at = dot + 1;
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "task Nats-Msg-Id: task id empty or with a leading zero at offset %d",
        at));
  }
  uint64_t value = 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    const char c = digits[i];
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrFormat(
          "task Nats-Msg-Id: byte 0x%02x at offset %d is not a decimal digit",
          static_cast<unsigned char>(c), at + i));
    }
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (nats_detail::kMaxTaskId - digit) / 10) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "task Nats-Msg-Id: task id above 2^62-1 at offset %d", at));
    }
    value = value * 10 + digit;
  }
  if (value == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("task Nats-Msg-Id: task id 0 at offset %d", at));
  }
  NatsTaskRef ref;
  ref.orchestrator = std::string(orchestrator);
  ref.task_id = value;
  return ref;
}

}  // namespace symwire

#endif  // SYMWIRE_NATS_IMPL_NAMES_IPP_
