"""dpcls: the per-PMD megaflow classifier, and the megaflow arrays.

Tables (one namedtuple per PMD, passed whole to kernels):
    mf_key[F, KEY_WORDS] uint64   masked key of megaflow f
    mf_meta[F, MF_COLS] int64     state, version, subtable, hash, ht slot,
                                  actions offset/length, stats (packets,
                                  bytes, used ns, tcp_flags ORed, created ns:
                                  set by the Python side, for idle expiry)
    mf_free[F] int64              free megaflow indexes (a stack; D_NFREE)
    sub_mask[S, KEY_WORDS]        the mask of subtable s (one per mask shape)
    sub_meta[S, SUB_COLS]         flows in it, hits
    sub_order[S]                  live subtables in lookup order (D_NORDER)
    ht[H] int64                   ONE open-addressing table for all subtables:
                                  -1 empty, -2 tombstone, else a megaflow; the
                                  slot is hash_masked(key, mask, seed=s)
    actions[A] int64              action programs (execute.py), allocated by
                                  the Python side (tables.py)
    emc_key, emc_meta             the exact-match cache (emc.py)
    dp_meta[D_COLS] int64         counters above

A lookup tries each subtable in sub_order: hash the key under its mask, probe
until an empty slot, compare the masked key. Subtables are re-sorted by hits
(`dpcls_sort`) at housekeeping. Deleting leaves a tombstone and bumps the
flow's version, so EMC entries pointing at it stop matching. Insert rehashes
when live + tombstones would exceed 3/4 of H.

Threads: only the owning PMD thread calls these kernels, or the control
thread while that PMD is parked (pmd.py). The twin is `DpclsRef` (a dict of
masked keys per mask) used by the tests.
"""

from collections import namedtuple

import numpy as np

from pyvswitch.core.jit import kernel
from pyvswitch.datapath.kernels.hash import hash_masked
from pyvswitch.datapath.layout import KEY_WORDS

MF_STATE, MF_VER, MF_SUB, MF_HASH, MF_HTPOS, MF_ACT_OFF, MF_ACT_LEN = range(7)
MF_PACKETS, MF_BYTES, MF_USED, MF_TCP_FLAGS, MF_CREATED = 7, 8, 9, 10, 11
MF_COLS = 12
SUB_NFLOWS, SUB_HITS, SUB_LIVE = 0, 1, 2
SUB_COLS = 4
D_NFREE, D_NORDER, D_HT_USED, D_NLIVE = 0, 1, 2, 3
D_COLS = 8
HT_EMPTY, HT_TOMB = -1, -2

Tables = namedtuple("Tables", "mf_key mf_meta mf_free sub_mask sub_meta sub_order ht "
                              "actions emc_key emc_meta dp_meta")


def new_tables(max_flows=65536, max_subtables=256, emc_entries=8192, action_words=1 << 18):
    ht_size = 1 << max(4, int(2 * max_flows - 1).bit_length())
    t = Tables(
        mf_key=np.zeros((max_flows, KEY_WORDS), np.uint64),
        mf_meta=np.zeros((max_flows, MF_COLS), np.int64),
        mf_free=np.arange(max_flows - 1, -1, -1, dtype=np.int64),
        sub_mask=np.zeros((max_subtables, KEY_WORDS), np.uint64),
        sub_meta=np.zeros((max_subtables, SUB_COLS), np.int64),
        sub_order=np.zeros(max_subtables, np.int64),
        ht=np.full(ht_size, HT_EMPTY, np.int64),
        actions=np.zeros(action_words, np.int64),
        emc_key=np.zeros((emc_entries, KEY_WORDS), np.uint64),
        emc_meta=np.full((emc_entries, 3), -1, np.int64),
        dp_meta=np.zeros(D_COLS, np.int64))
    t.dp_meta[D_NFREE] = max_flows
    return t


@kernel(nrt=False, inline=True)
def _masked_eq(key, mask, mkey):
    for w in range(KEY_WORDS):
        if (key[w] & mask[w]) != mkey[w]:
            return False
    return True


@kernel(nrt=False, inline=True)
def _probe(t, key, s, h):
    """Megaflow in subtable s matching key (hash h), or -1."""
    hmask = t.ht.shape[0] - 1
    i = np.int64(h & np.uint64(hmask))
    hi = np.int64(h)
    for _ in range(t.ht.shape[0]):
        f = t.ht[i]
        if f == HT_EMPTY:
            return -1
        if f >= 0 and t.mf_meta[f, MF_SUB] == s and t.mf_meta[f, MF_HASH] == hi:
            if _masked_eq(key, t.sub_mask[s], t.mf_key[f]):
                return f
        i = (i + 1) & hmask
    return -1


@kernel(nrt=False, inline=True)
def dpcls_lookup(t, key):
    """(megaflow or -1, subtables looked at)."""
    n = t.dp_meta[D_NORDER]
    for j in range(n):
        s = t.sub_order[j]
        h = hash_masked(key, t.sub_mask[s], s)
        f = _probe(t, key, s, h)
        if f >= 0:
            t.sub_meta[s, SUB_HITS] += 1
            return f, j + 1
    return -1, n


@kernel(nrt=False)
def _find_subtable(t, mask):
    free = -1
    for s in range(t.sub_mask.shape[0]):
        if t.sub_meta[s, SUB_LIVE] == 1:
            same = True
            for w in range(KEY_WORDS):
                if t.sub_mask[s, w] != mask[w]:
                    same = False
                    break
            if same:
                return s
        elif free < 0:
            free = s
    if free >= 0:
        for w in range(KEY_WORDS):
            t.sub_mask[free, w] = mask[w]
        for c in range(SUB_COLS):
            t.sub_meta[free, c] = 0
        t.sub_meta[free, SUB_LIVE] = 1
        t.sub_order[t.dp_meta[D_NORDER]] = free
        t.dp_meta[D_NORDER] += 1
    return free


@kernel(nrt=False)
def _ht_place(t, f, h):
    hmask = t.ht.shape[0] - 1
    i = np.int64(h & np.uint64(hmask))
    while t.ht[i] >= 0:
        i = (i + 1) & hmask
    if t.ht[i] == HT_EMPTY:
        t.dp_meta[D_HT_USED] += 1
    t.ht[i] = f
    t.mf_meta[f, MF_HTPOS] = i


@kernel(nrt=False)
def dpcls_rehash(t):
    """Rebuild ht from the live megaflows (drops tombstones)."""
    for i in range(t.ht.shape[0]):
        t.ht[i] = HT_EMPTY
    t.dp_meta[D_HT_USED] = 0
    for f in range(t.mf_meta.shape[0]):
        if t.mf_meta[f, MF_STATE] == 1:
            _ht_place(t, f, np.uint64(t.mf_meta[f, MF_HASH]))


@kernel(nrt=False)
def dpcls_insert(t, key, mask, act_off, act_len):
    """Install key/mask -> actions; returns the megaflow index (an existing
    one, with its actions replaced, if the same masked key is there), -1 if
    the flow or subtable table is full."""
    s = _find_subtable(t, mask)
    if s < 0:
        return -1
    h = hash_masked(key, mask, s)
    f = _probe(t, key, s, h)
    if f < 0:
        if t.dp_meta[D_NFREE] == 0:
            if t.sub_meta[s, SUB_NFLOWS] == 0:
                dpcls_remove_subtable(t, s)
            return -1
        if (t.dp_meta[D_HT_USED] + 1) * 4 > t.ht.shape[0] * 3:
            dpcls_rehash(t)
        t.dp_meta[D_NFREE] -= 1
        f = t.mf_free[t.dp_meta[D_NFREE]]
        for w in range(KEY_WORDS):
            t.mf_key[f, w] = key[w] & mask[w]
        ver = t.mf_meta[f, MF_VER] + 1
        for c in range(MF_COLS):
            t.mf_meta[f, c] = 0
        t.mf_meta[f, MF_VER] = ver
        t.mf_meta[f, MF_STATE] = 1
        t.mf_meta[f, MF_SUB] = s
        t.mf_meta[f, MF_HASH] = np.int64(h)
        _ht_place(t, f, h)
        t.sub_meta[s, SUB_NFLOWS] += 1
        t.dp_meta[D_NLIVE] += 1
    t.mf_meta[f, MF_ACT_OFF] = act_off
    t.mf_meta[f, MF_ACT_LEN] = act_len
    return f


@kernel(nrt=False)
def dpcls_remove_subtable(t, s):
    t.sub_meta[s, SUB_LIVE] = 0
    n = t.dp_meta[D_NORDER]
    j = 0
    for i in range(n):
        if t.sub_order[i] != s:
            t.sub_order[j] = t.sub_order[i]
            j += 1
    t.dp_meta[D_NORDER] = j


@kernel(nrt=False)
def dpcls_delete(t, f):
    """Remove megaflow f (no-op if it is not live)."""
    if f < 0 or f >= t.mf_meta.shape[0] or t.mf_meta[f, MF_STATE] != 1:
        return
    t.ht[t.mf_meta[f, MF_HTPOS]] = HT_TOMB
    t.mf_meta[f, MF_STATE] = 0
    t.mf_meta[f, MF_VER] += 1
    s = t.mf_meta[f, MF_SUB]
    t.sub_meta[s, SUB_NFLOWS] -= 1
    if t.sub_meta[s, SUB_NFLOWS] == 0:
        dpcls_remove_subtable(t, s)
    t.mf_free[t.dp_meta[D_NFREE]] = f
    t.dp_meta[D_NFREE] += 1
    t.dp_meta[D_NLIVE] -= 1


@kernel(nrt=False)
def dpcls_delete_many(t, ids):
    """Remove the megaflows `ids` (idle expiry: thousands at a time)."""
    for i in range(ids.shape[0]):
        dpcls_delete(t, ids[i])


@kernel(nrt=False)
def dpcls_sort(t):
    """Order subtables by hits since the last sort (insertion sort), then
    halve the counts so the order follows recent traffic."""
    n = t.dp_meta[D_NORDER]
    for i in range(1, n):
        s = t.sub_order[i]
        j = i - 1
        while j >= 0 and t.sub_meta[t.sub_order[j], SUB_HITS] < t.sub_meta[s, SUB_HITS]:
            t.sub_order[j + 1] = t.sub_order[j]
            j -= 1
        t.sub_order[j + 1] = s
    for i in range(n):
        t.sub_meta[t.sub_order[i], SUB_HITS] >>= 1


class DpclsRef:
    """The twin: {mask bytes: {masked key bytes: flow id}}, insertion-ordered."""

    def __init__(self):
        self.subs = {}

    def insert(self, key, mask, flow):
        mk = (np.asarray(key) & np.asarray(mask)).tobytes()
        self.subs.setdefault(np.asarray(mask).tobytes(), {})[mk] = flow

    def delete(self, key, mask):
        m = np.asarray(mask).tobytes()
        self.subs[m].pop((np.asarray(key) & np.asarray(mask)).tobytes())
        if not self.subs[m]:
            del self.subs[m]

    def matches(self, key):
        """Every flow whose masked key matches (the kernel returns one of them)."""
        out = set()
        for m, flows in self.subs.items():
            mk = (np.asarray(key) & np.frombuffer(m, np.uint64)).tobytes()
            if mk in flows:
                out.add(flows[mk])
        return out
