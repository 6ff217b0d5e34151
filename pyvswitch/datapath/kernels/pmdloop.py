"""pmdloop: the one long compiled call of a PMD thread.

pmd_loop(p, t) polls the rxqs p.rxq[0:C_NRXQ] (io rows reached
through p.rowptr/p.memptr) for up to C_MAX_ITER iterations. Per burst (<= 32):
take free slots, rx_burst, parse (in_port = the row's IO_PORT), EMC lookup,
dpcls lookup on EMC misses (EMC insert on hit, 1 in C_EMC_INV_PROB), credit
the megaflow (packets, bytes, used, tcp_flags), execute its actions, return
the slot, then tx_flush the touched rows. A packet with no megaflow keeps its
slot and goes on the upcall queue (upq_*), or is lost if that is full.
vhost-user rows receive long frames by reference (state.py's split table):
rx_done after the burst gives the guest its buffers back, so a frame that
must outlive the burst (an upcall) is made whole first.

Backpressure: an rxq is polled only while the upcall queue has room for
UPQ_ROOM more entries (a burst's misses and those of its recirculations);
otherwise the iteration ends early and the next one starts at that rxq. The
packets wait in their rings meanwhile: a burst of new flows on many ports
at once is upcalled, not dropped.

It returns (RET_*) when: C_GEN differs from C_ACK (read with load_acquire:
the control thread wants the PMD parked), C_STOP is set, the upcall queue is
not empty at the end of an iteration, or C_MAX_ITER iterations passed.

Idle: after C_SPIN_POLLS empty iterations the loop sleeps in ppoll() on the
wake eventfd (C_WAKE_FD, written by the control thread) plus the rx rows'
IO_FDs, with a timeout doubling from 1 us up to C_SLEEP_MAX_US (0: never
sleep, busy-poll like OVS's default). Rows with IO_FD_ARM (vhost-user) are
armed first (portio.rx_arm: enable kicks, re-check the ring, give the kick
fd; ARM_BUSY cancels the sleep) and disarmed after it; the timeout may grow
to FD_SLEEP_MAX_US when every rxq can wake the PMD. Cycles (rdtsc) of iterations that got
packets count as busy, the others (sleep included) as idle.

Recirculation: packets whose actions end in recirc(id) wait on the PMD's
recirculation queue and get another pass (drain_recirc) before the burst's
tx rows are flushed, so they join the same output batches.

execute_upcalls runs after Python has answered the upcalls. Both kernels run
on the PMD thread only.
"""

import numpy as np

from pyvswitch.core.intrinsics import load_acquire, rdtsc, view_i64, view_u8
from pyvswitch.core.jit import kernel
from pyvswitch.core.libc import c_ppoll, c_read
from pyvswitch.datapath.kernels import dpcls as D
from pyvswitch.datapath.kernels import portio
from pyvswitch.datapath.kernels.emc import emc_insert, emc_lookup
from pyvswitch.datapath.kernels.execute import execute_actions, execute_actions_call, flush_touched, whole
from pyvswitch.datapath.kernels.hash import hash_key
from pyvswitch.datapath.kernels.parse import meta_of, parse_burst, reparse_frame
from pyvswitch.datapath.kernels.state import *  # noqa: F403 (constants)
from pyvswitch.datapath.layout import S_IN_PORT, S_TCP_FLAGS, W_IN_PORT, W_TCP_FLAGS
from pyvswitch.ports import io as pio


@kernel(nrt=False, inline=True)
def _now_ns(p, tsc):
    return p.ctl[C_NOW_NS] + (tsc - p.ctl[C_NOW_TSC]) * 1000 // max(p.ctl[C_CYC_PER_US], 1)


@kernel(nrt=False, inline=True)
def _emc_should_insert(p):
    inv = p.ctl[C_EMC_INV_PROB]
    if inv <= 1:
        return True
    r = np.uint64(p.ctl[C_RAND])
    r ^= r << np.uint64(13)
    r ^= r >> np.uint64(7)
    r ^= r << np.uint64(17)
    p.ctl[C_RAND] = np.int64(r)
    return r % np.uint64(inv) == np.uint64(0)


@kernel(nrt=False, inline=True)
def _free_slot(p, slot):
    p.xs[2 * slot + pio.XS_HDR] = 0
    p.free[p.ctl[C_FREE_TOP]] = slot
    p.ctl[C_FREE_TOP] += 1


@kernel(nrt=False, inline=True)
def _credit(t, f, length, key, now):
    m = t.mf_meta[f]
    m[D.MF_PACKETS] += 1
    m[D.MF_BYTES] += length
    m[D.MF_USED] = now
    m[D.MF_TCP_FLAGS] |= np.int64((key[W_TCP_FLAGS] >> np.uint64(S_TCP_FLAGS)) & np.uint64(0xFFF))


@kernel(nrt=False, inline=True)
def _miss(p, slot, off, length, key, in_port):
    n = p.ctl[C_UPQ_N]
    p.stats[S_MISS] += 1
    if n >= p.upq_meta.shape[0]:
        p.stats[S_LOST] += 1
        _free_slot(p, slot)
        return
    whole(p, slot, off, length)                  # it outlives the burst
    for w in range(p.upq_key.shape[1]):
        p.upq_key[n, w] = key[w]
    m = p.upq_meta[n]
    m[U_SLOT], m[U_OFF], m[U_LEN], m[U_IN_PORT], m[U_KIND] = slot, off, length, in_port, KIND_MISS
    m[U_ARG] = p.ctl[C_DEPTH]
    p.ctl[C_UPQ_N] = n + 1


@kernel(nrt=False, inline=True)
def _lookup(p, t, key):
    """EMC, then dpcls: the megaflow index or -1."""
    h = hash_key(key)
    f = emc_lookup(t, key, h)
    if f >= 0:
        p.stats[S_EMC_HITS] += 1
        return f
    f, nsub = D.dpcls_lookup(t, key)
    if f >= 0:
        p.stats[S_MF_HITS] += 1
        p.stats[S_SUBTABLE_LOOKUPS] += nsub
        if _emc_should_insert(p):
            emc_insert(t, key, h, f)
    return f


@kernel(nrt=False, inline=True)
def _lookup_execute(p, t, key, slot, off, length, in_port, now):
    """EMC, then dpcls, then the megaflow's actions; a miss goes to the upcall
    queue with its slot. Frees the slot unless it moved on."""
    f = _lookup(p, t, key)
    if f < 0:
        _miss(p, slot, off, length, key, in_port)
        return
    _credit(t, f, length, key, now)
    if execute_actions(p, t.actions, t.mf_meta[f, D.MF_ACT_OFF],
                       t.mf_meta[f, D.MF_ACT_LEN], slot, off, length, key, in_port) == 0:
        _free_slot(p, slot)


@kernel(nrt=False)
def drain_recirc(p, t, now):
    """Give every packet on the recirculation queue (and those its passes
    queue again, up to MAX_RECIRC_DEPTH) another datapath pass: parse the
    frame again, keep the metadata (in_port, recirc_id, ct_*, tun_*, ...)."""
    b = p.burst
    while p.ctl[C_RCQ_N] > 0:
        n = p.ctl[C_RCQ_N]
        for i in range(n):
            meta_of(p.rcq_key[i], p.keys[i])
            for c in range(RC_COLS):
                b[c, i] = p.rcq_meta[i, c]
        p.ctl[C_RCQ_N] = 0
        for i in range(n):
            slot, off, length = b[RC_SLOT, i], b[RC_OFF, i], b[RC_LEN, i]
            key = p.keys[i]
            in_port = np.int64((key[W_IN_PORT] >> np.uint64(S_IN_PORT)) & np.uint64(0xFFFF))
            reparse_frame(p.pool[slot], off, length, key)
            p.ctl[C_DEPTH] = b[RC_DEPTH, i]
            f = _lookup(p, t, key)
            if f < 0:
                _miss(p, slot, off, length, key, in_port)
                continue
            _credit(t, f, length, key, now)
            if execute_actions_call(p, t.actions, t.mf_meta[f, D.MF_ACT_OFF], t.mf_meta[f, D.MF_ACT_LEN],
                                    slot, off, length, key, in_port) == 0:
                _free_slot(p, slot)
    p.ctl[C_DEPTH] = 0


@kernel(nrt=False, inline=True)
def process_burst(p, t, n, in_port, now):
    b = p.burst
    parse_burst(p.pool, b[B_SLOT], b[B_OFF], b[B_LEN], n, in_port, p.keys)
    for i in range(n):
        _lookup_execute(p, t, p.keys[i], b[B_SLOT, i], b[B_OFF, i], b[B_LEN, i], in_port, now)
    if p.ctl[C_RCQ_N] > 0:
        drain_recirc(p, t, now)
    flush_touched(p)


@kernel(nrt=False, inline=True)
def _poll_rxq(p, t, j, now):
    r = p.rxq[j]
    top = p.ctl[C_FREE_TOP]
    nmax = min(BURST, top)
    if nmax == 0:
        p.stats[S_NO_SLOT] += 1
        return 0
    for i in range(nmax):
        p.burst[B_SLOT, i] = p.free[top - 1 - i]
    io = view_i64(p.rowptr[r], pio.IO_COLS)
    mem = view_u8(p.memptr[r, 0], p.memptr[r, 1])
    n = portio.rx_burst(mem, io, p.pool, p.burst[B_SLOT], p.burst[B_OFF], p.burst[B_LEN], nmax,
                        p.qstats[r], p.xs)
    if n > 0:
        n = min(n, nmax)
        p.ctl[C_FREE_TOP] = top - n
        p.stats[S_PACKETS] += n
        process_burst(p, t, n, io[pio.IO_PORT], now)
    portio.rx_done(mem, io)                       # frames held by reference are done with
    return max(n, 0)


@kernel(nrt=False)
def _disarm(p, nrows, k):
    """rx_disarm the first nrows rxqs with IO_FD_ARM; their fds sit in
    pollfds from slot k on, in rxq order."""
    for j in range(nrows):
        r = p.rxq[j]
        io = view_i64(p.rowptr[r], pio.IO_COLS)
        if io[pio.IO_FD] == pio.IO_FD_ARM:
            rev = (p.pollfds[k, 1] >> 16) if k < p.pollfds.shape[0] else 0
            k += portio.rx_disarm(view_u8(p.memptr[r, 0], p.memptr[r, 1]), io, rev)


@kernel(nrt=False)
def _arm(p, k):
    """rxqs with IO_FD_ARM (vhost-user) enable their notifications and add
    their fd to the poll set from slot k (portio.rx_arm). Returns (poll set
    size, 1 if every rxq can wake the PMD), or (-1, 0) if one has work."""
    wakes = 1
    for j in range(p.ctl[C_NRXQ]):
        r = p.rxq[j]
        io = view_i64(p.rowptr[r], pio.IO_COLS)
        if io[pio.IO_FD] != pio.IO_FD_ARM:
            if io[pio.IO_FD] < 0:
                wakes = 0
            continue
        fd = portio.rx_arm(view_u8(p.memptr[r, 0], p.memptr[r, 1]), io)
        if fd >= 0 and k < p.pollfds.shape[0]:
            p.pollfds[k, 0] = fd
            p.pollfds[k, 1] = 1
            k += 1
        elif fd == pio.ARM_BUSY:
            _disarm(p, j, p.ctl[C_NPOLL])
            return -1, 0
        elif fd != pio.ARM_IDLE:
            wakes = 0
    return k, wakes


@kernel(nrt=False)
def _sleep(p):
    smax = p.ctl[C_SLEEP_MAX_US]
    if smax <= 0:
        return
    nfds, wakes = p.ctl[C_NPOLL], p.ctl[C_FD_WAKES]
    if wakes == 0:
        nfds, wakes = _arm(p, nfds)
        if nfds < 0:
            return
    if wakes != 0:
        # Every rxq can wake us (its fd is in the poll set, or it is armed, or
        # it cannot receive): traffic wakes us at once, so a longer sleep costs
        # no latency (pmd-sleep-max bounds the lateness of rxqs that cannot
        # wake us, e.g. vhost-user without a kick fd).
        smax = max(smax, FD_SLEEP_MAX_US)
    us = min(max(p.ctl[C_SLEEP_US] * 2, 1), smax)
    p.ctl[C_SLEEP_US] = us
    for k in range(p.ctl[C_NPOLL]):
        p.pollfds[k, 1] = 1                       # events = POLLIN, revents = 0
    p.timespec[0] = us // 1000000
    p.timespec[1] = (us % 1000000) * 1000
    p.stats[S_SLEEPS] += 1
    c_ppoll(p.pollfds.ctypes.data, nfds, p.timespec.ctypes.data, 0)
    if p.ctl[C_FD_WAKES] == 0:
        _disarm(p, p.ctl[C_NRXQ], p.ctl[C_NPOLL])
    if nfds > 0 and p.pollfds[0, 0] >= 0 and (p.pollfds[0, 1] >> 16) != 0:
        c_read(p.pollfds[0, 0], p.timespec.ctypes.data, 8)


@kernel(nrt=False)
def pmd_loop(p, t):
    gen = p.ctl[C_ACK]
    for _ in range(p.ctl[C_MAX_ITER]):
        if load_acquire(p.ctl, C_GEN) != gen:
            return RET_GEN
        if load_acquire(p.ctl, C_STOP) != 0:
            return RET_STOP
        t0 = rdtsc()
        now = _now_ns(p, t0)
        got = 0
        tj = t0
        nrxq = p.ctl[C_NRXQ]
        start = p.ctl[C_RXQ_NEXT] if p.ctl[C_RXQ_NEXT] < nrxq else 0
        for k in range(nrxq):
            j = start + k if start + k < nrxq else start + k - nrxq
            if p.upq_meta.shape[0] - p.ctl[C_UPQ_N] < min(UPQ_ROOM, p.upq_meta.shape[0]):
                # the upcall queue could overflow: leave the packets in their
                # rings until Python has answered, and start here next time
                p.ctl[C_RXQ_NEXT] = j
                break
            n = _poll_rxq(p, t, j, now)
            if n > 0:
                t1 = rdtsc()
                p.rxq_cycles[j] += t1 - tj
                tj = t1
                got += n
        p.stats[S_ITER] += 1
        if got > 0:
            p.ctl[C_IDLE_RUN] = 0
            p.ctl[C_SLEEP_US] = 0
        else:
            p.ctl[C_IDLE_RUN] += 1
            if p.ctl[C_IDLE_RUN] >= p.ctl[C_SPIN_POLLS]:
                _sleep(p)
        t1 = rdtsc()
        if got > 0:
            p.stats[S_BUSY_CYC] += t1 - t0
        else:
            p.stats[S_IDLE_CYC] += t1 - t0
        if p.ctl[C_UPQ_N] > 0:
            return RET_UPCALL
    return RET_ITER


@kernel(nrt=False)
def execute_upcalls(p, t, n, progs, prog_off, prog_len, flows, now):
    """Run progs[prog_off[i]:+prog_len[i]] over upcall entry i < n, credit
    megaflow flows[i] when >= 0, free the slots; entries appended meanwhile
    (userspace actions) move to the front of the queue."""
    for i in range(n):
        m = p.upq_meta[i]
        moved = 0
        if m[U_KIND] == KIND_MISS:
            if flows[i] >= 0:
                _credit(t, flows[i], m[U_LEN], p.upq_key[i], now)
            p.ctl[C_DEPTH] = m[U_ARG]
            moved = execute_actions_call(p, progs, prog_off[i], prog_len[i], m[U_SLOT],
                                         m[U_OFF], m[U_LEN], p.upq_key[i], m[U_IN_PORT])
            p.ctl[C_DEPTH] = 0
        if moved == 0:
            _free_slot(p, m[U_SLOT])
    if p.ctl[C_RCQ_N] > 0:
        drain_recirc(p, t, now)
    flush_touched(p)
    total = p.ctl[C_UPQ_N]
    for k in range(n, total):
        for c in range(U_COLS):
            p.upq_meta[k - n, c] = p.upq_meta[k, c]
        for w in range(p.upq_key.shape[1]):
            p.upq_key[k - n, w] = p.upq_key[k, w]
    p.ctl[C_UPQ_N] = total - n
