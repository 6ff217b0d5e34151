"""pvs-pktgen: a packet generator and receiver on the virtio-user front-end.

    pvs-pktgen --tx path=/run/pvs/vhu0 --rx path=/run/pvs/vhu1 \\
               --size 64 --rate 1000000 --flows 16 --duration 5

Sends UDP/IPv4 frames on the --tx port and counts what arrives on the --rx
port (the same port when --rx is not given; --no-rx for TX only; --tx-off for
a receiver only). Every frame of 62 bytes or more carries a magic, a
sequence number and the CPU's time-stamp counter in its UDP payload; the
receiver turns those into latencies (min/avg/p50/p99/max, from the last
--lat-samples frames). --flows N varies the low 16 bits of the source IP
and the UDP source port over N values. --rate is packets per second,
--rate-percent a share of --line-rate Gbit/s (frame + 24 bytes of FCS,
preamble and gap on the wire). All per-packet work is in
frontend_kernels.pg_rounds.
"""

import argparse
import json
import struct
import sys
import time

import numpy as np

from pyvswitch.ports.vhost import frontend_kernels as K
from pyvswitch.tools.testpmd import Ports, Stopper, parse_mac, parse_vdev, udp_frame


def build_parser():
    ap = argparse.ArgumentParser(prog="pvs-pktgen", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tx", metavar="SPEC", help="path=SOCK[,server=1]: the sending port")
    ap.add_argument("--rx", metavar="SPEC", help="the receiving port (default: the --tx port)")
    ap.add_argument("--no-rx", action="store_true", help="do not count received frames")
    ap.add_argument("--tx-off", action="store_true", help="receive only (needs --rx)")
    ap.add_argument("--size", type=int, default=64, help="frame bytes without FCS (default 64)")
    ap.add_argument("--count", type=int, default=0, help="frames to send (0: until --duration)")
    ap.add_argument("--rate", type=float, default=0, help="packets per second (0: unlimited)")
    ap.add_argument("--rate-percent", type=float, help="percent of --line-rate")
    ap.add_argument("--line-rate", type=float, default=10.0, help="Gbit/s (default 10)")
    ap.add_argument("--flows", type=int, default=1)
    ap.add_argument("--burst", type=int, default=32)
    ap.add_argument("--duration", type=float, default=0, help="seconds (0: until --count / SIGINT)")
    ap.add_argument("--delay", type=float, default=0,
                    help="seconds between connecting and sending (a peer still starting up)")
    ap.add_argument("--warmup", type=float, default=0,
                    help="up to SEC seconds: send single frames until one comes back, then start")
    ap.add_argument("--drain", type=float, default=0.5, help="seconds to wait for stragglers")
    ap.add_argument("--src-mac", default="02:00:00:00:00:10")
    ap.add_argument("--dst-mac", default="02:00:00:00:00:11")
    ap.add_argument("--src-ip", default="10.0.0.1")
    ap.add_argument("--dst-ip", default="10.0.0.2")
    ap.add_argument("--lat-samples", type=int, default=1 << 20)
    ap.add_argument("--qsize", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    return ap


def pps_of(a):
    if a.rate_percent is not None:
        return a.line_rate * 1e9 * a.rate_percent / 100.0 / ((a.size + 24) * 8)
    return a.rate


def summarize(g, lat, hz, elapsed):
    n = int(g[K.G_LATN])
    res = {"tx": int(g[K.G_SENT]), "rx": int(g[K.G_RX]), "rx_bytes": int(g[K.G_RXB]),
           "rx_unstamped": int(g[K.G_BAD]), "seconds": round(elapsed, 3),
           "tx_pps": int(g[K.G_SENT] / elapsed) if elapsed else 0,
           "rx_pps": int(g[K.G_RX] / elapsed) if elapsed else 0}
    res["lost"] = res["tx"] - res["rx"]
    if n:
        s = np.sort(lat[:min(n, lat.shape[0])]) * (1e9 / hz)
        res["latency_ns"] = {"min": int(g[K.G_LATMIN] * 1e9 / hz),
                             "avg": int(g[K.G_LATSUM] / n * 1e9 / hz),
                             "p50": int(s[int(0.50 * (len(s) - 1))]),
                             "p99": int(s[int(0.99 * (len(s) - 1))]),
                             "max": int(g[K.G_LATMAX] * 1e9 / hz), "samples": min(n, lat.shape[0])}
    return res


def report(res, out):
    out.write(f"TX-packets: {res['tx']}  RX-packets: {res['rx']}  lost: {res['lost']}  "
              f"unstamped: {res['rx_unstamped']}\n"
              f"Tx-pps: {res['tx_pps']}  Rx-pps: {res['rx_pps']}  ({res['seconds']} s)\n")
    if "latency_ns" in res:
        L = res["latency_ns"]
        out.write("latency us: min {:.2f}  avg {:.2f}  p50 {:.2f}  p99 {:.2f}  max {:.2f}  "
                  "({} samples)\n".format(L["min"] / 1e3, L["avg"] / 1e3, L["p50"] / 1e3,
                                          L["p99"] / 1e3, L["max"] / 1e3, L["samples"]))


def warmup(g, R, txr, rxr, a, st, lat, tmpl, offs, lens, ids):
    """Probe with one frame at a time until one returns (a peer that drops
    what comes before it forwards), drain stragglers, reset the counters."""
    saved = st.copy()
    end = time.monotonic() + a.warmup
    st[K.G_CPP] = 0
    while time.monotonic() < end and st[K.G_RX] == 0:
        st[K.G_COUNT] = st[K.G_SENT] + 1
        t = time.monotonic() + 0.1
        while time.monotonic() < t and st[K.G_RX] == 0:
            K.pg_rounds(g.mem, R, g.gpa, txr, rxr, a.burst, 100, st, lat, tmpl, a.size, offs, lens, ids)
    st[K.G_TXON] = 0
    t = time.monotonic() + 0.3
    while time.monotonic() < t:
        K.pg_rounds(g.mem, R, g.gpa, txr, rxr, a.burst, 100, st, lat, tmpl, a.size, offs, lens, ids)
    st[:] = saved
    lat[:] = 0


def main(argv=None):
    a = build_parser().parse_args(argv)
    out = sys.stdout
    if not a.tx and not a.rx:
        print("pvs-pktgen: --tx and/or --rx needed", file=sys.stderr)
        return 2
    if not 60 <= a.size <= 2000 or a.flows < 1 or not 1 <= a.burst <= 512:
        print("pvs-pktgen: bad --size, --flows or --burst", file=sys.stderr)
        return 2
    tx_on = bool(a.tx) and not a.tx_off
    rx_on = not a.no_rx
    specs = [parse_vdev(a.tx)] if a.tx else []
    if a.rx and a.rx != a.tx:
        specs.append(parse_vdev(a.rx))
    txr, rxr = 1, 2 * (len(specs) - 1)
    hz = K.tsc_hz()
    stopper = Stopper()
    ports = Ports(specs, a.qsize, a.timeout)
    try:
        ports.start()
        g, R = ports.g, ports.R
        sip = [int(x) for x in a.src_ip.split(".")]
        dip = [int(x) for x in a.dst_ip.split(".")]
        payload = struct.pack("<I", K.MAGIC)
        frame = udp_frame(a.size, parse_mac(a.dst_mac), parse_mac(a.src_mac), sip, dip,
                          payload=payload)
        g.mem[ports.tmpl:ports.tmpl + a.size] = np.frombuffer(frame, np.uint8)
        st = np.zeros(K.NGEN, np.int64)
        st[K.G_COUNT] = a.count
        st[K.G_FLOWS] = a.flows
        st[K.G_TXON], st[K.G_RXON] = int(tx_on), int(rx_on)
        st[K.G_LATMIN] = 1 << 62
        pps = pps_of(a)
        st[K.G_CPP] = int(hz * 1024 / pps) if pps > 0 else 0
        lat = np.zeros(max(1, a.lat_samples), np.int64)
        offs, lens, ids = (np.zeros(a.burst, np.int64) for _ in range(3))
        K.pg_rounds(g.mem, R, g.gpa, txr, rxr, a.burst, 0, st, lat, ports.tmpl, a.size,
                    offs, lens, ids)                  # compile before the clock starts
        if a.delay > 0:
            time.sleep(a.delay)
        if a.warmup > 0 and tx_on and rx_on:
            warmup(g, R, txr, rxr, a, st, lat, ports.tmpl, offs, lens, ids)
        st[K.G_NEXT] = K.tsc()
        t0 = time.monotonic()
        rounds, tx_done_at = 64, None
        while not stopper.stop:
            c0 = time.perf_counter()
            K.pg_rounds(g.mem, R, g.gpa, txr, rxr, a.burst, rounds, st, lat, ports.tmpl, a.size,
                        offs, lens, ids)
            dt = time.perf_counter() - c0
            rounds = int(min(1 << 20, max(16, rounds * (0.01 / max(dt, 1e-6)))))
            ports.kick_all()
            now = time.monotonic()
            if a.duration and now - t0 >= a.duration:
                st[K.G_TXON] = 0
            if tx_done_at is None and (st[K.G_TXON] == 0 or (a.count and st[K.G_SENT] >= a.count)):
                tx_done_at = now
            if tx_done_at is not None:
                if not rx_on or st[K.G_RX] >= st[K.G_SENT] or now - tx_done_at >= a.drain:
                    break
        elapsed = (tx_done_at or time.monotonic()) - t0
        res = summarize(st, lat, hz, elapsed)
        if a.json:
            out.write(json.dumps(res) + "\n")
        else:
            report(res, out)
        out.flush()
        return 0
    except (OSError, Exception) as e:
        print(f"pvs-pktgen: {e}", file=sys.stderr)
        return 1
    finally:
        ports.close()


if __name__ == "__main__":
    sys.exit(main())
