"""Translate between the database and the reconciler's state dicts.

`desired_state(snapshot)` reads what the user configured; `running_state`
describes what the daemon has applied (same shape, see reconcile.py);
`iface_status` builds the daemon's write-back of Interface columns (ofport,
error, link_state, admin_state, mac_in_use, mtu, statistics) as Open vSwitch
fills them, `bond_status` the Port column bond_active_slave (the active
member's MAC, read back by `bond_active_macs` when the daemon restarts).
Pure functions over plain data, main thread only.
"""

from pyvswitch.datapath.layout import get_field

BOND_KEYS = ("bond_mode", "lacp", "bond_updelay", "bond_downdelay")
STAT_KEYS = ("rx_packets", "rx_bytes", "rx_dropped", "rx_errors",
             "tx_packets", "tx_bytes", "tx_dropped", "tx_errors", "ovs_tx_mtu_exceeded_drops")


def desired_state(snap):
    _, root = snap.root()
    t = snap.tables
    bridges = {}
    for bu in root["bridges"]:
        b = t["Bridge"].get(bu)
        if b is None:
            continue
        ports = {}
        for pu in b["ports"]:
            p = t["Port"].get(pu)
            if p is None:
                continue
            ifaces = {}
            for iu in p["interfaces"]:
                i = t["Interface"].get(iu)
                if i is not None:
                    ifaces[i["name"]] = iface_config(i)
            ports[p["name"]] = {"tag": p["tag"], "trunks": list(p["trunks"]),
                                "vlan_mode": p["vlan_mode"],
                                "other_config": dict(p["other_config"]), "interfaces": ifaces,
                                **{k: p[k] for k in BOND_KEYS}}
        bridges[b["name"]] = {"datapath_type": b["datapath_type"], "fail_mode": b["fail_mode"],
                              "other_config": dict(b["other_config"]), "ports": ports,
                              "mirrors": mirror_config(t, b)}
    return {"other_config": dict(root["other_config"]), "bridges": bridges}


def iface_config(row):
    return {"type": row["type"], "options": dict(row["options"]),
            "ofport_request": row["ofport_request"], "mtu_request": row["mtu_request"]}


def ofport_hints(snap):
    """{bridge: {iface: ofport}} from ofport_request, else the ofport column
    the daemon wrote last: a restarted daemon gives every interface its old
    number back, and no interface takes a number another one of the same
    transaction requested."""
    out = {}
    t = snap.tables
    for b in t["Bridge"].values():
        hints = out.setdefault(b["name"], {})
        for pu in b["ports"]:
            for iu in (t["Port"].get(pu) or {}).get("interfaces", ()):
                i = t["Interface"].get(iu)
                if i is not None and i.get("ofport_request"):
                    hints[i["name"]] = i["ofport_request"]   # held for it even before it is added
                elif i is not None and (i.get("ofport") or 0) > 0:
                    hints[i["name"]] = i["ofport"]
    return out


def bond_active_macs(snap):
    """{bridge: {port: bond_active_slave}} as the daemon last wrote them."""
    out = {}
    t = snap.tables
    for b in t["Bridge"].values():
        macs = out.setdefault(b["name"], {})
        for pu in b["ports"]:
            p = t["Port"].get(pu)
            if p is not None and p.get("bond_active_slave"):
                macs[p["name"]] = p["bond_active_slave"]
    return out


def bond_status(snap, bridges):
    """{"Port": {uuid: {"bond_active_slave": mac}}} for every bond."""
    rows = {}
    bonds = {name: bond for br in bridges.values() for name, bond in br.bonds.items()}
    for u, row in snap.tables["Port"].items():
        bond = bonds.get(row["name"])
        if bond is not None and bond.active is not None and any(bond.active_mac):
            mac = ":".join(f"{b:02x}" for b in bond.active_mac)
            if row.get("bond_active_slave") != mac:
                rows[u] = {"bond_active_slave": mac}
    return {"Port": rows} if rows else {}


def next_cfg(snap):
    return snap.next_cfg


def running_state(bridges, other_config):
    out = {}
    for name, br in bridges.items():
        ports = {}
        for pname, pcfg in br.ports.items():
            ifaces = {}
            for iface in br.ifaces.values():
                if iface.port_name == pname:
                    cfg = {k: iface.config.get(k) for k in ("type", "options", "ofport_request", "mtu_request")}
                    if iface.port is None:
                        cfg["failed"] = True
                    ifaces[iface.name] = cfg
            ports[pname] = dict(pcfg, interfaces=ifaces)
        out[name] = dict(br.config, ports=ports)
    return {"other_config": dict(other_config), "bridges": out}


def iface_status(snap, bridges, port_stats):
    """{"Interface": {uuid: columns}} for every interface the daemon knows.

    port_stats(dp_port) -> {stat: int} from the datapath."""
    by_name = {}
    for br in bridges.values():
        by_name.update(br.ifaces)
    rows = {}
    for u, row in snap.tables["Interface"].items():
        iface = by_name.get(row["name"])
        if iface is None:
            continue
        rows[u] = _iface_columns(iface, port_stats)
    return {"Interface": rows}


def _iface_columns(iface, port_stats):
    port = iface.port
    if port is None:
        return {"ofport": -1, "error": iface.error or None, "link_state": None,
                "admin_state": None, "statistics": {}}
    own = getattr(port, "counters", None)      # a patch port counts for itself
    stats = own() if callable(own) else port_stats(iface.dp_port)
    up = bool(port.link_up())
    cols = {"ofport": iface.ofport, "error": iface.error or None,
            "link_state": "up" if up else "down", "admin_state": "up",
            "mtu": int(port.mtu),
            "statistics": {k: int(stats.get(k, 0)) for k in STAT_KEYS},
            "status": {str(k): str(v) for k, v in port.status().items()}}
    if port.mac:
        cols["mac_in_use"] = ":".join(f"{b:02x}" for b in port.mac)
    return cols


def key_in_port(key):
    return get_field(key, "in_port")


def mirror_config(t, b):
    """A bridge's Mirror rows as plain data, ports by name (the bridge turns
    them into ofproto Mirrors over its ofports), in name order."""
    def name(pu):
        p = t["Port"].get(pu) if pu else None
        return p["name"] if p is not None else None
    out = []
    for mu in b["mirrors"]:
        m = t["Mirror"].get(mu)
        if m is None:
            continue
        out.append({"name": m["name"], "select_all": bool(m["select_all"]),
                    "select_src_port": sorted(filter(None, map(name, m["select_src_port"]))),
                    "select_dst_port": sorted(filter(None, map(name, m["select_dst_port"]))),
                    "select_vlan": sorted(m["select_vlan"]),
                    "output_port": name(m["output_port"]), "output_vlan": m["output_vlan"]})
    return sorted(out, key=lambda c: c["name"])


def mirror_status(snap, bridges):
    """{"Mirror": {uuid: {"statistics": {tx_packets, tx_bytes}}}}: the copies
    each mirror sent, as Open vSwitch counts them."""
    rows = {}
    t = snap.tables
    for b in t["Bridge"].values():
        br = bridges.get(b["name"])
        if br is None:
            continue
        for mu in b["mirrors"]:
            m = t["Mirror"].get(mu)
            c = br.ofproto.mirror_stats.get(m["name"]) if m is not None else None
            if c is not None:
                rows[mu] = {"statistics": {"tx_packets": int(c.n_packets),
                                           "tx_bytes": int(c.n_bytes)}}
    return {"Mirror": rows} if rows else {}
