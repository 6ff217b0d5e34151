"""xlate's megaflow mask is sound: packets agreeing on it translate alike."""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.datapath import layout
from pyvswitch.openflow.text import parse_flow
from pyvswitch.openflow.text_actions import parse_instructions
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate

MACS = [0x0A0000000001, 0x0A0000000002, 0x0A0000000003, 0xFFFFFFFFFFFF]
VIDS = [None, 0, 10, 20]

_MATCH = st.sampled_from([
    "", "in_port=1", "in_port=2", "dl_vlan=10", "dl_vlan=0xffff",
    "dl_dst=0a:00:00:00:00:02", "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00",
    "tcp", "tcp,tp_dst=80", "udp,tp_dst=0x50/0xf0", "ip,nw_dst=10.0.0.0/8",
    "vlan_tci=0x1000/0x1000", "reg0=5", "reg1=0xa000001", "reg2=0x50/0xf0",
    "metadata=0x1/0x1", "ip,nw_ttl=1", "ip,nw_ttl=63", "conj_id=1", "conj_id=2"])
_ACTION = st.sampled_from([
    "output:1", "output:2", "output:3", "NORMAL", "FLOOD", "ALL", "in_port",
    "mod_vlan_vid:10", "mod_vlan_vid:20", "strip_vlan", "push_vlan:0x8100",
    "mod_vlan_pcp:3", "resubmit(,1)", "resubmit(2,1)", "resubmit:3",
    "mod_nw_dst:10.0.0.1", "mod_nw_src:11.0.0.1", "mod_tp_dst:80", "mod_tp_src:7",
    "mod_dl_dst:0a:00:00:00:00:02", "mod_nw_tos:8", "mod_nw_ecn:1", "dec_ttl",
    "load:5->NXM_NX_REG0[]", "move:NXM_OF_IP_DST[]->NXM_NX_REG1[]",
    "move:NXM_OF_TCP_DST[]->NXM_NX_REG2[0..15]", "output:NXM_NX_REG2[0..1]",
    "move:NXM_NX_REG1[]->NXM_OF_IP_SRC[]", "set_field:0x1->metadata",
    "controller", "write_actions(output:3)", "clear_actions", "conjunction(1,1/2)",
    "conjunction(1,2/2)", "conjunction(2,1/2)", "conjunction(2,2/2)"])


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
        acts = draw(st.lists(_ACTION, max_size=3))
        conj = [a for a in acts if a.startswith("conjunction")]
        acts = conj or acts              # a clause has only conjunction actions
        instr = [a for a in acts if a.startswith(("write_actions", "clear_actions"))]
        acts = ",".join([a for a in acts if a not in instr] + instr[:1]) or "drop"
        match = draw(_MATCH)
        prio = draw(st.integers(0, 3))
        # Actions parsed without the match: xlate must cope with packets that
        # lack a field's prerequisites (the parse-time check is not the guard).
        fm = parse_flow(f"table={table},priority={prio},{match},actions=drop".replace(",,", ","))
        o.add_flow(dataclasses.replace(fm, **parse_instructions(acts)))
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
        "nw_src": draw(st.sampled_from([0x0A000001, 0x0B000001])),
        "tp_dst": draw(st.sampled_from([80, 81, 0x55, 443])),
        "tp_src": draw(st.sampled_from([7, 8])),
        "nw_ttl": draw(st.sampled_from([0, 1, 2, 64])),
        "nw_tos": draw(st.sampled_from([0, 8, 9])),
        "nw_frag": draw(st.sampled_from([0, 1, 3])),
    }


@settings(max_examples=1000, deadline=None)
@given(bridges(), packets(), packets())
def test_mask_is_sound(br, p, noise):
    r = xlate(br, p, 0.0, learn=False)
    mask = layout.mask_fields(r.mask)
    q = {k: (p[k] & mask.get(k, 0)) | (noise[k] & ~mask.get(k, 0)) for k in p}
    r2 = xlate(br, q, 0.0, learn=False)
    assert r2.actions == r.actions, br.dump_flows() + str(mask)
    assert r2.rules_hit == r.rules_hit
    assert r2.error == r.error
