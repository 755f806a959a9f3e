// File: symwire/runtime/detail/shards.hpp
// Layer 3b (runtime), internal. What the shards of a Server on several
// threads share (runtime/server.hpp, "Threads"): their io_contexts and
// threads, the server-wide connection count, the failed-authentication
// table. Everything else of a shard is its own.
#ifndef SYMWIRE_RUNTIME_DETAIL_SHARDS_HPP_
#define SYMWIRE_RUNTIME_DETAIL_SHARDS_HPP_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"

namespace symwire {

class Server;

namespace detail {

// AuthFailureTable
// Failed authentications per source (ServerOptions::
// max_auth_failures_per_source). Shared by all shards of a server (a
// source's connections land on every shard), so guarded by a mutex: it is
// taken once per accepted connection and once per failed authentication,
// never per message.
class AuthFailureTable {
 public:
  using Clock = std::chrono::steady_clock;
  // Blocked: whether connections from `source` are refused now.
  bool Blocked(const std::string& source, uint32_t max_failures) {
    if (max_failures == 0) return false;
    const std::lock_guard<std::mutex> lock(mu_);
    auto it = failures_.find(source);
    if (it == failures_.end()) return false;
    const auto now = Clock::now();
    if (now < it->second.blocked_until) return true;
    if (it->second.count >= max_failures) {
      failures_.erase(it);  // the block is over: a fresh window
    }
    return false;
  }
  // Count: one more failed authentication from `source`.
  void Count(const std::string& source, uint32_t max_failures,
             std::chrono::milliseconds window,
             std::chrono::milliseconds block) {
    if (max_failures == 0) return;
    const std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    if (failures_.size() >= sweep_at_) {
      // Bounded memory against many sources: forget the stale ones.
      absl::erase_if(failures_, [&](const auto& e) {
        return now >= e.second.blocked_until &&
               now - e.second.window_start >= window;
      });
      sweep_at_ = std::max<size_t>(1024, 2 * failures_.size());
    }
    Entry& f = failures_[source];
    if (f.count == 0 || now - f.window_start >= window) {
      f.window_start = now;
      f.count = 0;
    }
    if (++f.count >= max_failures) f.blocked_until = now + block;
  }

 private:
  struct Entry {
    Clock::time_point window_start;
    Clock::time_point blocked_until;
    uint32_t count = 0;
  };
  std::mutex mu_;
  absl::flat_hash_map<std::string, Entry> failures_;
  size_t sweep_at_ = 1024;  // sweep stale entries past this size
};

// ShardSet
// The shards of one Server and the threads that run them. Held by the
// front Server and by each thread (so the last one out frees it); shards
// point to it without owning it.
struct ShardSet {
  using WorkGuard =
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  // Declared first, destroyed last: the shards' sockets and timers belong
  // to these contexts.
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  std::vector<WorkGuard> guards;
  std::vector<std::shared_ptr<Server>> shards;
  // Connections attached anywhere (ServerOptions::max_connections).
  std::atomic<size_t> connections{0};
  // Round-robin distribution of accepted connections.
  std::atomic<uint64_t> next{0};
  AuthFailureTable auth;
  // One per context; the front's destructor joins them.
  std::vector<std::thread> threads;

  size_t Next() {
    return static_cast<size_t>(next.fetch_add(1, std::memory_order_relaxed) %
                               shards.size());
  }
};

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_SHARDS_HPP_
