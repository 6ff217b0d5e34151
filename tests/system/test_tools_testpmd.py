"""pvs-testpmd and pvs-pktgen against a pyvswitch daemon (two dpdkvhostuser
ports, in_port flows port1<->port2) and against DPDK testpmd's vhost PMD.
A few seconds of traffic each; everything started is killed by PID."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from pyvswitch.tools.lab import Lab, tool

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
needs_dpdk = pytest.mark.skipif(shutil.which("dpdk-testpmd") is None, reason="needs dpdk-testpmd")


def wait_for(fn, timeout=20.0, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


class Switch:
    def __init__(self, lab):
        self.rundir = lab.tempdir("tt")
        self.env = dict(os.environ, PVS_RUNDIR=self.rundir)
        self.pid = lab.start_daemon(self.rundir, env=self.env)

    def run(self, prog, *args):
        r = subprocess.run([tool(prog), *args], env=self.env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, f"{prog} {' '.join(args)}: {r.stderr}"
        return r.stdout

    def sock(self, name):
        return os.path.join(self.rundir, name)

    def bridge(self):
        self.run("pvs-vsctl", "add-br", "br0",
                 "--", "add-port", "br0", "vhu0", "--", "set", "Interface", "vhu0",
                 "type=dpdkvhostuser", "ofport_request=1",
                 "--", "add-port", "br0", "vhu1", "--", "set", "Interface", "vhu1",
                 "type=dpdkvhostuser", "ofport_request=2")
        self.run("pvs-ofctl", "del-flows", "br0")
        self.run("pvs-ofctl", "add-flow", "br0", "in_port=vhu0,actions=output:vhu1")
        self.run("pvs-ofctl", "add-flow", "br0", "in_port=vhu1,actions=output:vhu0")
        assert wait_for(lambda: os.path.exists(self.sock("vhu0")) and os.path.exists(self.sock("vhu1")))


def start(lab, prog, *args, log):
    p = subprocess.Popen([tool(prog), *args], stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lab.track(p.pid)
    return p


def finish(p, timeout=60):
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        raise


def forward_totals(text):
    """{port: (rx, tx)} from pvs-testpmd's final Forward statistics."""
    return {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
        r"Forward statistics for port (\d+).*?RX-packets:\s+(\d+).*?TX-packets:\s+(\d+)", text, re.S)}


@pytest.fixture
def lab():
    with Lab(prefix="tt") as lab:
        yield lab


def test_pktgen_switch_testpmd_rxonly_counts_agree(lab):
    """pvs-pktgen -> vhu0 -> switch -> vhu1 -> pvs-testpmd rxonly: what the
    generator sent (at a rate the switch keeps up with) is what testpmd counted."""
    sw = Switch(lab)
    sw.bridge()
    d = lab.tempdir("log")
    tp = start(lab, "pvs-testpmd", "--vdev", f"path={sw.sock('vhu1')}", "--forward-mode=rxonly",
               "--duration", "12", "--rxd", "4096", log=os.path.join(d, "tp.log"))
    # (a big ring: pktgen and testpmd busy-poll the same core and take turns)
    assert wait_for(lambda: "packet forwarding" in open(os.path.join(d, "tp.log")).read(), 30)
    pg = subprocess.run([tool("pvs-pktgen"), "--tx", f"path={sw.sock('vhu0')}", "--no-rx",
                         "--count", "20000", "--rate", "20000", "--flows", "4", "--json"],
                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert pg.returncode == 0, pg.stderr
    res = json.loads(pg.stdout.strip().splitlines()[-1])
    assert res["tx"] == 20000
    time.sleep(1)
    os.kill(tp.pid, signal.SIGINT)
    assert finish(tp) == 0
    out = open(os.path.join(d, "tp.log")).read()
    ports = sw.run("pvs-ofctl", "dump-ports", "br0")
    ps = {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
        r"port\s+(\d+): rx pkts=(\d+).*?\n\s+tx pkts=(\d+)", ports)}
    got = forward_totals(out)[0][0]
    # the switch received all that pktgen sent, testpmd counted all the switch sent
    assert ps[1][0] == 20000 and got == ps[2][1], (ports, out[-1500:])
    assert got >= 19000, (ports, out[-1500:])   # the switch drops a little (busy 2-core VM)


def test_testpmd_txonly_through_switch_to_pktgen_and_io_loop(lab):
    """pvs-testpmd io on both ports with --tx-first keeps a burst circulating
    through the switch; a short txonly run is counted by the switch."""
    sw = Switch(lab)
    sw.bridge()
    d = lab.tempdir("log")
    tp = subprocess.run([tool("pvs-testpmd"), "--vdev", f"path={sw.sock('vhu0')}",
                         "--vdev", f"path={sw.sock('vhu1')}", "--forward-mode=io", "--tx-first",
                         "--duration", "3", "--stats-period", "1"],
                        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert tp.returncode == 0, tp.stderr
    tot = forward_totals(tp.stdout)
    assert tot[0][0] > 1000 and tot[1][0] > 1000, tp.stdout[-2000:]
    assert "Rx-pps:" in tp.stdout and "Tx-pps:" in tp.stdout
    # txonly on port 0, rxonly on port 1 in a second process
    rx = start(lab, "pvs-testpmd", "--vdev", f"path={sw.sock('vhu1')}", "--forward-mode=rxonly",
               "--duration", "15", log=os.path.join(d, "rx.log"))
    assert wait_for(lambda: "packet forwarding" in open(os.path.join(d, "rx.log")).read(), 30)
    tx = subprocess.run([tool("pvs-testpmd"), "--vdev", f"path={sw.sock('vhu0')}",
                         "--forward-mode=txonly", "--duration", "2", "--txpkts", "64"],
                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert tx.returncode == 0, tx.stderr
    sent = forward_totals(tx.stdout)[0][1]
    time.sleep(1)
    os.kill(rx.pid, signal.SIGINT)
    assert finish(rx) == 0
    got = forward_totals(open(os.path.join(d, "rx.log")).read())[0][0]
    assert sent > 1000 and 0 < got <= sent


@needs_dpdk
@pytest.mark.parametrize("dpdk_client", [False, True], ids=["dpdk_server", "dpdk_client"])
def test_tools_against_dpdk_vhost_pmd(lab, dpdk_client):
    """DPDK testpmd (net_vhost, io) echoes: pvs-pktgen gets all its frames back
    at a modest rate, with latencies; pvs-testpmd txonly sees its frames return."""
    d = lab.tempdir("dp")
    for i, cmd in enumerate((
            ["pvs-pktgen", "--tx", "SPEC", "--count", "5000", "--rate", "50000", "--flows", "8",
             "--json", "--warmup", "20"],
            ["pvs-testpmd", "--vdev", "SPEC", "--forward-mode=txonly", "--duration", "2"])):
        sock = os.path.join(d, f"vh{i}.sock")
        log = os.path.join(d, f"dpdk{i}.log")
        vdev = f"net_vhost0,iface={sock},queues=1" + (",client=1" if dpdk_client else "")
        spec = f"path={sock}" + (",server=1" if dpdk_client else "")
        cmd = [spec if c == "SPEC" else c for c in cmd]
        dp = subprocess.Popen(["dpdk-testpmd", "--lcores", "0@0,1@0", "--no-pci", "--no-huge",
                               "-m", "512", "--no-shconf", "--file-prefix", f"tt{i}{os.getpid()}",
                               "--vdev", vdev, "--", "--forward-mode=io", "-a",
                               "--total-num-mbufs=16384"],
                              stdin=subprocess.PIPE, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
        lab.track(dp.pid)
        try:
            if not dpdk_client:
                # (testpmd's stdout is block-buffered into the log: wait for the socket)
                assert wait_for(lambda: os.path.exists(sock), 30), open(log).read()
            r = subprocess.run([tool(cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=90,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 0, (r.stderr, open(log).read()[-2000:])
            if i == 0:
                res = json.loads(r.stdout.strip().splitlines()[-1])
                assert res["tx"] == 5000 and res["rx"] == 5000, res
                assert 0 < res["latency_ns"]["min"] <= res["latency_ns"]["p50"] <= res["latency_ns"]["max"]
            else:
                rx, tx = forward_totals(r.stdout)[0]
                assert tx > 1000 and rx > tx // 2, r.stdout[-1500:]
        finally:
            os.kill(dp.pid, signal.SIGKILL)
            dp.wait(10)
