"""netdev on the loopback device (read-only), tap/internal option handling, and
the tap kernels driven over a SOCK_SEQPACKET pair (frame-preserving, like a tun fd)."""

import errno
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from pyvswitch.ports import internal, netdev, tap
from pyvswitch.ports import io as pio
from pyvswitch.ports.base import PortError, port_class


def test_netdev_loopback():
    assert netdev.ifindex("lo") == 1 and netdev.exists("lo")
    assert netdev.get_mtu("lo") >= 1500
    assert netdev.is_up("lo") and netdev.carrier("lo")
    assert netdev.get_mac("lo") == bytes(6)


@pytest.mark.parametrize("name,code", [("pvpnosuch0", errno.ENODEV), ("x" * 16, errno.EINVAL),
                                       ("a/b", errno.EINVAL), ("", errno.EINVAL)])
def test_netdev_errors(name, code):
    with pytest.raises(netdev.NetdevError) as e:
        netdev.get_mtu(name)
    assert e.value.errno == code and str(e.value) == f"{name}: {os.strerror(code)}"
    assert not netdev.exists(name)


def test_mac_text():
    assert netdev.parse_mac("02:0a:b:00:00:ff") == bytes([2, 10, 11, 0, 0, 255])
    assert netdev.format_mac(bytes([2, 10, 11, 0, 0, 255])) == "02:0a:0b:00:00:ff"
    for bad in ("02:00", "zz:00:00:00:00:00", b"abc"):
        with pytest.raises(ValueError):
            netdev.parse_mac(bad)


def test_tap_types_and_options():
    assert port_class("tap") is tap.TapPort and port_class("internal") is internal.InternalPort
    assert internal.InternalPort.type_name == "internal" and tap.TapPort.type_name == "tap"
    with pytest.raises(PortError, match="unknown option"):
        tap.TapPort("tap0", {"foo": "1"})
    with pytest.raises(PortError):
        internal.InternalPort("br0", {"n_rxq": "2"})
    # internal reuses the tap kernels rather than copying them
    assert internal.rx_burst is tap.rx_burst and internal.tx_one is tap.tx_one
    assert internal.tx_flush is tap.tx_flush


def test_stable_mac():
    m = internal.stable_mac("br0")
    assert m == internal.stable_mac("br0") != internal.stable_mac("br1")
    assert m[0] & 0x02 and not m[0] & 0x01                # local, unicast


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_tap_kernels_over_fd(pair):
    a, b = pair
    row = pio.new_io_row(pio.PT_TAP, fd=a.fileno())
    mem = np.zeros(1, np.uint8)
    pool = np.zeros((8, 2176), np.uint8)
    slots, offs, lens = np.arange(8, dtype=np.int64), np.zeros(8, np.int64), np.zeros(8, np.int64)
    q = pio.new_qstats()
    assert tap.rx_burst(mem, row, pool, slots, offs, lens, 8, q) == 0       # EAGAIN
    frames = [bytes([i]) * (60 + 37 * i) for i in range(5)] + [b"runt"]
    for f in frames:
        b.send(f)
    assert tap.rx_burst(mem, row, pool, slots, offs, lens, 3, q) == 3
    assert tap.rx_burst(mem, row, pool, slots[3:], offs[3:], lens[3:], 5, q) == 2
    for i in range(5):
        assert offs[i] == 128 and bytes(pool[slots[i], 128:128 + lens[i]]) == frames[i]
    assert q[pio.Q_RX_PACKETS] == 5 and q[pio.Q_RX_ERRORS] == 1
    assert q[pio.Q_RX_BYTES] == sum(map(len, frames[:5]))
    assert tap.tx_one(mem, row, pool, 2, 128, int(lens[2]), q) == 1
    assert b.recv(4096) == frames[2]
    assert tap.tx_one(mem, row, pool, 2, 2100, 100, q) == 0                 # past the slot
    tap.tx_flush(mem, row, q)
    assert q[pio.Q_TX_PACKETS] == 1 and q[pio.Q_TX_ERRORS] == 1
    b.close()
    assert tap.tx_one(mem, row, pool, 2, 128, 60, q) == 0                   # peer gone
    assert q[pio.Q_TX_DROPPED] == 1


@pytest.mark.skipif(os.environ.get("PVS_JIT") == "0", reason="already interpreted")
def test_port_kernels_interpreted():
    """The same unit tests with PVS_JIT=0: the kernels as plain Python."""
    here = os.path.dirname(__file__)
    env = dict(os.environ, PVS_JIT="0")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        here, "-k", "not interpreted"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
