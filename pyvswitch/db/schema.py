"""The configuration schema, as data: tables, columns, OVSDB types, validation.

What: an OVSDB-like schema modelled on Open vSwitch's vswitch.ovsschema, limited
to the tables and columns pyvswitch uses (Open_vSwitch, Bridge, Port,
Interface, Controller, Mirror). Names and types follow the real schema so that
ovs-vsctl habits carry over.

Values in Python (the same everywhere: store, snapshot, vsctl):
  scalar   (min 1, max 1, no value type)  -> the atom: str | int | bool
  optional (min 0, max 1, no value type)  -> None or the atom
  set      (max > 1, no value type)       -> tuple of atoms, sorted, no duplicates
  map      (has a value type)             -> dict key -> value, sorted by key
uuid atoms (references) are lowercase canonical uuid strings.

Column flags:
  daemon   written by pvs-vswitchd only (ephemeral status: ofport, link_state,
           error, statistics, ...). pvs-vsctl refuses to modify them; the store
           keeps them apart and writes them without bumping next_cfg.
  mutable  False for `name` columns: fixed once the row exists.

Invariants: `validate()` returns a normalised value or raises SchemaError with
an ovs-vsctl-like message ("constraint violation: ..."). Pure data and pure
functions: any thread may call.
"""

import math
import re
from dataclasses import dataclass, field

UNLIMITED = math.inf
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class SchemaError(Exception):
    """A value or name does not fit the schema (str(e) is the user message)."""


@dataclass(frozen=True)
class Atom:
    kind: str                      # "string" | "integer" | "boolean" | "uuid"
    enum: tuple = ()               # allowed values, empty = any
    min: int | None = None         # integer range (inclusive)
    max: int | None = None
    ref_table: str | None = None   # uuid references
    ref_type: str = "strong"       # "strong" | "weak"


@dataclass(frozen=True)
class Type:
    key: Atom
    value: Atom | None = None
    min: int = 1
    max: float = 1

    @property
    def is_map(self):
        return self.value is not None

    @property
    def is_set(self):
        return self.value is None and self.max > 1

    @property
    def is_optional(self):
        return self.value is None and self.min == 0 and self.max == 1

    @property
    def is_scalar(self):
        return self.value is None and self.min == 1 and self.max == 1


@dataclass(frozen=True)
class Column:
    name: str
    type: Type
    daemon: bool = False
    mutable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict = field(default_factory=dict)
    is_root: bool = False
    indexes: tuple = ()            # column names that must be unique
    max_rows: float = UNLIMITED

    def column(self, name):
        return self.columns[name]


# ---- type constructors ---------------------------------------------------

STR, INT, BOOL = Atom("string"), Atom("integer"), Atom("boolean")


def scalar(atom):
    return Type(atom)


def optional(atom):
    return Type(atom, min=0, max=1)


def setof(atom, lo=0, hi=UNLIMITED):
    return Type(atom, min=lo, max=hi)


def mapof(key=STR, value=STR):
    return Type(key, value, min=0, max=UNLIMITED)


def enum(*values):
    return Atom("string", enum=tuple(sorted(values)))


def irange(lo=None, hi=None):
    return Atom("integer", min=lo, max=hi)


def ref(table, weak=False):
    return Atom("uuid", ref_table=table, ref_type="weak" if weak else "strong")


def _table(name, cols, daemon=(), **kw):
    columns = {}
    for cname, ctype in cols:
        columns[cname] = Column(cname, ctype, daemon=cname in daemon,
                                mutable=cname != "name")
    return Table(name, columns, **kw)


SMAP = mapof()
IDS = (("other_config", SMAP), ("external_ids", SMAP))
VLAN = irange(0, 4095)

TABLES = {t.name: t for t in [
    _table("Open_vSwitch", [
        ("bridges", setof(ref("Bridge"))),
        ("next_cfg", scalar(INT)), ("cur_cfg", scalar(INT)),
        ("ovs_version", optional(STR)), ("db_version", optional(STR)),
        ("system_type", optional(STR)), ("system_version", optional(STR)),
        ("datapath_types", setof(STR)), ("iface_types", setof(STR)),
        ("statistics", SMAP), *IDS,
    ], daemon={"cur_cfg", "ovs_version", "db_version", "datapath_types",
               "iface_types", "statistics"}, is_root=True, max_rows=1),
    _table("Bridge", [
        ("name", scalar(STR)), ("datapath_type", scalar(STR)),
        ("datapath_id", optional(STR)), ("datapath_version", scalar(STR)),
        ("ports", setof(ref("Port"))), ("mirrors", setof(ref("Mirror"))),
        ("controller", setof(ref("Controller"))),
        ("protocols", setof(enum("OpenFlow10", "OpenFlow11", "OpenFlow12",
                                 "OpenFlow13", "OpenFlow14", "OpenFlow15"))),
        ("fail_mode", optional(enum("standalone", "secure"))),
        ("stp_enable", scalar(BOOL)), ("mcast_snooping_enable", scalar(BOOL)),
        ("flood_vlans", setof(VLAN, 0, 4096)), ("status", SMAP), *IDS,
    ], daemon={"datapath_id", "datapath_version", "status"}, indexes=("name",)),
    _table("Port", [
        ("name", scalar(STR)), ("interfaces", setof(ref("Interface"), 1)),
        ("tag", optional(VLAN)), ("trunks", setof(VLAN, 0, 4096)),
        ("vlan_mode", optional(enum("access", "trunk", "native-tagged",
                                    "native-untagged", "dot1q-tunnel"))),
        ("mac", optional(STR)),
        ("bond_mode", optional(enum("active-backup", "balance-slb", "balance-tcp"))),
        ("lacp", optional(enum("active", "passive", "off"))),
        ("bond_updelay", scalar(INT)), ("bond_downdelay", scalar(INT)),
        ("bond_active_slave", optional(STR)), ("bond_fake_iface", scalar(BOOL)),
        ("fake_bridge", scalar(BOOL)),
        ("status", SMAP), ("statistics", mapof(STR, INT)), *IDS,
    ], daemon={"bond_active_slave", "status", "statistics"}, indexes=("name",)),
    _table("Interface", [
        ("name", scalar(STR)), ("type", scalar(STR)), ("options", SMAP),
        ("ofport", optional(INT)), ("ofport_request", optional(irange(1, 65279))),
        ("mtu", optional(INT)), ("mtu_request", optional(irange(1))),
        ("mac", optional(STR)), ("mac_in_use", optional(STR)),
        ("ifindex", optional(irange(0, 4294967295))),
        ("ingress_policing_rate", scalar(irange(0))),
        ("ingress_policing_burst", scalar(irange(0))),
        ("admin_state", optional(enum("up", "down"))),
        ("link_state", optional(enum("up", "down"))),
        ("link_resets", optional(INT)), ("link_speed", optional(INT)),
        ("duplex", optional(enum("half", "full"))),
        ("error", optional(STR)), ("statistics", mapof(STR, INT)),
        ("status", SMAP), *IDS,
    ], daemon={"ofport", "mtu", "mac_in_use", "ifindex", "admin_state",
               "link_state", "link_resets", "link_speed", "duplex", "error",
               "statistics", "status"}, indexes=("name",)),
    _table("Controller", [
        ("target", scalar(STR)), ("max_backoff", optional(irange(1000))),
        ("inactivity_probe", optional(INT)),
        ("connection_mode", optional(enum("in-band", "out-of-band"))),
        ("controller_rate_limit", optional(irange(100))),
        ("controller_burst_limit", optional(irange(25))),
        ("is_connected", scalar(BOOL)),
        ("role", optional(enum("other", "master", "slave"))),
        ("status", SMAP), *IDS,
    ], daemon={"is_connected", "role", "status"}),
    _table("Mirror", [
        ("name", scalar(STR)), ("select_all", scalar(BOOL)),
        ("select_src_port", setof(ref("Port", weak=True))),
        ("select_dst_port", setof(ref("Port", weak=True))),
        ("select_vlan", setof(VLAN, 0, 4096)),
        ("output_port", optional(ref("Port", weak=True))),
        ("output_vlan", optional(irange(1, 4095))),
        ("snaplen", optional(irange(14, 65535))),
        ("statistics", mapof(STR, INT)), ("external_ids", SMAP),
    ], daemon={"statistics"}),
]}

ROOT = "Open_vSwitch"


# ---- values --------------------------------------------------------------

def default(coltype):
    """The value a column has when nothing was written to it."""
    if coltype.is_map:
        return {}
    if coltype.is_set:
        return ()
    if coltype.is_optional:
        return None
    return {"string": "", "integer": 0, "boolean": False,
            "uuid": "00000000-0000-0000-0000-000000000000"}[coltype.key.kind]


def is_uuid(s):
    return isinstance(s, str) and bool(_UUID_RE.match(s))


def check_atom(atom, v):
    """Type and constraint check of one atom; returns it (uuids lowercased)."""
    kind = atom.kind
    if kind == "boolean":
        if not isinstance(v, bool):
            raise SchemaError(f"{v!r} is not a valid boolean")
    elif kind == "integer":
        if isinstance(v, bool) or not isinstance(v, int):
            raise SchemaError(f"{v!r} is not a valid integer")
        _check_range(atom, v)
    elif kind == "uuid":
        if not isinstance(v, str) or not is_uuid(v.lower()):
            raise SchemaError(f'"{v}" is not a valid UUID')
        v = v.lower()
    elif not isinstance(v, str):
        raise SchemaError(f"{v!r} is not a valid string")
    if atom.enum and v not in atom.enum:
        from pyvswitch.db.datum import format_atom
        allowed = ", ".join(format_atom(atom, e) for e in atom.enum)
        raise SchemaError(f"constraint violation: {format_atom(atom, v)} is not "
                          f"one of the allowed values ([{allowed}])")
    return v


def _check_range(atom, v):
    lo, hi = atom.min, atom.max
    if (lo is None or v >= lo) and (hi is None or v <= hi):
        return
    if lo is not None and hi is not None:
        msg = f"{v} is not in the valid range {lo} to {hi} (inclusive)"
    elif lo is not None:
        msg = f"{v} is less than minimum allowed value {lo}"
    else:
        msg = f"{v} is greater than maximum allowed value {hi}"
    raise SchemaError("constraint violation: " + msg)


def validate(column, value):
    """Check `value` against the column's type; return it normalised."""
    t = column.type
    if t.is_map:
        if not isinstance(value, dict):
            raise SchemaError(f"{column.name}: expected a map")
        out = {check_atom(t.key, k): check_atom(t.value, v) for k, v in value.items()}
        _check_count(column, len(out))
        return dict(sorted(out.items()))
    if t.is_set:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise SchemaError(f"{column.name}: expected a set")
        out = tuple(sorted({check_atom(t.key, v) for v in value}))
        _check_count(column, len(out))
        return out
    if t.is_optional:
        return None if value is None else check_atom(t.key, value)
    if value is None:
        raise SchemaError(f"{column.name}: a value is required")
    return check_atom(t.key, value)


def _check_count(column, n):
    t = column.type
    if n < t.min:
        raise SchemaError(f"{column.name}: {n} values, but at least {t.min} required")
    if n > t.max:
        raise SchemaError(f"{column.name}: {n} values, but at most {t.max} allowed")


def is_default(column, value):
    return value == default(column.type)


def references(table):
    """[(column, Atom)] of uuid-reference atoms in `table` (keys or values)."""
    out = []
    for col in TABLES[table].columns.values():
        for atom in (col.type.key, col.type.value):
            if atom is not None and atom.ref_table:
                out.append((col, atom))
    return out


def ref_values(column, value, atom):
    """The uuids held in `value` at the position of `atom` (key or value)."""
    t = column.type
    if t.is_map:
        return list(value.keys() if atom is t.key else value.values())
    if t.is_set:
        return list(value)
    return [] if value is None else [value]
