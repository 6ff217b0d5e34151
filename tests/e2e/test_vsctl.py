"""pvs-vsctl end to end: command text in, text out, on a database in tmp_path.

No daemon runs: pvs-vsctl must then succeed without waiting. A fake
management socket checks the vsctl/apply call, warnings and --timeout."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from pyvswitch.cli.vsctl import main
from pyvswitch.db.store import Store

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Vsctl:
    def __init__(self, tmp_path, capsys):
        self.tmp, self.capsys = tmp_path, capsys
        self.db = str(tmp_path / "conf.db")

    def __call__(self, *args, rc=0):
        code = main(list(args))
        out, err = self.capsys.readouterr()
        assert code == rc, f"rc={code} out={out!r} err={err!r}"
        return out

    def fails(self, *args, msg, rc=1):
        """Run a failing command: exit status, message, database unchanged."""
        before = self.snapshot()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        assert code == rc, f"rc={code} out={out!r} err={err!r}"
        assert err == f"pvs-vsctl: {msg}\n"
        assert self.snapshot() == before
        return err

    def snapshot(self):
        s = Store(self.db)
        try:
            snap = s.snapshot()
            return {t: {u: dict(r) for u, r in rows.items()} for t, rows in snap.tables.items()}
        finally:
            s.close()

    def lines(self, *args):
        return self(*args).splitlines()


@pytest.fixture
def vsctl(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PVS_RUNDIR", str(tmp_path))
    monkeypatch.delenv("PVS_DB", raising=False)
    return Vsctl(tmp_path, capsys)


@pytest.fixture
def topo(vsctl):
    vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
    vsctl("add-port", "br0", "p1", "tag=10", "--", "set", "Interface", "p1", "type=afpacket",
          "options:peer=p2", 'options:remote_ip="1.2.3.4"', "ofport_request=3")
    vsctl("add-port", "br0", "p2", "trunks=10,20")
    return vsctl


# ---- show ----------------------------------------------------------------

def test_show(topo):
    snap = topo.snapshot()
    ru = next(iter(snap["Open_vSwitch"]))
    iu = next(u for u, r in snap["Interface"].items() if r["name"] == "p1")
    topo("set-controller", "br0", "tcp:127.0.0.1:6653", "--", "set-fail-mode", "br0", "secure")
    s = Store(topo.db)
    cu = next(iter(s.snapshot().tables["Controller"]))
    s.write_status({"Interface": {iu: {"error": "could not open network device p1 (No such device)",
                                       "ofport": -1}},
                    "Controller": {cu: {"is_connected": True}},
                    "Open_vSwitch": {ru: {"ovs_version": "0.1.0"}}})
    s.close()
    assert topo("show") == f"""{ru}
    Bridge br0
        Controller "tcp:127.0.0.1:6653"
            is_connected: true
        fail_mode: secure
        datapath_type: netdev
        Port br0
            Interface br0
                type: internal
        Port p1
            tag: 10
            Interface p1
                type: afpacket
                options: {{peer=p2, remote_ip="1.2.3.4"}}
                error: "could not open network device p1 (No such device)"
        Port p2
            trunks: [10, 20]
            Interface p2
    ovs_version: "0.1.0"
"""


def test_show_empty(vsctl):
    out = vsctl("show")
    assert UUID.fullmatch(out.strip())


def test_init_is_idempotent(vsctl):
    vsctl("init")
    before = vsctl.snapshot()
    vsctl("init")
    assert vsctl.snapshot() == before


# ---- bridges -------------------------------------------------------------

def test_bridges(vsctl):
    vsctl("add-br", "br1")
    vsctl("add-br", "br0")
    assert vsctl.lines("list-br") == ["br0", "br1"]
    vsctl("br-exists", "br0")
    vsctl("br-exists", "br9", rc=2)
    assert vsctl("br-to-vlan", "br0") == "0\n"
    assert vsctl("br-to-parent", "br0") == "br0\n"
    vsctl("--may-exist", "add-br", "br0")
    vsctl("del-br", "br1")
    assert vsctl.lines("list-br") == ["br0"]
    vsctl("--if-exists", "del-br", "br1")
    snap = vsctl.snapshot()
    assert len(snap["Port"]) == len(snap["Interface"]) == 1


def test_del_br_collects_ports(topo):
    topo("del-br", "br0")
    snap = topo.snapshot()
    assert not snap["Bridge"] and not snap["Port"] and not snap["Interface"]


def test_br_external_ids(vsctl):
    vsctl("add-br", "br0")
    vsctl("br-set-external-id", "br0", "k", "v")
    assert vsctl("br-get-external-id", "br0", "k") == "v\n"
    assert vsctl("br-get-external-id", "br0") == "k=v\n"
    vsctl("br-set-external-id", "br0", "k")
    assert vsctl("br-get-external-id", "br0") == ""


def test_bridge_errors(topo):
    topo.fails("add-br", "br0",
               msg="cannot create a bridge named br0 because a bridge named br0 already exists")
    topo.fails("add-br", "p1", msg="cannot create a bridge named p1 because a port named p1 "
                                   "already exists on bridge br0")
    topo("add-bond", "br0", "bond0", "e1", "e2")
    topo.fails("add-br", "e1", msg="cannot create a bridge named e1 because an interface "
                                   "named e1 already exists on bridge br0")
    topo.fails("del-br", "br9", msg="no bridge named br9")
    topo.fails("list-ports", "br9", msg="no bridge named br9")
    topo.fails("br-to-vlan", "br9", msg="no bridge named br9")
    topo.fails("add-br", "x", "br0", "5",
               msg="fake bridges (add-br BRIDGE PARENT VLAN) are not supported")


# ---- ports and interfaces ------------------------------------------------

def test_ports(topo):
    assert topo.lines("list-ports", "br0") == ["p1", "p2"]
    assert topo.lines("list-ifaces", "br0") == ["p1", "p2"]
    assert topo("port-to-br", "p1") == "br0\n"
    assert topo("iface-to-br", "p2") == "br0\n"
    assert topo("get", "port", "p1", "tag") == "10\n"
    assert topo("get", "Interface", "p1", "ofport_request", "type") == "3\nafpacket\n"
    topo("--may-exist", "add-port", "br0", "p1")
    topo("del-port", "br0", "p1")
    topo("del-port", "p2")
    topo("--if-exists", "del-port", "p2")
    assert topo.lines("list-ports", "br0") == []
    snap = topo.snapshot()
    assert len(snap["Port"]) == len(snap["Interface"]) == 1


def test_add_bond(vsctl):
    vsctl("add-br", "br0")
    vsctl("add-bond", "br0", "bond0", "e1", "e2", "e3", "bond_mode=balance-slb", "lacp=active")
    assert vsctl.lines("list-ports", "br0") == ["bond0"]
    assert vsctl.lines("list-ifaces", "br0") == ["e1", "e2", "e3"]
    assert vsctl("get", "Port", "bond0", "bond_mode", "lacp") == "balance-slb\nactive\n"
    assert vsctl("iface-to-br", "e2") == "br0\n"
    vsctl("--may-exist", "add-bond", "br0", "bond0", "e3", "e2", "e1")
    vsctl.fails("--may-exist", "add-bond", "br0", "bond0", "e1", "e2",
                msg='"--may-exist add-bond br0 bond0" but bond0 actually has '
                    'interface(s) e1, e2, e3')
    vsctl.fails("add-bond", "br0", "b2", "e9",
                msg="add-bond requires at least 2 interfaces, but only 1 were specified")
    vsctl("--fake-iface", "add-bond", "br0", "b3", "e9")
    assert vsctl("get", "Port", "b3", "bond_fake_iface") == "true\n"
    vsctl("del-port", "br0", "bond0")
    assert vsctl.lines("list-ifaces", "br0") == ["e9"]


def test_del_port_with_iface(vsctl):
    vsctl("add-br", "br0")
    vsctl("add-bond", "br0", "bond0", "e1", "e2")
    vsctl.fails("del-port", "e1", msg="no port named e1")
    vsctl("--with-iface", "del-port", "e1")
    assert vsctl.lines("list-ports", "br0") == []


def test_port_errors(topo):
    topo("add-br", "br1")
    topo.fails("add-port", "br0", "p1", msg="cannot create a port named p1 because a port "
                                            "named p1 already exists on bridge br0")
    topo.fails("add-port", "br0", "br1", msg="cannot create a port named br1 because a "
                                             "bridge named br1 already exists")
    topo.fails("--may-exist", "add-port", "br1", "p1",
               msg='"--may-exist add-port br1 p1" but p1 is actually attached to bridge br0')
    topo.fails("add-port", "br9", "p9", msg="no bridge named br9")
    topo.fails("add-port", "br0", "p9", "tag=5000",
               msg="constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)")
    topo.fails("add-port", "br0", "p9", "foo=1",
               msg='Port does not contain a column whose name matches "foo"')
    topo.fails("del-port", "p9", msg="no port named p9")
    topo.fails("del-port", "br1", "p1", msg="bridge br1 does not have a port p1")
    topo.fails("del-port", "br0", "br0",
               msg="cannot delete port br0 because it is the local port for bridge br0 "
                   "(deleting this port requires deleting the entire bridge)")
    topo.fails("port-to-br", "p9", msg="no port named p9")
    topo.fails("iface-to-br", "p9", msg="no interface named p9")


# ---- controllers and fail mode -------------------------------------------

def test_controller_and_fail_mode(vsctl):
    vsctl("add-br", "br0")
    vsctl("set-controller", "br0", "tcp:127.0.0.1:6653", "ptcp:6654")
    assert vsctl.lines("get-controller", "br0") == ["ptcp:6654", "tcp:127.0.0.1:6653"]
    vsctl("set-controller", "br0", "unix:/tmp/c.sock")
    assert vsctl.lines("get-controller", "br0") == ["unix:/tmp/c.sock"]
    assert len(vsctl.snapshot()["Controller"]) == 1
    assert vsctl("get", "Controller", "br0", "target") == '"unix:/tmp/c.sock"\n'
    vsctl("del-controller", "br0")
    assert vsctl("get-controller", "br0") == ""
    assert not vsctl.snapshot()["Controller"]
    assert vsctl("get-fail-mode", "br0") == ""
    vsctl("set-fail-mode", "br0", "secure")
    assert vsctl("get-fail-mode", "br0") == "secure\n"
    vsctl("del-fail-mode", "br0")
    assert vsctl("get-fail-mode", "br0") == ""
    vsctl.fails("set-fail-mode", "br0", "open", msg='fail-mode must be "standalone" or "secure"')
    vsctl.fails("set-controller", "br9", "tcp:1.2.3.4", msg="no bridge named br9")


# ---- database commands ---------------------------------------------------

def test_set_get_values(topo):
    topo("set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x2")
    assert topo("get", "Open_vSwitch", ".", "other_config:pmd-cpu-mask") == '"0x2"\n'
    assert topo("--bare", "get", "Open_vSwitch", ".", "other_config:pmd-cpu-mask") == "0x2\n"
    topo("set", "Interface", "p2", "type=dpdkvhostuser", "mtu_request=9000",
         "options={a=b, c=\"d e\"}")
    assert topo("get", "Interface", "p2", "options") == '{a=b, c="d e"}\n'
    assert topo("get", "Interface", "p2", "mtu_request") == "9000\n"
    topo("set", "port", "p2", "trunks=[30,40]", "vlan_mode=native-untagged")
    assert topo("get", "port", "p2", "trunks") == "[30, 40]\n"
    topo("set", "Bridge", "br0", "protocols=OpenFlow10,OpenFlow13")
    assert topo("get", "br", "br0", "protocols") == "[OpenFlow10, OpenFlow13]\n"
    pu = topo("get", "Port", "p1", "_uuid").strip()
    assert topo("get", "Port", pu[:8], "name") == "p1\n"
    assert topo("get", "Port", pu, "name") == "p1\n"
    assert topo("get", "Interface", "p1", "ofport") == "[]\n"
    topo("set", "Interface", "p1", "other-config:x=1")
    assert topo("get", "Interface", "p1", "other_config") == '{x="1"}\n'


def test_clear_add_remove(topo):
    topo("clear", "Port", "p1", "tag")
    assert topo("get", "Port", "p1", "tag") == "[]\n"
    topo("add", "Port", "p2", "trunks", "30", "40,50")
    assert topo("get", "Port", "p2", "trunks") == "[10, 20, 30, 40, 50]\n"
    topo("remove", "Port", "p2", "trunks", "10", "[20,30]")
    assert topo("get", "Port", "p2", "trunks") == "[40, 50]\n"
    topo("add", "Interface", "p1", "options", "x=1", "peer=ignored")
    assert topo("get", "Interface", "p1", "options:peer", "options:x") == 'p2\n"1"\n'
    topo("remove", "Interface", "p1", "options", "x=2", "remote_ip")
    assert topo("get", "Interface", "p1", "options") == '{peer=p2, x="1"}\n'
    topo("remove", "Interface", "p1", "options", "x=1")
    assert topo("get", "Interface", "p1", "options") == "{peer=p2}\n"
    topo("add", "Port", "p1", "tag", "7")
    assert topo("get", "Port", "p1", "tag") == "7\n"
    topo.fails("add", "Port", "p1", "tag", "8", msg='"add" operation would put 2 values in '
               'column tag of table Port but the maximum number is 1')
    topo.fails("clear", "Port", "p1", "interfaces", msg='"clear" operation cannot be applied to '
               'column interfaces of table Port, which is not allowed to be empty')


def test_list_and_find(topo):
    out = topo("list", "Port", "p1")
    assert out.startswith("_uuid               : ")
    assert "name                : p1\n" in out and "tag                 : 10\n" in out
    assert "bond_active_slave   : []\n" in out
    assert topo("--columns=name,tag", "list", "Port") == (
        "name                : br0\ntag                 : []\n\n"
        "name                : p1\ntag                 : 10\n\n"
        "name                : p2\ntag                 : []\n")
    assert topo("--bare", "--columns=name", "find", "Port", "tag=10") == "p1\n"
    assert topo("--bare", "--columns=name", "find", "Interface", "type=afpacket") == "p1\n"
    assert topo("--bare", "--columns=name", "find", "Port", "trunks{>=}10") == "p2\n"
    assert topo("--bare", "--columns=name", "find", "Interface", "options:peer=p2") == "p1\n"
    assert topo.lines("--bare", "--columns=name", "find", "Port", "tag!=10") == ["br0", "", "p2"]
    assert topo("find", "Port", "name=nope") == ""


def test_create_destroy_with_ids(topo):
    out = topo("--", "--id=@m", "create", "Mirror", "name=m0", "select_all=true",
               "--", "add", "Bridge", "br0", "mirrors", "@m",
               "--", "--id=@p", "get", "Port", "p1",
               "--", "set", "Mirror", "m0", "output_port=@p")
    assert UUID.fullmatch(out.strip())
    assert topo("get", "Mirror", "m0", "select_all") == "true\n"
    pu = topo("get", "Port", "p1", "_uuid").strip()
    assert topo("get", "Mirror", "m0", "output_port") == pu + "\n"
    topo("del-port", "p1")
    assert topo("get", "Mirror", "m0", "output_port") == "[]\n"
    topo("remove", "Bridge", "br0", "mirrors", out.strip())
    assert not topo.snapshot()["Mirror"]
    topo.fails("set", "Bridge", "br0", "mirrors=@nope",
               msg='row id "@nope" is referenced but never created '
                   '(e.g. with "-- --id=@nope create ...")')


def test_destroy(topo):
    topo("--id=@c", "create", "Controller", "target=tcp:1.1.1.1",
         "--", "set", "Bridge", "br0", "controller=@c")
    topo("clear", "Bridge", "br0", "controller", "--", "--all", "destroy", "Controller")
    assert not topo.snapshot()["Controller"]
    pu = topo("get", "Port", "p1", "_uuid").strip()
    topo.fails("destroy", "Port", "p1",
               msg=f"referential integrity violation: table Bridge row "
                   f"{topo('get', 'Bridge', 'br0', '_uuid').strip()} references "
                   f"nonexistent row {pu} in table Port")
    topo("--if-exists", "destroy", "Port", "nope")


def test_db_errors(topo):
    topo.fails("get", "Port", "x", "tag", msg='no row "x" in table Port')
    topo.fails("set", "Interface", "p1", "foo=1",
               msg='Interface does not contain a column whose name matches "foo"')
    topo.fails("get", "Nope", "x", "y", msg='unknown table "Nope"')
    topo.fails("set", "Port", "p1", "tag=5000",
               msg="constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)")
    topo.fails("set", "Port", "p1", "vlan_mode=foo",
               msg="constraint violation: foo is not one of the allowed values ([access, "
                   "dot1q-tunnel, native-tagged, native-untagged, trunk])")
    topo.fails("set", "Interface", "p1", "ofport_request=0",
               msg="constraint violation: 0 is not in the valid range 1 to 65279 (inclusive)")
    topo.fails("set", "Port", "p1", "tag=x", msg='"x" is not a valid integer')
    topo.fails("set", "Interface", "p1", "ofport=3",
               msg="cannot modify read-only column ofport in table Interface")
    topo.fails("set", "Interface", "p1", "name=q",
               msg="cannot modify read-only column name in table Interface")
    topo.fails("get", "Interface", "p1", "options:nokey",
               msg='no key "nokey" in Interface record "p1" column options')
    topo.fails("set", "Port", "p1", "tag:x=1", msg="cannot specify key to set for non-map column tag")
    topo.fails("set", "Port", "p1", "tag", msg="tag: missing value")
    assert topo("--if-exists", "get", "Interface", "p1", "options:nokey") == ""


# ---- values the switch would not understand --------------------------------

IFACE_TYPES = ("afpacket", "dummy", "internal", "system", "tap")


@pytest.fixture
def switch_ran(topo):
    """As after a daemon started: Open_vSwitch:iface_types is filled in."""
    s = Store(topo.db)
    ru = next(iter(s.snapshot().tables["Open_vSwitch"]))
    s.write_status({"Open_vSwitch": {ru: {"iface_types": IFACE_TYPES}}})
    s.close()
    return topo


def test_unknown_iface_type_is_refused(switch_ran):
    msg = ('Interface {}: unknown interface type "foo" '
           '(supported: afpacket, dummy, internal, system, tap)')
    switch_ran.fails("add-port", "br0", "p5", "--", "set", "Interface", "p5", "type=foo",
                     msg=msg.format("p5"))
    switch_ran.fails("set", "Interface", "p2", "type=foo", msg=msg.format("p2"))
    switch_ran.fails("add-bond", "br0", "b0", "e1", "e2", "--", "set", "Interface", "e2",
                     "type=Tap", msg=msg.format("e2").replace('"foo"', '"Tap"'))
    switch_ran("add-port", "br0", "p5", "--", "set", "Interface", "p5", "type=tap")
    switch_ran("set", "Interface", "p5", 'type=""')
    assert switch_ran("get", "Interface", "p5", "type") == '""\n'


def test_iface_types_empty_accepts_any_type(topo):
    """No daemon ever wrote iface_types: pvs-vsctl cannot know, it accepts."""
    topo("add-port", "br0", "p5", "--", "set", "Interface", "p5", "type=foo")
    assert topo("get", "Interface", "p5", "type") == "foo\n"


def test_existing_unknown_type_does_not_block_other_changes(topo, monkeypatch):
    topo("set", "Interface", "p2", "type=foo")          # before any daemon ran
    s = Store(topo.db)
    ru = next(iter(s.snapshot().tables["Open_vSwitch"]))
    s.write_status({"Open_vSwitch": {ru: {"iface_types": IFACE_TYPES}}})
    s.close()
    topo("set", "Port", "p2", "tag=7")
    topo("set", "Interface", "p2", "options:x=y")
    assert topo("get", "Interface", "p2", "type") == "foo\n"


@pytest.mark.parametrize("table,rec,key,value,expected", [
    ("Open_vSwitch", ".", "pmd-cpu-mask", "zz", "a hexadecimal CPU mask such as 0x6"),
    ("Open_vSwitch", ".", "pmd-cpu-mask", "0x", "a hexadecimal CPU mask such as 0x6"),
    ("Open_vSwitch", ".", "pmd-cpu-mask", "-1", "a hexadecimal CPU mask such as 0x6"),
    ("Open_vSwitch", ".", "pmd-sleep-max", "-5", "an integer from 0 to 2147483647: microseconds"),
    ("Open_vSwitch", ".", "pmd-sleep-max", "abc", "an integer from 0 to 2147483647: microseconds"),
    ("Open_vSwitch", ".", "pmd-sleep-max", "1e3", "an integer from 0 to 2147483647: microseconds"),
    ("Open_vSwitch", ".", "pmd-sleep-max", "99999999999", "an integer from 0 to 2147483647: microseconds"),
    ("Open_vSwitch", ".", "vhost-sock-dir", "", "a directory path"),
    ("Bridge", "br0", "mac-aging-time", "abc", "an integer from 1 to 2147483647: seconds"),
    ("Bridge", "br0", "mac-aging-time", "0", "an integer from 1 to 2147483647: seconds"),
    ("Bridge", "br0", "mac-aging-time", "+5", "an integer from 1 to 2147483647: seconds"),
    ("Bridge", "br0", "mac-aging-time", "\u0663", "an integer from 1 to 2147483647: seconds"),
    ("Bridge", "br0", "mac-table-size", "0", "an integer from 1 to 2147483647: entries"),
    ("Bridge", "br0", "mac-table-size", "1_000", "an integer from 1 to 2147483647: entries"),
    ("Bridge", "br0", "datapath-id", "zz", "exactly 16 hex digits"),
    ("Bridge", "br0", "datapath-id", "00000000000000001", "exactly 16 hex digits"),
])
def test_malformed_other_config_is_refused(topo, table, rec, key, value, expected):
    record = "Open_vSwitch" if table == "Open_vSwitch" else f"{table} {rec}"
    msg = f'{record}: other_config:{key}="{value}" is invalid (expected {expected})'
    topo.fails("set", table, rec, f'other_config:{key}="{value}"', msg=msg)
    topo.fails("add", table, rec, "other_config", f'{key}="{value}"', msg=msg)
    topo.fails("set", table, rec, f'other_config={{{key}="{value}"}}', msg=msg)


def test_malformed_value_in_a_new_bridge_is_refused(topo):
    topo.fails("add-br", "br9", "--", "set", "Bridge", "br9", "other_config:mac-table-size=x",
               msg='Bridge br9: other_config:mac-table-size="x" is invalid '
                   '(expected an integer from 1 to 2147483647: entries)')


@pytest.mark.parametrize("table,rec,key,value", [
    ("Open_vSwitch", ".", "pmd-cpu-mask", "0x6"),
    ("Open_vSwitch", ".", "pmd-cpu-mask", "F"),
    ("Open_vSwitch", ".", "pmd-sleep-max", "0"),
    ("Open_vSwitch", ".", "pmd-sleep-max", "500"),
    ("Open_vSwitch", ".", "vhost-sock-dir", "/var/run/vhost"),
    ("Bridge", "br0", "mac-aging-time", "2"),
    ("Bridge", "br0", "mac-table-size", "2048"),
    ("Bridge", "br0", "datapath-id", "00000000000000aB"),
    ("Bridge", "br0", "some-other-key", "zz"),            # keys the switch does not read
    ("Port", "p1", "mac-aging-time", "abc"),              # ...or not in this table
])
def test_well_formed_other_config_is_accepted(topo, table, rec, key, value):
    topo("set", table, rec, f"other_config:{key}={value}")
    assert topo("get", table, rec, f"other_config:{key}") in (f"{value}\n", f'"{value}"\n')


def test_existing_malformed_value_does_not_block_other_changes(topo):
    s = Store(topo.db)
    with s.transaction() as txn:        # as written by another tool or an older pvs-vsctl
        u, row = txn.find("Bridge", "br0")
        txn.update("Bridge", u, {"other_config": {"mac-aging-time": "abc"}})
    s.close()
    topo("set", "Bridge", "br0", "other_config:flood=1")
    topo("remove", "Bridge", "br0", "other_config", "flood")
    topo.fails("set", "Bridge", "br0", "other_config:mac-aging-time=x",
               msg='Bridge br0: other_config:mac-aging-time="x" is invalid '
                   '(expected an integer from 1 to 2147483647: seconds)')
    topo("set", "Bridge", "br0", "other_config:mac-aging-time=30")


# ---- atomicity, usage errors ---------------------------------------------

def test_chained_commands_are_atomic(topo):
    topo.fails("add-br", "br1", "--", "add-port", "br1", "q1", "--", "set", "Port", "q1",
               "tag=9999", msg="constraint violation: 9999 is not in the valid range 0 to "
                               "4095 (inclusive)")
    topo.fails("add-port", "br0", "q1", "--", "add-port", "br0", "q1",
               msg="cannot create a port named q1 because a port named q1 already exists "
                   "on bridge br0")
    topo("add-br", "br1", "--", "add-port", "br1", "q1", "--", "set", "Interface", "q1",
         "type=afpacket", "ofport_request=3")
    assert topo("get", "Interface", "q1", "type") == "afpacket\n"


def test_next_cfg_bumps_once_per_invocation(vsctl):
    n0 = int(vsctl("get", "Open_vSwitch", ".", "next_cfg"))
    vsctl("add-br", "br0", "--", "add-port", "br0", "p1", "--", "set", "Port", "p1", "tag=1")
    assert int(vsctl("get", "Open_vSwitch", ".", "next_cfg")) == n0 + 1
    vsctl("list-br")
    vsctl("set", "Port", "p1", "tag=1")      # no actual change
    assert int(vsctl("get", "Open_vSwitch", ".", "next_cfg")) == n0 + 1


@pytest.mark.parametrize("args,msg", [
    ([], "missing command name (use --help for help)"),
    (["frob"], "unknown command 'frob'; use --help for help"),
    (["add-br"], "'add-br' command requires at least 1 arguments"),
    (["list-br", "x"], "'list-br' command takes at most 0 arguments"),
    (["--if-exists", "add-br", "br0"], "'add-br' command has no '--if-exists' option"),
    (["--timeout=x", "show"], "value x on -t or --timeout is invalid"),
])
def test_usage_errors(vsctl, args, msg):
    vsctl.fails(*args, msg=msg)


def test_help(vsctl):
    out = vsctl("--help")
    assert "add-port BRIDGE PORT" in out and "--no-wait" in out


def test_db_option_and_env(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PVS_RUNDIR", raising=False)
    monkeypatch.setenv("PVS_DB", str(tmp_path / "env.db"))
    assert main(["add-br", "brenv"]) == 0
    assert main([f"--db={tmp_path / 'opt.db'}", "--no-wait", "add-br", "bropt"]) == 0
    assert main(["--db", str(tmp_path / "opt.db"), "list-br"]) == 0
    assert capsys.readouterr().out == "bropt\n"
    assert main(["list-br"]) == 0
    assert capsys.readouterr().out == "brenv\n"


def test_lock_timeout(vsctl):
    vsctl("init")
    s = Store(vsctl.db)
    with s.transaction():
        t0 = time.monotonic()
        vsctl.capsys.readouterr()
        assert main(["--timeout=0.3", "add-br", "br0"]) == 1
        assert vsctl.capsys.readouterr().err == "pvs-vsctl: timeout expired\n"
        assert time.monotonic() - t0 < 5
    s.close()


# ---- waiting for the daemon ----------------------------------------------

class FakeDaemon:
    """Answers vsctl/apply on <rundir>/pvs-vswitchd.ctl like the daemon would."""

    def __init__(self, path, reply=None, error=None, delay=0.0):
        self.calls, self.reply, self.error, self.delay = [], reply, error, delay
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                req = json.loads(conn.makefile().readline())
                self.calls.append((req["method"], req["params"]))
                time.sleep(self.delay)
                try:
                    conn.sendall(json.dumps({"id": req["id"], "result": self.reply,
                                             "error": self.error}).encode() + b"\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_waits_for_daemon(vsctl):
    d = FakeDaemon(str(vsctl.tmp / "pvs-vswitchd.ctl"))
    vsctl("add-br", "br0")
    vsctl("list-br")
    vsctl("--no-wait", "add-br", "br1")
    cfg = int(vsctl("get", "Open_vSwitch", ".", "next_cfg"))
    assert d.calls == [("vsctl/apply", [cfg - 1])]
    d.close()


def test_daemon_error_is_a_warning(vsctl):
    d = FakeDaemon(str(vsctl.tmp / "pvs-vswitchd.ctl"), error="p1: could not open device")
    assert main(["add-br", "br0"]) == 0
    assert vsctl.capsys.readouterr().err == "pvs-vsctl: warning: p1: could not open device\n"
    assert vsctl.lines("list-br") == ["br0"]
    d.close()


def test_daemon_dies_while_waiting_is_a_warning(vsctl, monkeypatch):
    """The daemon resets the connection (it crashed): a warning, no traceback."""
    def reset(*a, **kw):
        raise ConnectionResetError(104, "Connection reset by peer")
    monkeypatch.setattr("pyvswitch.cli.vsctl.unixrpc.call", reset)
    assert main(["add-br", "br0"]) == 0
    assert vsctl.capsys.readouterr().err == (
        f"pvs-vsctl: warning: {vsctl.tmp}/pvs-vswitchd.ctl: connection to the daemon failed "
        f"(Connection reset by peer)\n")
    assert vsctl.lines("list-br") == ["br0"]      # the change stands


def test_daemon_timeout(vsctl):
    d = FakeDaemon(str(vsctl.tmp / "pvs-vswitchd.ctl"), delay=2.0)
    t0 = time.monotonic()
    assert main(["-t", "0.3", "add-br", "br0"]) == 1
    assert vsctl.capsys.readouterr().err == "pvs-vsctl: timeout expired\n"
    assert time.monotonic() - t0 < 1.5
    assert vsctl.lines("list-br") == ["br0"]      # the change stands
    d.close()


def test_console_script(tmp_path):
    env = dict(os.environ, PVS_DB=str(tmp_path / "c.db"), PVS_RUNDIR=str(tmp_path))
    exe = os.path.join(os.path.dirname(sys.executable), "pvs-vsctl")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "pyvswitch.cli.vsctl"]
    r = subprocess.run(cmd + ["add-br", "br0", "--", "list-br"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "br0\n", "")
    r = subprocess.run(cmd + ["br-exists", "nope"], env=env, capture_output=True, timeout=60)
    assert r.returncode == 2
