"""Cleanup stack and PID handling of the bench harness (no root, no network)."""

import subprocess
import sys
import time

from pyvswitch.tools.bench import system


def test_cleanup_unwinds_newest_first_and_survives_failures():
    done = []
    c = system.Cleanup()
    c.push("a", done.append, "a")
    keep = c.push("b", done.append, "b")   # stack height with "b" on top
    c.push("boom", lambda: 1 / 0)
    c.push("c", done.append, "c")
    c.unwind(keep)                         # undoes "c" and "boom", keeps "a" and "b"
    assert done == ["c"]
    assert len(c.stack) == 2
    c.unwind()
    assert done == ["c", "b", "a"]
    assert c.stack == []


def test_stop_pid_checks_the_command_line():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10       # until the child has exec'd
        while "time.sleep(30)" not in (system.pid_cmdline(p.pid) or ""):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        system.stop_pid(p.pid, "no-such-program", timeout=1, popen=p)
        assert p.poll() is None        # not ours by its command line: untouched
        system.stop_pid(p.pid, "time.sleep(30)", timeout=5, popen=p)
        assert p.poll() is not None
        assert not system.pid_alive(p.pid)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_read_pidfile(tmp_path):
    f = tmp_path / "x.pid"
    assert system.read_pidfile(str(f)) is None
    f.write_text("1234\n")
    assert system.read_pidfile(str(f)) == 1234
    f.write_text("garbage")
    assert system.read_pidfile(str(f)) is None


def test_log_errors_distinct_first_lines(tmp_path):
    from pyvswitch.tools.bench.switches import Switch
    log = tmp_path / "d.log"
    log.write_text(
        "2026-11-21T09:18:01.978Z|00001|bridge|INFO|started\n"
        "2026-11-21T09:18:12.959Z|00002|dpif_netdev|ERR|pmd 0 died: Traceback (most recent call last):\n"
        "  File \"pmd.py\", line 136, in _run\n"
        "2026-11-21T09:18:14.272Z|00004|dpif_netdev|ERR|pmd 0 died: Traceback (most recent call last):\n"
        "2026-11-21T09:18:15.000Z|00005|x|EMER|fatal\n")
    assert Switch._log_errors(str(log)) == [
        "dpif_netdev|ERR|pmd 0 died: Traceback (most recent call last):", "x|EMER|fatal"]
    assert Switch._log_errors(str(tmp_path / "missing.log")) == []
