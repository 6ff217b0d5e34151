"""vhost-user ports in a real Dpif (PMD thread, upcalls, flows port to port)
with our front-end as the guests: jumbo frames need the packet pool to grow
(Dpif.fit_mtu: at add_port for the port's MTU, or at run time), an idle
PMD sleeping on the guests' kick eventfds wakes for the first frame, and long
TCP/UDP frames cross guest to guest with their payload copied once (received
by reference), made whole when an action, an upcall or a port needs it."""

import random
import struct
import time

import pytest

from pyvswitch.datapath import layout as DL
from pyvswitch.ports.dummy import DummyPort
from pyvswitch.tools.bench import pmdcycles as PC
from pyvswitch.tools.bench.pmdcycles import Rig

from .conftest import frame

IN_PORT_MASK = DL.pack_key({"in_port": 0xFFFF})


class Pair(Rig):
    """Dpif with vhost ports 1 and 2, flows 1 <-> 2, a front-end on each
    (pvs-bench pmd-cycles' rig, with these actions)."""

    def __init__(self, tmp_path, mtu=1500, sleep_max_us=1000):
        self.actions = lambda ip: [("output", 3 - ip)]     # in_port -> datapath actions
        self.upcalls = 0

        def upcall(keys, in_ports, pk):
            self.upcalls += len(pk)
            return [(self.actions(int(ip)), IN_PORT_MASK) for ip in in_ports]
        super().__init__(str(tmp_path), upcall, mtu=mtu, sleep_max_us=sleep_max_us)
        # a cold numba cache compiles the PMD loop on its first call: wait it out
        assert self.through([frame(60, 99)], timeout=300) == [frame(60, 99)]
        assert self.through([frame(60, 98)], src=1) == [frame(60, 98)]

    def through(self, frames, src=0, timeout=5.0):
        """Send frames from front-end src; what the other front-end got."""
        dst = self.fes[1 - src]
        assert self.fes[src].send(frames) == len(frames)
        got, end = [], time.monotonic() + timeout
        while len(got) < len(frames) and time.monotonic() < end:
            got += dst.recv()
        return got


def wait(fn, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.01)
    return bool(fn())


@pytest.fixture
def pair(tmp_path):
    made = []

    def make(**kw):
        made.append(Pair(tmp_path, **kw))
        return made[-1]
    yield make
    for p in made:
        p.close()


def test_jumbo_port_grows_the_pool_at_add_port(pair):
    p = pair(mtu=9000)
    assert p.dp.pool.data_size >= 9014 + 4
    big = [frame(9014, 1), frame(9000, 2), frame(64, 3)]
    assert p.through(big) == big
    assert p.through(big, src=1) == big
    st = p.dp.port_stats(1)
    assert st["rx_packets"] == 4 and st["tx_packets"] == 4 and st["rx_dropped"] == 0


def test_fit_mtu_at_run_time_keeps_the_counters(pair):
    p = pair()
    small = p.dp.pool.data_size
    assert small < 9014
    assert p.through([frame(1000)]) == [frame(1000)]
    assert p.through([frame(9014)], timeout=0.5) == []          # larger than a slot: dropped
    assert p.ports[0].error_counters()["guest_frame_oversize"] == 1
    assert p.dp.fit_mtu(9000) and not p.dp.fit_mtu(9000) and not p.dp.fit_mtu(1500)
    assert p.dp.pool.data_size > small
    for port in p.ports:
        port.set_mtu(9000)
    assert p.through([frame(9014)]) == [frame(9014)]
    st = p.dp.port_stats(1)
    assert (st["rx_packets"], st["rx_dropped"]) == (3, 1)                 # kept across the restart
    assert p.dp.port_stats(2)["tx_packets"] == 3


def test_idle_pmd_wakes_on_the_first_kick(pair):
    """pmd-sleep-max 5 s: a lost wake-up would show as a late frame."""
    p = pair(sleep_max_us=5_000_000)
    rng = random.Random(7)
    late = []
    for i in range(40):
        time.sleep(rng.choice((0.0005, 0.003, 0.02, 0.1, 0.6)) if i else 1.0)
        t0 = time.monotonic()
        got = p.through([frame(60, i)], src=i % 2, timeout=6)
        dt = time.monotonic() - t0
        assert got == [frame(60, i)]
        if dt > 0.25:                      # a lost wake-up waits out a sleep of ~0.1-1 s
            late.append((i, round(dt, 3)))
    assert not late, late
    assert p.dp.pmd_stats()[p.dp.pmds[0].core]["sleeps"] > 0
    assert p.fes[0].kicks_sent > 0 and p.fes[1].kicks_sent > 0  # the PMD asked for kicks


def ip_frame(length, seed, proto=17, v6=False, vlan=False):
    """An Ethernet frame of `length` bytes carrying IPv4 or IPv6 with TCP (6) or
    UDP (17) and a random payload: what the switch receives by reference."""
    rng = random.Random(seed)
    eth = bytes.fromhex("020000000002020000000001")
    if vlan:
        eth += bytes.fromhex("81000005")
    l4 = struct.pack("!HHIIHHHH", 1000 + seed, 80, seed, 0, 0x5010, 512, 0, 0) if proto == 6 \
        else struct.pack("!HHHH", 1000 + seed, 53, 0, 0)
    hl = len(eth) + 2 + (40 if v6 else 20) + len(l4)
    pay = bytes(rng.randrange(256) for _ in range(length - hl))
    if v6:
        ip = struct.pack("!IHBB", 0x60000000, len(l4) + len(pay), proto, 64) + bytes(range(32))
        return eth + b"\x86\xdd" + ip + l4 + pay
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4) + len(pay), seed, 0, 64, proto, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return eth + b"\x08\x00" + ip + l4 + pay


def _by_ref(port):
    return int(port.status()["rx_by_reference"])


def _split_copies(p):
    return sum(s["split_copies"] for s in p.dp.pmd_stats().values())


def test_long_frames_cross_with_one_copy(pair):
    """IPv4/IPv6, TCP/UDP, tagged or not, up to a 1500-byte MTU: received by
    reference, delivered byte for byte, never made whole on the way."""
    p = pair()
    frames = [ip_frame(n, i, proto, v6, vlan) for i, (n, proto, v6, vlan) in enumerate(
        [(1514, 17, False, False), (1514, 6, True, False), (400, 6, False, True),
         (320, 17, True, False), (1000, 6, False, False)])]
    before = _split_copies(p)
    assert p.through(frames) == frames
    assert p.through(frames, src=1) == frames
    assert _by_ref(p.ports[0]) == len(frames) and _by_ref(p.ports[1]) == len(frames)
    assert _split_copies(p) == before
    st = p.dp.port_stats(2)
    assert st["tx_packets"] >= len(frames) and st["tx_errors"] == 0


def test_short_or_other_frames_are_copied_whole(pair):
    """Below SPLIT_MIN, or not TCP/UDP over IP (here: ICMP, a raw ethertype):
    copied into the slot as before."""
    p = pair()
    icmp = bytearray(ip_frame(1000, 3, proto=17))
    icmp[23] = 1                                             # IPv4 protocol: ICMP
    frames = [ip_frame(300, 1), bytes(icmp), frame(1200, 4)]
    assert p.through(frames) == frames
    assert _by_ref(p.ports[0]) == 0


def test_rewrite_makes_the_frame_whole(pair):
    """push_vlan moves the MAC addresses: the frame is made whole first, and
    arrives tagged with its payload intact."""
    p = pair()
    p.actions = lambda ip: [("push_vlan", 0x0007), ("output", 3 - ip)]
    p.dp.flow_flush()
    f = ip_frame(1200, 9)
    tag = bytes.fromhex("81000007")
    before = _split_copies(p)
    assert p.through([f]) == [f[:12] + tag + f[12:]]
    assert _split_copies(p) == before + 1


def test_upcall_keeps_a_frame_received_by_reference(pair):
    """The first frame of a flow waits for the upcall past its burst: it is
    made whole before the guest gets its buffer back."""
    p = pair()
    n = p.upcalls
    p.dp.flow_flush()
    f = ip_frame(1400, 11)
    before = _split_copies(p)
    assert p.through([f]) == [f]
    assert p.upcalls == n + 1 and _split_copies(p) == before + 1


def test_output_to_a_port_that_needs_the_frame_whole(pair):
    """vhost-user to a dummy port (like afpacket or tap: not by reference)."""
    p = pair()
    p.actions = lambda ip: [("output", 3), ("output", 3 - ip)]
    d = DummyPort("d0", {})
    d.open()
    try:
        assert p.dp.add_port(d, 3) == 3
        p.dp.flow_flush()
        f = ip_frame(1300, 12, proto=6)
        assert p.through([f]) == [f]
        assert wait(lambda: d.capture() == [f])
    finally:
        p.dp.del_port(3)
        d.close()


def test_vxlan_loop_keeps_frames_by_reference(pair):
    """tnl_push writes the outer header into the slot's part and tnl_pop takes
    it off again: a long frame crosses the VXLAN loop (pvs-bench pvp --flows
    vxlan) held by reference, and arrives byte for byte."""
    p = pair()
    p.actions = lambda ip: PC.actions("vxlan", ip)
    p.dp.flow_flush()
    frames = [ip_frame(n, i, proto, v6, vlan) for i, (n, proto, v6, vlan) in enumerate(
        [(1514, 17, False, False), (1514, 6, True, False), (400, 6, False, True), (1000, 6, False, False)])]
    p.through(frames)                                        # the first ones wait for upcalls
    before = _split_copies(p)
    by_ref = _by_ref(p.ports[0])
    assert p.through(frames) == frames
    assert _by_ref(p.ports[0]) == by_ref + len(frames) and _split_copies(p) == before


def test_tnl_pop_of_a_frame_that_goes_on_makes_it_whole(pair):
    """tnl_pop before more actions leaves the outer frame to them: the frame
    is made whole first (the recirculated copy and the original each whole)."""
    p = pair()
    p.actions = lambda ip: ([("tnl_push", PC.TNL_PORT, PC.HDR, 3), ("tnl_pop", PC.TNL_PORT, 4789), ("output", 2)]
                            if ip == 1 else [("output", 2 if ip == PC.TNL_PORT else 1)])
    p.dp.flow_flush()
    f = ip_frame(1200, 21)

    def both():
        got = p.through([f], timeout=2)
        wait(lambda: got.extend(p.fes[1].recv()) or len(got) >= 2, timeout=5)
        return got
    both()                                                   # the first ones wait for upcalls
    before = _split_copies(p)
    got = both()
    assert len(got) == 2 and f in got
    outer = [g for g in got if g != f][0]
    assert outer[50:] == f and outer[:12] == PC.HDR[:12] and outer[42:50] == PC.HDR[42:50]
    assert _split_copies(p) == before + 1


def test_polling_front_end_gets_no_calls(pair):
    """Our front-end polls, so, like DPDK's virtio PMD, it sets
    VRING_AVAIL_F_NO_INTERRUPT on every ring, and the port honours it: no
    eventfd write per burst, in either direction."""
    p = pair()
    for fe in p.fes:
        assert fe.rx[0].avail_flags() & 1 and fe.tx[0].avail_flags() & 1
    frames = [frame(60, i) for i in range(40)]
    assert p.through(frames) == frames and p.through(frames, src=1) == frames
    assert [int(port.status()["guest_calls"]) for port in p.ports] == [0, 0]
    for fe in p.fes:                       # a guest that wants calls gets them
        fe.rx[0].set_avail_flags(0)
    assert p.through([frame(60, 1)]) == [frame(60, 1)]
    assert int(p.ports[1].status()["guest_calls"]) > 0
