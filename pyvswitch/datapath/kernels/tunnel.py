"""tunnel: VXLAN encapsulation and decapsulation of one packet in its slot.

tnl_push(b, off, length, hdr, hdr_len, sport) -> new off (or -1)
    Writes the hdr_len-byte outer header template (Ethernet, IPv4, UDP, VXLAN:
    `vxlan_header` builds it, with IPv4 total length 0 and the IPv4 checksum
    computed over that) into the headroom in front of the frame, then patches
    what depends on the frame: IPv4 total length (+ its checksum, updated
    incrementally, RFC 1624), UDP length and UDP source port. The UDP checksum
    stays 0 (allowed for IPv4, as OVS's default). -1: not enough headroom.

tnl_pop(b, off, length, dst_port, out) -> inner offset (or -E_*)
    Checks the outer headers: Ethernet type IPv4 (no VLAN: the underlay bridge
    pops tags), IPv4 version/IHL/total length within the frame, not a fragment,
    protocol UDP to dst_port, UDP length consistent, VXLAN flags with the I bit
    and an inner frame of at least 14 bytes. out[0..4] = vni, outer ipv4 src,
    dst, tos, ttl; out[5] = inner length. The caller moves off/length.

The header template comes from proto/vxlan.py (`vxlan_header`, re-exported);
the `*_ref` twins are plain Python.
"""

import struct

import numpy as np

from pyvswitch.core.intrinsics import memcpy_u8
from pyvswitch.core.jit import kernel
from pyvswitch.proto.vxlan import (ETH_LEN, IP_LEN, UDP_LEN, VXLAN_FLAGS_I, VXLAN_HLEN,  # noqa: F401
                                   VXLAN_LEN, csum16 as _csum, vxlan_header)

SPORT_MIN, SPORT_MAX = 32768, 61000                       # OVS's tnl_udp_port range
POP_READS = ETH_LEN + 60 + UDP_LEN + VXLAN_LEN            # the most tnl_pop reads (IPv4 with options)

E_SHORT, E_NOT_IP, E_BAD_IP, E_FRAG, E_NOT_UDP, E_BAD_UDP, E_NOT_VXLAN = 1, 2, 3, 4, 5, 6, 7
POP_ERRORS = {E_SHORT: "truncated", E_NOT_IP: "not IPv4", E_BAD_IP: "bad IPv4 header",
              E_FRAG: "IPv4 fragment", E_NOT_UDP: "not UDP to the tunnel port",
              E_BAD_UDP: "bad UDP length", E_NOT_VXLAN: "no VXLAN I flag"}


@kernel(nrt=False, inline=True)
def _be16(b, p):
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@kernel(nrt=False, inline=True)
def _put16(b, p, v):
    b[p] = (v >> 8) & 0xFF
    b[p + 1] = v & 0xFF


@kernel(nrt=False, inline=True)
def _csum_add16(csum, v):
    """Checksum field after one 16-bit word of the header grew by v (RFC 1624:
    HC' = ~(~HC + m'), the old word being 0)."""
    s = (~csum & 0xFFFF) + v
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@kernel(nrt=False)
def udp_sport(h):
    """UDP source port from a flow hash, in [SPORT_MIN, SPORT_MAX)."""
    return SPORT_MIN + np.int64(((h >> np.uint64(32)) * np.uint64(SPORT_MAX - SPORT_MIN)) >> np.uint64(32))


@kernel(nrt=False)
def tnl_push(b, off, length, hdr, hdr_len, sport):
    if hdr_len != VXLAN_HLEN or off < hdr_len or length < 0:
        return -1
    new = off - hdr_len
    memcpy_u8(b, new, hdr, 0, hdr_len)
    ip = new + ETH_LEN
    tot = length + IP_LEN + UDP_LEN + VXLAN_LEN
    _put16(b, ip + 2, tot)
    _put16(b, ip + 10, _csum_add16(_be16(b, ip + 10), tot))
    udp = ip + IP_LEN
    _put16(b, udp, sport)
    _put16(b, udp + 4, tot - IP_LEN)
    return new


@kernel(nrt=False)
def tnl_pop(b, off, length, dst_port, out):
    if off < 0 or length < 0 or off + length > b.shape[0]:
        return -E_SHORT
    end = off + length
    if length < ETH_LEN + IP_LEN:
        return -E_SHORT
    if _be16(b, off + 12) != 0x0800:
        return -E_NOT_IP
    ip = off + ETH_LEN
    ihl = np.int64(b[ip] & 15) * 4
    tot = _be16(b, ip + 2)
    if (b[ip] >> 4) != 4 or ihl < IP_LEN or tot < ihl or ip + tot > end:
        return -E_BAD_IP
    if _be16(b, ip + 6) & 0x3FFF:
        return -E_FRAG
    udp = ip + ihl
    if b[ip + 9] != 17 or tot - ihl < UDP_LEN or _be16(b, udp + 2) != dst_port:
        return -E_NOT_UDP
    ulen = _be16(b, udp + 4)
    if ulen < UDP_LEN + VXLAN_LEN + ETH_LEN or ulen > tot - ihl:
        return -E_BAD_UDP
    vx = udp + UDP_LEN
    if (b[vx] & 0x08) == 0:
        return -E_NOT_VXLAN
    out[0] = (np.int64(b[vx + 4]) << 16) | (np.int64(b[vx + 5]) << 8) | np.int64(b[vx + 6])
    out[1] = (_be16(b, ip + 12) << 16) | _be16(b, ip + 14)
    out[2] = (_be16(b, ip + 16) << 16) | _be16(b, ip + 18)
    out[3] = np.int64(b[ip + 1])
    out[4] = np.int64(b[ip + 8])
    inner = vx + VXLAN_LEN
    out[5] = udp + ulen - inner
    return inner


# ---------------------------------------------------------------- Python side
def tnl_push_ref(frame, hdr, sport):
    """Twin of tnl_push over bytes."""
    out = bytearray(hdr) + bytes(frame)
    tot = len(frame) + IP_LEN + UDP_LEN + VXLAN_LEN
    struct.pack_into("!H", out, ETH_LEN + 2, tot)
    struct.pack_into("!H", out, ETH_LEN + 10, 0)
    struct.pack_into("!H", out, ETH_LEN + 10, _csum(bytes(out[ETH_LEN:ETH_LEN + IP_LEN])))
    struct.pack_into("!H", out, ETH_LEN + IP_LEN, sport)
    struct.pack_into("!H", out, ETH_LEN + IP_LEN + 4, tot - IP_LEN)
    return bytes(out)


def tnl_pop_ref(frame, dst_port):
    """Twin of tnl_pop: (inner bytes, (vni, src, dst, tos, ttl)) or -E_*."""
    fr = bytes(frame)
    if len(fr) < ETH_LEN + IP_LEN:
        return -E_SHORT
    if fr[12:14] != b"\x08\x00":
        return -E_NOT_IP
    ip = fr[ETH_LEN:]
    ihl, (tot,) = (ip[0] & 15) * 4, struct.unpack_from("!H", ip, 2)
    if ip[0] >> 4 != 4 or ihl < IP_LEN or tot < ihl or tot > len(ip):
        return -E_BAD_IP
    if struct.unpack_from("!H", ip, 6)[0] & 0x3FFF:
        return -E_FRAG
    if ip[9] != 17 or tot - ihl < UDP_LEN or struct.unpack_from("!H", ip, ihl + 2)[0] != dst_port:
        return -E_NOT_UDP
    (ulen,) = struct.unpack_from("!H", ip, ihl + 4)
    if ulen < UDP_LEN + VXLAN_LEN + ETH_LEN or ulen > tot - ihl:
        return -E_BAD_UDP
    vx = ihl + UDP_LEN
    if not ip[vx] & 0x08:
        return -E_NOT_VXLAN
    vni = int.from_bytes(ip[vx + 4:vx + 7], "big")
    meta = (vni, int.from_bytes(ip[12:16], "big"), int.from_bytes(ip[16:20], "big"), ip[1], ip[8])
    return ip[vx + VXLAN_LEN:ihl + ulen], meta


def udp_sport_ref(h):
    return SPORT_MIN + ((((h >> 32) * (SPORT_MAX - SPORT_MIN)) & ((1 << 64) - 1)) >> 32)


def header_words(hdr):
    """The header bytes packed little-endian into int64 words (action programs)."""
    pad = bytes(hdr) + b"\0" * (-len(hdr) % 8)
    return [int.from_bytes(pad[i:i + 8], "little", signed=True) for i in range(0, len(pad), 8)]


def header_bytes(words, n):
    return b"".join(int(w).to_bytes(8, "little", signed=True) for w in words)[:n]
