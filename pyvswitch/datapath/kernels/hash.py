"""hash: 64-bit hashes of flow keys, for the EMC and the dpcls hash table.

    hash_key(key)                  all KEY_WORDS words (the EMC's hash), in
                                   four lanes folded at the end
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
assert KEY_WORDS % LANES == 0
L1, L2, L3 = np.uint64(0x2545F4914F6CDD1D), np.uint64(0x7FB5D329728EA185), np.uint64(0x81DADEF4BC2DD44D)


@kernel(nrt=False)
def hash_key(key):
    """Four independent lanes over words w, w+1, w+2, w+3, folded at the end:
    the multiply chain of one lane over all KEY_WORDS words was the longest
    dependency of a packet's EMC lookup (about 5 cycles a word)."""
    a, b, c, d = M1, M1 ^ L1, M1 ^ L2, M1 ^ L3
    for w in range(0, KEY_WORDS, LANES):
        a = (a ^ key[w]) * M1
        b = (b ^ key[w + 1]) * M1
        c = (c ^ key[w + 2]) * M1
        d = (d ^ key[w + 3]) * M1
        a = a ^ (a >> S29)
        b = b ^ (b >> S29)
        c = c ^ (c >> S29)
        d = d ^ (d >> S29)
    h = (a ^ (b >> S31) ^ (b << np.uint64(33))) * M2
    h = (h ^ c) * M1
    h = (h ^ (d >> S27) ^ (d << np.uint64(37))) * M3
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


def _rotr_ref(v, r):
    return ((v >> r) | (v << (64 - r))) & MASK64


def hash_key_ref(key):
    words = [int(w) for w in key]
    m1 = 0x9E3779B97F4A7C15
    lanes = [_words_ref(m1 ^ seed, words[j::LANES])
             for j, seed in enumerate((0, int(L1), int(L2), int(L3)))]
    a, b, c, d = lanes
    h = ((a ^ _rotr_ref(b, 31)) * 0xBF58476D1CE4E5B9) & MASK64
    h = ((h ^ c) * m1) & MASK64
    h = ((h ^ _rotr_ref(d, 27)) * 0x94D049BB133111EB) & MASK64
    return _final_ref(h)


def hash_masked_ref(key, mask, seed):
    words = [int(k) & int(m) for k, m in zip(key, mask) if int(m)]
    return _final_ref(_words_ref(0x9E3779B97F4A7C15 ^ seed, words))
