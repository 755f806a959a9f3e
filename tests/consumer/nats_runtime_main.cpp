// Links symwire::nats_runtime (and through it symwire::nats and
// symwire::transport) from an installed symwire: a NatsPoolChannel cannot be
// created without a broker, so this connects to a port nothing listens on
// and then calls NatsPoolChannel::Create only through a pointer the linker
// must resolve.
#include <cstdio>

#include "boost/asio/io_context.hpp"
#include "symwire/nats/client.hpp"
#include "symwire/nats_runtime/pool.hpp"

int main() {
  boost::asio::io_context io;
  symwire::NatsConnectOptions options;
  options.url = "nats://127.0.0.1:1";
  options.connect_timeout = absl::Milliseconds(200);
  auto client = symwire::NatsClient::Connect(options);
  if (client.ok()) return 2;
  auto* volatile create = &symwire::NatsPoolChannel::Create;
  symwire::NatsPoolChannelOptions channel_options;
  channel_options.orchestrator.identity = "consumer";
  std::printf("%s (NatsPoolChannel::Create at %p, poll every %s)\n",
              client.status().ToString().c_str(),
              reinterpret_cast<void*>(create),
              absl::FormatDuration(channel_options.poll_interval).c_str());
  return io.stopped() ? 3 : 0;
}
