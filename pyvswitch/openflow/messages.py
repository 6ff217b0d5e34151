"""OpenFlow messages as version-independent objects.

What: one frozen dataclass per message kind that a switch receives or sends,
shared by the OpenFlow 1.0 and 1.3 codecs (codec10, codec13 translate), so
the switch side handles a single representation. Flow mods are text.py's
FlowMod (the same object ovs-ofctl text parses into); matches are Match and
actions the objects of actions.py.

Conventions (the codecs translate to and from each version's numbers):
- ports are OpenFlow 1.0 numbers (16 bits; OFPP_NONE = "any"), as in
  fields.py; OpenFlow 1.3's 32-bit reserved ports map onto them.
- group ids and meter ids are 32-bit; OFPG_ANY / OFPG_ALL / OFPM_ALL below.
- a table of None means "all tables" (OFPTT_ALL) in requests.
- words, not numbers, for enumerations that differ between versions
  (group type and command, meter band type, role, flow format).
- every multipart/stats message has `flags` (1 = more to follow).
- `nxm=True` on flow statistics and flow-removed messages means the Nicira
  form (NXST_FLOW, NXST_AGGREGATE, NXT_FLOW_REMOVED: NXM matches) in 1.0.

Invariants: immutable (tuples, not lists); no I/O; any thread may use them.
"""

from dataclasses import dataclass, field

from pyvswitch.openflow import fields as F
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.text import FlowMod  # noqa: F401  (re-exported)

OFPG_MAX, OFPG_ALL, OFPG_ANY = 0xFFFFFF00, 0xFFFFFFFC, 0xFFFFFFFF
OFPM_MAX, OFPM_SLOWPATH, OFPM_CONTROLLER, OFPM_ALL = (
    0xFFFF0000, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF)
NO_BUFFER = 0xFFFFFFFF
GROUP_TYPES = ("all", "select", "indirect", "ff")
GROUP_COMMANDS = ("add", "modify", "delete")
METER_COMMANDS = ("add", "modify", "delete")
METER_KBPS, METER_PKTPS, METER_BURST, METER_STATS = 1, 2, 4, 8
ROLES = ("nochange", "equal", "master", "slave")
PACKET_IN_REASONS = {0: "no_match", 1: "action", 2: "invalid_ttl"}
FLOW_REMOVED_REASONS = {0: "idle_timeout", 1: "hard_timeout", 2: "delete",
                        3: "group_delete"}
PORT_STATUS_REASONS = {0: "add", 1: "delete", 2: "modify"}


# --- symmetric and setup messages ------------------------------------------------
@dataclass(frozen=True)
class Hello:
    versions: tuple = ()          # version bitmap; () = no bitmap element


@dataclass(frozen=True)
class Error:
    name: str | None = None       # e.g. "OFPBRC_BAD_LEN"; None if unknown
    data: bytes = b""
    type: int | None = None       # raw numbers (decoded, or for unknown names)
    code: int | None = None


@dataclass(frozen=True)
class EchoRequest:
    data: bytes = b""


@dataclass(frozen=True)
class EchoReply:
    data: bytes = b""


@dataclass(frozen=True)
class Experimenter:
    """An experimenter (1.0: vendor) message the codec does not know."""
    experimenter: int = 0
    exp_type: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class FeaturesRequest:
    pass


@dataclass(frozen=True)
class PortDesc:
    port_no: int = 0
    hw_addr: int = 0
    name: str = ""
    config: int = 0
    state: int = 0
    curr: int = 0
    advertised: int = 0
    supported: int = 0
    peer: int = 0
    curr_speed: int = 0           # kbps (1.3 only)
    max_speed: int = 0


@dataclass(frozen=True)
class FeaturesReply:
    datapath_id: int = 0
    n_buffers: int = 0
    n_tables: int = 254
    capabilities: int = 0
    actions: int = 0              # 1.0 only: supported action bitmap
    auxiliary_id: int = 0         # 1.3 only
    ports: tuple = ()             # 1.0 only (1.3: port-desc multipart)


@dataclass(frozen=True)
class GetConfigRequest:
    pass


@dataclass(frozen=True)
class GetConfigReply:
    flags: int = 0
    miss_send_len: int = 128


@dataclass(frozen=True)
class SetConfig:
    flags: int = 0
    miss_send_len: int = 128


@dataclass(frozen=True)
class BarrierRequest:
    pass


@dataclass(frozen=True)
class BarrierReply:
    pass


@dataclass(frozen=True)
class RoleRequest:
    role: str = "nochange"
    generation_id: int = 0


@dataclass(frozen=True)
class RoleReply:
    role: str = "equal"
    generation_id: int = 0


@dataclass(frozen=True)
class GetAsyncRequest:
    pass


@dataclass(frozen=True)
class GetAsyncReply:
    packet_in_mask: tuple = (0, 0)      # (master/equal, slave) bitmaps
    port_status_mask: tuple = (0, 0)
    flow_removed_mask: tuple = (0, 0)


@dataclass(frozen=True)
class SetAsync:
    packet_in_mask: tuple = (0, 0)
    port_status_mask: tuple = (0, 0)
    flow_removed_mask: tuple = (0, 0)


# --- asynchronous messages ---------------------------------------------------------
@dataclass(frozen=True)
class PacketIn:
    buffer_id: int = NO_BUFFER
    total_len: int = 0
    reason: int = 0               # PACKET_IN_REASONS
    in_port: int = 0
    data: bytes = b""
    table_id: int = 0             # 1.3 only
    cookie: int = 0xFFFFFFFFFFFFFFFF   # 1.3 only
    match: Match = field(default_factory=Match)   # 1.3: besides in_port


@dataclass(frozen=True)
class FlowRemoved:
    match: Match = field(default_factory=Match)
    cookie: int = 0
    priority: int = 0
    reason: int = 0               # FLOW_REMOVED_REASONS
    table_id: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0         # 1.3 (and NX) only
    packet_count: int = 0
    byte_count: int = 0
    nxm: bool = False


@dataclass(frozen=True)
class PortStatus:
    reason: int = 0               # PORT_STATUS_REASONS
    desc: PortDesc = field(default_factory=PortDesc)


# --- controller commands -------------------------------------------------------------
@dataclass(frozen=True)
class PacketOut:
    buffer_id: int = NO_BUFFER
    in_port: int = F.OFPP_CONTROLLER
    actions: tuple = ()
    data: bytes = b""


@dataclass(frozen=True)
class Bucket:
    actions: tuple = ()
    weight: int = 0
    watch_port: int = F.OFPP_NONE     # OFPP_NONE: none (1.3 OFPP_ANY)
    watch_group: int = OFPG_ANY


@dataclass(frozen=True)
class GroupMod:
    command: str = "add"          # GROUP_COMMANDS
    group_type: str = "all"       # GROUP_TYPES
    group_id: int = 0
    buckets: tuple = ()


@dataclass(frozen=True)
class PortMod:
    port_no: int = 0
    hw_addr: int = 0
    config: int = 0
    mask: int = 0
    advertise: int = 0


@dataclass(frozen=True)
class TableMod:
    table_id: int = 0xFF
    config: int = 0


@dataclass(frozen=True)
class MeterBand:
    type: str = "drop"            # drop | dscp_remark
    rate: int = 0
    burst_size: int = 0
    prec_level: int = 0           # dscp_remark only


@dataclass(frozen=True)
class MeterMod:
    command: str = "add"          # METER_COMMANDS
    flags: int = METER_KBPS
    meter_id: int = 0
    bands: tuple = ()


# Nicira extensions (OpenFlow 1.0 connections from ovs-ofctl use these).
@dataclass(frozen=True)
class SetFlowFormat:
    format: str = "nxm"           # openflow10 | nxm


@dataclass(frozen=True)
class FlowModTableId:
    enable: bool = True


@dataclass(frozen=True)
class SetPacketInFormat:
    format: int = 0               # 0 standard, 1 NXT_PACKET_IN, 2 NXT_PACKET_IN2


# --- multipart (1.0: stats) requests and replies ---------------------------------------
@dataclass(frozen=True)
class DescRequest:
    flags: int = 0


@dataclass(frozen=True)
class DescReply:
    mfr_desc: str = ""
    hw_desc: str = ""
    sw_desc: str = ""
    serial_num: str = ""
    dp_desc: str = ""
    flags: int = 0


@dataclass(frozen=True)
class FlowStatsRequest:
    match: Match = field(default_factory=Match)
    table: int | None = None
    out_port: int | None = None
    out_group: int | None = None  # 1.3 only
    cookie: int = 0               # 1.3 only (and NX: no)
    cookie_mask: int = 0
    flags: int = 0
    nxm: bool = False


@dataclass(frozen=True)
class FlowStats:
    table_id: int = 0
    match: Match = field(default_factory=Match)
    priority: int = 0
    actions: tuple = ()           # apply-actions (+ GotoTable last)
    duration_sec: int = 0
    duration_nsec: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    cookie: int = 0
    packet_count: int = 0
    byte_count: int = 0
    flags: int = 0                # 1.3 flow-mod flags (OFPFF_*)
    idle_age: int = 0             # NX only
    hard_age: int = 0             # NX only
    write_actions: tuple | None = None   # 1.3 instructions beyond apply/goto
    clear_actions: bool = False
    write_metadata: tuple | None = None  # (value, mask)
    meter: int | None = None


@dataclass(frozen=True)
class FlowStatsReply:
    flows: tuple = ()
    flags: int = 0
    nxm: bool = False


@dataclass(frozen=True)
class AggregateStatsRequest:
    match: Match = field(default_factory=Match)
    table: int | None = None
    out_port: int | None = None
    out_group: int | None = None
    cookie: int = 0
    cookie_mask: int = 0
    flags: int = 0
    nxm: bool = False


@dataclass(frozen=True)
class AggregateStatsReply:
    packet_count: int = 0
    byte_count: int = 0
    flow_count: int = 0
    flags: int = 0
    nxm: bool = False


@dataclass(frozen=True)
class TableStatsRequest:
    flags: int = 0


@dataclass(frozen=True)
class TableStats:
    table_id: int = 0
    active_count: int = 0
    lookup_count: int = 0
    matched_count: int = 0
    name: str = ""                # 1.0 only
    wildcards: int = 0            # 1.0 only
    max_entries: int = 0          # 1.0 only


@dataclass(frozen=True)
class TableStatsReply:
    tables: tuple = ()
    flags: int = 0


@dataclass(frozen=True)
class PortStatsRequest:
    port_no: int = F.OFPP_NONE    # OFPP_NONE: all ports
    flags: int = 0


PORT_COUNTERS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes",
                 "rx_dropped", "tx_dropped", "rx_errors", "tx_errors",
                 "rx_frame_err", "rx_over_err", "rx_crc_err", "collisions")


@dataclass(frozen=True)
class PortStats:
    port_no: int = 0
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_frame_err: int = 0
    rx_over_err: int = 0
    rx_crc_err: int = 0
    collisions: int = 0
    duration_sec: int = 0         # 1.3 only
    duration_nsec: int = 0


@dataclass(frozen=True)
class PortStatsReply:
    ports: tuple = ()
    flags: int = 0


@dataclass(frozen=True)
class PortDescRequest:
    flags: int = 0


@dataclass(frozen=True)
class PortDescReply:
    ports: tuple = ()
    flags: int = 0


@dataclass(frozen=True)
class GroupStatsRequest:
    group_id: int = OFPG_ALL
    flags: int = 0


@dataclass(frozen=True)
class GroupStats:
    group_id: int = 0
    ref_count: int = 0
    packet_count: int = 0
    byte_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    buckets: tuple = ()           # ((packet_count, byte_count), ...)


@dataclass(frozen=True)
class GroupStatsReply:
    groups: tuple = ()
    flags: int = 0


@dataclass(frozen=True)
class GroupDescRequest:
    flags: int = 0
    group_id: int = OFPG_ALL      # NXST_GROUP_DESC (OpenFlow 1.5 layout) only; 1.3: all


@dataclass(frozen=True)
class GroupDesc:
    group_type: str = "all"
    group_id: int = 0
    buckets: tuple = ()


@dataclass(frozen=True)
class GroupDescReply:
    groups: tuple = ()
    flags: int = 0


@dataclass(frozen=True)
class GroupFeaturesRequest:
    flags: int = 0


@dataclass(frozen=True)
class GroupFeaturesReply:
    types: int = 0
    capabilities: int = 0
    max_groups: tuple = (0, 0, 0, 0)
    actions: tuple = (0, 0, 0, 0)
    flags: int = 0


@dataclass(frozen=True)
class MeterStatsRequest:
    meter_id: int = OFPM_ALL
    flags: int = 0


@dataclass(frozen=True)
class MeterStats:
    meter_id: int = 0
    flow_count: int = 0
    packet_in_count: int = 0
    byte_in_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    bands: tuple = ()             # ((packet_band_count, byte_band_count), ...)


@dataclass(frozen=True)
class MeterStatsReply:
    meters: tuple = ()
    flags: int = 0


@dataclass(frozen=True)
class MeterConfigRequest:
    meter_id: int = OFPM_ALL
    flags: int = 0


@dataclass(frozen=True)
class MeterConfig:
    flags: int = 0
    meter_id: int = 0
    bands: tuple = ()


@dataclass(frozen=True)
class MeterConfigReply:
    meters: tuple = ()
    flags: int = 0


@dataclass(frozen=True)
class MeterFeaturesRequest:
    flags: int = 0


@dataclass(frozen=True)
class MeterFeaturesReply:
    max_meter: int = 0
    band_types: int = 0
    capabilities: int = 0
    max_bands: int = 0
    max_color: int = 0
    flags: int = 0


@dataclass(frozen=True)
class TableFeatures:
    table_id: int = 0
    name: str = ""
    metadata_match: int = 0
    metadata_write: int = 0
    config: int = 0
    max_entries: int = 0
    properties: tuple = ()        # ((type, payload bytes), ...), kept raw


@dataclass(frozen=True)
class TableFeaturesRequest:
    tables: tuple = ()            # () = read the current features
    flags: int = 0


@dataclass(frozen=True)
class TableFeaturesReply:
    tables: tuple = ()
    flags: int = 0


def unsupported_experimenter(msg, known_experimenters=(0x2320,)):
    """The OFError a switch answers an Experimenter message it does not
    understand with: OFPBRC_BAD_EXPERIMENTER for an unknown experimenter id,
    OFPBRC_BAD_EXP_TYPE for an unknown type of a known one."""
    from pyvswitch.openflow.wire import OFError
    if msg.experimenter in known_experimenters:
        return OFError("OFPBRC_BAD_EXP_TYPE",
                       f"experimenter {msg.experimenter:#x} type {msg.exp_type}")
    return OFError("OFPBRC_BAD_EXPERIMENTER",
                   f"experimenter {msg.experimenter:#x}")
