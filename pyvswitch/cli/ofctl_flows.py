"""pvs-ofctl: dump-flows with --sort/--rsort/--no-stats/--names,
replace-flows and diff-flows, over the OpenFlow wire as ovs-ofctl 3.1 does.

dump-flows (sorted or without statistics or with port names): the flows are
dumped, sorted here by the criteria in order (--sort ascending, --rsort
descending; priority without a field; a flow that does not match on the
field sorts after those that do, whatever the order; then by priority,
highest first, as ovs-ofctl's final pass), and printed without a reply
header (and, in 1.0, without idle_age/hard_age: ovs-ofctl's flow dump
helper does not read them).

replace-flows SWITCH FILE: FILE's flows are parsed first (an error changes
nothing), the switch's flows are dumped, and for each table in turn the flows
only on the switch are deleted (delete_strict) and the flows of FILE missing
or different on the switch are added; one barrier ends it. Flows are the
same when cookie, timeouts, importance and the text of their actions are.

diff-flows SRC1 SRC2: each source is a file (a path starting with / or . or
an existing file without ':') or a switch (its flows dumped over the wire);
per table, flows only in SRC1 or different print as `-`, only in SRC2 or
different as `+`, in ovs-ofctl's fte layout (`table=N priority=...,match
cookie=... actions=...`); exit status 2 when there are differences.
"""

import functools
import os

from pyvswitch.cli.ofclient import OfClientError
from pyvswitch.cli.ofctl import flow_filter, flow_line, read_lines, send_flow_mods
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.text import FlowMod, format_fte, fte_actions, parse_flow


# --- dump-flows --sort ------------------------------------------------------------------
def sort_key(criteria):
    """A sort key for FlowStats (or anything with .match and .priority) from
    [(descending, field or None)] (ovs-ofctl compare_flows), with ovs-ofctl's
    final pass by priority, highest first."""
    fields = []
    for desc, name in list(criteria) + [(True, None)]:
        if name is None or name.lower() == "priority":
            fields.append((desc, None))
            continue
        fld = F.lookup(name)
        if fld is None:
            raise OfClientError(f"{name}: unknown field name")
        fields.append((desc, fld.name))

    def cmp(a, b):
        for desc, name in fields:
            if name is None:
                va, vb = a.priority, b.priority
            else:
                ma, mb = a.match.get(name), b.match.get(name)
                if (ma is None) != (mb is None):
                    return -1 if ma is not None else 1      # missing: last, either order
                va, vb = (ma or (0, 0))[0], (mb or (0, 0))[0]
            if va != vb:
                r = -1 if va < vb else 1
                return -r if desc else r
        return 0
    return functools.cmp_to_key(cmp)


def dump_flows(s, req=None):
    """FlowStats of the switch (all of them, or those of a FlowStatsRequest)."""
    s.flow_format()
    req = req or M.FlowStatsRequest(nxm=s.of10)
    return [f for r in s.c.transact(req) for f in r.flows]


def dump_sorted(s, args):
    req = M.FlowStatsRequest(**flow_filter(s, args))
    flows = dump_flows(s, req)
    if s.a.criteria:
        flows.sort(key=sort_key(s.a.criteria))
    namer = s.namer()
    return [flow_line(s, f, namer, stats=s.a.stats, ages=False) for f in flows]


# --- flow table entries -------------------------------------------------------------------
def _from_stats(f):
    """A FlowMod (add) standing for a flow of a flow stats reply."""
    return FlowMod(command="add", match=f.match, priority=f.priority, actions=f.actions,
                   table=f.table_id, cookie=f.cookie, idle_timeout=f.idle_timeout,
                   hard_timeout=f.hard_timeout, importance=getattr(f, "importance", 0),
                   write_actions=f.write_actions, clear_actions=f.clear_actions,
                   write_metadata=f.write_metadata, meter=f.meter)


class Tables:
    """Flow table entries of two sources (index 0 and 1) keyed by table,
    priority and match; each entry keeps the FlowMod of each side."""

    def __init__(self):
        self.entries = {}          # (table, priority, key_mask) -> [fm0, fm1]

    def add(self, fm, index):
        key = (fm.table or 0, fm.priority, fm.match.key_mask())
        self.entries.setdefault(key, [None, None])[index] = fm

    def ordered(self):
        """Entries in the order ovs-ofctl's classifier walks them: by table;
        within a table by subtable (the flows with the same mask), subtables
        by their highest priority, then by first arrival; within a subtable
        by priority (highest first), then arrival."""
        order = {k: i for i, k in enumerate(self.entries)}
        sub_max, sub_first = {}, {}
        for k in self.entries:
            sub = (k[0], k[2][1])
            sub_max[sub] = max(sub_max.get(sub, -1), k[1])
            sub_first.setdefault(sub, order[k])
        keys = sorted(self.entries, key=lambda k: (
            k[0], -sub_max[(k[0], k[2][1])], sub_first[(k[0], k[2][1])], -k[1], order[k]))
        return [(k, self.entries[k]) for k in keys]


def same(a, b, spellings):
    """ovs-ofctl fte_version_equals: cookie, timeouts, importance, and the
    actions compared as text (flags cannot be read back from a switch)."""
    return ((a.cookie or 0) == (b.cookie or 0) and a.idle_timeout == b.idle_timeout
            and a.hard_timeout == b.hard_timeout and a.importance == b.importance
            and fte_actions(a, None, spellings[0]) == fte_actions(b, None, spellings[1]))


def _read_file(path, tables, index, resolve):
    try:
        lines = read_lines(path)
    except OSError as e:
        raise OfClientError(f"{path}: open failed ({e.strerror})") from None
    for n, text in lines:
        try:
            tables.add(parse_flow(text, "add", resolve), index)
        except FlowParseError as e:
            raise OfClientError(f"{path}:{n}: {e}") from None


def _spelling(s):
    return "of10" if s.of10 else "of13"


# --- replace-flows ---------------------------------------------------------------------------
def replace_flows(s, args):
    FILE, SWITCH = 0, 1
    tables = Tables()
    s.name_maps()
    _read_file(args[0], tables, FILE, s.resolve)
    for f in dump_flows(s):
        tables.add(_from_stats(f), SWITCH)
    spell = ("file", _spelling(s))
    deletes, adds = [], []
    for (table, priority, _), (mine, theirs) in tables.ordered():
        if theirs is not None and mine is None:
            deletes.append((table, FlowMod(command="delete_strict", match=theirs.match,
                                           priority=priority, table=table)))
        elif mine is not None and (theirs is None or not same(theirs, mine, spell[::-1])):
            adds.append((table, mine))
    mods = []
    for table in sorted({t for t, _ in deletes + adds}):   # per table: deletes, then adds
        mods += [fm for t, fm in deletes if t == table]
        mods += [fm for t, fm in adds if t == table]
    if mods:
        send_flow_mods(s, mods)
    return []


# --- diff-flows ---------------------------------------------------------------------------------
def _is_file(source):
    return (source.startswith(("/", ".")) or
            (":" not in source and os.path.isfile(source)))


def diff_flows(s, args):
    tables, spell, namer = Tables(), [None, None], None
    for index, source in enumerate((s.a.bridge, args[0])):
        if _is_file(source):
            _read_file(source, tables, index, None)
            spell[index] = "file"
            continue
        with s.connect(source) as client:
            if client.version == wire.OFP10:
                errors = client.send_all([M.SetFlowFormat("nxm")])
                if errors:
                    raise errors[0][1]
            req = M.FlowStatsRequest(nxm=client.version == wire.OFP10)
            for f in (f for r in client.transact(req) for f in r.flows):
                tables.add(_from_stats(f), index)
            spell[index] = "of10" if client.version == wire.OFP10 else "of13"
            if s.names and namer is None:
                descs = (client.transact(M.FeaturesRequest())[0].ports
                         if client.version == wire.OFP10 else
                         [p for r in client.transact(M.PortDescRequest()) for p in r.ports])
                namer = {d.port_no: d.name for d in descs}.get
    lines = []
    for _, (a, b) in tables.ordered():
        if a is not None and b is not None and same(a, b, spell):
            continue
        if a is not None:
            lines.append("-" + format_fte(a, namer, spell[0]))
        if b is not None:
            lines.append("+" + format_fte(b, namer, spell[1]))
    return lines, (2 if lines else 0)
