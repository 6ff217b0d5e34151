"""portio: one rx_burst / tx_one / tx_flush for the PMD, dispatching on the
io row's port type (IO_TYPE, ports/io.py) to that type's module-level kernels.

A port type module that is missing (not written yet, or failing to import)
is replaced by stubs that receive nothing and drop everything, so the PMD
loop always compiles. Adding a type: import its kernels below and add one
branch to each function. Called from the PMD loop only.
"""

from pyvswitch.core.jit import kernel
from pyvswitch.ports import dummy
from pyvswitch.ports import io as pio


@kernel(nrt=False)
def _rx_none(mem, io, pool, slots, offs, lens, n_max, qstats):
    return 0


@kernel(nrt=False)
def _tx_none(mem, io, pool, slot, off, length, qstats):
    qstats[pio.Q_TX_DROPPED] += 1
    return 0


@kernel(nrt=False)
def _flush_none(mem, io, qstats):
    return None


try:
    from pyvswitch.ports.afpacket import rx_burst as afp_rx, tx_flush as afp_flush, tx_one as afp_tx
except ImportError:                           # pragma: no cover - type not available
    afp_rx, afp_tx, afp_flush = _rx_none, _tx_none, _flush_none
try:
    from pyvswitch.ports.tap import rx_burst as tap_rx, tx_flush as tap_flush, tx_one as tap_tx
except ImportError:                           # pragma: no cover
    tap_rx, tap_tx, tap_flush = _rx_none, _tx_none, _flush_none


@kernel(nrt=False)
def _rx_split_none(mem, io, pool, slots, offs, lens, n_max, qstats, xs):
    return 0


@kernel(nrt=False)
def _tx_split_none(mem, io, pool, slot, off, hl, xaddr, length, qstats):
    qstats[pio.Q_TX_DROPPED] += 1
    return 0


@kernel(nrt=False)
def _done_none(mem, io):
    return None


try:
    from pyvswitch.ports.vhost.virtq import (rx_burst_split as vhu_rx, rx_done as vhu_done,
                                             tx_flush as vhu_flush, tx_one as vhu_tx,
                                             tx_one_split as vhu_tx_split)
except ImportError:                           # pragma: no cover
    vhu_rx, vhu_tx, vhu_flush = _rx_split_none, _tx_none, _flush_none
    vhu_tx_split, vhu_done = _tx_split_none, _done_none


@kernel(nrt=False)
def _arm_none(mem, io):
    return pio.ARM_NO_FD


@kernel(nrt=False)
def _disarm_none(mem, io, revents):
    return 0


try:
    from pyvswitch.ports.vhost.notify import rx_arm as vhu_arm, rx_disarm as vhu_disarm
except ImportError:                           # pragma: no cover
    vhu_arm, vhu_disarm = _arm_none, _disarm_none


@kernel(nrt=False)
def rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats, xs):
    """vhost-user rows receive by reference (virtq.rx_burst_split: the split
    table xs, rx_done after the burst); the others copy into the slots."""
    t = io[pio.IO_TYPE]
    if t == pio.PT_DUMMY:
        return dummy.rx_burst(mem, io, pool, slots, offs, lens, n_max, qstats)
    if t == pio.PT_AFPACKET:
        return afp_rx(mem, io, pool, slots, offs, lens, n_max, qstats)
    if t == pio.PT_TAP:
        return tap_rx(mem, io, pool, slots, offs, lens, n_max, qstats)
    if t == pio.PT_VHOST:
        return vhu_rx(mem, io, pool, slots, offs, lens, n_max, qstats, xs)
    return 0


@kernel(nrt=False)
def rx_done(mem, io):
    """After the burst of rx_burst is processed: frames held by reference go
    back to their owner."""
    if io[pio.IO_TYPE] == pio.PT_VHOST:
        vhu_done(mem, io)


@kernel(nrt=False)
def tx_split(mem, io, pool, slot, off, hl, xaddr, length, qstats):
    """tx_one of a frame held by reference (hl bytes in the slot, the rest at
    xaddr): 1/0 as tx_one, or -2 if the port type needs the frame whole."""
    if io[pio.IO_TYPE] != pio.PT_VHOST:
        return -2
    if io[pio.IO_LINK_UP] == 0:
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    return vhu_tx_split(mem, io, pool, slot, off, hl, xaddr, length, qstats)


@kernel(nrt=False)
def tx_one(mem, io, pool, slot, off, length, qstats):
    t = io[pio.IO_TYPE]
    if io[pio.IO_LINK_UP] == 0:
        qstats[pio.Q_TX_DROPPED] += 1
        return 0
    if t == pio.PT_DUMMY:
        return dummy.tx_one(mem, io, pool, slot, off, length, qstats)
    if t == pio.PT_AFPACKET:
        return afp_tx(mem, io, pool, slot, off, length, qstats)
    if t == pio.PT_TAP:
        return tap_tx(mem, io, pool, slot, off, length, qstats)
    if t == pio.PT_VHOST:
        return vhu_tx(mem, io, pool, slot, off, length, qstats)
    qstats[pio.Q_TX_DROPPED] += 1
    return 0


@kernel(nrt=False)
def tx_flush(mem, io, qstats):
    t = io[pio.IO_TYPE]
    if t == pio.PT_DUMMY:
        dummy.tx_flush(mem, io, qstats)
    elif t == pio.PT_AFPACKET:
        afp_flush(mem, io, qstats)
    elif t == pio.PT_TAP:
        tap_flush(mem, io, qstats)
    elif t == pio.PT_VHOST:
        vhu_flush(mem, io, qstats)


@kernel(nrt=False)
def rx_arm(mem, io):
    """Before an idle sleep (rows with IO_FD == IO_FD_ARM): see ports/io.py."""
    if io[pio.IO_TYPE] == pio.PT_VHOST:
        return vhu_arm(mem, io)
    return pio.ARM_NO_FD


@kernel(nrt=False)
def rx_disarm(mem, io, revents):
    if io[pio.IO_TYPE] == pio.PT_VHOST:
        return vhu_disarm(mem, io, revents)
    return 0
