#!/usr/bin/env python3
"""Writes the seed corpora of the symwire fuzz targets (python3 stdlib only).

    fuzz/make_seeds.py [--encoder BUILD_DIR/fuzz/fuzz_encoder_seeds]

Run it from anywhere; paths are relative to the repository. It rewrites the
generated seeds and leaves every other file alone (saved findings, seeds
libFuzzer added, hand-made ones):

  corpus/decode_frame/vec-*   one pair per vector of tests/vectors/*.md
                              (except crc32c.md and varint.md): the 10-byte
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
sys.path.insert(0, os.path.join(ROOT, "tools"))
import vectors_ref  # noqa: E402  (the vector-file reader; needs python3-xxhash)
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


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", help="path of the built fuzz_encoder_seeds program")
    args = ap.parse_args(argv)

    frame_dir = os.path.join(CORPUS, "decode_frame")
    varint_dir = os.path.join(CORPUS, "decode_varint")
    roundtrip_dir = os.path.join(CORPUS, "roundtrip")
    written = set()
    counts = {"decode_frame": 0, "decode_varint": 0, "roundtrip": 0}

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
        if stem == "crc32c":
            continue  # CRC inputs, not frames
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
