"""Store: transactions, rollback, garbage collection, integrity, snapshot,
daemon write-back, crash safety (SIGKILL mid-transaction), concurrent writers."""

import multiprocessing
import os
import signal
import sqlite3

import pytest

from pyvswitch.db.store import Store, StoreBusy
from pyvswitch.db.txn import StoreError


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "sub" / "conf.db")


@pytest.fixture
def store(path):
    s = Store(path)
    yield s
    s.close()


def add_bridge(txn, name, ports=()):
    ports = [name] + list(ports)
    pus = []
    for p in ports:
        iu = txn.insert("Interface", {"name": p, "type": "internal" if p == name else ""})
        pus.append(txn.insert("Port", {"name": p, "interfaces": [iu]}))
    bu = txn.insert("Bridge", {"name": name, "ports": pus})
    ru, root = txn.root()
    txn.update("Open_vSwitch", ru, {"bridges": root["bridges"] + (bu,)})
    return bu


def counts(store):
    return {t: len(rows) for t, rows in store.snapshot().tables.items()}


def test_first_open_creates_root(store):
    snap = store.snapshot()
    assert len(snap.tables["Open_vSwitch"]) == 1
    assert snap.next_cfg == 0
    assert counts(store)["Bridge"] == 0


def test_commit_bumps_next_cfg_once(store):
    with store.transaction() as txn:
        add_bridge(txn, "br0", ["p1"])
        add_bridge(txn, "br1")
    assert txn.changed and txn.next_cfg == 1
    snap = store.snapshot()
    assert snap.next_cfg == 1
    assert sorted(r["name"] for r in snap.tables["Port"].values()) == ["br0", "br1", "p1"]
    assert snap.by_name("Bridge", "br0")[1]["ports"]


def test_no_change_no_bump(store):
    s0 = store.seqno()
    with store.transaction() as txn:
        txn.rows("Bridge")
    assert not txn.changed
    assert store.snapshot().next_cfg == 0 and store.seqno() == s0


def test_exception_rolls_back(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as txn:
            add_bridge(txn, "br0")
            raise RuntimeError("boom")
    assert counts(store)["Bridge"] == 0
    assert store.snapshot().next_cfg == 0


def test_failed_check_rolls_back(store):
    with store.transaction() as txn:
        add_bridge(txn, "br0")
    before = store.snapshot().tables
    with pytest.raises(StoreError, match='identical values \\(br0\\) for index on column "name"'):
        with store.transaction() as txn:
            add_bridge(txn, "br1", ["p9"])
            add_bridge(txn, "br0")
    assert store.snapshot().tables == before


def test_validation_on_write(store):
    with pytest.raises(StoreError, match="not in the valid range 0 to 4095"):
        with store.transaction() as txn:
            add_bridge(txn, "br0", ["p1"])
            pu, _ = txn.find("Port", "p1")
            txn.update("Port", pu, {"tag": 5000})
    with pytest.raises(StoreError, match="cannot modify read-only column ofport"):
        with store.transaction() as txn:
            iu = txn.insert("Interface", {"name": "x"})
            txn.update("Interface", iu, {"ofport": 3})


def test_gc_on_bridge_delete(store):
    with store.transaction() as txn:
        add_bridge(txn, "br0", ["p1", "p2"])
        bu = add_bridge(txn, "br1", ["p3"])
    with store.transaction() as txn:
        ru, root = txn.root()
        txn.update("Open_vSwitch", ru, {"bridges": [b for b in root["bridges"] if b != bu]})
    c = counts(store)
    assert (c["Bridge"], c["Port"], c["Interface"]) == (1, 3, 3)


def test_unreferenced_rows_are_collected(store):
    with store.transaction() as txn:
        txn.insert("Controller", {"target": "tcp:1.2.3.4"})
    assert counts(store)["Controller"] == 0


def test_weak_refs_dropped(store):
    with store.transaction() as txn:
        bu = add_bridge(txn, "br0", ["p1"])
        pu, _ = txn.find("Port", "p1")
        mu = txn.insert("Mirror", {"name": "m", "select_src_port": [pu], "output_port": pu})
        txn.update("Bridge", bu, {"mirrors": [mu]})
    with store.transaction() as txn:
        bu, br = txn.find("Bridge", "br0")
        txn.update("Bridge", bu, {"ports": [p for p in br["ports"] if p != pu]})
    _, m = store.snapshot().by_name("Mirror", "m")
    assert m["select_src_port"] == () and m["output_port"] is None


def test_dangling_strong_ref_is_error(store):
    with store.transaction() as txn:
        add_bridge(txn, "br0", ["p1"])
    with pytest.raises(StoreError, match="referential integrity violation"):
        with store.transaction() as txn:
            pu, _ = txn.find("Port", "p1")
            txn.delete("Port", pu)


def test_root_row_is_unique(store):
    with pytest.raises(StoreError, match="limit of 1 row"):
        with store.transaction() as txn:
            txn.insert("Open_vSwitch", {})


def test_snapshot_is_immutable(store):
    with store.transaction() as txn:
        add_bridge(txn, "br0")
    snap = store.snapshot()
    _, br = snap.by_name("Bridge", "br0")
    with pytest.raises(TypeError):
        br["name"] = "x"
    with pytest.raises(TypeError):
        br["other_config"]["a"] = "b"
    with pytest.raises(TypeError):
        snap.tables["Bridge"]["x"] = {}
    with store.transaction() as txn:
        bu, _ = txn.find("Bridge", "br0")
        txn.update("Bridge", bu, {"datapath_type": "netdev"})
    assert br["datapath_type"] == ""


def test_write_status(store, path):
    with store.transaction() as txn:
        add_bridge(txn, "br0", ["p1"])
    snap = store.snapshot()
    iu, _ = snap.by_name("Interface", "p1")
    ru, _ = snap.root()
    seq, cfg = store.seqno(), snap.next_cfg
    other = Store(path)
    dv = other.data_version()
    store.write_status({"Interface": {iu: {"ofport": 1, "error": "could not open",
                                           "link_state": "up",
                                           "statistics": {"rx_packets": 5}},
                                      "00000000-0000-0000-0000-00000000dead": {"ofport": 9}},
                        "Open_vSwitch": {ru: {"cur_cfg": cfg}}})
    assert other.data_version() != dv          # a poller in another process notices
    snap = other.snapshot()
    row = snap.tables["Interface"][iu]
    assert (row["ofport"], row["error"], row["link_state"]) == (1, "could not open", "up")
    assert row["statistics"]["rx_packets"] == 5
    assert snap.root()[1]["cur_cfg"] == cfg
    assert store.seqno() == seq and snap.next_cfg == cfg
    with pytest.raises(StoreError, match="not a daemon column"):
        store.write_status({"Interface": {iu: {"type": "afpacket"}}})
    # a config change keeps the status; deleting the row drops it
    with store.transaction() as txn:
        txn.update("Interface", iu, {"type": "afpacket"})
    assert store.snapshot().tables["Interface"][iu]["ofport"] == 1
    other.close()


def test_status_of_deleted_row_is_dropped(store):
    with store.transaction() as txn:
        bu = add_bridge(txn, "br0", ["p1"])
    iu, _ = store.snapshot().by_name("Interface", "p1")
    store.write_status({"Interface": {iu: {"ofport": 7}}})
    with store.transaction() as txn:
        ru, _ = txn.root()
        txn.update("Open_vSwitch", ru, {"bridges": []})
    n = store.conn.execute("SELECT COUNT(*) FROM status WHERE tbl='Interface'").fetchone()[0]
    assert n == 0


def test_busy_timeout(path):
    a, b = Store(path), Store(path, timeout=0.2)
    with a.transaction():
        with pytest.raises(StoreBusy):
            with b.transaction():
                pass
        b.snapshot()             # readers are not blocked by a writer (WAL)
    a.close(), b.close()


# ---- crash safety and concurrency ----------------------------------------

def _killed_writer(path, ready):
    s = Store(path)
    txn = s.transaction()
    txn.__enter__()
    add_bridge(txn, "brX", ["px"])
    txn.bump_cfg = True
    txn._commit()               # rows written into the open SQL transaction...
    ready.set()
    signal.pause()              # ...and killed before COMMIT


def test_sigkill_mid_transaction(path):
    s = Store(path)
    with s.transaction() as txn:
        add_bridge(txn, "br0", ["p1"])
    before = s.snapshot().tables
    s.close()
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_killed_writer, args=(path, ready))
    p.start()
    assert ready.wait(10)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    s = Store(path, timeout=5)
    assert s.snapshot().tables == before
    assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with s.transaction() as txn:         # and the lock was released
        add_bridge(txn, "br1")
    assert s.snapshot().next_cfg == 2
    s.close()


def _incrementer(path, n):
    s = Store(path, timeout=30)
    for _ in range(n):
        with s.transaction() as txn:
            ru, root = txn.root()
            count = int(root["external_ids"].get("count", "0"))
            txn.update("Open_vSwitch", ru, {"external_ids": {"count": str(count + 1)}})
    s.close()


def test_concurrent_writers(path):
    Store(path).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_incrementer, args=(path, 40)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store(path)
    root = s.snapshot().root()[1]
    assert root["external_ids"]["count"] == "80"
    assert root["next_cfg"] == 80
    s.close()


def test_wal_and_sync_settings(store):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_garbage_file_is_clean_error(tmp_path):
    p = tmp_path / "bad.db"
    p.write_bytes(b"not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        Store(str(p))
