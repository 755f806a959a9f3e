// File: symwire/runtime/impl/driver.ipp
// Out-of-line bodies of runtime/channel.hpp (layer 3b): the driver loop of
// STYLE.md §1. Bytes read go to Session::Receive (OnTransportData);
// PollTransmit is drained into the transport (DrainTransmit); PollEvent is
// drained and each event delivered (AfterInput -> HandleEvent); one timer
// is kept armed for NextDeadline() and fires HandleTimeout (ArmTimer); and
// the clock is read in one place (Now).
#ifndef SYMWIRE_RUNTIME_IMPL_DRIVER_IPP_
#define SYMWIRE_RUNTIME_IMPL_DRIVER_IPP_

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "boost/asio/post.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/detail/server_part.hpp"

namespace symwire {

namespace detail {
// The most bytes of one write while frames are replayed after a resume
// (BeginReplay, Transport::WriteInPieces): on TLS one write is one record,
// decrypted only whole, so each piece is something a connection that lives
// a few KiB still delivers.
inline constexpr size_t kReplayPieceBytes = 2048;
}  // namespace detail

SYMWIRE_DECL void Channel::Attach(std::shared_ptr<Transport> transport,
                                  bool start) {
  SYMWIRE_ASSERT(!transport_);
  transport_ = std::move(transport);
  if (options_.observer) observed_peer_ = transport_->description();
  if (server_) server_->Attached(*transport_, established_once_);
  if (start) {
    transport_->Start(this);
  } else {
    transport_->SetSink(this);
  }
  if (unread_bytes_ > options_.max_unread_response_bytes) {
    transport_->PauseReading();
  }
}

SYMWIRE_DECL void Channel::Detach(const absl::Status& why) {
  if (!transport_) return;
  transport_->SetSink(nullptr);
  transport_.reset();
  if (server_) server_->Detached(Now());
  // A connection that carried a session (a handshaking one that fails is
  // OnHandshakeFailed's; one moved to its session is not closed).
  if (options_.observer && established_once_) {
    options_.observer->OnConnectionClosed(
        ConnectionInfo{observed_peer_, server_ ? server_->source : ""}, why);
  }
}

SYMWIRE_DECL void Channel::DrainTransmit() {
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

SYMWIRE_DECL void Channel::BeginReplay(bool first_span_alone) {
  if (!transport_) return;
  transport_->WriteInPieces(detail::kReplayPieceBytes,
                            session_->transmit_pending_bytes());
  first_span_alone_ = first_span_alone;
}

SYMWIRE_DECL void Channel::MaybeFlushEarly() {
  if (transport_ && transport_->pending_bytes() >= options_.early_flush_bytes) {
    transport_->Flush();
  }
}

SYMWIRE_DECL void Channel::AfterInput() {
  DrainTransmit();
  if (dispatching_) return;  // the outer AfterInput continues
  const std::shared_ptr<Channel> keep = shared_from_this();
  // A new turn: the server may have handed the session a newer reading
  // than ours (a connection its Endpoint routed here, a session it
  // created), so read again when needed.
  now_valid_ = false;
  dispatching_ = true;
  for (;;) {
    bool progressed = false;
    while (std::optional<Event> event = session_->PollEvent()) {
      HandleEvent(*event);
      DrainTransmit();
      progressed = true;
      MaybeFlushEarly();
    }
    if (transport_ && session_->ConnectionClosing()) {
      // The session is done with this connection (an error, a bye, a
      // handover): write what it queued, then close.
      std::shared_ptr<Transport> t = transport_;
      Detach(session_->status());
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
  if (transport_) transport_->Flush();
  ArmTimer();
}

SYMWIRE_DECL absl::Time Channel::Now(Reading reading) {
  if (now_valid_ && reading == Reading::kTurn) return now_;
  now_ = std::max(now_, SteadyNow());
  now_valid_ = true;
  return now_;
}

SYMWIRE_DECL void Channel::AfterUserCall() {
  // Inside the dispatch loop, the loop drains and flushes after the event.
  if (dispatching_) return;
  if (transport_ &&
      session_->transmit_pending_bytes() >= options_.early_flush_bytes) {
    DrainTransmit();
    transport_->Flush();
  }
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(executor_, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    self->flush_posted_ = false;
    self->AfterInput();
  });
}

SYMWIRE_DECL void Channel::ArmTimer() {
  const absl::Time due =
      ended_ ? absl::InfiniteFuture() : session_->NextDeadline();
  if (due == absl::InfiniteFuture()) {
    if (timer_at_ != absl::InfiniteFuture()) {
      ++timer_generation_;
      timer_at_ = absl::InfiniteFuture();
      timer_.cancel();
    }
    return;
  }
  // A later deadline leaves the armed timer alone: it fires early, which
  // HandleTimeout allows, and re-arms. Pushing heartbeat and ack timers
  // back on every frame would otherwise cost a timerfd update per batch.
  if (due >= timer_at_) return;
  timer_at_ = due;
  const uint64_t generation = ++timer_generation_;
  timer_.expires_at(detail::ToSteady(due));
  timer_.async_wait(
      [weak = weak_from_this(), generation](const boost::system::error_code&) {
        auto self = weak.lock();
        if (!self || generation != self->timer_generation_) return;
        self->timer_at_ = absl::InfiniteFuture();
        self->session_->HandleTimeout(self->Now(Reading::kFresh));
        self->AfterInput();
      });
}

SYMWIRE_DECL void Channel::OnTransportData(Transport& transport,
                                           absl::Span<const std::byte> bytes) {
  if (&transport != transport_.get()) return;
  if (!established_once_ && server_) {
    // ServerOptions::max_handshake_bytes: before the session is
    // established only a preface and a few control frames are legal.
    if (absl::Status st = server_->CountHandshakeBytes(bytes.size());
        !st.ok()) {
      session_->Abort(st, Now(Reading::kFresh));
      AfterInput();
      return;
    }
  }
  if (server_ && server_->handshake != 0) {
    // The server's Endpoint decides what this connection becomes.
    if (auto server = OwningServer()) {
      server->OnHandshakeData(shared_from_this(), bytes, Now(Reading::kFresh));
      return;
    }
  }
  const uint64_t resumes = session_->counters().resumes;
  // Errors are reported as events (ConnectionLost, SessionFailed).
  static_cast<void>(session_->Receive(bytes, Now(Reading::kFresh)));
  if (session_->counters().resumes != resumes) BeginReplay(false);
  AfterInput();
  if (transport_ && unread_bytes_ > options_.max_unread_response_bytes) {
    transport_->PauseReading();
  }
}

SYMWIRE_DECL void Channel::OnTransportClosed(Transport& transport,
                                             const absl::Status& status) {
  if (&transport != transport_.get()) return;
  Detach(status);
  session_->TransportLost(status.ok() ? MakeError(ErrorCode::kConnectionLost,
                                                  "connection closed by peer")
                                      : status,
                          Now(Reading::kFresh));
  AfterInput();
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_DRIVER_IPP_
