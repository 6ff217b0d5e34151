"""ovs-ofctl group and meter syntax: parse into messages.GroupMod/MeterMod,
format dump-groups, dump-group-stats, dump-meters and meter-stats lines.

Groups: `group_id=1,type=select,bucket=weight:10,output:1,bucket=...`; a
bucket holds `bucket_id`, `weight`, `watch_port`, `watch_group` (with ':'
or '=') and its actions (optionally after `actions=`). Types: all, select,
indirect, ff (fast_failover). del-groups takes `group_id=N` or nothing.

Meters: `meter=1,kbps|pktps[,burst][,stats],band=type=drop,rate=R[,burst_size=B]`;
several bands may follow (each `band=` starts one). del-meters takes
`meter=N` or nothing (all).

Errors: FlowParseError with a message naming the bad word; pure functions.
"""

import re

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.text_actions import parse_actions

_TYPES = {"all": "all", "select": "select", "indirect": "indirect", "ff": "ff",
          "fast_failover": "ff"}
_CMDS = {"add": "add", "modify": "modify", "delete": "delete"}


def _split(text, word):
    """(text before the first top-level `word=`, [text after each one])."""
    cuts, depth, key = [], 0, word + "="
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0 and text.startswith(key, i) and (i == 0 or text[i - 1] in ", "):
            cuts.append(i)
    parts = [text[:cuts[0]] if cuts else text]
    for j, at in enumerate(cuts):
        end = cuts[j + 1] if j + 1 < len(cuts) else len(text)
        parts.append(text[at + len(key):end])
    parts = [p.strip(", ") for p in parts]
    return parts[0], parts[1:]


def parse_group(text, command="add", resolver=None):
    if command not in _CMDS:
        raise FlowParseError(f"unknown group command {command}")
    head, buckets = _split(text or "", "bucket")
    kw = {"command": command, "group_type": "all", "group_id": None}
    for item in filter(None, (w.strip() for w in head.split(","))):
        key, _, value = item.partition("=")
        if key == "group_id":
            kw["group_id"] = (M.OFPG_ALL if value == "all" else
                              F.parse_int(value, 32, "group_id"))
        elif key == "type":
            if value not in _TYPES:
                raise FlowParseError(f"{value}: unknown group type (want all, select, "
                                     "indirect or ff)")
            kw["group_type"] = _TYPES[value]
        elif key in ("selection_method", "selection_method_param", "fields"):
            raise FlowParseError(f"{key}: not supported (select groups hash the "
                                 "Ethernet, IP and L4 addresses)")
        else:
            raise FlowParseError(f"unknown keyword {key}")
    if kw["group_id"] is None:
        if command == "delete":
            kw["group_id"] = M.OFPG_ALL
        else:
            raise FlowParseError("must specify a group_id")
    if buckets and command == "delete":
        raise FlowParseError("buckets are not allowed when deleting groups")
    kw["buckets"] = tuple(_bucket(b, resolver) for b in buckets)
    return M.GroupMod(**kw)


def _bucket(text, resolver):
    kw = {}
    rest = []
    body = text
    acts_at = re.search(r"(^|,)actions=", text)
    if acts_at:
        body, acts = text[:acts_at.start()], text[acts_at.end():]
    else:
        acts = None
    for item in filter(None, (w.strip() for w in body.split(","))) if body else ():
        m = re.fullmatch(r"(bucket_id|weight|watch_port|watch_group)[:=](.*)", item)
        if m and m.group(1) == "weight":
            kw["weight"] = F.parse_int(m.group(2), 16, "weight")
        elif m and m.group(1) == "watch_port":
            kw["watch_port"] = F.parse_port(m.group(2), resolver, "watch_port")
        elif m and m.group(1) == "watch_group":
            kw["watch_group"] = F.parse_int(m.group(2), 32, "watch_group")
        elif m:
            F.parse_int(m.group(2), 32, "bucket_id")
        else:
            rest.append(item)
    if acts is not None and rest:
        raise FlowParseError(f"bucket: {rest[0]} before actions=")
    kw["actions"] = parse_actions(acts if acts is not None else ",".join(rest), resolver)
    return M.Bucket(**kw)


def format_bucket(b, namer=None):
    parts = []
    if b.weight:
        parts.append(f"weight:{b.weight}")
    if b.watch_port not in (F.OFPP_NONE, 0xFFFFFFFF):
        parts.append(f"watch_port:{F.format_port(b.watch_port, namer)}")
    if b.watch_group != M.OFPG_ANY:
        parts.append(f"watch_group:{b.watch_group}")
    parts.append("actions=" + A.format_actions(b.actions, namer))
    return "bucket=" + ",".join(parts)


def format_group(desc, namer=None):
    out = f"group_id={desc.group_id},type={desc.group_type}"
    return ",".join([out] + [format_bucket(b, namer) for b in desc.buckets])


def format_group_stats(s):
    dur = f"{s.duration_sec}.{s.duration_nsec // 1000000:03d}s"
    out = (f"group_id={s.group_id},duration={dur},ref_count={s.ref_count},"
           f"packet_count={s.packet_count},byte_count={s.byte_count}")
    for i, (p, b) in enumerate(s.buckets):
        out += f",bucket{i}:packet_count={p},byte_count={b}"
    return out


# --- meters ---------------------------------------------------------------------
_FLAGS = {"kbps": M.METER_KBPS, "pktps": M.METER_PKTPS, "burst": M.METER_BURST,
          "stats": M.METER_STATS}


def parse_meter(text, command="add"):
    if command not in _CMDS:
        raise FlowParseError(f"unknown meter command {command}")
    head, bands = _split(text or "", "band")
    meter_id, flags = None, 0
    for item in filter(None, (w.strip() for w in head.split(","))):
        key, eq, value = item.partition("=")
        if key == "meter" and eq:
            meter_id = M.OFPM_ALL if value == "all" else F.parse_int(value, 32, "meter")
        elif key in _FLAGS and not eq:
            flags |= _FLAGS[key]
        else:
            raise FlowParseError(f"unknown keyword {item}")
    if meter_id is None:
        if command != "delete":
            raise FlowParseError("must specify a meter id (meter=N)")
        meter_id = M.OFPM_ALL
    if command == "delete":
        if bands:
            raise FlowParseError("bands are not allowed when deleting meters")
        return M.MeterMod("delete", 0, meter_id, ())
    if not flags & (M.METER_KBPS | M.METER_PKTPS):
        flags |= M.METER_KBPS
    if not bands:
        raise FlowParseError("a meter needs at least one band (band=type=drop,rate=N)")
    return M.MeterMod(command, flags, meter_id, tuple(_band(b) for b in bands))


def _band(text):
    kw = {}
    for item in filter(None, (w.strip() for w in text.split(","))):
        key, _, value = item.partition("=")
        if key == "type":
            if value not in ("drop", "dscp_remark"):
                raise FlowParseError(f"{value}: unknown band type (want drop or dscp_remark)")
            kw["type"] = value
        elif key in ("rate", "burst_size"):
            kw[key] = F.parse_int(value, 32, key)
        elif key == "prec_level":
            kw[key] = F.parse_int(value, 8, key)
        else:
            raise FlowParseError(f"unknown band keyword {key}")
    if "rate" not in kw:
        raise FlowParseError("band: rate missing")
    return M.MeterBand(**kw)


def format_meter(cfg):
    flags = " ".join(w for w, bit in _FLAGS.items() if cfg.flags & bit)
    lines = [f"meter={cfg.meter_id} {flags} bands="]
    for b in cfg.bands:
        line = f"type={b.type} rate={b.rate}"
        if b.burst_size:
            line += f" burst_size={b.burst_size}"
        if b.type == "dscp_remark":
            line += f" prec_level={b.prec_level}"
        lines.append(line)
    return "\n".join(lines)


def format_meter_stats(s):
    dur = f"{s.duration_sec}.{s.duration_nsec // 1000000:03d}s"
    lines = [f"meter:{s.meter_id} flow_count:{s.flow_count} packet_in_count:"
             f"{s.packet_in_count} byte_in_count:{s.byte_in_count} duration:{dur} bands:"]
    for i, (p, b) in enumerate(s.bands):
        lines.append(f"{i}: packet_count:{p} byte_count:{b}")
    return "\n".join(lines)
