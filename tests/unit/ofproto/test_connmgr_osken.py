"""os-ken as a controller of connmgr (fake datapath): the L2-learning app of
tests/e2e/osken_l2.py connects over tcp:127.0.0.1, installs its table-miss
flow, sends a packet-out, gets packet-ins (ofproto's PacketIn events) and
answers with flow-mods and packet-outs."""

import os
import socket
import subprocess
import sys
import time

import pytest

from pyvswitch.openflow import messages as M
from pyvswitch.openflow.match import Match
from pyvswitch.ofproto import connmgr as C
from tests.unit.ofproto.test_connmgr_clients import Served

pytest.importorskip("os_ken")
APP = os.path.join(os.path.dirname(__file__), "..", "..", "e2e", "osken_l2.py")
BCAST = bytes.fromhex("ffffffffffff020000000001" "0806") + bytes(46)
REPLY = bytes.fromhex("020000000001020000000002" "0806") + bytes(46)


def wait(fn, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def osken(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = open(tmp_path / "osken.txt", "w")
    proc = subprocess.Popen([sys.executable, APP, str(port)], stdout=log, stderr=subprocess.STDOUT)
    text = lambda: (tmp_path / "osken.txt").read_text()   # noqa: E731
    assert wait(lambda: "LISTENING" in text(), 20), text()
    yield port, text
    proc.kill()
    proc.wait()
    log.close()


def test_osken_l2_controller(tmp_path, osken):
    port, text = osken
    srv = Served(tmp_path)
    try:
        srv.mgr.configure([C.ControllerConfig(f"tcp:127.0.0.1:{port}", key="u")])
        assert wait(lambda: srv.view.executed), text()
        assert srv.mgr.status()["u"]["is_connected"]
        assert b"osken-hello" in srv.view.executed[0][0]
        assert srv.view.executed[0][1:] == ([("output", 2)], 0)
        assert "priority=0 actions=CONTROLLER:65535" in srv.view.ofproto.dump_flows()
        # a packet-in as ofproto builds it (data already cut to max_len)
        srv.mgr.packet_in(M.PacketIn(M.NO_BUFFER, 60, 0, 1, BCAST, 0, 0, Match()))
        assert wait(lambda: len(srv.view.executed) == 2), text()
        assert srv.view.executed[1][1:] == ([("output", 2)], 1)         # flooded
        srv.mgr.packet_in(M.PacketIn(M.NO_BUFFER, 60, 0, 2, REPLY, 0, 0, Match()))
        assert wait(lambda: len(srv.view.executed) == 3), text()
        assert srv.view.executed[2][1:] == ([("output", 1)], 2)         # learned
        assert wait(lambda: "priority=1,in_port=2" in srv.view.ofproto.dump_flows())
        assert "PACKET_IN 1 02:00:00:00:00:01 ff:ff:ff:ff:ff:ff 60 0" in text()
    finally:
        srv.close()
