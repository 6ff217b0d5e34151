"""Bonds: one DB Port over several interfaces, as Open vSwitch's ofproto/bond.c.

What: a Bond keeps its members' state (carrier, enabled, up/down delays),
the active member, and for the balanced modes 256 hash buckets each pinned
to a member. NORMAL (normal.py) asks it two things per translation:
- `check_admissibility(ofport, dl_dst)`: may a frame that arrived on this
  member enter the bridge? ACCEPT, DROP, or DROP_IF_MOVED (balance-slb:
  drop it if its source MAC is learned on another bundle -- the bond probably
  sent it out itself and got it back).
- `choose_output(vlan, field)`: the member ofport a frame leaves by, or None.

Modes (Port bond_mode):
- active-backup: everything leaves by the active member; frames arriving on
  another member are dropped (as Linux bonding does).
- balance-slb: the bucket of hash(source MAC, VLAN) names the member; the
  buckets are moved between members by `rebalance` every
  other_config:bond-rebalance-interval ms (default 10000, 0 = never, at
  least 1000) from their measured load. Multicast arriving on a member other
  than the active one is dropped, so a physical switch flooding into every
  member delivers it once.
- balance-tcp: hash of the L3/L4 addresses and ports (un-wildcarded in the
  megaflow). It needs LACP: as Open vSwitch, without a negotiated LACP
  partner such a bond sends and receives nothing.

LACP (lacp=active|passive, lacp.py): lacp_status is "negotiated" while some
member has a current partner, else "configured"; a member may be enabled only
when LACP attaches it. A configured but not negotiated bond forwards nothing,
or works as active-backup with other_config:lacp-fallback-ab=true; a
negotiated one admits frames on any enabled (or about to be) member.

Link monitoring is carrier-based (`run(now, carriers)`): a member is enabled
bond_updelay ms after its carrier comes up and disabled bond_downdelay ms
after it goes down; the active member is re-chosen when it is disabled
(other_config:bond-primary first, then the last active one by MAC, then any
enabled member, else the member whose updelay ends first, enabled at once).
When the active member changes the owner should send learning packets
(`take_learning()`), so the physical network learns the new path.

Accounting: the buckets a translation used are put in xlate's rules_hit; the
revalidator credits megaflow bytes to them like to rules (n_bytes), and
`rebalance` reads the growth.

Time is the `now` argument (seconds); delays are in ms as in the database.
Pure logic, no I/O; single-threaded (the switch lock guards it, like ofproto).
"""

import zlib
from dataclasses import dataclass, field

from pyvswitch.core import vlog

log = vlog.Module("bond")

MODES = ("active-backup", "balance-slb", "balance-tcp")
ACCEPT, DROP, DROP_IF_MOVED = "accept", "drop", "drop-if-moved"
BOND_MASK = 0xFF
ETH_IP, ETH_IPV6 = 0x0800, 0x86DD


@dataclass
class Settings:
    mode: str = "active-backup"
    updelay: int = 0                 # ms
    downdelay: int = 0               # ms
    rebalance_interval: int = 10000  # ms, 0: never
    basis: int = 0
    lacp: str = "off"                # off | active | passive (not negotiated)
    fallback_ab: bool = False
    primary: str | None = None


@dataclass(eq=False)
class Member:
    name: str
    ofport: int
    mac: bytes | None = None
    enabled: bool = False
    may_enable: bool = True
    carrier: bool = False
    delay_expires: float | None = None   # a pending up/down delay ends then
    tx_bytes: int = 0                    # rebalancing scratch


@dataclass(eq=False)
class Bucket:
    """One hash bucket; n_packets/n_bytes/used are credited like a rule's."""
    member: Member | None = None
    n_packets: int = 0
    n_bytes: int = 0
    used: float = 0.0
    seen: int = 0                        # n_bytes at the last rebalance
    load: int = 0                        # moving average of bytes sent


@dataclass(eq=False)
class Bond:
    name: str
    settings: Settings = field(default_factory=Settings)
    members: dict = field(default_factory=dict)     # name -> Member
    active: Member | None = None
    active_mac: bytes = bytes(6)
    buckets: list = field(default_factory=list)
    next_rebalance: float = 0.0
    send_learning: bool = False
    lacp: object = None                  # lacp.Lacp when lacp=active|passive
    negotiated: bool = False
    _rr: int = 0

    def __post_init__(self):
        self.buckets = [Bucket() for _ in range(BOND_MASK + 1)]

    # --- configuration -----------------------------------------------------
    @property
    def lacp_status(self):
        if self.settings.lacp == "off" or self.lacp is None:
            return "off"
        return "negotiated" if self.negotiated else "configured"

    def lacp_rx(self, ofport, frame, now):
        """A LACPDU arrived on a member (xlate's slow path)."""
        return self.lacp is not None and self.lacp.rx(ofport, frame, now)

    def reconfigure(self, s, now):
        """New settings; True when translations must be redone."""
        old, self.settings = self.settings, s
        changed = (old.mode, old.basis, old.rebalance_interval, old.primary,
                   old.lacp, old.fallback_ab) != (s.mode, s.basis, s.rebalance_interval,
                                                  s.primary, s.lacp, s.fallback_ab)
        if changed:
            for b in self.buckets:
                b.member, b.load = None, 0
            self.next_rebalance = now + s.rebalance_interval / 1000
        return changed

    def set_members(self, members, carriers, now):
        """members: [(name, ofport, mac)]; a new member starts enabled when
        its carrier is up (OVS's bond_member_register)."""
        want = {name: (ofport, mac) for name, ofport, mac in members}
        for name in [n for n in self.members if n not in want]:
            m = self.members.pop(name)
            for b in self.buckets:
                if b.member is m:
                    b.member = None
            if self.active is m:
                self.active = None
                self._choose_active(now)
        for name, (ofport, mac) in want.items():
            m = self.members.get(name)
            if m is None:
                m = self.members[name] = Member(name, ofport, mac)
                m.carrier = bool(carriers.get(ofport, False))
                self._enable(m, m.carrier)
            m.ofport, m.mac = ofport, mac

    # --- link state ----------------------------------------------------------
    def run(self, now, carriers):
        """Carrier-based monitoring; carriers {ofport: bool}. Returns True when
        what translations produce may have changed."""
        before = self._state()
        if self.lacp is not None:
            self.negotiated = self.lacp.negotiated(now)
            for m in self._sorted():
                lm = self.lacp.members.get(m.ofport)
                m.may_enable = self.lacp.may_enable(m.ofport, now) or (
                    self.settings.fallback_ab and lm is not None and lm.expires is None)
        for m in self._sorted():
            m.carrier = bool(carriers.get(m.ofport, m.carrier))
            self._link_update(m, now)
        primary = self._primary()
        if (self.settings.mode == "active-backup" and primary is not None
                and primary.enabled and self.active is not primary):
            self._choose_active(now)
        elif self.active is None or not self.active.enabled:
            self._choose_active(now)
        return self._state() != before

    def _state(self):
        return (self.active, self.negotiated,
                tuple((m.name, m.enabled, m.may_enable) for m in self._sorted()))

    def _link_update(self, m, now):
        up = m.carrier and m.may_enable
        pending = m.delay_expires is not None
        if (up == m.enabled) == pending:
            log.info("member %s: link state %s", m.name, "up" if up else "down")
            if up == m.enabled:
                m.delay_expires = None
                log.info("member %s: will not be %s", m.name, "disabled" if up else "enabled")
            else:
                delay = self.settings.updelay if up else self.settings.downdelay
                m.delay_expires = now + delay / 1000
                if delay:
                    log.info("member %s: will be %s if it stays %s for %d ms", m.name,
                             "enabled" if up else "disabled", "up" if up else "down", delay)
        if m.delay_expires is not None and now >= m.delay_expires:
            self._enable(m, up)

    def _enable(self, m, enable):
        m.delay_expires = None
        if enable != m.enabled:
            m.enabled = enable
            if not enable:
                self.send_learning = True
            log.info("member %s: %s", m.name, "enabled" if enable else "disabled")

    def _sorted(self):
        return [self.members[n] for n in sorted(self.members)]

    def _primary(self):
        return self.members.get(self.settings.primary) if self.settings.primary else None

    def _choose_active(self, now):
        old = self.active
        self.active = self._choose_member(now)
        if self.active is not None:
            if not self.active.enabled:
                log.info("bond %s: active member is now %s, skipping remaining %d ms "
                         "updelay (since no member was enabled)", self.name, self.active.name,
                         max(0, (self.active.delay_expires - now) * 1000))
                self._enable(self.active, True)
            elif self.active is not old:
                log.info("bond %s: active member is now %s", self.name, self.active.name)
            self.send_learning = True
            if self.active.mac:
                self.active_mac = self.active.mac
        elif old is not None:
            log.info("bond %s: all members disabled", self.name)

    def _choose_member(self, now):
        primary = self._primary()
        if primary is not None and primary.enabled:
            return primary
        last = next((m for m in self._sorted() if m.mac == self.active_mac and m.enabled), None)
        if last is not None:
            return last
        enabled = [m for m in self._sorted() if m.enabled]
        if enabled:
            return enabled[0]
        waiting = [m for m in self._sorted() if m.delay_expires is not None and m.may_enable]
        return min(waiting, key=lambda m: m.delay_expires) if waiting else None

    def take_learning(self):
        """True once after the active member changed (or a member went down)
        in a mode that needs learning packets (OVS sends them for active-backup
        and balance-slb without LACP)."""
        send, self.send_learning = self.send_learning, False
        return (send and self.active is not None and self.lacp_status == "off"
                and self.settings.mode in ("active-backup", "balance-slb"))

    # --- what xlate asks -------------------------------------------------------
    def _effective_mode(self):
        """The mode in force, or None when nothing may pass (LACP configured
        but never negotiated, or balance-tcp without LACP)."""
        s = self.settings
        if self.lacp_status == "configured":
            return "active-backup" if s.fallback_ab else None
        if s.mode == "balance-tcp" and self.lacp_status != "negotiated":
            return None
        return s.mode

    def check_admissibility(self, ofport, dl_dst):
        m = next((m for m in self.members.values() if m.ofport == ofport), None)
        mode = self._effective_mode()
        if m is None or mode is None:
            return DROP
        if self.lacp_status == "negotiated":     # the partner knows it is a bond
            return ACCEPT if m.enabled or m.may_enable else DROP
        if dl_dst >> 40 & 1 and m is not self.active:
            return DROP                         # multicast only via the active member
        if mode == "active-backup":
            return ACCEPT if m is self.active else DROP
        return DROP_IF_MOVED

    def choose_output(self, vlan, field):
        """(member ofport or None to drop, the Bucket used or None) for a
        frame in `vlan`; the bucket goes into rules_hit for accounting."""
        mode = self._effective_mode()
        if mode is None:
            return None, None
        if mode == "active-backup":
            return (self.active.ofport if self.active is not None else None), None
        h = self.hash_mac(field("dl_src"), vlan) if mode == "balance-slb" else self._hash_l4(field)
        b = self.buckets[h & BOND_MASK]
        if b.member is None or not b.member.enabled or b.member.name not in self.members:
            b.member = self._next_enabled()
        return (b.member.ofport if b.member is not None else None), b

    def _next_enabled(self):
        enabled = [m for m in self._sorted() if m.enabled]
        if not enabled:
            return None
        self._rr = (self._rr + 1) % len(enabled)
        return enabled[self._rr]

    def hash_mac(self, mac, vlan, basis=None):
        basis = self.settings.basis if basis is None else basis
        data = mac.to_bytes(6, "big") + vlan.to_bytes(2, "big")
        return zlib.crc32(data, basis & 0xFFFFFFFF)

    def _hash_l4(self, field):
        """Symmetric L3/L4 hash (OVS's NX_HASH_FIELDS_SYMMETRIC_L3L4_UDP):
        both directions of a connection land on one member."""
        dl_type = field("dl_type")
        if dl_type == ETH_IP:
            addrs = sorted((field("nw_src"), field("nw_dst")))
        elif dl_type == ETH_IPV6:
            addrs = sorted((field("ipv6_src_hi") << 64 | field("ipv6_src_lo"),
                            field("ipv6_dst_hi") << 64 | field("ipv6_dst_lo")))
        else:
            return self.hash_mac(field("dl_src"), 0)
        proto = field("nw_proto")
        ports = sorted((field("tp_src"), field("tp_dst"))) if proto in (6, 17, 132) else (0, 0)
        data = f"{addrs[0]},{addrs[1]},{proto},{ports[0]},{ports[1]}".encode()
        return zlib.crc32(data, self.settings.basis & 0xFFFFFFFF)

    # --- rebalancing (balance-slb, balance-tcp) ------------------------------
    def balanced(self):
        return (self.settings.rebalance_interval > 0
                and self._effective_mode() in ("balance-slb", "balance-tcp"))

    def rebalance(self, now):
        """Move buckets from the most to the least loaded members (OVS's
        algorithm); True when a bucket moved."""
        if not self.balanced() or now < self.next_rebalance:
            return False
        self.next_rebalance = now + self.settings.rebalance_interval / 1000
        for b in self.buckets:
            b.load += b.n_bytes - b.seen
            b.seen = b.n_bytes
        moved = False
        bals = [m for m in self._sorted() if m.enabled]
        for m in bals:
            m.tx_bytes = sum(b.load for b in self.buckets if b.member is m)
        entries = {m.name: [b for b in self.buckets if b.member is m and b.load] for m in bals}
        while len(bals) > 1:
            bals.sort(key=lambda m: -m.tx_bytes)
            frm, to = bals[0], bals[-1]
            overload = frm.tx_bytes - to.tx_bytes
            if overload < to.tx_bytes >> 5 or overload < 100000:
                break
            e = _entry_to_migrate(entries[frm.name], frm.tx_bytes, to.tx_bytes)
            if e is None:
                bals.remove(frm)
                continue
            log.info("bond %s: shift %dkB of load (with hash %d) from %s to %s (now carrying "
                     "%dkB and %dkB load, respectively)", self.name, e.load // 1024,
                     self.buckets.index(e), frm.name, to.name, (frm.tx_bytes - e.load) // 1024,
                     (to.tx_bytes + e.load) // 1024)
            frm.tx_bytes -= e.load
            to.tx_bytes += e.load
            e.member = to
            entries[frm.name].remove(e)
            moved = True
        for b in self.buckets:
            b.load //= 2
        return moved

    # --- appctl ---------------------------------------------------------------
    def member(self, name):
        m = self.members.get(name)
        if m is None:
            raise BondError("no such member")
        return m

    def set_active_member(self, name):
        m = self.member(name)
        if not m.enabled:
            raise BondError("cannot make disabled member active")
        if self.active is m:
            return "no change"
        self.active = m
        if m.mac:
            self.active_mac = m.mac
        self.send_learning = True
        log.info("bond %s: active member is now %s", self.name, m.name)
        return "done"

    def enable_member(self, name, enable):
        self._enable(self.member(name), enable)
        return "enabled" if enable else "disabled"

    def migrate(self, hash_, name):
        if self.settings.mode != "balance-slb":
            raise BondError("not an SLB bond")
        m = self.member(name)
        if not m.enabled:
            raise BondError("cannot migrate to disabled member")
        self.buckets[hash_ & BOND_MASK].member = m
        return "migrated"

    def show(self, now):
        """`ovs-appctl bond/show` text for this bond."""
        s = self.settings
        lines = [f"---- {self.name} ----", f"bond_mode: {s.mode}",
                 "bond may use recirculation: no, Recirc-ID : -1",
                 f"bond-hash-basis: {s.basis}", "lb_output action: disabled, bond-id: -1",
                 "all members active: false",
                 f"updelay: {s.updelay} ms", f"downdelay: {s.downdelay} ms"]
        if self.balanced():
            lines.append(f"next rebalance: {max(0, int((self.next_rebalance - now) * 1000))} ms")
        lines += [f"lacp_status: {self.lacp_status}",
                  f"lacp_fallback_ab: {'true' if s.fallback_ab else 'false'}",
                  "active-backup primary: " + (
                      "<none>" if not s.primary else
                      s.primary + ("" if s.primary in self.members else " (no such member)"))]
        last = next((m for m in self._sorted() if m.mac == self.active_mac), None)
        lines.append(f"active member mac: {_mac(self.active_mac)}({last.name if last else 'none'})")
        for m in self._sorted():
            lines += ["", f"member {m.name}: {'enabled' if m.enabled else 'disabled'}"]
            if m is self.active:
                lines.append("  active member")
            if m.delay_expires is not None:
                lines.append(f"  {'downdelay' if m.enabled else 'updelay'} expires in "
                             f"{max(0, int((m.delay_expires - now) * 1000))} ms")
            lines.append(f"  may_enable: {'true' if m.may_enable else 'false'}")
            if self.balanced():
                for i, b in enumerate(self.buckets):
                    if b.member is m and (b.load + b.n_bytes - b.seen) // 1024:
                        lines.append(f"  hash {i}: {(b.load + b.n_bytes - b.seen) // 1024} kB load")
        return "\n".join(lines) + "\n\n"

    def list_line(self):
        return f"{self.name}\t{self.settings.mode}\t-1\t{', '.join(sorted(self.members))}"


class BondError(ValueError):
    """An appctl request the bond refuses; str(e) is OVS's message."""


def _entry_to_migrate(entries, from_bytes, to_bytes):
    if len(entries) < 2:
        return None                      # one hash: moving it changes nothing
    ideal = (from_bytes + to_bytes) // 2
    for e in entries:
        new_low = min(from_bytes - e.load, to_bytes + e.load)
        if new_low > to_bytes and new_low - to_bytes >= (ideal - to_bytes) // 10:
            return e
    return None


def _mac(b):
    return ":".join(f"{x:02x}" for x in (b or bytes(6)))


def settings_from_port(cfg, warn=log.warn):
    """Settings from a DB Port config dict (dbstate's port shape), with OVS's
    defaults and warnings."""
    name = cfg.get("name", "?")
    oc = cfg.get("other_config") or {}
    mode = cfg.get("bond_mode") or "active-backup"
    if mode not in MODES:
        warn("port %s: unknown bond_mode %s, defaulting to active-backup", name, mode)
        mode = "active-backup"
    lacp = cfg.get("lacp") or "off"
    if mode == "balance-tcp" and lacp == "off":
        warn("port %s: balance-tcp needs LACP (lacp=active or passive), which is off: "
             "the bond forwards nothing (as Open vSwitch)", name)
    interval = _int(oc.get("bond-rebalance-interval"), 10000)
    if interval and interval < 1000:
        interval = 1000
    detect = oc.get("bond-detect-mode", "carrier")
    if detect != "carrier":
        warn("port %s: unsupported bond-detect-mode %s, defaulting to carrier", name, detect)
    return Settings(mode=mode, updelay=max(0, int(cfg.get("bond_updelay") or 0)),
                    downdelay=max(0, int(cfg.get("bond_downdelay") or 0)),
                    rebalance_interval=interval, basis=_int(oc.get("bond-hash-basis"), 0),
                    lacp=lacp, fallback_ab=_bool(oc.get("lacp-fallback-ab")),
                    primary=oc.get("bond-primary") or None)


def _int(text, default):
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _bool(text):
    return str(text).lower() == "true"
