"""Shared pytest set-up: system tests need root and network namespaces."""

import os
import shutil
import subprocess

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "numba"))


def _netns_ok():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    return r.returncode == 0


NETNS_OK = _netns_ok()


def pytest_sessionstart(session):
    """Compile the datapath once, before the first test: a cold numba cache
    (CI, or after a datapath change) costs minutes that no test's timing
    window should have to absorb."""
    if os.environ.get("PVS_JIT", "1") == "0" or os.environ.get("PVS_NO_WARM"):
        return
    import sys
    import time

    from pyvswitch.tools.warm import warm_datapath
    t0 = time.monotonic()
    sys.stderr.write("compiling the datapath kernels (cached after the first run) ... ")
    sys.stderr.flush()
    warm_datapath(timeout=3600)
    sys.stderr.write(f"{time.monotonic() - t0:.1f} s\n")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs root and network namespaces")
    for item in items:
        if "system" in item.keywords and not NETNS_OK:
            item.add_marker(skip)


@pytest.fixture
def vhost_loopback():
    """A PMD stand-in for vhost-user port tests: a thread that rx_bursts from
    the port and tx_ones everything straight back. Returns the class; call it
    with an opened port, then .start(); set .stop and .join() when done."""
    import threading
    import time

    import numpy as np

    from pyvswitch.ports import io as pio
    from pyvswitch.ports.vhost import virtq
    from pyvswitch.ports.vhost.layout import CTRL_BYTES

    class Loopback(threading.Thread):
        def __init__(self, port):
            super().__init__(daemon=True)
            self.port, self.stop = port, False
            self.rx, self.mem = port.rx_io(0)
            self.tx, _ = port.tx_io(0)
            self.pool = np.zeros((32, 2176), np.uint8)
            self.q = pio.new_qstats()
            self._warm()

        def _warm(self):
            # compile the kernels now, on scratch copies, so that a cold numba cache
            # (CI, bounds checks on) does not eat into a timed test's traffic window
            mem = np.zeros(CTRL_BYTES, np.uint8)           # the control words only: no rings
            rx, tx = self.rx.copy(), self.tx.copy()
            i = np.zeros(32, np.int64)
            q = pio.new_qstats()
            virtq.rx_burst(mem, rx, self.pool, i, i.copy(), i.copy(), 32, q)
            virtq.tx_one(mem, tx, self.pool, i[0], i[1], i[2], q)
            virtq.tx_flush(mem, tx, q)

        def run(self):
            slots = np.arange(32, dtype=np.int64)
            offs, lens = np.zeros(32, np.int64), np.zeros(32, np.int64)
            while not self.stop:
                with self.port.lock:
                    n = virtq.rx_burst(self.mem, self.rx, self.pool, slots, offs, lens, 32, self.q)
                    for i in range(n):
                        virtq.tx_one(self.mem, self.tx, self.pool, slots[i], offs[i], lens[i], self.q)
                    virtq.tx_flush(self.mem, self.tx, self.q)
                time.sleep(0.0002 if n == 0 else 0)

    return Loopback
