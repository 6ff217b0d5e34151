"""VXLAN encapsulated and terminated inside one switch: the topology of
../shared/bench-anchors/ovs_dpdk_pvp_vxlan.sh. br-int has a guest and two
tunnel ports (vxlan-a to B, vxlan-b to A); the underlay bridges br-phy-a
(LOCAL owns A) and br-phy-b (LOCAL owns B) are joined by patch ports. An
encapsulated packet crosses the patch pair and is popped at br-phy-b's LOCAL
port in the same datapath pass, as in Open vSwitch."""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pyvswitch.datapath import actions as DA
from pyvswitch.datapath import layout
from pyvswitch.datapath.kernels.execute import execute_ref
from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.ofproto import tunnel as TN
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate
from pyvswitch.openflow.fields import OFPP_LOCAL
from pyvswitch.ports.patch import PatchPort
from pyvswitch.ports.vxlan import VxlanPort
from pyvswitch.vswitchd.netlink import Addr, Route

IP_A, IP_B = 0xAC1FFF01, 0xAC1FFF02                  # 172.31.255.1 / .2
MAC_A, MAC_B = 0x02000000FF01, 0x02000000FF02
DP_VM1, DP_VM2, DP_PHY_A, DP_PHY_B, DP_VPORT = 1, 2, 3, 4, 9
MAIN, LOCAL_TABLE, UNICAST, LOCAL_TYPE = 254, 255, 1, 2


def one_switch():
    tnl = TN.Tunnels()
    bint, pa, pb = Ofproto("br-int"), Ofproto("br-phy-a"), Ofproto("br-phy-b")
    for o in (bint, pa, pb):
        o.tnl = tnl
    bint.add_port("vm1", DP_VM1, ofport=1)
    bint.add_port("vm2", DP_VM2, ofport=2)
    pa.add_port("br-phy-a", DP_PHY_A, ofport=OFPP_LOCAL)
    pb.add_port("br-phy-b", DP_PHY_B, ofport=OFPP_LOCAL)
    ends = (PatchPort("pa", {"peer": "pb"}), PatchPort("pb", {"peer": "pa"}))
    pa.add_port("pa", None, ofport=1, patch=ends[0])
    pb.add_port("pb", None, ofport=1, patch=ends[1])
    pa.set_patch_peer("pa", (pb, 1))
    pb.set_patch_peer("pb", (pa, 1))
    tports = []
    for name, ofport, remote in (("vxlan-a", 11, "172.31.255.2"), ("vxlan-b", 12, "172.31.255.1")):
        vp = VxlanPort(name, {"remote_ip": remote, "key": "100"})
        vp.open()
        p = bint.add_port(name, None, ofport=ofport)
        p.tunnel = TN.TnlPort(bint, ofport, name, vp.cfg, vp)
        tports.append(p.tunnel)
    tnl.ports = tports
    tnl.vports, tnl.vport_dst = {4789: DP_VPORT}, {DP_VPORT: 4789}
    tnl.set_devices({"br-phy-a": TN.Dev(pa, OFPP_LOCAL, DP_PHY_A, MAC_A),
                     "br-phy-b": TN.Dev(pb, OFPP_LOCAL, DP_PHY_B, MAC_B)})
    # what the kernel has with both addresses in one namespace: each one's
    # local /32 (on its own device) and the /24 on both
    tnl.set_system([Addr(10, "br-phy-a", IP_A, 24), Addr(11, "br-phy-b", IP_B, 24)],
                   [Route(IP_A, 32, 0, 10, IP_A, LOCAL_TABLE, LOCAL_TYPE, 0),
                    Route(IP_B, 32, 0, 11, IP_B, LOCAL_TABLE, LOCAL_TYPE, 0),
                    Route(IP_A & ~0xFF, 24, 0, 10, IP_A, MAIN, UNICAST, 0),
                    Route(IP_A & ~0xFF, 24, 0, 11, IP_B, MAIN, UNICAST, 0)])
    for flow in ("in_port=1,actions=output:11", "in_port=12,actions=output:2",
                 "in_port=2,actions=output:12", "in_port=11,actions=output:1"):
        bint.add_flow(flow, 0.0)
    for o in (pa, pb):
        o.add_flow("in_port=LOCAL,actions=output:1", 0.0)
        o.add_flow("in_port=1,actions=LOCAL", 0.0)
    return tnl, bint, pa, pb


def underlay(tnl):
    """The anchor script's user routes and static neighbours."""
    assert tnl.routes.add(IP_B, 32, "br-phy-a") is None
    assert tnl.routes.add(IP_A, 32, "br-phy-b") is None
    tnl.neigh.set("br-phy-a", IP_B, MAC_B)
    tnl.neigh.set("br-phy-b", IP_A, MAC_A)


def guest_frame():
    return bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
                 / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=9, dport=9) / (b"\0" * 18))


def test_push_then_pop_in_one_pass():
    tnl, bint, _, _ = one_switch()
    underlay(tnl)
    frame = guest_frame()
    r = xlate(bint, parse_packet_ref(frame, DP_VM1), 0.0)
    assert r.error is None
    (clone,) = r.actions
    assert clone[0] == "clone"
    push, pop = clone[1]
    assert push[:2] == ("tnl_push", DP_VPORT) and push[3] == DP_PHY_A
    assert pop == ("tnl_pop", DP_VPORT, 4789)
    outer = Ether(push[2] + frame)
    assert outer.src == "02:00:00:00:ff:01" and outer.dst == "02:00:00:00:ff:02"
    assert outer[IP].src == "172.31.255.1" and outer[IP].dst == "172.31.255.2"
    DA.encode_actions(r.actions)                          # the datapath takes it
    recircs = []
    outs, _ = execute_ref(r.actions, frame, recircs=recircs, key=parse_packet_ref(frame, DP_VM1))
    assert outs == []
    ((name, vport, (vni, src, dst, _, _), inner),) = recircs
    assert (name, vport, vni, src, dst) == ("tnl_pop", DP_VPORT, 100, IP_A, IP_B)
    assert bytes(inner) == frame


def test_popped_packet_enters_br_int_through_the_other_tunnel_port():
    tnl, bint, pa, pb = one_switch()
    underlay(tnl)
    popped = layout.pack_key({"in_port": DP_VPORT, "tun_id": 100, "tun_src": IP_A, "tun_dst": IP_B,
                              "dl_src": 1, "dl_dst": 2, "dl_type": 0x0800})
    ofp_of_dp = {DP_VM1: bint, DP_VM2: bint, DP_PHY_A: pa, DP_PHY_B: pb}.get
    ofp, r = TN.translate(tnl, ofp_of_dp, xlate, popped, 0.0)
    assert ofp is bint and r.actions == [("output", DP_VM2)]
    assert tnl.ports[1].port.rx in r.rules_hit          # vxlan-b: remote_ip 172.31.255.1


def test_without_user_routes_the_kernel_local_route_sends_it_nowhere():
    # OVS's trap: the other endpoint's local /32 points into br-phy-b, whose
    # neighbour cache has no entry for its own address: dropped, counted
    tnl, bint, _, _ = one_switch()
    tnl.neigh.set("br-phy-a", IP_B, MAC_B)
    r = xlate(bint, parse_packet_ref(guest_frame(), DP_VM1), 0.0)
    assert not any(a[0] == "clone" for a in r.actions)
    assert tnl.drops["neigh_miss"] in r.rules_hit
