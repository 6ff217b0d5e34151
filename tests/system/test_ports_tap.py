"""tap and internal ports on real tap devices, created inside a namespace this
test makes (the test thread enters it), so no traffic touches the host. The
kernel side of the tap is a raw socket bound to it: a frame it sends comes out
of our rx_burst, a frame tx_one writes is received by it.
"""

import contextlib
import ctypes
import os
import select
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from pyvswitch.ports import internal, netdev, tap
from pyvswitch.ports import io as pio
from pyvswitch.ports.base import PortError, port_class
from pyvswitch.tools.lab import Lab, sh

pytestmark = pytest.mark.system

TEST_ET = b"\x88\xb5"
PACKET_OUTGOING = 4
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def ns():
    """Run the test with this thread inside a fresh namespace."""
    lab = Lab(prefix="pvp")
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        name = lab.netns(f"t{os.getpid() % 100000}")
        there = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            assert _libc.setns(there, 0x40000000) == 0
            yield name
        finally:
            os.close(there)
            assert _libc.setns(here, 0x40000000) == 0
    finally:
        os.close(here)
        lab.close()


def mkframe(i, size=60):
    hdr = bytes.fromhex("020000000002020000000001") + TEST_ET + i.to_bytes(4, "big")
    return hdr + bytes((i + k) & 0xFF for k in range(size - len(hdr)))


class Rig:
    def __init__(self, port):
        self.port = port
        self.rx = port.rx_io(0)
        self.tx = port.tx_io(0)
        self.pool = np.zeros((64, 2176), np.uint8)
        self.slots = np.arange(32, dtype=np.int64)
        self.offs = np.zeros(32, np.int64)
        self.lens = np.zeros(32, np.int64)
        self.q = pio.new_qstats()
        self.raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.raw.bind((port.name, 3))

    def drain(self, want, timeout=2.0):
        out, deadline = [], time.time() + timeout
        while len(out) < want and time.time() < deadline:
            n = tap.rx_burst(self.rx[1], self.rx[0], self.pool, self.slots, self.offs,
                             self.lens, 32, self.q)
            for i in range(n):
                f = bytes(self.pool[self.slots[i], self.offs[i]:self.offs[i] + self.lens[i]])
                if f[12:14] == TEST_ET:
                    out.append(f)
            if n == 0:
                time.sleep(0.001)
        return out

    def send(self, frames):
        sent = 0
        for f in frames:
            self.pool[1, 128:128 + len(f)] = np.frombuffer(f, np.uint8)
            sent += tap.tx_one(self.tx[1], self.tx[0], self.pool, 1, 128, len(f), self.q)
        tap.tx_flush(self.tx[1], self.tx[0], self.q)
        return sent

    def capture(self, want, timeout=2.0):
        out, deadline = [], time.time() + timeout
        while len(out) < want:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.raw], [], [], left)[0]:
                break
            data, addr = self.raw.recvfrom(65536)
            if addr[2] != PACKET_OUTGOING and data[12:14] == TEST_ET:
                out.append(data)
        return out

    def close(self):
        self.raw.close()


@contextlib.contextmanager
def opened(type_, name):
    port = port_class(type_)(name)
    port.open()
    try:
        yield port
    finally:
        port.close()


def both_ways(port):
    rig = Rig(port)
    try:
        frames = [mkframe(i, 60 + 50 * i) for i in range(20)] + [mkframe(77, 1514)]
        for f in frames:
            rig.raw.send(f)                      # the kernel transmits on the tap
        assert rig.drain(len(frames)) == frames
        assert rig.send(frames) == len(frames)   # the kernel receives on the tap
        assert rig.capture(len(frames)) == frames
        assert rig.q[pio.Q_TX_PACKETS] == len(frames) == rig.q[pio.Q_RX_PACKETS]
    finally:
        rig.close()


def test_tap_created_up_and_deleted(ns):
    name = f"pvpt{os.getpid() % 100000}"
    with opened("tap", name) as port:
        assert port.created and netdev.is_up(name) and port.link_up()
        assert port.mtu == 1500 and len(port.mac) == 6 and port.poll_fds() == [port.fd]
        both_ways(port)
    assert not netdev.exists(name)


def test_tap_attaches_to_existing(ns):
    name = f"pvpu{os.getpid() % 100000}"
    sh("ip", "tuntap", "add", "dev", name, "mode", "tap", ns=ns)
    try:
        with opened("tap", name) as port:
            assert not port.created
            both_ways(port)
        assert netdev.exists(name)               # not ours: left in place
    finally:
        sh("ip", "link", "del", name, ns=ns, check=False)


def test_tap_errors(ns):
    with pytest.raises(PortError) as e:
        tap.TapPort("pvp/bad").open()
    assert str(e.value) == "could not open network device pvp/bad (Invalid argument)"
    with pytest.raises(PortError, match="could not open network device lo"):
        tap.TapPort("lo").open()                 # exists and is not a tap


def test_tap_mtu(ns):
    name = f"pvpm{os.getpid() % 100000}"
    port = tap.TapPort(name)
    port.set_mtu(2000)
    port.open()
    try:
        assert port.mtu == 2000 == netdev.get_mtu(name)
        port.set_mtu(1400)
        assert netdev.get_mtu(name) == 1400 and port.rx_io(0)[0][pio.IO_MTU] == 1400
    finally:
        port.close()


def test_internal_port(ns):
    name = f"pvpbr{os.getpid() % 100000}"       # a LOCAL port: named after its bridge
    with opened("internal", name) as port:
        assert port.mac == internal.stable_mac(name) == netdev.get_mac(name)
        assert not netdev.is_up(name) and not port.link_up()     # admin state is the user's
        assert port.rx_io(0)[0][pio.IO_TYPE] == pio.PT_TAP
        netdev.set_up(name)
        assert port.link_up()
        both_ways(port)
        netdev.set_up(name, False)
        assert not port.link_up()
        rig = Rig(port)
        try:
            assert rig.send([mkframe(1)]) == 0 and rig.q[pio.Q_TX_DROPPED] == 1   # down: dropped
        finally:
            rig.close()
        port.set_mac("02:11:22:33:44:55")
        assert netdev.get_mac(name) == bytes.fromhex("021122334455")
    assert not netdev.exists(name)
    with opened("internal", name) as port:       # the MAC survives a restart
        assert port.mac == internal.stable_mac(name)


@pytest.mark.skipif(os.environ.get("PVS_JIT") == "0", reason="already interpreted")
def test_interpreted():
    """The tests above again with PVS_JIT=0 (the kernels as plain Python)."""
    env = dict(os.environ, PVS_JIT="0")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        __file__, "-k", "not interpreted"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
