"""One OpenFlow connection, switch side: framing, hello, echo, per-peer state.

What: `OfConn` owns one connected non-blocking stream socket (unix or TCP).
It sends our hello at once, negotiates the version from the peer's hello
(bitmap element if present, else the header version, as OpenFlow 1.3.1+
says), answers echo requests, sends inactivity probes and closes the
connection when a probe goes unanswered, and turns every other message into
`handler(conn, xid, msg)` calls. An `OFError` raised by the decoder or by the
handler becomes the OFPT_ERROR for that request; any other exception is a bug
in the switch: it is logged and answered with OFPBRC_EPERM, never allowed to
reach the event loop.

Per-connection OpenFlow state lives here too: role and its generation id,
async-message masks, miss_send_len and config flags, the 1.0 Nicira flow
format and NXT_FLOW_MOD_TABLE_ID.

Bounded slices (a flooding peer starves nobody): one `on_readable` reads at
most READ_CHUNK bytes; whole messages queue in `inbox` and `run_slice`
handles at most SLICE_MSGS of them, starting none after SLICE_TIME. A peer that does not read its replies
stops being read once OUTQ_MAX bytes are waiting to go out (back-pressure);
reading resumes when the queue drains. `busy` tells the owner to come back
soon (it wakes the event loop instead of sleeping).

Threads: main thread only (the daemon's selector loop).
"""

import collections
import errno
import selectors
import socket
import time
import traceback

from pyvswitch.core import vlog
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire

log = vlog.Module("ofconn")

READ_CHUNK = 65536
SLICE_MSGS = 256
SLICE_TIME = 0.02                # s of handling per connection per loop turn
OUTQ_MAX = 4 << 20
INBOX_MAX = 1024

# Async masks (OpenFlow 1.3 ofp_async_config): (master/equal, slave) bitmaps.
# packet-in reasons: no_match, action; port-status: add, delete, modify;
# flow-removed: idle, hard, delete, group_delete.
PRIMARY_ASYNC = ((0x3, 0x0), (0x7, 0x7), (0xF, 0x0))
SERVICE_ASYNC = ((0x0, 0x0), (0x0, 0x0), (0x0, 0x0))


def version_bitmap(versions):
    return tuple(sorted(versions))


class OfConn:
    """kind: "primary" (a controller: async messages, counts for fail-mode)
    or "service" (management socket: no async messages unless asked)."""

    def __init__(self, sock, name, kind, versions, handler, sel, now,
                 probe_interval=0.0, on_close=None):
        self.sock, self.name, self.kind = sock, name, kind
        self.versions = frozenset(versions)
        self.handler, self.sel = handler, sel
        self.probe_interval = probe_interval
        self.on_close = on_close
        self.version = None            # negotiated
        self.framer = wire.Framer()
        self.inbox = collections.deque()
        self.outq = bytearray()
        self.closed = self.eof = False
        self.error = ""
        self.last_rx = self.connected_at = now
        self.probe_sent = None
        self._events = 0
        self.xid = 0x10000
        # OpenFlow session state
        self.role, self.generation_id = "equal", None
        self.async_cfg = PRIMARY_ASYNC if kind == "primary" else SERVICE_ASYNC
        # OVS: controllers get 128 bytes of a missed packet, service
        # connections (ovs-ofctl) none until they set miss_send_len.
        self.config_flags = 0
        self.miss_send_len = 128 if kind == "primary" else 0
        self.flow_format, self.flow_mod_table_id = "openflow10", False
        self.counters = collections.Counter()
        sock.setblocking(False)
        self._send_raw(wire.encode(M.Hello(version_bitmap(self.versions)),
                                   max(self.versions)))
        self._update_events()

    # --- selector plumbing -------------------------------------------------------
    def _update_events(self):
        if self.closed:
            return
        want = 0
        if len(self.outq) < OUTQ_MAX and len(self.inbox) < INBOX_MAX and not self.eof:
            want |= selectors.EVENT_READ
        if self.outq:
            want |= selectors.EVENT_WRITE
        if want == self._events:
            return
        if self._events == 0:
            self.sel.register(self.sock, want, self._on_event)
        elif want == 0:
            self.sel.unregister(self.sock)
        else:
            self.sel.modify(self.sock, want, self._on_event)
        self._events = want

    def _on_event(self, sock):
        # selectors gives no mask to a callback: try both directions.
        if self.outq:
            self.flush()
        if not self.closed and self._events & selectors.EVENT_READ:
            self.on_readable()

    @property
    def busy(self):
        """Whole messages wait to be handled (the owner should run again soon)."""
        return bool(self.inbox) and not self.closed

    # --- input -------------------------------------------------------------------------
    def on_readable(self):
        try:
            data = self.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.close(f"receive error: {e.strerror or e}")
            return
        if not data:
            if not self.inbox:
                self.close("connection closed by peer")
                return
            self.eof = True            # answer what it sent first, then close
            self._update_events()
            return
        try:
            msgs = self.framer.feed(data)
        except wire.FramingError as e:
            self._send_error(e, e.version if e.version in wire.VERSIONS else None)
            self.close(f"framing error: {e}")
            return
        self.inbox.extend(msgs)
        self._update_events()

    def run_slice(self, now, limit=SLICE_MSGS, budget=SLICE_TIME):
        """Handle queued messages: at most `limit`, and no new one once
        `budget` seconds went by (a scheduling bound, measured on the
        processor clock). Returns how many."""
        n = 0
        start = time.perf_counter()
        while self.inbox and n < limit and not self.closed and (
                n == 0 or time.perf_counter() - start < budget):
            raw = self.inbox.popleft()
            self.last_rx, self.probe_sent = now, None
            self._handle_raw(raw)
            n += 1
        if self.eof and not self.inbox and not self.closed:
            self.close("connection closed by peer")
        self._update_events()
        return n

    def _handle_raw(self, raw):
        self.counters["rx"] += 1
        mtype = raw[1]
        if self.version is None:
            if mtype != 0:
                self._hello_failed(raw, "first message is not a hello")
            else:
                self._negotiate(raw)
            return
        if raw[0] != self.version and mtype != 0:
            self._send_error(wire.OFError("OFPBRC_BAD_VERSION",
                                          f"version {raw[0]:#x}", raw,
                                          self.version, _xid(raw)))
            return
        try:
            _, xid, msg = wire.decode(raw, flow_mod_table_id=self.flow_mod_table_id)
        except wire.OFError as e:
            self.counters["bad"] += 1
            self._send_error(e)
            return
        try:
            self._dispatch(xid, msg, raw)
        except wire.OFError as e:
            e.data, e.xid = raw, xid
            self.counters["refused"] += 1
            self._send_error(e)
        except wire.EncodeError as e:   # the answer has no form in this version
            log.warn("%s: cannot answer %s in OpenFlow %s: %s", self.name,
                     type(msg).__name__, {1: "1.0", 4: "1.3"}[self.version], e)
            self._send_error(wire.OFError("OFPBRC_EPERM", str(e), raw, self.version, xid))
        except Exception as e:   # a bug here must not take the daemon down
            log.err("%s: handling %s failed: %s", self.name, type(msg).__name__,
                    traceback.format_exc())
            self._send_error(wire.OFError("OFPBRC_EPERM", str(e), raw, self.version, xid))

    def _dispatch(self, xid, msg, raw):
        if isinstance(msg, M.EchoRequest):
            self.send(M.EchoReply(msg.data), xid)
        elif isinstance(msg, (M.EchoReply, M.Hello)):
            pass
        elif isinstance(msg, M.Error):
            log.info("%s: peer sent error %s", self.name, msg.name or (msg.type, msg.code))
        else:
            self.handler(self, xid, msg)

    def _negotiate(self, raw):
        try:
            peer_version, _, hello = wire.decode(raw)
        except wire.OFError as e:
            self._hello_failed(raw, f"bad hello ({e})")
            return
        if hello.versions:
            common = self.versions & set(hello.versions)
        else:
            common = {v for v in self.versions if v <= peer_version}
        if not common:
            self._hello_failed(raw, f"no common version (we allow "
                               f"{sorted(self.versions)}, peer {peer_version:#x})")
            return
        self.version = max(common)
        log.info("%s: negotiated OpenFlow %s", self.name,
                 {1: "1.0", 4: "1.3"}[self.version])

    def _hello_failed(self, raw, why):
        version = min(self.versions)
        err = wire.OFError("OFPHFC_INCOMPATIBLE", why, raw, version, _xid(raw))
        self._send_raw(wire.encode(M.Error("OFPHFC_INCOMPATIBLE", why.encode()[:64]),
                                   version, _xid(raw)))
        self.close(str(err))

    # --- output --------------------------------------------------------------------------
    def next_xid(self):
        self.xid = (self.xid + 1) & 0xFFFFFFFF
        return self.xid

    def send(self, msg, xid=None):
        """Encode and queue `msg` in the negotiated version."""
        if self.closed or self.version is None:
            return False
        data = wire.encode(msg, self.version, self.next_xid() if xid is None else xid)
        self._send_raw(data)
        self.counters["tx"] += 1
        return True

    def _send_error(self, exc, version=None):
        version = version or self.version or exc.version
        if version not in wire.VERSIONS:
            version = min(self.versions)
        try:
            data = wire.encode(wire.error_for(exc), version, exc.xid)
        except (wire.EncodeError, KeyError):
            return
        self._send_raw(data)
        self.counters["errors_sent"] += 1

    def _send_raw(self, data):
        if self.closed:
            return
        self.outq += data
        self.flush()

    def flush(self):
        while self.outq and not self.closed:
            try:
                n = self.sock.send(self.outq)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.close(f"send error: {e.strerror or e}")
                return
            del self.outq[:n]
        self._update_events()

    # --- liveness ---------------------------------------------------------------------------
    def run(self, now):
        """Inactivity probe: an echo request after `probe_interval` of silence,
        disconnect after another interval without any answer."""
        if self.closed or not self.probe_interval:
            return
        if self.probe_sent is None:
            if now - self.last_rx >= self.probe_interval and self.version:
                self.send(M.EchoRequest(b""))
                self.probe_sent = now
        elif now - self.probe_sent >= self.probe_interval:
            self.close(f"no response to inactivity probe after "
                       f"{now - self.last_rx:.0f} seconds, disconnecting")

    def close(self, why=""):
        if self.closed:
            return
        if self.outq:   # one last try (an error message, a reply)
            try:
                self.sock.send(self.outq)
            except OSError:
                pass
        self.closed = True
        self.error = why
        if self._events:
            try:
                self.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self._events = 0
        try:
            self.sock.close()
        except OSError:
            pass
        self.inbox.clear()
        log.info("%s: %s", self.name, why or "closed")
        if self.on_close is not None:
            self.on_close(self)

    # --- async masks ---------------------------------------------------------------------------
    def wants(self, kind, reason):
        """Whether this connection takes an async message of `kind`
        ("packet_in", "port_status", "flow_removed") with numeric `reason`."""
        idx = {"packet_in": 0, "port_status": 1, "flow_removed": 2}[kind]
        mask = self.async_cfg[idx][1 if self.role == "slave" else 0]
        return self.version is not None and bool(mask >> reason & 1)


def _xid(raw):
    return int.from_bytes(raw[4:8], "big") if len(raw) >= 8 else 0


def connect_error(sock):
    """The pending error of a non-blocking connect (0 = connected)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EALREADY)
