// File: tests/transport/hostile_test.cpp
// The runtime (runtime.hpp) against hostile peers over real sockets on
// 127.0.0.1: handshakes that never finish, garbage bytes, oversized frames,
// a ping flood from an authenticated peer, 1,000 idle connections, and a
// server restarted under a client that keeps submitting. In every test a
// well-behaved Client on the same Server keeps completing tasks during and
// after the attack: the server stays up, memory stays bounded, other
// sessions are unaffected. Every wait is bounded (RunUntil) and fails the
// test on timeout; bounds are generous (a loaded 2-core VM under TSan) and
// the assertions are about outcomes, not about how fast they came.
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/session.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"
#include "tests/support/bytes.hpp"
#include "tests/support/transport_support.hpp"

namespace symwire {
namespace {

using namespace std::chrono_literals;
using testing::Bytes;
using testing::ByteSpan;
using testing::EchoStreamingAgent;
using testing::FastClient;
using testing::FastServer;
using testing::RespondCheck;
using testing::RunUntil;
using Tcp = asio::ip::tcp;
using SysError = boost::system::error_code;
using Clock = std::chrono::steady_clock;

// ---- bounded waiting ------------------------------------------------------

// RunUntil(io, done, what, bound) (tests/support/transport_support.hpp) fails
// the test, naming `what`, if `bound` passes before `done()` holds.

// Runs `io` for `d` (lets the server react to something that should have no
// visible effect).
void RunFor(asio::io_context& io, std::chrono::milliseconds d) {
  io.run_for(d);
  if (io.stopped()) io.restart();
}

// ---- process figures --------------------------------------------------------

// Sanitizers multiply what an allocation costs in RSS (TSan's shadow
// memory: measured 3.2x here; ASan's redzones and quarantine): memory
// bounds are scaled by this so that they stay meaningful in every build.
#if defined(__has_feature)
#define SYMWIRE_TEST_HAS_FEATURE(x) __has_feature(x)
#else
#define SYMWIRE_TEST_HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || SYMWIRE_TEST_HAS_FEATURE(thread_sanitizer)
constexpr uint64_t kRssScale = 4;
#elif defined(__SANITIZE_ADDRESS__) || \
    SYMWIRE_TEST_HAS_FEATURE(address_sanitizer)
constexpr uint64_t kRssScale = 2;
#else
constexpr uint64_t kRssScale = 1;
#endif

// VmRSS of this process in KiB (0 if unreadable).
uint64_t RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      return std::stoull(line.substr(6));
    }
  }
  return 0;
}

// Raises the soft descriptor limit to the hard one; returns the new soft
// limit.
rlim_t RaiseFdLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur;
}

// ---- bytes ------------------------------------------------------------------

Bytes Preface() {
  Bytes out(kPrefaceSize);
  REQUIRE(EncodePreface(absl::MakeSpan(out)).ok());
  return out;
}

Bytes Frame(const FrameHeader& header, absl::Span<const std::byte> payload) {
  absl::StatusOr<size_t> size = EncodedSize(header, payload.size());
  REQUIRE(size.ok());
  Bytes out(*size);
  absl::StatusOr<size_t> n = EncodeFrame(header, payload, absl::MakeSpan(out));
  REQUIRE(n.ok());
  REQUIRE(*n == out.size());
  return out;
}

Bytes SeededGarbage(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  Bytes out(n);
  for (std::byte& b : out) b = static_cast<std::byte>(byte(rng));
  return out;
}

// What the server wrote on a raw connection, decoded: its preface, the
// frames' types, and the `detail` of every stream-0 AGENT_ERROR.
struct Reply {
  bool preface = false;
  std::vector<MessageType> types;
  std::vector<ErrorCode> errors;
  absl::Status decode_status;  // OK unless the server wrote bad bytes
};

Reply DecodeReply(const Bytes& bytes) {
  Reply r;
  DecoderOptions options;
  options.max_payload_bytes = kMaxControlPayloadSize;
  FrameDecoder decoder(options);
  absl::Span<const std::byte> in(bytes);
  while (!in.empty()) {
    absl::StatusOr<DecodeStep> step = decoder.Decode(in);
    if (!step.ok()) {
      r.decode_status = step.status();
      break;
    }
    if (step->kind == DecodeStep::Kind::kNeedMore) break;  // cut short
    if (step->kind == DecodeStep::Kind::kPreface) {
      r.preface = true;
    } else {
      r.types.push_back(step->frame.type());
      if (step->frame.type() == MessageType::kAgentError &&
          step->frame.stream_id() == 0) {
        absl::StatusOr<ErrorMessage> m = ParseError(step->frame.payload());
        r.errors.push_back(m.ok() ? m->detail : ErrorCode::kMalformedPayload);
      }
    }
    in.remove_prefix(step->consumed);
  }
  return r;
}

// The server may answer a bad connection with its preface and at most a
// stream-0 AGENT_ERROR carrying `expected` (SPEC.md §7, §12.1), then closes.
void CheckReply(const Bytes& received, ErrorCode expected) {
  const Reply r = DecodeReply(received);
  INFO("server wrote " << received.size() << " bytes");
  CHECK(r.decode_status.ok());
  if (received.empty()) return;
  CHECK(r.preface);
  for (MessageType t : r.types) CHECK(t == MessageType::kAgentError);
  for (ErrorCode e : r.errors) {
    INFO("AGENT_ERROR detail " << ErrorCodeName(e));
    CHECK(e == expected);
  }
}

// ---- raw peers
// ----------------------------------------------------------------

// RawConn: a plain TCP socket on the test's io_context, connected to the
// server on 127.0.0.1. It writes what it is told (in order), records what
// the server sends and notices when the server closes. Handlers share the
// state, so a RawConn may be destroyed with operations pending.
class RawConn {
 public:
  RawConn(asio::io_context& io, uint16_t port)
      : s_(std::make_shared<State>(io)) {
    s_->socket.async_connect(
        Tcp::endpoint(asio::ip::address_v4::loopback(), port),
        [s = s_](const SysError& ec) {
          if (ec) {
            s->error = ec;
            s->closed = true;
            return;
          }
          s->connected = true;
          if (s->on_connected) s->on_connected();
          ReadLoop(s);
          WriteNext(s);
        });
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  ~RawConn() {
    s_->on_connected = nullptr;
    s_->on_data = nullptr;
    Close();
  }

  void Send(Bytes bytes) {
    s_->writes.push_back(std::move(bytes));
    WriteNext(s_);
  }
  void Close() {
    SysError ignored;
    s_->socket.close(ignored);
  }

  bool connected() const { return s_->connected; }
  // True once the server ended the stream (end of file or reset), or the
  // connect failed.
  bool closed() const { return s_->closed; }
  // Every byte sent has been handed to the kernel.
  bool flushed() const { return s_->writes.empty(); }
  const SysError& error() const { return s_->error; }
  const Bytes& received() const { return s_->received; }

  void OnConnected(std::function<void()> f) { s_->on_connected = std::move(f); }
  void OnData(std::function<void(absl::Span<const std::byte>)> f) {
    s_->on_data = std::move(f);
  }

 private:
  struct State {
    explicit State(asio::io_context& io) : socket(io) {}
    Tcp::socket socket;
    std::array<std::byte, 4096> buffer{};
    Bytes received;
    std::deque<Bytes> writes;
    bool writing = false;
    bool connected = false;
    bool closed = false;
    SysError error;
    std::function<void()> on_connected;
    std::function<void(absl::Span<const std::byte>)> on_data;
  };

  static void ReadLoop(const std::shared_ptr<State>& s) {
    s->socket.async_read_some(
        asio::buffer(s->buffer), [s](const SysError& ec, size_t n) {
          if (n > 0) {
            const absl::Span<const std::byte> got(s->buffer.data(), n);
            s->received.insert(s->received.end(), got.begin(), got.end());
            if (s->on_data) s->on_data(got);
          }
          if (ec) {
            s->error = ec;
            s->closed = true;
            return;
          }
          ReadLoop(s);
        });
  }

  static void WriteNext(const std::shared_ptr<State>& s) {
    if (!s->connected || s->writing || s->writes.empty()) return;
    s->writing = true;
    asio::async_write(s->socket, asio::buffer(s->writes.front()),
                      [s](const SysError& ec, size_t) {
                        s->writing = false;
                        s->writes.pop_front();
                        if (ec) {
                          s->writes.clear();  // the server is gone
                          return;
                        }
                        WriteNext(s);
                      });
  }

  std::shared_ptr<State> s_;
};

// DrivenSession: a real symwire initiator (the sans-I/O Session, no
// runtime) driven by hand over a RawConn, so a test can complete a genuine
// handshake and then write whatever it likes on the same connection.
class DrivenSession {
 public:
  DrivenSession(asio::io_context& io, uint16_t port, uint64_t seed)
      : conn_(io, port) {
    SessionConfig c;
    c.side = SessionSide::kInitiator;
    c.role = AgentRole::kOrchestrator;
    c.agent_id = "hostile-orchestrator";
    c.random = SeededRandom(seed);
    absl::StatusOr<std::unique_ptr<Session>> s =
        Session::Create(c, SteadyNow());
    REQUIRE(s.ok());
    session_ = std::move(*s);
    conn_.OnConnected([this] {
      REQUIRE(session_->TransportConnected(SteadyNow()).ok());
      Pump();
    });
    conn_.OnData([this](absl::Span<const std::byte> bytes) {
      static_cast<void>(session_->Receive(bytes, SteadyNow()));
      Pump();
    });
  }

  RawConn& conn() { return conn_; }
  Session& session() { return *session_; }
  // Writes what the session queued (after a SubmitTask, say).
  void Flush() { Pump(); }
  bool established() const { return established_; }
  const std::optional<absl::Status>& failed() const { return failed_; }
  const std::optional<absl::Status>& lost() const { return lost_; }

 private:
  void Pump() {
    for (;;) {
      const absl::Span<const std::byte> out = session_->PollTransmit();
      if (out.empty()) break;
      conn_.Send(Bytes(out.begin(), out.end()));
    }
    while (std::optional<Event> e = session_->PollEvent()) {
      if (std::holds_alternative<Established>(*e)) established_ = true;
      if (auto* f = std::get_if<SessionFailed>(&*e)) failed_ = f->status;
      if (auto* l = std::get_if<ConnectionLost>(&*e)) lost_ = l->status;
    }
  }

  RawConn conn_;
  std::unique_ptr<Session> session_;
  bool established_ = false;
  std::optional<absl::Status> failed_;
  std::optional<absl::Status> lost_;
};

// ---- the server and the well-behaved client ---------------------------------

// The server's options: FastServer under an agent id of its own.
ServerOptions HostileServer() { return FastServer("hostile-test-agent"); }

// The well-behaved client's options: FastClient under an id of its own.
ClientOptions GoodClientOptions() { return FastClient("good-orchestrator"); }

// EchoOf(p): what EchoStreamingAgent answers to "<n><text>": the parts
// "<n><text>:0;" .. "<n><text>:<n-1>;" and a final "<n><text>:done".
std::string EchoOf(const std::string& p) {
  std::string out;
  const int parts = p.empty() || p[0] < '0' || p[0] > '9' ? 0 : p[0] - '0';
  for (int i = 0; i < parts; ++i) absl::StrAppend(&out, p, ":", i, ";");
  absl::StrAppend(&out, p, ":done");
  return out;
}

// GoodTraffic: keeps one async_call in flight on the good client at all
// times (the next starts when the previous completes) and counts results.
class GoodTraffic {
 public:
  explicit GoodTraffic(std::shared_ptr<Channel> client)
      : client_(std::move(client)) {}
  GoodTraffic(const GoodTraffic&) = delete;
  GoodTraffic& operator=(const GoodTraffic&) = delete;

  void Start() {
    stopping_ = false;
    if (!running_) {
      running_ = true;
      Next();
    }
  }
  // Stops after the call in flight; Stopped() tells when it has ended.
  void Stop() { stopping_ = true; }
  bool Stopped() const { return !running_; }
  int ok() const { return ok_; }
  const std::vector<std::string>& failures() const { return failures_; }

 private:
  void Next() {
    if (stopping_) {
      running_ = false;
      return;
    }
    std::string payload = absl::StrCat("2good", seq_++);
    std::string expected = EchoOf(payload);
    client_->async_call(
        std::move(payload), {},
        [this, expected = std::move(expected)](absl::StatusOr<std::string> r) {
          if (r.ok() && *r == expected) {
            ++ok_;
          } else {
            failures_.push_back(r.ok() ? absl::StrCat("wrong result: ", *r)
                                       : r.status().ToString());
          }
          Next();
        });
  }

  std::shared_ptr<Channel> client_;
  int seq_ = 0;
  int ok_ = 0;
  bool running_ = false;
  bool stopping_ = false;
  std::vector<std::string> failures_;
};

// Fixture: a Server on 127.0.0.1 (echo agent on every session) and one
// established well-behaved Client with its GoodTraffic. `io` is declared
// first so it outlives every object that uses it.
struct Fixture {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::vector<std::shared_ptr<Channel>> sessions;  // every established one
  uint16_t port = 0;
  std::shared_ptr<Channel> client;
  std::unique_ptr<GoodTraffic> traffic;

  explicit Fixture(ServerOptions so = HostileServer(),
                   ClientOptions co = GoodClientOptions()) {
    absl::StatusOr<std::shared_ptr<Server>> s =
        Server::Create(io.get_executor(), std::move(so),
                       [this](const std::shared_ptr<Channel>& p) {
                         sessions.push_back(p);
                         // A Respond may fail under attack: not an error.
                         EchoStreamingAgent(p, RespondCheck::kIgnore);
                       });
    REQUIRE(s.ok());
    server = *s;
    absl::StatusOr<Tcp::endpoint> ep = server->ListenTcp("127.0.0.1", 0);
    REQUIRE(ep.ok());
    port = ep->port();
    absl::StatusOr<std::shared_ptr<Channel>> c = Client::Connect(
        io.get_executor(), TcpDialer(io.get_executor(), "127.0.0.1", port),
        std::move(co));
    REQUIRE(c.ok());
    client = *c;
    absl::Status established = absl::UnknownError("pending");
    client->async_wait_established(
        [&established](absl::Status st) { established = std::move(st); });
    RunUntil(
        io, [&] { return !absl::IsUnknown(established); },
        "the good client's handshake");
    REQUIRE(established.ok());
    traffic = std::make_unique<GoodTraffic>(client);
    traffic->Start();
    RunUntil(
        io, [&] { return traffic->ok() >= 3; },
        "the good client's first tasks");
  }

  // The good client made progress: `more` tasks completed from now on.
  void ExpectProgress(int more, absl::string_view when) {
    const int target = traffic->ok() + more;
    RunUntil(
        io, [&] { return traffic->ok() >= target; },
        absl::StrCat("good client tasks ", when));
  }

  // End of every test: the good client completed more tasks, none failed,
  // its session never lost its connection, and a last call still works.
  void ExpectGoodClientUnaffected() {
    ExpectProgress(5, "after the attack");
    traffic->Stop();
    RunUntil(
        io, [&] { return traffic->Stopped(); }, "the traffic to stop");
    INFO("good client: " << traffic->ok() << " tasks ok");
    for (const std::string& f : traffic->failures()) {
      FAIL_CHECK("good client task failed: " << f);
    }
    CHECK(traffic->failures().empty());
    CHECK(client->state() == SessionState::kEstablished);
    CHECK(client->reconnects() == 0);
    absl::StatusOr<std::string> last = absl::UnknownError("pending");
    client->async_call("1last", {},
                       [&last](absl::StatusOr<std::string> r) { last = r; });
    RunUntil(
        io, [&] { return !absl::IsUnknown(last.status()); },
        "the good client's last task");
    REQUIRE(last.ok());
    CHECK(*last == "1last:0;1last:done");
  }
};

// ===========================================================================

TEST_CASE("hostile: handshakes that never finish are closed at the timeout",
          "[hostile]") {
  ServerOptions so = HostileServer();
  so.session.handshake_timeout = absl::Milliseconds(300);
  Fixture f(so);
  const ServerCounters before = f.server->counters();
  REQUIRE(f.server->connections() == 1);

  const auto start = Clock::now();
  RawConn silent(f.io, f.port);  // connects, sends nothing
  RawConn preface_only(f.io, f.port);
  preface_only.Send(Preface());
  // Slowloris: the preface and the first 3 bytes of a frame, then nothing.
  RawConn partial(f.io, f.port);
  {
    Bytes bytes = Preface();
    const Bytes sync = Frame(FrameHeader{MessageType::kAgentSync, 0, 0, 0},
                             absl::Span<std::byte>());
    bytes.insert(bytes.end(), sync.begin(), sync.begin() + 3);
    partial.Send(std::move(bytes));
  }
  RunUntil(
      f.io,
      [&] {
        return silent.connected() && preface_only.connected() &&
               partial.connected() && f.server->connections() == 4;
      },
      "the server to accept the three raw connections");
  f.ExpectProgress(3, "while three handshakes hang");

  RunUntil(
      f.io,
      [&] {
        return silent.closed() && preface_only.closed() && partial.closed();
      },
      "the server to close the three hanging connections");
  const auto elapsed = Clock::now() - start;
  // Closed by the timeout, not earlier (a lower bound cannot be flaky).
  CHECK(elapsed >= 250ms);
  for (const RawConn* c : {&silent, &preface_only, &partial}) {
    INFO("raw connection ended with: " << c->error().message());
    CHECK((c->error() == asio::error::eof ||
           c->error() == asio::error::connection_reset));
    CheckReply(c->received(), ErrorCode::kHandshakeTimeout);
  }
  RunUntil(
      f.io, [&] { return f.server->connections() == 1; },
      "connections() to drop back to 1");
  CHECK(f.server->sessions() == 1);
  const ServerCounters after = f.server->counters();
  CHECK(after.connections_accepted == before.connections_accepted + 3);
  CHECK(after.connections_refused == before.connections_refused);
  CHECK(after.sessions_established == before.sessions_established);
  // Three handshakes started and failed: the counter says so.
  CHECK(after.handshakes_failed == before.handshakes_failed + 3);
  f.ExpectGoodClientUnaffected();
}

TEST_CASE("hostile: garbage bytes are rejected at once, not at the timeout",
          "[hostile]") {
  ServerOptions so = HostileServer();
  // Far above the bound below: a close within it is the garbage's doing.
  so.session.handshake_timeout = absl::Seconds(60);
  Fixture f(so);
  const ServerCounters before = f.server->counters();

  struct Case {
    std::string name;
    Bytes bytes;
    ErrorCode expected;  // if the server explains itself
  };
  std::vector<Case> cases;
  cases.push_back({"http request", testing::Str("GET / HTTP/1.1\r\n\r\n"),
                   ErrorCode::kBadPreface});
  cases.push_back({"tls client hello",
                   testing::Cat({testing::B({0x16, 0x03, 0x01, 0x02, 0x00}),
                                 SeededGarbage(512, 1)}),
                   ErrorCode::kBadPreface});
  {
    Bytes random = SeededGarbage(4096, 2);
    if (random[0] == std::byte{0x89}) random[0] = std::byte{0};
    cases.push_back(
        {"random bytes", std::move(random), ErrorCode::kBadPreface});
  }
  {
    Bytes wrong_version = Preface();
    wrong_version.back() = std::byte{0x02};
    cases.push_back({"wire version 2", std::move(wrong_version),
                     ErrorCode::kUnsupportedVersion});
  }
  // A valid preface, then 8 KiB of noise: whatever header_length the first
  // byte claims (at most 4098 bytes are accepted), the header is complete
  // and fails its CRC, or its length is rejected outright.
  cases.push_back({"preface + random",
                   testing::Cat({Preface(), SeededGarbage(8192, 3)}),
                   ErrorCode::kHeaderCrcMismatch});

  const uint64_t rss_before = RssKiB();
  std::vector<std::unique_ptr<RawConn>> conns;
  for (Case& c : cases) {
    conns.push_back(std::make_unique<RawConn>(f.io, f.port));
    conns.back()->Send(c.bytes);
  }
  RunUntil(
      f.io,
      [&] {
        for (const auto& c : conns) {
          if (!c->closed()) return false;
        }
        return true;
      },
      "the server to close every garbage connection", 8000ms);
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("case: " << cases[i].name << "; ended with "
                  << conns[i]->error().message());
    CHECK((conns[i]->error() == asio::error::eof ||
           conns[i]->error() == asio::error::connection_reset));
    const Reply r = DecodeReply(conns[i]->received());
    CHECK(r.decode_status.ok());
    // Framing errors end the connection without an explanation or with
    // one; either way the detail must be the right one.
    if (cases[i].expected != ErrorCode::kHeaderCrcMismatch) {
      CheckReply(conns[i]->received(), cases[i].expected);
    } else {
      for (ErrorCode e : r.errors) {
        INFO("AGENT_ERROR detail " << ErrorCodeName(e));
        CHECK((e == ErrorCode::kHeaderCrcMismatch ||
               e == ErrorCode::kHeaderTooLarge ||
               e == ErrorCode::kBadHeaderLength ||
               e == ErrorCode::kNonCanonicalVarint));
      }
    }
  }
  RunUntil(
      f.io, [&] { return f.server->connections() == 1; },
      "connections() to drop back to 1");
  const uint64_t rss_after = RssKiB();
  WARN("garbage: RSS " << rss_before / 1024 << " -> " << rss_after / 1024
                       << " MiB");
  CHECK(rss_after < rss_before + kRssScale * 64 * 1024);
  const ServerCounters after = f.server->counters();
  CHECK(after.connections_accepted ==
        before.connections_accepted + cases.size());
  CHECK(after.sessions_established == before.sessions_established);
  CHECK(after.handshakes_failed == before.handshakes_failed + cases.size());
  CHECK(f.server->sessions() == 1);
  f.ExpectGoodClientUnaffected();
}

// A read-only, never-touched mapping of `size` bytes: a payload span that
// costs no memory (EncodeGather without CHECKSUM never reads it).
class ZeroPages {
 public:
  explicit ZeroPages(size_t size) : size_(size) {
    void* p = ::mmap(nullptr, size, PROT_READ,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(p != MAP_FAILED);
    data_ = p;
  }
  ZeroPages(const ZeroPages&) = delete;
  ZeroPages& operator=(const ZeroPages&) = delete;
  ~ZeroPages() { ::munmap(data_, size_); }
  absl::Span<const std::byte> span() const {
    return {static_cast<const std::byte*>(data_), size_};
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// The header (only) of a frame announcing `payload.size()` bytes.
Bytes HeaderOnly(const FrameHeader& header,
                 absl::Span<const std::byte> payload) {
  std::array<std::byte, 64> buffer{};
  absl::StatusOr<GatherFrame> g =
      EncodeGather(header, FrameExtensions{}, payload, absl::MakeSpan(buffer));
  REQUIRE(g.ok());
  REQUIRE(g->trailer().empty());
  return Bytes(g->header().begin(), g->header().end());
}

constexpr uint64_t kServerMaxPayload = 64 * 1024;
constexpr size_t kAnnounced = size_t{512} << 20;  // 512 MiB

TEST_CASE("hostile: an oversized frame is refused before it is buffered",
          "[hostile]") {
  ServerOptions so = HostileServer();
  so.session.max_payload_bytes = kServerMaxPayload;
  so.session.handshake_timeout = absl::Seconds(60);
  Fixture f(so);
  const ZeroPages big(kAnnounced);
  const uint64_t rss_before = RssKiB();

  SECTION("before the handshake, after a valid preface") {
    RawConn raw(f.io, f.port);
    Bytes bytes = Preface();
    const Bytes header =
        HeaderOnly(FrameHeader{MessageType::kAgentTask, 0, 1, 1}, big.span());
    bytes.insert(bytes.end(), header.begin(), header.end());
    bytes.resize(bytes.size() + 64);  // a few payload bytes
    raw.Send(std::move(bytes));
    RunUntil(
        f.io, [&] { return raw.closed(); }, "the server to close", 8000ms);
    INFO("ended with " << raw.error().message());
    CheckReply(raw.received(), ErrorCode::kPayloadTooLarge);
    CHECK(f.server->counters().sessions_established == 1);
  }

  SECTION("after a completed handshake") {
    DrivenSession attacker(f.io, f.port, 41);
    RunUntil(
        f.io, [&] { return attacker.established(); },
        "the attacker's handshake");
    CHECK(attacker.session().peer().max_payload_bytes == kServerMaxPayload);
    Bytes bytes =
        HeaderOnly(FrameHeader{MessageType::kAgentTask, 0, 1, 1}, big.span());
    bytes.resize(bytes.size() + 64);
    attacker.conn().Send(std::move(bytes));
    RunUntil(
        f.io, [&] { return attacker.conn().closed(); },
        "the server to close the attacker's connection", 8000ms);
    // SPEC.md §15.2: a task payload above the announced limit ends the
    // session (the peer knew the limit; a resume would replay the frame and
    // fail again), so the server does not keep it for a resume; §18: it
    // SHOULD say why first.
    REQUIRE(f.sessions.size() == 2);
    const std::shared_ptr<Channel> victim = f.sessions[1];
    INFO("server-side session: " << SessionStateName(victim->state()) << " "
                                 << victim->session().status().ToString());
    CHECK(victim->state() == SessionState::kFailed);
    CHECK(GetErrorCode(victim->session().status()) ==
          ErrorCode::kPayloadTooLarge);
    const Reply r = DecodeReply(attacker.conn().received());
    CHECK(r.decode_status.ok());
    for (ErrorCode e : r.errors) CHECK(e == ErrorCode::kPayloadTooLarge);
    RunUntil(
        f.io, [&] { return f.server->sessions() == 1; },
        "the server to forget the attacker's session", 3000ms);
  }

  RunUntil(
      f.io, [&] { return f.server->connections() == 1; },
      "connections() to drop back to 1");
  const uint64_t rss_after = RssKiB();
  WARN("oversized frame announcing " << (kAnnounced >> 20) << " MiB: RSS "
                                     << rss_before / 1024 << " -> "
                                     << rss_after / 1024 << " MiB");
  // Nothing near the announced size was allocated.
  CHECK(rss_after < rss_before + kRssScale * 64 * 1024);
  f.ExpectGoodClientUnaffected();
}

TEST_CASE("hostile: a task above the server's limit is refused locally",
          "[hostile]") {
  ServerOptions so = HostileServer();
  so.session.max_payload_bytes = kServerMaxPayload;
  ClientOptions co = GoodClientOptions();
  co.session.max_payload_bytes = uint64_t{16} << 20;  // the client's own
  Fixture f(so, co);
  REQUIRE(f.client->session().peer().max_payload_bytes == kServerMaxPayload);

  // At the limit: accepted and answered.
  absl::StatusOr<std::string> at = absl::UnknownError("pending");
  f.client->async_call(std::string(kServerMaxPayload, 'x'), {},
                       [&at](absl::StatusOr<std::string> r) { at = r; });
  // One byte above it: refused here, never sent.
  absl::StatusOr<std::string> above = absl::UnknownError("pending");
  f.client->async_call(std::string(kServerMaxPayload + 1, 'x'), {},
                       [&above](absl::StatusOr<std::string> r) { above = r; });
  RunUntil(
      f.io,
      [&] {
        return !absl::IsUnknown(at.status()) &&
               !absl::IsUnknown(above.status());
      },
      "both calls");
  REQUIRE(at.ok());
  CHECK(at->size() == kServerMaxPayload + 5);
  INFO(above.status().ToString());
  CHECK(GetErrorCode(above.status()) == ErrorCode::kFrameTooLarge);
  CHECK(above.status().code() == absl::StatusCode::kInvalidArgument);
  // The synchronous call says the same.
  const std::string big(1 << 20, 'y');
  absl::StatusOr<TaskCall> direct = f.client->Submit(big);
  CHECK(GetErrorCode(direct.status()) == ErrorCode::kFrameTooLarge);
  // Nothing reached the server, and the session is intact.
  CHECK(f.client->counters()
            .errors_by_code[static_cast<size_t>(ErrorCode::kPayloadTooLarge)] ==
        0);
  CHECK(f.sessions.at(0)->state() == SessionState::kEstablished);
  f.ExpectGoodClientUnaffected();
}

TEST_CASE("hostile: a ping flood ends that session with PING_FLOOD",
          "[hostile]") {
  ServerOptions so = HostileServer();
  so.session.min_peer_ping_interval = absl::Seconds(1);
  so.session.max_ping_strikes = 2;
  Fixture f(so);
  DrivenSession attacker(f.io, f.port, 42);
  RunUntil(
      f.io, [&] { return attacker.established(); }, "the attacker's handshake");
  RunUntil(
      f.io, [&] { return f.sessions.size() == 2; },
      "the server to announce the attacker's session");
  const std::shared_ptr<Channel> victim = f.sessions[1];
  CHECK(f.server->sessions() == 2);

  // 200 pings at once, each a connection frame on stream 0 (SPEC.md §10,
  // §14.1): the minimum spacing is 1 s, these arrive microseconds apart.
  Bytes flood;
  for (uint64_t i = 1; i <= 200; ++i) {
    SyncMessage ping;
    ping.ping = i;
    std::vector<std::byte> payload;
    REQUIRE(AppendSync(ping, payload).ok());
    const Bytes frame = Frame(
        FrameHeader{MessageType::kAgentSync, kFlagChecksum, 0, 0}, payload);
    flood.insert(flood.end(), frame.begin(), frame.end());
  }
  attacker.conn().Send(std::move(flood));
  f.ExpectProgress(3, "during the ping flood");
  RunUntil(
      f.io, [&] { return attacker.conn().closed(); },
      "the server to end the flooding session");
  // The server said why, and the attacker's session understood it.
  const Reply r = DecodeReply(attacker.conn().received());
  CHECK(r.decode_status.ok());
  CHECK(std::find(r.errors.begin(), r.errors.end(), ErrorCode::kPingFlood) !=
        r.errors.end());
  REQUIRE(attacker.failed().has_value());
  INFO("attacker's session: " << attacker.failed()->ToString());
  CHECK(GetErrorCode(*attacker.failed()) == ErrorCode::kPingFlood);
  CHECK(attacker.failed()->code() == absl::StatusCode::kResourceExhausted);
  // On the server the session ended (it is not kept for a resume).
  CHECK(victim->state() == SessionState::kFailed);
  CHECK(GetErrorCode(victim->session().status()) == ErrorCode::kPingFlood);
  RunUntil(
      f.io,
      [&] { return f.server->connections() == 1 && f.server->sessions() == 1; },
      "the server to forget the flooding session");
  f.ExpectGoodClientUnaffected();
}

TEST_CASE("hostile: 1,000 idle connections", "[hostile]") {
  constexpr size_t kIdle = 1000;
  const rlim_t fds = RaiseFdLimit();
  if (fds < 2200) {
    WARN("skipped: RLIMIT_NOFILE hard limit " << fds << " < 2200");
    return;
  }
  ServerOptions so = HostileServer();
  so.session.handshake_timeout = absl::Seconds(120);  // they stay idle
  Fixture f(so);
  const uint64_t rss_before = RssKiB();
  const auto start = Clock::now();
  std::vector<std::unique_ptr<RawConn>> idle;
  idle.reserve(kIdle);
  for (size_t i = 0; i < kIdle; ++i) {
    idle.push_back(std::make_unique<RawConn>(f.io, f.port));
    idle.back()->Send(Preface());
    // Let the accept loop keep up (the listen backlog is finite).
    if (i % 100 == 99) RunFor(f.io, 5ms);
  }
  RunUntil(
      f.io,
      [&] {
        return f.server->connections() == kIdle + 1 &&
               std::all_of(idle.begin(), idle.end(), [](const auto& c) {
                 return c->connected() && c->flushed();
               });
      },
      "1,000 raw connections to be accepted", 30000ms);
  const auto opened = Clock::now() - start;
  f.ExpectProgress(10, "with 1,000 idle connections open");
  const uint64_t rss_during = RssKiB();
  const double growth_mib =
      static_cast<double>(rss_during - std::min(rss_during, rss_before)) /
      1024.0;
  WARN("1,000 idle connections: opened in "
       << std::chrono::duration_cast<std::chrono::milliseconds>(opened).count()
       << " ms; RSS " << rss_before / 1024 << " -> " << rss_during / 1024
       << " MiB (+" << growth_mib << " MiB, "
       << growth_mib * 1024.0 / static_cast<double>(kIdle)
       << " KiB per connection; bound " << kRssScale * 200 << " MiB)");
  CHECK(growth_mib < static_cast<double>(kRssScale * 200));
  CHECK(f.server->connections() == kIdle + 1);
  CHECK(f.server->sessions() == 1);
  for (const auto& c : idle) CHECK_FALSE(c->closed());
  CHECK(f.server->counters().connections_accepted == kIdle + 1);
  CHECK(f.server->counters().connections_refused == 0);

  idle.clear();  // closes them all
  RunUntil(
      f.io, [&] { return f.server->connections() == 1; },
      "connections() to fall back to 1", 30000ms);
  CHECK(f.server->sessions() == 1);
  f.ExpectGoodClientUnaffected();
}

// ---- server restart -------------------------------------------------------

// An agent that answers each task "<payload>:done" after `delay`.
void DelayedAgent(const std::shared_ptr<Channel>& peer,
                  std::chrono::milliseconds delay) {
  peer->SetTaskHandler([delay](IncomingTask task) {
    auto timer = std::make_shared<asio::steady_timer>(task.get_executor());
    timer->expires_after(delay);
    std::string answer = absl::StrCat(task.payload_string(), ":done");
    timer->async_wait(
        [timer, task, answer = std::move(answer)](const SysError&) mutable {
          // Refused (WRONG_STATE, SESSION_CLOSED) once the session is gone.
          static_cast<void>(task.Respond(answer, true));
        });
  });
}

std::string HexLower(absl::Span<const std::byte> id) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(id.data()), id.size()));
}

// RestartRig: a server (DelayedAgent) that can be replaced by a new one on
// the same port, and a client that keeps submitting to it.
struct RestartRig {
  asio::io_context io;
  std::shared_ptr<Server> server;
  std::vector<std::shared_ptr<Channel>> server_sessions;
  uint16_t port = 0;

  void StartServer(uint16_t on_port) {
    absl::StatusOr<std::shared_ptr<Server>> s =
        Server::Create(io.get_executor(), HostileServer(),
                       [this](const std::shared_ptr<Channel>& p) {
                         server_sessions.push_back(p);
                         DelayedAgent(p, 10ms);
                       });
    REQUIRE(s.ok());
    server = *s;
    // ListenTcp sets SO_REUSEADDR: the port is free again at once.
    absl::StatusOr<Tcp::endpoint> ep = server->ListenTcp("127.0.0.1", on_port);
    INFO(ep.status().ToString());
    REQUIRE(ep.ok());
    port = ep->port();
  }
};

TEST_CASE("hostile: a server restarted under a submitting client",
          "[hostile]") {
  constexpr int kTasks = 200;
  constexpr int kInFlight = 4;
  constexpr int kRestartAfter = 15;  // completions before the restart
  RestartRig rig;
  rig.StartServer(0);
  const uint16_t port = rig.port;
  absl::StatusOr<std::shared_ptr<Channel>> c = Client::Connect(
      rig.io.get_executor(),
      TcpDialer(rig.io.get_executor(), "127.0.0.1", port), GoodClientOptions());
  REQUIRE(c.ok());
  const std::shared_ptr<Channel> client = *c;
  bool client_ended = false;
  std::vector<std::string> client_events;
  client->SetObserver([&](const ChannelEvent& e) {
    client_events.push_back(absl::StrCat(std::string(ChannelEventName(e.kind)),
                                         " ", e.status.ToString()));
    if (e.kind == ChannelEvent::Kind::kFailed ||
        e.kind == ChannelEvent::Kind::kClosed) {
      client_ended = true;
    }
  });
  absl::Status established = absl::UnknownError("pending");
  client->async_wait_established(
      [&established](absl::Status st) { established = std::move(st); });
  RunUntil(
      rig.io, [&] { return !absl::IsUnknown(established); }, "the handshake");
  REQUIRE(established.ok());
  const std::string session_hex = HexLower(client->session().session_id());

  // The submitting loop: up to kInFlight calls open; another starts as one
  // ends, until the client's session ends (then submitting is pointless:
  // it is refused locally with SESSION_CLOSED).
  std::vector<std::optional<absl::StatusOr<std::string>>> results;
  results.reserve(kTasks);
  int open = 0;
  int completed_ok = 0;
  bool restarted = false;
  std::function<void()> submit_more;
  auto submit_one = [&] {
    const size_t i = results.size();
    results.emplace_back();
    ++open;
    client->async_call(
        absl::StrCat("task", i), {}, [&, i](absl::StatusOr<std::string> r) {
          REQUIRE(i < results.size());
          REQUIRE_FALSE(results[i].has_value());  // exactly one completion
          --open;
          if (r.ok()) {
            CHECK(*r == absl::StrCat("task", i, ":done"));
            CHECK_FALSE(restarted);  // the new server never saw it
            ++completed_ok;
          }
          results[i] = std::move(r);
          submit_more();
        });
  };
  submit_more = [&] {
    while (!client_ended && open < kInFlight && results.size() < kTasks) {
      submit_one();
    }
  };
  submit_more();
  RunUntil(
      rig.io, [&] { return completed_ok >= kRestartAfter; },
      "tasks before the restart");

  // The restart, in one step (the client runs only after it): the old
  // server goes, a new one listens on the same port.
  bool graceful = true;
  SECTION("Stop(): the old server says it stopped") { rig.server->Stop(); }
  SECTION("abrupt: connections dropped without a word, as in a crash") {
    graceful = false;
    for (const auto& p : rig.server_sessions) p->KillConnection();
    rig.server->Stop();
  }
  rig.server.reset();
  rig.server_sessions.clear();
  restarted = true;
  rig.StartServer(port);
  REQUIRE(rig.port == port);
  // Submitted during the outage (the client does not know yet).
  submit_one();
  submit_one();

  RunUntil(
      rig.io,
      [&] {
        return client_ended &&
               std::all_of(results.begin(), results.end(),
                           [](const auto& r) { return r.has_value(); });
      },
      "every submitted task to end", 15000ms);

  std::map<std::string, int> distribution;
  for (size_t i = 0; i < results.size(); ++i) {
    const absl::StatusOr<std::string>& r = *results[i];
    if (r.ok()) {
      ++distribution["OK (before the restart)"];
      continue;
    }
    const absl::Status& st = r.status();
    ++distribution[absl::StrCat(absl::StatusCodeToString(st.code()), " / ",
                                ErrorCodeName(GetErrorCode(st)))];
    INFO("task " << i << ": " << st.ToString());
    const bool unavailable = st.code() == absl::StatusCode::kUnavailable;
    const bool expired =
        st.code() == absl::StatusCode::kDataLoss &&
        GetErrorCode(st) == ErrorCode::kSessionExpired &&
        absl::StrContains(absl::AsciiStrToLower(st.message()), session_hex);
    CHECK((unavailable || expired));
  }
  std::string summary;
  for (const auto& [what, n] : distribution) {
    absl::StrAppend(&summary, "\n  ", n, " x ", what);
  }
  std::string events;
  for (const std::string& e : client_events) {
    absl::StrAppend(&events, "\n  ", e);
  }
  WARN("restart (" << (graceful ? "Stop()" : "abrupt")
                   << "): " << results.size() << " tasks submitted:" << summary
                   << "\nclient events:" << events);
  CHECK(completed_ok >= kRestartAfter);
  CHECK(static_cast<int>(results.size()) > completed_ok);  // some were cut
  CHECK(client->state() == SessionState::kFailed);
  const absl::Status end = client->session().status();
  if (graceful) {
    // The old server's AGENT_ERROR ended the session; nothing to resume.
    CHECK(end.code() == absl::StatusCode::kUnavailable);
    CHECK(rig.server->counters().resumes_rejected == 0);
  } else {
    // The client resumed; the new server does not know the session.
    CHECK(GetErrorCode(end) == ErrorCode::kSessionExpired);
    CHECK(absl::StrContains(absl::AsciiStrToLower(end.message()), session_hex));
    CHECK(rig.server->counters().resumes_rejected == 1);
    CHECK(rig.server->counters().resumes == 0);
  }
  // Submitting now is refused locally, at once.
  absl::StatusOr<TaskCall> late = client->Submit("late");
  CHECK(GetErrorCode(late.status()) == ErrorCode::kSessionClosed);

  // The new server serves a new client.
  absl::StatusOr<std::shared_ptr<Channel>> fresh = Client::Connect(
      rig.io.get_executor(),
      TcpDialer(rig.io.get_executor(), "127.0.0.1", port), GoodClientOptions());
  REQUIRE(fresh.ok());
  absl::StatusOr<std::string> r = absl::UnknownError("pending");
  (*fresh)->async_call("after", {},
                       [&r](absl::StatusOr<std::string> x) { r = x; });
  RunUntil(
      rig.io, [&] { return !absl::IsUnknown(r.status()); },
      "a task on the new server");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(*r == "after:done");
  RunUntil(
      rig.io, [&] { return rig.server->connections() == 1; },
      "the new server to hold only the fresh client");
}

// ---- issue #11: memory before authentication --------------------------------

// Flooder: a raw TCP connection that writes `prefix`, then zeros from one
// shared buffer, as fast as the server reads them, up to `total` bytes or
// until the server closes the connection.
class Flooder {
 public:
  Flooder(asio::io_context& io, uint16_t port, Bytes prefix, size_t total)
      : s_(std::make_shared<State>(io)) {
    s_->prefix = std::move(prefix);
    s_->left = total;
    s_->socket.async_connect(
        Tcp::endpoint(asio::ip::address_v4::loopback(), port),
        [s = s_](const SysError& ec) {
          if (ec) {
            s->ended = true;
            s->error = ec;
            return;
          }
          asio::async_write(s->socket, asio::buffer(s->prefix),
                            [s](const SysError& e, size_t n) {
                              s->written += n;
                              if (e) {
                                s->ended = true;
                                s->error = e;
                                return;
                              }
                              WriteMore(s);
                            });
          ReadLoop(s);
        });
  }
  Flooder(const Flooder&) = delete;
  Flooder& operator=(const Flooder&) = delete;
  ~Flooder() {
    SysError ignored;
    s_->socket.close(ignored);
  }
  // The server closed the connection (its read side saw the end, or a
  // write failed), or every byte was written.
  bool ended() const { return s_->ended || s_->closed_by_server; }
  bool closed_by_server() const { return s_->closed_by_server; }
  size_t written() const { return s_->written; }

 private:
  struct State {
    explicit State(asio::io_context& io) : socket(io) {}
    Tcp::socket socket;
    Bytes prefix;
    size_t left = 0;
    size_t written = 0;
    bool ended = false;
    bool closed_by_server = false;
    SysError error;
    std::array<std::byte, 4096> in{};
  };
  static const Bytes& Zeros() {
    static const Bytes zeros(64 * 1024);
    return zeros;
  }
  static void WriteMore(const std::shared_ptr<State>& s) {
    if (s->left == 0) {
      s->ended = true;
      return;
    }
    const size_t n = std::min(s->left, Zeros().size());
    s->socket.async_write_some(asio::buffer(Zeros().data(), n),
                               [s](const SysError& e, size_t wrote) {
                                 s->written += wrote;
                                 s->left -= std::min(s->left, wrote);
                                 if (e) {
                                   s->ended = true;
                                   s->error = e;
                                   return;
                                 }
                                 WriteMore(s);
                               });
  }
  static void ReadLoop(const std::shared_ptr<State>& s) {
    s->socket.async_read_some(asio::buffer(s->in),
                              [s](const SysError& e, size_t) {
                                if (e) {
                                  s->closed_by_server = true;
                                  return;
                                }
                                ReadLoop(s);
                              });
  }
  std::shared_ptr<State> s_;
};

// The bytes of the review's attack: a preface, then an AGENT_INIT header
// declaring 16,777,215 payload bytes.
Bytes InitFloodPrefix() {
  const std::string hex =
      "8953594d570d0a010c00000000"
      "80ffffff1062cd42";
  const std::string raw = absl::HexStringToBytes(hex);
  return Bytes(reinterpret_cast<const std::byte*>(raw.data()),
               reinterpret_cast<const std::byte*>(raw.data()) + raw.size());
}

TEST_CASE("hostile: 30 pre-auth connections flooding a 16 MiB INIT",
          "[hostile][issue11]") {
  constexpr size_t kConns = 30;
  constexpr size_t kFlood = size_t{16} << 20;
  ServerOptions so = HostileServer();
  so.session.handshake_timeout = absl::Seconds(60);  // not what stops them
  Fixture f(so);
  const ServerCounters before = f.server->counters();
  const uint64_t rss_before = RssKiB();
  uint64_t rss_peak = rss_before;
  std::vector<std::unique_ptr<Flooder>> floods;
  for (size_t i = 0; i < kConns; ++i) {
    floods.push_back(
        std::make_unique<Flooder>(f.io, f.port, InitFloodPrefix(), kFlood));
  }
  // The neighbour keeps completing tasks while the attack runs.
  const int ok_at_start = f.traffic->ok();
  RunUntil(
      f.io,
      [&] {
        rss_peak = std::max(rss_peak, RssKiB());
        return std::all_of(floods.begin(), floods.end(),
                           [](const auto& c) { return c->ended(); });
      },
      "the server to end every flooding connection", 30000ms);
  rss_peak = std::max(rss_peak, RssKiB());
  size_t most = 0;
  for (const auto& c : floods) most = std::max(most, c->written());
  WARN("30 x 16 MiB INIT floods: RSS "
       << rss_before / 1024 << " -> peak " << rss_peak / 1024
       << " MiB; at most " << most << " bytes written by one; "
       << f.traffic->ok() - ok_at_start << " neighbour tasks meanwhile");
  // The server closed each of them, long before it read 16 MiB.
  for (const auto& c : floods) {
    CHECK(c->closed_by_server());
    CHECK(c->written() < kFlood);
  }
  CHECK(rss_peak < rss_before + kRssScale * 30 * 1024);
  RunUntil(
      f.io, [&] { return f.server->connections() == 1; },
      "connections() to drop back to 1");
  const ServerCounters after = f.server->counters();
  CHECK(after.handshakes_failed == before.handshakes_failed + kConns);
  CHECK(after.sessions_established == before.sessions_established);
  f.ExpectGoodClientUnaffected();
}

TEST_CASE("hostile: max_handshaking_connections refuses the rest at once",
          "[hostile][issue11]") {
  ServerOptions so = HostileServer();
  so.session.handshake_timeout = absl::Seconds(60);
  so.max_handshaking_connections = 5;
  Fixture f(so);
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 8; ++i) {
    conns.push_back(std::make_unique<RawConn>(f.io, f.port));
    conns.back()->Send(Preface());
  }
  RunUntil(
      f.io,
      [&] {
        return f.server->counters().connections_accepted +
                   f.server->counters().connections_refused ==
               9;
      },
      "the server to take or refuse every connection");
  CHECK(f.server->counters().handshakes_refused == 3);
  CHECK(f.server->counters().connections_refused == 3);
  RunUntil(
      f.io,
      [&] {
        return std::count_if(conns.begin(), conns.end(),
                             [](const auto& c) { return c->closed(); }) == 3;
      },
      "three connections to be closed");
  CHECK(f.server->connections() == 6);
  // The handshaking ones still finish: a real client gets in once one ends.
  conns.clear();
  RunUntil(
      f.io, [&] { return f.server->connections() == 1; },
      "the raw connections to end");
  DrivenSession late(f.io, f.port, 7);
  RunUntil(
      f.io, [&] { return late.established(); }, "a later handshake");
  f.ExpectGoodClientUnaffected();
}

// ---- issue #11: the session registry ----------------------------------------

// Handshakes with the server and leaves: the server keeps a disconnected
// session with nothing to resume.
void LeaveIdleSession(Fixture& f, uint64_t seed) {
  DrivenSession s(f.io, f.port, seed);
  RunUntil(
      f.io, [&] { return s.established() || s.failed(); }, "a handshake");
  REQUIRE(s.established());
  s.conn().Close();
  // The server notices the loss.
  RunUntil(
      f.io,
      [&] {
        return !f.sessions.empty() &&
               f.sessions.back()->state() == SessionState::kDisconnected;
      },
      "the server to see the idle session disconnect");
}

TEST_CASE("hostile: a registry full of idle sessions still takes a fresh one",
          "[hostile][issue11]") {
  ServerOptions so = HostileServer();
  so.max_sessions = 5;
  Fixture f(so);
  for (uint64_t i = 0; i < 4; ++i) LeaveIdleSession(f, 100 + i);
  REQUIRE(f.server->sessions() == 5);
  const std::shared_ptr<Channel> oldest = f.sessions[1];
  // The registry is full; every disconnected session in it is idle.
  for (uint64_t i = 0; i < 10; ++i) {
    DrivenSession fresh(f.io, f.port, 200 + i);
    RunUntil(
        f.io, [&] { return fresh.established() || fresh.failed(); },
        "a fresh handshake on a full registry");
    INFO("fresh client: " << (fresh.failed() ? fresh.failed()->ToString()
                                             : std::string("ok")));
    REQUIRE(fresh.established());
    RunFor(f.io, 20ms);
    CHECK_FALSE(fresh.failed());
    fresh.conn().Close();
    RunUntil(
        f.io,
        [&] {
          return f.sessions.back()->state() == SessionState::kDisconnected;
        },
        "the fresh session to disconnect");
  }
  CHECK(f.server->sessions() == 5);
  CHECK(f.server->counters().sessions_evicted == 10);
  CHECK(f.server->counters().sessions_refused == 0);
  // Oldest first: the first idle session went first, with a clear status.
  CHECK(oldest->state() == SessionState::kFailed);
  CHECK(GetErrorCode(oldest->session().status()) == ErrorCode::kSessionExpired);
  CHECK(absl::StrContains(oldest->session().status().message(), "evicted"));
  f.ExpectGoodClientUnaffected();
}

TEST_CASE("hostile: a session with an open task is never evicted",
          "[hostile][issue11]") {
  ServerOptions so = HostileServer();
  so.max_sessions = 3;
  Fixture f(so);
  // A session whose task the agent holds, then its client disconnects.
  DrivenSession holder(f.io, f.port, 300);
  RunUntil(
      f.io, [&] { return holder.established(); }, "the holder's handshake");
  REQUIRE(f.sessions.size() == 2);
  const std::shared_ptr<Channel> held = f.sessions[1];
  std::vector<IncomingTask> kept;
  held->SetTaskHandler([&kept](IncomingTask t) { kept.push_back(t); });
  REQUIRE(holder.session().SubmitTask(ByteSpan("hold"), {}, SteadyNow()).ok());
  holder.Flush();
  RunUntil(
      f.io, [&] { return kept.size() == 1; }, "the agent to get the task");
  holder.conn().Close();
  RunUntil(
      f.io, [&] { return held->state() == SessionState::kDisconnected; },
      "the holder's session to disconnect");
  LeaveIdleSession(f, 301);
  const std::shared_ptr<Channel> idle = f.sessions.back();
  REQUIRE(f.server->sessions() == 3);

  // The first fresh client takes the idle session's place, not the held one.
  DrivenSession fresh(f.io, f.port, 302);
  RunUntil(
      f.io, [&] { return fresh.established() || fresh.failed(); },
      "a fresh handshake");
  REQUIRE(fresh.established());
  CHECK(idle->state() == SessionState::kFailed);
  CHECK(held->state() == SessionState::kDisconnected);
  CHECK(f.server->counters().sessions_evicted == 1);

  // Now nothing is evictable (two connected, one with an open task): the
  // next one is refused with RESOURCE_EXHAUSTED.
  DrivenSession refused(f.io, f.port, 303);
  RunUntil(
      f.io, [&] { return refused.failed().has_value(); },
      "the refusal of a handshake on a full registry");
  INFO(refused.failed()->ToString());
  CHECK(refused.failed()->code() == absl::StatusCode::kResourceExhausted);
  CHECK(absl::StrContains(refused.failed()->message(), "max_sessions"));
  CHECK(held->state() == SessionState::kDisconnected);
  CHECK(f.server->counters().sessions_refused == 1);
  // The held task can still be answered once its client resumes; here the
  // agent simply answers into the replay buffer.
  CHECK(kept[0].Respond("late", true).ok());
  f.ExpectGoodClientUnaffected();
}

TEST_CASE("hostile: max_sessions_per_source refuses the 11th session",
          "[hostile][issue11]") {
  ServerOptions so = HostileServer();
  so.max_sessions_per_source = 10;
  Fixture f(so);  // the good client is the source's first session
  std::vector<std::unique_ptr<DrivenSession>> live;
  for (uint64_t i = 0; i < 9; ++i) {
    live.push_back(std::make_unique<DrivenSession>(f.io, f.port, 400 + i));
    RunUntil(
        f.io, [&] { return live.back()->established(); }, "a handshake");
  }
  REQUIRE(f.server->sessions() == 10);
  DrivenSession eleventh(f.io, f.port, 499);
  RunUntil(
      f.io, [&] { return eleventh.failed().has_value(); },
      "the 11th session to be refused");
  INFO(eleventh.failed()->ToString());
  CHECK(eleventh.failed()->code() == absl::StatusCode::kResourceExhausted);
  CHECK(absl::StrContains(eleventh.failed()->message(),
                          "source 127.0.0.1 holds 10 sessions"));
  CHECK(absl::StrContains(eleventh.failed()->message(),
                          "max_sessions_per_source"));
  CHECK(f.server->counters().sessions_refused_per_source == 1);
  CHECK(f.server->sessions() == 10);
  // An idle one of that source makes room: it is evicted for the next.
  live[0]->conn().Close();
  RunUntil(
      f.io,
      [&] { return f.sessions[1]->state() == SessionState::kDisconnected; },
      "the first one to disconnect");
  DrivenSession twelfth(f.io, f.port, 500);
  RunUntil(
      f.io, [&] { return twelfth.established() || twelfth.failed(); },
      "the 12th handshake");
  CHECK(twelfth.established());
  CHECK(f.server->counters().sessions_evicted == 1);
  f.ExpectGoodClientUnaffected();
}

// ---- issue #11: failed authentication per source ----------------------------

TEST_CASE("hostile: failed authentications block their source for a while",
          "[hostile][issue11]") {
  ServerOptions so = HostileServer();
  so.session.authenticator = TokenAuthenticator("right token");
  so.max_auth_failures_per_source = 3;
  so.auth_failure_window = 10000ms;
  so.auth_block_time = 1500ms;
  ClientOptions good = GoodClientOptions();
  good.session.authenticator = TokenAuthenticator("right token");
  Fixture f(so, good);
  const auto attempt = [&](const std::string& token) {
    ClientOptions co = GoodClientOptions();
    co.session.authenticator = TokenAuthenticator(token);
    co.retry_first_connect = false;
    absl::StatusOr<std::shared_ptr<Channel>> c = Client::Connect(
        f.io.get_executor(),
        TcpDialer(f.io.get_executor(), "127.0.0.1", f.port), co);
    REQUIRE(c.ok());
    absl::Status st = absl::UnknownError("pending");
    (*c)->async_wait_established([&st](absl::Status s) { st = s; });
    RunUntil(
        f.io, [&] { return !absl::IsUnknown(st); }, "an attempt to end");
    return st;
  };
  for (int i = 0; i < 3; ++i) {
    const absl::Status st = attempt("wrong token");
    INFO(st.ToString());
    CHECK(GetErrorCode(st) == ErrorCode::kUnauthenticated);
  }
  CHECK(f.server->counters().auth_failures == 3);
  // Blocked: even the right token is refused at once, before any work.
  const auto blocked_at = Clock::now();
  const absl::Status blocked = attempt("right token");
  INFO(blocked.ToString());
  CHECK(GetErrorCode(blocked) == ErrorCode::kConnectionLost);
  CHECK(f.server->counters().auth_refused == 1);
  // The established neighbour is not affected, and after the block time
  // the source gets in again.
  f.ExpectProgress(5, "while the source is blocked");
  while (Clock::now() - blocked_at < 1600ms) RunFor(f.io, 50ms);
  CHECK(attempt("right token").ok());
  f.ExpectGoodClientUnaffected();
}

// ---- issue #11: a peer that never reads
// ---------------------------------------

TEST_CASE("hostile: a peer that never reads is cut by the write timeout",
          "[hostile][issue11]") {
  ServerOptions so = HostileServer();
  so.transport.write_progress_timeout = 500ms;
  so.tcp.send_buffer_bytes = 16 * 1024;
  Fixture f(so);
  // The attacker: a client that submits a task with a large streamed answer
  // and never takes it (max_unread_response_bytes stops its reads).
  ClientOptions co = GoodClientOptions();
  co.max_unread_response_bytes = 64 * 1024;
  TcpOptions small;
  small.receive_buffer_bytes = 16 * 1024;
  absl::StatusOr<std::shared_ptr<Channel>> attacker = Client::Connect(
      f.io.get_executor(),
      TcpDialer(f.io.get_executor(), "127.0.0.1", f.port, small), co);
  REQUIRE(attacker.ok());
  RunUntil(
      f.io, [&] { return f.sessions.size() == 2; }, "the attacker's session");
  const std::shared_ptr<Channel> victim = f.sessions[1];
  std::vector<ChannelEvent> events;
  victim->SetObserver(
      [&events](const ChannelEvent& e) { events.push_back(e); });
  // 8 MiB of responses in 64 KiB parts.
  victim->SetTaskHandler([](IncomingTask task) {
    auto left = std::make_shared<int>(128);
    auto next = std::make_shared<std::function<void()>>();
    *next = [task, left, next]() mutable {
      if (*left == 0) {
        *next = nullptr;
        return;
      }
      const bool final = --*left == 0;
      task.async_respond(std::string(64 * 1024, 'r'), final,
                         [next](absl::Status st) {
                           if (st.ok() && *next) (*next)();
                         });
    };
    (*next)();
  });
  TaskCall call;
  (*attacker)->async_submit("big", {}, [&call](absl::StatusOr<TaskCall> c) {
    REQUIRE(c.ok());
    call = *c;
  });
  RunUntil(
      f.io,
      [&] {
        return std::any_of(events.begin(), events.end(), [](const auto& e) {
          return e.kind == ChannelEvent::Kind::kReconnecting;
        });
      },
      "the server to cut the connection of the peer that does not read",
      15000ms);
  const ChannelEvent& cut = events.front();
  INFO(cut.status.ToString());
  CHECK(GetErrorCode(cut.status) == ErrorCode::kPeerUnresponsive);
  CHECK(absl::StrContains(cut.status.message(), "no write progress"));
  f.ExpectProgress(5, "after the cut");
  (*attacker)->Abort(absl::CancelledError("test over"));
  f.ExpectGoodClientUnaffected();
}

// ---- issue #11: no-op control frames and a dripped frame --------------------

// Neighbour tasks per second over `elapsed`, for the stderr summary line.
double PerSecond(int tasks, Clock::duration elapsed) {
  const double s = std::chrono::duration<double>(elapsed).count();
  return s > 0 ? tasks / s : 0.0;
}

// `count` frames that carry nothing new (SPEC.md §14.1), alternating an
// empty AGENT_SYNC and a SYNC repeating ack 0 (the attacker has received no
// sequenced frame, so the ack never advances).
Bytes NoopFrames(size_t count) {
  std::vector<std::byte> ack_payload;
  SyncMessage ack;
  ack.ack = 0;
  REQUIRE(AppendSync(ack, ack_payload).ok());
  const Bytes empty_sync = Frame(FrameHeader{MessageType::kAgentSync, 0, 0, 0},
                                 absl::Span<const std::byte>());
  const Bytes ack_sync = Frame(
      FrameHeader{MessageType::kAgentSync, kFlagChecksum, 0, 0}, ack_payload);
  Bytes out;
  for (size_t i = 0; i < count; ++i) {
    const Bytes& f = i % 2 == 0 ? empty_sync : ack_sync;
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

TEST_CASE("hostile: a no-op SYNC flood ends that session with PING_FLOOD",
          "[hostile][issue11]") {
  // Attackers one after another, each handshaking and then writing 1,000
  // no-op SYNCs at once (the server must end it after the 101st).
  constexpr int kAttackers = 10;
  ServerOptions so = HostileServer();
  so.session.max_noop_frames = 100;  // the default, stated
  Fixture f(so);
  const ServerCounters before = f.server->counters();
  const Bytes burst = NoopFrames(1000);  // 10x the limit
  const uint64_t rss_before = RssKiB();
  uint64_t rss_peak = rss_before;
  const int ok_at_start = f.traffic->ok();
  const auto start = Clock::now();
  for (int a = 0; a < kAttackers; ++a) {
    INFO("attacker " << a);
    DrivenSession attacker(f.io, f.port, static_cast<uint64_t>(600 + a));
    RunUntil(
        f.io, [&] { return attacker.established(); },
        "the attacker's handshake");
    RunUntil(
        f.io, [&] { return f.sessions.size() == static_cast<size_t>(a) + 2; },
        "the server to announce the attacker's session");
    const std::shared_ptr<Channel> victim = f.sessions.back();
    // From here the attacker writes only no-op frames (its own session
    // would answer the server's pings with a pong, which is progress).
    attacker.conn().OnData(nullptr);
    attacker.conn().Send(burst);
    RunUntil(
        f.io,
        [&] {
          rss_peak = std::max(rss_peak, RssKiB());
          return attacker.conn().closed();
        },
        "the server to end the flooding session", 10000ms);
    // The server said why, on the server and on the wire.
    const Reply r = DecodeReply(attacker.conn().received());
    CHECK(r.decode_status.ok());
    CHECK(std::find(r.errors.begin(), r.errors.end(), ErrorCode::kPingFlood) !=
          r.errors.end());
    INFO("server-side session: " << victim->session().status().ToString());
    CHECK(victim->state() == SessionState::kFailed);
    CHECK(GetErrorCode(victim->session().status()) == ErrorCode::kPingFlood);
    CHECK(victim->session().status().code() ==
          absl::StatusCode::kResourceExhausted);
    CHECK(absl::StrContains(victim->session().status().message(),
                            "max_noop_frames 100"));
  }
  const auto elapsed = Clock::now() - start;
  const int tasks = f.traffic->ok() - ok_at_start;
  rss_peak = std::max(rss_peak, RssKiB());
  std::fprintf(stderr,
               "no-op SYNC flood (%d attackers): RSS %llu -> peak %llu MiB; "
               "neighbour %d tasks in %.0f ms (%.0f tasks/s)\n",
               kAttackers, static_cast<unsigned long long>(rss_before / 1024),
               static_cast<unsigned long long>(rss_peak / 1024), tasks,
               std::chrono::duration<double, std::milli>(elapsed).count(),
               PerSecond(tasks, elapsed));
  CHECK(tasks > 0);  // the neighbour progressed during the attack
  CHECK(rss_peak < rss_before + kRssScale * 64 * 1024);
  RunUntil(
      f.io,
      [&] { return f.server->connections() == 1 && f.server->sessions() == 1; },
      "the server to forget the flooding sessions");
  const ServerCounters after = f.server->counters();
  CHECK(after.sessions_established == before.sessions_established + kAttackers);
  f.ExpectGoodClientUnaffected();
}

// Dripper: writes `bytes` on `conn` one byte every `every` until they run
// out, the connection closes, or the Dripper is destroyed. Its timer's
// handlers share the state, so they may run after it is gone.
class Dripper {
 public:
  Dripper(asio::io_context& io, RawConn& conn, Bytes bytes,
          std::chrono::milliseconds every)
      : s_(std::make_shared<State>(io)) {
    s_->conn = &conn;
    s_->bytes = std::move(bytes);
    s_->every = every;
    Next(s_);
  }
  Dripper(const Dripper&) = delete;
  Dripper& operator=(const Dripper&) = delete;
  ~Dripper() {
    s_->stopped = true;
    s_->timer.cancel();
  }
  size_t sent() const { return s_->next; }

 private:
  struct State {
    explicit State(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    RawConn* conn = nullptr;
    Bytes bytes;
    size_t next = 0;
    std::chrono::milliseconds every{};
    bool stopped = false;
  };
  static void Next(const std::shared_ptr<State>& s) {
    if (s->stopped || s->conn->closed() || s->next == s->bytes.size()) return;
    s->conn->Send(Bytes{s->bytes[s->next++]});
    s->timer.expires_after(s->every);
    s->timer.async_wait([s](const SysError& ec) {
      if (!ec) Next(s);
    });
  }
  std::shared_ptr<State> s_;
};

TEST_CASE("hostile: a frame dripped byte by byte is cut at frame_timeout",
          "[hostile][issue11]") {
  constexpr auto kFrameTimeout = 300ms;
  constexpr auto kDrip = 20ms;
  ServerOptions so = HostileServer();
  so.session.frame_timeout = absl::FromChrono(kFrameTimeout);
  Fixture f(so);
  DrivenSession attacker(f.io, f.port, 700);
  RunUntil(
      f.io, [&] { return attacker.established(); }, "the attacker's handshake");
  RunUntil(
      f.io, [&] { return f.sessions.size() == 2; },
      "the server to announce the attacker's session");
  const std::shared_ptr<Channel> victim = f.sessions[1];
  std::vector<ChannelEvent> events;
  victim->SetObserver(
      [&events](const ChannelEvent& e) { events.push_back(e); });
  // Only the dripped bytes from here (no pong in the middle of the frame).
  attacker.conn().OnData(nullptr);
  // A valid TASK of 1 KiB: at one byte per 20 ms it would take 20 s.
  const Bytes task = Frame(FrameHeader{MessageType::kAgentTask, 0, 1, 1},
                           Bytes(1024, std::byte{'x'}));
  const uint64_t rss_before = RssKiB();
  uint64_t rss_peak = rss_before;
  const int ok_at_start = f.traffic->ok();
  const auto start = Clock::now();
  Dripper drip(f.io, attacker.conn(), task, kDrip);
  RunUntil(
      f.io,
      [&] {
        rss_peak = std::max(rss_peak, RssKiB());
        return attacker.conn().closed();
      },
      "the server to cut the dripping connection", 10 * kFrameTimeout);
  const auto elapsed = Clock::now() - start;
  const int tasks = f.traffic->ok() - ok_at_start;
  rss_peak = std::max(rss_peak, RssKiB());
  std::fprintf(
      stderr,
      "frame dripped one byte per %lld ms: cut after %.0f ms (%zu bytes; "
      "frame_timeout %lld ms); RSS %llu -> peak %llu MiB; neighbour %d tasks "
      "(%.0f tasks/s)\n",
      static_cast<long long>(kDrip.count()),
      std::chrono::duration<double, std::milli>(elapsed).count(), drip.sent(),
      static_cast<long long>(kFrameTimeout.count()),
      static_cast<unsigned long long>(rss_before / 1024),
      static_cast<unsigned long long>(rss_peak / 1024), tasks,
      PerSecond(tasks, elapsed));
  // Cut by the frame timeout, not earlier (a lower bound cannot be flaky),
  // and well before the frame could have completed.
  CHECK(elapsed >= kFrameTimeout - 50ms);
  CHECK(drip.sent() < task.size());
  CHECK(tasks > 0);  // the neighbour progressed during the attack
  CHECK(rss_peak < rss_before + kRssScale * 64 * 1024);
  const Reply r = DecodeReply(attacker.conn().received());
  CHECK(r.decode_status.ok());
  for (ErrorCode e : r.errors) CHECK(e == ErrorCode::kPeerUnresponsive);
  // The connection ended, not the session (SPEC.md §14.1): it may resume.
  RunUntil(
      f.io, [&] { return !events.empty(); },
      "the server-side session to report the cut");
  INFO(events.front().status.ToString());
  CHECK(events.front().kind == ChannelEvent::Kind::kReconnecting);
  CHECK(GetErrorCode(events.front().status) == ErrorCode::kPeerUnresponsive);
  CHECK(absl::StrContains(events.front().status.message(), "not complete"));
  CHECK(victim->state() == SessionState::kDisconnected);
  RunUntil(
      f.io, [&] { return f.server->connections() == 1; },
      "connections() to drop back to 1");
  f.ExpectGoodClientUnaffected();
  victim->SetObserver(nullptr);  // `events` goes first
}

}  // namespace
}  // namespace symwire
