"""The OpenFlow control-plane benchmark: installing rules, upcalls, forwarding
with many rules.

    python -m pyvswitch.tools.bench.flows [--quick] [--install 100000,1000000]
        [--forward 1000,100000] [--no-ovs] [--out bench/results]

1. Install: `pvs-ofctl add-flows BR FILE` of N rules into a fresh daemon
   (seconds, rules per second, memory per rule = the daemon's RSS delta / N),
   then `del-flows BR` of all of them (seconds); in the same run
   `ovs-ofctl add-flows` / `del-flows` of the same file against Debian's Open
   vSwitch (ovsdb-server + ovs-vswitchd in a directory of their own, bridge
   datapath_type=netdev, no kernel module; stopped by PID).
2. Upcall rate: pvs-pktgen sends UDP with --flows distinct source addresses
   into vhost-user port 1 of a bridge whose pipeline (10 tables) matches the
   source address exactly, so every new flow misses and installs a megaflow;
   rate = "miss with success upcall" growth per second (pmd-stats-show,
   sampled while the flows are still new).
3. Forwarding: the same pipeline with R rules spread over 10 tables, 1,000
   flows, megaflows warm (a paced warm-up first), then pvs-pktgen at full
   speed for a window: forwarded packets per second at port 2.

The rules (file format understood by both ofctl programs), for N rules over
T=10 tables, k = N/T - 1 per table::

    table=t,priority=100,udp,nw_src=10.A.B.C,actions=resubmit(,t+1)   (k of them)
    table=t,priority=0,actions=resubmit(,t+1)                         (table miss)
    ... table 9 outputs to port 2 instead of resubmitting.

Generator flows have source 10.0.x.y (pvs-pktgen's --flows), so flow f < k
hits rule f in every table. PMD on core 1 (pmd-cpu-mask=0x2), generator on
core 0. Writes flows-latest.json and flows-latest.md to --out; raw logs go to
a temporary directory named in the report.
"""

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

from pyvswitch.core import paths
from pyvswitch.core.unixrpc import call

from . import stats, system
from .system import log, run

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "bench", "results")
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BRIDGE = "pvbfl0"          # its own name: the internal port is a tap of this name
TABLES = 10
OVS_NETNS = "pvbfl-ovs"

FULL = {"install": "100000,1000000", "forward": "1000,100000", "upcall_flows": 60000,
        "upcall_seconds": 8.0, "window": 8.0, "reps": 3}
QUICK = {"install": "20000", "forward": "1000,10000", "upcall_flows": 20000,
         "upcall_seconds": 4.0, "window": 3.0, "reps": 1}


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m pyvswitch.tools.bench.flows",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, short windows (< 2 min)")
    ap.add_argument("--install", help="rule counts for add-flows (comma-separated)")
    ap.add_argument("--forward", help="rule counts for the forwarding rate")
    ap.add_argument("--upcall-flows", type=int, help="distinct flows for the upcall rate")
    ap.add_argument("--upcall-seconds", type=float)
    ap.add_argument("--window", type=float, help="seconds of one forwarding window")
    ap.add_argument("--reps", type=int, help="forwarding windows per rule count")
    ap.add_argument("--no-ovs", action="store_true", help="skip Open vSwitch")
    ap.add_argument("--no-traffic", action="store_true", help="install figures only")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--name", default="flows", help="results file prefix (default flows)")
    return ap


def parse_args(argv=None):
    a = build_parser().parse_args(argv)
    base = QUICK if a.quick else FULL
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.install = [int(x) for x in str(a.install).split(",") if x]
    a.forward = [int(x) for x in str(a.forward).split(",") if x]
    return a


# ------------------------------------------------------------------ rules
def pipeline(n, tables=TABLES, out_port=2):
    """Yield n rule lines over `tables` tables (see the module note)."""
    per = max(1, n // tables)
    made = 0
    for t in range(tables):
        nxt = f"resubmit(,{t + 1})" if t < tables - 1 else f"output:{out_port}"
        k = per - 1 if t < tables - 1 else n - made - 1
        for i in range(max(0, k)):
            yield (f"table={t},priority=100,udp,nw_src=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},"
                   f"actions={nxt}")
            made += 1
        yield f"table={t},priority=0,actions={nxt}"
        made += 1


def write_rules(path, n):
    with open(path, "w") as f:
        for line in pipeline(n):
            f.write(line + "\n")
    return path


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settled_rss_kb(pid, timeout=20.0):
    """RSS once it stopped moving (a fresh daemon may still be compiling or
    freeing): two reads 0.5 s apart within 1 %."""
    prev, deadline = rss_kb(pid), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        cur = rss_kb(pid)
        if abs(cur - prev) <= prev / 100:
            return cur
        prev = cur
    return prev


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


# ------------------------------------------------------------------ pyvswitch
class Pvs:
    name = "pyvswitch"

    def __init__(self, cleanup, rawdir, vhost=False):
        self.dir = tempfile.mkdtemp(prefix="pvb-flows-")
        self.rawdir, self.vhost = rawdir, vhost
        cleanup.push("pvs dir", self._save)
        pidfile = os.path.join(self.dir, "pvs-vswitchd.pid")
        cleanup.push("stop pvs-vswitchd", self.stop)
        all_cpus = ",".join(str(c) for c in range(os.cpu_count() or 1))
        run("taskset", "-c", all_cpus, system.tool("pvs-vswitchd"), "--rundir", self.dir,
            "--detach", "--log-file", env=self.env(), timeout=120)
        self.pid = system.read_pidfile(pidfile)
        self.ctl("pvs-vsctl", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE,
                 "datapath_type=netdev")
        if vhost:
            self.ctl("pvs-vsctl", "set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x2")
            for i in (0, 1):
                self.ctl("pvs-vsctl", "add-port", BRIDGE, f"vhu{i}", "--", "set", "Interface",
                         f"vhu{i}", "type=dpdkvhostuser", f"ofport_request={i + 1}")
        mgmt = os.path.join(self.dir, f"{BRIDGE}.mgmt")
        deadline = time.monotonic() + 120         # the OpenFlow listener comes a loop later
        while not os.path.exists(mgmt) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.ctl("pvs-ofctl", "del-flows", BRIDGE)

    def env(self):
        return {"PVS_RUNDIR": self.dir}

    def ctl(self, prog, *args, timeout=300):
        return run(system.tool(prog), *args, env=self.env(), timeout=timeout).stdout

    def rpc(self, method, *params):
        return call(paths.ctl_path(self.dir), method, list(params), timeout=60)

    def add_flows(self, path, timeout):
        return self.ctl("pvs-ofctl", "--timeout", str(timeout), "add-flows", BRIDGE, path,
                        timeout=timeout)

    def del_flows(self, timeout):
        return self.ctl("pvs-ofctl", "--timeout", str(timeout), "del-flows", BRIDGE,
                        timeout=timeout)

    def flow_count(self):
        out = self.ctl("pvs-ofctl", "dump-aggregate", BRIDGE)
        return int(out.rsplit("flow_count=", 1)[1].split()[0])

    def sock(self, name):
        return os.path.join(self.dir, name)

    def stop(self):
        if self.pid:
            system.stop_pid(self.pid, "pvs-vswitchd", timeout=60)
            self.pid = None

    def _save(self):
        src = os.path.join(self.dir, "pvs-vswitchd.log")
        if os.path.exists(src):
            n = len([f for f in os.listdir(self.rawdir) if f.startswith("pvs-vswitchd")])
            os.replace(src, os.path.join(self.rawdir, f"pvs-vswitchd-{n}.log"))
        subprocess.run(["rm", "-rf", self.dir], check=False)


# ------------------------------------------------------------------ Open vSwitch
class Ovs:
    name = "ovs"

    def __init__(self, cleanup, rawdir):
        self.dir = d = tempfile.mkdtemp(prefix="pvb-flows-ovs-")
        self.rawdir = rawdir
        self.pids = {}
        cleanup.push("ovs dir", self._save)
        # a network namespace of its own: a netdev-datapath ovs-vswitchd creates
        # the tap `ovs-netdev`, and only one per namespace can (another may run)
        cleanup.push(f"netns {OVS_NETNS}", run, "ip", "netns", "del", OVS_NETNS, check=False)
        run("ip", "netns", "del", OVS_NETNS, check=False)
        run("ip", "netns", "add", OVS_NETNS)
        run("ovsdb-tool", "create", f"{d}/conf.db", OVS_SCHEMA)
        cleanup.push("stop ovsdb-server", self._stop, "ovsdb-server")
        run("ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
            f"--pidfile={d}/ovsdb-server.pid", "--detach", f"--log-file={d}/ovsdb-server.log",
            f"--unixctl={d}/ovsdb-server.ctl", "-vconsole:off", env=self.env(), ns=OVS_NETNS)
        self.pids["ovsdb-server"] = system.read_pidfile(f"{d}/ovsdb-server.pid")
        self.vsctl("--no-wait", "init")
        cleanup.push("stop ovs-vswitchd", self._stop, "ovs-vswitchd")
        run("ovs-vswitchd", f"unix:{d}/db.sock", f"--pidfile={d}/ovs-vswitchd.pid", "--detach",
            f"--log-file={d}/ovs-vswitchd.log", f"--unixctl={d}/ovs-vswitchd.ctl",
            "-vconsole:off", env=self.env(), timeout=120, ns=OVS_NETNS)
        self.pid = self.pids["ovs-vswitchd"] = system.read_pidfile(f"{d}/ovs-vswitchd.pid")
        self.vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev")
        self.ofctl("del-flows", BRIDGE)

    def env(self):
        d = self.dir
        return {"OVS_RUNDIR": d, "OVS_LOGDIR": d, "OVS_DBDIR": d, "OVS_SYSCONFDIR": d,
                "OVS_PKGDATADIR": "/usr/share/openvswitch"}

    def vsctl(self, *args):
        return run("ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--timeout=60", *args,
                   env=self.env()).stdout

    def ofctl(self, *args, timeout=60):
        return run("ovs-ofctl", *args, env=self.env(), timeout=timeout).stdout

    def add_flows(self, path, timeout):
        return self.ofctl("add-flows", BRIDGE, path, timeout=timeout)

    def del_flows(self, timeout):
        return self.ofctl("del-flows", BRIDGE, timeout=timeout)

    def flow_count(self):
        out = self.ofctl("dump-aggregate", BRIDGE)
        return int(out.rsplit("flow_count=", 1)[1].split()[0])

    def _stop(self, prog):
        pid = self.pids.pop(prog, None)
        if pid is None:
            return
        run("ovs-appctl", "-t", f"{self.dir}/{prog}.ctl", "--timeout=20", "exit",
            *(["--cleanup"] if prog == "ovs-vswitchd" else []), check=False, env=self.env())
        for _ in range(100):
            if not system.pid_alive(pid):
                break
            time.sleep(0.1)
        system.stop_pid(pid, prog)

    def _save(self):
        for name in ("ovs-vswitchd.log", "ovsdb-server.log"):
            src = os.path.join(self.dir, name)
            if os.path.exists(src):
                os.replace(src, os.path.join(self.rawdir, f"ovs-{name}"))
        subprocess.run(["rm", "-rf", self.dir], check=False)


def ovs_version():
    try:
        r = subprocess.run(["ovs-vswitchd", "--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


# ------------------------------------------------------------------ measurements
def measure_install(cls, n, path, rawdir):
    """Fresh switch, add-flows of the file, then del-flows of everything."""
    cleanup = system.Cleanup()
    try:
        sw = cls(cleanup, rawdir)
        rss0 = settled_rss_kb(sw.pid)
        timeout = max(120, n // 500)
        t0 = time.monotonic()
        sw.add_flows(path, timeout)
        add_s = time.monotonic() - t0
        rss1 = rss_kb(sw.pid)
        count = sw.flow_count()
        t0 = time.monotonic()
        sw.del_flows(timeout)
        del_s = time.monotonic() - t0
        left = sw.flow_count()
        rec = {"switch": sw.name, "rules": n, "installed": count, "add_s": round(add_s, 3),
               "rules_per_s": round(n / add_s), "rss_before_kb": rss0, "rss_after_kb": rss1,
               "bytes_per_rule": round((rss1 - rss0) * 1024 / n), "del_s": round(del_s, 3),
               "left_after_del": left, "load": load()}
        log(f"install {sw.name} {n}: add {add_s:.2f} s ({n / add_s:,.0f}/s), "
            f"{rec['bytes_per_rule']} B/rule, del {del_s:.2f} s, installed {count}")
        return rec
    finally:
        cleanup.unwind()


def pmd_counters(sw):
    threads = stats.parse_pmd_stats(sw.rpc("dpif-netdev/pmd-stats-show"))
    tot = {}
    for t in threads:
        for k, v in t["stats"].items():
            tot[k] = tot.get(k, 0) + v
    return tot


def pktgen(sw, flows, seconds, rate=0, log_path=None, warmup=0):
    """pvs-pktgen vhu0 -> switch -> vhu1 on core 0. warmup: up to that many
    seconds of single frames until one comes back (kernels compiled)."""
    cmd = [system.tool("pvs-pktgen"), "--tx", f"path={sw.sock('vhu0')}",
           "--rx", f"path={sw.sock('vhu1')}", "--flows", str(flows), "--duration", str(seconds),
           "--rate", str(rate), "--drain", "0.5", "--lat-samples", "1024", "--json",
           "--warmup", str(warmup)]
    return subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.PIPE,
                            stderr=open(log_path, "a") if log_path else subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)


def finish(p, timeout):
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        system.stop_pid(p.pid, "pvs-pktgen", sig=signal.SIGINT, popen=p)
        raise RuntimeError("pvs-pktgen did not finish")
    if p.returncode != 0:
        raise RuntimeError(f"pvs-pktgen exited {p.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def load_pipeline(sw, n, rawdir):
    path = write_rules(os.path.join(rawdir, f"rules-{n}.txt"), n)
    sw.del_flows(600)
    sw.add_flows(path, max(120, n // 500))
    sw.rpc("dpctl/del-flows")
    os.unlink(path)


def measure_upcalls(sw, flows, seconds, rawdir):
    """Every flow new: the rate megaflows are installed at, while they are."""
    load_pipeline(sw, 1000, rawdir)
    # the datapath's upcall kernels compile on the first miss (seconds, when
    # numba's cache is cold): not part of the rate
    finish(pktgen(sw, 16, 1.0, rate=1000, warmup=300,
                  log_path=os.path.join(rawdir, "pktgen.log")), 400)
    sw.rpc("dpctl/del-flows")
    sw.rpc("dpif-netdev/pmd-stats-clear")
    p = pktgen(sw, flows, seconds, log_path=os.path.join(rawdir, "pktgen.log"))
    samples = []
    while p.poll() is None:
        samples.append((time.monotonic(), pmd_counters(sw).get("miss with success upcall", 0)))
        time.sleep(1.0)
    res = finish(p, 30)
    n_mf = sum(1 for line in sw.rpc("dpctl/dump-flows").splitlines() if line.strip())
    upcalls = int(pmd_counters(sw).get("miss with success upcall", 0))
    rate = upcall_rate(upcalls, res, flows, samples)
    rec = {"flows": flows, "seconds": seconds, "upcalls": upcalls,
           "megaflows_after": n_mf, "upcalls_per_s": round(rate) if rate else None,
           "pktgen": res, "samples": [(round(t - samples[0][0], 3), int(c)) for t, c in samples],
           "load": load()}
    log(f"upcalls: {rec['upcalls_per_s']}/s, {rec['upcalls']} upcalls, {n_mf} megaflows")
    return rec


def upcall_rate(upcalls, res, flows, samples):
    """New megaflows per second. While the generator never repeats a flow
    (it sent no more than `flows` frames), every frame it sent was an upcall
    and the generator could only send as fast as the switch took them: the
    rate is upcalls over its sending time. Otherwise, the slope of the
    sampled counter from the first upcall until 90 % of the flows had one."""
    if res["tx"] <= flows and res["seconds"] > 0:
        return upcalls / res["seconds"]
    first = next((i for i, s in enumerate(samples) if s[1] > 0), None)
    if not first:
        return None
    t0, c0 = samples[first - 1]
    end = next((s for s in samples[first:] if s[1] >= 0.9 * flows), samples[-1])
    return (end[1] - c0) / (end[0] - t0) if end[0] > t0 else None


def measure_forward(sw, n, reps, window, rawdir, flows=1000):
    load_pipeline(sw, n, rawdir)
    warm = finish(pktgen(sw, flows, 3.0, rate=50000, warmup=300,
                         log_path=os.path.join(rawdir, "pktgen.log")), 400)
    runs = []
    for _ in range(reps):
        sw.rpc("dpif-netdev/pmd-stats-clear")
        res = finish(pktgen(sw, flows, window, log_path=os.path.join(rawdir, "pktgen.log")),
                     window + 60)
        pmd = pmd_counters(sw)
        runs.append({"rx_pps": res["rx_pps"], "tx_pps": res["tx_pps"], "lost": res["lost"],
                     "emc_hits": int(pmd.get("emc hits", 0)),
                     "megaflow_hits": int(pmd.get("megaflow hits", 0)),
                     "upcalls": int(pmd.get("miss with success upcall", 0)),
                     "cycles_per_pkt": pmd.get("avg processing cycles per packet"),
                     "load": load()})
        log(f"forward {n} rules: {res['rx_pps'] / 1e6:.3f} Mpps rx ({res['tx_pps'] / 1e6:.3f} tx), "
            f"upcalls {runs[-1]['upcalls']}")
    n_mf = sum(1 for line in sw.rpc("dpctl/dump-flows").splitlines() if line.strip())
    return {"rules": n, "tables": TABLES, "flows": flows, "window_s": window,
            "warmup": {"rx": warm["rx"], "tx": warm["tx"]}, "megaflows": n_mf,
            "rx_mpps": stats.mmm([r["rx_pps"] / 1e6 for r in runs]), "runs": runs}


# ------------------------------------------------------------------ report
def render_md(res):
    m = res["meta"]
    out = ["# OpenFlow control-plane benchmark (flows)", "",
           f"Command: `{m['command']}`  ", f"Code: commit {m.get('git') or '?'}  ",
           f"Date: {m['date']} ({m['elapsed_s']:.0f} s)  ",
           f"Load (uptime) at start / end: {' '.join(m['load_start'])} / {' '.join(m['load_end'])}  ",
           "Machine: " + ", ".join(f"{k}: {v}" for k, v in m["machine"].items()) + "  ",
           f"Raw logs: {m['rawdir']}", "",
           "## add-flows / del-flows", "",
           "| switch | rules | add-flows s | rules/s | bytes/rule (RSS) | del-flows s | installed |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["install"]:
        out.append(f"| {r['switch']} | {r['rules']:,} | {r['add_s']:.2f} | {r['rules_per_s']:,} | "
                   f"{r['bytes_per_rule']:,} | {r['del_s']:.2f} | {r['installed']:,} |")
    up = res.get("upcalls")
    if up:
        out += ["", "## Upcall rate (pyvswitch)", "",
                f"{up['flows']:,} new flows (distinct source addresses) through a 1,000-rule, "
                f"10-table pipeline: **{up['upcalls_per_s'] or 0:,} new megaflows per second** "
                f"({up['upcalls']:,} upcalls in {up['seconds']} s, "
                f"{up['megaflows_after']:,} megaflows installed)."]
    if res.get("forward"):
        out += ["", "## Forwarding with megaflows warm (pyvswitch, 64-byte UDP, 1,000 flows)", "",
                "| rules (10 tables) | Mpps (min / median / max) | megaflows | upcalls in windows |",
                "|---:|---|---:|---:|"]
        for f in res["forward"]:
            mm = f["rx_mpps"]
            out.append(f"| {f['rules']:,} | {stats.fmt_mmm(mm)} | {f['megaflows']:,} | "
                       f"{sum(r['upcalls'] for r in f['runs'])} |")
    if m.get("errors"):
        out += ["", "## Errors", ""] + [f"- {e}" for e in m["errors"]]
    out += ["", "Rules: `table=t,priority=100,udp,nw_src=10.A.B.C,actions=resubmit(,t+1)` "
            "spread over 10 tables plus a priority-0 miss rule per table; table 9 outputs to "
            "port 2. Install: a fresh daemon per size, `pvs-ofctl add-flows` / "
            "`ovs-ofctl add-flows` (OpenFlow 1.0 + NXM, the default of both), memory = daemon "
            "RSS delta / rules. Traffic: pvs-pktgen on vhost-user (core 0), PMD on core 1.", ""]
    return "\n".join(out)


def main(argv=None):
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    rawdir = tempfile.mkdtemp(prefix="pvb-flows-raw-")
    meta = {"command": "python -m pyvswitch.tools.bench.flows " + shlex.join(argv or sys.argv[1:]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": system.machine_info(), "load_start": load(), "rawdir": rawdir,
            "git": os.environ.get("PVS_BENCH_GIT") or subprocess.run(
                ["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True).stdout.strip()}
    meta["machine"]["memory"] = f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30} GiB"
    res = {"meta": meta, "install": [], "upcalls": None, "forward": []}
    with_ovs = not a.no_ovs and ovs_version() is not None
    if not a.no_ovs and not with_ovs:
        log("ovs-vswitchd not found: no Open vSwitch figures (apt-get install openvswitch-switch)")
    errors = meta["errors"] = []

    def attempt(what, fn, *args):
        """One measurement; a failure is recorded and the run goes on."""
        try:
            return fn(*args)
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
            log(f"{what} failed: {e}")
            errors.append(f"{what}: {e}"[:500])
            return None
    try:
        for n in a.install:
            path = write_rules(os.path.join(rawdir, f"rules-{n}.txt"), n)
            for cls in (Pvs, Ovs) if with_ovs else (Pvs,):
                rec = attempt(f"install {cls.name} {n}", measure_install, cls, n, path, rawdir)
                if rec:
                    res["install"].append(rec)
            os.unlink(path)
        if not a.no_traffic:
            cleanup = system.Cleanup()
            try:
                sw = attempt("pyvswitch with vhost-user ports", Pvs, cleanup, rawdir, True)
                if sw is not None:
                    res["upcalls"] = attempt("upcall rate", measure_upcalls, sw,
                                             a.upcall_flows, a.upcall_seconds, rawdir)
                    for n in a.forward:
                        rec = attempt(f"forwarding {n}", measure_forward, sw, n, a.reps,
                                      a.window, rawdir)
                        if rec:
                            res["forward"].append(rec)
            finally:
                cleanup.unwind()
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
        meta["interrupted"] = True
    meta["load_end"] = load()
    meta["elapsed_s"] = time.monotonic() - started
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"{a.name}-latest.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(a.out, f"{a.name}-latest.md"), "w") as f:
        f.write(render_md(res) + "\n")
    log(f"wrote {a.out}/{a.name}-latest.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
