"""Dpif: the datapath as the daemon sees it (OVS's dpif-netdev, in small).

    dp = Dpif(name, rundir, clock=None, *, n_slots=8192, max_mtu=1500,
              pmd_cpus=None, sleep_max_us=1000, emc_insert_inv_prob=1,
              max_flows=65536)
    dp.add_port(port, dp_port=None) -> dp_port   Port already open()ed
    dp.del_port(dp_port)
    dp.set_pmd_cpus([cpu, ...])   restarts PMDs (megaflows are dropped)
    dp.set_sleep_max(us)          0 = busy-poll
    dp.fit_mtu(mtu)               grow the packet pool for frames of this MTU
                                  (restarts PMDs; add_port does it for port.mtu)
    dp.set_upcall_handler(fn)     fn(keys uint64[n, KEY_WORDS], in_ports int64[n],
                                     packets [bytes]) -> [(actions, mask|None)|None]*n
    dp.set_userspace_handler(fn)  fn(key, in_port, packet bytes, arg) for
                                  ('userspace', arg) actions
    dp.flow_put(key, mask, actions)        on every PMD
    dp.flow_dump() -> [Megaflow]; dp.format_flows(flows) -> dpctl text
    dp.flow_del(key, mask) -> n; dp.flow_flush()
    dp.revalidate(fn, macs=None, before=None) -> (kept, changed, deleted)
    dp.flow_counters(expire_before=None) -> [(pmd_id, keys, masks, packets, bytes,
                                  last_used, expired)] arrays, for the revalidator;
                                  idle expiry: deletes the flows idle since
                                  expire_before(n_live, capacity) ns, counters copied first
    dp.port_stats(dp_port) -> {rx_packets, rx_bytes, rx_dropped, rx_errors, tx_...}
    dp.pmd_stats() / pmd_stats_show() / pmd_stats_clear() / rxq_show()
    dp.execute(packet, actions, in_port=0)   packet-out, from the control thread
    dp.quiesce()                  context manager: all PMDs parked (any thread)
    dp.close()

Threads: every method is for the control (main) thread and is serialised by
one lock. Methods that change what PMDs read (ports, flows, cpus) park the
PMDs first (pmd.py handshake) and return once the change is visible: the very
next packet after flow_flush() upcalls again. The upcall handler runs on PMD
threads, one call at a time (a lock), with that PMD outside its kernel; it
must not call back into Dpif methods that park (it would wait for itself).
revalidate(fn) runs fn on the control thread with each PMD parked in turn.

Actions: a list of tuples (actions.py): ('output', dp_port), ('push_vlan',
tci), ('pop_vlan',), ('set_vlan', tci), ('userspace', arg), ('drop',) ...;
[] = drop. A mask None in an upcall answer executes without installing.
PMDs have their own megaflow tables (like OVS): flows are per PMD in dumps.
"""

import contextlib
import os
import threading
import time
from collections import namedtuple

import numpy as np

from pyvswitch.conntrack import dump as CTD
from pyvswitch.conntrack import table as CT
from pyvswitch.core import vlog
from pyvswitch.core.clock import SYSTEM
from pyvswitch.core.intrinsics import read_tsc
from pyvswitch.core.pool import Pool, data_size_for_mtu
from pyvswitch.datapath import actions as A
from pyvswitch.datapath import dpifshow
from pyvswitch.datapath.flowfmt import format_flow
from pyvswitch.datapath.kernels import state as S
from pyvswitch.datapath.pmd import Pmd, load_rows
from pyvswitch.ports import io as pio

log = vlog.Module("dpif")
NON_PMD_ID = 0xFFFF                      # pmd_id of the control thread's tx rows
NON_PMD_SLOTS = 64
CT_CAPACITY = 1 << 18                    # connections (ct-set-maxconns may lower the limit)

Megaflow = namedtuple("Megaflow", "pmd_id key mask actions packets bytes used tcp_flags")


def calibrate_tsc(seconds=0.02):
    """Cycles of read_tsc() per microsecond (1000 when rdtsc is emulated)."""
    read_tsc()                           # load/compile before timing
    t0, c0 = time.perf_counter_ns(), read_tsc()
    time.sleep(seconds)
    t1, c1 = time.perf_counter_ns(), read_tsc()
    return max(1, round((c1 - c0) * 1000 / max(t1 - t0, 1)))


def default_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    return [cpus[-1]]


class _PortEntry:
    def __init__(self, dp_port, port):
        self.dp_port, self.port, self.name = dp_port, port, port.name
        self.rx = []                     # [(queue, row, mem)]
        self.tx = {}                     # pmd_id -> (row, mem)
        self.base = np.zeros(pio.Q_COLS, np.int64)   # stats of retired rows


class Dpif:
    def __init__(self, name, rundir="", clock=None, *, n_slots=8192, max_mtu=1500, pmd_cpus=None,
                 sleep_max_us=1000, emc_insert_inv_prob=1, max_flows=65536, ct_capacity=CT_CAPACITY):
        self.name, self.rundir, self.clock = name, rundir, clock or SYSTEM
        self.pool = Pool(n_slots, max_mtu, rundir, name=f"{name}.pool")
        self.cyc_per_us = calibrate_tsc()
        self.sleep_max_us, self.emc_inv = sleep_max_us, emc_insert_inv_prob
        self.max_flows = max_flows
        self.ports = {}
        self.pmds = []
        self.upcall_handler = self.userspace_handler = None
        self._lock = threading.RLock()
        self._upcall_lock = threading.Lock()
        self._nonpmd = None
        self._base_stats = {}
        self.ct = CT.new_table(ct_capacity)       # one connection table, shared by the PMDs
        self.set_pmd_cpus(pmd_cpus or default_cpus())

    # ------------------------------------------------------------- ports --
    def add_port(self, port, dp_port=None):
        with self._lock:
            self.fit_mtu(getattr(port, "mtu", 1500))
            if dp_port is None:
                dp_port = next((i for i in range(1, S.MAX_PORTS) if i not in self.ports), None)
                if dp_port is None:
                    raise ValueError(f"no free datapath port number (at most {S.MAX_PORTS - 1})")
            if dp_port in self.ports or not 0 <= dp_port < S.MAX_PORTS:
                raise ValueError(f"dp_port {dp_port} in use or out of range")
            e = _PortEntry(dp_port, port)
            for q in range(port.n_rxq):
                row, mem = port.rx_io(q)
                row[pio.IO_PORT] = dp_port
                e.rx.append((q, row, mem))
            for pmd_id in [p.pmd_id for p in self.pmds] + [NON_PMD_ID]:
                self._tx_rows(e, pmd_id)
            self.ports[dp_port] = e
            try:
                self._reconfigure()
            except ValueError:
                # refused (a PMD's io rows are full): the datapath stays as it
                # was, and keeps no reference to the port or its memory
                del self.ports[dp_port]
                self._reconfigure()
                raise
            log.info("%s: added port %s as port %d", self.name, port.name, dp_port)
            return dp_port

    def _tx_rows(self, e, pmd_id):
        if pmd_id not in e.tx:
            row, mem = e.port.tx_io(pmd_id)
            row[pio.IO_PORT] = e.dp_port
            e.tx[pmd_id] = (row, mem)
        return e.tx[pmd_id]

    def del_port(self, dp_port):
        with self._lock:
            e = self.ports.pop(dp_port)
            self._reconfigure()
            log.info("%s: deleted port %s (%d)", self.name, e.name, dp_port)

    def port_names(self):
        return {d: e.name for d, e in self.ports.items()}

    # -------------------------------------------------------------- pmds --
    def set_pmd_cpus(self, cpus):
        with self._lock:
            for pmd in self.pmds:
                pmd.stop()
            if self._nonpmd is not None:
                self._fold_stats()              # the old PMDs' port counters
                os.close(self._nonpmd.wake_fd)
            parts = self.pool.partition(len(cpus) + 1)
            self.pmds = [Pmd(c, c, self.pool, parts[i].slots, self.clock, self.cyc_per_us,
                             max_flows=self.max_flows, ct=self.ct) for i, c in enumerate(cpus)]
            self._nonpmd = Pmd(NON_PMD_ID, -1, self.pool, parts[-1].slots[:NON_PMD_SLOTS], self.clock,
                               self.cyc_per_us, max_flows=16, emc_entries=16, ct=self.ct)
            for pmd in self.pmds + [self._nonpmd]:
                pmd.upcall, pmd.userspace = self._upcall, self._userspace
                pmd.p.ctl[S.C_SLEEP_MAX_US] = self.sleep_max_us
                pmd.p.ctl[S.C_EMC_INV_PROB] = self.emc_inv
            for e in self.ports.values():
                for pmd in self.pmds:
                    self._tx_rows(e, pmd.pmd_id)
            self._reconfigure()
            for pmd in self.pmds:
                pmd.start()

    def fit_mtu(self, mtu):
        """Make pool slots hold frames of `mtu` (jumbo frames): a pool with
        larger slots replaces the old one and the PMDs restart on it (their
        megaflows are dropped, as with set_pmd_cpus). Slots never shrink, so
        a switch without jumbo ports keeps its small slots. True if it grew."""
        with self._lock:
            if data_size_for_mtu(mtu) <= self.pool.data_size:
                return False
            old = self.pool
            self.pool = Pool(old.n_slots, mtu, self.rundir, name=f"{self.name}.pool")
            self.set_pmd_cpus([pmd.core for pmd in self.pmds])   # stops the PMDs using `old`
            old.close()
            log.info("%s: packet pool slots grown to %d bytes of data (mtu %d)", self.name,
                     self.pool.data_size, mtu)
            return True

    def set_sleep_max(self, us):
        with self._lock:
            self.sleep_max_us = int(us)
            for pmd in self.pmds:
                pmd.p.ctl[S.C_SLEEP_MAX_US] = self.sleep_max_us
                pmd.wake()

    def set_upcall_handler(self, fn):
        self.upcall_handler = fn

    def set_userspace_handler(self, fn):
        self.userspace_handler = fn

    def _upcall(self, keys, in_ports, packets):
        fn = self.upcall_handler
        if fn is None:
            return None
        with self._upcall_lock:
            return fn(keys, in_ports, packets)

    def _userspace(self, key, in_port, packet, arg):
        fn = self.userspace_handler
        if fn is not None:
            fn(key, in_port, packet, arg)

    class _Parked:
        def __init__(self, pmds):
            self.pmds = pmds

        def __enter__(self):
            for p in self.pmds:
                p.park()

        def __exit__(self, *exc):
            for p in self.pmds:
                p.release()

    def parked(self, pmds=None):
        """Context manager: the PMDs (default all) are parked inside."""
        return self._Parked(self.pmds if pmds is None else pmds)

    @contextlib.contextmanager
    def quiesce(self):
        """Park every PMD, from any thread (Port.quiesce: a port rewriting its
        io rows or remapping its memory in place)."""
        with self._lock, self.parked():
            yield

    def _reconfigure(self):
        """Rebuild every PMD's rows, rxqs, txmap and poll fds (round-robin)."""
        with self.parked():
            self._fold_stats()
            rxqs = [(e, q, row, mem) for e in self.ports.values() for (q, row, mem) in e.rx]
            for i, pmd in enumerate(self.pmds + [self._nonpmd]):
                mine = [] if pmd is self._nonpmd else rxqs[i::len(self.pmds)]
                self._load(pmd, mine)

    def _load(self, pmd, rxqs):
        p = pmd.p
        need = len(rxqs) + len(self.ports)     # its rx rows, and a tx row per port
        if need > len(p.rowptr):               # checked before anything changes
            raise ValueError(f"pmd {pmd.pmd_id}: {need} io rows needed, at most {len(p.rowptr)} "
                             f"(rx queues it polls + ports)")
        rows, mems = [], []
        pmd.rxqs = []
        p.txmap[:] = -1
        fds = [pmd.wake_fd]
        for j, (e, q, row, mem) in enumerate(rxqs):
            p.rxq[j] = len(rows)
            rows.append(row)
            mems.append(mem)
            pmd.rxqs.append((e.dp_port, e.name, q))
            if row[pio.IO_FD] >= 0:
                fds.append(int(row[pio.IO_FD]))
        for e in self.ports.values():
            row, mem = self._tx_rows(e, pmd.pmd_id)
            p.txmap[e.dp_port] = len(rows)
            rows.append(row)
            mems.append(mem)
        p.ctl[S.C_NRXQ] = len(rxqs)   # (qstats: zeroed by _fold_stats, which ran first)
        p.rxq_cycles[:] = 0
        pmd.rxq_base = None
        p.pollfds[:] = 0
        for k, fd in enumerate(fds):
            p.pollfds[k, 0] = fd
        p.ctl[S.C_NPOLL] = len(fds)
        # Long idle sleeps only when every rxq can wake the PMD through its fd.
        p.ctl[S.C_FD_WAKES] = int(all(row[pio.IO_FD] >= 0 for (_, _, row, _) in rxqs))
        if len(rows) > len(p.rowptr):
            raise ValueError(f"pmd {pmd.pmd_id}: more than {len(p.rowptr)} io rows")
        load_rows(p, rows, mems)
        pmd.rows, pmd.mems, pmd.row_ports = rows, mems, [int(r[pio.IO_PORT]) for r in rows]

    def _fold_stats(self):
        for pmd in self.pmds + [self._nonpmd]:
            for r, dp in enumerate(getattr(pmd, "row_ports", [])):
                if dp in self.ports:
                    self.ports[dp].base += pmd.p.qstats[r]
            pmd.p.qstats[:] = 0     # folded: a reconfiguration that fails and is redone counts once

    # ------------------------------------------------------------- flows --
    def flow_put(self, key, mask, actions):
        with self._lock, self.parked():
            prog = A.encode_actions(actions)
            return [pmd.install(key, mask, prog) for pmd in self.pmds]

    def flow_dump(self):
        with self._lock, self.parked():
            out = []
            for pmd in self.pmds:
                for f in pmd.live_flows():
                    out.append(Megaflow(pmd.pmd_id, *pmd.flow(f)))
            return out

    def flow_capacity(self):
        """Megaflows one PMD's table holds."""
        return min((pmd.max_flows for pmd in self.pmds), default=0)

    def flow_counters(self, expire_before=None):
        """[(pmd_id, keys, masks, packets, bytes, last_used, expired)]: every
        megaflow's identity and counters, each PMD parked only while its
        arrays are copied. expire_before(n_live, capacity) -> ns: the flows
        whose last_used is older are deleted in the same park (so the
        counters returned are their final ones) and marked in `expired`."""
        out = []
        with self._lock:
            for pmd in self.pmds:
                with self.parked([pmd]):
                    c = pmd.flow_counters()
                    gone = (np.zeros(len(c[0]), bool) if expire_before is None
                            else pmd.expire(expire_before(len(c[0]), pmd.max_flows)))
                    out.append((pmd.pmd_id, *c, gone))
        return out

    def format_flows(self, flows=None):
        flows = self.flow_dump() if flows is None else flows
        now = self.clock.now_ns()
        return "".join(format_flow(f.key, f.mask, f.actions, f.packets, f.bytes, f.used, now,
                                   f.tcp_flags) + "\n" for f in flows)

    def flow_del(self, key, mask):
        """Delete the megaflows with this mask and masked key; returns how many."""
        key, mask = np.asarray(key, np.uint64), np.asarray(mask, np.uint64)
        n = 0
        with self._lock, self.parked():
            for pmd in self.pmds:
                for f in pmd.live_flows():
                    k, m = pmd.flow(f)[:2]
                    if np.array_equal(m, mask) and np.array_equal(k, key & mask):
                        pmd.delete(f)
                        n += 1
        return n

    def flow_flush(self):
        with self._lock, self.parked():
            for pmd in self.pmds:
                pmd.flush()

    def revalidate(self, fn, macs=None, before=None):
        """fn(key, mask, actions) -> (actions, mask) to keep/change, None to
        delete; each PMD is parked while its flows are visited. macs: only
        the flows that match one of these MACs as dl_src or dl_dst (or do not
        match dl_dst exactly), i.e. those a MAC learning change can affect;
        before(counters) sees that selection's counters first, in
        flow_counters' shape, to credit them."""
        kept = changed = deleted = 0
        with self._lock:
            for pmd in self.pmds:
                with self.parked([pmd]):
                    ids = pmd.live_flows() if macs is None else pmd.flows_for_macs(macs)
                    if before is not None:
                        c = pmd.flow_counters(ids)
                        before([(pmd.pmd_id, *c, np.zeros(len(c[0]), bool))])
                    for f in ids:
                        key, mask, acts = pmd.flow(f)[:3]
                        res = fn(key, mask, acts)
                        if res is None:
                            pmd.delete(f)
                            deleted += 1
                            continue
                        nacts, nmask = res
                        nmask = mask if nmask is None else np.asarray(nmask, np.uint64)
                        if np.array_equal(nmask, mask) and list(nacts) == list(acts):
                            kept += 1
                            continue
                        if not np.array_equal(nmask, mask):
                            pmd.delete(f)
                        pmd.install(key, nmask, A.encode_actions(nacts))
                        changed += 1
        return kept, changed, deleted

    # -------------------------------------------------------- packet-out --
    def execute(self, packet, actions, in_port=0):
        """Run actions over one packet on the control thread (packet-out)."""
        with self._lock:
            np_ = self._nonpmd
            p = np_.p
            top = int(p.ctl[S.C_FREE_TOP])
            if top == 0 or len(packet) > self.pool.data_size:
                return False
            slot = int(p.free[top - 1])
            p.ctl[S.C_FREE_TOP] = top - 1
            off = 128
            self.pool.buf[slot, off:off + len(packet)] = np.frombuffer(bytes(packet), np.uint8)
            n = int(p.ctl[S.C_UPQ_N])
            p.upq_meta[n] = (slot, off, len(packet), in_port, S.KIND_MISS, 0)
            p.upq_key[n] = 0
            p.ctl[S.C_UPQ_N] = n + 1
            saved, np_.upcall = np_.upcall, (lambda k, i, pk: [(actions, None)] * len(pk))
            try:
                while p.ctl[S.C_UPQ_N] > 0:
                    np_.handle_upcalls()
                    np_.upcall = lambda k, i, pk: [None] * len(pk)
            finally:
                np_.upcall = saved
            return True

    # ------------------------------------------------------------- stats --
    def port_stats(self, dp_port):
        e = self.ports[dp_port]
        tot = e.base.copy()
        for pmd in self.pmds + [self._nonpmd]:
            for r, dp in enumerate(getattr(pmd, "row_ports", [])):
                if dp == dp_port:
                    tot += pmd.p.qstats[r]
        return {name: int(tot[i]) for i, name in enumerate(pio.Q_NAMES)}

    # --------------------------------------------------------- conntrack --
    def ct_sweep(self, budget=4096):
        """Expire connections (control thread, periodically); returns how many."""
        if self.ct.ctl[CT.G_N] == 0:      # nothing to expire: skip the scan
            return 0
        return int(CT.ct_sweep(self.ct, self.clock.now_ns(), budget))

    def ct_flush(self, zone=None):
        return int(CT.ct_flush(self.ct, -1 if zone is None else zone))

    def ct_dump(self, zone=None, verbose=False):
        return CTD.dump(self.ct, zone, self.clock.now_ns(), verbose)

    def ct_stats(self):
        return CTD.stats(self.ct, self.clock.now_ns())

    def ct_set_maxconns(self, n):
        if not 0 < n <= self.ct.conn.shape[0]:
            raise ValueError(f"maxconns must be 1..{self.ct.conn.shape[0]} (the table's capacity)")
        self.ct.ctl[CT.G_MAX] = n

    def ct_get_maxconns(self):
        return int(self.ct.ctl[CT.G_MAX])

    def pmd_stats(self):
        return dpifshow.pmd_stats(self)

    def packets_received(self):
        """Packets every PMD has received so far, read without parking them
        (one aligned word per PMD): tells the control thread whether any
        megaflow counter can have moved."""
        return sum(int(pmd.p.stats[S.S_PACKETS]) for pmd in self.pmds)

    def pmd_stats_show(self):
        return dpifshow.pmd_stats_show(self)

    def pmd_stats_clear(self):
        dpifshow.pmd_stats_clear(self)

    def rxq_show(self):
        return dpifshow.rxq_show(self)

    def close(self):
        with self._lock:
            for pmd in self.pmds:
                pmd.stop()
            self.pmds = []
            self.ports = {}
            if self._nonpmd is not None:
                os.close(self._nonpmd.wake_fd)
                self._nonpmd = None
            self.pool.close()
