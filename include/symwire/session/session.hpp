// File: symwire/session/session.hpp
// Layer 2 (session). Session: the sans-I/O state machine of SPEC.md
// §10-§19 — handshake and authentication, task lifecycle, cancellation,
// deadlines, heartbeats, coalesced acknowledgements, credit, drain, and
// lossless resumption across connections.
//
// It takes bytes and the current time and gives back bytes to send, events
// and its next deadline. It owns no socket, clock, timer, thread or global
// random source: every behaviour is reproducible on a simulated clock.
//
//   inputs (each takes `now`): TransportConnected, Receive, SubmitTask,
//     SendResponse, FailTask, CancelTask, Close, Abort, HandleTimeout,
//     TransportLost
//   outputs: PollTransmit, PollEvent, NextDeadline, ConnectionClosing
//
// On the acceptor side, an Endpoint (endpoint.hpp) creates the session of
// each new connection and moves a resuming connection to the session it
// names: no Session changes another through its public API.
//
// (STYLE.md names a generic Send(type, payload); the session instead offers
// one input per legal action, so a caller cannot break the task lifecycle
// by sending, e.g., a RESPONSE for a task it never received.)
//
// A driver's loop: after TransportConnected and after every input, write
// every span PollTransmit returns (until it returns an empty one; gather
// them into one vectored write), deliver every event PollEvent returns, then
// if ConnectionClosing() close the transport; arm one timer at
// NextDeadline() and call HandleTimeout when it fires; call TransportLost
// when the transport fails.
//
// Thread-compatible: one thread at a time.
#ifndef SYMWIRE_SESSION_SESSION_HPP_
#define SYMWIRE_SESSION_SESSION_HPP_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/error.hpp"
#include "symwire/session/auth.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/detail/ack_tracker.hpp"
#include "symwire/session/detail/deadlines.hpp"
#include "symwire/session/detail/replay_store.hpp"
#include "symwire/session/detail/ring.hpp"
#include "symwire/session/event.hpp"
#include "symwire/session/methods.hpp"
#include "symwire/shared_payload.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

namespace detail {
class SessionHandover;
}  // namespace detail

// kAckFraction: a receiver acknowledges once a 1/kAckFraction of the peer's
// replay window (frames or bytes) is unacknowledged (SPEC.md §14.2).
inline constexpr uint64_t kAckFraction = 16;

// SessionState
enum class SessionState : uint8_t {
  kIdle,          // created; no connection yet
  kHandshaking,   // a connection is up, its handshake is running
  kEstablished,   // tasks flow
  kDisconnected,  // no connection; state kept for resumption
  kClosed,        // ended gracefully, or its connection was handed over
                  // to the session it resumed (Endpoint)
  kFailed,        // ended on an error (sticky; see status())
};
SYMWIRE_DECL absl::string_view SessionStateName(SessionState state) noexcept;

// TaskState: a task's state as seen by this side (SPEC.md §13.2).
enum class TaskState : uint8_t {
  kNone,        // not open here (never existed, or ended)
  kSubmitted,   // submitted here; no response yet
  kRunning,     // submitted here and a partial response arrived, or
                // received here and not yet ended
  kCancelling,  // submitted here, cancelled (terminal event delivered);
                // waiting for the peer's terminal frame
};

// TaskOptions: what SubmitTask sends besides the payload.
struct TaskOptions {
  // Relative budget (SPEC.md §13.4); microsecond resolution, >= 0.
  std::optional<absl::Duration> deadline;
  std::optional<TraceParent> trace_parent;
  absl::string_view trace_state;
  absl::Span<const MetadataEntry> metadata;
  // The task's method (SPEC.md §5.1, §13.5); empty = none. 1..255 bytes of
  // 0x21..0x7e (else INVALID_FRAME); only to a peer that announced
  // kCapMethods (else UNIMPLEMENTED, nothing sent).
  absl::string_view method;
};

// PeerInfo: the peer's identity and announced limits, from its handshake.
struct PeerInfo {
  std::string agent_id;
  AgentRole role = AgentRole::kPeer;
  uint64_t version = 0;       // the negotiated session version
  uint64_t capabilities = 0;  // the peer's bits
  uint64_t negotiated_capabilities = 0;
  uint64_t max_payload_bytes = 0;
  uint64_t max_header_bytes = 0;
  uint64_t max_tasks = 0;
  uint64_t replay_bytes = 0;
  uint64_t replay_frames = 0;
  absl::Duration ping_interval;
  absl::Duration min_ping_interval;
  absl::Duration resume_window;  // acceptor's, as announced in WELCOME
};

// SessionCounters: for export to metrics systems. Monotonic.
struct SessionCounters {
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t retransmitted_frames = 0;
  uint64_t duplicates_discarded = 0;   // sequenced frames seen twice
  uint64_t late_frames_discarded = 0;  // frames that crossed a cancel
  uint64_t connections = 0;
  uint64_t resumes = 0;
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t acks_sent = 0;
  uint64_t acks_received = 0;
  uint64_t tasks_submitted = 0;
  uint64_t tasks_received = 0;
  absl::Duration rtt_last = absl::ZeroDuration();
  absl::Duration rtt_smoothed = absl::ZeroDuration();
  // Indexed by ErrorCode value (0..127): errors that ended a connection or
  // the session, and local refusals.
  std::array<uint64_t, 128> errors_by_code{};
};

// Session
// Create one per logical session. REQUIRES for every input: `now` never
// decreases from call to call. TransportConnected, Receive, SubmitTask,
// SendResponse, FailTask, CancelTask, Close, Abort, HandleTimeout and
// TransportLost check it with SYMWIRE_REQUIRE (abort: a decreasing `now` is
// a driver bug, e.g. a cached time handed out after a fresher one).
class Session {
 public:
  // Create
  // Errors: kInvalidArgument if ValidateConfig fails.
  SYMWIRE_DECL static absl::StatusOr<std::unique_ptr<Session>> Create(
      SessionConfig config, absl::Time now);

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  SYMWIRE_DECL ~Session();

  // ---- inputs -------------------------------------------------------

  // TransportConnected
  // A new connection is up: the session queues its preface (and, on the
  // initiator, HELLO, resuming if it was established before) and starts
  // the handshake timer. Errors: WRONG_STATE if a connection is already up
  // or the session was never able to (acceptor after its first connection);
  // SESSION_CLOSED if the session ended.
  SYMWIRE_DECL absl::Status TransportConnected(absl::Time now);

  // Receive
  // Feeds bytes read from the connection (any split). Events, bytes to send
  // and timers follow. Spans in the events point into `bytes` or the
  // session's buffer: keep `bytes` unchanged until the next Receive.
  // Returns OK, or the error that ended the connection or the session by
  // this call (also reported as ConnectionLost / SessionFailed). Errors
  // that consume nothing (call again after fixing the cause): WRONG_STATE
  // if a TaskReceived or ResponseReceived from an earlier Receive is still
  // queued (its spans would dangle: drain PollEvent first) or no connection
  // is up; the sticky failure once the session failed.
  SYMWIRE_DECL absl::Status Receive(absl::Span<const std::byte> bytes,
                                    absl::Time now);

  // SubmitTask
  // Sends a new task; returns its id. May be called while disconnected
  // after the first handshake (the task is sent on resume).
  // Errors (local, nothing sent): SESSION_CLOSED (ended or draining),
  // WRONG_STATE (never established; or the roles do not allow this side to
  // submit), PEER_DRAINING, FRAME_TOO_LARGE (payload or header above the
  // peer's limits), NO_CREDIT (the peer's max_tasks reached),
  // REPLAY_BUFFER_FULL (send window full) — the last two are followed by a
  // Writable event; INVALID_FRAME / VARINT_OUT_OF_RANGE for options the
  // wire format cannot carry.
  // (Inline, as SendResponse below: `now` reaches the work in registers.)
  absl::StatusOr<TaskId> SubmitTask(absl::Span<const std::byte> payload,
                                    const TaskOptions& options,
                                    absl::Time now) {
    return SubmitTaskImpl(now, payload, nullptr, options);
  }
  // The same, with the payload handed over instead of copied: the replay
  // store keeps a reference to it (shared_payload.hpp) until the frame is
  // acknowledged, and the frame is byte for byte what the copying overload
  // sends. Payloads under kMinReferencedPayload bytes are copied all the
  // same (a copy of so few bytes costs less than a separate piece to
  // write). Same errors; on error the store keeps no reference.
  absl::StatusOr<TaskId> SubmitTask(const SharedPayload& payload,
                                    const TaskOptions& options,
                                    absl::Time now) {
    return SubmitTaskImpl(now, payload.bytes(), &payload.owner(), options);
  }
  static constexpr size_t kMinReferencedPayload = 1024;

  // SendResponse
  // Streams a partial (final == false) or the final response of a task
  // this side received. Errors: WRONG_STATE (no such running task),
  // SESSION_CLOSED, FRAME_TOO_LARGE, REPLAY_BUFFER_FULL (then Writable).
  // (Inline: called out of line, `now` went on the stack behind the other
  // arguments and was read back in one 16-byte load spanning the caller's
  // two narrower stores, a failed store forward per response; see
  // bench/README.md, "Arguments that cannot be forwarded".)
  absl::Status SendResponse(TaskId task, absl::Span<const std::byte> payload,
                            bool final, absl::Time now) {
    return SendResponseImpl(task, now, payload, nullptr, final);
  }
  // The same, with the payload handed over (see SubmitTask).
  absl::Status SendResponse(TaskId task, const SharedPayload& payload,
                            bool final, absl::Time now) {
    return SendResponseImpl(task, now, payload.bytes(), &payload.owner(),
                            final);
  }

  // FailTask
  // Ends a task this side received with an error (its terminal frame).
  // Never refused for credit: at most one per open task. REQUIRES:
  // !status.ok(). Errors: WRONG_STATE, SESSION_CLOSED.
  SYMWIRE_DECL absl::Status FailTask(TaskId task, const absl::Status& status,
                                     bool retryable, absl::Time now);

  // CancelTask
  // Cancels a task this side submitted: its terminal event TaskCancelled
  // (kCancelled) is queued at once, and late frames are absorbed (SPEC.md
  // §13.3). Never refused for credit. Errors: WRONG_STATE (not open, or
  // already cancelling), SESSION_CLOSED.
  SYMWIRE_DECL absl::Status CancelTask(TaskId task, absl::Time now);

  // Close
  // Graceful close (SPEC.md §15.3): drain, let open tasks finish, then bye;
  // SessionClosed once the peer's bye answers it. A connection lost after
  // the bye (or on which no answer came within handshake_timeout) is
  // resumed like any other, and the bye is sent again on the new one; if
  // the session cannot be resumed (its resume window passes, or the
  // acceptor no longer has it), it still ends with SessionClosed, since
  // nothing was outstanding. Idempotent. Errors: SESSION_CLOSED if already
  // ended.
  SYMWIRE_DECL absl::Status Close(absl::Time now);

  // Abort
  // Ends the session now with `status` (sent to the peer as a stream-0
  // AGENT_ERROR if connected). REQUIRES: !status.ok().
  SYMWIRE_DECL void Abort(const absl::Status& status, absl::Time now);

  // HandleTimeout
  // Runs every timer due at `now` (handshake, heartbeat, dead peer, ack
  // delay, task deadlines, reconnect backoff, expiry). Harmless early.
  SYMWIRE_DECL void HandleTimeout(absl::Time now);

  // TransportLost
  // The transport ended or a dial failed. No-op when no connection is up
  // (so calling it after closing a connection for ConnectionClosing() is
  // harmless), except on a disconnected initiator that reported ReconnectDue
  // since: then it means the dial failed, and the next attempt is scheduled.
  SYMWIRE_DECL void TransportLost(const absl::Status& reason, absl::Time now);

  // ---- outputs --------------------------------------------------------

  // PollTransmit
  // The next bytes to write, or an empty span when nothing is pending.
  // Call until empty; every span stays valid until the next input call.
  // Does not allocate.
  SYMWIRE_DECL absl::Span<const std::byte> PollTransmit();
  // With `owner`: as above, and when the span lies in the replay store
  // (sequenced frames, which are never rewritten) and has at least
  // `min_owned_bytes`, *owner is set to a reference that keeps those bytes
  // valid for as long as it is held, past later inputs, so a driver can
  // write them without copying; otherwise *owner is reset and the span
  // lives until the next input, as above. (The minimum spares a reference
  // count update per frame for spans the driver would copy anyway.)
  SYMWIRE_DECL absl::Span<const std::byte> PollTransmit(
      std::shared_ptr<const void>* owner, size_t min_owned_bytes = 0);

  // PollEvent
  // The next event, or nullopt.
  SYMWIRE_DECL std::optional<Event> PollEvent();

  // NextDeadline
  // When HandleTimeout must next be called; InfiniteFuture() if never.
  SYMWIRE_DECL absl::Time NextDeadline() const;

  // ConnectionClosing
  // True once the session has finished with the current connection (an
  // error, a bye, a handover): write what PollTransmit still returns, then
  // close the transport.
  bool ConnectionClosing() const { return conn_.closing; }

  // ---- observers --------------------------------------------------------
  SessionState state() const { return state_; }
  // The sticky failure (OK unless state() == kFailed).
  const absl::Status& status() const { return failure_; }
  SessionSide side() const { return config_.side; }
  const SessionConfig& config() const { return config_; }
  // Valid once established.
  const PeerInfo& peer() const { return peer_; }
  const SessionId& session_id() const { return session_id_; }
  // The resume secret (SPEC.md §16.2), for a runtime that persists a session
  // across restarts of its own process. Treat it like a password.
  const ResumeToken& resume_token() const { return resume_token_; }
  bool has_session() const { return has_session_; }
  const SessionCounters& counters() const { return counters_; }
  SYMWIRE_DECL TaskState task_state(TaskId task) const;
  size_t open_tasks() const { return tasks_.size(); }
  // Unacknowledged sequenced frames kept for replay, and their bytes.
  size_t replay_frames_in_use() const { return replay_.size(); }
  uint64_t replay_bytes_in_use() const;
  // Bytes PollTransmit would return now (a driver's flush heuristics).
  uint64_t transmit_pending_bytes() const {
    const Connection& c = conn_;
    uint64_t n = c.control.size() - c.control_taken;
    if (c.up && !c.closing && c.store_enabled) n += store_.end() - send_pos_;
    return n;
  }
  // Bytes of the current connection's input held by the session: the
  // start of an incomplete frame, and the last frame completed from it
  // (kept for its events). Each is at most the connection's header limit
  // plus its payload limit plus 8; before the handshake completes the
  // payload limit is 8192 (SPEC.md §15.2), so an unauthenticated peer can
  // make the session hold at most 2 * (max_header_bytes + 8200) bytes.
  size_t receive_buffered_bytes() const {
    return conn_.rx.size() + conn_.hold.size();
  }
  // The last sequence accepted from the peer / sent to it.
  uint64_t last_received() const { return acks_.received(); }
  uint64_t last_sent() const { return acks_.last_sent(); }

 private:
  friend class detail::SessionHandover;

  // AdoptConnection (reached through detail::SessionHandover, i.e. by an
  // Endpoint)
  // Acceptor: `fresh` (an acceptor session whose handshake stopped at
  // kAwaitResume for this session's id, i.e. it has the resume's PROOF)
  // hands its connection over. This session first checks the resume
  // (SPEC.md §12.2 step 5, §16.2), in this order, without changing
  // anything: it has not ended, it is the session named, and the PROOF's
  // resume_proof matches its token (SESSION_EXPIRED for all three, with one
  // message, so that a peer without the token learns nothing); the HELLO
  // keeps the session's agent_id, role, version, max_payload_bytes,
  // max_header_bytes and max_tasks (RESUME_REJECTED); its last_received is
  // not beyond the last sequence sent (BAD_ACK) nor below the last one the
  // peer acknowledged (RESUME_GAP); and, last, `lost_race` is false (else
  // CONNECTION_LOST: another connection resumed the session while this one
  // was handshaking; connection scope, so the initiator redials, §16.1).
  // On failure `fresh` answers its connection with a stream-0 AGENT_ERROR
  // (code, detail, a message naming the values), closes it and fails; this
  // session is left exactly as it was. On success this session takes the
  // connection (its untaken output included), answers WELCOME (with its
  // own resume_proof, never the token) and replays; `fresh` is closed. If
  // this session had a connection, it is replaced (ConnectionLost).
  // Errors: SESSION_EXPIRED, RESUME_REJECTED, BAD_ACK, RESUME_GAP,
  // CONNECTION_LOST (all of `fresh`), WRONG_STATE (misuse; nothing
  // changes).
  SYMWIRE_DECL absl::Status AdoptConnection(Session& fresh, bool lost_race,
                                            absl::Time now);

  // RejectResume
  // Acceptor, on a fresh session stopped at kAwaitResume: no such session
  // (or it expired). Sends SESSION_EXPIRED to the peer, with the same
  // message (and after the same HMAC work) as a wrong proof in
  // AdoptConnection, and fails.
  SYMWIRE_DECL void RejectResume(absl::Time now);

  enum class Handshake : uint8_t {
    kNone,
    kAwaitHello,    // acceptor
    kAwaitProof,    // acceptor, after CHALLENGE
    kAwaitResume,   // acceptor, fresh: ResumeRequested reported
    kAwaitServer,   // initiator: CHALLENGE or WELCOME
    kAwaitWelcome,  // initiator, after PROOF
    kDone,
  };
  // The peer's HELLO, kept (owning) until the handshake ends.
  struct Hello {
    std::string agent_id;
    InitMessage message;  // views cleared; see agent_id
    std::string welcome_auth_data;
    // Resuming: the initiator's proof from PROOF (§16.2), checked by the
    // session that adopts the connection.
    std::optional<ResumeProof> resume_proof;
  };
  struct PendingSync {
    bool ack = false;
    std::optional<uint64_t> ping;
    std::optional<uint64_t> pong;
    std::optional<uint64_t> drain;
    bool bye = false;
    bool any() const { return ack || ping || pong || drain || bye; }
  };
  // Everything that belongs to one connection; moved by AdoptConnection.
  struct Connection {
    FrameDecoder decoder = FrameDecoder(DecoderOptions{});
    // Receive buffers: `rx` holds the unconsumed tail of the stream; `hold`
    // keeps the frame completed from `rx` during the last Receive alive for
    // its events.
    std::vector<std::byte> rx;
    std::vector<std::byte> hold;
    // Control frames (preface, INIT, SYNC, stream-0 ERROR) not yet taken.
    std::vector<std::byte> control;
    size_t control_taken = 0;  // bytes of `control` returned by PollTransmit
    size_t sync_begin = 0;     // offset of an untaken SYNC at the tail
    PendingSync sync;
    // The connection-scope deadlines (detail::Timer kHandshake .. kAck).
    detail::TimerTable timers;
    absl::Time last_rx;  // Timer::kDeadPeer runs from here
    // When the first byte of the incomplete frame in `rx` arrived, and its
    // stream offset (valid while `rx` is not empty; §14.1 frame_timeout,
    // Timer::kFrame).
    absl::Time rx_since;
    uint64_t rx_since_offset = 0;
    // Stream offset just past the frame being handled (Receive sets it
    // before each HandleFrame; errors name the frame's offset from it).
    uint64_t rx_frame_end = 0;
    absl::Time last_ping_rx = absl::InfinitePast();
    AuthContext auth;
    std::optional<Hello> hello;  // acceptor: the peer's HELLO
    uint32_t rx_need = 0;
    uint32_t ping_strikes = 0;
    // §14.1: consecutive received frames that carried nothing new, and our
    // pings the peer has not answered yet (a pong beyond them is nothing
    // new).
    uint32_t noop_frames = 0;
    uint32_t pings_unanswered = 0;
    Handshake handshake = Handshake::kNone;
    bool up = false;
    bool closing = false;
    bool sync_at_tail = false;
    bool store_enabled = false;  // established: replay store may be sent
    bool challenged = false;
    // Acceptor: a CHALLENGE sent only because the HELLO resumes (the auth
    // method has no challenge round of its own, §16.2).
    bool resume_challenge_only = false;
    // §15.3: this side's bye went out on this connection; the session ends
    // when the peer's bye answers it, or at its Timer::kBye deadline.
    bool bye_sent = false;
  };
  struct ReplayEntry {
    uint64_t seq;
    uint64_t pos;  // absolute position in the store stream
    uint32_t size;
  };
  struct Task {
    TaskState state = TaskState::kNone;
    bool own = false;  // submitted here
    std::optional<absl::Time> deadline;
    // Own tasks: the AGENT_TASK's sequence and the store position just
    // past it, to tell at the session's end whether the peer got it (§16.3).
    uint64_t seq = 0;
    uint64_t end_pos = 0;
  };

  SYMWIRE_DECL Session(SessionConfig config, absl::Time now);

  // Input bracketing: release spans handed out since the last input, and
  // flush coalesced SYNC content at the end.
  void BeginInput();
  void EndInput(absl::Time now);
  // REQUIRES: `now` is not earlier than the last input's (see Session).
  void ObserveNow(absl::Time now);

  // Receiving.
  // Keeps `bytes`, the start of a frame the decoder needs `bytes_needed`
  // bytes of (counted from the frame's start), for the next Receive.
  void KeepPartialFrame(absl::Span<const std::byte> bytes,
                        uint32_t bytes_needed, absl::Time now);
  absl::Status ProcessStep(const DecodeStep& step, absl::Time now);
  absl::Status HandleFrame(const FrameView& frame, absl::Time now);
  absl::Status HandleInit(const FrameView& frame, absl::Time now);
  absl::Status HandleHello(const InitMessage& hello, absl::Time now);
  absl::Status HandleProof(const InitMessage& proof, size_t payload_size,
                           absl::Time now);
  absl::Status HandleServerInit(const InitMessage& init, absl::Time now);
  absl::Status FinishAcceptorHandshake(absl::Time now);
  absl::Status HandleTask(const FrameView& frame, absl::Time now);
  absl::Status HandleResponse(const FrameView& frame, absl::Time now);
  absl::Status HandleTaskError(const FrameView& frame, absl::Time now);
  absl::Status HandleCancel(const FrameView& frame, absl::Time now);
  absl::Status HandleSync(const FrameView& frame, absl::Time now);
  absl::Status HandleSessionError(const FrameView& frame, absl::Time now);
  absl::Status HandleAck(uint64_t ack, absl::Time now);
  absl::Status CheckPeerLastReceived(uint64_t last) const;
  void ApplyPeerLastReceived(uint64_t last);
  absl::Status CheckOwnTaskFrame(const FrameView& frame, Task*& task);
  // §14.1: records a frame that carried nothing new (`useful` false) or
  // something new (resets the count); PING_FLOOD past max_noop_frames.
  absl::Status CountProgress(bool useful, const FrameView& frame,
                             uint64_t offset, absl::Time now);

  // Sending.
  // Room in the send window (§15.1) for one more frame of `frame_size`.
  bool HasReplayCredit(size_t frame_size) const;
  absl::Status CheckReplayCredit(size_t frame_size) const;
  // With `payload_owner`, a payload of kMinReferencedPayload bytes or more
  // is stored by reference (it keeps the bytes valid and unchanged).
  // `header` gets its sequence number here (in place: a copy read the
  // caller's narrower stores back in one wide load, a failed forward).
  absl::Status EncodeSequenced(
      FrameHeader& header, const FrameExtensions& extensions,
      absl::Span<const std::byte> payload, bool bypass_credit,
      const std::shared_ptr<const void>* payload_owner = nullptr);
  // EncodeSequenced for what the plain-frame path does not take
  // (extensions, referenced payloads) and every refusal. REQUIRES:
  // header.sequence is the next sequence.
  absl::Status EncodeSequencedGeneral(
      const FrameHeader& header, const FrameExtensions& extensions,
      absl::Span<const std::byte> payload, bool bypass_credit,
      const std::shared_ptr<const void>* payload_owner);
  // `now` first, so that it travels in registers.
  SYMWIRE_DECL absl::StatusOr<TaskId> SubmitTaskImpl(
      absl::Time now, absl::Span<const std::byte> payload,
      const std::shared_ptr<const void>* payload_owner,
      const TaskOptions& options);
  // `now` second, so that it travels in registers.
  SYMWIRE_DECL absl::Status SendResponseImpl(
      TaskId task, absl::Time now, absl::Span<const std::byte> payload,
      const std::shared_ptr<const void>* payload_owner, bool final);
  void SendInternalError(TaskId task, absl::StatusCode code,
                         absl::string_view message, bool retryable,
                         ErrorCode detail);
  void SendCancel(TaskId task, absl::StatusCode reason);
  void SendControl(MessageType type, const std::vector<std::byte>& payload);
  // The buffer control payloads are built in, emptied; reused so that acks,
  // cancels and errors do not allocate once it has grown.
  std::vector<std::byte>& Scratch() {
    scratch_.clear();
    return scratch_;
  }
  void SendInit(const InitMessage& init);
  void SendSessionError(const absl::Status& status);
  void SendPreface();
  void FlushSync(absl::Time now);

  // State changes.
  void Establish(bool resumed, absl::Time now);
  void EndTask(TaskId id, Task& task);
  void ConnectionFailed(const absl::Status& status, absl::Time now);
  // Ends the connection or the session for a framing error; returns the
  // status reported (the decoder's, made more precise where it helps).
  absl::Status DecodeFailed(const absl::Status& status, absl::Time now);
  void Fail(const absl::Status& status, absl::Time now, bool tell_peer);
  // §16.3: the terminal status of own task `id` when the session ends with
  // `status`, by what the peer can have received; sets *retryable.
  absl::Status OwnTaskEndStatus(TaskId id, const Task& task,
                                const absl::Status& status,
                                bool* retryable) const;
  void FailHandshake(const absl::Status& status, absl::Time now);
  void ScheduleReconnect(absl::Time now);
  void MaybeWritable();
  void MaybeFinishClose(absl::Time now);
  void EndClosed(absl::Time now);
  void FreeAcked(uint64_t ack);
  void HoldSlotUntilAcked();
  void ReleaseAckedSlots(uint64_t ack);
  void CompactStore();
  void PushDeadline(absl::Time when, TaskId task);
  void RunTaskDeadlines(absl::Time now);
  // Timers (detail/deadlines.hpp): the table holding `timer`, whether it
  // is armed now (counts for NextDeadline), and its action; OnTimer
  // returns whether the action failed the connection.
  detail::TimerTable& TimersOf(detail::Timer timer) {
    return detail::ScopeOf(timer) == detail::TimerScope::kSession
               ? timers_
               : conn_.timers;
  }
  const detail::TimerTable& TimersOf(detail::Timer timer) const {
    return detail::ScopeOf(timer) == detail::TimerScope::kSession
               ? timers_
               : conn_.timers;
  }
  bool TimerArmed(detail::Timer timer) const;
  void OnTimer(detail::Timer timer, absl::Time now);
  // Keeps Timer::kTaskDeadline at the earliest entry of deadlines_.
  void SyncTaskTimer();
  void CountError(const absl::Status& status);
  absl::Status LocalError(ErrorCode code, absl::string_view message);
  absl::Status EndedError() const;
  bool IsOwnTaskId(TaskId id) const;
  uint64_t ClockMicros(absl::Time now) const;
  absl::Duration EffectivePingInterval() const;
  void Emit(Event event) {
    const bool has_views = std::holds_alternative<TaskReceived>(event) ||
                           std::holds_alternative<ResponseReceived>(event);
    events_.push_back(std::move(event));
    if (has_views) view_events_end_ = events_.size();
  }

  SessionConfig config_;
  SessionState state_ = SessionState::kIdle;
  absl::Status failure_;
  absl::Time epoch_;  // ping timestamps count from here
  absl::Time last_now_ = absl::InfinitePast();  // ObserveNow
  Connection conn_;

  // Session identity (valid when has_session_).
  bool has_session_ = false;
  SessionId session_id_{};
  ResumeToken resume_token_{};
  PeerInfo peer_;

  // Sequencing and the replay store: encoded sequenced frames, in order,
  // from the oldest unacknowledged one. Positions are absolute (they never
  // decrease); see detail::ReplayStore.
  detail::AckTracker acks_;  // sequences and acks, both directions
  detail::ReplayStore store_;
  uint64_t send_pos_ = 0;  // next store position to hand to the driver
  // Highest store position ever handed to a driver (on any connection): a
  // frame ending after it never left this side.
  uint64_t sent_pos_high_ = 0;
  detail::Ring<ReplayEntry> replay_;

  // Tasks.
  absl::flat_hash_map<TaskId, Task> tasks_;
  // The task a lookup found last (FindTask): the frames of a streamed task
  // (a response after a response, each with its own SendResponse on the
  // executor and its own frame on the submitter) find it without hashing.
  // found_ points into tasks_, valid while found_id_ is not 0 (stream 0,
  // never a task): every insert (which may rehash), EndTask's erase of
  // that task and clear() reset found_id_ (absl's erase moves no other
  // element). Only a lookup sets it: an insert that cached the new task
  // cost request/response more than it saved (bench/README.md).
  TaskId found_id_ = 0;
  Task* found_ = nullptr;
  Task* FindTask(TaskId id) {
    if (id == found_id_ && id != 0) return found_;
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return nullptr;
    found_id_ = id;
    found_ = &it->second;
    return found_;
  }
  void ForgetFoundTask() { found_id_ = 0; }
  TaskId next_task_id_ = 1;       // own ids: +2 each
  TaskId last_peer_task_id_ = 0;  // highest id seen from the peer
  uint64_t own_open_ = 0;         // incl. cancelling
  // Peer tasks running here, plus those whose terminal frame is not yet
  // acknowledged (their sequences, ascending, in unacked_terminals_).
  uint64_t peer_open_ = 0;
  std::deque<uint64_t> unacked_terminals_;
  // Min-heap of task deadlines; entries of ended tasks are skipped lazily.
  std::vector<std::pair<absl::Time, TaskId>> deadlines_;

  // Flow control and drain.
  bool blocked_ = false;  // a call was refused for credit; Writable owed
  bool draining_ = false;
  bool closing_ = false;
  // §15.3: a bye was sent (on some connection) and nothing was outstanding
  // then; a session in this state that loses its connection or cannot
  // resume ends closed, not failed.
  bool bye_sent_ = false;
  TaskId drain_last_ = 0;
  bool peer_draining_ = false;

  // Reconnect / expiry, and the session-scope deadlines (detail::Timer
  // kTaskDeadline, kExpire, kReconnect).
  uint32_t attempt_ = 0;
  detail::TimerTable timers_;

  std::vector<std::byte> scratch_;
  std::vector<Event> events_;
  // Receive: the frames of one FrameDecoder::DecodeBatch call. A member so
  // that a Receive of one frame does not construct 32 views.
  static constexpr size_t kReceiveBatch = 32;
  std::array<FrameView, kReceiveBatch> batch_;
  size_t event_head_ = 0;
  // Events before this index point into received bytes (TaskReceived,
  // ResponseReceived): Receive refuses to run until they are polled.
  size_t view_events_end_ = 0;
  SessionCounters counters_;
};

namespace detail {

// SessionHandover
// The narrow detail-level API an Endpoint (and tests of the resume checks)
// use to move one connection's state from a fresh acceptor session to the
// session it resumes. Not for applications: use Endpoint.
class SessionHandover {
 public:
  // ResumeTarget: the session id a fresh acceptor session asks to resume
  // once its handshake stopped for that (the PROOF arrived; it reported
  // ResumeRequested), else nullptr. Valid until the next input to `fresh`.
  static const SessionId* ResumeTarget(const Session& fresh) {
    if (fresh.conn_.handshake != Session::Handshake::kAwaitResume ||
        !fresh.conn_.up || !fresh.conn_.hello) {
      return nullptr;
    }
    return &*fresh.conn_.hello->message.session_id;
  }
  // Adopt: existing.AdoptConnection(fresh, lost_race, now) (above).
  static absl::Status Adopt(Session& existing, Session& fresh, bool lost_race,
                            absl::Time now) {
    return existing.AdoptConnection(fresh, lost_race, now);
  }
  // RejectUnknown: fresh.RejectResume(now) (above).
  static void RejectUnknown(Session& fresh, absl::Time now) {
    fresh.RejectResume(now);
  }
};

}  // namespace detail
}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/session/impl/session.ipp"
#include "symwire/session/impl/session_api.ipp"
#include "symwire/session/impl/session_frames.ipp"
#include "symwire/session/impl/session_handshake.ipp"
#include "symwire/session/impl/session_state.ipp"
#endif

#endif  // SYMWIRE_SESSION_SESSION_HPP_
