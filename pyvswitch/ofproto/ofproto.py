"""One bridge's OpenFlow state: flow tables, ports, fdb, version counter.

What: tables 0..254 (each a Classifier), flow mods from ovs-ofctl text or
FlowMod objects (add, modify and delete, strict or not, cookie masks, the
out_port filter), per-rule counters credited by the revalidator, idle/hard
timeouts expired by `run(now)`, the ports map (name <-> ofport <-> dp_port)
with each port's VLAN config, and NORMAL's fdb. A new bridge starts with
`priority=0,actions=NORMAL` in table 0, as Open vSwitch; a table miss drops.

Conjunction clause rules (only conjunction/note actions) are kept per table
beside the classifier (`conj_clauses`), which xlate consults; groups and
meters live in groups.py's tables (API: groupmeter.py); the controller path
(`packet_in`, `on_packet_in`) is packetin.py's. check_overlap refuses an add
that overlaps a rule of the same priority (OFPFMFC_OVERLAP); a flow naming a
missing group or meter is refused.

`version` increases on every change that can alter a translation (flows,
ports and their liveness, VLAN config, groups, meters, fdb
learning/expiry/flush); the datapath revalidates its megaflows when it moves.

Time is always an argument (`now`, seconds as a float from the caller's
clock). No I/O. Single-threaded: the main (control) thread owns it.
"""

from dataclasses import dataclass, field

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow.text import FlowMod, format_flow_stats, parse_flow
from pyvswitch.ofproto.classifier import Classifier, Counters
from pyvswitch.ofproto.groupmeter import GroupMeterMixin
from pyvswitch.ofproto.groups import GroupTable, MeterTable
from pyvswitch.ofproto import mirror as MI
from pyvswitch.ofproto.normal import VLAN_MODES, Fdb
from pyvswitch.ofproto.packetin import PacketInMixin

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
    removed_reason: str | None = None   # "idle", "hard", "delete", "group_delete"
    key: tuple = ()
    mask: tuple = ()
    write_actions: tuple | None = None   # OpenFlow 1.1+ instructions
    clear_actions: bool = False
    write_metadata: tuple | None = None
    meter: int | None = None
    learned_by: object = None            # the rule whose learn(delete_learned) added it

    def __post_init__(self):
        self.key, self.mask = self.match.key_mask()
        self.used = self.modified = self.created

    @property
    def is_conj(self):
        """A conjunction clause: only conjunction (and note) actions."""
        return bool(self.actions) and all(
            isinstance(a, (A.Conjunction, A.Note)) for a in self.actions) and any(
            isinstance(a, A.Conjunction) for a in self.actions)

    def all_actions(self):
        return tuple(self.actions) + tuple(self.write_actions or ())


@dataclass(eq=False)
class Port:
    name: str
    ofport: int
    dp_port: int
    tag: int | None = None
    trunks: frozenset = field(default_factory=frozenset)
    vlan_mode: str | None = None
    live: bool = True       # link up (fast-failover groups watch it)
    bundle: str | None = None   # the DB Port it belongs to (NORMAL, bonds); None: its name
    priority_tags: str | None = None   # Port other_config:priority-tags
    patch: object = None    # a patch port (no dp_port): counters .tx/.rx (ports/patch.py)
    peer: tuple | None = None   # patch: (peer Ofproto, peer ofport) when linked


class Ofproto(PacketInMixin, GroupMeterMixin):
    def __init__(self, name="br0", now=0.0, mac_aging_time=300,
                 mac_table_size=8192):
        self.name = name
        self.tables = {}                 # table_id -> Classifier
        self.conj = {}                   # table_id -> [conjunction clause rules]
        self.groups = GroupTable()
        self.mirrors = ()                # mirror.Mirror, set by set_mirrors
        self.mirror_out = frozenset()    # their output ports (reserved for mirroring)
        self.mirror_stats = {}           # mirror name -> mirror.Counters (tx)
        self._table_counters = {}        # table_id -> (matched, missed) Counters
        self.meters = MeterTable()
        PacketInMixin.__init__(self)
        self.ports = {}                  # ofport -> Port
        self._by_name, self._by_dp = {}, {}
        self.bundles = {}                # bundle name -> [Port], lowest ofport first
        self.bonds = {}                  # bundle name -> bond.Bond
        self.fdb = Fdb(mac_aging_time, mac_table_size)
        self.version = 0
        self.fdb_changes = {}            # MAC learned, moved or aged since the last take -> seq
        self._seq = 0
        self._timed = {}                 # rules with an idle or hard timeout (a set, ordered)
        self.add_flow("priority=0,actions=NORMAL", now)

    def bump(self):
        self.version += 1

    # Every bridge's fdb changes in one order (a translation crosses bridges
    # through patch ports): a translation made when fdb_seq was N has seen
    # every change numbered <= N.
    fdb_seq = 0

    def fdb_changed(self, macs):
        """MAC learning changed these MACs' entries: only the megaflows to or
        from them need a new translation (not a version bump, which makes
        the daemon re-translate every megaflow), and only those translated
        before the change (Ofproto.fdb_seq)."""
        Ofproto.fdb_seq += 1
        for mac in macs:
            self.fdb_changes[mac] = Ofproto.fdb_seq

    def take_fdb_changes(self):
        """{mac: fdb_seq of its latest change} since the last take."""
        out, self.fdb_changes = self.fdb_changes, {}
        return out

    # --- ports -----------------------------------------------------------------
    def add_port(self, name, dp_port, ofport=None, tag=None, trunks=(),
                 vlan_mode=None, bundle=None, priority_tags=None, patch=None):
        """dp_port None: a port with no datapath port (a patch port, which
        xlate crosses into its peer's pipeline)."""
        if name in self._by_name:
            raise OfprotoError(f"{name}: port already exists")
        if dp_port is not None and dp_port in self._by_dp:
            raise OfprotoError(f"datapath port {dp_port} already in use")
        if ofport is None:
            ofport = F.OFPP_LOCAL if name == self.name else self._free_ofport()
        if ofport in self.ports or not (0 < ofport < F.OFPP_MAX or
                                        ofport == F.OFPP_LOCAL):
            raise OfprotoError(f"{name}: ofport {ofport} unavailable")
        port = Port(name, ofport, dp_port, bundle=bundle, priority_tags=priority_tags,
                    patch=patch)
        self._set_vlan(port, tag, trunks, vlan_mode)
        self.ports[ofport] = port
        self._by_name[name] = port
        if dp_port is not None:
            self._by_dp[dp_port] = port
        self._index_bundles()
        self.bump()
        return port

    def _index_bundles(self):
        self.bundles = {}
        for p in sorted(self.ports.values(), key=lambda p: p.ofport):
            self.bundles.setdefault(p.bundle or p.name, []).append(p)

    def _free_ofport(self):
        n = 1
        while n in self.ports:
            n += 1
        return n

    def set_port_vlan(self, name, tag=_UNSET, trunks=_UNSET, vlan_mode=_UNSET,
                      priority_tags=_UNSET):
        """Change a port's VLAN config; omitted arguments keep their value."""
        port = self.port(name)
        self._set_vlan(port, port.tag if tag is _UNSET else tag,
                       port.trunks if trunks is _UNSET else trunks,
                       port.vlan_mode if vlan_mode is _UNSET else vlan_mode)
        if priority_tags is not _UNSET:
            port.priority_tags = priority_tags
        self.fdb.flush(port.ofport)
        self.bump()

    def set_bonds(self, bonds):
        """Install the bridge's bonds {bundle name: bond.Bond}."""
        if bonds != self.bonds:
            self.bonds = dict(bonds)
            self.bump()

    def set_patch_peer(self, name, peer):
        """Link a patch port to (peer Ofproto, peer ofport), or unlink (None)."""
        port = self.port(name)
        if port.peer != peer:
            port.peer = peer
            self.bump()

    @staticmethod
    def _set_vlan(port, tag, trunks, vlan_mode):
        trunks = frozenset(int(t) for t in (trunks or ()))
        if tag is not None and not 0 <= tag <= 4095:
            raise OfprotoError(f"{port.name}: tag {tag} out of range 0..4095")
        if any(not 0 <= t <= 4095 for t in trunks):
            raise OfprotoError(f"{port.name}: trunks out of range 0..4095")
        if vlan_mode not in (None, *VLAN_MODES):
            raise OfprotoError(f"{port.name}: unsupported vlan_mode {vlan_mode}"
                               + (" (QinQ needs two 802.1Q tags; the datapath has one)"
                                  if vlan_mode == "dot1q-tunnel" else ""))
        port.tag, port.trunks, port.vlan_mode = tag, trunks, vlan_mode

    def del_port(self, name):
        port = self.port(name)
        del self.ports[port.ofport], self._by_name[name]
        self._by_dp.pop(port.dp_port, None)
        self._index_bundles()
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

    def set_mirrors(self, mirrors):
        """Install the bridge's mirrors (mirror.Mirror objects). A mirror
        keeps its counters while its name stays."""
        mirrors = tuple(mirrors)
        self.mirror_stats = {m.name: self.mirror_stats.get(m.name) or MI.Counters()
                             for m in mirrors}
        if mirrors != self.mirrors:
            self.mirrors = mirrors
            self.mirror_out = frozenset(MI.output_ports(mirrors))
            self.bump()

    def port_live(self, ofport):
        p = self.ports.get(ofport)
        return p is not None and p.live

    def set_port_live(self, name, live):
        """Link state (fast-failover groups): the daemon calls it on changes."""
        port = self.port(name)
        if port.live != bool(live):
            port.live = bool(live)
            self.bump()

    # --- flow mods --------------------------------------------------------------
    def _parse(self, flow, command):
        if isinstance(flow, FlowMod):
            return flow
        return parse_flow(flow, command, self.resolve)

    def add_flow(self, flow, now=0.0):
        fm = self._parse(flow, "add")
        table = 0 if fm.table is None else fm.table
        self._validate(table, fm.actions, fm)
        key, mask = fm.match.key_mask()
        old = self._find_exact(table, key, mask, fm.priority)
        if "check_overlap" in fm.flags and self._overlaps(table, key, mask, fm.priority, old):
            raise OfprotoError("an overlapping flow exists", "OFPFMFC_OVERLAP")
        if old is not None:
            self._unlink(old)
            old.removed_reason = "delete"
        self._seq += 1
        rule = Rule(table, fm.match, fm.priority, tuple(fm.actions),
                    fm.cookie or 0, fm.idle_timeout, fm.hard_timeout, now,
                    self._seq, fm.importance, fm.flags,
                    write_actions=fm.write_actions, clear_actions=fm.clear_actions,
                    write_metadata=fm.write_metadata, meter=fm.meter)
        if rule.is_conj:
            self.conj.setdefault(table, []).append(rule)
            self.conj[table].sort(key=lambda r: (-r.priority, r.seq))
        else:
            self._table(table).insert(rule)
        if rule.idle_timeout or rule.hard_timeout:
            self._timed[rule] = None
        self.bump()
        return rule

    def _find_exact(self, table, key, mask, priority):
        cls = self.tables.get(table)
        old = cls.find_exact(key, mask, priority) if cls is not None else None
        if old is None:
            old = next((r for r in self.conj.get(table, ()) if r.key == key and
                        r.mask == mask and r.priority == priority), None)
        return old

    def _overlaps(self, table, key, mask, priority, same):
        for r in self.rules(table):
            if r is same or r.priority != priority:
                continue
            if all((k1 ^ k2) & m1 & m2 == 0 for k1, m1, k2, m2 in
                   zip(key, mask, r.key, r.mask)):
                return True
        return False

    def _unlink(self, rule):
        self._timed.pop(rule, None)
        clauses = self.conj.get(rule.table_id, ())
        if any(r is rule for r in clauses):
            clauses.remove(rule)
        else:
            self.tables[rule.table_id].remove(rule)

    def conj_clauses(self, table_id):
        """The conjunction clause rules of a table, highest priority first."""
        return self.conj.get(table_id, ())

    def mod_flows(self, flow, now=0.0, strict=False):
        fm = self._parse(flow, "modify_strict" if strict else "modify")
        rules = self._select(fm, strict or fm.command == "modify_strict")
        for rule in rules:
            self._validate(rule.table_id, fm.actions, fm)
        for rule in rules:
            was_conj = rule.is_conj
            rule.actions = tuple(fm.actions)
            rule.write_actions, rule.clear_actions = fm.write_actions, fm.clear_actions
            rule.write_metadata, rule.meter = fm.write_metadata, fm.meter
            if rule.is_conj != was_conj:      # moves between clause list and table
                self._unlink(rule)
                if rule.is_conj:
                    self.conj.setdefault(rule.table_id, []).append(rule)
                    self.conj[rule.table_id].sort(key=lambda r: (-r.priority, r.seq))
                else:
                    self._table(rule.table_id).insert(rule)
                if rule.idle_timeout or rule.hard_timeout:
                    self._timed[rule] = None
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
        if rule.removed_reason is not None:   # already gone (delete_learned cascade)
            return
        self._unlink(rule)
        rule.removed_reason = reason
        self.bump()
        if any(isinstance(a, A.Learn) and "delete_learned" in a.flags for a in rule.actions):
            for r in list(self.rules()):      # learn(delete_learned): its flows go too
                if r.learned_by is rule:
                    self._remove(r, "delete")

    def _table(self, table_id):
        cls = self.tables.get(table_id)
        if cls is None:
            cls = self.tables[table_id] = Classifier(F.FLOW_WORDS)
        return cls

    def _validate(self, table, actions, fm=None):
        if not 0 <= table < N_TABLES:
            raise OfprotoError(f"table {table} out of range 0..254",
                               "OFPFMFC_BAD_TABLE_ID")
        extra = tuple(fm.write_actions or ()) if fm is not None else ()
        for a in tuple(actions) + extra:
            if isinstance(a, A.GotoTable) and not table < a.table < N_TABLES:
                raise OfprotoError(f"goto_table:{a.table} must go to a later "
                                   f"table than {table}", "OFPBIC_BAD_TABLE_ID")
            if isinstance(a, A.Group) and a.group_id not in self.groups:
                raise OfprotoError(f"group {a.group_id} does not exist",
                                   "OFPBAC_BAD_OUT_GROUP")
            if isinstance(a, A.Meter) and a.meter_id not in self.meters:
                raise OfprotoError(f"meter {a.meter_id} does not exist",
                                   "OFPMMFC_UNKNOWN_METER")
        meter = fm.meter if fm is not None else None
        if meter is not None and meter not in self.meters:
            raise OfprotoError(f"meter {meter} does not exist", "OFPMMFC_UNKNOWN_METER")

    def _select(self, fm, strict):
        """Rules a modify/delete/dump request selects."""
        key, mask = fm.match.key_mask()
        out = []
        candidates = (self._exact_rules(fm.table, key, mask, fm.priority) if strict
                      else self.rules(fm.table))
        for rule in candidates:
            if strict:
                if rule.mask != mask or rule.key != key or rule.priority != fm.priority:
                    continue
            elif not _covers(key, mask, rule):
                continue
            if fm.cookie_mask and (rule.cookie & fm.cookie_mask) != fm.cookie:
                continue
            if fm.out_port is not None and not A.outputs_to(rule.all_actions(),
                                                            fm.out_port):
                continue
            if fm.out_group is not None and fm.out_group != M.OFPG_ANY and \
                    not A.uses_group(rule.all_actions(), fm.out_group):
                continue
            out.append(rule)
        return out

    def _exact_rules(self, table, key, mask, priority):
        """Strict selection without a scan: the rule with exactly this match
        and priority in `table` (every table when None), in dump order."""
        ids = sorted(set(self.tables) | set(self.conj)) if table is None else [table]
        found = (self._find_exact(tid, key, mask, priority) for tid in ids)
        return [r for r in found if r is not None]

    def rules(self, table=None):
        """Rules in dump order: table, then priority (highest first), then age."""
        ids = sorted(set(self.tables) | set(self.conj)) if table is None else [table]
        for tid in ids:
            rules = list(self.tables.get(tid, ())) + list(self.conj.get(tid, ()))
            yield from sorted(rules, key=lambda r: (-r.priority, r.seq))

    def lookup(self, table_id, flow, wc=None):
        cls = self.tables.get(table_id)
        return cls.lookup(flow, wc) if cls is not None else None

    def table_counter(self, table_id, matched):
        """The counters one lookup in `table_id` credits (xlate puts it in
        tables_hit; the revalidator credits it with the megaflow's packets,
        as OVS's n_matched / n_missed)."""
        pair = self._table_counters.get(table_id)
        if pair is None:
            pair = self._table_counters[table_id] = (Counters(), Counters())
        return pair[0] if matched else pair[1]

    def table_stats(self, table_id):
        """(active_count, lookup_count, matched_count) for dump-tables."""
        cls = self.tables.get(table_id)
        active = (len(cls) if cls is not None else 0) + len(self.conj.get(table_id, ()))
        matched, missed = self._table_counters.get(table_id) or (Counters(), Counters())
        return active, matched.n_packets + missed.n_packets, matched.n_packets

    # --- stats, timeouts, dumps ---------------------------------------------------
    @staticmethod
    def credit(rule, packets, nbytes, now):
        rule.n_packets += packets
        rule.n_bytes += nbytes
        if packets and now > rule.used:
            rule.used = now

    def run(self, now):
        """Expire flows past their idle/hard timeouts and aged fdb entries.
        Returns the expired rules (removed_reason "hard" or "idle")."""
        due = []
        for rule in self._timed:          # only rules with timeouts: no table scan
            if rule.hard_timeout and now > rule.modified + rule.hard_timeout:
                due.append((rule, "hard"))
            elif rule.idle_timeout and now > rule.used + rule.idle_timeout:
                due.append((rule, "idle"))
        due.sort(key=lambda d: (d[0].table_id, -d[0].priority, d[0].seq))   # dump order
        expired = []
        for rule, reason in due:
            if rule.removed_reason is None:
                self._remove(rule, reason)
                expired.append(rule)
        aged = self.fdb.expire(now)
        if aged:
            self.fdb_changed(mac for _vlan, mac, _port in aged)
        return expired

    def next_timeout(self):
        """When the earliest idle or hard timeout falls due if no packet hits
        its flow (inf without one): how long the daemon may sleep."""
        due = float("inf")
        for rule in self._timed:
            if rule.hard_timeout:
                due = min(due, rule.modified + rule.hard_timeout)
            if rule.idle_timeout:
                due = min(due, rule.used + rule.idle_timeout)
        return due

    def dump_flows(self, flow="", now=0.0, names=False, stats=True, sort=None):
        """`ovs-ofctl dump-flows` text (one line per rule, newline-terminated).
        stats=False is --no-stats; sort is None, or (field, reverse) for
        --sort[=field] / --rsort[=field] (field None: priority)."""
        fm = self._parse(flow, "dump")
        namer = self.port_name if names else None
        rules = self._select(fm, False)
        if sort is not None:
            rules = sort_rules(rules, *sort)
        lines = [format_flow_stats(
            match=r.match, priority=r.priority, actions=r.actions,
            table=r.table_id, cookie=r.cookie, duration=now - r.created,
            n_packets=r.n_packets, n_bytes=r.n_bytes,
            idle_timeout=r.idle_timeout, hard_timeout=r.hard_timeout,
            idle_age=now - r.used, hard_age=now - r.modified,
            importance=r.importance, flags=r.flags, namer=namer, meter=r.meter,
            clear_actions=r.clear_actions, write_actions=r.write_actions,
            write_metadata=r.write_metadata, stats=stats)
            for r in rules]
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


def sort_rules(rules, field=None, reverse=False):
    """ovs-ofctl --sort/--rsort: by a field's value (rules without it last
    for --sort, first for --rsort), or by priority when field is None."""
    if field is None:
        return sorted(rules, key=lambda r: r.priority, reverse=reverse)
    fld = F.lookup(field)
    if fld is None:
        raise OfprotoError(f"{field}: unknown field for --sort")

    def key(r):
        vm = r.match.get(fld.name)
        return (vm is None, vm or (0, 0))
    return sorted(rules, key=key, reverse=reverse)


def _covers(key, mask, rule):
    """Non-strict selection: the rule is at least as specific as (key, mask)."""
    for rk, rm, k, m in zip(rule.key, rule.mask, key, mask):
        if rm & m != m or rk & m != k:
            return False
    return True
