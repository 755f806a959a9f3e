// File: symwire/session/impl/session.ipp
// Out-of-line bodies for session/session.hpp: the session state machine of
// SPEC.md §10-§19. Section references in comments are to SPEC.md.
#ifndef SYMWIRE_SESSION_IMPL_SESSION_IPP_
#define SYMWIRE_SESSION_IMPL_SESSION_IPP_

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symwire/session/session.hpp"
#include "symwire/wire/encoder.hpp"

namespace symwire {

namespace detail {

inline absl::string_view TypeName(MessageType type) {
  return MessageTypeName(type);
}

inline std::string HexId(absl::Span<const std::byte> id) {
  std::string out;
  for (std::byte b : id) {
    absl::StrAppendFormat(&out, "%02x", static_cast<unsigned>(b));
  }
  return out;
}

inline uint64_t DurationMicros(absl::Duration d) {
  const int64_t us = absl::ToInt64Microseconds(d);
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

// §16.2: the one answer to a resume the acceptor cannot serve, whether the
// session is unknown, has ended, or the proof does not match.
inline absl::Status ResumeUnavailable(const SessionId& id) {
  return MakeError(ErrorCode::kSessionExpired,
                   absl::StrFormat("session %s is unknown or has ended, or "
                                   "the resume proof does not match",
                                   HexId(id)));
}

inline absl::Duration MicrosDuration(uint64_t us) {
  // Wire values are at most 2^62 - 1, which fits int64.
  return absl::Microseconds(static_cast<int64_t>(us));
}

}  // namespace detail

SYMWIRE_DECL absl::string_view SessionStateName(SessionState state) noexcept {
  switch (state) {
    case SessionState::kIdle:
      return "IDLE";
    case SessionState::kHandshaking:
      return "HANDSHAKING";
    case SessionState::kEstablished:
      return "ESTABLISHED";
    case SessionState::kDisconnected:
      return "DISCONNECTED";
    case SessionState::kClosed:
      return "CLOSED";
    case SessionState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

// ---------------------------------------------------------------------------
// Construction

SYMWIRE_DECL absl::StatusOr<std::unique_ptr<Session>> Session::Create(
    SessionConfig config, absl::Time now) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  if (!config.authenticator) config.authenticator = NoAuthenticator();
  return std::unique_ptr<Session>(new Session(std::move(config), now));
}

SYMWIRE_DECL Session::Session(SessionConfig config, absl::Time now)
    : config_(std::move(config)), epoch_(now) {
  next_task_id_ = config_.side == SessionSide::kInitiator ? 1 : 2;
}

SYMWIRE_DECL Session::~Session() = default;

// ---------------------------------------------------------------------------
// Small helpers

SYMWIRE_DECL bool Session::IsOwnTaskId(TaskId id) const {
  // §13.1: the initiator's ids are odd, the acceptor's even.
  const bool odd = (id & 1) != 0;
  return id != 0 && (config_.side == SessionSide::kInitiator) == odd;
}

SYMWIRE_DECL uint64_t Session::ClockMicros(absl::Time now) const {
  return detail::DurationMicros(now - epoch_);
}

SYMWIRE_DECL absl::Duration Session::EffectivePingInterval() const {
  // §14.1: never faster than the peer accepts.
  return std::max(config_.ping_interval, peer_.min_ping_interval);
}

SYMWIRE_DECL uint64_t Session::replay_bytes_in_use() const {
  return replay_.empty() ? 0 : store_.end() - replay_.front().pos;
}

SYMWIRE_DECL TaskState Session::task_state(TaskId task) const {
  auto it = tasks_.find(task);
  return it == tasks_.end() ? TaskState::kNone : it->second.state;
}

SYMWIRE_DECL void Session::CountError(const absl::Status& status) {
  const auto code = static_cast<size_t>(GetErrorCode(status));
  if (code < counters_.errors_by_code.size()) {
    ++counters_.errors_by_code[code];
  }
}

SYMWIRE_DECL absl::Status Session::LocalError(ErrorCode code,
                                              absl::string_view message) {
  absl::Status status = MakeError(code, message);
  CountError(status);
  return status;
}

SYMWIRE_DECL absl::Status Session::EndedError() const {
  if (state_ == SessionState::kFailed) {
    return MakeError(
        ErrorCode::kSessionClosed,
        absl::StrFormat("session failed: %s", failure_.ToString()));
  }
  return MakeError(ErrorCode::kSessionClosed, "session is closed");
}

// ---------------------------------------------------------------------------
// Input bracketing and transmission

SYMWIRE_DECL void Session::BeginInput() {
  Connection& c = conn_;
  if (c.control_taken == 0) return;
  if (c.sync_at_tail && c.sync_begin < c.control_taken) {
    // The coalesced SYNC went out; start a new one.
    c.sync = PendingSync{};
    c.sync_at_tail = false;
  }
  c.control.erase(
      c.control.begin(),
      c.control.begin() + static_cast<std::ptrdiff_t>(c.control_taken));
  if (c.sync_at_tail) c.sync_begin -= c.control_taken;
  c.control_taken = 0;
}

SYMWIRE_DECL void Session::ObserveNow(absl::Time now) {
  // STYLE.md §1 "One clock": the driver reads one monotonic clock, so a
  // `now` earlier than the last input's is a caller bug, not wire input.
  SYMWIRE_REQUIRE(now >= last_now_ &&
                  "Session input: now is earlier than the previous input's");
  last_now_ = now;
}

SYMWIRE_DECL void Session::EndInput(absl::Time now) {
  MaybeWritable();
  MaybeFinishClose(now);
  FlushSync(now);
}

SYMWIRE_DECL absl::Span<const std::byte> Session::PollTransmit() {
  return PollTransmit(nullptr);
}

SYMWIRE_DECL absl::Span<const std::byte> Session::PollTransmit(
    std::shared_ptr<const void>* owner, size_t min_owned_bytes) {
  Connection& c = conn_;
  if (owner != nullptr) owner->reset();
  if (c.control_taken < c.control.size()) {
    absl::Span<const std::byte> out(c.control.data() + c.control_taken,
                                    c.control.size() - c.control_taken);
    c.control_taken = c.control.size();
    counters_.bytes_out += out.size();
    return out;
  }
  if (c.up && !c.closing && c.store_enabled && send_pos_ < store_.end()) {
    // One block at a time (frames never straddle blocks).
    absl::Span<const std::byte> out =
        store_.Contiguous(send_pos_, owner, min_owned_bytes);
    SYMWIRE_ASSERT(!out.empty());
    send_pos_ += out.size();
    sent_pos_high_ = std::max(sent_pos_high_, send_pos_);
    if (send_pos_ == store_.end()) sent_high_ = next_seq_ - 1;
    counters_.bytes_out += out.size();
    return out;
  }
  return {};
}

SYMWIRE_DECL std::optional<Event> Session::PollEvent() {
  if (event_head_ < events_.size()) return std::move(events_[event_head_++]);
  events_.clear();
  event_head_ = 0;
  view_events_end_ = 0;
  return std::nullopt;
}

SYMWIRE_DECL absl::Time Session::NextDeadline() const {
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return absl::InfiniteFuture();
  }
  absl::Time t = std::min(reconnect_at_, expire_at_);
  const Connection& c = conn_;
  if (c.up && !c.closing) {
    if (c.handshake != Handshake::kDone) {
      t = std::min(t, c.handshake_deadline);
    } else {
      t = std::min({t, c.last_rx + config_.dead_peer_timeout, c.next_ping,
                    c.ack_deadline, c.bye_deadline});
      if (!c.rx.empty()) t = std::min(t, c.rx_since + config_.frame_timeout);
    }
  }
  if (!deadlines_.empty()) t = std::min(t, deadlines_.front().first);
  return t;
}

// ---------------------------------------------------------------------------
// Encoding

SYMWIRE_DECL void Session::SendPreface() {
  const size_t at = conn_.control.size();
  conn_.control.resize(at + kPrefaceSize);
  auto n = EncodePreface(absl::Span<std::byte>(conn_.control).subspan(at));
  SYMWIRE_ASSERT(n.ok());
  (void)n;
}

SYMWIRE_DECL void Session::SendControl(MessageType type,
                                       const std::vector<std::byte>& payload) {
  Connection& c = conn_;
  if (c.sync_at_tail) {
    // The SYNC encoded earlier stays where it is; later content starts a
    // new one (after this frame).
    c.sync = PendingSync{};
    c.sync_at_tail = false;
  }
  FrameHeader header;
  header.type = type;
  header.flags = payload.empty() ? 0 : kFlagChecksum;  // §10.1
  auto size = EncodedSize(header, payload.size());
  SYMWIRE_ASSERT(size.ok());
  const size_t at = c.control.size();
  c.control.resize(at + *size);
  auto n = EncodeFrame(header, payload,
                       absl::Span<std::byte>(c.control).subspan(at));
  SYMWIRE_ASSERT(n.ok());
  (void)n;
  ++counters_.frames_out;
}

SYMWIRE_DECL void Session::SendInit(const InitMessage& init) {
  std::vector<std::byte>& payload = Scratch();
  absl::Status s = AppendInit(init, payload);
  SYMWIRE_ASSERT(s.ok());  // every field comes from a validated config
  (void)s;
  SendControl(MessageType::kAgentInit, payload);
}

SYMWIRE_DECL void Session::SendSessionError(const absl::Status& status) {
  ErrorMessage m;
  const int code = static_cast<int>(status.code());
  m.code =
      (code >= 1 && code <= 16) ? status.code() : absl::StatusCode::kUnknown;
  m.message = status.message().substr(0, kMaxErrorMessageSize);
  m.detail = GetErrorCode(status);
  std::vector<std::byte>& payload = Scratch();
  absl::Status s = AppendError(m, payload);
  SYMWIRE_ASSERT(s.ok());
  (void)s;
  SendControl(MessageType::kAgentError, payload);
}

SYMWIRE_DECL InitMessage Session::LocalInit(InitPhase phase) const {
  InitMessage m;
  m.phase = phase;
  m.min_version = config_.min_version;
  m.max_version = config_.max_version;
  m.auth_method = config_.authenticator->method();
  m.agent_id = config_.agent_id;
  m.role = config_.role;
  m.capabilities = config_.capabilities;
  m.max_payload_bytes = config_.max_payload_bytes;
  m.max_header_bytes = config_.max_header_bytes;
  m.max_tasks = config_.max_tasks;
  m.replay_bytes = config_.replay_bytes;
  m.replay_frames = config_.replay_frames;
  m.ping_interval_us =
      std::max<uint64_t>(1, detail::DurationMicros(config_.ping_interval));
  m.min_ping_interval_us =
      detail::DurationMicros(config_.min_peer_ping_interval);
  m.resume_window_us = detail::DurationMicros(config_.resume_window);
  return m;
}

SYMWIRE_DECL absl::Status Session::CheckReplayCredit(size_t frame_size) const {
  // §15.1. An empty buffer takes any one frame, so a frame larger than the
  // window is slow, never stuck.
  if (replay_.empty()) return absl::OkStatus();
  if (replay_.size() + 1 > config_.replay_frames ||
      replay_bytes_in_use() + frame_size > config_.replay_bytes) {
    return MakeError(
        ErrorCode::kReplayBufferFull,
        absl::StrFormat("send window full: %d frames / %d bytes unacknowledged "
                        "(limits %d / %d); wait for Writable",
                        replay_.size(), replay_bytes_in_use(),
                        config_.replay_frames, config_.replay_bytes));
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::EncodeSequenced(
    const FrameHeader& header_in, const FrameExtensions& extensions,
    absl::Span<const std::byte> payload, bool bypass_credit) {
  FrameHeader header = header_in;
  header.sequence = next_seq_;
  auto header_size = EncodedHeaderSize(header, extensions, payload.size());
  if (!header_size.ok()) return header_size.status();
  if (has_session_ && *header_size > peer_.max_header_bytes) {
    return MakeError(ErrorCode::kFrameTooLarge,
                     absl::StrFormat("header of %d bytes exceeds the peer's "
                                     "max_header_bytes %d",
                                     *header_size, peer_.max_header_bytes));
  }
  const size_t size =
      *header_size + payload.size() +
      ((header.flags & kFlagChecksum) ? kPayloadChecksumSize : 0);
  if (!bypass_credit) {
    if (absl::Status s = CheckReplayCredit(size); !s.ok()) return s;
  }
  const uint64_t at = store_.end();
  auto n = EncodeFrame(header, extensions, payload, store_.Append(size));
  SYMWIRE_ASSERT(n.ok() && *n == size);
  (void)n;
  replay_.push_back(ReplayEntry{next_seq_, at, static_cast<uint32_t>(size)});
  ++next_seq_;
  ++counters_.frames_out;
  return absl::OkStatus();
}

SYMWIRE_DECL void Session::SendInternalError(TaskId task, absl::StatusCode code,
                                             absl::string_view message,
                                             bool retryable, ErrorCode detail) {
  ErrorMessage m;
  m.code = code;
  m.message = message.substr(0, kMaxErrorMessageSize);
  m.retryable = retryable;
  m.detail = detail;
  std::vector<std::byte>& payload = Scratch();
  absl::Status s = AppendError(m, payload);
  SYMWIRE_ASSERT(s.ok());
  FrameHeader header;
  header.type = MessageType::kAgentError;
  header.flags = payload.empty() ? 0 : kFlagChecksum;
  header.stream_id = task;
  // Bounded by the open tasks (§15.1), so it bypasses the window.
  s = EncodeSequenced(header, FrameExtensions{}, payload, true);
  SYMWIRE_ASSERT(s.ok());
  (void)s;
}

SYMWIRE_DECL void Session::SendCancel(TaskId task, absl::StatusCode reason) {
  std::vector<std::byte>& payload = Scratch();  // CANCELLED: empty (§11.2)
  absl::Status s = AppendCancel(CancelMessage{reason}, payload);
  SYMWIRE_ASSERT(s.ok());
  FrameHeader h;
  h.type = MessageType::kAgentCancel;
  h.flags = payload.empty() ? 0 : kFlagChecksum;
  h.stream_id = task;
  // Bounded by the open tasks (§15.1), so it bypasses the window.
  s = EncodeSequenced(h, FrameExtensions{}, payload, true);
  SYMWIRE_ASSERT(s.ok());
  (void)s;
}

SYMWIRE_DECL void Session::FlushSync(absl::Time now) {
  Connection& c = conn_;
  if (!c.up || c.closing || c.handshake != Handshake::kDone) return;
  PendingSync& p = c.sync;
  if (!p.any()) return;
  SyncMessage m;
  // §14.2: every SYNC carries the current ack, omitted (never 0) until a
  // sequenced frame was accepted.
  if (rx_seq_ > 0) m.ack = rx_seq_;
  m.ping = p.ping;
  m.pong = p.pong;
  m.drain = p.drain;
  m.bye = p.bye;
  std::vector<std::byte>& payload = Scratch();
  absl::Status s = AppendSync(m, payload);
  SYMWIRE_ASSERT(s.ok());
  (void)s;
  const bool merging = c.sync_at_tail && c.sync_begin >= c.control_taken;
  if (merging) {
    c.control.resize(c.sync_begin);  // re-encode with the merged content
    --counters_.frames_out;
  } else {
    c.sync_begin = c.control.size();
  }
  const PendingSync keep = p;
  SendControl(MessageType::kAgentSync, payload);  // resets c.sync
  c.sync = keep;
  c.sync_at_tail = true;
  if (m.ack && acked_sent_ != rx_seq_) ++counters_.acks_sent;
  acked_sent_ = rx_seq_;
  unacked_rx_frames_ = 0;
  unacked_rx_bytes_ = 0;
  c.ack_deadline = absl::InfiniteFuture();
  (void)now;
}

// ---------------------------------------------------------------------------
// State changes

SYMWIRE_DECL void Session::PushDeadline(absl::Time when, TaskId task) {
  auto later = [](const auto& a, const auto& b) { return a.first > b.first; };
  // Entries of ended tasks are skipped lazily; rebuild when they dominate.
  if (deadlines_.size() > 2 * tasks_.size() + 64) {
    deadlines_.clear();
    for (const auto& [id, t] : tasks_) {
      if (t.deadline) deadlines_.emplace_back(*t.deadline, id);
    }
    std::make_heap(deadlines_.begin(), deadlines_.end(), later);
  }
  deadlines_.emplace_back(when, task);
  std::push_heap(deadlines_.begin(), deadlines_.end(), later);
}

SYMWIRE_DECL void Session::EndTask(TaskId id, Task& task) {
  if (task.own) {
    // §15.1: the slot is free at once; the ack of this terminal frame goes
    // out in this batch, before any task that reuses the slot.
    --own_open_;
    conn_.sync.ack = true;
  } else {
    // §15.1: the executor's slot stays taken until the submitter
    // acknowledges the terminal frame just sent (the last sequence).
    HoldSlotUntilAcked();
  }
  tasks_.erase(id);
}

SYMWIRE_DECL void Session::HoldSlotUntilAcked() {
  unacked_terminals_.push_back(next_seq_ - 1);
}

SYMWIRE_DECL void Session::ReleaseAckedSlots(uint64_t ack) {
  while (!unacked_terminals_.empty() && unacked_terminals_.front() <= ack) {
    unacked_terminals_.pop_front();
    --peer_open_;
  }
}

SYMWIRE_DECL void Session::MaybeWritable() {
  if (!blocked_ || !has_session_) return;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  if (own_open_ < peer_.max_tasks &&
      (replay_.empty() || (replay_.size() < config_.replay_frames &&
                           replay_bytes_in_use() < config_.replay_bytes))) {
    blocked_ = false;
    Emit(Writable{});
  }
}

SYMWIRE_DECL void Session::MaybeFinishClose(absl::Time now) {
  // §15.3: bye once nothing is open and everything sent was acknowledged,
  // once per connection; the session ends when the peer's bye answers it.
  if (!closing_ || state_ != SessionState::kEstablished) return;
  if (!tasks_.empty() || !replay_.empty() || conn_.bye_sent) return;
  conn_.sync.bye = true;
  FlushSync(now);
  conn_.bye_sent = true;
  // A connection on which the answer does not come is treated as dead
  // (HandleTimeout), so a half-open one cannot hold the close.
  conn_.bye_deadline = now + config_.handshake_timeout;
  bye_sent_ = true;
}

SYMWIRE_DECL void Session::EndClosed(absl::Time now) {
  (void)now;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  // Any task still open (none, for a conforming peer) ends with
  // UNAVAILABLE (§15.3).
  const absl::Status closed =
      MakeError(ErrorCode::kConnectionLost, "peer closed the session");
  std::vector<TaskId> open;
  for (const auto& [id, t] : tasks_) open.push_back(id);
  std::sort(open.begin(), open.end());
  for (TaskId id : open) {
    const Task& t = tasks_[id];
    if (t.own && t.state != TaskState::kCancelling) {
      Emit(TaskFailed{id, closed, false});
    } else if (!t.own) {
      Emit(TaskCancelled{id, closed, false});
    }
  }
  tasks_.clear();
  own_open_ = peer_open_ = 0;
  unacked_terminals_.clear();
  reconnect_at_ = expire_at_ = absl::InfiniteFuture();
  state_ = SessionState::kClosed;
  conn_.closing = conn_.closing || conn_.up;
  Emit(SessionClosed{});
}

SYMWIRE_DECL void Session::FreeAcked(uint64_t ack) {
  ReleaseAckedSlots(ack);
  while (!replay_.empty() && replay_.front().seq <= ack) replay_.pop_front();
  CompactStore();
}

SYMWIRE_DECL void Session::CompactStore() {
  const uint64_t head = replay_.empty() ? store_.end() : replay_.front().pos;
  // Bytes before send_pos_ that are not retained can go too; bytes not yet
  // handed to the driver cannot. Whole blocks only: nothing is moved.
  store_.DropBefore(std::min(head, send_pos_));
}

SYMWIRE_DECL void Session::ScheduleReconnect(absl::Time now) {
  // §16.1: min(initial * multiplier^n, max) * (1 + jitter * u), u in [-1, 1].
  const BackoffConfig& b = config_.backoff;
  double delay = absl::ToDoubleSeconds(b.initial) *
                 std::pow(b.multiplier, static_cast<double>(attempt_));
  delay = std::min(delay, absl::ToDoubleSeconds(b.max));
  // The 8 random bytes are an unsigned little-endian integer x, whatever the
  // host's byte order; u = 2 * floor(x / 2^11) / 2^53 - 1 (§16.1).
  std::array<std::byte, 8> r;
  config_.random(absl::Span<std::byte>(r));
  uint64_t x = 0;
  for (size_t k = 0; k < r.size(); ++k) {
    x |= static_cast<uint64_t>(r[k]) << (8 * k);
  }
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  delay *= 1.0 + b.jitter * u;
  ++attempt_;
  reconnect_at_ = now + absl::Seconds(delay);
}

SYMWIRE_DECL void Session::ConnectionFailed(const absl::Status& status,
                                            absl::Time now) {
  Connection& c = conn_;
  if (!c.up) return;
  c.up = false;
  c.closing = true;
  c.store_enabled = false;
  c.sync = PendingSync{};
  if (config_.side == SessionSide::kAcceptor && !has_session_) {
    // A fresh acceptor has nothing to resume (Fail counts the error).
    Fail(status, now, false);
    return;
  }
  CountError(status);
  state_ = SessionState::kDisconnected;
  Emit(ConnectionLost{status});
  if (config_.side == SessionSide::kInitiator) {
    ScheduleReconnect(now);
    if (has_session_ && expire_at_ == absl::InfiniteFuture()) {
      expire_at_ = now + peer_.resume_window;
    }
  } else {
    expire_at_ = now + config_.resume_window;
  }
}

SYMWIRE_DECL absl::Status Session::DecodeFailed(const absl::Status& status,
                                                absl::Time now) {
  if (GetErrorCode(status) == ErrorCode::kPayloadTooLarge) {
    if (conn_.handshake == Handshake::kDone) {
      // SPEC.md §15.2: a payload above the announced limit, in a header
      // whose CRC matched (the decoder checks the limit only after the CRC,
      // §7.1, so a flipped bit cannot cause it), was sent on purpose; a
      // resume would replay the frame and fail again. It ends the session.
      Fail(status, now, true);
      return status;
    }
    // §15.2: before the handshake completes the limit is 8192 for every
    // frame type; this ends the connection, like every framing error.
    absl::Status s = MakeError(
        ErrorCode::kPayloadTooLarge,
        absl::StrFormat("%s (the limit for every frame before the handshake "
                        "completes)",
                        status.message()));
    ConnectionFailed(s, now);
    return s;
  }
  // Every other framing error ends only the connection (§16.1).
  ConnectionFailed(status, now);
  return status;
}

SYMWIRE_DECL void Session::Fail(const absl::Status& status, absl::Time now,
                                bool tell_peer) {
  (void)now;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  CountError(status);
  if (tell_peer && conn_.up && !conn_.closing) SendSessionError(status);
  conn_.closing = conn_.closing || conn_.up;
  conn_.up = false;
  conn_.store_enabled = false;
  std::vector<TaskId> affected;
  affected.reserve(tasks_.size());
  for (const auto& [id, t] : tasks_) affected.push_back(id);
  std::sort(affected.begin(), affected.end());
  for (TaskId id : affected) {
    const Task& t = tasks_[id];
    if (t.own) {
      // A cancelling task already had its terminal event.
      if (t.state != TaskState::kCancelling) {
        bool retryable = false;
        absl::Status end = OwnTaskEndStatus(id, t, status, &retryable);
        Emit(TaskFailed{id, std::move(end), retryable});
      }
    } else {
      Emit(TaskCancelled{id, status, false});
    }
  }
  tasks_.clear();
  own_open_ = peer_open_ = 0;
  unacked_terminals_.clear();
  replay_.clear();
  store_.Clear();
  send_pos_ = 0;
  deadlines_.clear();
  reconnect_at_ = expire_at_ = absl::InfiniteFuture();
  state_ = SessionState::kFailed;
  failure_ = status;
  Emit(SessionFailed{status, std::move(affected)});
}

SYMWIRE_DECL absl::Status Session::OwnTaskEndStatus(TaskId id, const Task& task,
                                                    const absl::Status& status,
                                                    bool* retryable) const {
  // §16.3. Acknowledged: the peer has it and may have run it. Never handed
  // to a connection: it cannot have reached the peer, so it is safe to
  // retry. Sent but not acknowledged: unknown (the ack may have been lost
  // with the connection), so it counts as received.
  *retryable = false;
  std::string message;
  if (task.seq <= acked_) {
    message = absl::StrFormat(
        "task %d was received by the peer (acknowledged) and may have run: %s",
        id, status.message());
  } else if (task.end_pos > sent_pos_high_) {
    *retryable = true;
    return MakeError(
        ErrorCode::kConnectionLost,
        absl::StrFormat("task %d never reached the peer; safe to retry (the "
                        "session ended: %s)",
                        id, status.message()));
  } else {
    message = absl::StrFormat(
        "task %d was sent but not acknowledged: the peer may have received "
        "and run it: %s",
        id, status.message());
  }
  absl::Status out(status.code(), message);
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

SYMWIRE_DECL void Session::FailHandshake(const absl::Status& status,
                                         absl::Time now) {
  Fail(status, now, true);
}

SYMWIRE_DECL void Session::Establish(bool resumed, absl::Time now) {
  Connection& c = conn_;
  c.handshake = Handshake::kDone;
  c.hello.reset();
  c.store_enabled = true;
  c.handshake_deadline = absl::InfiniteFuture();
  // §15.2: tasks and responses may now arrive (control payloads stay
  // accepted up to 8192 bytes whatever the limit).
  c.decoder.SetMaxPayloadBytes(
      std::max(config_.max_payload_bytes, kMaxControlPayloadSize));
  c.last_rx = now;
  c.next_ping = now + EffectivePingInterval();
  state_ = SessionState::kEstablished;
  attempt_ = 0;
  reconnect_at_ = expire_at_ = absl::InfiniteFuture();
  uint64_t replayed = 0;
  if (resumed) {
    ++counters_.resumes;
    replayed = replay_.size();
  }
  // §16.2: the HELLO / WELCOME carried last_received, which acknowledges
  // everything received so far; ack counting starts over on this
  // connection (the rest of its state is new: Connection{}).
  acked_sent_ = rx_seq_;
  unacked_rx_frames_ = unacked_rx_bytes_ = 0;
  if (draining_) c.sync.drain = drain_last_;
  Emit(Established{resumed, replayed});
}

SYMWIRE_DECL void Session::RunTaskDeadlines(absl::Time now) {
  auto later = [](const auto& a, const auto& b) { return a.first > b.first; };
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    const auto [when, id] = deadlines_.front();
    std::pop_heap(deadlines_.begin(), deadlines_.end(), later);
    deadlines_.pop_back();
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !it->second.deadline ||
        *it->second.deadline != when) {
      continue;  // ended meanwhile
    }
    Task& t = it->second;
    const absl::Status expired = absl::DeadlineExceededError(
        absl::StrFormat("task %d: deadline exceeded", id));
    if (t.own) {
      if (t.state == TaskState::kCancelling) continue;
      // §13.4: the submitter's deadline is authoritative; cancel with
      // reason DEADLINE_EXCEEDED.
      t.state = TaskState::kCancelling;
      Emit(TaskCancelled{id, expired, true});
      SendCancel(id, absl::StatusCode::kDeadlineExceeded);
    } else {
      Emit(TaskCancelled{id, expired, false});
      SendInternalError(id, absl::StatusCode::kDeadlineExceeded,
                        "deadline exceeded", false, ErrorCode::kOk);
      EndTask(id, t);
    }
  }
}

// ---------------------------------------------------------------------------
// Inputs

SYMWIRE_DECL absl::Status Session::TransportConnected(absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  if (conn_.up) {
    return LocalError(ErrorCode::kWrongState, "a connection is already up");
  }
  if (config_.side == SessionSide::kAcceptor && counters_.connections > 0) {
    return LocalError(ErrorCode::kWrongState,
                      "an acceptor session takes one connection; resumed "
                      "connections arrive through AdoptConnection");
  }
  conn_ = Connection{};
  DecoderOptions options;
  options.max_header_bytes = config_.max_header_bytes;
  // §15.2: until the handshake completes only control frames are legal, and
  // every one fits in 8192 bytes; a larger declared length fails at its
  // header, before anything is buffered. Establish raises the limit.
  options.max_payload_bytes = kMaxControlPayloadSize;
  options.max_extensions = config_.max_extensions;
  conn_.decoder = FrameDecoder(options);
  conn_.up = true;
  conn_.last_rx = now;
  conn_.handshake_deadline = now + config_.handshake_timeout;
  ++counters_.connections;
  reconnect_at_ = absl::InfiniteFuture();
  state_ = SessionState::kHandshaking;
  SendPreface();
  if (config_.side == SessionSide::kInitiator) {
    config_.random(absl::Span<std::byte>(conn_.auth.client_nonce));
    conn_.auth.initiator_agent_id = config_.agent_id;
    auto data = config_.authenticator->ClientHello(conn_.auth);
    if (!data.ok()) {
      Fail(data.status(), now, false);
      return data.status();
    }
    InitMessage hello = LocalInit(InitPhase::kHello);
    hello.auth_data = *data;
    hello.nonce = conn_.auth.client_nonce;
    if (has_session_) {
      // §16.2: the token itself never goes out again; PROOF proves it.
      hello.session_id = session_id_;
      hello.last_received = rx_seq_;
    }
    SendInit(hello);
    conn_.handshake = Handshake::kAwaitServer;
  } else {
    config_.random(absl::Span<std::byte>(conn_.auth.server_nonce));
    conn_.handshake = Handshake::kAwaitHello;
  }
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::Receive(absl::Span<const std::byte> bytes,
                                           absl::Time now) {
  ObserveNow(now);
  if (state_ == SessionState::kFailed) return failure_;
  if (event_head_ < view_events_end_) {
    return LocalError(
        ErrorCode::kWrongState,
        absl::StrFormat("%d events are still queued, some pointing into the "
                        "previous input; drain PollEvent before the next "
                        "Receive (nothing was consumed)",
                        events_.size() - event_head_));
  }
  events_.erase(events_.begin(),
                events_.begin() + static_cast<std::ptrdiff_t>(event_head_));
  event_head_ = 0;
  view_events_end_ = 0;
  BeginInput();
  Connection& c = conn_;
  if (!c.up || c.closing) {
    return LocalError(ErrorCode::kWrongState, "no connection is up");
  }
  c.hold.clear();
  counters_.bytes_in += bytes.size();
  if (!bytes.empty()) c.last_rx = now;  // §14.1: any byte is liveness
  absl::Status status;
  auto stop = [&] {
    return !status.ok() || !conn_.up || conn_.closing ||
           conn_.handshake == Handshake::kAwaitResume;
  };
  // 1. Complete a frame split across calls, copying only its bytes.
  while (!c.rx.empty() && !bytes.empty() && !stop()) {
    SYMWIRE_ASSERT(c.rx_need > c.rx.size());
    const size_t take = std::min<size_t>(c.rx_need - c.rx.size(), bytes.size());
    c.rx.insert(c.rx.end(), bytes.begin(),
                bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes.remove_prefix(take);
    if (c.rx.size() < c.rx_need) break;
    auto step = c.decoder.Decode(c.rx);
    if (!step.ok()) {
      status = DecodeFailed(step.status(), now);
      break;
    }
    if (step->kind == DecodeStep::Kind::kNeedMore) {
      c.rx_need = std::max<uint32_t>(step->bytes_needed,
                                     static_cast<uint32_t>(c.rx.size()) + 1);
      continue;
    }
    // The decoder asks for exactly the bytes of the next step, so the step
    // used the whole buffer; its views stay valid in `hold`.
    SYMWIRE_ASSERT(step->consumed == c.rx.size());
    c.hold.swap(c.rx);
    c.rx.clear();
    status = ProcessStep(*step, now);
  }
  // 2. Whole frames straight from the caller's bytes (no copy).
  while (c.rx.empty() && !bytes.empty() && !stop()) {
    auto step = c.decoder.Decode(bytes);
    if (!step.ok()) {
      status = DecodeFailed(step.status(), now);
      break;
    }
    if (step->kind == DecodeStep::Kind::kNeedMore) {
      // The first bytes of a frame (§14.1 frame_timeout runs from here).
      c.rx_since = now;
      c.rx_since_offset = c.decoder.stream_offset();
      c.rx.assign(bytes.begin(), bytes.end());
      c.rx_need = std::max<uint32_t>(step->bytes_needed,
                                     static_cast<uint32_t>(c.rx.size()) + 1);
      bytes = {};
      break;
    }
    bytes.remove_prefix(step->consumed);
    status = ProcessStep(*step, now);
  }
  if (status.ok() && conn_.up && !conn_.closing &&
      conn_.handshake == Handshake::kAwaitResume &&
      (!bytes.empty() || !conn_.rx.empty())) {
    // A conforming initiator waits for WELCOME after HELLO/PROOF.
    status = MakeError(absl::StatusCode::kUnauthenticated,
                       ErrorCode::kUnexpectedFrame,
                       "bytes received before the resume handshake completed");
    FailHandshake(status, now);
  }
  EndInput(now);
  return status;
}

SYMWIRE_DECL absl::Status Session::ProcessStep(const DecodeStep& step,
                                               absl::Time now) {
  if (step.kind == DecodeStep::Kind::kFrame) {
    return HandleFrame(step.frame, now);
  }
  return absl::OkStatus();  // the preface; the decoder checked it (§3)
}

SYMWIRE_DECL absl::Status Session::HandleFrame(const FrameView& frame,
                                               absl::Time now) {
  ++counters_.frames_in;
  const MessageType type = frame.type();
  const uint64_t offset = conn_.decoder.stream_offset() - frame.size();
  if (conn_.handshake != Handshake::kDone) {
    if (type == MessageType::kAgentInit) return HandleInit(frame, now);
    if (type == MessageType::kAgentError && frame.stream_id() == 0) {
      return HandleSessionError(frame, now);
    }
    // §12.1: nothing but the handshake before it succeeds.
    absl::Status s = MakeError(
        absl::StatusCode::kUnauthenticated, ErrorCode::kUnexpectedFrame,
        absl::StrFormat("%s at stream offset %d before the handshake "
                        "completed",
                        detail::TypeName(type), offset));
    FailHandshake(s, now);
    return s;
  }
  const bool sequenced = IsSequencedFrame(type, frame.stream_id());
  const uint64_t seq = frame.sequence();
  if (sequenced) {
    // §10: exactly-once, in-order.
    if (seq == 0 || seq > rx_seq_ + 1) {
      absl::Status s = MakeError(
          ErrorCode::kSequenceGap,
          absl::StrFormat("%s sequence %d at stream offset %d; expected %d",
                          detail::TypeName(type), seq, offset, rx_seq_ + 1));
      Fail(s, now, true);
      return s;
    }
    if (seq <= rx_seq_) {
      ++counters_.duplicates_discarded;
      return CountProgress(false, frame, offset, now);
    }
    rx_seq_ = seq;
    conn_.noop_frames = 0;  // §14.1: a new sequenced frame is progress
    ++unacked_rx_frames_;
    unacked_rx_bytes_ += frame.size();
    // §14.2: coalesced acks, every sixteenth of the peer's window: the
    // sender's live replay store stays small enough to stay in cache (a
    // quarter, the first choice, kept megabytes live and made every copy
    // into it a cache miss at 16 KiB payloads), for one small SYNC per
    // 4096 frames or 512 KiB with the default window.
    if (unacked_rx_frames_ >=
            std::max<uint64_t>(1, peer_.replay_frames / kAckFraction) ||
        unacked_rx_bytes_ >=
            std::max<uint64_t>(1, peer_.replay_bytes / kAckFraction)) {
      conn_.sync.ack = true;
    } else if (conn_.ack_deadline == absl::InfiniteFuture()) {
      conn_.ack_deadline = now + config_.ack_delay;
    }
  } else if (seq != 0) {
    absl::Status s = MakeError(
        ErrorCode::kSequenceGap,
        absl::StrFormat("%s is a connection frame but has sequence %d at "
                        "stream offset %d",
                        detail::TypeName(type), seq, offset));
    Fail(s, now, true);
    return s;
  }
  if ((type == MessageType::kAgentTask ||
       type == MessageType::kAgentResponse) &&
      frame.payload().size() > config_.max_payload_bytes) {
    absl::Status s = MakeError(
        ErrorCode::kPayloadTooLarge,
        absl::StrFormat("%s payload of %d bytes at stream offset %d exceeds "
                        "the announced max_payload_bytes %d",
                        detail::TypeName(type), frame.payload().size(), offset,
                        config_.max_payload_bytes));
    Fail(s, now, true);
    return s;
  }
  switch (type) {
    case MessageType::kAgentInit: {
      absl::Status s = MakeError(
          ErrorCode::kUnexpectedFrame,
          absl::StrFormat("AGENT_INIT at stream offset %d after the handshake",
                          offset));
      Fail(s, now, true);
      return s;
    }
    case MessageType::kAgentTask:
      return HandleTask(frame, now);
    case MessageType::kAgentResponse:
      return HandleResponse(frame, now);
    case MessageType::kAgentError:
      return frame.stream_id() == 0 ? HandleSessionError(frame, now)
                                    : HandleTaskError(frame, now);
    case MessageType::kAgentCancel:
      return HandleCancel(frame, now);
    case MessageType::kAgentSync:
      return HandleSync(frame, now);
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::CountProgress(bool useful,
                                                 const FrameView& frame,
                                                 uint64_t offset,
                                                 absl::Time now) {
  Connection& c = conn_;
  if (useful) {
    c.noop_frames = 0;
    return absl::OkStatus();
  }
  // §14.1: a peer that keeps sending frames that change nothing (empty or
  // repeated SYNCs, duplicates) only burns this side's CPU.
  if (++c.noop_frames <= config_.max_noop_frames) return absl::OkStatus();
  absl::Status s = MakeError(
      ErrorCode::kPingFlood,
      absl::StrFormat("%d consecutive frames carrying nothing new (limit "
                      "max_noop_frames %d); the last: %s at stream offset %d",
                      c.noop_frames, config_.max_noop_frames,
                      detail::TypeName(frame.type()), offset));
  Fail(s, now, true);
  return s;
}

// ---- handshake (§12) ----------------------------------------------------

SYMWIRE_DECL absl::Status Session::HandleInit(const FrameView& frame,
                                              absl::Time now) {
  auto init = ParseInit(frame.payload());
  if (!init.ok()) {
    FailHandshake(init.status(), now);
    return init.status();
  }
  const Handshake h = conn_.handshake;
  const InitPhase phase = init->phase;
  const bool expected =
      (h == Handshake::kAwaitHello && phase == InitPhase::kHello) ||
      (h == Handshake::kAwaitProof && phase == InitPhase::kProof) ||
      (h == Handshake::kAwaitServer &&
       (phase == InitPhase::kChallenge || phase == InitPhase::kWelcome)) ||
      (h == Handshake::kAwaitWelcome && phase == InitPhase::kWelcome);
  if (!expected) {
    absl::Status s = MakeError(
        absl::StatusCode::kUnauthenticated, ErrorCode::kUnexpectedFrame,
        absl::StrFormat("AGENT_INIT phase %s is not expected now",
                        InitPhaseName(phase)));
    FailHandshake(s, now);
    return s;
  }
  switch (phase) {
    case InitPhase::kHello:
      return HandleHello(*init, now);
    case InitPhase::kProof:
      return HandleProof(*init, frame.payload().size(), now);
    case InitPhase::kChallenge:
    case InitPhase::kWelcome:
      return HandleServerInit(*init, now);
  }
  return absl::OkStatus();
}

namespace detail {

inline bool RolesCompatible(AgentRole a, AgentRole b) {
  return (RoleSendsTasks(a) && RoleRunsTasks(b)) ||
         (RoleSendsTasks(b) && RoleRunsTasks(a));
}

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

}  // namespace detail

SYMWIRE_DECL absl::Status Session::HandleHello(const InitMessage& hello,
                                               absl::Time now) {
  // §12.2, in order: parameters (parsed), version, roles, auth, resume.
  const uint64_t lo = std::max(config_.min_version, hello.min_version);
  const uint64_t hi = std::min(config_.max_version, hello.max_version);
  if (lo > hi) {
    absl::Status s = MakeError(
        ErrorCode::kVersionMismatch,
        absl::StrFormat("no common session version: local %d..%d, peer %d..%d",
                        config_.min_version, config_.max_version,
                        hello.min_version, hello.max_version));
    FailHandshake(s, now);
    return s;
  }
  if (!detail::RolesCompatible(config_.role, hello.role)) {
    absl::Status s =
        MakeError(ErrorCode::kIncompatibleRoles,
                  absl::StrFormat(
                      "roles %s (local) and %s (peer): neither may send "
                      "tasks to the other",
                      AgentRoleName(config_.role), AgentRoleName(hello.role)));
    FailHandshake(s, now);
    return s;
  }
  const AuthMethod method = config_.authenticator->method();
  if (hello.auth_method != method) {
    absl::Status s = MakeError(
        ErrorCode::kUnauthenticated,
        absl::StrFormat("auth method %d not accepted; this peer requires %d",
                        static_cast<uint64_t>(hello.auth_method),
                        static_cast<uint64_t>(method)));
    FailHandshake(s, now);
    return s;
  }
  Hello& saved = conn_.hello.emplace();
  saved.agent_id.assign(hello.agent_id.data(), hello.agent_id.size());
  saved.message = hello;
  saved.message.agent_id = {};
  saved.message.auth_data = {};
  saved.message.version = hi;
  conn_.auth.client_nonce = hello.nonce;
  conn_.auth.initiator_agent_id = saved.agent_id;
  auto decision = config_.authenticator->ServerHello(
      absl::Span<const std::byte>(
          reinterpret_cast<const std::byte*>(hello.auth_data.data()),
          hello.auth_data.size()),
      conn_.auth);
  if (!decision.ok()) {
    FailHandshake(decision.status(), now);
    return decision.status();
  }
  // §16.2: a resuming HELLO is always challenged, so that PROOF can prove
  // the resume token against this connection's fresh server nonce.
  const bool method_challenges =
      decision->kind == AuthDecision::Kind::kChallenge;
  if (method_challenges || hello.session_id) {
    InitMessage challenge;
    challenge.phase = InitPhase::kChallenge;
    challenge.nonce = conn_.auth.server_nonce;
    if (method_challenges) challenge.auth_data = decision->data;
    SendInit(challenge);
    if (!method_challenges) {
      saved.welcome_auth_data = std::move(decision->data);
      conn_.resume_challenge_only = true;
    }
    conn_.challenged = true;
    conn_.handshake = Handshake::kAwaitProof;
    return absl::OkStatus();
  }
  saved.welcome_auth_data = std::move(decision->data);
  return FinishAcceptorHandshake(now);
}

SYMWIRE_DECL absl::Status Session::HandleProof(const InitMessage& proof,
                                               size_t payload_size,
                                               absl::Time now) {
  SYMWIRE_ASSERT(conn_.hello.has_value());
  Hello& hello = *conn_.hello;
  // §16.2: a PROOF answering a resuming HELLO carries resume_proof; any
  // other PROOF does not.
  absl::Status s;
  if (hello.message.session_id && !proof.resume_proof) {
    s = MakeError(ErrorCode::kMissingParam,
                  absl::StrFormat("agent_init PROOF is missing required param "
                                  "23 (resume_proof) (the HELLO resumes) at "
                                  "payload offset %d",
                                  payload_size));
  } else if (!hello.message.session_id && proof.resume_proof) {
    s = MakeError(absl::StatusCode::kUnauthenticated,
                  ErrorCode::kUnexpectedFrame,
                  "PROOF carries resume_proof but the HELLO did not resume");
  } else if (conn_.resume_challenge_only && !proof.auth_data.empty()) {
    s = MakeError(
        ErrorCode::kUnauthenticated,
        absl::StrFormat("auth method %d has no challenge: PROOF "
                        "auth_data must be empty, got %d bytes",
                        static_cast<uint64_t>(config_.authenticator->method()),
                        proof.auth_data.size()));
  }
  if (!s.ok()) {
    FailHandshake(s, now);
    return s;
  }
  if (!conn_.resume_challenge_only) {
    conn_.auth.initiator_agent_id = hello.agent_id;
    auto welcome_data = config_.authenticator->ServerVerifyProof(
        absl::Span<const std::byte>(
            reinterpret_cast<const std::byte*>(proof.auth_data.data()),
            proof.auth_data.size()),
        conn_.auth);
    if (!welcome_data.ok()) {
      FailHandshake(welcome_data.status(), now);
      return welcome_data.status();
    }
    hello.welcome_auth_data = std::move(*welcome_data);
  }
  hello.resume_proof = proof.resume_proof;
  return FinishAcceptorHandshake(now);
}

SYMWIRE_DECL absl::Status Session::FinishAcceptorHandshake(absl::Time now) {
  Hello& hello = *conn_.hello;
  if (hello.message.session_id) {
    // §16.2: the Endpoint's registry decides (AdoptConnection /
    // RejectResume through detail::SessionHandover).
    conn_.handshake = Handshake::kAwaitResume;
    Emit(ResumeRequested{*hello.message.session_id});
    return absl::OkStatus();
  }
  config_.random(absl::Span<std::byte>(session_id_));
  if (config_.session_id_tag) {
    session_id_.back() = std::byte{*config_.session_id_tag};
  }
  config_.random(absl::Span<std::byte>(resume_token_));
  has_session_ = true;
  hello.message.agent_id = hello.agent_id;
  detail::FillPeer(hello.message, config_.capabilities, peer_);
  peer_.version = hello.message.version;
  peer_.resume_window = config_.resume_window;
  InitMessage welcome = LocalInit(InitPhase::kWelcome);
  welcome.version = hello.message.version;
  welcome.auth_data = hello.welcome_auth_data;
  welcome.nonce = conn_.auth.server_nonce;
  welcome.session_id = session_id_;
  welcome.resume_token = resume_token_;
  welcome.last_received = rx_seq_;
  SendInit(welcome);
  Establish(false, now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleServerInit(const InitMessage& init,
                                                    absl::Time now) {
  conn_.auth.initiator_agent_id = config_.agent_id;
  if (init.phase == InitPhase::kChallenge) {
    conn_.auth.server_nonce = init.nonce;
    conn_.challenged = true;
    InitMessage m;
    m.phase = InitPhase::kProof;
    absl::StatusOr<std::string> proof = std::string();
    if (!has_session_ || config_.authenticator->HasChallenge()) {
      proof = config_.authenticator->ClientProof(
          absl::Span<const std::byte>(
              reinterpret_cast<const std::byte*>(init.auth_data.data()),
              init.auth_data.size()),
          conn_.auth);
    } else if (!init.auth_data.empty()) {
      // §16.2: the resume's own CHALLENGE carries only the nonce.
      proof =
          MakeError(ErrorCode::kUnauthenticated,
                    absl::StrFormat(
                        "auth method %d has no challenge, but "
                        "the CHALLENGE carries %d bytes of "
                        "auth_data",
                        static_cast<uint64_t>(config_.authenticator->method()),
                        init.auth_data.size()));
    }
    if (proof.ok() && has_session_) {
      // §16.2: possession of the resume token, bound to both nonces.
      auto r = ComputeResumeProof(
          resume_token_, ResumeProofSide::kClient, conn_.auth.client_nonce,
          conn_.auth.server_nonce, session_id_, rx_seq_);
      if (r.ok()) {
        m.resume_proof = *r;
      } else {
        proof = r.status();
      }
    }
    if (!proof.ok()) {
      FailHandshake(proof.status(), now);
      return proof.status();
    }
    m.auth_data = *proof;
    SendInit(m);
    conn_.handshake = Handshake::kAwaitWelcome;
    return absl::OkStatus();
  }
  // WELCOME. §12.2 for the initiator: version, roles, the method's check.
  absl::Status s;
  if (init.version < config_.min_version ||
      init.version > config_.max_version) {
    s = MakeError(ErrorCode::kVersionMismatch,
                  absl::StrFormat("acceptor chose session version %d outside "
                                  "the local range %d..%d",
                                  init.version, config_.min_version,
                                  config_.max_version));
  } else if (!detail::RolesCompatible(config_.role, init.role)) {
    s = MakeError(
        ErrorCode::kIncompatibleRoles,
        absl::StrFormat("roles %s (local) and %s (peer): neither may "
                        "send tasks to the other",
                        AgentRoleName(config_.role), AgentRoleName(init.role)));
  } else if (conn_.challenged && init.nonce != conn_.auth.server_nonce) {
    s = MakeError(ErrorCode::kUnauthenticated,
                  "WELCOME nonce differs from the CHALLENGE's");
  }
  if (s.ok()) {
    conn_.auth.server_nonce = init.nonce;
    s = config_.authenticator->ClientVerifyWelcome(
        absl::Span<const std::byte>(
            reinterpret_cast<const std::byte*>(init.auth_data.data()),
            init.auth_data.size()),
        conn_.auth);
  }
  if (s.ok() && has_session_ &&
      (!init.resumed || init.session_id != session_id_)) {
    s = MakeError(ErrorCode::kResumeRejected,
                  absl::StrFormat("asked to resume session %s; the acceptor "
                                  "answered with a new session",
                                  detail::HexId(session_id_)));
  }
  if (s.ok() && !has_session_ && init.resumed) {
    s = MakeError(ErrorCode::kResumeRejected,
                  "WELCOME claims a resumed session this side never had");
  }
  if (s.ok() && has_session_) {
    // §16.2: the acceptor proves it holds the token too (mutual), so a
    // peer that is not the session's acceptor cannot make this side drop
    // its replay buffer. The parser guarantees resume_proof here.
    auto expected = ComputeResumeProof(
        resume_token_, ResumeProofSide::kServer, conn_.auth.client_nonce,
        conn_.auth.server_nonce, session_id_, *init.last_received);
    if (!expected.ok()) {
      s = expected.status();
    } else if (!init.resume_proof ||
               !detail::ConstantTimeEquals(
                   absl::Span<const std::byte>(*init.resume_proof),
                   absl::Span<const std::byte>(*expected))) {
      s = MakeError(ErrorCode::kResumeRejected,
                    "resumed WELCOME's resume_proof does not match this "
                    "session's token");
    }
  }
  if (!s.ok()) {
    FailHandshake(s, now);
    return s;
  }
  const bool resumed = has_session_;
  if (resumed) {
    // §16.2: the same contract as the first WELCOME, and a last_received
    // this side can serve. The acceptor is authenticated by now: these end
    // the session.
    absl::Status r = CheckResumeIdentity(init, init.version);
    if (r.ok()) r = CheckPeerLastReceived(*init.last_received);
    if (!r.ok()) {
      Fail(r, now, true);
      return r;
    }
  }
  detail::FillPeer(init, config_.capabilities, peer_);
  peer_.version = init.version;
  peer_.resume_window = detail::MicrosDuration(init.resume_window_us);
  if (resumed) {
    ApplyPeerLastReceived(*init.last_received);
  } else {
    session_id_ = *init.session_id;
    resume_token_ = *init.resume_token;
    has_session_ = true;
    if (*init.last_received != 0) {
      absl::Status r =
          MakeError(ErrorCode::kBadAck,
                    absl::StrFormat("new session WELCOME has last_received %d",
                                    *init.last_received));
      Fail(r, now, true);
      return r;
    }
  }
  Establish(resumed, now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::CheckPeerLastReceived(uint64_t last) const {
  // §16.2: L may not exceed the last sequence sent (BAD_ACK) nor precede
  // the last sequence the peer acknowledged, A (RESUME_GAP: frames up to A
  // were freed). Every frame in A+1..last sent is still held, so the rule
  // needs no look at the replay buffer (which may be empty).
  if (last > next_seq_ - 1) {
    return MakeError(ErrorCode::kBadAck,
                     absl::StrFormat("peer's last_received %d is beyond the "
                                     "last sequence sent, %d",
                                     last, next_seq_ - 1));
  }
  if (last < acked_) {
    return MakeError(
        ErrorCode::kResumeGap,
        absl::StrFormat("peer's last_received %d precedes its acknowledgement "
                        "%d: frames %d..%d were freed and cannot be replayed",
                        last, acked_, last + 1, acked_));
  }
  return absl::OkStatus();
}

SYMWIRE_DECL void Session::ApplyPeerLastReceived(uint64_t last) {
  SYMWIRE_ASSERT(CheckPeerLastReceived(last).ok());
  acked_ = last;
  ReleaseAckedSlots(last);
  while (!replay_.empty() && replay_.front().seq <= last) replay_.pop_front();
  send_pos_ = replay_.empty() ? store_.end() : replay_.front().pos;
  CompactStore();
  if (sent_high_ > last) counters_.retransmitted_frames += sent_high_ - last;
}

SYMWIRE_DECL absl::Status Session::CheckResumeIdentity(const InitMessage& m,
                                                       uint64_t version) const {
  // §16.2: a resumed connection continues the session's contract. Frames
  // kept for replay were sized for the peer's limits, and its open tasks
  // counted against its max_tasks; its name and role identify the session.
  const PeerInfo& p = peer_;
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

SYMWIRE_DECL absl::Status Session::AdoptConnection(Session& fresh,
                                                   bool lost_race,
                                                   absl::Time now) {
  BeginInput();
  fresh.BeginInput();
  if (&fresh == this || fresh.config_.side != SessionSide::kAcceptor ||
      config_.side != SessionSide::kAcceptor || !fresh.conn_.up ||
      fresh.conn_.handshake != Handshake::kAwaitResume || !fresh.conn_.hello) {
    return LocalError(ErrorCode::kWrongState,
                      "AdoptConnection needs a fresh acceptor session that "
                      "reported ResumeRequested");
  }
  // §12.2 step 5, §16.2: every check runs before anything changes here; a
  // failure is answered on the new connection only, so a resume that
  // fails — whoever sent it — never harms this session.
  const Hello& hello = *fresh.conn_.hello;
  const SessionId& id = *hello.message.session_id;
  // The proof is computed whatever the outcome, so that an ended session,
  // a bad proof and (RejectResume) an unknown session take the same work
  // and get the same answer: an unauthenticated peer learns nothing about
  // which sessions exist (§16.2).
  auto expected = ComputeResumeProof(
      resume_token_, ResumeProofSide::kClient, fresh.conn_.auth.client_nonce,
      fresh.conn_.auth.server_nonce, id, *hello.message.last_received);
  const bool proven = expected.ok() && hello.resume_proof &&
                      detail::ConstantTimeEquals(
                          absl::Span<const std::byte>(*hello.resume_proof),
                          absl::Span<const std::byte>(*expected));
  absl::Status s;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed ||
      !has_session_ || id != session_id_ || !proven) {
    s = detail::ResumeUnavailable(id);
  } else {
    InitMessage claimed = hello.message;
    claimed.agent_id = hello.agent_id;
    s = CheckResumeIdentity(claimed, hello.message.version);
    if (s.ok()) s = CheckPeerLastReceived(*hello.message.last_received);
    // Checked last, after the proof: only a holder of the token learns
    // that another connection took the session over (Endpoint).
    if (s.ok() && lost_race) {
      s = MakeError(ErrorCode::kConnectionLost,
                    absl::StrFormat("session %s was resumed on another "
                                    "connection while this one was "
                                    "handshaking",
                                    detail::HexId(id)));
    }
  }
  if (!s.ok()) {
    fresh.FailHandshake(s, now);
    fresh.EndInput(now);
    return s;
  }
  // Take the connection over (§16.2). A connection this session still
  // had (half-open) is replaced.
  if (conn_.up) {
    Emit(ConnectionLost{MakeError(ErrorCode::kConnectionLost,
                                  "replaced by a resumed connection")});
  }
  conn_ = std::move(fresh.conn_);
  fresh.conn_ = Connection{};
  fresh.state_ = SessionState::kClosed;
  Hello& h = *conn_.hello;
  h.message.agent_id = h.agent_id;
  ++counters_.connections;
  ApplyPeerLastReceived(*h.message.last_received);
  // Limits that may change on resume (ping intervals, replay window,
  // capabilities) take effect now; the others were checked equal.
  detail::FillPeer(h.message, config_.capabilities, peer_);
  peer_.version = h.message.version;
  InitMessage welcome = LocalInit(InitPhase::kWelcome);
  welcome.version = h.message.version;
  welcome.auth_data = h.welcome_auth_data;
  welcome.nonce = conn_.auth.server_nonce;
  welcome.session_id = session_id_;
  welcome.last_received = rx_seq_;
  welcome.resumed = true;
  // §16.2: the acceptor's proof of the token, bound to both nonces and to
  // its own last_received.
  auto server_proof = ComputeResumeProof(
      resume_token_, ResumeProofSide::kServer, conn_.auth.client_nonce,
      conn_.auth.server_nonce, session_id_, rx_seq_);
  SYMWIRE_ASSERT(server_proof.ok());  // the client proof was computed above
  welcome.resume_proof = *server_proof;
  SendInit(welcome);
  Establish(true, now);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL void Session::RejectResume(absl::Time now) {
  BeginInput();
  if (conn_.handshake != Handshake::kAwaitResume || !conn_.hello) return;
  // The same work and answer as a bad proof in AdoptConnection (§16.2).
  const Hello& hello = *conn_.hello;
  auto decoy = ComputeResumeProof(
      ResumeToken{}, ResumeProofSide::kClient, conn_.auth.client_nonce,
      conn_.auth.server_nonce, *hello.message.session_id,
      *hello.message.last_received);
  if (decoy.ok() && hello.resume_proof) {
    (void)detail::ConstantTimeEquals(
        absl::Span<const std::byte>(*hello.resume_proof),
        absl::Span<const std::byte>(*decoy));
  }
  FailHandshake(detail::ResumeUnavailable(*hello.message.session_id), now);
  EndInput(now);
}

// ---- tasks (§13) ----------------------------------------------------------

SYMWIRE_DECL absl::Status Session::HandleTask(const FrameView& frame,
                                              absl::Time now) {
  const TaskId id = frame.stream_id();
  if (!RoleRunsTasks(config_.role) || !RoleSendsTasks(peer_.role)) {
    absl::Status s =
        MakeError(ErrorCode::kUnexpectedFrame,
                  absl::StrFormat("AGENT_TASK %d from a %s to a %s", id,
                                  AgentRoleName(peer_.role),
                                  AgentRoleName(config_.role)));
    Fail(s, now, true);
    return s;
  }
  if (IsOwnTaskId(id) || id <= last_peer_task_id_) {
    absl::Status s = MakeError(
        ErrorCode::kTaskIdReused,
        absl::StrFormat("AGENT_TASK id %d: ids from this peer are %s and "
                        "must exceed %d",
                        id,
                        config_.side == SessionSide::kAcceptor ? "odd" : "even",
                        last_peer_task_id_));
    Fail(s, now, true);
    return s;
  }
  last_peer_task_id_ = id;
  if (peer_open_ >= config_.max_tasks) {
    absl::Status s =
        MakeError(ErrorCode::kTaskLimitExceeded,
                  absl::StrFormat("AGENT_TASK %d exceeds max_tasks %d", id,
                                  config_.max_tasks));
    Fail(s, now, true);
    return s;
  }
  if (draining_) {
    // §15.3: not processed; safe to retry elsewhere. Its slot is held until
    // the error is acknowledged, like any terminal frame (§15.1).
    ++peer_open_;
    SendInternalError(id, absl::StatusCode::kUnavailable,
                      "not processed: the peer is draining", true,
                      ErrorCode::kPeerDraining);
    HoldSlotUntilAcked();
    return absl::OkStatus();
  }
  Task t;
  t.state = TaskState::kRunning;
  if (auto us = frame.deadline_us()) {
    t.deadline = now + detail::MicrosDuration(*us);
  }
  tasks_.emplace(id, t);
  ++peer_open_;
  ++counters_.tasks_received;
  if (t.deadline) PushDeadline(*t.deadline, id);
  Emit(TaskReceived{id, frame, t.deadline});
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::CheckOwnTaskFrame(const FrameView& frame,
                                                     Task*& task) {
  const TaskId id = frame.stream_id();
  if (!IsOwnTaskId(id) || id >= next_task_id_) {
    return MakeError(
        ErrorCode::kUnknownTask,
        absl::StrFormat("%s for task %d, which this side never submitted",
                        detail::TypeName(frame.type()), id));
  }
  auto it = tasks_.find(id);
  if (it == tasks_.end()) {
    return MakeError(ErrorCode::kTaskStateViolation,
                     absl::StrFormat("%s for task %d, which has ended",
                                     detail::TypeName(frame.type()), id));
  }
  task = &it->second;
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleResponse(const FrameView& frame,
                                                  absl::Time now) {
  Task* task = nullptr;
  if (absl::Status s = CheckOwnTaskFrame(frame, task); !s.ok()) {
    Fail(s, now, true);
    return s;
  }
  const TaskId id = frame.stream_id();
  if (task->state == TaskState::kCancelling) {
    // §13.3: crossed the cancel; expected.
    ++counters_.late_frames_discarded;
    if (frame.is_final()) EndTask(id, *task);
    return absl::OkStatus();
  }
  Emit(ResponseReceived{id, frame.payload(), frame.is_final()});
  if (frame.is_final()) {
    EndTask(id, *task);
  } else {
    task->state = TaskState::kRunning;
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleTaskError(const FrameView& frame,
                                                   absl::Time now) {
  Task* task = nullptr;
  absl::Status s = CheckOwnTaskFrame(frame, task);
  auto m =
      s.ok() ? ParseError(frame.payload()) : absl::StatusOr<ErrorMessage>(s);
  if (!m.ok()) {
    Fail(m.status(), now, true);
    return m.status();
  }
  const TaskId id = frame.stream_id();
  if (task->state == TaskState::kCancelling) {
    ++counters_.late_frames_discarded;
    EndTask(id, *task);
    return absl::OkStatus();
  }
  absl::Status status = MakeError(
      m->code, m->detail == ErrorCode::kOk ? ErrorCode::kPeerError : m->detail,
      m->message);
  Emit(TaskFailed{id, std::move(status), m->retryable});
  EndTask(id, *task);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleCancel(const FrameView& frame,
                                                absl::Time now) {
  const TaskId id = frame.stream_id();
  if (IsOwnTaskId(id) || id > last_peer_task_id_) {
    absl::Status s = MakeError(
        ErrorCode::kUnknownTask,
        absl::StrFormat("AGENT_CANCEL for task %d, which the peer never "
                        "submitted",
                        id));
    Fail(s, now, true);
    return s;
  }
  auto m = ParseCancel(frame.payload());
  if (!m.ok()) {
    Fail(m.status(), now, true);
    return m.status();
  }
  auto it = tasks_.find(id);
  if (it == tasks_.end()) {
    // §13.3: the task ended; our terminal frame crossed the cancel.
    ++counters_.late_frames_discarded;
    return absl::OkStatus();
  }
  const bool deadline = m->reason == absl::StatusCode::kDeadlineExceeded;
  absl::Status status =
      deadline
          ? absl::DeadlineExceededError(absl::StrFormat(
                "task %d: deadline exceeded (cancelled by the submitter)", id))
          : absl::CancelledError(
                absl::StrFormat("task %d: cancelled by the submitter", id));
  Emit(TaskCancelled{id, status, false});
  SendInternalError(id, m->reason, deadline ? "deadline exceeded" : "cancelled",
                    false, ErrorCode::kOk);
  EndTask(id, it->second);
  return absl::OkStatus();
}

// ---- SYNC (§14, §15.3) --------------------------------------------------

SYMWIRE_DECL absl::Status Session::HandleAck(uint64_t ack, absl::Time now) {
  if (ack > next_seq_ - 1) {
    absl::Status s =
        MakeError(ErrorCode::kBadAck,
                  absl::StrFormat("ack %d is beyond the last sequence sent, %d",
                                  ack, next_seq_ - 1));
    Fail(s, now, true);
    return s;
  }
  ++counters_.acks_received;
  if (ack <= acked_) return absl::OkStatus();
  acked_ = ack;
  FreeAcked(ack);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleSync(const FrameView& frame,
                                              absl::Time now) {
  auto m = ParseSync(frame.payload());
  if (!m.ok()) {
    Fail(m.status(), now, true);
    return m.status();
  }
  // §14.1: what this SYNC brings that is new, decided before it is applied.
  const bool useful = (m->ack && *m->ack > acked_) || m->ping ||
                      (m->pong && conn_.pings_unanswered > 0) ||
                      (m->drain && !peer_draining_) || m->bye;
  if (m->pong && conn_.pings_unanswered > 0) --conn_.pings_unanswered;
  if (absl::Status s = CountProgress(
          useful, frame, conn_.decoder.stream_offset() - frame.size(), now);
      !s.ok()) {
    return s;
  }
  if (m->ack) {
    if (absl::Status s = HandleAck(*m->ack, now); !s.ok()) return s;
  }
  if (m->ping) {
    // §14.1: strikes for pings faster than we accept.
    Connection& c = conn_;
    if (c.last_ping_rx != absl::InfinitePast() &&
        now - c.last_ping_rx < config_.min_peer_ping_interval / 2) {
      if (++c.ping_strikes > config_.max_ping_strikes) {
        absl::Status s = MakeError(
            ErrorCode::kPingFlood,
            absl::StrFormat(
                "%d pings closer than half of "
                "min_peer_ping_interval (%s)",
                c.ping_strikes,
                absl::FormatDuration(config_.min_peer_ping_interval)));
        Fail(s, now, true);
        return s;
      }
    } else {
      c.ping_strikes = 0;
    }
    c.last_ping_rx = now;
    c.sync.pong = *m->ping;  // a newer ping replaces a pending pong
  }
  if (m->pong) {
    const uint64_t t = ClockMicros(now);
    if (*m->pong <= t) {
      const absl::Duration sample = detail::MicrosDuration(t - *m->pong);
      ++counters_.pongs_received;
      counters_.rtt_last = sample;
      counters_.rtt_smoothed =
          counters_.pongs_received == 1
              ? sample
              : counters_.rtt_smoothed * 7 / 8 + sample / 8;
    }
  }
  if (m->drain && !peer_draining_) {
    peer_draining_ = true;
    Emit(PeerDraining{*m->drain});
  }
  if (m->bye) {
    // §15.3: the peer ended the session. A bye that does not answer ours
    // is answered with bye (its sender waits for it), then both end.
    if (!conn_.bye_sent) {
      conn_.sync.bye = true;
      FlushSync(now);
      conn_.bye_sent = true;
    }
    EndClosed(now);
  }
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::HandleSessionError(const FrameView& frame,
                                                      absl::Time now) {
  auto m = ParseError(frame.payload());
  if (!m.ok()) {
    Fail(m.status(), now, false);
    return m.status();
  }
  // §7, §16.1, §18: a detail of connection scope (a framing error, a
  // timeout) ends only the connection; the session resumes as after any
  // loss. PAYLOAD_TOO_LARGE after the handshake has session scope (§15.2).
  const bool conn_scope = m->detail != ErrorCode::kOk &&
                          ScopeOf(m->detail) == ErrorScope::kConnection &&
                          !(m->detail == ErrorCode::kPayloadTooLarge &&
                            conn_.handshake == Handshake::kDone);
  if (conn_scope) {
    absl::Status lost =
        MakeError(m->code, m->detail,
                  absl::StrFormat("peer ended the connection: %s: %s",
                                  ErrorCodeName(m->detail), m->message));
    ConnectionFailed(lost, now);
    return lost;
  }
  // §15.3: a side that said bye with nothing outstanding and cannot resume
  // (the acceptor ended the session on that bye) has closed.
  if (bye_sent_ && tasks_.empty() && conn_.handshake != Handshake::kDone) {
    conn_.closing = true;
    conn_.up = false;
    EndClosed(now);
    return absl::OkStatus();
  }
  // The peer's detail code, when it is a session-scope one, is the most
  // precise reason (e.g. SESSION_EXPIRED); PEER_ERROR otherwise, so a peer
  // cannot make this failure look local or resumable (ScopeOf).
  const bool precise = m->detail != ErrorCode::kOk &&
                       ScopeOf(m->detail) == ErrorScope::kSession &&
                       IsFatal(m->detail);
  absl::Status s = MakeError(
      m->code, precise ? m->detail : ErrorCode::kPeerError,
      absl::StrFormat(
          "peer ended the session: %s: %s",
          m->detail == ErrorCode::kOk ? "-" : ErrorCodeName(m->detail),
          m->message));
  Fail(s, now, false);
  return s;
}

// ---- API inputs -------------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<TaskId> Session::SubmitTask(
    absl::Span<const std::byte> payload, const TaskOptions& options,
    absl::Time now) {
  ObserveNow(now);
  BeginInput();
  absl::Status s;
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    s = EndedError();
  } else if (!has_session_) {
    s = MakeError(ErrorCode::kWrongState, "session not established yet");
  } else if (draining_) {
    s = MakeError(ErrorCode::kSessionClosed, "session is draining");
  } else if (peer_draining_) {
    s = MakeError(ErrorCode::kPeerDraining,
                  "peer is draining; submit elsewhere");
  } else if (!RoleSendsTasks(config_.role) || !RoleRunsTasks(peer_.role)) {
    s = MakeError(ErrorCode::kWrongState,
                  absl::StrFormat("a %s may not submit tasks to a %s",
                                  AgentRoleName(config_.role),
                                  AgentRoleName(peer_.role)));
  } else if (payload.size() > peer_.max_payload_bytes) {
    s = MakeError(ErrorCode::kFrameTooLarge,
                  absl::StrFormat("payload of %d bytes exceeds the peer's "
                                  "max_payload_bytes %d",
                                  payload.size(), peer_.max_payload_bytes));
  } else if (own_open_ >= peer_.max_tasks) {
    blocked_ = true;
    s = MakeError(ErrorCode::kNoCredit,
                  absl::StrFormat("%d tasks open, the peer's max_tasks; wait "
                                  "for Writable",
                                  own_open_));
  } else if (options.deadline && *options.deadline < absl::ZeroDuration()) {
    s = MakeError(ErrorCode::kInvalidFrame, "negative task deadline");
  }
  if (!s.ok()) {
    CountError(s);
    return s;
  }
  const TaskId id = next_task_id_;
  FrameHeader header;
  header.type = MessageType::kAgentTask;
  // §10.1: an empty payload never carries a checksum.
  header.flags =
      config_.payload_checksums && !payload.empty() ? kFlagChecksum : 0;
  header.stream_id = id;
  FrameExtensions ext;
  if (options.deadline) {
    ext.deadline_us = detail::DurationMicros(*options.deadline);
  }
  ext.trace_parent = options.trace_parent;
  ext.trace_state = options.trace_state;
  ext.metadata = options.metadata;
  s = EncodeSequenced(header, ext, payload, false);
  if (!s.ok()) {
    if (GetErrorCode(s) == ErrorCode::kReplayBufferFull) blocked_ = true;
    CountError(s);
    return s;
  }
  next_task_id_ += 2;
  Task t;
  t.state = TaskState::kSubmitted;
  t.own = true;
  t.seq = next_seq_ - 1;
  t.end_pos = store_.end();
  if (options.deadline) t.deadline = now + *options.deadline;
  tasks_.emplace(id, t);
  ++own_open_;
  ++counters_.tasks_submitted;
  if (t.deadline) PushDeadline(*t.deadline, id);
  EndInput(now);
  return id;
}

SYMWIRE_DECL absl::Status Session::SendResponse(
    TaskId task, absl::Span<const std::byte> payload, bool final,
    absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  auto it = tasks_.find(task);
  if (it == tasks_.end() || it->second.own) {
    return LocalError(
        ErrorCode::kWrongState,
        absl::StrFormat("task %d is not running on this side", task));
  }
  if (payload.size() > peer_.max_payload_bytes) {
    return LocalError(ErrorCode::kFrameTooLarge,
                      absl::StrFormat("payload of %d bytes exceeds the peer's "
                                      "max_payload_bytes %d",
                                      payload.size(), peer_.max_payload_bytes));
  }
  FrameHeader header;
  header.type = MessageType::kAgentResponse;
  // §10.1: an empty payload never carries a checksum.
  header.flags = static_cast<uint8_t>(
      (config_.payload_checksums && !payload.empty() ? kFlagChecksum : 0) |
      (final ? kFlagFinal : 0));
  header.stream_id = task;
  absl::Status s = EncodeSequenced(header, FrameExtensions{}, payload, false);
  if (!s.ok()) {
    if (GetErrorCode(s) == ErrorCode::kReplayBufferFull) blocked_ = true;
    CountError(s);
    return s;
  }
  if (final) EndTask(task, it->second);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::FailTask(TaskId task,
                                            const absl::Status& status,
                                            bool retryable, absl::Time now) {
  ObserveNow(now);
  SYMWIRE_REQUIRE(!status.ok());
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  auto it = tasks_.find(task);
  if (it == tasks_.end() || it->second.own) {
    return LocalError(
        ErrorCode::kWrongState,
        absl::StrFormat("task %d is not running on this side", task));
  }
  const int code = static_cast<int>(status.code());
  const ErrorCode detail = GetErrorCode(status);
  SendInternalError(
      task,
      code >= 1 && code <= 16 ? status.code() : absl::StatusCode::kUnknown,
      status.message(), retryable, detail);
  EndTask(task, it->second);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::CancelTask(TaskId task, absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  auto it = tasks_.find(task);
  if (it == tasks_.end() || !it->second.own ||
      it->second.state == TaskState::kCancelling) {
    return LocalError(
        ErrorCode::kWrongState,
        absl::StrFormat("task %d is not an open task submitted here", task));
  }
  it->second.state = TaskState::kCancelling;
  Emit(TaskCancelled{
      task, absl::CancelledError(absl::StrFormat("task %d: cancelled", task)),
      true});
  SendCancel(task, absl::StatusCode::kCancelled);
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL absl::Status Session::Close(absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return EndedError();
  }
  if (!has_session_) {
    state_ = SessionState::kClosed;
    conn_.closing = conn_.up;
    conn_.up = false;
    Emit(SessionClosed{});
    return absl::OkStatus();
  }
  if (!closing_) {
    closing_ = draining_ = true;
    drain_last_ = last_peer_task_id_;
    conn_.sync.drain = drain_last_;  // sent now, or on resume (Establish)
  }
  EndInput(now);
  return absl::OkStatus();
}

SYMWIRE_DECL void Session::Abort(const absl::Status& status, absl::Time now) {
  ObserveNow(now);
  SYMWIRE_REQUIRE(!status.ok());
  BeginInput();
  Fail(status, now, true);
}

SYMWIRE_DECL void Session::HandleTimeout(absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  Connection& c = conn_;
  if (c.up && !c.closing) {
    if (c.handshake != Handshake::kDone) {
      if (now >= c.handshake_deadline) {
        ConnectionFailed(
            MakeError(ErrorCode::kHandshakeTimeout,
                      absl::StrFormat(
                          "handshake not completed within %s",
                          absl::FormatDuration(config_.handshake_timeout))),
            now);
      }
    } else if (now >= c.bye_deadline) {
      // §15.3: our bye went unanswered: treat the connection as dead (it
      // may be half-open). The initiator resumes to say bye again; either
      // side ends closed if the session cannot be resumed in its window.
      ConnectionFailed(
          MakeError(
              ErrorCode::kPeerUnresponsive,
              absl::StrFormat("bye not answered within %s",
                              absl::FormatDuration(config_.handshake_timeout))),
          now);
    } else if (!c.rx.empty() && now >= c.rx_since + config_.frame_timeout) {
      // §14.1: bytes trickling in are liveness, but a frame must complete.
      ConnectionFailed(
          MakeError(ErrorCode::kPeerUnresponsive,
                    absl::StrFormat("frame started at stream offset %d not "
                                    "complete after %s (%d bytes of at least "
                                    "%d)",
                                    c.rx_since_offset,
                                    absl::FormatDuration(now - c.rx_since),
                                    c.rx.size(), c.rx_need)),
          now);
    } else if (now >= c.last_rx + config_.dead_peer_timeout) {
      ConnectionFailed(
          MakeError(ErrorCode::kPeerUnresponsive,
                    absl::StrFormat("nothing received for %s",
                                    absl::FormatDuration(now - c.last_rx))),
          now);
    } else {
      if (now >= c.next_ping) {
        c.sync.ping = ClockMicros(now);
        ++counters_.pings_sent;
        ++c.pings_unanswered;
        c.next_ping = now + EffectivePingInterval();
      }
      if (now >= c.ack_deadline) c.sync.ack = true;
    }
  }
  if (state_ != SessionState::kFailed && state_ != SessionState::kClosed) {
    RunTaskDeadlines(now);
  }
  if (state_ == SessionState::kDisconnected ||
      state_ == SessionState::kHandshaking) {
    if (now >= expire_at_ && bye_sent_ && tasks_.empty()) {
      // §15.3: the bye went out with nothing outstanding; only its answer
      // (or the bye itself) was lost with the connection.
      EndClosed(now);
    } else if (now >= expire_at_) {
      Fail(MakeError(ErrorCode::kSessionExpired,
                     absl::StrFormat("disconnected for longer than the resume "
                                     "window (%s)",
                                     absl::FormatDuration(
                                         config_.side == SessionSide::kAcceptor
                                             ? config_.resume_window
                                             : peer_.resume_window))),
           now, false);
    } else if (config_.side == SessionSide::kInitiator &&
               state_ == SessionState::kDisconnected && now >= reconnect_at_) {
      reconnect_at_ = absl::InfiniteFuture();
      Emit(ReconnectDue{attempt_});
    }
  }
  EndInput(now);
}

SYMWIRE_DECL void Session::TransportLost(const absl::Status& reason,
                                         absl::Time now) {
  ObserveNow(now);
  BeginInput();
  if (state_ == SessionState::kFailed || state_ == SessionState::kClosed) {
    return;
  }
  absl::Status status =
      GetErrorCode(reason) != ErrorCode::kOk
          ? reason
          : MakeError(ErrorCode::kConnectionLost,
                      absl::StrFormat("transport lost: %s", reason.message()));
  if (conn_.up) {
    ConnectionFailed(status, now);
  } else if (config_.side == SessionSide::kInitiator &&
             state_ == SessionState::kDisconnected &&
             reconnect_at_ == absl::InfiniteFuture()) {
    // A dial after ReconnectDue failed: back off further.
    CountError(status);
    ScheduleReconnect(now);
  }
  EndInput(now);
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_SESSION_IPP_
