"""A hostile guest: hand-built bad rings in memfd memory. Every case must be
detected, counted under its name, handled (chain dropped or ring stopped),
and never crash or hang the kernels."""

import numpy as np

from pyvswitch.ports import io as pio
from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost.driver import NEXT, WRITE

from .conftest import frame


def _good_after(s):
    """The ring still works for well-formed chains after the bad one."""
    q = s.tx[0]
    q.free = [i for i in range(q.n) if i not in (0, 1, 2, 3)]
    assert q.post_tx(frame(60, 9))
    return s.rx_burst() == [frame(60, 9)]


def _raw_tx(s, descs, head=0):
    q = s.tx[0]
    for i, (addr, ln, fl, nx) in enumerate(descs):
        q.set_desc(i, addr, ln, fl, nx)
    q.push_avail(head)
    q.publish()


def test_next_index_out_of_range(session):
    s = session()
    q = s.tx[0]
    _raw_tx(s, [(q.buf_gpa(0), 40, NEXT, 999)])
    assert s.rx_burst() == []
    assert s.err("bad_desc_index") == 1
    assert q.used_idx() == 1                        # chain returned
    assert _good_after(s)


def test_head_index_out_of_range_breaks_ring(session):
    s = session()
    _raw_tx(s, [], head=4000)
    assert s.rx_burst() == []
    assert s.err("bad_desc_index") == 1
    assert s.ctl(1, L.V_BROKEN) == 1 and s.ctl(1, L.V_READY) == 0
    assert s.dev.broken()
    assert s.rx_burst() == []                       # stopped: no more work


def test_chain_loop(session):
    s = session()
    q = s.tx[0]
    _raw_tx(s, [(q.buf_gpa(0), 20, NEXT, 1), (q.buf_gpa(1), 20, NEXT, 0)])
    assert s.rx_burst() == []
    assert s.err("desc_chain_too_long") == 1
    assert _good_after(s)


def test_chain_longer_than_ring(session):
    s = session(qsize=4)
    q = s.tx[0]
    _raw_tx(s, [(q.buf_gpa(i), 16, NEXT, (i + 1) % 4) for i in range(4)])
    assert s.rx_burst() == []
    assert s.err("desc_chain_too_long") == 1


def test_address_outside_every_region(session):
    s = session()
    q = s.tx[0]
    end = s.g.gpa + s.g.size
    for addr, ln in ((end, 64), (end - 10, 64), (0, 64), (-1 & (2**64 - 1), 64), (2**63, 64),
                     (q.buf_gpa(0), 2**32 - 1)):
        _raw_tx(s, [(addr, ln, 0, 0)])
    assert s.rx_burst() == []
    assert s.err("bad_desc_addr") == 6
    assert s.qstats[pio.Q_RX_ERRORS] == 6
    assert _good_after(s)


def test_writable_descriptor_in_tx_ring(session):
    s = session()
    q = s.tx[0]
    _raw_tx(s, [(q.buf_gpa(0), 64, WRITE, 0)])
    assert s.rx_burst() == []
    assert s.err("bad_desc_flags") == 1


def test_read_only_descriptor_in_rx_ring(session):
    s = session()
    q = s.rx[0]
    q.set_desc(0, q.buf_gpa(0), 2048, 0, 0)          # not WRITE
    q.push_avail(0)
    q.publish()
    assert s.deliver([frame()]) == [0]
    assert s.err("bad_desc_flags") == 1
    assert q.reap() == [(0, 0)]                      # given back empty


def test_rx_buffer_outside_memory(session):
    s = session()
    q = s.rx[0]
    q.set_desc(0, s.g.gpa + s.g.size + 4096, 2048, WRITE, 0)
    q.push_avail(0)
    q.publish()
    assert s.deliver([frame()]) == [0]
    assert s.err("bad_desc_addr") == 1


def test_avail_idx_jump(session):
    s = session()
    s.tx[0].publish(1000)                            # ring size 256
    assert s.rx_burst() == []
    assert s.err("avail_idx_jump") == 1
    assert s.dev.broken()
    s2 = session()
    s2.rx[0].publish(5000)
    assert s2.deliver([frame()]) == [0]
    assert s2.err("avail_idx_jump") == 1


def test_oversized_guest_frame(session):
    s = session(pool_slot=1024 + 128)
    q = s.tx[0]
    assert q.post_tx(frame(1500), chunks=[12, 1500])
    assert s.rx_burst() == []
    assert s.err("guest_frame_oversize") == 1
    assert s.qstats[pio.Q_RX_DROPPED] == 1


def test_random_garbage_never_crashes(session):
    s = session(qsize=64)
    rng = np.random.default_rng(7)
    q, r = s.tx[0], s.rx[0]
    for _ in range(200):
        for ring in (q, r):
            raw = rng.integers(0, 256, 16 * ring.n, dtype=np.uint8)
            s.g.mem[ring.desc:ring.desc + 16 * ring.n] = raw
            s.g.mem[ring.avail + 4:ring.avail + 4 + 2 * ring.n] = rng.integers(0, 256, 2 * ring.n,
                                                                               dtype=np.uint8)
            ring.avail_idx = (ring.avail_idx + int(rng.integers(0, 80))) & 0xFFFF
            ring.publish()
        s.rx_burst()
        s.deliver([frame(int(rng.integers(14, 1500)))])
        for i in (0, 1):                       # revive broken rings, keep going
            v = L.vr(i)
            s.gm.ctl[v + L.V_READY] = 1
            s.gm.ctl[v + L.V_BROKEN] = 0
            s.gm.ctl[v + L.V_LAST_AVAIL] = (q if i else r).avail_idx
    assert sum(s.err(n) for n in L.ERR_NAMES) > 0
