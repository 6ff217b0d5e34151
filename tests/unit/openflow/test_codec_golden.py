"""What ovs-ofctl 3.1 really sends (golden/ofctl, captured by golden/capture.py):
every message decodes, re-encodes byte for byte, and is the expected kind."""

import glob
import os

import pytest

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.openflow.text import FlowMod, parse_flow

HERE = os.path.join(os.path.dirname(__file__), "golden", "ofctl")
FILES = sorted(glob.glob(os.path.join(HERE, "*.bin")))

# Message kinds per capture (sorted; hellos and barriers left out).
EXPECTED = {
    "of10_add-flow-goto": "FeaturesRequest FlowMod FlowModTableId TableStatsRequest",
    "of10_add-flow-ipv6": "FeaturesRequest FlowMod SetFlowFormat TableStatsRequest",
    "of10_add-flow-nx": "FeaturesRequest FlowMod SetFlowFormat TableStatsRequest",
    "of10_add-flow-rich": "FeaturesRequest FlowMod SetFlowFormat TableStatsRequest",
    "of10_add-flow-table": "FeaturesRequest FlowMod FlowModTableId TableStatsRequest",
    "of10_add-flow": "FeaturesRequest FlowMod TableStatsRequest",
    "of10_add-group-ff": "FeaturesRequest GroupMod TableStatsRequest",
    "of10_add-group": "FeaturesRequest GroupMod TableStatsRequest",
    "of10_del-flows-match": "FeaturesRequest FlowMod TableStatsRequest",
    "of10_del-flows": "FeaturesRequest FlowMod TableStatsRequest",
    "of10_dump-flows-cookie": "FeaturesRequest FlowStatsRequest SetFlowFormat TableStatsRequest",
    "of10_dump-flows-match": "FeaturesRequest FlowStatsRequest SetFlowFormat TableStatsRequest",
    "of10_dump-flows": "FlowStatsRequest SetFlowFormat",
    "of10_dump-groups": "GroupDescRequest",
    "of10_dump-ports": "PortStatsRequest",
    "of10_show-names": "FlowStatsRequest SetFlowFormat",
    "of10_show": "FeaturesRequest GetConfigRequest",
    "of13_add-flow-arp": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_add-flow-goto": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_add-flow-ipv6": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_add-flow-nx": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_add-flow-rich": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_add-flow-table": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_add-flow": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_add-group-ff": "GroupMod PortDescRequest TableFeaturesRequest",
    "of13_add-group": "GroupMod PortDescRequest TableFeaturesRequest",
    "of13_add-meter-dscp": "MeterMod",
    "of13_add-meter": "MeterMod",
    "of13_del-flows-match": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_del-flows": "FlowMod PortDescRequest TableFeaturesRequest",
    "of13_dump-flows-cookie": "FlowStatsRequest PortDescRequest TableFeaturesRequest",
    "of13_dump-flows-match": "FlowStatsRequest PortDescRequest TableFeaturesRequest",
    "of13_dump-flows": "FlowStatsRequest",
    "of13_dump-groups": "GroupDescRequest",
    "of13_dump-meters": "MeterConfigRequest",
    "of13_dump-ports": "PortStatsRequest",
    "of13_show-names": "FlowStatsRequest",
    "of13_show": "FeaturesRequest GetConfigRequest PortDescRequest",
}


def session(name):
    """[(version, xid, msg, raw)] of a capture, tracking NXT_FLOW_MOD_TABLE_ID."""
    with open(os.path.join(HERE, name + ".bin"), "rb") as f:
        data = f.read()
    out, ext = [], False
    for raw in wire.split(data):
        version, xid, msg = wire.decode(raw, flow_mod_table_id=ext)
        if isinstance(msg, M.FlowModTableId):
            ext = msg.enable
        out.append((version, xid, msg, raw))
    return out


def test_all_captures_listed():
    assert sorted(os.path.basename(f)[:-4] for f in FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_decodes_and_reencodes(name):
    msgs = session(name)
    kinds = sorted(type(m).__name__ for _, _, m, _ in msgs
                   if not isinstance(m, (M.Hello, M.BarrierRequest)))
    assert " ".join(kinds) == EXPECTED[name]
    for version, xid, msg, raw in msgs:
        assert version == (1 if name.startswith("of10") else 4)
        assert wire.encode(msg, version, xid) == raw


def only(name, cls):
    found = [m for _, _, m, _ in session(name) if isinstance(m, cls)]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("version", ["of10", "of13"])
def test_add_flow_matches_the_text(version):
    fm = only(f"{version}_add-flow", FlowMod)
    want = parse_flow("in_port=1,dl_vlan=10,priority=100,actions=output:2")
    assert fm.match.key_mask() == want.match.key_mask()
    assert (fm.priority, fm.actions, fm.table, fm.command) == (100, (A.Output(2),), 0, "add")


@pytest.mark.parametrize("version", ["of10", "of13"])
def test_add_flow_nicira_fields(version):
    fm = only(f"{version}_add-flow-nx", FlowMod)
    assert dict(fm.match.items()) == {"reg1": (5, 0xFFFFFFFF), "tun_id": (0x10, 2**64 - 1)}


def test_goto_table_in_openflow10_is_resubmit_and_table_id_extension():
    fm = only("of10_add-flow-goto", FlowMod)
    assert fm.table == 1 and fm.actions[-1] == A.Resubmit(F.OFPP_IN_PORT, 4)
    fm13 = only("of13_add-flow-goto", FlowMod)
    assert fm13.table == 1 and fm13.actions[-1] == A.GotoTable(4)


@pytest.mark.parametrize("version", ["of10", "of13"])
def test_del_flows_strict(version):
    fm = only(f"{version}_del-flows-match", FlowMod)
    assert (fm.command, fm.priority, fm.table) == ("delete_strict", 5, None)
    assert fm.match.key_mask() == parse_flow("udp,tp_src=53", "dump").match.key_mask()


@pytest.mark.parametrize("version", ["of10", "of13"])
def test_dump_flows_cookie(version):
    req = only(f"{version}_dump-flows-cookie", M.FlowStatsRequest)
    assert (req.cookie, req.cookie_mask) == (5, 2**64 - 1)
    assert req.nxm == (version == "of10")


@pytest.mark.parametrize("version", ["of10", "of13"])
def test_groups(version):
    g = only(f"{version}_add-group", M.GroupMod)
    assert (g.group_type, g.group_id) == ("select", 1)
    assert [(b.weight, b.actions) for b in g.buckets] == [
        (10, (A.Output(1),)), (20, (A.Output(2),))]
    ff = only(f"{version}_add-group-ff", M.GroupMod)
    assert [b.watch_port for b in ff.buckets] == [1, 2]


def test_meters():
    m = only("of13_add-meter", M.MeterMod)
    assert m == M.MeterMod("add", M.METER_KBPS | M.METER_BURST, 1,
                           (M.MeterBand("drop", 1000, 100),))
    d = only("of13_add-meter-dscp", M.MeterMod)
    assert d.bands == (M.MeterBand("dscp_remark", 50, 0, 1),)
