"""Schema: column types, defaults, validation messages."""

import pytest

from pyvswitch.db import schema
from pyvswitch.db.schema import TABLES, SchemaError, validate


def col(table, name):
    return TABLES[table].columns[name]


def test_tables_and_root():
    assert set(TABLES) == {"Open_vSwitch", "Bridge", "Port", "Interface", "Controller", "Mirror"}
    assert TABLES["Open_vSwitch"].is_root and TABLES["Open_vSwitch"].max_rows == 1
    assert not TABLES["Bridge"].is_root


def test_column_kinds():
    assert col("Port", "tag").type.is_optional
    assert col("Port", "trunks").type.is_set
    assert col("Interface", "options").type.is_map
    assert col("Interface", "statistics").type.value.kind == "integer"
    assert col("Bridge", "name").type.is_scalar and not col("Bridge", "name").mutable
    assert col("Bridge", "ports").type.key.ref_table == "Port"
    assert col("Mirror", "output_port").type.key.ref_type == "weak"


def test_daemon_columns():
    daemon = {c for c, v in TABLES["Interface"].columns.items() if v.daemon}
    assert {"ofport", "link_state", "admin_state", "error", "statistics", "status",
            "mac_in_use", "mtu"} <= daemon
    assert not col("Interface", "ofport_request").daemon
    assert col("Open_vSwitch", "cur_cfg").daemon and not col("Open_vSwitch", "next_cfg").daemon
    assert col("Controller", "is_connected").daemon


def test_defaults():
    assert schema.default(col("Port", "tag").type) is None
    assert schema.default(col("Port", "trunks").type) == ()
    assert schema.default(col("Interface", "options").type) == {}
    assert schema.default(col("Interface", "type").type) == ""
    assert schema.default(col("Bridge", "stp_enable").type) is False


def test_validate_normalises():
    assert validate(col("Port", "trunks"), [20, 10, 10]) == (10, 20)
    assert list(validate(col("Interface", "options"), {"b": "1", "a": "2"})) == ["a", "b"]
    u = "0E7E0E82-E0C3-454B-8A21-9A0362F1A04B"
    assert validate(col("Bridge", "ports"), [u]) == (u.lower(),)


@pytest.mark.parametrize("table,column,value,msg", [
    ("Port", "tag", 5000, "constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)"),
    ("Port", "tag", -1, "constraint violation: -1 is not in the valid range 0 to 4095 (inclusive)"),
    ("Interface", "ofport_request", 0, "0 is not in the valid range 1 to 65279"),
    ("Interface", "mtu_request", 0, "0 is less than minimum allowed value 1"),
    ("Port", "vlan_mode", "foo", "foo is not one of the allowed values ([access, dot1q-tunnel, "
                                 "native-tagged, native-untagged, trunk])"),
    ("Bridge", "fail_mode", "open", "is not one of the allowed values"),
    ("Port", "tag", "10", "is not a valid integer"),
    ("Port", "tag", True, "is not a valid integer"),
    ("Bridge", "stp_enable", 1, "is not a valid boolean"),
    ("Bridge", "ports", ["nope"], "is not a valid UUID"),
    ("Port", "interfaces", [], "at least 1 required"),
    ("Port", "trunks", list(range(4096)) + [1], None),
    ("Bridge", "name", None, "a value is required"),
    ("Interface", "options", {"a": 1}, "is not a valid string"),
])
def test_validate_errors(table, column, value, msg):
    c = col(table, column)
    if msg is None:
        assert len(validate(c, value)) == 4096
        return
    with pytest.raises(SchemaError) as e:
        validate(c, value)
    assert msg in str(e.value)


def test_references():
    refs = {(c.name, a.ref_table) for c, a in schema.references("Bridge")}
    assert refs == {("ports", "Port"), ("mirrors", "Mirror"), ("controller", "Controller")}
