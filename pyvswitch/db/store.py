"""Transactional, crash-safe configuration store on SQLite.

What: the pvs-vswitchd configuration database (OVSDB semantics, SQLite
storage). Several processes share one file: the daemon and any number of CLIs.

API (all values as described in schema.py):
    store = Store(path, timeout=60.0)   # creates the file and the root row
    with store.transaction() as txn:    # write txn; commits at the end,
        txn.rows("Bridge")              #   rolls back on exception
        txn.get(table, uuid) / txn.find(table, name) / txn.root()
        txn.insert(table, {col: value}) -> uuid
        txn.update(table, uuid, {col: value})
        txn.delete(table, uuid)
    txn.changed / txn.next_cfg          # after the with block
    with store.transaction(write=False) as txn: ...   # consistent read
    snap = store.snapshot()             # immutable view, see Snapshot
    store.write_status({table: {uuid: {col: value}}})  # daemon write-back
    store.seqno()                       # bumps on every config commit
    store.data_version()                # bumps on any commit by another connection
    store.close()

Semantics:
- A write transaction holds SQLite's write lock from start to end
  (BEGIN IMMEDIATE), so read-modify-write is serialisable across processes;
  waiting for the lock is bounded by `timeout` (StoreBusy).
- At commit (txn.py): rows no longer reachable from the root through strong
  references are garbage-collected (deleting a Bridge drops its Ports and
  their Interfaces), dangling weak references are removed, dangling strong
  references and duplicate names are errors, and Open_vSwitch.next_cfg is
  incremented if any configuration changed (one bump per transaction).
- Daemon columns (schema Column.daemon: ofport, error, link_state, ...)
  live in a separate SQLite table, so write_status() neither bumps next_cfg
  nor seqno; reads merge them into the rows. Transactions refuse to write
  them unless opened with daemon=True.
- Crash safety: WAL journal, synchronous=FULL. A process killed before COMMIT
  leaves the previous state; SQLite recovers on next open.

Threads: one Store per thread (sqlite3 connections are not shared).
"""

import json
import os
import sqlite3
import types

from pyvswitch.db import schema
from pyvswitch.db.schema import TABLES, ROOT
from pyvswitch.db.txn import Transaction, StoreError, decode_row

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS rows (tbl TEXT NOT NULL, uuid TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (tbl, uuid));
CREATE TABLE IF NOT EXISTS status (tbl TEXT NOT NULL, uuid TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (tbl, uuid));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class StoreBusy(StoreError):
    """The database stayed locked by another process for longer than timeout."""


class Snapshot:
    """Immutable view of the whole database at one instant.

    tables: {table: {uuid: row}}; each row is a read-only mapping of every
    column (defaults filled in, daemon columns merged). seqno: the store's
    config seqno at that instant."""

    def __init__(self, tables, seqno):
        self.tables = types.MappingProxyType(
            {t: types.MappingProxyType({u: _freeze(r) for u, r in rows.items()})
             for t, rows in tables.items()})
        self.seqno = seqno

    def root(self):
        """(uuid, row) of the Open_vSwitch row."""
        return next(iter(self.tables[ROOT].items()))

    @property
    def next_cfg(self):
        return self.root()[1]["next_cfg"]

    def by_name(self, table, name):
        """(uuid, row) of the row with that name, or None."""
        for u, r in self.tables[table].items():
            if r.get("name") == name:
                return u, r
        return None


def _freeze(row):
    return types.MappingProxyType(
        {c: types.MappingProxyType(v) if isinstance(v, dict) else v for c, v in row.items()})


class Store:
    def __init__(self, path, timeout=60.0):
        self.path = path
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._exec("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self._init_db()

    def _exec(self, sql, args=()):
        try:
            return self.conn.execute(sql, args)
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise StoreBusy(f"{self.path}: database is locked") from None
            raise

    def _init_db(self):
        if self._has_root():
            return
        with self.transaction() as txn:   # begin() creates the SQL tables
            if not txn.rows(ROOT):
                txn.insert(ROOT, {})
                txn.bump_cfg = False

    def _has_root(self):
        try:
            cur = self.conn.execute("SELECT 1 FROM rows WHERE tbl=? LIMIT 1", (ROOT,))
            return cur.fetchone() is not None
        except sqlite3.OperationalError:
            return False

    def close(self):
        self.conn.close()

    # ---- transactions ------------------------------------------------

    def transaction(self, write=True, daemon=False):
        return Transaction(self, write=write, daemon=daemon)

    def begin(self, write):
        self._exec("BEGIN IMMEDIATE" if write else "BEGIN")
        if write:
            for stmt in SCHEMA_SQL.strip().split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)

    def load(self):
        """{table: {uuid: row}} with daemon columns merged (inside a txn)."""
        tables = {t: {} for t in TABLES}
        status = {}
        if not self._table_exists():
            return tables
        for tbl, u, data in self.conn.execute("SELECT tbl, uuid, data FROM status"):
            status[(tbl, u)] = json.loads(data)
        for tbl, u, data in self.conn.execute("SELECT tbl, uuid, data FROM rows"):
            if tbl in TABLES:
                raw = json.loads(data)
                raw.update(status.get((tbl, u), {}))
                tables[tbl][u] = decode_row(tbl, raw)
        return tables

    def _table_exists(self):
        cur = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='rows'")
        return cur.fetchone() is not None

    # ---- reads -----------------------------------------------------------

    def snapshot(self):
        with self.transaction(write=False) as txn:
            return Snapshot(txn.tables, self._seqno_in_txn())

    def seqno(self):
        """Config change counter: bumps on every commit that changed config."""
        if not self._table_exists():
            return 0
        return self._seqno_in_txn()

    def _seqno_in_txn(self):
        if not self._table_exists():
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key='seqno'").fetchone()
        return row[0] if row else 0

    def data_version(self):
        """SQLite's PRAGMA data_version: changes when another connection commits."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    # ---- daemon write-back -----------------------------------------------

    def write_status(self, updates):
        """Merge daemon columns: {table: {uuid: {column: value}}}.

        Only daemon columns are accepted (StoreError otherwise); rows that no
        longer exist are skipped. Does not bump next_cfg or seqno."""
        with self.transaction(daemon=True) as txn:
            txn.bump_cfg = False
            for table, rows in updates.items():
                for u, cols in rows.items():
                    if txn.get(table, u) is None:
                        continue
                    for c in cols:
                        if not schema.TABLES[table].columns[c].daemon:
                            raise StoreError(f"{table}.{c} is not a daemon column")
                    txn.update(table, u, cols)
