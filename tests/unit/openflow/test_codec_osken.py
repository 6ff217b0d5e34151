"""Cross-checks with os-ken (a controller library) as the oracle: messages a
controller builds with os-ken decode with our codec to the same fields, and
what the switch sends (encoded by us) parses with os-ken's parsers."""

import pytest

pytest.importorskip("os_ken")

from os_ken.ofproto import ofproto_parser, ofproto_protocol  # noqa: E402
from os_ken.ofproto import ofproto_v1_0 as o10  # noqa: E402
from os_ken.ofproto import ofproto_v1_0_parser as p10  # noqa: E402
from os_ken.ofproto import ofproto_v1_3 as o13  # noqa: E402
from os_ken.ofproto import ofproto_v1_3_parser as p13  # noqa: E402

from pyvswitch.openflow import actions as A  # noqa: E402
from pyvswitch.openflow import fields as F  # noqa: E402
from pyvswitch.openflow import messages as M  # noqa: E402
from pyvswitch.openflow import wire  # noqa: E402
from pyvswitch.openflow.match import Match  # noqa: E402
from pyvswitch.openflow.text import FlowMod  # noqa: E402

DP10 = ofproto_protocol.ProtocolDesc(o10.OFP_VERSION)
DP13 = ofproto_protocol.ProtocolDesc(o13.OFP_VERSION)


def ours(osken_msg):
    osken_msg.xid = 77
    osken_msg.serialize()
    data = bytes(osken_msg.buf)
    version, xid, msg = wire.decode(data)
    assert xid == 77
    # os-ken's byte choices (field order, max_len of plain outputs) are not
    # Open vSwitch's canonical ones: re-encoding must be stable, not identical
    again = wire.encode(msg, version, xid)
    assert wire.decode(again)[2] == msg
    return msg


def theirs(msg, version, dp):
    data = wire.encode(msg, version, xid=9)
    v, t, length, xid = ofproto_parser.header(data)
    return ofproto_parser.msg(dp, v, t, length, xid, data)


# --- controller -> switch, built by os-ken -----------------------------------------
def test_13_flow_mod():
    match = p13.OFPMatch(in_port=1, eth_type=0x0800, ip_proto=6,
                         ipv4_dst=("10.0.0.0", "255.0.0.0"), tcp_dst=80, vlan_vid=0x1000 | 10)
    inst = [p13.OFPInstructionMeter(3),
            p13.OFPInstructionActions(o13.OFPIT_APPLY_ACTIONS,
                                      [p13.OFPActionOutput(2), p13.OFPActionGroup(5)]),
            p13.OFPInstructionActions(o13.OFPIT_CLEAR_ACTIONS, []),
            p13.OFPInstructionActions(o13.OFPIT_WRITE_ACTIONS, [p13.OFPActionOutput(3)]),
            p13.OFPInstructionWriteMetadata(7, 0xFF), p13.OFPInstructionGotoTable(4)]
    fm = ours(p13.OFPFlowMod(DP13, cookie=9, table_id=2, command=o13.OFPFC_ADD,
                             idle_timeout=5, hard_timeout=6, priority=100,
                             flags=o13.OFPFF_SEND_FLOW_REM, match=match,
                             instructions=inst))
    assert isinstance(fm, FlowMod)
    assert (fm.cookie, fm.table, fm.idle_timeout, fm.hard_timeout, fm.priority) == (
        9, 2, 5, 6, 100)
    assert fm.flags == {"send_flow_rem"}
    assert fm.actions == (A.Output(2), A.Group(5), A.GotoTable(4))
    assert fm.write_actions == (A.Output(3),) and fm.clear_actions
    assert fm.write_metadata == (7, 0xFF) and fm.meter == 3
    assert dict(fm.match.items()) == {
        "in_port": (1, 0xFFFF), "dl_type": (0x800, 0xFFFF), "nw_proto": (6, 0xFF),
        "nw_dst": (0x0A000000, 0xFF000000), "tp_dst": (80, 0xFFFF),
        "vlan_vid": (0x100A, 0x1FFF)}


def test_13_flow_mod_delete_with_cookie_mask_and_set_field():
    fm = ours(p13.OFPFlowMod(DP13, cookie=0x10, cookie_mask=0xF0, table_id=o13.OFPTT_ALL,
                             command=o13.OFPFC_DELETE, out_port=o13.OFPP_ANY,
                             out_group=o13.OFPG_ANY, match=p13.OFPMatch(reg0=5)))
    assert (fm.command, fm.table, fm.cookie, fm.cookie_mask, fm.out_port) == (
        "delete", None, 0x10, 0xF0, None)
    fm = ours(p13.OFPFlowMod(DP13, match=p13.OFPMatch(), instructions=[
        p13.OFPInstructionActions(o13.OFPIT_APPLY_ACTIONS, [
            p13.OFPActionPushVlan(0x8100), p13.OFPActionSetField(vlan_vid=0x1000 | 7),
            p13.OFPActionSetField(vlan_pcp=3), p13.OFPActionPopVlan(),
            p13.OFPActionOutput(o13.OFPP_CONTROLLER, 128),
            p13.OFPActionOutput(o13.OFPP_NORMAL)])]))
    assert fm.actions == (A.PushVlan(0x8100), A.SetVlanVid(7, False),
                          A.SetVlanPcp(3, False), A.StripVlan(True), A.Controller(128),
                          A.Output(F.OFPP_NORMAL))


def test_13_group_meter_port_table_mod():
    buckets = [p13.OFPBucket(weight=3, watch_port=o13.OFPP_ANY, watch_group=o13.OFPG_ANY,
                             actions=[p13.OFPActionOutput(1)]),
               p13.OFPBucket(weight=5, watch_port=o13.OFPP_ANY, watch_group=o13.OFPG_ANY,
                             actions=[p13.OFPActionOutput(2)])]
    g = ours(p13.OFPGroupMod(DP13, o13.OFPGC_ADD, o13.OFPGT_SELECT, 7, buckets))
    assert g == M.GroupMod("add", "select", 7, (M.Bucket((A.Output(1),), 3),
                                                M.Bucket((A.Output(2),), 5)))
    ff = ours(p13.OFPGroupMod(DP13, o13.OFPGC_MODIFY, o13.OFPGT_FF, 8, [
        p13.OFPBucket(watch_port=4, watch_group=o13.OFPG_ANY,
                      actions=[p13.OFPActionOutput(4)])]))
    assert ff.command == "modify" and ff.buckets[0].watch_port == 4
    m = ours(p13.OFPMeterMod(DP13, o13.OFPMC_ADD, o13.OFPMF_KBPS, 1, [
        p13.OFPMeterBandDrop(1000, 10), p13.OFPMeterBandDscpRemark(500, 5, 2)]))
    assert m.bands == (M.MeterBand("drop", 1000, 10), M.MeterBand("dscp_remark", 500, 5, 2))
    pm = ours(p13.OFPPortMod(DP13, 3, "0a:00:00:00:00:03", 1, 1, 0))
    assert pm == M.PortMod(3, 0x0A0000000003, 1, 1, 0)
    assert ours(p13.OFPTableMod(DP13, 2, 0)) == M.TableMod(2, 0)


def test_13_packet_out_and_small_requests():
    po = ours(p13.OFPPacketOut(DP13, o13.OFP_NO_BUFFER, o13.OFPP_CONTROLLER,
                               [p13.OFPActionOutput(o13.OFPP_FLOOD)], b"\x00" * 60))
    assert po == M.PacketOut(M.NO_BUFFER, F.OFPP_CONTROLLER, (A.Output(F.OFPP_FLOOD),),
                             b"\x00" * 60)
    assert ours(p13.OFPEchoRequest(DP13, b"hi")) == M.EchoRequest(b"hi")
    assert ours(p13.OFPFeaturesRequest(DP13)) == M.FeaturesRequest()
    assert ours(p13.OFPGetConfigRequest(DP13)) == M.GetConfigRequest()
    assert ours(p13.OFPSetConfig(DP13, 0, 256)) == M.SetConfig(0, 256)
    assert ours(p13.OFPBarrierRequest(DP13)) == M.BarrierRequest()
    assert ours(p13.OFPRoleRequest(DP13, o13.OFPCR_ROLE_MASTER, 5)) == M.RoleRequest("master", 5)
    assert ours(p13.OFPGetAsyncRequest(DP13)) == M.GetAsyncRequest()
    assert ours(p13.OFPSetAsync(DP13, [1, 0], [7, 7], [15, 0])) == M.SetAsync(
        (1, 0), (7, 7), (15, 0))
    req = ours(p13.OFPFlowStatsRequest(DP13, 0, 1, o13.OFPP_ANY, o13.OFPG_ANY, 0, 0,
                                       p13.OFPMatch(eth_type=0x0806, arp_op=1)))
    assert req.table == 1 and dict(req.match.items()) == {
        "dl_type": (0x806, 0xFFFF), "arp_op": (1, 0xFF)}
    for cls, want in [
            (p13.OFPDescStatsRequest, M.DescRequest()),
            (p13.OFPPortDescStatsRequest, M.PortDescRequest()),
            (p13.OFPGroupDescStatsRequest, M.GroupDescRequest()),
            (p13.OFPGroupFeaturesStatsRequest, M.GroupFeaturesRequest()),
            (p13.OFPMeterFeaturesStatsRequest, M.MeterFeaturesRequest()),
            (p13.OFPTableStatsRequest, M.TableStatsRequest())]:
        assert ours(cls(DP13, 0)) == want
    assert ours(p13.OFPPortStatsRequest(DP13, 0, o13.OFPP_ANY)) == M.PortStatsRequest()
    assert ours(p13.OFPGroupStatsRequest(DP13, 0, o13.OFPG_ALL)) == M.GroupStatsRequest()
    assert ours(p13.OFPMeterStatsRequest(DP13, 0, o13.OFPM_ALL)) == M.MeterStatsRequest()
    assert ours(p13.OFPMeterConfigStatsRequest(DP13, 0, 3)) == M.MeterConfigRequest(3)
    assert ours(p13.OFPAggregateStatsRequest(DP13, 0, o13.OFPTT_ALL, o13.OFPP_ANY,
                                             o13.OFPG_ANY, 0, 0, p13.OFPMatch())) == \
        M.AggregateStatsRequest()


def test_10_controller_messages():
    match = p10.OFPMatch(in_port=1, dl_type=0x0800, nw_proto=17, tp_dst=53,
                         nw_src=0x0A000001)
    fm = ours(p10.OFPFlowMod(DP10, match, 5, o10.OFPFC_ADD, 1, 2, 100, 0xFFFFFFFF,
                             o10.OFPP_NONE, o10.OFPFF_SEND_FLOW_REM,
                             [p10.OFPActionVlanVid(10), p10.OFPActionOutput(2)]))
    assert (fm.cookie, fm.idle_timeout, fm.hard_timeout, fm.priority) == (5, 1, 2, 100)
    assert fm.actions == (A.SetVlanVid(10, True), A.Output(2))
    assert dict(fm.match.items()) == {
        "in_port": (1, 0xFFFF), "dl_type": (0x800, 0xFFFF), "nw_proto": (17, 0xFF),
        "tp_dst": (53, 0xFFFF), "nw_src": (0x0A000001, 0xFFFFFFFF)}
    po = ours(p10.OFPPacketOut(DP10, 0xFFFFFFFF, o10.OFPP_NONE,
                               [p10.OFPActionStripVlan(), p10.OFPActionOutput(3)], b"x" * 20))
    assert po.actions == (A.StripVlan(False), A.Output(3)) and po.data == b"x" * 20
    assert ours(p10.OFPPortMod(DP10, 2, "00:00:00:00:00:02", 1, 1, 0)) == M.PortMod(2, 2, 1, 1)
    assert ours(p10.OFPSetConfig(DP10, 0, 128)) == M.SetConfig(0, 128)
    assert ours(p10.OFPBarrierRequest(DP10)) == M.BarrierRequest()
    req = ours(p10.OFPFlowStatsRequest(DP10, 0, p10.OFPMatch(), 0xFF, o10.OFPP_NONE))
    assert req == M.FlowStatsRequest(Match(), None, None)
    assert ours(p10.OFPPortStatsRequest(DP10, 0, o10.OFPP_NONE)) == M.PortStatsRequest()
    assert ours(p10.OFPDescStatsRequest(DP10, 0)) == M.DescRequest()
    assert ours(p10.NXTSetFlowFormat(DP10, 2)) == M.SetFlowFormat("nxm")
    assert ours(p10.NXTFlowModTableId(DP10, 1)) == M.FlowModTableId(True)
    assert ours(p10.NXTRoleRequest(DP10, 1)) == M.RoleRequest("master")


# --- switch -> controller, parsed by os-ken -------------------------------------------
PORT = M.PortDesc(3, 0x0A0000000003, "eth3", 0, 4, 0x40, 0x40, 0x7F, 0, 10000000, 0)


def test_13_replies_parse_in_osken():
    r = theirs(M.FeaturesReply(0xABC, 0, 254, 0x4F, 0, 0), 4, DP13)
    assert (r.datapath_id, r.n_tables, r.capabilities) == (0xABC, 254, 0x4F)
    match = Match({"in_port": 2, "dl_type": 0x800, "nw_src": 0x0A000001})
    r = theirs(M.PacketIn(M.NO_BUFFER, 60, 1, 2, b"\x01" * 60, 3, 0x99), 4, DP13)
    assert (r.reason, r.table_id, r.cookie, r.match["in_port"], r.data) == (
        1, 3, 0x99, 2, b"\x01" * 60)
    r = theirs(M.FlowRemoved(match, 5, 10, 0, 1, 2, 3, 4, 5, 6, 7), 4, DP13)
    assert (r.cookie, r.priority, r.packet_count, r.match["ipv4_src"]) == (
        5, 10, 6, "10.0.0.1")
    r = theirs(M.PortStatus(0, PORT), 4, DP13)
    assert (r.desc.port_no, r.desc.name, r.desc.curr_speed) == (3, b"eth3", 10000000)
    r = theirs(M.FlowStatsReply((M.FlowStats(1, match, 10, (A.Output(2), A.GotoTable(3)),
                                             4, 5, 6, 7, 8, 9, 10),)), 4, DP13)
    s = r.body[0]
    assert (s.table_id, s.priority, s.cookie, s.packet_count, s.byte_count) == (1, 10, 8, 9, 10)
    assert s.instructions[0].actions[0].port == 2 and s.instructions[1].table_id == 3
    r = theirs(M.PortStatsReply((M.PortStats(F.OFPP_LOCAL, *range(1, 13), 5, 6),)), 4, DP13)
    assert (r.body[0].port_no, r.body[0].rx_packets, r.body[0].collisions) == (
        o13.OFPP_LOCAL, 1, 12)
    r = theirs(M.PortDescReply((PORT,)), 4, DP13)
    assert r.body[0].hw_addr == "0a:00:00:00:00:03"
    r = theirs(M.GroupDescReply((M.GroupDesc("select", 1, (M.Bucket((A.Output(1),), 4),)),)),
               4, DP13)
    assert (r.body[0].type, r.body[0].buckets[0].weight) == (o13.OFPGT_SELECT, 4)
    r = theirs(M.GroupStatsReply((M.GroupStats(1, 2, 3, 4, 5, 6, ((7, 8),)),)), 4, DP13)
    assert r.body[0].bucket_stats[0].byte_count == 8
    r = theirs(M.GroupFeaturesReply(15, 7, (1, 2, 3, 4), (5, 6, 7, 8)), 4, DP13)
    assert r.body.max_groups == [1, 2, 3, 4]
    r = theirs(M.MeterConfigReply((M.MeterConfig(1, 5, (M.MeterBand("drop", 10, 2),)),)),
               4, DP13)
    assert (r.body[0].meter_id, r.body[0].bands[0].rate) == (5, 10)
    r = theirs(M.MeterStatsReply((M.MeterStats(5, 1, 2, 3, 4, 5, ((6, 7),)),)), 4, DP13)
    assert r.body[0].band_stats[0].packet_band_count == 6
    r = theirs(M.MeterFeaturesReply(100, 6, 15, 2, 0), 4, DP13)
    assert r.body[0].max_meter == 100
    r = theirs(M.TableStatsReply((M.TableStats(0, 3, 4, 5),)), 4, DP13)
    assert r.body[0].active_count == 3
    r = theirs(M.AggregateStatsReply(1, 2, 3), 4, DP13)
    assert r.body.flow_count == 3
    r = theirs(M.DescReply("a", "b", "c", "d", "e"), 4, DP13)
    assert r.body.dp_desc == b"e"
    r = theirs(M.TableFeaturesReply((M.TableFeatures(0, "t0", 1, 2, 0, 10),)), 4, DP13)
    assert r.body[0].name == b"t0"
    r = theirs(M.GetConfigReply(0, 128), 4, DP13)
    assert r.miss_send_len == 128
    r = theirs(M.RoleReply("slave", 3), 4, DP13)
    assert (r.role, r.generation_id) == (o13.OFPCR_ROLE_SLAVE, 3)
    r = theirs(M.GetAsyncReply((1, 2), (3, 4), (5, 6)), 4, DP13)
    assert r.packet_in_mask == [1, 2]
    r = theirs(M.BarrierReply(), 4, DP13)
    assert isinstance(r, p13.OFPBarrierReply)
    r = theirs(M.Error("OFPBMC_BAD_PREREQ", b"\x04\x0e\x00\x50"), 4, DP13)
    assert (r.type, r.code) == (o13.OFPET_BAD_MATCH, o13.OFPBMC_BAD_PREREQ)
    r = theirs(M.EchoReply(b"x"), 4, DP13)
    assert r.data == b"x"


def test_10_replies_parse_in_osken():
    port = M.PortDesc(1, 2, "p1", 0, 0, 0xC0, 0, 0, 0)
    r = theirs(M.FeaturesReply(7, 0, 254, 0xC7, 0xFFF, 0, (port,)), 1, DP10)
    assert r.datapath_id == 7 and r.ports[1].name == b"p1"
    r = theirs(M.PacketIn(5, 60, 0, 3, b"\x02" * 60), 1, DP10)
    assert (r.buffer_id, r.in_port, r.reason, r.data) == (5, 3, 0, b"\x02" * 60)
    match = Match({"in_port": 2, "dl_type": 0x800, "nw_proto": 6, "tp_dst": 22})
    r = theirs(M.FlowRemoved(match, 5, 10, 1, 0, 2, 3, 4, 0, 6, 7), 1, DP10)
    assert (r.cookie, r.match.in_port, r.match.tp_dst, r.byte_count) == (5, 2, 22, 7)
    r = theirs(M.PortStatus(2, port), 1, DP10)
    assert r.reason == 2 and r.desc.port_no == 1
    r = theirs(M.FlowStatsReply((M.FlowStats(0, match, 9, (A.Output(2),), 1, 2, 3, 4, 5,
                                             6, 7),)), 1, DP10)
    assert (r.body[0].priority, r.body[0].actions[0].port) == (9, 2)
    r = theirs(M.PortStatsReply((M.PortStats(1, *range(1, 13)),)), 1, DP10)
    assert r.body[0].tx_packets == 2
    r = theirs(M.TableStatsReply((M.TableStats(0, 1, 2, 3, "t", 0x3FFFFF, 100),)), 1, DP10)
    assert r.body[0].max_entries == 100
    r = theirs(M.AggregateStatsReply(1, 2, 3), 1, DP10)
    assert r.body[0].flow_count == 3
    r = theirs(M.GetConfigReply(0, 128), 1, DP10)
    assert r.miss_send_len == 128
    r = theirs(M.Error("OFPBRC_BAD_TYPE", b"\x01\x63\x00\x08"), 1, DP10)
    assert (r.type, r.code) == (o10.OFPET_BAD_REQUEST, o10.OFPBRC_BAD_TYPE)
