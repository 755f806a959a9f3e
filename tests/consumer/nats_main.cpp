// Links symwire::nats from an installed symwire: derives a pool's names
// (SPEC.md §21.1) and fails to connect to a port nothing listens on.
#include <cstdio>

#include "symwire/nats/client.hpp"
#include "symwire/nats/pool.hpp"

int main() {
  auto names = symwire::MakeNatsPoolNames("pool-1");
  if (!names.ok() || names->task_subject != "symwire.v1.pool-1.tasks") return 1;
  symwire::NatsConnectOptions options;
  options.url = "nats://127.0.0.1:1";
  options.connect_timeout = absl::Milliseconds(200);
  auto client = symwire::NatsClient::Connect(options);
  std::printf("%s\n", client.status().ToString().c_str());
  return client.ok() ? 2 : 0;
}
