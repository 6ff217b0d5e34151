"""Flow tables: flow mods, dump-flows, counters, timeouts, xlate of rules."""

import pytest

from pyvswitch.datapath import layout
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.ofproto.ofproto import Ofproto, OfprotoError
from pyvswitch.ofproto.xlate import MAX_DEPTH, xlate

MAC1, MAC2 = 0x0A0000000001, 0x0A0000000002


@pytest.fixture
def br():
    o = Ofproto("br0")
    for i in (1, 2, 3):
        o.add_port(f"p{i}", dp_port=10 + i)
    return o


def pkt(dp, **kw):
    d = {"in_port": dp, "dl_src": MAC1, "dl_dst": MAC2, "dl_type": 0x0800}
    d.update(kw)
    return d


def test_new_bridge_has_normal_flow():
    o = Ofproto("br0")
    assert o.dump_flows(now=1.5) == (
        " cookie=0x0, duration=1.500s, table=0, n_packets=0, n_bytes=0, "
        "idle_age=1, priority=0 actions=NORMAL\n")


def test_in_port_output_rule_mask(br):
    br.add_flow("in_port=1,priority=100,actions=output:2")
    r = xlate(br, pkt(11), 0.0)
    assert r.actions == [("output", 12)]
    assert layout.mask_fields(r.mask) == {"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF}
    assert [x.priority for x in r.rules_hit] == [100]
    # Another input port misses the in_port subtable and falls to NORMAL.
    r = xlate(br, pkt(12), 0.0, learn=False)
    assert set(layout.mask_fields(r.mask)) == {"in_port", "recirc_id", "vlan_tci", "dl_src", "dl_dst"}


def test_named_ports_and_port_specials(br):
    br.add_flow("in_port=p1,actions=output:p3,in_port,output:p1,LOCAL")
    r = xlate(br, pkt(11), 0.0)
    assert r.actions == [("output", 13), ("output", 11)]  # no LOCAL port, skip p1
    br.add_port("br0", dp_port=0)
    br.add_flow("in_port=p2,actions=flood")
    assert xlate(br, pkt(12), 0.0).actions == [("output", 11), ("output", 13),
                                                ("output", 0)]


def test_vlan_actions_are_minimal(br):
    br.add_flow("in_port=1,actions=mod_vlan_vid:10,output:2,output:3,"
                "strip_vlan,output:3,push_vlan:0x8100,mod_vlan_vid:20,"
                "mod_vlan_pcp:3,output:2")
    r = xlate(br, pkt(11), 0.0)
    assert r.actions == [("push_vlan", 10), ("output", 12), ("output", 13),
                         ("pop_vlan",), ("output", 13),
                         ("push_vlan", 20 | 3 << 13), ("output", 12)]
    assert layout.mask_fields(r.mask)["vlan_tci"] == 0xFFFF
    br.add_flow("in_port=2,actions=mod_vlan_vid:7,strip_vlan,output:1")
    assert xlate(br, pkt(12), 0.0).actions == [("output", 11)]   # no push+pop
    br.add_flow("in_port=3,actions=mod_vlan_vid:7,output:1")
    r = xlate(br, pkt(13, vlan_tci=0x1005 | 2 << 13), 0.0, set_vlan=True)
    assert r.actions == [("set_vlan", 7 | 2 << 13), ("output", 11)]
    r = xlate(br, pkt(13, vlan_tci=0x1005), 0.0)
    assert r.actions == [("pop_vlan",), ("push_vlan", 7), ("output", 11)]


def test_resubmit_and_goto(br):
    br.add_flow("in_port=1,actions=resubmit(,1),output:3")
    br.add_flow("table=1,tcp,actions=output:2")
    br.add_flow("table=1,priority=10,actions=goto_table:2")
    br.add_flow("table=2,actions=mod_vlan_vid:5,output:2")
    r = xlate(br, pkt(11, nw_proto=6), 0.0)
    assert r.actions == [("output", 12), ("output", 13)]
    r = xlate(br, pkt(11, nw_proto=17), 0.0)
    # VLAN changes made in a resubmitted table persist afterwards.
    assert r.actions == [("push_vlan", 5), ("output", 12), ("output", 13)]
    assert [x.table_id for x in r.rules_hit] == [0, 1, 2]
    mask = layout.mask_fields(r.mask)
    assert mask["nw_proto"] == 0xFF and mask["dl_type"] == 0xFFFF


def test_resubmit_in_port_substitution(br):
    br.add_flow("in_port=1,actions=resubmit:2")
    br.add_flow("in_port=2,actions=output:1,output:3")
    # During the resubmit in_port is 2, so output:1 is allowed.
    assert xlate(br, pkt(11), 0.0).actions == [("output", 11), ("output", 13)]


def test_resubmit_loops_are_dropped(br):
    br.add_flow("actions=output:2,resubmit(,0)")
    r = xlate(br, pkt(11), 0.0)
    assert r.actions == [] and "depth" in r.error
    assert len(r.rules_hit) == MAX_DEPTH + 1
    br.add_flow("actions=resubmit(,1),resubmit(,1)")
    for t in range(1, 20):
        br.add_flow(f"table={t},actions=resubmit(,{t + 1}),resubmit(,{t + 1})")
    r = xlate(br, pkt(11), 0.0)
    assert r.actions == [] and "resubmit" in r.error


def test_table_miss_drops_and_unknown_in_port(br):
    br.del_flows("")
    r = xlate(br, pkt(11), 0.0)
    assert r.actions == [] and r.rules_hit == []
    r = xlate(br, pkt(99), 0.0)
    assert r.actions == [] and r.error
    assert layout.mask_fields(r.mask) == {"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF}


def test_add_replace_modify_delete(br):
    v = br.version
    br.add_flow("cookie=0x1,priority=100,in_port=1,actions=output:2")
    br.add_flow("cookie=0x2,priority=200,in_port=1,tcp,actions=output:3")
    br.add_flow("cookie=0x3,table=1,in_port=2,actions=output:1")
    assert br.version > v
    assert len(list(br.rules())) == 4
    br.add_flow("cookie=0x1,priority=100,in_port=1,actions=output:3")  # replace
    assert len(list(br.rules())) == 4
    rules = br.mod_flows("in_port=1,actions=drop")            # non-strict
    assert {r.cookie for r in rules} == {1, 2}
    assert all(r.actions == () for r in rules)
    assert br.mod_flows("priority=100,actions=output:2", strict=True) == []
    assert len(br.mod_flows("priority=100,in_port=1,actions=output:2",
                            strict=True)) == 1
    assert br.del_flows("cookie=0x2/-1") and len(list(br.rules())) == 3
    assert br.del_flows("in_port=1,out_port=3") == []
    assert len(br.del_flows("in_port=1,out_port=2")) == 1
    assert br.del_flows("table=0,priority=0", strict=True)[0].priority == 0
    assert [r.table_id for r in br.rules()] == [1]
    v = br.version
    br.del_flows("")
    assert list(br.rules()) == [] and br.version > v


def test_flow_mod_errors(br):
    with pytest.raises(OfprotoError, match="BAD_TABLE_ID"):
        br.add_flow("table=3,actions=goto_table:2")
    with pytest.raises(FlowParseError, match="unknown port"):
        br.add_flow("actions=output:nope")
    with pytest.raises(FlowParseError, match="prerequisites"):
        br.add_flow("tp_dst=80,actions=drop")


def test_counters_and_dump(br):
    rule = br.add_flow("priority=100,in_port=1,actions=output:2", now=10.0)
    br.credit(rule, 10, 980, now=12.0)
    text = br.dump_flows("in_port=1", now=14.25)
    assert text == (" cookie=0x0, duration=4.250s, table=0, n_packets=10, "
                    "n_bytes=980, idle_age=2, priority=100,in_port=1 "
                    "actions=output:2\n")
    assert "in_port=p1" in br.dump_flows("in_port=1", now=14.0, names=True)
    assert br.dump_flows("out_port=3", now=14.0) == ""
    br.mod_flows("in_port=1,actions=output:3", now=13.0)
    assert "hard_age=1, " in br.dump_flows("in_port=1", now=14.25)


def test_idle_and_hard_timeouts(br):
    idle = br.add_flow("idle_timeout=10,in_port=1,actions=output:2", now=0.0)
    hard = br.add_flow("hard_timeout=30,in_port=2,actions=output:1", now=0.0)
    assert "idle_timeout=10, " in br.dump_flows("in_port=1", now=1.0)
    assert br.run(10.0) == []
    br.credit(idle, 1, 60, now=8.0)
    assert br.run(17.0) == []
    v = br.version
    assert br.run(18.5) == [idle] and idle.removed_reason == "idle"
    assert br.version > v
    br.credit(hard, 1, 60, now=29.0)
    assert br.run(30.0) == []
    assert br.run(30.5) == [hard] and hard.removed_reason == "hard"
    assert len(list(br.rules())) == 1


def test_ports_map(br):
    assert br.port("p2").ofport == 2 and br.port_by_dp(12).name == "p2"
    assert br.add_port("br0", dp_port=0).ofport == 0xFFFE
    with pytest.raises(OfprotoError):
        br.add_port("p1", dp_port=50)
    with pytest.raises(OfprotoError):
        br.add_port("p9", dp_port=11)
    with pytest.raises(OfprotoError, match="vlan_mode"):
        br.set_port_vlan("p1", vlan_mode="dot1q-tunnel")
    br.del_port("p2")
    assert br.add_port("p4", dp_port=20).ofport == 2
    v = br.version
    br.set_port_vlan("p4", tag=5)
    assert br.port("p4").tag == 5 and br.version > v
