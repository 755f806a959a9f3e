// File: bench/e2e_grpc.cpp
// grpc-bench: gRPC C++ (Debian's libgrpc++-dev 1.51, protobuf 3.21) as a
// peer, one bidirectional stream per connection (bench/e2e.proto:
// `rpc Stream(stream Msg) returns (stream Msg)`), with the command line and
// JSON of e2e_common.hpp; bench/README.md ("End to end"). Built only when
// pkg-config finds grpc++ and protobuf and protoc / grpc_cpp_plugin exist
// (bench/deps.sh installs them).
//
// API: the asynchronous CompletionQueue API, not the callback API
// (ServerBidiReactor / ClientBidiReactor). With a completion queue the
// program's own thread is the poller: AsyncNext reads the socket, runs the
// transport and returns the completed operation to the same thread, which
// issues the next one; there is no hand-off to a gRPC-owned callback thread.
// That is the shape of the other peers (one thread per process doing I/O
// and the application work), what a latency-minded user picks when every
// thread is pinned to one CPU (a hop between threads on one CPU is a
// context switch), and the API of gRPC's own "async" QPS benchmarks
// (test/cpp/qps). The callback API would be shorter to write; its reactions
// run on gRPC's executor threads.
//
// Threads (counted in /proc/PID/task, gRPC 1.51): 8 to 12 per process:
// main, the only poller, and gRPC's own: default-executor,
// resolver-executor, timer_manager, two grpc_global_timer and three or more
// event_engine threads. Per-thread CPU time after a run shows main doing all
// the work and the others idle. "client_threads" in the JSON is the
// client's count at the end of the run. e2e::Pin runs first in main(), so
// with --pin every one of them is pinned to that one CPU (checked with
// taskset -p on each thread).
//
// Channels: --transport tcp dials "HOST:PORT" (--address), unix dials
// "unix:PATH"; insecure credentials. Each --connections gets its own
// channel, with GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL so that channels never
// share a subchannel (a TCP connection), and its own stream; all are driven
// by one completion queue and one thread. Message size limits are raised to
// 64 MiB both ways (the default receive limit is 4 MiB). Everything else is
// gRPC's default (HTTP/2 flow control windows, no compression, the full
// filter stack).
//
// Modes (the server needs no flag: the first message says what it wants):
//   stream      the client sends one Msg{kind: STREAM} with --payload bytes;
//               the server writes messages of that size back to back, the
//               next Write from the completion of the previous one (a
//               stream allows one outstanding Write), until the client
//               cancels. msgs = messages received by the client.
//   throughput  the client keeps --window requests in flight per
//               connection on its stream: one Write outstanding at a time,
//               the rest queued and written from the previous Write's
//               completion; a request counts as in flight until its echo
//               arrives. The server echoes each (its writes queued the same
//               way). msgs = 2 per pair, tasks = pairs.
//   latency     --rate 0: one request in flight per connection, each round
//               trip timed with steady_clock. --rate R > 0: open loop, R
//               requests/s per connection (e2e::Pacer, at most --window in
//               flight); each request is timed from when it joined the
//               stream's write queue (the pacer found it due; a wait for
//               the one outstanding Write counts) to its echo. Echoes come
//               back in order on one stream: a FIFO of send times pairs
//               them. The pacer sleeps in AsyncNext, whose deadline has
//               millisecond resolution in gRPC: above ~1000/s sends leave
//               in per-millisecond bursts, as the pacer's catch-up allows;
//               a wake-up due within --pace-poll-us polls (deadline now,
//               e2e::PollNotSleep).
//
// Bounds: connecting waits at most 10 s per channel; a run with requests or
// a stream outstanding and no completion for 10 s fails; the client's
// teardown (cancel, Finish, drain) is bounded at 5 s. The server exits 0 when
// its last stream ends (the client left) or on SIGTERM (default action);
// its orderly shutdown is bounded at 5 s.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "e2e.grpc.pb.h"
#include "e2e.pb.h"
#include "e2e_common.hpp"
#include "grpcpp/grpcpp.h"

namespace {

using e2e::Clock;
using e2e::Options;
using symwire::bench::Msg;

constexpr int kMaxMessageBytes = 64 << 20;
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kStallTimeout = std::chrono::seconds(10);
constexpr auto kTeardownTimeout = std::chrono::seconds(5);

// Deadline: a steady_clock time point as gRPC's monotonic gpr_timespec
// (grpc::TimePoint only converts system_clock).
gpr_timespec Deadline(Clock::time_point t) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t - Clock::now())
          .count();
  return gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_micros(std::max<int64_t>(us, 0), GPR_TIMESPAN));
}

// Threads: this process's thread count (the JSON's "client_threads").
double Threads() {
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// ---- server ---------------------------------------------------------------

enum class ServerOp { kRequest, kRead, kWrite, kFinish, kDone };

struct Call;
struct ServerTag {
  Call* call;
  ServerOp op;
};

// Call: one Stream RPC on the server. `pending` counts the operations whose
// tags are still to come back (the request, then the done notification,
// Read, Write, Finish); ServerState::Handle deletes the call when it
// reaches 0.
struct Call {
  grpc::ServerContext ctx;
  grpc::ServerAsyncReaderWriter<Msg, Msg> stream{&ctx};
  Msg in;
  Msg stream_msg;          // stream mode: written again and again
  std::deque<Msg> echoes;  // read, waiting for the one outstanding Write
  bool streaming = false;
  bool writing = false;
  bool read_closed = false;
  bool write_failed = false;
  bool finishing = false;
  bool was_matched = false;
  int pending = 0;
  ServerTag request_tag{this, ServerOp::kRequest};
  ServerTag read_tag{this, ServerOp::kRead};
  ServerTag write_tag{this, ServerOp::kWrite};
  ServerTag finish_tag{this, ServerOp::kFinish};
  ServerTag done_tag{this, ServerOp::kDone};
};

struct ServerState {
  symwire::bench::Bench::AsyncService service;
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::unique_ptr<grpc::Server> server;
  int matched = 0;  // calls matched and not yet deleted
  bool client_left = false;

  // Arm: waits for the next Stream call.
  void Arm() {
    auto* c = new Call;
    c->ctx.AsyncNotifyWhenDone(&c->done_tag);  // fires once matched
    c->pending = 1;
    service.RequestStream(&c->ctx, &c->stream, cq.get(), cq.get(),
                          &c->request_tag);
  }

  static void Read(Call* c) {
    ++c->pending;
    c->stream.Read(&c->in, &c->read_tag);
  }
  // Write serializes `m` before it returns: `m` may go right after.
  static void Write(Call* c, const Msg& m) {
    ++c->pending;
    c->writing = true;
    c->stream.Write(m, &c->write_tag);
  }
  static void MaybeFinish(Call* c) {
    if (c->finishing || !c->read_closed || c->writing) return;
    if (!c->write_failed && !c->echoes.empty()) return;
    c->finishing = true;
    ++c->pending;
    c->stream.Finish(grpc::Status::OK, &c->finish_tag);
  }

  void Handle(ServerTag* tag, bool ok) {
    Call* c = tag->call;
    --c->pending;
    switch (tag->op) {
      case ServerOp::kRequest:
        if (!ok) break;  // shutting down: never matched
        ++matched;
        c->was_matched = true;
        ++c->pending;  // the done tag is armed now
        Arm();
        Read(c);
        break;
      case ServerOp::kRead:
        if (!ok) {  // the client half-closed or cancelled
          c->read_closed = true;
          c->streaming = false;
          c->echoes.clear();
          MaybeFinish(c);
          break;
        }
        if (c->in.kind() == Msg::STREAM) {
          if (!c->streaming) {
            c->streaming = true;
            c->stream_msg.set_payload(std::string(c->in.payload().size(), 's'));
            if (!c->writing) Write(c, c->stream_msg);
          }
        } else if (!c->writing) {
          Write(c, c->in);
        } else {
          c->echoes.push_back(std::move(c->in));
        }
        Read(c);
        break;
      case ServerOp::kWrite:
        c->writing = false;
        if (!ok) {  // the call is over (cancelled)
          c->write_failed = true;
          c->streaming = false;
          c->echoes.clear();
        } else if (c->streaming) {
          Write(c, c->stream_msg);
        } else if (!c->echoes.empty()) {
          Write(c, c->echoes.front());
          c->echoes.pop_front();
        }
        MaybeFinish(c);
        break;
      case ServerOp::kFinish:
      case ServerOp::kDone:
        break;
    }
    if (c->pending != 0) return;
    if (c->was_matched && --matched == 0) client_left = true;
    delete c;
  }
};

int RunServer(const Options& o) {
  std::string listen = o.address;
  if (o.transport == "unix") {
    struct stat st {};
    if (lstat(o.address.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      unlink(o.address.c_str());  // a stale socket of an earlier run
    }
    listen = "unix:" + o.address;
  }
  ServerState s;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&s.service);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // Fail on a busy port instead of sharing it with a stale server.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  s.cq = builder.AddCompletionQueue();
  s.server = builder.BuildAndStart();
  if (s.server == nullptr || port == 0) {
    std::fprintf(stderr, "grpc-bench: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  s.Arm();
  e2e::SignalReady();
  void* tag = nullptr;
  bool ok = false;
  while (!s.client_left && s.cq->Next(&tag, &ok)) {
    s.Handle(static_cast<ServerTag*>(tag), ok);
  }
  // The client left: every call it made is over and deleted, only the armed
  // request is left. Shut down in order, bounded all the same.
  std::thread([] {
    std::this_thread::sleep_for(kTeardownTimeout);
    std::fprintf(stderr, "grpc-bench: server shutdown timed out\n");
    std::_Exit(1);
  }).detach();
  s.server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(1));
  s.cq->Shutdown();
  while (s.cq->Next(&tag, &ok)) s.Handle(static_cast<ServerTag*>(tag), ok);
  if (o.transport == "unix") unlink(o.address.c_str());
  return 0;
}

// ---- client ---------------------------------------------------------------

enum class ClientOp { kStart, kRead, kWrite, kFinish };

struct Conn;
struct ClientTag {
  Conn* conn;
  ClientOp op;
};

struct Conn {
  int index = 0;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<symwire::bench::Bench::Stub> stub;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<Msg, Msg>> stream;
  Msg in;
  grpc::Status status;
  e2e::Pacer pacer{1.0};
  std::deque<Clock::time_point> sent_at;  // latency: FIFO of requests
  uint64_t queued = 0;  // requests waiting for the one outstanding Write
  int inflight = 0;     // requests queued or written, echo not yet received
  bool start_done = false;
  bool reading = false;
  bool writing = false;
  bool finishing = false;
  bool broken = false;  // a Read or Write failed: the call is over
  int pending = 0;
  ClientTag start_tag{this, ClientOp::kStart};
  ClientTag read_tag{this, ClientOp::kRead};
  ClientTag write_tag{this, ClientOp::kWrite};
  ClientTag finish_tag{this, ClientOp::kFinish};
};

struct Client {
  Options o;
  grpc::CompletionQueue cq;  // outlives the calls (declared before conns)
  std::vector<std::unique_ptr<Conn>> conns;
  Msg request;
  Msg stream_request;
  enum class Phase { kStarting, kWarmup, kMeasure, kDone };
  Phase phase = Phase::kStarting;
  Clock::time_point phase_start;
  Clock::time_point last_event;
  double elapsed = 0;
  uint64_t measured = 0;  // pairs (throughput, latency) or messages (stream)
  std::vector<double> latencies;
  int started = 0;
  bool failed = false;
  int failed_index = -1;  // the connection that failed first, if any

  bool Latency() const { return o.mode == "latency"; }
  int Window() const { return Latency() && o.rate == 0 ? 1 : o.window; }

  void Fail(const Conn& c, const char* what) {
    if (!failed) {
      std::fprintf(stderr, "grpc-bench: connection %d: %s\n", c.index, what);
      failed_index = c.index;
    }
    failed = true;
    Stop();
  }
  void Fail(const char* what) {
    if (!failed) std::fprintf(stderr, "grpc-bench: %s\n", what);
    failed = true;
    Stop();
  }

  void Stop() {
    if (phase == Phase::kMeasure) elapsed = e2e::SecondsSince(phase_start);
    phase = Phase::kDone;
  }

  void Count(uint64_t n) {
    if (phase != Phase::kMeasure) return;
    measured += n;
    if (o.messages != 0 && measured >= o.messages) Stop();
  }

  void Read(Conn* c) {
    ++c->pending;
    c->reading = true;
    c->stream->Read(&c->in, &c->read_tag);
  }

  void Write(Conn* c, const Msg& m) {
    ++c->pending;
    c->writing = true;
    c->stream->Write(m, &c->write_tag);
  }

  // Enqueue: one more request in flight, written when the stream is free.
  void Enqueue(Conn* c) {
    ++c->inflight;
    ++c->queued;
    if (Latency()) c->sent_at.push_back(Clock::now());
  }

  void PumpWrite(Conn* c) {
    if (c->writing || c->queued == 0 || phase == Phase::kDone) return;
    --c->queued;
    Write(c, request);
  }

  // Fill: closed loop, up to the window.
  void Fill(Conn* c) {
    if (phase == Phase::kDone || (Latency() && o.rate > 0)) return;
    while (c->inflight < Window()) Enqueue(c);
    PumpWrite(c);
  }

  void Handle(ClientTag* tag, bool ok) {
    Conn* c = tag->conn;
    --c->pending;
    switch (tag->op) {
      case ClientOp::kStart:
        c->start_done = true;
        if (phase == Phase::kDone) return;
        if (!ok) return Fail(*c, "the stream did not start");
        Read(c);
        if (o.mode == "stream") Write(c, stream_request);
        if (++started == static_cast<int>(conns.size())) Begin();
        return;
      case ClientOp::kRead:
        c->reading = false;
        if (phase == Phase::kDone) return;
        if (!ok) {
          c->broken = true;
          return Fail(*c, "the server ended the stream");
        }
        if (c->in.payload().size() != o.payload) {
          return Fail(*c, "a message of the wrong size arrived");
        }
        if (o.mode != "stream") {
          --c->inflight;
          if (Latency()) {
            if (phase == Phase::kMeasure) {
              latencies.push_back(std::chrono::duration<double, std::micro>(
                                      Clock::now() - c->sent_at.front())
                                      .count());
            }
            c->sent_at.pop_front();
          }
        }
        Count(1);
        if (phase == Phase::kDone) return;
        Read(c);
        Fill(c);
        return;
      case ClientOp::kWrite:
        c->writing = false;
        if (phase == Phase::kDone) return;
        if (!ok) {
          c->broken = true;
          return Fail(*c, "a write failed (the stream is broken)");
        }
        PumpWrite(c);
        return;
      case ClientOp::kFinish:
        return;
    }
  }

  void Begin() {
    phase = Phase::kWarmup;
    phase_start = Clock::now();
    for (auto& c : conns) {
      c->pacer = e2e::Pacer(o.rate > 0 ? o.rate : 1.0);
      c->pacer.Start();
      if (o.mode != "stream") Fill(c.get());
    }
  }

  // Tick: after every event or timeout: phases, pacing, the stall bound.
  void Tick() {
    const Clock::time_point now = Clock::now();
    if (phase == Phase::kWarmup &&
        now - phase_start >= std::chrono::duration<double>(o.warmup)) {
      phase = Phase::kMeasure;
      phase_start = now;
    }
    if (phase == Phase::kMeasure && o.messages == 0 &&
        now - phase_start >= std::chrono::duration<double>(o.seconds)) {
      Stop();
    }
    if (phase == Phase::kDone) return;
    bool expecting = phase == Phase::kStarting || o.mode == "stream";
    for (auto& c : conns) {
      if (Latency() && o.rate > 0 && phase != Phase::kStarting) {
        for (uint64_t due = c->pacer.Due(); due > 0 && c->inflight < Window();
             --due) {
          Enqueue(c.get());
          c->pacer.Sent();
        }
        PumpWrite(c.get());
      }
      expecting = expecting || c->inflight > 0;
    }
    if (expecting && now - last_event > kStallTimeout) {
      Fail("no completion for 10 s (server stalled?)");
    }
  }

  // NextWake: when Tick has something to do at the latest.
  Clock::time_point NextWake() const {
    Clock::time_point t = Clock::now() + std::chrono::milliseconds(100);
    const auto at = [this](double s) {
      return phase_start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(s));
    };
    if (phase == Phase::kWarmup) t = std::min(t, at(o.warmup));
    if (phase == Phase::kMeasure && o.messages == 0) {
      t = std::min(t, at(o.seconds));
    }
    if (Latency() && o.rate > 0 &&
        (phase == Phase::kWarmup || phase == Phase::kMeasure)) {
      for (const auto& c : conns) {
        if (c->inflight < Window()) t = std::min(t, c->pacer.NextDue());
      }
    }
    return t;
  }

  // Run: until the measurement is over (or failed).
  void Run() {
    last_event = Clock::now();
    while (phase != Phase::kDone) {
      void* tag = nullptr;
      bool ok = false;
      const Clock::time_point wake = NextWake();  // poll if due too soon
      const auto st = cq.AsyncNext(
          &tag, &ok,
          Deadline(e2e::PollNotSleep(wake, o) ? Clock::now() : wake));
      if (st == grpc::CompletionQueue::SHUTDOWN) {
        std::fprintf(stderr, "grpc-bench: completion queue shut down\n");
        failed = true;
        return;
      }
      if (st == grpc::CompletionQueue::GOT_EVENT) {
        last_event = Clock::now();
        Handle(static_cast<ClientTag*>(tag), ok);
      }
      Tick();
    }
  }

  // Teardown: cancel every stream (except broken ones, whose status then
  // says why), collect every status (Finish once no Read or Write is
  // outstanding), drain the queue. False on timeout.
  bool Teardown() {
    for (auto& c : conns) {
      if (c->stream && !c->broken) c->ctx.TryCancel();
    }
    const Clock::time_point limit = Clock::now() + kTeardownTimeout;
    for (;;) {
      bool busy = false;
      for (auto& c : conns) {
        if (c->start_done && !c->finishing && !c->reading && !c->writing) {
          c->finishing = true;
          ++c->pending;
          c->stream->Finish(&c->status, &c->finish_tag);
        }
        busy = busy || c->pending > 0;
      }
      if (!busy) break;
      if (Clock::now() >= limit) return false;
      void* tag = nullptr;
      bool ok = false;
      const auto st = cq.AsyncNext(
          &tag, &ok,
          Deadline(
              std::min(limit, Clock::now() + std::chrono::milliseconds(100))));
      if (st == grpc::CompletionQueue::GOT_EVENT) {
        Handle(static_cast<ClientTag*>(tag), ok);
      }
    }
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
    return true;
  }
};

int RunClient(const Options& o) {
  if (o.payload > static_cast<size_t>(kMaxMessageBytes) - 64) {
    std::fprintf(stderr, "grpc-bench: --payload above %d bytes\n",
                 kMaxMessageBytes - 64);
    return 2;
  }
  Client b;
  b.o = o;
  b.request.set_payload(std::string(o.payload, 'q'));
  b.stream_request.set_payload(std::string(o.payload, 'q'));
  b.stream_request.set_kind(Msg::STREAM);
  const std::string target =
      o.transport == "tcp" ? o.address : "unix:" + o.address;
  for (int i = 0; i < o.connections; ++i) {
    auto c = std::make_unique<Conn>();
    c->index = i;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(kMaxMessageBytes);
    args.SetMaxSendMessageSize(kMaxMessageBytes);
    c->channel = grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args);
    if (!c->channel->WaitForConnected(std::chrono::system_clock::now() +
                                      kConnectTimeout)) {
      std::fprintf(stderr,
                   "grpc-bench: connection %d: cannot connect to %s within "
                   "10 s\n",
                   i, target.c_str());
      return 1;
    }
    c->stub = symwire::bench::Bench::NewStub(c->channel);
    b.conns.push_back(std::move(c));
  }
  for (auto& c : b.conns) {
    c->stream = c->stub->PrepareAsyncStream(&c->ctx, &b.cq);
    ++c->pending;
    c->stream->StartCall(&c->start_tag);
  }
  b.Run();
  const double threads = Threads();
  if (!b.Teardown()) {
    std::fprintf(stderr, "grpc-bench: teardown timed out\n");
    std::fflush(stderr);
    std::_Exit(1);
  }
  if (b.failed) {
    for (const auto& c : b.conns) {
      if (c->finishing && !c->status.ok() &&
          (c->index == b.failed_index ||
           c->status.error_code() != grpc::StatusCode::CANCELLED)) {
        std::fprintf(stderr, "grpc-bench: connection %d: status %d: %s\n",
                     c->index, static_cast<int>(c->status.error_code()),
                     c->status.error_message().c_str());
      }
    }
    return 1;
  }
  e2e::Result r;
  r.system = "grpc";
  r.options = o;
  r.elapsed = b.elapsed;
  if (o.mode == "stream") {
    r.messages = b.measured;
    r.payload_bytes = b.measured * o.payload;
  } else {
    r.tasks = b.measured;
    r.messages = o.mode == "throughput" ? 2 * b.measured : b.measured;
    r.payload_bytes = 2 * b.measured * o.payload;
  }
  r.latencies_us = std::move(b.latencies);
  r.extra = {{"client_threads", threads}};
  e2e::PrintResult(std::move(r));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = e2e::ParseArgs(argc, argv);
  e2e::Pin(o.pin);  // first: every gRPC thread inherits the mask
  return o.role == "server" ? RunServer(o) : RunClient(o);
}
