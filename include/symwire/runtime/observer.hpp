// File: symwire/runtime/observer.hpp
// Layer 3b (runtime). RuntimeObserver: hooks for every task and every
// connection of a Client's or a Server's channels (ChannelOptions::
// observer); TaskInfo, TaskEnd, ConnectionInfo: what they report; and
// RuntimeMetrics: a ready-made thread-safe observer that counts and keeps
// latency histograms per method, rendered by AppendPrometheus.
#ifndef SYMWIRE_RUNTIME_OBSERVER_HPP_
#define SYMWIRE_RUNTIME_OBSERVER_HPP_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "symwire/runtime/histogram.hpp"
#include "symwire/runtime/prometheus.hpp"
#include "symwire/session/event.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

// TaskInfo
// A task, as the hooks see it. Every view is valid during the hook call
// only.
struct TaskInfo {
  enum class Side : uint8_t {
    kSubmitter,  // this side submitted the task (Channel::Submit, ...)
    kExecutor,   // this side runs it (the task handler)
  };
  std::string_view method;  // the task's method name; "" when none
  std::string_view peer;    // the connection's description, or ""
  const TraceParent* trace_parent = nullptr;  // W3C trace context, if any
  TaskId id = 0;
  Side side = Side::kSubmitter;
};

// TaskEnd
// How a task ended: its status (OK after the final response), its latency
// (submitter: submission to end; executor: receipt to end; steady_clock)
// and the payload bytes it moved (requests and responses, frame headers
// and extensions excluded).
struct TaskEnd {
  absl::Status status;
  absl::Duration latency;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// ConnectionInfo
// A connection, as the hooks see it. `peer` is the transport's description
// ("tcp 127.0.0.1:40312") or, before a transport exists (a failed TLS
// handshake), the peer's address; `source` is the server's source of the
// connection (ServerOptions, "Sources"), "" on a client.
struct ConnectionInfo {
  std::string_view peer;
  std::string_view source;
};

// PoolEndpointInfo
// An endpoint of a Pool (runtime/pool.hpp), as the hooks see it: its
// address label and its state's name (EndpointStateName: "READY",
// "FAILED", ...). Views valid during the hook call only.
struct PoolEndpointInfo {
  std::string_view address;
  std::string_view state;
};

// RuntimeObserver
// Hooks, all no-ops by default: override what you need and set it as
// ChannelOptions::observer (ClientOptions, ServerOptions). Unset (the
// default), the runtime does no observer work at all: no clock read, no
// allocation, one pointer test per task event.
//
// Threading: a hook runs inline on the executor of the channel it concerns
// (a Server with threads > 1: on every shard's thread at once), so an
// observer shared by several channels or a sharded server must be
// thread-safe. A hook must not call back into the runtime synchronously
// (post instead) and should be cheap: it runs on the I/O path.
//
// Tasks (both sides; `info.side` says which):
//   OnTaskSubmitted   a task was submitted here (sent or queued to send);
//   OnTaskStarted     a task arrived here, before its handler runs;
//   OnTaskFirstResponse  the first response of a task (partial or final)
//                     was received (submitter) or sent (executor); `since`
//                     is the time since submission / receipt;
//   OnTaskFinished    exactly once per task reported by Submitted/Started:
//                     OK after the final response, else its error.
// Connections:
//   OnConnectionAccepted  a server took a connection (TCP or Unix accept;
//                     for TLS before its handshake; Server::Accept);
//   OnHandshakeFailed a connection ended before establishing or resuming
//                     a session (TLS or symwire handshake), with why;
//   OnConnectionResumed   a session resumed on a new connection (both
//                     sides);
//   OnConnectionClosed    a connection that carried a session ended (lost,
//                     closed, superseded), with why when known.
// Pools (runtime/pool.hpp, on the pool's executor):
//   OnEndpointUp      an endpoint became ready: new tasks go to it;
//   OnEndpointDown    it left the ready state (draining, failed, unhealthy),
//                     with why.
class RuntimeObserver {
 public:
  virtual ~RuntimeObserver() = default;
  virtual void OnTaskSubmitted(const TaskInfo& /*info*/) {}
  virtual void OnTaskStarted(const TaskInfo& /*info*/) {}
  virtual void OnTaskFirstResponse(const TaskInfo& /*info*/,
                                   absl::Duration /*since*/) {}
  virtual void OnTaskFinished(const TaskInfo& /*info*/,
                              const TaskEnd& /*end*/) {}
  virtual void OnConnectionAccepted(const ConnectionInfo& /*info*/) {}
  virtual void OnHandshakeFailed(const ConnectionInfo& /*info*/,
                                 const absl::Status& /*why*/) {}
  virtual void OnConnectionResumed(const ConnectionInfo& /*info*/) {}
  virtual void OnConnectionClosed(const ConnectionInfo& /*info*/,
                                  const absl::Status& /*why*/) {}
  virtual void OnEndpointUp(const PoolEndpointInfo& /*info*/) {}
  virtual void OnEndpointDown(const PoolEndpointInfo& /*info*/,
                              const absl::Status& /*why*/) {}
};

// RuntimeMetrics
// A RuntimeObserver that counts tasks and connections and keeps latency
// histograms (LatencyHistogram, nanoseconds) per method and side:
// submission-to-end and to first response. Thread-safe: hooks from any
// number of threads (shards) at once. Recording costs relaxed atomic adds
// and a lookup of the method in a short lock-free list (a new method name
// takes a mutex once); nothing per message. Methods are kept until the
// object dies: at most kMaxMethods distinct names, later ones are counted
// under "other" (a peer's names cannot grow memory without bound).
class RuntimeMetrics : public RuntimeObserver {
 public:
  static constexpr size_t kMaxMethods = 64;

  struct SideStats {
    std::atomic<uint64_t> started{0};  // submitted or started
    std::atomic<uint64_t> finished_ok{0};
    std::atomic<uint64_t> finished_error{0};
    std::atomic<uint64_t> bytes_in{0};
    std::atomic<uint64_t> bytes_out{0};
    LatencyHistogram latency;
    LatencyHistogram first_response;
  };
  struct MethodStats {
    std::string name;
    SideStats sides[2];  // indexed by TaskInfo::Side
    MethodStats* next = nullptr;
  };

  RuntimeMetrics() = default;
  RuntimeMetrics(const RuntimeMetrics&) = delete;
  RuntimeMetrics& operator=(const RuntimeMetrics&) = delete;
  ~RuntimeMetrics() override {
    MethodStats* m = head_.load(std::memory_order_acquire);
    while (m != nullptr) {
      MethodStats* next = m->next;
      delete m;
      m = next;
    }
  }

  void OnTaskSubmitted(const TaskInfo& info) override {
    Side(info).started.fetch_add(1, kRelaxed);
  }
  void OnTaskStarted(const TaskInfo& info) override {
    Side(info).started.fetch_add(1, kRelaxed);
  }
  void OnTaskFirstResponse(const TaskInfo& info,
                           absl::Duration since) override {
    Side(info).first_response.Record(Nanos(since));
  }
  void OnTaskFinished(const TaskInfo& info, const TaskEnd& end) override {
    SideStats& s = Side(info);
    (end.status.ok() ? s.finished_ok : s.finished_error).fetch_add(1, kRelaxed);
    s.bytes_in.fetch_add(end.bytes_in, kRelaxed);
    s.bytes_out.fetch_add(end.bytes_out, kRelaxed);
    s.latency.Record(Nanos(end.latency));
  }
  void OnConnectionAccepted(const ConnectionInfo&) override {
    connections_accepted_.fetch_add(1, kRelaxed);
  }
  void OnHandshakeFailed(const ConnectionInfo&, const absl::Status&) override {
    handshakes_failed_.fetch_add(1, kRelaxed);
  }
  void OnConnectionResumed(const ConnectionInfo&) override {
    connections_resumed_.fetch_add(1, kRelaxed);
  }
  void OnConnectionClosed(const ConnectionInfo&, const absl::Status&) override {
    connections_closed_.fetch_add(1, kRelaxed);
  }
  void OnEndpointUp(const PoolEndpointInfo&) override {
    endpoints_up_.fetch_add(1, kRelaxed);
  }
  void OnEndpointDown(const PoolEndpointInfo&, const absl::Status&) override {
    endpoints_down_.fetch_add(1, kRelaxed);
  }

  // Find: a method's stats, or nullptr if none was recorded. Any thread.
  const MethodStats* Find(std::string_view method) const {
    for (const MethodStats* m = head_.load(std::memory_order_acquire);
         m != nullptr; m = m->next) {
      if (m->name == method) return m;
    }
    return nullptr;
  }
  uint64_t connections_accepted() const {
    return connections_accepted_.load(kRelaxed);
  }
  uint64_t handshakes_failed() const {
    return handshakes_failed_.load(kRelaxed);
  }
  uint64_t connections_resumed() const {
    return connections_resumed_.load(kRelaxed);
  }
  uint64_t connections_closed() const {
    return connections_closed_.load(kRelaxed);
  }
  // Pool endpoints that became ready / left the ready state.
  uint64_t endpoints_up() const { return endpoints_up_.load(kRelaxed); }
  uint64_t endpoints_down() const { return endpoints_down_.load(kRelaxed); }

  // AppendPrometheus
  // Adds the families symwire_tasks_total{method,side,result},
  // symwire_task_bytes_total{method,side,direction},
  // symwire_task_duration_seconds{method,side} and
  // symwire_task_first_response_seconds{method,side} (histograms) and
  // symwire_connection_events_total{event}, and, once a Pool reported an
  // endpoint event, symwire_pool_endpoint_events_total{event="up"|"down"}.
  // Any thread.
  void AppendPrometheus(PrometheusText& out) const {
    static constexpr const char* kSideName[2] = {"submitter", "executor"};
    for (const MethodStats* m = head_.load(std::memory_order_acquire);
         m != nullptr; m = m->next) {
      for (int side = 0; side < 2; ++side) {
        const SideStats& s = m->sides[side];
        const PrometheusText::Labels base = {{"method", m->name},
                                             {"side", kSideName[side]}};
        const uint64_t started = s.started.load(kRelaxed);
        if (started == 0) continue;
        constexpr const char* kTasksHelp =
            "Tasks by result: started (submitted or received), ok, error.";
        out.Counter("symwire_tasks_total", kTasksHelp,
                    With(base, "result", "started"), started);
        out.Counter("symwire_tasks_total", kTasksHelp,
                    With(base, "result", "ok"), s.finished_ok.load(kRelaxed));
        out.Counter("symwire_tasks_total", kTasksHelp,
                    With(base, "result", "error"),
                    s.finished_error.load(kRelaxed));
        constexpr const char* kBytesHelp =
            "Task payload bytes received and sent.";
        out.Counter("symwire_task_bytes_total", kBytesHelp,
                    With(base, "direction", "in"), s.bytes_in.load(kRelaxed));
        out.Counter("symwire_task_bytes_total", kBytesHelp,
                    With(base, "direction", "out"), s.bytes_out.load(kRelaxed));
        out.Histogram("symwire_task_duration_seconds",
                      "Task latency: submission (or receipt) to end.", base,
                      s.latency.Snapshot());
        out.Histogram("symwire_task_first_response_seconds",
                      "Submission (or receipt) to the first response.", base,
                      s.first_response.Snapshot());
      }
    }
    constexpr const char* kConnHelp = "Connection events.";
    out.Counter("symwire_connection_events_total", kConnHelp,
                {{"event", "accepted"}}, connections_accepted());
    out.Counter("symwire_connection_events_total", kConnHelp,
                {{"event", "handshake_failed"}}, handshakes_failed());
    out.Counter("symwire_connection_events_total", kConnHelp,
                {{"event", "resumed"}}, connections_resumed());
    out.Counter("symwire_connection_events_total", kConnHelp,
                {{"event", "closed"}}, connections_closed());
    if (endpoints_up() + endpoints_down() != 0) {
      constexpr const char* kPoolHelp =
          "Pool endpoints that became ready (up) or left it (down).";
      out.Counter("symwire_pool_endpoint_events_total", kPoolHelp,
                  {{"event", "up"}}, endpoints_up());
      out.Counter("symwire_pool_endpoint_events_total", kPoolHelp,
                  {{"event", "down"}}, endpoints_down());
    }
  }

 private:
  static constexpr auto kRelaxed = std::memory_order_relaxed;
  static uint64_t Nanos(absl::Duration d) {
    const int64_t ns = absl::ToInt64Nanoseconds(d);
    return ns < 0 ? 0 : static_cast<uint64_t>(ns);
  }
  static PrometheusText::Labels With(const PrometheusText::Labels& base,
                                     std::string name, std::string value) {
    PrometheusText::Labels l = base;
    l.emplace_back(std::move(name), std::move(value));
    return l;
  }
  SideStats& Side(const TaskInfo& info) {
    return For(info.method).sides[static_cast<size_t>(info.side)];
  }
  MethodStats& For(std::string_view method) {
    if (const MethodStats* m = Find(method)) {
      return const_cast<MethodStats&>(*m);
    }
    const std::lock_guard<std::mutex> lock(mu_);
    if (const MethodStats* m = Find(method)) {  // another thread added it
      return const_cast<MethodStats&>(*m);
    }
    if (methods_ >= kMaxMethods) {
      method = "other";
      if (const MethodStats* m = Find(method)) {
        return const_cast<MethodStats&>(*m);
      }
    }
    auto* m = new MethodStats;
    m->name = std::string(method);
    m->next = head_.load(std::memory_order_relaxed);
    ++methods_;
    head_.store(m, std::memory_order_release);
    return *m;
  }

  std::atomic<MethodStats*> head_{nullptr};
  std::mutex mu_;  // writers of head_
  size_t methods_ = 0;
  std::atomic<uint64_t> connections_accepted_{0};
  std::atomic<uint64_t> handshakes_failed_{0};
  std::atomic<uint64_t> connections_resumed_{0};
  std::atomic<uint64_t> connections_closed_{0};
  std::atomic<uint64_t> endpoints_up_{0};
  std::atomic<uint64_t> endpoints_down_{0};
};

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_OBSERVER_HPP_
