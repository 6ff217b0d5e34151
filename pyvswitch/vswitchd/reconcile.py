"""Reconciliation: compare desired state with running state, return the diff.

Both states have one shape (plain dicts, so the planner is a pure function
tested without a daemon):

    {"other_config": {k: v},
     "bridges": {br: {"datapath_type": str, "fail_mode": str,
                      "other_config": {k: v},
                      "ports": {port: {"tag": int|None, "trunks": [int],
                                       "vlan_mode": str|None,
                                       "other_config": {k: v},
                                       "interfaces": {iface: IFACE}}}}}}
    IFACE = {"type": str, "options": {k: v}, "ofport_request": int|None,
             "mtu_request": int|None}

The running state may also mark an interface {"failed": True}: it was wanted
but could not be opened; every plan retries it (OVS retries on each
reconfiguration).

`plan` returns operations in an order that is always safe to apply:
deletions first (interfaces, then ports, then bridges), then bridge
creation/changes, then ports, then interfaces. An interface whose type or
options changed is deleted and added again; an MTU change alone is applied in
place.
"""

from dataclasses import dataclass, field

IFACE_REOPEN_KEYS = ("type", "options", "ofport_request")


@dataclass(frozen=True)
class Op:
    kind: str            # del_iface, del_port, del_bridge, add_bridge, set_bridge,
                         # add_port, set_port, add_iface, set_mtu, set_global
    bridge: str = ""
    port: str = ""
    iface: str = ""
    config: dict = field(default_factory=dict, compare=False, hash=False)


def _bridge_cfg(b):
    return {k: v for k, v in b.items() if k != "ports"}


def _port_cfg(p):
    return {k: v for k, v in p.items() if k != "interfaces"}


def _iface_key(i):
    return {k: i.get(k) for k in IFACE_REOPEN_KEYS}


def plan(desired, running):
    ops = []
    dbr, rbr = desired.get("bridges", {}), running.get("bridges", {})
    if desired.get("other_config", {}) != running.get("other_config", {}):
        ops.append(Op("set_global", config=desired.get("other_config", {})))
    ops += _deletions(dbr, rbr)
    for br in sorted(dbr):
        want, have = dbr[br], rbr.get(br)
        if have is None:
            ops.append(Op("add_bridge", br, config=_bridge_cfg(want)))
            have = {"ports": {}}
        elif _bridge_cfg(want) != _bridge_cfg(have):
            ops.append(Op("set_bridge", br, config=_bridge_cfg(want)))
        ops += _port_ops(br, want["ports"], have.get("ports", {}))
    return ops


def _deletions(dbr, rbr):
    ops = []
    for br in sorted(rbr):
        if br not in dbr:
            for port in sorted(rbr[br]["ports"]):
                for iface in sorted(rbr[br]["ports"][port]["interfaces"]):
                    ops.append(Op("del_iface", br, port, iface))
                ops.append(Op("del_port", br, port))
            ops.append(Op("del_bridge", br))
            continue
        for port, have in sorted(rbr[br]["ports"].items()):
            want = dbr[br]["ports"].get(port)
            for iface, icfg in sorted(have["interfaces"].items()):
                wi = want["interfaces"].get(iface) if want else None
                if wi is None or icfg.get("failed") or _iface_key(wi) != _iface_key(icfg):
                    ops.append(Op("del_iface", br, port, iface))
            if want is None:
                ops.append(Op("del_port", br, port))
    return ops


def _port_ops(br, want_ports, have_ports):
    ops = []
    for port in sorted(want_ports):
        want, have = want_ports[port], have_ports.get(port)
        if have is None:
            ops.append(Op("add_port", br, port, config=_port_cfg(want)))
            have = {"interfaces": {}}
        elif _port_cfg(want) != _port_cfg(have):
            ops.append(Op("set_port", br, port, config=_port_cfg(want)))
        for iface in sorted(want["interfaces"]):
            wi, hi = want["interfaces"][iface], have["interfaces"].get(iface)
            if hi is None or hi.get("failed") or _iface_key(wi) != _iface_key(hi):
                ops.append(Op("add_iface", br, port, iface, config=wi))
            elif wi.get("mtu_request") != hi.get("mtu_request"):
                ops.append(Op("set_mtu", br, port, iface, config=wi))
    return ops
