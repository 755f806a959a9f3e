// File: symwire/runtime/impl/driver.ipp
// Out-of-line bodies of runtime/channel.hpp (layer 3b): Channel as the
// host of its ConnectionDriver (detail/driver.hpp; the loop itself is in
// impl/connection_driver.ipp): attaching and detaching a connection, what
// a server's handshake does with the bytes read, and why a lost
// connection was lost.
#ifndef SYMWIRE_RUNTIME_IMPL_DRIVER_IPP_
#define SYMWIRE_RUNTIME_IMPL_DRIVER_IPP_

#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/detail/server_part.hpp"

namespace symwire {

SYMWIRE_DECL void Channel::Attach(std::shared_ptr<Transport> transport,
                                  bool start) {
  driver_.Attach(std::move(transport));
  Transport& attached = *driver_.transport();
  if (options_.observer) observed_peer_ = attached.description();
  if (server_) server_->Attached(attached, established_once_);
  driver_.StartReading(start);
  if (unread_bytes_ > options_.max_unread_response_bytes) {
    attached.PauseReading();
  }
}

SYMWIRE_DECL void Channel::Detach(const absl::Status& why) {
  if (!driver_.transport()) return;
  driver_.Detach();
  if (server_) server_->Detached(Now());
  // A connection that carried a session (a handshaking one that fails is
  // OnHandshakeFailed's; one moved to its session is not closed).
  if (options_.observer && established_once_) {
    options_.observer->OnConnectionClosed(
        ConnectionInfo{observed_peer_, server_ ? server_->source : ""}, why);
  }
}

SYMWIRE_DECL bool Channel::InterceptData(absl::Span<const std::byte> bytes) {
  if (!established_once_ && server_) {
    // ServerOptions::max_handshake_bytes: before the session is
    // established only a preface and a few control frames are legal.
    if (absl::Status st = server_->CountHandshakeBytes(bytes.size());
        !st.ok()) {
      session_->Abort(st, Now(Reading::kFresh));
      AfterInput();
      return true;
    }
  }
  if (server_ && server_->handshake != 0) {
    // The server's Endpoint decides what this connection becomes.
    if (auto server = OwningServer()) {
      server->OnHandshakeData(shared_from_this(), bytes, Now(Reading::kFresh));
      return true;
    }
  }
  return false;
}

SYMWIRE_DECL absl::Status Channel::LostReason(Transport& transport,
                                              const absl::Status& status) {
  absl::Status why = status.ok() ? MakeError(ErrorCode::kConnectionLost,
                                             "connection closed by peer")
                                 : status;
  // A plain-TCP client on a TLS port: the TLS server reads our preface as
  // a bad record and closes without a byte (OpenSSL sends no alert for a
  // first record that is not TLS). Say what that usually means.
  const TransportCounters counters = transport.counters();
  if (client_ && !established_once_ && counters.bytes_read == 0 &&
      counters.bytes_written > 0 &&
      absl::StartsWith(transport.description(), "tcp ")) {
    absl::Status hinted(
        why.code(),
        absl::StrCat(why.message(),
                     " (before sending a byte: if the server's port serves "
                     "TLS, is it a tls:// endpoint? dial it with TlsDialer)"));
    why.ForEachPayload([&](absl::string_view url, const absl::Cord& p) {
      hinted.SetPayload(url, p);
    });
    why = std::move(hinted);
  }
  return why;
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_DRIVER_IPP_
