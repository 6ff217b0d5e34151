"""A quiet daemon sleeps, and still reacts at once.

Once nothing has happened for a second, the main loop ticks every 2 s (or
at the next flow timeout) instead of ten times a second. Changes arrive as
events instead: a database commit through inotify (here with --no-wait, so
no pvs-vsctl request wakes the daemon), a link going down through rtnetlink.
Wake-ups are counted as the main thread's voluntary context switches, not
timed.
"""

import os
import re
import subprocess
import time

import pytest

from pyvswitch.tools.lab import Lab, sh
from tests.e2e.test_cli_dummy import Cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port and veth need root")


@pytest.fixture(scope="module")
def quiet():
    lab = Lab(prefix="pvq")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    try:
        ns = lab.netns("h")
        lab.veth_to_ns("pvq-v", ns)
        cli.pid = lab.start_daemon(rundir, env=cli.env)
        cli.ns = ns
        cli("pvs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
            "--", "add-port", "br0", "pa", "--", "set", "Interface", "pa", "type=dummy",
            "--", "add-port", "br0", "pvq-v")
        yield cli
    finally:
        lab.close()


def wakeups(pid):
    with open(f"/proc/{pid}/task/{pid}/status") as f:
        return int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", f.read()).group(1))


def settle():
    time.sleep(2.5)       # past QUIET_AFTER, and the last busy tick


def wait_until(pred, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def test_quiet_main_loop_wakes_every_two_seconds(quiet):
    settle()
    before = wakeups(quiet.pid)
    time.sleep(6)
    n = wakeups(quiet.pid) - before
    # 3 ticks in 6 s (+ a statistics write-back); ten a second would be 60.
    assert n <= 10, f"main thread woke {n} times in 6 s of quiet"


def test_no_wait_commit_is_applied_without_a_tick(quiet):
    settle()
    quiet("pvs-vsctl", "--no-wait", "add-port", "br0", "pz", "--", "set", "Interface", "pz",
          "type=dummy")
    took = wait_until(lambda: quiet("pvs-vsctl", "get", "Interface", "pz", "ofport").strip()
                      not in ("", "[]", "-1"), 10)
    assert took is not None and took < 1.0, f"ofport assigned after {took} s"
    quiet("pvs-vsctl", "del-port", "br0", "pz")


def test_link_down_is_seen_without_a_tick(quiet):
    settle()
    sh("ip", "link", "set", "eth0", "down", ns=quiet.ns)
    try:
        took = wait_until(lambda: quiet("pvs-vsctl", "get", "Interface", "pvq-v",
                                        "link_state").strip() == "down", 10)
        # the notification makes the daemon busy: link state written within a second
        assert took is not None and took < 1.6, f"link_state down after {took} s"
    finally:
        sh("ip", "link", "set", "eth0", "up", ns=quiet.ns)


def test_flow_timeout_bounds_the_quiet_tick(quiet):
    quiet("pvs-ofctl", "add-flow", "br0", "hard_timeout=4,priority=9,in_port=pa,actions=drop")
    took = wait_until(lambda: "hard_timeout=4" not in quiet("pvs-ofctl", "dump-flows", "br0"), 10)
    # 2 s ticks from t0 + 1 s would remove it near 5 s; the timeout itself wakes the loop.
    assert took is not None and 3.8 <= took < 4.7, f"hard_timeout=4 flow removed after {took} s"
