"""pvs-ofctl: OpenFlow management of a bridge (ovs-ofctl syntax).

    pvs-ofctl [--rundir DIR] [-O OpenFlow10|OpenFlow13] COMMAND SWITCH [ARG...]

Commands: show, dump-ports SW [PORT], dump-ports-desc SW, dump-flows SW [FLOWS],
dump-aggregate SW [FLOWS], dump-tables SW, add-flow SW FLOW, add-flows SW FILE
('-' for stdin), mod-flows SW FLOW (--strict), del-flows SW [FLOWS] (--strict).

SWITCH is a bridge name (the daemon's `<rundir>/<bridge>.mgmt` socket, as
ovs-ofctl's br0.mgmt), `unix:PATH`, a socket path, or `tcp:HOST[:PORT]`.
pvs-ofctl speaks OpenFlow on the wire (ofclient.py): 1.3 when the switch
does, else 1.0 (`-O` restricts the versions). Flow text is parsed here with
pyvswitch.openflow.text; port names in it are resolved from the switch's port
descriptions. Output follows ovs-ofctl's layout for the negotiated version.

Port names or numbers in the output follow ovs-ofctl: names when stdout is a
terminal, numbers otherwise; --names / --no-names choose.

Commands not (yet) spoken over the wire go to the daemon's management RPC
(`ofctl/<command>`), as every command did before: replace-flows, diff-flows
(bridges through the RPC, or files), dump-flows with --no-stats / --sort /
--rsort, and the group and meter commands (add-group(s), mod-group,
del-groups, dump-groups, dump-group-stats, add-meter, mod-meter, del-meters,
dump-meters, meter-stats).
"""

import argparse
import dataclasses
import os
import sys

from pyvswitch.cli.ofclient import OfClient, OfClientError, parse_versions
from pyvswitch.core import paths
from pyvswitch.core.unixrpc import RpcError, RpcUnavailable, call
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import nx, wire
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.text import format_flow_stats, parse_flow

# command -> (min extra args after BRIDGE, max extra args)
COMMANDS = {
    "show": (0, 0),
    "dump-ports": (0, 1),
    "dump-ports-desc": (0, 0),
    "dump-flows": (0, 1),
    "dump-aggregate": (0, 1),
    "add-flow": (1, 1),
    "add-flows": (1, 1),
    "mod-flows": (1, 1),
    "del-flows": (0, 1),
    "dump-tables": (0, 0),
    "replace-flows": (1, 1),
    "diff-flows": (1, 1),
    "add-group": (1, 1),
    "add-groups": (1, 1),
    "mod-group": (1, 1),
    "del-groups": (0, 1),
    "dump-groups": (0, 1),
    "dump-group-stats": (0, 1),
    "add-meter": (1, 1),
    "mod-meter": (1, 1),
    "del-meters": (0, 1),
    "dump-meters": (0, 1),
    "meter-stats": (0, 1),
}
FILE_COMMANDS = ("replace-flows", "add-groups")     # FILE ('-': stdin) -> lines


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pvs-ofctl", description="OpenFlow management of a pyvswitch bridge.")
    p.add_argument("--rundir", help="daemon run directory (default $PVS_RUNDIR or /var/run/pyvswitch)")
    p.add_argument("--strict", action="store_true", help="match wildcards and priority exactly")
    p.add_argument("-O", "--protocols", help="OpenFlow versions to allow: OpenFlow10, OpenFlow13 "
                   "(comma-separated; default both, 1.3 preferred)")
    names = p.add_mutually_exclusive_group()
    names.add_argument("--names", dest="names", action="store_true", default=None,
                       help="show port names (default when printing to a terminal)")
    names.add_argument("--no-names", dest="names", action="store_false",
                       help="show port numbers (default otherwise)")
    p.add_argument("-t", "--timeout", type=float, default=30.0)
    p.add_argument("--no-stats", action="store_true", help="dump-flows without statistics")
    p.add_argument("--sort", help="dump-flows sorted by FIELD (priority without one)")
    p.add_argument("--rsort", help="dump-flows sorted by FIELD, descending")
    p.add_argument("command")
    p.add_argument("bridge", nargs="?")
    p.add_argument("args", nargs="*")
    # --sort and --rsort take an optional =FIELD; alone they sort by priority
    argv = [a + "=" if a in ("--sort", "--rsort") else a for a in argv]
    return p.parse_intermixed_args(argv)   # options anywhere, as ovs-ofctl


def _read_flows(arg):
    f = sys.stdin if arg == "-" else open(arg)
    with f:
        lines = [ln.strip() for ln in f]
    return [ln for ln in lines if ln and not ln.startswith("#")]


class Session:
    """One command's connection plus what several commands need: the
    version label, port names (fetched once, only when needed)."""

    def __init__(self, client, names):
        self.c, self.names = client, names
        self._descs = None

    @property
    def of10(self):
        return self.c.version == wire.OFP10

    def head(self, what, xid):
        ver = "" if self.of10 else " (OF1.3)"
        return f"{what}{ver} (xid={xid:#x}):"

    def descs(self):
        if self._descs is None:
            if self.of10:
                self._descs = list(self.c.transact(M.FeaturesRequest())[0].ports)
            else:
                self._descs = [p for r in self.c.transact(M.PortDescRequest()) for p in r.ports]
        return self._descs

    def resolve(self, name):
        for d in self.descs():
            if d.name == name:
                return d.port_no
        return None

    def namer(self):
        if not self.names:
            return None
        names = {d.port_no: d.name for d in self.descs()}
        return names.get


# --- formatting ---------------------------------------------------------------------
def _label(ofport):
    return "LOCAL" if ofport == F.OFPP_LOCAL else str(ofport)


def _mac(value):
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


def _port_lines(descs):
    lines = []
    for d in sorted(descs, key=lambda d: (d.port_no == F.OFPP_LOCAL, d.port_no)):
        lines.append(f" {_label(d.port_no)}({d.name}): addr:{_mac(d.hw_addr)}")
        lines.append(f"     config:     {'PORT_DOWN' if d.config & 1 else '0'}")
        lines.append(f"     state:      {'LINK_DOWN' if d.state & 1 else '0'}")
        lines.append(f"     speed: {d.curr_speed // 1000} Mbps now, "
                     f"{d.max_speed // 1000} Mbps max")
    return lines


CAPS10 = ("FLOW_STATS", "TABLE_STATS", "PORT_STATS", "STP", "RESERVED", "IP_REASM",
          "QUEUE_STATS", "ARP_MATCH_IP")
CAPS13 = ("FLOW_STATS", "TABLE_STATS", "PORT_STATS", "GROUP_STATS", "", "IP_REASM",
          "QUEUE_STATS", "", "PORT_BLOCKED")
ACTIONS10 = ("output", "set_vlan_vid", "set_vlan_pcp", "strip_vlan", "mod_dl_src",
             "mod_dl_dst", "mod_nw_src", "mod_nw_dst", "mod_nw_tos", "mod_tp_src",
             "mod_tp_dst", "enqueue")
ACTION_ORDER = ("output", "enqueue", "set_vlan_vid", "set_vlan_pcp", "strip_vlan",
                "mod_dl_src", "mod_dl_dst", "mod_nw_src", "mod_nw_dst", "mod_nw_tos",
                "mod_tp_src", "mod_tp_dst")
FRAGS = {0: "normal", 1: "drop", 2: "reassemble", 3: "nx-match"}


def _bits(value, names):
    return " ".join(n for i, n in enumerate(names) if n and value >> i & 1)


def cmd_show(s, args):
    xid = s.c.xid + 1
    feat = s.c.transact(M.FeaturesRequest())[0]
    lines = [f"{s.head('OFPT_FEATURES_REPLY', xid)} dpid:{feat.datapath_id:016x}",
             f"n_tables:{feat.n_tables}, n_buffers:{feat.n_buffers}"]
    if s.of10:
        lines.append(f"capabilities: {_bits(feat.capabilities, CAPS10)}")
        acts = {n for i, n in enumerate(ACTIONS10) if feat.actions >> i & 1}
        lines.append("actions: " + " ".join(a for a in ACTION_ORDER if a in acts))
        s._descs = list(feat.ports)
    else:
        lines.append(f"capabilities: {_bits(feat.capabilities, CAPS13)}")
        dxid = s.c.xid + 1
        s._descs = [p for r in s.c.transact(M.PortDescRequest()) for p in r.ports]
        lines.append(s.head("OFPST_PORT_DESC reply", dxid))
    lines += _port_lines(s._descs)
    cxid = s.c.xid + 1
    cfg = s.c.transact(M.GetConfigRequest())[0]
    lines.append(f"{s.head('OFPT_GET_CONFIG_REPLY', cxid)} "
                 f"frags={FRAGS.get(cfg.flags & 3, 'normal')} miss_send_len={cfg.miss_send_len}")
    return lines


def cmd_dump_ports_desc(s, args):
    xid = s.c.xid + 1
    descs = s.descs()
    return [s.head("OFPST_PORT_DESC reply", xid)] + _port_lines(descs)


def cmd_dump_ports(s, args):
    port = F.OFPP_NONE
    if args:
        want = args[0]
        port = F.OFPP_LOCAL if want == "LOCAL" else (int(want) if want.isdigit()
                                                     else s.resolve(want))
        if port is None or not any(d.port_no == port for d in s.descs()):
            raise OfClientError(f"{want}: invalid or unknown port")
    xid = s.c.xid + 1
    stats = [p for r in s.c.transact(M.PortStatsRequest(port)) for p in r.ports]
    namer = s.namer()
    stats.sort(key=lambda p: (p.port_no == F.OFPP_LOCAL, p.port_no))
    lines = [f"{s.head('OFPST_PORT reply', xid)} {len(stats)} ports"]
    for p in stats:
        name = namer(p.port_no) if namer else None
        label = f'"{name}"' if name else _label(p.port_no)
        lines.append(f"  port {label:>2}: rx pkts={p.rx_packets}, bytes={p.rx_bytes}, "
                     f"drop={p.rx_dropped}, errs={p.rx_errors}, frame={p.rx_frame_err}, "
                     f"over={p.rx_over_err}, crc={p.rx_crc_err}")
        lines.append(f"           tx pkts={p.tx_packets}, bytes={p.tx_bytes}, "
                     f"drop={p.tx_dropped}, errs={p.tx_errors}, coll={p.collisions}")
        if not s.of10:
            lines.append(f"           duration={p.duration_sec}.{p.duration_nsec:09d}s")
    return lines


def _filter(s, args):
    fm = parse_flow(args[0] if args else "", "dump", s.resolve)
    return dict(match=fm.match, table=fm.table, out_port=fm.out_port,
                cookie=fm.cookie or 0, cookie_mask=fm.cookie_mask, nxm=s.of10)


def cmd_dump_flows(s, args):
    req = M.FlowStatsRequest(**_filter(s, args))
    if s.of10:
        s.c.send(M.SetFlowFormat("nxm"))
    namer = s.namer()
    lines = []
    for reply in s.c.transact(req):
        for f in reply.flows:
            lines.append(format_flow_stats(
                match=f.match, priority=f.priority, actions=f.actions, table=f.table_id,
                cookie=f.cookie, duration=f.duration_sec + f.duration_nsec / 1e9,
                n_packets=f.packet_count, n_bytes=f.byte_count,
                idle_timeout=f.idle_timeout, hard_timeout=f.hard_timeout,
                idle_age=f.idle_age if s.of10 else None,
                hard_age=f.hard_age if s.of10 else None,
                flags=frozenset(w for b, w in nx.FM_FLAGS.items() if f.flags & b),
                namer=namer, meter=f.meter, clear_actions=f.clear_actions,
                write_actions=f.write_actions, write_metadata=f.write_metadata))
    return lines


def cmd_dump_aggregate(s, args):
    req = M.AggregateStatsRequest(**_filter(s, args))
    if s.of10:
        s.c.send(M.SetFlowFormat("nxm"))
    xid = s.c.xid + 1
    r = s.c.transact(req)[0]
    what = "NXST_AGGREGATE reply" if s.of10 else "OFPST_AGGREGATE reply"
    return [f"{s.head(what, xid)} packet_count={r.packet_count} "
            f"byte_count={r.byte_count} flow_count={r.flow_count}"]


def cmd_dump_tables(s, args):
    xid = s.c.xid + 1
    tables = [t for r in s.c.transact(M.TableStatsRequest()) for t in r.tables]
    lines = [s.head("OFPST_TABLE reply", xid)]
    for t in tables:
        if t.active_count:
            lines.append(f"  table {t.table_id}:")
            lines.append(f"    active={t.active_count}, lookup={t.lookup_count}, "
                         f"matched={t.matched_count}")
    return lines


def _flow_mods(s, mods):
    """Send flow mods (1.0: with NXT_FLOW_MOD_TABLE_ID when a table is named)."""
    msgs = list(mods)
    if s.of10 and any(fm.table for fm in msgs):
        msgs = [M.FlowModTableId(True)] + [
            dataclasses.replace(fm, table=255) if fm.table is None and fm.command != "add"
            else fm for fm in msgs]
    errors = s.c.send_all(msgs)
    if errors:
        raise errors[0][1]
    return []


def cmd_add_flows(s, args, lines=None):
    mods = [parse_flow(f, "add", s.resolve) for f in lines]   # all parsed before any is sent
    return _flow_mods(s, mods)


def cmd_mod_flows(s, args, strict=False):
    return _flow_mods(s, [parse_flow(args[0], "modify_strict" if strict else "modify",
                                     s.resolve)])


def cmd_del_flows(s, args, strict=False):
    return _flow_mods(s, [parse_flow(args[0] if args else "",
                                     "delete_strict" if strict else "delete", s.resolve)])


def _wire_command(a):
    """The function serving a.command over the wire, or None."""
    if a.command == "add-flow":
        return lambda s, args: cmd_add_flows(s, args, [args[0]])
    if a.command == "add-flows":
        return lambda s, args: cmd_add_flows(s, args, _read_flows(args[0]))
    if a.command in ("mod-flows", "del-flows"):
        fn = cmd_mod_flows if a.command == "mod-flows" else cmd_del_flows
        return lambda s, args: fn(s, args, a.strict)
    return {"show": cmd_show, "dump-ports": cmd_dump_ports,
            "dump-ports-desc": cmd_dump_ports_desc, "dump-flows": cmd_dump_flows,
            "dump-aggregate": cmd_dump_aggregate,
            "dump-tables": cmd_dump_tables}.get(a.command)


def run_wire(a, fn, names):
    try:
        versions = parse_versions(a.protocols)
        if a.command == "add-flows" and a.args[0] != "-":
            open(a.args[0]).close()
        with OfClient(a.bridge, a.rundir, versions, a.timeout) as client:
            lines = fn(Session(client, names), a.args)
    except OSError as e:
        print(f"pvs-ofctl: {a.args[0]}: open failed ({e.strerror})", file=sys.stderr)
        return 1
    except (OfClientError, FlowParseError) as e:
        print(f"pvs-ofctl: {e}", file=sys.stderr)
        return 1
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def run_rpc(a, names):
    """Commands the daemon serves over its management RPC."""
    params = [a.bridge, "1" if names else "0"] + a.args
    method = a.command
    if a.command in FILE_COMMANDS:
        try:
            params = params[:2] + _read_flows(a.args[0])
        except OSError as e:
            print(f"pvs-ofctl: {a.args[0]}: open failed ({e.strerror})", file=sys.stderr)
            return 1
    if a.command == "dump-flows":
        params = params[:2] + _dump_options(a) + params[2:]
    if a.strict and a.command in ("del-flows", "mod-flows"):
        method += "-strict"
    try:
        out = call(paths.ctl_path(a.rundir), "ofctl/" + method, params, timeout=a.timeout)
    except RpcUnavailable as e:
        print(f"pvs-ofctl: {a.bridge}: failed to connect to the switch ({e})", file=sys.stderr)
        return 1
    except RpcError as e:
        print(f"pvs-ofctl: {e}", file=sys.stderr)
        return 1
    if out:
        sys.stdout.write(out)
    return 0


def _dump_options(a):
    opts = ["--no-stats"] if a.no_stats else []
    for name in ("sort", "rsort"):
        value = getattr(a, name)
        if value is not None:
            opts.append(f"--{name}={value}" if value else f"--{name}")
    return opts


def _flow_set(a, source):
    """{(table, priority, match text): canonical flow} of a bridge or a file."""
    from pyvswitch.openflow.text import FlowParseError, format_flow, parse_flow
    if os.path.exists(source):
        lines = _read_flows(source)
    else:
        out = call(paths.ctl_path(a.rundir), "ofctl/dump-flows", [source, "0", "--no-stats"],
                   timeout=a.timeout)
        lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    flows = {}
    for ln in lines:
        try:
            fm = parse_flow(ln, "add")
        except FlowParseError as e:
            raise RpcError(f"{source}: {e}") from None
        text = format_flow(fm)
        key = (fm.table or 0, fm.priority, fm.match.key_mask())
        flows[key] = text
    return flows


def _diff_flows(a, src1, src2):
    """Lines only in src1 with '-', only in src2 (or changed) with '+';
    exit status 2 when there are differences, as ovs-ofctl."""
    try:
        f1, f2 = _flow_set(a, src1), _flow_set(a, src2)
    except RpcUnavailable as e:
        print(f"pvs-ofctl: failed to connect to the switch ({e})", file=sys.stderr)
        return 1
    except RpcError as e:
        print(f"pvs-ofctl: {e}", file=sys.stderr)
        return 1
    diff = False
    for key in sorted(set(f1) | set(f2), key=lambda k: (k[0], -k[1], str(k[2]))):
        if f1.get(key) == f2.get(key):
            continue
        diff = True
        if key in f1:
            print("-" + f1[key])
        if key in f2:
            print("+" + f2[key])
    return 2 if diff else 0


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.command not in COMMANDS:
        print(f"pvs-ofctl: unknown command '{a.command}'; use --help for help", file=sys.stderr)
        return 1
    lo, hi = COMMANDS[a.command]
    if a.bridge is None or not lo <= len(a.args) <= hi:
        print(f"pvs-ofctl: '{a.command}' command requires at least {lo + 1} arguments", file=sys.stderr)
        return 1
    names = sys.stdout.isatty() if a.names is None else a.names
    if a.command == "diff-flows":
        return _diff_flows(a, a.bridge, a.args[0])
    fn = _wire_command(a)
    if a.command == "dump-flows" and _dump_options(a):
        fn = None              # --no-stats / --sort / --rsort: the daemon's RPC
    if fn is not None:
        return run_wire(a, fn, names)
    return run_rpc(a, names)


if __name__ == "__main__":
    sys.exit(main())
