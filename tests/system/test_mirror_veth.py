"""Port mirroring on kernel interfaces: namespaces a and b talk through the
switch (NORMAL), namespace m sits on the mirror output port.

- The Open vSwitch recipe (`-- --id=@p get Port ... -- --id=@m create Mirror
  name=m0 select-all=true output-port=@p -- set Bridge ... mirrors=@m`)
  installed while a raw socket sends numbered frames a -> b every 2 ms:
  every frame sent after pvs-vsctl returned reaches m as well as b (the
  change applies to the very next packet, cached megaflows included), and
  pings both ways are copied too.
- `clear Bridge ... mirrors`: the copies stop for the next packet, the Mirror
  row is garbage-collected.
"""

import time

import pytest

pytestmark = pytest.mark.system

PREFIX = "mv"


@pytest.fixture(scope="module")
def net(module_net_factory):
    net = module_net_factory()
    a = net.host("a", ip="10.81.0.1/24")
    b = net.host("b", ip="10.81.0.2/24")
    m = net.host("m")
    a.sh("ip", "neigh", "replace", b.addr, "lladdr", b.mac, "dev", "eth0", "nud", "permanent")
    b.sh("ip", "neigh", "replace", a.addr, "lladdr", a.mac, "dev", "eth0", "nud", "permanent")
    net.wait_ready(a, b)
    net.wait_link(m)
    return net


def test_mirror_copies_live_traffic_from_the_next_packet_on(net, sender):
    a, b, m = net.hosts["a"], net.hosts["b"], net.hosts["m"]
    wa, wb, wm = a.wire(), b.wire(), m.wire()
    s = sender(wa, b.mac, a.mac, 7, interval=0.002)
    assert len(wb.recv(7, count=20, timeout=5)) == 20          # the stream flows (learned)
    wm.clear()
    assert wm.recv(7, timeout=0.3) == []                        # m is not on a's path

    net.vsctl("--", "--id=@p", "get", "Port", m.port, "--", "--id=@m", "create", "Mirror",
              "name=m0", "select-all=true", "output-port=@p",
              "--", "set", "Bridge", net.br, "mirrors=@m")
    cut = s.seq
    time.sleep(0.5)
    on = s.seq
    copies = {f[4] for f in wm.recv(7, timeout=1.0, quiet=0.3)}
    missing = set(range(cut + 1, on + 1)) - copies
    assert on > cut + 50 and not missing, \
        f"{len(missing)} of {on - cut} frames sent after the mirror was created were not copied"
    s.stop()
    # both directions of a ping are copied
    time.sleep(0.3)
    rx = m.rx_packets()
    assert a.ping(b.addr, count=3, interval=0.05)
    net.wait_for(lambda: m.rx_packets() >= rx + 6, 5, 0.05, "6 ICMP copies at m")

    s = sender(wa, b.mac, a.mac, 8, interval=0.002)
    assert len(wm.recv(8, count=20, timeout=5)) == 20
    net.vsctl("clear", "Bridge", net.br, "mirrors")
    off = s.seq
    assert net.vsctl("list", "Mirror") == ""
    time.sleep(0.4)
    s.stop()
    late = [f[4] for f in wm.recv(8, timeout=0.5, quiet=0.3) if f[4] > off]
    assert late == [], f"{len(late)} frames sent after the mirror was removed were copied"
    got = {f[4] for f in wb.recv(8, timeout=1.0, quiet=0.3)}
    assert set(range(off + 1, s.seq + 1)) <= got                # b still gets everything
