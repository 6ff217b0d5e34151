"""The ct datapath action: track, recirculate, match ct_state on the second pass."""

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pyvswitch.conntrack import table as CT
from pyvswitch.datapath import layout as L

from .conftest import Capture

M = L.pack_key({"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF})
M_CT = L.pack_key({"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF, "ct_state": 0xFF, "ct_zone": 0xFFFF,
                   "ct_mark": 0xFFFFFFFF})
E1 = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
E2 = Ether(src="00:00:00:00:00:02", dst="00:00:00:00:00:01")


def firewall(seen):
    """Port 1 may open connections to port 2; port 2 only answers (a stateful firewall)."""
    def handler(keys, in_ports, packets):
        out = []
        for key in keys:
            rid, port = L.get_field(key, "recirc_id"), L.get_field(key, "in_port")
            st = L.get_field(key, "ct_state")
            seen.append((rid, port, st, L.get_field(key, "ct_zone"), L.get_field(key, "ct_mark")))
            if rid == 0:
                commit = port == 1
                mark = (0x77, 0xFF) if commit else None
                out.append(([("ct", 9, commit, mark, None), ("recirc", 5)], M))
            elif st & CT.CS_EST or (port == 1 and st & CT.CS_NEW):
                out.append(([("output", 3 - port)], M_CT))
            else:
                out.append(([], M_CT))
        return out
    return handler


def test_stateful_firewall_through_recirculation(switch):
    dp, ports = switch
    seen = []
    dp.set_upcall_handler(firewall(seen))
    c1, c2 = Capture(ports[1]), Capture(ports[2])
    syn = bytes(E1 / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=80, flags="S", seq=1))
    sa = bytes(E2 / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=1000, flags="SA", seq=7, ack=2))
    ack = bytes(E1 / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=80, flags="A", seq=2, ack=8))
    data = bytes(E2 / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=1000, flags="PA", seq=8, ack=2)
                 / b"hi")
    rogue = bytes(E2 / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=81, dport=1000, flags="S", seq=1))
    ports[1].inject(syn)
    assert c2.wait(1) == [syn]
    ports[2].inject(sa)
    assert c1.wait(1) == [sa]
    ports[1].inject(ack)
    assert c2.wait(2)[1] == ack
    ports[2].inject(rogue)                       # new connection from the "outside": dropped
    ports[2].inject(data)                        # the tracked connection's reply passes
    assert c1.wait(2) == [sa, data]
    # second passes carried zone 9, the committed mark and the state
    second = [s for s in seen if s[0] == 5]
    assert (5, 1, CT.CS_TRK | CT.CS_NEW, 9, 0x77) in second
    assert (5, 2, CT.CS_TRK | CT.CS_EST | CT.CS_RPL, 9, 0x77) in second
    assert any(s[1] == 2 and s[2] == CT.CS_TRK | CT.CS_NEW for s in second)       # the rogue SYN
    text = dp.ct_dump()
    assert text == ("tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=80),reply=(src=10.0.0.2,"
                    "dst=10.0.0.1,sport=80,dport=1000),zone=9,mark=119,protoinfo=(state=ESTABLISHED)\n")
    assert dp.ct_dump(zone=3) == "" and "Total: 1" in dp.ct_stats()
    s = dp.pmd_stats()[dp.pmds[0].core]
    assert s["recirculations"] >= 5
    assert dp.ct_flush(zone=9) == 1 and dp.ct_dump() == ""


def test_maxconns_and_sweep(switch):
    dp, ports = switch
    dp.set_upcall_handler(lambda keys, ips, pk: [([("ct", 0, True, None, None), ("output", 2)], M)
                                                 for _ in keys])
    dp.ct_set_maxconns(2)
    cap = Capture(ports[2])
    for sport in range(4):
        ports[1].inject(bytes(E1 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport + 1, dport=53)))
    cap.wait(4)
    assert dp.ct_dump().count("\n") == 2 and dp.ct.ctl[CT.G_FULL] == 2
    try:
        dp.ct_set_maxconns(1 << 30)
        raise AssertionError("accepted a limit above the capacity")
    except ValueError:
        pass
    assert dp.ct_sweep() == 0                     # nothing expired yet


def test_committed_label_and_mark_reach_the_second_pass(switch):
    dp, ports = switch
    seen = []

    def handler(keys, in_ports, packets):
        out = []
        for key in keys:
            rid = L.get_field(key, "recirc_id")
            seen.append((rid, L.get_field(key, "ct_mark"),
                         L.get_field(key, "ct_label_hi") << 64 | L.get_field(key, "ct_label_lo")))
            if rid == 0:
                out.append(([("ct", 3, True, (0x5, 0xFF), ((1 << 100) | 7, (1 << 128) - 1)), ("recirc", 8)], M))
            else:
                out.append(([("ct_clear",), ("output", 2)], M))
        return out

    dp.set_upcall_handler(handler)
    cap = Capture(ports[2])
    ports[1].inject(bytes(E1 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=7, dport=8)))
    cap.wait(1)
    assert (8, 0x5, (1 << 100) | 7) in seen
    assert "labels=0x10000000000000000000000007" in dp.ct_dump()
