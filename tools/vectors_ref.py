#!/usr/bin/python3
"""Independent reference for the symwire wire format, written from SPEC.md.

This is a tool for humans who write and review the golden vectors in
tests/vectors/*.md. It is deliberately NOT derived from the C++ codec: every
rule below cites the SPEC.md section it implements. The C++ tests never run it.
It covers the framing layer (§2-§8) and the session layer's parameter lists
(§11: the payloads of AGENT_INIT, AGENT_SYNC, AGENT_ERROR, AGENT_CANCEL).

Dependencies: Python 3 standard library plus Debian's python3-xxhash (XXH3-64),
hence the /usr/bin/python3 shebang (a pyenv python3 on PATH will not see the
Debian module):

    apt-get install -y python3-xxhash xxhash

Modes:

    vectors_ref.py selftest
        CRC32C (bitwise and table-driven) and XXH3-64 check values, varint
        round trips, header_length edge cases (9, 63/64, limits), session
        parameter lists (SPEC.md §11).
    vectors_ref.py check [FILE.md ...]
        Re-decodes every vector of every file (default: all of tests/vectors/)
        and verifies that each hex block produces exactly its log, that the
        names are unique, and that decoding every prefix of a stream is
        consistent with decoding all of it (what a byte-by-byte test sees).
        session_payloads.md holds payloads, not streams: each is parsed by
        §11 as the message its options name, and `encoder=same` must be set
        exactly on the valid ones that are the canonical encoding.
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
# Session layer, SPEC.md §11: parameter lists (the payloads of AGENT_INIT,
# AGENT_SYNC, AGENT_ERROR and AGENT_CANCEL). Written from §11 only; offsets
# and the order of checks inside one parameter follow §7.1's TLV rules, which
# §11 rule 2 cites ("the rule of §5").

class PayloadError(Exception):
    """A §11 parse error: §18 code name, payload offset, parameter id (None
    when the param_id itself could not be read)."""

    def __init__(self, code, offset, param):
        super().__init__("%s at %d (param %s)" % (code, offset, param))
        self.code = code
        self.offset = offset
        self.param = param

    def log_line(self):
        return "error code=%s offset=%d param=%s" % (
            self.code, self.offset, "-" if self.param is None else self.param)


MALFORMED_PAYLOAD = "MALFORMED_PAYLOAD"            # §18 code 100: rules 1, 3, 4
UNKNOWN_CRITICAL_PARAM = "UNKNOWN_CRITICAL_PARAM"  # 101: rule 2
MISSING_PARAM = "MISSING_PARAM"                    # 102: rule 5

PAYLOAD_MESSAGES = ("AGENT_INIT", "AGENT_SYNC", "AGENT_ERROR", "AGENT_CANCEL")
INIT_PHASES = ("HELLO", "CHALLENGE", "PROOF", "WELCOME")
HELLO, CHALLENGE, PROOF, WELCOME = range(4)
ALL_PHASES = frozenset(range(4))


class ParamSpec:
    """One row of §11.1/§11.2. kind: "varint" (one canonical varint filling
    the value), "bytes" (length lo..hi), "flag" (length 0). For varints
    lo..hi is the value range, or `choices` the allowed values. `phases`: the
    INIT phases it is defined in; `required`: those where it is required."""

    def __init__(self, pid, name, kind, lo=0, hi=VARINT_MAX, choices=None,
                 phases=ALL_PHASES, required=frozenset()):
        self.pid = pid
        self.name = name
        self.kind = kind
        self.lo = lo
        self.hi = hi
        self.choices = choices
        self.phases = frozenset(phases)
        self.required = frozenset(required)


def _init_params():
    H, C, P, W = HELLO, CHALLENGE, PROOF, WELCOME
    HW = (H, W)
    rows = [
        # id name               type     range            in (defined)   required in
        (1, "phase", "varint", dict(lo=0, hi=3), ALL_PHASES, ALL_PHASES),
        (2, "min_version", "varint", dict(lo=1), (H,), (H,)),
        # "≥ min_version" is checked after the list (§11.1 last paragraph).
        (3, "max_version", "varint", {}, (H,), (H,)),
        (4, "version", "varint", {}, (W,), (W,)),
        (5, "agent_id", "bytes", dict(lo=1, hi=255), HW, HW),
        (6, "role", "varint", dict(lo=0, hi=2), HW, HW),
        (7, "capabilities", "varint", {}, HW, ()),
        (8, "max_payload_bytes", "varint", dict(hi=(1 << 30) - 1), HW, HW),
        (9, "max_header_bytes", "varint", dict(lo=10, hi=16385), HW, HW),
        (10, "max_tasks", "varint", dict(lo=1, hi=(1 << 32) - 1), HW, HW),
        (11, "replay_bytes", "varint", dict(lo=1), HW, HW),
        (12, "replay_frames", "varint", dict(lo=1), HW, HW),
        (13, "ping_interval_us", "varint", dict(lo=1), HW, HW),
        (14, "min_ping_interval_us", "varint", {}, HW, HW),
        (15, "auth_method", "varint", {}, (H,), (H,)),
        (16, "auth_data", "bytes", dict(lo=0, hi=1024), ALL_PHASES, ()),
        (17, "nonce", "bytes", dict(lo=32, hi=32), (H, C, W), (H, C, W)),
        # HELLO (resume): optional, all three or none (see parse_payload);
        # WELCOME: required.
        (18, "session_id", "bytes", dict(lo=16, hi=16), HW, (W,)),
        (19, "resume_token", "bytes", dict(lo=16, hi=16), HW, (W,)),
        (20, "last_received", "varint", {}, HW, (W,)),
        (21, "resumed", "flag", {}, (W,), ()),
        (22, "resume_window_us", "varint", {}, (W,), (W,)),
    ]
    return {pid: ParamSpec(pid, name, kind, phases=phases, required=req, **rng)
            for pid, name, kind, rng, phases, req in rows}


PAYLOAD_PARAMS = {
    "AGENT_INIT": _init_params(),
    # §11.2. Non-INIT messages have no phases: ALL_PHASES stands for "defined".
    "AGENT_SYNC": {
        1: ParamSpec(1, "ack", "varint"),
        2: ParamSpec(2, "ping", "varint"),
        3: ParamSpec(3, "pong", "varint"),
        4: ParamSpec(4, "drain", "varint"),
        5: ParamSpec(5, "bye", "flag"),
    },
    "AGENT_ERROR": {
        1: ParamSpec(1, "code", "varint", lo=1, hi=16, required=ALL_PHASES),
        2: ParamSpec(2, "message", "bytes", lo=0, hi=4096),
        3: ParamSpec(3, "retryable", "flag"),
        4: ParamSpec(4, "detail", "varint", lo=0, hi=65535),
    },
    "AGENT_CANCEL": {
        1: ParamSpec(1, "reason", "varint", choices=(1, 4)),
    },
}
RESUME_PARAMS = (18, 19, 20)  # §11.1: a HELLO resumes iff it has session_id
# Byte strings whose empty value means the same as absence: auth_data (§12.3
# "no auth_data") and the ERROR message.
EMPTY_IS_ABSENT = (("AGENT_INIT", 16), ("AGENT_ERROR", 2))


def param_name(message, pid):
    spec = PAYLOAD_PARAMS[message].get(pid)
    return spec.name if spec else "unknown"


def param_id(message, name):
    for pid, spec in PAYLOAD_PARAMS[message].items():
        if spec.name == name:
            return pid
    raise KeyError("%s has no parameter %r" % (message, name))


def _payload_varint(data, pos, end, param):
    """A param_id or param_length: all its bytes before `end`, then canonical
    (§11 rule 1, checked in that order like every varint of §7.1)."""
    if pos >= end or pos + varint_length_from_first_byte(data[pos]) > end:
        raise PayloadError(MALFORMED_PAYLOAD, pos, param)
    try:
        return varint_decode(data, pos, end)
    except WireError:
        raise PayloadError(MALFORMED_PAYLOAD, pos, param) from None


def _param_value(spec, data, at, length):
    """Rule 4 (and rule 1 for a varint inside a value): the value's type and
    range. Every failure is MALFORMED_PAYLOAD at the value's first byte."""
    bad = PayloadError(MALFORMED_PAYLOAD, at, spec.pid)
    if spec.kind == "flag":
        if length != 0:
            raise bad
        return True
    if spec.kind == "bytes":
        if not spec.lo <= length <= spec.hi:
            raise bad
        return bytes(data[at:at + length])
    # varint: exactly one canonical varint filling the value.
    if length == 0 or varint_length_from_first_byte(data[at]) != length:
        raise bad
    try:
        value, _ = varint_decode(data, at, at + length)
    except WireError:
        raise bad from None
    if spec.choices is not None:
        if value not in spec.choices:
            raise bad
    elif not spec.lo <= value <= spec.hi:
        raise bad
    return value


def parse_payload(message, data):
    """Parses one parameter list by SPEC.md §11. Returns {param_id: value}
    (int, bytes or True) of the defined parameters present. Raises
    PayloadError for the first failure in wire order."""
    table = PAYLOAD_PARAMS[message]
    init = message == "AGENT_INIT"
    data = bytes(data)
    end = len(data)
    pos = 0
    values = {}
    value_at = {}
    phase = None if init else 0  # non-INIT: every row is defined in "0"
    while pos < end:
        id_at = pos
        pid, n = _payload_varint(data, pos, end, None)
        pos += n
        len_at = pos
        length, n = _payload_varint(data, pos, end, pid)
        pos += n
        if length > end - pos:  # the value runs past the end of the payload
            raise PayloadError(MALFORMED_PAYLOAD, len_at, pid)
        at = pos
        pos += length
        if init and phase is None and pid != 1:
            # §11: the first INIT parameter MUST be phase.
            raise PayloadError(MISSING_PARAM, id_at, 1)
        spec = table.get(pid)
        if spec is None or (phase is not None and phase not in spec.phases):
            if pid % 2 == 0:       # rule 2: even undefined: skipped
                continue
            raise PayloadError(UNKNOWN_CRITICAL_PARAM, id_at, pid)
        if pid in values:          # rule 3
            raise PayloadError(MALFORMED_PAYLOAD, id_at, pid)
        values[pid] = _param_value(spec, data, at, length)  # rule 4
        value_at[pid] = at
        if init and pid == 1:
            phase = values[pid]
    if init and phase is None:     # an empty INIT has no phase either
        raise PayloadError(MISSING_PARAM, 0, 1)
    # Rule 5, after the whole list: the lowest missing required id, at the
    # end of the payload.
    required = {pid for pid, spec in table.items() if phase in spec.required}
    if init and phase == HELLO and any(p in values for p in RESUME_PARAMS):
        required.update(RESUME_PARAMS)
    for pid in sorted(required):
        if pid not in values:
            raise PayloadError(MISSING_PARAM, end, pid)
    if init and phase == HELLO and values[3] < values[2]:
        raise PayloadError(MALFORMED_PAYLOAD, value_at[3], 3)
    return values


def _log_value(spec, value):
    if spec.kind == "flag":
        return "1" if value else "0"
    if spec.kind == "bytes":
        return hexs(value)
    return "%d" % value


def payload_fields(message, values):
    """The message model of a parsed list: [(name, log value)] for every
    parameter the message (INIT: the phase) defines, in id order, absent ones
    at their §11 default: capabilities 0, auth_data and message empty ('-'),
    flags 0, detail 0, CANCEL reason 1; other absent optional varints and
    byte strings '-'."""
    table = PAYLOAD_PARAMS[message]
    phase = values.get(1, 0) if message == "AGENT_INIT" else 0
    defaults = {("AGENT_INIT", 7): 0, ("AGENT_ERROR", 4): 0, ("AGENT_CANCEL", 1): 1}
    out = []
    for pid in sorted(table):
        spec = table[pid]
        if phase not in spec.phases:
            continue
        if pid in values:
            text = _log_value(spec, values[pid])
        elif spec.kind == "flag":
            text = "0"
        elif (message, pid) in defaults:
            text = "%d" % defaults[(message, pid)]
        else:
            text = "-"
        out.append((spec.name, text))
    return out


def payload_log(message, data):
    """The log of a session_payloads.md vector: one `name=value` line per
    field of the message model, or one `error ...` line."""
    try:
        values = parse_payload(message, data)
    except PayloadError as err:
        return [err.log_line()]
    return ["%s=%s" % (name, text) for name, text in payload_fields(message, values)]


def encode_payload(message, values):
    """The canonical encoding of a message model {param_id: value}: ascending
    id order (§11: "Senders write parameters in ascending param_id order"),
    only parameters defined for the message (INIT: the phase), and without
    the ones equal to their absent meaning: capabilities 0, empty auth_data
    and message, false flags, detail 0, CANCEL reason 1. Values are not
    validated (this writes test vectors, valid or not)."""
    table = PAYLOAD_PARAMS[message]
    phase = values.get(1, 0) if message == "AGENT_INIT" else 0
    omit = {("AGENT_INIT", 7): 0, ("AGENT_ERROR", 4): 0, ("AGENT_CANCEL", 1): 1}
    out = bytearray()
    for pid in sorted(values):
        spec = table[pid]
        value = values[pid]
        if phase not in spec.phases:
            continue
        if spec.kind == "flag":
            if value:
                out += varint_encode(pid) + varint_encode(0)
            continue
        if spec.kind == "bytes":
            if not value and (message, pid) in EMPTY_IS_ABSENT:
                continue
            out += varint_encode(pid) + varint_encode(len(value)) + bytes(value)
            continue
        if (message, pid) in omit and value == omit[(message, pid)]:
            continue
        enc = varint_encode(value)
        out += varint_encode(pid) + varint_encode(len(enc)) + enc
    return bytes(out)


class Param:
    """One parameter as a (bytes, comment) segment, for writing vectors: its
    param_id, param_length and value on one commented line. The value is raw
    bytes; `id_size`/`len_size` force longer (non-canonical) varints,
    `length` overrides param_length."""

    def __init__(self, pid, value=b"", id_size=None, len_size=None, length=None,
                 name=None, value_comment=None):
        self.pid = pid
        self.value = bytes(value)
        self.id_size = id_size
        self.len_size = len_size
        self.length = length
        self.name = name
        self.value_comment = value_comment

    def segments(self, message):
        name = self.name or param_name(message, self.pid)
        length = len(self.value) if self.length is None else self.length
        id_bytes = varint_encode(self.pid, self.id_size)
        len_bytes = varint_encode(length, self.len_size)
        comment = "param %d %s" % (self.pid, name)
        if self.id_size:
            comment += " (id as %d-byte varint)" % self.id_size
        comment += ", length %d" % length
        if self.len_size:
            comment += " (as %d-byte varint)" % self.len_size
        if self.value or self.value_comment:
            comment += ": " + (self.value_comment or "value")
        return [(id_bytes + len_bytes + self.value, comment)]


def vparam(message, name_or_id, value, size=None, **kw):
    """A varint-valued parameter; `size` forces a longer varint."""
    pid = name_or_id if isinstance(name_or_id, int) else param_id(message, name_or_id)
    kw.setdefault("value_comment", "%d" % value if size is None else
                  "%d as a %d-byte varint" % (value, size))
    return Param(pid, varint_encode(value, size), **kw)


def bparam(message, name_or_id, value, **kw):
    pid = name_or_id if isinstance(name_or_id, int) else param_id(message, name_or_id)
    value = bytes(value)
    if "value_comment" not in kw:
        printable = value and all(0x20 <= b <= 0x7E for b in value) and len(value) <= 40
        kw["value_comment"] = ('"%s"' % value.decode("ascii") if printable
                               else "%d bytes" % len(value))
    return Param(pid, value, **kw)


def payload_segments(message, params):
    segs = []
    for p in params:
        segs.extend(p.segments(message) if isinstance(p, Param) else [p])
    return segs


def canonical_params(message, values):
    """Param objects in the order and form encode_payload writes them."""
    data = encode_payload(message, values)
    params = []
    pos = 0
    while pos < len(data):
        pid, n = varint_decode(data, pos, len(data))
        pos += n
        length, n = varint_decode(data, pos, len(data))
        pos += n
        value = data[pos:pos + length]
        pos += length
        spec = PAYLOAD_PARAMS[message][pid]
        if spec.kind == "varint":
            comment = "%d" % varint_decode(value, 0, len(value))[0]
            if message == "AGENT_INIT" and pid == 1:
                comment += " (%s)" % INIT_PHASES[values[1]]
        elif spec.kind == "flag":
            comment = None
        else:
            printable = all(0x20 <= b <= 0x7E for b in value) and len(value) <= 40
            comment = ('"%s"' % value.decode("ascii") if printable
                       else "%d bytes" % len(value))
        params.append(Param(pid, value, value_comment=comment))
    return params


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


SESSION_PAYLOADS_FILE = "session_payloads.md"


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


def expected_log(path, vec):
    base = os.path.basename(path)
    if base == "crc32c.md":
        return ["crc=0x%08X" % crc32c(vec.input)]
    if base == "varint.md":
        return decode_single_varint(vec.input)
    if base == SESSION_PAYLOADS_FILE:
        return payload_log(payload_options(vec)[0], vec.input)
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
            elif os.path.basename(path) == SESSION_PAYLOADS_FILE:
                problem = check_payload_encoding(vec)
            elif os.path.basename(path) not in ("crc32c.md", "varint.md"):
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
    cancel = encode_payload("AGENT_CANCEL", {1: 4})
    expect("CANCEL reason 4", cancel.hex(), "010104")
    expect("CANCEL reason 1 omitted", encode_payload("AGENT_CANCEL", {1: 1}).hex(), "")
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
            root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors")
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
