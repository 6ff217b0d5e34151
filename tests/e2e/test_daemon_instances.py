"""Several pvs-vswitchd instances on one machine, and the daemon's lifecycle.

Each daemon has its own rundir (and so its own database, socket, pidfile);
the CLIs pick an instance with PVS_RUNDIR. No namespaces or kernel ports:
ports are `dummy`. Bridge names are unique per test process, because a
bridge's internal port is a device in the root namespace when running as
root (without root it only gets an error in its Interface row).

The test marked `system` also checks that the tap and internal devices a
daemon created are gone after SIGTERM (needs root).
"""

import itertools
import os
import signal
import stat
import subprocess
import time

import pytest

from pyvswitch.tools.lab import Lab, sh, tool

TAG = f"e{os.getpid() % 4096:03x}"
_serial = itertools.count(1)


@pytest.fixture
def lab():
    lab = Lab(prefix=TAG)
    try:
        yield lab
    finally:
        lab.close()


class Instance:
    def __init__(self, lab, name):
        self.lab = lab
        self.rundir = lab.tempdir(name)
        self.env = {k: v for k, v in os.environ.items() if k != "PVS_DB"}
        self.env["PVS_RUNDIR"] = self.rundir
        self.br = f"{TAG}{name}{next(_serial)}br"
        self.pid = None

    def path(self, name):
        return os.path.join(self.rundir, name)

    def start(self):
        self.pid = self.lab.start_daemon(self.rundir, env=self.env)
        return self

    def run(self, prog, *args):
        return subprocess.run([tool(prog), *args], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def ok(self, prog, *args):
        r = self.run(prog, *args)
        assert r.returncode == 0, (prog, args, r.stdout, r.stderr)
        return r.stdout


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_two_daemons_side_by_side(lab):
    a, b = Instance(lab, "a").start(), Instance(lab, "b").start()
    assert a.pid != b.pid
    for inst in (a, b):
        # the same dummy port name in both: nothing global may collide
        inst.ok("pvs-vsctl", "add-br", inst.br, "--", "add-port", inst.br, "p1", "--",
                "set", "Interface", "p1", "type=dummy")
        with open(inst.path("pvs-vswitchd.pid")) as f:
            assert int(f.read()) == inst.pid
        assert stat.S_ISSOCK(os.stat(inst.path("pvs-vswitchd.ctl")).st_mode)
        assert os.path.exists(inst.path("conf.db"))
        assert int(inst.ok("pvs-vsctl", "get", "Interface", "p1", "ofport")) > 0

    for inst, other in ((a, b), (b, a)):
        assert inst.ok("pvs-vsctl", "list-br").split() == [inst.br]
        assert inst.ok("pvs-vsctl", "list-ports", inst.br).split() == ["p1"]
        assert "p1" in inst.ok("pvs-ofctl", "show", inst.br)
        assert inst.ok("pvs-appctl", "fdb/show", inst.br).startswith(" port  VLAN  MAC")
        r = inst.run("pvs-ofctl", "show", other.br)
        assert r.returncode == 1 and other.br in r.stderr
        r = inst.run("pvs-appctl", "fdb/show", other.br)
        assert r.returncode == 2 and f'no such bridge "{other.br}"' in r.stderr
        assert inst.run("pvs-vsctl", "br-exists", other.br).returncode == 2

    # Stopping one leaves the other alone.
    os.kill(a.pid, signal.SIGTERM)
    assert wait_gone(a.pid)
    assert b.ok("pvs-appctl", "version").startswith("pvs-vswitchd")
    assert "p1" in b.ok("pvs-ofctl", "show", b.br)
    assert a.run("pvs-appctl", "version").returncode == 1


@pytest.mark.parametrize("second", ["detached", "foreground"])
@pytest.mark.parametrize("first", ["foreground", "detached"])
def test_second_daemon_on_the_same_rundir_refuses(lab, first, second):
    a = Instance(lab, "a")
    if first == "detached":
        a.start()
    else:
        p = foreground(lab, a)
    a.ok("pvs-vsctl", "add-br", a.br)
    args = [tool("pvs-vswitchd"), "--rundir", a.rundir] + (["--detach"] if second == "detached" else [])
    other = subprocess.Popen(args, env=a.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        rc = other.wait(5)                  # the lock is checked before anything heavy
        err = other.stderr.read()
    except subprocess.TimeoutExpired:       # it is running: stop it, fail below
        other.terminate()
        other.wait(15)
        rc, err = None, ""
    finally:
        other.stderr.close()
        try:                                # a detached intruder wrote its pid there
            with open(a.path("pvs-vswitchd.pid")) as f:
                pid = int(f.read())
            if pid != a.pid:
                lab.track(pid)
        except (OSError, ValueError):
            pass
    assert rc == 1, f"a second daemon started on the same rundir (exit {rc}) {err}"
    assert err == (f"pvs-vswitchd: {a.path('pvs-vswitchd.pid')}: already locked by running "
                   f"process with pid {a.pid}\n")
    # The first daemon keeps its pidfile, its socket and its bridge.
    with open(a.path("pvs-vswitchd.pid")) as f:
        assert int(f.read()) == a.pid
    assert a.ok("pvs-appctl", "version").startswith("pvs-vswitchd")
    assert a.ok("pvs-vsctl", "list-br").split() == [a.br]
    assert a.ok("pvs-ofctl", "show", a.br).startswith("OFPT_FEATURES_REPLY")
    if first == "foreground":
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0
        p.stderr.close()


def test_management_socket_is_private(lab):
    a = Instance(lab, "a").start()
    mode = stat.S_IMODE(os.stat(a.path("pvs-vswitchd.ctl")).st_mode)
    assert mode == 0o600, oct(mode)


def foreground(lab, inst, extra=()):
    """pvs-vswitchd as our child (so its exit status can be read)."""
    p = subprocess.Popen([tool("pvs-vswitchd"), "--rundir", inst.rundir, "--log-file", *extra],
                         env=inst.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lab.track(p.pid)
    deadline = time.monotonic() + 180       # a cold numba cache compiles the kernels first
    while inst.run("pvs-appctl", "version").returncode != 0:
        assert p.poll() is None, p.stderr.read()
        assert time.monotonic() < deadline, "daemon did not come up"
        time.sleep(0.05)
    inst.pid = p.pid
    return p


def test_sigterm_removes_socket_and_pidfile_and_exits_0(lab):
    a = Instance(lab, "a")
    p = foreground(lab, a)
    a.ok("pvs-vsctl", "add-br", a.br, "--", "add-port", a.br, "p1", "--",
         "set", "Interface", "p1", "type=dummy")
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0, p.stderr.read()
    p.stderr.close()
    assert not os.path.exists(a.path("pvs-vswitchd.ctl"))
    assert not os.path.exists(a.path("pvs-vswitchd.pid"))
    assert os.path.exists(a.path("conf.db"))                  # the configuration stays


def test_appctl_exit_exits_0(lab):
    a = Instance(lab, "a")
    p = foreground(lab, a)
    a.ok("pvs-appctl", "exit")
    assert p.wait(15) == 0
    p.stderr.close()
    assert not os.path.exists(a.path("pvs-vswitchd.ctl"))


def link_exists(name):
    return sh("ip", "link", "show", name, check=False).returncode == 0


@pytest.mark.system
def test_sigterm_removes_the_devices_it_created(lab):
    a = Instance(lab, "a")
    tap = f"{TAG}tap0"
    lab.links += [a.br, tap]            # removed by the lab if the daemon leaves them
    p = foreground(lab, a)
    a.ok("pvs-vsctl", "add-br", a.br, "--", "add-port", a.br, tap, "--",
         "set", "Interface", tap, "type=tap")
    assert link_exists(a.br) and link_exists(tap)
    assert a.ok("pvs-vsctl", "get", "Interface", a.br, "error").strip() == "[]"
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0, p.stderr.read()
    p.stderr.close()
    assert not link_exists(a.br), "internal device left behind"
    assert not link_exists(tap), "tap device left behind"
    assert not os.path.exists(a.path("pvs-vswitchd.ctl"))
