// File: tests/support/control_messages.hpp
// Test support for layer 2: a fully populated control message to start
// from in payload tests (every field of the phase set to a distinctive,
// valid value).
#ifndef SYMWIRE_TESTS_SUPPORT_CONTROL_MESSAGES_HPP_
#define SYMWIRE_TESTS_SUPPORT_CONTROL_MESSAGES_HPP_

#include <cstddef>

#include "symwire/session/control.hpp"

namespace symwire::testing {

// BaseInit
// A valid AGENT_INIT of `phase`; WELCOME also carries session_id,
// resume_token, last_received 0 and a resume window.
inline InitMessage BaseInit(InitPhase phase) {
  InitMessage m;
  m.phase = phase;
  m.min_version = 1;
  m.max_version = 3;
  m.version = 2;
  m.agent_id = "agent-1";
  m.role = AgentRole::kAgent;
  m.capabilities = kCapDrain | kCapMetadata;
  m.max_payload_bytes = 1 << 20;
  m.max_header_bytes = 4096;
  m.max_tasks = 16;
  m.replay_bytes = 1 << 20;
  m.replay_frames = 256;
  m.ping_interval_us = 10'000'000;
  m.min_ping_interval_us = 1'000'000;
  m.auth_method = AuthMethod::kHmacSha256;
  for (size_t i = 0; i < kNonceSize; ++i) m.nonce[i] = std::byte(i * 7);
  if (phase == InitPhase::kWelcome) {
    m.session_id.emplace();
    m.session_id->fill(std::byte{0x5A});
    m.resume_token.emplace();
    m.resume_token->fill(std::byte{0xC3});
    m.last_received = 0;
    m.resume_window_us = 60'000'000;
  }
  return m;
}

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTS_SUPPORT_CONTROL_MESSAGES_HPP_
