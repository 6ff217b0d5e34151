"""Connection tracking kernels on real packets built with scapy."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from pyvswitch.conntrack import table as CT
from pyvswitch.conntrack import tcp as T
from pyvswitch.datapath.kernels.parse import parse_frame
from pyvswitch.datapath.layout import KEY_WORDS

SEC = 1_000_000_000
A, B = "10.0.0.1", "10.0.0.2"
E = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")


class Ct:
    def __init__(self, size=64):
        self.t = CT.new_table(size)
        self.now = 1000 * SEC
        self.out = np.zeros(5, np.int64)
        self.q = np.zeros(CT.T_WORDS, np.uint64)
        self.key = np.zeros(KEY_WORDS, np.uint64)

    def __call__(self, pkt, zone=0, commit=True, dt=0.001):
        self.now += int(dt * SEC)
        fr = bytes(pkt)
        b = np.zeros(128 + len(fr), np.uint8)
        b[128:] = np.frombuffer(fr, np.uint8)
        parse_frame(b, 128, len(fr), 1, self.key)
        return CT.ct_process(self.t, b, 128, len(fr), self.key, zone, commit, self.now, self.out, self.q)

    def state(self):
        return T.STATE_NAMES[self.t.conn[self.out[0], CT.C_PROTO_STATE]]


NEW, EST, RPL, REL, INV, TRK = CT.CS_NEW, CT.CS_EST, CT.CS_RPL, CT.CS_REL, CT.CS_INV, CT.CS_TRK


def tcp(src, dst, sport, dport, flags, seq, ack=0, load=b"", window=8192):
    return E / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                          window=window) / load


def handshake(ct, zone=0):
    assert ct(tcp(A, B, 1234, 80, "S", 100), zone) == TRK | NEW
    assert ct.state() == "SYN_SENT"
    assert ct(tcp(B, A, 80, 1234, "SA", 500, 101), zone) == TRK | EST | RPL
    assert ct.state() == "SYN_RECV"
    assert ct(tcp(A, B, 1234, 80, "A", 101, 501), zone) == TRK | EST
    assert ct.state() == "ESTABLISHED"


def test_tcp_life():
    ct = Ct()
    handshake(ct)
    assert ct(tcp(A, B, 1234, 80, "PA", 101, 501, b"x" * 100)) == TRK | EST
    assert ct(tcp(B, A, 80, 1234, "PA", 501, 201, b"y" * 50)) == TRK | EST | RPL
    assert ct(tcp(A, B, 1234, 80, "FA", 201, 551)) == TRK | EST and ct.state() == "FIN_WAIT_1"
    assert ct(tcp(B, A, 80, 1234, "FA", 551, 202)) == TRK | EST | RPL and ct.state() == "LAST_ACK"
    assert ct(tcp(A, B, 1234, 80, "A", 202, 552)) == TRK | EST and ct.state() == "TIME_WAIT"
    c = ct.t.conn[ct.out[0]]
    assert c[CT.C_PKTS0] == 5 and c[CT.C_PKTS1] == 3
    # a new SYN on the closed connection starts a new one
    assert ct(tcp(A, B, 1234, 80, "S", 9000)) == TRK | NEW and ct.state() == "SYN_SENT"
    assert ct.t.ctl[CT.G_N] == 1


def test_tcp_invalid_segments():
    ct = Ct()
    assert ct(tcp(A, B, 1, 2, "A", 5)) == TRK | INV                 # no connection, not a SYN
    assert ct(tcp(A, B, 1, 2, "SF", 5)) == TRK | INV
    assert ct(tcp(B, A, 2, 1, "SA", 5, 6)) == TRK | INV             # SYN+ACK out of nowhere
    handshake(ct)
    row = ct.out[0]
    assert ct(tcp(A, B, 1234, 80, "A", 101 + 5_000_000, 501)) == TRK | INV    # far out of window
    assert ct(tcp(B, A, 80, 1234, "A", 501, 99_999)) == TRK | INV | RPL       # acks unsent data
    assert ct(tcp(A, B, 1234, 80, "", 101)) == TRK | INV                       # no flags
    assert ct.out[0] == -1                                                     # no connection for it
    assert T.STATE_NAMES[ct.t.conn[row, CT.C_PROTO_STATE]] == "ESTABLISHED" and ct.t.ctl[CT.G_INVALID] == 6
    ct.t.ctl[CT.G_LIBERAL] = 1
    assert ct(tcp(A, B, 1234, 80, "A", 101 + 5_000_000, 501)) == TRK | EST


def test_rst_closes():
    ct = Ct()
    handshake(ct)
    assert ct(tcp(B, A, 80, 1234, "R", 501)) == TRK | EST | RPL and ct.state() == "CLOSED"


def test_uncommitted_packets_create_nothing():
    ct = Ct()
    assert ct(tcp(A, B, 1234, 80, "S", 100), commit=False) == TRK | NEW
    assert ct(tcp(A, B, 1234, 80, "S", 100), commit=False) == TRK | NEW
    assert ct.t.ctl[CT.G_N] == 0
    assert ct(tcp(B, A, 80, 1234, "SA", 500, 101)) == TRK | INV


def test_udp_and_timeouts():
    ct = Ct()
    u = E / IP(src=A, dst=B) / UDP(sport=5000, dport=53) / b"q"
    r = E / IP(src=B, dst=A) / UDP(sport=53, dport=5000) / b"a"
    assert ct(u) == TRK | NEW
    assert ct(u) == TRK | NEW                     # still one way only
    assert ct(r) == TRK | EST | RPL
    assert ct(u) == TRK | EST
    assert ct(u, dt=29) == TRK | EST              # udp_multiple 30 s, refreshed by each packet
    assert ct(u, dt=31) == TRK | NEW              # expired: a new connection
    ct.t.timeouts[CT.TO_UDP_SINGLE] = 5 * SEC
    assert ct(u, dt=6) == TRK | NEW


def test_icmp_echo_and_related_error():
    ct = Ct()
    assert ct(E / IP(src=A, dst=B) / ICMP(type=8, id=7, seq=1)) == TRK | NEW
    assert ct(E / IP(src=B, dst=A) / ICMP(type=0, id=7, seq=1)) == TRK | EST | RPL
    assert ct(E / IP(src=B, dst=A) / ICMP(type=0, id=8, seq=1)) == TRK | INV    # reply, no request
    u = E / IP(src=A, dst=B) / UDP(sport=5000, dport=9) / b"q"
    assert ct(u) == TRK | NEW
    err = E / IP(src=B, dst=A) / ICMP(type=3, code=3) / IPerror(src=A, dst=B) / UDPerror(sport=5000, dport=9)
    assert ct(err, commit=False) == TRK | REL
    other = E / IP(src=B, dst=A) / ICMP(type=3, code=3) / IPerror(src=A, dst=B) / UDPerror(sport=5001, dport=9)
    assert ct(other, commit=False) == TRK | INV


def test_zones_are_separate_and_limits_count():
    ct = Ct(size=4)
    u = E / IP(src=A, dst=B) / UDP(sport=1, dport=2)
    assert ct(u, zone=1) == TRK | NEW and ct(u, zone=2) == TRK | NEW
    assert ct(E / IP(src=B, dst=A) / UDP(sport=2, dport=1), zone=2) == TRK | EST | RPL
    assert ct.t.zone_count[1] == 1 and ct.t.zone_count[2] == 1
    ct.t.zone_limit[3] = 1
    assert ct(u, zone=3) == TRK | NEW
    assert ct(E / IP(src=A, dst=B) / UDP(sport=9, dport=2), zone=3) == TRK | INV
    assert ct.t.ctl[CT.G_ZONE_FULL] == 1
    assert ct(E / IP(src=A, dst=B) / UDP(sport=10, dport=2), zone=4) == TRK | NEW    # 4th: table full now
    assert ct(E / IP(src=A, dst=B) / UDP(sport=11, dport=2), zone=4) == TRK | INV
    assert ct.t.ctl[CT.G_FULL] == 1
    assert ct(E / IP(src=B, dst=A) / UDP(sport=2, dport=1), zone=1) == TRK | EST | RPL   # old ones go on


def test_sweep_flush_delete_and_mark():
    ct = Ct(size=8)
    for sport in range(5):
        ct(E / IP(src=A, dst=B) / UDP(sport=sport + 1, dport=2), zone=sport % 2)
    row = ct.out[0]
    CT.ct_set_mark(ct.t, row, 0xAB, 0xFF)
    CT.ct_set_label(ct.t, row, 1, 2, -1, -1)
    ct(E / IP(src=A, dst=B) / UDP(sport=5, dport=2), zone=0)
    assert ct.out[1] == 0xAB and (ct.out[2], ct.out[3]) == (1, 2)
    assert CT.ct_flush(ct.t, 1) == 2 and ct.t.ctl[CT.G_N] == 3
    assert CT.ct_delete(ct.t, row) == 1 and CT.ct_delete(ct.t, row) == 0
    assert CT.ct_sweep(ct.t, ct.now + 61 * SEC, 100) == 2 and ct.t.ctl[CT.G_N] == 0
    for sport in range(8):                  # every row reusable, index still consistent
        assert ct(E / IP(src=A, dst=B) / UDP(sport=100 + sport, dport=2)) == TRK | NEW
    assert ct.t.ctl[CT.G_N] == 8


def test_ipv6_tcp():
    ct = Ct()
    e6 = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
    assert ct(e6 / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=1, dport=2, flags="S", seq=1)) == TRK | NEW
    assert ct(e6 / IPv6(src="2001:db8::2", dst="2001:db8::1") / TCP(sport=2, dport=1, flags="SA", seq=9, ack=2)) \
        == TRK | EST | RPL


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.booleans())
def test_garbage_never_crashes(data, commit):
    ct = Ct(size=8)
    fr = bytes(E / IP(src=A, dst=B, proto=6)) [:34] + data
    s = ct(Ether(fr), commit=commit)
    assert s & TRK
    s = ct(data, commit=commit) if len(data) >= 14 else TRK
    assert s & TRK and ct.t.ctl[CT.G_N] <= 8


def test_dump_in_ovs_layout():
    from pyvswitch.conntrack import dump as D
    ct = Ct()
    handshake(ct, zone=5)
    CT.ct_set_mark(ct.t, ct.out[0], 171, 0xFFFFFFFF)
    ct(E / IP(src=A, dst=B) / ICMP(type=8, id=7, seq=1))
    ct(E / IP(src=A, dst=B) / UDP(sport=5000, dport=53))
    text = D.dump(ct.t, now=ct.now)
    assert text.splitlines() == [
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,"
        "sport=80,dport=1234),zone=5,mark=171,protoinfo=(state=ESTABLISHED)",
        "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=7,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,"
        "id=7,type=0,code=0)",
        "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,"
        "sport=53,dport=5000)"]
    assert D.dump(ct.t, zone=5, now=ct.now).count("\n") == 1
    assert "Total: 3" in D.stats(ct.t, ct.now) and "    TCP: 1" in D.stats(ct.t, ct.now)
    assert D.dump(ct.t, now=ct.now + 100 * SEC).count("\n") == 1        # UDP and ICMP expired
