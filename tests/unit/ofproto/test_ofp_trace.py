"""ofproto/trace text."""

from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.trace import trace

PKT = {"in_port": 11, "dl_src": 0x0A0000000001, "dl_dst": 0xFFFFFFFFFFFF,
       "dl_type": 0x0800, "nw_proto": 6, "nw_src": 0x0A000001,
       "nw_dst": 0x0A000002, "nw_ttl": 64, "tp_src": 1000, "tp_dst": 80}


def _bridge():
    o = Ofproto("br0")
    o.add_port("p1", dp_port=11, tag=10)
    o.add_port("p2", dp_port=12, tag=10)
    o.add_port("p3", dp_port=13)
    return o


def test_trace_normal():
    assert trace(_bridge(), PKT, 1.0) == """\
Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=0a:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,nw_frag=no,tp_src=1000,tp_dst=80,tcp_flags=0x0

bridge("br0")
-------------
 0. priority 0
    NORMAL
     -> learned that 0a:00:00:00:00:01 is on port p1 in VLAN 10
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,in_port=1,vlan_tci=0x0000/0x1fff,dl_src=0a:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff
Datapath actions: 12,push_vlan(vid=10,pcp=0),13
"""


def test_trace_resubmit_and_final_flow():
    o = _bridge()
    o.add_flow("in_port=1,actions=resubmit(,1),mod_vlan_vid:5,output:2")
    o.add_flow("table=1,priority=5,ip,nw_dst=10.0.0.0/8,actions=output:3")
    text = trace(o, PKT, 1.0)
    assert """
 0. in_port=1, priority 32768
    resubmit(,1)
     1. ip,nw_dst=10.0.0.0/8, priority 5
        output:p3
    mod_vlan_vid:5
    output:p2
""" in text
    assert "Final flow: tcp,in_port=1,vlan_tci=0x1005," in text
    assert "Megaflow: recirc_id=0,in_port=1,vlan_tci=0x0000,dl_type=0x0800,nw_dst=10.0.0.0/8\n" in text
    assert text.endswith("Datapath actions: 13,push_vlan(vid=5,pcp=0),12\n")


def test_trace_drop_reason():
    text = trace(_bridge(), {"in_port": 12, "dl_type": 0x806, "vlan_tci": 0x1005}, 0)
    assert "dropping VLAN 5 tagged packet received on port p2 configured as " \
           "VLAN 10 access port" in text
    assert text.endswith("Datapath actions: drop\n")
