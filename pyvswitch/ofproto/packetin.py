"""The controller path of one bridge: what a ('userspace', arg) means.

What: xlate turns a controller action (or dec_ttl's expired TTL) into the
datapath action ('userspace', arg). `controller_arg(...)` returns the arg for
an entry (reason, max_len, table, cookie, userdata, controller id, pipeline
fields at that point) and keeps it in a table: equal entries share one arg,
so translations stay cacheable in megaflows. When the datapath hands the
packet back, `packet_in(packet, arg, key, now)` builds a messages.PacketIn
(data cut to max_len, the ofport as in_port, registers and metadata in its
match) and gives it to `self.on_packet_in(event)`, set by the connection
manager; with none set the event is counted and dropped.

Threads: packet_in runs on a PMD thread under the switch lock; it must not
block (the consumer queues the event). controller_arg runs in xlate.
The table only grows (one entry per distinct controller action outcome).
"""

from pyvswitch.datapath import layout
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.openflow.match import Match

REASONS = {"no_match": 0, "action": 1, "invalid_ttl": 2}
NO_BUFFER_LEN = 0xFFFF


class PacketInMixin:
    def __init__(self):
        self._on_packet_in = None         # callable(M.PacketIn), set by connmgr
        self._ctl_args = {}               # entry tuple -> arg
        self._ctl_entries = {}            # arg -> entry tuple
        self.packet_in_stats = {"packet_in": 0, "dropped": 0, "unknown_arg": 0}

    @property
    def on_packet_in(self):
        return self._on_packet_in

    @on_packet_in.setter
    def on_packet_in(self, fn):
        """Translations depend on whether packet-ins have a consumer (dec_ttl
        on an expired TTL): gaining or losing one bumps the version."""
        had = self._on_packet_in is not None
        self._on_packet_in = fn
        if had != (fn is not None):
            self.bump()

    def controller_arg(self, reason, max_len, table_id, cookie, userdata=b"",
                       controller_id=0, pipeline=()):
        entry = (reason, max_len, table_id, cookie, bytes(userdata), controller_id,
                 tuple(pipeline))
        arg = self._ctl_args.get(entry)
        if arg is None:
            arg = self._ctl_args[entry] = len(self._ctl_args) + 1
            self._ctl_entries[arg] = entry
        return arg

    def controller_entry(self, arg):
        """(reason, max_len, table, cookie, userdata, controller_id, pipeline)."""
        return self._ctl_entries.get(arg)

    def packet_in(self, packet, arg, key, now):
        stats = self.packet_in_stats
        entry = self._ctl_entries.get(arg)
        if entry is None:
            stats["unknown_arg"] += 1
            return None
        reason, max_len, table_id, cookie, _userdata, _cid, pipeline = entry
        port = self.port_by_dp(layout.get_field(key, "in_port"))
        in_port = port.ofport if port is not None else F.OFPP_NONE
        data = bytes(packet) if max_len == NO_BUFFER_LEN else bytes(packet[:max_len])
        match = Match({"in_port": in_port, **dict(pipeline)})
        event = M.PacketIn(M.NO_BUFFER, len(packet), REASONS[reason], in_port, data,
                           table_id, cookie, match)
        stats["packet_in"] += 1
        if self.on_packet_in is None:
            stats["dropped"] += 1
            return event
        self.on_packet_in(event)
        return event
