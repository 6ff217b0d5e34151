"""The switch's own IPv4 route table (OVS's ovs-router): where tunnels go.

    rt = RouteTable()
    rt.set_system(addrs, routes)      netlink.Addr / netlink.Route lists: the
                                      kernel's routes become "Cached" entries
    rt.add(prefix, plen, dev, gw=0, src=0) -> None or an error text   (User)
    rt.delete(prefix, plen) -> bool
    rt.lookup(dst, src=0) -> Entry(prefix, plen, dev, gw, src, user, local) | None
    rt.show() -> the text of `ovs/route/show`
    rt.is_local(ip) -> bool           an address of this host

Lookup is longest prefix first; at the same prefix a User route wins over a
Cached one. With `src` (a tunnel's local_ip) the route is only usable when
src is a local address, as OVS's ovs_router_lookup; the entry returned then
carries that src. Kernel routes are read from the main and local tables;
their output device is the interface name (`dev`): tunnel output needs it to
be an internal port of one of our bridges. Main thread only (the daemon
copies nothing: xlate reads it under the switch lock).
"""

import ipaddress
import socket
from collections import namedtuple

# rtnetlink values of the routes set_system takes (linux/rtnetlink.h; vswitchd/netlink.py reads them)
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255
RTN_UNICAST, RTN_LOCAL = 1, 2


Entry = namedtuple("Entry", "prefix plen dev gw src user local")


def ip_text(v):
    return str(ipaddress.IPv4Address(v))


def _mask(plen):
    return ((1 << 32) - 1) ^ ((1 << (32 - plen)) - 1) if plen else 0


class RouteTable:
    def __init__(self):
        self.system = {}         # (prefix, plen) -> Entry
        self.user = {}
        self.addrs = []          # netlink.Addr
        self._sorted = []

    def _rebuild(self):
        merged = dict(self.system)
        merged.update(self.user)
        self._sorted = sorted(merged.values(), key=lambda e: (-e.plen, not e.user, e.prefix))

    def set_system(self, addrs, routes, names=None):
        """Replace the Cached routes; returns True if anything changed."""
        names = dict(names or {})
        for a in addrs:
            names.setdefault(a.ifindex, a.name)
        system = {}
        for r in routes:
            if r.table not in (RT_TABLE_MAIN, RT_TABLE_LOCAL):
                continue
            if r.type not in (RTN_UNICAST, RTN_LOCAL):
                continue
            dev = names.get(r.oif) or _ifname(r.oif)
            if not dev:
                continue
            local = r.type == RTN_LOCAL
            src = r.prefsrc or self._src_for(addrs, dev, r.gateway or r.dst)
            prefix = r.dst & _mask(r.plen)
            key = (prefix, r.plen)
            if key in system and system[key].local and not local:
                continue
            system[key] = Entry(prefix, r.plen, dev, r.gateway, src, False, local)
        changed = system != self.system or list(addrs) != self.addrs
        self.system, self.addrs = system, list(addrs)
        self._rebuild()
        return changed

    @staticmethod
    def _src_for(addrs, dev, near):
        """An address of dev, preferably in the same subnet as `near`."""
        mine = [a for a in addrs if a.name == dev]
        for a in mine:
            if (a.address ^ near) & _mask(a.prefixlen) == 0:
                return a.address
        return mine[0].address if mine else 0

    def is_local(self, ip):
        return any(a.address == ip for a in self.addrs)

    def add(self, prefix, plen, dev, gw=0, src=0):
        if not 0 <= plen <= 32:
            return "Invalid parameters"
        if not src:
            src = self._src_for(self.addrs, dev, gw or prefix)
            if not src:
                return "Error while inserting route."
        prefix &= _mask(plen)
        self.user[(prefix, plen)] = Entry(prefix, plen, dev, gw, src, True, False)
        self._rebuild()
        return None

    def delete(self, prefix, plen):
        prefix &= _mask(plen)
        if self.user.pop((prefix, plen), None) is None:
            return False
        self._rebuild()
        return True

    def lookup(self, dst, src=0):
        if src and not self.is_local(src):
            return None
        for e in self._sorted:
            if (dst ^ e.prefix) & _mask(e.plen) == 0:
                return e._replace(src=src) if src else e
        return None

    def show(self):
        lines = ["Route Table:"]
        for e in sorted(self._sorted, key=lambda e: (not e.user, -e.plen, e.prefix)):
            t = f"{'User' if e.user else 'Cached'}: {ip_text(e.prefix)}/{e.plen} dev {e.dev}"
            if e.gw:
                t += f" GW {ip_text(e.gw)}"
            t += f" SRC {ip_text(e.src)}"
            if e.local:
                t += " local"
            lines.append(t)
        return "\n".join(lines) + "\n"


def _ifname(index):
    try:
        return socket.if_indextoname(index) if index else ""
    except OSError:
        return ""


def parse_prefix(text):
    """'10.0.0.0/24' (or a bare address: /32) -> (prefix int, plen); ValueError."""
    addr, _, plen = text.partition("/")
    a = int(ipaddress.IPv4Address(addr))
    n = int(plen) if plen else 32
    if not 0 <= n <= 32:
        raise ValueError(text)
    return a, n
