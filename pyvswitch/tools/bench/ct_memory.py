"""Memory per conntrack entry, measured on a filled table.

    python -m pyvswitch.tools.bench.ct_memory N      (prints one JSON line)

Runs in a process of its own (ct_bench.py starts it) so that its resident
set is only this: the conntrack kernels are compiled on a small table first,
then a table for N connections is created (conntrack/table.new_table, the
datapath's own) and filled by ct_process, the kernel the PMDs run, with N
committed UDP connections (a new source address each). VmRSS is read before
the table exists, after it is created and after it is full; the table's
arrays are summed too (nbytes), so the figure is what the process really
holds, next to what the layout says it should.
"""

import json
import sys
import time

import numpy as np

from pyvswitch.conntrack import table as CT
from pyvswitch.datapath import layout as L
from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.tools.testpmd import udp_frame

ZONE = 1


def vm_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def template():
    """A UDP frame and its datapath key: 10.0.0.0 -> 172.16.0.1, ports 1024 -> 53."""
    frame = udp_frame(64, b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01",
                      (10, 0, 0, 0), (172, 16, 0, 1), sport=1024, dport=53)
    b = np.frombuffer(frame, np.uint8).copy()
    key = np.array(parse_packet_ref(frame, 1)[:L.KEY_WORDS], np.uint64)
    return b, key


def fill(t, n, b, key):
    """Commit n connections; the source address of connection i is 10.0.0.0 + i
    (only the key carries it: the tracker reads addresses from the key)."""
    out = np.zeros(8, np.int64)
    q = np.zeros(CT.T_WORDS, np.uint64)
    base = int(key[L.W_NW_ADDR]) & ~0xFFFFFFFF
    src0 = 0x0A000000
    now = time.monotonic_ns()
    refused = 0
    for i in range(n):
        key[L.W_NW_ADDR] = np.uint64(base | (src0 + i))
        state = CT.ct_process(t, b, 0, len(b), key, ZONE, True, now, out, q)
        if not state & CT.CS_NEW:
            refused += 1
    return refused


def table_nbytes(t):
    return sum(a.nbytes for a in t)


def measure(n):
    b, key = template()
    fill(CT.new_table(16), 8, b, key.copy())            # compile before measuring
    rss0 = vm_rss_bytes()
    t = CT.new_table(n)
    rss1 = vm_rss_bytes()
    t0 = time.perf_counter()
    refused = fill(t, n, b, key)
    secs = time.perf_counter() - t0
    rss2 = vm_rss_bytes()
    entries = int(t.ctl[CT.G_N])
    fixed = t.zone_count.nbytes + t.zone_limit.nbytes + t.ctl.nbytes + t.timeouts.nbytes
    return {"capacity": n, "entries": entries, "refused": refused,
            "rss_empty_table_bytes": rss1 - rss0, "rss_filled_table_bytes": rss2 - rss0,
            "rss_bytes_per_entry": (rss2 - rss0) / entries if entries else None,
            "rss_fill_bytes_per_entry": (rss2 - rss1) / entries if entries else None,
            "array_bytes": table_nbytes(t), "array_fixed_bytes": fixed,
            "array_bytes_per_entry": (table_nbytes(t) - fixed) / n,
            "index_slots": int(t.idx.shape[0]), "fill_seconds": round(secs, 3),
            "fill_conns_per_s": entries / secs if secs > 0 else None}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 1_000_000
    print(json.dumps(measure(n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
