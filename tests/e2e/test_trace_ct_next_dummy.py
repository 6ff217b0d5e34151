"""`pvs-appctl ofproto/trace ... --ct-next FLAGS` through a running daemon on dummy ports.

A firewall in two ct() zones; the trace follows both recirculations with the
states given, in the order given, and the connection table stays untouched.
"""

import os

import pytest

from tests.e2e.test_conntrack_dummy import dummy_switch

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="the bridge's internal port needs root and /dev/net/tun")

FLOWS = """\
table=0,priority=10,ip,actions=ct(table=1,zone=7)
table=0,priority=0,actions=drop
table=1,priority=20,ct_state=+trk+new,ip,in_port=1,actions=ct(commit,zone=7),ct(table=2,zone=8)
table=1,priority=20,ct_state=+trk+est,ip,actions=ct(table=2,zone=8)
table=1,priority=0,actions=drop
table=2,priority=20,ct_state=+trk+est,ip,in_port=1,actions=output:2
table=2,priority=0,actions=drop
"""
FLOW = "in_port=1,tcp,nw_src=10.1.0.1,nw_dst=10.1.0.2,tp_src=4000,tp_dst=80"
BANNER = "=" * 79


@pytest.fixture(scope="module")
def sw():
    yield from dummy_switch("ptn", FLOWS)


def last_actions(text):
    return [l for l in text.splitlines() if l.startswith("Datapath actions: ")][-1]


def test_trace_follows_both_zones_with_the_given_states(sw):
    out = sw("pvs-appctl", "ofproto/trace", "br0", FLOW, "--ct-next", "trk,new", "--ct-next", "+trk+est")
    heads = [l for l in out.splitlines() if l.startswith("recirc(0x")]
    assert len(heads) == 2 and out.count(BANNER) == 4
    assert heads[0].endswith("resume conntrack with ct_state=new|trk")
    assert heads[1].endswith("resume conntrack with ct_state=est|trk")
    assert "ct_state=new|trk,ct_zone=7," in out and "ct_state=est|trk,ct_zone=8," in out
    assert "Resuming from table 1" in out and "Resuming from table 2" in out
    last = out.rsplit(BANNER, 1)[1]
    assert "output:p2" in last and last_actions(out).split(": ")[1].isdigit()   # p2's datapath port
    assert sw("pvs-appctl", "dpctl/ct-get-nconns").strip() == "0"     # a trace has no side effects


def test_options_first_and_the_default_state(sw):
    out = sw("pvs-appctl", "ofproto/trace", "--ct-next", "trk,est", "br0", FLOW)
    heads = [l for l in out.splitlines() if l.startswith("recirc(0x")]
    assert heads[0].endswith("ct_state=est|trk")
    assert heads[1].endswith("default ct_state=trk|new (use --ct-next to customize)")
    assert last_actions(out) == "Datapath actions: drop"


def test_without_ct_next_the_trace_is_as_before(sw):
    out = sw("pvs-appctl", "ofproto/trace", "br0", FLOW)
    assert BANNER not in out and "resumed at table 1" in out


def test_bad_states_are_refused_as_ovs_does(sw):
    for state, msg in (("new", 'If "trk" is unset'.lower()), ("trk,new,est", "mutually exclusive"),
                       ("trk,nope", "unknown connection tracking state flag")):
        r = sw("pvs-appctl", "ofproto/trace", "br0", FLOW, "--ct-next", state, ok=False)
        assert r.returncode == 2 and msg in r.stderr.lower(), r.stderr
    r = sw("pvs-appctl", "ofproto/trace", "br0", FLOW, "--ct-next", ok=False)
    assert r.returncode == 2 and "Missing argument for option --ct-next" in r.stderr
