#!/usr/bin/env python3
"""Wraps symwire byte streams into a classic pcap capture of one TCP connection.

Standard library only. Used by dump_test.py (imported) to test symwire-dump's
pcap reader and TCP reassembly, and usable by hand:

  make_pcap.py --client-hex c.hex --server-hex s.hex -o out.pcap \
      [--ipv6] [--link ethernet|sll|null] [--big-endian] [--nano] \
      [--segment 40] [--no-reorder] [--no-retransmit]

(the hex files may contain whitespace and '#' comments; the client's bytes are
sent first, then the server's.)

The capture holds the three-way handshake, the data cut into segments of at
most `segment` bytes, and FIN/ACK at the end. By default it also perturbs the
order as real captures do: the first two data segments of the client swap
places (out of order), a segment is sent twice (retransmission) and a second
retransmission overlaps the previous and the next segment's bytes.
"""

import argparse
import struct

LINK_ETHERNET = 1
LINK_NULL = 0
LINK_SLL = 113


def _ipv4_checksum(header):
    total = 0
    for i in range(0, len(header), 2):
        total += (header[i] << 8) | header[i + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def _addr(text, ipv6):
    if ipv6:
        import ipaddress
        return ipaddress.IPv6Address(text).packed
    return bytes(int(x) for x in text.split("."))


class Capture:
    """Accumulates packets of TCP connections and writes a pcap file."""

    def __init__(self, link=LINK_ETHERNET, ipv6=False, big_endian=False,
                 nano=False):
        self.link = link
        self.ipv6 = ipv6
        self.order = ">" if big_endian else "<"
        self.nano = nano
        self.records = []
        self.time_us = 1_700_000_000_000_000

    def packet(self, src, dst, seq, ack, flags, payload=b""):
        """src/dst: (address text, port). flags: a string of S A F R P."""
        bits = 0
        for c, b in (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08),
                     ("A", 0x10)):
            if c in flags:
                bits |= b
        tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF,
                          ack & 0xFFFFFFFF, 5 << 4, bits, 65535, 0, 0)
        segment = tcp + payload
        if self.ipv6:
            ip = struct.pack(">IHBB", 6 << 28, len(segment), 6, 64)
            ip += _addr(src[0], True) + _addr(dst[0], True)
            ethertype = 0x86DD
            family = 30  # AF_INET6 on macOS; the reader uses the IP version
        else:
            header = bytearray(struct.pack(
                ">BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0x4000, 64, 6,
                0, _addr(src[0], False), _addr(dst[0], False)))
            struct.pack_into(">H", header, 10, _ipv4_checksum(header))
            ip = bytes(header)
            ethertype = 0x0800
            family = 2
        packet = ip + segment
        if self.link == LINK_ETHERNET:
            frame = (b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" +
                     struct.pack(">H", ethertype) + packet)
            if len(frame) < 60:  # Ethernet pads short frames: must be ignored
                frame += b"\x00" * (60 - len(frame))
        elif self.link == LINK_SLL:
            frame = struct.pack(">HHH8sH", 0, 772, 6, b"\x00" * 8,
                                ethertype) + packet
        else:
            frame = struct.pack(self.order + "I", family) + packet
        self.time_us += 137
        self.records.append((self.time_us, frame))

    def write(self, path):
        magic = 0xA1B23C4D if self.nano else 0xA1B2C3D4
        o = self.order
        out = bytearray(struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 262144,
                                    self.link))
        for t, frame in self.records:
            frac = (t % 1_000_000) * (1000 if self.nano else 1)
            out += struct.pack(o + "IIII", t // 1_000_000, frac, len(frame),
                               len(frame))
            out += frame
        with open(path, "wb") as f:
            f.write(out)


def add_connection(cap, writes, client=("127.0.0.1", 40000),
                   server=("127.0.0.1", 7000), segment=40, reorder=True,
                   retransmit=True, handshake=True, drop=None,
                   skip_first=0, isn=(1000, 900000)):
    """Adds one TCP connection carrying `writes` to `cap`.

    writes: [(side, bytes)] in the order written, side 'c' or 's'.
    drop: (side, n) leaves out the n-th data segment of that side (a loss the
    capture never saw retransmitted). skip_first: the first packets
    (handshake included) left out, as if the capture started late.
    """
    seq = {"c": isn[0], "s": isn[1]}
    ends = {"c": (client, server), "s": (server, client)}
    packets = []

    def emit(side, s, flags, payload=b""):
        src, dst = ends[side]
        other = "s" if side == "c" else "c"
        packets.append((side, src, dst, s, seq[other], flags, payload))

    if handshake:
        emit("c", seq["c"], "S")
        seq["c"] += 1
        packets.append(("s", server, client, seq["s"], seq["c"], "SA", b""))
        seq["s"] += 1
        emit("c", seq["c"], "A")
    else:
        seq["c"] += 1
        seq["s"] += 1
    data = {"c": [], "s": []}
    for side, blob in writes:
        for i in range(0, len(blob), segment):
            piece = blob[i:i + segment]
            data[side].append(len(packets))
            emit(side, seq[side], "PA", piece)
            seq[side] += len(piece)
    emit("c", seq["c"], "FA")
    emit("s", seq["s"], "FA")
    if drop is not None:
        side, n = drop
        del packets[data[side][n]]
        data = {"c": [], "s": []}
        for i, p in enumerate(packets):
            if p[6]:
                data[p[0]].append(i)
    c_data = data["c"]
    if reorder and len(c_data) >= 2:
        a, b = c_data[0], c_data[1]
        packets[a], packets[b] = packets[b], packets[a]
    inserts = []
    if retransmit and len(c_data) >= 3:
        # A plain retransmission of a segment, after the third.
        inserts.append((c_data[2] + 1, packets[c_data[1]]))
    s_data = data["s"]
    if retransmit and len(s_data) >= 3:
        # An overlapping one: the end of segment 1 and the start of 2.
        first, second = packets[s_data[0]], packets[s_data[1]]
        half = len(first[6]) // 2
        merged = first[:3] + (first[3] + half,) + first[4:6] + (
            first[6][half:] + second[6][:5],)
        inserts.append((s_data[1] + 1, merged))
    for index, packet in sorted(inserts, key=lambda x: -x[0]):
        packets.insert(index, packet)
    for p in packets[skip_first:]:
        cap.packet(p[1], p[2], p[3], p[4], p[5], p[6])


def _read_hex(path):
    text = open(path).read()
    digits = "".join(line.split("#")[0] for line in text.splitlines())
    return bytes.fromhex("".join(digits.split()))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--client-hex", required=True)
    p.add_argument("--server-hex", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--ipv6", action="store_true")
    p.add_argument("--link", choices=["ethernet", "sll", "null"],
                   default="ethernet")
    p.add_argument("--big-endian", action="store_true")
    p.add_argument("--nano", action="store_true")
    p.add_argument("--segment", type=int, default=40)
    p.add_argument("--no-reorder", action="store_true")
    p.add_argument("--no-retransmit", action="store_true")
    a = p.parse_args()
    link = {"ethernet": LINK_ETHERNET, "sll": LINK_SLL, "null": LINK_NULL}
    cap = Capture(link[a.link], a.ipv6, a.big_endian, a.nano)
    client = ("::1", 40000) if a.ipv6 else ("127.0.0.1", 40000)
    server = ("::1", 7000) if a.ipv6 else ("127.0.0.1", 7000)
    add_connection(cap, [("c", _read_hex(a.client_hex)),
                         ("s", _read_hex(a.server_hex))],
                   client, server, a.segment, not a.no_reorder,
                   not a.no_retransmit)
    cap.write(a.output)


if __name__ == "__main__":
    main()
