// File: symwire/runtime/impl/connection_driver.ipp
// Out-of-line bodies of runtime/detail/driver.hpp (layer 3b): the driver
// loop of STYLE.md §1.
#ifndef SYMWIRE_RUNTIME_IMPL_CONNECTION_DRIVER_IPP_
#define SYMWIRE_RUNTIME_IMPL_CONNECTION_DRIVER_IPP_

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/detail/async.hpp"
#include "symwire/runtime/detail/driver.hpp"
#include "symwire/runtime/options.hpp"

namespace symwire::detail {

// The most bytes of one write while frames are replayed after a resume
// (BeginReplay, Transport::WriteInPieces): on TLS one write is one record,
// decrypted only whole, so each piece is something a connection that lives
// a few KiB still delivers.
inline constexpr size_t kReplayPieceBytes = 2048;

SYMWIRE_DECL ConnectionDriver::ConnectionDriver(
    DriverHost& host, const asio::any_io_executor& executor,
    const std::shared_ptr<Session>& session, size_t early_flush_bytes,
    size_t send_backlog_bytes)
    : host_(host),
      executor_(executor),
      session_(session),
      timer_(executor),
      early_flush_bytes_(early_flush_bytes),
      send_backlog_bytes_(send_backlog_bytes) {}

SYMWIRE_DECL ConnectionDriver::~ConnectionDriver() { CloseQuietly(); }

SYMWIRE_DECL void ConnectionDriver::CloseQuietly() {
  if (!transport_) return;
  transport_->SetSink(nullptr);  // nobody to tell: close quietly
  try {
    transport_->Close();
  } catch (...) {  // Asio's timer cancel may throw; a destructor must not
  }
  transport_.reset();
}

SYMWIRE_DECL void ConnectionDriver::Attach(
    std::shared_ptr<Transport> transport) {
  SYMWIRE_ASSERT(!transport_);
  transport_ = std::move(transport);
}

SYMWIRE_DECL void ConnectionDriver::StartReading(bool start) {
  if (start) {
    transport_->Start(this);
  } else {
    transport_->SetSink(this);
  }
}

SYMWIRE_DECL void ConnectionDriver::Detach() {
  if (!transport_) return;
  const bool calls_wait = transport_->drain_notice_wanted();
  transport_->SetSink(nullptr);
  transport_.reset();
  backlog_seen_ = false;
  if (calls_wait) {
    // Calls refused for the backlog of a connection that is gone: retry
    // them (without a connection the send window alone bounds them), in a
    // turn of their own, not inside the caller's bookkeeping.
    asio::post(executor_, [this, weak = host_.WeakOwner()] {
      auto keep = weak.lock();
      if (keep) host_.SendBacklogDrained();
    });
  }
}

SYMWIRE_DECL void ConnectionDriver::DrainTransmit() {
  std::shared_ptr<const void> owner;
  for (;;) {
    const absl::Span<const std::byte> bytes =
        session_->PollTransmit(&owner, Transport::kMinSharedBytes);
    if (bytes.empty()) break;
    // Without a connection the bytes belong to one that is gone.
    if (!transport_) continue;
    // Replay-store bytes come with a reference: large runs of them are
    // written from the store, not copied (transport.hpp).
    if (owner) {
      transport_->QueueShared(bytes, std::move(owner));
    } else {
      transport_->Queue(bytes);
    }
    if (first_span_alone_) {
      // BeginReplay: the WELCOME is written before, and apart from, the
      // frames it lets the peer replay.
      first_span_alone_ = false;
      transport_->Flush();
    }
  }
}

SYMWIRE_DECL void ConnectionDriver::BeginReplay(bool first_span_alone) {
  if (!transport_) return;
  transport_->WriteInPieces(kReplayPieceBytes,
                            session_->transmit_pending_bytes());
  first_span_alone_ = first_span_alone;
}

SYMWIRE_DECL void ConnectionDriver::MaybeFlushEarly() {
  if (transport_ && transport_->pending_bytes() >= early_flush_bytes_) {
    transport_->Flush();
    NoteBacklog();
  }
}

SYMWIRE_DECL bool ConnectionDriver::SendBacklogFullSlow() {
  if (transport_) {
    // With no write in flight the bytes go now, and there is room again.
    DrainTransmit();
    transport_->Flush();
    if (transport_->pending_bytes() >= send_backlog_bytes_) {
      transport_->NotifyWhenDrained();
      return true;
    }
  }
  backlog_seen_ = false;
  return false;
}

SYMWIRE_DECL void ConnectionDriver::OnTransportDrained(Transport& transport) {
  if (&transport != transport_.get()) return;
  const std::shared_ptr<void> keep = host_.KeepAlive();
  host_.SendBacklogDrained();
}

SYMWIRE_DECL void ConnectionDriver::AfterInput() {
  DrainTransmit();
  if (dispatching_) return;  // the outer AfterInput continues
  const std::shared_ptr<void> keep = host_.KeepAlive();
  // A new turn: the server may have handed the session a newer reading
  // than ours (a connection its Endpoint routed here, a session it
  // created), so read again when needed.
  now_valid_ = false;
  dispatching_ = true;
  for (;;) {
    bool progressed = false;
    while (std::optional<Event> event = session_->PollEvent()) {
      host_.HandleEvent(*event);
      DrainTransmit();
      progressed = true;
      MaybeFlushEarly();
    }
    if (transport_ && session_->ConnectionClosing()) {
      // The session is done with this connection (an error, a bye, a
      // handover): write what it queued, then close.
      std::shared_ptr<Transport> t = transport_;
      host_.DetachConnection(session_->status());
      t->Flush();
      t->CloseAfterFlush();
      session_->TransportLost(
          MakeError(ErrorCode::kConnectionLost, "connection closed here"),
          Now());
      DrainTransmit();
      progressed = true;
    }
    if (!progressed) break;
  }
  dispatching_ = false;
  now_valid_ = false;  // the turn is over (Now())
  if (transport_) {
    transport_->Flush();
    NoteBacklog();
  }
  ArmTimer();
}

SYMWIRE_DECL absl::Time ConnectionDriver::Now(Reading reading) {
  if (now_valid_ && reading == Reading::kTurn) return now_;
  now_ = std::max(now_, SteadyNow());
  now_valid_ = true;
  return now_;
}

SYMWIRE_DECL void ConnectionDriver::AfterUserCall() {
  // Early flush, also inside the dispatch loop: one handler's burst of
  // calls goes to the transport as it grows, and counts towards the send
  // backlog (SendBacklogFull) as it does.
  if (transport_ && session_->transmit_pending_bytes() >= early_flush_bytes_) {
    DrainTransmit();
    transport_->Flush();
    NoteBacklog();
  }
  // Inside the dispatch loop, the loop drains and flushes after the event.
  if (dispatching_ || flush_posted_) return;
  flush_posted_ = true;
  asio::post(executor_, [this, weak = host_.WeakOwner()] {
    auto keep = weak.lock();
    if (!keep) return;
    flush_posted_ = false;
    AfterInput();
  });
}

SYMWIRE_DECL void ConnectionDriver::CancelTimer() {
  ++timer_generation_;
  timer_at_ = absl::InfiniteFuture();
  timer_.cancel();
}

SYMWIRE_DECL void ConnectionDriver::ArmTimer() {
  const absl::Time due =
      host_.Ended() ? absl::InfiniteFuture() : session_->NextDeadline();
  if (due == absl::InfiniteFuture()) {
    if (timer_at_ != absl::InfiniteFuture()) CancelTimer();
    return;
  }
  // A later deadline leaves the armed timer alone: it fires early, which
  // HandleTimeout allows, and re-arms. Pushing heartbeat and ack timers
  // back on every frame would otherwise cost a timerfd update per batch.
  if (due >= timer_at_) return;
  timer_at_ = due;
  const uint64_t generation = ++timer_generation_;
  timer_.expires_at(ToSteady(due));
  timer_.async_wait([this, weak = host_.WeakOwner(),
                     generation](const boost::system::error_code&) {
    auto keep = weak.lock();
    if (!keep || generation != timer_generation_) return;
    timer_at_ = absl::InfiniteFuture();
    session_->HandleTimeout(Now(Reading::kFresh));
    AfterInput();
  });
}

SYMWIRE_DECL void ConnectionDriver::OnTransportData(
    Transport& transport, absl::Span<const std::byte> bytes) {
  if (&transport != transport_.get()) return;
  if (host_.InterceptData(bytes)) return;
  const uint64_t resumes = session_->counters().resumes;
  // Errors are reported as events (ConnectionLost, SessionFailed).
  static_cast<void>(session_->Receive(bytes, Now(Reading::kFresh)));
  if (session_->counters().resumes != resumes) BeginReplay(false);
  AfterInput();
  if (transport_ && host_.ReadingOverLimit()) transport_->PauseReading();
}

SYMWIRE_DECL void ConnectionDriver::OnTransportClosed(
    Transport& transport, const absl::Status& status) {
  if (&transport != transport_.get()) return;
  host_.DetachConnection(status);
  const absl::Status why = host_.LostReason(transport, status);
  session_->TransportLost(why, Now(Reading::kFresh));
  AfterInput();
}

}  // namespace symwire::detail

#endif  // SYMWIRE_RUNTIME_IMPL_CONNECTION_DRIVER_IPP_
