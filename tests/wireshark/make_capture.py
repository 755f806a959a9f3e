#!/usr/bin/env python3
"""Builds a pcap of real symwire conversations over TCP from the golden vectors.

Usage: make_capture.py OUT.pcap [EXPECTED.json]

Every byte on the wire comes from tests/vectors/session_transcripts.md (whole handshakes and a
task, both directions, one TCP connection per vector, server port 7000; the vector "new session,
token auth" on port 7777, for "Decode As") and tests/vectors/frames.md (every valid frame vector,
one connection each, client to server). Hex blocks are parsed from the Markdown; nothing is
re-encoded. Writes are TCP segments (split at an MSS of 1460), with these deliberate shapes:

  * "one task after the handshake": the acceptor's preface and the first 5 bytes of WELCOME in one
    segment, the rest of WELCOME in the next (a frame split inside its header); the AGENT_TASK
    split inside its payload; the acceptor's AGENT_SYNC and AGENT_RESPONSE in one segment;
  * "three frames back to back": preface and three frames in one segment;
  * a "corrupted" connection: a frame whose stored CRC is flipped (crc.status Bad), a good frame,
    and a frame whose XXH3-64 trailer is flipped (xxh3.status Bad).

EXPECTED.json gets, per direction ("CLIENTPORT>SERVERPORT" or the reverse), the list of PDUs the
dissector must show, with the values the vectors state: their comments (transcripts) or their log
blocks (frames.md). Python 3 standard library only.
"""

import json
import re
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
SERVER_PORT = 7000
DECODE_AS_PORT = 7777
MSS = 1460
PREFACE = bytes.fromhex("8953594d570d0a01")

TYPE_NAMES = ["AGENT_INIT", "AGENT_TASK", "AGENT_RESPONSE", "AGENT_ERROR", "AGENT_CANCEL",
              "AGENT_SYNC"]
PARAM_PREFIX = {0: "init", 3: "error", 4: "cancel", 5: "sync"}


# --------------------------------------------------------------------------------------------
# Markdown vector parsing
# --------------------------------------------------------------------------------------------

def sections(md_path):
    """Yields (name, {block_kind: [lines]}) for every '## ' section of a vector file."""
    name, blocks, kind, lines = None, {}, None, None
    for line in md_path.read_text().splitlines():
        if kind is not None:
            if line.startswith("```"):
                blocks.setdefault(kind, []).extend(lines)
                kind = None
            else:
                lines.append(line)
            continue
        if line.startswith("## "):
            if name is not None:
                yield name, blocks
            name, blocks = line[3:].strip(), {}
        elif line.startswith("```") and len(line) > 3 and name is not None:
            kind, lines = line[3:].strip(), []
    if name is not None:
        yield name, blocks


def hex_items(lines):
    """Splits a hex block into items: (comment, bytes). A line with a comment starts an item; a
    line without one continues the previous item. '#'-only lines are returned as (comment, None)."""
    items = []
    for line in lines:
        code, _, comment = line.partition("#")
        code, comment = code.strip(), comment.strip()
        data = bytes.fromhex(code) if code else b""
        if not code:
            items.append((comment, None))
        elif comment or not items or items[-1][1] is None:
            items.append((comment, bytearray(data)))
        else:
            items[-1][1].extend(data)
    return items


def varint(buf, pos):
    n = 1 << (buf[pos] >> 6)
    v = buf[pos] & 0x3F
    for b in buf[pos + 1:pos + n]:
        v = (v << 8) | b
    return v, pos + n


def transcript_writes(items):
    """[(direction, bytes, [frame expectations])] from a transcript hex block; direction 'c2s'
    (initiator -> acceptor, or crafted input to the acceptor) or 's2c'."""
    writes = []
    frame = None
    starts = {}  # id(frame) -> (its offset in its write, its header's size)
    for comment, data in items:
        if data is None:
            m = re.match(r"(initiator -> acceptor|acceptor -> initiator|crafted input to the acceptor)",
                         comment)
            if m:
                writes.append(["s2c" if m.group(1).startswith("acceptor") else "c2s", bytearray(), []])
            continue
        direction, buf, pdus = writes[-1]
        buf.extend(data)
        if comment.startswith("preface"):
            pdus.append({"kind": "preface", "version": data[7]})
            continue
        m = re.match(r"(header_length|type|flags|stream_id|sequence|payload_length|header_crc|XXH3-64) (\S+)",
                     comment)
        if m:
            key, val = m.group(1), m.group(2)
            if key == "header_length":
                frame = {"kind": "frame", "params": []}
                pdus.append(frame)
                starts[id(frame)] = (len(buf) - len(data), len(data) + int(val))
            elif key == "type":
                frame["type"] = int(val)
            elif key == "flags":
                frame["flags"] = int(val, 16)
            elif key == "header_crc":
                frame["crc"] = int(val, 16)
            elif key == "XXH3-64":
                frame["xxh3"] = int(val, 16)
            else:
                frame[key] = int(val)
            continue
        m = re.match(r"param (\d+) (\w+), length (\d+)(?:: (.*))?$", comment)
        if m:
            _, pos = varint(data, 0)
            length, pos = varint(data, pos)
            value = bytes(data[pos:pos + length])
            assert len(value) == int(m.group(3)), comment
            text = m.group(4)
            if text is None:
                expect = ("flag", True)
            elif text.startswith('"'):
                expect = ("string", value.decode())
            elif text.endswith("bytes"):
                expect = ("bytes", value.hex())
            else:
                expect = ("int", int(text.split()[0]))
            frame["params"].append((m.group(2), expect[0], expect[1]))
            continue
        m = re.match(r"ext type (\d+)", comment)
        if m:
            frame.setdefault("ext_types", []).append(int(m.group(1)))
            continue
        m = re.match(r"value: (\d+) us", comment)
        if m:
            frame["deadline"] = int(m.group(1))
    # A frame cut off at the end of its write (e.g. a header declaring a payload that never
    # comes) is not a PDU: the dissector rightly waits for the rest.
    for _, buf, pdus in writes:
        if pdus and pdus[-1]["kind"] == "frame":
            f = pdus[-1]
            start, header = starts[id(f)]
            need = header + f.get("payload_length", 0) + (8 if f.get("flags", 0) & 1 else 0)
            if len(buf) - start < need:
                pdus.pop()
    return [(d, bytes(b), p) for d, b, p in writes]


def frames_vector(blocks):
    """(stream bytes, [expected PDUs]) for a frames.md vector, from its hex and log blocks."""
    data = b"".join(bytes(d) for _, d in hex_items(blocks["hex"]) if d)
    pdus = []
    for line in blocks.get("log", []):
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "preface":
            pdus.append({"kind": "preface", "version": int(tok[1].split("=")[1])})
        elif tok[0] == "frame":
            f = {"kind": "frame", "metadata": [], "ext": []}
            for t in tok[1:]:
                k, _, v = t.partition("=")
                if k == "metadata":
                    key, _, val = v.partition(":")
                    f["metadata"].append((key, "" if val == "-" else val))
                elif k == "ext":
                    typ, _, val = v.partition(":")
                    f["ext"].append((int(typ), "" if val == "-" else val))
                elif k == "type":
                    f["type"] = TYPE_NAMES.index(v)
                elif k == "flags":
                    f["flags"] = int(v, 16)
                elif k in ("offset", "size", "stream", "seq", "deadline_us"):
                    f[{"stream": "stream_id", "seq": "sequence",
                       "deadline_us": "deadline"}.get(k, k)] = int(v)
                elif k == "payload":
                    f["payload"] = "" if v == "-" else v
                    f["payload_length"] = len(f["payload"]) // 2
                elif k in ("traceparent", "tracestate", "method"):
                    f[k] = v
            pdus.append(f)
        else:
            return None, None  # an error vector: not used here
    return data, pdus


# --------------------------------------------------------------------------------------------
# The conversations
# --------------------------------------------------------------------------------------------

def build_conversations():
    """[(name, client_port, server_port, [(direction, bytes)], {direction: [PDUs]})]"""
    convs = []
    client_port = 50000

    def add(name, server_port, segments, expected):
        nonlocal client_port
        client_port += 1
        convs.append((name, client_port, server_port, segments, expected))

    for name, blocks in sections(VECTORS / "session_transcripts.md"):
        if "hex" not in blocks:
            continue
        writes = transcript_writes(hex_items(blocks["hex"]))
        expected = {"c2s": [], "s2c": []}
        for d, _, pdus in writes:
            expected[d].extend(pdus)
        segments = [(d, b) for d, b, _ in writes]
        if name == "one task after the handshake":
            # writes: HELLO(c2s), preface(s2c), WELCOME(s2c), TASK(c2s), SYNC(s2c), RESPONSE(s2c),
            # SYNC(c2s)
            assert [d for d, _ in segments] == ["c2s", "s2c", "s2c", "c2s", "s2c", "s2c", "c2s"]
            hello, pre, welcome, task, sync, resp, ack = [b for _, b in segments]
            segments = [("c2s", hello),
                        ("s2c", pre + welcome[:5]), ("s2c", welcome[5:]),   # split in a header
                        ("c2s", task[:30]), ("c2s", task[30:]),             # split in a payload
                        ("s2c", sync + resp),                               # two frames, one segment
                        ("c2s", ack)]
        add(name, DECODE_AS_PORT if name == "new session, token auth" else SERVER_PORT,
            segments, expected)

    for name, blocks in sections(VECTORS / "frames.md"):
        if "hex" not in blocks:
            continue
        data, pdus = frames_vector(blocks)
        if data is None:
            continue
        add("frames.md: " + name, SERVER_PORT, [("c2s", data)], {"c2s": pdus, "s2c": []})

    # Corruption: a flipped CRC byte, then a good frame, then a flipped XXH3 trailer.
    bad_crc = bytearray.fromhex("09 01 00 01 01 05 63 1f 7e 35 68 65 6c 6c 6f")  # AGENT_TASK with a payload
    bad_crc[9] ^= 0x01
    good = bytes.fromhex("09 01 01 01 01 05 be 5a d4 8d 68 65 6c 6c 6f 95 55 e8 55 5c 62 dc fd")
    bad_xxh = bytearray(good)
    bad_xxh[-1] ^= 0x80
    add("corrupted", SERVER_PORT,
        [("c2s", PREFACE + bytes(bad_crc) + good), ("c2s", bytes(bad_xxh))],
        {"c2s": [{"kind": "preface", "version": 1},
                 {"kind": "frame", "type": 1, "flags": 0, "stream_id": 1, "sequence": 1,
                  "payload_length": 5, "crc": 0x631F7E34, "crc_status": 0},
                 {"kind": "frame", "type": 1, "flags": 1, "stream_id": 1, "sequence": 1,
                  "payload_length": 5, "crc": 0xBE5AD48D, "xxh3": 0x9555E8555C62DCFD},
                 {"kind": "frame", "type": 1, "flags": 1, "stream_id": 1, "sequence": 1,
                  "payload_length": 5, "crc": 0xBE5AD48D, "xxh3": 0x9555E8555C62DC7D,
                  "xxh3_status": 0}],
         "s2c": []})
    return convs


# --------------------------------------------------------------------------------------------
# pcap writing: Ethernet / IPv4 / TCP
# --------------------------------------------------------------------------------------------

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Pcap:
    def __init__(self):
        self.records = []
        self.ip_id = 0
        self.time = 1_700_000_000.0

    def packet(self, src, dst, sport, dport, seq, ack, flags, payload=b""):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, flags, 65535, 0, 0)
        pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(tcp) + len(payload))
        csum = checksum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        self.ip_id += 1
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self.ip_id,
                         0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        mac_c, mac_s = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
        eth = (mac_s + mac_c if src[3] == 1 else mac_c + mac_s) + b"\x08\x00"
        frame = eth + ip + tcp + payload
        self.time += 0.001
        sec, usec = int(self.time), int(round((self.time % 1) * 1e6)) % 1_000_000
        self.records.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)

    def write(self, path):
        header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
        Path(path).write_bytes(header + b"".join(self.records))


SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10


def write_conversation(pcap, client_port, server_port, segments):
    c_ip, s_ip = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    seq = {"c2s": 1000, "s2c": 5000}

    def send(direction, flags, payload=b""):
        if direction == "c2s":
            pcap.packet(c_ip, s_ip, client_port, server_port, seq["c2s"], seq["s2c"], flags, payload)
        else:
            pcap.packet(s_ip, c_ip, server_port, client_port, seq["s2c"], seq["c2s"], flags, payload)
        seq[direction] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    pcap.packet(c_ip, s_ip, client_port, server_port, seq["c2s"], 0, SYN)
    seq["c2s"] += 1
    send("s2c", SYN | ACK)
    send("c2s", ACK)
    for direction, data in segments:
        for i in range(0, len(data), MSS):
            send(direction, PSH | ACK, data[i:i + MSS])
    send("c2s", FIN | ACK)
    send("s2c", FIN | ACK)
    send("c2s", ACK)


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    pcap = Pcap()
    expected = {}
    for name, cport, sport, segments, exp in build_conversations():
        write_conversation(pcap, cport, sport, segments)
        expected["%d>%d" % (cport, sport)] = {"name": name, "pdus": exp["c2s"]}
        expected["%d>%d" % (sport, cport)] = {"name": name + " (reverse)", "pdus": exp["s2c"]}
    pcap.write(argv[1])
    if len(argv) == 3:
        Path(argv[2]).write_text(json.dumps(expected, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
