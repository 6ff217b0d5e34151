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

Recirculation (OVS's --ct-next): with ct_next (a list of ct_state values,
parse_ct_state) the trace follows every pass a ct(table=N) forks, in the
order the datapath would run them, as OVS does:

    ===============================================================================
    recirc(0x1) - resume conntrack with ct_state=est|trk
    ===============================================================================

    Flow: recirc_id=0x1,ct_state=est|trk,ct_zone=5,tcp,in_port=1,...

Each followed ct() takes the next state of the list; once the list is used
up, OVS's default trk|new. The resumed packet is the one the tracker saw:
the first pass's key with the datapath header rewrites that came before the
fork applied. Without ct_next only the first pass is traced.
"""

import re

from pyvswitch.datapath import actions as DA
from pyvswitch.datapath import layout
from pyvswitch.openflow import fields as F
from pyvswitch.openflow.match import Match, format_match
from pyvswitch.ofproto import recirc as RC
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


def trace(ofp, key, now, learn=True, in_ofport=None, ct_next=None):
    """The `ofproto/trace` text for the packet with datapath key `key`
    (arriving on ofport in_ofport instead of the key's dp_port: a patch port).
    ct_next: follow recirculations, resuming with these ct_states (see above)."""
    text, res = _one_pass(ofp, key, now, learn, in_ofport)
    if ct_next is None:
        return text
    states = list(ct_next)
    queue = [(fork, 1) for fork in forks(to_words(key), res.actions)]
    parts = [text]
    while queue:
        (rid, zone, words), depth = queue.pop(0)
        if depth > layout.MAX_RECIRC_DEPTH:
            parts.append(_banner([f"recirc({rid:#x}) - the datapath drops it: deeper than "
                                  f"{layout.MAX_RECIRC_DEPTH} recirculations. Stopping the trace here."]))
            break
        frozen = RC.thaw(rid)
        put(words, "recirc_id", rid)
        head = f"recirc({rid:#x})"
        if zone is not None:
            head += " - " + _resume_text(words, zone, states)
        parts.append(_banner([head]))
        if frozen is None:
            parts.append(f"unknown recirc_id {rid:#x}: the datapath drops the packet\n")
            continue
        text, res = _one_pass(frozen.ofp, words, now, learn, frozen.in_port)
        parts.append(text)
        queue += [(fork, depth + 1) for fork in forks(words, res.actions)]
    return "".join(parts)


def _resume_text(words, zone, states):
    """Set the resumed packet's ct fields; OVS's header text for them."""
    default = not states
    state = DEFAULT_CT_NEXT if default else states.pop(0)
    put(words, "ct_state", state)
    put(words, "ct_zone", zone)
    if default:
        return "resume conntrack with default ct_state=trk|new (use --ct-next to customize)"
    return f"resume conntrack with ct_state={format_ct_state(state)}"


def _banner(lines):
    rule = "=" * 79
    return "\n" + "\n".join([rule, *lines, rule]) + "\n\n"


def _one_pass(ofp, key, now, learn, in_ofport):
    """One datapath pass: (its trace text, the XlateResult)."""
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
    lines = [f"Flow: {_recirc_prefix(words)}{format_flow_words(_with_tci(shown, key))}", "",
             f'bridge("{ofp.name}")', "-" * len(f'bridge("{ofp.name}")'), *res.trace, "",
             f"Final flow: {final}",
             f"Megaflow: {format_megaflow(shown, [int(w) for w in res.mask])}",
             f"Datapath actions: {format_dp_actions(res.actions)}"]
    if res.error:
        lines.append(f"Translation failed ({res.error}), packet is dropped.")
    return "\n".join(lines) + "\n", res


def _recirc_prefix(words):
    """A recirculated packet's metadata, first in its Flow line (as OVS's flow_format)."""
    rid = get(words, "recirc_id")
    if not rid:
        return ""
    text = f"recirc_id={rid:#x},ct_state={format_ct_state(get(words, 'ct_state'))}," \
           f"ct_zone={get(words, 'ct_zone')},"
    mark = get(words, "ct_mark")
    return text + (f"ct_mark={mark:#x}," if mark else "")


def _with_tci(shown, key):
    words = list(shown)
    tci = get(to_words(key), "vlan_tci")
    put(words, "vlan_tci", tci if tci & layout.VLAN_CFI else 0)
    return words


# --- following recirculation -------------------------------------------------------
# datapath set fields -> the key fields they rewrite (the inverse of xlate_commit's)
_SET_TO_KEY = {"eth_src": "dl_src", "eth_dst": "dl_dst", "ipv4_src": "nw_src",
               "ipv4_dst": "nw_dst", "ipv4_tos": "nw_tos", "ipv4_ttl": "nw_ttl",
               "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst", "ipv6_tclass": "nw_tos",
               "ipv6_label": "ipv6_label", "ipv6_hlimit": "nw_ttl"}
for _l4 in ("tcp", "udp", "sctp"):
    _SET_TO_KEY.update({_l4 + "_src": "tp_src", _l4 + "_dst": "tp_dst"})


def forks(words, actions):
    """[(recirc id, ct zone or None, key words of the packet that recirculates)]
    in the order the datapath runs `actions` on the packet with key `words`."""
    key = list(words)
    out, zone = [], None
    for act in actions:
        name = act[0]
        if name == "clone":
            out += forks(key, act[1])       # a copy: its changes stay inside
        elif name == "ct":
            zone = act[1]
        elif name == "recirc":
            out.append((act[1], zone, list(key)))
        else:
            _rewrite(key, act)
    return out


def _rewrite(key, act):
    """What a datapath action does to the key of the packet that carries on."""
    name = act[0]
    if name == "push_vlan":
        put(key, "vlan_tci", act[1] | layout.VLAN_CFI)
    elif name == "pop_vlan":
        put(key, "vlan_tci", 0)
    elif name == "set_vlan" and get(key, "vlan_tci") & layout.VLAN_CFI:
        put(key, "vlan_tci", act[1] | layout.VLAN_CFI)
    elif name in ("set_eth_src", "set_eth_dst"):
        put(key, "dl_" + name[-3:], act[1])
    elif name == "set":
        _set(key, _SET_TO_KEY[act[1]], act[2], act[3])
    elif name == "ct_clear":
        for f in ("ct_state", "ct_zone", "ct_mark", "ct_label_hi", "ct_label_lo"):
            put(key, f, 0)


def _set(key, name, value, mask):
    if name + "_hi" in F.FLOW_FIELDS:               # 128-bit: two words
        low = (1 << 64) - 1
        _set(key, name + "_hi", value >> 64, mask >> 64)
        _set(key, name + "_lo", value & low, mask & low)
        return
    put(key, name, (get(key, name) & ~mask) | (value & mask))


# --- --ct-next's argument ------------------------------------------------------------
CT_STATE_BITS = {name: 1 << i for i, name in enumerate(F.CT_STATE_FLAGS)}
DEFAULT_CT_NEXT = CT_STATE_BITS["trk"] | CT_STATE_BITS["new"]


def format_ct_state(state):
    """OVS's flag text: est|trk (lowest bit first)."""
    return "|".join(n for n, bit in CT_STATE_BITS.items() if state & bit) or "0"


def parse_ct_state(text):
    """A state for --ct-next, in OVS's forms: `trk,est`, `trk|est` or
    `+trk+est`. Raises ValueError with what is wrong (OVS's checks)."""
    words = [w for w in re.split(r"[,|+\s]+", text.strip()) if w]
    if not words or "-" in text:
        raise ValueError(f"{text}: a ct_state is flags to set, e.g. trk,est or +trk+est")
    state = 0
    for w in words:
        if w not in CT_STATE_BITS:
            raise ValueError(f"{w}: unknown connection tracking state flag "
                             f"(one of {', '.join(CT_STATE_BITS)})")
        state |= CT_STATE_BITS[w]
    why = _impossible(state)
    if why:
        raise ValueError(f"{format_ct_state(state)}: invalid connection state: {why}")
    return state


def _impossible(state):
    """Why the tracker never hands out this state (None if it may)."""
    b = CT_STATE_BITS
    if not state & b["trk"]:
        return 'if "trk" is unset, no other flags are set'
    if state & b["inv"] and state & ~(b["trk"] | b["inv"]):
        return 'when "inv" is set, only "trk" may also be set'
    if state & b["new"] and state & b["est"]:
        return '"new" and "est" are mutually exclusive'
    if state & b["new"] and state & b["rpl"]:
        return '"new" and "rpl" are mutually exclusive'
    return None
