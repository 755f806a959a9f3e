// File: tests/transport/shared_payload_test.cpp
// The runtime with payloads handed over by reference (SharedPayload):
// Channel::Submit of one, and an IncomingTask that streams partial
// responses and a final one from SharedPayloads, over the in-memory
// transport and over TCP on 127.0.0.1. The caller drops its payloads right
// after the calls, so the bytes must live on in the replay store and the
// write batches until acknowledged (ASan checks it). Every wait is bounded.
// Then the asynchronous calls that take one (async_submit, async_call,
// IncomingTask::async_respond): a call that waits for the task credit or
// the send window keeps the reference (the owner's use_count rises, the
// bytes are not copied), the session keeps it once sent until the peer
// acknowledges, retries resend the same bytes, and a cancelled wait lets
// go of it at once.
#include "symwire/shared_payload.hpp"

#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "boost/asio/bind_cancellation_slot.hpp"
#include "boost/asio/cancellation_signal.hpp"
#include "boost/asio/io_context.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/memory.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using testing::FastClient;
using testing::FastServer;
using testing::ListenAndConnect;
using testing::RunUntil;

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>(static_cast<size_t>(seed) + i * 13);
  }
  return s;
}

// The agent: answers each task with its payload, streamed back as two
// partial responses (the payload, then 20000 bytes of a pattern) and a
// final one of 3000 bytes, all as SharedPayloads it drops at once.
void SharedStreamingAgent(const std::shared_ptr<Channel>& p) {
  p->SetTaskHandler([](IncomingTask task) {
    CHECK(task.Respond(SharedPayload(task.payload_string()), false).ok());
    CHECK(task.Respond(SharedPayload(Pattern(20000, 'x')), false).ok());
    CHECK(task.Respond(SharedPayload(Pattern(3000, 'y')), true).ok());
  });
}

void RunCall(asio::io_context& io, const std::shared_ptr<Channel>& client) {
  absl::Status established = absl::UnknownError("pending");
  client->async_wait_established(
      [&](absl::Status st) { established = std::move(st); });
  RunUntil(io, [&] { return !absl::IsUnknown(established); });
  REQUIRE(established.ok());
  std::vector<std::string> responses;
  absl::Status done = absl::UnknownError("pending");
  TaskCallbacks callbacks;
  callbacks.on_response = [&](absl::Span<const std::byte> payload, bool) {
    responses.emplace_back(reinterpret_cast<const char*>(payload.data()),
                           payload.size());
  };
  callbacks.on_done = [&](const absl::Status& st) { done = st; };
  {
    const SharedPayload request(Pattern(40000, 'r'));
    auto call = client->Submit(request, {}, std::move(callbacks));
    INFO(call.status().ToString());
    REQUIRE(call.ok());
  }  // the request is now referenced only by the session
  RunUntil(io, [&] { return !absl::IsUnknown(done); });
  CHECK(done.ok());
  REQUIRE(responses.size() == 3);
  CHECK(responses[0] == Pattern(40000, 'r'));
  CHECK(responses[1] == Pattern(20000, 'x'));
  CHECK(responses[2] == Pattern(3000, 'y'));
}

TEST_CASE("runtime: shared payloads over the memory transport",
          "[runtime][shared_payload]") {
  asio::io_context io;
  auto [a, b] = MakeMemoryTransportPair(io.get_executor());
  auto server =
      Server::Create(io.get_executor(), FastServer(), SharedStreamingAgent);
  REQUIRE(server.ok());
  (*server)->Accept(b);
  auto client = Client::Start(a, FastClient());
  REQUIRE(client.ok());
  RunCall(io, *client);
  RunCall(io, *client);
}

TEST_CASE("runtime: shared payloads over TCP", "[runtime][shared_payload]") {
  asio::io_context io;
  auto server =
      Server::Create(io.get_executor(), FastServer(), SharedStreamingAgent);
  REQUIRE(server.ok());
  const std::shared_ptr<Channel> client = ListenAndConnect(io, **server);
  RunCall(io, client);
  RunCall(io, client);
}

// ---- the asynchronous calls -------------------------------------------------

// A client and a server over the memory transport, on one io_context. The
// agent takes one task at a time (max_tasks = 1): it holds a task "hold"
// (in `held`) until the test answers it, so the next submission waits for
// credit; it fails the first `fail_first` other tasks retryably
// (kUnavailable), calling `on_task` first, and echoes the rest.
struct AsyncRig {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::shared_ptr<Channel> client;
  std::vector<IncomingTask> held;
  std::vector<std::string> received;  // every task's payload, in order
  int fail_first = 0;
  std::function<void()> on_task;

  AsyncRig() {
    ServerOptions so = FastServer();
    so.session.max_tasks = 1;
    auto s = Server::Create(
        io.get_executor(), so, [this](const std::shared_ptr<Channel>& ch) {
          ch->SetTaskHandler([this](IncomingTask t) { Run(t); });
        });
    REQUIRE(s.ok());
    server = *s;
    auto [a, b] = MakeMemoryTransportPair(io.get_executor());
    server->Accept(b);
    auto c = Client::Start(a, FastClient());
    REQUIRE(c.ok());
    client = *c;
    absl::Status established = absl::UnknownError("pending");
    client->async_wait_established(
        [&](absl::Status st) { established = std::move(st); });
    RunUntil(io, [&] { return !absl::IsUnknown(established); });
    REQUIRE(established.ok());
  }

  void Run(IncomingTask& t) {
    received.push_back(t.payload_string());
    if (on_task) on_task();
    if (received.back() == "hold") {
      held.push_back(t);
    } else if (fail_first > 0) {
      --fail_first;
      CHECK(t.Fail(absl::UnavailableError("busy, try again"), true).ok());
    } else {
      CHECK(t.Respond(t.payload(), true).ok());
    }
  }

  // Submits "hold": the agent's one task slot is taken until Release.
  void Block() {
    REQUIRE(client->Submit(std::string_view("hold")).ok());
    RunUntil(
        io, [&] { return held.size() == 1; }, "the blocking task");
  }
  void Release() {
    REQUIRE(held.size() == 1);
    CHECK(held[0].Respond(std::string_view("released"), true).ok());
  }
};

TEST_CASE(
    "runtime: async_submit of a SharedPayload waits for credit by "
    "reference",
    "[runtime][shared_payload]") {
  AsyncRig rig;
  rig.Block();
  const std::string bytes = Pattern(30000, 's');
  const SharedPayload payload{std::string(bytes)};
  const std::weak_ptr<const void> owner = payload.owner();
  absl::StatusOr<TaskCall> submitted = absl::UnknownError("pending");
  long uses_when_sent = 0;
  rig.client->async_submit(payload, {}, [&](absl::StatusOr<TaskCall> call) {
    uses_when_sent = owner.use_count();
    submitted = std::move(call);
  });
  rig.io.poll();  // the op starts, is refused NO_CREDIT, and waits
  REQUIRE(absl::IsUnknown(submitted.status()));
  CHECK(owner.use_count() == 2);  // ours and the waiting op's, no copy
  rig.Release();
  RunUntil(
      rig.io, [&] { return !absl::IsUnknown(submitted.status()); },
      "the submission");
  REQUIRE(submitted.ok());
  CHECK(uses_when_sent >= 2);  // the session's replay store holds it
  RunUntil(
      rig.io, [&] { return rig.received.size() == 2; }, "the task");
  CHECK(rig.received[1] == bytes);
  // Released once the agent acknowledged the frame.
  RunUntil(
      rig.io, [&] { return owner.use_count() == 1; }, "the release");
}

TEST_CASE(
    "runtime: async_call of a SharedPayload waits for credit by "
    "reference",
    "[runtime][shared_payload]") {
  AsyncRig rig;
  rig.Block();
  const std::string bytes = Pattern(30000, 'c');
  const SharedPayload payload{std::string(bytes)};
  const std::weak_ptr<const void> owner = payload.owner();
  absl::StatusOr<std::string> result = absl::UnknownError("pending");
  rig.client->async_call(payload, {}, [&](absl::StatusOr<std::string> r) {
    result = std::move(r);
  });
  rig.io.poll();
  REQUIRE(absl::IsUnknown(result.status()));
  CHECK(owner.use_count() == 2);
  long uses_at_agent = 0;  // the client's references when the task arrives
  rig.on_task = [&] { uses_at_agent = owner.use_count(); };
  rig.Release();
  RunUntil(
      rig.io, [&] { return !absl::IsUnknown(result.status()); }, "the call");
  REQUIRE(result.ok());
  CHECK(*result == bytes);
  CHECK(uses_at_agent >= 2);  // sent by reference: the replay store's
  RunUntil(
      rig.io, [&] { return owner.use_count() == 1; }, "the release");
}

TEST_CASE("runtime: async_call retries resend the same shared bytes",
          "[runtime][shared_payload]") {
  AsyncRig rig;
  rig.fail_first = 1;
  const std::string bytes = Pattern(20000, 'r');
  const SharedPayload payload{std::string(bytes)};
  const std::weak_ptr<const void> owner = payload.owner();
  std::vector<long> uses_at_agent;
  rig.on_task = [&] { uses_at_agent.push_back(owner.use_count()); };
  CallOptions options;
  options.retry.emplace();
  options.retry->max_attempts = 2;
  options.retry->initial_backoff = absl::Milliseconds(1);
  options.retry->jitter = 0;
  absl::StatusOr<std::string> result = absl::UnknownError("pending");
  rig.client->async_call(payload, options, [&](absl::StatusOr<std::string> r) {
    result = std::move(r);
  });
  RunUntil(
      rig.io, [&] { return !absl::IsUnknown(result.status()); }, "the call");
  REQUIRE(result.ok());
  CHECK(*result == bytes);
  REQUIRE(rig.received.size() == 2);
  CHECK(rig.received[0] == bytes);
  CHECK(rig.received[1] == bytes);
  // Each attempt was sent by reference: ours, the call's (kept for a
  // retry, the first time) and the replay store's.
  REQUIRE(uses_at_agent.size() == 2);
  CHECK(uses_at_agent[0] >= 3);
  CHECK(uses_at_agent[1] >= 2);
  RunUntil(
      rig.io, [&] { return owner.use_count() == 1; }, "the release");
}

TEST_CASE(
    "runtime: a cancelled async_submit or async_call of a SharedPayload "
    "lets go of it at once",
    "[runtime][shared_payload]") {
  const bool call = GENERATE(false, true);
  INFO((call ? "async_call" : "async_submit"));
  AsyncRig rig;
  rig.Block();
  const SharedPayload payload(Pattern(30000, 'x'));
  const std::weak_ptr<const void> owner = payload.owner();
  asio::cancellation_signal signal;
  absl::Status status = absl::UnknownError("pending");
  long uses_when_done = 0;
  auto done = [&](const auto& r) {
    uses_when_done = owner.use_count();
    status = r.status();
  };
  if (call) {
    rig.client->async_call(
        payload, {},
        asio::bind_cancellation_slot(
            signal.slot(), [&](absl::StatusOr<std::string> r) { done(r); }));
  } else {
    rig.client->async_submit(
        payload, {},
        asio::bind_cancellation_slot(
            signal.slot(), [&](absl::StatusOr<TaskCall> r) { done(r); }));
  }
  rig.io.poll();
  REQUIRE(absl::IsUnknown(status));
  CHECK(owner.use_count() == 2);
  signal.emit(asio::cancellation_type::total);
  RunUntil(
      rig.io, [&] { return !absl::IsUnknown(status); }, "the cancel");
  CHECK(absl::IsCancelled(status));
  CHECK(uses_when_done == 1);  // only ours: the queued op dropped it
  // Never sent: the next task is the agent's second.
  rig.Release();
  rig.client->async_submit(
      std::string("after"), {},
      [](const absl::StatusOr<TaskCall>& c) { CHECK(c.ok()); });
  RunUntil(
      rig.io, [&] { return rig.received.size() == 2; }, "the next task");
  CHECK(rig.received[1] == "after");
}

// An agent whose send window holds one frame (replay_frames = 1): it
// answers with a partial `first` (a string), then the final `second` (a
// SharedPayload), which waits for the peer's acknowledgement of the first.
struct RespondRig {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::shared_ptr<Channel> client;
  std::function<void(IncomingTask&)> handler;

  RespondRig() {
    ServerOptions so = FastServer();
    so.session.replay_frames = 1;
    auto s = Server::Create(
        io.get_executor(), so, [this](const std::shared_ptr<Channel>& ch) {
          ch->SetTaskHandler([this](IncomingTask t) { handler(t); });
        });
    REQUIRE(s.ok());
    server = *s;
    auto [a, b] = MakeMemoryTransportPair(io.get_executor());
    server->Accept(b);
    auto c = Client::Start(a, FastClient());
    REQUIRE(c.ok());
    client = *c;
  }

  std::string Call() {
    absl::StatusOr<std::string> result = absl::UnknownError("pending");
    client->async_call(
        std::string("go"), {},
        [&](absl::StatusOr<std::string> r) { result = std::move(r); });
    RunUntil(
        io, [&] { return !absl::IsUnknown(result.status()); }, "the call");
    REQUIRE(result.ok());
    return *result;
  }
};

TEST_CASE(
    "runtime: async_respond of a SharedPayload waits for the send "
    "window by reference",
    "[runtime][shared_payload]") {
  RespondRig rig;
  const std::string first = Pattern(5000, 'f');
  const std::string second = Pattern(30000, 'g');
  const SharedPayload payload{std::string(second)};
  const std::weak_ptr<const void> owner = payload.owner();
  long uses_queued = 0;
  long uses_when_sent = 0;
  absl::Status sent = absl::UnknownError("pending");
  rig.handler = [&](IncomingTask& task) {
    task.async_respond(std::string(first), false, [](const absl::Status&) {});
    task.async_respond(payload, true, [&](absl::Status st) {
      uses_when_sent = owner.use_count();
      sent = std::move(st);
    });
    // The window holds `first` (or `first` waits too): `second` waits.
    CHECK(absl::IsUnknown(sent));
    uses_queued = owner.use_count();
  };
  CHECK(rig.Call() == first + second);
  RunUntil(
      rig.io, [&] { return !absl::IsUnknown(sent); }, "the response");
  CHECK(sent.ok());
  CHECK(uses_queued == 2);     // ours and the waiting op's, no copy
  CHECK(uses_when_sent >= 2);  // the session's replay store holds it
  RunUntil(
      rig.io, [&] { return owner.use_count() == 1; }, "the release");
}

TEST_CASE(
    "runtime: a cancelled async_respond of a SharedPayload lets go of "
    "it at once",
    "[runtime][shared_payload]") {
  RespondRig rig;
  const std::string first = Pattern(5000, 'f');
  const SharedPayload payload(Pattern(30000, 'g'));
  const std::weak_ptr<const void> owner = payload.owner();
  asio::cancellation_signal signal;
  long uses_queued = 0;
  long uses_when_done = 0;
  absl::Status status = absl::UnknownError("pending");
  rig.handler = [&](IncomingTask& task) {
    task.async_respond(std::string(first), false, [](const absl::Status&) {});
    task.async_respond(
        payload, true,
        asio::bind_cancellation_slot(signal.slot(), [&, task](absl::Status st) {
          uses_when_done = owner.use_count();
          status = std::move(st);
          // Ends the task another way.
          IncomingTask(task).async_respond(std::string("z"), true,
                                           [](const absl::Status&) {});
        }));
    uses_queued = owner.use_count();
    signal.emit(asio::cancellation_type::terminal);
  };
  CHECK(rig.Call() == first + "z");
  CHECK(absl::IsCancelled(status));
  CHECK(uses_queued == 2);
  CHECK(uses_when_done == 1);  // only ours: the queued op dropped it
}

}  // namespace
}  // namespace symwire
