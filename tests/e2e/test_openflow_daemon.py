"""OpenFlow on the daemon's management socket: Open vSwitch's ovs-ofctl (1.0
and 1.3), pvs-ofctl over the wire, malformed and flooding connections.

The daemon has bridge BR (a per-process name: its internal port is a kernel
device, and other test runs may be using br0) with dummy ports pa (ofport 1) and pb (2); frames
go in with netdev-dummy/receive and come out with netdev-dummy/capture.
"""

import os
import shutil
import subprocess
import socket
import stat
import struct
import time

import pytest

from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.tools.lab import Lab
from tests.e2e.test_cli_dummy import Cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")
OVS_OFCTL = shutil.which("ovs-ofctl")
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
BR = f"pvo{os.getpid() % 4096:03x}br"   # unique: the internal port is a kernel device


def frame(src, dst, tag=b"e2e"):
    return bytes.fromhex(dst.replace(":", "") + src.replace(":", "") + "88b5") + tag.ljust(46, b"\0")


@pytest.fixture(scope="module")
def sw():
    lab = Lab(prefix="pvo")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    cli.rundir = rundir
    cli.mgmt = os.path.join(rundir, f"{BR}.mgmt")
    try:
        lab.start_daemon(rundir, env=cli.env)
        cli("pvs-vsctl", "add-br", BR, "--", "set", "bridge", BR, "datapath_type=netdev",
            "--", "add-port", BR, "pa", "--", "set", "Interface", "pa", "type=dummy",
            "ofport_request=1",
            "--", "add-port", BR, "pb", "--", "set", "Interface", "pb", "type=dummy",
            "ofport_request=2")
        yield cli
    finally:
        lab.close()


def ovs(sw, *args, ok=True):
    r = subprocess.run([OVS_OFCTL, *args], capture_output=True, text=True, timeout=30)
    if ok:
        assert r.returncode == 0, f"{args}: {r.stderr}"
        return r.stdout
    return r


def passes(sw, src, dst, out_port, tag=b"e2e"):
    sw.capture(out_port, want=0, timeout=0)
    sw("pvs-appctl", "netdev-dummy/receive", "pa" if out_port == "pb" else "pb",
       frame(src, dst, tag).hex())
    return any(tag in f for f in sw.capture(out_port, want=1, timeout=1.0))


def test_mgmt_socket(sw):
    assert stat.S_IMODE(os.stat(sw.mgmt).st_mode) == 0o600


@pytest.mark.skipif(OVS_OFCTL is None, reason="ovs-ofctl not installed")
@pytest.mark.parametrize("proto", ["OpenFlow13", "OpenFlow10"])
def test_ovs_ofctl(sw, proto):
    t = "unix:" + sw.mgmt
    out = ovs(sw, "-O", proto, "show", t)
    assert "OFPT_FEATURES_REPLY" in out and "1(pa): addr:" in out and "2(pb): addr:" in out
    assert f"LOCAL({BR})" in out
    ovs(sw, "-O", proto, "add-flow", t, "priority=100,in_port=1,actions=drop")
    out = ovs(sw, "-O", proto, "dump-flows", t)
    assert "priority=100,in_port=1 actions=drop" in out and "actions=NORMAL" in out
    assert not passes(sw, A, B, "pb")                      # the next packet sees it
    ovs(sw, "-O", proto, "--strict", "del-flows", t, "priority=100,in_port=1")
    assert passes(sw, A, B, "pb")
    out = ovs(sw, "-O", proto, "dump-ports", t)
    assert "port  1: rx pkts=" in out and "port  2:" in out
    ovs(sw, "-O", proto, "add-flow", t, "table=1,priority=5,dl_type=0x88b5,actions=output:2")
    assert "table=1" in ovs(sw, "-O", proto, "dump-flows", t, "table=1")
    ovs(sw, "-O", proto, "del-flows", t, "table=1")
    assert ovs(sw, "-O", proto, "dump-flows", t).count("actions=") == 1


def test_pvs_ofctl_is_wire_and_pvs_vsctl_agrees(sw):
    out = sw("pvs-ofctl", "show", BR)
    assert out.startswith("OFPT_FEATURES_REPLY (OF1.3)") and " 1(pa)" in out
    out = sw("pvs-ofctl", "-O", "OpenFlow10", "show", BR)
    assert out.startswith("OFPT_FEATURES_REPLY (xid=0x2)")
    out = sw("pvs-ofctl", "show", "unix:" + sw.mgmt)
    assert " 2(pb)" in out
    r = sw("pvs-ofctl", "show", "nosuchbr", ok=False)
    assert r.returncode == 1 and "nosuchbr is not a bridge or a socket" in r.stderr


def _raw_conn(sw):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sw.mgmt)
    s.sendall(wire.encode(M.Hello((4,)), 4, 1))
    framer = wire.Framer()
    return s, framer


def _next(s, framer, pending):
    while not pending:
        data = s.recv(65536)
        if not data:
            return None
        pending += framer.feed(data)
    return wire.decode(pending.pop(0))[2]


def _skip_hello(s, framer, pending):
    msg = _next(s, framer, pending)
    assert isinstance(msg, M.Hello)


def test_malformed_messages_get_errors_connection_survives(sw):
    s, fr = _raw_conn(sw)
    pend = []
    _skip_hello(s, fr, pend)
    cases = [
        (struct.pack("!BBHI", 4, 77, 8, 2), "OFPBRC_BAD_TYPE"),
        (struct.pack("!BBHI", 4, 18, 12, 3) + b"\xff\x00\x00\x00", "OFPBRC_BAD_LEN"),
        (struct.pack("!BBHIHH4x", 4, 18, 16, 4, 99, 0), "OFPBRC_BAD_MULTIPART"),
        (struct.pack("!BBHIII", 4, 4, 16, 5, 0x12345678, 1), "OFPBRC_BAD_EXPERIMENTER"),
        (struct.pack("!BBHI", 2, 5, 8, 6), "OFPBRC_BAD_VERSION"),
    ]
    for raw, want in cases:
        s.sendall(raw)
        msg = _next(s, fr, pend)
        assert isinstance(msg, M.Error) and msg.name == want, (raw.hex(), msg)
    s.sendall(wire.encode(M.FlowStatsRequest(), 4, 9))
    assert isinstance(_next(s, fr, pend), M.FlowStatsReply)
    s.sendall(wire.encode(M.EchoRequest(b"still"), 4, 10))
    assert _next(s, fr, pend) == M.EchoReply(b"still")
    # the daemon and other clients are fine
    assert sw("pvs-ofctl", "dump-flows", BR).count("actions=") >= 1
    s.sendall(struct.pack("!BBHI", 4, 2, 3, 11))            # length 3: stream broken
    msg = _next(s, fr, pend)
    assert isinstance(msg, M.Error) and msg.name == "OFPBRC_BAD_LEN"
    assert _next(s, fr, pend) is None                         # closed
    assert sw("pvs-appctl", "version").startswith("pvs-vswitchd")


def test_garbage_and_hostile_streams(sw):
    import random
    rnd = random.Random(5)
    for i in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(sw.mgmt)
        if i % 2:
            s.sendall(wire.encode(M.Hello((4,)), 4, 1))
        s.sendall(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000))))
        s.close()
    assert "1(pa)" in sw("pvs-ofctl", "show", BR)
    assert passes(sw, A, B, "pb", b"after-garbage")


def test_flooding_connection_does_not_starve_others(sw):
    s, fr = _raw_conn(sw)
    echo = wire.encode(M.EchoRequest(b"x" * 64), 4, 7)
    burst = echo * 2000
    s.setblocking(False)
    sent = 0
    t0 = time.time()
    # keep the daemon busy for a while without reading the replies
    while time.time() - t0 < 2.0:
        try:
            sent += s.send(burst)
        except BlockingIOError:
            pass
        if time.time() - t0 > 0.3:
            break
    t1 = time.time()
    out = sw("pvs-ofctl", "dump-flows", BR)
    took = time.time() - t1
    assert "actions=NORMAL" in out and took < 5, took
    assert passes(sw, A, B, "pb", b"during-flood")
    s.close()


def _async_conn(sw):
    """A 1.3 service connection that asked for flow-removed and port-status."""
    s, fr = _raw_conn(sw)
    pend = []
    _skip_hello(s, fr, pend)
    s.sendall(wire.encode(M.SetAsync((3, 0), (7, 7), (15, 0)), 4, 2))
    return s, fr, pend


def _wait_msg(s, fr, pend, cls, timeout=5.0):
    deadline = time.time() + timeout
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            msg = _next(s, fr, pend)
        except socket.timeout:
            continue
        if isinstance(msg, cls):
            return msg
    return None


def test_flow_removed_on_idle_timeout_and_delete(sw):
    s, fr, pend = _async_conn(sw)
    sw("pvs-ofctl", "add-flow", BR, "priority=222,idle_timeout=1,send_flow_rem,"
       "dl_type=0x88b6,actions=drop")
    msg = _wait_msg(s, fr, pend, M.FlowRemoved)
    assert msg is not None and msg.priority == 222 and msg.reason == 0      # idle
    sw("pvs-ofctl", "add-flow", BR, "priority=223,send_flow_rem,dl_type=0x88b6,actions=drop")
    sw("pvs-ofctl", "del-flows", BR, "dl_type=0x88b6")
    msg = _wait_msg(s, fr, pend, M.FlowRemoved)
    assert msg is not None and msg.priority == 223 and msg.reason == 2      # delete
    s.close()


def test_port_status_when_a_port_comes_and_goes(sw):
    s, fr, pend = _async_conn(sw)
    sw("pvs-vsctl", "add-port", BR, "pz", "--", "set", "Interface", "pz", "type=dummy",
       "ofport_request=9")
    msg = _wait_msg(s, fr, pend, M.PortStatus)
    assert msg is not None and (msg.reason, msg.desc.name, msg.desc.port_no) == (0, "pz", 9)
    sw("pvs-vsctl", "del-port", BR, "pz")
    msg = _wait_msg(s, fr, pend, M.PortStatus)
    assert msg is not None and (msg.reason, msg.desc.name) == (1, "pz")
    s.close()


@pytest.mark.skipif(OVS_OFCTL is None, reason="ovs-ofctl not installed")
def test_ovs_ofctl_groups_and_meters(sw):
    t = "unix:" + sw.mgmt
    ovs(sw, "-O", "OpenFlow13", "add-group", t, "group_id=5,type=all,bucket=output:2")
    assert "group_id=5,type=all,bucket=actions=output:2" in ovs(sw, "-O", "OpenFlow13",
                                                                 "dump-groups", t)
    assert "group_id=5" in ovs(sw, "-O", "OpenFlow10", "dump-groups", t)
    ovs(sw, "-O", "OpenFlow13", "add-flow", t, "priority=300,dl_type=0x88b7,actions=group:5")
    sw.capture("pb", want=0, timeout=0)
    sw("pvs-appctl", "netdev-dummy/receive", "pa", bytes.fromhex(
        "020000000099" "020000000098" "88b7").ljust(60, b"\0").hex())
    assert len(sw.capture("pb", want=1)) == 1                               # through the group
    ovs(sw, "-O", "OpenFlow13", "add-meter", t, "meter=3,pktps,band=type=drop,rate=100")
    assert "meter=3 pktps bands=" in ovs(sw, "-O", "OpenFlow13", "dump-meters", t)
    assert "meter:3" in ovs(sw, "-O", "OpenFlow13", "meter-stats", t)
    ovs(sw, "-O", "OpenFlow13", "del-flows", t, "dl_type=0x88b7")
    ovs(sw, "-O", "OpenFlow13", "del-groups", t)
    ovs(sw, "-O", "OpenFlow13", "del-meters", t)
    assert "group_id" not in ovs(sw, "-O", "OpenFlow13", "dump-groups", t)


def test_daemon_log_has_no_tracebacks(sw):
    with open(os.path.join(sw.rundir, "pvs-vswitchd.log")) as f:
        log = f.read()
    assert "Traceback" not in log and "|ERR|" not in log, log[-3000:]
