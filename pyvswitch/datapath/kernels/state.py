"""The per-PMD state the loop kernel runs on: one namedtuple of arrays.

Kernels are compiled without NRT (core/jit.py), so io rows and ring memories
-- arrays owned by port objects, of varying sizes -- are reached through
address tables (rowptr, memptr) and intrinsics.view_i64/view_u8. The Pmd
object keeps those arrays referenced while their addresses are published.

    pool[n_slots, slot_size] uint8    the shared packet pool
    free[k] int64                     this PMD's free slots, ctl[C_FREE_TOP] of them
    ctl[C_COLS] int64                 control words (below): written by the
                                      control thread (C_GEN, C_STOP: atomics)
                                      or by the PMD thread's Python side
    stats[S_COLS] int64               PMD counters (read by anyone, racy-exact)
    rxq[R] int64                      io row index of each polled rxq (C_NRXQ)
    rowptr[R] int64                   address of io row r (int64[IO_COLS])
    memptr[R, 2] int64                address and length of row r's memory
    qstats[R, Q_COLS] int64           per io row counters (ports/io.py Q_*)
    txmap[MAX_PORTS] int64            dp_port -> tx io row, -1 none
    touched[R] / tlist[R] int64       rows with frames queued in this burst
    burst[B_COLS, BURST] int64        slot, off, len, flow of each burst packet
    keys[BURST, KEY_WORDS] uint64     burst keys
    upq_key[Q, KEY_WORDS] uint64      packets waiting for Python (upcalls and
    upq_meta[Q, U_COLS] int64         userspace actions): slot, off, len,
                                      in_port, kind, arg; ctl[C_UPQ_N] of them
    pollfds[R+1, 2] int32             struct pollfd: [0] the wake eventfd
    timespec[2] int64                 ppoll timeout
    rxq_cycles[R] int64               busy cycles spent on each rxq
    rcq_key[BURST, KEY_WORDS] uint64  packets to recirculate: key (metadata
    rcq_meta[BURST, RC_COLS] int64    and new recirc_id), slot, off, len,
                                      depth; ctl[C_RCQ_N] of them
    tnl_out[8] int64                  tnl_pop's outer fields
    ct                                the connection table (conntrack/table.py)
    ct_out[8] int64 / ct_q[6] uint64  ct_process's results / scratch tuple
    xs[2 * n_slots] int64             split table (ports/io.py XS_*): a frame received by reference
                                      (vhost-user) has xs[2s] > 0 bytes in slot s
                                      and the rest at address xs[2s+1], valid
                                      until the end of its burst; 0 for every
                                      free slot (whoever frees a slot clears it)
"""

from collections import namedtuple

import numpy as np

from pyvswitch.conntrack import table as CT
from pyvswitch.datapath.layout import KEY_WORDS
from pyvswitch.ports import io as pio

BURST = 32
UPQ_LEN = 256       # upcall queue entries
UPQ_ROOM = 2 * BURST   # free entries the PMD wants before it polls an rxq
MAX_PORTS = 4096

C_GEN, C_ACK, C_STOP, C_MAX_ITER, C_SLEEP_MAX_US, C_WAKE_FD, C_NRXQ = range(7)
C_NOW_NS, C_NOW_TSC, C_CYC_PER_US, C_EMC_INV_PROB, C_RAND, C_UPQ_N = range(7, 13)
C_FREE_TOP, C_IDLE_RUN, C_SLEEP_US, C_SPIN_POLLS, C_NTOUCHED, C_NPOLL = range(13, 19)
C_FD_WAKES = 19     # 1 when every rxq has an fd that wakes ppoll: sleep longer
C_RCQ_N = 20        # packets on the recirculation queue
C_DEPTH = 21        # recirculation depth of the packet being executed
C_RXQ_NEXT = 22     # the rxq the next iteration starts at (after backpressure)
C_COLS = 24
FD_SLEEP_MAX_US = 1_000_000   # sleep cap when fds wake the PMD (traffic does at once)

S_PACKETS, S_EMC_HITS, S_MF_HITS, S_MISS, S_LOST, S_UPCALL_OK, S_UPCALL_FAIL = range(7)
S_SUBTABLE_LOOKUPS, S_BUSY_CYC, S_IDLE_CYC, S_ITER, S_SLEEPS, S_TX_BATCHES = range(7, 13)
S_TX_PACKETS, S_USERSPACE, S_RECIRC_DROP, S_NO_SLOT, S_TX_NOPORT = range(13, 18)
S_RECIRC = 18       # recirculations (extra datapath passes)
S_TNL_PUSH_ERR = 19 # tnl_push without headroom
S_TNL_POP_ERR = 20  # tnl_pop of a frame that is not VXLAN to the port (tunnel.POP_ERRORS)
S_SPLIT_COPY = 21   # frames held by reference copied whole (an action or port needed them)
S_COLS = 24

B_SLOT, B_OFF, B_LEN, B_FLOW = range(4)
B_COLS = 4

U_SLOT, U_OFF, U_LEN, U_IN_PORT, U_KIND, U_ARG = range(6)
U_COLS = 6
KIND_MISS, KIND_USERSPACE = 0, 1      # a miss's U_ARG is its recirculation depth

RC_SLOT, RC_OFF, RC_LEN, RC_DEPTH = range(4)
RC_COLS = 4

RET_ITER, RET_GEN, RET_UPCALL, RET_STOP = 0, 1, 2, 3

PmdState = namedtuple("PmdState", "pool free ctl stats rxq rowptr memptr qstats txmap touched tlist burst keys "
                                  "upq_key upq_meta pollfds timespec rxq_cycles rcq_key rcq_meta "
                                  "tnl_out ct ct_out ct_q xs")


def new_state(pool, free_slots, max_rows=64, upq_len=UPQ_LEN, ct=None):
    """ct: the datapath's connection table (shared by its PMDs); a small
    private one when None (tests)."""
    r = max_rows
    p = PmdState(
        pool=pool, free=np.array(free_slots, np.int64), ctl=np.zeros(C_COLS, np.int64),
        stats=np.zeros(S_COLS, np.int64), rxq=np.zeros(r, np.int64),
        rowptr=np.zeros(r, np.int64), memptr=np.zeros((r, 2), np.int64),
        qstats=np.zeros((r, pio.Q_COLS), np.int64), txmap=np.full(MAX_PORTS, -1, np.int64),
        touched=np.zeros(r, np.int64), tlist=np.zeros(r, np.int64),
        burst=np.zeros((B_COLS, BURST), np.int64), keys=np.zeros((BURST, KEY_WORDS), np.uint64),
        upq_key=np.zeros((upq_len, KEY_WORDS), np.uint64),
        upq_meta=np.zeros((upq_len, U_COLS), np.int64),
        pollfds=np.zeros((r + 1, 2), np.int32), timespec=np.zeros(2, np.int64),
        rxq_cycles=np.zeros(r, np.int64),
        rcq_key=np.zeros((BURST, KEY_WORDS), np.uint64), rcq_meta=np.zeros((BURST, RC_COLS), np.int64),
        tnl_out=np.zeros(8, np.int64), ct=CT.new_table(64) if ct is None else ct,
        ct_out=np.zeros(8, np.int64), ct_q=np.zeros(CT.T_WORDS, np.uint64),
        xs=np.zeros(2 * pool.shape[0], np.int64))
    p.ctl[C_FREE_TOP] = len(free_slots)
    p.ctl[C_WAKE_FD] = -1
    p.ctl[C_MAX_ITER] = 1 << 16
    p.ctl[C_SLEEP_MAX_US] = 1000
    p.ctl[C_CYC_PER_US] = 1000
    p.ctl[C_EMC_INV_PROB] = 1
    p.ctl[C_RAND] = 0x2545F4914F6CDD1D
    p.ctl[C_SPIN_POLLS] = 256
    return p
