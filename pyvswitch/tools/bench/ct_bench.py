"""pvs-bench conntrack: the stateful-firewall figures of issue 7.

    pvs-bench conntrack [--parts rate,memory,secgroup] [--switch pyvswitch,ovs-dpdk]
        [--batch 65536] [--batches 3] [--maxconns 262144] [--fill 1000000]
        [--entries 1000000] [--ports 1000] [--quick]

- rate (ct_rate.py): new connections per second through FIREWALL_FLOWS on
  pyvswitch and OVS-DPDK (pvp.py's switches, one after the other), each
  packet a new UDP 5-tuple; committed = ct-get-nconns after - before. Then
  OVS's table is filled to --fill entries for its memory per entry.
- memory (ct_memory.py): a pyvswitch table of --entries connections, filled by
  the PMD's ct kernel in a process of its own: VmRSS growth and array bytes.
- secgroup (sg_apply.py): one group on --ports ports through a running
  pvs-vswitchd, timed until dump-flows shows the flows.

Writes bench/results/conntrack-PART-latest.{json,md} for each part run (raw
data under raw/conntrack-DATE/).
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time

from . import ct_rate, cpu, sg_apply, stats, system
from .pvp import ANCHOR, OVS_DPDK_BINARY, OVS_SOCKET_MB, SUBJECT, SWITCHES, ensure_hugepages
from .system import log

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "bench", "results")
PARTS = ("rate", "memory", "secgroup")
QUICK = {"batch": 2048, "batches": 2, "fill": 0, "entries": 20000, "ports": 12, "quiet_max_wait": 10.0}
DEFAULTS = {"batch": 65536, "batches": 3, "fill": 1_000_000, "entries": 1_000_000, "ports": 1000,
            "quiet_max_wait": 120.0}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pvs-bench conntrack", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help="rate,memory,secgroup (default all)")
    p.add_argument("--switch", default=f"{SUBJECT},{ANCHOR}", help="rate: pyvswitch,ovs-dpdk")
    p.add_argument("--batch", type=int, help="new connections per generator run (<= 65536)")
    p.add_argument("--batches", type=int, help="generator runs per switch (default 3)")
    p.add_argument("--maxconns", type=int, default=262144, help="ct-set-maxconns on both (default 262144)")
    p.add_argument("--fill", type=int, help="fill OVS's table to this many entries (0: no)")
    p.add_argument("--entries", type=int, help="memory: connections in the pyvswitch table")
    p.add_argument("--ports", type=int, help="secgroup: ports the group is applied to")
    p.add_argument("--quick", action="store_true", help="tiny sizes, pyvswitch only is enough (CI)")
    p.add_argument("--quiet-max-wait", type=float)
    p.add_argument("--gen-cpu", type=int, default=0)
    p.add_argument("--switch-cpu", type=int, default=1)
    p.add_argument("--out", default=DEFAULT_OUT)
    a = p.parse_args(argv)
    for k, v in (QUICK if a.quick else DEFAULTS).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.part_list = [x for x in a.parts.split(",") if x]
    a.switches = [s for s in a.switch.split(",") if s]
    if not a.part_list or any(x not in PARTS for x in a.part_list):
        p.error(f"--parts: a list of {', '.join(PARTS)}")
    if not a.switches or any(s not in SWITCHES for s in a.switches):
        p.error(f"--switch: a list of {', '.join(SWITCHES)}")
    if not 1 <= a.batch <= ct_rate.MAX_BATCH or a.batches < 1 or a.ports < 1 or a.entries < 1:
        p.error(f"--batch 1..{ct_rate.MAX_BATCH}, --batches, --ports, --entries >= 1")
    if a.batch * a.batches > a.maxconns:
        p.error("--batch x --batches must fit in --maxconns")
    if a.fill and a.fill < a.batch * a.batches:
        p.error("--fill goes on from the batches' connections: at least --batch x --batches")
    a.main_cpu, a.flows = a.gen_cpu, "firewall"       # what pvp.py's switches read
    return a


# ------------------------------------------------------------------ parts
def run_rate(args, rawdir, emit, notes):
    if ANCHOR in args.switches:
        why = ensure_hugepages(OVS_SOCKET_MB) or (
            None if os.path.exists(OVS_DPDK_BINARY) else f"{OVS_DPDK_BINARY} missing")
        if why:
            notes.append(f"OVS-DPDK left out: {why}")
            args.switches.remove(ANCHOR)
    sws = {}

    def prepare():
        state = system.State()
        sws.update({n: SWITCHES[n](args, rawdir, state) for n in args.switches})

    def block(name, rep, cleanup, stage):
        sw = sws[name]
        sw.setup(cleanup)
        stage[0] = "measurement"
        cpu.wait_quiet(lambda: [os.getpid(), *sw.bench_pids()], max_wait=args.quiet_max_wait,
                       need=2, log=log)
        ct_rate.measure(args, sw, rawdir, emit)

    return system.run_blocks(list(args.switches), 1, block, emit, prepare)


def run_memory(args, emit):
    cmd = ["taskset", "-c", str(args.gen_cpu), sys.executable, "-m", "pyvswitch.tools.bench.ct_memory",
           str(args.entries)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"ct_memory failed: {r.stderr.strip()[-400:]}")
    rec = {"type": "memory", "switch": SUBJECT, **json.loads(r.stdout.strip().splitlines()[-1])}
    emit(rec)
    log(f"memory: {rec['entries']} entries, {rec['rss_bytes_per_entry']:.1f} B/entry (VmRSS), "
        f"{rec['array_bytes_per_entry']:.1f} B/entry (arrays)")


def run_secgroup(args, rawdir, emit):
    def prepare():
        sws[SUBJECT] = sg_apply.PatchPortSwitch(opts, rawdir, system.State())

    def block(name, rep, cleanup, stage):
        sw = sws[name]
        sw.setup(cleanup)
        stage[0] = "measurement"
        sg_apply.measure(args, sw, rawdir, cleanup, emit)

    sws = {}
    opts = argparse.Namespace(switch_cpu=args.switch_cpu, main_cpu=args.main_cpu, flows="normal")
    return system.run_blocks([SUBJECT], 1, block, emit, prepare)


# ------------------------------------------------------------------ summary
def summarize(records):
    out = {"rate": [], "fill": [], "memory": None, "secgroup": {}, "errors": []}
    for sw in dict.fromkeys(r["switch"] for r in records if r.get("type") == "batch"):
        bs = [r for r in records if r.get("type") == "batch" and r["switch"] == sw]
        out["rate"].append({"switch": sw, "batches": len(bs),
                            "committed": sum(r["committed"] for r in bs),
                            "sent": sum(r["sent"] for r in bs), "forwarded": sum(r["forwarded"] for r in bs),
                            "conns_per_s": stats.mmm(r["conns_per_s"] for r in bs),
                            "loadavg": stats.mmm(r["loadavg"] for r in bs),
                            "foreign_cpu_pct": stats.mmm(r["foreign_cpu_pct"] for r in bs)})
    for c in out["rate"]:
        base = [r for r in records if r.get("type") == "no_firewall" and r["switch"] == c["switch"]]
        c["no_firewall_pps"] = base[-1]["pps"] if base else None
    med = {c["switch"]: c["conns_per_s"][1] if c["conns_per_s"] else None for c in out["rate"]}
    out["rate_ratio"] = stats.ratio(med.get(SUBJECT), med.get(ANCHOR))
    for r in records:
        if r.get("type") == "fill":
            out["fill"].append(r)
        elif r.get("type") == "memory":
            out["memory"] = r
        elif r.get("type") in ("ports", "compile", "import", "reapply", "rule_add"):
            out["secgroup"][r["type"]] = r
        elif r.get("type") == "error":
            out["errors"].append(f"{r['switch']} ({r['stage']}): {r['message']}")
    return out


def _rate_md(s):
    f, fm = stats.fmt, stats.fmt_mmm
    L = ["## New connections per second (firewall flows, one new UDP 5-tuple per packet)", "",
         "Per batch: committed = `dpctl/ct-get-nconns` after - before, divided by the generator's "
         "sending time (it waits for room in the vhost-user ring, so a slower switch sets the pace). "
         "min / **median** / max over the batches.", "",
         "The last column is one more batch of new tuples through `in_port` flows (no conntrack): "
         "when it is well above the connection rate, the generator is not what limits it.", "",
         "| switch | batches | sent | forwarded | committed | connections/s | foreign CPU % | load avg "
         "| packets/s without firewall |",
         "|---|---|---|---|---|---|---|---|---|"]
    for c in s["rate"]:
        L.append(f"| {c['switch']} | {c['batches']} | {c['sent']} | {c['forwarded']} | {c['committed']} "
                 f"| {fm(c['conns_per_s'], 0)} | {fm(c['foreign_cpu_pct'], 1, False)} "
                 f"| {fm(c['loadavg'], 2, False)} | {f(c['no_firewall_pps'], 0)} |")
    if s["rate_ratio"] is not None:
        L += ["", f"pyvswitch / OVS-DPDK (median connections/s): **{f(s['rate_ratio'])}**"]
    return L


def _fill_md(s):
    L = []
    for r in s["fill"]:
        grow = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024
        per = f"**{r['bytes_per_entry']:.1f}**" if r["bytes_per_entry"] else "-"
        L += [f"Memory: {r['switch']}'s table, raised to {r['entries']:,} entries with ct-set-maxconns "
              f"and filled through the switch: ovs-vswitchd's VmRSS grew {grow:,} bytes = {per} bytes "
              "per entry.", ""]
    return L


def _memory_md(s):
    m = s["memory"]
    if not m:
        return []
    return ["## Memory per conntrack entry", "",
            f"pyvswitch: a table of {m['capacity']:,} connections (conntrack/table.new_table, "
            f"{m['index_slots']:,} index slots) filled with {m['entries']:,} committed UDP "
            f"connections by ct_process in a process of its own ({m['refused']} refused, "
            f"{m['fill_seconds']} s).", "",
            "| what | bytes | per entry |", "|---|---|---|",
            f"| VmRSS growth, empty table | {m['rss_empty_table_bytes']:,} | - |",
            f"| VmRSS growth, full table | {m['rss_filled_table_bytes']:,} | **{m['rss_bytes_per_entry']:.1f}** |",
            f"| the table's arrays (nbytes) | {m['array_bytes']:,} | {m['array_bytes_per_entry']:.1f} "
            f"(+ {m['array_fixed_bytes']:,} fixed) |", ""]


def _secgroup_md(s):
    g = s["secgroup"]
    if "import" not in g:
        return []
    n = g["import"]["ports"]
    L = [f"## One security group on {n:,} ports (pvs-secgroup through the running daemon)", "",
         f"{len(sg_apply.RULES)} rules, one with the group itself as remote group ({n:,} members). "
         "End to end = from starting pvs-secgroup until `pvs-ofctl dump-flows` shows every flow "
         "of cookie 0x5ec0.", "",
         "| step | flows | pvs-secgroup s | end to end s | output |", "|---|---|---|---|---|"]
    if "compile" in g:
        L.append(f"| compile_flows only (in process) | {g['compile']['flows']:,} | - "
                 f"| {g['compile']['seconds']} | - |")
    for key, what in (("import", "import (all flows new)"), ("reapply", "apply, nothing changed"),
                      ("rule_add", "rule-add (one more rule)")):
        if key in g:
            r = g[key]
            L.append(f"| {what} | {r['flows']:,} | {r['cli_seconds']} | **{r['end_to_end_seconds']}** "
                     f"| {r['output']} |")
    if "ports" in g:
        L += ["", f"The ports are patch ports (a PMD polls at most 64 ports). Adding the {n:,} pairs "
                  "(pvs-vsctl, 100 per transaction) took "
                  f"{g['ports']['seconds']} s (not part of the figures above)."]
    return L + [""]


TITLES = {"rate": "new connections per second through a stateful firewall",
          "memory": "memory per conntrack entry",
          "secgroup": "time to apply a security group"}


def render_markdown(s, meta, part):
    L = [f"# Conntrack: {TITLES[part]}", "",
         f"Command: `{meta['command']}`", "", f"Date: {meta['date']}; raw data: `{meta['raw_dir']}`", "",
         "## Machine", "", "| item | value |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in meta["machine"].items()]
    L += [""]
    if part == "rate" and s["rate"]:
        L += _rate_md(s) + [""] + _fill_md(s)
    L += _memory_md(s) if part == "memory" else []
    L += _secgroup_md(s) if part == "secgroup" else []
    if s["errors"]:
        L += ["## Errors", ""] + [f"* {e}" for e in s["errors"]] + [""]
    if meta.get("notes"):
        L += ["## Notes", ""] + [f"* {n}" for n in meta["notes"]]
    return "\n".join(L) + "\n"


def write_results(args, rawdir, summary, meta):
    """conntrack-PART-latest.{json,md} per part run (and in the raw directory)."""
    for part in args.part_list:
        md = render_markdown(summary, meta, part)
        for base in (os.path.join(rawdir, f"summary-{part}"), os.path.join(args.out, f"conntrack-{part}-latest")):
            with open(base + ".json", "w") as f:
                json.dump({"meta": meta, "part": part, "summary": summary}, f, indent=1)
            with open(base + ".md", "w") as f:
                f.write(md)
        print(md)


# ------------------------------------------------------------------ command line
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (daemons, huge pages)")
    os.sched_setaffinity(0, {args.main_cpu})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rawdir = os.path.join(args.out, "raw", f"conntrack-{stamp}")
    os.makedirs(rawdir, exist_ok=True)
    meta = {"command": "pvs-bench conntrack " + shlex.join(argv),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "raw_dir": os.path.relpath(rawdir, REPO), "machine": system.machine_info()}
    records, notes = [], []
    jl = open(os.path.join(rawdir, "runs.jsonl"), "w")

    def emit(rec):
        records.append(rec)
        jl.write(json.dumps(rec) + "\n")
        jl.flush()

    interrupted = None
    t0 = time.monotonic()
    with system.Lock():
        if "rate" in args.part_list:
            interrupted = run_rate(args, rawdir, emit, notes)
        if "memory" in args.part_list and not interrupted:
            try:
                run_memory(args, emit)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                emit({"type": "error", "switch": SUBJECT, "stage": "memory", "message": str(e)[:500]})
        if "secgroup" in args.part_list and not interrupted:
            interrupted = run_secgroup(args, rawdir, emit)
    jl.close()
    setting = {"rate": f"rate: batch {args.batch} x {args.batches}, maxconns {args.maxconns} on both "
                       f"switches, OVS fill {args.fill}",
               "memory": f"memory: {args.entries} entries", "secgroup": f"secgroup: {args.ports} ports"}
    notes.append("; ".join(setting[p] for p in args.part_list) + f"; total {time.monotonic() - t0:.0f} s.")
    if interrupted:
        notes.append(f"INTERRUPTED ({interrupted}): partial results.")
    meta["notes"] = notes
    write_results(args, rawdir, summarize(records), meta)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
