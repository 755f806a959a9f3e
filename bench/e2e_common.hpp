// File: bench/e2e_common.hpp
// Shared by the end-to-end benchmark programs (e2e_symwire.cpp,
// e2e_raw_tcp.cpp, e2e_zmq.cpp, e2e_grpc.cpp): one command line, CPU
// pinning, the clock, pacing, latency percentiles and the one-line JSON
// result, so that the systems
// systems are driven and reported identically (bench/README.md).
//
// Command line (every program, both roles):
//   --role server|client   server: the agent / receiver side, runs until
//                          killed (SIGTERM) or its client leaves;
//                          client: the orchestrator side, measures, prints
//                          one JSON line on stdout and exits.
//   --transport tcp|unix   loopback TCP or a Unix-domain stream socket;
//                          symwire-bench-e2e also tls, ws, wss (TLS 1.3
//                          with a throw-away certificate, WebSocket on
//                          the path /bench; e2e_symwire.cpp).
//   --address A            tcp, tls, ws, wss: HOST:PORT (default
//                          127.0.0.1:7600); unix: a socket path (default
//                          /tmp/symwire-e2e.sock).
//   --payload BYTES        application payload per message (default 64).
//   --mode M               throughput | stream | latency (default throughput).
//   --seconds S            measured time (default 2), after --warmup.
//   --messages N           stop after N measured messages instead.
//   --warmup S             unmeasured time first (default 0.2).
//   --connections C        client connections (default 1), one thread.
//   --window W             throughput mode: messages in flight per
//                          connection (default 256).
//   --rate R               latency mode only: open loop at R tasks/s per
//                          connection (paced by e2e::Pacer, at most
//                          --window in flight), every task timed; 0
//                          (default) is closed loop, one task in flight.
//                          run_e2e.sh passes 50% of the same system's
//                          measured throughput ("latency at 50% load").
//   --pin CPU              sched_setaffinity to this CPU (default: none).
//   --label L              copied into the JSON ("placement" in run_e2e.sh).
//   --spin-us U            symwire only: TransportOptions::spin_read.
//   --pace-poll-us U       --rate, every client: a send due within U µs
//                          (default 50) is waited for by polling the
//                          sockets without blocking, not by a timed sleep
//                          (bench/README.md, "The pacer's timer"); 0: always
//                          sleep until it is due.
//   --threads N            symwire server only: ServerOptions::threads
//                          (default 1; connections spread round-robin).
//   --checksums 0|1        symwire only: SessionConfig::payload_checksums
//                          (default 1, the protocol's default), both sides.
//   --shared-payload 0|1   symwire only, stream mode: the agent hands its
//                          responses over as one SharedPayload, referenced
//                          by the replay store and written from there,
//                          instead of the default Respond(string_view),
//                          which copies each (default 0).
// --help lists the flags with their defaults; a usage error exits 2.
// Environment: E2E_DUMP_LATENCIES=FILE writes every measured latency (µs,
// one per line, in completion order) to FILE, to see when in a run the
// slow tasks happened (bench/README.md, "The 16 KiB collapse, measured again").
// The server prints "ready" on stderr once it listens.
#ifndef SYMWIRE_BENCH_E2E_COMMON_HPP_
#define SYMWIRE_BENCH_E2E_COMMON_HPP_

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cli/args.hpp"

namespace e2e {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string role;
  std::string transport = "tcp";
  std::string address;
  size_t payload = 64;
  std::string mode = "throughput";
  double seconds = 2.0;
  uint64_t messages = 0;  // 0: time-bounded
  double warmup = 0.2;
  int connections = 1;
  int window = 256;
  double rate = 0;  // latency mode: tasks/s per connection, 0 = closed loop
  int pin = -1;
  std::string label;
  int spin_us = 0;
  int pace_poll_us = 50;  // --rate: poll, not sleep, for a send due this soon
  int threads = 1;        // symwire server: ServerOptions::threads
  bool checksums = true;
  bool shared_payload = false;  // symwire: stream responses by reference

  std::string Host() const { return address.substr(0, address.rfind(':')); }
  uint16_t Port() const {
    return static_cast<uint16_t>(std::strtoul(
        address.substr(address.rfind(':') + 1).c_str(), nullptr, 10));
  }
};

// ParseArgs: the command line (above); exits 0 after --help and 2 on a
// usage error (tools/cli/args.hpp).
// `transports`: the --transport values the program supports.
inline Options ParseArgs(int argc, char** argv,
                         std::vector<std::string> transports = {"tcp",
                                                                "unix"}) {
  Options o;
  std::string program = argc > 0 ? argv[0] : "e2e";
  program = program.substr(program.rfind('/') + 1);
  symwire_cli::Args args(
      program, "--role server|client [flags]",
      "One side of the end-to-end benchmark (bench/README.md, \"End to "
      "end\"): the server runs\nuntil killed or its client leaves; the "
      "client measures and prints one JSON line.");
  constexpr double kMax = 1e9;
  args.Choice("--role", &o.role, {"server", "client"},
              "server: the agent / receiver side; client: the orchestrator "
              "side")
      .Default("none, required")
      .Choice("--transport", &o.transport, std::move(transports),
              "loopback TCP (tls, ws, wss: over it) or a Unix-domain stream "
              "socket")
      .String("--address", &o.address, "A",
              "tcp, tls, ws, wss: HOST:PORT; unix: a socket path")
      .Default("127.0.0.1:7600, /tmp/symwire-e2e.sock (unix)")
      .Int<size_t>("--payload", &o.payload, "BYTES",
                   "application payload per message", 0, size_t{1} << 30)
      .Choice("--mode", &o.mode, {"throughput", "stream", "latency"},
              "what the client measures")
      .Double("--seconds", &o.seconds, "S", "measured time, after --warmup", 0,
              kMax)
      .Int<uint64_t>("--messages", &o.messages, "N",
                     "stop after N measured messages instead of --seconds")
      .Default("0: time-bounded")
      .Double("--warmup", &o.warmup, "S", "unmeasured time first", 0, kMax)
      .Int("--connections", &o.connections, "C",
           "client connections, one thread", 1, 65536)
      .Int("--window", &o.window, "W",
           "throughput mode: messages in flight per connection", 1, 1 << 24)
      .Double("--rate", &o.rate, "R",
              "latency mode: open loop at R tasks/s per connection (0: closed "
              "loop, one in flight)",
              0, kMax)
      .Int("--pin", &o.pin, "CPU", "sched_setaffinity to this CPU", 0, 65535)
      .Default("none")
      .String("--label", &o.label, "L", "copied into the JSON")
      .Int("--spin-us", &o.spin_us, "U",
           "symwire only: TransportOptions::spin_read", 0, 1000000)
      .Int("--pace-poll-us", &o.pace_poll_us, "U",
           "--rate: a send due within U us is waited for by polling "
           "without blocking, not by a timed sleep (0: always sleep)",
           0, 1000000)
      .Int("--threads", &o.threads, "N",
           "symwire server only: ServerOptions::threads (shards; connections "
           "spread round-robin)",
           1, 256)
      .Value("--checksums", "0|1",
             "symwire only: SessionConfig::payload_checksums, both sides", "1",
             [&o](std::string_view text, std::string& want) {
               want = "0 or 1";
               if (text != "0" && text != "1") return false;
               o.checksums = text == "1";
               return true;
             })
      .Value("--shared-payload", "0|1",
             "symwire only, stream mode: the agent responds with one "
             "SharedPayload (no copy into the replay store)",
             "0", [&o](std::string_view text, std::string& want) {
               want = "0 or 1";
               if (text != "0" && text != "1") return false;
               o.shared_payload = text == "1";
               return true;
             });
  args.Parse(argc, argv);
  if (o.role.empty()) args.Fail("--role server|client is required");
  if (o.rate > 0 && o.mode != "latency") {
    args.Fail("--rate is for --mode latency only");
  }
  if (o.address.empty()) {
    o.address =
        o.transport == "unix" ? "/tmp/symwire-e2e.sock" : "127.0.0.1:7600";
  }
  return o;
}

// Pin: the whole process (threads created later inherit the mask).
inline void Pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<size_t>(cpu), &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    std::perror("sched_setaffinity");
    std::exit(1);
  }
}

inline void SignalReady() {
  std::fprintf(stderr, "ready\n");
  std::fflush(stderr);
}

inline double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// PollNotSleep: --pace-poll-us, the one rule every client's pacer follows:
// true when the next send, due at `due`, is too close to sleep for; the
// client then polls its sockets without blocking and sends it once due. A
// sleep that short costs more than it saves on this VM: arming a timer
// due within 50 µs reprograms the timer device (9 µs per timerfd_settime)
// and its expiry is one more interrupt (bench/README.md, "The pacer's
// timer").
inline bool PollNotSleep(Clock::time_point due, const Options& o) {
  return due - Clock::now() < std::chrono::microseconds(o.pace_poll_us);
}

// Pacer: the open-loop schedule of --rate. Due() is how many sends are due
// by now since Start(): a sender behind schedule (it was descheduled, or the
// window was full) catches up in a burst instead of silently lowering the
// offered load; each task's latency is measured from its own send, so the
// burst shows up in the percentiles, which is what a loaded system does.
// NextDue() is when the next send is due, for the sleep/poll timeout.
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate) {}
  void Start() {
    t0_ = Clock::now();
    sent_ = 0;
  }
  uint64_t Due() const {
    const double s = SecondsSince(t0_);
    const auto target = static_cast<uint64_t>(s * rate_) + 1;
    return target > sent_ ? target - sent_ : 0;
  }
  void Sent(uint64_t n = 1) { sent_ += n; }
  Clock::time_point NextDue() const {
    return t0_ + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(static_cast<double>(sent_) /
                                                   rate_));
  }

 private:
  double rate_;
  Clock::time_point t0_{};
  uint64_t sent_ = 0;
};

// Meter: the client's clock for a run without an event loop (raw, zmq):
// the warmup, then the measured period (--seconds or --messages). Tick()
// often; it returns false once the run is over, and stays false.
struct Meter {
  const Options& o;
  Clock::time_point start = Clock::now();
  Clock::time_point measure_start;
  bool measuring = false;
  bool done = false;
  uint64_t count = 0;
  double elapsed = 0;

  explicit Meter(const Options& opts) : o(opts) {}
  bool Tick() {
    if (done) return false;
    if (!measuring) {
      if (SecondsSince(start) >= o.warmup) {
        measuring = true;
        measure_start = Clock::now();
      }
      return true;
    }
    if (o.messages != 0 ? count >= o.messages
                        : SecondsSince(measure_start) >= o.seconds) {
      elapsed = SecondsSince(measure_start);
      done = true;
    }
    return !done;
  }
  void Add(uint64_t n) {
    if (measuring) count += n;
  }
};

// Result: what the client prints, as one JSON object per line.
//
//   messages / msgs_per_s  application messages measured (see README):
//                          throughput: requests + responses (2 per task);
//                          stream: responses received (one direction);
//                          latency: round trips (tasks) completed.
//   tasks_per_s            throughput, latency: completed request/response
//                          pairs per second.
//   payload_MBps           application payload bytes per second, 10^6,
//                          counting every message counted in messages.
//   wire_*                 what the client's side saw on the wire, where the
//                          program can tell (symwire: frames incl. acks).
//   p50_us ...             latency mode: round trip percentiles.
struct Result {
  std::string system;
  Options options;
  double elapsed = 0;
  uint64_t messages = 0;
  uint64_t tasks = 0;
  uint64_t payload_bytes = 0;
  // Optional extras, appended verbatim as "key":number pairs.
  std::vector<std::pair<std::string, double>> extra;
  std::vector<double> latencies_us;
};

inline double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(
      sorted.size() - 1,
      static_cast<size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5));
  return sorted[i];
}

inline void PrintResult(Result r) {
  const Options& o = r.options;
  const double secs = r.elapsed > 0 ? r.elapsed : 1e-9;
  std::string out;
  char buf[512];
  std::snprintf(
      buf, sizeof(buf),
      "{\"system\":\"%s\",\"transport\":\"%s\",\"mode\":\"%s\","
      "\"payload\":%zu,\"connections\":%d,\"window\":%d,\"rate\":%.1f,"
      "\"pin\":%d,\"label\":\"%s\",\"seconds\":%.4f,\"messages\":%llu,"
      "\"msgs_per_s\":%.1f,\"tasks_per_s\":%.1f,\"payload_MBps\":%.3f",
      r.system.c_str(), o.transport.c_str(), o.mode.c_str(), o.payload,
      o.connections, o.mode == "latency" && o.rate == 0 ? 1 : o.window, o.rate,
      o.pin, o.label.c_str(), r.elapsed,
      static_cast<unsigned long long>(r.messages),
      static_cast<double>(r.messages) / secs,
      static_cast<double>(r.tasks) / secs,
      static_cast<double>(r.payload_bytes) / secs / 1e6);
  out += buf;
  if (const char* dump = std::getenv("E2E_DUMP_LATENCIES");
      dump != nullptr && !r.latencies_us.empty()) {
    if (FILE* f = std::fopen(dump, "w")) {
      for (double v : r.latencies_us) std::fprintf(f, "%.1f\n", v);
      std::fclose(f);
    }
  }
  if (!r.latencies_us.empty()) {
    std::sort(r.latencies_us.begin(), r.latencies_us.end());
    double sum = 0;
    for (double v : r.latencies_us) sum += v;
    std::snprintf(buf, sizeof(buf),
                  ",\"samples\":%zu,\"min_us\":%.2f,\"p50_us\":%.2f,"
                  "\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
                  "\"mean_us\":%.2f",
                  r.latencies_us.size(), r.latencies_us.front(),
                  Percentile(r.latencies_us, 0.5),
                  Percentile(r.latencies_us, 0.99),
                  Percentile(r.latencies_us, 0.999), r.latencies_us.back(),
                  sum / static_cast<double>(r.latencies_us.size()));
    out += buf;
  }
  for (const auto& [key, value] : r.extra) {
    std::snprintf(buf, sizeof(buf), ",\"%s\":%.1f", key.c_str(), value);
    out += buf;
  }
  out += "}\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace e2e

#endif  // SYMWIRE_BENCH_E2E_COMMON_HPP_
