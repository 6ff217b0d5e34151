"""Whole-database rules checked when a transaction commits (OVSDB semantics).

What, in order:
1. Garbage collection: a row of a non-root table that no root row reaches
   through strong references is deleted (del-br only unlinks the Bridge from
   Open_vSwitch.bridges; its Ports, Interfaces, Controllers go with it).
2. Weak references to rows that no longer exist are dropped from the
   referring column (Mirror.select_src_port, output_port, ...).
3. A strong reference to a row that does not exist is an error.
4. Index columns (Bridge/Port/Interface name) must be unique.
5. max_rows (exactly one Open_vSwitch row).

Pure function over a Transaction's in-memory tables; raises StoreError.
"""

from pyvswitch.db import schema
from pyvswitch.db.schema import TABLES


def check(txn):
    from pyvswitch.db.txn import StoreError
    tables = txn.tables
    _collect_garbage(tables)
    _drop_weak_refs(tables)
    _check_strong_refs(tables, StoreError)
    _check_indexes(tables, StoreError)
    for name, t in TABLES.items():
        if len(tables[name]) > t.max_rows:
            raise StoreError(f'transaction causes "{name}" table to contain '
                             f'{len(tables[name])} rows, greater than the schema-defined '
                             f'limit of {t.max_rows} row(s)')
        if t.is_root and t.max_rows == 1 and not tables[name]:
            raise StoreError(f'transaction deletes the only row of table "{name}"')


def strong_targets(table, row):
    """Yield (ref_table, uuid) for each strong reference held by row."""
    for col, atom in schema.references(table):
        if atom.ref_type == "strong":
            for u in schema.ref_values(col, row[col.name], atom):
                yield atom.ref_table, u


def _collect_garbage(tables):
    seen = set()
    stack = [(t, u) for t, spec in TABLES.items() if spec.is_root for u in tables[t]]
    while stack:
        t, u = stack.pop()
        if (t, u) in seen or u not in tables[t]:
            continue
        seen.add((t, u))
        stack.extend(strong_targets(t, tables[t][u]))
    for t, spec in TABLES.items():
        if not spec.is_root:
            for u in [u for u in tables[t] if (t, u) not in seen]:
                del tables[t][u]


def _drop_weak_refs(tables):
    for t in TABLES:
        for col, atom in schema.references(t):
            if atom.ref_type != "weak":
                continue
            for u, row in list(tables[t].items()):
                v = row[col.name]
                kept = _without_missing(col, v, atom, tables[atom.ref_table])
                if kept != v:
                    tables[t][u] = dict(row, **{col.name: kept})


def _without_missing(col, v, atom, targets):
    ct = col.type
    if ct.is_map:
        pos = 0 if atom is ct.key else 1
        return {k: x for k, x in v.items() if (k, x)[pos] in targets}
    if ct.is_set:
        return tuple(x for x in v if x in targets)
    return v if v is None or v in targets else None


def _check_strong_refs(tables, err):
    for t in TABLES:
        for u, row in tables[t].items():
            for rt, ru in strong_targets(t, row):
                if ru not in tables[rt]:
                    raise err(f"referential integrity violation: table {t} row {u} "
                              f"references nonexistent row {ru} in table {rt}")


def _check_indexes(tables, err):
    for t, spec in TABLES.items():
        for cname in spec.indexes:
            seen = {}
            for u, row in tables[t].items():
                v = row[cname]
                if v in seen:
                    raise err(f'Transaction causes multiple rows in "{t}" table to have '
                              f'identical values ({v}) for index on column "{cname}"')
                seen[v] = u
