"""Pure parts of the OpenFlow benchmark: the flow mods it sends, the frame,
the generator's counter interpolation, the summary and the report. The
controller side is exercised against a socket pair (no daemon, no root)."""

import io
import socket
import threading

import pytest

from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.tools.bench import openflow as B


def test_flow_mods_are_distinct_adds_that_encode_in_13():
    mods = B.flow_mods(300)
    assert len({fm.match.get("nw_dst") for fm in mods}) == 300
    assert all(fm.command == "add" and fm.priority == 100 for fm in mods)
    raw = wire.encode(mods[0], B.OFP13, B.BLOB_XID)
    _, xid, back = wire.decode(raw)
    assert xid == B.BLOB_XID and back.match == mods[0].match


def test_frame_is_64_bytes_ipv4_udp():
    assert len(B.FRAME) == 64
    assert B.FRAME[12:14] == b"\x08\x00" and B.FRAME[23] == 17


def test_generator_interpolates_between_marks():
    g = B.Generator.__new__(B.Generator)
    g.marks = [(10.0, 0), (10.1, 1000), (10.2, 2000)]
    assert g.sent_at(9.0) == 0
    assert g.sent_at(10.05) == pytest.approx(500)
    assert g.sent_at(10.2) == 2000
    assert g.sent_at(11.0) == 2000


def test_generate_prints_marks_and_stops(monkeypatch):
    sent = []

    class FakeSock:
        def __init__(self, *a):
            pass

        def bind(self, addr):
            pass

        def send(self, frame):
            sent.append(len(frame))

    monkeypatch.setattr(B.socket, "socket", FakeSock)
    out = io.StringIO()
    B.generate("lo", 5000, 0.3, out=out, every=0.1)
    marks = [tuple(map(float, ln.split())) for ln in out.getvalue().splitlines()]
    assert len(marks) >= 3 and marks[-1][1] == len(sent)
    assert 500 <= len(sent) <= 2500          # paced at 5000 pps for 0.3 s


def _switch_side(sock, replies):
    """A fake switch: hello, then answers barriers, aggregates and echoes."""
    fr = wire.Framer()
    sock.sendall(wire.encode(M.Hello((4,)), 4, 1))
    sock.sendall(wire.encode(M.EchoRequest(b"ping"), 4, 77))
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        for raw in fr.feed(data):
            _, xid, msg = wire.decode(raw)
            replies.append(msg)
            if isinstance(msg, M.BarrierRequest):
                sock.sendall(wire.encode(M.PacketIn(data=bytes(60)), 4, 0) * 3
                             + wire.encode(M.BarrierReply(), 4, xid))
            elif isinstance(msg, M.AggregateStatsRequest):
                sock.sendall(wire.encode(M.AggregateStatsReply(0, 0, 42), 4, xid))


def test_controller_counts_packet_ins_answers_echoes_and_waits_for_replies():
    a, b = socket.socketpair()
    seen = []
    t = threading.Thread(target=_switch_side, args=(b, seen), daemon=True)
    t.start()
    ctl = B.Controller(a)
    _, parts = ctl.request(M.BarrierRequest(), timeout=5)
    assert isinstance(parts[-1], M.BarrierReply) and ctl.pi_count == 3
    assert B.flow_count(ctl) == 42
    assert M.EchoReply(b"ping") in seen
    ctl.close()
    t.join(timeout=5)


def _run(switch, fm_rates, pins):
    return {"switch": switch, "version": "v", "errors": [],
            "flow_mods": [{"flow_mods_per_s": r, "ok": True, "delete_all_seconds": 0.5}
                          for r in fm_rates],
            "packet_ins": [{"rate_asked": rate, "offered_pps": off, "packet_ins_per_s": got}
                           for rate, off, got in pins]}


def test_summary_and_markdown():
    runs = [_run("pyvswitch", [1000.0, 3000.0, 2000.0], [(0, 100.0, 10.0), (0, 100.0, 30.0)]),
            _run("ovs", [10000.0], [(0, 200.0, 50.0)])]
    s = B.summarize(runs)
    assert s["pyvswitch"]["flow_mods_per_s"] == {"median": 2000.0, "min": 1000.0,
                                                 "max": 3000.0, "n": 3}
    assert s["pyvswitch"]["packet_ins"][0]["packet_ins_per_s_median"] == 20.0
    meta = {"command": "python -m pyvswitch.tools.bench.openflow", "date": "d",
            "uptime_before": "load average: 1", "uptime_after": "load average: 2",
            "elapsed_s": 12.0, "flows": 100000, "reps": 3, "pin_seconds": 5,
            "setup": {"CPU": "x"}, "machine": {"nproc": 2}}
    md = B.render_markdown(s, meta)
    assert "| pyvswitch | **2,000** [1,000-3,000] | 0.500 |" in md
    assert "pyvswitch / ovs: 0.200x" in md
    assert "| ovs | max | 200 | **50** [50-50] |" in md
    assert "load average: 1" in md and "python -m pyvswitch.tools.bench.openflow" in md


def test_quick_options():
    a = B.parse_args(["--quick"])
    assert (a.flows, a.reps, a.pin_rate_list, a.pin_seconds) == (20000, 1, [20000, 0], 3.0)
    a = B.parse_args(["--quick", "--flows", "5", "--switch", "ovs"])
    assert a.flows == 5 and a.switches == ["ovs"]
    full = B.parse_args([])
    assert (full.flows, full.reps) == (100000, 3)
    with pytest.raises(SystemExit):
        B.parse_args(["--switch", "nope"])
