"""xlate across patch ports: one translation for both bridges, the flow put
back after the crossing, rings of bridges stopped by the depth limit, the
counters both ends credit, and a megaflow that stays sound (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.datapath import layout
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.trace import trace
from pyvswitch.ofproto.xlate import xlate
from pyvswitch.ports.patch import PatchPort

MAC_A, MAC_B, BCAST = 0x0A0000000001, 0x0A0000000002, 0xFFFFFFFFFFFF


def link(o0, n0, o1, n1, **vlan):
    """A patch pair n0 (on o0) <-> n1 (on o1)."""
    p0, p1 = PatchPort(n0, {"peer": n1}), PatchPort(n1, {"peer": n0})
    o0.add_port(n0, None, patch=p0, **vlan)
    o1.add_port(n1, None, patch=p1)
    o0.set_patch_peer(n0, (o1, o1.port(n1).ofport))
    o1.set_patch_peer(n1, (o0, o0.port(n0).ofport))
    return p0, p1


def pair(**vlan):
    b0, b1 = Ofproto("br0"), Ofproto("br1")
    b0.add_port("a", dp_port=1)
    b1.add_port("b", dp_port=2)
    p0, p1 = link(b0, "patch0", b1, "patch1", **vlan)
    return b0, b1, p0, p1


def pkt(dp, src=MAC_A, dst=BCAST, tci=0):
    return {"in_port": dp, "dl_src": src, "dl_dst": dst, "dl_type": 0x0800, "vlan_tci": tci}


def test_normal_crosses_and_learns_on_both_sides():
    b0, b1, p0, p1 = pair()
    r = xlate(b0, pkt(1), 0.0)
    assert r.actions == [("output", 2)]
    assert {(v, m) for v, m, *_ in r.learned} == {(0, MAC_A)}
    assert b0.fdb.lookup(0, MAC_A, 0.0) == b0.port("a").ofport
    assert b1.fdb.lookup(0, MAC_A, 0.0) == b1.port("patch1").ofport
    assert p0.tx in r.rules_hit and p1.rx in r.rules_hit
    assert xlate(b1, pkt(2, MAC_B, MAC_A), 1.0).actions == [("output", 1)]


def test_flow_is_put_back_after_the_crossing():
    b0, b1, _, _ = pair()
    b0.add_port("a2", dp_port=5)
    b0.del_flows("")
    b0.add_flow("actions=mod_vlan_vid:7,output:patch0,output:a2")
    b1.del_flows("")
    b1.add_flow("in_port=patch1,dl_vlan=7,actions=strip_vlan,mod_dl_dst:0a:00:00:00:00:09,output:b")
    r = xlate(b0, pkt(1), 0.0)
    # br1 stripped the tag and rewrote dl_dst on the packet; br0's own output
    # still wants its VLAN 7 and the original dl_dst back
    assert r.actions == [("set", "eth_dst", 0x0A0000000009, 2**48 - 1), ("output", 2),
                         ("set", "eth_dst", BCAST, 2**48 - 1), ("push_vlan", 7),
                         ("output", 5)]
    assert layout.get_field(r.final_flow, "vlan_tci") == 0x1007


def test_vlan_of_the_patch_port_applies():
    b0, b1, _, _ = pair(tag=10)          # patch0 is an access port of VLAN 10 on br0
    b0.port("a").trunks = frozenset()    # a: trunk
    r = xlate(b0, pkt(1, tci=0x100A), 0.0)
    assert r.actions == [("pop_vlan",), ("output", 2)]


def test_unlinked_patch_drops_and_trace_says_so():
    b0, b1, _, _ = pair()
    b0.set_patch_peer("patch0", None)
    assert xlate(b0, pkt(1), 0.0).actions == []
    assert "patch port patch0 has no peer, dropping" in trace(b0, pkt(1), 0.0)


def test_ring_of_bridges_hits_the_depth_limit():
    b = [Ofproto(f"br{i}") for i in range(3)]
    b[0].add_port("a", dp_port=1)
    for i in range(3):
        link(b[i], f"p{i}{(i + 1) % 3}", b[(i + 1) % 3], f"q{(i + 1) % 3}{i}")
    r = xlate(b[0], pkt(1), 0.0)
    assert r.error and "over max translation depth" in r.error and r.actions == []


def test_trace_heading_per_bridge():
    b0, b1, _, _ = pair()
    text = trace(b0, pkt(1), 0.0, learn=False)
    assert '\nbridge("br1")\n-------------\n 0. priority 0\n    NORMAL\n' in text
    assert text.endswith("Datapath actions: 2\n")


@st.composite
def packets(draw):
    vid = draw(st.sampled_from([None, 0, 10, 20]))
    return {"in_port": draw(st.sampled_from([1, 3])),
            "vlan_tci": 0 if vid is None else 0x1000 | vid | draw(st.integers(0, 7)) << 13,
            "dl_src": draw(st.sampled_from([MAC_A, MAC_B])),
            "dl_dst": draw(st.sampled_from([MAC_A, MAC_B, BCAST])),
            "dl_type": 0x0800, "nw_proto": 6, "tp_dst": draw(st.sampled_from([80, 81]))}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["", "tcp,tp_dst=80,actions=mod_vlan_vid:20,output:patch1",
                        "dl_vlan=10,actions=strip_vlan,NORMAL"]),
       packets(), packets())
def test_megaflow_across_the_pair_is_sound(br1_flow, p, noise):
    b0, b1, _, _ = pair(trunks=[10, 20])
    b0.add_port("a2", dp_port=3, tag=10)
    b1.add_port("b2", dp_port=4, tag=20)
    if br1_flow:
        b1.add_flow("priority=5,in_port=patch1," + br1_flow)
    r = xlate(b0, p, 0.0, learn=False)
    mask = layout.mask_fields(r.mask)
    q = {k: (p[k] & mask.get(k, 0)) | (noise[k] & ~mask.get(k, 0)) for k in p}
    assert xlate(b0, q, 0.0, learn=False).actions == r.actions
