"""pvp --flows vxlan and --guests: the recipe VxlanLoop gives a switch (the
commands of ovs_dpdk_pvp_vxlan.sh, with OVS's pkt_mark fix only where it is
needed), its trace check, testpmd's ports and MACs per guest, the options,
and the VXLAN section of the report."""

import types

import pytest

from pyvswitch.tools.bench import pvp, switches
from pyvswitch.tools.bench.switches import VxlanLoop


class FakeSwitch:
    """Records the tools' calls; ofproto/trace answers with `trace`."""

    def __init__(self, trace="Datapath actions: clone(tnl_push(x),tnl_pop(4))\n", route_fails=0):
        self.calls, self.trace, self.route_fails = [], trace, route_fails

    def tool(self, name):
        def call(*args, check=True, **kw):
            self.calls.append((name, *args))
            rc, out = 0, ""
            if args[0] == "ofproto/trace":
                out = self.trace
            elif args[0] == "ovs/route/add" and self.route_fails:
                self.route_fails -= 1
                rc = 2
            return types.SimpleNamespace(returncode=rc, stdout=out, stderr="Error while inserting route." if rc else "")
        return call

    def loop(self, pkt_mark, guests=1):
        return VxlanLoop("br-int", self.tool("vsctl"), self.tool("ofctl"), self.tool("appctl"), "ns",
                         pkt_mark, guests)


@pytest.fixture
def no_ip(monkeypatch):
    """`ip` in the namespace: recorded, and the bridges' MACs as the kernel has them."""
    done = []

    def fake_run(*args, ns=None, check=True, **kw):
        done.append((ns, *args))
        dev = args[-1]
        mac = "02:00:00:00:ff:01" if dev == "br-phy-a" else "02:00:00:00:ff:02"
        return types.SimpleNamespace(returncode=0, stdout=f'[{{"address": "{mac}"}}]', stderr="")
    monkeypatch.setattr(switches, "run", fake_run)
    monkeypatch.setattr(switches.time, "sleep", lambda s: None)
    return done


def test_pyvswitch_recipe_has_plain_routes(no_ip):
    sw = FakeSwitch()
    sw.loop(pkt_mark=False).build()
    routes = [c for c in sw.calls if c[:2] == ("appctl", "ovs/route/add")]
    assert routes == [("appctl", "ovs/route/add", "172.31.255.2/32", "br-phy-a"),
                      ("appctl", "ovs/route/add", "172.31.255.1/32", "br-phy-b")]
    assert ("appctl", "tnl/arp/set", "br-phy-a", "172.31.255.2", "02:00:00:00:ff:02") in sw.calls
    assert ("appctl", "tnl/arp/set", "br-phy-b", "172.31.255.1", "02:00:00:00:ff:01") in sw.calls
    assert not any("egress_pkt_mark" in " ".join(c) for c in sw.calls)
    # the endpoint addresses go into the switch's namespace, both in one /24
    assert ("ns", "ip", "addr", "add", "172.31.255.1/24", "dev", "br-phy-a") in no_ip
    flows = [c[3] for c in sw.calls if c[:3] == ("ofctl", "add-flow", "br-int")]
    assert flows == ["in_port=1,actions=output:11", "in_port=12,actions=output:2",
                     "in_port=2,actions=output:12", "in_port=11,actions=output:1"]


def test_ovs_recipe_marks_routes_and_tunnel_ports(no_ip):
    sw = FakeSwitch()
    sw.loop(pkt_mark=True).build()
    assert ("appctl", "ovs/route/add", "172.31.255.2/32", "br-phy-a", "pkt_mark=1") in sw.calls
    assert ("appctl", "ovs/route/add", "172.31.255.1/32", "br-phy-b", "pkt_mark=2") in sw.calls
    (vxa,) = [c for c in sw.calls if c[:4] == ("vsctl", "add-port", "br-int", "vxlan-a")]
    assert "options:egress_pkt_mark=1" in vxa and "options:key=100" in vxa
    assert "options:remote_ip=172.31.255.2" in vxa and "ofport_request=11" in vxa
    assert not any("local_ip" in " ".join(c) for c in sw.calls)


def test_route_add_waits_for_the_address_then_gives_up(no_ip):
    sw = FakeSwitch(route_fails=3)
    sw.loop(pkt_mark=False).build()            # refused three times, then accepted
    assert len([c for c in sw.calls if c[1] == "ovs/route/add"]) == 5
    sw = FakeSwitch(route_fails=10 ** 9)
    with pytest.raises(RuntimeError, match="Error while inserting route"):
        sw.loop(pkt_mark=False)._route_add("172.31.255.2/32", "br-phy-a", wait=0.0)


def test_trace_check_wants_push_and_pop_in_both_directions():
    ok = FakeSwitch()
    loop = ok.loop(pkt_mark=False)
    loop.check()
    assert [c[3].split(",")[0] for c in ok.calls] == ["in_port=1", "in_port=2"]
    for text in ("Datapath actions: drop\n", "Datapath actions: clone(tnl_push(x),3)\n", "no such bridge\n"):
        with pytest.raises(RuntimeError, match="VXLAN loop broken"):
            FakeSwitch(trace=text).loop(pkt_mark=False).check()


def test_guests_get_their_own_tunnel_ports_and_keys(no_ip):
    sw = FakeSwitch()
    sw.loop(pkt_mark=False, guests=3).build()
    ports = [(c[3], next(a for a in c if a.startswith("options:key=")))
             for c in sw.calls if c[:3] == ("vsctl", "add-port", "br-int")]
    assert ports == [("vxlan-a", "options:key=100"), ("vxlan-b", "options:key=100"),
                     ("vxlan-a1", "options:key=101"), ("vxlan-b1", "options:key=101"),
                     ("vxlan-a2", "options:key=102"), ("vxlan-b2", "options:key=102")]
    flows = [c[3] for c in sw.calls if c[:3] == ("ofctl", "add-flow", "br-int")]
    assert "in_port=3,actions=output:13" in flows and "in_port=14,actions=output:4" in flows
    assert "in_port=6,actions=output:16" in flows and "in_port=15,actions=output:5" in flows
    assert switches.vxlan_port("b", 2, 3) == ("vxlan-b2", 16)


def test_tunnel_ports_never_take_a_guest_port_number(no_ip):
    for guests in range(1, pvp.MAX_GUESTS + 1):
        sw = FakeSwitch()
        sw.loop(pkt_mark=False, guests=guests).build()
        tunnels = {int(next(a for a in c if a.startswith("ofport_request="))[15:])
                   for c in sw.calls if c[:3] == ("vsctl", "add-port", "br-int")}
        assert len(tunnels) == 2 * guests and min(tunnels) > 2 * guests
    assert switches.vxlan_port("a", 0, 5) == ("vxlan-a", 11)       # the script's numbers
    assert switches.vxlan_port("a", 0, 6) == ("vxlan-a", 13)


def test_testpmd_ports_and_peers():
    one = pvp.TestPmd(0, ["s0", "s1"], 64, "/dev/null", []).cmdline
    assert "net_virtio_user1,path=s1,queues=1,mac=00:00:00:00:00:02" in one
    assert one[-2:] == ["--eth-peer=0,00:00:00:00:00:02", "--eth-peer=1,00:00:00:00:00:01"]
    four = pvp.TestPmd(0, [f"s{i}" for i in range(4)], 64, "/dev/null", []).cmdline
    assert four[-4:] == ["--eth-peer=0,00:00:00:00:00:02", "--eth-peer=1,00:00:00:00:00:01",
                         "--eth-peer=2,00:00:00:00:00:04", "--eth-peer=3,00:00:00:00:00:03"]


def test_guests_option():
    a = pvp.parse_args(["--quick", "--flows", "vxlan", "--guests", "4"])
    assert a.guests == 4 and a.flows == "vxlan"
    assert pvp.parse_args(["--quick"]).guests == 1
    for bad in (["--guests", "0"], ["--guests", str(pvp.MAX_GUESTS + 1)], ["--flows", "firewall", "--guests", "2"]):
        with pytest.raises(SystemExit):
            pvp.parse_args(["--quick", *bad])


def test_vxlan_report_has_encapsulated_sizes_and_the_seed():
    recs = [{"type": "run", "switch": sw, "size": size, "clean": True, "mpps": m}
            for sw, size, m in (("pyvswitch", 64, 2.0), ("ovs-dpdk", 64, 4.0),
                                ("pyvswitch", 128, 1.5), ("ovs-dpdk", 128, 3.0))]
    s = pvp.summarize(recs, ["pyvswitch", "ovs-dpdk"], [64, 128])
    meta = {"command": "x", "date": "d", "raw_dir": "r", "machine": {}, "layout": {}}
    plain = pvp.render_markdown(s, meta)
    assert "VXLAN" not in plain
    md = pvp.render_markdown(s, dict(meta, flows="vxlan"))
    assert md.startswith("# pyvswitch PVP loopback benchmark (vhost-user) vs Open vSwitch with DPDK, every "
                         "packet through VXLAN")
    assert "| 64 | 114 | 2.000 | 4.000 | - | - | - |" in md
    assert "| 128 | 178 | 1.500 | 3.000 | 0.274 (320) | 0.654 (770) | 1.021 (1200) |" in md
