"""The revalidator sweep: what happened in the datapath, told back to ofproto.

Packets that hit a megaflow never reach Python, so once a second the main
thread dumps the megaflows and, for every flow that saw packets since the last
sweep, translates its key again so NORMAL refreshes the fdb entry of the flow's
source MAC (a host that keeps talking never ages out)
-- refresh only: the stats describe traffic that happened before, and
learning from them could undo a MAC move learned since --
and credits the packet and byte deltas to the OpenFlow rules the translation
hit (n_packets, n_bytes and idle_age in dump-flows, idle timeouts).

A megaflow replaced by revalidation starts its counters again; a counter that
went backwards is read as a new flow.
"""

from pyvswitch.datapath.layout import get_field
from pyvswitch.ofproto.xlate import xlate


class Revalidator:
    def __init__(self, switch):
        self.sw = switch
        self.last = {}   # (pmd_id, key bytes, mask bytes) -> (packets, bytes)

    def sweep(self, now):
        flows = self.sw.dpif.flow_dump()
        seen = {}
        for f in flows:
            ident = (f.pmd_id, f.key.tobytes(), f.mask.tobytes())
            packets, nbytes = int(f.packets), int(f.bytes)
            seen[ident] = (packets, nbytes)
            p0, b0 = self.last.get(ident, (0, 0))
            if packets < p0:
                p0, b0 = 0, 0
            if packets > p0:
                self._credit(f.key, packets - p0, nbytes - b0, now)
        self.last = seen

    def _credit(self, key, packets, nbytes, now):
        sw = self.sw
        with sw.lock:
            br = sw.bridge_of_dp_port(get_field(key, "in_port"))
            if br is None:
                return
            r = xlate(br.ofproto, key, now, learn="refresh")
            for rule in r.rules_hit:
                br.ofproto.credit(rule, packets, nbytes, now)
