"""Frozen translations: what a recirculated packet resumes with.

A `ct(table=N)` action sends the packet through the connection tracker and
back into the datapath with a recirc_id (the datapath action recirc(id)); the
upcall of that second pass must resume the OpenFlow pipeline where the first
one froze: in which bridge, at which table, with which in_port, registers
and metadata (the OpenFlow-only fields beyond the datapath key). Equal frozen
states share one id (like OVS's recirc_id_node), so a flow translated many
times does not use up ids.

    rid = freeze(ofp, table, in_port, flow_words)
    state = thaw(rid)          # Frozen or None (unknown, or the bridge is gone)

Ids are unique in the process (all bridges share the datapath). Any thread;
a lock guards the maps.
"""

import threading
import weakref
from dataclasses import dataclass

from pyvswitch.datapath import layout

MAX_ID = 0xFFFFFFFF


@dataclass(frozen=True)
class Frozen:
    ofp_ref: weakref.ref
    table: int
    in_port: int
    words: tuple            # flow words from layout.KEY_WORDS on (registers, metadata...)

    @property
    def ofp(self):
        return self.ofp_ref()


class Registry:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_state = {}
        self._by_id = {}
        self._next = 1

    def freeze(self, ofp, table, in_port, flow):
        state = Frozen(weakref.ref(ofp), table, in_port, tuple(flow[layout.KEY_WORDS:]))
        with self._lock:
            rid = self._by_state.get(state)
            if rid is None:
                if self._next > MAX_ID:
                    raise RuntimeError("recirculation ids exhausted")
                rid = self._next
                self._next += 1
                self._by_state[state] = rid
                self._by_id[rid] = state
            return rid

    def thaw(self, rid):
        with self._lock:
            state = self._by_id.get(rid)
        if state is None or state.ofp is None:
            return None
        return state

    def __len__(self):
        return len(self._by_id)


REGISTRY = Registry()
freeze = REGISTRY.freeze
thaw = REGISTRY.thaw
