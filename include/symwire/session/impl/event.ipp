// File: symwire/session/impl/event.ipp
// Out-of-line bodies for session/event.hpp.
#ifndef SYMWIRE_SESSION_IMPL_EVENT_IPP_
#define SYMWIRE_SESSION_IMPL_EVENT_IPP_

#include "symwire/session/event.hpp"

namespace symwire {

SYMWIRE_DECL absl::string_view EventName(const Event& event) noexcept {
  static constexpr absl::string_view kNames[] = {
      "Established",   "TaskReceived",    "ResponseReceived", "TaskFailed",
      "TaskCancelled", "Writable",        "PeerDraining",     "ConnectionLost",
      "ReconnectDue",  "ResumeRequested", "SessionClosed",    "SessionFailed"};
  static_assert(std::size(kNames) == std::variant_size_v<Event>);
  return kNames[event.index()];
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_EVENT_IPP_
