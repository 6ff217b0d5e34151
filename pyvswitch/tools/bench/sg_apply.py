"""Time to apply one security group to many ports through the running daemon.

A pvs-vswitchd (switches.PyVSwitch, the harness's) gets `ports` patch ports
(each paired with one on a second bridge). Patch ports because they need no
kernel device or guest and have no datapath port to poll; what is measured
here, flows reaching the bridge's tables, does not depend on the port type.
One group of 7 rules, one of them with the group itself as remote group (so
its member list is every port's address), is put on all ports with
`pvs-secgroup import`, as an operator would. Timed end to end: from starting
pvs-secgroup until `pvs-ofctl dump-flows` shows every compiled flow (cookie
0x5ec0) in the bridge. Also measured in the same run:

- compile: cloud/secgroup.compile_flows alone, in this process;
- re-apply: `pvs-secgroup apply` with nothing changed (no flow to add or
  delete): what every change pays per port (OpenFlow port lookups, the
  conntrack scan of each port's zone);
- rule-add: one more rule on the live group, end to end as above.
"""

import json
import os
import subprocess
import time

from pyvswitch.cloud import secgroup as SG
from pyvswitch.cloud import sgctl

from . import system
from .switches import PyVSwitch

COOKIE = f"{sgctl.COOKIE:#x}/-1"
RULES = [
    {"direction": "ingress", "protocol": "tcp", "port_min": 22, "port_max": 22, "remote_cidr": "192.0.2.0/24"},
    {"direction": "ingress", "protocol": "tcp", "port_min": 80, "port_max": 80},
    {"direction": "ingress", "protocol": "tcp", "port_min": 443, "port_max": 443},
    {"direction": "ingress", "protocol": "tcp", "port_min": 8000, "port_max": 8099, "remote_group": "web"},
    {"direction": "ingress", "protocol": "icmp"},
    {"direction": "egress"},
    {"direction": "egress", "ethertype": "IPv6"},
]


class PatchPortSwitch(PyVSwitch):
    """The harness's pvs-vswitchd; its ports come later, as patch ports."""

    peer_bridge = "pvbsgpeer"

    def ports(self):
        return []

    def add_patch_ports(self, names, chunk=100):
        """Port NAME on the bridge, NAMEp on the peer bridge; one pvs-vsctl
        transaction per `chunk` pairs."""
        self.ctl("pvs-vsctl", "add-br", self.peer_bridge, "--", "set", "bridge", self.peer_bridge,
                 "datapath_type=netdev")
        for i in range(0, len(names), chunk):
            args = []
            for name in names[i:i + chunk]:
                for br, port, peer in ((system.BRIDGE, name, name + "p"), (self.peer_bridge, name + "p", name)):
                    args += ["--", "add-port", br, port, "--", "set", "Interface", port, "type=patch",
                             f"options:peer={peer}"]
            self.ctl("pvs-vsctl", "--timeout=300", *args[1:], timeout=330)


def port_names(n):
    return [f"sg{i}" for i in range(n)]


def model(names):
    """The JSON `pvs-secgroup import` takes: every port in group web."""
    ports = {}
    for i, name in enumerate(names):
        ports[name] = {"mac": f"fa:16:3e:00:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}",
                       "ips": [f"10.{100 + (i >> 16)}.{i >> 8 & 0xFF}.{i & 0xFF}"], "groups": ["web"]}
    return {"bridge": system.BRIDGE, "groups": {"web": [dict(r) for r in RULES]}, "ports": ports}


def compile_seconds(doc):
    """(flows, seconds) of compile_flows alone (ofports as sgctl numbers them offline)."""
    t0 = time.perf_counter()
    groups, ports = sgctl.to_objects(doc, ofports=None)
    flows = SG.compile_flows(ports, groups)
    return len(flows), time.perf_counter() - t0


def installed(sw):
    out = sw.ctl("pvs-ofctl", "dump-flows", "--no-stats", system.BRIDGE, f"cookie={COOKIE}", timeout=120).stdout
    return sum(1 for line in out.splitlines() if "actions=" in line)


def secgroup(sw, *args):
    """Run pvs-secgroup; (its output, seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([system.tool("pvs-secgroup"), "--rundir", sw.dir, "--bridge", system.BRIDGE, *args],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"pvs-secgroup {args[0]} failed: {r.stderr.strip()[-300:]}")
    return r.stdout.strip(), time.monotonic() - t0


def until_installed(sw, want, t0, timeout=300.0):
    """Seconds from t0 until the bridge holds `want` secgroup flows."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        have = installed(sw)
        if have == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise RuntimeError(f"the bridge has {have} secgroup flows, {want} expected")


def timed_change(sw, want, *args):
    t0 = time.monotonic()
    text, cli_s = secgroup(sw, *args)
    return {"output": text, "cli_seconds": round(cli_s, 3),
            "end_to_end_seconds": round(until_installed(sw, want, t0), 3), "flows": want}


def measure(args, sw, rawdir, cleanup, emit):
    names = port_names(args.ports)
    t0 = time.monotonic()
    sw.add_patch_ports(names)
    emit({"type": "ports", "ports": len(names), "seconds": round(time.monotonic() - t0, 3)})
    sw.ctl("pvs-ofctl", "del-flows", system.BRIDGE)
    doc = model(names)
    path = os.path.join(rawdir, f"secgroup-{len(names)}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    n, secs = compile_seconds(doc)
    emit({"type": "compile", "ports": len(names), "flows": n, "seconds": round(secs, 4)})
    system.log(f"  compile: {n} flows for {len(names)} ports in {secs:.3f} s")
    rec = timed_change(sw, n, "import", path)
    emit({"type": "import", "ports": len(names), **rec})
    system.log(f"  import: {rec['output']}; visible after {rec['end_to_end_seconds']} s")
    rec = timed_change(sw, n, "apply")
    emit({"type": "reapply", "ports": len(names), **rec})
    system.log(f"  re-apply, nothing changed: {rec['end_to_end_seconds']} s")
    doc["groups"]["web"].append({"direction": "ingress", "protocol": "udp", "port_min": 53, "port_max": 53})
    n2, _ = compile_seconds(doc)
    rec = timed_change(sw, n2, "rule-add", "web", "ingress", "protocol=udp", "port=53")
    emit({"type": "rule_add", "ports": len(names), **rec})
    system.log(f"  rule-add: {rec['output']}; visible after {rec['end_to_end_seconds']} s")
