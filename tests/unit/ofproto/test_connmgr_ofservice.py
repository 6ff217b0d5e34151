"""vswitchd/ofservice.py with a real database and a stand-in switch: the
Controller table configures connmgr, status is written back, port-status
follows the bridge's ports, secure bridges start empty."""

import selectors
import socket
import threading
import types

import pytest

from pyvswitch.core.clock import ManualClock
from pyvswitch.db.store import Store
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.vswitchd import ofservice


class FakePort:
    def __init__(self, n):
        self.mac = bytes([2, 0, 0, 0, 0, n])
        self.up = True

    def link_up(self):
        return self.up


class FakeBridge:
    def __init__(self, name):
        self.name = name
        self.ofproto = Ofproto(name)
        self.ifaces = {}

    def add(self, name, ofport):
        self.ifaces[name] = types.SimpleNamespace(name=name, port=FakePort(ofport), ofport=ofport,
                                                  dp_port=ofport, type="dummy")
        self.ofproto.add_port(name, ofport, ofport=ofport)

    def datapath_id(self):
        return "00000000000000aa"


class FakeSwitch:
    def __init__(self, tmp_path):
        self.rundir = str(tmp_path)
        self.sel = selectors.DefaultSelector()
        self.lock = threading.RLock()
        self.clock = ManualClock()
        self.store = Store(str(tmp_path / "conf.db"))
        self.bridges = {}
        self.dpif = types.SimpleNamespace(port_stats=lambda dp: {"rx_packets": dp},
                                          execute=lambda *a: None)
        self.changed = 0
        self.woken = 0

    def flows_changed(self):
        self.changed += 1

    def wake(self):
        self.woken += 1

    def pump(self, svc, rounds=10):
        for _ in range(rounds):
            for key, _ in self.sel.select(0.01):
                key.data(key.fileobj)
            svc.run(self.clock.now())


def add_bridge(store, name, fail_mode=None, controllers=()):
    with store.transaction() as txn:
        cus = [txn.insert("Controller", {"target": t, "inactivity_probe": 1000})
               for t in controllers]
        bu = txn.insert("Bridge", {"name": name, "controller": cus, "fail_mode": fail_mode})
        ru, root = txn.root()
        txn.update("Open_vSwitch", ru, {"bridges": root["bridges"] + (bu,)})
    return cus


@pytest.fixture
def sw(tmp_path):
    s = FakeSwitch(tmp_path)
    yield s
    s.store.close()


def test_controller_status_written_and_secure_starts_empty(sw, tmp_path):
    ls = socket.socket(socket.AF_UNIX)
    path = str(tmp_path / "ctl")
    ls.bind(path)
    ls.listen(1)
    ls.settimeout(0.05)
    [cu] = add_bridge(sw.store, "br0", "secure", ["unix:" + path])
    br = sw.bridges["br0"] = FakeBridge("br0")
    br.add("p1", 1)
    svc = ofservice.OfService(sw)
    svc.reconfigure(sw.store.snapshot())
    assert list(br.ofproto.rules()) == []                    # secure: no NORMAL flow
    assert br.ofproto.on_packet_in == svc.mgrs["br0"].packet_in
    conn = None
    for _ in range(40):
        sw.pump(svc, 1)
        try:
            conn, _ = ls.accept()
            break
        except socket.timeout:
            pass
    assert conn is not None
    conn.sendall(wire.encode(M.Hello((4,)), 4, 1))
    sw.pump(svc)
    row = sw.store.snapshot().tables["Controller"][cu]
    assert row["is_connected"] is True and row["role"] == "other"
    assert row["status"]["state"] == "ACTIVE"
    # a port appears: port-status to the controller
    conn.settimeout(0.5)
    conn.recv(65536)                                          # our hello
    br.add("p2", 2)
    sw.clock.advance(2)
    sw.pump(svc)
    data = conn.recv(65536)
    msgs = [wire.decode(m)[2] for m in wire.split(data)]
    assert any(isinstance(m, M.PortStatus) and m.desc.name == "p2" and m.reason == 0
               for m in msgs)
    conn.close()
    sw.pump(svc)
    assert sw.store.snapshot().tables["Controller"][cu]["is_connected"] is False
    svc.close()
    ls.close()


def test_mgmt_socket_per_bridge_and_destroy(sw, tmp_path):
    add_bridge(sw.store, "br0")
    sw.bridges["br0"] = FakeBridge("br0")
    svc = ofservice.OfService(sw)
    svc.reconfigure(sw.store.snapshot())
    path = ofservice.mgmt_path(sw.rundir, "br0")
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(wire.encode(M.Hello((4,)), 4, 1) + wire.encode(M.FeaturesRequest(), 4, 2))
    sw.pump(svc)
    s.settimeout(1)
    msgs = [wire.decode(m)[2] for m in wire.split(s.recv(65536))]
    assert msgs[-1].datapath_id == 0xAA
    del sw.bridges["br0"]
    svc.reconfigure(sw.store.snapshot())
    assert "br0" not in svc.mgrs
    with pytest.raises(OSError):
        socket.socket(socket.AF_UNIX).connect(path)
