"""The flows benchmark's pure parts: the rule set, the upcall rate, the report."""

from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.openflow.text import parse_flow
from pyvswitch.tools.bench import flows as B


def test_pipeline_has_exactly_n_rules_over_ten_tables():
    for n in (10, 57, 1000):
        lines = list(B.pipeline(n))
        assert len(lines) == n
        fms = [parse_flow(line, "add") for line in lines]
        assert {fm.table for fm in fms} == set(range(10))
        keys = {(fm.table, fm.priority, fm.match.key_mask()) for fm in fms}
        assert len(keys) == n          # no rule replaces another


def test_pipeline_walks_all_tables_to_port_2():
    ofp = Ofproto("br0")
    ofp.del_flows("")
    for line in B.pipeline(200):
        ofp.add_flow(line)
    assert len(list(ofp.rules())) == 200
    # a generator flow (source 10.0.0.3) hits its rule in every table
    flow = parse_flow("udp,nw_src=10.0.0.3,nw_dst=10.0.0.2", "dump").match.key_mask()[0]
    hit = [ofp.lookup(t, flow) for t in range(10)]
    assert all(r.priority == 100 for r in hit)
    assert [a.to_text() for a in hit[0].actions] == ["resubmit(,1)"]
    assert [a.to_text() for a in hit[-1].actions] == ["output:2"]
    miss = parse_flow("udp,nw_src=10.0.200.3", "dump").match.key_mask()[0]
    assert all(ofp.lookup(t, miss).priority == 0 for t in range(10))


def test_upcall_rate_uses_sending_time_while_every_frame_is_new():
    res = {"tx": 5000, "seconds": 2.0}
    assert B.upcall_rate(5000, res, flows=20000, samples=[]) == 2500
    # the generator wrapped around: the slope until 90 % of the flows
    res = {"tx": 50000, "seconds": 2.0}
    samples = [(0.0, 0), (1.0, 0), (2.0, 4000), (3.0, 9000), (4.0, 9500)]
    assert B.upcall_rate(9500, res, flows=10000, samples=samples) == 9000 / 2.0
    assert B.upcall_rate(0, res, flows=10000, samples=[(0.0, 0), (1.0, 0)]) is None


def test_report_renders_every_section():
    meta = {"command": "python -m pyvswitch.tools.bench.flows --quick", "date": "d",
            "elapsed_s": 60.0, "load_start": ["1", "2", "3"], "load_end": ["1", "2", "3"],
            "machine": {"nproc": 2}, "rawdir": "/tmp/x"}
    res = {"meta": meta,
           "install": [{"switch": "pyvswitch", "rules": 1000, "add_s": 1.0, "rules_per_s": 1000,
                        "bytes_per_rule": 2000, "del_s": 0.1, "installed": 1000}],
           "upcalls": {"flows": 100, "upcalls_per_s": 5000, "upcalls": 100, "seconds": 2,
                       "megaflows_after": 100},
           "forward": [{"rules": 1000, "rx_mpps": (0.9, 1.0, 1.1), "megaflows": 1000,
                        "runs": [{"upcalls": 0}]}]}
    md = B.render_md(res)
    assert "--quick" in md and "| pyvswitch | 1,000 |" in md
    assert "5,000 new megaflows per second" in md and "**1.000**" in md


def test_quick_and_full_defaults():
    a = B.parse_args(["--quick"])
    assert a.install == [20000] and a.forward == [1000, 10000]
    a = B.parse_args([])
    assert a.install == [100000, 1000000] and a.forward == [1000, 100000]
