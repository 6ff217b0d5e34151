import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.datapath.kernels.hash import hash_key, hash_key_ref, hash_masked, hash_masked_ref
from pyvswitch.datapath.layout import KEY_WORDS

words = st.lists(st.integers(0, 2**64 - 1), min_size=KEY_WORDS, max_size=KEY_WORDS)
sparse = st.lists(st.sampled_from([0, 0, 0, 2**64 - 1, 0xFFFF, 1 << 63]), min_size=KEY_WORDS,
                  max_size=KEY_WORDS)


@settings(max_examples=300, deadline=None)
@given(words, sparse, st.integers(0, 1000))
def test_hash_equals_twin(k, m, seed):
    key = np.array(k, np.uint64)
    mask = np.array(m, np.uint64)
    h = hash_key(key)
    assert isinstance(h, (np.uint64, int)) and int(h) == hash_key_ref(key)
    assert int(hash_masked(key, mask, seed)) == hash_masked_ref(key, mask, seed)
    # masked-out bits do not matter
    key2 = key ^ (~mask & np.uint64(0x5555))
    assert int(hash_masked(key2, mask, seed)) == int(hash_masked(key, mask, seed))
