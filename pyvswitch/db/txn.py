"""One database transaction: in-memory edits, checked and written at commit.

What: `Store.transaction()` returns a Transaction. On enter it takes the lock
(write: BEGIN IMMEDIATE) and loads the whole database into memory (it is
small: hundreds of rows). Edits change the in-memory copy only; validation of
each value happens at edit time (schema.validate), whole-database rules at
commit (integrity.py): garbage collection, weak references, dangling strong
references, unique names, next_cfg. Then only the rows that differ are
written and the SQL transaction commits. An exception inside the `with`
block, or a failed check, rolls everything back.

Rows returned by rows()/get()/find()/root() are plain dicts: treat them as
read-only and change them through update(), which replaces the dict (so the
loaded original stays intact for the diff).
"""

import json
import uuid as uuidlib

from pyvswitch.db import schema
from pyvswitch.db.schema import TABLES, ROOT, SchemaError


class StoreError(Exception):
    """A transaction could not commit (str(e) is the user message)."""


# ---- row encoding (JSON in SQLite) ---------------------------------------

def _encode_value(coltype, v):
    if coltype.is_map:
        return [[k, x] for k, x in v.items()]
    if coltype.is_set:
        return list(v)
    return v


def _decode_value(coltype, v):
    if coltype.is_map:
        return dict(sorted((k, x) for k, x in v))
    if coltype.is_set:
        return tuple(sorted(v))
    return v


def decode_row(table, raw):
    """Row dict with every column of the table (defaults for missing ones)."""
    row = {}
    for name, col in TABLES[table].columns.items():
        row[name] = _decode_value(col.type, raw[name]) if name in raw else schema.default(col.type)
    return row


def split_row(table, row):
    """(config part, daemon part) as JSON-ready dicts of non-default columns."""
    conf, daemon = {}, {}
    for name, col in TABLES[table].columns.items():
        v = row[name]
        if v != schema.default(col.type):
            (daemon if col.daemon else conf)[name] = _encode_value(col.type, v)
    return conf, daemon


# ---- the transaction -----------------------------------------------------

class Transaction:
    def __init__(self, store, write=True, daemon=False):
        self.store, self.write, self.daemon = store, write, daemon
        self.bump_cfg = True
        self.changed = False
        self.next_cfg = None
        self.tables = None

    def __enter__(self):
        self.store.begin(self.write)
        try:
            self.tables = self.store.load()
        except BaseException:
            self.store.conn.execute("ROLLBACK")
            raise
        self._orig = {t: dict(rows) for t, rows in self.tables.items()}
        return self

    def __exit__(self, exc_type, exc, tb):
        conn = self.store.conn
        if exc_type is not None or not self.write:
            conn.execute("ROLLBACK")
            return False
        try:
            self._commit()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return False

    # ---- reads -----------------------------------------------------------

    def rows(self, table):
        return self.tables[table]

    def get(self, table, u):
        return self.tables[table].get(u)

    def find(self, table, name, column="name"):
        for u, r in self.tables[table].items():
            if r[column] == name:
                return u, r
        return None

    def root(self):
        return next(iter(self.tables[ROOT].items()))

    def original(self, table, u):
        """The row as it was when the transaction began (None: new row)."""
        return self._orig[table].get(u)

    # ---- writes ----------------------------------------------------------

    def insert(self, table, values=None, u=None):
        u = (u or str(uuidlib.uuid4())).lower()
        if u in self.tables[table]:
            raise StoreError(f"duplicate uuid {u} in table {table}")
        row = decode_row(table, {})
        self.tables[table][u] = row
        self._apply(table, u, values or {}, inserting=True)
        return u

    def update(self, table, u, values):
        if u not in self.tables[table]:
            raise StoreError(f"no row {u} in table {table}")
        self._apply(table, u, values, inserting=u not in self._orig[table])

    def delete(self, table, u):
        if self.tables[table].pop(u, None) is None:
            raise StoreError(f"no row {u} in table {table}")

    def _apply(self, table, u, values, inserting):
        cols = TABLES[table].columns
        new = dict(self.tables[table][u])
        for name, v in values.items():
            col = cols.get(name)
            if col is None:
                raise StoreError(f'{table} does not contain a column whose name matches "{name}"')
            if (col.daemon and not self.daemon) or (not col.mutable and not inserting):
                raise StoreError(f"cannot modify read-only column {name} in table {table}")
            try:
                new[name] = schema.validate(col, v)
            except SchemaError as e:
                raise StoreError(str(e)) from None
        self.tables[table][u] = new

    # ---- commit ----------------------------------------------------------

    def _commit(self):
        from pyvswitch.db import integrity
        if not self._config_changed() and not self._daemon_changed():
            return
        integrity.check(self)
        self.changed = self._config_changed()
        if self.changed and self.bump_cfg:
            ru, rrow = self.root()
            self.tables[ROOT][ru] = dict(rrow, next_cfg=rrow["next_cfg"] + 1)
        self.next_cfg = self.root()[1]["next_cfg"]
        self._write()

    def _config_changed(self):
        return self._diff(0)

    def _daemon_changed(self):
        return self._diff(1)

    def _diff(self, part):
        for t, rows in self.tables.items():
            orig = self._orig[t]
            if rows.keys() != orig.keys():
                return True
            for u, r in rows.items():
                o = orig[u]
                if r is not o and split_row(t, r)[part] != split_row(t, o)[part]:
                    return True
        return False

    def _write(self):
        conn = self.store.conn
        for t, rows in self.tables.items():
            orig = self._orig[t]
            for u in orig.keys() - rows.keys():
                conn.execute("DELETE FROM rows WHERE tbl=? AND uuid=?", (t, u))
                conn.execute("DELETE FROM status WHERE tbl=? AND uuid=?", (t, u))
            for u, r in rows.items():
                if orig.get(u) is not r:
                    self._write_row(t, u, r, orig.get(u))
        if self.changed:
            conn.execute("INSERT INTO meta(key, value) VALUES('seqno', 1) "
                         "ON CONFLICT(key) DO UPDATE SET value = value + 1")

    def _write_row(self, t, u, r, o):
        conn = self.store.conn
        conf, daemon = split_row(t, r)
        oconf, odaemon = split_row(t, o) if o is not None else (None, {})
        if conf != oconf:
            conn.execute("INSERT OR REPLACE INTO rows(tbl, uuid, data) VALUES(?,?,?)",
                         (t, u, json.dumps(conf, sort_keys=True)))
        if daemon != odaemon:
            if daemon:
                conn.execute("INSERT OR REPLACE INTO status(tbl, uuid, data) VALUES(?,?,?)",
                             (t, u, json.dumps(daemon, sort_keys=True)))
            else:
                conn.execute("DELETE FROM status WHERE tbl=? AND uuid=?", (t, u))
