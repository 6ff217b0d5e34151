"""ovs-ofctl flow syntax: parsing, formatting, round trips, errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.match import Match, format_match
from pyvswitch.openflow.text import (FlowMod, FlowParseError, format_flow,
                                     format_flow_stats, parse_actions,
                                     parse_flow)


def test_basic_flow():
    fm = parse_flow("in_port=1,dl_vlan=10,priority=100,actions=output:2")
    assert fm.priority == 100
    assert fm.match.get("in_port") == (1, 0xFFFF)
    assert fm.actions == (A.Output(2),)
    assert fm.table == 0 and fm.cookie == 0
    assert format_flow(fm) == "priority=100,in_port=1,dl_vlan=10,actions=output:2"


def test_default_flow_and_spaces():
    fm = parse_flow("table=0, priority=0 actions=NORMAL")
    assert fm.actions == (A.Output(F.OFPP_NORMAL),)
    assert format_flow(fm) == "priority=0,actions=NORMAL"


@pytest.mark.parametrize("text,expect", [
    ("drop", ()),
    ("", ()),
    ("normal", (A.Output(F.OFPP_NORMAL),)),
    ("FLOOD,all", (A.Output(F.OFPP_FLOOD), A.Output(F.OFPP_ALL))),
    ("local,in_port", (A.Output(F.OFPP_LOCAL), A.Output(F.OFPP_IN_PORT))),
    ("2,output:3", (A.Output(2), A.Output(3))),
    ("mod_vlan_vid:10,strip_vlan", (A.SetVlanVid(10), A.StripVlan())),
    ("push_vlan:0x8100,pop_vlan", (A.PushVlan(0x8100), A.StripVlan(True))),
    ("resubmit(,3),resubmit:4", (A.Resubmit(F.OFPP_IN_PORT, 3), A.Resubmit(4))),
    ("resubmit(5,1)", (A.Resubmit(5, 1),)),
    ("controller", (A.Controller(),)),
    ("controller(max_len=128)", (A.Controller(128),)),
    ("output:1,goto_table:2", (A.Output(1), A.GotoTable(2))),
])
def test_actions(text, expect):
    assert parse_actions(text) == expect
    again = parse_actions(A.format_actions(expect))
    assert again == expect


def test_named_ports():
    names = {"p1": 1, "p2": 2}
    fm = parse_flow("in_port=p1,actions=output:p2,p1", resolver=names.get)
    assert fm.match.get("in_port")[0] == 1
    assert fm.actions == (A.Output(2), A.Output(1))
    with pytest.raises(FlowParseError, match="unknown port for output"):
        parse_flow("actions=output:p9", resolver=names.get)


def test_shorthands_and_canonical_form():
    a = parse_flow("dl_type=0x0800,nw_proto=6,tp_dst=80,actions=drop")
    b = parse_flow("tcp,tcp_dst=80,actions=drop")
    assert a == b
    assert format_flow(a) == "tcp,tp_dst=80,actions=drop"
    assert format_match(parse_flow("icmp6,actions=drop").match) == "icmp6"
    assert format_match(parse_flow("ip,nw_proto=47,actions=drop").match) == \
        "ip,nw_proto=47"


@pytest.mark.parametrize("text,out", [
    ("ip,nw_src=10.1.2.3/8", "ip,nw_src=10.0.0.0/8"),
    ("ip,nw_src=10.1.2.3/255.0.255.0", "ip,nw_src=10.0.2.0/255.0.255.0"),
    ("ip,nw_dst=0.0.0.0/0", "ip"),
    ("ipv6,ipv6_dst=2001:db8::1/64", "ipv6,ipv6_dst=2001:db8::/64"),
    ("dl_dst=01:00:00:00:00:00/01:00:00:00:00:00",
     "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"),
    ("eth_src=AA:bb:cc:dd:ee:ff", "dl_src=aa:bb:cc:dd:ee:ff"),
    ("tcp,tp_src=0x1230/0xfff0", "tcp,tp_src=0x1230/0xfff0"),
    ("vlan_tci=0x1000/0x1000", "vlan_tci=0x1000/0x1000"),
    ("dl_vlan=0xffff", "dl_vlan=65535"),
    ("udp,nw_frag=later", "udp,nw_frag=later"),
    ("arp,arp_op=1,arp_spa=10.0.0.1", "arp,arp_spa=10.0.0.1,arp_op=1"),
    ("tun_id=0x5,pkt_mark=7/0xf", "pkt_mark=0x7/0xf,tun_id=0x5"),
])
def test_field_syntax(text, out):
    assert format_match(parse_flow(text + ",actions=drop").match) == out


@pytest.mark.parametrize("text,msg", [
    ("tp_dst=80,actions=drop", "tp_dst requires tcp, udp or sctp"),
    ("ip,tp_dst=80,actions=drop", "OFPBMC_BAD_PREREQ"),
    ("nw_src=1.2.3.4,actions=drop", "nw_src requires ip or arp"),
    ("icmp_type=3,actions=drop", "icmp_type requires icmp"),
    ("ipv6_src=::1,actions=drop", "ipv6_src requires ipv6"),
    ("in_port=1", "must specify an action"),
    ("foo=1,actions=drop", "unknown keyword foo"),
    ("actions=frobnicate", "unknown action frobnicate"),
    ("actions=drop,output:1", '"drop" must not be accompanied'),
    ("actions=goto_table:1,output:2", "goto_table must be the last"),
    ("dl_vlan=4096,actions=drop", "not a valid VLAN ID"),
    ("in_port=1/1,actions=drop", "invalid or unknown port"),
    ("dl_src=zz:bb:cc:dd:ee:ff,actions=drop", "invalid Ethernet address"),
    ("ip,nw_src=1.2.3,actions=drop", "invalid IPv4 address"),
    ("priority=70000,actions=drop", "does not fit in 16 bits"),
    ("cookie=1/1,actions=drop", "cookie mask"),
    ("actions=mod_vlan_vid:4096", "not a valid VLAN VID"),
    ("actions=resubmit(,)", "at least one"),
    ("actions=output:2)", "unbalanced"),
    ("actions=resubmit(,1", "unbalanced"),
    ("table=255,actions=drop", "OFPFMFC_BAD_TABLE_ID"),
])
def test_errors(text, msg):
    with pytest.raises(FlowParseError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        parse_flow(text)


def test_prereq_error_code():
    with pytest.raises(FlowParseError) as ei:
        parse_flow("tp_dst=80,actions=drop")
    assert ei.value.code == "OFPBMC_BAD_PREREQ"


def test_delete_and_dump_commands():
    fm = parse_flow("in_port=1,cookie=0x10/0xf0,out_port=2", "delete")
    assert (fm.cookie, fm.cookie_mask, fm.out_port, fm.table) == (0x10, 0xF0, 2, None)
    assert format_flow(fm) == "cookie=0x10/0xf0,out_port=2,in_port=1"
    with pytest.raises(FlowParseError, match="cannot set cookie"):
        parse_flow("cookie=1", "delete")
    with pytest.raises(FlowParseError, match="unknown keyword priority"):
        parse_flow("priority=5", "delete")
    assert parse_flow("priority=5,in_port=1", "delete_strict").priority == 5
    assert parse_flow("", "dump") == FlowMod(command="dump")


def test_dump_ignores_stats_fields():
    line = ("cookie=0x0, duration=1.234s, table=0, n_packets=10, n_bytes=980, "
            "idle_age=2, priority=100,in_port=1 actions=output:2")
    fm = parse_flow(line)
    assert fm.priority == 100 and fm.actions == (A.Output(2),)


def test_flow_stats_layout():
    m = parse_flow("in_port=1,actions=drop").match
    line = format_flow_stats(match=m, priority=100, actions=(A.Output(2),),
                             duration=1.2345, n_packets=10, n_bytes=980,
                             idle_age=2.7, hard_age=1.2)
    assert line == (" cookie=0x0, duration=1.234s, table=0, n_packets=10, "
                    "n_bytes=980, idle_age=2, priority=100,in_port=1 "
                    "actions=output:2")
    line = format_flow_stats(match=Match(), priority=32768, actions=(),
                             table=3, cookie=0x1f, duration=5.0,
                             idle_timeout=10, hard_timeout=20, idle_age=0)
    assert line == (" cookie=0x1f, duration=5s, table=3, n_packets=0, "
                    "n_bytes=0, idle_timeout=10, hard_timeout=20, idle_age=0, "
                    "actions=drop")
    line = format_flow_stats(match=Match(), priority=0,
                             actions=(A.Output(F.OFPP_NORMAL),), idle_age=0)
    assert line.endswith("idle_age=0, priority=0 actions=NORMAL")


# --- property tests -------------------------------------------------------------
_PORTS = st.integers(1, 0xFEFF)
_ACTIONS = st.one_of(
    _PORTS.map(A.Output),
    st.sampled_from([F.OFPP_NORMAL, F.OFPP_FLOOD, F.OFPP_ALL, F.OFPP_LOCAL,
                     F.OFPP_IN_PORT]).map(A.Output),
    st.integers(0, 0xFFFF).map(A.Controller),
    st.builds(A.SetVlanVid, st.integers(0, 4095), st.booleans()),
    st.builds(A.SetVlanPcp, st.integers(0, 7), st.booleans()),
    st.builds(A.StripVlan, st.booleans()),
    st.sampled_from([0x8100, 0x88A8]).map(A.PushVlan),
    st.builds(A.Resubmit, st.one_of(_PORTS, st.just(F.OFPP_IN_PORT)),
              st.integers(0, 255)),
)


@st.composite
def matches(draw):
    m = {}
    proto = draw(st.sampled_from([None, "ip", "ipv6", "arp", "tcp", "udp6",
                                  "icmp", "icmp6"]))
    if draw(st.booleans()):
        m["in_port"] = draw(_PORTS)
    if draw(st.booleans()):
        m["dl_vlan"] = draw(st.integers(0, 4095))
    if draw(st.booleans()):
        m["dl_src"] = (draw(st.integers(0, 2**48 - 1)),
                       draw(st.integers(1, 2**48 - 1)))
    if draw(st.booleans()):
        m["reg3"] = draw(st.integers(0, 2**32 - 1))
    match = Match(m)
    if proto:
        match.set_shorthand(proto)
    extra = {"ip": "nw_src", "tcp": "tp_dst", "arp": "arp_tha",
             "ipv6": "ipv6_dst", "icmp": "icmp_type", "icmp6": "icmpv6_code",
             "udp6": "tp_src"}.get(proto)
    if extra and draw(st.booleans()):
        fld = F.FIELDS[extra]
        value = draw(st.integers(0, fld.all_ones))
        mask = draw(st.integers(1, fld.all_ones)) if fld.maskable else None
        match = match.with_field(extra, value, mask)
    return match


@st.composite
def flow_mods(draw):
    cmd = draw(st.sampled_from(["add", "modify", "delete", "delete_strict"]))
    kw = {"command": cmd, "match": draw(matches())}
    if cmd != "delete":
        kw["priority"] = draw(st.integers(0, 0xFFFF))
    if cmd in ("add", "modify"):
        acts = draw(st.lists(_ACTIONS, max_size=4))
        if draw(st.booleans()):
            acts.append(A.GotoTable(draw(st.integers(0, 254))))
        kw["actions"] = tuple(acts)
        kw["idle_timeout"] = draw(st.integers(0, 0xFFFF))
        kw["table"] = draw(st.integers(0, 254))
        kw["cookie"] = draw(st.integers(0, 2**64 - 1))
    else:
        kw["table"] = draw(st.one_of(st.none(), st.integers(0, 254)))
        kw["out_port"] = draw(st.one_of(st.none(), _PORTS))
        if draw(st.booleans()):
            mask = draw(st.integers(1, 2**64 - 1))
            kw["cookie"] = draw(st.integers(0, 2**64 - 1)) & mask
            kw["cookie_mask"] = mask
    return FlowMod(**kw)


@settings(max_examples=300)
@given(flow_mods())
def test_roundtrip_property(fm):
    text = format_flow(fm)
    assert parse_flow(text, fm.command) == fm
    assert format_flow(parse_flow(text, fm.command)) == text


_ALPHABET = st.sampled_from(list("=,:()/ .x0123456789abcdef") +
                            ["in_port", "actions", "output", "tcp", "tp_dst",
                             "nw_src", "resubmit", "dl_vlan", "priority",
                             "drop", "cookie", "mod_vlan_vid", "\x00", "é"])


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=40), st.lists(_ALPHABET, max_size=20).map("".join)),
       st.sampled_from(["add", "delete", "dump"]))
def test_garbage_raises_only_flow_parse_error(text, cmd):
    try:
        fm = parse_flow(text, cmd)
    except FlowParseError as e:
        assert str(e)
        return
    canon = format_flow(fm)
    assert format_flow(parse_flow(canon, cmd)) == canon
