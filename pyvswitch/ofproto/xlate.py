"""xlate: a packet's flow key -> datapath actions + megaflow mask.

What: runs one flow through the bridge's OpenFlow tables starting at table 0,
executing actions (output, NORMAL, FLOOD, ALL, LOCAL, IN_PORT, drop,
mod_vlan_vid/pcp, strip_vlan/pop_vlan, push_vlan, resubmit, goto_table) and
returns XlateResult(actions, mask, rules_hit, learned, ...).

Datapath actions: ('output', dp_port), ('push_vlan', tci), ('pop_vlan',),
('set_vlan', tci) (only with set_vlan=True; otherwise pop then push); tci is
vid | pcp << 13 without the 0x1000 bit; [] means drop. VLAN changes are
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
from pyvswitch.ofproto import normal as N

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


class _Ctx:
    def __init__(self, ofp, flow, now, learn, set_vlan, trace):
        self.ofp, self.flow, self.now = ofp, flow, now
        self.learn, self.set_vlan = learn, set_vlan
        self.wc = [0] * F.FLOW_WORDS
        self.actions, self.rules_hit, self.learned = [], [], []
        self.trace = [] if trace else None
        self.depth = self.resubmits = self.controller = 0
        self.table_id = 0
        self.error = None
        tci = get(flow, "vlan_tci")
        self.in_tci = self.dp_tci = tci if tci & CFI else 0   # no tag, no PCP
        put(flow, "vlan_tci", self.in_tci)

    def note(self, text, extra=0):
        if self.trace is not None:
            self.trace.append(" " * (4 + 4 * self.depth + extra) + text)

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


def xlate(ofp, key, now, learn=True, set_vlan=False, trace=False):
    flow = to_words(key)
    ctx = _Ctx(ofp, flow, now, learn, set_vlan, trace)
    ctx.examine("in_port")          # mapping dp_port -> ofport reads it
    port = ofp.port_by_dp(get(flow, "in_port"))
    if port is None:
        ctx.error = "no OpenFlow port for datapath port"
        ctx.note("drop (" + ctx.error + ")")
    else:
        put(flow, "in_port", port.ofport)
        _table(ctx, 0)
    if ctx.error:
        ctx.actions = []
    return XlateResult(ctx.actions, _dp_mask(ctx.wc), ctx.rules_hit,
                       ctx.learned, ctx.error, ctx.controller, ctx.trace,
                       get(flow, "vlan_tci"))


def _dp_mask(wc):
    words = list(wc[:layout.KEY_WORDS])
    word, shift, bits = layout.FIELDS["in_port"]
    if (words[word] >> shift) & ((1 << bits) - 1):
        words[word] |= ((1 << bits) - 1) << shift
    return np.array(words, dtype=np.uint64)


# --- tables ---------------------------------------------------------------------
def _table(ctx, table_id):
    rule = ctx.ofp.lookup(table_id, ctx.flow, ctx.wc)
    if ctx.trace is not None:
        _trace_rule(ctx, table_id, rule)
    if rule is None:
        return                      # table miss: drop
    ctx.rules_hit.append(rule)
    saved, ctx.table_id = ctx.table_id, table_id
    for action in rule.actions:
        if ctx.error:
            break
        ctx.note(action.to_text(ctx.ofp.port_name))
        _HANDLERS[type(action)](ctx, action)
    ctx.table_id = saved


def _trace_rule(ctx, table_id, rule):
    from pyvswitch.openflow.match import format_match
    pad = " " * (1 + 4 * ctx.depth)
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


def _emit(ctx, ofport, tci):
    port = ctx.ofp.ports.get(ofport)
    if port is None:
        ctx.note(f"-> output to nonexistent port {ofport}", 1)
        return
    _commit_vlan(ctx, tci)
    ctx.actions.append(("output", port.dp_port))


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
        ctx.controller += 1
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
    res = N.normal(ctx.ofp.ports, ctx.ofp.fdb, in_port, tci,
                   get(ctx.flow, "dl_src"), get(ctx.flow, "dl_dst"), ctx.now,
                   ctx.learn)
    for line in res.trace:
        ctx.note("-> " + line, 1)
    if res.learned:
        ctx.learned.extend(res.learned)
        ctx.ofp.bump()
    cur = ctx.dp_tci
    for ofport, out_tci in sorted(res.outputs,
                                  key=lambda o: (o[1] != cur, o[1], o[0])):
        _emit(ctx, ofport, out_tci)


# --- OpenFlow actions -------------------------------------------------------------
def _set_tci(ctx, tci):
    ctx.examine("vlan_tci")
    put(ctx.flow, "vlan_tci", tci)


def _set_vlan_vid(ctx, act):
    tci = get(ctx.flow, "vlan_tci")
    if tci & CFI or act.push_if_needed:
        _set_tci(ctx, CFI | (tci & 0xE000 if tci & CFI else 0) | act.vid)
    else:
        ctx.examine("vlan_tci")


def _set_vlan_pcp(ctx, act):
    tci = get(ctx.flow, "vlan_tci")
    if tci & CFI or act.push_if_needed:
        _set_tci(ctx, CFI | (tci & 0xFFF if tci & CFI else 0) | act.pcp << 13)
    else:
        ctx.examine("vlan_tci")


def _push_vlan(ctx, act):
    tci = get(ctx.flow, "vlan_tci")
    if tci & CFI or act.ethertype != 0x8100:
        ctx.examine("vlan_tci")
        ctx.note("-> only one 802.1Q tag is supported, push_vlan ignored", 1)
        return
    _set_tci(ctx, CFI)


_HANDLERS = {
    A.Output: _output,
    A.Controller: lambda ctx, a: setattr(ctx, "controller", ctx.controller + 1),
    A.SetVlanVid: _set_vlan_vid,
    A.SetVlanPcp: _set_vlan_pcp,
    A.StripVlan: lambda ctx, a: _set_tci(ctx, 0),
    A.PushVlan: _push_vlan,
    A.Resubmit: lambda ctx, a: _resubmit(ctx, a.port, a.table),
    A.GotoTable: lambda ctx, a: _resubmit(ctx, F.OFPP_IN_PORT, a.table),
}
