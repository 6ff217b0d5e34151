"""Every message kind: object -> bytes -> object in each version it exists in,
and bytes -> object -> bytes for the canonical encoding."""

import pytest

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.text import FlowMod, parse_flow

OF10, OF13 = wire.OFP10, wire.OFP13
PORT = M.PortDesc(3, 0x0A0000000003, "eth3", 1, 4, 0x40, 0x40, 0x7F, 0,
                  10000000, 10000000)
PORT10 = M.PortDesc(3, 0x0A0000000003, "eth3", 1, 4, 0x40, 0x40, 0x7F, 0)
BUCKETS = (M.Bucket((A.Output(1),), 10), M.Bucket((A.Output(2), A.SetVlanPcp(3, False)), 20))
BUCKETS10 = (M.Bucket((A.Output(1),), 10), M.Bucket((A.Output(2), A.StripVlan()), 20))
BUCKETS13 = (M.Bucket((A.Output(1),), 10), M.Bucket((A.Group(7),), 20))
FF_BUCKETS = (M.Bucket((A.Output(1),), 0, 1), M.Bucket((A.Output(2),), 0, 2, 9))
MATCH = Match({"in_port": 1, "dl_type": 0x0800, "nw_proto": 6,
               "nw_dst": (0x0A000000, 0xFF000000), "tp_dst": 80})


def fm(text, command="add", **kw):
    f = parse_flow(text, command)
    return FlowMod(**{**f.__dict__, **kw})


BOTH = [
    M.Hello(), M.Hello((1, 4)), M.Error("OFPBRC_BAD_TYPE", b"\x04\x63\x00\x08abcd"),
    M.EchoRequest(b"ping"), M.EchoReply(b"pong"),
    M.Experimenter(0x00ABCDEF, 7, b"1234"),
    M.FeaturesRequest(), M.GetConfigRequest(), M.GetConfigReply(1, 256),
    M.SetConfig(0, 0xFFE5), M.BarrierRequest(), M.BarrierReply(),
    M.PacketOut(M.NO_BUFFER, 1, (A.Output(2), A.Controller(64)), b"\x01" * 60),
    M.PacketOut(7, F.OFPP_CONTROLLER, (A.Output(F.OFPP_TABLE),), b""),
    fm("in_port=1,dl_vlan=10,priority=100,actions=output:2"),
    fm("table=3,tcp,nw_dst=10.0.0.0/8,tp_dst=80,idle_timeout=5,hard_timeout=9,"
       "cookie=0x42,send_flow_rem,actions=strip_vlan,resubmit(,4),NORMAL"),
    fm("priority=5,udp,tp_src=53", "delete_strict"),
    fm("", "delete"),
    fm("reg3=0x10/0xff,tun_id=5,arp,arp_sha=00:00:00:00:00:01,actions=LOCAL"),
    fm("cookie=0x10/0xff,ipv6,ipv6_dst=fe80::1", "delete"),
    M.GroupMod("add", "ff", 2, FF_BUCKETS),
    M.GroupMod("delete", "all", M.OFPG_ALL),
    M.PortMod(3, 0x0A0000000003, 1, 1, 0),
    M.RoleRequest("master"), M.RoleReply("slave"),
    M.SetAsync((1, 2), (3, 4), (5, 6)),
    M.SetFlowFormat("nxm"), M.SetFlowFormat("openflow10"),
    M.FlowModTableId(True), M.SetPacketInFormat(1),
    M.DescRequest(), M.DescReply("pyvswitch", "hw", "0.1", "none", "br0"),
    M.FlowStatsRequest(MATCH, 1, 2),
    M.AggregateStatsRequest(Match(), None, None),
    M.FlowStatsReply((M.FlowStats(0, MATCH, 100, (A.Output(2),), 5, 6, 7, 8, 9, 10,
                                  11),), 1),
    M.AggregateStatsReply(1, 2, 3),
    M.TableStatsRequest(), M.PortStatsRequest(), M.PortStatsRequest(2),
    M.PortDescRequest(), M.GroupDescRequest(),
]
ONLY10 = [
    M.GroupMod("add", "select", 1, BUCKETS10),
    M.FeaturesReply(0x1234, 256, 254, 0xC7, 0xFFF, 0, (PORT10,)),
    M.PacketIn(5, 64, 1, 3, b"\xaa" * 64),
    M.FlowRemoved(MATCH, 7, 100, 2, 0, 3, 4, 5, 0, 6, 7),
    M.FlowRemoved(Match({"reg0": 1}), 7, 100, 2, 0, 3, 4, 5, 6, 6, 7, nxm=True),
    M.PortStatus(2, PORT10),
    M.FlowStatsRequest(Match({"reg0": 1}), None, None, nxm=True, cookie=1,
                       cookie_mask=3),
    M.FlowStatsReply((M.FlowStats(1, Match({"reg0": 1}), 9, (A.Output(2),), 1, 2,
                                  idle_age=3, hard_age=4),), nxm=True),
    M.AggregateStatsReply(4, 5, 6, nxm=True),
    M.TableStatsReply((M.TableStats(0, 1, 2, 3, "classifier", 0x3FFFFF, 1000000),)),
    M.PortStatsReply((M.PortStats(1, *range(1, 13)),)),
    M.PortDescReply((PORT10,)),
]
ONLY13 = [
    M.FeaturesReply(0x1234, 256, 254, 0x4F, 0, 0),
    M.GroupMod("add", "select", 1, BUCKETS),
    M.PacketIn(5, 64, 1, 3, b"\xaa" * 64, 2, 0x99, Match({"reg1": 4})),
    M.FlowRemoved(MATCH, 7, 100, 2, 3, 3, 4, 5, 6, 6, 7),
    M.PortStatus(2, PORT),
    fm("table=1,priority=7,actions=mod_vlan_pcp:3,output:1,goto_table:4"),
    fm("metadata=0x5/0xff,actions=group:3", write_actions=(A.Output(4),),
       clear_actions=True, write_metadata=(1, 0xFF), meter=3),
    M.TableMod(3, 0), M.GetAsyncRequest(),
    M.GetAsyncReply((1, 0), (7, 7), (15, 0)),
    M.RoleRequest("nochange", 9), M.RoleRequest("equal", 2**64 - 1),
    M.MeterMod("add", M.METER_KBPS | M.METER_BURST, 1,
               (M.MeterBand("drop", 1000, 100),)),
    M.MeterMod("modify", M.METER_PKTPS, 2, (M.MeterBand("dscp_remark", 50, 0, 1),)),
    M.MeterMod("delete", 0, M.OFPM_ALL),
    M.FlowStatsRequest(MATCH, None, None, 5, 0x10, 0xF0),
    M.FlowStatsReply((M.FlowStats(2, MATCH, 9, (A.Output(2), A.GotoTable(3)), 1, 2,
                                  3, 4, 5, 6, 7, 1, meter=2),)),
    M.TableStatsReply((M.TableStats(0, 1, 2, 3), M.TableStats(1, 4, 5, 6))),
    M.PortStatsReply((M.PortStats(1, *range(1, 13), 20, 30),
                      M.PortStats(F.OFPP_LOCAL, *range(12), 0, 0))),
    M.PortDescReply((PORT, M.PortDesc(F.OFPP_LOCAL, 1, "br0"))),
    M.GroupStatsRequest(), M.GroupStatsRequest(3),
    M.GroupStatsReply((M.GroupStats(1, 2, 3, 4, 5, 6, ((1, 2), (3, 4))),)),
    M.GroupDescReply((M.GroupDesc("select", 1, BUCKETS), M.GroupDesc("ff", 2, FF_BUCKETS))),
    M.GroupFeaturesRequest(), M.GroupMod("modify", "select", 1, BUCKETS13),
    M.GroupFeaturesReply(0xF, 0x7, (1, 2, 3, 4), (5, 6, 7, 8)),
    M.MeterStatsRequest(), M.MeterStatsRequest(4),
    M.MeterStatsReply((M.MeterStats(1, 2, 3, 4, 5, 6, ((7, 8),)),)),
    M.MeterConfigRequest(), M.MeterConfigReply((M.MeterConfig(
        5, 1, (M.MeterBand("drop", 10, 20),)),)),
    M.MeterFeaturesRequest(), M.MeterFeaturesReply(100, 6, 0xF, 2, 0),
    M.TableFeaturesRequest(),
    M.TableFeaturesReply((M.TableFeatures(0, "t0", 2**64 - 1, 2**64 - 1, 0, 1000,
                                          ((0, b"\x00\x01\x00\x04"), (8, b""))),)),
]
CASES = ([(OF10, m) for m in BOTH + ONLY10] + [(OF13, m) for m in BOTH + ONLY13])


@pytest.mark.parametrize("version,msg", CASES,
                         ids=[f"{v}-{type(m).__name__}-{i}" for i, (v, m) in enumerate(CASES)])
def test_object_round_trip(version, msg):
    data = wire.encode(msg, version, xid=0x1234)
    # 1.0 flow mods name a table only with NXT_FLOW_MOD_TABLE_ID on
    ext = isinstance(msg, FlowMod) and msg.table not in (None, 0)
    v, xid, back = wire.decode(data, flow_mod_table_id=ext)
    assert (v, xid) == (version, 0x1234)
    if isinstance(msg, M.Error):
        assert (back.name, back.data) == (msg.name, msg.data)
    elif isinstance(msg, FlowMod):
        assert back.match.key_mask() == msg.match.key_mask()
        assert back.__dict__ | {"match": None, "actions": None} == \
            msg.__dict__ | {"match": None, "actions": None}
    else:
        assert back == msg
    assert wire.encode(back, version, xid=0x1234) == data


@pytest.mark.parametrize("msg", [M.MeterMod(), M.TableMod(), M.GetAsyncRequest(),
                                 M.MeterStatsRequest(), M.GroupFeaturesRequest(),
                                 M.TableFeaturesRequest()])
def test_no_openflow10_form(msg):
    with pytest.raises(wire.EncodeError):
        wire.encode(msg, OF10)


def test_flow_mod_actions_translate_between_versions():
    f = fm("in_port=1,actions=mod_vlan_vid:20,output:2")
    _, _, back13 = wire.decode(wire.encode(f, OF13))
    assert back13.actions == (A.PushVlan(0x8100), A.SetVlanVid(20, False), A.Output(2))
    _, _, back10 = wire.decode(wire.encode(f, OF10))
    assert back10.actions == f.actions


def test_openflow10_needs_nxm_for_registers_and_uses_nxt_flow_mod():
    data = wire.encode(fm("reg0=1,actions=drop"), OF10)
    assert data[1] == 4 and data[8:16] == bytes.fromhex("000023200000000d")


def test_hello_bitmap_of_ovs():
    assert wire.encode(M.Hello((4,)), OF13, 1).hex() == "04000010000000010001000800000010"


def test_packet_in_13_carries_in_port_in_match():
    data = wire.encode(M.PacketIn(in_port=F.OFPP_LOCAL, data=b"x"), OF13)
    assert bytes.fromhex("80000004fffffffe") in data


def test_openflow10_cookie_mask_goes_nicira():
    f = fm("cookie=0x5/0xff", "delete")
    data = wire.encode(f, OF10)
    assert data[1] == 4
    back = wire.decode(data)[2]
    assert (back.cookie, back.cookie_mask, back.table) == (5, 0xFF, None)
