#!/usr/bin/env python3
"""Writes the seed corpora of the symwire fuzz targets (python3 stdlib only).

    fuzz/make_seeds.py [--encoder BUILD_DIR/fuzz/fuzz_encoder_seeds]
                       [--session BUILD_DIR/fuzz/fuzz_session_seeds]

Run it from anywhere; paths are relative to the repository. It rewrites the
generated seeds and leaves every other file alone (saved findings, seeds
libFuzzer added, hand-made ones):

  corpus/decode_frame/vec-*   one pair per vector of tests/vectors/*.md
                              (except crc32c.md, varint.md and
                              session_payloads.md): the 10-byte
                              control block of decode_frame.cpp built from
                              the vector's ```options, then its ```hex bytes.
                              "-strict" checks CRC/XXH3 as is and feeds byte
                              by byte (the harness also feeds it whole);
                              "-fixup" fixes up CRC/XXH3 and feeds it in
                              pseudo-random chunks.
  corpus/decode_varint/vec-*  the ```hex bytes of each tests/vectors/varint.md
                              vector.
  corpus/decode_varint/hand-*, corpus/roundtrip/hand-*
                              the hand-written seeds listed below.
  corpus/decode_frame/enc-*   only with --encoder: written by the
                              fuzz_encoder_seeds program (build it with
                              `cmake --build BUILD --target fuzz_encoder_seeds`
                              in a tests-enabled build).
  corpus/session_receive/hand-*
                              record lists for session_receive.cpp, built by
                              SESSION_RECEIVE below.
  corpus/ws_frame/hand-*      WebSocket frame streams for ws_frame.cpp (its
                              6-byte control block, then frames), built by
                              ws_seeds() below: valid traffic both ways and
                              one seed per check of the parser.
  corpus/session_handshake/gen-*, corpus/endpoint/gen-*
                              only with --session: recorded handshakes (new
                              and resumed sessions, every auth method and
                              role pair) written by the fuzz_session_seeds
                              program (target fuzz_session_seeds).

The vector grammar is the one of tests/support/vectors.hpp and
tools/vectors_ref.py (llhttp style): "## name", a paragraph, a ```hex block
(space-separated hex bytes, '#' starts a comment), an optional ```options
block (key=value lines) and a ```log block. Fenced blocks before the first
heading are ignored.
"""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "tests", "vectors")
sys.path.insert(0, os.path.join(ROOT, "python"))
# The vector-file reader (tools/vectors_ref.py is now a wrapper around
# symwire.vectors); needs python3-xxhash.
from symwire import vectors as vectors_ref  # noqa: E402
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

# SPEC.md §8 defaults.
DEFAULT_MAX_HEADER = 4096
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
DEFAULT_MAX_EXTENSIONS = 32


class VectorError(Exception):
    pass


def load_vectors(path):
    """Returns [(name, bytes, [(key, value)])] of one vector file, parsed by
    the reference's own reader (tools/vectors_ref.py), so the grammar lives
    in one Python place."""
    return [(v.name, v.input, v.options or [])
            for v in vectors_ref.load_vectors(path) if v.input is not None]


def slug(text):
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:60].rstrip("-") or "vector"


def control_block(options, mode_bits, split):
    """decode_frame.cpp's 10-byte control block for a vector's options."""
    preface = True
    max_header = DEFAULT_MAX_HEADER
    max_payload = DEFAULT_MAX_PAYLOAD
    max_ext = DEFAULT_MAX_EXTENSIONS
    for key, value in options:
        if key == "preface":
            if value not in ("on", "off"):
                raise VectorError("preface=%s" % value)
            preface = value == "on"
        elif key == "max_header_bytes":
            max_header = int(value)
        elif key == "max_payload_bytes":
            max_payload = int(value)
        elif key == "max_extensions":
            max_ext = int(value)
        else:
            raise VectorError("unknown option %r" % key)
    # max_header_bytes limits the whole header, header_length varint
    # included: 10..16385 (SPEC.md §8).
    if not (10 <= max_header <= 16385 and 0 <= max_payload < (1 << 30)
            and 0 <= max_ext <= 16383):
        raise VectorError("option out of SPEC.md §8 range")
    mode = (1 if preface else 0) | mode_bits
    return (bytes([mode, split]) + max_header.to_bytes(2, "big")
            + max_payload.to_bytes(4, "big") + max_ext.to_bytes(2, "big"))


# decode_frame mode bits (decode_frame.cpp): bits 1-2 header CRC mode,
# bits 3-4 payload checksum mode; 3 = verify as is, 2 = fix up and verify.
STRICT = (3 << 1) | (3 << 3)
FIXUP = (2 << 1) | (2 << 3)
SPLIT_BYTEWISE = 1
SPLIT_RANDOM = 0x87


def write(path, data, written):
    if path in written:
        raise VectorError("two seeds named %s" % os.path.relpath(path, ROOT))
    written.add(path)
    with open(path, "wb") as f:
        f.write(data)


def clear(directory, prefix):
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.startswith(prefix):
            os.remove(os.path.join(directory, name))


# Hand-written seeds. decode_varint: raw varints. roundtrip: the structured
# layout documented at the top of roundtrip.cpp (type selector, flags
# selector, fix-ups, stream_id value, sequence value, extension count,
# extensions, payload mode, payload).
HAND_VARINT = {
    "zero": "00",
    "max-1-byte": "3f",
    "min-2-byte": "40 40",
    "noncanonical-2-byte-5": "40 05",
    "max-4-byte": "bf ff ff ff",
    "max-8-byte": "ff ff ff ff ff ff ff ff",
    "noncanonical-8-byte": "c0 00 00 00 3f ff ff ff",
    "truncated-4-byte": "80 00",
    "run-of-varints": "05 40 40 80 00 40 00 c0 00 00 00 40 00 00 00 3f",
}

HAND_ROUNDTRIP = {
    # AGENT_INIT, no flags, fix rules, stream 0, sequence 0, no ext, "hi".
    "init-minimal": "00 00 03 00 00 00 00 68 69",
    # AGENT_TASK + CHECKSUM, stream 2-byte (sel 2: 64 + 0x0100), sequence
    # 4-byte (sel 3), one DEADLINE (sel 1: 0x2a), payload "task".
    "task-checksum-deadline": "01 01 03 02 01 00 03 00 01 00 00 01 00 01 2a 00 74 61 73 6b",
    # AGENT_RESPONSE FINAL|CHECKSUM, stream 1 (edge table), seq max,
    # TRACEPARENT, a TRACESTATE made printable from "abc", payload "ok".
    "response-final-traceparent-tracestate":
        "02 03 03 05 00 05 08 02 01 00 "
        "01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 "
        "11 12 13 14 15 16 17 18 01 "
        "02 01 43 61 62 63 00 6f 6b",
    # AGENT_ERROR on stream 0, METADATA key=value and k= (the empty value
    # takes text mode 00 and a u16 length of 0), one unknown even extension
    # (type 8 + 2*5 = 18) with 3 bytes, payload "err".
    "error-metadata-unknown-even":
        "03 00 00 00 00 03 "
        "03 03 6b 65 79 05 76 61 6c 75 65 "
        "04 01 6b 00 00 00 "
        "05 00 05 03 61 62 63 00 65 72 72",
    # AGENT_CANCEL with stream 0 and no fix-ups: the encoder must refuse.
    "cancel-stream-zero-invalid": "04 00 00 00 00 00 00",
    # AGENT_SYNC, big filled METADATA value (0xC0 mode: 0x3000 bytes of 'x')
    # pushing the header past the default 4096-byte receive limit.
    "sync-large-header": "05 00 01 00 00 01 03 01 6b c0 30 00 78 00",
    # Raw reserved flag bits: INVALID_FRAME.
    "reserved-flags-invalid": "01 84 01 01 01 00 00",
    # Unknown odd (critical) extension type 63: encodes, the decoder refuses.
    "critical-unknown-odd": "01 00 01 01 01 00 01 06 06 05 01 03 61 62 63 00",
    # AGENT_RESPONSE + CHECKSUM on stream 2, sequence 5, a filled payload
    # of 0x0400 bytes of 0x80.
    "filled-payload-checksum": "02 01 01 01 02 01 05 00 80 04 00",
    # AGENT_TASK, stream 0 fixed up to 1, sequence 0, one TRACESTATE made
    # printable from 52 raw bytes (text mode 0x74), empty payload:
    # header_length 5 + 2 + 52 + 4 = 63, the largest 1-byte header_length.
    "header-length-63": "01 00 03 00 00 01 02 01 74 " + " ".join(["61"] * 52) + " 00",
    # The same with 53 bytes (text mode 0x75): header_length 64, the
    # smallest 2-byte one (SPEC.md §4).
    "header-length-64": "01 00 03 00 00 01 02 01 75 " + " ".join(["62"] * 53) + " 00",
}


def hex_bytes(text):
    return bytes(int(t, 16) for t in text.split())


# session_receive.cpp records (layout at the top of that file). A record is
# kind, stream selector (+ its value bytes), sequence selector, [DEADLINE
# milliseconds, 2 bytes], payload selector (+ payload / fields), time byte.
T_INIT, T_TASK, T_RESPONSE, T_ERROR, T_CANCEL, T_SYNC, T_RAW, T_API = range(8)
CHECKSUM, FINAL, DEADLINE, TRACE_META, OTHER_SIDE = 0x08, 0x10, 0x20, 0x40, 0x80
S_ZERO, S_OWN, S_PEER_OPEN, S_NEXT_PEER, S_LAST_PEER, S_ENDED_OWN = (
    0x00, 0x20, 0x40, 0x60, 0x80, 0xA0)
Q_NEXT, Q_ZERO, Q_DUP = 0x00, 0x40, 0x80
P_BUILT, P_EMPTY = 0x80, 0xC0
# SYNC field byte: 1 ack (bits 5-6: 0 last_sent, 1 last_sent + 1, 2 zero,
# 3 a byte), 2 ping (4 bytes), 4 pong (bit 7: echo the last ping), 8 drain,
# 16 bye.
API_SUBMIT, API_PARTIAL, API_FINAL, API_FAIL, API_CANCEL = range(5)
API_CLOSE, API_ABORT, API_LOST, API_CONNECTED, API_TIMEOUT = range(5, 10)
# 10: resume the pair in memory (fresh acceptor, AdoptConnection); 11: the
# same with the pair's acceptor half-open.
API_RESUME, API_RESUME_HALF_OPEN = 10, 11
S_VALUE16 = 0xC0
# SYNC field bits.
ACK, PING, PONG, DRAIN, BYE = 0x01, 0x02, 0x04, 0x08, 0x10
ACK_PLUS_ONE, ACK_ZERO, ACK_BYTE, ECHO = 0x20, 0x40, 0x60, 0x80
# Time bytes: 1..200 milliseconds, 201..255 (t - 200) seconds.


def ms(n):
    assert 1 <= n <= 200
    return n


def secs(n):
    assert 1 <= n <= 55
    return 200 + n


def task(payload=b"t", kind=0, time=0, deadline_ms=None):
    """A valid next task from the target's peer."""
    return frame(T_TASK | CHECKSUM | kind, S_NEXT_PEER, Q_NEXT, raw(payload),
                 time=time, deadline_ms=deadline_ms)


def response(k=0, final=False, payload=b"r", time=0, kind=0):
    """A response to the target's k-th open task."""
    return frame(T_RESPONSE | CHECKSUM | (FINAL if final else 0) | kind,
                 S_OWN | k, Q_NEXT, raw(payload), time=time)


def ack(time=0, kind=0):
    return frame(T_SYNC | CHECKSUM | kind, S_ZERO, Q_NEXT, sync(ACK), time=time)


def q_rel(delta):
    """Sequence last_received() + delta, -31 <= delta <= 32."""
    return 0xC0 | (delta + 31)


def frame(kind, stream, seq, payload, time=0, deadline_ms=None,
          stream_value=b""):
    """stream_value: the 2 or 8 bytes after a stream selector of 6 or 7."""
    out = bytes([kind, stream]) + stream_value + bytes([seq])
    if kind & DEADLINE:
        out += (deadline_ms or 0).to_bytes(2, "big")
    return out + payload + bytes([time])


def raw(data):
    assert len(data) <= 63
    return bytes([len(data)]) + data


def sync(fields, extra=b""):
    return bytes([P_BUILT, fields]) + extra


def error(code, detail=0, retryable=False, message=b""):
    return bytes([P_BUILT, code - 1, detail, 1 if retryable else 0,
                  len(message)]) + message


def api(selector, k=0, payload=None, time=0, other=False):
    out = bytes([T_API | (OTHER_SIDE if other else 0), selector, k])
    if payload is not None:
        out += bytes([len(payload)]) + payload
    return out + bytes([time])


PREFACE = bytes.fromhex("89 53 59 4d 57 0d 0a 01")


def receive_seed(mode, split, *records):
    return bytes([mode, split]) + b"".join(records)


# mode: bits 0-1 target (0 acceptor, 1 initiator, 2-3 per record), bit 2
# raw, bits 3-4 roles (0 orchestrator/agent, 1 agent/orchestrator, 2 peer),
# bit 5 reactive, bit 6 checksums off, bit 7 no traffic first.
SESSION_RECEIVE = {
    # The initiator gets a partial and a final response to its first open
    # task, an ack of everything it sent, and an error ending its second.
    "initiator-responses": receive_seed(
        0x01, 0,
        frame(T_RESPONSE | CHECKSUM, S_OWN | 0, Q_NEXT, raw(b"part")),
        frame(T_RESPONSE | CHECKSUM | FINAL, S_OWN | 0, Q_NEXT, raw(b"done")),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(0x01), time=2),
        frame(T_ERROR | CHECKSUM, S_OWN | 1, Q_NEXT,
              error(13, 0, True, b"bad"), time=5)),
    # The acceptor gets a task with a deadline and trace context, its
    # cancel, a ping, then a duplicate and a gap.
    "acceptor-tasks": receive_seed(
        0x00, 0x83,
        frame(T_TASK | CHECKSUM | DEADLINE | TRACE_META, S_NEXT_PEER, Q_NEXT,
              raw(b"hello"), deadline_ms=500),
        frame(T_CANCEL | CHECKSUM, S_LAST_PEER, Q_NEXT, bytes([P_BUILT, 0]),
              time=1),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT,
              sync(0x02, b"\x00\x01\x02\x03"), time=10),
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, Q_DUP, raw(b"x")),
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, q_rel(5), bytes([P_EMPTY]))),
    # Peers, reactive: tasks answered by the target, deadlines passing.
    "peer-reactive": receive_seed(
        0x30, 1,
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, Q_NEXT, raw(b"a")),
        frame(T_TASK | CHECKSUM | DEADLINE, S_NEXT_PEER, Q_NEXT, raw(b"b"),
              deadline_ms=50),
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, Q_NEXT, raw(b"c"), time=200),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(0x01), time=203)),
    # Drain, then bye; then a long silence.
    "drain-bye": receive_seed(
        0x01, 0,
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(0x01 | 0x08)),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(0x10), time=250)),
    # A session-level error from the peer.
    "session-error": receive_seed(
        0x00, 0,
        frame(T_ERROR | CHECKSUM, S_ZERO, Q_NEXT,
              error(14, 121, False, b"internal"))),
    # API calls on the initiator: submit with a deadline, cancel, close,
    # transport lost and a reconnect.
    "api": receive_seed(
        0x01, 0,
        api(API_SUBMIT, 1, b"abc", time=5),
        api(API_CANCEL, 0),
        api(API_SUBMIT, 0, b"def"),
        api(API_CLOSE, 0, time=100),
        api(API_LOST, 0, time=20),
        api(API_CONNECTED, 0),
        api(API_TIMEOUT, 0, time=201)),
    # An AGENT_INIT after the handshake, to each side.
    "init-after-handshake": receive_seed(
        0x02, 0,
        frame(T_INIT | CHECKSUM, S_ZERO, Q_NEXT, bytes([P_BUILT, 3])),
        frame(T_INIT | CHECKSUM | OTHER_SIDE, S_ZERO, Q_NEXT,
              bytes([P_BUILT, 0]))),
    # Both sessions, alternating: a response to the initiator, a task to
    # the acceptor, acks both ways.
    "both": receive_seed(
        0x02, 2,
        frame(T_RESPONSE | CHECKSUM | OTHER_SIDE, S_OWN | 0, Q_NEXT,
              raw(b"p")),
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, Q_NEXT, raw(b"t")),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(0x01)),
        frame(T_SYNC | CHECKSUM | OTHER_SIDE, S_ZERO, Q_NEXT, sync(0x01),
              time=3)),
    # Pings faster than min_ping_interval allows: PING_FLOOD.
    "ping-flood": receive_seed(
        0x00, 0,
        *[frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT,
                sync(0x02, bytes([0, 0, 0, i]))) for i in range(5)]),
    # An ack of a frame never sent: BAD_ACK.
    "bad-ack": receive_seed(
        0x01, 0, frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(0x21))),
    # A second passes (the target pings), then a pong echoing it.
    "pong-echo": receive_seed(
        0x00, 0,
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, bytes([P_EMPTY]), time=201),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(0x04 | 0x80))),
    # A 65535-byte response payload (the limit is 64 KiB).
    "large-response": receive_seed(
        0x01, 0,
        frame(T_RESPONSE | CHECKSUM, S_OWN | 0, Q_NEXT,
              bytes([0x40, 0xFF, 0xFF]) + b"large")),
    # Raw mode: a preface where a frame belongs, then noise.
    "raw": receive_seed(
        0x04, 0x83, bytes.fromhex("89 53 59 4d 57 0d 0a 01") + bytes(range(40))),

    # ---- one seed per state (issue 11 item 10): each reaches the state
    # its name gives; SYMWIRE_FUZZ_VERBOSE=1 with fuzz_session_receive_replay
    # shows each record's result and the final states.
    #
    # Credit: the initiator submits until NO_CREDIT (the agent's max_tasks
    # is 8, three are open), final responses free credit (Writable), and it
    # submits again.
    "state-credit-exhausted": receive_seed(
        0x01, 0,
        *[api(API_SUBMIT, 0, bytes([0x61 + i])) for i in range(7)],
        response(0, final=True), response(0, final=True, time=ms(2)),
        api(API_SUBMIT, 0, b"again"), api(API_SUBMIT, 0, b"and again"),
        ack(time=ms(5))),
    # Replay window: the agent streams partial responses to one task without
    # an ack until REPLAY_BUFFER_FULL (32 frames), then an ack frees it.
    "state-replay-full": receive_seed(
        0x00, 0,
        *[api(API_PARTIAL, 0) for _ in range(36)],
        ack(), *[api(API_PARTIAL, 0) for _ in range(3)],
        api(API_FINAL, 0), ack(time=ms(3))),
    # Task states on the submitter: submitted (no response), running
    # (partials), cancelling (CancelTask, then the agent's late partial and
    # final for it), failed (AGENT_ERROR on the stream), completed.
    "state-tasks-submitter": receive_seed(
        0x01, 0,
        api(API_SUBMIT, 0, b"four"), api(API_SUBMIT, 0, b"five"),
        response(0), response(0), response(1),
        api(API_CANCEL, 1),
        frame(T_RESPONSE | CHECKSUM, S_ENDED_OWN, Q_NEXT, raw(b"late")),
        frame(T_ERROR | CHECKSUM, S_ENDED_OWN, Q_NEXT,
              error(1, 0, False, b"cancelled")),
        frame(T_ERROR | CHECKSUM, S_OWN | 1, Q_NEXT,
              error(9, 0, True, b"busy")),
        response(0, final=True), ack(time=ms(2))),
    # Task states on the runner: a task received (running), partials, a
    # failure, a cancel from the submitter (both reasons), a final; then
    # the API on ended tasks (refused locally).
    "state-tasks-runner": receive_seed(
        0x00, 0,
        task(b"one"), task(b"two"), task(b"three"),
        api(API_PARTIAL, 1), api(API_FAIL, 1),
        frame(T_CANCEL | CHECKSUM, S_PEER_OPEN | 1, Q_NEXT,
              bytes([P_BUILT, 0])),
        frame(T_CANCEL | CHECKSUM, S_PEER_OPEN | 1, Q_NEXT,
              bytes([P_BUILT, 1])),
        api(API_FINAL, 0), api(API_FINAL, 0), api(API_FAIL, 3),
        ack(time=ms(2))),
    # Deadlines: tasks received with 5 ms and 60 ms budgets expire on the
    # runner; the submitter's own tasks with deadlines expire too (it sends
    # the CANCEL); a response after expiry is late.
    "state-deadline-expiry": receive_seed(
        0x02, 0,
        task(b"d5", kind=DEADLINE, deadline_ms=5),
        task(b"d60", kind=DEADLINE, deadline_ms=60, time=ms(10)),
        api(API_SUBMIT, 3, b"d3", other=True),
        api(API_SUBMIT, 41, b"d41", other=True, time=ms(20)),
        frame(T_RESPONSE | CHECKSUM | OTHER_SIDE, S_ENDED_OWN, Q_NEXT,
              raw(b"late"), time=ms(100)),
        api(API_PARTIAL, 0), ack(time=ms(2))),
    # Draining: the initiator closes with tasks open (draining: it sends
    # drain and refuses new tasks), the agent finishes them, then the
    # agent's drain and bye: closed.
    "state-draining-close": receive_seed(
        0x01, 0,
        api(API_CLOSE, 0),
        api(API_SUBMIT, 0, b"refused"),
        response(0, final=True), response(0, final=True),
        response(0, final=True),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(ACK | DRAIN | ECHO)),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(BYE), time=ms(5)),
        api(API_SUBMIT, 0, b"after close")),
    # The peer drains: the agent gets drain from the orchestrator with tasks
    # open, finishes them, a task after the drain is an error, then bye.
    "state-peer-drain": receive_seed(
        0x00, 0,
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(DRAIN | ECHO)),
        api(API_FINAL, 0), api(API_FINAL, 0), ack(time=ms(2)),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(BYE), time=ms(5)),
        task(b"after drain")),
    # Bye while tasks are open (the peer closes abruptly), then time.
    "state-bye-open-tasks": receive_seed(
        0x01, 0,
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(BYE), time=secs(2))),
    # Both sides close at once (each record to a different side).
    "state-close-both": receive_seed(
        0x22, 0,
        api(API_CLOSE, 0), api(API_CLOSE, 0, other=True),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(DRAIN | ECHO)),
        frame(T_SYNC | CHECKSUM | OTHER_SIDE, S_ZERO, Q_NEXT,
              sync(DRAIN | ECHO), time=ms(50))),
    # Ping/pong: the peer pings (the target pongs), the target pings after
    # a second, a pong echoing it, a pong of a wrong value, a ping again
    # after the minimum interval.
    "state-ping-pong": receive_seed(
        0x00, 0,
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT,
              sync(PING, b"\x00\x00\x00\x07")),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, bytes([P_EMPTY]),
              time=secs(1)),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, sync(PONG | ECHO)),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT,
              sync(PONG, b"\x12\x34\x56\x78"), time=ms(150)),
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT,
              sync(ACK | PING, b"\x00\x00\x00\x08"), time=ms(2))),
    # Dead peer: silence past dead_peer_timeout (5 s) on the acceptor:
    # connection lost, disconnected; then the resume window (10 s) runs
    # out: SESSION_EXPIRED with its tasks failed.
    "state-dead-peer-expiry": receive_seed(
        0x00, 0,
        frame(T_SYNC | CHECKSUM, S_ZERO, Q_NEXT, bytes([P_EMPTY]),
              time=secs(6)),
        api(API_TIMEOUT, 0, time=secs(11))),
    # The initiator loses its connection, backs off, redials (its resume
    # HELLO goes out), the handshake times out, it redials again and gets
    # a WELCOME built from fields, then frames.
    "state-reconnect-welcome": receive_seed(
        0x01, 0,
        api(API_LOST, 0, time=ms(50)), api(API_CONNECTED, 0, time=secs(2)),
        api(API_CONNECTED, 0, time=ms(100)), api(API_CONNECTED, 0),
        bytes([T_RAW]) + raw(PREFACE) + bytes([0]),
        frame(T_INIT | CHECKSUM, S_ZERO, Q_ZERO, bytes([P_BUILT, 3])),
        response(0), ack()),
    # A real resume in memory (API 10): history both ways, the connection
    # dies, the initiator redials, the acceptor adopts it, replays; then
    # traffic on the resumed session and a second, half-open resume (API
    # 11) and a close.
    "state-resume": receive_seed(
        0x02, 0,
        task(b"before"), api(API_PARTIAL, 0),
        api(API_RESUME, 0),
        response(0, kind=OTHER_SIDE), task(b"after"), api(API_FINAL, 0),
        api(API_SUBMIT, 0, b"new", other=True),
        api(API_RESUME_HALF_OPEN, 0, time=ms(2)),
        api(API_FINAL, 0), ack(kind=OTHER_SIDE, time=ms(3)),
        api(API_CLOSE, 0, other=True, time=ms(10))),
    # Reactive peers submit to each other through the API only (nothing
    # injected, so both sessions agree): each resume delivers the tasks,
    # the answers and the acks written since the last one.
    "state-resume-reactive": receive_seed(
        0x32, 0x85,
        api(API_SUBMIT, 0, b"p1"), api(API_SUBMIT, 0, b"p2", other=True),
        api(API_RESUME, 0), api(API_SUBMIT, 0, b"p3", time=ms(2)),
        api(API_RESUME, 0, other=True), api(API_RESUME_HALF_OPEN, 0),
        api(API_SUBMIT, 0, b"p4", time=ms(20)),
        api(API_SUBMIT, 0, b"p5", other=True),
        api(API_RESUME, 0, time=ms(5)), api(API_RESUME_HALF_OPEN, 0),
        api(API_CLOSE, 0, other=True), api(API_RESUME, 0, time=ms(3))),
    # Resume after the acceptor's resume window ran out: the fresh acceptor
    # refuses it (RejectResume), the initiator's session fails.
    "state-resume-expired": receive_seed(
        0x00, 0,
        api(API_LOST, 0, time=secs(12)), api(API_RESUME, 0, time=ms(10))),
    # The acceptor is disconnected (TransportLost) and receives frames and
    # API calls; then a stale TransportConnected on an acceptor.
    "state-acceptor-disconnected": receive_seed(
        0x00, 0,
        api(API_LOST, 0), task(b"nowhere"), api(API_FINAL, 0),
        api(API_SUBMIT, 0, b"x"), api(API_CLOSE, 0),
        api(API_CONNECTED, 0, time=ms(10))),
    # Abort with tasks open on both sides, then more calls.
    "state-abort": receive_seed(
        0x02, 0,
        task(b"open"), api(API_ABORT, 0), api(API_ABORT, 0, other=True),
        api(API_FINAL, 0), task(b"after abort")),
    # Roles reversed (the agent dials, the orchestrator accepts and
    # submits): tasks from the acceptor, responses from the initiator.
    "state-roles-reversed": receive_seed(
        0x0A, 0,
        api(API_SUBMIT, 0, b"r1"), api(API_SUBMIT, 1, b"r2"),
        task(b"from acceptor", kind=OTHER_SIDE),
        response(0), response(0, final=True),
        api(API_PARTIAL, 0, other=True), api(API_FINAL, 0, other=True),
        ack(time=ms(2)), ack(kind=OTHER_SIDE)),
    # Protocol errors on streams: a response to an ended task, a task
    # reusing an id, a task of the wrong parity, a cancel of an unknown
    # task (each a separate session: target switches sides).
    "state-stream-errors": receive_seed(
        0x22, 0,
        frame(T_TASK | CHECKSUM, S_LAST_PEER, Q_NEXT, raw(b"reuse")),
        frame(T_TASK | CHECKSUM | OTHER_SIDE, S_VALUE16, Q_NEXT, raw(b"w"),
              stream_value=b"\x00\x04")),
    # Peers: a task of the wrong parity, a response to an ended task, a
    # cancel of a task never opened (stream value 0x0101).
    "state-stream-errors-peers": receive_seed(
        0x12, 0,
        frame(T_TASK | CHECKSUM, S_VALUE16, Q_NEXT, raw(b"even"),
              stream_value=b"\x00\x04"),
        frame(T_RESPONSE | CHECKSUM | FINAL | OTHER_SIDE, S_ENDED_OWN, Q_NEXT,
              raw(b"ended")),
        frame(T_CANCEL | CHECKSUM | OTHER_SIDE, S_VALUE16, Q_NEXT,
              bytes([P_BUILT, 0]), stream_value=b"\x01\x01")),
    # A duplicate (discarded), then a gap (a sequence error).
    "state-sequence-gap": receive_seed(
        0x00, 0,
        task(b"ok"),
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, Q_DUP, raw(b"dup")),
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, q_rel(3), raw(b"gap"))),
    # No checksums negotiated (mode bit 6), traffic, then a frame with one.
    "state-no-checksums": receive_seed(
        0x40, 0,
        frame(T_TASK, S_NEXT_PEER, Q_NEXT, raw(b"plain")),
        api(API_FINAL, 0),
        frame(T_SYNC, S_ZERO, Q_NEXT, sync(ACK)),
        frame(T_TASK | CHECKSUM, S_NEXT_PEER, Q_NEXT, raw(b"sum"))),
    # A bare handshake (mode bit 7): first tasks both ways on a fresh
    # session, peers.
    "state-bare-peers": receive_seed(
        0x92, 0,
        task(b"first"), api(API_SUBMIT, 0, b"mine"),
        api(API_SUBMIT, 0, b"theirs", other=True),
        response(0, final=True), api(API_FINAL, 0), ack(time=ms(2))),
}


# ws_frame seeds: the control block of fuzz/ws_frame.cpp (flags: 1 client,
# 2 direct payload reads, 4 discard, 8 discard after 1003/1009; split byte;
# output size - 1; max_message_bytes, 3 bytes big-endian), then RFC 6455
# frames.
WS_CLIENT, WS_DIRECT, WS_DISCARD, WS_GO_ON = 1, 2, 4, 8


def ws_control(flags=0, split=0, out=255, max_message=4096):
    return bytes([flags, split, out]) + max_message.to_bytes(3, "big")


def ws(op, payload=b"", fin=True, key=b"\x37\xfa\x21\x3d", rsv=0,
       length=None, form=None):
    """A frame: masked with `key` (None: unmasked); `length` overrides the
    length field, `form` forces its encoding (7, 16 or 64 bits)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | op
    mask = 0x80 if key is not None else 0
    if form is None:
        form = 7 if n < 126 else 16 if n <= 0xFFFF else 64
    if form == 7:
        head = bytes([b0, mask | n])
    elif form == 16:
        head = bytes([b0, mask | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mask | 127]) + n.to_bytes(8, "big")
    if key is None:
        return head + payload
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def ws_close(code, reason=b"", key=b"\x37\xfa\x21\x3d"):
    return ws(8, code.to_bytes(2, "big") + reason, key=key)


def ws_seeds():
    """Both roles: the server's seeds are masked, the client's not."""
    hello = b"\x89SYMW\r\n\x01\x01\x20" + bytes(range(40))
    seeds = {}
    for role, flags, key in (("server", 0, b"\x37\xfa\x21\x3d"),
                             ("client", WS_CLIENT, None)):
        def f(op, payload=b"", **kw):
            kw.setdefault("key", key)
            return ws(op, payload, **kw)

        def close(code, reason=b""):
            return ws_close(code, reason, key=key)

        pairs = {
            "binary": ws_control(flags) + f(2, hello) + close(1000),
            "binary-bytewise": ws_control(flags, 1) + f(2, hello) + f(2, b"x"),
            "binary-direct": ws_control(flags | WS_DIRECT, 0x9F, 15)
            + f(2, bytes(range(256)) * 4) + close(1000),
            "fragments": ws_control(flags, 0x85, 3)
            + f(2, b"ab", fin=False) + f(9, b"ping") + f(0, b"cd", fin=False)
            + f(0, b"", fin=False) + f(0, b"e") + f(2, b"") + close(4001, b"bye"),
            "control": ws_control(flags) + f(9) + f(10, b"pong")
            + f(9, b"p" * 125) + close(1001, "d\u00e9j\u00e0".encode()),
            "close-empty": ws_control(flags) + f(8) + f(2, b"after"),
            "len16": ws_control(flags) + f(2, b"m" * 300) + f(2, b"y" * 126),
            "len64": ws_control(flags, 0x7F, 255, 1 << 20)
            + f(2, b"z" * 65536),
            "text": ws_control(flags) + f(1, b"hello") + close(1000),
            "text-go-on": ws_control(flags | WS_GO_ON) + f(1, b"hi", fin=False)
            + f(9, b"p") + f(0, b"!") + f(2, b"dropped") + close(1000),
            "too-big": ws_control(flags, 0, 255, 16) + f(2, b"a" * 10, fin=False)
            + f(0, b"b" * 7) + close(1009),
            "too-big-go-on": ws_control(flags | WS_GO_ON, 3, 255, 16)
            + f(2, b"c" * 17) + f(9) + close(1000),
            "discard": ws_control(flags | WS_DISCARD) + f(2, b"dropped")
            + f(1, b"text") + f(9, b"p") + close(1000),
            "bad-len16": ws_control(flags) + f(2, b"short", form=16),
            "bad-len64": ws_control(flags) + f(2, b"q" * 200, form=64),
            "bad-len64-top-bit": ws_control(flags)
            + f(2, b"", length=1 << 63, form=64),
            "bad-rsv": ws_control(flags) + f(2, b"x", rsv=0x40),
            "bad-mask": ws_control(flags) + ws(2, b"x", key=None if key else
                                               b"\x01\x02\x03\x04"),
            "bad-opcode": ws_control(flags) + f(3, b"x") + f(11, b"y"),
            "bad-continuation": ws_control(flags) + f(0, b"x"),
            "bad-new-message": ws_control(flags) + f(2, b"a", fin=False)
            + f(2, b"b"),
            "bad-control-fragment": ws_control(flags) + f(9, b"", fin=False),
            "bad-control-size": ws_control(flags) + f(9, b"p" * 126),
            "bad-close-1-byte": ws_control(flags) + f(8, b"\x03"),
            "bad-close-code": ws_control(flags) + close(1005) + close(999)
            + close(5000),
            "bad-close-utf8": ws_control(flags) + close(1000, b"\xc0\xaf")
            + close(1000, b"\xed\xa0\x80") + close(1000, b"\xf4\x90\x80\x80"),
        }
        for name, data in pairs.items():
            seeds["%s-%s" % (role, name)] = data
    return seeds


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", help="path of the built fuzz_encoder_seeds program")
    ap.add_argument("--session", help="path of the built fuzz_session_seeds program")
    args = ap.parse_args(argv)

    frame_dir = os.path.join(CORPUS, "decode_frame")
    varint_dir = os.path.join(CORPUS, "decode_varint")
    roundtrip_dir = os.path.join(CORPUS, "roundtrip")
    receive_dir = os.path.join(CORPUS, "session_receive")
    handshake_dir = os.path.join(CORPUS, "session_handshake")
    written = set()
    counts = {"decode_frame": 0, "decode_varint": 0, "roundtrip": 0,
              "session_receive": 0, "session_handshake": 0}

    clear(frame_dir, "vec-")
    clear(varint_dir, "vec-")
    if os.path.isdir(VECTORS):
        files = sorted(f for f in os.listdir(VECTORS) if f.endswith(".md"))
    else:
        files = []
        print("make_seeds: %s does not exist yet; only hand-written seeds"
              % os.path.relpath(VECTORS, ROOT), file=sys.stderr)
    for fname in files:
        stem = fname[:-3]
        if stem in ("crc32c", "session_payloads"):
            continue  # CRC inputs and control payloads, not frame streams
        for name, data, options in load_vectors(os.path.join(VECTORS, fname)):
            base = "vec-%s-%s" % (slug(stem), slug(name))
            if stem == "varint":
                write(os.path.join(varint_dir, base), data, written)
                counts["decode_varint"] += 1
                continue
            try:
                strict = control_block(options, STRICT, SPLIT_BYTEWISE)
                fixup = control_block(options, FIXUP, SPLIT_RANDOM)
            except VectorError as err:
                print("make_seeds: %s: %s: skipped (%s)" % (fname, name, err),
                      file=sys.stderr)
                continue
            write(os.path.join(frame_dir, base + "-strict"), strict + data, written)
            write(os.path.join(frame_dir, base + "-fixup"), fixup + data, written)
            counts["decode_frame"] += 2

    clear(varint_dir, "hand-")
    for name, text in HAND_VARINT.items():
        write(os.path.join(varint_dir, "hand-" + name), hex_bytes(text), written)
        counts["decode_varint"] += 1
    clear(roundtrip_dir, "hand-")
    for name, text in HAND_ROUNDTRIP.items():
        write(os.path.join(roundtrip_dir, "hand-" + name), hex_bytes(text), written)
        counts["roundtrip"] += 1

    if args.encoder:
        clear(frame_dir, "enc-")
        subprocess.run([args.encoder, frame_dir], check=True)
        counts["decode_frame"] += sum(1 for n in os.listdir(frame_dir)
                                      if n.startswith("enc-"))

    clear(receive_dir, "hand-")
    for name, data in SESSION_RECEIVE.items():
        write(os.path.join(receive_dir, "hand-" + name), data, written)
        counts["session_receive"] += 1

    ws_dir = os.path.join(CORPUS, "ws_frame")
    clear(ws_dir, "hand-")
    counts["ws_frame"] = 0
    for name, data in ws_seeds().items():
        write(os.path.join(ws_dir, "hand-" + name), data, written)
        counts["ws_frame"] += 1

    os.makedirs(handshake_dir, exist_ok=True)
    endpoint_dir = os.path.join(CORPUS, "endpoint")
    os.makedirs(endpoint_dir, exist_ok=True)
    if args.session:
        clear(handshake_dir, "gen-")
        clear(endpoint_dir, "gen-")
        subprocess.run([args.session, CORPUS], check=True)
        counts["session_handshake"] += sum(1 for n in os.listdir(handshake_dir)
                                           if n.startswith("gen-"))
        counts["endpoint"] = sum(1 for n in os.listdir(endpoint_dir)
                                 if n.startswith("gen-"))

    for target, n in counts.items():
        total = len(os.listdir(os.path.join(CORPUS, target)))
        print("%-14s %3d seeds written, %3d files in corpus/%s"
              % (target, n, total, target))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except VectorError as err:
        print("make_seeds: %s" % err, file=sys.stderr)
        sys.exit(1)
