"""The daemon's appctl commands (and the RPCs behind pvs-ofctl and pvs-vsctl).

Each handler takes the list of string arguments and returns text; errors are
raised as CommandError with the message the CLI prints. Handlers run on the
main thread and take the switch lock when they touch ofproto.
"""

import numpy as np

from pyvswitch.core import vlog
from pyvswitch.datapath import layout
from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.openflow.text import FlowParseError, parse_flow
from pyvswitch.ofproto.trace import trace
from pyvswitch.vswitchd import ofctl_cmds
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
    reg("ofproto/trace", "bridge flow [packet-hex]", 2, 3, lambda a: _trace(sw, a[0], a[1], a[2:]))
    reg("netdev-dummy/receive", "port packet-hex...", 2, 64, lambda a: _dummy_receive(sw, a[0], a[1:]))
    reg("netdev-dummy/capture", "port", 1, 1, lambda a: _dummy_capture(sw, a[0]))
    reg("vsctl/apply", "next_cfg", 1, 1, lambda a: _vsctl_apply(sw, a[0]), hidden=True)
    ofctl_cmds.register(sw, reg)


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


def _trace(sw, bridge, flow, packet_hex=()):
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
        if packet_hex:
            try:
                frame = bytes.fromhex(packet_hex[0])
            except ValueError:
                raise CommandError("the packet must be given in hexadecimal") from None
            words = parse_packet_ref(frame, port.dp_port)
        else:
            layout.pack_key({"in_port": port.dp_port}, out=words)
        return trace(o, words, sw.clock.now(), learn=False)


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
