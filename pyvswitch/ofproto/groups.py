"""Group and meter tables of one bridge.

What: `GroupTable` keeps OpenFlow groups (all, select, indirect, ff) built
from messages.GroupMod (what the wire codecs and the text syntax both
produce), with OpenFlow's rules: add of an existing id fails
(OFPGMFC_GROUP_EXISTS), modify of a missing one fails (OFPGMFC_UNKNOWN_GROUP),
indirect groups have exactly one bucket, select buckets need a weight, ff
buckets a watch port or group, delete of OFPG_ALL removes every group, and a
chain of groups may not loop (OFPGMFC_LOOP). Each group and bucket carries
counters (n_packets, n_bytes, used) that xlate hands to the revalidator like
rules.

`MeterTable` keeps meters from messages.MeterMod: kbps or pktps, optional
burst, drop bands (dscp_remark accepted and shown, not applied), with flow
counts and per-band counters. The datapath enforces the drop band with the
lowest rate: each meter owns an int64 token-bucket row (the layout of
datapath/kernels/meter.py, repeated below since ofproto may not import the
datapath; a unit test holds the two equal) whose address xlate puts in
('meter', addr) actions. Rows are never freed (a megaflow may still point at
one); a modified meter gets a fresh row, a deleted one keeps its row.

A bad mod raises OfprotoError with the OpenFlow error name and changes
nothing. Single-threaded: the ofproto's owner thread.
"""

from dataclasses import dataclass, field

import numpy as np

from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M


class Counter:
    """Anything the revalidator credits: rules, groups, buckets, meters."""
    n_packets = n_bytes = 0
    used = 0.0


@dataclass(eq=False)
class Group(Counter):
    group_id: int
    group_type: str
    buckets: tuple
    created: float = 0.0
    bucket_stats: list = field(default_factory=list)
    n_packets: int = 0
    n_bytes: int = 0
    used: float = 0.0

    def __post_init__(self):
        self.bucket_stats = [Counter() for _ in self.buckets]
        self.used = self.created

    def desc(self):
        return M.GroupDesc(self.group_type, self.group_id, tuple(self.buckets))


def _err(text, code):
    from pyvswitch.ofproto.ofproto import OfprotoError
    return OfprotoError(text, code)


class GroupTable(dict):
    def check(self, gm):
        if gm.group_type not in M.GROUP_TYPES:
            raise _err(f"unknown group type {gm.group_type}", "OFPGMFC_BAD_TYPE")
        if gm.group_id > M.OFPG_MAX and gm.command != "delete":
            raise _err(f"group id {gm.group_id:#x} is reserved", "OFPGMFC_INVALID_GROUP")
        if gm.group_type == "indirect" and len(gm.buckets) != 1:
            raise _err("an indirect group needs exactly one bucket",
                       "OFPGMFC_INVALID_GROUP")
        for b in gm.buckets:
            if gm.group_type == "select" and b.weight == 0 and len(gm.buckets) > 1:
                raise _err("select group buckets need a weight", "OFPGMFC_BAD_BUCKET")
            if gm.group_type == "ff" and b.watch_port in (F.OFPP_NONE, 0xFFFFFFFF) \
                    and b.watch_group == M.OFPG_ANY:
                raise _err("fast failover buckets need watch_port or watch_group",
                           "OFPGMFC_BAD_WATCH")
            for a in b.actions:
                gid = getattr(a, "group_id", None)
                if gid is not None and gid not in self and gid != gm.group_id:
                    raise _err(f"bucket sends to unknown group {gid}",
                               "OFPGMFC_CHAINING_UNSUPPORTED")
        if self._loops(gm.group_id, gm.buckets):
            raise _err(f"group {gm.group_id} would loop", "OFPGMFC_LOOP")

    def _loops(self, root, buckets, seen=()):
        for b in buckets:
            for a in b.actions:
                gid = getattr(a, "group_id", None)
                if gid is None:
                    continue
                if gid == root or gid in seen:
                    return True
                g = self.get(gid)
                if g is not None and self._loops(root, g.buckets, seen + (gid,)):
                    return True
        return False

    def mod(self, gm, now):
        """Apply a GroupMod; returns the deleted group ids."""
        if gm.command == "delete":
            ids = list(self) if gm.group_id == M.OFPG_ALL else (
                [gm.group_id] if gm.group_id in self else [])
            for gid in ids:
                del self[gid]
            return ids
        self.check(gm)
        if gm.command == "add" and gm.group_id in self:
            raise _err(f"group {gm.group_id} already exists", "OFPGMFC_GROUP_EXISTS")
        if gm.command == "modify" and gm.group_id not in self:
            raise _err(f"group {gm.group_id} does not exist", "OFPGMFC_UNKNOWN_GROUP")
        self[gm.group_id] = Group(gm.group_id, gm.group_type, tuple(gm.buckets), now)
        return []

    def stats(self, gid, now, ref_count):
        g = self[gid]
        dur = max(0.0, now - g.created)
        return M.GroupStats(gid, ref_count, g.n_packets, g.n_bytes, int(dur),
                            int(dur % 1 * 1e9),
                            tuple((b.n_packets, b.n_bytes) for b in g.bucket_stats))


# datapath/kernels/meter.py's row layout
M_RATE, M_CAP, M_TOKENS, M_LAST_NS, M_PKTPS = 0, 1, 2, 3, 4
M_PASS_PKTS, M_PASS_BYTES, M_DROP_PKTS, M_DROP_BYTES = 5, 6, 7, 8
METER_COLS = 10
_ROWS = []      # every row ever handed to the datapath stays alive


@dataclass(eq=False)
class Meter(Counter):
    meter_id: int
    flags: int
    bands: tuple
    created: float = 0.0
    band_stats: list = field(default_factory=list)
    n_packets: int = 0
    n_bytes: int = 0
    used: float = 0.0
    row: object = None          # the token bucket (np.int64[METER_COLS])
    band: int = -1              # index of the enforced drop band

    def __post_init__(self):
        self.band_stats = [Counter() for _ in self.bands]
        drops = [i for i, b in enumerate(self.bands) if b.type == "drop"]
        if drops:
            self.band = min(drops, key=lambda i: self.bands[i].rate)
            b = self.bands[self.band]
            pktps = bool(self.flags & M.METER_PKTPS)
            burst = b.burst_size if self.flags & M.METER_BURST and b.burst_size else b.rate
            row = np.zeros(METER_COLS, np.int64)
            row[M_RATE] = b.rate
            row[M_CAP] = row[M_TOKENS] = burst * 1000
            row[M_PKTPS] = int(pktps)
            _ROWS.append(row)
            self.row = row

    @property
    def address(self):
        return int(self.row.ctypes.data) if self.row is not None else None

    def counts(self):
        """(packets in, bytes in, per-band (packets, bytes)) from the datapath
        row plus what the slow path counted."""
        r = self.row
        if r is None:
            return self.n_packets, self.n_bytes, [(0, 0) for _ in self.bands]
        pk = int(r[M_PASS_PKTS] + r[M_DROP_PKTS])
        by = int(r[M_PASS_BYTES] + r[M_DROP_BYTES])
        bands = [(int(r[M_DROP_PKTS]), int(r[M_DROP_BYTES])) if i == self.band else (0, 0)
                 for i in range(len(self.bands))]
        return pk, by, bands


class MeterTable(dict):
    MAX = 65536

    def mod(self, mm, now):
        mid = mm.meter_id
        if mm.command == "delete":
            ids = list(self) if mid == M.OFPM_ALL else ([mid] if mid in self else [])
            for m in ids:
                del self[m]
            return ids
        if not 0 < mid <= M.OFPM_MAX:
            raise _err(f"meter id {mid:#x} is invalid", "OFPMMFC_INVALID_METER")
        if mm.flags & M.METER_KBPS and mm.flags & M.METER_PKTPS:
            raise _err("a meter is kbps or pktps, not both", "OFPMMFC_BAD_FLAGS")
        if not mm.bands:
            raise _err("a meter needs at least one band", "OFPMMFC_INVALID_METER")
        for b in mm.bands:
            if b.type not in ("drop", "dscp_remark"):
                raise _err(f"unknown band type {b.type}", "OFPMMFC_BAD_BAND")
            if b.rate == 0:
                raise _err("band rate must not be 0", "OFPMMFC_BAD_RATE")
            if b.burst_size and not mm.flags & M.METER_BURST:
                raise _err("burst_size needs the burst flag", "OFPMMFC_BAD_BURST")
        if mm.command == "add" and mid in self:
            raise _err(f"meter {mid} already exists", "OFPMMFC_METER_EXISTS")
        if mm.command == "modify" and mid not in self:
            raise _err(f"meter {mid} does not exist", "OFPMMFC_UNKNOWN_METER")
        if mm.command == "add" and len(self) >= self.MAX:
            raise _err("too many meters", "OFPMMFC_OUT_OF_METERS")
        self[mid] = Meter(mid, mm.flags, tuple(mm.bands), now)
        return []

    def stats(self, mid, now, flow_count):
        m = self[mid]
        dur = max(0.0, now - m.created)
        packets, nbytes, bands = m.counts()
        return M.MeterStats(mid, flow_count, packets, nbytes, int(dur),
                            int(dur % 1 * 1e9), tuple(bands))
