"""Bonds on dummy ports, through the CLIs: bond/show, active-backup admission
and failover, no loops through a bond, balance-slb spreading and its loop
check, balance-tcp without LACP (refused as OVS does), up/down delays.

    pa (dummy, ofport 1) -- [bridge] -- bond0 = {m1, m2} (dummy)

A member's link goes down with `netdev-dummy/set-admin-state mX down`, as in
Open vSwitch's own bond tests.
"""

import os
import re
import time

import pytest
from scapy.layers.l2 import ARP, Ether

from .test_patch import Cli, udp, wait

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")

BR = f"pvb{os.getpid() % 4096:03x}"
A, H = "02:00:00:00:02:0a", "02:00:00:00:02:0b"
BCAST = "ff:ff:ff:ff:ff:ff"


@pytest.fixture(scope="module")
def sw():
    from pyvswitch.tools.lab import Lab
    lab = Lab(prefix="pvb")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    try:
        lab.start_daemon(rundir, env=cli.env)
        cli("pvs-vsctl", "add-br", BR, "--", "set", "bridge", BR, "datapath_type=netdev",
            "--", "add-port", BR, "pa", "--", "set", "Interface", "pa", "type=dummy",
            "ofport_request=1",
            "--", "add-bond", BR, "bond0", "m1", "m2", "bond_mode=active-backup",
            "--", "set", "Interface", "m1", "type=dummy", "ofport_request=2",
            "--", "set", "Interface", "m2", "type=dummy", "ofport_request=3")
        yield cli
    finally:
        lab.close()


def setup(sw, mode="active-backup", **extra):
    sw("pvs-appctl", "netdev-dummy/set-admin-state", "m1", "up")
    sw("pvs-appctl", "netdev-dummy/set-admin-state", "m2", "up")
    sets = [f"bond_mode={mode}", "bond_updelay=0", "bond_downdelay=0"]
    sets += [f"{k}={v}" for k, v in extra.items()]
    sw("pvs-vsctl", "set", "Port", "bond0", *sets)
    wait(lambda: all(f"member {m}: enabled" in sw("pvs-appctl", "bond/show", "bond0")
                     for m in ("m1", "m2")))
    if mode == "active-backup":
        sw("pvs-appctl", "bond/set-active-member", "bond0", "m1")
    sw("pvs-appctl", "fdb/flush", BR)
    sw("pvs-appctl", "dpctl/del-flows")
    for p in ("pa", "m1", "m2"):
        sw.capture(p, want=0, timeout=0)


def test_bond_show_layout(sw):
    setup(sw)
    out = sw("pvs-appctl", "bond/show", "bond0")
    assert out.startswith("---- bond0 ----\nbond_mode: active-backup\n"), out
    for line in ("updelay: 0 ms", "downdelay: 0 ms", "lacp_status: off",
                 "lacp_fallback_ab: false", "active-backup primary: <none>"):
        assert f"\n{line}\n" in out, out
    assert re.search(r"\nactive member mac: [0-9a-f:]{17}\(m1\)\n", out), out
    assert "\nmember m1: enabled\n  active member\n  may_enable: true\n" in out, out
    assert "\nmember m2: enabled\n  may_enable: true\n" in out, out
    assert "next rebalance" not in out                   # active-backup never rebalances
    assert sw("pvs-appctl", "bond/show") == out
    r = sw.run("pvs-appctl", "bond/show", "nope")
    assert r.returncode != 0 and "no such bond" in r.stderr
    assert "bond0\tactive-backup\t-1\tm1, m2" in sw("pvs-appctl", "bond/list")


def test_active_backup_forwarding_and_no_loop(sw):
    setup(sw)
    sw.send("pa", udp(A, BCAST))
    assert len(sw.capture("m1")) == 1                    # out of the active member only
    assert sw.capture("m2", want=1, timeout=0.5) == []
    sw.send("m1", udp(H, BCAST))                         # in by the active member
    assert [Ether(f).src for f in sw.capture("pa")] == [H]
    assert sw.capture("m2", want=1, timeout=0.5) == []   # never back out of the same bond
    sw.send("m2", udp("02:00:00:00:02:77", A))           # in by the backup member: dropped
    assert sw.capture("pa", want=1, timeout=0.5) == []
    trace = sw("pvs-appctl", "ofproto/trace", BR, f"in_port=3,dl_src={H},dl_dst={A}")
    assert "bonding refused admissibility, dropping" in trace, trace


def test_failover_and_learning_packets(sw):
    setup(sw)
    sw.send("pa", udp(A, BCAST))                          # A learned on pa
    sw.capture("m1")
    sw("pvs-appctl", "netdev-dummy/set-admin-state", "m1", "down")
    wait(lambda: "member m1: disabled" in sw("pvs-appctl", "bond/show", "bond0"))
    out = sw("pvs-appctl", "bond/show", "bond0")
    assert "\nmember m2: enabled\n  active member\n" in out, out
    # the new active member announces the MACs learned elsewhere (a RARP from A)
    rarps = [Ether(f) for f in sw.capture("m2") if Ether(f).type == 0x8035]
    assert rarps and rarps[0].src == A and rarps[0].dst == BCAST
    sw.capture("m1", want=0, timeout=0)
    sw.send("pa", udp(A, H))
    assert [Ether(f).dst for f in sw.capture("m2")] == [H]
    assert sw.capture("m1", want=1, timeout=0.5) == []
    mac = sw.get("Interface", "m2", "mac_in_use")
    wait(lambda: sw.get("Port", "bond0", "bond_active_slave") == mac)
    r = sw.run("pvs-appctl", "bond/set-active-member", "bond0", "m1")
    assert r.returncode != 0 and "cannot make disabled member active" in r.stderr
    sw("pvs-appctl", "netdev-dummy/set-admin-state", "m1", "up")
    wait(lambda: "member m1: enabled" in sw("pvs-appctl", "bond/show", "bond0"))
    assert sw("pvs-appctl", "bond/set-active-member", "bond0", "m1") == "done\n"
    assert sw("pvs-appctl", "bond/set-active-member", "bond0", "m1") == "no change\n"
    r = sw.run("pvs-appctl", "bond/set-active-member", "bond0", "m9")
    assert r.returncode != 0 and "no such member" in r.stderr


def test_updelay_and_downdelay(sw):
    setup(sw, bond_downdelay=1500)
    sw("pvs-appctl", "netdev-dummy/set-admin-state", "m1", "down")
    wait(lambda: "downdelay expires in" in sw("pvs-appctl", "bond/show", "bond0"))
    out = sw("pvs-appctl", "bond/show", "bond0")
    assert "downdelay: 1500 ms" in out and "member m1: enabled" in out, out
    wait(lambda: "member m1: disabled" in sw("pvs-appctl", "bond/show", "bond0"), 10)
    sw("pvs-vsctl", "set", "Port", "bond0", "bond_updelay=1500")
    sw("pvs-appctl", "netdev-dummy/set-admin-state", "m1", "up")
    wait(lambda: "updelay expires in" in sw("pvs-appctl", "bond/show", "bond0"))
    wait(lambda: "member m1: enabled" in sw("pvs-appctl", "bond/show", "bond0"), 10)


def test_balance_slb_spreads_by_source_mac(sw):
    setup(sw, "balance-slb")
    out = sw("pvs-appctl", "bond/show", "bond0")
    assert "bond_mode: balance-slb" in out and "next rebalance:" in out, out
    srcs = [f"02:00:00:00:03:{i:02x}" for i in range(16)]
    chosen = {}
    for rnd in range(2):
        for src in srcs:
            sw.send("pa", udp(src, H))
            got = {m: sw.capture(m, want=1, timeout=0.3) for m in ("m1", "m2")}
            members = [m for m, frames in got.items() if frames]
            assert len(members) == 1, (src, got)          # one copy, one member
            assert chosen.setdefault(src, members[0]) == members[0]   # and always the same
    assert set(chosen.values()) == {"m1", "m2"}, chosen


def test_balance_slb_admission(sw):
    setup(sw, "balance-slb")
    sw.send("pa", udp(A, BCAST))                        # A is learned on pa
    for m in ("m1", "m2"):
        sw.capture(m, want=0, timeout=0.3)
    active = "m1" if "member m1: enabled\n  active member" in sw(
        "pvs-appctl", "bond/show", "bond0") else "m2"
    backup = "m2" if active == "m1" else "m1"
    sw.send(backup, udp(H, BCAST))                      # multicast on a non-active member
    assert sw.capture("pa", want=1, timeout=0.5) == []
    sw.send(backup, udp(H, A))                          # unicast: accepted by SLB
    assert [Ether(f).src for f in sw.capture("pa")] == [H]
    sw.send(active, udp(A, H))                          # our own A coming back: a loop
    assert sw.capture("pa", want=1, timeout=0.5) == []
    trace = sw("pvs-appctl", "ofproto/trace", BR,
               f"in_port={2 if active == 'm1' else 3},dl_src={A},dl_dst={H}")
    assert "SLB bond thinks this packet looped back, dropping" in trace, trace
    grat = Ether(src=A, dst=BCAST) / ARP(op=2, hwsrc=A, psrc="10.9.9.9", pdst="10.9.9.9")
    sw.send(active, grat)                               # ...unless a gratuitous ARP (a VM moved)
    assert len(sw.capture("pa")) == 1


def test_balance_tcp_needs_lacp(sw):
    setup(sw, "balance-tcp")
    out = sw("pvs-appctl", "bond/show", "bond0")
    assert "bond_mode: balance-tcp" in out and "lacp_status: off" in out, out
    sw.send("pa", udp(A, BCAST))
    assert sw.capture("m1", want=1, timeout=0.5) == [] and sw.capture("m2", want=1, timeout=0) == []
    sw.send("m1", udp(H, A))
    assert sw.capture("pa", want=1, timeout=0.5) == []
    trace = sw("pvs-appctl", "ofproto/trace", BR, f"in_port=2,dl_src={H},dl_dst={A}")
    assert "bonding refused admissibility, dropping" in trace, trace
    log = open(os.path.join(sw.env["PVS_RUNDIR"], "pvs-vswitchd.log")).read()
    assert "balance-tcp needs LACP" in log
    setup(sw)                                           # back to active-backup for the next tests
