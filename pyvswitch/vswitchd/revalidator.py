"""The revalidator: what happened in the datapath, told back to ofproto.

Packets that hit a megaflow never reach Python, so once a second (and before
every revalidation) the main thread dumps the megaflows and, for every flow
that saw packets since the last sweep:
- credits the packet and byte deltas to the OpenFlow rules (and group
  buckets) that flow was *translated to* -- remembered per megaflow in an
  xcache when it is installed or re-translated, as OVS's xcache does -- so a
  flow-mod never moves old packets onto new rules;
- translates its key again with learning in "refresh" mode, so NORMAL marks
  the flow's source MAC as seen (a host that keeps talking never ages out)
  without ever re-learning from old traffic (which could undo a MAC move).

A megaflow that revalidation reinstalls starts its counters at zero: its
identity (pmd, masked key, mask) is marked so the next sweep reads its count
as new, even when an earlier flow had the same identity.

Threads: `remember` runs on PMD threads (in upcalls) and the main thread, under
the switch lock; everything else on the main thread.
"""

from pyvswitch.datapath.layout import get_field
from pyvswitch.ofproto.xlate import xlate


def flow_id(key, mask):
    """A megaflow's identity without its PMD: (masked key, mask) as bytes."""
    return (key & mask).tobytes(), mask.tobytes()


class Revalidator:
    def __init__(self, switch):
        self.sw = switch
        self.last = {}     # (pmd_id, key bytes, mask bytes) -> (packets, bytes)
        self.xcache = {}   # flow_id -> (bridge name, rules_hit) of its translation
        self.fresh = set()  # flow_ids reinstalled since the last sweep (counters at 0)
        self.received = None  # PMDs' packets received at the last sweep

    def remember(self, bridge, key, mask, rules_hit, reinstalled=False):
        """Record the translation a megaflow was (re)installed with. Caller
        holds the switch lock."""
        fid = flow_id(key, mask)
        self.xcache[fid] = (bridge, list(rules_hit))
        if reinstalled:
            self.fresh.add(fid)

    def sweep(self, now):
        # Megaflow counters only move when a PMD receives packets: an idle
        # switch skips the dump (it parks every PMD). Flows reinstalled in
        # the meantime stay in `fresh` for the next sweep that runs.
        received = self.sw.dpif.packets_received()
        if received == self.received:
            return
        self.received = received
        # arrays (dpif.flow_counters): the PMDs are parked for a copy only
        seen, live = self._credit_flows(self.sw.dpif.flow_counters(), now)
        self.fresh = set()
        self.last = seen
        with self.sw.lock:
            self.xcache = {fid: v for fid, v in self.xcache.items() if fid in live}

    def sweep_some(self, counters, now):
        """Credit only these megaflows, [(pmd_id, keys, masks, packets,
        bytes)] as dpif.flow_counters gives them (a targeted revalidation is
        about to re-translate them); the other flows wait for the next sweep."""
        seen, live = self._credit_flows(counters, now)
        self.fresh -= live
        self.last.update(seen)

    def _credit_flows(self, counters, now):
        """Credit what each flow earned since it was last seen (all of it if
        it was reinstalled with fresh counters meanwhile)."""
        seen, live = {}, set()
        for pmd_id, keys, masks, pks, bys in counters:
            for key, mask, packets, nbytes in zip(keys, masks, pks.tolist(), bys.tolist()):
                fid = (key.tobytes(), mask.tobytes())
                ident = (pmd_id,) + fid
                live.add(fid)
                seen[ident] = (packets, nbytes)
                p0, b0 = (0, 0) if fid in self.fresh else self.last.get(ident, (0, 0))
                if packets < p0:
                    p0, b0 = 0, 0
                if packets > p0:
                    self._credit(fid, key, packets - p0, nbytes - b0, now)
        return seen, live

    def _credit(self, fid, key, packets, nbytes, now):
        sw = self.sw
        with sw.lock:
            if hasattr(sw, "translate"):      # the daemon: through tunnel ports too
                ofp, r = sw.translate(key, now, learn="refresh")
            else:
                br = sw.bridge_of_dp_port(get_field(key, "in_port"))
                ofp = br.ofproto if br is not None else None
                r = xlate(ofp, key, now, learn="refresh") if ofp is not None else None
            if ofp is None:
                return
            cached = self.xcache.get(fid)
            rules = cached[1] if cached is not None and cached[0] == ofp.name else r.rules_hit
            for rule in rules:
                ofp.credit(rule, packets, nbytes, now)
