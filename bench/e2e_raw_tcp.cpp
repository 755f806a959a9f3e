// File: bench/e2e_raw_tcp.cpp
// raw-tcp-bench: the ceiling. Bare 4-byte big-endian length-prefixed
// messages over a plain socket (loopback TCP with TCP_NODELAY, or a
// Unix-domain stream socket), plain blocking / non-blocking system calls,
// no validation, no checksum, no copy of the payload beyond the kernel's.
// Command line and JSON: e2e_common.hpp; bench/README.md ("End to end").
//
// The client says what it wants in an 8-byte hello ("STRM" or "ECHO" + the
// payload size), so the server needs no mode flag:
//   stream      the server writes 64 KiB batches of whole messages (as many
//               as fit, or one bigger message) until the client hangs up;
//               the client reads 64 KiB at a time and walks every length
//               prefix. msgs = messages received by the client.
//   throughput  the client keeps --window messages in flight (non-blocking
//               socket, poll); the server echoes every complete message of
//               each read in one write. msgs = sent + echoed (2 per pair).
//   latency     ping-pong, one message in flight, blocking calls; timed
//               with steady_clock.
// One connection only (--connections 1).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
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
#include <string>
#include <vector>

#include "e2e_common.hpp"

namespace {

using e2e::Clock;
using e2e::Options;

constexpr size_t kBatch = 64 * 1024;

[[noreturn]] void Die(const char* what) {
  std::perror(what);
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
      std::fprintf(stderr, "bad IPv4 address %s\n", o.Host().c_str());
      std::exit(2);
    }
    std::memcpy(&a.storage, &in, sizeof(in));
    a.len = sizeof(in);
    a.family = AF_INET;
  } else {
    sockaddr_un un{};
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

void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      Die("write");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Reads exactly n bytes; false on end of stream.
bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Messages: a batch of whole length-prefixed messages.
std::vector<char> Messages(size_t payload, size_t count) {
  std::vector<char> out(count * (4 + payload), 'p');
  for (size_t i = 0; i < count; ++i) {
    StoreBe32(out.data() + i * (4 + payload), static_cast<uint32_t>(payload));
  }
  return out;
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

void ServeStream(int fd, size_t payload) {
  const size_t per = std::max<size_t>(1, kBatch / (4 + payload));
  const std::vector<char> batch = Messages(payload, per);
  for (;;) {
    const char* p = batch.data();
    size_t n = batch.size();
    while (n > 0) {
      const ssize_t w = write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return;  // the client hung up
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
}

void ServeEcho(int fd, size_t payload) {
  Parser in(payload);
  std::vector<char> out;
  for (;;) {
    const ssize_t r = read(fd, in.Tail(), in.Room());
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return;
    }
    const uint64_t k = in.Take(static_cast<size_t>(r));
    if (k == 0) continue;
    out.assign(k * (4 + payload), 'e');
    for (uint64_t i = 0; i < k; ++i) {
      StoreBe32(out.data() + i * (4 + payload), static_cast<uint32_t>(payload));
    }
    const char* p = out.data();
    size_t n = out.size();
    while (n > 0) {
      const ssize_t w = write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
}

int RunServer(const Options& o) {
  Addr a = MakeAddr(o);
  const int lfd = socket(a.family, SOCK_STREAM, 0);
  if (lfd < 0) Die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (o.transport == "unix") unlink(o.address.c_str());
  if (bind(lfd, AsSockaddr(a), a.len) != 0) Die("bind");
  if (listen(lfd, 16) != 0) Die("listen");
  e2e::SignalReady();
  const int fd = accept(lfd, nullptr, nullptr);
  if (fd < 0) Die("accept");
  SetNoDelay(fd, o);
  char hello[8];
  if (!ReadAll(fd, hello, sizeof(hello))) return 1;
  const size_t payload = LoadBe32(hello + 4);
  if (std::memcmp(hello, "STRM", 4) == 0) {
    ServeStream(fd, payload);
  } else {
    ServeEcho(fd, payload);
  }
  close(fd);
  close(lfd);
  if (o.transport == "unix") unlink(o.address.c_str());
  return 0;
}

// ---- client ---------------------------------------------------------------

struct Meter {
  const Options& o;
  Clock::time_point start = Clock::now();
  Clock::time_point measure_start;
  bool measuring = false;
  bool done = false;
  uint64_t count = 0;
  double elapsed = 0;

  explicit Meter(const Options& opts) : o(opts) {}
  // Call often; returns false when the run is over.
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
      done = true;
    }
    return !done;
  }
  void Add(uint64_t n) {
    if (measuring) count += n;
  }
};

int RunClient(const Options& o) {
  if (o.connections != 1) {
    std::fprintf(stderr, "raw-tcp-bench: --connections 1 only\n");
    return 2;
  }
  Addr a = MakeAddr(o);
  const int fd = socket(a.family, SOCK_STREAM, 0);
  if (fd < 0) Die("socket");
  if (connect(fd, AsSockaddr(a), a.len) != 0) Die("connect");
  SetNoDelay(fd, o);
  char hello[8];
  std::memcpy(hello, o.mode == "stream" ? "STRM" : "ECHO", 4);
  StoreBe32(hello + 4, static_cast<uint32_t>(o.payload));
  WriteAll(fd, hello, sizeof(hello));

  e2e::Result r;
  r.system = "raw";
  r.options = o;
  Meter m(o);
  Parser in(o.payload);
  if (o.mode == "stream") {
    while (m.Tick()) {
      const ssize_t n = read(fd, in.Tail(), in.Room());
      if (n <= 0) Die("read");
      m.Add(in.Take(static_cast<size_t>(n)));
    }
    r.messages = m.count;
    r.payload_bytes = m.count * o.payload;
  } else if (o.mode == "latency") {
    const std::vector<char> msg = Messages(o.payload, 1);
    std::vector<char> back(msg.size());
    while (m.Tick()) {
      const Clock::time_point t0 = Clock::now();
      WriteAll(fd, msg.data(), msg.size());
      if (!ReadAll(fd, back.data(), back.size())) Die("read");
      const double us =
          std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      if (m.measuring) r.latencies_us.push_back(us);
      m.Add(1);
    }
    r.messages = m.count;
    r.tasks = m.count;
    r.payload_bytes = 2 * m.count * o.payload;
  } else {
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
      Die("fcntl");
    }
    const std::vector<char> batch =
        Messages(o.payload, static_cast<size_t>(o.window));
    const size_t msg = 4 + o.payload;
    size_t inflight = 0;
    size_t out_pos = 0, out_end = 0;  // bytes of `batch` still to write
    while (m.Tick()) {
      if (out_pos == out_end && inflight < static_cast<size_t>(o.window)) {
        const size_t k = static_cast<size_t>(o.window) - inflight;
        out_pos = 0;
        out_end = k * msg;
        inflight += k;
      }
      bool progressed = false;
      if (out_pos < out_end) {
        const ssize_t w = write(fd, batch.data() + out_pos, out_end - out_pos);
        if (w > 0) {
          out_pos += static_cast<size_t>(w);
          progressed = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          Die("write");
        }
      }
      const ssize_t n = read(fd, in.Tail(), in.Room());
      if (n > 0) {
        const uint64_t k = in.Take(static_cast<size_t>(n));
        inflight -= k;
        m.Add(k);
        progressed = true;
      } else if (n == 0) {
        Die("server closed");
      } else if (errno != EAGAIN && errno != EINTR) {
        Die("read");
      }
      if (!progressed) {
        pollfd p{fd,
                 static_cast<short>(POLLIN | (out_pos < out_end ? POLLOUT : 0)),
                 0};
        poll(&p, 1, 10);
      }
    }
    r.tasks = m.count;
    r.messages = 2 * m.count;
    r.payload_bytes = 2 * m.count * o.payload;
  }
  r.elapsed = m.elapsed;
  e2e::PrintResult(std::move(r));
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = e2e::ParseArgs(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  e2e::Pin(o.pin);
  return o.role == "server" ? RunServer(o) : RunClient(o);
}
