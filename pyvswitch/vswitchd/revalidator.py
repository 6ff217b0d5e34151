"""The revalidator: what happened in the datapath, told back to ofproto.

Packets that hit a megaflow never reach Python, so once a second (and before
every revalidation) the main thread dumps the megaflows and, for every flow
that saw packets since the last sweep:
- credits the packet and byte deltas to the OpenFlow rules (and group
  buckets) that flow was *translated to* -- remembered per megaflow in an
  xcache when it is installed or re-translated, as OVS's xcache does -- so a
  flow-mod never moves old packets onto new rules;
- replays the side effects its translation recorded (XlateResult.refreshes,
  kept in the xcache as OVS keeps XC_NORMAL and XC_LEARN entries): NORMAL
  marks the flow's source MAC as seen (a host that keeps talking never ages
  out) without ever re-learning from old traffic (which could undo a MAC
  move), a learn action's flow is used. A flow without an xcache entry (put
  with dpctl, say) is translated again in "refresh" mode instead, which has
  the same effects.

A megaflow that revalidation reinstalls starts its counters at zero: its
identity (pmd, masked key, mask) is marked so the next sweep reads its count
as new, even when an earlier flow had the same identity.

Idle expiry, as OVS's revalidators do it: the sweep deletes every megaflow
neither hit nor installed for `max_idle` seconds (other_config:max-idle,
10 s by default), after crediting its last packets; on a PMD holding more
than `flow_limit` megaflows (other_config:flow-limit) the limit drops to
0.1 s, so a full table makes room for new traffic. An idle switch still
sweeps when the oldest megaflow falls due (`next_expiry`).

Threads: `remember` runs on PMD threads (in upcalls) and the main thread, under
the switch lock; everything else on the main thread.
"""

import time
from collections import namedtuple

import numpy as np

from pyvswitch.datapath.layout import field_mask, get_field
from pyvswitch.ofproto.ofproto import Ofproto
from pyvswitch.ofproto.xlate import xlate

MAX_IDLE = 10.0         # s: OVS's default other_config:max-idle (10000 ms)
CROWDED_MAX_IDLE = 0.1  # s: a PMD over flow_limit, as OVS does past its flow limit


# What a megaflow's translation left for the revalidator: the rules (and
# group buckets, table counters) to credit, its refreshes (fn(now) each), and
# the Ofproto.fdb_seq it saw.
XcacheEntry = namedtuple("XcacheEntry", "rules refreshes fdb_seq")


def flow_id(key, mask):
    """A megaflow's identity without its PMD: (masked key, mask) as bytes."""
    return (key & mask).tobytes(), mask.tobytes()


class Revalidator:
    def __init__(self, switch):
        self.sw = switch
        self.last = {}     # (pmd_id, key bytes, mask bytes) -> (packets, bytes)
        self.xcache = {}   # flow_id -> XcacheEntry of its translation
        self.fresh = set()  # flow_ids reinstalled since the last sweep (counters at 0)
        self.received = None  # PMDs' packets received at the last sweep
        self.max_idle = MAX_IDLE
        self.flow_limit = None    # megaflows per PMD before CROWDED_MAX_IDLE (None: 90 % full)
        self.next_expiry = float("inf")   # when the oldest megaflow falls idle
        self.n_expired = 0
        self.n_flows = self.max_flows = 0  # megaflows at the last sweep, and the most seen
        self.dump_ms = 0.0                 # the last sweep's dump, credit and expiry

    def remember(self, key, mask, rules_hit, refreshes=(), reinstalled=False):
        """Record the translation a megaflow was (re)installed with: the
        rules to credit and its refreshes (XlateResult's). Caller holds the
        switch lock."""
        fid = flow_id(key, mask)
        self.xcache[fid] = XcacheEntry(list(rules_hit), list(refreshes), Ofproto.fdb_seq)
        if reinstalled:
            self.fresh.add(fid)

    def saw_fdb_changes(self, key, mask, macs):
        """True if the megaflow (key, mask) was translated after the latest
        change of every MAC in `macs` ({mac: Ofproto.fdb_seq}) it can depend
        on: those it matches exactly as dl_src or dl_dst, or all of them if
        it does not match dl_dst exactly. Such a flow needs no new
        translation (in a learning storm, most flows selected for a MAC are
        the one that learned it). Caller holds the switch lock."""
        cached = self.xcache.get(flow_id(key, mask))
        if cached is None or not macs:
            return False
        need = 0
        for name in ("dl_src", "dl_dst"):
            w, bits = field_mask(name)
            if int(mask[w]) & bits == bits:
                need = max(need, macs.get(get_field(key, name), 0))
            elif name == "dl_dst":
                need = max(macs.values())
        return cached.fdb_seq >= need

    def sweep(self, now):
        # Megaflow counters only move when a PMD receives packets: an idle
        # switch skips the dump (it parks every PMD) unless a flow falls idle.
        # Flows reinstalled in the meantime stay in `fresh` for the next
        # sweep that runs.
        received = self.sw.dpif.packets_received()
        if received == self.received and now < self.next_expiry:
            return
        self.received = received
        t0 = time.monotonic()
        # arrays (dpif.flow_counters): the PMDs are parked for a copy only
        counters = self.sw.dpif.flow_counters(expire_before=self._cutoffs(now))
        seen, live = self._credit_flows(counters, now)
        self.fresh = set()
        self.last = seen
        with self.sw.lock:
            self.xcache = {fid: v for fid, v in self.xcache.items() if fid in live}
        self.next_expiry = self._next_expiry(counters)
        self.n_flows = sum(int(np.count_nonzero(~c[6])) for c in counters)
        self.max_flows = max(self.max_flows, sum(len(c[1]) for c in counters))
        self.dump_ms = (time.monotonic() - t0) * 1000

    def show(self):
        """upcall/show: OVS's layout, with this datapath's figures."""
        capacity = self.sw.dpif.flow_capacity()
        limit = self.flow_limit if self.flow_limit is not None else capacity * 9 // 10
        return (f"netdev@pyvswitch:\n"
                f"  flows         : (current {self.n_flows}) (max {self.max_flows}) "
                f"(limit {limit} per PMD)\n"
                f"  max idle      : {int(self.max_idle * 1000)} ms\n"
                f"  expired       : {self.n_expired}\n"
                f"  dump duration : {self.dump_ms:.0f}ms\n")

    def _cutoffs(self, now):
        """expire_before for dpif.flow_counters: n live flows -> ns cutoff."""
        now_ns = int(now * 1e9)
        normal = now_ns - int(self.max_idle * 1e9)
        crowded = now_ns - int(min(self.max_idle, CROWDED_MAX_IDLE) * 1e9)
        limit = self.flow_limit

        def cutoff(n_live, capacity):
            over = n_live > (limit if limit is not None else capacity * 9 // 10)
            return crowded if over else normal
        return cutoff

    def _next_expiry(self, counters):
        """The sweep time at which the oldest surviving megaflow is idle."""
        oldest = min((int(used[~gone].min()) for *_, used, gone in counters if (~gone).any()),
                     default=None)
        return float("inf") if oldest is None else oldest / 1e9 + self.max_idle

    def sweep_some(self, counters, now):
        """Credit only these megaflows, given as dpif.flow_counters gives
        them (a targeted revalidation is about to re-translate them); the
        other flows wait for the next sweep."""
        seen, live = self._credit_flows(counters, now)
        self.fresh -= live
        self.last.update(seen)

    def _credit_flows(self, counters, now):
        """Credit what each flow earned since it was last seen (all of it if
        it was reinstalled with fresh counters meanwhile)."""
        seen, live = {}, set()
        for pmd_id, keys, masks, pks, bys, _, gone in counters:
            self.n_expired += int(np.count_nonzero(gone))
            for key, mask, packets, nbytes, expired in zip(keys, masks, pks.tolist(), bys.tolist(),
                                                           gone.tolist()):
                fid = (key.tobytes(), mask.tobytes())
                ident = (pmd_id,) + fid
                p0, b0 = (0, 0) if fid in self.fresh else self.last.get(ident, (0, 0))
                if packets < p0:
                    p0, b0 = 0, 0
                if packets > p0:
                    self._credit(fid, key, packets - p0, nbytes - b0, now)
                if not expired:        # an expired flow's identity may come back, from zero
                    live.add(fid)
                    seen[ident] = (packets, nbytes)
        return seen, live

    def _credit(self, fid, key, packets, nbytes, now):
        sw = self.sw
        with sw.lock:
            cached = self.xcache.get(fid)
            if cached is not None:
                # no translation (a Python xlate per flow made learning
                # 100,000 MACs twice as slow)
                for rule in cached.rules:
                    Ofproto.credit(rule, packets, nbytes, now)
                for refresh in cached.refreshes:
                    refresh(now)
                return
            if hasattr(sw, "translate"):      # the daemon: through tunnel ports too
                ofp, r = sw.translate(key, now, learn="refresh")
            else:
                br = sw.bridge_of_dp_port(get_field(key, "in_port"))
                ofp = br.ofproto if br is not None else None
                r = xlate(ofp, key, now, learn="refresh") if ofp is not None else None
            if ofp is None:
                return
            for rule in r.rules_hit:
                ofp.credit(rule, packets, nbytes, now)
