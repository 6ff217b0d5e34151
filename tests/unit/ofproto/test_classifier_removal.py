"""Classifier removal: cheap at scale, and still the oracle's answer after any
mix of inserts, removals and lookups (the lazy subtable order included)."""

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.ofproto.classifier import Classifier
from pyvswitch.ofproto.ofproto import Ofproto

from .test_ofp_classifier import BITS, N_WORDS, R, _FLOWS, _sub, oracle

_MASKS = st.tuples(*[_sub(b) for b in BITS])


@st.composite
def programs(draw):
    """A list of ("add", mask, key, priority) / ("del", i) / ("look", flow)."""
    shapes = draw(st.lists(_MASKS, min_size=1, max_size=4))
    ops, n_added = [], 0
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(("add", "add", "del", "look")))
        if kind == "add":
            mask = draw(st.sampled_from(shapes))
            key = tuple(v & m for v, m in zip(draw(_FLOWS), mask))
            ops.append(("add", mask, key, draw(st.integers(0, 4))))
            n_added += 1
        elif kind == "del" and n_added:
            ops.append(("del", draw(st.integers(0, n_added - 1))))
        else:
            ops.append(("look", draw(_FLOWS)))
    return ops


@settings(max_examples=300)
@given(programs(), st.lists(_FLOWS, min_size=1, max_size=5))
def test_interleaved_inserts_removals_lookups_match_oracle(ops, probes):
    cls, added, live = Classifier(N_WORDS), [], []
    for op in ops:
        if op[0] == "add":
            r = R(op[2], op[1], op[3], len(added))
            added.append(r)
            live.append(r)
            cls.insert(r)
        elif op[0] == "del":
            r = added[op[1]]
            if any(x is r for x in live):
                cls.remove(r)
                live = [x for x in live if x is not r]
        else:
            assert cls.lookup(op[1]) is oracle(live, op[1])
        assert len(cls) == len(live)
    for flow in probes:
        assert cls.lookup(flow, [0] * N_WORDS) is oracle(live, flow)
    # the subtable order the lookup uses is by max priority, highest first
    order = [st_.max_priority for st_ in cls._ordered()]
    assert order == sorted(order, reverse=True)
    for st_ in cls._subtables.values():
        assert st_.max_priority == max(r.priority for b in st_.buckets.values() for r in b)


def test_removing_one_rule_does_not_scan_the_table():
    """100,000 rules of one priority in one subtable: removing all of them is
    linear (it was quadratic: each removal recomputed the max priority)."""
    n = 100_000
    cls = Classifier(1)
    rules = [R((i,), (0xFFFFFFFF,), 100, i) for i in range(n)]
    for r in rules:
        cls.insert(r)
    t = time.perf_counter()
    for r in rules[: n // 2]:
        cls.remove(r)
    assert cls.lookup((n - 1,)) is rules[-1] and cls.lookup((0,)) is None
    for r in rules[n // 2:]:
        cls.remove(r)
    elapsed = time.perf_counter() - t
    assert len(cls) == 0 and cls.n_subtables() == 0
    assert elapsed < 30.0, f"removing {n} rules took {elapsed:.1f} s"


def test_strict_delete_finds_its_rule_without_a_scan():
    ofp = Ofproto("br0")
    for i in range(2000):
        ofp.add_flow(f"table={i % 3},priority={10 + i % 2},ip,nw_dst=10.0.{i >> 8}.{i & 255},"
                     "actions=drop")
    gone = ofp.del_flows("table=1,priority=10,ip,nw_dst=10.0.0.4", strict=True)
    assert [(r.table_id, r.priority) for r in gone] == [(1, 10)]
    assert not ofp.del_flows("table=1,priority=11,ip,nw_dst=10.0.0.4", strict=True)
    # no table named: every table is searched (OpenFlow 1.0 semantics)
    gone = ofp.del_flows("priority=11,ip,nw_dst=10.0.0.5", strict=True)
    assert [(r.table_id, r.priority) for r in gone] == [(2, 11)]
    assert len(list(ofp.rules())) == 2000 + 1 - 2
