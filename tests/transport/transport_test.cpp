// File: tests/transport/transport_test.cpp
// Transport (transport.hpp): buffered reads and coalesced writes over a
// real Unix socket pair, graceful and abrupt close.
#include "symwire/transport/transport.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
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

}  // namespace
}  // namespace symwire
