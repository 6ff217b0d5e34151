"""NORMAL on a bridge with access and trunk ports; the fdb on a manual clock."""

import pytest

from pyvswitch.datapath import layout
from pyvswitch.ofproto import normal as N
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate

MAC1, MAC2, MAC3 = 0x0A0000000001, 0x0A0000000002, 0x0A0000000003
BCAST = 0xFFFFFFFFFFFF
NORMAL_MASK = {"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF, "vlan_tci": 0x1FFF,
               "dl_src": 2**48 - 1, "dl_dst": 2**48 - 1}


@pytest.fixture
def br():
    """p1, p2: access VLAN 10 (dp 11, 12); p3: trunk all VLANs (dp 13);
    p4: access VLAN 20 (dp 14); p5: trunk 10,30 (dp 15)."""
    o = Ofproto("br0")
    o.add_port("p1", dp_port=11, tag=10)
    o.add_port("p2", dp_port=12, tag=10)
    o.add_port("p3", dp_port=13)
    o.add_port("p4", dp_port=14, tag=20)
    o.add_port("p5", dp_port=15, trunks=[10, 30])
    return o


def pkt(dp, src, dst, vid=None, pcp=0):
    tci = 0 if vid is None else layout.VLAN_CFI | vid | pcp << 13
    return {"in_port": dp, "dl_src": src, "dl_dst": dst, "vlan_tci": tci,
            "dl_type": 0x0800}


def test_unknown_unicast_floods_within_vlan_only(br):
    r = xlate(br, pkt(11, MAC1, MAC2), 0.0)
    # Untagged out of the other access port; tagged 10 out of both trunks.
    assert r.actions == [("output", 12), ("push_vlan", 10), ("output", 13),
                         ("output", 15)]
    assert layout.mask_fields(r.mask) == NORMAL_MASK
    assert r.learned == [(10, MAC1, 1, "new")]


def test_broadcast_from_trunk(br):
    r = xlate(br, pkt(13, MAC3, BCAST, vid=20), 0.0)
    assert r.actions == [("pop_vlan",), ("output", 14)]
    r = xlate(br, pkt(13, MAC3, BCAST, vid=30), 0.0)
    assert r.actions == [("output", 15)]
    r = xlate(br, pkt(13, MAC3, BCAST), 0.0)   # untagged on a trunk: VLAN 0
    assert r.actions == []
    assert r.learned and r.learned[0][0] == 0


def test_learned_unicast_and_never_back_to_in_port(br):
    xlate(br, pkt(11, MAC1, BCAST), 0.0)
    r = xlate(br, pkt(13, MAC2, MAC1, vid=10), 1.0)
    assert r.actions == [("pop_vlan",), ("output", 11)]
    r = xlate(br, pkt(12, MAC2, MAC1), 2.0)     # MAC2 moves to p2
    assert r.actions == [("output", 11)]
    assert r.learned == [(10, MAC2, 2, "moved")]
    r = xlate(br, pkt(11, MAC3, MAC1), 3.0)     # MAC1 is on the input port
    assert r.actions == []
    assert layout.mask_fields(r.mask) == NORMAL_MASK


def test_vlan_drops(br):
    assert xlate(br, pkt(11, MAC1, BCAST, vid=10), 0.0).actions == []  # tagged on access
    assert xlate(br, pkt(15, MAC1, BCAST, vid=20), 0.0).actions == []  # not in trunks
    # priority-tagged (VID 0) frames are accepted on an access port; the PCP
    # is kept on the trunks and so becomes part of the megaflow.
    r = xlate(br, pkt(11, MAC1, BCAST, vid=0, pcp=5), 0.0)
    assert r.actions == [("pop_vlan",), ("output", 12),
                         ("push_vlan", 10 | 5 << 13), ("output", 13), ("output", 15)]
    assert layout.mask_fields(r.mask)["vlan_tci"] == 0xFFFF


def test_reserved_multicast_dropped(br):
    assert xlate(br, pkt(11, MAC1, 0x0180C2000000), 0.0).actions == []


def test_native_modes():
    o = Ofproto("br0")
    o.add_port("nu", dp_port=1, tag=10, vlan_mode="native-untagged")
    o.add_port("nt", dp_port=2, tag=10, vlan_mode="native-tagged")
    o.add_port("tr", dp_port=3)
    r = xlate(o, pkt(1, MAC1, BCAST), 0.0)            # untagged in -> VLAN 10
    assert r.actions == [("push_vlan", 10), ("output", 2), ("output", 3)]
    r = xlate(o, pkt(3, MAC2, BCAST, vid=10), 0.0)
    assert r.actions == [("output", 2), ("pop_vlan",), ("output", 1)]
    r = xlate(o, pkt(3, MAC2, BCAST, vid=7), 0.0)
    assert r.actions == [("output", 1), ("output", 2)]


def test_learning_disabled_for_revalidation(br):
    r = xlate(br, pkt(11, MAC1, BCAST), 0.0, learn=False)
    assert r.learned == [] and len(br.fdb) == 0
    assert layout.mask_fields(r.mask) == NORMAL_MASK


def test_learning_records_the_mac_not_a_version(br):
    """Learning changes the translations to and from one MAC: the daemon
    re-translates those megaflows only (a version bump would mean all)."""
    v = br.version
    xlate(br, pkt(11, MAC1, BCAST), 0.0)
    learned = br.take_fdb_changes()
    assert br.version == v and learned == {MAC1: Ofproto.fdb_seq}   # numbered, in one order
    xlate(br, pkt(11, MAC1, BCAST), 1.0)     # refresh only
    assert br.take_fdb_changes() == {}
    xlate(br, pkt(12, MAC1, BCAST), 2.0)     # moved
    moved = br.take_fdb_changes()
    assert moved.keys() == {MAC1} and moved[MAC1] > learned[MAC1] and br.version == v


def test_fdb_aging_with_manual_clock(br):
    xlate(br, pkt(11, MAC1, BCAST), 0.0)
    assert xlate(br, pkt(12, MAC2, MAC1), 299.0).actions == [("output", 11)]
    # MAC2 was learned at 299; MAC1 is 300 s old now and no longer used.
    r = xlate(br, pkt(12, MAC2, MAC1), 300.0)
    assert ("output", 13) in r.actions          # flooded again
    br.take_fdb_changes()
    v = br.version
    br.run(301.0)
    assert br.version == v and set(br.take_fdb_changes()) == {MAC1}     # aged out
    assert (10, MAC1) not in br.fdb.entries and (10, MAC2) in br.fdb.entries


def test_aging_scans_only_the_expired_head():
    """Least recently seen first: expire stops at the first live entry, and
    a refreshed entry moved to the end is not aged with the old ones."""
    fdb = N.Fdb(aging_time=10)
    for i in range(5):
        fdb.learn(1, MAC1 + i, 1, float(i))
    fdb.refresh(1, MAC1, 1, 9.0)                  # the oldest, seen again
    assert fdb.expire(12.5) == [(1, MAC1 + 1, 1), (1, MAC1 + 2, 1)]
    assert fdb.lookup(1, MAC1, 12.5) == 1 and len(fdb) == 3


def test_fdb_size_limit_evicts_oldest():
    fdb = N.Fdb(aging_time=300, max_entries=3)
    for i, t in enumerate([0.0, 1.0, 2.0]):
        fdb.learn(1, MAC1 + i, 1, t)
    fdb.learn(1, MAC1, 1, 3.0)                  # refresh: now the newest
    fdb.learn(1, MAC1 + 5, 2, 4.0)              # evicts MAC1+1 (oldest)
    assert len(fdb) == 3
    assert fdb.lookup(1, MAC1 + 1, 4.0) is None
    assert fdb.lookup(1, MAC1, 4.0) == 1
    fdb.set_config(max_entries=1)
    assert list(fdb.entries) == [(1, MAC1 + 5)]


def test_fdb_show_and_flush(br):
    xlate(br, pkt(11, 0xAABBCCDDEE01, BCAST), 10.0)
    xlate(br, pkt(13, 0xAABBCCDDEE02, BCAST, vid=10), 12.0)
    assert br.fdb_show(13.0) == (
        " port  VLAN  MAC                Age\n"
        "    1    10  aa:bb:cc:dd:ee:01    3\n"
        "    3    10  aa:bb:cc:dd:ee:02    1\n")
    v = br.version
    assert br.fdb_flush() == 2
    assert br.version > v
    assert br.fdb_show(13.0) == " port  VLAN  MAC                Age\n"


def test_port_removal_and_vlan_change_flush_fdb(br):
    xlate(br, pkt(11, MAC1, BCAST), 0.0)
    xlate(br, pkt(12, MAC2, BCAST), 0.0)
    br.set_port_vlan("p1", tag=20)
    assert br.fdb.lookup(10, MAC1, 0.0) is None
    br.del_port("p2")
    assert len(br.fdb) == 0
    r = xlate(br, pkt(11, MAC1, BCAST), 1.0)    # p1 is now in VLAN 20 with p4
    assert r.actions == [("output", 14), ("push_vlan", 20), ("output", 13)]
