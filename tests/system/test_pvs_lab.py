"""pvs-lab end to end: two hosts, each its own pvs-vswitchd in a namespace,
joined by a Linux-bridge underlay; VXLAN, VLAN and flat tenant networks with
all guests in one IP subnet. `check` must find exactly the guests of the same
network reachable (isolation proven by traffic), and `down` must leave no
namespace or daemon behind, also when the test fails."""

import json
import os
import subprocess

import pytest

from pyvswitch.tools.lab import tool

from .conftest import unique_prefix

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def lab(*args, timeout=600):
    return subprocess.run([tool("pvs-lab"), *args], capture_output=True, text=True, timeout=timeout)


def namespaces(prefix):
    return [n.split()[0] for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                  text=True).stdout.splitlines() if n.startswith(prefix + "-")]


def test_two_hosts_four_networks_isolated_and_cleaned_up():
    name = unique_prefix("pl")
    r = lab("up", "--name", name, "--hosts", "2", "--networks", "vxlan:100,vxlan:200,vlan:10,flat")
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "host 2: namespace" in r.stdout
        with open(f"/run/pvs-lab/{name}.json") as f:
            state = json.load(f)
        pids = state["lab"]["pids"]
        assert len(pids) == 2 and len(namespaces(name)) == 1 + 2 + 2 * 4     # underlay, hosts, guests
        c = lab("check", "--name", name)
        assert c.returncode == 0, c.stdout + c.stderr
        lines = [x for x in c.stdout.splitlines() if x.startswith(("ok", "BAD"))]
        assert len(lines) == 8 * 7
        assert sum("reachable" in x and "unreachable" not in x for x in lines) == 4 * 2   # same network, other host
    finally:
        d = lab("down", "--name", name)
    assert d.returncode == 0, d.stderr
    assert namespaces(name) == [] and not os.path.exists(f"/run/pvs-lab/{name}.json")
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_bad_networks_are_refused_and_build_nothing():
    name = unique_prefix("pl")
    r = lab("up", "--name", name, "--networks", "vxlan:100,gre:5")
    assert r.returncode == 2 and "expected vxlan:VNI, vlan:VID or flat" in r.stderr
    assert namespaces(name) == [] and not os.path.exists(f"/run/pvs-lab/{name}.json")
