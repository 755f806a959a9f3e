// File: examples/demo.cpp
// The README's demo (tools/demo.sh): orchestrator-worker over TCP, with
// real processes. The orchestrator starts K agent processes (this same
// program with --agent), each listening on 127.0.0.1 on a port it picks
// and reports on its stdout; it connects a Client to each and pushes N
// tasks through them. Each agent streams every answer as P responses
// (P - 1 partials and a final one). Every agent has at most W tasks in
// flight; each answer frees a slot for the next task in the shared queue.
//
// Midway, the orchestrator drops its connection to agent 1 abruptly
// (Channel::KillConnection, as a network failure would). That Client redials
// and resumes the session; the run goes on, and no task is lost or run
// twice.
//
// While it runs, a progress line shows tasks done, messages per second and
// reconnects (redrawn in place on a terminal, a line per second
// otherwise). At the end: tasks, messages per second, p50/p99 latency
// (submit to final response, steady_clock), resumes and errors.
//
// Metrics (--metrics-port M): each agent keeps RuntimeMetrics (task
// counts, bytes, latency histograms) and serves them, with its server's
// counters, in the Prometheus text format at http://127.0.0.1:PORT/metrics
// (a tiny Boost.Beast HTTP server: GET /metrics, 404 for anything else,
// requests bounded to 8 KiB and 5 s). Agent k listens on M + k - 1, or on
// any free port with M = 0; the orchestrator prints each URL.
// --hold-metrics keeps the agents, and their /metrics, up after the run
// until the orchestrator's stdin ends (tests/cli/metrics_scrape.py).
//
// Usage: symwire_demo [--tasks N] [--agents K] [--parts P] [--window W]
//                     [--no-cut] [--metrics-port M] [--hold-metrics]
//        symwire_demo --agent --parts P [--metrics-port M]
//                                          (what the orchestrator runs)
// Exit status 0 when every task was answered correctly and every cut was
// resumed; the last line is then "demo ok".
// The codec-only demo is symwire_codec_demo (examples/codec_demo.cpp).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/posix/stream_descriptor.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/empty_body.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/string_body.hpp"
#include "boost/beast/http/write.hpp"
#include "cli/args.hpp"
#include "symwire/runtime/observer.hpp"
#include "symwire/runtime/prometheus.hpp"
#include "symwire/runtime/runtime.hpp"
#include "symwire/runtime/server_metrics.hpp"
#include "symwire/transport/tcp.hpp"

extern char** environ;  // posix_spawn passes our environment on

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kRefresh{250};  // progress redraw
constexpr std::chrono::seconds kStallLimit{15};     // no progress: give up

// Options: the command line.
struct Options {
  bool agent = false;
  uint64_t tasks = 4000000;
  int agents = 3;
  int parts = 4;          // responses per task (the last one final)
  int window = 64;        // tasks in flight per agent
  bool cut = true;        // drop agent 1's connection midway
  int metrics_port = -1;  // -1: no /metrics; 0: any free port
  bool hold_metrics = false;
};

// ParseOptions: the command line; exits 0 after --help and 2 on a usage
// error (tools/cli/args.hpp, the parser of every program of the project).
Options ParseOptions(int argc, char** argv) {
  Options o;
  symwire_cli::Args args(
      "symwire_demo", "[flags]",
      "N tasks over K agent processes on 127.0.0.1, each answered as P "
      "streamed\nresponses, at most W in flight per agent; the connection "
      "to agent 1 is cut\nmidway unless --no-cut.");
  args.Int<uint64_t>("--tasks", &o.tasks, "N", "tasks in all", 1,
                     uint64_t{1} << 32)
      .Int("--agents", &o.agents, "K", "agent processes", 1, 64)
      .Int("--parts", &o.parts, "P", "responses per task (the last one final)",
           1, 32)
      .Int("--window", &o.window, "W", "tasks in flight per agent", 1, 1024)
      .Switch("--no-cut", &o.cut, "do not cut agent 1's connection", false)
      .Int("--metrics-port", &o.metrics_port, "M",
           "agents serve Prometheus /metrics on M + k - 1 (0: any port, "
           "-1: off)",
           -1, 65535)
      .Switch("--hold-metrics", &o.hold_metrics,
              "after the run, keep the agents' /metrics up until stdin ends")
      .Switch("--agent", &o.agent,
              "run as an agent process (the orchestrator starts these)");
  args.Parse(argc, argv);
  return o;
}

// Commas: 1234567 -> "1,234,567".
std::string Commas(uint64_t n) {
  const std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// ---- The agent process ------------------------------------------------------

// MetricsHttp: the agent's /metrics endpoint, as small as HTTP gets: one
// request per connection (Connection: close), GET /metrics answered 200
// with render(), anything else 404; a request whose header exceeds 8 KiB,
// that has a body, or that takes over 5 s is dropped unanswered.
class MetricsHttp {
 public:
  using tcp = asio::ip::tcp;
  static constexpr size_t kMaxRequestBytes = 8192;

  MetricsHttp(asio::io_context& io, std::function<std::string()> render)
      : acceptor_(io), render_(std::move(render)) {}

  // Listen: on 127.0.0.1:`port` (0: any); the port bound.
  absl::StatusOr<uint16_t> Listen(uint16_t port) {
    boost::system::error_code ec;
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    const tcp::endpoint bound = ec ? ep : acceptor_.local_endpoint(ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(
          "metrics: listen on 127.0.0.1:", port, ": ", ec.message()));
    }
    Accept();
    return bound.port();
  }
  void Stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  struct Connection {
    explicit Connection(tcp::socket s) : stream(std::move(s)) {}
    boost::beast::tcp_stream stream;
    boost::beast::flat_buffer buffer{kMaxRequestBytes};
    boost::beast::http::request_parser<boost::beast::http::empty_body> parser;
    boost::beast::http::response<boost::beast::http::string_body> response;
  };

  void Accept() {
    acceptor_.async_accept(
        [this](const boost::system::error_code& ec, tcp::socket socket) {
          if (!acceptor_.is_open()) return;
          if (!ec) Serve(std::make_shared<Connection>(std::move(socket)));
          Accept();
        });
  }
  void Serve(const std::shared_ptr<Connection>& c) {
    namespace http = boost::beast::http;
    c->parser.header_limit(kMaxRequestBytes);
    c->stream.expires_after(std::chrono::seconds(5));
    http::async_read(
        c->stream, c->buffer, c->parser,
        [this, c](const boost::system::error_code& ec, size_t) {
          if (ec) return;  // malformed, oversized or slow: dropped
          const auto& request = c->parser.get();
          const bool found = request.method() == http::verb::get &&
                             request.target() == "/metrics";
          c->response.version(11);
          c->response.result(found ? http::status::ok
                                   : http::status::not_found);
          const std::string_view type =
              found ? symwire::PrometheusText::kContentType
                    : std::string_view("text/plain");
          c->response.set(http::field::content_type,
                          boost::beast::string_view(type.data(), type.size()));
          c->response.body() = found ? render_() : "not found\n";
          c->response.keep_alive(false);
          c->response.prepare_payload();
          http::async_write(c->stream, c->response,
                            [c](const boost::system::error_code&, size_t) {
                              boost::system::error_code ignored;
                              c->stream.socket().shutdown(
                                  tcp::socket::shutdown_send, ignored);
                            });
        });
  }

  tcp::acceptor acceptor_;
  std::function<std::string()> render_;
};

// RunAgent: serves tasks on 127.0.0.1 (port printed on stdout) until its
// stdin ends, which is how the orchestrator says "exit" (and what happens
// if the orchestrator dies). Task "doc I" is answered with P - 1 partials
// "part J of doc I" and the final "summary of doc I".
int RunAgent(const Options& options) {
  asio::io_context io;
  symwire::ServerOptions server_options;
  server_options.session.agent_id = absl::StrCat("demo-agent-", getpid());
  server_options.session.role = symwire::AgentRole::kAgent;
  // Hooks only when metrics are asked for: without an observer the
  // runtime does no observer work at all.
  std::shared_ptr<symwire::RuntimeMetrics> metrics;
  if (options.metrics_port >= 0) {
    metrics = std::make_shared<symwire::RuntimeMetrics>();
    server_options.observer = metrics;
  }
  const int parts = options.parts;
  auto server = symwire::Server::Create(
      io.get_executor(), server_options,
      [parts](const std::shared_ptr<symwire::Channel>& session) {
        session->SetTaskHandler([parts](symwire::IncomingTask task) {
          const std::string doc = task.payload_string();
          for (int j = 1; j < parts; ++j) {
            const absl::Status st =
                task.Respond(absl::StrCat("part ", j, " of ", doc), false);
            if (!st.ok()) {
              // The send window cannot fill up here (--window and --parts
              // are capped well below it), so this is the task or the
              // session ending; Fail then reports WRONG_STATE, ignored.
              static_cast<void>(task.Fail(st));
              return;
            }
          }
          static_cast<void>(
              task.Respond(absl::StrCat("summary of ", doc), true));
        });
      });
  if (!server.ok()) {
    std::fprintf(stderr, "agent: %s\n", server.status().ToString().c_str());
    return 1;
  }
  auto endpoint = (*server)->ListenTcp("127.0.0.1", 0);
  if (!endpoint.ok()) {
    std::fprintf(stderr, "agent: %s\n", endpoint.status().ToString().c_str());
    return 1;
  }
  MetricsHttp http(io, [&] {
    symwire::PrometheusText text;
    metrics->AppendPrometheus(text);
    symwire::AppendPrometheus(text, **server);
    return text.Render();
  });
  int metrics_port = -1;
  if (metrics) {
    auto bound = http.Listen(static_cast<uint16_t>(options.metrics_port));
    if (!bound.ok()) {
      std::fprintf(stderr, "agent: %s\n", bound.status().ToString().c_str());
      return 1;
    }
    metrics_port = *bound;
  }
  // The one line this process writes to stdout: its port, and its metrics
  // port when it serves /metrics.
  if (metrics_port >= 0) {
    std::printf("%u %d\n", static_cast<unsigned>(endpoint->port()),
                metrics_port);
  } else {
    std::printf("%u\n", static_cast<unsigned>(endpoint->port()));
  }
  std::fflush(stdout);

  asio::posix::stream_descriptor input(io, ::dup(STDIN_FILENO));
  char byte = 0;
  std::function<void()> watch_stdin = [&] {
    input.async_read_some(asio::buffer(&byte, 1),
                          [&](const boost::system::error_code& ec, size_t) {
                            if (ec) {
                              (*server)->Stop();
                              http.Stop();
                              io.stop();
                            } else {
                              watch_stdin();
                            }
                          });
  };
  watch_stdin();
  io.run();
  return 0;
}

// ---- The orchestrator -------------------------------------------------------

// AgentProcess: a started agent: its pid, the write end of its stdin, and
// the port it listens on.
struct AgentProcess {
  pid_t pid = -1;
  int stdin_fd = -1;
  uint16_t port = 0;
  int metrics_port = -1;  // -1: no /metrics
};

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// SpawnAgent: starts this program with --agent, its stdin and stdout on
// pipes, and reads the port line it prints (within 10 s).
absl::StatusOr<AgentProcess> SpawnAgent(int parts, int metrics_port) {
  int to_child[2];
  int from_child[2];
  // O_CLOEXEC: no agent inherits another's pipes (dup2 clears it on the
  // child's own 0 and 1).
  if (::pipe2(to_child, O_CLOEXEC) != 0) return Errno("pipe2");
  if (::pipe2(from_child, O_CLOEXEC) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    return Errno("pipe2");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
  std::vector<std::string> args = {"symwire_demo", "--agent", "--parts",
                                   absl::StrCat(parts)};
  if (metrics_port >= 0) {
    args.push_back("--metrics-port");
    args.push_back(absl::StrCat(metrics_port));
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  AgentProcess agent;
  const int rc = posix_spawn(&agent.pid, "/proc/self/exe", &actions, nullptr,
                             argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(to_child[0]);
  ::close(from_child[1]);
  if (rc != 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    return absl::InternalError(
        absl::StrCat("spawn agent: ", std::strerror(rc)));
  }
  agent.stdin_fd = to_child[1];
  std::string line;
  char c = 0;
  pollfd pfd{from_child[0], POLLIN, 0};
  while (line.size() < 24 && ::poll(&pfd, 1, 10000) == 1 &&
         ::read(from_child[0], &c, 1) == 1 && c != '\n') {
    line.push_back(c);
  }
  ::close(from_child[0]);
  int port = 0;
  const size_t space = line.find(' ');
  if (space != std::string::npos) {
    if (!absl::SimpleAtoi(line.substr(space + 1), &agent.metrics_port) ||
        agent.metrics_port <= 0 || agent.metrics_port > 65535) {
      agent.metrics_port = -1;
      line.clear();  // malformed: reported below
    }
    line.resize(std::min(line.size(), space));
  }
  if (!absl::SimpleAtoi(line, &port) || port <= 0 || port > 65535) {
    ::close(agent.stdin_fd);
    ::kill(agent.pid, SIGKILL);
    ::waitpid(agent.pid, nullptr, 0);
    return absl::UnavailableError(
        absl::StrCat("agent pid ", agent.pid, " reported no port"));
  }
  agent.port = static_cast<uint16_t>(port);
  return agent;
}

// Orchestrator: the task queue, the clients and the statistics.
class Orchestrator {
 public:
  Orchestrator(asio::io_context& io, const Options& options)
      : io_(io), options_(options), ticker_(io) {
    latencies_us_.reserve(options.tasks);
  }

  // Start: connects to every agent and starts dispatching.
  absl::Status Start(const std::vector<AgentProcess>& agents) {
    workers_.reserve(agents.size());  // handlers hold references
    for (const AgentProcess& a : agents) {
      symwire::ClientOptions client_options;
      client_options.session.agent_id = "demo-orchestrator";
      client_options.session.role = symwire::AgentRole::kOrchestrator;
      // gRPC's default first backoff is 1 s; a demo redials sooner.
      client_options.session.backoff.initial = absl::Milliseconds(100);
      auto client = symwire::Client::Connect(
          io_.get_executor(),
          symwire::TcpDialer(io_.get_executor(), "127.0.0.1", a.port),
          client_options);
      if (!client.ok()) return client.status();
      Worker& w = workers_.emplace_back();
      w.index = workers_.size();
      w.peer = *client;
      w.peer->SetObserver([this, &w](const symwire::ChannelEvent& e) {
        if (e.kind == symwire::ChannelEvent::Kind::kReconnecting) {
          ++reconnects_;
          Note(absl::StrCat("agent ", w.index, ": reconnecting (",
                            e.status.message(), ")"));
        } else if (e.kind == symwire::ChannelEvent::Kind::kResumed) {
          ++resumes_;
          Note(absl::StrCat("agent ", w.index, ": resumed, nothing lost"));
        } else if (e.kind == symwire::ChannelEvent::Kind::kFailed) {
          Note(absl::StrCat("agent ", w.index,
                            ": session failed: ", e.status.ToString()));
        }
      });
    }
    start_ = Clock::now();
    last_tick_ = {start_, 0};
    for (Worker& w : workers_) Fill(w);
    Tick();
    return absl::OkStatus();
  }

  // Summary: prints the closing report; true when the run succeeded.
  bool Summary() const {
    const double secs = std::chrono::duration<double>(end_ - start_).count();
    std::vector<int64_t> lat = latencies_us_;
    auto percentile = [&lat](double p) -> double {
      if (lat.empty()) return 0;
      const auto k =
          static_cast<size_t>(p * static_cast<double>(lat.size() - 1));
      std::nth_element(lat.begin(), lat.begin() + static_cast<ptrdiff_t>(k),
                       lat.end());
      return static_cast<double>(lat[k]) / 1000.0;
    };
    const double p50 = percentile(0.50);
    const double p99 = percentile(0.99);
    const double max = percentile(1.0);
    uint64_t frames = 0;
    uint64_t bytes = 0;
    std::string per_agent;
    for (const Worker& w : workers_) {
      const symwire::SessionCounters& c = w.peer->counters();
      frames += c.frames_in + c.frames_out;
      bytes += c.bytes_in + c.bytes_out;
      absl::StrAppend(&per_agent, per_agent.empty() ? "" : " / ",
                      Commas(w.done));
    }
    const auto rate = [secs](uint64_t n) {
      return Commas(static_cast<uint64_t>(static_cast<double>(n) / secs));
    };
    std::printf("\nsummary\n");
    std::printf(
        "  tasks:     %s in %.2f s (%s tasks/s), %d agent processes "
        "over TCP\n",
        Commas(done_).c_str(), secs, rate(done_).c_str(), options_.agents);
    std::printf("  messages:  %s (%s msgs/s): 1 task + %d responses each\n",
                Commas(messages_).c_str(), rate(messages_).c_str(),
                options_.parts);
    std::printf(
        "  latency:   p50 %.2f ms, p99 %.2f ms, max %.1f ms "
        "(submit -> final response)\n",
        p50, p99, max);
    std::printf("  resumes:   %llu (connections cut: %d)\n",
                static_cast<unsigned long long>(resumes_), cuts_);
    std::printf("  errors:    %llu\n",
                static_cast<unsigned long long>(errors_));
    std::printf("  per agent: %s tasks\n", per_agent.c_str());
    std::printf("  wire:      %s frames, %.1f MB (acks and pings included)\n",
                Commas(frames).c_str(), static_cast<double>(bytes) / 1e6);
    return done_ == options_.tasks && errors_ == 0 &&
           resumes_ >= static_cast<uint64_t>(cuts_) && !stalled_;
  }

 private:
  struct Worker {
    size_t index = 0;  // 1-based, as printed
    std::shared_ptr<symwire::Channel> peer;
    int in_flight = 0;
    uint64_t done = 0;
  };

  // Fill: tops the worker's window up from the shared queue.
  void Fill(Worker& w) {
    while (w.in_flight < options_.window && next_ < options_.tasks) {
      Submit(w, next_++);
    }
  }

  void Submit(Worker& w, uint64_t i) {
    ++w.in_flight;
    ++messages_;
    const Clock::time_point t0 = Clock::now();
    std::string doc = absl::StrCat("doc ", i);
    const std::string want = absl::StrCat("summary of ", doc);
    symwire::TaskCallbacks callbacks;
    // Zero-copy: the payload span is valid during the call only.
    callbacks.on_response = [this, want](absl::Span<const std::byte> payload,
                                         bool final) {
      ++messages_;
      if (final &&
          std::string_view(reinterpret_cast<const char*>(payload.data()),
                           payload.size()) != want) {
        Error(absl::DataLossError(absl::StrCat("wrong answer to ", want)));
      }
    };
    callbacks.on_done = [this, &w, t0](const absl::Status& st) {
      latencies_us_.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                                t0)
              .count());
      --w.in_flight;
      ++w.done;
      if (!st.ok()) Error(st);
      TaskDone();
      Fill(w);
    };
    w.peer->async_submit(
        std::move(doc), {}, std::move(callbacks),
        [this, &w](const absl::StatusOr<symwire::TaskCall>& call) {
          if (call.ok()) return;
          // Not submitted: on_done will not run.
          --w.in_flight;
          Error(call.status());
          TaskDone();
        });
  }

  void TaskDone() {
    ++done_;
    if (options_.cut && cuts_ == 0 && done_ >= options_.tasks / 2 &&
        workers_.front().peer->connected()) {
      ++cuts_;
      Note(absl::StrCat("cut: dropping the connection to agent 1 (",
                        workers_.front().peer->transport_description(), ") at ",
                        Commas(done_), " tasks"));
      workers_.front().peer->KillConnection();
    }
    if (done_ == options_.tasks) Finish();
  }

  void Error(const absl::Status& st) {
    if (++errors_ <= 5) Note(absl::StrCat("FAIL: ", st.ToString()));
  }

  // Note: a line of its own, above the progress line.
  void Note(const std::string& text) {
    std::printf("%s%s\n", tty_ ? "\r\x1b[K" : "", text.c_str());
    std::fflush(stdout);
  }

  // Tick: redraws the progress line every kRefresh (a new line every
  // second when stdout is not a terminal), and watches for a stall.
  void Tick() {
    ticker_.expires_after(kRefresh);
    ticker_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || finished_) return;
      Progress(false);
      Tick();
    });
  }

  void Progress(bool last) {
    const Clock::time_point now = Clock::now();
    ++ticks_;
    if (done_ != stall_done_) {
      stall_done_ = done_;
      stall_since_ = now;
    } else if (now - stall_since_ > kStallLimit) {
      stalled_ = true;
      Note(absl::StrCat("FAIL: no task finished for ", kStallLimit.count(),
                        " s; giving up"));
      Finish();
      return;
    }
    const int every = static_cast<int>(std::chrono::seconds(1) / kRefresh);
    if (!tty_ && !last && ticks_ % every != 0) return;
    const double dt =
        std::chrono::duration<double>(now - last_tick_.first).count();
    const double rate =
        dt > 0 ? static_cast<double>(messages_ - last_tick_.second) / dt : 0;
    last_tick_ = {now, messages_};
    // Under 80 columns: a wrapped line could not be redrawn with \r.
    std::printf("%s[%5.1f s] tasks %s/%s | %s msgs/s | reconnects %llu%s",
                tty_ ? "\r\x1b[K" : "",
                std::chrono::duration<double>(now - start_).count(),
                Commas(done_).c_str(), Commas(options_.tasks).c_str(),
                Commas(static_cast<uint64_t>(rate)).c_str(),
                static_cast<unsigned long long>(reconnects_),
                tty_ && !last ? "" : "\n");
    std::fflush(stdout);
  }

  // Finish: final progress line, then graceful closes.
  void Finish() {
    if (finished_) return;
    finished_ = true;
    end_ = Clock::now();
    ticker_.cancel();
    Progress(true);
    for (Worker& w : workers_) {
      w.peer->async_close([](const absl::Status&) {});
    }
    if (stalled_) io_.stop();
  }

  asio::io_context& io_;
  const Options options_;
  asio::steady_timer ticker_;
  const bool tty_ = ::isatty(STDOUT_FILENO) == 1;
  std::vector<Worker> workers_;  // reserved in Start: never reallocates
  uint64_t next_ = 0;
  uint64_t done_ = 0;
  uint64_t messages_ = 0;
  uint64_t errors_ = 0;
  uint64_t reconnects_ = 0;
  uint64_t resumes_ = 0;
  int cuts_ = 0;
  bool finished_ = false;
  bool stalled_ = false;
  uint64_t ticks_ = 0;
  uint64_t stall_done_ = 0;
  Clock::time_point stall_since_ = Clock::now();
  Clock::time_point start_;
  Clock::time_point end_;
  std::pair<Clock::time_point, uint64_t> last_tick_;
  std::vector<int64_t> latencies_us_;
};

int RunOrchestrator(const Options& options) {
  std::printf(
      "symwire demo: %s tasks over %d agent processes on 127.0.0.1 "
      "(%d streamed responses per task, %d in flight per agent)\n",
      Commas(options.tasks).c_str(), options.agents, options.parts,
      options.window);
  std::vector<AgentProcess> agents;
  int status = 1;
  {
    asio::io_context io;
    Orchestrator orchestrator(io, options);
    absl::Status started = absl::OkStatus();
    for (int i = 0; i < options.agents && started.ok(); ++i) {
      const int metrics_port = options.metrics_port > 0
                                   ? options.metrics_port + i
                                   : options.metrics_port;
      if (metrics_port > 65535) {
        started = absl::InvalidArgumentError(
            absl::StrCat("--metrics-port ", options.metrics_port, " + ", i,
                         " exceeds 65535"));
        break;
      }
      absl::StatusOr<AgentProcess> a = SpawnAgent(options.parts, metrics_port);
      if (a.ok()) {
        std::printf("agent %d: pid %d, tcp 127.0.0.1:%u\n", i + 1,
                    static_cast<int>(a->pid), static_cast<unsigned>(a->port));
        if (a->metrics_port > 0) {
          std::printf("agent %d: metrics http://127.0.0.1:%d/metrics\n", i + 1,
                      a->metrics_port);
        }
        agents.push_back(*a);
      } else {
        started = a.status();
      }
    }
    if (started.ok()) started = orchestrator.Start(agents);
    if (started.ok()) {
      io.run();
      status = orchestrator.Summary() ? 0 : 1;
    } else {
      std::printf("FAIL: %s\n", started.ToString().c_str());
    }
  }
  if (options.hold_metrics && !agents.empty()) {
    // The agents (and their /metrics) stay up until our stdin ends.
    std::printf("metrics: holding until stdin ends\n");
    std::fflush(stdout);
    char buf[256];
    while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
  }
  // Closing an agent's stdin tells it to exit; then reap it.
  for (const AgentProcess& a : agents) ::close(a.stdin_fd);
  for (const AgentProcess& a : agents) {
    int wstatus = 0;
    if (::waitpid(a.pid, &wstatus, 0) != a.pid || !WIFEXITED(wstatus) ||
        WEXITSTATUS(wstatus) != 0) {
      std::printf("FAIL: agent pid %d did not exit cleanly\n",
                  static_cast<int>(a.pid));
      status = 1;
    }
  }
  std::printf("%s\n", status == 0 ? "demo ok" : "demo FAILED");
  return status;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options options = ParseOptions(argc, argv);
  return options.agent ? RunAgent(options) : RunOrchestrator(options);
} catch (const std::exception& e) {  // Asio reports a few failures by throwing
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
