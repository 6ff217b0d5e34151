"""LACP (IEEE 802.1AX link aggregation control), as Open vSwitch's lib/lacp.c.

What: for a bond with `lacp=active|passive`, one Lacp object keeps each
member's partner (the far system's id, key, port and state bits, as read from
the last LACPDU) and builds the LACPDUs the members send. It answers:
- `negotiated()`: some member has a current partner (bond.py then uses the
  configured mode; without it OVS refuses the bond: lacp_status
  "configured");
- `may_enable(ofport)`: the member is attached (its partner is the
  aggregator the bond chose: the partner system of the lowest-numbered current
  member, same key) and in sync -- bond.py enables a member only then.

Timing (other_config:lacp-time): "slow" (default) sends every 30 s and
expires a partner after 90 s, "fast" every 1 s / 3 s. A passive bond sends
only while some partner is active. A member whose partner expired falls back
to "defaulted" and is not attached.

Frames: LACPDUs (01:80:c2:00:00:02, ethertype 0x8809, subtype 1) arriving
on a member reach `rx` through xlate's slow path (a userspace action); the
owner transmits what `run(now)` returns on each member. Pure logic, time
as an argument; single-threaded (the switch lock guards it).
"""

import struct
from dataclasses import dataclass, field

SLOW_ARG = 1 << 40                 # the ('userspace', arg) of LACPDUs (controller args are small)
LACP_DST = bytes.fromhex("0180c2000002")
ETH_SLOW = 0x8809
ACTIVITY, TIMEOUT, AGGREGATION, SYNC = 0x01, 0x02, 0x04, 0x08
COLLECTING, DISTRIBUTING, DEFAULTED, EXPIRED = 0x10, 0x20, 0x40, 0x80
FAST, SLOW = 1.0, 30.0
_INFO = struct.Struct("!BB H6s H H H B 3x")        # TLV type, len, then actor/partner info


@dataclass
class Partner:
    sys_priority: int = 0
    sys_id: bytes = bytes(6)
    key: int = 0
    port_priority: int = 0
    port: int = 0
    state: int = 0


@dataclass(eq=False)
class LacpMember:
    name: str
    ofport: int
    partner: Partner = field(default_factory=Partner)
    expires: float | None = None         # partner info valid until then
    next_tx: float = 0.0
    attached: bool = False


class Lacp:
    def __init__(self, name, sys_id, active=True, fast=False, priority=65534, key=None):
        self.name, self.sys_id, self.active = name, bytes(sys_id), active
        self.fast, self.priority = fast, priority
        self.key = key
        self.members = {}                # ofport -> LacpMember

    def configure(self, sys_id, active, fast):
        self.sys_id, self.active, self.fast = bytes(sys_id), active, fast

    def set_members(self, members):
        """members: [(name, ofport)]."""
        want = dict((ofport, name) for name, ofport in members)
        for ofport in [o for o in self.members if o not in want]:
            del self.members[ofport]
        for ofport, name in want.items():
            self.members.setdefault(ofport, LacpMember(name, ofport))
        if self.key is None and want:
            self.key = min(want)

    # --- state ----------------------------------------------------------------
    def _current(self, m, now):
        return m.expires is not None and now < m.expires

    def negotiated(self, now=None):
        return any(m.expires is not None and (now is None or now < m.expires)
                   for m in self.members.values())

    def _update(self, now):
        """Attach the current members whose partner is the lead's aggregator."""
        current = [m for _, m in sorted(self.members.items()) if self._current(m, now)]
        lead = current[0].partner if current else None
        for m in self.members.values():
            p = m.partner
            m.attached = (lead is not None and self._current(m, now) and bool(p.state & AGGREGATION)
                          and (p.sys_id, p.key) == (lead.sys_id, lead.key))

    def may_enable(self, ofport, now):
        self._update(now)
        m = self.members.get(ofport)
        return m is not None and m.attached and bool(m.partner.state & SYNC)

    def actor_state(self, m, now):
        s = AGGREGATION | (ACTIVITY if self.active else 0) | (TIMEOUT if self.fast else 0)
        if m.attached:
            s |= SYNC | COLLECTING | DISTRIBUTING
        if not self._current(m, now):
            s |= DEFAULTED | (EXPIRED if m.expires is not None else 0)
        return s

    # --- frames -----------------------------------------------------------------
    def rx(self, ofport, frame, now):
        """A LACPDU arrived on member `ofport`; True when the bond must look
        again (a member's partner or attachment changed)."""
        m = self.members.get(ofport)
        pdu = parse(frame)
        if m is None or pdu is None:
            return False
        actor, _ = pdu
        before = (m.partner, m.attached, m.expires is not None)
        m.partner = actor
        fast = bool(actor.state & TIMEOUT) or self.fast
        m.expires = now + 3 * (FAST if fast else SLOW)
        self._update(now)
        return (m.partner, m.attached, True) != before

    def run(self, now):
        """(changed, [(ofport, LACPDU frame)]) due now: partners that expired,
        periodic transmissions."""
        was = {o: (m.attached, self._current(m, now)) for o, m in self.members.items()}
        self._update(now)
        changed = any((m.attached, self._current(m, now)) != was[o]
                      for o, m in self.members.items())
        out = []
        partner_active = any(m.partner.state & ACTIVITY for m in self.members.values()
                             if self._current(m, now))
        for o, m in sorted(self.members.items()):
            if not (self.active or partner_active) or now < m.next_tx:
                continue
            fast = bool(m.partner.state & TIMEOUT) if self._current(m, now) else self.fast
            m.next_tx = now + (FAST if fast or self.fast else SLOW)
            out.append((o, self.pdu(m, now)))
        return changed, out

    def pdu(self, m, now, src_mac=None):
        actor = _INFO.pack(1, 20, self.priority, self.sys_id, self.key or 0, 0xFF, m.ofport,
                           self.actor_state(m, now))
        p = m.partner if self._current(m, now) else Partner()
        partner = _INFO.pack(2, 20, p.sys_priority, p.sys_id, p.key, p.port_priority, p.port,
                             p.state)
        body = (bytes([1, 1]) + actor + partner + bytes([3, 16]) + struct.pack("!H", 0)
                + bytes(12) + bytes([0, 0]) + bytes(50))
        return LACP_DST + (src_mac or self.sys_id) + struct.pack("!H", ETH_SLOW) + body

    def show(self, now):
        """`ovs-appctl lacp/show` text."""
        self._update(now)
        sid = ":".join(f"{b:02x}" for b in self.sys_id)
        lines = [f"---- {self.name} ----",
                 f"  status: {'active' if self.active else 'passive'}"
                 f"{' negotiated' if self.negotiated(now) else ''}",
                 f"  sys_id: {sid}", f"  sys_priority: {self.priority}",
                 f"  aggregation key: {self.key or 0}",
                 f"  lacp_time: {'fast' if self.fast else 'slow'}"]
        for o, m in sorted(self.members.items(), key=lambda x: x[1].name):
            cur = self._current(m, now)
            status = "current" if cur else ("expired" if m.expires is not None else "defaulted")
            lines += ["", f"member: {m.name}: {status} {'attached' if m.attached else 'detached'}",
                      f"  port_id: {o}", f"  may_enable: {'true' if self.may_enable(o, now) else 'false'}",
                      "", f"  actor sys_id: {sid}", f"  actor port_id: {o}",
                      f"  actor state: {_state_text(self.actor_state(m, now))}"]
            if cur:
                p = m.partner
                lines += [f"  partner sys_id: {':'.join(f'{b:02x}' for b in p.sys_id)}",
                          f"  partner key: {p.key}", f"  partner port_id: {p.port}",
                          f"  partner state: {_state_text(p.state)}"]
        return "\n".join(lines) + "\n"


def parse(frame):
    """(actor Partner, partner Partner) of a LACPDU frame, or None."""
    if len(frame) < 14 + 2 + 40 or frame[0:6] != LACP_DST:
        return None
    if struct.unpack_from("!H", frame, 12)[0] != ETH_SLOW or frame[14] != 1:
        return None
    out = []
    for off in (16, 36):
        t, ln, prio, sid, key, pprio, port, state = _INFO.unpack_from(frame, off)
        if ln != 20:
            return None
        out.append(Partner(prio, sid, key, pprio, port, state))
    return tuple(out)


def is_lacpdu(dl_dst, dl_type):
    return dl_dst == int.from_bytes(LACP_DST, "big") and dl_type == ETH_SLOW


def _state_text(s):
    names = ("activity", "timeout", "aggregation", "synchronized", "collecting",
             "distributing", "defaulted", "expired")
    return " ".join(n for i, n in enumerate(names) if s >> i & 1)
