"""The port's control socket against hostile or sloppy front-ends: malformed
and oversized messages, too many regions, missing or extra fds, bad ring
indices. Each closes that connection only, is counted, and the port accepts
the next connection. Also: replies carry flags 0x5, acks, GET_QUEUE_NUM."""

import os
import socket
import struct
import time

import pytest

from pyvswitch.ports.vhost import protocol as P
from pyvswitch.ports.vhost.driver import DriverMemory
from pyvswitch.ports.vhost.port import VhostUserClientPort, VhostUserPort


def wait_for(fn, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.01)
    return bool(fn())


@pytest.fixture
def port(tmp_path):
    p = VhostUserPort("vhu0", {"vhost-sock-dir": str(tmp_path), "n_rxq": "2"})
    p.open()
    yield p
    p.close()


def connect(port):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(port.path)
    s.settimeout(5)
    assert wait_for(lambda: port.status()["status"] == "connected")
    return s


def ask(s, req, payload=b"", fds=(), flags=P.VERSION):
    P.send_msg(s, req, payload, fds, flags)
    return P.recv_msg(s)


def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return True


def test_replies_and_acks(port):
    s = connect(port)
    r = ask(s, P.GET_FEATURES)
    assert r.flags == P.REPLY_FLAGS and r.req == P.GET_FEATURES
    ask_pf = ask(s, P.GET_PROTOCOL_FEATURES).u64()
    P.send_msg(s, P.SET_PROTOCOL_FEATURES, P.U64.pack(ask_pf))
    assert ask(s, P.GET_QUEUE_NUM).u64() == 2
    r = ask(s, P.SET_STATUS, P.U64.pack(0xB), flags=P.VERSION | P.NEED_REPLY)
    assert r.flags == P.REPLY_FLAGS and r.u64() == 0
    assert ask(s, P.GET_STATUS).u64() == 0xB
    g = DriverMemory(1 << 20)
    r = ask(s, P.SET_MEM_TABLE, P.pack_mem_table([g.region()]), [g.fd], P.VERSION | P.NEED_REPLY)
    assert r.u64() == 0
    r = ask(s, 99, b"", flags=P.VERSION | P.NEED_REPLY)          # unknown request: NACK
    assert r.u64() != 0
    assert port.status()["unknown_requests"] == "1"
    s.close()
    g.close()


@pytest.mark.parametrize("case", ["oversized", "short_payload", "bad_version", "too_many_regions",
                                  "missing_fds", "extra_fds", "bad_ring_index", "truncated"])
def test_bad_message_closes_connection_only(port, case):
    s = connect(port)
    g = DriverMemory(1 << 20)
    counter = {"oversized": "bad_message", "short_payload": "bad_message",
               "bad_version": "bad_message", "too_many_regions": "too_many_regions",
               "missing_fds": "bad_fds", "extra_fds": "bad_fds", "bad_ring_index": "bad_ring_index",
               "truncated": None}[case]
    if case == "oversized":
        s.sendall(P.HDR.pack(P.SET_FEATURES, 1, 1 << 20) + bytes(64))
    elif case == "short_payload":
        P.send_msg(s, P.SET_FEATURES, b"\x01\x02")
    elif case == "bad_version":
        s.sendall(P.HDR.pack(P.GET_FEATURES, 2, 0))
    elif case == "too_many_regions":
        regs = [(i << 30, 4096, i << 30, 0) for i in range(9)]
        P.send_msg(s, P.SET_MEM_TABLE, P.pack_mem_table(regs), [g.fd] * 8)
    elif case == "missing_fds":
        P.send_msg(s, P.SET_MEM_TABLE, P.pack_mem_table([g.region(), g.region()]), [g.fd])
    elif case == "extra_fds":
        P.send_msg(s, P.SET_VRING_CALL, P.U64.pack(0 | P.VRING_NOFD), [g.fd])
    elif case == "bad_ring_index":
        P.send_msg(s, P.SET_VRING_NUM, P.STATE.pack(200, 256))
    elif case == "truncated":
        s.sendall(P.HDR.pack(P.SET_FEATURES, 1, 8) + b"\x01")
        s.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: closed(s))
    assert wait_for(lambda: port.status()["status"] == "disconnected")
    if counter:
        assert int(port.status()[counter]) >= 1, port.status()
    s.close()
    s2 = connect(port)                                       # port still serves
    assert ask(s2, P.GET_FEATURES).req == P.GET_FEATURES
    s2.close()
    g.close()


def test_region_file_too_short_refused(port):
    s = connect(port)
    g = DriverMemory(1 << 20)
    gpa, size, uva, off = g.region()
    r = ask(s, P.SET_MEM_TABLE, P.pack_mem_table([(gpa, size * 4, uva, off)]), [g.fd],
            P.VERSION | P.NEED_REPLY)
    assert r.u64() != 0                          # mapping past EOF would SIGBUS: refused
    assert port.status()["bad_mem_table"] == "1"
    s.close()
    g.close()


def test_overlapping_regions_refused(port):
    s = connect(port)
    g = DriverMemory(1 << 20)
    r = ask(s, P.SET_MEM_TABLE, P.pack_mem_table([g.region(), g.region()]), [g.fd, g.fd],
            P.VERSION | P.NEED_REPLY)
    assert r.u64() != 0
    s.close()
    g.close()


def test_second_peer_rejected(port):
    s = connect(port)
    s2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s2.connect(port.path)
    s2.settimeout(5)
    assert wait_for(lambda: closed(s2))
    assert port.status()["rejected_connections"] == "1"
    assert ask(s, P.GET_FEATURES).req == P.GET_FEATURES
    s.close()
    s2.close()


def test_client_port_reconnects(tmp_path):
    path = str(tmp_path / "srv")
    p = VhostUserClientPort("vhc0", {"vhost-server-path": path})
    p.open()
    try:
        time.sleep(0.3)
        assert p.status()["status"] == "disconnected"
        for _ in range(2):                       # the front-end (server) restarts
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(path)
            srv.listen(1)
            srv.settimeout(5)
            c, _ = srv.accept()
            c.settimeout(5)
            assert ask(c, P.GET_FEATURES).req == P.GET_FEATURES
            srv.close()                          # stop listening before hanging up: the port
            os.unlink(path)                      # retries at once and would find the old
            c.close()                            # listener still there (a third connection)
            assert wait_for(lambda: p.status()["status"] == "disconnected")
        assert int(p.status()["connections"]) == 2
    finally:
        p.close()


def test_options_checked():
    from pyvswitch.ports.base import PortError
    with pytest.raises(PortError):
        VhostUserPort("x", {"bogus": "1"})
    with pytest.raises(PortError):
        VhostUserPort("x", {"n_rxq": "99"})
    with pytest.raises(PortError):
        VhostUserClientPort("x", {})
    assert struct.calcsize("<IIQQQQ") == 40
