"""NORMAL: VLAN-aware MAC learning switch, as Open vSwitch's xlate_normal.

What: the fdb (MAC table keyed (vlan, mac) -> (ofport, last seen), aged on
the clock after `mac-aging-time`, at most `mac-table-size` entries with the
least recently seen evicted first) and `normal()`, which decides where one
packet goes: learn the source, then forward to the learned port or flood
within the VLAN. It returns (ofport, tci) pairs; xlate turns those into
datapath actions and the megaflow mask.

VLAN semantics (ovs-vswitchd.conf.db(5), Port vlan_mode):
- access (tag=N): untagged (or priority-tagged VID 0) frames in belong to VLAN
  N; tagged frames in are dropped; frames out are untagged.
- trunk (no tag): the frame's VID (0 when untagged) must be in `trunks` (empty
  means every VLAN); frames out carry their VLAN's tag (VLAN 0 untagged).
- native-tagged / native-untagged (tag=N is the native VLAN): untagged in
  belongs to N, tagged in must be in trunks; out of native-untagged the
  native VLAN is untagged, out of native-tagged it stays tagged.

Ports are duck-typed: `.ofport`, `.name`, `.tag`, `.trunks`, `.vlan_mode`.
Invariant: never output to the input port. Pure logic plus the fdb's state;
time is the `now` argument. Single-threaded (the ofproto's owner).
"""

from collections import OrderedDict
from dataclasses import dataclass, field

from pyvswitch.openflow.fields import OFPP_LOCAL, format_port

VLAN_MODES = ("access", "trunk", "native-tagged", "native-untagged")
CFI = 0x1000
DEFAULT_AGING = 300
DEFAULT_SIZE = 8192


def vlan_mode(port):
    return port.vlan_mode or ("access" if port.tag is not None else "trunk")


def _in_trunks(port, vlan):
    return not port.trunks or vlan in port.trunks


def includes_vlan(port, vlan):
    mode = vlan_mode(port)
    if mode == "access":
        return vlan == (port.tag or 0)
    if mode == "trunk":
        return _in_trunks(port, vlan)
    return vlan == (port.tag or 0) or _in_trunks(port, vlan)


def input_vlan(port, tci):
    """(vlan, None) for a frame with `tci` arriving on `port`, or (None,
    reason) if the port must drop it."""
    vid = tci & 0xFFF if tci & CFI else 0
    mode = vlan_mode(port)
    if mode == "access":
        if vid:
            return None, (f"dropping VLAN {vid} tagged packet received on port "
                          f"{port.name} configured as VLAN {port.tag or 0} "
                          "access port")
        return port.tag or 0, None
    if mode != "trunk" and not vid:
        return port.tag or 0, None
    if not includes_vlan(port, vid):
        return None, (f"dropping VLAN {vid} packet received on port "
                      f"{port.name} not configured for trunking VLAN {vid}")
    return vid, None


def output_tci(port, vlan, pcp):
    """The TCI a frame of `vlan` leaves `port` with (0: untagged)."""
    mode = vlan_mode(port)
    untagged = (mode == "access" or vlan == 0 or
                (mode == "native-untagged" and vlan == (port.tag or 0)))
    return 0 if untagged else CFI | vlan | (pcp << 13)


def is_multicast(mac):
    return bool(mac >> 40 & 1)


def is_reserved(mac):
    """01:80:c2:00:00:0x (STP, LACP, ...): never forwarded by NORMAL."""
    return mac >> 4 == 0x0180C200000


@dataclass
class FdbEntry:
    port: int
    used: float


class Fdb:
    """MAC learning table: (vlan, mac) -> FdbEntry, least recently seen first."""

    def __init__(self, aging_time=DEFAULT_AGING, max_entries=DEFAULT_SIZE):
        self.aging_time = aging_time
        self.max_entries = max_entries
        self.entries = OrderedDict()

    def __len__(self):
        return len(self.entries)

    def _alive(self, entry, now):
        return now - entry.used < self.aging_time

    def learn(self, vlan, mac, port, now):
        """Record `mac` on `port`. Returns "new", "moved" or None (refresh)."""
        key = (vlan, mac)
        entry = self.entries.get(key)
        if entry is not None and self._alive(entry, now):
            self.entries.move_to_end(key)
            entry.used = now
            if entry.port == port:
                return None
            entry.port = port
            return "moved"
        self.entries.pop(key, None)
        while len(self.entries) >= self.max_entries:
            self.entries.popitem(last=False)
        self.entries[key] = FdbEntry(port, now)
        return "new"

    def refresh(self, vlan, mac, port, now):
        """Mark a live entry for `mac` on `port` as seen; never creates or
        moves one (the revalidator reports traffic that already happened, so
        it must not undo a move learned since)."""
        key = (vlan, mac)
        entry = self.entries.get(key)
        if entry is not None and entry.port == port and self._alive(entry, now):
            self.entries.move_to_end(key)
            entry.used = now

    def lookup(self, vlan, mac, now):
        entry = self.entries.get((vlan, mac))
        if entry is None or not self._alive(entry, now):
            return None
        return entry.port

    def expire(self, now):
        """Drop aged entries; returns [(vlan, mac, port)]."""
        gone = [(k, e) for k, e in self.entries.items() if not self._alive(e, now)]
        for key, _ in gone:
            del self.entries[key]
        return [(v, m, e.port) for (v, m), e in gone]

    def set_config(self, aging_time=None, max_entries=None):
        if aging_time is not None:
            self.aging_time = aging_time
        if max_entries is not None:
            self.max_entries = max_entries
            while len(self.entries) > max_entries:
                self.entries.popitem(last=False)

    def flush(self, port=None):
        """Forget every entry (or those on `port`); returns how many."""
        keys = [k for k, e in self.entries.items() if port is None or e.port == port]
        for key in keys:
            del self.entries[key]
        return len(keys)

    def show(self, now, namer=None):
        """`ovs-appctl fdb/show` text."""
        lines = [" port  VLAN  MAC                Age"]
        for (vlan, mac), e in self.entries.items():
            if not self._alive(e, now):
                continue
            port = "LOCAL" if e.port == OFPP_LOCAL else format_port(e.port, namer)
            age = max(int(now - e.used), 0)
            lines.append(f"{port:>5}  {vlan:4d}  {_mac(mac)}  {age:3d}")
        return "\n".join(lines) + "\n"


def _mac(value):
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))


@dataclass
class NormalResult:
    outputs: list = field(default_factory=list)   # [(ofport, tci)]
    learned: list = field(default_factory=list)   # [(vlan, mac, ofport, "new"|"moved")]
    trace: list = field(default_factory=list)     # ofproto/trace lines
    vlan: int | None = None


def normal(ports, fdb, in_port, tci, dl_src, dl_dst, now, learn=True):
    """Decide NORMAL forwarding. `ports` maps ofport -> port. learn: True to
    learn the source, False not to touch the fdb, "refresh" to only refresh an
    existing entry on this port (the revalidator)."""
    res = NormalResult()
    port = ports.get(in_port)
    if port is None:
        res.trace.append("no input bundle, dropping")
        return res
    vlan, why = input_vlan(port, tci)
    if vlan is None:
        res.trace.append(why)
        return res
    res.vlan = vlan
    if is_reserved(dl_dst):
        res.trace.append("packet has reserved destination MAC, dropping")
        return res
    if learn == "refresh":
        if not is_multicast(dl_src):
            fdb.refresh(vlan, dl_src, in_port, now)
    elif learn and not is_multicast(dl_src):
        change = fdb.learn(vlan, dl_src, in_port, now)
        if change:
            res.learned.append((vlan, dl_src, in_port, change))
            res.trace.append(f"learned that {_mac(dl_src)} is on port "
                             f"{port.name} in VLAN {vlan}")
    pcp = tci >> 13 if tci & CFI else 0
    out = None if is_multicast(dl_dst) else fdb.lookup(vlan, dl_dst, now)
    if out is not None and out not in ports:
        out = None
    if out is None:
        res.trace.append("no learned MAC for destination, flooding")
        for p in sorted(ports.values(), key=lambda p: p.ofport):
            if p.ofport != in_port and includes_vlan(p, vlan):
                res.outputs.append((p.ofport, output_tci(p, vlan, pcp)))
    elif out == in_port:
        res.trace.append("learned port is input port, dropping")
    else:
        res.trace.append("forwarding to learned port")
        res.outputs.append((out, output_tci(ports[out], vlan, pcp)))
    return res
