"""Connection tracking through the daemon: ct() flows, dpctl conntrack commands.

A stateful firewall in two tables on dummy ports: p1 may open TCP/UDP
connections to p2, p2 may only answer. Frames go in with netdev-dummy/receive;
the connection table is read with dpctl/dump-conntrack, as in OVS.
"""

import os

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether

from pyvswitch.tools.lab import Lab
from tests.e2e.test_cli_dummy import Cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")

E1 = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
E2 = Ether(src="02:00:00:00:00:0b", dst="02:00:00:00:00:0a")
IP1, IP2 = "10.1.0.1", "10.1.0.2"
FLOWS = """\
table=0,priority=10,ip,actions=ct(table=1,zone=7)
table=0,priority=5,arp,actions=NORMAL
table=0,priority=0,actions=drop
table=1,priority=20,ct_state=+trk+new,ip,in_port=1,actions=ct(commit,zone=7,exec(set_field:0x11->ct_mark)),output:2
table=1,priority=20,ct_state=+trk+est,ip,in_port=1,actions=output:2
table=1,priority=20,ct_state=+trk+est,ip,in_port=2,actions=output:1
table=1,priority=20,ct_state=+trk+rel,ip,in_port=2,actions=output:1
table=1,priority=0,actions=drop
"""


def dummy_switch(prefix, flows):
    """A daemon with br0 and dummy ports p1, p2 (ofports 1, 2) running `flows`;
    yields its Cli and removes everything afterwards."""
    lab = Lab(prefix=prefix)
    rundir = lab.tempdir("run")
    cli = Cli(rundir)
    try:
        lab.start_daemon(rundir, env=cli.env)
        args = ["pvs-vsctl", "--timeout=900", "add-br", "br0", "--", "set", "bridge", "br0",
                "datapath_type=netdev"]
        for i in (1, 2):
            args += ["--", "add-port", "br0", f"p{i}", "--", "set", "Interface", f"p{i}",
                     "type=dummy", f"ofport_request={i}"]
        cli(*args)
        path = os.path.join(lab.tempdir("f"), "flows")
        with open(path, "w") as f:
            f.write(flows)
        cli("pvs-ofctl", "replace-flows", "br0", path)
        yield cli
    finally:
        lab.close()


@pytest.fixture(scope="module")
def sw():
    yield from dummy_switch("pct", FLOWS)


def through(cli, port, frame, out_port):
    cli("pvs-appctl", "netdev-dummy/capture", out_port)         # drain
    cli.send(port, frame)
    return cli.capture(out_port, want=1, timeout=2.0)


def test_stateful_tcp(sw):
    syn = E1 / IP(src=IP1, dst=IP2) / TCP(sport=4000, dport=80, flags="S", seq=10)
    sa = E2 / IP(src=IP2, dst=IP1) / TCP(sport=80, dport=4000, flags="SA", seq=50, ack=11)
    ack = E1 / IP(src=IP1, dst=IP2) / TCP(sport=4000, dport=80, flags="A", seq=11, ack=51)
    rogue = E2 / IP(src=IP2, dst=IP1) / TCP(sport=81, dport=4000, flags="S", seq=1)
    assert through(sw, "p1", syn, "p2") == [bytes(syn)]
    assert through(sw, "p2", sa, "p1") == [bytes(sa)]
    assert through(sw, "p1", ack, "p2") == [bytes(ack)]
    assert through(sw, "p2", rogue, "p1") == []                 # p2 cannot open connections
    dump = sw("pvs-appctl", "dpctl/dump-conntrack", "zone=7")
    assert ("tcp,orig=(src=10.1.0.1,dst=10.1.0.2,sport=4000,dport=80),reply=(src=10.1.0.2,dst=10.1.0.1,"
            "sport=80,dport=4000),zone=7,mark=17,protoinfo=(state=ESTABLISHED)") in dump.splitlines()
    assert "sport=81" not in dump
    trace = sw("pvs-appctl", "ofproto/trace", "br0", "in_port=1,tcp,nw_src=10.1.0.1,nw_dst=10.1.0.2")
    assert "resumed at table 1" in trace


def test_udp_reply_and_icmp_related_then_flush(sw):
    q = E1 / IP(src=IP1, dst=IP2) / UDP(sport=5353, dport=53) / b"q"
    a = E2 / IP(src=IP2, dst=IP1) / UDP(sport=53, dport=5353) / b"a"
    unreach = (E2 / IP(src=IP2, dst=IP1) / ICMP(type=3, code=3)
               / IPerror(src=IP1, dst=IP2) / UDPerror(sport=5353, dport=53))
    assert through(sw, "p2", a, "p1") == []                     # no request yet
    assert through(sw, "p1", q, "p2") == [bytes(q)]
    assert through(sw, "p2", a, "p1") == [bytes(a)]
    assert through(sw, "p2", unreach, "p1") == [bytes(unreach)]  # related
    stats = sw("pvs-appctl", "dpctl/ct-stats-show")
    assert "UDP: 1" in stats and "TCP: 1" in stats
    sw("pvs-appctl", "dpctl/flush-conntrack", "zone=7",
       "ct_nw_src=10.1.0.1,ct_nw_dst=10.1.0.2,ct_nw_proto=17,ct_tp_src=5353,ct_tp_dst=53")
    assert "udp," not in sw("pvs-appctl", "dpctl/dump-conntrack")
    assert through(sw, "p2", a, "p1") == []                     # its state went with it
    r = sw("pvs-appctl", "dpctl/flush-conntrack", "ct_nw_src=bogus", ok=False)
    assert r.returncode != 0 and "invalid conntrack tuple" in r.stderr


def test_limits_and_maxconns(sw):
    sw("pvs-appctl", "dpctl/flush-conntrack")
    assert sw("pvs-appctl", "dpctl/dump-conntrack") == ""
    sw("pvs-appctl", "dpctl/ct-set-limits", "zone=7,limit=1")
    assert "zone=7,limit=1,count=0" in sw("pvs-appctl", "dpctl/ct-get-limits")
    for sport in (1, 2):
        through(sw, "p1", E1 / IP(src=IP1, dst=IP2) / UDP(sport=sport, dport=9), "p2")
    assert sw("pvs-appctl", "dpctl/ct-get-nconns").strip() == "1"
    assert "Refused (zone limit): 1" in sw("pvs-appctl", "dpctl/ct-stats-show")
    sw("pvs-appctl", "dpctl/ct-set-limits", "zone=7,limit=0")
    assert sw("pvs-appctl", "dpctl/ct-set-maxconns", "1000").startswith("setting maxconns")
    assert sw("pvs-appctl", "dpctl/ct-get-maxconns").strip() == "1000"
    r = sw("pvs-appctl", "dpctl/ct-set-limits", "zone=99999,limit=1", ok=False)
    assert r.returncode != 0 and "ct-set-limits" in r.stderr
