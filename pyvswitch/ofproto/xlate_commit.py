"""Committing header changes: the flow xlate has made -> datapath set actions.

What: OpenFlow actions change `ctx.flow`; the datapath packet only changes
when something is about to leave (output, controller, a group bucket), and
then only by the difference: `commit(ctx)` compares ctx.flow with
ctx.base (what the packet holds now) and emits one masked ('set', field,
value, mask) per differing header field (`commit_fields`; xlate's
_commit_vlan then adds the VLAN change) and makes base equal to the flow.

Masks follow Open vSwitch's commit: the set carries the examined bits of
the field (set_field un-wildcards what it writes, so a set of the whole
field is a whole-field set, set_field:10.0.0.0/8 a /8 set), and the bits a
commit writes are un-wildcarded too: whether a set is needed depends on the
packet's value of them (a set_field of the value the packet already has
emits nothing, but must still match on it).

Header sets need their header: a packet whose dl_type (and nw_proto, for
ports) is not the one the set is for cannot get the set. Those fields are
examined here, so every packet of the megaflow agrees.
Single-threaded, like xlate.
"""

from pyvswitch.openflow import fields as F

_ETH = (("dl_src", "eth_src"), ("dl_dst", "eth_dst"))
_V4 = (("nw_src", "ipv4_src"), ("nw_dst", "ipv4_dst"), ("nw_tos", "ipv4_tos"),
       ("nw_ttl", "ipv4_ttl"))
_V6 = (("ipv6_src", "ipv6_src"), ("ipv6_dst", "ipv6_dst"), ("nw_tos", "ipv6_tclass"),
       ("ipv6_label", "ipv6_label"), ("nw_ttl", "ipv6_hlimit"))
_L4 = {6: "tcp", 17: "udp", 132: "sctp"}


def _read(words, name):
    """A flow field (128-bit ones from their _hi/_lo words)."""
    if name + "_hi" in F.FLOW_FIELDS:
        return _get(words, name + "_hi") << 64 | _get(words, name + "_lo")
    return _get(words, name)


def _get(words, name):
    word, shift, bits = F.FLOW_FIELDS[name]
    return (words[word] >> shift) & ((1 << bits) - 1)


def _write(words, name, value, mask):
    if name + "_hi" in F.FLOW_FIELDS:
        lo = (1 << 64) - 1
        _write(words, name + "_hi", value >> 64, mask >> 64)
        _write(words, name + "_lo", value & lo, mask & lo)
        return
    word, shift, _ = F.FLOW_FIELDS[name]
    words[word] = (words[word] & ~(mask << shift)) | ((value & mask) << shift)


def _examine(ctx, name, mask):
    if name + "_hi" in F.FLOW_FIELDS:
        lo = (1 << 64) - 1
        _examine(ctx, name + "_hi", mask >> 64)
        _examine(ctx, name + "_lo", mask & lo)
        return
    word, shift, _ = F.FLOW_FIELDS[name]
    ctx.wc[word] |= mask << shift


def header_fields(ctx):
    """(flow field, datapath set field) pairs this packet's headers allow."""
    pairs = list(_ETH)
    dl_type = _get(ctx.flow, "dl_type")
    if dl_type == F.ETH_IP:
        pairs += _V4
    elif dl_type == F.ETH_IPV6:
        pairs += _V6
    if dl_type in (F.ETH_IP, F.ETH_IPV6):
        proto = _L4.get(_get(ctx.flow, "nw_proto"))
        if proto and not _get(ctx.flow, "nw_frag") & 2:
            pairs += [("tp_src", proto + "_src"), ("tp_dst", proto + "_dst")]
    return pairs


def commit_fields(ctx):
    """Emit the set actions that make the packet's headers (VLAN aside:
    xlate's _commit_vlan) match ctx.flow."""
    pending = [n for n, _ in _ETH + _V4 + _V6 + (("tp_src", 0), ("tp_dst", 0))
               if _read(ctx.flow, n) != _read(ctx.base, n)]
    if pending:
        _examine(ctx, "dl_type", 0xFFFF)
        allowed = dict(header_fields(ctx))
        if any(n in ("tp_src", "tp_dst") for n in pending):
            _examine(ctx, "nw_proto", 0xFF)
            _examine(ctx, "nw_frag", 2)
        order = [n for n, _ in header_fields(ctx)]
        for name in sorted(set(pending), key=lambda n: order.index(n) if n in order else -1):
            flow, base = _read(ctx.flow, name), _read(ctx.base, name)
            dp_field = allowed.get(name)
            if dp_field is None:
                ctx.note(f"-> cannot set {name} on this packet, ignored", 1)
                _write(ctx.flow, name, base, (1 << _bits(name)) - 1)
                continue
            mask = _examined(ctx, name) | (flow ^ base)
            _examine(ctx, name, mask)
            ctx.actions.append(("set", dp_field, flow & mask, mask))
            _write(ctx.base, name, flow, mask)


def _bits(name):
    return 128 if name + "_hi" in F.FLOW_FIELDS else F.FLOW_FIELDS[name][2]


def _examined(ctx, name):
    return _read(ctx.wc, name)
