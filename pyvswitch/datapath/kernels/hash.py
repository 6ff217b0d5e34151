"""hash: 64-bit hashes of flow keys, for the EMC and the dpcls hash table.

    hash_key(key)                  all KEY_WORDS words (the EMC's hash), in 4 lanes
    hash_masked(key, mask, seed)   words where mask != 0, each ANDed with the
                                   mask; seed separates subtables

Per word: h = (h ^ w) * M1, h ^= h >> 29; then a splitmix64-style finaliser.
All arithmetic is uint64 with np.uint64 constants (an int64 operand would turn
the expression signed: datapath-feasibility.md, pitfall 3). The twins below do
the same with Python ints masked to 64 bits.
"""

import numpy as np

from pyvswitch.core.jit import kernel
from pyvswitch.datapath.layout import KEY_WORDS

M1 = np.uint64(0x9E3779B97F4A7C15)
M2 = np.uint64(0xBF58476D1CE4E5B9)
M3 = np.uint64(0x94D049BB133111EB)
S29 = np.uint64(29)
S30 = np.uint64(30)
S27 = np.uint64(27)
S31 = np.uint64(31)
MASK64 = (1 << 64) - 1


@kernel(nrt=False)
def _final(h):
    h = (h ^ (h >> S30)) * M2
    h = (h ^ (h >> S27)) * M3
    return h ^ (h >> S31)


LANES = 4


@kernel(nrt=False)
def hash_key(key):
    """Words w, w+4, w+8, ... go into lane w % 4: four independent chains of
    multiplies instead of one, so the CPU runs them side by side; the lanes
    are then folded in order."""
    h0, h1, h2, h3 = M1, M1 ^ M2, M1 ^ M3, M2 ^ M3
    for w in range(0, KEY_WORDS - KEY_WORDS % LANES, LANES):
        h0 = (h0 ^ key[w]) * M1
        h1 = (h1 ^ key[w + 1]) * M1
        h2 = (h2 ^ key[w + 2]) * M1
        h3 = (h3 ^ key[w + 3]) * M1
        h0 = h0 ^ (h0 >> S29)
        h1 = h1 ^ (h1 >> S29)
        h2 = h2 ^ (h2 >> S29)
        h3 = h3 ^ (h3 >> S29)
    h = M1
    for x in (h0, h1, h2, h3):
        h = (h ^ x) * M1
        h = h ^ (h >> S29)
    for w in range(KEY_WORDS - KEY_WORDS % LANES, KEY_WORDS):
        h = (h ^ key[w]) * M1
        h = h ^ (h >> S29)
    return _final(h)


@kernel(nrt=False)
def hash_masked(key, mask, seed):
    h = M1 ^ np.uint64(seed)
    for w in range(KEY_WORDS):
        m = mask[w]
        if m != np.uint64(0):
            h = (h ^ (key[w] & m)) * M1
            h = h ^ (h >> S29)
    return _final(h)


def _final_ref(h):
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK64
    return h ^ (h >> 31)


def _words_ref(h, words):
    for w in words:
        h = ((h ^ w) * 0x9E3779B97F4A7C15) & MASK64
        h ^= h >> 29
    return h


def hash_key_ref(key):
    words = [int(w) for w in key]
    n = len(words) - len(words) % LANES
    m1, m2, m3 = int(M1), int(M2), int(M3)
    lanes = [_words_ref(seed, words[i:n:LANES]) for i, seed in enumerate((m1, m1 ^ m2, m1 ^ m3, m2 ^ m3))]
    return _final_ref(_words_ref(m1, lanes + words[n:]))


def hash_masked_ref(key, mask, seed):
    words = [int(k) & int(m) for k, m in zip(key, mask) if int(m)]
    return _final_ref(_words_ref(0x9E3779B97F4A7C15 ^ seed, words))
