"""Classifier: tuple space search against a brute-force oracle."""

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.ofproto.classifier import Classifier

N_WORDS = 3
# A narrow universe (a few bits in each word) so rules and packets collide.
BITS = (0x0F, 0x33, 0x107)


@dataclass(eq=False)
class R:
    key: tuple
    mask: tuple
    priority: int
    seq: int


def matches(rule, flow):
    return all((f & m) == k for f, m, k in zip(flow, rule.mask, rule.key))


def oracle(rules, flow):
    hits = [r for r in rules if matches(r, flow)]
    return min(hits, key=lambda r: (-r.priority, r.seq), default=None)


def _sub(bits):
    return st.integers(0, bits).map(lambda v: v & bits)


_FLOWS = st.tuples(*[_sub(b) for b in BITS])


@st.composite
def rule_sets(draw):
    n = draw(st.integers(0, 25))
    shapes = draw(st.lists(st.tuples(*[_sub(b) for b in BITS]), min_size=1,
                           max_size=4))
    rules = []
    for seq in range(n):
        mask = draw(st.sampled_from(shapes))
        key = tuple(v & m for v, m in zip(draw(_FLOWS), mask))
        rules.append(R(key, mask, draw(st.integers(0, 6)), seq))
    return rules


def _build(rules):
    cls = Classifier(N_WORDS)
    for r in rules:
        cls.insert(r)
    return cls


@settings(max_examples=400)
@given(rule_sets(), _FLOWS, _FLOWS)
def test_lookup_equals_oracle_and_mask_is_sound(rules, flow, noise):
    cls = _build(rules)
    wc = [0] * N_WORDS
    got = cls.lookup(flow, wc)
    assert got is oracle(rules, flow)
    # Any packet agreeing with `flow` on the examined bits gets the same rule.
    other = tuple((f & w) | (n & ~w) for f, w, n in zip(flow, wc, noise))
    assert cls.lookup(other) is got
    assert oracle(rules, other) is got


@settings(max_examples=200)
@given(rule_sets(), st.data())
def test_removal_keeps_oracle(rules, data):
    cls = _build(rules)
    gone = data.draw(st.lists(st.sampled_from(rules), unique=True)) if rules else []
    for r in gone:
        cls.remove(r)
    left = [r for r in rules if r not in gone]
    assert len(cls) == len(left)
    flow = data.draw(_FLOWS)
    assert cls.lookup(flow) is oracle(left, flow)


def test_probe_that_misses_unwildcards_its_bits():
    cls = Classifier(2)
    cls.insert(R((5, 0), (0xF, 0), 10, 0))      # matches word0 == 5
    cls.insert(R((0, 0), (0, 0), 0, 1))         # catch-all
    wc = [0, 0]
    got = cls.lookup((3, 7), wc)
    assert got.priority == 0
    assert wc == [0xF, 0]                       # the miss still looked at word 0


def test_priority_pruning_skips_lower_subtables():
    cls = Classifier(2)
    cls.insert(R((1, 0), (0xF, 0), 100, 0))
    cls.insert(R((0, 2), (0, 0xF), 50, 1))      # lower priority, other shape
    wc = [0, 0]
    assert cls.lookup((1, 2), wc).priority == 100
    assert wc == [0xF, 0]                       # word 1 never examined
    wc = [0, 0]
    assert cls.lookup((9, 2), wc).priority == 50
    assert wc == [0xF, 0xF]


def test_ties_go_to_the_older_rule_and_find_exact():
    cls = Classifier(1)
    a = R((1,), (0xF,), 7, 0)
    b = R((0,), (0x0,), 7, 1)
    cls.insert(b)
    cls.insert(a)
    assert cls.lookup((1,)) is a
    assert cls.find_exact((1,), (0xF,), 7) is a
    assert cls.find_exact((1,), (0xF,), 8) is None
    cls.remove(a)
    assert cls.lookup((1,)) is b and cls.n_subtables() == 1
