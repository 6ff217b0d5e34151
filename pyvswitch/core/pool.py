"""The packet-buffer pool: fixed-size slots in one shared arena.

    pool.buf  uint8[n_slots, slot_size]   slot s = one frame buffer

A frame starts HEADROOM bytes into its slot on receive, so actions can push
headers (VLAN tags, VXLAN outer headers) in place by moving the start back.
The data room after the headroom is chosen from the largest MTU: 2048 bytes by
default, rounded up to 64 for jumbo frames (MTU 9000 -> 9088 + 128).

Slots are partitioned per PMD: `partition(n)` gives each PMD its own free
stack (an int64 array of slot numbers, as `FreeSlots`). A slot belongs to one
PMD for its whole life, so no locking is needed on the fast path. Only the
owning PMD thread takes and returns its slots.
"""

import numpy as np

from pyvswitch.core.shm import Arena

HEADROOM = 128
DEFAULT_DATA = 2048
ETH_OVERHEAD = 14 + 4 + 4 + 4        # Ethernet + two VLAN tags + FCS room


def data_size_for_mtu(mtu):
    need = int(mtu) + ETH_OVERHEAD
    return max(DEFAULT_DATA, -(-need // 64) * 64)


class FreeSlots:
    """A free stack: slots[0:count] are free (count kept in `top[0]`)."""

    def __init__(self, slots):
        self.slots = np.array(slots, dtype=np.int64)
        self.top = np.array([len(slots)], dtype=np.int64)

    @property
    def count(self):
        return int(self.top[0])


class Pool:
    def __init__(self, n_slots, max_mtu=1500, rundir="", name="pool"):
        self.data_size = data_size_for_mtu(max_mtu)
        self.slot_size = HEADROOM + self.data_size
        self.n_slots = int(n_slots)
        self.arena = Arena(name, self.n_slots * self.slot_size + 64, rundir)
        self.buf = self.arena.alloc(np.uint8, (self.n_slots, self.slot_size))

    def partition(self, n_parts):
        """n_parts FreeSlots covering the pool in contiguous ranges."""
        bounds = np.linspace(0, self.n_slots, n_parts + 1).astype(np.int64)
        return [FreeSlots(np.arange(bounds[i], bounds[i + 1])) for i in range(n_parts)]

    def frame(self, slot, off, length):
        return bytes(self.buf[slot, off:off + length])

    def close(self):
        self.buf = None
        self.arena.close()
