"""Kick notifications for an idle PMD: sleep on the guests' kick eventfds.

    rx_arm(mem, io) -> fd to poll, or pio.ARM_NO_FD / ARM_IDLE / ARM_BUSY
    rx_disarm(mem, io, revents) -> poll slots the row used (0 or 1)

A busy PMD polls avail.idx and asks the guest for no kicks (VRING_USED_F_NO_NOTIFY
in used.flags, or a stale avail_event with EVENT_IDX): a kick costs a
poll-mode guest a system call per burst. Before the PMD sleeps, rx_arm on the
guest's TX ring (the rx row's vring 2q+1), like DPDK's rx-interrupt mode:

  1. enable kicks: clear NO_NOTIFY, or with EVENT_IDX publish
     avail_event = last_avail_idx (the driver kicks when it passes it);
  2. full fence (the driver's side: write avail.idx, full fence, read the
     flags / avail_event, kick) - one of the two sides sees the other;
  3. re-read avail.idx: something arrived meanwhile -> disarm, ARM_BUSY (do
     not sleep); else return the kick fd (V_KICK_FD) for ppoll.

After ppoll returns, rx_disarm drains the kick eventfd if it fired (the
8-byte read happens only on POLLIN, so a blocking eventfd never blocks us)
and suppresses kicks again (NO_NOTIFY; with EVENT_IDX avail_event is left
stale). io[X_ARMED] remembers the fd armed for this sleep (-1: none).

A ring that is not running (V_READY 0) is ARM_IDLE: only the control thread
can start it, and it parks the PMD to do so (which wakes it). A ring without
a kick fd (VRING_NOFD) is ARM_NO_FD: the PMD bounds its sleep. The control
thread changes V_KICK_FD and closes kick fds only while the PMD is parked,
so the fd polled between rx_arm and rx_disarm stays valid. Writes to the
used ring are dirty-logged like the others (LOG_ALL). PMD thread only; the
busy path never calls these.
"""

from pyvswitch.core.intrinsics import fence_seq_cst
from pyvswitch.core.libc import POLLIN, c_read
from pyvswitch.ports import io as pio
from pyvswitch.ports.vhost._jit import hot
from pyvswitch.ports.vhost.layout import (G_EVENT_IDX, G_SCRATCH, MAX_VRINGS, V_AVAIL, V_KICK_FD,
                                          V_LAST_AVAIL, V_LOG_USED, V_N, V_READY, V_USED, VR_BASE,
                                          VR_WORDS, VRING_USED_F_NO_NOTIFY, X_ARMED, X_VRING)
from pyvswitch.ports.vhost.memops import cw, ld16, ld16_acquire, st16, st16_release
from pyvswitch.ports.vhost.virtq import _log


@hot
def _vring(io):
    ring = io[X_VRING]
    if ring < 0 or ring >= MAX_VRINGS:
        return -1
    return VR_BASE + ring * VR_WORDS


@hot
def _suppress(mem, v):
    if cw(mem, G_EVENT_IDX) != 0:
        return                                      # a stale avail_event suppresses
    used = cw(mem, v + V_USED)
    st16(mem, used, ld16(mem, used) | VRING_USED_F_NO_NOTIFY)
    lu = cw(mem, v + V_LOG_USED)
    if lu >= 0:
        _log(mem, lu, 2)


@hot
def rx_arm(mem, io):
    io[X_ARMED] = -1
    v = _vring(io)
    if v < 0 or cw(mem, v + V_READY) == 0:
        return pio.ARM_IDLE
    fd = cw(mem, v + V_KICK_FD)
    if fd < 0:
        return pio.ARM_NO_FD
    n, avail, used = cw(mem, v + V_N), cw(mem, v + V_AVAIL), cw(mem, v + V_USED)
    last = cw(mem, v + V_LAST_AVAIL) & 0xFFFF
    lu = cw(mem, v + V_LOG_USED)
    if cw(mem, G_EVENT_IDX) != 0:
        st16_release(mem, used + 4 + 8 * n, last)
        if lu >= 0:
            _log(mem, lu + 4 + 8 * n, 2)
    else:
        st16(mem, used, ld16(mem, used) & ~VRING_USED_F_NO_NOTIFY)
        if lu >= 0:
            _log(mem, lu, 2)
    fence_seq_cst()
    if ld16_acquire(mem, avail + 2) != last:
        _suppress(mem, v)
        return pio.ARM_BUSY
    io[X_ARMED] = fd
    return fd


@hot
def rx_disarm(mem, io, revents):
    fd = io[X_ARMED]
    v = _vring(io)
    if fd < 0 or v < 0:
        return 0
    io[X_ARMED] = -1
    if revents & POLLIN:
        c_read(fd, mem.ctypes.data + G_SCRATCH * 8, 8)
    _suppress(mem, v)
    return 1
