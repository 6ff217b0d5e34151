"""set_field spellings in pvs-ofctl's output, table-driven from what
ovs-ofctl 3.1 prints (recorded from ovs-ofctl against pyvswitch's daemon,
and from ovs-ofctl diff-flows on files): Open vSwitch's own field names
(eth_src, ip_dst, tcp_src, udp_dst...) and, for OpenFlow 1.3 dumps, VLAN
set_fields with the OFPVID_PRESENT bit. tests/e2e/test_ofctl_wire.py checks
the same against a live ovs-ofctl."""

import pytest

from pyvswitch.openflow import wire
from pyvswitch.openflow.text import fte_actions, parse_flow

# flow text -> actions= as ovs-ofctl -O OpenFlow13 dump-flows prints it
OF13_DUMP = [
    ("actions=set_field:00:00:00:00:00:05->dl_src", "set_field:00:00:00:00:00:05->eth_src"),
    ("actions=mod_dl_dst:00:00:00:00:00:05", "set_field:00:00:00:00:00:05->eth_dst"),
    ("ip,actions=mod_nw_src:1.2.3.4", "set_field:1.2.3.4->ip_src"),
    ("ip,actions=set_field:1.2.3.4->nw_dst", "set_field:1.2.3.4->ip_dst"),
    ("tcp,actions=mod_tp_src:99", "set_field:99->tcp_src"),
    ("tcp,actions=set_field:9->tp_dst", "set_field:9->tcp_dst"),
    ("udp,actions=mod_tp_dst:53", "set_field:53->udp_dst"),
    ("sctp,actions=set_field:7->tp_src", "set_field:7->sctp_src"),
    ("ip,actions=set_field:5->ip_dscp", "set_field:5->ip_dscp"),
    ("ip,actions=mod_vlan_vid:7", "push_vlan:0x8100,set_field:4103->vlan_vid"),
    ("actions=set_field:7->vlan_vid", "set_field:4103->vlan_vid"),
    ("actions=set_vlan_pcp:3", "set_field:3->vlan_pcp"),
    ("actions=set_field:1->reg0", "set_field:0x1->reg0"),
    ("ipv6,actions=set_field:::5->ipv6_src", "set_field:::5->ipv6_src"),
    ("actions=set_field:0x5->tun_id", "set_field:0x5->tun_id"),
    ("ip,actions=set_field:9->nw_ttl", "set_field:9->nw_ttl"),
]

# flow text -> actions= as ovs-ofctl diff-flows prints a flow read from a file
FILE = [
    ("actions=set_field:00:00:00:00:00:05->dl_src", "set_field:00:00:00:00:00:05->eth_src"),
    ("actions=set_field:00:00:00:00:00:05->dl_dst", "set_field:00:00:00:00:00:05->eth_dst"),
    ("ip,actions=set_field:1.2.3.4->nw_src", "set_field:1.2.3.4->ip_src"),
    ("ip,actions=set_field:1.2.3.4->nw_dst", "set_field:1.2.3.4->ip_dst"),
    ("tcp,actions=set_field:80->tp_src", "set_field:80->tcp_src"),
    ("tcp,actions=set_field:80->tp_dst", "set_field:80->tcp_dst"),
    ("udp,actions=set_field:80->udp_src", "set_field:80->udp_src"),
    ("sctp,actions=set_field:80->sctp_dst", "set_field:80->sctp_dst"),
    ("ip,actions=set_field:8->nw_tos", "set_field:8->nw_tos"),
    ("ip,actions=set_field:2->nw_ecn", "set_field:2->nw_ecn"),
    ("actions=set_field:0x5->pkt_mark", "set_field:0x5->pkt_mark"),
    ("ip,actions=mod_nw_src:1.2.3.4", "mod_nw_src:1.2.3.4"),       # legacy actions stay
    ("actions=mod_dl_src:00:00:00:00:00:05", "mod_dl_src:00:00:00:00:00:05"),
    ("actions=mod_vlan_vid:5", "mod_vlan_vid:5"),
]


@pytest.mark.parametrize("text,want", OF13_DUMP)
def test_openflow13_dump_spelling(text, want):
    fm = parse_flow(text, "add")
    _, _, back = wire.decode(wire.encode(fm, wire.OFP13, 2))   # what the switch stores
    assert fte_actions(back, spelling="of13") == want


@pytest.mark.parametrize("text,want", FILE)
def test_file_spelling(text, want):
    assert fte_actions(parse_flow(text, "add"), spelling="file") == want


def test_internal_text_is_unchanged():
    """The canonical text (daemon side, traces) keeps pyvswitch's names."""
    fm = parse_flow("ip,actions=set_field:1.2.3.4->ip_src", "add")
    assert fte_actions(fm, spelling=None) == "set_field:1.2.3.4->nw_src"
