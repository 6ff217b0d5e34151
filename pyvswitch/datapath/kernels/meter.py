"""meter: the datapath's token bucket for OpenFlow meters (drop bands).

What: a meter is one int64 row of METER_COLS words that ofproto owns and
never frees (its address goes into ('meter', addr) datapath actions):

    M_RATE    refill rate: kbps (kbit/s) or packets/s
    M_CAP     bucket size in tokens (burst, or one second of rate)
    M_TOKENS  tokens now; a token is one bit (kbps) or 1/1000 packet (pktps)
    M_LAST_NS when tokens were last refilled (0: never)
    M_PKTPS   1 for a packets-per-second meter
    M_PASS_PKTS, M_PASS_BYTES, M_DROP_PKTS, M_DROP_BYTES   counters

`meter_pass(row, length, now_ns)` refills rate * elapsed_us / 1000 tokens
(elapsed capped at 10 s, so no product overflows int64; the refill time only moves when whole tokens were
added, so slow meters do not lose their fractions), then takes one packet's
cost (8 * length bits, or 1000) and says whether the packet passes.

Threads: PMD threads. Several PMDs sharing a meter update it without atomics
(counts and tokens are then approximate, never unsafe). `meter_pass_ref`
is the twin over a Python list.
"""

from pyvswitch.core.jit import kernel

M_RATE, M_CAP, M_TOKENS, M_LAST_NS, M_PKTPS = 0, 1, 2, 3, 4
M_PASS_PKTS, M_PASS_BYTES, M_DROP_PKTS, M_DROP_BYTES = 5, 6, 7, 8
METER_COLS = 10
MAX_DT_NS = 10_000_000_000


@kernel(nrt=False, inline=True)
def meter_pass(row, length, now):
    last = row[M_LAST_NS]
    tokens = row[M_TOKENS]
    if last == 0 or now < last:
        row[M_LAST_NS] = now
    else:
        dt = min(now - last, MAX_DT_NS)
        add = row[M_RATE] * (dt // 1000) // 1000
        if add > 0 or tokens >= row[M_CAP]:
            tokens = min(row[M_CAP], tokens + add)
            row[M_LAST_NS] = now
    cost = 1000 if row[M_PKTPS] else 8 * length
    if tokens >= cost:
        row[M_TOKENS] = tokens - cost
        row[M_PASS_PKTS] += 1
        row[M_PASS_BYTES] += length
        return True
    row[M_TOKENS] = tokens
    row[M_DROP_PKTS] += 1
    row[M_DROP_BYTES] += length
    return False


def meter_pass_ref(row, length, now):
    """Twin over a list of METER_COLS ints."""
    if row[M_LAST_NS] == 0 or now < row[M_LAST_NS]:
        row[M_LAST_NS] = now
    else:
        add = row[M_RATE] * (min(now - row[M_LAST_NS], MAX_DT_NS) // 1000) // 1000
        if add > 0 or row[M_TOKENS] >= row[M_CAP]:
            row[M_TOKENS] = min(row[M_CAP], row[M_TOKENS] + add)
            row[M_LAST_NS] = now
    cost = 1000 if row[M_PKTPS] else 8 * length
    ok = row[M_TOKENS] >= cost
    if ok:
        row[M_TOKENS] -= cost
    kind = M_PASS_PKTS if ok else M_DROP_PKTS
    row[kind] += 1
    row[kind + 1] += length
    return ok
