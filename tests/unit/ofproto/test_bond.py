"""ofproto/bond.py as a pure function of time and carriers, and NORMAL over a
bond (admission, member choice, no loop back into the bond, megaflow)."""

from pyvswitch.datapath import layout
from pyvswitch.ofproto import bond as B
from pyvswitch.ofproto import lacp as L
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate

M1, M2 = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
MAC_A, MAC_H, BCAST = 0x0A0000000001, 0x0A0000000002, 0xFFFFFFFFFFFF


def bond(mode="active-backup", **kw):
    b = B.Bond("bond0")
    b.reconfigure(B.Settings(mode=mode, **kw), 0.0)
    b.set_members([("m1", 2, M1), ("m2", 3, M2)], {2: True, 3: True}, 0.0)
    b.run(0.0, {2: True, 3: True})
    return b


def field(values):
    return lambda name: values.get(name, 0)


def test_active_backup_choice_and_failover():
    b = bond()
    assert b.active.name == "m1" and b.take_learning()
    assert b.choose_output(0, field({})) == (2, None)
    assert b.check_admissibility(2, MAC_H) == B.ACCEPT
    assert b.check_admissibility(3, MAC_H) == B.DROP       # backup member
    assert b.run(1.0, {2: False, 3: True})                 # carrier lost: at once
    assert b.active.name == "m2" and not b.members["m1"].enabled
    assert b.choose_output(0, field({})) == (3, None)
    assert b.take_learning() and not b.take_learning()
    assert not b.run(1.1, {2: False, 3: True})             # nothing new


def test_delays():
    b = bond(updelay=200, downdelay=100)
    b.run(1.0, {2: False, 3: True})
    assert b.members["m1"].enabled and "downdelay expires in 100 ms" in b.show(1.0)
    b.run(1.05, {2: False, 3: True})
    assert b.members["m1"].enabled
    b.run(1.1, {2: False, 3: True})
    assert not b.members["m1"].enabled and b.active.name == "m2"
    b.run(2.0, {2: True, 3: True})
    assert not b.members["m1"].enabled and "updelay expires in 200 ms" in b.show(2.0)
    b.run(2.1, {2: False, 3: True})                        # flapped: the updelay is cancelled
    assert b.members["m1"].delay_expires is None
    b.run(3.0, {2: True, 3: True})
    b.run(3.2, {2: True, 3: True})
    assert b.members["m1"].enabled
    assert b.active.name == "m2"                           # no preemption without a primary


def test_primary_and_all_down():
    b = bond(primary="m2")
    assert b.active.name == "m2"
    b.run(1.0, {2: True, 3: False})
    assert b.active.name == "m1"
    b.run(2.0, {2: True, 3: True})
    assert b.active.name == "m2"                           # the primary comes back
    b.run(3.0, {2: False, 3: False})
    assert b.active is None and b.choose_output(0, field({})) == (None, None)


def test_updelay_skipped_when_nothing_else_is_up():
    b = bond(updelay=5000)
    b.run(1.0, {2: False, 3: False})
    b.run(2.0, {2: True, 3: False})                        # m1 pending its updelay...
    assert b.active.name == "m1" and b.members["m1"].enabled   # ...used at once, as OVS


def test_balance_slb_buckets_and_admission():
    b = bond("balance-slb")
    out = {src: b.choose_output(10, field({"dl_src": src}))[0] for src in range(1, 40)}
    assert set(out.values()) == {2, 3}
    assert all(b.choose_output(10, field({"dl_src": s}))[0] == p for s, p in out.items())
    assert b.check_admissibility(3, MAC_H) == B.DROP_IF_MOVED   # unicast on any member
    assert b.check_admissibility(3, BCAST) == B.DROP            # multicast: active only
    b.run(1.0, {2: False, 3: True})
    assert all(b.choose_output(10, field({"dl_src": s}))[0] == 3 for s in out)


def test_balance_tcp_and_lacp_refused_without_negotiation():
    b = bond("balance-tcp")
    assert b.choose_output(0, field({"dl_type": 0x800})) == (None, None)
    assert b.check_admissibility(2, MAC_H) == B.DROP
    b = with_lacp(bond("balance-slb", lacp="active"))
    assert b.lacp_status == "configured" and b.choose_output(0, field({}))[0] is None
    b = with_lacp(bond("balance-slb", lacp="active", fallback_ab=True))
    assert b.choose_output(0, field({})) == (2, None)          # falls back to active-backup


def with_lacp(b, sys_id=b"\x02\x00\x00\x00\x00\xaa"):
    b.lacp = L.Lacp(b.name, sys_id, active=True, fast=True)
    b.lacp.set_members([("m1", 2), ("m2", 3)])
    b.run(0.0, {2: True, 3: True})
    return b


def test_lacp_negotiates_between_two_bonds():
    x = with_lacp(bond("balance-tcp", lacp="active"))
    y = with_lacp(bond("balance-tcp", lacp="active"), b"\x02\x00\x00\x00\x00\xbb")
    for now in (1.0, 2.0, 3.0):                    # exchange LACPDUs member to member
        for a, b in ((x, y), (y, x)):
            _, pdus = a.lacp.run(now)
            for ofport, frame in pdus:
                b.lacp_rx(ofport, frame, now)      # m1 <-> m1, m2 <-> m2
        x.run(now, {2: True, 3: True})
        y.run(now, {2: True, 3: True})
    assert x.lacp_status == y.lacp_status == "negotiated"
    assert all(m.may_enable and m.enabled for m in x.members.values())
    tcp = field({"dl_type": 0x800, "nw_src": 1, "nw_dst": 2, "nw_proto": 6,
                 "tp_src": 1000, "tp_dst": 80})
    port, bucket = x.choose_output(0, tcp)
    assert port in (2, 3) and bucket is not None
    back = field({"dl_type": 0x800, "nw_src": 2, "nw_dst": 1, "nw_proto": 6,
                  "tp_src": 80, "tp_dst": 1000})
    assert x.buckets.index(bucket) == x.buckets.index(x.choose_output(0, back)[1])  # symmetric
    assert x.check_admissibility(3, MAC_H) == B.ACCEPT
    assert "current attached" in x.lacp.show(3.0)
    x.run(20.0, {2: True, 3: True})                # no LACPDU for 17 s: partners expire
    assert x.lacp_status == "configured"
    assert x.choose_output(0, tcp) == (None, None)


def test_lacpdu_round_trip():
    lc = L.Lacp("b", b"\x02\x00\x00\x00\x00\x01", active=True, fast=False, key=7)
    lc.set_members([("m1", 5)])
    actor, partner = L.parse(lc.pdu(lc.members[5], 0.0))
    assert actor.sys_id == b"\x02\x00\x00\x00\x00\x01" and actor.key == 7 and actor.port == 5
    assert actor.state & L.ACTIVITY and actor.state & L.AGGREGATION and not actor.state & L.SYNC
    assert partner.sys_id == bytes(6)
    assert L.parse(b"\x00" * 60) is None


def test_rebalance_moves_load():
    b = bond("balance-slb", rebalance_interval=1000)
    srcs = range(1, 200)
    for s in srcs:
        b.choose_output(0, field({"dl_src": s}))
    heavy = [bk for bk in b.buckets if bk.member is not None and bk.member.name == "m1"]
    for bk in heavy[:4]:
        bk.n_bytes += 10_000_000                            # all the load on m1
    assert b.rebalance(5.0)
    loads = {m: sum(bk.load for bk in b.buckets if bk.member is not None
                    and bk.member.name == m) for m in ("m1", "m2")}
    assert loads["m2"] > 0
    assert "next rebalance: 1000 ms" in b.show(5.0)


def test_settings_from_port_defaults_and_warnings():
    warned = []
    s = B.settings_from_port({"name": "b", "bond_mode": "balance-tcp",
                              "other_config": {"bond-rebalance-interval": "10"}},
                             warn=lambda *a: warned.append(a[0] % a[1:]))
    assert s.rebalance_interval == 1000 and s.lacp == "off"
    assert any("balance-tcp needs LACP" in w for w in warned)


# --- NORMAL over a bond ---------------------------------------------------------
def bridge(mode="active-backup"):
    o = Ofproto("br0")
    o.add_port("pa", dp_port=11, ofport=1)
    o.add_port("m1", dp_port=12, ofport=2, bundle="bond0")
    o.add_port("m2", dp_port=13, ofport=3, bundle="bond0")
    o.set_bonds({"bond0": bond(mode)})
    return o


def pkt(dp, src, dst):
    return {"in_port": dp, "dl_src": src, "dl_dst": dst, "dl_type": 0x0800}


def test_normal_floods_into_one_member_and_never_back():
    o = bridge()
    assert xlate(o, pkt(11, MAC_A, BCAST), 0.0).actions == [("output", 12)]
    r = xlate(o, pkt(12, MAC_H, BCAST), 0.0)               # in by the bond
    assert r.actions == [("output", 11)]                   # not out of m2
    assert r.learned == [(0, MAC_H, 2, "new")]             # learned on the bond
    assert xlate(o, pkt(11, MAC_A, MAC_H), 0.0).actions == [("output", 12)]
    r = xlate(o, pkt(13, MAC_H, MAC_A), 0.0, trace=True)   # backup member: refused
    assert r.actions == [] and any("bonding refused admissibility" in t for t in r.trace)


def test_slb_loop_check_and_megaflow():
    o = bridge("balance-slb")
    xlate(o, pkt(11, MAC_A, BCAST), 0.0)                   # A learned on pa
    r = xlate(o, pkt(12, MAC_A, MAC_H), 0.0, trace=True)
    assert r.actions == [] and any("looped back" in t for t in r.trace)
    r = xlate(o, pkt(11, MAC_A, MAC_H), 0.0)
    assert r.actions in ([("output", 12)], [("output", 13)])
    fields = layout.mask_fields(r.mask)
    assert fields["dl_src"] == 2**48 - 1 and fields["vlan_tci"] & 0x0FFF == 0x0FFF
    assert any(isinstance(x, B.Bucket) for x in r.rules_hit)   # accounting
