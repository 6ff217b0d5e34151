"""pvs-testpmd: a small dpdk-testpmd on the virtio-user front-end.

    pvs-testpmd --vdev path=/run/pvs/vhu0 --vdev path=/tmp/s1,server=1 \\
                --forward-mode=io --burst 32 --stats-period 1 --duration 10

Each --vdev is one port: a vhost-user socket, connected to (default, for a
dpdkvhostuser port or DPDK's net_vhost PMD) or listened on (server=1, for a
dpdkvhostuserclient port or net_vhost with client=1). DPDK's
`net_virtio_user0,path=...` spelling is accepted too. All rings share one
memfd and every forwarding mode runs in frontend_kernels.fwd_rounds (no
Python per packet); Python wakes about 50 times a second for stats, kicks,
SIGINT and --duration. Ports are paired like testpmd's default topology
(0<->1, 2<->3, an odd last port with itself).
"""

import argparse
import os
import signal
import struct
import sys
import time

import numpy as np

from pyvswitch.ports.vhost import frontend_kernels as K
from pyvswitch.ports.vhost.driver import DriverMemory
from pyvswitch.ports.vhost.frontend import VirtioUser


def parse_mac(text):
    b = bytes(int(x, 16) for x in text.split(":"))
    if len(b) != 6:
        raise ValueError(f"bad MAC {text!r}")
    return b


def fmt_mac(b):
    return ":".join(f"{x:02X}" for x in b)


def parse_vdev(text):
    """'[net_virtio_userN,]path=S[,server=1][,mac=M]' or a bare path ->
    (path, server, mac or None)."""
    path, server, mac = None, False, None
    for part in text.split(","):
        if "=" not in part:
            if part.startswith("net_") or path is not None:
                continue
            path = part
            continue
        k, v = part.split("=", 1)
        if k in ("path", "iface"):
            path = v
        elif k in ("server", "client"):
            server = v not in ("0", "")
        elif k == "mac":
            mac = parse_mac(v)
        elif k not in ("queues", "queue_size"):
            raise ValueError(f"unknown vdev key {k!r}")
    if not path:
        raise ValueError(f"vdev without path: {text!r}")
    return path, server, mac


def udp_frame(size, dst, src, sip=(198, 18, 0, 1), dip=(198, 18, 0, 2), sport=9, dport=9,
              payload=b""):
    """An Ethernet/IPv4/UDP frame of `size` bytes (no FCS), payload first."""
    size = max(size, 42)
    ip_len = size - 14
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0, 64, 17, 0, bytes(sip),
                               bytes(dip)))
    s = sum(struct.unpack("!10H", ip))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    ip[10:12] = struct.pack("!H", ~s & 0xFFFF)
    udp = struct.pack("!HHHH", sport, dport, ip_len - 20, 0)
    body = (payload + bytes(size))[:size - 42]
    return bytes(dst) + bytes(src) + b"\x08\x00" + bytes(ip) + udp + body


def mem_size(nports, qsize, buf_size=2048):
    per_ring = 16 * qsize + 6 + 2 * qsize + 6 + 8 * qsize + qsize * buf_size + 4 * 4096
    return nports * 2 * per_ring + (1 << 16)


class Ports:
    """Front-ends on one shared DriverMemory, started in order (server ones
    listen first, so peers that connect early find the socket)."""

    def __init__(self, specs, qsize=256, timeout=30.0):
        self.g = DriverMemory(mem_size(len(specs), qsize))
        self.fes = [VirtioUser(path, server=server, qsize=qsize, gmem=self.g)
                    for path, server, _ in specs]
        self.tmpl = self.g.alloc(4096)
        self.timeout = timeout
        self.R = None

    def start(self):
        for fe in self.fes:
            if fe.server:
                fe.listen()
        for fe in self.fes:
            try:
                fe.start(timeout=self.timeout)
            except OSError as e:
                raise OSError(f"{fe.path}: {e.strerror or e}") from e
        self.R = K.ring_table(self.fes)

    def kick_all(self):
        for fe in self.fes:
            for i in range(2):
                try:
                    os.eventfd_write(fe.kicks[i], 1)
                except OSError:
                    pass

    def close(self):
        if self.R is not None:
            K.ring_table_back(self.fes, self.R)
            for fe in self.fes:
                try:
                    fe.sock.settimeout(2)
                    fe.stop()
                except (OSError, Exception):
                    pass
        for fe in self.fes:
            fe.close()
        self.g.close()


class Stopper:
    def __init__(self):
        self.stop = False
        signal.signal(signal.SIGINT, self._set)
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, *_):
        self.stop = True


def print_port_stats(out, p, st, prev, dt):
    rx, tx = int(st[K.S_RX]), int(st[K.S_TX])
    d = st - prev
    rxpps, txpps = d[K.S_RX] / dt, d[K.S_TX] / dt
    rxbps, txbps = (d[K.S_RXB] + 24 * d[K.S_RX]) * 8 / dt, (d[K.S_TXB] + 24 * d[K.S_TX]) * 8 / dt
    out.write(f"\n  ######################## NIC statistics for port {p}  ########################\n"
              f"  RX-packets: {rx:<10d} RX-missed: {0:<10d} RX-bytes:  {int(st[K.S_RXB])}\n"
              f"  RX-errors: {int(st[K.S_BAD])}\n"
              f"  RX-nombuf:  0\n"
              f"  TX-packets: {tx:<10d} TX-errors: {int(st[K.S_DROP]):<10d} "
              f"TX-bytes:  {int(st[K.S_TXB])}\n\n"
              f"  Throughput (since last show)\n"
              f"  Rx-pps: {int(rxpps):>12d}          Rx-bps: {int(rxbps):>12d}\n"
              f"  Tx-pps: {int(txpps):>12d}          Tx-bps: {int(txbps):>12d}\n"
              f"  ############################################################################\n")


def print_forward_stats(out, stats):
    for p in range(stats.shape[0]):
        st = stats[p]
        out.write(f"\n  ---------------------- Forward statistics for port {p}  ----------------------\n"
                  f"  RX-packets: {int(st[K.S_RX]):<14d} RX-dropped: {int(st[K.S_BAD]):<14d} "
                  f"RX-total: {int(st[K.S_RX] + st[K.S_BAD])}\n"
                  f"  TX-packets: {int(st[K.S_TX]):<14d} TX-dropped: {int(st[K.S_DROP]):<14d} "
                  f"TX-total: {int(st[K.S_TX] + st[K.S_DROP])}\n"
                  f"  ----------------------------------------------------------------------------\n")
    t = stats.sum(axis=0)
    out.write(f"\n  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++\n"
              f"  RX-packets: {int(t[K.S_RX]):<14d} RX-dropped: {int(t[K.S_BAD]):<14d} "
              f"RX-total: {int(t[K.S_RX] + t[K.S_BAD])}\n"
              f"  TX-packets: {int(t[K.S_TX]):<14d} TX-dropped: {int(t[K.S_DROP]):<14d} "
              f"TX-total: {int(t[K.S_TX] + t[K.S_DROP])}\n"
              f"  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++\n")


def build_parser():
    ap = argparse.ArgumentParser(prog="pvs-testpmd", description=__doc__.split("\n\n")[0])
    ap.add_argument("--vdev", "--port", action="append", default=[], metavar="SPEC",
                    help="path=SOCK[,server=1][,mac=MAC]; repeat per port")
    ap.add_argument("--nb-ports", type=int, help="use only the first N --vdev ports")
    ap.add_argument("--forward-mode", default="io", choices=sorted(K.MODES))
    ap.add_argument("--burst", type=int, default=32)
    ap.add_argument("--txpkts", type=int, default=64, help="txonly / tx-first frame size (no FCS)")
    ap.add_argument("--stats-period", type=float, default=0, help="seconds between stats (0: none)")
    ap.add_argument("--eth-peer", action="append", default=[], metavar="N,MAC",
                    help="destination MAC of port N (mac mode, txonly)")
    ap.add_argument("--tx-first", action="store_true", help="send one burst per port first")
    ap.add_argument("--duration", type=float, default=0, help="seconds to run (0: until SIGINT)")
    ap.add_argument("--rxd", "--txd", dest="qsize", type=int, default=256, help="ring size")
    ap.add_argument("--timeout", type=float, default=30, help="connect/accept timeout")
    ap.add_argument("-a", "--auto-start", action="store_true", help="accepted (always on)")
    return ap


def main(argv=None):
    a = build_parser().parse_args(argv)
    out = sys.stdout
    if not a.vdev:
        print("pvs-testpmd: at least one --vdev is needed", file=sys.stderr)
        return 2
    specs = [parse_vdev(v) for v in a.vdev][:a.nb_ports or None]
    if a.burst < 1 or a.burst > 512 or a.qsize & (a.qsize - 1) or not 60 <= a.txpkts <= 2000:
        print("pvs-testpmd: bad --burst, --rxd or --txpkts", file=sys.stderr)
        return 2
    n = len(specs)
    src = np.array([list(m or bytes([2, 0, 0, 0, 0, p])) for p, (_, _, m) in enumerate(specs)],
                   np.uint8)
    dst = np.array([[2, 0, 0, 0, 1, p] for p in range(n)], np.uint8)
    for e in a.eth_peer:
        p, mac = e.split(",", 1)
        if int(p) < n:
            dst[int(p)] = list(parse_mac(mac))
    peer = np.array([p ^ 1 if (p ^ 1) < n else p for p in range(n)], np.int64)
    mode = K.MODES[a.forward_mode]
    stopper = Stopper()
    ports = Ports(specs, a.qsize, a.timeout)
    try:
        ports.start()
        for p in range(n):
            out.write(f"Port {p}: {fmt_mac(src[p])} ({specs[p][0]}, "
                      f"{'server' if specs[p][1] else 'client'})\n")
        g, R = ports.g, ports.R
        stats = np.zeros((n, K.NSTATS), np.int64)
        offs, lens, ids = (np.zeros(a.burst, np.int64) for _ in range(3))
        tmpl_len = a.txpkts
        # txonly sends the same frame from every port: src/dst of port 0 (like testpmd's
        # single template); io/mac forwarding rewrite nothing / the MACs themselves
        g.mem[ports.tmpl:ports.tmpl + tmpl_len] = np.frombuffer(
            udp_frame(tmpl_len, dst[0], src[0]), np.uint8)
        if a.tx_first:
            for p in range(n):
                k = min(a.burst, K.tx_room(g.mem, R, 2 * p + 1))
                for _ in range(k):
                    K.tx_put(g.mem, R, 2 * p + 1, g.gpa, ports.tmpl, tmpl_len)
                K.tx_publish(g.mem, R, 2 * p + 1)
                stats[p, K.S_TX] += k
                stats[p, K.S_TXB] += k * tmpl_len
        out.write(f"{a.forward_mode} packet forwarding - ports={n} - burst={a.burst}\n")
        out.flush()
        # zero rounds: compiles the kernel (a cold numba cache takes seconds)
        # before the clock starts, so that --duration is all forwarding
        K.fwd_rounds(g.mem, R, g.gpa, n, peer, mode, a.burst, 0, stats, src, dst,
                     ports.tmpl, tmpl_len, offs, lens, ids)
        t_start = t_last = time.monotonic()
        prev = stats.copy()
        rounds = 64
        while not stopper.stop:
            t0 = time.perf_counter()
            K.fwd_rounds(g.mem, R, g.gpa, n, peer, mode, a.burst, rounds, stats, src, dst,
                         ports.tmpl, tmpl_len, offs, lens, ids)
            dt = time.perf_counter() - t0
            rounds = int(min(1 << 20, max(16, rounds * (0.02 / max(dt, 1e-6)))))
            ports.kick_all()
            now = time.monotonic()
            if a.stats_period and now - t_last >= a.stats_period:
                for p in range(n):
                    print_port_stats(out, p, stats[p], prev[p], now - t_last)
                out.flush()
                prev, t_last = stats.copy(), now
            if a.duration and now - t_start >= a.duration:
                break
        el = time.monotonic() - t_start
        out.write("\nTelling cores to stop...\nWaiting for lcores to finish...\n")
        print_forward_stats(out, stats)
        t = stats.sum(axis=0)
        out.write(f"\n  Total: {el:.2f} s, Rx-pps: {int(t[K.S_RX] / el)}  Tx-pps: {int(t[K.S_TX] / el)}\n"
                  "\nDone.\n")
        out.flush()
        return 0
    except (OSError, Exception) as e:               # connection trouble: a message, not a trace
        print(f"pvs-testpmd: {e}", file=sys.stderr)
        return 1
    finally:
        ports.close()


if __name__ == "__main__":
    sys.exit(main())
