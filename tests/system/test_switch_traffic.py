"""The switch on kernel interfaces: traffic, MAC learning, VLANs, aging, idle CPU.

One daemon and one bridge for the whole module, six namespaces on veth pairs
attached as afpacket ports, all in one IP subnet so only the switch keeps the
VLANs apart:

    a, b, c   access ports, VLAN 10      (c is the "third port" that must only
    d         access port, VLAN 20        see flooded frames)
    t         trunk, trunks=10,20         (a vlan sub-interface eth0.10 inside)
    u         no tag, no trunks: a trunk of every VLAN

Learning checks use raw frames with made-up source MACs (ethertype 0x88B5,
ignored by the kernel), so no ARP or other chatter of the namespaces' stacks
can refresh or move an fdb entry behind the test's back.
"""

import hashlib
import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.system

PREFIX = "sw"
NET = "10.77.0"


@pytest.fixture(scope="module")
def topo(module_net_factory):
    net = module_net_factory()
    h = {
        "a": net.host("a", ip=f"{NET}.1/24", tag=10),
        "b": net.host("b", ip=f"{NET}.2/24", tag=10),
        "c": net.host("c", ip=f"{NET}.3/24", tag=10),
        "d": net.host("d", ip=f"{NET}.4/24", tag=20),
        "t": net.host("t", trunks="10,20"),
        "u": net.host("u"),
    }
    t = h["t"]
    r = t.sh("ip", "link", "add", "link", "eth0", "name", "eth0.10", "type", "vlan", "id", "10",
             check=False)
    t.vlan_sub = r.returncode == 0           # kernels without 802.1Q support say "Unknown device type"
    if t.vlan_sub:
        t.sh("ip", "addr", "add", f"{NET}.9/24", "dev", "eth0.10")
        t.sh("ip", "link", "set", "eth0.10", "up")
        t.addr = f"{NET}.9"
    # Static neighbours: no ARP chatter (unicast reachability probes come a
    # few seconds after a ping) may flood while a test counts frames.
    ipv4 = [x for x in h.values() if x.addr]
    for x in ipv4:
        for y in ipv4:
            if x is not y:
                x.sh("ip", "neigh", "replace", y.addr, "lladdr", y.mac, "dev", "eth0", "nud", "permanent")
    net.wait_ready(h["a"], h["b"], h["c"])
    net.wait_link(h["d"], h["t"], h["u"])
    return net, h


@pytest.fixture
def wires(topo):
    """A raw socket on every host's eth0, drained before the test."""
    net, h = topo
    ws = {name: host.wire() for name, host in h.items()}
    time.sleep(0.05)
    for w in ws.values():
        w.clear()
    yield ws
    for w in net.lab_wires:
        w.close()
    net.lab_wires.clear()


def fake_mac(n):
    return f"02:aa:{os.getpid() >> 8 & 0xff:02x}:{os.getpid() & 0xff:02x}:00:{n:02x}"


def seen(ws, tag, names, count=1, timeout=1.0):
    """{name: [frames]} of test frames with `tag` captured on each host."""
    return {n: ws[n].recv(tag, count=count, timeout=timeout) for n in names}


# ---- 1. ping and TCP ---------------------------------------------------------

def test_ping_between_namespaces(topo):
    net, h = topo
    r = h["a"].sh("ping", "-c", "10", "-i", "0.05", "-W", "1", h["b"].addr, check=False)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout
    r = h["c"].sh("ping", "-c", "5", "-i", "0.05", "-W", "1", h["a"].addr, check=False)
    assert " 0% packet loss" in r.stdout, r.stdout


def test_tcp_file_arrives_intact(topo, tmp_path):
    """4 MiB of random bytes through nc: the receiver's sha256 is the sender's."""
    net, h = topo
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    src.write_bytes(os.urandom(4 << 20))
    with open(dst, "wb") as out:
        server = subprocess.Popen(["ip", "netns", "exec", h["b"].ns, "nc", "-l", "-N", "5001"],
                                  stdout=out, stderr=subprocess.PIPE)
        try:
            net.wait_for(lambda: "5001" in h["b"].sh("ss", "-ltn").stdout, 5, 0.05, "nc listening")
            with open(src, "rb") as f:
                client = subprocess.run(["ip", "netns", "exec", h["a"].ns, "nc", "-N", "-w", "5",
                                         h["b"].addr, "5001"], stdin=f, capture_output=True, timeout=30)
            assert client.returncode == 0, client.stderr
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()


def test_iperf3_two_seconds(topo):
    import json
    net, h = topo
    server = subprocess.Popen(["ip", "netns", "exec", h["b"].ns, "iperf3", "-s", "-1", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        net.wait_for(lambda: "5201" in h["b"].sh("ss", "-ltn").stdout, 5, 0.05, "iperf3 listening")
        r = h["a"].sh("iperf3", "-c", h["b"].addr, "-p", "5201", "-t", "2", "-J", check=False, timeout=30)
        assert r.returncode == 0, r.stdout[-2000:]
        end = json.loads(r.stdout)["end"]
        received = end["sum_received"]["bytes"]
        assert received > 1 << 20 and end["sum_received"]["bits_per_second"] > 1e6
        print(f"iperf3 a -> b: {end['sum_received']['bits_per_second'] / 1e6:.0f} Mbit/s")
    finally:
        server.kill()
        server.wait()


# ---- 2. MAC learning -----------------------------------------------------------

def test_unknown_unicast_is_flooded_then_learned(topo, wires):
    net, h = topo
    ofp = {n: h[n].ofport() for n in "abc"}
    net.appctl("fdb/flush", net.br)
    xa, xb, unknown = fake_mac(0xa1), fake_mac(0xb1), fake_mac(0xee)

    # Unknown destination: every port of VLAN 10 gets a copy, trunks tagged.
    before = net.port_stats()
    wires["a"].send_test(unknown, xa, 1, 1)
    got = seen(wires, 1, "bctu")
    assert [f[2] for f in got["b"]] == [None] and [f[2] for f in got["c"]] == [None]
    assert [f[2] for f in got["t"]] == [10] and [f[2] for f in got["u"]] == [10]
    assert wires["d"].recv(1, timeout=0.2) == []
    assert wires["a"].recv(1, timeout=0.05) == []            # never back to its source
    after = net.port_stats()
    assert after[h["c"].port]["tx_pkts"] >= before[h["c"].port]["tx_pkts"] + 1
    assert after[h["d"].port]["tx_pkts"] == before[h["d"].port]["tx_pkts"]
    assert net.fdb_entry(xa)[:3] == (ofp["a"], 10, xa)

    # b answers xa: learned, goes to a only.
    wires["b"].send_test(xa, xb, 2, 1)
    assert [f[:3] for f in wires["a"].recv(2, count=1)] == [(xa, xb, None)]
    assert seen(wires, 2, "cdtu", timeout=0.2) == {n: [] for n in "cdtu"}
    assert net.fdb_entry(xb)[:3] == (ofp["b"], 10, xb)

    # A unicast exchange: c's and the trunks' tx counters do not move.
    before = net.port_stats()
    for i in range(20):
        wires["a"].send_test(xb, xa, 3, i)
        wires["b"].send_test(xa, xb, 3, i)
    assert len(wires["b"].recv(3, count=20)) == 20
    assert len(wires["a"].recv(3, count=20)) == 20
    assert seen(wires, 3, "cdtu", timeout=0.2) == {n: [] for n in "cdtu"}
    after = net.port_stats()
    for n in "cdtu":
        assert after[h[n].port]["tx_pkts"] == before[h[n].port]["tx_pkts"], n
    assert after[h["b"].port]["tx_pkts"] >= before[h["b"].port]["tx_pkts"] + 20


def test_fdb_show_lists_port_and_vlan_and_flush_empties_it(topo, wires):
    net, h = topo
    net.appctl("fdb/flush", net.br)
    x10, x20 = fake_mac(0x10), fake_mac(0x20)
    wires["c"].send_test("ff:ff:ff:ff:ff:ff", x10, 4, 1)
    wires["d"].send_test("ff:ff:ff:ff:ff:ff", x20, 4, 2)
    assert len(wires["u"].recv(4, count=2)) == 2
    out = net.appctl("fdb/show", net.br)
    assert out.splitlines()[0].split() == ["port", "VLAN", "MAC", "Age"]
    assert net.fdb_entry(x10)[:3] == (h["c"].ofport(), 10, x10)
    assert net.fdb_entry(x20)[:3] == (h["d"].ofport(), 20, x20)
    assert net.appctl("fdb/flush", net.br) == "table successfully flushed\n"
    assert net.fdb() == []


def test_mac_move_updates_the_entry(topo, wires):
    """x talks behind a, then behind c (and keeps talking there, as a moved
    host does): the entry follows it and unicast to x goes to c only."""
    net, h = topo
    net.appctl("fdb/flush", net.br)
    x, y = fake_mac(0x30), fake_mac(0x31)
    wires["a"].send_test("ff:ff:ff:ff:ff:ff", x, 5, 1)
    assert len(wires["b"].recv(5, count=1)) == 1
    assert net.fdb_entry(x)[:2] == (h["a"].ofport(), 10)

    wires["c"].send_test("ff:ff:ff:ff:ff:ff", x, 6, 1)     # x moved behind c
    assert len(wires["b"].recv(6, count=1)) == 1
    assert net.fdb_entry(x)[:2] == (h["c"].ofport(), 10)
    for i in range(2, 24):                                    # 2.2 s: two revalidator sweeps
        wires["c"].send_test("ff:ff:ff:ff:ff:ff", x, 6, i)
        time.sleep(0.1)
    assert net.fdb_entry(x)[:2] == (h["c"].ofport(), 10)
    assert len([r for r in net.fdb() if r[2] == x]) == 1

    wires["b"].clear()
    for i in range(5):                                       # and unicast follows it
        wires["b"].send_test(x, y, 7, i)
    assert len(wires["c"].recv(7, count=5)) == 5
    assert wires["a"].recv(7, timeout=0.2) == []


def test_mac_move_by_one_frame_sticks(topo, wires):
    """One frame behind the new port moves the entry for good (a migrated host
    that sends a single gratuitous ARP): 12 MACs, each seen behind a then c."""
    net, h = topo
    net.appctl("fdb/flush", net.br)
    macs = [fake_mac(0x70 + i) for i in range(12)]
    for i, m in enumerate(macs):
        wires["a"].send_test("ff:ff:ff:ff:ff:ff", m, 17, i)
        time.sleep(0.002)
        wires["c"].send_test("ff:ff:ff:ff:ff:ff", m, 17, 100 + i)
        time.sleep(0.002)
    assert len(wires["b"].recv(17, count=24)) == 24
    time.sleep(1.3)                                          # one revalidator sweep at least
    c = h["c"].ofport()
    where = {m: (net.fdb_entry(m) or (None,))[0] for m in macs}
    assert where == {m: c for m in macs}


# ---- 3. VLANs -------------------------------------------------------------------

def test_vlan_isolation(topo, wires):
    net, h = topo
    assert not h["a"].ping(h["d"].addr, count=2, interval=0.1, wait=1)
    assert not h["d"].ping(h["b"].addr, count=2, interval=0.1, wait=1)
    wires["d"].send_test("ff:ff:ff:ff:ff:ff", fake_mac(0x40), 8, 1)
    got = seen(wires, 8, "tu")
    assert [f[2] for f in got["t"]] == [20] and [f[2] for f in got["u"]] == [20]
    assert seen(wires, 8, "abc", timeout=0.1) == {n: [] for n in "abc"}


def test_tagged_frame_on_access_port_is_not_forwarded(topo, wires):
    """A VLAN 20 tag sent into VLAN 10's access port must not hop to VLAN 20."""
    net, h = topo
    wires["a"].send_test("ff:ff:ff:ff:ff:ff", fake_mac(0x41), 9, 1, vlan=20)
    assert seen(wires, 9, "dbc", timeout=0.4) == {n: [] for n in "dbc"}


def test_trunk_egress_carries_the_tag(topo, wires):
    net, h = topo
    wires["b"].send_test("ff:ff:ff:ff:ff:ff", fake_mac(0x42), 10, 1, size=200)
    got = seen(wires, 10, "atuc")
    assert [f[2] for f in got["t"]] == [10] and [f[2] for f in got["u"]] == [10]
    assert [f[2] for f in got["a"]] == [None] and [f[2] for f in got["c"]] == [None]


def test_trunk_ingress_tagged_frames(topo, wires):
    """Tagged frames into the trunk: VLAN 10 reaches VLAN 10's access ports
    untagged (and the other trunk tagged), VLAN 20 only VLAN 20, and VLAN 30,
    which is not in trunks=10,20, nobody."""
    net, h = topo
    wires["t"].send_test("ff:ff:ff:ff:ff:ff", fake_mac(0x46), 16, 1, vlan=10)
    got = seen(wires, 16, "abcu")
    assert all([f[2] for f in got[n]] == [None] for n in "abc"), got
    assert [f[2] for f in got["u"]] == [10]
    assert wires["d"].recv(16, timeout=0.1) == []
    wires["t"].send_test("ff:ff:ff:ff:ff:ff", fake_mac(0x44), 12, 1, vlan=20)
    assert [f[2] for f in wires["d"].recv(12, count=1)] == [None]
    assert [f[2] for f in wires["u"].recv(12, count=1)] == [20]
    assert seen(wires, 12, "abc", timeout=0.1) == {n: [] for n in "abc"}
    wires["t"].send_test("ff:ff:ff:ff:ff:ff", fake_mac(0x45), 13, 1, vlan=30)
    assert seen(wires, 13, "abcdu", timeout=0.3) == {n: [] for n in "abcdu"}


def test_trunk_ingress_from_vlan_subinterface(topo, wires):
    net, h = topo
    t = h["t"]
    if not t.vlan_sub:
        pytest.skip("this kernel cannot create vlan interfaces (no 802.1Q support)")
    # IP over eth0.10: reaches VLAN 10, not VLAN 20.
    net.wait_for(lambda: t.ping(h["a"].addr, count=1, wait=1), 10, 0.1, "ping t(eth0.10) -> a")
    assert t.ping(h["b"].addr, count=3, interval=0.05)
    assert not t.ping(h["d"].addr, count=2, interval=0.1, wait=1)

    # Frames the kernel tags on eth0.10 come out of VLAN 10's access ports untagged.
    sub = t.wire("eth0.10")
    sub.send_test("ff:ff:ff:ff:ff:ff", fake_mac(0x43), 11, 1)
    got = seen(wires, 11, "abcu")
    assert all([f[2] for f in got[n]] == [None] for n in "abc"), got
    assert [f[2] for f in got["u"]] == [10]
    assert wires["d"].recv(11, timeout=0.1) == []


# ---- 4. aging and table size ------------------------------------------------------

def test_mac_aging_time_is_honoured(topo, wires):
    net, h = topo
    net.vsctl("set", "bridge", net.br, "other_config:mac-aging-time=2")
    try:
        net.appctl("fdb/flush", net.br)
        x = fake_mac(0x50)
        wires["a"].send_test("ff:ff:ff:ff:ff:ff", x, 14, 1)
        assert len(wires["b"].recv(14, count=1)) == 1
        t0 = time.monotonic()
        assert net.fdb_entry(x) is not None
        net.wait_for(lambda: net.fdb_entry(x) is None, 4.5, 0.1, "the entry to age out")
        elapsed = time.monotonic() - t0
        assert elapsed >= 1.0, f"aged out after {elapsed:.1f}s, before mac-aging-time=2"
        time.sleep(0.5)
        assert net.fdb_entry(x) is None
    finally:
        net.vsctl("remove", "bridge", net.br, "other_config", "mac-aging-time")


def test_mac_table_size_is_a_limit(topo, wires):
    net, h = topo
    net.vsctl("set", "bridge", net.br, "other_config:mac-table-size=4")
    try:
        net.appctl("fdb/flush", net.br)
        macs = [fake_mac(0x60 + i) for i in range(10)]
        for i, m in enumerate(macs):
            wires["a"].send_test("ff:ff:ff:ff:ff:ff", m, 15, i)
        assert len(wires["b"].recv(15, count=10)) == 10
        rows = net.fdb()
        assert 1 <= len(rows) <= 4, rows
    finally:
        net.vsctl("remove", "bridge", net.br, "other_config", "mac-table-size")
        net.appctl("fdb/flush", net.br)


# ---- 10. idle CPU -------------------------------------------------------------------

def idle_window(net, seconds=3.0):
    """(share of one core the daemon used, ticks per thread, port counter moves)."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0, th0, st0 = time.monotonic(), net.cpu_ticks(), net.thread_ticks(), net.port_stats()
    time.sleep(seconds)
    used = (net.cpu_ticks() - c0) / hz / (time.monotonic() - t0)
    th1, st1 = net.thread_ticks(), net.port_stats()
    busy = {k: th1[k] - th0.get(k, 0) for k in th1 if th1[k] - th0.get(k, 0)}
    moved = {p: (st1[p]["rx_pkts"] - s["rx_pkts"], st1[p]["tx_pkts"] - s["tx_pkts"])
             for p, s in st0.items() if p in st1}
    return used, busy, moved


def test_idle_daemon_uses_little_cpu(topo):
    """No traffic: under 5% of one core over 3 s (on failure: which thread)."""
    net, h = topo
    time.sleep(0.5)                       # let the last test's traffic drain
    used, busy, moved = idle_window(net)
    print(f"idle pvs-vswitchd: {used * 100:.1f}% of one core")
    assert used < 0.05, (
        f"idle daemon uses {used * 100:.1f}% of one core; ticks per thread {busy}; "
        f"port rx/tx during the window {moved}\n"
        f"{net.appctl('dpif-netdev/pmd-stats-show')}\n{net.appctl('dpctl/dump-flows')}")
