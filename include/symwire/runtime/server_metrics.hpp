// File: symwire/runtime/server_metrics.hpp
// Layer 3b (runtime). AppendPrometheus for ServerCounters: a Server's
// counters (summed over its shards) as Prometheus counters and gauges,
// next to RuntimeMetrics' task and connection families.
#ifndef SYMWIRE_RUNTIME_SERVER_METRICS_HPP_
#define SYMWIRE_RUNTIME_SERVER_METRICS_HPP_

#include <cstdint>
#include <utility>

#include "symwire/runtime/prometheus.hpp"
#include "symwire/runtime/server.hpp"

namespace symwire {

// AppendPrometheus
// Adds symwire_server_events_total{event} (every ServerCounters field, by
// its name: connections_accepted, handshakes_failed, ...) and the gauges
// symwire_server_connections and symwire_server_sessions of `server`.
// Any thread.
inline void AppendPrometheus(PrometheusText& out, const Server& server) {
  const ServerCounters c = server.counters();
  const std::pair<const char*, uint64_t> events[] = {
      {"connections_accepted", c.connections_accepted},
      {"connections_refused", c.connections_refused},
      {"handshakes_refused", c.handshakes_refused},
      {"auth_refused", c.auth_refused},
      {"sessions_established", c.sessions_established},
      {"sessions_refused", c.sessions_refused},
      {"sessions_refused_per_source", c.sessions_refused_per_source},
      {"sessions_evicted", c.sessions_evicted},
      {"resumes", c.resumes},
      {"resumes_handed_off", c.resumes_handed_off},
      {"resumes_rejected", c.resumes_rejected},
      {"handshakes_failed", c.handshakes_failed},
      {"handshakes_oversized", c.handshakes_oversized},
      {"auth_failures", c.auth_failures},
  };
  for (const auto& [name, value] : events) {
    out.Counter("symwire_server_events_total",
                "Server events (ServerCounters), by field.", {{"event", name}},
                value);
  }
  out.Gauge("symwire_server_connections",
            "Connections attached to the server's sessions.", {},
            static_cast<double>(server.connections()));
  out.Gauge("symwire_server_sessions", "Established sessions registered.", {},
            static_cast<double>(server.sessions()));
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_SERVER_METRICS_HPP_
