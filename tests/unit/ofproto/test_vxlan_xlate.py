"""Native VXLAN in xlate: output through route + neighbour + the underlay
bridge (clone(tnl_push, uplink)), ARP request on a neighbour miss, tunnel
termination at the LOCAL port (tnl_pop), the tunnel port mapping of popped
packets (tnl_port_receive's order), flow-based tunnels, ARP snooping."""

import numpy as np
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN

from pyvswitch.datapath import actions as DA
from pyvswitch.datapath import layout
from pyvswitch.datapath.kernels.execute import execute_ref
from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.ofproto import tunnel as TN
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate
from pyvswitch.openflow.fields import OFPP_LOCAL
from pyvswitch.ports.vxlan import VxlanPort
from pyvswitch.vswitchd.netlink import Addr, Route

VM, VM2, PHY_MAC, PEER_MAC = 0x0A0000000001, 0x0A0000000002, 0x020000000011, 0x020000000022
LOCAL_IP, REMOTE_IP, OTHER_IP = 0xAC1F0101, 0xAC1F0102, 0xAC1F0103     # 172.31.1.1/.2/.3
DP_VM, DP_PHY, DP_UPLINK, DP_VPORT = 1, 3, 4, 9


def world(*tunnels):
    """br-int (vm on dp 1 + the tunnel ports) and br-phy (LOCAL dp 3 owning
    172.31.1.1/24, uplink dp 4); vport vxlan_sys_4789 is dp 9."""
    tnl = TN.Tunnels()
    bint, bphy = Ofproto("br-int"), Ofproto("br-phy")
    for o in (bint, bphy):
        o.tnl = tnl
    bint.add_port("vm", DP_VM)
    bphy.add_port("br-phy", DP_PHY, ofport=OFPP_LOCAL)
    bphy.add_port("eth0", DP_UPLINK)
    ports = []
    for name, opts in tunnels or (("vx0", {"remote_ip": "172.31.1.2", "key": "5"}),):
        vp = VxlanPort(name, opts)
        vp.open()
        p = bint.add_port(name, None)
        p.tunnel = TN.TnlPort(bint, p.ofport, name, vp.cfg, vp)
        ports.append(p.tunnel)
    tnl.ports = ports
    tnl.vports, tnl.vport_dst = {4789: DP_VPORT}, {DP_VPORT: 4789}
    tnl.set_devices({"br-phy": TN.Dev(bphy, OFPP_LOCAL, DP_PHY, PHY_MAC)})
    tnl.set_system([Addr(10, "br-phy", LOCAL_IP, 24)],
                   [Route(0xAC1F0100, 24, 0, 10, LOCAL_IP, 254, 1, 0)])
    return tnl, bint, bphy


def key(**f):
    return layout.pack_key(f)


def vm_frame(dst=VM2):
    return bytes(Ether(src="0a:00:00:00:00:01", dst=":".join(f"{(dst >> s) & 255:02x}" for s in range(40, -1, -8)))
                 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / (b"x" * 20))


def test_output_encapsulates_through_the_underlay_bridge():
    tnl, bint, bphy = world()
    tnl.neigh.set("br-phy", REMOTE_IP, PEER_MAC)
    frame = vm_frame()
    r = xlate(bint, parse_packet_ref(frame, DP_VM), 0.0)
    assert r.error is None
    (clone,) = [a for a in r.actions if a[0] == "clone"]
    push, *rest = clone[1]
    assert push[0] == "tnl_push" and push[1] == DP_VPORT and push[3] == DP_PHY
    assert rest == [("output", DP_UPLINK)]       # NORMAL floods, never back to LOCAL
    DA.encode_actions(r.actions)                                          # the datapath takes it
    outs, _ = execute_ref(r.actions, frame, key=parse_packet_ref(frame, DP_VM))
    (sent,) = [p for port, p in outs if port == DP_UPLINK]
    pkt = Ether(sent)
    assert pkt.dst == "02:00:00:00:00:22" and pkt.src == "02:00:00:00:00:11"
    assert pkt[IP].src == "172.31.1.1" and pkt[IP].dst == "172.31.1.2" and pkt[IP].flags == "DF"
    assert pkt[UDP].dport == 4789 and pkt[VXLAN].vni == 5 and bytes(pkt[VXLAN].payload) == frame
    # what the outer bridge examined is not part of the inner packet's mask
    m = layout.mask_fields(r.mask)
    assert "nw_proto" not in m and "tp_dst" not in m


def test_neighbour_miss_sends_arp_and_drops():
    tnl, bint, bphy = world()
    r = xlate(bint, parse_packet_ref(vm_frame(), DP_VM), 0.0)
    assert not [a for a in r.actions if a[0] == "clone"]
    assert tnl.drops["neigh_miss"] in r.rules_hit
    ((dev, req),) = tnl.pending
    arp = Ether(req)
    assert dev.ofp is bphy and arp.dst == "ff:ff:ff:ff:ff:ff" and arp[ARP].op == 1
    assert arp[ARP].psrc == "172.31.1.1" and arp[ARP].pdst == "172.31.1.2"
    assert arp[ARP].hwsrc == "02:00:00:00:00:11"
    xlate(bint, parse_packet_ref(vm_frame(), DP_VM), 0.5)
    assert len(tnl.pending) == 1                 # rate limited per next hop
    # the daemon does not cache a neighbour miss: the next packet asks again
    ofp, r = TN.translate(tnl, {DP_VM: bint}.get, xlate, parse_packet_ref(vm_frame(), DP_VM), 0.7)
    assert ofp is bint and r.no_install
    # revalidation (learn=False) sends nothing
    xlate(bint, parse_packet_ref(vm_frame(), DP_VM), 5.0, learn=False)
    assert len(tnl.pending) == 1


def test_no_route_drops_with_counter():
    tnl, bint, _ = world(("vx0", {"remote_ip": "192.0.2.9"}),)
    r = xlate(bint, parse_packet_ref(vm_frame(), DP_VM), 0.0)
    assert tnl.drops["no_route"] in r.rules_hit and not any(a[0] == "clone" for a in r.actions)


def test_user_route_with_gateway_uses_gateway_mac():
    tnl, bint, _ = world(("vx0", {"remote_ip": "10.9.9.9"}),)
    assert tnl.routes.add(0x0A090900, 24, "br-phy", gw=OTHER_IP) is None
    tnl.neigh.set("br-phy", OTHER_IP, PEER_MAC)
    r = xlate(bint, parse_packet_ref(vm_frame(), DP_VM), 0.0)
    (clone,) = [a for a in r.actions if a[0] == "clone"]
    hdr = Ether(clone[1][0][2])
    assert hdr.dst == "02:00:00:00:00:22" and hdr[IP].dst == "10.9.9.9" and hdr[IP].src == "172.31.1.1"


def vxlan_to_us(vni=5, src="172.31.1.2", dport=4789, dst_mac="02:00:00:00:00:11"):
    return bytes(Ether(src="02:00:00:00:00:22", dst=dst_mac) / IP(src=src, dst="172.31.1.1")
                 / UDP(sport=50000, dport=dport) / VXLAN(vni=vni) / vm_frame())


def test_termination_pops_at_local():
    tnl, bint, bphy = world()
    r = xlate(bphy, parse_packet_ref(vxlan_to_us(), DP_UPLINK), 0.0)
    assert ("tnl_pop", DP_VPORT, 4789) in r.actions
    assert ("output", DP_PHY) not in r.actions
    m = layout.mask_fields(r.mask)
    for f in ("dl_type", "nw_proto", "nw_dst", "tp_dst", "dl_dst"):
        assert f in m
    # another UDP port, or another MAC: a plain output to LOCAL
    for frame in (vxlan_to_us(dport=4790), vxlan_to_us(dst_mac="02:00:00:00:00:99")):
        r = xlate(bphy, parse_packet_ref(frame, DP_UPLINK), 0.0)
        assert not any(a[0] == "tnl_pop" for a in r.actions)


def popped(vni, src, dst=LOCAL_IP, dl_dst=VM2):
    return key(in_port=DP_VPORT, tun_id=vni, tun_src=src, tun_dst=dst, dl_src=VM, dl_dst=dl_dst,
               dl_type=0x0800)


def test_receive_maps_to_port_in_ovs_order():
    tnl, bint, _ = world(("exact", {"remote_ip": "172.31.1.2", "key": "5"}),
                         ("keyflow", {"remote_ip": "172.31.1.2", "key": "flow"}),
                         ("remflow", {"remote_ip": "flow", "key": "5"}),
                         ("local", {"remote_ip": "172.31.1.2", "key": "7", "local_ip": "172.31.1.1"}),
                         ("other_port", {"remote_ip": "172.31.1.2", "key": "9", "dst_port": "4790"}))
    name = lambda k: (tnl.receive(k) or TN.TnlPort(None, 0, None, None, None)).name  # noqa: E731
    assert name(popped(5, REMOTE_IP)) == "exact"
    assert name(popped(6, REMOTE_IP)) == "keyflow"
    assert name(popped(5, OTHER_IP)) == "remflow"
    assert name(popped(7, REMOTE_IP)) == "local"
    assert name(popped(7, REMOTE_IP, dst=OTHER_IP)) == "keyflow"
    assert name(popped(9, OTHER_IP)) is None          # dst_port 4790 has no vport here


def test_translate_popped_packet_in_br_int():
    tnl, bint, bphy = world()
    ofp_of_dp = {DP_VM: bint, DP_PHY: bphy, DP_UPLINK: bphy}.get
    ofp, r = TN.translate(tnl, ofp_of_dp, xlate, popped(5, REMOTE_IP), 0.0)
    assert ofp is bint and ("output", DP_VM) in r.actions
    assert tnl.ports[0].port.rx in r.rules_hit
    m = layout.mask_fields(r.mask)
    assert m["tun_id"] == (1 << 64) - 1 and m["tun_src"] == m["tun_dst"] == 0xFFFFFFFF
    # the MAC was learned on the tunnel port: the reply goes back into it
    tnl.neigh.set("br-phy", REMOTE_IP, PEER_MAC)
    r = xlate(bint, key(in_port=DP_VM, dl_src=VM2, dl_dst=VM, dl_type=0x0800), 0.0)
    assert [a[0] for a in r.actions] == ["clone"]
    # unknown VNI: dropped, cached on the tunnel fields
    ofp, mask = TN.translate(tnl, ofp_of_dp, xlate, popped(6, REMOTE_IP), 0.0)
    assert ofp is None and layout.mask_fields(mask)["tun_id"]


def test_flow_based_tunnel_takes_tun_dst_and_tun_id_from_the_flow():
    tnl, bint, _ = world(("vxf", {"remote_ip": "flow", "key": "flow"}),)
    tnl.neigh.set("br-phy", OTHER_IP, PEER_MAC)
    bint.add_flow("priority=10,in_port=vm,actions=set_field:172.31.1.3->tun_dst,"
                  "set_tunnel:0x77,output:vxf", 0.0)
    r = xlate(bint, parse_packet_ref(vm_frame(), DP_VM), 0.0)
    (clone,) = [a for a in r.actions if a[0] == "clone"]
    raw = clone[1][0][2]
    assert Ether(raw)[IP].dst == "172.31.1.3" and int.from_bytes(raw[46:49], "big") == 0x77


def test_arp_snooping_learns_on_endpoint_bridges():
    tnl, bint, bphy = world()
    ofp_of_dp = {DP_VM: bint, DP_PHY: bphy, DP_UPLINK: bphy}.get
    reply = bytes(Ether(src="02:00:00:00:00:22", dst="02:00:00:00:00:11")
                  / ARP(op=2, hwsrc="02:00:00:00:00:22", psrc="172.31.1.2",
                        hwdst="02:00:00:00:00:11", pdst="172.31.1.1"))
    v0 = tnl.version
    ofp, r = TN.translate(tnl, ofp_of_dp, xlate, parse_packet_ref(reply, DP_UPLINK), 0.0)
    assert tnl.neigh.lookup("br-phy", REMOTE_IP, 1.0) == PEER_MAC and tnl.version > v0
    m = layout.mask_fields(r.mask)
    assert "nw_src" in m and "arp_sha" in m
    # br-int owns no endpoint: no snooping there, dl_type stays wildcarded
    ofp, r = TN.translate(tnl, ofp_of_dp, xlate, parse_packet_ref(vm_frame(), DP_VM), 0.0)
    assert "arp_sha" not in layout.mask_fields(r.mask)
    assert isinstance(r.mask, np.ndarray)
