// File: tests/transport/fault_proxy_test.cpp
// FaultProxy (symwire/testing/fault_proxy.hpp): every fault mode over real
// sockets (127.0.0.1, and Unix sockets in a temporary directory), between a
// client and an echo or sink server written here with plain Asio. Every
// wait is bounded (RunUntil) and fails the test on timeout.
#include "symwire/testing/fault_proxy.hpp"

#include <array>
#include <bit>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/write.hpp"

namespace symwire::testing {
namespace {

using Tcp = asio::ip::tcp;
using Unix = asio::local::stream_protocol;
using ErrorCode = boost::system::error_code;
using Clock = std::chrono::steady_clock;

// Bound of every wait: generous for a loaded 2-core VM under TSan; a
// passing run takes a small fraction of it.
constexpr auto kTimeLimit = std::chrono::seconds(8);

// RunUntil: runs `io` until `done()` holds; false when kTimeLimit passes
// first. One handler at a time, so `done()` is checked after each.
template <class Pred>
bool RunUntil(asio::io_context& io, Pred done) {
  const auto deadline = Clock::now() + kTimeLimit;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

// Number of bits in which two equally long strings differ.
uint64_t BitsDiffering(const std::string& a, const std::string& b) {
  uint64_t bits = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    bits += static_cast<uint64_t>(std::popcount(
        static_cast<unsigned>(static_cast<unsigned char>(a[i] ^ b[i]))));
  }
  return bits;
}

Tcp::endpoint Loopback() {
  return Tcp::endpoint(asio::ip::address_v4::loopback(), 0);
}

// A directory for Unix sockets, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "symwire-proxy-XXXXXX")
            .string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const {
    return (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

// TestServer: echoes (read, write it back, read again) or sinks (records)
// what each connection sends; on end of stream it half-closes in turn.
template <class Protocol>
class TestServer {
 public:
  enum class Mode { kEcho, kSink };
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io) {}
    typename Protocol::socket socket;
    std::array<char, 64 * 1024> buffer{};
    std::string received;
    size_t reads = 0;
    bool eof = false;
    ErrorCode error;
  };

  TestServer(asio::io_context& io, const typename Protocol::endpoint& ep,
             Mode mode)
      : io_(io), acceptor_(io, ep), mode_(mode) {
    Accept();
  }

  typename Protocol::endpoint endpoint() const {
    return acceptor_.local_endpoint();
  }
  const std::vector<std::shared_ptr<Conn>>& conns() const { return conns_; }

 private:
  void Accept() {
    auto conn = std::make_shared<Conn>(io_);
    acceptor_.async_accept(conn->socket, [this, conn](const ErrorCode& ec) {
      if (ec) return;
      conns_.push_back(conn);
      Read(conn);
      Accept();
    });
  }

  void Read(const std::shared_ptr<Conn>& conn) {
    conn->socket.async_read_some(
        asio::buffer(conn->buffer),
        [this, conn](const ErrorCode& ec, size_t n) {
          if (ec == asio::error::eof) {
            conn->eof = true;
            ErrorCode ignored;
            conn->socket.shutdown(Protocol::socket::shutdown_send, ignored);
            return;
          }
          if (ec) {
            conn->error = ec;
            return;
          }
          ++conn->reads;
          conn->received.append(conn->buffer.data(), n);
          if (mode_ == Mode::kSink) {
            Read(conn);
            return;
          }
          asio::async_write(conn->socket, asio::buffer(conn->buffer.data(), n),
                            [this, conn](const ErrorCode& e, size_t) {
                              if (e) {
                                conn->error = e;
                                return;
                              }
                              Read(conn);
                            });
        });
  }

  asio::io_context& io_;
  typename Protocol::acceptor acceptor_;
  Mode mode_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

// TestClient: connects, writes what Send() queued (one write per Send, in
// order), optionally half-closes after it, and reads until end of stream
// or an error.
template <class Protocol>
class TestClient {
 public:
  explicit TestClient(asio::io_context& io) : socket_(io) {}

  void Connect(const FaultProxy::Endpoint& ep) {
    socket_.async_connect(std::get<typename Protocol::endpoint>(ep),
                          [this](const ErrorCode& ec) {
                            if (ec) {
                              connect_error = ec;
                              read_error = ec;
                              read_done = true;
                              return;
                            }
                            connected_ = true;
                            Read();
                            WriteNext();
                          });
  }
  void Send(std::string bytes) {
    sent += bytes;
    outbox_.push_back(std::move(bytes));
    if (connected_) WriteNext();
  }
  void ShutdownSendWhenWritten() {
    shutdown_pending_ = true;
    if (connected_) WriteNext();
  }
  void Close() {
    ErrorCode ignored;
    socket_.close(ignored);
  }

  std::string sent;
  std::string received;
  size_t reads = 0;
  size_t writes = 0;
  bool read_done = false;
  ErrorCode read_error;  // eof when the peer closed gracefully
  ErrorCode write_error;
  ErrorCode connect_error;
  std::function<void(TestClient&)> on_data;

 private:
  void Read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [this](const ErrorCode& ec, size_t n) {
                              if (ec) {
                                read_error = ec;
                                read_done = true;
                                return;
                              }
                              ++reads;
                              received.append(buffer_.data(), n);
                              if (on_data) on_data(*this);
                              Read();
                            });
  }
  void WriteNext() {
    if (writing_ || write_error) return;
    if (outbox_.empty()) {
      if (shutdown_pending_) {
        shutdown_pending_ = false;
        ErrorCode ignored;
        socket_.shutdown(Protocol::socket::shutdown_send, ignored);
      }
      return;
    }
    writing_ = true;
    // deque::push_back keeps references to the other elements valid.
    asio::async_write(socket_, asio::buffer(outbox_.front()),
                      [this](const ErrorCode& ec, size_t) {
                        writing_ = false;
                        if (ec) {
                          write_error = ec;
                          return;
                        }
                        ++writes;
                        outbox_.pop_front();
                        WriteNext();
                      });
  }

  typename Protocol::socket socket_;
  std::array<char, 64 * 1024> buffer_{};
  std::deque<std::string> outbox_;
  bool connected_ = false;
  bool writing_ = false;
  bool shutdown_pending_ = false;
};

bool EndedAbruptly(const ErrorCode& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

// Echoes `data` through a proxy with `options` (disabled when `disable`)
// and checks that it arrives intact both ways, the half-close included.
void CheckTransparent(const FaultOptions& options, bool disable) {
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  FaultProxy proxy(io.get_executor(), server.endpoint(), options);
  if (disable) proxy.SetEnabled(false);
  TestClient<Tcp> client(io);
  const std::string data = RandomBytes(1 << 20, 11);
  client.Connect(proxy.endpoint());
  client.Send(data);
  client.ShutdownSendWhenWritten();
  REQUIRE(RunUntil(io, [&] { return client.read_done; }));
  CHECK(client.read_error == asio::error::eof);
  CHECK(client.received.size() == data.size());
  CHECK((client.received == data));
  REQUIRE(
      RunUntil(io, [&] { return proxy.counters().connections_active == 0; }));
  const FaultCounters c = proxy.counters();
  CHECK(c.connections_accepted == 1);
  CHECK(c.bytes_up == data.size());
  CHECK(c.bytes_down == data.size());
  CHECK(c.kills == 0);
  CHECK(c.errors == 0);
  CHECK(c.stalls == 0);
  CHECK(c.flips == 0);
  CHECK(c.splits == 0);
  CHECK(c.bytes_dropped == 0);
}

TEST_CASE("fault proxy: transparent by default, 1 MiB each way", "[proxy]") {
  CheckTransparent(FaultOptions{}, /*disable=*/false);
}

TEST_CASE("fault proxy: SetEnabled(false) makes every fault stop", "[proxy]") {
  FaultOptions all;
  all.kill_min_bytes = 10;
  all.kill_max_bytes = 20;
  all.split_max_bytes = 3;
  all.stall_pct = 100;
  all.flip_per_million = 1000000;
  CheckTransparent(all, /*disable=*/true);
}

TEST_CASE("fault proxy: a switch-off disarms the kill of open connections",
          "[proxy][issue11]") {
  // Issue #11: the budget of a connection opened while injecting stayed
  // armed through SetEnabled(false) and cut the connection once injection
  // was switched on again.
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  FaultOptions options;
  options.kill_min_bytes = 1000;
  options.kill_max_bytes = 1000;
  FaultProxy proxy(io.get_executor(), server.endpoint(), options);
  TestClient<Tcp> client(io);
  client.Connect(proxy.endpoint());
  client.Send(std::string(100, 'a'));  // 200 of the 1000 bytes (echoed)
  REQUIRE(RunUntil(io, [&] { return client.received.size() == 100; }));
  proxy.SetEnabled(false);
  client.Send(std::string(100, 'b'));
  REQUIRE(RunUntil(io, [&] { return client.received.size() == 200; }));
  proxy.SetEnabled(true);
  const std::string more = RandomBytes(64 * 1024, 5);
  client.Send(more);
  client.ShutdownSendWhenWritten();
  REQUIRE(RunUntil(io, [&] { return client.read_done; }));
  CHECK(client.read_error == asio::error::eof);
  CHECK(client.received.size() == 200 + more.size());
  CHECK(proxy.counters().kills == 0);
  // A connection opened now gets a budget, and is cut.
  TestClient<Tcp> second(io);
  second.Connect(proxy.endpoint());
  second.Send(RandomBytes(64 * 1024, 6));
  REQUIRE(RunUntil(io, [&] { return second.read_done; }));
  CHECK(proxy.counters().kills == 1);
}

TEST_CASE("fault proxy: split mode delivers the same bytes in many reads",
          "[proxy]") {
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kSink);
  FaultOptions options;
  options.split_max_bytes = 16;
  FaultProxy proxy(io.get_executor(), server.endpoint(), options);
  TestClient<Tcp> client(io);
  const std::string data = RandomBytes(64 * 1024, 2);
  client.Connect(proxy.endpoint());
  client.Send(data);  // one write
  client.ShutdownSendWhenWritten();
  REQUIRE(RunUntil(
      io, [&] { return !server.conns().empty() && server.conns()[0]->eof; }));
  const auto& conn = *server.conns()[0];
  CHECK((conn.received == data));
  CHECK(client.writes == 1);
  // About 64 KiB / 8.5 = 7700 pieces; without splitting the server reads
  // it in a handful of reads.
  CHECK(conn.reads > 100);
  CHECK(proxy.counters().splits > 1000);
  CHECK(proxy.counters().bytes_up == data.size());
}

// Ping-pongs 100-byte messages through a killing proxy until the client's
// connection ends; returns the bytes the proxy forwarded.
uint64_t PingPongUntilKilled(bool with_reset) {
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  FaultOptions options;
  options.seed = 42;
  options.kill_min_bytes = 1000;
  options.kill_max_bytes = 3000;
  options.kill_with_reset = with_reset;
  FaultProxy proxy(io.get_executor(), server.endpoint(), options);
  TestClient<Tcp> client(io);
  uint64_t message = 0;
  const auto next = [&](TestClient<Tcp>& c) {
    c.Send(RandomBytes(100, ++message));
  };
  client.on_data = [&](TestClient<Tcp>& c) {
    if (c.received.size() == c.sent.size()) next(c);
  };
  client.Connect(proxy.endpoint());
  next(client);
  REQUIRE(RunUntil(io, [&] {
    return client.read_done && proxy.counters().connections_active == 0;
  }));
  if (with_reset) {
    CHECK(client.read_error == asio::error::connection_reset);
  } else {
    CHECK(EndedAbruptly(client.read_error));
  }
  const FaultCounters c = proxy.counters();
  CHECK(c.kills == 1);
  const uint64_t forwarded = c.bytes_up + c.bytes_down;
  CHECK(forwarded >= options.kill_min_bytes);
  CHECK(forwarded <= options.kill_max_bytes);
  // What the client got is an intact prefix of what it sent.
  CHECK(client.received.size() <= c.bytes_down);
  CHECK(client.sent.compare(0, client.received.size(), client.received) == 0);
  return forwarded;
}

TEST_CASE("fault proxy: kill mode cuts within the byte range", "[proxy]") {
  SECTION("close: the client sees end of stream or a reset") {
    const uint64_t first = PingPongUntilKilled(/*with_reset=*/false);
    // The kill point is drawn from the seed and the connection number.
    CHECK(PingPongUntilKilled(/*with_reset=*/false) == first);
  }
  SECTION("with_reset: the client sees a reset") {
    PingPongUntilKilled(/*with_reset=*/true);
  }
  SECTION("bulk both ways at once: exact cut, no deadlock") {
    const auto run = [] {
      asio::io_context io;
      TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
      FaultOptions options;
      options.seed = 7;
      options.kill_min_bytes = 100'000;
      options.kill_max_bytes = 300'000;
      FaultProxy proxy(io.get_executor(), server.endpoint(), options);
      TestClient<Tcp> client(io);
      client.Connect(proxy.endpoint());
      client.Send(RandomBytes(1 << 20, 3));
      REQUIRE(RunUntil(io, [&] {
        return client.read_done && proxy.counters().connections_active == 0;
      }));
      CHECK(EndedAbruptly(client.read_error));
      const FaultCounters c = proxy.counters();
      CHECK(c.kills == 1);
      CHECK(c.bytes_up + c.bytes_down >= options.kill_min_bytes);
      CHECK(c.bytes_up + c.bytes_down <= options.kill_max_bytes);
      CHECK((client.sent.compare(0, client.received.size(), client.received) ==
             0));
      return c.bytes_up + c.bytes_down;
    };
    // Every byte up to the kill point is written before the cut, so the
    // count is exact and repeats with the seed despite the timing.
    CHECK(run() == run());
  }
}

TEST_CASE("fault proxy: stall mode delays but delivers", "[proxy]") {
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  FaultOptions options;
  options.stall_pct = 100;
  options.stall_min = std::chrono::milliseconds(20);
  options.stall_max = std::chrono::milliseconds(30);
  FaultProxy proxy(io.get_executor(), server.endpoint(), options);
  TestClient<Tcp> client(io);
  constexpr int kMessages = 5;
  int message = 0;
  client.on_data = [&](TestClient<Tcp>& c) {
    if (c.received.size() != c.sent.size()) return;
    if (++message < kMessages) {
      c.Send("message " + std::to_string(message));
    } else {
      c.ShutdownSendWhenWritten();
    }
  };
  const auto start = Clock::now();
  client.Connect(proxy.endpoint());
  client.Send("message 0");
  REQUIRE(RunUntil(io, [&] { return client.read_done; }));
  const auto elapsed = Clock::now() - start;
  CHECK(client.read_error == asio::error::eof);
  CHECK(message == kMessages);
  CHECK(client.received == client.sent);
  // Every message waited at least 20 ms on the way up and on the way down.
  const FaultCounters c = proxy.counters();
  CHECK(c.stalls >= 2 * kMessages);
  CHECK(elapsed >= 2 * kMessages * options.stall_min);
  CHECK(c.errors == 0);
}

TEST_CASE("fault proxy: flip mode flips counted bits, length unchanged",
          "[proxy]") {
  const std::string data = RandomBytes(1 << 20, 5);
  const auto run = [&data] {
    asio::io_context io;
    TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kSink);
    FaultOptions options;
    options.seed = 99;
    options.flip_per_million = 2000;  // about 2100 flips in 1 MiB
    FaultProxy proxy(io.get_executor(), server.endpoint(), options);
    TestClient<Tcp> client(io);
    client.Connect(proxy.endpoint());
    client.Send(data);
    client.ShutdownSendWhenWritten();
    REQUIRE(RunUntil(
        io, [&] { return !server.conns().empty() && server.conns()[0]->eof; }));
    const std::string received = server.conns()[0]->received;
    const FaultCounters c = proxy.counters();
    CHECK(received.size() == data.size());
    CHECK(c.bytes_up == data.size());
    // At most one flip per byte, so every flip shows as one differing bit.
    CHECK(BitsDiffering(received, data) == c.flips);
    CHECK(c.flips > 1500);
    CHECK(c.flips < 2700);
    return received;
  };
  // Flip positions depend on the stream offset and the seed only, not on
  // how the reads happened to split the stream.
  CHECK((run() == run()));
}

TEST_CASE("fault proxy: KillAll cuts every connection, Stop ends the proxy",
          "[proxy]") {
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  FaultProxy proxy(io.get_executor(), server.endpoint());
  std::vector<std::unique_ptr<TestClient<Tcp>>> clients;
  const auto connect_and_ping = [&] {
    clients.push_back(std::make_unique<TestClient<Tcp>>(io));
    TestClient<Tcp>& client = *clients.back();
    client.Connect(proxy.endpoint());
    client.Send("ping");
    REQUIRE(RunUntil(io, [&] { return client.received == "ping"; }));
  };
  for (int i = 0; i < 3; ++i) connect_and_ping();
  CHECK(proxy.counters().connections_active == 3);

  proxy.KillAll();
  REQUIRE(RunUntil(io, [&] {
    for (const auto& c : clients) {
      if (!c->read_done) return false;
    }
    return true;
  }));
  for (const auto& c : clients) CHECK(EndedAbruptly(c->read_error));
  CHECK(proxy.counters().kills == 3);
  CHECK(proxy.counters().connections_active == 0);

  // Still accepting after KillAll.
  connect_and_ping();
  proxy.Stop();
  REQUIRE(RunUntil(io, [&] { return clients.back()->read_done; }));
  CHECK(EndedAbruptly(clients.back()->read_error));
  CHECK(proxy.counters().kills == 3);  // Stop is not a kill
  CHECK(proxy.counters().connections_active == 0);
  TestClient<Tcp> late(io);
  late.Connect(proxy.endpoint());
  REQUIRE(RunUntil(io, [&] { return late.read_done; }));
  CHECK(late.connect_error == asio::error::connection_refused);
  CHECK(proxy.counters().connections_accepted == 4);
}

TEST_CASE("fault proxy: max_connections holds clients in the backlog",
          "[proxy]") {
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  FaultOptions options;
  options.max_connections = 1;
  FaultProxy proxy(io.get_executor(), server.endpoint(), options);
  TestClient<Tcp> first(io);
  TestClient<Tcp> second(io);
  first.Connect(proxy.endpoint());
  first.Send("one");
  REQUIRE(RunUntil(io, [&] { return first.received == "one"; }));
  second.Connect(proxy.endpoint());  // the kernel completes the handshake
  second.Send("two");
  io.restart();
  io.run_for(std::chrono::milliseconds(100));
  CHECK(second.received.empty());
  CHECK(proxy.counters().connections_accepted == 1);
  first.ShutdownSendWhenWritten();  // ends the first pair gracefully
  REQUIRE(RunUntil(io, [&] { return second.received == "two"; }));
  CHECK(first.read_error == asio::error::eof);
  CHECK(proxy.counters().connections_accepted == 2);
}

TEST_CASE("fault proxy: a failed upstream dial closes the client", "[proxy]") {
  asio::io_context io;
  Tcp::endpoint nobody;
  {
    Tcp::acceptor taken(io, Loopback());
    nobody = taken.local_endpoint();
  }  // closed: connecting to it is refused
  FaultProxy proxy(io.get_executor(), nobody);
  TestClient<Tcp> client(io);
  client.Connect(proxy.endpoint());
  REQUIRE(RunUntil(io, [&] { return client.read_done; }));
  CHECK(EndedAbruptly(client.read_error));
  CHECK(proxy.counters().connect_failures == 1);
  CHECK(proxy.counters().connections_active == 0);
}

TEST_CASE("fault proxy: tcp_listen_port sets the port it listens on",
          "[proxy]") {
  asio::io_context io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  uint16_t port = 0;
  {
    Tcp::acceptor taken(io, Loopback());
    port = taken.local_endpoint().port();
  }  // closed: free again
  FaultOptions options;
  options.tcp_listen_port = port;
  FaultProxy proxy(io.get_executor(), server.endpoint(), options);
  const Tcp::endpoint listening = std::get<Tcp::endpoint>(proxy.endpoint());
  CHECK(listening.port() == port);
  CHECK(listening.address() ==
        asio::ip::address(asio::ip::address_v4::loopback()));
  TestClient<Tcp> client(io);
  client.Connect(proxy.endpoint());
  client.Send("hello");
  client.ShutdownSendWhenWritten();
  REQUIRE(RunUntil(io, [&] { return client.read_done; }));
  CHECK(client.received == "hello");
}

TEST_CASE("fault proxy: Unix-socket upstream, split and stalls", "[proxy]") {
  TempDir dir;
  asio::io_context io;
  TestServer<Unix> server(io, Unix::endpoint(dir.File("server.sock")),
                          TestServer<Unix>::Mode::kEcho);
  FaultOptions options;
  options.split_max_bytes = 7;
  options.stall_pct = 5;
  options.stall_min = std::chrono::milliseconds(1);
  options.stall_max = std::chrono::milliseconds(3);
  // The clients outlive every run of `io` (their handlers point to them).
  TestClient<Unix> client(io);
  TestClient<Unix> client2(io);
  std::string listen_path;
  {
    FaultProxy proxy(io.get_executor(), server.endpoint(), options);
    REQUIRE(std::holds_alternative<Unix::endpoint>(proxy.endpoint()));
    listen_path = std::get<Unix::endpoint>(proxy.endpoint()).path();
    CHECK(listen_path.rfind(dir.File("server.sock.proxy"), 0) == 0);
    CHECK(std::filesystem::is_socket(listen_path));
    const std::string data = RandomBytes(32 * 1024, 8);
    client.Connect(proxy.endpoint());
    client.Send(data);
    client.ShutdownSendWhenWritten();
    REQUIRE(RunUntil(io, [&] { return client.read_done; }));
    CHECK(client.read_error == asio::error::eof);
    CHECK((client.received == data));
    const FaultCounters c = proxy.counters();
    CHECK(c.splits > 100);
    CHECK(c.stalls > 0);
    CHECK(c.errors == 0);
    proxy.Stop();
    REQUIRE(
        RunUntil(io, [&] { return !std::filesystem::exists(listen_path); }));
  }

  // An explicit listen path; destroying the proxy stops it too.
  options = FaultOptions{};
  options.unix_listen_path = dir.File("explicit.sock");
  {
    FaultProxy proxy(io.get_executor(), server.endpoint(), options);
    CHECK(std::get<Unix::endpoint>(proxy.endpoint()).path() ==
          options.unix_listen_path);
    client2.Connect(proxy.endpoint());
    client2.Send("over unix");
    REQUIRE(RunUntil(io, [&] { return client2.received == "over unix"; }));
  }
  io.restart();
  io.poll();
  CHECK_FALSE(std::filesystem::exists(options.unix_listen_path));
}

TEST_CASE("fault proxy: runs on its own thread and io_context", "[proxy]") {
  asio::io_context io;
  asio::io_context proxy_io;
  TestServer<Tcp> server(io, Loopback(), TestServer<Tcp>::Mode::kEcho);
  FaultOptions options;
  options.split_max_bytes = 512;
  FaultProxy proxy(proxy_io.get_executor(), server.endpoint(), options);
  auto work = asio::make_work_guard(proxy_io);
  std::thread proxy_thread([&proxy_io] { proxy_io.run(); });
  TestClient<Tcp> client(io);
  const std::string data = RandomBytes(256 * 1024, 4);
  client.Connect(proxy.endpoint());
  client.Send(data);
  client.ShutdownSendWhenWritten();
  uint64_t seen_up = 0;
  const bool done = RunUntil(io, [&] {
    // Counters are safe to read from this thread while the proxy runs.
    const uint64_t up = proxy.counters().bytes_up;
    CHECK(up >= seen_up);
    seen_up = up;
    return client.read_done;
  });
  proxy.Stop();  // from a foreign thread: dispatched to proxy_io
  work.reset();
  proxy_thread.join();  // proxy_io runs out of work once stopped
  REQUIRE(done);
  CHECK(client.read_error == asio::error::eof);
  CHECK((client.received == data));
  const FaultCounters c = proxy.counters();
  CHECK(c.bytes_up == data.size());
  CHECK(c.bytes_down == data.size());
  CHECK(c.connections_active == 0);
}

}  // namespace
}  // namespace symwire::testing
