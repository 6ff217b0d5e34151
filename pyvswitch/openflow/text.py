"""ovs-ofctl flow syntax: parse and format flow mods, actions and dump-flows.

What: `parse_flow(text, command)` turns `in_port=1,dl_vlan=10,priority=100,
actions=output:2` into a FlowMod; `format_flow` prints a FlowMod canonically
(format(parse(s)) is canonical and parse(format(fm)) == fm); `format_flow_stats`
prints one dump-flows line in ovs-ofctl's layout.

How it grows: keywords of the flow (table, priority, cookie, ...) are handled
in `_parse_keyword`; match fields come from the field table (fields.py);
actions come from ACTION_PARSERS, one small function per action taking
(argument text, context). New actions = one function + one table row.

Errors: anything wrong raises FlowParseError with ovs-ofctl's wording where
there is one ("unknown keyword x", "must specify an action", "unknown action
x", ...); no other exception type escapes for any input string.
"""

import re
from dataclasses import dataclass, field

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import text_actions as TA
from pyvswitch.openflow.fields import FlowParseError
from pyvswitch.openflow.match import (OFP_DEFAULT_PRIORITY, SHORTHANDS, Match,
                                      format_match)

COMMANDS = ("add", "modify", "modify_strict", "delete", "delete_strict", "dump")
_ACTIONS_RE = re.compile(r"(?:^|[\s,])actions?\s*=")
_DELIMS = "=:(, \t\r\n"
_IGNORED = {"duration", "n_packets", "n_bytes", "idle_age", "hard_age"}
FLAG_WORDS = ("send_flow_rem", "check_overlap", "reset_counts",
              "no_packet_counts", "no_byte_counts")


@dataclass(frozen=True)
class FlowMod:
    command: str = "add"
    match: Match = field(default_factory=Match)
    priority: int = OFP_DEFAULT_PRIORITY
    actions: tuple = ()
    table: int | None = None       # None: table 0 for add, all tables otherwise
    cookie: int | None = None      # None: not given
    cookie_mask: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    out_port: int | None = None
    importance: int = 0
    flags: frozenset = frozenset()
    # Wire-only parts (the OpenFlow codecs fill them; the text syntax leaves
    # the defaults): the packet to apply the flow to, the out_group filter,
    # and OpenFlow 1.3 instructions other than apply-actions and goto-table.
    buffer_id: int = 0xFFFFFFFF
    out_group: int | None = None
    write_actions: tuple | None = None
    clear_actions: bool = False
    write_metadata: tuple | None = None    # (value, mask)
    meter: int | None = None


# --- tokens ---------------------------------------------------------------------
def tokens(text):
    """Yield (key, value) from `k=v`, `k:v`, `k(v)` or bare `k` items separated
    by commas or white space; parentheses nest."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in ", \t\r\n":
            i += 1
        if i >= n:
            return
        start = i
        while i < n and text[i] not in _DELIMS and text[i] != ")":
            i += 1
        key = text[start:i]
        if not key:
            raise FlowParseError(f'syntax error at "{text[start:start + 20]}"')
        if i < n and text[i] == "(":
            close = _matching_paren(text, i)
            yield key, text[i + 1:close]
            i = close + 1
        elif i < n and text[i] in "=:":
            start = i = i + 1
            depth = 0
            while i < n and (depth or text[i] not in ", \t\r\n"):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                if depth < 0:
                    raise FlowParseError(f'unbalanced parentheses in "{text}"')
                i += 1
            if depth:
                raise FlowParseError(f'unbalanced parentheses in "{text}"')
            yield key, text[start:i]
        else:
            yield key, None


def _matching_paren(text, i):
    depth = 0
    for j in range(i, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j
    raise FlowParseError(f'unbalanced parentheses in "{text}"')


# --- flows ------------------------------------------------------------------------
def parse_flow(text, command="add", resolver=None):
    """Parse ovs-ofctl flow text for `command` (add, modify, modify_strict,
    delete, delete_strict, dump). `resolver(name) -> ofport or None` resolves
    port names. Returns a FlowMod; raises FlowParseError."""
    if command not in COMMANDS:
        raise FlowParseError(f"unknown flow command {command}")
    if not isinstance(text, str):
        raise FlowParseError("flow text must be a string")
    has_actions = command in ("add", "modify", "modify_strict")
    act_text = None
    if has_actions:
        m = _ACTIONS_RE.search(text)
        if not m:
            raise FlowParseError("must specify an action")
        text, act_text = text[:m.start()], text[m.end():]
    st = {"command": command, "match": Match(), "flags": set()}
    for key, value in tokens(text):
        _parse_keyword(st, key, value, resolver)
    st["match"].check_prereqs()
    st["flags"] = frozenset(st["flags"])
    if command == "add":
        st.setdefault("table", 0)
        st["cookie"] = st.get("cookie") or 0
    if has_actions:
        st.update(TA.parse_instructions(act_text, resolver, st["match"]))
    return FlowMod(**st)


def _parse_keyword(st, key, value, resolver):
    cmd = st["command"]
    lkey = key.lower()
    if key in SHORTHANDS and value is None:
        st["match"].set_shorthand(key)
    elif F.lookup(key) is not None:
        fld = F.lookup(key)
        v, m = F.parse_value(fld, value or "", resolver)
        st["match"]._set(fld.name, v, m if m is not None else 0)
    elif lkey in FLAG_WORDS and cmd in ("add", "modify", "modify_strict"):
        st["flags"].add(lkey)
    elif value is None:
        raise FlowParseError(f"field {key} missing value" if key in _KEYWORDS
                             else f"unknown keyword {key}")
    elif lkey in _IGNORED:
        pass
    elif lkey in _KEYWORDS and cmd in _KEYWORDS[lkey][0]:
        _KEYWORDS[lkey][1](st, value, resolver)
    else:
        raise FlowParseError(f"unknown keyword {key}")


def _kw_table(st, value, resolver):
    t = F.parse_int(value, 8, "table")
    if t == 255 and st["command"] == "add":
        raise FlowParseError("table=255 is not valid for adding a flow "
                             "(OFPFMFC_BAD_TABLE_ID)")
    st["table"] = None if t == 255 else t


def _kw_u16(name):
    def parse(st, value, resolver):
        st[name] = F.parse_int(value, 16, name)
    return parse


def _kw_cookie(st, value, resolver):
    val, slash, mask = value.partition("/")
    cmd = st["command"]
    if slash:
        if cmd == "add":
            raise FlowParseError("flow additions cannot use a cookie mask")
        st["cookie_mask"] = ((1 << 64) - 1 if mask == "-1"
                             else F.parse_int(mask, 64, "cookie"))
    elif cmd not in ("add", "modify", "modify_strict"):
        raise FlowParseError("cannot set cookie")
    st["cookie"] = F.parse_int(val, 64, "cookie")
    if slash:
        st["cookie"] &= st["cookie_mask"]


def _kw_out_port(st, value, resolver):
    st["out_port"] = F.parse_port(value, resolver, "out_port")


def _kw_out_group(st, value, resolver):
    st["out_group"] = F.parse_int(value, 32, "out_group")


_ALL = COMMANDS
_ADD_MOD = ("add", "modify", "modify_strict")
_KEYWORDS = {
    "table": (_ALL, _kw_table),
    "priority": (("add", "modify", "modify_strict", "delete_strict"),
                 _kw_u16("priority")),
    "idle_timeout": (_ADD_MOD, _kw_u16("idle_timeout")),
    "hard_timeout": (_ADD_MOD, _kw_u16("hard_timeout")),
    "importance": (("add",), _kw_u16("importance")),
    "cookie": (_ALL, _kw_cookie),
    "out_port": (("delete", "delete_strict", "dump"), _kw_out_port),
    "out_group": (("delete", "delete_strict", "dump"), _kw_out_group),
}


def format_flow(fm, namer=None):
    """Canonical ovs-ofctl text for a FlowMod (parse_flow's inverse)."""
    parts = []
    add = fm.command == "add"
    if fm.table is not None and not (add and fm.table == 0):
        parts.append(f"table={fm.table}")
    if fm.cookie is not None and not (add and fm.cookie == 0):
        mask = f"/{fm.cookie_mask:#x}" if fm.cookie_mask else ""
        parts.append(f"cookie={fm.cookie:#x}{mask}")
    for name in ("idle_timeout", "hard_timeout", "importance"):
        if getattr(fm, name):
            parts.append(f"{name}={getattr(fm, name)}")
    parts.extend(w for w in FLAG_WORDS if w in fm.flags)
    if fm.out_port is not None:
        parts.append(f"out_port={F.format_port(fm.out_port, namer)}")
    if fm.out_group is not None:
        parts.append(f"out_group={fm.out_group}")
    match = format_match(fm.match, fm.priority, namer)
    if match:
        parts.append(match)
    if fm.command in _ADD_MOD:
        parts.append("actions=" + A.format_instructions(
            fm.actions, fm.meter, fm.clear_actions, fm.write_actions,
            fm.write_metadata, namer))
    return ",".join(parts)


def format_duration(seconds):
    ms = int(seconds * 1000)
    sec, ms = divmod(max(ms, 0), 1000)
    return f"{sec}.{ms:03d}s" if ms else f"{sec}s"


def ofp_duration(sec, nsec):
    """A duration from the wire as ovs-ofctl prints it (ofp_print_duration):
    no decimals for whole seconds, 3 for whole milliseconds, else the
    nanoseconds without trailing zeros."""
    if not nsec:
        return f"{sec}s"
    if nsec % 1000000 == 0:
        return f"{sec}.{nsec // 1000000:03d}s"
    return f"{sec}.{nsec:09d}".rstrip("0") + "s"


def ovs_actions(actions, match, spelling):
    """Actions spelled as ovs-ofctl prints them (actions.ovs_spelling);
    spelling None leaves them as they are, "of13" when they came from an
    OpenFlow 1.3 connection, anything else ("of10", "file") otherwise."""
    if spelling is None or actions is None:
        return actions
    proto = match.get("nw_proto") if match is not None else None
    return A.ovs_spelling(actions, proto[0] if proto else None, spelling == "of13")


def format_flow_stats(*, match, priority, actions, table=0, cookie=0,
                      duration=0.0, n_packets=0, n_bytes=0, idle_timeout=0,
                      hard_timeout=0, idle_age=None, hard_age=None,
                      importance=0, flags=(), namer=None, meter=None,
                      clear_actions=False, write_actions=None,
                      write_metadata=None, stats=True, wire_duration=None,
                      spelling=None):
    """One `ovs-ofctl dump-flows` line (with its leading space); stats=False
    is `--no-stats` (no cookie 0, duration, counters or ages).
    wire_duration: (sec, nsec) from a flow stats reply, printed as
    ovs-ofctl does (ofp_duration); spelling: see ovs_actions."""
    actions = ovs_actions(actions, match, spelling)
    write_actions = ovs_actions(write_actions, match, spelling)
    if stats:
        dur = (ofp_duration(*wire_duration) if wire_duration is not None
               else format_duration(duration))
        s = (f" cookie={cookie:#x}, duration={dur}, "
             f"table={table}, n_packets={n_packets}, n_bytes={n_bytes}, ")
    else:
        s = " " + (f"cookie={cookie:#x}, " if cookie else "") + (
            f"table={table}, " if table else "")
    if idle_timeout:
        s += f"idle_timeout={idle_timeout}, "
    if hard_timeout:
        s += f"hard_timeout={hard_timeout}, "
    s += "".join(f"{w}, " for w in FLAG_WORDS if w in flags)
    if importance:
        s += f"importance={importance}, "
    if idle_age is not None and stats:
        s += f"idle_age={int(idle_age)}, "
    whole = wire_duration[0] if wire_duration is not None else int(duration)
    if hard_age is not None and int(hard_age) != whole and stats:
        s += f"hard_age={int(hard_age)}, "
    m = format_match(match, priority, namer)
    acts = A.format_instructions(actions, meter, clear_actions, write_actions,
                                 write_metadata, namer)
    return s + (m + " " if m else "") + "actions=" + acts


def format_fte(fm, namer=None, spelling="file"):
    """One flow of `ovs-ofctl diff-flows` (fte_version_format): `table=N `
    unless table 0, the match with its priority, then cookie, idle_timeout,
    hard_timeout, importance when set, then actions=. fm: a FlowMod."""
    s = f"table={fm.table} " if fm.table else ""
    s += format_match(fm.match, fm.priority, namer)
    if fm.cookie:
        s += f" cookie={fm.cookie:#x}"
    for name in ("idle_timeout", "hard_timeout", "importance"):
        if getattr(fm, name):
            s += f" {name}={getattr(fm, name)}"
    return s + " actions=" + fte_actions(fm, namer, spelling)


def fte_actions(fm, namer=None, spelling="file"):
    """The actions= text of a FlowMod as ovs-ofctl formats it (what
    replace-flows and diff-flows compare, as ofpacts_equal_stringwise)."""
    return A.format_instructions(
        ovs_actions(fm.actions, fm.match, spelling), fm.meter, fm.clear_actions,
        ovs_actions(fm.write_actions, fm.match, spelling), fm.write_metadata, namer)


# --- actions (text_actions.py) ----------------------------------------------------
parse_actions = TA.parse_actions
ACTION_PARSERS = TA.ACTION_PARSERS
