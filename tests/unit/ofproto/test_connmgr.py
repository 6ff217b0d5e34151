"""connmgr + ofconn + ofrequests against a real Ofproto and a fake datapath.

The switch side runs on a selector in this thread (as in the daemon); the
peers are plain blocking sockets speaking through our own wire codec. Time
is the fake view's clock, advanced by the tests.
"""

import selectors
import socket
import struct
import threading

import pytest

from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.openflow import actions as A
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.openflow.text import parse_flow
from pyvswitch.ofproto import connmgr as C
from pyvswitch.ofproto.ofproto import Ofproto

OF10, OF13 = wire.OFP10, wire.OFP13


class FakeView:
    name, version = "br0", "0.1.0"

    def __init__(self):
        self.ofproto = Ofproto("br0")
        self.ofproto.add_port("p1", 1)
        self.ofproto.add_port("p2", 2)
        self.lock = threading.RLock()
        self.t = 1000.0
        self.executed, self.changed = [], 0

    def now(self):
        return self.t

    def datapath_id(self):
        return 0x1234

    def port_descs(self):
        return [M.PortDesc(p.ofport, 0x020000000000 + p.ofport, p.name)
                for p in sorted(self.ofproto.ports.values(), key=lambda p: p.ofport)]

    def port_stats(self, ofport):
        return {"rx_packets": ofport * 10, "tx_bytes": 7}

    @staticmethod
    def packet_key(packet, dp_port):
        return parse_packet_ref(packet, dp_port)

    def execute(self, packet, actions, dp_in):
        self.executed.append((packet, actions, dp_in))

    def flows_changed(self):
        self.changed += 1


class Peer:
    """A blocking OpenFlow client (ovs-ofctl or a controller, in small)."""

    def __init__(self, sock, sw, version=OF13, hello=True, bitmap=True):
        self.sock, self.sw, self.version = sock, sw, version
        self.framer = wire.Framer()
        self.got = []
        sock.settimeout(0.05)
        if hello:
            self.send(M.Hello((version,) if bitmap else ()), 1)

    def send(self, msg, xid=7):
        self.send_raw(wire.encode(msg, self.version, xid))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, n=1, rounds=50):
        """The next n messages (hellos skipped) as (xid, msg)."""
        out = []
        for _ in range(rounds):
            self.sw.pump()
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                data = None
            if data == b"":
                break
            if data:
                for raw in self.framer.feed(data):
                    v, xid, msg = wire.decode(raw)
                    if not isinstance(msg, M.Hello):
                        out.append((xid, msg))
            if len(out) >= n:
                break
        return out

    def ask(self, msg, xid=7, n=1):
        self.send(msg, xid)
        return self.recv(n)

    def closed(self):
        for _ in range(20):
            self.sw.pump()
            try:
                if self.sock.recv(65536) == b"":
                    return True
            except socket.timeout:
                pass
            except OSError:
                return True
        return False


class Switch:
    def __init__(self, tmp_path):
        self.sel = selectors.DefaultSelector()
        self.view = FakeView()
        self.mgr = C.ConnMgr(self.view, self.sel)
        self.path = str(tmp_path / "br0.mgmt")
        self.mgr.set_mgmt(self.path)
        self.tmp = tmp_path

    def pump(self, rounds=5):
        for _ in range(rounds):
            for key, _ in self.sel.select(0.005):
                key.data(key.fileobj)
            self.mgr.run(self.view.t)

    def connect(self, version=OF13, **kw):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.path)
        return Peer(s, self, version, **kw)


@pytest.fixture
def sw(tmp_path):
    s = Switch(tmp_path)
    yield s
    s.mgr.close()


def test_mgmt_socket_mode_and_negotiation(sw):
    import os
    import stat
    assert stat.S_IMODE(os.stat(sw.path).st_mode) == 0o600
    for version in (OF10, OF13):
        p = sw.connect(version)
        [(xid, reply)] = p.ask(M.FeaturesRequest(), xid=9)
        assert xid == 9 and reply.datapath_id == 0x1234 and reply.n_tables == 254
        if version == OF10:
            assert [q.name for q in reply.ports] == ["p1", "p2"]


def test_hello_without_bitmap_and_incompatible(sw):
    p = sw.connect(OF10, bitmap=False)      # 1.0 header, no bitmap: 1.0
    assert isinstance(p.ask(M.EchoRequest(b"hi"))[0][1], M.EchoReply)
    sw.mgr.configure([], ("OpenFlow13",))
    q = sw.connect(OF10)
    [(_, err)] = q.recv()
    assert isinstance(err, M.Error) and err.name == "OFPHFC_INCOMPATIBLE"
    assert q.closed()


def test_first_message_not_hello(sw):
    p = sw.connect(OF13, hello=False)
    p.send(M.FeaturesRequest())
    [(_, err)] = p.recv()
    assert err.name == "OFPHFC_INCOMPATIBLE" and p.closed()


def test_flow_mod_barrier_dump(sw):
    p = sw.connect(OF13)
    fm = parse_flow("in_port=1,priority=100,actions=output:2")
    p.send(fm, 3)
    [(xid, reply)] = p.ask(M.BarrierRequest(), xid=4)
    assert xid == 4 and isinstance(reply, M.BarrierReply)
    assert sw.view.changed >= 1
    [(_, st)] = p.ask(M.FlowStatsRequest())
    assert [(f.priority, f.actions) for f in st.flows] == [
        (100, (A.Output(2),)), (0, (A.Output(0xFFFA),))]
    [(_, agg)] = p.ask(M.AggregateStatsRequest())
    assert agg.flow_count == 2
    [(_, tables)] = p.ask(M.TableStatsRequest())
    assert tables.tables[0].active_count == 2 and len(tables.tables) == 254
    [(_, ports)] = p.ask(M.PortStatsRequest())
    assert [(s.port_no, s.rx_packets, s.tx_bytes) for s in ports.ports] == [(1, 10, 7), (2, 20, 7)]
    [(_, desc)] = p.ask(M.PortDescRequest())
    assert [d.name for d in desc.ports] == ["p1", "p2"]
    [(_, tf)] = p.ask(M.TableFeaturesRequest())
    assert len(tf.tables) == 254


def test_flow_stats_split_over_several_replies(sw):
    with sw.view.lock:
        for i in range(2000):
            sw.view.ofproto.add_flow(f"priority=5,dl_vlan={i % 4000},tcp,tp_dst={i},"
                                     "actions=output:1,output:2")
    p = sw.connect(OF13)
    p.send(M.FlowStatsRequest())
    replies = p.recv(n=10, rounds=100)
    flows = [f for _, r in replies for f in r.flows]
    assert len(replies) > 1 and [r.flags for _, r in replies][-1] == 0
    assert all(r.flags == 1 for _, r in replies[:-1]) and len(flows) == 2001


def test_errors_keep_connection_and_others(sw):
    p, q = sw.connect(OF13), sw.connect(OF13)
    p.send_raw(struct.pack("!BBHI", 4, 99, 8, 5))                   # unknown type
    [(xid, err)] = p.recv()
    assert err.name == "OFPBRC_BAD_TYPE" and xid == 5
    p.send_raw(struct.pack("!BBHI", 1, 5, 8, 6))                    # wrong version
    assert p.recv()[0][1].name == "OFPBRC_BAD_VERSION"
    bad = parse_flow("actions=drop")
    raw = bytearray(wire.encode(bad, OF13, 8))
    raw[8 + 17] = 9                                                # command 9
    p.send_raw(bytes(raw))
    assert p.recv()[0][1].name == "OFPFMFC_BAD_COMMAND"
    raw = bytearray(wire.encode(parse_flow("actions=drop"), OF13, 8))
    raw[8 + 24:8 + 28] = b"\0\0\0\5"                                # buffer 5
    p.send_raw(bytes(raw))
    assert p.recv()[0][1].name == "OFPBRC_BUFFER_UNKNOWN"
    assert isinstance(p.ask(M.EchoRequest(b"x"))[0][1], M.EchoReply)
    q.send_raw(struct.pack("!BBHI", 4, 2, 4, 1))                   # length < 8
    assert q.recv()[0][1].name == "OFPBRC_BAD_LEN" and q.closed()
    assert isinstance(p.ask(M.EchoRequest(b"y"))[0][1], M.EchoReply)


def test_switch_bug_becomes_eperm(sw, monkeypatch):
    p = sw.connect(OF13)
    monkeypatch.setattr(sw.view, "datapath_id", lambda: 1 / 0)
    assert p.ask(M.FeaturesRequest())[0][1].name == "OFPBRC_EPERM"
    assert isinstance(p.ask(M.EchoRequest())[0][1], M.EchoReply)


def test_roles_and_generations(sw):
    a, b = sw.connect(OF13), sw.connect(OF13)
    [(_, r)] = a.ask(M.RoleRequest("master", 10))
    assert (r.role, r.generation_id) == ("master", 10)
    [(_, r)] = b.ask(M.RoleRequest("master", 11))
    assert r.role == "master"
    [(_, r)] = a.ask(M.RoleRequest("nochange", 0))
    assert r.role == "slave"
    [(_, err)] = a.ask(parse_flow("actions=drop"))
    assert err.name == "OFPBRC_IS_SLAVE"
    [(_, err)] = a.ask(M.RoleRequest("master", 5))
    assert err.name == "OFPRRFC_STALE"
    [(_, r)] = a.ask(M.RoleRequest("equal", 0))
    assert r.role == "equal"


def test_async_config_and_packet_in(sw):
    svc = sw.connect(OF13)                      # service: nothing by default
    [(_, cfg)] = svc.ask(M.GetAsyncRequest())
    assert cfg.packet_in_mask == (0, 0)
    sw.mgr.packet_in({"packet": b"\x01" * 60, "in_port": 1, "reason": "action",
                      "max_len": 20})
    assert svc.recv(rounds=5) == []
    svc.send(M.SetAsync((3, 0), (7, 7), (15, 0)))
    sw.mgr.packet_in({"packet": b"\x01" * 60, "in_port": 1, "reason": "action",
                      "max_len": 20, "table_id": 3, "cookie": 5})
    [(_, pin)] = svc.recv()
    assert (pin.in_port, pin.total_len, len(pin.data), pin.reason, pin.table_id,
            pin.cookie, pin.buffer_id) == (1, 60, 20, 1, 3, 5, M.NO_BUFFER)
    svc10 = sw.connect(OF10)
    svc10.send(M.SetAsync((3, 0), (7, 7), (15, 0)))
    svc10.send(M.SetConfig(0, 128))             # service connections start at 0
    svc10.ask(M.BarrierRequest())
    sw.mgr.packet_in({"packet": b"\x02" * 200, "in_port": 2, "reason": "no_match"})
    [(_, pin)] = svc10.recv()
    assert (pin.in_port, len(pin.data), pin.reason) == (2, 128, 0)   # miss_send_len


def test_packet_out(sw):
    p = sw.connect(OF13)
    frame = bytes.fromhex("ffffffffffff020000000001" "0800") + bytes(46)
    p.send(M.PacketOut(M.NO_BUFFER, 0xFFFD, (A.Output(2),), frame))
    p.ask(M.BarrierRequest())
    assert sw.view.executed == [(frame, [("output", 2)], 0)]
    p.send(M.PacketOut(M.NO_BUFFER, 1, (A.Output(0xFFFB),), frame))     # FLOOD
    p.ask(M.BarrierRequest())
    assert sw.view.executed[-1] == (frame, [("output", 2)], 1)
    [(_, err)] = p.ask(M.PacketOut(M.NO_BUFFER, 9, (A.Output(2),), frame))
    assert err.name == "OFPBRC_BAD_PORT"
    [(_, err)] = p.ask(M.PacketOut(5, 1, (A.Output(2),), b""))
    assert err.name == "OFPBRC_BUFFER_UNKNOWN"


def test_flow_removed_on_delete(sw):
    p = sw.connect(OF13)
    p.send(M.SetAsync((3, 0), (7, 7), (15, 0)))
    p.send(parse_flow("priority=9,in_port=1,send_flow_rem,actions=drop"))
    p.send(parse_flow("in_port=1", "delete"))
    [(_, fr)] = p.recv()
    assert isinstance(fr, M.FlowRemoved) and (fr.priority, fr.reason) == (9, 2)


def test_port_status(sw):
    p = sw.connect(OF13)
    p.send(M.SetAsync((3, 0), (7, 7), (15, 0)))
    p.ask(M.BarrierRequest())
    sw.mgr.port_status("add", M.PortDesc(3, 0, "p3"))
    [(_, ps)] = p.recv()
    assert (ps.reason, ps.desc.name) == (0, "p3")


def _controller(tmp_path):
    path = str(tmp_path / "ctl.sock")
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(path)
    ls.listen(4)
    ls.settimeout(0.05)
    return path, ls


def _accept(sw, ls, rounds=40):
    for _ in range(rounds):
        sw.pump(1)
        try:
            s, _ = ls.accept()
            return Peer(s, sw, OF13)
        except socket.timeout:
            pass
    return None


def test_active_controller_reconnects_and_status(sw, tmp_path):
    path, ls = _controller(tmp_path)
    sw.mgr.configure([C.ControllerConfig("unix:" + path, probe=1.0, key="u1")])
    ctl = _accept(sw, ls)
    assert ctl is not None
    assert isinstance(ctl.ask(M.EchoRequest())[0][1], M.EchoReply)
    assert sw.mgr.status()["u1"]["is_connected"] and sw.mgr.connected
    # packet-in goes to the controller (primary) by default
    sw.mgr.packet_in({"packet": bytes(64), "in_port": 1, "reason": "action", "max_len": 0xFFFF})
    [(_, pin)] = ctl.recv()
    assert len(pin.data) == 64
    ctl.sock.close()
    sw.pump()
    st = sw.mgr.status()["u1"]
    assert not st["is_connected"] and st["status"]["state"] in ("BACKOFF", "CONNECTING")
    sw.view.t += 2.0
    ctl2 = _accept(sw, ls)
    assert ctl2 is not None and isinstance(ctl2.ask(M.EchoRequest())[0][1], M.EchoReply)
    ls.close()


def test_inactivity_probe_disconnects(sw, tmp_path):
    path, ls = _controller(tmp_path)
    sw.mgr.configure([C.ControllerConfig("unix:" + path, probe=1.0, key="u1")])
    ctl = _accept(sw, ls)
    ctl.recv(rounds=3)
    sw.view.t += 1.5
    [(_, echo)] = ctl.recv()
    assert isinstance(echo, M.EchoRequest)           # the probe; we do not answer
    sw.view.t += 1.5
    assert ctl.closed()
    ls.close()


def _fail_open_rule(sw):
    return [r for r in sw.view.ofproto.rules(0) if r.cookie == C.FAIL_OPEN_COOKIE]


def test_fail_open_standalone_and_secure(sw, tmp_path):
    path, ls = _controller(tmp_path)
    sw.mgr.configure([C.ControllerConfig("unix:" + path, probe=1.0, key="u1")])
    ctl = _accept(sw, ls)
    sw.pump()
    assert not _fail_open_rule(sw)
    ctl.sock.close()
    sw.pump()
    sw.view.t += 3.5
    sw.pump()
    assert _fail_open_rule(sw) and sw.mgr.fail_open
    ctl = _accept(sw, ls)
    ctl.ask(M.EchoRequest())
    assert not _fail_open_rule(sw)
    # secure: never
    sw.mgr.configure([C.ControllerConfig("unix:" + path, probe=1.0, key="u1")],
                     fail_mode="secure")
    ctl.sock.close()
    sw.pump()
    sw.view.t += 10
    sw.pump()
    assert not _fail_open_rule(sw)
    ls.close()


def test_no_controllers_standalone_restores_normal(sw, tmp_path):
    with sw.view.lock:
        sw.view.ofproto.del_flows("")
    sw.mgr.configure([C.ControllerConfig("unix:/nonexistent", key="u")], fail_mode="secure")
    sw.mgr.configure([], fail_mode="standalone")
    assert [(r.priority, r.actions) for r in sw.view.ofproto.rules()] == [
        (0, (A.Output(0xFFFA),))]


def test_passive_controller_target(sw, tmp_path):
    path = str(tmp_path / "ctl.punix")
    sw.mgr.configure([C.ControllerConfig("punix:" + path, key="p")])
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    p = Peer(s, sw, OF13)
    assert isinstance(p.ask(M.EchoRequest())[0][1], M.EchoReply)
    assert sw.mgr.status()["p"]["is_connected"]


def test_flood_is_sliced(sw):
    """Thousands of requests queued at once: one run() serves one slice."""
    p = sw.connect(OF13)
    p.recv(rounds=2)
    p.send_raw(b"".join(wire.encode(M.EchoRequest(), OF13, i) for i in range(3000)))
    for _ in range(20):
        for key, _ in sw.sel.select(0.01):
            key.data(key.fileobj)
    conn = next(c for c in sw.mgr.conns)
    before = len(conn.inbox)
    busy = sw.mgr.run(sw.view.t)
    assert busy and before - len(conn.inbox) <= 256


def test_parse_target():
    assert C.parse_target("tcp:127.0.0.1") == ("tcp", ("127.0.0.1", 6653))
    assert C.parse_target("tcp:10.0.0.1:6633") == ("tcp", ("10.0.0.1", 6633))
    assert C.parse_target("ptcp:6634:127.0.0.1") == ("ptcp", ("127.0.0.1", 6634))
    assert C.parse_target("punix:/x") == ("punix", "/x")
    with pytest.raises(ValueError):
        C.parse_target("ssl:1.2.3.4")
    assert C.allowed_versions(("OpenFlow13", "OpenFlow14")) == {OF13}
    assert C.allowed_versions(()) == {OF10, OF13}


def test_secure_bridge_starts_empty(sw):
    sw.mgr.drop_initial_flow()
    sw.mgr.commit()
    assert list(sw.view.ofproto.rules()) == [] and sw.view.changed == 1


def test_flow_mods_revalidate_once_per_batch(sw):
    p = sw.connect(OF13)
    p.recv(rounds=2)
    p.send_raw(b"".join(wire.encode(parse_flow(f"priority={i},actions=drop"), OF13, i)
                        for i in range(1, 300)))
    p.ask(M.BarrierRequest())
    assert len(list(sw.view.ofproto.rules())) == 300
    assert 1 <= sw.view.changed <= 3


def test_requests_before_eof_are_served(sw):
    p = sw.connect(OF13)
    p.send(parse_flow("priority=77,actions=drop"), 3)
    p.sock.shutdown(socket.SHUT_WR)
    sw.pump(10)
    assert any(r.priority == 77 for r in sw.view.ofproto.rules())


def test_unusable_target_reported(sw):
    sw.mgr.configure([C.ControllerConfig("ssl:10.0.0.1:6653", key="s")])
    st = sw.mgr.status()["s"]
    assert st["is_connected"] is False and st["status"]["state"] == "VOID"
    assert "unsupported target" in st["status"]["last_error"]
    sw.mgr.configure([])
    assert sw.mgr.status() == {}
