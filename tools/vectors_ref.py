#!/usr/bin/python3
"""Independent reference for the symwire wire format, written from SPEC.md.

This is a tool for humans who write and review the golden vectors in
tests/vectors/*.md. It is deliberately NOT derived from the C++ codec: every
rule below cites the SPEC.md section it implements. The C++ tests never run it.

Dependencies: Python 3 standard library plus Debian's python3-xxhash (XXH3-64),
hence the /usr/bin/python3 shebang (a pyenv python3 on PATH will not see the
Debian module):

    apt-get install -y python3-xxhash xxhash

Modes:

    vectors_ref.py selftest
        CRC32C (bitwise and table-driven) and XXH3-64 check values, varint
        round trips, header_length edge cases (9, 63/64, limits).
    vectors_ref.py check [FILE.md ...]
        Re-decodes every vector of every file (default: all of tests/vectors/)
        and verifies that each hex block produces exactly its log, that the
        names are unique, and that decoding every prefix of a stream is
        consistent with decoding all of it (what a byte-by-byte test sees).
    vectors_ref.py decode [--preface=off] [--max-header-bytes=N]
                          [--max-payload-bytes=N] [--max-extensions=N] HEX...
        Prints the log of a byte stream (the `log` block of a vector).
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

import os
import re
import sys

try:
    import xxhash  # Debian: python3-xxhash
except ImportError:  # pragma: no cover
    sys.stderr.write("vectors_ref.py needs XXH3: apt-get install -y python3-xxhash "
                     "and run it with /usr/bin/python3\n")
    raise

# ---------------------------------------------------------------------------
# §2 Varints (QUIC, RFC 9000 §16), canonical form required.

VARINT_MAX = (1 << 62) - 1
_PREFIX_FOR_SIZE = {1: 0b00, 2: 0b01, 4: 0b10, 8: 0b11}
# The smallest value that needs each length: anything below it is non-canonical.
_MIN_FOR_SIZE = {1: 0, 2: 1 << 6, 4: 1 << 14, 8: 1 << 30}


class Incomplete(Exception):
    """The stream ended before the bytes a check needs."""


class WireError(Exception):
    """A decoding error: SPEC.md §7 name and stream offset (§7.1)."""

    def __init__(self, code, offset):
        super().__init__("%s at %d" % (code, offset))
        self.code = code
        self.offset = offset

    def log_line(self):
        return "error code=%s offset=%d" % (self.code, self.offset)


def varint_size(value):
    """Shortest varint length for `value` (§2)."""
    if value < 0 or value > VARINT_MAX:
        raise ValueError("VARINT_OUT_OF_RANGE: %d" % value)
    for size in (1, 2, 4, 8):
        if value < (1 << (8 * size - 2)):
            return size
    raise AssertionError("unreachable")


def varint_encode(value, size=None):
    """Encodes `value`; `size` forces a (possibly non-canonical) length."""
    if size is None:
        size = varint_size(value)
    if size not in _PREFIX_FOR_SIZE:
        raise ValueError("varint size must be 1, 2, 4 or 8")
    if value < 0 or value >= (1 << (8 * size - 2)):
        raise ValueError("%d does not fit in a %d-byte varint" % (value, size))
    word = (_PREFIX_FOR_SIZE[size] << (8 * size - 2)) | value
    return word.to_bytes(size, "big")


def varint_length_from_first_byte(first):
    """§2: the two most significant bits give the total length."""
    return 1 << (first >> 6)


def varint_decode(data, pos, end):
    """Decodes the varint at data[pos:], using bytes before `end` only.

    Returns (value, size). Raises Incomplete if the varint's bytes are not all
    before `end`, WireError(NON_CANONICAL_VARINT, pos) if it is not in
    shortest form.
    """
    if pos >= end:
        raise Incomplete()
    size = varint_length_from_first_byte(data[pos])
    if pos + size > end:
        raise Incomplete()
    value = int.from_bytes(data[pos:pos + size], "big") & ((1 << (8 * size - 2)) - 1)
    if value < _MIN_FOR_SIZE[size]:
        raise WireError("NON_CANONICAL_VARINT", pos)
    return value, size


def bounded_varint(data, pos, limit, overrun_code):
    """A varint inside a region that ends at `limit` (header field, TLV, value).

    A varint whose bytes would run past `limit` is `overrun_code` at its first
    byte (MALFORMED_HEADER for a fixed field, §4 / §7.1 step 3;
    MALFORMED_EXTENSION inside the extension region, §5). The fit is checked
    first (its length is known from the first byte), then the canonical form.
    """
    if pos >= limit:
        raise WireError(overrun_code, pos)
    size = varint_length_from_first_byte(data[pos])
    if pos + size > limit:
        raise WireError(overrun_code, pos)
    return varint_decode(data, pos, limit)


# ---------------------------------------------------------------------------
# §6 CRC32C (Castagnoli), two independent implementations.

CRC32C_POLY = 0x1EDC6F41           # normal (MSB-first) form
CRC32C_POLY_REFLECTED = 0x82F63B78  # reflected (LSB-first) form


def crc32c_bitwise(data):
    """Reflected, bit at a time: init 0xFFFFFFFF, final xor 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (CRC32C_POLY_REFLECTED if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _reflect(value, bits):
    out = 0
    for _ in range(bits):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


def _make_msb_table():
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ CRC32C_POLY) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
        table.append(crc)
    return table


_MSB_TABLE = _make_msb_table()


def crc32c_table(data):
    """Second implementation: MSB-first table from the *normal* polynomial
    0x1EDC6F41, with explicit input/output reflection. Shares no constant with
    crc32c_bitwise, so agreement also checks that 0x82F63B78 is the reflection
    of 0x1EDC6F41."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _MSB_TABLE[((crc >> 24) ^ _reflect(byte, 8)) & 0xFF]
    return _reflect(crc, 32) ^ 0xFFFFFFFF


def crc32c(data):
    a = crc32c_bitwise(data)
    b = crc32c_table(data)
    if a != b:
        raise AssertionError("CRC32C implementations disagree: %08X %08X" % (a, b))
    return a


def xxh3_64(data):
    """§6: XXH3-64, seed 0 (xxHash 0.8 XXH3_64bits)."""
    return xxhash.xxh3_64_intdigest(bytes(data), seed=0)


# ---------------------------------------------------------------------------
# §3, §4, §5 constants.

PREFACE = bytes([0x89, 0x53, 0x59, 0x4D, 0x57, 0x0D, 0x0A, 0x01])
PREFACE_MAGIC_SIZE = 7
WIRE_VERSION = 1

TYPE_NAMES = ["AGENT_INIT", "AGENT_TASK", "AGENT_RESPONSE", "AGENT_ERROR",
              "AGENT_CANCEL", "AGENT_SYNC"]
AGENT_RESPONSE = 2
# §4.1 stream-id rule: "zero", "nonzero" or "any".
STREAM_RULE = ["zero", "nonzero", "nonzero", "any", "nonzero", "zero"]

FLAG_CHECKSUM = 0x01
FLAG_FINAL = 0x02
FLAGS_RESERVED = 0xFC

# §4: header_length counts the header bytes that FOLLOW its own varint
# (type .. CRC), 9..16383, so it is a 1- or 2-byte varint; the whole header
# is the varint's size plus header_length, 10..16385 bytes.
MIN_HEADER_LENGTH = 9
MAX_HEADER_LENGTH = 16383
MIN_HEADER_SIZE = 10
MAX_HEADER_SIZE_LIMIT = 16385   # §8 range of max header bytes: 10..16385
CRC_SIZE = 4
CHECKSUM_SIZE = 8

EXT_DEADLINE = 1
EXT_TRACEPARENT = 2
EXT_TRACESTATE = 4
EXT_METADATA = 6
KNOWN_EXTS = (EXT_DEADLINE, EXT_TRACEPARENT, EXT_TRACESTATE, EXT_METADATA)
SINGLETON_EXTS = (EXT_DEADLINE, EXT_TRACEPARENT, EXT_TRACESTATE)
TRACEPARENT_SIZE = 26
TRACESTATE_MAX = 512


class Options:
    """§8 limits (defaults) plus whether the stream starts with a preface."""

    def __init__(self):
        self.preface = True
        self.max_header_bytes = 4096
        self.max_payload_bytes = 16777216
        self.max_extensions = 32

    @classmethod
    def from_pairs(cls, pairs):
        opts = cls()
        for key, value in pairs:
            if key == "preface":
                if value not in ("on", "off"):
                    raise ValueError("preface=on|off, got %r" % value)
                opts.preface = value == "on"
            elif key == "max_header_bytes":
                opts.max_header_bytes = int(value)
                # §8: the limit is on the whole header, length varint included.
                if not MIN_HEADER_SIZE <= opts.max_header_bytes <= MAX_HEADER_SIZE_LIMIT:
                    raise ValueError("max_header_bytes out of §8 range")
            elif key == "max_payload_bytes":
                opts.max_payload_bytes = int(value)
                if not 0 <= opts.max_payload_bytes <= (1 << 30) - 1:
                    raise ValueError("max_payload_bytes out of §8 range")
            elif key == "max_extensions":
                opts.max_extensions = int(value)
                if not 0 <= opts.max_extensions <= 16383:
                    raise ValueError("max_extensions out of §8 range")
            else:
                raise ValueError("unknown option %r" % key)
        return opts


def hexs(data):
    """Lower-case contiguous hex, '-' when empty (log value convention)."""
    return data.hex() if len(data) else "-"


# ---------------------------------------------------------------------------
# Decoder: applies the order of checks of SPEC.md §7.1.

def decode_frame(data, base, opts):
    """Decodes the frame starting at stream offset `base`.

    Returns (log_line, frame_size). Raises Incomplete or WireError.
    """
    end = len(data)

    # §7.1 step 1: header_length: canonical, >= 9, header size (the varint's
    # own bytes plus header_length, §4) <= limit (§8); each as soon as the
    # varint's own bytes are available (nothing else is waited for).
    hl, hl_size = varint_decode(data, base, end)  # NON_CANONICAL_VARINT @ base
    if hl < MIN_HEADER_LENGTH:
        raise WireError("BAD_HEADER_LENGTH", base)
    header_size = hl_size + hl
    if header_size > opts.max_header_bytes:
        raise WireError("HEADER_TOO_LARGE", base)

    # Step 2: wait for the whole header, then the CRC over every header byte
    # before it, starting with the first byte of header_length (§4, §6).
    if base + header_size > end:
        raise Incomplete()
    crc_at = base + header_size - CRC_SIZE
    stored = int.from_bytes(data[crc_at:crc_at + CRC_SIZE], "big")
    if crc32c(data[base:crc_at]) != stored:
        raise WireError("HEADER_CRC_MISMATCH", crc_at)

    # Step 3: fixed fields in wire order. header_length >= 9 counts type,
    # flags and the 4-byte CRC, so type and flags always lie before the CRC;
    # only the three varints can run into it.
    p = base + hl_size
    assert p + 2 <= crc_at
    type_at = p
    mtype = data[p]
    if mtype >= len(TYPE_NAMES):
        raise WireError("UNKNOWN_MESSAGE_TYPE", type_at)
    p += 1
    flags_at = p
    flags = data[p]
    if flags & FLAGS_RESERVED:
        raise WireError("RESERVED_FLAGS", flags_at)
    if flags & FLAG_FINAL and mtype != AGENT_RESPONSE:
        raise WireError("RESERVED_FLAGS", flags_at)
    p += 1

    stream_at = p
    stream, n = bounded_varint(data, p, crc_at, "MALFORMED_HEADER")
    p += n
    rule = STREAM_RULE[mtype]
    if (rule == "zero" and stream != 0) or (rule == "nonzero" and stream == 0):
        raise WireError("BAD_STREAM_ID", stream_at)

    seq, n = bounded_varint(data, p, crc_at, "MALFORMED_HEADER")
    p += n

    plen_at = p
    plen, n = bounded_varint(data, p, crc_at, "MALFORMED_HEADER")
    p += n
    if plen > opts.max_payload_bytes:
        raise WireError("PAYLOAD_TOO_LARGE", plen_at)

    # Step 4: extensions in wire order (§5).
    exts = []          # (type, value) in wire order, every TLV
    seen = set()
    deadline = None
    traceparent = None
    tracestate = None
    metadata = []
    while p < crc_at:
        type_pos = p
        etype, n = bounded_varint(data, p, crc_at, "MALFORMED_EXTENSION")
        if etype == 0:
            raise WireError("MALFORMED_EXTENSION", type_pos)
        p += n
        len_pos = p
        elen, n = bounded_varint(data, p, crc_at, "MALFORMED_EXTENSION")
        p += n
        if p + elen > crc_at:
            raise WireError("MALFORMED_EXTENSION", len_pos)
        if len(exts) + 1 > opts.max_extensions:
            raise WireError("TOO_MANY_EXTENSIONS", type_pos)
        if etype % 2 == 1 and etype not in KNOWN_EXTS:
            raise WireError("UNKNOWN_CRITICAL_EXTENSION", type_pos)
        if etype in SINGLETON_EXTS and etype in seen:
            raise WireError("DUPLICATE_EXTENSION", type_pos)
        seen.add(etype)
        value_at = p
        value = bytes(data[p:p + elen])
        value_end = p + elen

        if etype == EXT_DEADLINE:
            # One canonical varint filling the value exactly.
            deadline, n = bounded_varint(data, value_at, value_end, "MALFORMED_EXTENSION")
            if n != elen:
                raise WireError("MALFORMED_EXTENSION", value_at)
        elif etype == EXT_TRACEPARENT:
            if (elen != TRACEPARENT_SIZE or value[0] == 0xFF
                    or not any(value[1:17]) or not any(value[17:25])):
                raise WireError("MALFORMED_EXTENSION", value_at)
            traceparent = value
        elif etype == EXT_TRACESTATE:
            if not 1 <= elen <= TRACESTATE_MAX or any(b < 0x20 or b > 0x7E for b in value):
                raise WireError("MALFORMED_EXTENSION", value_at)
            tracestate = value
        elif etype == EXT_METADATA:
            klen, n = bounded_varint(data, value_at, value_end, "MALFORMED_EXTENSION")
            if klen < 1 or value_at + n + klen > value_end:
                raise WireError("MALFORMED_EXTENSION", value_at)
            key = value[n:n + klen]
            metadata.append((key, value[n + klen:]))
        exts.append((etype, value))
        p = value_end

    # Step 5: the payload and its optional checksum.
    pl_at = base + header_size
    size = header_size + plen + (CHECKSUM_SIZE if flags & FLAG_CHECKSUM else 0)
    if base + size > end:
        raise Incomplete()
    payload = bytes(data[pl_at:pl_at + plen])
    if flags & FLAG_CHECKSUM:
        ck_at = pl_at + plen
        stored = int.from_bytes(data[ck_at:ck_at + CHECKSUM_SIZE], "big")
        if xxh3_64(payload) != stored:
            raise WireError("PAYLOAD_CHECKSUM_MISMATCH", ck_at)

    tokens = ["frame", "offset=%d" % base, "size=%d" % size,
              "type=%s" % TYPE_NAMES[mtype], "flags=0x%02X" % flags,
              "stream=%d" % stream, "seq=%d" % seq, "payload=%s" % hexs(payload)]
    if deadline is not None:
        tokens.append("deadline_us=%d" % deadline)
    if traceparent is not None:
        tokens.append("traceparent=%s" % traceparent.hex())
    if tracestate is not None:
        tokens.append("tracestate=%s" % tracestate.hex())
    for key, val in metadata:
        tokens.append("metadata=%s:%s" % (key.hex(), hexs(val)))
    for etype, val in exts:
        tokens.append("ext=%d:%s" % (etype, hexs(val)))
    return " ".join(tokens), size


def decode_stream(data, opts):
    """The log of a byte stream as a receiver sees it (see tests/vectors/)."""
    data = bytes(data)
    log = []
    pos = 0
    if opts.preface:
        # §3: compare each magic byte as it arrives; fail at the first
        # difference, then the version byte.
        for i in range(PREFACE_MAGIC_SIZE):
            if i >= len(data):
                return log + ["incomplete"]
            if data[i] != PREFACE[i]:
                return log + ["error code=BAD_PREFACE offset=%d" % i]
        if len(data) < len(PREFACE):
            return log + ["incomplete"]
        if data[7] != WIRE_VERSION:
            return log + ["error code=UNSUPPORTED_VERSION offset=7"]
        log.append("preface version=%d" % data[7])
        pos = len(PREFACE)
    while pos < len(data):
        try:
            line, size = decode_frame(data, pos, opts)
        except Incomplete:
            return log + ["incomplete"]
        except WireError as err:
            return log + [err.log_line()]
        log.append(line)
        pos += size
    return log


def decode_single_varint(data):
    """varint.md semantics: the input is exactly one varint."""
    try:
        value, size = varint_decode(data, 0, len(data))
    except Incomplete:
        return ["incomplete"]
    except WireError as err:
        return [err.log_line()]
    if size != len(data):
        raise ValueError("varint vector has %d trailing bytes" % (len(data) - size))
    return ["value=%d size=%d" % (value, size)]


# ---------------------------------------------------------------------------
# Encoder (for writing vectors). Returns (bytes, comment) segments so that a
# hex block can carry one comment per field.

def _ext_comment(etype):
    names = {1: "DEADLINE", 2: "TRACEPARENT", 4: "TRACESTATE", 6: "METADATA"}
    if etype in names:
        return names[etype]
    if etype == 0:
        return "forbidden type 0"
    return "unknown %s type %d" % ("critical" if etype % 2 else "even", etype)


def _value_comment(etype, value):
    """A readable description of a TLV value for hex-block comments."""
    try:
        if etype == EXT_DEADLINE:
            v, n = varint_decode(value, 0, len(value))
            return "value: %d us%s" % (v, "" if n == len(value) else " + trailing bytes")
        if etype == EXT_TRACEPARENT and len(value) == TRACEPARENT_SIZE:
            return "value: version %02x, trace_id, parent_id, flags %02x" % (value[0], value[25])
        if etype == EXT_TRACESTATE and all(0x20 <= b <= 0x7E for b in value):
            return 'value: "%s"' % value.decode("ascii")
        if etype == EXT_METADATA:
            klen, n = varint_decode(value, 0, len(value))
            key, val = value[n:n + klen], value[n + klen:]
            if n + klen <= len(value):
                def show(b):
                    printable = b and all(0x20 <= c <= 0x7E for c in b) and len(b) <= 16
                    return '"%s"' % b.decode("ascii") if printable else "%d bytes" % len(b)
                return "value: key_length %d, key %s, value %s" % (klen, show(key), show(val))
    except (Incomplete, WireError):
        pass
    return "value"


class Ext:
    """One TLV. `type_size`/`len_size` force longer varints; `length`
    overrides the length field; `raw` replaces the whole TLV."""

    def __init__(self, etype, value=b"", type_size=None, len_size=None, length=None,
                 comment=None, value_comment=None):
        self.etype = etype
        self.value = bytes(value)
        self.type_size = type_size
        self.len_size = len_size
        self.length = length
        self.comment = comment
        self.value_comment = value_comment

    def segments(self):
        name = self.comment or _ext_comment(self.etype)
        length = len(self.value) if self.length is None else self.length
        segs = [(varint_encode(self.etype, self.type_size), "ext type %d (%s)" % (self.etype, name)),
                (varint_encode(length, self.len_size), "ext length %d" % length)]
        if self.value:
            segs.append((self.value, self.value_comment or _value_comment(self.etype, self.value)))
        return segs


def deadline_ext(us, size=None):
    return Ext(EXT_DEADLINE, varint_encode(us, size))


def metadata_ext(key, value, key_len=None, key_len_size=None):
    key = bytes(key)
    klen = len(key) if key_len is None else key_len
    return Ext(EXT_METADATA, varint_encode(klen, key_len_size) + key + bytes(value))


def build_frame(mtype, flags=0, stream=0, seq=0, payload=b"", exts=(), *,
                hl=None, hl_size=None, stream_size=None, seq_size=None, plen=None,
                plen_size=None, crc=None, checksum=None, fields=None,
                truncate_after_header=False):
    """Builds one frame as (bytes, comment) segments.

    `fields` (a list of (bytes, comment)) replaces type..payload_length for
    hand-made bad headers. `hl` forces the header_length value (the CRC is
    still computed over the bytes actually written before it); by default it
    is the number of header bytes after the header_length varint, CRC
    included (§4), and `hl_size` can force a longer (non-canonical) varint.
    """
    payload = bytes(payload)
    if fields is None:
        plen_val = len(payload) if plen is None else plen
        tname = TYPE_NAMES[mtype] if 0 <= mtype < len(TYPE_NAMES) else "unknown"
        fields = [(bytes([mtype]), "type %d %s" % (mtype, tname)),
                  (bytes([flags]), "flags 0x%02X" % flags),
                  (varint_encode(stream, stream_size), "stream_id %d" % stream),
                  (varint_encode(seq, seq_size), "sequence %d" % seq),
                  (varint_encode(plen_val, plen_size), "payload_length %d" % plen_val)]
    body = list(fields)
    for ext in exts:
        body.extend(ext.segments())
    rest = sum(len(b) for b, _ in body)
    if hl is None:
        hl = rest + CRC_SIZE  # §4: does not count its own bytes
        if hl > MAX_HEADER_LENGTH:
            raise ValueError("HEADER_TOO_LARGE: header_length %d > %d" % (hl, MAX_HEADER_LENGTH))
    hl_bytes = varint_encode(hl, hl_size)
    head = [(hl_bytes, "header_length %d" % hl)] + body
    raw = b"".join(b for b, _ in head)
    real_crc = crc32c(raw)
    if crc is None:
        head.append((real_crc.to_bytes(4, "big"), "header_crc 0x%08X" % real_crc))
    else:
        head.append((crc.to_bytes(4, "big"),
                     "header_crc 0x%08X (correct: 0x%08X)" % (crc, real_crc)))
    if truncate_after_header:
        return head
    if payload:
        head.append((payload, "payload (%d bytes)" % len(payload)))
    if flags & FLAG_CHECKSUM:
        real = xxh3_64(payload)
        if checksum is None:
            head.append((real.to_bytes(8, "big"), "XXH3-64 0x%016X" % real))
        else:
            head.append((checksum.to_bytes(8, "big"),
                         "XXH3-64 0x%016X (correct: 0x%016X)" % (checksum, real)))
    return head


def format_hex_block(segments, width=16):
    """Renders segments as hex lines with aligned '#' comments."""
    lines = []
    for data, comment in segments:
        data = bytes(data)
        chunks = [data[i:i + width] for i in range(0, len(data), width)] or [b""]
        for i, chunk in enumerate(chunks):
            text = " ".join("%02x" % b for b in chunk)
            if i == 0 and comment:
                lines.append((text, comment))
            else:
                lines.append((text, None))
    col = min(max((len(t) for t, c in lines if c), default=0), 3 * width - 1) + 2
    out = []
    for text, comment in lines:
        if comment:
            out.append(text.ljust(col) + "# " + comment)
        else:
            out.append(text)
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Vector files (llhttp-style Markdown). Same grammar as tests/support/vectors.hpp.

class Vector:
    def __init__(self, path, name, line):
        self.path = path
        self.name = name
        self.line = line
        self.hex_text = None
        self.input = None
        self.options = None
        self.log = None


def parse_hex(text):
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


def expected_log(path, vec):
    base = os.path.basename(path)
    if base == "crc32c.md":
        return ["crc=0x%08X" % crc32c(vec.input)]
    if base == "varint.md":
        return decode_single_varint(vec.input)
    return decode_stream(vec.input, Options.from_pairs(vec.options or []))


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


def check_files(paths):
    failures = 0
    total = 0
    for path in paths:
        vectors = load_vectors(path)
        bad = 0
        for vec in vectors:
            try:
                got = expected_log(path, vec)
            except Exception as err:  # noqa: BLE001 - report and continue
                got = ["<exception: %s>" % err]
            problem = None
            if got != vec.log:
                problem = "log differs:\n  expected (file): %s\n  reference:       %s" % (
                    "\n                   ".join(vec.log), "\n                   ".join(got))
            elif os.path.basename(path) not in ("crc32c.md", "varint.md"):
                problem = check_prefixes(vec, got)
            if problem:
                bad += 1
                print("FAIL %s:%d %s: %s" % (path, vec.line, vec.name, problem))
        total += len(vectors)
        failures += bad
        print("%-32s %3d vectors, %s" % (os.path.relpath(path), len(vectors),
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
    print("selftest", "passed" if ok else "FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# Command line.

def _hex_args(args):
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


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    mode, args = argv[1], argv[2:]
    if mode == "selftest":
        return selftest()
    if mode == "check":
        if not args:
            root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors")
            args = [os.path.join(root, n) for n in
                    ("crc32c.md", "varint.md", "preface.md", "frames.md", "frame_errors.md")]
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
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
