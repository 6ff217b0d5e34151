"""Datapath flow-key layout: the one table every layer agrees on.

A flow key is KEY_WORDS uint64 words. Each field lives in one word at a bit
offset (fields never straddle words, so a kernel reads a field with one shift
and one mask). A megaflow mask has the same shape: a 1 bit means "this bit was
examined by xlate and must match". The parse kernel fills keys, the EMC and
dpcls compare keys word by word, xlate returns masks by field name, and dpctl
prints both through `format_key`.

Conventions follow Open vSwitch's datapath flow key:
- vlan_tci carries the 802.1Q TCI with bit 0x1000 (CFI) set when a tag is
  present; 0 means untagged. dl_type is then the inner ethertype.
- For ARP, nw_proto holds the opcode (low 8 bits), nw_src/nw_dst the sender and
  target protocol addresses, arp_sha/arp_tha the hardware addresses.
- For ICMP/ICMPv6, tp_src holds the type and tp_dst the code.
- nw_frag: bit 0 "is a fragment", bit 1 "later fragment" (OVS's FLOW_NW_FRAG_*).
- in_port is the datapath port number (dp_port), not the OpenFlow ofport.
- ipv6_src/ipv6_dst, nd_target (ICMPv6 neighbour solicitation/advertisement
  target) and ct_label are split into a high and a low 64-bit word (network
  byte order read as a big-endian integer).

Invariants: KEY_WORDS and the field table change only together with every
kernel that reads them; tests/unit/test_layout.py checks that no two fields
overlap. Any thread may import this module; it holds constants only.
"""

import numpy as np

KEY_WORDS = 20

# name: (word, shift, bits)
FIELDS = {
    "in_port": (0, 0, 16),
    "vlan_tci": (0, 16, 16),
    "dl_type": (0, 32, 16),
    "nw_proto": (0, 48, 8),
    "nw_tos": (0, 56, 8),
    "dl_dst": (1, 0, 48),
    "nw_ttl": (1, 48, 8),
    "nw_frag": (1, 56, 8),
    "dl_src": (2, 0, 48),
    "tcp_flags": (2, 48, 16),
    "nw_src": (3, 0, 32),
    "nw_dst": (3, 32, 32),
    "tp_src": (4, 0, 16),
    "tp_dst": (4, 16, 16),
    "ct_state": (4, 32, 8),
    "ct_zone": (4, 40, 16),
    "recirc_id": (5, 0, 32),
    "ct_mark": (5, 32, 32),
    "ipv6_src_hi": (6, 0, 64),
    "ipv6_src_lo": (7, 0, 64),
    "ipv6_dst_hi": (8, 0, 64),
    "ipv6_dst_lo": (9, 0, 64),
    "arp_sha": (10, 0, 48),
    "arp_tha": (11, 0, 48),
    "ipv6_label": (12, 0, 20),
    "pkt_mark": (12, 32, 32),
    "tun_id": (13, 0, 64),
    "tun_src": (14, 0, 32),
    "tun_dst": (14, 32, 32),
    "dp_hash": (15, 0, 32),
    "nd_target_hi": (16, 0, 64),
    "nd_target_lo": (17, 0, 64),
    "ct_label_hi": (18, 0, 64),
    "ct_label_lo": (19, 0, 64),
}

# Word/shift constants for kernels (numba reads module globals as constants).
W_IN_PORT, S_IN_PORT = 0, 0
W_VLAN_TCI, S_VLAN_TCI = 0, 16
W_DL_TYPE, S_DL_TYPE = 0, 32
W_NW_PROTO, S_NW_PROTO = 0, 48
W_NW_TOS, S_NW_TOS = 0, 56
W_DL_DST = 1
W_NW_TTL, S_NW_TTL = 1, 48
W_NW_FRAG, S_NW_FRAG = 1, 56
W_DL_SRC = 2
W_TCP_FLAGS, S_TCP_FLAGS = 2, 48
W_NW_ADDR, S_NW_SRC, S_NW_DST = 3, 0, 32
W_TP, S_TP_SRC, S_TP_DST = 4, 0, 16
W_RECIRC = 5          # recirc_id: bits 0-31
W_IPV6_SRC_HI, W_IPV6_SRC_LO, W_IPV6_DST_HI, W_IPV6_DST_LO = 6, 7, 8, 9
W_ARP_SHA, W_ARP_THA = 10, 11
W_IPV6_LABEL = 12
W_TUN_ID = 13
W_TUN_ADDR = 14       # tun_src: bits 0-31, tun_dst: 32-63
W_ND_TARGET_HI, W_ND_TARGET_LO = 16, 17
W_CT_LABEL_HI, W_CT_LABEL_LO = 18, 19

VLAN_CFI = 0x1000
VLAN_VID_MASK = 0x0FFF
VLAN_PCP_SHIFT = 13

FRAG_ANY = 1
FRAG_LATER = 2

# Packet metadata: key fields that do not come from the headers. A packet that
# recirculates is parsed again (its headers may have changed, e.g. after a
# tunnel pop) and keeps these from its previous pass (OVS's pkt_metadata).
META_FIELDS = ("in_port", "recirc_id", "ct_state", "ct_zone", "ct_mark", "ct_label_hi", "ct_label_lo",
               "pkt_mark", "tun_id", "tun_src", "tun_dst", "dp_hash")


def _meta_mask():
    m = np.zeros(KEY_WORDS, np.uint64)
    for name in META_FIELDS:
        word, shift, bits = FIELDS[name]
        m[word] |= np.uint64(((1 << bits) - 1) << shift)
    return m


META_MASK = _meta_mask()
MAX_RECIRC_DEPTH = 6    # passes after the first; deeper recirculation drops (as OVS)


def field_mask(name):
    """The all-ones mask of field `name`, as (word, uint64 mask in place)."""
    word, shift, bits = FIELDS[name]
    return word, ((1 << bits) - 1) << shift


def new_key():
    return np.zeros(KEY_WORDS, dtype=np.uint64)


def pack_key(values, out=None):
    """Build a key (or a mask) from {field: int}. Values wider than the field
    raise ValueError rather than silently spilling into a neighbour."""
    key = new_key() if out is None else out
    for name, value in values.items():
        word, shift, bits = FIELDS[name]
        value = int(value)
        if value < 0 or value >> bits:
            raise ValueError(f"{name}={value:#x} does not fit in {bits} bits")
        cur = int(key[word]) & ~(((1 << bits) - 1) << shift)
        key[word] = np.uint64(cur | (value << shift))
    return key


def get_field(key, name):
    word, shift, bits = FIELDS[name]
    return (int(key[word]) >> shift) & ((1 << bits) - 1)


def unpack_key(key):
    """{field: int} for every field (zeros included)."""
    return {name: get_field(key, name) for name in FIELDS}


def mask_fields(mask):
    """{field: mask_int} for the fields with at least one examined bit."""
    out = {}
    for name in FIELDS:
        m = get_field(mask, name)
        if m:
            out[name] = m
    return out
