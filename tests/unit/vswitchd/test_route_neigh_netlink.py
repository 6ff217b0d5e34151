"""The tunnel underlay's pieces: route table (longest prefix, User over
Cached, local_ip), neighbour cache (aging, static, show), rtnetlink parsing
(hand-built messages, hypothesis: never reads past the buffer, round trip),
a live netlink dump, and the vxlan option checks."""

import os
import socket
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvswitch.ports.base import PortError
from pyvswitch.ports.vxlan import parse_options
from pyvswitch.vswitchd import netlink as NL
from pyvswitch.ofproto.neigh import NeighCache, parse_mac
from pyvswitch.ofproto.route import RouteTable, parse_prefix


def ip(t):
    return int.from_bytes(socket.inet_aton(t), "big")


def table():
    rt = RouteTable()
    addrs = [NL.Addr(5, "br-phy", ip("172.31.1.1"), 24), NL.Addr(6, "br-x", ip("10.0.0.1"), 8)]
    routes = [NL.Route(ip("172.31.1.0"), 24, 0, 5, ip("172.31.1.1"), 254, 1, 0),
              NL.Route(ip("10.0.0.0"), 8, 0, 6, 0, 254, 1, 0),
              NL.Route(0, 0, ip("172.31.1.254"), 5, 0, 254, 1, 0),
              NL.Route(ip("172.31.1.1"), 32, 0, 5, ip("172.31.1.1"), 255, 2, 0),
              NL.Route(ip("192.168.0.0"), 16, 0, 5, 0, 100, 1, 0)]          # other table: ignored
    assert rt.set_system(addrs, routes, names={5: "br-phy", 6: "br-x"})
    return rt


def test_longest_prefix_and_user_routes():
    rt = table()
    assert rt.lookup(ip("172.31.1.7")).dev == "br-phy" and rt.lookup(ip("172.31.1.7")).plen == 24
    assert rt.lookup(ip("10.2.3.4")).src == ip("10.0.0.1")          # src from the device's address
    d = rt.lookup(ip("8.8.8.8"))
    assert d.plen == 0 and d.gw == ip("172.31.1.254") and d.src == ip("172.31.1.1")
    assert rt.lookup(ip("192.168.1.1")).plen == 0                   # table 100 not read
    assert rt.add(ip("10.1.0.0"), 16, "br-phy", gw=ip("172.31.1.9")) is None
    e = rt.lookup(ip("10.1.2.3"))
    assert e.user and e.plen == 16 and e.gw == ip("172.31.1.9") and e.src == ip("172.31.1.1")
    assert rt.add(ip("10.0.0.0"), 8, "br-phy") is None               # User wins at the same prefix
    assert rt.lookup(ip("10.9.9.9")).dev == "br-phy"
    assert rt.delete(ip("10.0.0.0"), 8) and rt.lookup(ip("10.9.9.9")).dev == "br-x"
    assert not rt.delete(ip("10.0.0.0"), 8)
    assert rt.add(ip("1.0.0.0"), 8, "nodev") == "Error while inserting route."


def test_local_ip_must_be_local_and_show_text():
    rt = table()
    assert rt.lookup(ip("172.31.1.2"), src=ip("172.31.1.1")).src == ip("172.31.1.1")
    assert rt.lookup(ip("172.31.1.2"), src=ip("172.31.1.99")) is None
    rt.add(ip("10.1.0.0"), 16, "br-phy", gw=ip("172.31.1.9"))
    text = rt.show().splitlines()
    assert text[0] == "Route Table:"
    assert "User: 10.1.0.0/16 dev br-phy GW 172.31.1.9 SRC 172.31.1.1" in text
    assert "Cached: 172.31.1.0/24 dev br-phy SRC 172.31.1.1" in text
    assert "Cached: 172.31.1.1/32 dev br-phy SRC 172.31.1.1 local" in text
    assert "Cached: 0.0.0.0/0 dev br-phy GW 172.31.1.254 SRC 172.31.1.1" in text
    assert parse_prefix("10.1.2.3/8") == (ip("10.1.2.3"), 8) and parse_prefix("1.2.3.4")[1] == 32
    with pytest.raises(ValueError):
        parse_prefix("1.2.3.4/33")


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), min_size=1, max_size=20),
       st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_lookup_is_the_longest_matching_prefix(prefixes, dst):
    rt = RouteTable()
    rt.set_system([NL.Addr(1, "br", ip("1.1.1.1"), 32)], [])
    for p, n in prefixes:
        rt.add(p, n, "br")
    e = rt.lookup(dst)
    mask = lambda n: ((1 << 32) - 1) ^ ((1 << (32 - n)) - 1)       # noqa: E731
    best = max((n for p, n in prefixes if (p ^ dst) & mask(n) == 0), default=None)
    assert (e.plen if e else None) == best


def test_neighbour_cache():
    nc = NeighCache(idle=10)
    assert nc.lookup("br-phy", 1, 0) is None
    assert nc.learn("br-phy", 1, 0xAA, 0.0)
    assert not nc.learn("br-phy", 1, 0xAA, 1.0)                     # refresh: no change
    assert nc.learn("br-phy", 1, 0xBB, 2.0)                         # moved
    assert nc.lookup("br-phy", 1, 5.0) == 0xBB and nc.lookup("br-other", 1, 5.0) is None
    assert nc.lookup("br-phy", 1, 12.5) is None                     # aged out
    nc.set("br-phy", 2, 0xCC)
    assert not nc.learn("br-phy", 2, 0xDD, 0.0) and nc.lookup("br-phy", 2, 1e9) == 0xCC
    nc.learn("br-phy", ip("172.31.1.2"), parse_mac("aa:55:aa:55:00:01"), 0.0)
    lines = nc.show(1.0).splitlines()
    assert lines[0].startswith("IP") and lines[0].index("MAC") == 46 and set(lines[1]) == {"="}
    row = [ln for ln in lines if ln.startswith("172.31.1.2")][0]
    assert row.index("aa:55:aa:55:00:01") == 46 and row.endswith("br-phy")
    assert nc.flush() == 2 and nc.lookup("br-phy", 2, 0) is None
    with pytest.raises(ValueError):
        parse_mac("aa:bb")


# --- netlink ----------------------------------------------------------------------
def rtattr(t, data):
    ln = 4 + len(data)
    return struct.pack("=HH", ln, t) + data + b"\0" * (-ln % 4)


def nlmsg(t, payload, seq=1, flags=NL.NLM_F_MULTI):
    return struct.pack("=IHHII", 16 + len(payload), t, flags, seq, 0) + payload + b"\0" * (-len(payload) % 4)


def addr_msg(index, addr, plen, label):
    return (struct.pack("=BBBBI", socket.AF_INET, plen, 0, 0, index)
            + rtattr(NL.IFA_ADDRESS, socket.inet_aton(addr)) + rtattr(NL.IFA_LOCAL, socket.inet_aton(addr))
            + rtattr(NL.IFA_LABEL, label.encode() + b"\0"))


def route_msg(dst, plen, oif, gw=None, prefsrc=None, table=254, rtype=1):
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, plen, 0, 0, table, 2, 0, rtype, 0)
    if plen:
        body += rtattr(NL.RTA_DST, socket.inet_aton(dst))
    body += rtattr(NL.RTA_TABLE, struct.pack("=I", table)) + rtattr(NL.RTA_OIF, struct.pack("=I", oif))
    if gw:
        body += rtattr(NL.RTA_GATEWAY, socket.inet_aton(gw))
    if prefsrc:
        body += rtattr(NL.RTA_PREFSRC, socket.inet_aton(prefsrc))
    return body


def test_parse_hand_built_dump():
    data = (nlmsg(NL.RTM_NEWADDR, addr_msg(7, "172.31.1.1", 24, "br-phy"))
            + nlmsg(NL.RTM_NEWROUTE, route_msg("172.31.1.0", 24, 7, prefsrc="172.31.1.1"))
            + nlmsg(NL.RTM_NEWROUTE, route_msg("0.0.0.0", 0, 7, gw="172.31.1.254"))
            + nlmsg(NL.NLMSG_DONE, struct.pack("=i", 0)))
    msgs = NL.parse_messages(data)
    assert [m[0] for m in msgs] == [NL.RTM_NEWADDR, NL.RTM_NEWROUTE, NL.RTM_NEWROUTE, NL.NLMSG_DONE]
    assert NL.parse_addr(msgs[0][3]) == NL.Addr(7, "br-phy", ip("172.31.1.1"), 24)
    assert NL.parse_route(msgs[1][3]) == NL.Route(ip("172.31.1.0"), 24, 0, 7, ip("172.31.1.1"), 254, 1, 0)
    assert NL.parse_route(msgs[2][3]) == NL.Route(0, 0, ip("172.31.1.254"), 7, 0, 254, 1, 0)
    v6 = struct.pack("=BBBBI", socket.AF_INET6, 64, 0, 0, 1)
    assert NL.parse_addr(v6) is None


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_parser_never_overreads_garbage(data):
    try:
        for typ, _f, _s, payload in NL.parse_messages(data):
            if typ == NL.RTM_NEWADDR:
                NL.parse_addr(payload)
            else:
                NL.parse_route(payload)
    except NL.NetlinkError:
        pass


@given(st.lists(st.tuples(st.integers(1, 2**31), st.ip_addresses(v=4), st.integers(0, 32),
                          st.text("abcdefgh-0123", min_size=1, max_size=15)), max_size=8),
       st.lists(st.tuples(st.ip_addresses(v=4), st.integers(0, 32), st.integers(1, 2**31),
                          st.one_of(st.none(), st.ip_addresses(v=4))), max_size=8))
@settings(max_examples=100, deadline=None)
def test_parser_round_trip(addrs, routes):
    data = b"".join(nlmsg(NL.RTM_NEWADDR, addr_msg(i, str(a), n, lbl)) for i, a, n, lbl in addrs)
    data += b"".join(nlmsg(NL.RTM_NEWROUTE, route_msg(str(d), n, o, str(g) if g else None))
                     for d, n, o, g in routes)
    msgs = NL.parse_messages(data)
    got_a = [NL.parse_addr(p) for t, _, _, p in msgs if t == NL.RTM_NEWADDR]
    got_r = [NL.parse_route(p) for t, _, _, p in msgs if t == NL.RTM_NEWROUTE]
    assert got_a == [NL.Addr(i, lbl, int(a), n) for i, a, n, lbl in addrs]
    assert [(r.dst, r.plen, r.oif, r.gateway) for r in got_r] == \
        [(int(d) if n else 0, n, o, int(g) if g else 0) for d, n, o, g in routes]


def test_live_dump_sees_loopback():
    addrs = NL.dump_addrs()
    assert any(a.name == "lo" and a.address == ip("127.0.0.1") for a in addrs)
    assert any(r.table == NL.RT_TABLE_LOCAL for r in NL.dump_routes())


# --- vxlan options ----------------------------------------------------------------
@pytest.mark.parametrize("opts,err", [
    ({}, "vx0: vxlan type requires valid 'remote_ip' argument"),
    ({"remote_ip": "1.2.3"}, "vx0: bad vxlan 'remote_ip'"),
    ({"remote_ip": "224.0.0.1"}, "vx0: multicast remote_ip=224.0.0.1 not allowed"),
    ({"remote_ip": "1.2.3.4", "bogus": "1"}, "vx0: unknown vxlan argument 'bogus'"),
    ({"remote_ip": "1.2.3.4", "key": "x"}, "vx0: bad vxlan key 'x'"),
    ({"remote_ip": "1.2.3.4", "tos": "256"}, "vx0: invalid TOS 256"),
    ({"remote_ip": "1.2.3.4", "ttl": "0"}, "vx0: invalid TTL 0"),
    ({"remote_ip": "1.2.3.4", "dst_port": "0"}, "vx0: bad vxlan 'dst_port' 0"),
])
def test_vxlan_option_errors(opts, err):
    with pytest.raises(PortError) as e:
        parse_options("vx0", opts)
    assert str(e.value) == err


def test_vxlan_options():
    c = parse_options("vx0", {"remote_ip": "flow", "key": "flow", "local_ip": "10.0.0.1",
                              "dst_port": "8472", "tos": "0x10", "ttl": "9", "df_default": "false"})
    assert c.remote_ip is None and c.in_key is None and c.out_key is None
    assert (c.local_ip, c.dst_port, c.tos, c.ttl, c.df) == (ip("10.0.0.1"), 8472, 16, 9, False)
    c = parse_options("vx0", {"remote_ip": "1.2.3.4", "in_key": "5", "out_key": "6"})
    assert (c.remote_ip, c.in_key, c.out_key, c.dst_port, c.ttl, c.df) == (ip("1.2.3.4"), 5, 6, 4789, 64, True)


# --- notifications (netlink.Monitor) ------------------------------------------------
_MONITOR = """
import select, sys
from pyvswitch.vswitchd import netlink as NL
m = NL.Monitor()
print("ready", flush=True)
sys.stdin.readline()
seen = set()
while select.select([m], [], [], 2.0)[0]:
    seen |= m.drain()
print(",".join(sorted(seen)), flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a network namespace needs root")
def test_monitor_reports_link_address_and_route_changes():
    """A Monitor in a namespace of its own hears a veth come up and get an
    address (which adds a route): the daemon's wake-ups."""
    ns = f"pvnl-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", _MONITOR],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "ready"
            for cmd in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                        ["link", "set", "v0", "up"], ["addr", "add", "10.9.8.7/24", "dev", "v0"]):
                subprocess.run(["ip", "-n", ns] + cmd, check=True)
            out, _ = p.communicate("go\n", timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        assert set(out.strip().split(",")) == {"addr", "link", "route"}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)

