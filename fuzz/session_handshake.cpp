// File: fuzz/session_handshake.cpp
// libFuzzer target for the session handshake (SPEC.md §12, §16.2): the
// input is what a peer sends, fed in input-chosen splits into
//   - a fresh acceptor Session (as a server creates one per connection),
//   - an initiator Session after TransportConnected (its preface and HELLO
//     are out; the input plays the server).
// The acceptor side is a symwire::Endpoint (fuzz/session_fuzz.hpp's
// FuzzServer): every acceptor connection is accepted by it and its bytes go
// through Endpoint::Receive until the Endpoint says what it became. With
// the resume bit, an established pair is built first (a real handshake in
// memory, with some unacknowledged traffic; its acceptor registered by the
// Endpoint); the initiator is then that pair's initiator, reconnecting with
// a resume HELLO, which the Endpoint routes to the pair's acceptor, so the
// input reaches the resume checks and the replay.
//
// Input layout (fuzz/README.md; fuzz/session_seeds.cpp writes seeds):
//   byte 0     bits 0-1  auth: 0 none, 1 token, 2 HMAC-SHA256, 3 none
//              bits 2-3  roles (initiator/acceptor): 0 orchestrator/agent,
//                        1 agent/orchestrator, 2 peer/peer, 3 orch./orch.
//              bit 4     resume mode (see above)
//              bit 5     resume mode: the pair's acceptor is not told that
//                        its connection died (half-open; the resumed
//                        connection supersedes it)
//              bit 6     the Endpoint forgets the pair's session first
//                        (Remove), so the resume names an unknown id
//              bit 7     payload checksums off
//   byte 1     split: 0 = all at once, 1..127 = chunks of that size,
//              128..255 = pseudo-random chunk sizes 1..(b & 127) + 1
//   byte 2     milliseconds the clock advances after each chunk (timers
//              run); 0 = the clock stands still until the end
//   bytes 3-4  big-endian length of the acceptor's stream (clamped)
//   rest       the acceptor's input stream, then the initiator's
//
// When a side's connection ends and input for it remains, the target goes
// on with a new connection (at most 3 per side): the initiator after its
// ReconnectDue, the acceptor with another fresh session. At the end the
// clock runs for a simulated 30 s (handshake timeouts, expiry, backoff).
// Invariants: fuzz/session_fuzz.hpp (CheckedSession, OutputChecker), plus
// the Endpoint's outcomes: a new session is the fresh one, registered; a
// resume goes to the registered session, closes the fresh one, supersedes
// exactly when the registered session was connected, and the session that
// took the connection is the one fed afterwards; a rejection fails the
// fresh session and leaves the registered one as it was; the Endpoint
// holds at most one handshake and never more sessions than were started.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fuzz_check.hpp"
#include "session_fuzz.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/session/session.hpp"

namespace {

using symwire::SessionSide;
using symwire::SessionState;
using symwire::fuzz::Bytes;
using symwire::fuzz::CheckedSession;

constexpr size_t kControlSize = 5;
constexpr int kMaxConnections = 3;

using symwire::fuzz::Chunker;

struct Control {
  symwire::fuzz::AuthKind auth;
  symwire::fuzz::Roles roles;
  bool resume = false;
  bool half_open = false;
  bool reject = false;
  bool checksums = true;
  uint8_t split = 0;
  absl::Duration step;
};

class Run {
 public:
  explicit Run(const Control& c)
      : c_(c),
        chunker_(c.split),
        server_(c.roles.acceptor, c.auth, c.checksums) {
    if (c.resume) {
      symwire::fuzz::PairSpec spec;
      spec.roles = c.roles;
      spec.auth = c.auth;
      spec.checksums = c.checksums;
      pair_ = symwire::fuzz::BuildPair(spec, &server_);
      symwire::fuzz::Reconnect(pair_, c.half_open);
      now_ = pair_.now;
      initiator_ = pair_.initiator.get();
      registered_ = pair_.acceptor.get();
      started_ = 1;
      if (c.reject) {
        FUZZ_CHECK(server_.endpoint().Remove(registered_->s().session_id()));
        started_ = 0;
        registered_ = nullptr;
        forgotten_ = pair_.acceptor.get();
      }
    } else {
      own_initiator_ = std::make_unique<CheckedSession>(
          symwire::fuzz::FuzzConfig(SessionSide::kInitiator, c.roles.initiator,
                                    c.auth, symwire::fuzz::kInitiatorSeed,
                                    c.checksums),
          now_);
      initiator_ = own_initiator_.get();
      initiator_->TransportConnected(now_);
    }
    NewAcceptor();
  }

  void FeedAcceptor(Bytes stream) {
    int connections = 1;
    while (!stream.empty()) {
      if (!acceptor_->Connected()) {
        if (++connections > kMaxConnections) return;
        NewAcceptor();
      }
      const size_t n = chunker_.Next(stream.size());
      CheckedSession& target = *acceptor_;
      if (handle_ != 0 && &target == fresh_) {
        const SessionState before = registered_ != nullptr
                                        ? registered_->s().state()
                                        : SessionState::kIdle;
        Settle(fresh_->ReceiveRouted(server_.endpoint(), handle_,
                                     stream.first(n), now_),
               before);
      } else {
        target.Receive(stream.first(n), now_);
      }
      stream.remove_prefix(n);
      Tick();
    }
  }

  void FeedInitiator(Bytes stream) {
    int connections = 1;
    while (!stream.empty()) {
      if (!initiator_->Connected()) {
        if (++connections > kMaxConnections) return;
        if (!Redial()) return;
      }
      const size_t n = chunker_.Next(stream.size());
      initiator_->Receive(stream.first(n), now_);
      stream.remove_prefix(n);
      Tick();
    }
  }

  // Lets every timer run for a simulated 30 s.
  void Finish() {
    if (symwire::fuzz::Verbose()) Print("after the input");
    std::vector<CheckedSession*> all = Live();
    symwire::fuzz::RunClock(all, now_, now_ + absl::Seconds(30), 256);
    if (symwire::fuzz::Verbose()) Print("after 30 s");
  }

 private:
  void Print(const char* when) {
    auto line = [](const char* who, const CheckedSession* e) {
      if (e == nullptr) return;
      const symwire::Session& x = e->s();
      std::fprintf(stderr,
                   "  %-10s %s resumes=%llu frames_in=%llu out=%llu "
                   "last_received=%llu status=%s\n",
                   who,
                   std::string(symwire::SessionStateName(x.state())).c_str(),
                   static_cast<unsigned long long>(x.counters().resumes),
                   static_cast<unsigned long long>(x.counters().frames_in),
                   static_cast<unsigned long long>(x.counters().frames_out),
                   static_cast<unsigned long long>(x.last_received()),
                   x.status().ToString().c_str());
    };
    std::fprintf(stderr, "session_handshake: %s\n", when);
    line("initiator", initiator_);
    line("acceptor", acceptor_);
    if (registered_ != acceptor_) line("registered", registered_);
  }

  std::vector<CheckedSession*> Live() {
    std::vector<CheckedSession*> all = {initiator_, acceptor_};
    if (registered_ != nullptr && registered_ != acceptor_) {
      all.push_back(registered_);
    }
    if (forgotten_ != nullptr) all.push_back(forgotten_);
    return all;
  }

  void Tick() {
    if (c_.step == absl::ZeroDuration()) return;
    std::vector<CheckedSession*> all = Live();
    symwire::fuzz::RunClock(all, now_, now_ + c_.step);
    RouteAfterInput();
  }

  // The fresh session got inputs directly (timers): ask the Endpoint.
  void RouteAfterInput() {
    if (handle_ == 0) return;
    const SessionState before =
        registered_ != nullptr ? registered_->s().state() : SessionState::kIdle;
    Settle(server_.endpoint().Route(handle_, now_), before);
  }

  // Acts on what the Endpoint says the fresh connection became, and checks
  // it (file comment). `before`: the registered session's state before.
  void Settle(const symwire::ConnectionOutcome& o, SessionState before) {
    symwire::Endpoint& ep = server_.endpoint();
    FUZZ_CHECK(ep.handshakes() <= 1);
    if (std::holds_alternative<symwire::HandshakeRunning>(o)) {
      FUZZ_CHECK(ep.handshake(handle_) == &fresh_->s());
      return;
    }
    FUZZ_CHECK(ep.handshake(handle_) == nullptr);  // retired
    handle_ = 0;
    FUZZ_CHECK(ep.handshakes() == 0);
    if (const auto* started = std::get_if<symwire::SessionStarted>(&o)) {
      FUZZ_CHECK(started->session == fresh_->shared());
      FUZZ_CHECK(fresh_->s().state() == SessionState::kEstablished);
      FUZZ_CHECK(ep.Find(fresh_->s().session_id()) == fresh_->shared());
      registered_ = fresh_;
      ++started_;
    } else if (const auto* resumed = std::get_if<symwire::SessionResumed>(&o)) {
      const std::string what = absl::StrCat(
          "resumed: fresh ", symwire::SessionStateName(fresh_->s().state()),
          ", registered ",
          registered_ != nullptr
              ? symwire::SessionStateName(registered_->s().state())
              : "none");
      FUZZ_CHECK_MSG(
          registered_ != nullptr && resumed->session == registered_->shared(),
          what);
      FUZZ_CHECK_MSG(fresh_->s().state() == SessionState::kClosed, what);
      FUZZ_CHECK_MSG(
          resumed->superseded == (before == SessionState::kEstablished), what);
      // Anything `fresh` still had goes out first, on the same stream.
      fresh_->Drain(now_);
      registered_->TakeConnectionFrom(*fresh_);
      registered_->Drain(now_);
      FUZZ_CHECK_MSG(registered_->s().state() == SessionState::kEstablished,
                     what);
      acceptor_ = registered_;
    } else {
      const auto& rejected = std::get<symwire::ConnectionRejected>(o);
      fresh_->Drain(now_);
      FUZZ_CHECK_MSG(
          !rejected.status.ok() && fresh_->s().state() == SessionState::kFailed,
          symwire::fuzz::Text(rejected.status));
      if (registered_ != nullptr) {
        FUZZ_CHECK_MSG(registered_->s().state() == before,
                       symwire::fuzz::Text(rejected.status));
      }
    }
    FUZZ_CHECK(ep.sessions() <= started_);
  }

  void NewAcceptor() {
    if (handle_ != 0) {
      // The previous connection ended without an outcome: give it back.
      RouteAfterInput();
      server_.endpoint().Release(handle_);
      handle_ = 0;
    }
    const uint64_t seed = symwire::fuzz::kFreshSeed + fresh_storage_.size();
    auto fresh = server_.Accept(seed, now_, &handle_);
    FUZZ_CHECK(fresh != nullptr);  // one handshake at a time
    fresh_storage_.push_back(std::move(fresh));
    fresh_ = fresh_storage_.back().get();
    acceptor_ = fresh_;
    fresh_->NewConnection();
    fresh_->Drain(now_);
  }

  // Runs the clock to the initiator's ReconnectDue and connects again.
  bool Redial() {
    for (int i = 0; i < 16; ++i) {
      if (initiator_->s().state() != SessionState::kDisconnected) return false;
      if (initiator_->reconnect_due()) {
        initiator_->TransportConnected(now_);
        return initiator_->Connected();
      }
      const absl::Time next = initiator_->s().NextDeadline();
      if (next == absl::InfiniteFuture()) return false;
      std::vector<CheckedSession*> all = {initiator_};
      symwire::fuzz::RunClock(all, now_, next, 1);
    }
    return false;
  }

  const Control c_;
  Chunker chunker_;
  symwire::fuzz::FuzzServer server_;
  symwire::ConnectionHandle handle_ = 0;  // the fresh one's, while handshaking
  size_t started_ = 0;                    // sessions the Endpoint started
  CheckedSession* forgotten_ = nullptr;   // removed from the Endpoint (bit 6)
  absl::Time now_ = symwire::fuzz::FuzzEpoch();
  symwire::fuzz::Pair pair_;
  std::unique_ptr<CheckedSession> own_initiator_;
  std::vector<std::unique_ptr<CheckedSession>> fresh_storage_;
  CheckedSession* initiator_ = nullptr;
  CheckedSession* fresh_ = nullptr;       // the newest fresh acceptor
  CheckedSession* acceptor_ = nullptr;    // fed the acceptor stream
  CheckedSession* registered_ = nullptr;  // established; answers resumes
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kControlSize) return 0;
  Control c;
  c.auth = symwire::fuzz::AuthFor(data[0] & 3u);
  c.roles = symwire::fuzz::RolesFor((data[0] >> 2) & 3u);
  c.resume = (data[0] & 0x10) != 0;
  c.half_open = (data[0] & 0x20) != 0;
  c.reject = (data[0] & 0x40) != 0;
  c.checksums = (data[0] & 0x80) == 0;
  c.split = data[1];
  c.step = absl::Milliseconds(data[2]);
  // A pair whose roles cannot work together cannot be established.
  if (c.resume && c.roles.initiator == symwire::AgentRole::kOrchestrator &&
      c.roles.acceptor == symwire::AgentRole::kOrchestrator) {
    c.resume = false;
  }
  const Bytes rest = symwire::fuzz::AsBytes(data, size).subspan(kControlSize);
  const size_t acceptor_len =
      std::min<size_t>((size_t{data[3]} << 8) | size_t{data[4]}, rest.size());
  if (symwire::fuzz::Verbose()) {
    std::fprintf(stderr,
                 "session_handshake: auth=%d roles=%d resume=%d half_open=%d "
                 "reject=%d checksums=%d split=%d step=%dms acceptor=%zu "
                 "initiator=%zu bytes\n",
                 data[0] & 3, (data[0] >> 2) & 3, c.resume, c.half_open,
                 c.reject, c.checksums, data[1], data[2], acceptor_len,
                 rest.size() - acceptor_len);
  }
  Run run(c);
  run.FeedAcceptor(rest.first(acceptor_len));
  run.FeedInitiator(rest.subspan(acceptor_len));
  run.Finish();
  return 0;
}
