"""emc: the per-PMD exact-match cache in front of dpcls.

    emc_key[E, KEY_WORDS] uint64   the full key
    emc_meta[E, 3] int64           megaflow (-1: empty), its version, hash

E is a power of two. A key may live at two places: h & (E-1) and
(h >> 32) & (E-1). An entry is valid only while its megaflow is live with the
same version (dpcls_delete bumps it), so deleting megaflows never needs an EMC
walk; `emc_clear` empties it all (flow flush). Insertion takes the first
empty-or-stale place, else overwrites the second. Whether to insert at all
(OVS's emc-insert-inv-prob) is the PMD loop's decision.

Threads: the owning PMD only (or the control thread while it is parked). The
twin is a dict (`EmcRef`): the kernel may forget entries, never answer wrong.
"""

import numpy as np

from pyvswitch.core.jit import kernel
from pyvswitch.datapath.kernels.dpcls import MF_STATE, MF_VER
from pyvswitch.datapath.layout import KEY_WORDS

E_FLOW, E_VER, E_HASH = 0, 1, 2


@kernel(nrt=False, inline=True)
def _valid(t, e, hi):
    f = t.emc_meta[e, E_FLOW]
    return (f >= 0 and t.emc_meta[e, E_HASH] == hi and t.mf_meta[f, MF_STATE] == 1
            and t.mf_meta[f, MF_VER] == t.emc_meta[e, E_VER])


@kernel(nrt=False, inline=True)
def _same_key(t, e, key):
    for w in range(KEY_WORDS):
        if t.emc_key[e, w] != key[w]:
            return False
    return True


@kernel(nrt=False, inline=True)
def emc_lookup(t, key, h):
    """The megaflow cached for exactly `key` (hash h), or -1."""
    emask = np.uint64(t.emc_key.shape[0] - 1)
    hi = np.int64(h)
    e = np.int64(h & emask)
    if _valid(t, e, hi) and _same_key(t, e, key):
        return t.emc_meta[e, E_FLOW]
    e = np.int64((h >> np.uint64(32)) & emask)
    if _valid(t, e, hi) and _same_key(t, e, key):
        return t.emc_meta[e, E_FLOW]
    return -1


@kernel(nrt=False, inline=True)
def _stale(t, e):
    f = t.emc_meta[e, E_FLOW]
    return f < 0 or t.mf_meta[f, MF_STATE] != 1 or t.mf_meta[f, MF_VER] != t.emc_meta[e, E_VER]


@kernel(nrt=False, inline=True)
def emc_insert(t, key, h, f):
    emask = np.uint64(t.emc_key.shape[0] - 1)
    e = np.int64(h & emask)
    if not _stale(t, e) and not _same_key(t, e, key):
        e = np.int64((h >> np.uint64(32)) & emask)
    for w in range(KEY_WORDS):
        t.emc_key[e, w] = key[w]
    t.emc_meta[e, E_FLOW] = f
    t.emc_meta[e, E_VER] = t.mf_meta[f, MF_VER]
    t.emc_meta[e, E_HASH] = np.int64(h)


@kernel(nrt=False)
def emc_clear(t):
    for e in range(t.emc_meta.shape[0]):
        t.emc_meta[e, E_FLOW] = -1


class EmcRef:
    """The twin: a dict from key bytes to megaflow."""

    def __init__(self):
        self.d = {}

    def insert(self, key, f):
        self.d[np.asarray(key).tobytes()] = f

    def lookup(self, key):
        return self.d.get(np.asarray(key).tobytes(), -1)

    def clear(self):
        self.d.clear()
