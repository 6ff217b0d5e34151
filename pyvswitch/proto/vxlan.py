"""VXLAN outer headers (RFC 7348) as bytes: the template tnl_push writes.

`vxlan_header` builds Ethernet + IPv4 + UDP + VXLAN (50 bytes) with the IPv4
total length 0 and the IPv4 checksum computed over that, UDP source port,
length and checksum 0: the datapath's tnl_push fills in what depends on the
frame (datapath/kernels/tunnel.py). Plain Python, any layer may use it.
"""

import struct

ETH_LEN, IP_LEN, UDP_LEN, VXLAN_LEN = 14, 20, 8, 8
VXLAN_HLEN = ETH_LEN + IP_LEN + UDP_LEN + VXLAN_LEN      # 50
VXLAN_FLAGS_I = 0x08000000
VXLAN_PORT = 4789


def csum16(data):
    """The Internet checksum of data (even length)."""
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def vxlan_header(eth_dst, eth_src, ip_src, ip_dst, vni, dst_port=4789, tos=0, ttl=64, df=True):
    """The 50-byte outer header template tnl_push writes (ints for MACs/IPs)."""
    if not (0 <= vni < 1 << 24 and 0 < dst_port < 1 << 16 and 0 <= tos < 256 and 0 < ttl < 256):
        raise ValueError("vxlan header: vni, dst_port, tos or ttl out of range")
    eth = eth_dst.to_bytes(6, "big") + eth_src.to_bytes(6, "big") + b"\x08\x00"
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, 0, 0, 0x4000 if df else 0, ttl, 17, 0,
                               ip_src.to_bytes(4, "big"), ip_dst.to_bytes(4, "big")))
    struct.pack_into("!H", ip, 10, csum16(bytes(ip)))
    udp = struct.pack("!HHHH", 0, dst_port, 0, 0)
    vx = struct.pack("!II", VXLAN_FLAGS_I, vni << 8)
    return eth + bytes(ip) + udp + vx
