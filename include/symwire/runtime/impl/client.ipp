// File: symwire/runtime/impl/client.ipp
// Out-of-line bodies of runtime/client.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_CLIENT_IPP_
#define SYMWIRE_RUNTIME_IMPL_CLIENT_IPP_

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/dispatch.hpp"
#include "symwire/error.hpp"
#include "symwire/runtime/client.hpp"
#include "symwire/runtime/detail/client_part.hpp"

namespace symwire {

namespace detail {

// A first-connection failure that a new attempt cannot fix
// (ClientOptions::retry_first_connect): the peer refused us for who we are
// or what we speak, or our own configuration is wrong.
inline bool DefinitiveFirstFailure(const absl::Status& status) {
  switch (GetErrorCode(status)) {
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kVersionMismatch:
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kIncompatibleRoles:
      return true;
    default:
      break;
  }
  switch (status.code()) {
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    case absl::StatusCode::kInvalidArgument:
      // Without a symwire code: a bad configuration. With one: bytes that
      // arrived damaged (a flipped bit), worth another connection.
      return GetErrorCode(status) == ErrorCode::kOk;
    default:
      return false;
  }
}

// ---- ClientPart ------------------------------------------------------------

SYMWIRE_DECL void ClientPart::Dial(Channel& channel) {
  if (dialing || channel.ended_) return;
  dialing = true;
  dialer([weak = channel.weak_from_this()](DialResult result) {
    auto self = weak.lock();
    if (!self) {
      if (result.ok()) (*result)->Close();
      return;
    }
    self->client_->dialing = false;
    if (self->ended_) {
      if (result.ok()) (*result)->Close();
      return;
    }
    const absl::Time now = self->Now(Channel::Reading::kFresh);
    if (!result.ok()) {
      self->client_->NoteFailure(result.status(), now);
      if (!self->established_once_) {
        self->session_->Abort(result.status(), now);
      } else {
        self->session_->TransportLost(result.status(), now);
      }
      self->AfterInput();
      return;
    }
    self->Attach(std::move(*result), true);
    const absl::Status st = self->session_->TransportConnected(now);
    if (!st.ok()) {
      std::shared_ptr<Transport> t = self->driver_.transport();
      self->Detach();
      t->Close(st);
    }
    self->AfterInput();
  });
}

SYMWIRE_DECL bool ClientPart::MaybeRetryFirst(Channel& channel,
                                              const absl::Status& status) {
  if (!retry_first || channel.user_ended_ || channel.ended_ || !dialer ||
      retry_pending) {
    return false;
  }
  if (DefinitiveFirstFailure(status)) return false;
  ++first_attempts;  // connections tried so far, all failed
  if (first_attempts >= first_max_attempts) return false;
  // SPEC.md §16.1's backoff, as between reconnects.
  const BackoffConfig& b = channel.options_.session.backoff;
  double delay =
      absl::ToDoubleSeconds(b.initial) *
      std::pow(b.multiplier, static_cast<double>(first_attempts - 1));
  delay = std::min(delay, absl::ToDoubleSeconds(b.max));
  std::array<std::byte, 8> r;
  channel.options_.session.random(absl::Span<std::byte>(r));
  uint64_t x;
  std::memcpy(&x, r.data(), sizeof x);
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  delay *= 1.0 + b.jitter * u;
  const absl::Time at = channel.Now() + absl::Seconds(delay);
  if (at > first_deadline) return false;
  retry_pending = true;
  first_failure = status;
  channel.Notify(ChannelEvent::Kind::kReconnecting, status, first_attempts);
  if (!retry_timer) {
    retry_timer = std::make_unique<asio::steady_timer>(channel.executor_);
  }
  retry_timer->expires_at(ToSteady(at));
  retry_timer->async_wait(
      [weak = channel.weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec || !self->client_->retry_pending) return;
        self->client_->retry_pending = false;
        if (self->ended_) return;
        // The failed session is done; a fresh one handshakes on the next
        // connection (a session that failed its handshake cannot be reused).
        if (self->driver_.transport()) {
          std::shared_ptr<Transport> t = self->driver_.transport();
          self->Detach();
          t->Close();
        }
        auto session = Session::Create(self->options_.session,
                                       self->Now(Channel::Reading::kFresh));
        if (!session.ok()) {
          self->SessionEnded(session.status());
          self->Notify(ChannelEvent::Kind::kFailed, session.status());
          return;
        }
        self->session_ = std::move(*session);
        self->client_->Dial(*self);
      });
  return true;
}

SYMWIRE_DECL void ClientPart::EndPendingRetry(Channel& channel) {
  // Between two first-connection attempts the session has already failed:
  // end with its error now instead of dialling again.
  if (!retry_pending) return;
  retry_pending = false;
  if (retry_timer) retry_timer->cancel();
  const absl::Status why = first_failure;
  channel.SessionEnded(why);
  channel.Notify(ChannelEvent::Kind::kFailed, why);
}

SYMWIRE_DECL void ClientPart::NoteFailure(const absl::Status& status,
                                          absl::Time now) {
  last_failure = status;
  last_failure_at = now;
  if (outage) transient_failure = true;  // a redial or resume failed
}

SYMWIRE_DECL void ClientPart::OutageBegins(Channel& channel) {
  if (outage) return;  // a failed redial or resume: the same outage
  outage = true;
  if (unreachable_timeout == absl::InfiniteDuration()) return;
  if (!unreachable_timer) {
    unreachable_timer = std::make_unique<asio::steady_timer>(channel.executor_);
  }
  unreachable_timer->expires_at(
      ToSteady(channel.Now(Channel::Reading::kFresh) + unreachable_timeout));
  unreachable_timer->async_wait(
      [weak = channel.weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec || self->ended_ || !self->client_->outage) return;
        ClientPart& part = *self->client_;
        const absl::Status why = MakeError(
            absl::StatusCode::kUnavailable, ErrorCode::kConnectionLost,
            absl::StrCat(
                "server unreachable for ",
                absl::ToInt64Milliseconds(part.unreachable_timeout), " ms: ",
                part.last_failure.ok() ? absl::string_view("no connection")
                                       : part.last_failure.message()));
        self->session_->Abort(why, self->Now(Channel::Reading::kFresh));
        self->AfterInput();
      });
}

SYMWIRE_DECL void ClientPart::OutageEnds() {
  outage = false;
  transient_failure = false;
  if (unreachable_timer) unreachable_timer->cancel();
}

}  // namespace detail

// ---- Client ----------------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Channel>> Client::Connect(
    const asio::any_io_executor& executor, Dialer dialer,
    ClientOptions options) {
  const bool reconnect = options.reconnect;
  const bool retry_first = options.retry_first_connect;
  const uint32_t first_attempts = options.first_connect_attempts;
  const absl::Duration first_timeout = options.first_connect_timeout;
  const absl::Duration unreachable = options.unreachable_timeout;
  absl::StatusOr<std::shared_ptr<Channel>> channel =
      Channel::Make(executor, std::move(options), SessionSide::kInitiator);
  if (!channel.ok()) return channel.status();
  auto part = std::make_unique<detail::ClientPart>();
  part->dialer = std::move(dialer);
  part->reconnect = reconnect;
  part->retry_first = retry_first && first_attempts > 1;
  part->first_max_attempts = first_attempts;
  part->unreachable_timeout = unreachable;
  part->first_deadline =
      (*channel)->Now(Channel::Reading::kFresh) + first_timeout;
  (*channel)->client_ = std::move(part);
  asio::dispatch(executor, [p = *channel] { p->client_->Dial(*p); });
  return channel;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Channel>> Client::Start(
    const std::shared_ptr<Transport>& transport, ChannelOptions options) {
  absl::StatusOr<std::shared_ptr<Channel>> channel = Channel::Make(
      transport->executor(), std::move(options), SessionSide::kInitiator);
  if (!channel.ok()) return channel.status();
  auto part = std::make_unique<detail::ClientPart>();
  part->reconnect = false;  // nothing can redial these pipes
  (*channel)->client_ = std::move(part);
  asio::dispatch(transport->executor(), [p = *channel, transport] {
    p->Attach(transport, true);
    static_cast<void>(
        p->session_->TransportConnected(p->Now(Channel::Reading::kFresh)));
    p->AfterInput();
  });
  return channel;
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_CLIENT_IPP_
