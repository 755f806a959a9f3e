// File: bench/e2e_symwire.cpp
// symwire-bench-e2e: symwire end to end, the agent (--role server) and the
// orchestrator (--role client) in separate processes, over loopback TCP or
// a Unix-domain socket, through the public runtime (Server, Client, Channel);
// --transport tls, ws or wss over loopback TCP too: TLS (tls.hpp) with a
// throw-away certificate (symwire/testing/test_certs.hpp; the client does
// not verify it: the two processes do not share the generated CA), and
// WebSocket (ws.hpp, wss.hpp) upgraded on the path /bench.
// Command line and JSON: e2e_common.hpp; what the numbers mean:
// bench/README.md ("End to end").
//
// Modes (the client chooses; the agent needs no flag: a task whose payload
// starts with "STRM" asks for a stream, any other task is echoed):
//   throughput  the client keeps --window tasks in flight per connection
//               (Channel::Submit with zero-copy TaskCallbacks; on NO_CREDIT or
//               REPLAY_BUFFER_FULL it falls back to async_submit, which
//               waits); the agent answers each task with one final response
//               of the same size. msgs = tasks + responses.
//   stream      one task per connection; the agent streams partial
//               responses of --payload bytes until the client cancels
//               (agent -> client only, like PUSH/PULL). msgs = partial
//               responses received by the client.
//   latency     one task in flight per connection; each TASK -> final
//               RESPONSE round trip is timed with steady_clock. With
//               --rate R: open loop, R tasks/s per connection paced by
//               e2e::Pacer (a timer per connection, or polling the event
//               loop when the next send is due within --pace-poll-us; at
//               most --window in flight), each task timed from its own
//               Submit.
//
// Session settings (both sides): defaults of SPEC.md §19 (payload checksums
// on, 8 MiB / 65536-frame replay window, ack_delay 5 ms), except the
// agent's max_tasks, raised to 65536 so the task credit never limits
// --window (the replay window is what limits it, as intended).
#include <signal.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/signal_set.hpp"
#include "boost/asio/steady_timer.hpp"
#include "e2e_common.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/testing/test_certs.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/tls.hpp"
#include "symwire/transport/ws.hpp"
#include "symwire/transport/wss.hpp"

namespace {

namespace asio = boost::asio;
using e2e::Clock;
using e2e::Options;

constexpr char kStreamMagic[4] = {'S', 'T', 'R', 'M'};
constexpr int kStreamBurst = 256;  // responses per executor turn
constexpr char kWsPath[] = "/bench";

bool IsRetry(const absl::Status& st) {
  const symwire::ErrorCode code = symwire::GetErrorCode(st);
  return code == symwire::ErrorCode::kNoCredit ||
         code == symwire::ErrorCode::kReplayBufferFull;
}

// ---- agent ----------------------------------------------------------------

// Streamer: answers a "STRM" task with partial responses until the task is
// cancelled (or `remaining` reaches 0, then a final one).
// With --shared-payload 1 every response hands over a reference to one
// immutable SharedPayload (the session still checksums each send) instead
// of copying `payload`.
bool g_shared_payload = false;
uint64_t g_respond_refused = 0;  // echo responses refused for room (stderr)

struct Streamer : std::enable_shared_from_this<Streamer> {
  symwire::IncomingTask task;
  std::string payload;
  std::optional<symwire::SharedPayload> shared;
  uint64_t remaining = 0;  // 0: until cancelled

  void Step() {
    for (int i = 0; i < kStreamBurst; ++i) {
      if (task.cancelled() || task.done()) return;
      const bool last = remaining == 1;
      absl::Status st =
          shared ? task.Respond(*shared, last) : task.Respond(payload, last);
      if (IsRetry(st)) {
        task.async_respond(payload, last,
                           [self = shared_from_this()](absl::Status s) {
                             if (s.ok() && self->Count()) self->Step();
                           });
        return;
      }
      if (!st.ok() || !Count()) return;
    }
    asio::post(task.get_executor(),
               [self = shared_from_this()] { self->Step(); });
  }
  // False when the stream is complete.
  bool Count() {
    if (remaining == 0) return true;
    return --remaining > 0;
  }
};

void HandleTask(symwire::IncomingTask task) {
  const absl::Span<const std::byte> p = task.payload();
  if (p.size() >= 20 && std::memcmp(p.data(), kStreamMagic, 4) == 0) {
    uint64_t count = 0;
    uint64_t size = 0;
    std::memcpy(&count, p.data() + 4, 8);
    std::memcpy(&size, p.data() + 12, 8);
    auto s = std::make_shared<Streamer>();
    s->task = task;
    s->payload.assign(size, 'r');
    if (g_shared_payload) s->shared.emplace(s->payload);
    s->remaining = count;
    s->Step();
    return;
  }
  absl::Status st = task.Respond(p, true);
  if (IsRetry(st)) {
    ++g_respond_refused;
    task.async_respond(task.payload_string(), true, [](absl::Status) {});
  }
}

int RunServer(const Options& o) {
  asio::io_context io(1);
  symwire::ServerOptions so;
  so.session.agent_id = "bench-agent";
  so.session.role = symwire::AgentRole::kAgent;
  so.session.max_tasks = 65536;
  so.session.payload_checksums = o.checksums;
  g_shared_payload = o.shared_payload;
  so.transport.spin_read = std::chrono::microseconds(o.spin_us);
  // --threads N > 1: the sessions run on the server's N threads (the
  // accept loop stays on `io`), so `live` is counted from all of them.
  so.threads = static_cast<uint32_t>(o.threads);
  auto live = std::make_shared<std::atomic<int>>(0);
  auto server = symwire::Server::Create(
      io.get_executor(), so,
      [&io, live](const std::shared_ptr<symwire::Channel>& peer) {
        ++*live;
        peer->SetTaskHandler(HandleTask);
        peer->SetObserver([&io, live](const symwire::ChannelEvent& e) {
          if (e.kind == symwire::ChannelEvent::Kind::kClosed ||
              e.kind == symwire::ChannelEvent::Kind::kFailed) {
            if (--*live == 0) io.stop();  // the client left: done (any thread)
          }
        });
      });
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  if (o.transport != "unix") {
    symwire::Server::Upgrade upgrade;
    std::shared_ptr<asio::ssl::context> tls;
    if (o.transport == "tls" || o.transport == "wss") {
      const symwire::testing::TestCertificates& pki =
          symwire::testing::TestCerts();
      symwire::TlsServerOptions tso;
      tso.cert_pem = pki.server_cert_pem;
      tso.key_pem = pki.server_key_pem;
      auto ctx = symwire::MakeTlsServerContext(tso);
      if (!ctx.ok()) {
        std::fprintf(stderr, "%s\n", ctx.status().ToString().c_str());
        return 1;
      }
      tls = *ctx;
    }
    symwire::WsServerOptions wso;
    wso.path = kWsPath;
    wso.transport = so.transport;
    if (o.transport == "tls") {
      upgrade = symwire::TlsUpgrade(tls, symwire::kDefaultTlsHandshakeTimeout,
                                    so.transport);
    }
    if (o.transport == "ws") upgrade = symwire::WsUpgrade(wso);
    if (o.transport == "wss") upgrade = symwire::WssUpgrade(tls, wso);
    auto ep = (*server)->ListenTcp(o.Host(), o.Port(), std::move(upgrade));
    if (!ep.ok()) {
      std::fprintf(stderr, "%s\n", ep.status().ToString().c_str());
      return 1;
    }
  } else {
    absl::Status st = (*server)->ListenUnix(o.address);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait(
      [&io](const boost::system::error_code&, int) { io.stop(); });
  e2e::SignalReady();
  io.run();
  std::fprintf(stderr, "responses refused for room: %llu\n",
               static_cast<unsigned long long>(g_respond_refused));
  (*server)->Stop();
  return 0;
}

// ---- orchestrator -----------------------------------------------------------

struct Bench;

struct Conn {
  Bench* bench = nullptr;
  std::shared_ptr<symwire::Channel> peer;
  symwire::TaskCall stream_call;
  int inflight = 0;
  bool blocked = false;      // an async_submit is waiting for room
  bool pace_parked = false;  // --rate: window full; the next on_done paces
  e2e::Pacer pacer{1};
  std::unique_ptr<asio::steady_timer> pace_timer;
  symwire::SessionCounters c0;
  symwire::TransportCounters t0;
};

struct Bench {
  Options o;
  // o.mode, compared once (Callbacks and Fill run per task).
  bool stream = false;
  bool latency = false;
  asio::io_context io{1};
  std::vector<std::unique_ptr<Conn>> conns;
  std::string payload;
  std::string stream_request;
  enum class Phase { kWarmup, kMeasure, kDone } phase = Phase::kWarmup;
  Clock::time_point t_start;
  double elapsed = 0;
  uint64_t measured = 0;  // tasks (throughput, latency) or responses (stream)
  std::vector<double> latencies;
  asio::steady_timer timer{io};
  int established = 0;
  int closed = 0;
  bool failed = false;
  uint64_t refused = 0;      // --rate: Submit refused (credit, send window)
  uint64_t window_full = 0;  // --rate: Pace found --window tasks in flight

  void Count(uint64_t n) {
    if (phase != Phase::kMeasure) return;
    measured += n;
    if (o.messages != 0 && measured >= o.messages) Stop();
  }

  // Done: a task's end (on_done), timed from `sent` when `timed`.
  void Done(Conn* c, const absl::Status& st, Clock::time_point sent,
            bool timed) {
    --c->inflight;
    if (!st.ok()) {
      std::fprintf(stderr, "task failed: %s\n", st.ToString().c_str());
      failed = true;
      Stop();
      return;
    }
    if (timed && phase == Phase::kMeasure) {
      latencies.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - sent)
              .count());
    }
    Count(1);
    if (o.rate == 0) {
      Fill(c);  // closed loop; --rate paces by timer
    } else if (c->pace_parked) {
      c->pace_parked = false;  // room again: send what is due
      Pace(c);
    }
  }

  symwire::TaskCallbacks Callbacks(Conn* c) {
    symwire::TaskCallbacks cb;
    if (stream) {
      cb.on_response = [this](absl::Span<const std::byte>, bool) { Count(1); };
      cb.on_done = [](const absl::Status&) {};
      return cb;
    }
    if (!latency) {
      // Untimed: on_done captures one pointer, which std::function keeps
      // inline; the timed closure below is heap-allocated per task, a
      // harness cost, not the library's (bench/README.md, "The harness's
      // own allocation per task").
      cb.on_done = [c](const absl::Status& st) {
        c->bench->Done(c, st, Clock::time_point{}, false);
      };
      return cb;
    }
    // Latency modes time each task from here (just before its Submit).
    cb.on_done = [this, c, sent = Clock::now()](const absl::Status& st) {
      Done(c, st, sent, true);
    };
    return cb;
  }

  void Fill(Conn* c) {
    const int window = latency ? 1 : o.window;
    while (phase != Phase::kDone && !c->blocked && c->inflight < window) {
      absl::StatusOr<symwire::TaskCall> call =
          c->peer->Submit(payload, {}, Callbacks(c));
      if (call.ok()) {
        ++c->inflight;
        continue;
      }
      if (!IsRetry(call.status())) {
        std::fprintf(stderr, "submit: %s\n", call.status().ToString().c_str());
        failed = true;
        Stop();
        return;
      }
      c->blocked = true;
      ++c->inflight;
      c->peer->async_submit(
          payload, {}, Callbacks(c),
          [this, c](const absl::StatusOr<symwire::TaskCall>& r) {
            c->blocked = false;
            if (!r.ok()) {
              --c->inflight;
              failed = true;
              Stop();
              return;
            }
            Fill(c);
          });
      return;
    }
  }

  // Pace: the open-loop sender of --rate: what is due now, then a timer for
  // the next send. With the window full (or the session refusing for
  // credit) and tasks in flight, it waits for a completion instead (as the
  // raw and zmq clients do): a timer re-armed for a send already due would
  // fire at once, again and again, and the spinning client would take the
  // CPU its own responses need (at 16 KiB and 50 % load this turned a
  // latency spike into a lasting collapse at the window's limit).
  void Pace(Conn* c) {
    if (phase == Phase::kDone) return;
    bool full = false;
    for (uint64_t due = c->pacer.Due(); due > 0; --due) {
      if (c->inflight >= o.window) {
        full = true;
        break;
      }
      absl::StatusOr<symwire::TaskCall> call =
          c->peer->Submit(payload, {}, Callbacks(c));
      if (!call.ok()) {
        if (IsRetry(call.status())) {  // the window: offered load drops
          ++refused;
          full = true;
          break;
        }
        std::fprintf(stderr, "submit: %s\n", call.status().ToString().c_str());
        failed = true;
        Stop();
        return;
      }
      ++c->inflight;
      c->pacer.Sent();
    }
    if (full && c->inflight >= o.window) ++window_full;
    if (full && c->inflight > 0) {
      c->pace_parked = true;
      return;
    }
    // The next send is due soon: poll the event loop (a posted handler
    // runs after a non-blocking poll of the reactor) rather than arm the
    // timer, a timerfd whose re-arm per send took 44 % of this client's
    // CPU at 724 k tasks/s (e2e::PollNotSleep).
    if (e2e::PollNotSleep(c->pacer.NextDue(), o)) {
      asio::post(io, [this, c] { Pace(c); });
      return;
    }
    c->pace_timer->expires_at(c->pacer.NextDue());
    c->pace_timer->async_wait([this, c](const boost::system::error_code& ec) {
      if (!ec) Pace(c);
    });
  }

  void Start() {
    t_start = Clock::now();
    for (auto& c : conns) {
      if (o.rate > 0) {
        c->pacer = e2e::Pacer(o.rate);
        c->pacer.Start();
        c->pace_timer = std::make_unique<asio::steady_timer>(io);
        Pace(c.get());
      } else if (o.mode == "stream") {
        c->stream_call =
            *c->peer->Submit(stream_request, {}, Callbacks(c.get()));
      } else {
        Fill(c.get());
      }
    }
    timer.expires_after(
        std::chrono::microseconds(static_cast<int64_t>(o.warmup * 1e6)));
    timer.async_wait([this](const boost::system::error_code&) {
      if (phase != Phase::kWarmup) return;
      phase = Phase::kMeasure;
      for (auto& c : conns) {
        c->c0 = c->peer->counters();
        c->t0 = c->peer->transport_counters();
      }
      t_start = Clock::now();
      if (o.messages != 0) return;
      timer.expires_after(
          std::chrono::microseconds(static_cast<int64_t>(o.seconds * 1e6)));
      timer.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) Stop();
      });
    });
  }

  void Stop() {
    if (phase == Phase::kDone) return;
    if (phase == Phase::kMeasure) elapsed = e2e::SecondsSince(t_start);
    phase = Phase::kDone;
    timer.cancel();
    for (auto& c : conns) {
      if (c->pace_timer) c->pace_timer->cancel();
    }
    e2e::Result r;
    r.system = "symwire";
    r.options = o;
    r.elapsed = elapsed;
    uint64_t frames_in = 0, frames_out = 0, writes = 0, reads = 0;
    uint64_t bytes_out = 0, bytes_in = 0, acks = 0;
    for (auto& c : conns) {
      const symwire::SessionCounters c1 = c->peer->counters();
      const symwire::TransportCounters t1 = c->peer->transport_counters();
      frames_in += c1.frames_in - c->c0.frames_in;
      frames_out += c1.frames_out - c->c0.frames_out;
      acks += (c1.acks_sent - c->c0.acks_sent) +
              (c1.acks_received - c->c0.acks_received);
      writes += t1.writes - c->t0.writes;
      reads += t1.reads - c->t0.reads;
      bytes_out += t1.bytes_written - c->t0.bytes_written;
      bytes_in += t1.bytes_read - c->t0.bytes_read;
    }
    if (o.mode == "stream") {
      r.messages = measured;
      r.payload_bytes = measured * o.payload;
    } else {
      r.tasks = measured;
      r.messages = o.mode == "throughput" ? 2 * measured : measured;
      r.payload_bytes = 2 * measured * o.payload;
    }
    const double secs = elapsed > 0 ? elapsed : 1e-9;
    r.extra = {
        {"wire_frames_per_s",
         static_cast<double>(frames_in + frames_out) / secs},
        {"wire_frames_in", static_cast<double>(frames_in)},
        {"wire_frames_out", static_cast<double>(frames_out)},
        {"acks", static_cast<double>(acks)},
        {"wire_MBps", static_cast<double>(bytes_in + bytes_out) / secs / 1e6},
        {"client_writes", static_cast<double>(writes)},
        {"submit_refused", static_cast<double>(refused)},
        {"window_full", static_cast<double>(window_full)},
        {"client_reads", static_cast<double>(reads)},
        {"bytes_per_write",
         writes ? static_cast<double>(bytes_out) / static_cast<double>(writes)
                : 0},
        {"bytes_per_read",
         reads ? static_cast<double>(bytes_in) / static_cast<double>(reads)
               : 0},
    };
    r.latencies_us = std::move(latencies);
    if (!failed) e2e::PrintResult(std::move(r));
    // Leave: cancel the streams, close the sessions gracefully.
    for (auto& c : conns) {
      if (c->stream_call) static_cast<void>(c->stream_call.Cancel());
      c->peer->async_close([this](absl::Status) {
        if (++closed == static_cast<int>(conns.size())) io.stop();
      });
    }
    timer.expires_after(std::chrono::seconds(3));
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) io.stop();
    });
  }
};

int RunClient(const Options& o) {
  Bench b;
  b.o = o;
  b.stream = o.mode == "stream";
  b.latency = o.mode == "latency";
  b.payload.assign(o.payload, 'q');
  b.stream_request.assign(kStreamMagic, 4);
  const uint64_t count = 0;
  const uint64_t size = o.payload;
  b.stream_request.append(reinterpret_cast<const char*>(&count), 8);
  b.stream_request.append(reinterpret_cast<const char*>(&size), 8);
  symwire::TransportOptions topt;
  topt.spin_read = std::chrono::microseconds(o.spin_us);
  std::shared_ptr<asio::ssl::context> tls;
  if (o.transport == "tls" || o.transport == "wss") {
    symwire::TlsClientOptions tco;
    tco.verify_peer = false;  // the server's throw-away CA is not shared
    auto ctx = symwire::MakeTlsClientContext(tco);
    if (!ctx.ok()) {
      std::fprintf(stderr, "%s\n", ctx.status().ToString().c_str());
      return 1;
    }
    tls = *ctx;
  }
  for (int i = 0; i < o.connections; ++i) {
    symwire::ClientOptions co;
    co.session.agent_id = "bench-orchestrator";
    co.session.role = symwire::AgentRole::kOrchestrator;
    co.session.payload_checksums = o.checksums;
    co.reconnect = false;
    symwire::Dialer dialer;
    if (o.transport == "tcp") {
      dialer = symwire::TcpDialer(b.io.get_executor(), o.Host(), o.Port(), {},
                                  std::chrono::milliseconds(10000), topt);
    } else if (o.transport == "unix") {
      dialer = symwire::UnixDialer(b.io.get_executor(), o.address,
                                   std::chrono::milliseconds(10000), topt);
    } else if (o.transport == "tls") {
      dialer = symwire::TlsDialer(b.io.get_executor(), o.Host(), o.Port(), tls,
                                  o.Host(), {},
                                  std::chrono::milliseconds(10000), topt);
    } else {
      symwire::WsClientOptions wco;
      wco.transport = topt;
      const std::string url =
          absl::StrCat(o.transport, "://", o.address, kWsPath);
      dialer = o.transport == "ws"
                   ? symwire::WsDialer(b.io.get_executor(), url, wco)
                   : symwire::WssDialer(b.io.get_executor(), url, tls, wco);
    }
    auto peer = symwire::Client::Connect(b.io.get_executor(), dialer, co);
    if (!peer.ok()) {
      std::fprintf(stderr, "%s\n", peer.status().ToString().c_str());
      return 1;
    }
    auto c = std::make_unique<Conn>();
    c->bench = &b;
    c->peer = *peer;
    c->peer->async_wait_established([&b](absl::Status st) {
      if (!st.ok()) {
        std::fprintf(stderr, "connect: %s\n", st.ToString().c_str());
        b.failed = true;
        b.io.stop();
        return;
      }
      if (++b.established == static_cast<int>(b.conns.size())) b.Start();
    });
    b.conns.push_back(std::move(c));
  }
  b.io.run();
  return b.failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o =
      e2e::ParseArgs(argc, argv, {"tcp", "unix", "tls", "ws", "wss"});
  e2e::Pin(o.pin);
  return o.role == "server" ? RunServer(o) : RunClient(o);
}
