"""pvs-ofctl: OpenFlow management of a bridge (ovs-ofctl syntax).

    pvs-ofctl [--rundir DIR] [-O OpenFlow10|OpenFlow13] COMMAND SWITCH [ARG...]

SWITCH is a bridge name (the daemon's `<rundir>/<bridge>.mgmt` socket, as
ovs-ofctl's br0.mgmt), `unix:PATH`, a socket path, or `tcp:HOST[:PORT]`.
Every command speaks OpenFlow on the wire (ofclient.py), 1.3 when the switch
does, else 1.0 (`-O` restricts the versions), and prints what ovs-ofctl 3.1
prints for the same replies: the same header lines, xids, layout and action
spellings. Flow, group and meter text is parsed here (pyvswitch.openflow.text,
text_group); port names in it come from the switch's port descriptions.

Modules: this one (options, the session, show/ports/tables/flows/flow-mods),
ofctl_flows.py (dump-flows --sort/--no-stats, replace-flows, diff-flows),
ofctl_groups.py (groups and meters).

Connections and xids, as ovs-ofctl: a command that parses flow or group text
with port names allowed (not --no-names) first fetches the port names on a
connection of its own and accounts for the table-name fetch ovs-ofctl makes
(pyvswitch's tables have no names), so the main request is xid 6; show asks
for the switch config on a second connection. Errors from the switch are
printed as ovs-ofctl's first line (`OFPT_ERROR (OF1.3) (xid=0x6): NAME`) and
exit 1.

Port names or numbers in the output follow ovs-ofctl: names when stdout is a
terminal, numbers otherwise; --names / --no-names choose.
"""

import argparse
import dataclasses
import sys

from pyvswitch.cli.ofclient import OfClient, OfClientError, Xids, parse_versions
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import nx, wire
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.text import format_flow_stats, parse_flow

# command -> (min extra args after SWITCH, max extra args)
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


class SortAction(argparse.Action):
    """--sort[=FIELD] / --rsort[=FIELD]: one more sort criterion each time."""

    def __call__(self, parser, ns, value, option):
        crit = list(getattr(ns, "criteria", None) or [])
        crit.append((option == "--rsort", value or None))
        ns.criteria = crit


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
                       help="show port numbers (default otherwise); no port names in input")
    p.add_argument("-t", "--timeout", type=float, default=30.0)
    stats = p.add_mutually_exclusive_group()
    stats.add_argument("--no-stats", dest="stats", action="store_false", default=True,
                       help="dump-flows without statistics")
    stats.add_argument("--stats", dest="stats", action="store_true")
    p.add_argument("--sort", "--rsort", dest="criteria", action=SortAction, default=[],
                   help="dump-flows sorted by FIELD (priority without one), "
                        "ascending (--sort) or descending (--rsort); repeatable")
    p.add_argument("command")
    p.add_argument("bridge", nargs="?")
    p.add_argument("args", nargs="*")
    # --sort and --rsort take an optional =FIELD; alone they sort by priority
    argv = [a + "=" if a in ("--sort", "--rsort") else a for a in argv]
    return p.parse_intermixed_args(argv)   # options anywhere, as ovs-ofctl


def read_lines(arg):
    """The non-blank, non-comment lines of FILE ('-': stdin) with their
    line numbers."""
    f = sys.stdin if arg == "-" else open(arg)
    with f:
        lines = [(n, ln.strip()) for n, ln in enumerate(f, 1)]
    return [(n, ln) for n, ln in lines if ln and not ln.startswith("#")]


class Session:
    """One command: its options, its connections (sharing one xid counter),
    the switch's port names (fetched once, when needed)."""

    def __init__(self, a, show_names):
        self.a = a
        self.names = show_names                 # ports by name in the output
        self.accept_names = a.names is not False
        self.versions = parse_versions(a.protocols)
        self.xids = Xids()
        self._descs = None
        self._c = None

    # -- connections
    def connect(self, target=None):
        return OfClient(target or self.a.bridge, self.a.rundir, self.versions,
                        self.a.timeout, self.xids)

    @property
    def c(self):
        if self._c is None:
            self._c = self.connect()
        return self._c

    def close(self):
        if self._c is not None:
            self._c.close()

    @property
    def of10(self):
        return self.c.version == wire.OFP10

    def head(self, what, xid):
        ver = "" if self.of10 else " (OF1.3)"
        return f"{what}{ver} (xid={xid:#x}):"

    def transact(self, msg):
        """(xid, replies) of one request."""
        return self.c.xid + 1, self.c.transact(msg)

    def noreply(self, msg):
        """A request with no reply, then a barrier (ovs-ofctl's
        transact_noreply); an error answer raises OfError."""
        errors = self.c.send_all([msg])
        if errors:
            raise errors[0][1]

    def flow_format(self):
        """OpenFlow 1.0: NXM flow matches in flow statistics (NXT_SET_FLOW_FORMAT
        and a barrier, as ovs-ofctl)."""
        if self.of10:
            self.noreply(M.SetFlowFormat("nxm"))

    # -- port names
    def _fetch_descs(self, client):
        if client.version == wire.OFP10:
            return list(client.transact(M.FeaturesRequest())[0].ports)
        return [p for r in client.transact(M.PortDescRequest()) for p in r.ports]

    def name_maps(self):
        """What ovs-ofctl does before parsing text that may name ports: fetch
        the port names on a connection of its own (and the table names on
        another, which pyvswitch's tables do not have: their two xids are
        accounted for). Nothing with --no-names."""
        if not self.accept_names or self._descs is not None:
            return
        with self.connect() as client:
            self._descs = self._fetch_descs(client)
        self.xids.skip(2)

    def descs(self):
        if self._descs is None:
            self._descs = self._fetch_descs(self.c)
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

    def parse(self, text, command):
        return parse_flow(text, command, self.resolve)


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
    xid, (feat,) = s.transact(M.FeaturesRequest())
    lines = [f"{s.head('OFPT_FEATURES_REPLY', xid)} dpid:{feat.datapath_id:016x}",
             f"n_tables:{feat.n_tables}, n_buffers:{feat.n_buffers}"]
    if s.of10:
        lines.append(f"capabilities: {_bits(feat.capabilities, CAPS10)}")
        acts = {n for i, n in enumerate(ACTIONS10) if feat.actions >> i & 1}
        lines.append("actions: " + " ".join(a for a in ACTION_ORDER if a in acts))
        s._descs = list(feat.ports)
    else:
        lines.append(f"capabilities: {_bits(feat.capabilities, CAPS13)}")
        dxid, replies = s.transact(M.PortDescRequest())
        s._descs = [p for r in replies for p in r.ports]
        lines.append(s.head("OFPST_PORT_DESC reply", dxid))
    lines += _port_lines(s._descs)
    with s.connect() as c2:             # ovs-ofctl: a connection of its own
        cxid = c2.xid + 1
        cfg = c2.transact(M.GetConfigRequest())[0]
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
    xid, replies = s.transact(M.PortStatsRequest(port))
    stats = [p for r in replies for p in r.ports]
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


def flow_filter(s, args):
    """The FlowStatsRequest fields of dump-flows/dump-aggregate FLOW."""
    if args and args[0]:
        s.name_maps()
    fm = s.parse(args[0] if args else "", "dump")
    return dict(match=fm.match, table=fm.table, out_port=fm.out_port,
                cookie=fm.cookie or 0, cookie_mask=fm.cookie_mask, nxm=s.of10)


def flow_line(s, f, namer, stats=True, ages=True):
    """One dump-flows line for a FlowStats from the switch (ages: 1.0's
    idle_age/hard_age, which ovs-ofctl prints only in unsorted dumps)."""
    ages = ages and s.of10
    return format_flow_stats(
        match=f.match, priority=f.priority, actions=f.actions, table=f.table_id,
        cookie=f.cookie, wire_duration=(f.duration_sec, f.duration_nsec),
        n_packets=f.packet_count, n_bytes=f.byte_count,
        idle_timeout=f.idle_timeout, hard_timeout=f.hard_timeout,
        idle_age=f.idle_age if ages else None,
        hard_age=f.hard_age if ages else None,
        flags=frozenset(w for b, w in nx.FM_FLAGS.items() if f.flags & b),
        namer=namer, meter=f.meter, clear_actions=f.clear_actions,
        write_actions=f.write_actions, write_metadata=f.write_metadata, stats=stats,
        spelling="of10" if s.of10 else "of13")


def cmd_dump_flows(s, args):
    from pyvswitch.cli import ofctl_flows
    if s.a.criteria or s.names or not s.a.stats:
        return ofctl_flows.dump_sorted(s, args)
    req = M.FlowStatsRequest(**flow_filter(s, args))
    s.flow_format()
    xid, replies = s.transact(req)
    lines = []
    for reply in replies:          # ovs-ofctl prints every part with its header
        lines.append(s.head("NXST_FLOW reply" if s.of10 else "OFPST_FLOW reply", xid))
        lines += [flow_line(s, f, None) for f in reply.flows]
    return lines


def cmd_dump_aggregate(s, args):
    req = M.AggregateStatsRequest(**flow_filter(s, args))
    s.flow_format()
    xid, (r,) = s.transact(req)
    what = "NXST_AGGREGATE reply" if s.of10 else "OFPST_AGGREGATE reply"
    return [f"{s.head(what, xid)} packet_count={r.packet_count} "
            f"byte_count={r.byte_count} flow_count={r.flow_count}"]


def cmd_dump_tables(s, args):
    xid, replies = s.transact(M.TableStatsRequest())
    tables = [t for r in replies for t in r.tables]
    lines = [s.head("OFPST_TABLE reply", xid)]
    for t in tables:
        if t.active_count:
            lines.append(f"  table {t.table_id}:")
            lines.append(f"    active={t.active_count}, lookup={t.lookup_count}, "
                         f"matched={t.matched_count}")
    return lines


def send_flow_mods(s, mods):
    """Flow mods and a barrier (1.0: NXT_FLOW_MOD_TABLE_ID first when a table
    is named); the first error answer raises OfError."""
    msgs = list(mods)
    if s.of10 and any(fm.table or (fm.table == 0 and fm.command != "add") for fm in msgs):
        msgs = [M.FlowModTableId(True)] + [
            dataclasses.replace(fm, table=255) if fm.table is None and fm.command != "add"
            else fm for fm in msgs]
    errors = s.c.send_all(msgs)
    if errors:
        raise errors[0][1]
    return []


def cmd_add_flows(s, lines):
    s.name_maps()
    mods = [s.parse(f, "add") for f in lines]          # all parsed before any is sent
    return send_flow_mods(s, mods)


def cmd_mod_del_flows(s, args, command):
    s.name_maps()
    return send_flow_mods(s, [s.parse(args[0] if args else "", command)])


def _file_lines(path):
    try:
        return [ln for _, ln in read_lines(path)]
    except OSError as e:
        raise OfClientError(f"{path}: open failed ({e.strerror})") from None


def wire_command(a):
    """The function serving a.command: fn(session, args) -> output lines."""
    from pyvswitch.cli import ofctl_flows, ofctl_groups
    strict = "_strict" if a.strict else ""
    table = {
        "show": cmd_show, "dump-ports": cmd_dump_ports,
        "dump-ports-desc": cmd_dump_ports_desc, "dump-flows": cmd_dump_flows,
        "dump-aggregate": cmd_dump_aggregate, "dump-tables": cmd_dump_tables,
        "add-flow": lambda s, args: cmd_add_flows(s, [args[0]]),
        "add-flows": lambda s, args: cmd_add_flows(s, _file_lines(args[0])),
        "mod-flows": lambda s, args: cmd_mod_del_flows(s, args, "modify" + strict),
        "del-flows": lambda s, args: cmd_mod_del_flows(s, args, "delete" + strict),
        "replace-flows": ofctl_flows.replace_flows,
        "diff-flows": ofctl_flows.diff_flows,
    }
    table.update(ofctl_groups.COMMANDS)
    return table[a.command]


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.command not in COMMANDS:
        print(f"pvs-ofctl: unknown command '{a.command}'; use --help for help", file=sys.stderr)
        return 1
    lo, hi = COMMANDS[a.command]
    if a.bridge is None or not lo <= len(a.args) <= hi:
        print(f"pvs-ofctl: '{a.command}' command requires at least {lo + 1} arguments", file=sys.stderr)
        return 1
    show_names = sys.stdout.isatty() if a.names is None else a.names
    fn = wire_command(a)
    status = 0
    try:
        s = Session(a, show_names)
        try:
            out = fn(s, a.args)
        finally:
            s.close()
        if isinstance(out, tuple):          # (lines, exit status): diff-flows
            out, status = out
    except OfClientError as e:
        text = str(e)
        prefix = "" if text.startswith("OFPT_ERROR") else "pvs-ofctl: "
        print(prefix + text, file=sys.stderr)
        return 1
    except FlowParseError as e:
        print(f"pvs-ofctl: {e}", file=sys.stderr)
        return 1
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
