"""Value text syntax: parse/format round trips and clean errors (hypothesis)."""

import pytest
from hypothesis import given, settings, strategies as st

from pyvswitch.db import datum
from pyvswitch.db.datum import DatumError, format_value, parse_value
from pyvswitch.db.schema import TABLES, setof, mapof, optional, scalar, STR, INT, BOOL, is_uuid


def ctype(table, name):
    return TABLES[table].columns[name].type


@pytest.mark.parametrize("t,text,value", [
    (ctype("Port", "tag"), "10", 10),
    (ctype("Port", "tag"), "[]", None),
    (ctype("Port", "trunks"), "10,20", (10, 20)),
    (ctype("Port", "trunks"), "[20, 10]", (10, 20)),
    (ctype("Port", "trunks"), "[10-12,30]", (10, 11, 12, 30)),
    (ctype("Port", "trunks"), "[]", ()),
    (ctype("Interface", "options"), "{a=b,c=d}", {"a": "b", "c": "d"}),
    (ctype("Interface", "options"), 'remote_ip="1.2.3.4"', {"remote_ip": "1.2.3.4"}),
    (ctype("Interface", "options"), '{k="a b", "x y"=z}', {"k": "a b", "x y": "z"}),
    (ctype("Interface", "type"), "dpdkvhostuser", "dpdkvhostuser"),
    (ctype("Interface", "type"), '""', ""),
    (ctype("Controller", "target"), "tcp:1.2.3.4:6653", "tcp:1.2.3.4:6653"),
    (ctype("Interface", "error"), '"a \\"quoted\\" word\\n"', 'a "quoted" word\n'),
    (ctype("Bridge", "stp_enable"), "yes", True),
    (ctype("Bridge", "stp_enable"), "false", False),
    (ctype("Bridge", "protocols"), "OpenFlow10,OpenFlow13", ("OpenFlow10", "OpenFlow13")),
])
def test_parse(t, text, value):
    assert parse_value(t, text) == value


@pytest.mark.parametrize("t,value,text", [
    (ctype("Port", "tag"), None, "[]"),
    (ctype("Port", "tag"), 10, "10"),
    (ctype("Port", "trunks"), (10, 20), "[10, 20]"),
    (ctype("Port", "trunks"), (10,), "[10]"),
    (ctype("Interface", "options"), {"peer": "p2", "remote_ip": "1.2.3.4"},
     '{peer=p2, remote_ip="1.2.3.4"}'),
    (ctype("Interface", "error"), "could not open", '"could not open"'),
    (ctype("Interface", "type"), "", '""'),
    (ctype("Interface", "name"), "true", '"true"'),
    (ctype("Interface", "name"), "br-int.0_x", "br-int.0_x"),
    (ctype("Open_vSwitch", "ovs_version"), "2.17.0", '"2.17.0"'),
    (ctype("Bridge", "stp_enable"), True, "true"),
])
def test_format(t, value, text):
    assert format_value(t, value) == text


@pytest.mark.parametrize("t,text,msg", [
    (ctype("Port", "tag"), "5000", "constraint violation: 5000 is not in the valid range"),
    (ctype("Port", "tag"), "x", '"x" is not a valid integer'),
    (ctype("Port", "tag"), "1,2", "2 values, but a single value is required"),
    (ctype("Port", "trunks"), "[1,2", 'missing "]"'),
    (ctype("Port", "trunks"), "[1] x", "trailing garbage"),
    (ctype("Interface", "options"), "{a}", 'expected "=" after map key'),
    (ctype("Interface", "type"), '"abc', "quoted string extends past end"),
    (ctype("Interface", "type"), "", "An empty string is not valid as input"),
    (ctype("Interface", "type"), "a\\", "backslash at end of argument"),
    (ctype("Bridge", "stp_enable"), "maybe", "is not a valid boolean"),
    (ctype("Bridge", "ports"), "not-a-uuid", "is not a valid UUID"),
    (ctype("Port", "trunks"), "20-10", "Range end cannot be before start"),
])
def test_parse_errors(t, text, msg):
    with pytest.raises(DatumError) as e:
        parse_value(t, text)
    assert msg in str(e.value)


def test_symbols():
    symtab = {}
    u = parse_value(ctype("Bridge", "mirrors"), "[@m]", symtab)
    assert symtab["@m"] == u[0]


# ---- properties ----------------------------------------------------------

strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
ints = st.integers(-2**63, 2**63 - 1)
TYPES = [
    (scalar(STR), strings), (scalar(INT), ints), (scalar(BOOL), st.booleans()),
    (optional(STR), st.none() | strings), (optional(INT), st.none() | ints),
    (setof(STR), st.frozensets(strings, max_size=5).map(lambda s: tuple(sorted(s)))),
    (setof(INT), st.frozensets(ints, max_size=5).map(lambda s: tuple(sorted(s)))),
    (mapof(STR, STR), st.dictionaries(strings, strings, max_size=5)
     .map(lambda d: dict(sorted(d.items())))),
    (mapof(STR, INT), st.dictionaries(strings, ints, max_size=5)
     .map(lambda d: dict(sorted(d.items())))),
]


@st.composite
def typed_values(draw):
    t, values = draw(st.sampled_from(TYPES))
    return t, draw(values)


@settings(max_examples=400)
@given(typed_values())
def test_roundtrip(tv):
    t, v = tv
    assert parse_value(t, format_value(t, v)) == v


@settings(max_examples=400)
@given(st.sampled_from([t for t, _ in TYPES] + [ctype("Port", "trunks"), ctype("Port", "tag"),
                                                ctype("Bridge", "ports")]),
       st.text(max_size=30))
def test_garbage_raises_clean_error(t, text):
    try:
        parse_value(t, text, symtab={})
    except DatumError:
        pass


@given(st.text(alphabet='[]{}=,"\\ ab1-', max_size=20))
def test_garbage_loose(text):
    for t in (mapof(STR, STR), setof(INT)):
        try:
            datum.parse_loose(t, text)
        except DatumError:
            pass


def test_a_trailing_newline_is_quoted_and_kept():
    """A regex `$` also matches before a final newline: 'A\\n' once came back as 'A'."""
    t = scalar(STR)
    assert format_value(t, "A\n") == '"A\\n"' and parse_value(t, format_value(t, "A\n")) == "A\n"
    assert not is_uuid("00000000-0000-0000-0000-000000000000\n")
