"""Tap port (`type=tap`): a Linux tap device named after the port.

What: open /dev/net/tun non-blocking, TUNSETIFF with IFF_TAP | IFF_NO_PI (no
packet-information prefix, no virtio-net header: the kernel finishes checksums
and segments before a frame reaches us), bring the device up. A frame the
kernel transmits on the tap is one read() of the fd; a frame we write() is
received by the kernel on the tap.

Lifetime: if the device did not exist, TUNSETIFF creates it without
TUNSETPERSIST, so it disappears when close() closes the fd ("deleted on close
if we created it"); an existing persistent tap is attached to and left in place.

Kernels: rx_burst reads up to n_max frames straight into pool slots (stops at
EAGAIN or any error), tx_one writes one frame, tx_flush has nothing to do.
The fd is shared by the rx row and every PMD's tx row: read() and write() on
a tun fd are whole-frame and thread-safe. InternalPort (internal.py) reuses
all of this.

Threads: the Port object belongs to the main thread; the kernels run on the
PMD owning the io row (or in tests).
"""

import errno
import fcntl
import os
import struct

import numpy as np

from pyvswitch.core.jit import kernel
from pyvswitch.core.libc import c_read, c_write
from pyvswitch.core.pool import HEADROOM
from pyvswitch.ports import io as pio
from pyvswitch.ports import netdev
from pyvswitch.ports.base import Port, PortError, register

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
TUN_PATH = "/dev/net/tun"


# --- kernels ---------------------------------------------------------------

@kernel
def rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats):
    fd = io[pio.IO_FD]
    stride = np.int64(pool.strides[0])
    room = np.int64(pool.shape[1]) - HEADROOM
    base = pool.ctypes.data + HEADROOM
    n_max = min(n_max, slots.shape[0], offs.shape[0], lens.shape[0])
    n = 0
    while n < n_max:
        slot = slots[n]
        if slot < 0 or slot >= pool.shape[0]:
            qstats[pio.Q_RX_DROPPED] += 1
            break
        r = c_read(fd, base + slot * stride, room)
        if r <= 0:
            break                      # EAGAIN: nothing more (or device gone)
        if r < 14:
            qstats[pio.Q_RX_ERRORS] += 1
            continue
        offs[n] = HEADROOM
        lens[n] = r
        qstats[pio.Q_RX_PACKETS] += 1
        qstats[pio.Q_RX_BYTES] += r
        n += 1
    return n


@kernel
def tx_one(mem, io, pool, slot, off, length, qstats):
    if slot < 0 or slot >= pool.shape[0] or off < 0 or length < 14 or off + length > pool.shape[1]:
        qstats[pio.Q_TX_ERRORS] += 1
        return 0
    r = c_write(io[pio.IO_FD], pool.ctypes.data + slot * np.int64(pool.strides[0]) + off, length)
    if r != length:
        qstats[pio.Q_TX_DROPPED] += 1  # device down (EIO) or queue full
        return 0
    qstats[pio.Q_TX_PACKETS] += 1
    qstats[pio.Q_TX_BYTES] += length
    return 1


@kernel
def tx_flush(mem, io, qstats):
    return None


# --- control side ------------------------------------------------------------

def _tunsetiff(fd, name):
    ifr = struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI).ljust(40, b"\0")
    fcntl.ioctl(fd, TUNSETIFF, ifr)


@register("tap")
class TapPort(Port):
    """A tap device named after the port. No options."""

    io_type = pio.PT_TAP
    bring_up = True           # tap: up on open; internal: the user decides

    def __init__(self, name, options=None):
        super().__init__(name, options)
        if self.options:
            raise PortError(f"{name}: unknown option(s) {', '.join(sorted(self.options))} "
                            f"for type {self.type_name}")
        self.fd = -1
        self.created = False
        self._mtu_request = None
        self._rx_row = None
        self._tx = {}
        self._mem = np.zeros(1, dtype=np.uint8)

    def open(self):
        if self.fd >= 0:
            return
        fd = -1
        try:
            netdev.check_name(self.name)
            existed = netdev.exists(self.name)
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            _tunsetiff(fd, self.name)
            self._configure()
            if self._mtu_request is not None:
                netdev.set_mtu(self.name, self._mtu_request)
            if self.bring_up:
                netdev.set_up(self.name)
            self.mtu = netdev.get_mtu(self.name)
            self.mac = netdev.get_mac(self.name)
        except OSError as e:
            if fd >= 0:
                os.close(fd)              # a tap we created vanishes with its fd
            code = e.errno if e.errno else errno.EINVAL
            raise PortError(f"could not open network device {self.name} "
                            f"({os.strerror(code)})") from None
        self.fd, self.created = fd, not existed
        self._rx_row = self._row(0)

    def _configure(self):
        """Hook for subclasses: runs after the device exists, before it is up."""

    def _row(self, queue):
        row = pio.new_io_row(self.io_type, queue=queue, fd=self.fd)
        row[pio.IO_MTU] = self.mtu
        row[pio.IO_LINK_UP] = int(self.link_up())
        return row

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
        self._rx_row, self._tx = None, {}

    def rx_io(self, queue):
        if queue != 0 or self._rx_row is None:
            raise PortError(f"{self.name}: no rx queue {queue}")
        return self._rx_row, self._mem

    def tx_io(self, pmd_id):
        if self.fd < 0:
            raise PortError(f"{self.name}: port is not open")
        if pmd_id not in self._tx:
            self._tx[pmd_id] = self._row(pmd_id)
        return self._tx[pmd_id], self._mem

    def poll_fds(self):
        return [self.fd] if self.fd >= 0 else []

    def link_up(self):
        try:
            return netdev.carrier(self.name)
        except OSError:
            return False

    def set_mtu(self, mtu):
        mtu = int(mtu)
        if not 68 <= mtu <= 65535:
            raise PortError(f"{self.name}: mtu {mtu} out of range")
        self._mtu_request = mtu
        if self.fd >= 0:
            try:
                netdev.set_mtu(self.name, mtu)
            except OSError as e:
                raise PortError(f"{self.name}: could not set mtu {mtu} ({e.strerror})") from None
            self.mtu = mtu
            for row in [self._rx_row] + list(self._tx.values()):
                row[pio.IO_MTU] = mtu

    def run(self, now):
        """Follow the link state in the io rows: an internal port is created
        down and brought up later by the user (`ip link set br-phy up`);
        until then the kernel refuses what we write to it."""
        if self.fd < 0 or self._rx_row is None:
            return
        up = int(self.link_up())
        for row in [self._rx_row] + list(self._tx.values()):
            if row[pio.IO_LINK_UP] != up:
                row[pio.IO_LINK_UP] = up

    def set_mac(self, mac):
        try:
            netdev.set_mac(self.name, mac)
            self.mac = netdev.get_mac(self.name)
        except (OSError, ValueError) as e:
            raise PortError(f"{self.name}: could not set mac {mac!r} ({e})") from None

    def status(self):
        return {"driver_name": "tun", "created": "true" if self.created else "false"}
