"""pvs-vswitchd's main loop: glue between the database, ofproto and the datapath.

The main thread owns everything here. One selectors loop serves the
management socket and a wake-up pipe.
Locking: `self.lock` guards ofproto and the bridge map against PMD upcalls;
it is never held across a datapath call (see bridge.py).

Between events the main thread:
- reconfigures when the database changed (snapshot -> desired state ->
  reconcile.plan -> Bridge operations -> status written back, cur_cfg bumped,
  waiting `pvs-vsctl` calls answered);
- revalidates datapath flows when ofproto changed (flow tables or the fdb);
- expires OpenFlow rule timeouts and fdb entries on the clock;
- writes interface statistics, link state and errors back to the database;
- runs bonds on their members' carrier (failover, learning packets,
  rebalancing) and keeps patch pairs linked across bridges.

PMD threads call `upcall` (under `self.lock`, which guards every ofproto and
bridge structure) when their megaflow cache misses.
"""

import os
import selectors
import threading
import traceback

import numpy as np

from pyvswitch.core import paths, vlog
from pyvswitch.core.clock import Clock
from pyvswitch.core.inotify import DirWatch
from pyvswitch.datapath.dpif import Dpif
from pyvswitch.datapath.layout import field_mask, new_key
from pyvswitch.db.config_keys import check_key
from pyvswitch.db.schema import ROOT, SchemaError
from pyvswitch.db.store import Store
from pyvswitch.ofproto.lacp import SLOW_ARG as LACP_SLOW_ARG
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate
from pyvswitch.ofproto import tunnel as TNL   # native tunnels (tnlctl.py)
from pyvswitch.vswitchd import commands, dbstate, netlink, tnlctl
from pyvswitch.ports.base import PORT_TYPES, load_types, set_link_hook
from pyvswitch.ports.vhost.port import set_default_sock_dir
from pyvswitch.vswitchd.bridge import Bridge
from pyvswitch.vswitchd.ofservice import OfService   # OpenFlow service (ofservice.py)
from pyvswitch.vswitchd.reconcile import plan
from pyvswitch.vswitchd.revalidator import MAX_IDLE, Revalidator
from pyvswitch.vswitchd.unixctl import UnixctlServer

log = vlog.Module("bridge")

VERSION = "0.1.0"
STATS_INTERVAL = 1.0
IDLE_STATS_INTERVAL = 5.0   # quiet switch: statistics as often as OVS's default
DB_POLL_INTERVAL = 5.0      # a database check even without an inotify event
LINK_POLL_INTERVAL = 5.0    # quiet switch: link states even without a notification
HOUSEKEEPING_INTERVAL = 0.1
# The main loop ticks every HOUSEKEEPING_INTERVAL while anything happens, and
# every IDLE_INTERVAL once nothing has for QUIET_AFTER seconds: an idle switch
# wakes rarely. Changes still arrive at once, as events: the database through
# inotify, links/addresses/routes through rtnetlink, requests on sockets.
IDLE_INTERVAL = 2.0         # ... or until the next flow timeout, if sooner
QUIET_AFTER = 1.0


def _int_setting(oc, key, current, default):
    """other_config:key as pvs-vsctl accepts it (db/config_keys.py): its
    value, `default` if absent, `current` (logged) if malformed."""
    if not oc.get(key):
        return default
    try:
        check_key(ROOT, key, oc[key])
    except SchemaError as e:
        log.warn("%s: ignored", e)
        return current
    return int(oc[key])


class Switch:
    def __init__(self, rundir, db_path, log_file=None, verbose=()):
        if log_file:
            vlog.set_file(log_file)
        for spec in verbose:
            vlog.set_levels(spec)
        self.rundir = rundir
        load_types()
        set_default_sock_dir(rundir)
        self.clock = Clock()
        self.store = Store(db_path)
        self.unixctl = UnixctlServer(paths.ctl_path(rundir))
        self.dpif = Dpif("netdev@pvs", rundir, self.clock)
        self.store.write_status({"Open_vSwitch": {self.store.snapshot().root()[0]: {
            "ovs_version": VERSION, "datapath_types": ("netdev",),
            "iface_types": tuple(sorted(PORT_TYPES))}}})
        self.lock = threading.RLock()
        self.bridges = {}
        self.running = {"other_config": {}, "bridges": {}}
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._exit = False
        self._need_revalidate = False
        self._versions = {}   # bridge -> ofproto version last revalidated
        self._pmd_cpus = None
        self._hints = {}
        self._db_version = None
        self._next_stats = 0.0
        self.cur_cfg = 0
        self.snap = None
        self._status_written = None   # (snapshot, rows, mirrors) last written back
        self._last_busy = self.clock.now()   # see _quiet
        self._received = 0                   # PMD packets seen by the last run_once
        self._watches_ok = False
        self._db_watch = self._netlink = None
        self._db_dirty = True                # the database watch fired (or first run)
        self._next_db_poll = 0.0
        self._links_dirty = True             # a link notification since the last poll
        self._next_link_poll = 0.0
        self.waiters = []   # (cfg, Deferred) from pvs-vsctl
        self.revalidator = Revalidator(self)
        self.tnl = TNL.Tunnels()   # native tunnels: routes, neighbours, vports (tnlctl.py)
        self.ofservice = OfService(self)   # OpenFlow service (ofservice.py)

    # --- lifecycle ------------------------------------------------------
    def start(self):
        self.unixctl.listen()
        self.unixctl.register_with(self.sel)
        self.sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        self._watch()
        set_link_hook(self._port_link_changed)
        commands.register_all(self)
        self.dpif.set_upcall_handler(self.upcall)
        self.dpif.set_userspace_handler(self.userspace)
        self.reconfigure()
        log.info("pvs-vswitchd started (rundir %s)", self.rundir)

    def request_exit(self):
        self._exit = True
        self.wake()

    def wake(self):
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _drain_wake(self, fd):
        self._busy()      # another thread has work for this one (upcalls, packet-ins)
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass

    def run(self):
        while not self._exit:
            for key, _ in self.sel.select(self._tick()):
                key.data(key.fileobj)
            self.run_once()

    def _busy(self):
        now = self._last_busy = self.clock.now()
        # statistics back to every STATS_INTERVAL as soon as traffic resumes
        self._next_stats = min(self._next_stats, now + STATS_INTERVAL)

    def _quiet(self):
        """Nothing happened for QUIET_AFTER, no bond has timers (up/down
        delays, LACP), and database and link changes can wake us."""
        return (self._watches_ok and not any(br.bonds for br in self.bridges.values())
                and self.clock.now() - self._last_busy >= QUIET_AFTER)

    def _tick(self):
        if not self._quiet():
            return HOUSEKEEPING_INTERVAL
        with self.lock:
            due = min((br.ofproto.next_timeout() for br in self.bridges.values()),
                      default=float("inf"))
        due = min(due, self.revalidator.next_expiry)      # megaflow idle expiry
        return min(IDLE_INTERVAL, max(HOUSEKEEPING_INTERVAL, due - self.clock.now() + 0.01))

    def _watch(self):
        """Register the database and rtnetlink watches; without either one
        the loop keeps polling at HOUSEKEEPING_INTERVAL."""
        try:
            self._db_watch = DirWatch(os.path.dirname(os.path.abspath(self.store.path)))
            self.sel.register(self._db_watch, selectors.EVENT_READ, self._db_written)
            self._netlink = netlink.Monitor()
            self.sel.register(self._netlink, selectors.EVENT_READ, self._kernel_changed)
            self._watches_ok = True
        except OSError as e:
            log.warn("no database or rtnetlink notifications (%s): polling every %.1f s",
                     e, HOUSEKEEPING_INTERVAL)

    def _db_written(self, watch):
        watch.drain()
        self._db_dirty = True

    def _kernel_changed(self, mon):
        kinds = mon.drain()
        if kinds:
            tnlctl.refresh_soon(self)   # tunnel endpoints: addresses, routes, MACs
        if "link" in kinds:
            self._links_dirty = True

    def _port_link_changed(self):
        """Any thread: a port's link changed where rtnetlink cannot see it."""
        self._links_dirty = True
        self.wake()

    def run_once(self):
        now = self.clock.now()
        if self._db_dirty or not self._watches_ok or now >= self._next_db_poll:
            self._db_dirty, self._next_db_poll = False, now + DB_POLL_INTERVAL
            version = self.store.data_version()
            if version != self._db_version:
                self._db_version = version
                self.reconfigure()
                self._busy()
                now = self.clock.now()
        quiet = self._quiet()
        if not quiet or self._links_dirty or now >= self._next_link_poll:
            self._links_dirty, self._next_link_poll = False, now + LINK_POLL_INTERVAL
            self._run_ports(now)
        refresh = tnlctl.REFRESH_NOTIFIED if self._watches_ok else tnlctl.REFRESH
        if tnlctl.run(self, now, refresh):   # tunnels: routes, ARP requests, neighbours
            self._need_revalidate = True
        with self.lock:
            expired = {br.name: br.ofproto.run(now) for br in self.bridges.values()}
            macs = {}
            for br in self.bridges.values():
                if br.ofproto.version != self._versions.get(br.name):
                    self._versions[br.name] = br.ofproto.version
                    self._need_revalidate = True
                for mac, seq in br.ofproto.take_fdb_changes().items():
                    macs[mac] = max(seq, macs.get(mac, 0))
        received = self.dpif.packets_received()
        if received != self._received or self._need_revalidate or macs or any(expired.values()):
            self._received = received
            self._busy()
        if self._need_revalidate:
            self.revalidate()           # every megaflow (MAC changes included)
        elif macs:
            self.revalidate(macs)       # MAC learning: the megaflows to or from those MACs
        # OpenFlow service (ofservice.py): flow-removed, then connections.
        for name, rules in expired.items():
            if rules:
                self.ofservice.flows_expired(name, rules)
        quiet = self._quiet()     # again: this turn may have found work
        self.ofservice.run(now, quiet)
        if now >= self._next_stats:
            self._next_stats = now + (IDLE_STATS_INTERVAL if quiet else STATS_INTERVAL)
            self.revalidator.sweep(now)
            self.dpif.ct_sweep()     # expired connections out of the conntrack table
            self.write_status()
        elif now >= self.revalidator.next_expiry:
            self.revalidator.sweep(now)     # idle megaflows out, between statistics

    def _run_ports(self, now):
        """Link states (and port housekeeping); bonds follow their members."""
        for br in list(self.bridges.values()):
            for iface in list(br.ifaces.values()):
                if iface.port is not None:
                    iface.port.run(now)
                    up = bool(iface.port.link_up())
                    if up != iface.live:   # fast-failover groups watch liveness
                        iface.live = up
                        with self.lock:
                            br.ofproto.set_port_live(iface.name, up)
                        self._busy()
            self._run_bonds(br, now)

    def close(self):
        log.info("pvs-vswitchd exiting")
        self.ofservice.close()   # OpenFlow service (ofservice.py)
        for br in list(self.bridges.values()):
            br.close()
        self.dpif.close()
        self.unixctl.close()
        for w in (self._db_watch, self._netlink):
            if w is not None:
                w.close()
        set_link_hook(None)
        self.store.close()

    # --- reconfiguration --------------------------------------------------
    def reconfigure(self):
        snap = self.snap = self.store.snapshot()
        desired = dbstate.desired_state(snap)
        ops = plan(desired, self.running)
        self._hints = dbstate.ofport_hints(snap)
        for br in self.bridges.values():
            br.hints = self._hints.get(br.name, {})
        for op in ops:   # no lock here: see bridge.py on locking
            try:
                self._apply(op)
            except Exception:   # a bug must cost one operation, not the daemon
                log.err("applying %s %s %s %s failed: %s", op.kind, op.bridge, op.port,
                        op.iface, traceback.format_exc())
        self._sync_bonds_and_patches(snap)
        tnlctl.sync(self)   # tunnel ports, vports, internal devices, routes
        self.running = dbstate.running_state(self.bridges, desired.get("other_config", {}))
        for br in self.bridges.values():   # mirrors name ports: after every port change
            br.apply_mirrors()
        self.ofservice.reconfigure(snap)   # OpenFlow service (ofservice.py)
        if ops:
            self.dpif.flow_flush()
        self.write_status()
        self.cur_cfg = dbstate.next_cfg(snap)
        root_uuid, _ = snap.root()
        self.store.write_status({"Open_vSwitch": {root_uuid: {"cur_cfg": self.cur_cfg}}})
        self._answer_waiters()

    def _apply(self, op):
        br = self.bridges.get(op.bridge)
        if op.kind == "set_global":
            self._set_global(op.config)
        elif op.kind == "add_bridge":
            br = Bridge(op.bridge, self.dpif, Ofproto(op.bridge, now=self.clock.now()), self.lock)
            br.hints = self._hints.get(op.bridge, {})
            br.configure(op.config)
            with self.lock:
                self.bridges[op.bridge] = br
        elif op.kind == "set_bridge":
            br.configure(op.config)
        elif op.kind == "del_bridge":
            br.close()
            with self.lock:
                del self.bridges[op.bridge]
        elif op.kind in ("add_port", "set_port"):
            br.set_port(op.port, op.config)
        elif op.kind == "del_port":
            br.del_port(op.port)
        elif op.kind == "add_iface":
            iface = br.add_iface(op.port, op.iface, op.config)
            if iface.error:
                log.warn("%s: %s", op.bridge, iface.error)
        elif op.kind == "del_iface":
            br.del_iface(op.iface)
        elif op.kind == "set_mtu":
            br.set_mtu(op.iface, op.config.get("mtu_request"))

    # --- bonds and patch ports ----------------------------------------------
    def _sync_bonds_and_patches(self, snap):
        macs = dbstate.bond_active_macs(snap)
        now = self.clock.now()
        for br in self.bridges.values():
            br.bond_macs = macs.get(br.name, {})
            try:
                br.sync_bonds(now)
            except Exception:   # a bug must cost the bonds, not the daemon
                log.err("%s: configuring bonds failed: %s", br.name, traceback.format_exc())
        self.link_patches()

    def link_patches(self):
        """Link every patch interface to the patch interface its options:peer
        names, when that one's peer names it back (OVS's ofport_update_peer;
        all bridges share one datapath here). Unlinked ones are down, with an
        Interface error saying why."""
        patches = {i.name: (br, i) for br in self.bridges.values()
                   for i in br.ifaces.values() if i.type == "patch" and i.port is not None}
        for name, (br, iface) in patches.items():
            peer = patches.get(iface.port.peer)
            if peer is None:
                link, why = None, f"{name}: patch peer {iface.port.peer} does not exist"
            elif peer[1].port.peer != name:
                link, why = None, (f"{name}: patch peer {iface.port.peer} has peer "
                                   f"{peer[1].port.peer}, not {name}")
            else:
                link, why = (peer[0].ofproto, peer[1].ofport), ""
            if why and why != iface.error:
                log.warn("%s: %s", br.name, why)
            iface.error = why
            iface.port.set_peer(link is not None)
            with self.lock:
                br.ofproto.set_patch_peer(name, link)

    def _run_bonds(self, br, now):
        for bond, packets in br.run_bonds(now):
            for dp_port, frame in packets:
                self.dpif.execute(frame, [("output", dp_port)])

    def _set_global(self, oc):
        """PMD settings and the vhost-user socket directory; a malformed value
        is logged and ignored (the switch keeps its current setting), as Open
        vSwitch does."""
        set_default_sock_dir(oc.get("vhost-sock-dir") or self.rundir)
        try:
            mask = int(oc["pmd-cpu-mask"], 16) if oc.get("pmd-cpu-mask") else None
        except ValueError:
            log.warn("pmd-cpu-mask %r is not a hexadecimal mask: ignored", oc["pmd-cpu-mask"])
            mask = None
        if mask:
            # As OVS: the mask names cores of the machine, whatever the
            # daemon's own affinity (PMD threads pin themselves).
            cpus = [i for i in range(os.cpu_count() or 1) if mask >> i & 1]
            if cpus and cpus != self._pmd_cpus:
                self.dpif.set_pmd_cpus(cpus)   # restarts PMDs: only on a real change
                self._pmd_cpus = cpus
            elif not cpus:
                log.warn("pmd-cpu-mask %s selects no usable core: ignored", oc["pmd-cpu-mask"])
        if oc.get("pmd-sleep-max") is not None:
            try:
                us = int(oc["pmd-sleep-max"])
                if us < 0:
                    raise ValueError
                self.dpif.set_sleep_max(us)
            except ValueError:
                log.warn("pmd-sleep-max %r is not a number of microseconds: ignored",
                         oc["pmd-sleep-max"])
        self._set_flow_aging(oc)

    def _set_flow_aging(self, oc):
        """other_config:max-idle (ms) and flow-limit (megaflows per PMD), as
        Open vSwitch reads them."""
        rv = self.revalidator
        rv.max_idle = _int_setting(oc, "max-idle", rv.max_idle * 1000, MAX_IDLE * 1000) / 1000
        rv.flow_limit = _int_setting(oc, "flow-limit", rv.flow_limit, None)
        rv.next_expiry = 0.0      # apply at the next sweep

    def _answer_waiters(self):
        done = [w for w in self.waiters if w[0] <= self.cur_cfg]
        self.waiters = [w for w in self.waiters if w[0] > self.cur_cfg]
        for _, deferred in done:
            deferred.complete(self.cur_cfg)

    # --- datapath upcalls and revalidation --------------------------------
    def upcall(self, keys, in_ports, packets):
        """PMD thread: translate missed flows; returns [(actions, mask)]."""
        out, learned = [], False
        now = self.clock.now()
        with self.lock:
            for i in range(len(keys)):
                ofp, r = self.translate(keys[i], now)
                if ofp is None:   # a port that is going away: drop, cached on in_port
                    out.append(([], r if r is not None else in_port_mask(int(in_ports[i]))))
                    continue
                if getattr(r, "no_install", False):   # tunnel neighbour miss: not cached
                    out.append((r.actions, None))
                    continue
                out.append((r.actions, r.mask))
                self.revalidator.remember(keys[i], r.mask, r.rules_hit + r.tables_hit, r.refreshes)
                learned |= bool(r.learned)
        if learned or self._need_revalidate or self.tnl.pending:   # ARP requests go out at once
            self.wake()
        return out

    def userspace(self, key, in_port, packet, arg):
        """PMD thread: a ('userspace', arg) datapath action (an OpenFlow
        controller action, later sFlow/...). ofproto decides what it means;
        `Ofproto.packet_in(packet, arg, key, now)` must not block."""
        with self.lock:
            br = self.bridge_of_dp_port(int(in_port))
            if int(arg) == LACP_SLOW_ARG:        # a LACPDU on a bond member (xlate's slow path)
                if br is not None and br.lacp_rx(int(in_port), bytes(packet), self.clock.now()):
                    self.wake()
                return
            ofp = br.ofproto if br is not None else None
            if ofp is None and int(in_port) in self.tnl.vport_dst:   # came out of a tunnel
                tp = self.tnl.receive(key)
                ofp = tp.ofp if tp is not None else None
            handler = getattr(ofp, "packet_in", None) if ofp is not None else None
            if handler is not None:
                handler(bytes(packet), int(arg), key, self.clock.now())

    def translate(self, key, now, learn=True):
        """(ofproto, XlateResult) for a datapath key, through the tunnel
        port a decapsulated packet belongs to; (None, drop mask | None)."""
        def ofp_of_dp(dp_port):
            br = self.bridge_of_dp_port(dp_port)
            return br.ofproto if br is not None else None
        return TNL.translate(self.tnl, ofp_of_dp, xlate, key, now, learn)

    def bridge_of_dp_port(self, dp_port):
        for br in self.bridges.values():
            if br.ofproto.port_by_dp(dp_port) is not None:
                return br
        return None

    def revalidate(self, macs=None):
        """Re-translate every megaflow against the current tables, or with
        `macs` ({mac: fdb_seq}) only those a change of these MACs' fdb
        entries can affect and that were translated before it.
        Stats the old translations earned are credited first (the xcache
        knows their rules); a flow that changes is reinstalled with fresh
        counters."""
        now = self.clock.now()
        before = None
        if macs is None:
            self._need_revalidate = False
            self.revalidator.sweep(now)
        else:
            before = lambda flows: self.revalidator.sweep_some(flows, now)  # noqa: E731

        def check(key, mask, actions):
            with self.lock:
                if macs is not None and self.revalidator.saw_fdb_changes(key, mask, macs):
                    return (actions, mask)     # translated after those changes: as it is
                ofp, r = self.translate(key, now, learn=False)
                if ofp is None or getattr(r, "no_install", False):
                    return None
                changed = not (np.array_equal(r.mask, mask) and list(r.actions) == list(actions))
                self.revalidator.remember(key, r.mask, r.rules_hit + r.tables_hit, r.refreshes,
                                          reinstalled=changed)
            return (r.actions, r.mask)
        self.dpif.revalidate(check, macs=macs, before=before)

    def flows_changed(self):
        """After a flow-mod: no cached translation may outlive the reply."""
        with self.lock:
            for br in self.bridges.values():
                self._versions[br.name] = br.ofproto.version
        self.revalidate()

    # --- status write-back --------------------------------------------------
    def write_status(self):
        if self.snap is None:
            return
        # The bridge map only changes on this thread: reading it needs no lock.
        rows = dbstate.iface_status(self.snap, self.bridges, self.dpif.port_stats)
        rows.update(dbstate.bond_status(self.snap, self.bridges))
        mirrors = dbstate.mirror_status(self.snap, self.bridges)
        # A transaction reads the whole database: an idle switch whose
        # counters and states did not move writes nothing. Any database
        # change (reconfigure) writes again.
        last = self._status_written
        if last is not None and last[0] is self.snap and last[1:] == (rows, mirrors):
            return
        self.store.write_status(rows)
        if mirrors:
            self.store.write_status(mirrors)
        self._status_written = (self.snap, rows, mirrors)


def in_port_mask(dp_port):
    mask = new_key()
    for name in ("in_port", "recirc_id"):       # recirc_id: exact in every megaflow
        word, bits = field_mask(name)
        mask[word] |= np.uint64(bits)
    return mask
