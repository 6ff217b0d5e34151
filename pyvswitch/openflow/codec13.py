"""OpenFlow 1.3 codec: bytes <-> messages.py objects (version 0x04).

What: `decode_body(mtype, data)` (data = the whole message, header checked
by wire.decode) and `encode(msg, xid)`, plus the bodies both versions share
(hello with its version bitmap, error, echo, config, desc, aggregate).

Translation rules:
- ports: 32-bit on the wire, 16-bit inside (0xffffff00+ <-> 0xff00+).
- matches: OXM (oxm.py). Packet-in's in_port travels in its match.
- instructions of a flow mod or flow stats: apply-actions -> `actions`,
  goto-table -> a final GotoTable action, write-actions, clear-actions,
  write-metadata and meter -> FlowMod's fields of those names.
- actions: output, group, push_vlan, pop_vlan, set_field on vlan_vid /
  vlan_pcp, Nicira resubmit/controller. mod_vlan_vid / mod_vlan_pcp (push a
  tag if needed) go out, as Open vSwitch writes them, as push_vlan + set_field
  when the match does not already require a tag.
- table features properties are kept raw ((type, payload) pairs).
- multipart request and reply bodies: mp13.py.

Errors: wire.OFError with the OFPT_ERROR name; EncodeError when an object
has no 1.3 form. Pure functions; any thread.
"""

import struct

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import nx, oxm
from pyvswitch.openflow.text import FlowMod
from pyvswitch.openflow.wire import OFP13, EncodeError, OFError, pack_header

VERSION = OFP13
TYPE_NAMES = {
    0: "OFPT_HELLO", 1: "OFPT_ERROR", 2: "OFPT_ECHO_REQUEST", 3: "OFPT_ECHO_REPLY",
    4: "OFPT_EXPERIMENTER", 5: "OFPT_FEATURES_REQUEST", 6: "OFPT_FEATURES_REPLY",
    7: "OFPT_GET_CONFIG_REQUEST", 8: "OFPT_GET_CONFIG_REPLY", 9: "OFPT_SET_CONFIG",
    10: "OFPT_PACKET_IN", 11: "OFPT_FLOW_REMOVED", 12: "OFPT_PORT_STATUS",
    13: "OFPT_PACKET_OUT", 14: "OFPT_FLOW_MOD", 15: "OFPT_GROUP_MOD",
    16: "OFPT_PORT_MOD", 17: "OFPT_TABLE_MOD", 18: "OFPT_MULTIPART_REQUEST",
    19: "OFPT_MULTIPART_REPLY", 20: "OFPT_BARRIER_REQUEST",
    21: "OFPT_BARRIER_REPLY", 22: "OFPT_QUEUE_GET_CONFIG_REQUEST",
    23: "OFPT_QUEUE_GET_CONFIG_REPLY", 24: "OFPT_ROLE_REQUEST",
    25: "OFPT_ROLE_REPLY", 26: "OFPT_GET_ASYNC_REQUEST", 27: "OFPT_GET_ASYNC_REPLY",
    28: "OFPT_SET_ASYNC", 29: "OFPT_METER_MOD",
}
T = {v[5:]: k for k, v in TYPE_NAMES.items()}
MP_NAMES = {0: "DESC", 1: "FLOW", 2: "AGGREGATE", 3: "TABLE", 4: "PORT_STATS",
            5: "QUEUE", 6: "GROUP", 7: "GROUP_DESC", 8: "GROUP_FEATURES",
            9: "METER", 10: "METER_CONFIG", 11: "METER_FEATURES",
            12: "TABLE_FEATURES", 13: "PORT_DESC", 0xFFFF: "EXPERIMENTER"}
MP = {v: k for k, v in MP_NAMES.items()}


# --- shared helpers (codec10 uses them too) -------------------------------------------
def need(b, n):
    if len(b) < n:
        raise OFError("OFPBRC_BAD_LEN", f"{len(b)} bytes, need {n}")


def exact(b, n):
    if len(b) != n:
        raise OFError("OFPBRC_BAD_LEN", f"{len(b)} bytes, want {n}")


def cstr(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def bstr(text, n):
    return text.encode()[:n - 1].ljust(n, b"\0")


def empty(cls):
    def decode(b):
        exact(b, 0)
        return cls()
    return decode


def no_body(cls):
    def decode(b, flags):
        exact(b, 0)
        return cls(flags=flags)
    return decode


CONFIG = struct.Struct("!HH")


def config(cls):
    def decode(b):
        exact(b, 4)
        return cls(*CONFIG.unpack(b))
    return decode


PORT10 = struct.Struct("!H6s16sIIIIII")
PORT13 = struct.Struct("!I4x6s2x16sIIIIIIII")
DESC = struct.Struct("!256s256s256s32s256s")
AGGREGATE = struct.Struct("!QQI4x")


def decode_desc(b, flags):
    exact(b, DESC.size)
    return M.DescReply(*(cstr(x) for x in DESC.unpack(b)), flags=flags)


def encode_desc(m):
    return DESC.pack(bstr(m.mfr_desc, 256), bstr(m.hw_desc, 256),
                     bstr(m.sw_desc, 256), bstr(m.serial_num, 32),
                     bstr(m.dp_desc, 256))


def decode_aggregate(b, flags):
    exact(b, AGGREGATE.size)
    return M.AggregateStatsReply(*AGGREGATE.unpack(b), flags=flags)


def decode_hello_body(b):
    versions, off = (), 0
    while off + 4 <= len(b):
        etype, length = struct.unpack_from("!HH", b, off)
        if length < 4 or off + length > len(b):
            raise OFError("OFPHFC_INCOMPATIBLE", f"hello element length {length}")
        if etype == 1:          # OFPHET_VERSIONBITMAP
            bits = b[off + 4:off + length]
            versions = tuple(32 * i + j for i in range(len(bits) // 4)
                             for j in range(32)
                             if struct.unpack_from("!I", bits, 4 * i)[0] >> j & 1)
        off += (length + 7) // 8 * 8
    return M.Hello(versions)


def decode_hello_any(data):
    """A hello of any version (for negotiation)."""
    return decode_hello_body(data[8:])


def encode_hello_body(m):
    if not m.versions:
        return b""
    words = [0] * (max(m.versions) // 32 + 1)
    for v in m.versions:
        words[v // 32] |= 1 << (v % 32)
    elem = struct.pack(f"!HH{len(words)}I", 1, 4 + 4 * len(words), *words)
    return elem + bytes(-len(elem) % 8)


NXET_VENDOR, NXVC_VENDOR_ERROR = 0xB0C2, 0
_NX_VENDOR_ERROR = struct.Struct("!HHIHH")


def decode_error_body(b, version):
    from pyvswitch.openflow.wire import OFP10, error_name
    need(b, 4)
    etype, code = struct.unpack_from("!HH", b)
    if version == OFP10 and (etype, code) == (NXET_VENDOR, NXVC_VENDOR_ERROR) \
            and len(b) >= _NX_VENDOR_ERROR.size:
        _, _, vendor, vtype, vcode = _NX_VENDOR_ERROR.unpack_from(b)
        name = error_name(OFP13, vtype, vcode) if vendor == nx.NX_VENDOR else None
        if name is not None:
            return M.Error(name, b[_NX_VENDOR_ERROR.size:])
    return M.Error(error_name(version, etype, code), b[4:], etype, code)


def encode_error_body(m, version):
    """OpenFlow 1.0 has no code for many later errors (group and meter mods,
    instructions...): Open vSwitch sends those as NXET_VENDOR errors that
    carry the OpenFlow 1.1+ type and code, and so do we."""
    from pyvswitch.openflow.wire import ERROR_CODES, OFP10, codes
    if m.type is not None and m.code is not None:
        etype, code = m.type, m.code
    elif version == OFP10 and m.name not in ERROR_CODES[OFP10] \
            and m.name in ERROR_CODES[OFP13]:
        vtype, vcode = ERROR_CODES[OFP13][m.name]
        return _NX_VENDOR_ERROR.pack(NXET_VENDOR, NXVC_VENDOR_ERROR, nx.NX_VENDOR,
                                     vtype, vcode) + m.data
    else:
        etype, code = codes(m.name, version)
    return struct.pack("!HH", etype, code) + m.data


# --- ports ------------------------------------------------------------------------------
def _port_in(p, error="OFPBRC_BAD_PORT"):
    return oxm.port_from32(p, error)


_port_out = oxm.port_to32


def decode_port(b, off=0):
    (port_no, hw, name, config_, state, curr, adv, sup, peer, cs,
     ms) = PORT13.unpack_from(b, off)
    return M.PortDesc(_port_in(port_no), int.from_bytes(hw, "big"), cstr(name),
                      config_, state, curr, adv, sup, peer, cs, ms)


def encode_port(p):
    return PORT13.pack(_port_out(p.port_no), p.hw_addr.to_bytes(6, "big"),
                       bstr(p.name, 16), p.config, p.state, p.curr, p.advertised,
                       p.supported, p.peer, p.curr_speed, p.max_speed)


def _ports(b):
    if len(b) % PORT13.size:
        raise OFError("OFPBRC_BAD_LEN", "port array")
    return tuple(decode_port(b, o) for o in range(0, len(b), PORT13.size))


# --- actions --------------------------------------------------------------------------------
AT_OUTPUT, AT_PUSH_VLAN, AT_POP_VLAN, AT_GROUP, AT_SET_FIELD = 0, 17, 18, 22, 25
AT_SET_NW_TTL, AT_DEC_NW_TTL = 23, 24
_VALID_OUT = {F.OFPP_IN_PORT, F.OFPP_TABLE, F.OFPP_NORMAL, F.OFPP_FLOOD, F.OFPP_ALL,
              F.OFPP_CONTROLLER, F.OFPP_LOCAL}


def walk_actions(buf, decode_one):
    """Actions (type, length, body) TLVs -> tuple of decode_one(type, length,
    body after type and length); shared with codec10."""
    out, off = [], 0
    buf = bytes(buf)
    while off < len(buf):
        if off + 8 > len(buf):
            raise OFError("OFPBAC_BAD_LEN", "truncated action")
        atype, length = struct.unpack_from("!HH", buf, off)
        if length < 8 or length % 8 or off + length > len(buf):
            raise OFError("OFPBAC_BAD_LEN", f"action length {length}")
        out.append(decode_one(atype, length, buf[off + 4:off + length]))
        off += length
    return tuple(out)


def decode_actions(buf):
    return walk_actions(buf, _decode_action)


def _alen(length, want):
    if length != want:
        raise OFError("OFPBAC_BAD_LEN", f"action length {length}, want {want}")


def _decode_action(atype, length, body):
    if atype == AT_OUTPUT:
        _alen(length, 16)
        port, max_len = struct.unpack_from("!IH", body)
        port = _port_in(port, "OFPBAC_BAD_OUT_PORT")
        if port == F.OFPP_CONTROLLER:
            return A.Controller(max_len)
        if port == 0 or (port >= F.OFPP_MAX and port not in _VALID_OUT):
            raise OFError("OFPBAC_BAD_OUT_PORT", f"output port {port:#x}")
        return A.Output(port)
    if atype == AT_GROUP:
        _alen(length, 8)
        group = struct.unpack_from("!I", body)[0]
        if group > M.OFPG_MAX:
            raise OFError("OFPBAC_BAD_OUT_GROUP", f"group {group:#x}")
        return A.Group(group)
    if atype == AT_PUSH_VLAN:
        _alen(length, 8)
        tpid = struct.unpack_from("!H", body)[0]
        if tpid not in (0x8100, 0x88A8):
            raise OFError("OFPBAC_BAD_ARGUMENT", f"push_vlan {tpid:#x}")
        return A.PushVlan(tpid)
    if atype == AT_POP_VLAN:
        _alen(length, 8)
        return A.StripVlan(True)
    if atype == AT_SET_FIELD:
        return _set_field(body)
    if atype == 0xFFFF:
        if len(body) < 6:
            raise OFError("OFPBAC_BAD_LEN", "experimenter action")
        vendor, subtype = struct.unpack_from("!IH", body)
        if vendor != nx.NX_VENDOR:
            raise OFError("OFPBAC_BAD_EXPERIMENTER", f"experimenter {vendor:#x}")
        return nx.decode_action(subtype, body[6:], ACTS)
    if atype == AT_SET_NW_TTL:
        _alen(length, 8)
        return A.SetField("nw_ttl", body[0], 0xFF, "mod_nw_ttl")
    if atype == AT_DEC_NW_TTL:
        _alen(length, 8)
        return A.DecTtl()
    raise OFError("OFPBAC_BAD_TYPE", f"action type {atype}")


def _set_field(body):
    name, value = oxm.decode_set_field(body)
    if name == "vlan_vid":
        if not value & oxm.OFPVID_PRESENT:
            raise OFError("OFPBAC_BAD_SET_ARGUMENT", "vlan_vid without OFPVID_PRESENT")
        return A.SetVlanVid(value & 0xFFF, False)
    if name == "vlan_pcp":
        return A.SetVlanPcp(value, False)
    if name in ("in_port", "dl_type", "nw_proto", "vlan_tci", "conj_id", "recirc_id",
                "dp_hash", "ct_state", "ct_zone", "nw_frag"):
        raise OFError("OFPBAC_BAD_SET_TYPE", f"set_field {name}: read-only field")
    return A.SetField(name, value, F.FIELDS[name].all_ones)


def _vlan_required(match):
    if match is None:
        return False
    value, mask = oxm._vlan_tci(match)
    return bool(value & mask & oxm.layout.VLAN_CFI)


def encode_actions(actions, match=None):
    out, tagged = [], _vlan_required(match)
    proto = match.get("nw_proto") if match is not None else None
    proto = proto[0] if proto else None
    for a in actions:
        if isinstance(a, (A.SetVlanVid, A.SetVlanPcp)) and a.push_if_needed \
                and not tagged:
            out.append(struct.pack("!HHH2x", AT_PUSH_VLAN, 8, 0x8100))
        if isinstance(a, A.PushVlan):
            tagged = True
        elif isinstance(a, A.StripVlan):
            tagged = False
        elif isinstance(a, (A.SetVlanVid, A.SetVlanPcp)):
            tagged = True
        out.append(_encode_action(a, proto))
    return b"".join(out)


def _set_field_action(name, value, proto=None):
    tlv = oxm.encode_set_field(name, value, proto)
    length = (4 + len(tlv) + 7) // 8 * 8
    return struct.pack("!HH", AT_SET_FIELD, length) + tlv + bytes(length - 4 - len(tlv))


def _encode_action(a, proto=None):
    if isinstance(a, A.Output):
        max_len = 0xFFFF if a.port == F.OFPP_CONTROLLER else 0
        return struct.pack("!HHIH6x", AT_OUTPUT, 16, _port_out(a.port), max_len)
    if isinstance(a, A.Controller) and (a.reason, a.controller_id, a.userdata) == (
            "action", 0, b""):
        return struct.pack("!HHIH6x", AT_OUTPUT, 16, _port_out(F.OFPP_CONTROLLER),
                           a.max_len)
    if isinstance(a, A.Group):
        return struct.pack("!HHI", AT_GROUP, 8, a.group_id)
    if isinstance(a, A.PushVlan):
        return struct.pack("!HHH2x", AT_PUSH_VLAN, 8, a.ethertype)
    if isinstance(a, A.StripVlan):
        return struct.pack("!HH4x", AT_POP_VLAN, 8)
    if isinstance(a, A.SetVlanVid):
        return _set_field_action("vlan_vid", a.vid | oxm.OFPVID_PRESENT)
    if isinstance(a, A.SetVlanPcp):
        return _set_field_action("vlan_pcp", a.pcp)
    if isinstance(a, A.SetField) and a.field == "nw_tos" and a.mask == 0xFC:
        return _set_field_action("ip_dscp", (a.value & 0xFC) >> 2)   # as ovs-ofctl
    if isinstance(a, A.SetField) and a.spelling == "mod_nw_ttl":
        return struct.pack("!HHB3x", AT_SET_NW_TTL, 8, a.value)
    if isinstance(a, A.SetField) and a.spelling not in ("load", "set_tunnel", "set_tunnel64") \
            and a.mask == F.FIELDS[a.field].all_ones:
        return _set_field_action(a.field, a.value, proto)
    if isinstance(a, A.DecTtl) and not a.controller_ids:
        return struct.pack("!HH4x", AT_DEC_NW_TTL, 8)
    raw = None if isinstance(a, A.GotoTable) else nx.encode_action(a, ACTS)
    if raw is None:
        raise EncodeError(f"{a.to_text()}: no OpenFlow 1.3 action encoding")
    return raw


# --- instructions ---------------------------------------------------------------------------
IT_GOTO, IT_WRITE_METADATA, IT_WRITE, IT_APPLY, IT_CLEAR, IT_METER = 1, 2, 3, 4, 5, 6


def decode_instructions(buf):
    """dict(actions, write_actions, clear_actions, write_metadata, meter)."""
    out = dict(actions=(), write_actions=None, clear_actions=False,
               write_metadata=None, meter=None)
    goto, seen, off = None, set(), 0
    while off < len(buf):
        if off + 4 > len(buf):
            raise OFError("OFPBIC_BAD_LEN", "truncated instruction")
        itype, length = struct.unpack_from("!HH", buf, off)
        if length < 8 or length % 8 or off + length > len(buf):
            raise OFError("OFPBIC_BAD_LEN", f"instruction length {length}")
        if itype in seen:
            raise OFError("OFPBIC_UNSUP_INST", f"duplicate instruction {itype}")
        seen.add(itype)
        body = buf[off + 4:off + length]
        if itype == IT_GOTO:
            _ilen(length, 8)
            goto = body[0]
            if goto == 255:
                raise OFError("OFPBIC_BAD_TABLE_ID", "goto_table 255")
        elif itype == IT_WRITE_METADATA:
            _ilen(length, 24)
            out["write_metadata"] = struct.unpack_from("!4xQQ", body)
        elif itype in (IT_WRITE, IT_APPLY, IT_CLEAR):
            actions = decode_actions(body[4:])
            if itype == IT_APPLY:
                out["actions"] = actions
            elif itype == IT_WRITE:
                out["write_actions"] = actions
            else:
                if actions:
                    raise OFError("OFPBIC_BAD_LEN", "clear-actions with actions")
                out["clear_actions"] = True
        elif itype == IT_METER:
            _ilen(length, 8)
            out["meter"] = struct.unpack_from("!I", body)[0]
        elif itype == 0xFFFF:
            raise OFError("OFPBIC_BAD_EXPERIMENTER", "experimenter instruction")
        else:
            raise OFError("OFPBIC_UNKNOWN_INST", f"instruction type {itype}")
        off += length
    if goto is not None:
        out["actions"] = out["actions"] + (A.GotoTable(goto),)
    return out


def _ilen(length, want):
    if length != want:
        raise OFError("OFPBIC_BAD_LEN", f"instruction length {length}, want {want}")


def encode_instructions(obj, match=None):
    """Instructions for a FlowMod or FlowStats (Open vSwitch's order: meter,
    apply, clear, write, write-metadata, goto)."""
    actions, goto = list(obj.actions), None
    if actions and isinstance(actions[-1], A.GotoTable):
        goto = actions.pop().table
    if any(isinstance(a, A.GotoTable) for a in actions):
        raise EncodeError("goto_table must be the last action")
    out = []
    if obj.meter is not None:
        out.append(struct.pack("!HHI", IT_METER, 8, obj.meter))
    if actions:
        raw = encode_actions(actions, match)
        out.append(struct.pack("!HH4x", IT_APPLY, 8 + len(raw)) + raw)
    if obj.clear_actions:
        out.append(struct.pack("!HH4x", IT_CLEAR, 8))
    if obj.write_actions is not None:
        raw = encode_actions(obj.write_actions, match)
        out.append(struct.pack("!HH4x", IT_WRITE, 8 + len(raw)) + raw)
    if obj.write_metadata is not None:
        out.append(struct.pack("!HH4xQQ", IT_WRITE_METADATA, 24, *obj.write_metadata))
    if goto is not None:
        out.append(struct.pack("!HHB3x", IT_GOTO, 8, goto))
    return b"".join(out)


# --- messages -------------------------------------------------------------------------------
_FEATURES = struct.Struct("!QIBB2xII")
_PACKET_IN = struct.Struct("!IHBBQ")
_PACKET_OUT = struct.Struct("!IIH6x")
_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")
_FLOW_REMOVED = struct.Struct("!QHBBIIHHQQ")
_PORT_MOD = struct.Struct("!I4x6s2xIII4x")
_ROLE = struct.Struct("!I4xQ")
_ASYNC = struct.Struct("!6I")
_GROUP_MOD = struct.Struct("!HBxI")
_BUCKET = struct.Struct("!HHII4x")
_METER_MOD = struct.Struct("!HHI")
_BAND = struct.Struct("!HHII")
GROUP_TYPES = {0: "all", 1: "select", 2: "indirect", 3: "ff"}
GROUP_TYPE_IDS = {v: k for k, v in GROUP_TYPES.items()}
BAND_TYPES = {1: "drop", 2: "dscp_remark"}
BAND_TYPE_IDS = {v: k for k, v in BAND_TYPES.items()}
ROLE_IDS = {r: i for i, r in enumerate(M.ROLES)}


def decode_body(mtype, data, **_):
    fn = _DECODERS.get(mtype)
    if fn is None:
        raise OFError("OFPBRC_BAD_TYPE", f"message type {mtype}")
    return fn(data[8:])


def _d_features_reply(b):
    exact(b, _FEATURES.size)
    dpid, nbuf, ntab, aux, caps, _ = _FEATURES.unpack(b)
    return M.FeaturesReply(dpid, nbuf, ntab, caps, 0, aux)


def _d_packet_in(b):
    need(b, _PACKET_IN.size)
    buffer_id, total_len, reason, table_id, cookie = _PACKET_IN.unpack_from(b)
    match, off = oxm.decode_match(b, _PACKET_IN.size)
    if len(b) < off + 2:
        raise OFError("OFPBRC_BAD_LEN", "packet-in padding")
    vm = match.get("in_port")
    in_port = vm[0] if vm else 0
    if vm:
        match = match.with_field("in_port", 0, 0)
    return M.PacketIn(buffer_id, total_len, reason, in_port, b[off + 2:], table_id,
                      cookie, match)


def _e_packet_in(m):
    match = m.match.with_field("in_port", m.in_port)
    return T["PACKET_IN"], (_PACKET_IN.pack(m.buffer_id, m.total_len, m.reason,
                                            m.table_id, m.cookie)
                            + oxm.encode_match(match) + b"\0\0" + m.data)


def _d_packet_out(b):
    need(b, _PACKET_OUT.size)
    buffer_id, in_port, alen = _PACKET_OUT.unpack_from(b)
    end = _PACKET_OUT.size + alen
    if end > len(b):
        raise OFError("OFPBRC_BAD_LEN", "actions past the message")
    in_port = _port_in(in_port)
    if in_port == 0 or (in_port >= F.OFPP_MAX and in_port not in
                        (F.OFPP_LOCAL, F.OFPP_CONTROLLER, F.OFPP_NONE)):
        raise OFError("OFPBRC_BAD_PORT", f"in_port {in_port:#x}")
    return M.PacketOut(buffer_id, in_port, decode_actions(b[_PACKET_OUT.size:end]),
                       b[end:])


def _e_packet_out(m):
    acts = encode_actions(m.actions)
    return T["PACKET_OUT"], (_PACKET_OUT.pack(m.buffer_id, _port_out(m.in_port),
                                              len(acts)) + acts + m.data)


def _d_flow_mod(b):
    need(b, _FLOW_MOD.size + 4)
    (cookie, cookie_mask, table, command, idle, hard, priority, buffer_id,
     out_port, out_group, flags) = _FLOW_MOD.unpack_from(b)
    match, off = oxm.decode_match(b, _FLOW_MOD.size)
    ins = decode_instructions(b[off:])
    actions = ins.pop("actions")
    return nx.flow_mod_fields(
        command, cookie, cookie_mask, idle, hard, priority, buffer_id,
        _port_in(out_port, "OFPFMFC_UNKNOWN") if out_port != 0xFFFFFFFF else F.OFPP_NONE,
        flags, match, actions, True, table,
        out_group=None if out_group == M.OFPG_ANY else out_group, **ins)


def _e_flow_mod(fm):
    table = 255 if fm.table is None else fm.table
    if fm.table is None and fm.command == "add":
        table = 0
    out_port = 0xFFFFFFFF if fm.out_port is None else _port_out(fm.out_port)
    head = _FLOW_MOD.pack(
        fm.cookie or 0, fm.cookie_mask, table, nx.FM_COMMANDS.index(fm.command),
        fm.idle_timeout, fm.hard_timeout, fm.priority, fm.buffer_id, out_port,
        M.OFPG_ANY if fm.out_group is None else fm.out_group,
        nx.flags_to_bits(fm.flags))
    return T["FLOW_MOD"], head + oxm.encode_match(fm.match) + encode_instructions(
        fm, fm.match)


def _d_flow_removed(b):
    need(b, _FLOW_REMOVED.size + 4)
    (cookie, priority, reason, table_id, dsec, dnsec, idle, hard, packets,
     nbytes) = _FLOW_REMOVED.unpack_from(b)
    match, off = oxm.decode_match(b, _FLOW_REMOVED.size)
    exact(b[off:], 0)
    return M.FlowRemoved(match, cookie, priority, reason, table_id, dsec, dnsec,
                         idle, hard, packets, nbytes)


def _e_flow_removed(m):
    return T["FLOW_REMOVED"], _FLOW_REMOVED.pack(
        m.cookie, m.priority, m.reason, m.table_id, m.duration_sec, m.duration_nsec,
        m.idle_timeout, m.hard_timeout, m.packet_count, m.byte_count
    ) + oxm.encode_match(m.match)


def _d_port_mod(b):
    exact(b, _PORT_MOD.size)
    port_no, hw, config_, mask, adv = _PORT_MOD.unpack(b)
    return M.PortMod(_port_in(port_no, "OFPPMFC_BAD_PORT"), int.from_bytes(hw, "big"),
                     config_, mask, adv)


def _d_role(cls):
    def decode(b):
        exact(b, _ROLE.size)
        role, gen = _ROLE.unpack(b)
        if role >= len(M.ROLES):
            raise OFError("OFPRRFC_BAD_ROLE", f"role {role}")
        return cls(M.ROLES[role], gen)
    return decode


def _d_async(cls):
    def decode(b):
        exact(b, _ASYNC.size)
        v = _ASYNC.unpack(b)
        return cls(v[0:2], v[2:4], v[4:6])
    return decode


def _e_async(mtype):
    return lambda m: (mtype, _ASYNC.pack(*m.packet_in_mask, *m.port_status_mask,
                                         *m.flow_removed_mask))


def _d_experimenter(b):
    need(b, 8)
    exp, exp_type = struct.unpack_from("!II", b)
    if exp == nx.NX_VENDOR:
        return nx.decode_message(exp_type, b[8:], ACTS, True)
    return M.Experimenter(exp, exp_type, b[8:])


def _e_experimenter(msg):
    sub, body = nx.encode_message(msg, ACTS)
    return T["EXPERIMENTER"], struct.pack("!II", nx.NX_VENDOR, sub) + body


ACTS = (decode_actions, encode_actions)


# --- groups and meters -------------------------------------------------------------------------
def decode_buckets(buf):
    out, off = [], 0
    while off < len(buf):
        if off + _BUCKET.size > len(buf):
            raise OFError("OFPGMFC_BAD_BUCKET", "truncated bucket")
        length, weight, watch_port, watch_group = _BUCKET.unpack_from(buf, off)
        if length < _BUCKET.size or length % 8 or off + length > len(buf):
            raise OFError("OFPGMFC_BAD_BUCKET", f"bucket length {length}")
        actions = decode_actions(buf[off + _BUCKET.size:off + length])
        wp = F.OFPP_NONE if watch_port == 0xFFFFFFFF else _port_in(
            watch_port, "OFPGMFC_BAD_WATCH")
        out.append(M.Bucket(actions, weight, wp, watch_group))
        off += length
    return tuple(out)


def encode_buckets(buckets):
    out = []
    for b in buckets:
        acts = encode_actions(b.actions)
        wp = 0xFFFFFFFF if b.watch_port == F.OFPP_NONE else _port_out(b.watch_port)
        out.append(_BUCKET.pack(_BUCKET.size + len(acts), b.weight, wp,
                                b.watch_group) + acts)
    return b"".join(out)


def _d_group_mod(b):
    need(b, _GROUP_MOD.size)
    command, gtype, group_id = _GROUP_MOD.unpack_from(b)
    if command > 2:
        raise OFError("OFPGMFC_BAD_COMMAND", f"command {command}")
    if gtype not in GROUP_TYPES:
        raise OFError("OFPGMFC_BAD_TYPE", f"type {gtype}")
    if group_id > M.OFPG_MAX and not (command == 2 and group_id == M.OFPG_ALL):
        raise OFError("OFPGMFC_INVALID_GROUP", f"group {group_id:#x}")
    return M.GroupMod(M.GROUP_COMMANDS[command], GROUP_TYPES[gtype], group_id,
                      decode_buckets(b[_GROUP_MOD.size:]))


def _e_group_mod(g):
    return T["GROUP_MOD"], _GROUP_MOD.pack(
        M.GROUP_COMMANDS.index(g.command), GROUP_TYPE_IDS[g.group_type],
        g.group_id) + encode_buckets(g.buckets)


def decode_bands(buf):
    out, off = [], 0
    while off < len(buf):
        if off + 16 > len(buf):
            raise OFError("OFPMMFC_BAD_BAND", "truncated band")
        btype, length, rate, burst = _BAND.unpack_from(buf, off)
        if btype not in BAND_TYPES:
            raise OFError("OFPMMFC_BAD_BAND", f"band type {btype}")
        if length != 16 or off + length > len(buf):
            raise OFError("OFPMMFC_BAD_BAND", f"band length {length}")
        prec = buf[off + 12] if btype == 2 else 0
        out.append(M.MeterBand(BAND_TYPES[btype], rate, burst, prec))
        off += length
    return tuple(out)


def encode_bands(bands):
    return b"".join(_BAND.pack(BAND_TYPE_IDS[b.type], 16, b.rate, b.burst_size)
                    + struct.pack("!B3x", b.prec_level) for b in bands)


def _d_meter_mod(b):
    need(b, _METER_MOD.size)
    command, flags, meter_id = _METER_MOD.unpack_from(b)
    if command > 2:
        raise OFError("OFPMMFC_BAD_COMMAND", f"command {command}")
    if flags & ~0xF:
        raise OFError("OFPMMFC_BAD_FLAGS", f"flags {flags:#x}")
    return M.MeterMod(M.METER_COMMANDS[command], flags, meter_id,
                      decode_bands(b[_METER_MOD.size:]))


def _e_meter_mod(m):
    return T["METER_MOD"], _METER_MOD.pack(M.METER_COMMANDS.index(m.command),
                                           m.flags, m.meter_id) + encode_bands(m.bands)


_DECODERS = {
    T["HELLO"]: decode_hello_body,
    T["ERROR"]: lambda b: decode_error_body(b, OFP13),
    T["ECHO_REQUEST"]: lambda b: M.EchoRequest(b),
    T["ECHO_REPLY"]: lambda b: M.EchoReply(b),
    T["EXPERIMENTER"]: _d_experimenter,
    T["FEATURES_REQUEST"]: empty(M.FeaturesRequest),
    T["FEATURES_REPLY"]: _d_features_reply,
    T["GET_CONFIG_REQUEST"]: empty(M.GetConfigRequest),
    T["GET_CONFIG_REPLY"]: config(M.GetConfigReply),
    T["SET_CONFIG"]: config(M.SetConfig),
    T["PACKET_IN"]: _d_packet_in,
    T["FLOW_REMOVED"]: _d_flow_removed,
    T["PORT_STATUS"]: lambda b: (exact(b, 8 + PORT13.size),
                                 M.PortStatus(b[0], decode_port(b, 8)))[1],
    T["PACKET_OUT"]: _d_packet_out,
    T["FLOW_MOD"]: _d_flow_mod,
    T["GROUP_MOD"]: _d_group_mod,
    T["PORT_MOD"]: _d_port_mod,
    T["TABLE_MOD"]: lambda b: (exact(b, 8), M.TableMod(b[0], struct.unpack_from(
        "!I", b, 4)[0]))[1],
    T["MULTIPART_REQUEST"]: lambda b: mp13.decode(b, True),
    T["MULTIPART_REPLY"]: lambda b: mp13.decode(b, False),
    T["BARRIER_REQUEST"]: empty(M.BarrierRequest),
    T["BARRIER_REPLY"]: empty(M.BarrierReply),
    T["ROLE_REQUEST"]: _d_role(M.RoleRequest),
    T["ROLE_REPLY"]: _d_role(M.RoleReply),
    T["GET_ASYNC_REQUEST"]: empty(M.GetAsyncRequest),
    T["GET_ASYNC_REPLY"]: _d_async(M.GetAsyncReply),
    T["SET_ASYNC"]: _d_async(M.SetAsync),
    T["METER_MOD"]: _d_meter_mod,
}


# --- encoding ------------------------------------------------------------------------------------
def encode(msg, xid=0):
    fn = _ENCODERS.get(type(msg)) or mp13.ENCODERS.get(type(msg))
    if fn is None:
        raise EncodeError(f"{type(msg).__name__} has no OpenFlow 1.3 form")
    mtype, body = fn(msg)
    if 8 + len(body) > 0xFFFF:
        raise EncodeError("message longer than 65535 bytes")
    return pack_header(OFP13, mtype, 8 + len(body), xid) + body


_ENCODERS = {
    M.Hello: lambda m: (T["HELLO"], encode_hello_body(m)),
    M.Error: lambda m: (T["ERROR"], encode_error_body(m, OFP13)),
    M.EchoRequest: lambda m: (T["ECHO_REQUEST"], m.data),
    M.EchoReply: lambda m: (T["ECHO_REPLY"], m.data),
    M.Experimenter: lambda m: (T["EXPERIMENTER"], struct.pack(
        "!II", m.experimenter, m.exp_type) + m.data),
    M.FeaturesRequest: lambda m: (T["FEATURES_REQUEST"], b""),
    M.FeaturesReply: lambda m: (T["FEATURES_REPLY"], _FEATURES.pack(
        m.datapath_id, m.n_buffers, m.n_tables, m.auxiliary_id, m.capabilities, 0)),
    M.GetConfigRequest: lambda m: (T["GET_CONFIG_REQUEST"], b""),
    M.GetConfigReply: lambda m: (T["GET_CONFIG_REPLY"], CONFIG.pack(m.flags,
                                                                     m.miss_send_len)),
    M.SetConfig: lambda m: (T["SET_CONFIG"], CONFIG.pack(m.flags, m.miss_send_len)),
    M.PacketIn: _e_packet_in,
    M.FlowRemoved: _e_flow_removed,
    M.PortStatus: lambda m: (T["PORT_STATUS"], struct.pack("!B7x", m.reason)
                             + encode_port(m.desc)),
    M.PacketOut: _e_packet_out,
    FlowMod: _e_flow_mod,
    M.GroupMod: _e_group_mod,
    M.PortMod: lambda m: (T["PORT_MOD"], _PORT_MOD.pack(
        _port_out(m.port_no), m.hw_addr.to_bytes(6, "big"), m.config, m.mask,
        m.advertise)),
    M.TableMod: lambda m: (T["TABLE_MOD"], struct.pack("!B3xI", m.table_id, m.config)),
    M.BarrierRequest: lambda m: (T["BARRIER_REQUEST"], b""),
    M.BarrierReply: lambda m: (T["BARRIER_REPLY"], b""),
    M.RoleRequest: lambda m: (T["ROLE_REQUEST"], _ROLE.pack(ROLE_IDS[m.role],
                                                             m.generation_id)),
    M.RoleReply: lambda m: (T["ROLE_REPLY"], _ROLE.pack(ROLE_IDS[m.role],
                                                         m.generation_id)),
    M.GetAsyncRequest: lambda m: (T["GET_ASYNC_REQUEST"], b""),
    M.GetAsyncReply: _e_async(T["GET_ASYNC_REPLY"]),
    M.SetAsync: _e_async(T["SET_ASYNC"]),
    M.MeterMod: _e_meter_mod,
    M.SetFlowFormat: _e_experimenter,
    M.FlowModTableId: _e_experimenter,
    M.SetPacketInFormat: _e_experimenter,
}


# Multipart bodies live in mp13.py (imported last: it uses the helpers above).
from pyvswitch.openflow import mp13  # noqa: E402
