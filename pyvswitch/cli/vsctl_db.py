"""pvs-vsctl database commands on any table: get set list find clear add
remove create destroy (ovs-vsctl(8) "Database Commands").

Each command is a function of a Context (vsctl_ctx.py) that reads and edits
the open transaction and appends output lines. Values use the syntax of
pyvswitch.db.datum. Daemon-written columns (ofport, error, statistics, ...)
and `name` columns are read-only here.
"""

from pyvswitch.db import datum, schema
from pyvswitch.db.txn import StoreError
from pyvswitch.cli.vsctl_ctx import (VsctlError, match_table, match_column, find_row,
                                     split_setting, parse_key, wrap)


def _update(ctx, table, u, values):
    try:
        ctx.txn.update(table.name, u, values)
    except StoreError as e:
        raise VsctlError(str(e)) from None


def _check_writable(table, col, creating=False):
    if col == "_uuid" or col.daemon or (not col.mutable and not creating):
        name = "_uuid" if col == "_uuid" else col.name
        raise VsctlError(f"cannot modify read-only column {name} in table {table.name}")


def set_value(ctx, table, u, arg, creating=False):
    """Apply one 'col[:key]=value' argument to row u (also used by add-port)."""
    col, key, text = split_setting(table, arg)
    _check_writable(table, col, creating)
    row = ctx.txn.get(table.name, u)
    if key is None:
        value = wrap(datum.parse_value, col.type, text, ctx.symtab, col.name)
    else:
        if not col.type.is_map:
            raise VsctlError(f"cannot specify key to set for non-map column {col.name}")
        k = wrap(datum.parse_atom, col.type.key, key)
        value = dict(row[col.name])
        value[k] = wrap(datum.parse_atom, col.type.value, text, ctx.symtab)
    _update(ctx, table, u, {col.name: value})


def fmt(ctx, coltype, v):
    return datum.format_bare(coltype, v) if ctx.bare else datum.format_value(coltype, v)


def cmd_get(ctx):
    table = match_table(ctx.args[0])
    u = find_row(ctx, table, ctx.args[1], must_exist=not ctx.has("--if-exists"))
    if u is None:
        return
    if "--id" in ctx.opts:
        sym = ctx.opts["--id"]
        if sym in ctx.symtab:
            raise VsctlError(f"row id \"{sym}\" specified on \"--id\" is already defined")
        ctx.symtab[sym] = u
    row = ctx.txn.get(table.name, u)
    for arg in ctx.args[2:]:
        col, key, _ = split_setting(table, arg, need_value=False)
        if col == "_uuid":
            ctx.print(u)
        elif key is None:
            ctx.print(fmt(ctx, col.type, row[col.name]))
        else:
            k = parse_key(col, key)
            if k in row[col.name]:
                ctx.print(datum.format_bare(datum.Type(col.type.value), row[col.name][k])
                          if ctx.bare else datum.format_atom(col.type.value, row[col.name][k]))
            elif not ctx.has("--if-exists"):
                raise VsctlError(f'no key "{key}" in {table.name} record "{ctx.args[1]}" '
                                 f'column {col.name}')


def cmd_set(ctx):
    table = match_table(ctx.args[0])
    u = find_row(ctx, table, ctx.args[1], must_exist=not ctx.has("--if-exists"))
    if u is not None:
        for arg in ctx.args[2:]:
            set_value(ctx, table, u, arg)


def _columns(ctx, table):
    spec = ctx.opts.get("--columns")
    if spec is None:
        return ["_uuid"] + [table.columns[c] for c in sorted(table.columns)]
    return [match_column(table, c.strip(), allow_uuid=True) for c in spec.split(",")]


def _print_rows(ctx, table, uuids):
    cols = _columns(ctx, table)
    for n, u in enumerate(uuids):
        if n:
            ctx.print("")
        row = ctx.txn.get(table.name, u)
        for col in cols:
            name = "_uuid" if col == "_uuid" else col.name
            text = u if col == "_uuid" else fmt(ctx, col.type, row[col.name])
            ctx.print(text if ctx.bare else f"{name:<20}: {text}")


def _sorted_uuids(ctx, table):
    rows = ctx.txn.rows(table.name)
    key = "name" if "name" in table.columns else ("target" if "target" in table.columns else None)
    return sorted(rows, key=lambda u: (str(rows[u][key]) if key else "", u))


def cmd_list(ctx):
    table = match_table(ctx.args[0])
    if len(ctx.args) == 1:
        uuids = _sorted_uuids(ctx, table)
    else:
        found = [find_row(ctx, table, r, must_exist=not ctx.has("--if-exists"))
                 for r in ctx.args[1:]]
        uuids = [u for u in found if u is not None]
    _print_rows(ctx, table, uuids)


FIND_OPS = ("{!=}", "{<=}", "{>=}", "{=}", "{<}", "{>}", "!=", "<=", ">=", "=", "<", ">")


def _find_cond(table, arg):
    """'col[:key]OPvalue' -> (Column, key, op, value text); leftmost operator wins."""
    hits = [(arg.find(op), -len(op), op) for op in FIND_OPS if arg.find(op) > 0]
    if not hits:
        raise VsctlError(f'{arg}: missing operator in condition (use COLUMN=VALUE)')
    i, _, op = min(hits)
    col, key, _ = split_setting(table, arg[:i], need_value=False)
    return col, key, op, arg[i + len(op):]


def _cond_true(ctx, row, u, col, key, op, text):
    if col == "_uuid":
        have, want = {u}, {text.lower()}
    elif key is not None:
        k = parse_key(col, key)
        if k not in row[col.name]:
            return op in ("!=", "{!=}")
        have = {row[col.name][k]}
        want = {wrap(datum.parse_atom, col.type.value, text)}
    elif col.type.is_map:
        have = set(row[col.name].items())
        want = set(wrap(datum.parse_loose, col.type, text).items())
    else:
        v = row[col.name]
        have = set(v) if col.type.is_set else (set() if v is None else {v})
        want = set(wrap(datum.parse_loose, col.type, text))
    return _compare(op, have, want)


def _compare(op, have, want):
    base = op.strip("{}")
    if op.startswith("{"):
        return {"=": have == want, "!=": have != want, "<": have < want,
                ">": have > want, "<=": have <= want, ">=": have >= want}[base]
    if base in ("=", "!="):
        return (have == want) == (base == "=")
    if len(have) != 1 or len(want) != 1:
        return False
    a, b = next(iter(have)), next(iter(want))
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[base]


def cmd_find(ctx):
    table = match_table(ctx.args[0])
    conds = [_find_cond(table, a) for a in ctx.args[1:]]
    rows = ctx.txn.rows(table.name)
    hits = [u for u in _sorted_uuids(ctx, table)
            if all(_cond_true(ctx, rows[u], u, *c) for c in conds)]
    _print_rows(ctx, table, hits)


def cmd_clear(ctx):
    table = match_table(ctx.args[0])
    u = find_row(ctx, table, ctx.args[1], must_exist=not ctx.has("--if-exists"))
    if u is None:
        return
    for name in ctx.args[2:]:
        col = match_column(table, name)
        _check_writable(table, col)
        if col.type.min > 0:
            raise VsctlError(f'"clear" operation cannot be applied to column {col.name} '
                             f'of table {table.name}, which is not allowed to be empty')
        _update(ctx, table, u, {col.name: schema.default(col.type)})


def _elements(ctx, table, u, op):
    """(table, u, Column, current value as set/dict, parsed args) for add/remove."""
    col = match_column(table, ctx.args[2])
    _check_writable(table, col)
    loose = datum.loose_type(col.type)
    v = ctx.txn.get(table.name, u)[col.name]
    if col.type.is_map:
        return col, dict(v), loose
    cur = set(v) if col.type.is_set else (set() if v is None else {v})
    if col.type.is_scalar and op == "remove":
        raise VsctlError(f'"remove" operation would put 0 values in column {col.name} '
                         f'of table {table.name} but the minimum number is 1')
    return col, cur, loose


def _store_elements(ctx, table, u, col, cur, op):
    n = len(cur)
    if n > col.type.max:
        raise VsctlError(f'"{op}" operation would put {n} values in column {col.name} of '
                         f'table {table.name} but the maximum number is {col.type.max}')
    if n < col.type.min:
        raise VsctlError(f'"{op}" operation would put {n} values in column {col.name} of '
                         f'table {table.name} but the minimum number is {col.type.min}')
    if col.type.is_map:
        value = cur
    elif col.type.is_set:
        value = tuple(cur)
    else:
        value = next(iter(cur)) if cur else None
    _update(ctx, table, u, {col.name: value})


def cmd_add(ctx):
    table = match_table(ctx.args[0])
    u = find_row(ctx, table, ctx.args[1], must_exist=not ctx.has("--if-exists"))
    if u is None:
        return
    col, cur, loose = _elements(ctx, table, u, "add")
    for text in ctx.args[3:]:
        parsed = wrap(datum.parse_loose, loose, text, ctx.symtab)
        if col.type.is_map:
            for k, x in parsed.items():
                cur.setdefault(k, x)
        else:
            cur.update(parsed)
    _store_elements(ctx, table, u, col, cur, "add")


def cmd_remove(ctx):
    table = match_table(ctx.args[0])
    u = find_row(ctx, table, ctx.args[1], must_exist=not ctx.has("--if-exists"))
    if u is None:
        return
    col, cur, loose = _elements(ctx, table, u, "remove")
    for text in ctx.args[3:]:
        if col.type.is_map:
            _remove_from_map(col, cur, loose, text, ctx)
        else:
            cur.difference_update(wrap(datum.parse_loose, loose, text, ctx.symtab))
    _store_elements(ctx, table, u, col, cur, "remove")


def _remove_from_map(col, cur, loose, text, ctx):
    try:
        pairs = datum.parse_loose(loose, text, ctx.symtab)
    except datum.DatumError:
        keys = wrap(datum.parse_loose, datum.Type(col.type.key, min=0, max=float("inf")), text)
        for k in keys:
            cur.pop(k, None)
        return
    for k, x in pairs.items():
        if cur.get(k) == x:
            del cur[k]


def cmd_create(ctx):
    table = match_table(ctx.args[0])
    sym = ctx.opts.get("--id")
    if sym is not None and sym in ctx.created:
        raise VsctlError(f'row id "{sym}" may only be specified on one --id option')
    u = ctx.symtab.get(sym) if sym else None
    try:
        u = ctx.txn.insert(table.name, {}, u)
    except StoreError as e:
        raise VsctlError(str(e)) from None
    if sym:
        ctx.symtab[sym] = u
        ctx.created.add(sym)
    for arg in ctx.args[1:]:
        set_value(ctx, table, u, arg, creating=True)
    ctx.print(u)


def cmd_destroy(ctx):
    table = match_table(ctx.args[0])
    if ctx.has("--all"):
        uuids = list(ctx.txn.rows(table.name))
    else:
        uuids = [find_row(ctx, table, r, must_exist=not ctx.has("--if-exists"))
                 for r in ctx.args[1:]]
    if table.is_root:
        raise VsctlError(f"cannot destroy the row of root table {table.name}")
    for u in uuids:
        if u is not None and u in ctx.txn.rows(table.name):
            ctx.txn.delete(table.name, u)
