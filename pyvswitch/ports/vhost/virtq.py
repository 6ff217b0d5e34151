"""Split-virtqueue kernels of the vhost-user back-end (the device side).

    rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats) -> n
        Frames the guest transmitted: consume chains from vring io[X_VRING]
        (the guest's TX queue 2q+1), copy each chain minus the virtio-net
        header into a pool slot, return the chain in the used ring (len 0),
        publish used.idx once per burst and call the guest if it wants it.
        Queue 0 puts a pending SEND_RARP frame first (rarp.py).
    rx_burst_split(..., xs) -> n  /  rx_done(mem, io)
        The same, but a long TCP/UDP frame is copied only up to SPLIT_HDR
        bytes (its headers: what the switch classifies and tracks is its own
        copy, which the guest cannot change afterwards); the payload stays in
        the guest's buffer, referenced from the split table xs, and the used
        entries are published by rx_done after the burst has been processed.
        Guest to guest, the payload is then copied once (tx_one_split).
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
guest RX ring: a row takes the ring's V_LOCK (atomic_or as a test-and-set) at
its first tx_one of a burst and tx_flush releases it (store_release), so a
burst costs one atomic (X_TXLOCK: the lock a row holds). Every tx_one is
followed by a tx_flush of its row before the PMD leaves the burst. Receive rows are polled by one PMD.
Dirty pages (VHOST_F_LOG_ALL) are logged with atomic_or after a release fence.

Prefetching: the guest writes its descriptors and buffers on its own core,
so each is a cache miss here. rx_burst first prefetches the burst's
descriptors, then the first two lines of each buffer, so the misses overlap;
a tx burst prefetches 32 descriptors when it takes the ring, and each
delivery starts the write miss on the buffer TX_AHEAD frames ahead. In the
PVP benchmark (64 B) this took the PMD from 482 to 323 cycles per packet.
"""

import numpy as np

from pyvswitch.core.intrinsics import (atomic_or, fence_acquire, fence_release, fence_seq_cst,
                                       memcpy_u8, prefetch, prefetch_w, store_release, view_u8)
from pyvswitch.ports.vhost._jit import hot
from pyvswitch.core.libc import c_write
from pyvswitch.core.pool import HEADROOM
from pyvswitch.ports import io as pio
from pyvswitch.ports.vhost.memops import (cadd, cset, cw, ld16, ld16_acquire, ld16_relaxed, ld32,
                                          ld64, st16, st32, st64, st16_release)
from pyvswitch.ports.vhost.rarp import RARP_LEN, put_rarp
from pyvswitch.ports.vhost.layout import (E_AVAIL_JUMP, E_BAD_DESC_ADDR,
                                          E_BAD_DESC_FLAGS, E_BAD_DESC_INDEX, E_CHAIN_TOO_LONG,
                                          E_NO_RX_BUFFERS, E_NOT_READY, E_RX_BUF_SMALL,
                                          E_RX_OVERSIZE, ERR_BASE, G_EVENT_IDX, G_HDR_LEN,
                                          G_LAST_REG, G_LOG_BYTES, G_LOG_MOFF, G_LOG_ON, G_MRG, G_RARP,
                                          G_NREG, G_NTXV, G_ONE, MAX_QP, MAX_REGIONS, MAX_VRINGS,
                                          R_GPA, R_MOFF, R_SIZE, R_WORDS, REG_BASE, TXMAP_BASE,
                                          V_AVAIL, V_BROKEN, V_CALL_FD, V_CALLS, V_DESC, V_LAST_AVAIL,
                                          V_LOCK, V_LOG_USED, V_N, V_NB0, V_PACKETS, V_PUBLISHED, V_READY,
                                          V_SIGNALLED, V_SPLIT, V_USED, V_USED_IDX, VR_BASE, VR_WORDS,
                                          VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT,
                                          VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, X_TXHINT, X_TXLOCK, X_VRING)

LOCK_SPINS = 1 << 20
COUNTED = -1000               # _deliver: error already counted (ring broken)
SPLIT_HDR = 192               # rx_burst_split: header bytes copied into the slot
SPLIT_MIN = 320               # ... of frames at least this long (shorter: copied whole)
XS_HDR, XS_ADDR = pio.XS_HDR, pio.XS_ADDR   # the split table (ports/io.py)


@hot
def translate(mem, gpa, length):
    """mem offset of guest-physical [gpa, gpa+length) inside one region, or -1."""
    if gpa < 0 or length < 0:
        return -1
    n = min(cw(mem, G_NREG), MAX_REGIONS)
    i = cw(mem, G_LAST_REG)
    for _ in range(n):
        if i >= n or i < 0:
            i = 0
        b = REG_BASE + i * R_WORDS
        rg, rs = cw(mem, b + R_GPA), cw(mem, b + R_SIZE)
        if gpa >= rg and length <= rs and gpa - rg <= rs - length:
            cset(mem, G_LAST_REG, i)
            return cw(mem, b + R_MOFF) + (gpa - rg)
        i += 1
    return -1


@hot
def _err(mem, e):
    cadd(mem, ERR_BASE + e, 1)


@hot
def _log(mem, gpa, length):
    """Mark the 4 KiB guest pages of [gpa, gpa+length) dirty (LOG_ALL)."""
    if cw(mem, G_LOG_ON) == 0 or length <= 0 or gpa < 0:
        return
    fence_release()
    nb, base = cw(mem, G_LOG_BYTES), cw(mem, G_LOG_MOFF)
    for p in range(gpa >> 12, ((gpa + length - 1) >> 12) + 1):
        b = p >> 3
        if b < nb:
            atomic_or(mem, base + b, np.uint8(1 << (p & 7)))
    fence_release()


@hot
def _broken(mem, v, e):
    _err(mem, e)
    cset(mem, v + V_READY, 0)
    cset(mem, v + V_BROKEN, 1)


@hot
def _put_used(mem, v, uidx, head, length):
    n, used = cw(mem, v + V_N), cw(mem, v + V_USED)
    o = used + 4 + 8 * (uidx & (n - 1))
    st32(mem, o, head)
    st32(mem, o + 4, length)
    lu = cw(mem, v + V_LOG_USED)
    if lu >= 0:
        _log(mem, lu + (o - used), 8)


@hot
def publish(mem, v):
    """Store used.idx (release), then call the guest if it asked for it."""
    uidx = cw(mem, v + V_USED_IDX)
    if uidx == cw(mem, v + V_PUBLISHED):
        return
    n, avail, used = cw(mem, v + V_N), cw(mem, v + V_AVAIL), cw(mem, v + V_USED)
    st16_release(mem, used + 2, uidx & 0xFFFF)
    cset(mem, v + V_PUBLISHED, uidx)
    lu = cw(mem, v + V_LOG_USED)
    if lu >= 0:
        _log(mem, lu + 2, 2)
    fd = cw(mem, v + V_CALL_FD)
    if fd < 0:
        return
    fence_seq_cst()
    new = uidx & 0xFFFF
    sig = cw(mem, v + V_SIGNALLED) & 0xFFFF
    cset(mem, v + V_SIGNALLED, new)
    if cw(mem, G_EVENT_IDX) != 0:
        ev = ld16_relaxed(mem, avail + 4 + 2 * n)
        need = ((new - ev - 1) & 0xFFFF) < ((new - sig) & 0xFFFF)
    else:
        need = (ld16_relaxed(mem, avail) & VRING_AVAIL_F_NO_INTERRUPT) == 0
    if need:
        c_write(fd, mem.ctypes.data + G_ONE * 8, 8)
        cadd(mem, v + V_CALLS, 1)


@hot
def _read_chain(mem, v, head, hdr, dst, cap, split):
    """Copy a TX chain (minus hdr bytes) to dst[HEADROOM:]; (length or -1-E_*,
    bytes in dst, mem offset of the rest). With split, a frame of at least
    SPLIT_MIN bytes whose last buffer holds everything past SPLIT_HDR and whose
    headers fit (io.headers_fit) is copied only up to SPLIT_HDR: the rest stays in
    the guest's buffer (returned to the guest once the burst is processed)."""
    n, desc = cw(mem, v + V_N), cw(mem, v + V_DESC)
    idx, hops, skip, pos = head, 0, hdr, 0
    over = False
    while True:
        if idx < 0 or idx >= n:
            return -1 - E_BAD_DESC_INDEX, 0, 0
        hops += 1
        if hops > n:
            return -1 - E_CHAIN_TOO_LONG, 0, 0
        o = desc + 16 * idx
        addr = ld64(mem, o)
        ln = ld32(mem, o + 8)
        fl = ld16(mem, o + 12)
        if fl & (VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT):
            return -1 - E_BAD_DESC_FLAGS, 0, 0
        m = translate(mem, addr, ln)
        if m < 0:
            return -1 - E_BAD_DESC_ADDR, 0, 0
        s = min(skip, ln)
        skip -= s
        c = ln - s
        last = (fl & VRING_DESC_F_NEXT) == 0
        if c > 0:
            if pos + c > cap:
                over = True                  # keep walking: a loop is reported as such
            elif split and last and pos < SPLIT_HDR and pos + c >= SPLIT_MIN:
                k = SPLIT_HDR - pos
                memcpy_u8(dst, HEADROOM + pos, mem, m + s, k)
                if pio.headers_fit(dst, HEADROOM, SPLIT_HDR):
                    return pos + c, SPLIT_HDR, m + s + k
                memcpy_u8(dst, HEADROOM + SPLIT_HDR, mem, m + s + k, c - k)
            else:
                memcpy_u8(dst, HEADROOM + pos, mem, m + s, c)
            pos += c
        if last:
            break
        idx = ld16(mem, o + 14)
    if over or pos < 14:
        return -1 - E_RX_OVERSIZE, 0, 0
    return pos, pos, 0


@hot
def _hint_desc(mem, v, a):
    """mem offset of the descriptor that avail entry a names, for prefetching
    only: the index is masked into the ring, not checked (that is done on use)."""
    n, desc, avail = cw(mem, v + V_N), cw(mem, v + V_DESC), cw(mem, v + V_AVAIL)
    return desc + 16 * (ld16(mem, avail + 4 + 2 * (a & (n - 1))) & (n - 1))


@hot
def _prefetch_descs(mem, v, last, k):
    """Start loading the descriptors of the next k avail entries: the guest
    wrote them on its own core, so each is a cache miss; issued together, the
    misses overlap instead of stalling one packet after the other."""
    for j in range(k):
        prefetch(mem, _hint_desc(mem, v, last + j))


@hot
def _prefetch_buf(mem, v, a, skip, write):
    """Then the first two cache lines past `skip` of the first buffer of avail
    entry a (the frame's headers, all of a short frame): to read it (rx) or
    to write it (tx)."""
    m = translate(mem, ld64(mem, _hint_desc(mem, v, a)), 1)
    if m < 0:
        return
    if write:
        prefetch_w(mem, m + skip)
        prefetch_w(mem, m + skip + 64)
    else:
        prefetch(mem, m + skip)
        prefetch(mem, m + skip + 64)


@hot
def _inject_rarp(mem, pool, slots, offs, lens, nmax, qstats):
    """SEND_RARP pending: the RARP frame as the first received frame (rarp.py)."""
    if nmax < 1 or slots[0] < 0 or slots[0] >= pool.shape[0] or pool.shape[1] < HEADROOM + RARP_LEN:
        return 0
    offs[0] = HEADROOM
    lens[0] = put_rarp(mem, pool[slots[0]], HEADROOM)
    cset(mem, G_RARP, 0)
    qstats[pio.Q_RX_PACKETS] += 1
    qstats[pio.Q_RX_BYTES] += lens[0]
    return 1


@hot
def _rx(mem, io, pool, slots, offs, lens, n_max, qstats, xs, split):
    ring = io[X_VRING]
    if ring < 0 or ring >= MAX_VRINGS:
        return 0
    v = VR_BASE + ring * VR_WORDS
    if cw(mem, v + V_READY) == 0:
        return 0
    nmax = min(n_max, slots.shape[0], offs.shape[0], lens.shape[0])
    got = 0
    if cw(mem, G_RARP) != 0 and ring == 1:
        got = _inject_rarp(mem, pool, slots, offs, lens, nmax, qstats)
    n, avail = cw(mem, v + V_N), cw(mem, v + V_AVAIL)
    aidx = ld16_acquire(mem, avail + 2)
    last = cw(mem, v + V_LAST_AVAIL)
    navail = (aidx - last) & 0xFFFF
    if navail == 0:
        return got
    if navail > n:
        _broken(mem, v, E_AVAIL_JUMP)
        return got
    fence_acquire()
    hdr = cw(mem, G_HDR_LEN)
    cap = np.int64(pool.shape[1]) - HEADROOM
    uidx = cw(mem, v + V_USED_IDX)
    _prefetch_descs(mem, v, last, min(navail, nmax - got))
    for j in range(min(navail, nmax - got)):
        _prefetch_buf(mem, v, last + j, hdr, False)
    taken, nsplit = 0, 0
    while taken < navail and got < nmax:
        head = ld16(mem, avail + 4 + 2 * (last & (n - 1)))
        if head >= n:
            _broken(mem, v, E_BAD_DESC_INDEX)
            break
        slot = slots[got]
        if slot < 0 or slot >= pool.shape[0]:
            break
        r, hl, rest = _read_chain(mem, v, head, hdr, pool[slot], cap, split)
        last += 1
        taken += 1
        _put_used(mem, v, uidx, head, 0)
        uidx += 1
        if r < 0:
            _err(mem, -1 - r)
            if -1 - r == E_RX_OVERSIZE:
                qstats[pio.Q_RX_DROPPED] += 1
            else:
                qstats[pio.Q_RX_ERRORS] += 1
            continue
        if split:
            if hl < r:
                xs[2 * slot + XS_HDR] = hl
                xs[2 * slot + XS_ADDR] = mem.ctypes.data + rest
                nsplit += 1
            else:
                xs[2 * slot + XS_HDR] = 0
        offs[got] = HEADROOM
        lens[got] = r
        qstats[pio.Q_RX_PACKETS] += 1
        qstats[pio.Q_RX_BYTES] += r
        got += 1
    cset(mem, v + V_LAST_AVAIL, last)
    cset(mem, v + V_USED_IDX, uidx)
    cadd(mem, v + V_PACKETS, taken)
    if nsplit > 0:
        cadd(mem, v + V_SPLIT, nsplit)
    else:
        publish(mem, v)          # nothing held by reference: the guest may reuse its buffers now
    return got


@hot
def rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats):
    """Frames copied whole into their slots; the chains go back to the guest now."""
    return _rx(mem, io, pool, slots, offs, lens, n_max, qstats, offs, False)   # xs unused


@hot
def rx_burst_split(mem, io, pool, slots, offs, lens, n_max, qstats, xs):
    """rx_burst, but long TCP/UDP frames keep their payload in the guest's
    buffer: xs[2 * slot + XS_HDR] bytes are in the slot (0: all of them), the
    rest at address xs[2 * slot + XS_ADDR]. If any frame is held so, the caller
    must call rx_done once it has finished with the burst (sent, copied or
    dropped every frame): only then do the guest's buffers go back to it.
    Bursts without one give the buffers back at once, as rx_burst does."""
    return _rx(mem, io, pool, slots, offs, lens, n_max, qstats, xs, True)


@hot
def rx_done(mem, io):
    """Publish the used entries of the rx vring (the guest may reuse its buffers)."""
    ring = io[X_VRING]
    if ring < 0 or ring >= MAX_VRINGS:
        return
    publish(mem, VR_BASE + ring * VR_WORDS)


@hot
def _put_stream(mem, m, c, spos, hdr, src, soff, hl, xsrc, v):
    """Write stream bytes [spos, spos+c) at mem[m:]: a zero header of hdr bytes,
    then the frame: its first hl bytes from src[soff:], the rest from xsrc[0:].
    V_NB0/V_NB0+1 get the mem offsets of header bytes 10, 11."""
    k = 0
    if spos == 0 and c >= hdr:               # the usual case: the whole header here
        for j in range(hdr):
            mem[m + j] = 0
        if hdr >= 12:
            cset(mem, v + V_NB0, m + 10)
            cset(mem, v + V_NB0 + 1, m + 11)
        k = hdr
    while k < c and spos + k < hdr:
        p = spos + k
        mem[m + k] = 0
        if p == 10:
            cset(mem, v + V_NB0, m + k)
        elif p == 11:
            cset(mem, v + V_NB0 + 1, m + k)
        k += 1
    f = spos + k - hdr                       # frame offset of the next byte
    if k < c and f < hl:
        a = min(c - k, hl - f)
        memcpy_u8(mem, m + k, src, soff + f, a)
        k += a
        f += a
    if k < c:
        memcpy_u8(mem, m + k, xsrc, f - hl, c - k)


TX_AHEAD = 2                  # _deliver starts the write miss on the buffer this many frames ahead


@hot
def _deliver_one(mem, v, n, desc, avail, last, uidx, hdr, total, src, soff, hl, xsrc, length):
    """The usual case of _deliver: the next chain's first buffer is writable,
    direct, inside guest memory and holds the header and the whole frame.
    Then: a zero header (num_buffers 1 with a 12-byte one), the frame, the used
    entry; True. Anything else: False, nothing written (_deliver's loop then
    walks the chain, merges buffers, or counts the error)."""
    head = ld16(mem, avail + 4 + 2 * (last & (n - 1)))
    if head >= n:
        return False
    o = desc + 16 * head
    fl = ld16(mem, o + 12)
    if (fl & VRING_DESC_F_WRITE) == 0 or (fl & VRING_DESC_F_INDIRECT) != 0 or ld32(mem, o + 8) < total \
            or (hdr != 12 and hdr != 10):
        return False
    addr = ld64(mem, o)
    m = translate(mem, addr, total)
    if m < 0:
        return False
    st64(mem, m, 0)
    if hdr == 12:
        st32(mem, m + 8, 1 << 16)                # num_buffers = 1 (bytes 10-11)
    else:
        st16(mem, m + 8, 0)
    memcpy_u8(mem, m + hdr, src, soff, hl)
    if hl < length:
        memcpy_u8(mem, m + hdr + hl, xsrc, 0, length - hl)
    _log(mem, addr, total)
    _put_used(mem, v, uidx, head, total)
    cset(mem, v + V_LAST_AVAIL, last + 1)
    cset(mem, v + V_USED_IDX, uidx + 1)
    _prefetch_buf(mem, v, last + 1 + TX_AHEAD, 0, True)
    return True


@hot
def _deliver(mem, v, src, soff, hl, xsrc, length):
    """Frame of `length` bytes into the guest RX ring of vring word v: the first
    hl from src[soff:], the rest from xsrc (_put_stream). Returns chains used
    (> 0), COUNTED (ring broken) or -1-E_*."""
    n, desc, avail = cw(mem, v + V_N), cw(mem, v + V_DESC), cw(mem, v + V_AVAIL)
    aidx = ld16_acquire(mem, avail + 2)
    last, uidx = cw(mem, v + V_LAST_AVAIL), cw(mem, v + V_USED_IDX)
    navail = (aidx - last) & 0xFFFF
    if navail > n:
        _broken(mem, v, E_AVAIL_JUMP)
        return COUNTED
    fence_acquire()
    hdr, mrg = cw(mem, G_HDR_LEN), cw(mem, G_MRG)
    total = hdr + length
    if navail > 0 and _deliver_one(mem, v, n, desc, avail, last, uidx, hdr, total, src, soff, hl, xsrc, length):
        return 1
    spos, nbufs, bad = 0, 0, -1
    cset(mem, v + V_NB0, -1)
    cset(mem, v + V_NB0 + 1, -1)
    while spos < total and bad < 0:
        if nbufs >= navail:
            return -1 - E_NO_RX_BUFFERS
        if nbufs > 0 and mrg == 0:
            return -1 - E_RX_BUF_SMALL
        head = ld16(mem, avail + 4 + 2 * ((last + nbufs) & (n - 1)))
        if head >= n:
            _broken(mem, v, E_BAD_DESC_INDEX)
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
            addr = ld64(mem, o)
            ln = ld32(mem, o + 8)
            fl = ld16(mem, o + 12)
            if (fl & VRING_DESC_F_WRITE) == 0 or (fl & VRING_DESC_F_INDIRECT) != 0:
                bad = E_BAD_DESC_FLAGS
                break
            c = min(ln, total - spos)
            m = translate(mem, addr, c)
            if m < 0:
                bad = E_BAD_DESC_ADDR
                break
            _put_stream(mem, m, c, spos, hdr, src, soff, hl, xsrc, v)
            _log(mem, addr, c)
            spos += c
            written += c
            if (fl & VRING_DESC_F_NEXT) == 0:
                break
            idx = ld16(mem, o + 14)
        if bad < 0 and spos < total and mrg == 0:
            return -1 - E_RX_BUF_SMALL
        _put_used(mem, v, uidx + nbufs, head, written)
        nbufs += 1
    if bad >= 0:
        for k in range(nbufs):                   # give every chain back empty
            _put_used(mem, v, uidx + k, ld16(mem, avail + 4 + 2 * ((last + k) & (n - 1))), 0)
    else:
        nb0, nb1 = cw(mem, v + V_NB0), cw(mem, v + V_NB0 + 1)
        if hdr >= 12 and nb0 >= 0 and nb1 >= 0:
            mem[nb0] = nbufs & 0xFF
            mem[nb1] = (nbufs >> 8) & 0xFF
    cset(mem, v + V_LAST_AVAIL, last + nbufs)
    cset(mem, v + V_USED_IDX, uidx + nbufs)
    if bad >= 0:
        return -1 - bad
    _prefetch_buf(mem, v, last + nbufs + TX_AHEAD, 0, True)
    return nbufs


@hot
def _lock(mem, w):
    for _ in range(LOCK_SPINS):
        if atomic_or(mem, 8 * w, np.uint8(1)) == 0:
            fence_acquire()
            return True
    return False


@hot
def _unlock(mem, w):
    store_release(mem, 8 * w, np.uint8(0))


@hot
def _tx_vring(mem, io):
    ntx = cw(mem, G_NTXV)
    if ntx <= 0 or ntx > MAX_QP:
        return -1
    q = io[X_TXHINT] & 0x7FFFFFFF
    if q >= ntx:                          # a division per packet costs ~25 cycles: only when needed
        q %= ntx
    ring = cw(mem, TXMAP_BASE + q)
    if ring < 0 or ring >= MAX_VRINGS:
        return -1
    return VR_BASE + ring * VR_WORDS


@hot
def _hold(mem, io, w):
    """Take the ring lock at control word w for this row until tx_flush: one
    atomic per burst, not per frame (as DPDK's enqueue_burst holds its vq)."""
    held = io[X_TXLOCK]
    if held == w:
        return True
    if held != 0:
        _unlock(mem, held)
        io[X_TXLOCK] = 0
    if not _lock(mem, w):
        return False
    io[X_TXLOCK] = w
    v = w - V_LOCK
    if cw(mem, v + V_READY) != 0:
        last = cw(mem, v + V_LAST_AVAIL)
        _prefetch_descs(mem, v, last, 32)
        for a in range(TX_AHEAD):
            _prefetch_buf(mem, v, last + a, 0, True)
    return True


@hot
def _tx(mem, io, src, soff, hl, xsrc, length, qstats):
    v = _tx_vring(mem, io)
    if v < 0:
        _err(mem, E_NOT_READY)
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    if not _hold(mem, io, v + V_LOCK):
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    r = -1 - E_NOT_READY
    if cw(mem, v + V_READY) != 0:
        r = _deliver(mem, v, src, soff, hl, xsrc, length)
        if r > 0:
            cadd(mem, v + V_PACKETS, 1)
    io[pio.IO_TX_PENDING] += 1                    # chains may have been returned
    if r > 0:
        qstats[pio.Q_TX_PACKETS] += 1
        qstats[pio.Q_TX_BYTES] += length
        return 1
    if r == COUNTED:
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    _err(mem, -1 - r)
    if -1 - r == E_NO_RX_BUFFERS or -1 - r == E_NOT_READY:
        qstats[pio.Q_TX_DROPPED] += 1
    else:
        qstats[pio.Q_TX_ERRORS] += 1
    return 0


@hot
def tx_one(mem, io, pool, slot, off, length, qstats):
    if slot < 0 or slot >= pool.shape[0] or off < 0 or length <= 0 or off + length > pool.shape[1]:
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    b = pool[slot]
    return _tx(mem, io, b, off, length, b, length, qstats)


@hot
def tx_one_split(mem, io, pool, slot, off, hl, xaddr, length, qstats):
    """tx_one of a frame received by reference (rx_burst_split): its first hl
    bytes at pool[slot, off:], the rest at address xaddr -- one copy in all."""
    if slot < 0 or slot >= pool.shape[0] or off < 0 or hl <= 0 or hl > length \
            or off + length > pool.shape[1] or xaddr == 0:
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    return _tx(mem, io, pool[slot], off, hl, view_u8(xaddr, length - hl), length, qstats)


@hot
def tx_flush(mem, io, qstats):
    """Publish what this row delivered since the last flush and release the
    ring lock it held since then."""
    held = io[X_TXLOCK]
    io[X_TXLOCK] = 0
    if io[pio.IO_TX_PENDING] == 0:
        if held != 0:
            _unlock(mem, held)
        return None
    io[pio.IO_TX_PENDING] = 0
    v = _tx_vring(mem, io)
    if v < 0 or held != v + V_LOCK:
        if held != 0:
            _unlock(mem, held)
        if v < 0 or not _lock(mem, v + V_LOCK):
            return None
    if cw(mem, v + V_READY) != 0:
        publish(mem, v)
    _unlock(mem, v + V_LOCK)
    return None
