// File: symwire/testing/fault_proxy.hpp
// Test utility (public so that tools/ may use it; namespace symwire::testing):
// FaultProxy, a TCP / Unix-domain proxy that sits between a client and a
// server and injects transport faults (issue #4): it kills connections after
// a random number of bytes, splits writes at random byte boundaries, stalls
// a direction, and in a separate mode flips bits. FaultOptions configures it
// and FaultCounters reports what it did.
//
// Header-only. It proxies opaque bytes, so it depends on Boost.Asio and the
// C++ standard library only, never on the rest of symwire (the frame codec
// and the session must not be able to make the proxy agree with them).
//
// Data path. Each accepted client gets a "pair": a connection to the
// upstream and two directions (up: client -> upstream, down: upstream ->
// client). A direction owns one buffer of FaultOptions::buffer_bytes and
// loops: read some -> fault stage -> write (possibly in pieces, possibly
// after a stall) -> read again. It never reads before the previous chunk is
// written, so a slow receiver stops the sender through TCP flow control
// (natural backpressure) and memory per pair is two buffers. A FIN from one
// side is forwarded as a half-close (shutdown(send)) once everything before
// it was written; the pair closes when both directions saw end of stream.
// Any socket error ends that pair quietly (counted in FaultCounters::errors).
#ifndef SYMWIRE_TESTING_FAULT_PROXY_HPP_
#define SYMWIRE_TESTING_FAULT_PROXY_HPP_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/buffer.hpp"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/error.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/socket_base.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/system/error_code.hpp"
#include "boost/system/system_error.hpp"

namespace symwire {

namespace asio = boost::asio;

namespace testing {

// FaultOptions
// What the proxy injects. Every fault is off by default, so a
// default-constructed FaultOptions gives a transparent proxy. All random
// decisions come from generators seeded with `seed` (see "Reproducibility"
// at FaultProxy).
struct FaultOptions {
  // Seed of every random decision.
  uint64_t seed = 1;

  // Kill. When kill_max_bytes > 0, each connection draws a budget uniformly
  // from [kill_min_bytes, kill_max_bytes] and is cut after exactly that many
  // bytes were forwarded, counted over both directions (so mostly mid-frame).
  // The chunk that reaches the budget is truncated there; once it and any
  // chunk the other direction had taken before are written, both sockets
  // close. Meanwhile both directions keep reading and drop what they read
  // (FaultCounters::bytes_dropped), so a peer blocked on writing can still
  // read the last bytes. With kill_with_reset the sockets close with
  // SO_LINGER 0: TCP peers get a reset (ECONNRESET), not an end of stream,
  // and bytes the kernel had not sent yet are lost. A connection that ends
  // before its budget is not cut. A min greater than the max is swapped.
  uint64_t kill_min_bytes = 0;
  uint64_t kill_max_bytes = 0;
  bool kill_with_reset = false;

  // Split. When > 0, every chunk read is written in pieces of a random
  // 1..split_max_bytes bytes, each its own write, so the receiver sees
  // arbitrary read boundaries.
  size_t split_max_bytes = 0;

  // Stall. With probability stall_pct % per chunk read, that direction
  // pauses for a random duration in [stall_min, stall_max] (a timer; the
  // other direction and other connections go on) before writing it.
  uint32_t stall_pct = 0;
  std::chrono::milliseconds stall_min{1};
  std::chrono::milliseconds stall_max{50};

  // Flip. When > 0, each forwarded byte has this probability in a million
  // of getting one random bit flipped (1000 = one flip per 1000 bytes on
  // average; 1000000 = every byte). Corrupts data silently: keep it separate
  // from the other modes unless the receiver checks integrity (CRC).
  uint32_t flip_per_million = 0;

  // Connections served at once (bounded memory). While that many are open
  // the proxy stops accepting; clients wait in the kernel's listen backlog
  // and are served when a connection ends. Values below 1 count as 1.
  size_t max_connections = 64;
  // Bytes read per system call, per direction (the buffer of each
  // direction; allocated once per connection). Values below 1 count as 1.
  size_t buffer_bytes = 64 * 1024;

  // TCP upstream only: the port to listen on, on 127.0.0.1 (never another
  // address: a test utility must not be reachable from outside). 0: an
  // ephemeral port (see FaultProxy::endpoint()).
  uint16_t tcp_listen_port = 0;

  // Unix-domain upstream only: the socket path to listen on. Empty: the
  // upstream path plus ".proxy<N>" (N counts proxies in this process). A
  // stale socket file at that path is removed first; the proxy removes its
  // file when it stops.
  std::string unix_listen_path;
};

// FaultCounters
// What the proxy did, since construction. A snapshot (plain values).
struct FaultCounters {
  uint64_t connections_accepted = 0;
  uint64_t connections_active = 0;  // pairs open now (including dialing)
  uint64_t connect_failures = 0;    // upstream dials that failed
  uint64_t errors = 0;         // pairs ended by a socket error; accept errors
  uint64_t kills = 0;          // pairs cut on purpose: byte budget or KillAll
  uint64_t stalls = 0;         // stall timers armed
  uint64_t flips = 0;          // bits flipped
  uint64_t splits = 0;         // extra write boundaries (pieces - 1, per chunk)
  uint64_t bytes_up = 0;       // client -> upstream, written
  uint64_t bytes_down = 0;     // upstream -> client, written
  uint64_t bytes_dropped = 0;  // read after a kill point, never forwarded
};

// Where clients connect / where the upstream listens.
using FaultProxyEndpoint = std::variant<asio::ip::tcp::endpoint,
                                        asio::local::stream_protocol::endpoint>;

namespace detail {

// SplitMix64: derives independent generator seeds from (seed, stream ids),
// so each connection and each direction has its own random stream and
// does not depend on how the others interleave in time.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

inline uint64_t DeriveSeed(uint64_t seed, uint64_t a, uint64_t b) {
  return SplitMix64(SplitMix64(seed ^ SplitMix64(a)) ^ SplitMix64(~b));
}

// Counters are atomics so that another thread may read them while the
// proxy runs (relaxed: they are statistics, not synchronization).
struct AtomicFaultCounters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_active{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> kills{0};
  std::atomic<uint64_t> stalls{0};
  std::atomic<uint64_t> flips{0};
  std::atomic<uint64_t> splits{0};
  std::atomic<uint64_t> bytes_up{0};
  std::atomic<uint64_t> bytes_down{0};
  std::atomic<uint64_t> bytes_dropped{0};

  FaultCounters Snapshot() const {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    FaultCounters c;
    c.connections_accepted = connections_accepted.load(kRelaxed);
    c.connections_active = connections_active.load(kRelaxed);
    c.connect_failures = connect_failures.load(kRelaxed);
    c.errors = errors.load(kRelaxed);
    c.kills = kills.load(kRelaxed);
    c.stalls = stalls.load(kRelaxed);
    c.flips = flips.load(kRelaxed);
    c.splits = splits.load(kRelaxed);
    c.bytes_up = bytes_up.load(kRelaxed);
    c.bytes_down = bytes_down.load(kRelaxed);
    c.bytes_dropped = bytes_dropped.load(kRelaxed);
    return c;
  }
};

inline void Bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

inline void Drop(std::atomic<uint64_t>& counter) {
  counter.fetch_sub(1, std::memory_order_relaxed);
}

// Options with their ranges put in order and their minimums applied.
inline FaultOptions Normalized(FaultOptions o) {
  if (o.kill_min_bytes > o.kill_max_bytes) {
    std::swap(o.kill_min_bytes, o.kill_max_bytes);
  }
  if (o.stall_min > o.stall_max) std::swap(o.stall_min, o.stall_max);
  if (o.stall_min < std::chrono::milliseconds(0)) {
    o.stall_min = std::chrono::milliseconds(0);
  }
  if (o.stall_max < o.stall_min) o.stall_max = o.stall_min;
  o.stall_pct = std::min<uint32_t>(o.stall_pct, 100);
  o.flip_per_million = std::min<uint32_t>(o.flip_per_million, 1000000);
  o.max_connections = std::max<size_t>(o.max_connections, 1);
  o.buffer_bytes = std::max<size_t>(o.buffer_bytes, 1);
  return o;
}

// The part of a proxy that does not depend on the protocol: what the
// FaultProxy handle calls, and what every pair reads.
class FaultCoreBase {
 public:
  FaultCoreBase(asio::any_io_executor executor, const FaultOptions& options)
      : executor_(std::move(executor)), options_(Normalized(options)) {}
  FaultCoreBase(const FaultCoreBase&) = delete;
  FaultCoreBase& operator=(const FaultCoreBase&) = delete;
  virtual ~FaultCoreBase() = default;

  // On the executor only.
  virtual void KillAllNow() = 0;
  virtual void StopNow() = 0;

  const asio::any_io_executor& executor() const { return executor_; }
  const FaultOptions& options() const { return options_; }
  AtomicFaultCounters& counters() { return counters_; }
  const AtomicFaultCounters& counters() const { return counters_; }
  bool injecting() const { return enabled_.load(std::memory_order_relaxed); }
  void set_injecting(bool on) {
    if (!on) disables_.fetch_add(1, std::memory_order_relaxed);
    enabled_.store(on, std::memory_order_relaxed);
  }
  // How many times injection was switched off: a pair whose kill budget
  // was drawn before the latest switch-off disarms it (FaultPair::OnRead).
  uint64_t disables() const {
    return disables_.load(std::memory_order_relaxed);
  }

 private:
  asio::any_io_executor executor_;
  const FaultOptions options_;
  AtomicFaultCounters counters_;
  std::atomic<bool> enabled_{true};
  std::atomic<uint64_t> disables_{0};
};

template <class Protocol>
class FaultCore;

// FaultPair: one client connection, its upstream connection and the two
// directions between them. Lives as long as one of its operations is
// pending (each handler holds a shared_ptr); registered with its core
// while open.
template <class Protocol>
class FaultPair : public std::enable_shared_from_this<FaultPair<Protocol>> {
 public:
  using Socket = typename Protocol::socket;
  using Endpoint = typename Protocol::endpoint;
  using ErrorCode = boost::system::error_code;

  enum class End { kGraceful, kError, kConnectFailed, kKill, kStop };

  FaultPair(std::shared_ptr<FaultCore<Protocol>> core, Socket client,
            uint64_t index)
      : core_(std::move(core)),
        index_(index),
        client_(std::move(client)),
        upstream_(core_->executor()),
        up_(*this, client_, upstream_, /*is_up=*/true),
        down_(*this, upstream_, client_, /*is_up=*/false),
        disables_seen_(core_->disables()) {
    const FaultOptions& o = core_->options();
    if (o.kill_max_bytes > 0) {
      std::mt19937_64 rng(DeriveSeed(o.seed, index_, 0));
      kill_left_ = std::uniform_int_distribution<uint64_t>(
          o.kill_min_bytes, o.kill_max_bytes)(rng);
    }
  }

  FaultPair(const FaultPair&) = delete;
  FaultPair& operator=(const FaultPair&) = delete;

  ~FaultPair() {
    // Only reached without Finish() when the execution context is torn
    // down with our handlers still queued; keep the core's books straight.
    if (!closed_) {
      Drop(core_->counters().connections_active);
      core_->Forget(index_, /*resume_accepting=*/false);
    }
  }

  void Start(const Endpoint& upstream) {
    SetNoDelay(client_);
    upstream_.async_connect(
        upstream, [self = this->shared_from_this(), this](const ErrorCode& ec) {
          if (closed_) return;
          if (ec) {
            Finish(End::kConnectFailed);
            return;
          }
          SetNoDelay(upstream_);
          Read(up_);
          Read(down_);
        });
  }

  // Finish: closes both sockets (once) and unregisters from the core.
  void Finish(End how) {
    if (closed_) return;
    closed_ = true;
    ErrorCode ignored;
    if (how == End::kKill && core_->options().kill_with_reset) {
      // SO_LINGER with a zero timeout makes close() send RST and discard
      // unsent data: the abrupt loss a crashed host or middlebox causes.
      const asio::socket_base::linger abort_now(true, 0);
      client_.set_option(abort_now, ignored);
      upstream_.set_option(abort_now, ignored);
    }
    client_.close(ignored);
    upstream_.close(ignored);
    up_.stall_timer.cancel();
    down_.stall_timer.cancel();
    AtomicFaultCounters& c = core_->counters();
    switch (how) {
      case End::kGraceful:
      case End::kStop:
        break;
      case End::kError:
        Bump(c.errors);
        break;
      case End::kConnectFailed:
        Bump(c.connect_failures);
        break;
      case End::kKill:
        Bump(c.kills);
        break;
    }
    Drop(c.connections_active);
    core_->Forget(index_, /*resume_accepting=*/true);
  }

 private:
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

  struct Direction {
    Direction(FaultPair& pair, Socket& from_socket, Socket& to_socket,
              bool is_up)
        : from(&from_socket),
          to(&to_socket),
          up(is_up),
          buffer(std::make_unique<std::byte[]>(
              pair.core_->options().buffer_bytes)),
          stall_timer(pair.core_->executor()),
          rng(DeriveSeed(pair.core_->options().seed, pair.index_,
                         is_up ? 1 : 2)),
          flip_rng(DeriveSeed(pair.core_->options().seed, pair.index_,
                              is_up ? 3 : 4)) {
      bytes_until_flip = pair.DrawFlipGap(*this);
    }

    Socket* from;
    Socket* to;
    bool up;
    std::unique_ptr<std::byte[]> buffer;
    size_t length = 0;   // bytes of the current chunk
    size_t written = 0;  // of which written
    asio::steady_timer stall_timer;
    // Split and stall draws: these follow the chunks as reads return them,
    // so they repeat only as far as the read boundaries repeat.
    std::mt19937_64 rng;
    // Flip draws (positions as gaps, and bits): a separate stream consumed
    // per byte, so with injection on the whole time a seed flips the same
    // bits at the same stream offsets however reads split the stream.
    std::mt19937_64 flip_rng;
    uint64_t bytes_until_flip = 0;
    bool busy = false;  // a chunk is being stalled or written
    bool eof = false;
  };

  static void SetNoDelay(Socket& socket) {
    // The split mode's small writes must leave as written: Nagle's algorithm
    // would merge them again (and add delayed-ACK stalls to every mode).
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
      ErrorCode ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    }
  }

  uint64_t DrawFlipGap(Direction& d) {
    const uint32_t per_million = core_->options().flip_per_million;
    if (per_million == 0) return kNever;
    if (per_million >= 1000000) return 0;
    // The gap to the next flipped byte is geometric: the same distribution
    // as an independent trial per byte, at one draw per flip.
    std::geometric_distribution<uint64_t> gap(static_cast<double>(per_million) /
                                              1e6);
    return gap(d.flip_rng);
  }

  void Read(Direction& d) {
    d.from->async_read_some(
        asio::buffer(d.buffer.get(), core_->options().buffer_bytes),
        [self = this->shared_from_this(), this, &d](
            const ErrorCode& ec, size_t n) { OnRead(d, ec, n); });
  }

  void OnRead(Direction& d, const ErrorCode& ec, size_t n) {
    if (closed_) return;
    AtomicFaultCounters& c = core_->counters();
    if (ec) {
      if (ec != asio::error::eof) {
        Finish(End::kError);
        return;
      }
      d.eof = true;
      // Forward the half-close: everything before it was written (we read
      // only after a chunk is written). Not past a kill point: that side
      // is about to be cut instead.
      if (!kill_decided_) {
        ErrorCode ignored;
        d.to->shutdown(Socket::shutdown_send, ignored);
      }
      if (up_.eof && down_.eof) Finish(End::kGraceful);
      return;
    }
    if (kill_decided_) {
      // Past the kill point, waiting for the other direction's last chunk.
      // Keep reading (and dropping) so that a peer blocked writing to us
      // can go on reading, which that last write may be waiting for.
      Bump(c.bytes_dropped, n);
      Read(d);
      return;
    }
    if (kill_left_ != kNever && core_->disables() != disables_seen_) {
      // Injection was switched off since this budget was drawn: the kill
      // is disarmed for good, not merely paused until injection is on
      // again (issue #11).
      kill_left_ = kNever;
    }
    const bool inject = core_->injecting();
    if (inject && kill_left_ != kNever) {
      if (n >= kill_left_) {
        Bump(c.bytes_dropped, n - kill_left_);
        n = static_cast<size_t>(kill_left_);
        kill_left_ = 0;
        // Sticky from here on, even if injection is switched off: the bytes
        // past the kill point are already dropped.
        kill_decided_ = true;
      } else {
        kill_left_ -= n;
      }
    }
    d.length = n;
    d.written = 0;
    d.busy = true;
    if (inject && core_->options().flip_per_million > 0) FlipBits(d);
    const FaultOptions& o = core_->options();
    if (inject && o.stall_pct > 0 &&
        std::uniform_int_distribution<uint32_t>(0, 99)(d.rng) < o.stall_pct) {
      Bump(c.stalls);
      const auto stall =
          std::chrono::microseconds(std::uniform_int_distribution<int64_t>(
              std::chrono::microseconds(o.stall_min).count(),
              std::chrono::microseconds(o.stall_max).count())(d.rng));
      d.stall_timer.expires_after(stall);
      d.stall_timer.async_wait(
          [self = this->shared_from_this(), this, &d](const ErrorCode& e) {
            if (closed_ || e) return;
            WriteNext(d);
          });
      return;
    }
    WriteNext(d);
  }

  void FlipBits(Direction& d) {
    size_t pos = 0;
    while (d.bytes_until_flip < d.length - pos) {
      pos += static_cast<size_t>(d.bytes_until_flip);
      const unsigned bit =
          std::uniform_int_distribution<unsigned>(0, 7)(d.flip_rng);
      d.buffer[pos] ^= std::byte{static_cast<unsigned char>(1U << bit)};
      Bump(core_->counters().flips);
      ++pos;
      d.bytes_until_flip = DrawFlipGap(d);
    }
    d.bytes_until_flip -= d.length - pos;
  }

  void WriteNext(Direction& d) {
    if (closed_) return;
    if (d.written == d.length) {
      d.busy = false;
      // Cut once every byte before the kill point is written: this chunk,
      // and the other direction's if it had one (then it cuts instead).
      if (kill_decided_ && !(d.up ? down_ : up_).busy) {
        Finish(End::kKill);
        return;
      }
      Read(d);
      return;
    }
    size_t piece = d.length - d.written;
    const size_t split_max = core_->options().split_max_bytes;
    if (split_max > 0 && core_->injecting()) {
      const size_t most = std::min(split_max, piece);
      const size_t chosen =
          std::uniform_int_distribution<size_t>(1, most)(d.rng);
      if (chosen < piece) Bump(core_->counters().splits);
      piece = chosen;
    }
    asio::async_write(*d.to, asio::buffer(d.buffer.get() + d.written, piece),
                      [self = this->shared_from_this(), this, &d](
                          const ErrorCode& ec, size_t n) {
                        AtomicFaultCounters& c = core_->counters();
                        Bump(d.up ? c.bytes_up : c.bytes_down, n);
                        if (closed_) return;
                        if (ec) {
                          Finish(End::kError);
                          return;
                        }
                        d.written += n;
                        WriteNext(d);
                      });
  }

  std::shared_ptr<FaultCore<Protocol>> core_;
  const uint64_t index_;
  Socket client_;
  Socket upstream_;
  Direction up_;
  Direction down_;
  const uint64_t disables_seen_;  // core's disables() when the budget was drawn
  uint64_t kill_left_ = kNever;   // budget left, over both directions
  bool kill_decided_ = false;
  bool closed_ = false;
};

// FaultCore: the listener and the live pairs of one proxy.
template <class Protocol>
class FaultCore final
    : public FaultCoreBase,
      public std::enable_shared_from_this<FaultCore<Protocol>> {
 public:
  using Acceptor = typename Protocol::acceptor;
  using Endpoint = typename Protocol::endpoint;
  using Socket = typename Protocol::socket;
  using Pair = FaultPair<Protocol>;
  using ErrorCode = boost::system::error_code;

  // Opens the listener; throws boost::system::system_error if it cannot.
  FaultCore(asio::any_io_executor executor, Endpoint upstream,
            const FaultOptions& options)
      : FaultCoreBase(std::move(executor), options),
        acceptor_(this->executor()),
        retry_timer_(this->executor()),
        upstream_(std::move(upstream)) {
    const Endpoint listen = ListenEndpoint();
    ErrorCode ec;
    acceptor_.open(listen.protocol(), ec);
    Check(ec, "open");
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
      // A fixed port (tcp_listen_port) can be reused while connections of
      // an earlier run linger in TIME_WAIT.
      acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
      Check(ec, "SO_REUSEADDR");
    } else {
      // A socket file left by a crashed run would make bind fail.
      std::error_code fs_ec;
      if (std::filesystem::is_socket(listen.path(), fs_ec)) {
        std::filesystem::remove(listen.path(), fs_ec);
      }
    }
    acceptor_.bind(listen, ec);
    Check(ec, "bind");
    if constexpr (!std::is_same_v<Protocol, asio::ip::tcp>) {
      owned_path_ = listen.path();
    }
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    Check(ec, "listen");
    listen_endpoint_ = acceptor_.local_endpoint(ec);
    Check(ec, "local_endpoint");
  }

  ~FaultCore() override { RemoveListenPath(); }

  const Endpoint& listen_endpoint() const { return listen_endpoint_; }

  // Accept: starts (or resumes) accepting, unless stopped, already
  // accepting, or at max_connections.
  void Accept() {
    if (stopped_ || accepting_ || live_.size() >= options().max_connections) {
      return;
    }
    accepting_ = true;
    acceptor_.async_accept(
        [self = this->shared_from_this()](const ErrorCode& ec, Socket socket) {
          self->OnAccept(ec, std::move(socket));
        });
  }

  void KillAllNow() override { EndAll(Pair::End::kKill); }

  void StopNow() override {
    stopped_ = true;
    ErrorCode ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
    RemoveListenPath();
    EndAll(Pair::End::kStop);
  }

  // Forget: a pair ended; makes room for another.
  void Forget(uint64_t index, bool resume_accepting) {
    live_.erase(index);
    if (resume_accepting) Accept();
  }

 private:
  static void Check(const ErrorCode& ec, const char* what) {
    if (ec) {
      throw boost::system::system_error(
          ec, std::string("symwire fault proxy: ") + what);
    }
  }

  static uint64_t NextProxyNumber() {
    static std::atomic<uint64_t> number{0};
    return number.fetch_add(1, std::memory_order_relaxed);
  }

  Endpoint ListenEndpoint() const {
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
      // Loopback only: a test utility must never be reachable from outside.
      return Endpoint(asio::ip::address_v4::loopback(),
                      options().tcp_listen_port);
    } else {
      if (!options().unix_listen_path.empty()) {
        return Endpoint(options().unix_listen_path);
      }
      return Endpoint(upstream_.path() + ".proxy" +
                      std::to_string(NextProxyNumber()));
    }
  }

  void RemoveListenPath() {
    if (owned_path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove(owned_path_, ignored);
    owned_path_.clear();
  }

  void OnAccept(const ErrorCode& ec, Socket socket) {
    accepting_ = false;
    if (stopped_) return;  // `socket` closes as it goes out of scope
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors, a connection aborted while queued, ...: count
      // it and try again shortly rather than spinning on the error.
      Bump(counters().errors);
      accepting_ = true;
      retry_timer_.expires_after(std::chrono::milliseconds(10));
      retry_timer_.async_wait(
          [self = this->shared_from_this()](const ErrorCode& e) {
            self->accepting_ = false;
            if (!e) self->Accept();
          });
      return;
    }
    const uint64_t index = next_index_++;
    auto pair = std::make_shared<Pair>(this->shared_from_this(),
                                       std::move(socket), index);
    Bump(counters().connections_accepted);
    Bump(counters().connections_active);
    live_.emplace(index, pair);
    pair->Start(upstream_);
    Accept();
  }

  void EndAll(typename Pair::End how) {
    // Finish() unregisters, so end a copy of the live set.
    std::vector<std::shared_ptr<Pair>> pairs;
    pairs.reserve(live_.size());
    for (const auto& [index, weak] : live_) {
      if (auto pair = weak.lock()) pairs.push_back(std::move(pair));
    }
    for (const auto& pair : pairs) pair->Finish(how);
  }

  Acceptor acceptor_;
  asio::steady_timer retry_timer_;
  Endpoint upstream_;
  Endpoint listen_endpoint_;
  std::string owned_path_;  // Unix socket file to remove on stop
  // Open pairs by connection number (weak: the pairs' handlers own them).
  // Bounded by max_connections.
  std::unordered_map<uint64_t, std::weak_ptr<Pair>> live_;
  uint64_t next_index_ = 0;
  bool accepting_ = false;
  bool stopped_ = false;
};

}  // namespace detail

// FaultProxy
// Listens on 127.0.0.1 (FaultOptions::tcp_listen_port, by default an
// ephemeral port) for a TCP upstream, or on a
// Unix socket path for a Unix upstream (see FaultOptions::unix_listen_path),
// and relays every accepted client to `upstream` through the fault stage
// configured by `options`. Accepting starts when the executor runs.
//
// Reproducibility. Each connection (numbered in accept order) and each of
// its directions draws from its own generator seeded from `seed`, so runs
// with the same seed make the same decisions as far as the network timing
// lets them: a connection's kill point in bytes and the stream offsets of
// flipped bits repeat exactly; split sizes and stalls follow the read
// boundaries the kernel happens to return.
//
// Thread-safety. All socket work runs on `executor`, which must run one
// handler at a time (an io_context run by one thread, or a strand). It
// may be the executor the client and the server use, or one of its own on
// another thread. The methods below may be called from any thread:
// SetEnabled and counters() act on atomics; KillAll and Stop are dispatched
// to the executor (they take effect at once when called on its thread, else
// when it next runs). endpoint() is fixed at construction.
//
// Lifetime. Destroying the proxy stops it (as Stop()); its connections'
// state lives on until their pending operations are done, so the proxy
// may be destroyed at any time, but before its execution context.
class FaultProxy {
 public:
  using Endpoint = FaultProxyEndpoint;

  // Opens the listener (bind and listen do not block). Throws
  // boost::system::system_error if it cannot, e.g. when the Unix listen
  // path is taken by a non-socket file.
  FaultProxy(asio::any_io_executor executor, Endpoint upstream,
             FaultOptions options = {}) {
    if (auto* tcp = std::get_if<asio::ip::tcp::endpoint>(&upstream)) {
      Init<asio::ip::tcp>(std::move(executor), *tcp, options);
    } else {
      Init<asio::local::stream_protocol>(
          std::move(executor),
          std::get<asio::local::stream_protocol::endpoint>(upstream), options);
    }
  }

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;
  FaultProxy(FaultProxy&&) noexcept = default;
  FaultProxy& operator=(FaultProxy&&) = delete;

  ~FaultProxy() {
    if (core_) Stop();
  }

  // endpoint: where clients connect (same protocol as the upstream).
  const Endpoint& endpoint() const { return endpoint_; }

  // SetEnabled
  // false: inject nothing from now on (the proxy is transparent), so a test
  // can finish gracefully; true (the initial state): inject again. A stall
  // already running ends normally, and a connection whose kill point was
  // already reached is still cut (the bytes past it are gone). The kill
  // budgets of connections open at a switch-off are disarmed for good:
  // switching injection on again gives kills to new connections only.
  void SetEnabled(bool enabled) { core_->set_injecting(enabled); }
  bool enabled() const { return core_->injecting(); }

  // KillAll
  // Cuts every open connection now, as the kill fault does (counted in
  // kills; with a reset if kill_with_reset). Keeps accepting.
  void KillAll() {
    asio::dispatch(core_->executor(), [core = core_] { core->KillAllNow(); });
  }

  // Stop
  // Closes the listener (and removes its Unix socket file) and every open
  // connection. Final: new clients are refused. Not counted as kills.
  void Stop() {
    asio::dispatch(core_->executor(), [core = core_] { core->StopNow(); });
  }

  // counters: a snapshot; any thread.
  FaultCounters counters() const { return core_->counters().Snapshot(); }
  const FaultOptions& options() const { return core_->options(); }

 private:
  template <class Protocol>
  void Init(asio::any_io_executor executor,
            const typename Protocol::endpoint& upstream,
            const FaultOptions& options) {
    auto core = std::make_shared<detail::FaultCore<Protocol>>(
        std::move(executor), upstream, options);
    endpoint_ = core->listen_endpoint();
    asio::dispatch(core->executor(), [core] { core->Accept(); });
    core_ = std::move(core);
  }

  std::shared_ptr<detail::FaultCoreBase> core_;
  Endpoint endpoint_;
};

}  // namespace testing
}  // namespace symwire

#endif  // SYMWIRE_TESTING_FAULT_PROXY_HPP_
