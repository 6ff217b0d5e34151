"""pvs-secgroup: Neutron-style security groups on a pyvswitch bridge.

    pvs-secgroup [--rundir DIR] [--bridge BR] COMMAND ...

    group-create GROUP                    group-delete GROUP
    rule-add GROUP ingress|egress [ethertype=IPv6] [protocol=tcp|udp|icmp|N]
             [port=N[-M]] [icmp_type=T] [icmp_code=C] [remote=CIDR|group:GROUP]
    rule-del GROUP INDEX                  (INDEX as `show` numbers them)
    port-set PORT mac=MAC ip=IP[,IP...] groups=G[,G...] [pairs=MAC/CIDR[,...]]
             [security=false]
    port-del PORT
    import FILE|-    replace the whole model with a JSON document (export's shape)
    export           the model as JSON
    show             groups, rules and ports
    flows            the compiled flows
    apply            install the flows again and clean conntrack (every change above applies)

The model lives in <rundir>/secgroups.json (the daemon's run directory, as
for the other CLIs: --rundir or PVS_RUNDIR). Every change is applied at once:
the compiled flows (cookie 0x5ec0) are added before stale ones are deleted
(make before break, so unaffected connections never miss a flow), then every
protected port's conntrack zone is scanned and the connections the new rules
no longer allow are flushed (`dpctl/flush-conntrack`), which cuts them.
A port's OpenFlow port number is read from the Interface table (pvs-vsctl).
"""

import argparse
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from pyvswitch.cloud import secgroup as SG
from pyvswitch.core import paths
from pyvswitch.openflow.text import format_flow, parse_flow

COOKIE = 0x5EC0
STATE_FILE = "secgroups.json"


class CliError(Exception):
    pass


# ----------------------------------------------------------------- model (JSON)
def empty_model(bridge="br-int"):
    return {"bridge": bridge, "groups": {}, "ports": {}}


def check_model(doc):
    """Validate a JSON document (raises CliError with what is wrong)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("groups", {}), dict) \
            or not isinstance(doc.get("ports", {}), dict):
        raise CliError("a model is {\"bridge\": ..., \"groups\": {...}, \"ports\": {...}}")
    try:
        groups, ports = to_objects(doc, ofports=None)
        SG.compile_flows(ports, groups)
    except (SG.SecGroupError, ValueError, TypeError, KeyError) as e:
        raise CliError(f"invalid model: {e}") from None
    return doc


def to_objects(doc, ofports):
    groups = [SG.SecurityGroup(gid, [SG.Rule(**r) for r in rules]) for gid, rules in doc["groups"].items()]
    ports = []
    for i, (name, p) in enumerate(sorted(doc["ports"].items())):
        ofport = ofports[name] if ofports is not None else i + 1
        ports.append(SG.Port(name, ofport, p["mac"], list(p.get("ips", [])), list(p.get("groups", [])),
                             [tuple(x) for x in p.get("allowed_pairs", [])], bool(p.get("security", True))))
    return groups, ports


# ----------------------------------------------------------------- the switch
def parse_ofports(text):
    """{name: ofport or -1} from `pvs-vsctl --columns=name,ofport list Interface`."""
    out, name = {}, None
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        if not sep:
            continue
        key, val = key.strip(), val.strip()
        if key == "name":
            name = val.strip('"')
        elif key == "ofport" and name is not None:
            out[name] = int(val) if val.lstrip("-").isdigit() else -1
    return out


class Switch:
    def __init__(self, rundir, bridge):
        self.rundir, self.bridge = rundir, bridge
        self.env = dict(os.environ, PVS_RUNDIR=rundir)

    def _tool(self, name):
        p = os.path.join(os.path.dirname(sys.executable), name)
        return p if os.path.exists(p) else (shutil.which(name) or name)

    def run(self, prog, *args, ok=True):
        r = subprocess.run([self._tool(prog), *args], env=self.env, capture_output=True, text=True, timeout=120)
        if ok and r.returncode != 0:
            raise CliError(f"{prog} {' '.join(args[:2])}: {r.stderr.strip() or r.stdout.strip()}")
        return r

    def ofports(self, names):
        """{name: ofport} for the given ports, from one `list Interface` (one
        pvs-vsctl per port cost 0.25 s each: minutes for 1,000 ports)."""
        r = self.run("pvs-vsctl", "--columns=name,ofport", "list", "Interface")
        found = parse_ofports(r.stdout)
        out = {}
        for name in names:
            n = found.get(name, -1)
            if n <= 0:
                why = "not found" if name not in found else "none assigned"
                raise CliError(f"port {name}: no OpenFlow port number on this switch ({why})")
            out[name] = n
        return out


    def installed(self):
        out = self.run("pvs-ofctl", "dump-flows", "--no-stats", self.bridge, f"cookie={COOKIE:#x}/-1").stdout
        flows = set()
        for line in out.splitlines():
            line = line.strip()
            if not line or line.endswith("):") or "reply" in line.split(" ", 1)[0]:
                continue
            flows.add(normalize(line))
        return flows

    def apply_flows(self, flows):
        want = {normalize(f"cookie={COOKIE:#x},{f}"): f for f in flows}
        have = self.installed()
        add = [want[k] for k in want if k not in have]
        # a flow whose match stays but whose actions change is replaced by the
        # add (same table, priority and match): deleting it would delete the new one
        kept = {_match_only(k) for k in want}
        stale = [k for k in have if k not in want and _match_only(k) not in kept]
        if add:
            with tempfile.NamedTemporaryFile("w", suffix=".flows", delete=False) as f:
                f.write("".join(f"cookie={COOKIE:#x},{x}\n" for x in add))
            try:
                self.run("pvs-ofctl", "add-flows", self.bridge, f.name)
            finally:
                os.unlink(f.name)
        for k in stale:
            match = _match_only(k)
            self.run("pvs-ofctl", "--strict", "del-flows", self.bridge, f"cookie={COOKIE:#x}/-1,{match}")
        return len(add), len(stale)


def normalize(text):
    """A flow as (table, priority, match, actions) text, field order as printed."""
    return format_flow(parse_flow(text))


def _match_only(flow_text):
    """table=..,priority=..,<match> of a formatted flow (for a strict delete)."""
    head = flow_text.split(" actions=", 1)[0].split(",actions=", 1)[0]
    parts = [p for p in re.split(r",\s*|\s+", head.strip()) if p and not p.startswith(("cookie=", "duration=",
                                                                                      "n_packets=", "n_bytes="))]
    return ",".join(parts)


# ----------------------------------------------------------------- conntrack cleanup
_CT_LINE = re.compile(r"^(\w+),orig=\(([^)]*)\)")


_ZONE = re.compile(r",zone=(\d+)")


def parse_ct_line(line):
    m = _CT_LINE.match(line)
    if not m:
        return None
    proto_name, orig = m.groups()
    f = dict(kv.split("=", 1) for kv in orig.split(","))
    proto = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132, "tcp6": 6, "udp6": 17, "icmpv6": 58,
             "sctp6": 132}.get(proto_name)
    return proto_name, proto, f


def cleanup_conntrack(sw, doc, ports, groups):
    """Flush the connections of protected ports that the rules no longer allow."""
    flushed = 0
    by_zone = {p.zone: p for p in ports if p.security}
    # one dump of every zone, not one per port (0.17 s each: minutes for 1,000 ports)
    lines = {}
    for line in sw.run("pvs-appctl", "dpctl/dump-conntrack").stdout.splitlines():
        z = _ZONE.search(line)
        zone = int(z.group(1)) if z else 0
        if zone in by_zone:
            lines.setdefault(zone, []).append(line)
    for zone, zlines in lines.items():
        p = by_zone[zone]
        mine = {ipaddress.ip_address(ip) for ip in p.ips}
        for line in zlines:
            parsed = parse_ct_line(line)
            if parsed is None or parsed[1] is None:
                continue
            name, proto, f = parsed
            src, dst = ipaddress.ip_address(f["src"]), ipaddress.ip_address(f["dst"])
            eth = "IPv6" if src.version == 6 else "IPv4"
            if src in mine:
                direction, remote = "egress", dst
            else:
                direction, remote = "ingress", src
            port = int(f["dport"]) if "dport" in f else None
            icmp_type = int(f["type"]) if "type" in f else None
            if SG.allowed(ports, groups, p.name, direction, eth, proto, str(remote), port, icmp_type):
                continue
            v6 = src.version == 6
            tup = (f"ct_ipv6_src={src},ct_ipv6_dst={dst}" if v6 else f"ct_nw_src={src},ct_nw_dst={dst}")
            tup += f",ct_nw_proto={proto}"
            if "sport" in f:
                tup += f",ct_tp_src={f['sport']},ct_tp_dst={f['dport']}"
            elif "id" in f:
                tup += f",icmp_id={f['id']}"
            r = sw.run("pvs-appctl", "dpctl/flush-conntrack", f"zone={p.zone}", tup, ok=False)
            if r.returncode == 0:
                flushed += 1
    return flushed


# ----------------------------------------------------------------- commands
def load(path, bridge):
    if not os.path.exists(path):
        return empty_model(bridge or "br-int")
    with open(path) as f:
        doc = json.load(f)
    if bridge:
        doc["bridge"] = bridge
    return doc


def save(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def apply(sw, doc, out):
    ofports = sw.ofports(doc["ports"])
    groups, ports = to_objects(doc, ofports)
    flows = SG.compile_flows(ports, groups)
    added, deleted = sw.apply_flows(flows)
    flushed = cleanup_conntrack(sw, doc, ports, groups)
    out.write(f"{len(flows)} flows on {doc['bridge']} ({added} added, {deleted} removed); "
              f"{flushed} connection(s) flushed\n")


def _kv(args, allowed):
    out = {}
    for a in args:
        if "=" not in a:
            raise CliError(f"expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        if k not in allowed:
            raise CliError(f"unknown option {k!r} (one of {', '.join(allowed)})")
        out[k] = v
    return out


def _rule(direction, args):
    o = _kv(args, ("ethertype", "protocol", "port", "icmp_type", "icmp_code", "remote"))
    rule = {"direction": direction, "ethertype": o.get("ethertype", "IPv4")}
    if "protocol" in o:
        rule["protocol"] = o["protocol"]
    if "port" in o:
        lo, _, hi = o["port"].partition("-")
        try:
            rule["port_min"], rule["port_max"] = int(lo), int(hi or lo)
        except ValueError:
            raise CliError(f"bad port range {o['port']!r}") from None
    if "icmp_type" in o:
        rule["port_min"] = int(o["icmp_type"])
        if "icmp_code" in o:
            rule["port_max"] = int(o["icmp_code"])
    if "remote" in o:
        r = o["remote"]
        if r.startswith("group:"):
            rule["remote_group"] = r[6:]
        else:
            rule["remote_cidr"] = r
    return rule


def show(doc, out):
    out.write(f"bridge {doc['bridge']}\n")
    for gid, rules in sorted(doc["groups"].items()):
        out.write(f"group {gid}\n")
        for i, r in enumerate(rules):
            desc = [r["direction"], r.get("ethertype", "IPv4")]
            if r.get("protocol") is not None:
                desc.append(str(r["protocol"]))
            if r.get("port_min") is not None:
                desc.append(f"port={r['port_min']}-{r.get('port_max', r['port_min'])}")
            if r.get("remote_cidr"):
                desc.append(f"remote={r['remote_cidr']}")
            if r.get("remote_group"):
                desc.append(f"remote=group:{r['remote_group']}")
            out.write(f"  [{i}] {' '.join(desc)}\n")
    for name, p in sorted(doc["ports"].items()):
        sec = "" if p.get("security", True) else " (port security off)"
        out.write(f"port {name} mac={p['mac']} ip={','.join(p.get('ips', []))} "
                  f"groups={','.join(p.get('groups', []))}{sec}\n")


def main(argv=None, out=sys.stdout):
    ap = argparse.ArgumentParser(prog="pvs-secgroup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rundir")
    ap.add_argument("--bridge")
    ap.add_argument("command")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args(argv)
    rundir = a.rundir or paths.rundir()
    path = os.path.join(rundir, STATE_FILE)
    try:
        doc = load(path, a.bridge)
        cmd, args = a.command, a.args
        sw = Switch(rundir, doc["bridge"])
        if cmd == "show":
            show(doc, out)
            return 0
        if cmd == "export":
            out.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            return 0
        if cmd == "flows":
            ofports = sw.ofports(doc["ports"])
            groups, ports = to_objects(doc, ofports)
            out.write("".join(f + "\n" for f in SG.compile_flows(ports, groups)))
            return 0
        new = json.loads(json.dumps(doc))
        if cmd == "import":
            if len(args) != 1:
                raise CliError("import FILE|-")
            text = sys.stdin.read() if args[0] == "-" else open(args[0]).read()
            try:
                new = json.loads(text)
            except json.JSONDecodeError as e:
                raise CliError(f"{args[0]}: not JSON ({e})") from None
            new.setdefault("bridge", doc["bridge"])
            new.setdefault("groups", {})
            new.setdefault("ports", {})
        elif cmd == "group-create" and len(args) == 1:
            if args[0] in new["groups"]:
                raise CliError(f"group {args[0]} exists")
            new["groups"][args[0]] = []
        elif cmd == "group-delete" and len(args) == 1:
            if args[0] not in new["groups"]:
                raise CliError(f"no group {args[0]}")
            users = [n for n, p in new["ports"].items() if args[0] in p.get("groups", [])]
            if users:
                raise CliError(f"group {args[0]} is in use by port(s) {', '.join(sorted(users))}")
            del new["groups"][args[0]]
        elif cmd == "rule-add" and len(args) >= 2:
            if args[0] not in new["groups"]:
                raise CliError(f"no group {args[0]}")
            new["groups"][args[0]].append(_rule(args[1], args[2:]))
        elif cmd == "rule-del" and len(args) == 2:
            rules = new["groups"].get(args[0])
            if rules is None:
                raise CliError(f"no group {args[0]}")
            try:
                del rules[int(args[1])]
            except (ValueError, IndexError):
                raise CliError(f"group {args[0]} has no rule {args[1]}") from None
        elif cmd == "port-set" and len(args) >= 1:
            o = _kv(args[1:], ("mac", "ip", "groups", "pairs", "security"))
            p = new["ports"].get(args[0], {"mac": None, "ips": [], "groups": []})
            if "mac" in o:
                p["mac"] = o["mac"]
            if "ip" in o:
                p["ips"] = [x for x in o["ip"].split(",") if x]
            if "groups" in o:
                p["groups"] = [x for x in o["groups"].split(",") if x]
            if "pairs" in o:
                p["allowed_pairs"] = [x.split("/", 1)[0:1] + ["/".join(x.split("/")[1:])]
                                      for x in o["pairs"].split(",") if x]
            if "security" in o:
                p["security"] = o["security"].lower() not in ("false", "0", "no")
            if not p.get("mac"):
                raise CliError(f"port {args[0]}: mac= is needed")
            new["ports"][args[0]] = p
        elif cmd == "port-del" and len(args) == 1:
            if new["ports"].pop(args[0], None) is None:
                raise CliError(f"no port {args[0]}")
        elif cmd != "apply":
            raise CliError(f"unknown command or wrong arguments: {cmd} {' '.join(args)} (see --help)")
        check_model(new)
        apply(sw, new, out)
        save(path, new)
        return 0
    except CliError as e:
        print(f"pvs-secgroup: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pvs-secgroup: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
