"""OpenFlow actions as small immutable objects, each knowing its ovs-ofctl text.

What: the action vocabulary shared by the text syntax (text.py), the future
wire codecs and xlate. Output to a reserved port (NORMAL, FLOOD, ALL, LOCAL,
IN_PORT) is an Output whose port is the reserved number, as in OVS. An empty
action list means drop.

Each class has `to_text(namer)` producing the canonical ovs-ofctl spelling
(e.g. Output(2) -> "output:2", Output(OFPP_NORMAL) -> "NORMAL"); text_actions.py
holds the matching one-function-per-action parsers. To add an action: a class
here, a parser there, a case in xlate.

set_field, load and the legacy mod_* actions are all SetField (field name,
value, mask in the field's own bits) remembering their spelling; OpenFlow
1.1+ instructions other than goto_table (meter, clear_actions,
write_actions, write_metadata) are FlowMod fields, formatted in Open
vSwitch's order by `format_instructions`.

Invariants: frozen dataclasses (hashable, comparable); no I/O.
"""

from dataclasses import dataclass

from pyvswitch.openflow import fields as F


@dataclass(frozen=True)
class Output:
    port: int

    def to_text(self, namer=None):
        if self.port == F.OFPP_CONTROLLER:
            return "CONTROLLER:65535"
        if self.port in F.RESERVED_NAMES:
            return F.RESERVED_NAMES[self.port]
        return f"output:{F.format_port(self.port, namer)}"


CONTROLLER_REASONS = ("no_match", "action", "invalid_ttl")


@dataclass(frozen=True)
class Controller:
    max_len: int = 65535
    reason: str = "action"
    controller_id: int = 0
    userdata: bytes = b""

    def to_text(self, namer=None):
        if self.reason == "action" and not self.controller_id and not self.userdata:
            return f"CONTROLLER:{self.max_len}"
        opts = []
        if self.reason != "action":
            opts.append(f"reason={self.reason}")
        if self.max_len != 65535:
            opts.append(f"max_len={self.max_len}")
        if self.controller_id:
            opts.append(f"id={self.controller_id}")
        if self.userdata:
            opts.append("userdata=" + format_hex_bytes(self.userdata))
        return "controller(" + ",".join(opts) + ")"


def format_hex_bytes(data):
    return ".".join(f"{b:02x}" for b in data)


@dataclass(frozen=True)
class OutputReg:
    """output:field[start..end]: output to the port number in a subfield."""
    field: str
    start: int
    n_bits: int
    max_len: int = 0

    def to_text(self, namer=None):
        return "output:" + F.format_subfield(self.field, self.start, self.n_bits)


@dataclass(frozen=True)
class SetVlanVid:
    vid: int
    push_if_needed: bool = True   # mod_vlan_vid pushes a tag on untagged packets

    def to_text(self, namer=None):
        name = "mod_vlan_vid" if self.push_if_needed else "set_vlan_vid"
        return f"{name}:{self.vid}"


@dataclass(frozen=True)
class SetVlanPcp:
    pcp: int
    push_if_needed: bool = True

    def to_text(self, namer=None):
        name = "mod_vlan_pcp" if self.push_if_needed else "set_vlan_pcp"
        return f"{name}:{self.pcp}"


@dataclass(frozen=True)
class StripVlan:
    pop: bool = False   # spelled pop_vlan (OpenFlow 1.1+) rather than strip_vlan

    def to_text(self, namer=None):
        return "pop_vlan" if self.pop else "strip_vlan"


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100

    def to_text(self, namer=None):
        return f"push_vlan:{self.ethertype:#06x}"


@dataclass(frozen=True)
class Resubmit:
    port: int = F.OFPP_IN_PORT   # in_port to look up with
    table: int = 255             # 255: the current table

    def to_text(self, namer=None):
        if self.table == 255:
            return f"resubmit:{F.format_port(self.port, namer)}"
        port = "" if self.port == F.OFPP_IN_PORT else F.format_port(self.port, namer)
        return f"resubmit({port},{self.table})"


@dataclass(frozen=True)
class GotoTable:
    table: int

    def to_text(self, namer=None):
        return f"goto_table:{self.table}"


@dataclass(frozen=True)
class Group:
    group_id: int

    def to_text(self, namer=None):
        return f"group:{self.group_id}"


# set_field and its older spellings. `spelling` keeps the text the user
# wrote (as OVS remembers the raw action): "set_field", "load", "mod_dl_src",
# "mod_dl_dst", "mod_nw_src", "mod_nw_dst", "mod_nw_tos", "mod_nw_ecn",
# "mod_nw_ttl", "mod_tp_src", "mod_tp_dst", "set_tunnel", "set_tunnel64".
# value and mask are in the field's own bits (not shifted into the flow).
_LEGACY = {"mod_dl_src": "dl_src", "mod_dl_dst": "dl_dst", "mod_nw_src": "nw_src",
           "mod_nw_dst": "nw_dst", "mod_nw_tos": "nw_tos", "mod_nw_ecn": "nw_ecn",
           "mod_nw_ttl": "nw_ttl", "mod_tp_src": "tp_src", "mod_tp_dst": "tp_dst",
           "set_tunnel": "tun_id", "set_tunnel64": "tun_id"}


@dataclass(frozen=True)
class SetField:
    field: str
    value: int
    mask: int
    spelling: str = "set_field"

    def to_text(self, namer=None):
        fld = F.FIELDS[self.field]
        sp = self.spelling
        if sp == "load":
            start = (self.mask & -self.mask).bit_length() - 1
            n = self.mask.bit_length() - start
            return (f"load:{self.value >> start:#x}->"
                    + F.format_subfield(self.field, start, n))
        if sp in _LEGACY:
            if fld.kind in ("mac", "ipv4"):
                return f"{sp}:{F.format_value(fld, self.value, fld.all_ones)}"
            if sp in ("set_tunnel", "set_tunnel64"):
                return f"{sp}:{self.value:#x}"
            return f"{sp}:{self.value}"
        if fld.kind == "port":
            text = F.format_port(self.value, namer)
        elif self.mask == fld.all_ones:
            text = F.format_value(fld, self.value, self.mask)
        elif fld.kind in ("mac", "ipv4", "ipv6"):
            text = F.format_value(fld, self.value, self.mask)
        else:
            text = f"{self.value:#x}/{self.mask:#x}"
        return f"set_field:{text}->{self.field}"


@dataclass(frozen=True)
class Move:
    src: str
    src_start: int
    dst: str
    dst_start: int
    n_bits: int

    def to_text(self, namer=None):
        return (f"move:{F.format_subfield(self.src, self.src_start, self.n_bits)}->"
                f"{F.format_subfield(self.dst, self.dst_start, self.n_bits)}")


@dataclass(frozen=True)
class DecTtl:
    controller_ids: tuple = ()

    def to_text(self, namer=None):
        if not self.controller_ids:
            return "dec_ttl"
        return "dec_ttl(" + ",".join(map(str, self.controller_ids)) + ")"


@dataclass(frozen=True)
class Meter:
    meter_id: int

    def to_text(self, namer=None):
        return f"meter:{self.meter_id}"


@dataclass(frozen=True)
class Conjunction:
    conj_id: int
    clause: int      # 1-based, as in the text (k of k/n)
    n_clauses: int

    def to_text(self, namer=None):
        return f"conjunction({self.conj_id},{self.clause}/{self.n_clauses})"


@dataclass(frozen=True)
class Note:
    data: bytes

    def to_text(self, namer=None):
        return "note:" + format_hex_bytes(self.data)


@dataclass(frozen=True)
class Ct:
    """ct(...): parsed and kept; the conntrack work executes it."""
    commit: bool = False
    force: bool = False
    zone: int | None = None
    zone_field: tuple | None = None   # (field, start, n_bits)
    table: int | None = None
    alg: str | None = None
    nat: str | None = None            # None, "" (plain nat) or its arguments
    exec_actions: tuple = ()

    def to_text(self, namer=None):
        opts = []
        if self.commit:
            opts.append("commit")
        if self.force:
            opts.append("force")
        if self.table is not None:
            opts.append(f"table={self.table}")
        if self.zone_field is not None:
            opts.append("zone=" + F.format_subfield(*self.zone_field))
        elif self.zone is not None:
            opts.append(f"zone={self.zone}")
        if self.exec_actions:
            opts.append("exec(" + format_actions(self.exec_actions, namer) + ")")
        if self.alg:
            opts.append(f"alg={self.alg}")
        if self.nat is not None:
            opts.append(f"nat({self.nat})" if self.nat else "nat")
        return "ct(" + ",".join(opts) + ")" if opts else "ct"


@dataclass(frozen=True)
class Learn:
    """learn(...): add or refresh a flow built from the packet. specs are
    ("match", dst, dst_start, n_bits, src), ("load", dst, dst_start, n_bits,
    src) and ("output", field, start, n_bits); src is ("field", name, start)
    or ("imm", value)."""
    table: int = 1
    priority: int = 32768
    idle_timeout: int = 0
    hard_timeout: int = 0
    cookie: int = 0
    flags: frozenset = frozenset()
    specs: tuple = ()

    def to_text(self, namer=None):
        # Open vSwitch's order (format_LEARN): timeouts, priority, flags, cookie
        opts = [f"table={self.table}"]
        for name, default in (("idle_timeout", 0), ("hard_timeout", 0),
                              ("priority", 32768)):
            value = getattr(self, name)
            if value != default:
                opts.append(f"{name}={value}")
        opts += [w for w in ("send_flow_rem", "delete_learned") if w in self.flags]
        if self.cookie:
            opts.append(f"cookie={self.cookie:#x}")
        opts += [_learn_spec_text(s) for s in self.specs]
        return "learn(" + ",".join(opts) + ")"


def _learn_src_text(src, n_bits):
    if src[0] == "imm":
        return f"{src[1]:#x}"
    return F.format_subfield(src[1], src[2], n_bits)


def _learn_spec_text(spec):
    kind = spec[0]
    if kind == "output":
        return "output:" + F.format_subfield(*spec[1:])
    _, dst, start, n, src = spec
    dst_text = F.format_subfield(dst, start, n)
    if kind == "load":
        return f"load:{_learn_src_text(src, n)}->{dst_text}"
    if src == ("field", dst, start):
        return dst_text
    return f"{dst_text}={_learn_src_text(src, n)}"


@dataclass(frozen=True)
class CtClear:
    def to_text(self, namer=None):
        return "ct_clear"


ACTION_TYPES = (Output, OutputReg, Controller, SetVlanVid, SetVlanPcp, StripVlan,
                PushVlan, Resubmit, GotoTable, Group, SetField, Move, DecTtl,
                Meter, Conjunction, Note, Ct, CtClear, Learn)


@dataclass(frozen=True)
class Spelled:
    """Display only: an action printed exactly as `text` (see ovs_spelling)."""
    text: str

    def to_text(self, namer=None):
        return self.text


# Open vSwitch's own field names (meta-flow's) where ours differ: what
# ovs-ofctl prints after set_field's "->", whether the action came from a
# file or from the wire. tp_src/tp_dst are tcp_, udp_ or sctp_ by the match.
OVS_FIELD_NAMES = {"dl_src": "eth_src", "dl_dst": "eth_dst", "dl_type": "eth_type",
                   "nw_src": "ip_src", "nw_dst": "ip_dst"}
_L4_PREFIX = {6: "tcp", 17: "udp", 132: "sctp"}


def ovs_spelling(actions, nw_proto=None, of13=False):
    """`actions` as ovs-ofctl 3.1 prints them: set_field with Open vSwitch's
    field names (eth_src, ip_src, tcp_dst, ...) and, for actions decoded from
    an OpenFlow 1.3 connection (of13), VLAN set_fields as
    set_field:4103->vlan_vid / set_field:3->vlan_pcp (Open vSwitch decodes
    OFPAT_SET_FIELD to set_field, never to set_vlan_vid). nw_proto: the
    flow's IP protocol, which names tp_src/tp_dst."""
    out = []
    for a in actions:
        if isinstance(a, SetField) and a.spelling == "set_field":
            name = OVS_FIELD_NAMES.get(a.field)
            if a.field in ("tp_src", "tp_dst"):
                name = _L4_PREFIX.get(nw_proto, "tcp") + a.field[2:]
            if name:
                head = a.to_text().rpartition("->")[0]
                a = Spelled(f"{head}->{name}")
        elif of13 and isinstance(a, SetVlanVid) and not a.push_if_needed:
            a = Spelled(f"set_field:{a.vid | 0x1000}->vlan_vid")
        elif of13 and isinstance(a, SetVlanPcp) and not a.push_if_needed:
            a = Spelled(f"set_field:{a.pcp}->vlan_pcp")
        out.append(a)
    return tuple(out)


def format_actions(actions, namer=None):
    if not actions:
        return "drop"
    return ",".join(a.to_text(namer) for a in actions)


def format_instructions(actions, meter=None, clear_actions=False,
                        write_actions=None, write_metadata=None, namer=None):
    """An actions= value in Open vSwitch's instruction order: meter, apply
    actions, clear_actions, write_actions(...), write_metadata, goto_table."""
    goto = actions[-1] if actions and isinstance(actions[-1], GotoTable) else None
    apply = actions[:-1] if goto else actions
    parts = [f"meter:{meter}"] if meter is not None else []
    parts += [a.to_text(namer) for a in apply]
    if clear_actions:
        parts.append("clear_actions")
    if write_actions is not None:
        parts.append("write_actions(" + ",".join(a.to_text(namer) for a in write_actions)
                     + ")")
    if write_metadata is not None:
        value, mask = write_metadata
        parts.append(f"write_metadata:{value:#x}" +
                     ("" if mask == (1 << 64) - 1 else f"/{mask:#x}"))
    if goto:
        parts.append(goto.to_text(namer))
    return ",".join(parts) if parts else "drop"


def outputs_to(actions, port):
    """True if `actions` output to ofport `port` (the out_port filter of
    del-flows/dump-flows)."""
    for a in actions:
        if isinstance(a, Output) and a.port == port:
            return True
        if isinstance(a, Controller) and port == F.OFPP_CONTROLLER:
            return True
        if isinstance(a, OutputReg):
            return True      # may output anywhere: OVS counts it as a match
    return False


def uses_group(actions, group_id):
    """True if `actions` (or a write_actions set) send to group `group_id`."""
    return any(isinstance(a, Group) and a.group_id == group_id for a in actions)
