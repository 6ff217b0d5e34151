"""afpacket pieces that need no root: options, ring geometry, and the three
kernels run over a fake ring (a numpy array laid out like the kernel's)."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyvswitch.ports import afpacket as afp
from pyvswitch.ports import io as pio
from pyvswitch.ports.base import PortError, port_class

FS = 2048
MAC_OFF = 66


def frame(i, n=60, et=0x88B5):
    body = bytes((i + k) & 0xFF for k in range(n - 14))
    return bytes.fromhex("020000000002020000000001") + struct.pack("!H", et) + body


def fake_rx(nframes=8):
    mem = np.zeros(nframes * FS, np.uint8)
    row = pio.new_io_row(pio.PT_AFPACKET)
    row[pio.IO_RX_NFRAMES], row[pio.IO_RX_FRAME_SIZE], row[pio.IO_MTU] = nframes, FS, 1500
    return mem, row


def put_rx(mem, i, data, status=afp.TP_STATUS_USER, length=None, tci=0, tpid=0, mac=MAC_OFF):
    fo = i * FS
    snap = len(data)
    struct.pack_into("<IIIHH", mem, fo, status, length or snap, snap, mac, mac + 14)
    struct.pack_into("<HH", mem, fo + 24, tci, tpid)
    mem[fo + mac:fo + mac + snap] = np.frombuffer(data, np.uint8)


def status(mem, i, fs=FS):
    return struct.unpack_from("<I", mem, i * fs)[0]


def burst(n=32):
    return (np.arange(n, dtype=np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))


def test_options_defaults_and_errors():
    assert afp.parse_options({}) == {"n_rxq": 1, "n_rxq_desc": 1024, "n_txq_desc": 512}
    assert afp.parse_options({"n_rxq": "4", "n_txq_desc": "64"})["n_rxq"] == 4
    for bad in ({"bogus": "1"}, {"n_rxq": "x"}, {"n_rxq": "0"}, {"n_rxq_desc": "100"},
                {"n_txq_desc": "32"}, {"n_rxq_desc": "32768"}):
        with pytest.raises(PortError):
            afp.AfPacketPort("eth0", bad)


def test_type_names():
    assert port_class("") is afp.AfPacketPort
    assert port_class("system") is afp.AfPacketPort
    assert port_class("afpacket") is afp.AfPacketPort
    assert afp.AfPacketPort.type_name == "afpacket"


@pytest.mark.parametrize("mtu,size", [(68, 2048), (1500, 2048), (1960, 2048), (1961, 4096),
                                      (4000, 4096), (9000, 16384)])
def test_frame_size_for_mtu(mtu, size):
    assert afp.frame_size_for_mtu(mtu) == size
    # the largest frame (MTU + Ethernet + 2 tags) fits after the kernel's tp_mac offset
    assert MAC_OFF + mtu + 22 <= size


def test_ring_req_tiles_blocks():
    assert afp.ring_req(2048, 1024, page=4096) == (4096, 512, 2048, 1024)
    assert afp.ring_req(16384, 64, page=4096) == (16384, 64, 16384, 64)
    block, nb, fs, nf = afp.ring_req(2048, 64, page=65536)
    assert block % fs == 0 and nf == nb * (block // fs) and nf >= 64


def test_rx_copies_and_hands_back():
    mem, row = fake_rx()
    frames = [frame(i, 60 + i * 100) for i in range(5)]
    for i, f in enumerate(frames):
        put_rx(mem, i, f)
    pool = np.zeros((32, 2176), np.uint8)
    slots, offs, lens = burst()
    q = pio.new_qstats()
    n = afp.rx_burst(mem, row, pool, slots, offs, lens, 3, q)
    assert n == 3 and row[pio.IO_RX_HEAD] == 3
    n += afp.rx_burst(mem, row, pool, slots[3:], offs[3:], lens[3:], 32, q)
    assert n == 5
    for i, f in enumerate(frames):
        assert offs[i] == 128 and bytes(pool[slots[i], 128:128 + lens[i]]) == f
        assert status(mem, i) == afp.TP_STATUS_KERNEL
    assert q[pio.Q_RX_PACKETS] == 5 and q[pio.Q_RX_BYTES] == sum(map(len, frames))
    assert afp.rx_burst(mem, row, pool, slots, offs, lens, 32, q) == 0


def test_rx_wraps_around():
    mem, row = fake_rx(4)
    pool = np.zeros((4, 2176), np.uint8)
    slots, offs, lens = burst(4)
    q = pio.new_qstats()
    for k in range(10):
        put_rx(mem, k % 4, frame(k))
        assert afp.rx_burst(mem, row, pool, slots, offs, lens, 4, q) == 1
        assert bytes(pool[0, 128:128 + lens[0]]) == frame(k)
    assert row[pio.IO_RX_HEAD] == 10 % 4


@pytest.mark.parametrize("tpid,status_bits,expect", [
    (0x8100, afp.TP_STATUS_VLAN_TPID_VALID, 0x8100),
    (0x88A8, afp.TP_STATUS_VLAN_TPID_VALID, 0x88A8),
    (0, 0, 0x8100),                       # old kernels: no TPID, assume 802.1Q
])
def test_rx_reinserts_vlan_tag(tpid, status_bits, expect):
    mem, row = fake_rx()
    f = frame(1, 100)
    put_rx(mem, 0, f, afp.TP_STATUS_USER | afp.TP_STATUS_VLAN_VALID | status_bits,
           tci=0x6064, tpid=tpid)
    pool = np.zeros((4, 2176), np.uint8)
    slots, offs, lens = burst(4)
    q = pio.new_qstats()
    assert afp.rx_burst(mem, row, pool, slots, offs, lens, 4, q) == 1
    want = f[:12] + struct.pack("!HH", expect, 0x6064) + f[12:]
    assert bytes(pool[0, 128:128 + lens[0]]) == want and q[pio.Q_RX_BYTES] == 104


def test_rx_counts_truncated_and_oversized():
    mem, row = fake_rx()
    put_rx(mem, 0, frame(0, 1000), length=70000)      # GSO super-frame, truncated
    put_rx(mem, 1, frame(1, 1000), mac=FS - 100)      # corrupt: runs past the frame
    put_rx(mem, 2, frame(2, 1500))                    # does not fit a small slot
    put_rx(mem, 3, frame(3, 200))
    pool = np.zeros((4, 128 + 1024), np.uint8)
    slots, offs, lens = burst(4)
    q = pio.new_qstats()
    assert afp.rx_burst(mem, row, pool, slots, offs, lens, 4, q) == 1
    assert bytes(pool[slots[0], 128:128 + lens[0]]) == frame(3, 200)
    assert q[pio.Q_RX_ERRORS] == 2 and q[pio.Q_RX_DROPPED] == 1 and q[pio.Q_RX_PACKETS] == 1
    assert all(status(mem, i) == afp.TP_STATUS_KERNEL for i in range(4))


def test_rx_resync_head():
    mem, row = fake_rx(8)
    for i in (6, 7, 0, 1):
        put_rx(mem, i, frame(i))
    afp._resync_rx_head(mem, row)
    assert row[pio.IO_RX_HEAD] == 6


def fake_tx(nframes=4):
    mem = np.zeros(nframes * FS, np.uint8)
    row = pio.new_io_row(pio.PT_AFPACKET)           # fd -1: send() fails, nothing leaves
    row[pio.IO_TX_NFRAMES], row[pio.IO_TX_FRAME_SIZE], row[pio.IO_MTU] = nframes, FS, 1500
    return mem, row


def test_tx_fills_ring_then_drops():
    mem, row = fake_tx(4)
    pool = np.zeros((4, 2176), np.uint8)
    f = frame(7, 300)
    pool[1, 128:128 + len(f)] = np.frombuffer(f, np.uint8)
    q = pio.new_qstats()
    for i in range(4):
        assert afp.tx_one(mem, row, pool, 1, 128, len(f), q) == 1
        assert status(mem, i) == afp.TP_STATUS_SEND_REQUEST
        assert struct.unpack_from("<I", mem, i * FS + 4)[0] == len(f)
        assert bytes(mem[i * FS + 32:i * FS + 32 + len(f)]) == f
    assert afp.tx_one(mem, row, pool, 1, 128, len(f), q) == 0
    assert q[pio.Q_TX_PACKETS] == 4 and q[pio.Q_TX_DROPPED] == 1 and row[pio.IO_TX_PENDING] == 4
    afp.tx_flush(mem, row, q)                        # send(-1) fails: stays pending
    assert row[pio.IO_TX_PENDING] == 4
    struct.pack_into("<I", mem, 0, afp.TP_STATUS_AVAILABLE)       # kernel sent frame 0
    struct.pack_into("<I", mem, FS, afp.TP_STATUS_WRONG_FORMAT)   # and refused frame 1
    assert afp.tx_one(mem, row, pool, 1, 128, len(f), q) == 1
    assert afp.tx_one(mem, row, pool, 1, 128, len(f), q) == 1
    assert q[pio.Q_TX_ERRORS] == 1 and row[pio.IO_TX_HEAD] == 2


def test_tx_refuses_bad_lengths():
    mem, row = fake_tx(4)
    pool = np.zeros((4, 2176), np.uint8)
    q = pio.new_qstats()
    assert afp.tx_one(mem, row, pool, 0, 128, 1515, q) == 0       # > MTU + 14
    assert afp.tx_one(mem, row, pool, 0, 128, 10, q) == 0         # runt
    assert afp.tx_one(mem, row, pool, 9, 128, 60, q) == 0         # bad slot
    assert afp.tx_one(mem, row, pool, 0, 2100, 100, q) == 0       # past the slot
    pool[0, 128 + 12:128 + 14] = (0x81, 0x00)                     # tagged: 4 more bytes
    assert afp.tx_one(mem, row, pool, 0, 128, 1518, q) == 1
    assert afp.tx_one(mem, row, pool, 0, 128, 1519, q) == 0       # tagged, 1 byte too long
    assert q[pio.Q_TX_ERRORS] == 3 and q[pio.Q_TX_PACKETS] == 1
    assert q[pio.Q_TX_MTU_DROPS] == 2 and q[pio.Q_TX_DROPPED] == 2


# --- checksum completion ------------------------------------------------------

scapy = pytest.importorskip("scapy.all")


def _build(v6, tcp, payload, vlan):
    from scapy.all import IP, TCP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrHopByHop
    l2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if vlan:
        l2 = l2 / Dot1Q(vlan=5)
    l3 = IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrHopByHop() if v6 else \
        IP(src="10.0.0.1", dst="10.0.0.2")
    l4 = TCP(sport=1234, dport=80, flags="S") if tcp else UDP(sport=53, dport=5353)
    return l2 / l3 / l4 / payload


@settings(max_examples=60, deadline=None)
@given(v6=st.booleans(), tcp=st.booleans(), vlan=st.booleans(),
       payload=st.binary(min_size=0, max_size=300), junk=st.integers(0, 0xFFFF))
def test_checksum_completion_matches_scapy(v6, tcp, vlan, payload, junk):
    pkt = _build(v6, tcp, payload, vlan)
    good = bytes(pkt)                                 # scapy fills in checksums
    layer = scapy.TCP if tcp else scapy.UDP
    l4off = len(good) - len(pkt[layer])
    co = l4off + (16 if tcp else 6)
    buf = np.zeros(2176, np.uint8)
    buf[128:128 + len(good)] = np.frombuffer(good, np.uint8)
    buf[128 + co:128 + co + 2] = (junk >> 8, junk & 0xFF)   # partial/garbage checksum
    assert afp.complete_l4_csum(buf, 128, len(good)) == 1
    assert bytes(buf[128:128 + len(good)]) == good


def test_checksum_completion_leaves_others_alone():
    from scapy.all import ICMP, IP, Ether
    f = bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / ICMP())
    buf = np.frombuffer(f, np.uint8).copy()
    assert afp.complete_l4_csum(buf, 0, len(f)) == 0 and bytes(buf) == f
    assert afp.complete_l4_csum(buf, 0, 10) == 0
    frag = bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8", flags="MF", proto=17) / (b"x" * 40))
    buf = np.frombuffer(frag, np.uint8).copy()
    assert afp.complete_l4_csum(buf, 0, len(frag)) == 0
