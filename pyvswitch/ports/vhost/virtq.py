"""Split-virtqueue kernels of the vhost-user back-end (the device side).

    rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats) -> n
        Frames the guest transmitted: consume chains from vring io[X_VRING]
        (the guest's TX queue 2q+1), copy each chain minus the virtio-net
        header into a pool slot, return the chain in the used ring (len 0),
        publish used.idx once per burst and call the guest if it wants it.
    tx_one(mem, io, pool, slot, off, length, qstats) -> 1/0
        Deliver a frame into the guest's RX queue chosen from the tx vring
        map: a zeroed header with num_buffers, the frame, spread over as many
        chains as needed with MRG_RXBUF (one chain must hold it otherwise).
        The used elements are written but used.idx is published by tx_flush.
    tx_flush(mem, io, qstats)
        Publish used.idx, log it, full fence, call the guest if it wants it
        (NO_INTERRUPT, or EVENT_IDX's used_event).

`mem` is the port's flat array (layout.py): the control words at 0, the dirty
log window, then the guest regions. Every guest-derived value is checked here
(numba has no bounds checks): head and next indices against the ring size,
chain length against the ring size, every buffer against the region table
(translate), flags (TX chains read-only, RX chains writable, no INDIRECT:
not offered), avail.idx moving by more than the ring size. A bad chain is
returned with len 0 and counted (ERR_NAMES); a bad head index or an avail
jump marks the ring broken (V_BROKEN, V_READY = 0) and the control thread
disconnects the peer.

Several PMDs (and the control thread's packet-out row) may transmit into one
guest RX ring: tx_one and tx_flush hold the ring's V_LOCK (atomic_or as a
test-and-set, store_release to unlock). Receive rows are polled by one PMD.
Dirty pages (VHOST_F_LOG_ALL) are logged with atomic_or after a release fence.
"""

import numpy as np

from pyvswitch.core.intrinsics import (atomic_or, fence_acquire, fence_release, fence_seq_cst,
                                       load_acquire, load_relaxed, memcpy_u8, store_release)
from pyvswitch.core.jit import kernel
from pyvswitch.core.libc import c_write
from pyvswitch.core.pool import HEADROOM
from pyvswitch.ports import io as pio
from pyvswitch.ports.vhost.layout import (CTRL_BYTES, E_AVAIL_JUMP, E_BAD_DESC_ADDR,
                                          E_BAD_DESC_FLAGS, E_BAD_DESC_INDEX, E_CHAIN_TOO_LONG,
                                          E_NO_RX_BUFFERS, E_NOT_READY, E_RX_BUF_SMALL,
                                          E_RX_OVERSIZE, ERR_BASE, G_EVENT_IDX, G_HDR_LEN,
                                          G_LAST_REG, G_LOG_BYTES, G_LOG_MOFF, G_LOG_ON, G_MRG,
                                          G_NREG, G_NTXV, G_ONE, MAX_QP, MAX_REGIONS, MAX_VRINGS,
                                          R_GPA, R_MOFF, R_SIZE, R_WORDS, REG_BASE, TXMAP_BASE,
                                          V_AVAIL, V_BROKEN, V_CALL_FD, V_CALLS, V_DESC, V_LAST_AVAIL,
                                          V_LOCK, V_LOG_USED, V_N, V_NB0, V_PACKETS, V_PUBLISHED, V_READY,
                                          V_SIGNALLED, V_USED, V_USED_IDX, VR_BASE, VR_WORDS,
                                          VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT,
                                          VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, X_TXHINT, X_VRING)

LOCK_SPINS = 1 << 20
COUNTED = -1000               # _deliver: error already counted (ring broken)


@kernel
def translate(ctl, gpa, length):
    """mem offset of guest-physical [gpa, gpa+length) inside one region, or -1."""
    if gpa < 0 or length < 0:
        return -1
    n = min(ctl[G_NREG], MAX_REGIONS)
    hint = ctl[G_LAST_REG]
    for k in range(n):
        i = (hint + k) % n
        b = REG_BASE + i * R_WORDS
        rg, rs = ctl[b + R_GPA], ctl[b + R_SIZE]
        if gpa >= rg and length <= rs and gpa - rg <= rs - length:
            if i != hint:
                ctl[G_LAST_REG] = i
            return ctl[b + R_MOFF] + (gpa - rg)
    return -1


@kernel
def _err(ctl, e):
    ctl[ERR_BASE + e] += 1


@kernel
def _log(mem, ctl, gpa, length):
    """Mark the 4 KiB guest pages of [gpa, gpa+length) dirty (LOG_ALL)."""
    if ctl[G_LOG_ON] == 0 or length <= 0 or gpa < 0:
        return
    fence_release()
    nb, base = ctl[G_LOG_BYTES], ctl[G_LOG_MOFF]
    for p in range(gpa >> 12, ((gpa + length - 1) >> 12) + 1):
        b = p >> 3
        if b < nb:
            atomic_or(mem, base + b, np.uint8(1 << (p & 7)))
    fence_release()


@kernel
def _broken(ctl, v, e):
    _err(ctl, e)
    ctl[v + V_READY] = 0
    ctl[v + V_BROKEN] = 1


@kernel
def _put_used(mem, ctl, v, uidx, head, length):
    n, used = ctl[v + V_N], ctl[v + V_USED]
    o = used + 4 + 8 * (uidx & (n - 1))
    u32 = mem.view(np.uint32)
    u32[o >> 2] = np.uint32(head)
    u32[(o >> 2) + 1] = np.uint32(length)
    lu = ctl[v + V_LOG_USED]
    if lu >= 0:
        _log(mem, ctl, lu + (o - used), 8)


@kernel
def publish(mem, ctl, v):
    """Store used.idx (release), then call the guest if it asked for it."""
    uidx = ctl[v + V_USED_IDX]
    old = ctl[v + V_PUBLISHED]
    if uidx == old:
        return
    n, avail, used = ctl[v + V_N], ctl[v + V_AVAIL], ctl[v + V_USED]
    u16 = mem.view(np.uint16)
    store_release(u16, (used + 2) >> 1, np.uint16(uidx & 0xFFFF))
    ctl[v + V_PUBLISHED] = uidx
    lu = ctl[v + V_LOG_USED]
    if lu >= 0:
        _log(mem, ctl, lu + 2, 2)
    fd = ctl[v + V_CALL_FD]
    if fd < 0:
        return
    fence_seq_cst()
    new = uidx & 0xFFFF
    sig = ctl[v + V_SIGNALLED] & 0xFFFF
    ctl[v + V_SIGNALLED] = new
    if ctl[G_EVENT_IDX] != 0:
        ev = np.int64(load_relaxed(u16, (avail + 4 + 2 * n) >> 1))
        need = ((new - ev - 1) & 0xFFFF) < ((new - sig) & 0xFFFF)
    else:
        need = (np.int64(load_relaxed(u16, avail >> 1)) & VRING_AVAIL_F_NO_INTERRUPT) == 0
    if need:
        c_write(fd, mem.ctypes.data + G_ONE * 8, 8)
        ctl[v + V_CALLS] += 1


@kernel
def _read_chain(mem, ctl, v, head, hdr, dst, cap):
    """Copy a TX chain (minus hdr bytes) to dst[HEADROOM:]; length or -1-E_*."""
    n, desc = ctl[v + V_N], ctl[v + V_DESC]
    u16, u32, i64 = mem.view(np.uint16), mem.view(np.uint32), mem.view(np.int64)
    idx, hops, skip, pos = head, 0, hdr, 0
    while True:
        if idx < 0 or idx >= n:
            return -1 - E_BAD_DESC_INDEX
        hops += 1
        if hops > n:
            return -1 - E_CHAIN_TOO_LONG
        o = desc + 16 * idx
        addr = i64[o >> 3]
        ln = np.int64(u32[(o >> 2) + 2])
        fl = np.int64(u16[(o >> 1) + 6])
        if fl & (VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT):
            return -1 - E_BAD_DESC_FLAGS
        m = translate(ctl, addr, ln)
        if m < 0:
            return -1 - E_BAD_DESC_ADDR
        s = min(skip, ln)
        skip -= s
        c = ln - s
        if c > 0:
            if pos + c > cap:
                return -1 - E_RX_OVERSIZE
            memcpy_u8(dst, HEADROOM + pos, mem, m + s, c)
            pos += c
        if (fl & VRING_DESC_F_NEXT) == 0:
            break
        idx = np.int64(u16[(o >> 1) + 7])
    if pos < 14:
        return -1 - E_RX_OVERSIZE
    return pos


@kernel
def rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats):
    ring = io[X_VRING]
    if ring < 0 or ring >= MAX_VRINGS:
        return 0
    ctl = mem[:CTRL_BYTES].view(np.int64)
    v = VR_BASE + ring * VR_WORDS
    if ctl[v + V_READY] == 0:
        return 0
    n, avail = ctl[v + V_N], ctl[v + V_AVAIL]
    u16 = mem.view(np.uint16)
    aidx = np.int64(load_acquire(u16, (avail + 2) >> 1))
    last = ctl[v + V_LAST_AVAIL]
    navail = (aidx - last) & 0xFFFF
    if navail == 0:
        return 0
    if navail > n:
        _broken(ctl, v, E_AVAIL_JUMP)
        return 0
    fence_acquire()
    hdr = ctl[G_HDR_LEN]
    cap = np.int64(pool.shape[1]) - HEADROOM
    nmax = min(n_max, slots.shape[0], offs.shape[0], lens.shape[0])
    uidx = ctl[v + V_USED_IDX]
    got = 0
    taken = 0
    while taken < navail and got < nmax:
        head = np.int64(u16[((avail + 4) >> 1) + (last & (n - 1))])
        if head >= n:
            _broken(ctl, v, E_BAD_DESC_INDEX)
            break
        slot = slots[got]
        if slot < 0 or slot >= pool.shape[0]:
            break
        r = _read_chain(mem, ctl, v, head, hdr, pool[slot], cap)
        last += 1
        taken += 1
        _put_used(mem, ctl, v, uidx, head, 0)
        uidx += 1
        if r < 0:
            _err(ctl, -1 - r)
            if -1 - r == E_RX_OVERSIZE:
                qstats[pio.Q_RX_DROPPED] += 1
            else:
                qstats[pio.Q_RX_ERRORS] += 1
            continue
        offs[got] = HEADROOM
        lens[got] = r
        qstats[pio.Q_RX_PACKETS] += 1
        qstats[pio.Q_RX_BYTES] += r
        got += 1
    ctl[v + V_LAST_AVAIL] = last
    ctl[v + V_USED_IDX] = uidx
    ctl[v + V_PACKETS] += taken
    publish(mem, ctl, v)
    return got


@kernel
def _put_stream(mem, m, c, spos, hdr, src, soff, nb):
    """Write stream bytes [spos, spos+c) at mem[m:]: a zero header of hdr bytes
    then src[soff:]; nb[0], nb[1] get the mem offsets of header bytes 10, 11."""
    k = 0
    while k < c and spos + k < hdr:
        p = spos + k
        mem[m + k] = 0
        if p == 10:
            nb[0] = m + k
        elif p == 11:
            nb[1] = m + k
        k += 1
    if k < c:
        memcpy_u8(mem, m + k, src, soff + (spos + k - hdr), c - k)


@kernel
def _deliver(mem, ctl, v, src, soff, length, nb):
    """Frame src[soff:soff+length] into the guest RX ring of vring word v.
    Returns chains used (> 0) or -1-E_* (nothing consumed unless E_BAD_DESC_*)."""
    n, desc, avail = ctl[v + V_N], ctl[v + V_DESC], ctl[v + V_AVAIL]
    u16, u32, i64 = mem.view(np.uint16), mem.view(np.uint32), mem.view(np.int64)
    aidx = np.int64(load_acquire(u16, (avail + 2) >> 1))
    last, uidx = ctl[v + V_LAST_AVAIL], ctl[v + V_USED_IDX]
    navail = (aidx - last) & 0xFFFF
    if navail > n:
        _broken(ctl, v, E_AVAIL_JUMP)
        return COUNTED
    fence_acquire()
    hdr = ctl[G_HDR_LEN]
    total = hdr + length
    spos, nbufs, bad = 0, 0, -1
    nb[0] = -1
    nb[1] = -1
    while spos < total and bad < 0:
        if nbufs >= navail:
            return -1 - E_NO_RX_BUFFERS
        if nbufs > 0 and ctl[G_MRG] == 0:
            return -1 - E_RX_BUF_SMALL
        head = np.int64(u16[((avail + 4) >> 1) + ((last + nbufs) & (n - 1))])
        if head >= n:
            _broken(ctl, v, E_BAD_DESC_INDEX)
            return COUNTED
        idx, hops, written = head, 0, 0
        while spos < total:
            if idx >= n:
                bad = E_BAD_DESC_INDEX
                break
            hops += 1
            if hops > n:
                bad = E_CHAIN_TOO_LONG
                break
            o = desc + 16 * idx
            addr = i64[o >> 3]
            ln = np.int64(u32[(o >> 2) + 2])
            fl = np.int64(u16[(o >> 1) + 6])
            if (fl & VRING_DESC_F_WRITE) == 0 or (fl & VRING_DESC_F_INDIRECT) != 0:
                bad = E_BAD_DESC_FLAGS
                break
            c = min(ln, total - spos)
            m = translate(ctl, addr, c)
            if m < 0:
                bad = E_BAD_DESC_ADDR
                break
            _put_stream(mem, m, c, spos, hdr, src, soff, nb)
            _log(mem, ctl, addr, c)
            spos += c
            written += c
            if (fl & VRING_DESC_F_NEXT) == 0:
                break
            idx = np.int64(u16[(o >> 1) + 7])
        if bad < 0 and spos < total and ctl[G_MRG] == 0:
            return -1 - E_RX_BUF_SMALL
        _put_used(mem, ctl, v, uidx + nbufs, head, written)
        nbufs += 1
    if bad >= 0:
        for k in range(nbufs):                   # give every chain back empty
            _put_used(mem, ctl, v, uidx + k, u16[((avail + 4) >> 1) + ((last + k) & (n - 1))], 0)
    elif hdr >= 12 and nb[0] >= 0 and nb[1] >= 0:
        mem[nb[0]] = nbufs & 0xFF
        mem[nb[1]] = (nbufs >> 8) & 0xFF
    ctl[v + V_LAST_AVAIL] = last + nbufs
    ctl[v + V_USED_IDX] = uidx + nbufs
    if bad >= 0:
        return -1 - bad
    return nbufs


@kernel
def _lock(ctl, i):
    for _ in range(LOCK_SPINS):
        if atomic_or(ctl, i, 1) == 0:
            fence_acquire()
            return True
    return False


@kernel
def _tx_vring(ctl, io):
    ntx = ctl[G_NTXV]
    if ntx <= 0 or ntx > MAX_QP:
        return -1
    ring = ctl[TXMAP_BASE + (io[X_TXHINT] & 0x7FFFFFFF) % ntx]
    if ring < 0 or ring >= MAX_VRINGS:
        return -1
    return VR_BASE + ring * VR_WORDS


@kernel
def tx_one(mem, io, pool, slot, off, length, qstats):
    ctl = mem[:CTRL_BYTES].view(np.int64)
    v = _tx_vring(ctl, io)
    if v < 0:
        _err(ctl, E_NOT_READY)
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    if slot < 0 or slot >= pool.shape[0] or off < 0 or length <= 0 or off + length > pool.shape[1]:
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    if not _lock(ctl, v + V_LOCK):
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    r = -1 - E_NOT_READY
    if ctl[v + V_READY] != 0:
        nb = ctl[v + V_NB0:v + V_NB0 + 2]
        r = _deliver(mem, ctl, v, pool[slot], off, length, nb)
        if r > 0:
            ctl[v + V_PACKETS] += 1
    store_release(ctl, v + V_LOCK, 0)
    if r > 0:
        io[pio.IO_TX_PENDING] += 1
        qstats[pio.Q_TX_PACKETS] += 1
        qstats[pio.Q_TX_BYTES] += length
        return 1
    if r == COUNTED:
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    _err(ctl, -1 - r)
    if -1 - r == E_NO_RX_BUFFERS or -1 - r == E_NOT_READY:
        qstats[pio.Q_TX_DROPPED] += 1
    else:
        qstats[pio.Q_TX_ERRORS] += 1
    io[pio.IO_TX_PENDING] += 1                    # chains may have been returned
    return 0


@kernel
def tx_flush(mem, io, qstats):
    if io[pio.IO_TX_PENDING] == 0:
        return None
    io[pio.IO_TX_PENDING] = 0
    ctl = mem[:CTRL_BYTES].view(np.int64)
    v = _tx_vring(ctl, io)
    if v < 0 or not _lock(ctl, v + V_LOCK):
        return None
    if ctl[v + V_READY] != 0:
        publish(mem, ctl, v)
    store_release(ctl, v + V_LOCK, 0)
    return None
