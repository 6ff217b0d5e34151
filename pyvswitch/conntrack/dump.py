"""Connection table entries as Open vSwitch's `dpctl/dump-conntrack` prints them.

    tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80),reply=(src=10.0.0.2,
        dst=10.0.0.1,sport=80,dport=1234),zone=5,mark=171,protoinfo=(state=ESTABLISHED)

(one line per connection). zone, mark and labels appear when non-zero, as in
OVS; `verbose` adds the remaining timeout and the packet counters. Python
only: reads the table's arrays without the lock, like OVS's dump (an entry
being created or removed meanwhile may be missed or shown twice).
"""

import ipaddress

from pyvswitch.conntrack import table as CT
from pyvswitch.conntrack import tcp as T

PROTO_NAMES = {(6, 4): "tcp", (17, 4): "udp", (1, 4): "icmp", (132, 4): "sctp",
               (6, 6): "tcp6", (17, 6): "udp6", (58, 6): "icmpv6", (132, 6): "sctp6"}


def _addr(hi, lo, fam):
    if fam == 6:
        return str(ipaddress.IPv6Address((int(hi) << 64) | int(lo)))
    return str(ipaddress.IPv4Address(int(lo) & 0xFFFFFFFF))


def _side(src, dst, ports, proto, fam, reply):
    s = f"src={src},dst={dst}"
    if proto in (6, 17, 132):
        sp, dp = ports >> 16, ports & 0xFFFF
        if reply:
            sp, dp = dp, sp
        return f"{s},sport={sp},dport={dp}"
    if proto in (1, 58):
        ident = ports & 0xFFFF
        if ports >> 16 == ident:                       # echo, keyed on the id both ways
            req, rep = (8, 0) if proto == 1 else (128, 129)
            return f"{s},id={ident},type={rep if reply else req},code=0"
        return f"{s},type={(ports >> 8) & 0xFF},code={ports & 0xFF}"
    return s


def live_rows(t, now=None):
    """Rows of the connections in the table (not expired at `now`, if given)."""
    rows = []
    for row in range(t.conn.shape[0]):
        c = t.conn[row]
        if c[CT.C_PROTO] != 0 and (now is None or c[CT.C_EXPIRES] > now):
            rows.append(row)
    return rows


def format_entry(t, row, now=None, verbose=False):
    c = t.conn[row]
    u = [int(x) for x in t.tup[row]]
    meta = u[CT.T_META]
    fam, proto, zone = meta & 0xFF, (meta >> 8) & 0xFF, (meta >> 16) & 0xFFFF
    src = _addr(u[CT.T_SRC_HI], u[CT.T_SRC_LO], fam)
    dst = _addr(u[CT.T_DST_HI], u[CT.T_DST_LO], fam)
    name = PROTO_NAMES.get((proto, fam), f"proto={proto}" if fam == 4 else f"ipv6,proto={proto}")
    ports = u[CT.T_PORTS]
    out = [f"{name},orig=({_side(src, dst, ports, proto, fam, False)}),"
           f"reply=({_side(dst, src, ports, proto, fam, True)})"]
    if verbose:
        out.append(f",packets={int(c[CT.C_PKTS0])}/{int(c[CT.C_PKTS1])},"
                   f"bytes={int(c[CT.C_BYTES0])}/{int(c[CT.C_BYTES1])}")
    if zone:
        out.append(f",zone={zone}")
    if c[CT.C_MARK]:
        out.append(f",mark={int(c[CT.C_MARK]) & 0xFFFFFFFF}")
    label = ((int(c[CT.C_LABEL_HI]) & (2**64 - 1)) << 64) | (int(c[CT.C_LABEL_LO]) & (2**64 - 1))
    if label:
        out.append(f",labels={label:#x}")
    if verbose and now is not None:
        out.append(f",timeout={max(0, int(c[CT.C_EXPIRES]) - now) // 1_000_000_000}")
    if proto == 6:
        out.append(f",protoinfo=(state={T.STATE_NAMES[int(c[CT.C_PROTO_STATE])]})")
    return "".join(out)


def dump(t, zone=None, now=None, verbose=False):
    """The dump-conntrack text (one line per connection, in table order)."""
    lines = []
    for row in live_rows(t, now):
        if zone is not None and int(t.conn[row, CT.C_ZONE]) != zone:
            continue
        lines.append(format_entry(t, row, now, verbose))
    return "".join(line + "\n" for line in lines)


def stats(t, now=None):
    """`dpctl/ct-stats-show`: connections per protocol, as OVS prints them."""
    per = {}
    for row in live_rows(t, now):
        meta = int(t.tup[row, CT.T_META])
        name = PROTO_NAMES.get(((meta >> 8) & 0xFF, meta & 0xFF), "others").upper().rstrip("6")
        per[name] = per.get(name, 0) + 1
    lines = [f"Connections Stats:\n    Total: {sum(per.values())}"]
    lines += [f"    {k}: {v}" for k, v in sorted(per.items())]
    return "\n".join(lines) + "\n"
