"""`pvs-bench tunnels --quick` end to end, so the scale harness cannot rot:
the flow sets install, NORMAL learns every MAC, and every sampled frame is
forwarded right (at quick scale the megaflow table never fills). No time or
memory figure is asserted: CI machines are shared."""

import json
import os
import subprocess

import pytest

from pyvswitch.tools.lab import tool

pytestmark = [pytest.mark.system, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def test_tunnels_quick(tmp_path):
    r = subprocess.run([tool("pvs-bench"), "tunnels", "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    doc = json.loads((tmp_path / "tunnels-latest.json").read_text())
    s = doc["summary"]
    assert s["learned_macs"] == doc["meta"]["macs"]
    assert {k: (c["ok"], c["total"]) for k, c in s["checks"].items()} == {
        k: (doc["meta"]["samples"],) * 2 for k in ("egress", "ingress", "learned")}
    assert "| forwarding check at that size | correct |" in (tmp_path / "tunnels-latest.md").read_text()
