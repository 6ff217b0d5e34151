"""pvs-ofctl dump-tables against the daemon: active, lookup and matched
counts as Open vSwitch keeps them (packets through each table the pipeline
visits, credited from the datapath's megaflow statistics)."""

import os
import subprocess
import re
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pyvswitch.tools.lab import Lab, tool

from .test_cli_dummy import Cli as _Cli


class Cli(_Cli):
    """The CLIs with a patient timeout: the first bridge starts the PMD, whose
    kernels compile first when numba's cache is cold (minutes on a busy
    2-core machine)."""

    def __call__(self, *args, ok=True):
        r = subprocess.run([tool(args[0])] + list(args[1:]), env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
        if ok:
            assert r.returncode == 0, f"{args}: {r.stderr}"
            return r.stdout
        return r

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")


def tables(out):
    """{table: (active, lookup, matched)} from dump-tables text."""
    return {int(t): (int(a), int(lk), int(m)) for t, a, lk, m in re.findall(
        r"table (\d+):\s+active=(\d+), lookup=(\d+), matched=(\d+)", out)}


def test_dump_tables_counts_lookups_and_matches():
    lab = Lab(prefix="pvt")
    try:
        rundir = lab.tempdir("run")
        cli = Cli(rundir)
        lab.start_daemon(rundir, env=cli.env)
        cli("pvs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
            "--", "add-port", "br0", "pa", "--", "set", "Interface", "pa", "type=dummy",
            "ofport_request=1",
            "--", "add-port", "br0", "pb", "--", "set", "Interface", "pb", "type=dummy",
            "ofport_request=2")
        cli("pvs-ofctl", "del-flows", "br0")
        cli("pvs-ofctl", "add-flow", "br0", "table=0,in_port=1,actions=resubmit(,1),resubmit(,2)")
        cli("pvs-ofctl", "add-flow", "br0", "table=1,priority=5,udp,tp_dst=9,actions=drop")
        cli("pvs-ofctl", "add-flow", "br0", "table=2,actions=output:2")
        frame = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / \
            IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / (b"x" * 20)
        for _ in range(3):
            cli.send("pa", frame)
        assert len(cli.capture("pb", want=3, timeout=600)) == 3   # (kernels may compile)
        cli.send("pb", frame)                    # table 0 misses
        want = {0: (1, 4, 3), 1: (1, 3, 0), 2: (1, 3, 3)}
        deadline = time.time() + 20              # the revalidator credits once a second
        while time.time() < deadline:
            got = tables(cli("pvs-ofctl", "dump-tables", "br0"))
            if got == want:
                break
            time.sleep(0.2)
        assert got == want
    finally:
        lab.close()
