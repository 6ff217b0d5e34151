"""RFC 2544 harness: the search, the loss arithmetic, the report."""

import pytest

from pyvswitch.tools.bench import rfc2544 as R


def test_search_finds_the_knee_within_resolution():
    knee = 3.3e6
    tried = []

    def trial(rate):
        tried.append(rate)
        return 0.0 if rate <= knee else 1.5

    best, log = R.search(trial, 10e6, 8, 0.0)
    assert best <= knee and knee - best <= 10e6 / 2 ** 8
    assert tried[0] == 10e6 and len(tried) == 9 and [r for r, _ in log] == tried


def test_search_stops_when_the_top_rate_passes_and_honours_tolerance():
    assert R.search(lambda r: 0.0, 5e6, 8, 0.0) == (5e6, [(5e6, 0.0)])
    best, _ = R.search(lambda r: 0.4 if r > 1e6 else 0.0, 4e6, 6, 0.5)
    assert best == 4e6
    assert R.search(lambda r: 100.0, 4e6, 3, 0.0)[0] == 0.0


def test_loss_pct():
    assert R.loss_pct({"tx": 1000, "rx": 990}) == pytest.approx(1.0)
    assert R.loss_pct({"tx": 1000, "rx": 1001}) == 0.0          # duplicates are not negative loss
    assert R.loss_pct({"tx": 0, "rx": 0}) == 100.0              # nothing sent is a failed trial


def test_points_and_args():
    assert R.parse_points("10,50,100") == [10.0, 50.0, 100.0]
    with pytest.raises(ValueError):
        R.parse_points("0,50")
    a = R.parse_args(["--quick", "--switch", "pyvswitch"])
    assert a.size_list == [64] and a.trial == 1.0 and a.points == [50.0, 100.0]
    with pytest.raises(SystemExit):
        R.parse_args(["--loss", "100"])


def _rec(sw, size, thr, gen, clean=True):
    return {"type": "result", "switch": sw, "size": size, "throughput_pps": thr, "generator_pps": gen,
            "generator_bound": thr >= gen, "clean": clean,
            "latency_ns": {"10": {"avg": 2000, "p50": 1500, "p99": 9000, "max": 20000}},
            "loss_curve": [{"percent": 50.0, "offered_pps": gen / 2, "loss_pct": 0.0},
                           {"percent": 100.0, "offered_pps": gen, "loss_pct": 3.25}]}


def test_summary_and_markdown():
    recs = [_rec("pyvswitch", 64, 4e6, 5e6), _rec("ovs-dpdk", 64, 8e6, 8e6),
            {"type": "error", "switch": "ovs-dpdk", "message": "x"}]
    s = R.summarize(recs, ["pyvswitch", "ovs-dpdk"], [64])
    assert s["ratios"] == [{"size": 64, "ratio": 0.5}]
    md = R.render_markdown(s, {"scenario": "p2p", "command": "c", "date": "d", "raw_dir": "r",
                               "machine": {}, "loss": 0.0})
    assert "| pyvswitch | 64 | 4.000 | 2.05 | 5.000 | switch | 1 (1) |" in md
    assert "| ovs-dpdk | 64 | 8.000 | 4.10 | 8.000 | generator | 1 (1) |" in md
    assert "| pyvswitch | 64 | 2.0, 1.5, 9.0, 20.0 | - | - |" in md
    assert "| pyvswitch | 64 | 0.00 | 3.25 |" in md and "* ovs-dpdk: x" in md


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    s = R.summarize([_rec("pyvswitch", 64, 4e6, 5e6), _rec("pyvswitch", 1518, 1e6, 1e6)], ["pyvswitch"], [64, 1518])
    files = R.plot(s, str(tmp_path), "t")
    assert len(files) == 2 and all((tmp_path / f.split("/")[-1]).stat().st_size > 1000 for f in files)
