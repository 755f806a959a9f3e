// File: symwire/runtime/detail/method_table.hpp
// Layer 3b (runtime), internal. MethodTable: a Server's handlers by task
// method (Server::Handle) and its health status, shared by the server, its
// shards and every Channel it accepted.
#ifndef SYMWIRE_RUNTIME_DETAIL_METHOD_TABLE_HPP_
#define SYMWIRE_RUNTIME_DETAIL_METHOD_TABLE_HPP_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "symwire/runtime/incoming_task.hpp"
#include "symwire/session/methods.hpp"

namespace symwire {
namespace detail {

// MethodTable
// `handlers` is written by Server::Handle before the server serves (its
// REQUIRES) and only read afterwards, from any shard's thread; the health
// fields are atomics, written from any thread.
struct MethodTable {
  absl::flat_hash_map<std::string, TaskHandler> handlers;
  // Set once the server listens or accepts: Handle is refused afterwards.
  std::atomic<bool> serving{false};
  // Server::SetServingStatus.
  std::atomic<HealthStatus> status{HealthStatus::kServing};
  // Server::async_shutdown started: health answers DRAINING.
  std::atomic<bool> shutting_down{false};

  // The handler for `method`, or nullptr.
  const TaskHandler* Find(absl::string_view method) const {
    auto it = handlers.find(method);
    return it == handlers.end() ? nullptr : &it->second;
  }
  HealthStatus Health() const {
    if (shutting_down.load(std::memory_order_acquire)) {
      return HealthStatus::kDraining;
    }
    return status.load(std::memory_order_acquire);
  }
};

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_DETAIL_METHOD_TABLE_HPP_
