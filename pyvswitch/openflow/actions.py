"""OpenFlow actions as small immutable objects, each knowing its ovs-ofctl text.

What: the action vocabulary shared by the text syntax (text.py), the future
wire codecs and xlate. Output to a reserved port (NORMAL, FLOOD, ALL, LOCAL,
IN_PORT) is an Output whose port is the reserved number, as in OVS. An empty
action list means drop.

Each class has `to_text(namer)` producing the canonical ovs-ofctl spelling
(e.g. Output(2) -> "output:2", Output(OFPP_NORMAL) -> "NORMAL"); text.py
holds the matching one-function-per-action parsers. To add an action: a class
here, a parser there, a case in xlate.

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


@dataclass(frozen=True)
class Controller:
    max_len: int = 65535

    def to_text(self, namer=None):
        return f"CONTROLLER:{self.max_len}"


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


ACTION_TYPES = (Output, Controller, SetVlanVid, SetVlanPcp, StripVlan, PushVlan,
                Resubmit, GotoTable, Group)


def format_actions(actions, namer=None):
    if not actions:
        return "drop"
    return ",".join(a.to_text(namer) for a in actions)


def outputs_to(actions, port):
    """True if `actions` output to ofport `port` (the out_port filter of
    del-flows/dump-flows)."""
    for a in actions:
        if isinstance(a, Output) and a.port == port:
            return True
        if isinstance(a, Controller) and port == F.OFPP_CONTROLLER:
            return True
    return False
