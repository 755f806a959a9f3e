// Tests of the reconnect backoff (SPEC.md §16.1) against
// tests/vectors/backoff.md: the 8 jitter bytes a Session draws become a
// delay the same way on every host (little-endian, whatever the host's
// byte order), and what counts as an attempt.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "symwire/session/session.hpp"
#include "tests/support/session_pair.hpp"
#include "tests/support/vectors.hpp"

namespace symwire {
namespace {

using testing::LoadVectorFile;
using testing::Vector;

absl::Time T0() { return absl::FromUnixSeconds(1'700'000'000); }

// An initiator whose random source answers every 8-byte draw (the jitter,
// SPEC.md §19's draw order) with `jitter` and any other draw with zeros.
std::unique_ptr<Session> Initiator(const std::vector<std::byte>& jitter,
                                   int* draws) {
  SessionConfig c = testing::InitiatorConfig();
  c.random = [jitter, draws](absl::Span<std::byte> out) {
    if (out.size() == jitter.size()) {
      std::copy(jitter.begin(), jitter.end(), out.begin());
      ++*draws;
    } else {
      std::fill(out.begin(), out.end(), std::byte{0});
    }
  };
  auto s = Session::Create(std::move(c), T0());
  REQUIRE(s.ok());
  return *std::move(s);
}

// Makes `s` schedule attempts 0..n: a connection lost before its handshake
// completed (attempt 0), then n dials that fail. Returns the delay of
// attempt n.
absl::Duration DelayOfAttempt(Session& s, int n) {
  absl::Time now = T0();
  REQUIRE(s.TransportConnected(now).ok());
  while (!s.PollTransmit().empty()) {
  }
  s.TransportLost(absl::UnavailableError("connection reset"), now);
  while (s.PollEvent()) {
  }
  for (int k = 1; k <= n; ++k) {
    now = s.NextDeadline();
    REQUIRE(now != absl::InfiniteFuture());
    s.HandleTimeout(now);  // ReconnectDue
    while (s.PollEvent()) {
    }
    s.TransportLost(absl::UnavailableError("dial failed"), now);
  }
  return s.NextDeadline() - now;
}

TEST_CASE("backoff vectors", "[session][resume][vectors]") {
  const std::vector<Vector> vectors = LoadVectorFile("backoff.md");
  REQUIRE(vectors.size() >= 8);
  for (const Vector& v : vectors) {
    INFO("backoff.md: " << v.name);
    REQUIRE(v.input.size() == 8);
    REQUIRE(v.options.size() == 1);
    REQUIRE(v.options[0].first == "attempt");
    const int attempt = std::stoi(v.options[0].second);
    uint64_t x = 0;
    for (size_t k = 0; k < 8; ++k) {
      x |= static_cast<uint64_t>(v.input[k]) << (8 * k);
    }
    int draws = 0;
    auto s = Initiator(v.input, &draws);
    const absl::Duration delay = DelayOfAttempt(*s, attempt);
    CHECK(draws == attempt + 1);  // one jitter draw per scheduled attempt
    const std::string got = absl::StrCat(
        "k=", x >> 11,
        " delay_us=", std::llround(absl::ToDoubleMicroseconds(delay)));
    REQUIRE(v.log.size() == 1);
    CHECK(got == v.log[0]);
  }
}

TEST_CASE("the attempt counter restarts after a successful handshake",
          "[session][resume]") {
  // SPEC.md §16.1: the first redial after losing an established
  // connection is attempt 0 again, and it waits.
  testing::PairOptions o;
  o.initiator.backoff.jitter = 0;
  o.initiator.resume_window = absl::Hours(1);
  o.acceptor.resume_window = absl::Hours(1);
  testing::SessionPair pair(o);
  REQUIRE(pair.Handshake());
  pair.set_dials_fail(true);
  pair.Cut();
  pair.RunUntil(
      [&] { return pair.Count<ReconnectDue>(testing::Side::kInitiator) >= 3; });
  pair.set_dials_fail(false);
  pair.RunUntil(
      [&] { return pair.Count<Established>(testing::Side::kInitiator) >= 2; });
  REQUIRE(pair.Count<Established>(testing::Side::kInitiator) == 2);
  const absl::Time cut = pair.now();
  pair.Cut();
  pair.RunUntil(
      [&] { return pair.Count<ReconnectDue>(testing::Side::kInitiator) >= 4; });
  auto due = pair.Find<ReconnectDue>(testing::Side::kInitiator);
  REQUIRE(due.size() >= 4);
  CHECK(due[3]->at - cut == o.initiator.backoff.initial);
}

}  // namespace
}  // namespace symwire
