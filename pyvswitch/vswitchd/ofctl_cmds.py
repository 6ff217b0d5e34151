"""The daemon side of pvs-ofctl for the commands it does not (yet) send over
the OpenFlow wire (show, dump-ports, flow-mods... go to <bridge>.mgmt).

Each `ofctl/<command>` RPC takes the bridge name first, then "1" or "0" for
port names or numbers in the output, then the command's arguments (dump-flows
first takes option words: --no-stats, --sort[=field], --rsort[=field]).
Text comes out in ovs-ofctl's layout. Groups and meters: add-group(s),
mod-group, del-groups, dump-groups, dump-group-stats, add-meter, mod-meter,
del-meters, dump-meters, meter-stats; replace-flows swaps the flow table for
the given flows, keeping the counters of flows that did not change.
A flow-mod changes ofproto under the switch lock, then
(with the lock released) makes the datapath drop its cached translations
before the reply goes back, so the very next packet sees the new tables.
"""

from pyvswitch.openflow import messages as M
from pyvswitch.openflow import text_group as TG
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.text import parse_flow
from pyvswitch.ofproto.ofproto import OfprotoError
from pyvswitch.vswitchd.unixctl import CommandError


def register(sw, reg):
    def bridge_cmd(name, lo, hi, fn, mod=False):
        def handler(args):
            br = sw.bridges.get(args[0])
            if br is None:
                raise CommandError(f"{args[0]} is not a bridge or a socket")
            names = args[1] == "1"
            try:
                with sw.lock:
                    out = fn(sw, br, args[2:], names)
            except (FlowParseError, OfprotoError) as e:
                raise CommandError(str(e)) from None
            if mod:
                sw.flows_changed()
            return out
        reg("ofctl/" + name, "bridge names ...", 2 + lo, 2 + hi, handler, hidden=True)

    bridge_cmd("dump-flows", 0, 4, _dump_flows)
    bridge_cmd("replace-flows", 0, 100000, _replace_flows, mod=True)
    for cmd, verb in (("add-group", "add"), ("add-groups", "add"), ("mod-group", "modify"),
                      ("del-groups", "delete")):
        bridge_cmd(cmd, 0 if verb == "delete" else 1, 100000,
                   lambda sw, br, a, n, verb=verb: _group_mods(sw, br, a, verb), mod=True)
    bridge_cmd("dump-groups", 0, 1, _dump_groups)
    bridge_cmd("dump-group-stats", 0, 1, _dump_group_stats)
    for cmd, verb in (("add-meter", "add"), ("mod-meter", "modify"), ("del-meters", "delete")):
        bridge_cmd(cmd, 0 if verb == "delete" else 1, 1,
                   lambda sw, br, a, n, verb=verb: _meter_mod(sw, br, a, verb), mod=True)
    bridge_cmd("dump-meters", 0, 1, _dump_meters)
    bridge_cmd("meter-stats", 0, 1, _meter_stats)


def _dump_flows(sw, br, args, names):
    stats, sort = True, None
    while args and args[0].startswith("--"):
        opt, _, field = args[0].partition("=")
        if opt == "--no-stats":
            stats = False
        elif opt in ("--sort", "--rsort"):
            sort = (field or None, opt == "--rsort")
        else:
            raise CommandError(f"dump-flows: unknown option {args[0]}")
        args = args[1:]
    if len(args) > 1:
        raise CommandError("dump-flows: at most one flow filter")
    return br.ofproto.dump_flows(args[0] if args else "", sw.clock.now(), names=names,
                                 stats=stats, sort=sort)


def _replace_flows(sw, br, flows, names):
    """Make the flow table exactly `flows` (all parsed first: an error
    changes nothing); unchanged flows keep their counters."""
    ofp, now = br.ofproto, sw.clock.now()
    mods = [parse_flow(f, "add", ofp.resolve) for f in flows]
    want = {(fm.table or 0, fm.priority, fm.match.key_mask()): fm for fm in mods}
    for fm in want.values():
        ofp._validate(fm.table or 0, fm.actions, fm)
    for rule in list(ofp.rules()):
        fm = want.get((rule.table_id, rule.priority, rule.match.key_mask()))
        if fm is None:
            ofp._remove(rule, "delete")
        elif _same(rule, fm):
            del want[(rule.table_id, rule.priority, rule.match.key_mask())]
    for fm in want.values():
        ofp.flow_mod(fm, now)
    return ""


def _same(rule, fm):
    return (tuple(rule.actions) == tuple(fm.actions) and rule.cookie == (fm.cookie or 0)
            and rule.idle_timeout == fm.idle_timeout and rule.hard_timeout == fm.hard_timeout
            and rule.write_actions == fm.write_actions and rule.meter == fm.meter
            and rule.clear_actions == fm.clear_actions
            and rule.write_metadata == fm.write_metadata and rule.flags == fm.flags)


def _group_mods(sw, br, specs, verb):
    ofp, now = br.ofproto, sw.clock.now()
    mods = [TG.parse_group(s, verb, ofp.resolve) for s in specs or [""]]
    for gm in mods:           # check all first: a bad spec changes nothing
        if gm.command != "delete":
            ofp.groups.check(gm)
    for gm in mods:
        ofp.group_mod(gm, now)
    return ""


def _group_id(args):
    return TG.parse_group(args[0], "delete").group_id if args else M.OFPG_ALL


def _dump_groups(sw, br, args, names):
    namer = br.ofproto.port_name if names else None
    descs = br.ofproto.group_descs(M.GroupDescRequest() if not args else
                                   M.GroupStatsRequest(_group_id(args)))
    lines = ["OFPST_GROUP_DESC reply (OF1.3) (xid=0x2):"]
    lines += [" " + TG.format_group(d, namer) for d in descs]
    return "\n".join(lines) + "\n"


def _dump_group_stats(sw, br, args, names):
    stats = br.ofproto.group_stats(M.GroupStatsRequest(_group_id(args)), sw.clock.now())
    lines = ["OFPST_GROUP reply (OF1.3) (xid=0x2):"]
    lines += [" " + TG.format_group_stats(s) for s in stats]
    return "\n".join(lines) + "\n"


def _meter_mod(sw, br, args, verb):
    mm = TG.parse_meter(args[0] if args else "", verb)
    br.ofproto.meter_mod(mm, sw.clock.now())
    return ""


def _meter_id(args):
    return TG.parse_meter(args[0], "delete").meter_id if args else M.OFPM_ALL


def _dump_meters(sw, br, args, names):
    cfgs = br.ofproto.meter_configs(M.MeterConfigRequest(_meter_id(args)))
    lines = ["OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):"]
    lines += [TG.format_meter(c) for c in cfgs]
    return "\n".join(lines) + "\n"


def _meter_stats(sw, br, args, names):
    stats = br.ofproto.meter_stats(M.MeterStatsRequest(_meter_id(args)), sw.clock.now())
    lines = ["OFPST_METER reply (OF1.3) (xid=0x2):"]
    lines += [TG.format_meter_stats(s) for s in stats]
    return "\n".join(lines) + "\n"
