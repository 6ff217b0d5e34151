"""Masked header rewrites: checksums right (checked by scapy), the compiled
kernel equal to its twin on well-formed and broken frames."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.sctp import SCTP

from pyvswitch.datapath import actions as A
from pyvswitch.datapath.kernels.execute import execute_ref
from tests.kernels import packets
from tests.kernels.test_execute import Harness

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = IP(src="10.0.0.1", dst="10.0.0.2", ttl=64, tos=0x21)
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=64, tc=0x21, fl=0x12345)
PAY = b"hello-world-123"


def _frames():
    out = []
    for vlan in (False, True):
        eth = ETH / Dot1Q(vlan=5) if vlan else ETH
        out += [eth / V4 / TCP(sport=1000, dport=80) / PAY,
                eth / V4 / UDP(sport=1000, dport=53) / PAY,
                eth / V4 / ICMP() / PAY,
                eth / V6 / TCP(sport=1000, dport=80) / PAY,
                eth / V6 / UDP(sport=1000, dport=53) / PAY,
                eth / V6 / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2) / PAY,
                eth / V6 / ICMPv6EchoRequest() / PAY]
    return [bytes(f) for f in out]


def _canonical(frame):
    """The frame re-encoded by scapy with every checksum recomputed."""
    p = Ether(frame)
    for layer in (IP, TCP, UDP, ICMP, ICMPv6EchoRequest):
        if layer in p and hasattr(p[layer], "chksum"):
            p[layer].chksum = None
    return bytes(p.__class__(bytes(p)))


SETS = [("ipv4_src", 0x0B000001, 0xFFFFFFFF), ("ipv4_dst", 0x0C000000, 0xFF000000),
        ("ipv4_tos", 0x80, 0xFC), ("ipv4_tos", 0x2, 0x3), ("ipv4_ttl", 9, 0xFF),
        ("ipv6_src", 0x20010DB8 << 96 | 0xABCD, (1 << 128) - 1),
        ("ipv6_dst", 0xFE80 << 112, 0xFFFF << 112), ("ipv6_tclass", 0xB8, 0xFC),
        ("ipv6_label", 0xABCDE, 0xFFFFF), ("ipv6_hlimit", 3, 0xFF),
        ("tcp_src", 4242, 0xFFFF), ("tcp_dst", 0x1F00, 0xFF00), ("udp_src", 5353, 0xFFFF),
        ("udp_dst", 99, 0xFFFF), ("eth_src", 0x0A0000000009, (1 << 48) - 1),
        ("eth_dst", 0x010000000000, 0x010000000000)]


@pytest.mark.parametrize("field,value,mask", SETS)
def test_rewrites_with_correct_checksums(field, value, mask):
    for frame in _frames():
        (_, out), = execute_ref([("set", field, value, mask), ("output", 1)], frame)[0]
        assert _canonical(out) == out, (field, Ether(frame).summary())
        p = Ether(out)
        if field.startswith("ipv4") and IP in p:
            got = {"ipv4_src": lambda: int.from_bytes(bytes(p[IP])[12:16], "big"),
                   "ipv4_dst": lambda: int.from_bytes(bytes(p[IP])[16:20], "big"),
                   "ipv4_tos": lambda: p[IP].tos, "ipv4_ttl": lambda: p[IP].ttl}[field]()
            assert got & mask == value
        if field.startswith(("tcp", "udp")):
            l4 = TCP if field.startswith("tcp") else UDP
            if l4 in p:
                got = p[l4].sport if field.endswith("src") else p[l4].dport
                assert got & mask == value
            else:
                assert out == frame          # another protocol: untouched
        if field == "ipv6_label" and IPv6 in p:
            assert p[IPv6].fl == value and p[IPv6].tc == 0x21
        if field == "ipv6_tclass" and IPv6 in p:
            assert p[IPv6].tc == 0xB8 | 1 and p[IPv6].fl == 0x12345
        if field == "eth_dst":
            assert p.dst == "03:00:00:00:00:02"


def test_udp_zero_checksum_stays_zero_and_sctp_ports():
    f = bytearray(bytes(ETH / V4 / UDP(sport=1, dport=2) / PAY))
    f[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
    (_, out), = execute_ref([("set", "ipv4_src", 1, 0xFFFFFFFF), ("output", 1)], bytes(f))[0]
    assert out[14 + 20 + 6:14 + 20 + 8] == b"\0\0"
    assert IP(bytes(Ether(out)[IP])).src == "0.0.0.1"
    sctp = bytes(ETH / V4 / SCTP(sport=5, dport=6) / PAY)
    (_, out), = execute_ref([("set", "sctp_dst", 77, 0xFFFF), ("output", 1)], sctp)[0]
    assert Ether(out)[SCTP].dport == 77


def test_later_fragment_has_no_ports():
    frag = bytes(ETH / IP(src="1.1.1.1", dst="2.2.2.2", frag=10, proto=6) / (b"x" * 30))
    (_, out), = execute_ref([("set", "tcp_dst", 1, 0xFFFF), ("output", 1)], frag)[0]
    assert out == frag


_SET_ACTION = st.sampled_from(SETS).map(lambda s: ("set", *s)) | st.builds(
    lambda f, v, m: ("set", f, v & m & ((1 << A.SET_FIELDS[f][1]) - 1),
                     m & ((1 << A.SET_FIELDS[f][1]) - 1)),
    st.sampled_from(sorted(A.SET_FIELDS)), st.integers(0, (1 << 128) - 1),
    st.integers(0, (1 << 128) - 1))
_ACTION = st.one_of(_SET_ACTION, st.just(("output", 1)), st.just(("pop_vlan",)),
                    st.tuples(st.just("push_vlan"), st.integers(0, 0xEFFF)))
H = None


@settings(max_examples=400, deadline=None)
@given(st.lists(_ACTION, min_size=1, max_size=5),
       st.one_of(packets.frames(), st.sampled_from(_frames())).filter(len))
def test_kernel_equals_twin(acts, frame):
    global H
    H = H or Harness()
    acts = acts + [("output", 2)]
    outs, ups = H.run(acts, frame)
    want, _ = execute_ref(acts, frame)
    assert sorted(outs) == sorted(want)


@given(st.lists(_SET_ACTION, max_size=4))
def test_codec_round_trip(acts):
    assert A.decode_actions(A.encode_actions(acts)) == acts
    assert A.parse_actions(A.format_actions(acts)) == acts


def test_format_like_ovs():
    assert A.format_actions([("set", "ipv4_dst", 0x0A000000, 0xFF000000),
                             ("set", "tcp_src", 80, 0xFFFF)]) == \
        "set(ipv4(dst=10.0.0.0/255.0.0.0)),set(tcp(src=80))"


# --- meters ---------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(st.booleans(), st.integers(1, 2000), st.integers(0, 50),
       st.lists(st.tuples(st.integers(0, 3_000_000), st.integers(60, 1500)), max_size=30))
def test_meter_kernel_equals_twin(pktps, rate, burst, arrivals):
    import numpy as np

    from pyvswitch.core.intrinsics import read_tsc
    from pyvswitch.datapath.kernels import meter as MT
    from pyvswitch.datapath.kernels import state as S
    global H
    H = H or Harness()
    row = np.zeros(MT.METER_COLS, np.int64)
    row[MT.M_RATE], row[MT.M_PKTPS] = rate, int(pktps)
    row[MT.M_CAP] = row[MT.M_TOKENS] = (burst or rate) * 1000
    twin = row.copy()
    now = 1_000_000_000
    H.p.ctl[S.C_CYC_PER_US] = 1 << 50          # the TSC term stays 0
    for gap, size in arrivals:
        now += gap
        H.p.ctl[S.C_NOW_NS], H.p.ctl[S.C_NOW_TSC] = now, read_tsc()
        acts = [("meter", int(row.ctypes.data)), ("output", 1)]
        frame = bytes(size)
        outs, _ = H.run(acts, frame)
        want, _ = execute_ref([("meter", int(twin.ctypes.data)), ("output", 1)], frame, now)
        assert len(outs) == len(want)
    assert list(row) == list(twin)
    assert row[MT.M_PASS_PKTS] + row[MT.M_DROP_PKTS] == len(arrivals)


def test_meter_rate():
    """10 packets/s with a burst of 5: 50 packets in 1 s -> 5 + ~10 pass."""
    import numpy as np

    from pyvswitch.datapath.kernels import meter as MT
    row = np.zeros(MT.METER_COLS, np.int64)
    row[MT.M_RATE], row[MT.M_PKTPS], row[MT.M_CAP] = 10, 1, 5000
    row[MT.M_TOKENS] = 5000
    passed = sum(MT.meter_pass_ref(row, 64, 1 + i * 20_000_000) for i in range(50))
    assert 14 <= passed <= 16
    assert A.format_actions([("meter", 0x1000)]) == "meter(0x1000)"
    assert A.parse_actions("meter(0x1000)") == [("meter", 0x1000)]
