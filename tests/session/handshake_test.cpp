// File: tests/session/handshake_test.cpp
// Tests for session/detail/handshake.hpp, the pure parts of the handshake:
// this side's INIT parameters come from its configuration, roles pair only
// when one side sends tasks the other runs, the peer's INIT is recorded
// with the negotiated capabilities, and a resume that changes the session's
// contract is rejected naming the first difference.
// session.hpp first: in header-only mode it includes the session's bodies,
// which use this detail header, so including the detail header first would
// compile those bodies before its own functions are declared.
#include "symwire/session/session.hpp"
// clang-format off
#include "symwire/session/detail/handshake.hpp"
// clang-format on

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "symwire/error.hpp"
#include "symwire/session/auth.hpp"

namespace symwire::detail {
namespace {

TEST_CASE("LocalInit: the configuration's parameters", "[handshake]") {
  SessionConfig c;
  c.authenticator = NoAuthenticator();
  c.agent_id = "worker-7";
  c.role = AgentRole::kAgent;
  c.capabilities = 5;
  c.max_payload_bytes = 4096;
  c.max_tasks = 9;
  c.ping_interval = absl::Milliseconds(1500);
  c.min_peer_ping_interval = absl::Milliseconds(20);
  c.resume_window = absl::Seconds(3);
  const InitMessage m = LocalInit(c, InitPhase::kWelcome);
  CHECK(m.phase == InitPhase::kWelcome);
  CHECK(m.min_version == c.min_version);
  CHECK(m.max_version == c.max_version);
  CHECK(m.auth_method == c.authenticator->method());
  CHECK(m.agent_id == "worker-7");
  CHECK(m.role == AgentRole::kAgent);
  CHECK(m.capabilities == 5);
  CHECK(m.max_payload_bytes == 4096);
  CHECK(m.max_tasks == 9);
  CHECK(m.ping_interval_us == 1'500'000);
  CHECK(m.min_ping_interval_us == 20'000);
  CHECK(m.resume_window_us == 3'000'000);
  c.ping_interval = absl::ZeroDuration();  // never 0 on the wire
  CHECK(LocalInit(c, InitPhase::kHello).ping_interval_us == 1);
}

TEST_CASE("RolesCompatible: one side sends tasks the other runs",
          "[handshake]") {
  CHECK(RolesCompatible(AgentRole::kOrchestrator, AgentRole::kAgent));
  CHECK(RolesCompatible(AgentRole::kAgent, AgentRole::kOrchestrator));
  CHECK(RolesCompatible(AgentRole::kPeer, AgentRole::kPeer));
  CHECK(RolesCompatible(AgentRole::kPeer, AgentRole::kAgent));
  CHECK_FALSE(RolesCompatible(AgentRole::kAgent, AgentRole::kAgent));
}

TEST_CASE("FillPeer and CheckResumeIdentity", "[handshake]") {
  SessionConfig c;
  c.authenticator = NoAuthenticator();
  c.agent_id = "orch";
  c.role = AgentRole::kOrchestrator;
  c.capabilities = 0b110;
  const InitMessage init = LocalInit(c, InitPhase::kHello);
  PeerInfo peer;
  FillPeer(init, /*local_caps=*/0b011, peer);
  CHECK(peer.agent_id == "orch");
  CHECK(peer.role == AgentRole::kOrchestrator);
  CHECK(peer.capabilities == 0b110);
  CHECK(peer.negotiated_capabilities == 0b010);
  CHECK(peer.max_payload_bytes == init.max_payload_bytes);
  CHECK(peer.ping_interval == c.ping_interval);
  peer.version = 1;

  CHECK(CheckResumeIdentity(peer, init, 1).ok());
  const absl::Status version = CheckResumeIdentity(peer, init, 2);
  CHECK(GetErrorCode(version) == ErrorCode::kResumeRejected);
  CHECK(version.message() ==
        "resume may not change the session: version 2 differs from the "
        "session's 1");
  InitMessage other = init;
  other.max_tasks = init.max_tasks + 1;
  other.agent_id = "orch2";  // the first difference is reported
  const absl::Status name = CheckResumeIdentity(peer, other, 1);
  CHECK(GetErrorCode(name) == ErrorCode::kResumeRejected);
  CHECK(name.message() ==
        "resume may not change the session: agent_id \"orch2\" differs from "
        "the session's \"orch\"");
  other.agent_id = init.agent_id;
  CHECK(CheckResumeIdentity(peer, other, 1).message() ==
        absl::StrCat("resume may not change the session: max_tasks ",
                     init.max_tasks + 1, " differs from the session's ",
                     init.max_tasks));
}

}  // namespace
}  // namespace symwire::detail
