"""vhost-user ports against real DPDK virtio-user front-ends (dpdk-testpmd).

One pvs-vswitchd per test (its own rundir, sockets there through PVS_RUNDIR),
one testpmd with two virtio-user vdevs on --no-huge memory (a memfd, no huge
pages needed), driven interactively through a pipe and killed by PID in
teardown. testpmd runs on core 0 (--lcores 0@0,1@0), the switch's PMD on the
last core.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from pyvswitch.tools.lab import Lab, sh, tool

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(shutil.which("dpdk-testpmd") is None, reason="needs dpdk-testpmd"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def wait_for(fn, timeout=20.0, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


class DpdkTestpmd:
    """dpdk-testpmd in interactive mode; commands go through stdin."""

    def __init__(self, lab, tag, vdevs, extra=(), fwd="io"):
        self.log = os.path.join(lab.tempdir("tp"), "testpmd.log")
        args = ["dpdk-testpmd", "--lcores", "0@0,1@0", "--no-pci", "--no-huge", "-m", "512",
                "--file-prefix", f"pvs{tag}{os.getpid()}"]
        for i, v in enumerate(vdevs):
            args += ["--vdev", f"net_virtio_user{i},{v}"]
        args += ["--", "-i", f"--forward-mode={fwd}", "--total-num-mbufs=16384", *extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lab.track(self.proc.pid)

    def cmd(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stats(self):
        """{port: (rx, tx)} from a fresh `show port stats all`."""
        mark = len(self.output())
        self.cmd("show port stats all")
        time.sleep(0.5)
        text = self.output()[mark:]
        out = {}
        for m in re.finditer(r"statistics for port (\d+).*?RX-packets:\s+(\d+).*?TX-packets:\s+(\d+)",
                             text, re.S):
            out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        return out

    def wait_ready(self, n_ports=2, timeout=30):
        assert wait_for(lambda: self.output().count("Link up") >= n_ports or
                        "testpmd>" in self.output(), timeout), self.output()[-2000:]

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Switch:
    def __init__(self, lab):
        self.lab = lab
        self.rundir = lab.tempdir("vhu")
        self.env = dict(os.environ, PVS_RUNDIR=self.rundir)
        self.pid = None
        self.start()

    def start(self):
        self.pid = self.lab.start_daemon(self.rundir, env=self.env)

    def kill9(self):
        os.kill(self.pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{self.pid}"), 10, 0.05)

    def run(self, prog, *args):
        r = subprocess.run([tool(prog), *args], env=self.env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, f"{prog} {' '.join(args)}: {r.stderr}"
        return r.stdout

    def sock(self, name):
        return os.path.join(self.rundir, name)

    def port_stats(self):
        """{ofport: (rx, tx)} from pvs-ofctl dump-ports."""
        text = self.run("pvs-ofctl", "dump-ports", "br0")
        out = {}
        for m in re.finditer(r"port\s+(\d+): rx pkts=(\d+).*?\n\s+tx pkts=(\d+)", text):
            out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        return out

    def link_state(self, iface):
        return self.run("pvs-vsctl", "get", "Interface", iface, "link_state").strip().strip('"')


@pytest.fixture
def lab():
    with Lab(prefix="vhu") as lab:
        yield lab


def _bridge(sw, ports, flows=True):
    args = ["add-br", "br0"]
    for name, typ, opts in ports:
        args += ["--", "add-port", "br0", name, "--", "set", "Interface", name, f"type={typ}",
                 *[f"options:{k}={v}" for k, v in opts.items()]]
    sw.run("pvs-vsctl", *args)
    a, b = ports[0][0], ports[1][0]
    if flows:
        sw.run("pvs-ofctl", "del-flows", "br0")
        sw.run("pvs-ofctl", "add-flow", "br0", f"in_port={a},actions=output:{b}")
        sw.run("pvs-ofctl", "add-flow", "br0", f"in_port={b},actions=output:{a}")


def _both_ways(sw, tp, before_sw=None, timeout=30):
    def moving():
        st = tp.stats()
        return len(st) == 2 and all(rx > 0 and tx > 0 for rx, tx in st.values())
    assert wait_for(moving, timeout, 0.5), tp.output()[-3000:]
    ps = sw.port_stats()
    vh = [v for k, v in ps.items()]
    assert sum(1 for rx, tx in vh if rx > 0 and tx > 0) >= 2, ps


@pytest.mark.parametrize("flows", [True, False], ids=["in_port_flows", "normal"])
def test_server_mode_both_ways(lab, flows):
    sw = Switch(lab)
    _bridge(sw, [("vhu0", "dpdkvhostuser", {}), ("vhu1", "dpdkvhostuser", {})], flows=flows)
    assert wait_for(lambda: os.path.exists(sw.sock("vhu0")) and os.path.exists(sw.sock("vhu1")))
    tp = DpdkTestpmd(lab, "s", [f"path={sw.sock('vhu0')},queues=1", f"path={sw.sock('vhu1')},queues=1"])
    tp.wait_ready()
    tp.cmd("start tx_first 4")
    _both_ways(sw, tp)
    assert wait_for(lambda: sw.link_state("vhu0") == "up" and sw.link_state("vhu1") == "up")
    tp.kill()


def test_server_mode_testpmd_restart(lab):
    sw = Switch(lab)
    _bridge(sw, [("vhu0", "dpdkvhostuser", {}), ("vhu1", "dpdkvhostuser", {})])
    for round_ in range(2):
        tp = DpdkTestpmd(lab, f"r{round_}", [f"path={sw.sock('vhu0')},queues=1",
                                         f"path={sw.sock('vhu1')},queues=1"])
        tp.wait_ready()
        tp.cmd("start tx_first 4")
        _both_ways(sw, tp)
        tp.cmd("stop")
        tp.cmd("quit")
        try:
            tp.proc.wait(15)
        except subprocess.TimeoutExpired:
            tp.kill()
        assert wait_for(lambda: sw.link_state("vhu0") == "down", 10)


def test_client_mode_survives_switch_kill9(lab):
    sw = Switch(lab)
    d = lab.tempdir("vhc")
    socks = [os.path.join(d, "s0"), os.path.join(d, "s1")]
    # the switch retries until testpmd listens (testpmd waits for each client in turn)
    _bridge(sw, [("vhc0", "dpdkvhostuserclient", {"vhost-server-path": socks[0]}),
                 ("vhc1", "dpdkvhostuserclient", {"vhost-server-path": socks[1]})])
    tp = DpdkTestpmd(lab, "c", [f"path={socks[0]},queues=1,server=1", f"path={socks[1]},queues=1,server=1"],
                     fwd="txonly")
    tp.wait_ready()
    tp.cmd("start")

    def rx_moving():
        a = sw.port_stats()
        time.sleep(1)
        b = sw.port_stats()
        return sum(1 for p in a if p in b and b[p][0] > a[p][0]) >= 2
    assert wait_for(rx_moving, 30, 0.1), (sw.port_stats(), tp.output()[-2000:])
    sw.kill9()
    time.sleep(1)
    sw.start()                                  # same rundir and database
    assert wait_for(rx_moving, 40, 0.1), (sw.port_stats(), tp.output()[-3000:])
    assert wait_for(lambda: sw.link_state("vhc0") == "up", 10)
    tp.kill()


def test_two_queue_pairs(lab):
    sw = Switch(lab)
    _bridge(sw, [("vhu0", "dpdkvhostuser", {"n_rxq": 2}), ("vhu1", "dpdkvhostuser", {"n_rxq": 2})])
    tp = DpdkTestpmd(lab, "q", [f"path={sw.sock('vhu0')},queues=2", f"path={sw.sock('vhu1')},queues=2"],
                 extra=["--rxq=2", "--txq=2"])
    tp.wait_ready()
    tp.cmd("start tx_first 4")
    _both_ways(sw, tp)
    text = tp.output()
    assert "RX queue number: 2" in text and "Tx queue number: 2" in text, text[-2000:]
    tp.kill()
