// File: tests/session/deadlines_test.cpp
// Tests for session/detail/deadlines.hpp, the session's named deadlines: a
// new table has nothing set, Set/Clear/Get/Expired act on one timer only,
// Earliest takes the minimum over the timers its filter accepts, and the
// iteration order (the order HandleTimeout acts in) and the scopes are the
// documented ones.
#include "symwire/session/detail/deadlines.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <vector>

#include "absl/time/time.h"

namespace symwire::detail {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Seconds(100);

TEST_CASE("TimerTable: a new table has no deadline", "[deadlines]") {
  const TimerTable table;
  for (Timer timer : kTimerOrder) {
    CHECK_FALSE(table.IsSet(timer));
    CHECK(table.Get(timer) == absl::InfiniteFuture());
    CHECK_FALSE(table.Expired(timer, kT0));
  }
  CHECK(table.Earliest() == absl::InfiniteFuture());
}

TEST_CASE("TimerTable: set, get, expired and clear touch one timer",
          "[deadlines]") {
  TimerTable table;
  table.Set(Timer::kPing, kT0);
  CHECK(table.IsSet(Timer::kPing));
  CHECK(table.Get(Timer::kPing) == kT0);
  CHECK_FALSE(table.Expired(Timer::kPing, kT0 - absl::Nanoseconds(1)));
  CHECK(table.Expired(Timer::kPing, kT0));  // due at its deadline
  CHECK(table.Expired(Timer::kPing, kT0 + absl::Seconds(1)));
  for (Timer timer : kTimerOrder) {
    if (timer != Timer::kPing) CHECK_FALSE(table.IsSet(timer));
  }
  table.Set(Timer::kPing, kT0 + absl::Seconds(5));  // set replaces
  CHECK(table.Get(Timer::kPing) == kT0 + absl::Seconds(5));
  table.Clear(Timer::kPing);
  CHECK_FALSE(table.IsSet(Timer::kPing));
  CHECK_FALSE(table.Expired(Timer::kPing, kT0 + absl::Seconds(10)));
}

TEST_CASE("TimerTable: earliest over all and over a filter", "[deadlines]") {
  TimerTable table;
  table.Set(Timer::kReconnect, kT0 + absl::Seconds(3));
  table.Set(Timer::kAck, kT0 + absl::Seconds(2));
  table.Set(Timer::kHandshake, kT0 + absl::Seconds(1));
  CHECK(table.Earliest() == kT0 + absl::Seconds(1));
  CHECK(table.Earliest([](Timer t) { return t != Timer::kHandshake; }) ==
        kT0 + absl::Seconds(2));
  CHECK(table.Earliest([](Timer t) {
    return ScopeOf(t) == TimerScope::kSession;
  }) == kT0 + absl::Seconds(3));
  CHECK(table.Earliest([](Timer) { return false; }) == absl::InfiniteFuture());
  table.Clear(Timer::kHandshake);
  CHECK(table.Earliest() == kT0 + absl::Seconds(2));
  table.Clear(Timer::kAck);
  table.Clear(Timer::kReconnect);
  CHECK(table.Earliest() == absl::InfiniteFuture());
}

TEST_CASE("Timers: iteration order, scopes and connection failures",
          "[deadlines]") {
  // The order HandleTimeout acts in (and so which timer wins when several
  // are due): it decides the session's behaviour, so it is pinned here.
  const std::vector<Timer> expected = {
      Timer::kHandshake,    Timer::kBye,    Timer::kFrame,
      Timer::kDeadPeer,     Timer::kPing,   Timer::kAck,
      Timer::kTaskDeadline, Timer::kExpire, Timer::kReconnect};
  REQUIRE(kTimerOrder.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(kTimerOrder[i] == expected[i]);
    CHECK(static_cast<size_t>(kTimerOrder[i]) == i);  // the enum order
  }
  CHECK(ScopeOf(Timer::kHandshake) == TimerScope::kHandshake);
  for (Timer t : {Timer::kBye, Timer::kFrame, Timer::kDeadPeer, Timer::kPing,
                  Timer::kAck}) {
    CHECK(ScopeOf(t) == TimerScope::kEstablished);
  }
  for (Timer t : {Timer::kTaskDeadline, Timer::kExpire, Timer::kReconnect}) {
    CHECK(ScopeOf(t) == TimerScope::kSession);
  }
  for (Timer t : kTimerOrder) {
    const bool fails = t == Timer::kHandshake || t == Timer::kBye ||
                       t == Timer::kFrame || t == Timer::kDeadPeer;
    CHECK(FailsConnection(t) == fails);
  }
}

}  // namespace
}  // namespace symwire::detail
