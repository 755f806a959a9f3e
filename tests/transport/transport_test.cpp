// File: tests/transport/transport_test.cpp
// Transport (transport.hpp): buffered reads and coalesced writes over a
// real Unix socket pair, graceful and abrupt close.
#include "symwire/transport/transport.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/local/connect_pair.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "symwire/error.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using Socket = asio::local::stream_protocol::socket;

using testing::ByteSpan;
using testing::Recorder;

TEST_CASE("transport: coalesces queued bytes and delivers them in order") {
  asio::io_context io;
  Socket a(io), b(io);
  asio::local::connect_pair(a, b);
  auto ta = MakeTransport(std::move(a), "a");
  auto tb = MakeTransport(std::move(b), "b");
  Recorder ra, rb;
  ta->Start(&ra);
  tb->Start(&rb);
  std::string expect;
  for (int i = 0; i < 1000; ++i) {
    const std::string chunk = "frame-" + std::to_string(i) + ";";
    expect += chunk;
    ta->Send(ByteSpan(chunk));  // the first goes at once, the rest batch up
  }
  ta->CloseAfterFlush();
  io.run();
  CHECK(rb.data == expect);
  CHECK(ta->counters().bytes_written == expect.size());
  // 1000 sends, far fewer writes: one in flight, the rest in one batch.
  CHECK(ta->counters().writes <= 3);
  CHECK(ra.closes == 1);
  CHECK(ra.status.ok());
  // b saw the end of stream as a connection loss naming the peer close.
  CHECK(rb.closes == 1);
  CHECK(GetErrorCode(rb.status) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(rb.status.message(), "closed by peer"));
}

TEST_CASE("transport: Close drops queued bytes and reports once") {
  asio::io_context io;
  Socket a(io), b(io);
  asio::local::connect_pair(a, b);
  auto ta = MakeTransport(std::move(a), "a");
  auto tb = MakeTransport(std::move(b), "b");
  Recorder ra, rb;
  ta->Start(&ra);
  tb->Start(&rb);
  rb.on_data = [](Transport& t) {
    t.Close(absl::CancelledError("test closes"));
  };
  ta->Send(ByteSpan("hello"));
  io.run();
  CHECK(rb.data == "hello");
  CHECK(rb.closes == 1);
  CHECK(rb.status.code() == absl::StatusCode::kCancelled);
  CHECK(ra.closes == 1);
  CHECK(GetErrorCode(ra.status) == ErrorCode::kConnectionLost);
  CHECK_FALSE(tb->is_open());
}

TEST_CASE("transport: spin-before-block reads deliver the same bytes") {
  asio::io_context io;
  Socket a(io), b(io);
  asio::local::connect_pair(a, b);
  TransportOptions spin;
  spin.spin_read = std::chrono::microseconds(200);
  auto ta = MakeTransport(std::move(a), "a");
  auto tb = MakeTransport(std::move(b), "b", spin);
  Recorder ra, rb;
  ta->Start(&ra);
  tb->Start(&rb);
  int replies = 0;
  // Ping-pong 200 times: b echoes each byte, a sends the next on echo.
  rb.on_data = [](Transport& t) { t.Send(ByteSpan("y")); };
  ra.on_data = [&](Transport& t) {
    if (++replies < 200) {
      t.Send(ByteSpan("x"));
    } else {
      t.CloseAfterFlush();
    }
  };
  ta->Send(ByteSpan("x"));
  io.run();
  CHECK(replies == 200);
  CHECK(rb.data == std::string(200, 'x'));
  CHECK(tb->counters().bytes_read == 200);
}

TEST_CASE(
    "transport: QueueShared writes referenced bytes, kept alive by "
    "their owner, in order with copied ones") {
  asio::io_context io;
  Socket a(io), b(io);
  asio::local::connect_pair(a, b);
  auto ta = MakeTransport(std::move(a), "a");
  auto tb = MakeTransport(std::move(b), "b");
  Recorder ra, rb;
  ta->Start(&ra);
  tb->Start(&rb);
  std::string expect;
  std::weak_ptr<const void> watch;
  for (int i = 0; i < 200; ++i) {
    // A small copied piece, then a large referenced one whose only owner
    // is handed to the transport: the caller keeps no reference, so the
    // bytes live exactly as long as the transport needs them.
    const std::string small = "hdr-" + std::to_string(i) + ";";
    ta->Queue(ByteSpan(small));
    expect += small;
    const size_t n = Transport::kMinSharedBytes + static_cast<size_t>(i) * 37;
    auto block =
        std::make_shared<std::string>(n, static_cast<char>('a' + i % 26));
    expect += *block;
    const absl::Span<const std::byte> bytes = ByteSpan(*block);
    if (i == 0) watch = block;
    ta->QueueShared(bytes, std::move(block));
    // Below the threshold: copied even with an owner.
    auto tiny = std::make_shared<std::string>("t;");
    expect += *tiny;
    ta->QueueShared(ByteSpan(*tiny), tiny);
    tiny->assign("XX");  // the copy was taken: changing it is harmless
    if (i % 50 == 0) ta->Flush();
  }
  CHECK_FALSE(watch.expired());  // still referenced by the queued batch
  ta->CloseAfterFlush();
  io.run();
  CHECK(rb.data.size() == expect.size());
  CHECK(rb.data == expect);
  CHECK(ta->counters().bytes_written == expect.size());
  CHECK(watch.expired());  // released once written
  CHECK(ta->queued_bytes() == 0);
}

}  // namespace
}  // namespace symwire
