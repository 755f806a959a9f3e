// File: symwire/nats/client.hpp
// symwire::nats (a runtime on layers 1-2 and cnats; SPEC.md §21). NatsClient:
// one connection to a NATS server with JetStream, and the idempotent set-up
// of a pool's streams and consumers (SPEC.md §21.1).
//
// Threading. cnats runs its own threads (socket reader, flusher, message
// delivery). A NatsClient may be used from any number of threads at once:
// every member function is thread-safe (cnats' connection and JetStream
// context are). Copies share the connection, which closes when the last
// copy is destroyed.
#ifndef SYMWIRE_NATS_CLIENT_HPP_
#define SYMWIRE_NATS_CLIENT_HPP_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "symwire/config.hpp"
#include "symwire/nats/names.hpp"

namespace symwire {

// NatsConnectOptions
// How to reach the NATS server. Credentials and TLS are passed to cnats as
// they are; empty strings mean "not used".
struct NatsConnectOptions {
  std::string url = "nats://127.0.0.1:4222";  // comma-separated for a cluster
  std::string connection_name;                // shown by the server
  std::string credentials_file;  // a NATS .creds file (user JWT + nkey seed)
  std::string user;              // with password
  std::string password;
  std::string token;
  bool tls = false;           // require TLS (implied by tls:// URLs)
  std::string tls_ca_file;    // trusted CAs (PEM)
  std::string tls_cert_file;  // client certificate chain (mutual TLS)
  std::string tls_key_file;
  absl::Duration connect_timeout = absl::Seconds(2);
  // Bound on each JetStream API request and publish acknowledgement.
  absl::Duration request_timeout = absl::Seconds(5);
};

// NatsStorage
// Where a pool's streams keep their messages (SPEC.md §21.1).
enum class NatsStorage : uint8_t { kFile, kMemory };

// NatsPoolOptions
// A pool's settings (SPEC.md §21.1). Every process that creates the pool's
// streams must use the same values, or EnsurePool fails with
// FAILED_PRECONDITION.
struct NatsPoolOptions {
  std::string pool;  // 1-64 bytes of [A-Za-z0-9-]
  NatsStorage storage = NatsStorage::kFile;
  int replicas = 1;  // 1..5 (a cluster)
  // Time an agent may hold a task without acknowledging it (or sending an
  // in-progress ack) before JetStream delivers it again.
  absl::Duration ack_wait = absl::Seconds(30);
  // A task delivered more often than this goes to the dead-letter stream
  // (SPEC.md §21.5). Enforced by the agents.
  uint32_t max_deliveries = 5;
  // Window in which a repeated Nats-Msg-Id is stored once.
  absl::Duration duplicate_window = absl::Minutes(2);
  // How long a cancel is kept for agents that fetch the task later.
  absl::Duration cancel_retention = absl::Hours(1);
  // Bounds of the task stream; -1 = unlimited. A full stream refuses new
  // tasks (submit fails) instead of dropping queued ones.
  int64_t max_queued_tasks = -1;
  int64_t max_queued_bytes = -1;
};

namespace nats_detail {
struct ClientState;
}  // namespace nats_detail

// NatsClient
// A connection to NATS with a JetStream context. Cheap to copy (shared).
class NatsClient {
 public:
  // Connect
  // Connects to `options.url` and opens a JetStream context.
  // Errors: UNAVAILABLE (no server reachable, connection refused),
  //   DEADLINE_EXCEEDED (connect_timeout), INVALID_ARGUMENT (a bad URL or
  //   option), PERMISSION_DENIED (authentication), INTERNAL (other cnats
  //   failures; the message has cnats' text).
  SYMWIRE_DECL static absl::StatusOr<NatsClient> Connect(
      const NatsConnectOptions& options);

  // EnsurePool
  // Creates the pool's task, cancel and dead-letter streams and the agents'
  // durable consumer with the settings of SPEC.md §21.1, or checks that they
  // exist with those settings. Idempotent; safe to call from every agent
  // and orchestrator at start.
  // Errors: INVALID_ARGUMENT (pool name, replicas, max_deliveries = 0,
  //   non-positive durations); FAILED_PRECONDITION (a stream or consumer of
  //   that name exists with other settings, or another stream already
  //   holds the subjects); UNAVAILABLE, DEADLINE_EXCEEDED (the server);
  //   INTERNAL (JetStream refused, e.g. not enabled: the message says why).
  SYMWIRE_DECL absl::Status EnsurePool(const NatsPoolOptions& options) const;

  // EnsureOrchestrator
  // Creates (or checks) the response stream and durable consumer of
  // orchestrator identity `orchestrator` in the pool (SPEC.md §21.1).
  // Errors: as EnsurePool; INVALID_ARGUMENT for a bad identity.
  SYMWIRE_DECL absl::Status EnsureOrchestrator(
      const NatsPoolOptions& options, absl::string_view orchestrator) const;

  // The options it was connected with.
  SYMWIRE_DECL const NatsConnectOptions& options() const;

  // For the pool's Orchestrator and Agent (symwire::nats_detail).
  const std::shared_ptr<nats_detail::ClientState>& state() const {
    return state_;
  }

 private:
  explicit NatsClient(std::shared_ptr<nats_detail::ClientState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<nats_detail::ClientState> state_;
};

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/nats/impl/client.ipp"
#endif

#endif  // SYMWIRE_NATS_CLIENT_HPP_
