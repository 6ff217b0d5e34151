"""Restarting the daemon, and processes killed at the worst moment.

- SIGTERM, start again on the same rundir and database: bridges, ports and
  their ofport numbers come back, traffic resumes, and the flow table is back
  to the default NORMAL flow (OpenFlow flows are not persisted, as in OVS).
- SIGKILL of the daemon (no clean-up: stale socket and pidfile, the bridge's
  internal device left behind): a new daemon starts and forwards.
- SIGKILL of pvs-vsctl in the middle of its commit, and of many pvs-vsctl
  add-port runs at random moments: the database stays consistent (each port
  fully there or absent), the daemon stays up and reconciles.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from pyvswitch.tools.lab import tool

pytestmark = pytest.mark.system

PREFIX = "sr"


def flows(net):
    """dump-flows lines without the changing duration/age/counters."""
    out = []
    for line in net.ofctl("dump-flows", net.br).splitlines():
        if "actions=" not in line:
            continue                       # the reply's header line (its xid may differ)
        fields = [f for f in line.strip().split(", ")
                  if not f.startswith(("duration=", "n_packets=", "n_bytes=", "idle_age=", "hard_age="))]
        out.append(", ".join(fields))
    return out


def wait_applied(net, timeout=10):
    def done():
        cur, nxt = net.vsctl("get", "Open_vSwitch", ".", "cur_cfg", "next_cfg").split()
        return cur == nxt
    net.wait_for(done, timeout, 0.05, "the daemon to apply the database")


def test_restart_keeps_config_and_traffic(net_factory):
    net = net_factory()
    a = net.host("a", ip="10.79.0.1/24", tag=10)
    b = net.host("b", ip="10.79.0.2/24", tag=10)
    net.wait_ready(a, b)
    net.ofctl("add-flow", net.br, "priority=50,dl_type=0x88b5,actions=drop")
    assert len(flows(net)) == 2
    show, ofports = net.vsctl("show"), net.ofports()
    assert ofports[a.port] > 0 and ofports[b.port] > 0

    pid = net.pid
    assert net.stop()
    for f in ("pvs-vswitchd.ctl", "pvs-vswitchd.pid"):
        assert not os.path.exists(os.path.join(net.rundir, f)), f
    assert net.run("pvs-appctl", "version", check=False).returncode == 1

    assert net.start() != pid
    wait_applied(net)
    net.wait_ready(a, b)
    assert net.vsctl("show") == show
    assert net.ofports() == ofports
    assert a.ping(b.addr, count=5, interval=0.05)
    assert flows(net) == ["cookie=0x0, table=0, priority=0 actions=NORMAL"]


def test_restart_keeps_ofports_of_ports_added_out_of_name_order(net_factory):
    net = net_factory()
    for name in ("z", "y", "x"):              # ofports 1, 2, 3 in this order
        net.vsctl("add-port", net.br, f"{net.prefix}-{name}", "--",
                  "set", "Interface", f"{net.prefix}-{name}", "type=dummy")
    wait_applied(net)
    before = net.ofports()
    assert sorted(before[f"{net.prefix}-{n}"] for n in "zyx") == [1, 2, 3]
    assert net.stop()
    net.start()
    wait_applied(net)
    net.wait_for(lambda: all(v > 0 for v in net.ofports().values()), 5, 0.1, "ofports written")
    assert net.ofports() == before


def test_restart_after_sigkill(net_factory):
    """kill -9: socket and pidfile stay behind, and so does the bridge's
    internal device; a new daemon takes over all three."""
    net = net_factory()
    a = net.host("a", ip="10.79.1.1/24")
    b = net.host("b", ip="10.79.1.2/24")
    net.wait_ready(a, b)
    assert net.stop(signal.SIGKILL)
    assert os.path.exists(os.path.join(net.rundir, "pvs-vswitchd.ctl"))
    net.start()
    wait_applied(net)
    net.wait_ready(a, b)
    assert net.appctl("version").startswith("pvs-vswitchd")
    assert net.vsctl("get", "Interface", net.br, "error").strip() == "[]"
    assert a.ping(b.addr, count=3, interval=0.05)


# ---- pvs-vsctl killed mid-transaction ------------------------------------------------

# Runs the real pvs-vsctl, except that the commit stops (and says so) after the
# first row went to SQLite, before COMMIT: the parent kills it right there.
MID_COMMIT = """
import sys, time
from pyvswitch.db import txn
orig = txn.Transaction._write_row
def slow(self, *a):
    orig(self, *a)
    print("mid-commit", flush=True)
    time.sleep(60)
txn.Transaction._write_row = slow
from pyvswitch.cli.vsctl import main
sys.exit(main(sys.argv[1:]))
"""


def test_vsctl_killed_mid_commit_changes_nothing(net_factory):
    net = net_factory()
    before = net.vsctl("show")
    cfg = net.vsctl("get", "Open_vSwitch", ".", "next_cfg")
    p = f"{net.prefix}-k"
    child = subprocess.Popen([sys.executable, "-c", MID_COMMIT, "add-port", net.br, p, "tag=5",
                              "--", "set", "Interface", p, "type=dummy"],
                             env=net.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "mid-commit\n", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
        child.stdout.close()
        child.stderr.close()
    # The write lock died with the process; nothing of the transaction is visible.
    assert net.vsctl("-t", "5", "show") == before
    assert net.vsctl("get", "Open_vSwitch", ".", "next_cfg") == cfg
    for table in ("Port", "Interface"):
        assert net.vsctl("--if-exists", "get", table, p, "name") == ""
    assert net.alive()
    net.vsctl("-t", "5", "add-port", net.br, p, "--", "set", "Interface", p, "type=dummy")
    wait_applied(net)
    assert net.ofports()[p] > 0


def test_vsctl_runs_killed_at_random_keep_the_db_consistent(net_factory):
    net = net_factory()
    rnd = random.Random(os.getpid())
    names = [f"{net.prefix}-{i:02d}" for i in range(16)]
    procs = []
    for i, n in enumerate(names):
        procs.append(subprocess.Popen([tool("pvs-vsctl"), "-t", "20", "add-port", net.br, n, f"tag={i + 1}",
                                       "--", "set", "Interface", n, "type=dummy"],
                                      env=net.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        time.sleep(rnd.uniform(0, 0.05))
        if i % 2:
            victim = procs[rnd.randrange(len(procs))]
            victim.send_signal(signal.SIGKILL)
    codes = {}
    for n, p in zip(names, procs):
        p.wait(60)
        codes[n] = p.returncode
        p.stderr.close()
    assert all(c in (0, -signal.SIGKILL) for c in codes.values()), codes

    assert net.alive()
    listed = set(net.vsctl("list-ports", net.br).split())
    ports = set(net.vsctl("--bare", "--columns=name", "list", "Port").split()) - {net.br}
    ifaces = set(net.vsctl("--bare", "--columns=name", "list", "Interface").split()) - {net.br}
    assert listed == ports == ifaces                 # each port fully there or absent
    assert {n for n, c in codes.items() if c == 0} <= listed
    for n in listed:                                 # with all its settings
        assert net.vsctl("get", "Port", n, "tag").strip() == str(names.index(n) + 1)
        assert net.vsctl("get", "Interface", n, "type").strip() == "dummy"
    assert "Traceback" not in net.vsctl("show")

    wait_applied(net)                                # the daemon reconciles
    net.wait_for(lambda: all(net.ofports().get(n, -1) > 0 for n in listed), 5, 0.1, "ofports")
    stats = net.port_stats()
    assert set(stats) == listed | {net.br}
    print(f"{len(listed)} of {len(names)} add-port runs committed; "
          f"{sum(c != 0 for c in codes.values())} killed")
