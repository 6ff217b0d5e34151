"""Two bridges joined by a patch pair, a namespace on each (veth, afpacket).

    a (10.78.0.1) -- [net.br] patch0 <=> patch1 [br1] -- b (10.78.0.2)

Ping crosses the pair with NORMAL on both bridges, then with OpenFlow
flows on each; removing one end of the pair stops the traffic and adding it
back restores it.
"""

import pytest

pytestmark = pytest.mark.system

PREFIX = "pp"
NET = "10.78.0"


@pytest.fixture(scope="module")
def topo(module_net_factory):
    net = module_net_factory(bridge=False)
    # patient: the first bridge starts the PMD, whose kernels compile first when
    # numba's cache is cold (minutes on a busy 2-core machine)
    net.vsctl("add-br", net.br, "--", "set", "bridge", net.br, "datapath_type=netdev",
              timeout=900)
    br1 = f"{net.prefix}b1"
    net.vsctl("add-br", br1, "--", "set", "bridge", br1, "datapath_type=netdev")
    a = net.host("a", ip=f"{NET}.1/24")
    b = net.host("b", ip=f"{NET}.2/24", add=False)
    net.vsctl("add-port", br1, b.port, "--", "set", "Interface", b.port, "type=afpacket")
    add_pair(net, br1)
    net.wait_link(a, b)
    return net, br1, a, b


def add_pair(net, br1, which=("patch0", "patch1")):
    args = []
    for name, br, peer in (("patch0", net.br, "patch1"), ("patch1", br1, "patch0")):
        if name in which:
            args += ["--", "add-port", br, name, "--", "set", "Interface", name, "type=patch",
                     f"options:peer={peer}"]
    net.vsctl(*args[1:])


def test_ping_across_the_pair(topo):
    net, br1, a, b = topo
    net.wait_for(lambda: a.ping(b.addr, count=1), 15, 0.2, "first ping across the patch")
    assert a.ping(b.addr, count=5, interval=0.1)
    assert b.ping(a.addr, count=3, interval=0.1)
    assert net.vsctl("get", "Interface", "patch0", "link_state").strip() == "up"
    stats = net.vsctl("get", "Interface", "patch1", "statistics")
    assert "rx_packets=" in stats and "tx_packets=" in stats


def test_flows_on_each_bridge(topo):
    """Explicit flows instead of NORMAL: each bridge forwards by port."""
    net, br1, a, b = topo
    try:
        for br, port, patch in ((net.br, a.port, "patch0"), (br1, b.port, "patch1")):
            net.ofctl("del-flows", br)
            net.ofctl("add-flow", br, f"in_port={port},actions=output:{patch}")
            net.ofctl("add-flow", br, f"in_port={patch},actions=output:{port}")
        assert a.ping(b.addr, count=3, interval=0.1)
        net.wait_for(lambda: "n_packets=0" not in net.ofctl("dump-flows", br1), 5, 0.2,
                     "br1's flows credited")
        # a flow on br1 can drop what crosses the patch
        net.ofctl("add-flow", br1, "priority=40000,icmp,in_port=patch1,actions=drop")
        assert not a.ping(b.addr, count=2, interval=0.1)
    finally:
        for br in (net.br, br1):
            net.ofctl("del-flows", br)
            net.ofctl("add-flow", br, "priority=0,actions=NORMAL")
    assert a.ping(b.addr, count=2, interval=0.1)


def test_removing_one_end_stops_traffic(topo):
    net, br1, a, b = topo
    assert a.ping(b.addr, count=1)
    net.vsctl("del-port", br1, "patch1")
    assert net.vsctl("get", "Interface", "patch0", "link_state").strip() == "down"
    assert not a.ping(b.addr, count=2, interval=0.2)
    add_pair(net, br1, which=("patch1",))
    net.wait_for(lambda: a.ping(b.addr, count=1), 10, 0.2, "ping after the pair is back")
