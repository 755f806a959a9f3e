// File: symwire/runtime/detail/driver.hpp
// Layer 3b (runtime), internal. ConnectionDriver: the driver loop of
// STYLE.md §1 for one session over a sequence of transports, and nothing
// else. Bodies in impl/connection_driver.ipp.
#ifndef SYMWIRE_RUNTIME_DETAIL_DRIVER_HPP_
#define SYMWIRE_RUNTIME_DETAIL_DRIVER_HPP_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/config.hpp"
#include "symwire/session/session.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire::detail {

// DriverHost
// What the driver needs from the one that owns it (Channel): where events
// go, and the owner's rules about a connection's bytes, its end and its
// lifetime. Called only from the driver's own turns.
class DriverHost {
 public:
  // HandleEvent: one event drained from the session (PollEvent).
  virtual void HandleEvent(Event& event) = 0;
  // InterceptData: bytes read, before they reach Session::Receive; true
  // when the host took them (a server's handshake, routed by its Endpoint,
  // or refused).
  virtual bool InterceptData(absl::Span<const std::byte> bytes) = 0;
  // ReadingOverLimit: true while the host wants the transport's reading
  // paused (unread responses over their bound).
  virtual bool ReadingOverLimit() const = 0;
  // DetachConnection: the current connection ends (`why`, for observers);
  // the host does its bookkeeping and calls ConnectionDriver::Detach.
  virtual void DetachConnection(const absl::Status& why) = 0;
  // LostReason: the error handed to Session::TransportLost for a
  // connection the peer or the network closed with `status`.
  virtual absl::Status LostReason(Transport& transport,
                                  const absl::Status& status) = 0;
  // Ended: the session has ended; no timer is armed any more.
  virtual bool Ended() const = 0;
  // SendBacklogDrained: a call refused by SendBacklogFull may now succeed
  // (the host retries what waits for room).
  virtual void SendBacklogDrained() = 0;
  // The owner's lifetime: held for a turn (KeepAlive), and checked by the
  // timer and posted turns (WeakOwner).
  virtual std::shared_ptr<void> KeepAlive() = 0;
  virtual std::weak_ptr<void> WeakOwner() = 0;

  virtual ~DriverHost() = default;
};

// ConnectionDriver
// Each turn: bytes read go to Session::Receive (OnTransportData);
// PollTransmit is drained into the transport (DrainTransmit); PollEvent is
// drained and each event handed to the host (AfterInput); one timer is
// kept armed for NextDeadline() and fires HandleTimeout (ArmTimer); and
// the clock (steady_clock) is read in one place (Now).
class ConnectionDriver : private Transport::Sink {
 public:
  // `executor` and `session` are the host's (it outlives the driver);
  // `session` is its session slot (a client replaces the session
  // before its first connection); `early_flush_bytes` and
  // `send_backlog_bytes`: ChannelOptions'.
  SYMWIRE_DECL ConnectionDriver(DriverHost& host,
                                const asio::any_io_executor& executor,
                                const std::shared_ptr<Session>& session,
                                size_t early_flush_bytes,
                                size_t send_backlog_bytes);
  ConnectionDriver(const ConnectionDriver&) = delete;
  ConnectionDriver& operator=(const ConnectionDriver&) = delete;
  // Closes the current transport quietly (CloseQuietly).
  SYMWIRE_DECL ~ConnectionDriver();
  // CloseQuietly: closes and forgets the current transport, telling nobody.
  SYMWIRE_DECL void CloseQuietly();

  const std::shared_ptr<Transport>& transport() const { return transport_; }
  // True inside AfterInput's dispatch loop.
  bool dispatching() const { return dispatching_; }

  // Attach: the session's connection is now `transport`; StartReading then
  // starts it (`start`) or only becomes its sink (a transport already
  // reading, moved here from another session's driver).
  SYMWIRE_DECL void Attach(std::shared_ptr<Transport> transport);
  SYMWIRE_DECL void StartReading(bool start);
  // Detach: forgets the connection (without closing it).
  SYMWIRE_DECL void Detach();

  // AfterInput: after an input to the session, dispatch its events, hand
  // its bytes to the transport, flush, re-arm the timer.
  SYMWIRE_DECL void AfterInput();
  // AfterUserCall: after a Submit or Respond that succeeded: the early
  // flush of ChannelOptions::early_flush_bytes; then, outside the dispatch
  // loop (which drains after each event), one AfterInput is posted for the
  // whole burst, so N calls in one handler cost one flush, one write and
  // one timer check instead of N.
  SYMWIRE_DECL void AfterUserCall();
  SYMWIRE_DECL void DrainTransmit();
  // SendBacklogFull: true when a Submit or Respond should be refused
  // because ChannelOptions::send_backlog_bytes wait behind the write in
  // flight; the host's SendBacklogDrained follows once they have gone.
  // Bytes waiting with no write in flight are flushed first (then there
  // is room). Without a connection, false (the send window alone bounds
  // what a disconnected session keeps).
  // (The flag is set where bytes are handed to the transport, so the call
  // path tests one bool.)
  bool SendBacklogFull() { return backlog_seen_ && SendBacklogFullSlow(); }
  // BeginReplay: after a resume handshake the replayed frames go out in
  // small writes; `first_span_alone` writes the WELCOME before, and apart
  // from, them.
  SYMWIRE_DECL void BeginReplay(bool first_span_alone);
  // CancelTimer: disarms the timer (a session moved away from this driver).
  SYMWIRE_DECL void CancelTimer();

  // Now
  // The driver's clock: every time handed to the session comes from here,
  // and this is the only place the driver reads the clock (SteadyNow()).
  // kTurn returns the turn's reading, read at most once per executor turn
  // (valid until the turn's outermost AfterInput ends): Submit and Respond
  // only use `now` for bookkeeping whose timers may fire early (acks,
  // close), so a reading a few microseconds old is harmless and saves a
  // clock read (~25 ns) per call. kFresh reads again: for inputs from I/O
  // (bytes, a lost connection, a dial, a timer) and for what is measured
  // from now (a task's deadline). The result never decreases (Session
  // requires it): a fresh reading below the last one returns the last one.
  enum class Reading : uint8_t { kTurn, kFresh };
  SYMWIRE_DECL absl::Time Now(Reading reading = Reading::kTurn);

 private:
  // Transport::Sink
  void OnTransportData(Transport& transport,
                       absl::Span<const std::byte> bytes) override;
  void OnTransportClosed(Transport& transport,
                         const absl::Status& status) override;
  // MaybeFlushEarly: ChannelOptions::early_flush_bytes.
  void MaybeFlushEarly();
  void NoteBacklog() {
    backlog_seen_ =
        backlog_seen_ || transport_->pending_bytes() >= send_backlog_bytes_;
  }
  SYMWIRE_DECL bool SendBacklogFullSlow();
  void OnTransportDrained(Transport& transport) override;
  void ArmTimer();

  DriverHost& host_;
  const asio::any_io_executor& executor_;  // the host's, outlives us
  const std::shared_ptr<Session>& session_;
  std::shared_ptr<Transport> transport_;
  asio::steady_timer timer_;
  absl::Time timer_at_ = absl::InfiniteFuture();
  absl::Time now_ = absl::InfinitePast();
  uint64_t timer_generation_ = 0;
  size_t early_flush_bytes_;
  size_t send_backlog_bytes_;
  bool dispatching_ = false;
  bool flush_posted_ = false;      // an AfterInput is posted (AfterUserCall)
  bool now_valid_ = false;         // now_ is this turn's reading (Now())
  bool first_span_alone_ = false;  // BeginReplay: flush the WELCOME alone
  // The transport's pending batch reached send_backlog_bytes_ when last
  // flushed (NoteBacklog); SendBacklogFullSlow decides.
  bool backlog_seen_ = false;
};

}  // namespace symwire::detail

#endif  // SYMWIRE_RUNTIME_DETAIL_DRIVER_HPP_
