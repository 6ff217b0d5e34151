"""pvs-bench report: generated blocks of docs/BENCHMARKS.md from results JSON."""

import json
import os

from pyvswitch.tools.bench import report

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _pvp(mpps_py, mpps_ovs):
    cell = lambda sw, m: {"switch": sw, "size": 64, "runs": 3, "clean_runs": 3,  # noqa: E731
                          "mpps": [m - 0.1, m, m + 0.1], "gbps": [1, 2, 3],
                          "pmd_cycles_per_pkt": [400, 450, 500], "idle_switch_cpu_pct": [1, 1, 2]}
    return {"meta": {"command": "python -m pyvswitch.tools.bench.pvp --reps 3", "date": "2026-11-21T16:00:00"},
            "summary": {"cells": [cell("pyvswitch", mpps_py), cell("ovs-dpdk", mpps_ovs)],
                        "ratios": [{"size": 64, "ratio": mpps_py / mpps_ovs}]}}


def _doc(tmp_path, results):
    rd = tmp_path / "results"
    rd.mkdir()
    for name, data in results.items():
        (rd / f"{name}.json").write_text(json.dumps(data))
    doc = tmp_path / "B.md"
    doc.write_text("# B\n\nprose\n<!-- pvs-bench:pvp-latest -->\nold table\n<!-- /pvs-bench:pvp-latest -->\n"
                   "more prose\n")
    return doc, rd


def test_pvp_block_is_rendered_from_the_json(tmp_path):
    doc, rd = _doc(tmp_path, {"pvp-latest": _pvp(5.5, 11.0)})
    assert report.main(["--doc", str(doc), "--results", str(rd), "--check"]) == 1
    assert report.main(["--doc", str(doc), "--results", str(rd)]) == 0
    text = doc.read_text()
    assert "old table" not in text and text.startswith("# B\n\nprose\n") and text.endswith("more prose\n")
    assert "| **pyvswitch** | 64 | 3/3 | 5.400 / **5.500** / 5.600 | 2.00 | 450 | 1.0 % |" in text
    assert "| pyvswitch / OVS-DPDK | **0.500** |" in text
    assert "run 2026-11-21 16:00" in text
    assert report.main(["--doc", str(doc), "--results", str(rd), "--check"]) == 0


def test_new_results_make_the_block_stale(tmp_path):
    doc, rd = _doc(tmp_path, {"pvp-latest": _pvp(5.5, 11.0)})
    report.main(["--doc", str(doc), "--results", str(rd)])
    (rd / "pvp-latest.json").write_text(json.dumps(_pvp(6.0, 11.0)))
    assert report.main(["--doc", str(doc), "--results", str(rd), "--check"]) == 1


def test_renderer_by_name():
    assert report.renderer("pvp-firewall-latest") is report.render_pvp
    assert report.renderer("veth-latest") is report.render_veth
    assert report.renderer("conntrack-latest") is report.render_generic


def test_the_committed_benchmarks_doc_matches_the_committed_results():
    """docs/BENCHMARKS.md's tables are produced from bench/results (issue 8)."""
    with open(os.path.join(REPO, "docs", "BENCHMARKS.md")) as f:
        assert len(report.BLOCK.findall(f.read())) >= 5
    assert report.main(["--check"]) == 0


def test_rfc2544_block():
    cell = lambda sw, t: {"switch": sw, "size": 64, "runs": 1, "clean_runs": 1,  # noqa: E731
                          "throughput_pps": [t, t, t], "generator_pps": [2e6, 2e6, 2e6],
                          "generator_bound": False,
                          "latency_ns": {"50": {"avg": 3000, "p50": 2500, "p99": 9000, "max": 20000}},
                          "loss_curve": [{"percent": 50.0, "loss_pct": 0.0}, {"percent": 100.0, "loss_pct": 12.5}]}
    d = {"meta": {"command": "pvs-bench rfc2544 --scenario firewall", "date": "2026-11-21T19:00:00",
                  "loss": 0.0, "plots": ["rfc2544-firewall-throughput.png"]},
         "summary": {"cells": [cell("pyvswitch", 1e6), cell("ovs-dpdk", 2e6)],
                     "ratios": [{"size": 64, "ratio": 0.5}], "errors": {}}}
    assert report.renderer("rfc2544-firewall-latest") is report.render_rfc2544
    lines = report.render_rfc2544(d)
    assert "| **pyvswitch** | 64 | 1.000 | 0.51 | 2.000 | switch | 2.5 / 9.0 | - | 12.50 |" in lines
    assert "| pyvswitch / OVS-DPDK | **0.500** |" in lines
    assert lines[-1] == ("Plots: [rfc2544-firewall-throughput.png]"
                         "(../bench/results/rfc2544-firewall-throughput.png).")
