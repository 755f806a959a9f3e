#!/usr/bin/env python3
"""Tests of symwire-dump (tools/dump.cpp), run by ctest (tools/CMakeLists.txt).

  dump_test.py --dump PATH/symwire-dump --source REPO --work DIR CASE

Inputs are made at test time from the golden transcripts in
tests/vectors/session_transcripts.md (each hex block split into its two
directions by its "# X -> Y ...: offsets A..B" lines), corrupted on purpose,
hand-built with a small CRC32C encoder below, or wrapped into pcap files by
make_pcap.py. Expected text output of the clean case is checked in as
one_task.*.expected (produced by symwire-dump and checked by hand against the
annotated vector). Standard library only; each case runs in well under 5 s.
"""

import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, HERE)
import make_pcap  # noqa: E402

ARGS = None
FAILURES = []


# ---- helpers -----------------------------------------------------------------

def check(cond, what, output=""):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)
        if output:
            print("---- output ----\n" + output + "---- end ----")


def run(args, stdin=None):
    """Runs symwire-dump; returns (exit status, stdout, stderr)."""
    p = subprocess.run([ARGS.dump] + args, input=stdin, capture_output=True,
                       timeout=20)
    return (p.returncode, p.stdout.decode("utf-8"),
            p.stderr.decode("utf-8", "replace"))


def work(name):
    os.makedirs(ARGS.work, exist_ok=True)
    return os.path.join(ARGS.work, name)


def write(name, data):
    path = work(name)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def transcript(name):
    """The hex block of a transcript vector: [(direction, bytes)] per write."""
    md = open(os.path.join(ARGS.source, "tests", "vectors",
                           "session_transcripts.md")).read()
    section = md.split("\n## " + name + "\n", 1)[1]
    block = section.split("```hex\n", 1)[1].split("```", 1)[0]
    writes = []
    for line in block.splitlines():
        m = re.match(r"^# (\S.*?)(?:, after [^:]*)?: offsets \d+\.\.\d+$",
                     line)
        if m:
            writes.append([m.group(1), b""])
            continue
        hexpart = line.split("#", 1)[0]
        writes[-1][1] += bytes.fromhex("".join(hexpart.split()))
    return [(d, b) for d, b in writes]


def direction(writes, name):
    return b"".join(b for d, b in writes if d == name)


def transcript_names():
    md = open(os.path.join(ARGS.source, "tests", "vectors",
                           "session_transcripts.md")).read()
    return re.findall(r"^## (.+)$", md, re.M)


def hexdump(data):
    return "\n".join(data[i:i + 16].hex(" ") for i in range(0, len(data), 16))


def expected(name):
    return open(os.path.join(HERE, name)).read()


# A small independent encoder for hand-made frames (SPEC.md §2, §4, §6).
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(v):
    for size, tag in ((1, 0), (2, 1), (4, 2), (8, 3)):
        if v < 1 << (size * 8 - 2):
            return (v | (tag << (size * 8 - 2))).to_bytes(size, "big")
    raise ValueError(v)


def frame(type_, stream, seq, payload, flags=0, ext=b""):
    """A frame without payload checksum (flag CHECKSUM would need XXH3)."""
    body = (bytes([type_, flags]) + varint(stream) + varint(seq) +
            varint(len(payload)) + ext)
    header = varint(len(body) + 4) + body
    return header + crc32c(header).to_bytes(4, "big") + payload


def tlv(t, value):
    return varint(t) + varint(len(value)) + value


PREFACE = bytes.fromhex("89 53 59 4d 57 0d 0a 01")


def one_task():
    w = transcript("one task after the handshake")
    return (direction(w, "initiator -> acceptor"),
            direction(w, "acceptor -> initiator"))


# ---- cases -------------------------------------------------------------------

def case_clean():
    """(a) a recorded handshake and task decode to the expected lines."""
    client, server = one_task()
    for data, exp in ((client, "one_task.initiator.expected"),
                      (server, "one_task.acceptor.expected")):
        path = write(exp.replace(".expected", ".hex"), hexdump(data) + "\n")
        rc, out, err = run(["--hex", path])
        check(rc == 0, f"{exp}: exit status {rc} (want 0): {err}", out)
        check(out == expected(exp), f"{exp}: output differs", out)
        # The same bytes raw on standard input give the same lines.
        rc2, out2, _ = run(["-"], stdin=data)
        check(rc2 == 0 and out2 == out, f"{exp}: raw stdin differs", out2)
    # Every direction of every transcript vector decodes cleanly (they hold
    # protocol errors, not framing errors), control payloads included.
    # A write that starts with a preface starts a new connection (the
    # resume transcripts have several): each is one stream.
    preface = bytes.fromhex("8953594d570d0a01")
    for name in transcript_names():
        writes = transcript(name)
        for d in sorted({d for d, _ in writes}):
            if d.startswith("crafted"):
                continue  # a second preface mid-stream: checked below
            streams = []
            for dd, b in writes:
                if dd == d:
                    if b.startswith(preface) or not streams:
                        streams.append(b"")
                    streams[-1] += b
            for data in streams:
                rc, out, err = run(["-", "--quiet"], stdin=data)
                check(rc == 0 and not re.search(r"^@\d+ ERROR ", out, re.M),
                      f"{name} / {d}: not clean (exit {rc})", out)
    # A truncated stream is reported, but is not an error (SPEC.md §7.1).
    rc, out, _ = run(["-"], stdin=client[:130])
    check(rc == 0, f"truncated: exit {rc} (want 0)", out)
    check("@121 stream ends inside a frame: 9 bytes" in out,
          "truncated: no 'stream ends inside a frame' line at 121", out)
    # --no-preface: a stream that starts with a frame.
    rc, out, _ = run(["-", "--no-preface"], stdin=client[8:])
    check(rc == 0 and re.search(r"^@0 AGENT_INIT .*phase=HELLO", out, re.M),
          "--no-preface: HELLO not at offset 0", out)
    # --payload-bytes limits what is shown.
    rc, out, _ = run(["-", "--payload-bytes", "4"], stdin=client)
    check('"summ"...' in out, "--payload-bytes 4: payload not cut", out)


def case_crc():
    """(b) a corrupted header byte: CRC error at its offset, resync."""
    client, _ = one_task()
    data = bytearray(client)
    data[124] ^= 0x40  # the AGENT_TASK's stream_id (frame at 121)
    rc, out, _ = run(["-"], stdin=bytes(data))
    check(rc == 1, f"exit status {rc} (want 1)", out)
    check(re.search(r"^@133 ERROR HEADER_CRC_MISMATCH \(DATA_LOSS\): header "
                    r"crc32c 0x7d288892 does not match computed 0x[0-9a-f]{8} "
                    r"at offset 133 \[frame at 121\]$", out, re.M),
          "no HEADER_CRC_MISMATCH at 133 (CRC at 121 + 16 - 4)", out)
    check(re.search(r"^@163 resynchronised at offset 163 after skipping 42 "
                    r"bytes$", out, re.M), "no resync at 163", out)
    check(re.search(r"^@163 AGENT_SYNC stream=0 seq=0 flags=CHECKSUM len=3 "
                    r"\{ack=1\}$", out, re.M), "SYNC after resync missing", out)
    check(re.search(r"^summary: .* frames=2 .* errors=1 resyncs=1 "
                    r"skipped_bytes=42 ", out, re.M), "summary counts", out)
    # A flipped header_length byte in the first frame, where the decoder
    # expects a 10-byte header and finds the CRC elsewhere.
    data = bytearray(client)
    data[8] = 0x0B
    rc, out, _ = run(["-"], stdin=bytes(data))
    check(rc == 1 and re.search(r"^@\d+ ERROR HEADER_CRC_MISMATCH .*"
                                r"\[frame at 8\]$", out, re.M)
          and "resynchronised at offset 121 after skipping 113 bytes" in out,
          "header_length flip: CRC error and resync at 121", out)


def case_payload_checksum():
    """A corrupted payload byte: the header is intact, so its length is
    trusted and decoding goes on right after the frame."""
    client, _ = one_task()
    data = bytearray(client)
    data[140] ^= 0x01  # inside "summarize: symwire" (payload at 137)
    rc, out, _ = run(["-"], stdin=bytes(data))
    check(rc == 1, f"exit status {rc} (want 1)", out)
    check(re.search(r"^@155 ERROR PAYLOAD_CHECKSUM_MISMATCH \(DATA_LOSS\): "
                    r"payload xxh3-64 0x0712f8d247ba8987 .* at offset 155 "
                    r"\[frame at 121\]$", out, re.M),
          "no PAYLOAD_CHECKSUM_MISMATCH at 155", out)
    check("@163 resynchronised at offset 163 after skipping 42 bytes" in out,
          "no resync right after the damaged frame", out)


def case_garbage():
    """Bytes inserted between frames, a field error after a matching CRC,
    and a control payload that does not parse."""
    client, _ = one_task()
    data = client[:121] + b"\x05hello!" + client[121:]
    rc, out, _ = run(["-"], stdin=data)
    check(rc == 1 and re.search(r"^@121 ERROR BAD_HEADER_LENGTH "
                                r"\(INVALID_ARGUMENT\): header_length 5 is "
                                r"below minimum 9 at offset 121$", out, re.M),
          "no BAD_HEADER_LENGTH at 121", out)
    check("@128 resynchronised at offset 128 after skipping 7 bytes" in out,
          "no resync at 128", out)
    check(re.search(r"^@128 AGENT_TASK stream=1 seq=1 ", out, re.M),
          "task after the garbage missing", out)
    # A frame whose CRC matches but whose stream id breaks §4.1: reported at
    # the stream_id varint; its length is trusted.
    bad = frame(0, 7, 0, b"")  # AGENT_INIT on stream 7
    data = PREFACE + bad + frame(5, 0, 0, b"\x01\x01\x02")
    rc, out, _ = run(["-"], stdin=data)
    check(rc == 1 and re.search(r"^@11 ERROR BAD_STREAM_ID .* at offset 11 "
                                r"\[frame at 8\]$", out, re.M),
          "no BAD_STREAM_ID at 11", out)
    check(f"@{8 + len(bad)} resynchronised at offset {8 + len(bad)} after "
          f"skipping {len(bad)} bytes" in out, "no resync after it", out)
    check(re.search(r"AGENT_SYNC .*\{ack=2\}", out), "SYNC ack=2 missing", out)
    # A SYNC whose parameter list is malformed (param 1 ack, length 2 but
    # only 1 byte left): MALFORMED_PAYLOAD at the param_length's offset.
    data = PREFACE + frame(5, 0, 0, b"\x01\x02\x01")
    rc, out, _ = run(["-"], stdin=data)
    check(rc == 1 and re.search(r"^@19 ERROR MALFORMED_PAYLOAD "
                                r"\(INVALID_ARGUMENT\): .* at payload offset 1 "
                                r"\(stream offset 19\) \[frame at 8\]$", out,
                                re.M), "no MALFORMED_PAYLOAD at 19", out)
    # Garbage only: no header anywhere.
    rc, out, _ = run(["-", "--no-preface"], stdin=b"\x00" * 100)
    check(rc == 1 and "no frame header found: skipped" in out,
          "all-garbage stream", out)


def case_bad_preface():
    rc, out, _ = run(["-"], stdin=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(rc == 1 and re.search(r"^@0 ERROR BAD_PREFACE \(INVALID_ARGUMENT\): "
                                r"preface byte 0x47 is not the expected 0x89 "
                                r"at offset 0$", out, re.M),
          "HTTP request: no BAD_PREFACE at 0", out)
    client, _ = one_task()
    rc, out, _ = run(["-"], stdin=client[:3] + b"X" + client[4:])
    check(rc == 1 and "@3 ERROR BAD_PREFACE" in out and
          "resynchronised at offset 8 after skipping 8 bytes" in out and
          "AGENT_SYNC" in out, "bad magic byte 3: error and resync", out)
    rc, out, _ = run(["-"], stdin=client[:7] + b"\x02" + client[8:])
    check(rc == 1 and "@7 ERROR UNSUPPORTED_VERSION (UNIMPLEMENTED)" in out,
          "version 2: no UNSUPPORTED_VERSION at 7", out)


def case_json():
    """(c) --json output is one valid JSON object per line."""
    client, server = one_task()
    corrupt = bytearray(client)
    corrupt[124] ^= 0x40
    # Strings that need escaping: quotes, backslash, control bytes, valid
    # UTF-8, invalid UTF-8; in a payload, an error message and metadata.
    err = (b"\x01\x01\x0d" + b"\x02\x09" + b'q"\\\n\x01\xc3\xa9\xff\xfe' +
           b"\x03\x00" + b"\x04\x01\x07")
    meta = tlv(6, b"\x03k\"y" + b"v\xffal")
    odd = PREFACE + frame(3, 0, 0, err) + frame(
        1, 1, 1, b'{"x": "\\u00e9"}\x00\xff', ext=meta + tlv(8, b"\x00\x01"))
    # A task with a METHOD (SPEC.md §5.1): text and JSON show it.
    method_task = PREFACE + frame(1, 1, 0, b"hi", ext=tlv(9, b'llm.sum"x'))
    inputs = [("clean", client, []), ("server", server, []),
              ("crc", bytes(corrupt), []), ("odd", odd, []),
              ("garbage", b"\x00" * 40 + client, ["--no-preface"]),
              ("method", method_task, [])]
    cap = make_pcap.Capture()
    make_pcap.add_connection(cap, [("c", client), ("s", server)], segment=30)
    cap.write(work("json.pcap"))
    for name, data, extra in inputs + [("pcap", None, ["--pcap",
                                                       work("json.pcap")])]:
        args = ["--json"] + extra + ([] if data is None else ["-"])
        rc, out, err = run(args, stdin=data)
        check(rc in (0, 1), f"{name}: exit {rc}: {err}", out)
        try:
            lines = [json.loads(line) for line in out.splitlines()]
        except ValueError as e:
            check(False, f"{name}: invalid JSON: {e}", out)
            continue
        check(all(isinstance(x, dict) and "kind" in x for x in lines),
              f"{name}: a line without kind", out)
        check(lines and lines[-1]["kind"] == "summary", f"{name}: no summary",
              out)
        for x in lines:
            if x["kind"] == "frame":
                check(all(k in x for k in ("offset", "type", "stream", "seq",
                                           "flags", "payload_len")),
                      f"{name}: frame line lacks a field", out)
            if x["kind"] == "error":
                check(all(k in x for k in ("offset", "error", "message")),
                      f"{name}: error line lacks a field", out)
            if name == "pcap" and x["kind"] in ("frame", "preface"):
                check("direction" in x, "pcap: frame without direction", out)
        if name == "odd":
            e = [x for x in lines if x.get("type") == "AGENT_ERROR"][0]
            check(e["fields"]["code"] == "INTERNAL" and
                  e["fields"]["message"] == 'q"\\\n\x01\u00e9\u00ff\u00fe' and
                  e["fields"]["retryable"] is True and
                  e["fields"]["detail"] == "HEADER_CRC_MISMATCH",
                  "odd: AGENT_ERROR fields", out)
            t = [x for x in lines if x.get("type") == "AGENT_TASK"][0]
            check(t["payload_hex"] == b'{"x": "\\u00e9"}\x00\xff'.hex() and
                  t["ext"]["metadata"] == [{"key": 'k"y',
                                            "value": "v\u00ffal"}] and
                  t["ext"]["unknown"] == [{"type": 8, "value_hex": "0001"}],
                  "odd: AGENT_TASK payload and extensions", out)
        if name == "method":
            t = [x for x in lines if x.get("type") == "AGENT_TASK"][0]
            check(t["ext"]["method"] == 'llm.sum"x',
                  "method: JSON ext.method", out)
            rc, text, err = run(["-"], stdin=data)
            check(rc == 0 and 'method="llm.sum\\"x"' in text,
                  "method: text shows method=\"...\"", text)
        if name == "crc":
            e = [x for x in lines if x["kind"] == "error"][0]
            check(e["offset"] == 133 and e["error"] == "HEADER_CRC_MISMATCH"
                  and e["frame_offset"] == 121, "crc: error line", out)


def pcap_case_lines(out, label):
    """The lines of one direction with its label removed."""
    prefix = label + " "
    return "".join(line[len(prefix):] + "\n" for line in out.splitlines()
                   if line.startswith(prefix))


def one_task_pcap(name="one_task", **capture_options):
    """Writes the "one task after the handshake" transcript as one TCP
    connection (client port 40000, server 7000) in 25-byte segments,
    reordered and retransmitted, to work(name + ".pcap") with the
    make_pcap.Capture options given; returns the file's path."""
    writes = transcript("one task after the handshake")
    seq = [("c" if d.startswith("initiator") else "s", b) for d, b in writes]
    cap = make_pcap.Capture(**capture_options)
    make_pcap.add_connection(cap, seq, segment=25)
    path = work(name + ".pcap")
    cap.write(path)
    return path


def case_pcap():
    """(d) both directions of a TCP connection, reordered and retransmitted."""
    path = one_task_pcap()
    rc, out, err = run(["--pcap", path])
    check(rc == 0, f"exit status {rc} (want 0): {err}", out)
    c2s = "127.0.0.1:40000 -> 127.0.0.1:7000"
    s2c = "127.0.0.1:7000 -> 127.0.0.1:40000"
    check(re.search(r"^== capture: format=pcap-le-us link=ethernet packets=\d+ "
                    r"tcp_segments=\d+ ignored=0 connections=1 ==$", out,
                    re.M), "capture line", out)
    check(re.search(rf"^== {re.escape(c2s)}: bytes=184 segments=\d+ "
                    r"retransmitted=[1-9]\d* out_of_order=[1-9]\d* gaps=0 syn "
                    r"fin ==$", out, re.M), "client stream line", out)
    check(re.search(rf"^== {re.escape(s2c)}: bytes=196 segments=\d+ "
                    r"retransmitted=[1-9]\d* out_of_order=0 gaps=0 syn fin ==$",
                    out, re.M), "server stream line", out)
    check(out.index(c2s) < out.index(s2c), "client direction first", out)
    # Each direction decodes exactly as the same bytes do without TCP.
    exp_c = expected("one_task.initiator.expected")
    exp_s = expected("one_task.acceptor.expected")
    strip = lambda s: "".join(l + "\n" for l in s.splitlines()
                              if not l.startswith("summary"))
    check(pcap_case_lines(out, c2s) == strip(exp_c), "client lines", out)
    check(pcap_case_lines(out, s2c) == strip(exp_s), "server lines", out)
    check(re.search(r"^summary: streams=2 bytes=380 frames=6 .* errors=0 ",
                    out, re.M), "summary", out)


def case_pcap_variants():
    client, server = one_task()
    writes = [("c", client), ("s", server)]
    exp_c = [l for l in expected("one_task.initiator.expected").splitlines()
             if not l.startswith("summary")]
    # IPv6 over Linux cooked capture; big-endian nanosecond null/loopback.
    for opts, label in (
            (dict(link=make_pcap.LINK_SLL, ipv6=True), "[::1]:40000 -> "
             "[::1]:7000"),
            (dict(link=make_pcap.LINK_NULL, big_endian=True, nano=True),
             "127.0.0.1:40000 -> 127.0.0.1:7000")):
        cap = make_pcap.Capture(**opts)
        ipv6 = opts.get("ipv6", False)
        make_pcap.add_connection(
            cap, writes, client=("::1" if ipv6 else "127.0.0.1", 40000),
            server=("::1" if ipv6 else "127.0.0.1", 7000), segment=17)
        path = work("variant.pcap")
        cap.write(path)
        rc, out, err = run(["--pcap", path])
        check(rc == 0, f"{opts}: exit {rc}: {err}", out)
        got = pcap_case_lines(out, label).splitlines()
        check(got == exp_c, f"{opts}: client lines differ", out)
    # Two connections; --port keeps one.
    other = transcript("version mismatch")
    cap = make_pcap.Capture()
    make_pcap.add_connection(cap, writes)
    make_pcap.add_connection(
        cap, [("c" if d.startswith("initiator") else "s", b)
              for d, b in other], client=("10.0.0.1", 50000),
        server=("10.0.0.2", 7001))
    path = work("two.pcap")
    cap.write(path)
    rc, out, _ = run(["--pcap", path])
    check(rc == 0 and "connections=2" in out and "streams=4" in out,
          "two connections", out)
    rc, out, _ = run(["--pcap", path, "--port", "7001"])
    check(rc == 0 and "connections=1" in out and "10.0.0.2:7001 -> "
          "10.0.0.1:50000 @8 AGENT_ERROR" in out and "40000" not in out,
          "--port 7001", out)
    # The same 4-tuple reused by a new connection (a new SYN, a new ISN).
    cap = make_pcap.Capture()
    make_pcap.add_connection(cap, writes)
    make_pcap.add_connection(cap, writes, isn=(5000, 7000))
    path = work("reuse.pcap")
    cap.write(path)
    rc, out, _ = run(["--pcap", path])
    check(rc == 0 and "connections=2" in out and
          re.search(r"^summary: streams=4 bytes=760 frames=12 .* errors=0 ",
                    out, re.M), "port reuse: two connections", out)
    # The capture starts late (no SYN, first client segments missed): the
    # client stream is picked up at its first header, without error.
    cap = make_pcap.Capture()
    make_pcap.add_connection(cap, writes, segment=25, reorder=False,
                             retransmit=False, skip_first=5)
    path = work("late.pcap")
    cap.write(path)
    rc, out, _ = run(["--pcap", path])
    check(rc == 0 and re.search(r"-> 127\.0\.0\.1:7000 @\d+ synchronised at "
                                r"offset \d+ after skipping \d+ bytes", out),
          "late start: synchronised quietly", out)
    check("AGENT_SYNC" in out, "late start: later frames decoded", out)
    # A segment lost for good: a gap, then a resync.
    cap = make_pcap.Capture()
    make_pcap.add_connection(cap, writes, segment=25, reorder=False,
                             retransmit=False, drop=("c", 5))
    path = work("lost.pcap")
    cap.write(path)
    rc, out, _ = run(["--pcap", path])
    check(rc == 1 and re.search(r"@125 ERROR CAPTURE_GAP: 25 bytes of the "
                                r"stream are missing", out) and
          "resynchronised at offset 163" in out, "lost segment: gap", out)
    # A tiny reorder buffer turns the out-of-order segment into a gap that
    # the retransmission cannot fill any more.
    cap = make_pcap.Capture()
    make_pcap.add_connection(cap, writes, segment=25, retransmit=False)
    path = work("reorder.pcap")
    cap.write(path)
    rc, out, _ = run(["--pcap", path, "--reorder-bytes", "0"])
    check(rc == 1 and "CAPTURE_GAP" in out, "--reorder-bytes 0: gap", out)
    # Not a pcap, and pcapng.
    rc, _, err = run(["--pcap", "-"], stdin=b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    check(rc == 2 and "pcapng" in err, "pcapng refused with exit 2", err)
    rc, _, err = run(["--pcap", "-"], stdin=client)
    check(rc == 2 and "not a pcap" in err, "non-pcap refused", err)


def case_pcap_hints():
    """--port matching nothing lists the capture's ports; a pcap (or pcapng)
    file given without --pcap is refused with a hint."""
    path = one_task_pcap()
    rc, out, err = run(["--pcap", path, "--port", "7001"])
    check(rc == 2 and "symwire-dump: no TCP segment with port 7001; ports in "
          "the capture: 7000, 40000" in err, "--port 7001: lists the ports",
          out + err)
    rc, out, _ = run(["--pcap", path, "--port", "40000"])
    check(rc == 0 and "connections=1" in out, "--port 40000 matches", out)
    # Every pcap magic (both byte orders, us and ns) and pcapng's.
    variants = {"le-us": {}, "be-us": dict(big_endian=True),
                "le-ns": dict(nano=True),
                "be-ns": dict(big_endian=True, nano=True)}
    for name, kwargs in variants.items():
        path = one_task_pcap(f"one_task_{name}", **kwargs)
        for args in ([path], ["--hex", path]):
            rc, out, err = run(args)
            check(rc == 2 and "this looks like a pcap file; use --pcap" in err
                  and out == "", f"{name} {args[:-1]} without --pcap: hint",
                  out + err)
    rc, out, err = run(["-"], stdin=b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    check(rc == 2 and "this looks like a pcap file; use --pcap" in err,
          "pcapng without --pcap: hint", out + err)


def case_usage():
    for args in (["--bogus"], ["--port", "7000"], ["--payload-bytes", "x"],
                 ["--max-header-bytes", "5"], ["a", "b"],
                 [work("does-not-exist")]):
        rc, _, err = run(args, stdin=b"")
        check(rc == 2, f"{args}: exit {rc} (want 2)", err)
    rc, out, err = run(["--help"])
    check(rc == 0 and out.startswith("usage: symwire-dump") and err == "",
          "--help: usage on stdout, exit 0", out + err)
    rc, out, err = run(["--port", "abc", "--pcap", "-"], stdin=b"")
    check(rc == 2 and "'abc'" in err and "--port" in err and out == "",
          "--port abc: exit 2 naming the flag and the value", err)
    rc, _, err = run(["--hex", "-"], stdin=b"89 53 5")
    check(rc == 2, "odd hex digits: exit 2", err)
    rc, out, _ = run(["--quiet", "-"], stdin=PREFACE)
    check(rc == 0 and out == "@0 preface version=1\n", "--quiet", out)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--dump", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("case")
    ARGS = p.parse_args()
    ARGS.work = os.path.join(ARGS.work, ARGS.case)
    globals()["case_" + ARGS.case]()
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        return 1
    print("all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
