"""symwire layer 1 in Python: varints, CRC32C, XXH3-64, frames (SPEC.md §2-§8),
the session payloads (§11: AGENT_INIT, AGENT_SYNC, AGENT_ERROR, AGENT_CANCEL),
the error tables (§18), and the handshake's HMAC / resume proofs (§12.3, §16.2).

Written from SPEC.md, independently of the C++ codec; every rule cites the
section it implements. Dependencies: the standard library and Debian's
python3-xxhash (XXH3-64).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sys
from typing import Any, Iterable, TypedDict, Union

try:
    import xxhash  # Debian: python3-xxhash
except ImportError:  # pragma: no cover
    sys.stderr.write("symwire needs XXH3: apt-get install -y python3-xxhash "
                     "and run it with /usr/bin/python3\n")
    raise

# ---------------------------------------------------------------------------
# §2 Varints (QUIC, RFC 9000 §16), canonical form required.

# What the decoders read from: any buffer whose items are ints.
Buffer = Union[bytes, bytearray, memoryview]
# One commented piece of a hex block: (bytes, comment or None).
Segment = tuple[bytes, Union[str, None]]

VARINT_MAX: int = (1 << 62) - 1
_PREFIX_FOR_SIZE: dict[int, int] = {1: 0b00, 2: 0b01, 4: 0b10, 8: 0b11}
# The smallest value that needs each length: anything below it is non-canonical.
_MIN_FOR_SIZE: dict[int, int] = {1: 0, 2: 1 << 6, 4: 1 << 14, 8: 1 << 30}


class Incomplete(Exception):
    """The stream ended before the bytes a check needs."""


class WireError(Exception):
    """A decoding error: SPEC.md §7 name and stream offset (§7.1)."""

    def __init__(self, code: str, offset: int) -> None:
        super().__init__("%s at %d" % (code, offset))
        self.code = code
        self.offset = offset

    def log_line(self) -> str:
        return "error code=%s offset=%d" % (self.code, self.offset)


def varint_size(value: int) -> int:
    """Shortest varint length for `value` (§2)."""
    if value < 0 or value > VARINT_MAX:
        raise ValueError("VARINT_OUT_OF_RANGE: %d" % value)
    for size in (1, 2, 4, 8):
        if value < (1 << (8 * size - 2)):
            return size
    raise AssertionError("unreachable")


def varint_encode(value: int, size: int | None = None) -> bytes:
    """Encodes `value`; `size` forces a (possibly non-canonical) length."""
    if size is None:
        size = varint_size(value)
    if size not in _PREFIX_FOR_SIZE:
        raise ValueError("varint size must be 1, 2, 4 or 8")
    if value < 0 or value >= (1 << (8 * size - 2)):
        raise ValueError("%d does not fit in a %d-byte varint" % (value, size))
    word = (_PREFIX_FOR_SIZE[size] << (8 * size - 2)) | value
    return word.to_bytes(size, "big")


def varint_length_from_first_byte(first: int) -> int:
    """§2: the two most significant bits give the total length."""
    return 1 << (first >> 6)


def varint_decode(data: Buffer, pos: int, end: int) -> tuple[int, int]:
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


def bounded_varint(data: Buffer, pos: int, limit: int,
                   overrun_code: str) -> tuple[int, int]:
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

CRC32C_POLY: int = 0x1EDC6F41           # normal (MSB-first) form
CRC32C_POLY_REFLECTED: int = 0x82F63B78  # reflected (LSB-first) form


def crc32c_bitwise(data: Iterable[int]) -> int:
    """Reflected, bit at a time: init 0xFFFFFFFF, final xor 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (CRC32C_POLY_REFLECTED if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _reflect(value: int, bits: int) -> int:
    out = 0
    for _ in range(bits):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


def _make_msb_table() -> list[int]:
    table: list[int] = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ CRC32C_POLY) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
        table.append(crc)
    return table


_MSB_TABLE: list[int] = _make_msb_table()
_REFLECT8: list[int] = [_reflect(i, 8) for i in range(256)]   # _reflect(byte, 8), memoized


def crc32c_table(data: Iterable[int]) -> int:
    """Second implementation: MSB-first table from the *normal* polynomial
    0x1EDC6F41, with explicit input/output reflection. Shares no constant with
    crc32c_bitwise, so agreement also checks that 0x82F63B78 is the reflection
    of 0x1EDC6F41."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _MSB_TABLE[((crc >> 24) ^ _REFLECT8[byte]) & 0xFF]
    return _reflect(crc, 32) ^ 0xFFFFFFFF


def crc32c(data: Buffer) -> int:
    a = crc32c_bitwise(data)
    b = crc32c_table(data)
    if a != b:
        raise AssertionError("CRC32C implementations disagree: %08X %08X" % (a, b))
    return a


def xxh3_64(data: Buffer) -> int:
    """§6: XXH3-64, seed 0 (xxHash 0.8 XXH3_64bits)."""
    digest: int = xxhash.xxh3_64_intdigest(bytes(data), seed=0)
    return digest


# ---------------------------------------------------------------------------
# §3, §4, §5 constants.

PREFACE: bytes = bytes([0x89, 0x53, 0x59, 0x4D, 0x57, 0x0D, 0x0A, 0x01])
PREFACE_MAGIC_SIZE: int = 7
WIRE_VERSION: int = 1

TYPE_NAMES: list[str] = ["AGENT_INIT", "AGENT_TASK", "AGENT_RESPONSE", "AGENT_ERROR",
              "AGENT_CANCEL", "AGENT_SYNC"]
AGENT_RESPONSE: int = 2
# §4.1 stream-id rule: "zero", "nonzero" or "any".
STREAM_RULE: list[str] = ["zero", "nonzero", "nonzero", "any", "nonzero", "zero"]

FLAG_CHECKSUM: int = 0x01
FLAG_FINAL: int = 0x02
FLAGS_RESERVED: int = 0xFC

# §4: header_length counts the header bytes that FOLLOW its own varint
# (type .. CRC), 9..16383, so it is a 1- or 2-byte varint; the whole header
# is the varint's size plus header_length, 10..16385 bytes.
MIN_HEADER_LENGTH: int = 9
MAX_HEADER_LENGTH: int = 16383
MIN_HEADER_SIZE: int = 10
MAX_HEADER_SIZE_LIMIT: int = 16385   # §8 range of max header bytes: 10..16385
CRC_SIZE: int = 4
CHECKSUM_SIZE: int = 8

EXT_DEADLINE: int = 1
EXT_TRACEPARENT: int = 2
EXT_TRACESTATE: int = 4
EXT_METADATA: int = 6
EXT_METHOD: int = 9      # §5.1: critical (odd), 1..255 bytes of 0x21..0x7E
KNOWN_EXTS: tuple[int, ...] = (EXT_DEADLINE, EXT_TRACEPARENT, EXT_TRACESTATE, EXT_METADATA,
                               EXT_METHOD)
SINGLETON_EXTS: tuple[int, ...] = (EXT_DEADLINE, EXT_TRACEPARENT, EXT_TRACESTATE, EXT_METHOD)
METHOD_MAX: int = 255
TRACEPARENT_SIZE: int = 26
TRACESTATE_MAX: int = 512


class Options:
    """§8 limits (defaults) plus whether the stream starts with a preface."""

    def __init__(self) -> None:
        self.preface = True
        self.max_header_bytes = 4096
        self.max_payload_bytes = 16777216
        self.max_extensions = 32

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Options:
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


def hexs(data: Buffer) -> str:
    """Lower-case contiguous hex, '-' when empty (log value convention)."""
    return data.hex() if len(data) else "-"


# ---------------------------------------------------------------------------
# Decoder: applies the order of checks of SPEC.md §7.1.

def decode_frame(data: Buffer, base: int, opts: Options, info: dict[str, Any] | None = None,
                 log: bool = True) -> tuple[str, int]:
    """Decodes the frame starting at stream offset `base`.

    Returns (log_line, frame_size). Raises Incomplete or WireError. If `info`
    is a dict, it receives the decoded fields (type, flags, stream, seq,
    payload, deadline, method, exts) for the session model of the
    transcripts; with log=False the log line is not built (returned empty).
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
    exts: list[tuple[int, bytes]] = []   # (type, value) in wire order, every TLV
    seen: set[int] = set()
    deadline: int | None = None
    traceparent: bytes | None = None
    tracestate: bytes | None = None
    method: bytes | None = None
    metadata: list[tuple[bytes, bytes]] = []
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
            # One canonical varint filling the value exactly: first that it
            # fills the value (its length is known from its first byte; an
            # empty value has none), then that it is canonical (§5, §7.1).
            if elen == 0 or varint_length_from_first_byte(data[value_at]) != elen:
                raise WireError("MALFORMED_EXTENSION", value_at)
            deadline, _ = varint_decode(data, value_at, value_end)
        elif etype == EXT_TRACEPARENT:
            if (elen != TRACEPARENT_SIZE or value[0] == 0xFF
                    or not any(value[1:17]) or not any(value[17:25])):
                raise WireError("MALFORMED_EXTENSION", value_at)
            traceparent = value
        elif etype == EXT_TRACESTATE:
            if not 1 <= elen <= TRACESTATE_MAX or any(b < 0x20 or b > 0x7E for b in value):
                raise WireError("MALFORMED_EXTENSION", value_at)
            tracestate = value
        elif etype == EXT_METHOD:
            # §5.1: the length, then each byte; offset: the value's start.
            if not 1 <= elen <= METHOD_MAX or any(b < 0x21 or b > 0x7E for b in value):
                raise WireError("MALFORMED_EXTENSION", value_at)
            method = value
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

    if info is not None:
        info.update(type=mtype, flags=flags, stream=stream, seq=seq, payload=payload,
                    deadline=deadline, method=method, exts=exts)
    if not log:
        return "", size             # the caller reads `info` only
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
    if method is not None:
        tokens.append("method=%s" % method.hex())
    for etype, val in exts:
        tokens.append("ext=%d:%s" % (etype, hexs(val)))
    return " ".join(tokens), size


def decode_stream(data: Buffer, opts: Options) -> list[str]:
    """The log of a byte stream as a receiver sees it (see tests/vectors/)."""
    data = bytes(data)
    log: list[str] = []
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


def decode_single_varint(data: Buffer) -> list[str]:
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

def _ext_comment(etype: int) -> str:
    names = {1: "DEADLINE", 2: "TRACEPARENT", 4: "TRACESTATE", 6: "METADATA", 9: "METHOD"}
    if etype in names:
        return names[etype]
    if etype == 0:
        return "forbidden type 0"
    return "unknown %s type %d" % ("critical" if etype % 2 else "even", etype)


def _value_comment(etype: int, value: bytes) -> str:
    """A readable description of a TLV value for hex-block comments."""
    try:
        if etype == EXT_DEADLINE:
            v, n = varint_decode(value, 0, len(value))
            return "value: %d us%s" % (v, "" if n == len(value) else " + trailing bytes")
        if etype == EXT_TRACEPARENT and len(value) == TRACEPARENT_SIZE:
            return "value: version %02x, trace_id, parent_id, flags %02x" % (value[0], value[25])
        if etype == EXT_TRACESTATE and all(0x20 <= b <= 0x7E for b in value):
            return 'value: "%s"' % value.decode("ascii")
        if etype == EXT_METHOD and all(0x21 <= b <= 0x7E for b in value):
            return 'value: method "%s"' % value.decode("ascii")
        if etype == EXT_METADATA:
            klen, n = varint_decode(value, 0, len(value))
            key, val = value[n:n + klen], value[n + klen:]
            if n + klen <= len(value):
                def show(b: bytes) -> str:
                    printable = b and all(0x20 <= c <= 0x7E for c in b) and len(b) <= 16
                    return '"%s"' % b.decode("ascii") if printable else "%d bytes" % len(b)
                return "value: key_length %d, key %s, value %s" % (klen, show(key), show(val))
    except (Incomplete, WireError):
        pass
    return "value"


class Ext:
    """One TLV. `type_size`/`len_size` force longer varints; `length`
    overrides the length field; `raw` replaces the whole TLV."""

    def __init__(self, etype: int, value: Buffer = b"", type_size: int | None = None,
                 len_size: int | None = None, length: int | None = None,
                 comment: str | None = None, value_comment: str | None = None) -> None:
        self.etype = etype
        self.value = bytes(value)
        self.type_size = type_size
        self.len_size = len_size
        self.length = length
        self.comment = comment
        self.value_comment = value_comment

    def segments(self) -> list[Segment]:
        name = self.comment or _ext_comment(self.etype)
        length = len(self.value) if self.length is None else self.length
        segs: list[Segment] = [(varint_encode(self.etype, self.type_size), "ext type %d (%s)" % (self.etype, name)),
                (varint_encode(length, self.len_size), "ext length %d" % length)]
        if self.value:
            segs.append((self.value, self.value_comment or _value_comment(self.etype, self.value)))
        return segs


def deadline_ext(us: int, size: int | None = None) -> Ext:
    return Ext(EXT_DEADLINE, varint_encode(us, size))


def is_method_name(name: Buffer) -> bool:
    """§5.1: 1..255 bytes, each 0x21..0x7E."""
    return 1 <= len(name) <= METHOD_MAX and all(0x21 <= b <= 0x7E for b in name)


def method_ext(name: str | Buffer) -> Ext:
    """The METHOD extension (§5.1) for `name` (str or bytes), which must be a
    valid method name (see is_method_name)."""
    value = name.encode("ascii") if isinstance(name, str) else bytes(name)
    return Ext(EXT_METHOD, value)


def metadata_ext(key: Buffer, value: Buffer, key_len: int | None = None,
                 key_len_size: int | None = None) -> Ext:
    key = bytes(key)
    klen = len(key) if key_len is None else key_len
    return Ext(EXT_METADATA, varint_encode(klen, key_len_size) + key + bytes(value))


def build_frame(mtype: int, flags: int = 0, stream: int = 0, seq: int = 0,
                payload: Buffer = b"", exts: Iterable[Ext] = (), *,
                hl: int | None = None, hl_size: int | None = None,
                stream_size: int | None = None, seq_size: int | None = None,
                plen: int | None = None, plen_size: int | None = None,
                crc: int | None = None, checksum: int | None = None,
                fields: list[Segment] | None = None,
                truncate_after_header: bool = False) -> list[Segment]:
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


def format_hex_block(segments: Iterable[tuple[Buffer, str | None]], width: int = 16) -> str:
    """Renders segments as hex lines with aligned '#' comments."""
    lines: list[tuple[str, str | None]] = []
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
    out: list[str] = []
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

    def __init__(self, code: str, offset: int, param: int | None) -> None:
        super().__init__("%s at %d (param %s)" % (code, offset, param))
        self.code = code
        self.offset = offset
        self.param = param

    def log_line(self) -> str:
        return "error code=%s offset=%d param=%s" % (
            self.code, self.offset, "-" if self.param is None else self.param)


MALFORMED_PAYLOAD: str = "MALFORMED_PAYLOAD"            # §18 code 100: rules 1, 3, 4
UNKNOWN_CRITICAL_PARAM: str = "UNKNOWN_CRITICAL_PARAM"  # 101: rule 2
MISSING_PARAM: str = "MISSING_PARAM"                    # 102: rule 5

PAYLOAD_MESSAGES: tuple[str, ...] = ("AGENT_INIT", "AGENT_SYNC", "AGENT_ERROR", "AGENT_CANCEL")
INIT_PHASES: tuple[str, ...] = ("HELLO", "CHALLENGE", "PROOF", "WELCOME")
HELLO, CHALLENGE, PROOF, WELCOME = range(4)
ALL_PHASES: frozenset[int] = frozenset(range(4))


class ParamSpec:
    """One row of §11.1/§11.2. kind: "varint" (one canonical varint filling
    the value), "bytes" (length lo..hi), "flag" (length 0). For varints
    lo..hi is the value range, or `choices` the allowed values. `phases`: the
    INIT phases it is defined in; `required`: those where it is required."""

    def __init__(self, pid: int, name: str, kind: str, lo: int = 0, hi: int = VARINT_MAX,
                 choices: tuple[int, ...] | None = None,
                 phases: Iterable[int] = ALL_PHASES,
                 required: Iterable[int] = frozenset()) -> None:
        self.pid = pid
        self.name = name
        self.kind = kind
        self.lo = lo
        self.hi = hi
        self.choices = choices
        self.phases = frozenset(phases)
        self.required = frozenset(required)


class _Range(TypedDict, total=False):
    lo: int
    hi: int


def _init_params() -> dict[int, ParamSpec]:
    H, C, P, W = HELLO, CHALLENGE, PROOF, WELCOME
    HW = (H, W)
    rows: list[tuple[int, str, str, _Range, Iterable[int], Iterable[int]]] = [
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
        # HELLO (resume): optional, both or neither (see parse_payload);
        # WELCOME: required.
        (18, "session_id", "bytes", dict(lo=16, hi=16), HW, (W,)),
        # §16.2: only a new session's WELCOME carries the token; a resumed
        # WELCOME carries resume_proof instead (see parse_payload).
        (19, "resume_token", "bytes", dict(lo=16, hi=16), (W,), ()),
        (20, "last_received", "varint", {}, HW, (W,)),
        (21, "resumed", "flag", {}, (W,), ()),
        (22, "resume_window_us", "varint", {}, (W,), (W,)),
        # PROOF answering a resuming HELLO (the session requires it there),
        # resumed WELCOME (see parse_payload).
        (23, "resume_proof", "bytes", dict(lo=32, hi=32), (P, W), ()),
    ]
    return {pid: ParamSpec(pid, name, kind, phases=phases, required=req, **rng)
            for pid, name, kind, rng, phases, req in rows}


PAYLOAD_PARAMS: dict[str, dict[int, ParamSpec]] = {
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
RESUME_PARAMS: tuple[int, ...] = (18, 20)  # §11.1: a HELLO resumes iff it has session_id
# Byte strings whose empty value means the same as absence: auth_data (§12.3
# "no auth_data") and the ERROR message.
EMPTY_IS_ABSENT: tuple[tuple[str, int], ...] = (("AGENT_INIT", 16), ("AGENT_ERROR", 2))


def param_name(message: str, pid: int) -> str:
    spec = PAYLOAD_PARAMS[message].get(pid)
    return spec.name if spec else "unknown"


def param_id(message: str, name: str) -> int:
    for pid, spec in PAYLOAD_PARAMS[message].items():
        if spec.name == name:
            return pid
    raise KeyError("%s has no parameter %r" % (message, name))


def _payload_varint(data: Buffer, pos: int, end: int,
                    param: int | None) -> tuple[int, int]:
    """A param_id or param_length: all its bytes before `end`, then canonical
    (§11 rule 1, checked in that order like every varint of §7.1)."""
    if pos >= end or pos + varint_length_from_first_byte(data[pos]) > end:
        raise PayloadError(MALFORMED_PAYLOAD, pos, param)
    try:
        return varint_decode(data, pos, end)
    except WireError:
        raise PayloadError(MALFORMED_PAYLOAD, pos, param) from None


def _param_value(spec: ParamSpec, data: Buffer, at: int, length: int) -> int | bytes | bool:
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


def parse_payload(message: str, data: Buffer) -> dict[int, Any]:
    """Parses one parameter list by SPEC.md §11. Returns {param_id: value}
    (int, bytes or True) of the defined parameters present. Raises
    PayloadError for the first failure in wire order."""
    table = PAYLOAD_PARAMS[message]
    init = message == "AGENT_INIT"
    data = bytes(data)
    end = len(data)
    pos = 0
    values: dict[int, Any] = {}
    value_at: dict[int, int] = {}
    phase: int | None = None if init else 0  # non-INIT: every row is defined in "0"
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
    if init and phase == WELCOME:
        # §11.1: a resumed WELCOME proves the token, a new one carries it.
        required.add(23 if 21 in values else 19)
    for pid in sorted(required):
        if pid not in values:
            raise PayloadError(MISSING_PARAM, end, pid)
    if init and phase == HELLO and values[3] < values[2]:
        raise PayloadError(MALFORMED_PAYLOAD, value_at[3], 3)
    # §11.1: never both; the one that does not belong is MALFORMED_PAYLOAD
    # at its value.
    if init and phase == WELCOME and 21 in values and 19 in values:
        raise PayloadError(MALFORMED_PAYLOAD, value_at[19], 19)
    if init and phase == WELCOME and 21 not in values and 23 in values:
        raise PayloadError(MALFORMED_PAYLOAD, value_at[23], 23)
    return values


def _log_value(spec: ParamSpec, value: Any) -> str:
    if spec.kind == "flag":
        return "1" if value else "0"
    if spec.kind == "bytes":
        return hexs(value)
    return "%d" % value


def payload_fields(message: str, values: dict[int, Any]) -> list[tuple[str, str]]:
    """The message model of a parsed list: [(name, log value)] for every
    parameter the message (INIT: the phase) defines, in id order, absent ones
    at their §11 default: capabilities 0, auth_data and message empty ('-'),
    flags 0, detail 0, CANCEL reason 1; other absent optional varints and
    byte strings '-'."""
    table = PAYLOAD_PARAMS[message]
    phase = values.get(1, 0) if message == "AGENT_INIT" else 0
    defaults = {("AGENT_INIT", 7): 0, ("AGENT_ERROR", 4): 0, ("AGENT_CANCEL", 1): 1}
    out: list[tuple[str, str]] = []
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


def payload_log(message: str, data: Buffer) -> list[str]:
    """The log of a session_payloads.md vector: one `name=value` line per
    field of the message model, or one `error ...` line."""
    try:
        values = parse_payload(message, data)
    except PayloadError as err:
        return [err.log_line()]
    return ["%s=%s" % (name, text) for name, text in payload_fields(message, values)]


def encode_payload(message: str, values: dict[int, Any]) -> bytes:
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

    def __init__(self, pid: int, value: Buffer = b"", id_size: int | None = None,
                 len_size: int | None = None, length: int | None = None,
                 name: str | None = None, value_comment: str | None = None) -> None:
        self.pid = pid
        self.value = bytes(value)
        self.id_size = id_size
        self.len_size = len_size
        self.length = length
        self.name = name
        self.value_comment = value_comment

    def segments(self, message: str) -> list[Segment]:
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


def vparam(message: str, name_or_id: int | str, value: int, size: int | None = None,
           **kw: Any) -> Param:
    """A varint-valued parameter; `size` forces a longer varint."""
    pid = name_or_id if isinstance(name_or_id, int) else param_id(message, name_or_id)
    kw.setdefault("value_comment", "%d" % value if size is None else
                  "%d as a %d-byte varint" % (value, size))
    return Param(pid, varint_encode(value, size), **kw)


def bparam(message: str, name_or_id: int | str, value: Buffer, **kw: Any) -> Param:
    pid = name_or_id if isinstance(name_or_id, int) else param_id(message, name_or_id)
    value = bytes(value)
    if "value_comment" not in kw:
        printable = value and all(0x20 <= b <= 0x7E for b in value) and len(value) <= 40
        kw["value_comment"] = ('"%s"' % value.decode("ascii") if printable
                               else "%d bytes" % len(value))
    return Param(pid, value, **kw)


def payload_segments(message: str, params: Iterable[Param | Segment]) -> list[Segment]:
    segs: list[Segment] = []
    for p in params:
        segs.extend(p.segments(message) if isinstance(p, Param) else [p])
    return segs


def canonical_params(message: str, values: dict[int, Any]) -> list[Param]:
    """Param objects in the order and form encode_payload writes them."""
    data = encode_payload(message, values)
    params: list[Param] = []
    comment: str | None
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
# Session transcripts (tests/vectors/session_transcripts.md): a reference
# model of the session layer's handshake (§12), tasks (§13) and
# acknowledgements (§14.2), written from SPEC.md only, plus the deterministic
# random source the C++ tests inject (SeededRandom: SplitMix64). Only what
# the transcripts exercise is modelled; anything else raises
# NotImplementedError rather than guessing.

MASK64: int = (1 << 64) - 1


class SplitMix64:
    """SplitMix64 (Steele, Lea, Flood 2014) as a byte source, the way the C++
    SeededRandom(seed) fills a buffer: each call starts a new 64-bit output
    word; words are written little-endian, 8 bytes at a time, and the last
    word of a call is truncated to the bytes still needed (its remaining
    bytes are discarded, never carried over to the next call)."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def fill(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += self.next64().to_bytes(8, "little")[:n - len(out)]
        return bytes(out)


# absl::StatusCode (gRPC canonical codes), as ERROR param 1 carries them.
CANONICAL_CODES: dict[str, int] = {
    "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10,
    "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
    "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}
CANONICAL_NAMES: dict[int, str] = {v: k for k, v in CANONICAL_CODES.items()}

# §18: session error codes and their canonical codes (PEER_ERROR: the peer's).
SESSION_ERRORS: dict[str, tuple[int, str | None]] = {
    "MALFORMED_PAYLOAD": (100, "INVALID_ARGUMENT"),
    "UNKNOWN_CRITICAL_PARAM": (101, "UNIMPLEMENTED"),
    "MISSING_PARAM": (102, "INVALID_ARGUMENT"),
    "VERSION_MISMATCH": (103, "UNIMPLEMENTED"),
    "INCOMPATIBLE_ROLES": (104, "FAILED_PRECONDITION"),
    "UNAUTHENTICATED": (105, "UNAUTHENTICATED"),
    "HANDSHAKE_TIMEOUT": (106, "DEADLINE_EXCEEDED"),
    "UNEXPECTED_FRAME": (107, "INVALID_ARGUMENT"),
    "SEQUENCE_GAP": (108, "DATA_LOSS"),
    "BAD_ACK": (109, "INVALID_ARGUMENT"),
    "UNKNOWN_TASK": (110, "INVALID_ARGUMENT"),
    "TASK_STATE_VIOLATION": (111, "INVALID_ARGUMENT"),
    "TASK_ID_REUSED": (112, "INVALID_ARGUMENT"),
    "TASK_LIMIT_EXCEEDED": (113, "RESOURCE_EXHAUSTED"),
    "SESSION_EXPIRED": (118, "DATA_LOSS"),
    "RESUME_GAP": (119, "DATA_LOSS"),
    "RESUME_REJECTED": (120, "PERMISSION_DENIED"),
    "PEER_ERROR": (126, None),
    "NO_CREDIT": (114, "RESOURCE_EXHAUSTED"),
    "REPLAY_BUFFER_FULL": (115, "RESOURCE_EXHAUSTED"),
    "PEER_UNRESPONSIVE": (116, "DEADLINE_EXCEEDED"),
    "PING_FLOOD": (117, "RESOURCE_EXHAUSTED"),
    "CONNECTION_LOST": (121, "UNAVAILABLE"),
    "PEER_DRAINING": (122, "UNAVAILABLE"),
    "SESSION_CLOSED": (123, "FAILED_PRECONDITION"),
    "FRAME_TOO_LARGE": (124, "INVALID_ARGUMENT"),
    "WRONG_STATE": (125, "FAILED_PRECONDITION"),
    "UNIMPLEMENTED": (127, "UNIMPLEMENTED"),  # §13.5: no handler for the method
}
SESSION_ERROR_NAMES: dict[int, str] = {code: name for name, (code, _) in SESSION_ERRORS.items()}
# §7: the framing errors a receiver reports, with their canonical codes.
FRAMING_ERRORS: dict[str, tuple[int, str]] = {
    "BAD_PREFACE": (1, "INVALID_ARGUMENT"),
    "UNSUPPORTED_VERSION": (2, "UNIMPLEMENTED"),
    "NON_CANONICAL_VARINT": (3, "INVALID_ARGUMENT"),
    "BAD_HEADER_LENGTH": (5, "INVALID_ARGUMENT"),
    "HEADER_TOO_LARGE": (6, "RESOURCE_EXHAUSTED"),
    "HEADER_CRC_MISMATCH": (7, "DATA_LOSS"),
    "UNKNOWN_MESSAGE_TYPE": (8, "INVALID_ARGUMENT"),
    "RESERVED_FLAGS": (9, "INVALID_ARGUMENT"),
    "BAD_STREAM_ID": (10, "INVALID_ARGUMENT"),
    "MALFORMED_HEADER": (11, "INVALID_ARGUMENT"),
    "PAYLOAD_TOO_LARGE": (12, "RESOURCE_EXHAUSTED"),
    "PAYLOAD_CHECKSUM_MISMATCH": (13, "DATA_LOSS"),
    "MALFORMED_EXTENSION": (14, "INVALID_ARGUMENT"),
    "UNKNOWN_CRITICAL_EXTENSION": (15, "UNIMPLEMENTED"),
    "DUPLICATE_EXTENSION": (16, "INVALID_ARGUMENT"),
    "TOO_MANY_EXTENSIONS": (17, "RESOURCE_EXHAUSTED"),
}

ROLE_NAMES: tuple[str, ...] = ("orchestrator", "agent", "peer")  # §11.3
AUTH_NAMES: tuple[str, ...] = ("none", "token", "hmac")          # §12.3 methods 0, 1, 2
MAX_CONTROL_PAYLOAD: int = 8192                                  # §15.2
HMAC_CLIENT_LABEL: bytes = b"symwire-hmac-v1 client"             # §12.3
HMAC_SERVER_LABEL: bytes = b"symwire-hmac-v1 server"
AGENT_INIT, AGENT_TASK, AGENT_ERROR, AGENT_CANCEL, AGENT_SYNC = 0, 1, 3, 4, 5
# §13.3: the message of the AGENT_ERROR that answers a cancel, by reason.
CANCEL_ANSWER_MESSAGES: dict[int, bytes] = {1: b"cancelled", 4: b"deadline exceeded"}

# A transcript side's configuration: the SessionConfig fields of the C++
# API that reach the wire or decide what is sent, with their option names in
# the vector files (prefixed "initiator." / "acceptor."). Durations in µs.
TRANSCRIPT_CONFIG_KEYS: tuple[str, ...] = (
    "seed", "role", "agent_id", "min_version", "max_version", "auth",
    "auth_secret", "capabilities", "payload_checksums", "max_tasks",
    "max_payload_bytes", "max_header_bytes", "max_extensions", "replay_bytes",
    "replay_frames", "handshake_timeout_us", "ping_interval_us",
    "min_peer_ping_interval_us", "dead_peer_timeout_us", "ack_delay_us",
    "resume_window_us", "max_ping_strikes")
TRANSCRIPT_SIDES: tuple[str, ...] = ("initiator", "acceptor")


def role_allows(sender: int, runner: int) -> bool:
    """§11.3: `sender` may send AGENT_TASK and `runner` accepts it."""
    return sender in (0, 2) and runner in (1, 2)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


RESUME_CLIENT_LABEL: bytes = b"symwire-resume-v1 client"   # §16.2
RESUME_SERVER_LABEL: bytes = b"symwire-resume-v1 server"


def resume_proof(token: bytes, label: bytes, nc: bytes, ns: bytes, session_id: bytes,
                 last_received: int) -> bytes:
    """§16.2: HMAC-SHA256(token, label || Nc || Ns || session_id || L), L as
    8 bytes big-endian."""
    return hmac_sha256(token, label + nc + ns + session_id
                       + last_received.to_bytes(8, "big"))


class TranscriptError(Exception):
    """The session ended on an error (already logged and answered)."""
