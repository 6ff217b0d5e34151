"""pvs-lab: several pyvswitch hosts on one machine, joined by an underlay.

    pvs-lab up [--name lab] [--hosts 2] [--networks vxlan:100,vxlan:200,vlan:10,flat]
               [--guests 1] [--underlay-mtu 1550]
    pvs-lab check [--name lab]      ping every guest from every guest: exit 1 unless
                                    exactly the guests of the same network answer
    pvs-lab show [--name lab]       hosts, guests and how to drive each host
    pvs-lab down [--name lab]

Every host is a network namespace running its own pvs-vswitchd (own run
directory and database), wired the way Neutron's openvswitch agent wires a
compute node, with Open vSwitch's userspace-tunnelling recipe for the underlay:

    br-phy: uplink `ul` (a veth to the underlay bridge), LOCAL port owning the
            host's tunnel endpoint 172.30.0.<i>/24, patch phy-br-int
    br-int: one access port per guest (tag = the network's local VLAN);
            per VXLAN network and remote host a port
            `vx<j>-<vni>` type=vxlan options:remote_ip=172.30.0.<j> options:key=<vni>;
            patch int-br-phy carrying the VLAN networks tagged and the flat
            network untagged (vlan_mode=native-untagged)

The underlay is a Linux bridge in a namespace of its own; VLAN and flat
networks cross it as tagged and untagged frames, VXLAN networks as UDP
between the endpoints. Guests are namespaces on veth with one address each,
all in 10.60.0.0/16 whatever their network, so that only the switches keep
tenants apart: `check` proves it by traffic. The lab's state (namespaces,
daemons by PID, run directories) is kept in /run/pvs-lab/<name>.json and
`down` removes all of it.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from pyvswitch.tools.lab import Lab, daemon_env, sh, tool

STATE_DIR = "/run/pvs-lab"
UNDERLAY_NET = "172.30.0"
FLAT_TAG = 4000
VXLAN_TAG_BASE = 3000          # local VLANs of VXLAN networks on br-int


# ------------------------------------------------------------------ the plan (pure)
def parse_networks(text):
    """'vxlan:100,vlan:10,flat' -> [("vxlan", 100), ("vlan", 10), ("flat", 0)]."""
    out = []
    for item in [x.strip() for x in text.split(",") if x.strip()]:
        kind, _, num = item.partition(":")
        if kind == "flat" and not num:
            out.append(("flat", 0))
            continue
        if kind not in ("vxlan", "vlan") or not num.isdigit():
            raise ValueError(f"network {item!r}: expected vxlan:VNI, vlan:VID or flat")
        n = int(num)
        if kind == "vxlan" and not 0 < n < 1 << 24 or kind == "vlan" and not 0 < n < 4095:
            raise ValueError(f"network {item!r}: VNI 1..16777215, VLAN 1..4094")
        out.append((kind, n))
    if not out:
        raise ValueError("no network")
    if len(set(out)) != len(out) or sum(k == "flat" for k, _ in out) > 1:
        raise ValueError("networks must be distinct (and at most one flat)")
    vlans = {n for k, n in out if k == "vlan"}
    if vlans & {FLAT_TAG} or any(VXLAN_TAG_BASE <= v < VXLAN_TAG_BASE + len(out) for v in vlans):
        raise ValueError(f"VLAN ids {FLAT_TAG} and {VXLAN_TAG_BASE}.. are the lab's local VLANs")
    return out


def local_tag(net, index):
    kind, n = net
    return n if kind == "vlan" else FLAT_TAG if kind == "flat" else VXLAN_TAG_BASE + index


def net_name(net):
    kind, n = net
    return "flat" if kind == "flat" else f"{kind}:{n}"


def plan(name, hosts, networks, guests):
    """Hosts, guests and every pvs-vsctl command, as data (no side effect)."""
    if not 2 <= hosts <= 9 or not 1 <= guests <= 4:
        raise ValueError("--hosts 2..9, --guests 1..4")
    nets = parse_networks(networks) if isinstance(networks, str) else networks
    provider = [(i, n) for i, n in enumerate(nets) if n[0] in ("vlan", "flat")]
    out = {"name": name, "networks": [net_name(n) for n in nets], "hosts": []}
    for h in range(1, hosts + 1):
        host = {"index": h, "ns": f"{name}-h{h}", "endpoint": f"{UNDERLAY_NET}.{h}",
                "vsctl": [], "guests": []}
        cmds = host["vsctl"]
        cmds.append(["add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
                     "--", "add-port", "br-phy", "ul"])
        cmds.append(["add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev"])
        if provider:
            tags = sorted({local_tag(n, i) for i, n in provider})
            patch = ["--", "add-port", "br-int", "int-br-phy", "--", "set", "Interface", "int-br-phy",
                     "type=patch", "options:peer=phy-br-int",
                     "--", "add-port", "br-phy", "phy-br-int", "--", "set", "Interface", "phy-br-int",
                     "type=patch", "options:peer=int-br-phy"]
            mode = (["vlan_mode=native-untagged", f"tag={FLAT_TAG}"]
                    if any(n[0] == "flat" for _, n in provider) else [])
            cmds.append(patch[1:] + ["--", "set", "Port", "int-br-phy",
                                     "trunks=" + ",".join(map(str, tags)), *mode])
        for i, net in enumerate(nets):
            if net[0] != "vxlan":
                continue
            for peer in range(1, hosts + 1):
                if peer != h:
                    port = f"vx{peer}-{net[1]}"
                    cmds.append(["add-port", "br-int", port, f"tag={local_tag(net, i)}", "--", "set",
                                 "Interface", port, "type=vxlan", f"options:remote_ip={UNDERLAY_NET}.{peer}",
                                 f"options:key={net[1]}"])
        for i, net in enumerate(nets):
            for g in range(guests):
                port = f"n{i}g{g}"
                host["guests"].append({"ns": f"{name}-h{h}n{i}g{g}", "port": port, "network": net_name(net),
                                       "ip": f"10.60.{i}.{h * 10 + g + 1}",
                                       "mac": f"02:60:{h:02x}:{i:02x}:{g:02x}:01"})
                cmds.append(["add-port", "br-int", port, f"tag={local_tag(net, i)}"])
        out["hosts"].append(host)
    return out


# ------------------------------------------------------------------ doing it
def _state_path(name):
    return os.path.join(STATE_DIR, f"{name}.json")


def _save(lab, topo):
    os.makedirs(STATE_DIR, exist_ok=True)
    state = dict(topo, lab={"namespaces": lab.namespaces, "links": lab.links, "pids": lab.pids,
                            "dirs": lab.dirs})
    with open(_state_path(topo["name"]) + ".tmp", "w") as f:
        json.dump(state, f, indent=1)
    os.replace(_state_path(topo["name"]) + ".tmp", _state_path(topo["name"]))


def _load(name):
    try:
        with open(_state_path(name)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"pvs-lab: no lab named {name!r} (pvs-lab up --name {name})") from None


def host_cmd(host, prog, *args):
    r = subprocess.run([tool(prog), *map(str, args)], env=daemon_env(host["rundir"]),
                       capture_output=True, text=True,
                       timeout=300)
    if r.returncode:
        raise RuntimeError(f"host {host['index']}: {prog} {' '.join(map(str, args))}: {r.stderr.strip()}")
    return r.stdout


def _underlay(lab, name, hosts, mtu):
    ul = lab.netns("ul")
    sh("ip", "link", "add", "ul0", "type", "bridge", ns=ul)
    sh("ip", "link", "set", "ul0", "mtu", mtu, "up", ns=ul)
    for h in hosts:
        ns = lab.netns(f"h{h['index']}")      # == h["ns"]: the lab's prefix is the name
        sh("ip", "link", "add", f"h{h['index']}", "mtu", mtu, "netns", ul, "type", "veth",
           "peer", "name", "ul", "mtu", mtu, "netns", ns)
        sh("ip", "link", "set", f"h{h['index']}", "master", "ul0", "up", ns=ul)
        sh("ip", "link", "set", "ul", "up", ns=ns)
    return ul


def _start_host(lab, host):
    host["rundir"] = lab.tempdir(f"h{host['index']}")
    lab.start_daemon(host["rundir"], ns=host["ns"], timeout=300)
    for cmd in host["vsctl"]:
        host_cmd(host, "pvs-vsctl", *cmd)
    sh("ip", "addr", "add", f"{host['endpoint']}/24", "dev", "br-phy", ns=host["ns"])
    sh("ip", "link", "set", "br-phy", "up", ns=host["ns"])


def _guest(lab, host, g):
    ns = lab.netns(g["ns"][len(lab.prefix) + 1:])
    sh("ip", "link", "add", g["port"], "type", "veth", "peer", "name", "eth0", "netns", ns, ns=host["ns"])
    sh("ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off", ns=ns, check=False)
    sh("ip", "link", "set", g["port"], "up", ns=host["ns"])
    sh("ip", "link", "set", "eth0", "address", g["mac"], ns=ns)
    sh("ip", "addr", "add", f"{g['ip']}/16", "dev", "eth0", ns=ns)
    sh("ip", "link", "set", "eth0", "up", ns=ns)


def up(name, hosts, networks, guests, mtu):
    topo = plan(name, hosts, networks, guests)
    if os.path.exists(_state_path(name)):
        raise SystemExit(f"pvs-lab: lab {name!r} exists (pvs-lab down --name {name})")
    lab = Lab(prefix=name)
    try:
        _underlay(lab, name, topo["hosts"], mtu)
        for host in topo["hosts"]:
            for g in host["guests"]:      # the veths first: add-port opens them at once
                _guest(lab, host, g)
            _start_host(lab, host)
            _save(lab, topo)
    except BaseException:
        lab.close()
        try:
            os.unlink(_state_path(name))
        except FileNotFoundError:
            pass
        raise
    return topo


def down(name):
    state = _load(name)
    lab = Lab(prefix=name)
    s = state["lab"]
    lab.namespaces, lab.links, lab.pids, lab.dirs = s["namespaces"], s["links"], s["pids"], s["dirs"]
    lab.close()
    os.unlink(_state_path(name))


def guests_of(state):
    return [dict(g, host=h["index"]) for h in state["hosts"] for g in h["guests"]]


def reachable(src, dst):
    r = sh("ping", "-c", 2, "-i", 0.3, "-W", 1, "-q", dst["ip"], ns=src["ns"], check=False)
    return r.returncode == 0


def check(name, settle=30.0):
    """[(src, dst, expected, got)] over every ordered pair of guests."""
    state = _load(name)
    gs = guests_of(state)
    # The first frames resolve the underlay's neighbours and learn MACs: let
    # each network's guests find each other before judging.
    deadline = time.monotonic() + settle
    for a in gs:
        for b in gs:
            if a is not b and a["network"] == b["network"]:
                while not reachable(a, b) and time.monotonic() < deadline:
                    time.sleep(0.5)
    return [(a, b, a["network"] == b["network"], reachable(a, b)) for a in gs for b in gs if a is not b]


def show(state):
    lines = [f"lab {state['name']}: {len(state['hosts'])} hosts, networks {', '.join(state['networks'])}", ""]
    for h in state["hosts"]:
        lines.append(f"host {h['index']}: namespace {h['ns']}, tunnel endpoint {h['endpoint']}, "
                     f"rundir {h.get('rundir', '?')}")
        lines.append(f"  drive it: PVS_RUNDIR={h.get('rundir', '?')} pvs-vsctl show")
        for g in h["guests"]:
            lines.append(f"  guest {g['ns']}: {g['ip']} {g['mac']} on {g['network']} (br-int port {g['port']})")
    return "\n".join(lines)


# ------------------------------------------------------------------ command line
def main(argv=None):
    p = argparse.ArgumentParser(prog="pvs-lab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for c in ("up", "check", "show", "down"):
        sp = sub.add_parser(c)
        sp.add_argument("--name", default="lab", help="lab name, also the namespaces' prefix (default lab)")
        if c == "up":
            sp.add_argument("--hosts", type=int, default=2)
            sp.add_argument("--networks", default="vxlan:100,vxlan:200,vlan:10,flat")
            sp.add_argument("--guests", type=int, default=1, help="guests per network and host")
            sp.add_argument("--underlay-mtu", type=int, default=1550)
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("pvs-lab: needs root (network namespaces)")
    if len(a.name) > 6 or not a.name.isalnum():
        p.error("--name: up to 6 letters or digits (it prefixes interface-length names)")
    if a.cmd == "up":
        try:
            topo = up(a.name, a.hosts, a.networks, a.guests, a.underlay_mtu)
        except ValueError as e:
            p.error(str(e))
        print(show(topo))
    elif a.cmd == "show":
        print(show(_load(a.name)))
    elif a.cmd == "down":
        down(a.name)
        print(f"lab {a.name} removed")
    else:
        bad = 0
        for src, dst, want, got in check(a.name):
            ok = want == got
            bad += not ok
            print(f"{'ok ' if ok else 'BAD'} h{src['host']} {src['network']:>11} {src['ip']:>12} -> "
                  f"h{dst['host']} {dst['network']:>11} {dst['ip']:>12}: "
                  f"{'reachable' if got else 'unreachable'}{'' if ok else ' (expected the opposite)'}")
        print(f"{'isolation and reachability as expected' if not bad else f'{bad} pairs wrong'}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
