"""One bridge's OpenFlow state: flow tables, ports, fdb, version counter.

What: tables 0..254 (each a Classifier), flow mods from ovs-ofctl text or
FlowMod objects (add, modify and delete, strict or not, cookie masks, the
out_port filter), per-rule counters credited by the revalidator, idle/hard
timeouts expired by `run(now)`, the ports map (name <-> ofport <-> dp_port)
with each port's VLAN config, and NORMAL's fdb. A new bridge starts with
`priority=0,actions=NORMAL` in table 0, as Open vSwitch; a table miss drops.

`version` increases on every change that can alter a translation (flows,
ports, VLAN config, fdb learning/expiry/flush); the datapath revalidates its
megaflows when it moves.

Time is always an argument (`now`, seconds as a float from the caller's
clock). No I/O. Single-threaded: the main (control) thread owns it.
"""

from dataclasses import dataclass, field

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.text import FlowMod, format_flow_stats, parse_flow
from pyvswitch.ofproto.classifier import Classifier
from pyvswitch.ofproto.normal import VLAN_MODES, Fdb

N_TABLES = 255
_UNSET = object()


class OfprotoError(ValueError):
    def __init__(self, message, code=None):
        super().__init__(f"{message} ({code})" if code else message)
        self.code = code


@dataclass(eq=False)
class Rule:
    table_id: int
    match: object
    priority: int
    actions: tuple
    cookie: int
    idle_timeout: int
    hard_timeout: int
    created: float
    seq: int
    importance: int = 0
    flags: frozenset = frozenset()
    n_packets: int = 0
    n_bytes: int = 0
    used: float = 0.0
    modified: float = 0.0
    removed_reason: str | None = None   # "idle", "hard", "delete"
    key: tuple = ()
    mask: tuple = ()

    def __post_init__(self):
        self.key, self.mask = self.match.key_mask()
        self.used = self.modified = self.created


@dataclass(eq=False)
class Port:
    name: str
    ofport: int
    dp_port: int
    tag: int | None = None
    trunks: frozenset = field(default_factory=frozenset)
    vlan_mode: str | None = None


class Ofproto:
    def __init__(self, name="br0", now=0.0, mac_aging_time=300,
                 mac_table_size=8192):
        self.name = name
        self.tables = {}                 # table_id -> Classifier
        self.ports = {}                  # ofport -> Port
        self._by_name, self._by_dp = {}, {}
        self.fdb = Fdb(mac_aging_time, mac_table_size)
        self.version = 0
        self._seq = 0
        self.add_flow("priority=0,actions=NORMAL", now)

    def bump(self):
        self.version += 1

    # --- ports -----------------------------------------------------------------
    def add_port(self, name, dp_port, ofport=None, tag=None, trunks=(),
                 vlan_mode=None):
        if name in self._by_name:
            raise OfprotoError(f"{name}: port already exists")
        if dp_port in self._by_dp:
            raise OfprotoError(f"datapath port {dp_port} already in use")
        if ofport is None:
            ofport = F.OFPP_LOCAL if name == self.name else self._free_ofport()
        if ofport in self.ports or not (0 < ofport < F.OFPP_MAX or
                                        ofport == F.OFPP_LOCAL):
            raise OfprotoError(f"{name}: ofport {ofport} unavailable")
        port = Port(name, ofport, dp_port)
        self._set_vlan(port, tag, trunks, vlan_mode)
        self.ports[ofport] = port
        self._by_name[name], self._by_dp[dp_port] = port, port
        self.bump()
        return port

    def _free_ofport(self):
        n = 1
        while n in self.ports:
            n += 1
        return n

    def set_port_vlan(self, name, tag=_UNSET, trunks=_UNSET, vlan_mode=_UNSET):
        """Change a port's VLAN config; omitted arguments keep their value."""
        port = self.port(name)
        self._set_vlan(port, port.tag if tag is _UNSET else tag,
                       port.trunks if trunks is _UNSET else trunks,
                       port.vlan_mode if vlan_mode is _UNSET else vlan_mode)
        self.fdb.flush(port.ofport)
        self.bump()

    @staticmethod
    def _set_vlan(port, tag, trunks, vlan_mode):
        trunks = frozenset(int(t) for t in (trunks or ()))
        if tag is not None and not 0 <= tag <= 4095:
            raise OfprotoError(f"{port.name}: tag {tag} out of range 0..4095")
        if any(not 0 <= t <= 4095 for t in trunks):
            raise OfprotoError(f"{port.name}: trunks out of range 0..4095")
        if vlan_mode not in (None, *VLAN_MODES):
            raise OfprotoError(f"{port.name}: unsupported vlan_mode {vlan_mode}")
        port.tag, port.trunks, port.vlan_mode = tag, trunks, vlan_mode

    def del_port(self, name):
        port = self.port(name)
        del self.ports[port.ofport], self._by_name[name], self._by_dp[port.dp_port]
        self.fdb.flush(port.ofport)
        self.bump()
        return port

    def port(self, name_or_ofport):
        p = (self.ports.get(name_or_ofport) if isinstance(name_or_ofport, int)
             else self._by_name.get(name_or_ofport))
        if p is None:
            raise OfprotoError(f"{name_or_ofport}: no such port")
        return p

    def port_by_dp(self, dp_port):
        return self._by_dp.get(dp_port)

    def resolve(self, name):
        """name -> ofport (or None): the resolver for flow text."""
        p = self._by_name.get(name)
        return p.ofport if p else None

    def port_name(self, ofport):
        p = self.ports.get(ofport)
        return p.name if p else None

    # --- flow mods --------------------------------------------------------------
    def _parse(self, flow, command):
        if isinstance(flow, FlowMod):
            return flow
        return parse_flow(flow, command, self.resolve)

    def add_flow(self, flow, now=0.0):
        fm = self._parse(flow, "add")
        table = 0 if fm.table is None else fm.table
        self._validate(table, fm.actions)
        cls = self._table(table)
        key, mask = fm.match.key_mask()
        old = cls.find_exact(key, mask, fm.priority)
        if old is not None:
            cls.remove(old)
            old.removed_reason = "delete"
        self._seq += 1
        rule = Rule(table, fm.match, fm.priority, tuple(fm.actions),
                    fm.cookie or 0, fm.idle_timeout, fm.hard_timeout, now,
                    self._seq, fm.importance, fm.flags)
        cls.insert(rule)
        self.bump()
        return rule

    def mod_flows(self, flow, now=0.0, strict=False):
        fm = self._parse(flow, "modify_strict" if strict else "modify")
        rules = self._select(fm, strict or fm.command == "modify_strict")
        for rule in rules:
            self._validate(rule.table_id, fm.actions)
        for rule in rules:
            rule.actions = tuple(fm.actions)
            if fm.cookie is not None and not fm.cookie_mask:
                rule.cookie = fm.cookie
            rule.modified = now
        if rules:
            self.bump()
        return rules

    def del_flows(self, flow="", now=0.0, strict=False):
        fm = self._parse(flow, "delete_strict" if strict else "delete")
        rules = self._select(fm, strict or fm.command == "delete_strict")
        for rule in rules:
            self._remove(rule, "delete")
        return rules

    def flow_mod(self, fm, now=0.0):
        """Apply a parsed FlowMod of any command; returns the rules touched."""
        if fm.command == "add":
            return [self.add_flow(fm, now)]
        if fm.command.startswith("modify"):
            return self.mod_flows(fm, now)
        if fm.command.startswith("delete"):
            return self.del_flows(fm, now)
        raise OfprotoError(f"{fm.command}: not a flow mod command")

    def _remove(self, rule, reason):
        self.tables[rule.table_id].remove(rule)
        rule.removed_reason = reason
        self.bump()

    def _table(self, table_id):
        cls = self.tables.get(table_id)
        if cls is None:
            cls = self.tables[table_id] = Classifier(F.FLOW_WORDS)
        return cls

    def _validate(self, table, actions):
        if not 0 <= table < N_TABLES:
            raise OfprotoError(f"table {table} out of range 0..254",
                               "OFPFMFC_BAD_TABLE_ID")
        for a in actions:
            if isinstance(a, A.GotoTable) and not table < a.table < N_TABLES:
                raise OfprotoError(f"goto_table:{a.table} must go to a later "
                                   f"table than {table}", "OFPBIC_BAD_TABLE_ID")

    def _select(self, fm, strict):
        """Rules a modify/delete/dump request selects."""
        key, mask = fm.match.key_mask()
        out = []
        for rule in self.rules(fm.table):
            if strict:
                if rule.mask != mask or rule.key != key or rule.priority != fm.priority:
                    continue
            elif not _covers(key, mask, rule):
                continue
            if fm.cookie_mask and (rule.cookie & fm.cookie_mask) != fm.cookie:
                continue
            if fm.out_port is not None and not A.outputs_to(rule.actions, fm.out_port):
                continue
            out.append(rule)
        return out

    def rules(self, table=None):
        """Rules in dump order: table, then priority (highest first), then age."""
        ids = sorted(self.tables) if table is None else [table]
        for tid in ids:
            cls = self.tables.get(tid)
            if cls is not None:
                yield from sorted(cls, key=lambda r: (-r.priority, r.seq))

    def lookup(self, table_id, flow, wc=None):
        cls = self.tables.get(table_id)
        return cls.lookup(flow, wc) if cls is not None else None

    # --- stats, timeouts, dumps ---------------------------------------------------
    def credit(self, rule, packets, nbytes, now):
        rule.n_packets += packets
        rule.n_bytes += nbytes
        if packets and now > rule.used:
            rule.used = now

    def run(self, now):
        """Expire flows past their idle/hard timeouts and aged fdb entries.
        Returns the expired rules (removed_reason "hard" or "idle")."""
        expired = []
        for rule in list(self.rules()):
            if rule.hard_timeout and now > rule.modified + rule.hard_timeout:
                self._remove(rule, "hard")
            elif rule.idle_timeout and now > rule.used + rule.idle_timeout:
                self._remove(rule, "idle")
            else:
                continue
            expired.append(rule)
        if self.fdb.expire(now):
            self.bump()
        return expired

    def dump_flows(self, flow="", now=0.0, names=False):
        """`ovs-ofctl dump-flows` text (one line per rule, newline-terminated)."""
        fm = self._parse(flow, "dump")
        namer = self.port_name if names else None
        lines = [format_flow_stats(
            match=r.match, priority=r.priority, actions=r.actions,
            table=r.table_id, cookie=r.cookie, duration=now - r.created,
            n_packets=r.n_packets, n_bytes=r.n_bytes,
            idle_timeout=r.idle_timeout, hard_timeout=r.hard_timeout,
            idle_age=now - r.used, hard_age=now - r.modified,
            importance=r.importance, flags=r.flags, namer=namer)
            for r in self._select(fm, False)]
        return "".join(line + "\n" for line in lines)

    # --- fdb ------------------------------------------------------------------------
    def fdb_show(self, now):
        return self.fdb.show(now)

    def fdb_flush(self):
        n = self.fdb.flush()
        self.bump()
        return n

    def set_mac_config(self, aging_time=None, table_size=None):
        self.fdb.set_config(aging_time, table_size)
        self.bump()


def _covers(key, mask, rule):
    """Non-strict selection: the rule is at least as specific as (key, mask)."""
    for rk, rm, k, m in zip(rule.key, rule.mask, key, mask):
        if rm & m != m or rk & m != k:
            return False
    return True
