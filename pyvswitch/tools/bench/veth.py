"""Forwarding rate of pyvswitch and two anchors between two veth ports.

    python -m pyvswitch.tools.bench.veth [--switch pyvswitch,linux-bridge,ovs-system]
        [--sizes 64,1514] [--reps 3] [--duration 10] [--warmup 3] [--flows ports|normal]
        [--quick] ...

Topology (all names start with "pvb"; traffic never leaves the namespaces)::

    netns pvb-ns1                  root namespace                  netns pvb-ns2
    pvbv1 (10.99.7.1) ==veth== pvbv1r --[switch]-- pvbv2r ==veth== pvbv2 (10.99.7.2)

Generator: dpdk-testpmd in pvb-ns1, txonly on a net_af_packet vdev on pvbv1
(PACKET_MMAP TX ring, qdisc bypass), one UDP flow, both lcores on core 0, dst
MAC owned by nobody (pvbv2 drops the frames as PACKET_OTHERHOST).
Offered = tx_packets delta of pvbv1, forwarded = rx_packets delta of pvbv2.

The switches alternate per repetition (A/B/C/A/B/C); every block sets up a
fresh topology and switch and tears both down. Before each window the harness
waits until processes outside the benchmark use < 5 % CPU; a window in which
they used more than 10 % is marked unclean, kept in the raw data, retried, and
left out of the summary. See bench/README.md.
"""

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time

from . import cpu, stats, system
from .switches import SWITCHES
from .system import MAC_NOBODY, NS1, NS2, V1, V2, log

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "bench", "results")

QUICK = {"reps": 1, "duration": 3.0, "warmup": 2.0, "sizes": "64", "retries": 1, "quiet_max_wait": 30.0,
         "quiet_seconds": 1}
DEFAULTS = {"reps": 3, "duration": 10.0, "warmup": 3.0, "sizes": "64,1514", "retries": 3,
            "quiet_max_wait": 300.0, "quiet_seconds": 3}
REQUIRED_DEBS = {"dpdk-dev": None, "ethtool": None, "iproute2": None,
                 "openvswitch-switch": "ovs-system"}


# ------------------------------------------------------------------ command line
def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m pyvswitch.tools.bench.veth",
        description="Forwarding rate between two veth ports: pyvswitch vs the Linux bridge "
                    "and the OVS userspace datapath (AF_PACKET), alternating in one run.")
    p.add_argument("--switch", default=",".join(stats.ALL_SWITCHES),
                   help="comma-separated: pyvswitch,linux-bridge,ovs-system (default: all)")
    p.add_argument("--sizes", help="frame sizes in bytes without FCS (default 64,1514)")
    p.add_argument("--reps", type=int, help="repetitions per switch and size (default 3)")
    p.add_argument("--duration", type=float, help="measurement window in s (default 10)")
    p.add_argument("--warmup", type=float, help="s of traffic before the window (default 3)")
    p.add_argument("--flows", choices=("ports", "normal"), default="ports",
                   help="OpenFlow rules: in_port=1->2, 2->1 (default) or actions=NORMAL")
    p.add_argument("--quick", action="store_true",
                   help="1 rep, 3 s, 64 B only, 1 attempt, quiet wait <= 30 s (for CI)")
    p.add_argument("--retries", type=int, help="attempts per window when foreign CPU is too high (default 3)")
    p.add_argument("--clean-max-foreign", type=float, default=10.0,
                   help="a window with more foreign CPU %% than this is unclean (default 10)")
    p.add_argument("--quiet-threshold", type=float, default=5.0,
                   help="wait before each window until foreign CPU %% is below this (default 5)")
    p.add_argument("--quiet-max-wait", type=float, help="give up waiting after s (default 300)")
    p.add_argument("--quiet-seconds", type=int,
                   help="consecutive quiet 1-s samples needed before a window (default 3, --quick 1)")
    p.add_argument("--gen-cpu", type=int, default=0, help="core of the generator (default 0)")
    p.add_argument("--switch-cpu", type=int, default=1, help="core of the switch (default 1)")
    p.add_argument("--out", default=DEFAULT_OUT, help="results directory (default bench/results)")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get install missing Debian packages")
    return p


def parse_args(argv=None):
    """Parse and resolve: --quick supplies defaults that explicit options override."""
    parser = build_parser()
    a = parser.parse_args(argv)
    base = QUICK if a.quick else DEFAULTS
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    try:
        a.switches = stats.parse_switches(a.switch)
        a.size_list = stats.parse_sizes(a.sizes)
    except ValueError as e:
        parser.error(str(e))
    if a.reps < 1 or a.retries < 1 or a.quiet_seconds < 1:
        parser.error("--reps, --retries and --quiet-seconds must be >= 1")
    if a.duration <= 0 or a.warmup < 0:
        parser.error("--duration must be > 0 and --warmup >= 0")
    ncpu = os.cpu_count() or 1
    for c in (a.gen_cpu, a.switch_cpu):
        if not 0 <= c < ncpu:
            raise SystemExit(f"core {c} does not exist (nproc={ncpu})")
    a.main_cpu = a.gen_cpu   # ovsdb-server, pvs-vswitchd's non-PMD threads
    return a


# ------------------------------------------------------------------ packages
def ensure_packages(switches, allow_install):
    missing = []
    for deb, needed_by in REQUIRED_DEBS.items():
        if needed_by and needed_by not in switches:
            continue
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", deb], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(deb)
    if not missing:
        return
    if not allow_install:
        raise SystemExit(f"missing Debian packages: {' '.join(missing)}")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


# ------------------------------------------------------------------ generator
class Generator:
    """dpdk-testpmd txonly on net_af_packet in pvb-ns1, pinned to one core."""

    def __init__(self, gen_cpu, logpath):
        self.gen_cpu = gen_cpu
        self.logpath = logpath
        self.popen = None
        self.logf = None

    @staticmethod
    def eal_memory_args():
        # hugepages when there are enough free, else plain memory (--no-huge
        # implies --legacy-mem, which DPDK 22.11 rejects with --in-memory)
        if system.free_hugepage_mb() >= 512:
            return ["--in-memory", "--single-file-segments", "-m", "256"], "hugepages"
        return ["--no-huge", "--no-shconf", "-m", "256"], "no-huge"

    def command(self, size):
        mem, _ = self.eal_memory_args()
        c = self.gen_cpu
        return ["ip", "netns", "exec", NS1, "taskset", "-c", str(c), "dpdk-testpmd",
                "--lcores", f"0@{c},1@{c}", "--no-pci", *mem,
                "--vdev", f"net_af_packet0,iface={V1},qpairs=1,qdisc_bypass=1", "--",
                "--nb-cores=1", "--total-num-mbufs=16384", "--forward-mode=txonly",
                f"--txpkts={size}", f"--eth-peer=0,{MAC_NOBODY}", "--auto-start",
                "--stats-period=5"]

    def start(self, size, cleanup):
        self.logf = open(self.logpath, "w")
        cmd = self.command(size)
        self.logf.write("# " + shlex.join(cmd) + "\n")
        self.logf.flush()
        self.popen = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.mark = cleanup.push("generator", self.stop)
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self):
        if self.popen is not None:
            system.stop_pid(self.popen.pid, "dpdk-testpmd", sig=signal.SIGINT, timeout=10,
                            popen=self.popen)
            self.popen = None
        if self.logf:
            self.logf.close()
            self.logf = None

    def log_tail(self, n=5):
        try:
            with open(self.logpath) as f:
                lines = [l.strip() for l in f if l.strip()]
            return " | ".join(lines[-n:])
        except OSError:
            return ""


# ------------------------------------------------------------------ one window
def counters():
    t_a = time.monotonic()
    s1 = system.link_stats(NS1, V1)
    s2 = system.link_stats(NS2, V2)
    t_b = time.monotonic()
    return {"t": (t_a + t_b) / 2, "read_s": t_b - t_a, "tx": s1["tx"]["packets"],
            "tx_dropped": s1["tx"]["dropped"], "rx": s2["rx"]["packets"],
            "softnet_drops": system.softnet_drops()}


def measure(args, sw, size, rep, attempt, rawdir, cleanup):
    """One measurement window; returns the run record."""
    tag = f"{sw.name}-size{size}-rep{rep}.{attempt}"
    bench = lambda extra=(): [os.getpid(), *sw.bench_pids(), *extra]  # noqa: E731
    quiet, waited, f_before, top_before = cpu.wait_quiet(
        bench, threshold=args.quiet_threshold, max_wait=args.quiet_max_wait,
        need=args.quiet_seconds, log=log)
    gen = Generator(args.gen_cpu, os.path.join(rawdir, f"gen-{tag}.log"))
    mark = len(cleanup.stack)
    gpid = gen.start(size, cleanup)
    try:
        time.sleep(args.warmup)
        if not gen.alive():
            raise RuntimeError(f"generator exited during warm-up: {gen.log_tail()}")
        sw.pmd_clear()
        s0 = cpu.snapshot()
        c0 = counters()
        samples = [c0]
        end = c0["t"] + args.duration
        while True:   # 1-second samples for the per-second min/max ("peak 1 s")
            left = end - time.monotonic()
            if left <= 0.05:
                break
            time.sleep(min(1.0, left))
            samples.append(counters())
        c1 = samples[-1]
        s1 = cpu.snapshot()
        gen_alive = gen.alive()
        pmd_text = sw.pmd_show()
        health = sw.health()
    finally:
        cleanup.unwind(mark)
    dt = c1["t"] - c0["t"]
    rec = {"type": "run", "switch": sw.name, "size": size, "rep": rep, "attempt": attempt,
           "flows": args.flows, "time": datetime.datetime.now().isoformat(timespec="seconds"),
           "window_s": round(dt, 3), "generator_alive": gen_alive, "generator_pid": gpid,
           "generator_memory": Generator.eal_memory_args()[1]}
    rec.update(stats.run_rates(size, dt, c0["tx"], c1["tx"], c0["rx"], c1["rx"]))
    secs = stats.per_second_mpps([(c["t"], c["rx"]) for c in samples])
    rec["sec_min_mpps"] = min(secs) if secs else None
    rec["sec_max_mpps"] = max(secs) if secs else None
    rec["v1_tx_dropped"] = c1["tx_dropped"] - c0["tx_dropped"]
    rec["softnet_drops"] = c1["softnet_drops"] - c0["softnet_drops"]
    cpu_dt = s1["t"] - s0["t"]
    sw_pids = sw.switch_pids()
    if sw_pids:
        secs = cpu.proc_seconds(s0, s1, sw_pids)
        rec["switch_cpu_pct"] = 100.0 * secs / cpu_dt
        rec["switch_cpu_ns_per_pkt"] = stats.ns_per_pkt(secs, rec["rx_packets"])
    else:
        rec["switch_cpu_pct"] = None
        rec["switch_cpu_ns_per_pkt"] = None    # the Linux bridge has no process
    core = cpu.core_split(s0, s1, args.switch_cpu)
    gcore = cpu.core_split(s0, s1, args.gen_cpu)
    rec["core_softirq_pct"] = core["softirq_pct"] if core else None
    rec["core_busy_ns_per_pkt"] = stats.ns_per_pkt(core["busy_s"], rec["rx_packets"]) if core else None
    rec["switch_core"] = {k: round(v, 1) for k, v in (core or {}).items() if k.endswith("_pct")}
    rec["gen_core"] = {k: round(v, 1) for k, v in (gcore or {}).items() if k.endswith("_pct")}
    foreign, top = cpu.foreign(s0, s1, bench([gpid]))
    rec["foreign_cpu_pct"] = round(foreign, 2)
    rec["foreign_top"] = [f"{c}({p})={x}%" for x, p, c in top]
    rec["quiet_before"] = {"ok": quiet, "waited_s": round(waited, 1), "foreign_pct": round(f_before, 1)}
    rec["clean"] = stats.is_clean(foreign, args.clean_max_foreign) and gen_alive
    rec["switch_problems"] = health
    rec["pmd_cycles_per_pkt"] = None
    if pmd_text is not None:
        with open(os.path.join(rawdir, f"pmd-stats-{tag}.txt"), "w") as f:
            f.write(pmd_text)
        threads = stats.parse_pmd_stats(pmd_text)
        rec["pmd_cycles_per_pkt"] = stats.pmd_cycles_per_pkt(threads)
        rec["pmd_threads"] = threads
    return rec


# ------------------------------------------------------------------ the run
def layout_table(args, switch_objs):
    t = {
        f"core {args.gen_cpu}": (f"generator (dpdk-testpmd txonly, `--lcores 0@{args.gen_cpu},1@{args.gen_cpu}`) "
                                 "+ its softirq (veth xmit, AF_PACKET delivery into the switch's socket "
                                 "or RPS enqueue), the harness, ovsdb-server"),
        f"core {args.switch_cpu}": "the switch (below) + softirq of its transmissions (veth -> ns2 receive)",
    }
    for s in switch_objs:
        t[s.name] = s.layout
    return t


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--report"]:
        if len(argv) != 2:
            raise SystemExit("usage: --report bench/results/raw/<timestamp>")
        return report(argv[1])
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, veth, daemons)")
    ensure_packages(args.switches, not args.no_install)
    # the harness (and the CLI tools it runs) stays off the switch's core
    os.sched_setaffinity(0, {args.main_cpu})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rawdir = os.path.join(args.out, "raw", stamp)
    os.makedirs(rawdir, exist_ok=True)
    command = "python -m pyvswitch.tools.bench.veth " + shlex.join(argv)
    start_date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    machine = system.machine_info()
    records = []
    jl = open(os.path.join(rawdir, "runs.jsonl"), "w")

    def emit(rec):
        records.append(rec)
        jl.write(json.dumps(rec) + "\n")
        jl.flush()

    emit({"type": "meta", "command": command, "date": start_date, "machine": machine,
          "args": {k: v for k, v in vars(args).items()}})
    switch_objs = {}
    reported = {}
    t_start = time.monotonic()

    def prepare():
        state = system.State()
        switch_objs.update({n: SWITCHES[n](args, rawdir, state) for n in args.switches})

    def block(name, rep, cleanup, stage):
        sw = switch_objs[name]
        stage[0] = "topology"
        system.topology_up(cleanup)
        stage[0] = "switch set-up"
        sw.setup(cleanup)
        with open(os.path.join(rawdir, f"{name}-rep{rep}-config.txt"), "w") as f:
            f.write(sw.describe())
        stage[0] = "measurement"
        for size in args.size_list:
            for attempt in range(1, args.retries + 1):
                rec = measure(args, sw, size, rep, attempt, rawdir, cleanup)
                emit(rec)
                for prob in rec["switch_problems"]:
                    if prob not in reported.setdefault(name, set()):
                        reported[name].add(prob)
                        log(f"  {name} reports: {prob}")
                        emit({"type": "error", "switch": name, "rep": rep,
                              "stage": "switch log", "message": f"switch log: {prob}"})
                log(f"  {name} {size}B rep {rep}.{attempt}: offered {rec['offered_mpps']:.3f} "
                    f"forwarded {rec['forwarded_mpps']:.3f} Mpps loss {rec['loss_pct']:.1f}% "
                    f"foreign {rec['foreign_cpu_pct']:.1f}% clean={int(rec['clean'])}")
                if rec["clean"]:
                    break

    with system.Lock():
        interrupted = system.run_blocks(args.switches, args.reps, block, emit, prepare)
    jl.close()
    return write_report(records, args, command, start_date, machine, rawdir,
                        time.monotonic() - t_start, interrupted)


def write_report(records, args, command, start_date, machine, rawdir, elapsed, interrupted):
    switch_objs = {n: SWITCHES[n](args, None, None) for n in args.switches}
    summary = stats.summarize(records, args.switches, args.size_list)
    notes = [
        f"{args.reps} rep(s) x {len(args.size_list)} size(s) per switch, order per repetition "
        f"{' / '.join(args.switches)}; window {args.duration:g} s after {args.warmup:g} s warm-up; "
        f"flows: {args.flows}; total {elapsed:.0f} s.",
        f"clean = foreign CPU <= {args.clean_max_foreign:g} % (100 % = one core) and the generator "
        f"still running at the end of the window; before each window the harness waited "
        f"(<= {args.quiet_max_wait:g} s) for foreign CPU < {args.quiet_threshold:g} % in "
        f"{args.quiet_seconds} consecutive 1-s samples.",
        f"generator memory: {Generator.eal_memory_args()[1]}.",
    ]
    if interrupted:
        notes.append(f"INTERRUPTED ({interrupted}): partial results.")
    unclean = sum(1 for r in records if r.get("type") == "run" and not r.get("clean"))
    if unclean:
        notes.append(f"{unclean} unclean window(s) kept in the raw data and left out of the table.")
    meta = {"command": command, "date": start_date,
            "raw_dir": os.path.relpath(rawdir, REPO) if rawdir.startswith(REPO) else rawdir,
            "machine": machine, "layout": layout_table(args, switch_objs.values()), "notes": notes}
    md = stats.render_markdown(summary, meta)
    summary_doc = {"meta": meta, "summary": summary}
    for path in (os.path.join(rawdir, "summary.json"), os.path.join(args.out, "veth-latest.json")):
        with open(path, "w") as f:
            json.dump(summary_doc, f, indent=1)
    for path in (os.path.join(rawdir, "summary.md"), os.path.join(args.out, "veth-latest.md")):
        with open(path, "w") as f:
            f.write(md + "\n")
    print(md)
    return 130 if interrupted else 0


def report(rawdir, argv_out=None):
    """Rebuild the summary and Markdown of an earlier run from its runs.jsonl."""
    with open(os.path.join(rawdir, "runs.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    meta = next(r for r in records if r.get("type") == "meta")
    args = argparse.Namespace(**meta["args"])
    if argv_out:
        args.out = argv_out
    times = [r["time"] for r in records if r.get("type") == "run"]
    elapsed = 0.0
    if times:
        t0 = datetime.datetime.fromisoformat(meta["date"]).replace(tzinfo=None)
        elapsed = (datetime.datetime.fromisoformat(times[-1]) - t0).total_seconds()
    return write_report(records, args, meta["command"], meta["date"], meta["machine"],
                        os.path.abspath(rawdir), elapsed, None)


if __name__ == "__main__":
    sys.exit(main())
