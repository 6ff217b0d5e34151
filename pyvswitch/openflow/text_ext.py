"""ovs-ofctl syntax of the extension actions: conjunction, ct, learn.

Split from text_actions.py (which imports this module at its end, and this
module registers its parsers in text_actions.ACTION_PARSERS). Same contract:
each parser takes (argument text or None, ctx) and returns an actions.py
object or raises FlowParseError.

learn(...) specs: `FIELD[a..b]` (match the packet's own bits), `DST[a..b]=SRC[c..d]`
or `DST=VALUE` (match), `load:SRC->DST[a..b]` or `load:VALUE->DST[a..b]`,
`output:FIELD[a..b]`; options table, priority, idle_timeout, hard_timeout,
cookie, send_flow_rem, delete_learned (fin_* timeouts accepted and ignored).
"""

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import text_actions as TA
from pyvswitch.openflow.fields import FlowParseError

_tokens = TA._tokens
_writable = TA._writable
table_arg = TA.table_arg
parse_actions = TA.parse_actions


def _p_conjunction(value, ctx):
    try:
        cid, _, kn = (value or "").partition(",")
        k, _, n = kn.partition("/")
        cid, k, n = int(cid), int(k), int(n)
    except ValueError:
        raise FlowParseError(f'conjunction: "{value}" is not (id,k/n)') from None
    if not 2 <= n <= 64:
        raise FlowParseError(f"conjunction: n={n} is out of range 2..64")
    if not 1 <= k <= n:
        raise FlowParseError(f"conjunction: clause {k} is out of range 1..{n}")
    if not 0 <= cid < 1 << 32:
        raise FlowParseError(f"conjunction: id {cid} does not fit in 32 bits")
    return A.Conjunction(cid, k, n)


def _p_ct(value, ctx):
    kw = {}
    for key, v in _tokens(value or ""):
        if key in ("commit", "force") and v is None:
            kw[key] = True
        elif key == "table":
            kw["table"] = table_arg(v or "")
        elif key == "zone":
            if v and (v[0].isdigit()):
                kw["zone"] = F.parse_int(v, 16, "ct zone")
            else:
                sub = F.parse_subfield(v or "", "ct zone")
                if sub[2] != 16:
                    raise FlowParseError("ct: zone field must be 16 bits wide")
                kw["zone_field"] = sub
        elif key == "alg":
            if v not in ("ftp", "tftp"):
                raise FlowParseError(f"ct: unknown alg {v}")
            kw["alg"] = v
        elif key == "nat":
            kw["nat"] = v or ""
        elif key == "exec":
            kw["exec_actions"] = parse_actions(v or "", ctx["resolver"])
        else:
            raise FlowParseError(f"ct: unknown option {key}")
    return A.Ct(**kw)


_LEARN_INTS = {"table": 8, "priority": 16, "idle_timeout": 16, "hard_timeout": 16,
               "fin_idle_timeout": 16, "fin_hard_timeout": 16, "cookie": 64}


def _p_learn(value, ctx):
    kw, flags, specs = {}, set(), []
    for key, v in _tokens(value or ""):
        if key in _LEARN_INTS:
            if key.startswith("fin_"):
                F.parse_int(v or "", 16, key)        # accepted, not used
                continue
            kw[key] = F.parse_int(v or "", _LEARN_INTS[key], f"learn {key}")
            if key == "table" and kw[key] == 255:
                raise FlowParseError("learn: table 255 is not a table")
        elif key in ("send_flow_rem", "delete_learned") and v is None:
            flags.add(key)
        elif key == "load":
            specs.append(_learn_load(v or ""))
        elif key == "output":
            field, start, n = F.parse_subfield(v or "", "learn output")
            specs.append(("output", field, start, n))
        else:
            specs.append(_learn_match(key, v))
    return A.Learn(flags=frozenset(flags), specs=tuple(specs), **kw)


def _learn_src(text, n, what):
    """A subfield (same width) or an immediate that fits in n bits."""
    if text[:1].isdigit():
        return ("imm", F.parse_int(text, n, what))
    field, start, width = F.parse_subfield(text, what)
    if width != n:
        raise FlowParseError(f"{what}: {text} is {width} bits wide, want {n}")
    return ("field", field, start)


def _learn_load(text):
    src, arrow, dst = text.partition("->")
    if not arrow:
        raise FlowParseError(f'learn: "load:{text}" is not load:SRC->DST')
    field, start, n = F.parse_subfield(dst, "learn load")
    _writable(field, "learn load")
    return ("load", field, start, n, _learn_src(src.strip(), n, "learn load"))


def _learn_match(key, value):
    field, start, n = F.parse_subfield(key, "learn")
    fld = F.FIELDS[field]
    if n != fld.bits and not fld.maskable:
        raise FlowParseError(f"learn: {field} cannot be matched in part")
    if fld.flow is None and fld.bits != 128:
        raise FlowParseError(f"learn: {field} cannot be matched bitwise")
    if value is None:
        return ("match", field, start, n, ("field", field, start))
    if "[" in value or F.lookup_any(value) is not None:
        return ("match", field, start, n, _learn_src(value, n, "learn"))
    if value[:2] in ("0x", "0X") or value.isdigit():
        return ("match", field, start, n, ("imm", F.parse_int(value, n, "learn")))
    if n != fld.bits:
        raise FlowParseError(f'learn: "{value}" for part of {field}: give an integer')
    v, m = F.parse_value(fld, value)
    if m != fld.all_ones:
        raise FlowParseError(f"learn: {field}={value}: no mask allowed")
    return ("match", field, start, n, ("imm", v))


TA.ACTION_PARSERS.update({
    "conjunction": _p_conjunction,
    "ct": _p_ct,
    "learn": _p_learn,
})
