// File: symwire/session/event.hpp
// Layer 2 (session). What a Session reports through PollEvent() (SPEC.md
// §17): the Event variant and its alternatives. Event names are past tense.
//
// Lifetime: spans and FrameViews inside events point into the bytes given to
// Session::Receive (or the session's receive buffer) and stay valid until
// the next call to Session::Receive, which refuses to run while such events
// are still queued. Copy what you need to keep.
#ifndef SYMWIRE_SESSION_EVENT_HPP_
#define SYMWIRE_SESSION_EVENT_HPP_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/session/control.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

// TaskId: the stream id of a task's frames (SPEC.md §13.1).
using TaskId = uint64_t;

// Established
// The handshake completed. `resumed` is true when an existing session was
// resumed on a new connection; `replayed_frames` frames of this side's
// replay buffer are being sent again. The peer's identity and limits are
// in Session::peer().
struct Established {
  bool resumed = false;
  uint64_t replayed_frames = 0;
};

// TaskReceived
// The peer submitted a task for this side to run. `frame` is the whole
// AGENT_TASK (payload, trace context, metadata, every extension).
// `deadline` is the local time by which it must end, if it carries one.
struct TaskReceived {
  TaskId task = 0;
  FrameView frame;
  std::optional<absl::Time> deadline;

  absl::Span<const std::byte> payload() const { return frame.payload(); }
};

// ResponseReceived
// A response to a task this side submitted: partial, or final (the task's
// terminal event: it completed).
struct ResponseReceived {
  TaskId task = 0;
  absl::Span<const std::byte> payload;
  bool final = false;
};

// TaskFailed
// Terminal: a task this side submitted failed. `status` carries the
// peer's canonical code and message (and its detail code if it sent one;
// none otherwise: the executor's status unchanged, SPEC.md §13.2), or, when the
// session ended (SPEC.md §16.3): the session's status if the peer acknowledged
// the task or it was written to a connection (it may have run; the message says
// which), and UNAVAILABLE / CONNECTION_LOST with `retryable` if it never left
// this side. `retryable`: the work was not done; safe to retry elsewhere.
struct TaskFailed {
  TaskId task = 0;
  absl::Status status;
  bool retryable = false;
};

// TaskCancelled
// Terminal: a task ended by cancellation. On the submitter: after
// CancelTask (kCancelled) or at its deadline (kDeadlineExceeded). On the
// executor: the peer cancelled it, its deadline passed, or the session
// ended (the session's status); stop working on it.
struct TaskCancelled {
  TaskId task = 0;
  absl::Status status;
  bool submitted_here = false;  // true on the submitter's side
};

// Writable
// A call refused with NO_CREDIT or REPLAY_BUFFER_FULL may now succeed.
struct Writable {};

// PeerDraining
// The peer drains (SPEC.md §15.3): it runs this side's tasks up to
// `last_accepted`; later ones end with a retryable UNAVAILABLE error.
// New submits are refused with PEER_DRAINING.
struct PeerDraining {
  TaskId last_accepted = 0;
};

// ConnectionLost
// The connection ended (`status` says why: CONNECTION_LOST, a framing
// error, PEER_UNRESPONSIVE, HANDSHAKE_TIMEOUT). The session keeps its
// state: the initiator will report ReconnectDue, the acceptor waits for a
// resume until its resume window passes.
struct ConnectionLost {
  absl::Status status;
};

// ReconnectDue
// Initiator only: the backoff elapsed; dial and call TransportConnected
// (or TransportLost if the dial fails). `attempt` counts from 1.
struct ReconnectDue {
  uint32_t attempt = 0;
};

// ResumeRequested
// Acceptor only, on a fresh session: the peer authenticated and asks to
// resume `session_id`; its PROOF of the session's token has arrived but is
// not checked yet (the session holds the token). Informational: the
// Endpoint that accepted the connection routes it itself (endpoint.hpp,
// Endpoint::Receive returns the outcome); there is nothing to call.
struct ResumeRequested {
  SessionId session_id{};
};

// SessionClosed
// The session ended gracefully (SPEC.md §15.3): both sides said bye, or
// this side said bye with nothing outstanding and the session could not be
// resumed to hear the answer.
struct SessionClosed {};

// SessionFailed
// The session ended on an error (`status`; sticky). Every task that was
// open got its own terminal event first; `affected_tasks` lists them.
struct SessionFailed {
  absl::Status status;
  std::vector<TaskId> affected_tasks;
};

using Event =
    std::variant<Established, TaskReceived, ResponseReceived, TaskFailed,
                 TaskCancelled, Writable, PeerDraining, ConnectionLost,
                 ReconnectDue, ResumeRequested, SessionClosed, SessionFailed>;

// EventName: "Established", "TaskReceived", ... for logs.
SYMWIRE_DECL absl::string_view EventName(const Event& event) noexcept;

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/session/impl/event.ipp"
#endif

#endif  // SYMWIRE_SESSION_EVENT_HPP_
