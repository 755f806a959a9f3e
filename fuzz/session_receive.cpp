// File: fuzz/session_receive.cpp
// libFuzzer target for an ESTABLISHED Session (SPEC.md §10, §13-§16): a
// real handshake between two sessions is driven in memory first (with some
// task traffic, so tasks are open both ways and frames are unacknowledged),
// then the input plays the peer of one or both of them. In framed mode the
// input is a list of records that the encoder turns into correct frames
// (valid CRC, checksum, canonical varints), with stream ids and sequences
// chosen relative to the target's state (the next expected sequence, an
// open task, the next peer task id, ...) and control payloads built from
// fields, so the input reaches the session logic rather than the decoder.
// Records can also be raw bytes, API calls on the target, or time passing.
// In raw mode the rest of the input is fed as is.
//
// Input layout (fuzz/README.md; fuzz/session_seeds.cpp writes seeds):
//   byte 0     bits 0-1  target: 0 acceptor, 1 initiator, 2-3 either,
//                        per record (bit 7 of the record's kind byte) or
//                        per chunk in raw mode
//              bit 2     raw mode
//              bits 3-4  roles (initiator/acceptor): 0 orchestrator/agent,
//                        1 agent/orchestrator, 2-3 peer/peer
//              bit 5     reactive: the target answers each task it receives
//                        (partial, then final or FailTask) and cancels some
//                        of its own
//              bit 6     payload checksums off (both configs)
//              bit 7     no traffic before the input (a bare handshake)
//   byte 1     split: 0 = whole record, 1..127 = chunks of that size,
//              128..255 = pseudo-random chunk sizes 1..(b & 127) + 1
//   rest       raw mode: the bytes. Framed mode: records, read front to
//              back (zeros past the end):
//     kind     bits 0-2: 0..5 a frame of that type, 6 raw bytes (length
//              byte, then the bytes), 7 an API call (next byte selects);
//              bit 3 CHECKSUM; bit 4 FINAL; bit 5 a DEADLINE extension
//              (next 2 bytes, milliseconds); bit 6 a METADATA extension
//              and a TRACEPARENT; bit 7 the other session (target 2-3)
//     stream   bits 5-7: 0 zero; 1 an open task of the target's; 2 an open
//              task the target received; 3 the next task id the peer may
//              use; 4 the last one it used; 5 a task of the target's that
//              ended; 6 a 2-byte value; 7 an 8-byte value (62 bits).
//              bits 0-4 pick among open tasks.
//     seq      bits 6-7: 0 what the target expects (0 for a connection
//              frame, last_received() + 1 otherwise); 1 zero;
//              2 last_received() (a duplicate); 3 last_received() + (bits
//              0-5) - 31
//     payload  bits 6-7: 0 raw, length bits 0-5; 1 raw, length from the
//              next 2 bytes (up to 65535, filled with a pattern past the
//              input); 2 built from fields (SYNC ack/ping/pong/drain/bye,
//              ERROR code/detail/retryable/message, CANCEL reason, INIT of
//              a phase), 3 empty
//     time     0 none; 1..200 milliseconds; 201..255 (t - 200) seconds;
//              timers of both sessions run in deadline order
//   An API record's selector (mod 12): 0 SubmitTask (payload length byte,
//   deadline bit), 1 SendResponse partial, 2 SendResponse final, 3
//   FailTask, 4 CancelTask, 5 Close, 6 Abort, 7 TransportLost, 8
//   TransportConnected, 9 HandleTimeout, 10 resume the pair (both sides
//   lose the connection, the initiator redials at its ReconnectDue, a fresh
//   acceptor session answers its HELLO and the pair's acceptor adopts the
//   connection, then the two talk until quiet: WELCOME, replays, acks), 11
//   the same with the pair's acceptor half-open (not told of the loss);
//   then a byte picking the task. The record's kind bit 7 picks the side
//   for 0-9 only.
//
// Invariants: fuzz/session_fuzz.hpp (CheckedSession, OutputChecker): statuses
// carry ErrorCodes and stay sticky, open_tasks() and replay_frames_in_use()
// stay within their bounds, one terminal event per task, every byte a
// session writes decodes, timers move forward, events are always drained.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fuzz_check.hpp"
#include "session_fuzz.hpp"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"

namespace {

using symwire::MessageType;
using symwire::SessionState;
using symwire::TaskId;
using symwire::fuzz::ByteReader;
using symwire::fuzz::Bytes;
using symwire::fuzz::CheckedSession;

using symwire::fuzz::Chunker;

constexpr uint64_t kVarintMax = (uint64_t{1} << 62) - 1;

class Run {
 public:
  Run(uint8_t mode, uint8_t split) : mode_(mode), chunker_(split) {
    spec_.roles = symwire::fuzz::RolesFor(
        ((mode >> 3) & 3u) == 3 ? 2u : (mode >> 3) & 3u);
    spec_.checksums = (mode & 0x40) == 0;
    spec_.traffic = (mode & 0x80) == 0;
    pair_ = symwire::fuzz::BuildPair(spec_);
    now_ = pair_.now;
  }

  void RawMode(Bytes rest) {
    bool other = false;
    while (!rest.empty()) {
      const size_t n = chunker_.Next(rest.size());
      CheckedSession& t = Target(other);
      t.Receive(rest.first(n), now_);
      rest.remove_prefix(n);
      if ((mode_ & 3u) >= 2) other = !other;
    }
  }

  void FramedMode(ByteReader& in) {
    for (int records = 0; !in.empty() && records < 4096; ++records) {
      const uint8_t kind = in.U8();
      CheckedSession& t = Target((kind & 0x80) != 0);
      const unsigned type = kind & 7u;
      if (type == 6) {
        Deliver(t, in.ShortBytes());
      } else if (type == 7) {
        Api(t, in, records);
      } else {
        std::optional<std::vector<std::byte>> frame = BuildFrame(t, kind, in);
        if (frame) Deliver(t, *frame);
        if (symwire::fuzz::Verbose()) {
          std::fprintf(
              stderr, "  record %d: %s to the %s: %s -> %s\n", records,
              std::string(MessageTypeName(static_cast<MessageType>(type)))
                  .c_str(),
              t.initiator() ? "initiator" : "acceptor",
              frame ? "sent" : "not encodable",
              t.last_status().ToString().c_str());
        }
      }
      Time(in.U8());
      React();
    }
  }

  void Finish() {
    CheckedSession* both[] = {pair_.initiator.get(), pair_.acceptor.get()};
    symwire::fuzz::RunClock(both, now_, now_ + absl::Seconds(20), 256);
    if (symwire::fuzz::Verbose()) {
      for (const CheckedSession* e : both) {
        const symwire::Session& x = e->s();
        std::fprintf(
            stderr,
            "  %-9s %s open=%zu replay=%zu last_received=%llu "
            "last_sent=%llu frames_in=%llu dup=%llu late=%llu status=%s\n",
            e->initiator() ? "initiator" : "acceptor",
            std::string(symwire::SessionStateName(x.state())).c_str(),
            x.open_tasks(), x.replay_frames_in_use(),
            static_cast<unsigned long long>(x.last_received()),
            static_cast<unsigned long long>(x.last_sent()),
            static_cast<unsigned long long>(x.counters().frames_in),
            static_cast<unsigned long long>(x.counters().duplicates_discarded),
            static_cast<unsigned long long>(x.counters().late_frames_discarded),
            x.status().ToString().c_str());
      }
    }
  }

 private:
  CheckedSession& Target(bool other) {
    const unsigned sel = mode_ & 3u;
    bool initiator = sel == 1;
    if (sel >= 2 && other) initiator = !initiator;
    return initiator ? *pair_.initiator : *pair_.acceptor;
  }

  void Deliver(CheckedSession& t, Bytes bytes) {
    if (!t.Connected()) {
      // Must be refused (no connection, or the sticky failure), not crash.
      if (!bytes.empty()) t.Receive(bytes, now_);
      return;
    }
    while (!bytes.empty() && t.Connected()) {
      const size_t n = chunker_.Next(bytes.size());
      t.Receive(bytes.first(n), now_);
      bytes.remove_prefix(n);
    }
  }

  void Time(uint8_t t) {
    if (t == 0) return;
    const absl::Duration d =
        t <= 200 ? absl::Milliseconds(t) : absl::Seconds(t - 200);
    CheckedSession* both[] = {pair_.initiator.get(), pair_.acceptor.get()};
    symwire::fuzz::RunClock(both, now_, now_ + d);
  }

  static TaskId Pick(const std::vector<TaskId>& ids, unsigned k,
                     TaskId fallback) {
    return ids.empty() ? fallback : ids[k % ids.size()];
  }

  // The id of the next task the target's peer may open.
  static TaskId NextPeerId(const CheckedSession& t) {
    const TaskId last = t.last_peer_task();
    if (last != 0) return last + 2;
    return t.initiator() ? 2 : 1;
  }

  TaskId StreamFor(CheckedSession& t, uint8_t sel, ByteReader& in) {
    const unsigned k = sel & 31u;
    switch (sel >> 5) {
      case 0:
        return 0;
      case 1:
        return Pick(t.own_open(), k, t.initiator() ? 1 : 2);
      case 2:
        return Pick(t.peer_open(), k, NextPeerId(t));
      case 3:
        return NextPeerId(t);
      case 4:
        return t.last_peer_task() != 0 ? t.last_peer_task() : 1;
      case 5:
        return t.last_own_task() != 0 ? t.last_own_task()
                                      : (t.initiator() ? 1 : 2);
      case 6:
        return in.U16();
      default:
        return in.U64() & kVarintMax;
    }
  }

  static bool ConnectionFrame(MessageType type, uint64_t stream) {
    return type == MessageType::kAgentInit || type == MessageType::kAgentSync ||
           (type == MessageType::kAgentError && stream == 0);
  }

  uint64_t SequenceFor(const CheckedSession& t, uint8_t sel, MessageType type,
                       uint64_t stream) {
    const uint64_t last = t.s().last_received();
    switch (sel >> 6) {
      case 0:
        return ConnectionFrame(type, stream) ? 0 : last + 1;
      case 1:
        return 0;
      case 2:
        return last;
      default: {
        const uint64_t delta = sel & 63u;
        return delta >= 31 ? last + (delta - 31)
                           : (last >= 31 - delta ? last - (31 - delta) : 0);
      }
    }
  }

  // A control payload built from fields (valid by construction when the
  // fields are).
  std::vector<std::byte> BuiltPayload(const CheckedSession& t, MessageType type,
                                      ByteReader& in) {
    std::vector<std::byte> out;
    switch (type) {
      case MessageType::kAgentSync: {
        const uint8_t f = in.U8();
        symwire::SyncMessage m;
        if ((f & 1) != 0) {
          const uint64_t sent = t.s().last_sent();
          switch ((f >> 5) & 3u) {
            case 0:
              m.ack = sent;
              break;
            case 1:
              m.ack = sent + 1;  // BAD_ACK
              break;
            case 2:
              m.ack = 0;
              break;
            default:
              m.ack = in.U8();
              break;
          }
        }
        if ((f & 2) != 0) m.ping = in.U32();
        if ((f & 4) != 0) {
          m.pong = (f & 0x80) != 0 && t.checker().last_ping()
                       ? *t.checker().last_ping()
                       : in.U32();
        }
        if ((f & 8) != 0) m.drain = (f & 0x80) != 0 ? t.s().last_sent() : 0;
        m.bye = (f & 16) != 0;
        static_cast<void>(symwire::AppendSync(m, out));
        break;
      }
      case MessageType::kAgentError: {
        symwire::ErrorMessage m;
        m.code = static_cast<absl::StatusCode>(1 + in.U8() % 16);
        const uint8_t d = in.U8();
        m.detail = d == 0 ? symwire::ErrorCode::kOk
                          : static_cast<symwire::ErrorCode>(
                                d < 128 ? 100 + d % 28 : d % 20);
        m.retryable = in.Bool();
        const Bytes msg = in.ShortBytes();
        m.message = symwire::fuzz::AsStringView(msg);
        static_cast<void>(symwire::AppendError(m, out));
        break;
      }
      case MessageType::kAgentCancel: {
        symwire::CancelMessage m;
        m.reason = in.Bool() ? absl::StatusCode::kDeadlineExceeded
                             : absl::StatusCode::kCancelled;
        static_cast<void>(symwire::AppendCancel(m, out));
        break;
      }
      case MessageType::kAgentInit: {
        symwire::InitMessage m;
        m.phase = static_cast<symwire::InitPhase>(in.U8() & 3u);
        m.min_version = 1;
        m.max_version = 1;
        m.version = 1;
        m.agent_id = "fuzz-peer";
        m.role = symwire::AgentRole::kPeer;
        m.max_payload_bytes = 65536;
        m.max_header_bytes = 4096;
        m.max_tasks = 8;
        m.replay_bytes = 65536;
        m.replay_frames = 32;
        m.ping_interval_us = 1000000;
        m.min_ping_interval_us = 100000;
        if (m.phase == symwire::InitPhase::kWelcome) {
          m.session_id = t.s().session_id();
          m.resume_token = symwire::ResumeToken{};
          m.last_received = t.s().last_sent();
          m.resume_window_us = 1000000;
        }
        static_cast<void>(symwire::AppendInit(m, out));
        break;
      }
      default: {
        const Bytes b = in.ShortBytes();
        out.assign(b.begin(), b.end());
        break;
      }
    }
    return out;
  }

  std::optional<std::vector<std::byte>> BuildFrame(CheckedSession& t,
                                                   uint8_t kind,
                                                   ByteReader& in) {
    symwire::FrameHeader h;
    h.type = static_cast<MessageType>(kind & 7u);
    h.flags =
        static_cast<uint8_t>(((kind & 0x08) != 0 ? symwire::kFlagChecksum : 0) |
                             ((kind & 0x10) != 0 ? symwire::kFlagFinal : 0));
    h.stream_id = StreamFor(t, in.U8(), in);
    h.sequence = SequenceFor(t, in.U8(), h.type, h.stream_id);
    symwire::FrameExtensions ext;
    std::array<symwire::MetadataEntry, 1> meta = {
        symwire::MetadataEntry{"k", "v"}};
    if ((kind & 0x20) != 0) ext.deadline_us = uint64_t{in.U16()} * 1000;
    if ((kind & 0x40) != 0) {
      symwire::TraceParent tp;
      tp.trace_id[0] = std::byte{1};
      tp.parent_id[0] = std::byte{2};
      ext.trace_parent = tp;
      ext.metadata = meta;
    }
    std::vector<std::byte> payload;
    const uint8_t p = in.U8();
    switch (p >> 6) {
      case 0: {
        const Bytes b = in.Bytes(p & 63u);
        payload.assign(b.begin(), b.end());
        break;
      }
      case 1: {
        const size_t n = in.U16();
        const Bytes b = in.Bytes(std::min<size_t>(n, 256));
        payload.assign(b.begin(), b.end());
        payload.resize(n, std::byte{0x5A});
        break;
      }
      case 2:
        payload = BuiltPayload(t, h.type, in);
        break;
      default:
        break;
    }
    absl::StatusOr<size_t> size = symwire::EncodedSize(h, ext, payload.size());
    if (!size.ok()) return std::nullopt;  // a frame SPEC.md forbids
    std::vector<std::byte> out(*size);
    absl::StatusOr<size_t> n =
        symwire::EncodeFrame(h, ext, payload, absl::MakeSpan(out));
    FUZZ_CHECK_MSG(n.ok() && *n == out.size(), symwire::fuzz::Text(n.status()));
    return out;
  }

  void Api(CheckedSession& t, ByteReader& in, int record) {
    const uint8_t sel = in.U8();
    const uint8_t k = in.U8();
    if (symwire::fuzz::Verbose()) {
      static constexpr const char* kNames[] = {"SubmitTask",
                                               "SendResponse partial",
                                               "SendResponse final",
                                               "FailTask",
                                               "CancelTask",
                                               "Close",
                                               "Abort",
                                               "TransportLost",
                                               "TransportConnected",
                                               "HandleTimeout",
                                               "resume",
                                               "resume (half-open)"};
      std::fprintf(
          stderr, "  record %d: API %s (k=%d)%s\n", record, kNames[sel % 12], k,
          sel % 12 < 10
              ? (t.initiator() ? " on the initiator" : " on the acceptor")
              : "");
    }
    ApiCall(t, sel, k, in);
    const unsigned call = sel % 12u;
    if (symwire::fuzz::Verbose() && call < 10) {
      // Abort, TransportLost and HandleTimeout return nothing.
      const bool returns = call <= 5 || call == 8;
      std::fprintf(
          stderr, "    -> %s%s\n",
          returns ? (t.last_status().ToString() + "; ").c_str() : "",
          std::string(symwire::SessionStateName(t.s().state())).c_str());
    }
  }

  void ApiCall(CheckedSession& t, uint8_t sel, uint8_t k, ByteReader& in) {
    switch (sel % 12) {
      case 0: {
        const Bytes payload = in.ShortBytes();
        symwire::TaskOptions o;
        if ((k & 1) != 0) o.deadline = absl::Milliseconds(k);
        t.Submit(payload, o, now_);
        break;
      }
      case 1:
        t.Respond(Pick(t.peer_open(), k, NextPeerId(t)),
                  symwire::fuzz::AsBytes("partial"), false, now_);
        break;
      case 2:
        t.Respond(Pick(t.peer_open(), k, NextPeerId(t)),
                  symwire::fuzz::AsBytes("final"), true, now_);
        break;
      case 3:
        t.FailTask(Pick(t.peer_open(), k, NextPeerId(t)), now_);
        break;
      case 4:
        t.Cancel(Pick(t.own_open(), k, t.last_own_task() + 2), now_);
        break;
      case 5:
        t.Close(now_);
        break;
      case 6:
        t.Abort(now_);
        break;
      case 7:
        t.TransportLost(now_);
        break;
      case 8:
        t.TransportConnected(now_);
        break;
      case 9:
        if (t.s().NextDeadline() <= now_) t.HandleTimeout(now_);
        break;
      default:
        Resume(sel % 12 == 11);
        break;
    }
  }

  // API selectors 10 and 11: a real resumption of the pair in memory, as a
  // server's Endpoint does it (a fresh acceptor per connection; the
  // hand-over of detail::SessionHandover), so the rest of the input plays
  // against resumed sessions that replayed what the other lacked. Bounded per
  // input.
  void Resume(bool half_open) {
    CheckedSession& i = *pair_.initiator;
    CheckedSession& a = *pair_.acceptor;
    if (++resumes_ > kMaxResumes || Ended(i)) return;
    if (i.s().state() != SessionState::kDisconnected) i.TransportLost(now_);
    if (!half_open && !Ended(a) &&
        a.s().state() != SessionState::kDisconnected) {
      a.TransportLost(now_);
    }
    CheckedSession* both[] = {&i, &a};
    for (int k = 0; k < 16 && !i.reconnect_due(); ++k) {
      const absl::Time next = i.s().NextDeadline();
      if (next == absl::InfiniteFuture()) break;
      symwire::fuzz::RunClock(both, now_, std::max(now_, next), 1);
    }
    if (!i.reconnect_due() || i.s().state() != SessionState::kDisconnected) {
      return;
    }
    fresh_.push_back(std::make_unique<CheckedSession>(
        symwire::fuzz::FuzzConfig(
            symwire::SessionSide::kAcceptor, spec_.roles.acceptor, spec_.auth,
            symwire::fuzz::kFreshSeed + fresh_.size(), spec_.checksums),
        now_));
    CheckedSession& f = *fresh_.back();
    i.set_capture(true);
    f.set_capture(true);
    a.set_capture(true);
    i.TransportConnected(now_);
    f.TransportConnected(now_);
    bool requested = false;
    for (int k = 0; k < 16 && !requested; ++k) {
      const std::vector<std::byte> to_f = i.TakeOutput();
      if (!to_f.empty()) {
        f.Receive(to_f, now_);
        requested = symwire::fuzz::HasEvent<symwire::ResumeRequested>(f);
      }
      const std::vector<std::byte> to_i = f.TakeOutput();
      if (!to_i.empty()) i.Receive(to_i, now_);
      if (to_f.empty() && to_i.empty()) break;
    }
    if (requested && Ended(a)) {
      // The session is gone (expired, failed): refused, as a server
      // refuses a resume of a session it does not know.
      symwire::detail::SessionHandover::RejectUnknown(f.s(), now_);
      f.Drain(now_);
      const std::vector<std::byte> rest = f.TakeOutput();
      if (!rest.empty() && i.Connected()) i.Receive(rest, now_);
    } else if (requested) {
      static_cast<void>(
          symwire::detail::SessionHandover::Adopt(a.s(), f.s(), false, now_));
      // Whatever `f` still had goes out first, on the same stream.
      f.Drain(now_);
      const std::vector<std::byte> rest = f.TakeOutput();
      if (f.s().state() == SessionState::kClosed) a.TakeConnectionFrom(f);
      a.Drain(now_);
      if (!rest.empty() && i.Connected()) i.Receive(rest, now_);
      symwire::fuzz::Exchange(i, a, now_);
    }
    for (CheckedSession* e : {&i, &a, &f}) {
      e->TakeOutput();
      e->set_capture(false);
    }
    if (symwire::fuzz::Verbose()) {
      std::fprintf(
          stderr, "  resume%s: requested=%d initiator %s, acceptor %s\n",
          half_open ? " (half-open)" : "", requested ? 1 : 0,
          std::string(symwire::SessionStateName(i.s().state())).c_str(),
          std::string(symwire::SessionStateName(a.s().state())).c_str());
    }
  }

  static bool Ended(const CheckedSession& e) {
    return e.s().state() == SessionState::kFailed ||
           e.s().state() == SessionState::kClosed;
  }

  // Reactive mode: answer received tasks, cancel some own ones.
  void React() {
    if ((mode_ & 0x20) == 0) return;
    for (CheckedSession* e : {pair_.initiator.get(), pair_.acceptor.get()}) {
      const std::vector<TaskId> received = e->peer_open();
      for (TaskId id : received) {
        const uint32_t r = chunker_.Rand();
        if ((r & 3u) == 0) continue;  // still working on it
        e->Respond(id, symwire::fuzz::AsBytes("partial"), false, now_);
        if ((r & 4u) != 0) {
          e->FailTask(id, now_);
        } else {
          e->Respond(id, symwire::fuzz::AsBytes("done"), true, now_);
        }
      }
      const std::vector<TaskId> own = e->own_open();
      for (TaskId id : own) {
        if ((chunker_.Rand() & 15u) == 0) e->Cancel(id, now_);
      }
    }
  }

  static constexpr int kMaxResumes = 8;

  const uint8_t mode_;
  Chunker chunker_;
  symwire::fuzz::PairSpec spec_;
  symwire::fuzz::Pair pair_;
  // Fresh acceptor sessions of Resume (kept: an adopted one is closed, a
  // refused one failed; their events were checked).
  std::vector<std::unique_ptr<CheckedSession>> fresh_;
  int resumes_ = 0;
  absl::Time now_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  if (symwire::fuzz::Verbose()) {
    std::fprintf(stderr,
                 "session_receive: target=%d raw=%d roles=%d reactive=%d "
                 "checksums=%d traffic=%d split=%d, %zu bytes\n",
                 mode & 3, (mode >> 2) & 1, (mode >> 3) & 3, (mode >> 5) & 1,
                 ((mode >> 6) & 1) == 0, (mode >> 7) == 0, data[1], size - 2);
  }
  Run run(mode, data[1]);
  const Bytes rest = symwire::fuzz::AsBytes(data, size).subspan(2);
  if ((mode & 0x04) != 0) {
    run.RawMode(rest);
  } else {
    ByteReader in(rest);
    run.FramedMode(in);
  }
  run.Finish();
  return 0;
}
