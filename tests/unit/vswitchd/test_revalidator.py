"""The revalidator's crediting: xcache attribution and reinstalled flows."""

import itertools
import threading
from types import SimpleNamespace

import numpy as np

from pyvswitch.datapath.dpif import Megaflow
from pyvswitch.datapath.layout import field_mask, new_key, pack_key
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate
from pyvswitch.vswitchd.revalidator import Revalidator


class FakeSwitch:
    def __init__(self):
        self.lock = threading.RLock()
        self.ofproto = Ofproto("br0")
        self.ofproto.add_port("p1", 1, ofport=1)
        self.ofproto.add_port("p2", 2, ofport=2)
        self.br = SimpleNamespace(name="br0", ofproto=self.ofproto)
        self.flows = []
        self.received = itertools.count()    # the PMDs receive between sweeps
        self.dumps = 0
        self.cutoffs = []
        self.dpif = SimpleNamespace(flow_counters=self._counters,
                                    packets_received=lambda: next(self.received))

    def _counters(self, expire_before=None):
        """dpif.flow_counters' shape, from the Megaflows in self.flows (a
        table of 100); the expired ones leave self.flows."""
        self.dumps += 1
        fl = self.flows
        width = len(new_key())
        used = np.array([f.used for f in fl], np.int64)
        gone = np.zeros(len(fl), bool)
        if expire_before is not None:
            self.cutoffs.append(expire_before(len(fl), 100))
            gone = used < self.cutoffs[-1]
            self.flows = [f for f, g in zip(fl, gone) if not g]
        return [(1, np.array([f.key for f in fl], np.uint64).reshape(len(fl), width),
                 np.array([f.mask for f in fl], np.uint64).reshape(len(fl), width),
                 np.array([f.packets for f in fl], np.int64), np.array([f.bytes for f in fl], np.int64),
                 used, gone)]

    def bridge_of_dp_port(self, dp_port):
        return self.br if dp_port in (1, 2) else None


def in_port_flow(packets, nbytes=100, in_port=1, used=0):
    key = pack_key({"in_port": in_port})
    mask = new_key()
    word, bits = field_mask("in_port")
    mask[word] = bits
    return Megaflow(1, key, mask, [("output", 2)], packets, nbytes, int(used * 1e9), 0)


def test_reinstalled_flow_with_a_reused_identity_counts_from_zero():
    sw = FakeSwitch()
    rv = Revalidator(sw)
    drop = sw.ofproto.add_flow("priority=100,in_port=1,actions=drop")
    f = in_port_flow(1)
    rv.remember(f.key, f.mask, [drop])
    sw.flows = [f]
    rv.sweep(10.0)                       # the drop rule earned 1 packet
    assert drop.n_packets == 1
    sw.ofproto.del_flows("in_port=1")
    out = sw.ofproto.add_flow("priority=50,in_port=1,actions=output:2")
    # revalidation reinstalls the same (key, mask) with counters at zero ...
    rv.remember(f.key, f.mask, [out], reinstalled=True)
    sw.flows = [in_port_flow(3)]         # ... and it then sees 3 packets
    rv.sweep(11.0)
    assert out.n_packets == 3            # not 3 - 1
    assert drop.n_packets == 1


def test_old_packets_stay_with_the_rule_that_forwarded_them():
    sw = FakeSwitch()
    rv = Revalidator(sw)
    first = sw.ofproto.add_flow("priority=100,in_port=1,actions=output:2")
    f = in_port_flow(0)
    rv.remember(f.key, f.mask, [first])
    sw.flows = [f]
    rv.sweep(1.0)
    sw.flows = [in_port_flow(5)]         # 5 packets under the first rule ...
    second = sw.ofproto.add_flow("priority=200,in_port=1,actions=output:2")
    rv.sweep(2.0)                        # ... credited before re-translation
    assert first.n_packets == 5 and second.n_packets == 0


def test_xcache_forgets_flows_that_left_the_datapath():
    sw = FakeSwitch()
    rv = Revalidator(sw)
    f = in_port_flow(0)
    rv.remember(f.key, f.mask, [])
    sw.flows = []
    rv.sweep(1.0)
    assert rv.xcache == {}
    assert np.all(f.key == pack_key({"in_port": 1}))


def test_idle_datapath_is_not_dumped():
    """No packet received since the last sweep: no megaflow counter can
    have moved, so the sweep does not park the PMDs to dump them."""
    sw = FakeSwitch()
    sw.received = itertools.repeat(7)
    rv = Revalidator(sw)
    rule = sw.ofproto.add_flow("priority=100,in_port=1,actions=output:2")
    f = in_port_flow(4)
    rv.remember(f.key, f.mask, [rule])
    sw.flows = [f]
    rv.sweep(1.0)
    rv.sweep(2.0)
    rv.sweep(3.0)
    assert sw.dumps == 1 and rule.n_packets == 4
    sw.received = itertools.repeat(9)   # traffic again: the next sweep dumps
    sw.flows = [in_port_flow(6)]
    rv.sweep(4.0)
    assert sw.dumps == 2 and rule.n_packets == 6


def test_idle_megaflows_expire_after_their_last_packets_are_credited():
    """A megaflow idle for max_idle leaves the datapath at the sweep; its
    last packets still reach the rule, and its identity starts from zero
    if it comes back. An idle switch sweeps when the oldest flow falls due."""
    sw = FakeSwitch()
    sw.received = itertools.repeat(7)          # no new packets: only expiry wakes the sweep
    rv = Revalidator(sw)
    rule = sw.ofproto.add_flow("priority=100,actions=drop")
    busy, idle = in_port_flow(5, used=14.5), in_port_flow(3, in_port=2, used=2.0)
    rv.remember(idle.key, idle.mask, [rule])
    sw.flows = [busy, idle]
    rv.sweep(3.0)
    assert len(sw.flows) == 2 and rv.next_expiry == 12.0     # idle's last use + 10 s
    assert rule.n_packets == 5 + 3
    rv.sweep(11.9)
    assert sw.dumps == 1                                       # not due yet
    rv.sweep(12.5)
    assert sw.dumps == 2 and sw.flows == [busy] and rv.n_expired == 1
    assert sw.cutoffs[-1] == int(2.5e9)
    assert rv.next_expiry == 24.5 and rv.xcache == {}
    assert all(ident[1] != idle.key.tobytes() for ident in rv.last)
    # the same identity back later counts from zero
    sw.flows = [busy, in_port_flow(2, in_port=2, used=20.0)]
    sw.received = itertools.repeat(8)
    rv.sweep(20.5)
    assert rule.n_packets == 5 + 3 + 2


def test_a_crowded_pmd_expires_after_a_tenth_of_a_second():
    sw = FakeSwitch()
    rv = Revalidator(sw)
    rv.flow_limit = 2
    sw.flows = [in_port_flow(0, in_port=i, used=5.0) for i in (1, 2, 3)]
    rv.sweep(5.2)                 # 3 flows over a limit of 2: 0.1 s idle is enough
    assert sw.flows == [] and sw.cutoffs[-1] == int(5.1e9)
    rv.flow_limit = None          # default: 90 % of the table (100 in the fake)
    sw.flows = [in_port_flow(0, in_port=i, used=6.0) for i in (1, 2, 3)]
    rv.sweep(6.2)
    assert len(sw.flows) == 3 and sw.cutoffs[-1] == int(6.2e9) - int(10e9)


def test_xcache_refreshes_replace_the_translation(monkeypatch):
    """A megaflow remembered with its translation's refreshes is credited
    without translating again: its rules get the packets, NORMAL's fdb entry
    for its source MAC is marked seen, a learn action's flow is used."""
    from pyvswitch.vswitchd import revalidator as RVmod

    sw = FakeSwitch()
    ofp = sw.ofproto
    rule = ofp.add_flow("priority=10,actions=learn(table=1,idle_timeout=30,"
                        "NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),NORMAL")
    key = pack_key({"in_port": 1, "dl_src": 0x020000000001, "dl_dst": 0x020000000002,
                    "dl_type": 0x0800})
    r = xlate(ofp, key, 1.0, learn=True)                 # the upcall: learns the MAC, adds the flow
    assert len(r.refreshes) == 2
    learned = list(ofp.rules(1))
    assert len(learned) == 1 and learned[0].used == 1.0
    key = key & r.mask                                    # as the datapath holds it
    f = Megaflow(1, key, r.mask, [("output", 2)], 0, 0, 0, 0)
    rv = Revalidator(sw)
    rv.remember(f.key, f.mask, r.rules_hit + r.tables_hit, r.refreshes)
    sw.flows = [f]
    rv.sweep(2.0)
    calls = []
    monkeypatch.setattr(RVmod, "xlate", lambda *a, **k: calls.append(a) or xlate(*a, **k))
    sw.flows = [Megaflow(1, key, r.mask, [("output", 2)], 4, 400, int(9e9), 0)]
    rv.sweep(9.0)
    assert calls == [] and rule.n_packets == 4 and learned[0].used == 9.0
    assert ofp.fdb.entries[(0, 0x020000000001)].used == 9.0
    # no xcache entry (a flow put with dpctl): translated again (learn="refresh"), same effects
    rv.xcache.clear()
    sw.flows = [Megaflow(1, key, r.mask, [("output", 2)], 6, 600, int(12e9), 0)]
    rv.sweep(12.0)
    assert len(calls) == 1 and calls[0][3:] == () and rule.n_packets == 6
    assert learned[0].used == 12.0 and ofp.fdb.entries[(0, 0x020000000001)].used == 12.0


def test_flows_translated_after_a_mac_change_are_not_translated_again():
    """MAC learning selects the megaflows to or from the changed MACs; of
    those, the ones translated after the change (the flow that learned it,
    typically) are kept as they are."""
    sw = FakeSwitch()
    ofp, rv = sw.ofproto, Revalidator(sw)
    m1, m2 = 0x020000000001, 0x020000000002

    def translated(src, dst):
        key = pack_key({"in_port": 1 if src == m1 else 2, "dl_src": src, "dl_dst": dst,
                        "dl_type": 0x0800})
        r = xlate(ofp, key, 1.0, learn=True)
        rv.remember(key, r.mask, r.rules_hit, r.refreshes)
        return key & r.mask, r.mask
    to_m1 = translated(m2, m1)                      # m1 unknown yet: flooded
    from_m1 = translated(m1, 0xFFFFFFFFFFFF)        # learns m1
    changes = ofp.take_fdb_changes()
    assert set(changes) == {m1, m2}
    assert rv.saw_fdb_changes(*from_m1, changes)             # it made the change
    assert not rv.saw_fdb_changes(*to_m1, changes)           # floods to m1: translate again
    wild = to_m1[1].copy()
    w, bits = field_mask("dl_dst")
    wild[w] &= ~np.uint64(bits)                               # not exact on dl_dst: every MAC counts
    rv.remember(from_m1[0], wild, [])
    assert rv.saw_fdb_changes(from_m1[0], wild, changes)
    assert not rv.saw_fdb_changes(from_m1[0], wild, {**changes, 0x020000000009: Ofproto.fdb_seq + 1})
