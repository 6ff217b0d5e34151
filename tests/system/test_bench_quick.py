"""`pvs-bench rfc2544 --quick` runs end to end on pyvswitch in the p2p,
firewall and VXLAN scenarios, so the harness cannot rot (no performance figure is asserted: CI machines are shared)."""

import json
import os
import subprocess

import pytest

from pyvswitch.tools.lab import tool

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.mark.parametrize("scenario", ["p2p", "firewall", "vxlan"])
def test_rfc2544_quick_pyvswitch(tmp_path, scenario):
    r = subprocess.run([tool("pvs-bench"), "rfc2544", "--quick", "--switch", "pyvswitch",
                        "--scenario", scenario, "--quiet-max-wait", "5", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / f"rfc2544-{scenario}-latest.json").read_text())
    assert doc["summary"]["errors"] == {}, doc["summary"]["errors"]
    (cell,) = doc["summary"]["cells"]
    assert cell["switch"] == "pyvswitch" and cell["runs"] == 1
    gen = cell["generator_pps"][1]
    assert gen > 10_000                                  # the generator got frames through the switch
    assert [p["percent"] for p in cell["loss_curve"]] == [50.0, 100.0]
    md = (tmp_path / f"rfc2544-{scenario}-latest.md").read_text()
    assert "## Throughput" in md and "Scenario: " in md
