"""Configuration values pvs-vswitchd understands, and how they must look.

What: the one table of the `other_config` keys the switch reads (KEYS), the
check of one value (check_key), and the check of a whole transaction's
changes (check_changes), which pvs-vsctl runs before it commits so that a
malformed value is refused with a clear message instead of reaching the
daemon. Also the interface type check: the types the running switch supports
are the ones the daemon writes into Open_vSwitch:iface_types; when that column
is empty (no daemon ever ran on this database) every type is accepted.

Only values a transaction adds or changes are checked: a value written before
these checks existed (or by another tool) does not block unrelated commands.
Keys not in KEYS are free-form, as in Open vSwitch.

Errors are SchemaError with the user message, e.g.
    Bridge br0: other_config:mac-aging-time="abc" is invalid (expected an
    integer from 1 to 2147483647: seconds)

Pure functions over plain data and a Transaction's tables; any thread.
"""

import re
from dataclasses import dataclass

from pyvswitch.db.schema import ROOT, SchemaError

INT_MAX = 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"(0[xX])?[0-9a-fA-F]+")
_DPID = re.compile(r"[0-9a-fA-F]{16}")


@dataclass(frozen=True)
class Key:
    check: object          # value text -> bool
    expected: str          # what a valid value is, for the error message


def _int_range(lo, hi=INT_MAX):
    return lambda v: bool(_DIGITS.fullmatch(v)) and lo <= int(v) <= hi


def _path(v):
    return bool(v) and "\0" not in v and "\n" not in v


# (table, key) -> Key. The daemon reads these; everything else is free-form.
KEYS = {
    (ROOT, "pmd-cpu-mask"): Key(lambda v: bool(_HEX.fullmatch(v)),
                                "a hexadecimal CPU mask such as 0x6"),
    (ROOT, "pmd-sleep-max"): Key(_int_range(0), f"an integer from 0 to {INT_MAX}: microseconds"),
    (ROOT, "vhost-sock-dir"): Key(_path, "a directory path"),
    (ROOT, "max-idle"): Key(_int_range(100), f"an integer from 100 to {INT_MAX}: milliseconds"),
    (ROOT, "flow-limit"): Key(_int_range(0), f"an integer from 0 to {INT_MAX}: megaflows per PMD"),
    ("Bridge", "mac-aging-time"): Key(_int_range(1), f"an integer from 1 to {INT_MAX}: seconds"),
    ("Bridge", "mac-table-size"): Key(_int_range(1), f"an integer from 1 to {INT_MAX}: entries"),
    ("Bridge", "datapath-id"): Key(lambda v: bool(_DPID.fullmatch(v)), "exactly 16 hex digits"),
}


def _record(table, row):
    return table if table == ROOT else f"{table} {row.get('name', '')}".rstrip()


def check_key(table, key, value, row=None):
    """Raise SchemaError when `value` is not valid for other_config:`key`."""
    spec = KEYS.get((table, key))
    if spec is None or spec.check(value):
        return
    raise SchemaError(f'{_record(table, row or {})}: other_config:{key}="{value}" is invalid '
                      f"(expected {spec.expected})")


def check_iface_type(itype, known, name=""):
    """Raise SchemaError when `itype` is not among `known` (empty: any)."""
    if not itype or not known or itype in known:
        return
    raise SchemaError(f'Interface {name}: unknown interface type "{itype}" '
                      f"(supported: {', '.join(sorted(known))})")


def check_changes(tables, original):
    """Check what a transaction adds or changes.

    tables: {table: {uuid: row}} as it would be committed; original(table,
    uuid) -> the row before the transaction, or None for a new row."""
    for table in {t for t, _ in KEYS}:
        for u, row in tables[table].items():
            before = (original(table, u) or {}).get("other_config") or {}
            for key, value in row["other_config"].items():
                if before.get(key) != value:
                    check_key(table, key, value, row)
    roots = list(tables[ROOT].values())
    known = set(roots[0]["iface_types"]) if roots else set()
    for u, row in tables["Interface"].items():
        before = original("Interface", u)
        if before is None or before["type"] != row["type"]:
            check_iface_type(row["type"], known, row["name"])
