"""hash: 64-bit hashes of flow keys, for the EMC and the dpcls hash table.

    hash_key(key)                  all KEY_WORDS words (the EMC's hash)
    hash_masked(key, mask, seed)   words where mask != 0, each ANDed with the
                                   mask; seed separates subtables

hash_key runs twice per packet on a recirculating path (VXLAN: before and
after tnl_pop), and the EMC's loads wait for it, so its latency counts more
than its quality beyond "different keys spread": words go in pairs, each
pair XORed with its own secret and multiplied into 128 bits (`mum`: high
half XOR low half), the ten products summed and mixed once more. The ten
multiplies are independent, so the CPU runs them side by side: about 15
cycles of latency, where a chain of multiply-shift steps over 20 words took
about 70 (`pvs-bench pmd-cycles --flows vxlan --same-core`: 384 -> 361
cycles per packet, medians of 5 runs).

hash_masked: per word h = (h ^ w) * M1, h ^= h >> 29; then a splitmix64-style
finaliser. All arithmetic is uint64 with np.uint64 constants (an int64 operand
would turn the expression signed: datapath-feasibility.md, pitfall 3). The
twins below do the same with Python ints masked to 64 bits.
"""

import numpy as np

from pyvswitch.core.intrinsics import mum
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


def _final_ref(h):
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK64
    return h ^ (h >> 31)


def _secrets(n, x=0x243F6A8885A308D3):
    """n 64-bit constants: a splitmix64 stream (pi's first digits as seed)."""
    return [_final_ref((x + k * 0x9E3779B97F4A7C15) & MASK64) for k in range(1, n + 1)]


assert KEY_WORDS % 2 == 0, "hash_key takes the key's words in pairs"
SECRET = np.array(_secrets(KEY_WORDS), np.uint64)      # one per word


@kernel(nrt=False)
def hash_key(key):
    h = M1
    for i in range(KEY_WORDS // 2):
        h += mum(key[2 * i] ^ SECRET[2 * i], key[2 * i + 1] ^ SECRET[2 * i + 1])
    return mum(h ^ M2, M3)


@kernel(nrt=False)
def hash_masked(key, mask, seed):
    h = M1 ^ np.uint64(seed)
    for w in range(KEY_WORDS):
        m = mask[w]
        if m != np.uint64(0):
            h = (h ^ (key[w] & m)) * M1
            h = h ^ (h >> S29)
    return _final(h)


def _words_ref(h, words):
    for w in words:
        h = ((h ^ w) * 0x9E3779B97F4A7C15) & MASK64
        h ^= h >> 29
    return h


def hash_key_ref(key):
    w = [int(x) ^ int(k) for x, k in zip(key, SECRET)]
    h = int(M1)
    for i in range(0, len(w), 2):
        h = (h + int(mum(w[i], w[i + 1]))) & MASK64
    return int(mum(h ^ int(M2), int(M3)))


def hash_masked_ref(key, mask, seed):
    words = [int(k) & int(m) for k, m in zip(key, mask) if int(m)]
    return _final_ref(_words_ref(0x9E3779B97F4A7C15 ^ seed, words))
