"""Megaflow text in the `ovs-appctl dpctl/dump-flows` layout.

    recirc_id(0),in_port(2),eth(src=..,dst=..),eth_type(0x0800),
    ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,ttl=64,frag=no),tcp(src=1,dst=2),
    packets:3, bytes:294, used:0.512s, actions:3

A field appears when its mask has a bit set (recirc_id and in_port always);
a partial mask prints value/mask. Pure functions, any thread.
"""

import ipaddress

from pyvswitch.datapath import layout as L
from pyvswitch.datapath.actions import format_actions


def _mac(v):
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def _ip4(v):
    return str(ipaddress.IPv4Address(v))


def _ip6(hi, lo):
    return str(ipaddress.IPv6Address((hi << 64) | lo))


CT_STATE_NAMES = ("new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat")


def _fmt(v, m, full, show):
    return show(v) if m == full else f"{show(v)}/{show(m)}"


def format_match(key, mask):
    k, m = L.unpack_key(key), L.unpack_key(mask)
    rid = k["recirc_id"]
    out = [f"recirc_id({rid:#x})" if rid else "recirc_id(0)", f"in_port({k['in_port']})"]   # C's %#x
    if m["pkt_mark"]:
        out.append(f"skb_mark({_fmt(k['pkt_mark'], m['pkt_mark'], 0xFFFFFFFF, hex)})")
    if m["ct_state"]:
        out.append("ct_state(" + "".join(("+" if k["ct_state"] >> i & 1 else "-") + n
                                         for i, n in enumerate(CT_STATE_NAMES) if m["ct_state"] >> i & 1) + ")")
    for name, bits in (("ct_zone", 16), ("ct_mark", 32)):
        if m[name]:
            out.append(f"{name}({_fmt(k[name], m[name], (1 << bits) - 1, hex)})")
    label = (k["ct_label_hi"] << 64) | k["ct_label_lo"]
    lmask = (m["ct_label_hi"] << 64) | m["ct_label_lo"]
    if lmask:
        out.append(f"ct_label({_fmt(label, lmask, (1 << 128) - 1, hex)})")
    tun = [(f, lab, show) for f, lab, show in (("tun_id", "tun_id", hex), ("tun_src", "src", _ip4),
                                                ("tun_dst", "dst", _ip4)) if m[f]]
    if tun:
        full = {"tun_id": (1 << 64) - 1, "tun_src": 0xFFFFFFFF, "tun_dst": 0xFFFFFFFF}
        out.append("tunnel(" + ",".join(f"{lab}={_fmt(k[f], m[f], full[f], show)}" for f, lab, show in tun) + ")")

    def group(name, fields):
        items = []
        for label, fld, show in fields:
            if m[fld]:
                full = (1 << L.FIELDS[fld][2]) - 1
                items.append(f"{label}={_fmt(k[fld], m[fld], full, show)}")
        if items:
            out.append(f"{name}({','.join(items)})")

    group("eth", [("src", "dl_src", _mac), ("dst", "dl_dst", _mac)])
    if m["vlan_tci"]:
        tci, tm = k["vlan_tci"], m["vlan_tci"]
        if tci & L.VLAN_CFI:
            out.append(f"vlan(vid={tci & 0xFFF},pcp={tci >> 13})" if tm == 0xFFFF
                       else f"vlan(vid={tci & 0xFFF}/{tm & 0xFFF:#x},pcp={tci >> 13})")
        else:
            out.append("vlan(none)")
    if m["dl_type"]:
        out.append(f"eth_type(0x{k['dl_type']:04x})")
    frag = {0: "no", 1: "first", 3: "later"}.get(k["nw_frag"], str(k["nw_frag"]))
    common = [("proto", "nw_proto", str), ("tos", "nw_tos", str), ("ttl", "nw_ttl", str),
              ("frag", "nw_frag", lambda v: frag if v == k["nw_frag"] else str(v))]
    if k["dl_type"] == 0x0800:
        group("ipv4", [("src", "nw_src", _ip4), ("dst", "nw_dst", _ip4)] + common)
    elif k["dl_type"] == 0x86DD:
        items = []
        if m["ipv6_src_hi"] or m["ipv6_src_lo"]:
            items.append("src=" + _ip6(k["ipv6_src_hi"], k["ipv6_src_lo"]))
        if m["ipv6_dst_hi"] or m["ipv6_dst_lo"]:
            items.append("dst=" + _ip6(k["ipv6_dst_hi"], k["ipv6_dst_lo"]))
        if m["ipv6_label"]:
            items.append(f"label={k['ipv6_label']:#x}")
        for label, fld, show in common:
            if m[fld]:
                items.append(f"{label}={show(k[fld])}")
        if items:
            out.append(f"ipv6({','.join(items)})")
    elif k["dl_type"] == 0x0806:
        group("arp", [("sip", "nw_src", _ip4), ("tip", "nw_dst", _ip4), ("op", "nw_proto", str),
                      ("sha", "arp_sha", _mac), ("tha", "arp_tha", _mac)])
    proto = k["nw_proto"] if k["dl_type"] in (0x0800, 0x86DD) else -1
    l4 = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmpv6"}.get(proto)
    if l4 in ("icmp", "icmpv6"):
        group(l4, [("type", "tp_src", str), ("code", "tp_dst", str)])
        if m["nd_target_hi"] or m["nd_target_lo"]:
            out.append("nd(target=" + _ip6(k["nd_target_hi"], k["nd_target_lo"]) + ")")
    elif l4:
        group(l4, [("src", "tp_src", str), ("dst", "tp_dst", str)])
        if l4 == "tcp" and m["tcp_flags"]:
            out.append(f"tcp_flags({k['tcp_flags']:#x}/{m['tcp_flags']:#x})")
    return ",".join(out)


def format_flow(key, mask, actions, packets, nbytes, used_ns, now_ns, tcp_flags=0):
    used = "never" if not used_ns or not packets else f"{max(0, now_ns - used_ns) / 1e9:.3f}s"
    flags = f", flags:{tcp_flags:#x}" if tcp_flags else ""
    return (f"{format_match(key, mask)}, packets:{packets}, bytes:{nbytes}, used:{used}{flags}, "
            f"actions:{format_actions(actions)}")
