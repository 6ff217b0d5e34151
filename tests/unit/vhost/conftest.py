"""A back-end Device driven by hand-made messages over memfd "guest" rings.

`Session` plays the front-end without a socket: it builds DriverMemory and
Vrings (driver.py), sends the virtio-user message sequence to a Device as
protocol.Msg objects, and calls the virtq kernels with a small pool, the way
a PMD would.
"""

import os

import numpy as np
import pytest

from pyvswitch.core.pool import HEADROOM
from pyvswitch.ports import io as pio
from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost import protocol as P
from pyvswitch.ports.vhost import virtq
from pyvswitch.ports.vhost.device import Device
from pyvswitch.ports.vhost.driver import DriverMemory, Vring
from pyvswitch.ports.vhost.memory import GuestMemory

FEATURES = (1 << L.F_VERSION_1) | (1 << L.F_MRG_RXBUF) | (1 << L.F_PROTOCOL_FEATURES)


def msg(req, payload=b"", fds=(), flags=P.VERSION):
    return P.Msg(req, flags, payload, list(fds))


def frame(n=60, seed=1):
    return bytes((seed + i) & 0xFF for i in range(n))


class Session:
    def __init__(self, qsize=256, features=FEATURES, gpa_base=None, mem_size=8 << 20,
                 buf_size=2048, pool_slot=2048 + HEADROOM, max_qp=1, start=True):
        self.gm = GuestMemory(1 << 30)
        self.gm.reset_ctl()
        self.counters = {}
        self.dev = Device(self.gm, max_qp, _null, self.counters)
        self.g = DriverMemory(mem_size, gpa_base)
        self.features = features
        self.rx = [Vring(self.g, qsize, buf_size) for _ in range(max_qp)]   # guest RX (vring 2q)
        self.tx = [Vring(self.g, qsize, buf_size) for _ in range(max_qp)]   # guest TX (vring 2q+1)
        self.pool = np.zeros((64, pool_slot), np.uint8)
        self.qstats = pio.new_qstats()
        self.rxrow = pio.new_io_row(pio.PT_VHOST)
        self.rxrow[L.X_VRING] = 1
        self.txrow = pio.new_io_row(pio.PT_VHOST)
        self.calls = []
        if start:
            self.start()

    def send(self, req, payload=b"", fds=(), flags=P.VERSION):
        return self.dev.handle(msg(req, payload, [os.dup(f) for f in fds], flags))

    def start(self):
        u64, st = P.U64.pack, P.STATE.pack
        self.send(P.SET_OWNER)
        self.send(P.SET_PROTOCOL_FEATURES, u64((1 << P.PF_REPLY_ACK) | (1 << P.PF_MQ)))
        self.send(P.SET_FEATURES, u64(self.features))
        r = self.send(P.SET_MEM_TABLE, P.pack_mem_table([self.g.region()]), [self.g.fd],
                      P.VERSION | P.NEED_REPLY)
        assert r == (P.SET_MEM_TABLE, u64(0))
        for q in range(len(self.rx)):
            for i, ring in ((2 * q, self.rx[q]), (2 * q + 1, self.tx[q])):
                self.send(P.SET_VRING_NUM, st(i, ring.n))
                self.send(P.SET_VRING_BASE, st(i, 0))
                self.send(P.SET_VRING_ADDR, ring.addr_payload(i))
                self.send(P.SET_VRING_KICK, u64(i | P.VRING_NOFD))
                self.send(P.SET_VRING_ENABLE, st(i, 1))

    def ctl(self, ring, word):
        return int(self.gm.ctl[L.vr(ring) + word])

    def err(self, name):
        return int(self.gm.ctl[L.ERR_BASE + L.ERR_NAMES.index(name)])

    def rx_burst(self, n_max=32):
        """Frames the back-end receives from the guest TX ring."""
        slots = np.arange(n_max, dtype=np.int64)
        offs = np.zeros(n_max, np.int64)
        lens = np.zeros(n_max, np.int64)
        n = virtq.rx_burst(self.gm.mem, self.rxrow, self.pool, slots, offs, lens, n_max, self.qstats)
        return [bytes(self.pool[slots[i], offs[i]:offs[i] + lens[i]]) for i in range(n)]

    def deliver(self, frames):
        """The back-end transmits frames into the guest RX ring; returns 1/0 each."""
        out = []
        for f in frames:
            self.pool[0, HEADROOM:HEADROOM + len(f)] = np.frombuffer(f, np.uint8)
            out.append(virtq.tx_one(self.gm.mem, self.txrow, self.pool, 0, HEADROOM, len(f),
                                    self.qstats))
        virtq.tx_flush(self.gm.mem, self.txrow, self.qstats)
        return out

    def close(self):
        self.dev.reset()
        self.gm.close()
        self.g.close()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.fixture
def session():
    made = []

    def make(**kw):
        s = Session(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()
