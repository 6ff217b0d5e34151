"""The OpenFlow pipeline: set fields and commits, registers, dec_ttl, the
controller path, instructions and the action set, conjunctions, groups."""

import pytest

from pyvswitch.datapath import layout
from pyvswitch.openflow import messages as M
from pyvswitch.openflow.text import parse_actions
from pyvswitch.ofproto.ofproto import Ofproto, OfprotoError
from pyvswitch.ofproto.trace import trace
from pyvswitch.ofproto.xlate import xlate

TCP = {"in_port": 11, "dl_src": 0x0A0000000001, "dl_dst": 0x0A0000000002,
       "dl_type": 0x0800, "nw_proto": 6, "nw_src": 0x0A000001, "nw_dst": 0x0A000002,
       "nw_ttl": 64, "tp_src": 1000, "tp_dst": 80}
V6 = {"in_port": 11, "dl_type": 0x86DD, "nw_proto": 17, "nw_ttl": 9,
      "ipv6_src_hi": 0x20010DB800000000, "ipv6_src_lo": 1}
ARP = {"in_port": 11, "dl_type": 0x0806, "nw_proto": 1, "nw_src": 0x0A000001}


@pytest.fixture
def br():
    o = Ofproto("br0")
    for i in (1, 2, 3):
        o.add_port(f"p{i}", dp_port=10 + i)
    o.del_flows("")
    return o


def mask(r):
    """The examined fields, less recirc_id (exact in every megaflow)."""
    m = layout.mask_fields(r.mask)
    assert m.pop("recirc_id") == 0xFFFFFFFF
    return m


def test_set_fields_commit_minimally(br):
    br.add_flow("in_port=1,ip,actions=mod_nw_dst:10.0.0.2,set_field:10.1.0.0/16->nw_src,"
                "output:2,mod_tp_dst:443,output:3,mod_tp_dst:443,output:3")
    r = xlate(br, TCP, 0)
    assert r.actions == [("set", "ipv4_src", 0x0A010000, 0xFFFF0000), ("output", 12),
                         ("set", "tcp_dst", 443, 0xFFFF), ("output", 13), ("output", 13)]
    m = mask(r)
    # mod_nw_dst to the packet's own value: no set, but nw_dst must match
    assert m["nw_dst"] == 0xFFFFFFFF and m["nw_src"] == 0xFFFF0000
    assert m["tp_dst"] == 0xFFFF and m["nw_proto"] == 0xFF and m["nw_frag"] == 2


def test_set_needs_its_header(br):
    br.add_flow("in_port=1,actions=mod_tp_dst:1,mod_nw_src:1.1.1.1,mod_dl_dst:0a:00:00:00:00:09,"
                "output:2")
    assert xlate(br, ARP, 0).actions == [("set", "eth_dst", 0x0A0000000009, 2**48 - 1),
                                         ("output", 12)]
    assert mask(xlate(br, ARP, 0))["dl_type"] == 0xFFFF
    r = xlate(br, dict(TCP, nw_proto=17), 0)
    assert ("set", "udp_dst", 1, 0xFFFF) in r.actions
    r = xlate(br, dict(TCP, nw_frag=3), 0)          # later fragment: no ports
    assert not any(a[1].endswith("_dst") and a[1] != "eth_dst" for a in r.actions
                   if a[0] == "set")


def test_ipv6_fields_and_hlimit(br):
    br.add_flow("in_port=1,ipv6,actions=set_field:2001:db8::9->ipv6_src,dec_ttl,output:2")
    r = xlate(br, V6, 0)
    assert r.actions == [("set", "ipv6_src", 0x20010DB8 << 96 | 9, 2**128 - 1),
                         ("set", "ipv6_hlimit", 8, 0xFF), ("output", 12)]


def test_dec_ttl_expiry_drops_or_goes_to_controller(br):
    br.add_flow("in_port=1,actions=dec_ttl,output:2")
    r = xlate(br, dict(TCP, nw_ttl=1), 0)
    assert r.actions == [] and mask(r)["nw_ttl"] == 0xFF
    events = []
    br.on_packet_in = events.append
    r = xlate(br, dict(TCP, nw_ttl=1), 0)
    assert [a[0] for a in r.actions] == ["userspace"]
    ev = br.packet_in(b"\x00" * 60, r.actions[0][1], layout.pack_key(TCP), 0)
    assert ev.reason == 2 and ev.in_port == 1 and events == [ev]


def test_registers_never_reach_the_megaflow(br):
    br.add_flow("in_port=1,ip,actions=load:5->NXM_NX_REG0[],move:NXM_OF_IP_DST[]->NXM_NX_REG1[],"
                "resubmit(,1)")
    br.add_flow("table=1,reg0=5,reg1=0x0a000002,actions=output:2")
    r = xlate(br, TCP, 0)
    assert r.actions == [("output", 12)]
    assert mask(r) == {"in_port": 0xFFFF, "dl_type": 0xFFFF, "nw_dst": 0xFFFFFFFF}
    assert xlate(br, dict(TCP, nw_dst=0x0A000003), 0).actions == []


def test_output_reg_and_write_metadata(br):
    br.add_flow("in_port=1,actions=load:3->NXM_NX_REG2[0..15],output:NXM_NX_REG2[0..15],"
                "write_metadata:0x10/0xff,goto_table:1")
    br.add_flow("table=1,metadata=0x10/0xf0,actions=output:2")
    assert xlate(br, TCP, 0).actions == [("output", 13), ("output", 12)]


def test_action_set_order_and_clear(br):
    br.add_flow("in_port=1,actions=write_actions(output:3,mod_dl_src:0a:00:00:00:00:07),"
                "goto_table:1")
    br.add_flow("table=1,actions=write_actions(output:2)")
    r = xlate(br, TCP, 0)
    assert r.actions == [("set", "eth_src", 0x0A0000000007, 2**48 - 1), ("output", 12)]
    br.add_flow("table=1,actions=clear_actions")
    assert xlate(br, TCP, 0).actions == []


def test_controller_entries_and_packet_in(br):
    br.add_flow("in_port=1,cookie=0x77,actions=load:9->NXM_NX_REG3[],"
                "controller(max_len=20,userdata=01.02)")
    r = xlate(br, TCP, 0)
    (kind, arg), = r.actions
    assert kind == "userspace" and xlate(br, TCP, 0).actions == r.actions
    frame = bytes(range(60))
    ev = br.packet_in(frame, arg, layout.pack_key(TCP), 1.0)   # no consumer: counted
    assert ev.data == frame[:20] and ev.total_len == 60 and ev.reason == 1
    assert ev.cookie == 0x77 and ev.table_id == 0 and ev.match.get("reg3") == (9, 2**32 - 1)
    assert br.packet_in_stats == {"packet_in": 1, "dropped": 1, "unknown_arg": 0}
    assert br.packet_in(frame, 9999, layout.pack_key(TCP), 1.0) is None


def test_conjunctive_match(br):
    br.add_flow("priority=5,ip,nw_src=10.0.0.1,actions=conjunction(7,1/2)")
    br.add_flow("priority=5,ip,nw_src=10.0.0.9,actions=conjunction(7,1/2)")
    br.add_flow("priority=5,tcp,tp_dst=80,actions=conjunction(7,2/2)")
    br.add_flow("priority=5,conj_id=7,actions=output:2")
    br.add_flow("priority=1,actions=output:3")
    assert xlate(br, TCP, 0).actions == [("output", 12)]
    assert xlate(br, dict(TCP, tp_dst=81), 0).actions == [("output", 13)]
    assert xlate(br, dict(TCP, nw_src=0x0A000005), 0).actions == [("output", 13)]
    m = mask(xlate(br, dict(TCP, tp_dst=81), 0))
    assert m["tp_dst"] == 0xFFFF and m["nw_src"] == 0xFFFFFFFF
    assert len(br.dump_flows().splitlines()) == 5


def _group(br, text):
    from pyvswitch.openflow.text_group import parse_group
    br.group_mod(parse_group(text, "add", br.resolve))


def test_groups(br):
    _group(br, "group_id=1,type=all,bucket=mod_dl_src:0a:00:00:00:00:05,output:2,"
               "bucket=output:3")
    br.add_flow("in_port=1,actions=group:1,output:3")
    r = xlate(br, TCP, 0)
    assert r.actions == [("set", "eth_src", 0x0A0000000005, 2**48 - 1), ("output", 12),
                         ("set", "eth_src", 0x0A0000000001, 2**48 - 1), ("output", 13),
                         ("output", 13)]
    g = br.groups[1]
    assert g in r.rules_hit and g.bucket_stats[0] in r.rules_hit
    _group(br, "group_id=2,type=ff,bucket=watch_port:2,output:2,bucket=watch_port:3,output:3")
    br.add_flow("in_port=1,actions=group:2")
    assert xlate(br, TCP, 0).actions == [("output", 12)]
    br.set_port_live("p2", False)
    assert xlate(br, TCP, 0).actions == [("output", 13)]
    _group(br, "group_id=3,type=select,bucket=weight:1,output:2,bucket=weight:1,output:3")
    br.add_flow("in_port=1,actions=group:3")
    outs = {tuple(xlate(br, dict(TCP, tp_src=s), 0).actions) for s in range(40)}
    assert outs == {(("output", 12),), (("output", 13),)}
    assert mask(xlate(br, TCP, 0))["tp_src"] == 0xFFFF


def test_group_errors_change_nothing(br):
    _group(br, "group_id=1,type=indirect,bucket=output:2")
    with pytest.raises(OfprotoError, match="OFPGMFC_GROUP_EXISTS"):
        _group(br, "group_id=1,type=all,bucket=output:3")
    with pytest.raises(OfprotoError, match="OFPBAC_BAD_OUT_GROUP"):
        br.add_flow("actions=group:9")
    with pytest.raises(OfprotoError, match="exactly one bucket"):
        _group(br, "group_id=4,type=indirect")
    assert [d.group_type for d in br.group_descs()] == ["indirect"]
    br.add_flow("in_port=1,actions=group:1")
    removed = br.group_mod(M.GroupMod("delete", "all", M.OFPG_ALL))
    assert [r.removed_reason for r in removed] == ["group_delete"]
    assert br.dump_flows() == ""


def test_trace_multi_table(br):
    br.add_flow("in_port=1,actions=load:1->NXM_NX_REG0[],resubmit(,1),dec_ttl,output:3")
    br.add_flow("table=1,reg0=1,actions=mod_dl_dst:0a:00:00:00:00:09,resubmit(,2)")
    br.add_flow("table=2,actions=output:2")
    text = trace(br, TCP, 0)
    assert """
 0. in_port=1, priority 32768
    load:0x1->NXM_NX_REG0[]
    resubmit(,1)
     1. reg0=0x1, priority 32768
        mod_dl_dst:0a:00:00:00:00:09
        resubmit(,2)
         2. priority 32768
            output:p2
    dec_ttl
    output:p3
""" in text
    assert text.endswith("Datapath actions: set(eth(dst=0a:00:00:00:00:09)),12,"
                         "set(ipv4(ttl=63)),13\n")
    assert "dl_dst=0a:00:00:00:00:09" in text.split("Final flow:")[1]


def test_write_actions_parse_in_bucket_text():
    assert parse_actions("output:1,group:2")


def test_meter_rows_match_the_datapath_layout(br):
    from pyvswitch.datapath.kernels import meter as MT
    from pyvswitch.ofproto import groups as G
    for name in ("M_RATE", "M_CAP", "M_TOKENS", "M_LAST_NS", "M_PKTPS", "M_PASS_PKTS",
                 "M_PASS_BYTES", "M_DROP_PKTS", "M_DROP_BYTES", "METER_COLS"):
        assert getattr(G, name) == getattr(MT, name)
    from pyvswitch.openflow.text_group import parse_meter
    br.meter_mod(parse_meter("meter=1,pktps,burst,band=type=drop,rate=10,burst_size=5"))
    br.add_flow("in_port=1,actions=meter:1,output:2")
    r = xlate(br, TCP, 0)
    addr = br.meters[1].address
    assert r.actions == [("meter", addr), ("output", 12)]
    row = br.meters[1].row
    assert (row[MT.M_RATE], row[MT.M_CAP], row[MT.M_PKTPS]) == (10, 5000, 1)
    for i in range(8):
        MT.meter_pass_ref(row, 100, 1 + i)
    (s,) = br.meter_stats()
    assert (s.flow_count, s.packet_in_count, s.byte_in_count, s.bands) == (1, 8, 800, ((3, 300),))


def test_conjunction_clauses_follow_flow_mods(br):
    br.add_flow("priority=5,ip,nw_src=10.0.0.1,actions=conjunction(7,1/2)")
    br.add_flow("priority=5,tcp,tp_dst=80,actions=conjunction(7,2/2)")
    br.add_flow("priority=5,conj_id=7,actions=output:2")
    assert xlate(br, TCP, 0).actions == [("output", 12)]
    br.mod_flows("tcp,tp_dst=80,actions=output:3", strict=False)   # no longer a clause
    assert xlate(br, TCP, 0).actions == [("output", 13)]
    br.mod_flows("tcp,tp_dst=80,actions=conjunction(7,2/2)")
    assert xlate(br, TCP, 0).actions == [("output", 12)]
    br.del_flows("ip,nw_src=10.0.0.1")
    assert xlate(br, TCP, 0).actions == []
    assert len(br.dump_flows().splitlines()) == 2


def test_check_overlap_and_out_group(br):
    br.add_flow("priority=5,in_port=1,actions=output:2")
    with pytest.raises(OfprotoError, match="OFPFMFC_OVERLAP"):
        br.add_flow("priority=5,ip,check_overlap,actions=drop")
    br.add_flow("priority=6,ip,check_overlap,actions=drop")
    _group(br, "group_id=4,type=all,bucket=output:3")
    br.add_flow("priority=7,in_port=2,actions=group:4")
    assert br.dump_flows("out_group=4").count("\n") == 1
    assert br.dump_flows("", stats=False, sort=(None, False)).splitlines()[0] == \
        " priority=5,in_port=1 actions=output:2"


def test_mirrors(br):
    from pyvswitch.ofproto.mirror import Mirror
    br.add_flow("in_port=1,actions=mod_dl_src:0a:00:00:00:00:05,output:2")
    br.set_mirrors([Mirror("m1", 3, src=frozenset({1}))])
    r = xlate(br, TCP, 0)
    assert r.actions == [("output", 13), ("set", "eth_src", 0x0A0000000005, 2**48 - 1),
                         ("output", 12)]
    br.set_mirrors([Mirror("m2", 3, dst=frozenset({2}))])
    assert xlate(br, TCP, 0).actions == [("set", "eth_src", 0x0A0000000005, 2**48 - 1),
                                         ("output", 12), ("output", 13)]
    br.set_mirrors([Mirror("m3", 3, select_all=True, vlans=frozenset({10}))])
    r = xlate(br, TCP, 0)
    assert ("output", 13) not in r.actions and mask(r)["vlan_tci"] & 0xFFF == 0xFFF
    br.set_mirrors([Mirror("m4", 1, select_all=True)])    # never back to in_port
    assert xlate(br, TCP, 0).actions[-1] == ("output", 12)


def test_learn(br):
    br.add_flow("in_port=1,actions=learn(table=1,idle_timeout=10,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
                "load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[]),output:2")
    r = xlate(br, TCP, 5.0, learn=False)                 # revalidation: no side effect
    assert r.actions == [("output", 12)] and len(br.dump_flows().splitlines()) == 1
    assert mask(r)["dl_src"] == 2**48 - 1               # what learn read
    xlate(br, TCP, 5.0)
    flows = br.dump_flows("table=1", now=6.0)
    assert "idle_timeout=10," in flows and \
        "dl_dst=0a:00:00:00:00:01 actions=load:0x1->NXM_NX_REG0[0..15],output:1" in flows
    v = br.version
    xlate(br, TCP, 8.0)                                  # same flow again: refreshed only
    assert br.version == v and len(br.dump_flows().splitlines()) == 2
    xlate(br, TCP, 15.0, learn="refresh")
    assert br.run(20.0) == [] and len(br.run(26.0)) == 1  # idle 10 s after 15.0


def test_learn_delete_learned(br):
    br.add_flow("in_port=1,actions=learn(table=1,delete_learned,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
                "output:NXM_OF_IN_PORT[])")
    br.add_flow("in_port=2,actions=learn(table=2,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])")
    xlate(br, TCP, 0.0)
    xlate(br, dict(TCP, in_port=12), 0.0)
    assert len(br.dump_flows().splitlines()) == 4
    br.del_flows("in_port=1")
    assert br.dump_flows("table=1") == "" and br.dump_flows("table=2") != ""
    br.add_flow("in_port=1,actions=learn(table=1,delete_learned,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])")
    xlate(br, TCP, 0.0)
    removed = br.del_flows("")              # learning and learned flows, each once
    assert len(removed) == 4 and br.dump_flows() == ""
