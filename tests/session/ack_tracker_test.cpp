// File: tests/session/ack_tracker_test.cpp
// Tests for session/detail/ack_tracker.hpp: sequences start at 1 and are
// taken one at a time, acks are cumulative (old ones change nothing, one
// beyond the last sequence sent is refused), the resume point is checked
// against both ends (BAD_ACK, RESUME_GAP) and counts retransmissions, and
// received sequences are accepted exactly once in order, with the frames
// and bytes since the last ack deciding when an ack is due.
#include "symwire/session/detail/ack_tracker.hpp"

#include <catch2/catch.hpp>
#include <cstdint>

#include "symwire/error.hpp"

namespace symwire::detail {
namespace {

using AckKind = AckTracker::AckKind;
using RxKind = AckTracker::RxKind;

TEST_CASE("AckTracker: sequences are taken in order from 1", "[ack_tracker]") {
  AckTracker t;
  CHECK(t.next_sequence() == 1);
  CHECK(t.last_sent() == 0);
  CHECK(t.TakeSequence() == 1);
  CHECK(t.TakeSequence() == 2);
  CHECK(t.next_sequence() == 3);
  CHECK(t.last_sent() == 2);
}

TEST_CASE("AckTracker: acks are cumulative and bounded by what was sent",
          "[ack_tracker]") {
  AckTracker t;
  CHECK(t.OnAck(0) == AckKind::kOld);  // nothing sent, nothing new
  CHECK(t.OnAck(1) == AckKind::kBeyondSent);
  for (int i = 0; i < 5; ++i) t.TakeSequence();
  CHECK(t.OnAck(6) == AckKind::kBeyondSent);
  CHECK(t.acked() == 0);
  CHECK(t.OnAck(3) == AckKind::kNew);
  CHECK(t.acked() == 3);
  CHECK(t.OnAck(3) == AckKind::kOld);
  CHECK(t.OnAck(2) == AckKind::kOld);  // never goes back
  CHECK(t.acked() == 3);
  CHECK(t.OnAck(5) == AckKind::kNew);
  CHECK(t.acked() == 5);
}

TEST_CASE("AckTracker: the resume point and retransmissions", "[ack_tracker]") {
  AckTracker t;
  for (int i = 0; i < 10; ++i) t.TakeSequence();
  t.MarkAllSent();  // 1..10 handed to a driver
  REQUIRE(t.OnAck(4) == AckKind::kNew);
  const absl::Status beyond = t.CheckResumePoint(11);
  CHECK(GetErrorCode(beyond) == ErrorCode::kBadAck);
  CHECK(beyond.message() ==
        "peer's last_received 11 is beyond the last sequence sent, 10");
  const absl::Status gap = t.CheckResumePoint(3);
  CHECK(GetErrorCode(gap) == ErrorCode::kResumeGap);
  CHECK(gap.message() ==
        "peer's last_received 3 precedes its acknowledgement 4: frames 4..4 "
        "were freed and cannot be replayed");
  CHECK(t.CheckResumePoint(4).ok());
  CHECK(t.CheckResumePoint(10).ok());
  CHECK(t.ResumeFrom(7) == 3);  // 8, 9, 10 go out again
  CHECK(t.acked() == 7);
  // Frames not yet handed to a driver are not retransmissions.
  t.TakeSequence();  // 11, not sent
  CHECK(t.ResumeFrom(10) == 0);
  CHECK(t.acked() == 10);
}

TEST_CASE("AckTracker: received sequences exactly once, in order",
          "[ack_tracker]") {
  AckTracker t;
  CHECK(t.OnSequenced(0, 10) == RxKind::kGap);
  CHECK(t.OnSequenced(2, 10) == RxKind::kGap);
  CHECK(t.received() == 0);
  CHECK(t.OnSequenced(1, 10) == RxKind::kNew);
  CHECK(t.OnSequenced(1, 10) == RxKind::kDuplicate);
  CHECK(t.OnSequenced(2, 10) == RxKind::kNew);
  CHECK(t.OnSequenced(4, 10) == RxKind::kGap);
  CHECK(t.received() == 2);
}

TEST_CASE("AckTracker: an ack is due by frames or bytes since the last one",
          "[ack_tracker]") {
  AckTracker t;
  CHECK_FALSE(t.AckDue(3, 100));
  REQUIRE(t.OnSequenced(1, 40) == RxKind::kNew);
  REQUIRE(t.OnSequenced(2, 40) == RxKind::kNew);
  CHECK_FALSE(t.AckDue(3, 100));
  REQUIRE(t.OnSequenced(2, 500) == RxKind::kDuplicate);  // not counted
  CHECK_FALSE(t.AckDue(3, 100));
  REQUIRE(t.OnSequenced(3, 1) == RxKind::kNew);
  CHECK(t.AckDue(3, 100));  // three frames
  CHECK(t.AckDue(10, 81));  // 81 bytes
  CHECK_FALSE(t.AckDue(10, 82));
  CHECK(t.MarkAckSent());  // 3 is a new ack value
  CHECK_FALSE(t.AckDue(1, 1));
  CHECK_FALSE(t.MarkAckSent());  // the same value again
  REQUIRE(t.OnSequenced(4, 1) == RxKind::kNew);
  CHECK(t.AckDue(1, 1000));
  CHECK(t.MarkAckSent());
}

}  // namespace
}  // namespace symwire::detail
