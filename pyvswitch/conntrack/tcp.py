"""TCP connection tracking: the state machine and the window check.

State (the connection's proto_state): NONE -> SYN_SENT (SYN from the
originator) -> SYN_RECV (SYN+ACK back) -> ESTABLISHED (the originator's ACK);
a FIN from either side -> FIN_WAIT, the other side's FIN -> LAST_ACK, the ACK
of that -> TIME_WAIT; a lone ACK of the first FIN by the other side ->
CLOSE_WAIT (half closed); RST -> CLOSE. A SYN from the originator on a
TIME_WAIT or CLOSE connection reopens it (R_REOPEN). Packets whose flags
make no sense (SYN+FIN, SYN+RST, no ACK after the handshake, nothing set),
a SYN+ACK from the originator, or a second SYN+ACK out of SYN_RECV's order
are invalid.

Window check (as pf / Linux nf_conntrack do it, simplified): each direction
keeps end (highest seq + len it sent), maxend (the highest seq the peer's ACK
and window allow it) and maxwin (its largest window). A segment is in window
when seq <= sender.maxend, seq + len >= sender.end - receiver.maxwin, and its
ACK is <= receiver.end and >= receiver.end - max(sender.maxwin, 66000). The
window scale comes from the SYN options when both sides send one. Liberal
mode (G_LIBERAL) skips the check and only follows the states. All sequence
arithmetic is modulo 2^32.
"""

import numpy as np

from pyvswitch.core.jit import kernel

(S_NONE, S_SYN_SENT, S_SYN_RECV, S_ESTABLISHED, S_FIN_WAIT, S_CLOSE_WAIT, S_LAST_ACK,
 S_TIME_WAIT, S_CLOSE) = range(9)
STATE_NAMES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT_1", "CLOSE_WAIT",
               "LAST_ACK", "TIME_WAIT", "CLOSED")

# window columns, per direction d at base + d * 4 + W_*; then W_FIN (bit d: FIN from d)
W_END, W_MAXEND, W_MAXWIN, W_SCALE = range(4)
W_FIN = 8
W_COLS = 9

R_OK, R_REOPEN = 0, 1
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
M32 = 0xFFFFFFFF
NO_SCALE = 15          # W_SCALE before a SYN said something


@kernel(nrt=False, inline=True)
def _u32(b, p):
    return (np.int64(b[p]) << 24) | (np.int64(b[p + 1]) << 16) | (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3])


@kernel(nrt=False, inline=True)
def _before(a, b):
    """a < b in sequence space."""
    return ((a - b) & M32) >= 0x80000000


@kernel(nrt=False)
def _wscale(b, l4, hl, end):
    """The window scale option of a SYN, or NO_SCALE."""
    p = l4 + 20
    stop = min(l4 + hl, end)
    while p < stop:
        kind = np.int64(b[p])
        if kind == 0:
            break
        if kind == 1:
            p += 1
            continue
        if p + 1 >= stop:
            break
        n = np.int64(b[p + 1])
        if n < 2:
            break
        if kind == 3 and n == 3 and p + 2 < stop:
            return min(np.int64(b[p + 2]), 14)
        p += n
    return NO_SCALE


@kernel(nrt=False, inline=True)
def _flags(b, l4):
    return np.int64(b[l4 + 13]) & 0x3F


@kernel(nrt=False)
def valid_new(b, l4, end):
    """May this segment start a connection (a plain SYN)?"""
    if l4 < 0 or l4 + 20 > end:
        return False
    return (_flags(b, l4) & (SYN | ACK | RST | FIN)) == SYN


@kernel(nrt=False)
def init(c, base, b, l4, end):
    for k in range(W_COLS):
        c[base + k] = 0
    c[base + W_SCALE] = NO_SCALE
    c[base + 4 + W_SCALE] = NO_SCALE


@kernel(nrt=False)
def _seg(b, l4, end):
    """(seq, ack, window, segment length incl. SYN/FIN, header length, flags) or hl = -1."""
    if l4 < 0 or l4 + 20 > end:
        return 0, 0, 0, 0, -1, 0
    hl = (np.int64(b[l4 + 12]) >> 4) * 4
    if hl < 20 or l4 + hl > end:
        return 0, 0, 0, 0, -1, 0
    fl = _flags(b, l4)
    n = end - l4 - hl
    if fl & SYN:
        n += 1
    if fl & FIN:
        n += 1
    win = (np.int64(b[l4 + 14]) << 8) | np.int64(b[l4 + 15])
    return _u32(b, l4 + 4), _u32(b, l4 + 8), win, n, hl, fl


@kernel(nrt=False)
def _in_window(c, base, d, seq, ack, win, n, fl):
    """Check and update the window state of a segment from direction d."""
    s = base + d * 4
    r = base + (1 - d) * 4
    if fl & SYN:
        sc = c[s + W_SCALE]
    else:
        both = c[s + W_SCALE] != NO_SCALE and c[r + W_SCALE] != NO_SCALE
        sc = c[s + W_SCALE] if both else 0
    w = win << sc if (fl & SYN) == 0 else win
    endseq = (seq + n) & M32
    if c[s + W_MAXWIN] == 0:
        # the first segment of this direction (the SYN, or the SYN+ACK)
        c[s + W_END] = endseq
        c[s + W_MAXEND] = endseq
        c[s + W_MAXWIN] = max(w, 1)
        if fl & ACK and c[r + W_MAXWIN] != 0:
            c[r + W_MAXEND] = (ack + max(w, 1)) & M32
        return True
    ok = True
    if c[r + W_MAXWIN] != 0:
        maxack = max(c[s + W_MAXWIN], 66000)
        ok = (not _before(c[s + W_MAXEND], seq)                      # seq <= sender.maxend
              and not _before(endseq, (c[s + W_END] - c[r + W_MAXWIN]) & M32))
        if ok and fl & ACK:
            ok = (not _before(c[r + W_END], ack)                     # ack <= receiver.end
                  and not _before(ack, (c[r + W_END] - maxack) & M32))
    if not ok:
        return False
    if w > c[s + W_MAXWIN]:
        c[s + W_MAXWIN] = w
    if _before(c[s + W_END], endseq):
        c[s + W_END] = endseq
    if _before(c[s + W_MAXEND], endseq):
        c[s + W_MAXEND] = endseq
    if fl & ACK and c[r + W_MAXWIN] != 0:
        lim = (ack + max(w, 1)) & M32
        if _before(c[r + W_MAXEND], lim):
            c[r + W_MAXEND] = lim
    return True


@kernel(nrt=False)
def update(c, base, st_col, d, b, l4, end, liberal):
    """One segment from direction d (0 = originator). Returns R_OK, R_REOPEN
    or -1 (invalid: the state is not changed)."""
    seq, ack, win, n, hl, fl = _seg(b, l4, end)
    if hl < 0:
        return -1
    if (fl & SYN and fl & (FIN | RST)) or (fl & (SYN | ACK | RST | FIN)) == 0:
        return -1
    st = c[st_col]
    syn = fl & SYN != 0
    if syn and fl & ACK == 0:
        if d != 0:
            return -1                                    # simultaneous open: not supported
        if st == S_TIME_WAIT or st == S_CLOSE:
            return R_REOPEN
        if st != S_NONE and st != S_SYN_SENT:
            return -1
        c[base + W_SCALE] = _wscale(b, l4, hl, end)
        if st == S_NONE:
            c[base + W_MAXWIN] = 0                       # (re)start this direction's window
        c[st_col] = S_SYN_SENT
        _in_window(c, base, 0, seq, ack, win, n, fl)
        return R_OK
    if syn:                                              # SYN+ACK
        if d != 1 or (st != S_SYN_SENT and st != S_SYN_RECV):
            return -1
        if st == S_SYN_SENT:
            c[base + 4 + W_SCALE] = _wscale(b, l4, hl, end)
        if not liberal and not _in_window(c, base, 1, seq, ack, win, n, fl):
            return -1
        if liberal:
            _in_window(c, base, 1, seq, ack, win, n, fl)
        c[st_col] = S_SYN_RECV
        return R_OK
    if fl & RST:
        if not liberal and st >= S_SYN_RECV and c[base + d * 4 + W_MAXWIN] != 0:
            if not _in_window(c, base, d, seq, ack, win, n, fl & ~ACK):
                return -1
        c[st_col] = S_CLOSE
        return R_OK
    if fl & ACK == 0:
        return -1                                        # FIN without ACK, data without ACK
    if st == S_SYN_SENT:
        return -1                                        # ACK before the SYN+ACK
    if st == S_NONE:
        return -1
    ok = _in_window(c, base, d, seq, ack, win, n, fl)
    if not ok and not liberal:
        return -1
    fins = c[base + W_FIN]
    if fl & FIN:
        fins |= 1 << d
        c[base + W_FIN] = fins
    if st == S_SYN_RECV:
        st = S_ESTABLISHED if d == 0 else S_SYN_RECV
    if fl & FIN:
        if fins == 3:
            st = S_LAST_ACK
        elif st == S_ESTABLISHED or st == S_SYN_RECV:
            st = S_FIN_WAIT
    elif st == S_FIN_WAIT and fins != (1 << d):
        st = S_CLOSE_WAIT                                # the peer acked the FIN, keeps sending
    elif st == S_LAST_ACK:
        st = S_TIME_WAIT
    c[st_col] = st
    return R_OK


@kernel(nrt=False)
def timeout_of(st):
    """Index into the table's timeouts (table.py TO_*)."""
    if st == S_SYN_SENT:
        return 0
    if st == S_SYN_RECV:
        return 1
    if st == S_ESTABLISHED or st == S_CLOSE_WAIT:
        return 2
    if st == S_FIN_WAIT or st == S_LAST_ACK:
        return 3
    if st == S_TIME_WAIT:
        return 4
    return 5


@kernel(nrt=False)
def established_seen(st, flags):
    """+est: packets of the connection went both ways (flags bit 0: replied)."""
    return (flags & 1) != 0
