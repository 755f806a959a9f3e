// File: bench/e2e_zmq.cpp
// zmq-bench: libzmq (Debian's libzmq3-dev, 4.3) as a peer, with the command
// line and JSON of e2e_common.hpp; bench/README.md ("End to end"). Built
// only when pkg-config finds libzmq (bench/deps.sh installs it).
//
// Transports: tcp://HOST:PORT, or ipc://PATH for --transport unix.
// The server binds one socket, which serves any number of peers; the client
// connects --connections C sockets of its own to it (C separate
// connections), drives them from one thread, and prints one JSON line
// aggregated over all of them.
// Modes (the server needs the same --mode, and --rate in latency mode: it
// picks the socket type):
//   stream      PUSH (server) -> PULL (client): the server sends --payload
//               byte messages as fast as libzmq takes them (round-robin
//               over the C peers); msgs = messages received by the client.
//               The classic PUSH/PULL test.
//   throughput  DEALER (client) -> ROUTER (server): the client keeps
//               --window requests in flight per connection (at most the
//               default high-water mark, 1000), the server echoes each;
//               msgs = 2 per pair.
//   latency     --rate 0: REQ (client) / REP (server) ping-pong, one in
//               flight per connection (C = 1: blocking send/recv, no poll).
//               --rate R: DEALER (client) -> ROUTER (server), open loop, R
//               requests/s per connection paced by e2e::Pacer, at most
//               --window (and 1000) in flight, each timed from its own send
//               (echoes come back in order: a FIFO of send times per
//               connection).
// Driving: stream, throughput (any C) and latency with C > 1 or --rate go
// through one loop: zmq_poll over the C sockets, every ready socket drained
// with ZMQ_DONTWAIT, each reply followed at once by the next request
// (--rate 0). With --rate the wait is zmq_poll with timeout 0 between
// ppoll sleeps on the sockets' ZMQ_FDs until the next send is due, because
// zmq_poll's timeout is in milliseconds and 20000/s is one send per 50 us
// (timer slack set to 1 ns, so the sleeps are as precise as a timerfd);
// a send due within --pace-poll-us is not slept for (e2e::PollNotSleep).
// Default socket options otherwise (HWM 1000, one I/O thread). The client
// gives up (message, exit 1, no JSON) after 5 s without a message or when
// nothing was measured; the server waits for its first peer until killed,
// then exits 5 s after its traffic stops.
#include <poll.h>
#include <sys/prctl.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include "e2e_common.hpp"

namespace {

using e2e::Clock;
using e2e::Options;

constexpr int kHwm = 1000;             // libzmq's default high-water mark
constexpr int kIdleMs = 5000;          // server: exit after this long idle
constexpr double kStallSeconds = 5.0;  // client: give up
constexpr int kDrain = 1024;           // receives per socket per turn

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "zmq-bench: %s: %s\n", what, zmq_strerror(zmq_errno()));
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

bool Paced(const Options& o) { return o.mode == "latency" && o.rate > 0; }

int RunServer(const Options& o) {
  void* ctx = zmq_ctx_new();
  const int type = o.mode == "stream"                   ? ZMQ_PUSH
                   : o.mode == "throughput" || Paced(o) ? ZMQ_ROUTER
                                                        : ZMQ_REP;
  void* s = zmq_socket(ctx, type);
  if (s == nullptr) Die("zmq_socket");
  SetInt(s, ZMQ_LINGER, 0);
  const std::string endpoint = Endpoint(o);
  if (zmq_bind(s, endpoint.c_str()) != 0) {
    std::fprintf(stderr, "zmq-bench: zmq_bind %s: %s\n", endpoint.c_str(),
                 zmq_strerror(zmq_errno()));
    return 1;
  }
  e2e::SignalReady();
  std::vector<char> buf(o.payload + 64, 's');
  const int size = static_cast<int>(o.payload);
  bool timeout_set = false;
  if (o.mode == "stream") {
    // Blocks until a PULL connects (no peer: no send) and for as long as
    // every peer's pipe is full; once traffic has flowed, gives up when the
    // pipes stay full kIdleMs (the clients are gone).
    for (;;) {
      if (zmq_send(s, buf.data(), o.payload, 0) == size) {
        if (!timeout_set) SetInt(s, ZMQ_SNDTIMEO, kIdleMs);
        timeout_set = true;
        continue;
      }
      if (zmq_errno() == EINTR) continue;
      break;
    }
  } else if (type == ZMQ_ROUTER) {
    // Echo: [peer id][body] back to the same peer, for every DEALER.
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    for (;;) {
      if (zmq_msg_recv(&id, s, 0) < 0) break;
      if (zmq_msg_recv(&body, s, 0) < 0) break;
      if (zmq_msg_send(&id, s, ZMQ_SNDMORE) < 0) break;
      if (zmq_msg_send(&body, s, 0) < 0) break;
      if (!timeout_set) SetInt(s, ZMQ_RCVTIMEO, kIdleMs);  // clients gone
      timeout_set = true;
    }
    zmq_msg_close(&id);
    zmq_msg_close(&body);
  } else {
    for (;;) {
      const int n = zmq_recv(s, buf.data(), buf.size(), 0);
      if (n < 0) break;
      if (zmq_send(s, buf.data(), static_cast<size_t>(n), 0) < 0) break;
      if (!timeout_set) SetInt(s, ZMQ_RCVTIMEO, kIdleMs);
      timeout_set = true;
    }
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

struct Conn {
  void* s = nullptr;
  int inflight = 0;
  e2e::Pacer pacer;
  std::deque<Clock::time_point> sent;  // latency: send time per request
  explicit Conn(double rate) : pacer(rate) {}
};

// Latency, --rate 0, one connection: blocking REQ ping-pong (bounded by
// ZMQ_RCVTIMEO / ZMQ_SNDTIMEO).
void PingPong(void* s, const Options& o, e2e::Meter& m, e2e::Result& r) {
  std::vector<char> buf(o.payload + 64, 'c');
  while (m.Tick()) {
    const Clock::time_point t0 = Clock::now();
    if (zmq_send(s, buf.data(), o.payload, 0) < 0) Die("zmq_send");
    if (zmq_recv(s, buf.data(), buf.size(), 0) < 0) {
      if (zmq_errno() == EAGAIN) {
        std::fprintf(stderr,
                     "zmq-bench: no reply from %s within 5 s (is the server "
                     "running, with the same --mode and --rate?)\n",
                     Endpoint(o).c_str());
        std::exit(1);
      }
      Die("zmq_recv");
    }
    if (m.measuring) {
      r.latencies_us.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    m.Add(1);
  }
}

// Wait until a socket in `items` is ready or `deadline`: zmq_poll's own
// readiness check (timeout 0) between sleeps on the sockets' ZMQ_FDs
// (which signal whenever a socket has news; level of the mailbox, so a
// spurious wake-up only costs one more check). Returns zmq_poll's result.
// A deadline within --pace-poll-us returns after the readiness check
// (e2e::PollNotSleep): the caller polls again.
int WaitUntil(std::vector<zmq_pollitem_t>& items, std::vector<pollfd>& fds,
              Clock::time_point deadline, const Options& o) {
  for (;;) {
    const int n = zmq_poll(items.data(), static_cast<int>(items.size()), 0);
    if (n != 0) return n;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        deadline - Clock::now())
                        .count();
    if (ns <= 0 || e2e::PollNotSleep(deadline, o)) return 0;
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    if (ppoll(fds.data(), fds.size(), &ts, nullptr) < 0 && errno != EINTR) {
      std::perror("zmq-bench: ppoll");
      std::exit(1);
    }
  }
}

// Every other case: C sockets, one loop.
void Drive(std::vector<Conn>& conns, const Options& o, e2e::Meter& m,
           e2e::Result& r) {
  const bool stream = o.mode == "stream";
  const bool timed = o.mode == "latency";
  const bool paced = Paced(o);
  const int window =
      timed && !paced ? 1 : std::min(o.window, kHwm);  // HWM: see header
  std::vector<char> buf(o.payload + 64, 'c');
  std::vector<zmq_pollitem_t> items(conns.size());
  std::vector<pollfd> fds(conns.size());
  for (size_t i = 0; i < conns.size(); ++i) {
    items[i] = zmq_pollitem_t{conns[i].s, 0, ZMQ_POLLIN, 0};
    int fd = -1;
    size_t len = sizeof(fd);
    if (zmq_getsockopt(conns[i].s, ZMQ_FD, &fd, &len) != 0) {
      Die("zmq_getsockopt ZMQ_FD");
    }
    fds[i] = pollfd{fd, POLLIN, 0};
    if (paced) conns[i].pacer.Start();
  }
  Clock::time_point last_recv = Clock::now();
  while (m.Tick()) {
    const Clock::time_point now = Clock::now();
    if (std::chrono::duration<double>(now - last_recv).count() >
        kStallSeconds) {
      std::fprintf(stderr,
                   "zmq-bench: no message from %s for 5 s (is the server "
                   "running, with the same --mode and --rate?)\n",
                   Endpoint(o).c_str());
      std::exit(1);
    }
    // Send: what the window allows (or what is due, --rate).
    Clock::time_point wake = now + std::chrono::milliseconds(10);
    for (size_t i = 0; !stream && i < conns.size(); ++i) {
      Conn& c = conns[i];
      int room = window - c.inflight;
      if (paced) {
        room = static_cast<int>(std::min<uint64_t>(
            c.pacer.Due(), static_cast<uint64_t>(std::max(room, 0))));
      }
      bool full = false;
      for (int k = 0; k < room; ++k) {
        if (zmq_send(c.s, buf.data(), o.payload, ZMQ_DONTWAIT) < 0) {
          if (zmq_errno() == EAGAIN) {  // high-water mark: wait for room
            full = true;
            break;
          }
          Die("zmq_send");
        }
        ++c.inflight;
        if (timed) c.sent.push_back(Clock::now());
        if (paced) c.pacer.Sent();
      }
      items[i].events =
          static_cast<short>(ZMQ_POLLIN | (full ? ZMQ_POLLOUT : 0));
      if (paced && !full && c.inflight < window) {
        wake = std::min(wake, c.pacer.NextDue());
      }
    }
    // Wait.
    int ready;
    if (paced) {
      ready = WaitUntil(items, fds, wake, o);
    } else {
      ready = zmq_poll(items.data(), static_cast<int>(items.size()), 10);
    }
    if (ready < 0) {
      if (zmq_errno() == EINTR) continue;
      Die("zmq_poll");
    }
    // Receive: drain every readable socket.
    for (size_t i = 0; ready > 0 && i < conns.size(); ++i) {
      if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
      Conn& c = conns[i];
      for (int k = 0; k < kDrain; ++k) {
        if (zmq_recv(c.s, buf.data(), buf.size(), ZMQ_DONTWAIT) < 0) {
          if (zmq_errno() == EAGAIN) break;
          Die("zmq_recv");
        }
        last_recv = Clock::now();
        m.Add(1);
        if (stream) continue;
        --c.inflight;
        if (timed) {
          if (m.measuring) {
            r.latencies_us.push_back(std::chrono::duration<double, std::micro>(
                                         last_recv - c.sent.front())
                                         .count());
          }
          c.sent.pop_front();
        }
        // Refill at once, one for one, as a blocking loop would.
        if (paced) continue;
        if (zmq_send(c.s, buf.data(), o.payload, ZMQ_DONTWAIT) < 0) {
          if (zmq_errno() == EAGAIN) continue;  // next turn
          Die("zmq_send");
        }
        ++c.inflight;
        if (timed) c.sent.push_back(Clock::now());
      }
    }
  }
}

int RunClient(const Options& o) {
  if (Paced(o)) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  void* ctx = zmq_ctx_new();
  const int type = o.mode == "stream"                   ? ZMQ_PULL
                   : o.mode == "throughput" || Paced(o) ? ZMQ_DEALER
                                                        : ZMQ_REQ;
  const std::string endpoint = Endpoint(o);
  std::vector<Conn> conns;
  for (int i = 0; i < o.connections; ++i) {
    Conn c(o.rate);
    c.s = zmq_socket(ctx, type);
    if (c.s == nullptr) Die("zmq_socket");
    SetInt(c.s, ZMQ_LINGER, 0);
    SetInt(c.s, ZMQ_RCVTIMEO, static_cast<int>(kStallSeconds * 1000));
    SetInt(c.s, ZMQ_SNDTIMEO, static_cast<int>(kStallSeconds * 1000));
    if (zmq_connect(c.s, endpoint.c_str()) != 0) {
      std::fprintf(stderr, "zmq-bench: zmq_connect %s: %s\n", endpoint.c_str(),
                   zmq_strerror(zmq_errno()));
      return 1;
    }
    conns.push_back(std::move(c));
  }
  e2e::Result r;
  r.system = "zmq";
  r.options = o;
  e2e::Meter m(o);
  if (type == ZMQ_REQ && conns.size() == 1) {
    PingPong(conns[0].s, o, m, r);
  } else {
    Drive(conns, o, m, r);
  }
  if (m.count == 0) {
    std::fprintf(stderr,
                 "zmq-bench: no message from %s in the measured time (is the "
                 "server running, with the same --mode and --rate?)\n",
                 endpoint.c_str());
    return 1;
  }
  if (o.mode == "stream") {
    r.messages = m.count;
    r.payload_bytes = m.count * o.payload;
  } else {
    r.tasks = m.count;
    r.messages = o.mode == "throughput" ? 2 * m.count : m.count;
    r.payload_bytes = 2 * m.count * o.payload;
  }
  r.elapsed = m.elapsed;
  e2e::PrintResult(std::move(r));
  for (Conn& c : conns) zmq_close(c.s);
  zmq_ctx_term(ctx);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = e2e::ParseArgs(argc, argv);
  e2e::Pin(o.pin);
  return o.role == "server" ? RunServer(o) : RunClient(o);
}
