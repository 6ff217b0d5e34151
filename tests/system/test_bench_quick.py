"""`pvs-bench rfc2544 --quick` runs end to end on pyvswitch, so the harness
cannot rot (no performance figure is asserted: CI machines are shared)."""

import json
import os
import subprocess

import pytest

from pyvswitch.tools.lab import tool

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def test_rfc2544_quick_pyvswitch(tmp_path):
    r = subprocess.run([tool("pvs-bench"), "rfc2544", "--quick", "--switch", "pyvswitch",
                        "--quiet-max-wait", "5", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "rfc2544-p2p-latest.json").read_text())
    assert doc["summary"]["errors"] == {}, doc["summary"]["errors"]
    (cell,) = doc["summary"]["cells"]
    assert cell["switch"] == "pyvswitch" and cell["runs"] == 1
    gen = cell["generator_pps"][1]
    assert gen > 10_000                                  # the generator got frames through the switch
    assert [p["percent"] for p in cell["loss_curve"]] == [50.0, 100.0]
    assert "## Throughput" in (tmp_path / "rfc2544-p2p-latest.md").read_text()
