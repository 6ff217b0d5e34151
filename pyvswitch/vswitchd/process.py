"""Process setup for pvs-vswitchd: pidfile lock, detaching, log file.

The pidfile is held with an fcntl lock for the daemon's lifetime, so a second
daemon on the same rundir fails at once with a clear message instead of
stealing sockets. Detaching forks twice; the original process exits only when
the daemon signals readiness through a pipe (or reports its start-up error),
so `pvs-vswitchd --detach && pvs-vsctl ...` never races the daemon.
"""

import fcntl
import os
import sys


class StartupError(Exception):
    pass


class Pidfile:
    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise StartupError(f"{self.path}: already locked by running process with pid {other}") from None
        self.fd = fd

    def write(self, pid):
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)

    def release(self):
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


class Detacher:
    """Double fork; the foreground parent waits for ready() or failed()."""

    def __init__(self):
        self.wfd = None

    def detach(self):
        rfd, wfd = os.pipe()
        if os.fork() > 0:
            os.close(wfd)
            msg = b""
            while True:
                chunk = os.read(rfd, 4096)
                if not chunk:
                    break
                msg += chunk
            if msg.startswith(b"ok"):
                os._exit(0)
            sys.stderr.write(msg.decode(errors="replace") or "pvs-vswitchd: daemon exited during start-up\n")
            os._exit(1)
        os.close(rfd)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        self.wfd = wfd
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.close(devnull)

    def ready(self):
        if self.wfd is not None:
            os.write(self.wfd, b"ok")
            os.close(self.wfd)
            self.wfd = None
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.close(devnull)

    def failed(self, message):
        if self.wfd is not None:
            os.write(self.wfd, message.encode())
            os.close(self.wfd)
            self.wfd = None
