"""The dpif-netdev appctl texts: pmd-stats-show, pmd-stats-clear, pmd-rxq-show.

Counters are read without stopping the PMDs (int64 words, each exact, the set
slightly racy, as in OVS). "clear" records a baseline that show subtracts.
Control thread only.
"""

import numpy as np

from pyvswitch.datapath.kernels import state as S


def _delta(pmd):
    base = getattr(pmd, "stats_base", None)
    cur = pmd.p.stats.copy()
    return cur - base if base is not None else cur


def pmd_stats(dp):
    """{core: {name: int}} since the last clear."""
    out = {}
    for pmd in dp.pmds:
        d = _delta(pmd)
        out[pmd.core] = {
            "packets": int(d[S.S_PACKETS]), "emc_hits": int(d[S.S_EMC_HITS]),
            "megaflow_hits": int(d[S.S_MF_HITS]), "miss": int(d[S.S_MISS]),
            "upcall_ok": int(d[S.S_UPCALL_OK]), "upcall_fail": int(d[S.S_UPCALL_FAIL]),
            "lost": int(d[S.S_LOST]), "subtable_lookups": int(d[S.S_SUBTABLE_LOOKUPS]),
            "busy_cycles": int(d[S.S_BUSY_CYC]), "idle_cycles": int(d[S.S_IDLE_CYC]),
            "iterations": int(d[S.S_ITER]), "sleeps": int(d[S.S_SLEEPS]),
            "tx_batches": int(d[S.S_TX_BATCHES]), "tx_packets": int(d[S.S_TX_PACKETS]),
            "userspace": int(d[S.S_USERSPACE]), "recirculations": int(d[S.S_RECIRC]),
            "recirc_drops": int(d[S.S_RECIRC_DROP]), "split_copies": int(d[S.S_SPLIT_COPY])}
    return out


def pmd_stats_clear(dp):
    for pmd in dp.pmds:
        pmd.stats_base = pmd.p.stats.copy()
        pmd.rxq_base = pmd.p.rxq_cycles.copy()


def _avg(a, b):
    return a / b if b else 0.0


def pmd_stats_show(dp):
    lines = []
    for core, s in pmd_stats(dp).items():
        busy, idle, pk = s["busy_cycles"], s["idle_cycles"], s["packets"]
        tot = busy + idle
        lines += [
            f"pmd thread numa_id 0 core_id {core}:",
            f"  packets received: {pk}",
            f"  packet recirculations: {s['recirculations']}",
            f"  avg. datapath passes per packet: {_avg(pk + s['recirculations'], pk):.2f}",
            "  phwol hits: 0",
            "  mfex opt hits: 0",
            "  simple match hits: 0",
            f"  emc hits: {s['emc_hits']}",
            "  smc hits: 0",
            f"  megaflow hits: {s['megaflow_hits']}",
            f"  avg. subtable lookups per megaflow hit: "
            f"{_avg(s['subtable_lookups'], s['megaflow_hits']):.2f}",
            f"  miss with success upcall: {s['upcall_ok']}",
            f"  miss with failed upcall: {s['upcall_fail'] + s['lost']}",
            f"  avg. packets per output batch: {_avg(s['tx_packets'], s['tx_batches']):.2f}",
            f"  frames received by reference made whole: {s['split_copies']}",
            f"  idle cycles: {idle} ({100 * _avg(idle, tot):.2f}%)",
            f"  processing cycles: {busy} ({100 * _avg(busy, tot):.2f}%)",
            f"  avg cycles per packet: {_avg(tot, pk):.2f} ({tot}/{pk})",
            f"  avg processing cycles per packet: {_avg(busy, pk):.2f} ({busy}/{pk})",
        ]
    return "\n".join(lines) + "\n"


def rxq_show(dp):
    lines = []
    for pmd in dp.pmds:
        d = _delta(pmd)
        total = int(d[S.S_BUSY_CYC] + d[S.S_IDLE_CYC])
        base = getattr(pmd, "rxq_base", None)
        cyc = pmd.p.rxq_cycles - (base if base is not None else 0)
        lines += [f"pmd thread numa_id 0 core_id {pmd.core}:", "  isolated : false"]
        for j, (dp_port, name, q) in enumerate(pmd.rxqs):
            usage = int(100 * cyc[j] / total) if total > 0 else 0
            lines.append(f"  port: {name:<16} queue-id: {q:2d} (enabled)   pmd usage: {usage:2d} %")
        if not pmd.rxqs:
            lines.append("  (no rxqs)")
    return "\n".join(lines) + "\n"
