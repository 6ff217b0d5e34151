"""core/inotify.DirWatch: the daemon's wake-up on database commits."""

import os
import select
import sqlite3

import pytest

from pyvswitch.core.inotify import DirWatch


def readable(fd, timeout=1.0):
    return bool(select.select([fd], [], [], timeout)[0])


def test_quiet_directory_reads_nothing(tmp_path):
    w = DirWatch(str(tmp_path))
    try:
        assert not readable(w, 0.05)
        assert w.drain() == 0
    finally:
        w.close()


def test_a_commit_by_another_connection_wakes_the_watcher(tmp_path):
    db = str(tmp_path / "conf.db")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    w = DirWatch(str(tmp_path))
    try:
        assert w.drain() == 0
        writer.execute("INSERT INTO t VALUES (1)")
        assert readable(w)
        assert w.drain() >= 1
        assert w.drain() == 0 and not readable(w, 0.05)    # drained: quiet again
    finally:
        w.close()
        writer.close()


def test_missing_directory_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        DirWatch(str(tmp_path / "absent"))
