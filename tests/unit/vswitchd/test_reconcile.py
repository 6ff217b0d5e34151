"""The reconciler as a pure function: desired x running -> ordered operations."""

import copy

from hypothesis import given, settings, strategies as st

from pyvswitch.vswitchd.reconcile import Op, plan


def iface(type_="afpacket", **kw):
    d = {"type": type_, "options": {}, "ofport_request": None, "mtu_request": None}
    d.update(kw)
    return d


def port(ifaces=None, tag=None, trunks=()):
    return {"tag": tag, "trunks": list(trunks), "vlan_mode": None, "other_config": {},
            "interfaces": ifaces or {}}


def bridge(ports=None):
    return {"datapath_type": "netdev", "fail_mode": "", "other_config": {}, "ports": ports or {}}


def state(bridges=None, oc=None):
    return {"other_config": oc or {}, "bridges": bridges or {}}


def kinds(ops):
    return [(o.kind, o.bridge, o.port, o.iface) for o in ops]


def test_nothing_to_do():
    s = state({"br0": bridge({"p1": port({"p1": iface()})})})
    assert plan(s, copy.deepcopy(s)) == []


def test_new_bridge_with_port():
    want = state({"br0": bridge({"p1": port({"p1": iface()}, tag=10)})})
    assert kinds(plan(want, state())) == [
        ("add_bridge", "br0", "", ""), ("add_port", "br0", "p1", ""), ("add_iface", "br0", "p1", "p1")]


def test_delete_bridge_removes_children_first():
    have = state({"br0": bridge({"p1": port({"p1": iface()})})})
    assert kinds(plan(state(), have)) == [
        ("del_iface", "br0", "p1", "p1"), ("del_port", "br0", "p1", ""), ("del_bridge", "br0", "", "")]


def test_tag_change_is_set_port_only():
    have = state({"br0": bridge({"p1": port({"p1": iface()}, tag=10)})})
    want = state({"br0": bridge({"p1": port({"p1": iface()}, tag=20)})})
    ops = plan(want, have)
    assert kinds(ops) == [("set_port", "br0", "p1", "")]
    assert ops[0].config["tag"] == 20


def test_type_change_reopens_interface():
    have = state({"br0": bridge({"p1": port({"p1": iface("afpacket")})})})
    want = state({"br0": bridge({"p1": port({"p1": iface("tap")})})})
    assert kinds(plan(want, have)) == [("del_iface", "br0", "p1", "p1"), ("add_iface", "br0", "p1", "p1")]


def test_mtu_change_in_place():
    have = state({"br0": bridge({"p1": port({"p1": iface()})})})
    want = state({"br0": bridge({"p1": port({"p1": iface(mtu_request=9000)})})})
    assert kinds(plan(want, have)) == [("set_mtu", "br0", "p1", "p1")]


def test_failed_interface_is_retried():
    have = state({"br0": bridge({"p1": port({"p1": dict(iface(), failed=True)})})})
    want = state({"br0": bridge({"p1": port({"p1": iface()})})})
    assert kinds(plan(want, have)) == [("del_iface", "br0", "p1", "p1"), ("add_iface", "br0", "p1", "p1")]


def test_global_other_config():
    assert plan(state(oc={"pmd-cpu-mask": "0x2"}), state()) == [Op("set_global")]


names = st.sampled_from(["br0", "br1", "p1", "p2", "p3"])
ifaces_st = st.dictionaries(st.sampled_from(["i1", "i2"]),
                            st.builds(iface, st.sampled_from(["afpacket", "tap"])), max_size=2)
ports_st = st.dictionaries(st.sampled_from(["p1", "p2", "p3"]),
                           st.builds(port, ifaces_st, st.sampled_from([None, 10, 20])), max_size=3)
states = st.builds(state, st.dictionaries(st.sampled_from(["br0", "br1"]), st.builds(bridge, ports_st), max_size=2))


def apply(ops, have, want):
    """A model of the daemon applying operations to a running state."""
    s = copy.deepcopy(have)
    for o in ops:
        brs = s["bridges"]
        if o.kind == "del_iface":
            del brs[o.bridge]["ports"][o.port]["interfaces"][o.iface]
        elif o.kind == "del_port":
            assert not brs[o.bridge]["ports"][o.port]["interfaces"], "port deleted before its interfaces"
            del brs[o.bridge]["ports"][o.port]
        elif o.kind == "del_bridge":
            assert not brs[o.bridge]["ports"], "bridge deleted before its ports"
            del brs[o.bridge]
        elif o.kind in ("add_bridge", "set_bridge"):
            brs.setdefault(o.bridge, {"ports": {}}).update(copy.deepcopy(o.config))
        elif o.kind in ("add_port", "set_port"):
            brs[o.bridge]["ports"].setdefault(o.port, {"interfaces": {}}).update(copy.deepcopy(o.config))
        elif o.kind in ("add_iface", "set_mtu"):
            assert o.port in brs[o.bridge]["ports"], "interface added before its port"
            brs[o.bridge]["ports"][o.port]["interfaces"][o.iface] = copy.deepcopy(o.config)
        elif o.kind == "set_global":
            s["other_config"] = dict(want["other_config"])
    return s


@settings(max_examples=200)
@given(states, states)
def test_plan_converges(want, have):
    after = apply(plan(want, have), have, want)
    assert after == want
    assert plan(want, after) == []
