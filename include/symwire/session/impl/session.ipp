// File: symwire/session/impl/session.ipp
// Out-of-line bodies for session/session.hpp: the session state machine of
// SPEC.md §10-§19. Section references in comments are to SPEC.md. This part:
// construction, helpers, transmission, encoding and the receive path up to
// the frame handlers; the rest is in session_state.ipp (state changes),
// session_handshake.ipp (§12, §16), session_frames.ipp (§13-§15 frames) and
// session_api.ipp (the calls of the driver and the application).
#ifndef SYMWIRE_SESSION_IMPL_SESSION_IPP_
#define SYMWIRE_SESSION_IMPL_SESSION_IPP_

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "symwire/session/detail/handshake.hpp"
#include "symwire/session/detail/session_text.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/detail/plain_frame.hpp"
#include "symwire/wire/encoder.hpp"

namespace symwire {

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

inline void Session::EndInput(absl::Time now) {
  // Each returns at once without its flag; tested here, the usual input
  // (a response sent, nothing blocked, closing or pending) makes no call.
  if (blocked_) MaybeWritable();
  if (closing_) MaybeFinishClose(now);
  if (conn_.sync.any()) FlushSync(now);
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
    if (send_pos_ == store_.end()) acks_.MarkAllSent();
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
  absl::Time t = absl::InfiniteFuture();
  for (detail::Timer timer : detail::kTimerOrder) {
    if (TimerArmed(timer)) t = std::min(t, TimersOf(timer).Get(timer));
  }
  return t;
}

SYMWIRE_DECL bool Session::TimerArmed(detail::Timer timer) const {
  const Connection& c = conn_;
  switch (detail::ScopeOf(timer)) {
    case detail::TimerScope::kHandshake:
      return c.up && !c.closing && c.handshake != Handshake::kDone;
    case detail::TimerScope::kEstablished:
      return c.up && !c.closing && c.handshake == Handshake::kDone;
    case detail::TimerScope::kSession:
      break;
  }
  return state_ != SessionState::kFailed && state_ != SessionState::kClosed;
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

inline bool Session::HasReplayCredit(size_t frame_size) const {
  // §15.1. An empty buffer takes any one frame, so a frame larger than the
  // window is slow, never stuck.
  return replay_.empty() || (replay_.size() < config_.replay_frames &&
                             store_.end() - replay_.front().pos + frame_size <=
                                 config_.replay_bytes);
}

SYMWIRE_DECL absl::Status Session::CheckReplayCredit(size_t frame_size) const {
  if (!HasReplayCredit(frame_size)) {
    return MakeError(
        ErrorCode::kReplayBufferFull,
        absl::StrFormat("send window full: %d frames / %d bytes unacknowledged "
                        "(limits %d / %d); wait for Writable",
                        replay_.size(), replay_bytes_in_use(),
                        config_.replay_frames, config_.replay_bytes));
  }
  return absl::OkStatus();
}

// Inline (every caller is in this translation unit): the plain path runs
// in the caller's frame, without a call of its own.
inline absl::Status Session::EncodeSequenced(
    FrameHeader& header, const FrameExtensions& extensions,
    absl::Span<const std::byte> payload, bool bypass_credit,
    const std::shared_ptr<const void>* payload_owner) {
  header.sequence = acks_.next_sequence();
  if ((&extensions == &kNoExtensions || extensions.empty()) &&
      (payload_owner == nullptr || payload.size() < kMinReferencedPayload)) {
    // A plain frame, copied: every check below in one branch, the frame
    // written inline (wire/detail/plain_frame.hpp). A frame it refuses
    // takes the general path, which names the error.
    const size_t header_size = detail::PlainHeaderSize(header, payload.size());
    const size_t size =
        detail::PlainFrameSize(header, header_size, payload.size());
    if (SYMWIRE_LIKELY(
            header_size != 0 &&
            (!has_session_ || header_size <= peer_.max_header_bytes) &&
            (bypass_credit || HasReplayCredit(size)))) {
      const uint64_t at = store_.end();
      const size_t n = detail::EncodePlain(header, header_size, payload,
                                           store_.Append(size).data());
      SYMWIRE_ASSERT(n == size);
      (void)n;
      replay_.push_back(
          ReplayEntry{acks_.TakeSequence(), at, static_cast<uint32_t>(size)});
      ++counters_.frames_out;
      return absl::OkStatus();
    }
  }
  return EncodeSequencedGeneral(header, extensions, payload, bypass_credit,
                                payload_owner);
}

SYMWIRE_DECL absl::Status Session::EncodeSequencedGeneral(
    const FrameHeader& header, const FrameExtensions& extensions,
    absl::Span<const std::byte> payload, bool bypass_credit,
    const std::shared_ptr<const void>* payload_owner) {
  SYMWIRE_ASSERT(header.sequence == acks_.next_sequence());
  // Checked and measured once: the plan sizes the store's space and then
  // writes into it (EncodedHeaderSize followed by EncodeFrame did it twice).
  auto plan = detail::PlanFrame(header, extensions, payload.size());
  if (!plan.ok()) return plan.status();
  const size_t header_size = plan->header_size;
  if (has_session_ && header_size > peer_.max_header_bytes) {
    return MakeError(ErrorCode::kFrameTooLarge,
                     absl::StrFormat("header of %d bytes exceeds the peer's "
                                     "max_header_bytes %d",
                                     header_size, peer_.max_header_bytes));
  }
  const size_t size = plan->FrameSize(header, payload.size());
  if (!bypass_credit) {
    if (absl::Status s = CheckReplayCredit(size); !s.ok()) return s;
  }
  const uint64_t at = store_.end();
  if (payload_owner != nullptr && payload.size() >= kMinReferencedPayload) {
    // The header and trailer are stored, the payload referenced (ReplayStore
    // "Referenced payloads"): the same bytes EncodeFrame would write.
    const GatherFrame frame = detail::EncodeGatherPlanned(
        *plan, header, extensions, payload, store_.Append(header_size).data());
    SYMWIRE_ASSERT(frame.size() == size);
    store_.AppendShared(payload, *payload_owner);
    const absl::Span<const std::byte> trailer = frame.trailer();
    if (!trailer.empty()) {
      std::memcpy(store_.Append(trailer.size()).data(), trailer.data(),
                  trailer.size());
    }
  } else {
    const size_t n = detail::EncodePlanned(*plan, header, extensions, payload,
                                           store_.Append(size).data());
    SYMWIRE_ASSERT(n == size);
    (void)n;
  }
  replay_.push_back(
      ReplayEntry{acks_.TakeSequence(), at, static_cast<uint32_t>(size)});
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
  s = EncodeSequenced(header, kNoExtensions, payload, true);
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
  s = EncodeSequenced(h, kNoExtensions, payload, true);
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
  if (acks_.received() > 0) m.ack = acks_.received();
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
  if (acks_.MarkAckSent() && m.ack) ++counters_.acks_sent;
  c.timers.Clear(detail::Timer::kAck);
  (void)now;
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
  conn_.timers.Set(detail::Timer::kDeadPeer, now + config_.dead_peer_timeout);
  conn_.timers.Set(detail::Timer::kHandshake, now + config_.handshake_timeout);
  ++counters_.connections;
  timers_.Clear(detail::Timer::kReconnect);
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
    InitMessage hello = detail::LocalInit(config_, InitPhase::kHello);
    hello.auth_data = *data;
    hello.nonce = conn_.auth.client_nonce;
    if (has_session_) {
      // §16.2: the token itself never goes out again; PROOF proves it.
      hello.session_id = session_id_;
      hello.last_received = acks_.received();
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
  if (!bytes.empty()) {  // §14.1: any byte is liveness
    c.last_rx = now;
    c.timers.Set(detail::Timer::kDeadPeer, now + config_.dead_peer_timeout);
  }
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
    c.timers.Clear(detail::Timer::kFrame);
    c.rx_frame_end = c.decoder.stream_offset();
    status = ProcessStep(*step, now);
  }
  // 2. Whole frames straight from the caller's bytes (no copy).
  while (c.rx.empty() && !bytes.empty() && !stop()) {
    if (c.handshake == Handshake::kDone) {
      // Established, the decoder's limits stay as Establish set them, so
      // frames may be decoded ahead of their handling: a batch at a time
      // (the same checks and errors as single steps, in fewer instructions
      // per frame: bench/README.md, "Batch decode in the session"), each
      // then handled in order as if decoded alone. No preface here.
      const uint64_t base_offset = c.decoder.stream_offset();
      const std::byte* const base = bytes.data();
      auto batch = c.decoder.DecodeBatch(bytes, absl::MakeSpan(batch_));
      if (!batch.ok()) {
        status = DecodeFailed(batch.status(), now);
        break;
      }
      SYMWIRE_ASSERT(batch->wire_version == 0);
      for (size_t k = 0; k < batch->frames && !stop(); ++k) {
        const FrameView& frame = batch_[k];
        SYMWIRE_ASSERT(frame.bytes().data() == bytes.data());
        bytes.remove_prefix(frame.size());
        c.rx_frame_end =
            base_offset + static_cast<uint64_t>(bytes.data() - base);
        status = HandleFrame(frame, now);
      }
      if (stop() || batch->bytes_needed == 0 || bytes.empty()) continue;
      KeepPartialFrame(bytes, batch->bytes_needed, now);
      bytes = {};
      break;
    }
    auto step = c.decoder.Decode(bytes);
    if (!step.ok()) {
      status = DecodeFailed(step.status(), now);
      break;
    }
    if (step->kind == DecodeStep::Kind::kNeedMore) {
      KeepPartialFrame(bytes, step->bytes_needed, now);
      bytes = {};
      break;
    }
    bytes.remove_prefix(step->consumed);
    c.rx_frame_end = c.decoder.stream_offset();
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

SYMWIRE_DECL void Session::KeepPartialFrame(absl::Span<const std::byte> bytes,
                                            uint32_t bytes_needed,
                                            absl::Time now) {
  // The first bytes of a frame (§14.1 frame_timeout runs from here), kept
  // until the decoder's count has arrived.
  Connection& c = conn_;
  c.rx_since = now;
  c.timers.Set(detail::Timer::kFrame, now + config_.frame_timeout);
  c.rx_since_offset = c.decoder.stream_offset();
  c.rx.assign(bytes.begin(), bytes.end());
  c.rx_need =
      std::max<uint32_t>(bytes_needed, static_cast<uint32_t>(c.rx.size()) + 1);
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
  const uint64_t offset = conn_.rx_frame_end - frame.size();
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
    const uint64_t expected = acks_.received() + 1;
    switch (acks_.OnSequenced(seq, frame.size())) {
      case detail::AckTracker::RxKind::kGap: {
        absl::Status s = MakeError(
            ErrorCode::kSequenceGap,
            absl::StrFormat("%s sequence %d at stream offset %d; expected %d",
                            detail::TypeName(type), seq, offset, expected));
        Fail(s, now, true);
        return s;
      }
      case detail::AckTracker::RxKind::kDuplicate:
        ++counters_.duplicates_discarded;
        return CountProgress(false, frame, offset, now);
      case detail::AckTracker::RxKind::kNew:
        break;
    }
    conn_.noop_frames = 0;  // §14.1: a new sequenced frame is progress
    // §14.2: coalesced acks, every sixteenth of the peer's window: the
    // sender's live replay store stays small enough to stay in cache (a
    // quarter, the first choice, kept megabytes live and made every copy
    // into it a cache miss at 16 KiB payloads), for one small SYNC per
    // 4096 frames or 512 KiB with the default window.
    if (acks_.AckDue(
            std::max<uint64_t>(1, peer_.replay_frames / kAckFraction),
            std::max<uint64_t>(1, peer_.replay_bytes / kAckFraction))) {
      conn_.sync.ack = true;
    } else if (!conn_.timers.IsSet(detail::Timer::kAck)) {
      conn_.timers.Set(detail::Timer::kAck, now + config_.ack_delay);
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

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_SESSION_IPP_
