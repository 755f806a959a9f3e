// File: tests/transport/memory_test.cpp
// The in-memory duplex pipe (memory.hpp): ordering at every split size,
// eof and reset, injected faults seen through Transport, backpressure,
// write coalescing, executor and completion-token rules, shutdown of the
// execution context with operations pending, and two threads.
#include "symwire/transport/memory.hpp"

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "boost/asio/bind_executor.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/use_future.hpp"
#include "symwire/error.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using ErrorCodeT = boost::system::error_code;

using testing::ByteSpan;
using testing::Pattern;
using testing::Recorder;
using testing::TryRunUntil;

// Result of one raw stream operation.
struct Op {
  bool done = false;
  ErrorCodeT ec;
  size_t n = 0;
  auto Handler() {
    return [this](const ErrorCodeT& e, size_t k) {
      done = true;
      ec = e;
      n = k;
    };
  }
};

TEST_CASE("memory: bytes arrive in order at every split size", "[memory]") {
  const std::string message = Pattern(300);
  for (size_t read_split = 1; read_split <= 40; ++read_split) {
    for (size_t write_split : {size_t{1}, size_t{3}, size_t{64}, size_t{0}}) {
      CAPTURE(read_split, write_split);
      asio::io_context io;
      MemoryPipeOptions options;
      options.max_read_bytes = read_split;
      options.max_write_bytes = write_split;
      auto [ta, tb] = MakeMemoryTransportPair(io.get_executor(), options);
      Recorder ra, rb;
      ta->Start(&ra);
      tb->Start(&rb);
      ta->Send(ByteSpan(message.substr(0, 100)));
      ta->Send(ByteSpan(message.substr(100, 150)));
      ta->Send(ByteSpan(message.substr(250)));
      ta->CloseAfterFlush();
      REQUIRE(
          TryRunUntil(io, [&] { return ra.closes == 1 && rb.closes == 1; }));
      CHECK(rb.data == message);
      CHECK(ra.status.ok());
      CHECK(absl::StrContains(rb.status.message(), "memory b: read"));
      CHECK(absl::StrContains(rb.status.message(), "closed by peer"));
      CHECK(tb->counters().reads >=
            (message.size() + read_split - 1) / read_split);
    }
  }
}

TEST_CASE("memory: a read gets the buffered bytes, then eof after close",
          "[memory]") {
  asio::io_context io;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor());
  Op write;
  a.async_write_some(asio::buffer("abc", 3), write.Handler());
  CHECK_FALSE(write.done);  // never completed inside the initiating call
  ErrorCodeT ec;
  a.close(ec);
  CHECK_FALSE(ec);
  CHECK_FALSE(a.is_open());
  char buf[8] = {};
  Op read1;
  b.async_read_some(asio::buffer(buf), read1.Handler());
  CHECK_FALSE(read1.done);
  REQUIRE(TryRunUntil(io, [&] { return write.done && read1.done; }));
  CHECK_FALSE(write.ec);
  CHECK(write.n == 3);
  CHECK_FALSE(read1.ec);
  REQUIRE(read1.n == 3);
  CHECK(std::string(buf, 3) == "abc");
  Op read2;
  b.async_read_some(asio::buffer(buf), read2.Handler());
  REQUIRE(TryRunUntil(io, [&] { return read2.done; }));
  CHECK(read2.ec == asio::error::eof);
  // The closed end: its operations fail, and writes to it fail too.
  Op read3, write2;
  a.async_read_some(asio::buffer(buf), read3.Handler());
  b.async_write_some(asio::buffer("x", 1), write2.Handler());
  REQUIRE(TryRunUntil(io, [&] { return read3.done && write2.done; }));
  CHECK(read3.ec == asio::error::bad_descriptor);
  CHECK(write2.ec == asio::error::broken_pipe);
}

TEST_CASE("memory: a pending read completes with eof when the peer closes",
          "[memory]") {
  asio::io_context io;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor());
  char buf[8];
  Op read, own_read;
  b.async_read_some(asio::buffer(buf), read.Handler());
  a.async_read_some(asio::buffer(buf), own_read.Handler());
  io.poll();
  CHECK_FALSE(read.done);
  a.control().Close();
  REQUIRE(TryRunUntil(io, [&] { return read.done && own_read.done; }));
  CHECK(read.ec == asio::error::eof);
  CHECK(own_read.ec == asio::error::operation_aborted);
}

TEST_CASE("memory: reset makes the peer fail at once", "[memory]") {
  asio::io_context io;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor());
  Op write;
  a.async_write_some(asio::buffer("abc", 3), write.Handler());
  REQUIRE(TryRunUntil(io, [&] { return write.done; }));
  CHECK(b.control().buffered_bytes() == 3);
  a.control().Reset();
  char buf[8];
  Op read, write_back;
  b.async_read_some(asio::buffer(buf), read.Handler());
  b.async_write_some(asio::buffer("x", 1), write_back.Handler());
  REQUIRE(TryRunUntil(io, [&] { return read.done && write_back.done; }));
  CHECK(read.ec == asio::error::connection_reset);  // "abc" is lost
  CHECK(write_back.ec == asio::error::connection_reset);
  CHECK(b.control().buffered_bytes() == 0);
}

TEST_CASE("memory: shutdown_send half-closes one direction", "[memory]") {
  asio::io_context io;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor());
  ErrorCodeT ec;
  a.shutdown(MemoryStream::shutdown_send, ec);
  CHECK_FALSE(ec);
  char buf[8];
  Op read_b, write_a, write_b, read_a;
  b.async_read_some(asio::buffer(buf), read_b.Handler());
  a.async_write_some(asio::buffer("x", 1), write_a.Handler());
  REQUIRE(TryRunUntil(io, [&] { return read_b.done && write_a.done; }));
  CHECK(read_b.ec == asio::error::eof);
  CHECK(write_a.ec == asio::error::broken_pipe);
  // The other direction still works.
  b.async_write_some(asio::buffer("yz", 2), write_b.Handler());
  a.async_read_some(asio::buffer(buf), read_a.Handler());
  REQUIRE(TryRunUntil(io, [&] { return write_b.done && read_a.done; }));
  CHECK_FALSE(read_a.ec);
  CHECK(std::string(buf, read_a.n) == "yz");
}

TEST_CASE("memory: max bytes per read and per write split transfers",
          "[memory]") {
  asio::io_context io;
  MemoryPipeOptions options;
  options.max_write_bytes = 3;
  options.max_read_bytes = 2;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor(), options);
  Op write, read;
  a.async_write_some(asio::buffer("0123456789", 10), write.Handler());
  char buf[16];
  b.async_read_some(asio::buffer(buf), read.Handler());
  REQUIRE(TryRunUntil(io, [&] { return write.done && read.done; }));
  CHECK(write.n == 3);
  CHECK(read.n == 2);
  CHECK(std::string(buf, 2) == "01");
  CHECK(b.control().buffered_bytes() == 1);
  CHECK(a.control().stats().bytes_written == 3);
  CHECK(b.control().stats().bytes_read == 2);
}

TEST_CASE("memory: the Nth read fails, and so does every later one",
          "[memory]") {
  asio::io_context io;
  MemoryPipeOptions options;
  options.second_faults.fail_read_at = 2;
  options.second_faults.error = asio::error::network_reset;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor(), options);
  Op write;
  a.async_write_some(asio::buffer("abcdef", 6), write.Handler());
  char buf[2];
  Op r1, r2, r3;
  b.async_read_some(asio::buffer(buf), r1.Handler());
  REQUIRE(TryRunUntil(io, [&] { return r1.done; }));
  CHECK_FALSE(r1.ec);
  CHECK(r1.n == 2);
  b.async_read_some(asio::buffer(buf), r2.Handler());
  REQUIRE(TryRunUntil(io, [&] { return r2.done; }));
  CHECK(r2.ec == asio::error::network_reset);
  b.async_read_some(asio::buffer(buf), r3.Handler());
  REQUIRE(TryRunUntil(io, [&] { return r3.done; }));
  CHECK(r3.ec == asio::error::network_reset);
  CHECK(b.control().stats().read_calls == 3);
}

TEST_CASE("memory: injected faults surface as statuses through Transport",
          "[memory]") {
  asio::io_context io;
  Recorder ra, rb;
  SECTION("the first write fails") {
    MemoryPipeOptions options;
    options.first_faults.fail_write_at = 1;
    options.first_faults.error = asio::error::network_down;
    auto [ta, tb] = MakeMemoryTransportPair(io.get_executor(), options);
    ta->Start(&ra);
    tb->Start(&rb);
    ta->Send(ByteSpan("hello"));
    REQUIRE(TryRunUntil(io, [&] { return ra.closes == 1 && rb.closes == 1; }));
    CHECK(GetErrorCode(ra.status) == ErrorCode::kConnectionLost);
    CHECK(ra.status.code() == absl::StatusCode::kUnavailable);
    CHECK(absl::StrContains(ra.status.message(), "memory a: write"));
    CHECK(absl::StrContains(ra.status.message(),
                            ErrorCodeT(asio::error::network_down).message()));
    CHECK(rb.data.empty());
    // a's Close() closed its stream, so b read the end of the stream.
    CHECK(absl::StrContains(rb.status.message(), "closed by peer"));
  }
  SECTION("reads fail after 10 bytes") {
    MemoryPipeOptions options;
    options.second_faults.fail_read_after_bytes = 10;
    auto [ta, tb] = MakeMemoryTransportPair(io.get_executor(), options);
    ta->Start(&ra);
    tb->Start(&rb);
    ta->Send(ByteSpan(Pattern(100)));
    REQUIRE(TryRunUntil(io, [&] { return rb.closes == 1; }));
    CHECK(rb.data == Pattern(10));
    CHECK(GetErrorCode(rb.status) == ErrorCode::kConnectionLost);
    CHECK(absl::StrContains(rb.status.message(), "memory b: read"));
    CHECK(
        absl::StrContains(rb.status.message(),
                          ErrorCodeT(asio::error::connection_reset).message()));
    REQUIRE(TryRunUntil(io, [&] { return ra.closes == 1; }));
  }
  SECTION("writes fail after 7 bytes, set after the pipe was made") {
    auto [a, b] = MakeMemoryStreamPair(io.get_executor());
    MemoryStreamControl control_a = a.control();
    auto ta = MakeTransport(std::move(a), "memory a");
    auto tb = MakeTransport(std::move(b), "memory b");
    MemoryFaults faults;
    faults.fail_write_after_bytes = 7;
    faults.error = asio::error::timed_out;
    control_a.SetFaults(faults);
    ta->Start(&ra);
    tb->Start(&rb);
    ta->Send(ByteSpan("0123456789"));
    REQUIRE(TryRunUntil(io, [&] { return ra.closes == 1 && rb.closes == 1; }));
    CHECK(rb.data == "0123456");
    CHECK(absl::StrContains(ra.status.message(), "memory a: write"));
    CHECK(absl::StrContains(ra.status.message(),
                            ErrorCodeT(asio::error::timed_out).message()));
    CHECK(control_a.stats().bytes_written == 7);
  }
  SECTION("a reset from the test") {
    auto [a, b] = MakeMemoryStreamPair(io.get_executor());
    MemoryStreamControl control_a = a.control();
    auto ta = MakeTransport(std::move(a), "memory a");
    auto tb = MakeTransport(std::move(b), "memory b");
    ta->Start(&ra);
    tb->Start(&rb);
    io.poll();
    control_a.Reset();
    REQUIRE(TryRunUntil(io, [&] { return ra.closes == 1 && rb.closes == 1; }));
    CHECK(GetErrorCode(rb.status) == ErrorCode::kConnectionLost);
    CHECK(
        absl::StrContains(rb.status.message(),
                          ErrorCodeT(asio::error::connection_reset).message()));
    CHECK(absl::StrContains(
        ra.status.message(),
        ErrorCodeT(asio::error::operation_aborted).message()));
    CHECK_FALSE(control_a.is_open());
  }
}

TEST_CASE("memory: a full buffer makes writes wait (backpressure)",
          "[memory]") {
  asio::io_context io;
  MemoryPipeOptions options;
  options.capacity_bytes = 16;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor(), options);
  const std::string data = Pattern(100);
  Op w1;
  a.async_write_some(asio::buffer(data), w1.Handler());
  REQUIRE(TryRunUntil(io, [&] { return w1.done; }));
  CHECK(w1.n == 16);
  Op w2;
  a.async_write_some(asio::buffer(data.data() + 16, 84), w2.Handler());
  io.poll();
  CHECK_FALSE(w2.done);  // full: the write waits for the reader
  CHECK(b.control().buffered_bytes() == 16);
  char buf[8];
  Op r1;
  b.async_read_some(asio::buffer(buf), r1.Handler());
  REQUIRE(TryRunUntil(io, [&] { return r1.done && w2.done; }));
  CHECK(r1.n == 8);
  CHECK(w2.n == 8);  // exactly the room the read made
  CHECK(b.control().buffered_bytes() == 16);

  // Through Transport: everything arrives, in capacity-sized reads.
  asio::io_context io2;
  auto [ta, tb] = MakeMemoryTransportPair(io2.get_executor(), options);
  Recorder ra, rb;
  ta->Start(&ra);
  tb->Start(&rb);
  const std::string big = Pattern(10000);
  ta->Send(ByteSpan(big));
  ta->CloseAfterFlush();
  REQUIRE(TryRunUntil(io2, [&] { return ra.closes == 1 && rb.closes == 1; }));
  CHECK(rb.data == big);
  CHECK(tb->counters().reads >= big.size() / 16);
  CHECK(ta->counters().writes == 1);  // one batch, many write_some calls
}

TEST_CASE("memory: Transport coalesces queued writes", "[memory]") {
  asio::io_context io;
  auto [ta, tb] = MakeMemoryTransportPair(io.get_executor());
  Recorder ra, rb;
  ta->Start(&ra);
  tb->Start(&rb);
  std::string expect;
  for (int i = 0; i < 1000; ++i) {
    const std::string chunk = "frame-" + std::to_string(i) + ";";
    expect += chunk;
    ta->Send(ByteSpan(chunk));
  }
  ta->CloseAfterFlush();
  REQUIRE(TryRunUntil(io, [&] { return ra.closes == 1 && rb.closes == 1; }));
  CHECK(rb.data == expect);
  CHECK(ta->counters().bytes_written == expect.size());
  CHECK(ta->counters().writes <= 3);
  CHECK(ra.status.ok());
}

TEST_CASE("memory: completions run on the handler's associated executor",
          "[memory]") {
  asio::io_context io;
  auto strand = asio::make_strand(io.get_executor());
  auto [a, b] = MakeMemoryStreamPair(io.get_executor());
  bool on_strand = false;
  bool done = false;
  a.async_write_some(
      asio::buffer("x", 1),
      asio::bind_executor(strand, [&](const ErrorCodeT& ec, size_t n) {
        on_strand = strand.running_in_this_thread();
        done = !ec && n == 1;
      }));
  CHECK_FALSE(done);
  REQUIRE(TryRunUntil(io, [&] { return done; }));
  CHECK(on_strand);
}

TEST_CASE("memory: any completion token works (use_future)", "[memory]") {
  asio::io_context io;
  auto [a, b] = MakeMemoryStreamPair(io.get_executor());
  std::future<size_t> written =
      a.async_write_some(asio::buffer("hello", 5), asio::use_future);
  char buf[8];
  std::future<size_t> read =
      b.async_read_some(asio::buffer(buf), asio::use_future);
  REQUIRE(TryRunUntil(io, [&] {
    return read.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }));
  CHECK(written.get() == 5);
  CHECK(read.get() == 5);
  CHECK(std::string(buf, 5) == "hello");
  // An error becomes the future's exception.
  a.control().Close();
  std::future<size_t> eof =
      b.async_read_some(asio::buffer(buf), asio::use_future);
  REQUIRE(TryRunUntil(io, [&] {
    return eof.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }));
  CHECK_THROWS_AS(eof.get(), boost::system::system_error);
}

TEST_CASE("memory: pending operations are destroyed with the io_context",
          "[memory]") {
  // Handlers own their transports (and a raw stream owns itself through
  // its pending read's handler): without the service's shutdown these
  // cycles would leak (LeakSanitizer in the asan build).
  Recorder ra, rb;
  {
    asio::io_context io;
    auto [ta, tb] = MakeMemoryTransportPair(io.get_executor());
    ta->Start(&ra);
    tb->Start(&rb);
    ta->Send(ByteSpan("pending"));
    io.poll();
    auto [a, b] = MakeMemoryStreamPair(io.get_executor());
    auto owned = std::make_shared<MemoryStream>(std::move(a));
    auto buf = std::make_shared<std::array<char, 4>>();
    owned->async_read_some(asio::buffer(*buf),
                           [owned, buf](const ErrorCodeT&, size_t) {});
    io.poll();
  }
  CHECK(rb.data == "pending");
  CHECK(ra.closes == 0);  // destroyed, not invoked
}

TEST_CASE("memory: two threads drive the two ends through strands",
          "[memory]") {
  asio::io_context io;
  MemoryPipeOptions options;
  options.max_write_bytes = 777;
  options.max_read_bytes = 501;
  options.capacity_bytes = 4096;
  // Not a structured binding: clang 14 cannot capture those in lambdas.
  auto pair = MakeMemoryStreamPair(io.get_executor(), options);
  MemoryStream& a = pair.first;
  MemoryStream& b = pair.second;
  auto strand_a = asio::make_strand(io.get_executor());
  auto strand_b = asio::make_strand(io.get_executor());
  const std::string data = Pattern(256 * 1024);
  std::string received;
  std::array<char, 1024> buf{};
  size_t sent = 0;
  std::promise<void> finished;
  std::atomic<int> ends_done{0};
  ErrorCodeT write_error, read_error;
  auto end_done = [&] {
    if (++ends_done == 2) finished.set_value();
  };

  std::function<void()> write_more = [&] {
    if (sent == data.size()) {
      ErrorCodeT ec;
      a.shutdown(MemoryStream::shutdown_send, ec);
      end_done();
      return;
    }
    a.async_write_some(
        asio::buffer(data.data() + sent, data.size() - sent),
        asio::bind_executor(strand_a, [&](const ErrorCodeT& ec, size_t n) {
          if (ec) {  // Catch2 is not thread-safe: check after the join
            write_error = ec;
            end_done();
            return;
          }
          sent += n;
          write_more();
        }));
  };
  std::function<void()> read_more = [&] {
    b.async_read_some(
        asio::buffer(buf),
        asio::bind_executor(strand_b, [&](const ErrorCodeT& ec, size_t n) {
          if (ec) {
            read_error = ec;
            end_done();
            return;
          }
          received.append(buf.data(), n);
          read_more();
        }));
  };
  asio::post(strand_a, write_more);
  asio::post(strand_b, read_more);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run(); });
  const bool ok = finished.get_future().wait_for(std::chrono::seconds(20)) ==
                  std::future_status::ready;
  if (!ok) io.stop();
  for (std::thread& t : threads) t.join();
  REQUIRE(ok);
  CHECK_FALSE(write_error);
  CHECK(read_error == asio::error::eof);
  CHECK(received == data);
}

}  // namespace
}  // namespace symwire
