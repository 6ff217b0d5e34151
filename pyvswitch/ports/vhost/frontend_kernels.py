"""Compiled bursts on the front-end's rings (pvs-testpmd, pvs-pktgen).

All rings of all ports live in one DriverMemory (`mem`), so one kernel call
can move frames between ports. A ring is one row of an int64 table R:

    R[r] = desc, avail, used, n, bufs, buf_size, avail_idx, used_seen,
           kick fd (-1 none), the constant 1 (eventfd write buffer), kicks sent

(offsets into mem; row 2p = RX ring of port p (vring 2q), 2p+1 = its TX ring).
tx_publish kicks the back-end like virtio-user does: after publishing
avail.idx, a full fence, then a kick unless used.flags has NO_NOTIFY (a
polling back-end sets it; a sleeping one clears it and waits for the kick).
Descriptor i always owns buffer i: RX descriptors are written once (writable,
buf_size) and only their ids are re-posted; a TX packet goes into the slot
avail_idx mod n. That needs a back-end that completes one-descriptor chains
in order, which ours and DPDK's vhost PMD do. Frames carry the 12-byte
virtio-net header (VERSION_1 / MRG_RXBUF); RX frames spanning several buffers
(num_buffers > 1) are not expected (2 KiB buffers) and are counted and dropped.

    rx_poll(mem, R, r, burst, offs, lens, ids) -> k
    rx_refill(mem, R, r, ids, k)
    tx_room(mem, R, r) -> free slots
    tx_put(mem, R, r, gpa, src, ln) -> mem offset of the frame copy
    tx_publish(mem, R, r)
    fwd_rounds(...)   testpmd forwarding modes, `rounds` polls of every port
    pg_rounds(...)    pktgen: rate-limited TX with seq/TSC stamps, RX + latency
    tsc()             the CPU's time-stamp counter (ns when not compiled)
"""

import time

import numpy as np

from pyvswitch.core.intrinsics import fence_seq_cst
from pyvswitch.core.jit import JIT
from pyvswitch.core.libc import c_write
from pyvswitch.ports.vhost._jit import hot
from pyvswitch.ports.vhost.memops import (ld16, ld16_acquire, ld32, ld64, st16, st16_release, st32,
                                          st64)

HDR = 12
DESC, AVAIL, USED, N, BUFS, BSZ, AIDX, USEEN, KICK, ONE, KICKS = range(11)
R_COLS = 11
VRING_USED_F_NO_NOTIFY = 1
IO, MAC, MACSWAP, RXONLY, TXONLY = range(5)
MODES = {"io": IO, "mac": MAC, "macswap": MACSWAP, "rxonly": RXONLY, "txonly": TXONLY}
# port stats columns
S_RX, S_TX, S_DROP, S_RXB, S_TXB, S_BAD = range(6)
NSTATS = 8
# pktgen state words
(G_SENT, G_COUNT, G_NEXT, G_CPP, G_RX, G_RXB, G_LATN, G_LATSUM, G_LATMIN, G_LATMAX,
 G_FLOWS, G_BAD, G_TXON, G_RXON, G_DROP) = range(15)
NGEN = 16
MAGIC = 0x47535650                 # "PVSG" at UDP payload offset 0 (frame offset 42)
OFF_MAGIC, OFF_SEQ, OFF_TS = 42, 46, 54
MIN_STAMPED = 62


def rdtsc():
    return time.perf_counter_ns()


if JIT:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload

    @intrinsic
    def _readcyclecounter(typingctx):
        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                                "llvm.readcyclecounter")
            return builder.call(fn, [])
        return types.int64(), codegen

    @overload(rdtsc, inline="always")
    def _rdtsc_ov():
        return lambda: _readcyclecounter()


@hot
def tsc():
    return rdtsc()


def tsc_hz(seconds=0.05):
    """Calibrate tsc() against the monotonic clock."""
    tsc()                                   # compile first
    t0, c0 = time.perf_counter_ns(), tsc()
    time.sleep(seconds)
    t1, c1 = time.perf_counter_ns(), tsc()
    return (c1 - c0) * 1e9 / max(1, t1 - t0)


@hot
def rx_poll(mem, R, r, burst, offs, lens, ids):
    used, n, seen = R[r, USED], R[r, N], R[r, USEEN]
    k = (ld16_acquire(mem, used + 2) - seen) & 0xFFFF
    if k > burst:
        k = burst
    for j in range(k):
        e = used + 4 + 8 * ((seen + j) & (n - 1))
        i = ld32(mem, e)
        if i >= n:
            i = 0
        ids[j] = i
        offs[j] = R[r, BUFS] + i * R[r, BSZ] + HDR
        lens[j] = ld32(mem, e + 4) - HDR
    R[r, USEEN] = (seen + k) & 0xFFFF
    return k


@hot
def rx_refill(mem, R, r, ids, k):
    avail, n, a = R[r, AVAIL], R[r, N], R[r, AIDX]
    for j in range(k):
        st16(mem, avail + 4 + 2 * ((a + j) & (n - 1)), ids[j])
    a = (a + k) & 0xFFFF
    R[r, AIDX] = a
    st16_release(mem, avail + 2, a)


@hot
def tx_room(mem, R, r):
    return R[r, N] - ((R[r, AIDX] - ld16_acquire(mem, R[r, USED] + 2)) & 0xFFFF)


@hot
def tx_put(mem, R, r, gpa, src, ln):
    n, a = R[r, N], R[r, AIDX]
    i = a & (n - 1)
    o = R[r, BUFS] + i * R[r, BSZ]
    for b in range(HDR):
        mem[o + b] = 0
    dst = o + HDR
    for b in range(ln):
        mem[dst + b] = mem[src + b]
    d = R[r, DESC] + 16 * i
    st64(mem, d, gpa + o)
    st32(mem, d + 8, ln + HDR)
    st32(mem, d + 12, 0)
    st16(mem, R[r, AVAIL] + 4 + 2 * i, i)
    R[r, AIDX] = (a + 1) & 0xFFFF
    return dst


@hot
def kick_if_wanted(mem, used, fd, one_addr):
    """After publishing avail.idx: full fence, then write the kick eventfd
    (8 bytes at one_addr, holding 1) unless used.flags has NO_NOTIFY (the
    back-end clears it, fences, then re-reads avail.idx before it sleeps).
    Returns 1 if it kicked."""
    if fd < 0:
        return 0
    fence_seq_cst()
    if (ld16(mem, used) & VRING_USED_F_NO_NOTIFY) != 0:
        return 0
    c_write(fd, one_addr, 8)
    return 1


@hot
def kick(mem, R, r):
    R[r, KICKS] += kick_if_wanted(mem, R[r, USED], R[r, KICK],
                                  R.ctypes.data + (r * R.shape[1] + ONE) * 8)


@hot
def tx_publish(mem, R, r):
    st16_release(mem, R[r, AVAIL] + 2, R[r, AIDX])
    kick(mem, R, r)


@hot
def _set_mac(mem, o, mac):
    for b in range(6):
        mem[o + b] = mac[b]


@hot
def fwd_rounds(mem, R, gpa, nports, peer, mode, burst, rounds, stats, src_macs, dst_macs,
               tmpl_off, tlen, offs, lens, ids):
    """`rounds` polls of every port. io/mac/macswap: RX of port p -> TX of
    peer[p]; rxonly: count and free; txonly: fill the TX ring with the frame
    at mem[tmpl_off:tmpl_off+tlen] (RX is drained too). Returns the number of
    frames moved."""
    moved = 0
    for _ in range(rounds):
        for p in range(nports):
            rr = 2 * p
            if mode == TXONLY:
                tr = 2 * p + 1
                room = tx_room(mem, R, tr)
                if room > burst:
                    room = burst
                if room > 0:
                    for j in range(room):
                        tx_put(mem, R, tr, gpa, tmpl_off, tlen)
                    tx_publish(mem, R, tr)
                    stats[p, S_TX] += room
                    stats[p, S_TXB] += room * tlen
                    moved += room
            k = rx_poll(mem, R, rr, burst, offs, lens, ids)
            if k == 0:
                continue
            stats[p, S_RX] += k
            for j in range(k):
                stats[p, S_RXB] += lens[j]
            if mode == RXONLY or mode == TXONLY:
                rx_refill(mem, R, rr, ids, k)
                moved += k
                continue
            q = peer[p]
            tr = 2 * q + 1
            room = tx_room(mem, R, tr)
            m = k if k < room else room
            for j in range(m):
                ln = lens[j]
                if ln < 14 or ln > R[tr, BSZ] - HDR:
                    stats[p, S_BAD] += 1
                    continue
                o = tx_put(mem, R, tr, gpa, offs[j], ln)
                if mode == MAC:
                    _set_mac(mem, o, dst_macs[q])
                    _set_mac(mem, o + 6, src_macs[q])
                elif mode == MACSWAP:
                    for b in range(6):
                        t = mem[o + b]
                        mem[o + b] = mem[o + 6 + b]
                        mem[o + 6 + b] = t
                stats[q, S_TX] += 1
                stats[q, S_TXB] += ln
            if m > 0:
                tx_publish(mem, R, tr)
            stats[q, S_DROP] += k - m
            rx_refill(mem, R, rr, ids, k)
            moved += k
    return moved


@hot
def _ip_csum(mem, o):
    """Recompute the IPv4 header checksum of the header at o (IHL from byte 0)."""
    ihl = (mem[o] & 0xF) * 4
    mem[o + 10] = 0
    mem[o + 11] = 0
    s = 0
    for b in range(0, ihl, 2):
        s += (np.int64(mem[o + b]) << 8) | mem[o + b + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    mem[o + 10] = s >> 8
    mem[o + 11] = s & 0xFF


@hot
def pg_rounds(mem, R, gpa, txr, rxr, burst, rounds, g, lat, tmpl_off, tlen, offs, lens, ids):
    """pktgen: `rounds` polls. TX (g[G_TXON]) on ring txr: frames from the
    template with flow = seq mod flows written into the low 16 bits of the
    source IP and the UDP source port (IPv4 checksum redone), seq and TSC
    stamped into the payload, paced by g[G_NEXT] / g[G_CPP] (TSC cycles per
    packet << 10; 0 = as fast as the ring allows) until g[G_COUNT] (0 = no
    limit). RX (g[G_RXON]) on ring rxr: count, latency of stamped frames into
    lat (a ring of the last len(lat) samples, in TSC cycles)."""
    nlat = lat.shape[0]
    for _ in range(rounds):
        if g[G_TXON] != 0 and (g[G_COUNT] == 0 or g[G_SENT] < g[G_COUNT]):
            now = rdtsc()
            k = burst
            if g[G_CPP] != 0:
                if now < g[G_NEXT]:
                    k = 0
                else:
                    behind = ((now - g[G_NEXT]) << 10) // g[G_CPP] + 1
                    if behind < k:
                        k = behind
            if g[G_COUNT] != 0 and g[G_COUNT] - g[G_SENT] < k:
                k = g[G_COUNT] - g[G_SENT]
            room = tx_room(mem, R, txr)
            if k > room:
                k = room
            if k > 0:
                flows = g[G_FLOWS]
                for j in range(k):
                    seq = g[G_SENT] + j
                    o = tx_put(mem, R, txr, gpa, tmpl_off, tlen)
                    if flows > 1:
                        f = seq % flows
                        mem[o + 28] = (f >> 8) & 0xFF
                        mem[o + 29] = f & 0xFF
                        sp = 1024 + (f & 0x7FFF)
                        mem[o + 34] = sp >> 8
                        mem[o + 35] = sp & 0xFF
                        _ip_csum(mem, o + 14)
                    if tlen >= MIN_STAMPED:
                        st64(mem, o + OFF_SEQ, seq)
                        st64(mem, o + OFF_TS, rdtsc())
                tx_publish(mem, R, txr)
                g[G_SENT] += k
                if g[G_CPP] != 0:
                    g[G_NEXT] += (k * g[G_CPP]) >> 10
        if g[G_RXON] != 0:
            k = rx_poll(mem, R, rxr, burst, offs, lens, ids)
            if k > 0:
                now = rdtsc()
                for j in range(k):
                    o, ln = offs[j], lens[j]
                    g[G_RX] += 1
                    g[G_RXB] += ln
                    if ln >= MIN_STAMPED and ld32(mem, o + OFF_MAGIC) == MAGIC:
                        d = now - ld64(mem, o + OFF_TS)
                        if d < 0:
                            d = 0
                        lat[g[G_LATN] % nlat] = d
                        g[G_LATN] += 1
                        g[G_LATSUM] += d
                        if d < g[G_LATMIN]:
                            g[G_LATMIN] = d
                        if d > g[G_LATMAX]:
                            g[G_LATMAX] = d
                    else:
                        g[G_BAD] += 1
                rx_refill(mem, R, rxr, ids, k)


def ring_row(ring, kick_fd=-1):
    return [ring.desc, ring.avail, ring.used, ring.n, ring.bufs, ring.buf_size, ring.avail_idx,
            ring.used_seen, kick_fd, 1, 0]


def ring_table(fes):
    """R for VirtioUser front-ends sharing one DriverMemory (queue 0 each)."""
    rows = []
    for fe in fes:
        rows += [ring_row(fe.rx[0], fe.kicks[0]), ring_row(fe.tx[0], fe.kicks[1])]
    return np.array(rows, dtype=np.int64).reshape(-1, R_COLS)


def ring_table_back(fes, R):
    """Hand the indices back to the Python Vrings (before fe.stop/close)."""
    for p, fe in enumerate(fes):
        for ring, r in ((fe.rx[0], 2 * p), (fe.tx[0], 2 * p + 1)):
            ring.avail_idx, ring.used_seen = int(R[r, AIDX]), int(R[r, USEEN])
