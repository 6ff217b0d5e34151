"""Recirculation in the datapath: recirc(id) gives a packet another pass with
its headers parsed again and its metadata (in_port, recirc_id) kept."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.datapath import layout as L

from .conftest import Capture, wait_for

FRAME = bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
              / UDP(sport=1, dport=2) / (b"x" * 18))
MASK = L.pack_key({"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF})
MASK_VLAN = L.pack_key({"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF, "vlan_tci": 0xFFFF})


class Recorder:
    def __init__(self, answer):
        self.answer, self.keys = answer, []

    def __call__(self, keys, in_ports, packets):
        out = []
        for key in keys:
            self.keys.append({f: L.get_field(key, f) for f in ("recirc_id", "in_port", "vlan_tci", "dl_type")})
            out.append(self.answer(L.get_field(key, "recirc_id"), key))
        return out


def test_second_pass_sees_new_headers_and_keeps_metadata(switch):
    dp, ports = switch

    def answer(rid, key):
        if rid == 0:
            return [("push_vlan", 0x1000 | 100), ("recirc", 7)], MASK
        return [("output", 2)], MASK_VLAN

    rec = Recorder(answer)
    dp.set_upcall_handler(rec)
    cap = Capture(ports[2])
    ports[1].inject(FRAME)
    got = cap.wait(1)
    assert len(got) == 1 and bytes(Ether(got[0])[Dot1Q])[:2] == b"\x00\x64"
    # the second upcall: recirc_id 7, same in_port, the pushed tag parsed
    assert rec.keys == [{"recirc_id": 0, "in_port": 1, "vlan_tci": 0, "dl_type": 0x0800},
                        {"recirc_id": 7, "in_port": 1, "vlan_tci": 0x1000 | 100, "dl_type": 0x0800}]
    for _ in range(9):
        ports[1].inject(FRAME)
    assert len(cap.wait(10)) == 10
    assert len(rec.keys) == 2                       # both passes now hit megaflows
    s = dp.pmd_stats()[dp.pmds[0].core]
    assert s["packets"] == 10 and s["recirculations"] == 10 and s["recirc_drops"] == 0
    text = dp.pmd_stats_show()
    assert "  packet recirculations: 10\n" in text
    assert "  avg. datapath passes per packet: 2.00\n" in text
    flows = dp.format_flows()
    assert "recirc_id(0),in_port(1)" in flows and "recirc_id(0x7),in_port(1)" in flows
    assert "actions:push_vlan(vid=100,pcp=0),recirc(0x7)" in flows


def test_recirc_then_more_actions_copies(switch):
    dp, ports = switch
    dp.set_upcall_handler(Recorder(lambda rid, key: ([("recirc", 9), ("output", 3)], MASK) if rid == 0
                                   else ([("output", 2)], MASK)))
    cap2, cap3 = Capture(ports[2]), Capture(ports[3])
    for _ in range(3):
        ports[1].inject(FRAME)
    assert cap2.wait(3) == [FRAME] * 3 and cap3.wait(3) == [FRAME] * 3


def test_depth_limit_drops_and_switch_goes_on(switch):
    dp, ports = switch

    def answer(rid, key):
        if L.get_field(key, "in_port") == 3:
            return [("output", 2)], MASK
        return [("recirc", rid + 1)], MASK              # recirculates for ever

    rec = Recorder(answer)
    dp.set_upcall_handler(rec)
    ports[1].inject(FRAME)
    s = wait_for(lambda: dp.pmd_stats()[dp.pmds[0].core]["recirc_drops"] == 1 and dp.pmd_stats())
    st = s[dp.pmds[0].core]
    assert st["recirculations"] == L.MAX_RECIRC_DEPTH
    assert [k["recirc_id"] for k in rec.keys] == list(range(L.MAX_RECIRC_DEPTH + 1))
    cap = Capture(ports[2])
    ports[3].inject(FRAME)
    assert cap.wait(1) == [FRAME]
    assert ports[2].capture() == [] and ports[3].capture() == []


def test_metadata_mask_covers_exactly_the_metadata_fields():
    for name in L.FIELDS:
        word, bits = L.field_mask(name)
        covered = int(L.META_MASK[word]) & bits
        assert covered == (bits if name in L.META_FIELDS else 0), name


@pytest.mark.parametrize("rid,text", [(0, "recirc_id(0)"), (0x7, "recirc_id(0x7)"), (0x1234, "recirc_id(0x1234)")])
def test_flow_text_prints_recirc_id_like_ovs(rid, text):
    from pyvswitch.datapath.flowfmt import format_flow
    line = format_flow(L.pack_key({"recirc_id": rid, "in_port": 1}), MASK, [], 0, 0, 0, 0)
    assert line.startswith(text + ",in_port(1)")
