"""VXLAN between two hosts, Open vSwitch's userspace-tunnelling recipe with
pvs- commands.

Two network namespaces act as hosts (ha, hb), each running its own
pvs-vswitchd (own rundir and database) and joined by an underlay veth pair
(ua <-> ub, MTU 1550). On each host, as documented for OVS with DPDK:

    pvs-vsctl add-br br-phy -- set Bridge br-phy datapath_type=netdev
    pvs-vsctl add-port br-phy ua
    ip addr add 172.31.9.1/24 dev br-phy ; ip link set br-phy up
    pvs-vsctl add-br br-int -- set Bridge br-int datapath_type=netdev
    pvs-vsctl add-port br-int vx0 tag=1 -- set Interface vx0 type=vxlan \
        options:remote_ip=172.31.9.2 options:key=100
    (vx1: key=200, tag=2)

and two guests per host (namespaces on veth, afpacket ports on br-int):
g1 in VLAN 1 (VNI 100), g2 in VLAN 2 (VNI 200), all in 10.50.0.0/24.
Everything (daemons by PID, namespaces with their links, run directories)
is removed in the fixture's teardown, also on failure.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from pyvswitch.tools.lab import Lab, daemon_env, sh, tool

from .conftest import unique_prefix

pytestmark = pytest.mark.system

UNDERLAY = {"a": "172.31.9.1", "b": "172.31.9.2"}
GUESTS = {("a", 1): "10.50.0.1", ("b", 1): "10.50.0.2", ("a", 2): "10.50.0.3", ("b", 2): "10.50.0.4"}
JIT_TIMEOUT = 300.0          # a cold numba cache compiles the PMD for minutes


class Host:
    def __init__(self, lab, side, ns):
        self.lab, self.side, self.ns = lab, side, ns
        self.rundir = lab.tempdir(f"h{side}")
        self.env = daemon_env(self.rundir)

    def start(self):
        self.lab.start_daemon(self.rundir, ns=self.ns, timeout=300)

    def run(self, prog, *args, check=True):
        r = subprocess.run([tool(prog), *map(str, args)], env=self.env, capture_output=True, text=True,
                           timeout=300)
        if check and r.returncode:
            raise AssertionError(f"{prog} {args}: {r.stdout}{r.stderr}")
        return r.stdout

    def vsctl(self, *a, **kw):
        return self.run("pvs-vsctl", *a, **kw)

    def appctl(self, *a, **kw):
        return self.run("pvs-appctl", *a, **kw)

    def sh(self, *a, check=True):
        return sh(*a, ns=self.ns, check=check)

    @property
    def log(self):
        try:
            with open(os.path.join(self.rundir, "pvs-vswitchd.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def ping(ns, dst, count=1, size=None, wait=1):
    args = ["ping", "-c", count, "-i", 0.2, "-W", wait] + (["-s", size, "-M", "do"] if size else []) + [dst]
    return sh(*args, ns=ns, check=False).returncode == 0


@pytest.fixture(scope="module")
def topo():
    lab = Lab(prefix=unique_prefix("vx"))
    try:
        hosts = {}
        for side in "ab":
            hosts[side] = Host(lab, side, lab.netns(f"h{side}"))
        ha, hb = hosts["a"], hosts["b"]
        sh("ip", "link", "add", "ua", "netns", ha.ns, "type", "veth", "peer", "name", "ub", "netns", hb.ns)
        for side, h in hosts.items():
            up = "u" + side
            h.sh("ip", "link", "set", up, "mtu", "1550")
            # an afpacket uplink stays a kernel interface: it must not answer
            # ARP for the endpoint address (that is br-phy's job)
            h.sh("sysctl", "-qw", f"net.ipv4.conf.{up}.arp_ignore=1")
            h.sh("ip", "link", "set", up, "up")
            h.start()
            # the recipe, as documented for Open vSwitch with DPDK
            h.vsctl("add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev")
            h.vsctl("add-port", "br-phy", up)
            h.sh("ip", "addr", "add", UNDERLAY[side] + "/24", "dev", "br-phy")
            h.sh("ip", "link", "set", "br-phy", "up")
            h.vsctl("add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev")
            other = UNDERLAY["b" if side == "a" else "a"]
            for n, (vni, tag) in enumerate(((100, 1), (200, 2))):
                h.vsctl("add-port", "br-int", f"vx{n}", f"tag={tag}", "--", "set", "Interface", f"vx{n}",
                        "type=vxlan", f"options:remote_ip={other}", f"options:key={vni}")
            for vlan in (1, 2):
                g = lab.netns(f"g{side}{vlan}")
                sh("ip", "link", "add", f"g{vlan}", "netns", h.ns, "type", "veth", "peer", "name", "eth0",
                   "netns", g)
                sh("ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off", ns=g, check=False)
                sh("ip", "link", "set", "eth0", "up", ns=g)
                sh("ip", "addr", "add", GUESTS[(side, vlan)] + "/24", "dev", "eth0", ns=g)
                h.sh("ip", "link", "set", f"g{vlan}", "up")
                h.vsctl("add-port", "br-int", f"g{vlan}", f"tag={vlan}")
        ga1 = f"{lab.prefix}-ga1"
        try:
            wait_for(lambda: ping(ga1, GUESTS[("b", 1)]), JIT_TIMEOUT, "a first ping across the tunnel")
        except AssertionError:
            raise AssertionError("no ping across the tunnel\nA:\n" + ha.log + "\nB:\n" + hb.log
                                 + ha.appctl("tnl/neigh/show") + ha.appctl("ovs/route/show")
                                 + ha.appctl("dpctl/dump-flows") + hb.appctl("dpctl/dump-flows")) from None
        yield lab, hosts
    finally:
        lab.close()


def ns(lab, name):
    return f"{lab.prefix}-{name}"


def test_ping_same_vni_and_full_size_frames(topo):
    lab, _ = topo
    assert ping(ns(lab, "ga1"), GUESTS[("b", 1)], count=3)
    # an inner 1500-byte IPv4 packet (DF) over the 1550 underlay
    assert ping(ns(lab, "ga1"), GUESTS[("b", 1)], count=2, size=1472)
    wait_for(lambda: ping(ns(lab, "ga2"), GUESTS[("b", 2)]), 60, "a ping in the second VNI")


def test_tcp_same_vni(topo):
    lab, _ = topo
    data = os.urandom(200_000).hex()
    srv = subprocess.Popen(["ip", "netns", "exec", ns(lab, "gb1"), "timeout", "30", "nc", "-l", "5001"],
                           stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        cli = subprocess.run(["ip", "netns", "exec", ns(lab, "ga1"), "nc", "-N", "-w", "10",
                              GUESTS[("b", 1)], "5001"], input=data, text=True, capture_output=True,
                             timeout=40)
        out, _ = srv.communicate(timeout=40)
    finally:
        if srv.poll() is None:
            srv.kill()
    assert cli.returncode == 0, cli.stderr
    assert out == data


def test_vnis_are_isolated(topo):
    lab, _ = topo
    wait_for(lambda: ping(ns(lab, "ga2"), GUESTS[("b", 2)]), 60, "a ping in the second VNI")
    assert not ping(ns(lab, "ga2"), GUESTS[("b", 1)], count=3)
    assert not ping(ns(lab, "ga1"), GUESTS[("b", 2)], count=3)


SNIFF = r"""
import json, sys
from scapy.all import sniff
from scapy.layers.inet import IP, UDP
from scapy.layers.vxlan import VXLAN
pk = sniff(iface=sys.argv[1], timeout=float(sys.argv[2]), count=12,
           lfilter=lambda p: UDP in p and p[UDP].dport == 4789)
print(json.dumps([{"src": p[IP].src, "dst": p[IP].dst, "dport": p[UDP].dport, "sport": p[UDP].sport,
                   "vni": p[VXLAN].vni, "flags": int(p[VXLAN].flags),
                   "inner": p[VXLAN].payload[IP].dst if IP in p[VXLAN].payload else None}
                  for p in pk if VXLAN in p]))
"""


def test_underlay_carries_vxlan_with_the_right_vni(topo):
    lab, hosts = topo
    cap = subprocess.Popen(["ip", "netns", "exec", hosts["b"].ns, sys.executable, "-c", SNIFF, "ub", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        ping(ns(lab, "ga2"), GUESTS[("b", 2)], count=5)
        out, err = cap.communicate(timeout=60)
    finally:
        if cap.poll() is None:
            cap.kill()
    pkts = json.loads(out.strip().splitlines()[-1]) if out.strip() else []
    ours = [p for p in pkts if p["inner"] == GUESTS[("b", 2)]]
    assert ours, (pkts, err)
    for p in ours:
        assert p["vni"] == 200 and p["dport"] == 4789 and p["flags"] == 0x08
        assert p["src"] == UNDERLAY["a"] and p["dst"] == UNDERLAY["b"]
        assert 32768 <= p["sport"] < 61000
    vni_of = {GUESTS[(s, 1)]: 100 for s in "ab"} | {GUESTS[(s, 2)]: 200 for s in "ab"}
    for p in pkts:                       # every tenant's frames carry its own VNI
        assert p["inner"] is None or p["vni"] == vni_of[p["inner"]]


def test_appctl_route_neigh_and_datapath_flows(topo):
    _, hosts = topo
    ha = hosts["a"]
    assert "172.31.9.2" in ha.appctl("tnl/neigh/show")
    assert "Cached: 172.31.9.0/24 dev br-phy SRC 172.31.9.1" in ha.appctl("ovs/route/show")
    ping(ns(topo[0], "ga1"), GUESTS[("b", 1)], count=2)
    flows = ha.appctl("dpctl/dump-flows")
    assert "tnl_push(tnl_port(" in flows and "vni=0x64" in flows
    assert "tnl_pop(" in flows
    assert "vxlan_sys_4789" in ha.appctl("tnl/ports/show")
    stats = ha.vsctl("get", "Interface", "vx0", "statistics")
    assert "tx_packets" in stats


def test_bad_options_give_an_interface_error_and_change_nothing(topo):
    _, hosts = topo
    h = hosts["a"]
    h.vsctl("add-port", "br-int", "vxbad", "--", "set", "Interface", "vxbad", "type=vxlan",
            "options:key=5", check=False)
    err = h.vsctl("get", "Interface", "vxbad", "error")
    assert "vxbad: vxlan type requires valid 'remote_ip' argument" in err
    h.vsctl("del-port", "br-int", "vxbad")
    assert ping(ns(topo[0], "ga1"), GUESTS[("b", 1)], count=2)


def test_route_and_neighbour_commands(topo):
    lab, hosts = topo
    ha = hosts["a"]
    assert ha.appctl("ovs/route/add", "10.99.0.0/16", "br-phy", "172.31.9.2") == "OK\n"
    assert "User: 10.99.0.0/16 dev br-phy GW 172.31.9.2 SRC 172.31.9.1" in ha.appctl("ovs/route/show")
    assert "dev br-phy" in ha.appctl("ovs/route/lookup", "10.99.1.1")
    assert ha.appctl("ovs/route/del", "10.99.0.0/16") == "OK\n"
    r = subprocess.run([tool("pvs-appctl"), "ovs/route/del", "10.99.0.0/16"], env=ha.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Not found" in r.stderr + r.stdout
    assert ha.appctl("tnl/neigh/set", "br-phy", "172.31.9.77", "aa:55:aa:55:00:01") == "OK\n"
    assert "aa:55:aa:55:00:01   br-phy" in ha.appctl("tnl/neigh/show")
    # flushed, the next hop is asked for again (ARP request out of br-phy) and traffic resumes
    assert ha.appctl("tnl/neigh/flush") == "OK\n"
    assert "172.31.9.2" not in ha.appctl("tnl/neigh/show")
    wait_for(lambda: ping(ns(lab, "ga1"), GUESTS[("b", 1)]), 60, "a ping after tnl/neigh/flush")
    assert "172.31.9.2" in ha.appctl("tnl/neigh/show")


def _mtu_drops(h):
    out = h.vsctl("get", "Interface", "ua", "statistics:ovs_tx_mtu_exceeded_drops", check=False)
    return int(out.strip().strip('"') or 0) if out.strip() else 0


def test_frame_too_big_for_the_underlay_is_counted(topo):
    """An inner 1500-byte packet needs a 1564-byte underlay frame: with the uplink's
    MTU lowered to 1500 it is dropped and counted by name on the uplink
    (ovs_tx_mtu_exceeded_drops, as OVS-DPDK names it) and in tnl/drops/show;
    small packets still pass."""
    lab, hosts = topo
    ha = hosts["a"]
    ga1 = ns(lab, "ga1")
    ha.vsctl("set", "Interface", "ua", "mtu_request=1500")
    try:
        before = _mtu_drops(ha)
        assert not ping(ga1, GUESTS[("b", 1)], count=3, size=1472)
        wait_for(lambda: _mtu_drops(ha) >= before + 3, 30, "the MTU drops in the uplink's statistics")
        drops = ha.appctl("tnl/drops/show")                  # and in appctl, by port
        total = int(drops.split("mtu_exceeded: ")[1].split()[0])
        assert total >= before + 3 and f"  ua: {_mtu_drops(ha)}" in drops, drops
        assert ping(ga1, GUESTS[("b", 1)], count=2)
    finally:
        ha.vsctl("set", "Interface", "ua", "mtu_request=1550")
    wait_for(lambda: ping(ga1, GUESTS[("b", 1)], size=1472), 30, "full-size frames after the MTU is back")
