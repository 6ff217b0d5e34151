"""OpenFlow on the wire: the common header, framing, and the error vocabulary.

What: every OpenFlow message starts with an 8-byte header (version, type,
length, xid). `Framer` cuts a byte stream into whole messages and refuses a
length below 8 or above `max_len` (a framing error: the connection cannot
resynchronise and must be closed). `decode(data)` and `encode(msg, version,
xid)` dispatch to codec10 (OpenFlow 1.0) or codec13 (OpenFlow 1.3).

Errors: one exception, `OFError`, names the OFPT_ERROR the switch must send
(e.g. "OFPBRC_BAD_LEN") and carries the offending message's bytes. Names are
version independent (OpenFlow 1.3 spelling); `codes(name, version)` gives the
(type, code) numbers for a version, with Open vSwitch's numbers for errors
that OpenFlow 1.0 never defined (e.g. OFPBMC_BAD_PREREQ is (1,260) there).
`error_for(exc, version, xid)` builds the Error message to send.

Invariants: pure functions of bytes; no I/O; any thread may call.
"""

import struct

OFP10, OFP13 = 0x01, 0x04
VERSIONS = (OFP10, OFP13)
HEADER = struct.Struct("!BBHI")
MAX_LEN = 0xFFFF
ERROR_DATA_MAX = 64          # bytes of the offending message echoed back

# --- errors: name, OpenFlow 1.0 (type, code), OpenFlow 1.3 (type, code) ------
ERROR_TYPES13 = {
    0: "OFPET_HELLO_FAILED", 1: "OFPET_BAD_REQUEST", 2: "OFPET_BAD_ACTION",
    3: "OFPET_BAD_INSTRUCTION", 4: "OFPET_BAD_MATCH",
    5: "OFPET_FLOW_MOD_FAILED", 6: "OFPET_GROUP_MOD_FAILED",
    7: "OFPET_PORT_MOD_FAILED", 8: "OFPET_TABLE_MOD_FAILED",
    9: "OFPET_QUEUE_OP_FAILED", 10: "OFPET_SWITCH_CONFIG_FAILED",
    11: "OFPET_ROLE_REQUEST_FAILED", 12: "OFPET_METER_MOD_FAILED",
    13: "OFPET_TABLE_FEATURES_FAILED", 0xFFFF: "OFPET_EXPERIMENTER",
}
ERROR_TYPES10 = {
    0: "OFPET_HELLO_FAILED", 1: "OFPET_BAD_REQUEST", 2: "OFPET_BAD_ACTION",
    3: "OFPET_FLOW_MOD_FAILED", 4: "OFPET_PORT_MOD_FAILED",
    5: "OFPET_QUEUE_OP_FAILED",
}

# name: 1.0 "t,c" (or "-": not defined, sent as NXBRC_UNENCODABLE_ERROR) and
# 1.3 "t,c". 1.0 codes >= 256 are Open vSwitch's (ofp-errors.h "NX1.0").
_TABLE = """
OFPHFC_INCOMPATIBLE 0,0 0,0
OFPHFC_EPERM 0,1 0,1
OFPBRC_BAD_VERSION 1,0 1,0
OFPBRC_BAD_TYPE 1,1 1,1
OFPBRC_BAD_MULTIPART 1,2 1,2
OFPBRC_BAD_EXPERIMENTER 1,3 1,3
OFPBRC_BAD_EXP_TYPE 1,4 1,4
OFPBRC_EPERM 1,5 1,5
OFPBRC_BAD_LEN 1,6 1,6
OFPBRC_BUFFER_EMPTY 1,7 1,7
OFPBRC_BUFFER_UNKNOWN 1,8 1,8
OFPBRC_BAD_TABLE_ID 1,512 1,9
OFPBRC_IS_SLAVE 1,5 1,10
OFPBRC_BAD_PORT 1,514 1,11
OFPBRC_BAD_PACKET - 1,12
OFPBRC_MULTIPART_BUFFER_OVERFLOW - 1,13
NXBRC_UNENCODABLE_ERROR 1,521 -
OFPBAC_BAD_TYPE 2,0 2,0
OFPBAC_BAD_LEN 2,1 2,1
OFPBAC_BAD_EXPERIMENTER 2,2 2,2
OFPBAC_BAD_EXP_TYPE 2,3 2,3
OFPBAC_BAD_OUT_PORT 2,4 2,4
OFPBAC_BAD_ARGUMENT 2,5 2,5
OFPBAC_EPERM 2,6 2,6
OFPBAC_TOO_MANY 2,7 2,7
OFPBAC_BAD_QUEUE 2,8 2,8
OFPBAC_BAD_OUT_GROUP - 2,9
OFPBAC_MATCH_INCONSISTENT 1,522 2,10
OFPBAC_UNSUPPORTED_ORDER - 2,11
OFPBAC_BAD_TAG - 2,12
OFPBAC_BAD_SET_TYPE 1,523 2,13
OFPBAC_BAD_SET_LEN 1,524 2,14
OFPBAC_BAD_SET_ARGUMENT 1,525 2,15
OFPBIC_UNKNOWN_INST - 3,0
OFPBIC_UNSUP_INST 2,257 3,1
OFPBIC_BAD_TABLE_ID - 3,2
OFPBIC_UNSUP_METADATA - 3,3
OFPBIC_UNSUP_METADATA_MASK - 3,4
OFPBIC_BAD_EXPERIMENTER - 3,5
OFPBIC_BAD_EXP_TYPE - 3,6
OFPBIC_BAD_LEN - 3,7
OFPBIC_EPERM - 3,8
OFPBMC_BAD_TYPE - 4,0
OFPBMC_BAD_LEN - 4,1
OFPBMC_BAD_TAG - 4,2
OFPBMC_BAD_DL_ADDR_MASK - 4,3
OFPBMC_BAD_NW_ADDR_MASK - 4,4
OFPBMC_BAD_WILDCARDS 1,262 4,5
OFPBMC_BAD_FIELD 0,263 4,6
OFPBMC_BAD_VALUE 1,258 4,7
OFPBMC_BAD_MASK 1,259 4,8
OFPBMC_BAD_PREREQ 1,260 4,9
OFPBMC_DUP_FIELD 1,261 4,10
OFPBMC_EPERM - 4,11
OFPFMFC_UNKNOWN - 5,0
OFPFMFC_TABLE_FULL 3,0 5,1
OFPFMFC_BAD_TABLE_ID 5,257 5,2
OFPFMFC_OVERLAP 3,1 5,3
OFPFMFC_EPERM 3,2 5,4
OFPFMFC_BAD_TIMEOUT 3,3 5,5
OFPFMFC_BAD_COMMAND 3,4 5,6
OFPFMFC_BAD_FLAGS 3,258 5,7
OFPFMFC_UNSUPPORTED 3,5 -
OFPGMFC_GROUP_EXISTS - 6,0
OFPGMFC_INVALID_GROUP - 6,1
OFPGMFC_WEIGHT_UNSUPPORTED - 6,2
OFPGMFC_OUT_OF_GROUPS - 6,3
OFPGMFC_OUT_OF_BUCKETS - 6,4
OFPGMFC_CHAINING_UNSUPPORTED - 6,5
OFPGMFC_WATCH_UNSUPPORTED - 6,6
OFPGMFC_LOOP - 6,7
OFPGMFC_UNKNOWN_GROUP - 6,8
OFPGMFC_CHAINED_GROUP - 6,9
OFPGMFC_BAD_TYPE - 6,10
OFPGMFC_BAD_COMMAND - 6,11
OFPGMFC_BAD_BUCKET - 6,12
OFPGMFC_BAD_WATCH - 6,13
OFPGMFC_EPERM - 6,14
OFPPMFC_BAD_PORT 4,0 7,0
OFPPMFC_BAD_HW_ADDR 4,1 7,1
OFPPMFC_BAD_CONFIG - 7,2
OFPPMFC_BAD_ADVERTISE - 7,3
OFPPMFC_EPERM - 7,4
OFPTMFC_BAD_TABLE - 8,0
OFPTMFC_BAD_CONFIG - 8,1
OFPTMFC_EPERM - 8,2
OFPQOFC_BAD_PORT 5,0 9,0
OFPQOFC_BAD_QUEUE 5,1 9,1
OFPQOFC_EPERM 5,2 9,2
OFPSCFC_BAD_FLAGS - 10,0
OFPSCFC_BAD_LEN - 10,1
OFPSCFC_EPERM - 10,2
OFPRRFC_STALE - 11,0
OFPRRFC_UNSUP - 11,1
OFPRRFC_BAD_ROLE 1,513 11,2
OFPMMFC_UNKNOWN - 12,0
OFPMMFC_METER_EXISTS - 12,1
OFPMMFC_INVALID_METER - 12,2
OFPMMFC_UNKNOWN_METER - 12,3
OFPMMFC_BAD_COMMAND - 12,4
OFPMMFC_BAD_FLAGS - 12,5
OFPMMFC_BAD_RATE - 12,6
OFPMMFC_BAD_BURST - 12,7
OFPMMFC_BAD_BAND - 12,8
OFPMMFC_BAD_BAND_VALUE - 12,9
OFPMMFC_OUT_OF_METERS - 12,10
OFPMMFC_OUT_OF_BANDS - 12,11
OFPTFFC_BAD_TABLE - 13,0
OFPTFFC_BAD_METADATA - 13,1
OFPTFFC_BAD_TYPE - 13,2
OFPTFFC_BAD_LEN - 13,3
OFPTFFC_BAD_ARGUMENT - 13,4
OFPTFFC_EPERM - 13,5
"""


def _parse_table():
    by_version = {OFP10: {}, OFP13: {}}
    for line in _TABLE.split("\n"):
        if not line:
            continue
        name, c10, c13 = line.split()
        for version, text in ((OFP10, c10), (OFP13, c13)):
            if text != "-":
                by_version[version][name] = tuple(int(x) for x in text.split(","))
    return by_version


ERROR_CODES = _parse_table()                        # version -> name -> (t, c)
ERROR_NAMES = {v: {tc: n for n, tc in reversed(list(t.items()))}
               for v, t in ERROR_CODES.items()}    # version -> (t, c) -> name
ERROR_NAMES[OFP10][(1, 5)] = "OFPBRC_EPERM"


def codes(name, version):
    """(type, code) of error `name` in `version` (1.0: Open vSwitch's
    NXBRC_UNENCODABLE_ERROR when OpenFlow 1.0 has no such error)."""
    table = ERROR_CODES[version]
    if name in table:
        return table[name]
    if version == OFP10:
        return table["NXBRC_UNENCODABLE_ERROR"]
    raise KeyError(name)


def error_name(version, etype, code):
    """The name of (type, code) in `version`, or None if unknown."""
    return ERROR_NAMES.get(version, {}).get((etype, code))


class OFError(Exception):
    """A message the switch must refuse: `name` is the OFPT_ERROR to send
    (e.g. "OFPBRC_BAD_LEN"), `data` the offending message (whole; the Error
    message carries its first 64 bytes), `version`/`xid` from its header."""

    def __init__(self, name, detail="", data=b"", version=None, xid=0):
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name, self.detail, self.data = name, detail, data
        self.version, self.xid = version, xid

    @property
    def type(self):
        return codes(self.name, self.version or OFP13)[0]

    @property
    def code(self):
        return codes(self.name, self.version or OFP13)[1]


class FramingError(OFError):
    """The stream itself is broken (length < 8 or > max): close the
    connection after sending the error."""


def error_for(exc, version=None, xid=None):
    """The messages.Error the switch sends in answer to OFError `exc`."""
    from pyvswitch.openflow.messages import Error
    return Error(exc.name, exc.data[:ERROR_DATA_MAX])


# --- header and framing ----------------------------------------------------------
def parse_header(data):
    """(version, type, length, xid) of the message at the start of `data`."""
    if len(data) < HEADER.size:
        raise FramingError("OFPBRC_BAD_LEN", "shorter than a header", bytes(data))
    return HEADER.unpack_from(data)


def pack_header(version, mtype, length, xid):
    return HEADER.pack(version, mtype, length, xid & 0xFFFFFFFF)


class Framer:
    """Cut a byte stream into whole OpenFlow messages.

    feed(bytes) -> list of complete messages (bytes); a partial message
    stays buffered. A length below 8 or above `max_len` raises FramingError
    (the stream is then unusable)."""

    def __init__(self, max_len=MAX_LEN):
        self.max_len = max_len
        self._buf = bytearray()

    def feed(self, data):
        self._buf += data
        out = []
        while len(self._buf) >= HEADER.size:
            version, _, length, xid = HEADER.unpack_from(self._buf)
            if length < HEADER.size or length > self.max_len:
                head = bytes(self._buf[:ERROR_DATA_MAX])
                raise FramingError("OFPBRC_BAD_LEN", f"message length {length}",
                                   head, version, xid)
            if len(self._buf) < length:
                break
            out.append(bytes(self._buf[:length]))
            del self._buf[:length]
        return out

    @property
    def pending(self):
        return len(self._buf)


def split(data, max_len=MAX_LEN):
    """All messages in `data` (which must hold only whole messages)."""
    framer = Framer(max_len)
    msgs = framer.feed(data)
    if framer.pending:
        raise FramingError("OFPBRC_BAD_LEN", "truncated message", bytes(data[-framer.pending:]))
    return msgs


# --- dispatch to the codecs ---------------------------------------------------------
def _codec(version):
    if version == OFP10:
        from pyvswitch.openflow import codec10
        return codec10
    if version == OFP13:
        from pyvswitch.openflow import codec13
        return codec13
    return None


def decode(data, flow_mod_table_id=False):
    """(version, xid, message) of one whole message; raises OFError only.

    `flow_mod_table_id`: the peer turned NXT_FLOW_MOD_TABLE_ID on (OpenFlow
    1.0 flow mods then carry a table id in the command's high byte).

    A hello of any version decodes (version negotiation needs it); other
    messages of an unsupported version raise OFPBRC_BAD_VERSION."""
    data = bytes(data)
    version, mtype, length, xid = parse_header(data)
    if length != len(data):
        raise OFError("OFPBRC_BAD_LEN", f"header says {length}, got {len(data)}",
                      data, version, xid)
    codec = _codec(version)
    if codec is None:
        if mtype == 0:
            from pyvswitch.openflow import codec13
            return version, xid, codec13.decode_hello_any(data)
        raise OFError("OFPBRC_BAD_VERSION", f"version {version:#x}", data,
                      OFP13, xid)
    try:
        return version, xid, codec.decode_body(
            mtype, data, flow_mod_table_id=flow_mod_table_id)
    except OFError as e:
        e.data, e.version, e.xid = data, version, xid
        raise


def encode(msg, version, xid=0):
    """Bytes of message `msg` in `version`; raises EncodeError if `msg` has
    no form in that version (e.g. a meter-mod in OpenFlow 1.0)."""
    codec = _codec(version)
    if codec is None:
        raise EncodeError(f"unsupported OpenFlow version {version:#x}")
    return codec.encode(msg, xid)


class EncodeError(ValueError):
    """A message (or a match/action in it) has no encoding in this version."""
