"""Native (userspace) VXLAN tunnelling in xlate, as Open vSwitch's
tnl-port.c, tnl-ports.c and native_tunnel_output/compose_output_action.

`Tunnels` (one per switch, ofproto.tnl on every bridge) holds:
  * the tunnel ports (TnlPort: bridge, ofport, the parsed options of
    ports/vxlan.py) and the datapath vports, one per UDP dst_port
    (`vxlan_sys_4789`): dp_port <-> dst_port;
  * the internal devices of the bridges (name -> bridge, ofport, dp_port,
    MAC) and the kernel's IPv4 addresses (which of them are tunnel
    endpoints);
  * the route table (ofproto/route.py) and the neighbour cache
    (ofproto/neigh.py); `version` moves whenever something a translation
    read changed (the daemon then revalidates), `pending` holds the ARP
    requests a translation asked for (the daemon sends them), `drops` the
    named counters of tunnel drops (tnl/drops/show), credited per packet by
    the revalidator like rule counters.

Receive (`receive`): a decapsulated packet (in_port = a vport, tun_id,
tun_src, tun_dst set by the datapath's tnl_pop) belongs to the tunnel port
whose dst_port, key, local_ip and remote_ip match, an exact key before
key=flow, a configured local_ip before none, an exact remote_ip before
remote_ip=flow (tnl_port_receive's order); no port: dropped. The megaflow
matches tun_id, tun_src and tun_dst exactly.

Output (`output`, from xlate's _emit for a tunnel port): remote_ip (or the
flow's tun_dst), key (or tun_id) -> route lookup -> the output device must
be an internal port of a bridge -> next hop MAC from the neighbour cache
(a miss sends an ARP request out of that bridge and drops the packet) ->
clone(tnl_push(header), <the translation continued in the output bridge
from that internal port, for the encapsulated packet>): the outer bridge's
NORMAL (or flows) sends it out of the uplink. What the outer translation
examines is not part of the packet's key: its wildcards are thrown away.

Termination (`pop_port`, xlate's _emit of an output to LOCAL): an IPv4/UDP
frame to the MAC and IP of a local endpoint and to a tunnel dst_port becomes
('tnl_pop', vport, dst_port) instead of an output; dl_type, nw_proto,
dl_dst, nw_dst and tp_dst join the mask.

Snooping (`snoop`): bridges that own an endpoint IP learn (sender IP ->
sender MAC) from every ARP request and reply they translate; their
megaflows always match dl_type (and ARP's sender fields).
Single-threaded: under the switch lock.
"""

from dataclasses import dataclass, field

import numpy as np

from pyvswitch.datapath import layout
from pyvswitch.ofproto.classifier import Counters as Counter
from pyvswitch.openflow import fields as F
from pyvswitch.proto import vxlan as TK
from pyvswitch.ofproto.neigh import NeighCache, mac_text
from pyvswitch.ofproto.route import RouteTable, ip_text

ETH_ARP, ETH_IP = 0x0806, 0x0800
ARP_RETRY = 1.0        # seconds between ARP requests for one next hop
DROP_REASONS = ("no_route", "no_output_bridge", "neigh_miss", "no_remote", "no_tunnel_port",
                "no_vport")


@dataclass(eq=False)
class TnlPort:
    ofp: object
    ofport: int
    name: str
    cfg: object               # ports/vxlan.TunnelConfig
    port: object              # ports/vxlan.VxlanPort (tx/rx counters)


@dataclass
class Dev:
    ofp: object
    ofport: int
    dp_port: int
    mac: int


@dataclass
class Tunnels:
    routes: RouteTable = field(default_factory=RouteTable)
    neigh: NeighCache = field(default_factory=NeighCache)
    ports: list = field(default_factory=list)       # TnlPort
    vports: dict = field(default_factory=dict)      # dst_port -> dp_port
    vport_dst: dict = field(default_factory=dict)   # dp_port -> dst_port
    devs: dict = field(default_factory=dict)        # internal device name -> Dev
    endpoints: dict = field(default_factory=dict)   # local IPv4 -> Dev (the device owning it)
    version: int = 0
    pending: list = field(default_factory=list)     # (Dev, ARP request frame)
    arp_sent: dict = field(default_factory=dict)    # (bridge, ip) -> time
    drops: dict = field(default_factory=lambda: {r: Counter() for r in DROP_REASONS})

    def bump(self):
        self.version += 1

    def set_devices(self, devs):
        """{name: Dev} of the bridges' internal ports; endpoints follow."""
        self.devs = dict(devs)
        self._endpoints()

    def set_system(self, addrs, routes):
        changed = self.routes.set_system(addrs, routes)
        old = dict(self.endpoints)
        self._endpoints()
        if changed or old != self.endpoints:
            self.bump()
        return changed

    def _endpoints(self):
        self.endpoints = {a.address: self.devs[a.name] for a in self.routes.addrs
                          if a.name in self.devs}

    def snoops(self, ofp):
        return any(d.ofp is ofp for d in self.endpoints.values())

    def drop(self, ctx, reason, text):
        ctx.note(f"-> {text}, dropping", 1)
        ctx.rules_hit.append(self.drops[reason])

    # --- receive ---------------------------------------------------------------
    def receive(self, key):
        """TnlPort for a decapsulated packet's key, or None."""
        dst_port = self.vport_dst.get(layout.get_field(key, "in_port"))
        if dst_port is None:
            return None
        tun_id = layout.get_field(key, "tun_id")
        src, dst = layout.get_field(key, "tun_src"), layout.get_field(key, "tun_dst")
        best, rank = None, None
        for tp in self.ports:
            c = tp.cfg
            if c.dst_port != dst_port:
                continue
            if c.in_key is not None and c.in_key != tun_id:
                continue
            if c.local_ip is not None and c.local_ip != dst:
                continue
            if c.remote_ip is not None and c.remote_ip != src:
                continue
            r = (c.in_key is None, c.local_ip is None, c.remote_ip is None, tp.name)
            if rank is None or r < rank:
                best, rank = tp, r
        return best

    # --- termination -------------------------------------------------------------
    def pop_port(self, ctx):
        """(vport, dst_port) when a packet output to LOCAL is VXLAN for us."""
        if not self.ports:
            return None
        X = _xlate()
        if X._field(ctx, "dl_type") != ETH_IP:
            return None
        if X._field(ctx, "nw_proto") != 17:
            return None
        dev = self.endpoints.get(X._field(ctx, "nw_dst"))
        if dev is None or X._field(ctx, "dl_dst") != dev.mac:
            return None
        dst_port = X._field(ctx, "tp_dst")
        vport = self.vports.get(dst_port)
        if vport is None:
            return None
        X._field(ctx, "nw_frag")
        if X.get(ctx.flow, "nw_frag") & layout.FRAG_ANY:
            return None
        return vport, dst_port

    # --- ARP snooping ------------------------------------------------------------
    def snoop(self, ofp, key, mask, now, learn):
        """Learn from an ARP the bridge sees; un-wildcards what it read."""
        for name in ("dl_type",):
            w, m = layout.field_mask(name)
            mask[w] |= np.uint64(m)
        if layout.get_field(key, "dl_type") != ETH_ARP:
            return
        for name in ("nw_proto", "nw_src", "arp_sha"):
            w, m = layout.field_mask(name)
            mask[w] |= np.uint64(m)
        op = layout.get_field(key, "nw_proto")
        ip, mac = layout.get_field(key, "nw_src"), layout.get_field(key, "arp_sha")
        if op not in (1, 2) or not ip or not mac or mac >> 40 & 1:
            return
        if learn is True and self.neigh.learn(ofp.name, ip, mac, now):
            self.bump()

    def request_arp(self, dev, src, ip, now):
        k = (dev.ofp.name, ip)
        if now - self.arp_sent.get(k, -1e9) < ARP_RETRY:
            return
        self.arp_sent[k] = now
        self.pending.append((dev, arp_request(dev.mac, src, ip)))

    # --- output ------------------------------------------------------------------
    def output(self, ctx, port, tci):
        X = _xlate()
        tp = port.tunnel
        c = tp.cfg
        if c.remote_ip is None:
            remote = X._field(ctx, "tun_dst")
        else:
            remote = c.remote_ip
        vni = X._field(ctx, "tun_id") & 0xFFFFFF if c.out_key is None else c.out_key
        if not remote:
            return self.drop(ctx, "no_remote", f"tunnel port {tp.name} has no remote_ip (tun_dst=0)")
        vport = self.vports.get(c.dst_port)
        if vport is None:
            return self.drop(ctx, "no_vport", f"no datapath port for dst_port {c.dst_port}")
        src = c.local_ip if c.local_ip is not None else 0
        if c.local_flow:
            src = X._field(ctx, "tun_src")
        rt = self.routes.lookup(remote, src)
        if rt is None:
            return self.drop(ctx, "no_route", f"native tunnel routing failed for {ip_text(remote)}")
        dev = self.devs.get(rt.dev)
        if dev is None:
            return self.drop(ctx, "no_output_bridge",
                             f"native tunnel output device {rt.dev} is not a bridge's internal port")
        nh = rt.gw or remote
        mac = self.neigh.lookup(dev.ofp.name, nh, ctx.now)
        if mac is None:
            if ctx.learn is True:
                self.request_arp(dev, rt.src, nh, ctx.now)
            return self.drop(ctx, "neigh_miss", f"neighbor cache miss for {ip_text(nh)} on bridge "
                             f"{dev.ofp.name}, sending ARP request")
        try:
            hdr = TK.vxlan_header(mac, dev.mac, rt.src, remote, vni, c.dst_port, c.tos, c.ttl, c.df)
        except ValueError as e:
            return self.drop(ctx, "no_remote", str(e))
        X.commit_fields(ctx)
        X._commit_vlan(ctx, tci)
        ctx.rules_hit.append(tp.port.tx)
        ctx.note(f"-> output to native tunnel {tp.name}: {ip_text(rt.src)} -> {ip_text(remote)} "
                 f"vni {vni} via {rt.dev} to {mac_text(mac)}", 1)
        nested = self._outer(ctx, dev, mac, rt.src, remote, c)
        if nested is None:
            return None
        ctx.actions.append(("clone", [("tnl_push", vport, hdr, dev.dp_port), *nested]))
        return None

    def _outer(self, ctx, dev, mac, src, remote, c):
        """Translate the encapsulated packet in the output bridge, from the
        internal port dev, and return its actions (None: stop everything)."""
        X = _xlate()
        outer = [0] * F.FLOW_WORDS
        for name, v in (("in_port", dev.ofport), ("dl_dst", mac), ("dl_src", dev.mac),
                        ("dl_type", ETH_IP), ("nw_src", src), ("nw_dst", remote), ("nw_proto", 17),
                        ("nw_tos", c.tos), ("nw_ttl", c.ttl), ("tp_dst", c.dst_port)):
            X.put(outer, name, v)
        saved = (ctx.ofp, ctx.flow, ctx.base, ctx.wc, ctx.actions, ctx.table_id, ctx.rule,
                 ctx.action_set, ctx.mirrored, ctx.in_port, ctx.in_tci, ctx.dp_tci, ctx.groups_seen)
        ctx.ofp, ctx.flow, ctx.base = dev.ofp, outer, list(outer)
        ctx.wc, ctx.actions = [0] * F.FLOW_WORDS, []
        ctx.action_set, ctx.mirrored, ctx.groups_seen = {}, set(), ()
        ctx.in_port, ctx.in_tci, ctx.dp_tci = dev.ofport, 0, 0
        if ctx.trace is not None:
            pad = " " * (4 * (ctx.depth - ctx.shift))
            head = f'bridge("{dev.ofp.name}")'
            ctx.trace += ["", pad + head, pad + "-" * len(head)]
        ctx.depth += 1
        ctx.shift += 1
        X._table(ctx, 0)
        if ctx.action_set and not ctx.error:
            X.XA.run_action_set(ctx)
        ctx.depth -= 1
        ctx.shift -= 1
        nested = ctx.actions
        (ctx.ofp, ctx.flow, ctx.base, ctx.wc, ctx.actions, ctx.table_id, ctx.rule,
         ctx.action_set, ctx.mirrored, ctx.in_port, ctx.in_tci, ctx.dp_tci, ctx.groups_seen) = saved
        if ctx.error and not ctx.error.startswith("over "):
            ctx.error = None
        if ctx.error:
            return None
        # a tnl_pop here is the encapsulated packet terminated by another
        # bridge of this switch (underlay bridges joined by patch ports, as
        # OVS allows): the datapath's clone pops it for a second pass. A
        # second clone or tnl_push cannot nest in the clone.
        if any(a[0] in ("clone", "tnl_push", "recirc") for a in nested):
            ctx.note("-> tunnel in a tunnel is not supported, dropping", 1)
            return None
        return nested

    def drops_show(self):
        return "".join(f"{r}: {c.n_packets}\n" for r, c in self.drops.items())


def translate(tnl, ofp_of_dp, xlate, key, now, learn=True):
    """xlate for one datapath key, through a tunnel port when the key came
    from a vport: (ofproto, XlateResult) or (None, None)."""
    in_port = layout.get_field(key, "in_port")
    tp = None
    if tnl is not None and in_port in tnl.vport_dst:
        tp = tnl.receive(key)
        if tp is None:
            mask = layout.new_key()
            for name in ("in_port", "recirc_id", "tun_id", "tun_src", "tun_dst"):
                w, m = layout.field_mask(name)
                mask[w] |= np.uint64(m)
            return None, mask
        ofp = tp.ofp
        r = xlate(ofp, key, now, learn=learn, in_ofport=tp.ofport)
        for name in ("tun_id", "tun_src", "tun_dst"):
            w, m = layout.field_mask(name)
            r.mask[w] |= np.uint64(m)
        r.rules_hit.append(tp.port.rx)
    else:
        ofp = ofp_of_dp(in_port)
        if ofp is None:
            return None, None
        r = xlate(ofp, key, now, learn=learn)
    if tnl is not None and tnl.snoops(ofp):
        tnl.snoop(ofp, key, r.mask, now, learn)
    # a neighbour miss must not be cached: the next packet asks again (the
    # ARP request is rate limited) until the reply is snooped
    r.no_install = tnl is not None and tnl.drops["neigh_miss"] in r.rules_hit
    return ofp, r


def arp_request(smac, sip, tip):
    """OVS's compose_arp for a tunnel next hop: broadcast who-has tip."""
    s = smac.to_bytes(6, "big")
    body = (bytes.fromhex("0001080006040001") + s + sip.to_bytes(4, "big") + bytes(6)
            + tip.to_bytes(4, "big"))
    frame = b"\xff" * 6 + s + b"\x08\x06" + body
    return frame + bytes(60 - len(frame))


def _xlate():
    from pyvswitch.ofproto import xlate as X
    return X
