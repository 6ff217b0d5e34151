"""Every match field the pipeline supports crosses the wire and comes back
(a field missing from the encoder's order was once silently dropped)."""

import pytest

from pyvswitch.openflow import oxm
from pyvswitch.openflow.text import parse_flow

MATCHES = ["ct_state=+trk+new,ip", "ct_state=-trk", "ct_zone=5", "ct_mark=0x11/0xff",
           "ct_label=0x1/0x1", "reg8=0x5", "reg15=0xffffffff/0xf", "pkt_mark=0x3",
           "tun_id=0x10", "metadata=0x5/0xff", "ip,nw_src=10.0.0.0/8,nw_dst=10.1.2.3",
           "tcp,tp_src=80,tp_dst=0x100/0xff00", "udp6,ipv6_src=2001:db8::/32",
           "arp,arp_op=2,arp_sha=00:00:00:00:00:01"]   # VLAN: named differently back, golden tests


@pytest.mark.parametrize("text", MATCHES)
@pytest.mark.parametrize("use_oxm", [True, False])
def test_match_round_trips(text, use_oxm):
    fm = parse_flow(text + ",actions=drop")
    wire = oxm.encode_fields(fm.match, oxm=use_oxm)
    back = oxm.decode_fields(wire)
    assert dict(back.items()) == dict(fm.match.items())
