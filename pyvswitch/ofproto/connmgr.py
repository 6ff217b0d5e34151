"""connmgr: one bridge's OpenFlow connections (controllers and listeners).

What (Open vSwitch's connmgr + rconn + pvconn, in small):
- the management listener `<rundir>/<bridge>.mgmt` (unix, mode 0600):
  "service" connections for pvs-ofctl / ovs-ofctl, which get no
  asynchronous messages unless they ask (set-async) and do not count as a
  controller for the fail mode;
- the Controller table's targets, "primary" connections: active `tcp:IP[:PORT]`
  (port 6653 by default) and `unix:PATH`, reconnecting with exponential
  backoff from 1 s up to max_backoff; passive `ptcp:PORT[:IP]` and
  `punix:PATH`, accepting any number of controllers;
- inactivity probes (Controller.inactivity_probe, ms; default 5000, 0 = off);
- the fail mode: "standalone" (the default) puts in a match-all NORMAL flow
  (table 0, priority 65535, cookie FAIL_OPEN_COOKIE) once controllers are
  configured but none has been connected for 3 probe intervals, and takes it
  out again as soon as one connects (Open vSwitch's fail-open; its rule is
  hidden, ours shows in dump-flows); "secure" never adds flows;
- roles: equal (default), master (the others become slaves), slave; the
  generation id of master/slave requests must not go backwards (STALE);
- asynchronous messages to the connections whose role and async masks want
  them: packet-in (queued by `packet_in` from any thread), flow-removed,
  port-status.

Connections are non-blocking sockets driven by the daemon's selector (no
threads). `run(now)` serves each connection a bounded slice, retries
controllers, probes, and applies fail-open; it returns True when work is
left over (the caller should not sleep).

Threads: main thread, except `packet_in`, which a PMD thread may call (it only
appends to a bounded deque and calls `wake`).
"""

import collections
import os
import selectors
import socket
from dataclasses import dataclass

from pyvswitch.core import vlog
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.text import FlowMod, parse_flow
from pyvswitch.ofproto import ofrequests
from pyvswitch.ofproto.ofconn import IN_PROGRESS, OfConn, connect_error

log = vlog.Module("connmgr")

DEFAULT_PORT = 6653
DEFAULT_PROBE = 5.0
DEFAULT_MAX_BACKOFF = 8.0
MAX_CONNS = 64                    # per listener
PACKET_IN_QUEUE = 1024
COMMIT_DELAY = 0.05               # s: longest a flow mod waits for revalidation
FAIL_OPEN_COOKIE = 0xFA11_0FE0
FAIL_OPEN_PRIORITY = 65535
VERSION_NAMES = {"OpenFlow10": wire.OFP10, "OpenFlow13": wire.OFP13}
DEFAULT_VERSIONS = frozenset((wire.OFP10, wire.OFP13))
REASONS = {"no_match": 0, "action": 1, "invalid_ttl": 2}


class SwitchView:
    """What connmgr needs from the switch (vswitchd/ofservice.py builds it):
    name, version (software), ofproto, lock (guards ofproto), now(),
    datapath_id() -> int, port_descs() -> [messages.PortDesc],
    port_stats(ofport) -> {counter: int} or None,
    packet_key(packet, dp_port) -> datapath flow key (layout.py) of a frame,
    execute(packet, datapath_actions, dp_in_port) (called without the lock),
    flows_changed() (revalidate cached translations; called without the lock)."""


@dataclass
class ControllerConfig:
    target: str
    max_backoff: float = DEFAULT_MAX_BACKOFF
    probe: float = DEFAULT_PROBE
    key: object = None            # the Controller row's uuid


def parse_target(target):
    """("tcp"|"unix"|"ptcp"|"punix", address) or ValueError."""
    kind, _, rest = target.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        if not host:
            raise ValueError(f"{target}: no host")
        return kind, (host.strip("[]"), int(port) if port else DEFAULT_PORT)
    if kind == "ptcp":
        port, _, ip = rest.partition(":")
        return kind, (ip.strip("[]") or "0.0.0.0", int(port) if port else DEFAULT_PORT)
    if kind in ("unix", "punix") and rest:
        return kind, rest
    raise ValueError(f"{target}: unsupported target")


def allowed_versions(protocols):
    """Bridge.protocols -> the OpenFlow versions we speak (default 1.0 and 1.3)."""
    if not protocols:
        return DEFAULT_VERSIONS
    return frozenset(VERSION_NAMES[p] for p in protocols if p in VERSION_NAMES)


# --- passive ---------------------------------------------------------------------------
class Listener:
    def __init__(self, mgr, target, kind, probe=0.0):
        self.mgr, self.target, self.kind, self.probe = mgr, target, kind, probe
        self.conns = []
        self.error = ""
        family, addr = parse_target(target)
        self.path = addr if family == "punix" else None
        if family == "punix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(addr):
                os.unlink(addr)
            old = os.umask(0o177)        # 0600 from the first instant
            try:
                self.sock.bind(addr)
            finally:
                os.umask(old)
            os.chmod(addr, 0o600)
        else:
            self.sock = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(addr)
        self.sock.listen(16)
        self.sock.setblocking(False)
        mgr.sel.register(self.sock, selectors.EVENT_READ, self._accept)

    def _accept(self, _sock):
        for _ in range(16):
            try:
                s, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.error = e.strerror or str(e)
                return
            if len(self.conns) >= MAX_CONNS:
                s.close()
                continue
            name = f"{self.target}<->{peer[0]}:{peer[1]}" if isinstance(peer, tuple) \
                else f"{self.target}"
            self.conns.append(self.mgr.new_conn(s, name, self.kind, self.probe,
                                                self._closed))

    def _closed(self, conn):
        if conn in self.conns:
            self.conns.remove(conn)
        self.mgr.conn_closed(conn)

    @property
    def connected(self):
        return any(c.version for c in self.conns)

    def state(self):
        return "ACTIVE" if self.connected else "LISTENING"

    def run(self, now):
        for c in list(self.conns):
            c.run(now)

    def close(self):
        for c in list(self.conns):
            c.close("listener removed")
        try:
            self.mgr.sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


# --- active ------------------------------------------------------------------------------
class Active:
    """An active controller connection with reconnect backoff."""

    def __init__(self, mgr, target, probe, max_backoff, now):
        self.mgr, self.target, self.probe = mgr, target, probe
        self.max_backoff = max(1.0, max_backoff)
        self.family, self.addr = parse_target(target)
        self.sock = None                 # while connecting
        self.conn = None                 # once connected
        self.conns = []
        self.backoff, self.next_try = 0.0, now
        self.connect_started = 0.0
        self.error = ""
        self.last_connected = self.last_disconnected = None

    @property
    def connected(self):
        return self.conn is not None and self.conn.version is not None

    def state(self):
        if self.conn is not None:
            return "ACTIVE"
        return "CONNECTING" if self.sock is not None else "BACKOFF"

    def run(self, now):
        if self.conn is not None:
            self.conn.run(now)
        elif self.sock is not None:
            if now - self.connect_started > max(self.backoff, 1.0) + 5.0:
                self._failed(now, "connection timed out")
        elif now >= self.next_try:
            self._connect(now)

    def _connect(self, now):
        fam = socket.AF_UNIX if self.family == "unix" else (
            socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET)
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(self.addr)
        self.connect_started = now
        if err in IN_PROGRESS:
            self.sock = s
            self.mgr.sel.register(s, selectors.EVENT_WRITE, self._connected)
        elif err == 0:
            self._up(s, now)
        else:
            s.close()
            self._failed(now, os.strerror(err))

    def _connected(self, s):
        try:
            self.mgr.sel.unregister(s)
        except (KeyError, ValueError):
            return                      # given up on meanwhile
        self.sock = None
        err = connect_error(s)
        if err:
            s.close()
            self._failed(self.mgr.now(), os.strerror(err))
        else:
            self._up(s, self.mgr.now())

    def _up(self, s, now):
        if self.family != "unix":
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.error = ""
        self.last_connected = now
        self.conn = self.mgr.new_conn(s, self.target, "primary", self.probe, self._closed)
        self.conns = [self.conn]

    def _closed(self, conn):
        now = self.mgr.now()
        lasted = now - (self.last_connected or now)
        self.conn, self.conns = None, []
        self.error = conn.error
        self.last_disconnected = now
        # A connection that lasted longer than the backoff starts over quickly.
        self.backoff = 1.0 if lasted > self.backoff else min(self.max_backoff,
                                                              max(1.0, self.backoff * 2))
        self.next_try = now + self.backoff
        self.mgr.conn_closed(conn)

    def _failed(self, now, why):
        if self.sock is not None:
            try:
                self.mgr.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None
        if why != self.error:
            log.info("%s: connection failed (%s)", self.target, why)
        self.error = why
        self.backoff = min(self.max_backoff, max(1.0, self.backoff * 2))
        self.next_try = now + self.backoff

    def close(self):
        if self.conn is not None:
            self.conn.on_close = None
            self.conn.close("controller removed")
            self.mgr.conn_closed(self.conn)
        if self.sock is not None:
            self._failed(self.mgr.now(), "controller removed")


# --- the manager -----------------------------------------------------------------------------
class ConnMgr:
    def __init__(self, view, sel, wake=lambda: None):
        self.view, self.sel, self.wake = view, sel, wake
        self.versions = DEFAULT_VERSIONS
        self.fail_mode = "standalone"
        self.remotes = {}                # target -> Listener | Active
        self.errors = {}                 # target -> why it could not be opened
        self.configs = {}                # target -> ControllerConfig
        self.mgmt = None
        self.conns = []                  # every live OfConn
        self.generation_id = None
        self.packet_ins = collections.deque()
        self.counters = collections.Counter()
        self.fail_open = False
        self.disconnected_since = None
        self._dirty, self._dirty_since = False, 0.0

    def now(self):
        return self.view.now()

    # --- configuration ---------------------------------------------------------
    def set_mgmt(self, path):
        if self.mgmt is not None and self.mgmt.path == path:
            return
        if self.mgmt is not None:
            self.mgmt.close()
        self.mgmt = Listener(self, "punix:" + path, "service")

    def configure(self, controllers, protocols=(), fail_mode=None):
        """controllers: [ControllerConfig]; protocols: Bridge.protocols;
        fail_mode: "standalone" (default) or "secure"."""
        now = self.now()
        versions = allowed_versions(protocols) or DEFAULT_VERSIONS
        if not allowed_versions(protocols):
            log.warn("%s: protocols %s: no version we speak, using 1.0 and 1.3",
                     self.view.name, ",".join(protocols))
        had_controllers = bool(self.configs)
        old_mode, self.fail_mode = self.fail_mode, fail_mode or "standalone"
        if versions != self.versions:
            self.versions = versions
            for c in list(self.conns):    # renegotiate under the new versions
                c.close("allowed OpenFlow versions changed")
        wanted = {c.target: c for c in controllers}
        for target in list(self.remotes):
            old = self.configs.get(target)
            new = wanted.get(target)
            if new is None or (old.probe, old.max_backoff) != (new.probe, new.max_backoff):
                self.remotes.pop(target).close()
                self.configs.pop(target, None)
        for target in [t for t in self.configs if t not in wanted]:
            del self.configs[target]
        self.errors = {t: e for t, e in self.errors.items() if t in wanted}
        for target, cfg in wanted.items():
            self.configs[target] = cfg
            if target in self.remotes:
                continue
            try:
                self.remotes[target] = self._open(cfg, now)
                self.errors.pop(target, None)
            except (ValueError, OSError) as e:   # retried at the next reconfiguration
                err = getattr(e, "strerror", None) or str(e)
                if self.errors.get(target) != err:
                    log.warn("%s: controller %s: %s", self.view.name, target, err)
                self.errors[target] = err
        if self.configs and self.disconnected_since is None:
            self.disconnected_since = now
        if not self.configs:
            self._fail_open(False)
            if self.fail_mode == "standalone" and (had_controllers or old_mode == "secure"):
                self._default_normal_flow()

    def _open(self, cfg, now):
        kind, _ = parse_target(cfg.target)
        if kind in ("ptcp", "punix"):
            return Listener(self, cfg.target, "primary", cfg.probe)
        return Active(self, cfg.target, cfg.probe, cfg.max_backoff, now)

    def new_conn(self, sock, name, kind, probe, on_close):
        conn = OfConn(sock, name, kind, self.versions, self._handle, self.sel,
                      self.now(), probe, on_close)
        self.conns.append(conn)
        return conn

    def conn_closed(self, conn):
        if conn in self.conns:
            self.conns.remove(conn)

    def close(self):
        for r in self.remotes.values():
            r.close()
        self.remotes.clear()
        if self.mgmt is not None:
            self.mgmt.close()
            self.mgmt = None

    # --- requests ------------------------------------------------------------------
    def _handle(self, conn, xid, msg):
        ofrequests.handle(self, conn, xid, msg)

    def mark_dirty(self):
        if not self._dirty:
            self._dirty = True
            self._dirty_since = self.now()

    def commit(self):
        """Make flow changes visible to the datapath: before a barrier reply
        or a packet-out, once no request is waiting, and at the latest
        COMMIT_DELAY after the first change (a stream of flow mods
        revalidates once per batch, not once per slice)."""
        if self._dirty:
            self._dirty = False
            self.view.flows_changed()

    def check_generation(self, gen):
        if self.generation_id is not None:
            delta = (gen - self.generation_id) & 0xFFFFFFFFFFFFFFFF
            if delta >= 1 << 63:
                return False
        self.generation_id = gen
        return True

    def set_role(self, conn, role):
        if role == "master":
            for c in self.conns:
                if c is not conn and c.role == "master":
                    c.role = "slave"
        conn.role = role

    # --- the loop ---------------------------------------------------------------------
    def run(self, now):
        """One bounded slice of work; True if more is waiting."""
        for conn in list(self.conns):
            if conn.inbox:
                conn.run_slice(now)
        if self._dirty and (not any(c.busy for c in self.conns)
                            or now - self._dirty_since >= COMMIT_DELAY):
            self.commit()
        self._deliver_packet_ins()
        for r in list(self.remotes.values()):
            r.run(now)
        if self.mgmt is not None:
            self.mgmt.run(now)
        self._run_fail_mode(now)
        return any(c.busy for c in self.conns) or bool(self.packet_ins)

    @property
    def connected(self):
        """A controller (primary connection) is connected."""
        return any(c.kind == "primary" and c.version for c in self.conns)

    def _run_fail_mode(self, now):
        if self.connected:
            self.disconnected_since = None
            self._fail_open(False)
            return
        if self.disconnected_since is None:
            self.disconnected_since = now
        if not self.configs or self.fail_mode != "standalone":
            return
        probes = [c.probe for c in self.configs.values() if c.probe] or [DEFAULT_PROBE]
        if now - self.disconnected_since >= 3 * max(probes):
            self._fail_open(True)

    def _fail_open(self, on):
        if on == self.fail_open:
            return
        self.fail_open = on
        view = self.view
        fm = FlowMod(command="add" if on else "delete_strict", match=Match(),
                     priority=FAIL_OPEN_PRIORITY, table=0, cookie=FAIL_OPEN_COOKIE,
                     cookie_mask=0 if on else 0xFFFFFFFFFFFFFFFF,
                     actions=parse_flow("actions=NORMAL").actions if on else ())
        try:
            with view.lock:
                view.ofproto.flow_mod(fm, view.now())
        except ValueError as e:          # OfprotoError: log, keep running
            log.warn("%s: fail-open flow: %s", view.name, e)
        log.info("%s: %s fail-open mode", view.name, "entering" if on else "leaving")
        self.mark_dirty()
        self.commit()

    def _default_normal_flow(self):
        view = self.view
        with view.lock:
            view.ofproto.add_flow("priority=0,actions=NORMAL", view.now())
        self.mark_dirty()
        self.commit()

    def drop_initial_flow(self):
        """A new bridge in secure mode starts with an empty table (as OVS)."""
        view = self.view
        with view.lock:
            view.ofproto.del_flows(FlowMod(command="delete_strict", match=Match(),
                                           priority=0, table=0), view.now(), strict=True)
        self.mark_dirty()

    # --- asynchronous messages -----------------------------------------------------------
    def packet_in(self, event):
        """Any thread (PMD upcalls): queue a packet-in for the controllers."""
        if len(self.packet_ins) >= PACKET_IN_QUEUE:
            self.counters["packet_in_dropped"] += 1
            return
        self.packet_ins.append(event)
        self.wake()

    def _deliver_packet_ins(self, limit=256):
        for _ in range(min(limit, len(self.packet_ins))):
            self.send_packet_in(**_event_fields(self.packet_ins.popleft()))

    def send_packet_in(self, data, in_port, reason=1, table_id=0,
                       cookie=0xFFFFFFFFFFFFFFFF, max_len=None, match=None,
                       total_len=None):
        """max_len None: the connection's miss_send_len; 0xFFFF: all."""
        sent = 0
        for conn in self.conns:
            if not conn.wants("packet_in", reason):
                continue
            limit = conn.miss_send_len if max_len is None else max_len
            body = data if limit == 0xFFFF else data[:limit]
            conn.send(M.PacketIn(M.NO_BUFFER, len(data) if total_len is None else total_len,
                                 reason, in_port, bytes(body), table_id, cookie,
                                 match or Match()))
            sent += 1
        self.counters["packet_in"] += 1
        if not sent:
            self.counters["packet_in_unsent"] += 1
        return sent

    def flows_removed(self, rules, reason):
        code = {"idle": 0, "hard": 1, "delete": 2, "group_delete": 3}[reason]
        now = self.now()
        for rule in rules:
            dur = max(0.0, now - rule.created)
            for conn in self.conns:
                if conn.wants("flow_removed", code):
                    conn.send(M.FlowRemoved(
                        rule.match, rule.cookie, rule.priority, code, rule.table_id,
                        int(dur), int(dur % 1 * 1e9), rule.idle_timeout, rule.hard_timeout,
                        rule.n_packets, rule.n_bytes, conn.flow_format == "nxm"))

    def port_status(self, reason, desc):
        code = {"add": 0, "delete": 1, "modify": 2}[reason]
        for conn in self.conns:
            if conn.wants("port_status", code):
                conn.send(M.PortStatus(code, desc))

    # --- status -----------------------------------------------------------------------------
    def status(self):
        """{controller key: {is_connected, role, status}} for the Controller table."""
        out = {}
        for target, cfg in self.configs.items():
            r = self.remotes.get(target)
            if cfg.key is None:
                continue
            if r is None:
                out[cfg.key] = {"is_connected": False, "role": None, "status": {
                    "state": "VOID", "last_error": self.errors.get(target, "")}}
                continue
            live = [c for c in r.conns if c.version]
            role = live[0].role if live else None
            st = {"state": r.state()}
            if r.error:
                st["last_error"] = r.error
            out[cfg.key] = {"is_connected": bool(live),
                            "role": {"equal": "other"}.get(role, role) if role else None,
                            "status": st}
        return out


def _event_fields(event):
    """A packet-in event from ofproto -> send_packet_in kwargs. Ofproto gives
    a messages.PacketIn whose data is already cut to the action's max_len;
    a dict (tests) may carry packet|data, in_port (ofport), reason (word or
    number), table_id, cookie, max_len, match."""
    if isinstance(event, M.PacketIn):
        return {"data": event.data, "in_port": event.in_port, "reason": event.reason,
                "table_id": event.table_id, "cookie": event.cookie, "max_len": 0xFFFF,
                "match": event.match, "total_len": event.total_len}
    get = event.get if isinstance(event, dict) else (lambda k, d=None: getattr(event, k, d))
    data = get("packet")
    if data is None:
        data = get("data", b"")
    reason = get("reason", 1)
    if isinstance(reason, str):
        reason = REASONS.get(reason, 1)
    cookie = get("cookie")
    return {"data": bytes(data), "in_port": int(get("in_port", 0)), "reason": reason,
            "table_id": int(get("table_id", 0) or 0),
            "cookie": 0xFFFFFFFFFFFFFFFF if cookie is None else cookie,
            "max_len": get("max_len"), "match": get("match")}

