// File: symwire/runtime/impl/options.ipp
// Out-of-line bodies of runtime/options.hpp (layer 3b).
#ifndef SYMWIRE_RUNTIME_IMPL_OPTIONS_IPP_
#define SYMWIRE_RUNTIME_IMPL_OPTIONS_IPP_

#include <openssl/rand.h>

#include <chrono>
#include <string_view>

#include "symwire/runtime/options.hpp"

namespace symwire {

// ---- free functions ------------------------------------------------------

SYMWIRE_DECL RandomSource SystemRandom() {
  return [](absl::Span<std::byte> out) {
    // RAND_bytes fails only if the system's entropy source is unusable;
    // continuing with predictable ids and tokens would be worse than
    // stopping.
    SYMWIRE_REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                               static_cast<int>(out.size())) == 1);
  };
}

SYMWIRE_DECL absl::Time SteadyNow() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()));
}

SYMWIRE_DECL std::string_view ChannelEventName(ChannelEvent::Kind kind) {
  switch (kind) {
    case ChannelEvent::Kind::kConnected:
      return "connected";
    case ChannelEvent::Kind::kReconnecting:
      return "reconnecting";
    case ChannelEvent::Kind::kResumed:
      return "resumed";
    case ChannelEvent::Kind::kPeerDraining:
      return "peer-draining";
    case ChannelEvent::Kind::kClosed:
      return "closed";
    case ChannelEvent::Kind::kFailed:
      return "failed";
    case ChannelEvent::Kind::kReconnectAttempt:
      return "reconnect-attempt";
  }
  return "unknown";
}

}  // namespace symwire

#endif  // SYMWIRE_RUNTIME_IMPL_OPTIONS_IPP_
