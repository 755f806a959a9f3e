// File: tests/transport/shared_payload_test.cpp
// The runtime with payloads handed over by reference (SharedPayload):
// Channel::Submit of one, and an IncomingTask that streams partial
// responses and a final one from SharedPayloads, over the in-memory
// transport and over TCP on 127.0.0.1. The caller drops its payloads right
// after the calls, so the bytes must live on in the replay store and the
// write batches until acknowledged (ASan checks it). Every wait is bounded.
#include "symwire/shared_payload.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "boost/asio/io_context.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/transport/memory.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using testing::FastClient;
using testing::FastServer;
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
  auto ep = (*server)->ListenTcp("127.0.0.1", 0);
  REQUIRE(ep.ok());
  auto client = Client::Connect(
      io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", ep->port()),
      FastClient());
  REQUIRE(client.ok());
  RunCall(io, *client);
  RunCall(io, *client);
}

}  // namespace
}  // namespace symwire
