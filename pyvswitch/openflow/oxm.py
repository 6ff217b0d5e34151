"""OXM and NXM: matches as type-length-value fields, to and from Match.

What: OpenFlow 1.3's OXM and Nicira's NXM share one TLV layout: a 32-bit
header (class 16 bits, field 7, hasmask 1, length 8) then the value and,
if hasmask, a mask of the same size. The (class, field) ids come from the
field table (fields.py `oxm` and `nxm`) plus the protocol-specific port ids
(OXM tcp/udp/sctp_src/dst, NXM udp_src/dst) that all map onto tp_src/tp_dst.

Encoding follows Open vSwitch's field order (nx_put_raw), so what ovs-ofctl
sends re-encodes byte for byte: metadata-ish ids, in_port, Ethernet, VLAN,
L3, L4, ARP, tunnel, registers, mark, conntrack, metadata. In OXM mode a
field with no OXM id goes out under its NXM id (Open vSwitch accepts those in
OpenFlow 1.2+); in NXM mode a field with no NXM id goes out under its OXM id.
The VLAN fields (dl_vlan, dl_vlan_pcp, vlan_tci, vlan_vid, vlan_pcp) are
merged into one TCI first and written as OXM vlan_vid/vlan_pcp or NXM
vlan_tci.

Decoding errors raise wire.OFError: OFPBMC_BAD_LEN (truncated TLV, wrong
length for the field), OFPBMC_BAD_FIELD (unknown class/field),
OFPBMC_BAD_MASK (mask on a non-maskable field), OFPBMC_BAD_WILDCARDS (value
bits outside the mask), OFPBMC_BAD_VALUE (value out of range),
OFPBMC_DUP_FIELD, OFPBMC_BAD_PREREQ. Pure functions; any thread.
"""

import struct

from pyvswitch.datapath import layout
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.wire import EncodeError, OFError

OXM, NX0, NX1 = F.OXM_BASIC, F.NXM_OF, F.NXM_NX
OFPVID_PRESENT = 0x1000

# Wire lengths that differ from ceil(bits / 8).
_LEN = {(OXM, 0): 4, (OXM, 21): 2, (NX0, 15): 2, (OXM, 28): 4, (NX1, 27): 4}
# Extra ids for L4 ports: (class, field) -> (name, required nw_proto).
_PORT_IDS = {
    (OXM, 13): ("tp_src", 6), (OXM, 14): ("tp_dst", 6),
    (OXM, 15): ("tp_src", 17), (OXM, 16): ("tp_dst", 17),
    (OXM, 17): ("tp_src", 132), (OXM, 18): ("tp_dst", 132),
    (NX0, 9): ("tp_src", 6), (NX0, 10): ("tp_dst", 6),
    (NX0, 11): ("tp_src", 17), (NX0, 12): ("tp_dst", 17),
}
_PORT_OUT = {(name, proto, oxm): cf for cf, (name, proto) in _PORT_IDS.items()
             for oxm in (cf[0] == OXM,)}

BY_ID = {}          # (class, field) -> Match field name
for _f in F.FIELD_LIST:
    for _cf in (_f.oxm, _f.nxm):
        if _cf is not None and _f.name not in ("tp_src", "tp_dst"):
            BY_ID[_cf] = _f.name
for _cf, (_name, _) in _PORT_IDS.items():
    BY_ID[_cf] = _name


def wire_len(cf):
    if cf in _LEN:
        return _LEN[cf]
    return (F.FIELDS[BY_ID[cf]].bits + 7) // 8


def pack_header(cf, hasmask, length):
    cls, fid = cf
    return struct.pack("!HBB", cls, (fid << 1) | int(bool(hasmask)), length)


# --- ports ------------------------------------------------------------------------
def port_from32(port, error="OFPBMC_BAD_VALUE"):
    """OpenFlow 1.1+ 32-bit port number -> the 16-bit number used inside."""
    if port < F.OFPP_MAX:
        return port
    if port >= 0xFFFFFF00:
        return port - 0xFFFF0000
    raise OFError(error, f"port {port:#x} out of range")


def port_to32(port):
    return port + 0xFFFF0000 if port >= F.OFPP_MAX else port


# --- decoding -----------------------------------------------------------------------
def decode_tlv(buf, off):
    """(cf, hasmask, value, mask, next offset) of the TLV at `off` (raw ints)."""
    if off + 4 > len(buf):
        raise OFError("OFPBMC_BAD_LEN", "truncated OXM header")
    cls, fh, length = struct.unpack_from("!HBB", buf, off)
    cf, hasmask = (cls, fh >> 1), fh & 1
    end = off + 4 + length
    if end > len(buf):
        raise OFError("OFPBMC_BAD_LEN", "OXM field runs past the match")
    if cls == 0xFFFF:                    # experimenter OXM: unknown to us
        raise OFError("OFPBMC_BAD_FIELD", "experimenter OXM field")
    if cf not in BY_ID:
        raise OFError("OFPBMC_BAD_FIELD", f"unknown field class {cls:#x} id {cf[1]}")
    n = wire_len(cf)
    if length != n * (2 if hasmask else 1):
        raise OFError("OFPBMC_BAD_LEN", f"{BY_ID[cf]}: length {length}")
    value = int.from_bytes(buf[off + 4:off + 4 + n], "big")
    mask = int.from_bytes(buf[off + 4 + n:end], "big") if hasmask else None
    return cf, hasmask, value, mask, end


def field_value(cf, value, mask):
    """(name, value, mask) in Match terms for a decoded TLV (checked)."""
    name = BY_ID[cf]
    fld = F.FIELDS[name]
    if mask is not None and not fld.maskable:
        raise OFError("OFPBMC_BAD_MASK", f"{name} is not maskable")
    if cf == (OXM, 0):
        value = port_from32(value)
    full = fld.all_ones
    if value >> fld.bits or (mask is not None and mask >> fld.bits):
        raise OFError("OFPBMC_BAD_VALUE", f"{name}: value {value:#x} too wide")
    mask = full if mask is None else mask
    if value & ~mask:
        raise OFError("OFPBMC_BAD_WILDCARDS", f"{name}: value bits outside mask")
    return name, value, mask


def decode_fields(buf, off=0, end=None):
    """A Match from the OXM/NXM TLVs in buf[off:end] (prerequisites checked)."""
    end = len(buf) if end is None else end
    buf = bytes(buf[:end])
    items, seen, l4 = {}, set(), []
    while off < end:
        cf, _, value, mask, off = decode_tlv(buf, off)
        if cf in seen:
            raise OFError("OFPBMC_DUP_FIELD", BY_ID[cf])
        seen.add(cf)
        name, value, mask = field_value(cf, value, mask)
        if name in items:
            raise OFError("OFPBMC_DUP_FIELD", name)
        items[name] = (value, mask)
        if cf in _PORT_IDS:
            l4.append(_PORT_IDS[cf][1])
    return _build(items, l4)


def _build(items, l4=()):
    try:
        match = Match(items)
        match.check_prereqs()
    except FlowParseError as e:
        raise OFError(e.code or "OFPBMC_BAD_VALUE", str(e)) from None
    proto = match.get("nw_proto")
    for need in l4:
        if proto is None or proto[0] != need:
            raise OFError("OFPBMC_BAD_PREREQ", f"L4 port needs ip_proto {need}")
    return match


# --- encoding ---------------------------------------------------------------------------
_ORDER = ["dp_hash", "recirc_id", "in_port", "dl_src", "dl_dst", "dl_type",
          "<vlan>", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "ipv6_label",
          "nw_frag", "<tos>", "nw_ecn", "nw_ttl", "nw_proto", "tp_src", "tp_dst",
          "tcp_flags", "icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code",
          "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha", "tun_id",
          "tun_src", "tun_dst", *[f"reg{i}" for i in range(16)], "pkt_mark",
          "ct_state", "ct_zone", "ct_mark", "ct_label", "metadata"]
_VLAN_NAMES = ("dl_vlan", "dl_vlan_pcp", "vlan_tci", "vlan_vid", "vlan_pcp")


def _tlv(cf, value, mask, full):
    n = wire_len(cf)
    if mask == full:
        return pack_header(cf, False, n) + value.to_bytes(n, "big")
    return (pack_header(cf, True, 2 * n) + value.to_bytes(n, "big")
            + mask.to_bytes(n, "big"))


def _cf_for(name, oxm):
    fld = F.FIELDS[name]
    first, second = (fld.oxm, fld.nxm) if oxm else (fld.nxm, fld.oxm)
    cf = first or second
    if cf is None:
        raise EncodeError(f"{name} has no OXM or NXM id")
    return cf


def _vlan_tci(match):
    value = mask = 0
    for name in _VLAN_NAMES:
        vm = match.get(name)
        if vm is None:
            continue
        for _, v, m in F.to_flow(F.FIELDS[name], *vm):
            value, mask = (value & ~m) | v, mask | m
    return value & mask, mask


def _encode_vlan(match, oxm):
    value, mask = _vlan_tci(match)
    if not mask:
        return b""
    if not oxm:
        return _tlv((NX0, 4), value, mask, 0xFFFF)
    vid_bits = layout.VLAN_CFI | 0xFFF
    vid, vmask = value & vid_bits, mask & vid_bits
    out = b""
    if vmask:
        out += _tlv((OXM, 6), vid, vmask, vid_bits)
    pcp_mask = mask >> 13
    if not pcp_mask:
        return out
    if not value & layout.VLAN_CFI and vmask & layout.VLAN_CFI and not value >> 13:
        return out                     # "no VLAN" already says PCP 0
    if pcp_mask != 7 or not value & layout.VLAN_CFI:
        return _tlv((NX0, 4), value, mask, 0xFFFF)   # not expressible in OXM
    out += _tlv((OXM, 7), value >> 13, 7, 7)
    return out


def _dl_type(match):
    vm = match.get("dl_type")
    return vm[0] if vm else None


def encode_fields(match, oxm=True):
    """The TLVs of `match` (OXM ids preferred if `oxm`, else NXM ids)."""
    out = []
    items = dict(match.items())
    is_arp = _dl_type(match) in (F.ETH_ARP, F.ETH_RARP)
    if is_arp:
        for ip_name, arp_name in (("nw_src", "arp_spa"), ("nw_dst", "arp_tpa")):
            if ip_name in items and arp_name not in items:
                items[arp_name] = items.pop(ip_name)
    if "nw_tos" in items or "ip_dscp" in items:
        v, m = items.pop("nw_tos", None) or (items["ip_dscp"][0] << 2, 0xFC)
        items.pop("ip_dscp", None)
        items["<tos>"] = (v & 0xFC, m & 0xFC)
    # every field of the match goes out: the known order first, then the rest
    rest = [n for n in items if n not in _ORDER and n not in _VLAN_NAMES and n != "ip_dscp"]
    for name in _ORDER + sorted(rest):
        if name == "<vlan>":
            out.append(_encode_vlan(match, oxm))
            continue
        if name not in items:
            continue
        value, mask = items[name]
        if name == "<tos>":
            out.append(_tlv((OXM, 8), value >> 2, mask >> 2, 0x3F) if oxm
                       else _tlv((NX0, 5), value, mask, 0xFC))
            continue
        fld = F.FIELDS[name]
        if name in ("tp_src", "tp_dst"):
            proto = match.get("nw_proto")
            key = (name, proto[0] if proto else 6, oxm)
            cf = _PORT_OUT.get(key) or _PORT_OUT.get((name, key[1], not oxm))
            if cf is None:
                raise EncodeError(f"{name} with ip_proto {key[1]}")
        else:
            cf = _cf_for(name, oxm)
        if cf == (OXM, 0):
            value, mask = port_to32(value), 0xFFFFFFFF
            out.append(_tlv(cf, value, mask, 0xFFFFFFFF))
            continue
        out.append(_tlv(cf, value, mask, fld.all_ones))
    return b"".join(out)


def pad8(n):
    return (n + 7) // 8 * 8


# --- OpenFlow 1.3 ofp_match ------------------------------------------------------------
OFPMT_STANDARD, OFPMT_OXM = 0, 1


def decode_match(buf, off):
    """(Match, offset after the padded ofp_match) from buf[off:]."""
    if off + 4 > len(buf):
        raise OFError("OFPBMC_BAD_LEN", "truncated ofp_match")
    mtype, length = struct.unpack_from("!HH", buf, off)
    if mtype != OFPMT_OXM:
        raise OFError("OFPBMC_BAD_TYPE", f"match type {mtype}")
    if length < 4 or off + pad8(length) > len(buf):
        raise OFError("OFPBMC_BAD_LEN", f"match length {length}")
    match = decode_fields(buf, off + 4, off + length)
    return match, off + pad8(length)


def encode_match(match):
    body = encode_fields(match, oxm=True)
    length = 4 + len(body)
    return (struct.pack("!HH", OFPMT_OXM, length) + body
            + bytes(pad8(length) - length))


# --- one field (set_field) --------------------------------------------------------------
def decode_set_field(buf):
    """(name, value) of the single OXM TLV in a set_field action body."""
    try:
        cf, hasmask, value, mask, end = decode_tlv(buf, 0)
    except OFError as e:
        name = "OFPBAC_BAD_SET_TYPE" if e.name == "OFPBMC_BAD_FIELD" else "OFPBAC_BAD_SET_LEN"
        raise OFError(name, e.detail) from None
    if hasmask:
        raise OFError("OFPBAC_BAD_SET_ARGUMENT", "set_field with a mask")
    if any(buf[end:]):
        raise OFError("OFPBAC_BAD_SET_ARGUMENT", "nonzero padding")
    try:
        name, value, _ = field_value(cf, value, None)
    except OFError as e:
        raise OFError("OFPBAC_BAD_SET_ARGUMENT", e.detail) from None
    return name, value


def encode_set_field(name, value, nw_proto=None):
    """An OXM TLV for set_field (padding is the caller's); tp_src/tp_dst go
    out as the TCP, UDP or SCTP field of `nw_proto` (TCP when unknown)."""
    cf = _PORT_OUT.get((name, nw_proto, True)) if name in ("tp_src", "tp_dst") else None
    cf = cf or _cf_for(name, True)
    return _tlv(cf, value, F.FIELDS[name].all_ones, F.FIELDS[name].all_ones)
