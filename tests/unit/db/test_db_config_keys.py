"""config_keys: the other_config keys the switch reads and interface types."""

import pytest

from pyvswitch.db import config_keys as ck
from pyvswitch.db.schema import SchemaError


def test_the_table_of_known_keys():
    assert set(ck.KEYS) == {("Open_vSwitch", "pmd-cpu-mask"), ("Open_vSwitch", "pmd-sleep-max"),
                            ("Open_vSwitch", "vhost-sock-dir"), ("Open_vSwitch", "max-idle"),
                            ("Open_vSwitch", "flow-limit"), ("Bridge", "mac-aging-time"),
                            ("Bridge", "mac-table-size"), ("Bridge", "datapath-id")}


@pytest.mark.parametrize("table,key,good,bad", [
    ("Open_vSwitch", "pmd-cpu-mask", ["0x6", "6", "0XfF", "0"], ["", "0x", "zz", "0x6 ", "-1", "6h"]),
    ("Open_vSwitch", "pmd-sleep-max", ["0", "10000", str(2**31 - 1)],
     ["", "-5", "abc", "1.5", " 1", "+1", str(2**31), "\u0661"]),
    ("Open_vSwitch", "vhost-sock-dir", ["/run/x", "socks"], ["", "a\0b", "a\nb"]),
    ("Open_vSwitch", "max-idle", ["100", "10000"], ["99", "0", "", "1s", "-100"]),
    ("Open_vSwitch", "flow-limit", ["0", "200000"], ["-1", "", "1e5"]),
    ("Bridge", "mac-aging-time", ["1", "300"], ["0", "-1", "abc", "1_0"]),
    ("Bridge", "mac-table-size", ["1", "8192"], ["0", "", "2k"]),
    ("Bridge", "datapath-id", ["0000000000000001", "DEADBEEFdeadbeef"],
     ["1", "0x00000000000001", "000000000000000g", "00000000000000001"]),
])
def test_check_key(table, key, good, bad):
    for v in good:
        ck.check_key(table, key, v)
    for v in bad:
        with pytest.raises(SchemaError):
            ck.check_key(table, key, v)


def test_check_key_message_and_free_form_keys():
    with pytest.raises(SchemaError) as e:
        ck.check_key("Bridge", "mac-aging-time", "abc", {"name": "br0"})
    assert str(e.value) == ('Bridge br0: other_config:mac-aging-time="abc" is invalid '
                            '(expected an integer from 1 to 2147483647: seconds)')
    with pytest.raises(SchemaError) as e:
        ck.check_key("Open_vSwitch", "pmd-cpu-mask", "zz")
    assert str(e.value).startswith('Open_vSwitch: other_config:pmd-cpu-mask="zz" is invalid')
    ck.check_key("Bridge", "anything", "zz")
    ck.check_key("Port", "mac-aging-time", "zz")


def test_check_iface_type():
    known = {"afpacket", "tap"}
    ck.check_iface_type("tap", known)
    ck.check_iface_type("", known)               # "" is the default type
    ck.check_iface_type("foo", set())            # nothing known: accept
    with pytest.raises(SchemaError) as e:
        ck.check_iface_type("foo", known, "p5")
    assert str(e.value) == 'Interface p5: unknown interface type "foo" (supported: afpacket, tap)'


def _tables(oc=None, br_oc=None, itype="", types=()):
    return {"Open_vSwitch": {"r": {"other_config": oc or {}, "iface_types": types}},
            "Bridge": {"b": {"name": "br0", "other_config": br_oc or {}}},
            "Interface": {"i": {"name": "p1", "type": itype}}}


def test_check_changes_only_looks_at_what_changed():
    before = _tables(br_oc={"mac-aging-time": "abc"}, itype="foo", types=("tap",))
    orig = lambda t, u: before[t][u]                       # noqa: E731
    ck.check_changes(_tables(br_oc={"mac-aging-time": "abc", "x": "1"}, itype="foo",
                             types=("tap",)), orig)
    with pytest.raises(SchemaError):
        ck.check_changes(_tables(br_oc={"mac-aging-time": "abd"}, itype="foo", types=("tap",)), orig)
    with pytest.raises(SchemaError):
        ck.check_changes(_tables(br_oc={"mac-aging-time": "abc"}, itype="bar", types=("tap",)), orig)
    with pytest.raises(SchemaError):
        ck.check_changes(_tables(oc={"pmd-cpu-mask": "q"}), lambda t, u: None)   # new rows
    ck.check_changes(_tables(itype="tap", types=("tap",)), lambda t, u: None)
