"""parse: frames in pool slots -> flow keys (datapath/layout.py).

What is parsed (the specification; `parse_packet_ref` says it again in
struct-and-dict Python and the hypothesis tests hold the two equal):
- Ethernet: fewer than 14 bytes -> only in_port is set. dl_dst, dl_src, then
  one 802.1Q tag (TPID 0x8100): vlan_tci = wire TCI | 0x1000 and dl_type = the
  inner ethertype; a truncated tag or a second tag leaves dl_type = 0x8100 and
  stops. An 802.3 length (< 0x600) gives dl_type 0x05ff and stops.
- ARP: 28 bytes, Ethernet/IPv4 only; nw_proto = opcode when <= 0xff, nw_src/
  nw_dst = sender/target IP, arp_sha/arp_tha.
- IPv4: version 4, 5 <= IHL, IHL*4 <= total length <= bytes present (anything
  else: stop after dl_type). nw_tos is the whole TOS byte. nw_frag FRAG_ANY for
  MF or offset != 0, FRAG_LATER for offset != 0 (no L4 then). L4 ends at the
  IP total length (Ethernet padding ignored).
- IPv6: version 6, payload length <= bytes present. nw_tos = traffic class,
  ipv6_label, nw_ttl = hop limit. Up to MAX_EXT extension headers (hop-by-hop,
  routing, destination options, AH, fragment) are skipped; a truncated one, or
  one more than MAX_EXT, ends parsing with nw_proto = that header's number.
  Fragment header: as IPv4, nw_proto = its next header.
- L4: TCP (20 bytes, data offset 5..bytes present): ports, tcp_flags = low 12
  bits of the offset/flags word; UDP (8), SCTP (12): ports; ICMP over IPv4
  and ICMPv6 over IPv6 (4 bytes): tp_src = type, tp_dst = code; ICMPv6
  neighbour solicitation/advertisement (type 135/136, 24 bytes): nd_target.
  A truncated L4 header leaves the L4 fields zero.

The kernel reads only bytes [off, off+length) of the slot, clamped to the slot;
it never raises on garbage. Called from the PMD loop (and the twin from tests).
"""

import struct

import numpy as np

from pyvswitch.core.jit import kernel
from pyvswitch.datapath import layout as L
from pyvswitch.datapath.layout import KEY_WORDS

MAX_EXT = 8
ETH_VLAN = 0x8100
ETH_ARP = 0x0806
ETH_IP = 0x0800
ETH_IPV6 = 0x86DD
DL_TYPE_NONE = 0x05FF


@kernel(nrt=False)
def _be16(b, p):
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@kernel(nrt=False)
def _be32(b, p):
    return (_be16(b, p) << 16) | _be16(b, p + 2)


@kernel(nrt=False)
def _be48(b, p):
    return (_be16(b, p) << 32) | _be32(b, p + 2)


@kernel(nrt=False)
def _be64(b, p):
    v = np.uint64(0)
    for i in range(8):
        v = (v << np.uint64(8)) | np.uint64(b[p + i])
    return v


@kernel(nrt=False)
def _put(key, w, s, v):
    key[w] = key[w] | (np.uint64(v) << np.uint64(s))


@kernel(nrt=False)
def _parse_l4(b, p, end, proto, is_v6, key):
    n = end - p
    if proto == 6:
        if n >= 20:
            hl = (np.int64(b[p + 12]) >> 4) * 4
            if hl >= 20 and hl <= n:
                _put(key, L.W_TP, L.S_TP_SRC, _be16(b, p))
                _put(key, L.W_TP, L.S_TP_DST, _be16(b, p + 2))
                _put(key, L.W_TCP_FLAGS, L.S_TCP_FLAGS, _be16(b, p + 12) & 0x0FFF)
    elif proto == 17 or proto == 132:
        if n >= (8 if proto == 17 else 12):
            _put(key, L.W_TP, L.S_TP_SRC, _be16(b, p))
            _put(key, L.W_TP, L.S_TP_DST, _be16(b, p + 2))
    elif (proto == 1 and not is_v6) or (proto == 58 and is_v6):
        if n >= 4:
            _put(key, L.W_TP, L.S_TP_SRC, np.int64(b[p]))
            _put(key, L.W_TP, L.S_TP_DST, np.int64(b[p + 1]))
            # neighbour solicitation / advertisement: the target address
            if is_v6 and (b[p] == 135 or b[p] == 136) and n >= 24:
                key[L.W_ND_TARGET_HI] = _be64(b, p + 8)
                key[L.W_ND_TARGET_LO] = _be64(b, p + 16)


@kernel(nrt=False)
def _parse_ipv4(b, p, end, key):
    if end - p < 20 or (b[p] >> 4) != 4:
        return
    ihl = np.int64(b[p] & 15) * 4
    tot = _be16(b, p + 2)
    if ihl < 20 or tot < ihl or tot > end - p:
        return
    _put(key, L.W_NW_ADDR, L.S_NW_SRC, _be32(b, p + 12))
    _put(key, L.W_NW_ADDR, L.S_NW_DST, _be32(b, p + 16))
    proto = np.int64(b[p + 9])
    _put(key, L.W_NW_PROTO, L.S_NW_PROTO, proto)
    _put(key, L.W_NW_TOS, L.S_NW_TOS, np.int64(b[p + 1]))
    _put(key, L.W_NW_TTL, L.S_NW_TTL, np.int64(b[p + 8]))
    fo = _be16(b, p + 6)
    if fo & 0x3FFF:
        frag = L.FRAG_ANY
        if fo & 0x1FFF:
            frag |= L.FRAG_LATER
        _put(key, L.W_NW_FRAG, L.S_NW_FRAG, frag)
        if frag & L.FRAG_LATER:
            return
    _parse_l4(b, p + ihl, p + tot, proto, False, key)


@kernel(nrt=False)
def _parse_ipv6(b, p, end, key):
    if end - p < 40 or (b[p] >> 4) != 6:
        return
    plen = _be16(b, p + 4)
    if plen > end - p - 40:
        return
    end = p + 40 + plen
    w = _be32(b, p)
    _put(key, L.W_NW_TOS, L.S_NW_TOS, (w >> 20) & 0xFF)
    _put(key, L.W_IPV6_LABEL, 0, w & 0xFFFFF)
    _put(key, L.W_NW_TTL, L.S_NW_TTL, np.int64(b[p + 7]))
    key[L.W_IPV6_SRC_HI] = _be64(b, p + 8)
    key[L.W_IPV6_SRC_LO] = _be64(b, p + 16)
    key[L.W_IPV6_DST_HI] = _be64(b, p + 24)
    key[L.W_IPV6_DST_LO] = _be64(b, p + 32)
    nh = np.int64(b[p + 6])
    q = p + 40
    frag = 0
    l4 = True
    for i in range(MAX_EXT + 1):
        if nh != 0 and nh != 43 and nh != 60 and nh != 51 and nh != 44:
            break
        if i == MAX_EXT or end - q < 8:
            l4 = False
            break
        if nh == 44:
            fo = _be16(b, q + 2)
            if fo & 0xFFF9:
                frag = L.FRAG_ANY
                if fo & 0xFFF8:
                    frag |= L.FRAG_LATER
            hl = 8
        elif nh == 51:
            hl = (np.int64(b[q + 1]) + 2) * 4
        else:
            hl = (np.int64(b[q + 1]) + 1) * 8
        if hl > end - q:
            l4 = False
            break
        nh = np.int64(b[q])
        q += hl
        if frag & L.FRAG_LATER:
            l4 = False
            break
    _put(key, L.W_NW_PROTO, L.S_NW_PROTO, nh)
    _put(key, L.W_NW_FRAG, L.S_NW_FRAG, frag)
    if l4:
        _parse_l4(b, q, end, nh, True, key)


# Words parsing assigns whole (not OR-ed in): they must hold no metadata, or
# reparse_frame would overwrite it.
for _w in (L.W_DL_DST, L.W_DL_SRC, L.W_IPV6_SRC_HI, L.W_IPV6_SRC_LO, L.W_IPV6_DST_HI,
           L.W_IPV6_DST_LO, L.W_ARP_SHA, L.W_ARP_THA, L.W_ND_TARGET_HI, L.W_ND_TARGET_LO):
    assert L.META_MASK[_w] == 0, _w


@kernel(nrt=False)
def parse_frame(b, off, length, in_port, key):
    """Fill key (uint64[KEY_WORDS]) from frame b[off:off+length]."""
    for w in range(KEY_WORDS):
        key[w] = np.uint64(0)
    _put(key, L.W_IN_PORT, L.S_IN_PORT, in_port & 0xFFFF)
    _parse_headers(b, off, length, key)


@kernel(nrt=False)
def meta_of(src, key):
    """key = src's metadata bits (layout.META_MASK: in_port, recirc_id, ct_*,
    tun_*, ...), every header bit zero: what reparse_frame starts from.
    One whole-word store per word: an AND in place compiles to narrower
    stores (dp_hash's word: 4 bytes), and the hash's full-word load of that
    word then waits for them (a store-forwarding stall, ~15 cycles a packet)."""
    for w in range(KEY_WORDS):
        key[w] = src[w] & L.META_MASK[w]


@kernel(nrt=False)
def reparse_frame(b, off, length, key):
    """A recirculated packet's key: key holds its metadata (meta_of), every
    other field is parsed again from b[off:off+length]. The same as
    parse_frame into a scratch key merged under META_MASK."""
    _parse_headers(b, off, length, key)


@kernel(nrt=False)
def _parse_headers(b, off, length, key):
    """OR the header fields of b[off:off+length] into key, whose header bits
    are zero."""
    if off < 0 or length <= 0 or off >= b.shape[0]:
        return
    end = off + min(length, b.shape[0] - off)
    if end - off < 14:
        return
    key[L.W_DL_DST] = np.uint64(_be48(b, off))
    key[L.W_DL_SRC] = np.uint64(_be48(b, off + 6))
    p = off + 14
    et = _be16(b, off + 12)
    if et == ETH_VLAN:
        if end - p < 4:
            _put(key, L.W_DL_TYPE, L.S_DL_TYPE, et)
            return
        _put(key, L.W_VLAN_TCI, L.S_VLAN_TCI, _be16(b, p) | L.VLAN_CFI)
        et = _be16(b, p + 2)
        p += 4
    if et < 0x600:
        et = DL_TYPE_NONE
    _put(key, L.W_DL_TYPE, L.S_DL_TYPE, et)
    if et == ETH_IP:
        _parse_ipv4(b, p, end, key)
    elif et == ETH_IPV6:
        _parse_ipv6(b, p, end, key)
    elif et == ETH_ARP and end - p >= 28:
        if _be16(b, p) == 1 and _be16(b, p + 2) == ETH_IP and b[p + 4] == 6 and b[p + 5] == 4:
            op = _be16(b, p + 6)
            if op <= 0xFF:
                _put(key, L.W_NW_PROTO, L.S_NW_PROTO, op)
            key[L.W_ARP_SHA] = np.uint64(_be48(b, p + 8))
            _put(key, L.W_NW_ADDR, L.S_NW_SRC, _be32(b, p + 14))
            key[L.W_ARP_THA] = np.uint64(_be48(b, p + 18))
            _put(key, L.W_NW_ADDR, L.S_NW_DST, _be32(b, p + 24))


@kernel(nrt=False)
def parse_burst(pool, slots, offs, lens, n, in_port, keys):
    """keys[i] = key of pool[slots[i], offs[i]:offs[i]+lens[i]] for i < n."""
    for i in range(n):
        parse_frame(pool[slots[i]], offs[i], lens[i], in_port, keys[i])


# ---------------------------------------------------------------- the twin --

def parse_packet_ref(frame, in_port=0):
    """Reference twin: the key of `frame` (bytes), built with struct + pack_key."""
    f = {"in_port": in_port & 0xFFFF}
    if len(frame) >= 14:
        _eth_ref(bytes(frame), f)
    return L.pack_key(f)


def _eth_ref(fr, f):
    f["dl_dst"] = int.from_bytes(fr[0:6], "big")
    f["dl_src"] = int.from_bytes(fr[6:12], "big")
    (et,) = struct.unpack_from("!H", fr, 12)
    rest = fr[14:]
    if et == ETH_VLAN:
        if len(rest) < 4:
            f["dl_type"] = et
            return
        tci, et = struct.unpack_from("!HH", rest)
        f["vlan_tci"] = tci | L.VLAN_CFI
        rest = rest[4:]
    f["dl_type"] = et if et >= 0x600 else DL_TYPE_NONE
    if et == ETH_IP:
        _ipv4_ref(rest, f)
    elif et == ETH_IPV6:
        _ipv6_ref(rest, f)
    elif et == ETH_ARP and len(rest) >= 28:
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", rest)
        if (htype, ptype, hlen, plen) == (1, ETH_IP, 6, 4):
            if op <= 0xFF:
                f["nw_proto"] = op
            f["arp_sha"] = int.from_bytes(rest[8:14], "big")
            f["nw_src"] = int.from_bytes(rest[14:18], "big")
            f["arp_tha"] = int.from_bytes(rest[18:24], "big")
            f["nw_dst"] = int.from_bytes(rest[24:28], "big")


def _ipv4_ref(ip, f):
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return
    ihl = (ip[0] & 15) * 4
    tos, tot, _id, fo, ttl, proto = struct.unpack_from("!xBHHHBB", ip)
    if ihl < 20 or tot < ihl or tot > len(ip):
        return
    f.update(nw_src=int.from_bytes(ip[12:16], "big"), nw_dst=int.from_bytes(ip[16:20], "big"),
             nw_proto=proto, nw_tos=tos, nw_ttl=ttl)
    more, offset = fo & 0x2000, fo & 0x1FFF
    if more or offset:
        f["nw_frag"] = L.FRAG_ANY | (L.FRAG_LATER if offset else 0)
        if offset:
            return
    _l4_ref(ip[ihl:tot], proto, False, f)


def _ipv6_ref(ip, f):
    if len(ip) < 40 or ip[0] >> 4 != 6:
        return
    (word, plen, nh, hlim) = struct.unpack_from("!IHBB", ip)
    if plen > len(ip) - 40:
        return
    f.update(nw_tos=(word >> 20) & 0xFF, ipv6_label=word & 0xFFFFF, nw_ttl=hlim)
    for name, at in (("ipv6_src_hi", 8), ("ipv6_src_lo", 16), ("ipv6_dst_hi", 24), ("ipv6_dst_lo", 32)):
        f[name] = int.from_bytes(ip[at:at + 8], "big")
    data = ip[40:40 + plen]
    frag, count, l4 = 0, 0, True
    while nh in (0, 43, 60, 51, 44):
        if count == MAX_EXT or len(data) < 8:
            l4 = False
            break
        if nh == 44:
            (fo,) = struct.unpack_from("!H", data, 2)
            offset, more = fo >> 3, fo & 1
            if offset or more:
                frag = L.FRAG_ANY | (L.FRAG_LATER if offset else 0)
            hlen = 8
        elif nh == 51:
            hlen = (data[1] + 2) * 4
        else:
            hlen = (data[1] + 1) * 8
        if hlen > len(data):
            l4 = False
            break
        nh, data, count = data[0], data[hlen:], count + 1
        if frag & L.FRAG_LATER:
            l4 = False
            break
    f["nw_proto"], f["nw_frag"] = nh, frag
    if l4:
        _l4_ref(data, nh, True, f)


def _l4_ref(seg, proto, v6, f):
    if proto == 6 and len(seg) >= 20:
        src, dst, _s, _a, offflags = struct.unpack_from("!HHIIH", seg)
        if 20 <= (offflags >> 12) * 4 <= len(seg):
            f.update(tp_src=src, tp_dst=dst, tcp_flags=offflags & 0x0FFF)
    elif proto in (17, 132) and len(seg) >= (8 if proto == 17 else 12):
        f["tp_src"], f["tp_dst"] = struct.unpack_from("!HH", seg)
    elif ((proto == 1 and not v6) or (proto == 58 and v6)) and len(seg) >= 4:
        f["tp_src"], f["tp_dst"] = seg[0], seg[1]
        if v6 and seg[0] in (135, 136) and len(seg) >= 24:
            f["nd_target_hi"], f["nd_target_lo"] = struct.unpack_from("!QQ", seg, 8)
