"""`pvs-bench conntrack --quick` runs end to end on pyvswitch, so the harness
cannot rot. No speed is asserted (CI machines are shared), only that every
part measured what it says: each new 5-tuple became a connection, the filled
table holds its entries, the security group's flows reached the bridge."""

import json
import os
import subprocess

import pytest

from pyvswitch.tools.lab import tool

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def test_conntrack_bench_quick_pyvswitch(tmp_path):
    r = subprocess.run([tool("pvs-bench"), "conntrack", "--quick", "--switch", "pyvswitch",
                        "--quiet-max-wait", "2", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "conntrack-rate-latest.json").read_text())["summary"]
    assert s["errors"] == [], s["errors"]
    (rate,) = s["rate"]
    assert rate["switch"] == "pyvswitch" and rate["batches"] == 2
    assert rate["sent"] == rate["committed"] == 2 * 2048        # one connection per new tuple
    assert rate["conns_per_s"][0] > 0 and rate["no_firewall_pps"] > 0
    mem = s["memory"]
    assert mem["entries"] == mem["capacity"] == 20000 and mem["refused"] == 0
    assert 200 < mem["array_bytes_per_entry"] < 400 and mem["rss_fill_bytes_per_entry"] > 100
    g = s["secgroup"]
    assert g["import"]["flows"] == g["compile"]["flows"] == g["reapply"]["flows"] > 12
    assert g["rule_add"]["flows"] > g["import"]["flows"]
    assert "0 added, 0 removed" in g["reapply"]["output"]
    assert "## One security group on 12 ports" in (tmp_path / "conntrack-secgroup-latest.md").read_text()
    assert "## Memory per conntrack entry" in (tmp_path / "conntrack-memory-latest.md").read_text()
