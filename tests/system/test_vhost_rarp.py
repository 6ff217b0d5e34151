"""SEND_RARP through the daemon: a guest MAC learned behind one vhost-user
port moves to another when that port's front-end announces it (what QEMU
does on the destination of a live migration); the RARP is flooded to the
other ports like any broadcast the guest would have sent. The front-ends
are our own (pyvswitch.ports.vhost.frontend)."""

import os
import struct
import time

import pytest

from pyvswitch.ports.vhost.frontend import VirtioUser
from pyvswitch.ports.vhost.rarp import rarp_frame

PREFIX = "vr"
pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

MAC = "52:54:00:12:ab:01"


def guest_frame(src, seq):
    return (b"\xff" * 6 + bytes.fromhex(src.replace(":", "")) + struct.pack("!HI", 0x88B5, seq)
            + bytes(46))


def received(fe, want, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(f == want for f in fe.recv()):
            return True
        time.sleep(0.005)
    return False


def test_send_rarp_moves_the_mac(net_factory):
    net = net_factory()
    for name in ("vhu0", "vhu1"):
        net.vsctl("add-port", net.br, name, "--", "set", "Interface", name, "type=dpdkvhostuser",
                  timeout=300)                        # a cold numba cache compiles first
    fes = [VirtioUser(os.path.join(net.rundir, name)) for name in ("vhu0", "vhu1")]
    try:
        for fe in fes:
            fe.start()
        net.wait_for(lambda: all(net.vsctl("get", "Interface", n, "link_state").strip() == "up"
                                 for n in ("vhu0", "vhu1")), 20, 0.1, "vhost links up")
        of = net.ofports()
        # the guest lives behind vhu1 first: NORMAL learns it there
        f = guest_frame(MAC, 1)
        net.wait_for(lambda: fes[1].send([f]) and received(fes[0], f, 1.0), 120, 0.1,
                     "a broadcast from vhu1 flooded to vhu0")
        net.wait_for(lambda: (net.fdb_entry(MAC) or (None,))[0] == of["vhu1"], 10, 0.1,
                     f"{MAC} learned on vhu1")
        # "live migration": the guest's new front-end, on vhu0, announces it
        fes[0].send_rarp(MAC)
        assert received(fes[1], rarp_frame(bytes.fromhex(MAC.replace(":", "")))), \
            "the RARP was not flooded to vhu1"
        net.wait_for(lambda: (net.fdb_entry(MAC) or (None,))[0] == of["vhu0"], 10, 0.1,
                     f"{MAC} moved to vhu0\n{net.appctl('fdb/show', net.br)}")
        net.wait_for(lambda: 'rarp_requests="1"' in net.vsctl("get", "Interface", "vhu0", "status"),
                     10, 0.2, "rarp_requests=1 in the Interface status")
    finally:
        for fe in fes:
            fe.close()
