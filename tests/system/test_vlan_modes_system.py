"""Native VLAN modes on kernel interfaces: tagged and untagged test frames
through afpacket veth ports (raw sockets in the namespaces; the kernel has no
8021q module, so the tags are written into the frames, not by vlan devices).

    acc  access, tag=10            t20  access, tag=20
    nt   native-tagged, tag=10, trunks=20
    nu   native-untagged, tag=10, trunks=20
"""

import pytest

pytestmark = pytest.mark.system

PREFIX = "vm"
BCAST = "ff:ff:ff:ff:ff:ff"


@pytest.fixture(scope="module")
def hosts(module_net_factory):
    net = module_net_factory(bridge=False)
    # patient: the first bridge starts the PMD (its kernels compile first when
    # numba's cache is cold)
    net.vsctl("add-br", net.br, "--", "set", "bridge", net.br, "datapath_type=netdev",
              timeout=900)
    h = {"acc": net.host("acc", tag=10), "t20": net.host("t20", tag=20),
         "nt": net.host("nt", settings=["vlan_mode=native-tagged", "tag=10", "trunks=20"]),
         "nu": net.host("nu", settings=["vlan_mode=native-untagged", "tag=10", "trunks=20"])}
    net.wait_link(*h.values())
    return net, h


def send_and_see(net, h, src, vlan, tag_id):
    """Broadcast numbered test frames from host `src` (tagged `vlan` or not)
    until one arrives somewhere; {host: vlan seen (None = untagged)}."""
    wires = {name: host.wire() for name, host in h.items()}
    seen, seq = {}, 0
    try:
        def arrived():
            nonlocal seq
            seq += 1
            wires[src].send_test(BCAST, h[src].mac, tag_id, seq, vlan=vlan)
            for name, w in wires.items():
                if name != src:
                    for f in w.recv(tag_id, timeout=0.1, quiet=0.05):
                        seen[name] = f[2]
            return seen
        net.wait_for(arrived, 30, 0.1, f"frames from {src}")
        for name, w in wires.items():                       # the stragglers
            if name != src:
                for f in w.recv(tag_id, timeout=0.5, quiet=0.3):
                    seen[name] = f[2]
        return seen
    finally:
        for w in wires.values():
            w.close()
        net.lab_wires.clear()


def test_native_tagged_in_untagged(hosts):
    net, h = hosts
    assert send_and_see(net, h, "nt", None, 0x1001) == {"acc": None, "nu": None}


def test_native_tagged_in_tagged(hosts):
    net, h = hosts
    assert send_and_see(net, h, "nt", 20, 0x1002) == {"t20": None, "nu": 20}


def test_access_to_native_ports(hosts):
    net, h = hosts
    assert send_and_see(net, h, "acc", None, 0x1003) == {"nt": 10, "nu": None}


def test_native_untagged_in_tagged_native_vlan(hosts):
    net, h = hosts
    assert send_and_see(net, h, "nu", 10, 0x1004) == {"acc": None, "nt": 10}
