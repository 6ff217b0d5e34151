"""An OpenFlow client for pvs-ofctl: connect, negotiate, ask, collect replies.

What: `OfClient(target, rundir, versions)` opens a blocking connection to
- a bridge name: the daemon's `<rundir>/<bridge>.mgmt` (as ovs-ofctl's
  `br0` -> `/var/run/openvswitch/br0.mgmt`),
- `unix:PATH` or a path to a socket,
- `tcp:HOST[:PORT]` (port 6653 by default),
sends a hello with the allowed versions' bitmap and takes the highest common
version. `transact(msg)` sends one request and returns its replies (all
parts of a multipart reply); `send_all(msgs)` sends several requests and a
barrier and returns the errors they drew (ovs-ofctl's way of checking
flow-mods). An OFPT_ERROR answer raises `OfError` with the error's name.

Transaction ids come from an `Xids` counter that the connections of one
command share, the hello included, as in Open vSwitch's vconn: a command's
first request is xid 2, and a second connection's hello takes the next one,
so the xids pvs-ofctl prints are those ovs-ofctl prints.

Threads: the caller's only. No daemon internals: this is the wire protocol.
"""

import os
import socket

from pyvswitch.core import paths
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire

VERSION_NAMES = {"OpenFlow10": wire.OFP10, "OpenFlow13": wire.OFP13}
DEFAULT_VERSIONS = (wire.OFP10, wire.OFP13)
DEFAULT_PORT = 6653
MULTIPART = (M.DescReply, M.FlowStatsReply, M.AggregateStatsReply, M.TableStatsReply,
             M.PortStatsReply, M.PortDescReply, M.GroupStatsReply, M.GroupDescReply,
             M.GroupFeaturesReply, M.MeterStatsReply, M.MeterConfigReply,
             M.MeterFeaturesReply, M.TableFeaturesReply)


class Xids:
    """The transaction ids of one command (shared by its connections)."""

    def __init__(self):
        self.last = 0

    def next(self):
        self.last += 1
        return self.last

    def skip(self, n):
        self.last += n


class OfClientError(Exception):
    """Could not talk to the switch (str = the message pvs-ofctl prints)."""


class OfError(OfClientError):
    """The switch answered with an OFPT_ERROR."""

    def __init__(self, error, xid, version=None):
        name = error.name or f"type {error.type} code {error.code}"
        tag = " (OF1.3)" if version == wire.OFP13 else ""
        super().__init__(f"OFPT_ERROR{tag} (xid={xid:#x}): {name}")
        self.error, self.xid = error, xid


def parse_versions(text):
    """-O value ("OpenFlow13", "OpenFlow10,OpenFlow13") -> versions."""
    if not text:
        return DEFAULT_VERSIONS
    out = []
    for word in text.split(","):
        word = word.strip()
        if word not in VERSION_NAMES:
            raise OfClientError(f"{word}: unknown or unsupported OpenFlow version "
                                f"(supported: {', '.join(VERSION_NAMES)})")
        out.append(VERSION_NAMES[word])
    return tuple(sorted(set(out)))


def resolve_target(target, rundir=None):
    """(family, address) for a bridge name, unix:PATH, tcp:HOST[:PORT] or a path."""
    kind, sep, rest = target.partition(":")
    if sep and kind == "unix":
        return socket.AF_UNIX, rest
    if sep and kind == "tcp":
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        try:
            return socket.AF_INET, (host, int(port) if port else DEFAULT_PORT)
        except ValueError:
            raise OfClientError(f"{target}: bad port") from None
    if "/" in target:
        return socket.AF_UNIX, target
    path = os.path.join(paths.rundir(rundir), f"{target}.mgmt")
    if not os.path.exists(path):
        raise OfClientError(f"{target} is not a bridge or a socket")
    return socket.AF_UNIX, path


class OfClient:
    def __init__(self, target, rundir=None, versions=DEFAULT_VERSIONS, timeout=30.0,
                 xids=None):
        family, addr = resolve_target(target, rundir)
        self.xids = xids if xids is not None else Xids()
        self.target, self.versions = target, tuple(versions)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(addr)
        except OSError as e:
            self.sock.close()
            raise OfClientError(f"{target}: failed to connect to socket "
                                f"({e.strerror or e})") from None
        self.framer = wire.Framer()
        self.pending = []
        self.version = None
        self._hello()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- transport ----------------------------------------------------------------
    def _send(self, msg, version, xid):
        try:
            data = wire.encode(msg, version, xid)
        except wire.EncodeError as e:
            name = {wire.OFP10: "OpenFlow10", wire.OFP13: "OpenFlow13"}.get(version, version)
            raise OfClientError(f"cannot send this request in {name}: {e}") from None
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise OfClientError(f"{self.target}: send failed ({e.strerror or e})") from None

    def _recv(self):
        """The next whole message, decoded: (version, xid, msg)."""
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise OfClientError(f"{self.target}: timed out waiting for a reply") from None
            except OSError as e:
                raise OfClientError(f"{self.target}: receive failed ({e.strerror or e})") from None
            if not data:
                raise OfClientError(f"{self.target}: connection closed by the switch")
            try:
                self.pending.extend(self.framer.feed(data))
            except wire.FramingError as e:
                raise OfClientError(f"{self.target}: bad message from the switch ({e})") from None
        raw = self.pending.pop(0)
        try:
            return wire.decode(raw)
        except wire.OFError as e:
            raise OfClientError(f"{self.target}: cannot decode a reply ({e})") from None

    def _hello(self):
        self._send(M.Hello(self.versions), max(self.versions), self.xids.next())
        version, _, msg = self._recv()
        if isinstance(msg, M.Error):
            raise OfClientError(f"{self.target}: version negotiation failed "
                                f"({msg.name}: {msg.data.decode(errors='replace')})")
        if not isinstance(msg, M.Hello):
            raise OfClientError(f"{self.target}: expected a hello, got {type(msg).__name__}")
        theirs = set(msg.versions) if msg.versions else {v for v in self.versions
                                                         if v <= version}
        common = set(self.versions) & theirs
        if not common:
            raise OfClientError(f"{self.target}: version negotiation failed (we support "
                                f"{_names(self.versions)}, peer supports {_names(theirs)})")
        self.version = max(common)

    @property
    def xid(self):
        """The last xid used (the next request gets xid + 1)."""
        return self.xids.last

    def next_xid(self):
        return self.xids.next()

    def send(self, msg):
        xid = self.next_xid()
        self._send(msg, self.version, xid)
        return xid

    def _reply_to(self, xid):
        while True:
            _, rxid, msg = self._recv()
            if isinstance(msg, M.EchoRequest):
                self._send(M.EchoReply(msg.data), self.version, rxid)
                continue
            if rxid == xid:
                return msg

    # --- requests -------------------------------------------------------------------
    def transact(self, msg):
        """Replies to one request (several for a multipart reply)."""
        xid = self.send(msg)
        out = []
        while True:
            reply = self._reply_to(xid)
            if isinstance(reply, M.Error):
                raise OfError(reply, xid, self.version)
            out.append(reply)
            if not (isinstance(reply, MULTIPART) and reply.flags & 1):
                return out

    def send_all(self, msgs):
        """Send requests that have no reply, then a barrier; returns the
        [(index, OfError)] they drew."""
        xids = {self.send(m): i for i, m in enumerate(msgs)}
        bxid = self.send(M.BarrierRequest())
        errors = []
        while True:
            _, rxid, msg = self._recv()
            if isinstance(msg, M.EchoRequest):
                self._send(M.EchoReply(msg.data), self.version, rxid)
            elif isinstance(msg, M.Error) and rxid in xids:
                errors.append((xids[rxid], OfError(msg, rxid, self.version)))
            elif rxid == bxid and isinstance(msg, M.BarrierReply):
                return errors


def _names(versions):
    names = {v: k for k, v in VERSION_NAMES.items()}
    return ", ".join(names.get(v, f"{v:#x}") for v in sorted(versions))
