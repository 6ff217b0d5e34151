"""pvs-bench pmd-cycles runs the real datapath in process and prints a figure
for both flow sets (no figure is asserted: it depends on the machine)."""

import re

import pytest

from pyvswitch.tools.bench import cli, pmdcycles


@pytest.mark.parametrize("flows", ["ports", "vxlan"])
def test_prints_cycles_per_packet(flows, capsys):
    assert cli.main(["pmd-cycles", "--flows", flows, "--reps", "6"]) == 0
    out = capsys.readouterr().out
    m = re.search(rf"flows {flows}, 60 B, guest on cpu 0: PMD cycles/pkt median ([0-9.]+) "
                  r"\(p25 [0-9.]+, p75 [0-9.]+, (\d) of 6 repetitions\)", out)
    assert m, out
    assert float(m.group(1)) > 0 and int(m.group(2)) >= 3


def test_refuses_a_bad_size():
    with pytest.raises(SystemExit):
        pmdcycles.main(["--size", "20"])


def test_frame_is_udp_of_the_size_asked():
    f = pmdcycles.udp_frame(128)
    assert len(f) == 128 and f[12:14] == b"\x08\x00" and f[23] == 17
