"""vhost-user ports in a real Dpif (PMD thread, upcalls, flows port to port)
with our front-end as the guests: jumbo frames need the packet pool to grow
(Dpif.fit_mtu: at add_port for the port's MTU, or at run time), and an idle
PMD sleeping on the guests' kick eventfds wakes for the first frame."""

import random
import time

import pytest

from pyvswitch.datapath import layout as DL
from pyvswitch.datapath.dpif import Dpif
from pyvswitch.ports.vhost.frontend import VirtioUser
from pyvswitch.ports.vhost.port import VhostUserPort

from .conftest import frame

IN_PORT_MASK = DL.pack_key({"in_port": 0xFFFF})


class Pair:
    """Dpif with vhost ports 1 and 2, flows 1 <-> 2, a front-end on each."""

    def __init__(self, tmp_path, mtu=1500, sleep_max_us=1000):
        self.dp = Dpif("br-vh", str(tmp_path), sleep_max_us=sleep_max_us)
        self.dp.set_upcall_handler(lambda keys, in_ports, pk: [
            ([("output", 3 - int(ip))], IN_PORT_MASK) for ip in in_ports])
        self.ports, self.fes = [], []
        for i in range(2):
            p = VhostUserPort(f"vhu{i}", {"vhost-sock-dir": str(tmp_path)})
            p.quiesce = self.dp.quiesce
            p.open()
            p.set_mtu(mtu)
            assert self.dp.add_port(p, i + 1) == i + 1
            self.ports.append(p)
        for p in self.ports:
            fe = VirtioUser(p.path)
            fe.start()
            self.fes.append(fe)
        assert wait(lambda: all(p.link_up() for p in self.ports))
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

    def close(self):
        for fe in self.fes:
            fe.close()
        self.dp.close()
        for p in self.ports:
            p.close()


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
