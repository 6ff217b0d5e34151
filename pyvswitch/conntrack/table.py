"""The connection table: preallocated arrays and the compiled per-packet code.

A connection is one row of `conn` (int64 columns, C_*) plus its original
direction tuple in `tup` (uint64 words, T_*). Every connection sits in the
open-addressing hash index `idx` twice, once per direction: idx holds
2 * row + dir (0 = original, 1 = reply), EMPTY or TOMB. The reply tuple is
the original one with addresses and ports swapped (ICMP: the echo reply's
type); both are hashed with the zone.

    ct_process(t, b, off, length, key, zone, commit, now, out) -> ct_state
        The `ct` action for one packet (frame b[off:off+length], its flow
        key): find the connection of its tuple in `zone`, run the protocol's
        state machine (tcp.py; UDP/ICMP/other: pseudo-states), and return the
        ct_state bits (CS_*). With commit a new connection is created (unless
        the table or the zone is full: CS_INV and a counter). out[] receives
        the row, ct_mark, the 128-bit ct_label and the zone.
    ct_set_mark(t, row, value, mask) / ct_set_label(t, row, hi, lo, mhi, mlo)
        exec(set_field:...->ct_mark/ct_label) of a committed connection.
    ct_sweep(t, now, budget) -> expired count
        Remove up to `budget` expired connections (the control thread calls it
        periodically; the PMD never waits on it for long: one spin lock).
    ct_flush(t, zone) -> removed count (zone < 0: all zones)
    ct_delete(t, row)

A TCP window check and a liberal mode live in tcp.py. Every kernel takes the
table's spin lock (t.ctl[L_LOCK]) for its whole work: PMDs and the control
thread share the table. Pure Python readers (dump.py) read racily, as OVS's
dump does. Sizes are fixed at creation (new_table): a full table refuses new
connections and counts them (G_FULL), as OVS's ct-maxconns does; G_MAX (the
limit) may be set anywhere up to the capacity while the table runs.
"""

from collections import namedtuple

import numpy as np

from pyvswitch.conntrack import tcp as TCP
from pyvswitch.core.intrinsics import atomic_or, fence_acquire, store_release
from pyvswitch.core.jit import kernel
from pyvswitch.datapath import layout as L

# ct_state bits (OVS's)
CS_NEW, CS_EST, CS_REL, CS_RPL, CS_INV, CS_TRK, CS_SNAT, CS_DNAT = 1, 2, 4, 8, 16, 32, 64, 128

# tuple words: zone/proto/family, src hi/lo, dst hi/lo, ports (sport << 16 | dport)
T_META, T_SRC_HI, T_SRC_LO, T_DST_HI, T_DST_LO, T_PORTS = range(6)
T_WORDS = 6

# conn columns
(C_USED, C_EXPIRES, C_PROTO_STATE, C_MARK, C_LABEL_HI, C_LABEL_LO, C_ZONE, C_PROTO,
 C_PKTS0, C_BYTES0, C_PKTS1, C_BYTES1, C_CREATED, C_FLAGS) = range(14)
C_TCP = 14                  # tcp.py's per-direction window state: TCP.W_COLS words
C_COLS = C_TCP + TCP.W_COLS

F_REPLIED = 1               # a packet went the reply way (UDP/ICMP: "multiple")

# pseudo-states of non-TCP protocols (proto_state)
P_FIRST, P_MULTIPLE = 1, 2

# timeouts (seconds, OVS's defaults); t.timeouts[] is settable
(TO_TCP_SYN_SENT, TO_TCP_SYN_RECV, TO_TCP_ESTABLISHED, TO_TCP_FIN_WAIT, TO_TCP_TIME_WAIT,
 TO_TCP_CLOSE, TO_UDP_FIRST, TO_UDP_SINGLE, TO_UDP_MULTIPLE, TO_ICMP_FIRST, TO_ICMP_REPLY,
 TO_OTHER_FIRST, TO_OTHER_MULTIPLE) = range(13)
TIMEOUT_NAMES = ("tcp_syn_sent", "tcp_syn_recv", "tcp_established", "tcp_fin_wait", "tcp_time_wait",
                 "tcp_close", "udp_first", "udp_single", "udp_multiple", "icmp_first", "icmp_reply",
                 "other_first", "other_multiple")
DEFAULT_TIMEOUTS = (30, 30, 86400, 15, 45, 30, 60, 60, 30, 60, 30, 60, 30)

# global words of t.ctl
L_LOCK, G_N, G_MAX, G_FULL, G_ZONE_FULL, G_INVALID, G_NEW, G_LIBERAL, G_SWEEP_POS = range(9)
G_COLS = 16

EMPTY, TOMB = -1, -2
LOCK_SPINS = 1 << 20

CtTable = namedtuple("CtTable", "ctl conn tup idx free zone_count zone_limit timeouts")


def new_table(max_conns=1 << 16):
    """A table for max_conns connections (the hash index has 4x the slots)."""
    n = int(max_conns)
    if n < 1 or n > 1 << 26:
        raise ValueError(f"conntrack size {n} out of range (1..{1 << 26})")
    h = 1
    while h < 4 * n:
        h <<= 1
    t = CtTable(ctl=np.zeros(G_COLS, np.int64), conn=np.zeros((n, C_COLS), np.int64),
                tup=np.zeros((n, T_WORDS), np.uint64), idx=np.full(h, EMPTY, np.int64),
                free=np.arange(n - 1, -1, -1, dtype=np.int64),
                zone_count=np.zeros(1 << 16, np.int64), zone_limit=np.zeros(1 << 16, np.int64),
                timeouts=np.array([s * 1_000_000_000 for s in DEFAULT_TIMEOUTS], np.int64))
    t.ctl[G_MAX] = n
    return t


# ---------------------------------------------------------------- locking
@kernel(nrt=False, inline=True)
def _lock(t):
    for _ in range(LOCK_SPINS):
        if atomic_or(t.ctl, L_LOCK, 1) == 0:
            fence_acquire()
            return True
    return False


@kernel(nrt=False, inline=True)
def _unlock(t):
    store_release(t.ctl, L_LOCK, 0)


# ---------------------------------------------------------------- tuples
@kernel(nrt=False, inline=True)
def _hash(zone_meta, a, b, c, d, ports, rev):
    """Hash of a tuple; rev hashes it as the reply direction sees it."""
    if rev:
        a, b, c, d = c, d, a, b
        ports = ((ports & np.uint64(0xFFFF)) << np.uint64(16)) | ((ports >> np.uint64(16)) & np.uint64(0xFFFF))
    h = np.uint64(0x9E3779B97F4A7C15) ^ zone_meta
    for w in (a, b, c, d, ports):
        h = (h ^ w) * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(31))
    return h


@kernel(nrt=False, inline=True)
def _matches(t, row, dirn, q):
    """Does row's tuple, seen from direction dirn, equal query tuple q?"""
    u = t.tup[row]
    if u[T_META] != q[T_META]:
        return False
    if dirn == 0:
        return (u[T_SRC_HI] == q[T_SRC_HI] and u[T_SRC_LO] == q[T_SRC_LO] and u[T_DST_HI] == q[T_DST_HI]
                and u[T_DST_LO] == q[T_DST_LO] and u[T_PORTS] == q[T_PORTS])
    sw = ((u[T_PORTS] & np.uint64(0xFFFF)) << np.uint64(16)) | ((u[T_PORTS] >> np.uint64(16)) & np.uint64(0xFFFF))
    return (u[T_SRC_HI] == q[T_DST_HI] and u[T_SRC_LO] == q[T_DST_LO] and u[T_DST_HI] == q[T_SRC_HI]
            and u[T_DST_LO] == q[T_SRC_LO] and sw == q[T_PORTS])


@kernel(nrt=False)
def _find(t, q):
    """2 * row + dir of the connection of tuple q, or -1."""
    mask = np.uint64(t.idx.shape[0] - 1)
    h = _hash(q[T_META], q[T_SRC_HI], q[T_SRC_LO], q[T_DST_HI], q[T_DST_LO], q[T_PORTS], False)
    i = np.int64(h & mask)
    for _ in range(t.idx.shape[0]):
        v = t.idx[i]
        if v == EMPTY:
            return -1
        if v >= 0 and _matches(t, v >> 1, v & 1, q):
            return v
        i = (i + 1) & np.int64(mask)
    return -1


@kernel(nrt=False)
def _index_put(t, h, v):
    mask = t.idx.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while t.idx[i] >= 0:
        i = (i + 1) & mask
    t.idx[i] = v


@kernel(nrt=False)
def _index_del(t, h, v):
    mask = t.idx.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    for _ in range(t.idx.shape[0]):
        if t.idx[i] == v:
            # a tombstone unless the next slot is empty (keeps probe chains short)
            t.idx[i] = EMPTY if t.idx[(i + 1) & mask] == EMPTY else TOMB
            return
        if t.idx[i] == EMPTY:
            return
        i = (i + 1) & mask


@kernel(nrt=False)
def _row_hashes(t, row):
    u = t.tup[row]
    h0 = _hash(u[T_META], u[T_SRC_HI], u[T_SRC_LO], u[T_DST_HI], u[T_DST_LO], u[T_PORTS], False)
    h1 = _hash(u[T_META], u[T_SRC_HI], u[T_SRC_LO], u[T_DST_HI], u[T_DST_LO], u[T_PORTS], True)
    return h0, h1


@kernel(nrt=False)
def _remove(t, row):
    h0, h1 = _row_hashes(t, row)
    _index_del(t, h0, 2 * row)
    _index_del(t, h1, 2 * row + 1)
    z = t.conn[row, C_ZONE]
    t.zone_count[z] -= 1
    t.conn[row, C_EXPIRES] = 0
    t.conn[row, C_PROTO] = 0
    t.free[t.free.shape[0] - t.ctl[G_N]] = row
    t.ctl[G_N] -= 1


# ---------------------------------------------------------------- packets
@kernel(nrt=False, inline=True)
def _be16(b, p):
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@kernel(nrt=False)
def l4_offset(b, off, length, key):
    """Offset of the L4 header of an IPv4/IPv6 packet whose key was parsed, or -1."""
    dl = np.int64((key[L.W_DL_TYPE] >> np.uint64(L.S_DL_TYPE)) & np.uint64(0xFFFF))
    p = off + 14
    if length >= 18 and b[off + 12] == 0x81 and b[off + 13] == 0x00:
        p += 4
    end = off + length
    if dl == 0x0800:
        if p + 20 > end:
            return -1
        return p + np.int64(b[p] & 15) * 4
    if dl == 0x86DD:
        # extension headers were walked by parse; find the last one the same way
        nh = np.int64(b[p + 6])
        q = p + 40
        for _ in range(9):
            if nh != 0 and nh != 43 and nh != 60 and nh != 51 and nh != 44:
                return q
            if q + 8 > end:
                return -1
            if nh == 44:
                hl = 8
            elif nh == 51:
                hl = (np.int64(b[q + 1]) + 2) * 4
            else:
                hl = (np.int64(b[q + 1]) + 1) * 8
            nh = np.int64(b[q])
            q += hl
        return -1
    return -1


@kernel(nrt=False)
def tuple_of(key, zone, b, l4, end, q):
    """Fill q with the connection tuple of the packet. Returns its protocol
    (6, 17, 1, 58, other) or -1 if it cannot be tracked (not IP, a later
    fragment, a truncated L4 header)."""
    dl = np.int64((key[L.W_DL_TYPE] >> np.uint64(L.S_DL_TYPE)) & np.uint64(0xFFFF))
    proto = np.int64((key[L.W_NW_PROTO] >> np.uint64(L.S_NW_PROTO)) & np.uint64(0xFF))
    frag = np.int64((key[L.W_NW_FRAG] >> np.uint64(L.S_NW_FRAG)) & np.uint64(0xFF))
    if (dl != 0x0800 and dl != 0x86DD) or frag != 0:
        return -1
    v6 = dl == 0x86DD
    q[T_META] = (np.uint64(zone & 0xFFFF) << np.uint64(16)) | (np.uint64(proto) << np.uint64(8)) | np.uint64(6 if v6 else 4)
    if v6:
        q[T_SRC_HI], q[T_SRC_LO] = key[L.W_IPV6_SRC_HI], key[L.W_IPV6_SRC_LO]
        q[T_DST_HI], q[T_DST_LO] = key[L.W_IPV6_DST_HI], key[L.W_IPV6_DST_LO]
    else:
        q[T_SRC_HI] = np.uint64(0)
        q[T_DST_HI] = np.uint64(0)
        q[T_SRC_LO] = key[L.W_NW_ADDR] & np.uint64(0xFFFFFFFF)
        q[T_DST_LO] = key[L.W_NW_ADDR] >> np.uint64(32)
    ports = np.uint64(0)
    if proto == 6 or proto == 17 or proto == 132:
        if l4 < 0 or l4 + 8 > end:
            return -1
        ports = np.uint64((_be16(b, l4) << 16) | _be16(b, l4 + 2))
    elif proto == 1 or proto == 58:
        if l4 < 0 or l4 + 8 > end:
            return -1
        ty = np.int64(b[l4])
        req = 8 if proto == 1 else 128
        rep = 0 if proto == 1 else 129
        if ty == req or ty == rep:
            # echo request and reply share the connection: keyed on the id, both ways
            ident = _be16(b, l4 + 4)
            ports = np.uint64((ident << 16) | ident)
        else:
            ports = np.uint64(ty << 8 | np.int64(b[l4 + 1]))
    q[T_PORTS] = ports
    return proto


@kernel(nrt=False, inline=True)
def _icmp_error(proto, b, l4):
    ty = np.int64(b[l4])
    if proto == 1:
        return ty == 3 or ty == 4 or ty == 5 or ty == 11 or ty == 12
    return ty == 1 or ty == 2 or ty == 3 or ty == 4


@kernel(nrt=False)
def _related(t, proto, b, l4, end, zone, q):
    """ICMP error: the connection of the packet it quotes (either direction).
    Row or -1."""
    p = l4 + 8
    if proto == 1:
        if p + 28 > end or (b[p] >> 4) != 4:
            return -1
        ihl = np.int64(b[p] & 15) * 4
        inner = np.int64(b[p + 9])
        ip = p
        l4i = p + ihl
        v6 = False
    else:
        if p + 48 > end or (b[p] >> 4) != 6:
            return -1
        inner = np.int64(b[p + 6])
        ip = p
        l4i = p + 40
        v6 = True
    if l4i + 8 > end:
        return -1
    q[T_META] = (np.uint64(zone & 0xFFFF) << np.uint64(16)) | (np.uint64(inner) << np.uint64(8)) | np.uint64(6 if v6 else 4)
    if v6:
        hi = np.uint64(0)
        lo = np.uint64(0)
        for k in range(8):
            hi = (hi << np.uint64(8)) | np.uint64(b[ip + 8 + k])
            lo = (lo << np.uint64(8)) | np.uint64(b[ip + 16 + k])
        q[T_SRC_HI], q[T_SRC_LO] = hi, lo
        hi = np.uint64(0)
        lo = np.uint64(0)
        for k in range(8):
            hi = (hi << np.uint64(8)) | np.uint64(b[ip + 24 + k])
            lo = (lo << np.uint64(8)) | np.uint64(b[ip + 32 + k])
        q[T_DST_HI], q[T_DST_LO] = hi, lo
    else:
        q[T_SRC_HI] = np.uint64(0)
        q[T_DST_HI] = np.uint64(0)
        q[T_SRC_LO] = np.uint64((_be16(b, ip + 12) << 16) | _be16(b, ip + 14))
        q[T_DST_LO] = np.uint64((_be16(b, ip + 16) << 16) | _be16(b, ip + 18))
    if inner == 6 or inner == 17 or inner == 132:
        q[T_PORTS] = np.uint64((_be16(b, l4i) << 16) | _be16(b, l4i + 2))
    elif inner == 1 or inner == 58:
        ident = _be16(b, l4i + 4)
        q[T_PORTS] = np.uint64((ident << 16) | ident)
    else:
        q[T_PORTS] = np.uint64(0)
    v = _find(t, q)
    return -1 if v < 0 else v >> 1


@kernel(nrt=False)
def _other_update(t, row, dirn, proto, now):
    c = t.conn[row]
    if dirn == 1:
        c[C_FLAGS] |= F_REPLIED
    if proto == 17:
        to = TO_UDP_MULTIPLE if c[C_FLAGS] & F_REPLIED else TO_UDP_SINGLE
    elif proto == 1 or proto == 58:
        to = TO_ICMP_REPLY if c[C_FLAGS] & F_REPLIED else TO_ICMP_FIRST
    else:
        to = TO_OTHER_MULTIPLE if c[C_FLAGS] & F_REPLIED else TO_OTHER_FIRST
    c[C_PROTO_STATE] = P_MULTIPLE if c[C_FLAGS] & F_REPLIED else P_FIRST
    c[C_EXPIRES] = now + t.timeouts[to]


@kernel(nrt=False)
def _create(t, q, proto, zone, now):
    if t.ctl[G_N] >= t.ctl[G_MAX]:
        t.ctl[G_FULL] += 1
        return -1
    lim = t.zone_limit[zone]
    if lim > 0 and t.zone_count[zone] >= lim:
        t.ctl[G_ZONE_FULL] += 1
        return -1
    row = t.free[t.free.shape[0] - t.ctl[G_N] - 1]
    t.ctl[G_N] += 1
    t.zone_count[zone] += 1
    for w in range(T_WORDS):
        t.tup[row, w] = q[w]
    c = t.conn[row]
    for k in range(C_COLS):
        c[k] = 0
    c[C_ZONE], c[C_PROTO], c[C_CREATED], c[C_USED] = zone, proto, now, now
    h0, h1 = _row_hashes(t, row)
    _index_put(t, h0, 2 * row)
    _index_put(t, h1, 2 * row + 1)
    t.ctl[G_NEW] += 1
    return row


@kernel(nrt=False)
def _process_locked(t, b, off, length, key, zone, commit, now, out, q):
    end = off + length
    l4 = l4_offset(b, off, length, key)
    proto = tuple_of(key, zone, b, l4, end, q)
    out[0], out[1], out[2], out[3], out[4] = -1, 0, 0, 0, zone
    if proto < 0:
        t.ctl[G_INVALID] += 1
        return CS_TRK | CS_INV
    v = _find(t, q)
    if v >= 0 and t.conn[v >> 1, C_EXPIRES] <= now:
        _remove(t, v >> 1)                      # expired: as if it never was
        v = -1
    state = CS_TRK
    if v < 0 and (proto == 1 or proto == 58) and _icmp_error(proto, b, l4):
        row = _related(t, proto, b, l4, end, zone, q)
        if row >= 0 and t.conn[row, C_EXPIRES] > now:
            c = t.conn[row]
            out[0], out[1], out[2], out[3] = row, c[C_MARK], c[C_LABEL_HI], c[C_LABEL_LO]
            return CS_TRK | CS_REL
        t.ctl[G_INVALID] += 1
        return CS_TRK | CS_INV
    if v < 0:
        if (proto == 1 or proto == 58) and np.int64(b[l4]) == (0 if proto == 1 else 129):
            t.ctl[G_INVALID] += 1                # an echo reply without its request
            return CS_TRK | CS_INV
        if proto == 6:
            if not TCP.valid_new(b, l4, end):
                t.ctl[G_INVALID] += 1
                return CS_TRK | CS_INV
        if not commit:
            return CS_TRK | CS_NEW
        row = _create(t, q, proto, zone, now)
        if row < 0:
            return CS_TRK | CS_INV
        dirn = 0
        state |= CS_NEW
        if proto == 6:
            TCP.init(t.conn[row], C_TCP, b, l4, end)
    else:
        row, dirn = v >> 1, v & 1
        state |= CS_RPL if dirn == 1 else 0
    c = t.conn[row]
    if proto == 6:
        r = TCP.update(c, C_TCP, C_PROTO_STATE, dirn, b, l4, end, t.ctl[G_LIBERAL] != 0)
        if r < 0:
            t.ctl[G_INVALID] += 1
            return CS_TRK | CS_INV | (state & CS_RPL)
        if r == TCP.R_REOPEN:
            # a new SYN on a closed connection: the old one is gone
            _remove(t, row)
            if not commit:
                return CS_TRK | CS_NEW
            row = _create(t, q, proto, zone, now)
            if row < 0:
                return CS_TRK | CS_INV
            c = t.conn[row]
            TCP.init(c, C_TCP, b, l4, end)
            TCP.update(c, C_TCP, C_PROTO_STATE, 0, b, l4, end, t.ctl[G_LIBERAL] != 0)
            state = CS_TRK | CS_NEW
            dirn = 0
        c[C_EXPIRES] = now + t.timeouts[TCP.timeout_of(c[C_PROTO_STATE])]
        if state & CS_NEW == 0 and TCP.established_seen(c[C_PROTO_STATE], c[C_FLAGS] | (F_REPLIED if dirn else 0)):
            state |= CS_EST
        if dirn == 1:
            c[C_FLAGS] |= F_REPLIED
    else:
        _other_update(t, row, dirn, proto, now)
        if state & CS_NEW == 0 and c[C_FLAGS] & F_REPLIED:
            state |= CS_EST
    if state & CS_NEW == 0 and state & CS_EST == 0:
        state |= CS_NEW                          # a repeat of the first direction only
    c[C_USED] = now
    c[C_PKTS0 + 2 * dirn] += 1
    c[C_BYTES0 + 2 * dirn] += length
    out[0], out[1], out[2], out[3] = row, c[C_MARK], c[C_LABEL_HI], c[C_LABEL_LO]
    return state


@kernel(nrt=False)
def ct_process(t, b, off, length, key, zone, commit, now, out, q):
    """See the module doc; q is scratch (uint64[T_WORDS])."""
    if not _lock(t):
        return CS_TRK | CS_INV
    s = _process_locked(t, b, off, length, key, zone, commit, now, out, q)
    _unlock(t)
    return s


@kernel(nrt=False)
def ct_set_mark(t, row, value, mask):
    if row < 0 or row >= t.conn.shape[0] or not _lock(t):
        return
    c = t.conn[row]
    c[C_MARK] = (c[C_MARK] & ~mask) | (value & mask)
    _unlock(t)


@kernel(nrt=False)
def ct_set_label(t, row, hi, lo, mhi, mlo):
    if row < 0 or row >= t.conn.shape[0] or not _lock(t):
        return
    c = t.conn[row]
    c[C_LABEL_HI] = (c[C_LABEL_HI] & ~mhi) | (hi & mhi)
    c[C_LABEL_LO] = (c[C_LABEL_LO] & ~mlo) | (lo & mlo)
    _unlock(t)


@kernel(nrt=False)
def ct_sweep(t, now, budget):
    """Remove expired connections, visiting at most `budget` rows from where
    the last sweep stopped. Returns how many were removed."""
    if not _lock(t):
        return 0
    n = t.conn.shape[0]
    pos = t.ctl[G_SWEEP_POS]
    gone = 0
    for _ in range(min(budget, n)):
        c = t.conn[pos]
        if c[C_PROTO] != 0 and c[C_EXPIRES] <= now:
            _remove(t, pos)
            gone += 1
        pos = (pos + 1) % n
    t.ctl[G_SWEEP_POS] = pos
    _unlock(t)
    return gone


@kernel(nrt=False)
def ct_flush(t, zone):
    if not _lock(t):
        return 0
    gone = 0
    for row in range(t.conn.shape[0]):
        c = t.conn[row]
        if c[C_PROTO] != 0 and (zone < 0 or c[C_ZONE] == zone):
            _remove(t, row)
            gone += 1
    _unlock(t)
    return gone


@kernel(nrt=False)
def ct_delete(t, row):
    if row < 0 or row >= t.conn.shape[0] or not _lock(t):
        return 0
    ok = 0
    if t.conn[row, C_PROTO] != 0:
        _remove(t, row)
        ok = 1
    _unlock(t)
    return ok


@kernel(nrt=False)
def ct_delete_tuple(t, q):
    """Remove the connection of tuple q (either direction); 1 if there was one."""
    if not _lock(t):
        return 0
    v = _find(t, q)
    if v >= 0:
        _remove(t, v >> 1)
    _unlock(t)
    return 1 if v >= 0 else 0


def make_tuple(zone, proto, src, dst, sport=0, dport=0, v6=False):
    """The uint64[T_WORDS] tuple of a connection (Python side: flush by tuple)."""
    q = np.zeros(T_WORDS, np.uint64)
    q[T_META] = np.uint64((zone & 0xFFFF) << 16 | (proto & 0xFF) << 8 | (6 if v6 else 4))
    q[T_SRC_HI], q[T_SRC_LO] = np.uint64(src >> 64), np.uint64(src & (2**64 - 1))
    q[T_DST_HI], q[T_DST_LO] = np.uint64(dst >> 64), np.uint64(dst & (2**64 - 1))
    q[T_PORTS] = np.uint64((sport & 0xFFFF) << 16 | (dport & 0xFFFF))
    return q
