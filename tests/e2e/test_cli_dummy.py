"""The daemon driven only through its CLIs, on dummy ports (no namespaces).

Frames go in with `pvs-appctl netdev-dummy/receive` and come out with
`netdev-dummy/capture`, as Open vSwitch's own tests do on its dummy datapath:
NORMAL flooding and learning inside a VLAN, trunk tagging, flow-mods taking
effect for the next packet, counters, fdb, megaflows, trace.
"""

import os
import subprocess
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.tools.lab import Lab, tool

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


class Cli:
    def __init__(self, rundir):
        self.env = dict(os.environ, PVS_RUNDIR=rundir)

    def __call__(self, *args, ok=True):
        r = subprocess.run([tool(args[0])] + list(args[1:]), env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
        if ok:
            assert r.returncode == 0, f"{args}: {r.stderr}"
            return r.stdout
        return r

    def send(self, port, *frames):
        self("pvs-appctl", "netdev-dummy/receive", port, *[bytes(f).hex() for f in frames])

    def capture(self, port, want=1, timeout=3.0):
        """Frames transmitted on port (waits until at least `want` arrived)."""
        got, deadline = [], time.time() + timeout
        while True:
            got += [bytes.fromhex(h) for h in self("pvs-appctl", "netdev-dummy/capture", port).split()]
            if len(got) >= want or time.time() > deadline:
                return got
            time.sleep(0.02)


@pytest.fixture(scope="module")
def sw():
    lab = Lab(prefix="pve")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    try:
        lab.start_daemon(rundir, env=cli.env)
        cli("pvs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
            "--", "add-port", "br0", "pa", "tag=10", "--", "set", "Interface", "pa", "type=dummy",
            "ofport_request=1",
            "--", "add-port", "br0", "pb", "tag=10", "--", "set", "Interface", "pb", "type=dummy",
            "ofport_request=2",
            "--", "add-port", "br0", "pc", "tag=20", "--", "set", "Interface", "pc", "type=dummy",
            "ofport_request=3",
            "--", "add-port", "br0", "pt", "trunks=10,20", "--", "set", "Interface", "pt", "type=dummy",
            "ofport_request=4")
        yield cli
    finally:
        lab.close()


def udp(src, dst, vlan=None):
    f = Ether(src=src, dst=dst)
    if vlan is not None:
        f = f / Dot1Q(vlan=vlan)
    return f / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=2000) / (b"x" * 20)


def drain(cli, *ports):
    for p in ports:
        cli.capture(p, want=0, timeout=0)


def test_show_lists_ports_with_ofports(sw):
    out = sw("pvs-vsctl", "show")
    for p in ("pa", "pb", "pc", "pt"):
        assert f"Port {p}" in out
    assert sw("pvs-vsctl", "get", "Interface", "pt", "ofport").strip() == "4"


def test_flood_within_vlan_then_learned_unicast(sw):
    sw("pvs-appctl", "fdb/flush", "br0")
    drain(sw, "pa", "pb", "pc", "pt")
    sw.send("pa", udp(A, "ff:ff:ff:ff:ff:ff"))
    assert [Ether(f).dst for f in sw.capture("pb")] == ["ff:ff:ff:ff:ff:ff"]
    trunk = sw.capture("pt")
    assert len(trunk) == 1 and Ether(trunk[0])[Dot1Q].vlan == 10
    assert sw.capture("pc", want=0, timeout=0.3) == []
    assert sw.capture("pa", want=0, timeout=0) == []       # never back out of in_port
    # b answers a: a is learned, so only pa gets it, untagged
    sw.send("pb", udp(B, A))
    out = sw.capture("pa")
    assert len(out) == 1 and Dot1Q not in Ether(out[0])
    assert sw.capture("pt", want=0, timeout=0.3) == []
    fdb = sw("pvs-appctl", "fdb/show", "br0")
    assert f"    1    10  {A}" in fdb and f"    2    10  {B}" in fdb


def test_trunk_to_access_strips_tag(sw):
    drain(sw, "pa", "pb", "pc", "pt")
    sw.send("pt", udp(C, "ff:ff:ff:ff:ff:ff", vlan=20))
    out = sw.capture("pc")
    assert len(out) == 1 and Dot1Q not in Ether(out[0])
    assert sw.capture("pa", want=0, timeout=0.3) == [] and sw.capture("pb", want=0, timeout=0) == []


def test_megaflows_and_pmd_stats(sw):
    for _ in range(5):
        sw.send("pa", udp(A, B))
    assert len(sw.capture("pb", want=5)) >= 5
    flows = sw("pvs-appctl", "dpctl/dump-flows")
    assert f"eth(src={A},dst={B})" in flows
    stats = sw("pvs-appctl", "dpif-netdev/pmd-stats-show")
    hits = sum(int(line.split(":")[1]) for line in stats.splitlines()
               if line.strip().startswith(("emc hits", "megaflow hits")))
    assert hits >= 4


def test_flow_mod_takes_effect_for_next_packet(sw):
    drain(sw, "pb")
    sw("pvs-ofctl", "add-flow", "br0", "priority=100,in_port=1,actions=drop")
    sw.send("pa", udp(A, B))
    assert sw.capture("pb", want=1, timeout=0.5) == []
    sw("pvs-ofctl", "del-flows", "br0", "in_port=1")
    sw("pvs-ofctl", "add-flow", "br0", "priority=0,actions=NORMAL")
    sw.send("pa", udp(A, B))
    assert len(sw.capture("pb")) == 1


def test_dump_ports_counts(sw):
    out = sw("pvs-ofctl", "--names", "dump-ports", "br0", "pa")
    line = out.splitlines()[1]
    assert line.startswith('  port "pa": rx pkts=')
    assert int(line.split("rx pkts=")[1].split(",")[0]) >= 1


def test_dump_flows_credits_rules(sw):
    drain(sw, "pb")
    sw("pvs-ofctl", "add-flow", "br0", "priority=50,in_port=1,actions=output:2")
    for _ in range(3):
        sw.send("pa", udp(A, B))
    sw.capture("pb", want=3)
    deadline = time.time() + 5
    while time.time() < deadline:   # the revalidator credits once a second
        line = [ln for ln in sw("pvs-ofctl", "dump-flows", "br0").splitlines() if "priority=50" in ln][0]
        if "n_packets=3," in line:
            break
        time.sleep(0.2)
    assert "n_packets=3," in line and "in_port=1 actions=output:2" in line
    sw("pvs-ofctl", "del-flows", "br0", "in_port=1")
    sw("pvs-ofctl", "add-flow", "br0", "priority=0,actions=NORMAL")


def test_trace(sw):
    out = sw("pvs-appctl", "ofproto/trace", "br0", f"in_port=3,dl_src={C},dl_dst=ff:ff:ff:ff:ff:ff")
    assert 'bridge("br0")' in out and "NORMAL" in out and "Datapath actions:" in out


def test_errors_leave_state_alone(sw):
    before = sw("pvs-ofctl", "dump-flows", "br0")
    r = sw("pvs-ofctl", "add-flow", "br0", "tp_dst=80,actions=drop", ok=False)
    assert r.returncode == 1 and "prerequisites not met" in r.stderr
    r = sw("pvs-ofctl", "add-flows", "br0", "-", ok=False)   # empty stdin: nothing to add
    assert sw("pvs-ofctl", "dump-flows", "br0").count("\n") == before.count("\n")
    r = sw("pvs-appctl", "netdev-dummy/receive", "pa", "zz", ok=False)
    assert r.returncode == 2 and "hexadecimal" in r.stderr
    r = sw("pvs-appctl", "fdb/show", "nobr", ok=False)
    assert r.returncode == 2
    assert "pvs-vswitchd (pyvswitch)" in sw("pvs-appctl", "version")


def test_idle_megaflows_expire_after_max_idle(sw):
    """other_config:max-idle, as Open vSwitch: a megaflow without packets for
    that long leaves the datapath (its packets stay credited to the rule), a
    busy one stays, and traffic afterwards installs it again. A malformed
    value is refused."""
    r = sw("pvs-vsctl", "set", "Open_vSwitch", ".", "other_config:max-idle=12x", ok=False)
    assert r.returncode == 1 and 'other_config:max-idle="12x" is invalid' in r.stderr
    sw("pvs-vsctl", "set", "Open_vSwitch", ".", "other_config:max-idle=1000")
    try:
        drain(sw, "pb", "pc")
        t0, gone = time.time(), None       # the flow is installed after t0: it cannot go before t0 + 1
        sw.send("pa", udp(A, B))
        sw.send("pc", udp(C, "ff:ff:ff:ff:ff:ff", vlan=None))
        sw.capture("pb")
        assert f"eth(src={A},dst={B})" in sw("pvs-appctl", "dpctl/dump-flows")
        while time.time() - t0 < 15:
            sw.send("pc", udp(C, "ff:ff:ff:ff:ff:ff"))   # keeps its megaflow busy
            flows = sw("pvs-appctl", "dpctl/dump-flows")
            if f"eth(src={A},dst={B})" not in flows:
                gone = time.time() - t0
                break
            time.sleep(0.3)
        assert gone is not None and gone >= 1.0, flows
        assert f"eth(src={C},dst=ff:ff:ff:ff:ff:ff)" in flows       # the busy flow stayed
        sw.send("pa", udp(A, B))
        assert sw.capture("pb")
        assert f"eth(src={A},dst={B})" in sw("pvs-appctl", "dpctl/dump-flows")
    finally:
        sw("pvs-vsctl", "remove", "Open_vSwitch", ".", "other_config", "max-idle")


def test_upcall_show(sw):
    sw.send("pa", udp(A, B))
    sw.capture("pb")
    deadline = time.time() + 15
    while time.time() < deadline:       # the next sweep counts the flow
        out = sw("pvs-appctl", "upcall/show")
        if "(current 0)" not in out:
            break
        time.sleep(0.3)
    assert out.startswith("netdev@pyvswitch:\n  flows         : (current ")
    assert "(current 0)" not in out and "(limit 58982 per PMD)" in out
    assert "  max idle      : 10000 ms\n" in out and "  dump duration : " in out
