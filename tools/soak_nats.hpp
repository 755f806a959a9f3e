// File: tools/soak_nats.hpp
// symwire-soak --transport nats (tools/soak_nats.cpp): the soak's workload
// through a NATS JetStream pool (SPEC.md §21) with agent processes killed
// by SIGKILL at random. Built into symwire-soak when symwire::nats is.
#ifndef SYMWIRE_TOOLS_SOAK_NATS_HPP_
#define SYMWIRE_TOOLS_SOAK_NATS_HPP_

#include <cstdint>
#include <string>

namespace symwire_soak {

struct NatsSoakOptions {
  uint64_t tasks = 1000;
  uint64_t seed = 1;
  uint64_t kill_min_ms = 0;  // 0:0 = never kill an agent
  uint64_t kill_max_ms = 0;
  uint64_t max_seconds = 0;  // wall-clock bound; 0: 60 + tasks / 100
  uint64_t ack_wait_ms = 1000;
  std::string url;   // "" = start a nats-server of its own
  std::string pool;  // "" = "soak-<seed>-<pid>"
  std::string storage = "file";
  std::string self;       // this program (to start agent processes)
  uint32_t partials = 0;  // 0: exactly 3; K: random 1..K
  uint32_t payload = 32;
  uint32_t window = 64;
  uint32_t agents = 3;
  uint32_t replicas = 1;
  uint32_t max_deliveries = 10;
  uint32_t part_delay_ms = 2;  // an agent waits 0..this before each part
  uint64_t max_kills = 0;      // 0: no limit
  bool verbose = false;
  // Human-readable lines on stdout (tools/demo.sh --nats): the pool, each
  // kill and restart, each task's end; then a summary before the JSON.
  bool narrate = false;
};

// RunNatsSoak
// The orchestrator side: starts nats-server (unless `url`), the agent
// processes and the killer, submits and checks every task, prints one JSON
// line. Exit status: 0 only if every task completed exactly once intact.
int RunNatsSoak(const NatsSoakOptions& options);

// RunNatsAgent
// --role nats-agent: one agent process of the pool until killed.
int RunNatsAgent(const NatsSoakOptions& options);

}  // namespace symwire_soak

#endif  // SYMWIRE_TOOLS_SOAK_NATS_HPP_
