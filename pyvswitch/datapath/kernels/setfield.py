"""setfield: the datapath's masked header rewrites, with checksum updates.

What: `set_field(b, off, length, fid, v0, m0, v1, m1)` rewrites one header
field of the frame b[off:off+length] under a mask: new = (old & ~m) | (v & m).
Fields (ids in datapath/actions.py): Ethernet src/dst; IPv4 src, dst, tos,
ttl; IPv6 src, dst (v0/m0 the high 64 bits, v1/m1 the low), traffic class,
flow label, hop limit; TCP, UDP and SCTP source and destination ports.

Headers are found in the frame itself (one 802.1Q tag skipped; IPv6
extension headers walked as parse.py does), with parse.py's validity rules;
a frame without the header (wrong type, truncated, later fragment, another
L4 protocol) is left alone: the action is a no-op, never a fault.

Checksums are updated incrementally (RFC 1624, eqn. 3), one 16-bit word at a
time: the IPv4 header checksum for IPv4 fields; the TCP and UDP checksums for
addresses (pseudo-header) and ports; ICMPv6 for IPv6 addresses. A UDP
checksum of 0 (none, IPv4) stays 0 and a computed 0 is sent as 0xffff.
SCTP's CRC32c is recomputed after a port rewrite as Open vSwitch does
(packet_set_sctp_port): new = old ^ crc(before) ^ crc(after), over the SCTP
packet with its checksum field taken as zero, so a packet that arrived with a
bad checksum keeps a bad one. Values travel as int64 words
(two's complement for 64-bit halves): only shifts and masks are used, so
there is no signed/unsigned mixing.

`set_field_ref(frame, fid, value, mask)` is the twin over a bytearray with
128-bit ints. Both may run on any thread; the kernel runs on PMD threads.
"""

import struct

import numpy as np

from pyvswitch.core.jit import kernel

F_ETH_SRC, F_ETH_DST, F_IPV4_SRC, F_IPV4_DST, F_IPV4_TOS, F_IPV4_TTL = 1, 2, 3, 4, 5, 6
F_IPV6_SRC, F_IPV6_DST, F_IPV6_TC, F_IPV6_LABEL, F_IPV6_HLIMIT = 7, 8, 9, 10, 11
F_TCP_SRC, F_TCP_DST, F_UDP_SRC, F_UDP_DST, F_SCTP_SRC, F_SCTP_DST = 12, 13, 14, 15, 16, 17
N_FIELDS = 18
MAX_EXT = 8


def _crc32c_table():
    t = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC32C_TABLE = _crc32c_table()
_CRC32C = np.array(CRC32C_TABLE, dtype=np.int64)


@kernel(nrt=False, inline=True)
def _crc32c(b, start, end, skip):
    """CRC32c (Castagnoli) of b[start:end] with the 4 bytes at `skip` read as 0."""
    c = 0xFFFFFFFF
    for i in range(start, end):
        v = 0 if i >= skip and i < skip + 4 else int(b[i])
        c = _CRC32C[(c ^ v) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


@kernel(nrt=False, inline=True)
def _sctp_fix(b, at, before, after):
    """Carry a CRC32c change into the checksum at b[at:at+4] (stored
    least significant byte first, as the kernel's sctp_compute_cksum)."""
    d = before ^ after
    for k in range(4):
        b[at + k] = int(b[at + k]) ^ ((d >> (8 * k)) & 0xFF)


@kernel(nrt=False, inline=True)
def _be16(b, p):
    return (int(b[p]) << 8) | int(b[p + 1])


@kernel(nrt=False, inline=True)
def _csum_fix(b, at, old, new, udp):
    """Checksum at b[at:at+2] after a 16-bit word went from old to new."""
    c = (~_be16(b, at)) & 0xFFFF
    c += (~old) & 0xFFFF
    c += new
    c = (c & 0xFFFF) + (c >> 16)
    c = (c & 0xFFFF) + (c >> 16)
    c = (~c) & 0xFFFF
    if udp and c == 0:
        c = 0xFFFF
    b[at] = (c >> 8) & 0xFF
    b[at + 1] = c & 0xFF


@kernel(nrt=False, inline=True)
def _write(b, base, p, n, v, m, c1, c2, c2_udp):
    """Masked write of n <= 8 bytes at p (value v, mask m: int64, big-endian
    in their low n bytes), fixing checksums at c1 and c2 (-1: none) over the
    16-bit words aligned on `base`."""
    w = p - ((p - base) & 1)
    while w < p + n:
        old = _be16(b, w)
        for k in range(2):
            j = w + k - p
            if j >= 0 and j < n:
                s = 8 * (n - 1 - j)
                mb = (m >> s) & 0xFF
                b[w + k] = (int(b[w + k]) & (~mb & 0xFF)) | ((v >> s) & mb)
        new = _be16(b, w)
        if new != old:
            if c1 >= 0:
                _csum_fix(b, c1, old, new, False)
            if c2 >= 0:
                _csum_fix(b, c2, old, new, c2_udp)
        w += 2


@kernel(nrt=False, inline=True)
def _ipv6_l4(b, l3, end):
    """(L4 offset, protocol) after IPv6 extension headers; offset -1 if none."""
    nh = int(b[l3 + 6])
    q = l3 + 40
    for i in range(MAX_EXT + 1):
        if nh != 0 and nh != 43 and nh != 60 and nh != 51 and nh != 44:
            return q, nh
        if i == MAX_EXT or end - q < 8:
            return -1, nh
        if nh == 44:
            if _be16(b, q + 2) & 0xFFF8:
                return -1, nh
            hl = 8
        elif nh == 51:
            hl = (int(b[q + 1]) + 2) * 4
        else:
            hl = (int(b[q + 1]) + 1) * 8
        if hl > end - q:
            return -1, nh
        nh = int(b[q])
        q += hl
    return -1, nh


@kernel(nrt=False, inline=True)
def _l4_csum(b, l4, end, proto, v6):
    """(checksum offset, is_udp) of the L4 header at l4, or (-1, False)."""
    n = end - l4
    if l4 < 0:
        return -1, False
    if proto == 6 and n >= 20:
        hl = (int(b[l4 + 12]) >> 4) * 4
        if hl >= 20 and hl <= n:
            return l4 + 16, False
    elif proto == 17 and n >= 8:
        if v6 or _be16(b, l4 + 6) != 0:
            return l4 + 6, True
    elif proto == 58 and v6 and n >= 4:
        return l4 + 2, False
    return -1, False


@kernel(nrt=False)
def set_field(b, off, length, fid, v0, m0, v1, m1):
    if length < 14 or off < 0 or off + length > b.shape[0]:
        return
    end = off + length
    if fid == F_ETH_SRC or fid == F_ETH_DST:
        _write(b, off, off + (6 if fid == F_ETH_SRC else 0), 6, v0, m0, -1, -1, False)
        return
    et = _be16(b, off + 12)
    l3 = off + 14
    if et == 0x8100:
        if length < 18:
            return
        et = _be16(b, off + 16)
        l3 = off + 18
    l4 = -1
    proto = -1
    if et == 0x0800 and (fid <= F_IPV4_TTL or fid >= F_TCP_SRC):
        if end - l3 < 20 or (int(b[l3]) >> 4) != 4:
            return
        ihl = (int(b[l3]) & 15) * 4
        tot = _be16(b, l3 + 2)
        if ihl < 20 or tot < ihl or tot > end - l3:
            return
        end = l3 + tot
        proto = int(b[l3 + 9])
        if (_be16(b, l3 + 6) & 0x1FFF) == 0:
            l4 = l3 + ihl
        c2, udp = _l4_csum(b, l4, end, proto, False)
        if fid == F_IPV4_SRC or fid == F_IPV4_DST:
            _write(b, l3, l3 + (12 if fid == F_IPV4_SRC else 16), 4, v0, m0, l3 + 10, c2, udp)
        elif fid == F_IPV4_TOS:
            _write(b, l3, l3 + 1, 1, v0, m0, l3 + 10, -1, False)
        elif fid == F_IPV4_TTL:
            _write(b, l3, l3 + 8, 1, v0, m0, l3 + 10, -1, False)
    elif et == 0x86DD and fid >= F_IPV6_SRC:
        if end - l3 < 40 or (int(b[l3]) >> 4) != 6:
            return
        plen = _be16(b, l3 + 4)
        if plen > end - l3 - 40:
            return
        end = l3 + 40 + plen
        l4, proto = _ipv6_l4(b, l3, end)
        c2, udp = _l4_csum(b, l4, end, proto, True)
        if fid == F_IPV6_SRC or fid == F_IPV6_DST:
            at = l3 + (8 if fid == F_IPV6_SRC else 24)
            _write(b, l3, at, 8, v0, m0, c2, -1, udp)
            _write(b, l3, at + 8, 8, v1, m1, c2, -1, udp)
        elif fid == F_IPV6_TC:
            _write(b, l3, l3, 2, v0 << 4, (m0 & 0xFF) << 4, -1, -1, False)
        elif fid == F_IPV6_LABEL:
            _write(b, l3, l3 + 1, 3, v0, m0 & 0xFFFFF, -1, -1, False)
        elif fid == F_IPV6_HLIMIT:
            _write(b, l3, l3 + 7, 1, v0, m0, -1, -1, False)
    else:
        return
    if fid >= F_TCP_SRC and l4 >= 0:
        want = 6 if fid <= F_TCP_DST else (17 if fid <= F_UDP_DST else 132)
        if proto != want:
            return
        at = l4 + (0 if (fid - F_TCP_SRC) % 2 == 0 else 2)
        c2, udp = _l4_csum(b, l4, end, proto, et == 0x86DD)
        if proto == 6 and c2 < 0 or end - l4 < (8 if proto == 17 else 12):
            return
        if proto == 132:
            before = _crc32c(b, l4, end, l4 + 8)
            _write(b, l4, at, 2, v0, m0, -1, -1, False)
            _sctp_fix(b, l4 + 8, before, _crc32c(b, l4, end, l4 + 8))
            return
        _write(b, l4, at, 2, v0, m0, c2, -1, udp)


# ---------------------------------------------------------------- the twin --

def _fix_ref(fr, at, old, new, udp):
    c = (~struct.unpack_from("!H", fr, at)[0] & 0xFFFF) + (~old & 0xFFFF) + new
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    c = ~c & 0xFFFF
    struct.pack_into("!H", fr, at, 0xFFFF if udp and c == 0 else c)


def _write_ref(fr, base, p, n, value, mask, sums):
    """Masked big-endian write of n bytes; sums: [(offset, is_udp)]."""
    lo = p - ((p - base) & 1)
    hi = p + n + ((p + n - base) & 1)
    old = fr[lo:hi]
    cur = int.from_bytes(fr[p:p + n], "big")
    fr[p:p + n] = ((cur & ~mask) | (value & mask)).to_bytes(n, "big")
    for w in range(0, hi - lo, 2):
        o = int.from_bytes(old[w:w + 2], "big")
        nw = int.from_bytes(fr[lo + w:lo + w + 2], "big")
        if o != nw:
            for at, udp in sums:
                _fix_ref(fr, at, o, nw, udp)


def _l4_ref(fr, l4, end, proto, v6):
    if l4 is None:
        return []
    seg = fr[l4:end]
    if proto == 6 and len(seg) >= 20 and 20 <= (seg[12] >> 4) * 4 <= len(seg):
        return [(l4 + 16, False)]
    if proto == 17 and len(seg) >= 8 and (v6 or seg[6:8] != b"\0\0"):
        return [(l4 + 6, True)]
    if proto == 58 and v6 and len(seg) >= 4:
        return [(l4 + 2, False)]
    return []


def _ipv6_l4_ref(fr, l3, end):
    nh, q = fr[l3 + 6], l3 + 40
    for i in range(MAX_EXT + 1):
        if nh not in (0, 43, 60, 51, 44):
            return q, nh
        if i == MAX_EXT or end - q < 8:
            return None, nh
        if nh == 44:
            if struct.unpack_from("!H", fr, q + 2)[0] >> 3:
                return None, nh
            hl = 8
        else:
            hl = (fr[q + 1] + 2) * 4 if nh == 51 else (fr[q + 1] + 1) * 8
        if hl > end - q:
            return None, nh
        nh, q = fr[q], q + hl
    return None, nh


def set_field_ref(fr, fid, value, mask):
    """Twin of set_field over a bytearray (value/mask up to 128 bits)."""
    if len(fr) < 14:
        return
    if fid in (F_ETH_SRC, F_ETH_DST):
        _write_ref(fr, 0, 6 if fid == F_ETH_SRC else 0, 6, value, mask, [])
        return
    (et,) = struct.unpack_from("!H", fr, 12)
    l3 = 14
    if et == 0x8100:
        if len(fr) < 18:
            return
        (et,), l3 = struct.unpack_from("!H", fr, 16), 18
    l4, v6 = None, et == 0x86DD
    if et == 0x0800 and (fid <= F_IPV4_TTL or fid >= F_TCP_SRC):
        if len(fr) - l3 < 20 or fr[l3] >> 4 != 4:
            return
        ihl, (tot,) = (fr[l3] & 15) * 4, struct.unpack_from("!H", fr, l3 + 2)
        if ihl < 20 or tot < ihl or tot > len(fr) - l3:
            return
        end, proto = l3 + tot, fr[l3 + 9]
        if not struct.unpack_from("!H", fr, l3 + 6)[0] & 0x1FFF:
            l4 = l3 + ihl
        ip_sum = [(l3 + 10, False)]
        at = {F_IPV4_SRC: (12, 4), F_IPV4_DST: (16, 4), F_IPV4_TOS: (1, 1),
              F_IPV4_TTL: (8, 1)}.get(fid)
        if at:
            extra = _l4_ref(fr, l4, end, proto, False) if at[1] == 4 else []
            _write_ref(fr, l3, l3 + at[0], at[1], value, mask, ip_sum + extra)
            return
    elif v6 and fid >= F_IPV6_SRC:
        if len(fr) - l3 < 40 or fr[l3] >> 4 != 6:
            return
        (plen,) = struct.unpack_from("!H", fr, l3 + 4)
        if plen > len(fr) - l3 - 40:
            return
        end = l3 + 40 + plen
        l4, proto = _ipv6_l4_ref(fr, l3, end)
        if fid in (F_IPV6_SRC, F_IPV6_DST):
            _write_ref(fr, l3, l3 + (8 if fid == F_IPV6_SRC else 24), 16, value, mask,
                       _l4_ref(fr, l4, end, proto, True))
            return
        if fid == F_IPV6_TC:
            _write_ref(fr, l3, l3, 2, (value & 0xFF) << 4, (mask & 0xFF) << 4, [])
        elif fid == F_IPV6_LABEL:
            _write_ref(fr, l3, l3 + 1, 3, value & 0xFFFFF, mask & 0xFFFFF, [])
        elif fid == F_IPV6_HLIMIT:
            _write_ref(fr, l3, l3 + 7, 1, value, mask, [])
        if fid <= F_IPV6_HLIMIT:
            return
    else:
        return
    want = 6 if fid <= F_TCP_DST else (17 if fid <= F_UDP_DST else 132)
    if l4 is None or proto != want or end - l4 < (8 if proto == 17 else 12):
        return
    sums = _l4_ref(fr, l4, end, proto, v6)
    if proto == 6 and not sums:
        return
    at = l4 + (0 if (fid - F_TCP_SRC) % 2 == 0 else 2)
    if proto == 132:
        before = crc32c_ref(fr[l4:l4 + 8] + b"\0\0\0\0" + fr[l4 + 12:end])
        _write_ref(fr, l4, at, 2, value, mask, [])
        after = crc32c_ref(fr[l4:l4 + 8] + b"\0\0\0\0" + fr[l4 + 12:end])
        old = int.from_bytes(fr[l4 + 8:l4 + 12], "little")
        fr[l4 + 8:l4 + 12] = (old ^ before ^ after).to_bytes(4, "little")
        return
    _write_ref(fr, l4, at, 2, value, mask, sums)


def crc32c_ref(data):
    """CRC32c (Castagnoli), as SCTP uses it."""
    c = 0xFFFFFFFF
    for v in data:
        c = CRC32C_TABLE[(c ^ v) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
