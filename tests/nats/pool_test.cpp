// Tests of symwire/nats/client.hpp against a real nats-server with
// JetStream (include/symwire/testing/nats_server.hpp): connecting, the pool's
// streams and consumers of SPEC.md §21.1, and how failures become statuses.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "symwire/nats/client.hpp"
#include "symwire/nats/detail/cnats.hpp"
#include "symwire/nats/detail/state.hpp"
#include "symwire/testing/nats_server.hpp"

namespace symwire {
namespace {

using testing::NatsServer;

std::unique_ptr<NatsServer> StartServer() {
  absl::StatusOr<std::unique_ptr<NatsServer>> server = NatsServer::Start();
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  return std::move(*server);
}

NatsClient ConnectTo(const NatsServer& server) {
  NatsConnectOptions options;
  options.url = server.url();
  absl::StatusOr<NatsClient> client = NatsClient::Connect(options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return *client;
}

// The stream's configuration as the server reports it.
nats_detail::StreamInfoPtr Info(const NatsClient& client,
                                const std::string& stream) {
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetStreamInfo(&raw, client.state()->js.get(),
                                        stream.c_str(), nullptr, &jerr);
  nats_detail::StreamInfoPtr info(raw);
  INFO(stream << ": " << natsStatus_GetText(s) << " jerr " << jerr);
  REQUIRE(s == NATS_OK);
  return info;
}

// NatsConnectOptions::url may list a cluster's servers, comma-separated:
// the connection takes any that answers. Failed ("No server available")
// while the whole list went to natsOptions_SetURL as one URL.
TEST_CASE("nats client: a comma-separated url lists servers to try") {
  std::unique_ptr<NatsServer> server = StartServer();
  NatsConnectOptions options;
  // Port 1 on 127.0.0.1: nobody listens there (refused at once).
  options.url = absl::StrCat("nats://127.0.0.1:1,", server->url());
  absl::StatusOr<NatsClient> client = NatsClient::Connect(options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  NatsPoolOptions pool;
  pool.pool = "listed";
  CHECK(client->EnsurePool(pool).ok());
}

TEST_CASE("nats pool: EnsurePool creates the streams and consumer of §21.1") {
  std::unique_ptr<NatsServer> server = StartServer();
  NatsClient client = ConnectTo(*server);
  NatsPoolOptions pool;
  pool.pool = "p1";
  pool.ack_wait = absl::Seconds(3);
  pool.duplicate_window = absl::Seconds(30);
  pool.cancel_retention = absl::Minutes(5);
  REQUIRE(client.EnsurePool(pool).ok());

  nats_detail::StreamInfoPtr tasks = Info(client, "SYMWIRE_TASKS_p1");
  CHECK(tasks->Config->Retention == js_WorkQueuePolicy);
  CHECK(tasks->Config->Storage == js_FileStorage);
  CHECK(tasks->Config->Replicas == 1);
  CHECK(tasks->Config->Duplicates ==
        absl::ToInt64Nanoseconds(absl::Seconds(30)));
  REQUIRE(tasks->Config->SubjectsLen == 1);
  CHECK(std::string(tasks->Config->Subjects[0]) == "symwire.v1.p1.tasks");

  nats_detail::StreamInfoPtr cancels = Info(client, "SYMWIRE_CANCEL_p1");
  CHECK(cancels->Config->Retention == js_LimitsPolicy);
  CHECK(cancels->Config->MaxMsgsPerSubject == 1);
  CHECK(cancels->Config->MaxAge == absl::ToInt64Nanoseconds(absl::Minutes(5)));
  CHECK(std::string(cancels->Config->Subjects[0]) ==
        "symwire.v1.p1.cancel.*.*");

  nats_detail::StreamInfoPtr dead = Info(client, "SYMWIRE_DEAD_p1");
  CHECK(std::string(dead->Config->Subjects[0]) == "symwire.v1.p1.dead");

  jsConsumerInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  REQUIRE(js_GetConsumerInfo(&raw, client.state()->js.get(), "SYMWIRE_TASKS_p1",
                             "agents", nullptr, &jerr) == NATS_OK);
  nats_detail::ConsumerInfoPtr agents(raw);
  CHECK(agents->Config->AckPolicy == js_AckExplicit);
  CHECK(agents->Config->AckWait == absl::ToInt64Nanoseconds(absl::Seconds(3)));
  CHECK(agents->Config->MaxDeliver == -1);

  // Idempotent: a second agent starting with the same settings.
  CHECK(client.EnsurePool(pool).ok());

  REQUIRE(client.EnsureOrchestrator(pool, "orch-a").ok());
  nats_detail::StreamInfoPtr resp = Info(client, "SYMWIRE_RESP_p1_orch-a");
  CHECK(resp->Config->Retention == js_WorkQueuePolicy);
  CHECK(std::string(resp->Config->Subjects[0]) == "symwire.v1.p1.resp.orch-a");
  CHECK(client.EnsureOrchestrator(pool, "orch-a").ok());
}

TEST_CASE(
    "nats pool: settings that differ from the existing pool are refused") {
  std::unique_ptr<NatsServer> server = StartServer();
  NatsClient client = ConnectTo(*server);
  NatsPoolOptions pool;
  pool.pool = "p2";
  REQUIRE(client.EnsurePool(pool).ok());

  NatsPoolOptions memory = pool;
  memory.storage = NatsStorage::kMemory;
  const absl::Status s = client.EnsurePool(memory);
  INFO(s.ToString());
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(s.message()), Catch::Contains("SYMWIRE_TASKS_p2"));

  NatsPoolOptions slower = pool;
  slower.ack_wait = absl::Seconds(99);
  const absl::Status c = client.EnsurePool(slower);
  INFO(c.ToString());
  CHECK(c.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(c.message()), Catch::Contains("agents"));
}

TEST_CASE("nats pool: bad options are INVALID_ARGUMENT before any NATS call") {
  std::unique_ptr<NatsServer> server = StartServer();
  NatsClient client = ConnectTo(*server);
  NatsPoolOptions pool;
  pool.pool = "bad.name";
  CHECK(client.EnsurePool(pool).code() == absl::StatusCode::kInvalidArgument);
  pool.pool = "ok";
  pool.replicas = 0;
  CHECK(client.EnsurePool(pool).code() == absl::StatusCode::kInvalidArgument);
  pool.replicas = 1;
  pool.max_deliveries = 0;
  CHECK(client.EnsurePool(pool).code() == absl::StatusCode::kInvalidArgument);
  pool.max_deliveries = 1;
  pool.ack_wait = absl::ZeroDuration();
  CHECK(client.EnsurePool(pool).code() == absl::StatusCode::kInvalidArgument);
  pool.ack_wait = absl::Seconds(1);
  CHECK(client.EnsureOrchestrator(pool, "o_1").code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE(
    "nats pool: no server is UNAVAILABLE, a broker restart keeps the pool") {
  std::unique_ptr<NatsServer> server = StartServer();
  const std::string url = server->url();
  {
    NatsClient client = ConnectTo(*server);
    NatsPoolOptions pool;
    pool.pool = "p3";
    REQUIRE(client.EnsurePool(pool).ok());
  }
  server->Stop();
  NatsConnectOptions options;
  options.url = url;
  options.connect_timeout = absl::Milliseconds(500);
  absl::StatusOr<NatsClient> none = NatsClient::Connect(options);
  INFO(none.status().ToString());
  CHECK(none.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(none.status().message()), Catch::Contains(url));

  // File storage: the streams survive a restart of the broker.
  REQUIRE(server->Restart().ok());
  NatsClient again = ConnectTo(*server);
  Info(again, "SYMWIRE_TASKS_p3");
}

}  // namespace
}  // namespace symwire
