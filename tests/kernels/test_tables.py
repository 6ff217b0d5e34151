"""dpcls and emc kernels against their dict twins, under random operations."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.datapath.kernels import dpcls as D
from pyvswitch.datapath.kernels.emc import EmcRef, emc_clear, emc_insert, emc_lookup
from pyvswitch.datapath.kernels.hash import hash_key
from pyvswitch.datapath.layout import KEY_WORDS

MASKS = [
    [0xFFFF] + [0] * (KEY_WORDS - 1),
    [0xFFFF, 0xFFFFFFFFFFFF] + [0] * (KEY_WORDS - 2),
    [0xFFFF0000FFFF, 0, 0, 0xFFFFFFFF] + [0] * (KEY_WORDS - 4),
    [2**64 - 1] * KEY_WORDS,
]
small = st.lists(st.integers(0, 3), min_size=KEY_WORDS, max_size=KEY_WORDS)
ops = st.lists(st.tuples(st.sampled_from(["ins", "ins", "del", "look", "sort", "expire"]),
                         st.integers(0, len(MASKS) - 1), small), max_size=60)


def _key(words):
    # few distinct values so inserts, lookups and deletes collide often
    return np.array([w * 0x10001 for w in words], np.uint64)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_dpcls_equals_twin(seq):
    t = D.new_tables(max_flows=16, max_subtables=3, emc_entries=16, action_words=64)
    ref = D.DpclsRef()
    live = {}                      # (mask i, masked key bytes) -> flow
    for op, mi, words in seq:
        key, mask = _key(words), np.array(MASKS[mi], np.uint64)
        ident = (mi, (key & mask).tobytes())
        if op == "ins":
            f = D.dpcls_insert(t, key, mask, 7, 2)
            if f >= 0:
                assert live.get(ident, f) == f
                live[ident] = f
                ref.insert(key, mask, f)
            else:
                assert ident not in live
                assert len(live) == 16 or len({m for m, _ in live} | {mi}) > 3
        elif op == "del" and ident in live:
            D.dpcls_delete(t, live.pop(ident))
            ref.delete(key, mask)
        elif op == "sort":
            D.dpcls_sort(t)
        elif op == "expire":           # idle expiry: every flow of one subtable at once
            gone = [i for i in live if i[0] == mi]
            D.dpcls_delete_many(t, np.array([live[i] for i in gone] + [-1], np.int64))
            for i in gone:
                del live[i]
                ref.delete(np.frombuffer(i[1], np.uint64), np.array(MASKS[i[0]], np.uint64))
        f, n = D.dpcls_lookup(t, key)
        want = ref.matches(key)
        assert (f in want) if want else f == -1
        assert t.dp_meta[D.D_NLIVE] == len(live)
    assert t.dp_meta[D.D_NORDER] == len({m for m, _ in live})


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ins", "look", "del", "clear"]), small), max_size=50))
def test_emc_never_wrong(seq):
    t = D.new_tables(max_flows=8, max_subtables=2, emc_entries=4, action_words=16)
    ref = EmcRef()
    full = np.array(MASKS[3], np.uint64)
    for op, words in seq:
        key = _key(words)
        h = np.uint64(hash_key(key))
        f, _ = D.dpcls_lookup(t, key)
        if op == "ins":
            if f < 0:
                f = D.dpcls_insert(t, key, full, 0, 0)
            if f >= 0:
                emc_insert(t, key, h, f)
                ref.insert(key, f)
                assert emc_lookup(t, key, h) == f
        elif op == "del" and f >= 0:
            D.dpcls_delete(t, f)
        elif op == "clear":
            emc_clear(t)
            ref.clear()
        got = emc_lookup(t, key, h)
        if got >= 0:
            assert got == ref.lookup(key) and t.mf_meta[got, D.MF_STATE] == 1


def test_rehash_keeps_flows():
    t = D.new_tables(max_flows=8, max_subtables=2, emc_entries=4, action_words=16)
    mask = np.array(MASKS[0], np.uint64)
    for round_ in range(20):           # churn fills ht with tombstones
        fs = [D.dpcls_insert(t, _key([i + round_ * 8] + [0] * (KEY_WORDS - 1)), mask, 0, 0) for i in range(8)]
        assert min(fs) >= 0
        for f in fs[:7]:
            D.dpcls_delete(t, f)
        D.dpcls_delete(t, fs[7])
    f = D.dpcls_insert(t, _key([3] + [0] * (KEY_WORDS - 1)), mask, 0, 0)
    assert D.dpcls_lookup(t, _key([3] + [0] * (KEY_WORDS - 1)))[0] == f
