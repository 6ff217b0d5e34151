"""The virtio-user front-end against our own port (both socket roles), with a
thread playing the PMD that loops every frame back, and against DPDK's vhost
PMD (dpdk-testpmd net_vhost, io forwarding echoes frames back)."""

import os
import shutil
import signal
import subprocess
import threading
import time
import warnings

import pytest

from pyvswitch.ports.vhost.frontend import VirtioUser
from pyvswitch.ports.vhost.port import VhostUserClientPort, VhostUserPort

from .conftest import frame


class _Quiesce:
    """Port.quiesce for the test: excludes the Loopback thread."""

    def __init__(self, lock):
        self.lock = lock

    def __call__(self):
        return self.lock


def _collect(fe, probe, n, timeout=20):
    """Echoes until n distinct frames came back (late echoes of the probe, if
    one is given, dropped)."""
    got, end = [], time.monotonic() + timeout
    while len(set(got)) < n and time.monotonic() < end:
        got += [f for f in fe.recv() if f != probe]
        time.sleep(0.01)
    return got


def _ring_state(fe):
    return (f"tx avail {fe.tx[0].avail_idx} used {fe.tx[0].used_idx()}, "
            f"rx avail {fe.rx[0].avail_idx} used {fe.rx[0].used_idx()}")


def _echo(fe, frames, timeout=10):
    assert fe.send(frames) == len(frames)
    return _collect(fe, None, len(frames), timeout)


@pytest.mark.parametrize("mode", ["server_port", "client_port"])
def test_frontend_against_our_port(tmp_path, mode, vhost_loopback):
    lock = threading.RLock()
    path = str(tmp_path / "sock")
    if mode == "server_port":
        port = VhostUserPort("vhu0", {"vhost-sock-dir": str(tmp_path)})
        path = port.path
    else:
        port = VhostUserClientPort("vhc0", {"vhost-server-path": path})
    port.quiesce = _Quiesce(lock)
    port.lock = lock
    port.open()
    fe = VirtioUser(path, server=(mode == "client_port"), gpa_base=0x80000000)
    loop = vhost_loopback(port)
    loop.start()
    try:
        fe.start()
        frames = [frame(60 + i, i) for i in range(50)]
        assert _echo(fe, frames) == frames
        assert port.link_up()
        assert fe.stop() == [50, 50]
    finally:
        loop.stop = True
        loop.join(5)
        fe.close()
        port.close()


@pytest.mark.skipif(shutil.which("dpdk-testpmd") is None or os.geteuid() != 0,
                    reason="needs dpdk-testpmd and root")
@pytest.mark.parametrize("dpdk_client", [False, True])
def test_frontend_against_dpdk_vhost_pmd(tmp_path, dpdk_client):
    """DPDK's vhost PMD (io forwarding) echoes what we send. testpmd needs an
    open stdin: with `-a` and no --stats-period it waits for "enter" and quits
    at EOF, which closed the vhost socket right after our first messages (the
    old "reset at GET_FEATURES" xfail)."""
    path = str(tmp_path / "vh.sock")
    log = open(tmp_path / "tp.log", "w")
    fe = VirtioUser(path, server=dpdk_client)
    if dpdk_client:
        fe.listen()
    vdev = f"net_vhost0,iface={path},queues=1" + (",client=1" if dpdk_client else "")
    tp = subprocess.Popen(["dpdk-testpmd", "--lcores", "0@0,1@0", "--no-pci", "--no-huge", "-m", "512",
                           "--no-shconf", "--file-prefix", f"fe{os.getpid()}", "--vdev", vdev,
                           "--", "--forward-mode=io", "-a", "--total-num-mbufs=16384"],
                          stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        if not dpdk_client:                     # testpmd's stdout is block-buffered: wait
            end = time.monotonic() + 30         # for its socket, not for its messages
            while not os.path.exists(path) and time.monotonic() < end:
                time.sleep(0.05)
        fe.start(timeout=30)
        # frames sent before testpmd forwards can be lost (seen with client=1, where it
        # connects during port setup): probe until one comes back
        probe, end, sent = frame(80, 99), time.monotonic() + 30, 0
        while time.monotonic() < end and probe not in _echo(fe, [probe], timeout=0.2):
            sent += 1
        frames = [frame(60 + i, i) for i in range(20)]
        assert fe.send(frames) == 20
        got = _collect(fe, probe, 20)
        # Every frame comes back intact and nothing else does. Twice, under a loaded
        # CI run, testpmd's io forwarding misbehaved in a way 40 loaded runs here did not
        # reproduce: one frame echoed twice, then (client=1) the last 4 of 20 never
        # echoed. An exact duplicate is tolerated, and missing frames are sent once more
        # with the ring indexes recorded (docs/port-vhost-user.md); a frame that is
        # altered, foreign or lost twice fails the test.
        missing = [f for f in frames if f not in got]
        if missing:
            rings = _ring_state(fe)
            warnings.warn(f"testpmd did not echo {len(missing)} of 20 frames ({rings}); resent")
            assert fe.send(missing) == len(missing)
            got += _collect(fe, probe, len(missing))
        assert sorted(set(got)) == sorted(frames), \
            _ring_state(fe) + "\n" + open(tmp_path / "tp.log").read()[-2000:]
    finally:
        fe.close()
        os.kill(tp.pid, signal.SIGKILL)
        tp.wait(10)
