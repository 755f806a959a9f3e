// File: tests/transport/transport_test.cpp
// Transport (transport.hpp): buffered reads and coalesced writes over a
// real Unix socket pair, graceful and abrupt close.
#include "symwire/transport/transport.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/local/connect_pair.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/tcp.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using Socket = asio::local::stream_protocol::socket;

using testing::ByteSpan;
using testing::Pattern;
using testing::Recorder;

// Two transports over a connected Unix socket pair, started, each with a
// Recorder sink.
struct SocketPair {
  asio::io_context io;
  std::shared_ptr<Transport> ta;
  std::shared_ptr<Transport> tb;
  Recorder ra;
  Recorder rb;
  explicit SocketPair(TransportOptions b_options = {}, int a_send_buffer = 0) {
    Socket a(io), b(io);
    asio::local::connect_pair(a, b);
    if (a_send_buffer > 0) {
      a.set_option(asio::socket_base::send_buffer_size(a_send_buffer));
    }
    ta = MakeTransport(std::move(a), "a");
    tb = MakeTransport(std::move(b), "b", b_options);
    ta->Start(&ra);
    tb->Start(&rb);
  }
};

TEST_CASE("transport: coalesces queued bytes and delivers them in order") {
  SocketPair p;
  std::string expect;
  for (int i = 0; i < 1000; ++i) {
    const std::string chunk = absl::StrCat("frame-", i, ";");
    expect += chunk;
    p.ta->Send(ByteSpan(chunk));  // the first goes at once, the rest batch up
  }
  p.ta->CloseAfterFlush();
  p.io.run();
  CHECK(p.rb.data == expect);
  CHECK(p.ta->counters().bytes_written == expect.size());
  // 1000 sends, far fewer writes: one in flight, the rest in one batch.
  CHECK(p.ta->counters().writes <= 3);
  CHECK(p.ra.closes == 1);
  CHECK(p.ra.status.ok());
  // b saw the end of stream as a connection loss naming the peer close.
  CHECK(p.rb.closes == 1);
  CHECK(GetErrorCode(p.rb.status) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(p.rb.status.message(), "closed by peer"));
}

TEST_CASE("transport: Close drops queued bytes and reports once") {
  SocketPair p;
  p.rb.on_data = [](Transport& t) {
    t.Close(absl::CancelledError("test closes"));
  };
  p.ta->Send(ByteSpan("hello"));
  p.io.run();
  CHECK(p.rb.data == "hello");
  CHECK(p.rb.closes == 1);
  CHECK(p.rb.status.code() == absl::StatusCode::kCancelled);
  CHECK(p.ra.closes == 1);
  CHECK(GetErrorCode(p.ra.status) == ErrorCode::kConnectionLost);
  CHECK_FALSE(p.tb->is_open());
}

TEST_CASE("transport: spin-before-block reads deliver the same bytes") {
  TransportOptions spin;
  spin.spin_read = std::chrono::microseconds(200);
  SocketPair p(spin);
  int replies = 0;
  // Ping-pong 200 times: b echoes each byte, a sends the next on echo.
  p.rb.on_data = [](Transport& t) { t.Send(ByteSpan("y")); };
  p.ra.on_data = [&](Transport& t) {
    if (++replies < 200) {
      t.Send(ByteSpan("x"));
    } else {
      t.CloseAfterFlush();
    }
  };
  p.ta->Send(ByteSpan("x"));
  p.io.run();
  CHECK(replies == 200);
  CHECK(p.rb.data == std::string(200, 'x'));
  CHECK(p.tb->counters().bytes_read == 200);
}

TEST_CASE(
    "transport: QueueShared writes referenced bytes, kept alive by "
    "their owner, in order with copied ones") {
  SocketPair p;
  std::string expect;
  std::weak_ptr<const void> watch;
  for (int i = 0; i < 200; ++i) {
    // A small copied piece, then a large referenced one whose only owner
    // is handed to the transport: the caller keeps no reference, so the
    // bytes live exactly as long as the transport needs them.
    const std::string small = absl::StrCat("hdr-", i, ";");
    p.ta->Queue(ByteSpan(small));
    expect += small;
    const size_t n = Transport::kMinSharedBytes + static_cast<size_t>(i) * 37;
    auto block =
        std::make_shared<std::string>(n, static_cast<char>('a' + i % 26));
    expect += *block;
    const absl::Span<const std::byte> bytes = ByteSpan(*block);
    if (i == 0) watch = block;
    p.ta->QueueShared(bytes, std::move(block));
    // Below the threshold: copied even with an owner.
    auto tiny = std::make_shared<std::string>("t;");
    expect += *tiny;
    p.ta->QueueShared(ByteSpan(*tiny), tiny);
    tiny->assign("XX");  // the copy was taken: changing it is harmless
    if (i % 50 == 0) p.ta->Flush();
  }
  CHECK_FALSE(watch.expired());  // still referenced by the queued batch
  p.ta->CloseAfterFlush();
  p.io.run();
  CHECK(p.rb.data.size() == expect.size());
  CHECK(p.rb.data == expect);
  CHECK(p.ta->counters().bytes_written == expect.size());
  CHECK(watch.expired());  // released once written
  CHECK(p.ta->queued_bytes() == 0);
}

TEST_CASE("transport: WriteInPieces splits the next bytes into small writes",
          "[issue11]") {
  SocketPair p;
  std::string expect;
  // Copied and referenced pieces mixed, 12,000 bytes in one batch.
  for (int i = 0; i < 4; ++i) {
    const std::string copied = Pattern(1000 + static_cast<size_t>(i));
    p.ta->Queue(ByteSpan(copied));
    expect += copied;
    auto block = std::make_shared<std::string>(2000 - static_cast<size_t>(i),
                                               static_cast<char>('a' + i));
    expect += *block;
    const absl::Span<const std::byte> bytes = ByteSpan(*block);
    p.ta->QueueShared(bytes, std::move(block));
  }
  REQUIRE(expect.size() == 12000);
  p.ta->WriteInPieces(1000, 5000);
  p.ta->CloseAfterFlush();
  p.io.run();
  CHECK(p.rb.data == expect);
  // Five writes of 1,000 bytes, then the other 7,000 in one.
  CHECK(p.ta->counters().writes == 6);
  CHECK(p.ta->counters().bytes_written == expect.size());
}

TEST_CASE("transport: a peer that stops reading hits write_progress_timeout",
          "[issue11]") {
  asio::io_context io;
  Socket a(io), b(io);
  asio::local::connect_pair(a, b);
  TransportOptions timeout;
  timeout.write_progress_timeout = std::chrono::milliseconds(200);
  std::shared_ptr<Transport> ta = MakeTransport(std::move(a), "a", timeout);
  std::shared_ptr<Transport> tb = MakeTransport(std::move(b), "b");
  Recorder ra, rb;
  ta->Start(&ra);
  tb->PauseReading();
  tb->Start(&rb);                                    // never reads
  const std::string big = Pattern(size_t{8} << 20);  // more than the kernel
  ta->Send(ByteSpan(big));
  testing::RunUntil(io, [&] { return ra.closes == 1; });
  INFO(ra.status.ToString());
  CHECK(GetErrorCode(ra.status) == ErrorCode::kPeerUnresponsive);
  CHECK(absl::StrContains(ra.status.message(), "no write progress"));
  CHECK(ta->counters().write_timeouts == 1);
  CHECK_FALSE(ta->is_open());
  tb->Close();
}

TEST_CASE(
    "transport: a gather batch of thousands of pieces goes out whole and in "
    "order through a small socket buffer") {
  // a's send buffer holds a few KiB: nearly every sendmsg stops part-way
  // into a piece and the rest waits for writability. 3000 copied and 3000
  // referenced pieces alternate, six times the 1024 iovecs one call takes.
  SocketPair p({}, 4096);
  std::string expect;
  for (int i = 0; i < 3000; ++i) {
    const std::string small = absl::StrCat("h", i, ";");
    p.ta->Queue(ByteSpan(small));
    expect += small;
    auto block = std::make_shared<std::string>(
        Transport::kMinSharedBytes + static_cast<size_t>(i % 7),
        static_cast<char>('a' + i % 26));
    expect += *block;
    const absl::Span<const std::byte> bytes = ByteSpan(*block);
    p.ta->QueueShared(bytes, std::move(block));
  }
  p.ta->CloseAfterFlush();
  p.io.run();
  CHECK(p.rb.data.size() == expect.size());
  CHECK(p.rb.data == expect);
  CHECK(p.ta->counters().bytes_written == expect.size());
  CHECK(p.ta->counters().writes == 1);  // one batch, however many calls
  CHECK(p.ra.status.ok());
}

TEST_CASE(
    "transport: ApplyUnixOptions sets a Unix socket's send buffer; 0 keeps "
    "the system default") {
  asio::io_context io;
  Socket a(io), b(io);
  asio::local::connect_pair(a, b);
  asio::socket_base::send_buffer_size before;
  b.get_option(before);
  const TransportOptions defaults;
  REQUIRE(defaults.unix_send_buffer_bytes == 1 << 20);
  REQUIRE(ApplyUnixOptions(a, defaults).ok());
  asio::socket_base::send_buffer_size got;
  a.get_option(got);
  // Linux caps the value at net.core.wmem_max (and reports it doubled,
  // which Asio's get_option halves again).
  int wmem_max = 0;
  std::ifstream("/proc/sys/net/core/wmem_max") >> wmem_max;
  INFO("wmem_max " << wmem_max << ", default " << before.value());
  if (wmem_max > 0) {
    CHECK(got.value() == std::min(defaults.unix_send_buffer_bytes, wmem_max));
  } else {
    CHECK(got.value() >= before.value());
  }
  TransportOptions keep;
  keep.unix_send_buffer_bytes = 0;
  REQUIRE(ApplyUnixOptions(b, keep).ok());
  b.get_option(got);
  CHECK(got.value() == before.value());
  // A closed socket reports the system error, naming the option.
  a.close();
  const absl::Status st = ApplyUnixOptions(a, defaults);
  CHECK_FALSE(st.ok());
  CHECK(absl::StrContains(st.message(), "SO_SNDBUF"));
}

// This process's threads (Linux: one entry per thread in /proc/self/task).
size_t ThreadCount() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

TEST_CASE(
    "transport: ConnectTcp dials an address literal without a resolver "
    "thread; a name is resolved; a refused literal names its target") {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io,
                                   {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t port = acceptor.local_endpoint().port();
  auto dial = [&](const std::string& host, uint16_t to) {
    std::optional<DialResult> result;
    asio::ip::tcp::socket peer(io);
    acceptor.async_accept(peer, [](const boost::system::error_code&) {});
    ConnectTcp(io.get_executor(), host, to, TcpOptions{},
               std::chrono::seconds(5), TransportOptions{},
               [&result](DialResult r) { result = std::move(r); });
    io.restart();
    while (!result.has_value() && io.run_one() > 0) {
    }
    acceptor.cancel();
    io.restart();
    io.poll();
    REQUIRE(result.has_value());
    return std::move(*result);
  };
  const size_t threads = ThreadCount();
  DialResult literal = dial("127.0.0.1", port);
  REQUIRE(literal.ok());
  CHECK((*literal)->description() == absl::StrCat("tcp 127.0.0.1:", port));
  CHECK(ThreadCount() == threads);  // no resolver was started
  (*literal)->Close(absl::OkStatus());
  // The name goes through the resolver (its thread may now exist).
  DialResult named = dial("localhost", port);
  REQUIRE(named.ok());
  (*named)->Close(absl::OkStatus());
  // A literal nobody listens on: refused, naming host and port.
  asio::ip::tcp::acceptor closed(io, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t closed_port = closed.local_endpoint().port();
  closed.close();
  DialResult refused = dial("127.0.0.1", closed_port);
  REQUIRE_FALSE(refused.ok());
  CHECK(GetErrorCode(refused.status()) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(refused.status().message(),
                          absl::StrCat("connect to 127.0.0.1:", closed_port)));
}

}  // namespace
}  // namespace symwire
