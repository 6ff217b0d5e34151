"""ovs-ofctl action syntax: one small parser per action, instructions apart.

What: `parse_instructions(text, resolver, match)` reads an `actions=` value
into a dict (actions, meter, clear_actions, write_actions, write_metadata)
the way FlowMod holds them: apply-actions in `actions` (goto_table as its
final GotoTable), the other OpenFlow 1.1+ instructions in their own keys.
`parse_actions(text)` reads a plain action list (group buckets,
write_actions(...), ct(exec(...))): goto_table is allowed there only as the
last action, other instructions are refused.

Each parser takes (argument text or None, ctx) and returns an action object
of actions.py. ctx holds the port resolver and the flow's match, so set_field,
load and move can be checked against the match's prerequisites as ovs-ofctl
does ("set_field:80->tp_dst" needs tcp, udp or sctp in the match).

Errors: FlowParseError with ovs-ofctl's wording where there is one; nothing
else escapes for any input text. Pure functions; any thread.
"""

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.fields import FlowParseError

INSTRUCTIONS = ("meter", "clear_actions", "write_actions", "write_metadata",
                "goto_table")
_UNSUPPORTED = ("multipath", "bundle", "bundle_load", "enqueue",
                "sample", "clone", "check_pkt_larger")


def _tokens(text):
    from pyvswitch.openflow.text import tokens   # text.py imports this module
    return tokens(text)


def parse_instructions(text, resolver=None, match=None):
    ctx = {"resolver": resolver, "match": match}
    out = {"actions": (), "meter": None, "clear_actions": False,
           "write_actions": None, "write_metadata": None}
    acts, drop, seen = [], False, []
    for key, value in _tokens(text or ""):
        name = key.lower()
        if seen and seen[-1] == "goto_table":
            raise FlowParseError("goto_table must be the last action")
        if name == "drop":
            drop = True
            continue
        if name in INSTRUCTIONS:
            if name in seen:
                raise FlowParseError(f"instruction {name} may be specified only once")
            seen.append(name)
            _instruction(name, value, ctx, out, acts)
            continue
        if any(s != "meter" for s in seen):
            raise FlowParseError(f"{key} must come before clear_actions, "
                                 "write_actions, write_metadata and goto_table")
        acts.append(_one_action(key, value, ctx))
    if drop and (acts or seen):
        raise FlowParseError('"drop" must not be accompanied by any other '
                             "action or instruction")
    _check_conjunctions(acts)
    out["actions"] = tuple(acts)
    return out


def _instruction(name, value, ctx, out, acts):
    if name == "meter":
        if acts:
            raise FlowParseError("meter must be the first instruction")
        out["meter"] = _meter_id(value)
    elif name == "clear_actions":
        if value:
            raise FlowParseError("clear_actions does not take an argument")
        out["clear_actions"] = True
    elif name == "write_actions":
        wa = parse_actions(value or "", ctx["resolver"], ctx["match"])
        if any(isinstance(a, A.GotoTable) for a in wa):
            raise FlowParseError("goto_table is not an action for write_actions")
        out["write_actions"] = wa
    elif name == "write_metadata":
        v, m = F.parse_value(F.FIELDS["metadata"], value or "")
        if m is None:
            raise FlowParseError("write_metadata: a mask of 0 writes nothing")
        out["write_metadata"] = (v, m)
    else:
        acts.append(A.GotoTable(table_arg(value or "")))


def parse_actions(text, resolver=None, match=None):
    """Parse an action list ("output:2,mod_vlan_vid:10", "drop", "") -> tuple."""
    ctx = {"resolver": resolver, "match": match}
    out, drop = [], False
    for key, value in _tokens(text or ""):
        if out and isinstance(out[-1], A.GotoTable):
            raise FlowParseError("goto_table must be the last action")
        name = key.lower()
        if name == "drop":
            drop = True
        elif name == "goto_table":
            out.append(A.GotoTable(table_arg(value or "")))
        elif name in INSTRUCTIONS:
            raise FlowParseError(f"instruction {name} is not allowed here")
        else:
            out.append(_one_action(key, value, ctx))
    if drop and out:
        raise FlowParseError('"drop" must not be accompanied by any other '
                             "action or instruction")
    _check_conjunctions(out)
    return tuple(out)


def _one_action(key, value, ctx):
    name = key.lower()
    parser = ACTION_PARSERS.get(name)
    if parser is not None:
        return parser(value, ctx)
    if name in _UNSUPPORTED:
        raise FlowParseError(f"{name}: action not supported yet")
    if value is None:
        return A.Output(_bare_port(key, ctx))
    raise FlowParseError(f"unknown action {key}")


def _check_conjunctions(acts):
    if any(isinstance(a, A.Conjunction) for a in acts):
        other = [a for a in acts if not isinstance(a, (A.Conjunction, A.Note))]
        if other:
            raise FlowParseError(
                '"conjunction" actions may be used along with "note" but not '
                f'any other kind of action (such as "{other[0].to_text()}" here)')


# --- helpers ---------------------------------------------------------------------
def table_arg(text):
    t = F.parse_int(text, 8, "table")
    if t == 255:
        raise FlowParseError(f"{text}: invalid table")
    return t


def _meter_id(text):
    m = F.parse_int(text or "", 32, "meter")
    if m == 0 or m > 0xFFFF0000:
        raise FlowParseError(f"{text}: invalid meter id")
    return m


def _out_port(text, ctx):
    port = F.parse_port(text, ctx["resolver"], "output")
    if port in (F.OFPP_NONE,):
        raise FlowParseError(f"{text}: output to port NONE is not allowed")
    return port


def _bare_port(text, ctx):
    """A bare word in an action list is an output port (number or name)."""
    try:
        return _out_port(text, ctx)
    except FlowParseError:
        raise FlowParseError(f"unknown action {text}") from None


def _no_arg(name, make):
    def parse(value, ctx):
        if value:
            raise FlowParseError(f"{name} does not take an argument")
        return make()
    return parse


def _hex_bytes(text, what):
    digits = text.replace(".", "")
    if len(digits) % 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise FlowParseError(f'{what}: "{text}" is not hex bytes (like 01.02.0a)')
    return bytes.fromhex(digits)


def _check_prereq(field, ctx, what):
    """set_field/load/move of a header field needs the match's prerequisites."""
    match = ctx.get("match")
    pre = F.FIELDS[field].prereq
    if match is None or pre is None:
        return
    try:
        from pyvswitch.openflow.match import Match
        probe = Match(dict(match.items()))
        probe._set(field, 0, F.FIELDS[field].all_ones)
        probe.check_prereqs()
    except FlowParseError:
        raise FlowParseError(f"{what} lacks correct prerequisites: {field} requires "
                             f"{F.PREREQS[pre][2]} in the match "
                             "(OFPBAC_MATCH_INCONSISTENT)",
                             code="OFPBAC_MATCH_INCONSISTENT") from None


def _writable(field, what):
    if field not in F.WRITABLE:
        raise FlowParseError(f"{what}: destination field {field} is not writable")


# --- outputs ---------------------------------------------------------------------
def _p_output(value, ctx):
    if not value:
        raise FlowParseError("output: missing port")
    head = value.split("[", 1)[0]
    resolver = ctx["resolver"]
    if "[" in value or (F.lookup_any(head) is not None and head.upper()
                        not in F.RESERVED_PORTS and not (resolver and resolver(head))):
        field, start, n = F.parse_subfield(value, "output")
        if n > 16:
            raise FlowParseError(f"output: {value} is wider than 16 bits")
        return A.OutputReg(field, start, n)
    port = _out_port(value, ctx)
    return A.Controller() if port == F.OFPP_CONTROLLER else A.Output(port)


def _p_controller(value, ctx):
    if not value:
        return A.Controller()
    kw = {}
    for key, v in _tokens(value):
        if v is None and key.isdigit():
            return A.Controller(F.parse_int(key, 16, "controller"))
        if key == "max_len":
            kw["max_len"] = F.parse_int(v or "", 16, "max_len")
        elif key == "reason":
            if v not in A.CONTROLLER_REASONS:
                raise FlowParseError(f"{v}: unknown controller reason (want one of "
                                     f"{', '.join(A.CONTROLLER_REASONS)})")
            kw["reason"] = v
        elif key == "id":
            kw["controller_id"] = F.parse_int(v or "", 16, "controller id")
        elif key == "userdata":
            kw["userdata"] = _hex_bytes(v or "", "userdata")
        else:
            raise FlowParseError(f"{key}: unknown controller option")
    return A.Controller(**kw)


def _p_resubmit(value, ctx):
    if value is None or value == "":
        raise FlowParseError("resubmit: missing argument")
    if "," not in value:
        return A.Resubmit(F.parse_port(value, ctx["resolver"], "resubmit"), 255)
    port_text, _, rest = value.partition(",")
    table_text, _, extra = rest.partition(",")
    if extra:
        raise FlowParseError(f"resubmit: unsupported option \"{extra}\"")
    port_text, table_text = port_text.strip(), table_text.strip()
    if not port_text and not table_text:
        raise FlowParseError("at least one \"in_port\" or \"table\" must be "
                             "specified on resubmit")
    port = (F.parse_port(port_text, ctx["resolver"], "resubmit")
            if port_text else F.OFPP_IN_PORT)
    table = table_arg(table_text) if table_text else 255
    return A.Resubmit(port, table)


# --- VLAN ------------------------------------------------------------------------
def _p_vlan_vid(push):
    def parse(value, ctx):
        vid = F.parse_int(value or "", 16, "mod_vlan_vid")
        if vid > 0xFFF:
            raise FlowParseError(f"{value}: not a valid VLAN VID")
        return A.SetVlanVid(vid, push)
    return parse


def _p_vlan_pcp(push):
    def parse(value, ctx):
        pcp = F.parse_int(value or "", 8, "mod_vlan_pcp")
        if pcp > 7:
            raise FlowParseError(f"{value}: not a valid VLAN PCP")
        return A.SetVlanPcp(pcp, push)
    return parse


def _p_push_vlan(value, ctx):
    tpid = F.parse_int(value or "", 16, "push_vlan")
    if tpid not in (0x8100, 0x88A8):
        raise FlowParseError(f"{value}: not a valid VLAN ethertype")
    return A.PushVlan(tpid)


# --- set_field and its spellings ------------------------------------------------
def _p_legacy(spelling):
    field = A._LEGACY[spelling]

    def parse(value, ctx):
        fld = F.FIELDS[field]
        if not value:
            raise FlowParseError(f"{spelling}: missing argument")
        if fld.kind in ("mac", "ipv4"):
            v, _ = F.parse_value(fld, value)
            if "/" in value:
                raise FlowParseError(f"{spelling}: no mask allowed")
        else:
            bits = 32 if spelling == "set_tunnel" else fld.bits
            v = F.parse_int(value, bits, spelling)
        if spelling == "mod_nw_tos" and v & 3:
            raise FlowParseError(f"{spelling}: {value} has ECN bits set "
                                 "(use mod_nw_ecn for those)")
        mask = {"mod_nw_tos": 0xFC, "mod_nw_ecn": 3}.get(spelling, fld.all_ones)
        if spelling == "mod_nw_ecn":
            field_name = "nw_ecn"
            if v > 3:
                raise FlowParseError(f"{spelling}: {value} is not a valid ECN (0..3)")
            return A.SetField(field_name, v, 3, spelling)
        return A.SetField(field, v & mask, mask, spelling)
    return parse


def _p_set_field(value, ctx):
    text, arrow, dst = (value or "").rpartition("->")
    if not arrow:
        raise FlowParseError(f'set_field: "{value}" is not VALUE[/MASK]->FIELD')
    fld = F.lookup_any(dst.strip())
    if fld is None:
        raise FlowParseError(f"set_field: unknown field {dst}")
    _writable(fld.name, "set_field")
    v, m = F.parse_value(fld, text, ctx["resolver"])
    if m is None:
        raise FlowParseError("set_field: a mask of 0 sets nothing")
    if fld.name == "vlan_vid" and v & 0x1000 == 0 and m & 0x1000:
        v, m = v | 0x1000, m | 0x1000   # OpenFlow 1.3: VID values carry OFPVID_PRESENT
    _check_prereq(fld.name, ctx, f"set_field:{value}")
    return A.SetField(fld.name, v, m)


def _p_load(value, ctx):
    text, arrow, dst = (value or "").partition("->")
    if not arrow:
        raise FlowParseError(f'load: "{value}" is not VALUE->FIELD[start..end]')
    field, start, n = F.parse_subfield(dst, "load")
    _writable(field, "load")
    v = F.parse_int(text.strip(), n, "load")
    _check_prereq(field, ctx, f"load:{value}")
    return A.SetField(field, v << start, ((1 << n) - 1) << start, "load")


def _p_move(value, ctx):
    src, arrow, dst = (value or "").partition("->")
    if not arrow:
        raise FlowParseError(f'move: "{value}" is not SRC[..]->DST[..]')
    s = F.parse_subfield(src, "move")
    d = F.parse_subfield(dst, "move")
    if s[2] != d[2]:
        raise FlowParseError(f"move: source field {src} is {s[2]} bits wide but "
                             f"destination {dst} is {d[2]} bits wide")
    if F.FIELDS[s[0]].flow is None and F.FIELDS[s[0]].bits != 128:
        raise FlowParseError(f"move: source field {s[0]} cannot be read bitwise")
    _writable(d[0], "move")
    _check_prereq(s[0], ctx, f"move:{value}")
    _check_prereq(d[0], ctx, f"move:{value}")
    return A.Move(s[0], s[1], d[0], d[1], s[2])


def _p_dec_ttl(value, ctx):
    if not value:
        return A.DecTtl()
    ids = tuple(F.parse_int(t.strip(), 16, "dec_ttl") for t in value.split(","))
    return A.DecTtl(ids)


ACTION_PARSERS = {
    "output": _p_output,
    "controller": _p_controller,
    "normal": _no_arg("normal", lambda: A.Output(F.OFPP_NORMAL)),
    "flood": _no_arg("flood", lambda: A.Output(F.OFPP_FLOOD)),
    "all": _no_arg("all", lambda: A.Output(F.OFPP_ALL)),
    "local": _no_arg("local", lambda: A.Output(F.OFPP_LOCAL)),
    "in_port": _no_arg("in_port", lambda: A.Output(F.OFPP_IN_PORT)),
    "mod_vlan_vid": _p_vlan_vid(True),
    "set_vlan_vid": _p_vlan_vid(False),
    "mod_vlan_pcp": _p_vlan_pcp(True),
    "set_vlan_pcp": _p_vlan_pcp(False),
    "strip_vlan": _no_arg("strip_vlan", lambda: A.StripVlan(False)),
    "pop_vlan": _no_arg("pop_vlan", lambda: A.StripVlan(True)),
    "push_vlan": _p_push_vlan,
    "resubmit": _p_resubmit,
    "group": lambda v, ctx: A.Group(F.parse_int(v or "", 32, "group")),
    "set_field": _p_set_field,
    "load": _p_load,
    "move": _p_move,
    "dec_ttl": _p_dec_ttl,
    "note": lambda v, ctx: A.Note(_hex_bytes(v or "", "note")),
    "ct_clear": _no_arg("ct_clear", A.CtClear),
    **{sp: _p_legacy(sp) for sp in A._LEGACY},
}

from pyvswitch.openflow import text_ext  # noqa: E402,F401  (registers learn, ct, conjunction)
