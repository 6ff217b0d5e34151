"""OpenFlow 1.0 codec: bytes <-> messages.py objects (version 0x01).

What: `decode_body(mtype, data)` (data = the whole message, header checked
by wire.decode) and `encode(msg, xid)`. The 40-byte ofp_match converts to and
from Match the way Open vSwitch normalises it: fields whose prerequisites
are absent are ignored (dl_type not IP -> nw_* ignored), nw_proto and nw_src
/ nw_dst under dl_type ARP mean arp_op / arp_spa / arp_tpa, tp_* under ICMP
mean icmp_type / icmp_code; the canonical wildcard word for "all" is
0x3820ff (CIDR bits 32, as Open vSwitch writes it). Matches that 1.0 cannot
express (registers, IPv6, masks on MACs) need the Nicira forms (nx.py).

Actions: output (CONTROLLER -> Controller(max_len)), set_vlan_vid,
set_vlan_pcp, strip_vlan, and the Nicira resubmit/resubmit_table/controller;
the other 1.0 actions (set_dl_*, set_nw_*, set_tp_*, enqueue) are refused
with OFPBAC_BAD_TYPE because the switch cannot perform them.

Errors: wire.OFError with the OFPT_ERROR name; EncodeError when an object
has no 1.0 form. Pure functions; any thread.
"""

import struct

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import codec13 as C
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import nx, oxm
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.text import FlowMod
from pyvswitch.openflow.wire import OFP10, EncodeError, OFError, pack_header

VERSION = OFP10
(HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY, VENDOR, FEATURES_REQUEST,
 FEATURES_REPLY, GET_CONFIG_REQUEST, GET_CONFIG_REPLY, SET_CONFIG, PACKET_IN,
 FLOW_REMOVED, PORT_STATUS, PACKET_OUT, FLOW_MOD, PORT_MOD, STATS_REQUEST,
 STATS_REPLY, BARRIER_REQUEST, BARRIER_REPLY) = range(20)
TYPE_NAMES = {
    0: "OFPT_HELLO", 1: "OFPT_ERROR", 2: "OFPT_ECHO_REQUEST",
    3: "OFPT_ECHO_REPLY", 4: "OFPT_VENDOR", 5: "OFPT_FEATURES_REQUEST",
    6: "OFPT_FEATURES_REPLY", 7: "OFPT_GET_CONFIG_REQUEST",
    8: "OFPT_GET_CONFIG_REPLY", 9: "OFPT_SET_CONFIG", 10: "OFPT_PACKET_IN",
    11: "OFPT_FLOW_REMOVED", 12: "OFPT_PORT_STATUS", 13: "OFPT_PACKET_OUT",
    14: "OFPT_FLOW_MOD", 15: "OFPT_PORT_MOD", 16: "OFPT_STATS_REQUEST",
    17: "OFPT_STATS_REPLY", 18: "OFPT_BARRIER_REQUEST",
    19: "OFPT_BARRIER_REPLY", 20: "OFPT_QUEUE_GET_CONFIG_REQUEST",
    21: "OFPT_QUEUE_GET_CONFIG_REPLY",
}
ST_DESC, ST_FLOW, ST_AGGREGATE, ST_TABLE, ST_PORT, ST_QUEUE = range(6)
ST_PORT_DESC, ST_VENDOR = 13, 0xFFFF

# --- match -------------------------------------------------------------------------------
FW_IN_PORT, FW_DL_VLAN, FW_DL_SRC, FW_DL_DST = 1, 2, 4, 8
FW_DL_TYPE, FW_NW_PROTO, FW_TP_SRC, FW_TP_DST = 16, 32, 64, 128
FW_NW_SRC_SHIFT, FW_NW_DST_SHIFT = 8, 14
FW_DL_VLAN_PCP, FW_NW_TOS = 1 << 20, 1 << 21
_MATCH = struct.Struct("!IH6s6sHBxHBB2xIIHH")
MATCH_LEN = _MATCH.size


def _prefix_mask(w, shift):
    n = (w >> shift) & 63
    return 0 if n >= 32 else (0xFFFFFFFF << n) & 0xFFFFFFFF


def decode_match(buf, off=0):
    (w, in_port, dl_src, dl_dst, dl_vlan, pcp, dl_type, tos, proto, nw_src,
     nw_dst, tp_src, tp_dst) = _MATCH.unpack_from(buf, off)
    items = {}
    if not w & FW_IN_PORT:
        items["in_port"] = in_port
    if not w & FW_DL_SRC:
        items["dl_src"] = int.from_bytes(dl_src, "big")
    if not w & FW_DL_DST:
        items["dl_dst"] = int.from_bytes(dl_dst, "big")
    if not w & FW_DL_VLAN:
        if dl_vlan > 0xFFF and dl_vlan != 0xFFFF:
            raise OFError("OFPBMC_BAD_VALUE", f"dl_vlan {dl_vlan}")
        items["dl_vlan"] = dl_vlan
    if not w & FW_DL_VLAN_PCP and items.get("dl_vlan") != 0xFFFF:
        if pcp > 7:
            raise OFError("OFPBMC_BAD_VALUE", f"dl_vlan_pcp {pcp}")
        items["dl_vlan_pcp"] = pcp
    if not w & FW_DL_TYPE:
        items["dl_type"] = dl_type
        if dl_type == F.ETH_IP:
            _decode_ip(w, items, tos, proto, nw_src, nw_dst, tp_src, tp_dst)
        elif dl_type in (F.ETH_ARP, F.ETH_RARP):
            if not w & FW_NW_PROTO:
                if proto > 0xFF:
                    raise OFError("OFPBMC_BAD_VALUE", "arp_op")
                items["arp_op"] = proto
            _decode_nw(w, items, nw_src, nw_dst, "arp_spa", "arp_tpa")
    return oxm._build({k: v if isinstance(v, tuple) else (v, None)
                       for k, v in items.items()})


def _decode_nw(w, items, nw_src, nw_dst, src_name, dst_name):
    for name, value, shift in ((src_name, nw_src, FW_NW_SRC_SHIFT),
                               (dst_name, nw_dst, FW_NW_DST_SHIFT)):
        mask = _prefix_mask(w, shift)
        if mask:
            items[name] = (value & mask, mask)


def _decode_ip(w, items, tos, proto, nw_src, nw_dst, tp_src, tp_dst):
    if not w & FW_NW_TOS:
        items["nw_tos"] = tos & 0xFC
    _decode_nw(w, items, nw_src, nw_dst, "nw_src", "nw_dst")
    if w & FW_NW_PROTO:
        return
    items["nw_proto"] = proto
    if proto in (6, 17, 132):
        names = ("tp_src", "tp_dst")
    elif proto == 1:
        names = ("icmp_type", "icmp_code")
        if (not w & FW_TP_SRC and tp_src > 0xFF) or (not w & FW_TP_DST and tp_dst > 0xFF):
            raise OFError("OFPBMC_BAD_VALUE", "icmp type/code > 255")
    else:
        return
    if not w & FW_TP_SRC:
        items[names[0]] = tp_src
    if not w & FW_TP_DST:
        items[names[1]] = tp_dst


def _exact(match, name):
    vm = match.get(name)
    if vm is None:
        return None
    if vm[1] != F.FIELDS[name].all_ones:
        raise EncodeError(f"{name}: OpenFlow 1.0 cannot mask it")
    return vm[0]


def _prefix_bits(match, names):
    for name in names:
        vm = match.get(name)
        if vm is not None:
            plen = F._prefix_len(vm[1], 32)
            if plen is None:
                raise EncodeError(f"{name}: OpenFlow 1.0 needs a CIDR mask")
            return vm[0], 32 - plen
    return 0, 32


_ENCODABLE = {"in_port", "dl_src", "dl_dst", "dl_vlan", "dl_vlan_pcp", "vlan_tci",
              "vlan_vid", "vlan_pcp", "dl_type", "nw_tos", "ip_dscp", "nw_proto",
              "arp_op", "nw_src", "nw_dst", "arp_spa", "arp_tpa", "tp_src",
              "tp_dst", "icmp_type", "icmp_code"}


def encode_match(match):
    """The 40-byte ofp_match; EncodeError if `match` needs NXM."""
    extra = [name for name, _ in match.items() if name not in _ENCODABLE]
    if extra:
        raise EncodeError(f"OpenFlow 1.0 match cannot hold {', '.join(extra)}")
    w = 0x3FFFFF & ~(63 << FW_NW_SRC_SHIFT) & ~(63 << FW_NW_DST_SHIFT)
    vals = dict(in_port=0, dl_vlan=0, pcp=0, dl_type=0, tos=0, proto=0, tp_src=0,
                tp_dst=0)
    for name, bit, key in (("in_port", FW_IN_PORT, "in_port"),
                           ("dl_type", FW_DL_TYPE, "dl_type")):
        v = _exact(match, name)
        if v is not None:
            w &= ~bit
            vals[key] = v
    macs = {}
    for name, bit in (("dl_src", FW_DL_SRC), ("dl_dst", FW_DL_DST)):
        v = _exact(match, name)
        macs[name] = (v or 0).to_bytes(6, "big")
        if v is not None:
            w &= ~bit
    w = _encode_vlan(match, w, vals)
    tos = _exact(match, "nw_tos")
    if tos is None and _exact(match, "ip_dscp") is not None:
        tos = _exact(match, "ip_dscp") << 2
    if tos is not None:
        w &= ~FW_NW_TOS
        vals["tos"] = tos
    proto = _exact(match, "nw_proto")
    proto = _exact(match, "arp_op") if proto is None else proto
    if proto is not None:
        w &= ~FW_NW_PROTO
        vals["proto"] = proto
    nw_src, src_bits = _prefix_bits(match, ("nw_src", "arp_spa"))
    nw_dst, dst_bits = _prefix_bits(match, ("nw_dst", "arp_tpa"))
    w |= (src_bits << FW_NW_SRC_SHIFT) | (dst_bits << FW_NW_DST_SHIFT)
    for names, bit, key in ((("tp_src", "icmp_type"), FW_TP_SRC, "tp_src"),
                            (("tp_dst", "icmp_code"), FW_TP_DST, "tp_dst")):
        for name in names:
            v = _exact(match, name)
            if v is not None:
                w &= ~bit
                vals[key] = v
    return _MATCH.pack(w, vals["in_port"], macs["dl_src"], macs["dl_dst"],
                       vals["dl_vlan"], vals["pcp"], vals["dl_type"], vals["tos"],
                       vals["proto"], nw_src, nw_dst, vals["tp_src"], vals["tp_dst"])


def _encode_vlan(match, w, vals):
    value, mask = oxm._vlan_tci(match)
    if not mask:
        return w
    cfi = 0x1000
    if value == 0 and mask & cfi:
        if mask & 0xFFF and mask & 0xFFF != 0xFFF:
            raise EncodeError("OpenFlow 1.0 cannot match a partial VLAN id")
        vals["dl_vlan"] = 0xFFFF
        return w & ~FW_DL_VLAN
    if mask & 0x1FFF == 0x1FFF and value & cfi:
        vals["dl_vlan"] = value & 0xFFF
        w &= ~FW_DL_VLAN
    elif mask & 0xFFF:
        raise EncodeError("OpenFlow 1.0 cannot match a partial VLAN id")
    if mask & 0xE000 == 0xE000 and value & cfi:
        vals["pcp"] = value >> 13
        w &= ~FW_DL_VLAN_PCP
    elif mask & 0xE000:
        raise EncodeError("OpenFlow 1.0 cannot match a partial VLAN PCP")
    return w


def _match_or_nxm(match):
    try:
        return encode_match(match), False
    except EncodeError:
        return None, True


# --- actions ------------------------------------------------------------------------------
_VALID_OUT = {F.OFPP_IN_PORT, F.OFPP_TABLE, F.OFPP_NORMAL, F.OFPP_FLOOD, F.OFPP_ALL,
              F.OFPP_CONTROLLER, F.OFPP_LOCAL}


def decode_actions(buf):
    return C.walk_actions(buf, _decode_action)


def _decode_action(atype, length, body):
    if atype == 0:
        _len(length, 8)
        port, max_len = struct.unpack_from("!HH", body)
        return _output(port, max_len)
    if atype == 1:
        _len(length, 8)
        vid = struct.unpack_from("!H", body)[0]
        if vid > 0xFFF:
            raise OFError("OFPBAC_BAD_ARGUMENT", f"vlan vid {vid}")
        return A.SetVlanVid(vid, True)
    if atype == 2:
        _len(length, 8)
        if body[0] > 7:
            raise OFError("OFPBAC_BAD_ARGUMENT", f"vlan pcp {body[0]}")
        return A.SetVlanPcp(body[0], True)
    if atype == 3:
        _len(length, 8)
        return A.StripVlan(False)
    if atype in _LEGACY_SET:
        return _decode_legacy_set(atype, length, body)
    if atype == 0xFFFF:
        return _vendor_action(body)
    raise OFError("OFPBAC_BAD_TYPE", f"action type {atype}")


# OpenFlow 1.0 set actions: type -> (field, spelling, action length, value format)
_LEGACY_SET = {4: ("dl_src", "mod_dl_src", 16, "!6s6x"), 5: ("dl_dst", "mod_dl_dst", 16, "!6s6x"),
               6: ("nw_src", "mod_nw_src", 8, "!I"), 7: ("nw_dst", "mod_nw_dst", 8, "!I"),
               8: ("nw_tos", "mod_nw_tos", 8, "!B3x"), 9: ("tp_src", "mod_tp_src", 8, "!H2x"),
               10: ("tp_dst", "mod_tp_dst", 8, "!H2x")}
_LEGACY_TYPE = {v[1]: k for k, v in _LEGACY_SET.items()}
_LEGACY_FIELD = {v[0]: k for k, v in _LEGACY_SET.items()}


def _decode_legacy_set(atype, length, body):
    name, spelling, want, fmt = _LEGACY_SET[atype]
    _len(length, want)
    value = struct.unpack_from(fmt, body)[0]
    if isinstance(value, bytes):
        value = int.from_bytes(value, "big")
    if name == "nw_tos" and value & 3:
        raise OFError("OFPBAC_BAD_ARGUMENT", f"nw_tos {value:#x} has ECN bits")
    return A.SetField(name, value, F.FIELDS[name].all_ones, spelling)


def _encode_legacy_set(a):
    atype = _LEGACY_TYPE.get(a.spelling) or _LEGACY_FIELD.get(a.field)
    tos = a.field == "nw_tos" and a.mask in (0xFC, 0xFF) and not a.value & 3
    if atype is None or a.spelling == "load" or not (
            tos or (a.field != "nw_tos" and a.mask == F.FIELDS[a.field].all_ones)):
        return None
    _, _, length, fmt = _LEGACY_SET[atype]
    value = a.value.to_bytes(6, "big") if fmt.startswith("!6s") else a.value
    return struct.pack("!HH", atype, length) + struct.pack(fmt, value)


def _len(length, want):
    if length != want:
        raise OFError("OFPBAC_BAD_LEN", f"action length {length}, want {want}")


def _output(port, max_len):
    if port == F.OFPP_CONTROLLER:
        return A.Controller(max_len)
    if port == 0 or (port >= F.OFPP_MAX and port not in _VALID_OUT):
        raise OFError("OFPBAC_BAD_OUT_PORT", f"output port {port:#x}")
    return A.Output(port)


def _vendor_action(body):
    if len(body) < 6:
        raise OFError("OFPBAC_BAD_LEN", "vendor action")
    vendor, subtype = struct.unpack_from("!IH", body)
    if vendor != nx.NX_VENDOR:
        raise OFError("OFPBAC_BAD_EXPERIMENTER", f"vendor {vendor:#x}")
    return nx.decode_action(subtype, body[6:], ACTS)


def encode_actions(actions):
    return b"".join(_encode_action(a) for a in actions)


def _encode_action(a):
    if isinstance(a, A.Output):
        max_len = 0xFFFF if a.port == F.OFPP_CONTROLLER else 0
        return struct.pack("!HHHH", 0, 8, a.port, max_len)
    if isinstance(a, A.Controller) and (a.reason, a.controller_id, a.userdata) == (
            "action", 0, b""):
        return struct.pack("!HHHH", 0, 8, F.OFPP_CONTROLLER, a.max_len)
    if isinstance(a, A.SetVlanVid):
        return struct.pack("!HHH2x", 1, 8, a.vid)
    if isinstance(a, A.SetVlanPcp):
        return struct.pack("!HHB3x", 2, 8, a.pcp)
    if isinstance(a, A.StripVlan):
        return struct.pack("!HH4x", 3, 8)
    if isinstance(a, A.SetField):
        raw = _encode_legacy_set(a)
        if raw is not None:
            return raw
    raw = nx.encode_action(a, ACTS)
    if raw is None:
        raise EncodeError(f"{a.to_text()}: no OpenFlow 1.0 encoding")
    return raw


ACTS = (decode_actions, encode_actions)


# --- messages ---------------------------------------------------------------------------------
def _port(buf, off=0):
    (port_no, hw, name, config, state, curr, adv, sup,
     peer) = C.PORT10.unpack_from(buf, off)
    return M.PortDesc(port_no, int.from_bytes(hw, "big"), C.cstr(name), config,
                      state, curr, adv, sup, peer)


def _pack_port(p):
    return C.PORT10.pack(p.port_no, p.hw_addr.to_bytes(6, "big"), C.bstr(p.name, 16),
                         p.config, p.state, p.curr, p.advertised, p.supported, p.peer)


def _ports(buf):
    if len(buf) % C.PORT10.size:
        raise OFError("OFPBRC_BAD_LEN", "port array")
    return tuple(_port(buf, o) for o in range(0, len(buf), C.PORT10.size))


_FEATURES = struct.Struct("!QIB3xII")
_PACKET_IN = struct.Struct("!IHHBx")
_PACKET_OUT = struct.Struct("!IHH")
_FLOW_MOD = struct.Struct("!QHHHHIHH")
_FLOW_REMOVED = struct.Struct("!QHBxIIH2xQQ")
_PORT_MOD = struct.Struct("!H6sIII4x")


def decode_body(mtype, data, flow_mod_table_id=False):
    """The message in `data` (a whole message). `flow_mod_table_id`: the
    peer enabled NXT_FLOW_MOD_TABLE_ID (a flow mod's command then carries
    the table id in its high byte)."""
    body = data[8:]
    if mtype == FLOW_MOD:
        return _d_flow_mod(body, flow_mod_table_id)
    if mtype == VENDOR:
        return _d_vendor(body, flow_mod_table_id)
    fn = _DECODERS.get(mtype)
    if fn is None:
        raise OFError("OFPBRC_BAD_TYPE", f"message type {mtype}")
    return fn(body)


def _d_features_reply(b):
    C.need(b, _FEATURES.size)
    dpid, nbuf, ntab, caps, acts = _FEATURES.unpack_from(b)
    return M.FeaturesReply(dpid, nbuf, ntab, caps, acts, 0, _ports(b[_FEATURES.size:]))


def _d_packet_in(b):
    C.need(b, _PACKET_IN.size)
    buffer_id, total_len, in_port, reason = _PACKET_IN.unpack_from(b)
    return M.PacketIn(buffer_id, total_len, reason, in_port, b[_PACKET_IN.size:])


def _d_packet_out(b):
    C.need(b, _PACKET_OUT.size)
    buffer_id, in_port, alen = _PACKET_OUT.unpack_from(b)
    end = _PACKET_OUT.size + alen
    if end > len(b):
        raise OFError("OFPBRC_BAD_LEN", "actions past the message")
    if in_port == 0 or (in_port >= F.OFPP_MAX and in_port not in
                        (F.OFPP_LOCAL, F.OFPP_CONTROLLER, F.OFPP_NONE)):
        raise OFError("OFPBRC_BAD_PORT", f"in_port {in_port:#x}")
    return M.PacketOut(buffer_id, in_port, decode_actions(b[_PACKET_OUT.size:end]),
                       b[end:])


def _d_flow_mod(b, table_ext):
    C.need(b, MATCH_LEN + _FLOW_MOD.size)
    match = decode_match(b)
    (cookie, command, idle, hard, priority, buffer_id, out_port,
     flags) = _FLOW_MOD.unpack_from(b, MATCH_LEN)
    actions = decode_actions(b[MATCH_LEN + _FLOW_MOD.size:])
    return nx.flow_mod_fields(command, cookie, 0, idle, hard, priority, buffer_id,
                              out_port, flags, match, actions, table_ext)


def _d_flow_removed(b):
    C.exact(b, MATCH_LEN + _FLOW_REMOVED.size)
    match = decode_match(b)
    (cookie, priority, reason, dsec, dnsec, idle, packets,
     nbytes) = _FLOW_REMOVED.unpack_from(b, MATCH_LEN)
    return M.FlowRemoved(match, cookie, priority, reason, 0, dsec, dnsec, idle, 0,
                         packets, nbytes)


def _d_port_status(b):
    C.exact(b, 8 + C.PORT10.size)
    return M.PortStatus(b[0], _port(b, 8))


def _d_port_mod(b):
    C.exact(b, _PORT_MOD.size)
    port_no, hw, config, mask, adv = _PORT_MOD.unpack(b)
    return M.PortMod(port_no, int.from_bytes(hw, "big"), config, mask, adv)


def _d_vendor(b, table_ext):
    C.need(b, 4)
    vendor = struct.unpack_from("!I", b)[0]
    if vendor == nx.NX_VENDOR and len(b) >= 8:
        return nx.decode_message(struct.unpack_from("!I", b, 4)[0], b[8:], ACTS,
                                 table_ext)
    exp_type = struct.unpack_from("!I", b, 4)[0] if len(b) >= 8 else 0
    return M.Experimenter(vendor, exp_type, b[8:])


_DECODERS = {
    HELLO: C.decode_hello_body, ERROR: lambda b: C.decode_error_body(b, OFP10),
    ECHO_REQUEST: lambda b: M.EchoRequest(b), ECHO_REPLY: lambda b: M.EchoReply(b),
    FEATURES_REQUEST: C.empty(M.FeaturesRequest), FEATURES_REPLY: _d_features_reply,
    GET_CONFIG_REQUEST: C.empty(M.GetConfigRequest),
    GET_CONFIG_REPLY: C.config(M.GetConfigReply), SET_CONFIG: C.config(M.SetConfig),
    PACKET_IN: _d_packet_in, FLOW_REMOVED: _d_flow_removed,
    PORT_STATUS: _d_port_status, PACKET_OUT: _d_packet_out,
    PORT_MOD: _d_port_mod,
    STATS_REQUEST: lambda b: _d_stats(b, True),
    STATS_REPLY: lambda b: _d_stats(b, False),
    BARRIER_REQUEST: C.empty(M.BarrierRequest),
    BARRIER_REPLY: C.empty(M.BarrierReply),
}


# --- stats ----------------------------------------------------------------------------------
_FLOW_STATS_REQ = struct.Struct("!BxH")
_FLOW_STATS = struct.Struct("!HBx")
_FLOW_STATS2 = struct.Struct("!IIHHH6xQQQ")
_TABLE_STATS = struct.Struct("!B3x32sIIIQQ")
_PORT_STATS = struct.Struct("!H6x12Q")


def _d_stats(b, request):
    C.need(b, 4)
    stype, flags = struct.unpack_from("!HH", b)
    body = b[4:]
    if stype == ST_VENDOR:
        C.need(body, 12)
        vendor, subtype = struct.unpack_from("!II", body)
        if vendor != nx.NX_VENDOR:
            raise OFError("OFPBRC_BAD_EXPERIMENTER", f"stats vendor {vendor:#x}")
        if request:
            return nx.decode_stats_request(subtype, body[12:], flags)
        return nx.decode_stats_reply(subtype, body[12:], flags, ACTS)
    table = _STATS_REQ if request else _STATS_REP
    fn = table.get(stype)
    if fn is None:
        raise OFError("OFPBRC_BAD_MULTIPART", f"stats type {stype}")
    return fn(body, flags)


def _d_flow_req(cls):
    def decode(b, flags):
        C.exact(b, MATCH_LEN + 4)
        match = decode_match(b)
        table, out_port = _FLOW_STATS_REQ.unpack_from(b, MATCH_LEN)
        return cls(match, None if table == 255 else table,
                   None if out_port == F.OFPP_NONE else out_port, flags=flags)
    return decode


def _d_flow_stats(b, flags):
    flows, off = [], 0
    fixed = _FLOW_STATS.size + MATCH_LEN + _FLOW_STATS2.size
    while off < len(b):
        C.need(b[off:], fixed)
        length, table_id = _FLOW_STATS.unpack_from(b, off)
        if length < fixed or off + length > len(b):
            raise OFError("OFPBRC_BAD_LEN", f"flow stats length {length}")
        match = decode_match(b, off + 4)
        (dsec, dnsec, priority, idle, hard, cookie, packets,
         nbytes) = _FLOW_STATS2.unpack_from(b, off + 4 + MATCH_LEN)
        actions = decode_actions(b[off + fixed:off + length])
        flows.append(M.FlowStats(table_id, match, priority, actions, dsec, dnsec,
                                 idle, hard, cookie, packets, nbytes))
        off += length
    return M.FlowStatsReply(tuple(flows), flags)


def _d_table_stats(b, flags):
    if len(b) % _TABLE_STATS.size:
        raise OFError("OFPBRC_BAD_LEN", "table stats")
    out = []
    for off in range(0, len(b), _TABLE_STATS.size):
        tid, name, wc, maxe, active, lookup, matched = _TABLE_STATS.unpack_from(b, off)
        out.append(M.TableStats(tid, active, lookup, matched, C.cstr(name), wc, maxe))
    return M.TableStatsReply(tuple(out), flags)


def _d_port_stats(b, flags):
    if len(b) % _PORT_STATS.size:
        raise OFError("OFPBRC_BAD_LEN", "port stats")
    out = []
    for off in range(0, len(b), _PORT_STATS.size):
        port_no, *counters = _PORT_STATS.unpack_from(b, off)
        out.append(M.PortStats(port_no, *counters))
    return M.PortStatsReply(tuple(out), flags)


def _d_port_stats_req(b, flags):
    C.exact(b, 8)
    return M.PortStatsRequest(struct.unpack_from("!H", b)[0], flags)


_STATS_REQ = {
    ST_DESC: C.no_body(M.DescRequest), ST_FLOW: _d_flow_req(M.FlowStatsRequest),
    ST_AGGREGATE: _d_flow_req(M.AggregateStatsRequest),
    ST_TABLE: C.no_body(M.TableStatsRequest), ST_PORT: _d_port_stats_req,
    ST_PORT_DESC: C.no_body(M.PortDescRequest),
}
_STATS_REP = {
    ST_DESC: C.decode_desc, ST_FLOW: _d_flow_stats,
    ST_AGGREGATE: C.decode_aggregate, ST_TABLE: _d_table_stats,
    ST_PORT: _d_port_stats,
    ST_PORT_DESC: lambda b, flags: M.PortDescReply(_ports(b), flags),
}


# --- encoding ---------------------------------------------------------------------------------
def encode(msg, xid=0):
    fn = _ENCODERS.get(type(msg))
    if fn is None:
        raise EncodeError(f"{type(msg).__name__} has no OpenFlow 1.0 form")
    mtype, body = fn(msg)
    if 8 + len(body) > 0xFFFF:
        raise EncodeError("message longer than 65535 bytes")
    return pack_header(OFP10, mtype, 8 + len(body), xid) + body


def _vendor(msg):
    sub, body = nx.encode_message(msg, ACTS)
    return VENDOR, struct.pack("!II", nx.NX_VENDOR, sub) + body


def _e_flow_mod(fm):
    if fm.write_actions is not None or fm.clear_actions or fm.write_metadata \
            or fm.meter is not None:
        raise EncodeError("OpenFlow 1.3 instructions in an OpenFlow 1.0 flow mod")
    match, use_nxm = _match_or_nxm(fm.match)
    if use_nxm or fm.cookie_mask:          # 1.0 has no cookie mask: NXM_NX_COOKIE_W
        return _vendor(fm)
    command = nx.FM_COMMANDS.index(fm.command) | ((fm.table or 0) << 8)
    return FLOW_MOD, match + _FLOW_MOD.pack(
        fm.cookie or 0, command, fm.idle_timeout, fm.hard_timeout, fm.priority,
        fm.buffer_id, F.OFPP_NONE if fm.out_port is None else fm.out_port,
        nx.flags_to_bits(fm.flags)) + encode_actions(fm.actions)


def _e_flow_removed(m):
    match, use_nxm = _match_or_nxm(m.match)
    if m.nxm or use_nxm:
        return _vendor(M.FlowRemoved(**{**m.__dict__, "nxm": True}))
    return FLOW_REMOVED, match + _FLOW_REMOVED.pack(
        m.cookie, m.priority, m.reason, m.duration_sec, m.duration_nsec,
        m.idle_timeout, m.packet_count, m.byte_count)


def _e_packet_out(m):
    acts = encode_actions(m.actions)
    return PACKET_OUT, _PACKET_OUT.pack(m.buffer_id, m.in_port, len(acts)) + acts + m.data


def _e_stats(stype, flags, body, request):
    return (STATS_REQUEST if request else STATS_REPLY,
            struct.pack("!HH", stype, flags) + body)


def _e_nx_stats(msg, request):
    if request:
        sub, body = nx.encode_stats_request(msg)
    else:
        sub, body = nx.encode_stats_reply(msg, ACTS)
    return _e_stats(ST_VENDOR, msg.flags, struct.pack("!II4x", nx.NX_VENDOR, sub)
                    + body, request)


def _e_flow_req(stype):
    def encode(m):
        if m.nxm:
            return _e_nx_stats(m, True)
        match = encode_match(m.match)
        return _e_stats(stype, m.flags, match + _FLOW_STATS_REQ.pack(
            255 if m.table is None else m.table,
            F.OFPP_NONE if m.out_port is None else m.out_port), True)
    return encode


def _e_flow_stats(m):
    if m.nxm:
        return _e_nx_stats(m, False)
    out = []
    for f in m.flows:
        acts = encode_actions(f.actions)
        entry = encode_match(f.match) + _FLOW_STATS2.pack(
            f.duration_sec, f.duration_nsec, f.priority, f.idle_timeout,
            f.hard_timeout, f.cookie, f.packet_count, f.byte_count) + acts
        out.append(_FLOW_STATS.pack(4 + len(entry), f.table_id) + entry)
    return _e_stats(ST_FLOW, m.flags, b"".join(out), False)


def _e_aggregate(m):
    if m.nxm:
        return _e_nx_stats(m, False)
    return _e_stats(ST_AGGREGATE, m.flags, C.AGGREGATE.pack(
        m.packet_count, m.byte_count, m.flow_count), False)




_ENCODERS = {
    M.Hello: lambda m: (HELLO, C.encode_hello_body(m)),
    M.Error: lambda m: (ERROR, C.encode_error_body(m, OFP10)),
    M.EchoRequest: lambda m: (ECHO_REQUEST, m.data),
    M.EchoReply: lambda m: (ECHO_REPLY, m.data),
    M.Experimenter: lambda m: (VENDOR, struct.pack("!II", m.experimenter,
                                                   m.exp_type) + m.data),
    M.FeaturesRequest: lambda m: (FEATURES_REQUEST, b""),
    M.FeaturesReply: lambda m: (FEATURES_REPLY, _FEATURES.pack(
        m.datapath_id, m.n_buffers, m.n_tables, m.capabilities, m.actions)
        + b"".join(_pack_port(p) for p in m.ports)),
    M.GetConfigRequest: lambda m: (GET_CONFIG_REQUEST, b""),
    M.GetConfigReply: lambda m: (GET_CONFIG_REPLY, C.CONFIG.pack(m.flags, m.miss_send_len)),
    M.SetConfig: lambda m: (SET_CONFIG, C.CONFIG.pack(m.flags, m.miss_send_len)),
    M.PacketIn: lambda m: (PACKET_IN, _PACKET_IN.pack(
        m.buffer_id, m.total_len, m.in_port, m.reason) + m.data),
    M.FlowRemoved: _e_flow_removed,
    M.PortStatus: lambda m: (PORT_STATUS, struct.pack("!B7x", m.reason)
                             + _pack_port(m.desc)),
    M.PacketOut: _e_packet_out,
    FlowMod: _e_flow_mod,
    M.PortMod: lambda m: (PORT_MOD, _PORT_MOD.pack(
        m.port_no, m.hw_addr.to_bytes(6, "big"), m.config, m.mask, m.advertise)),
    M.BarrierRequest: lambda m: (BARRIER_REQUEST, b""),
    M.BarrierReply: lambda m: (BARRIER_REPLY, b""),
    M.RoleRequest: _vendor, M.RoleReply: _vendor, M.SetFlowFormat: _vendor,
    M.FlowModTableId: _vendor, M.SetPacketInFormat: _vendor, M.SetAsync: _vendor,
    M.GroupMod: _vendor,
    M.DescRequest: lambda m: _e_stats(ST_DESC, m.flags, b"", True),
    M.DescReply: lambda m: _e_stats(ST_DESC, m.flags, C.encode_desc(m), False),
    M.FlowStatsRequest: _e_flow_req(ST_FLOW),
    M.AggregateStatsRequest: _e_flow_req(ST_AGGREGATE),
    M.FlowStatsReply: _e_flow_stats,
    M.AggregateStatsReply: _e_aggregate,
    M.TableStatsRequest: lambda m: _e_stats(ST_TABLE, m.flags, b"", True),
    M.TableStatsReply: lambda m: _e_stats(ST_TABLE, m.flags, b"".join(
        _TABLE_STATS.pack(t.table_id, C.bstr(t.name, 32), t.wildcards, t.max_entries,
                          t.active_count, t.lookup_count, t.matched_count)
        for t in m.tables), False),
    M.PortStatsRequest: lambda m: _e_stats(ST_PORT, m.flags,
                                           struct.pack("!H6x", m.port_no), True),
    M.PortStatsReply: lambda m: _e_stats(ST_PORT, m.flags, b"".join(
        _PORT_STATS.pack(p.port_no, *(getattr(p, c) for c in M.PORT_COUNTERS))
        for p in m.ports), False),
    M.PortDescRequest: lambda m: _e_stats(ST_PORT_DESC, m.flags, b"", True),
    M.PortDescReply: lambda m: _e_stats(ST_PORT_DESC, m.flags, b"".join(
        _pack_port(p) for p in m.ports), False),
    M.GroupDescRequest: lambda m: _e_nx_stats(m, True),
    M.GroupDescReply: lambda m: _e_nx_stats(m, False),
    M.GroupStatsRequest: lambda m: _e_nx_stats(m, True),
    M.GroupStatsReply: lambda m: _e_nx_stats(m, False),
}
