"""`ovs-appctl ofproto/trace` text for one packet, in Open vSwitch's layout.

What: runs xlate with tracing on and prints

    Flow: <the packet's fields in ovs-ofctl syntax>

    bridge("br0")
    -------------
     0. priority 0
        NORMAL
         -> learned that 0a:00:00:00:00:01 is on port p1 in VLAN 10
         -> no learned MAC for destination, flooding

    Final flow: unchanged
    Megaflow: recirc_id=0,in_port=1,vlan_tci=0x0000/0x1fff,dl_src=...,dl_dst=...
    Datapath actions: 12,push_vlan(vid=10,pcp=0),13

Ports print as OpenFlow port numbers (in_port is shown as the ofport, as OVS
does). Like xlate, NORMAL learns unless learn=False. Pure formatting over
xlate; same threading rules as xlate.
"""


from pyvswitch.datapath import actions as DA
from pyvswitch.datapath import layout
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.match import Match, format_match
from pyvswitch.ofproto.xlate import get, put, to_words, xlate

_L4 = {6: ("tp_src", "tp_dst", "tcp_flags"), 17: ("tp_src", "tp_dst"),
       132: ("tp_src", "tp_dst")}
_IP = ("nw_proto", "nw_ttl", "nw_frag")


def _flow_fields(words):
    """The OpenFlow fields that describe this packet, as OVS prints a flow."""
    dl_type = get(words, "dl_type")
    names = ["in_port", "vlan_tci", "dl_src", "dl_dst", "dl_type"]
    if dl_type == F.ETH_IP:
        names += ["nw_src", "nw_dst", *_IP]
    elif dl_type == F.ETH_IPV6:
        names += ["ipv6_src", "ipv6_dst", "ipv6_label", *_IP]
    elif dl_type in (F.ETH_ARP, F.ETH_RARP):
        names += ["arp_spa", "arp_tpa", "arp_op", "arp_sha", "arp_tha"]
    if dl_type in (F.ETH_IP, F.ETH_IPV6):
        proto = get(words, "nw_proto")
        if proto in (1, 58):
            names += (["icmp_type", "icmp_code"] if proto == 1
                      else ["icmpv6_type", "icmpv6_code"])
        names += list(_L4.get(proto, ()))
    return names


def _value(words, field):
    if field.kind == "ipv6":
        return get(words, field.name + "_hi") << 64 | get(words, field.name + "_lo")
    if field.name == "nw_frag":
        return get(words, "nw_frag") & 3
    return get(words, field.flow) >> field.shift & field.all_ones


def format_flow_words(words):
    m = Match()
    for name in _flow_fields(words):
        field = F.FIELDS[name]
        value = _value(words, field)
        if name == "nw_frag":      # print as no / first / later
            m._set(name, *{0: (0, 1), 1: (1, 3)}.get(value, (3, 3)))
        else:
            m._set(name, value)
    return format_match(m)


_FIRST = ("in_port", "vlan_tci", "dl_src", "dl_dst", "dl_type")


def format_megaflow(words, mask):
    """The examined fields of `words` under `mask`, in layout terms."""
    parts = []
    rid = get(words, "recirc_id") & get(mask, "recirc_id")
    if get(mask, "recirc_id"):                      # first, in C's %#x, as OVS prints it
        parts.append(f"recirc_id={rid:#x}" if rid else "recirc_id=0")
    rest = [n for n in layout.FIELDS if n not in _FIRST and n != "recirc_id"]
    for name in (*_FIRST, *rest):
        if name.endswith("_lo"):
            continue
        base = name[:-3] if name.endswith("_hi") else name
        m = get(mask, name)
        field = F.FIELDS.get(base)
        if name.endswith("_hi"):
            m = m << 64 | get(mask, base + "_lo")
        if not m:
            continue
        if field is None or field.flow not in (base, None):
            parts.append(f"{base}={get(words, name) & m:#x}/{m:#x}")
            continue
        v = (get(words, name) << 64 | get(words, base + "_lo")) if \
            name.endswith("_hi") else get(words, name)
        if name in ("in_port", "vlan_tci", "dl_type") and m != field.all_ones:
            parts.append(f"{base}=0x{v & m:04x}/0x{m:04x}")
        else:
            parts.append(f"{base}=" + F.format_value(field, v & m, m))
    return ",".join(parts)


def format_dp_actions(actions):
    """The dpctl text of datapath actions (datapath/actions.py's)."""
    return DA.format_actions(actions)


def trace(ofp, key, now, learn=True, in_ofport=None):
    """The `ofproto/trace` text for the packet with datapath key `key`
    (arriving on ofport in_ofport instead of the key's dp_port: a patch port)."""
    words = to_words(key)
    port = (ofp.port_by_dp(get(words, "in_port")) if in_ofport is None
            else ofp.ports.get(in_ofport))
    shown = list(words)
    if port is not None:
        put(shown, "in_port", port.ofport)
    if not get(shown, "vlan_tci") & layout.VLAN_CFI:
        put(shown, "vlan_tci", 0)
    res = xlate(ofp, key, now, learn=learn, trace=True, in_ofport=in_ofport)
    final = "unchanged"
    after = list(res.final_flow[:layout.KEY_WORDS]) + list(shown[layout.KEY_WORDS:])
    put(after, "in_port", get(shown, "in_port"))
    if after[:layout.KEY_WORDS] != list(shown[:layout.KEY_WORDS]):
        final = format_flow_words(after)
    lines = [f"Flow: {format_flow_words(_with_tci(shown, key))}", "",
             f'bridge("{ofp.name}")', "-" * len(f'bridge("{ofp.name}")'), *res.trace, "",
             f"Final flow: {final}",
             f"Megaflow: {format_megaflow(shown, [int(w) for w in res.mask])}",
             f"Datapath actions: {format_dp_actions(res.actions)}"]
    if res.error:
        lines.append(f"Translation failed ({res.error}), packet is dropped.")
    return "\n".join(lines) + "\n"


def _with_tci(shown, key):
    words = list(shown)
    tci = get(to_words(key), "vlan_tci")
    put(words, "vlan_tci", tci if tci & layout.VLAN_CFI else 0)
    return words
