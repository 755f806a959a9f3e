// File: tests/support/session_pair.hpp
// Test support for layer 2 (session). A deterministic simulation of two
// peers talking through Sessions: no I/O, no threads, no real time, no
// global randomness. Everything a run does follows from its configs and
// seeds, so any failure replays exactly.
//
// Pieces (namespace symwire::testing):
//
//   FakeClock    an absl::Time that moves only when told (starts at
//                UnixEpoch() + 1000 s so that `now - x` never underflows).
//   SimRandom    SplitMix64; chunk sizes and test choices (portable, unlike
//                std::uniform_int_distribution).
//   Split        how a link cuts its byte stream into Receive calls: all
//                that is pending, fixed-size chunks (1 = byte by byte), or
//                seeded random sizes.
//   Link         one simulated connection: a byte queue per direction.
//                Lossless and in order, except for what a test asks for:
//                CutAfter (the connection dies once the receiver got
//                exactly N bytes of one direction; later bytes are lost),
//                Stall (a direction delivers nothing until a time),
//                CorruptAt (flip bits of one byte at a stream offset).
//   EventRecord  an owned copy of one Event (payloads and the task frame
//                copied out, since event spans die at the next Receive).
//   SessionPair  the initiator Session, a "server" of acceptor Sessions,
//                the current Link, the clock and the two event logs.
//
// The server is an Endpoint (session/endpoint.hpp) made from the acceptor
// config: every new connection gets a FRESH acceptor Session from
// Endpoint::Accept, and its bytes go through Endpoint::Receive until the
// Endpoint says what the connection became (the outcome of every input to
// a handshaking session is asked with Endpoint::Route): a new session
// (registered by the Endpoint), a resume (SessionResumed: the resumed
// session becomes the acceptor endpoint of that link), or a rejection.
// Every server session's events go to the
// acceptor log (EventRecord::session says which session reported it).
// acceptor() is the latest registered session, or the current link's
// acceptor endpoint before any registration.
//
// Driving follows the contract in session.hpp's header comment: after every
// input call (TransportConnected, Receive, HandleTimeout, TransportLost,
// a resume routed by the Endpoint, and whatever a test runs through Do()) the
// harness drains PollTransmit into the link until it returns an empty span,
// then drains PollEvent into the log (so Receive is never called with events
// queued), then honours ConnectionClosing(): that side writes no more and reads
// no more; the bytes it already wrote are still delivered, after which the
// other side gets TransportLost(CONNECTION_LOST) like at an EOF (unless it
// is closing too). A session that reported ConnectionClosing() is not given
// TransportLost for that connection.
//
// Time. Step() does one thing: a pending dial; else a due cut or
// end-of-close on the link; else delivers one chunk of pending bytes (the
// two directions take turns); else advances the clock to the earliest of
// every live session's NextDeadline(), the end of a stall with bytes
// waiting, and a scheduled dial, and calls HandleTimeout on every session
// that is due. Delivery itself takes no simulated time. Step() returns false
// when nothing can ever happen again (no bytes can move and no deadline is
// armed). RunUntil(pred, max_time) steps until pred() holds, the clock has
// moved max_time past the call, the pair is idle, or max_steps ran.
//
// Reconnects. On ReconnectDue from the initiator (with auto_dial, the
// default) the harness dials after dial_delay: a still-up old link is cut
// first (both ends notified), then a new Link is made and TransportConnected
// is called on the initiator and on a fresh server session. FailDials(n)
// makes the next n dials fail (the initiator gets TransportLost instead);
// set_dials_fail(true) makes every dial fail until set back. Cut() kills
// the current link now; notify_initiator / notify_acceptor = false leave a
// side unaware (a half-open connection).
//
// Reacting to events. Tests either run the pair and then inspect the logs
// (Find<T>, Count<T>, Last<T>, FindTask<T>), or set on_event, which is
// called once per logged event, after the input that produced it has been
// fully pumped (never re-entrantly), and may call Do()/Submit()/Respond().
//
// Problems the harness notices in a session's behaviour (Receive refusing
// with WRONG_STATE although events were drained, a NextDeadline that stays
// at or before `now` after HandleTimeout(now)) are appended to problems();
// tests should REQUIRE(pair.problems().empty()). Bytes a session writes
// while it is no endpoint of an up link are counted in stale_bytes().
//
// Example:
//   SessionPair pair;                      // orchestrator -> agent
//   REQUIRE(pair.Handshake());
//   auto id = pair.Submit(Side::kInitiator, "work");
//   pair.RunUntil([&] { return pair.Count<TaskReceived>(Side::kAcceptor) > 0;
//                });
//   pair.link()->CutAfter(Dir::kToInitiator, 3);   // 3 bytes, then dead
//   pair.Respond(Side::kAcceptor, *id, "done", /*final=*/true);
//   pair.RunUntil([&] { return pair.Count<ResponseReceived>(
//                                  Side::kInitiator) > 0; });
//
// Not thread-safe. Sessions stay alive as long as the pair (pointers into
// the pair are stable).
#ifndef SYMWIRE_TESTS_SUPPORT_SESSION_PAIR_HPP_
#define SYMWIRE_TESTS_SUPPORT_SESSION_PAIR_HPP_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/error.hpp"
#include "symwire/session/auth.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/session/event.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"

namespace symwire::testing {

// ---- clock and randomness ---------------------------------------------

// FakeClock
// A simulated absl::Time. Never reads a real clock.
class FakeClock {
 public:
  static absl::Time DefaultStart() {
    return absl::UnixEpoch() + absl::Seconds(1000);
  }
  FakeClock() = default;
  explicit FakeClock(absl::Time start) : now_(start) {}

  absl::Time Now() const { return now_; }
  // Moves forward by `d` (a negative `d` is ignored: time never decreases).
  void Advance(absl::Duration d) {
    if (d > absl::ZeroDuration()) now_ += d;
  }
  // Moves forward to `t` if it is later.
  void AdvanceTo(absl::Time t) {
    if (t > now_) now_ = t;
  }

 private:
  absl::Time now_ = DefaultStart();
};

// SimRandom
// SplitMix64: the same numbers on every platform.
class SimRandom {
 public:
  explicit SimRandom(uint64_t seed = 0) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi] (hi >= lo).
  uint64_t Between(uint64_t lo, uint64_t hi) {
    if (hi <= lo) return lo;
    const uint64_t span = hi - lo + 1;
    return span == 0 ? Next() : lo + Next() % span;
  }
  // True with probability num/den.
  bool Chance(uint64_t num, uint64_t den) {
    return den != 0 && Next() % den < num;
  }

 private:
  uint64_t state_;
};

// ---- configs ------------------------------------------------------------

// MakeConfig
// A valid SessionConfig with a SeededRandom(seed) source. `agent_id` empty
// means "initiator" / "acceptor". Timers are the SPEC.md §19 defaults; see
// FastTimers for a simulation-friendly set.
inline SessionConfig MakeConfig(
    SessionSide side, uint64_t seed, AgentRole role,
    std::shared_ptr<const Authenticator> authenticator = nullptr,
    absl::string_view agent_id = {}) {
  SessionConfig c;
  c.side = side;
  c.role = role;
  c.random = SeededRandom(seed);
  c.authenticator = std::move(authenticator);
  c.agent_id = agent_id.empty()
                   ? std::string(side == SessionSide::kInitiator ? "initiator"
                                                                 : "acceptor")
                   : std::string(agent_id);
  return c;
}
inline SessionConfig InitiatorConfig(
    uint64_t seed = 1, AgentRole role = AgentRole::kOrchestrator,
    std::shared_ptr<const Authenticator> authenticator = nullptr) {
  return MakeConfig(SessionSide::kInitiator, seed, role,
                    std::move(authenticator));
}
inline SessionConfig AcceptorConfig(
    uint64_t seed = 2, AgentRole role = AgentRole::kAgent,
    std::shared_ptr<const Authenticator> authenticator = nullptr) {
  return MakeConfig(SessionSide::kAcceptor, seed, role,
                    std::move(authenticator));
}
// FastTimers
// Timers that keep a simulation moving in milliseconds instead of seconds:
// ack_delay 1 ms, backoff 10 ms x1.6 (max 1 s), handshake 1 s, ping 1 s
// (peers may ping every 100 ms), dead peer 5 s. Resume window unchanged.
inline SessionConfig FastTimers(SessionConfig c) {
  c.ack_delay = absl::Milliseconds(1);
  c.backoff.initial = absl::Milliseconds(10);
  c.backoff.max = absl::Seconds(1);
  c.handshake_timeout = absl::Seconds(1);
  c.ping_interval = absl::Seconds(1);
  c.min_peer_ping_interval = absl::Milliseconds(100);
  c.dead_peer_timeout = absl::Seconds(5);
  return c;
}
// HelloFrom
// The HELLO (no resume) an initiator with config `c` sends: its versions,
// identity, capabilities, limits, replay window and ping interval, with the
// nonce 0, 1, ..., kNonceSize - 1 (a test that needs another sets it).
// agent_id points into `c`: keep `c` alive while the HELLO is used.
inline InitMessage HelloFrom(const SessionConfig& c) {
  InitMessage hello;
  hello.phase = InitPhase::kHello;
  hello.min_version = c.min_version;
  hello.max_version = c.max_version;
  hello.agent_id = c.agent_id;
  hello.role = c.role;
  hello.capabilities = c.capabilities;
  hello.max_payload_bytes = c.max_payload_bytes;
  hello.max_header_bytes = c.max_header_bytes;
  hello.max_tasks = c.max_tasks;
  hello.replay_bytes = c.replay_bytes;
  hello.replay_frames = c.replay_frames;
  hello.ping_interval_us =
      static_cast<uint64_t>(absl::ToInt64Microseconds(c.ping_interval));
  for (size_t k = 0; k < kNonceSize; ++k) hello.nonce[k] = std::byte(k);
  return hello;
}

// ---- bytes ----------------------------------------------------------------

inline absl::Span<const std::byte> AsBytes(absl::string_view s) {
  return absl::Span<const std::byte>(
      reinterpret_cast<const std::byte*>(s.data()), s.size());
}
inline std::string ToString(absl::Span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// ---- sides, directions, splits --------------------------------------------

enum class Side : uint8_t { kInitiator = 0, kAcceptor = 1 };
inline Side Other(Side s) {
  return s == Side::kInitiator ? Side::kAcceptor : Side::kInitiator;
}
inline absl::string_view SideName(Side s) {
  return s == Side::kInitiator ? "initiator" : "acceptor";
}

// Dir: a direction of a link, named by where the bytes go.
enum class Dir : uint8_t { kToAcceptor = 0, kToInitiator = 1 };
inline Dir Toward(Side receiver) {
  return receiver == Side::kAcceptor ? Dir::kToAcceptor : Dir::kToInitiator;
}
inline Side Receiver(Dir d) {
  return d == Dir::kToAcceptor ? Side::kAcceptor : Side::kInitiator;
}
inline Side Sender(Dir d) { return Other(Receiver(d)); }

// Split
// How a link hands pending bytes to Receive: fixed > 0: chunks of exactly
// that size (1 = one byte at a time); else random_max > 0: sizes uniform in
// 1..random_max from the link's SimRandom; else everything pending at once.
struct Split {
  size_t fixed = 0;
  size_t random_max = 0;

  static Split Whole() { return Split{}; }
  static Split Fixed(size_t n) { return Split{n, 0}; }
  static Split Random(size_t max) { return Split{0, max}; }
};

// ---- event log ----------------------------------------------------------

// EventRecord
// One event as reported, owned. In `event`, TaskReceived::frame and
// ResponseReceived::payload are cleared (they pointed into a receive
// buffer); read `payload` (and the frame_* fields for a task) instead.
struct EventRecord {
  uint64_t seq = 0;  // order over both logs
  absl::Time at;
  Side side = Side::kInitiator;
  const Session* session = nullptr;  // which session reported it
  size_t link = 0;                   // id of the current link (0 = none)
  Event event;
  // TaskReceived / ResponseReceived: the payload bytes.
  std::string payload;
  // TaskReceived: the whole AGENT_TASK frame and its extensions.
  std::vector<std::byte> frame_bytes;
  uint64_t frame_sequence = 0;
  std::optional<uint64_t> deadline_us;
  std::optional<TraceParent> trace_parent;
  std::string trace_state;
  std::string method;  // TaskReceived: METHOD (SPEC.md §5.1)
  std::vector<std::pair<std::string, std::string>> metadata;

  template <typename T>
  bool Is() const {
    return std::holds_alternative<T>(event);
  }
  template <typename T>
  const T& As() const {
    return std::get<T>(event);
  }
  // "initiator Established{resumed=1 replayed=3}" and the like.
  std::string Describe() const;
};

// TaskOf: the task id an event is about, or 0.
inline TaskId TaskOf(const Event& e) {
  return std::visit(
      [](const auto& v) -> TaskId {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, TaskReceived> ||
                      std::is_same_v<T, ResponseReceived> ||
                      std::is_same_v<T, TaskFailed> ||
                      std::is_same_v<T, TaskCancelled>) {
          return v.task;
        } else {
          return 0;
        }
      },
      e);
}

inline std::string StatusText(const absl::Status& s) {
  if (s.ok()) return "OK";
  return absl::StrCat(absl::StatusCodeToString(s.code()), "/",
                      ErrorCodeName(GetErrorCode(s)), ": ", s.message());
}

inline std::string EventRecord::Describe() const {
  std::string out = absl::StrCat(
      "#", seq, " t=+", absl::FormatDuration(at - FakeClock::DefaultStart()),
      " ", SideName(side), " link=", link, " ", EventName(event));
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Established>) {
          absl::StrAppend(&out, "{resumed=", v.resumed,
                          " replayed=", v.replayed_frames, "}");
        } else if constexpr (std::is_same_v<T, TaskReceived>) {
          absl::StrAppend(&out, "{task=", v.task, " seq=", frame_sequence,
                          " bytes=", payload.size(), "}");
        } else if constexpr (std::is_same_v<T, ResponseReceived>) {
          absl::StrAppend(&out, "{task=", v.task, " final=", v.final,
                          " bytes=", payload.size(), "}");
        } else if constexpr (std::is_same_v<T, TaskFailed>) {
          absl::StrAppend(&out, "{task=", v.task, " retryable=", v.retryable,
                          " ", StatusText(v.status), "}");
        } else if constexpr (std::is_same_v<T, TaskCancelled>) {
          absl::StrAppend(&out, "{task=", v.task, " here=", v.submitted_here,
                          " ", StatusText(v.status), "}");
        } else if constexpr (std::is_same_v<T, PeerDraining>) {
          absl::StrAppend(&out, "{last=", v.last_accepted, "}");
        } else if constexpr (std::is_same_v<T, ConnectionLost>) {
          absl::StrAppend(&out, "{", StatusText(v.status), "}");
        } else if constexpr (std::is_same_v<T, ReconnectDue>) {
          absl::StrAppend(&out, "{attempt=", v.attempt, "}");
        } else if constexpr (std::is_same_v<T, SessionFailed>) {
          absl::StrAppend(&out, "{", StatusText(v.status),
                          " affected=", v.affected_tasks.size(), "}");
        }
      },
      event);
  return out;
}

// ---- link -------------------------------------------------------------------

// Link
// One simulated connection between the initiator and one acceptor endpoint.
// Byte offsets count from the first byte written in that direction on this
// link (the preface is bytes 0..7).
class Link {
 public:
  size_t id() const { return id_; }
  // True while bytes can still move (not cut, not finished closing).
  bool up() const { return up_; }
  absl::Time created() const { return created_; }
  // The acceptor endpoint (the fresh session, or the session that adopted
  // the connection).
  Session* acceptor_end() const { return ends_[1]; }
  Session* initiator_end() const { return ends_[0]; }

  uint64_t written(Dir d) const { return pipe(d).written; }
  uint64_t delivered(Dir d) const { return pipe(d).delivered; }
  size_t pending(Dir d) const { return pipe(d).buf.size() - pipe(d).head; }
  // Bytes written but never delivered (cut, closed reader).
  uint64_t dropped(Dir d) const { return pipe(d).dropped; }
  // True once the sender of `d` said ConnectionClosing().
  bool closed_by_sender(Dir d) const { return pipe(d).writer_closed; }

  // CutAfter
  // The connection dies once the receiver of `d` has been given exactly `n`
  // bytes of it in total (n == 0: before any byte). Checked before every
  // delivery; a cut point never written does nothing.
  void CutAfter(Dir d, uint64_t n) { pipe(d).cut_after = n; }
  // Stall
  // `d` delivers nothing until the clock reaches `until`.
  void Stall(Dir d, absl::Time until) { pipe(d).stalled_until = until; }
  // CorruptAt
  // XORs the byte at stream offset `offset` of `d` with `mask` on delivery.
  void CorruptAt(Dir d, uint64_t offset, std::byte mask) {
    pipe(d).corrupt.emplace_back(offset, mask);
  }
  void set_split(Split s) { split_ = s; }
  const Split& split() const { return split_; }

 private:
  friend class SessionPair;
  struct Pipe {
    std::vector<std::byte> buf;
    size_t head = 0;
    uint64_t written = 0;
    uint64_t delivered = 0;
    uint64_t dropped = 0;
    std::optional<uint64_t> cut_after;
    absl::Time stalled_until = absl::InfinitePast();
    std::vector<std::pair<uint64_t, std::byte>> corrupt;
    bool writer_closed = false;  // the sender said ConnectionClosing()
    bool reader_closed = false;  // the receiver said ConnectionClosing()
  };
  Link(size_t id, absl::Time created, Split split, uint64_t seed)
      : id_(id), created_(created), split_(split), rng_(seed) {}
  Pipe& pipe(Dir d) { return pipes_[static_cast<size_t>(d)]; }
  const Pipe& pipe(Dir d) const { return pipes_[static_cast<size_t>(d)]; }
  void Write(Dir d, absl::Span<const std::byte> bytes) {
    Pipe& p = pipe(d);
    p.written += bytes.size();
    if (!up_ || p.reader_closed || p.writer_closed) {
      p.dropped += bytes.size();
      return;
    }
    p.buf.insert(p.buf.end(), bytes.begin(), bytes.end());
  }
  void DropPending(Dir d) {
    Pipe& p = pipe(d);
    p.dropped += p.buf.size() - p.head;
    p.buf.clear();
    p.head = 0;
  }

  size_t id_;
  absl::Time created_;
  Split split_;
  SimRandom rng_;
  bool up_ = true;
  std::array<Pipe, 2> pipes_;
  std::array<Session*, 2> ends_{nullptr, nullptr};
};

// ---- the pair -------------------------------------------------------------

// PairOptions
struct PairOptions {
  SessionConfig initiator = InitiatorConfig();
  SessionConfig acceptor = AcceptorConfig();
  absl::Time start = FakeClock::DefaultStart();
  // Split of every new link, and the seed of its chunk sizes (mixed with
  // the link id).
  Split split;
  uint64_t link_seed = 1;
  // Dial on ReconnectDue, dial_delay later.
  bool auto_dial = true;
  absl::Duration dial_delay = absl::ZeroDuration();
  // Echo every delivery, cut and event to stderr.
  bool trace = false;
};

// FastPairOptions
// Both sides with FastTimers (the usual setup of the session tests).
inline PairOptions FastPairOptions() {
  PairOptions o;
  o.initiator = FastTimers(InitiatorConfig());
  o.acceptor = FastTimers(AcceptorConfig());
  return o;
}

// SessionPair
// See the file comment. REQUIRES: both configs are valid (the constructor
// aborts with the reason otherwise).
class SessionPair {
 public:
  explicit SessionPair(PairOptions options = PairOptions())
      : options_(std::move(options)), clock_(options_.start) {
    options_.initiator.side = SessionSide::kInitiator;
    options_.acceptor.side = SessionSide::kAcceptor;
    auto s = Session::Create(options_.initiator, clock_.Now());
    if (!s.ok()) Die("initiator config: " + StatusText(s.status()));
    initiator_ = std::move(*s);
    // Fail early on a bad acceptor config rather than at the first dial.
    if (absl::Status v = ValidateConfig(options_.acceptor); !v.ok()) {
      Die("acceptor config: " + StatusText(v));
    }
  }
  SessionPair(const SessionPair&) = delete;
  SessionPair& operator=(const SessionPair&) = delete;

  // ---- access ----
  FakeClock& clock() { return clock_; }
  absl::Time now() const { return clock_.Now(); }
  Session& initiator() { return *initiator_; }
  // The latest registered (established) server session, else the current
  // link's acceptor endpoint; nullptr before the first connection.
  Session* acceptor() {
    if (registered_latest_ != nullptr) return registered_latest_;
    return link_ != nullptr ? link_->ends_[1] : nullptr;
  }
  Session& session(Side side) {
    if (side == Side::kInitiator) return *initiator_;
    Session* a = acceptor();
    if (a == nullptr) Die("no acceptor session yet (call Connect first)");
    return *a;
  }
  // Every acceptor session the server created, in creation order.
  const std::vector<std::shared_ptr<Session>>& server_sessions() const {
    return server_;
  }
  // The current link (the latest, possibly down); nullptr before Connect.
  Link* link() { return link_; }
  size_t links_created() const { return links_.size(); }
  size_t dials() const { return dials_; }
  size_t dials_failed() const { return dials_failed_; }
  size_t cuts() const { return cuts_; }
  uint64_t stale_bytes() const { return stale_bytes_; }
  uint64_t steps() const { return steps_; }
  // The status of the last resume the server's Endpoint routed (OK when
  // it moved the connection) or of the last connection it rejected.
  const absl::Status& last_adopt_status() const { return last_adopt_; }
  const std::vector<std::string>& problems() const { return problems_; }
  // The status the last Receive / TransportConnected of a side returned.
  const absl::Status& last_receive_status(Side side) const {
    return last_receive_[static_cast<size_t>(side)];
  }
  const absl::Status& last_connect_status(Side side) const {
    return last_connect_[static_cast<size_t>(side)];
  }
  void set_trace(bool on) { options_.trace = on; }
  void set_split(Split s) {
    options_.split = s;
    if (link_ != nullptr) link_->set_split(s);
  }
  void set_auto_dial(bool on) { options_.auto_dial = on; }

  std::function<void(SessionPair&, const EventRecord&)> on_event;

  // ---- connections ----

  // Connect
  // Dials now (whatever the initiator's state): a new link, the initiator
  // and a fresh server session get TransportConnected.
  void Connect() { Dial(/*forced=*/true); }
  // Handshake
  // Connect, then run until both sides reported Established (true) or
  // max_time passed / something failed (false).
  bool Handshake(absl::Duration max_time = absl::Seconds(30)) {
    Connect();
    return RunUntil(
        [&] {
          return initiator_->state() == SessionState::kEstablished &&
                 acceptor() != nullptr &&
                 acceptor()->state() == SessionState::kEstablished;
        },
        max_time);
  }
  // Cut
  // Kills the current link now: pending bytes are lost; each end that is
  // notified (and did not say ConnectionClosing) gets
  // TransportLost(CONNECTION_LOST).
  void Cut(bool notify_initiator = true, bool notify_acceptor = true) {
    if (link_ == nullptr || !link_->up_) return;
    Kill(*link_, notify_initiator, notify_acceptor, "cut by the test");
    RunHooks();
  }
  // The next `n` dials fail (TransportLost on the initiator).
  void FailDials(size_t n) { fail_next_dials_ = n; }
  // While on, every dial fails.
  void set_dials_fail(bool on) { dials_fail_ = on; }
  // Schedules a dial at `when` (for tests that set auto_dial = false).
  void DialAt(absl::Time when) { dial_at_ = std::min(dial_at_, when); }

  // ---- inputs ----

  // Do
  // Runs f(session, now) on `side`'s session, then pumps it. Returns what
  // f returns.
  template <typename F>
  auto Do(Side side, F&& f) {
    Session& s = session(side);
    using R = decltype(f(s, clock_.Now()));
    if constexpr (std::is_void_v<R>) {
      f(s, clock_.Now());
      Pump(s, side);
      if (side == Side::kAcceptor) Settle(s);
      RunHooks();
    } else {
      R result = f(s, clock_.Now());
      Pump(s, side);
      if (side == Side::kAcceptor) Settle(s);
      RunHooks();
      return result;
    }
  }
  absl::StatusOr<TaskId> Submit(Side side, absl::string_view payload,
                                const TaskOptions& options = {}) {
    return Do(side, [&](Session& s, absl::Time now) {
      return s.SubmitTask(AsBytes(payload), options, now);
    });
  }
  absl::Status Respond(Side side, TaskId task, absl::string_view payload,
                       bool final) {
    return Do(side, [&](Session& s, absl::Time now) {
      return s.SendResponse(task, AsBytes(payload), final, now);
    });
  }
  absl::Status Cancel(Side side, TaskId task) {
    return Do(side, [&](Session& s, absl::Time now) {
      return s.CancelTask(task, now);
    });
  }
  absl::Status Close(Side side) {
    return Do(side, [&](Session& s, absl::Time now) { return s.Close(now); });
  }

  // ---- time ----

  // Step: see the file comment. False when idle for good.
  bool Step() {
    RunHooks();
    ++steps_;
    const absl::Time now = clock_.Now();
    if (dial_at_ <= now) {
      dial_at_ = absl::InfiniteFuture();
      Dial(/*forced=*/false);
      RunHooks();
      return true;
    }
    if (link_ != nullptr && link_->up_) {
      if (LinkHousekeeping(*link_) || Deliver(*link_)) {
        RunHooks();
        return true;
      }
    }
    const absl::Time next = NextWakeup();
    if (next == absl::InfiniteFuture()) return false;
    clock_.AdvanceTo(next);
    FireTimers();
    RunHooks();
    return true;
  }
  // RunUntil
  // Steps until pred() (true), or max_time of simulated time passed, the
  // pair went idle, or max_steps steps ran (false).
  bool RunUntil(const std::function<bool()>& pred,
                absl::Duration max_time = absl::Seconds(60),
                size_t max_steps = 10'000'000) {
    const absl::Time end = clock_.Now() + max_time;
    for (size_t i = 0; i < max_steps; ++i) {
      if (pred()) return true;
      if (NextWakeupIfIdleLink() > end && !CanMoveNow()) {
        clock_.AdvanceTo(end);
        return pred();
      }
      if (!Step()) return pred();
    }
    return pred();
  }
  // RunFor: steps until `d` of simulated time has passed (or idle).
  void RunFor(absl::Duration d) {
    const absl::Time end = clock_.Now() + d;
    RunUntil([] { return false; }, d);
    clock_.AdvanceTo(end);
  }
  // RunUntilIdle: steps until no byte can move now, without advancing the
  // clock (timers due now still run).
  void RunUntilIdleNow(size_t max_steps = 10'000'000) {
    for (size_t i = 0; i < max_steps && CanMoveNow(); ++i) Step();
  }

  // ---- logs ----

  const std::deque<EventRecord>& events(Side side) const {
    return log_[static_cast<size_t>(side)];
  }
  void ClearEvents() {
    log_[0].clear();
    log_[1].clear();
  }
  template <typename T>
  std::vector<const EventRecord*> Find(Side side) const {
    std::vector<const EventRecord*> out;
    for (const EventRecord& r : events(side)) {
      if (r.Is<T>()) out.push_back(&r);
    }
    return out;
  }
  template <typename T>
  std::vector<const EventRecord*> FindTask(Side side, TaskId task) const {
    std::vector<const EventRecord*> out;
    for (const EventRecord& r : events(side)) {
      if (r.Is<T>() && TaskOf(r.event) == task) out.push_back(&r);
    }
    return out;
  }
  template <typename T>
  size_t Count(Side side) const {
    size_t n = 0;
    for (const EventRecord& r : events(side)) n += r.Is<T>() ? 1u : 0u;
    return n;
  }
  // The last record of type T, or nullptr.
  template <typename T>
  const EventRecord* Last(Side side) const {
    const auto& log = events(side);
    for (auto it = log.rbegin(); it != log.rend(); ++it) {
      if (it->Is<T>()) return &*it;
    }
    return nullptr;
  }
  template <typename T>
  const T* LastEvent(Side side) const {
    const EventRecord* r = Last<T>(side);
    return r == nullptr ? nullptr : &r->As<T>();
  }
  // Both logs merged in order, one Describe() line per event.
  std::string Dump() const {
    std::vector<const EventRecord*> all;
    for (const auto& log : log_) {
      for (const EventRecord& r : log) all.push_back(&r);
    }
    std::sort(all.begin(), all.end(),
              [](const EventRecord* a, const EventRecord* b) {
                return a->seq < b->seq;
              });
    std::string out;
    for (const EventRecord* r : all) absl::StrAppend(&out, r->Describe(), "\n");
    for (const std::string& p : problems_) {
      absl::StrAppend(&out, "PROBLEM: ", p, "\n");
    }
    return out;
  }

 private:
  [[noreturn]] static void Die(const std::string& why) {
    std::fprintf(stderr, "SessionPair: %s\n", why.c_str());
    std::abort();
  }
  void Trace(const std::string& line) const {
    if (options_.trace) {
      std::fprintf(stderr, "[pair t=+%s] %s\n",
                   absl::FormatDuration(clock_.Now() - options_.start).c_str(),
                   line.c_str());
    }
  }
  void Problem(std::string p) {
    Trace("PROBLEM " + p);
    problems_.push_back(std::move(p));
  }

  // The side `s` plays on the current link, if it is an endpoint of it.
  Link* LinkOf(const Session& s, Side side) {
    if (link_ == nullptr) return nullptr;
    return link_->ends_[static_cast<size_t>(side)] == &s ? link_ : nullptr;
  }

  // Drains `s` (transmit, then events), reacts to server events, then
  // honours ConnectionClosing().
  void Pump(Session& s, Side side) {
    Link* l = LinkOf(s, side);
    const Dir out = Toward(Other(side));
    for (;;) {
      absl::Span<const std::byte> bytes = s.PollTransmit();
      if (bytes.empty()) break;
      if (l != nullptr && l->up_) {
        l->Write(out, bytes);
      } else {
        stale_bytes_ += bytes.size();
      }
    }
    std::vector<size_t> fresh_events;
    while (std::optional<Event> e = s.PollEvent()) {
      fresh_events.push_back(Log(side, s, std::move(*e)));
    }
    for (size_t index : fresh_events) React(side, s, index);
    l = LinkOf(s, side);
    if (l != nullptr && l->up_ && s.ConnectionClosing()) CloseFrom(*l, side);
  }

  size_t Log(Side side, const Session& s, Event e) {
    EventRecord r;
    r.seq = ++event_seq_;
    r.at = clock_.Now();
    r.side = side;
    r.session = &s;
    r.link = link_ != nullptr ? link_->id_ : 0;
    if (auto* t = std::get_if<TaskReceived>(&e)) {
      r.payload = ToString(t->payload());
      r.frame_bytes.assign(t->frame.bytes().begin(), t->frame.bytes().end());
      r.frame_sequence = t->frame.sequence();
      r.deadline_us = t->frame.deadline_us();
      r.trace_parent = t->frame.trace_parent();
      r.trace_state = std::string(t->frame.trace_state());
      r.method = std::string(t->frame.method());
      for (const MetadataEntry& m : t->frame.metadata()) {
        r.metadata.emplace_back(std::string(m.key), std::string(m.value));
      }
      t->frame = FrameView();
    } else if (auto* p = std::get_if<ResponseReceived>(&e)) {
      r.payload = ToString(p->payload);
      p->payload = {};
    }
    r.event = std::move(e);
    auto& log = log_[static_cast<size_t>(side)];
    log.push_back(std::move(r));
    Trace(log.back().Describe());
    if (on_event) pending_hooks_.push_back(log.back());
    return log.size() - 1;
  }

  void React(Side side, Session& s, size_t index) {
    // Copy what is needed: reactions may log more events (deque stays
    // valid on push_back, but be explicit).
    const Event e = log_[static_cast<size_t>(side)][index].event;
    if (side == Side::kInitiator) {
      if (std::holds_alternative<ReconnectDue>(e) && options_.auto_dial) {
        dial_at_ = std::min(dial_at_, clock_.Now() + options_.dial_delay);
      }
      return;
    }
    static_cast<void>(s);
  }

  Endpoint& endpoint() {
    if (endpoint_ == nullptr) {
      EndpointConfig config;
      config.session = options_.acceptor;
      auto e = Endpoint::Create(std::move(config));
      if (!e.ok()) Die("Endpoint::Create: " + StatusText(e.status()));
      endpoint_ = std::move(*e);
    }
    return *endpoint_;
  }

  // After an input to acceptor session `s`: if it is handshaking, asks the
  // Endpoint what its connection became (`outcome`, or Route) and acts on
  // it. `s` was pumped already.
  void Settle(Session& s, std::optional<ConnectionOutcome> outcome = {}) {
    auto it = handshaking_.find(&s);
    if (it == handshaking_.end()) return;
    const ConnectionHandle c = it->second;
    if (!outcome) outcome = endpoint().Route(c, clock_.Now());
    if (std::holds_alternative<HandshakeRunning>(*outcome)) return;
    handshaking_.erase(it);
    if (const auto* started = std::get_if<SessionStarted>(&*outcome)) {
      registered_latest_ = started->session.get();
    } else if (const auto* resumed = std::get_if<SessionResumed>(&*outcome)) {
      Trace("server: resume routed to its session");
      last_adopt_ = absl::OkStatus();
      Session& existing = *resumed->session;
      for (auto& l : links_) {
        if (l->ends_[1] == &s) l->ends_[1] = &existing;
      }
      Pump(existing, Side::kAcceptor);
    } else if (const auto* rejected =
                   std::get_if<ConnectionRejected>(&*outcome)) {
      Trace("server: connection rejected: " + StatusText(rejected->status));
      last_adopt_ = rejected->status;
    }
  }

  void Dial(bool forced) {
    ++dials_;
    const absl::Time now = clock_.Now();
    if (!forced && (dials_fail_ || fail_next_dials_ > 0)) {
      if (fail_next_dials_ > 0) --fail_next_dials_;
      ++dials_failed_;
      Trace("dial failed (injected)");
      initiator_->TransportLost(
          MakeError(ErrorCode::kConnectionLost, "dial failed (test harness)"),
          now);
      Pump(*initiator_, Side::kInitiator);
      return;
    }
    if (link_ != nullptr && link_->up_) {
      Kill(*link_, true, true, "replaced by a new dial");
    }
    auto accepted = endpoint().Accept(now);
    if (!accepted.ok())
      Die("Endpoint::Accept: " + StatusText(accepted.status()));
    server_.push_back(accepted->session);
    Session* acc = server_.back().get();
    handshaking_[acc] = accepted->connection;
    live_server_.push_back(acc);
    const size_t id = links_.size() + 1;
    links_.push_back(std::unique_ptr<Link>(
        new Link(id, now, options_.split,
                 options_.link_seed * 0x9E3779B97F4A7C15ull + id)));
    link_ = links_.back().get();
    link_->ends_ = {initiator_.get(), acc};
    Trace(absl::StrCat("dial: link ", id));
    last_connect_[0] = initiator_->TransportConnected(now);
    Pump(*initiator_, Side::kInitiator);
    last_connect_[1] = absl::OkStatus();  // Endpoint::Accept connected it
    Pump(*acc, Side::kAcceptor);
  }

  void Kill(Link& l, bool notify_initiator, bool notify_acceptor,
            absl::string_view why) {
    l.up_ = false;
    ++cuts_;
    l.DropPending(Dir::kToAcceptor);
    l.DropPending(Dir::kToInitiator);
    Trace(absl::StrCat("link ", l.id_, " down: ", why));
    const absl::Status lost = MakeError(ErrorCode::kConnectionLost,
                                        absl::StrCat("link ", l.id_, " ", why));
    const std::array<bool, 2> notify = {notify_initiator, notify_acceptor};
    for (size_t i = 0; i < 2; ++i) {
      Session* s = l.ends_[i];
      if (s == nullptr || !notify[i] || s->ConnectionClosing()) continue;
      // A side that closed its end was already told nothing; one that is
      // closing is done with the connection (see file comment).
      s->TransportLost(lost, clock_.Now());
      Pump(*s, static_cast<Side>(i));
      if (i == 1) Settle(*s);
    }
  }

  // The side `side` said ConnectionClosing(): it writes and reads no more.
  void CloseFrom(Link& l, Side side) {
    Link::Pipe& out = l.pipe(Toward(Other(side)));
    Link::Pipe& in = l.pipe(Toward(side));
    if (out.writer_closed) return;
    Trace(absl::StrCat(SideName(side), " closes link ", l.id_));
    out.writer_closed = true;
    in.reader_closed = true;
    l.DropPending(Toward(side));
  }

  // Due cuts and finished closes. True if something happened.
  bool LinkHousekeeping(Link& l) {
    for (Dir d : {Dir::kToAcceptor, Dir::kToInitiator}) {
      const Link::Pipe& p = l.pipe(d);
      if (p.cut_after && p.delivered >= *p.cut_after) {
        Kill(l, true, true,
             absl::StrCat("cut after byte ", *p.cut_after, " toward ",
                          SideName(Receiver(d))));
        return true;
      }
    }
    // A closing side's bytes are all delivered: the other side sees EOF.
    for (Dir d : {Dir::kToAcceptor, Dir::kToInitiator}) {
      const Link::Pipe& p = l.pipe(d);
      const Link::Pipe& back =
          l.pipe(d == Dir::kToAcceptor ? Dir::kToInitiator : Dir::kToAcceptor);
      if (p.writer_closed && p.head == p.buf.size()) {
        const Side peer = Receiver(d);
        const bool peer_closing = back.writer_closed;
        l.up_ = false;
        Trace(absl::StrCat("link ", l.id_, " closed by ", SideName(Sender(d))));
        Session* s = l.ends_[static_cast<size_t>(peer)];
        if (!peer_closing && s != nullptr && !s->ConnectionClosing()) {
          s->TransportLost(
              MakeError(ErrorCode::kConnectionLost,
                        absl::StrCat("link ", l.id_, " closed by the peer")),
              clock_.Now());
          Pump(*s, peer);
          if (peer == Side::kAcceptor) Settle(*s);
        }
        return true;
      }
    }
    return false;
  }

  bool Deliverable(const Link& l, Dir d) const {
    const Link::Pipe& p = l.pipe(d);
    return p.head < p.buf.size() && !p.reader_closed &&
           clock_.Now() >= p.stalled_until;
  }

  // Delivers one chunk (directions take turns). True if it did.
  bool Deliver(Link& l) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const Dir d = next_dir_;
      next_dir_ = d == Dir::kToAcceptor ? Dir::kToInitiator : Dir::kToAcceptor;
      if (!Deliverable(l, d)) continue;
      Link::Pipe& p = l.pipe(d);
      size_t n = p.buf.size() - p.head;
      if (l.split_.fixed > 0) {
        n = std::min(n, l.split_.fixed);
      } else if (l.split_.random_max > 0) {
        n = std::min<size_t>(
            n, static_cast<size_t>(l.rng_.Between(1, l.split_.random_max)));
      }
      if (p.cut_after) {
        n = std::min<size_t>(n,
                             static_cast<size_t>(*p.cut_after - p.delivered));
      }
      const size_t side_index = static_cast<size_t>(Receiver(d));
      std::vector<std::byte>& rx = rx_[side_index];
      rx.assign(p.buf.begin() + static_cast<std::ptrdiff_t>(p.head),
                p.buf.begin() + static_cast<std::ptrdiff_t>(p.head + n));
      for (const auto& [offset, mask] : p.corrupt) {
        if (offset >= p.delivered && offset < p.delivered + n) {
          rx[static_cast<size_t>(offset - p.delivered)] ^= mask;
        }
      }
      p.head += n;
      p.delivered += n;
      if (p.head == p.buf.size()) {
        p.buf.clear();
        p.head = 0;
      } else if (p.head > 65536 && p.head * 2 > p.buf.size()) {
        p.buf.erase(p.buf.begin(),
                    p.buf.begin() + static_cast<std::ptrdiff_t>(p.head));
        p.head = 0;
      }
      Session* s = l.ends_[side_index];
      const Side side = Receiver(d);
      std::optional<ConnectionOutcome> outcome;
      absl::Status st;
      if (auto h = handshaking_.find(s); h != handshaking_.end()) {
        outcome = endpoint().Receive(h->second, rx, clock_.Now());
        if (const auto* r = std::get_if<ConnectionRejected>(&*outcome)) {
          st = r->status;
        }
      } else {
        st = s->Receive(rx, clock_.Now());
      }
      last_receive_[side_index] = st;
      if (!st.ok() && GetErrorCode(st) == ErrorCode::kWrongState &&
          s->state() != SessionState::kFailed) {
        Problem(
            absl::StrCat(SideName(side), " Receive refused: ", StatusText(st)));
      }
      if (options_.trace) {
        Trace(absl::StrCat("deliver ", n, " bytes to ", SideName(side),
                           " (link ", l.id_, ", offset ", p.delivered - n,
                           ") -> ", StatusText(st)));
      }
      Pump(*s, side);
      if (outcome) Settle(*s, std::move(outcome));
      return true;
    }
    return false;
  }

  // True if a byte can move or a dial is due without advancing the clock.
  bool CanMoveNow() const {
    if (dial_at_ <= clock_.Now()) return true;
    if (link_ == nullptr || !link_->up_) return false;
    for (Dir d : {Dir::kToAcceptor, Dir::kToInitiator}) {
      const Link::Pipe& p = link_->pipe(d);
      if (Deliverable(*link_, d)) return true;
      if (p.cut_after && p.delivered >= *p.cut_after) return true;
      if (p.writer_closed && p.head == p.buf.size()) return true;
    }
    return false;
  }
  absl::Time NextWakeupIfIdleLink() const {
    return CanMoveNow() ? clock_.Now() : NextWakeup();
  }

  absl::Time NextWakeup() const {
    absl::Time next = std::min(dial_at_, initiator_->NextDeadline());
    for (const Session* s : live_server_) {
      next = std::min(next, s->NextDeadline());
    }
    if (link_ != nullptr && link_->up_) {
      for (Dir d : {Dir::kToAcceptor, Dir::kToInitiator}) {
        const Link::Pipe& p = link_->pipe(d);
        if (p.head < p.buf.size() && !p.reader_closed) {
          next = std::min(next, std::max(p.stalled_until, clock_.Now()));
        }
      }
    }
    return next;
  }

  void FireTimers() {
    const absl::Time now = clock_.Now();
    std::vector<std::pair<Session*, Side>> due;
    if (initiator_->NextDeadline() <= now) {
      due.emplace_back(initiator_.get(), Side::kInitiator);
    }
    for (Session* s : live_server_) {
      if (s->NextDeadline() <= now) due.emplace_back(s, Side::kAcceptor);
    }
    for (auto [s, side] : due) {
      s->HandleTimeout(now);
      Pump(*s, side);
      if (side == Side::kAcceptor) Settle(*s);
      if (s->NextDeadline() <= now) {
        // A timer that does not move would spin the simulation forever.
        if (++stuck_ == 3) {
          Problem(absl::StrCat(SideName(side),
                               " NextDeadline() stays at or before now after "
                               "HandleTimeout(now), state ",
                               SessionStateName(s->state())));
        }
        if (stuck_ >= 3) clock_.Advance(absl::Microseconds(1));
      } else {
        stuck_ = 0;
      }
    }
    // Forget ended server sessions (their pointers stay valid).
    live_server_.erase(
        std::remove_if(live_server_.begin(), live_server_.end(),
                       [](const Session* s) {
                         return (s->state() == SessionState::kClosed ||
                                 s->state() == SessionState::kFailed) &&
                                s->NextDeadline() == absl::InfiniteFuture();
                       }),
        live_server_.end());
  }

  void RunHooks() {
    if (!on_event || in_hooks_) return;
    in_hooks_ = true;
    while (!pending_hooks_.empty()) {
      const EventRecord r = std::move(pending_hooks_.front());
      pending_hooks_.pop_front();
      on_event(*this, r);
    }
    in_hooks_ = false;
  }

  PairOptions options_;
  FakeClock clock_;
  std::unique_ptr<Session> initiator_;
  std::unique_ptr<Endpoint> endpoint_;
  std::vector<std::shared_ptr<Session>> server_;
  std::vector<Session*> live_server_;
  // Server sessions whose handshake runs, and their Endpoint handles.
  absl::flat_hash_map<const Session*, ConnectionHandle> handshaking_;
  Session* registered_latest_ = nullptr;
  std::vector<std::unique_ptr<Link>> links_;
  Link* link_ = nullptr;
  std::array<std::vector<std::byte>, 2> rx_;  // kept until the next Receive
  Dir next_dir_ = Dir::kToAcceptor;
  absl::Time dial_at_ = absl::InfiniteFuture();
  size_t fail_next_dials_ = 0;
  bool dials_fail_ = false;
  size_t dials_ = 0;
  size_t dials_failed_ = 0;
  size_t cuts_ = 0;
  uint64_t stale_bytes_ = 0;
  uint64_t steps_ = 0;
  int stuck_ = 0;
  uint64_t event_seq_ = 0;
  std::array<std::deque<EventRecord>, 2> log_;
  std::deque<EventRecord> pending_hooks_;
  bool in_hooks_ = false;
  std::array<absl::Status, 2> last_receive_;
  std::array<absl::Status, 2> last_connect_;
  absl::Status last_adopt_;
  std::vector<std::string> problems_;
};

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTS_SUPPORT_SESSION_PAIR_HPP_
