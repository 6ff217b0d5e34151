"""The conntrack appctl commands, as Open vSwitch's dpctl/ ones.

    dpctl/dump-conntrack [-m] [-s] [dp] [zone=N]
    dpctl/flush-conntrack [dp] [zone=N] [ct-origin-tuple]
        tuple: ct_nw_src=IP,ct_nw_dst=IP,ct_nw_proto=P[,ct_tp_src=N,ct_tp_dst=N]
        (ct_ipv6_src/ct_ipv6_dst for IPv6; ICMP echo: icmp_id=N)
    dpctl/ct-stats-show [dp] [zone=N]
    dpctl/ct-set-maxconns [dp] N        dpctl/ct-get-maxconns [dp]
    dpctl/ct-get-nconns [dp]
    dpctl/ct-set-limits [dp] [default=L] [zone=N,limit=L]...
    dpctl/ct-get-limits [dp] [zone=N[,M]...]

Main thread. The table itself is the datapath's (Dpif.ct), shared with the
PMDs under its own lock.
"""

import ipaddress

from pyvswitch.conntrack import table as CT
from pyvswitch.vswitchd.unixctl import CommandError


def register(sw, reg):
    sw.ct_zone_limits = {}                 # zone -> limit set by ct-set-limits
    sw.ct_default_limit = 0
    reg("dpctl/dump-conntrack", "[-m] [-s] [dp] [zone=N]", 0, 4, lambda a: _dump(sw, a))
    reg("dpctl/flush-conntrack", "[dp] [zone=N] [ct-origin-tuple]", 0, 3, lambda a: _flush(sw, a))
    reg("dpctl/ct-stats-show", "[dp] [zone=N]", 0, 2, lambda a: _stats(sw, a))
    reg("dpctl/ct-set-maxconns", "[dp] maxconns", 1, 2, lambda a: _set_max(sw, a))
    reg("dpctl/ct-get-maxconns", "[dp]", 0, 1, lambda a: f"{sw.dpif.ct_get_maxconns()}\n")
    reg("dpctl/ct-get-nconns", "[dp]", 0, 1, lambda a: f"{int(sw.dpif.ct.ctl[CT.G_N])}\n")
    reg("dpctl/ct-set-limits", "[dp] [default=L] [zone=N,limit=L]...", 1, 64, lambda a: _set_limits(sw, a))
    reg("dpctl/ct-get-limits", "[dp] [zone=N[,M]...]", 0, 2, lambda a: _get_limits(sw, a))


def _dp_arg(args):
    """Drop a leading datapath name (netdev@pvs, ovs-netdev, ...), as OVS accepts one."""
    return [a for a in args if "@" not in a and a not in ("ovs-netdev", "ovs-system")]


def _zone(text):
    try:
        z = int(text.split("=", 1)[1], 0)
    except ValueError:
        raise CommandError(f"invalid zone {text!r}") from None
    if not 0 <= z <= 0xFFFF:
        raise CommandError(f"invalid zone {z} (0..65535)")
    return z


def _dump(sw, args):
    verbose = zone = None
    for a in _dp_arg(args):
        if a in ("-m", "--more"):
            verbose = True
        elif a in ("-s", "--statistics"):
            verbose = True
        elif a.startswith("zone="):
            zone = _zone(a)
        else:
            raise CommandError(f"dump-conntrack: unknown argument {a!r}")
    return sw.dpif.ct_dump(zone=zone, verbose=bool(verbose))


def parse_tuple(text, zone=0):
    """ct_nw_src=..,ct_nw_dst=..,ct_nw_proto=..,ct_tp_src=..,ct_tp_dst=.. -> table tuple."""
    f = {}
    for item in text.split(","):
        if "=" not in item:
            raise CommandError(f"invalid conntrack tuple field {item!r}")
        k, v = item.split("=", 1)
        f[k.strip()] = v.strip()
    v6 = "ct_ipv6_src" in f or "ct_ipv6_dst" in f
    try:
        src = int(ipaddress.ip_address(f["ct_ipv6_src" if v6 else "ct_nw_src"]))
        dst = int(ipaddress.ip_address(f["ct_ipv6_dst" if v6 else "ct_nw_dst"]))
        proto = int(f["ct_nw_proto"], 0)
        if proto in (1, 58):
            ident = int(f.get("icmp_id", "0"), 0)
            sport = dport = ident
        else:
            sport, dport = int(f.get("ct_tp_src", "0"), 0), int(f.get("ct_tp_dst", "0"), 0)
    except (KeyError, ValueError) as e:
        raise CommandError(f"invalid conntrack tuple {text!r}: {e}") from None
    unknown = set(f) - {"ct_nw_src", "ct_nw_dst", "ct_ipv6_src", "ct_ipv6_dst", "ct_nw_proto",
                        "ct_tp_src", "ct_tp_dst", "icmp_id", "icmp_type", "icmp_code"}
    if unknown:
        raise CommandError(f"invalid conntrack tuple field {sorted(unknown)[0]!r}")
    return CT.make_tuple(zone, proto, src, dst, sport, dport, v6)


def _flush(sw, args):
    zone, tup = None, None
    for a in _dp_arg(args):
        if a.startswith("zone="):
            zone = _zone(a)
        else:
            tup = a
    if tup is not None:
        n = CT.ct_delete_tuple(sw.dpif.ct, parse_tuple(tup, zone or 0))
        if not n:
            raise CommandError("flush-conntrack: no such connection")
        return ""
    sw.dpif.ct_flush(zone)
    return ""


def _stats(sw, args):
    zone = None
    for a in _dp_arg(args):
        if a.startswith("zone="):
            zone = _zone(a)
    text = sw.dpif.ct_stats() if zone is None else _zone_stats(sw, zone)
    t = sw.dpif.ct
    return text + (f"    Refused (table full): {int(t.ctl[CT.G_FULL])}\n"
                   f"    Refused (zone limit): {int(t.ctl[CT.G_ZONE_FULL])}\n"
                   f"    Invalid: {int(t.ctl[CT.G_INVALID])}\n")


def _zone_stats(sw, zone):
    return f"Connections Stats:\n    Total: {int(sw.dpif.ct.zone_count[zone])}\n"


def _set_max(sw, args):
    args = _dp_arg(args)
    try:
        n = int(args[-1])
        sw.dpif.ct_set_maxconns(n)
    except (ValueError, IndexError) as e:
        raise CommandError(f"ct-set-maxconns: {e}") from None
    return "setting maxconns successful\n"


def _set_limits(sw, args):
    t = sw.dpif.ct
    changes = []
    for a in _dp_arg(args):
        try:
            kv = dict(x.split("=", 1) for x in a.split(","))
            if set(kv) == {"default"}:
                changes.append((-1, int(kv["default"])))
            elif set(kv) == {"zone", "limit"}:
                z, lim = int(kv["zone"]), int(kv["limit"])
                if not 0 <= z <= 0xFFFF:
                    raise ValueError(f"zone {z} out of range")
                changes.append((z, lim))
            else:
                raise ValueError("expected default=L or zone=N,limit=L")
            if changes[-1][1] < 0:
                raise ValueError("a limit is >= 0 (0: no limit)")
        except ValueError as e:
            raise CommandError(f"ct-set-limits: invalid argument {a!r}: {e}") from None
    for z, lim in changes:                 # all checked: apply
        if z < 0:
            sw.ct_default_limit = lim
            for zz in range(t.zone_limit.shape[0]):
                if zz not in sw.ct_zone_limits:
                    t.zone_limit[zz] = lim
        else:
            sw.ct_zone_limits[z] = lim
            t.zone_limit[z] = lim
    return ""


def _get_limits(sw, args):
    t = sw.dpif.ct
    zones = []
    for a in _dp_arg(args):
        if a.startswith("zone="):
            try:
                zones = [int(z) for z in a[5:].split(",")]
            except ValueError:
                raise CommandError(f"invalid zone list {a!r}") from None
    lines = [f"default limit={getattr(sw, 'ct_default_limit', 0)}"]
    for z in zones or sorted(sw.ct_zone_limits):
        if 0 <= z <= 0xFFFF:
            lines.append(f"zone={z},limit={int(t.zone_limit[z])},count={int(t.zone_count[z])}")
    return "\n".join(lines) + "\n"
