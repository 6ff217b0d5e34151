"""dump-tables lookup_count / matched_count as Open vSwitch counts them: every
table a translation looks into counts the packets of the resulting megaflow
as a lookup, and as a match when a rule matched (resubmits and goto_table
included); credited through xlate's tables_hit, like rules."""

from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate

MAC1, MAC2 = 0x0A0000000001, 0x0A0000000002


def pkt(dp, **kw):
    d = {"in_port": dp, "dl_src": MAC1, "dl_dst": MAC2, "dl_type": 0x0800}
    d.update(kw)
    return d


def credit(ofp, res, packets, nbytes=100):
    for c in res.rules_hit + res.tables_hit:
        ofp.credit(c, packets, nbytes * packets, 1.0)


def test_lookups_and_matches_per_table():
    ofp = Ofproto("br0")
    for i in (1, 2):
        ofp.add_port(f"p{i}", dp_port=10 + i)
    ofp.del_flows("")
    ofp.add_flow("table=0,in_port=1,actions=resubmit(,1),resubmit(,2)")
    ofp.add_flow("table=1,priority=5,udp,tp_dst=9,actions=drop")      # never matches
    ofp.add_flow("table=2,actions=output:2")
    r = xlate(ofp, pkt(11), 0.0)
    assert [(id(c)) for c in r.tables_hit] == [
        id(ofp.table_counter(0, True)), id(ofp.table_counter(1, False)),
        id(ofp.table_counter(2, True))]
    credit(ofp, r, 3)
    assert ofp.table_stats(0) == (1, 3, 3)
    assert ofp.table_stats(1) == (1, 3, 0)
    assert ofp.table_stats(2) == (1, 3, 3)
    r = xlate(ofp, pkt(12), 0.0)                 # in_port 2: table 0 misses, drop
    credit(ofp, r, 2)
    assert ofp.table_stats(0) == (1, 5, 3) and ofp.table_stats(1)[1] == 3
    assert ofp.table_stats(7) == (0, 0, 0)
