"""Security groups compiled to flows: validity, linear flow counts, and the
pipeline's decisions against the Python reference (`allowed`)."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.cloud import secgroup as SG
from pyvswitch.conntrack.table import CS_EST, CS_NEW, CS_RPL, CS_TRK
from pyvswitch.datapath import layout
from pyvswitch.ofproto import recirc as RC
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate


def mac(i):
    return f"fa:16:3e:00:{i >> 8:02x}:{i & 0xFF:02x}"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_port_ranges_cover_exactly(a, b):
    lo, hi = min(a, b), max(a, b)
    cover = set()
    for v, m in SG.port_ranges(lo, hi):
        size = (~m & 0xFFFF) + 1
        assert v & ~m & 0xFFFF == 0
        cover |= set(range(v, v + size))
    assert cover == set(range(lo, hi + 1))
    assert len(SG.port_ranges(lo, hi)) <= 32


@pytest.mark.parametrize("rule,msg", [
    (SG.Rule("sideways"), "direction"),
    (SG.Rule("ingress", "IPv5"), "ethertype"),
    (SG.Rule("ingress", protocol="tcp", port_min=80, port_max=70), "port range"),
    (SG.Rule("ingress", protocol="gre", port_min=1), "unknown protocol"),
    (SG.Rule("ingress", protocol="47", port_min=1), "ports need"),
    (SG.Rule("ingress", remote_cidr="10.0.0.0/8", remote_group="g"), "not both"),
    (SG.Rule("ingress", "IPv6", remote_cidr="10.0.0.0/8"), "is not IPv6"),
])
def test_bad_rules_are_refused(rule, msg):
    with pytest.raises(SG.SecGroupError, match=msg):
        SG.compile_flows([SG.Port("p1", 1, mac(1), ["10.0.0.1"], ["g"])], [SG.SecurityGroup("g", [rule])])


def test_unknown_groups_refused():
    with pytest.raises(SG.SecGroupError, match="does not exist"):
        SG.compile_flows([SG.Port("p1", 1, mac(1), ["10.0.0.1"], ["nope"])], [])
    with pytest.raises(SG.SecGroupError, match="remote group"):
        SG.compile_flows([], [SG.SecurityGroup("g", [SG.Rule("ingress", remote_group="x")])])


def web_model(n_ports=4):
    web = SG.SecurityGroup("web", [
        SG.Rule("ingress", protocol="tcp", port_min=80, port_max=80),
        SG.Rule("ingress", protocol="tcp", port_min=8000, port_max=8099, remote_group="web"),
        SG.Rule("ingress", protocol="icmp"),
        SG.Rule("egress"),
        SG.Rule("egress", "IPv6"),
    ])
    ports = [SG.Port(f"p{i}", i, mac(i), [f"10.0.0.{i}"], ["web"]) for i in range(1, n_ports + 1)]
    ports.append(SG.Port("up", 100, "02:00:00:00:00:64", [], [], security=False))
    return ports, [web]


def bridge(ports, groups):
    o = Ofproto("br-int")
    for p in ports:
        o.add_port(p.name, dp_port=p.ofport + 1000, ofport=p.ofport)
    o.del_flows("")
    for f in SG.compile_flows(ports, groups):
        o.add_flow(f)
    return o


def test_every_flow_is_accepted_by_the_switch():
    ports, groups = web_model()
    o = bridge(ports, groups)
    assert len(o.dump_flows().splitlines()) == len(SG.compile_flows(ports, groups))


def test_flow_count_is_linear():
    """200 ports x 50 rules with remote groups stay under the linear bound, and
    doubling the ports adds flows, it does not multiply them."""
    def model(n_ports, n_rules):
        g = SG.SecurityGroup("g", [SG.Rule("ingress", protocol="tcp", port_min=1000 + i, port_max=1000 + i,
                                           remote_group="g") for i in range(n_rules)])
        ports = [SG.Port(f"p{i}", i, mac(i), [str(ipaddress.ip_address(0x0A000000 + i))], ["g"])
                 for i in range(1, n_ports + 1)]
        return ports, [g]
    p200, g50 = model(200, 50)
    n = len(SG.compile_flows(p200, g50))
    assert n <= SG.flow_count_bound(p200, g50)
    assert n < 200 * 50                                  # far from the product
    p400, _ = model(400, 50)
    n400 = len(SG.compile_flows(p400, g50))
    per_port = (n400 - n) / 200
    assert per_port < 40                                 # flows per extra port: a constant


def _pkt(src_port, dst_port, proto=6, tp_dst=80, tp_src=4000, ports=None):
    s = next(p for p in ports if p.ofport == src_port)
    d = next(p for p in ports if p.ofport == dst_port)
    return {"in_port": 1000 + src_port, "dl_src": int(s.mac.replace(":", ""), 16),
            "dl_dst": int(d.mac.replace(":", ""), 16), "dl_type": 0x0800, "nw_proto": proto,
            "nw_src": int(ipaddress.ip_address(s.ips[0])), "nw_dst": int(ipaddress.ip_address(d.ips[0])),
            "tp_src": tp_src, "tp_dst": tp_dst}


def run_new_connection(o, key):
    """Follow a first packet through both conntrack forks with ct_state new,
    as the datapath would; returns the datapath actions of every pass."""
    seen = []
    for _ in range(4):
        r = xlate(o, key, 0.0, learn=False)
        seen += r.actions
        fork = [a for a in r.actions if a[0] == "clone"]
        if not fork:
            return seen
        (_, inner), = fork
        rid = inner[1][1]
        ct = inner[0]
        key = dict(key, recirc_id=rid, ct_state=CS_TRK | CS_NEW, ct_zone=ct[1])
    raise AssertionError("too many forks")


@pytest.mark.parametrize("src,dst,proto,port,want", [
    (1, 2, 6, 80, True),          # tcp/80 from anywhere
    (1, 2, 6, 8050, True),        # 8000-8099 from a member of "web"
    (1, 2, 6, 22, False),         # nothing allows 22
    (1, 2, 17, 80, False),        # udp/80 is not tcp/80
])
def test_pipeline_agrees_with_the_reference(src, dst, proto, port, want):
    ports, groups = web_model()
    o = bridge(ports, groups)
    acts = run_new_connection(o, _pkt(src, dst, proto, port, ports=ports))
    delivered = ("output", 1000 + dst) in acts
    ref = SG.allowed(ports, groups, f"p{dst}", "ingress", "IPv4", proto, ports[src - 1].ips[0], port)
    assert delivered == want == ref
    if want:
        commits = [a for a in acts if a[0] == "ct" and a[2]]
        assert len(commits) == 2                       # egress zone of src, ingress zone of dst


def test_spoofed_source_is_dropped():
    ports, groups = web_model()
    o = bridge(ports, groups)
    key = _pkt(1, 2, ports=ports)
    key["nw_src"] = int(ipaddress.ip_address("10.9.9.9"))
    assert run_new_connection(o, key) == []
    key = _pkt(1, 2, ports=ports)
    key["dl_src"] = 0x020000000099
    assert run_new_connection(o, key) == []


def test_established_reply_passes_without_a_rule():
    ports, groups = web_model()
    o = bridge(ports, groups)
    key = _pkt(2, 1, tp_src=80, tp_dst=4000, ports=ports)   # the reply of 1 -> 2:80, back to 1
    r = xlate(o, key, 0.0, learn=False)
    (_, inner), = [a for a in r.actions if a[0] == "clone"]
    r = xlate(o, dict(key, recirc_id=inner[1][1], ct_state=CS_TRK | CS_EST | CS_RPL, ct_zone=2), 0.0)
    (_, inner), = [a for a in r.actions if a[0] == "clone"]    # egress ok, then the ingress fork
    r = xlate(o, dict(key, recirc_id=inner[1][1], ct_state=CS_TRK | CS_EST | CS_RPL, ct_zone=1), 0.0)
    assert ("output", 1001) in r.actions
