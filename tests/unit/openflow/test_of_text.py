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
def _set_fields(draw):
    name = draw(st.sampled_from(["reg0", "reg15", "metadata", "tun_id", "dl_src",
                                 "dl_dst", "pkt_mark"]))
    fld = F.FIELDS[name]
    mask = draw(st.one_of(st.just(fld.all_ones), st.integers(1, fld.all_ones)))
    value = draw(st.integers(0, fld.all_ones)) & mask
    return A.SetField(name, value, mask)


@st.composite
def _loads(draw):
    name = draw(st.sampled_from(["reg1", "reg9", "metadata", "tun_id"]))
    bits = F.FIELDS[name].bits
    start = draw(st.integers(0, bits - 1))
    n = draw(st.integers(1, bits - start))
    value = draw(st.integers(0, (1 << n) - 1))
    return A.SetField(name, value << start, ((1 << n) - 1) << start, "load")


@st.composite
def _moves(draw):
    src, dst = draw(st.sampled_from(["reg0", "reg7", "dl_src", "tun_id"])), \
        draw(st.sampled_from(["reg2", "reg12", "metadata"]))
    n = draw(st.integers(1, 32))
    return A.Move(src, draw(st.integers(0, F.FIELDS[src].bits - n)), dst,
                  draw(st.integers(0, F.FIELDS[dst].bits - n)), n)


_LEGACY = st.one_of(
    st.integers(0, 2**48 - 1).map(lambda v: A.SetField("dl_src", v, 2**48 - 1, "mod_dl_src")),
    st.integers(0, 2**32 - 1).map(lambda v: A.SetField("nw_dst", v, 2**32 - 1, "mod_nw_dst")),
    st.integers(0, 63).map(lambda v: A.SetField("nw_tos", v << 2, 0xFC, "mod_nw_tos")),
    st.integers(0, 3).map(lambda v: A.SetField("nw_ecn", v, 3, "mod_nw_ecn")),
    st.integers(0, 255).map(lambda v: A.SetField("nw_ttl", v, 255, "mod_nw_ttl")),
    st.integers(0, 65535).map(lambda v: A.SetField("tp_src", v, 65535, "mod_tp_src")),
    st.integers(0, 2**32 - 1).map(lambda v: A.SetField("tun_id", v, 2**64 - 1, "set_tunnel")),
    st.integers(0, 2**64 - 1).map(lambda v: A.SetField("tun_id", v, 2**64 - 1, "set_tunnel64")),
)
_NEW_ACTIONS = st.one_of(
    _set_fields(), _loads(), _moves(), _LEGACY,
    st.builds(A.OutputReg, st.sampled_from(["reg0", "reg5"]), st.integers(0, 16),
              st.integers(1, 16)),
    st.builds(A.Controller, st.integers(0, 0xFFFF), st.sampled_from(A.CONTROLLER_REASONS),
              st.integers(0, 0xFFFF), st.binary(max_size=4)),
    st.builds(A.DecTtl, st.lists(st.integers(0, 0xFFFF), max_size=2).map(tuple)),
    st.binary(min_size=1, max_size=6).map(A.Note),
    st.integers(0, 2**32 - 1).map(A.Group),
    st.builds(A.Ct, st.booleans(), st.booleans(), st.one_of(st.none(), st.integers(0, 0xFFFF)),
              st.none(), st.one_of(st.none(), st.integers(0, 254)),
              st.sampled_from([None, "ftp"]), st.sampled_from([None, "", "src=10.0.0.1"]),
              st.just(())),
    st.just(A.CtClear()),
    st.builds(A.Learn, st.integers(0, 254), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
              st.integers(0, 0xFFFF), st.integers(0, 2**64 - 1),
              st.sets(st.sampled_from(["send_flow_rem", "delete_learned"])).map(frozenset),
              st.lists(st.sampled_from([
                  ("match", "dl_dst", 0, 48, ("field", "dl_src", 0)),
                  ("match", "vlan_tci", 0, 12, ("field", "vlan_tci", 0)),
                  ("match", "dl_type", 0, 16, ("imm", 0x800)),
                  ("match", "reg0", 4, 8, ("imm", 0x5A)),
                  ("load", "reg1", 0, 16, ("field", "in_port", 0)),
                  ("load", "metadata", 8, 8, ("imm", 7)),
                  ("output", "in_port", 0, 16)]), max_size=4).map(tuple)),
)
_ACTIONS = st.one_of(_ACTIONS, _NEW_ACTIONS)


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
    for name in draw(st.lists(st.sampled_from(["reg15", "metadata", "ct_state",
                                               "conj_id", "ct_label", "ct_mark",
                                               "tun_src"]), max_size=3)):
        fld = F.FIELDS[name]
        mask = draw(st.integers(1, fld.all_ones)) if fld.maskable else fld.all_ones
        m[name] = (draw(st.integers(0, fld.all_ones)) & mask, mask)
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
        if draw(st.booleans()):
            kw["meter"] = draw(st.integers(1, 0xFFFF0000))
            kw["clear_actions"] = draw(st.booleans())
            kw["write_actions"] = tuple(draw(st.lists(_ACTIONS, max_size=2)))
            kw["write_metadata"] = (draw(st.integers(0, 2**64 - 1)),
                                    draw(st.integers(1, 2**64 - 1)))
            kw["write_metadata"] = (kw["write_metadata"][0] & kw["write_metadata"][1],
                                    kw["write_metadata"][1])
        kw["idle_timeout"] = draw(st.integers(0, 0xFFFF))
        kw["table"] = draw(st.integers(0, 254))
        kw["cookie"] = draw(st.integers(0, 2**64 - 1))
    else:
        kw["table"] = draw(st.one_of(st.none(), st.integers(0, 254)))
        kw["out_port"] = draw(st.one_of(st.none(), _PORTS))
        kw["out_group"] = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
        if draw(st.booleans()):
            mask = draw(st.integers(1, 2**64 - 1))
            kw["cookie"] = draw(st.integers(0, 2**64 - 1)) & mask
            kw["cookie_mask"] = mask
    return FlowMod(**kw)


@settings(max_examples=500)
@given(flow_mods())
def test_roundtrip_property(fm):
    text = format_flow(fm)
    assert parse_flow(text, fm.command) == fm
    assert format_flow(parse_flow(text, fm.command)) == text


_ALPHABET = st.sampled_from(list("=,:()/ .x0123456789abcdef") +
                            ["in_port", "actions", "output", "tcp", "tp_dst",
                             "nw_src", "resubmit", "dl_vlan", "priority",
                             "drop", "cookie", "mod_vlan_vid", "\x00", "é",
                             "set_field", "load", "move", "->", "[", "]", "..", "reg0",
                             "NXM_NX_REG1", "conjunction", "ct", "exec", "write_actions",
                             "clear_actions", "write_metadata", "meter", "group", "note",
                             "controller", "reason", "ct_state", "+trk", "-new", "dec_ttl",
                             "nd_target", "icmp6", "ipv6_src", "conj_id", "mod_nw_tos",
                             "mod_tp_src", "set_tunnel", "output:reg0[0..15]", "zone"])


@settings(max_examples=2000)
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


# --- the full syntax of issue 4 ---------------------------------------------------
@pytest.mark.parametrize("text,out", [
    ("ip,actions=mod_nw_src:1.2.3.4,mod_nw_tos:8,mod_nw_ecn:2,mod_nw_ttl:9,dec_ttl,output:1",
     "ip,actions=mod_nw_src:1.2.3.4,mod_nw_tos:8,mod_nw_ecn:2,mod_nw_ttl:9,dec_ttl,output:1"),
    ("tcp,actions=mod_tp_src:80,mod_tp_dst:8080,mod_dl_src:0A:00:00:00:00:01",
     "tcp,actions=mod_tp_src:80,mod_tp_dst:8080,mod_dl_src:0a:00:00:00:00:01"),
    ("actions=load:5->NXM_NX_REG0[0..3],load:1->reg1[7],move:eth_src[0..31]->NXM_NX_REG2[]",
     "actions=load:0x5->NXM_NX_REG0[0..3],load:0x1->NXM_NX_REG1[7],"
     "move:NXM_OF_ETH_SRC[0..31]->NXM_NX_REG2[]"),
    ("actions=output:reg3[0..15],output:NXM_NX_REG1[16..31]",
     "actions=output:NXM_NX_REG3[0..15],output:NXM_NX_REG1[16..31]"),
    ("actions=set_field:0x5/0xff->reg15,set_field:aa:bb:cc:dd:ee:ff->eth_dst",
     "actions=set_field:0x5/0xff->reg15,set_field:aa:bb:cc:dd:ee:ff->dl_dst"),
    ("ip,actions=set_field:10.0.0.1->ip_src,set_field:46->ip_dscp",
     "ip,actions=set_field:10.0.0.1->nw_src,set_field:46->ip_dscp"),
    ("actions=set_field:100->vlan_vid", "actions=set_field:0x1064->vlan_vid"),
    ("actions=meter:3,output:1,clear_actions,write_actions(output:2,group:5),"
     "write_metadata:0x5/0xff,goto_table:4",
     "actions=meter:3,output:1,clear_actions,write_actions(output:2,group:5),"
     "write_metadata:0x5/0xff,goto_table:4"),
    ("actions=write_metadata:0x1", "actions=write_metadata:0x1"),
    ("reg3=5,metadata=0x1/0x3,ct_state=+trk+new,conj_id=7,actions=controller(reason=no_match,"
     "max_len=100,userdata=01.02),note:01.02",
     "conj_id=7,ct_state=+new+trk,metadata=0x1/0x3,reg3=0x5,actions=controller(reason=no_match,"
     "max_len=100,userdata=01.02),note:01.02"),
    ("ct_state=0x21/0x21,ct_zone=5,ct_mark=1/1,ct_label=0x1/0x1,actions=drop",
     "ct_state=+new+trk,ct_zone=5,ct_mark=0x1/0x1,ct_label=0x1/0x1,actions=drop"),
    ("priority=5,ip,nw_src=10.0.0.0/8,actions=conjunction(1,1/2),conjunction(2,2/3)",
     "priority=5,ip,nw_src=10.0.0.0/8,actions=conjunction(1,1/2),conjunction(2,2/3)"),
    ("actions=ct(commit,zone=5,exec(set_field:1->ct_mark),nat(src=10.0.0.1)),ct_clear,"
     "ct(table=3,zone=NXM_NX_REG0[0..15])",
     "actions=ct(commit,zone=5,exec(set_field:0x1->ct_mark),nat(src=10.0.0.1)),ct_clear,"
     "ct(table=3,zone=NXM_NX_REG0[0..15])"),
    ("actions=set_tunnel:5,set_tunnel64:0x50,controller:80,controller(id=3)",
     "actions=set_tunnel:0x5,set_tunnel64:0x50,CONTROLLER:80,controller(id=3)"),
    ("icmp6,icmpv6_type=135,nd_target=fe80::1,actions=drop",
     "icmp6,icmpv6_type=135,nd_target=fe80::1,actions=drop"),
    ("tcp,tcp_flags=+syn-ack,actions=drop", "tcp,tcp_flags=0x2/0x12,actions=drop"),
    ("ipv6,ipv6_label=0x12345,actions=dec_ttl(1,2)", "ipv6,ipv6_label=0x12345,actions=dec_ttl(1,2)"),
    ("actions=learn(table=1,idle_timeout=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
     "load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[]),NORMAL",
     "actions=learn(table=1,idle_timeout=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
     "load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[]),NORMAL"),
    ("actions=learn(table=2,priority=5,cookie=0x9,eth_type=0x800,nw_dst=10.0.0.1,ip_src=ip_dst,"
     "load:5->reg1[])", "actions=learn(table=2,priority=5,cookie=0x9,NXM_OF_ETH_TYPE[]=0x800,"
     "NXM_OF_IP_DST[]=0xa000001,NXM_OF_IP_SRC[]=NXM_OF_IP_DST[],load:0x5->NXM_NX_REG1[])"),
    ("arp,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02/ff:ff:ff:ff:ff:00,arp_tpa=10.0.0.0/8,"
     "actions=drop", "arp,arp_tpa=10.0.0.0/8,arp_sha=00:00:00:00:00:01,"
     "arp_tha=00:00:00:00:00:00/ff:ff:ff:ff:ff:00,actions=drop"),
    ("tun_id=0x5/0xff,tun_src=1.1.1.1,tun_dst=2.2.2.0/24,actions=drop",
     "tun_id=0x5/0xff,tun_src=1.1.1.1,tun_dst=2.2.2.0/24,actions=drop"),
    ("ip,ip_frag=first,nw_ttl=3,nw_ecn=1,nw_tos=4,actions=drop",
     "ip,nw_tos=4,nw_ecn=1,nw_ttl=3,nw_frag=first,actions=drop"),
    ("icmp,icmp_type=8,icmp_code=0,dl_vlan_pcp=3,actions=drop",
     "icmp,dl_vlan_pcp=3,icmp_type=8,icmp_code=0,actions=drop"),
    ("send_flow_rem,check_overlap,importance=7,idle_timeout=5,hard_timeout=9,actions=drop",
     "idle_timeout=5,hard_timeout=9,importance=7,send_flow_rem,check_overlap,actions=drop"),
])
def test_full_syntax(text, out):
    fm = parse_flow(text)
    assert format_flow(fm) == out
    assert parse_flow(out) == fm


def test_instructions_go_to_flowmod_fields():
    fm = parse_flow("actions=meter:3,output:1,clear_actions,write_actions(output:2),"
                    "write_metadata:0x5/0xff,goto_table:4")
    assert fm.meter == 3 and fm.clear_actions
    assert fm.write_actions == (A.Output(2),) and fm.write_metadata == (5, 0xFF)
    assert fm.actions == (A.Output(1), A.GotoTable(4))


def test_out_group_and_cookie_mask_in_dump_and_delete():
    fm = parse_flow("out_group=5,cookie=0x10/-1", "dump")
    assert fm.out_group == 5 and fm.cookie_mask == 2**64 - 1
    assert format_flow(parse_flow("out_group=7", "delete")) == "out_group=7"


@pytest.mark.parametrize("text,msg", [
    ("actions=set_field:80->tp_dst", "lacks correct prerequisites"),
    ("actions=load:1->NXM_OF_IP_SRC[]", "OFPBAC_MATCH_INCONSISTENT"),
    ("actions=output:1,conjunction(1,1/2)", '"conjunction" actions may be used'),
    ("actions=conjunction(1,3/2)", "clause 3 is out of range 1..2"),
    ("actions=conjunction(1,1/1)", "out of range 2..64"),
    ("actions=move:reg0[0..3]->reg1[0..4]", "4 bits wide but destination"),
    ("actions=set_field:1->dl_type", "not writable"),
    ("actions=set_field:1->nosuch", "unknown field nosuch"),
    ("actions=set_field:1", "is not VALUE"),
    ("actions=load:16->reg0[0..3]", "does not fit in 4 bits"),
    ("actions=load:1->reg0[5..40]", "out of range for reg0"),
    ("actions=multipath(eth_src,50,modulo_n,1,0,NXM_NX_REG0[])", "multipath: action not supported yet"),
    ("actions=learn(table=255)", "learn: table 255"),
    ("actions=learn(load:1->dl_type[])", "not writable"),
    ("actions=clear_actions,output:1", "must come before clear_actions"),
    ("actions=write_metadata:1,write_metadata:2", "may be specified only once"),
    ("actions=output:1,meter:2", "meter must be the first instruction"),
    ("actions=meter:0", "invalid meter id"),
    ("actions=write_actions(goto_table:3)", "not an action for write_actions"),
    ("icmp6,nd_target=::1,actions=drop", "nd_target requires icmp6,icmpv6_type=135"),
    ("ct_state=+foo,actions=drop", 'unknown flag "foo"'),
    ("ct_state=+trk+trk,actions=drop", "given twice"),
    ("conj_id=1/1,actions=drop", "does not support masking"),
    ("actions=controller(reason=bogus)", "unknown controller reason"),
    ("actions=controller(frob=1)", "unknown controller option"),
    ("actions=note:1g", "not hex bytes"),
    ("actions=ct(zone=NXM_NX_REG0[0..7])", "zone field must be 16 bits"),
    ("actions=ct(alg=sip)", "unknown alg"),
    ("actions=output:reg0[0..31]", "wider than 16 bits"),
    ("actions=mod_nw_tos:3", "ECN bits"),
    ("actions=mod_nw_ecn:4", "does not fit in 2 bits"),
    ("actions=mod_dl_src:00:00:00:00:00:01/ff:ff:ff:ff:ff:ff", "no mask"),
])
def test_new_errors(text, msg):
    with pytest.raises(FlowParseError, match=msg.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_flow(text)


@settings(max_examples=3000)
@given(st.lists(_ALPHABET, max_size=14).map("".join), st.sampled_from(["", "ip,", "tcp,"]))
def test_garbage_actions_raise_only_flow_parse_error(text, match):
    try:
        fm = parse_flow(match + "actions=" + text)
    except FlowParseError as e:
        assert str(e)
        return
    canon = format_flow(fm)
    assert parse_flow(canon) == fm
