"""pvs-ofctl: groups and meters over the OpenFlow wire, as ovs-ofctl 3.1.

Groups work in both versions: OpenFlow 1.3 group-mod and multipart
messages, or in 1.0 the Nicira extensions ovs-ofctl uses (NXT_GROUP_MOD,
NXST_GROUP_DESC, NXST_GROUP; their replies print as `NXST_GROUP_DESC reply`
with OpenFlow 1.5's `bucket=bucket_id:N,...` layout). Meters need OpenFlow
1.3: on a 1.0-only connection the command fails before sending anything,
with ovs-ofctl's message.

Every group or meter mod is sent with a barrier (ovs-ofctl's
transact_noreply); the first error answer is printed and the command exits 1.
dump-groups takes ovs-ofctl's GROUP argument (a number, `all` or `any`; in
OpenFlow 1.3 a group desc request has no group id, so all groups come back);
dump-group-stats takes `group_id=N`; dump-meters and meter-stats `meter=N`.
"""

from pyvswitch.cli.ofclient import OfClientError
from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import text_group as TG
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.text import ofp_duration


# --- groups ----------------------------------------------------------------------------------
def _group_mods(s, specs, command):
    s.name_maps()
    mods = [TG.parse_group(spec, command, s.resolve) for spec in specs]
    for gm in mods:
        s.noreply(gm)
    return []


def _group_file(path):
    from pyvswitch.cli.ofctl import read_lines
    try:
        return [ln for _, ln in read_lines(path)]
    except OSError as e:
        raise OfClientError(f"{path}: open failed ({e.strerror})") from None


def format_bucket(b, index, of15, of13, namer=None):
    """One bucket= of dump-groups: OpenFlow 1.5's layout (1.0's NXST_GROUP_DESC)
    starts with bucket_id:N."""
    parts = [f"bucket_id:{index}"] if of15 else []
    if b.weight:
        parts.append(f"weight:{b.weight}")
    if b.watch_port not in (F.OFPP_NONE, 0xFFFFFFFF):
        parts.append(f"watch_port:{F.format_port(b.watch_port, namer)}")
    if b.watch_group != M.OFPG_ANY:
        parts.append(f"watch_group:{b.watch_group}")
    parts.append("actions=" + A.format_actions(A.ovs_spelling(b.actions, None, of13), namer))
    return "bucket=" + ",".join(parts)


def format_group(desc, of15, of13, namer=None):
    out = f"group_id={desc.group_id},type={desc.group_type}"
    return ",".join([out] + [format_bucket(b, i, of15, of13, namer)
                             for i, b in enumerate(desc.buckets)])


def format_group_stats(g):
    out = (f"group_id={g.group_id},duration={ofp_duration(g.duration_sec, g.duration_nsec)},"
           f"ref_count={g.ref_count},packet_count={g.packet_count},byte_count={g.byte_count}")
    for i, (p, b) in enumerate(g.buckets):
        out += f",bucket{i}:packet_count={p},byte_count={b}"
    return out


def _group_arg(text):
    """ovs-ofctl's dump-groups GROUP: a number, all or any (anything else:
    all groups)."""
    word = (text or "all").lower()
    if word == "all":
        return M.OFPG_ALL
    if word == "any":
        return M.OFPG_ANY
    try:
        value = int(word, 0)
    except ValueError:
        return M.OFPG_ALL
    return value if 0 <= value <= M.OFPG_MAX else M.OFPG_ALL


def cmd_dump_groups(s, args):
    xid, replies = s.transact(M.GroupDescRequest(group_id=_group_arg(args[0] if args else "")))
    what = "NXST_GROUP_DESC reply" if s.of10 else "OFPST_GROUP_DESC reply"
    namer = s.namer()
    lines = []
    for r in replies:
        lines.append(s.head(what, xid))
        lines += [" " + format_group(g, s.of10, not s.of10, namer) for g in r.groups]
    return lines


def cmd_dump_group_stats(s, args):
    s.name_maps()
    group_id = TG.parse_group(args[0] if args else "", "delete", s.resolve).group_id
    xid, replies = s.transact(M.GroupStatsRequest(group_id))
    what = "NXST_GROUP reply" if s.of10 else "OFPST_GROUP reply"
    lines = []
    for r in replies:
        lines.append(s.head(what, xid))
        lines += [" " + format_group_stats(g) for g in r.groups]
    return lines


# --- meters ----------------------------------------------------------------------------------
_OF13_UP = "OXM-OpenFlow13,OXM-OpenFlow14,OXM-OpenFlow15"     # ovs-ofctl's wording


def _of13(s):
    """Meters need OpenFlow 1.3 (ovs-ofctl: open_vconn_for_flow_mod with the
    OpenFlow 1.3+ protocols only)."""
    from pyvswitch.openflow import wire
    if wire.OFP13 not in s.versions:
        raise OfClientError(f"none of the usable flow formats ({_OF13_UP}) is among "
                            "the allowed flow formats (OpenFlow10,NXM)")
    if s.of10:
        raise OfClientError(f"switch does not support any of the usable flow formats "
                            f"({_OF13_UP})")


def _meter_mod(s, args, command):
    mm = TG.parse_meter(args[0] if args else "", command)
    _of13(s)
    s.noreply(mm)
    return []


def _meter_id(args):
    if not args:
        return M.OFPM_ALL
    try:
        return TG.parse_meter(args[0], "delete").meter_id
    except FlowParseError as e:
        raise OfClientError(str(e)) from None


def cmd_dump_meters(s, args):
    meter_id = _meter_id(args)
    _of13(s)
    xid, replies = s.transact(M.MeterConfigRequest(meter_id))
    lines = []
    for r in replies:
        lines.append(s.head("OFPST_METER_CONFIG reply", xid))
        if r.meters:                             # a blank line between meters
            lines.append("\n\n".join(TG.format_meter(c) for c in r.meters))
    return lines


def format_meter_stats(m):
    lines = [f"meter:{m.meter_id} flow_count:{m.flow_count} packet_in_count:"
             f"{m.packet_in_count} byte_in_count:{m.byte_in_count} "
             f"duration:{ofp_duration(m.duration_sec, m.duration_nsec)} bands:"]
    lines += [f"{i}: packet_count:{p} byte_count:{b}" for i, (p, b) in enumerate(m.bands)]
    return "\n".join(lines)


def cmd_meter_stats(s, args):
    meter_id = _meter_id(args)
    _of13(s)
    xid, replies = s.transact(M.MeterStatsRequest(meter_id))
    lines = []
    for r in replies:
        lines.append(s.head("OFPST_METER reply", xid))
        if r.meters:
            lines.append("\n\n".join(format_meter_stats(m) for m in r.meters))
    return lines


COMMANDS = {
    "add-group": lambda s, args: _group_mods(s, [args[0]], "add"),
    "add-groups": lambda s, args: _group_mods(s, _group_file(args[0]), "add"),
    "mod-group": lambda s, args: _group_mods(s, [args[0]], "modify"),
    "del-groups": lambda s, args: _group_mods(s, [args[0] if args else ""], "delete"),
    "dump-groups": cmd_dump_groups,
    "dump-group-stats": cmd_dump_group_stats,
    "add-meter": lambda s, args: _meter_mod(s, args, "add"),
    "mod-meter": lambda s, args: _meter_mod(s, args, "modify"),
    "del-meters": lambda s, args: _meter_mod(s, args, "delete"),
    "dump-meters": cmd_dump_meters,
    "meter-stats": cmd_meter_stats,
}
