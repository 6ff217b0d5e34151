"""A bond of two veth pairs under traffic: failover within a second.

    g (10.79.0.1) -- [net.br] bond0 = {m1, m2} ==== m1p, m2p in namespace h,
                                                   enslaved to a Linux bridge
                                                   lbr (10.79.0.2)

(The kernel here has no `bonding` module, so the far end is a Linux bridge:
it floods into both members and relearns a MAC when it moves, as a physical
switch does.) Traffic runs while the active member's veth goes down
(`ip link set ... down`); the largest gap between frames arriving at h must
stay under one second, and the counters show the traffic moving to the other
member. Then balance-slb: pings both ways and the same failover.
"""

import re
import threading
import time

import pytest

from pyvswitch.tools.lab import sh

pytestmark = pytest.mark.system

PREFIX = "bd"
NET = "10.79.0"
TAG = 0xB0D0


@pytest.fixture(scope="module")
def topo(module_net_factory):
    net = module_net_factory(bridge=False)
    # patient: the first bridge starts the PMD, whose kernels compile first when
    # numba's cache is cold (minutes on a busy 2-core machine)
    net.vsctl("add-br", net.br, "--", "set", "bridge", net.br, "datapath_type=netdev",
              timeout=900)
    g = net.host("g", ip=f"{NET}.1/24")
    ns = net.lab.netns("h")
    m1, m2 = f"{net.prefix}-m1", f"{net.prefix}-m2"
    net.lab.veth_to_ns(m1, ns, ns_name="m1p")
    net.lab.veth_to_ns(m2, ns, ns_name="m2p")
    for cmd in (["ip", "link", "add", "lbr", "type", "bridge"],
                ["ip", "link", "set", "m1p", "master", "lbr"],
                ["ip", "link", "set", "m2p", "master", "lbr"],
                ["ip", "addr", "add", f"{NET}.2/24", "dev", "lbr"],
                ["ip", "link", "set", "lbr", "up"]):
        sh(*cmd, ns=ns)
    lbr_mac = sh("cat", "/sys/class/net/lbr/address", ns=ns).stdout.strip()
    net.vsctl("add-bond", net.br, "bond0", m1, m2, "bond_mode=active-backup",
              "--", "set", "Interface", m1, "type=afpacket",
              "--", "set", "Interface", m2, "type=afpacket")
    net.wait_link(g)
    for m in (m1, m2):
        net.wait_for(lambda: net.vsctl("get", "Interface", m, "link_state").strip() == "up",
                     30, 0.1, f"{m} up")
    net.wait_for(lambda: g.ping(f"{NET}.2", count=1), 30, 0.2, "first ping through the bond")
    return net, g, ns, (m1, m2), lbr_mac


def active_member(net):
    out = net.appctl("bond/show", "bond0")
    for line, nxt in zip(out.splitlines(), out.splitlines()[1:]):
        if line.startswith("member ") and nxt.strip() == "active member":
            return line.split()[1].rstrip(":")
    raise AssertionError(out)


def tx_packets(net, iface):
    text = net.vsctl("get", "Interface", iface, "statistics")
    return int(re.search(r"\btx_packets=(\d+)", text).group(1))


class Arrivals(threading.Thread):
    """Arrival times of our test frames at h's bridge device."""

    def __init__(self, wire_class, ns):
        super().__init__(daemon=True)
        self.wire = wire_class(ns, "lbr")        # conftest's Wire, on h's bridge device
        self.times, self.stop = [], False

    def run(self):
        while not self.stop:
            for _ in self.wire.recv(TAG, count=1, timeout=0.05):
                self.times.append(time.monotonic())

    def max_gap(self, start, end):
        t = [x for x in self.times if start <= x <= end]
        return max((b - a for a, b in zip(t, t[1:])), default=float("inf")), len(t)


def failover_under_traffic(net, g, ns, members, lbr_mac, sender):
    """Take the active member down under 2 ms traffic; returns (gap, new active)."""
    wire = g.wire()
    rx = Arrivals(type(wire), ns)
    rx.start()
    s = sender(wire, lbr_mac, g.mac, TAG, interval=0.002)
    try:
        net.wait_for(lambda: len(rx.times) > 50, 20, 0.05, "traffic through the bond")
        old = active_member(net)
        other = [m for m in members if m != old][0]
        before = tx_packets(net, other)
        t_down = time.monotonic()
        sh("ip", "link", "set", old, "down")
        net.wait_for(lambda: active_member(net) == other, 10, 0.05, "failover")
        time.sleep(1.5)
        t_end = time.monotonic()
        gap, n = rx.max_gap(t_down - 0.5, t_end)
        net.wait_for(lambda: tx_packets(net, other) > before + 100, 10, 0.2,
                     "the counters show the move")
        return gap, n, old, other
    finally:
        s.stop()
        rx.stop = True
        rx.join(2)
        rx.wire.close()


def test_active_backup_failover_under_traffic(topo, sender):
    net, g, ns, members, lbr_mac = topo
    gap, n, old, new = failover_under_traffic(net, g, ns, members, lbr_mac, sender)
    print(f"active-backup failover: largest gap {gap * 1000:.0f} ms ({n} frames)")
    assert gap < 1.0, f"{gap:.3f} s without traffic after {old} went down ({n} frames)"
    assert f"member {old}: disabled" in net.appctl("bond/show", "bond0")
    assert g.ping(f"{NET}.2", count=3, interval=0.1)       # and both ways
    sh("ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "1", f"{NET}.1")
    sh("ip", "link", "set", old, "up")
    net.wait_for(lambda: f"member {old}: enabled" in net.appctl("bond/show", "bond0"), 15, 0.1,
                 f"{old} back")


def test_balance_slb_ping_and_failover(topo, sender):
    net, g, ns, members, lbr_mac = topo
    net.vsctl("set", "Port", "bond0", "bond_mode=balance-slb")
    try:
        net.wait_for(lambda: "bond_mode: balance-slb" in net.appctl("bond/show", "bond0"),
                     10, 0.1, "balance-slb")
        net.wait_for(lambda: g.ping(f"{NET}.2", count=1), 15, 0.2, "ping with balance-slb")
        sh("ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "1", f"{NET}.1")
        gap, n, old, new = failover_under_traffic(net, g, ns, members, lbr_mac, sender)
        print(f"balance-slb failover: largest gap {gap * 1000:.0f} ms ({n} frames)")
        assert gap < 1.0, f"{gap:.3f} s without traffic after {old} went down ({n} frames)"
        sh("ip", "link", "set", old, "up")
    finally:
        net.vsctl("set", "Port", "bond0", "bond_mode=active-backup")


def test_active_member_survives_a_restart(topo):
    """The active member's MAC is kept in Port bond_active_slave and chosen
    again by the restarted daemon (not simply the first enabled member)."""
    net, g, ns, members, lbr_mac = topo
    for m in members:
        net.wait_for(lambda: f"member {m}: enabled" in net.appctl("bond/show", "bond0"), 15, 0.1,
                     f"{m} enabled")
    net.appctl("bond/set-active-member", "bond0", members[1])
    mac = net.vsctl("get", "Interface", members[1], "mac_in_use").strip()
    net.wait_for(lambda: net.vsctl("get", "Port", "bond0", "bond_active_slave").strip() == mac,
                 15, 0.2, "bond_active_slave written")
    assert net.stop()
    net.start()
    net.wait_for(lambda: net.alive() and "bond0" in net.appctl("bond/list"), 60, 0.2,
                 "the bond after the restart")
    net.wait_for(lambda: active_member(net) == members[1], 15, 0.2, "the same active member")
    net.wait_for(lambda: g.ping(f"{NET}.2", count=1), 30, 0.2, "ping after the restart")
