"""Linux network interface helpers (the control side of the kernel-facing ports).

What: look up and change one interface by name -- ifindex, existence, MTU,
flags (admin up/down, promiscuous), link state, MAC -- with the classic
SIOC* ioctls on a throwaway datagram socket. No subprocess, no sysfs (sysfs
shows the namespace it was mounted in, ioctls follow the calling thread's
network namespace, which is what the tests and namespaced daemons need).

Why ioctls rather than rtnetlink: every operation here is one fixed-size
`struct ifreq` round trip, a dozen lines in total; netlink would need a
message codec for the same answers.

Errors: every function raises NetdevError (an OSError carrying the errno);
str(e) reads "veth9: No such device". Ports turn it into Open vSwitch's
"could not open network device veth9 (No such device)".

Threads: main (control) thread only. Each call opens and closes its own socket.
"""

import errno
import fcntl
import os
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCSIFHWADDR = 0x8924
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_RUNNING = 0x40       # operationally up: admin up and carrier (RFC 2863 "up")
IFF_PROMISC = 0x100
IFF_MULTICAST = 0x1000

ARPHRD_ETHER = 1
IFNAMSIZ = 16
_IFREQ = 40              # sizeof(struct ifreq) on 64-bit Linux


class NetdevError(OSError):
    """An interface operation failed; .errno says why, .filename is the name."""

    def __str__(self):
        return f"{self.filename}: {self.strerror}"


def _err(name, code):
    return NetdevError(code, os.strerror(code), name)


def check_name(name):
    """Raise NetdevError(EINVAL) unless `name` can be a Linux interface name."""
    if (not isinstance(name, str) or not name or len(name.encode()) >= IFNAMSIZ
            or name in (".", "..") or any(c in name for c in "/: \t\n")):
        raise _err(name, errno.EINVAL)


def _ifreq(name, payload=b""):
    check_name(name)
    raw = name.encode().ljust(IFNAMSIZ, b"\0") + payload
    return bytearray(raw.ljust(_IFREQ, b"\0"))


def _ioctl(name, request, payload=b""):
    buf = _ifreq(name, payload)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), request, buf)
        except OSError as e:
            raise _err(name, e.errno) from None
    return bytes(buf[IFNAMSIZ:])


def ifindex(name):
    """The interface index of `name` (NetdevError ENODEV when absent)."""
    return struct.unpack_from("i", _ioctl(name, SIOCGIFINDEX))[0]


def exists(name):
    try:
        ifindex(name)
    except NetdevError as e:
        if e.errno in (errno.ENODEV, errno.EINVAL):
            return False
        raise
    return True


def get_mtu(name):
    return struct.unpack_from("i", _ioctl(name, SIOCGIFMTU))[0]


def set_mtu(name, mtu):
    _ioctl(name, SIOCSIFMTU, struct.pack("i", int(mtu)))


def get_flags(name):
    return struct.unpack_from("H", _ioctl(name, SIOCGIFFLAGS))[0]


def set_flags(name, on=0, off=0):
    """Set the `on` bits and clear the `off` bits of the interface flags."""
    flags = get_flags(name)
    new = (flags | on) & ~off & 0xFFFF
    if new != flags:
        _ioctl(name, SIOCSIFFLAGS, struct.pack("H", new))
    return new


def is_up(name):
    """Administrative state (IFF_UP)."""
    return bool(get_flags(name) & IFF_UP)


def set_up(name, up=True):
    set_flags(name, on=IFF_UP) if up else set_flags(name, off=IFF_UP)


def set_promisc(name, on=True):
    set_flags(name, on=IFF_PROMISC) if on else set_flags(name, off=IFF_PROMISC)


def carrier(name):
    """Link state: admin up and carrier present (IFF_RUNNING)."""
    return bool(get_flags(name) & IFF_RUNNING)


def get_mac(name):
    """The 6-byte hardware address."""
    data = _ioctl(name, SIOCGIFHWADDR)
    return bytes(data[2:8])


def set_mac(name, mac):
    mac = parse_mac(mac)
    _ioctl(name, SIOCSIFHWADDR, struct.pack("H", ARPHRD_ETHER) + mac)


def parse_mac(mac):
    """bytes(6) from bytes or 'aa:bb:cc:dd:ee:ff'; ValueError otherwise."""
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != 6:
            raise ValueError(f"bad MAC address {mac!r}")
        return bytes(mac)
    parts = str(mac).split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"bad MAC address {mac!r}")
    return bytes(int(p, 16) for p in parts)


def format_mac(mac):
    return ":".join(f"{b:02x}" for b in mac)
