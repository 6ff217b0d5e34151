"""The port I/O contract between port types and the PMD loop.

Control side (Python, main thread): a port type module opens the device, sets
up its rings, and describes each (queue, PMD) it serves as one *io row*: an
int64 array of IO_COLS columns (below) plus one uint8 *memory* (the mmap'd
ring area, or a 1-byte placeholder when the type has none). The PMD keeps its
io rows in one int64 table and its memories in one typed list, and calls the
type's kernels with the row and the memory:

    rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats) -> n
        Receive up to n_max frames. slots[0:n_max] are free pool slots chosen
        by the PMD; frame i is written at pool[slots[i], offs[i]:offs[i]+lens[i]]
        (offs[i] = HEADROOM on receive). Counts rx packets/bytes/dropped/errors
        into qstats. Never blocks.
    tx_one(mem, io, pool, slot, off, length, qstats) -> 1 if queued, 0 if dropped
        Copy one frame out of the pool into the device's tx path. The slot may
        be modified or reused as soon as this returns.
    tx_flush(mem, io, qstats) -> None
        Make queued frames leave (one kick per burst), reclaim done tx frames.

Rows whose IO_FD is IO_FD_ARM (vhost-user: the fd to sleep on lives in
guest-shared state and must be armed first) get two more calls from an idle
PMD, around its ppoll sleep (never on the busy path):

    rx_arm(mem, io) -> fd >= 0 to poll (readable = traffic), or ARM_NO_FD
        (nothing can wake the PMD: it bounds its sleep), ARM_IDLE (nothing
        can arrive until the control thread changes the port, which parks
        the PMD), ARM_BUSY (work is pending: do not sleep)
    rx_disarm(mem, io, revents) -> number of poll slots the row used (0/1);
        revents = that slot's revents after ppoll

All of these are compiled kernels (pyvswitch.core.jit.kernel), called only from
the PMD loop (or from Python tests), never concurrently on the same io row:
each PMD has its own tx io row per port (a txq per PMD, as OVS's dynamic txqs).
Every index derived from ring contents is checked before use.
"""

import numpy as np

from pyvswitch.core.jit import kernel

# port types, as the PMD dispatches them
PT_NONE = 0
PT_DUMMY = 1
PT_AFPACKET = 2
PT_TAP = 3
PT_VHOST = 4
PT_PATCH = 5

# io row columns
IO_TYPE = 0          # PT_*
IO_FD = 1            # socket / tap fd (-1 if none, IO_FD_ARM: see rx_arm)
IO_MEM = 2           # index of the memory in the PMD's list
IO_PORT = 3          # dp_port this row belongs to
IO_QUEUE = 4         # queue id
IO_RX_OFF = 5        # rx ring offset in mem
IO_RX_NFRAMES = 6
IO_RX_FRAME_SIZE = 7
IO_RX_HEAD = 8       # next rx frame to look at
IO_TX_OFF = 9
IO_TX_NFRAMES = 10
IO_TX_FRAME_SIZE = 11
IO_TX_HEAD = 12      # next tx frame to fill
IO_TX_PENDING = 13   # frames filled since the last kick
IO_MTU = 14
IO_LINK_UP = 15      # 1 when the link is up (written by the control thread)
IO_FLAGS = 16        # type-specific flags
IO_X0 = 17           # first of the type-specific columns
IO_COLS = 32

IO_FD_ARM = -2       # IO_FD of rows that rx_arm before the PMD sleeps

# Split table of frames received by reference (vhost-user rx_burst_split; the
# PMD's xs array): xs[2 * slot + XS_HDR] bytes of the frame are in the slot (0:
# all of it), the rest at address xs[2 * slot + XS_ADDR] until the burst ends.
XS_HDR, XS_ADDR = 0, 1
HDR_NEED = 14 + 4 + 60 + 60   # Ethernet, one VLAN tag, IPv4 with options, TCP with options
ARM_NO_FD, ARM_IDLE, ARM_BUSY = -1, -2, -3

# per-queue statistics columns (int64)
Q_RX_PACKETS = 0
Q_RX_BYTES = 1
Q_RX_DROPPED = 2
Q_RX_ERRORS = 3
Q_TX_PACKETS = 4
Q_TX_BYTES = 5
Q_TX_DROPPED = 6
Q_TX_ERRORS = 7
Q_TX_MTU_DROPS = 8   # frames longer than the port's MTU (also in tx_dropped), as OVS-DPDK counts
Q_COLS = 9

Q_NAMES = ("rx_packets", "rx_bytes", "rx_dropped", "rx_errors",
           "tx_packets", "tx_bytes", "tx_dropped", "tx_errors", "ovs_tx_mtu_exceeded_drops")


@kernel(nrt=False)
def headers_fit(b, o, n):
    """True if every byte the parser and conntrack read of the frame at b[o:]
    lies in b[o:o+n]: IPv4 or IPv6 (one VLAN tag at most) carrying TCP or UDP
    with no IPv6 extension header, and n >= HDR_NEED. Only such a frame may be
    held by reference with n bytes in its slot (the split table)."""
    if n < HDR_NEED:
        return False
    et = (np.int64(b[o + 12]) << 8) | b[o + 13]
    ip = o + 14
    if et == 0x8100:
        et = (np.int64(b[o + 16]) << 8) | b[o + 17]
        ip += 4
    if et == 0x0800:
        proto = b[ip + 9]
    elif et == 0x86DD:
        proto = b[ip + 6]
    else:
        return False
    return proto == 6 or proto == 17


def new_io_row(port_type, dp_port=0, queue=0, fd=-1):
    row = np.zeros(IO_COLS, dtype=np.int64)
    row[IO_TYPE] = port_type
    row[IO_FD] = fd
    row[IO_PORT] = dp_port
    row[IO_QUEUE] = queue
    row[IO_LINK_UP] = 1
    return row


def new_qstats():
    return np.zeros(Q_COLS, dtype=np.int64)
