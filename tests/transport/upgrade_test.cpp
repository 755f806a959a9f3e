// File: tests/transport/upgrade_test.cpp
// The runtime's old include path and names (README, "Upgrading") still
// compile: symwire/transport/runtime.hpp forwards to the runtime, and Peer,
// PeerEvent, PeerOptions and PeerEventName are deprecated aliases of
// Channel, ChannelEvent, ChannelOptions and ChannelEventName.
#include <catch2/catch.hpp>
#include <type_traits>

#include "symwire/transport/runtime.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static_assert(std::is_same_v<symwire::Peer, symwire::Channel>);
static_assert(std::is_same_v<symwire::PeerEvent, symwire::ChannelEvent>);
static_assert(std::is_same_v<symwire::PeerOptions, symwire::ChannelOptions>);
static_assert(
    std::is_base_of_v<symwire::ChannelOptions, symwire::ClientOptions>);

TEST_CASE("upgrade: the deprecated PeerEventName is ChannelEventName") {
  for (auto kind : {symwire::ChannelEvent::Kind::kConnected,
                    symwire::ChannelEvent::Kind::kPeerDraining,
                    symwire::ChannelEvent::Kind::kFailed}) {
    CHECK(symwire::PeerEventName(kind) == symwire::ChannelEventName(kind));
  }
  CHECK(symwire::ChannelEventName(symwire::ChannelEvent::Kind::kResumed) ==
        "resumed");
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
