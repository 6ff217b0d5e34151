"""pvs-lab's plan: networks, local VLANs, ports and commands per host (pure)."""

import pytest

from pyvswitch.tools import labcli as L


def test_parse_networks():
    assert L.parse_networks("vxlan:100, vlan:10,flat") == [("vxlan", 100), ("vlan", 10), ("flat", 0)]
    for bad in ("", "vxlan", "vxlan:0", "vlan:4095", "gre:5", "flat,flat", "vlan:10,vlan:10",
                f"vlan:{L.FLAT_TAG}", f"vlan:{L.VXLAN_TAG_BASE}"):
        with pytest.raises(ValueError):
            L.parse_networks(bad)


def test_plan_wires_every_host_alike():
    t = L.plan("t", 3, "vxlan:100,vlan:10,flat", 2)
    assert [h["ns"] for h in t["hosts"]] == ["t-h1", "t-h2", "t-h3"]
    h2 = t["hosts"][1]
    assert h2["endpoint"] == "172.30.0.2"
    cmds = [" ".join(c) for c in h2["vsctl"]]
    # a VXLAN port per remote host, tagged with the network's local VLAN
    vx = [c for c in cmds if "type=vxlan" in c]
    assert len(vx) == 2 and all("options:key=100" in c and f"tag={L.VXLAN_TAG_BASE}" in c for c in vx)
    assert {c.split()[2] for c in vx} == {"vx1-100", "vx3-100"}
    # provider networks through the patch: VLAN 10 tagged, flat untagged
    (patch,) = [c for c in cmds if "int-br-phy" in c and "trunks=" in c]
    assert f"trunks=10,{L.FLAT_TAG}" in patch and "vlan_mode=native-untagged" in patch
    assert f"tag={L.FLAT_TAG}" in patch
    # 2 guests per network: 6 guests, all in one /16, each network its own tag
    gs = h2["guests"]
    assert len(gs) == 6 and len({g["ip"] for g in gs}) == 6 and len({g["mac"] for g in gs}) == 6
    assert all(g["ip"].startswith("10.60.") for g in gs)
    tags = {g["network"]: next(c for c in cmds if c.startswith(f"add-port br-int {g['port']} ")).split("tag=")[1]
            for g in gs}
    assert tags == {"vxlan:100": str(L.VXLAN_TAG_BASE), "vlan:10": "10", "flat": str(L.FLAT_TAG)}


def test_vxlan_only_needs_no_patch():
    t = L.plan("t", 2, "vxlan:7", 1)
    assert not any("int-br-phy" in " ".join(c) for c in t["hosts"][0]["vsctl"])


def test_plan_limits():
    with pytest.raises(ValueError):
        L.plan("t", 1, "flat", 1)
    with pytest.raises(ValueError):
        L.plan("t", 2, "flat", 5)
