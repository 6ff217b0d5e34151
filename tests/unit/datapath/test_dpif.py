"""End to end on dummy ports: inject frames, check captures, stats and flows."""

import threading
import time

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from pyvswitch.core.jit import JIT
from pyvswitch.datapath import layout as L
from pyvswitch.datapath.dpif import Dpif
from pyvswitch.ports.dummy import DummyPort

from .conftest import IN_PORT_MASK, Capture, wait_for

FRAME = bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
              / UDP(sport=1, dport=2) / (b"x" * 18))


def one_to_two(keys, in_ports, packets):
    return [([("output", 2)], IN_PORT_MASK) if ip == 1 else ([], IN_PORT_MASK) for ip in in_ports]


def flood(keys, in_ports, packets):
    return [([("output", p) for p in (1, 2, 3) if p != ip], IN_PORT_MASK) for ip in in_ports]


def test_forward_then_megaflow_hits(switch):
    dp, ports = switch
    calls = []

    def handler(keys, in_ports, packets):
        calls.append((keys.copy(), list(in_ports), packets))
        return one_to_two(keys, in_ports, packets)

    dp.set_upcall_handler(handler)
    cap = Capture(ports[2])
    ports[1].inject(FRAME)
    assert cap.wait(1) == [FRAME]
    assert L.get_field(calls[0][0][0], "in_port") == 1 and calls[0][2] == [FRAME]
    assert L.get_field(calls[0][0][0], "dl_type") == 0x0800
    for _ in range(10):
        ports[1].inject(FRAME)
    assert len(cap.wait(11)) == 11
    s = dp.pmd_stats()[dp.pmds[0].core]
    assert s["packets"] == 11 and s["upcall_ok"] == 1 and len(calls) == 1
    assert s["emc_hits"] + s["megaflow_hits"] == 10 and s["megaflow_hits"] >= 1
    text = dp.pmd_stats_show()
    assert "  packets received: 11\n" in text and "  miss with success upcall: 1\n" in text
    assert text.startswith(f"pmd thread numa_id 0 core_id {dp.pmds[0].core}:")
    flows = dp.flow_dump()
    assert len(flows) == 1 and flows[0].packets == 11 and flows[0].actions == [("output", 2)]
    assert flows[0].bytes == 11 * len(FRAME)
    line = dp.format_flows()
    assert line.startswith("recirc_id(0),in_port(1), packets:11, bytes:") and line.rstrip().endswith("actions:2")
    assert ports[3].capture() == []


def test_megaflow_without_emc(tmp_path):
    dp = Dpif("br-noemc", str(tmp_path), emc_insert_inv_prob=1 << 40)
    p1, p2 = DummyPort("a"), DummyPort("b")
    for p in (p1, p2):
        p.open()
        dp.add_port(p)
    try:
        dp.set_upcall_handler(one_to_two)
        cap = Capture(p2)
        for _ in range(5):
            p1.inject(FRAME)
        cap.wait(5)
        s = dp.pmd_stats()[dp.pmds[0].core]
        assert s["emc_hits"] == 0 and s["megaflow_hits"] + s["upcall_ok"] == 5
    finally:
        dp.close()


def test_flood_and_vlan_actions(switch):
    dp, ports = switch
    dp.set_upcall_handler(flood)
    caps = {n: Capture(ports[n]) for n in (1, 2, 3)}
    ports[2].inject(FRAME)
    assert caps[1].wait(1) == [FRAME] and caps[3].wait(1) == [FRAME]
    assert caps[2].frames == []
    tagged = bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / Dot1Q(vlan=10) / IP() / UDP())
    dp.flow_flush()
    dp.set_upcall_handler(lambda k, i, p: [([("pop_vlan",), ("output", 1), ("push_vlan", 0x1000 | 20),
                                             ("output", 3)], None)] * len(p))
    ports[2].inject(tagged)
    out1, out3 = caps[1].wait(2)[1], caps[3].wait(2)[1]
    assert out1 == bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / IP() / UDP())
    assert Ether(out3)[Dot1Q].vlan == 20 and len(out3) == len(tagged)
    assert Ether(out3)[Dot1Q].payload == Ether(tagged)[Dot1Q].payload
    assert dp.flow_dump() == []                        # mask None: nothing installed


def test_mask_none_executes_once_and_failed_upcalls(switch):
    dp, ports = switch
    dp.set_upcall_handler(lambda k, i, p: [([("output", 3)], None)] * len(p))
    cap = Capture(ports[3])
    ports[1].inject(FRAME)
    ports[1].inject(FRAME)
    assert len(cap.wait(2)) == 2
    assert dp.flow_dump() == []
    dp.set_upcall_handler(lambda k, i, p: None)
    ports[1].inject(FRAME)
    wait_for(lambda: dp.pmd_stats()[dp.pmds[0].core]["upcall_fail"] == 1)
    assert "  miss with failed upcall: 1\n" in dp.pmd_stats_show()


def test_flow_flush_makes_next_packet_upcall(switch):
    dp, ports = switch
    n = []
    dp.set_upcall_handler(lambda k, i, p: n.append(1) or one_to_two(k, i, p))
    cap = Capture(ports[2])
    ports[1].inject(FRAME)
    cap.wait(1)
    ports[1].inject(FRAME)
    cap.wait(2)
    assert len(n) == 1
    dp.flow_flush()
    assert dp.flow_dump() == []
    ports[1].inject(FRAME)
    assert len(cap.wait(3)) == 3 and len(n) == 2
    assert len(dp.flow_dump()) == 1
    assert dp.flow_del(L.pack_key({"in_port": 1}), IN_PORT_MASK) == 1
    assert dp.flow_dump() == []


def test_flow_put_revalidate_and_stats(switch):
    dp, ports = switch
    dp.flow_put(L.pack_key({"in_port": 1}), IN_PORT_MASK, [("output", 2), ("output", 3)])
    c2, c3 = Capture(ports[2]), Capture(ports[3])
    for _ in range(3):
        ports[1].inject(FRAME)
    assert len(c2.wait(3)) == 3 and len(c3.wait(3)) == 3
    st = dp.port_stats(1)
    assert st["rx_packets"] == 3 and st["rx_bytes"] == 3 * len(FRAME)
    assert dp.port_stats(2)["tx_packets"] == 3
    kept, changed, deleted = dp.revalidate(lambda k, m, a: ([("output", 3)], m))
    assert (kept, changed, deleted) == (0, 1, 0)
    ports[1].inject(FRAME)
    c3.wait(4)
    assert len(c2.wait(3, timeout=0.1)) == 3 and len(c3.frames) == 4
    assert dp.revalidate(lambda k, m, a: None) == (0, 0, 1) and dp.flow_dump() == []


def test_userspace_action_and_execute(switch):
    dp, ports = switch
    got = []
    dp.set_userspace_handler(lambda key, in_port, pkt, arg: got.append((in_port, pkt, arg)))
    dp.set_upcall_handler(lambda k, i, p: [([("userspace", 7), ("output", 2)], IN_PORT_MASK)] * len(p))
    cap = Capture(ports[2])
    ports[1].inject(FRAME)
    ports[1].inject(FRAME)
    cap.wait(2)
    wait_for(lambda: len(got) == 2)
    assert got == [(1, FRAME, 7), (1, FRAME, 7)]
    c3 = Capture(ports[3])
    assert dp.execute(FRAME, [("output", 3)], in_port=0)
    assert c3.wait(1) == [FRAME]


def test_del_port_and_rxq_show(switch):
    dp, ports = switch
    text = dp.rxq_show()
    assert text.startswith(f"pmd thread numa_id 0 core_id {dp.pmds[0].core}:\n  isolated : false\n")
    assert "  port: p1 " in text and "queue-id:  0 (enabled)   pmd usage:" in text
    dp.set_upcall_handler(one_to_two)
    dp.del_port(2)
    assert "p2" not in dp.rxq_show()
    ports[1].inject(FRAME)
    wait_for(lambda: dp.pmd_stats()[dp.pmds[0].core]["packets"] == 1)
    time.sleep(0.05)
    assert ports[2].capture() == []


def test_pmd_stops_cleanly(tmp_path):
    dp = Dpif("br-stop", str(tmp_path))
    threads = [p._thread for p in dp.pmds]
    assert all(t.is_alive() for t in threads)
    dp.close()
    assert not any(t.is_alive() for t in threads)


def _cpu_ticks(tid):
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])          # utime + stime


@pytest.mark.skipif(not JIT, reason="measures the compiled PMD loop")
def test_idle_pmd_uses_little_cpu(switch):
    import os
    dp, ports = switch
    tid = dp.pmds[0]._thread.native_id
    time.sleep(0.5)                                    # compiled and settled
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), _cpu_ticks(tid)
    time.sleep(2.0)
    t1, c1 = time.monotonic(), _cpu_ticks(tid)
    share = (c1 - c0) / hz / (t1 - t0)
    assert share < 0.05, f"idle PMD used {share:.1%} of a core"


def test_a_port_refused_for_want_of_io_rows_changes_nothing(tmp_path, monkeypatch):
    """A PMD has room for MAX_ROWS io rows (its rx queues + a tx row per
    port; 16 here). The port that does not fit is refused with a clear error;
    the datapath keeps no trace of it (no stale entry holding its memory and
    fds, as a retry loop would pile up), counters are not counted twice, and
    the ports already there keep forwarding."""
    from pyvswitch.datapath import pmd as P
    monkeypatch.setattr(P, "MAX_ROWS", 16)
    dp, ports = Dpif("br-rows", str(tmp_path)), {}
    for name in ("p1", "p2", "p3"):
        p = DummyPort(name)
        p.open()
        ports[dp.add_port(p)] = p
    assert wait_for(lambda: any(s["iterations"] > 0 for s in dp.pmd_stats().values()), timeout=900)
    dp.set_upcall_handler(one_to_two)
    cap = Capture(ports[2])
    ports[1].inject(FRAME)
    assert cap.wait(1) == [FRAME]
    before = dp.port_stats(1)
    extra, refused = [], []
    for i in range(100):
        p = DummyPort(f"x{i}")
        p.open()
        try:
            dp.add_port(p)
            extra.append(p)
        except ValueError as e:
            refused.append(str(e))
            p.close()
            if len(refused) == 3:          # refused again and again: nothing piles up
                break
    assert len(refused) == 3 and "io rows needed, at most" in refused[0]
    assert set(dp.ports) == {1, 2, 3} | {e for e in dp.ports if dp.ports[e].port in extra}
    assert len(dp.ports) == 3 + len(extra)
    assert dp.port_stats(1) == before           # folded once, not once per attempt
    ports[1].inject(FRAME)
    assert len(cap.wait(2)) == 2
    dp.close()
    for p in extra + list(ports.values()):
        p.close()


def test_revalidate_only_the_flows_of_changed_macs(switch):
    """MAC learning changes one fdb entry: only the megaflows matching that
    MAC exactly as dl_dst or dl_src (and any that do not match dl_dst
    exactly) are visited; the selected flows are handed to `before` first."""
    dp, _ = switch
    mac = lambda i: 0x020000000000 + i                       # noqa: E731
    dst_mask = L.pack_key({"in_port": 0xFFFF, "dl_dst": (1 << 48) - 1, "dl_src": (1 << 48) - 1})
    for i in range(1, 6):
        dp.flow_put(L.pack_key({"in_port": 1, "dl_dst": mac(i), "dl_src": mac(100 + i)}), dst_mask,
                    [("output", 2)])
    dp.flow_put(L.pack_key({"in_port": 3}), IN_PORT_MASK, [("output", 1)])   # no dl_dst: kept in
    visited, handed = [], []

    def fn(k, m, a):
        visited.append((L.get_field(k, "in_port"), L.get_field(k, "dl_dst"), L.get_field(k, "dl_src")))
        return a, m
    assert dp.revalidate(fn, macs={mac(2), mac(104)}, before=handed.extend) == (3, 0, 0)
    assert sorted(visited) == [(1, mac(2), mac(102)), (1, mac(4), mac(104)), (3, 0, 0)]
    ((pmd_id, keys, masks, pk, by, _, gone),) = handed   # one PMD: the selection's counters
    assert not gone.any()
    assert pmd_id == dp.pmds[0].pmd_id and len(keys) == len(masks) == len(pk) == len(by) == 3
    assert sorted((L.get_field(k, "in_port"), L.get_field(k, "dl_dst"), L.get_field(k, "dl_src"))
                  for k in keys) == sorted(visited)
    visited.clear()
    assert dp.revalidate(fn) == (6, 0, 0) and len(visited) == 6    # no macs: every flow


def test_flow_counters_match_the_dump(switch):
    """The revalidator's array copy agrees with flow_dump, flow for flow."""
    dp, ports = switch
    dp.set_upcall_handler(one_to_two)
    cap = Capture(ports[2])
    for _ in range(4):
        ports[1].inject(FRAME)
    cap.wait(4)
    dp.flow_put(L.pack_key({"in_port": 3}), IN_PORT_MASK, [("output", 1)])
    ((pmd_id, keys, masks, pk, by, used, gone),) = dp.flow_counters()
    assert not gone.any() and (used > 0).all()       # hit, or installed: both have a time
    got = sorted((k.tobytes(), m.tobytes(), int(p), int(b)) for k, m, p, b in zip(keys, masks, pk, by))
    want = sorted((f.key.tobytes(), f.mask.tobytes(), f.packets, f.bytes) for f in dp.flow_dump())
    assert got == want and pmd_id == dp.pmds[0].pmd_id
    assert sorted(int(p) for p in pk) == [0, 4]


def test_idle_megaflows_expire_with_their_final_counters(switch):
    """flow_counters(expire_before) deletes the flows neither hit nor
    installed since the cutoff, in the same park as the copy: the counters
    it returns are their last ones. The next packet upcalls again."""
    dp, ports = switch
    calls = []

    def handler(keys, in_ports, packets):
        calls.append(list(in_ports))
        return one_to_two(keys, in_ports, packets)
    dp.set_upcall_handler(handler)
    cap = Capture(ports[2])
    for _ in range(3):
        ports[1].inject(FRAME)
    cap.wait(3)
    time.sleep(0.01)
    middle = dp.clock.now_ns()
    dp.flow_put(L.pack_key({"in_port": 3}), IN_PORT_MASK, [("output", 1)])   # installed after
    seen = []

    def cutoff(n_live, capacity):
        seen.append((n_live, capacity))
        return middle
    ((_, keys, masks, pk, by, used, gone),) = dp.flow_counters(expire_before=cutoff)
    assert seen == [(2, dp.pmds[0].max_flows)]
    assert sorted(zip(gone.tolist(), pk.tolist())) == [(False, 0), (True, 3)]
    assert [L.get_field(f.key, "in_port") for f in dp.flow_dump()] == [3]
    ports[1].inject(FRAME)
    cap.wait(4)
    assert wait_for(lambda: len(calls) == 2)          # upcalled again, reinstalled
    assert sorted(f.packets for f in dp.flow_dump()) == [0, 1]
    # a flow that keeps its traffic survives a cutoff older than its last hit
    ((*_, gone),) = dp.flow_counters(expire_before=lambda n, c: middle)
    assert not gone.any() and len(dp.flow_dump()) == 2


def test_a_burst_of_new_flows_on_every_port_loses_nothing(tmp_path):
    """12 ports each bring 32 frames of a new flow in one poll round: 384
    misses, more than the upcall queue holds. The PMD stops taking packets
    while the queue could overflow (they wait in the ports' rings, as in a
    guest's) instead of dropping them: a DPDK guest in io forwarding mode
    never resends what a switch drops at start-up."""
    dp = Dpif("br-burst", str(tmp_path))
    ports = {}
    try:
        for i in range(13):
            p = DummyPort(f"b{i}")
            p.open()
            ports[dp.add_port(p)] = p
        sink = max(ports)
        dp.set_upcall_handler(lambda keys, in_ports, packets:
                              [([("output", sink)], IN_PORT_MASK) for _ in in_ports])
        assert wait_for(lambda: any(s["iterations"] > 0 for s in dp.pmd_stats().values()), timeout=900)
        pmd = dp.pmds[0]
        pmd.park()
        frames = {}
        for dp_port, port in ports.items():
            if dp_port == sink:
                continue
            for k in range(32):
                f = bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / IP()
                          / UDP(sport=dp_port, dport=k) / (b"z" * 18))
                port.inject(f)
                frames[f] = True
        pmd.release()
        cap = Capture(ports[sink])
        got = cap.wait(len(frames), timeout=60)
        s = dp.pmd_stats()[pmd.core]
        assert s["lost"] == 0 and s["upcall_fail"] == 0
        assert sorted(got) == sorted(frames)
    finally:
        dp.close()
        for p in ports.values():
            p.close()
