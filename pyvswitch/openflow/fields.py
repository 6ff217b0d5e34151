"""OpenFlow match fields as data: one row per field.

What: the table every OpenFlow layer agrees on. Each Field says its width,
whether it can be masked, its prerequisite (a key of PREREQS), its OXM/NXM ids
(class, field) for the wire codecs to come, where it lives in the flow key, and
how its text is parsed and formatted (ovs-fields(7) syntax: MACs, IPv4 with a
CIDR prefix or a dotted mask, IPv6, integers in decimal or hex with /mask).

The flow key the classifier sees (FLOW_FIELDS, FLOW_WORDS words) is the
datapath key of pyvswitch.datapath.layout plus OpenFlow-only words (metadata,
registers) that never reach the datapath. in_port there holds the ofport;
xlate maps it to and from the dp_port.

Invariants: a field's (value, mask) is normalised (value & ~mask == 0, mask
never 0); `to_flow` returns (flow_field, value, mask) triples that never spill
out of the flow field. Constants only: any thread may import this module.
"""

import ipaddress
import re
from dataclasses import dataclass

from pyvswitch.datapath import layout


class FlowParseError(ValueError):
    """Any error in ovs-ofctl flow text (or a match that breaks a rule)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code  # an OpenFlow error name such as OFPBMC_BAD_PREREQ


# --- the flow key seen by the classifier ------------------------------------
# Words past layout.KEY_WORDS are pipeline state (metadata, registers,
# conj_id): xlate never puts them in a megaflow mask.
FLOW_FIELDS = dict(layout.FIELDS)
_K = layout.KEY_WORDS
FLOW_FIELDS["metadata"] = (_K, 0, 64)
N_REGS = 16
for _r in range(N_REGS):
    FLOW_FIELDS[f"reg{_r}"] = (_K + 1 + _r // 2, 32 * (_r % 2), 32)
FLOW_FIELDS["conj_id"] = (_K + 9, 0, 32)
FLOW_WORDS = _K + 10
PIPELINE_FIELDS = ("metadata", *[f"reg{r}" for r in range(N_REGS)])

# --- reserved ports (OpenFlow 1.0 numbering, as OVS uses internally) ---------
OFPP_MAX = 0xFF00
OFPP_IN_PORT = 0xFFF8
OFPP_TABLE = 0xFFF9
OFPP_NORMAL = 0xFFFA
OFPP_FLOOD = 0xFFFB
OFPP_ALL = 0xFFFC
OFPP_CONTROLLER = 0xFFFD
OFPP_LOCAL = 0xFFFE
OFPP_NONE = 0xFFFF
RESERVED_PORTS = {
    "IN_PORT": OFPP_IN_PORT, "TABLE": OFPP_TABLE, "NORMAL": OFPP_NORMAL,
    "FLOOD": OFPP_FLOOD, "ALL": OFPP_ALL, "CONTROLLER": OFPP_CONTROLLER,
    "LOCAL": OFPP_LOCAL, "NONE": OFPP_NONE, "ANY": OFPP_NONE,
}
RESERVED_NAMES = {v: k for k, v in RESERVED_PORTS.items() if k != "ANY"}

ETH_IP, ETH_IPV6, ETH_ARP, ETH_RARP = 0x0800, 0x86DD, 0x0806, 0x8035

# Prerequisites: name -> (allowed dl_types, allowed nw_protos or None, text).
PREREQS = {
    "ip": ({ETH_IP}, None, "ip"),
    "ipv6": ({ETH_IPV6}, None, "ipv6"),
    "ip_any": ({ETH_IP, ETH_IPV6}, None, "ip or ipv6"),
    "ip_arp": ({ETH_IP, ETH_ARP, ETH_RARP}, None, "ip or arp"),
    "arp": ({ETH_ARP, ETH_RARP}, None, "arp or rarp"),
    "l4": ({ETH_IP, ETH_IPV6}, {6, 17, 132}, "tcp, udp or sctp"),
    "tcp": ({ETH_IP, ETH_IPV6}, {6}, "tcp or tcp6"),
    "icmp": ({ETH_IP}, {1}, "icmp"),
    "icmp6": ({ETH_IPV6}, {58}, "icmp6"),
    "nd": ({ETH_IPV6}, {58}, "icmp6,icmpv6_type=135 or 136"),
}

CT_STATE_FLAGS = ("new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat")

OXM_BASIC, NXM_OF, NXM_NX = 0x8000, 0x0000, 0x0001


@dataclass(frozen=True)
class Field:
    name: str
    bits: int
    kind: str            # int | hex | mac | ipv4 | ipv6 | port | frag | ct_state
    maskable: bool
    prereq: str | None
    flow: str | None     # flow-key field it maps onto (None: special in to_flow)
    shift: int = 0       # left shift into the flow field
    oxm: tuple | None = None
    nxm: tuple | None = None
    aliases: tuple = ()

    @property
    def all_ones(self):
        return (1 << self.bits) - 1


def _f(*args, **kw):
    return Field(*args, **kw)


# Listed in the order ovs-ofctl prints them (after priority and the shorthand).
FIELD_LIST = [
    _f("recirc_id", 32, "hex", False, None, "recirc_id", nxm=(NXM_NX, 36)),
    _f("dp_hash", 32, "hex", True, None, "dp_hash", nxm=(NXM_NX, 35)),
    _f("pkt_mark", 32, "hex", True, None, "pkt_mark", nxm=(NXM_NX, 33)),
    _f("conj_id", 32, "int", False, None, "conj_id", nxm=(NXM_NX, 37)),
    _f("ct_state", 8, "ct_state", True, None, "ct_state", nxm=(NXM_NX, 105)),
    _f("ct_zone", 16, "int", False, None, "ct_zone", nxm=(NXM_NX, 106)),
    _f("ct_mark", 32, "hex", True, None, "ct_mark", nxm=(NXM_NX, 107)),
    _f("ct_label", 128, "hex", True, None, None, nxm=(NXM_NX, 108)),
    _f("tun_id", 64, "hex", True, None, "tun_id", oxm=(OXM_BASIC, 38),
       nxm=(NXM_NX, 16), aliases=("tunnel_id",)),
    _f("tun_src", 32, "ipv4", True, None, "tun_src", nxm=(NXM_NX, 31)),
    _f("tun_dst", 32, "ipv4", True, None, "tun_dst", nxm=(NXM_NX, 32)),
    _f("metadata", 64, "hex", True, None, "metadata", oxm=(OXM_BASIC, 2)),
    *[_f(f"reg{r}", 32, "hex", True, None, f"reg{r}", nxm=(NXM_NX, r))
      for r in range(N_REGS)],
    _f("in_port", 16, "port", False, None, "in_port", oxm=(OXM_BASIC, 0),
       nxm=(NXM_OF, 0)),
    _f("dl_vlan", 16, "int", False, None, None),
    _f("dl_vlan_pcp", 3, "int", False, None, None),
    _f("vlan_tci", 16, "hex", True, None, "vlan_tci", nxm=(NXM_OF, 4)),
    _f("vlan_vid", 13, "hex", True, None, None, oxm=(OXM_BASIC, 6)),
    _f("vlan_pcp", 3, "int", False, None, None, oxm=(OXM_BASIC, 7)),
    _f("dl_src", 48, "mac", True, None, "dl_src", oxm=(OXM_BASIC, 4),
       nxm=(NXM_OF, 2), aliases=("eth_src",)),
    _f("dl_dst", 48, "mac", True, None, "dl_dst", oxm=(OXM_BASIC, 3),
       nxm=(NXM_OF, 1), aliases=("eth_dst",)),
    _f("dl_type", 16, "hex", False, None, "dl_type", oxm=(OXM_BASIC, 5),
       nxm=(NXM_OF, 3), aliases=("eth_type",)),
    _f("ipv6_src", 128, "ipv6", True, "ipv6", None, oxm=(OXM_BASIC, 26),
       nxm=(NXM_NX, 19)),
    _f("ipv6_dst", 128, "ipv6", True, "ipv6", None, oxm=(OXM_BASIC, 27),
       nxm=(NXM_NX, 20)),
    _f("ipv6_label", 20, "hex", True, "ipv6", "ipv6_label",
       oxm=(OXM_BASIC, 28), nxm=(NXM_NX, 27)),
    _f("nw_src", 32, "ipv4", True, "ip_arp", "nw_src", oxm=(OXM_BASIC, 11),
       nxm=(NXM_OF, 7), aliases=("ip_src",)),
    _f("nw_dst", 32, "ipv4", True, "ip_arp", "nw_dst", oxm=(OXM_BASIC, 12),
       nxm=(NXM_OF, 8), aliases=("ip_dst",)),
    _f("arp_spa", 32, "ipv4", True, "arp", "nw_src", oxm=(OXM_BASIC, 22),
       nxm=(NXM_OF, 16)),
    _f("arp_tpa", 32, "ipv4", True, "arp", "nw_dst", oxm=(OXM_BASIC, 23),
       nxm=(NXM_OF, 17)),
    _f("nw_proto", 8, "int", False, "ip_any", "nw_proto", oxm=(OXM_BASIC, 10),
       nxm=(NXM_OF, 6), aliases=("ip_proto",)),
    _f("arp_op", 8, "int", False, "arp", "nw_proto", oxm=(OXM_BASIC, 21),
       nxm=(NXM_OF, 15)),
    _f("arp_sha", 48, "mac", True, "arp", "arp_sha", oxm=(OXM_BASIC, 24),
       nxm=(NXM_NX, 17)),
    _f("arp_tha", 48, "mac", True, "arp", "arp_tha", oxm=(OXM_BASIC, 25),
       nxm=(NXM_NX, 18)),
    _f("nw_tos", 8, "int", False, "ip_any", "nw_tos", nxm=(NXM_OF, 5)),
    _f("ip_dscp", 6, "int", False, "ip_any", "nw_tos", shift=2,
       oxm=(OXM_BASIC, 8)),
    _f("nw_ecn", 2, "int", False, "ip_any", "nw_tos", oxm=(OXM_BASIC, 9),
       nxm=(NXM_NX, 28), aliases=("ip_ecn",)),
    _f("nw_ttl", 8, "int", False, "ip_any", "nw_ttl", nxm=(NXM_NX, 29)),
    _f("nw_frag", 2, "frag", True, "ip_any", "nw_frag", nxm=(NXM_NX, 26),
       aliases=("ip_frag",)),
    _f("icmp_type", 8, "int", False, "icmp", "tp_src", oxm=(OXM_BASIC, 19),
       nxm=(NXM_OF, 13), aliases=("icmpv4_type",)),
    _f("icmp_code", 8, "int", False, "icmp", "tp_dst", oxm=(OXM_BASIC, 20),
       nxm=(NXM_OF, 14), aliases=("icmpv4_code",)),
    _f("icmpv6_type", 8, "int", False, "icmp6", "tp_src", oxm=(OXM_BASIC, 29),
       nxm=(NXM_NX, 21)),
    _f("icmpv6_code", 8, "int", False, "icmp6", "tp_dst", oxm=(OXM_BASIC, 30),
       nxm=(NXM_NX, 22)),
    _f("tp_src", 16, "int", True, "l4", "tp_src", nxm=(NXM_OF, 9),
       aliases=("tcp_src", "udp_src", "sctp_src")),
    _f("tp_dst", 16, "int", True, "l4", "tp_dst", nxm=(NXM_OF, 10),
       aliases=("tcp_dst", "udp_dst", "sctp_dst")),
    _f("tcp_flags", 12, "hex", True, "tcp", "tcp_flags", nxm=(NXM_NX, 34)),
    _f("nd_target", 128, "ipv6", True, "nd", None, oxm=(OXM_BASIC, 31),
       nxm=(NXM_NX, 23)),
]

FIELDS = {f.name: f for f in FIELD_LIST}
ORDER = {f.name: i for i, f in enumerate(FIELD_LIST)}
_BY_NAME = dict(FIELDS)
for _fld in FIELD_LIST:
    for _a in _fld.aliases:
        _BY_NAME[_a] = _fld


def lookup(name):
    """The Field called `name` (or one of its aliases), or None."""
    return _BY_NAME.get(name)


FRAG_VALUES = {  # ovs-fields(7) nw_frag keywords -> (value, mask)
    "no": (0, 1), "yes": (1, 1), "first": (1, 3), "later": (3, 3),
    "not_later": (0, 2),
}
FRAG_NAMES = {v: k for k, v in FRAG_VALUES.items()}


# --- text values -------------------------------------------------------------
_INT_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_MAC_RE = re.compile(r"[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}")


def parse_int(text, bits, what):
    """Decimal or 0x-hex integer that fits in `bits`."""
    if not isinstance(text, str) or not _INT_RE.fullmatch(text):
        raise FlowParseError(f'{what}: invalid integer "{text}"')
    value = int(text, 16) if text[:2] in ("0x", "0X") else int(text, 10)
    if value < 0 or value >> bits:
        raise FlowParseError(f'{what}: value "{text}" does not fit in {bits} bits')
    return value


def parse_mac(text, what):
    if not _MAC_RE.fullmatch(text):
        raise FlowParseError(f'{what}: invalid Ethernet address "{text}"')
    return int("".join(p.zfill(2) for p in text.split(":")), 16)


def format_mac(value):
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def _parse_ip(text, bits, what):
    cls = ipaddress.IPv4Address if bits == 32 else ipaddress.IPv6Address
    try:
        return int(cls(text))
    except ValueError:
        kind = "IPv4" if bits == 32 else "IPv6"
        raise FlowParseError(f'{what}: invalid {kind} address "{text}"') from None


def _parse_ip_masked(text, bits, what):
    addr, _, mask = text.partition("/")
    value = _parse_ip(addr, bits, what)
    if not mask:
        return value, (1 << bits) - 1
    if mask.isdigit():
        plen = int(mask)
        if plen > bits:
            raise FlowParseError(f'{what}: prefix length "{mask}" exceeds {bits}')
        return value, ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1)
    return value, _parse_ip(mask, bits, what)


def _prefix_len(mask, bits):
    """CIDR prefix length of `mask`, or None if it is not a prefix."""
    inv = ((1 << bits) - 1) ^ mask
    if inv & (inv + 1):
        return None
    return bits - inv.bit_length()


def _format_ip(value, mask, bits):
    cls = ipaddress.IPv4Address if bits == 32 else ipaddress.IPv6Address
    text = str(cls(value))
    if mask == (1 << bits) - 1:
        return text
    plen = _prefix_len(mask, bits)
    return f"{text}/{plen}" if plen is not None else f"{text}/{cls(mask)}"


def parse_port(text, resolver=None, what="in_port"):
    """An ofport: a number, a reserved name (LOCAL, NORMAL...) or a port name
    known to `resolver` (a callable name -> ofport or None)."""
    if text.upper() in RESERVED_PORTS:
        return RESERVED_PORTS[text.upper()]
    if _INT_RE.fullmatch(text):
        return parse_int(text, 16, what)
    port = resolver(text) if resolver else None
    if port is None:
        raise FlowParseError(f"{text}: invalid or unknown port for {what}")
    return port


def format_port(port, namer=None):
    if port in RESERVED_NAMES:
        return RESERVED_NAMES[port]
    name = namer(port) if namer else None
    return name if name else str(port)


def parse_value(field, text, resolver=None):
    """Parse `text` for `field` into a normalised (value, mask); mask None
    means the field ends up wildcarded (e.g. nw_src=0.0.0.0/0)."""
    name = field.name
    if text == "":
        raise FlowParseError(f"field {name} missing value")
    if field.kind == "port":
        return parse_port(text, resolver, name), field.all_ones
    if field.kind == "frag":
        if text not in FRAG_VALUES:
            raise FlowParseError(f'{name}: unknown fragment type "{text}"'
                                 f" (want one of {', '.join(FRAG_VALUES)})")
        return FRAG_VALUES[text]
    if field.kind in ("ipv4", "ipv6"):
        value, mask = _parse_ip_masked(text, field.bits, name)
    elif field.kind == "ct_state" and text[0] in "+-":
        value, mask = _parse_flags(text, CT_STATE_FLAGS, name)
    elif field.name == "tcp_flags" and text[0] in "+-":
        value, mask = _parse_flags(text, TCP_FLAGS, name)
    else:
        value_text, slash, mask_text = text.partition("/")
        if slash and not field.maskable:
            raise FlowParseError(f"{name}: field does not support masking")
        parse = parse_mac if field.kind == "mac" else (
            lambda t, w: parse_int(t, field.bits, w))
        value = parse(value_text, name)
        mask = parse(mask_text, name) if slash else field.all_ones
    value &= mask
    return value, (mask if mask else None)


TCP_FLAGS = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns")


def _parse_flags(text, names, what):
    """`+trk-new` style flags -> (value, mask)."""
    value = mask = 0
    for sign, word in re.findall(r"([+-])([^+-]*)", text):
        if word not in names:
            raise FlowParseError(f'{what}: unknown flag "{word}" (want one of '
                                 f"{', '.join(names)})")
        bit = 1 << names.index(word)
        if mask & bit:
            raise FlowParseError(f'{what}: flag "{word}" given twice')
        mask |= bit
        value |= bit if sign == "+" else 0
    if "".join(s + w for s, w in re.findall(r"([+-])([^+-]*)", text)) != text:
        raise FlowParseError(f'{what}: bad flags "{text}"')
    return value, mask


def format_value(field, value, mask, namer=None):
    exact = mask == field.all_ones
    if field.kind == "ct_state":
        return "".join(("+" if value >> i & 1 else "-") + n
                       for i, n in enumerate(CT_STATE_FLAGS) if mask >> i & 1)
    if field.kind == "port":
        return format_port(value, namer)
    if field.kind == "frag":
        return FRAG_NAMES.get((value, mask), f"{value:#x}/{mask:#x}")
    if field.kind == "mac":
        text = format_mac(value)
        return text if exact else f"{text}/{format_mac(mask)}"
    if field.kind in ("ipv4", "ipv6"):
        return _format_ip(value, mask, field.bits)
    if not exact:
        return f"{value:#x}/{mask:#x}"
    if field.name == "dl_type":
        return f"0x{value:04x}"
    if field.name == "vlan_tci":
        return f"0x{value:04x}"
    return f"{value:#x}" if field.kind == "hex" else str(value)


# --- mapping onto the flow key ------------------------------------------------
def to_flow(field, value, mask):
    """(flow_field, value, mask) triples that `field`=`value`/`mask` sets."""
    name = field.name
    if name == "dl_vlan":
        if value == 0xFFFF:
            return [("vlan_tci", 0, 0xFFFF)]
        return [("vlan_tci", layout.VLAN_CFI | (value & 0xFFF), 0x1FFF)]
    if name in ("dl_vlan_pcp", "vlan_pcp"):
        return [("vlan_tci", layout.VLAN_CFI | (value << 13), 0xF000)]
    if name == "vlan_vid":
        return [("vlan_tci", value, mask & 0x1FFF)]
    if field.bits == 128:
        base = name  # ipv6_src -> ipv6_src_hi / ipv6_src_lo
        lo = (1 << 64) - 1
        return [(base + "_hi", value >> 64, mask >> 64),
                (base + "_lo", value & lo, mask & lo)]
    s = field.shift
    return [(field.flow, value << s, mask << s)]


def check_field_value(field, value):
    """Field-specific value rules beyond the width (ovs-ofctl's wording)."""
    if field.name == "dl_vlan" and value != 0xFFFF and value > 0xFFF:
        raise FlowParseError(f"{value} is not a valid VLAN ID (0..4095, or 65535)")
    if field.name == "nw_tos" and value & 3:
        raise FlowParseError(f"nw_tos {value} has low-order ECN bits set; "
                             "use nw_ecn for those")


# --- subfields (load, move, output:reg, multipath...) ------------------------
_NXM_OF = ("in_port", "dl_dst", "dl_src", "dl_type", "vlan_tci", "nw_tos",
           "nw_proto", "nw_src", "nw_dst", "tp_src", "tp_dst", "icmp_type",
           "icmp_code", "arp_op", "arp_spa", "arp_tpa")
_NXM_SPELL = {"dl_dst": "ETH_DST", "dl_src": "ETH_SRC", "dl_type": "ETH_TYPE",
              "nw_tos": "IP_TOS", "nw_proto": "IP_PROTO", "nw_src": "IP_SRC",
              "nw_dst": "IP_DST", "tp_src": "TCP_SRC", "tp_dst": "TCP_DST",
              "nw_frag": "IP_FRAG", "nw_ecn": "IP_ECN", "nw_ttl": "IP_TTL",
              "tun_src": "TUN_IPV4_SRC", "tun_dst": "TUN_IPV4_DST"}
NXM_NAMES = {}
for _fld in FIELD_LIST:
    _up = _NXM_SPELL.get(_fld.name, _fld.name.upper())
    if _fld.nxm is not None:
        NXM_NAMES[_fld.name] = ("NXM_OF_" if _fld.name in _NXM_OF else "NXM_NX_") + _up
    elif _fld.oxm is not None:
        NXM_NAMES[_fld.name] = "OXM_OF_" + _up
_BY_NXM = {v: k for k, v in NXM_NAMES.items()}
_BY_NXM.update({"NXM_OF_UDP_SRC": "tp_src", "NXM_OF_UDP_DST": "tp_dst",
                "NXM_OF_SCTP_SRC": "tp_src", "NXM_OF_SCTP_DST": "tp_dst"})

# Fields set_field/load/move may write: pipeline state, tunnel metadata,
# in_port, and the packet headers xlate can commit to the datapath.
WRITABLE = {"metadata", *[f"reg{r}" for r in range(N_REGS)], "tun_id",
            "tun_src", "tun_dst", "pkt_mark", "in_port", "vlan_tci", "vlan_vid",
            "vlan_pcp", "dl_src", "dl_dst", "nw_src", "nw_dst", "nw_tos",
            "ip_dscp", "nw_ecn", "nw_ttl", "ipv6_src", "ipv6_dst", "ipv6_label",
            "tp_src", "tp_dst", "ct_mark", "ct_label"}
_SUB_RE = re.compile(r"([A-Za-z0-9_]+)(?:\[(?:(\d+)(?:\.\.(\d+))?)?\])?")


def lookup_any(name):
    """A Field by our name, an alias or its NXM/OXM name, else None."""
    return lookup(name) or (FIELDS[_BY_NXM[name]] if name in _BY_NXM else None)


def parse_subfield(text, what="subfield"):
    """`NXM_NX_REG0[0..15]`, `reg0[3]`, `reg0[]` or `reg0` ->
    (field name, start bit, n_bits)."""
    m = _SUB_RE.fullmatch(text.strip())
    if not m:
        raise FlowParseError(f'{what}: "{text}" is not a field[start..end]')
    field = lookup_any(m.group(1))
    if field is None:
        raise FlowParseError(f'{what}: unknown field "{m.group(1)}"')
    if m.group(2) is None:
        return field.name, 0, field.bits
    start = int(m.group(2))
    end = int(m.group(3)) if m.group(3) is not None else start
    if end < start or end >= field.bits:
        raise FlowParseError(f"{what}: bits {start}..{end} out of range for "
                             f"{field.name} ({field.bits} bits)")
    return field.name, start, end - start + 1


def format_subfield(name, start, n_bits):
    field = FIELDS[name]
    label = NXM_NAMES.get(name, name)
    if start == 0 and n_bits == field.bits:
        return f"{label}[]"
    if n_bits == 1:
        return f"{label}[{start}]"
    return f"{label}[{start}..{start + n_bits - 1}]"
