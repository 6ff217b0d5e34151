"""xlate's OpenFlow action handlers (the pipeline itself is xlate.py's).

Each handler takes (ctx, action) and changes ctx.flow, ctx.wc (the bits it
read), and through xlate's output/commit functions ctx.actions. Returning
True ends the current action list (dec_ttl on an expired TTL, as OVS).

- set_field / load / mod_* (SetField) and move: only when the packet has the
  field's prerequisites (dl_type, nw_proto are un-wildcarded to know); the
  written bits are un-wildcarded (see xlate_commit.py), the bits move reads
  too. Pipeline fields (registers, metadata) change only the flow.
- VLAN actions change vlan_tci in the flow; outputs commit it.
- dec_ttl: IPv4/IPv6 only; TTL <= 1 sends the packet to the controller
  (reason invalid_ttl) when ofproto has a packet-in consumer, else drops it.
- controller: commit, then ('userspace', arg) with arg from ofproto's
  controller table (reason, max_len, table, cookie, userdata, pipeline).
- group: xlate_group.py. meter (instruction or action): ('meter', addr) of
  the meter's token bucket, enforced by the datapath. ct: traced, left to
  the conntrack work. note, conjunction (outside a lookup): nothing.
- learn: the learned flow is added on upcalls (learn=True), its idle time
  refreshed when later packets of the megaflow are credited (the result's
  `refreshes`, or a replay with learn="refresh"); the fields it
  reads are un-wildcarded. delete_learned: the learned flows go when the
  learning flow is removed.
- instructions and the action set (write_actions / clear_actions /
  write_metadata), executed at the end of the pipeline in OpenFlow's order.
"""

from functools import partial

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.text import FlowMod, format_flow
from pyvswitch.ofproto import recirc as RC
from pyvswitch.ofproto import xlate as X
from pyvswitch.ofproto import xlate_commit as XC
from pyvswitch.ofproto import xlate_group

CFI = X.CFI
_PIPELINE = set(F.PIPELINE_FIELDS) | {"conj_id"}


# --- fields ---------------------------------------------------------------------
def prereqs_ok(ctx, name):
    pre = F.FIELDS[name].prereq
    if pre is None:
        return True
    types, protos, _ = F.PREREQS[pre]
    ctx.examine("dl_type")
    if X.get(ctx.flow, "dl_type") not in types:
        return False
    if protos is not None:
        ctx.examine("nw_proto")
        if X.get(ctx.flow, "nw_proto") not in protos:
            return False
    return True


def _flow_parts(name, value, mask):
    """(flow field, value, mask) triples of an OpenFlow field write."""
    return F.to_flow(F.FIELDS[name], value, mask)


def write_field(ctx, name, value, mask):
    """Masked write of an OpenFlow field into the flow, un-wildcarding it."""
    if name in ("vlan_vid", "vlan_pcp") and not X.get(ctx.flow, "vlan_tci") & CFI:
        ctx.examine("vlan_tci")
        ctx.note("-> packet has no VLAN tag, set_field ignored", 1)
        return
    for flow_name, v, m in _flow_parts(name, value, mask):
        if flow_name not in _PIPELINE:
            XC._examine(ctx, flow_name, m)
        cur = XC._read(ctx.flow, flow_name)
        XC._write(ctx.flow, flow_name, (cur & ~m) | (v & m), (1 << XC._bits(flow_name)) - 1)


def read_field(ctx, name, start, n_bits):
    """Bits [start, start+n_bits) of an OpenFlow field, un-wildcarded."""
    field = F.FIELDS[name]
    mask = ((1 << n_bits) - 1) << start
    total = 0
    for flow_name, _, m in _flow_parts(name, 0, mask):
        if flow_name not in _PIPELINE:
            XC._examine(ctx, flow_name, m)
    if field.bits == 128:
        total = XC._read(ctx.flow, name)
    elif field.flow is not None:
        total = XC._read(ctx.flow, field.flow) >> field.shift
    else:                                  # vlan_vid / vlan_pcp / dl_vlan
        tci = X.get(ctx.flow, "vlan_tci")
        total = {"vlan_vid": tci & 0x1FFF, "vlan_pcp": tci >> 13,
                 "dl_vlan": tci & 0xFFF, "dl_vlan_pcp": tci >> 13}[name]
    return (total >> start) & ((1 << n_bits) - 1)


def _set_field(ctx, act):
    if act.field in ("nw_src", "nw_dst") and not prereqs_ok(ctx, "nw_ttl"):
        ctx.note("-> not an IP packet, ignored", 1)   # ARP: nw_src is arp_spa
        return
    if not prereqs_ok(ctx, act.field):
        ctx.note(f"-> packet lacks the prerequisites of {act.field}, ignored", 1)
        return
    if act.field in ("tp_src", "tp_dst"):
        ctx.examine("nw_frag", 2)
        if X.get(ctx.flow, "nw_frag") & 2:
            ctx.note("-> later fragment has no L4 header, ignored", 1)
            return
    write_field(ctx, act.field, act.value, act.mask)


def _move(ctx, act):
    for name in (act.src, act.dst):
        if not prereqs_ok(ctx, name):
            ctx.note(f"-> packet lacks the prerequisites of {name}, ignored", 1)
            return
    value = read_field(ctx, act.src, act.src_start, act.n_bits)
    write_field(ctx, act.dst, value << act.dst_start,
                ((1 << act.n_bits) - 1) << act.dst_start)


def _output_reg(ctx, act):
    port = read_field(ctx, act.field, act.start, act.n_bits)
    ctx.note(f"-> output port from {act.field} is {port}", 1)
    X._output(ctx, A.Output(port))


# --- VLAN -----------------------------------------------------------------------
def _set_tci(ctx, tci):
    ctx.examine("vlan_tci")
    X.put(ctx.flow, "vlan_tci", tci)


def _set_vlan_vid(ctx, act):
    tci = X.get(ctx.flow, "vlan_tci")
    if tci & CFI or act.push_if_needed:
        _set_tci(ctx, CFI | (tci & 0xE000 if tci & CFI else 0) | act.vid)
    else:
        ctx.examine("vlan_tci")


def _set_vlan_pcp(ctx, act):
    tci = X.get(ctx.flow, "vlan_tci")
    if tci & CFI or act.push_if_needed:
        _set_tci(ctx, CFI | (tci & 0xFFF if tci & CFI else 0) | act.pcp << 13)
    else:
        ctx.examine("vlan_tci")


def _push_vlan(ctx, act):
    tci = X.get(ctx.flow, "vlan_tci")
    if tci & CFI or act.ethertype != 0x8100:
        ctx.examine("vlan_tci")
        ctx.note("-> only one 802.1Q tag is supported, push_vlan ignored", 1)
        return
    _set_tci(ctx, CFI)


# --- TTL and the controller --------------------------------------------------------
def _dec_ttl(ctx, act):
    ctx.examine("dl_type")
    if X.get(ctx.flow, "dl_type") not in (F.ETH_IP, F.ETH_IPV6):
        return False
    ctx.examine("nw_ttl")
    ttl = X.get(ctx.flow, "nw_ttl")
    if ttl > 1:
        X.put(ctx.flow, "nw_ttl", ttl - 1)
        return False
    if ctx.ofp.on_packet_in is not None:
        ctx.note("-> TTL expired: packet to the controller (invalid_ttl)", 1)
        controller(ctx, A.Controller(reason="invalid_ttl"))
    else:
        ctx.note("-> TTL expired and no controller: dropping", 1)
    return True


def controller(ctx, act):
    X.commit(ctx)
    rule = ctx.rule
    pipeline = tuple((n, X.get(ctx.flow, n)) for n in F.PIPELINE_FIELDS
                     if X.get(ctx.flow, n))
    arg = ctx.ofp.controller_arg(act.reason, act.max_len, ctx.table_id,
                                 rule.cookie if rule is not None else 0,
                                 act.userdata, act.controller_id, pipeline)
    ctx.actions.append(("userspace", arg))
    ctx.controller += 1


# --- instructions and the action set ---------------------------------------------
_SET_ORDER = {A.StripVlan: 1, A.PushVlan: 2, A.DecTtl: 3, A.SetVlanVid: 4,
              A.SetVlanPcp: 4, A.SetField: 4, A.Move: 4, A.Group: 6, A.Output: 7,
              A.OutputReg: 7, A.Controller: 7}


def _slot(act):
    if isinstance(act, A.SetField):
        return ("set", act.field)
    if isinstance(act, (A.SetVlanVid, A.SetVlanPcp)):
        return ("set", type(act).__name__)
    if isinstance(act, (A.Output, A.OutputReg, A.Controller)):
        return ("output",)
    return (type(act).__name__,)


def instructions(ctx, rule):
    if getattr(rule, "clear_actions", False):
        ctx.note("clear_actions")
        ctx.action_set = {}
    wa = getattr(rule, "write_actions", None)
    if wa is not None:
        ctx.note("write_actions(" + ",".join(a.to_text() for a in wa) + ")")
        for a in wa:
            ctx.action_set[_slot(a)] = a
    wm = getattr(rule, "write_metadata", None)
    if wm is not None:
        ctx.note(f"write_metadata:{wm[0]:#x}/{wm[1]:#x}")
        cur = X.get(ctx.flow, "metadata")
        X.put(ctx.flow, "metadata", (cur & ~wm[1]) | (wm[0] & wm[1]))


def run_action_set(ctx):
    """Execute the action set in OpenFlow's order; a group replaces output."""
    acts = sorted(ctx.action_set.values(), key=lambda a: _SET_ORDER.get(type(a), 5))
    if any(isinstance(a, A.Group) for a in acts):
        acts = [a for a in acts if _SET_ORDER.get(type(a)) != 7]
    ctx.action_set = {}
    if ctx.trace is not None:
        ctx.trace.append(" " * (1 + 4 * ctx.depth) + "Action set")
    X.run_actions(ctx, acts)


def meter(ctx, meter_id):
    """The packet goes through meter `meter_id`'s token bucket (datapath)."""
    m = ctx.ofp.meters.get(meter_id)
    if m is None:
        ctx.note(f"-> meter {meter_id} does not exist: drop", 1)
        ctx.error = ctx.error or f"meter {meter_id} does not exist"
        return
    if m.address is None:
        ctx.note(f"-> meter {meter_id} has no drop band: not enforced", 1)
        return
    ctx.actions.append(("meter", m.address))


def _meter(ctx, act):
    meter(ctx, act.meter_id)


def _refresh_learned(ofp, table, key, mask, priority, now):
    """A later packet of a flow that ran a learn action: the learned flow
    (if it is still there) was used now."""
    old = ofp._find_exact(table, key, mask, priority)
    if old is not None:
        old.used = max(old.used, now)


def _learn(ctx, act):
    """Build the learned flow from the packet (the fields read are
    un-wildcarded); add it on an upcall, refresh its idle time when the
    revalidator replays (learn="refresh"), nothing otherwise (trace,
    revalidation)."""
    match, actions = Match(), []
    for spec in act.specs:
        if spec[0] == "output":
            actions.append(A.Output(read_field(ctx, *spec[1:])))
            continue
        kind, dst, start, n, src = spec
        value = src[1] if src[0] == "imm" else read_field(ctx, src[1], src[2], n)
        mask = ((1 << n) - 1) << start
        if kind == "load":
            actions.append(A.SetField(dst, value << start, mask, "load"))
            continue
        pv, pm = match.get(dst) or (0, 0)
        match = match.with_field(dst, (pv & ~mask) | (value << start), pm | mask)
    try:
        match.check_prereqs()
    except ValueError as e:
        ctx.note(f"-> learned flow not added: {e}", 1)
        return
    fm = FlowMod("add", match, act.priority, tuple(actions), act.table, act.cookie,
                 idle_timeout=act.idle_timeout, hard_timeout=act.hard_timeout,
                 flags=act.flags - {"delete_learned"})
    ofp = ctx.ofp
    key, mask = match.key_mask()
    old = ofp._find_exact(act.table, key, mask, act.priority)
    refresh = partial(_refresh_learned, ofp, act.table, key, mask, act.priority)
    ctx.refreshes.append(refresh)
    ctx.note("-> learned " + format_flow(fm, ofp.port_name), 1)
    if ctx.learn is True:
        if old is not None and old.actions == fm.actions:
            old.used = old.modified = ctx.now
        else:
            rule = ofp.add_flow(fm, ctx.now)
            if "delete_learned" in act.flags:
                rule.learned_by = ctx.rule
    elif ctx.learn == "refresh":
        refresh(ctx.now)


def _ct(ctx, act):
    """ct(...): the datapath's ct action; with table=N the packet forks: a copy
    goes through the tracker and resumes at table N on a recirculated pass
    (frozen state, recirc.py), the original goes on untracked (as OVS)."""
    if act.zone_field is not None:
        f, start, n = act.zone_field
        ctx.examine(f)
        zone = (X.get(ctx.flow, f) >> start) & ((1 << n) - 1) & 0xFFFF
    else:
        zone = act.zone or 0
    mark = label = None
    for a in act.exec_actions:
        if isinstance(a, A.SetField) and a.field == "ct_mark":
            mark = (a.value & 0xFFFFFFFF, a.mask & 0xFFFFFFFF)
        elif isinstance(a, A.SetField) and a.field == "ct_label":
            label = (a.value, a.mask)
    if act.nat is not None:
        ctx.note("-> nat is not supported: the connection is tracked without it", 1)
    if (mark or label) and not act.commit:
        ctx.note("-> exec() needs commit: ignored", 1)
        mark = label = None
    X.commit(ctx)                               # the tracker sees the packet as it is now
    ct = ("ct", zone, act.commit, mark, label)
    if act.table is None:
        ctx.actions.append(ct)
        return
    rid = RC.freeze(ctx.ofp, act.table, X.get(ctx.flow, "in_port"), ctx.flow)
    ctx.note(f"-> A clone of the packet is forked to recirculate. The forked pipeline will be "
             f"resumed at table {act.table}.", 1)
    ctx.actions.append(("clone", [ct, ("recirc", rid)]))


def _ct_clear(ctx, act):
    for f in ("ct_state", "ct_zone", "ct_mark", "ct_label_hi", "ct_label_lo"):
        X.put(ctx.flow, f, 0)
    ctx.actions.append(("ct_clear",))


X._HANDLERS.update({
    A.Controller: controller,
    A.SetVlanVid: _set_vlan_vid,
    A.SetVlanPcp: _set_vlan_pcp,
    A.StripVlan: lambda ctx, a: _set_tci(ctx, 0),
    A.PushVlan: _push_vlan,
    A.Resubmit: lambda ctx, a: X._resubmit(ctx, a.port, a.table),
    A.GotoTable: lambda ctx, a: X._resubmit(ctx, F.OFPP_IN_PORT, a.table),
    A.SetField: _set_field,
    A.Move: _move,
    A.OutputReg: _output_reg,
    A.DecTtl: _dec_ttl,
    A.Group: xlate_group.group,
    A.Meter: _meter,
    A.Ct: _ct,
    A.CtClear: _ct_clear,
    A.Note: lambda ctx, a: None,
    A.Conjunction: lambda ctx, a: None,
    A.Learn: _learn,
})
