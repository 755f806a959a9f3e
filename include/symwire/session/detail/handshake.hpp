// File: symwire/session/detail/handshake.hpp
// Layer 2 helper. The pure parts of the handshake and the resume (SPEC.md
// §12, §16.2): building this side's INIT parameters from its configuration,
// the role rule, recording the peer's announced limits, and checking that a
// resume keeps the session's contract. No state of a Session: it calls
// these as the coordinator of its handshake (session_handshake.ipp).
// Users never include this directly; a test that does includes
// session.hpp first (header-only mode: see tests/session/handshake_test.cpp).
#ifndef SYMWIRE_SESSION_DETAIL_HANDSHAKE_HPP_
#define SYMWIRE_SESSION_DETAIL_HANDSHAKE_HPP_

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "symwire/error.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/detail/session_text.hpp"
#include "symwire/session/session.hpp"

namespace symwire::detail {

// Whether two roles can share a session: one side sends tasks the other
// runs (§12).
inline bool RolesCompatible(AgentRole a, AgentRole b) {
  return (RoleSendsTasks(a) && RoleRunsTasks(b)) ||
         (RoleSendsTasks(b) && RoleRunsTasks(a));
}

// Records the peer's INIT `m` in `p`; negotiated capabilities are the
// intersection with `local_caps`.
inline void FillPeer(const InitMessage& m, uint64_t local_caps, PeerInfo& p) {
  p.agent_id.assign(m.agent_id.data(), m.agent_id.size());
  p.role = m.role;
  p.capabilities = m.capabilities;
  p.negotiated_capabilities = m.capabilities & local_caps;
  p.max_payload_bytes = m.max_payload_bytes;
  p.max_header_bytes = m.max_header_bytes;
  p.max_tasks = m.max_tasks;
  p.replay_bytes = m.replay_bytes;
  p.replay_frames = m.replay_frames;
  p.ping_interval = MicrosDuration(m.ping_interval_us);
  p.min_ping_interval = MicrosDuration(m.min_ping_interval_us);
}

// This side's INIT parameters for `phase` from its configuration (§11.1);
// the caller adds the phase's own fields (nonce, auth data, session id,
// resume fields).
inline InitMessage LocalInit(const SessionConfig& config, InitPhase phase) {
  InitMessage m;
  m.phase = phase;
  m.min_version = config.min_version;
  m.max_version = config.max_version;
  m.auth_method = config.authenticator->method();
  m.agent_id = config.agent_id;
  m.role = config.role;
  m.capabilities = config.capabilities;
  m.max_payload_bytes = config.max_payload_bytes;
  m.max_header_bytes = config.max_header_bytes;
  m.max_tasks = config.max_tasks;
  m.replay_bytes = config.replay_bytes;
  m.replay_frames = config.replay_frames;
  m.ping_interval_us =
      std::max<uint64_t>(1, DurationMicros(config.ping_interval));
  m.min_ping_interval_us = DurationMicros(config.min_peer_ping_interval);
  m.resume_window_us = DurationMicros(config.resume_window);
  return m;
}

// §16.2: a resumed connection continues the session's contract: the
// resuming INIT `m` (negotiated `version`) against the session's `peer`.
inline absl::Status CheckResumeIdentity(const PeerInfo& peer,
                                        const InitMessage& m,
                                        uint64_t version) {
  // §16.2: a resumed connection continues the session's contract. Frames
  // kept for replay were sized for the peer's limits, and its open tasks
  // counted against its max_tasks; its name and role identify the session.
  const PeerInfo& p = peer;
  std::string what;
  if (absl::string_view(p.agent_id) != m.agent_id) {
    what = absl::StrFormat("agent_id \"%s\" differs from the session's \"%s\"",
                           absl::CHexEscape(m.agent_id),
                           absl::CHexEscape(p.agent_id));
  } else if (m.role != p.role) {
    what = absl::StrFormat("role %s differs from the session's %s",
                           AgentRoleName(m.role), AgentRoleName(p.role));
  } else if (version != p.version) {
    what = absl::StrFormat("version %d differs from the session's %d", version,
                           p.version);
  } else if (m.max_payload_bytes != p.max_payload_bytes) {
    what = absl::StrFormat("max_payload_bytes %d differs from the session's %d",
                           m.max_payload_bytes, p.max_payload_bytes);
  } else if (m.max_header_bytes != p.max_header_bytes) {
    what = absl::StrFormat("max_header_bytes %d differs from the session's %d",
                           m.max_header_bytes, p.max_header_bytes);
  } else if (m.max_tasks != p.max_tasks) {
    what = absl::StrFormat("max_tasks %d differs from the session's %d",
                           m.max_tasks, p.max_tasks);
  }
  if (what.empty()) return absl::OkStatus();
  return MakeError(ErrorCode::kResumeRejected,
                   absl::StrCat("resume may not change the session: ", what));
}

}  // namespace symwire::detail

#endif  // SYMWIRE_SESSION_DETAIL_HANDSHAKE_HPP_
