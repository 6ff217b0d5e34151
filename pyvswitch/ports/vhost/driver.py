"""The driver side of split virtqueues over memfd memory (front-end, tests).

    gmem = DriverMemory(size, gpa_base=None)   a memfd mapped here; gpa_base
                  None: guest-physical = our virtual address (like DPDK
                  virtio-user), else a separate guest-physical space starting
                  at gpa_base (like QEMU) - the two address spaces differ
    gmem.region() -> (gpa, size, uva, mmap_offset); gmem.fd
    q = Vring(gmem, off, n, buf_size)          desc table, avail, used and n
                  buffers of buf_size bytes carved out at gmem offset off
    q.addr_payload(index, log=None)            SET_VRING_ADDR payload
    q.post_tx(frame, hdr_len=12, chunks=None)  one chain (split in chunks; by
                  default one buffer, or as many full buffers as needed)
    q.post_rx(count=None)                      writable chains, one buffer each
    q.reap() -> [(id, len)]                    new used elements
    q.rx_frames(hdr_len) -> [bytes]            reap an RX ring, merge buffers
    q.set_desc(i, addr, len, flags, next) / q.push_avail(head) / q.publish()
                  raw access for malformed-ring tests

Plain Python (the slow, readable side); frontend.py adds compiled bursts.
The memory layout of one Vring at `off`: desc table (16n), avail ring
(6 + 2n, 2-aligned), used ring (6 + 8n at a 4096 boundary), buffers.
"""

import ctypes
import mmap
import os
import struct

import numpy as np

NEXT, WRITE = 1, 2


class DriverMemory:
    def __init__(self, size, gpa_base=None, name="pvs-virtio"):
        self.size = (int(size) + 4095) // 4096 * 4096
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.mem = np.frombuffer(self.map, dtype=np.uint8)
        self.uva = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        self.gpa = self.uva if gpa_base is None else int(gpa_base)
        self.top = 0

    def alloc(self, n, align=4096):
        self.top = (self.top + align - 1) // align * align
        off = self.top
        self.top += n
        if self.top > self.size:
            raise MemoryError("driver memory exhausted")
        return off

    def region(self):
        return (self.gpa, self.size, self.uva, 0)

    def close(self):
        self.mem = None
        try:
            self.map.close()
        except BufferError:
            pass
        os.close(self.fd)


class Vring:
    def __init__(self, gmem, n, buf_size=2048):
        self.g, self.n, self.buf_size = gmem, n, buf_size
        self.desc = gmem.alloc(16 * n)
        self.avail = gmem.alloc(6 + 2 * n, 2)
        self.used = gmem.alloc(6 + 8 * n)
        self.bufs = gmem.alloc(n * buf_size)
        self.free = list(range(n))
        self.avail_idx = 0
        self.used_seen = 0
        m = gmem.mem
        m[self.desc:self.used + 6 + 8 * n] = 0

    # raw access
    def set_desc(self, i, addr, length, flags=0, nxt=0):
        struct.pack_into("<QIHH", self.g.map, self.desc + 16 * i, addr, length, flags, nxt)

    def buf_gpa(self, i):
        return self.g.gpa + self.bufs + i * self.buf_size

    def push_avail(self, head):
        struct.pack_into("<H", self.g.map, self.avail + 4 + 2 * (self.avail_idx % self.n), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF

    def publish(self, idx=None):
        struct.pack_into("<H", self.g.map, self.avail + 2, self.avail_idx if idx is None else idx)

    def set_avail_flags(self, flags):
        struct.pack_into("<H", self.g.map, self.avail, flags)

    def avail_flags(self):
        return struct.unpack_from("<H", self.g.map, self.avail)[0]

    def set_used_event(self, v):
        struct.pack_into("<H", self.g.map, self.avail + 4 + 2 * self.n, v)

    def used_idx(self):
        return struct.unpack_from("<H", self.g.map, self.used + 2)[0]

    def used_flags(self):
        return struct.unpack_from("<H", self.g.map, self.used)[0]

    def addr_payload(self, index, log=None):
        u = self.g.uva
        flags = 1 if log is not None else 0
        return struct.pack("<IIQQQQ", index, flags, u + self.desc, u + self.used, u + self.avail,
                           log or 0)

    # chains
    def post_tx(self, frame, hdr_len=12, chunks=None):
        """Queue header + frame as one chain; False if the ring is full."""
        data = bytes(hdr_len) + bytes(frame)
        if chunks is None:                  # one buffer, or a chain of full ones (jumbo)
            chunks = [min(self.buf_size, len(data) - o) for o in range(0, len(data), self.buf_size)]
        if len(chunks) > len(self.free) or sum(chunks) != len(data):
            return False
        ids = [self.free.pop(0) for _ in chunks]
        pos = 0
        for k, (i, c) in enumerate(zip(ids, chunks)):
            if c > self.buf_size:
                raise ValueError("chunk larger than a buffer")
            o = self.bufs + i * self.buf_size
            self.g.map[o:o + c] = data[pos:pos + c]
            pos += c
            last = k == len(ids) - 1
            self.set_desc(i, self.buf_gpa(i), c, 0 if last else NEXT, 0 if last else ids[k + 1])
        self.push_avail(ids[0])
        self._chains = getattr(self, "_chains", {})
        self._chains[ids[0]] = ids
        self.publish()
        return True

    def post_rx(self, count=None):
        count = len(self.free) if count is None else min(count, len(self.free))
        self._chains = getattr(self, "_chains", {})
        for _ in range(count):
            i = self.free.pop(0)
            self.set_desc(i, self.buf_gpa(i), self.buf_size, WRITE)
            self._chains[i] = [i]
            self.push_avail(i)
        self.publish()
        return count

    def reap(self):
        out = []
        new = self.used_idx()
        while self.used_seen != new:
            o = self.used + 4 + 8 * (self.used_seen % self.n)
            uid, ln = struct.unpack_from("<II", self.g.map, o)
            out.append((uid, ln))
            self.free.extend(getattr(self, "_chains", {}).pop(uid, [uid] if uid < self.n else []))
            self.used_seen = (self.used_seen + 1) & 0xFFFF
        return out

    def rx_frames(self, hdr_len=12):
        """Frames delivered into this RX ring since the last call (merged)."""
        frames, cur, want = [], b"", 0
        for uid, ln in self.reap():
            o = self.bufs + uid * self.buf_size
            data = bytes(self.g.map[o:o + ln])
            if want == 0:
                want = max(1, struct.unpack_from("<H", data, 10)[0]) if hdr_len == 12 else 1
                cur = data[hdr_len:]
            else:
                cur += data
            want -= 1
            if want <= 0:
                frames.append(cur)
                want = 0
        return frames
