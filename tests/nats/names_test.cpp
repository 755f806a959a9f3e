// Tests of symwire/nats/names.hpp: every vector of
// tests/vectors/nats_mapping.md (SPEC.md §21.1, §21.2), and the parser of a
// task's Nats-Msg-Id on hostile input.
#include "symwire/nats/names.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/support/vectors.hpp"

namespace symwire {
namespace {

using testing::GetOption;
using testing::LoadVectorFile;
using testing::Vector;

std::string Opt(const Vector& v, const char* key) {
  std::optional<std::string> value = GetOption(v, key);
  REQUIRE(value.has_value());
  return *value;
}

std::vector<std::string> Derive(const Vector& v) {
  const std::string pool = Opt(v, "pool");
  const std::string orch = Opt(v, "orchestrator");
  const uint64_t task = std::stoull(Opt(v, "task"));
  const uint64_t attempt = std::stoull(Opt(v, "attempt"));
  const uint64_t index = std::stoull(Opt(v, "index"));
  absl::StatusOr<NatsPoolNames> pn = MakeNatsPoolNames(pool);
  if (!pn.ok()) {
    CHECK(pn.status().code() == absl::StatusCode::kInvalidArgument);
    return {"error=INVALID_ARGUMENT field=pool"};
  }
  absl::StatusOr<NatsOrchestratorNames> on =
      MakeNatsOrchestratorNames(pool, orch);
  if (!on.ok()) {
    CHECK(on.status().code() == absl::StatusCode::kInvalidArgument);
    return {"error=INVALID_ARGUMENT field=orchestrator"};
  }
  if (absl::Status s = ValidateNatsTaskId(task); !s.ok()) {
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    return {"error=INVALID_ARGUMENT field=task"};
  }
  return {
      "task_stream=" + pn->task_stream,
      "task_subject=" + pn->task_subject,
      "response_stream=" + on->response_stream,
      "response_subject=" + on->response_subject,
      "cancel_stream=" + pn->cancel_stream,
      "cancel_subject=" + NatsCancelSubject(pool, orch, task),
      "dead_stream=" + pn->dead_stream,
      "dead_subject=" + pn->dead_subject,
      "task_msg_id=" + NatsTaskMsgId(orch, task),
      "response_msg_id=" + NatsResponseMsgId(orch, task, attempt, index),
      "cancel_msg_id=" + NatsCancelMsgId(orch, task),
  };
}

TEST_CASE("nats names: every vector of nats_mapping.md") {
  const std::vector<Vector> vectors = LoadVectorFile("nats_mapping.md");
  REQUIRE(vectors.size() >= 7);
  for (const Vector& v : vectors) {
    INFO(v.name);
    CHECK(Derive(v) == v.log);
    if (v.input.empty()) continue;
    // The hex block is the task's Nats-Msg-Id; it parses back to the
    // orchestrator and the task id.
    const std::string id(reinterpret_cast<const char*>(v.input.data()),
                         v.input.size());
    CHECK(id ==
          NatsTaskMsgId(Opt(v, "orchestrator"), std::stoull(Opt(v, "task"))));
    absl::StatusOr<NatsTaskRef> ref = ParseNatsTaskMsgId(id);
    REQUIRE(ref.ok());
    CHECK(ref->orchestrator == Opt(v, "orchestrator"));
    CHECK(ref->task_id == std::stoull(Opt(v, "task")));
  }
}

TEST_CASE("nats names: a task's Nats-Msg-Id from the wire is checked") {
  struct Case {
    const char* id;
    const char* message_part;
  };
  const Case cases[] = {
      {"", "does not start with \"t.\""},
      {"r.o.1", "does not start with \"t.\""},
      {"t.o", "no '.' after the identity"},
      {"t..1", "orchestrator identity is empty"},
      {"t.a_b.1", "byte 0x5f at offset 1"},
      {"t.o.", "empty or with a leading zero at offset 4"},
      {"t.o.01", "empty or with a leading zero at offset 4"},
      {"t.o.0", "task id 0 at offset 4"},
      {"t.o.1x", "byte 0x78 at offset 5 is not a decimal digit"},
      {"t.o.1.2", "byte 0x2e at offset 5"},
      {"t.o.4611686018427387904", "above 2^62-1 at offset 4"},
      {"t.o.99999999999999999999999", "above 2^62-1 at offset 4"},
  };
  for (const Case& c : cases) {
    INFO(c.id);
    absl::StatusOr<NatsTaskRef> ref = ParseNatsTaskMsgId(c.id);
    REQUIRE_FALSE(ref.ok());
    CHECK(ref.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(ref.status().message()),
               Catch::Contains(c.message_part));
  }
  absl::StatusOr<NatsTaskRef> max =
      ParseNatsTaskMsgId("t.o.4611686018427387903");
  REQUIRE(max.ok());
  CHECK(max->task_id == (uint64_t{1} << 62) - 1);
}

TEST_CASE("nats names: names are validated byte by byte") {
  CHECK(ValidateNatsName(std::string(64, 'a'), "pool name").ok());
  for (const char* bad : {"a b", "a.b", "a*", "a>", "a_b", "\xc3\xa9"}) {
    INFO(bad);
    const absl::Status s = ValidateNatsName(bad, "pool name");
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Contains("at offset"));
  }
}

}  // namespace
}  // namespace symwire
