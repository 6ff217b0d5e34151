"""Patch ports between two bridges, driven through the CLIs on dummy ports.

br0 (dummy pa, ofport 1) and br1 (dummy pb, ofport 1) are joined by the pair
patch0 (br0) <-> patch1 (br1). Frames go in with netdev-dummy/receive and
come out with netdev-dummy/capture. What is checked: NORMAL across the pair,
one datapath pass (one megaflow straight from pa to pb), the trace's bridge
crossing, flows on each bridge, statistics on both ends, dangling ends (down
with an error), bad options (refused with OVS's messages) and removal.
"""

import os
import re
import subprocess
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.tools.lab import Lab, tool

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")

A, B = "02:00:00:00:01:0a", "02:00:00:00:01:0b"
# Bridge names are devices (the LOCAL port) in the root namespace: unique per run.
BR0, BR1 = (f"pvp{os.getpid() % 4096:03x}{n}" for n in "ab")


class Cli:
    def __init__(self, rundir):
        self.env = dict(os.environ, PVS_RUNDIR=rundir)

    def run(self, *args):
        # patient: the first bridge starts the PMD, whose kernels compile first
        # when numba's cache is cold (minutes on a busy 2-core machine)
        return subprocess.run([tool(args[0])] + list(args[1:]), env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=900)

    def __call__(self, *args):
        r = self.run(*args)
        assert r.returncode == 0, f"{args}: {r.stderr}"
        return r.stdout

    def send(self, port, *frames):
        self("pvs-appctl", "netdev-dummy/receive", port, *[bytes(f).hex() for f in frames])

    def capture(self, port, want=1, timeout=10.0):
        got, deadline = [], time.time() + timeout
        while True:
            got += [bytes.fromhex(h) for h in self("pvs-appctl", "netdev-dummy/capture", port).split()]
            if len(got) >= want or time.time() > deadline:
                return got
            time.sleep(0.02)

    def get(self, table, row, column):
        return self("pvs-vsctl", "get", table, row, column).strip()


def udp(src, dst, vlan=None, sport=1000):
    f = Ether(src=src, dst=dst)
    if vlan is not None:
        f = f / Dot1Q(vlan=vlan)
    return f / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=sport, dport=2000) / (b"x" * 20)


def dummy(name, ofport):
    return ["--", "set", "Interface", name, "type=dummy", f"ofport_request={ofport}"]


def patch(name, peer):
    return ["--", "set", "Interface", name, "type=patch", f"options:peer={peer}"]


@pytest.fixture(scope="module")
def sw():
    lab = Lab(prefix="pvp")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    try:
        lab.start_daemon(rundir, env=cli.env)
        cli("pvs-vsctl", "add-br", BR0, "--", "set", "bridge", BR0, "datapath_type=netdev",
            "--", "add-br", BR1, "--", "set", "bridge", BR1, "datapath_type=netdev",
            "--", "add-port", BR0, "pa", *dummy("pa", 1),
            "--", "add-port", BR1, "pb", *dummy("pb", 1),
            "--", "add-port", BR0, "patch0", *patch("patch0", "patch1"),
            "--", "add-port", BR1, "patch1", *patch("patch1", "patch0"))
        yield cli
    finally:
        lab.close()


def drain(cli, *ports):
    for p in ports:
        cli.capture(p, want=0, timeout=0)


def reset(cli):
    for br in (BR0, BR1):
        cli("pvs-ofctl", "del-flows", br)
        cli("pvs-ofctl", "add-flow", br, "priority=0,actions=NORMAL")
        cli("pvs-appctl", "fdb/flush", br)
    drain(cli, "pa", "pb")


def test_show_and_link_state(sw):
    out = sw("pvs-vsctl", "show")
    assert "Port patch0" in out and "type: patch" in out and 'options: {peer=patch1}' in out
    for name in ("patch0", "patch1"):
        assert sw.get("Interface", name, "link_state") == "up"
        assert int(sw.get("Interface", name, "ofport")) > 0
        assert sw.get("Interface", name, "error") == "[]"
    assert "patch" in sw.get("Open_vSwitch", ".", "iface_types")


def test_normal_across_the_pair(sw):
    reset(sw)
    sw.send("pa", udp(A, "ff:ff:ff:ff:ff:ff"))
    assert [Ether(f).src for f in sw.capture("pb")] == [A]
    sw.send("pb", udp(B, A))
    assert [Ether(f).dst for f in sw.capture("pa")] == [A]
    fdb0, fdb1 = sw("pvs-appctl", "fdb/show", BR0), sw("pvs-appctl", "fdb/show", BR1)
    p0, p1 = sw.get("Interface", "patch0", "ofport"), sw.get("Interface", "patch1", "ofport")
    assert re.search(rf"^\s+{p0}\s+0\s+{B}", fdb0, re.M), fdb0     # B learned on patch0
    assert re.search(rf"^\s+{p1}\s+0\s+{A}", fdb1, re.M), fdb1     # A learned on patch1


def test_one_megaflow_one_pass(sw):
    """The datapath sees pa -> pb directly: no patch port in any action."""
    reset(sw)
    sw.send("pa", udp(A, "ff:ff:ff:ff:ff:ff"))
    sw.send("pb", udp(B, A))
    sw.capture("pa")
    sw.capture("pb")                         # the broadcast
    sw("pvs-appctl", "dpctl/del-flows")
    for _ in range(3):
        sw.send("pa", udp(A, B))
    assert len(sw.capture("pb", want=3)) == 3
    flows = [f for f in sw("pvs-appctl", "dpctl/dump-flows").splitlines()
             if f"eth(src={A},dst={B})" in f]
    assert len(flows) == 1, flows
    assert re.search(r"actions:\d+$", flows[0]), flows[0]


def test_trace_shows_the_crossing(sw):
    reset(sw)
    sw("pvs-ofctl", "del-flows", BR0)
    sw("pvs-ofctl", "add-flow", BR0, "in_port=pa,actions=output:patch0")
    out = sw("pvs-appctl", "ofproto/trace", BR0, f"in_port=1,dl_src={A},dl_dst={B}")
    assert f"""
bridge("{BR0}")
{"-" * (len(BR0) + 10)}
 0. in_port=1, priority 32768
    output:patch0

bridge("{BR1}")
{"-" * (len(BR1) + 10)}
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding
""" in out, out
    assert re.search(r"Datapath actions: \d+(,\d+)?\n$", out), out   # pb (and LOCAL)


def test_flows_on_each_bridge(sw):
    """br0 tags what it sends into the patch, br1 matches the tag and pops it."""
    reset(sw)
    sw("pvs-ofctl", "del-flows", BR0)
    sw("pvs-ofctl", "del-flows", BR1)
    sw("pvs-ofctl", "add-flow", BR0, "in_port=pa,actions=mod_vlan_vid:7,output:patch0")
    sw("pvs-ofctl", "add-flow", BR1, "in_port=patch1,dl_vlan=7,actions=strip_vlan,"
       "mod_dl_dst:02:00:00:00:01:99,output:pb")
    sw("pvs-ofctl", "add-flow", BR1, "in_port=patch1,actions=drop")
    sw.send("pa", udp(A, B))
    out = sw.capture("pb")
    assert len(out) == 1 and Dot1Q not in Ether(out[0])
    assert Ether(out[0]).dst == "02:00:00:00:01:99"
    # rules in both bridges are credited from the one megaflow (once a second)
    wait(lambda: re.search(r"n_packets=1,.*vlan_vid=0x1007", sw("pvs-ofctl", "dump-flows", BR1)))
    wait(lambda: "n_packets=1," in sw("pvs-ofctl", "dump-flows", BR0))


def wait(cond, timeout=15.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def _stat(sw, name, key):
    text = sw.get("Interface", name, "statistics")
    m = re.search(rf"\b{key}=(\d+)", text)
    return int(m.group(1)) if m else 0


def test_statistics_on_both_ends(sw):
    reset(sw)
    tx0, rx1 = _stat(sw, "patch0", "tx_packets"), _stat(sw, "patch1", "rx_packets")
    for i in range(5):
        sw.send("pa", udp(A, B, sport=3000 + i))
    assert len(sw.capture("pb", want=5)) == 5
    wait(lambda: _stat(sw, "patch0", "tx_packets") >= tx0 + 5 and
         _stat(sw, "patch1", "rx_packets") >= rx1 + 5)
    ports = sw("pvs-ofctl", "dump-ports", BR1)
    n = sw.get("Interface", "patch1", "ofport")
    assert re.search(rf'port\s+"?(patch1|{n})"?: rx pkts=[1-9]', ports), ports


def test_dangling_and_bad_options(sw):
    r = sw.run("pvs-vsctl", "add-port", BR0, "lonely", *patch("lonely", "nobody"))
    assert r.returncode == 0
    assert sw.get("Interface", "lonely", "link_state") == "down"
    assert "lonely: patch peer nobody does not exist" in sw.get("Interface", "lonely", "error")
    cases = {
        "nopeer": (["--", "set", "Interface", "nopeer", "type=patch"],
                   "nopeer: patch type requires valid 'peer' argument"),
        "selfie": (patch("selfie", "selfie"), "selfie: patch peer must not be self"),
        "extra": (patch("extra", "x") + ["options:color=blue"],
                  "extra: patch type takes only a 'peer' argument"),
    }
    for name, (args, message) in cases.items():
        r = sw.run("pvs-vsctl", "add-port", BR0, name, *args)
        assert r.returncode == 0, r.stderr
        assert f"Error detected while setting up '{name}': {message}." in r.stderr, r.stderr
        assert message in sw.get("Interface", name, "error")
        assert sw.get("Interface", name, "ofport") == "-1"
    sw("pvs-vsctl", "del-port", "lonely", "--", "del-port", "nopeer", "--", "del-port", "selfie",
       "--", "del-port", "extra")


def test_removing_one_end_stops_traffic(sw):
    reset(sw)
    sw("pvs-vsctl", "del-port", BR1, "patch1")
    assert sw.get("Interface", "patch0", "link_state") == "down"
    assert "patch peer patch1 does not exist" in sw.get("Interface", "patch0", "error")
    sw.send("pa", udp(A, "ff:ff:ff:ff:ff:ff"))
    assert sw.capture("pb", want=1, timeout=0.5) == []
    sw("pvs-vsctl", "add-port", BR1, "patch1", *patch("patch1", "patch0"))
    assert sw.get("Interface", "patch0", "link_state") == "up"
    assert sw.get("Interface", "patch0", "error") == "[]"
    sw.send("pa", udp(A, "ff:ff:ff:ff:ff:ff"))
    assert len(sw.capture("pb")) == 1
