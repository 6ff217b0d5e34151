"""VHOST_USER_SEND_RARP: announce a guest's MAC from its port after a live
migration, as DPDK's vhost library does.

The front-end (QEMU, on the migration's destination, when the guest cannot
announce itself: no VIRTIO_NET_F_GUEST_ANNOUNCE) sends SEND_RARP with the
guest MAC. The device stores it (G_RARP_MAC, G_RARP = 1, under quiesce) and
the next rx_burst of the port's queue 0 hands the switch one RARP frame
before the guest's own frames, exactly as if the guest had sent it: NORMAL
learns the MAC on this port (moving it from wherever it was) and floods the
broadcast, so the physical network learns the new location too.

    rarp_frame(mac) -> bytes            the frame (the reference twin)
    put_rarp(mem, dst, off) -> length   compiled: the frame built from
                                        G_RARP_MAC into dst[off:]

Frame (DPDK's make_rarp_packet): broadcast destination, source = the MAC,
ethertype 0x8035, an ARP body (hardware 1, protocol 0x0800, lengths 6/4,
opcode 3 = reverse request, sender = target = the MAC, addresses 0), padded
with zeros to 64 bytes.
"""

import struct

from pyvswitch.ports.vhost._jit import hot
from pyvswitch.ports.vhost.layout import G_RARP_MAC
from pyvswitch.ports.vhost.memops import cw

ETH_P_RARP = 0x8035
RARP_LEN = 64


def rarp_frame(mac):
    mac = bytes(mac)
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 3) + mac + bytes(4) + mac + bytes(4)
    f = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_RARP) + body
    return f + bytes(RARP_LEN - len(f))


def mac_word(mac):
    """The u64 of SEND_RARP's payload / G_RARP_MAC: the MAC's 6 bytes in order."""
    return int.from_bytes(bytes(mac)[:6], "little")


@hot
def put_rarp(mem, dst, off):
    w = cw(mem, G_RARP_MAC)
    for k in range(RARP_LEN):
        dst[off + k] = 0
    for k in range(6):
        b = (w >> (8 * k)) & 0xFF
        dst[off + k] = 0xFF
        dst[off + 6 + k] = b                 # source
        dst[off + 22 + k] = b                # sender hardware address
        dst[off + 32 + k] = b                # target hardware address
    dst[off + 12], dst[off + 13] = 0x80, 0x35
    dst[off + 15] = 1                        # hardware type 1 (Ethernet)
    dst[off + 16] = 0x08                     # protocol 0x0800
    dst[off + 18], dst[off + 19] = 6, 4
    dst[off + 21] = 3                        # opcode: reverse request
    return RARP_LEN
