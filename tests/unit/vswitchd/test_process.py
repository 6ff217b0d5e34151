"""Pidfile locking and detaching (the parts of process set-up without a switch)."""

import os
import subprocess
import sys
import textwrap

import pytest

from pyvswitch.vswitchd.process import Pidfile, StartupError


def test_second_pidfile_lock_fails(tmp_path):
    path = str(tmp_path / "x.pid")
    a = Pidfile(path)
    a.acquire()
    a.write(os.getpid())
    code = textwrap.dedent(f"""
        from pyvswitch.vswitchd.process import Pidfile, StartupError
        try:
            Pidfile({path!r}).acquire()
        except StartupError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert f"already locked by running process with pid {os.getpid()}" in out
    a.release()
    assert not os.path.exists(path)
    b = Pidfile(path)
    b.acquire()
    b.release()


def test_detach_reports_startup_failure(tmp_path):
    code = textwrap.dedent("""
        import sys
        from pyvswitch.vswitchd.process import Detacher
        d = Detacher()
        d.detach()
        d.failed("boom: could not start\\n")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "boom: could not start" in r.stderr


def test_detach_ready(tmp_path):
    marker = tmp_path / "child"
    code = textwrap.dedent(f"""
        import os
        from pyvswitch.vswitchd.process import Detacher
        d = Detacher()
        d.detach()
        open({str(marker)!r}, "w").write(str(os.getpid()))
        d.ready()
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert marker.read_text().isdigit()


def test_fd_limit_is_raised_towards_the_hard_limit():
    """Many ports, many descriptors: the daemon lifts a low soft limit."""
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if want <= 256:
        pytest.skip(f"hard limit {hard} leaves nothing to raise")
    r = subprocess.run(
        [sys.executable, "-c", "from pyvswitch.vswitchd.main import raise_fd_limit; print(raise_fd_limit())"],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == want
