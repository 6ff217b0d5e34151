"""Every Port vlan_mode with real tagged frames, on dummy ports, through the CLIs.

    acc   access, tag=10               trk  trunk, trunks=10,20
    nt    native-tagged, tag=10, trunks=20
    nu    native-untagged, tag=10, trunks=20
    tall  trunk of every VLAN          a20  access, tag=20

Frames go in with netdev-dummy/receive (scapy-built, 802.1Q tags and PCP
included) and every port's capture is compared with what ovs-vswitchd.conf.db
(5) says each mode sends; drops are checked in ofproto/trace with OVS's
messages. Then push_vlan/pop_vlan/mod_vlan_vid in flows, alone and before
NORMAL.
"""

import os
import time

import pytest
from scapy.layers.l2 import Dot1Q, Ether

from .test_patch import Cli, udp

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")

BR = f"pvv{os.getpid() % 4096:03x}"
PORTS = {"acc": (1, ["tag=10"]), "trk": (2, ["trunks=10,20"]),
         "nt": (3, ["vlan_mode=native-tagged", "tag=10", "trunks=20"]),
         "nu": (4, ["vlan_mode=native-untagged", "tag=10", "trunks=20"]),
         "tall": (5, []), "a20": (6, ["tag=20"])}
S, BCAST = "02:00:00:00:04:01", "ff:ff:ff:ff:ff:ff"


@pytest.fixture(scope="module")
def sw():
    from pyvswitch.tools.lab import Lab
    lab = Lab(prefix="pvv")
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    try:
        lab.start_daemon(rundir, env=cli.env)
        args = ["add-br", BR, "--", "set", "bridge", BR, "datapath_type=netdev"]
        for name, (ofport, settings) in PORTS.items():
            args += ["--", "add-port", BR, name, *settings, "--", "set", "Interface", name,
                     "type=dummy", f"ofport_request={ofport}"]
        cli("pvs-vsctl", *args)
        yield cli
    finally:
        lab.close()


def flood(sw, port, vlan=None, prio=0, src=S, expect=True):
    """Send a broadcast in by `port`; {port: (vlan or None, prio)} of what came
    out. Waits up to 10 s for the first copy (1 s when none is expected), then
    collects the rest."""
    sw("pvs-appctl", "fdb/flush", BR)
    for p in PORTS:
        sw.capture(p, want=0, timeout=0)
    f = Ether(src=src, dst=BCAST)
    if vlan is not None:
        f = f / Dot1Q(vlan=vlan, prio=prio)
    sw.send(port, f / udp(src, BCAST).payload)
    frames = {p: [] for p in PORTS}
    deadline = time.time() + (10.0 if expect else 1.0)
    while not any(frames.values()) and time.time() < deadline:
        for p in PORTS:
            frames[p] += sw.capture(p, want=0, timeout=0)
    time.sleep(0.3)
    got = {}
    for p in PORTS:
        frames[p] += sw.capture(p, want=0, timeout=0)
        assert len(frames[p]) <= 1, (p, frames[p])
        if frames[p]:
            e = Ether(frames[p][0])
            got[p] = (e[Dot1Q].vlan, e[Dot1Q].prio) if Dot1Q in e else (None, 0)
    return got


def test_untagged_in_by_access(sw):
    assert flood(sw, "acc") == {"trk": (10, 0), "nt": (10, 0), "nu": (None, 0), "tall": (10, 0)}


def test_tagged_in_by_trunk(sw):
    assert flood(sw, "trk", vlan=20) == {"nt": (20, 0), "nu": (20, 0), "tall": (20, 0),
                                        "a20": (None, 0)}


def test_native_vlan_in_untagged_and_tagged(sw):
    want = {"acc": (None, 0), "trk": (10, 0), "tall": (10, 0)}
    assert flood(sw, "nt") == dict(want, nu=(None, 0))          # untagged: the native VLAN
    assert flood(sw, "nu", vlan=10) == dict(want, nt=(10, 0))   # the native VLAN, tagged
    assert flood(sw, "nu") == dict(want, nt=(10, 0))


def test_vlan_0_never_reaches_native_ports(sw):
    """OVS: a native port (native VLAN != 0) never trunks VLAN 0."""
    assert flood(sw, "tall", expect=False) == {}


def test_pcp_is_kept_on_tagged_outputs(sw):
    # a priority-tagged frame (VID 0) on an access port keeps its PCP on trunks
    assert flood(sw, "acc", vlan=0, prio=5) == {"trk": (10, 5), "nt": (10, 5), "nu": (None, 0),
                                               "tall": (10, 5)}


def test_priority_tags(sw):
    sw("pvs-vsctl", "set", "Port", "a20", "other_config:priority-tags=if-nonzero")
    try:
        assert flood(sw, "trk", vlan=20, prio=3)["a20"] == (0, 3)
        assert flood(sw, "trk", vlan=20, prio=0)["a20"] == (None, 0)
    finally:
        sw("pvs-vsctl", "remove", "Port", "a20", "other_config", "priority-tags")


@pytest.mark.parametrize("port,vlan,message", [
    ("acc", 10, "dropping VLAN 10 tagged packet received on port acc configured as VLAN 10 "
                "access port"),
    ("trk", 30, "dropping VLAN 30 packet received on port trk not configured for trunking "
                "VLAN 30"),
    ("trk", None, "dropping VLAN 0 packet received on port trk not configured for trunking "
                  "VLAN 0"),
    ("nt", 30, "dropping VLAN 30 packet received on port nt not configured for trunking "
               "VLAN 30"),
])
def test_drops(sw, port, vlan, message):
    assert flood(sw, port, vlan=vlan, expect=False) == {}
    tci = f",dl_vlan={vlan}" if vlan is not None else ""
    trace = sw("pvs-appctl", "ofproto/trace", BR,
               f"in_port={PORTS[port][0]}{tci},dl_src={S},dl_dst={BCAST}")
    assert message in trace, trace


def test_mode_change_applies_at_once(sw):
    sw("pvs-vsctl", "set", "Port", "nu", "vlan_mode=native-tagged")
    try:
        assert flood(sw, "acc")["nu"] == (10, 0)
    finally:
        sw("pvs-vsctl", "set", "Port", "nu", "vlan_mode=native-untagged")
    assert flood(sw, "acc")["nu"] == (None, 0)


def test_push_pop_with_flows_and_normal(sw):
    sw("pvs-ofctl", "add-flow", BR, "priority=10,in_port=a20,actions=push_vlan:0x8100,"
       "set_field:4106->vlan_vid,output:tall")                 # 4106 = 0x100a: VID 10
    sw("pvs-ofctl", "add-flow", BR, "priority=10,in_port=tall,dl_vlan=20,actions=pop_vlan,output:acc")
    sw("pvs-ofctl", "add-flow", BR, "priority=10,in_port=trk,dl_vlan=20,"
       "actions=mod_vlan_vid:10,NORMAL")                      # NORMAL sees VLAN 10
    try:
        assert flood(sw, "a20") == {"tall": (10, 0)}
        assert flood(sw, "tall", vlan=20) == {"acc": (None, 0)}
        assert flood(sw, "trk", vlan=20) == {"acc": (None, 0), "nt": (10, 0), "nu": (None, 0),
                                            "tall": (10, 0)}
    finally:
        sw("pvs-ofctl", "--strict", "del-flows", BR, "priority=10,in_port=a20")
        sw("pvs-ofctl", "--strict", "del-flows", BR, "priority=10,in_port=tall,dl_vlan=20")
        sw("pvs-ofctl", "--strict", "del-flows", BR, "priority=10,in_port=trk,dl_vlan=20")


def test_dot1q_tunnel_is_refused_clearly(sw):
    sw("pvs-vsctl", "set", "Port", "a20", "vlan_mode=dot1q-tunnel")
    try:
        log = open(os.path.join(sw.env["PVS_RUNDIR"], "pvs-vswitchd.log")).read()
        assert "a20: vlan_mode dot1q-tunnel is not supported" in log, log[-2000:]
        assert flood(sw, "trk", vlan=20)["a20"] == (None, 0)    # kept as an access port
    finally:
        sw("pvs-vsctl", "remove", "Port", "a20", "vlan_mode", "dot1q-tunnel")
