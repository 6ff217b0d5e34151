"""normal.py's VLAN rules as OVS's bundle_set/input_vid_is_valid/xvlan_*."""

from types import SimpleNamespace

import pytest

from pyvswitch.ofproto import normal as N

CFI = 0x1000


def port(mode=None, tag=None, trunks=(), priority_tags=None):
    return SimpleNamespace(name="p", ofport=1, vlan_mode=mode, tag=tag,
                           trunks=frozenset(trunks), priority_tags=priority_tags)


@pytest.mark.parametrize("p,carried,not_carried", [
    (port(tag=10), [10], [0, 20]),                                  # access
    (port(mode="access"), [0], [10]),                               # access, no tag: VLAN 0
    (port(trunks=[10, 20]), [10, 20], [0, 30]),                     # trunk
    (port(), [0, 1, 4095], []),                                     # trunk of everything
    (port(mode="trunk", tag=10, trunks=[20]), [20], [10, 0]),       # trunk ignores tag
    (port(mode="access", tag=10, trunks=[20]), [10], [20]),         # access ignores trunks
    (port(mode="native-untagged", tag=10), [10, 30], [0]),          # native: never VLAN 0
    (port(mode="native-tagged", tag=10, trunks=[20]), [10, 20], [0, 30]),
    (port(mode="native-tagged", tag=10, trunks=[0, 10]), [10], [0]),
    (port(mode="native-untagged"), [0, 5], []),                     # native VLAN 0
])
def test_includes_vlan(p, carried, not_carried):
    assert all(N.includes_vlan(p, v) for v in carried)
    assert not any(N.includes_vlan(p, v) for v in not_carried)


def test_input():
    assert N.input_vlan(port(tag=10), 0) == (10, None)
    assert N.input_vlan(port(tag=10), CFI | 5 << 13) == (10, None)     # priority-tagged
    assert N.input_vlan(port(tag=10), CFI | 10)[0] is None
    assert N.input_vlan(port(mode="native-tagged", tag=10, trunks=[20]), 0) == (10, None)
    assert N.input_vlan(port(mode="native-tagged", tag=10, trunks=[20]), CFI | 20) == (20, None)
    assert N.input_vlan(port(mode="native-untagged", tag=10), CFI | 10) == (10, None)
    assert "trunking VLAN 0" in N.input_vlan(port(trunks=[10]), 0)[1]


def test_output():
    assert N.output_tci(port(tag=10), 10, 5) == 0
    assert N.output_tci(port(tag=10, priority_tags="if-nonzero"), 10, 5) == CFI | 5 << 13
    assert N.output_tci(port(tag=10, priority_tags="if-nonzero"), 10, 0) == 0
    assert N.output_tci(port(), 10, 3) == CFI | 10 | 3 << 13
    assert N.output_tci(port(), 0, 0) == 0
    assert N.output_tci(port(), 0, 3) == CFI | 3 << 13                  # priority tag kept
    assert N.output_tci(port(mode="native-untagged", tag=10), 10, 3) == 0
    assert N.output_tci(port(mode="native-untagged", tag=10), 20, 0) == CFI | 20
    assert N.output_tci(port(mode="native-tagged", tag=10), 10, 0) == CFI | 10
