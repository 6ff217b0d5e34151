"""A file descriptor that becomes readable when files in a directory change.

    w = DirWatch(path)      # OSError when inotify is unavailable
    sel.register(w, EVENT_READ, ...); w.drain() -> number of events read
    w.close()

The daemon's main loop sleeps on it instead of polling the configuration
database: every commit by any process writes the database's files (SQLite's
WAL), which is an inotify event on their directory. Only the fact of a
change is reported; the reader asks the database what changed.
"""

import ctypes
import errno
import os
import struct

IN_MODIFY, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x2, 0x80, 0x100, 0x200
IN_CLOSE_WRITE = 0x8
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_EVENT = struct.Struct("iIII")       # wd, mask, cookie, len (then the name)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


def _check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


class DirWatch:
    def __init__(self, path, mask=IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE):
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        try:
            _check(_libc.inotify_add_watch(self.fd, os.fsencode(path), mask))
        except OSError:
            os.close(self.fd)
            raise

    def fileno(self):
        return self.fd

    def drain(self):
        """Read every pending event; returns how many there were."""
        n = 0
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return n
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if not data:
                return n
            off = 0
            while off + _EVENT.size <= len(data):
                n += 1
                off += _EVENT.size + _EVENT.unpack_from(data, off)[3]

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
