"""VXLAN push/pop kernels against scapy and their twins; clone in execute."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from pyvswitch.core.pool import HEADROOM
from pyvswitch.datapath import actions as A
from pyvswitch.datapath.kernels import state as S
from pyvswitch.datapath.kernels import tunnel as TN
from pyvswitch.datapath.kernels.execute import execute_actions, execute_ref, flush_touched
from pyvswitch.datapath.layout import KEY_WORDS

from .test_execute import Harness

INNER = bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
              / UDP(sport=1, dport=2) / (b"y" * 30))
HDR = TN.vxlan_header(0x0A0000000002, 0x0A0000000001, 0xAC100001, 0xAC100002, 0x1234, tos=0x10, ttl=63)


def push(frame, hdr=HDR, sport=40000):
    b = np.zeros(HEADROOM + 2048, np.uint8)
    b[HEADROOM:HEADROOM + len(frame)] = np.frombuffer(frame, np.uint8)
    h = np.frombuffer(hdr, np.uint8)
    new = TN.tnl_push(b, HEADROOM, len(frame), h, len(hdr), sport)
    return bytes(b[new:HEADROOM + len(frame)]) if new >= 0 else new


def pop(frame, dst_port=4789):
    b = np.zeros(64 + len(frame), np.uint8)
    b[64:] = np.frombuffer(frame, np.uint8)
    out = np.zeros(8, np.int64)
    r = TN.tnl_pop(b, 64, len(frame), dst_port, out)
    if r < 0:
        return r
    return bytes(b[r:r + out[5]]), tuple(int(x) for x in out[:5])


def test_push_matches_scapy():
    got = Ether(push(INNER))
    assert got[IP].src == "172.16.0.1" and got[IP].dst == "172.16.0.2" and got[IP].ttl == 63
    assert got[IP].tos == 0x10 and got[IP].flags == "DF" and got[IP].len == len(INNER) + 36
    chk = got[IP].chksum
    del got[IP].chksum
    assert Ether(bytes(got))[IP].chksum == chk                    # checksum right
    assert got[UDP].sport == 40000 and got[UDP].dport == 4789 and got[UDP].len == len(INNER) + 16
    assert got[UDP].chksum == 0 and got[VXLAN].vni == 0x1234 and got[VXLAN].flags == 0x08
    assert bytes(got[VXLAN].payload) == INNER
    assert push(INNER) == TN.tnl_push_ref(INNER, HDR, 40000)


def test_push_needs_headroom():
    b = np.zeros(200, np.uint8)
    assert TN.tnl_push(b, 49, 60, np.frombuffer(HDR, np.uint8), 50, 1) == -1


def test_pop_reads_scapy_vxlan():
    pkt = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2", tos=4, ttl=9) / UDP(sport=5, dport=4789)
                / VXLAN(vni=77) / INNER)
    inner, meta = pop(pkt)
    assert inner == INNER and meta == (77, 0xC0000201, 0xC0000202, 4, 9)
    assert TN.tnl_pop_ref(pkt, 4789) == (inner, meta)


@pytest.mark.parametrize("pkt,err", [
    (b"\x00" * 20, TN.E_SHORT),
    (bytes(Ether(type=0x86DD) / (b"\x00" * 60)), TN.E_NOT_IP),
    (bytes(Ether() / IP(dst="1.2.3.4", flags="MF") / UDP(dport=4789) / VXLAN() / INNER), TN.E_FRAG),
    (bytes(Ether() / IP() / UDP(dport=4790) / VXLAN() / INNER), TN.E_NOT_UDP),
    (bytes(Ether() / IP(proto=6) / (b"\x00" * 80)), TN.E_NOT_UDP),
    (bytes(Ether() / IP() / UDP(dport=4789, len=12) / VXLAN() / INNER), TN.E_BAD_UDP),
    (bytes(Ether() / IP() / UDP(dport=4789) / VXLAN(flags=0) / INNER), TN.E_NOT_VXLAN),
    (bytes(Ether() / IP(ihl=4) / UDP(dport=4789) / VXLAN() / INNER), TN.E_BAD_IP),
    (bytes(Ether() / IP(len=2000) / UDP(dport=4789) / VXLAN() / INNER), TN.E_BAD_IP),
])
def test_pop_rejects(pkt, err):
    assert pop(pkt) == -err == TN.tnl_pop_ref(pkt, 4789)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=14, max_size=300), st.integers(0, (1 << 24) - 1), st.integers(0, 0xFFFF))
def test_pop_of_push_is_identity(frame, vni, sport):
    hdr = TN.vxlan_header(1, 2, 0x0A000001, 0x0A000002, vni)
    outer = push(frame, hdr, sport)
    inner, meta = pop(outer)
    assert inner == frame and meta[:3] == (vni, 0x0A000001, 0x0A000002)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 0xFFFF))
def test_pop_never_crashes_and_equals_twin(garbage, port):
    assert pop(garbage, port) == TN.tnl_pop_ref(garbage, port)


def test_sport_in_range_and_twin():
    for h in (0, 1, (1 << 64) - 1, 0x123456789ABCDEF0):
        v = TN.udp_sport(np.uint64(h))
        assert TN.SPORT_MIN <= v < TN.SPORT_MAX and v == TN.udp_sport_ref(h)


def test_header_template_validation():
    with pytest.raises(ValueError):
        TN.vxlan_header(1, 2, 3, 4, 1 << 24)
    with pytest.raises(ValueError):
        A.encode_actions([("tnl_push", 1, HDR[:40], 2)])
    with pytest.raises(ValueError):
        A.encode_actions([("clone", [("clone", [])])])


# ------------------------------------------------------------ through execute
H = None


def run(acts, frame, key=None):
    global H
    H = H or Harness()
    p = H.p
    p.ctl[S.C_UPQ_N] = 0
    p.ctl[S.C_RCQ_N] = 0
    p.ctl[S.C_FREE_TOP] = 15
    p.free[:15] = np.arange(1, 16)                # earlier runs leave slots in other orders
    H.pool.buf[0, HEADROOM:HEADROOM + len(frame)] = np.frombuffer(frame, np.uint8)
    prog = A.encode_actions(acts)
    k = np.zeros(KEY_WORDS, np.uint64) if key is None else key
    moved = execute_actions(p, prog, 0, len(prog), 0, HEADROOM, len(frame), k, 5)
    flush_touched(p)
    outs = []
    for dp in (1, 2):
        outs += [(dp, f) for f in H.ports[dp].capture()]
    return moved, outs


def test_clone_tnl_push_keeps_the_original():
    key = np.arange(KEY_WORDS, dtype=np.uint64)
    acts = [("output", 1), ("clone", [("tnl_push", 9, HDR, 2), ("output", 2)]), ("output", 1)]
    moved, outs = run(acts, INNER, key)
    want, _ = execute_ref(acts, INNER, key=key)
    assert moved == 0 and sorted(outs) == sorted(want)
    assert [f for p, f in outs if p == 1] == [INNER, INNER]
    (enc,) = [f for p, f in outs if p == 2]
    assert bytes(Ether(enc)[VXLAN].payload) == INNER
    assert H.p.ctl[S.C_FREE_TOP] == 15                       # the clone's copy came back


def test_clone_last_runs_in_place_and_drop_in_clone_ends_clone():
    moved, outs = run([("clone", [("tnl_push", 9, HDR, 2), ("output", 2)])], INNER)
    assert moved == 0 and len(outs) == 1 and H.p.ctl[S.C_FREE_TOP] == 15
    moved, outs = run([("clone", [("drop",), ("output", 2)]), ("output", 1)], INNER)
    assert outs == [(1, INNER)] and H.p.ctl[S.C_FREE_TOP] == 15


def test_tnl_pop_queues_inner_with_metadata():
    pkt = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5, dport=4789)
                / VXLAN(vni=77) / INNER)
    moved, outs = run([("tnl_pop", 7, 4789)], pkt)
    p = H.p
    assert moved == 1 and outs == [] and p.ctl[S.C_RCQ_N] == 1
    from pyvswitch.datapath import layout as L
    k = p.rcq_key[0]
    assert L.get_field(k, "in_port") == 7 and L.get_field(k, "tun_id") == 77
    assert L.get_field(k, "tun_src") == 0xC0000201 and L.get_field(k, "tun_dst") == 0xC0000202
    m = p.rcq_meta[0]
    assert H.pool.frame(m[S.RC_SLOT], m[S.RC_OFF], m[S.RC_LEN]) == INNER
    before = p.stats[S.S_TNL_POP_ERR]
    moved, outs = run([("tnl_pop", 7, 4790), ("output", 1)], pkt)      # wrong port: dropped
    assert moved == 0 and outs == [] and p.stats[S.S_TNL_POP_ERR] == before + 1


base = st.one_of(
    st.tuples(st.just("output"), st.sampled_from([1, 2])),
    st.tuples(st.just("push_vlan"), st.integers(0, 0xFFFF)),
    st.tuples(st.just("pop_vlan")),
    st.tuples(st.just("set_eth_dst"), st.integers(0, (1 << 48) - 1)),
    st.tuples(st.just("userspace"), st.integers(0, 1000)),
    st.tuples(st.just("drop")),
    st.builds(lambda v: ("set", "ipv4_ttl", v, 0xFF), st.integers(0, 255)),
)
in_clone = st.one_of(base, st.just(("tnl_push", 3, HDR, 2)))
program = st.lists(st.one_of(base, st.builds(lambda a: ("clone", a), st.lists(in_clone, max_size=3))),
                   max_size=5)


@settings(max_examples=300, deadline=None)
@given(program, st.binary(min_size=14, max_size=80), st.lists(st.integers(0, (1 << 64) - 1),
                                                              min_size=KEY_WORDS, max_size=KEY_WORDS))
def test_execute_with_clones_equals_twin(acts, frame, words):
    key = np.array(words, np.uint64)
    moved, outs = run(acts, frame, key)
    free = H.p.ctl[S.C_FREE_TOP]
    ups = [(int(m[S.U_ARG]), H.pool.frame(m[S.U_SLOT], m[S.U_OFF], m[S.U_LEN]))
           for m in H.p.upq_meta[:H.p.ctl[S.C_UPQ_N]]]
    want_outs, want_ups = execute_ref(acts, frame, key=key)
    assert sorted(outs) == sorted(want_outs) and ups == want_ups
    assert free == 15 - len(ups)                     # every clone copy went back
