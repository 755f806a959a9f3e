// File: symwire/session/detail/ack_tracker.hpp
// Layer 2 helper. AckTracker: the session's sequence numbers and
// acknowledgements in both directions (SPEC.md §10, §14.2, §16.2), as plain
// counters with no I/O, no time and no frames.
//
// Send side: the sequence of the next sequenced frame, the highest one the
// peer acknowledged (cumulative: an ack of n covers 1..n), and the highest
// one ever handed to a driver (what a resume counts as retransmitted).
// Receive side: the last sequence accepted from the peer (exactly once, in
// order), the last ack value sent, and what arrived since then (frames and
// bytes), which decides when an ack is due without waiting for the ack
// delay, and how many of those frames were terminal frames of own tasks
// (each holds a slot at the executor until acknowledged, SPEC.md §15.1).
// The ack-delay deadline itself is Timer::kAck (deadlines.hpp).
// Users never include this directly.
#ifndef SYMWIRE_SESSION_DETAIL_ACK_TRACKER_HPP_
#define SYMWIRE_SESSION_DETAIL_ACK_TRACKER_HPP_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "symwire/error.hpp"

namespace symwire::detail {

class AckTracker {
 public:
  // ---- send side ----

  // The sequence the next sequenced frame gets, and taking it.
  uint64_t next_sequence() const { return next_seq_; }
  uint64_t TakeSequence() { return next_seq_++; }
  // The last sequence given to a frame (0: none yet).
  uint64_t last_sent() const { return next_seq_ - 1; }
  // The highest sequence the peer acknowledged.
  uint64_t acked() const { return acked_; }
  // Every frame given a sequence so far was handed to a driver.
  void MarkAllSent() { sent_high_ = next_seq_ - 1; }

  enum class AckKind : uint8_t {
    kBeyondSent,  // acknowledges a sequence never sent (BAD_ACK)
    kOld,         // nothing new
    kNew,         // advanced acked() to the ack
  };
  // A cumulative ack from the peer (§14.2).
  AckKind OnAck(uint64_t ack) {
    if (ack > last_sent()) return AckKind::kBeyondSent;
    if (ack <= acked_) return AckKind::kOld;
    acked_ = ack;
    return AckKind::kNew;
  }

  // §16.2: the peer's last_received L on a resume may not exceed the last
  // sequence sent (BAD_ACK) nor precede the last sequence the peer
  // acknowledged, A (RESUME_GAP: frames up to A were freed). Every frame
  // in A+1..L sent is still held, so the rule needs no look at the replay
  // buffer (which may be empty).
  absl::Status CheckResumePoint(uint64_t last) const {
    if (last > last_sent()) {
      return MakeError(ErrorCode::kBadAck,
                       absl::StrFormat("peer's last_received %d is beyond the "
                                       "last sequence sent, %d",
                                       last, last_sent()));
    }
    if (last < acked_) {
      return MakeError(
          ErrorCode::kResumeGap,
          absl::StrFormat("peer's last_received %d precedes its "
                          "acknowledgement %d: frames %d..%d were freed and "
                          "cannot be replayed",
                          last, acked_, last + 1, acked_));
    }
    return absl::OkStatus();
  }
  // Resumes from the peer's last_received (checked by CheckResumePoint):
  // it becomes the ack. Returns how many frames handed to a driver before
  // are sent again.
  uint64_t ResumeFrom(uint64_t last) {
    acked_ = last;
    return sent_high_ > last ? sent_high_ - last : 0;
  }

  // ---- receive side ----

  // The last sequence accepted from the peer (0: none yet).
  uint64_t received() const { return rx_seq_; }

  enum class RxKind : uint8_t {
    kGap,        // 0, or beyond the next expected (SEQUENCE_GAP)
    kDuplicate,  // already accepted: discard
    kNew,        // the next one: accepted and counted towards an ack
  };
  // A sequenced frame of `frame_bytes` bytes with sequence `seq` (§10).
  RxKind OnSequenced(uint64_t seq, uint64_t frame_bytes) {
    if (seq == 0 || seq > rx_seq_ + 1) return RxKind::kGap;
    if (seq <= rx_seq_) return RxKind::kDuplicate;
    rx_seq_ = seq;
    ++unacked_frames_;
    unacked_bytes_ += frame_bytes;
    return RxKind::kNew;
  }
  // Whether the frames or bytes received since the last ack reached their
  // limit (each at least 1), so the ack goes out now.
  bool AckDue(uint64_t frame_limit, uint64_t byte_limit) const {
    return unacked_frames_ >= frame_limit || unacked_bytes_ >= byte_limit;
  }
  // §15.1: the frame just accepted (OnSequenced kNew) ended an own task.
  // The executor keeps counting that task against its max_tasks until an
  // ack covers this frame; the submitter freed its own slot already.
  void OnTerminalReceived() { ++unacked_terminals_; }
  // Terminal frames accepted since the last ack sent: slots the executor
  // still counts that this side no longer does.
  uint64_t unacked_terminals() const { return unacked_terminals_; }
  // The current ack went out (or the peer learned it another way, as the
  // last_received of a resume): counting starts over. Returns whether the
  // value differs from the one sent before.
  bool MarkAckSent() {
    const bool changed = ack_sent_ != rx_seq_;
    ack_sent_ = rx_seq_;
    unacked_frames_ = 0;
    unacked_bytes_ = 0;
    unacked_terminals_ = 0;
    return changed;
  }

 private:
  uint64_t next_seq_ = 1;
  uint64_t acked_ = 0;      // highest sequence the peer acknowledged
  uint64_t sent_high_ = 0;  // highest sequence ever handed to the driver
  uint64_t rx_seq_ = 0;     // last sequence accepted from the peer
  uint64_t ack_sent_ = 0;   // last ack value sent
  uint64_t unacked_frames_ = 0;
  uint64_t unacked_bytes_ = 0;
  uint64_t unacked_terminals_ = 0;
};

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_ACK_TRACKER_HPP_
