"""AF_PACKET port (`type=afpacket`, also `system` and the default): an existing
Linux interface driven through TPACKET_V2 memory-mapped rings.

What: each rxq is one AF_PACKET socket bound to the interface with an RX ring
(several rxqs share the traffic through a PACKET_FANOUT_HASH group); each PMD
gets its own socket with a TX ring from tx_io(pmd_id), so no two threads ever
touch one ring. rx sockets are promiscuous (a PACKET_MR_PROMISC membership,
dropped by the kernel when the socket closes) and set PACKET_IGNORE_OUTGOING,
so the switch never sees what it (or the host) sends out of the interface.
tx sockets have protocol 0 (they receive nothing), PACKET_QDISC_BYPASS, and
PACKET_LOSS (a malformed frame is skipped by the kernel instead of stalling
the ring forever; tx_one refuses such frames itself and counts them as
tx_errors, so the kernel never sees one).

Why TPACKET_V2 rather than V3: V2 hands each frame back individually, which
fits a burst-of-32 poll loop with no block-retire timer adding latency; V3's
variable-size frames only save memory, and rings here are a few MiB.

Ring layout: frame_size is a power of two (2048 for MTU 1500, 16384 for
9000) and block_size = max(page, frame_size), so frame i always starts at
i * frame_size. RX data starts at tp_mac (kernel-chosen), TX data at byte 32
(tp_hdrlen - sizeof(sockaddr_ll)).

Invariants: ring status words are shared with the kernel. Every flag we test
lives in the word's low byte (little-endian hosts), which is read with
load_acquire; a status is written by zeroing the upper three bytes and then
store_release of the low byte, so the kernel sees the whole word change at
once, after the frame's contents (no uint32 view per call: it costs ~18 ns).
tx statuses are masked (the kernel may add timestamp bits to AVAILABLE).
Every length and offset read
from the ring is checked against the frame and the pool slot before copying.
The ring heads live in the io rows (IO_RX_HEAD / IO_TX_HEAD): rx_io(q)
re-synchronises its head with the ring, tx_io(pmd) always returns the same row
object (its head must stay in step with the kernel's, so a PMD keeps using it).

Threads: the Port object belongs to the main thread; rx_burst, tx_one and
tx_flush run on the PMD that owns the io row (or in tests).
"""

import mmap
import socket
import struct

import numpy as np

from pyvswitch.core.intrinsics import load_acquire, memcpy_u8, store_release
from pyvswitch.core.jit import kernel
from pyvswitch.core.libc import MSG_DONTWAIT, c_send
from pyvswitch.core.pool import HEADROOM
from pyvswitch.ports import io as pio
from pyvswitch.ports import netdev
from pyvswitch.ports.base import Port, PortError, register

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_FANOUT = 18
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
TPACKET_V2 = 1
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
ETH_P_ALL = 0x0003

TP_STATUS_USER = 0x1
TP_STATUS_CSUMNOTREADY = 0x8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TP_STATUS_KERNEL = 0
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 0x1
TP_STATUS_SENDING = 0x2
TP_STATUS_WRONG_FORMAT = 0x4
TX_BUSY = 0x7                  # SEND_REQUEST | SENDING | WRONG_FORMAT

# struct tpacket2_hdr field offsets
H_LEN, H_SNAPLEN, H_MAC, H_VLAN_TCI, H_VLAN_TPID = 4, 8, 12, 24, 26
TX_DATA = 32                  # TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)
RX_OVERHEAD = 66 + 22         # tp_mac for Ethernet + header and two VLAN tags
MAX_MTU = 9000

OPTIONS = {"n_rxq": (1, 64, 1), "n_rxq_desc": (64, 16384, 1024),
           "n_txq_desc": (64, 16384, 512)}


def parse_options(options):
    """{name: int} with defaults; PortError for unknown keys or bad values."""
    out = {}
    for key in options:
        if key not in OPTIONS:
            raise PortError(f"unknown option {key!r} (known: {', '.join(sorted(OPTIONS))})")
    for key, (lo, hi, default) in OPTIONS.items():
        raw = options.get(key, default)
        try:
            v = int(raw)
        except (TypeError, ValueError):
            raise PortError(f"option {key}={raw!r}: not an integer") from None
        if not lo <= v <= hi or (key != "n_rxq" and v & (v - 1)):
            what = "a power of two " if key != "n_rxq" else ""
            raise PortError(f"option {key}={raw!r}: must be {what}in [{lo}, {hi}]")
        out[key] = v
    return out


def frame_size_for_mtu(mtu):
    """Ring frame size (power of two, >= 2048) holding a frame of this MTU."""
    need = int(mtu) + RX_OVERHEAD
    size = 2048
    while size < need:
        size *= 2
    return size


def ring_req(frame_size, n_frames, page=mmap.PAGESIZE):
    """struct tpacket_req (block_size, block_nr, frame_size, frame_nr)."""
    block = max(page, frame_size)
    per_block = block // frame_size
    n_blocks = -(-n_frames // per_block)
    return block, n_blocks, frame_size, n_blocks * per_block


# --- kernels ---------------------------------------------------------------

@kernel
def _rd16(mem, o):
    return np.int64(mem[o]) | (np.int64(mem[o + 1]) << 8)


@kernel
def _rd32(mem, o):
    return _rd16(mem, o) | (_rd16(mem, o + 2) << 16)


@kernel
def _sum16(d, a, b, acc):
    """One's-complement accumulation of d[a:b] as big-endian 16-bit words."""
    i = a
    while i + 1 < b:
        acc += (np.int64(d[i]) << 8) | d[i + 1]
        i += 2
    if i < b:
        acc += np.int64(d[i]) << 8
    return acc


@kernel
def complete_l4_csum(d, start, length):
    """Fill in the TCP/UDP checksum of the Ethernet frame d[start:start+length]
    (IPv4, or IPv6 after hop-by-hop/routing/destination options; VLAN tags
    skipped). Used for CHECKSUM_PARTIAL frames from local senders. Returns 1
    when a checksum was written, 0 when the frame is not one we can complete."""
    end = start + length
    p = start + 14
    if p > end:
        return 0
    et = (np.int64(d[p - 2]) << 8) | d[p - 1]
    while (et == 0x8100 or et == 0x88A8) and p + 4 <= end:
        et = (np.int64(d[p + 2]) << 8) | d[p + 3]
        p += 4
    if et == 0x0800:
        if p + 20 > end:
            return 0
        ihl = np.int64(d[p] & 15) * 4
        total = (np.int64(d[p + 2]) << 8) | d[p + 3]
        if ihl < 20 or total < ihl or p + total > end or (d[p + 6] & 0x3F) or d[p + 7]:
            return 0                                  # bad header or a fragment
        proto = np.int64(d[p + 9])
        acc = _sum16(d, p + 12, p + 20, np.int64(0))
        l4, l4end = p + ihl, p + total
    elif et == 0x86DD:
        if p + 40 > end:
            return 0
        proto = np.int64(d[p + 6])
        l4, l4end = p + 40, p + 40 + ((np.int64(d[p + 4]) << 8) | d[p + 5])
        if l4end > end:
            return 0
        acc = _sum16(d, p + 8, p + 40, np.int64(0))
        while (proto == 0 or proto == 43 or proto == 60) and l4 + 8 <= l4end:
            proto = np.int64(d[l4])
            l4 += (np.int64(d[l4 + 1]) + 1) * 8
    else:
        return 0
    if proto == 6:
        co, hmin = 16, 20
    elif proto == 17:
        co, hmin = 6, 8
    else:
        return 0
    if l4 + hmin > l4end:
        return 0
    d[l4 + co] = 0
    d[l4 + co + 1] = 0
    acc = _sum16(d, l4, l4end, acc + proto + (l4end - l4))
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    c = ~acc & 0xFFFF
    if c == 0 and proto == 17:
        c = 0xFFFF
    d[l4 + co] = c >> 8
    d[l4 + co + 1] = c & 0xFF
    return 1


@kernel
def _status(mem, fo):
    return np.int64(load_acquire(mem, fo))


@kernel
def _set_status(mem, fo, v):
    mem[fo + 1] = 0
    mem[fo + 2] = 0
    mem[fo + 3] = 0
    store_release(mem, fo, np.uint8(v))


@kernel
def rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats):
    nframes = io[pio.IO_RX_NFRAMES]
    fsize = io[pio.IO_RX_FRAME_SIZE]
    base = io[pio.IO_RX_OFF]
    head = io[pio.IO_RX_HEAD]
    cap = np.int64(pool.shape[1]) - HEADROOM
    n_max = min(n_max, slots.shape[0], offs.shape[0], lens.shape[0])
    if head < 0 or head >= nframes or base + nframes * fsize > mem.shape[0]:
        return 0
    n = 0
    seen = 0
    while n < n_max and seen < nframes:
        fo = base + head * fsize
        st = _status(mem, fo)
        if (st & TP_STATUS_USER) == 0:
            break
        seen += 1
        length = _rd32(mem, fo + H_LEN)
        snap = _rd32(mem, fo + H_SNAPLEN)
        src = fo + _rd16(mem, fo + H_MAC)
        tag = 4 if st & TP_STATUS_VLAN_VALID else 0
        slot = slots[n]
        if snap < length or snap < 14 or src + snap > fo + fsize:
            qstats[pio.Q_RX_ERRORS] += 1          # truncated (e.g. GSO) or corrupt
        elif snap + tag > cap or slot < 0 or slot >= pool.shape[0]:
            qstats[pio.Q_RX_DROPPED] += 1
        else:
            d = pool[slot]
            if tag:
                tpid = 0x8100
                if st & TP_STATUS_VLAN_TPID_VALID:
                    tpid = _rd16(mem, fo + H_VLAN_TPID)
                tci = _rd16(mem, fo + H_VLAN_TCI)
                memcpy_u8(d, HEADROOM, mem, src, 12)
                d[HEADROOM + 12] = tpid >> 8
                d[HEADROOM + 13] = tpid & 0xFF
                d[HEADROOM + 14] = tci >> 8
                d[HEADROOM + 15] = tci & 0xFF
                memcpy_u8(d, HEADROOM + 16, mem, src + 12, snap - 12)
            else:
                memcpy_u8(d, HEADROOM, mem, src, snap)
            if st & TP_STATUS_CSUMNOTREADY:
                complete_l4_csum(d, HEADROOM, snap + tag)
            offs[n] = HEADROOM
            lens[n] = snap + tag
            qstats[pio.Q_RX_PACKETS] += 1
            qstats[pio.Q_RX_BYTES] += snap + tag
            n += 1
        _set_status(mem, fo, TP_STATUS_KERNEL)
        head += 1
        if head == nframes:
            head = 0
    io[pio.IO_RX_HEAD] = head
    return n


@kernel
def tx_one(mem, io, pool, slot, off, length, qstats):
    nframes = io[pio.IO_TX_NFRAMES]
    fsize = io[pio.IO_TX_FRAME_SIZE]
    head = io[pio.IO_TX_HEAD]
    if (slot < 0 or slot >= pool.shape[0] or off < 0 or length < 14
            or off + length > pool.shape[1] or head < 0 or head >= nframes
            or io[pio.IO_TX_OFF] + nframes * fsize > mem.shape[0]):
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    d = pool[slot]
    maxlen = io[pio.IO_MTU] + 14
    et = (np.int64(d[off + 12]) << 8) | d[off + 13]
    if et == 0x8100 or et == 0x88A8:
        maxlen += 4
    if length > maxlen:                           # the kernel would refuse it
        qstats[pio.Q_TX_MTU_DROPS] += 1
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    if length > fsize - TX_DATA:
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    fo = io[pio.IO_TX_OFF] + head * fsize
    st = _status(mem, fo) & TX_BUSY
    if st == TP_STATUS_WRONG_FORMAT:
        qstats[pio.Q_TX_ERRORS] += 1              # refused earlier: reuse the frame
    elif st != TP_STATUS_AVAILABLE:
        qstats[pio.Q_TX_DROPPED] += 1             # ring full
        return 0
    memcpy_u8(mem, fo + TX_DATA, d, off, length)
    mem[fo + H_LEN] = length & 0xFF
    mem[fo + H_LEN + 1] = (length >> 8) & 0xFF
    mem[fo + H_LEN + 2] = length >> 16
    mem[fo + H_LEN + 3] = 0
    _set_status(mem, fo, TP_STATUS_SEND_REQUEST)
    head += 1
    io[pio.IO_TX_HEAD] = 0 if head == nframes else head
    io[pio.IO_TX_PENDING] += 1
    qstats[pio.Q_TX_PACKETS] += 1
    qstats[pio.Q_TX_BYTES] += length
    return 1


@kernel
def tx_flush(mem, io, qstats):
    if io[pio.IO_TX_PENDING] > 0:
        # One kick sends every SEND_REQUEST frame from the kernel's head on.
        # On failure (device down, queue full) the frames stay queued and
        # pending stays set, so the next flush tries again.
        if c_send(io[pio.IO_FD], 0, 0, MSG_DONTWAIT) >= 0:
            io[pio.IO_TX_PENDING] = 0


# --- control side ------------------------------------------------------------

class _Ring:
    """One AF_PACKET socket with its mmap'd ring and io row."""

    def __init__(self, sock, req, tx, row):
        self.sock = sock
        size = req[0] * req[1]
        self.map = mmap.mmap(sock.fileno(), size, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        self.mem = np.frombuffer(self.map, dtype=np.uint8)
        self.row = row
        self.drops = 0          # PACKET_STATISTICS tp_drops, accumulated
        row[pio.IO_FD] = sock.fileno()
        cols = (pio.IO_TX_OFF, pio.IO_TX_NFRAMES, pio.IO_TX_FRAME_SIZE) if tx else \
            (pio.IO_RX_OFF, pio.IO_RX_NFRAMES, pio.IO_RX_FRAME_SIZE)
        row[cols[0]], row[cols[1]], row[cols[2]] = 0, req[3], req[2]

    def close(self):
        self.mem = None
        try:
            self.map.close()
        except BufferError:
            pass        # a PMD table still refers to it: freed with the last view
        self.sock.close()


def _packet_socket(proto, version=TPACKET_V2):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.setsockopt(SOL_PACKET, PACKET_VERSION, version)
    return s


def _resync_rx_head(mem, row):
    """Point IO_RX_HEAD at the oldest frame the kernel handed us (if any)."""
    n, fs = int(row[pio.IO_RX_NFRAMES]), int(row[pio.IO_RX_FRAME_SIZE])
    st = mem.view(np.uint32)[0:n * fs // 4:fs // 4] & TP_STATUS_USER
    user = np.flatnonzero(st)
    if len(user) == 0 or len(user) == n:
        return
    starts = user[st[user - 1] == 0]          # a user frame after a kernel frame
    row[pio.IO_RX_HEAD] = int(starts[0]) if len(starts) else int(user[0])


@register("afpacket", "system")
class AfPacketPort(Port):
    """An existing Linux interface. Options: n_rxq, n_rxq_desc, n_txq_desc."""

    def __init__(self, name, options=None):
        super().__init__(name, options)
        self.cfg = parse_options(self.options)
        self.n_rxq = self.cfg["n_rxq"]
        self.ifindex = None
        self.frame_size = None
        self._mtu_request = None
        self._rx = []
        self._tx = {}

    # -- open / close
    def open(self):
        if self._rx:
            return
        try:
            self.ifindex = netdev.ifindex(self.name)
            if self._mtu_request is not None:
                netdev.set_mtu(self.name, self._mtu_request)
            netdev.set_up(self.name)
            self.mtu = netdev.get_mtu(self.name)
            self.mac = netdev.get_mac(self.name)
            self.frame_size = frame_size_for_mtu(max(self.mtu, 1500))
            for q in range(self.n_rxq):
                self._rx.append(self._open_rx(q))
        except OSError as e:
            self.close()
            raise PortError(f"could not open network device {self.name} "
                            f"({e.strerror or e})") from None

    def _open_rx(self, queue):
        req = ring_req(self.frame_size, self.cfg["n_rxq_desc"])
        s = _packet_socket(0)
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            s.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("4I", *req))
            ring = _Ring(s, req, False, self._row(queue))
            s.bind((self.name, ETH_P_ALL))
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                         struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b""))
            if self.n_rxq > 1:
                self._join_fanout(s, queue)
            return ring
        except OSError:
            s.close()
            raise

    def _join_fanout(self, s, queue):
        if queue == 0:
            s.setsockopt(SOL_PACKET, PACKET_FANOUT,
                         (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16)
            self._fanout_id = s.getsockopt(SOL_PACKET, PACKET_FANOUT) & 0xFFFF
        else:
            s.setsockopt(SOL_PACKET, PACKET_FANOUT, PACKET_FANOUT_HASH << 16 | self._fanout_id)

    def _row(self, queue):
        row = pio.new_io_row(pio.PT_AFPACKET, queue=queue)
        row[pio.IO_MTU] = self.mtu
        return row

    def close(self):
        for ring in self._rx + list(self._tx.values()):
            ring.close()
        self._rx, self._tx = [], {}

    # -- datapath hand-out
    def rx_io(self, queue):
        ring = self._rx[queue]
        _resync_rx_head(ring.mem, ring.row)
        return ring.row, ring.mem

    def tx_io(self, pmd_id):
        if not self._rx:
            raise PortError(f"{self.name}: port is not open")
        ring = self._tx.get(pmd_id)
        if ring is None:
            req = ring_req(self.frame_size, self.cfg["n_txq_desc"])
            s = _packet_socket(0)
            try:
                s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
                s.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
                s.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack("4I", *req))
                ring = _Ring(s, req, True, self._row(pmd_id))
                s.bind((self.name, 0))
            except OSError as e:
                s.close()
                raise PortError(f"{self.name}: tx ring: {e.strerror or e}") from None
            self._tx[pmd_id] = ring
        return ring.row, ring.mem

    def poll_fds(self):
        return [r.sock.fileno() for r in self._rx]

    # -- state
    def link_up(self):
        try:
            return netdev.carrier(self.name)
        except OSError:
            return False

    def set_mtu(self, mtu):
        """mtu_request: applied now, or at open(). Above the ring frame size an
        open port must be closed and reopened (PortError says so)."""
        mtu = int(mtu)
        if not 68 <= mtu <= MAX_MTU:
            raise PortError(f"{self.name}: mtu {mtu} out of range [68, {MAX_MTU}]")
        self._mtu_request = mtu
        if not self._rx:
            return
        if frame_size_for_mtu(mtu) > self.frame_size:
            raise PortError(f"{self.name}: mtu {mtu} needs larger rings: reopen the port")
        try:
            netdev.set_mtu(self.name, mtu)
        except OSError as e:
            raise PortError(f"{self.name}: could not set mtu {mtu} ({e.strerror})") from None
        self.mtu = mtu
        for ring in self._rx + list(self._tx.values()):
            ring.row[pio.IO_MTU] = mtu

    def kernel_drops(self):
        """Frames the kernel dropped because an rx ring was full (since open)."""
        total = 0
        for ring in self._rx:
            _, drops = struct.unpack("II", ring.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            ring.drops += drops             # reading resets the kernel's count
            total += ring.drops
        return total

    def status(self):
        return {"driver_name": "af_packet", "rx_ring_frames": str(self.cfg["n_rxq_desc"]),
                "tx_ring_frames": str(self.cfg["n_txq_desc"]),
                "frame_size": str(self.frame_size), "n_rxq": str(self.n_rxq)}
