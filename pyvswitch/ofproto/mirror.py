"""Port mirroring (the DB Mirror table) in xlate.

What: a Mirror selects packets by the port they enter on (`src`), or the
port they leave through (`dst`), or every packet (`select_all`), optionally
only in some VLANs (`vlans`, empty = all), and sends a copy to `out_port`
(an ofport; RSPAN output_vlan is not supported). As in Open vSwitch, each
mirror sends at most one copy of a packet; a source-selected packet is copied
as it arrived (before any OpenFlow action changed it), a destination-selected
one as it leaves; a mirror never copies back to the packet's in_port or onto
the port it is already sent to.

`Ofproto.set_mirrors([...])` installs the list (the daemon turns the DB's
Mirror rows into Mirror objects, names into ofports); xlate calls
`mirror_input` before the pipeline and `mirror_output` after every output.
Single-threaded, like xlate.
"""

from dataclasses import dataclass, field

from pyvswitch.datapath import layout


@dataclass(frozen=True)
class Mirror:
    name: str
    out_port: int
    src: frozenset = field(default_factory=frozenset)
    dst: frozenset = field(default_factory=frozenset)
    select_all: bool = False
    vlans: frozenset = field(default_factory=frozenset)


def _vlan_ok(ctx, m):
    if not m.vlans:
        return True
    ctx.examine("vlan_tci", 0x1FFF)
    tci = ctx.in_tci
    vid = tci & layout.VLAN_VID_MASK if tci & layout.VLAN_CFI else 0
    return vid in m.vlans


def _copy(ctx, i, m, output):
    in_port = ctx.in_port
    if i in ctx.mirrored or m.out_port == in_port:
        return
    ctx.mirrored.add(i)
    ctx.note(f"-> mirror {m.name}: copy to port {m.out_port}", 1)
    output(m.out_port)


def mirror_input(ctx, output):
    """Copies of the packet as it arrived, for mirrors selecting its in_port."""
    for i, m in enumerate(ctx.ofp.mirrors):
        if (m.select_all or ctx.in_port in m.src) and _vlan_ok(ctx, m):
            _copy(ctx, i, m, output)


def mirror_output(ctx, ofport, output):
    """After an output to `ofport`: copies for mirrors selecting it."""
    for i, m in enumerate(ctx.ofp.mirrors):
        if ofport in m.dst and m.out_port != ofport and _vlan_ok(ctx, m):
            _copy(ctx, i, m, output)
