// nats_test_agent: a NatsAgent in a process of its own, for the tests that
// kill an agent with SIGKILL mid-task (tests/nats/process_test.cpp).
// Usage: nats_test_agent URL POOL ACK_WAIT_MS PART_DELAY_MS
// Each task answers three partials "<input>/part<i>", PART_DELAY_MS apart,
// then the final "<input>/done". Prints "ready\n" once it is bound to the
// pool, "partial <task> <i>\n" after each partial is stored; runs until
// killed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "symwire/nats/pool.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s URL POOL ACK_WAIT_MS PART_DELAY_MS\n",
                 argv[0]);
    return 2;
  }
  symwire::NatsConnectOptions connect;
  connect.url = argv[1];
  absl::StatusOr<symwire::NatsClient> client =
      symwire::NatsClient::Connect(connect);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  symwire::NatsAgentOptions options;
  options.pool.pool = argv[2];
  options.pool.ack_wait = absl::Milliseconds(std::atol(argv[3]));
  options.pool.max_deliveries = 3;
  const auto delay = std::chrono::milliseconds(std::atol(argv[4]));
  absl::StatusOr<symwire::NatsAgent> agent = symwire::NatsAgent::Create(
      *client, options,
      [delay](symwire::NatsTaskContext& task) -> absl::StatusOr<std::string> {
        const std::string in(
            reinterpret_cast<const char*>(task.payload().data()),
            task.payload().size());
        for (int i = 0; i < 3; ++i) {
          const std::string part = absl::StrCat(in, "/part", i);
          if (absl::Status s =
                  task.Respond({reinterpret_cast<const std::byte*>(part.data()),
                                part.size()});
              !s.ok()) {
            return s;
          }
          std::printf("partial %llu %d\n",
                      static_cast<unsigned long long>(task.task_id()), i);
          std::fflush(stdout);
          std::this_thread::sleep_for(delay);  // simulated work
        }
        return in + "/done";
      });
  if (!agent.ok()) {
    std::fprintf(stderr, "%s\n", agent.status().ToString().c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    absl::StatusOr<symwire::NatsAgentOutcome> r =
        agent->RunOnce(absl::Seconds(1));
    if (!r.ok()) std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
  }
}
