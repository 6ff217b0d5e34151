"""virtq kernels over memfd rings: both directions, mergeable buffers, both
address spaces, notifications, resync, dirty log."""

import os

import numpy as np
import pytest

from pyvswitch.ports import io as pio
from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost import protocol as P

from .conftest import frame


@pytest.mark.parametrize("gpa_base", [None, 0x40000000])
def test_guest_to_switch(session, gpa_base):
    s = session(gpa_base=gpa_base)
    assert s.ctl(1, L.V_READY) == 1 and s.ctl(0, L.V_READY) == 1
    frames = [frame(60 + i, i) for i in range(40)]
    for f in frames:
        assert s.tx[0].post_tx(f)
    got = s.rx_burst(32) + s.rx_burst(32)
    assert got == frames
    assert s.tx[0].used_idx() == 40
    assert s.qstats[pio.Q_RX_PACKETS] == 40
    assert s.tx[0].used_flags() & L.VRING_USED_F_NO_NOTIFY
    assert s.rx_burst() == []


def test_chained_tx_and_header_split(session):
    s = session()
    f = frame(300)
    assert s.tx[0].post_tx(f, chunks=[12, 100, 200])
    assert s.tx[0].post_tx(f, chunks=[5, 7, 300])
    assert s.rx_burst() == [f, f]


@pytest.mark.parametrize("gpa_base", [None, 0x40000000])
def test_switch_to_guest(session, gpa_base):
    s = session(gpa_base=gpa_base)
    s.rx[0].post_rx()
    frames = [frame(64 + i, i) for i in range(10)]
    assert s.deliver(frames) == [1] * 10
    assert s.rx[0].rx_frames() == frames
    assert s.qstats[pio.Q_TX_PACKETS] == 10


def test_mergeable_jumbo(session):
    s = session(pool_slot=9216 + 128, buf_size=2048)
    s.rx[0].post_rx()
    big = frame(9000, 3)
    assert s.deliver([big]) == [1]
    assert s.rx[0].rx_frames() == [big]
    assert s.rx[0].used_idx() == 5                   # 9012 bytes in 2 KiB buffers


def test_no_mergeable_too_small(session):
    s = session(features=(1 << L.F_VERSION_1) | (1 << L.F_PROTOCOL_FEATURES),
                pool_slot=9216 + 128)
    s.rx[0].post_rx()
    assert s.deliver([frame(3000)]) == [0]
    assert s.err("guest_rx_buffer_too_small") == 1
    assert s.deliver([frame(1000)]) == [1]
    assert s.rx[0].rx_frames() == [frame(1000)]


def test_rx_ring_full_drops(session):
    s = session()
    s.rx[0].post_rx(2)
    assert s.deliver([frame(60)] * 3) == [1, 1, 0]
    assert s.qstats[pio.Q_TX_DROPPED] == 1
    assert s.err("guest_rx_ring_full") == 1


def test_calls_follow_no_interrupt(session):
    s = session()
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    s.send(P.SET_VRING_CALL, P.U64.pack(1), [efd])
    s.tx[0].post_tx(frame())
    s.rx_burst()
    assert os.eventfd_read(efd) == 1
    s.tx[0].set_avail_flags(L.VRING_AVAIL_F_NO_INTERRUPT)
    s.tx[0].post_tx(frame())
    s.rx_burst()
    with pytest.raises(BlockingIOError):
        os.eventfd_read(efd)
    os.close(efd)


def test_event_idx(session):
    s = session(features=(1 << L.F_VERSION_1) | (1 << L.F_PROTOCOL_FEATURES)
                | (1 << L.F_EVENT_IDX) | (1 << L.F_MRG_RXBUF))
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    s.send(P.SET_VRING_CALL, P.U64.pack(0), [efd])
    s.rx[0].post_rx()
    s.rx[0].set_used_event(2)                  # call when used idx passes 2
    s.deliver([frame()])
    with pytest.raises(BlockingIOError):
        os.eventfd_read(efd)
    s.deliver([frame(), frame()])
    assert os.eventfd_read(efd) == 1
    s.deliver([frame()])                            # used_event stale: no call
    with pytest.raises(BlockingIOError):
        os.eventfd_read(efd)
    os.close(efd)


def test_resync_from_used_idx_after_reconnect(session):
    s = session(start=False)
    # a previous back-end consumed 5 chains: used->idx = 5, avail->idx = 7
    for i in range(7):
        s.tx[0].post_tx(frame(60, i))
    s.g.map[s.tx[0].used + 2:s.tx[0].used + 4] = (5).to_bytes(2, "little")
    s.start()                                  # SET_VRING_BASE 0 (lies)
    assert s.ctl(1, L.V_LAST_AVAIL) == 5
    assert s.rx_burst() == [frame(60, 5), frame(60, 6)]


def test_get_vring_base_stops_and_reports(session):
    s = session()
    for i in range(3):
        s.tx[0].post_tx(frame(60, i))
    s.rx_burst()
    r = s.send(P.GET_VRING_BASE, P.STATE.pack(1, 0))
    assert r == (P.GET_VRING_BASE, P.STATE.pack(1, 3))
    assert s.ctl(1, L.V_READY) == 0
    s.tx[0].post_tx(frame())
    assert s.rx_burst() == []


def test_runtime_mem_table_keeps_indices_and_array(session):
    s = session()
    mem_before = s.gm.mem
    s.tx[0].post_tx(frame(60, 1))
    assert len(s.rx_burst()) == 1
    st = P.STATE.pack
    s.send(P.SET_VRING_ENABLE, st(0, 0))
    s.send(P.SET_VRING_ENABLE, st(1, 0))
    r = s.send(P.SET_MEM_TABLE, P.pack_mem_table([s.g.region()]), [s.g.fd],
               P.VERSION | P.NEED_REPLY)
    assert r == (P.SET_MEM_TABLE, P.U64.pack(0))
    s.send(P.SET_VRING_ENABLE, st(0, 1))
    s.send(P.SET_VRING_ENABLE, st(1, 1))
    assert s.gm.mem is mem_before
    s.tx[0].post_tx(frame(60, 2))
    assert s.rx_burst() == [frame(60, 2)]
    assert s.counters["mem_tables"] == 1 and s.counters["mem_table_remaps"] == 1


def test_dirty_log(session):
    s = session(gpa_base=0x100000, features=(1 << L.F_VERSION_1) | (1 << L.F_MRG_RXBUF)
                | (1 << L.F_PROTOCOL_FEATURES) | (1 << L.F_LOG_ALL))
    logfd = os.memfd_create("log")
    os.ftruncate(logfd, 4096)
    s.send(P.SET_LOG_BASE, P.LOG.pack(4096, 0), [logfd])
    used_gpa = 0x100000 + s.rx[0].used
    s.send(P.SET_VRING_ADDR, s.rx[0].addr_payload(0, log=used_gpa))
    assert s.gm.ctl[L.G_LOG_ON] == 1
    s.rx[0].post_rx()
    s.deliver([frame(100)])
    bitmap = np.frombuffer(os.pread(logfd, 4096, 0), np.uint8)
    pages = {i for i in range(4096 * 8) if bitmap[i // 8] >> (i % 8) & 1}
    buf_page = (0x100000 + s.rx[0].bufs) >> 12
    assert buf_page in pages
    assert used_gpa >> 12 in pages
    os.close(logfd)
