"""The switch's own neighbour (ARP) cache for tunnel next hops (OVS's
tnl-neigh-cache).

    nc = NeighCache(idle=900)
    nc.lookup(bridge, ip, now) -> mac int | None
    nc.learn(bridge, ip, mac, now) -> True if new or changed (dynamic entry)
    nc.set(bridge, ip, mac)            static entry (`tnl/neigh/set`)
    nc.flush() -> number removed       (`tnl/neigh/flush`: every entry)
    nc.show(now) -> the `tnl/neigh/show` text

Entries are keyed by (bridge, IPv4); dynamic ones expire `idle` seconds after
they were last learned (OVS's 15 minutes); a learned value never replaces a
static one. Main thread and upcalls, under the switch lock.
"""

import ipaddress

IDLE = 15 * 60
_INET6_ADDRSTRLEN = 46


def mac_text(v):
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def parse_mac(text):
    parts = text.split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(text)
    return int("".join(p.zfill(2) for p in parts), 16)


class NeighCache:
    def __init__(self, idle=IDLE):
        self.idle = idle
        self.entries = {}        # (bridge, ip) -> (mac, expires | None for static)

    def lookup(self, bridge, ip, now):
        e = self.entries.get((bridge, ip))
        if e is None:
            return None
        mac, expires = e
        if expires is not None and expires <= now:
            del self.entries[(bridge, ip)]
            return None
        return mac

    def learn(self, bridge, ip, mac, now):
        old = self.entries.get((bridge, ip))
        if old is not None and old[1] is None:
            return False                      # static wins
        self.entries[(bridge, ip)] = (mac, now + self.idle)
        return old is None or old[0] != mac or old[1] <= now

    def set(self, bridge, ip, mac):
        self.entries[(bridge, ip)] = (mac, None)

    def flush(self):
        n = len(self.entries)
        self.entries.clear()
        return n

    def show(self, now):
        lines = ["IP" + " " * (_INET6_ADDRSTRLEN - 2) + "MAC                 Bridge",
                 "=" * 74]
        for (bridge, ip), (mac, expires) in sorted(self.entries.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if expires is not None and expires <= now:
                continue
            ip_s = str(ipaddress.IPv4Address(ip))
            lines.append(ip_s + " " * (_INET6_ADDRSTRLEN - len(ip_s)) + mac_text(mac) + "   " + bridge
                         + (" STATIC" if expires is None else ""))
        return "\n".join(lines) + "\n"
