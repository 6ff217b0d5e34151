"""The daemon's appctl commands (and the RPC behind pvs-vsctl; pvs-ofctl speaks OpenFlow).

Each handler takes the list of string arguments and returns text; errors are
raised as CommandError with the message the CLI prints. Handlers run on the
main thread and take the switch lock when they touch ofproto.
"""

import numpy as np

from pyvswitch.core import vlog
from pyvswitch.datapath import layout
from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.openflow.text import FlowParseError, parse_flow
from pyvswitch.ofproto.trace import parse_ct_state, trace
from pyvswitch.vswitchd.unixctl import CommandError, Deferred

VERSION = "pvs-vswitchd (pyvswitch) 0.1.0"


def register_all(sw):
    reg = sw.unixctl.register
    reg("exit", "", 0, 0, lambda a: _exit(sw))
    reg("version", "", 0, 0, lambda a: VERSION + "\n")
    reg("vlog/set", "{spec | PATTERN:destination:pattern}", 0, 8, _vlog_set)
    reg("vlog/list", "", 0, 0, lambda a: vlog.list_levels())
    reg("fdb/show", "bridge", 1, 1, lambda a: _fdb_show(sw, a[0]))
    reg("fdb/flush", "[bridge]", 0, 1, lambda a: _fdb_flush(sw, a))
    reg("dpif-netdev/pmd-stats-show", "[-pmd core] [dp]", 0, 3, lambda a: sw.dpif.pmd_stats_show())
    reg("dpif-netdev/pmd-stats-clear", "[-pmd core] [dp]", 0, 3, lambda a: _clear(sw))
    reg("dpif-netdev/pmd-rxq-show", "[-pmd core] [dp]", 0, 3, lambda a: sw.dpif.rxq_show())
    reg("dpctl/dump-flows", "[dp] [filter=...]", 0, 2, lambda a: sw.dpif.format_flows())
    reg("dpctl/del-flows", "[dp]", 0, 1, lambda a: _del_flows(sw))
    reg("upcall/show", "", 0, 0, lambda a: sw.revalidator.show())
    reg("ofproto/trace", "bridge flow [--ct-next flags]... [packet-hex]", 2, 64,
        lambda a: _trace(sw, *_trace_args(a)))
    reg("netdev-dummy/receive", "port packet-hex...", 2, 64, lambda a: _dummy_receive(sw, a[0], a[1:]))
    reg("netdev-dummy/capture", "port", 1, 1, lambda a: _dummy_capture(sw, a[0]))
    reg("netdev-dummy/set-admin-state", "[netdev] up|down", 1, 2,
        lambda a: _dummy_admin_state(sw, a))
    reg("vsctl/apply", "next_cfg", 1, 1, lambda a: _vsctl_apply(sw, a[0]), hidden=True)
    register_bond(sw, reg)
    from pyvswitch.vswitchd import tnlctl   # ovs/route/*, tnl/neigh/* (native tunnels)
    tnlctl.register(sw, reg)
    from pyvswitch.vswitchd import ctctl    # dpctl/*conntrack*, ct-*
    ctctl.register(sw, reg)


def _exit(sw):
    sw.request_exit()
    return ""


def _vlog_set(args):
    try:
        for spec in args or ["info"]:
            vlog.set_levels(spec)
    except ValueError as e:
        raise CommandError(str(e)) from None
    return ""


def bridge_or_error(sw, name):
    br = sw.bridges.get(name)
    if br is None:
        raise CommandError(f"no such bridge \"{name}\"" if name else "no bridge given")
    return br


def _fdb_show(sw, name):
    with sw.lock:
        return bridge_or_error(sw, name).ofproto.fdb_show(sw.clock.now())


def _fdb_flush(sw, args):
    with sw.lock:
        targets = [bridge_or_error(sw, args[0])] if args else list(sw.bridges.values())
        for br in targets:
            br.ofproto.fdb_flush()
    sw.dpif.flow_flush()
    return "table successfully flushed\n"


def _clear(sw):
    sw.dpif.pmd_stats_clear()
    return ""


def _del_flows(sw):
    sw.dpif.flow_flush()
    return ""


def _trace_args(args):
    """ofproto/trace's arguments, options anywhere as in OVS:
    (bridge, flow, packet-hex tuple, ct_next list or None)."""
    plain, ct_next = [], None
    it = iter(args)
    for a in it:
        if a == "--ct-next":
            text = next(it, None)
            if text is None:
                raise CommandError("Missing argument for option --ct-next")
            try:
                ct_next = (ct_next or []) + [parse_ct_state(text)]
            except ValueError as e:
                raise CommandError(str(e)) from None
        elif a.startswith("-"):
            raise CommandError(f"{a}: unknown option")
        else:
            plain.append(a)
    if not 2 <= len(plain) <= 3:
        raise CommandError("ofproto/trace: bridge flow [--ct-next flags]... [packet-hex]")
    return plain[0], plain[1], tuple(plain[2:]), ct_next


def _trace(sw, bridge, flow, packet_hex=(), ct_next=None):
    """ofproto/trace: the packet is described by a match (in_port is an
    ofport), or by the match's metadata plus a frame in hexadecimal; like
    OVS's, the trace has no side effects (nothing is learned)."""
    with sw.lock:
        br = bridge_or_error(sw, bridge)
        o = br.ofproto
        try:
            fm = parse_flow(flow, "dump", o.resolve)
        except FlowParseError as e:
            raise CommandError(str(e)) from None
        key, _ = fm.match.key_mask()
        words = np.array(key[:layout.KEY_WORDS], dtype=np.uint64)
        port = o.port(layout.get_field(words, "in_port"))
        if port is None:
            raise CommandError("in_port is not a port of this bridge")
        dp_port = port.dp_port if port.dp_port is not None else 0   # a patch port: none
        if packet_hex:
            try:
                frame = bytes.fromhex(packet_hex[0])
            except ValueError:
                raise CommandError("the packet must be given in hexadecimal") from None
            words = parse_packet_ref(frame, dp_port)
        else:
            layout.pack_key({"in_port": dp_port}, out=words)
        return trace(o, words, sw.clock.now(), learn=False,
                     in_ofport=port.ofport if port.dp_port is None else None, ct_next=ct_next)


# --- bonds (OVS's bond/* unixctl commands, same messages) ---------------------------
def register_bond(sw, reg):
    reg("bond/list", "", 0, 0, lambda a: _bond_list(sw))
    reg("bond/show", "[port]", 0, 1, lambda a: _bond_show(sw, a))
    reg("bond/migrate", "port hash member", 3, 3, lambda a: _bond_do(
        sw, a[0], lambda b: b.migrate(_hash_arg(a[1]), a[2])))
    for name in ("bond/set-active-member", "bond/set-active-slave"):
        reg(name, "port member", 2, 2, lambda a: _bond_do(
            sw, a[0], lambda b: b.set_active_member(a[1])), hidden=name.endswith("slave"))
    for verb, enable in (("enable", True), ("disable", False)):
        for noun in ("member", "slave"):
            reg(f"bond/{verb}-{noun}", "port member", 2, 2,
                lambda a, e=enable: _bond_do(sw, a[0], lambda b: b.enable_member(a[1], e)),
                hidden=noun == "slave")
    reg("bond/hash", "mac [vlan] [basis]", 1, 3, _bond_hash)
    reg("lacp/show", "[port]", 0, 1, lambda a: _lacp_show(sw, a))


def _lacp_show(sw, args):
    with sw.lock:
        bonds = {n: b for n, b in _bonds(sw).items() if b.lacp is not None}
        if args and args[0] not in bonds:
            raise CommandError("no such lacp object")
        now = sw.clock.now()
        return "".join(bonds[n].lacp.show(now) for n in (args or sorted(bonds)))


def _bonds(sw):
    return {name: bond for br in sw.bridges.values() for name, bond in br.bonds.items()}


def _bond_list(sw):
    with sw.lock:
        lines = ["bond\ttype\trecircID\tmembers"]
        lines += [b.list_line() for _, b in sorted(_bonds(sw).items())]
    return "\n".join(lines) + "\n"


def _bond_show(sw, args):
    with sw.lock:
        bonds = _bonds(sw)
        now = sw.clock.now()
        if args:
            if args[0] not in bonds:
                raise CommandError("no such bond")
            return bonds[args[0]].show(now)
        return "".join(b.show(now) for _, b in sorted(bonds.items()))


def _bond_do(sw, name, action):
    """Run an appctl change on bond `name`, then revalidate its bridge."""
    from pyvswitch.ofproto.bond import BondError
    with sw.lock:
        for br in sw.bridges.values():
            bond = br.bonds.get(name)
            if bond is not None:
                break
        else:
            raise CommandError("no such bond")
        try:
            reply = action(bond)
        except BondError as e:
            raise CommandError(str(e)) from None
        br.ofproto.bump()
    sw.wake()
    return reply + "\n"


def _hash_arg(text):
    if not text.isdigit():
        raise CommandError("bad hash")
    return int(text)


def _bond_hash(args):
    from pyvswitch.ofproto.bond import Bond, BOND_MASK
    try:
        mac = int(args[0].replace(":", ""), 16)
        if len(args[0].split(":")) != 6:
            raise ValueError
    except ValueError:
        raise CommandError("invalid mac") from None
    vlan = basis = 0
    if len(args) > 1:
        if not args[1].isdigit():
            raise CommandError("invalid vlan")
        vlan = int(args[1])
    if len(args) > 2:
        if not args[2].isdigit():
            raise CommandError("invalid basis")
        basis = int(args[2])
    return f"{Bond('hash').hash_mac(mac, vlan, basis) & BOND_MASK}\n"


def _dummy_admin_state(sw, args):
    """As OVS's netdev-dummy/set-admin-state: a dummy port's link goes
    up or down (every dummy port when no name is given)."""
    state = args[-1]
    if state not in ("up", "down"):
        raise CommandError("Invalid Admin State")
    ports = [_dummy_port(sw, args[0])] if len(args) == 2 else [
        i.port for br in sw.bridges.values() for i in br.ifaces.values()
        if i.port is not None and i.type == "dummy"]
    for port in ports:
        port.admin_up = state == "up"
    sw.wake()
    return "OK\n"


def _dummy_port(sw, name):
    for br in sw.bridges.values():
        iface = br.ifaces.get(name)
        if iface is not None and iface.port is not None and iface.type == "dummy":
            return iface.port
    raise CommandError(f"no such dummy port {name}")


def _dummy_receive(sw, name, frames):
    """As OVS's netdev-dummy/receive, with frames given in hex: they arrive at
    the port as if from its wire."""
    port = _dummy_port(sw, name)
    try:
        data = [bytes.fromhex(f) for f in frames]
    except ValueError:
        raise CommandError("packets must be given in hexadecimal") from None
    if any(len(d) < 14 for d in data):
        raise CommandError("a packet is shorter than an Ethernet header")
    lost = sum(1 for d in data if not port.inject(d))
    return f"{lost} packets dropped (rx ring full)\n" if lost else ""


def _dummy_capture(sw, name):
    """The frames the switch transmitted on a dummy port since the last call,
    one hex line each."""
    return "".join(f.hex() + "\n" for f in _dummy_port(sw, name).capture())


def _vsctl_apply(sw, cfg):
    """Answer when the daemon has applied the database up to next_cfg=cfg."""
    try:
        cfg = int(cfg)
    except ValueError:
        raise CommandError("vsctl/apply: next_cfg must be an integer") from None
    if cfg <= sw.cur_cfg:
        return sw.cur_cfg
    d = Deferred()
    sw.waiters.append((cfg, d))
    sw.wake()
    return d
