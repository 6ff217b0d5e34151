"""OpenFlow 1.3 multipart (statistics) bodies: requests and replies.

What: `decode(body, request)` for an OFPT_MULTIPART_REQUEST/REPLY body (after
the 8-byte header) and `ENCODERS`, {message class: fn(msg) -> (type, body)},
which codec13.encode consults. Desc, flow, aggregate, table, port stats,
port desc, group (stats, desc, features), meter (stats, config, features)
and table features; queue and experimenter multiparts are refused
(OFPBRC_BAD_MULTIPART).

The shared helpers (lengths, strings, ports, instructions, buckets, bands)
are codec13's. Pure functions; any thread.
"""

import struct

from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import oxm
from pyvswitch.openflow.codec13 import (AGGREGATE, GROUP_TYPE_IDS, GROUP_TYPES, MP, T,
                                        _port_in, _port_out, _ports, bstr, cstr,
                                        decode_aggregate, decode_bands, decode_buckets,
                                        decode_desc, decode_instructions, encode_bands,
                                        encode_buckets, encode_desc, encode_instructions,
                                        encode_port, exact, need, no_body)
from pyvswitch.openflow.wire import OFError

_MP = struct.Struct("!HH4x")
_FLOW_REQ = struct.Struct("!B3xII4xQQ")
_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")
_TABLE_STATS = struct.Struct("!B3xIQQ")
_PORT_STATS = struct.Struct("!I4x12QII")
_ID_REQ = struct.Struct("!I4x")
_GROUP_STATS = struct.Struct("!H2xII4xQQII")
_GROUP_DESC = struct.Struct("!HBxI")
_GROUP_FEATURES = struct.Struct("!II4I4I")
_METER_STATS = struct.Struct("!IH6xIQQII")
_METER_CONFIG = struct.Struct("!HHI")
_METER_FEATURES = struct.Struct("!IIIBB2x")
_TABLE_FEATURES = struct.Struct("!HB5x32sQQII")


def decode(b, request):
    need(b, _MP.size)
    mtype, flags = _MP.unpack_from(b)
    body = b[_MP.size:]
    table = _MP_REQ if request else _MP_REP
    fn = table.get(mtype)
    if fn is None:
        raise OFError("OFPBRC_BAD_MULTIPART", f"multipart type {mtype}")
    return fn(body, flags)


def _d_flow_req(cls):
    def decode(b, flags):
        need(b, _FLOW_REQ.size)
        table, out_port, out_group, cookie, cookie_mask = _FLOW_REQ.unpack_from(b)
        match, off = oxm.decode_match(b, _FLOW_REQ.size)
        exact(b[off:], 0)
        return cls(match, None if table == 255 else table,
                   None if out_port == 0xFFFFFFFF else _port_in(out_port),
                   None if out_group == M.OFPG_ANY else out_group,
                   cookie, cookie_mask, flags)
    return decode


def _e_flow_req(mtype):
    def encode(m):
        body = _FLOW_REQ.pack(
            255 if m.table is None else m.table,
            0xFFFFFFFF if m.out_port is None else _port_out(m.out_port),
            M.OFPG_ANY if m.out_group is None else m.out_group, m.cookie,
            m.cookie_mask) + oxm.encode_match(m.match)
        return _mp(mtype, m.flags, body, True)
    return encode


def _d_flow_stats(b, flags):
    flows, off = [], 0
    while off < len(b):
        need(b[off:], _FLOW_STATS.size + 8)
        (length, table_id, dsec, dnsec, priority, idle, hard, fflags, cookie,
         packets, nbytes) = _FLOW_STATS.unpack_from(b, off)
        if length < _FLOW_STATS.size + 8 or off + length > len(b):
            raise OFError("OFPBRC_BAD_LEN", f"flow stats length {length}")
        entry = b[off:off + length]
        match, moff = oxm.decode_match(entry, _FLOW_STATS.size)
        ins = decode_instructions(entry[moff:])
        flows.append(M.FlowStats(table_id, match, priority, ins.pop("actions"), dsec,
                                 dnsec, idle, hard, cookie, packets, nbytes, fflags,
                                 **ins))
        off += length
    return M.FlowStatsReply(tuple(flows), flags)


def _e_flow_stats(m):
    out = []
    for f in m.flows:
        tail = oxm.encode_match(f.match) + encode_instructions(f, f.match)
        out.append(_FLOW_STATS.pack(
            _FLOW_STATS.size + len(tail), f.table_id, f.duration_sec, f.duration_nsec,
            f.priority, f.idle_timeout, f.hard_timeout, f.flags, f.cookie,
            f.packet_count, f.byte_count) + tail)
    return _mp(MP["FLOW"], m.flags, b"".join(out), False)


def _array(st, make):
    def decode(b, flags):
        if len(b) % st.size:
            raise OFError("OFPBRC_BAD_LEN", "array of fixed-size entries")
        return make(tuple(st.unpack_from(b, o) for o in range(0, len(b), st.size)), flags)
    return decode


def _d_id_req(cls, port=False):
    def decode(b, flags):
        exact(b, _ID_REQ.size)
        value = _ID_REQ.unpack(b)[0]
        if port:
            value = F.OFPP_NONE if value == 0xFFFFFFFF else _port_in(value)
        return cls(value, flags)
    return decode


def _d_group_stats(b, flags):
    return M.GroupStatsReply(decode_group_stats(b), flags)


def decode_group_stats(b):
    """ofp13_group_stats entries (also the body of NXST_GROUP replies)."""
    out, off = [], 0
    while off < len(b):
        need(b[off:], _GROUP_STATS.size)
        length, gid, ref, packets, nbytes, dsec, dnsec = _GROUP_STATS.unpack_from(b, off)
        if length < _GROUP_STATS.size or (length - _GROUP_STATS.size) % 16 \
                or off + length > len(b):
            raise OFError("OFPBRC_BAD_LEN", f"group stats length {length}")
        counters = tuple(struct.unpack_from("!QQ", b, o) for o in range(
            off + _GROUP_STATS.size, off + length, 16))
        out.append(M.GroupStats(gid, ref, packets, nbytes, dsec, dnsec, counters))
        off += length
    return tuple(out)


def encode_group_stats(groups):
    out = []
    for g in groups:
        counters = b"".join(struct.pack("!QQ", *c) for c in g.buckets)
        out.append(_GROUP_STATS.pack(_GROUP_STATS.size + len(counters), g.group_id,
                                     g.ref_count, g.packet_count, g.byte_count,
                                     g.duration_sec, g.duration_nsec) + counters)
    return b"".join(out)


def _e_group_stats(m):
    return _mp(MP["GROUP"], m.flags, encode_group_stats(m.groups), False)


def _d_group_desc(b, flags):
    out, off = [], 0
    while off < len(b):
        need(b[off:], _GROUP_DESC.size)
        length, gtype, gid = _GROUP_DESC.unpack_from(b, off)
        if length < _GROUP_DESC.size or off + length > len(b) or gtype not in GROUP_TYPES:
            raise OFError("OFPBRC_BAD_LEN", f"group desc length {length}")
        buckets = decode_buckets(b[off + _GROUP_DESC.size:off + length])
        out.append(M.GroupDesc(GROUP_TYPES[gtype], gid, buckets))
        off += length
    return M.GroupDescReply(tuple(out), flags)


def _e_group_desc(m):
    out = []
    for g in m.groups:
        buckets = encode_buckets(g.buckets)
        out.append(_GROUP_DESC.pack(_GROUP_DESC.size + len(buckets),
                                    GROUP_TYPE_IDS[g.group_type], g.group_id) + buckets)
    return _mp(MP["GROUP_DESC"], m.flags, b"".join(out), False)


def _d_meter_stats(b, flags):
    out, off = [], 0
    while off < len(b):
        need(b[off:], _METER_STATS.size)
        mid, length, flows, packets, nbytes, dsec, dnsec = _METER_STATS.unpack_from(b, off)
        if length < _METER_STATS.size or (length - _METER_STATS.size) % 16 \
                or off + length > len(b):
            raise OFError("OFPBRC_BAD_LEN", f"meter stats length {length}")
        bands = tuple(struct.unpack_from("!QQ", b, o) for o in range(
            off + _METER_STATS.size, off + length, 16))
        out.append(M.MeterStats(mid, flows, packets, nbytes, dsec, dnsec, bands))
        off += length
    return M.MeterStatsReply(tuple(out), flags)


def _e_meter_stats(m):
    out = []
    for s in m.meters:
        bands = b"".join(struct.pack("!QQ", *c) for c in s.bands)
        out.append(_METER_STATS.pack(s.meter_id, _METER_STATS.size + len(bands),
                                     s.flow_count, s.packet_in_count, s.byte_in_count,
                                     s.duration_sec, s.duration_nsec) + bands)
    return _mp(MP["METER"], m.flags, b"".join(out), False)


def _d_meter_config(b, flags):
    out, off = [], 0
    while off < len(b):
        need(b[off:], _METER_CONFIG.size)
        length, mflags, mid = _METER_CONFIG.unpack_from(b, off)
        if length < _METER_CONFIG.size or off + length > len(b):
            raise OFError("OFPBRC_BAD_LEN", f"meter config length {length}")
        bands = decode_bands(b[off + _METER_CONFIG.size:off + length])
        out.append(M.MeterConfig(mflags, mid, bands))
        off += length
    return M.MeterConfigReply(tuple(out), flags)


def _e_meter_config(m):
    out = []
    for c in m.meters:
        bands = encode_bands(c.bands)
        out.append(_METER_CONFIG.pack(_METER_CONFIG.size + len(bands), c.flags,
                                      c.meter_id) + bands)
    return _mp(MP["METER_CONFIG"], m.flags, b"".join(out), False)


def _d_table_features(cls):
    def decode(b, flags):
        out, off = [], 0
        while off < len(b):
            need(b[off:], _TABLE_FEATURES.size)
            length, tid, name, mm, mw, cfg, maxe = _TABLE_FEATURES.unpack_from(b, off)
            if length < _TABLE_FEATURES.size or off + length > len(b):
                raise OFError("OFPTFFC_BAD_LEN", f"table features length {length}")
            props, p, end = [], off + _TABLE_FEATURES.size, off + length
            while p < end:
                if p + 4 > end:
                    raise OFError("OFPTFFC_BAD_LEN", "truncated property")
                ptype, plen = struct.unpack_from("!HH", b, p)
                padded = (plen + 7) // 8 * 8
                if plen < 4 or p + padded > end:
                    raise OFError("OFPTFFC_BAD_LEN", f"property length {plen}")
                props.append((ptype, bytes(b[p + 4:p + plen])))
                p += padded
            out.append(M.TableFeatures(tid, cstr(name), mm, mw, cfg, maxe, tuple(props)))
            off += length
        return cls(tuple(out), flags)
    return decode


def _e_table_features(m, request):
    out = []
    for t in m.tables:
        props = b""
        for ptype, payload in t.properties:
            plen = 4 + len(payload)
            props += struct.pack("!HH", ptype, plen) + payload + bytes(-plen % 8)
        out.append(_TABLE_FEATURES.pack(_TABLE_FEATURES.size + len(props), t.table_id,
                                        bstr(t.name, 32), t.metadata_match,
                                        t.metadata_write, t.config, t.max_entries)
                   + props)
    return _mp(MP["TABLE_FEATURES"], m.flags, b"".join(out), request)


_MP_REQ = {
    MP["DESC"]: no_body(M.DescRequest),
    MP["FLOW"]: _d_flow_req(M.FlowStatsRequest),
    MP["AGGREGATE"]: _d_flow_req(M.AggregateStatsRequest),
    MP["TABLE"]: no_body(M.TableStatsRequest),
    MP["PORT_STATS"]: _d_id_req(M.PortStatsRequest, port=True),
    MP["GROUP"]: _d_id_req(M.GroupStatsRequest),
    MP["GROUP_DESC"]: no_body(M.GroupDescRequest),
    MP["GROUP_FEATURES"]: no_body(M.GroupFeaturesRequest),
    MP["METER"]: _d_id_req(M.MeterStatsRequest),
    MP["METER_CONFIG"]: _d_id_req(M.MeterConfigRequest),
    MP["METER_FEATURES"]: no_body(M.MeterFeaturesRequest),
    MP["TABLE_FEATURES"]: _d_table_features(M.TableFeaturesRequest),
    MP["PORT_DESC"]: no_body(M.PortDescRequest),
}
_MP_REP = {
    MP["DESC"]: decode_desc,
    MP["FLOW"]: _d_flow_stats,
    MP["AGGREGATE"]: decode_aggregate,
    MP["TABLE"]: _array(_TABLE_STATS, lambda rows, flags: M.TableStatsReply(
        tuple(M.TableStats(*r) for r in rows), flags)),
    MP["PORT_STATS"]: _array(_PORT_STATS, lambda rows, flags: M.PortStatsReply(
        tuple(M.PortStats(_port_in(r[0]), *r[1:]) for r in rows), flags)),
    MP["GROUP"]: _d_group_stats,
    MP["GROUP_DESC"]: _d_group_desc,
    MP["GROUP_FEATURES"]: lambda b, flags: (exact(b, _GROUP_FEATURES.size), (lambda v: M.GroupFeaturesReply(
        v[0], v[1], v[2:6], v[6:10], flags))(_GROUP_FEATURES.unpack(b)))[1],
    MP["METER"]: _d_meter_stats,
    MP["METER_CONFIG"]: _d_meter_config,
    MP["METER_FEATURES"]: lambda b, flags: (exact(b, _METER_FEATURES.size),
                                            M.MeterFeaturesReply(*_METER_FEATURES.unpack(b),
                                                                 flags))[1],
    MP["TABLE_FEATURES"]: _d_table_features(M.TableFeaturesReply),
    MP["PORT_DESC"]: lambda b, flags: M.PortDescReply(_ports(b), flags),
}


def _mp(mtype, flags, body, request):
    return (T["MULTIPART_REQUEST"] if request else T["MULTIPART_REPLY"],
            _MP.pack(mtype, flags) + body)


def _mp_empty(name, request=True):
    return lambda m: _mp(MP[name], m.flags, b"", request)



ENCODERS = {
    M.DescRequest: _mp_empty("DESC"),
    M.DescReply: lambda m: _mp(MP["DESC"], m.flags, encode_desc(m), False),
    M.FlowStatsRequest: _e_flow_req(MP["FLOW"]),
    M.AggregateStatsRequest: _e_flow_req(MP["AGGREGATE"]),
    M.FlowStatsReply: _e_flow_stats,
    M.AggregateStatsReply: lambda m: _mp(MP["AGGREGATE"], m.flags, AGGREGATE.pack(
        m.packet_count, m.byte_count, m.flow_count), False),
    M.TableStatsRequest: _mp_empty("TABLE"),
    M.TableStatsReply: lambda m: _mp(MP["TABLE"], m.flags, b"".join(
        _TABLE_STATS.pack(t.table_id, t.active_count, t.lookup_count, t.matched_count)
        for t in m.tables), False),
    M.PortStatsRequest: lambda m: _mp(MP["PORT_STATS"], m.flags, _ID_REQ.pack(
        0xFFFFFFFF if m.port_no == F.OFPP_NONE else _port_out(m.port_no)), True),
    M.PortStatsReply: lambda m: _mp(MP["PORT_STATS"], m.flags, b"".join(
        _PORT_STATS.pack(_port_out(p.port_no), *(getattr(p, c) for c in M.PORT_COUNTERS),
                         p.duration_sec, p.duration_nsec) for p in m.ports), False),
    M.PortDescRequest: _mp_empty("PORT_DESC"),
    M.PortDescReply: lambda m: _mp(MP["PORT_DESC"], m.flags, b"".join(
        encode_port(p) for p in m.ports), False),
    M.GroupStatsRequest: lambda m: _mp(MP["GROUP"], m.flags, _ID_REQ.pack(m.group_id),
                                       True),
    M.GroupStatsReply: _e_group_stats,
    M.GroupDescRequest: _mp_empty("GROUP_DESC"),
    M.GroupDescReply: _e_group_desc,
    M.GroupFeaturesRequest: _mp_empty("GROUP_FEATURES"),
    M.GroupFeaturesReply: lambda m: _mp(MP["GROUP_FEATURES"], m.flags,
                                        _GROUP_FEATURES.pack(m.types, m.capabilities,
                                                             *m.max_groups, *m.actions),
                                        False),
    M.MeterStatsRequest: lambda m: _mp(MP["METER"], m.flags, _ID_REQ.pack(m.meter_id),
                                       True),
    M.MeterStatsReply: _e_meter_stats,
    M.MeterConfigRequest: lambda m: _mp(MP["METER_CONFIG"], m.flags,
                                        _ID_REQ.pack(m.meter_id), True),
    M.MeterConfigReply: _e_meter_config,
    M.MeterFeaturesRequest: _mp_empty("METER_FEATURES"),
    M.MeterFeaturesReply: lambda m: _mp(MP["METER_FEATURES"], m.flags,
                                        _METER_FEATURES.pack(m.max_meter, m.band_types,
                                                             m.capabilities, m.max_bands,
                                                             m.max_color), False),
    M.TableFeaturesRequest: lambda m: _e_table_features(m, True),
    M.TableFeaturesReply: lambda m: _e_table_features(m, False),
}
