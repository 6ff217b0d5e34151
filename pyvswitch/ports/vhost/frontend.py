"""A virtio-user front-end: the driver side of vhost-user, switch-independent.

    fe = VirtioUser(path, server=False, queues=1, qsize=256, mem_size=16 MiB,
                    gpa_base=None)
    fe.start()                   connect (or listen and accept), negotiate,
                                 SET_MEM_TABLE (one memfd region), set up and
                                 enable every ring, SET_STATUS DRIVER_OK
    fe.send(frames, q=0) -> n    queue frames on TX queue q (vring 2q+1)
    fe.recv(q=0) -> [frames]     frames the back-end delivered on RX queue q
    fe.blast(frame, n, q=0)      compiled: re-post one frame n times (load)
    fe.send_rarp(mac)            SEND_RARP (as QEMU after a live migration)
    fe.close()

    gmem=DriverMemory(...) puts the rings in a memory shared with other
    front-ends (one compiled kernel then serves them all: frontend_kernels).

Works against our own port types and against DPDK's vhost PMD. Memory is a
memfd (DriverMemory), rings and buffers come from driver.Vring. The RX ring
is kept full of 2 KiB writable buffers; MRG_RXBUF frames are merged. Kicks
as virtio-user: after each batch, unless the back-end set NO_NOTIFY in
used.flags (a polling back-end does; a sleeping one clears it and waits for
the kick). Calls are not wanted: a poll-mode driver, like DPDK's, sets
VRING_AVAIL_F_NO_INTERRUPT on every ring (a back-end honouring it saves an
eventfd write per burst). Single thread; not for the
switch's PMDs.
"""

import os
import socket
import time

import numpy as np

from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost import protocol as P
from pyvswitch.ports.vhost._jit import hot
from pyvswitch.ports.vhost.driver import DriverMemory, Vring
from pyvswitch.ports.vhost.frontend_kernels import kick_if_wanted
from pyvswitch.ports.vhost.memops import ld16, st16_release

WANT = (1 << L.F_VERSION_1) | (1 << L.F_MRG_RXBUF) | (1 << L.F_PROTOCOL_FEATURES) | (1 << L.F_MQ)
WANT_PROTO = (1 << P.PF_MQ) | (1 << P.PF_REPLY_ACK) | (1 << P.PF_STATUS) | (1 << P.PF_RARP)


@hot
def blast_kernel(mem, desc, avail, used, n, bufs, buf_size, gpa_bufs, length, count, avail_idx,
                 kick_fd, one_addr):
    """Post `count` one-descriptor TX chains whose buffers already hold the
    frame (descriptor i -> buffer i); waits for room by polling used.idx;
    kicks after each batch when the back-end wants it. Returns the new
    avail idx."""
    posted = 0
    spins = 0
    while posted < count and spins < 100000000:
        room = n - ((avail_idx - ld16(mem, used + 2)) & 0xFFFF)
        if room <= 0:
            spins += 1
            continue
        k = min(room, count - posted, 32)
        for j in range(k):
            i = (avail_idx + j) & (n - 1)
            o = desc + 16 * i
            a = gpa_bufs + i * buf_size
            for b in range(8):
                mem[o + b] = (a >> (8 * b)) & 0xFF
            for b in range(4):
                mem[o + 8 + b] = (length >> (8 * b)) & 0xFF
            mem[o + 12] = 0
            mem[o + 13] = 0
            st16_release(mem, avail + 4 + 2 * i, i)
        avail_idx = (avail_idx + k) & 0xFFFF
        st16_release(mem, avail + 2, avail_idx)
        kick_if_wanted(mem, used, kick_fd, one_addr)
        posted += k
    return avail_idx


class VirtioUser:
    def __init__(self, path, server=False, queues=1, qsize=256, mem_size=16 << 20, gpa_base=None,
                 gmem=None):
        self.path, self.server, self.queues, self.qsize = path, server, queues, qsize
        self._own_mem = gmem is None
        self.g = DriverMemory(mem_size, gpa_base) if gmem is None else gmem
        self.rx = [Vring(self.g, qsize) for _ in range(queues)]
        self.tx = [Vring(self.g, qsize) for _ in range(queues)]
        self.kicks = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(2 * queues)]
        self.calls = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(2 * queues)]
        self.sock = self._listener = None
        self.features = self.proto = 0
        self._one = np.ones(1, np.int64)              # eventfd write buffer
        self.kicks_sent = 0

    # -- control
    def _open_socket(self, timeout):
        if not self.server:
            end = time.monotonic() + timeout
            while True:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(self.path)
                    return s
                except OSError:
                    s.close()
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.05)
        self.listen()
        self._listener.settimeout(timeout)
        return self._listener.accept()[0]

    def listen(self):
        """Server mode: bind and listen now (start() accepts); idempotent."""
        if self._listener is None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(self.path)
            self._listener.listen(1)

    def _ask(self, req, payload=b""):
        P.send_msg(self.sock, req, payload)
        r = P.recv_msg(self.sock)
        r.close_fds()
        if r.req != req or r.flags != P.REPLY_FLAGS:
            raise P.ProtocolError(f"bad reply to {P.NAMES.get(req, req)}: {r!r}")
        return r

    def _send(self, req, payload=b"", fds=(), ack=False):
        flags = P.VERSION
        if ack and self.proto & (1 << P.PF_REPLY_ACK):
            flags |= P.NEED_REPLY
        P.send_msg(self.sock, req, payload, fds, flags)
        if flags & P.NEED_REPLY:
            r = P.recv_msg(self.sock)
            if r.u64() != 0:
                raise P.ProtocolError(f"{P.NAMES.get(req, req)} refused")

    def start(self, timeout=10.0):
        self.sock = self._open_socket(timeout)
        self.sock.settimeout(timeout)
        u64, st = P.U64.pack, P.STATE.pack
        self._send(P.SET_OWNER)
        offered = self._ask(P.GET_FEATURES).u64()
        self.features = offered & WANT
        if self.features & (1 << L.F_PROTOCOL_FEATURES):
            self.proto = self._ask(P.GET_PROTOCOL_FEATURES).u64() & WANT_PROTO
            self._send(P.SET_PROTOCOL_FEATURES, u64(self.proto))
            if self.proto & (1 << P.PF_MQ) and self._ask(P.GET_QUEUE_NUM).u64() < self.queues:
                raise P.ProtocolError("back-end has fewer queue pairs")
        self._send(P.SET_FEATURES, u64(self.features))
        self._send(P.SET_MEM_TABLE, P.pack_mem_table([self.g.region()]), [self.g.fd], ack=True)
        for q in range(self.queues):
            for i, ring in ((2 * q, self.rx[q]), (2 * q + 1, self.tx[q])):
                ring.set_avail_flags(L.VRING_AVAIL_F_NO_INTERRUPT)      # we poll
                self._send(P.SET_VRING_NUM, st(i, ring.n))
                self._send(P.SET_VRING_BASE, st(i, 0))
                self._send(P.SET_VRING_ADDR, ring.addr_payload(i))
                self._send(P.SET_VRING_CALL, u64(i), [self.calls[i]])
                self._send(P.SET_VRING_KICK, u64(i), [self.kicks[i]])
            self.rx[q].post_rx()
            self._kick(2 * q)
        for i in range(2 * self.queues):
            self._send(P.SET_VRING_ENABLE, st(i, 1))
        if self.proto & (1 << P.PF_STATUS):
            self._send(P.SET_STATUS, u64(0xF), ack=True)

    def stop(self):
        """Disable the rings and ask for their bases, like virtio-user does."""
        bases = []
        for i in range(2 * self.queues):
            self._send(P.SET_VRING_ENABLE, P.STATE.pack(i, 0))
        for i in range(2 * self.queues):
            bases.append(self._ask(P.GET_VRING_BASE, P.STATE.pack(i, 0)).state()[1])
        return bases

    def send_rarp(self, mac):
        """Ask the back-end to announce `mac` (6 bytes or "aa:bb:..") with a
        RARP from this port; needs the RARP protocol feature."""
        if isinstance(mac, str):
            mac = bytes.fromhex(mac.replace(":", ""))
        if not self.proto & (1 << P.PF_RARP):
            raise P.ProtocolError("back-end did not offer the RARP protocol feature")
        self._send(P.SEND_RARP, bytes(mac)[:6].ljust(8, b"\0"), ack=True)

    def _kick(self, i):
        ring = self.tx[i // 2] if i % 2 else self.rx[i // 2]
        self.kicks_sent += int(kick_if_wanted(self.g.mem, ring.used, self.kicks[i],
                                              self._one.ctypes.data))

    # -- data
    def send(self, frames, q=0):
        ring = self.tx[q]
        ring.reap()
        n = 0
        for f in frames:
            if not ring.post_tx(f):
                break
            n += 1
        self._kick(2 * q + 1)
        return n

    def recv(self, q=0):
        ring = self.rx[q]
        frames = ring.rx_frames(12 if self.features & ((1 << L.F_VERSION_1) | (1 << L.F_MRG_RXBUF)) else 10)
        if ring.free:
            ring.post_rx()
            self._kick(2 * q)
        return frames

    def blast(self, frame, count, q=0):
        """Send one frame `count` times through the compiled kernel."""
        ring = self.tx[q]
        data = np.frombuffer(bytes(12) + bytes(frame), np.uint8)
        for i in range(ring.n):
            o = ring.bufs + i * ring.buf_size
            self.g.mem[o:o + len(data)] = data
        ring.reap()
        ring.free = []                                # the kernel owns the ring now
        idx = blast_kernel(self.g.mem, ring.desc, ring.avail, ring.used, ring.n, ring.bufs,
                           ring.buf_size, ring.g.gpa + ring.bufs, len(data), count, ring.avail_idx,
                           self.kicks[2 * q + 1], self._one.ctypes.data)
        ring.avail_idx = int(idx)

    def close(self):
        for s in (self.sock, self._listener):
            if s is not None:
                s.close()
        if self._listener is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        for fd in self.kicks + self.calls:
            os.close(fd)
        self.kicks = self.calls = []
        if self._own_mem:
            self.g.close()


_unused = ld16
