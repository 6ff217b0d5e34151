"""vhost-user ports against real DPDK virtio-user front-ends (dpdk-testpmd).

One pvs-vswitchd per test (its own rundir, sockets there through PVS_RUNDIR,
a bridge name unique to the pytest process),
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

    def __init__(self, lab, tag, vdevs, extra=(), fwd="io", mem=("--no-huge", "-m", "512"),
                 mbufs=16384):
        self.log = os.path.join(lab.tempdir("tp"), "testpmd.log")
        # line-buffered stdout: answers to `show port stats` reach the log at once
        args = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        args += ["dpdk-testpmd", "--lcores", "0@0,1@0", "--no-pci", *mem,
                 "--file-prefix", f"pvs{tag}{os.getpid()}"]
        for i, v in enumerate(vdevs):
            args += ["--vdev", f"net_virtio_user{i},{v}"]
        args += ["--", "-i", f"--forward-mode={fwd}", f"--total-num-mbufs={mbufs}", *extra]
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
        return {p: (v[0], v[2]) for p, v in self.counters().items()}

    def counters(self):
        """{port: (rx pkts, rx bytes, tx pkts, tx bytes)} from `show port stats all`."""
        mark = len(self.output())
        self.cmd("show port stats all")
        time.sleep(0.5)
        text = self.output()[mark:]
        out = {}
        for m in re.finditer(r"statistics for port (\d+).*?RX-packets:\s+(\d+).*?RX-bytes:\s+(\d+)"
                             r".*?TX-packets:\s+(\d+).*?TX-bytes:\s+(\d+)", text, re.S):
            out[int(m.group(1))] = tuple(int(g) for g in m.groups()[1:])
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
        self.br = f"vhb{os.getpid() % 4096:03x}"      # a bridge is a root-namespace device
        self.pid = None
        self.start()

    def start(self):
        self.pid = self.lab.start_daemon(self.rundir, env=self.env)

    def kill9(self):
        os.kill(self.pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{self.pid}"), 10, 0.05)

    def run(self, prog, *args):
        # generous: the daemon's first commands wait for a cold numba cache to compile
        r = subprocess.run([tool(prog), *args], env=self.env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"{prog} {' '.join(args)}: {r.stderr}"
        return r.stdout

    def sock(self, name):
        return os.path.join(self.rundir, name)

    def port_stats(self):
        """{ofport: (rx, tx)} from pvs-ofctl dump-ports."""
        return {p: (v[0], v[2]) for p, v in self.port_counters().items()}

    def port_counters(self):
        """{ofport: (rx pkts, rx bytes, tx pkts, tx bytes, rx drop, tx drop)}."""
        text = self.run("pvs-ofctl", "dump-ports", self.br)
        out = {}
        for m in re.finditer(r"port\s+(\d+): rx pkts=(\d+), bytes=(\d+), drop=(\d+).*?\n"
                             r"\s+tx pkts=(\d+), bytes=(\d+), drop=(\d+)", text):
            rx, rxb, rxd, tx, txb, txd = (int(g) for g in m.groups()[1:])
            out[int(m.group(1))] = (rx, rxb, tx, txb, rxd, txd)
        return out

    def ofport(self, iface):
        return int(self.run("pvs-vsctl", "get", "Interface", iface, "ofport"))

    def link_state(self, iface):
        return self.run("pvs-vsctl", "get", "Interface", iface, "link_state").strip().strip('"')


@pytest.fixture
def lab():
    with Lab(prefix="vhu") as lab:
        yield lab


def _bridge(sw, ports, flows=True):
    args = ["add-br", sw.br]
    for name, typ, opts in ports:
        args += ["--", "add-port", sw.br, name, "--", "set", "Interface", name, f"type={typ}",
                 *[f"options:{k}={v}" for k, v in opts.items()]]
    sw.run("pvs-vsctl", *args)
    a, b = ports[0][0], ports[1][0]
    if flows:
        sw.run("pvs-ofctl", "del-flows", sw.br)
        sw.run("pvs-ofctl", "add-flow", sw.br, f"in_port={a},actions=output:{b}")
        sw.run("pvs-ofctl", "add-flow", sw.br, f"in_port={b},actions=output:{a}")


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


# ------------------------------------------------- run-time SET_MEM_TABLE --

HUGE_PAGES = 192                 # 2 MB pages: testpmd -m 64 grows to about 220 MB


def _meminfo():
    with open("/proc/meminfo") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f)}


def _set_nr_hugepages(n):
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write(str(n))


@pytest.fixture
def hugedir(lab):
    """A hugetlbfs mount of its own with HUGE_PAGES free 2 MB pages, reserved
    here when the machine has fewer (and given back); skips saying why not."""
    info = _meminfo()
    if info.get("Hugepagesize") != 2048:
        pytest.skip(f"needs 2 MB huge pages (Hugepagesize: {info.get('Hugepagesize')} kB)")
    total, free = info["HugePages_Total"], info["HugePages_Free"]
    if free < HUGE_PAGES:
        try:
            _set_nr_hugepages(total + HUGE_PAGES - free)
        except OSError as e:
            pytest.skip(f"cannot reserve huge pages (/proc/sys/vm/nr_hugepages: {e.strerror})")
        got = _meminfo()["HugePages_Free"]
        if got < HUGE_PAGES:
            _set_nr_hugepages(total)
            pytest.skip(f"asked the kernel for {HUGE_PAGES - free} more 2 MB huge pages, "
                        f"{got} free (memory too fragmented or too small)")
    d = lab.tempdir("huge")
    r = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "pvs-hugetlbfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        if free < HUGE_PAGES:
            _set_nr_hugepages(total)
        pytest.skip(f"cannot mount hugetlbfs on {d}: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", d], capture_output=True)
    if free < HUGE_PAGES:
        _set_nr_hugepages(total)


def test_runtime_mem_table_from_testpmd(lab, hugedir):
    """testpmd on huge pages with a small -m (64 MB, --single-file-segments:
    one region): virtio-user starts its devices (memory table of 64 MB, rings
    set up), then testpmd's 65536-mbuf pool outgrows the preallocation and
    DPDK hot-plugs memory; virtio-user's memory callback pauses the rings
    (SET_VRING_ENABLE 0), sends the bigger table and resumes them. The switch
    remaps with its PMDs parked (Device._set_mem_table: quiesce), re-translates
    the rings, and traffic then flows both ways."""
    sw = Switch(lab)
    _bridge(sw, [("vhu0", "dpdkvhostuser", {}), ("vhu1", "dpdkvhostuser", {})])
    tp = DpdkTestpmd(lab, "h", [f"path={sw.sock('vhu0')},queues=1", f"path={sw.sock('vhu1')},queues=1"],
                     mem=("--single-file-segments", "-m", "64", "--huge-dir", hugedir), mbufs=65536)
    tp.wait_ready()
    assert wait_for(lambda: sw.link_state("vhu0") == "up" and sw.link_state("vhu1") == "up")

    def counter(iface, name):
        st = sw.run("pvs-vsctl", "get", "Interface", iface, "status")
        m = re.search(rf'{name}="?(\d+)', st)
        return int(m.group(1)) if m else -1
    assert wait_for(lambda: all(counter(i, "mem_table_remaps") >= 1 for i in ("vhu0", "vhu1")), 30), \
        (sw.run("pvs-vsctl", "get", "Interface", "vhu0", "status"), tp.output()[-2000:])
    with open(os.path.join(sw.rundir, "pvs-vswitchd.log")) as f:
        sizes = [int(m.group(2), 16) for m in re.finditer(r"memory table( \(remap\))?: gpa=\S+ size=(0x[0-9a-f]+)",
                                                           f.read())]
    assert len(sizes) >= 4 and sizes[-1] > sizes[0], sizes        # it grew
    tp.cmd("start tx_first 4")
    _both_ways(sw, tp)
    tp.kill()


# ------------------------------------------------------------- jumbo frames --

def test_jumbo_frames_both_ways(lab):
    """mtu_request=9000 on both ports (set at run time: the datapath's packet
    pool grows to 9 KiB slots), testpmd sends 9000- and 9014-byte frames (the
    largest MTU 9000 allows) as 5-segment chains out of both ports; they come
    back through mergeable RX buffers (2 KiB mbufs). Port-to-port flows;
    every frame is counted once on each side, with its bytes, no drops."""
    sw = Switch(lab)
    _bridge(sw, [("vhu0", "dpdkvhostuser", {}), ("vhu1", "dpdkvhostuser", {})])
    sw.run("pvs-vsctl", "set", "Interface", "vhu0", "mtu_request=9000", "--",
           "set", "Interface", "vhu1", "mtu_request=9000")
    assert wait_for(lambda: sw.run("pvs-vsctl", "get", "Interface", "vhu1", "mtu").strip() == "9000")
    tp = DpdkTestpmd(lab, "j", [f"path={sw.sock('vhu0')},queues=1", f"path={sw.sock('vhu1')},queues=1"],
                     extra=["--max-pkt-len=9018", "--enable-scatter"], fwd="rxonly")
    tp.wait_ready()
    assert wait_for(lambda: sw.link_state("vhu0") == "up" and sw.link_state("vhu1") == "up")
    features = int(sw.run("pvs-vsctl", "get", "Interface", "vhu0", "status:features").strip().strip('"'), 16)
    assert features & (1 << 15), "MRG_RXBUF not negotiated"
    of = [sw.ofport("vhu0"), sw.ofport("vhu1")]
    tp.cmd("set burst 32")
    for size, segs in ((9000, "2048,2048,2048,2048,808"), (9014, "2048,2048,2048,2048,822")):
        sw0, tp0 = sw.port_counters(), tp.counters()
        tp.cmd(f"set txpkts {segs}")
        tp.cmd("start tx_first")                          # 32 frames out of each port
        assert wait_for(lambda: all(c[0] - tp0[p][0] >= 32 for p, c in tp.counters().items()), 120, 0.2), \
            (tp.counters(), sw.port_counters(), tp.output()[-2000:])
        tp.cmd("stop")
        sw1, tp1 = sw.port_counters(), tp.counters()
        for p, q in ((0, 1), (1, 0)):                     # testpmd port p -> switch -> port q
            sent, got = tp1[p][2] - tp0[p][2], tp1[q][0] - tp0[q][0]
            rx = [sw1[of[p]][k] - sw0[of[p]][k] for k in range(6)]
            tx = [sw1[of[q]][k] - sw0[of[q]][k] for k in range(6)]
            assert sent == got == rx[0] == tx[2] == 32, (size, p, sent, got, rx, tx)
            assert tp1[p][3] - tp0[p][3] == rx[1] == tx[3] == tp1[q][1] - tp0[q][1] == 32 * size
            assert rx[4] == tx[5] == 0
    st = sw.run("pvs-vsctl", "get", "Interface", "vhu1", "status")
    assert 'guest_frame_oversize="0"' in st and 'guest_rx_buffer_too_small="0"' in st, st
    tp.kill()


# ----------------------------------------------------------------- idle PMD --

def pmd_threads(pid):
    """{tid: (utime+stime in s, run time in s)} of the daemon's threads pinned
    to one CPU (the PMDs): /proc stat ticks, and schedstat's nanoseconds."""
    out, hz = {}, os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        d = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{d}/status") as f:
                cpus = re.search(r"Cpus_allowed_list:\s*(\S+)", f.read()).group(1)
            with open(f"{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"{d}/schedstat") as f:
                run_ns = int(f.read().split()[0])
        except (FileNotFoundError, AttributeError):
            continue
        if cpus.isdigit():
            out[int(tid)] = ((int(fields[11]) + int(fields[12])) / hz, run_ns / 1e9)
    return out


def pmd_cpu_share(pid, seconds):
    """(stat, schedstat) share of one core the PMD thread(s) used over `seconds`."""
    t0, a = time.monotonic(), pmd_threads(pid)
    time.sleep(seconds)
    b, t1 = pmd_threads(pid), time.monotonic()
    return tuple(sum(b[t][k] - a.get(t, (0, 0))[k] for t in b) / (t1 - t0) for k in (0, 1))


def rx_counts(tp):
    st = tp.stats()
    return tuple(st.get(p, (0, 0))[0] for p in (0, 1))


def test_idle_pmd_sleeps_on_kicks(lab):
    """Two connected testpmd guests in rxonly, no traffic: the PMD serving
    their vhost ports sleeps on the kick eventfds (figure printed: its CPU
    over PVS_IDLE_SECONDS, default 10). Then, with pmd-sleep-max at 10 s so
    that a lost wake-up would show as seconds of delay, single packets sent
    after long idle periods are forwarded at once, both ways."""
    sw = Switch(lab)
    _bridge(sw, [("vhu0", "dpdkvhostuser", {}), ("vhu1", "dpdkvhostuser", {})])
    tp = DpdkTestpmd(lab, "i", [f"path={sw.sock('vhu0')},queues=1", f"path={sw.sock('vhu1')},queues=1"],
                     fwd="rxonly")
    tp.wait_ready()
    assert wait_for(lambda: sw.link_state("vhu0") == "up" and sw.link_state("vhu1") == "up")
    tp.cmd("set burst 1")

    def one_each_way(timeout):
        before = rx_counts(tp)
        t0 = time.monotonic()
        tp.cmd("start tx_first")                  # one packet out of each port
        ok = wait_for(lambda: all(a > b for a, b in zip(rx_counts(tp), before)), timeout, 0.1)
        tp.cmd("stop")
        return ok, before, time.monotonic() - t0

    # the first packets also wait for a cold numba cache to compile the PMD loop
    assert one_each_way(300)[0], tp.output()[-2000:]
    tp.cmd("start")
    time.sleep(2)
    share, run = pmd_cpu_share(sw.pid, float(os.environ.get("PVS_IDLE_SECONDS", 10)))
    print(f"idle PMD with two silent vhost-user guests: {share * 100:.2f}% of one core "
          f"(utime+stime; schedstat run time {run * 100:.2f}%)")
    assert run < 0.005, sw.run("pvs-appctl", "dpif-netdev/pmd-stats-show")
    tp.cmd("stop")

    sw.run("pvs-vsctl", "set", "Open_vSwitch", ".", "other_config:pmd-sleep-max=10000000")
    for idle in (8, 3):
        time.sleep(idle)                          # the PMD's sleeps grow to seconds
        ok, before, took = one_each_way(2.5)
        assert ok, (f"first packet after {idle} s idle not forwarded within 2.5 s: rx {before} -> "
                    f"{rx_counts(tp)}\n{tp.output()[-2000:]}")
        print(f"first packets after {idle} s idle: both received within {took:.2f} s "
              f"(stats polling included)")
    tp.kill()
