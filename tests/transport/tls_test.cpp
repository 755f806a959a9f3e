// File: tests/transport/tls_test.cpp
// The TLS transport (tls.hpp) over real sockets on 127.0.0.1 with the
// in-process test PKI (symwire/testing/test_certs.hpp): handshakes and
// bytes both ways, certificate, host-name and IP checks, mutual TLS,
// handshake timeouts, close_notify on a graceful close, the dialer and
// the server upgrade, and context errors. Every test runs its io_context
// with a time bound and fails past it.
#include "symwire/transport/tls.hpp"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/use_future.hpp"
#include "boost/asio/write.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/testing/test_certs.hpp"

namespace symwire {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::TestCerts;
using tcp = asio::ip::tcp;
using Context = std::shared_ptr<asio::ssl::context>;

struct Recorder final : Transport::Sink {
  std::string data;
  int closes = 0;
  absl::Status status;
  std::function<void(Transport&, absl::Span<const std::byte>)> on_data;
  void OnTransportData(Transport& t, absl::Span<const std::byte> b) override {
    data.append(reinterpret_cast<const char*>(b.data()), b.size());
    if (on_data) on_data(t, b);
  }
  void OnTransportClosed(Transport&, const absl::Status& s) override {
    ++closes;
    status = s;
  }
};

absl::Span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Runs `io` until `done()` holds; false if `limit` passes first.
bool RunUntil(asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds limit = 5000ms) {
  const Clock::time_point deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    io.restart();
    io.run_for(5ms);
    if (io.stopped()) std::this_thread::sleep_for(1ms);
  }
  return true;
}

Context ServerContext(TlsServerOptions o = {}) {
  if (o.cert_pem.empty() && o.cert_file.empty()) {
    o.cert_pem = TestCerts().server_cert_pem;
    o.key_pem = TestCerts().server_key_pem;
  }
  absl::StatusOr<Context> ctx = MakeTlsServerContext(o);
  INFO(ctx.status().ToString());
  REQUIRE(ctx.ok());
  return *ctx;
}

Context ClientContext(TlsClientOptions o = {}) {
  if (o.ca_pem.empty() && o.ca_file.empty()) o.ca_pem = TestCerts().ca_cert_pem;
  absl::StatusOr<Context> ctx = MakeTlsClientContext(o);
  INFO(ctx.status().ToString());
  REQUIRE(ctx.ok());
  return *ctx;
}

tcp::acceptor Listen(asio::io_context& io) {
  return tcp::acceptor(io,
                       tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
}

// Both ends of one connection after their handshakes.
struct Pair {
  std::optional<DialResult> client;
  std::optional<DialResult> server;
  bool done() const { return client.has_value() && server.has_value(); }
};

// Accepts one connection on `acceptor`, connects to it, and runs the
// server and client handshakes; run the io_context until pair.done().
void StartPair(asio::io_context& io, tcp::acceptor& acceptor,
               Context server_ctx, Context client_ctx, std::string name,
               Pair& pair, std::chrono::milliseconds timeout = 5000ms) {
  acceptor.async_accept(
      [&pair, server_ctx, timeout](const boost::system::error_code& ec,
                                   tcp::socket socket) {
        REQUIRE_FALSE(ec);
        AsyncTlsServerHandshake(
            std::move(socket), server_ctx, timeout, TransportOptions{},
            [&pair](DialResult r) { pair.server = std::move(r); });
      });
  auto socket = std::make_shared<tcp::socket>(io);
  socket->async_connect(
      acceptor.local_endpoint(), [&pair, socket, client_ctx, name, timeout](
                                     const boost::system::error_code& ec) {
        REQUIRE_FALSE(ec);
        AsyncTlsClientHandshake(
            std::move(*socket), client_ctx, name, timeout, TransportOptions{},
            [&pair](DialResult r) { pair.client = std::move(r); });
      });
}

// Sends `message` from `from` and waits until `to_rec` has it all.
void SendAndExpect(asio::io_context& io, Transport& from, Recorder& to_rec,
                   const std::string& message) {
  const size_t before = to_rec.data.size();
  from.Send(Bytes(message));
  REQUIRE(RunUntil(
      io, [&] { return to_rec.data.size() >= before + message.size(); }));
  CHECK(to_rec.data.substr(before) == message);
}

std::string StatusText(const std::optional<DialResult>& r) {
  if (!r.has_value()) return "(no result)";
  return r->status().ToString();
}

// The PKI is generated once per process with P-256 keys, which take
// microseconds where RSA keys take up to seconds; checked by key type, not by
// a timed assertion (these machines are shared and noisy).
TEST_CASE("tls: test certificates use P-256 keys", "[tls]") {
  const testing::TestCertificates& c = TestCerts();
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(c.server_key_pem.data(),
                        static_cast<int>(c.server_key_pem.size())),
        &BIO_free);
    REQUIRE(bio != nullptr);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
        &EVP_PKEY_free);
    REQUIRE(key != nullptr);
    CHECK(EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_EC);
    CHECK(EVP_PKEY_get_bits(key.get()) == 256);
  }
  CHECK(absl::StartsWith(c.ca_cert_pem, "-----BEGIN CERTIFICATE-----"));
  CHECK(absl::StartsWith(c.server_key_pem, "-----BEGIN PRIVATE KEY-----"));
  CHECK(c.wrong_ca_cert_pem != c.ca_cert_pem);
}

TEST_CASE("tls: handshake, bytes both ways, close_notify on graceful close",
          "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  Pair pair;
  StartPair(io, acceptor, ServerContext(), ClientContext(), "localhost", pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  INFO("client: " << StatusText(pair.client));
  INFO("server: " << StatusText(pair.server));
  REQUIRE(pair.client->ok());
  REQUIRE(pair.server->ok());
  std::shared_ptr<Transport> client = **pair.client;
  std::shared_ptr<Transport> server = **pair.server;
  CHECK(absl::StartsWith(client->description(), "tls 127.0.0.1:"));
  CHECK(absl::StartsWith(server->description(), "tls 127.0.0.1:"));

  Recorder rc, rs;
  // The server echoes everything back.
  rs.on_data = [](Transport& t, absl::Span<const std::byte> b) { t.Send(b); };
  client->Start(&rc);
  server->Start(&rs);
  SendAndExpect(io, *client, rc, "ping");
  CHECK(rs.data == "ping");
  // Larger than a TLS record (16 KiB) and the read buffer: many records.
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + static_cast<int>(i % 26));
  }
  SendAndExpect(io, *client, rc, big);
  CHECK(rs.data.size() == 4 + big.size());
  SendAndExpect(io, *server, rc,
                "from the server");  // the client does not echo

  // A graceful close sends close_notify: the server reads a clean end of
  // stream at once and closes; the client's linger then ends well before
  // its 10 s bound.
  const Clock::time_point start = Clock::now();
  client->CloseAfterFlush(10000ms);
  REQUIRE(RunUntil(io, [&] { return rc.closes == 1 && rs.closes == 1; }));
  CHECK(Clock::now() - start < 2s);
  CHECK(rc.status.ok());
  CHECK(GetErrorCode(rs.status) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(rs.status.message(), "closed by peer"));
  CHECK_FALSE(client->is_open());
  CHECK_FALSE(server->is_open());
}

TEST_CASE("tls: Close() closes at once without waiting for the peer", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  Pair pair;
  StartPair(io, acceptor, ServerContext(), ClientContext(), "localhost", pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  REQUIRE(pair.client->ok());
  REQUIRE(pair.server->ok());
  Recorder rc, rs;
  (**pair.client)->Start(&rc);
  (**pair.server)->Start(&rs);
  (**pair.client)->Close(absl::CancelledError("test"));
  CHECK(rc.closes == 1);  // reported synchronously
  REQUIRE(RunUntil(io, [&] { return rs.closes == 1; }));
  CHECK(GetErrorCode(rs.status) == ErrorCode::kConnectionLost);
}

TEST_CASE("tls: a server certificate from an unknown CA is rejected", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  TlsClientOptions o;
  o.ca_pem = TestCerts().wrong_ca_cert_pem;
  Pair pair;
  StartPair(io, acceptor, ServerContext(), ClientContext(o), "localhost", pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  INFO("client: " << StatusText(pair.client));
  INFO("server: " << StatusText(pair.server));
  REQUIRE_FALSE(pair.client->ok());
  const absl::Status& c = pair.client->status();
  CHECK(c.code() == absl::StatusCode::kUnauthenticated);
  CHECK(GetErrorCode(c) == ErrorCode::kUnauthenticated);
  CHECK(absl::StartsWith(c.message(), "tls handshake with 127.0.0.1:"));
  CHECK(absl::StrContains(
      c.message(),
      "failed: certificate verify failed (unable to get local issuer "
      "certificate)"));
  // The server learns it from the client's alert.
  REQUIRE_FALSE(pair.server->ok());
  CHECK(GetErrorCode(pair.server->status()) == ErrorCode::kUnauthenticated);
  CHECK(absl::StrContains(pair.server->status().message(), "unknown ca"));
}

TEST_CASE("tls: the server chain's self-signed root must be trusted", "[tls]") {
  // The server sends its CA too; the client trusts only the wrong CA.
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  TlsServerOptions so;
  so.cert_pem = TestCerts().server_cert_pem + TestCerts().ca_cert_pem;
  so.key_pem = TestCerts().server_key_pem;
  TlsClientOptions co;
  co.ca_pem = TestCerts().wrong_ca_cert_pem;
  Pair pair;
  StartPair(io, acceptor, ServerContext(so), ClientContext(co), "localhost",
            pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  INFO("client: " << StatusText(pair.client));
  REQUIRE_FALSE(pair.client->ok());
  CHECK(absl::StrContains(pair.client->status().message(),
                          "certificate verify failed (self-signed "
                          "certificate in certificate chain)"));
}

TEST_CASE("tls: a certificate for another host name is rejected", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  Pair pair;
  StartPair(io, acceptor, ServerContext(), ClientContext(), "example.com",
            pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  INFO("client: " << StatusText(pair.client));
  REQUIRE_FALSE(pair.client->ok());
  CHECK(GetErrorCode(pair.client->status()) == ErrorCode::kUnauthenticated);
  CHECK(absl::StrContains(
      pair.client->status().message(),
      "certificate verify failed (hostname mismatch: expected example.com)"));
  CHECK_FALSE(pair.server->ok());
}

TEST_CASE("tls: an IP literal is checked against the IP subjectAltName",
          "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  Pair pair;
  std::string name;
  bool accept = true;
  SECTION("127.0.0.1 is in the certificate") { name = "127.0.0.1"; }
  SECTION("an empty name means the peer's address") { name = ""; }
  SECTION("127.0.0.2 is not") {
    name = "127.0.0.2";
    accept = false;
  }
  StartPair(io, acceptor, ServerContext(), ClientContext(), name, pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  INFO("client: " << StatusText(pair.client));
  if (accept) {
    CHECK(pair.client->ok());
    CHECK(pair.server->ok());
  } else {
    REQUIRE_FALSE(pair.client->ok());
    CHECK(absl::StrContains(
        pair.client->status().message(),
        "certificate verify failed (IP address mismatch: expected "
        "127.0.0.2)"));
  }
}

TEST_CASE("tls: the server refuses TLS 1.1", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  Context old = ClientContext();
  // A client that offers TLS 1.1 only (security level 0 allows it).
  SSL_CTX_set_security_level(old->native_handle(), 0);
  REQUIRE(SSL_CTX_set_min_proto_version(old->native_handle(), TLS1_1_VERSION) ==
          1);
  REQUIRE(SSL_CTX_set_max_proto_version(old->native_handle(), TLS1_1_VERSION) ==
          1);
  Pair pair;
  StartPair(io, acceptor, ServerContext(), old, "localhost", pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  INFO("client: " << StatusText(pair.client));
  INFO("server: " << StatusText(pair.server));
  CHECK_FALSE(pair.client->ok());
  REQUIRE_FALSE(pair.server->ok());
  CHECK(GetErrorCode(pair.server->status()) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(pair.server->status().message(),
                          "unsupported protocol"));
}

TEST_CASE("tls: verification can be turned off explicitly", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  TlsClientOptions o;
  o.ca_pem = TestCerts().wrong_ca_cert_pem;
  o.verify_peer = false;
  Pair pair;
  StartPair(io, acceptor, ServerContext(), ClientContext(o), "example.com",
            pair);
  REQUIRE(RunUntil(io, [&] { return pair.done(); }));
  CHECK(pair.client->ok());
  CHECK(pair.server->ok());
}

TEST_CASE("tls: mutual TLS", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  TlsServerOptions so;
  so.cert_pem = TestCerts().server_cert_pem;
  so.key_pem = TestCerts().server_key_pem;
  so.require_client_cert = true;
  so.client_ca_pem = TestCerts().ca_cert_pem;
  TlsClientOptions co;

  SECTION("a client certificate signed by the client CA is accepted") {
    co.cert_pem = TestCerts().client_cert_pem;
    co.key_pem = TestCerts().client_key_pem;
    Pair pair;
    StartPair(io, acceptor, ServerContext(so), ClientContext(co), "localhost",
              pair);
    REQUIRE(RunUntil(io, [&] { return pair.done(); }));
    INFO("client: " << StatusText(pair.client));
    INFO("server: " << StatusText(pair.server));
    REQUIRE(pair.client->ok());
    REQUIRE(pair.server->ok());
    Recorder rc, rs;
    (**pair.client)->Start(&rc);
    (**pair.server)->Start(&rs);
    SendAndExpect(io, ***pair.client, rs, "hello");
    SendAndExpect(io, ***pair.server, rc, "welcome");
    (**pair.client)->Close();
    (**pair.server)->Close();
  }

  SECTION("a client without a certificate is rejected") {
    Pair pair;
    StartPair(io, acceptor, ServerContext(so), ClientContext(co), "localhost",
              pair);
    REQUIRE(RunUntil(io, [&] { return pair.done(); }));
    INFO("client: " << StatusText(pair.client));
    INFO("server: " << StatusText(pair.server));
    REQUIRE_FALSE(pair.server->ok());
    CHECK(GetErrorCode(pair.server->status()) == ErrorCode::kUnauthenticated);
    CHECK(absl::StrContains(pair.server->status().message(),
                            "peer did not return a certificate"));
    if (pair.client->ok()) {
      // TLS 1.3: the client finished its handshake before the server
      // judged its (empty) certificate; the alert ends its first read.
      Recorder rc;
      (**pair.client)->Start(&rc);
      REQUIRE(RunUntil(io, [&] { return rc.closes == 1; }));
      CHECK(GetErrorCode(rc.status) == ErrorCode::kConnectionLost);
      CHECK(absl::StrContains(rc.status.message(), "certificate required"));
    } else {
      CHECK(GetErrorCode(pair.client->status()) == ErrorCode::kUnauthenticated);
    }
  }

  SECTION("a client certificate from another CA is rejected") {
    co.cert_pem = TestCerts().wrong_client_cert_pem;
    co.key_pem = TestCerts().wrong_client_key_pem;
    Pair pair;
    StartPair(io, acceptor, ServerContext(so), ClientContext(co), "localhost",
              pair);
    REQUIRE(RunUntil(io, [&] { return pair.done(); }));
    INFO("server: " << StatusText(pair.server));
    REQUIRE_FALSE(pair.server->ok());
    CHECK(GetErrorCode(pair.server->status()) == ErrorCode::kUnauthenticated);
    CHECK(absl::StrContains(pair.server->status().message(),
                            "certificate verify failed ("));
    if (pair.client->ok()) (**pair.client)->Close();
  }
}

TEST_CASE("tls: a silent server makes the client handshake time out", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  tcp::socket silent(io);  // accepted, never read from or written to
  acceptor.async_accept(
      silent, [](const boost::system::error_code& ec) { REQUIRE_FALSE(ec); });
  tcp::socket socket(io);
  socket.connect(acceptor.local_endpoint());
  std::optional<DialResult> result;
  const Clock::time_point start = Clock::now();
  AsyncTlsClientHandshake(std::move(socket), ClientContext(), "localhost",
                          200ms, TransportOptions{},
                          [&](DialResult r) { result = std::move(r); });
  REQUIRE(RunUntil(io, [&] { return result.has_value(); }));
  const auto took = Clock::now() - start;
  INFO("client: " << StatusText(result));
  REQUIRE_FALSE(result->ok());
  CHECK(result->status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(GetErrorCode(result->status()) == ErrorCode::kHandshakeTimeout);
  CHECK(absl::StrContains(result->status().message(),
                          "tls handshake with 127.0.0.1:"));
  CHECK(
      absl::StrContains(result->status().message(), "timed out after 200 ms"));
  CHECK(took >= 190ms);
  CHECK(took < 3s);
}

TEST_CASE("tls: a silent client makes the server handshake time out", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  std::optional<DialResult> result;
  // The accepted socket goes through TlsUpgrade, as Server::ListenTcp
  // would do it.
  auto upgrade = TlsUpgrade(ServerContext(), 150ms);
  acceptor.async_accept(
      [&](const boost::system::error_code& ec, tcp::socket s) {
        REQUIRE_FALSE(ec);
        upgrade(std::move(s), [&](DialResult r) { result = std::move(r); });
      });
  tcp::socket silent(io);
  silent.connect(acceptor.local_endpoint());
  REQUIRE(RunUntil(io, [&] { return result.has_value(); }));
  REQUIRE_FALSE(result->ok());
  CHECK(GetErrorCode(result->status()) == ErrorCode::kHandshakeTimeout);
  CHECK(
      absl::StrContains(result->status().message(), "timed out after 150 ms"));
}

TEST_CASE("tls: a peer that closes during the handshake", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  acceptor.async_accept([](const boost::system::error_code& ec, tcp::socket s) {
    REQUIRE_FALSE(ec);
    s.close();  // closes before answering the ClientHello
  });
  tcp::socket socket(io);
  socket.connect(acceptor.local_endpoint());
  std::optional<DialResult> result;
  AsyncTlsClientHandshake(std::move(socket), ClientContext(), "localhost",
                          [&](DialResult r) { result = std::move(r); });
  REQUIRE(RunUntil(io, [&] { return result.has_value(); }));
  INFO("client: " << StatusText(result));
  REQUIRE_FALSE(result->ok());
  CHECK(GetErrorCode(result->status()) == ErrorCode::kConnectionLost);
  CHECK(absl::StartsWith(result->status().message(),
                         "tls handshake with 127.0.0.1:"));
}

TEST_CASE("tls: TlsDialer with TlsUpgrade on the server side", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  const uint16_t port = acceptor.local_endpoint().port();
  std::optional<DialResult> server;
  auto upgrade = TlsUpgrade(ServerContext());
  acceptor.async_accept(
      [&](const boost::system::error_code& ec, tcp::socket s) {
        REQUIRE_FALSE(ec);
        upgrade(std::move(s), [&](DialResult r) { server = std::move(r); });
      });
  std::string server_name;
  SECTION("empty name: the dialed IP literal is checked") {}
  SECTION("a DNS name") { server_name = "localhost"; }
  // Spin-before-block reads need a non-blocking read, which a TLS stream
  // does not offer: the option is ignored and reads still work.
  TransportOptions spin;
  spin.spin_read = std::chrono::microseconds(200);
  Dialer dial = TlsDialer(io.get_executor(), "127.0.0.1", port, ClientContext(),
                          server_name, TcpOptions{}, 5000ms, spin);
  std::optional<DialResult> client;
  dial([&](DialResult r) { client = std::move(r); });
  REQUIRE(
      RunUntil(io, [&] { return client.has_value() && server.has_value(); }));
  INFO("client: " << StatusText(client));
  INFO("server: " << StatusText(server));
  REQUIRE(client->ok());
  REQUIRE(server->ok());
  Recorder rc, rs;
  (**client)->Start(&rc);
  (**server)->Start(&rs);
  SendAndExpect(io, ***client, rs, "over the dialer");
  SendAndExpect(io, ***server, rc, "and back");
  CHECK((**client)->counters().spin_hits == 0);
  (**client)->Close();
  (**server)->Close();
}

TEST_CASE("tls: ConnectTls reports a refused connection", "[tls]") {
  asio::io_context io;
  uint16_t port = 0;
  {
    tcp::acceptor closed = Listen(io);
    port = closed.local_endpoint().port();
  }
  std::optional<DialResult> result;
  ConnectTls(io.get_executor(), "127.0.0.1", port, ClientContext(), "",
             TcpOptions{}, 2000ms, TransportOptions{},
             [&](DialResult r) { result = std::move(r); });
  REQUIRE(RunUntil(io, [&] { return result.has_value(); }));
  REQUIRE_FALSE(result->ok());
  CHECK(GetErrorCode(result->status()) == ErrorCode::kConnectionLost);
  CHECK(absl::StrContains(result->status().message(), "connect to 127.0.0.1:"));
}

TEST_CASE("tls: the handshake works with asio::use_future", "[tls]") {
  asio::io_context io;
  tcp::acceptor acceptor = Listen(io);
  // The whole DialResult is kept: copying the transport out of it here
  // (`if (r.ok()) server = *r;`) trips g++ 12's -Wmaybe-uninitialized false
  // positive on absl::StatusOr at -O3.
  std::optional<DialResult> server;
  acceptor.async_accept(
      [&, ctx = ServerContext()](const boost::system::error_code& ec,
                                 tcp::socket s) {
        REQUIRE_FALSE(ec);
        AsyncTlsServerHandshake(std::move(s), ctx,
                                [&](DialResult r) { server = std::move(r); });
      });
  auto work = asio::make_work_guard(io);
  std::thread runner([&io] { io.run(); });
  tcp::socket socket(io);
  socket.connect(acceptor.local_endpoint());
  std::future<DialResult> future = AsyncTlsClientHandshake(
      std::move(socket), ClientContext(), "localhost", asio::use_future);
  const bool ready = future.wait_for(5s) == std::future_status::ready;
  std::optional<DialResult> client;
  if (ready) client = future.get();
  // Close both on the io thread, then stop it.
  std::promise<void> closed;
  asio::post(io, [&] {
    if (client.has_value() && client->ok()) (**client)->Close();
    if (server.has_value() && server->ok()) (**server)->Close();
    closed.set_value();
  });
  closed.get_future().wait();
  work.reset();
  io.stop();
  runner.join();
  REQUIRE(ready);
  INFO("client: " << StatusText(client));
  CHECK(client->ok());
}

// A file removed when the test ends.
struct TempFile {
  explicit TempFile(const std::string& contents) {
    char name[] = "/tmp/symwire-tls-test-XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
    REQUIRE(::write(fd, contents.data(), contents.size()) ==
            static_cast<ssize_t>(contents.size()));
    ::close(fd);
  }
  ~TempFile() { ::unlink(path.c_str()); }
  std::string path;
};

TEST_CASE("tls: context errors name what failed", "[tls]") {
  const std::string missing = "/nonexistent/symwire-tls-test.pem";
  TempFile garbage("this is not a certificate\n");
  TempFile ca_file(TestCerts().ca_cert_pem);
  TempFile server_cert(TestCerts().server_cert_pem);
  TempFile server_key(TestCerts().server_key_pem);

  SECTION("files that exist and parse are loaded") {
    TlsClientOptions c;
    c.ca_file = ca_file.path;
    CHECK(MakeTlsClientContext(c).ok());
    TlsServerOptions s;
    s.cert_file = server_cert.path;
    s.key_file = server_key.path;
    s.require_client_cert = true;
    s.client_ca_file = ca_file.path;
    CHECK(MakeTlsServerContext(s).ok());
  }
  SECTION("client: missing CA file") {
    TlsClientOptions c;
    c.ca_file = missing;
    absl::StatusOr<Context> ctx = MakeTlsClientContext(c);
    INFO(ctx.status().ToString());
    REQUIRE_FALSE(ctx.ok());
    CHECK(ctx.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(
        ctx.status().message(),
        "tls client: cannot load ca_file \"" + missing + "\": "));
  }
  SECTION("client: garbage CA file and PEM") {
    TlsClientOptions c;
    c.ca_file = garbage.path;
    absl::StatusOr<Context> ctx = MakeTlsClientContext(c);
    INFO(ctx.status().ToString());
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(), garbage.path));
    c.ca_file.clear();
    c.ca_pem = "garbage";
    ctx = MakeTlsClientContext(c);
    INFO(ctx.status().ToString());
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(), "cannot load ca_pem"));
  }
  SECTION("client: certificate without key") {
    TlsClientOptions c;
    c.ca_pem = TestCerts().ca_cert_pem;
    c.cert_pem = TestCerts().client_cert_pem;
    absl::StatusOr<Context> ctx = MakeTlsClientContext(c);
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(),
                            "certificate given without its private key"));
  }
  SECTION("server: missing and garbage certificate files") {
    TlsServerOptions s;
    s.cert_file = missing;
    s.key_file = server_key.path;
    absl::StatusOr<Context> ctx = MakeTlsServerContext(s);
    INFO(ctx.status().ToString());
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(),
                            "tls server: cannot load cert_file \"" + missing));
    s.cert_file = garbage.path;
    ctx = MakeTlsServerContext(s);
    INFO(ctx.status().ToString());
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(),
                            "cannot load cert_file \"" + garbage.path));
    s.cert_file = server_cert.path;
    s.key_file = garbage.path;
    ctx = MakeTlsServerContext(s);
    INFO(ctx.status().ToString());
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(),
                            "cannot load key_file \"" + garbage.path));
  }
  SECTION("server: no certificate at all") {
    absl::StatusOr<Context> ctx = MakeTlsServerContext(TlsServerOptions{});
    REQUIRE_FALSE(ctx.ok());
    CHECK(ctx.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(ctx.status().message(), "are required"));
  }
  SECTION("server: a key that does not match the certificate") {
    TlsServerOptions s;
    s.cert_pem = TestCerts().server_cert_pem;
    s.key_pem = TestCerts().client_key_pem;
    absl::StatusOr<Context> ctx = MakeTlsServerContext(s);
    INFO(ctx.status().ToString());
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(), "key"));
  }
  SECTION("server: require_client_cert without a client CA") {
    TlsServerOptions s;
    s.cert_pem = TestCerts().server_cert_pem;
    s.key_pem = TestCerts().server_key_pem;
    s.require_client_cert = true;
    absl::StatusOr<Context> ctx = MakeTlsServerContext(s);
    REQUIRE_FALSE(ctx.ok());
    CHECK(absl::StrContains(ctx.status().message(),
                            "require_client_cert needs client_ca_file"));
  }
}

TEST_CASE(
    "tls: Client and Server run sessions over TLS; a wrong CA fails "
    "the connect",
    "[tls]") {
  asio::io_context io;
  ServerOptions so;
  so.session.role = AgentRole::kAgent;
  auto server = Server::Create(
      io.get_executor(), so, [](const std::shared_ptr<Channel>& session) {
        session->SetTaskHandler([](IncomingTask t) {
          REQUIRE(t.Respond("secret ", false).ok());
          REQUIRE(t.Respond(t.payload_string(), true).ok());
        });
      });
  REQUIRE(server.ok());
  auto ep = (*server)->ListenTcp("127.0.0.1", 0, TlsUpgrade(ServerContext()));
  REQUIRE(ep.ok());
  ClientOptions co;
  co.session.role = AgentRole::kOrchestrator;
  SECTION("the right CA: tasks run, and a killed connection resumes") {
    co.session.backoff.initial = absl::Milliseconds(5);
    auto client = Client::Connect(
        io.get_executor(),
        TlsDialer(io.get_executor(), "127.0.0.1", ep->port(), ClientContext()),
        co);
    REQUIRE(client.ok());
    std::optional<absl::StatusOr<std::string>> r1;
    (*client)->async_call(
        "one", {}, [&](absl::StatusOr<std::string> r) { r1 = std::move(r); });
    REQUIRE(RunUntil(io, [&] { return r1.has_value(); }));
    REQUIRE(r1->ok());
    CHECK(**r1 == "secret one");
    CHECK(absl::StrContains((*client)->transport_description(), "tls"));
    (*client)->KillConnection();
    std::optional<absl::StatusOr<std::string>> r2;
    (*client)->async_call(
        "two", {}, [&](absl::StatusOr<std::string> r) { r2 = std::move(r); });
    REQUIRE(RunUntil(io, [&] { return r2.has_value(); }));
    REQUIRE(r2->ok());
    CHECK(**r2 == "secret two");
    CHECK((*client)->reconnects() == 1);
  }
  SECTION("the wrong CA: the first connect fails with the verify error") {
    TlsClientOptions wrong;
    wrong.ca_pem = TestCerts().wrong_ca_cert_pem;
    auto client = Client::Connect(io.get_executor(),
                                  TlsDialer(io.get_executor(), "127.0.0.1",
                                            ep->port(), ClientContext(wrong)),
                                  co);
    REQUIRE(client.ok());
    std::optional<absl::Status> st;
    (*client)->async_wait_established([&](absl::Status s) { st = s; });
    REQUIRE(RunUntil(io, [&] { return st.has_value(); }));
    INFO(st->ToString());
    CHECK(GetErrorCode(*st) == ErrorCode::kUnauthenticated);
    CHECK(absl::StrContains(st->message(), "certificate verify failed"));
    RunUntil(io, [&] { return (*server)->counters().handshakes_failed == 1; });
    CHECK((*server)->counters().handshakes_failed == 1);
    CHECK((*server)->sessions() == 0);
  }
}

TEST_CASE(
    "tls: connections_accepted counts every accepted connection, failed "
    "TLS handshakes included",
    "[tls][observability]") {
  // Issue #14: after 1 TLS session and 2 failed handshakes the counters
  // read accepted=1 handshakes_failed=2; accepted must be 3.
  asio::io_context io;
  auto metrics = std::make_shared<RuntimeMetrics>();
  ServerOptions so;
  so.session.role = AgentRole::kAgent;
  so.observer = metrics;
  auto server = Server::Create(io.get_executor(), so,
                               [](const std::shared_ptr<Channel>&) {});
  REQUIRE(server.ok());
  auto ep = (*server)->ListenTcp("127.0.0.1", 0, TlsUpgrade(ServerContext()));
  REQUIRE(ep.ok());
  // Two plain-TCP peers that send garbage instead of a ClientHello.
  std::vector<std::shared_ptr<tcp::socket>> plain;
  for (int i = 0; i < 2; ++i) {
    auto s = std::make_shared<tcp::socket>(io);
    s->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), ep->port()));
    asio::write(*s, asio::buffer(std::string("not a TLS ClientHello\r\n")));
    plain.push_back(s);
  }
  REQUIRE(RunUntil(
      io, [&] { return (*server)->counters().handshakes_failed == 2; }));
  ClientOptions co;
  co.session.role = AgentRole::kOrchestrator;
  auto client = Client::Connect(
      io.get_executor(),
      TlsDialer(io.get_executor(), "127.0.0.1", ep->port(), ClientContext()),
      co);
  REQUIRE(client.ok());
  std::optional<absl::Status> st;
  (*client)->async_wait_established([&](absl::Status s) { st = s; });
  REQUIRE(RunUntil(io, [&] { return st.has_value(); }));
  REQUIRE(st->ok());
  REQUIRE(RunUntil(io, [&] { return (*server)->sessions() == 1; }));
  const ServerCounters c = (*server)->counters();
  CHECK(c.connections_accepted == 3);
  CHECK(c.handshakes_failed == 2);
  CHECK(c.sessions_established == 1);
  CHECK(metrics->connections_accepted() == 3);
  CHECK(metrics->handshakes_failed() == 2);
}

}  // namespace
}  // namespace symwire
