"""The PVP harness's pure parts: testpmd stats parsing, window rates, summary."""

import pytest

from pyvswitch.tools.bench import pvp


def block(port, rx, pps, missed=0):
    return (f"  ######################## NIC statistics for port {port}  ########################\n"
            f"  RX-packets: {rx}    RX-missed: {missed}          RX-bytes:  {rx * 64}\n"
            "  RX-errors: 0\n  RX-nombuf:  0         \n"
            f"  TX-packets: {rx}    TX-errors: 0          TX-bytes:  {rx * 64}\n"
            "  Throughput (since last show)\n"
            f"  Rx-pps:       {pps}          Rx-bps:    {pps * 512}\n"
            f"  Tx-pps:       {pps}          Tx-bps:    {pps * 512}\n"
            "  ############################################################################\n")


def test_parse_and_rates_two_ports():
    text = ("testpmd> show port stats all\n" + block(0, 1000, 0) + block(1, 2000, 0)
            + block(0, 3_001_000, 3_000_000) + block(1, 1_002_000, 1_000_000)
            + block(0, 5_001_000, 2_000_000, missed=7) + block(1, 2_002_000, 1_000_000))
    b = pvp.parse_port_stats(text)
    assert sorted(b) == [0, 1] and len(b[0]) == 3 and b[0][2]["RX-missed"] == 7
    r = pvp.window_rates(b, 2.0)
    assert r["mpps_p0"] == pytest.approx(2.5) and r["mpps_p1"] == pytest.approx(1.0)
    assert r["mpps"] == pytest.approx(3.5) and r["rx_packets"] == 7_000_000
    assert r["sec_min_mpps"] == pytest.approx(3.0) and r["sec_max_mpps"] == pytest.approx(4.0)
    assert r["rx_missed_p0"] == 7


def test_rates_refuse_short_or_backwards_windows():
    with pytest.raises(ValueError):
        pvp.window_rates(pvp.parse_port_stats(block(0, 10, 0)), 1.0)
    with pytest.raises(ValueError):
        pvp.window_rates(pvp.parse_port_stats(block(0, 10, 0) + block(0, 5, 0)), 1.0)
    with pytest.raises(ValueError):
        pvp.window_rates(pvp.parse_port_stats(block(0, 1, 0) + block(0, 5, 0)), 0)


def test_summary_ratio_uses_clean_medians_only():
    recs = [{"type": "run", "switch": sw, "size": 64, "clean": c, "mpps": m}
            for sw, c, m in (("pyvswitch", True, 6.0), ("pyvswitch", True, 8.0), ("pyvswitch", False, 1.0),
                             ("ovs-dpdk", True, 10.0), ("ovs-dpdk", True, 12.0))]
    s = pvp.summarize(recs, ["pyvswitch", "ovs-dpdk"], [64])
    (r,) = s["ratios"]
    assert r["pyvswitch_mpps"] == 7.0 and r["ovs_dpdk_mpps"] == 11.0
    assert r["ratio"] == pytest.approx(7 / 11)
    md = pvp.render_markdown(s, {"command": "x", "date": "d", "raw_dir": "r", "machine": {}, "layout": {}})
    assert "| 64 | 7.000 | 11.000 | 0.636 |" in md


def test_args_quick_and_bad_switch():
    a = pvp.parse_args(["--quick", "--switch", "pyvswitch"])
    assert a.size_list == [64] and a.reps == 1 and a.switches == ["pyvswitch"]
    with pytest.raises(SystemExit):
        pvp.parse_args(["--switch", "pyvswitch,pyvswitch"])
