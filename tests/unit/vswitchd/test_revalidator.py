"""The revalidator's crediting: xcache attribution and reinstalled flows."""

import itertools
import threading
from types import SimpleNamespace

import numpy as np

from pyvswitch.datapath.dpif import Megaflow
from pyvswitch.datapath.layout import field_mask, new_key, pack_key
from pyvswitch.ofproto.ofproto import Ofproto
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
        self.dpif = SimpleNamespace(flow_counters=self._counters,
                                    packets_received=lambda: next(self.received))

    def _counters(self):
        """dpif.flow_counters' shape, from the Megaflows in self.flows."""
        self.dumps += 1
        fl = self.flows
        width = len(new_key())
        return [(1, np.array([f.key for f in fl], np.uint64).reshape(len(fl), width),
                 np.array([f.mask for f in fl], np.uint64).reshape(len(fl), width),
                 np.array([f.packets for f in fl], np.int64), np.array([f.bytes for f in fl], np.int64))]

    def bridge_of_dp_port(self, dp_port):
        return self.br if dp_port in (1, 2) else None


def in_port_flow(packets, nbytes=100):
    key = pack_key({"in_port": 1})
    mask = new_key()
    word, bits = field_mask("in_port")
    mask[word] = bits
    return Megaflow(1, key, mask, [("output", 2)], packets, nbytes, 0, 0)


def test_reinstalled_flow_with_a_reused_identity_counts_from_zero():
    sw = FakeSwitch()
    rv = Revalidator(sw)
    drop = sw.ofproto.add_flow("priority=100,in_port=1,actions=drop")
    f = in_port_flow(1)
    rv.remember("br0", f.key, f.mask, [drop])
    sw.flows = [f]
    rv.sweep(10.0)                       # the drop rule earned 1 packet
    assert drop.n_packets == 1
    sw.ofproto.del_flows("in_port=1")
    out = sw.ofproto.add_flow("priority=50,in_port=1,actions=output:2")
    # revalidation reinstalls the same (key, mask) with counters at zero ...
    rv.remember("br0", f.key, f.mask, [out], reinstalled=True)
    sw.flows = [in_port_flow(3)]         # ... and it then sees 3 packets
    rv.sweep(11.0)
    assert out.n_packets == 3            # not 3 - 1
    assert drop.n_packets == 1


def test_old_packets_stay_with_the_rule_that_forwarded_them():
    sw = FakeSwitch()
    rv = Revalidator(sw)
    first = sw.ofproto.add_flow("priority=100,in_port=1,actions=output:2")
    f = in_port_flow(0)
    rv.remember("br0", f.key, f.mask, [first])
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
    rv.remember("br0", f.key, f.mask, [])
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
    rv.remember("br0", f.key, f.mask, [rule])
    sw.flows = [f]
    rv.sweep(1.0)
    rv.sweep(2.0)
    rv.sweep(3.0)
    assert sw.dumps == 1 and rule.n_packets == 4
    sw.received = itertools.repeat(9)   # traffic again: the next sweep dumps
    sw.flows = [in_port_flow(6)]
    rv.sweep(4.0)
    assert sw.dumps == 2 and rule.n_packets == 6
