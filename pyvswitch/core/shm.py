"""Shared-memory arenas: one mapping, numpy views carved out of it.

An Arena is backed by a file on hugetlbfs when /dev/hugepages is mounted and
has enough free huge pages, else by an anonymous memfd (os.memfd_create). The
mapping is MAP_SHARED, so the fd can be handed to another process (vhost-user,
a counters reader) and every numpy view sees the same bytes.

Names are unique per daemon: "pvs.<pid>.<hash of rundir>.<name>", so several
daemons on one machine (tests run many) never collide, and a hugetlbfs file
left by a crashed daemon is recognisable. The hugetlbfs file is unlinked right
after mapping (the fd and mapping keep it alive).

Threads: create/close on the control thread; views may be used by any thread.
"""

import hashlib
import mmap
import os

import numpy as np

HUGE_DIR = "/dev/hugepages"
ALIGN = 64


def arena_name(name, rundir=""):
    h = hashlib.sha256(os.path.abspath(rundir or ".").encode()).hexdigest()[:8]
    return f"pvs.{os.getpid()}.{h}.{name}"


def _hugepage_size():
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["HugePages_Free"].split()[0])
        size = int(info["Hugepagesize"].split()[0]) * 1024
        return size, free
    except (OSError, KeyError, ValueError):
        return 0, 0


def _hugetlbfs_mounted():
    try:
        with open("/proc/mounts") as f:
            return any(l.split()[1] == HUGE_DIR and l.split()[2] == "hugetlbfs" for l in f)
    except OSError:
        return False


class Arena:
    """`size` bytes of shared memory; `kind` is 'hugetlbfs' or 'memfd'."""

    def __init__(self, name, size, rundir="", allow_huge=True):
        self.name = arena_name(name, rundir)
        self.fd = -1
        self.kind = None
        page, free = _hugepage_size()
        if allow_huge and page and _hugetlbfs_mounted():
            rounded = -(-size // page) * page
            if rounded // page <= free:
                try:
                    self._open_huge(rounded)
                    size = rounded
                except OSError:
                    self.fd = -1
        if self.fd < 0:
            size = -(-max(size, 1) // mmap.PAGESIZE) * mmap.PAGESIZE
            self.fd = os.memfd_create(self.name, os.MFD_CLOEXEC)
            os.ftruncate(self.fd, size)
            self.kind = "memfd"
        self.size = size
        self.mm = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.buf = np.frombuffer(self.mm, dtype=np.uint8)
        self._top = 0

    def _open_huge(self, size):
        path = os.path.join(HUGE_DIR, self.name)
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.unlink(path)
        self.fd = fd
        self.kind = "hugetlbfs"

    def alloc(self, dtype, shape):
        """A zeroed numpy view of the next free bytes (64-byte aligned)."""
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        off = -(-self._top // ALIGN) * ALIGN
        if off + n > self.size:
            raise MemoryError(f"arena {self.name}: {n} bytes do not fit ({self.size - off} left)")
        self._top = off + n
        view = self.buf[off:off + n].view(dtype).reshape(shape)
        view[...] = 0
        return view

    @property
    def used(self):
        return self._top

    def close(self):
        """Drop our references; the mapping goes when the last view dies."""
        self.buf = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def alloc_array(name, dtype, shape, rundir=""):
    """One array in its own arena (returns the arena, whose .alloc made it)."""
    dtype = np.dtype(dtype)
    arena = Arena(name, int(np.prod(shape)) * dtype.itemsize + ALIGN, rundir)
    return arena, arena.alloc(dtype, shape)
