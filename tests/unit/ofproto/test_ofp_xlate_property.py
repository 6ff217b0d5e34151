"""xlate's megaflow mask is sound: packets agreeing on it translate alike."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.datapath import layout
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate

MACS = [0x0A0000000001, 0x0A0000000002, 0x0A0000000003, 0xFFFFFFFFFFFF]
VIDS = [None, 0, 10, 20]

_MATCH = st.sampled_from([
    "", "in_port=1", "in_port=2", "dl_vlan=10", "dl_vlan=0xffff",
    "dl_dst=0a:00:00:00:00:02", "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00",
    "tcp", "tcp,tp_dst=80", "udp,tp_dst=0x50/0xf0", "ip,nw_dst=10.0.0.0/8",
    "vlan_tci=0x1000/0x1000"])
_ACTION = st.sampled_from([
    "output:1", "output:2", "output:3", "NORMAL", "FLOOD", "ALL", "in_port",
    "mod_vlan_vid:10", "mod_vlan_vid:20", "strip_vlan", "push_vlan:0x8100",
    "mod_vlan_pcp:3", "resubmit(,1)", "resubmit(2,1)", "resubmit:3"])


@st.composite
def bridges(draw):
    o = Ofproto("br0")
    o.add_port("p1", dp_port=11, tag=10)
    o.add_port("p2", dp_port=12)
    o.add_port("p3", dp_port=13, trunks=[10, 20])
    o.add_port("p4", dp_port=14, tag=20, vlan_mode="native-untagged")
    for vlan, mac, port in draw(st.lists(st.tuples(
            st.sampled_from([0, 10, 20]), st.sampled_from(MACS[:3]),
            st.integers(1, 4)), max_size=4)):
        o.fdb.learn(vlan, mac, port, 0.0)
    for _ in range(draw(st.integers(0, 8))):
        table = draw(st.integers(0, 1))
        acts = ",".join(draw(st.lists(_ACTION, max_size=3))) or "drop"
        match = draw(_MATCH)
        prio = draw(st.integers(0, 3))
        o.add_flow(f"table={table},priority={prio},{match},actions={acts}".replace(",,", ","))
    return o


@st.composite
def packets(draw):
    vid = draw(st.sampled_from(VIDS))
    return {
        "in_port": draw(st.sampled_from([11, 12, 13, 14])),
        "vlan_tci": 0 if vid is None else 0x1000 | vid | draw(st.integers(0, 7)) << 13,
        "dl_src": draw(st.sampled_from(MACS)),
        "dl_dst": draw(st.sampled_from(MACS)),
        "dl_type": draw(st.sampled_from([0x0800, 0x0806, 0x86DD])),
        "nw_proto": draw(st.sampled_from([6, 17, 1])),
        "nw_dst": draw(st.sampled_from([0x0A000001, 0x0B000001])),
        "tp_dst": draw(st.sampled_from([80, 81, 0x55, 443])),
    }


@settings(max_examples=300, deadline=None)
@given(bridges(), packets(), packets())
def test_mask_is_sound(br, p, noise):
    r = xlate(br, p, 0.0, learn=False)
    mask = layout.mask_fields(r.mask)
    q = {k: (p[k] & mask.get(k, 0)) | (noise[k] & ~mask.get(k, 0)) for k in p}
    r2 = xlate(br, q, 0.0, learn=False)
    assert r2.actions == r.actions, br.dump_flows() + str(mask)
    assert r2.rules_hit == r.rules_hit
    assert r2.error == r.error
