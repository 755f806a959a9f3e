// File: bench/e2e_raw_tcp.cpp
// raw-tcp-bench: the ceiling. Bare 4-byte big-endian length-prefixed
// messages over a plain socket (loopback TCP with TCP_NODELAY, or a
// Unix-domain stream socket), plain system calls (non-blocking, epoll on
// the server, ppoll on the client; blocking only for the one-connection
// ping-pong), default socket buffers, no validation, no checksum, no copy
// of the payload beyond the kernel's (messages are written from a prebuilt
// buffer of repeated messages, the echo included; only length prefixes are
// looked at).
// Command line and JSON: e2e_common.hpp; bench/README.md ("End to end").
//
// The client says what it wants in an 8-byte hello per connection ("STRM"
// or "ECHO" + the payload size), so the server needs no mode flag. The
// server is one thread: epoll over the listening socket and every accepted
// connection (non-blocking, level-triggered; an echo connection stops
// reading while 256 KiB of echoes are unwritten); it exits when its last
// client connection closes. The client is one thread driving --connections
// C sockets with ppoll (nanosecond timeouts, for --rate), and prints one
// JSON line aggregated over all connections:
//   stream      the server writes 64 KiB batches of whole messages (as many
//               as fit, or one bigger message) to every connection until
//               the client hangs up; the client reads 64 KiB at a time and
//               walks every length prefix. msgs = messages received.
//   throughput  the client keeps --window messages in flight per
//               connection; the server echoes every complete message of
//               each read. msgs = sent + echoed (2 per pair).
//   latency     --rate 0: one message in flight per connection, each round
//               trip timed with steady_clock (C = 1: blocking ping-pong,
//               no poll); --rate R: open loop, R requests/s per connection
//               paced by e2e::Pacer, at most --window in flight, each
//               timed from its own send (echoes come back in order: a FIFO
//               of send times per connection); timer slack set to 1 ns so
//               the ppoll timeouts pace as precisely as a timerfd; a send
//               due within --pace-poll-us is waited for by ppoll with a zero
//               timeout (e2e::PollNotSleep).
// The client gives up (message, exit 1, no JSON) after 5 s without any
// data, or when nothing was measured.
//
// Default socket buffers matter for Unix sockets: AF_UNIX charges queued
// bytes to the sender's SO_SNDBUF (net.core.wmem_default, 208 KiB here:
// about 12 messages of 16 KiB), and a blocked writer wakes only when 3/4
// has drained, so each side sleeps and is woken every dozen 16 KiB
// messages; on a CPU shared with other work each wake-up can wait for a
// scheduler slice (bench/README.md, "End to end").
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "e2e_common.hpp"

namespace {

using e2e::Clock;
using e2e::Options;

constexpr size_t kBatch = 64 * 1024;
// Echo connection: stop reading while this many echo bytes are unwritten.
constexpr uint64_t kEchoBacklog = 4 * kBatch;
// Client: give up after this long without receiving anything.
constexpr double kStallSeconds = 5.0;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "raw-tcp-bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "raw-tcp-bench: %s\n", what);
  std::exit(1);
}

uint32_t LoadBe32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}
void StoreBe32(char* p, uint32_t v) {
  v = htonl(v);
  std::memcpy(p, &v, 4);
}

// Address helpers: one sockaddr for either transport.
struct Addr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
};

Addr MakeAddr(const Options& o) {
  Addr a;
  if (o.transport == "tcp") {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(o.Port());
    if (inet_pton(AF_INET, o.Host().c_str(), &in.sin_addr) != 1) {
      std::fprintf(stderr, "raw-tcp-bench: bad IPv4 address %s\n",
                   o.Host().c_str());
      std::exit(2);
    }
    std::memcpy(&a.storage, &in, sizeof(in));
    a.len = sizeof(in);
    a.family = AF_INET;
  } else {
    sockaddr_un un{};
    if (o.address.size() >= sizeof(un.sun_path)) {
      std::fprintf(stderr, "raw-tcp-bench: socket path too long: %s\n",
                   o.address.c_str());
      std::exit(2);
    }
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof(un.sun_path), "%s", o.address.c_str());
    std::memcpy(&a.storage, &un, sizeof(un));
    a.len = sizeof(un);
    a.family = AF_UNIX;
  }
  return a;
}

sockaddr* AsSockaddr(Addr& a) {
  return reinterpret_cast<sockaddr*>(&a.storage);
}

void SetNoDelay(int fd, const Options& o) {
  if (o.transport != "tcp") return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) Die("fcntl");
}

bool WouldBlock() {
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

// Blocking helpers (the hello, the C = 1 ping-pong).
void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      Die(errno == EAGAIN ? "write (timed out)" : "write");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Reads exactly n bytes; exits with a message on error, timeout or EOF.
void ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r == 0) Fail("the server closed the connection");
    if (r < 0) {
      if (errno == EINTR) continue;
      Die(errno == EAGAIN ? "read (no reply within 5 s)" : "read");
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
}

// Repeating: whole length-prefixed messages back to back. A connection's
// outgoing bytes are the one message repeated, so a write at stream offset
// `offset` starts at `offset % period` in this buffer whatever earlier
// writes took, and at least bytes.size() - period bytes fit in one write.
struct Repeating {
  std::vector<char> bytes;
  size_t period;  // one message: 4 + payload
  Repeating(size_t payload, size_t count, char fill)
      : bytes(count * (4 + payload), fill), period(4 + payload) {
    for (size_t i = 0; i < count; ++i) {
      StoreBe32(bytes.data() + i * period, static_cast<uint32_t>(payload));
    }
  }
  // Writes up to `n` bytes starting at stream offset `offset`; the bytes
  // written, or -1 (errno).
  ssize_t WriteAt(int fd, uint64_t offset, uint64_t n) const {
    const size_t at = static_cast<size_t>(offset % period);
    const size_t len =
        static_cast<size_t>(std::min<uint64_t>(n, bytes.size() - at));
    return write(fd, bytes.data() + at, len);
  }
};

// About `bytes` worth of whole messages, at least `min_count`.
size_t CountFor(size_t payload, size_t bytes, size_t min_count) {
  return std::max(min_count, bytes / (4 + payload));
}

// Parser: walks length prefixes across reads.
struct Parser {
  std::vector<char> buf;
  size_t len = 0;
  explicit Parser(size_t payload)
      : buf(std::max(4 * kBatch, 2 * payload + 8)) {}
  char* Tail() { return buf.data() + len; }
  size_t Room() const { return std::min(kBatch, buf.size() - len); }
  // After `n` more bytes arrived: the number of complete messages, which are
  // consumed (the partial rest moves to the front).
  uint64_t Take(size_t n) {
    len += n;
    size_t pos = 0;
    uint64_t count = 0;
    while (len - pos >= 4) {
      const size_t m = LoadBe32(buf.data() + pos);
      if (len - pos < 4 + m) break;
      pos += 4 + m;
      ++count;
    }
    if (pos > 0) {
      std::memmove(buf.data(), buf.data() + pos, len - pos);
      len -= pos;
    }
    return count;
  }
};

// ---- server ---------------------------------------------------------------

struct ServerConn {
  int fd = -1;
  enum class State { kHello, kStream, kEcho } state = State::kHello;
  char hello[8];
  size_t hello_len = 0;
  std::unique_ptr<Parser> in;      // echo
  std::unique_ptr<Repeating> out;  // stream batches or echoes
  uint64_t owe = 0;                // echo bytes not yet written
  uint64_t written = 0;            // offset into `out`'s stream
  uint32_t events = 0;             // registered with epoll
  bool dead = false;               // closed at the end of this turn
};

class Server {
 public:
  explicit Server(const Options& o) : o_(o) {}

  int Run() {
    Addr a = MakeAddr(o_);
    lfd_ = socket(a.family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd_ < 0) Die("socket");
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (o_.transport == "unix") unlink(o_.address.c_str());
    if (bind(lfd_, AsSockaddr(a), a.len) != 0) Die("bind");
    if (listen(lfd_, SOMAXCONN) != 0) Die("listen");
    ep_ = epoll_create1(0);
    if (ep_ < 0) Die("epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the listening socket
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev) != 0) Die("epoll_ctl");
    e2e::SignalReady();
    epoll_event evs[64];
    // Until killed, or until the last client connection closes.
    while (accepted_ == 0 || live_ > 0) {
      const int n = epoll_wait(ep_, evs, 64, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<ServerConn*>(evs[i].data.ptr);
        if (c == nullptr) {
          Accept();
        } else {
          Handle(c, evs[i].events);
        }
      }
      // Close outside the event loop: an event later in `evs` may name it.
      for (ServerConn* c : closing_) Close(c);
      closing_.clear();
    }
    close(ep_);
    close(lfd_);
    if (o_.transport == "unix") unlink(o_.address.c_str());
    return 0;
  }

 private:
  void Accept() {
    for (;;) {
      const int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK);
      if (fd < 0) {
        if (WouldBlock() || errno == ECONNABORTED) return;
        Die("accept");
      }
      SetNoDelay(fd, o_);
      auto c = std::make_unique<ServerConn>();
      c->fd = fd;
      c->events = EPOLLIN;
      epoll_event ev{};
      ev.events = c->events;
      ev.data.ptr = c.get();
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) Die("epoll_ctl");
      conns_.push_back(std::move(c));
      ++accepted_;
      ++live_;
    }
  }

  void Want(ServerConn* c, uint32_t events) {
    if (events == c->events) return;
    c->events = events;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev) != 0) Die("epoll_ctl");
  }

  void Closing(ServerConn* c) {
    if (c->dead) return;
    c->dead = true;
    closing_.push_back(c);
  }

  void Close(ServerConn* c) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    c->fd = -1;
    --live_;
    conns_.erase(std::find_if(conns_.begin(), conns_.end(),
                              [c](const auto& p) { return p.get() == c; }));
  }

  void Handle(ServerConn* c, uint32_t events) {
    if (c->dead) return;
    if (events & (EPOLLERR | EPOLLHUP)) {
      Closing(c);  // the client is gone
      return;
    }
    switch (c->state) {
      case ServerConn::State::kHello:
        ReadHello(c);
        return;
      case ServerConn::State::kStream:
        WriteStream(c);
        return;
      case ServerConn::State::kEcho:
        if (events & EPOLLIN) ReadEcho(c);
        if (c->dead) return;
        if (c->owe > 0) WriteEcho(c);
        if (c->dead) return;
        Want(c, (c->owe < kEchoBacklog ? EPOLLIN : 0u) |
                    (c->owe > 0 ? EPOLLOUT : 0u));
        return;
    }
  }

  void ReadHello(ServerConn* c) {
    const ssize_t r =
        read(c->fd, c->hello + c->hello_len, sizeof(c->hello) - c->hello_len);
    if (r <= 0) {
      if (r < 0 && WouldBlock()) return;
      Closing(c);
      return;
    }
    c->hello_len += static_cast<size_t>(r);
    if (c->hello_len < sizeof(c->hello)) return;
    const size_t payload = LoadBe32(c->hello + 4);
    if (std::memcmp(c->hello, "STRM", 4) == 0) {
      c->state = ServerConn::State::kStream;
      c->out = std::make_unique<Repeating>(payload,
                                           CountFor(payload, kBatch, 1), 's');
      Want(c, EPOLLOUT);
    } else if (std::memcmp(c->hello, "ECHO", 4) == 0) {
      c->state = ServerConn::State::kEcho;
      c->in = std::make_unique<Parser>(payload);
      c->out = std::make_unique<Repeating>(
          payload, CountFor(payload, 2 * kEchoBacklog, 2), 'e');
    } else {
      std::fprintf(stderr, "raw-tcp-bench: bad hello, connection closed\n");
      Closing(c);
    }
  }

  // As many 64 KiB batches as the socket takes (at most 8 per event, so
  // that connections take turns). Each write is the rest of the batch.
  void WriteStream(ServerConn* c) {
    for (int i = 0; i < 8; ++i) {
      const ssize_t w = c->out->WriteAt(c->fd, c->written, UINT64_MAX);
      if (w < 0) {
        if (!WouldBlock()) Closing(c);  // the client hung up
        return;
      }
      c->written += static_cast<uint64_t>(w);
    }
  }

  void ReadEcho(ServerConn* c) {
    const ssize_t r = read(c->fd, c->in->Tail(), c->in->Room());
    if (r <= 0) {
      if (r < 0 && WouldBlock()) return;
      Closing(c);  // end of stream or error: the client left
      return;
    }
    c->owe += c->in->Take(static_cast<size_t>(r)) * c->out->period;
  }

  void WriteEcho(ServerConn* c) {
    while (c->owe > 0) {
      const ssize_t w = c->out->WriteAt(c->fd, c->written, c->owe);
      if (w < 0) {
        if (!WouldBlock()) Closing(c);
        return;
      }
      c->written += static_cast<uint64_t>(w);
      c->owe -= static_cast<uint64_t>(w);
    }
  }

  const Options& o_;
  int lfd_ = -1;
  int ep_ = -1;
  std::vector<std::unique_ptr<ServerConn>> conns_;
  std::vector<ServerConn*> closing_;
  uint64_t accepted_ = 0;
  int live_ = 0;
};

// ---- client ---------------------------------------------------------------

struct ClientConn {
  int fd = -1;
  Parser in;
  uint64_t owe = 0;       // request bytes queued, not yet written
  uint64_t written = 0;   // offset into the request stream
  uint64_t inflight = 0;  // requests queued or written, echo not complete
  e2e::Pacer pacer;
  std::deque<Clock::time_point> sent;  // latency: send time per request

  ClientConn(size_t payload, double rate) : in(payload), pacer(rate) {}
};

int Connect(const Options& o) {
  Addr a = MakeAddr(o);
  const int fd = socket(a.family, SOCK_STREAM, 0);
  if (fd < 0) Die("socket");
  if (connect(fd, AsSockaddr(a), a.len) != 0) {
    std::fprintf(stderr, "raw-tcp-bench: connect to %s %s: %s\n",
                 o.transport.c_str(), o.address.c_str(), std::strerror(errno));
    std::exit(1);
  }
  SetNoDelay(fd, o);
  // Bounds the blocking calls (hello, C = 1 ping-pong).
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(kStallSeconds);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  char hello[8];
  std::memcpy(hello, o.mode == "stream" ? "STRM" : "ECHO", 4);
  StoreBe32(hello + 4, static_cast<uint32_t>(o.payload));
  WriteAll(fd, hello, sizeof(hello));
  return fd;
}

// Latency, --rate 0, one connection: blocking ping-pong, two system calls
// per round trip (no poll), the lowest-overhead round trip there is.
void PingPong(int fd, const Options& o, e2e::Meter& m, e2e::Result& r) {
  const Repeating msg(o.payload, 1, 'p');
  std::vector<char> back(msg.bytes.size());
  while (m.Tick()) {
    const Clock::time_point t0 = Clock::now();
    WriteAll(fd, msg.bytes.data(), msg.bytes.size());
    ReadAll(fd, back.data(), back.size());
    const double us =
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (m.measuring) r.latencies_us.push_back(us);
    m.Add(1);
  }
}

// Every other case: non-blocking sockets, one ppoll over all of them.
void Drive(std::vector<std::unique_ptr<ClientConn>>& conns, const Options& o,
           e2e::Meter& m, e2e::Result& r) {
  const bool stream = o.mode == "stream";
  const bool timed = o.mode == "latency";
  const bool paced = o.rate > 0;
  const uint64_t window = timed && !paced ? 1 : static_cast<uint64_t>(o.window);
  const Repeating req(o.payload, CountFor(o.payload, 16 * kBatch, 2), 'p');
  const uint64_t msg = req.period;
  std::vector<pollfd> pfds(conns.size());
  for (size_t i = 0; i < conns.size(); ++i) {
    SetNonBlocking(conns[i]->fd);
    pfds[i].fd = conns[i]->fd;
  }
  auto queue = [&](ClientConn& c, uint64_t k) {
    c.owe += k * msg;
    c.inflight += k;
    if (timed) c.sent.insert(c.sent.end(), k, Clock::now());
  };
  // One write of what is queued.
  auto send = [&](ClientConn& c) {
    const ssize_t w = req.WriteAt(c.fd, c.written, c.owe);
    if (w > 0) {
      c.written += static_cast<uint64_t>(w);
      c.owe -= static_cast<uint64_t>(w);
    } else if (w < 0 && !WouldBlock()) {
      Die("write");
    }
  };
  for (auto& c : conns) {
    if (paced) {
      c->pacer.Start();
    } else if (!stream) {
      queue(*c, window);
    }
  }
  Clock::time_point last_data = Clock::now();
  while (m.Tick()) {
    const Clock::time_point now = Clock::now();
    if (std::chrono::duration<double>(now - last_data).count() >
        kStallSeconds) {
      Fail("no data from the server for 5 s");
    }
    // Send: what is due (--rate) or queued, one write per connection.
    Clock::time_point wake = now + std::chrono::milliseconds(10);
    for (size_t i = 0; i < conns.size(); ++i) {
      ClientConn& c = *conns[i];
      if (paced && c.inflight < window) {
        const uint64_t k = std::min(c.pacer.Due(), window - c.inflight);
        if (k > 0) {
          queue(c, k);
          c.pacer.Sent(k);
        }
        if (c.inflight < window) wake = std::min(wake, c.pacer.NextDue());
      }
      if (c.owe > 0) send(c);
      pfds[i].events = static_cast<short>(POLLIN | (c.owe > 0 ? POLLOUT : 0));
      pfds[i].revents = 0;
    }
    // Wait for data, room, or the next send due.
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        wake - Clock::now())
                        .count();
    timespec ts{};  // zero: poll (a send is due, or due too soon to sleep)
    if (ns > 0 && !e2e::PollNotSleep(wake, o)) {
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
    }
    const int ready = ppoll(pfds.data(), pfds.size(), &ts, nullptr);
    if (ready < 0) {
      if (errno == EINTR) continue;
      Die("ppoll");
    }
    // Receive: read until a short read (at most 8 reads per connection).
    for (size_t i = 0; ready > 0 && i < conns.size(); ++i) {
      if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ClientConn& c = *conns[i];
      for (int j = 0; j < 8; ++j) {
        const size_t room = c.in.Room();
        const ssize_t n = read(c.fd, c.in.Tail(), room);
        if (n == 0) Fail("the server closed the connection");
        if (n < 0) {
          if (WouldBlock()) break;
          Die("read");
        }
        last_data = Clock::now();
        const uint64_t k = c.in.Take(static_cast<size_t>(n));
        m.Add(k);
        if (!stream && k > 0) {
          c.inflight -= k;
          if (timed) {
            for (uint64_t e = 0; e < k; ++e) {
              if (m.measuring) {
                r.latencies_us.push_back(
                    std::chrono::duration<double, std::micro>(last_data -
                                                              c.sent.front())
                        .count());
              }
              c.sent.pop_front();
            }
          }
          if (!paced) queue(c, k);  // refill the window
        }
        if (static_cast<size_t>(n) < room) break;
      }
      if (c.owe > 0) send(c);  // the refill, at once
    }
  }
}

int RunClient(const Options& o) {
  if (o.rate > 0) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  std::vector<std::unique_ptr<ClientConn>> conns;
  for (int i = 0; i < o.connections; ++i) {
    auto c = std::make_unique<ClientConn>(o.payload, o.rate);
    c->fd = Connect(o);
    conns.push_back(std::move(c));
  }
  e2e::Result r;
  r.system = "raw";
  r.options = o;
  e2e::Meter m(o);
  if (o.mode == "latency" && o.rate == 0 && conns.size() == 1) {
    PingPong(conns[0]->fd, o, m, r);
  } else {
    Drive(conns, o, m, r);
  }
  if (m.count == 0) Fail("no message from the server in the measured time");
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
  for (auto& c : conns) close(c->fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = e2e::ParseArgs(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  e2e::Pin(o.pin);
  return o.role == "server" ? Server(o).Run() : RunClient(o);
}
