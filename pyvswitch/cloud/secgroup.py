"""Neutron-style security groups compiled into OpenFlow flows with conntrack.

The model is Neutron's:

    SecurityGroup(id, rules=[Rule(direction, ethertype, protocol,
                                  port_min, port_max, remote_cidr, remote_group)])
    Port(name, ofport, mac, ips, groups=[group ids], allowed_pairs=[(mac, cidr)],
         security=True)

`compile_flows(ports, groups)` returns the flows (ovs-ofctl text) of the
firewall pipeline, laid out like Neutron's openvswitch firewall driver:

    table 0   a protected port's packets: reg5 = its ofport, reg6 = its
              conntrack zone (= ofport), on to 71; everything else to 73
    table 71  egress base: port security (source MAC/IP of the port or an
              allowed address pair; ARP with the port's addresses; DHCP client;
              IPv6 ND/RS from its MAC), then ct(table=72, zone=reg6); the rest
              is dropped (spoofing)
    table 72  egress rules: established/related go on, invalid is dropped, new
              connections need a rule: conjunctions, then ct(commit), on to 73
    table 73  forwarding: frames for a protected port's MAC go to 81 with reg5
              and reg6 set for that port; the rest to NORMAL
    table 81  ingress base: IP to ct(table=82, zone=reg6); ARP and IPv6 ND out
              to the port; the rest dropped
    table 82  ingress rules: as 72, then output:reg5

Rules become conjunctive matches (OVS's conjunction action), one conjunction
per (group, direction, ethertype, remote): dimension 1 is the set of ports
using the group (reg5), dimension 2 the protocols and port ranges of its
rules, dimension 3 the remote addresses (the members of a remote group, or a
CIDR). So the flow count grows like ports + rules + members, not like their
product (`flow_count_bound`). Port ranges are split into masked prefixes.

`allowed(ports, groups, port_name, direction, ethertype, proto, remote_ip, port)`
answers the same question in Python (used to find the connections a removed
rule allowed, and as the tests' reference).
"""

import ipaddress
from dataclasses import dataclass, field

T_CLASSIFY, T_EGRESS, T_EGRESS_RULES, T_FORWARD, T_INGRESS, T_INGRESS_RULES = 0, 71, 72, 73, 81, 82
PRIO_RULES = 70
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}


class SecGroupError(ValueError):
    """A model that cannot be compiled (the message says what)."""


@dataclass(frozen=True)
class Rule:
    direction: str                    # "ingress" | "egress"
    ethertype: str = "IPv4"           # "IPv4" | "IPv6"
    protocol: str | None = None       # tcp, udp, icmp, icmpv6, sctp, a number, or None = any
    port_min: int | None = None       # TCP/UDP/SCTP ports; ICMP: type
    port_max: int | None = None       # ICMP: code
    remote_cidr: str | None = None
    remote_group: str | None = None

    def check(self):
        if self.direction not in ("ingress", "egress"):
            raise SecGroupError(f"direction must be ingress or egress, not {self.direction!r}")
        if self.ethertype not in ("IPv4", "IPv6"):
            raise SecGroupError(f"ethertype must be IPv4 or IPv6, not {self.ethertype!r}")
        if self.remote_cidr is not None and self.remote_group is not None:
            raise SecGroupError("a rule has a remote CIDR or a remote group, not both")
        if self.remote_cidr is not None:
            net = ipaddress.ip_network(self.remote_cidr, strict=False)
            if (net.version == 4) != (self.ethertype == "IPv4"):
                raise SecGroupError(f"remote {self.remote_cidr} is not {self.ethertype}")
        p = self.proto_number()
        if self.port_min is not None or self.port_max is not None:
            if p in (6, 17, 132):
                lo, hi = self.port_min or 0, self.port_max if self.port_max is not None else self.port_min
                if not 0 <= lo <= hi <= 0xFFFF:
                    raise SecGroupError(f"port range {lo}-{hi} invalid")
            elif p in (1, 58):
                if not 0 <= (self.port_min or 0) <= 255 or not 0 <= (self.port_max or 0) <= 255:
                    raise SecGroupError("ICMP type/code out of range")
            else:
                raise SecGroupError("ports need tcp, udp, sctp or icmp")

    def proto_number(self):
        if self.protocol is None:
            return None
        if isinstance(self.protocol, int) or str(self.protocol).isdigit():
            n = int(self.protocol)
            if not 0 <= n <= 255:
                raise SecGroupError(f"protocol {n} out of range")
            return n
        if self.protocol not in PROTOS:
            raise SecGroupError(f"unknown protocol {self.protocol!r}")
        if self.protocol == "icmp" and self.ethertype == "IPv6":
            return 58
        return PROTOS[self.protocol]


@dataclass
class SecurityGroup:
    id: str
    rules: list = field(default_factory=list)


@dataclass
class Port:
    name: str
    ofport: int
    mac: str
    ips: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    allowed_pairs: list = field(default_factory=list)    # [(mac, cidr)]
    security: bool = True

    @property
    def zone(self):
        return self.ofport


# ----------------------------------------------------------------- helpers
def port_ranges(lo, hi):
    """[(value, mask)] prefixes covering lo..hi (16 bits), as ovs-ofctl masks."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


def _ip_field(ethertype, direction_side):
    v6 = ethertype == "IPv6"
    return ("ipv6_" if v6 else "nw_") + direction_side


def _l3(ethertype):
    return "ipv6" if ethertype == "IPv6" else "ip"


def _remote_addrs(rule, ports):
    """Addresses a rule's remote side may have: CIDRs (str)."""
    if rule.remote_group is not None:
        nets = []
        for p in ports:
            if rule.remote_group in p.groups:
                for ip in p.ips:
                    a = ipaddress.ip_address(ip)
                    if (a.version == 4) == (rule.ethertype == "IPv4"):
                        nets.append(str(ipaddress.ip_network(a)))
        return sorted(set(nets))
    if rule.remote_cidr is None:
        return None                                   # anywhere
    return [str(ipaddress.ip_network(rule.remote_cidr, strict=False))]


def _proto_matches(rule):
    """Match texts (without l3) of a rule's protocol and ports."""
    p = rule.proto_number()
    if p is None:
        return [""]
    if p in (6, 17, 132):
        base = f"nw_proto={p}"
        if rule.port_min is None and rule.port_max is None:
            return [base]
        lo = rule.port_min or 0
        hi = rule.port_max if rule.port_max is not None else lo
        return [f"{base},tp_dst={v:#x}/{m:#x}" if m != 0xFFFF else f"{base},tp_dst={v}"
                for v, m in port_ranges(lo, hi)]
    if p in (1, 58):
        base = f"nw_proto={p}"
        if rule.port_min is not None:
            base += f",icmp_type={rule.port_min}" if p == 1 else f",icmpv6_type={rule.port_min}"
            if rule.port_max is not None:
                base += f",icmp_code={rule.port_max}" if p == 1 else f",icmpv6_code={rule.port_max}"
        return [base]
    return [f"nw_proto={p}"]


# ----------------------------------------------------------------- compile
def compile_flows(ports, groups):
    """The firewall's flows (ovs-ofctl text, one per line, without cookies)."""
    groups = {g.id: g for g in groups}
    for g in groups.values():
        for r in g.rules:
            r.check()
            if r.remote_group is not None and r.remote_group not in groups:
                raise SecGroupError(f"group {g.id}: remote group {r.remote_group!r} does not exist")
    names = set()
    for p in ports:
        if p.name in names:
            raise SecGroupError(f"port {p.name} defined twice")
        names.add(p.name)
        for gid in p.groups:
            if gid not in groups:
                raise SecGroupError(f"port {p.name}: security group {gid!r} does not exist")
    prot = [p for p in ports if p.security]
    flows = []
    flows += _classify(ports)
    flows += _egress_base(prot)
    flows += _ingress_base(prot)
    flows += _forward(prot)
    flows += _rules(prot, groups, ports)
    return flows


def _classify(ports):
    out = []
    for p in ports:
        if p.security:
            out.append(f"table={T_CLASSIFY},priority=100,in_port={p.ofport},actions="
                       f"load:{p.ofport}->NXM_NX_REG5[],load:{p.zone}->NXM_NX_REG6[],resubmit(,{T_EGRESS})")
    out.append(f"table={T_CLASSIFY},priority=0,actions=resubmit(,{T_FORWARD})")
    return out


def _egress_base(ports):
    out = []
    for p in ports:
        pairs = [(p.mac, ip) for ip in p.ips] + list(p.allowed_pairs)
        pre = f"table={T_EGRESS},priority=95,reg5={p.ofport}"
        # DHCP client (before it has an address) and IPv6 ND / RS from its MAC
        out.append(f"{pre},udp,dl_src={p.mac},tp_src=68,tp_dst=67,actions=resubmit(,{T_FORWARD})")
        out.append(f"{pre},udp6,dl_src={p.mac},tp_src=546,tp_dst=547,actions=resubmit(,{T_FORWARD})")
        for t in (133, 135, 136):
            out.append(f"{pre},icmp6,dl_src={p.mac},icmpv6_type={t},actions=resubmit(,{T_FORWARD})")
        for mac, cidr in pairs:
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version == 4:
                out.append(f"{pre},arp,dl_src={mac},arp_sha={mac},arp_spa={net},actions=resubmit(,{T_FORWARD})")
                out.append(f"{pre},ip,dl_src={mac},nw_src={net},"
                           f"actions=ct(table={T_EGRESS_RULES},zone=NXM_NX_REG6[0..15])")
            else:
                out.append(f"{pre},ipv6,dl_src={mac},ipv6_src={net},"
                           f"actions=ct(table={T_EGRESS_RULES},zone=NXM_NX_REG6[0..15])")
        out.append(f"table={T_EGRESS},priority=10,reg5={p.ofport},actions=drop")   # spoofed
    return out


def _ingress_base(ports):
    out = []
    for p in ports:
        pre = f"table={T_INGRESS},priority=95,reg5={p.ofport}"
        out.append(f"{pre},arp,actions=output:{p.ofport}")
        for t in (134, 135, 136):
            out.append(f"{pre},icmp6,icmpv6_type={t},actions=output:{p.ofport}")
        out.append(f"{pre},udp,tp_src=67,tp_dst=68,actions=output:{p.ofport}")
        for l3 in ("ip", "ipv6"):
            out.append(f"table={T_INGRESS},priority=90,reg5={p.ofport},{l3},"
                       f"actions=ct(table={T_INGRESS_RULES},zone=NXM_NX_REG6[0..15])")
        out.append(f"table={T_INGRESS},priority=10,reg5={p.ofport},actions=drop")
    return out


def _forward(ports):
    out = []
    for p in ports:
        out.append(f"table={T_FORWARD},priority=90,dl_dst={p.mac},actions="
                   f"load:{p.ofport}->NXM_NX_REG5[],load:{p.zone}->NXM_NX_REG6[],resubmit(,{T_INGRESS})")
    out.append(f"table={T_FORWARD},priority=0,actions=NORMAL")
    return out


def _rules(prot, groups, all_ports):
    out = []
    for table, nxt in ((T_EGRESS_RULES, f"resubmit(,{T_FORWARD})"),
                       (T_INGRESS_RULES, "output:NXM_NX_REG5[0..15]")):
        out.append(f"table={table},priority=90,ct_state=-new+est-rel-inv+trk,actions={nxt}")
        out.append(f"table={table},priority=90,ct_state=-new-est+rel-inv+trk,actions={nxt}")
        out.append(f"table={table},priority=90,ct_state=+inv+trk,actions=drop")
        out.append(f"table={table},priority=0,actions=drop")
    # conjunctions: (group, direction, ethertype, remote) -> id
    clause = {}                                          # (table, match) -> [conjunction actions]
    accept = []
    conj_id = 0
    for gid in sorted(groups):
        g = groups[gid]
        users = [p for p in prot if gid in p.groups]
        if not users:
            continue
        keyed = {}
        for r in g.rules:
            keyed.setdefault((r.direction, r.ethertype, r.remote_group, r.remote_cidr), []).append(r)
        for (direction, eth, rgroup, rcidr), rules in sorted(keyed.items(), key=str):
            remotes = _remote_addrs(rules[0], all_ports)
            if remotes == []:
                continue                                 # a remote group with no members: nothing allowed
            conj_id += 1
            n = 2 if remotes is None else 3
            table = T_EGRESS_RULES if direction == "egress" else T_INGRESS_RULES
            l3 = _l3(eth)
            state = "ct_state=+new-est+trk"
            for p in users:
                clause.setdefault((table, f"{state},reg5={p.ofport},{l3}"), []).append(f"conjunction({conj_id},1/{n})")
            for r in rules:
                for pm in _proto_matches(r):
                    m = f"{state},{l3}" + (f",{pm}" if pm else "")
                    clause.setdefault((table, m), []).append(f"conjunction({conj_id},2/{n})")
            if remotes is not None:
                side = "dst" if direction == "egress" else "src"
                for net in remotes:
                    clause.setdefault((table, f"{state},{l3},{_ip_field(eth, side)}={net}"),
                                      []).append(f"conjunction({conj_id},3/{n})")
            nxt = f"resubmit(,{T_FORWARD})" if direction == "egress" else "output:NXM_NX_REG5[0..15]"
            accept.append(f"table={table},priority={PRIO_RULES},conj_id={conj_id},{l3},"
                          f"actions=ct(commit,zone=NXM_NX_REG6[0..15]),{nxt}")
    for (table, m), acts in sorted(clause.items()):
        out.append(f"table={table},priority={PRIO_RULES},{m},actions={','.join(dict.fromkeys(acts))}")
    return out + accept


def flow_count_bound(ports, groups):
    """An upper bound linear in ports + rules + members: what the compiler
    must stay under (the tests check it)."""
    prot = [p for p in ports if p.security]
    base = 1 + 1 + 4 * 2                                 # table 0/73 defaults, 4 state flows per rules table
    per_port = 2 + 5 + 3 * max(1, max((len(p.ips) + len(p.allowed_pairs) for p in prot), default=1)) + 8
    n = base + per_port * len(prot)
    for g in groups:
        users = sum(1 for p in prot if g.id in p.groups)
        members = sum(len(p.ips) for p in ports if g.id in p.groups)
        ranges = sum(max(1, len(port_ranges(r.port_min or 0, r.port_max if r.port_max is not None
                                            else (r.port_min or 0))) if r.port_min is not None else 1)
                     for r in g.rules)
        remote_sets = sum(members if r.remote_group else 1 for r in g.rules)
        n += users * 2 + ranges + remote_sets + 2 * len(g.rules)
    return n


# ----------------------------------------------------------------- reference
def allowed(ports, groups, port_name, direction, ethertype, proto, remote_ip, port=None,
            icmp_type=None):
    """Would a new connection be allowed? direction is the port's view:
    "ingress" (remote -> port) or "egress" (port -> remote)."""
    groups = {g.id: g for g in groups}
    p = next((x for x in ports if x.name == port_name), None)
    if p is None or not p.security:
        return p is not None
    rip = ipaddress.ip_address(remote_ip)
    for gid in p.groups:
        for r in groups[gid].rules:
            if r.direction != direction or r.ethertype != ethertype:
                continue
            rp = r.proto_number()
            if rp is not None and rp != proto:
                continue
            if rp in (6, 17, 132) and r.port_min is not None:
                hi = r.port_max if r.port_max is not None else r.port_min
                if port is None or not r.port_min <= port <= hi:
                    continue
            if rp in (1, 58) and r.port_min is not None and icmp_type != r.port_min:
                continue
            remotes = _remote_addrs(r, ports)
            if remotes is not None and not any(rip in ipaddress.ip_network(n) for n in remotes):
                continue
            return True
    return False
