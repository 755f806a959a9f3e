// File: bench/session_bench.cpp
// Throughput of layer 2 with no I/O: two Sessions (an orchestrator and an
// agent) joined in memory, on one thread, so the figures are per core and
// include both ends (encode, replay store, decode, sequencing, task table,
// events, acknowledgements). bench/README.md records a run.
//
//   BM_SessionTasks/<payload>     tasks/s and frames/s: submit a batch of
//                                 tasks, the agent answers each with one
//                                 final response (2 frames per task).
//   BM_SessionStreaming/<payload> frames/s of partial responses streamed on
//                                 one long-running task.
//   BM_CodecOnly/<payload>        baseline in the same run: the same frames
//                                 (checksummed RESPONSEs) encoded and decoded
//                                 with layer 1 alone, no session.
//
// Goal (issue #3): >= 5 million frames/s per core at 64-byte payloads.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/session/session.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"

namespace {

using symwire::Session;

constexpr int kBatch = 256;

struct Pair {
  absl::Time now = absl::UnixEpoch() + absl::Seconds(1000);
  std::unique_ptr<Session> orchestrator;
  std::unique_ptr<Session> agent;
  std::vector<std::byte> wire;
  std::vector<std::byte> payload;
  uint64_t frames = 0;
  uint64_t finals = 0;
  symwire::TaskId stream_task = 0;

  explicit Pair(size_t payload_size) : payload(payload_size, std::byte{0x5A}) {
    symwire::SessionConfig o;
    o.side = symwire::SessionSide::kInitiator;
    o.role = symwire::AgentRole::kOrchestrator;
    o.random = symwire::SeededRandom(1);
    symwire::SessionConfig a;
    a.side = symwire::SessionSide::kAcceptor;
    a.role = symwire::AgentRole::kAgent;
    a.random = symwire::SeededRandom(2);
    orchestrator = std::move(*Session::Create(o, now));
    agent = std::move(*Session::Create(a, now));
    (void)agent->TransportConnected(now);
    (void)orchestrator->TransportConnected(now);
    for (int i = 0; i < 4; ++i) Pump();
  }

  // Moves everything one side has to send into the other, and handles the
  // events: the agent answers each task with a final response.
  void Move(Session& from, Session& to) {
    wire.clear();
    for (auto s = from.PollTransmit(); !s.empty(); s = from.PollTransmit()) {
      wire.insert(wire.end(), s.begin(), s.end());
    }
    if (wire.empty()) return;
    if (!to.Receive(wire, now).ok()) std::abort();
    while (auto e = to.PollEvent()) {
      ++frames;
      if (auto* t = std::get_if<symwire::TaskReceived>(&*e)) {
        if (stream_task == 0 &&
            !to.SendResponse(t->task, payload, true, now).ok()) {
          std::abort();
        }
        if (stream_task != 0) stream_task = t->task;
      } else if (auto* r = std::get_if<symwire::ResponseReceived>(&*e)) {
        finals += r->final ? 1 : 0;
      }
    }
  }
  void Pump() {
    Move(*orchestrator, *agent);
    Move(*agent, *orchestrator);
  }
  // Acknowledgements are coalesced on a timer (ack_delay): let it fire.
  void Tick() {
    now += absl::Milliseconds(5);
    orchestrator->HandleTimeout(now);
    agent->HandleTimeout(now);
    Pump();
  }
};

void BM_SessionTasks(benchmark::State& state) {
  Pair pair(static_cast<size_t>(state.range(0)));
  uint64_t tasks = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      if (!pair.orchestrator->SubmitTask(pair.payload, {}, pair.now).ok()) {
        state.SkipWithError("submit refused");
        return;
      }
    }
    pair.Pump();
    tasks += kBatch;
    if ((tasks & 4095) == 0) pair.Tick();
  }
  if (pair.finals != tasks) state.SkipWithError("lost responses");
  state.counters["tasks/s"] = benchmark::Counter(static_cast<double>(tasks),
                                                 benchmark::Counter::kIsRate);
  state.counters["frames/s"] = benchmark::Counter(
      static_cast<double>(pair.orchestrator->counters().frames_out +
                          pair.agent->counters().frames_out),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SessionTasks)->Arg(0)->Arg(64)->Arg(1024);

void BM_SessionStreaming(benchmark::State& state) {
  Pair pair(static_cast<size_t>(state.range(0)));
  pair.stream_task = 1;  // the agent keeps the task open
  auto id = pair.orchestrator->SubmitTask(pair.payload, {}, pair.now);
  pair.Pump();
  uint64_t sent = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      if (!pair.agent->SendResponse(*id, pair.payload, false, pair.now).ok()) {
        state.SkipWithError("response refused");
        return;
      }
    }
    pair.Move(*pair.agent, *pair.orchestrator);
    sent += kBatch;
    if ((sent & 4095) == 0) pair.Tick();
  }
  state.counters["frames/s"] = benchmark::Counter(static_cast<double>(sent),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SessionStreaming)->Arg(0)->Arg(64)->Arg(1024);

void BM_CodecOnly(benchmark::State& state) {
  std::vector<std::byte> payload(static_cast<size_t>(state.range(0)),
                                 std::byte{0x5A});
  symwire::FrameHeader h;
  h.type = symwire::MessageType::kAgentResponse;
  h.flags = symwire::kFlagChecksum;
  h.stream_id = 1;
  std::vector<std::byte> buf(kBatch *
                             (*symwire::EncodedSize(h, payload.size()) + 8));
  uint64_t frames = 0;
  for (auto _ : state) {
    size_t at = 0;
    for (int i = 0; i < kBatch; ++i) {
      h.sequence = ++frames;
      at += *symwire::EncodeFrame(h, payload, absl::MakeSpan(buf).subspan(at));
    }
    symwire::DecoderOptions o;
    o.expect_preface = false;
    symwire::FrameDecoder d(o);
    absl::Span<const std::byte> in(buf.data(), at);
    while (!in.empty()) {
      auto step = d.Decode(in);
      benchmark::DoNotOptimize(step->frame.payload().data());
      in.remove_prefix(step->consumed);
    }
  }
  state.counters["frames/s"] = benchmark::Counter(static_cast<double>(frames),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CodecOnly)->Arg(0)->Arg(64)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
