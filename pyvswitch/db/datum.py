"""Text syntax of column values, as ovs-vsctl reads and prints them.

What: parse a command-line value (`10`, `10,20`, `[10,20]`, `{a=b, c="d e"}`,
`"quoted\\nstring"`, `@name`) into the Python value of a column type (see
schema.py), and format a value back (`[10, 20]`, `{a=b, c="d e"}`, `[]`).

Rules, following ovsdb-data.c:
- A token ends at an unquoted delimiter (whitespace , = [ ] { }); a
  backslash escapes the next character; double quotes protect delimiters and
  a quoted token is a JSON string. Unlike OVS, ':' is not a delimiter, so
  `target=tcp:1.2.3.4:6653` and IPv6 addresses need no quotes.
- Integers are decimal; in sets, `10-20` is an inclusive range.
- Booleans: true/yes/on/1 and false/no/off/0.
- Strings print bare when they look like identifiers ([A-Za-z_][A-Za-z0-9_.-]*,
  not true/false, not a uuid), else JSON-quoted.

Invariants: parse_value(t, format_value(t, v)) == v for every valid v; bad
input raises DatumError (never another exception type). Pure functions.
"""

import json
import re
import uuid as uuidlib

from pyvswitch.db.schema import SchemaError, Type, check_atom, is_uuid, validate, Column

DELIMS = set(" \t\n\r,=[]{}")
_BARE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_INT_RE = re.compile(r"^[+-]?[0-9]+\Z")
_RANGE_RE = re.compile(r"^([+-]?[0-9]+)-([+-]?[0-9]+)\Z")
TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}
MAX_RANGE = 4096


class DatumError(SchemaError):
    """Value text that does not parse or fit the column (str(e): message)."""


# ---- formatting ----------------------------------------------------------

def format_string(s):
    if _BARE_RE.match(s) and s not in ("true", "false") and not is_uuid(s.lower()):
        return s
    return json.dumps(s, ensure_ascii=False)


def format_atom(atom, v):
    if atom.kind == "boolean":
        return "true" if v else "false"
    if atom.kind == "string":
        return format_string(v)
    return str(v)


def format_value(coltype, v):
    """ovsdb_datum_to_string layout: 10, [], [1, 2], {a=b, c=d}."""
    if coltype.is_map:
        items = (f"{format_atom(coltype.key, k)}={format_atom(coltype.value, x)}"
                 for k, x in v.items())
        return "{" + ", ".join(items) + "}"
    if coltype.is_set:
        return "[" + ", ".join(format_atom(coltype.key, x) for x in v) + "]"
    if coltype.is_optional and v is None:
        return "[]"
    return format_atom(coltype.key, v)


def format_bare(coltype, v):
    """--bare layout: atoms separated by spaces, strings unquoted."""
    def atom(a, x):
        return x if a.kind == "string" else format_atom(a, x)
    if coltype.is_map:
        return " ".join(f"{atom(coltype.key, k)}={atom(coltype.value, x)}"
                        for k, x in v.items())
    if coltype.is_set:
        return " ".join(atom(coltype.key, x) for x in v)
    return "" if v is None else atom(coltype.key, v)


# ---- parsing -------------------------------------------------------------

def next_token(text, pos):
    """Return (token, new_pos). Quotes stay in the token; escapes do not."""
    out, quoted, i = [], False, pos
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text):
                raise DatumError(f"{text}: backslash at end of argument")
            if quoted:
                out.append(c)
            out.append(text[i + 1])
            i += 2
            continue
        if not quoted and c in DELIMS:
            break
        out.append(c)
        if c == '"':
            quoted = not quoted
        i += 1
    if quoted:
        raise DatumError(f"{text}: quoted string extends past end of argument")
    return "".join(out), i


def parse_atom(atom, tok, symtab=None):
    """One atom from one token; checks the atom's constraints."""
    v = _atom_from_token(atom, tok, symtab)
    try:
        return check_atom(atom, v)
    except DatumError:
        raise
    except SchemaError as e:
        raise DatumError(str(e)) from None


def _atom_from_token(atom, tok, symtab):
    kind = atom.kind
    if kind == "integer":
        if not _INT_RE.match(tok):
            raise DatumError(f'"{tok}" is not a valid integer')
        return int(tok)
    if kind == "boolean":
        if tok in TRUE or tok in FALSE:
            return tok in TRUE
        raise DatumError(f'"{tok}" is not a valid boolean (use "true" or "false")')
    if kind == "uuid":
        if tok.startswith("@") and symtab is not None:
            return symtab.setdefault(tok, str(uuidlib.uuid4()))
        if not is_uuid(tok.lower()):
            raise DatumError(f'"{tok}" is not a valid UUID')
        return tok.lower()
    return _string_from_token(tok)


def _string_from_token(tok):
    if tok == "":
        raise DatumError('An empty string is not valid as input; '
                         'use "" to represent the empty string')
    if not tok.startswith('"'):
        return tok
    if len(tok) < 2 or not tok.endswith('"'):
        raise DatumError(f"{tok}: missing quote at end of quoted string")
    try:
        s = json.loads(tok)
    except ValueError as e:
        raise DatumError(f"{tok}: {e.msg}") from None
    if not isinstance(s, str):
        raise DatumError(f"{tok}: not a string")
    return s


def _skip_ws(text, i):
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    return i


def _elements(coltype, text, symtab):
    """Yield parsed keys (sets) or (key, value) pairs (maps) from text."""
    i = _skip_ws(text, 0)
    close = None
    if i < len(text) and text[i] in "[{":
        close = "]" if text[i] == "[" else "}"
        i += 1
    while True:
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] == close:
            break
        tok, i = next_token(text, i)
        if coltype.is_map:
            if i >= len(text) or text[i] != "=":
                raise DatumError(f'{text}: syntax error at "{text[i:]}" '
                                 f'(expected "=" after map key)')
            vtok, i = next_token(text, i + 1)
            yield parse_atom(coltype.key, tok, symtab), parse_atom(coltype.value, vtok, symtab)
        else:
            yield from _set_atoms(coltype, tok, symtab)
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] != close:
            raise DatumError(f'{text}: syntax error at "{text[i:]}"')
    if close and (i >= len(text) or text[i] != close):
        raise DatumError(f'{text}: missing "{close}" at end of value')
    if _skip_ws(text, i + 1 if close else i) < len(text):
        raise DatumError(f'{text}: trailing garbage after value')


def _set_atoms(coltype, tok, symtab):
    m = _RANGE_RE.match(tok)
    if coltype.key.kind == "integer" and coltype.max > 1 and m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo:
            raise DatumError(f'"{tok}" is not a valid range. Range end cannot be before start.')
        if hi - lo >= MAX_RANGE:
            raise DatumError(f'constraint violation: Range "{tok}" is too big.')
        return [parse_atom(coltype.key, str(x), symtab) for x in range(lo, hi + 1)]
    return [parse_atom(coltype.key, tok, symtab)]


def parse_loose(coltype, text, symtab=None):
    """Parse text as a set/map of any size (for `add`/`remove` arguments).

    Returns a list of atoms, or a dict for maps."""
    if coltype.is_map:
        return dict(_elements(coltype, text, symtab))
    return list(_elements(coltype, text, symtab))


def parse_value(coltype, text, symtab=None, name="value"):
    """Parse text as a complete value of coltype (validated, normalised)."""
    if not isinstance(text, str):
        raise DatumError("value must be a string")
    if not (coltype.is_set or coltype.is_map) and not text.strip():
        parse_atom(coltype.key, "")        # raises the atom type's own message
    loose = parse_loose(coltype, text, symtab)
    if coltype.is_set or coltype.is_map:
        value = loose
    elif len(loose) == 0 and coltype.is_optional:
        value = None
    elif len(loose) == 1:
        value = loose[0]
    else:
        raise DatumError(f'"{text}": {len(loose)} values, but a single value is required')
    try:
        return validate(Column(name, coltype), value)
    except DatumError:
        raise
    except SchemaError as e:
        raise DatumError(str(e)) from None


def loose_type(coltype):
    """The same type with any number of elements (used by add/remove)."""
    return Type(coltype.key, coltype.value, min=0, max=float("inf"))
