"""OpenFlow requests -> ofproto calls and replies (the switch's answers).

What: `handle(mgr, conn, xid, msg)` serves one decoded request from one
connection: features, config, roles, async config, barriers, flow mods,
packet-outs, the Nicira session switches, and every multipart/statistics
request from ofproto's state. Replies go out with `conn.send(reply, xid)`;
a refusal is an `OFError` raised to the connection, which answers with the
matching OFPT_ERROR.

What it needs from the switch is `mgr.view` (see connmgr.SwitchView):
ofproto and the lock guarding it, the clock, port descriptions and counters,
the datapath id, `execute` (packet-out through the datapath) and
`flows_changed` (drop cached translations). Packet-out translates the
OpenFlow actions with xlate's action handlers over the packet's own flow key
(in_port = the packet-out's in_port), then executes the datapath actions
with the lock released.

Barriers: requests are handled one at a time in arrival order, so at a
barrier every earlier request is done; flow mods only mark the datapath
stale, and `mgr.commit()` (revalidation) runs before a barrier reply and at
the end of every slice.

Groups and meters: served through ofproto's `group_mod`/`meter_mod` and
`group_descs`/`group_stats`/`meter_configs`/`meter_stats` when ofproto has
them; until then group/meter mods are refused with OFPBRC_BAD_TYPE and the
dumps are empty.

Threads: main thread only.
"""

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import nx, wire
from pyvswitch.openflow.text import FlowMod
from pyvswitch.ofproto import xlate as X
from pyvswitch.ofproto.ofproto import OfprotoError

N_TABLES = 254
MAX_BODY = 0xFFFF - 64            # room for headers when splitting replies
CAPS10 = 0x01 | 0x02 | 0x04 | 0x40 | 0x80     # flow, table, port, queue stats, arp
CAPS13 = 0x01 | 0x02 | 0x04 | 0x08 | 0x40     # flow, table, port, group, queue stats
ACTIONS10 = 0xFFF
OFPC_FRAG_MASK = 3
MODS = (FlowMod, M.PacketOut, M.GroupMod, M.PortMod, M.TableMod, M.MeterMod)


def handle(mgr, conn, xid, msg):
    if conn.role == "slave" and isinstance(msg, MODS):
        raise wire.OFError("OFPBRC_IS_SLAVE", "slave connection")
    fn = _HANDLERS.get(type(msg))
    if fn is None:
        if isinstance(msg, M.Experimenter):
            raise M.unsupported_experimenter(msg)
        raise wire.OFError("OFPBRC_BAD_TYPE", f"{type(msg).__name__} is not a request")
    fn(mgr, conn, xid, msg)


# --- session -----------------------------------------------------------------------------
def _features(mgr, conn, xid, msg):
    view = mgr.view
    ports = tuple(view.port_descs()) if conn.version == wire.OFP10 else ()
    if conn.version == wire.OFP10:
        reply = M.FeaturesReply(view.datapath_id(), 0, N_TABLES, CAPS10, ACTIONS10, 0, ports)
    else:
        reply = M.FeaturesReply(view.datapath_id(), 0, N_TABLES, CAPS13)
    conn.send(reply, xid)


def _set_config(mgr, conn, xid, msg):
    if msg.flags & ~OFPC_FRAG_MASK or msg.flags & OFPC_FRAG_MASK > 2:
        raise wire.OFError("OFPSCFC_BAD_FLAGS", f"flags {msg.flags:#x}")
    conn.config_flags, conn.miss_send_len = msg.flags, msg.miss_send_len


def _role(mgr, conn, xid, msg):
    if msg.role != "nochange":
        if msg.role != "equal" and not mgr.check_generation(msg.generation_id):
            raise wire.OFError("OFPRRFC_STALE", f"generation {msg.generation_id}")
        mgr.set_role(conn, msg.role)
    conn.send(M.RoleReply(conn.role, mgr.generation_id or 0), xid)


def _set_async(mgr, conn, xid, msg):
    conn.async_cfg = (tuple(msg.packet_in_mask), tuple(msg.port_status_mask),
                      tuple(msg.flow_removed_mask))


def _get_async(mgr, conn, xid, msg):
    pi, ps, fr = conn.async_cfg
    conn.send(M.GetAsyncReply(pi, ps, fr), xid)


def _barrier(mgr, conn, xid, msg):
    mgr.commit()
    conn.send(M.BarrierReply(), xid)


def _packet_in_format(mgr, conn, xid, msg):
    if msg.format != 0:   # NXT_PACKET_IN(2) is not implemented
        raise wire.OFError("OFPBRC_EPERM", f"packet-in format {msg.format}")


# --- modifications ------------------------------------------------------------------------
def _flow_mod(mgr, conn, xid, fm):
    view = mgr.view
    with view.lock:
        try:
            rules = view.ofproto.flow_mod(fm, view.now())
        except OfprotoError as e:
            raise wire.OFError(e.code or "OFPFMFC_UNKNOWN", str(e)) from None
    mgr.mark_dirty()
    if fm.command.startswith("delete"):
        mgr.flows_removed([r for r in rules if "send_flow_rem" in r.flags], "delete")
    if fm.buffer_id != M.NO_BUFFER:
        raise wire.OFError("OFPBRC_BUFFER_UNKNOWN", f"buffer {fm.buffer_id:#x}")


def _packet_out(mgr, conn, xid, po):
    if po.buffer_id != M.NO_BUFFER:
        raise wire.OFError("OFPBRC_BUFFER_UNKNOWN", f"buffer {po.buffer_id:#x}")
    view = mgr.view
    if len(po.data) < 14:
        raise wire.OFError("OFPBRC_BAD_PACKET", "packet shorter than an Ethernet header")
    mgr.commit()
    with view.lock:
        dp_actions, dp_in = translate(view.ofproto, view.packet_key, po.data,
                                      po.in_port, po.actions, view.now())
    if dp_actions:
        view.execute(po.data, dp_actions, dp_in)
    mgr.counters["packet_out"] += 1


def translate(ofp, packet_key, packet, in_port, actions, now):
    """Datapath actions for OpenFlow `actions` applied to `packet` arriving
    on ofport `in_port` (OFPP_CONTROLLER/LOCAL/NONE allowed);
    `packet_key(packet, dp_port)` parses it into a datapath flow key. Returns
    (actions, dp_port of in_port or 0). Raises OFError for a bad in_port."""
    dp_in = 0
    if in_port < F.OFPP_MAX or in_port == F.OFPP_LOCAL:
        port = ofp.ports.get(in_port)
        if port is None and in_port != F.OFPP_LOCAL:
            raise wire.OFError("OFPBRC_BAD_PORT", f"in_port {in_port}")
        dp_in = port.dp_port if port is not None and port.dp_port is not None else 0
    flow = X.to_words(packet_key(packet, dp_in))
    ctx = X._Ctx(ofp, flow, now, False, False, False)
    X.put(ctx.flow, "in_port", in_port)
    run = getattr(X, "run_actions", None)
    for action in actions:
        if ctx.error:
            break
        if isinstance(action, A.Output) and action.port == F.OFPP_TABLE:
            X._table(ctx, 0)
        elif type(action) not in X._HANDLERS:
            raise wire.OFError("OFPBAC_BAD_TYPE", f"{type(action).__name__} in packet-out")
        elif run is not None:
            run(ctx, [action])
        else:
            X._HANDLERS[type(action)](ctx, action)
    return ([] if ctx.error else ctx.actions), dp_in


def _group_mod(mgr, conn, xid, msg):
    _ofproto_mod(mgr, "group_mod", msg, "OFPGMFC_EPERM")


def _meter_mod(mgr, conn, xid, msg):
    _ofproto_mod(mgr, "meter_mod", msg, "OFPMMFC_UNKNOWN")


def _ofproto_mod(mgr, method, msg, default_error):
    view = mgr.view
    fn = getattr(view.ofproto, method, None)
    if fn is None:
        raise wire.OFError("OFPBRC_BAD_TYPE", f"{method} is not supported yet")
    with view.lock:
        try:
            removed = fn(msg, view.now()) or []
        except OfprotoError as e:
            raise wire.OFError(e.code or default_error, str(e)) from None
    mgr.mark_dirty()
    for reason in ("delete", "group_delete"):   # flows that used a deleted group/meter
        mgr.flows_removed([r for r in removed if r.removed_reason == reason
                           and "send_flow_rem" in r.flags], reason)


def _port_mod(mgr, conn, xid, msg):
    if not any(p.port_no == msg.port_no for p in mgr.view.port_descs()):
        raise wire.OFError("OFPPMFC_BAD_PORT", f"port {msg.port_no}")
    if msg.mask:
        raise wire.OFError("OFPPMFC_EPERM", "port configuration changes are not supported")


def _table_mod(mgr, conn, xid, msg):
    if msg.table_id != 0xFF and msg.table_id >= N_TABLES:
        raise wire.OFError("OFPTMFC_BAD_TABLE", f"table {msg.table_id}")


def _set_flow_format(mgr, conn, xid, msg):
    conn.flow_format = msg.format


def _flow_mod_table_id(mgr, conn, xid, msg):
    conn.flow_mod_table_id = bool(msg.enable)


# --- statistics -----------------------------------------------------------------------------
def _desc(mgr, conn, xid, msg):
    conn.send(M.DescReply("pyvswitch", "pyvswitch userspace switch",
                          mgr.view.version, "None", mgr.view.name), xid)


def _select(view, req):
    fm = FlowMod(command="dump", match=req.match, table=req.table,
                 cookie=req.cookie, cookie_mask=req.cookie_mask, out_port=req.out_port)
    return view.ofproto._select(fm, False)


def flow_stats(rule, now):
    dur = max(0.0, now - rule.created)
    return M.FlowStats(
        rule.table_id, rule.match, rule.priority, tuple(rule.actions), int(dur),
        int((dur % 1) * 1e9), rule.idle_timeout, rule.hard_timeout, rule.cookie,
        rule.n_packets, rule.n_bytes, nx.flags_to_bits(rule.flags),
        int(max(0.0, now - rule.used)), int(max(0.0, now - rule.modified)),
        getattr(rule, "write_actions", None), getattr(rule, "clear_actions", False),
        getattr(rule, "write_metadata", None), getattr(rule, "meter", None))


def _flow(mgr, conn, xid, req):
    view = mgr.view
    with view.lock:
        now = view.now()
        flows = [flow_stats(r, now) for r in _select(view, req)]
    nxm = req.nxm
    send_split(conn, xid, flows, lambda chunk, more: M.FlowStatsReply(chunk, more, nxm))


def _aggregate(mgr, conn, xid, req):
    view = mgr.view
    with view.lock:
        rules = _select(view, req)
        reply = M.AggregateStatsReply(sum(r.n_packets for r in rules),
                                      sum(r.n_bytes for r in rules), len(rules), 0, req.nxm)
    conn.send(reply, xid)


def _table(mgr, conn, xid, req):
    view = mgr.view
    with view.lock:
        stats = [view.ofproto.table_stats(t) for t in range(N_TABLES)]
    tables = tuple(M.TableStats(t, *stats[t], "", 0x3FFFFF, 1000000)
                   for t in range(N_TABLES))
    send_split(conn, xid, tables, lambda chunk, more: M.TableStatsReply(chunk, more))


def _port_stats(mgr, conn, xid, req):
    view = mgr.view
    ofports = [p.port_no for p in view.port_descs()]
    if req.port_no != F.OFPP_NONE:
        if req.port_no not in ofports:
            raise wire.OFError("OFPBRC_BAD_PORT", f"port {req.port_no}")
        ofports = [req.port_no]
    stats = []
    for ofport in ofports:
        s = view.port_stats(ofport) or {}
        dur = float(s.get("duration", 0.0))
        stats.append(M.PortStats(ofport, *(int(s.get(c, 0)) for c in M.PORT_COUNTERS),
                                 duration_sec=int(dur), duration_nsec=int(dur % 1 * 1e9)))
    send_split(conn, xid, stats, lambda chunk, more: M.PortStatsReply(chunk, more))


def _port_desc(mgr, conn, xid, req):
    send_split(conn, xid, list(mgr.view.port_descs()),
               lambda chunk, more: M.PortDescReply(chunk, more))


def _table_features(mgr, conn, xid, req):
    if req.tables:
        raise wire.OFError("OFPTFFC_EPERM", "table features cannot be changed")
    props = tuple((t, b"") for t in range(0, 16, 2))   # the 8 required ones
    # no table names (as Open vSwitch's unnamed tables): ovs-ofctl --names
    # would otherwise print table=table0
    tables = [M.TableFeatures(t, "", 2**64 - 1, 2**64 - 1, 0, 1000000, props)
              for t in range(N_TABLES)]
    send_split(conn, xid, tables, lambda chunk, more: M.TableFeaturesReply(chunk, more))


def _ofproto_dump(attr, make, timed=False):
    def handler(mgr, conn, xid, req):
        view = mgr.view
        fn = getattr(view.ofproto, attr, None)
        with view.lock:
            if fn is None:
                items = []
            else:
                items = list(fn(req, view.now()) if timed else fn(req))
        send_split(conn, xid, items, make)
    return handler


def _group_features(mgr, conn, xid, req):
    fn = getattr(mgr.view.ofproto, "group_features", None)
    conn.send(fn(req) if fn else M.GroupFeaturesReply(), xid)


def _meter_features(mgr, conn, xid, req):
    fn = getattr(mgr.view.ofproto, "meter_features", None)
    conn.send(fn(req) if fn else M.MeterFeaturesReply(), xid)


def send_split(conn, xid, items, make):
    """Send `items` in as many multipart replies as needed (flag 1 = more
    follows), each under 64 KiB."""
    items = list(items)
    if not items:
        conn.send(make((), 0), xid)
        return
    sizes = [len(wire.encode(make((it,), 0), conn.version)) for it in items]
    head = len(wire.encode(make((), 0), conn.version))
    chunks, cur, size = [], [], head
    for it, n in zip(items, sizes):
        body = n - head
        if cur and size + body > MAX_BODY:
            chunks.append(cur)
            cur, size = [], head
        cur.append(it)
        size += body
    chunks.append(cur)
    for i, chunk in enumerate(chunks):
        conn.send(make(tuple(chunk), 1 if i < len(chunks) - 1 else 0), xid)


_HANDLERS = {
    M.FeaturesRequest: _features,
    M.GetConfigRequest: lambda mgr, conn, xid, m: conn.send(
        M.GetConfigReply(conn.config_flags, conn.miss_send_len), xid),
    M.SetConfig: _set_config,
    M.RoleRequest: _role,
    M.SetAsync: _set_async,
    M.GetAsyncRequest: _get_async,
    M.BarrierRequest: _barrier,
    M.SetFlowFormat: _set_flow_format,
    M.FlowModTableId: _flow_mod_table_id,
    M.SetPacketInFormat: _packet_in_format,
    FlowMod: _flow_mod,
    M.PacketOut: _packet_out,
    M.GroupMod: _group_mod,
    M.MeterMod: _meter_mod,
    M.PortMod: _port_mod,
    M.TableMod: _table_mod,
    M.DescRequest: _desc,
    M.FlowStatsRequest: _flow,
    M.AggregateStatsRequest: _aggregate,
    M.TableStatsRequest: _table,
    M.PortStatsRequest: _port_stats,
    M.PortDescRequest: _port_desc,
    M.TableFeaturesRequest: _table_features,
    M.GroupDescRequest: _ofproto_dump("group_descs", lambda c, more: M.GroupDescReply(c, more)),
    M.GroupStatsRequest: _ofproto_dump("group_stats", lambda c, more: M.GroupStatsReply(c, more),
                                       timed=True),
    M.GroupFeaturesRequest: _group_features,
    M.MeterConfigRequest: _ofproto_dump("meter_configs",
                                        lambda c, more: M.MeterConfigReply(c, more)),
    M.MeterStatsRequest: _ofproto_dump("meter_stats", lambda c, more: M.MeterStatsReply(c, more),
                                       timed=True),
    M.MeterFeaturesRequest: _meter_features,
}
