"""ofproto/trace --ct-next: the trace follows ct() recirculations with chosen states."""

import pytest

from pyvswitch.datapath import layout
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.trace import (CT_STATE_BITS, DEFAULT_CT_NEXT, forks, format_ct_state,
                                     parse_ct_state, trace)
from pyvswitch.ofproto.xlate import get, to_words
from pyvswitch.vswitchd.commands import _trace_args
from pyvswitch.vswitchd.unixctl import CommandError

TRK, NEW, EST, RPL, INV = (CT_STATE_BITS[n] for n in ("trk", "new", "est", "rpl", "inv"))
BANNER = "=" * 79


def bridge(*flows):
    o = Ofproto("br0")
    for i in (1, 2):
        o.add_port(f"p{i}", dp_port=10 + i)
    o.del_flows("")
    for f in flows:
        o.add_flow(f)
    return o


@pytest.fixture
def two_zones():
    """Two ct() passes in a row: zone 5 then zone 6; only est|trk in zone 6 goes out."""
    return bridge("table=0,priority=10,ip,actions=ct(table=1,zone=5)",
                  "table=1,priority=10,ct_state=+trk+new,ip,actions=ct(commit,zone=5),ct(table=2,zone=6)",
                  "table=1,priority=10,ct_state=+trk+est,ip,actions=ct(table=2,zone=6)",
                  "table=2,priority=10,ct_state=+trk+est,ip,actions=output:2",
                  "table=2,priority=0,actions=drop")


def key(**kw):
    d = {"in_port": 11, "dl_src": 0x0A0000000001, "dl_dst": 0x0A0000000002, "dl_type": 0x0800,
         "nw_proto": 6, "nw_src": 0x0A000001, "nw_dst": 0x0A000002, "tp_src": 1000, "tp_dst": 80}
    d.update(kw)
    return layout.pack_key(d)


def passes(text):
    """The trace cut into passes: [(banner header or None, body)]."""
    chunks = text.split(BANNER + "\n")
    out = [(None, chunks[0])]
    for i in range(1, len(chunks) - 1, 2):
        out.append((chunks[i].strip(), chunks[i + 1].lstrip("\n")))
    return out


def dp_actions(body):
    return next(l for l in body.splitlines() if l.startswith("Datapath actions: ")).split(": ", 1)[1]


@pytest.mark.parametrize("text", ["trk,est", "+trk+est", "trk|est", "est,trk", " trk, est "])
def test_parse_ct_state_takes_ovs_forms(text):
    assert parse_ct_state(text) == TRK | EST


@pytest.mark.parametrize("text, why", [
    ("est", '"trk" is unset'), ("trk,new,est", "mutually exclusive"),
    ("trk,new,rpl", "mutually exclusive"), ("trk,inv,est", '"inv" is set'),
    ("trk,bogus", "unknown connection tracking state flag"), ("+trk-new", "flags to set"),
    ("", "flags to set")])
def test_parse_ct_state_refuses_what_the_tracker_never_gives(text, why):
    with pytest.raises(ValueError, match=why):
        parse_ct_state(text)


def test_format_ct_state_is_ovs_order():
    assert format_ct_state(TRK | EST | RPL) == "est|rpl|trk" and format_ct_state(0) == "0"
    assert format_ct_state(DEFAULT_CT_NEXT) == "new|trk"


def test_without_ct_next_only_the_first_pass(two_zones):
    text = trace(two_zones, key(), 0.0)
    assert BANNER not in text and "resumed at table 1" in text
    assert dp_actions(text).startswith("clone(ct(zone=5),recirc(")


def test_each_recirculation_takes_the_next_state(two_zones):
    text = trace(two_zones, key(), 0.0, ct_next=[TRK | NEW, TRK | EST])
    (_, first), (h1, p1), (h2, p2) = passes(text)
    assert h1.endswith("resume conntrack with ct_state=new|trk") and h1.startswith("recirc(0x")
    assert "Flow: recirc_id=0x" in p1 and "ct_state=new|trk,ct_zone=5," in p1
    assert "    thaw\n        Resuming from table 1\n" in p1
    assert dp_actions(p1).startswith("ct(commit,zone=5),clone(ct(zone=6),recirc(")
    assert h2.endswith("resume conntrack with ct_state=est|trk")
    assert "ct_state=est|trk,ct_zone=6," in p2 and "Resuming from table 2" in p2
    assert dp_actions(p2) == "12"


def test_the_state_decides_the_resumed_pass(two_zones):
    text = trace(two_zones, key(), 0.0, ct_next=[TRK | EST, TRK | NEW])
    *_, (h2, p2) = passes(text)
    assert "ct_state=new|trk" in h2 and dp_actions(p2) == "drop"


def test_states_used_up_fall_back_to_ovs_default(two_zones):
    text = trace(two_zones, key(), 0.0, ct_next=[TRK | EST])
    (_, _), (h1, _), (h2, p2) = passes(text)
    assert h1.endswith("ct_state=est|trk")
    assert h2.endswith("resume conntrack with default ct_state=trk|new (use --ct-next to customize)")
    assert dp_actions(p2) == "drop"


def test_the_resumed_packet_has_the_rewrites_before_the_fork():
    o = bridge("table=0,priority=10,ip,actions=mod_nw_dst:10.0.0.9,mod_vlan_vid:7,ct(table=1,zone=3)",
               "table=1,priority=10,ct_state=+trk,ip,nw_dst=10.0.0.9,dl_vlan=7,actions=output:2")
    text = trace(o, key(), 0.0, ct_next=[TRK | NEW])
    (_, first), (_, resumed) = passes(text)
    assert "nw_dst=10.0.0.9" in resumed.splitlines()[0] and "vlan_tci=0x1007" in resumed.splitlines()[0]
    assert dp_actions(resumed) == "12"


def test_forks_walks_clones_in_datapath_order():
    words = to_words(key())
    acts = [("set", "ipv4_dst", 0x0A000009, 0xFFFFFFFF),
            ("clone", [("ct", 4, False, None, None), ("recirc", 7)]),
            ("push_vlan", 5), ("ct", 9, True, None, None), ("recirc", 8), ("output", 12)]
    (r1, z1, k1), (r2, z2, k2) = forks(words, acts)
    assert (r1, z1, r2, z2) == (7, 4, 8, 9)
    assert get(k1, "nw_dst") == 0x0A000009 and not get(k1, "vlan_tci")
    assert get(k2, "vlan_tci") == 5 | layout.VLAN_CFI
    assert get(words, "nw_dst") == 0x0A000002            # the caller's key is untouched


def test_a_recirculation_loop_stops_at_the_datapath_depth():
    o = bridge("table=0,priority=10,ip,actions=ct(table=0,zone=1)")
    text = trace(o, key(), 0.0, ct_next=[])
    banners = [h for h, _ in passes(text)[1:]]
    assert len(banners) == layout.MAX_RECIRC_DEPTH + 1
    assert "Stopping the trace here" in banners[-1]


def test_appctl_arguments_take_options_anywhere():
    assert _trace_args(["br0", "in_port=1", "--ct-next", "trk,est", "--ct-next", "+trk+new"]) == \
        ("br0", "in_port=1", (), [TRK | EST, TRK | NEW])
    assert _trace_args(["--ct-next", "trk", "br0", "in_port=1", "00ff"]) == ("br0", "in_port=1", ("00ff",), [TRK])
    assert _trace_args(["br0", "in_port=1"])[3] is None
    for bad, msg in ((["br0", "in_port=1", "--ct-next"], "Missing argument"),
                     (["br0", "in_port=1", "--generate"], "unknown option"),
                     (["br0", "in_port=1", "--ct-next", "new"], "invalid connection state"),
                     (["br0"], "bridge flow")):
        with pytest.raises(CommandError, match=msg):
            _trace_args(bad)
