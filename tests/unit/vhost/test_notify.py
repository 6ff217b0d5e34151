"""Kick notifications around an idle PMD's sleep (notify.py): arm enables
kicks and returns the kick fd, or refuses to sleep when work arrived; disarm
drains the eventfd and suppresses kicks again; the front-end kicks only when
kicks are enabled."""

import os
import select

import numpy as np
import pytest

from pyvswitch.core.libc import POLLIN
from pyvswitch.ports import io as pio
from pyvswitch.ports.vhost import frontend_kernels as K
from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost import protocol as P
from pyvswitch.ports.vhost.notify import rx_arm, rx_disarm

from .conftest import frame

EVENT_IDX = ((1 << L.F_VERSION_1) | (1 << L.F_PROTOCOL_FEATURES) | (1 << L.F_EVENT_IDX)
             | (1 << L.F_MRG_RXBUF))


def with_kick(s):
    """Give the guest TX ring (vring 1) a kick eventfd; returns our end."""
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    s.send(P.SET_VRING_KICK, P.U64.pack(1), [efd])
    s.rxrow[pio.IO_FD] = pio.IO_FD_ARM
    s.rxrow[L.X_ARMED] = -1
    return efd


def readable(fd):
    return bool(select.select([fd], [], [], 0)[0])


def guest_kick(s, efd):
    """The driver side after publishing avail.idx: kick unless NO_NOTIFY."""
    one = np.ones(1, np.int64)
    return K.kick_if_wanted(s.g.mem, s.tx[0].used, efd, one.ctypes.data)


def test_arm_enables_kicks_and_disarm_suppresses(session):
    s = session()
    efd = with_kick(s)
    assert s.tx[0].used_flags() & L.VRING_USED_F_NO_NOTIFY      # polling: no kicks
    fd = rx_arm(s.gm.mem, s.rxrow)
    assert fd == s.ctl(1, L.V_KICK_FD) and fd >= 0 and s.rxrow[L.X_ARMED] == fd
    assert s.tx[0].used_flags() & L.VRING_USED_F_NO_NOTIFY == 0
    assert s.tx[0].post_tx(frame())
    assert guest_kick(s, efd) == 1 and readable(fd)
    assert rx_disarm(s.gm.mem, s.rxrow, POLLIN) == 1
    assert not readable(fd)                                    # drained
    assert s.tx[0].used_flags() & L.VRING_USED_F_NO_NOTIFY
    assert s.rxrow[L.X_ARMED] == -1
    assert s.rx_burst() == [frame()]
    assert s.tx[0].post_tx(frame()) and guest_kick(s, efd) == 0  # busy again: no kick
    os.close(efd)


def test_arm_with_work_pending_refuses_to_sleep(session):
    s = session()
    efd = with_kick(s)
    assert s.tx[0].post_tx(frame())          # posted while kicks were suppressed
    assert guest_kick(s, efd) == 0
    assert rx_arm(s.gm.mem, s.rxrow) == pio.ARM_BUSY
    assert s.tx[0].used_flags() & L.VRING_USED_F_NO_NOTIFY
    assert s.rxrow[L.X_ARMED] == -1
    assert rx_disarm(s.gm.mem, s.rxrow, 0) == 0
    os.close(efd)


def test_arm_event_idx_publishes_avail_event(session):
    s = session(features=EVENT_IDX)
    efd = with_kick(s)
    for _ in range(3):
        s.tx[0].post_tx(frame())
    assert len(s.rx_burst()) == 3
    assert rx_arm(s.gm.mem, s.rxrow) >= 0
    ring = s.tx[0]
    avail_event = int.from_bytes(bytes(s.g.mem[ring.used + 4 + 8 * ring.n:][:2]), "little")
    assert avail_event == 3
    assert rx_disarm(s.gm.mem, s.rxrow, 0) == 1
    os.close(efd)


def test_not_running_or_no_fd(session):
    s = session()
    s.rxrow[pio.IO_FD] = pio.IO_FD_ARM
    assert rx_arm(s.gm.mem, s.rxrow) == pio.ARM_NO_FD            # VRING_NOFD kick
    s.send(P.SET_VRING_ENABLE, P.STATE.pack(1, 0))
    assert rx_arm(s.gm.mem, s.rxrow) == pio.ARM_IDLE             # ring stopped
    s.rxrow[L.X_VRING] = 99
    assert rx_arm(s.gm.mem, s.rxrow) == pio.ARM_IDLE


def test_new_kick_fd_replaces_the_old_one(session):
    s = session()
    a = with_kick(s)
    old = s.ctl(1, L.V_KICK_FD)
    b = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    s.send(P.SET_VRING_KICK, P.U64.pack(1), [b])
    new = s.ctl(1, L.V_KICK_FD)
    assert new >= 0 and rx_arm(s.gm.mem, s.rxrow) == new
    os.eventfd_write(b, 1)
    assert readable(new)
    rx_disarm(s.gm.mem, s.rxrow, POLLIN)
    assert old != new or not readable(old)
    for fd in (a, b):
        os.close(fd)


@pytest.mark.parametrize("flags, kicks", [(0, 1), (L.VRING_USED_F_NO_NOTIFY, 0)])
def test_front_end_tx_publish_kicks_only_when_wanted(flags, kicks):
    from pyvswitch.ports.vhost.driver import DriverMemory, Vring
    g = DriverMemory(1 << 20)
    ring = Vring(g, 16)
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    R = np.array([K.ring_row(ring, efd)], np.int64)
    g.mem[ring.used] = flags
    K.tx_put(g.mem, R, 0, g.gpa, ring.bufs, 60)
    K.tx_publish(g.mem, R, 0)
    assert R[0, K.KICKS] == kicks and readable(efd) == bool(kicks)
    os.close(efd)
    g.close()
