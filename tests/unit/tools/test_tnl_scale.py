"""pvs-bench tunnels' pure parts: the flow sets parse, frames decode."""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from pyvswitch.openflow.text import parse_flow
from pyvswitch.tools.bench import tnl_scale as T


def test_flow_sets_are_valid_ovs_ofctl_syntax():
    eg = list(T.egress_flows(5, 3, 7))
    ing = list(T.ingress_flows(4))
    assert len(eg) == 5 and len(ing) == 4
    for line in eg + ing:
        parse_flow(line, "add", resolver={"vx": 1, "g0": 2, "g1": 3, "g2": 4, "g3": 5}.get)
    assert "set_field:10.64.0.2->tun_dst" in eg[4] and "set_field:5->tun_id" in eg[4]   # k=4: EP 4%3, VNI 1+4%7
    assert ing[2] == "table=0,priority=10,in_port=vx,tun_id=3,actions=output:g1"


def test_endpoints_macs_and_vnis_are_distinct():
    assert len({T.endpoint(k, 20000) for k in range(20000)}) == 20000
    assert len({T.mac(k) for k in range(100000)}) == 100000
    assert T.vni(999999, 1000000) == 1000000 and T.vni(1000000, 1000000) == 1


def test_vxlan_frame_round_trip_and_scapy_agrees():
    inner = T.inner("02:00:00:00:00:02", "02:00:00:00:00:01", 7)
    f = T.vxlan_frame("02:11:22:33:44:55", "10.64.0.9", 4242, inner)
    assert T.decode_vxlan(f) == ("02:11:22:33:44:55", T.LOCAL_IP, 4789, 4242, inner)
    p = Ether(f)
    assert p[IP].src == "10.64.0.9" and p[UDP].dport == 4789 and p[VXLAN].vni == 4242
    assert IP(bytes(p[IP])).chksum == p[IP].chksum            # the checksum we wrote is right
    assert T.decode_vxlan(b"\x00" * 60) is None
