"""rtnetlink, just enough to read the kernel's IPv4 addresses and routes.

    dump_addrs() -> [Addr(ifindex, name, address, prefixlen)]      RTM_GETADDR
    dump_routes() -> [Route(dst, plen, gateway, oif, prefsrc, table, type, priority)]
    parse_messages(data) -> [(type, flags, seq, payload)]          (pure)
    parse_addr(payload) / parse_route(payload)                     (pure)

A NETLINK_ROUTE socket in the caller's network namespace; messages are
parsed with struct, every length checked (a malformed message raises
NetlinkError, never reads past the buffer). IPv4 only: addresses and routes
are ints (host order). Blocking calls, for the main thread (a dump of a
host's tables takes well under a millisecond).
"""

import errno
import itertools
import os
import socket
import struct
from collections import namedtuple

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 20, 22, 24, 26
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_DUMP = 0x1, 0x2, 0x300
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL = 1, 2, 3
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255
RTN_UNICAST, RTN_LOCAL = 1, 2

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")

Addr = namedtuple("Addr", "ifindex name address prefixlen")
Route = namedtuple("Route", "dst plen gateway oif prefsrc table type priority")
_seq = itertools.count(1)


class NetlinkError(Exception):
    pass


def _align(n):
    return (n + 3) & ~3


def parse_messages(data):
    """Split a netlink datagram into (type, flags, seq, payload) tuples."""
    out, off, n = [], 0, len(data)
    while off + _NLMSGHDR.size <= n:
        length, typ, flags, seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > n:
            raise NetlinkError(f"bad netlink message length {length} at {off}")
        out.append((typ, flags, seq, bytes(data[off + _NLMSGHDR.size:off + length])))
        off += _align(length)
    return out


def parse_attrs(data):
    """{type: bytes} of the rtattrs in data (the last of a repeated type)."""
    attrs, off, n = {}, 0, len(data)
    while off + _RTATTR.size <= n:
        length, typ = _RTATTR.unpack_from(data, off)
        if length < _RTATTR.size or off + length > n:
            raise NetlinkError(f"bad rtattr length {length} at {off}")
        attrs[typ & 0x3FFF] = bytes(data[off + _RTATTR.size:off + length])
        off += _align(length)
    return attrs


def _ip4(b):
    if len(b) != 4:
        raise NetlinkError("IPv4 attribute is not 4 bytes")
    return int.from_bytes(b, "big")


def _u32(b):
    if len(b) != 4:
        raise NetlinkError("u32 attribute is not 4 bytes")
    return struct.unpack("=I", b)[0]


def parse_addr(payload):
    """Addr of one RTM_NEWADDR payload, or None if not IPv4."""
    if len(payload) < _IFADDRMSG.size:
        raise NetlinkError("short ifaddrmsg")
    family, plen, _flags, _scope, index = _IFADDRMSG.unpack_from(payload)
    if family != socket.AF_INET:
        return None
    a = parse_attrs(payload[_IFADDRMSG.size:])
    raw = a.get(IFA_LOCAL, a.get(IFA_ADDRESS))
    if raw is None:
        return None
    name = a.get(IFA_LABEL, b"").split(b"\0", 1)[0].decode("utf-8", "replace")
    return Addr(index, name, _ip4(raw), min(plen, 32))


def parse_route(payload):
    """Route of one RTM_NEWROUTE payload, or None if not IPv4."""
    if len(payload) < _RTMSG.size:
        raise NetlinkError("short rtmsg")
    family, dst_len, _src_len, _tos, table, _proto, _scope, rtype, _flags = _RTMSG.unpack_from(payload)
    if family != socket.AF_INET:
        return None
    a = parse_attrs(payload[_RTMSG.size:])
    if RTA_TABLE in a:
        table = _u32(a[RTA_TABLE])
    return Route(_ip4(a[RTA_DST]) if RTA_DST in a else 0, min(dst_len, 32),
                 _ip4(a[RTA_GATEWAY]) if RTA_GATEWAY in a else 0,
                 _u32(a[RTA_OIF]) if RTA_OIF in a else 0,
                 _ip4(a[RTA_PREFSRC]) if RTA_PREFSRC in a else 0,
                 table, rtype, _u32(a[RTA_PRIORITY]) if RTA_PRIORITY in a else 0)


def request(msg_type, body, seq):
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP,
                          seq, 0) + body


def _dump(msg_type, body, want):
    seq = next(_seq)
    out = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.NETLINK_ROUTE) as s:
        s.settimeout(2.0)
        s.sendto(request(msg_type, body, seq), (0, 0))
        while True:
            data = s.recv(1 << 16)
            for typ, _flags, mseq, payload in parse_messages(data):
                if mseq != seq:
                    continue
                if typ == NLMSG_DONE:
                    return out
                if typ == NLMSG_ERROR:
                    code = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else -errno.EIO
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return out
                if typ == want:
                    out.append(payload)


def dump_addrs():
    body = _IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)
    return [a for a in map(parse_addr, _dump(RTM_GETADDR, body, RTM_NEWADDR)) if a is not None]


def dump_routes():
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
    return [r for r in map(parse_route, _dump(RTM_GETROUTE, body, RTM_NEWROUTE)) if r is not None]


# --- notifications ---------------------------------------------------------------
RTM_NEWLINK, RTM_DELLINK, RTM_DELADDR, RTM_DELROUTE = 16, 17, 21, 25
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
_KIND = {RTM_NEWLINK: "link", RTM_DELLINK: "link", RTM_NEWADDR: "addr", RTM_DELADDR: "addr",
         RTM_NEWROUTE: "route", RTM_DELROUTE: "route"}


class Monitor:
    """The kernel's link, IPv4 address and route notifications, so that the
    daemon's main loop sleeps until something changes instead of polling
    every interface (Open vSwitch's netdev-linux does the same).

    fileno() for a selector; drain() -> the set of kinds seen ("link",
    "addr", "route"): all three when the socket overflowed (ENOBUFS: some
    notifications were lost, so anything may have changed)."""

    def __init__(self, groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE):
        self.sock = socket.socket(socket.AF_NETLINK,
                                  socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
                                  socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, groups))
        except OSError:
            self.sock.close()
            raise

    def fileno(self):
        return self.sock.fileno()

    def drain(self):
        kinds = set()
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return kinds
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    kinds.update(_KIND.values())
                    continue
                raise
            try:
                kinds.update(_KIND[t] for t, *_ in parse_messages(data) if t in _KIND)
            except NetlinkError:
                kinds.update(_KIND.values())

    def close(self):
        self.sock.close()
