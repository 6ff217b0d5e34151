"""parse kernel == parse_packet_ref on structured, truncated and garbage frames."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.core.pool import HEADROOM
from pyvswitch.datapath import layout as L
from pyvswitch.datapath.kernels.parse import meta_of, parse_burst, parse_frame, parse_packet_ref, reparse_frame

from .packets import any_frame

SLOT = HEADROOM + 256


def _kernel_key(frame, in_port, fill):
    pool = np.full((2, SLOT), fill, dtype=np.uint8)
    n = min(len(frame), SLOT - HEADROOM)
    pool[1, HEADROOM:HEADROOM + n] = np.frombuffer(frame[:n], np.uint8)
    keys = np.full((1, L.KEY_WORDS), 0xAB, dtype=np.uint64)
    parse_burst(pool, np.array([1], np.int64), np.array([HEADROOM], np.int64),
                np.array([n], np.int64), 1, in_port, keys)
    return keys[0], frame[:n]


@settings(max_examples=600, deadline=None)
@given(any_frame, st.integers(0, 0xFFFF), st.integers(0, 255))
def test_kernel_equals_twin(frame, in_port, fill):
    got, used = _kernel_key(frame, in_port, fill)
    want = parse_packet_ref(used, in_port)
    assert L.unpack_key(got) == L.unpack_key(want)


@settings(max_examples=400, deadline=None)
@given(any_frame, st.lists(st.integers(0, (1 << 64) - 1), min_size=L.KEY_WORDS, max_size=L.KEY_WORDS))
def test_reparse_keeps_metadata_and_parses_the_rest(frame, words):
    """A recirculated packet's key: the twin's key of the frame, with every
    metadata bit (META_MASK) of the old key, whatever else the old key held."""
    old = np.array(words, np.uint64)
    key = np.array([(1 << 64) - 1] * L.KEY_WORDS, np.uint64)   # whatever it held
    b = np.frombuffer(frame, np.uint8)
    meta_of(old, key)
    reparse_frame(b, 0, len(frame), key)
    in_port = int(old[L.W_IN_PORT] >> np.uint64(L.S_IN_PORT)) & 0xFFFF
    want = (parse_packet_ref(frame, in_port) & ~L.META_MASK) | (old & L.META_MASK)
    assert list(key) == list(want)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.integers(-5, 300), st.integers(-5, 300))
def test_never_reads_outside_slot(data, off, length):
    row = np.frombuffer(data.ljust(64, b"\0"), np.uint8).copy()
    key = np.zeros(L.KEY_WORDS, np.uint64)
    parse_frame(row, off, length, 1, key)          # must not raise or crash


def test_known_frames():
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, ICMPv6EchoRequest
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    e = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
    k = parse_packet_ref(bytes(e / Dot1Q(vlan=10, prio=3) / IP(src="10.0.0.1", dst="10.0.0.2", tos=4, ttl=9)
                               / TCP(sport=1234, dport=80, flags="SA")), 3)
    f = L.unpack_key(k)
    assert f["in_port"] == 3 and f["vlan_tci"] == 0x1000 | 10 | (3 << 13)
    assert f["dl_type"] == 0x0800 and f["nw_src"] == 0x0A000001 and f["nw_proto"] == 6
    assert (f["tp_src"], f["tp_dst"], f["tcp_flags"], f["nw_tos"], f["nw_ttl"]) == (1234, 80, 0x12, 4, 9)
    assert f["dl_src"] == 1 and f["dl_dst"] == 2
    f = L.unpack_key(parse_packet_ref(bytes(e / IP(frag=5, flags="MF") / UDP())))
    assert f["nw_frag"] == L.FRAG_ANY | L.FRAG_LATER and f["tp_src"] == 0
    f = L.unpack_key(parse_packet_ref(bytes(e / IP() / ICMP(type=8, code=0))))
    assert (f["tp_src"], f["tp_dst"]) == (8, 0)
    f = L.unpack_key(parse_packet_ref(bytes(e / IPv6(src="::1", dst="fe80::2") / IPv6ExtHdrFragment(m=1)
                                            / ICMPv6EchoRequest())))
    assert f["nw_proto"] == 58 and f["nw_frag"] == L.FRAG_ANY and f["tp_src"] == 128
    assert f["ipv6_src_lo"] == 1 and f["ipv6_dst_hi"] == 0xFE80 << 48
    f = L.unpack_key(parse_packet_ref(bytes(e / ARP(op=2, psrc="1.2.3.4", hwsrc="00:00:00:00:00:05"))))
    assert f["dl_type"] == 0x0806 and f["nw_proto"] == 2 and f["nw_src"] == 0x01020304 and f["arp_sha"] == 5
    for frame in [bytes(e / IP() / TCP()), bytes(e / IPv6() / UDP(sport=5)), b"\x01" * 13]:
        got, used = _kernel_key(frame, 7, 0)
        assert L.unpack_key(got) == L.unpack_key(parse_packet_ref(used, 7))


def test_nd_target_of_neighbour_solicitation_and_advertisement():
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, IPv6
    from scapy.layers.l2 import Ether

    import numpy as _np

    from pyvswitch.datapath import layout as _L
    from pyvswitch.datapath.kernels.parse import parse_frame as _pf
    from pyvswitch.datapath.kernels.parse import parse_packet_ref as _ref
    for icmp, want in ((ICMPv6ND_NS(tgt="fe80::1"), 0xFE80 << 112 | 1),
                       (ICMPv6ND_NA(tgt="2001:db8::5"), 0x20010DB8 << 96 | 5),
                       (ICMPv6EchoRequest(), 0)):
        fr = bytes(Ether() / IPv6(src="fe80::2", dst="ff02::1") / icmp)
        b = _np.frombuffer(fr, _np.uint8).copy()
        key = _np.zeros(_L.KEY_WORDS, _np.uint64)
        _pf(b, 0, len(fr), 3, key)
        got = (_L.get_field(key, "nd_target_hi") << 64) | _L.get_field(key, "nd_target_lo")
        assert got == want and list(key) == list(_ref(fr, 3))
