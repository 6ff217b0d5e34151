"""The daemon's OpenFlow service: one connmgr per bridge, fed from the database.

What: `OfService(sw)` keeps a ConnMgr (ofproto/connmgr.py) per bridge of
the switch. The daemon calls:
- `reconfigure(snap)` after every reconfiguration: creates/destroys the
  per-bridge managers to follow `sw.bridges`, applies the Bridge's
  controllers (Controller table: target, max_backoff, inactivity_probe),
  protocols and fail_mode, and sends port-status for ports that came, went
  or changed;
- `run(now)` on every loop turn: serves connections in bounded slices,
  delivers queued packet-ins, reconnects, probes, fail-open; writes the
  Controller table's is_connected/role/status when they change; wakes the
  loop again when work is left over;
- `flows_expired(bridge, rules)` with the rules `Ofproto.run` expired
  (flow-removed messages);
- `close()` at exit.

The SwitchView handed to connmgr (`BridgeView`) reads ofproto, ports and
counters from the daemon, executes packet-outs with `sw.dpif.execute` and
revalidates with `sw.flows_changed()`; the last two are called without
`sw.lock`, as every datapath call must be.

Packet-ins: each bridge's ofproto gets `on_packet_in = mgr.packet_in`,
which a PMD thread calls under sw.lock; it only queues and wakes the loop.

Threads: main thread only (except the packet-in callback above).
"""

import os
import time
import traceback

from pyvswitch.core import vlog
from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import messages as M
from pyvswitch.ofproto.connmgr import (DEFAULT_MAX_BACKOFF, DEFAULT_PROBE,
                                       ConnMgr, ControllerConfig)

log = vlog.Module("ofservice")
OFPPC_PORT_DOWN, OFPPS_LINK_DOWN = 1, 1
PORT_STATUS_INTERVAL = 1.0
QUIET_PORT_STATUS_INTERVAL = 5.0


def mgmt_path(rundir, bridge):
    return os.path.join(rundir, f"{bridge}.mgmt")


class BridgeView:
    """connmgr.SwitchView for one bridge of the daemon."""

    def __init__(self, sw, name):
        self.sw, self.name = sw, name
        self.lock = sw.lock
        from pyvswitch.vswitchd.daemon import VERSION
        self.version = VERSION

    @property
    def bridge(self):
        return self.sw.bridges[self.name]

    @property
    def ofproto(self):
        return self.bridge.ofproto

    def now(self):
        return self.sw.clock.now()

    def datapath_id(self):
        try:
            return int(self.bridge.datapath_id(), 16)
        except ValueError:
            return 0

    def _ifaces(self):
        live = [i for i in self.bridge.ifaces.values() if i.port is not None and i.ofport > 0]
        return sorted(live, key=lambda i: (i.ofport == F.OFPP_LOCAL, i.ofport))

    def port_descs(self):
        out = []
        for i in self._ifaces():
            up = i.port.link_up()
            mac = int.from_bytes(i.port.mac, "big") if i.port.mac else 0
            out.append(M.PortDesc(
                i.ofport, mac, i.name[:15],
                0 if up or i.type != "internal" else OFPPC_PORT_DOWN,
                0 if up else OFPPS_LINK_DOWN))
        return out

    def port_stats(self, ofport):
        for i in self._ifaces():
            if i.ofport == ofport:
                stats = dict(self.bridge.iface_stats(i))   # a patch port counts for itself
                stats["duration"] = max(0.0, time.monotonic() - i.added)
                return stats
        return None

    @staticmethod
    def packet_key(packet, dp_port):
        return parse_packet_ref(packet, dp_port)

    def execute(self, packet, actions, dp_in_port):
        self.sw.dpif.execute(packet, actions, dp_in_port)

    def flows_changed(self):
        self.sw.flows_changed()


def _controller(uuid, c):
    """A Controller row -> ControllerConfig (ms in the database, s here)."""
    probe, backoff = c["inactivity_probe"], c["max_backoff"]
    return ControllerConfig(
        c["target"], DEFAULT_MAX_BACKOFF if backoff is None else backoff / 1000.0,
        DEFAULT_PROBE if probe is None else max(0, probe) / 1000.0, uuid)


class OfService:
    def __init__(self, sw):
        self.sw = sw
        self.mgrs = {}          # bridge name -> ConnMgr
        self._ports = {}        # bridge name -> {ofport: PortDesc} last announced
        self._status = {}       # controller uuid -> columns last written
        self._next_ports = 0.0

    # --- per bridge -------------------------------------------------------------
    def create(self, name):
        mgr = ConnMgr(BridgeView(self.sw, name), self.sw.sel, self.sw.wake)
        try:
            mgr.set_mgmt(mgmt_path(self.sw.rundir, name))
        except OSError as e:
            log.err("%s: cannot listen on %s (%s)", name, mgmt_path(self.sw.rundir, name), e)
        self.mgrs[name] = mgr
        self.sw.bridges[name].ofproto.on_packet_in = mgr.packet_in
        self._ports[name] = {p.port_no: p for p in mgr.view.port_descs()}
        return mgr

    def destroy(self, name):
        mgr = self.mgrs.pop(name, None)
        self._ports.pop(name, None)
        if mgr is not None:
            mgr.close()

    def reconfigure(self, snap):
        for name in [n for n in self.mgrs if n not in self.sw.bridges]:
            self.destroy(name)
        for name in list(self.sw.bridges):
            try:
                self._configure(name, snap)
            except Exception:            # never let OpenFlow take the daemon down
                log.err("%s: OpenFlow configuration failed: %s", name,
                        traceback.format_exc())
        self._port_status()

    def _configure(self, name, snap):
        t = snap.tables
        new = name not in self.mgrs
        mgr = self.mgrs[name] if not new else self.create(name)
        found = snap.by_name("Bridge", name)
        if found is not None:
            row = found[1]
            ctrls = [_controller(cu, t["Controller"][cu]) for cu in row["controller"]
                     if cu in t["Controller"]]
            fail_mode = row["fail_mode"] or "standalone"
            if new and fail_mode == "secure":
                mgr.drop_initial_flow()
            mgr.configure(ctrls, tuple(row["protocols"]), fail_mode)

    # --- the loop -------------------------------------------------------------------
    def run(self, now, quiet=False):
        """quiet: nothing happened lately (the daemon's _quiet), so port
        states are compared every LINK_POLL_INTERVAL only; link changes make
        the daemon busy again at once."""
        busy = False
        for mgr in list(self.mgrs.values()):
            try:
                busy |= mgr.run(now)
            except Exception:        # never let OpenFlow take the daemon down
                log.err("%s: connmgr: %s", mgr.view.name, traceback.format_exc())
        if not quiet:     # back from quiet: the slow period must not delay a change
            self._next_ports = min(self._next_ports, now + PORT_STATUS_INTERVAL)
        if now >= self._next_ports:
            self._next_ports = now + (QUIET_PORT_STATUS_INTERVAL if quiet else PORT_STATUS_INTERVAL)
            self._port_status()
        self._write_status()
        if busy:
            self.sw.wake()

    def flows_expired(self, bridge, rules):
        mgr = self.mgrs.get(bridge)
        if mgr is None:
            return
        for reason in ("idle", "hard"):
            mgr.flows_removed([r for r in rules if r.removed_reason == reason
                               and "send_flow_rem" in r.flags], reason)

    def _port_status(self):
        for name, mgr in self.mgrs.items():
            if name not in self.sw.bridges:
                continue
            now = {p.port_no: p for p in mgr.view.port_descs()}
            old = self._ports.get(name, {})
            for no in sorted(old.keys() - now.keys()):
                mgr.port_status("delete", old[no])
            for no in sorted(now):
                if no not in old:
                    mgr.port_status("add", now[no])
                elif now[no] != old[no]:
                    mgr.port_status("modify", now[no])
            self._ports[name] = now

    def _write_status(self):
        rows = {}
        for mgr in self.mgrs.values():
            for key, cols in mgr.status().items():
                if self._status.get(key) != cols:
                    self._status[key] = cols
                    rows[key] = cols
        if rows:
            try:
                self.sw.store.write_status({"Controller": rows})
            except Exception as e:
                log.warn("cannot write controller status: %r", e)

    def close(self):
        for name in list(self.mgrs):
            self.destroy(name)
