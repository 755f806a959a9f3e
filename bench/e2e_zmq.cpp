// File: bench/e2e_zmq.cpp
// zmq-bench: libzmq (Debian's libzmq3-dev, 4.3) as a peer, with the command
// line and JSON of e2e_common.hpp; bench/README.md ("End to end"). Built
// only when pkg-config finds libzmq (bench/deps.sh installs it).
//
// Transports: tcp://HOST:PORT, or ipc://PATH for --transport unix.
// Modes (the server needs the same --mode: it picks the socket type):
//   stream      PUSH (server) -> PULL (client): the server sends --payload
//               byte messages as fast as libzmq takes them; msgs = messages
//               received by the client. The classic PUSH/PULL test.
//   throughput  DEALER (client) -> ROUTER (server): the client keeps
//               --window requests in flight (at most the default high-water
//               mark, 1000), the server echoes each; msgs = 2 per pair.
//   latency     REQ (client) / REP (server) ping-pong, one in flight.
// Default socket options otherwise (HWM 1000, one I/O thread). One
// connection only.
#include <zmq.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "e2e_common.hpp"

namespace {

using e2e::Clock;
using e2e::Options;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, zmq_strerror(zmq_errno()));
  std::exit(1);
}

std::string Endpoint(const Options& o) {
  return (o.transport == "tcp" ? "tcp://" : "ipc://") + o.address;
}

void SetInt(void* s, int option, int value) {
  if (zmq_setsockopt(s, option, &value, sizeof(value)) != 0) {
    Die("zmq_setsockopt");
  }
}

int RunServer(const Options& o) {
  void* ctx = zmq_ctx_new();
  const int type = o.mode == "stream"       ? ZMQ_PUSH
                   : o.mode == "throughput" ? ZMQ_ROUTER
                                            : ZMQ_REP;
  void* s = zmq_socket(ctx, type);
  SetInt(s, ZMQ_LINGER, 0);
  if (zmq_bind(s, Endpoint(o).c_str()) != 0) Die("zmq_bind");
  e2e::SignalReady();
  std::vector<char> buf(o.payload + 64, 's');
  const int size = static_cast<int>(o.payload);
  bool timeout_set = false;
  if (o.mode == "stream") {
    // Blocks until a PULL connects (no peer: no send); gives up once the
    // client is gone and the pipe stays full.
    SetInt(s, ZMQ_SNDTIMEO, 2000);
    while (zmq_send(s, buf.data(), o.payload, 0) == size) {
    }
  } else if (o.mode == "throughput") {
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    for (;;) {
      if (zmq_msg_recv(&id, s, 0) < 0) break;
      if (zmq_msg_recv(&body, s, 0) < 0) break;
      if (zmq_msg_send(&id, s, ZMQ_SNDMORE) < 0) break;
      if (zmq_msg_send(&body, s, 0) < 0) break;
      if (!timeout_set) SetInt(s, ZMQ_RCVTIMEO, 5000);  // client gone: exit
      timeout_set = true;
    }
    zmq_msg_close(&id);
    zmq_msg_close(&body);
  } else {
    for (;;) {
      const int n = zmq_recv(s, buf.data(), buf.size(), 0);
      if (n < 0) break;
      if (zmq_send(s, buf.data(), static_cast<size_t>(n), 0) < 0) break;
      if (!timeout_set) SetInt(s, ZMQ_RCVTIMEO, 5000);
      timeout_set = true;
    }
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

struct Meter {
  const Options& o;
  Clock::time_point start = Clock::now();
  Clock::time_point measure_start;
  bool measuring = false;
  uint64_t count = 0;
  double elapsed = 0;
  explicit Meter(const Options& opts) : o(opts) {}
  bool Tick() {
    if (!measuring) {
      if (e2e::SecondsSince(start) >= o.warmup) {
        measuring = true;
        measure_start = Clock::now();
      }
      return true;
    }
    if (o.messages != 0 ? count >= o.messages
                        : e2e::SecondsSince(measure_start) >= o.seconds) {
      elapsed = e2e::SecondsSince(measure_start);
      return false;
    }
    return true;
  }
  void Add(uint64_t n) {
    if (measuring) count += n;
  }
};

int RunClient(const Options& o) {
  if (o.connections != 1) {
    std::fprintf(stderr, "zmq-bench: --connections 1 only\n");
    return 2;
  }
  void* ctx = zmq_ctx_new();
  const int type = o.mode == "stream"       ? ZMQ_PULL
                   : o.mode == "throughput" ? ZMQ_DEALER
                                            : ZMQ_REQ;
  void* s = zmq_socket(ctx, type);
  SetInt(s, ZMQ_LINGER, 0);
  if (zmq_connect(s, Endpoint(o).c_str()) != 0) Die("zmq_connect");
  std::vector<char> buf(o.payload + 64, 'c');
  e2e::Result r;
  r.system = "zmq";
  r.options = o;
  Meter m(o);
  if (o.mode == "stream") {
    while (m.Tick()) {
      if (zmq_recv(s, buf.data(), buf.size(), 0) < 0) Die("zmq_recv");
      m.Add(1);
    }
    r.messages = m.count;
    r.payload_bytes = m.count * o.payload;
  } else if (o.mode == "throughput") {
    const int window = o.window < 1000 ? o.window : 1000;
    int inflight = 0;
    while (m.Tick()) {
      while (inflight < window) {
        if (zmq_send(s, buf.data(), o.payload, 0) < 0) Die("zmq_send");
        ++inflight;
      }
      if (zmq_recv(s, buf.data(), buf.size(), 0) < 0) Die("zmq_recv");
      --inflight;
      m.Add(1);
    }
    r.tasks = m.count;
    r.messages = 2 * m.count;
    r.payload_bytes = 2 * m.count * o.payload;
  } else {
    while (m.Tick()) {
      const Clock::time_point t0 = Clock::now();
      if (zmq_send(s, buf.data(), o.payload, 0) < 0) Die("zmq_send");
      if (zmq_recv(s, buf.data(), buf.size(), 0) < 0) Die("zmq_recv");
      if (m.measuring) {
        r.latencies_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - t0)
                .count());
      }
      m.Add(1);
    }
    r.tasks = m.count;
    r.messages = m.count;
    r.payload_bytes = 2 * m.count * o.payload;
  }
  r.elapsed = m.elapsed;
  e2e::PrintResult(std::move(r));
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = e2e::ParseArgs(argc, argv);
  e2e::Pin(o.pin);
  return o.role == "server" ? RunServer(o) : RunClient(o);
}
