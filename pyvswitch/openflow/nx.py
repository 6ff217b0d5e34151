"""Nicira extensions (vendor 0x2320) that ovs-ofctl uses to manage a switch.

What: the NX vendor messages, NX statistics and NX actions that Open vSwitch's
ovs-ofctl 3.1 sends (captured in tests/unit/openflow/golden/ofctl), as
message bodies: the caller (codec10, codec13) has already read the OpenFlow
header, the vendor id and the subtype, and passes an `actions` pair
(decode(buf) -> tuple, encode(tuple) -> bytes) for the version in use.

Messages: NXT_ROLE_REQUEST/REPLY, NXT_SET_FLOW_FORMAT, NXT_FLOW_MOD,
NXT_FLOW_REMOVED, NXT_FLOW_MOD_TABLE_ID, NXT_SET_PACKET_IN_FORMAT,
NXT_SET_ASYNC_CONFIG, NXT_GROUP_MOD (OpenFlow 1.5 bucket layout).
Statistics: NXST_FLOW, NXST_AGGREGATE, NXST_GROUP (OpenFlow 1.3 group stats
layout), NXST_GROUP_DESC (OpenFlow 1.5 layout, with a group_id), request and
reply: ovs-ofctl 3.1 manages groups over OpenFlow 1.0 with these.
Actions: in nxact.py (resubmit, load, move, set_tunnel, note, output_reg,
dec_ttl, controller, conjunction, ct, ct_clear), shared with codec13.

Errors raise wire.OFError (OFPBRC_BAD_LEN, OFPBRC_BAD_EXP_TYPE, ...).
Pure functions; any thread.
"""

import struct

from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import nxact, oxm
from pyvswitch.openflow.text import FlowMod
from pyvswitch.openflow.wire import EncodeError, OFError

NX_VENDOR = 0x2320
# message subtypes
NXT_ROLE_REQUEST, NXT_ROLE_REPLY, NXT_SET_FLOW_FORMAT, NXT_FLOW_MOD = 10, 11, 12, 13
NXT_FLOW_REMOVED, NXT_FLOW_MOD_TABLE_ID, NXT_SET_PACKET_IN_FORMAT = 14, 15, 16
NXT_SET_ASYNC_CONFIG, NXT_GROUP_MOD = 19, 31
# stats subtypes
NXST_FLOW, NXST_AGGREGATE, NXST_GROUP, NXST_GROUP_DESC = 0, 1, 7, 8
# action subtypes
NXAST_RESUBMIT, NXAST_RESUBMIT_TABLE, NXAST_CONTROLLER = 1, 14, 20

FLOW_FORMATS = {0: "openflow10", 2: "nxm"}
_FLOW_FORMAT_IDS = {v: k for k, v in FLOW_FORMATS.items()}
NX_ROLES = {0: "equal", 1: "master", 2: "slave"}
_NX_ROLE_IDS = {v: k for k, v in NX_ROLES.items()}
FM_COMMANDS = ("add", "modify", "modify_strict", "delete", "delete_strict")
FM_FLAGS = {1: "send_flow_rem", 2: "check_overlap", 4: "reset_counts",
            8: "no_packet_counts", 16: "no_byte_counts"}
_FM_FLAG_BITS = {v: k for k, v in FM_FLAGS.items()}


def need(body, n, what):
    if len(body) < n:
        raise OFError("OFPBRC_BAD_LEN", f"{what}: {len(body)} bytes, need {n}")


def exact(body, n, what):
    if len(body) != n:
        raise OFError("OFPBRC_BAD_LEN", f"{what}: {len(body)} bytes, want {n}")


_FM_FLAG_SETS = {}        # flow-mod flag bits -> frozenset (the common case, cached)


def flags_from_bits(bits, error="OFPFMFC_BAD_FLAGS", known=FM_FLAGS):
    if known is FM_FLAGS:
        words = _FM_FLAG_SETS.get(bits)
        if words is not None:
            return words
    if bits & ~sum(known):
        raise OFError(error, f"unknown flags {bits:#x}")
    words = frozenset(w for b, w in known.items() if bits & b)
    if known is FM_FLAGS:
        _FM_FLAG_SETS[bits] = words
    return words


def flags_to_bits(words):
    return sum(_FM_FLAG_BITS[w] for w in words)


def _port_opt(port):
    return None if port == F.OFPP_NONE else port


def _port_val(port):
    return F.OFPP_NONE if port is None else port


# --- actions (nxact.py) ----------------------------------------------------------------
def decode_action(subtype, body, acts=None):
    """An action object from an NX action (`body` after the subtype)."""
    return nxact.decode(subtype, body, acts)


def encode_action(action, acts=None):
    """The NX action for `action` (resubmit, goto_table's 1.0 form, load,
    move, ...: see nxact.py), or None."""
    return nxact.encode(action, acts)


# --- messages -------------------------------------------------------------------------
NXM_NX_COOKIE = (oxm.NX1, 30)


def _match_end(body, off, match_len, cookie=False):
    """(Match, end offset) of an NXM match; with `cookie`, (Match, end,
    cookie, cookie_mask) and NXM_NX_COOKIE(_W) allowed in the match."""
    end = off + oxm.pad8(match_len)
    if end > len(body) or match_len > len(body):
        raise OFError("OFPBRC_BAD_LEN", "NXM match runs past the message")
    raw, rest, p = bytes(body[off:off + match_len]), b"", 0
    value, mask = 0, 0
    while p < len(raw):
        if p + 4 > len(raw):
            raise OFError("OFPBMC_BAD_LEN", "truncated NXM header")
        cls, fh, length = struct.unpack_from("!HBB", raw, p)
        if cookie and (cls, fh >> 1) == NXM_NX_COOKIE and length in (8, 16):
            if length != (16 if fh & 1 else 8) or p + 4 + length > len(raw):
                raise OFError("OFPBMC_BAD_LEN", "NXM_NX_COOKIE")
            value = int.from_bytes(raw[p + 4:p + 12], "big")
            mask = int.from_bytes(raw[p + 12:p + 20], "big") if fh & 1 else 2**64 - 1
        else:
            rest += raw[p:p + 4 + length]
        p += 4 + length
    match = oxm.decode_fields(rest)
    return (match, end, value & mask, mask) if cookie else (match, end)


def _nxm(match, cookie=0, cookie_mask=0):
    raw = oxm.encode_fields(match, oxm=False)
    if cookie_mask == 2**64 - 1:
        raw += oxm.pack_header(NXM_NX_COOKIE, False, 8) + cookie.to_bytes(8, "big")
    elif cookie_mask:
        raw += (oxm.pack_header(NXM_NX_COOKIE, True, 16) + cookie.to_bytes(8, "big")
                + cookie_mask.to_bytes(8, "big"))
    return raw, raw + bytes(oxm.pad8(len(raw)) - len(raw))


_FLOW_MOD = struct.Struct("!QHHHHIHHH6x")


def decode_flow_mod(body, acts, table_ext=False):
    need(body, _FLOW_MOD.size, "NXT_FLOW_MOD")
    (cookie, command, idle, hard, priority, buffer_id, out_port, flags,
     match_len) = _FLOW_MOD.unpack_from(body)
    match, off, cvalue, cmask = _match_end(body, _FLOW_MOD.size, match_len, True)
    if cmask and (command & 0xFF) == 0:
        raise OFError("OFPFMFC_BAD_COMMAND", "cookie mask on an add")
    if cmask:
        cookie = cvalue
    actions = acts[0](body[off:])
    return flow_mod_fields(command, cookie, cmask, idle, hard, priority, buffer_id,
                           out_port, flags, match, actions, table_ext)


def flow_mod_fields(command, cookie, cookie_mask, idle, hard, priority,
                    buffer_id, out_port, flags, match, actions, table_ext=False,
                    table=None, **extra):
    """A FlowMod from wire numbers. 1.0 (`table` None): the command's high
    byte is the table id if `table_ext` (NXT_FLOW_MOD_TABLE_ID), else must be
    0 and the table is 0 for add, all for the others. 1.3 passes `table`
    (255 = all)."""
    cmd = command & 0xFF
    if table is None:
        table = command >> 8
        if not table_ext:
            if table:
                raise OFError("OFPFMFC_BAD_COMMAND", f"command {command:#x}")
            table = 255
    if cmd >= len(FM_COMMANDS):
        raise OFError("OFPFMFC_BAD_COMMAND", f"command {cmd}")
    name = FM_COMMANDS[cmd]
    if name == "add":
        if table == 255 and table_ext is not False:
            raise OFError("OFPFMFC_BAD_TABLE_ID", "add to table 255")
        table = 0 if table == 255 else table
        fm_cookie = cookie
    else:
        fm_cookie = cookie if (cookie or cookie_mask) else None
        table = None if table == 255 else table
    return FlowMod(command=name, match=match, priority=priority,
                   actions=tuple(actions), table=table, cookie=fm_cookie,
                   cookie_mask=cookie_mask, idle_timeout=idle,
                   hard_timeout=hard, out_port=_port_opt(out_port),
                   flags=flags_from_bits(flags), buffer_id=buffer_id, **extra)


def encode_flow_mod(fm, acts):
    raw, padded = _nxm(fm.match, fm.cookie or 0, fm.cookie_mask)
    command = FM_COMMANDS.index(fm.command) | ((fm.table or 0) << 8)
    head = _FLOW_MOD.pack(0 if fm.cookie_mask else (fm.cookie or 0), command, fm.idle_timeout,
                          fm.hard_timeout, fm.priority, fm.buffer_id,
                          _port_val(fm.out_port), flags_to_bits(fm.flags),
                          len(raw))
    return head + padded + acts[1](fm.actions)


_FLOW_REMOVED = struct.Struct("!QHBBIIHHHxxQQ")


def decode_flow_removed(body):
    need(body, _FLOW_REMOVED.size, "NXT_FLOW_REMOVED")
    (cookie, priority, reason, table_id, dsec, dnsec, idle, hard, match_len,
     packets, nbytes) = _FLOW_REMOVED.unpack_from(body)
    match, end = _match_end(body, _FLOW_REMOVED.size, match_len)
    return M.FlowRemoved(match, cookie, priority, reason, table_id, dsec, dnsec,
                         idle, hard, packets, nbytes, nxm=True)


def encode_flow_removed(m):
    raw, padded = _nxm(m.match)
    return _FLOW_REMOVED.pack(m.cookie, m.priority, m.reason, m.table_id,
                              m.duration_sec, m.duration_nsec, m.idle_timeout,
                              m.hard_timeout, len(raw), m.packet_count,
                              m.byte_count) + padded


def _u32(body, what):
    exact(body, 4, what)
    return struct.unpack("!I", body)[0]


def decode_message(subtype, body, acts, table_ext=False):
    """A message object from an NX vendor message body (after the subtype)."""
    if subtype in (NXT_ROLE_REQUEST, NXT_ROLE_REPLY):
        role = _u32(body, "NXT_ROLE")
        if role not in NX_ROLES:
            raise OFError("OFPRRFC_BAD_ROLE", f"role {role}")
        cls = M.RoleRequest if subtype == NXT_ROLE_REQUEST else M.RoleReply
        return cls(NX_ROLES[role])
    if subtype == NXT_SET_FLOW_FORMAT:
        fmt = _u32(body, "NXT_SET_FLOW_FORMAT")
        if fmt not in FLOW_FORMATS:
            raise OFError("OFPBRC_EPERM", f"flow format {fmt}")
        return M.SetFlowFormat(FLOW_FORMATS[fmt])
    if subtype == NXT_FLOW_MOD:
        return decode_flow_mod(body, acts, table_ext)
    if subtype == NXT_FLOW_REMOVED:
        return decode_flow_removed(body)
    if subtype == NXT_FLOW_MOD_TABLE_ID:
        exact(body, 8, "NXT_FLOW_MOD_TABLE_ID")
        return M.FlowModTableId(bool(body[0]))
    if subtype == NXT_SET_PACKET_IN_FORMAT:
        fmt = _u32(body, "NXT_SET_PACKET_IN_FORMAT")
        if fmt > 2:
            raise OFError("OFPBRC_EPERM", f"packet-in format {fmt}")
        return M.SetPacketInFormat(fmt)
    if subtype == NXT_SET_ASYNC_CONFIG:
        exact(body, 24, "NXT_SET_ASYNC_CONFIG")
        v = struct.unpack("!6I", body)
        return M.SetAsync(v[0:2], v[2:4], v[4:6])
    if subtype == NXT_GROUP_MOD:
        return decode_group_mod(body, acts)
    raise OFError("OFPBRC_BAD_EXP_TYPE", f"NX message subtype {subtype}")


def encode_message(msg, acts):
    """(subtype, body) of an NX message, or None if `msg` is not one."""
    if isinstance(msg, (M.RoleRequest, M.RoleReply)):
        role = "equal" if msg.role == "nochange" else msg.role
        sub = NXT_ROLE_REQUEST if isinstance(msg, M.RoleRequest) else NXT_ROLE_REPLY
        return sub, struct.pack("!I", _NX_ROLE_IDS[role])
    if isinstance(msg, M.SetFlowFormat):
        return NXT_SET_FLOW_FORMAT, struct.pack("!I", _FLOW_FORMAT_IDS[msg.format])
    if isinstance(msg, FlowMod):
        return NXT_FLOW_MOD, encode_flow_mod(msg, acts)
    if isinstance(msg, M.FlowRemoved):
        return NXT_FLOW_REMOVED, encode_flow_removed(msg)
    if isinstance(msg, M.FlowModTableId):
        return NXT_FLOW_MOD_TABLE_ID, struct.pack("!B7x", int(msg.enable))
    if isinstance(msg, M.SetPacketInFormat):
        return NXT_SET_PACKET_IN_FORMAT, struct.pack("!I", msg.format)
    if isinstance(msg, M.SetAsync):
        return NXT_SET_ASYNC_CONFIG, struct.pack(
            "!6I", *msg.packet_in_mask, *msg.port_status_mask,
            *msg.flow_removed_mask)
    if isinstance(msg, M.GroupMod):
        return NXT_GROUP_MOD, encode_group_mod(msg, acts)
    return None


# --- groups (OpenFlow 1.5 layout, used by NXT_GROUP_MOD in 1.0) -------------------------
_GROUP_TYPES = {0: "all", 1: "select", 2: "indirect", 3: "ff"}
_GROUP_TYPE_IDS = {v: k for k, v in _GROUP_TYPES.items()}
_BUCKET = struct.Struct("!HHI")
_GROUP_MOD = struct.Struct("!HBxIH2xI")


def decode_buckets15(buf, acts):
    buckets, off = [], 0
    while off < len(buf):
        if off + _BUCKET.size > len(buf):
            raise OFError("OFPGMFC_BAD_BUCKET", "truncated bucket")
        length, alen, _bucket_id = _BUCKET.unpack_from(buf, off)
        if length < _BUCKET.size + alen or off + length > len(buf) or length % 8:
            raise OFError("OFPGMFC_BAD_BUCKET", f"bucket length {length}")
        a_end = off + _BUCKET.size + alen
        actions = acts[0](buf[off + _BUCKET.size:a_end])
        weight, watch_port, watch_group = 0, F.OFPP_NONE, M.OFPG_ANY
        p = a_end
        while p < off + length:
            if p + 8 > off + length:
                raise OFError("OFPGMFC_BAD_BUCKET", "truncated bucket property")
            ptype, plen = struct.unpack_from("!HH", buf, p)
            if plen != 8:
                raise OFError("OFPGMFC_BAD_BUCKET", f"property length {plen}")
            if ptype == 0:
                weight = struct.unpack_from("!H", buf, p + 4)[0]
            elif ptype == 1:
                watch_port = oxm.port_from32(struct.unpack_from("!I", buf, p + 4)[0],
                                             "OFPGMFC_BAD_WATCH")
            elif ptype == 2:
                watch_group = struct.unpack_from("!I", buf, p + 4)[0]
            else:
                raise OFError("OFPGMFC_BAD_BUCKET", f"property type {ptype}")
            p += plen
        buckets.append(M.Bucket(actions, weight, watch_port, watch_group))
        off += length
    return tuple(buckets)


def encode_buckets15(group_type, buckets, acts):
    out = []
    for i, b in enumerate(buckets):
        actions = acts[1](b.actions)
        props = b""
        if group_type == "select":
            props += struct.pack("!HHH2x", 0, 8, b.weight)
        if group_type == "ff":
            props += struct.pack("!HHI", 1, 8, oxm.port_to32(b.watch_port))
            if b.watch_group != M.OFPG_ANY:
                props += struct.pack("!HHI", 2, 8, b.watch_group)
        length = _BUCKET.size + len(actions) + len(props)
        out.append(_BUCKET.pack(length, len(actions), i) + actions + props)
    return b"".join(out)


def decode_group_mod(body, acts):
    need(body, _GROUP_MOD.size, "NXT_GROUP_MOD")
    command, gtype, group_id, blen, _cbid = _GROUP_MOD.unpack_from(body)
    if command > 2:
        raise OFError("OFPGMFC_BAD_COMMAND", f"command {command}")
    if gtype not in _GROUP_TYPES:
        raise OFError("OFPGMFC_BAD_TYPE", f"type {gtype}")
    end = _GROUP_MOD.size + blen
    if end > len(body):
        raise OFError("OFPBRC_BAD_LEN", "bucket array past the message")
    if end != len(body):
        raise OFError("OFPGMFC_BAD_BUCKET", "group properties unsupported")
    buckets = decode_buckets15(body[_GROUP_MOD.size:end], acts)
    return M.GroupMod(M.GROUP_COMMANDS[command], _GROUP_TYPES[gtype], group_id,
                      buckets)


def encode_group_mod(g, acts):
    buckets = encode_buckets15(g.group_type, g.buckets, acts)
    return _GROUP_MOD.pack(M.GROUP_COMMANDS.index(g.command),
                           _GROUP_TYPE_IDS[g.group_type], g.group_id,
                           len(buckets), 0xFFFFFFFF) + buckets


# --- statistics (body after the 1.0 stats header + vendor + subtype + pad) --------------
_FLOW_REQ = struct.Struct("!HHB3x")
_FLOW_STATS = struct.Struct("!HBxIIHHHHHHQQQ")
_AGG_REPLY = struct.Struct("!QQI4x")


def decode_stats_request(subtype, body, flags):
    if subtype in (NXST_FLOW, NXST_AGGREGATE):
        need(body, _FLOW_REQ.size, "NXST_FLOW request")
        out_port, match_len, table = _FLOW_REQ.unpack_from(body)
        match, end, cookie, cookie_mask = _match_end(body, _FLOW_REQ.size,
                                                     match_len, True)
        if end != len(body):
            raise OFError("OFPBRC_BAD_LEN", "trailing bytes")
        cls = M.FlowStatsRequest if subtype == NXST_FLOW else M.AggregateStatsRequest
        return cls(match, None if table == 255 else table, _port_opt(out_port),
                   cookie=cookie, cookie_mask=cookie_mask, flags=flags, nxm=True)
    if subtype in (NXST_GROUP, NXST_GROUP_DESC):
        exact(body, 8, "NXST_GROUP request")
        group_id = struct.unpack_from("!I", body)[0]
        if subtype == NXST_GROUP:
            return M.GroupStatsRequest(group_id, flags)
        return M.GroupDescRequest(flags, group_id)
    raise OFError("OFPBRC_BAD_EXP_TYPE", f"NX stats subtype {subtype}")


def encode_stats_request(msg):
    """(subtype, body) for an NX stats request, or None."""
    if isinstance(msg, (M.FlowStatsRequest, M.AggregateStatsRequest)) and msg.nxm:
        raw, padded = _nxm(msg.match, msg.cookie, msg.cookie_mask)
        sub = NXST_FLOW if isinstance(msg, M.FlowStatsRequest) else NXST_AGGREGATE
        table = 255 if msg.table is None else msg.table
        return sub, _FLOW_REQ.pack(_port_val(msg.out_port), len(raw), table) + padded
    if isinstance(msg, M.GroupStatsRequest):
        return NXST_GROUP, struct.pack("!I4x", msg.group_id)
    if isinstance(msg, M.GroupDescRequest):
        return NXST_GROUP_DESC, struct.pack("!I4x", msg.group_id)
    return None


def decode_stats_reply(subtype, body, flags, acts):
    if subtype == NXST_FLOW:
        flows, off = [], 0
        while off < len(body):
            need(body[off:], _FLOW_STATS.size, "NXST_FLOW entry")
            (length, table_id, dsec, dnsec, priority, idle, hard, match_len,
             idle_age, hard_age, cookie, packets, nbytes) = _FLOW_STATS.unpack_from(body, off)
            if length < _FLOW_STATS.size or off + length > len(body):
                raise OFError("OFPBRC_BAD_LEN", f"flow entry length {length}")
            entry = body[off:off + length]
            match, a_off = _match_end(entry, _FLOW_STATS.size, match_len)
            flows.append(M.FlowStats(      # ages go as age + 1, 0 = unknown (as OVS)
                table_id, match, priority, acts[0](entry[a_off:]), dsec, dnsec,
                idle, hard, cookie, packets, nbytes,
                idle_age=idle_age - 1 if idle_age else None,
                hard_age=hard_age - 1 if hard_age else None))
            off += length
        return M.FlowStatsReply(tuple(flows), flags, nxm=True)
    if subtype == NXST_AGGREGATE:
        exact(body, _AGG_REPLY.size, "NXST_AGGREGATE reply")
        return M.AggregateStatsReply(*_AGG_REPLY.unpack(body), flags, nxm=True)
    if subtype == NXST_GROUP_DESC:
        return M.GroupDescReply(_decode_group_descs15(body, acts), flags)
    if subtype == NXST_GROUP:
        from pyvswitch.openflow import mp13
        return M.GroupStatsReply(mp13.decode_group_stats(body), flags)
    raise OFError("OFPBRC_BAD_EXP_TYPE", f"NX stats subtype {subtype}")


def _age(age):
    """NXST_FLOW's idle_age/hard_age field: age + 1, 0 when unknown."""
    return 0 if age is None or age < 0 else min(int(age) + 1, 0xFFFF)


_GROUP_DESC15 = struct.Struct("!HBxIH6x")


def _decode_group_descs15(body, acts):
    """OpenFlow 1.5 ofp_group_desc entries (NXST_GROUP_DESC reply)."""
    groups, off = [], 0
    while off < len(body):
        need(body[off:], _GROUP_DESC15.size, "NXST_GROUP_DESC entry")
        length, gtype, group_id, blen = _GROUP_DESC15.unpack_from(body, off)
        end = off + _GROUP_DESC15.size + blen
        if gtype not in _GROUP_TYPES or length < _GROUP_DESC15.size + blen \
                or off + length > len(body):
            raise OFError("OFPBRC_BAD_LEN", f"group desc length {length}")
        buckets = decode_buckets15(body[off + _GROUP_DESC15.size:end], acts)
        groups.append(M.GroupDesc(_GROUP_TYPES[gtype], group_id, buckets))
        off += length
    return tuple(groups)


def _encode_group_descs15(groups, acts):
    out = []
    for g in groups:
        buckets = encode_buckets15(g.group_type, g.buckets, acts)
        out.append(_GROUP_DESC15.pack(_GROUP_DESC15.size + len(buckets),
                                      _GROUP_TYPE_IDS[g.group_type], g.group_id,
                                      len(buckets)) + buckets)
    return b"".join(out)


def encode_stats_reply(msg, acts):
    if isinstance(msg, M.FlowStatsReply) and msg.nxm:
        out = []
        for f in msg.flows:
            raw, padded = _nxm(f.match)
            actions = acts[1](f.actions)
            length = _FLOW_STATS.size + len(padded) + len(actions)
            out.append(_FLOW_STATS.pack(
                length, f.table_id, f.duration_sec, f.duration_nsec, f.priority,
                f.idle_timeout, f.hard_timeout, len(raw), _age(f.idle_age), _age(f.hard_age),
                f.cookie, f.packet_count, f.byte_count) + padded + actions)
        return NXST_FLOW, b"".join(out)
    if isinstance(msg, M.AggregateStatsReply) and msg.nxm:
        return NXST_AGGREGATE, _AGG_REPLY.pack(msg.packet_count, msg.byte_count,
                                               msg.flow_count)
    if isinstance(msg, M.GroupDescReply):
        return NXST_GROUP_DESC, _encode_group_descs15(msg.groups, acts)
    if isinstance(msg, M.GroupStatsReply):
        from pyvswitch.openflow import mp13
        return NXST_GROUP, mp13.encode_group_stats(msg.groups)
    if isinstance(msg, (M.FlowStatsReply, M.AggregateStatsReply)):
        return None
    raise EncodeError(f"{type(msg).__name__} has no NX form")
