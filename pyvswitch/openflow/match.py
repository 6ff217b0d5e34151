"""An OpenFlow match: field name -> (value, mask), plus its flow-key form.

What: the match half of a flow, built from text or code, checked against the
prerequisites of ovs-fields(7) (tp_dst needs tcp/udp/sctp, nw_src needs ip or
arp, ...), formatted in ovs-ofctl's order with the protocol shorthands (ip,
ipv6, arp, rarp, tcp, udp, sctp, icmp, tcp6, udp6, sctp6, icmp6).

`key_mask()` gives the match as (key, mask) tuples of FLOW_WORDS ints, the
form the classifier stores; two matches with the same key/mask select the same
packets even if spelled differently (dl_vlan=5 vs vlan_tci=0x1005/0x1fff).

Invariants: stored values are normalised (value & mask == value, mask != 0);
Match is immutable once built (hashable, comparable); pure data, no I/O.
"""

from pyvswitch.openflow import fields as F
from pyvswitch.openflow.fields import FlowParseError

SHORTHANDS = {
    "ip": (F.ETH_IP, None), "ipv6": (F.ETH_IPV6, None),
    "arp": (F.ETH_ARP, None), "rarp": (F.ETH_RARP, None),
    "tcp": (F.ETH_IP, 6), "udp": (F.ETH_IP, 17), "sctp": (F.ETH_IP, 132),
    "icmp": (F.ETH_IP, 1), "tcp6": (F.ETH_IPV6, 6), "udp6": (F.ETH_IPV6, 17),
    "sctp6": (F.ETH_IPV6, 132), "icmp6": (F.ETH_IPV6, 58),
}
_SHORTHAND_BY_VALUE = {v: k for k, v in SHORTHANDS.items()}
OFP_DEFAULT_PRIORITY = 32768


class Match:
    __slots__ = ("_fields", "_km")

    def __init__(self, items=None):
        self._fields = {}
        self._km = None
        for name, vm in (items or {}).items():
            if isinstance(vm, tuple):
                self._set(name, *vm)
            else:
                self._set(name, vm)

    # -- building ------------------------------------------------------------
    def _set(self, name, value, mask=None):
        field = F.lookup(name)
        if field is None:
            raise FlowParseError(f"unknown field {name}")
        full = field.all_ones
        mask = full if mask is None else mask
        if value < 0 or value >> field.bits or mask < 0 or mask >> field.bits:
            raise FlowParseError(f"{name}: value does not fit in {field.bits} bits")
        if mask == 0:
            self._fields.pop(field.name, None)
            self._km = None
            return
        if mask != full and not field.maskable:
            raise FlowParseError(f"{name}: field does not support masking")
        F.check_field_value(field, value)
        self._fields[field.name] = (value & mask, mask)
        self._km = None

    def with_field(self, name, value, mask=None):
        """A copy of this match with `name` set (mask 0 removes it)."""
        m = Match()
        m._fields = dict(self._fields)
        m._set(name, value, mask)
        return m

    def set_shorthand(self, word):
        dl_type, nw_proto = SHORTHANDS[word]
        self._set("dl_type", dl_type)
        if nw_proto is not None:
            self._set("nw_proto", nw_proto)

    # -- access --------------------------------------------------------------
    def get(self, name):
        return self._fields.get(F.lookup(name).name if F.lookup(name) else name)

    def items(self):
        return self._fields.items()

    def __contains__(self, name):
        return name in self._fields

    def __len__(self):
        return len(self._fields)

    def __eq__(self, other):
        return isinstance(other, Match) and self._fields == other._fields

    def __hash__(self):
        return hash(frozenset(self._fields.items()))

    def __repr__(self):
        return f"Match({format_match(self)!r})"

    # -- checks --------------------------------------------------------------
    def _exact(self, name):
        vm = self._fields.get(name)
        if vm is None or vm[1] != F.FIELDS[name].all_ones:
            return None
        return vm[0]

    def check_prereqs(self):
        """Raise FlowParseError (code OFPBMC_BAD_PREREQ) if a field is used
        without its prerequisite, e.g. tp_dst without tcp, udp or sctp."""
        dl_type, nw_proto = self._exact("dl_type"), self._exact("nw_proto")
        for name in self._fields:
            pre = F.FIELDS[name].prereq
            if pre is None:
                continue
            types, protos, text = F.PREREQS[pre]
            ok = dl_type in types and (protos is None or nw_proto in protos)
            if pre == "nd" and self._exact("icmpv6_type") not in (135, 136):
                ok = False
            if not ok:
                raise FlowParseError(
                    f"{name}: prerequisites not met: {name} requires {text} "
                    f"(e.g. \"{_example(pre)},{name}=...\") "
                    "(OFPBMC_BAD_PREREQ)", code="OFPBMC_BAD_PREREQ")

    # -- flow-key form -------------------------------------------------------
    def key_mask(self):
        """(key, mask) as tuples of F.FLOW_WORDS ints (cached)."""
        if self._km is None:
            key = [0] * F.FLOW_WORDS
            mask = [0] * F.FLOW_WORDS
            for name, (value, m) in self._fields.items():
                for flow_name, v, fm in F.to_flow(F.FIELDS[name], value, m):
                    word, shift, _ = F.FLOW_FIELDS[flow_name]
                    key[word] = (key[word] & ~(fm << shift)) | (v << shift)
                    mask[word] |= fm << shift
            self._km = (tuple(k & m for k, m in zip(key, mask)), tuple(mask))
        return self._km


def _example(prereq):
    return {"l4": "tcp", "ip_any": "ip", "ip_arp": "ip", "tcp": "tcp",
            "nd": "icmp6,icmpv6_type=135"}.get(prereq, prereq)


def format_match(match, priority=None, namer=None):
    """ovs-ofctl text: `priority=N,` (unless default), shorthand, fields in
    ovs-ofctl's order. Empty string for a catch-all at default priority."""
    parts = []
    if priority is not None and priority != OFP_DEFAULT_PRIORITY:
        parts.append(f"priority={priority}")
    skip = set()
    dl_type, nw_proto = match._exact("dl_type"), match._exact("nw_proto")
    word = _SHORTHAND_BY_VALUE.get((dl_type, nw_proto))
    if word is not None:
        skip = {"dl_type", "nw_proto"}
    elif (dl_type, None) in _SHORTHAND_BY_VALUE and dl_type is not None:
        word = _SHORTHAND_BY_VALUE[(dl_type, None)]
        skip = {"dl_type"}
    if word:
        parts.append(word)
    for name in sorted(match._fields, key=F.ORDER.__getitem__):
        if name in skip:
            continue
        value, mask = match._fields[name]
        text = F.format_value(F.FIELDS[name], value, mask, namer)
        parts.append(f"{name}={text}")
    return ",".join(parts)
