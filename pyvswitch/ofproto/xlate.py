"""xlate: a packet's flow key -> datapath actions + megaflow mask.

What: runs one flow through the bridge's OpenFlow tables starting at table 0
and returns XlateResult(actions, mask, rules_hit, learned, ...). This module
holds the pipeline (tables with conjunctive matches, resubmit/goto_table,
instructions, the action set at the end), outputs and NORMAL;
xlate_actions.py the other OpenFlow actions (fields, registers, VLAN,
dec_ttl, controller, groups, meters); xlate_commit.py turns header changes
into datapath set actions just before anything leaves; xlate_patch.py
continues the translation in the peer bridge when a packet is output to a
patch port (one megaflow for both bridges). NORMAL works on bundles and
bonds (normal.py, bond.py); the bond buckets it uses join rules_hit.

Pipeline state (registers, metadata, conj_id) lives in flow words past the
datapath key: it starts at zero for every packet and never reaches a
megaflow mask (what it was computed from is un-wildcarded instead).

Datapath actions: ('output', dp_port), ('push_vlan', tci), ('pop_vlan',),
('set_vlan', tci) (only with set_vlan=True; otherwise pop then push), ('set',
field, value, mask), ('userspace', arg) (controller: ofproto.py keeps what arg
means); tci is vid | pcp << 13 without the 0x1000 bit; [] means drop. VLAN changes are
committed lazily just before each output, so the datapath only sees the
difference between what the packet has and what the output needs (no push
followed by pop).

Mask: a layout.py key mask with exactly the examined bits: every subtable the
classifier probed, in_port always (it is mapped to the ofport; as in OVS,
megaflows always match in_port exactly),
what NORMAL looks at (in_port, vlan_tci VID+CFI, dl_src, dl_dst; PCP too when
it re-tags a tagged frame), all of vlan_tci when an OpenFlow VLAN action
runs. in_port is exact whenever any of its bits was examined (the key holds
the dp_port, the tables match the ofport).

Limits: resubmit/goto nesting 64 deep and 4096 resubmits per packet, after
which the packet is dropped with `error` set. NORMAL learns unless
learn=False (revalidation) and reports changes in `learned` (the ofproto's
version also moves). Single-threaded: runs on the thread owning the ofproto.
"""

from dataclasses import dataclass, field

import numpy as np

from pyvswitch.datapath import layout
from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.ofproto import lacp as LACP
from pyvswitch.ofproto import mirror as MI
from pyvswitch.ofproto import normal as N
from pyvswitch.ofproto import recirc as RC
from pyvswitch.ofproto.xlate_commit import commit_fields

MAX_DEPTH = 64
MAX_RESUBMITS = 4096
CFI = layout.VLAN_CFI


@dataclass
class XlateResult:
    actions: list
    mask: np.ndarray
    rules_hit: list = field(default_factory=list)
    learned: list = field(default_factory=list)
    error: str | None = None
    controller: int = 0        # outputs to the controller (not sent anywhere yet)
    trace: list | None = None  # ofproto/trace lines when asked for
    final_tci: int = 0
    final_flow: list | None = None   # the flow words after the pipeline
    tables_hit: list = field(default_factory=list)   # table lookup counters (dump-tables)
    # fn(now) each: the side effects a later packet of this flow has besides
    # counters (NORMAL's fdb refresh, a learn action's idle time), so the
    # revalidator replays them from its xcache without translating again
    refreshes: list = field(default_factory=list)


class _Ctx:
    def __init__(self, ofp, flow, now, learn, set_vlan, trace):
        self.ofp, self.flow, self.now = ofp, flow, now
        self.learn, self.set_vlan = learn, set_vlan
        self.wc = [0] * F.FLOW_WORDS
        self.actions, self.rules_hit, self.learned = [], [], []
        self.tables_hit = []       # per lookup: its table's matched or missed counter
        self.refreshes = []        # XlateResult.refreshes
        self.trace = [] if trace else None
        self.depth = self.resubmits = self.controller = 0
        self.shift = 0             # patch crossings: levels the trace does not indent
        self.table_id = 0
        self.rule = None           # the rule whose actions run (controller cookie)
        self.error = None
        self.action_set = {}       # write_actions: slot -> action
        self.groups_seen = ()      # group chain, for loop protection
        tci = get(flow, "vlan_tci")
        self.in_tci = self.dp_tci = tci if tci & CFI else 0   # no tag, no PCP
        put(flow, "vlan_tci", self.in_tci)
        self.base = list(flow)     # the packet's headers as the datapath has them
        self.mirrored = set()      # mirrors that already sent their copy
        self.in_port = 0           # the ofport the packet came in on

    def note(self, text, extra=0):
        if self.trace is not None:
            self.trace.append(" " * (4 + 4 * (self.depth - self.shift) + extra) + text)

    def examine(self, name, mask=None):
        word, shift, bits = F.FLOW_FIELDS[name]
        self.wc[word] |= ((1 << bits) - 1 if mask is None else mask) << shift


def get(words, name):
    word, shift, bits = F.FLOW_FIELDS[name]
    return (words[word] >> shift) & ((1 << bits) - 1)


def put(words, name, value):
    word, shift, bits = F.FLOW_FIELDS[name]
    words[word] = (words[word] & ~(((1 << bits) - 1) << shift)) | (value << shift)


def to_words(key):
    """A layout key (np.uint64 array or {field: int}) as a FLOW_WORDS list."""
    if isinstance(key, dict):
        key = layout.pack_key(key)
    words = [int(w) for w in key]
    return words + [0] * (F.FLOW_WORDS - len(words))


def xlate(ofp, key, now, learn=True, set_vlan=False, trace=False, in_ofport=None):
    """in_ofport: start at this ofport instead of the key's dp_port (a trace
    entering by a patch port, which has no dp_port)."""
    flow = to_words(key)
    rid = get(flow, "recirc_id")
    frozen = RC.thaw(rid) if rid else None
    if frozen is not None:
        ofp = frozen.ofp                # the bridge that froze it (a patch may lie between)
    ctx = _Ctx(ofp, flow, now, learn, set_vlan, trace)
    ctx.examine("in_port")          # mapping dp_port -> ofport reads it
    if rid:
        return _resume(ctx, flow, rid, frozen)
    port = (ofp.port_by_dp(get(flow, "in_port")) if in_ofport is None
            else ofp.ports.get(in_ofport))
    if port is None:
        ctx.error = "no OpenFlow port for datapath port"
        ctx.note("drop (" + ctx.error + ")")
    else:
        put(flow, "in_port", port.ofport)
        ctx.in_port = port.ofport
        if ofp.bonds and _lacp_frame(ctx, port):
            return _result(ctx, flow)
        if ctx.ofp.mirrors:
            MI.mirror_input(ctx, lambda p, t: _emit(ctx, p, t, mirror=False))
        _table(ctx, 0)
        if ctx.action_set and not ctx.error:
            XA.run_action_set(ctx)
    return _result(ctx, flow)


def _resume(ctx, flow, rid, frozen):
    """A recirculated packet: resume the frozen translation (ct(table=N))."""
    if frozen is None:
        ctx.error = f"unknown recirc_id {rid:#x}"
        ctx.note("drop (" + ctx.error + ")")
        return _result(ctx, flow)
    flow[layout.KEY_WORDS:] = frozen.words
    put(flow, "in_port", frozen.in_port)
    ctx.in_port = frozen.in_port
    ctx.note("thaw")                    # OVS's words (the Flow line shows ct_state)
    ctx.note(f"Resuming from table {frozen.table}", 4)
    _table(ctx, frozen.table)
    if ctx.action_set and not ctx.error:
        XA.run_action_set(ctx)
    return _result(ctx, flow)


def _result(ctx, flow):
    if ctx.error:
        ctx.actions = []
    res = XlateResult(ctx.actions, _dp_mask(ctx.wc), ctx.rules_hit,
                      ctx.learned, ctx.error, ctx.controller, ctx.trace,
                      get(flow, "vlan_tci"), list(flow))
    res.tables_hit = ctx.tables_hit
    res.refreshes = ctx.refreshes
    return res


def _lacp_frame(ctx, port):
    """A LACPDU on a member of a bond running LACP goes to the daemon's LACP
    (OVS's process_special), not through the tables."""
    bond = ctx.ofp.bonds.get(port.bundle or port.name)
    if bond is None or bond.lacp is None:
        return False
    if not LACP.is_lacpdu(_field(ctx, "dl_dst"), _field(ctx, "dl_type")):
        return False
    ctx.note("-> LACP frame: handed to the bond's LACP", 1)
    ctx.actions.append(("userspace", LACP.SLOW_ARG))
    return True


def _dp_mask(wc):
    words = list(wc[:layout.KEY_WORDS])
    word, shift, bits = layout.FIELDS["in_port"]
    if (words[word] >> shift) & ((1 << bits) - 1):
        words[word] |= ((1 << bits) - 1) << shift
    # every megaflow matches recirc_id exactly, as OVS's: a flow translated for
    # a first pass must never catch a recirculated packet, nor the reverse
    word, shift, bits = layout.FIELDS["recirc_id"]
    words[word] |= ((1 << bits) - 1) << shift
    return np.array(words, dtype=np.uint64)


# --- tables ---------------------------------------------------------------------
def _table(ctx, table_id):
    rule = lookup(ctx, table_id)
    ctx.tables_hit.append(ctx.ofp.table_counter(table_id, rule is not None))
    if ctx.trace is not None:
        _trace_rule(ctx, table_id, rule)
    if rule is None:
        return                      # table miss: drop
    ctx.rules_hit.append(rule)
    saved = ctx.table_id, ctx.rule
    ctx.table_id, ctx.rule = table_id, rule
    acts = rule.actions
    goto = acts[-1] if acts and isinstance(acts[-1], A.GotoTable) else None
    if getattr(rule, "meter", None) is not None:
        ctx.note(f"meter:{rule.meter}")
        XA.meter(ctx, rule.meter)
    run_actions(ctx, acts[:-1] if goto else acts)
    if not ctx.error:
        XA.instructions(ctx, rule)
    if goto is not None and not ctx.error:
        ctx.note(goto.to_text())
        _resubmit(ctx, F.OFPP_IN_PORT, goto.table)
    ctx.table_id, ctx.rule = saved


def run_actions(ctx, actions):
    """Run an action list; a handler returning True ends the list (dec_ttl
    on an expired TTL)."""
    for action in actions:
        if ctx.error:
            return
        ctx.note(action.to_text(ctx.ofp.port_name))
        if _HANDLERS[type(action)](ctx, action):
            return


def lookup(ctx, table_id):
    """The rule for ctx.flow in table_id, conjunctive matches included: when
    every clause of a conjunction(id, k/n) set matches at a priority above
    the best ordinary rule, the rule matching conj_id=id decides (OVS's
    semantics); every clause rule probed is un-wildcarded."""
    ofp = ctx.ofp
    rule = ofp.lookup(table_id, ctx.flow, ctx.wc)
    clauses = ofp.conj_clauses(table_id)
    if not clauses:
        return rule
    floor = rule.priority if rule is not None else -1
    seen = {}
    for c in clauses:
        if c.priority <= floor:
            continue
        for i, m in enumerate(c.mask):
            ctx.wc[i] |= m
        if all(f & m == k for f, k, m in zip(ctx.flow, c.key, c.mask)):
            for a in c.actions:
                if isinstance(a, A.Conjunction):
                    seen.setdefault((c.priority, a.conj_id, a.n_clauses), set()).add(a.clause)
    done = sorted((p, cid) for (p, cid, n), ks in seen.items() if len(ks) == n)
    while done:
        prio, cid = done.pop()
        put(ctx.flow, "conj_id", cid)
        found = ofp.lookup(table_id, ctx.flow, ctx.wc)
        put(ctx.flow, "conj_id", 0)
        if found is not None and "conj_id" in found.match and found.priority >= floor:
            ctx.note(f"conjunction({cid}) matched at priority {prio}", -4)
            return found
    return rule


def _trace_rule(ctx, table_id, rule):
    from pyvswitch.openflow.match import format_match
    pad = " " * (1 + 4 * (ctx.depth - ctx.shift))
    if rule is None:
        ctx.trace.append(f"{pad}{table_id}. No match.")
        ctx.note("drop")
        return
    m = format_match(rule.match)
    head = f"{m}, priority {rule.priority}" if m else f"priority {rule.priority}"
    if rule.cookie:
        head += f", cookie {rule.cookie:#x}"
    ctx.trace.append(f"{pad}{table_id}. {head}")


def _resubmit(ctx, port, table):
    if ctx.depth >= MAX_DEPTH:
        ctx.error = f"over max translation depth {MAX_DEPTH}"
    elif ctx.resubmits >= MAX_RESUBMITS:
        ctx.error = f"over {MAX_RESUBMITS} resubmit actions"
    if ctx.error:
        ctx.note(ctx.error + ", dropping")
        return
    ctx.resubmits += 1
    old = get(ctx.flow, "in_port")
    if port != F.OFPP_IN_PORT:
        put(ctx.flow, "in_port", port)
    ctx.depth += 1
    _table(ctx, ctx.table_id if table == 255 else table)
    ctx.depth -= 1
    put(ctx.flow, "in_port", old)


# --- outputs and VLAN commits -----------------------------------------------------
def _commit_vlan(ctx, target):
    cur = ctx.dp_tci
    if target == cur:
        return
    if target == 0:
        ctx.actions.append(("pop_vlan",))
    elif cur == 0:
        ctx.actions.append(("push_vlan", target & ~CFI))
    elif ctx.set_vlan:
        ctx.actions.append(("set_vlan", target & ~CFI))
    else:
        ctx.actions += [("pop_vlan",), ("push_vlan", target & ~CFI)]
    if target and ctx.in_tci & CFI:
        ctx.examine("vlan_tci", 0xE000)   # the new tag may carry the input PCP
    ctx.dp_tci = target


def _emit(ctx, ofport, tci, mirror=True):
    port = ctx.ofp.ports.get(ofport)
    if port is None:
        ctx.note(f"-> output to nonexistent port {ofport}", 1)
        return
    tnl = getattr(ctx.ofp, "tnl", None)        # native tunnels (ofproto/tunnel.py)
    if port.dp_port is None:
        if getattr(port, "tunnel", None) is not None and tnl is not None:
            tnl.output(ctx, port, tci)
        else:
            XP.patch_output(ctx, port, tci)
    elif ofport == F.OFPP_LOCAL and tnl is not None and (pop := tnl.pop_port(ctx)):
        commit_fields(ctx)
        _commit_vlan(ctx, tci)
        ctx.note(f"-> tunnel termination: tnl_pop({pop[0]}), dst_port {pop[1]}", 1)
        ctx.actions.append(("tnl_pop", *pop))
    else:
        commit_fields(ctx)
        _commit_vlan(ctx, tci)
        ctx.actions.append(("output", port.dp_port))
    if mirror and ctx.ofp.mirrors:
        MI.mirror_output(ctx, ofport, lambda p, t: _emit(ctx, p, t, mirror=False))


def commit(ctx):
    """Make the datapath packet equal to ctx.flow (before a copy leaves for
    the controller, say)."""
    commit_fields(ctx)
    _commit_vlan(ctx, get(ctx.flow, "vlan_tci"))


def _field(ctx, name):
    """Read a flow field for a decision, un-wildcarding it."""
    ctx.examine(name)
    return get(ctx.flow, name)


def _output(ctx, act):
    port, in_port = act.port, get(ctx.flow, "in_port")
    tci = get(ctx.flow, "vlan_tci")
    ctx.examine("in_port")
    if port == F.OFPP_NORMAL:
        _normal(ctx, in_port, tci)
    elif port in (F.OFPP_FLOOD, F.OFPP_ALL):
        for p in sorted(ctx.ofp.ports):
            if p != in_port:
                _emit(ctx, p, tci)
    elif port == F.OFPP_IN_PORT:
        _emit(ctx, in_port, tci)
    elif port == F.OFPP_LOCAL:
        _emit(ctx, F.OFPP_LOCAL, tci)
    elif port == F.OFPP_CONTROLLER:
        XA.controller(ctx, A.Controller())
    elif port >= F.OFPP_MAX:
        ctx.note("-> unsupported output port, ignoring", 1)
    elif port == in_port:
        ctx.note("-> skipping output to input port", 1)
    else:
        _emit(ctx, port, tci)


def _normal(ctx, in_port, tci):
    for name, mask in (("in_port", None), ("vlan_tci", 0x1FFF),
                       ("dl_src", None), ("dl_dst", None)):
        ctx.examine(name, mask)
    ofp = ctx.ofp
    if MI.reserved(ofp, in_port):
        ctx.note(f"-> packet received on port {in_port}, which is reserved for mirroring", 1)
        return
    res = N.normal(ofp.ports, ofp.fdb, in_port, tci,
                   get(ctx.flow, "dl_src"), get(ctx.flow, "dl_dst"), ctx.now,
                   ctx.learn, bundles=ofp.bundles, bonds=ofp.bonds,
                   field=lambda name: _field(ctx, name))
    for line in res.trace:
        ctx.note("-> " + line, 1)
    ctx.rules_hit.extend(res.counters)
    ctx.refreshes.extend(res.refreshes)
    if res.pcp_used and tci & CFI:
        ctx.examine("vlan_tci", 0xE000)   # a tagged frame's PCP decides its output TCI
    if res.learned:
        ctx.learned.extend(res.learned)
        ctx.ofp.fdb_changed(mac for _vlan, mac, _port, _how in res.learned)
    cur = ctx.dp_tci
    for ofport, out_tci in sorted(res.outputs,
                                  key=lambda o: (o[1] != cur, o[1], o[0])):
        if not MI.reserved(ofp, ofport):
            _emit(ctx, ofport, out_tci)


_HANDLERS = {A.Output: _output}   # xlate_actions.py registers the others

from pyvswitch.ofproto import xlate_actions as XA  # noqa: E402  (registers handlers)
from pyvswitch.ofproto import xlate_patch as XP  # noqa: E402
