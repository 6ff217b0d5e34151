"""afpacket port on a real veth pair: the root end is the port, the peer sits
in a namespace this test creates, where a raw socket injects and captures.

The kernels are driven directly (no PMD): rx_burst/tx_one/tx_flush on the
rows from rx_io(0)/tx_io(0), compiled, and once more with PVS_JIT=0 in a
subprocess (test_interpreted).
"""

import contextlib
import ctypes
import os
import select
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from pyvswitch.ports import afpacket as afp
from pyvswitch.ports import io as pio
from pyvswitch.ports.base import PortError, port_class
from pyvswitch.tools.lab import Lab, sh

pytestmark = pytest.mark.system

TEST_ET = 0x88B5                     # IEEE local experimental: the stack ignores it
ETH_P_ALL = 3
SOL_PACKET, PACKET_AUXDATA = 263, 8
PACKET_OUTGOING = 4
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(ns):
    """Run the block with this thread inside network namespace `ns`."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(there, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            assert _libc.setns(here, 0x40000000) == 0
    finally:
        os.close(here)
        os.close(there)


class Wire:
    """A raw socket on one interface: inject frames, capture incoming ones
    (VLAN tags re-inserted from PACKET_AUXDATA, outgoing frames skipped)."""

    def __init__(self, ifname, ns=None):
        with in_netns(ns) if ns else contextlib.nullcontext():
            self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.bind((ifname, ETH_P_ALL))

    def send(self, frame):
        self.s.send(frame)

    def recv(self, count, timeout=2.0, match=None):
        """Up to `count` (frame, tp_status) pairs accepted by match(frame)."""
        out, deadline = [], time.time() + timeout
        while len(out) < count:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                break
            data, anc, _, addr = self.s.recvmsg(65536, 256)
            if addr[2] == PACKET_OUTGOING:
                continue
            st = 0
            for level, kind, val in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    st, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", val[:20])
                    if st & afp.TP_STATUS_VLAN_VALID:
                        tpid = tpid if st & afp.TP_STATUS_VLAN_TPID_VALID else 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            if match is None or match(data):
                out.append((data, st))
        return out

    def close(self):
        self.s.close()


def ethertype(f):
    p, et = 14, struct.unpack_from("!H", f, 12)[0]
    while et in (0x8100, 0x88A8) and len(f) >= p + 4:
        et, p = struct.unpack_from("!H", f, p + 2)[0], p + 4
    return et


def is_test(f):
    return len(f) >= 14 and ethertype(f) == TEST_ET


def mkframe(i, size=60, tags=()):
    hdr = bytes.fromhex("020000000002020000000001")
    for tpid, tci in tags:
        hdr += struct.pack("!HH", tpid, tci)
    hdr += struct.pack("!HI", TEST_ET, i)
    return hdr + bytes((i * 7 + k) & 0xFF for k in range(size - len(hdr)))


class Rig:
    """One open port with its rows, a pool and burst arrays."""

    def __init__(self, port, slot_size=2176, n_slots=64):
        self.port = port
        self.rx = port.rx_io(0)
        self.tx = port.tx_io(0)
        self.pool = np.zeros((n_slots, slot_size), np.uint8)
        self.slots = np.arange(32, dtype=np.int64)
        self.offs = np.zeros(32, np.int64)
        self.lens = np.zeros(32, np.int64)
        self.rxq = pio.new_qstats()
        self.txq = pio.new_qstats()

    def drain(self, want, timeout=2.0, rx=None):
        rx = rx or self.rx
        out, deadline = [], time.time() + timeout
        while len(out) < want and time.time() < deadline:
            n = afp.rx_burst(rx[1], rx[0], self.pool, self.slots, self.offs, self.lens, 32, self.rxq)
            for i in range(n):
                f = bytes(self.pool[self.slots[i], self.offs[i]:self.offs[i] + self.lens[i]])
                if is_test(f):
                    out.append(f)
            if n == 0:
                time.sleep(0.001)
        return out

    def send(self, frames, flush=True):
        sent = 0
        for f in frames:
            self.pool[0, 128:128 + len(f)] = np.frombuffer(f, np.uint8)
            sent += afp.tx_one(self.tx[1], self.tx[0], self.pool, 0, 128, len(f), self.txq)
        if flush:
            afp.tx_flush(self.tx[1], self.tx[0], self.txq)
        return sent


@pytest.fixture
def veth():
    """(root_name, ns, peer_name, lab): a veth pair, peer in a fresh namespace."""
    tag = str(os.getpid() % 100000)
    lab = Lab(prefix="pvp")
    try:
        ns = lab.netns(tag)
        root, peer = f"pvpa{tag}", f"pvpb{tag}"
        lab.veth_to_ns(root, ns, ns_name=peer)
        yield root, ns, peer, lab
    finally:
        lab.close()


@contextlib.contextmanager
def opened(name, options=None, mtu=None):
    port = port_class("afpacket")(name, options)
    if mtu:
        port.set_mtu(mtu)
    port.open()
    try:
        yield port
    finally:
        port.close()


def test_missing_device():
    p = port_class("system")("pvpnosuch9")
    with pytest.raises(PortError) as e:
        p.open()
    assert str(e.value) == "could not open network device pvpnosuch9 (No such device)"
    p.close()


def test_open_reports_state(veth):
    root, ns, peer, _ = veth
    sh("ip", "link", "set", root, "down")
    with opened(root) as port:
        assert port.mtu == 1500 and len(port.mac) == 6 and port.link_up()
        assert port.poll_fds() == [port._rx[0].sock.fileno()]
        flags = sh("ip", "-o", "link", "show", root).stdout
        assert ",UP" in flags and "PROMISC" not in flags   # membership, not the flag
        st = port.status()
        assert st["frame_size"] == "2048" and st["rx_ring_frames"] == "1024"


def test_rx_byte_exact(veth):
    root, ns, peer, _ = veth
    with opened(root) as port:
        rig, w = Rig(port), Wire(peer, ns)
        try:
            frames = [mkframe(i, 60 + (i * 97) % 1455) for i in range(50)] + [mkframe(99, 1514)]
            for f in frames:
                w.send(f)
            assert rig.drain(len(frames)) == frames
            assert rig.rxq[pio.Q_RX_ERRORS] == 0 and rig.rxq[pio.Q_RX_DROPPED] == 0
        finally:
            w.close()


def test_tx_arrives_and_is_not_received_back(veth):
    root, ns, peer, _ = veth
    with opened(root) as port:
        rig, w = Rig(port), Wire(peer, ns)
        try:
            frames = [mkframe(i, 60 + i * 29) for i in range(40)]
            assert rig.send(frames) == 40
            got = [f for f, _ in w.recv(40, match=is_test)]
            assert got == frames
            assert rig.drain(1, timeout=0.3) == []           # our own frames never come back
            assert rig.txq[pio.Q_TX_PACKETS] == 40 and rig.tx[0][pio.IO_TX_PENDING] == 0
        finally:
            w.close()


@pytest.mark.parametrize("tags", [((0x8100, 0x2064),), ((0x88A8, 100), (0x8100, 200))])
def test_vlan_tag_kept(veth, tags):
    root, ns, peer, _ = veth
    with opened(root) as port:
        rig, w = Rig(port), Wire(peer, ns)
        try:
            frames = [mkframe(i, 64 + i, tags) for i in range(5)]
            for f in frames:
                w.send(f)
            assert rig.drain(5) == frames                    # tag re-inserted from tp_vlan_*
            assert rig.send(frames) == 5                     # and sent as is
            assert [f for f, _ in w.recv(5, match=is_test)] == frames
        finally:
            w.close()


def test_rx_ring_wraps(veth):
    root, ns, peer, _ = veth
    with opened(root, {"n_rxq_desc": "64"}) as port:
        rig, w = Rig(port), Wire(peer, ns)
        assert rig.rx[0][pio.IO_RX_NFRAMES] == 64
        try:
            got = []
            for batch in range(20):                          # 640 frames through 64 slots
                frames = [mkframe(batch * 32 + i, 100) for i in range(32)]
                for f in frames:
                    w.send(f)
                got += rig.drain(32)
            assert got == [mkframe(i, 100) for i in range(640)]
            assert port.kernel_drops() == 0
        finally:
            w.close()


def test_tx_ring_full_counts_drops(veth):
    root, ns, peer, _ = veth
    with opened(root, {"n_txq_desc": "64"}) as port:
        rig, w = Rig(port), Wire(peer, ns)
        try:
            frames = [mkframe(i, 80) for i in range(65)]
            assert rig.send(frames, flush=False) == 64       # no kick: the ring fills up
            assert rig.txq[pio.Q_TX_DROPPED] == 1 and rig.txq[pio.Q_TX_PACKETS] == 64
            afp.tx_flush(rig.tx[1], rig.tx[0], rig.txq)
            assert [f for f, _ in w.recv(64, match=is_test)] == frames[:64]
            time.sleep(0.05)
            assert rig.send(frames[64:]) == 1                # frames were reclaimed
            assert [f for f, _ in w.recv(1, match=is_test)] == frames[64:]
        finally:
            w.close()


def test_two_rxqs_share_traffic(veth):
    root, ns, peer, _ = veth
    from scapy.all import IP, UDP, Ether
    with opened(root, {"n_rxq": "2"}) as port:
        rig, w = Rig(port), Wire(peer, ns)
        try:
            frames = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                            / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=1000 + i, dport=99))
                      for i in range(64)]
            for f in frames:
                w.send(f)
            got = {}
            deadline = time.time() + 2
            while sum(len(v) for v in got.values()) < 64 and time.time() < deadline:
                for q in range(2):
                    row, mem = port.rx_io(q)
                    n = afp.rx_burst(mem, row, rig.pool, rig.slots, rig.offs, rig.lens, 32, rig.rxq)
                    got.setdefault(q, []).extend(
                        bytes(rig.pool[rig.slots[i], 128:128 + rig.lens[i]]) for i in range(n))
            mine = {q: [f for f in v if f in frames] for q, v in got.items()}
            assert sorted(mine[0] + mine[1]) == sorted(frames)
            assert mine[0] and mine[1]
            assert len(port.poll_fds()) == 2
        finally:
            w.close()


def test_jumbo_mtu_9000(veth):
    root, ns, peer, _ = veth
    sh("ip", "link", "set", peer, "mtu", "9000", ns=ns)
    with opened(root, {"n_rxq_desc": "64", "n_txq_desc": "64"}, mtu=9000) as port:
        assert port.mtu == 9000 and port.status()["frame_size"] == "16384"
        rig, w = Rig(port, slot_size=128 + 9088, n_slots=8), Wire(peer, ns)
        try:
            big = [mkframe(i, 9014) for i in range(3)] + [mkframe(9, 9018, ((0x8100, 7),))]
            for f in big:
                w.send(f)
            assert rig.drain(4) == big
            assert rig.send(big) == 4
            assert [f for f, _ in w.recv(4, match=is_test)] == big
            assert rig.send([mkframe(5, 9015)]) == 0 and rig.txq[pio.Q_TX_MTU_DROPS] == 1
        finally:
            w.close()


def test_checksum_offload_from_namespace(veth):
    """A UDP datagram and a TCP SYN sent by the namespace's stack with tx
    checksum offload on arrive with TP_STATUS_CSUMNOTREADY; rx_burst completes
    the checksums."""
    from scapy.all import TCP, UDP, Ether
    tag = str(os.getpid() % 100000)
    root, ns, peer, lab = veth
    root2, peer2 = f"pvpc{tag}", f"pvpd{tag}"
    lab.veth_to_ns(root2, ns, ns_name=peer2, ip="10.199.0.1/24", offloads=True)
    sh("ip", "neigh", "replace", "10.199.0.2", "lladdr", "02:00:00:00:00:02", "dev", peer2, ns=ns)
    with opened(root2) as port:
        rig, spy = Rig(port), Wire(root2)
        try:
            with in_netns(ns):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with u, t:
                u.sendto(b"checksum me" * 20, ("10.199.0.2", 9999))
                t.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    t.connect(("10.199.0.2", 80))
                ipv4 = lambda f: ethertype(f) == 0x0800                      # noqa: E731
                raw = spy.recv(2, match=ipv4)
                assert raw and all(st & afp.TP_STATUS_CSUMNOTREADY for _, st in raw)
                got = []
                deadline = time.time() + 2
                while len(got) < 2 and time.time() < deadline:
                    n = afp.rx_burst(rig.rx[1], rig.rx[0], rig.pool, rig.slots, rig.offs,
                                     rig.lens, 32, rig.rxq)
                    got += [bytes(rig.pool[rig.slots[i], 128:128 + rig.lens[i]]) for i in range(n)]
            for layer in (UDP, TCP):
                pkt = next(Ether(f) for f in got if layer in Ether(f))
                sent = pkt[layer].chksum
                del pkt[layer].chksum
                assert Ether(bytes(pkt))[layer].chksum == sent, layer.__name__
        finally:
            spy.close()


@pytest.mark.skipif(os.environ.get("PVS_JIT") == "0", reason="already interpreted")
def test_interpreted():
    """The tests above again with PVS_JIT=0 (the kernels as plain Python)."""
    env = dict(os.environ, PVS_JIT="0")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        __file__, "-k", "not interpreted"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
