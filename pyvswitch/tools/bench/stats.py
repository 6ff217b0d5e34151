"""Pure computations of the benchmark: no I/O, no processes (unit-tested).

A "run" is one measurement window of one switch at one frame size. Its record
is a flat dict (one JSON line in the raw results); `summarize` groups the clean
runs per (switch, size) and `render_markdown` turns the summary into the table
printed at the end and written to bench/results/veth-latest.md.
"""

import re
import statistics

ANCHORS = ("linux-bridge", "ovs-system")
SUBJECT = "pyvswitch"
ALL_SWITCHES = (SUBJECT,) + ANCHORS

# fields summarised as min/median/max over the clean runs of a (switch, size)
SUMMARY_FIELDS = (
    "forwarded_mpps",
    "sec_max_mpps",
    "offered_mpps",
    "loss_pct",
    "switch_cpu_ns_per_pkt",
    "core_busy_ns_per_pkt",
    "core_softirq_pct",
    "pmd_cycles_per_pkt",
    "foreign_cpu_pct",
)


# --------------------------------------------------------------- statistics
def mmm(values):
    """(min, median, max) of the numbers in `values`, ignoring None; None if empty."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return (v[0], statistics.median(v), v[-1])


def ratio(a, b):
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def run_rates(size, dt, tx0, tx1, rx0, rx1):
    """Rates of one window from the counter deltas.

    offered = tx_packets delta of the ns1 veth (what the generator got into the
    switch's port), forwarded = rx_packets delta of the ns2 veth (what the
    switch delivered). Frame size in bytes without FCS.
    """
    if dt <= 0:
        raise ValueError("window length must be positive")
    tx = tx1 - tx0
    rx = rx1 - rx0
    if tx < 0 or rx < 0:
        raise ValueError("counters went backwards")
    fwd = rx / dt / 1e6
    return {
        "tx_packets": tx,
        "rx_packets": rx,
        "offered_mpps": tx / dt / 1e6,
        "forwarded_mpps": fwd,
        "loss_pct": 100.0 * (1 - rx / tx) if tx > 0 else 0.0,
        "forwarded_gbps": fwd * size * 8 / 1e3,
    }


def per_second_mpps(samples):
    """Rates (Mpps) between consecutive (time, packet counter) samples."""
    out = []
    for (t0, n0), (t1, n1) in zip(samples, samples[1:]):
        if t1 > t0:
            out.append((n1 - n0) / (t1 - t0) / 1e6)
    return out


def ns_per_pkt(cpu_seconds, packets):
    """CPU time per forwarded packet in ns; None without packets."""
    if cpu_seconds is None or not packets:
        return None
    return cpu_seconds * 1e9 / packets


def is_clean(foreign_pct, max_foreign):
    return foreign_pct is not None and foreign_pct <= max_foreign


# --------------------------------------------------------------- parsing
_THREAD_RE = re.compile(r"^(pmd thread .*|main thread)\s*:\s*$")
_KV_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ._/()-]*?)\s*:\s*(-?[0-9]+(?:\.[0-9]+)?)")


def parse_pmd_stats(text):
    """Parse `ovs-appctl dpif-netdev/pmd-stats-show` (and pvs-appctl's copy).

    Returns a list of {"thread": header, "stats": {key: float}}, one per thread
    block. Keys are the text before the colon, e.g. "packets received",
    "avg processing cycles per packet"; the first number after the colon is the
    value (percentages in parentheses are dropped).
    """
    threads = []
    cur = None
    for line in text.splitlines():
        m = _THREAD_RE.match(line.strip())
        if m:
            cur = {"thread": m.group(1), "stats": {}}
            threads.append(cur)
            continue
        m = _KV_RE.match(line)
        if m and cur is not None:
            cur["stats"][m.group(1).strip()] = float(m.group(2))
    return threads


def pmd_cycles_per_pkt(threads):
    """Processing cycles per packet over all threads that received packets,
    weighted by packets ("avg processing cycles per packet", which leaves out
    idle polling; falls back to "avg cycles per packet")."""
    tot_pkts = 0.0
    tot_cyc = 0.0
    for t in threads:
        s = t["stats"]
        pkts = s.get("packets received", 0.0)
        cpp = s.get("avg processing cycles per packet", s.get("avg cycles per packet"))
        if pkts and cpp is not None:
            tot_pkts += pkts
            tot_cyc += pkts * cpp
    return tot_cyc / tot_pkts if tot_pkts else None


def parse_sizes(text, largest=1514, why="veth MTU 1500, no FCS"):
    sizes = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    for s in sizes:
        if not 60 <= s <= largest:
            raise ValueError(f"frame size {s} outside 60..{largest} ({why})")
    if not sizes:
        raise ValueError("no frame sizes")
    return sizes


def parse_switches(text):
    names = [x for x in str(text).replace(" ", "").split(",") if x]
    for n in names:
        if n not in ALL_SWITCHES:
            raise ValueError(f"unknown switch {n!r} (known: {', '.join(ALL_SWITCHES)})")
    if len(set(names)) != len(names) or not names:
        raise ValueError("switch list must be non-empty and without repeats")
    return names


def schedule(switches, reps):
    """The A/B/C/A/B/C order: [(rep, switch), ...], rep counted from 1."""
    return [(rep, sw) for rep in range(1, reps + 1) for sw in switches]


# --------------------------------------------------------------- summary
def summarize(records, switches, sizes):
    """Group run records into the summary.

    `records` are the raw JSON-line dicts; only those with type "run" count,
    and only clean ones enter the statistics. Errors (type "error") are
    collected per switch. Returns a dict that is also written as summary.json.
    """
    cells = {}
    errors = {sw: [] for sw in switches}
    for r in records:
        if r.get("type") == "error":
            errors.setdefault(r.get("switch", "?"), []).append(r.get("message", ""))
            continue
        if r.get("type") != "run":
            continue
        key = (r["switch"], r["size"])
        c = cells.setdefault(key, {"runs": 0, "clean": 0, "values": {f: [] for f in SUMMARY_FIELDS},
                                   "all": [], "all_foreign": []})
        c["runs"] += 1
        c["all"].append(r.get("forwarded_mpps"))
        c["all_foreign"].append(r.get("foreign_cpu_pct"))
        if not r.get("clean"):
            continue
        c["clean"] += 1
        for f in SUMMARY_FIELDS:
            c["values"][f].append(r.get(f))
    out = {"switches": list(switches), "sizes": list(sizes), "cells": [], "ratios": [], "errors": {}}
    for sw in switches:
        for size in sizes:
            c = cells.get((sw, size), {"runs": 0, "clean": 0, "values": {f: [] for f in SUMMARY_FIELDS},
                                       "all": [], "all_foreign": []})
            cell = {"switch": sw, "size": size, "runs": c["runs"], "clean_runs": c["clean"]}
            for f in SUMMARY_FIELDS:
                cell[f] = mmm(c["values"][f])
            # every window, unclean ones too: indicative only on a busy machine
            cell["forwarded_mpps_all"] = mmm(c["all"])
            cell["foreign_cpu_pct_all"] = mmm(c["all_foreign"])
            out["cells"].append(cell)
    med = {(c["switch"], c["size"]): (c["forwarded_mpps"][1] if c["forwarded_mpps"] else None)
           for c in out["cells"]}
    med_all = {(c["switch"], c["size"]): (c["forwarded_mpps_all"][1] if c["forwarded_mpps_all"] else None)
               for c in out["cells"]}
    if SUBJECT in switches:
        for size in sizes:
            for anchor in ANCHORS:
                if anchor in switches:
                    out["ratios"].append({
                        "size": size, "anchor": anchor,
                        "pyvswitch_median_mpps": med.get((SUBJECT, size)),
                        "anchor_median_mpps": med.get((anchor, size)),
                        "ratio": ratio(med.get((SUBJECT, size)), med.get((anchor, size))),
                        "ratio_all_windows": ratio(med_all.get((SUBJECT, size)), med_all.get((anchor, size))),
                    })
    out["errors"] = {sw: sorted(set(m)) for sw, m in errors.items() if m}
    return out


# --------------------------------------------------------------- rendering
def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def fmt_mmm(t, digits=3, bold=True):
    if not t:
        return "-"
    lo, med, hi = t
    m = fmt(med, digits)
    return f"{fmt(lo, digits)} / {'**' + m + '**' if bold else m} / {fmt(hi, digits)}"


def render_markdown(summary, meta):
    """The Markdown report. `meta` holds command, date, machine, layout, notes."""
    L = []
    L.append("# pyvswitch veth benchmark")
    L.append("")
    L.append(f"Command: `{meta.get('command', '?')}`")
    L.append("")
    L.append(f"Date: {meta.get('date', '?')}; raw data: `{meta.get('raw_dir', '?')}`")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| item | value |")
    L.append("|---|---|")
    for k, v in meta.get("machine", {}).items():
        L.append(f"| {k} | {v} |")
    L.append("")
    L.append("## CPU layout")
    L.append("")
    L.append("| what | where |")
    L.append("|---|---|")
    for k, v in meta.get("layout", {}).items():
        L.append(f"| {k} | {v} |")
    L.append("")
    L.append("## Results (clean runs: min / **median** / max)")
    L.append("")
    L.append("Forwarded = rx_packets delta on the ns2 veth; offered = tx_packets delta on "
             "the ns1 veth; peak 1 s = best 1-second forwarded rate in any clean run; switch CPU = utime+stime of the switch's processes per forwarded "
             "packet; core-1 busy = all non-idle time of the switch core per forwarded packet; "
             "softirq = softirq share of the switch core.")
    L.append("")
    L.append("| switch | frame B | clean/runs | forwarded Mpps | peak 1 s Mpps | offered Mpps | loss % "
             "| switch CPU ns/pkt | core-1 busy ns/pkt | core-1 softirq % | pmd cycles/pkt | foreign CPU % |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in summary["cells"]:
        L.append(
            f"| {c['switch']} | {c['size']} | {c['clean_runs']}/{c['runs']} "
            f"| {fmt_mmm(c['forwarded_mpps'])} | {fmt(c['sec_max_mpps'][2] if c['sec_max_mpps'] else None)} "
            f"| {fmt_mmm(c['offered_mpps'], bold=False)} "
            f"| {fmt_mmm(c['loss_pct'], 1, bold=False)} | {fmt_mmm(c['switch_cpu_ns_per_pkt'], 0, bold=False)} "
            f"| {fmt_mmm(c['core_busy_ns_per_pkt'], 0, bold=False)} | {fmt_mmm(c['core_softirq_pct'], 0, bold=False)} "
            f"| {fmt_mmm(c['pmd_cycles_per_pkt'], 0, bold=False)} | {fmt_mmm(c['foreign_cpu_pct'], 1, bold=False)} |")
    L.append("")
    if summary["ratios"]:
        L.append("## pyvswitch / anchor (median forwarded Mpps, same run)")
        L.append("")
        L.append("| frame B | anchor | pyvswitch Mpps | anchor Mpps | ratio | ratio, all windows |")
        L.append("|---|---|---|---|---|---|")
        for r in summary["ratios"]:
            L.append(f"| {r['size']} | {r['anchor']} | {fmt(r['pyvswitch_median_mpps'])} "
                     f"| {fmt(r['anchor_median_mpps'])} | {fmt(r['ratio'], 3)} "
                     f"| {fmt(r.get('ratio_all_windows'), 3)} |")
        L.append("")
    if any(c["runs"] > c["clean_runs"] for c in summary["cells"]):
        L.append("## All windows, including unclean ones (indicative only)")
        L.append("")
        L.append("Other processes used the CPU during the unclean windows; the switches "
                 "alternated, so all of them suffered, but not necessarily equally.")
        L.append("")
        L.append("| switch | frame B | windows | forwarded Mpps (all) | foreign CPU % (all) |")
        L.append("|---|---|---|---|---|")
        for c in summary["cells"]:
            L.append(f"| {c['switch']} | {c['size']} | {c['runs']} | {fmt_mmm(c.get('forwarded_mpps_all'))} "
                     f"| {fmt_mmm(c.get('foreign_cpu_pct_all'), 1, bold=False)} |")
        L.append("")
    if summary["errors"]:
        L.append("## Errors")
        L.append("")
        for sw, msgs in summary["errors"].items():
            for m in msgs:
                L.append(f"* {sw}: {m}")
        L.append("")
    notes = meta.get("notes") or []
    if notes:
        L.append("## Notes")
        L.append("")
        for n in notes:
            L.append(f"* {n}")
        L.append("")
    return "\n".join(L)
