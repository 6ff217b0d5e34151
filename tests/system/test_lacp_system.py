"""LACP between two bonds of one daemon, over two veth pairs.

    g0 (10.80.0.1) -- [br0] bond a = {a1, a2} ==== a1-b1, a2-b2 ==== bond b = {b1, b2} [br1] -- g1 (10.80.0.2)

Both bonds run lacp=active with lacp-time=fast and balance-tcp, which Open
vSwitch only forwards on once LACP is negotiated: negotiation, traffic, a
member lost under LACP, and balance-tcp refusing everything with lacp=off.
"""

import pytest

from pyvswitch.tools.lab import sh

pytestmark = pytest.mark.system

PREFIX = "lc"
NET = "10.80.0"


@pytest.fixture(scope="module")
def topo(module_net_factory):
    net = module_net_factory(bridge=False)
    net.vsctl("add-br", net.br, "--", "set", "bridge", net.br, "datapath_type=netdev",
              timeout=900)
    br1 = f"{net.prefix}b1"
    net.vsctl("add-br", br1, "--", "set", "bridge", br1, "datapath_type=netdev")
    g0 = net.host("g0", ip=f"{NET}.1/24")
    g1 = net.host("g1", ip=f"{NET}.2/24", add=False)
    net.vsctl("add-port", br1, g1.port, "--", "set", "Interface", g1.port, "type=afpacket")
    names = {k: f"{net.prefix}-{k}" for k in ("a1", "a2", "b1", "b2")}
    for x, y in (("a1", "b1"), ("a2", "b2")):
        sh("ip", "link", "add", names[x], "type", "veth", "peer", "name", names[y])
        net.lab.links.append(names[x])
        for n in (x, y):
            sh("ip", "link", "set", names[n], "up")
    lacp = ["lacp=active", "bond_mode=balance-tcp", "other_config:lacp-time=fast"]
    net.vsctl("add-bond", net.br, "a", names["a1"], names["a2"], *lacp,
              "--", "add-bond", br1, "b", names["b1"], names["b2"], *lacp,
              *[a for n in names.values() for a in ("--", "set", "Interface", n, "type=afpacket")])
    return net, br1, g0, g1, names


def negotiated(net, bond):
    return "lacp_status: negotiated" in net.appctl("bond/show", bond)


def test_negotiation_and_traffic(topo):
    net, br1, g0, g1, names = topo
    net.wait_for(lambda: negotiated(net, "a") and negotiated(net, "b"), 30, 0.2,
                 "LACP negotiated on both bonds")
    out = net.appctl("lacp/show", "a")
    assert "status: active negotiated" in out and "current attached" in out, out
    net.wait_for(lambda: "may_enable: true" in net.appctl("bond/show", "a"), 15, 0.2, "members")
    net.wait_for(lambda: g0.ping(f"{NET}.2", count=1), 30, 0.2, "ping over balance-tcp")
    assert g1.ping(f"{NET}.1", count=3, interval=0.1)


def test_member_lost_under_lacp(topo):
    net, br1, g0, g1, names = topo
    net.wait_for(lambda: negotiated(net, "a"), 30, 0.2, "LACP negotiated")
    sh("ip", "link", "set", names["a1"], "down")
    try:
        net.wait_for(lambda: f"member {names['a1']}: disabled" in net.appctl("bond/show", "a"),
                     15, 0.1, "a1 disabled")
        assert negotiated(net, "a")                       # a2 still carries LACP
        net.wait_for(lambda: g0.ping(f"{NET}.2", count=1), 15, 0.2, "ping on one member")
    finally:
        sh("ip", "link", "set", names["a1"], "up")


def test_balance_tcp_without_lacp_forwards_nothing(topo):
    net, br1, g0, g1, names = topo
    net.vsctl("set", "Port", "a", "lacp=off", "--", "set", "Port", "b", "lacp=off")
    try:
        net.wait_for(lambda: "lacp_status: off" in net.appctl("bond/show", "a"), 15, 0.1, "off")
        assert not g0.ping(f"{NET}.2", count=2, interval=0.2)
    finally:
        net.vsctl("set", "Port", "a", "lacp=active", "--", "set", "Port", "b", "lacp=active")
    net.wait_for(lambda: negotiated(net, "a") and negotiated(net, "b"), 30, 0.2, "again")
    net.wait_for(lambda: g0.ping(f"{NET}.2", count=1), 30, 0.2, "ping again")
