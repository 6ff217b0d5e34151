"""RFC 2544 through two vhost-user ports: pyvswitch and Open vSwitch with DPDK.

    pvs-bench rfc2544 [--switch pyvswitch,ovs-dpdk] [--scenario p2p|normal|firewall|vxlan]
        [--sizes 64,128,256,512,1024,1280,1518] [--trial 10] [--loss 0]
        [--steps 8] [--quick] [--plots]

Topology: pvs-pktgen (core 0) sends on a virtio-user port attached to the
switch's vhost-user port vhu0 and counts what arrives on vhu1. Scenarios (the
switches' rule sets, shared with pvs-bench pvp --flows): p2p, flows in_port=1 ->
2; normal, actions=NORMAL; firewall, every IP packet through conntrack
(ct(table=1), commit when new, forward when new or established: the Neutron
pattern); vxlan, vhu0 -> vxlan-a -> tnl_push -> br-phy-a -> patch -> br-phy-b
-> tnl_pop -> vxlan-b -> vhu1 inside the switch (switches.VxlanLoop, the
topology of ../shared/bench-anchors/ovs_dpdk_pvp_vxlan.sh, checked with
ofproto/trace before measuring). Each trial is one pvs-pktgen
run: connect, probe until a frame comes back, send at a fixed rate for
--trial seconds, drain, report tx/rx and latency from the time stamps in the
frames.

For every switch and frame size (RFC 2544 sec. 26):
* throughput: the highest offered rate whose loss is at most --loss % (0 for
  zero loss), by binary search between 0 and the rate the generator reaches
  unthrottled (the first trial); --steps halvings;
* latency (avg, p50, p99, max) at 10, 50 and 90 % of that throughput;
* frame loss: loss % at 10, 20, ... 100 % of the unthrottled rate.

The generator is software on one core: when the switch forwards everything the
generator can send, the throughput is the generator's and the report says so
(`generator-bound`). Switches alternate per repetition; each block starts a
fresh switch. Results: JSON and Markdown (bench/results/rfc2544-latest.*), PNG
plots with --plots (matplotlib).
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time

from . import cpu, stats, system
from .pvp import ANCHOR, OVS_SOCKET_MB, SUBJECT, SWITCHES, ensure_hugepages, resolve_args
from .system import log

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "bench", "results")
SIZES = "64,128,256,512,1024,1280,1518"
LAT_LEVELS = (10, 50, 90)
SCENARIO_FLOWS = {"p2p": "ports", "normal": "normal", "firewall": "firewall", "vxlan": "vxlan"}
SCENARIO_TEXT = {
    "p2p": "flows in_port=1,actions=output:2 (and back)",
    "normal": "one flow, actions=NORMAL (MAC learning)",
    "firewall": "stateful firewall: ct(table=1,zone=1), commit when +new, forward when +new or +est",
    "vxlan": "VXLAN inside the switch: vhu0 -> vxlan-a (tnl_push) -> br-phy-a -> patch -> "
             "br-phy-b (tnl_pop) -> vxlan-b -> vhu1",
}
QUICK = {"sizes": "64", "trial": 1.0, "steps": 3, "reps": 1, "loss_points": "50,100", "quiet_max_wait": 20.0}
DEFAULTS = {"sizes": SIZES, "trial": 10.0, "steps": 8, "reps": 1,
            "loss_points": "10,20,30,40,50,60,70,80,90,100", "quiet_max_wait": 300.0}


# ------------------------------------------------------------------ pure parts
def loss_pct(res):
    tx = res.get("tx", 0)
    return 100.0 * max(0, tx - res.get("rx", 0)) / tx if tx else 100.0


def search(trial, hi, steps, tolerance):
    """Binary search of the highest rate in (0, hi] with loss <= tolerance.

    trial(rate) -> loss %. Returns (rate or 0, [(rate, loss), ...]). hi itself
    is tried first: a switch that keeps up with the generator's top rate ends
    the search at once."""
    log_ = []
    loss = trial(hi)
    log_.append((hi, loss))
    if loss <= tolerance:
        return hi, log_
    lo, best = 0.0, 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        loss = trial(mid)
        log_.append((mid, loss))
        if loss <= tolerance:
            lo = best = mid
        else:
            hi = mid
    return best, log_


def gbps(pps, size):
    return pps * size * 8 / 1e9


def parse_points(text):
    pts = [float(x) for x in str(text).split(",") if x]
    if not pts or any(not 0 < p <= 100 for p in pts):
        raise ValueError("loss points are percentages in (0, 100]")
    return pts


# ------------------------------------------------------------------ trials
class Generator:
    """pvs-pktgen runs, one per trial, on the generator's core."""

    def __init__(self, args, sw, size, rawdir):
        self.args, self.sw, self.size, self.rawdir = args, sw, size, rawdir
        self.n = 0

    def run(self, rate):
        a = self.args
        cmd = ["taskset", "-c", str(a.gen_cpu), system.tool("pvs-pktgen"),
               "--tx", f"path={self.sw.socket(0)}", "--rx", f"path={self.sw.socket(1)}",
               "--size", str(self.size), "--rate", str(int(rate)), "--flows", str(a.gen_flows),
               "--duration", str(a.trial), "--warmup", "10", "--drain", "0.5",
               "--lat-samples", "200000", "--timeout", "60", "--json"]
        self.n += 1
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.trial + 120)
        with open(os.path.join(self.rawdir, f"pktgen-{self.sw.name}-{self.size}.log"), "a") as f:
            f.write(f"# trial {self.n} rate {int(rate)}\n$ {shlex.join(cmd)}\n{r.stdout}{r.stderr}\n")
        if r.returncode != 0 or not r.stdout.strip():
            raise RuntimeError(f"pvs-pktgen failed ({r.returncode}): {r.stderr.strip()[-300:]}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["offered_pps"] = rate
        return res


def measure_size(args, sw, size, rep, rawdir):
    """Throughput, latency and loss curve of one switch at one frame size."""
    gen = Generator(args, sw, size, rawdir)
    bench = lambda: [os.getpid(), *sw.bench_pids()]  # noqa: E731
    quiet, waited, _, _ = cpu.wait_quiet(bench, max_wait=args.quiet_max_wait, need=2, log=log)
    s0 = cpu.snapshot()
    top = gen.run(0)                                 # unthrottled: the generator's ceiling
    hi = max(top["tx_pps"], 1)
    trials = [dict(top, kind="ceiling")]

    def trial(rate):
        res = gen.run(rate)
        trials.append(dict(res, kind="search"))
        return loss_pct(res)

    rate, _ = search(trial, hi, args.steps, args.loss)
    lat = {}
    for lv in LAT_LEVELS:
        if rate > 0:
            res = gen.run(rate * lv / 100)
            trials.append(dict(res, kind=f"latency{lv}"))
            lat[str(lv)] = res.get("latency_ns")
    curve = []
    for pt in args.points:
        res = gen.run(hi * pt / 100)
        trials.append(dict(res, kind=f"loss{pt:g}"))
        curve.append({"percent": pt, "offered_pps": hi * pt / 100, "loss_pct": loss_pct(res)})
    s1 = cpu.snapshot()
    foreign, topf = cpu.foreign(s0, s1, bench())
    rec = {"type": "result", "switch": sw.name, "size": size, "rep": rep,
           "time": datetime.datetime.now().isoformat(timespec="seconds"),
           "generator_pps": hi, "throughput_pps": rate, "throughput_gbps": gbps(rate, size),
           "generator_bound": rate >= hi, "loss_tolerance_pct": args.loss,
           "latency_ns": lat, "loss_curve": curve, "trials": trials,
           "foreign_cpu_pct": round(foreign, 2), "foreign_top": [f"{c}({p})={x}%" for x, p, c in topf],
           "quiet_before": {"ok": quiet, "waited_s": round(waited, 1)}}
    rec["clean"] = stats.is_clean(foreign, args.clean_max_foreign)
    return rec


# ------------------------------------------------------------------ report
def summarize(records, switches, sizes):
    cells = []
    for sw in switches:
        for size in sizes:
            rs = [r for r in records if r.get("type") == "result" and r["switch"] == sw and r["size"] == size]
            clean = [r for r in rs if r["clean"]] or rs
            c = {"switch": sw, "size": size, "runs": len(rs), "clean_runs": sum(r["clean"] for r in rs),
                 "throughput_pps": stats.mmm(r["throughput_pps"] for r in clean),
                 "generator_pps": stats.mmm(r["generator_pps"] for r in clean),
                 "generator_bound": any(r["generator_bound"] for r in clean)}
            if clean:
                last = clean[-1]
                c["latency_ns"], c["loss_curve"] = last["latency_ns"], last["loss_curve"]
            cells.append(c)
    med = {(c["switch"], c["size"]): c["throughput_pps"][1] if c["throughput_pps"] else None for c in cells}
    ratios = [{"size": s, "ratio": stats.ratio(med.get((SUBJECT, s)), med.get((ANCHOR, s)))}
              for s in sizes if SUBJECT in switches and ANCHOR in switches]
    errors = {}
    for r in records:
        if r.get("type") == "error":
            errors.setdefault(r["switch"], set()).add(r["message"])
    return {"cells": cells, "ratios": ratios, "errors": {k: sorted(v) for k, v in errors.items()}}


def render_markdown(summary, meta):
    f = stats.fmt
    L = [f"# RFC 2544 through two vhost-user ports ({meta['scenario']})", "",
         f"Scenario: {SCENARIO_TEXT.get(meta['scenario'], meta['scenario'])}", "",
         f"Command: `{meta['command']}`", "", f"Date: {meta['date']}; raw data: `{meta['raw_dir']}`", "",
         "## Machine", "", "| item | value |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in meta["machine"].items()]
    L += ["", f"## Throughput (loss <= {meta['loss']} %)", "",
          "Median over repetitions; `gen` = the generator's unthrottled rate; a throughput equal to it "
          "means the switch forwarded everything the generator could send (generator-bound).", "",
          "| switch | frame B | throughput Mpps | Gbps | gen Mpps | bound by | runs (clean) |",
          "|---|---|---|---|---|---|---|"]
    for c in summary["cells"]:
        t = c["throughput_pps"][1] if c["throughput_pps"] else None
        g = c["generator_pps"][1] if c["generator_pps"] else None
        L.append(f"| {c['switch']} | {c['size']} | {f(t / 1e6 if t is not None else None)} "
                 f"| {f(gbps(t, c['size']) if t is not None else None, 2)} | {f(g / 1e6 if g else None)} "
                 f"| {'generator' if c['generator_bound'] else 'switch'} | {c['runs']} ({c['clean_runs']}) |")
    if summary["ratios"]:
        L += ["", "| frame B | pyvswitch / OVS-DPDK |", "|---|---|"]
        L += [f"| {r['size']} | {f(r['ratio'])} |" for r in summary["ratios"]]
    L += ["", "## Latency at 10 / 50 / 90 % of the throughput (µs: avg, p50, p99, max)", "",
          "| switch | frame B | 10 % | 50 % | 90 % |", "|---|---|---|---|---|"]
    for c in summary["cells"]:
        cols = []
        for lv in LAT_LEVELS:
            x = (c.get("latency_ns") or {}).get(str(lv))
            cols.append("-" if not x else f"{x['avg'] / 1e3:.1f}, {x['p50'] / 1e3:.1f}, "
                                          f"{x['p99'] / 1e3:.1f}, {x['max'] / 1e3:.1f}")
        L.append(f"| {c['switch']} | {c['size']} | " + " | ".join(cols) + " |")
    L += ["", "## Frame loss (% lost at a share of the generator's top rate)", ""]
    pts = [p["percent"] for p in next((c["loss_curve"] for c in summary["cells"] if c.get("loss_curve")), [])]
    if pts:
        L += ["| switch | frame B | " + " | ".join(f"{p:g} %" for p in pts) + " |",
              "|---|---|" + "---|" * len(pts)]
        for c in summary["cells"]:
            if c.get("loss_curve"):
                L.append(f"| {c['switch']} | {c['size']} | "
                         + " | ".join(f"{p['loss_pct']:.2f}" for p in c["loss_curve"]) + " |")
    if summary["errors"]:
        L += ["", "## Errors", ""] + [f"* {sw}: {m}" for sw, ms in summary["errors"].items() for m in ms]
    if meta.get("notes"):
        L += ["", "## Notes", ""] + [f"* {n}" for n in meta["notes"]]
    return "\n".join(L) + "\n"


def plot(summary, outdir, stem):
    """PNG plots: throughput per frame size, loss curves. Returns the files."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for sw in dict.fromkeys(c["switch"] for c in summary["cells"]):
        cs = [c for c in summary["cells"] if c["switch"] == sw and c["throughput_pps"]]
        ax.plot([c["size"] for c in cs], [c["throughput_pps"][1] / 1e6 for c in cs], marker="o", label=sw)
    ax.set_xlabel("frame size (bytes)")
    ax.set_ylabel("throughput (Mpps)")
    ax.set_title("RFC 2544 throughput")
    ax.grid(True, alpha=0.3)
    ax.legend()
    files.append(os.path.join(outdir, f"{stem}-throughput.png"))
    fig.savefig(files[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in summary["cells"]:
        if c.get("loss_curve"):
            ax.plot([p["percent"] for p in c["loss_curve"]], [p["loss_pct"] for p in c["loss_curve"]],
                    marker=".", label=f"{c['switch']} {c['size']} B")
    ax.set_xlabel("offered load (% of the generator's top rate)")
    ax.set_ylabel("frames lost (%)")
    ax.set_title("RFC 2544 frame loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    files.append(os.path.join(outdir, f"{stem}-loss.png"))
    fig.savefig(files[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return files


# ------------------------------------------------------------------ command line
def parse_args(argv):
    p = argparse.ArgumentParser(prog="pvs-bench rfc2544", description=__doc__.split("\n\n")[0])
    p.add_argument("--switch", default=f"{SUBJECT},{ANCHOR}", help="pyvswitch,ovs-dpdk")
    p.add_argument("--scenario", choices=tuple(SCENARIO_FLOWS), default="p2p")
    p.add_argument("--sizes", help=f"frame sizes (default {SIZES})")
    p.add_argument("--trial", type=float, help="seconds per trial (default 10)")
    p.add_argument("--loss", type=float, default=0.0, help="loss tolerance %% (default 0)")
    p.add_argument("--steps", type=int, help="binary search halvings (default 8)")
    p.add_argument("--reps", type=int, help="repetitions per switch (default 1)")
    p.add_argument("--loss-points", help="frame-loss curve points, %% of the top rate")
    p.add_argument("--flows", dest="gen_flows", type=int, default=1,
                   help="flows the generator varies (default 1)")
    p.add_argument("--quick", action="store_true", help="64 B, 1 s trials, 3 steps (a few minutes)")
    p.add_argument("--plots", action="store_true", help="write PNG plots (matplotlib)")
    p.add_argument("--clean-max-foreign", type=float, default=10.0)
    p.add_argument("--quiet-max-wait", type=float)
    p.add_argument("--gen-cpu", type=int, default=0)
    p.add_argument("--switch-cpu", type=int, default=1)
    p.add_argument("--out", default=DEFAULT_OUT)
    a = resolve_args(p, p.parse_args(argv), QUICK, DEFAULTS)
    try:
        a.points = parse_points(a.loss_points)
    except ValueError as e:
        p.error(str(e))
    if a.trial <= 0 or a.steps < 0 or a.reps < 1 or not 0 <= a.loss < 100 or a.gen_flows < 1:
        p.error("--trial > 0, --steps >= 0, --reps >= 1, 0 <= --loss < 100, --flows >= 1")
    a.flows = SCENARIO_FLOWS[a.scenario]     # the switches' rule set (switches.py)
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (huge pages, daemons)")
    os.sched_setaffinity(0, {args.main_cpu})
    notes = []
    if ANCHOR in args.switches:
        why = ensure_hugepages(OVS_SOCKET_MB)
        if why:
            log(f"OVS-DPDK left out: {why}")
            notes.append(f"OVS-DPDK left out: {why}")
            args.switches.remove(ANCHOR)
        if not args.switches:
            raise SystemExit("nothing to run")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rawdir = os.path.join(args.out, "raw", f"rfc2544-{stamp}")
    os.makedirs(rawdir, exist_ok=True)
    meta = {"command": "pvs-bench rfc2544 " + shlex.join(argv), "scenario": args.scenario, "loss": args.loss,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "raw_dir": os.path.relpath(rawdir, REPO), "machine": system.machine_info()}
    records = []
    jl = open(os.path.join(rawdir, "runs.jsonl"), "w")

    def emit(rec):
        records.append(rec)
        jl.write(json.dumps(rec) + "\n")
        jl.flush()

    emit({"type": "meta", **meta})
    sws = {}
    t0 = time.monotonic()

    def prepare():
        state = system.State()
        sws.update({n: SWITCHES[n](args, rawdir, state) for n in args.switches})

    def block(name, rep, cleanup, stage):
        sw = sws[name]
        sw.setup(cleanup)
        stage[0] = "measurement"
        for size in args.size_list:
            rec = measure_size(args, sw, size, rep, rawdir)
            emit(rec)
            log(f"  {name} {size}B: throughput {rec['throughput_pps'] / 1e6:.3f} Mpps "
                f"(generator {rec['generator_pps'] / 1e6:.3f}) foreign {rec['foreign_cpu_pct']:.0f}%")

    with system.Lock():
        interrupted = system.run_blocks(args.switches, args.reps, block, emit, prepare)
    jl.close()
    notes.append(f"trial {args.trial:g} s, {args.steps} search steps, flows {args.flows}, "
                 f"{args.gen_flows} generator flow(s); total {time.monotonic() - t0:.0f} s.")
    if interrupted:
        notes.append(f"INTERRUPTED ({interrupted}): partial results.")
    meta["notes"] = notes
    summary = summarize(records, args.switches, args.size_list)
    stem = f"rfc2544-{args.scenario}"
    if args.plots:
        meta["plots"] = [os.path.relpath(p, args.out) for p in plot(summary, args.out, stem)]
        notes.append("plots: " + ", ".join(meta["plots"]) if meta["plots"] else "plots: matplotlib missing")
    md = render_markdown(summary, meta)
    for base in (os.path.join(rawdir, "summary"), os.path.join(args.out, f"{stem}-latest")):
        with open(base + ".json", "w") as f:
            json.dump({"meta": meta, "summary": summary}, f, indent=1)
        with open(base + ".md", "w") as f:
            f.write(md)
    print(md)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
