"""The sans-I/O session (SPEC.md §10-§17) for the runtime: bytes in, bytes out,
events, and one timer, driven by the caller's clock (microseconds).

`Session` extends the transcript model of symwire.vectors (`RefSession`, which
the golden transcripts check byte for byte: handshake with the three auth
methods, tasks, streamed responses, cancel, acknowledgements, drain, resume and
the replay of unacknowledged frames) with what a live peer needs and a
transcript never shows: heartbeats (§14.1), deadlines (§13.4), the ack delay
(§14.2), the dead-peer timeout, credit checks (§15.1), task errors, and typed
events. `Acceptor` is the acceptor's registry (§20): a resuming connection is
handed to the session it names.

Nothing here does I/O or reads a clock: every input takes `now` (µs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterable, NoReturn, Optional

from . import codec as c
from .vectors import Frame, RefServer, RefSession, TranscriptError

__all__ = ["Config", "Event", "Session", "Acceptor", "SymwireError", "AUTH_METHODS",
           "CAP_PAYLOAD_CHECKSUMS", "CAP_TRACE_CONTEXT", "CAP_METADATA", "CAP_DRAIN",
           "CAP_METHODS", "HEALTH_METHOD", "SERVING", "NOT_SERVING", "DRAINING",
           "validate_method"]

AUTH_METHODS = {"none": 0, "token": 1, "hmac": 2}

# §11.4 capability bits.
CAP_PAYLOAD_CHECKSUMS = 1 << 0
CAP_TRACE_CONTEXT = 1 << 1
CAP_METADATA = 1 << 2
CAP_DRAIN = 1 << 3
CAP_METHODS = 1 << 4        # understands METHOD (§5.1), answers symwire.health (§13.6)

# §13.6: the built-in health method and its answers (one byte).
HEALTH_METHOD = "symwire.health"
SERVING, NOT_SERVING, DRAINING = 1, 2, 3
HEALTH_NAMES = {SERVING: "SERVING", NOT_SERVING: "NOT_SERVING", DRAINING: "DRAINING"}


class SymwireError(Exception):
    """An error with its codes: `code` is the canonical code (SPEC.md §18,
    e.g. 4 DEADLINE_EXCEEDED, 12 UNIMPLEMENTED), `name` the symwire error's
    name when there is one, else the canonical code's (e.g.
    "UNAUTHENTICATED", "NO_CREDIT", "DEADLINE_EXCEEDED"), `symwire_code` the
    symwire ErrorCode (§7, §18: e.g. 114 NO_CREDIT, 127 UNIMPLEMENTED; a
    task error's `detail`) or None, `retryable` the task error's flag."""

    def __init__(self, code: int, name: str, message: str = "", retryable: bool = False,
                 symwire_code: Optional[int] = None):
        super().__init__("%s (%d): %s" % (name, code, message) if message else
                         "%s (%d)" % (name, code))
        self.code = code
        self.name = name
        self.message = message
        self.retryable = retryable
        self.symwire_code = symwire_code


# Errors of the local encoder (not sent on the wire): SPEC.md §5.1's INVALID_FRAME.
_ENCODER_ERRORS = {"INVALID_FRAME": (19, "INVALID_ARGUMENT")}


def error_from_name(name: str, message: str = "") -> SymwireError:
    """A SymwireError for a §18 name (session or framing error, or a canonical
    code name)."""
    entry = (c.SESSION_ERRORS.get(name) or c.FRAMING_ERRORS.get(name)
             or _ENCODER_ERRORS.get(name))
    if name in c.CANONICAL_CODES and (entry is None or name == "UNIMPLEMENTED"):
        return SymwireError(c.CANONICAL_CODES[name], name, message,
                            symwire_code=entry[0] if entry else None)
    canonical = entry[1] if entry else "INTERNAL"
    return SymwireError(c.CANONICAL_CODES.get(canonical or "INTERNAL", 13), name, message,
                        symwire_code=entry[0] if entry else None)


def validate_method(name: str) -> bytes:
    """The METHOD value of `name` (SPEC.md §5.1: 1..255 bytes, each
    0x21..0x7E). Raises SymwireError INVALID_FRAME naming the bad byte and
    its index, or the length."""
    try:
        value = name.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        value = None
    if value is None or not 1 <= len(value) <= c.METHOD_MAX:
        raw = name.encode("utf-8", "replace") if isinstance(name, str) else b""
        if value is None and 1 <= len(raw) <= c.METHOD_MAX:
            i = next(k for k, b in enumerate(raw) if b > 0x7E)
            raise error_from_name("INVALID_FRAME", "method %r: byte 0x%02x at index %d is "
                                  "not visible ASCII (0x21..0x7e)" % (name, raw[i], i))
        raise error_from_name("INVALID_FRAME", "method of %d bytes, expected 1..255"
                              % len(raw))
    for i, b in enumerate(value):
        if not 0x21 <= b <= 0x7E:
            raise error_from_name("INVALID_FRAME", "method %r: byte 0x%02x at index %d is "
                                  "not visible ASCII (0x21..0x7e)" % (name, b, i))
    return value


def c_escape(text: str) -> str:
    """absl::CHexEscape of visible ASCII: backslash and both quotes escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")


@dataclass
class Config:
    """One side's settings; the defaults are SPEC.md §19's. `auth` is "none",
    "token" or "hmac" (§12.3); `secret` the token or the HMAC key. `seed`
    (tests only) makes nonces and ids SplitMix64-deterministic."""

    agent_id: str = "py"
    role: int = 0                       # §11.3: 0 orchestrator, 1 agent, 2 peer
    auth: str = "none"
    secret: bytes = b""
    capabilities: int = CAP_PAYLOAD_CHECKSUMS | CAP_DRAIN | CAP_METHODS
    payload_checksums: bool = True
    max_tasks: int = 1024
    max_payload_bytes: int = 16 << 20
    max_header_bytes: int = 16385
    max_extensions: int = 32
    replay_bytes: int = 8 << 20
    replay_frames: int = 65536
    handshake_timeout_us: int = 10_000_000
    ping_interval_us: int = 10_000_000
    min_peer_ping_interval_us: int = 1_000_000
    dead_peer_timeout_us: int = 30_000_000
    ack_delay_us: int = 5_000
    resume_window_us: int = 60_000_000
    max_ping_strikes: int = 2
    max_noop_frames: int = 100          # §14.1: frames in a row that carry nothing new
    frame_timeout_us: int = 30_000_000  # §14.1: one frame's first byte to its last
    seed: Optional[int] = None

    def model(self) -> dict[str, Any]:
        if self.auth not in AUTH_METHODS:
            raise ValueError("auth must be one of %s, not %r" % (list(AUTH_METHODS), self.auth))
        return dict(
            seed=self.seed or 0, role=self.role, agent_id=self.agent_id, min_version=1,
            max_version=1, auth=AUTH_METHODS[self.auth], auth_secret=bytes(self.secret),
            capabilities=self.capabilities, payload_checksums=int(self.payload_checksums),
            max_tasks=self.max_tasks, max_payload_bytes=self.max_payload_bytes,
            max_header_bytes=self.max_header_bytes, max_extensions=self.max_extensions,
            replay_bytes=self.replay_bytes, replay_frames=self.replay_frames,
            handshake_timeout_us=self.handshake_timeout_us,
            ping_interval_us=self.ping_interval_us,
            min_peer_ping_interval_us=self.min_peer_ping_interval_us,
            dead_peer_timeout_us=self.dead_peer_timeout_us, ack_delay_us=self.ack_delay_us,
            resume_window_us=self.resume_window_us, max_ping_strikes=self.max_ping_strikes,
            error_message="symwire-python: protocol error")


@dataclass
class Event:
    """What the session reports (§17). `type` is Established, TaskReceived,
    ResponseReceived, TaskFailed, TaskCancelled, PeerDraining,
    SessionClosed, SessionFailed, ConnectionLost, ResumeRequested;
    `fields` its values (task, payload bytes, final, status, error ...)."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> int:
        return int(self.fields.get("task", 0))


class _OsRandom:
    @staticmethod
    def fill(n: int) -> bytes:
        return os.urandom(n)


def _frames_bytes(frames: list[Frame]) -> bytes:
    return b"".join(b for _title, segs in frames for b, _comment in segs)


class Session(RefSession):
    """One side of a session. Every input returns the bytes to write (maybe
    empty); events accumulate in `pending_events` (take them with
    `take_events()`). `next_timer()` is when `on_timer(now)` is due."""

    def __init__(self, side: str, config: Config, now: int = 0) -> None:
        super().__init__(side, config.model())
        self.config = config
        if config.seed is None:
            self.rng = _OsRandom()
        self.now = now
        self.pending_events: list[Event] = []
        self._seen = 0
        self.deadlines: dict[int, int] = {}      # task -> µs, both sides
        self.next_ping: Optional[int] = None
        self.ping_out: Optional[int] = None       # our unanswered ping's t
        self.pong_due: Optional[int] = None       # the peer's ping to answer
        self.srtt: Optional[int] = None
        self.last_rx = now
        self.ack_at: Optional[int] = None
        self.acked_sent = 0
        self.connected_at = now
        self.failure: Optional[SymwireError] = None
        self.connection_ended = False            # the transport should close
        self.rx_base = 0             # stream offset of rx[0] (consumed bytes are dropped)
        # §15.1: tasks received from the peer, and their terminal frames the
        # peer has acknowledged; the difference is what counts against max_tasks.
        self.peer_tasks_received = 0
        self.peer_tasks_freed = 0
        self._frame_at = 0           # stream offset of the frame being handled
        self._peer_message: Optional[str] = None   # a received stream-0 error's text
        # §15.1: sequences of own tasks' terminal frames accepted; those above
        # acked_sent still hold a slot at the executor.
        self._terminal_seqs: list[int] = []
        self._new_connection_state()

    def _new_connection_state(self) -> None:
        """Per-connection limits (§14.1): ping strikes, frames carrying
        nothing new, and the partial frame's start for frame_timeout."""
        self.last_ping_rx: Optional[int] = None
        self.ping_strikes = 0
        self.noop_frames = 0
        self.partial_at: Optional[int] = None     # stream offset of a partial frame
        self.partial_since: Optional[int] = None  # when its first byte arrived

    # ---- events -------------------------------------------------------------

    def _collect(self) -> None:
        for line in self.events[self._seen:]:
            words = line.split(" ")
            fields: dict[str, Any] = {}
            for w in words[3:]:
                k, _, v = w.partition("=")
                fields[k] = v
            etype = words[2].partition("=")[2]
            if "payload" in fields:
                fields["payload"] = b"" if fields["payload"] == "-" else bytes.fromhex(
                    fields["payload"])
            for k in ("task", "final", "deadline_us"):
                if k in fields and fields[k] != "-":
                    fields[k] = int(fields[k])
            self.pending_events.append(Event(etype, fields))
        self._seen = len(self.events)

    def take_events(self) -> list[Event]:
        self._collect()
        out, self.pending_events = self.pending_events, []
        return out

    def _emit(self, etype: str, **fields: Any) -> None:
        self._collect()
        self.pending_events.append(Event(etype, fields))

    # ---- inputs -------------------------------------------------------------

    def connect(self, now: Optional[int] = None) -> bytes:  # type: ignore[override]
        self._tick(now)
        self.connected_at = self.last_rx = self.now
        self.connection_ended = False
        self.ping_out = self.pong_due = None
        self.rx_base = 0
        self._new_connection_state()
        return _frames_bytes(super().connect())

    def lost(self, now: Optional[int] = None) -> bytes:  # type: ignore[override]
        self._tick(now)
        if self.state in ("closed", "failed"):
            self.up = False               # the session has ended: nothing to resume
        else:
            super().lost()
        self.connection_ended = True
        self.next_ping = self.ack_at = None
        return b""

    def receive(self, data: bytes, now: Optional[int] = None) -> bytes:  # type: ignore[override]
        self._tick(now)
        self.last_rx = self.now
        was = self.state
        try:
            frames = super().receive(bytes(data))
        except NotImplementedError as err:
            # A peer behaviour the model does not accept: end the session.
            out: list[Frame] = []
            try:
                self._fail(out, "PROTOCOL_ERROR" if "PROTOCOL_ERROR" in c.SESSION_ERRORS
                           else "UNEXPECTED_FRAME", "symwire-python: %s" % err)
            except TranscriptError:
                pass
            frames = out
        out_bytes = _frames_bytes(frames)
        if any(title.startswith("AGENT_SYNC") for title, _ in frames):
            self.acked_sent = self.rx_seq
        self._settle_rx()
        if self.state == "established" and was != "established":
            self._on_established()
        self._after_input()
        return out_bytes + self._flush()

    def submit(self, payload: bytes, deadline_us: Optional[int] = None,  # type: ignore[override]
               now: Optional[int] = None, method: Optional[str] = None) -> tuple[int, bytes]:
        """A task (§13.2) with an optional DEADLINE (µs) and METHOD (§5.1).
        Raises SymwireError: INVALID_FRAME for a bad method name, PEER_DRAINING,
        UNIMPLEMENTED (127) with a method to a peer that did not announce
        METHODS (§11.4), FRAME_TOO_LARGE, NO_CREDIT, REPLAY_BUFFER_FULL,
        UNAVAILABLE without a session, INCOMPATIBLE_ROLES."""
        self._tick(now)
        method_value = validate_method(method) if method is not None else None
        self._check_send(payload)
        if (method_value is not None and self.peer is not None
                and not self.peer.get(7, 0) & CAP_METHODS):
            raise error_from_name("UNIMPLEMENTED", "method \"%s\": the peer %s did not announce "
                                  "METHODS (capability bit 4)" % (
                                      c_escape(method or ""),
                                      self.peer[5].decode("ascii", "replace")))
        if self.peer_draining:
            raise error_from_name("PEER_DRAINING", "the peer drains (§15.3): it takes no new "
                                  "task")
        if self.peer is not None and len(self.tasks) >= self.peer[10]:
            raise error_from_name("NO_CREDIT", "%d tasks open, the peer's max_tasks is %d" % (
                len(self.tasks), self.peer[10]))
        if self.state != "established" and not self._resumable():
            raise error_from_name("UNAVAILABLE", "no session (state %s)" % self.state)
        assert self.peer is not None  # established or resumable: the handshake set it
        if not c.role_allows(self.cfg["role"], self.peer[6]):
            raise error_from_name("INCOMPATIBLE_ROLES", "the peer's role %d does not take "
                                  "tasks from role %d" % (self.peer[6], self.cfg["role"]))
        # As RefSession.submit (§13.2), also while a resumable session is
        # disconnected: the frame waits in the replay buffer (§16.2).
        task = self.next_task
        self.next_task += 2
        exts = [c.deadline_ext(deadline_us)] if deadline_us is not None else []
        if method_value is not None:
            exts.append(c.method_ext(method_value))
        # §15.1: the ack of a terminal frame is coalesced (ack_at, §14.2), but
        # goes just ahead of a task that would otherwise find the executor's
        # max_tasks full: open tasks + terminal frames not yet acknowledged.
        self._terminal_seqs = [q for q in self._terminal_seqs if q > self.acked_sent]
        ack_first = b""
        if (self._terminal_seqs and len(self.tasks) + len(self._terminal_seqs) >= self.peer[10]
                and self.state == "established" and self.up):
            ack_first = self._sync({})
            self._terminal_seqs = []
        flags = c.FLAG_CHECKSUM if self.cfg["payload_checksums"] and payload else 0
        segs = self._frame(c.AGENT_TASK, bytes(payload), stream=task, seq=self.next_seq,
                           flags=flags, exts=exts)
        self.replay.append((self.next_seq, "AGENT_TASK %d" % task, segs))
        self.next_seq += 1
        self.tasks[task] = "submitted"
        if deadline_us is not None:
            self.deadlines[task] = self.now + deadline_us
        return task, ack_first + self._live(_frames_bytes([("", segs)]))

    def respond(self, task: int, payload: bytes, final: bool,  # type: ignore[override]
                now: Optional[int] = None) -> bytes:
        self._tick(now)
        if self.tasks.get(task) != "running":
            return b""        # cancelled or expired meanwhile: nothing to send
        self._check_send(payload)
        out = self._live(_frames_bytes(super().respond(task, bytes(payload), final)))
        if final:
            self.deadlines.pop(task, None)
        return out + self._flush()

    def fail_task(self, task: int, code: int, message: str, now: Optional[int] = None,
                  retryable: bool = False, detail: Optional[int] = None) -> bytes:
        """The executor ends `task` with AGENT_ERROR{code, message,
        retryable, detail} (§13.2; detail: a symwire code such as 127)."""
        self._tick(now)
        if self.tasks.get(task) != "running":
            return b""
        return self._task_error(task, code, message, retryable, detail) + self._flush()

    def fail_unknown_method(self, task: int, method: str, now: Optional[int] = None) -> bytes:
        """§13.5: the executor has no handler for `method`: AGENT_ERROR{12
        UNIMPLEMENTED, 'unknown method "NAME"', retryable, detail 127}."""
        return self.fail_task(task, c.CANONICAL_CODES["UNIMPLEMENTED"],
                              'unknown method "%s"' % c_escape(method), now, retryable=True,
                              detail=c.SESSION_ERRORS["UNIMPLEMENTED"][0])

    def cancel(self, task: int, now: Optional[int] = None) -> bytes:  # type: ignore[override]
        self._tick(now)
        if self.tasks.get(task) not in ("submitted", "running"):
            return b""
        self.deadlines.pop(task, None)
        return self._live(_frames_bytes(super().cancel(task)))

    def close(self, now: Optional[int] = None) -> bytes:  # type: ignore[override]
        """Drain and close (§15.3): bye once nothing is open or unacknowledged."""
        self._tick(now)
        if self.state != "established":
            return b""
        return _frames_bytes(super().close()) + self._flush()

    # ---- timers -------------------------------------------------------------

    def next_timer(self) -> Optional[int]:
        """The earliest time on_timer must run, or None."""
        if self.state not in ("established", "handshaking"):
            return None
        times = [t for t in (self.next_ping, self.ack_at) if t is not None]
        times += list(self.deadlines.values())
        if self.up:
            times.append(self.last_rx + self.config.dead_peer_timeout_us)
            if self.partial_since is not None and self.state == "established":
                times.append(self.partial_since + self.config.frame_timeout_us)
            if self.state == "handshaking":
                times.append(self.connected_at + self.config.handshake_timeout_us)
        return min(times) if times else None

    def on_timer(self, now: int) -> bytes:
        self._tick(now)
        out = bytearray()
        for task, at in sorted(self.deadlines.items()):
            if at > self.now:
                continue
            del self.deadlines[task]
            state = self.tasks.get(task)
            if state == "submitted" or (state == "running" and not self._executes(task)):
                out += self._cancel_reason(task, 4)
            elif state == "running":
                self._emit("TaskCancelled", task=task, status="DEADLINE_EXCEEDED")
                out += self._task_error(task, 4, "deadline exceeded")
        slow_frame = (self.state == "established" and self.partial_since is not None
                      and self.now - self.partial_since >= self.config.frame_timeout_us)
        if self.up and (self.now - self.last_rx >= self.config.dead_peer_timeout_us or (
                self.state == "handshaking"
                and self.now - self.connected_at >= self.config.handshake_timeout_us)
                or slow_frame):
            message = ("PEER_UNRESPONSIVE: the frame at stream offset %d is incomplete %d us "
                       "after its first byte (%d bytes received)" % (
                           self.partial_at or 0, self.now - (self.partial_since or 0),
                           len(self.rx) - self.rx_pos) if slow_frame else "PEER_UNRESPONSIVE")
            self.lost()
            self._collect()
            for e in reversed(self.pending_events):
                if e.type == "ConnectionLost":
                    e.fields.update(error="PEER_UNRESPONSIVE", message=message)
                    break
            return bytes(out)
        if self.state == "established" and self.up:
            if self.next_ping is not None and self.now >= self.next_ping:
                self.ping_out = self.now
                self.next_ping = self.now + self._ping_interval()
                out += self._sync({2: self.now})
            if self.ack_at is not None and self.now >= self.ack_at:
                self.ack_at = None
                if self.rx_seq > self.acked_sent:
                    out += self._sync({})
        out += self._flush()
        return bytes(out)

    # ---- internals ----------------------------------------------------------

    def _frame(self, mtype: int, payload: bytes,  # type: ignore[override]
               stream: int = 0, seq: int = 0, flags: int = 0, exts: Iterable[c.Ext] = (),
               message: Optional[str] = None, payload_comment: Optional[str] = None
               ) -> list[c.Segment]:
        """As RefSession._frame without the annotations (a live session only
        sends the bytes)."""
        return c.build_frame(mtype, flags=flags, stream=stream, seq=seq, payload=payload,
                             exts=exts)

    def _resumable(self) -> bool:
        return (self.session_id is not None and self.peer is not None
                and self.state in ("disconnected", "handshaking"))

    def _live(self, data: bytes) -> bytes:
        """A sequenced frame goes out now only on an established connection;
        otherwise it waits in the replay buffer for the resume (§16.2)."""
        return data if self.state == "established" and self.up else b""

    def _tick(self, now: Optional[int]) -> None:
        if now is not None:
            self.now = max(self.now, now)

    def _executes(self, task: int) -> bool:
        return task % 2 == (0 if self.initiator else 1)

    def _ping_interval(self) -> int:
        peer_min: int = self.peer[14] if self.peer else 0
        return max(self.config.ping_interval_us, peer_min)

    def _on_established(self) -> None:
        self.next_ping = self.now + self._ping_interval()
        self.acked_sent = self.rx_seq

    def _check_send(self, payload: bytes) -> None:
        if self.state != "established" and not (self.session_id and self.state == "disconnected"):
            if self.state in ("failed", "closed"):
                raise self.failure or error_from_name("UNAVAILABLE", "the session has ended")
        if self.peer is not None and len(payload) > self.peer[8]:
            raise error_from_name("FRAME_TOO_LARGE", "payload of %d bytes, the peer's "
                                  "max_payload_bytes is %d" % (len(payload), self.peer[8]))
        if len(self.replay) >= self.config.replay_frames:
            raise error_from_name("REPLAY_BUFFER_FULL", "%d frames unacknowledged"
                                  % len(self.replay))

    def _sync(self, values: dict[int, Any]) -> bytes:
        if self.rx_seq:
            values[1] = self.rx_seq
            self.acked_sent = self.rx_seq
        return _frames_bytes([("AGENT_SYNC", self._control(c.AGENT_SYNC, "AGENT_SYNC", values))])

    def _flush(self) -> bytes:
        """What is due after an input: a pong, the bye of a drained close."""
        out = bytearray()
        if self.state != "established" or not self.up:
            return b""
        if self.pong_due is not None:
            out += self._sync({3: self.pong_due})
            self.pong_due = None
        if self.closing_session and not self.bye_sent and not self.tasks and not self.replay:
            self.bye_sent = True
            out += self._sync({5: True})
        return bytes(out)

    def _fail(self, out: list[Frame], name: str, message: Optional[str],
              tell_peer: bool = True, canonical: Optional[str] = None) -> NoReturn:
        """As RefSession._fail; keeps the error (the message sent, or the
        peer's) as `failure`."""
        if self.failure is None:
            self.failure = error_from_name(name, message or self._peer_message or "")
            if canonical is not None and canonical in c.CANONICAL_CODES:
                self.failure.code = c.CANONICAL_CODES[canonical]
        super()._fail(out, name, message, tell_peer, canonical)

    def _after_input(self) -> None:
        if self.failure is None and self.state == "failed":
            ev = [e for e in self.take_events_peek() if e.type == "SessionFailed"]
            name = ev[-1].fields.get("error", "INTERNAL") if ev else "INTERNAL"
            self.failure = error_from_name(name)
        if self.state == "failed" or self.state == "closed":
            self.connection_ended = True
            self.deadlines.clear()
        if (self.state == "established" and self.rx_seq > self.acked_sent
                and self.ack_at is None):
            self.ack_at = self.now + self.config.ack_delay_us

    def take_events_peek(self) -> list[Event]:
        self._collect()
        return self.pending_events

    def _cancel_reason(self, task: int, reason: int) -> bytes:
        payload = c.encode_payload("AGENT_CANCEL", {1: reason})
        segs = self._frame(c.AGENT_CANCEL, payload, stream=task, seq=self.next_seq,
                           flags=c.FLAG_CHECKSUM, message="AGENT_CANCEL")
        self.replay.append((self.next_seq, "AGENT_CANCEL %d" % task, segs))
        self.next_seq += 1
        self.tasks[task] = "cancelling"
        self._emit("TaskCancelled", task=task,
                   status="DEADLINE_EXCEEDED" if reason == 4 else "CANCELLED")
        return self._live(_frames_bytes([("", segs)]))

    def _task_error(self, task: int, code: int, message: str, retryable: bool = False,
                    detail: Optional[int] = None) -> bytes:
        values: dict[int, Any] = {1: code, 2: message.encode("utf-8")}
        if retryable:
            values[3] = True
        if detail:
            values[4] = detail
        payload = c.encode_payload("AGENT_ERROR", values)
        segs = self._frame(c.AGENT_ERROR, payload, stream=task, seq=self.next_seq,
                           flags=c.FLAG_CHECKSUM, message="AGENT_ERROR")
        self.replay.append((self.next_seq, "AGENT_ERROR %d" % task, segs))
        self.next_seq += 1
        del self.tasks[task]
        self.deadlines.pop(task, None)
        return self._live(_frames_bytes([("", segs)]))

    # ---- limits against a hostile peer (§14.1, §15) -------------------------

    def _settle_rx(self) -> None:
        """Drops consumed bytes (rx_base keeps stream offsets) and notes a
        partial frame's start for frame_timeout (§14.1)."""
        if self.rx_pos and self.preface_seen:
            del self.rx[:self.rx_pos]
            self.rx_base += self.rx_pos
            self.rx_pos = 0
        if self.up and len(self.rx) > self.rx_pos and self.preface_seen:
            at = self.rx_base + self.rx_pos
            if self.partial_at != at:
                self.partial_at, self.partial_since = at, self.now
        else:
            self.partial_at = self.partial_since = None

    def _framing_error(self, err: c.WireError, out: list[Frame]) -> None:
        """§7, §16.1: a framing error ends the connection (the session
        resumes), except PAYLOAD_TOO_LARGE once established, which ends the
        session (§15.2: the peer knew the limit)."""
        offset = self.rx_base + err.offset
        if err.code == "PAYLOAD_TOO_LARGE" and self.state == "established":
            self._fail(out, "PAYLOAD_TOO_LARGE", "payload_length at stream offset %d is above "
                       "max_payload_bytes %d" % (offset, self.config.max_payload_bytes))
        self.lost()
        self._collect()
        for e in reversed(self.pending_events):
            if e.type == "ConnectionLost":
                e.fields.update(error=err.code, message="%s at stream offset %d" % (
                    err.code, offset))
                break

    def _progress(self, useful: bool, f: dict[str, Any], out: list[Frame]) -> None:
        """§14.1: counts consecutive frames that carry nothing new;
        PING_FLOOD past max_noop_frames."""
        if useful:
            self.noop_frames = 0
            return
        self.noop_frames += 1
        if self.noop_frames > self.config.max_noop_frames:
            self._fail(out, "PING_FLOOD", "%d frames in a row carry nothing new (limit %d); "
                       "the last: %s at stream offset %d" % (
                           self.noop_frames, self.config.max_noop_frames,
                           c.TYPE_NAMES[f["type"]], self._frame_at))

    def _free_acked(self, upto: int) -> None:
        """§15.1: a peer task's slot is free once its terminal frame is
        acknowledged."""
        for seq, title, _segs in self.replay:
            if seq > upto:
                break
            if title.startswith("AGENT_ERROR") or (title.startswith("AGENT_RESPONSE")
                                                   and title.endswith("FINAL")):
                self.peer_tasks_freed += 1

    def _apply_last_received(self, last: int) -> list[Frame]:
        self._free_acked(last)
        replayed: list[Frame] = super()._apply_last_received(last)
        return replayed

    def _handle(self, f: dict[str, Any], offset: int, size: int, out: list[Frame]) -> None:
        self._frame_at = self.rx_base + offset
        if self.state == "established":
            mtype = f["type"]
            if (mtype in (c.AGENT_TASK, 2)
                    and len(f["payload"]) > self.config.max_payload_bytes):
                # §15.2: the peer knew the limit; a resume would replay it.
                self._fail(out, "PAYLOAD_TOO_LARGE", "%s payload of %d bytes at stream offset "
                           "%d, max_payload_bytes is %d" % (
                               c.TYPE_NAMES[mtype], len(f["payload"]), self._frame_at,
                               self.config.max_payload_bytes))
            if mtype in (1, 2, 4) or (mtype == c.AGENT_ERROR and f["stream"] != 0):
                self._progress(f["seq"] > self.rx_seq, f, out)
        super()._handle(f, offset, size, out)

    # ---- received frames the transcript model leaves out --------------------

    def _handle_task(self, f: dict[str, Any], out: list[Frame]) -> None:
        assert self.peer is not None  # RefSession._handle: only once established
        task = f["stream"]
        own_parity = 1 if self.initiator else 0
        open_here = self.peer_tasks_received - self.peer_tasks_freed
        if (task % 2 != own_parity and task > self.last_peer_task
                and c.role_allows(self.peer[6], self.cfg["role"])
                and open_here >= self.config.max_tasks):
            self.last_peer_task = task
            self._fail(out, "TASK_LIMIT_EXCEEDED", "AGENT_TASK %d exceeds max_tasks %d" % (
                task, self.config.max_tasks))
        if self.closing_session:
            # §15.3: after our drain a task is not processed: the terminal
            # frame AGENT_ERROR{UNAVAILABLE, retryable, detail PEER_DRAINING};
            # its slot is held until that frame is acknowledged (§15.1).
            if (task % 2 == own_parity or task <= self.last_peer_task
                    or not c.role_allows(self.peer[6], self.cfg["role"])):
                super()._handle_task(f, out)      # its errors, as usual
                return
            self.last_peer_task = task
            self.peer_tasks_received += 1
            payload = c.encode_payload("AGENT_ERROR", {
                1: c.CANONICAL_CODES["UNAVAILABLE"],
                2: b"not processed: the peer is draining", 3: True,
                4: c.SESSION_ERRORS["PEER_DRAINING"][0]})
            title = "AGENT_ERROR %d" % task
            segs = self._frame(c.AGENT_ERROR, payload, stream=task, seq=self.next_seq,
                               flags=c.FLAG_CHECKSUM)
            self.replay.append((self.next_seq, title, segs))
            self.next_seq += 1
            out.append((title, segs))
            return None
        super()._handle_task(f, out)
        self.peer_tasks_received += 1
        if f["deadline"] is not None:
            self.deadlines[task] = self.now + f["deadline"]
        self._collect()
        method = f.get("method")
        self.pending_events[-1].fields["method"] = (method.decode("ascii")
                                                    if method is not None else None)

    def _handle_session_error(self, f: dict[str, Any], out: list[Frame]) -> None:
        try:
            v = c.parse_payload("AGENT_ERROR", f["payload"])
        except c.PayloadError:
            super()._handle_session_error(f, out)
            return
        self._peer_message = v.get(2, b"").decode("utf-8", "replace")
        detail = v.get(4, 0)
        framing = {code for code, _ in c.FRAMING_ERRORS.values()}
        if detail == c.FRAMING_ERRORS["PAYLOAD_TOO_LARGE"][0] and self.state == "established":
            # §15.2, §18: after the handshake it ends the session.
            self._fail(out, "PAYLOAD_TOO_LARGE", None, tell_peer=False,
                       canonical=c.CANONICAL_NAMES.get(v.get(1, 8)))
        if detail in framing or detail in (106, 116, 121):
            # §18: connection scope; the session resumes (§16).
            self.lost()
            return None
        super()._handle_session_error(f, out)

    def _handle_response(self, f: dict[str, Any], out: list[Frame]) -> None:
        if f["flags"] & c.FLAG_FINAL:
            self._terminal_seqs.append(f["seq"])
        if self.tasks.get(f["stream"]) == "cancelling":
            if f["flags"] & c.FLAG_FINAL:        # §13.3: expected, discarded
                del self.tasks[f["stream"]]
            return None
        if f["flags"] & c.FLAG_FINAL:
            self.deadlines.pop(f["stream"], None)
        super()._handle_response(f, out)

    def _handle_cancel(self, f: dict[str, Any], out: list[Frame]) -> None:
        if self.tasks.get(f["stream"]) != "running":
            return None                           # §13.3: already ended
        self.deadlines.pop(f["stream"], None)
        super()._handle_cancel(f, out)

    def _handle_task_error(self, f: dict[str, Any], out: list[Frame]) -> None:
        task = f["stream"]
        v = c.parse_payload("AGENT_ERROR", f["payload"])
        state = self.tasks.get(task)
        self._terminal_seqs.append(f["seq"])
        if state == "cancelling":
            del self.tasks[task]
            return None
        if state in ("submitted", "running"):
            del self.tasks[task]
            self.deadlines.pop(task, None)
            name = c.CANONICAL_NAMES.get(v[1], "UNKNOWN")
            detail = v.get(4) or None
            self._emit("TaskFailed", task=task, code=v[1], status=name,
                       message=v.get(2, b"").decode("utf-8", "replace"),
                       retryable=bool(v.get(3)), detail=detail,
                       detail_name=c.SESSION_ERROR_NAMES.get(detail) if detail else None)
        return None

    def _handle_sync(self, f: dict[str, Any], out: list[Frame]) -> None:
        v = c.parse_payload("AGENT_SYNC", f["payload"])
        # §14.1: what this SYNC brings that is new, decided before it is applied.
        self._progress((1 in v and v[1] > self.acked) or 2 in v
                       or (3 in v and self.ping_out is not None and v[3] == self.ping_out)
                       or (4 in v and not self.peer_draining) or 5 in v, f, out)
        if 2 in v:
            # §14.1: a ping closer than half min_peer_ping_interval is a strike.
            if (self.last_ping_rx is not None and self.now - self.last_ping_rx
                    < self.config.min_peer_ping_interval_us // 2):
                self.ping_strikes += 1
                if self.ping_strikes > self.config.max_ping_strikes:
                    self._fail(out, "PING_FLOOD", "%d pings closer than half of "
                               "min_peer_ping_interval (%d us)" % (
                                   self.ping_strikes, self.config.min_peer_ping_interval_us))
            else:
                self.ping_strikes = 0
            self.last_ping_rx = self.now
            self.pong_due = v[2]
        if 3 in v and self.ping_out is not None and v[3] == self.ping_out:
            sample = self.now - v[3]
            self.srtt = sample if self.srtt is None else (7 * self.srtt + sample) // 8
            self.ping_out = None
        if 5 in v and self.tasks:
            self._fail(out, "UNEXPECTED_FRAME", self._error_message())
        if 1 in v and self.acked < v[1] <= self.next_seq - 1:
            self._free_acked(v[1])
        rest = {k: val for k, val in v.items() if k not in (2, 3)}
        f = dict(f, payload=c.encode_payload("AGENT_SYNC", rest))
        super()._handle_sync(f, out)


class Acceptor:
    """The acceptor's registry (SPEC.md §20): `new_connection()` gives the
    session state for a new transport connection; after each `receive` on it,
    `receive(conn, data, now)` hands a resuming connection to the session it
    names (§16.2) and returns the session that now owns the connection.

    Bounds, as the C++ Endpoint's: at most `max_handshakes` connections
    handshake at once (new_connection refuses more), each may send at most
    `max_handshake_bytes` before its handshake ends, and at most
    `max_sessions` sessions are registered; past the last two the connection
    is ended with a stream-0 AGENT_ERROR RESOURCE_EXHAUSTED (no symwire
    detail fits), so memory is bounded whatever connections send."""

    def __init__(self, config: Config, *, max_handshakes: int = 1024,
                 max_handshake_bytes: int = 32 << 10, max_sessions: int = 10000) -> None:
        self.config = config
        self.sessions: dict[bytes, Session] = {}
        self._fresh = 0
        self.max_handshakes = max_handshakes
        self.max_handshake_bytes = max_handshake_bytes
        self.max_sessions = max_sessions
        self.handshaking: dict[int, Session] = {}     # id(conn) -> conn
        self._handshake_bytes: dict[int, int] = {}

    def new_connection(self, now: int = 0) -> tuple[Session, bytes]:
        """A fresh acceptor session for a new connection, and the bytes to
        send (the preface). Raises SymwireError RESOURCE_EXHAUSTED when
        max_handshakes connections are handshaking: close the connection."""
        if len(self.handshaking) >= self.max_handshakes:
            raise SymwireError(c.CANONICAL_CODES["RESOURCE_EXHAUSTED"], "RESOURCE_EXHAUSTED",
                               "%d connections handshaking (max_handshakes %d)" % (
                                   len(self.handshaking), self.max_handshakes))
        cfg = self.config
        if cfg.seed is not None:
            cfg = Config(**dict(cfg.__dict__, seed=cfg.seed + self._fresh))
        self._fresh += 1
        s = Session("acceptor", cfg, now)
        self.handshaking[id(s)] = s
        self._handshake_bytes[id(s)] = 0
        return s, s.connect(now)

    def connection_closed(self, conn: Session) -> None:
        """The transport of `conn` has ended: it no longer handshakes."""
        self.handshaking.pop(id(conn), None)
        self._handshake_bytes.pop(id(conn), None)

    def _abort(self, conn: Session, message: str, now: int) -> bytes:
        """Ends `conn` with a stream-0 AGENT_ERROR RESOURCE_EXHAUSTED (no
        detail) and the event SessionFailed."""
        out = b""
        if conn.up and not conn.closing:
            out = _frames_bytes([("AGENT_ERROR", conn._control(c.AGENT_ERROR, "AGENT_ERROR", {
                1: c.CANONICAL_CODES["RESOURCE_EXHAUSTED"], 2: message.encode("utf-8")}))])
        conn._tick(now)
        conn.closing = True
        conn.state = "failed"
        conn.tasks = {}
        conn.failure = SymwireError(c.CANONICAL_CODES["RESOURCE_EXHAUSTED"],
                                    "RESOURCE_EXHAUSTED", message)
        conn.connection_ended = True
        conn.deadlines.clear()
        conn._emit("SessionFailed", status="RESOURCE_EXHAUSTED", error="RESOURCE_EXHAUSTED",
                   message=message)
        self.connection_closed(conn)
        return out

    def receive(self, conn: Session, data: bytes, now: int) -> tuple[Session, bytes]:
        key = id(conn)
        if key in self.handshaking:
            self._handshake_bytes[key] += len(data)
            if self._handshake_bytes[key] > self.max_handshake_bytes:
                # Bounded memory before authentication: the bytes are not fed.
                return conn, self._abort(conn, "handshake sent %d bytes (max_handshake_bytes "
                                         "%d)" % (self._handshake_bytes[key],
                                                  self.max_handshake_bytes), now)
        out = conn.receive(data, now)
        if conn.state != "handshaking" or conn.handshake == "await_resume":
            self.connection_closed(conn)
        if (conn.state == "established" and conn.session_id is not None
                and conn.session_id not in self.sessions):
            if len(self.sessions) >= self.max_sessions:
                for sid, old in list(self.sessions.items()):      # drop the ended ones
                    if old.state in ("closed", "failed"):
                        del self.sessions[sid]
            if len(self.sessions) >= self.max_sessions:
                return conn, out + self._abort(conn, "the agent holds %d sessions "
                                               "(max_sessions %d)" % (
                                                   len(self.sessions), self.max_sessions),
                                               now)
            self.sessions[conn.session_id] = conn
        if conn.handshake != "await_resume":
            return conn, out
        assert conn.hello is not None  # await_resume: its HELLO was read
        reg = self.sessions.get(conn.hello[18])
        frames: list[Frame] = []
        if reg is None or reg.up:
            if reg is not None:
                reg.lost(now)     # §20: the new connection supersedes a half-open one
            if reg is None:
                try:
                    conn._fail(frames, "SESSION_EXPIRED", conn._error_message())
                except TranscriptError:
                    pass
                conn.connection_ended = True
                return conn, out + _frames_bytes(frames)
        shim = SimpleNamespace(registered=reg, endpoint=conn)
        try:
            RefServer._adopt(shim, conn, frames)  # type: ignore[arg-type]
        except TranscriptError:
            conn.connection_ended = True
            return conn, out + _frames_bytes(frames)
        reg._tick(now)
        reg.rx_base = conn.rx_base       # the connection's bytes moved with it
        reg._new_connection_state()
        reg._settle_rx()
        reg.last_rx = reg.connected_at = reg.now
        reg.connection_ended = False
        reg.ping_out = reg.pong_due = None
        reg._on_established()
        return reg, out + _frames_bytes(frames) + reg._flush()

    def forget(self, session: Session) -> None:
        if session.session_id is not None:
            self.sessions.pop(session.session_id, None)
