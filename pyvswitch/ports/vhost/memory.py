"""Guest memory of one vhost-user port: a reserved range, MAP_FIXED regions.

    gm = GuestMemory(window)     reserve [0, GUEST_OFF + window) PROT_NONE,
                                 map the control area; gm.mem is the flat
                                 uint8 array the PMDs hold (layout.py)
    gm.set_table(regions, fds)   regions [(gpa, size, uva, mmap_offset)]:
                                 validate, unmap the old table, map the new one
                                 (each region from file offset 0, MAP_FIXED)
    gm.uva_off(uva, n) / gm.gpa_off(gpa, n)   mem offset or -1 (both spaces)
    gm.set_log(fd, size, offset) / gm.clear_log()
    gm.clear()                   back to no regions (peer gone)
    gm.close()                   unmap everything (after the PMDs let go)

Why: the PMDs keep one numpy array per port for the port's whole life, so a
run-time SET_MEM_TABLE (virtio-user does that when its heap grows) remaps
inside the same range and never hands out a new array. Regions that are
replaced become PROT_NONE again (an anonymous MAP_FIXED over them), never a
hole another mmap could land in.

Validation (untrusted front-end): at most 8 regions, sizes > 0, no overflow
of gpa/uva/offset + size, no overlapping guest-physical ranges, the file must
be at least mmap_offset + size long (mapping past EOF would SIGBUS the switch
on access), everything must fit in the window. Raises MemError; the table
in effect is then empty. Only the control thread calls these, under quiesce
when PMDs may be using the memory.
"""

import ctypes
import mmap as _mmap
import os

import numpy as np

from pyvswitch.ports.vhost.layout import (CTRL_BYTES, CTRL_WORDS, G_LOG_BYTES, G_LOG_MOFF,
                                          G_LOG_ON, G_NREG, GUEST_OFF, LOG_MAX, LOG_OFF,
                                          MAX_REGIONS, R_GPA, R_MOFF, R_SIZE, R_UVA, R_WORDS,
                                          REG_BASE)

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x1, 0x2, 0x10, 0x20, 0x4000
PAGE = _mmap.PAGESIZE
ALIGN = 2 << 20
BASE_ALIGN = 1 << 30     # huge-page files map only at addresses aligned to their page size
LIMIT = 1 << 62

_libc = ctypes.CDLL(None, use_errno=True)
_mmap_fn = _libc.mmap
_mmap_fn.restype = ctypes.c_void_p
_mmap_fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                     ctypes.c_long]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


class MemError(Exception):
    """A memory table or log we refuse (the message says why)."""


def _round(n, a):
    return (n + a - 1) // a * a


def _mmap(addr, length, prot, flags, fd=-1, off=0):
    p = _mmap_fn(addr, length, prot, flags, fd, off)
    if p is None or p == ctypes.c_void_p(-1).value:
        e = ctypes.get_errno()
        raise MemError(f"mmap of {length} bytes failed ({os.strerror(e)})")
    return p


class GuestMemory:
    def __init__(self, window):
        self.size = GUEST_OFF + _round(int(window), ALIGN)
        self.base = self._reserve_aligned(self.size)
        _mmap(self.base, CTRL_BYTES, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        ptr = ctypes.cast(self.base, ctypes.POINTER(ctypes.c_uint8))
        self.mem = np.ctypeslib.as_array(ptr, shape=(self.size,))
        self.ctl = self.mem[:CTRL_BYTES].view(np.int64)
        self.regions = []      # [(gpa, size, uva, moff)]
        self._maps = []        # [(mem offset, length)] of mapped files
        self._log = None       # (mem offset, length)

    @staticmethod
    def _reserve_aligned(size):
        """Reserve `size` bytes PROT_NONE at a BASE_ALIGN-aligned address: regions
        map at base + multiples of their file's block size, and a hugetlbfs file
        (2 MB or 1 GB pages) refuses an address not aligned to its page size."""
        raw = _mmap(None, size + BASE_ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
        base = _round(raw, BASE_ALIGN)
        if base > raw:
            _munmap(raw, base - raw)
        tail = raw + size + BASE_ALIGN - (base + size)
        if tail:
            _munmap(base + size, tail)
        return base

    # -- regions
    def set_table(self, regions, fds):
        """Map a new table (closes nothing: the caller owns and closes fds)."""
        self.clear()
        if len(regions) > MAX_REGIONS:
            raise MemError(f"{len(regions)} memory regions (at most {MAX_REGIONS})")
        if len(fds) != len(regions):
            raise MemError(f"{len(regions)} regions but {len(fds)} fds")
        plan, cur = [], GUEST_OFF
        for (gpa, size, uva, off), fd in zip(regions, fds):
            if size <= 0 or gpa >= LIMIT or uva >= LIMIT or off >= LIMIT or size >= LIMIT:
                raise MemError(f"bad region gpa={gpa:#x} size={size:#x} uva={uva:#x} offset={off:#x}")
            try:
                st = os.fstat(fd)
            except OSError as e:
                raise MemError(f"region fd: {e.strerror}") from None
            if st.st_size < off + size:
                raise MemError(f"region file of {st.st_size} bytes < offset {off:#x} + size {size:#x}")
            blk = max(st.st_blksize, PAGE)
            length = _round(off + size, blk)
            cur = _round(cur, max(blk, ALIGN))
            if cur + length > self.size:
                raise MemError(f"guest memory larger than the window ({self.size - GUEST_OFF} bytes)")
            plan.append((gpa, size, uva, cur + off, cur, length, fd))
            cur += length
        spans = sorted((p[0], p[0] + p[1]) for p in plan)
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            if b0 < a1:
                raise MemError(f"overlapping regions at gpa {b0:#x}")
        try:
            for gpa, size, uva, moff, at, length, fd in plan:
                _mmap(self.base + at, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)
                self._maps.append((at, length))
                self.regions.append((gpa, size, uva, moff))
        except MemError:
            self.clear()
            raise
        c = self.ctl
        for i, (gpa, size, uva, moff) in enumerate(self.regions):
            b = REG_BASE + i * R_WORDS
            c[b + R_GPA], c[b + R_SIZE], c[b + R_UVA], c[b + R_MOFF] = gpa, size, uva, moff
        c[G_NREG] = len(self.regions)

    def clear(self):
        self.ctl[G_NREG] = 0
        for at, length in self._maps:
            self._none(at, length)
        self._maps, self.regions = [], []

    def _none(self, at, length):
        _mmap(self.base + at, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE)

    def _off(self, addr, n, col):
        for r in self.regions:
            lo = r[col]
            if lo <= addr and n <= r[1] and addr - lo <= r[1] - n:
                return r[3] + (addr - lo)
        return -1

    def uva_off(self, uva, n):
        return self._off(uva, n, 2)

    def gpa_off(self, gpa, n):
        return self._off(gpa, n, 0)

    # -- dirty log
    def set_log(self, fd, size, offset):
        self.clear_log()
        if size <= 0 or offset < 0 or offset + size > LOG_MAX:
            raise MemError(f"dirty log of {size} bytes at offset {offset} (at most {LOG_MAX})")
        if os.fstat(fd).st_size < offset + size:
            raise MemError("dirty log file shorter than offset + size")
        length = _round(offset + size, PAGE)
        _mmap(self.base + LOG_OFF, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)
        self._log = (LOG_OFF, length)
        self.ctl[G_LOG_MOFF] = LOG_OFF + offset
        self.ctl[G_LOG_BYTES] = size

    def clear_log(self):
        self.ctl[G_LOG_ON] = 0
        self.ctl[G_LOG_BYTES] = 0
        if self._log is not None:
            self._none(*self._log)
            self._log = None

    def has_log(self):
        return self._log is not None

    def reset_ctl(self):
        self.ctl[:CTRL_WORDS] = 0

    def close(self):
        if self.base:
            self.mem = self.ctl = None
            _munmap(self.base, self.size)
            self.base = 0
