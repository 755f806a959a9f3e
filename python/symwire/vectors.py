#!/usr/bin/python3
"""The golden-vector checker of symwire (tools/vectors_ref.py runs this module).

This is a tool for humans who write and review the golden vectors in
tests/vectors/*.md. It is deliberately NOT derived from the C++ codec: every
rule below cites the SPEC.md section it implements. The C++ tests never run it.
It covers the framing layer (§2-§8), the session layer's parameter lists
(§11: the payloads of AGENT_INIT, AGENT_SYNC, AGENT_ERROR, AGENT_CANCEL), and
a model of the handshake, tasks, a cancel and the acknowledgements (§12-§14)
with the SplitMix64 random source of the C++ tests, for the transcripts, and
the reconnect backoff (§16.1).

Dependencies: Python 3 standard library plus Debian's python3-xxhash (XXH3-64),
hence the /usr/bin/python3 shebang (a pyenv python3 on PATH will not see the
Debian module):

    apt-get install -y python3-xxhash xxhash

Modes:

    python3 -m symwire.vectors selftest
        CRC32C (bitwise and table-driven) and XXH3-64 check values, varint
        round trips, header_length edge cases (9, 63/64, limits), session
        parameter lists (SPEC.md §11), SplitMix64 and HMAC-SHA256 check values.
    vectors_ref.py check [FILE.md ...]
        Re-decodes every vector of every file (default: all of tests/vectors/)
        and verifies that each hex block produces exactly its log, that the
        names are unique, and that decoding every prefix of a stream is
        consistent with decoding all of it (what a byte-by-byte test sees).
        session_payloads.md holds payloads, not streams: each is parsed by
        §11 as the message its options name, and `encoder=same` must be set
        exactly on the valid ones that are the canonical encoding.
        session_transcripts.md holds handshake transcripts: each is replayed
        on two model sessions (SPEC.md §10-§14, built from the vector's
        options and seeds) and every `out` byte range and event must be the
        model's. backoff.md: each delay is recomputed from the attempt number
        and the 8 jitter bytes (§16.1).
    vectors_ref.py transcript [NAME ...]
        Prints the options, hex and log blocks of the named transcript
        scenarios (TRANSCRIPT_SCENARIOS; default all), as written into
        tests/vectors/session_transcripts.md.
    vectors_ref.py decode [--preface=off] [--max-header-bytes=N]
                          [--max-payload-bytes=N] [--max-extensions=N] HEX...
        Prints the log of a byte stream (the `log` block of a vector).
    vectors_ref.py payload-decode MESSAGE HEX...
        Prints the log of one session payload (SPEC.md §11; the `log` block
        of a tests/vectors/session_payloads.md vector). MESSAGE is AGENT_INIT,
        AGENT_SYNC, AGENT_ERROR or AGENT_CANCEL.
    vectors_ref.py payload MESSAGE [--canonical] ITEM...
        Prints an annotated `hex` block for one parameter list, the items in
        the order given (--canonical: in the encoder's order and form, see
        encode_payload). ITEM: NAME=VALUE or ID=VALUE (varint params take a
        number, bytes params hex or '-', flags nothing, ids the message does
        not define a hex value) or raw=HEX. Example:
          tools/vectors_ref.py payload AGENT_SYNC ack=5 bye=
    vectors_ref.py crc HEX...        CRC32C of the bytes: crc=0xXXXXXXXX
    vectors_ref.py xxh3 HEX...       XXH3-64 (seed 0) of the bytes
    vectors_ref.py varint N [SIZE]   encode N (SIZE forces a longer, non-canonical
                                     form) as hex
    vectors_ref.py frame KEY=VALUE...
        Prints an annotated `hex` block for one frame (no preface). Keys:
          type=AGENT_TASK|1  flags=0x01  stream=N  seq=N  payload=HEX
          text=ASCII (payload as text)  deadline=N  traceparent=HEX(26 bytes)
          tracestate=ASCII  metadata=KEYHEX:VALUEHEX  ext=TYPE:VALUEHEX
          (extensions are written in the order given; repeatable)
          crc=0xXXXXXXXX (force a wrong CRC)  checksum=0x... (force a wrong
          XXH3)  stream_size/seq_size/plen_size/hl_size=N (force longer varints)
          hl=N (force the header_length value; by default it is the number of
          header bytes after the header_length varint, CRC included)
        Example:
          tools/vectors_ref.py frame type=AGENT_TASK stream=1 text=hi flags=0x01

HEX arguments may contain spaces and '#' comments; they are joined.
"""

from __future__ import annotations

import hmac
import os
import re
import sys
from typing import Any, NoReturn, Protocol

from . import codec as _codec
from .codec import *  # noqa: F401,F403  (the vectors name every layer-1 constant)
from .codec import _reflect  # noqa: F401


# One frame as a session writes it: (title, segments).
Frame = tuple[str, list[Segment]]


class RandomSource(Protocol):
    """Where a session's nonces and session ids come from: SplitMix64 in
    the transcripts, os.urandom in a live session."""

    def fill(self, n: int) -> bytes: ...

class RefSession:
    """One side of a connection, as SPEC.md §10-§14 describe it.

    Every call (connect, receive, submit, respond) returns the frames it
    writes as a list of (title, segments) where segments are (bytes,
    comment) pairs, and appends the events it reports to self.events as log
    lines. The clock never moves (no heartbeat, no timer fires)."""

    def __init__(self, side: str, cfg: dict[str, Any]) -> None:
        self.side = side
        self.cfg = cfg
        self.initiator = side == "initiator"
        self.rng: RandomSource = SplitMix64(cfg["seed"])
        self.events: list[str] = []
        self.rx = bytearray()
        self.rx_pos = 0
        self.preface_seen = False
        self.up = False
        self.closing = False
        self.state = "idle"
        self.handshake: str | None = None   # "await_hello", ... while handshaking
        self.nc = self.ns = None
        self.challenged = False
        self.hello: dict[int, Any] | None = None   # our AGENT_INIT HELLO's values
        self.peer: dict[int, Any] | None = None    # the peer's HELLO / WELCOME values
        self.version = None
        self.session_id = self.resume_token = None
        self.next_seq = 1
        self.acked = 0
        self.rx_seq = 0
        self.unacked_frames = 0
        self.unacked_bytes = 0
        self.ack_due = False
        self.next_task = 1 if self.initiator else 2   # §13.1
        self.last_peer_task = 0
        self.tasks: dict[int, str] = {}    # task -> "submitted", "running", ...
        # §14.2, §16.2: sequenced frames sent and not yet acknowledged, as
        # (sequence, title, segments), replayed after a resume.
        self.replay: list[tuple[int, str, list[Segment]]] = []
        self.resuming = False      # acceptor: the HELLO resumes (§16.2)
        self.proof_in = None       # acceptor: the PROOF's resume_proof
        self.welcome_auth = b""    # acceptor: the method's WELCOME auth_data
        self.closing_session = False   # §15.3: Close() was called
        self.bye_sent = False          # ... and bye went out on this connection
        self.peer_draining = False

    # ---- output helpers ---------------------------------------------------

    def _frame(self, mtype, payload, stream=0, seq=0, flags=0, exts=(), message=None,
               payload_comment=None):
        """One frame as segments, its payload annotated: a parameter list
        (`message` names it) or opaque bytes."""
        segs = build_frame(mtype, flags=flags, stream=stream, seq=seq, payload=payload,
                           exts=exts)
        if payload:
            i = next(k for k, (b, c) in enumerate(segs) if c.startswith("payload ("))
            if message is not None:
                values = parse_payload(message, payload)
                params = canonical_params(message, values)
                if message == "AGENT_ERROR" and 2 in values:
                    for p in params:
                        if p.pid == 2:
                            p.value_comment = '"%s"' % values[2].decode("utf-8")
                segs[i:i + 1] = payload_segments(message, params)
            elif payload_comment:
                segs[i] = (payload, payload_comment)
        return segs

    def _control(self, mtype, message, values):
        payload = encode_payload(message, values)
        # §10.1: CHECKSUM on every connection frame with a non-empty payload.
        return self._frame(mtype, payload, flags=FLAG_CHECKSUM if payload else 0,
                           message=message)

    def _init(self, values):
        return self._control(AGENT_INIT, "AGENT_INIT", values)

    def _local_limits(self) -> dict[int, Any]:
        """The HELLO/WELCOME parameters 5-14 that describe this side (§11.1)."""
        c = self.cfg
        return {5: c["agent_id"].encode("ascii"), 6: c["role"], 7: c["capabilities"],
                8: c["max_payload_bytes"], 9: c["max_header_bytes"], 10: c["max_tasks"],
                11: c["replay_bytes"], 12: c["replay_frames"],
                13: c["ping_interval_us"], 14: c["min_peer_ping_interval_us"]}

    def _event(self, text: str) -> None:
        self.events.append("event side=%s %s" % (self.side, text))

    def _fail(self, out: list[Frame], name: str, message: str | None,
              tell_peer: bool = True, canonical: str | None = None) -> NoReturn:
        """Ends the session on error `name` (§18). With tell_peer, first
        sends the stream-0 AGENT_ERROR §12.2/§18 ask for: the canonical code,
        the message, the detail code."""
        code, default_canonical = (SESSION_ERRORS.get(name) or FRAMING_ERRORS[name])
        canonical = canonical or default_canonical
        assert canonical is not None  # only PEER_ERROR has none, and it is received only
        if tell_peer and self.up and not self.closing:
            if message is None:
                raise NotImplementedError(
                    "%s: SPEC.md fixes no message text for %s; the vector must give "
                    "%s.error_message" % (self.side, name, self.side))
            values = {1: CANONICAL_CODES[canonical], 2: message.encode("utf-8"), 4: code}
            out.append(("AGENT_ERROR on stream 0: %s, detail %s" % (canonical, name),
                        self._control(AGENT_ERROR, "AGENT_ERROR", values)))
        self.closing = True
        self.state = "failed"
        affected = ",".join(str(t) for t in sorted(self.tasks)) or "-"
        self.tasks = {}
        self._event("type=SessionFailed status=%s error=%s affected=%s"
                    % (canonical, name, affected))
        raise TranscriptError(name)

    def _error_message(self):
        return self.cfg.get("error_message")

    def _framing_error(self, err: WireError, out: list[Frame]) -> None:
        """A framing error on an established connection or at the initiator:
        not modelled by the transcripts (symwire.session.Session ends the
        connection, §7, §16.1)."""
        raise NotImplementedError("framing error %s" % err)

    # ---- inputs -------------------------------------------------------------

    def connect(self):
        """TransportConnected: the preface (§3); the initiator's HELLO right
        after it (§12.1). Draws: the initiator its client nonce Nc, the
        acceptor its server nonce Ns (32 bytes each)."""
        self.up = True
        self.closing = False
        self.state = "handshaking"
        # A new connection starts afresh (§16.2): no bytes, no pending ack.
        self.rx = bytearray()
        self.rx_pos = 0
        self.preface_seen = False
        self.challenged = False
        self.bye_sent = False
        out = [("preface", [(PREFACE, "preface: magic 89 'SYMW' CR LF, wire version 1")])]
        c = self.cfg
        if self.initiator:
            self.nc = self.rng.fill(32)
            values = {1: HELLO, 2: c["min_version"], 3: c["max_version"]}
            values.update(self._local_limits())
            values[15] = c["auth"]
            if c["auth"] == 1:
                values[16] = c["auth_secret"]     # §12.3 token
            values[17] = self.nc
            if self.session_id is not None:
                # §16.2: a resume names the session and its position; the
                # token itself is proved in PROOF, never sent.
                values[18] = self.session_id
                values[20] = self.rx_seq
            out.append(("AGENT_INIT HELLO", self._init(values)))
            self.handshake = "await_server"
        else:
            self.ns = self.rng.fill(32)
            self.handshake = "await_hello"
        return out

    def lost(self):
        """TransportLost (§16.1): the connection ended. The session keeps its
        state; the initiator schedules a reconnect, drawing 8 bytes for the
        jitter (SPEC.md §19)."""
        if not self.up:
            return []
        self.up = False
        self.closing = True
        self.state = "disconnected"
        self._event("type=ConnectionLost error=CONNECTION_LOST")
        if self.initiator:
            self.rng.fill(8)
        return []

    def close(self):
        """Close (§15.3): drain, and with nothing open and nothing
        unacknowledged, bye in the same SYNC (every SYNC carries the ack)."""
        if self.state != "established":
            raise NotImplementedError("close outside an established connection")
        self.closing_session = True
        values = {4: self.last_peer_task}
        if self.rx_seq:
            values[1] = self.rx_seq
        title = "AGENT_SYNC drain=%d" % self.last_peer_task
        if not self.tasks and not self.replay:
            values[5] = True
            self.bye_sent = True
            title += " bye"
        return [(title, self._control(AGENT_SYNC, "AGENT_SYNC", values))]

    def receive(self, data):
        out = []
        if not self.up or self.closing:
            raise NotImplementedError("%s receives with no connection up" % self.side)
        self.rx += data
        opts = Options()
        opts.preface = False
        opts.max_header_bytes = self.cfg["max_header_bytes"]
        opts.max_extensions = self.cfg["max_extensions"]
        try:
            while not self.closing:
                # §15.2: 8192 for every frame before the handshake completes;
                # then the announced limit, control payloads up to 8192
                # whatever it is.
                opts.max_payload_bytes = (
                    max(self.cfg["max_payload_bytes"], MAX_CONTROL_PAYLOAD)
                    if self.state == "established" else MAX_CONTROL_PAYLOAD)
                if not self.preface_seen:
                    if len(self.rx) < len(PREFACE):
                        break
                    if bytes(self.rx[:len(PREFACE)]) != PREFACE:
                        raise NotImplementedError("bad preface")
                    self.preface_seen = True
                    self.rx_pos = len(PREFACE)
                    continue
                info = {}
                try:
                    _, size = decode_frame(self.rx, self.rx_pos, opts, info, log=False)
                except Incomplete:
                    break
                except WireError as err:
                    if self.state == "established" or self.initiator:
                        self._framing_error(err, out)
                        break
                    # §7, §16.1: a framing error ends the connection; an
                    # acceptor with no session yet has nothing to resume, so
                    # it fails, sending nothing (the stream is not trusted).
                    self._fail(out, err.code, None, tell_peer=False)
                offset = self.rx_pos
                self.rx_pos += size
                self._handle(info, offset, size, out)
        except TranscriptError:
            return out
        # §14.2: acknowledgements, coalesced into one SYNC per input.
        if self.ack_due and self.state == "established" and not self.closing:
            out.append(("AGENT_SYNC ack=%d" % self.rx_seq,
                        self._control(AGENT_SYNC, "AGENT_SYNC", {1: self.rx_seq})))
            self.ack_due = False
            self.unacked_frames = self.unacked_bytes = 0
        # Within what one input writes, connection frames go before
        # sequenced ones (this implementation's order, see the file's
        # "Output order"): the ack precedes a task's terminal frame.
        return ([fr for fr in out if not _is_sequenced(fr[1])]
                + [fr for fr in out if _is_sequenced(fr[1])])

    def submit(self, payload, deadline_us=None):
        """A task (§13.2): the next own id, the next sequence (§10), CHECKSUM
        when the configuration enables payload checksums and the payload is
        not empty (§10.1), DEADLINE (§5) when given."""
        if self.state != "established" or not role_allows(self.cfg["role"], self.peer[6]):
            raise NotImplementedError("submit not allowed here")
        task = self.next_task
        self.next_task += 2
        exts = [deadline_ext(deadline_us)] if deadline_us is not None else []
        # §10.1: an empty payload never carries a checksum.
        flags = FLAG_CHECKSUM if self.cfg["payload_checksums"] and payload else 0
        segs = self._frame(AGENT_TASK, payload, stream=task, seq=self.next_seq, flags=flags,
                           exts=exts, payload_comment=_text_comment(payload))
        self.replay.append((self.next_seq, "AGENT_TASK %d" % task, segs))
        self.next_seq += 1
        self.tasks[task] = "submitted"
        return task, [("AGENT_TASK %d" % task, segs)]

    def respond(self, task, payload, final):
        if self.tasks.get(task) != "running":
            raise NotImplementedError("respond to a task not running here")
        flags = (FLAG_CHECKSUM if self.cfg["payload_checksums"] and payload else 0) | (
            FLAG_FINAL if final else 0)
        segs = self._frame(2, payload, stream=task, seq=self.next_seq, flags=flags,
                           payload_comment=_text_comment(payload))
        title = "AGENT_RESPONSE %d%s" % (task, " FINAL" if final else "")
        self.replay.append((self.next_seq, title, segs))
        self.next_seq += 1
        if final:
            del self.tasks[task]
        return [(title, segs)]

    def cancel(self, task):
        """A local cancel (§13.3): AGENT_CANCEL with reason 1, its absent
        meaning, so an empty payload (§11) without CHECKSUM (§10.1). The task
        ends locally at once and stays cancelling until the executor's
        terminal frame arrives."""
        if self.tasks.get(task) not in ("submitted", "running"):
            raise NotImplementedError("cancel of a task not open here")
        payload = encode_payload("AGENT_CANCEL", {})
        segs = self._frame(AGENT_CANCEL, payload, stream=task, seq=self.next_seq,
                           flags=FLAG_CHECKSUM if payload else 0, message="AGENT_CANCEL")
        self.replay.append((self.next_seq, "AGENT_CANCEL %d" % task, segs))
        self.next_seq += 1
        self.tasks[task] = "cancelling"
        self._event("type=TaskCancelled task=%d status=CANCELLED" % task)
        return [("AGENT_CANCEL %d" % task, segs)]

    # ---- received frames ----------------------------------------------------

    def _handle(self, f, offset, size, out):
        mtype = f["type"]
        if self.state != "established":
            # §12.1: before the handshake only INIT of the expected phase and
            # a stream-0 ERROR; anything else: UNAUTHENTICATED/UNEXPECTED_FRAME.
            if mtype == AGENT_INIT:
                return self._handle_init(f, out)
            if mtype == AGENT_ERROR and f["stream"] == 0:
                return self._handle_session_error(f, out)
            self._fail(out, "UNEXPECTED_FRAME", self._error_message(),
                       canonical="UNAUTHENTICATED")
        sequenced = mtype in (1, 2, 4) or (mtype == AGENT_ERROR and f["stream"] != 0)
        if sequenced:
            # §10: s = r + 1 accepted, s <= r duplicate, else SEQUENCE_GAP.
            if f["seq"] == 0 or f["seq"] > self.rx_seq + 1:
                self._fail(out, "SEQUENCE_GAP", self._error_message())
            if f["seq"] <= self.rx_seq:
                return None
            self.rx_seq = f["seq"]
            self.unacked_frames += 1
            self.unacked_bytes += size
            # §14.2: ack once the unacknowledged frames reach a sixteenth of
            # the peer's replay_frames (at least 1), or their bytes a
            # sixteenth of its replay_bytes (at least 1).
            if (self.unacked_frames >= max(1, self.peer[12] // 16)
                    or self.unacked_bytes >= max(1, self.peer[11] // 16)):
                self.ack_due = True
        elif f["seq"] != 0:
            self._fail(out, "SEQUENCE_GAP", self._error_message())
        if mtype == AGENT_TASK:
            return self._handle_task(f, out)
        if mtype == 2:
            return self._handle_response(f, out)
        if mtype == AGENT_SYNC:
            return self._handle_sync(f, out)
        if mtype == AGENT_CANCEL:
            return self._handle_cancel(f, out)
        if mtype == AGENT_ERROR and f["stream"] != 0:
            return self._handle_task_error(f, out)
        if mtype == AGENT_INIT:
            self._fail(out, "UNEXPECTED_FRAME", self._error_message())
        if mtype == AGENT_ERROR and f["stream"] == 0:
            return self._handle_session_error(f, out)
        raise NotImplementedError("%s frames are not modelled" % TYPE_NAMES[mtype])

    def _handle_init(self, f, out):
        try:
            v = parse_payload("AGENT_INIT", f["payload"])
        except PayloadError as err:
            self._fail(out, err.code, self._error_message())
        phase = v[1]
        expected = {"await_hello": (HELLO,), "await_proof": (PROOF,),
                    "await_server": (CHALLENGE, WELCOME),
                    "await_welcome": (WELCOME,)}[self.handshake]
        if phase not in expected:
            self._fail(out, "UNEXPECTED_FRAME", self._error_message(),
                       canonical="UNAUTHENTICATED")
        if phase == HELLO:
            return self._handle_hello(v, out)
        if phase == PROOF:
            return self._handle_proof(v, out)
        if phase == CHALLENGE:
            return self._handle_challenge(v, out)
        return self._handle_welcome(v, out)

    def _hmac(self, label, agent_id):
        # §12.3: HMAC-SHA256(key, label || Nc || Ns || agent_id_i).
        return hmac_sha256(self.cfg["auth_secret"], label + self.nc + self.ns + agent_id)

    def _handle_hello(self, v, out):
        c = self.cfg
        # §12.2 rule 2: the chosen version is the highest in both ranges.
        lo, hi = max(c["min_version"], v[2]), min(c["max_version"], v[3])
        if lo > hi:
            text = "no common session version: local %d..%d, peer %d..%d" % (
                c["min_version"], c["max_version"], v[2], v[3])
            given = self._error_message()
            if given is not None and given != text:
                raise ValueError("error_message differs from §12.2's text %r" % text)
            self._fail(out, "VERSION_MISMATCH", text)
        # Rule 3: roles (§11.3).
        if not (role_allows(c["role"], v[6]) or role_allows(v[6], c["role"])):
            self._fail(out, "INCOMPATIBLE_ROLES", self._error_message())
        # Rule 4: the method, then its check (§12.3).
        if v[15] != c["auth"]:
            self._fail(out, "UNAUTHENTICATED", self._error_message())
        self.hello = v
        self.nc = v[17]
        self.version = hi
        data = v.get(16, b"")
        if 18 in v:
            # §16.2: the method's own check, then always a CHALLENGE (with
            # Ns only), so that PROOF proves the resume token.
            self.resuming = True
            if (c["auth"] in (0, 2) and data) or (c["auth"] == 1 and data != c["auth_secret"]):
                self._fail(out, "UNAUTHENTICATED", self._error_message())
            out.append(("AGENT_INIT CHALLENGE", self._init({1: CHALLENGE, 17: self.ns})))
            self.handshake = "await_proof"
            return None
        if c["auth"] == 0:
            if data:
                self._fail(out, "UNAUTHENTICATED", self._error_message())
            return self._welcome(b"", out)
        if c["auth"] == 1:
            if data != c["auth_secret"]:      # lengths first, then contents
                self._fail(out, "UNAUTHENTICATED", self._error_message())
            return self._welcome(b"", out)
        if data:
            self._fail(out, "UNAUTHENTICATED", self._error_message())
        # Method 2: CHALLENGE carries Ns.
        out.append(("AGENT_INIT CHALLENGE", self._init({1: CHALLENGE, 17: self.ns})))
        self.handshake = "await_proof"
        return None

    def _handle_proof(self, v, out):
        if self.resuming:
            # §16.2: resume_proof required; the method's proof (method 2)
            # or no auth_data (methods 0, 1); then the registry decides.
            if 23 not in v:
                self._fail(out, "MISSING_PARAM", self._error_message())
            if self.cfg["auth"] == 2:
                want = self._hmac(HMAC_CLIENT_LABEL, self.hello[5])
                if not hmac.compare_digest(v.get(16, b""), want):
                    self._fail(out, "UNAUTHENTICATED", self._error_message())
                self.welcome_auth = self._hmac(HMAC_SERVER_LABEL, self.hello[5])
            elif v.get(16):
                self._fail(out, "UNAUTHENTICATED", self._error_message())
            self.proof_in = v[23]
            self.handshake = "await_resume"
            self._event("type=ResumeRequested session_id=%s" % self.hello[18].hex())
            return None
        if 23 in v:
            self._fail(out, "UNEXPECTED_FRAME", self._error_message(),
                       canonical="UNAUTHENTICATED")
        want = self._hmac(HMAC_CLIENT_LABEL, self.hello[5])
        if not hmac.compare_digest(v.get(16, b""), want):
            self._fail(out, "UNAUTHENTICATED", self._error_message())
        return self._welcome(self._hmac(HMAC_SERVER_LABEL, self.hello[5]), out)

    def _welcome(self, auth_data, out):
        """A new session (§12.1): draws the session id, then the resume token
        (16 bytes each), then WELCOME; the acceptor is established once it has
        sent it."""
        self.session_id = self.rng.fill(16)
        self.resume_token = self.rng.fill(16)
        values = {1: WELCOME, 4: self.version}
        values.update(self._local_limits())
        if auth_data:
            values[16] = auth_data
        values.update({17: self.ns, 18: self.session_id, 19: self.resume_token,
                       20: self.rx_seq, 22: self.cfg["resume_window_us"]})
        out.append(("AGENT_INIT WELCOME", self._init(values)))
        self._establish(self.hello)
        return None

    def _establish(self, peer, resumed=False):
        self.peer = peer
        self.state = "established"
        self.handshake = None
        # §16.2: the HELLO / WELCOME carried last_received, an ack of
        # everything accepted so far: ack counting starts over.
        self.unacked_frames = self.unacked_bytes = 0
        self.ack_due = False
        self._event("type=Established resumed=%d replayed=%d peer_agent_id=%s peer_role=%d "
                    "version=%d negotiated_capabilities=%d session_id=%s" % (
                        1 if resumed else 0, len(self.replay) if resumed else 0,
                        peer[5].hex(), peer[6], self.version,
                        peer.get(7, 0) & self.cfg["capabilities"], self.session_id.hex()))

    def _check_resumed_contract(self, v, version, out):
        """§16.2 step 2: identity and the limits frames and tasks were sized
        for are those of the session (RESUME_REJECTED); the others may
        change."""
        p = self.peer
        if (v[5] != p[5] or v[6] != p[6] or version != self.version
                or any(v[k] != p[k] for k in (8, 9, 10))):
            self._fail(out, "RESUME_REJECTED", self._error_message())

    def _check_last_received(self, last, out):
        """§16.2 steps 3 and 4."""
        if last > self.next_seq - 1:
            self._fail(out, "BAD_ACK", self._error_message())
        if last < self.acked:
            self._fail(out, "RESUME_GAP", self._error_message())

    def _apply_last_received(self, last):
        self.acked = last
        self.replay = [r for r in self.replay if r[0] > last]
        return [("%s (replayed)" % title, segs) for _, title, segs in self.replay]

    def _handle_challenge(self, v, out):
        if self.session_id is not None:
            # §16.2: the resume's CHALLENGE. PROOF carries the method's
            # proof (method 2) and resume_proof.
            if v.get(16):
                self._fail(out, "UNAUTHENTICATED", self._error_message())
            self.ns = v[17]
            self.challenged = True
            values = {1: PROOF}
            if self.cfg["auth"] == 2:
                values[16] = self._hmac(HMAC_CLIENT_LABEL, self.cfg["agent_id"].encode("ascii"))
            values[23] = resume_proof(self.resume_token, RESUME_CLIENT_LABEL, self.nc,
                                      self.ns, self.session_id, self.rx_seq)
            out.append(("AGENT_INIT PROOF", self._init(values)))
            self.handshake = "await_welcome"
            return None
        if self.cfg["auth"] != 2 or v.get(16):
            self._fail(out, "UNAUTHENTICATED", self._error_message())
        self.ns = v[17]
        self.challenged = True
        proof = self._hmac(HMAC_CLIENT_LABEL, self.cfg["agent_id"].encode("ascii"))
        out.append(("AGENT_INIT PROOF", self._init({1: PROOF, 16: proof})))
        self.handshake = "await_welcome"
        return None

    def _handle_welcome(self, v, out):
        c = self.cfg
        # §12.2, initiator: the version lies in its range, roles, the
        # method's final check.
        if not c["min_version"] <= v[4] <= c["max_version"]:
            self._fail(out, "VERSION_MISMATCH", self._error_message())
        if not (role_allows(c["role"], v[6]) or role_allows(v[6], c["role"])):
            self._fail(out, "INCOMPATIBLE_ROLES", self._error_message())
        data = v.get(16, b"")
        if c["auth"] == 2:
            if not self.challenged or v[17] != self.ns:
                self._fail(out, "UNAUTHENTICATED", self._error_message())
            if not hmac.compare_digest(data, self._hmac(
                    HMAC_SERVER_LABEL, c["agent_id"].encode("ascii"))):
                self._fail(out, "UNAUTHENTICATED", self._error_message())
        elif data:
            self._fail(out, "UNAUTHENTICATED", self._error_message())
        if self.session_id is not None:
            # §16.2, the initiator: resumed, the same session, the
            # acceptor's proof, the contract, a last_received it can serve.
            if not v.get(21) or v[18] != self.session_id:
                self._fail(out, "RESUME_REJECTED", self._error_message())
            if not hmac.compare_digest(v[23], resume_proof(
                    self.resume_token, RESUME_SERVER_LABEL, self.nc, self.ns,
                    self.session_id, v[20])):
                self._fail(out, "RESUME_REJECTED", self._error_message())
            self._check_resumed_contract(v, v[4], out)
            self._check_last_received(v[20], out)
            self.ns = v[17]
            self.version = v[4]
            out += self._apply_last_received(v[20])
            self._establish(v, resumed=True)
            return None
        if v.get(21) or v[20] != 0:
            raise NotImplementedError("a resumed WELCOME for a new session")
        self.ns = v[17]
        self.version = v[4]
        self.session_id, self.resume_token = v[18], v[19]
        self._establish(v)
        return None

    def _handle_session_error(self, f, out):
        try:
            v = parse_payload("AGENT_ERROR", f["payload"])
        except PayloadError:
            raise NotImplementedError("malformed session error") from None
        # §18 PEER_ERROR: with a detail, the receiver reports that code with
        # the peer's canonical code.
        detail = v.get(4, 0)
        if detail and detail not in SESSION_ERROR_NAMES:
            raise NotImplementedError("detail %d is not modelled" % detail)
        name = SESSION_ERROR_NAMES[detail] if detail else "PEER_ERROR"
        self._fail(out, name, None, tell_peer=False, canonical=CANONICAL_NAMES[v[1]])

    def _handle_task(self, f, out):
        task = f["stream"]
        if not (role_allows(self.peer[6], self.cfg["role"])):
            self._fail(out, "UNEXPECTED_FRAME", self._error_message())
        own_parity = 1 if self.initiator else 0
        if task % 2 == own_parity or task <= self.last_peer_task:
            self._fail(out, "TASK_ID_REUSED", self._error_message())
        self.last_peer_task = task
        self.tasks[task] = "running"
        deadline = "-" if f["deadline"] is None else "%d" % f["deadline"]
        self._event("type=TaskReceived task=%d payload=%s deadline_us=%s"
                    % (task, hexs(f["payload"]), deadline))

    def _handle_response(self, f, out):
        task = f["stream"]
        if self.tasks.get(task) not in ("submitted", "running"):
            raise NotImplementedError("response for a task not open here")
        final = bool(f["flags"] & FLAG_FINAL)
        self._event("type=ResponseReceived task=%d final=%d payload=%s"
                    % (task, 1 if final else 0, hexs(f["payload"])))
        if final:
            del self.tasks[task]
        else:
            self.tasks[task] = "running"

    def _handle_cancel(self, f, out):
        """§13.3, executor: a task it still runs ends (TaskCancelled) and the
        terminal frame is AGENT_ERROR{code = reason, message "cancelled" or
        "deadline exceeded"}, no retryable, no detail (non-empty: CHECKSUM)."""
        task = f["stream"]
        reason = parse_payload("AGENT_CANCEL", f["payload"]).get(1, 1)
        if self.tasks.get(task) != "running":
            raise NotImplementedError("cancel of a task not running here")
        del self.tasks[task]
        name = CANONICAL_NAMES[reason]
        self._event("type=TaskCancelled task=%d status=%s" % (task, name))
        payload = encode_payload("AGENT_ERROR", {1: reason, 2: CANCEL_ANSWER_MESSAGES[reason]})
        title = "AGENT_ERROR %d: %s" % (task, name)
        segs = self._frame(AGENT_ERROR, payload, stream=task, seq=self.next_seq,
                           flags=FLAG_CHECKSUM, message="AGENT_ERROR")
        out.append((title, segs))
        self.replay.append((self.next_seq, title, segs))
        self.next_seq += 1

    def _handle_task_error(self, f, out):
        """§13.3, submitter: the terminal frame of a cancelling task is
        expected and discarded (no second terminal event)."""
        task = f["stream"]
        parse_payload("AGENT_ERROR", f["payload"])
        if self.tasks.get(task) != "cancelling":
            raise NotImplementedError("task errors other than a cancel's answer are not modelled")
        del self.tasks[task]

    def _handle_sync(self, f, out):
        v = parse_payload("AGENT_SYNC", f["payload"])
        if 1 in v:
            if v[1] > self.next_seq - 1:
                self._fail(out, "BAD_ACK", self._error_message())
            self.acked = max(self.acked, v[1])
            self.replay = [r for r in self.replay if r[0] > self.acked]
        if any(k in v for k in (2, 3)):
            raise NotImplementedError("SYNC ping/pong are not modelled")
        if 4 in v and not self.peer_draining:
            self.peer_draining = True
            self._event("type=PeerDraining last_accepted=%d" % v[4])
        if 5 in v:
            # §15.3: a bye that does not answer ours is answered; then the
            # session has ended on both sides.
            if self.tasks:
                raise NotImplementedError("bye with tasks open")
            if not self.bye_sent:
                values = {5: True}
                if self.rx_seq:
                    values[1] = self.rx_seq
                out.append(("AGENT_SYNC%s bye" % (" ack=%d" % self.rx_seq if self.rx_seq
                                                  else ""),
                            self._control(AGENT_SYNC, "AGENT_SYNC", values)))
                self.bye_sent = True
                self.ack_due = False
            self.closing = True
            self.state = "closed"
            self._event("type=SessionClosed")


class RefServer:
    """The acceptor side of a transcript as a server (the header of
    session_transcripts.md): its first connection goes to the session
    itself; each later one to a fresh acceptor session seeded
    `fresh_seed + k`. When a fresh session has the resuming PROOF, the
    server hands it to the session (§16.2, `adopt`) — or, after a `forget`
    step, rejects it as unknown (SESSION_EXPIRED). Steps go to the session
    at the acceptor end of the current connection; all report into one
    event list."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.events = []
        self.registered = RefSession("acceptor", cfg)
        self.registered.events = self.events
        self.endpoint = self.registered
        self.connections = 0
        self.forgotten = False

    @property
    def closing(self):
        return self.endpoint.closing

    def connect(self):
        if self.connections:
            cfg = dict(self.cfg, seed=self.cfg["fresh_seed"] + self.connections - 1)
            self.endpoint = RefSession("acceptor", cfg)
            self.endpoint.events = self.events
        self.connections += 1
        return self.endpoint.connect()

    def receive(self, data):
        fresh = self.endpoint
        out = fresh.receive(data)
        if fresh is self.registered or fresh.handshake != "await_resume":
            return out
        try:
            if self.forgotten:
                fresh._fail(out, "SESSION_EXPIRED", fresh._error_message())
            self._adopt(fresh, out)
        except TranscriptError:
            pass
        return out

    def _adopt(self, fresh, out):
        """§16.2 on the session the HELLO names; failures are answered by
        `fresh` on its connection, and the session does not change."""
        reg, h = self.registered, fresh.hello
        sid, last = h[18], h[20]
        token = reg.resume_token or bytes(16)
        want = resume_proof(token, RESUME_CLIENT_LABEL, fresh.nc, fresh.ns, sid, last)
        if (reg.state in ("failed", "closed") or reg.session_id != sid
                or not hmac.compare_digest(fresh.proof_in, want)):
            fresh._fail(out, "SESSION_EXPIRED", fresh._error_message())
        p = reg.peer
        if (h[5] != p[5] or h[6] != p[6] or fresh.version != reg.version
                or any(h[k] != p[k] for k in (8, 9, 10))):
            fresh._fail(out, "RESUME_REJECTED", fresh._error_message())
        if last > reg.next_seq - 1:
            fresh._fail(out, "BAD_ACK", fresh._error_message())
        if last < reg.acked:
            fresh._fail(out, "RESUME_GAP", fresh._error_message())
        # The connection moves to the session.
        for attr in ("rx", "rx_pos", "preface_seen", "nc", "ns", "challenged"):
            setattr(reg, attr, getattr(fresh, attr))
        reg.up, reg.closing, reg.bye_sent = True, False, False
        fresh.up, fresh.state = False, "closed"
        replayed = reg._apply_last_received(last)
        values = {1: WELCOME, 4: reg.version}
        values.update(reg._local_limits())
        if fresh.welcome_auth:
            values[16] = fresh.welcome_auth
        values.update({17: reg.ns, 18: reg.session_id, 20: reg.rx_seq, 21: True,
                       22: reg.cfg["resume_window_us"],
                       23: resume_proof(reg.resume_token, RESUME_SERVER_LABEL, reg.nc,
                                        reg.ns, reg.session_id, reg.rx_seq)})
        out.append(("AGENT_INIT WELCOME (resumed)", reg._init(values)))
        out += replayed
        reg._establish(h, resumed=True)
        self.endpoint = reg

    def lost(self):
        return self.endpoint.lost()

    def forget(self):
        self.forgotten = True
        return []

    def close(self):
        return self.endpoint.close()

    def submit(self, payload, deadline_us=None):
        return self.endpoint.submit(payload, deadline_us)

    def respond(self, task, payload, final):
        return self.endpoint.respond(task, payload, final)

    def cancel(self, task):
        return self.endpoint.cancel(task)


def crafted_init(values, title):
    """A crafted AGENT_INIT frame (stream 0, sequence 0, CHECKSUM), for
    `inject` steps."""
    payload = encode_payload("AGENT_INIT", values)
    segs = build_frame(AGENT_INIT, flags=FLAG_CHECKSUM, payload=payload)
    i = next(k for k, (b, c) in enumerate(segs) if c.startswith("payload ("))
    segs[i:i + 1] = payload_segments("AGENT_INIT", canonical_params("AGENT_INIT", values))
    return (title, segs)


def _is_sequenced(segs: list[Segment]) -> bool:
    """§10: whether the frame in `segs` is sequenced (TASK, RESPONSE,
    CANCEL, an ERROR on a non-zero stream)."""
    data = b"".join(bytes(b) for b, _ in segs)
    _, n = varint_decode(data, 0, len(data))
    mtype = data[n]
    stream, _ = varint_decode(data, n + 2, len(data))
    return mtype in (1, 2, 4) or (mtype == AGENT_ERROR and stream != 0)


def _text_comment(payload: bytes) -> str:
    # Bytes 0x20..0x7E only (for ASCII, isprintable() is exactly that).
    if payload and payload.isascii() and payload.decode("ascii").isprintable():
        return 'payload (%d bytes): "%s"' % (len(payload), payload.decode("ascii"))
    return "payload (%d bytes)" % len(payload)


# ---------------------------------------------------------------------------
# Vector files (llhttp-style Markdown). Same grammar as tests/support/vectors.hpp.

class Vector:
    def __init__(self, path: str, name: str, line: int) -> None:
        self.path = path
        self.name = name
        self.line = line
        self.hex_text: str | None = None
        self.input: bytes | None = None
        self.options: list[tuple[str, str]] | None = None
        self.log: list[str] | None = None


def parse_hex(text: str) -> bytes:
    out = bytearray()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for tok in line.split():
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", tok):
                raise ValueError("bad hex token %r" % tok)
            out.append(int(tok, 16))
    return bytes(out)


def load_vectors(path):
    vectors = []
    cur = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        if line.startswith("```"):
            info = line[3:].strip()
            body = []
            i += 1
            while i < len(lines) and lines[i].rstrip("\r").strip() != "```":
                body.append(lines[i].rstrip("\r"))
                i += 1
            if i >= len(lines):
                raise ValueError("%s: unterminated fence" % path)
            i += 1
            if cur is None:
                continue  # a fenced block in the introduction
            if info not in ("hex", "options", "log"):
                raise ValueError("%s:%d: unexpected block %r" % (path, i, info))
            if getattr(cur, {"hex": "hex_text", "options": "options", "log": "log"}[info]) is not None:
                raise ValueError("%s: %s: two %s blocks" % (path, cur.name, info))
            if info == "hex":
                cur.hex_text = "\n".join(body)
                cur.input = parse_hex(cur.hex_text)
            elif info == "options":
                cur.options = []
                for b in body:
                    b = b.strip()
                    if not b:
                        continue
                    if "=" not in b:
                        raise ValueError("%s: %s: bad option %r" % (path, cur.name, b))
                    k, v = b.split("=", 1)
                    cur.options.append((k, v))
            else:
                cur.log = [b.strip() for b in body if b.strip()]
            continue
        if line.startswith("## "):
            cur = Vector(path, line[3:].strip(), i + 1)
            vectors.append(cur)
        i += 1
    names = set()
    for v in vectors:
        if v.name in names:
            raise ValueError("%s: duplicate vector name %r" % (path, v.name))
        names.add(v.name)
        if v.input is None or not v.log:
            raise ValueError("%s: %s: needs a hex and a non-empty log block" % (path, v.name))
    return vectors


SESSION_PAYLOADS_FILE = "session_payloads.md"
BACKOFF_FILE = "backoff.md"

# §16.1 / §19: the default reconnect backoff (gRPC connection backoff).
BACKOFF_INITIAL_S, BACKOFF_MULTIPLIER, BACKOFF_JITTER, BACKOFF_MAX_S = 1.0, 1.6, 0.2, 120.0


def backoff_log(random8: Buffer, attempt: int) -> list[str]:
    """§16.1: the delay of reconnect attempt `attempt` (from 0) given the 8
    bytes drawn for its jitter: x is their unsigned little-endian value,
    k = floor(x / 2^11), u = 2 * k / 2^53 - 1 (IEEE 754 double), and the
    delay min(initial * multiplier^n, max) * (1 + jitter * u), rounded to the
    nearest microsecond for the log."""
    if len(random8) != 8:
        raise ValueError("a backoff draw is 8 bytes, not %d" % len(random8))
    x = int.from_bytes(bytes(random8), "little")
    k = x >> 11
    u = k * 2.0 ** -53 * 2.0 - 1.0
    delay = min(BACKOFF_INITIAL_S * BACKOFF_MULTIPLIER ** attempt, BACKOFF_MAX_S)
    delay *= 1.0 + BACKOFF_JITTER * u
    return ["k=%d delay_us=%d" % (k, round(delay * 1e6))]


def backoff_options(vec):
    pairs = dict(vec.options or [])
    if set(pairs) != {"attempt"}:
        raise ValueError("backoff.md options: exactly attempt=N")
    return int(pairs["attempt"])


def payload_options(vec):
    """session_payloads.md options: message=NAME (required) and
    encoder=same (the vector's bytes are the canonical encoding of what
    they parse to)."""
    message = None
    same = False
    for key, value in vec.options or []:
        if key == "message" and value in PAYLOAD_MESSAGES:
            message = value
        elif key == "encoder" and value == "same":
            same = True
        else:
            raise ValueError("bad session_payloads option %s=%s" % (key, value))
    if message is None:
        raise ValueError("needs an options block with message=AGENT_INIT|AGENT_SYNC|"
                         "AGENT_ERROR|AGENT_CANCEL")
    return message, same


# NATS JetStream pools, SPEC.md §21.1-§21.2: the names derived from the pool
# name, the orchestrator identity and the task id (tests/vectors/nats_mapping.md).
NATS_MAPPING_FILE = "nats_mapping.md"
NATS_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


def nats_mapping_log(vec):
    """The log of a nats_mapping.md vector; also checks that its hex block is
    the task's Nats-Msg-Id (empty when the names are rejected)."""
    opts = dict(vec.options or [])
    if set(opts) != {"pool", "orchestrator", "task", "attempt", "index"}:
        raise ValueError("nats_mapping.md options: pool, orchestrator, task, attempt, index")

    def valid_name(text):  # §21.1: 1-64 bytes of [A-Za-z0-9-]
        raw = text.encode()
        return 1 <= len(raw) <= 64 and all(b in NATS_NAME_CHARS for b in raw)

    def canonical_decimal(text):
        return text.isdigit() and (text == "0" or not text.startswith("0"))

    pool, orch = opts["pool"], opts["orchestrator"]
    task, attempt, index = opts["task"], opts["attempt"], opts["index"]
    error = None
    if not valid_name(pool):
        error = "pool"
    elif not valid_name(orch):
        error = "orchestrator"
    elif not canonical_decimal(task) or not 1 <= int(task) <= (1 << 62) - 1:
        error = "task"
    if error:
        if vec.input:
            raise ValueError("a rejected vector has an empty hex block")
        return ["error=INVALID_ARGUMENT field=%s" % error]
    if not (canonical_decimal(attempt) and int(attempt) >= 1 and canonical_decimal(index)):
        raise ValueError("attempt must be >= 1 and index >= 0, in decimal")
    prefix = "symwire.v1." + pool
    task_id = "t.%s.%s" % (orch, task)
    if bytes(vec.input) != task_id.encode():
        raise ValueError("hex block is not the task's Nats-Msg-Id %r" % task_id)
    return [
        "task_stream=SYMWIRE_TASKS_" + pool,
        "task_subject=%s.tasks" % prefix,
        "response_stream=SYMWIRE_RESP_%s_%s" % (pool, orch),
        "response_subject=%s.resp.%s" % (prefix, orch),
        "cancel_stream=SYMWIRE_CANCEL_" + pool,
        "cancel_subject=%s.cancel.%s.%s" % (prefix, orch, task),
        "dead_stream=SYMWIRE_DEAD_" + pool,
        "dead_subject=%s.dead" % prefix,
        "task_msg_id=" + task_id,
        "response_msg_id=r.%s.%s.%s.%s" % (orch, task, attempt, index),
        "cancel_msg_id=c.%s.%s" % (orch, task),
    ]


def expected_log(path, vec):
    base = os.path.basename(path)
    if base == "crc32c.md":
        return ["crc=0x%08X" % crc32c(vec.input)]
    if base == "varint.md":
        return decode_single_varint(vec.input)
    if base == SESSION_PAYLOADS_FILE:
        return payload_log(payload_options(vec)[0], vec.input)
    if base == BACKOFF_FILE:
        return backoff_log(vec.input, backoff_options(vec))
    if base == NATS_MAPPING_FILE:
        return nats_mapping_log(vec)
    return decode_stream(vec.input, Options.from_pairs(vec.options or []))


def check_payload_encoding(vec):
    """`encoder=same` is set exactly on the valid vectors whose bytes are the
    canonical encoding (encode_payload) of the message they parse to."""
    message, same = payload_options(vec)
    try:
        values = parse_payload(message, vec.input)
    except PayloadError:
        return "encoder=same on an invalid payload" if same else None
    canonical = encode_payload(message, values) == bytes(vec.input)
    if same and not canonical:
        return "encoder=same, but the canonical encoding is %s" % (
            encode_payload(message, values).hex(" "))
    if canonical and not same:
        return "the bytes are the canonical encoding: add encoder=same"
    return None


def check_prefixes(vec, full):
    """A receiver fed the stream in pieces must end where one fed it whole
    does: for every prefix, the log is a prefix of the full log, followed by
    `incomplete` or by the same final error."""
    opts = Options.from_pairs(vec.options or [])
    for k in range(len(vec.input)):
        part = decode_stream(vec.input[:k], opts)
        if not part:
            continue
        body, last = part[:-1], part[-1]
        if last.startswith("error "):
            if part != full:
                return "prefix %d ends in %r, full stream in %r" % (k, last, full[-1])
        else:
            lines = part if last != "incomplete" else body
            if full[:len(lines)] != lines:
                return "prefix %d logs %r" % (k, part)
    return None


# ---------------------------------------------------------------------------
# The transcript vector file: options (each side's configuration), the hex
# block (every byte either side writes, plus crafted input), the log (the
# steps with byte ranges of the hex block, and the events). See the header
# of tests/vectors/session_transcripts.md for the format.

SESSION_TRANSCRIPTS_FILE = "session_transcripts.md"


def _parse_config_value(field, text):
    if field == "role":
        return ROLE_NAMES.index(text)
    if field == "auth":
        return AUTH_NAMES.index(text)
    if field == "auth_secret":
        return b"" if text == "-" else bytes.fromhex(text)
    if field in ("agent_id", "error_message"):
        return text
    return int(text, 0)


def _format_config_value(field, value):
    if field == "role":
        return ROLE_NAMES[value]
    if field == "auth":
        return AUTH_NAMES[value]
    if field == "auth_secret":
        return hexs(value)
    if field in ("agent_id", "error_message"):
        return value
    return "%d" % value


def transcript_configs(options):
    """{side: config} from a vector's options: `SIDE.FIELD=VALUE` for every
    field of TRANSCRIPT_CONFIG_KEYS (a side that takes no step may be left
    out entirely), plus the optional SIDE.error_message."""
    cfgs = {}
    for key, value in options or []:
        side, _, field = key.partition(".")
        if side not in TRANSCRIPT_SIDES or (field not in TRANSCRIPT_CONFIG_KEYS
                                            and field not in ("error_message",
                                                              "fresh_seed")):
            raise ValueError("unknown transcript option %r" % key)
        cfg = cfgs.setdefault(side, {})
        if field in cfg:
            raise ValueError("option %r given twice" % key)
        cfg[field] = _parse_config_value(field, value)
    for side, cfg in cfgs.items():
        missing = [k for k in TRANSCRIPT_CONFIG_KEYS if k not in cfg]
        if missing:
            raise ValueError("%s: missing options %s" % (side, ", ".join(missing)))
    return cfgs


def transcript_options(cfgs):
    lines = []
    for side in TRANSCRIPT_SIDES:
        if side not in cfgs:
            continue
        for field in TRANSCRIPT_CONFIG_KEYS + ("error_message", "fresh_seed"):
            if field in cfgs[side]:
                lines.append("%s.%s=%s" % (side, field,
                                           _format_config_value(field, cfgs[side][field])))
    return lines


def _range_text(offset: int, length: int) -> str:
    return "%d+%d" % (offset, length) if length else "-"


def _parse_range(text: str) -> tuple[int, int]:
    if text == "-":
        return 0, 0
    off, _, length = text.partition("+")
    return int(off), int(length)


def _other(side: str) -> str:
    return "acceptor" if side == "initiator" else "initiator"


def _frames_bytes(frames: list[Frame]) -> bytes:
    return b"".join(bytes(b) for _, segs in frames for b, _ in segs)


def _run_step(models, kind, side, fields, data_in):
    """Runs one step on the model of `side`; returns (output frames, the
    log fields after `side=` without `out`/`closing`)."""
    m = models[side]
    if kind == "connect":
        return m.connect(), []
    if kind == "receive":
        return m.receive(data_in), []
    if kind == "lost":
        return m.lost(), []
    if kind == "forget":
        return m.forget(), []
    if kind == "close":
        return m.close(), []
    if kind == "submit":
        payload = b"" if fields["payload"] == "-" else bytes.fromhex(fields["payload"])
        deadline = None if fields["deadline_us"] == "-" else int(fields["deadline_us"])
        task, frames = m.submit(payload, deadline)
        return frames, [("task", "%d" % task), ("payload", hexs(payload)),
                        ("deadline_us", fields["deadline_us"])]
    if kind == "cancel":
        task = int(fields["task"])
        return m.cancel(task), [("task", "%d" % task)]
    if kind == "respond":
        payload = b"" if fields["payload"] == "-" else bytes.fromhex(fields["payload"])
        task, final = int(fields["task"]), fields["final"] == "1"
        return m.respond(task, payload, final), [
            ("task", "%d" % task), ("final", "1" if final else "0"), ("payload", hexs(payload))]
    raise ValueError("unknown step %r" % kind)


TRANSCRIPT_STEPS = ("connect", "receive", "submit", "respond", "cancel", "lost", "forget",
                    "close")


def _models(cfgs):
    return {side: (RefServer(cfg) if side == "acceptor" else RefSession(side, cfg))
            for side, cfg in cfgs.items()}


def _first_difference(want, got, final):
    """The first line where the reference's log `got` leaves the file's
    `want` (before the end: only lines the reference has produced so far;
    at the end: also lines the reference did not produce)."""
    for k, line in enumerate(got):
        if k >= len(want) or want[k] != line:
            return "log line %d differs:\n  file:      %s\n  reference: %s" % (
                k + 1, want[k] if k < len(want) else "(none)", line)
    if final and len(want) > len(got):
        return "log line %d differs:\n  file:      %s\n  reference: (none)" % (
            len(got) + 1, want[len(got)])
    return None


def check_transcript(vec):
    """Replays a transcript vector on two RefSessions built from its
    options and returns None or a description of the first problem: every
    `out` range must hold exactly the bytes the model writes, every event
    line must be the model's, `closing` must match, and the ranges must
    tile the hex block consistently (each side reads a prefix of what the
    other wrote, or crafted bytes nobody wrote)."""
    cfgs = transcript_configs(vec.options)
    models = _models(cfgs)
    data = bytes(vec.input)
    got = []
    written = {s: bytearray() for s in TRANSCRIPT_SIDES}
    read = {s: bytearray() for s in TRANSCRIPT_SIDES}
    owner = [None] * len(data)   # "out" or "in" per byte of the hex block
    next_out = 0
    for line in vec.log:
        name, fields = line.split(" ", 1)[0], {}
        tokens = line.split(" ")[1:]
        for tok in tokens:
            k, _, v = tok.partition("=")
            fields[k] = v
        if name == "event":
            continue
        if name not in TRANSCRIPT_STEPS:
            return "unknown log line %r" % line
        side = fields.get("side")
        if side not in models:
            return "step for a side without configuration: %r" % line
        if name == "lost":
            # A connection ended: what each side read of it must be what
            # the other wrote on it; the next connection starts afresh.
            for s_ in TRANSCRIPT_SIDES:
                if _other(s_) in models and not written[_other(s_)].startswith(
                        bytes(read[s_])):
                    return "%s reads bytes %s did not write" % (s_, _other(s_))
            written = {s_: bytearray() for s_ in TRANSCRIPT_SIDES}
            read = {s_: bytearray() for s_ in TRANSCRIPT_SIDES}
        data_in = b""
        if name == "receive":
            off, length = _parse_range(fields["in"])
            if off + length > len(data) or not length:
                return "in range outside the hex block: %r" % line
            data_in = data[off:off + length]
            for k in range(off, off + length):
                if owner[k] == "out" and _other(side) not in models:
                    return "%s reads its own output: %r" % (side, line)
                # Only what a modelled side wrote must match its output;
                # crafted input (nobody's output) stands alone.
                if owner[k] == "out":
                    read[side].append(data[k])
                owner[k] = owner[k] or "in"
        before = len(models[side].events)
        try:
            frames, extra = _run_step(models, name, side, fields, data_in)
        except NotImplementedError as err:
            return "the model does not cover this step (%s): %r" % (err, line)
        out = _frames_bytes(frames)
        off, length = _parse_range(fields.get("out", "-"))
        if data[off:off + length] == out and (length == 0 or off >= next_out) and all(
                owner[k] is None for k in range(off, off + length)):
            out_text = fields["out"]
            next_out = off + length
            for k in range(off, off + length):
                owner[k] = "out"
        else:
            out_text = hexs(out)
        written[side] += out
        parts = [name, "side=%s" % side]
        if name == "receive":
            parts.append("in=%s" % fields["in"])
        parts += ["%s=%s" % kv for kv in extra]
        parts += ["out=%s" % out_text, "closing=%d" % models[side].closing]
        got.append(" ".join(parts))
        got += models[side].events[before:]
        problem = _first_difference(vec.log, got, final=False)
        if problem:
            return problem
    problem = _first_difference(vec.log, got, final=True)
    if problem:
        return problem
    if None in owner:
        return "hex byte %d is neither written nor read by a step" % owner.index(None)
    for side in TRANSCRIPT_SIDES:
        peer = _other(side)
        if peer in models and not written[peer].startswith(bytes(read[side])):
            return "%s reads bytes %s did not write" % (side, peer)
    return None


def transcript_generate(sc):
    """Writes one transcript vector from a scenario (TRANSCRIPT_SCENARIOS):
    returns (options lines, hex block text, log lines). A `receive` step
    reads everything the peer wrote that this side has not read yet (which
    must be one run of the hex block); an `inject` step feeds crafted
    frames, which become part of the hex block."""
    cfgs = sc["config"]
    models = _models(cfgs)
    stream = bytearray()
    hex_lines = []
    log = []
    unread = {s: [] for s in TRANSCRIPT_SIDES}  # (offset, length) not yet read

    def add_chunk(title, frames):
        data = _frames_bytes(frames)
        start = len(stream)
        if data:
            hex_lines.append("# %s: offsets %d..%d" % (title, start, start + len(data) - 1))
            for ftitle, segs in frames:
                if len(frames) > 1 or ftitle != "preface":
                    hex_lines.append("#   %s" % ftitle)
                hex_lines.append(format_hex_block(segs))
        stream.extend(data)
        return start, len(data)

    titles = {"connect": "after TransportConnected", "receive": "after Receive",
              "submit": "after SubmitTask", "respond": "after SendResponse",
              "cancel": "after CancelTask", "lost": "after TransportLost", "forget": "",
              "close": "after Close"}
    for step in sc["steps"]:
        kind, side = step[0], step[1]
        peer = _other(side)
        fields = dict(step[2]) if kind in ("submit", "respond", "cancel") else {}
        data_in = b""
        in_range = None
        if kind == "lost":
            # The connection's unread bytes are lost with it.
            unread = {s_: [] for s_ in TRANSCRIPT_SIDES}
        if kind == "inject":
            crafted = step[2](models) if callable(step[2]) else step[2]
            in_range = add_chunk("crafted input to the %s" % side, crafted)
            kind = "receive"
        elif kind == "receive":
            pending = unread[side]
            if not pending:
                raise ValueError("%s: nothing to receive" % side)
            for (a, la), (b, _) in zip(pending, pending[1:]):
                if a + la != b:
                    raise ValueError("%s's input is not one run of the hex block" % side)
            in_range = (pending[0][0], sum(n for _, n in pending))
            unread[side] = []
        if in_range:
            data_in = bytes(stream[in_range[0]:in_range[0] + in_range[1]])
        before = len(models[side].events)
        frames, extra = _run_step(models, kind, side, fields, data_in)
        off, length = add_chunk("%s -> %s, %s" % (side, peer, titles[kind]), frames)
        if length:
            unread[peer].append((off, length))
        parts = [kind, "side=%s" % side]
        if in_range:
            parts.append("in=%s" % _range_text(*in_range))
        parts += ["%s=%s" % kv for kv in extra]
        parts += ["out=%s" % _range_text(off, length), "closing=%d" % models[side].closing]
        log.append(" ".join(parts))
        log += models[side].events[before:]
    return transcript_options(cfgs), "\n".join(hex_lines), log


# The scenarios tests/vectors/session_transcripts.md was written from
# (`vectors_ref.py transcript NAME` prints a vector's options, hex and log
# blocks). The check does not use them: it replays the file itself.

def _transcript_base(side, **overrides):
    cfg = dict(
        seed=1, role=0, agent_id="orch-1", min_version=1, max_version=1, auth=0,
        auth_secret=b"", capabilities=15, payload_checksums=1, max_tasks=16,
        max_payload_bytes=1 << 20, max_header_bytes=4096, max_extensions=32,
        replay_bytes=1 << 20, replay_frames=4, handshake_timeout_us=10_000_000,
        ping_interval_us=10_000_000, min_peer_ping_interval_us=1_000_000,
        dead_peer_timeout_us=30_000_000, ack_delay_us=5_000,
        resume_window_us=60_000_000, max_ping_strikes=2)
    if side == "acceptor":
        cfg.update(seed=2, role=1, agent_id="agent-7", max_tasks=8,
                   max_payload_bytes=65536, resume_window_us=30_000_000)
    cfg.update(overrides)
    return cfg


_HANDSHAKE = [("connect", "initiator"), ("connect", "acceptor"),
              ("receive", "acceptor"), ("receive", "initiator")]
_HMAC_HANDSHAKE = _HANDSHAKE + [("receive", "acceptor"), ("receive", "initiator")]
_TOKEN = b"s3cret-token"
_HMAC_KEY = bytes(range(0x40, 0x60))


def _early_task():
    payload = b"hi"
    return [("preface", [(PREFACE, "preface: magic 89 'SYMW' CR LF, wire version 1")]),
            ("AGENT_TASK 1 (before any AGENT_INIT)",
             build_frame(AGENT_TASK, flags=FLAG_CHECKSUM, stream=1, seq=1, payload=payload))]


def _acceptor_session_id(seed=2):
    """The session id an acceptor seeded `seed` draws (after its nonce)."""
    rng = SplitMix64(seed)
    rng.fill(32)
    return rng.fill(16)


_UNAVAILABLE = ("session %s is unknown or has ended, or the resume proof does not match"
                % _acceptor_session_id().hex())
_LOSE_AND_REDIAL = [("lost", "initiator"), ("lost", "acceptor"),
                    ("connect", "initiator"), ("connect", "acceptor")]
_RESUME = [("receive", "acceptor"), ("receive", "initiator"), ("receive", "acceptor"),
           ("receive", "initiator")]
_CRAFTED_NONCE = bytes(range(0xA0, 0xC0))


def _crafted_resume_hello(last_received):
    """Preface and a resuming HELLO as the initiator of _transcript_base
    would send it, from someone who learned the session id (§16.2)."""
    def frames(models):
        values = {1: HELLO, 2: 1, 3: 1}
        values.update(models["initiator"]._local_limits())
        values.update({15: 0, 17: _CRAFTED_NONCE,
                       18: models["acceptor"].registered.session_id, 20: last_received})
        return [("preface", [(PREFACE, "preface: magic 89 'SYMW' CR LF, wire version 1")]),
                crafted_init(values, "AGENT_INIT HELLO (resuming, last_received=%d)"
                             % last_received)]
    return frames


def _crafted_proof(with_token):
    """A PROOF for the CHALLENGE the fresh acceptor session sent: with the
    session's real token (someone who stole it), or 32 zero bytes."""
    def frames(models):
        server = models["acceptor"]
        if with_token:
            reg, fresh = server.registered, server.endpoint
            proof = resume_proof(reg.resume_token, RESUME_CLIENT_LABEL, _CRAFTED_NONCE,
                                 fresh.ns, reg.session_id, fresh.hello[20])
            title = "AGENT_INIT PROOF (valid resume_proof)"
        else:
            proof, title = bytes(32), "AGENT_INIT PROOF (resume_proof of 32 zero bytes)"
        return [crafted_init({1: PROOF, 23: proof}, title)]
    return frames


def _oversized_init():
    # 8193 = 60 01: one over the limit before the handshake (§15.2), under
    # the acceptor's max_payload_bytes (65536). Nothing follows the header.
    return [("preface", [(PREFACE, "preface: magic 89 'SYMW' CR LF, wire version 1")]),
            ("AGENT_INIT header declaring 8193 payload bytes",
             build_frame(AGENT_INIT, flags=FLAG_CHECKSUM, plen=8193,
                         truncate_after_header=True))]


TRANSCRIPT_SCENARIOS = {
    "new session, auth none": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base("acceptor")},
        steps=_HANDSHAKE),
    "new session, token auth": dict(
        config={"initiator": _transcript_base("initiator", auth=1, auth_secret=_TOKEN),
                "acceptor": _transcript_base("acceptor", auth=1, auth_secret=_TOKEN)},
        steps=_HANDSHAKE),
    "new session, HMAC-SHA256": dict(
        config={"initiator": _transcript_base("initiator", auth=2, auth_secret=_HMAC_KEY),
                "acceptor": _transcript_base("acceptor", auth=2, auth_secret=_HMAC_KEY)},
        steps=_HMAC_HANDSHAKE),
    "version mismatch": dict(
        config={"initiator": _transcript_base("initiator", min_version=2, max_version=3),
                "acceptor": _transcript_base(
                    "acceptor",
                    error_message="no common session version: local 1..1, peer 2..3")},
        steps=_HANDSHAKE),
    "incompatible roles": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base(
                    "acceptor", role=0, agent_id="orch-2",
                    error_message="roles orchestrator (local) and orchestrator (peer): "
                                  "neither may send tasks to the other")},
        steps=_HANDSHAKE),
    "frame before the handshake": dict(
        config={"acceptor": _transcript_base(
            "acceptor",
            error_message="AGENT_TASK at stream offset 8 before the handshake completed")},
        steps=[("connect", "acceptor"), ("inject", "acceptor", _early_task())]),
    "oversized frame before the handshake": dict(
        config={"acceptor": _transcript_base("acceptor")},
        steps=[("connect", "acceptor"), ("inject", "acceptor", _oversized_init())]),
    "token mismatch": dict(
        config={"initiator": _transcript_base("initiator", auth=1, auth_secret=b"wrong-token"),
                "acceptor": _transcript_base("acceptor", auth=1, auth_secret=_TOKEN,
                                             error_message="token mismatch")},
        steps=_HANDSHAKE),
    "HMAC proof with the wrong key": dict(
        config={"initiator": _transcript_base("initiator", auth=2,
                                              auth_secret=bytes(range(0x60, 0x80))),
                "acceptor": _transcript_base("acceptor", auth=2, auth_secret=_HMAC_KEY,
                                             error_message="hmac proof mismatch")},
        steps=_HMAC_HANDSHAKE),
    "one task after the handshake": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base("acceptor", capabilities=14,
                                             payload_checksums=0)},
        steps=_HANDSHAKE + [
            ("submit", "initiator", [("payload", b"summarize: symwire".hex()),
                                     ("deadline_us", "30000000")]),
            ("receive", "acceptor"),
            ("respond", "acceptor", [("task", "1"), ("final", "1"),
                                     ("payload", b"done".hex())]),
            ("receive", "initiator")]),
    "resume after a lost connection": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base("acceptor", fresh_seed=3)},
        steps=_HANDSHAKE + [
            ("submit", "initiator", [("payload", b"work".hex()), ("deadline_us", "-")])]
        + _LOSE_AND_REDIAL + _RESUME + [("receive", "acceptor"), ("receive", "initiator")]),
    "resume of an unknown session": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base("acceptor", fresh_seed=3,
                                             error_message=_UNAVAILABLE)},
        steps=_HANDSHAKE + [("lost", "initiator"), ("lost", "acceptor"),
                            ("forget", "acceptor"), ("connect", "initiator"),
                            ("connect", "acceptor")] + _RESUME),
    "resume with a wrong proof": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base("acceptor", fresh_seed=3,
                                             error_message=_UNAVAILABLE)},
        steps=_HANDSHAKE + [("lost", "initiator"), ("lost", "acceptor"),
                            ("connect", "acceptor"),
                            ("inject", "acceptor", _crafted_resume_hello(0)),
                            ("inject", "acceptor", _crafted_proof(False))]),
    "resume with a stale last_received": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base(
                    "acceptor", fresh_seed=3,
                    error_message="peer's last_received 0 precedes its acknowledgement 1: "
                                  "frames 1..1 were freed and cannot be replayed")},
        steps=_HANDSHAKE + [
            ("submit", "initiator", [("payload", b"work".hex()), ("deadline_us", "-")]),
            ("receive", "acceptor"),
            ("respond", "acceptor", [("task", "1"), ("final", "1"),
                                     ("payload", b"done".hex())]),
            ("receive", "initiator"), ("receive", "acceptor"),
            ("lost", "initiator"), ("lost", "acceptor"), ("connect", "acceptor"),
            ("inject", "acceptor", _crafted_resume_hello(0)),
            ("inject", "acceptor", _crafted_proof(True))]),
    "close: bye answered by bye": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base("acceptor")},
        steps=_HANDSHAKE + [("close", "initiator"), ("receive", "acceptor"),
                            ("receive", "initiator")]),
    "empty payloads and a cancel": dict(
        config={"initiator": _transcript_base("initiator"),
                "acceptor": _transcript_base("acceptor")},
        steps=_HANDSHAKE + [
            ("submit", "initiator", [("payload", "-"), ("deadline_us", "-")]),
            ("receive", "acceptor"),
            ("respond", "acceptor", [("task", "1"), ("final", "1"), ("payload", "-")]),
            ("receive", "initiator"),
            ("submit", "initiator", [("payload", b"long job".hex()), ("deadline_us", "-")]),
            ("receive", "acceptor"),
            ("receive", "initiator"),
            ("cancel", "initiator", [("task", "3")]),
            ("receive", "acceptor"),
            ("receive", "initiator"),
            ("receive", "acceptor")]),
}


def transcript_blocks(name):
    options, hex_text, log = transcript_generate(TRANSCRIPT_SCENARIOS[name])
    return "```hex\n%s\n```\n\n```options\n%s\n```\n\n```log\n%s\n```\n" % (
        hex_text, "\n".join(options), "\n".join(log))


def check_files(paths):
    failures = 0
    total = 0
    for path in paths:
        vectors = load_vectors(path)
        bad = 0
        for vec in vectors:
            if os.path.basename(path) == SESSION_TRANSCRIPTS_FILE:
                try:
                    problem = check_transcript(vec)
                except Exception as err:  # noqa: BLE001 - report and continue
                    problem = "<exception: %r>" % err
                if problem:
                    bad += 1
                    print("FAIL %s:%d %s: %s" % (path, vec.line, vec.name, problem))
                continue
            try:
                got = expected_log(path, vec)
            except Exception as err:  # noqa: BLE001 - report and continue
                got = ["<exception: %s>" % err]
            problem = None
            if got != vec.log:
                problem = "log differs:\n  expected (file): %s\n  reference:       %s" % (
                    "\n                   ".join(vec.log), "\n                   ".join(got))
            elif os.path.basename(path) == SESSION_PAYLOADS_FILE:
                problem = check_payload_encoding(vec)
            elif os.path.basename(path) not in ("crc32c.md", "varint.md", BACKOFF_FILE,
                                                NATS_MAPPING_FILE):
                problem = check_prefixes(vec, got)
            if problem:
                bad += 1
                print("FAIL %s:%d %s: %s" % (path, vec.line, vec.name, problem))
        total += len(vectors)
        failures += bad
        print("%-36s %3d vectors, %s" % (os.path.relpath(path), len(vectors),
                                         "OK" if not bad else "%d FAILED" % bad))
    print("total %d vectors, %d failed" % (total, failures))
    return 1 if failures else 0


# ---------------------------------------------------------------------------
# Self test.

def selftest():
    ok = True

    def expect(what, got, want):
        nonlocal ok
        flag = "ok " if got == want else "BAD"
        ok &= got == want
        print("%s %-44s %s" % (flag, what, got))

    for name, data, want in [
            ('bitwise  "123456789"', b"123456789", 0xE3069283),
            ("bitwise  32 x 00", bytes(32), 0x8A9136AA),
            ("bitwise  32 x FF", b"\xff" * 32, 0x62A8AB43),
            ("bitwise  00..1F", bytes(range(32)), 0x46DD794E),
            ("bitwise  1F..00", bytes(range(31, -1, -1)), 0x113FDB5C),
            ("bitwise  empty", b"", 0)]:
        expect("CRC32C " + name, "0x%08X" % crc32c_bitwise(data), "0x%08X" % want)
        expect("CRC32C " + name.replace("bitwise", "table  "),
               "0x%08X" % crc32c_table(data), "0x%08X" % want)
    expect("reflect(0x1EDC6F41) == 0x82F63B78", "0x%08X" % _reflect(CRC32C_POLY, 32),
           "0x%08X" % CRC32C_POLY_REFLECTED)
    expect("XXH3-64 empty", "0x%016X" % xxh3_64(b""), "0x2D06800538D394C2")
    # §16.1: the jitter bytes are little-endian; the cap applies before jitter.
    expect("backoff LE", backoff_log(bytes(7) + b"\x80", 0), ["k=%d delay_us=1000000" % 2 ** 52])
    expect("backoff capped", backoff_log(bytes(8), 30), ["k=0 delay_us=96000000"])
    for value, size in [(0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4),
                        ((1 << 30) - 1, 4), (1 << 30, 8), (VARINT_MAX, 8)]:
        enc = varint_encode(value)
        dec = varint_decode(enc, 0, len(enc))
        expect("varint %d" % value, (len(enc), dec), (size, (value, size)))
    for hexstr, value in [("25", 37), ("7bbd", 15293), ("9d7f3e7d", 494878333),
                          ("c2197c5eff14e88c", 151288809941952652)]:
        data = bytes.fromhex(hexstr)
        expect("RFC 9000 A.1 " + hexstr, varint_decode(data, 0, len(data))[0], value)
    try:
        varint_decode(bytes.fromhex("4025"), 0, 2)
        expect("40 25 non-canonical", "accepted", "rejected")
    except WireError as err:
        expect("40 25 non-canonical", err.code, "NON_CANONICAL_VARINT")

    # §4 header_length: the bytes after its own varint. The minimal header is
    # 09 tt ff ss qq ll + CRC over those six bytes.
    def raw(segments):
        return b"".join(bytes(b) for b, _ in segments)

    minimal = raw(build_frame(1, stream=1))
    expect("minimal header", minimal.hex(" "),
           "09 01 00 01 00 00 " + crc32c(bytes.fromhex("090100010000")).to_bytes(4, "big").hex(" "))
    expect("minimal header CRC (crc32c.md)", "0x%08X" % crc32c(minimal[:6]), "0x454CF25E")

    def first_line(data, pairs=()):
        return decode_stream(data, Options.from_pairs([("preface", "off")] + list(pairs)))[0]

    expect("decode minimal header", first_line(minimal),
           "frame offset=0 size=10 type=AGENT_TASK flags=0x00 stream=1 seq=0 payload=-")
    # §5.1 METHOD: type 9, 1..255 bytes of 0x21..0x7E, once; errors at the
    # value's first byte (duplicate: at the type).
    def method_frame(*values):
        return raw(build_frame(1, stream=1, exts=[Ext(EXT_METHOD, v) for v in values]))
    got = first_line(method_frame(b"summarize"))
    expect("METHOD decoded", got.split(" ")[-2:],
           ["method=%s" % b"summarize".hex(), "ext=9:%s" % b"summarize".hex()])
    expect("METHOD header", method_frame(b"a")[:9].hex(" "), "0c 01 00 01 00 00 09 01 61")
    expect("METHOD 255 bytes", first_line(method_frame(b"~" * 255))[:14], "frame offset=0")
    # 256 bytes: header_length and ext_length are 2-byte varints, so the
    # value starts at 10.
    expect("METHOD 256 bytes", first_line(method_frame(b"~" * 256)),
           "error code=MALFORMED_EXTENSION offset=10")
    expect("METHOD empty", first_line(method_frame(b"")),
           "error code=MALFORMED_EXTENSION offset=8")
    expect("METHOD space", first_line(method_frame(b"a b")),
           "error code=MALFORMED_EXTENSION offset=8")
    expect("METHOD 0x7f", first_line(method_frame(b"a\x7f")),
           "error code=MALFORMED_EXTENSION offset=8")
    expect("METHOD twice", first_line(method_frame(b"a", b"b")),
           "error code=DUPLICATE_EXTENSION offset=9")
    # 63 bytes after the length field: 1-byte 3f; 64: the smallest 2-byte, 40 40.
    pad63 = raw(build_frame(1, stream=1, exts=[Ext(8, bytes(52))]))
    pad64 = raw(build_frame(1, stream=1, exts=[Ext(8, bytes(53))]))
    expect("header_length 63 is 1 byte", (pad63[:1].hex(), len(pad63)), ("3f", 64))
    expect("header_length 64 is 2 bytes", (pad64[:2].hex(), len(pad64)), ("4040", 66))
    forced = raw(build_frame(1, stream=1, exts=[Ext(8, bytes(52))], hl_size=2))
    expect("40 3f rejected", first_line(forced), "error code=NON_CANONICAL_VARINT offset=0")
    expect("header_length 8", first_line(bytes([8])), "error code=BAD_HEADER_LENGTH offset=0")
    expect("header_length 9 waits", first_line(bytes([9])), "incomplete")
    expect("66-byte header, limit 66", first_line(pad64, [("max_header_bytes", "66")])[:14],
           "frame offset=0")
    expect("66-byte header, limit 65", first_line(pad64, [("max_header_bytes", "65")]),
           "error code=HEADER_TOO_LARGE offset=0")
    expect("4f ff: 4097-byte header", first_line(bytes.fromhex("4fff")),
           "error code=HEADER_TOO_LARGE offset=0")
    expect("4f fe: 4096-byte header waits", first_line(bytes.fromhex("4ffe")), "incomplete")
    expect("max_header_bytes=16385 allowed",
           Options.from_pairs([("max_header_bytes", "16385")]).max_header_bytes, 16385)

    # §11 parameter lists.
    def plog(message, hexstr):
        return payload_log(message, bytes.fromhex(hexstr))

    expect("empty AGENT_SYNC", plog("AGENT_SYNC", ""),
           ["ack=-", "ping=-", "pong=-", "drain=-", "bye=0"])
    expect("empty AGENT_INIT", plog("AGENT_INIT", ""),
           ["error code=MISSING_PARAM offset=0 param=1"])
    expect("INIT phase only", plog("AGENT_INIT", "010100"),
           ["error code=MISSING_PARAM offset=3 param=2"])
    expect("INIT first param not phase", plog("AGENT_INIT", "020101"),
           ["error code=MISSING_PARAM offset=0 param=1"])
    expect("param_id 40 01", plog("AGENT_SYNC", "40010100"),
           ["error code=MALFORMED_PAYLOAD offset=0 param=-"])
    expect("value 40 05", plog("AGENT_SYNC", "01024005"),
           ["error code=MALFORMED_PAYLOAD offset=2 param=1"])
    expect("value past the end", plog("AGENT_SYNC", "010205"),
           ["error code=MALFORMED_PAYLOAD offset=1 param=1"])
    expect("odd unknown", plog("AGENT_SYNC", "0700"),
           ["error code=UNKNOWN_CRITICAL_PARAM offset=0 param=7"])
    expect("even unknown skipped", plog("AGENT_CANCEL", "0603616263"), ["reason=1"])
    expect("duplicate", plog("AGENT_SYNC", "0500 0500".replace(" ", "")),
           ["error code=MALFORMED_PAYLOAD offset=2 param=5"])
    hello = {1: HELLO, 2: 1, 3: 1, 5: b"a", 6: 0, 8: 1 << 20, 9: 4096, 10: 8,
             11: 1 << 20, 12: 64, 13: 10 ** 7, 14: 10 ** 6, 15: 0, 17: bytes(32)}
    enc = encode_payload("AGENT_INIT", hello)
    expect("HELLO round trip", parse_payload("AGENT_INIT", enc), hello)
    expect("HELLO ascending ids", enc[:3].hex(), "010100")
    # The worked example of SPEC.md §16.2 (the C++ auth_test checks the same
    # values against OpenSSL).
    tok, nc, ns = bytes(range(16)), bytes(range(0x20, 0x40)), bytes(range(0x40, 0x60))
    sid = bytes(range(0x90, 0xA0))
    expect("resume proof, client (SPEC §16.2)",
           resume_proof(tok, RESUME_CLIENT_LABEL, nc, ns, sid, 41).hex(),
           "c4bfb27383d2cc52d36804031f8af396b8db190a734a1725fa2fb5a4c4c0da75")
    expect("resume proof, server (SPEC §16.2)",
           resume_proof(tok, RESUME_SERVER_LABEL, nc, ns, sid, 17).hex(),
           "45429f3cfa3d682f733880dcd4c20be18887a4ae510202593df37a19f9267ff3")
    # The transcripts' random source and HMAC (SPEC.md §12.3).
    sm = SplitMix64(1477776061723855037)   # rand_xoshiro's reference test
    expect("SplitMix64 published values", [sm.next64() for _ in range(3)],
           [1985237415132408290, 2979275885539914483, 13511426838097143398])
    expect("SplitMix64 seed 0", "0x%016X" % SplitMix64(0).next64(), "0xE220A8397B1DCDAF")
    first = SplitMix64(0).next64().to_bytes(8, "little")
    expect("fill: little-endian words", SplitMix64(0).fill(8), first)
    sm = SplitMix64(0)
    expect("fill: a partial word is dropped", (sm.fill(3), sm.fill(8)[:1]),
           (first[:3], SplitMix64(0).fill(16)[8:9]))
    expect("HMAC-SHA256 RFC 4231 case 1",
           hmac_sha256(b"\x0b" * 20, b"Hi There").hex(),
           "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    cancel = encode_payload("AGENT_CANCEL", {1: 4})
    expect("CANCEL reason 4", cancel.hex(), "010104")
    expect("CANCEL reason 1 omitted", encode_payload("AGENT_CANCEL", {1: 1}).hex(), "")
    print("selftest", "passed" if ok else "FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# Command line.

def _hex_args(args: list[str]) -> bytes:
    return parse_hex("\n".join(args))


def _frame_from_args(args):
    kw = {"exts": []}
    mtype = None
    for arg in args:
        key, _, val = arg.partition("=")
        if key == "type":
            mtype = TYPE_NAMES.index(val) if val in TYPE_NAMES else int(val, 0)
        elif key == "flags":
            kw["flags"] = int(val, 0)
        elif key in ("stream", "seq"):
            kw[key] = int(val, 0)
        elif key in ("stream_size", "seq_size", "plen_size", "hl_size"):
            kw[key] = int(val)
        elif key == "hl":
            kw["hl"] = int(val, 0)
        elif key == "payload":
            kw["payload"] = bytes.fromhex(val)
        elif key == "text":
            kw["payload"] = val.encode("ascii")
        elif key == "deadline":
            kw["exts"].append(deadline_ext(int(val, 0)))
        elif key == "traceparent":
            kw["exts"].append(Ext(EXT_TRACEPARENT, bytes.fromhex(val)))
        elif key == "tracestate":
            kw["exts"].append(Ext(EXT_TRACESTATE, val.encode("ascii")))
        elif key == "method":
            kw["exts"].append(Ext(EXT_METHOD, val.encode("ascii")))
        elif key == "metadata":
            k, _, v = val.partition(":")
            kw["exts"].append(metadata_ext(bytes.fromhex(k), bytes.fromhex(v)))
        elif key == "ext":
            t, _, v = val.partition(":")
            kw["exts"].append(Ext(int(t, 0), bytes.fromhex(v)))
        elif key in ("crc", "checksum"):
            kw[key] = int(val, 0)
        else:
            raise SystemExit("unknown frame key %r" % key)
    if mtype is None:
        raise SystemExit("frame needs type=")
    return build_frame(mtype, **kw)


def _payload_from_args(message, args):
    """ITEMs of the `payload` mode: NAME=VALUE or ID=VALUE (a varint param
    takes a decimal or 0x number; a bytes param hex, '-' for empty; a flag
    nothing; an id the message does not define takes a hex value), and
    raw=HEX (bytes as given)."""
    table = PAYLOAD_PARAMS[message]
    params = []
    for arg in args:
        key, _, val = arg.partition("=")
        if key == "raw":
            params.append((bytes.fromhex(val), "raw bytes"))
            continue
        pid = int(key, 0) if key[0].isdigit() else param_id(message, key)
        spec = table.get(pid)
        if spec is None:
            params.append(Param(pid, bytes.fromhex(val)))
        elif spec.kind == "varint":
            params.append(vparam(message, pid, int(val, 0)))
        elif spec.kind == "flag":
            params.append(Param(pid))
        else:
            params.append(bparam(message, pid, b"" if val == "-" else bytes.fromhex(val)))
    return params


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    mode, args = argv[1], argv[2:]
    if mode == "selftest":
        return selftest()
    if mode == "check":
        if not args:
            # Every file of tests/vectors/: a new one cannot be forgotten.
            root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "vectors")
            first = ("crc32c.md", "varint.md", "preface.md", "frames.md", "frame_errors.md")
            names = sorted(n for n in os.listdir(root) if n.endswith(".md"))
            args = [os.path.join(root, n) for n in first if n in names]
            args += [os.path.join(root, n) for n in names if n not in first]
        return check_files(args)
    if mode == "decode":
        pairs = []
        hex_args = []
        for arg in args:
            if arg.startswith("--"):
                k, _, v = arg[2:].partition("=")
                pairs.append((k.replace("-", "_"), v))
            else:
                hex_args.append(arg)
        print("\n".join(decode_stream(_hex_args(hex_args), Options.from_pairs(pairs))))
        return 0
    if mode == "crc":
        print("crc=0x%08X" % crc32c(_hex_args(args)))
        return 0
    if mode == "xxh3":
        print("xxh3=0x%016X" % xxh3_64(_hex_args(args)))
        return 0
    if mode == "varint":
        size = int(args[1]) if len(args) > 1 else None
        print(" ".join("%02x" % b for b in varint_encode(int(args[0], 0), size)))
        return 0
    if mode == "frame":
        print(format_hex_block(_frame_from_args(args)))
        return 0
    if mode == "transcript":
        names = args or list(TRANSCRIPT_SCENARIOS)
        for name in names:
            print("## %s\n\n%s" % (name, transcript_blocks(name)))
        return 0
    if mode == "payload-decode":
        print("\n".join(payload_log(args[0], _hex_args(args[1:]))))
        return 0
    if mode == "payload":
        message, items = args[0], args[1:]
        canonical = "--canonical" in items
        items = [i for i in items if i != "--canonical"]
        params = _payload_from_args(message, items)
        if canonical:
            values = {p.pid: (True if PAYLOAD_PARAMS[message][p.pid].kind == "flag" else
                              varint_decode(p.value, 0, len(p.value))[0]
                              if PAYLOAD_PARAMS[message][p.pid].kind == "varint" else p.value)
                      for p in params}
            params = canonical_params(message, values)
        print(format_hex_block(payload_segments(message, params)))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
