"""pvs-vsctl command context: lookups shared by all commands.

What: the Context one command runs with (the open transaction, its
arguments and per-command options, the @symbol table shared by the whole
invocation, the output buffer) and the name resolution ovs-vsctl does:
table and column names by case-insensitive unique prefix ('-' equals '_'),
records by name, "." or (partial) UUID, `COLUMN[:KEY]=VALUE` arguments, and
the bridge -> port -> interface tree as seen from the root row.

Errors are raised as VsctlError with ovs-vsctl's wording; main() prints them
as "pvs-vsctl: <message>" and exits 1 with nothing committed.
"""

from pyvswitch.db import datum, schema
from pyvswitch.db.schema import TABLES, ROOT


class VsctlError(Exception):
    """A user-visible error (str(e) is the message, without program name)."""


class Exit(Exception):
    """Stop now with this exit status and commit nothing (br-exists)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


# Which column names a record of each table (rows found by this name).
RECORD_NAMES = {"Bridge": "name", "Port": "name", "Interface": "name", "Mirror": "name"}


class Context:
    def __init__(self, txn, name, args, opts, symtab, bare=False):
        self.txn, self.name, self.args, self.opts = txn, name, args, opts
        self.symtab, self.bare = symtab, bare
        self.out = []
        self.created = set()

    def has(self, opt):
        return opt in self.opts

    def print(self, line=""):
        self.out.append(line)

    # ---- bridge tree -----------------------------------------------------

    def bridges(self):
        """{name: (uuid, row)} of the bridges listed in Open_vSwitch.bridges."""
        out = {}
        for u in self.txn.root()[1]["bridges"]:
            row = self.txn.get("Bridge", u)
            if row is not None:
                out[row["name"]] = (u, row)
        return out

    def ports(self):
        """{port name: (port uuid, port row, bridge uuid, bridge row)}."""
        out = {}
        for bu, brow in self.bridges().values():
            for pu in brow["ports"]:
                prow = self.txn.get("Port", pu)
                if prow is not None:
                    out[prow["name"]] = (pu, prow, bu, brow)
        return out

    def ifaces(self):
        """{iface name: (iface uuid, port uuid, port row, bridge row)}."""
        out = {}
        for pu, prow, bu, brow in self.ports().values():
            for iu in prow["interfaces"]:
                irow = self.txn.get("Interface", iu)
                if irow is not None:
                    out[irow["name"]] = (iu, pu, prow, brow)
        return out

    def bridge(self, name, must_exist=True):
        found = self.bridges().get(name)
        if found is None and must_exist:
            raise VsctlError(f"no bridge named {name}")
        return found

    def check_conflicts(self, name, msg):
        if name in self.bridges():
            raise VsctlError(f"{msg} because a bridge named {name} already exists")
        port = self.ports().get(name)
        if port:
            raise VsctlError(f"{msg} because a port named {name} already exists "
                             f"on bridge {port[3]['name']}")
        iface = self.ifaces().get(name)
        if iface:
            raise VsctlError(f"{msg} because an interface named {name} already "
                             f"exists on bridge {iface[3]['name']}")


# ---- names ---------------------------------------------------------------

def _norm(s):
    return s.lower().replace("-", "_")


def _match(names, wanted):
    """Exact (case-insensitive) match first, else unique prefix; list of hits."""
    w = _norm(wanted)
    exact = [n for n in names if _norm(n) == w]
    return exact or [n for n in names if w and _norm(n).startswith(w)]


def match_table(name):
    hits = _match(TABLES, name)
    if not hits:
        raise VsctlError(f'unknown table "{name}"')
    if len(hits) > 1:
        raise VsctlError(f'multiple table names match "{name}"')
    return TABLES[hits[0]]


def match_column(table, name, allow_uuid=False):
    """The Column (or "_uuid" when allowed) matching name in table."""
    if allow_uuid and name == "_uuid":
        return "_uuid"
    hits = _match(table.columns, name)
    if not hits:
        raise VsctlError(f'{table.name} does not contain a column whose name '
                         f'matches "{name}"')
    if len(hits) > 1:
        raise VsctlError(f'{table.name} contains more than one column whose name '
                         f'matches "{name}"')
    return table.columns[hits[0]]


def find_row(ctx, table, record, must_exist=True):
    """uuid of the record named `record` in `table` (None if missing and allowed)."""
    rows = ctx.txn.rows(table.name)
    u = _find_row(ctx, table, record, rows)
    if u is None and must_exist:
        raise VsctlError(f'no row "{record}" in table {table.name}')
    return u


def _find_row(ctx, table, record, rows):
    if table.name == ROOT and record == ".":
        return ctx.txn.root()[0]
    if record.startswith("@") and record in ctx.symtab:
        u = ctx.symtab[record]
        return u if u in rows else None
    if schema.is_uuid(record.lower()) and record.lower() in rows:
        return record.lower()
    col = RECORD_NAMES.get(table.name)
    if col:
        hits = [u for u, r in rows.items() if r[col] == record]
        if len(hits) == 1:
            return hits[0]
    if table.name == "Controller":
        br = ctx.bridges().get(record)
        if br and len(br[1]["controller"]) == 1:
            return br[1]["controller"][0]
    if len(record) >= 4 and all(c in "0123456789abcdef-" for c in record.lower()):
        hits = [u for u in rows if u.startswith(record.lower())]
        if len(hits) == 1:
            return hits[0]
    return None


def split_setting(table, arg, need_value=True):
    """'col[:key]=value' -> (Column, key text or None, value text or None)."""
    tok, i = _token(arg, 0, ":=")
    col = match_column(table, tok, allow_uuid=not need_value)
    key = None
    if i < len(arg) and arg[i] == ":":
        key, i = _token(arg, i + 1, "=")
    if i < len(arg) and arg[i] == "=":
        return col, key, arg[i + 1:]
    if i < len(arg):
        raise VsctlError(f'{arg}: trailing garbage "{arg[i:]}" in argument')
    if need_value:
        raise VsctlError(f'{arg}: missing value')
    return col, key, None


def _token(arg, i, stops):
    out, quoted = [], False
    while i < len(arg):
        c = arg[i]
        if c == '"':
            quoted = not quoted
        elif not quoted and c in stops:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def parse_key(col, text):
    if not col.type.is_map:
        raise VsctlError(f"cannot specify key to get for non-map column {col.name}")
    return wrap(datum.parse_atom, col.type.key, text)


def wrap(fn, *args):
    """Call a datum/schema function, turning its errors into VsctlError."""
    try:
        return fn(*args)
    except schema.SchemaError as e:
        raise VsctlError(str(e)) from None
