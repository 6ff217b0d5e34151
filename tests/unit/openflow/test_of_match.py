"""Match: flow-key form, normalisation, prerequisites."""

from pyvswitch.datapath import layout
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.text import parse_flow


def _km(text):
    return parse_flow(text + ",actions=drop").match.key_mask()


def _field(words, name):
    word, shift, bits = F.FLOW_FIELDS[name]
    return (words[word] >> shift) & ((1 << bits) - 1)


def test_vlan_spellings_share_key_mask():
    assert _km("dl_vlan=10") == _km("vlan_tci=0x100a/0x1fff")
    key, mask = _km("dl_vlan=10")
    assert _field(key, "vlan_tci") == 0x100A and _field(mask, "vlan_tci") == 0x1FFF
    key, mask = _km("dl_vlan=0xffff")
    assert (_field(key, "vlan_tci"), _field(mask, "vlan_tci")) == (0, 0xFFFF)
    key, mask = _km("dl_vlan=10,dl_vlan_pcp=5")
    assert _field(key, "vlan_tci") == 0xB00A and _field(mask, "vlan_tci") == 0xFFFF


def test_fields_map_onto_layout():
    key, mask = _km("tcp,in_port=3,nw_dst=10.0.0.0/8,tp_dst=80")
    assert len(key) == F.FLOW_WORDS
    assert _field(key, "dl_type") == 0x0800 and _field(key, "nw_proto") == 6
    assert _field(key, "nw_dst") == 0x0A000000 and _field(mask, "nw_dst") == 0xFF000000
    assert _field(key, "tp_dst") == 80 and _field(key, "in_port") == 3
    key, mask = _km("ipv6,ipv6_src=2001:db8::1")
    assert _field(key, "ipv6_src_hi") == 0x20010DB800000000
    assert _field(key, "ipv6_src_lo") == 1
    key, mask = _km("ip,ip_dscp=46")
    assert _field(key, "nw_tos") == 46 << 2 and _field(mask, "nw_tos") == 0xFC
    assert layout.FIELDS["dl_src"] == F.FLOW_FIELDS["dl_src"]


def test_match_equality_and_removal():
    m = Match({"in_port": 1})
    assert m == Match({"in_port": 1}) and hash(m) == hash(Match({"in_port": 1}))
    assert m.with_field("in_port", 0, 0) == Match()
    assert len(m.with_field("dl_src", 5, 0xF)) == 2
