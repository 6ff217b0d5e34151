"""Bridge other_config:hwaddr sets the LOCAL port's MAC, as in Open vSwitch
(the VXLAN recipes give each underlay bridge a known MAC for tnl/arp/set).
The daemon runs in a namespace of its own, so its bridge devices never
appear in the root namespace; the Lab removes daemon, namespace and run
directory even when the test fails."""

import json
import os
import subprocess
import sys
import time

import pytest

from pyvswitch.tools.lab import Lab, sh, tool

from .conftest import unique_prefix

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
JIT_TIMEOUT = 900            # the first bridge may compile the PMD on a cold numba cache


def kernel_mac(ns, dev):
    r = sh("ip", "-j", "link", "show", "dev", dev, ns=ns)
    return json.loads(r.stdout)[0]["address"]


def wait_mac(ns, dev, want, timeout=20.0):
    end = time.monotonic() + timeout
    while True:
        got = kernel_mac(ns, dev)
        if got == want or time.monotonic() > end:
            return got
        time.sleep(0.2)


def stable_mac_in(ns, name):
    """The MAC the daemon derives for `name` inside namespace `ns`."""
    code = f"from pyvswitch.ports.internal import stable_mac; print(stable_mac({name!r}).hex(':'))"
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=60, check=True)
    return r.stdout.strip()


def test_hwaddr_sets_and_releases_the_local_mac():
    lab = Lab(prefix=unique_prefix("hw"))
    try:
        ns = lab.netns("sw")
        rundir = lab.tempdir()
        env = dict(os.environ, PVS_RUNDIR=rundir)
        r = subprocess.run(["ip", "netns", "exec", ns, tool("pvs-vswitchd"), "--rundir", rundir,
                            "--detach", "--log-file"], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(rundir, "pvs-vswitchd.pid")) as f:
            lab.track(int(f.read()))

        def vsctl(*a, timeout=60):
            r = subprocess.run([tool("pvs-vsctl"), f"--timeout={timeout}", *a], env=env,
                               capture_output=True, text=True, timeout=timeout + 30)
            assert r.returncode == 0, r.stderr
        vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
              "other_config:hwaddr=02:00:00:00:ff:01", timeout=JIT_TIMEOUT)
        assert wait_mac(ns, "br-phy", "02:00:00:00:ff:01") == "02:00:00:00:ff:01"
        # changed on a running bridge
        vsctl("set", "bridge", "br-phy", "other_config:hwaddr=02:00:00:00:ff:02")
        assert wait_mac(ns, "br-phy", "02:00:00:00:ff:02") == "02:00:00:00:ff:02"
        own = stable_mac_in(ns, "br-phy")
        assert own not in ("02:00:00:00:ff:01", "02:00:00:00:ff:02")
        # a multicast address counts as no setting, as in Open vSwitch
        vsctl("set", "bridge", "br-phy", "other_config:hwaddr=01:00:5e:00:00:01")
        assert wait_mac(ns, "br-phy", own) == own
        vsctl("set", "bridge", "br-phy", "other_config:hwaddr=02:00:00:00:ff:01")
        assert wait_mac(ns, "br-phy", "02:00:00:00:ff:01") == "02:00:00:00:ff:01"
        # removed: back to the port's own stable MAC
        vsctl("remove", "bridge", "br-phy", "other_config", "hwaddr")
        assert wait_mac(ns, "br-phy", own) == own
    finally:
        lab.close()

