"""SEND_RARP: the device stores the MAC, queue 0's next rx_burst hands the
switch a RARP frame (DPDK's layout) before the guest's own frames; not
without the RARP protocol feature; a pending one goes with the peer."""

import numpy as np
import pytest

from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost import protocol as P
from pyvswitch.ports.vhost.rarp import RARP_LEN, mac_word, put_rarp, rarp_frame

from .conftest import frame

MAC = bytes.fromhex("52540012ab01")


def test_frame_layout():
    f = rarp_frame(MAC)
    assert len(f) == RARP_LEN == 64
    assert f[:6] == b"\xff" * 6 and f[6:12] == MAC and f[12:14] == b"\x80\x35"
    assert f[14:22] == bytes.fromhex("0001080006040003")
    assert f[22:28] == MAC and f[28:32] == bytes(4) and f[32:38] == MAC and f[38:] == bytes(26)
    try:
        from scapy.layers.l2 import ARP, Ether
    except ImportError:
        return
    assert Ether(f).type == 0x8035
    a = ARP(f[14:])                                   # scapy binds ARP to 0x0806 only
    assert a.op == 3 and a.hwsrc == a.hwdst == "52:54:00:12:ab:01" and a.ptype == 0x0800


@pytest.mark.parametrize("mac", [MAC, b"\xff\xfe\x00\x01\x80\x7f"])
def test_kernel_matches_twin(session, mac):
    s = session()
    s.gm.ctl[L.G_RARP_MAC] = mac_word(mac)
    dst = np.full(200, 0xAA, np.uint8)
    assert put_rarp(s.gm.mem, dst, 10) == RARP_LEN
    assert bytes(dst[10:10 + RARP_LEN]) == rarp_frame(mac) and dst[9] == 0xAA and dst[74] == 0xAA


def negotiate_rarp(s):
    s.send(P.SET_PROTOCOL_FEATURES, P.U64.pack((1 << P.PF_REPLY_ACK) | (1 << P.PF_RARP)))


def test_rarp_comes_first_then_the_guest_frames(session):
    s = session()
    negotiate_rarp(s)
    r = s.send(P.SEND_RARP, MAC + b"\0\0", flags=P.VERSION | P.NEED_REPLY)
    assert r == (P.SEND_RARP, P.U64.pack(0)) and s.counters["rarp_requests"] == 1
    assert s.rx_burst() == [rarp_frame(MAC)]          # the guest sent nothing
    assert s.rx_burst() == []                         # once
    s.send(P.SEND_RARP, MAC + b"\0\0")
    s.tx[0].post_tx(frame(60, 1))
    s.tx[0].post_tx(frame(70, 2))
    assert s.rx_burst() == [rarp_frame(MAC), frame(60, 1), frame(70, 2)]
    assert s.qstats[0] == 4                           # counted as received (Q_RX_PACKETS)


def test_not_on_other_queues_nor_before_the_ring_runs(session):
    s = session(max_qp=2)
    negotiate_rarp(s)
    s.send(P.SET_VRING_ENABLE, P.STATE.pack(1, 0))    # queue 0's TX ring stopped
    s.send(P.SEND_RARP, MAC + b"\0\0")
    assert s.rx_burst() == []
    s.rxrow[L.X_VRING] = 3                            # queue 1 never injects
    assert s.rx_burst() == []
    s.rxrow[L.X_VRING] = 1
    s.send(P.SET_VRING_ENABLE, P.STATE.pack(1, 1))
    assert s.rx_burst() == [rarp_frame(MAC)]          # kept until the ring ran


def test_refused_without_the_protocol_feature(session):
    s = session()
    r = s.send(P.SEND_RARP, MAC + b"\0\0", flags=P.VERSION | P.NEED_REPLY)
    assert r == (P.SEND_RARP, P.U64.pack(1))
    assert s.rx_burst() == [] and s.gm.ctl[L.G_RARP] == 0


def test_pending_rarp_goes_with_the_peer(session):
    s = session()
    negotiate_rarp(s)
    s.send(P.SET_VRING_ENABLE, P.STATE.pack(1, 0))
    s.send(P.SEND_RARP, MAC + b"\0\0")
    s.dev.reset()
    assert s.gm.ctl[L.G_RARP] == 0
