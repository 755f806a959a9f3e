// File: symwire/session/detail/deadlines.hpp
// Layer 2 helper. The session's named deadlines (STYLE.md §1 "Timers"): one
// enum, and one small table of absolute times indexed by it. Session's
// NextDeadline and HandleTimeout loop over kTimerOrder instead of listing
// fields, so a new deadline is one enumerator, one scope and one action.
//
// The enum order is the order HandleTimeout acts in, and it decides the
// outcome when several deadlines have passed at once:
//   - kHandshake .. kDeadPeer fail the connection; at most one of them acts
//     per call (the first that has passed), and the connection is then down.
//   - kPing and kAck act only when none of those did.
//   - kTaskDeadline (the earliest entry of the task-deadline heap) runs the
//     task deadlines that passed.
//   - kExpire ends the session (closed or failed); kReconnect acts only if
//     the session did not end.
// Each deadline lives in the table of its scope: the connection's
// (Session::Connection::timers, moved with the connection by the resume
// hand-over) or the session's. Whether a set deadline is armed (counts for
// NextDeadline) depends on the scope, see ScopeOf.
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_DEADLINES_HPP_
#define SYMWIRE_SESSION_DETAIL_DEADLINES_HPP_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace symwire::detail {

enum class Timer : uint8_t {
  // Connection, until the handshake completes (§15.1 handshake_timeout).
  kHandshake,
  // Connection, established: this side's bye unanswered (§15.3).
  kBye,
  // Connection, established: a started frame did not complete (§14.1
  // frame_timeout). Set while the receive buffer holds a partial frame.
  kFrame,
  // Connection, established: nothing received (§14.1 dead_peer_timeout).
  kDeadPeer,
  // Connection, established: send a ping (§14.1).
  kPing,
  // Connection, established: send a delayed ack (§14.2 ack_delay).
  kAck,
  // Session: the earliest task deadline (§13).
  kTaskDeadline,
  // Session: the resume window ran out while disconnected (§16).
  kExpire,
  // Session, initiator: dial again (§16.1 backoff).
  kReconnect,
};

inline constexpr size_t kTimerCount = 9;

// Every timer, in the order HandleTimeout acts on them (the enum order).
inline constexpr std::array<Timer, kTimerCount> kTimerOrder = {
    Timer::kHandshake,    Timer::kBye,    Timer::kFrame,
    Timer::kDeadPeer,     Timer::kPing,   Timer::kAck,
    Timer::kTaskDeadline, Timer::kExpire, Timer::kReconnect,
};

enum class TimerScope : uint8_t {
  kHandshake,    // connection up, not closing, handshake not complete
  kEstablished,  // connection up, not closing, handshake complete
  kSession,      // session neither failed nor closed
};

constexpr TimerScope ScopeOf(Timer timer) {
  switch (timer) {
    case Timer::kHandshake:
      return TimerScope::kHandshake;
    case Timer::kBye:
    case Timer::kFrame:
    case Timer::kDeadPeer:
    case Timer::kPing:
    case Timer::kAck:
      return TimerScope::kEstablished;
    case Timer::kTaskDeadline:
    case Timer::kExpire:
    case Timer::kReconnect:
      break;
  }
  return TimerScope::kSession;
}

// The deadlines whose action fails the connection (at most one per call).
constexpr bool FailsConnection(Timer timer) {
  return timer <= Timer::kDeadPeer;
}

// Absolute deadlines, one per Timer; InfiniteFuture() means not set.
class TimerTable {
 public:
  void Set(Timer timer, absl::Time when) { at_[Index(timer)] = when; }
  void Clear(Timer timer) { at_[Index(timer)] = absl::InfiniteFuture(); }
  absl::Time Get(Timer timer) const { return at_[Index(timer)]; }
  bool IsSet(Timer timer) const {
    return at_[Index(timer)] != absl::InfiniteFuture();
  }
  // Whether `now` has reached the deadline of `timer` (never when unset,
  // short of now == InfiniteFuture()).
  bool Expired(Timer timer, absl::Time now) const {
    return now >= at_[Index(timer)];
  }
  // The earliest deadline of the timers `armed(timer)` accepts.
  template <typename Armed>
  absl::Time Earliest(Armed armed) const {
    absl::Time t = absl::InfiniteFuture();
    for (Timer timer : kTimerOrder) {
      if (armed(timer)) t = std::min(t, at_[Index(timer)]);
    }
    return t;
  }
  absl::Time Earliest() const {
    return Earliest([](Timer) { return true; });
  }

 private:
  static constexpr size_t Index(Timer timer) {
    return static_cast<size_t>(timer);
  }

  std::array<absl::Time, kTimerCount> at_ = [] {
    std::array<absl::Time, kTimerCount> at{};
    at.fill(absl::InfiniteFuture());
    return at;
  }();
};

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_DEADLINES_HPP_
