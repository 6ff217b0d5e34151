"""xlate of an output to a patch port: the translation continues in the peer
bridge, as Open vSwitch's patch_port_output.

A patch port has no datapath port. Sending a packet to one runs the peer
bridge's pipeline from table 0 with in_port = the peer port, inside the same
translation: the two bridges produce one action list and one megaflow, the
packet is handled in one datapath pass and never copied, and nothing is
transmitted or received on the patch ports themselves.

Crossing, as OVS does it: the peer sees the packet's headers as they are at
the output (the VLAN the output gives it included), with metadata, registers
and tunnel fields zeroed, an empty action set and its own mirrors; after the
peer's pipeline (and its action set) the calling bridge resumes with its own
flow, table, rule, action set and mirror state back, while the datapath
packet keeps whatever the peer committed (the next output commits the
difference). Errors in the peer stay there, except running out of depth or
resubmits, which end the whole translation. Every crossing counts one level
against MAX_DEPTH, so bridges patched in a ring cannot loop forever.

Statistics: the crossing appends the patch port's tx counter and the peer's
rx counter to ctx.rules_hit; the revalidator credits them from the megaflow
like rules (ports/patch.py keeps them). Trace: the peer's tables are printed
under a `bridge("peer")` heading, as ovs-appctl ofproto/trace does.
Single-threaded, like xlate.
"""

from pyvswitch.openflow import fields as F
from pyvswitch.ofproto import mirror as MI
from pyvswitch.ofproto import xlate as X

_CLEARED = ("metadata", *[f"reg{r}" for r in range(F.N_REGS)], "conj_id",
            "tun_id", "tun_src", "tun_dst")


def patch_output(ctx, port, tci):
    peer = port.peer
    peer_port = peer[0].ports.get(peer[1]) if peer is not None else None
    if peer_port is None:
        ctx.note(f"-> patch port {port.name} has no peer, dropping", 1)
        return
    if ctx.depth >= X.MAX_DEPTH:
        ctx.error = f"over max translation depth {X.MAX_DEPTH}"
        ctx.note(ctx.error + ", dropping", 1)
        return
    for counters in (port.patch and port.patch.tx, peer_port.patch and peer_port.patch.rx):
        if counters is not None:
            ctx.rules_hit.append(counters)
    saved = (ctx.ofp, list(ctx.flow), ctx.table_id, ctx.rule, ctx.action_set,
             ctx.mirrored, ctx.in_port, ctx.in_tci, ctx.groups_seen)
    peer_ofp = peer[0]
    ctx.ofp, ctx.action_set, ctx.mirrored, ctx.groups_seen = peer_ofp, {}, set(), ()
    ctx.in_port, ctx.in_tci = peer_port.ofport, tci
    X.put(ctx.flow, "in_port", peer_port.ofport)
    X.put(ctx.flow, "vlan_tci", tci)
    for name in _CLEARED:
        if name in F.FLOW_FIELDS:
            X.put(ctx.flow, name, 0)
    if ctx.trace is not None:
        pad = " " * (4 * (ctx.depth - ctx.shift))
        head = f'bridge("{peer_ofp.name}")'
        ctx.trace += ["", pad + head, pad + "-" * len(head)]
    ctx.depth += 1
    ctx.shift += 1
    if peer_ofp.mirrors:
        MI.mirror_input(ctx, lambda p, t: X._emit(ctx, p, t, mirror=False))
    X._table(ctx, 0)
    if ctx.action_set and not ctx.error:
        X.XA.run_action_set(ctx)
    ctx.depth -= 1
    ctx.shift -= 1
    (ctx.ofp, flow, ctx.table_id, ctx.rule, ctx.action_set, ctx.mirrored,
     ctx.in_port, ctx.in_tci, ctx.groups_seen) = saved
    ctx.flow[:] = flow
    if ctx.error and not ctx.error.startswith("over "):
        ctx.error = None           # the peer's own errors do not propagate back
