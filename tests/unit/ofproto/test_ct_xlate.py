"""ct() in translation: fork to the tracker, resume at table N on the recirculated pass."""

import pytest

from pyvswitch.conntrack.table import CS_EST, CS_NEW, CS_RPL, CS_TRK
from pyvswitch.datapath import layout
from pyvswitch.ofproto import recirc as RC
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.trace import trace
from pyvswitch.ofproto.xlate import xlate

MAC1, MAC2 = 0x0A0000000001, 0x0A0000000002


@pytest.fixture
def fw():
    """A stateful firewall: p1 may open connections to p2; p2 only answers."""
    o = Ofproto("br0")
    for i in (1, 2):
        o.add_port(f"p{i}", dp_port=10 + i)
    o.del_flows("")
    o.add_flow("table=0,priority=10,ip,actions=ct(table=1,zone=5)")
    o.add_flow("table=0,priority=0,actions=drop")
    o.add_flow("table=1,priority=10,ct_state=+trk+new,ip,in_port=1,"
               "actions=ct(commit,zone=5,exec(set_field:0x2a->ct_mark)),output:2")
    o.add_flow("table=1,priority=10,ct_state=+trk+est,ip,in_port=1,actions=output:2")
    o.add_flow("table=1,priority=10,ct_state=+trk+est,ip,in_port=2,actions=output:1")
    o.add_flow("table=1,priority=0,actions=drop")
    return o


def pkt(dp, **kw):
    d = {"in_port": dp, "dl_src": MAC1, "dl_dst": MAC2, "dl_type": 0x0800, "nw_proto": 6,
         "nw_src": 0x0A000001, "nw_dst": 0x0A000002, "tp_src": 1000, "tp_dst": 80}
    d.update(kw)
    return d


def test_first_pass_forks_to_the_tracker(fw):
    r = xlate(fw, pkt(11), 0.0)
    ((name, inner),) = r.actions
    assert name == "clone" and inner[0] == ("ct", 5, False, None, None) and inner[1][0] == "recirc"
    rid = inner[1][1]
    state = RC.thaw(rid)
    assert state.table == 1 and state.in_port == 1 and state.ofp is fw
    assert layout.mask_fields(r.mask)["recirc_id"] == 0xFFFFFFFF
    # the same state from another packet of the flow reuses the id
    assert xlate(fw, pkt(11, tp_src=1001), 0.0).actions[0][1][1][1] == rid


def test_resumed_pass_matches_ct_state(fw):
    rid = xlate(fw, pkt(11), 0.0).actions[0][1][1][1]
    new = xlate(fw, pkt(11, recirc_id=rid, ct_state=CS_TRK | CS_NEW, ct_zone=5), 0.0)
    assert new.actions == [("ct", 5, True, (0x2a, 0xFFFFFFFF), None), ("output", 12)]
    assert layout.mask_fields(new.mask)["ct_state"] & (CS_TRK | CS_NEW) == CS_TRK | CS_NEW
    rid2 = xlate(fw, pkt(12), 0.0).actions[0][1][1][1]
    assert rid2 != rid                                  # in_port is part of the frozen state
    est = xlate(fw, pkt(12, recirc_id=rid2, ct_state=CS_TRK | CS_EST | CS_RPL, ct_zone=5), 0.0)
    assert est.actions == [("output", 11)]
    rogue = xlate(fw, pkt(12, recirc_id=rid2, ct_state=CS_TRK | CS_NEW, ct_zone=5), 0.0)
    assert rogue.actions == []


def test_unknown_recirc_id_drops(fw):
    r = xlate(fw, pkt(11, recirc_id=0xFFFF0000), 0.0)
    assert r.actions == [] and "unknown recirc_id" in r.error


def test_trace_shows_the_fork_and_the_resume(fw):
    text = trace(fw, layout.pack_key(pkt(11)), 0.0)
    assert "ct(table=1,zone=5)" in text and "resumed at table 1" in text
    rid = xlate(fw, pkt(11), 0.0).actions[0][1][1][1]
    text = trace(fw, layout.pack_key(pkt(11, recirc_id=rid, ct_state=CS_TRK | CS_NEW, ct_zone=5)), 0.0)
    assert "Flow: recirc_id=" in text and "ct_state=new|trk,ct_zone=5," in text
    assert "    thaw\n        Resuming from table 1\n" in text
    assert "Datapath actions: ct(commit,zone=5,mark=0x2a/0xffffffff),12" in text
