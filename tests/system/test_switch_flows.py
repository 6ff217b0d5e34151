"""pvs-ofctl flow-mods on a live bridge between two namespaces.

- `in_port=A,actions=output:B` plus `in_port=B,actions=drop`: traffic passes
  one way only, so ping fails; del-flows + actions=NORMAL restores it.
- A flow-mod applies to the very next packet: while a raw socket sends
  numbered frames every 2 ms, no frame sent after `add-flow ... actions=drop`
  returned may arrive (the receiver's capture and kernel counters stay still),
  and every frame sent after `del-flows` returned arrives again.
- dump-flows counters, and a malformed flow that changes nothing.
"""

import time

import pytest

pytestmark = pytest.mark.system

PREFIX = "sf"


@pytest.fixture(scope="module")
def sw(module_net_factory):
    net = module_net_factory()
    a = net.host("a", ip="10.80.0.1/24")
    b = net.host("b", ip="10.80.0.2/24")
    a.sh("ip", "neigh", "replace", b.addr, "lladdr", b.mac, "dev", "eth0", "nud", "permanent")
    b.sh("ip", "neigh", "replace", a.addr, "lladdr", a.mac, "dev", "eth0", "nud", "permanent")
    net.wait_ready(a, b)
    net.A, net.B = a.ofport(), b.ofport()
    return net


@pytest.fixture
def normal(sw):
    """The test starts and ends with the single NORMAL flow."""
    sw.ofctl("del-flows", sw.br)
    sw.ofctl("add-flow", sw.br, "priority=0,actions=NORMAL")
    yield sw
    for w in sw.lab_wires:
        w.close()
    sw.lab_wires.clear()
    sw.ofctl("del-flows", sw.br)
    sw.ofctl("add-flow", sw.br, "priority=0,actions=NORMAL")


def flow_texts(net):
    """The match/actions part of each dump-flows line."""
    out = []
    for line in net.ofctl("dump-flows", net.br).splitlines():
        if "actions=" not in line:
            continue                       # the reply's header line, as ovs-ofctl prints it
        fields = [f for f in line.strip().split(", ") if "=" in f and not f.split("=")[0] in
                  ("cookie", "duration", "table", "n_packets", "n_bytes", "idle_age", "hard_age")]
        out.append(", ".join(fields))
    return sorted(out)


def test_one_way_flows_break_ping_and_normal_restores_it(normal):
    net = normal
    a, b = net.hosts["a"], net.hosts["b"]
    assert a.ping(b.addr, count=2, interval=0.05)
    net.ofctl("del-flows", net.br)
    net.ofctl("add-flow", net.br, f"in_port={net.A},actions=output:{net.B}")
    net.ofctl("add-flow", net.br, f"in_port={net.B},actions=drop")
    assert flow_texts(net) == sorted([f"in_port={net.A} actions=output:{net.B}",
                                      f"in_port={net.B} actions=drop"])

    wa, wb = a.wire(), b.wire()
    wa.send_test(b.mac, a.mac, 1, 1)
    wb.send_test(a.mac, b.mac, 2, 1)
    assert len(wb.recv(1, count=1)) == 1                     # a -> b passes
    assert wa.recv(2, timeout=0.3) == []                     # b -> a does not

    rx_b = b.rx_packets()
    assert not a.ping(b.addr, count=3, interval=0.1, wait=1)  # requests go, replies are dropped
    assert b.rx_packets() >= rx_b + 3

    net.ofctl("del-flows", net.br)
    net.ofctl("add-flow", net.br, "actions=NORMAL")
    assert flow_texts(net) == ["actions=NORMAL"]             # priority 32768, not printed
    assert a.ping(b.addr, count=3, interval=0.05)


def test_flow_mod_applies_to_the_next_packet(normal, sender):
    net = normal
    a, b = net.hosts["a"], net.hosts["b"]
    wa, wb = a.wire(), b.wire()
    s = sender(wa, b.mac, a.mac, 3, interval=0.002)
    assert len(wb.recv(3, count=20, timeout=3)) == 20          # the stream flows

    net.ofctl("add-flow", net.br, f"priority=100,in_port={net.A},actions=drop")
    cut = s.seq                                               # sent before the reply came back
    time.sleep(0.1)
    rx0 = b.rx_packets()
    time.sleep(0.5)
    assert b.rx_packets() == rx0, "frames reached b after the drop flow was installed"
    late = [f[4] for f in wb.recv(3, timeout=0.2) if f[4] > cut]
    assert late == [], f"{len(late)} frames sent after add-flow returned reached b (first {late[:5]})"
    assert s.seq > cut + 100                                  # the stream went on meanwhile

    net.ofctl("--strict", "del-flows", net.br, f"priority=100,in_port={net.A}")
    back = s.seq
    time.sleep(0.3)
    s.stop()
    last = s.seq
    got = {f[4] for f in wb.recv(3, timeout=0.5)}
    missing = set(range(back + 1, last + 1)) - got
    assert not missing, f"{len(missing)} of {last - back} frames sent after del-flows returned were lost"


def test_dump_flows_counts_and_bad_flow_changes_nothing(normal):
    net = normal
    a, b = net.hosts["a"], net.hosts["b"]
    net.ofctl("add-flow", net.br, f"priority=10,in_port={net.A},dl_type=0x0800,actions=NORMAL")
    assert a.ping(b.addr, count=5, interval=0.05)

    def counted():
        for line in net.ofctl("dump-flows", net.br).splitlines():
            if "priority=10" in line:
                n = int(line.split("n_packets=")[1].split(",")[0])
                return n >= 5 and n
        return False
    net.wait_for(counted, 3, 0.1, "n_packets of the priority=10 flow")

    before = flow_texts(net)
    r = net.run("pvs-ofctl", "add-flow", net.br, "in_port=1,actions=frobnicate", check=False)
    assert r.returncode == 1 and r.stderr.startswith("pvs-ofctl: ") and "frobnicate" in r.stderr
    assert "Traceback" not in r.stderr
    r = net.run("pvs-ofctl", "add-flow", f"{net.prefix}nobr", "actions=NORMAL", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert flow_texts(net) == before
    assert net.appctl("version").startswith("pvs-vswitchd")


def test_option_after_the_bridge(normal):
    net = normal
    net.ofctl("add-flow", net.br, "priority=7,dl_type=0x88b5,actions=drop")
    r = net.run("pvs-ofctl", "del-flows", net.br, "--strict", "priority=7,dl_type=0x88b5", check=False)
    assert r.returncode == 0, r.stderr
    assert flow_texts(net) == ["priority=0 actions=NORMAL"]
