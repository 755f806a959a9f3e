// File: tools/soak.cpp
// symwire-soak: a seeded long run of the session layer with connection
// faults: by default on a simulated clock and without I/O (deterministic),
// or with --transport over real sockets through a fault-injection proxy.
// Layer 4: public headers only (a compact copy of the approach of
// tests/support/session_pair.hpp, which tools may not use).
//
// Usage (every flag is optional; `symwire-soak --help` lists them with their
// defaults: --tasks 1000 --seed 1 --cut-every 200:2000 ...):
//   symwire-soak [--tasks N] [--seed S] [--cut-every MIN:MAX] [--partials K]
//                [--payload BYTES] [--window W] [--replay-frames F]
//                [--agent-max-tasks M] [--dial-fail-pct P]
//                [--half-open-pct P] [--max-sim-seconds T] [--no-close]
//                [--verbose]
//   symwire-soak --transport tcp|unix|tls|ws|wss [--tasks N] [--seed S]
//                [--proxy-faults kill=MIN:MAX,split=N,stall=PCT,flip=PPM]
//                [--partials K] [--payload BYTES] [--window W]
//                [--server-threads N] [--max-seconds T] [--verbose]
//   symwire-soak --role server --listen ADDR [--exit-after-sessions N]
//                [--tls-cert PEM --tls-key PEM | --tls-ca-out PEM]
//                [--ready-file PATH] [--seed S] [--partials K]
//                [--payload BYTES] [--agent-max-tasks M] [--max-seconds T]
//   symwire-soak --role client --connect ADDR --tasks N [--seed S]
//                [--tls-ca PEM] [--payload BYTES] [--window W] [--replay-frames
//                F]
//                [--no-close] [--max-seconds T]
//   symwire-soak --role proxy --listen ADDR --connect ADDR
//                [--proxy-faults ...] [--seed S] [--ready-file PATH]
//                [--max-seconds T]
//
// Network mode (--transport) runs the same workload and the same checks
// through Client and Server (symwire/runtime/runtime.hpp) on 127.0.0.1
// (plain TCP, TLS with a throw-away PKI that the client verifies, or
// WebSocket: ws://, or wss:// with that PKI, on the path /soak) or a
// Unix socket, with symwire::testing::FaultProxy between them: kill each
// proxied connection after MIN..MAX bytes, forward in pieces of 1..N
// bytes, stall a direction 1..20 ms on PCT % of the chunks, flip PPM bits
// per million bytes. Every kill is a real disconnect that the client
// repairs by redialling and resuming; a flipped bit must be caught by the
// frame checksums (and lead to a resume), never reach a payload check.
// The JSON line adds the proxy's counters; --max-seconds bounds the wall
// clock (default 120 + N/500). For ws and wss the proxy relays the
// WebSocket (and TLS) bytes: a kill or a flip lands anywhere in the HTTP
// upgrade or a WebSocket frame header, and every redial upgrades anew
// before it resumes.
//
// Split roles (--role) run one side per process, so that any fault
// injector can sit between a checked client and a checked server
// (toxiproxy, tc netem, a chaos tool, or --role proxy, a FaultProxy of its
// own). ADDR is tcp://HOST:PORT or tls://HOST:PORT (a numeric IP; port 0
// picks a free one, written to --ready-file) or unix:///PATH. A TLS server
// presents --tls-cert/--tls-key, or a throw-away PKI whose CA certificate
// --tls-ca-out writes; a TLS client trusts --tls-ca (default: the system
// store) and checks the server's IP address; a proxy relays TLS as opaque
// bytes (tls:// and tcp:// are the same to it). The server (the agent) serves
// any number of sessions, checking per session that every task arrives
// exactly once, in order and intact, and answers as below; it exits after
// N sessions ended (--exit-after-sessions) or on SIGTERM/SIGINT and
// prints its own JSON line (tasks received, finals written, sessions
// closed/failed, violations). The client (the orchestrator) is the same as
// in network mode: Client::Connect redials and resumes after every lost
// connection, it checks every response part exactly once and in order, and
// it prints the run's JSON line after closing. The proxy relays
// --listen (127.0.0.1 only) to --connect with --proxy-faults until
// SIGTERM/SIGINT (or --max-seconds) and then prints its counters. A server
// or proxy has no time bound unless --max-seconds gives one (for a server,
// running out of it is a failure). Exit status as below: 0
// only without any violation (server: also no failed session).
//
// An orchestrator (the initiator) submits N tasks, keeping up to W (default
// 64) in flight; a refusal with NO_CREDIT or REPLAY_BUFFER_FULL stops it
// until the Writable event. The agent (the acceptor) answers each task with
// 3 partial AGENT_RESPONSEs (or, with --partials K, a seeded random 1..K)
// and then a final one, interleaving the tasks it has open at random, and
// also waits for Writable after REPLAY_BUFFER_FULL. Every payload carries
// the task index, the part index and an FNV-1a checksum of the rest, padded
// to --payload bytes (default 32), so both sides verify content, order and
// uniqueness:
//   agent:        every task exactly once, in submission order, with the
//                 task id the orchestrator got from SubmitTask;
//   orchestrator: each task's partials in order, then exactly one final
//                 carrying the number of partials sent.
//
// Faults. After every MIN..MAX frames (a seeded random count; frames sent
// plus frames received by the orchestrator, i.e. both directions) the link
// is cut at a random byte of the bytes still in flight in a random
// direction (so mostly mid-frame); both sides get TransportLost. The
// orchestrator's ReconnectDue makes the simulation dial at once: the
// server's Endpoint creates a fresh acceptor session per connection and
// routes a resuming connection to the established session. Deliveries are
// split at random sizes (1..64, 1..1024, or all that is pending), and now
// and then one direction stalls for 1..50 ms. `--cut-every 0:0` disables
// cuts.
//
// Optional faults: --dial-fail-pct P makes P % of the dials fail (the
// orchestrator gets TransportLost and backs off further); --half-open-pct P
// tells only the orchestrator of P % of the cuts, so the agent's session
// keeps a dead connection until the resumed one replaces it.
//
// Timers (chosen so the simulation moves in milliseconds; both sides):
// ack_delay 1 ms; reconnect backoff 10 ms x1.6 +-20 %, max 1 s; handshake
// timeout 2 s; ping interval 1 s, peers may ping every 100 ms; dead peer
// 10 s; resume window 60 s. Delivery takes no simulated time, so the clock
// advances only to the next deadline when nothing is in flight.
//
// After the last task completes, the orchestrator closes the session
// gracefully (no cuts from then on) and both sides must report
// SessionClosed (skip with --no-close).
//
// Output: one JSON line with tasks, completed, lost, duplicated,
// out_of_order, corrupted, disconnects, resumes, frames, retransmitted,
// sim_seconds, wall_ms and more. Exit status 0 only if every task completed
// and was seen exactly once in order with intact content on both sides (and
// the close succeeded); 1 otherwise, also when the simulated time bound
// (--max-sim-seconds, default 600 + N/100) or the step bound runs out, so
// a run never hangs; 2 on a usage error.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "boost/asio/bind_executor.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/signal_set.hpp"
#include "cli/args.hpp"
#include "symwire/error.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/session/event.hpp"
#include "symwire/session/session.hpp"
#if SYMWIRE_SOAK_NET  // built when symwire::transport is (not -fno-exceptions)
#include "symwire/runtime/runtime.hpp"
#include "symwire/testing/fault_proxy.hpp"
#include "symwire/testing/test_certs.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/tls.hpp"
#include "symwire/transport/ws.hpp"
#include "symwire/transport/wss.hpp"
#endif

namespace {

using symwire::ErrorCode;
using symwire::Session;
using symwire::SessionState;
using symwire::TaskId;
using Bytes = absl::Span<const std::byte>;

// ---- options ----------------------------------------------------------------

struct Options {
  uint64_t tasks = 1000;
  uint64_t seed = 1;
  uint64_t cut_min = 200;
  uint64_t cut_max = 2000;
  uint32_t partials = 0;  // 0: exactly 3; K: random 1..K
  uint32_t payload = 32;
  uint32_t window = 64;
  uint64_t replay_frames = 0;    // 0: library default
  uint32_t agent_max_tasks = 0;  // 0: library default
  double max_sim_seconds = 0;    // 0: 600 + tasks / 100
  uint32_t dial_fail_pct = 0;    // dials that fail, percent
  uint32_t half_open_pct = 0;    // cuts the agent is not told of, percent
  bool close = true;
  bool verbose = false;
  // Network mode (--transport): real sockets through a fault proxy.
  std::string transport;  // "" = simulation; "tcp", "unix", "tls", "ws", "wss"
#if SYMWIRE_SOAK_NET
  symwire::testing::FaultOptions faults;
#endif
  uint64_t max_seconds = 0;     // wall-clock bound; 0: 120 + tasks / 500
  uint32_t server_threads = 1;  // the server's shards (ServerOptions)
  // Split roles (--role): one side per process, for an outside proxy.
  std::string role;                  // "", "server", "client" or "proxy"
  std::string listen;                // --listen ADDR (server, proxy)
  std::string connect;               // --connect ADDR (client, proxy)
  uint64_t exit_after_sessions = 0;  // server: exit once N sessions ended
  std::string ready_file;            // server, proxy: the bound address
  // tls:// addresses. Server: its certificate and key (PEM files; default
  // a throw-away PKI whose CA --tls-ca-out writes). Client: the CA to trust
  // (default: the system store).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca_out;
  std::string tls_ca;
};

template <typename T>
bool ParseUnsigned(absl::string_view text, T& out) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v > static_cast<uint64_t>(T(~T(0)))) {
    return false;
  }
  out = static_cast<T>(v);
  return true;
}

// --proxy-faults kill=MIN:MAX,split=N,stall=PCT,flip=PPM (any subset):
// kill each proxied connection after MIN..MAX bytes (both directions);
// forward in pieces of 1..N bytes; stall a direction for 1..20 ms on PCT %
// of the chunks; flip PPM bits per million bytes.
#if SYMWIRE_SOAK_NET
bool ParseFaults(absl::string_view spec, symwire::testing::FaultOptions& f) {
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    const std::vector<absl::string_view> kv = absl::StrSplit(item, '=');
    if (kv.size() != 2) return false;
    if (kv[0] == "kill") {
      const std::vector<absl::string_view> mm = absl::StrSplit(kv[1], ':');
      if (mm.size() != 2 || !ParseUnsigned(mm[0], f.kill_min_bytes) ||
          !ParseUnsigned(mm[1], f.kill_max_bytes) || f.kill_min_bytes == 0 ||
          f.kill_min_bytes > f.kill_max_bytes) {
        return false;
      }
    } else if (kv[0] == "split") {
      if (!ParseUnsigned(kv[1], f.split_max_bytes)) return false;
    } else if (kv[0] == "stall") {
      if (!ParseUnsigned(kv[1], f.stall_pct) || f.stall_pct > 100) {
        return false;
      }
      f.stall_min = std::chrono::milliseconds(1);
      f.stall_max = std::chrono::milliseconds(20);
    } else if (kv[0] == "flip") {
      if (!ParseUnsigned(kv[1], f.flip_per_million)) return false;
    } else {
      return false;
    }
  }
  return true;
}

#endif  // SYMWIRE_SOAK_NET

// ParseArgs: the command line into `o`; exits 0 after --help and 2 on a
// usage error (tools/cli/args.hpp).
void ParseArgs(int argc, char** argv, Options& o) {
  symwire_cli::Args args(
      "symwire-soak", "[flags]",
      "A seeded long run of an orchestrator and an agent session with "
      "connection cuts:\n"
      "on a simulated clock (default), over real sockets through a fault "
      "proxy (--transport),\n"
      "or one side per process (--role). Every flag is optional.");
  auto unsigned_value = [](auto* out, uint64_t min, uint64_t max) {
    return [out, min, max](std::string_view text, std::string& want) {
      want =
          "an integer in " + std::to_string(min) + ".." + std::to_string(max);
      uint64_t v = 0;
      if (!ParseUnsigned(absl::string_view(text.data(), text.size()), v) ||
          v < min || v > max) {
        return false;
      }
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(v);
      return true;
    };
  };
  constexpr uint64_t kU32 = 0xFFFFFFFFu;
  constexpr uint64_t kU64 = ~uint64_t{0};
  args.Value("--tasks", "N", "tasks to run to completion",
             std::to_string(o.tasks), unsigned_value(&o.tasks, 1, kU64))
      .Value("--seed", "S", "seed of every random choice",
             std::to_string(o.seed), unsigned_value(&o.seed, 0, kU64))
      .Value("--cut-every", "MIN:MAX",
             "simulation: cut the connection every MIN..MAX frames (0:0: "
             "never)",
             std::to_string(o.cut_min) + ":" + std::to_string(o.cut_max),
             [&o](std::string_view text, std::string& want) {
               want = "MIN:MAX with 0 < MIN <= MAX, or 0:0";
               const std::vector<absl::string_view> parts = absl::StrSplit(
                   absl::string_view(text.data(), text.size()), ':');
               return parts.size() == 2 && ParseUnsigned(parts[0], o.cut_min) &&
                      ParseUnsigned(parts[1], o.cut_max) &&
                      o.cut_min <= o.cut_max &&
                      (o.cut_min > 0 || o.cut_max == 0);
             })
      .Value("--partials", "K", "streamed responses per task: 1..K at random",
             "exactly 3", unsigned_value(&o.partials, 1, 1000))
      .Value("--payload", "BYTES", "payload bytes per message",
             std::to_string(o.payload), unsigned_value(&o.payload, 0, 1u << 20))
      .Value("--window", "W", "tasks in flight", std::to_string(o.window),
             unsigned_value(&o.window, 1, kU32))
      .Value("--replay-frames", "F", "the sessions' replay buffer, in frames",
             "the library's", unsigned_value(&o.replay_frames, 1, kU64))
      .Value("--agent-max-tasks", "M", "the agent's max_tasks", "the library's",
             unsigned_value(&o.agent_max_tasks, 1, kU32))
      .Value("--dial-fail-pct", "P", "simulation: percent of dials that fail",
             std::to_string(o.dial_fail_pct),
             unsigned_value(&o.dial_fail_pct, 0, 99))
      .Value("--half-open-pct", "P",
             "simulation: percent of cuts the agent is not told of",
             std::to_string(o.half_open_pct),
             unsigned_value(&o.half_open_pct, 0, 100))
      .Value("--max-sim-seconds", "T",
             "simulation: bound on simulated time, in seconds",
             "600 + tasks / 100",
             [&o](std::string_view text, std::string& want) {
               want = "an integer in 1..4294967295";
               uint64_t v = 0;
               if (!ParseUnsigned(absl::string_view(text.data(), text.size()),
                                  v) ||
                   v == 0 || v > kU32) {
                 return false;
               }
               o.max_sim_seconds = static_cast<double>(v);
               return true;
             })
      .Value("--max-seconds", "T", "bound on wall-clock time, in seconds",
             "120 + tasks / 500", unsigned_value(&o.max_seconds, 1, kU64))
      .Switch("--no-close", &o.close,
              "end without the graceful close handshake", false)
      .Switch("--verbose", &o.verbose, "progress lines on stderr");
#if SYMWIRE_SOAK_NET
  args.Choice("--transport", &o.transport, {"tcp", "unix", "tls", "ws", "wss"},
              "network mode: real sockets through a fault proxy")
      .Default("none: the simulation")
      .Value("--proxy-faults", "kill=MIN:MAX,split=N,stall=PCT,flip=PPM",
             "the proxy's faults (any subset): kill each connection after "
             "MIN..MAX bytes, forward in 1..N-byte pieces, stall PCT% of "
             "chunks 1..20 ms, flip PPM bits per million",
             "none",
             [&o](std::string_view text, std::string& want) {
               want =
                   "a comma-separated subset of kill=MIN:MAX (0 < MIN <= "
                   "MAX), split=N, stall=PCT (0..100), flip=PPM";
               return ParseFaults(absl::string_view(text.data(), text.size()),
                                  o.faults);
             })
      .Value("--server-threads", "N",
             "network mode, server role: the server's threads (shards; "
             "resumes land on other shards)",
             std::to_string(o.server_threads),
             unsigned_value(&o.server_threads, 1, 256))
      .Choice("--role", &o.role, {"server", "client", "proxy"},
              "split roles: this process is one side")
      .String("--listen", &o.listen, "ADDR", "server, proxy: listen on ADDR")
      .String("--connect", &o.connect, "ADDR", "client, proxy: connect to ADDR")
      .Value("--exit-after-sessions", "N", "server: exit once N sessions ended",
             "run until SIGTERM",
             unsigned_value(&o.exit_after_sessions, 1, kU64))
      .String("--ready-file", &o.ready_file, "PATH",
              "server, proxy: write the bound address to PATH")
      .String("--tls-cert", &o.tls_cert, "PEM",
              "TLS server: its certificate (with --tls-key)")
      .Default("a throw-away PKI")
      .String("--tls-key", &o.tls_key, "PEM", "TLS server: its private key")
      .String("--tls-ca-out", &o.tls_ca_out, "PEM",
              "TLS server: write the throw-away CA to PEM")
      .String("--tls-ca", &o.tls_ca, "PEM", "TLS client: the CA to trust")
      .Default("the system store")
      .Epilogue(
          "ADDR: tcp://HOST:PORT or tls://HOST:PORT (a numeric IP; port 0 "
          "picks one, see --ready-file)\n"
          "or unix:///PATH. A proxy listens on 127.0.0.1 only and relays TLS "
          "as bytes. Each role prints\n"
          "one JSON line when it ends (server: after N sessions ended, or on "
          "SIGTERM/SIGINT; proxy:\n"
          "on SIGTERM/SIGINT or after --max-seconds).");
#endif
  args.Parse(argc, argv);
  // Split roles: which addresses each needs.
  const char* wrong = nullptr;
  if (o.role.empty()) {
    if (!o.listen.empty() || !o.connect.empty() || o.exit_after_sessions > 0 ||
        !o.ready_file.empty()) {
      wrong =
          "--listen, --connect, --exit-after-sessions and --ready-file "
          "need --role";
    }
  } else if (!o.transport.empty()) {
    wrong = "--role and --transport exclude each other";
  } else if (o.role == "server" && (o.listen.empty() || !o.connect.empty())) {
    wrong = "--role server needs --listen ADDR (and no --connect)";
  } else if (o.role == "client" && (o.connect.empty() || !o.listen.empty())) {
    wrong = "--role client needs --connect ADDR (and no --listen)";
  } else if (o.role == "proxy" && (o.listen.empty() || o.connect.empty())) {
    wrong = "--role proxy needs --listen ADDR and --connect ADDR";
  } else if (o.role != "server" && o.exit_after_sessions > 0) {
    wrong = "--exit-after-sessions is for --role server";
  } else if (o.role == "client" && !o.ready_file.empty()) {
    wrong = "--ready-file is for --role server and --role proxy";
  } else if (o.role != "server" && (!o.tls_cert.empty() || !o.tls_key.empty() ||
                                    !o.tls_ca_out.empty())) {
    wrong = "--tls-cert, --tls-key and --tls-ca-out are for --role server";
  } else if (o.tls_cert.empty() != o.tls_key.empty()) {
    wrong = "--tls-cert and --tls-key go together";
  } else if (!o.tls_cert.empty() && !o.tls_ca_out.empty()) {
    wrong = "--tls-ca-out writes the throw-away CA, not used with --tls-cert";
  } else if (o.role != "client" && !o.tls_ca.empty()) {
    wrong = "--tls-ca is for --role client";
  }
  if (wrong != nullptr) args.Fail(wrong);
}

#if SYMWIRE_SOAK_NET
// ---- addresses (--listen, --connect) ------------------------------------

// tcp://HOST:PORT or tls://HOST:PORT (HOST a numeric IPv4 or [IPv6]
// address), or unix:///PATH (an absolute path; unix://PATH takes a
// relative one).
struct Address {
  bool unix_socket = false;
  bool tls = false;
  std::string host;  // tcp
  uint16_t port = 0;
  std::string path;  // unix
  std::string Text() const {
    if (unix_socket) return "unix://" + path;
    return absl::StrCat(
        tls ? "tls://" : "tcp://",
        host.find(':') != std::string::npos ? "[" + host + "]" : host, ":",
        port);
  }
};

bool ParseAddress(absl::string_view text, Address& a) {
  if (absl::ConsumePrefix(&text, "unix://")) {
    a.unix_socket = true;
    a.path = std::string(text);
    return !a.path.empty();
  }
  a.tls = absl::ConsumePrefix(&text, "tls://");
  if (!a.tls && !absl::ConsumePrefix(&text, "tcp://")) return false;
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return false;
  absl::string_view host = text.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return false;
  }
  a.host = std::string(host);
  return !a.host.empty() && ParseUnsigned(text.substr(colon + 1), a.port);
}
#endif  // SYMWIRE_SOAK_NET

// ---- randomness ----------------------------------------------------------

// SplitMix64: portable, so a seed means the same run everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi].
  uint64_t Between(uint64_t lo, uint64_t hi) {
    return hi <= lo ? lo : lo + Next() % (hi - lo + 1);
  }

 private:
  uint64_t state_;
};

// ---- payloads ---------------------------------------------------------------

// Task:     u64 index | u32 filler size | filler | u64 FNV-1a of all before
// Response: u64 index | u32 part | u32 final (partials sent, or 0xFFFFFFFF
//           for a partial) | u32 filler size | filler | u64 FNV-1a
constexpr uint32_t kPartial = 0xFFFFFFFFu;

uint64_t Fnv1a(Bytes b) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (std::byte x : b) {
    h ^= static_cast<uint64_t>(x);
    h *= 0x100000001b3ull;
  }
  return h;
}

void PutBig(std::vector<std::byte>& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
  }
}
uint64_t GetBig(Bytes b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v = (v << 8) | static_cast<uint64_t>(b[at + static_cast<size_t>(i)]);
  }
  return v;
}
std::byte Filler(uint64_t index, uint64_t part, size_t k) {
  return static_cast<std::byte>((index * 131 + part * 29 + k * 7) & 0xFF);
}

void Seal(std::vector<std::byte>& out) {
  const uint64_t sum = Fnv1a(out);
  PutBig(out, sum, 8);
}

std::vector<std::byte> TaskPayload(uint64_t index, uint32_t filler) {
  std::vector<std::byte> out;
  PutBig(out, index, 8);
  PutBig(out, filler, 4);
  for (size_t k = 0; k < filler; ++k) out.push_back(Filler(index, 0, k));
  Seal(out);
  return out;
}

std::vector<std::byte> ResponsePayload(uint64_t index, uint32_t part,
                                       uint32_t final_marker, uint32_t filler) {
  std::vector<std::byte> out;
  PutBig(out, index, 8);
  PutBig(out, part, 4);
  PutBig(out, final_marker, 4);
  PutBig(out, filler, 4);
  for (size_t k = 0; k < filler; ++k) {
    out.push_back(Filler(index, uint64_t{part} + 1, k));
  }
  Seal(out);
  return out;
}

// Checks size, filler and checksum; `fixed` is the size of the fields
// before the filler size.
bool Intact(Bytes b, size_t fixed, uint64_t index_for_filler, uint64_t part) {
  if (b.size() < fixed + 4 + 8) return false;
  const uint64_t filler = GetBig(b, fixed, 4);
  if (b.size() != fixed + 4 + filler + 8) return false;
  const size_t body = b.size() - 8;
  if (Fnv1a(b.first(body)) != GetBig(b, body, 8)) return false;
  for (size_t k = 0; k < filler; ++k) {
    if (b[fixed + 4 + k] != Filler(index_for_filler, part, k)) return false;
  }
  return true;
}

// ---- the simulation -------------------------------------------------------

struct Pipe {
  std::vector<std::byte> buf;
  size_t head = 0;
  uint64_t delivered = 0;
  std::optional<uint64_t> cut_after;
  absl::Time stalled_until = absl::InfinitePast();
  bool writer_closed = false;
  bool reader_closed = false;
  size_t pending() const { return buf.size() - head; }
};

// One connection. Index 0 = orchestrator (initiator), 1 = agent endpoint;
// pipes_[r] carries bytes toward side r.
struct Conn {
  bool up = false;
  std::array<Session*, 2> ends{nullptr, nullptr};
  std::array<Pipe, 2> pipes;
};

struct TaskTrack {
  uint64_t index = 0;
  uint32_t next_part = 0;
};

struct AgentWork {
  TaskId task = 0;
  uint64_t index = 0;
  uint32_t partials = 0;  // partial responses to send before the final
  uint32_t sent = 0;
};

class Soak {
 public:
  explicit Soak(const Options& o)
      : o_(o),
        rng_(o.seed * 0x2545F4914F6CDD1Dull + 7),
        start_(absl::UnixEpoch() + absl::Seconds(1000)),
        now_(start_),
        agent_seen_(o.tasks, false),
        completed_flag_(o.tasks, false),
        id_of_index_(o.tasks, 0) {
    orch_config_ = BaseConfig(symwire::SessionSide::kInitiator,
                              symwire::AgentRole::kOrchestrator,
                              "soak-orchestrator", o.seed * 2 + 1);
    agent_config_ =
        BaseConfig(symwire::SessionSide::kAcceptor, symwire::AgentRole::kAgent,
                   "soak-agent", o.seed * 2 + 2);
    if (o.agent_max_tasks > 0) agent_config_.max_tasks = o.agent_max_tasks;
    next_cut_ = PickCutInterval();
  }

  int Run();

 private:
  symwire::SessionConfig BaseConfig(symwire::SessionSide side,
                                    symwire::AgentRole role,
                                    absl::string_view id, uint64_t seed) const {
    symwire::SessionConfig c;
    c.side = side;
    c.role = role;
    c.agent_id = std::string(id);
    c.random = symwire::SeededRandom(seed);
    c.ack_delay = absl::Milliseconds(1);
    c.backoff.initial = absl::Milliseconds(10);
    c.backoff.multiplier = 1.6;
    c.backoff.jitter = 0.2;
    c.backoff.max = absl::Seconds(1);
    c.handshake_timeout = absl::Seconds(2);
    c.ping_interval = absl::Seconds(1);
    c.min_peer_ping_interval = absl::Milliseconds(100);
    c.dead_peer_timeout = absl::Seconds(10);
    c.resume_window = absl::Seconds(60);
    if (o_.replay_frames > 0) c.replay_frames = o_.replay_frames;
    return c;
  }

  uint64_t PickCutInterval() {
    return o_.cut_max == 0 ? 0 : rng_.Between(o_.cut_min, o_.cut_max);
  }

  void Fatal(std::string why) {
    if (fatal_.empty()) fatal_ = std::move(why);
  }
  void Log(const std::string& line) {
    if (o_.verbose) {
      std::fprintf(stderr, "[t=+%s] %s\n",
                   absl::FormatDuration(now_ - start_).c_str(), line.c_str());
    }
  }

  void Dial();
  void Kill(absl::string_view why, bool tell_agent = true);
  void Pump(Session& s, size_t side);
  // After an input to agent-side session `s`: if its handshake runs, acts
  // on what the Endpoint says the connection became (`outcome`, else
  // Endpoint::Route).
  void Settle(Session& s,
              std::optional<symwire::ConnectionOutcome> outcome = {});
  void OnOrchestratorEvent(symwire::Event& e);
  void OnAgentEvent(Session& s, symwire::Event& e);
  bool Deliver();
  bool Housekeeping();
  void FireTimers();
  absl::Time NextWakeup() const;
  void Submit();
  void Respond();
  void MaybeArmCut();
  bool Step();
  bool Done() const {
    return completed_ == o_.tasks && agent_received_ == o_.tasks;
  }
  void PrintSummary(uint64_t lost, bool ok, double wall_ms);

  const Options o_;
  Rng rng_;
  const absl::Time start_;
  absl::Time now_;
  symwire::SessionConfig orch_config_;
  symwire::SessionConfig agent_config_;

  std::unique_ptr<Session> orch_;
  std::unique_ptr<symwire::Endpoint> endpoint_;   // the agent's server
  std::vector<std::shared_ptr<Session>> server_;  // every acceptor session
  std::vector<Session*> live_server_;             // those with timers
  // Server sessions whose handshake runs, and their Endpoint handles.
  absl::flat_hash_map<const Session*, symwire::ConnectionHandle> handshaking_;
  Session* agent_ = nullptr;  // the established one
  Conn conn_;
  std::array<std::vector<std::byte>, 2> rx_;
  size_t next_dir_ = 0;
  absl::Time dial_at_ = absl::InfiniteFuture();
  bool cuts_enabled_ = true;
  uint64_t next_cut_ = 0;
  uint64_t frames_at_cut_ = 0;
  bool cut_armed_ = false;

  // Orchestrator state.
  bool orch_established_ = false;
  bool orch_blocked_ = false;
  uint64_t submitted_ = 0;
  absl::flat_hash_map<TaskId, TaskTrack> in_flight_;
  std::vector<bool> agent_seen_;
  std::vector<bool> completed_flag_;
  std::vector<TaskId> id_of_index_;
  absl::flat_hash_map<TaskId, uint64_t> index_of_id_;
  uint64_t completed_ = 0;
  // Agent state.
  bool agent_blocked_ = false;
  uint64_t agent_next_ = 0;
  uint64_t agent_received_ = 0;
  std::vector<AgentWork> work_;

  // Counters.
  uint64_t duplicated_ = 0;
  uint64_t out_of_order_ = 0;
  uint64_t corrupted_ = 0;
  uint64_t failed_tasks_ = 0;
  uint64_t disconnects_ = 0;
  uint64_t resumes_ = 0;
  uint64_t cuts_ = 0;
  uint64_t dials_ = 0;
  uint64_t dial_failures_ = 0;
  uint64_t half_open_cuts_ = 0;
  uint64_t refusals_ = 0;
  uint64_t stalls_ = 0;
  uint64_t deliveries_ = 0;
  uint64_t steps_ = 0;
  uint64_t stuck_timers_ = 0;
  bool orch_closed_ = false;
  bool agent_closed_ = false;
  bool closing_ = false;
  std::string fatal_;
};

void Soak::Dial() {
  ++dials_;
  if (conn_.up) Kill("replaced by a new dial");
  if (endpoint_ == nullptr) {
    symwire::EndpointConfig config;
    config.session = agent_config_;
    auto created = symwire::Endpoint::Create(std::move(config));
    if (!created.ok()) {
      Fatal("Endpoint::Create: " + created.status().ToString());
      return;
    }
    endpoint_ = std::move(*created);
  }
  auto accepted = endpoint_->Accept(now_);
  if (!accepted.ok()) {
    Fatal("Endpoint::Accept: " + accepted.status().ToString());
    return;
  }
  server_.push_back(accepted->session);
  Session* acc = server_.back().get();
  live_server_.push_back(acc);
  handshaking_[acc] = accepted->connection;
  conn_ = Conn();
  conn_.up = true;
  conn_.ends = {orch_.get(), acc};
  Log(absl::StrCat("dial #", dials_));
  if (absl::Status s = orch_->TransportConnected(now_); !s.ok()) {
    Fatal("orchestrator TransportConnected: " + s.ToString());
  }
  Pump(*orch_, 0);
  Pump(*acc, 1);  // Endpoint::Accept connected it
}

void Soak::Settle(Session& s, std::optional<symwire::ConnectionOutcome> o) {
  auto it = handshaking_.find(&s);
  if (it == handshaking_.end()) return;
  if (!o) o = endpoint_->Route(it->second, now_);
  if (std::holds_alternative<symwire::HandshakeRunning>(*o)) return;
  handshaking_.erase(it);
  if (auto* started = std::get_if<symwire::SessionStarted>(&*o)) {
    if (agent_ != nullptr) Fatal("a second session was established");
    agent_ = started->session.get();
  } else if (auto* resumed = std::get_if<symwire::SessionResumed>(&*o)) {
    Log(absl::StrCat("resume routed to the session; superseded=",
                     resumed->superseded));
    if (resumed->session.get() != agent_) Fatal("resumed an unknown session");
    if (conn_.up && conn_.ends[1] == &s) conn_.ends[1] = agent_;
    Pump(*agent_, 1);
  } else if (auto* rejected = std::get_if<symwire::ConnectionRejected>(&*o)) {
    Log("connection rejected: " + rejected->status.ToString());
  }
}

void Soak::Kill(absl::string_view why, bool tell_agent) {
  if (!conn_.up) return;
  conn_.up = false;
  Log(absl::StrCat("link down: ", why, tell_agent ? "" : " (half-open)"));
  const absl::Status lost = symwire::MakeError(ErrorCode::kConnectionLost, why);
  for (size_t i = 0; i < 2; ++i) {
    Session* s = conn_.ends[i];
    if (s == nullptr || s->ConnectionClosing()) continue;
    if (i == 1 && !tell_agent) continue;
    s->TransportLost(lost, now_);
    Pump(*s, i);
    if (i == 1) Settle(*s);
  }
}

// Drains transmit into the link, then events, then honours
// ConnectionClosing (session.hpp's driver contract).
void Soak::Pump(Session& s, size_t side) {
  const bool attached = conn_.up && conn_.ends[side] == &s;
  Pipe& out = conn_.pipes[1 - side];
  for (;;) {
    Bytes b = s.PollTransmit();
    if (b.empty()) break;
    if (attached && !out.writer_closed && !out.reader_closed) {
      out.buf.insert(out.buf.end(), b.begin(), b.end());
    }
  }
  std::vector<symwire::Event> events;
  while (std::optional<symwire::Event> e = s.PollEvent()) {
    events.push_back(std::move(*e));
  }
  for (symwire::Event& e : events) {
    if (side == 0) {
      OnOrchestratorEvent(e);
    } else {
      OnAgentEvent(s, e);
    }
  }
  if (conn_.up && conn_.ends[side] == &s && s.ConnectionClosing() &&
      !out.writer_closed) {
    Log(absl::StrCat(side == 0 ? "orchestrator" : "agent",
                     " closes the connection"));
    out.writer_closed = true;
    Pipe& in = conn_.pipes[side];
    in.reader_closed = true;
    in.buf.clear();
    in.head = 0;
  }
}

void Soak::OnOrchestratorEvent(symwire::Event& e) {
  if (auto* est = std::get_if<symwire::Established>(&e)) {
    orch_established_ = true;
    if (est->resumed) ++resumes_;
    Log(absl::StrCat("orchestrator Established resumed=", est->resumed,
                     " replayed=", est->replayed_frames));
  } else if (auto* r = std::get_if<symwire::ResponseReceived>(&e)) {
    auto it = in_flight_.find(r->task);
    if (it == in_flight_.end()) {
      auto done = index_of_id_.find(r->task);
      if (done != index_of_id_.end() && completed_flag_[done->second]) {
        ++duplicated_;
      } else {
        ++corrupted_;
      }
      Log(absl::StrCat("response for task ", r->task, " not in flight"));
      return;
    }
    TaskTrack& t = it->second;
    const Bytes p = r->payload;
    if (p.size() < 20 || GetBig(p, 0, 8) != t.index ||
        !Intact(p, 16, t.index, GetBig(p, 8, 4) + 1)) {
      ++corrupted_;
      Log(absl::StrCat("corrupt response for task ", r->task));
      return;
    }
    const uint64_t part = GetBig(p, 8, 4);
    const uint64_t marker = GetBig(p, 12, 4);
    if (part < t.next_part) {
      ++duplicated_;
      return;
    }
    if (part > t.next_part) ++out_of_order_;
    t.next_part = static_cast<uint32_t>(part) + 1;
    if ((marker != kPartial) != r->final) {
      ++corrupted_;
      return;
    }
    if (r->final) {
      // The final's part index equals the number of partials before it.
      if (marker != part) ++out_of_order_;
      completed_flag_[t.index] = true;
      ++completed_;
      in_flight_.erase(it);
    }
  } else if (auto* f = std::get_if<symwire::TaskFailed>(&e)) {
    ++failed_tasks_;
    in_flight_.erase(f->task);
    Log(absl::StrCat("TaskFailed ", f->task, ": ", f->status.ToString()));
  } else if (auto* c = std::get_if<symwire::TaskCancelled>(&e)) {
    ++failed_tasks_;
    in_flight_.erase(c->task);
    Log(absl::StrCat("TaskCancelled ", c->task, ": ", c->status.ToString()));
  } else if (std::holds_alternative<symwire::Writable>(e)) {
    orch_blocked_ = false;
  } else if (auto* lost = std::get_if<symwire::ConnectionLost>(&e)) {
    ++disconnects_;
    Log("orchestrator ConnectionLost: " + lost->status.ToString());
  } else if (std::holds_alternative<symwire::ReconnectDue>(e)) {
    dial_at_ = std::min(dial_at_, now_);
  } else if (std::holds_alternative<symwire::SessionClosed>(e)) {
    orch_closed_ = true;
    if (!closing_) Fatal("orchestrator: unexpected SessionClosed");
  } else if (auto* sf = std::get_if<symwire::SessionFailed>(&e)) {
    Fatal("orchestrator SessionFailed: " + sf->status.ToString());
  } else if (std::holds_alternative<symwire::PeerDraining>(e)) {
    if (!closing_) Fatal("orchestrator: unexpected PeerDraining");
  } else {
    Fatal(
        absl::StrCat("orchestrator: unexpected event ", symwire::EventName(e)));
  }
}

void Soak::OnAgentEvent(Session& s, symwire::Event& e) {
  if (std::holds_alternative<symwire::Established>(e) ||
      std::holds_alternative<symwire::ResumeRequested>(e)) {
    // The Endpoint registers and routes (Settle).
  } else if (auto* t = std::get_if<symwire::TaskReceived>(&e)) {
    const Bytes p = t->payload();
    if (p.size() < 8 + 4 + 8) {
      ++corrupted_;
      return;
    }
    const uint64_t index = GetBig(p, 0, 8);
    if (index >= o_.tasks || !Intact(p, 8, index, 0) ||
        id_of_index_[index] != t->task) {
      ++corrupted_;
      Log(absl::StrCat("corrupt task ", t->task));
      return;
    }
    if (agent_seen_[index]) {
      ++duplicated_;
      return;
    }
    if (index != agent_next_) ++out_of_order_;
    agent_next_ = index + 1;
    agent_seen_[index] = true;
    ++agent_received_;
    AgentWork w;
    w.task = t->task;
    w.index = index;
    w.partials = o_.partials == 0
                     ? 3
                     : static_cast<uint32_t>(rng_.Between(1, o_.partials));
    work_.push_back(w);
  } else if (std::holds_alternative<symwire::Writable>(e)) {
    agent_blocked_ = false;
  } else if (auto* c = std::get_if<symwire::TaskCancelled>(&e)) {
    ++failed_tasks_;
    Log(absl::StrCat("agent TaskCancelled ", c->task));
    work_.erase(
        std::remove_if(work_.begin(), work_.end(),
                       [&](const AgentWork& w) { return w.task == c->task; }),
        work_.end());
  } else if (std::holds_alternative<symwire::ConnectionLost>(e)) {
    // Counted on the orchestrator side.
  } else if (std::holds_alternative<symwire::SessionClosed>(e)) {
    if (&s == agent_) {
      agent_closed_ = true;
      if (!closing_) Fatal("agent: unexpected SessionClosed");
    }
  } else if (auto* sf = std::get_if<symwire::SessionFailed>(&e)) {
    // A fresh session that lost its connection before resuming is
    // expected to end; the established one must not fail.
    if (&s == agent_) Fatal("agent SessionFailed: " + sf->status.ToString());
  } else if (std::holds_alternative<symwire::PeerDraining>(e)) {
    if (!closing_) Fatal("agent: unexpected PeerDraining");
  } else {
    Fatal(absl::StrCat("agent: unexpected event ", symwire::EventName(e)));
  }
}

// Orchestrator: keep up to `window` tasks in flight.
void Soak::Submit() {
  if (!orch_established_ || closing_) return;
  bool any = false;
  while (submitted_ < o_.tasks && in_flight_.size() < o_.window &&
         !orch_blocked_ && fatal_.empty()) {
    const std::vector<std::byte> payload = TaskPayload(submitted_, o_.payload);
    absl::StatusOr<TaskId> id = orch_->SubmitTask(payload, {}, now_);
    any = true;
    if (!id.ok()) {
      const ErrorCode code = symwire::GetErrorCode(id.status());
      if (code == ErrorCode::kNoCredit ||
          code == ErrorCode::kReplayBufferFull) {
        ++refusals_;
        orch_blocked_ = true;
        break;
      }
      Fatal("SubmitTask: " + id.status().ToString());
      break;
    }
    id_of_index_[submitted_] = *id;
    index_of_id_[*id] = submitted_;
    in_flight_[*id] = TaskTrack{submitted_, 0};
    ++submitted_;
  }
  if (any) Pump(*orch_, 0);
}

// Agent: send the next part of a random open task until refused.
void Soak::Respond() {
  if (agent_ == nullptr) return;
  bool any = false;
  while (!work_.empty() && !agent_blocked_ && fatal_.empty()) {
    const size_t i = static_cast<size_t>(rng_.Between(0, work_.size() - 1));
    AgentWork& w = work_[i];
    const bool final = w.sent == w.partials;
    const std::vector<std::byte> payload = ResponsePayload(
        w.index, w.sent, final ? w.partials : kPartial, o_.payload);
    const absl::Status st = agent_->SendResponse(w.task, payload, final, now_);
    any = true;
    if (!st.ok()) {
      if (symwire::GetErrorCode(st) == ErrorCode::kReplayBufferFull) {
        ++refusals_;
        agent_blocked_ = true;
        break;
      }
      Fatal(absl::StrCat("SendResponse(", w.task, "): ", st.ToString()));
      break;
    }
    ++w.sent;
    if (final) {
      work_[i] = work_.back();
      work_.pop_back();
    }
  }
  if (any) Pump(*agent_, 1);
}

// Cuts, and the end of a close. True if something happened.
bool Soak::Housekeeping() {
  for (size_t r = 0; r < 2; ++r) {
    const Pipe& p = conn_.pipes[r];
    if (p.cut_after && p.delivered >= *p.cut_after) {
      ++cuts_;
      cut_armed_ = false;
      // Half-open: only the orchestrator notices; the agent's session
      // learns when the resumed connection replaces it (the Endpoint)
      // or its dead-peer timer fires.
      const bool half_open =
          o_.half_open_pct > 0 && rng_.Between(1, 100) <= o_.half_open_pct;
      if (half_open) ++half_open_cuts_;
      Kill(absl::StrCat("cut after byte ", *p.cut_after, " toward ",
                        r == 0 ? "orchestrator" : "agent"),
           !half_open);
      return true;
    }
  }
  for (size_t r = 0; r < 2; ++r) {
    const Pipe& p = conn_.pipes[r];
    if (p.writer_closed && p.pending() == 0) {
      conn_.up = false;
      cut_armed_ = false;
      Session* s = conn_.ends[r];
      if (!conn_.pipes[1 - r].writer_closed && !s->ConnectionClosing()) {
        s->TransportLost(symwire::MakeError(ErrorCode::kConnectionLost,
                                            "closed by the peer"),
                         now_);
        Pump(*s, r);
        if (r == 1) Settle(*s);
      }
      return true;
    }
  }
  return false;
}

bool Soak::Deliver() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const size_t r = next_dir_;
    next_dir_ ^= 1;
    Pipe& p = conn_.pipes[r];
    if (p.pending() == 0 || p.reader_closed || now_ < p.stalled_until) {
      continue;
    }
    // Now and then a direction stalls for 1..50 ms (timers run meanwhile).
    if (rng_.Next() % 4096 == 0) {
      ++stalls_;
      p.stalled_until =
          now_ + absl::Milliseconds(static_cast<int64_t>(rng_.Between(1, 50)));
      continue;
    }
    size_t n = p.pending();
    const uint64_t mode = rng_.Next() % 10;
    if (mode < 5) {
      n = std::min<size_t>(n, static_cast<size_t>(rng_.Between(1, 64)));
    } else if (mode < 8) {
      n = std::min<size_t>(n, static_cast<size_t>(rng_.Between(1, 1024)));
    }
    if (p.cut_after) {
      n = std::min<size_t>(n, static_cast<size_t>(*p.cut_after - p.delivered));
    }
    if (n == 0) continue;  // a cut is due: Housekeeping runs next
    std::vector<std::byte>& rx = rx_[r];
    rx.assign(p.buf.begin() + static_cast<std::ptrdiff_t>(p.head),
              p.buf.begin() + static_cast<std::ptrdiff_t>(p.head + n));
    p.head += n;
    p.delivered += n;
    if (p.head == p.buf.size()) {
      p.buf.clear();
      p.head = 0;
    } else if (p.head > 65536 && p.head * 2 > p.buf.size()) {
      p.buf.erase(p.buf.begin(),
                  p.buf.begin() + static_cast<std::ptrdiff_t>(p.head));
      p.head = 0;
    }
    ++deliveries_;
    Log(absl::StrCat("deliver ", n, " to ", r));
    Session* s = conn_.ends[r];
    std::optional<symwire::ConnectionOutcome> outcome;
    absl::Status st;
    if (auto h = handshaking_.find(s); h != handshaking_.end()) {
      outcome = endpoint_->Receive(h->second, rx, now_);
      if (auto* rej = std::get_if<symwire::ConnectionRejected>(&*outcome)) {
        st = rej->status;
      }
    } else {
      st = s->Receive(rx, now_);
    }
    if (!st.ok()) {
      Log(absl::StrCat(r == 0 ? "orchestrator" : "agent",
                       " Receive: ", st.ToString()));
      if (symwire::GetErrorCode(st) == ErrorCode::kWrongState) {
        Fatal("Receive refused with WRONG_STATE: " + st.ToString());
      }
    }
    Pump(*s, r);
    if (outcome) Settle(*s, std::move(outcome));
    return true;
  }
  return false;
}

absl::Time Soak::NextWakeup() const {
  absl::Time next = std::min(dial_at_, orch_->NextDeadline());
  for (const Session* s : live_server_)
    next = std::min(next, s->NextDeadline());
  if (conn_.up) {
    for (const Pipe& p : conn_.pipes) {
      if (p.pending() > 0 && !p.reader_closed) {
        next = std::min(next, std::max(p.stalled_until, now_));
      }
    }
  }
  return next;
}

void Soak::FireTimers() {
  std::vector<std::pair<Session*, size_t>> due;
  if (orch_->NextDeadline() <= now_) due.emplace_back(orch_.get(), 0);
  for (Session* s : live_server_) {
    if (s->NextDeadline() <= now_) due.emplace_back(s, 1);
  }
  bool moved = due.empty();
  for (auto [s, side] : due) {
    s->HandleTimeout(now_);
    Pump(*s, side);
    if (side == 1) Settle(*s);
    if (s->NextDeadline() > now_) moved = true;
  }
  if (!moved) {
    // A deadline that HandleTimeout does not move would spin forever.
    ++stuck_timers_;
    now_ += absl::Microseconds(1);
  }
  live_server_.erase(
      std::remove_if(live_server_.begin(), live_server_.end(),
                     [](const Session* s) {
                       return (s->state() == SessionState::kClosed ||
                               s->state() == SessionState::kFailed) &&
                              s->NextDeadline() == absl::InfiniteFuture();
                     }),
      live_server_.end());
}

void Soak::MaybeArmCut() {
  if (!cuts_enabled_ || next_cut_ == 0 || !conn_.up || cut_armed_) return;
  const symwire::SessionCounters& c = orch_->counters();
  const uint64_t frames = c.frames_out + c.frames_in;
  if (frames - frames_at_cut_ < next_cut_) return;
  frames_at_cut_ = frames;
  next_cut_ = PickCutInterval();
  cut_armed_ = true;
  size_t r = static_cast<size_t>(rng_.Next() & 1);
  if (conn_.pipes[r].pending() == 0) r ^= 1;
  Pipe& p = conn_.pipes[r];
  p.cut_after = p.delivered + rng_.Between(0, p.pending());
}

bool Soak::Step() {
  ++steps_;
  MaybeArmCut();
  if (dial_at_ <= now_) {
    dial_at_ = absl::InfiniteFuture();
    if (o_.dial_fail_pct > 0 && rng_.Between(1, 100) <= o_.dial_fail_pct) {
      ++dial_failures_;
      Log("dial failed");
      orch_->TransportLost(
          symwire::MakeError(ErrorCode::kConnectionLost, "dial failed"), now_);
      Pump(*orch_, 0);
      return true;
    }
    Dial();
    return true;
  }
  if (conn_.up && (Housekeeping() || Deliver())) return true;
  const absl::Time next = NextWakeup();
  if (next == absl::InfiniteFuture()) return false;
  now_ = std::max(now_, next);
  FireTimers();
  return true;
}

int Soak::Run() {
  const auto wall_start = std::chrono::steady_clock::now();
  auto created = Session::Create(orch_config_, now_);
  if (!created.ok()) {
    std::fprintf(stderr, "symwire-soak: %s\n",
                 created.status().ToString().c_str());
    return 2;
  }
  orch_ = std::move(*created);
  if (absl::Status v = symwire::ValidateConfig(agent_config_); !v.ok()) {
    std::fprintf(stderr, "symwire-soak: %s\n", v.ToString().c_str());
    return 2;
  }
  const double max_sim = o_.max_sim_seconds > 0
                             ? o_.max_sim_seconds
                             : 600.0 + static_cast<double>(o_.tasks) / 100.0;
  const absl::Time deadline = start_ + absl::Seconds(max_sim);
  // Generous: a task costs ~5 frames, each delivered in a few chunks.
  const uint64_t max_steps = 2'000'000 + 1000 * o_.tasks;
  Dial();
  bool finished = false;
  while (fatal_.empty() && steps_ < max_steps && now_ <= deadline) {
    Submit();
    Respond();
    if (Done()) {
      finished = true;
      break;
    }
    if (!Step()) break;
  }
  if (!finished && fatal_.empty()) {
    Fatal(steps_ >= max_steps ? "step bound reached"
          : now_ > deadline   ? "simulated time bound reached"
                              : "simulation went idle before the end");
  }
  // Graceful close: no more cuts; both sides must report SessionClosed.
  bool closed = !o_.close;
  if (finished && o_.close && fatal_.empty()) {
    closing_ = true;
    cuts_enabled_ = false;
    for (Pipe& p : conn_.pipes) p.cut_after.reset();
    if (absl::Status s = orch_->Close(now_); !s.ok()) {
      Fatal("Close: " + s.ToString());
    }
    Pump(*orch_, 0);
    const absl::Time close_deadline = now_ + absl::Seconds(120);
    while (fatal_.empty() && !(orch_closed_ && agent_closed_) &&
           steps_ < max_steps + 1'000'000 && now_ <= close_deadline) {
      if (!Step()) break;
    }
    closed = orch_closed_ && agent_closed_;
    if (!closed && fatal_.empty()) {
      Fatal(absl::StrCat("close did not finish: orchestrator ",
                         symwire::SessionStateName(orch_->state()), ", agent ",
                         agent_ != nullptr
                             ? symwire::SessionStateName(agent_->state())
                             : "none"));
    }
  }
  const double wall_ms = std::chrono::duration<double, std::milli>(
                             std::chrono::steady_clock::now() - wall_start)
                             .count();
  uint64_t lost = 0;
  for (uint64_t i = 0; i < o_.tasks; ++i) {
    if (!agent_seen_[i] || !completed_flag_[i]) ++lost;
  }
  const bool ok = fatal_.empty() && finished && closed && lost == 0 &&
                  duplicated_ == 0 && out_of_order_ == 0 && corrupted_ == 0 &&
                  failed_tasks_ == 0 && completed_ == o_.tasks &&
                  stuck_timers_ == 0;
  PrintSummary(lost, ok, wall_ms);
  return ok ? 0 : 1;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

void Soak::PrintSummary(uint64_t lost, bool ok, double wall_ms) {
  uint64_t frames = 0;
  uint64_t retransmitted = 0;
  uint64_t bytes = 0;
  auto add = [&](const Session& s) {
    frames += s.counters().frames_out;
    retransmitted += s.counters().retransmitted_frames;
    bytes += s.counters().bytes_out;
  };
  add(*orch_);
  for (const auto& s : server_) add(*s);
  const double sim_seconds = absl::ToDoubleSeconds(now_ - start_);
  const std::string partials =
      o_.partials == 0 ? "3" : absl::StrCat("1..", o_.partials);
  std::printf(
      "{\"tasks\":%llu,\"completed\":%llu,\"lost\":%llu,\"duplicated\":%llu,"
      "\"out_of_order\":%llu,\"corrupted\":%llu,\"failed\":%llu,"
      "\"disconnects\":%llu,\"cuts\":%llu,\"half_open_cuts\":%llu,"
      "\"resumes\":%llu,\"dials\":%llu,\"dial_failures\":%llu,"
      "\"frames\":%llu,\"retransmitted\":%llu,\"bytes\":%llu,"
      "\"refusals\":%llu,\"stalls\":%llu,\"stuck_timers\":%llu,"
      "\"steps\":%llu,\"deliveries\":%llu,\"sim_seconds\":%.3f,\"wall_ms\":%."
      "0f,\"seed\":%llu,"
      "\"cut_every\":\"%llu:%llu\",\"partials\":\"%s\",\"payload\":%u,"
      "\"window\":%u,\"closed\":%s,\"ok\":%s,\"error\":%s}\n",
      static_cast<unsigned long long>(o_.tasks),
      static_cast<unsigned long long>(completed_),
      static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(duplicated_),
      static_cast<unsigned long long>(out_of_order_),
      static_cast<unsigned long long>(corrupted_),
      static_cast<unsigned long long>(failed_tasks_),
      static_cast<unsigned long long>(disconnects_),
      static_cast<unsigned long long>(cuts_),
      static_cast<unsigned long long>(half_open_cuts_),
      static_cast<unsigned long long>(resumes_),
      static_cast<unsigned long long>(dials_),
      static_cast<unsigned long long>(dial_failures_),
      static_cast<unsigned long long>(frames),
      static_cast<unsigned long long>(retransmitted),
      static_cast<unsigned long long>(bytes),
      static_cast<unsigned long long>(refusals_),
      static_cast<unsigned long long>(stalls_),
      static_cast<unsigned long long>(stuck_timers_),
      static_cast<unsigned long long>(steps_),
      static_cast<unsigned long long>(deliveries_), sim_seconds, wall_ms,
      static_cast<unsigned long long>(o_.seed),
      static_cast<unsigned long long>(o_.cut_min),
      static_cast<unsigned long long>(o_.cut_max), partials.c_str(), o_.payload,
      o_.window, orch_closed_ && agent_closed_ ? "true" : "false",
      ok ? "true" : "false", JsonString(fatal_).c_str());
  std::fflush(stdout);
}

// ---- network mode
// ------------------------------------------------------------
//
// --transport tcp|unix|tls: the same workload and checks as the simulation, but
// through the runtime (Client, Server) over real sockets on 127.0.0.1 or a
// Unix socket, with a FaultProxy (symwire/testing/fault_proxy.hpp) between
// them injecting --proxy-faults. One thread runs everything. Disconnects
// are the proxy's kills (and checksum failures from flipped bits), each
// repaired by the client's reconnect and resume.
#if SYMWIRE_SOAK_NET
namespace asio = boost::asio;

// The WebSocket path of --transport ws|wss.
constexpr char kWsPath[] = "/soak";

class NetSoak {
 public:
  explicit NetSoak(const Options& o)
      : o_(o), rng_(o.seed ^ 0x5eed), signals_(io_, SIGINT, SIGTERM) {}

  int Run() {
    const auto started = std::chrono::steady_clock::now();
    // A server or proxy of its own waits for outside peers: no bound
    // unless asked.
    const bool waits = o_.role == "server" || o_.role == "proxy";
    const uint64_t bound_s = o_.max_seconds > 0 ? o_.max_seconds
                             : waits            ? 0
                                                : 120 + o_.tasks / 500;
    if (!Setup()) return Finish(started);
    if (!o_.role.empty()) {
      signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (o_.verbose) std::fprintf(stderr, "%s: signal %d\n", Who(), sig);
        finished_ = true;
      });
    }
    const auto until = started + std::chrono::seconds(bound_s);
    while (!finished_ && fatal_.empty()) {
      if (bound_s > 0 && std::chrono::steady_clock::now() > until) {
        if (o_.role == "proxy") break;  // --max-seconds: how long it runs
        fatal_ =
            o_.role == "server"
                ? absl::StrCat("time bound of ", bound_s, " s ran out with ",
                               sessions_ended_, " of ", sessions_,
                               " sessions ended")
                : absl::StrCat("time bound of ", bound_s, " s ran out with ",
                               completed_, " of ", o_.tasks, " tasks done");
        break;
      }
      io_.run_for(std::chrono::milliseconds(20));
      if (io_.stopped()) io_.restart();
    }
    return Finish(started);
  }

 private:
  // Per agent session (the server's view): the next task index expected.
  struct AgentView {
    uint64_t next = 0;
    bool ended = false;
  };

  const char* Who() const {
    return o_.role.empty() ? "symwire-soak" : o_.role.c_str();
  }

  bool Setup() {
    if (o_.role == "server") {
      Address listen;
      if (!ParseAddress(o_.listen, listen)) {
        return Fatal("bad --listen address " + o_.listen);
      }
      transport_ = listen.unix_socket ? "unix" : listen.tls ? "tls" : "tcp";
      symwire::testing::FaultProxy::Endpoint bound;
      if (!StartServer(listen, bound)) return false;
      return Ready(bound, listen.tls);
    }
    if (o_.role == "proxy") {
      Address listen;
      Address upstream;
      if (!ParseAddress(o_.listen, listen)) {
        return Fatal("bad --listen address " + o_.listen);
      }
      if (!ParseAddress(o_.connect, upstream)) {
        return Fatal("bad --connect address " + o_.connect);
      }
      transport_ = upstream.unix_socket ? "unix" : "tcp";
      if (listen.unix_socket != upstream.unix_socket) {
        return Fatal("--listen and --connect must both be tcp:// or unix://");
      }
      symwire::testing::FaultOptions faults = o_.faults;
      faults.seed = o_.seed;
      symwire::testing::FaultProxy::Endpoint to;
      if (upstream.unix_socket) {
        faults.unix_listen_path = listen.path;
        to = asio::local::stream_protocol::endpoint(upstream.path);
      } else {
        boost::system::error_code ec;
        const asio::ip::address up = asio::ip::make_address(upstream.host, ec);
        if (ec) return Fatal("--connect needs a numeric IP: " + upstream.host);
        const asio::ip::address on = asio::ip::make_address(listen.host, ec);
        if (ec || on != asio::ip::address(asio::ip::address_v4::loopback())) {
          return Fatal("a proxy listens on 127.0.0.1 only, not " + listen.host);
        }
        faults.tcp_listen_port = listen.port;
        to = asio::ip::tcp::endpoint(up, upstream.port);
      }
      if (!StartProxy(to, faults)) return false;
      // TLS passes through as opaque bytes: tls:// is tcp:// here.
      return Ready(proxy_->endpoint(), listen.tls);
    }
    if (o_.role == "client") {
      Address connect;
      if (!ParseAddress(o_.connect, connect)) {
        return Fatal("bad --connect address " + o_.connect);
      }
      transport_ = connect.unix_socket ? "unix" : connect.tls ? "tls" : "tcp";
      if (connect.tls) {
        symwire::TlsClientOptions tco;
        tco.ca_file = o_.tls_ca;
        auto ctx = symwire::MakeTlsClientContext(tco);
        if (!ctx.ok()) return Fatal(ctx.status().ToString());
        return StartClient(symwire::TlsDialer(io_.get_executor(), connect.host,
                                              connect.port, *ctx,
                                              connect.host));
      }
      return StartClient(
          connect.unix_socket
              ? symwire::UnixDialer(io_.get_executor(), connect.path)
              : symwire::TcpDialer(io_.get_executor(), connect.host,
                                   connect.port));
    }
    // One process: server, proxy and client.
    transport_ = o_.transport;
    Address listen;
    if (o_.transport == "unix") {
      listen.unix_socket = true;
      listen.path = absl::StrCat("/tmp/symwire-soak-", ::getpid(), ".sock");
    } else {
      listen.host = "127.0.0.1";
    }
    symwire::testing::FaultProxy::Endpoint upstream;
    if (!StartServer(listen, upstream)) return false;
    symwire::testing::FaultOptions faults = o_.faults;
    faults.seed = o_.seed;
    if (o_.transport == "unix") {
      faults.unix_listen_path = unix_path_ + ".proxy";
    }
    if (!StartProxy(upstream, faults)) return false;
    symwire::Dialer dialer;
    if (const auto* tcp =
            std::get_if<asio::ip::tcp::endpoint>(&proxy_->endpoint())) {
      const std::string url =
          absl::StrCat(o_.transport == "wss" ? "wss" : "ws",
                       "://127.0.0.1:", tcp->port(), kWsPath);
      if (o_.transport == "ws") {
        dialer = symwire::WsDialer(io_.get_executor(), url);
      } else if (o_.transport == "wss") {
        dialer = symwire::WssDialer(io_.get_executor(), url, client_tls_);
      } else {
        dialer = client_tls_
                     ? symwire::TlsDialer(io_.get_executor(), "127.0.0.1",
                                          tcp->port(), client_tls_, "127.0.0.1")
                     : symwire::TcpDialer(io_.get_executor(), "127.0.0.1",
                                          tcp->port());
      }
    } else {
      dialer = symwire::UnixDialer(
          io_.get_executor(),
          std::get<asio::local::stream_protocol::endpoint>(proxy_->endpoint())
              .path());
    }
    return StartClient(std::move(dialer));
  }

  // The agent side: a Server listening on `at` (TLS with a throw-away PKI
  // for --transport tls and wss; WebSocket upgrades on kWsPath for ws and
  // wss); `bound` is where it listens.
  bool StartServer(const Address& at,
                   symwire::testing::FaultProxy::Endpoint& bound) {
    symwire::ServerOptions so;
    so.session.agent_id = "soak-agent";
    so.session.role = symwire::AgentRole::kAgent;
    so.session.ack_delay = absl::Milliseconds(1);
    if (o_.agent_max_tasks > 0) so.session.max_tasks = o_.agent_max_tasks;
    // More than one: the server's own threads serve the sessions (the
    // accept loop stays on io_); OnAgent moves the checks back to io_.
    so.threads = o_.server_threads;
    auto server = symwire::Server::Create(
        io_.get_executor(), so,
        [this](const std::shared_ptr<symwire::Channel>& p) { OnAgent(p); });
    if (!server.ok()) return Fatal(server.status().ToString());
    server_ = *server;
    const bool ws = o_.transport == "ws" || o_.transport == "wss";
    symwire::WsServerOptions wso;
    wso.path = kWsPath;
    if (o_.transport == "ws") {
      auto ep = server_->ListenTcp(at.host, at.port, symwire::WsUpgrade(wso));
      if (!ep.ok()) return Fatal(ep.status().ToString());
      bound = *ep;
    } else if (o_.transport == "tls" || o_.transport == "wss" || at.tls) {
      // A throw-away PKI (symwire/testing/test_certs.hpp) unless
      // --tls-cert/--tls-key; the client verifies the server's chain and
      // its IP address as usual (--role server: with --tls-ca-out's CA).
      symwire::TlsServerOptions tso;
      if (!o_.tls_cert.empty()) {
        tso.cert_file = o_.tls_cert;
        tso.key_file = o_.tls_key;
      } else {
        const symwire::testing::TestCertificates& pki =
            symwire::testing::TestCerts();
        tso.cert_pem = pki.server_cert_pem;
        tso.key_pem = pki.server_key_pem;
        if (!o_.tls_ca_out.empty() &&
            !WriteFile(o_.tls_ca_out, pki.ca_cert_pem)) {
          return false;
        }
        symwire::TlsClientOptions tco;
        tco.ca_pem = pki.ca_cert_pem;
        auto ctx = symwire::MakeTlsClientContext(tco);
        if (!ctx.ok()) return Fatal(ctx.status().ToString());
        client_tls_ = *ctx;
      }
      auto server_tls = symwire::MakeTlsServerContext(tso);
      if (!server_tls.ok()) return Fatal(server_tls.status().ToString());
      auto ep = server_->ListenTcp(at.host, at.port,
                                   ws ? symwire::WssUpgrade(*server_tls, wso)
                                      : symwire::TlsUpgrade(*server_tls));
      if (!ep.ok()) return Fatal(ep.status().ToString());
      bound = *ep;
    } else if (!at.unix_socket) {
      auto ep = server_->ListenTcp(at.host, at.port);
      if (!ep.ok()) return Fatal(ep.status().ToString());
      bound = *ep;
    } else {
      unix_path_ = at.path;
      if (absl::Status st = server_->ListenUnix(unix_path_); !st.ok()) {
        return Fatal(st.ToString());
      }
      bound = asio::local::stream_protocol::endpoint(unix_path_);
    }
    return true;
  }

  bool StartProxy(const symwire::testing::FaultProxy::Endpoint& upstream,
                  const symwire::testing::FaultOptions& faults) {
    try {
      proxy_ = std::make_unique<symwire::testing::FaultProxy>(
          io_.get_executor(), upstream, faults);
    } catch (const boost::system::system_error& e) {
      return Fatal(absl::StrCat("proxy: ", e.what()));
    }
    return true;
  }

  // Says where this process listens (stderr, and --ready-file once it
  // does).
  bool Ready(const symwire::testing::FaultProxy::Endpoint& at, bool tls) {
    std::string text;
    if (const auto* tcp = std::get_if<asio::ip::tcp::endpoint>(&at)) {
      Address a;
      a.tls = tls;
      a.host = tcp->address().to_string();
      a.port = tcp->port();
      text = a.Text();
    } else {
      text = "unix://" +
             std::get<asio::local::stream_protocol::endpoint>(at).path();
    }
    std::fprintf(stderr, "symwire-soak: %s listening on %s\n", Who(),
                 text.c_str());
    return o_.ready_file.empty() || WriteFile(o_.ready_file, text + "\n");
  }

  // Writes through a temporary file, so a reader never sees half of it.
  bool WriteFile(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    bool ok = f != nullptr && std::fputs(text.c_str(), f) >= 0;
    if (f != nullptr && std::fclose(f) != 0) ok = false;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
      return Fatal(
          absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    }
    return true;
  }

  // The orchestrator side: a Client that redials and resumes.
  bool StartClient(symwire::Dialer dialer) {
    symwire::ClientOptions co;
    co.session.agent_id = "soak-orchestrator";
    co.session.role = symwire::AgentRole::kOrchestrator;
    co.session.ack_delay = absl::Milliseconds(1);
    co.session.backoff.initial = absl::Milliseconds(2);
    co.session.backoff.max = absl::Milliseconds(100);
    if (o_.replay_frames > 0) co.session.replay_frames = o_.replay_frames;
    auto client =
        symwire::Client::Connect(io_.get_executor(), std::move(dialer), co);
    if (!client.ok()) return Fatal(client.status().ToString());
    client_ = *client;
    client_->SetObserver([this](const symwire::ChannelEvent& e) {
      if (e.kind == symwire::ChannelEvent::Kind::kReconnecting) ++disconnects_;
      if (e.kind == symwire::ChannelEvent::Kind::kResumed) ++resumes_;
      if (e.kind == symwire::ChannelEvent::Kind::kFailed) {
        Fatal(
            absl::StrCat("orchestrator session failed: ", e.status.ToString()));
      }
      if (e.kind == symwire::ChannelEvent::Kind::kClosed) orch_closed_ = true;
      if (o_.verbose) {
        std::fprintf(stderr, "orchestrator: %s %s\n",
                     std::string(symwire::ChannelEventName(e.kind)).c_str(),
                     e.status.ToString().c_str());
      }
      MaybeFinished();
    });
    expected_.resize(o_.tasks);
    for (uint32_t i = 0; i < o_.window && submitted_ < o_.tasks; ++i) {
      SubmitNext();
    }
    return true;
  }

  // The agent: every task exactly once, in submission order (per session);
  // answers with the parts at once (async_respond waits for room in the
  // send window).
  void OnAgent(const std::shared_ptr<symwire::Channel>& peer) {
    auto view = std::make_shared<AgentView>();
    if (o_.server_threads <= 1) {
      AgentSession(peer);
      peer->SetObserver([this, view](const symwire::ChannelEvent& e) {
        AgentEvent(*view, e);
      });
      peer->SetTaskHandler([this, view](symwire::IncomingTask task) {
        const Bytes p = task.payload();
        AgentTask(*view, std::move(task), p);
      });
      return;
    }
    // Server threads: this runs on the session's shard; the checks and
    // counters live on io_ (one thread), so every callback moves there.
    // IncomingTask's async_respond may be called from any thread.
    peer->SetObserver([this, view](const symwire::ChannelEvent& e) {
      asio::post(io_, [this, view, e] { AgentEvent(*view, e); });
    });
    peer->SetTaskHandler([this, view](symwire::IncomingTask task) {
      // The payload is valid during this call only: copied.
      const Bytes p = task.payload();
      asio::post(io_,
                 [this, view, task = std::move(task),
                  copy = std::vector<std::byte>(p.begin(), p.end())]() mutable {
                   AgentTask(*view, std::move(task), copy);
                 });
    });
    asio::post(io_, [this, peer] { AgentSession(peer); });
  }

  void AgentSession(const std::shared_ptr<symwire::Channel>& peer) {
    if (o_.role.empty() && !agents_.empty()) {
      Fatal("a second agent session was established (resume failed)");
      return;
    }
    agents_.push_back(peer);
    ++sessions_;
  }

  void AgentEvent(AgentView& view, const symwire::ChannelEvent& e) {
    if (o_.verbose && !o_.role.empty()) {
      std::fprintf(stderr, "agent: %s %s\n",
                   std::string(symwire::ChannelEventName(e.kind)).c_str(),
                   e.status.ToString().c_str());
    }
    if (e.kind == symwire::ChannelEvent::Kind::kReconnecting) {
      ++agent_disconnects_;
    }
    if (e.kind == symwire::ChannelEvent::Kind::kResumed) ++agent_resumes_;
    const bool ended = e.kind == symwire::ChannelEvent::Kind::kFailed ||
                       e.kind == symwire::ChannelEvent::Kind::kClosed;
    if (e.kind == symwire::ChannelEvent::Kind::kFailed) {
      ++sessions_failed_;
      Fatal(absl::StrCat("agent session failed: ", e.status.ToString()));
    }
    if (e.kind == symwire::ChannelEvent::Kind::kClosed) {
      ++sessions_closed_;
      agent_closed_ = true;
    }
    if (ended && !view.ended) {
      view.ended = true;
      ++sessions_ended_;
    }
    MaybeFinished();
  }

  // `p`: the task's payload.
  void AgentTask(AgentView& view, symwire::IncomingTask task, Bytes p) {
    ++agent_tasks_;
    if (!Intact(p, 8, p.size() >= 8 ? GetBig(p, 0, 8) : 0, 0)) {
      ++corrupted_;
      Fatal(absl::StrCat("agent: corrupt task payload (", p.size(), " bytes)"));
      return;
    }
    const uint64_t index = GetBig(p, 0, 8);
    if (index != view.next) {
      if (index < view.next) ++duplicated_;
      ++out_of_order_;
      Fatal(absl::StrCat("agent: task ", index, " arrived, expected ",
                         view.next));
      return;
    }
    ++view.next;
    const uint32_t parts =
        o_.partials == 0 ? 3
                         : 1 + static_cast<uint32_t>(rng_.Next() % o_.partials);
    for (uint32_t part = 0; part <= parts; ++part) {
      const bool final = part == parts;
      const std::vector<std::byte> r =
          ResponsePayload(index, part, final ? parts : kPartial, o_.payload);
      task.async_respond(
          std::string(reinterpret_cast<const char*>(r.data()), r.size()), final,
          asio::bind_executor(io_, [this, final](const absl::Status& st) {
            if (!st.ok()) {
              Fatal(absl::StrCat("agent respond: ", st.ToString()));
              return;
            }
            ++agent_responses_;
            if (final) ++agent_completed_;
          }));
    }
  }

  void SubmitNext() {
    const uint64_t index = submitted_++;
    const std::vector<std::byte> payload = TaskPayload(index, o_.payload);
    symwire::TaskCallbacks cb;
    cb.on_response = [this, index](Bytes b, bool final) {
      OnResponse(index, b, final);
    };
    cb.on_done = [this, index](const absl::Status& st) {
      if (!st.ok()) {
        Fatal(absl::StrCat("task ", index, " failed: ", st.ToString()));
      }
    };
    client_->async_submit(
        std::string(reinterpret_cast<const char*>(payload.data()),
                    payload.size()),
        {}, std::move(cb), [this, index](absl::StatusOr<symwire::TaskCall> c) {
          if (!c.ok()) {
            Fatal(absl::StrCat("submit ", index, ": ", c.status().ToString()));
          }
        });
  }

  void OnResponse(uint64_t index, Bytes b, bool final) {
    Expect& e = expected_[index];
    // The content is checked against the part it claims to be, so a part
    // delivered twice or early counts as such, not as corrupt.
    const uint64_t claimed = b.size() >= 16 ? GetBig(b, 8, 4) : 0;
    if (!Intact(b, 16, index, claimed + 1) || GetBig(b, 0, 8) != index) {
      ++corrupted_;
      Fatal(absl::StrCat("task ", index, ": corrupt response part ",
                         e.next_part));
      return;
    }
    const uint64_t part = GetBig(b, 8, 4);
    const uint64_t marker = GetBig(b, 12, 4);
    if (e.done || part != e.next_part) {
      ++out_of_order_;
      if (e.done) ++duplicated_;
      Fatal(absl::StrCat("task ", index, ": part ", part, " arrived, expected ",
                         e.next_part, e.done ? " (task already done)" : ""));
      return;
    }
    ++e.next_part;
    ++responses_;
    if (final != (marker != kPartial) || (final && marker != part)) {
      Fatal(absl::StrCat("task ", index, ": bad final marker"));
      return;
    }
    if (!final) return;
    e.done = true;
    ++completed_;
    if (submitted_ < o_.tasks) {
      SubmitNext();
    } else if (completed_ == o_.tasks) {
      // All done: stop injecting (a proxy of our own), then close
      // gracefully.
      if (proxy_) proxy_->SetEnabled(false);
      if (o_.close) {
        client_->async_close([this](const absl::Status& st) {
          if (!st.ok()) Fatal(absl::StrCat("close: ", st.ToString()));
        });
      } else {
        finished_ = true;
      }
    }
  }

  void MaybeFinished() {
    if (o_.role == "server") {
      if (o_.exit_after_sessions > 0 &&
          sessions_ended_ >= o_.exit_after_sessions) {
        finished_ = true;
      }
    } else if (o_.role == "client") {
      if (completed_ == o_.tasks && orch_closed_) finished_ = true;
    } else if (completed_ == o_.tasks && orch_closed_ && agent_closed_) {
      finished_ = true;
    }
  }

  bool Fatal(std::string why) {
    if (fatal_.empty()) fatal_ = std::move(why);
    return false;
  }

  int Finish(std::chrono::steady_clock::time_point started) {
    const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
    bool ok = false;
    if (o_.role == "server") {
      ok = PrintServer(wall);
    } else if (o_.role == "proxy") {
      ok = PrintProxy(wall);
    } else {
      ok = PrintClient(wall);
    }
    std::fflush(stdout);
    if (client_) client_->Abort(absl::CancelledError("soak finished"));
    if (server_) server_->Stop();
    if (proxy_) proxy_->Stop();
    signals_.cancel();
    io_.run_for(std::chrono::milliseconds(50));
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
    return ok ? 0 : 1;
  }

  // The orchestrator's view (one process: with the proxy's counters).
  bool PrintClient(long long wall) {
    const uint64_t lost = o_.tasks - completed_;
    const bool ok = fatal_.empty() && lost == 0 && duplicated_ == 0 &&
                    out_of_order_ == 0 && corrupted_ == 0;
    const symwire::SessionCounters c =
        client_ ? client_->counters() : symwire::SessionCounters{};
    std::string line = o_.role.empty() ? "{" : "{\"role\":\"client\",";
    absl::StrAppend(
        &line, "\"transport\":\"", transport_, "\",\"tasks\":", o_.tasks,
        ",\"completed\":", completed_, ",\"lost\":", lost,
        ",\"duplicated\":", duplicated_, ",\"out_of_order\":", out_of_order_,
        ",\"corrupted\":", corrupted_, ",\"disconnects\":", disconnects_,
        ",\"resumes\":", resumes_, ",\"responses\":", responses_,
        ",\"retransmitted\":", c.retransmitted_frames);
    if (o_.role.empty()) {
      const symwire::testing::FaultCounters f =
          proxy_ ? proxy_->counters() : symwire::testing::FaultCounters{};
      absl::StrAppend(
          &line, ",\"proxy_kills\":", f.kills, ",\"proxy_flips\":", f.flips,
          ",\"proxy_stalls\":", f.stalls, ",\"proxy_splits\":", f.splits,
          ",\"proxy_connections\":", f.connections_accepted);
      const symwire::ServerCounters sc =
          server_ ? server_->counters() : symwire::ServerCounters{};
      absl::StrAppend(&line, ",\"server_threads\":", o_.server_threads,
                      ",\"resumes_handed_off\":", sc.resumes_handed_off,
                      ",\"resumes_rejected\":", sc.resumes_rejected);
    }
    const bool closed = orch_closed_ && (agent_closed_ || !o_.role.empty());
    absl::StrAppend(&line, ",\"wall_ms\":", wall, ",\"seed\":", o_.seed,
                    ",\"closed\":", closed ? "true" : "false",
                    ",\"ok\":", ok ? "true" : "false",
                    ",\"error\":", JsonString(fatal_), "}\n");
    std::fputs(line.c_str(), stdout);
    return ok;
  }

  // The agent's view: tasks received, each exactly once and in order per
  // session; "completed" counts final responses the session took.
  bool PrintServer(long long wall) {
    const uint64_t lost = agent_tasks_ - agent_completed_;
    const bool ok = fatal_.empty() && lost == 0 && duplicated_ == 0 &&
                    out_of_order_ == 0 && corrupted_ == 0 &&
                    sessions_failed_ == 0;
    uint64_t retransmitted = 0;
    for (const auto& p : agents_) {
      retransmitted += p->counters().retransmitted_frames;
    }
    const symwire::ServerCounters sc =
        server_ ? server_->counters() : symwire::ServerCounters{};
    const bool closed = sessions_ > 0 && sessions_closed_ == sessions_;
    std::printf(
        "%s\n",
        absl::StrCat(
            "{\"role\":\"server\",\"transport\":\"", transport_,
            "\",\"tasks\":", agent_tasks_, ",\"completed\":", agent_completed_,
            ",\"lost\":", lost, ",\"duplicated\":", duplicated_,
            ",\"out_of_order\":", out_of_order_, ",\"corrupted\":", corrupted_,
            ",\"disconnects\":", agent_disconnects_, ",\"resumes\":",
            agent_resumes_, ",\"responses\":", agent_responses_,
            ",\"retransmitted\":", retransmitted, ",\"sessions\":", sessions_,
            ",\"sessions_closed\":", sessions_closed_, ",\"sessions_failed\":",
            sessions_failed_, ",\"connections\":", sc.connections_accepted,
            ",\"resumes_rejected\":", sc.resumes_rejected,
            ",\"server_threads\":", o_.server_threads,
            ",\"resumes_handed_off\":", sc.resumes_handed_off,
            ",\"wall_ms\":", wall, ",\"seed\":", o_.seed, ",\"closed\":",
            closed ? "true" : "false", ",\"ok\":", ok ? "true" : "false",
            ",\"error\":", JsonString(fatal_), "}")
            .c_str());
    return ok;
  }

  bool PrintProxy(long long wall) {
    const symwire::testing::FaultCounters f =
        proxy_ ? proxy_->counters() : symwire::testing::FaultCounters{};
    const bool ok = fatal_.empty();
    std::printf(
        "%s\n",
        absl::StrCat(
            "{\"role\":\"proxy\",\"transport\":\"", transport_,
            "\",\"proxy_kills\":", f.kills, ",\"proxy_flips\":", f.flips,
            ",\"proxy_stalls\":", f.stalls, ",\"proxy_splits\":", f.splits,
            ",\"proxy_connections\":", f.connections_accepted,
            ",\"proxy_connect_failures\":", f.connect_failures,
            ",\"bytes_up\":", f.bytes_up, ",\"bytes_down\":", f.bytes_down,
            ",\"wall_ms\":", wall, ",\"seed\":", o_.seed, ",\"ok\":",
            ok ? "true" : "false", ",\"error\":", JsonString(fatal_), "}")
            .c_str());
    return ok;
  }

  struct Expect {
    uint32_t next_part = 0;
    bool done = false;
  };

  Options o_;
  Rng rng_;
  asio::io_context io_;
  asio::signal_set signals_;
  std::string transport_;
  std::shared_ptr<asio::ssl::context> client_tls_;
  std::shared_ptr<symwire::Server> server_;
  std::unique_ptr<symwire::testing::FaultProxy> proxy_;
  std::shared_ptr<symwire::Channel> client_;
  std::vector<std::shared_ptr<symwire::Channel>> agents_;
  std::string unix_path_;
  std::vector<Expect> expected_;
  // Orchestrator.
  uint64_t submitted_ = 0;
  uint64_t completed_ = 0;
  uint64_t responses_ = 0;
  uint64_t disconnects_ = 0;
  uint64_t resumes_ = 0;
  // Agent.
  uint64_t sessions_ = 0;
  uint64_t sessions_closed_ = 0;
  uint64_t sessions_failed_ = 0;
  uint64_t sessions_ended_ = 0;
  uint64_t agent_tasks_ = 0;
  uint64_t agent_completed_ = 0;
  uint64_t agent_responses_ = 0;
  uint64_t agent_disconnects_ = 0;
  uint64_t agent_resumes_ = 0;
  // Both.
  uint64_t duplicated_ = 0;
  uint64_t out_of_order_ = 0;
  uint64_t corrupted_ = 0;
  bool orch_closed_ = false;
  bool agent_closed_ = false;
  bool finished_ = false;
  std::string fatal_;
};

#endif  // SYMWIRE_SOAK_NET

}  // namespace

int main(int argc, char** argv) {
  Options o;
  ParseArgs(argc, argv, o);
#if SYMWIRE_SOAK_NET
  if (!o.transport.empty() || !o.role.empty()) {
    NetSoak soak(o);
    return soak.Run();
  }
#endif
  Soak soak(o);
  return soak.Run();
}
