// File: fuzz/session_handshake.cpp
// libFuzzer target for the session handshake (SPEC.md §12, §16.2): the
// input is what a peer sends, fed in input-chosen splits into
//   - a fresh acceptor Session (as a server creates one per connection),
//   - an initiator Session after TransportConnected (its preface and HELLO
//     are out; the input plays the server).
// With the resume bit, an established pair is built first (a real
// handshake in memory, with some unacknowledged traffic); the initiator is
// then that pair's initiator, reconnecting with a resume HELLO, and a
// fresh acceptor's ResumeRequested is answered by the pair's acceptor
// (AdoptConnection), so the input reaches the resume checks and the replay.
//
// Input layout (fuzz/README.md; fuzz/session_seeds.cpp writes seeds):
//   byte 0     bits 0-1  auth: 0 none, 1 token, 2 HMAC-SHA256, 3 none
//              bits 2-3  roles (initiator/acceptor): 0 orchestrator/agent,
//                        1 agent/orchestrator, 2 peer/peer, 3 orch./orch.
//              bit 4     resume mode (see above)
//              bit 5     resume mode: the pair's acceptor is not told that
//                        its connection died (half-open; AdoptConnection
//                        replaces it)
//              bit 6     answer ResumeRequested with RejectResume
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
// Invariants: fuzz/session_fuzz.hpp (Endpoint, OutputChecker), plus: the
// session that adopted a connection is the one fed afterwards; a fresh
// acceptor is established only after a complete HELLO.
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
#include "symwire/session/session.hpp"

namespace {

using symwire::SessionSide;
using symwire::SessionState;
using symwire::fuzz::Bytes;
using symwire::fuzz::Endpoint;

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
  explicit Run(const Control& c) : c_(c), chunker_(c.split) {
    if (c.resume) {
      symwire::fuzz::PairSpec spec;
      spec.roles = c.roles;
      spec.auth = c.auth;
      spec.checksums = c.checksums;
      pair_ = symwire::fuzz::BuildPair(spec);
      symwire::fuzz::Reconnect(pair_, c.half_open);
      now_ = pair_.now;
      initiator_ = pair_.initiator.get();
      registered_ = pair_.acceptor.get();
    } else {
      own_initiator_ = std::make_unique<Endpoint>(
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
      Endpoint& target = *acceptor_;
      target.Receive(stream.first(n), now_);
      stream.remove_prefix(n);
      if (fresh_ != nullptr && fresh_ == acceptor_ &&
          symwire::fuzz::HasEvent<symwire::ResumeRequested>(*fresh_)) {
        AnswerResume();
      }
      if (fresh_ != nullptr && fresh_ != registered_ &&
          fresh_->s().state() == SessionState::kEstablished) {
        // A new session (full HELLO): the server registers it.
        registered_ = fresh_;
      }
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
    std::vector<Endpoint*> all = Live();
    symwire::fuzz::RunClock(all, now_, now_ + absl::Seconds(30), 256);
    if (symwire::fuzz::Verbose()) Print("after 30 s");
  }

 private:
  void Print(const char* when) {
    auto line = [](const char* who, const Endpoint* e) {
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

  std::vector<Endpoint*> Live() {
    std::vector<Endpoint*> all = {initiator_, acceptor_};
    if (registered_ != nullptr && registered_ != acceptor_) {
      all.push_back(registered_);
    }
    return all;
  }

  void Tick() {
    if (c_.step == absl::ZeroDuration()) return;
    std::vector<Endpoint*> all = Live();
    symwire::fuzz::RunClock(all, now_, now_ + c_.step);
  }

  void NewAcceptor() {
    fresh_storage_.push_back(std::make_unique<Endpoint>(
        symwire::fuzz::FuzzConfig(
            SessionSide::kAcceptor, c_.roles.acceptor, c_.auth,
            symwire::fuzz::kFreshSeed + fresh_storage_.size(), c_.checksums),
        now_));
    fresh_ = fresh_storage_.back().get();
    acceptor_ = fresh_;
    fresh_->TransportConnected(now_);
  }

  void AnswerResume() {
    if (c_.reject || registered_ == nullptr || registered_ == fresh_) {
      fresh_->s().RejectResume(now_);
      fresh_->Drain(now_);
      FUZZ_CHECK(fresh_->s().state() == SessionState::kFailed);
      return;
    }
    const SessionState before = registered_->s().state();
    const absl::Status st = registered_->s().AdoptConnection(fresh_->s(), now_);
    // The connection moved to `registered` when `fresh` is closed, which is
    // on success only: a failed resume (whatever its code) is answered on
    // `fresh`, and `registered` is left exactly as it was.
    const bool moved = fresh_->s().state() == SessionState::kClosed;
    // Anything `fresh` still had goes out first, on the same stream.
    fresh_->Drain(now_);
    if (moved) registered_->TakeConnectionFrom(*fresh_);
    registered_->Drain(now_);
    const std::string what = absl::StrCat(
        "AdoptConnection: ", symwire::fuzz::Text(st), "; fresh ",
        symwire::SessionStateName(fresh_->s().state()), ", registered ",
        symwire::SessionStateName(registered_->s().state()));
    if (st.ok()) {
      FUZZ_CHECK_MSG(moved, what);
      FUZZ_CHECK_MSG(registered_->s().state() == SessionState::kEstablished,
                     what);
      acceptor_ = registered_;
      return;
    }
    FUZZ_CHECK_MSG(symwire::GetErrorCode(st) != symwire::ErrorCode::kOk, what);
    FUZZ_CHECK_MSG(!moved && fresh_->s().state() == SessionState::kFailed,
                   what);
    FUZZ_CHECK_MSG(registered_->s().state() == before, what);
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
      std::vector<Endpoint*> all = {initiator_};
      symwire::fuzz::RunClock(all, now_, next, 1);
    }
    return false;
  }

  const Control c_;
  Chunker chunker_;
  absl::Time now_ = symwire::fuzz::FuzzEpoch();
  symwire::fuzz::Pair pair_;
  std::unique_ptr<Endpoint> own_initiator_;
  std::vector<std::unique_ptr<Endpoint>> fresh_storage_;
  Endpoint* initiator_ = nullptr;
  Endpoint* fresh_ = nullptr;       // the newest fresh acceptor
  Endpoint* acceptor_ = nullptr;    // fed the acceptor stream
  Endpoint* registered_ = nullptr;  // established; answers resumes
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
