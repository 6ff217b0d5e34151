"""Patch port (`type=patch`, `options:peer=NAME`): a wire between two bridges.

What: a port with no device and no datapath port. xlate (ofproto/
xlate_patch.py) turns an output to it into the rest of the translation in
the peer's bridge, so a patch pair costs no copy, no ring and no extra
datapath pass. This object only holds the configuration, the link state and
the counters:

  * options: exactly `peer` (another patch interface, never itself); anything
    else is refused at open() with Open vSwitch's message ("p0: patch type
    requires valid 'peer' argument", "p0: patch type takes only a 'peer'
    argument", "p0: patch peer must not be self").
  * link_up(): True while the daemon has linked it to a peer whose own
    options:peer names it back (`set_peer`); a dangling patch port is down and
    its Interface error says why.
  * tx / rx: counters (n_packets, n_bytes, used) the revalidator credits from
    the megaflows that crossed the patch, as OVS's netdev_vport_inc_tx/rx;
    `counters()` gives them in the Interface statistics shape.

n_rxq is 0: the datapath never polls or transmits on it. Main thread only.
"""

import contextlib

from pyvswitch.ports.base import Port, PortError, register


class Counter:
    """What the revalidator credits (the duck type of a rule's counters)."""

    def __init__(self):
        self.n_packets = self.n_bytes = 0
        self.used = 0.0


@register("patch")
class PatchPort(Port):
    n_rxq = 0
    quiesce = staticmethod(contextlib.nullcontext)

    def __init__(self, name, options=None):
        super().__init__(name, options)
        self.peer = self.options.get("peer")
        self.linked = False
        self.tx, self.rx = Counter(), Counter()

    def open(self):
        check_options(self.name, self.options)

    def close(self):
        self.linked = False

    def rx_io(self, queue):
        raise PortError(f"{self.name}: a patch port has no rx queue")

    def tx_io(self, pmd_id):
        raise PortError(f"{self.name}: a patch port has no tx queue")

    def link_up(self):
        return self.linked

    def set_peer(self, linked):
        self.linked = bool(linked)

    def counters(self):
        return {"rx_packets": self.rx.n_packets, "rx_bytes": self.rx.n_bytes,
                "tx_packets": self.tx.n_packets, "tx_bytes": self.tx.n_bytes,
                "rx_dropped": 0, "rx_errors": 0, "tx_dropped": 0, "tx_errors": 0}

    def status(self):
        return {"peer": self.peer} if self.peer else {}


def check_options(name, options):
    peer = options.get("peer")
    if not peer:
        raise PortError(f"{name}: patch type requires valid 'peer' argument")
    if len(options) > 1:
        raise PortError(f"{name}: patch type takes only a 'peer' argument")
    if peer == name:
        raise PortError(f"{name}: patch peer must not be self")
