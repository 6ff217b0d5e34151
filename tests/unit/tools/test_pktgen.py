"""pvs-pktgen / pvs-testpmd kernels and CLIs against our own vhost-user port
with a loop-back thread playing the switch's PMD (no daemon)."""

import json
import re
import struct
import threading
import time

import numpy as np
import pytest

from pyvswitch.ports.vhost import frontend_kernels as K
from pyvswitch.ports.vhost.driver import DriverMemory, Vring
from pyvswitch.ports.vhost.port import VhostUserClientPort, VhostUserPort
from pyvswitch.tools import pktgen, testpmd


def _csum_ok(hdr):
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def test_udp_frame_layout():
    f = testpmd.udp_frame(64, b"\x02" * 6, b"\x04" * 6, payload=b"abcd")
    assert len(f) == 64 and f[12:14] == b"\x08\x00" and f[23] == 17
    assert _csum_ok(f[14:34]) and f[42:46] == b"abcd"
    assert struct.unpack("!H", f[16:18])[0] == 50 and struct.unpack("!H", f[38:40])[0] == 30


def test_parse_vdev():
    assert testpmd.parse_vdev("net_virtio_user0,path=/s,queues=1,server=1") == ("/s", True, None)
    assert testpmd.parse_vdev("/x") == ("/x", False, None)
    assert testpmd.parse_vdev("path=/y,mac=02:00:00:00:00:09")[2] == bytes([2, 0, 0, 0, 0, 9])
    with pytest.raises(ValueError):
        testpmd.parse_vdev("server=1")


def test_pg_kernel_stamps_flows_and_checksums():
    """TX only, no back-end: the frames land in the TX ring with seq, TSC,
    flow-varied source IP / port and a valid IPv4 checksum."""
    g = DriverMemory(4 << 20)
    rx, tx = Vring(g, 64), Vring(g, 64)
    R = np.array([K.ring_row(rx), K.ring_row(tx)], np.int64)
    tmpl = g.alloc(4096)
    f = testpmd.udp_frame(80, b"\x02" * 6, b"\x04" * 6, payload=struct.pack("<I", K.MAGIC))
    g.mem[tmpl:tmpl + 80] = np.frombuffer(f, np.uint8)
    st = np.zeros(K.NGEN, np.int64)
    st[K.G_COUNT], st[K.G_FLOWS], st[K.G_TXON] = 10, 3, 1
    lat = np.zeros(16, np.int64)
    ids = np.zeros(32, np.int64)
    t0 = K.tsc()
    K.pg_rounds(g.mem, R, g.gpa, 1, 0, 32, 5, st, lat, tmpl, 80, ids.copy(), ids.copy(), ids)
    assert st[K.G_SENT] == 10 and R[1, K.AIDX] == 10
    for seq in range(10):
        o = tx.bufs + seq * tx.buf_size
        desc = struct.unpack_from("<QIHH", g.map, tx.desc + 16 * seq)
        assert desc[0] == g.gpa + o and desc[1] == 92
        fr = bytes(g.map[o + 12:o + 92])
        assert _csum_ok(fr[14:34])
        assert fr[28:30] == struct.pack("!H", seq % 3)
        assert struct.unpack("!H", fr[34:36])[0] == 1024 + seq % 3
        magic, sq, ts = struct.unpack_from("<IQQ", fr, 42)
        assert magic == K.MAGIC and sq == seq and ts >= t0


@pytest.fixture
def loop_port(tmp_path, vhost_loopback):
    lock = threading.RLock()
    port = VhostUserPort("vhu0", {"vhost-sock-dir": str(tmp_path)})
    port.quiesce = lambda: lock
    port.lock = lock
    port.open()
    loop = vhost_loopback(port)
    loop.start()
    yield port
    loop.stop = True
    loop.join(5)
    port.close()


def test_pktgen_cli_loopback(loop_port, capsys):
    rc = pktgen.main(["--tx", f"path={loop_port.path}", "--count", "3000", "--rate", "30000",
                      "--flows", "4", "--json", "--timeout", "10"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    res = json.loads(out.out.strip().splitlines()[-1])
    assert res["tx"] == 3000 and res["rx"] == 3000 and res["lost"] == 0
    assert 3000 < res["tx_pps"] < 45000                # paced: never above the rate asked
    lat = res["latency_ns"]
    assert lat["samples"] == 3000 and 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]


def test_testpmd_cli_txonly_loopback(loop_port, capsys):
    rc = testpmd.main(["--vdev", f"path={loop_port.path}", "--forward-mode=txonly",
                       "--duration", "1", "--stats-period", "0.5", "--timeout", "10"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "NIC statistics for port 0" in out.out and "Rx-pps:" in out.out
    tot = {int(p): (int(r), int(t)) for p, r, t in
           re.findall(r"Forward statistics for port (\d+).*?RX-packets:\s+(\d+)"
                                    r".*?TX-packets:\s+(\d+)", out.out, re.S)}
    rx, tx = tot[0]
    assert tx > 1000 and tx // 2 < rx <= tx           # the loop-back drops when our RX ring is full


@pytest.mark.parametrize("mode", ["io", "mac", "macswap"])
def test_testpmd_cli_forwarding_modes_loopback(loop_port, capsys, mode):
    """One port paired with itself: --tx-first keeps a burst circulating."""
    rc = testpmd.main(["--vdev", f"path={loop_port.path},mac=02:00:00:00:00:07",
                       f"--forward-mode={mode}", "--tx-first", "--eth-peer", "0,02:00:00:00:00:08",
                       "--duration", "0.5", "--timeout", "10"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    rx, tx = [int(x) for x in re.search(r"RX-packets:\s+(\d+).*?TX-packets:\s+(\d+)", out.out,
                                        re.S).groups()]
    assert rx > 1000 and tx >= rx


def test_fwd_kernel_mac_rewrites():
    """mac / macswap on frames already in an RX ring (filled by hand)."""
    g = DriverMemory(4 << 20)
    rx, tx = Vring(g, 64), Vring(g, 64)
    rx.post_rx()
    R = np.array([K.ring_row(rx), K.ring_row(tx)], np.int64)
    f = testpmd.udp_frame(64, bytes([2, 0, 0, 0, 0, 0xAA]), bytes([2, 0, 0, 0, 0, 0xBB]))
    for i in range(2):                               # the back-end delivers 2 frames
        o = rx.bufs + i * rx.buf_size
        g.map[o:o + 12 + 64] = bytes(12) + f
        struct.pack_into("<II", g.map, rx.used + 4 + 8 * i, i, 76)
    struct.pack_into("<H", g.map, rx.used + 2, 2)
    src = np.array([[2, 0, 0, 0, 0, 7]], np.uint8)
    dst = np.array([[2, 0, 0, 0, 0, 8]], np.uint8)
    stats = np.zeros((1, K.NSTATS), np.int64)
    z = np.zeros(32, np.int64)
    for mode, want in ((K.MAC, bytes(dst[0]) + bytes(src[0])), (K.MACSWAP, f[6:12] + f[0:6])):
        K.fwd_rounds(g.mem, R, g.gpa, 1, np.zeros(1, np.int64), mode, 32, 1, stats, src, dst,
                     0, 0, z.copy(), z.copy(), z.copy())
        if mode == K.MAC:
            struct.pack_into("<II", g.map, rx.used + 4 + 8 * 2, 0, 76)
            struct.pack_into("<H", g.map, rx.used + 2, 3)
            k = int(R[1, K.AIDX])
            for i in range(k):
                o = tx.bufs + i * tx.buf_size + 12
                assert bytes(g.map[o:o + 12]) == want and bytes(g.map[o + 12:o + 64]) == f[12:]
        else:
            o = tx.bufs + 2 * tx.buf_size + 12
            assert bytes(g.map[o:o + 12]) == want
    assert stats[0, K.S_RX] == 3 and stats[0, K.S_TX] == 3


def test_pktgen_server_role_against_client_port(tmp_path, capsys, vhost_loopback):
    """pvs-pktgen listening (server=1), our dpdkvhostuserclient port connecting."""
    lock = threading.RLock()
    path = str(tmp_path / "srv.sock")
    port = VhostUserClientPort("vhc0", {"vhost-server-path": path})
    port.quiesce = lambda: lock
    port.lock = lock
    port.open()
    loop = vhost_loopback(port)
    loop.start()
    try:
        rc = pktgen.main(["--tx", f"path={path},server=1", "--count", "1000", "--json",
                          "--timeout", "20"])
        out = capsys.readouterr()
        assert rc == 0, out.err
        res = json.loads(out.out.strip().splitlines()[-1])
        assert res["tx"] == 1000 and res["rx"] == 1000
    finally:
        loop.stop = True
        loop.join(5)
        port.close()
