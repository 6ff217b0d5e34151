"""Port mirroring from the DB Mirror table, driven through the CLIs on dummy
ports: the Open vSwitch recipe (`-- --id=@p get Port ... -- --id=@m create
Mirror ... -- set Bridge br0 mirrors=@m`), select_all / select_src_port /
select_dst_port / select_vlan, output_port and output_vlan (RSPAN), a mirror
output port reserved for mirroring, changes taking effect for the very next
packet, mirrors surviving other reconfiguration, `clear Bridge br0 mirrors`
collecting the row, and Mirror.statistics written back.

Bridge br0 (NORMAL): p1, p2, p3 untagged (trunks of every VLAN), pm (the
mirror output), pv (access VLAN 10), pt (trunk 10,20).
Bridge br1 for RSPAN: r1, r2 access VLAN 10, r3 trunk 30, r4 access 30,
r5 access 20.
"""

import json
import os
import subprocess
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.tools.lab import Lab, tool

from .test_cli_dummy import Cli as _Cli


class Cli(_Cli):
    """The CLIs with a patient timeout: the first bridge starts the PMD, whose
    kernels compile first when numba's cache is cold (minutes on a busy
    2-core machine)."""

    def __call__(self, *args, ok=True):
        r = subprocess.run([tool(args[0])] + list(args[1:]), env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
        if ok:
            assert r.returncode == 0, f"{args}: {r.stderr}"
            return r.stdout
        return r

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
BR0 = {"p1": [], "p2": [], "p3": [], "pm": [], "pv": ["tag=10"], "pt": ["trunks=10,20"]}
BR1 = {"r1": ["tag=10"], "r2": ["tag=10"], "r3": ["trunks=30"], "r4": ["tag=30"],
       "r5": ["tag=20"]}


def _add_ports(cli, br, ports):
    args = []
    for n, (name, extra) in enumerate(ports.items(), 1):
        args += ["--", "add-port", br, name, *extra, "--", "set", "Interface", name,
                 "type=dummy", f"ofport_request={n}"]
    cli("pvs-vsctl", *args)


@pytest.fixture(scope="module")
def sw():
    lab = Lab(prefix="pvm")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    try:
        lab.start_daemon(rundir, env=cli.env)
        cli("pvs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
            "--", "add-br", "br1", "--", "set", "bridge", "br1", "datapath_type=netdev")
        _add_ports(cli, "br0", BR0)
        _add_ports(cli, "br1", BR1)
        # the first upcall compiles the datapath's upcall kernels (cold cache: slow)
        cli.send("p1", udp(A, B))
        assert len(cli.capture("p2", timeout=600)) == 1
        drain(cli, *BR0)
        cli.lab, cli.rundir = lab, rundir
        yield cli
    finally:
        lab.close()


def udp(src, dst, vlan=None, sport=1000):
    f = Ether(src=src, dst=dst)
    if vlan is not None:
        f = f / Dot1Q(vlan=vlan)
    return f / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=2000) / (b"x" * 20)


def drain(cli, *ports):
    for p in ports:
        cli.capture(p, want=0, timeout=0)


def quiet(cli, port):
    """Nothing arrives on `port` (given time for a frame that would)."""
    return cli.capture(port, want=1, timeout=0.4) == []


def vlan_of(frame):
    f = Ether(frame)
    return f[Dot1Q].vlan if Dot1Q in f else None


def clear_mirrors(cli, br="br0"):
    cli("pvs-vsctl", "clear", "Bridge", br, "mirrors")
    assert cli("pvs-vsctl", "list", "Mirror") == ""


def test_ovs_recipe_select_all_copies_traffic_between_two_ports(sw):
    out = sw("pvs-vsctl", "--", "--id=@p", "get", "Port", "pm", "--", "--id=@m", "create",
             "Mirror", "name=m0", "select-all=true", "output-port=@p",
             "--", "set", "Bridge", "br0", "mirrors=@m")
    assert out.strip() == sw("pvs-vsctl", "get", "Mirror", "m0", "_uuid").strip()
    assert sw("pvs-vsctl", "get", "Mirror", "m0", "output_port").strip() == \
        sw("pvs-vsctl", "get", "Port", "pm", "_uuid").strip()
    drain(sw, *BR0)
    sw.send("p1", udp(A, "ff:ff:ff:ff:ff:ff"))          # flooded: one copy, not two
    copies = sw.capture("pm")
    assert len(copies) == 1 and bytes(copies[0]) == bytes(udp(A, "ff:ff:ff:ff:ff:ff"))
    assert len(sw.capture("p2")) == 1 and len(sw.capture("p3")) == 1 and quiet(sw, "pm")
    drain(sw, *BR0)
    sw.send("p2", udp(B, A))                             # learned unicast b -> a
    assert len(sw.capture("p1")) == 1
    assert [Ether(f).src for f in sw.capture("pm")] == [B]
    assert quiet(sw, "p3")
    # the mirror output port is reserved: what arrives on it goes nowhere
    sw.send("pm", udp(C, "ff:ff:ff:ff:ff:ff"))
    assert quiet(sw, "p1") and quiet(sw, "p2")
    # Mirror.statistics: the copies, written back by the daemon
    deadline = time.time() + 15
    while time.time() < deadline:
        stats = sw("pvs-vsctl", "get", "Mirror", "m0", "statistics")
        if "tx_packets=2" in stats:
            break
        time.sleep(0.2)
    assert "tx_packets=2" in stats and "tx_bytes=" in stats
    clear_mirrors(sw)
    sw.send("p1", udp(A, B))
    assert len(sw.capture("p2")) == 1 and quiet(sw, "pm")


def test_src_then_dst_selection_takes_effect_for_the_next_packet(sw):
    sw("pvs-vsctl", "--", "--id=@p", "get", "Port", "pm", "--", "--id=@s", "get", "Port", "p1",
       "--", "--id=@m", "create", "Mirror", "name=m1", "select_src_port=@s", "output_port=@p",
       "--", "set", "Bridge", "br0", "mirrors=@m")
    drain(sw, *BR0)
    sw.send("p1", udp(A, B))                             # from p1: copied
    assert len(sw.capture("p2")) == 1 and len(sw.capture("pm")) == 1
    sw.send("p2", udp(B, A))                             # to p1: not selected
    assert len(sw.capture("p1")) == 1 and quiet(sw, "pm")
    # the same flows again (their megaflows are cached), mirror now on p1's egress
    sw("pvs-vsctl", "--", "--id=@s", "get", "Port", "p1", "--", "clear", "Mirror", "m1",
       "select_src_port", "--", "set", "Mirror", "m1", "select_dst_port=@s")
    sw.send("p1", udp(A, B))
    assert len(sw.capture("p2")) == 1 and quiet(sw, "pm")
    sw.send("p2", udp(B, A))
    assert len(sw.capture("p1")) == 1
    assert [Ether(f).src for f in sw.capture("pm")] == [B]
    clear_mirrors(sw)


def test_select_vlan_and_copies_keep_their_vlan_on_a_trunk(sw):
    sw("pvs-vsctl", "--", "--id=@p", "get", "Port", "pm", "--", "--id=@m", "create", "Mirror",
       "name=mv", "select_all=true", "select_vlan=10", "output_port=@p",
       "--", "set", "Bridge", "br0", "mirrors=@m")
    drain(sw, *BR0)
    sw.send("pt", udp(C, "ff:ff:ff:ff:ff:ff", vlan=20))  # VLAN 20: not selected
    assert quiet(sw, "pm")
    sw.send("pt", udp(C, "ff:ff:ff:ff:ff:ff", vlan=10))  # VLAN 10 on the trunk
    assert [vlan_of(f) for f in sw.capture("pm")] == [10]
    assert [vlan_of(f) for f in sw.capture("pv")] == [None]
    sw.send("pv", udp(A, "ff:ff:ff:ff:ff:ff"))           # access port of VLAN 10, untagged
    assert [vlan_of(f) for f in sw.capture("pm")] == [10]
    sw.send("p1", udp(A, "ff:ff:ff:ff:ff:ff"))           # VLAN 0
    assert quiet(sw, "pm")
    drain(sw, *BR0)
    clear_mirrors(sw)


def test_output_vlan_floods_tagged_copies_rspan(sw):
    sw("pvs-vsctl", "--", "--id=@s", "get", "Port", "r1", "--", "--id=@m", "create", "Mirror",
       "name=rspan", "select_src_port=@s", "output_vlan=30",
       "--", "set", "Bridge", "br1", "mirrors=@m")
    drain(sw, *BR1)
    sw.send("r1", udp(A, "ff:ff:ff:ff:ff:ff"))
    assert [vlan_of(f) for f in sw.capture("r2")] == [None]     # the frame itself
    assert [vlan_of(f) for f in sw.capture("r3")] == [30]       # copy, tagged 30
    assert [vlan_of(f) for f in sw.capture("r4")] == [None]     # copy, access VLAN 30
    assert quiet(sw, "r5")
    sw.send("r2", udp(B, "ff:ff:ff:ff:ff:ff"))                   # not selected
    assert len(sw.capture("r1")) == 1 and quiet(sw, "r3") and quiet(sw, "r4")
    drain(sw, *BR1)
    clear_mirrors(sw, "br1")


def test_mirror_survives_reconfiguration(sw):
    sw("pvs-vsctl", "--", "--id=@p", "get", "Port", "pm", "--", "--id=@s", "get", "Port", "p2",
       "--", "--id=@m", "create", "Mirror", "name=ms", "select_src_port=@s",
       "select_dst_port=@s", "output_port=@p", "--", "set", "Bridge", "br0", "mirrors=@m")
    # unrelated changes: a port comes and goes, another changes VLAN, flows change
    sw("pvs-vsctl", "add-port", "br0", "px", "--", "set", "Interface", "px", "type=dummy")
    sw("pvs-vsctl", "set", "Port", "p3", "tag=40")
    sw("pvs-vsctl", "del-port", "br0", "px")
    sw("pvs-ofctl", "add-flow", "br0", "priority=5,udp,tp_dst=9,actions=drop")
    drain(sw, *BR0)
    sw.send("p2", udp(B, A))
    assert len(sw.capture("p1")) == 1 and len(sw.capture("pm")) == 1
    # the output port itself re-added: OVS drops the weak reference, so the
    # mirror has no output any more and copies stop
    sw("pvs-vsctl", "del-port", "br0", "pm")
    assert sw("pvs-vsctl", "get", "Mirror", "ms", "output_port").strip() == "[]"
    sw("pvs-vsctl", "add-port", "br0", "pm", "--", "set", "Interface", "pm", "type=dummy",
       "ofport_request=4")
    drain(sw, *BR0)
    sw.send("p2", udp(B, A))
    assert len(sw.capture("p1")) == 1 and quiet(sw, "pm")
    sw("pvs-vsctl", "--", "--id=@p", "get", "Port", "pm", "--", "set", "Mirror", "ms",
       "output_port=@p")
    sw.send("p2", udp(B, A))
    assert len(sw.capture("p1")) == 1 and len(sw.capture("pm")) == 1
    sw("pvs-vsctl", "set", "Port", "p3", "tag=[]")
    sw("pvs-ofctl", "del-flows", "br0", "udp,tp_dst=9")
    clear_mirrors(sw)


def test_trace_shows_the_mirror(sw):
    sw("pvs-vsctl", "--", "--id=@p", "get", "Port", "pm", "--", "--id=@m", "create", "Mirror",
       "name=mt", "select_all=true", "output_port=@p", "--", "set", "Bridge", "br0",
       "mirrors=@m")
    out = sw("pvs-appctl", "ofproto/trace", "br0", f"in_port=1,dl_src={A},dl_dst={B}")
    assert "mirror mt: copy to port 4" in out
    clear_mirrors(sw)
    assert json.loads(json.dumps(sw("pvs-vsctl", "list", "Mirror"))) == ""


def test_mirror_survives_a_daemon_restart(sw):
    """The Mirror row is configuration: a restarted daemon mirrors again."""
    sw("pvs-vsctl", "--", "--id=@p", "get", "Port", "pm", "--", "--id=@m", "create", "Mirror",
       "name=mr", "select_all=true", "output_port=@p", "--", "set", "Bridge", "br0",
       "mirrors=@m")
    for pid in list(sw.lab.pids):
        sw.lab.stop_pid(pid)
        sw.lab.pids.remove(pid)
    sw.lab.start_daemon(sw.rundir, env=sw.env)
    deadline = time.time() + 600             # until it has read the database again
    while time.time() < deadline:
        r = sw("pvs-appctl", "ofproto/trace", "br0", f"in_port=1,dl_src={A},dl_dst={B}",
               ok=False)
        if r.returncode == 0 and "mirror mr: copy to port 4" in r.stdout:
            break
        time.sleep(0.2)
    sw.send("p1", udp(A, B))
    assert len(sw.capture("pm", timeout=600)) == 1
    clear_mirrors(sw)
