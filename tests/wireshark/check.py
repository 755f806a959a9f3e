#!/usr/bin/env python3
"""Checks tools/wireshark/symwire.lua with tshark against the golden vectors.

Usage: check.py [--tshark PATH] [--keep DIR]

Builds a capture with make_capture.py (every session transcript and every valid frames.md vector,
each a TCP connection; frames split across segments and several frames per segment; one
conversation with a bad CRC and a bad XXH3 trailer), runs (once in one pass, once in two passes with -2)

  tshark -X lua_script:tools/wireshark/symwire.lua -o symwire.port:7000
         -d tcp.port==7777,symwire --disable-heuristic symwire_tcp -r capture.pcap -T pdml

and compares every decoded PDU, per TCP direction and in order, with the values the vectors state:
preface version; type, flags, stream_id, sequence, payload_length, payload bytes, header CRC and
its status (Good, or Bad where corrupted), the XXH3-64 trailer and its status; extensions
(DEADLINE, TRACEPARENT, TRACESTATE, METADATA key/value, every TLV raw); the parameters of
AGENT_INIT/SYNC/ERROR/CANCEL (phase, versions, agent_id, role, auth, limits, nonce, session id,
ack, error code/message/detail, ...). A second, quick run with the port preference moved away
(-o symwire.port:7001) checks that the preface heuristic still finds every conversation that
starts with a preface. Exit 0 on success, 1 on a mismatch (each one is printed).
Python 3 standard library only. Running tshark as root prints a warning on stderr; it is ignored.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_LUA = ROOT / "tools" / "wireshark" / "symwire.lua"
sys.path.insert(0, str(HERE))
import make_capture  # noqa: E402

PREFIX = make_capture.PARAM_PREFIX


def run_tshark(tshark, lua, pcap, extra):
    cmd = [tshark, "-n", "-X", "lua_script:" + str(lua), *extra, "-r", str(pcap), "-T", "pdml"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    err = proc.stderr.decode(errors="replace")
    noise = [l for l in err.splitlines() if l.strip() and "Running as user" not in l]
    if proc.returncode != 0 or noise:
        print("tshark failed (exit %d): %s\n%s" % (proc.returncode, " ".join(cmd), "\n".join(noise)))
        return None
    return proc.stdout


def decoded_pdus(pdml):
    """{"SRCPORT>DSTPORT": [pdu, ...]} in capture order; a pdu maps field name -> [(show, value)]."""
    out = {}
    problems = []
    root = ET.fromstring(pdml)
    for packet in root.iter("packet"):
        ports = {}
        for proto in packet.findall("proto"):
            if proto.get("name") == "tcp":
                for f in proto.iter("field"):
                    if f.get("name") in ("tcp.srcport", "tcp.dstport"):
                        ports[f.get("name")] = f.get("show")
            if proto.get("name") == "symwire":
                pdu = {}
                for f in proto.iter("field"):
                    pdu.setdefault(f.get("name"), []).append((f.get("show"), f.get("value")))
                    text = f.get("showname") or f.get("show") or ""
                    if "Lua Error" in text:
                        problems.append("packet %s: %s" % (packet.find("proto").find("field").get("show"), text))
                key = "%s>%s" % (ports.get("tcp.srcport"), ports.get("tcp.dstport"))
                out.setdefault(key, []).append(pdu)
        for f in packet.iter("field"):
            if (f.get("name") or "").startswith("_ws.malformed") or "Lua Error" in (f.get("showname") or ""):
                problems.append("malformed/Lua error in a packet: %s" % (f.get("showname") or f.get("show")))
    return out, problems


class Checker:
    def __init__(self):
        self.errors = []
        self.checked = 0

    def fail(self, where, msg):
        self.errors.append("%s: %s" % (where, msg))

    def one(self, where, pdu, name, expected, how="int"):
        vals = pdu.get(name)
        if not vals:
            self.fail(where, "%s missing (expected %r)" % (name, expected))
            return
        show, value = vals[0]
        if how == "int":
            got = int(show, 0)
        elif how == "hex":
            got = value or ""
        elif how == "bool":
            got = show in ("1", "True", "true")
        else:
            got = show
        self.checked += 1
        if got != expected:
            self.fail(where, "%s = %r, expected %r" % (name, got, expected))

    def many(self, where, pdu, name, expected, how="hex"):
        vals = [(v or "") if how == "hex" else int(s, 0) for s, v in pdu.get(name, [])]
        self.checked += 1
        if vals != expected:
            self.fail(where, "%s = %r, expected %r" % (name, vals, expected))

    def frame(self, where, pdu, exp):
        if "symwire.type" not in pdu:
            self.fail(where, "expected a frame, got fields %s" % sorted(pdu)[:6])
            return
        for key, field in (("type", "symwire.type"), ("flags", "symwire.flags"),
                           ("stream_id", "symwire.stream_id"), ("sequence", "symwire.sequence"),
                           ("payload_length", "symwire.payload_length"), ("crc", "symwire.crc"),
                           ("xxh3", "symwire.xxh3"), ("deadline", "symwire.ext.deadline"),
                           ("size", "symwire.frame_length")):
            if key in exp:
                self.one(where, pdu, field, exp[key])
        self.one(where, pdu, "symwire.crc.status", exp.get("crc_status", 1))
        if exp.get("flags", 0) & 1:
            self.one(where, pdu, "symwire.xxh3.status", exp.get("xxh3_status", 1))
        elif "symwire.xxh3" in pdu:
            self.fail(where, "XXH3 trailer shown without CHECKSUM")
        if exp.get("payload"):
            self.one(where, pdu, "symwire.payload", exp["payload"], "hex")
        if "traceparent" in exp:
            self.one(where, pdu, "symwire.ext.traceparent", exp["traceparent"], "hex")
        if "tracestate" in exp:
            self.one(where, pdu, "symwire.ext.tracestate", exp["tracestate"], "hex")
        if "method" in exp:
            self.one(where, pdu, "symwire.ext.method", exp["method"], "hex")
        if "metadata" in exp:
            self.many(where, pdu, "symwire.ext.metadata.key", [k for k, _ in exp["metadata"]])
            self.many(where, pdu, "symwire.ext.metadata.value", [v for _, v in exp["metadata"]])
        if "ext" in exp:
            self.many(where, pdu, "symwire.ext.type", [t for t, _ in exp["ext"]], "int")
            self.many(where, pdu, "symwire.ext.value", [v for _, v in exp["ext"]])
        if "ext_types" in exp:
            self.many(where, pdu, "symwire.ext.type", exp["ext_types"], "int")
        for name, kind, value in exp.get("params", []):
            field = "symwire.%s.%s" % (PREFIX[exp["type"]], name)
            if kind == "string":  # quoted in the vector: compare the raw bytes, and the text
                self.one(where, pdu, field, value.encode().hex(), "hex")
                if name in ("agent_id", "message"):
                    self.one(where, pdu, field, value, "str")
                continue
            how = {"int": "int", "bytes": "hex", "flag": "bool"}[kind]
            self.one(where, pdu, field, value, how)

    def direction(self, key, name, expected, got):
        if len(got) != len(expected):
            self.fail("%s [%s]" % (name, key), "%d PDUs decoded, %d expected" % (len(got), len(expected)))
        for i, (exp, pdu) in enumerate(zip(expected, got)):
            where = "%s [%s] PDU %d" % (name, key, i)
            if exp["kind"] == "preface":
                self.one(where, pdu, "symwire.preface.version", exp["version"])
            else:
                self.frame(where, pdu, exp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tshark", default="tshark")
    ap.add_argument("--lua", default=str(DEFAULT_LUA), help="the dissector (default tools/wireshark/symwire.lua)")
    ap.add_argument("--keep", help="directory to keep capture.pcap, expected.json and the PDML in")
    args = ap.parse_args()
    lua = Path(args.lua).resolve()
    if not shutil.which(args.tshark):
        print("check.py: tshark not found (%s)" % args.tshark)
        return 1

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="symwire-wshark-"))
    work.mkdir(parents=True, exist_ok=True)
    pcap, exp_path = work / "capture.pcap", work / "expected.json"
    if make_capture.main(["make_capture.py", str(pcap), str(exp_path)]) != 0:
        return 1
    expected = json.loads(exp_path.read_text())

    c = Checker()
    # Run 1 in one pass; run 1b in two passes (tshark -2), which replays the TCP reassembly the
    # way the GUI does when a packet is selected: frames split across segments must decode the same.
    for label, passes in (("run 1", []), ("run 1b, two-pass", ["-2"])):
        pdml = run_tshark(args.tshark, lua, pcap, passes + ["-o", "symwire.port:7000", "-d",
                                                            "tcp.port==7777,symwire",
                                                            "--disable-heuristic", "symwire_tcp"])
        if pdml is None:
            return 1
        if args.keep:
            (work / ("decoded%s.pdml" % "".join(passes))).write_bytes(pdml)
        got, problems = decoded_pdus(pdml)
        c.errors.extend(label + ": " + p for p in problems)
        checked_before = c.checked
        errors_before = len(c.errors)
        for key, exp in expected.items():
            c.direction(key, exp["name"], exp["pdus"], got.get(key, []))
        for key in got:
            if key not in expected:
                c.fail(key, "decoded PDUs on a direction with none expected")
        c.errors[errors_before:] = [label + ": " + e for e in c.errors[errors_before:]]
        frames = sum(1 for e in expected.values() for p in e["pdus"] if p["kind"] == "frame")
        prefaces = sum(1 for e in expected.values() for p in e["pdus"] if p["kind"] == "preface")
        bad = [(k, p) for k, e in expected.items() for p in e["pdus"]
               if p.get("crc_status") == 0 or p.get("xxh3_status") == 0]
        print("%s (port 7000, Decode As 7777): %d directions, %d prefaces, %d frames, %d values "
              "compared, %d deliberately corrupted frames"
              % (label, len(expected), prefaces, frames, c.checked - checked_before, len(bad)))

    # Run 2: port preference elsewhere, heuristic on: every direction that starts with a preface
    # is still found, with the same number of PDUs.
    pdml2 = run_tshark(args.tshark, lua, pcap, ["-o", "symwire.port:7001"])
    if pdml2 is None:
        return 1
    got2, problems2 = decoded_pdus(pdml2)
    c.errors.extend(problems2)
    n2 = 0
    for key, exp in expected.items():
        if exp["pdus"] and exp["pdus"][0]["kind"] == "preface":
            n2 += 1
            if len(got2.get(key, [])) != len(exp["pdus"]):
                c.fail("heuristic run: " + exp["name"], "%d PDUs decoded, %d expected"
                       % (len(got2.get(key, [])), len(exp["pdus"])))
    print("run 2 (port 7001, preface heuristic): %d directions starting with a preface checked" % n2)

    if c.errors:
        for e in c.errors[:60]:
            print("MISMATCH " + e)
        print("FAILED: %d mismatches" % len(c.errors))
        return 1
    print("OK: the dissector matches the vectors")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
