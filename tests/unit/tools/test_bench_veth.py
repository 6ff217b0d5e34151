"""Pure parts of the veth benchmark harness: no traffic, no root, no processes."""

import pytest

from pyvswitch.tools.bench import cpu, stats, veth

# ----------------------------------------------------------------- statistics


def test_mmm_odd_even_and_none():
    assert stats.mmm([3.0, 1.0, 2.0]) == (1.0, 2.0, 3.0)
    assert stats.mmm([4.0, 1.0, 2.0, 3.0]) == (1.0, 2.5, 4.0)
    assert stats.mmm([None, 5.0]) == (5.0, 5.0, 5.0)
    assert stats.mmm([]) is None
    assert stats.mmm([None]) is None


def test_ratio():
    assert stats.ratio(0.1, 0.4) == pytest.approx(0.25)
    assert stats.ratio(None, 1.0) is None
    assert stats.ratio(1.0, None) is None
    assert stats.ratio(1.0, 0) is None


def test_run_rates():
    r = stats.run_rates(64, 10.0, 1000, 6_001_000, 50, 2_000_050)
    assert r["tx_packets"] == 6_000_000
    assert r["rx_packets"] == 2_000_000
    assert r["offered_mpps"] == pytest.approx(0.6)
    assert r["forwarded_mpps"] == pytest.approx(0.2)
    assert r["loss_pct"] == pytest.approx(100 * 4 / 6)
    assert r["forwarded_gbps"] == pytest.approx(0.2 * 64 * 8 / 1000)


def test_run_rates_no_traffic_and_errors():
    assert stats.run_rates(64, 1.0, 5, 5, 7, 7)["loss_pct"] == 0.0
    with pytest.raises(ValueError):
        stats.run_rates(64, 0, 0, 1, 0, 1)
    with pytest.raises(ValueError):
        stats.run_rates(64, 1.0, 10, 5, 0, 1)


def test_ns_per_pkt_and_clean():
    assert stats.ns_per_pkt(0.5, 1_000_000) == pytest.approx(500.0)
    assert stats.ns_per_pkt(0.5, 0) is None
    assert stats.ns_per_pkt(None, 10) is None
    assert stats.is_clean(10.0, 10.0)
    assert not stats.is_clean(10.1, 10.0)
    assert not stats.is_clean(None, 10.0)


def test_schedule_alternates():
    assert stats.schedule(["a", "b", "c"], 2) == [
        (1, "a"), (1, "b"), (1, "c"), (2, "a"), (2, "b"), (2, "c")]


# ----------------------------------------------------------------- parsing

OVS_SYSTEM_PMD = """main thread:
  packets received: 1055386
  packet recirculations: 0
  avg. datapath passes per packet: 1.00
  simple match hits: 1055386
  emc hits: 0
  avg. packets per output batch: 31.22
"""

OVS_PMD = """pmd thread numa_id 0 core_id 1:
  packets received: 1000
  emc hits: 0
  idle cycles: 500 (2.00%)
  processing cycles: 4000000 (98.00%)
  avg cycles per packet: 4500.00 (4500000/1000)
  avg processing cycles per packet: 4000.00 (4000000/1000)
main thread:
  packets received: 3000
  avg processing cycles per packet: 2000.00 (6000000/3000)
"""


def test_parse_pmd_stats_system_ports_have_no_cycles():
    t = stats.parse_pmd_stats(OVS_SYSTEM_PMD)
    assert [x["thread"] for x in t] == ["main thread"]
    assert t[0]["stats"]["packets received"] == 1055386
    assert t[0]["stats"]["avg. packets per output batch"] == pytest.approx(31.22)
    assert stats.pmd_cycles_per_pkt(t) is None


def test_parse_pmd_stats_weighted_cycles():
    t = stats.parse_pmd_stats(OVS_PMD)
    assert t[0]["thread"] == "pmd thread numa_id 0 core_id 1"
    assert t[0]["stats"]["idle cycles"] == 500
    assert t[0]["stats"]["avg processing cycles per packet"] == 4000
    # (1000 * 4000 + 3000 * 2000) / 4000
    assert stats.pmd_cycles_per_pkt(t) == pytest.approx(2500.0)


def test_parse_pmd_stats_garbage():
    assert stats.parse_pmd_stats("") == []
    assert stats.parse_pmd_stats("ovs-appctl: cannot connect (No such file)\n") == []
    assert stats.pmd_cycles_per_pkt([]) is None


def test_parse_sizes_and_switches():
    assert stats.parse_sizes("64, 1514") == [64, 1514]
    with pytest.raises(ValueError):
        stats.parse_sizes("1518")      # above the veth MTU without FCS
    with pytest.raises(ValueError):
        stats.parse_sizes("")
    assert stats.parse_switches("ovs-system,pyvswitch") == ["ovs-system", "pyvswitch"]
    with pytest.raises(ValueError):
        stats.parse_switches("ovs-dpdk")
    with pytest.raises(ValueError):
        stats.parse_switches("pyvswitch,pyvswitch")


def test_proc_stat_line_with_spaces_and_parens_in_comm():
    line = "1234 (a (b) c) S 77 1234 1234 0 -1 4194560 1 0 0 0 150 50 7 3 20 0 1 0 5 0 0"
    assert cpu.parse_proc_stat_line(line) == ("a (b) c", 77, 200, 10)


def test_parse_cpu_lines():
    text = ("cpu  1 2 3 4 5 6 7 8 0 0\n"
            "cpu0 10 0 20 70 0 0 0 0 0 0\n"
            "cpu1 5 0 5 50 0 0 40 0 0 0\nintr 1 2\n")
    c = cpu.parse_cpu_lines(text)
    assert set(c) == {"cpu0", "cpu1"}
    assert c["cpu1"]["softirq"] == 40


# ----------------------------------------------------------------- cpu accounting


def _snap(t, procs, cpus):
    return {"t": t, "procs": procs, "cpus": cpus}


def _p(comm, ppid, ticks, cticks=0, kthread=False):
    return {"comm": comm, "ppid": ppid, "ticks": ticks, "cticks": cticks, "kthread": kthread}


def _cpu(user=0, system=0, idle=0, softirq=0):
    return {"user": user, "nice": 0, "system": system, "idle": idle, "iowait": 0,
            "irq": 0, "softirq": softirq, "steal": 0}


def test_foreign_direct_catches_what_procstat_hides():
    hz = cpu.HZ
    # 1 s window. bench (pid 10, child 11) used a full core, half of it softirq
    # ticks charged to it; a foreign process 20 used 40 %; kernel thread 30.
    a = _snap(0.0, {10: _p("bench", 1, 0), 11: _p("gen", 10, 0), 20: _p("other", 1, 0),
                    30: _p("ksoftirqd", 2, 0, kthread=True)},
              {"cpu0": _cpu(), "cpu1": _cpu()})
    b = _snap(1.0, {10: _p("bench", 1, 0), 11: _p("gen", 10, hz), 20: _p("other", 1, 0.4 * hz),
                    30: _p("ksoftirqd", 2, 0.1 * hz, kthread=True)},
              {"cpu0": _cpu(system=0.5 * hz, softirq=0.5 * hz), "cpu1": _cpu(user=0.5 * hz, idle=0.5 * hz)})
    f, top = cpu.foreign(a, b, [10])
    assert f == pytest.approx(40.0)
    assert top[0][1:] == (20, "other")


def test_foreign_counts_reaped_children_and_new_processes():
    hz = cpu.HZ
    a = _snap(0.0, {1: _p("init", 0, 0, 0), 10: _p("bench", 1, 0)}, {"cpu0": _cpu()})
    b = _snap(2.0, {1: _p("init", 0, 0, 0.2 * hz), 10: _p("bench", 1, 0), 42: _p("make", 1, 0.6 * hz)},
              {"cpu0": _cpu(user=0.8 * hz)})
    f, _ = cpu.foreign(a, b, [10])
    assert f == pytest.approx(40.0)    # (0.2 + 0.6) s over 2 s


def test_proc_seconds_and_core_split():
    hz = cpu.HZ
    a = _snap(0.0, {5: _p("sw", 1, 100), 6: _p("sw-child", 5, 0)}, {"cpu1": _cpu(idle=0)})
    b = _snap(1.0, {5: _p("sw", 1, 100 + hz), 6: _p("sw-child", 5, hz // 2)},
              {"cpu1": _cpu(system=hz // 4, softirq=hz // 4, idle=hz // 2)})
    assert cpu.proc_seconds(a, b, [5]) == pytest.approx(1.5, rel=0.02)
    s = cpu.core_split(a, b, 1)
    assert s["softirq_pct"] == pytest.approx(25.0, rel=0.02)
    assert s["idle_pct"] == pytest.approx(50.0, rel=0.02)
    assert s["busy_s"] == pytest.approx(0.5, rel=0.02)
    assert cpu.core_split(a, b, 7) is None


# ----------------------------------------------------------------- summary and table


def _run(sw, size, fwd, clean=True, **kw):
    r = {"type": "run", "switch": sw, "size": size, "forwarded_mpps": fwd, "offered_mpps": fwd * 2,
         "sec_max_mpps": fwd * 1.25,
         "loss_pct": 50.0, "switch_cpu_ns_per_pkt": 1000.0, "core_busy_ns_per_pkt": 1200.0,
         "core_softirq_pct": 10.0, "pmd_cycles_per_pkt": None, "foreign_cpu_pct": 1.0, "clean": clean}
    r.update(kw)
    return r


def test_summarize_medians_ratios_and_unclean_runs():
    recs = [{"type": "meta"},
            _run("pyvswitch", 64, 0.10), _run("pyvswitch", 64, 0.30), _run("pyvswitch", 64, 0.20),
            _run("pyvswitch", 64, 9.99, clean=False),
            _run("linux-bridge", 64, 0.60), _run("linux-bridge", 64, 0.80),
            _run("ovs-system", 64, 0.25),
            {"type": "error", "switch": "ovs-system", "message": "boom"},
            {"type": "error", "switch": "ovs-system", "message": "boom"}]
    s = stats.summarize(recs, ["pyvswitch", "linux-bridge", "ovs-system"], [64, 1514])
    cell = {(c["switch"], c["size"]): c for c in s["cells"]}
    assert cell[("pyvswitch", 64)]["forwarded_mpps"] == pytest.approx((0.1, 0.2, 0.3))
    assert cell[("pyvswitch", 64)]["runs"] == 4
    assert cell[("pyvswitch", 64)]["clean_runs"] == 3
    assert cell[("linux-bridge", 64)]["forwarded_mpps"][1] == pytest.approx(0.7)
    assert cell[("pyvswitch", 1514)]["forwarded_mpps"] is None
    assert cell[("pyvswitch", 64)]["pmd_cycles_per_pkt"] is None
    rat = {(r["size"], r["anchor"]): r["ratio"] for r in s["ratios"]}
    assert rat[(64, "linux-bridge")] == pytest.approx(0.2 / 0.7)
    assert rat[(64, "ovs-system")] == pytest.approx(0.8)
    assert rat[(1514, "ovs-system")] is None
    assert s["errors"] == {"ovs-system": ["boom"]}


def test_summarize_without_pyvswitch_has_no_ratios():
    s = stats.summarize([_run("linux-bridge", 64, 0.6)], ["linux-bridge"], [64])
    assert s["ratios"] == []


def test_render_markdown():
    recs = [_run("pyvswitch", 64, 0.2), _run("linux-bridge", 64, 0.6),
            {"type": "error", "switch": "pyvswitch", "message": "switch set-up: RuntimeError: no vsctl"}]
    s = stats.summarize(recs, ["pyvswitch", "linux-bridge"], [64])
    meta = {"command": "python -m pyvswitch.tools.bench.veth --quick", "date": "2026-11-21T10:00:00",
            "raw_dir": "bench/results/raw/x",
            "machine": {"nproc": 2, "CPU model": "Test CPU", "kernel": "6.18"},
            "layout": {"core 0": "generator", "core 1": "switch"}, "notes": ["a note"]}
    md = stats.render_markdown(s, meta)
    assert "`python -m pyvswitch.tools.bench.veth --quick`" in md
    assert "2026-11-21T10:00:00" in md
    assert "| nproc | 2 |" in md and "| CPU model | Test CPU |" in md and "| kernel | 6.18 |" in md
    assert "| core 1 | switch |" in md
    assert "| pyvswitch | 64 | 1/1 | 0.200 / **0.200** / 0.200 | 0.250 |" in md
    assert "| 64 | linux-bridge | 0.200 | 0.600 | 0.333 |" in md
    assert "* pyvswitch: switch set-up: RuntimeError: no vsctl" in md
    assert "* a note" in md
    # every table row has the same number of cells as its header
    rows = [l for l in md.splitlines() if l.startswith("| switch | frame")]
    assert len(rows) == 1
    ncols = rows[0].count("|")
    body = md.split(rows[0])[1].split("\n\n")[0].splitlines()[1:]
    assert body and all(l.count("|") == ncols for l in body)


# ----------------------------------------------------------------- command line


def test_defaults():
    a = veth.parse_args([])
    assert a.switches == ["pyvswitch", "linux-bridge", "ovs-system"]
    assert a.size_list == [64, 1514]
    assert (a.reps, a.duration, a.warmup, a.retries) == (3, 10.0, 3.0, 3)
    assert a.flows == "ports"
    assert (a.gen_cpu, a.switch_cpu) == (0, 1)
    assert (a.quiet_seconds, a.quiet_max_wait) == (3, 300.0)


def test_quick_and_explicit_override():
    a = veth.parse_args(["--quick"])
    assert (a.reps, a.duration, a.size_list, a.retries, a.quiet_seconds) == (1, 3.0, [64], 1, 1)
    b = veth.parse_args(["--quick", "--reps", "2", "--sizes", "64,1514"])
    assert b.reps == 2 and b.size_list == [64, 1514] and b.duration == 3.0


def test_switch_and_flows_options():
    a = veth.parse_args(["--switch", "linux-bridge,ovs-system", "--flows", "normal"])
    assert a.switches == ["linux-bridge", "ovs-system"] and a.flows == "normal"
    with pytest.raises(SystemExit):
        veth.parse_args(["--switch", "bogus"])
    with pytest.raises(SystemExit):
        veth.parse_args(["--flows", "learn"])
    with pytest.raises(SystemExit):
        veth.parse_args(["--reps", "0"])
    with pytest.raises(SystemExit):
        veth.parse_args(["--switch-cpu", "4096"])


def test_generator_command_pins_and_sizes():
    g = veth.Generator(0, "/dev/null")
    cmd = g.command(1514)
    assert cmd[:4] == ["ip", "netns", "exec", "pvb-ns1"]
    assert "--txpkts=1514" in cmd and "--forward-mode=txonly" in cmd
    assert cmd[cmd.index("--lcores") + 1] == "0@0,1@0"
    assert any(x.startswith("net_af_packet0,iface=pvbv1,") for x in cmd)


def test_foreign_ignores_pre_window_cpu_of_reaped_children():
    hz = cpu.HZ
    # a foreign shell reaps a test process that used 50 s before the window and
    # 0.5 s inside it: only the 0.5 s is foreign load
    a = _snap(0.0, {5: _p("bash", 1, 0, 0), 6: _p("pytest", 5, 50 * hz), 10: _p("bench", 1, 0)},
              {"cpu0": _cpu()})
    b = _snap(1.0, {5: _p("bash", 1, 0, 50.5 * hz), 10: _p("bench", 1, 0)}, {"cpu0": _cpu(user=0.5 * hz)})
    f, _ = cpu.foreign(a, b, [10])
    assert f == pytest.approx(50.0)


def test_foreign_ignores_pre_window_cpu_of_reaped_grandchildren():
    hz = cpu.HZ
    # bash -> sh -> python; python (40 s before the window) and sh both exit
    # inside a 1 s window in which python used 0.2 s more
    a = _snap(0.0, {5: _p("bash", 1, 0), 6: _p("sh", 5, 1), 7: _p("python", 6, 40 * hz),
                    10: _p("bench", 1, 0)}, {"cpu0": _cpu()})
    b = _snap(1.0, {5: _p("bash", 1, 0, 40.2 * hz + 1), 10: _p("bench", 1, 0)},
              {"cpu0": _cpu(user=0.2 * hz)})
    f, _ = cpu.foreign(a, b, [10])
    assert f == pytest.approx(20.0)


def test_per_second_mpps():
    assert stats.per_second_mpps([(0.0, 0), (1.0, 500_000), (2.0, 1_500_000)]) == pytest.approx([0.5, 1.0])
    assert stats.per_second_mpps([(0.0, 0)]) == []
    assert stats.per_second_mpps([(1.0, 0), (1.0, 5)]) == []


def test_all_windows_table_and_ratio_when_runs_are_unclean():
    recs = [_run("pyvswitch", 64, 1.0, clean=False), _run("pyvswitch", 64, 0.8, clean=False),
            _run("ovs-system", 64, 0.4, clean=False)]
    s = stats.summarize(recs, ["pyvswitch", "ovs-system"], [64])
    r = s["ratios"][0]
    assert r["ratio"] is None
    assert r["ratio_all_windows"] == pytest.approx(0.9 / 0.4)
    md = stats.render_markdown(s, {"command": "x", "machine": {}, "layout": {}})
    assert "## All windows, including unclean ones" in md
    assert "| pyvswitch | 64 | 2 | 0.800 / **0.900** / 1.000 |" in md
    assert "| 64 | ovs-system | - | - | - | 2.250 |" in md


def test_report_mode_needs_a_directory():
    with pytest.raises(SystemExit):
        veth.main(["--report"])


def test_generator_runs_reaped_by_the_harness_are_not_foreign():
    """rfc2544 starts one pvs-pktgen per trial: a child of the harness that
    is reaped inside the window. Its CPU (the harness's cutime growth) is the
    benchmark's own, not a foreign load (it was counted foreign: 98 %)."""
    hz = cpu.HZ
    a = _snap(0.0, {10: _p("bench", 1, 0)}, {"cpu0": _cpu()})
    b = _snap(5.0, {10: _p("bench", 1, 0, 4.9 * hz)}, {"cpu0": _cpu(user=4.9 * hz)})
    f, top = cpu.foreign(a, b, [10])
    assert f == pytest.approx(0.0, abs=0.5) and top == []
