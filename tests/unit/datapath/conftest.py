import time

import pytest

from pyvswitch.datapath import layout as L
from pyvswitch.datapath.dpif import Dpif
from pyvswitch.ports.dummy import DummyPort

IN_PORT_MASK = L.pack_key({"in_port": 0xFFFF})


def wait_for(fn, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.005)
    return fn()


class Capture:
    """Accumulates a dummy port's transmitted frames across polls."""

    def __init__(self, port):
        self.port, self.frames = port, []

    def wait(self, n, timeout=20.0):
        def got():
            self.frames += self.port.capture()
            return len(self.frames) >= n
        wait_for(got, timeout)
        time.sleep(0.02)
        self.frames += self.port.capture()
        return self.frames


@pytest.fixture
def switch(tmp_path):
    """A Dpif with three dummy ports (dp_ports 1, 2, 3)."""
    dp = Dpif("br-test", str(tmp_path))
    ports = {}
    for name in ("p1", "p2", "p3"):
        p = DummyPort(name)
        p.open()
        ports[dp.add_port(p)] = p
    # the PMD compiles its loop on first start (minutes on a cold cache in CI):
    # tests time their traffic from a running loop
    assert wait_for(lambda: any(s["iterations"] > 0 for s in dp.pmd_stats().values()), timeout=900)
    yield dp, ports
    dp.close()
    for p in ports.values():
        p.close()


def pytest_configure(config):
    # PVS_JIT=0: interpreted uint64 hash arithmetic wraps like the compiled code
    config.addinivalue_line("filterwarnings", "ignore:overflow encountered:RuntimeWarning")
