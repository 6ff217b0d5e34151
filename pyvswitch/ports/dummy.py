"""The dummy port: frames in and out through rings in shared memory (tests).

Each rx queue and each PMD's tx path is one *ring memory* (an Arena):

    bytes 0..63    header, int64 words: H_PROD, H_CONS, H_KICK, scratch
    bytes 64..     n_frames frames of frame_size bytes; a frame is a 4-byte
                   little-endian length then the data

Rx: `inject(frame, queue)` (test side) writes a frame at H_PROD, publishes it
with a release store, sets H_KICK and writes the queue's eventfd (the io row's
IO_FD, what an idle PMD sleeps on). The rx_burst kernel consumes from H_CONS,
and drains the eventfd when it finds the ring empty with H_KICK set.
Tx: tx_one (one PMD per ring) writes at H_PROD and publishes it immediately;
`capture()` (test side) takes everything published on every tx ring. A full
ring drops (rx: inject returns False; tx: tx_dropped).

Options: n_rxq (default 1), ring_size (frames, default 1024), mtu, mac
(aa:bb:..). Control-side methods run on the main/test thread; the kernels in
the PMD thread that owns the io row.
"""

import os

import numpy as np

from pyvswitch.core.intrinsics import load_acquire, memcpy_u8, store_release
from pyvswitch.core.jit import kernel
from pyvswitch.core.libc import c_read
from pyvswitch.core.pool import HEADROOM, data_size_for_mtu
from pyvswitch.core.shm import Arena
from pyvswitch.ports import io as pio
from pyvswitch.ports.base import Port, PortError, register

H_PROD, H_CONS, H_KICK, H_SCRATCH = 0, 1, 2, 7
HDR = 64
LEN_BYTES = 4


@kernel(nrt=False)
def _frame_len(mem, p):
    return (np.int64(mem[p]) | (np.int64(mem[p + 1]) << 8) | (np.int64(mem[p + 2]) << 16)
            | (np.int64(mem[p + 3]) << 24))


@kernel(nrt=False)
def rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats):
    hdr = mem[:HDR].view(np.int64)
    prod = load_acquire(hdr, H_PROD)
    cons = hdr[H_CONS]
    nfr, fsz, base = io[pio.IO_RX_NFRAMES], io[pio.IO_RX_FRAME_SIZE], io[pio.IO_RX_OFF]
    room = pool.shape[1] - HEADROOM
    n = 0
    while cons != prod and n < n_max:
        p = base + (cons % nfr) * fsz
        cons += 1
        ln = _frame_len(mem, p)
        if ln <= 0 or ln > fsz - LEN_BYTES or ln > room or p + fsz > mem.shape[0]:
            qstats[pio.Q_RX_ERRORS] += 1
            continue
        memcpy_u8(pool[slots[n]], HEADROOM, mem, p + LEN_BYTES, ln)
        offs[n] = HEADROOM
        lens[n] = ln
        qstats[pio.Q_RX_PACKETS] += 1
        qstats[pio.Q_RX_BYTES] += ln
        n += 1
    store_release(hdr, H_CONS, cons)
    if n == 0 and load_acquire(hdr, H_KICK) != 0:
        store_release(hdr, H_KICK, 0)
        if io[pio.IO_FD] >= 0:
            c_read(io[pio.IO_FD], mem.ctypes.data + H_SCRATCH * 8, 8)
    return n


@kernel(nrt=False)
def tx_one(mem, io, pool, slot, off, length, qstats):
    hdr = mem[:HDR].view(np.int64)
    prod = hdr[H_PROD]
    cons = load_acquire(hdr, H_CONS)
    nfr, fsz, base = io[pio.IO_TX_NFRAMES], io[pio.IO_TX_FRAME_SIZE], io[pio.IO_TX_OFF]
    if (prod - cons >= nfr or length <= 0 or length > fsz - LEN_BYTES or off < 0
            or off + length > pool.shape[1]):
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    p = base + (prod % nfr) * fsz
    for i in range(LEN_BYTES):
        mem[p + i] = (length >> (8 * i)) & 0xFF
    memcpy_u8(mem, p + LEN_BYTES, pool[slot], off, length)
    store_release(hdr, H_PROD, prod + 1)
    qstats[pio.Q_TX_PACKETS] += 1
    qstats[pio.Q_TX_BYTES] += length
    return 1


@kernel(nrt=False)
def tx_flush(mem, io, qstats):
    return None                  # tx_one already published the frame


class _Ring:
    def __init__(self, name, n_frames, frame_size, rundir):
        self.n_frames, self.frame_size = n_frames, frame_size
        self.arena = Arena(name, HDR + n_frames * frame_size, rundir)
        self.mem = self.arena.alloc(np.uint8, (HDR + n_frames * frame_size,))
        self.hdr = self.mem[:HDR].view(np.int64)

    def put(self, frame):
        prod, cons = int(self.hdr[H_PROD]), int(load_acquire(self.hdr, H_CONS))
        if prod - cons >= self.n_frames or len(frame) > self.frame_size - LEN_BYTES:
            return False
        p = HDR + (prod % self.n_frames) * self.frame_size
        self.mem[p:p + LEN_BYTES] = np.frombuffer(len(frame).to_bytes(LEN_BYTES, "little"), np.uint8)
        self.mem[p + LEN_BYTES:p + LEN_BYTES + len(frame)] = np.frombuffer(frame, np.uint8)
        store_release(self.hdr, H_PROD, prod + 1)
        return True

    def take_all(self):
        out = []
        prod, cons = int(load_acquire(self.hdr, H_PROD)), int(self.hdr[H_CONS])
        while cons != prod:
            p = HDR + (cons % self.n_frames) * self.frame_size
            ln = int.from_bytes(bytes(self.mem[p:p + LEN_BYTES]), "little")
            out.append(bytes(self.mem[p + LEN_BYTES:p + LEN_BYTES + ln]))
            cons += 1
        store_release(self.hdr, H_CONS, cons)
        return out


@register("dummy")
class DummyPort(Port):
    def __init__(self, name, options=None, rundir=""):
        super().__init__(name, options)
        known = {"n_rxq", "ring_size", "mtu", "mac"}
        bad = set(self.options) - known
        if bad:
            raise PortError(f"{name}: unknown option(s) {', '.join(sorted(bad))}")
        try:
            self.n_rxq = int(self.options.get("n_rxq", 1))
            self.ring_size = int(self.options.get("ring_size", 1024))
            self.mtu = int(self.options.get("mtu", 1500))
            mac = self.options.get("mac")
            self.mac = bytes.fromhex(mac.replace(":", "")) if mac else os.urandom(6)
        except ValueError as e:
            raise PortError(f"{name}: bad option value ({e})") from None
        if self.n_rxq < 1 or self.ring_size < 1 or len(self.mac) != 6:
            raise PortError(f"{name}: bad option value")
        self.rundir = rundir
        self._rx, self._tx, self._efds = [], {}, []
        self._open = False

    def _frame_size(self):
        return LEN_BYTES + data_size_for_mtu(self.mtu)

    def open(self):
        if self._open:
            return
        for q in range(self.n_rxq):
            self._rx.append(_Ring(f"dummy.{self.name}.rx{q}", self.ring_size, self._frame_size(),
                                  self.rundir))
            self._efds.append(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))
        self._open = True

    def close(self):
        for fd in self._efds:
            os.close(fd)
        self._efds, self._rx, self._tx = [], [], {}
        self._open = False

    def rx_io(self, queue):
        r = self._rx[queue]
        row = pio.new_io_row(pio.PT_DUMMY, queue=queue, fd=self._efds[queue])
        row[pio.IO_RX_OFF], row[pio.IO_RX_NFRAMES], row[pio.IO_RX_FRAME_SIZE] = HDR, r.n_frames, r.frame_size
        row[pio.IO_MTU] = self.mtu
        return row, r.mem

    def tx_io(self, pmd_id):
        r = self._tx.get(pmd_id)
        if r is None:
            r = self._tx[pmd_id] = _Ring(f"dummy.{self.name}.tx{pmd_id}", self.ring_size,
                                         self._frame_size(), self.rundir)
        row = pio.new_io_row(pio.PT_DUMMY, queue=pmd_id)
        row[pio.IO_TX_OFF], row[pio.IO_TX_NFRAMES], row[pio.IO_TX_FRAME_SIZE] = HDR, r.n_frames, r.frame_size
        row[pio.IO_MTU] = self.mtu
        return row, r.mem

    def poll_fds(self):
        return list(self._efds)

    # ---- test side ----
    def inject(self, frame, queue=0):
        """A frame arrives at the port; False if the rx ring is full."""
        ring = self._rx[queue]
        if not ring.put(bytes(frame)):
            return False
        store_release(ring.hdr, H_KICK, 1)
        os.eventfd_write(self._efds[queue], 1)
        return True

    def capture(self):
        """Frames the switch transmitted since the last call (all tx rings)."""
        out = []
        for pmd_id in sorted(self._tx):
            out.extend(self._tx[pmd_id].take_all())
        return out

    admin_up = True         # netdev-dummy/set-admin-state: link state for tests

    def link_up(self):
        return self.admin_up

    def status(self):
        return {"n_rxq": str(self.n_rxq)}
