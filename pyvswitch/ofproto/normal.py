"""NORMAL: VLAN-aware MAC learning switch, as Open vSwitch's xlate_normal.

What: the fdb (MAC table keyed (vlan, mac) -> (ofport, last seen), aged on
the clock after `mac-aging-time`, at most `mac-table-size` entries with the
least recently seen evicted first) and `normal()`, which decides where one
packet goes: learn the source, then forward to the learned bundle or flood
within the VLAN. It returns (ofport, tci) pairs; xlate turns those into
datapath actions and the megaflow mask.

Bundles (OVS's xbundle): NORMAL switches between bundles, a bundle being a
DB Port: one interface, or several for a bond. Ports (interfaces) carry
`.bundle` (the DB Port's name; default their own name). The fdb stores a
bundle by its lowest member ofport (what fdb/show prints, as OVS prints "a
port" of the bundle); a frame is never sent back into the bundle it came
from (so a broadcast never loops out of another member of the same bond),
and a bond (bond.py) picks the member a frame leaves by and decides whether
a frame arriving on a member is admitted (active-backup drops what arrives
on a backup member; balance-slb drops what it probably sent itself).

VLAN semantics (ovs-vswitchd.conf.db(5), Port vlan_mode; OVS's bundle_set,
input_vid_is_valid, xvlan_input/output_translate):
- access (tag=N, default N=0): untagged (or priority-tagged VID 0) frames in
  belong to VLAN N; other tagged frames are dropped; frames out are
  untagged. `trunks` is ignored.
- trunk (no tag; a tag is ignored): the frame's VID (0 when untagged) must be
  in `trunks` (empty means every VLAN); frames out carry their VLAN's TCI
  (untagged when VID and PCP are 0).
- native-tagged / native-untagged (tag=N, the native VLAN): untagged in
  belongs to N, tagged in must be trunked. The native VLAN is always trunked
  and (when N != 0) VLAN 0 never is. Out of native-untagged the native VLAN
  leaves untagged, out of native-tagged tagged.
- other_config:priority-tags=if-nonzero (or true) on a Port keeps the PCP
  of a frame leaving untagged in a VID 0 priority tag (never: dropped, the
  default).
dot1q-tunnel (QinQ) is not supported (one 802.1Q tag in the datapath).

Ports are duck-typed: `.ofport`, `.name`, `.tag`, `.trunks`, `.vlan_mode`,
optionally `.bundle` and `.priority_tags`. Pure logic plus the fdb's state;
time is the `now` argument. Single-threaded (the ofproto's owner).
"""

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial

from pyvswitch.openflow.fields import OFPP_LOCAL, format_port

VLAN_MODES = ("access", "trunk", "native-tagged", "native-untagged")
NATIVE = ("native-tagged", "native-untagged")
PRIORITY_TAGS = ("never", "if-nonzero", "always", "true", "false")
CFI = 0x1000
DEFAULT_AGING = 300
DEFAULT_SIZE = 8192
ETH_ARP, ARP_REQUEST, ARP_REPLY = 0x0806, 1, 2
BROADCAST = 0xFFFFFFFFFFFF


def vlan_mode(port):
    return port.vlan_mode or ("access" if port.tag is not None else "trunk")


def native_vlan(port):
    """OVS's xbundle->vlan: None for a trunk, else the tag (0 when unset)."""
    return None if vlan_mode(port) == "trunk" else (port.tag or 0)


def trunks_vlan(port, vid):
    """Does a trunk or native port carry `vid`? (OVS's trunks bitmap: a
    native port always trunks its native VLAN and, native != 0, never 0.)"""
    trunks = port.trunks
    if vlan_mode(port) in NATIVE:
        native = port.tag or 0
        if native and (not trunks or native not in trunks or 0 in trunks):
            if vid == native:
                return True
            if vid == 0:
                return False
    return not trunks or vid in trunks


def includes_vlan(port, vlan):
    if vlan_mode(port) == "access":
        return vlan == (port.tag or 0)
    return trunks_vlan(port, vlan)


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
    if mode in NATIVE and not vid:
        return port.tag or 0, None
    if not trunks_vlan(port, vid):
        return None, (f"dropping VLAN {vid} packet received on port "
                      f"{port.name} not configured for trunking VLAN {vid}")
    return vid, None


def output_tci(port, vlan, pcp):
    """The TCI a frame of `vlan` (with priority `pcp`) leaves `port` with
    (0: untagged)."""
    mode = vlan_mode(port)
    if mode == "access" or (mode == "native-untagged" and vlan == (port.tag or 0)):
        vid = 0
        keep = getattr(port, "priority_tags", None) in ("if-nonzero", "always", "true")
        pcp = pcp if keep else 0
    else:
        vid = vlan
    tci = vid | pcp << 13
    return CFI | tci if tci else 0


def is_multicast(mac):
    return bool(mac >> 40 & 1)


def is_reserved(mac):
    """01:80:c2:00:00:0x (STP, LACP, ...): never forwarded by NORMAL."""
    return mac >> 4 == 0x0180C200000


def bundle_of(port):
    return getattr(port, "bundle", None) or port.name


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
        """Drop aged entries; returns [(vlan, mac, port)]. The table is kept
        least recently seen first, so the scan stops at the first live entry
        (100,000 MACs must not cost a full scan at every main-loop turn)."""
        gone = []
        for k, e in self.entries.items():
            if self._alive(e, now):
                break
            gone.append((k, e))
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
    counters: list = field(default_factory=list)  # bond buckets used (stats)
    refreshes: list = field(default_factory=list)  # fn(now): what a later packet of this flow refreshes
    vlan: int | None = None
    pcp_used: bool = False                        # an output's TCI carries the PCP


def bundles_of(ports):
    """{bundle name: [ports, lowest ofport first]}."""
    out = {}
    for p in sorted(ports.values(), key=lambda p: p.ofport):
        out.setdefault(bundle_of(p), []).append(p)
    return out


def normal(ports, fdb, in_port, tci, dl_src, dl_dst, now, learn=True,
           bundles=None, bonds=None, field=None):
    """Decide NORMAL forwarding. `ports` maps ofport -> port; `bundles`
    {name: [member ports, lowest ofport first]} (derived from ports when
    None); `bonds` {bundle name: bond.Bond}; `field(name)` reads a flow field
    and un-wildcards it (what bonds hash on, the SLB loop check's ARP
    fields). learn: True to learn the source, False not to touch the fdb,
    "refresh" to only refresh an existing entry (the revalidator)."""
    res = NormalResult()
    bundles = bundles_of(ports) if bundles is None else bundles
    bonds = bonds or {}
    port = ports.get(in_port)
    if port is None:
        res.trace.append("no input bundle, dropping")
        return res
    in_bundle = bundle_of(port)
    vlan, why = input_vlan(port, tci)
    if vlan is None:
        res.trace.append(why)
        return res
    res.vlan = vlan
    if is_reserved(dl_dst):
        res.trace.append("packet has reserved destination MAC, dropping")
        return res
    bond = bonds.get(in_bundle)
    if bond is not None and not _admissible(res, bond, port, fdb, vlan, dl_src,
                                            dl_dst, now, ports, field):
        return res
    rep = bundles[in_bundle][0].ofport if in_bundle in bundles else in_port
    if not is_multicast(dl_src):   # the revalidator's xcache replays this, not the translation
        res.refreshes.append(partial(fdb.refresh, vlan, dl_src, rep))
    if learn == "refresh":
        for refresh in res.refreshes:
            refresh(now)
    elif learn and not is_multicast(dl_src):
        change = fdb.learn(vlan, dl_src, rep, now)
        if change:
            res.learned.append((vlan, dl_src, rep, change))
            res.trace.append(f"learned that {_mac(dl_src)} is on port "
                             f"{in_bundle} in VLAN {vlan}")
    pcp = tci >> 13 if tci & CFI else 0
    out = None if is_multicast(dl_dst) else fdb.lookup(vlan, dl_dst, now)
    out_bundle = bundle_of(ports[out]) if out in ports else None
    if out_bundle is None:
        res.trace.append("no learned MAC for destination, flooding")
        for name, members in sorted(bundles.items(), key=lambda b: b[1][0].ofport):
            if name != in_bundle and includes_vlan(members[0], vlan):
                _output(res, members, bonds.get(name), vlan, pcp, field)
    elif out_bundle == in_bundle:
        res.trace.append("learned port is input port, dropping")
    else:
        res.trace.append("forwarding to learned port")
        _output(res, bundles[out_bundle], bonds.get(out_bundle), vlan, pcp, field)
    return res


def _admissible(res, bond, port, fdb, vlan, dl_src, dl_dst, now, ports, field):
    """OVS's is_admissible for a frame that arrived on a bond member."""
    from pyvswitch.ofproto import bond as B
    verdict = bond.check_admissibility(port.ofport, dl_dst)
    if verdict == B.DROP:
        res.trace.append("bonding refused admissibility, dropping")
        return False
    if verdict == B.DROP_IF_MOVED:
        learned = fdb.lookup(vlan, dl_src, now)
        if (learned in ports and bundle_of(ports[learned]) != bundle_of(port)
                and not _gratuitous_arp(field, dl_dst)):
            res.trace.append("SLB bond thinks this packet looped back, dropping")
            return False
    return True


def _gratuitous_arp(field, dl_dst):
    """A VM announcing itself after a migration (OVS's is_gratuitous_arp)."""
    if field is None or field("dl_type") != ETH_ARP or dl_dst != BROADCAST:
        return False
    op = field("nw_proto")
    if op == ARP_REPLY:
        return True
    return op == ARP_REQUEST and field("nw_src") == field("nw_dst")


def _output(res, members, bond, vlan, pcp, field):
    """One copy into a bundle: its only member, or the member its bond picks."""
    if bond is None:
        port = members[0]
    else:
        ofport, bucket = bond.choose_output(vlan, field)
        port = next((m for m in members if m.ofport == ofport), None)
        if port is None:
            return                      # no usable member: OVS drops silently
        if bucket is not None:
            res.counters.append(bucket)
    res.outputs.append((port.ofport, output_tci(port, vlan, pcp)))
    if output_tci(port, vlan, 0) != output_tci(port, vlan, 1):
        res.pcp_used = True                 # the frame's PCP shows in its output
