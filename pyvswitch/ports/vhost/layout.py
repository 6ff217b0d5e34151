"""Layout of a vhost-user port's memory: one flat uint8 array per port.

What: the port reserves one PROT_NONE virtual range at open() and keeps it
for its whole life; the numpy array the PMDs hold covers all of it, so a
run-time SET_MEM_TABLE only swaps the mappings *inside* the range (under
quiesce) and never the array object:

    [0, CTRL_BYTES)               control area (our anonymous memory): int64
                                  words below (global state, region table,
                                  per-vring state, error counters)
    [LOG_OFF, LOG_OFF+LOG_MAX)    dirty log window (SET_LOG_BASE fd, MAP_FIXED)
    [GUEST_OFF, ...)              guest regions, each MAP_FIXED at an offset
                                  aligned to 2 MiB (or its block size)

Invariants: the control thread writes the control words only while every
PMD is parked (quiesce); PMDs write the error counters, the per-vring lock
word, V_BROKEN and G_RARP (cleared once injected). Kernels check every guest-derived index against
V_N and every translated range against the region table before any access.

Vring numbering: vring 2q is the guest's receive queue of pair q (our tx),
2q+1 its transmit queue (our rx).
"""

CTRL_BYTES = 64 * 1024
LOG_OFF = CTRL_BYTES
LOG_MAX = 64 << 20            # bitmap for 2 TiB of guest memory (4 KiB pages)
GUEST_OFF = LOG_OFF + LOG_MAX
DEFAULT_WINDOW = 64 << 30     # guest address window (virtual only: PROT_NONE)

MAX_QP = 16                   # queue pairs
MAX_VRINGS = 2 * MAX_QP
MAX_REGIONS = 8

# global words
G_FEATURES = 0
G_HDR_LEN = 1                 # virtio-net header size: 12 or 10
G_NREG = 2                    # regions in the table
G_LOG_ON = 3                  # VHOST_F_LOG_ALL negotiated and a log mapped
G_LOG_BYTES = 4               # bitmap size in bytes
G_LOG_MOFF = 5                # mem offset of the bitmap
G_NTXV = 6                    # entries in the tx vring map
G_ONE = 7                     # the constant 1 (eventfd write buffer)
G_MRG = 8                     # MRG_RXBUF negotiated
G_EVENT_IDX = 9               # RING_F_EVENT_IDX negotiated
G_SCRATCH = 10                # eventfd read buffer
G_LAST_REG = 11               # translation cache hint (racy, only a hint)
G_RARP = 12                   # 1: inject a RARP for G_RARP_MAC (rarp.py; the PMD clears it)
G_RARP_MAC = 13               # SEND_RARP's MAC: its 6 bytes, little-endian

# error counters (PMDs add to them; names in ERR_NAMES)
ERR_BASE = 16
E_BAD_DESC_INDEX = 0          # head or next index >= ring size
E_CHAIN_TOO_LONG = 1          # more hops than the ring size (a loop or garbage)
E_BAD_DESC_ADDR = 2           # buffer outside every memory region
E_BAD_DESC_FLAGS = 3          # writable on tx, read-only on rx, indirect
E_AVAIL_JUMP = 4              # avail idx moved by more than the ring size
E_RX_OVERSIZE = 5             # guest frame larger than a pool slot / empty
E_NO_RX_BUFFERS = 6           # the guest's receive ring was empty
E_RX_BUF_SMALL = 7            # a chain too small for the frame (no MRG_RXBUF)
E_NOT_READY = 8               # tx to a ring that is not running
N_ERR = 9
ERR_NAMES = ("bad_desc_index", "desc_chain_too_long", "bad_desc_addr", "bad_desc_flags",
             "avail_idx_jump", "guest_frame_oversize", "guest_rx_ring_full",
             "guest_rx_buffer_too_small", "ring_not_ready")

# region table: MAX_REGIONS x 4 words
REG_BASE = 48
R_GPA, R_SIZE, R_UVA, R_MOFF = 0, 1, 2, 3
R_WORDS = 4

# tx vring map: vrings we transmit into (enabled guest rx rings)
TXMAP_BASE = REG_BASE + MAX_REGIONS * R_WORDS        # 80
# per-vring state
VR_BASE = TXMAP_BASE + MAX_QP                        # 96
VR_WORDS = 24
V_READY = 0            # 1: the PMD may use the ring
V_N = 1                # ring size (power of two)
V_DESC = 2             # mem offsets of the three parts
V_AVAIL = 3
V_USED = 4
V_LAST_AVAIL = 5       # next avail slot to consume (free-running, & 0xffff on use)
V_USED_IDX = 6         # our used index (written, maybe not yet published)
V_SIGNALLED = 7        # used idx at the last call decision
V_CALL_FD = 8          # -1: no interrupts
V_LOG_USED = 9         # guest physical address of the used ring, -1: not logged
V_LOCK = 10            # tx lock (atomic_or / store_release)
V_BROKEN = 11          # set by a kernel: the ring is corrupt, disconnect the peer
V_CALLS = 12           # calls made (eventfd writes)
V_PACKETS = 13         # chains consumed / frames delivered
V_PUBLISHED = 14       # used idx last published to the guest
V_NB0 = 15             # 2 words: tx scratch (num_buffers offsets), under V_LOCK
V_KICK_FD = 17         # -1: none; an idle PMD sleeps on it (notify.py)
V_SPLIT = 18           # frames received by reference (rx_burst_split: headers copied, payload not)
CTRL_WORDS = VR_BASE + MAX_VRINGS * VR_WORDS         # 864 words < CTRL_BYTES / 8

# io row columns of vhost rows (ports/io.py IO_X0 on)
from pyvswitch.ports.io import IO_X0  # noqa: E402

X_VRING = IO_X0        # rx rows: the vring polled (2q+1)
X_TXHINT = IO_X0 + 1   # tx rows: spread PMDs over the tx vring map
X_ARMED = IO_X0 + 2    # rx rows: kick fd armed for the PMD's current sleep, -1 none (notify.py)
X_TXLOCK = IO_X0 + 3   # tx rows: control word of the V_LOCK this row holds until tx_flush, 0 none

# virtio constants
VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4
VRING_USED_F_NO_NOTIFY = 1
VRING_AVAIL_F_NO_INTERRUPT = 1

F_CSUM = 0
F_MRG_RXBUF = 15
F_STATUS = 16
F_CTRL_VQ = 17
F_MQ = 22
F_LOG_ALL = 26
F_ANY_LAYOUT = 27
F_INDIRECT_DESC = 28
F_EVENT_IDX = 29
F_PROTOCOL_FEATURES = 30
F_VERSION_1 = 32
F_ACCESS_PLATFORM = 33
F_RING_PACKED = 34
F_IN_ORDER = 35


def vr(ring):
    """First control word of vring `ring`."""
    return VR_BASE + ring * VR_WORDS
