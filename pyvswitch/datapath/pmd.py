"""A PMD thread: the Python side around one long compiled call.

    Pmd(pmd_id, core, pool, free_slots, clock, ...)   built by Dpif
    start() / stop()        the thread (pinned with os.sched_setaffinity)
    park() / release()      the quiescent handshake (control thread)

Loop (PMD thread): stamp the time words, call pmdloop.pmd_loop; on RET_UPCALL
hand the waiting packets to the upcall handler, install the megaflows it
returns (dpcls + actions), execute every waiting packet with one
execute_upcalls call, and go round again; on RET_GEN acknowledge and wait.

Handshake: park() sets `held`, bumps ctl[C_GEN] (store_release), writes the
wake eventfd, and waits until the PMD thread has copied C_GEN into C_ACK
(store_release) at the top of its loop: from then until release() the PMD
thread runs no kernel and touches no table, so the control thread may change
rxqs, io rows, txmap and flow tables freely. A thread that is not running is
"parked" by definition.

Flow tables are written only by this PMD thread (after upcalls) or by the
control thread while parked: installs, deletes and the actions allocator
(a bump pointer, compacted when full) need no lock.
"""

import os
import threading
import traceback

import numpy as np

from pyvswitch.core import vlog
from pyvswitch.core.intrinsics import load_acquire, read_tsc, store_release
from pyvswitch.datapath import actions as A
from pyvswitch.datapath.kernels import dpcls as D
from pyvswitch.datapath.kernels import state as S
from pyvswitch.datapath.kernels.emc import emc_clear
from pyvswitch.datapath.kernels.pmdloop import execute_upcalls, pmd_loop
from pyvswitch.datapath.layout import field_mask, pack_key
from pyvswitch.ports import io as pio

log = vlog.Module("dpif_netdev")


def load_rows(p, rows, mems):
    """Publish io rows and their memories in p.rowptr/p.memptr (the caller
    keeps `rows` and `mems` referenced while the PMD may use them)."""
    for r, (row, mem) in enumerate(zip(rows, mems)):
        if row.dtype != np.int64 or not row.flags.c_contiguous or len(row) < pio.IO_COLS:
            raise ValueError("io row must be a contiguous int64[IO_COLS] array")
        if mem.dtype != np.uint8 or not mem.flags.c_contiguous:
            raise ValueError("port memory must be a contiguous uint8 array")
        p.rowptr[r] = row.ctypes.data
        p.memptr[r] = (mem.ctypes.data, mem.shape[0])


# io rows a PMD can hold: the rx queues it polls plus one tx row per datapath
# port, so about 1000 single-queue ports on one PMD. Nothing per packet
# scales with it (outputs mark the rows they touch); a row costs ~150 bytes.
MAX_ROWS = 2048


class Pmd:
    def __init__(self, pmd_id, core, pool, free_slots, clock, cyc_per_us,
                 max_flows=65536, emc_entries=8192, max_rows=None, ct=None):
        self.pmd_id, self.core, self.pool, self.clock = pmd_id, core, pool, clock
        self.max_flows = max_flows
        self.p = S.new_state(pool.buf, free_slots, max_rows=max_rows or MAX_ROWS, ct=ct)
        # 16 action words per megaflow: a full table of NORMAL floods fits
        # (1 << 18 words for 65,536 flows ran out at 47,000, and every upcall
        # then compacted the whole space in Python)
        self.t = D.new_tables(max_flows=max_flows, emc_entries=emc_entries,
                              action_words=16 * max_flows)
        self._actions_full = False   # compacting cannot help until a flow goes
        self.rows, self.mems = [], []        # referenced while published in p.rowptr/memptr
        self.rxqs = []                       # [(dp_port, port name, queue)] as in p.rxq
        self.n_slots = len(free_slots)
        self.act_top = 0
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.p.ctl[S.C_WAKE_FD] = self.wake_fd
        self.p.ctl[S.C_CYC_PER_US] = cyc_per_us
        self.upcall = None                   # fn(keys, in_ports, packets) -> [(actions, mask)]
        self.userspace = None                # fn(key, in_port, packet, arg)
        self._cond = threading.Condition()
        self._held = False
        self._stopping = False
        self._thread = None
        self.error = None

    # ---------------------------------------------------------- handshake --
    def start(self):
        self._thread = threading.Thread(target=self._run, name=f"pmd-c{self.core:02d}/id:{self.pmd_id}",
                                        daemon=True)
        self._thread.start()

    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def wake(self):
        os.eventfd_write(self.wake_fd, 1)

    def park(self):
        with self._cond:
            self._held = True
            gen = int(self.p.ctl[S.C_GEN]) + 1
            store_release(self.p.ctl, S.C_GEN, gen)
            self.wake()
            while self.running() and load_acquire(self.p.ctl, S.C_ACK) != gen:
                self._cond.wait(0.05)
                self.wake()

    def release(self):
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def stop(self):
        with self._cond:
            self._stopping = True
            store_release(self.p.ctl, S.C_STOP, 1)
            self._held = False
            self._cond.notify_all()
        self.wake()
        if self._thread is not None:
            self._thread.join(10)
        os.close(self.wake_fd)

    # --------------------------------------------------------------- loop --
    def _run(self):
        try:
            os.sched_setaffinity(0, {self.core})
        except (OSError, ValueError):
            log.warn("pmd %d: could not pin to core %d", self.pmd_id, self.core)
        try:
            while True:
                with self._cond:
                    # Acknowledge every generation, also one bumped while we
                    # were parked: a release followed at once by a new park
                    # must not leave the controller waiting for an ack.
                    while True:
                        gen = load_acquire(self.p.ctl, S.C_GEN)
                        if gen != self.p.ctl[S.C_ACK]:
                            store_release(self.p.ctl, S.C_ACK, gen)
                            self._cond.notify_all()
                        if not self._held or self._stopping:
                            break
                        self._cond.wait()
                    if self._stopping:
                        return
                self.stamp_time()
                ret = pmd_loop(self.p, self.t)
                if self.p.ctl[S.C_UPQ_N] > 0:
                    self.handle_upcalls()
                if ret == S.RET_ITER:
                    D.dpcls_sort(self.t)
        except Exception as e:          # a bug: keep the daemon alive, say why
            self.error = e
            log.err("pmd %d died: %s", self.pmd_id, traceback.format_exc())

    def stamp_time(self):
        self.p.ctl[S.C_NOW_TSC] = read_tsc()
        self.p.ctl[S.C_NOW_NS] = self.clock.now_ns()

    # ------------------------------------------------------------ upcalls --
    def handle_upcalls(self):
        p = self.p
        n = int(p.ctl[S.C_UPQ_N])
        meta = p.upq_meta[:n].copy()
        keys = p.upq_key[:n].copy()
        frames = [self.pool.frame(m[S.U_SLOT], m[S.U_OFF], m[S.U_LEN]) for m in meta]
        misses = [i for i in range(n) if meta[i, S.U_KIND] == S.KIND_MISS]
        answers = self._ask(keys, meta, frames, misses)
        progs, offs, lens = [], np.zeros(n, np.int64), np.zeros(n, np.int64)
        flows = np.full(n, -1, np.int64)
        at = 0
        for i in range(n):
            if meta[i, S.U_KIND] != S.KIND_MISS:
                if self.userspace is not None:
                    self._safe(self.userspace, keys[i], int(meta[i, S.U_IN_PORT]), frames[i],
                               int(meta[i, S.U_ARG]))
                continue
            ans = answers.get(i)
            if ans is None:
                p.stats[S.S_UPCALL_FAIL] += 1
                continue
            acts, mask = ans
            prog = A.encode_actions(acts)
            p.stats[S.S_UPCALL_OK] += 1
            if mask is not None:
                flows[i] = self.install(keys[i], mask, prog)
            progs.append(prog)
            offs[i], lens[i] = at, len(prog)
            at += len(prog)
        prog = np.concatenate(progs) if progs else np.zeros(2, np.int64)
        self.stamp_time()
        execute_upcalls(p, self.t, n, prog, offs, lens, flows,
                        self.clock.now_ns())

    def _ask(self, keys, meta, frames, misses):
        """{upq index: (actions, mask or None)} from the handler; failures absent."""
        if not misses or self.upcall is None:
            return {}
        sel = np.array(misses)
        res = self._safe(self.upcall, keys[sel], meta[sel, S.U_IN_PORT].copy(),
                         [frames[i] for i in misses])
        out = {}
        if res is None or len(res) != len(misses):
            return out
        for i, r in zip(misses, res):
            if r is None:
                continue
            try:
                acts, mask = r
                A.encode_actions(acts)
                out[i] = (acts, None if mask is None else np.asarray(mask, np.uint64))
            except (TypeError, ValueError) as e:
                log.warn("pmd %d: bad upcall answer %r: %s", self.pmd_id, r, e)
        return out

    def _safe(self, fn, *args):
        try:
            return fn(*args)
        except Exception:
            log.err("pmd %d: handler failed: %s", self.pmd_id, traceback.format_exc())
            return None

    # -------------------------------------------------------- flow tables --
    def install(self, key, mask, prog):
        """Megaflow key/mask -> prog (encoded); returns its index or -1.
        PMD thread, or control thread with this PMD parked."""
        off = self._alloc_actions(len(prog))
        if off < 0:
            return -1
        self.t.actions[off:off + len(prog)] = prog
        f = int(D.dpcls_insert(self.t, np.asarray(key, np.uint64), np.asarray(mask, np.uint64),
                               off, len(prog)))
        if f >= 0 and self.t.mf_meta[f, D.MF_CREATED] == 0:
            self.t.mf_meta[f, D.MF_CREATED] = self.clock.now_ns()   # idle expiry counts from here
        return f

    def _alloc_actions(self, n):
        size = len(self.t.actions)
        if self.act_top + n > size:
            if self._actions_full:        # nothing freed since the last compaction
                return -1
            self._compact_actions()
            if self.act_top + n > size:
                self._actions_full = True
                log.warn("pmd %d: actions space full (megaflows are not cached until "
                         "some expire or are deleted)", self.pmd_id)
                return -1
        off = self.act_top
        self.act_top += n
        return off

    def _compact_actions(self):
        live = self.live_flows()
        progs = [self.t.actions[self.t.mf_meta[f, D.MF_ACT_OFF]:][:self.t.mf_meta[f, D.MF_ACT_LEN]].copy()
                 for f in live]
        at = 0
        for f, prog in zip(live, progs):
            self.t.actions[at:at + len(prog)] = prog
            self.t.mf_meta[f, D.MF_ACT_OFF] = at
            at += len(prog)
        self.act_top = at

    def _live(self):
        return np.nonzero(self.t.mf_meta[:, D.MF_STATE] == 1)[0]

    def live_flows(self):
        return [int(f) for f in self._live()]

    def flow_counters(self, ids=None):
        """(keys, masks, packets, bytes, last_used) of the flows `ids`
        (default: every live flow), copied with a few numpy operations: what
        the revalidator needs, without decoding each flow's actions (which
        took the PMD parked for seconds at 50,000 flows). last_used is the
        last hit, or the install time of a flow never hit (ns)."""
        ids = self._live() if ids is None else np.asarray(ids, np.int64)
        meta = self.t.mf_meta[ids]
        return (self.t.mf_key[ids].copy(), self.t.sub_mask[meta[:, D.MF_SUB]].copy(),
                meta[:, D.MF_PACKETS].copy(), meta[:, D.MF_BYTES].copy(),
                np.maximum(meta[:, D.MF_USED], meta[:, D.MF_CREATED]))

    def expire(self, before_ns):
        """Delete the megaflows neither hit nor installed since before_ns
        (the datapath's idle expiry); returns which went, as a bool array in
        flow_counters() order."""
        live = self._live()
        meta = self.t.mf_meta[live]
        gone = np.maximum(meta[:, D.MF_USED], meta[:, D.MF_CREATED]) < before_ns
        if gone.any():
            D.dpcls_delete_many(self.t, live[gone])
            self._actions_full = False
        return gone

    def flows_for_macs(self, macs):
        """Live flows a change of these MACs' fdb entries can affect: those
        matching one of them exactly as dl_dst or dl_src, and those that do
        not match dl_dst exactly (they may not come from NORMAL). Vectorised
        over the flow table: a few MACs learned among 100,000 flows must not
        cost a translation per flow."""
        live = self._live()
        if len(live) == 0:
            return []
        keys = self.t.mf_key[live]
        masks = self.t.sub_mask[self.t.mf_meta[live, D.MF_SUB]]
        pick = np.zeros(len(live), bool)
        for field in ("dl_dst", "dl_src"):
            w, bits = field_mask(field)
            bits = np.uint64(bits)
            vals = np.array([pack_key({field: m})[w] for m in macs], np.uint64)
            exact = (masks[:, w] & bits) == bits
            pick |= exact & np.isin(keys[:, w] & bits, vals)
            if field == "dl_dst":
                pick |= ~exact
        return [int(f) for f in live[pick]]

    def flow(self, f):
        """(key, mask, actions list, packets, bytes, used_ns, tcp_flags)."""
        m = self.t.mf_meta[f]
        prog = self.t.actions[m[D.MF_ACT_OFF]:m[D.MF_ACT_OFF] + m[D.MF_ACT_LEN]]
        return (self.t.mf_key[f].copy(), self.t.sub_mask[m[D.MF_SUB]].copy(),
                A.decode_actions(prog), int(m[D.MF_PACKETS]), int(m[D.MF_BYTES]),
                int(m[D.MF_USED]), int(m[D.MF_TCP_FLAGS]))

    def delete(self, f):
        D.dpcls_delete(self.t, f)
        self._actions_full = False

    def flush(self):
        """Drop every megaflow and the EMC (parked or on the PMD thread)."""
        for f in self.live_flows():
            D.dpcls_delete(self.t, f)
        emc_clear(self.t)
        D.dpcls_rehash(self.t)
        self.act_top = 0
        self._actions_full = False
