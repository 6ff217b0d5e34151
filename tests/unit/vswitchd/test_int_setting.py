"""Reading an integer other_config setting the way pvs-vsctl checks it."""

from pyvswitch.vswitchd.daemon import _int_setting


def test_absent_valid_and_malformed_values():
    assert _int_setting({}, "max-idle", 5000, 10000) == 10000            # absent: the default
    assert _int_setting({"max-idle": ""}, "max-idle", 5000, 10000) == 10000
    assert _int_setting({"max-idle": "2500"}, "max-idle", 5000, 10000) == 2500
    for bad in ("12x", "99", "-100"):                                     # refused by pvs-vsctl too
        assert _int_setting({"max-idle": bad}, "max-idle", 5000, 10000) == 5000
    assert _int_setting({"flow-limit": "0"}, "flow-limit", None, None) == 0
    assert _int_setting({"flow-limit": "1e5"}, "flow-limit", 7, None) == 7
