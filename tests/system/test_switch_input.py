"""Bad input against a live switch: a clear error, nothing changed, daemon up.

One daemon, one bridge, two namespaces (a, b) for the whole module. Each bad
command must exit non-zero with a `pvs-vsctl: ...` message, leave the
configuration exactly as it was (`show`, the config columns of every table,
next_cfg) and leave the daemon answering and forwarding.

A missing network device is different, as in Open vSwitch: pvs-vsctl accepts
it and the daemon reports `could not open network device NAME (No such
device)` in the Interface's error column.
"""

import os
import time

import pytest

from pyvswitch.db.store import Store

pytestmark = pytest.mark.system

PREFIX = "si"

CONFIG_COLUMNS = {
    "Open_vSwitch": "bridges,next_cfg,other_config,external_ids",
    "Bridge": "name,ports,datapath_type,fail_mode,other_config,external_ids,controller",
    "Port": "name,interfaces,tag,trunks,vlan_mode,other_config,external_ids",
    "Interface": "name,type,options,ofport,ofport_request,mtu_request,error",
}


@pytest.fixture(scope="module")
def sw(module_net_factory):
    net = module_net_factory()
    a = net.host("a", ip="10.78.0.1/24")
    b = net.host("b", ip="10.78.0.2/24")
    net.wait_ready(a, b)
    return net


def config(net):
    """Everything a user configured, as pvs-vsctl prints it (one invocation)."""
    args = ["show"]
    for table, cols in CONFIG_COLUMNS.items():
        args += ["--", f"--columns={cols}", "list", table]
    return net.vsctl(*args)


def refused(net, *args):
    """Run a bad pvs-vsctl command; returns its error message."""
    before = config(net)
    r = net.run("pvs-vsctl", *args, check=False)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith("pvs-vsctl: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert config(net) == before
    assert net.appctl("version").startswith("pvs-vswitchd")
    return r.stderr[len("pvs-vsctl: "):].rstrip("\n")


def test_unknown_port_type(sw):
    types = sw.vsctl("get", "Open_vSwitch", ".", "iface_types").strip("[]\n").split(", ")
    assert {"afpacket", "system", "tap", "internal"} <= set(types)
    p = f"{sw.prefix}-x"
    msg = refused(sw, "add-port", sw.br, p, "--", "set", "Interface", p, "type=foo")
    assert msg == f'Interface {p}: unknown interface type "foo" (supported: {", ".join(sorted(types))})'
    msg = refused(sw, "set", "Interface", sw.hosts["a"].port, "type=foo")
    assert msg.startswith(f'Interface {sw.hosts["a"].port}: unknown interface type "foo"')


def test_duplicate_port(sw):
    a = sw.hosts["a"].port
    assert refused(sw, "add-port", sw.br, a) == (
        f"cannot create a port named {a} because a port named {a} already exists on bridge {sw.br}")


def test_port_on_missing_bridge(sw):
    assert refused(sw, "add-port", f"{sw.prefix}nobr", f"{sw.prefix}-x") == f"no bridge named {sw.prefix}nobr"


@pytest.mark.parametrize("setting,msg", [
    ("tag=5000", "constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)"),
    ("tag=abc", '"abc" is not a valid integer'),
    ("tag=-1", "constraint violation: -1 is not in the valid range 0 to 4095 (inclusive)"),
    ("trunks=10,4096", "constraint violation: 4096 is not in the valid range 0 to 4095 (inclusive)"),
])
def test_bad_tag(sw, setting, msg):
    assert refused(sw, "add-port", sw.br, f"{sw.prefix}-x", setting) == msg
    assert refused(sw, "set", "Port", sw.hosts["a"].port, setting) == msg


@pytest.mark.parametrize("table,key,value,expected", [
    ("Open_vSwitch", "pmd-cpu-mask", "zz", "a hexadecimal CPU mask such as 0x6"),
    ("Open_vSwitch", "pmd-sleep-max", "-5", "an integer from 0 to 2147483647: microseconds"),
    ("Open_vSwitch", "pmd-sleep-max", "abc", "an integer from 0 to 2147483647: microseconds"),
    ("Bridge", "mac-aging-time", "abc", "an integer from 1 to 2147483647: seconds"),
    ("Bridge", "mac-aging-time", "0", "an integer from 1 to 2147483647: seconds"),
    ("Bridge", "mac-table-size", "-3", "an integer from 1 to 2147483647: entries"),
    ("Bridge", "datapath-id", "zz", "exactly 16 hex digits"),
])
def test_malformed_other_config(sw, table, key, value, expected):
    rec = "." if table == "Open_vSwitch" else sw.br
    who = "Open_vSwitch" if table == "Open_vSwitch" else f"Bridge {sw.br}"
    assert refused(sw, "set", table, rec, f"other_config:{key}={value}") == (
        f'{who}: other_config:{key}="{value}" is invalid (expected {expected})')


def test_bridge_named_like_an_existing_port(sw):
    a = sw.hosts["a"].port
    assert refused(sw, "add-br", a) == (
        f"cannot create a bridge named {a} because a port named {a} already exists on bridge {sw.br}")
    assert refused(sw, "add-br", sw.br) == (
        f"cannot create a bridge named {sw.br} because a bridge named {sw.br} already exists")


def test_missing_interface_gets_an_error_and_is_retried(sw):
    """Accepted like ovs-vsctl does; the daemon writes the error, keeps
    forwarding, and opens the device on a later reconfiguration once it exists."""
    a, b = sw.hosts["a"], sw.hosts["b"]
    name = f"{sw.prefix}-c"
    sw.vsctl("add-port", sw.br, name, "--", "set", "Interface", name, "type=afpacket")
    try:
        def error():
            e = sw.vsctl("get", "Interface", name, "error").strip()
            return None if e == "[]" else e
        assert sw.wait_for(error, 5, 0.1, "error column") == (
            f'"could not open network device {name} (No such device)"')
        assert sw.vsctl("get", "Interface", name, "ofport").strip() in ("-1", "[]")
        assert f'error: "could not open network device {name} (No such device)"' in sw.vsctl("show")
        assert sw.appctl("version").startswith("pvs-vswitchd")
        assert a.ping(b.addr, count=2, interval=0.1)

        c = sw.host("c", ip="10.78.0.3/24", add=False)        # the device appears
        sw.vsctl("set", "Bridge", sw.br, "external_ids:kick=1")   # any reconfiguration
        sw.wait_link(c)
        assert error() is None and int(sw.vsctl("get", "Interface", name, "ofport")) > 0
        sw.wait_for(lambda: a.ping(c.addr, count=1, wait=1), 10, 0.1, "ping a -> c")
    finally:
        sw.vsctl("del-port", sw.br, name, "--", "remove", "Bridge", sw.br, "external_ids", "kick")
    assert name not in sw.vsctl("show")


def test_switch_still_forwards_after_bad_input(sw):
    a, b = sw.hosts["a"], sw.hosts["b"]
    assert a.ping(b.addr, count=3, interval=0.05)
    assert "ERR" not in sw.log and "Traceback" not in sw.log


# ---- the daemon with malformed values already in its database -----------------------

def write_other_config(net, table, values):
    """Put values straight into the database, as another tool (or an older
    pvs-vsctl) could: the daemon must cope with whatever the database holds."""
    s = Store(os.path.join(net.rundir, "conf.db"))
    try:
        with s.transaction() as txn:
            if table == "Open_vSwitch":
                u, row = txn.root()
            else:
                u, row = txn.find(table, net.br)
            txn.update(table, u, {"other_config": dict(row["other_config"], **values)})
    finally:
        s.close()


def wait_applied(net):
    """Until the daemon applied the database (cur_cfg == next_cfg) or died."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and net.alive():
        out = net.vsctl("get", "Open_vSwitch", ".", "cur_cfg", "next_cfg").split()
        if out[0] == out[1]:
            return
        time.sleep(0.05)


def test_daemon_survives_malformed_values_in_the_db(net_factory):
    """Values the daemon reads, malformed: it falls back to defaults and lives."""
    net = net_factory()
    for table, key, value in [("Open_vSwitch", "pmd-sleep-max", "-5"),
                              ("Bridge", "mac-aging-time", "abc"),
                              ("Bridge", "mac-table-size", "x"),
                              ("Bridge", "datapath-id", "zz")]:
        write_other_config(net, table, {key: value})
        wait_applied(net)
        assert net.alive(), f"daemon died after other_config:{key}={value}\n{net.log[-1500:]}"
    assert net.vsctl("list-br").split() == [net.br]


def test_daemon_survives_malformed_pmd_cpu_mask_in_the_db(net_factory):
    net = net_factory(bridge=False)
    write_other_config(net, "Open_vSwitch", {"pmd-cpu-mask": "zz"})
    wait_applied(net)
    assert net.alive(), net.log[-1500:]


def test_daemon_survives_malformed_pmd_sleep_max_in_the_db(net_factory):
    net = net_factory(bridge=False)
    write_other_config(net, "Open_vSwitch", {"pmd-sleep-max": "abc"})
    wait_applied(net)
    assert net.alive(), net.log[-1500:]
