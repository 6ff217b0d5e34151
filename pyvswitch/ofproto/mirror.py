"""Port mirroring (the DB Mirror table) in xlate.

What: a Mirror selects packets by the port they enter on (`src`), or the
port they leave through (`dst`), or every packet (`select_all`), optionally
only in some VLANs (`vlans`, empty = all), and sends a copy either to
`out_port` (an ofport) or, with no out_port, to VLAN `out_vlan` (RSPAN:
flooded, tagged `out_vlan`, to every port that carries that VLAN and is not
a mirror output port; not when the packet is already in `out_vlan`, nor for
reserved multicast like STP). As Open vSwitch (ofproto-dpif-xlate.c,
mirror_packet):
- the VLAN a mirror selects on is the packet's VLAN as NORMAL sees it (an
  access port's tag for untagged frames); a frame its port would drop for its
  VLAN is not mirrored;
- a copy leaves as NORMAL would send that VLAN out of the output port (an
  access port strips the tag, a trunk keeps it);
- each mirror sends at most one copy of a packet, and mirrors that share a
  destination count as one;
- a source-selected packet is copied as it arrived (before any OpenFlow
  action changed it), a destination-selected one as it leaves;
- a mirror output port is reserved for mirroring: NORMAL neither floods to it
  nor forwards what arrives on it (`reserved`).
A copy never goes back out of the packet's own in_port.

Counters: each mirror's copies are counted like rules (a `Counters` object in
xlate's rules_hit, credited by the revalidator from megaflow statistics);
the daemon writes them to Mirror.statistics (tx_packets, tx_bytes).

`Ofproto.set_mirrors([...])` installs the list (the daemon turns the DB's
Mirror rows into Mirror objects, port names into ofports); xlate calls
`mirror_input` before the pipeline and `mirror_output` after every output.
Single-threaded, like xlate.
"""

from dataclasses import dataclass, field

from pyvswitch.ofproto import normal as N
from pyvswitch.ofproto.classifier import Counters  # noqa: F401  (a mirror's tx counters)


@dataclass(frozen=True)
class Mirror:
    name: str
    out_port: int | None
    src: frozenset = field(default_factory=frozenset)
    dst: frozenset = field(default_factory=frozenset)
    select_all: bool = False
    vlans: frozenset = field(default_factory=frozenset)
    out_vlan: int | None = None

    def dest(self):
        return (self.out_port, None) if self.out_port is not None else (None, self.out_vlan)


def output_ports(mirrors):
    return {m.out_port for m in mirrors if m.out_port is not None}


def reserved(ofp, ofport):
    """Is `ofport` a mirror output port? NORMAL neither sends to it nor
    forwards what arrives on it."""
    return bool(ofp.mirrors) and ofport in ofp.mirror_out


def mirror_input(ctx, output):
    """Copies of the packet as it arrived, for mirrors selecting its in_port."""
    port = ctx.ofp.ports.get(ctx.in_port)
    cands = [i for i, m in enumerate(ctx.ofp.mirrors)
             if m.select_all or ctx.in_port in m.src]
    if port is not None and cands:
        _mirror(ctx, port, ctx.in_tci, cands, output)


def mirror_output(ctx, ofport, output):
    """After an output to `ofport`: copies for mirrors selecting it."""
    cands = [i for i, m in enumerate(ctx.ofp.mirrors) if ofport in m.dst]
    port = ctx.ofp.ports.get(ofport)
    if port is not None and cands:
        from pyvswitch.ofproto.xlate import get     # (xlate imports this module)
        _mirror(ctx, port, get(ctx.flow, "vlan_tci"), cands, output)


def _mirror(ctx, port, tci, cands, output):
    cands = [i for i in cands if i not in ctx.mirrored]
    if not cands:
        return
    ctx.examine("vlan_tci", 0xFFFF)      # VLAN selection and the copies' tags
    vlan, _ = N.input_vlan(port, tci)
    if vlan is None:
        return
    pcp = tci >> 13 & 7 if tci & N.CFI else 0
    mirrors = ctx.ofp.mirrors
    for i in cands:
        m = mirrors[i]
        if i in ctx.mirrored or (m.vlans and vlan not in m.vlans):
            continue
        dest = m.dest()
        ctx.mirrored.update(j for j, o in enumerate(mirrors) if o.dest() == dest)
        if m.out_port is not None:
            sent = _copy_to(ctx, m, m.out_port, vlan, pcp, output)
        else:
            sent = _flood_rspan(ctx, m, vlan, pcp, output)
        stats = ctx.ofp.mirror_stats.get(m.name)
        if sent and stats is not None:
            ctx.rules_hit.append(stats)      # one packet, however many ports


def _copy_to(ctx, m, ofport, vlan, pcp, output):
    port = ctx.ofp.ports.get(ofport)
    if port is None or ofport == ctx.in_port:
        return 0
    out_tci = N.output_tci(port, vlan, pcp)
    ctx.note(f"-> mirror {m.name}: copy to port {ofport}", 1)
    _call(output, ofport, out_tci)
    return 1


def _flood_rspan(ctx, m, vlan, pcp, output):
    from pyvswitch.ofproto.xlate import get
    ctx.examine("dl_dst")
    if m.out_vlan is None or vlan == m.out_vlan or N.is_reserved(get(ctx.flow, "dl_dst")):
        return 0
    sent = 0
    for ofport in sorted(ctx.ofp.ports):
        port = ctx.ofp.ports[ofport]
        if ofport == ctx.in_port or ofport in ctx.ofp.mirror_out:
            continue
        if N.includes_vlan(port, m.out_vlan):
            ctx.note(f"-> mirror {m.name}: copy to port {ofport} in VLAN {m.out_vlan}", 1)
            _call(output, ofport, N.output_tci(port, m.out_vlan, pcp))
            sent += 1
    return sent


def _call(output, ofport, tci):
    output(ofport, tci)