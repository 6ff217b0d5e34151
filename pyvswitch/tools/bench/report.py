"""pvs-bench report: the tables of docs/BENCHMARKS.md, produced from the latest results.

    pvs-bench report [--check] [--doc docs/BENCHMARKS.md] [--results bench/results]

The document is hand-written prose around generated blocks:

    <!-- pvs-bench:pvp-latest -->
    (replaced by the tables rendered from bench/results/pvp-latest.json)
    <!-- /pvs-bench:pvp-latest -->

Each block names a results file; its renderer is chosen by the file's kind
(RENDERERS, by name prefix). `report` rewrites every block in place; with
--check it only says which blocks differ and exits 1 if any does (the test
suite runs it, so the document cannot drift from the results it cites).
"""

import argparse
import json
import os
import re
import sys

from . import stats

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BLOCK = re.compile(r"(<!-- pvs-bench:([\w.-]+) -->\n)(.*?)(<!-- /pvs-bench:\2 -->)", re.S)
NAMES = {"pyvswitch": "**pyvswitch**", "ovs-dpdk": "OVS-DPDK", "ovs-system": "OVS `type=system`",
         "linux-bridge": "Linux bridge", "ovs": "Open vSwitch"}


def _f(v, nd=3):
    """nd decimals; whole numbers (nd=0) with thousands separators."""
    if v is None:
        return "-"
    return f"{v:,.0f}" if nd == 0 else stats.fmt(v, nd)


def _mmm(v, nd=3):
    """min / **median** / max of a [min, median, max] triple."""
    if not v:
        return "-"
    return f"{_f(v[0], nd)} / **{_f(v[1], nd)}** / {_f(v[2], nd)}"


def _med(v, nd=0):
    return _f(v[1], nd) if v else "-"


def _when(meta):
    return f"Command: `{meta.get('command', '?')}`, run {str(meta.get('date', '?'))[:16].replace('T', ' ')}."


def render_pvp(d):
    """pvp-latest, pvp-firewall-latest, pvp-vxlan-latest (tools/bench/pvp.py)."""
    s = d["summary"]
    out = [_when(d["meta"]), "",
           "| switch | frame B | clean runs | forwarded Mpps | Gbps | PMD cycles/pkt | PMD CPU with silent guests |",
           "|---|---|---|---|---|---|---|"]
    for c in s["cells"]:
        idle = c.get("idle_switch_cpu_pct")
        out.append(f"| {NAMES.get(c['switch'], c['switch'])} | {c['size']} | {c['clean_runs']}/{c['runs']} "
                   f"| {_mmm(c.get('mpps'))} | {_med(c.get('gbps'), 2)} | {_med(c.get('pmd_cycles_per_pkt'))} "
                   f"| {_med(idle, 1) + ' %' if idle else '-'} |")
    if s.get("ratios"):
        out += ["", "| ratio of medians (same run) | " + " | ".join(f"{r['size']} B" for r in s["ratios"]) + " |",
                "|---|" + "---|" * len(s["ratios"]),
                "| pyvswitch / OVS-DPDK | " + " | ".join(f"**{_f(r['ratio'])}**" for r in s["ratios"]) + " |"]
    return out


def render_veth(d):
    """veth-latest (tools/bench/veth.py): kernel interfaces, three switches."""
    s = d["summary"]
    out = [_when(d["meta"]), "",
           "| switch | frame B | clean runs | forwarded Mpps | offered Mpps | loss % | PMD cycles/pkt |",
           "|---|---|---|---|---|---|---|"]
    for c in s["cells"]:
        out.append(f"| {NAMES.get(c['switch'], c['switch'])} | {c['size']} | {c['clean_runs']}/{c['runs']} "
                   f"| {_mmm(c.get('forwarded_mpps'))} | {_med(c.get('offered_mpps'), 3)} "
                   f"| {_med(c.get('loss_pct'), 1)} | {_med(c.get('pmd_cycles_per_pkt'))} |")
    if s.get("ratios"):
        out += ["", "| ratio of medians (same run) | frame B | ratio |", "|---|---|---|"]
        out += [f"| pyvswitch / {NAMES.get(r['anchor'], r['anchor'])} | {r['size']} | **{_f(r['ratio'], 2)}** |"
                for r in s["ratios"]]
    return out


def render_flows(d):
    """flows-latest (tools/bench/flows.py): flow-table install and upcalls."""
    out = [_when(d["meta"]), "",
           "| switch | rules | add-flows s | rules/s | bytes/rule (RSS) | del-flows s |",
           "|---|---|---|---|---|---|"]
    for r in d["install"]:
        out.append(f"| {NAMES.get(r['switch'], r['switch'])} | {r['rules']:,} | {_f(r.get('add_s'), 2)} "
                   f"| {r.get('rules_per_s', '-'):,} | {r.get('bytes_per_rule') or '-'} | {_f(r.get('del_s'), 2)} |")
    up = d.get("upcalls") or {}
    if up.get("upcalls_per_s") is not None:
        out += ["", f"Upcalls: {up['upcalls_per_s']:,} new megaflows/s ({up.get('flows', '?'):,} flows offered "
                    f"over {up.get('seconds', '?')} s)."]
    return out


def render_openflow(d):
    """openflow-latest (tools/bench/openflow.py): flow-mods and packet-ins on the wire."""
    s = d["summary"]
    py, ovs = s.get("pyvswitch", {}), s.get("ovs", {})
    fm = lambda x: (x.get("flow_mods_per_s") or {}).get("median")  # noqa: E731
    out = [_when(d["meta"]), "", "| | pyvswitch | Open vSwitch | ratio |", "|---|---|---|---|",
           f"| flow-mods/s | {_f(fm(py), 0)} | {_f(fm(ovs), 0)} | {_f(stats.ratio(fm(py), fm(ovs)))} |"]
    for a, b in zip(py.get("packet_ins", []), ovs.get("packet_ins", [])):
        asked = f"{a['rate_asked']:,} pps offered" if a["rate_asked"] else "generator flat out"
        pa, pb = a["packet_ins_per_s_median"], b["packet_ins_per_s_median"]
        out.append(f"| packet-ins/s, {asked} | {_f(pa, 0)} | {_f(pb, 0)} | {_f(stats.ratio(pa, pb))} |")
    return out


def _lat(c, level):
    """'p50 / p99' µs at a share of the throughput, from an rfc2544 cell."""
    x = (c.get("latency_ns") or {}).get(str(level))
    return f"{x['p50'] / 1e3:.1f} / {x['p99'] / 1e3:.1f}" if x else "-"


def render_rfc2544(d):
    """rfc2544-<scenario>-latest (tools/bench/rfc2544.py): zero-loss throughput,
    latency and loss at the generator's top rate."""
    s, meta = d["summary"], d["meta"]
    out = [_when(meta), "",
           f"| switch | frame B | throughput Mpps (loss <= {meta.get('loss', 0):g} %) | Gbps | generator Mpps "
           "| bound by | latency µs p50 / p99 at 50 % | at 90 % | loss % at the generator's top rate |",
           "|---|---|---|---|---|---|---|---|---|"]
    for c in s["cells"]:
        t = c["throughput_pps"][1] if c["throughput_pps"] else None
        g = c["generator_pps"][1] if c["generator_pps"] else None
        top = next((p["loss_pct"] for p in c.get("loss_curve") or [] if p["percent"] == 100), None)
        out.append(f"| {NAMES.get(c['switch'], c['switch'])} | {c['size']} "
                   f"| {_f(t / 1e6 if t is not None else None)} "
                   f"| {_f(t * c['size'] * 8 / 1e9 if t is not None else None, 2)} "
                   f"| {_f(g / 1e6 if g else None)} | {'generator' if c['generator_bound'] else 'switch'} "
                   f"| {_lat(c, 50)} | {_lat(c, 90)} | {_f(top, 2)} |")
    if s.get("ratios"):
        out += ["", "| ratio of throughputs (same run) | " + " | ".join(f"{r['size']} B" for r in s["ratios"])
                + " |", "|---|" + "---|" * len(s["ratios"]),
                "| pyvswitch / OVS-DPDK | " + " | ".join(f"**{_f(r['ratio'])}**" for r in s["ratios"]) + " |"]
    if meta.get("plots"):
        out += ["", "Plots: " + ", ".join(f"[{os.path.basename(p)}](../bench/results/{p})"
                                          for p in meta["plots"]) + "."]
    return out


def render_tunnels(d):
    """tunnels-latest (tools/bench/tnl_scale.py): one host at tunnel scale."""
    from .tnl_scale import render
    lines = render(d).rstrip("\n").splitlines()
    return [_when(d["meta"]), ""] + lines[lines.index("| step | seconds | daemon RSS after |"):]


def render_generic(d):
    """Any other results file: its summary as a two-column table of scalars."""
    out = [_when(d.get("meta", {})), "", "| figure | value |", "|---|---|"]

    def walk(x, path):
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(x, (int, float, str)) and not isinstance(x, bool):
            out.append(f"| {path} | {_f(x) if isinstance(x, float) else x} |")
    walk(d.get("summary", {}), "")
    return out


RENDERERS = (("pvp", render_pvp), ("veth", render_veth), ("flows", render_flows),
             ("openflow", render_openflow), ("rfc2544", render_rfc2544), ("tunnels", render_tunnels))


def renderer(name):
    for prefix, fn in RENDERERS:
        if name == f"{prefix}-latest" or name.startswith(f"{prefix}-") and name.endswith("-latest"):
            return fn
    return render_generic


def render_block(name, results_dir):
    path = os.path.join(results_dir, f"{name}.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"pvs-bench report: block {name}: cannot read {path}: {e}")
    return "\n".join(renderer(name)(data)) + "\n"


def regenerate(text, results_dir):
    """(new text, names of the blocks that changed)."""
    changed = []

    def sub(m):
        body = render_block(m.group(2), results_dir)
        if body != m.group(3):
            changed.append(m.group(2))
        return m.group(1) + body + m.group(4)
    return BLOCK.sub(sub, text), changed


def main(argv=None):
    p = argparse.ArgumentParser(prog="pvs-bench report",
                                description="Regenerate the result tables of docs/BENCHMARKS.md.")
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "BENCHMARKS.md"))
    p.add_argument("--results", default=os.path.join(REPO, "bench", "results"))
    p.add_argument("--check", action="store_true", help="exit 1 if a block is out of date; write nothing")
    a = p.parse_args(argv)
    with open(a.doc) as f:
        text = f.read()
    new, changed = regenerate(text, a.results)
    blocks = len(BLOCK.findall(text))
    if a.check:
        for name in changed:
            print(f"{a.doc}: block {name} is out of date (pvs-bench report rewrites it)")
        print(f"{blocks - len(changed)}/{blocks} blocks up to date")
        return 1 if changed else 0
    if changed:
        with open(a.doc, "w") as f:
            f.write(new)
    print(f"{len(changed)} of {blocks} blocks rewritten: {', '.join(changed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
