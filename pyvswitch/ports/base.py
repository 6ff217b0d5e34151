"""The control-side contract of a port type (one module per type).

A Port is created from a database Interface row (name, type, options) and
owned by the main thread. The datapath never sees this object, only the io
rows and memories it hands out (see ports/io.py):

    open()            bring the device up; raise PortError with an Open
                      vSwitch-style message on failure ("could not open network
                      device veth9 (No such device)"), leaving nothing behind
    close()           undo open(); idempotent
    n_rxq             number of rx queues
    rx_io(queue)      (io_row, mem) for the PMD that polls that rxq
    tx_io(pmd_id)     (io_row, mem), a private tx path for one PMD
    poll_fds()        fds an idle PMD may ppoll() on to wake when rx is ready
    link_up()         carrier state (bool)
    mtu, set_mtu(n)   the device MTU
    mac               6-byte MAC address (bytes) or None
    status()          {str: str} for the Interface status column
    run(now)          periodic work on the main thread (reconnect backoff, ...)
    quiesce           set by the owner before open(): a context manager that
                      parks every PMD (callable from any thread); inside it a
                      port may rewrite its io rows and remap its memories in
                      place (same array objects). Default: no PMDs, no-op.

Errors in options (unknown keys, bad values) raise PortError before anything
is opened.
"""

import contextlib

PORT_TYPES = {}


class PortError(Exception):
    """A port could not be opened or configured; str(e) is the user message."""


def register(type_name, *aliases):
    """Class decorator: make a Port class available under `type=` names."""
    def deco(cls):
        for n in (type_name,) + aliases:
            PORT_TYPES[n] = cls
        cls.type_name = type_name
        return cls
    return deco


def port_class(type_name):
    """The Port class for a `type=` value ('' means 'system')."""
    load_types()
    cls = PORT_TYPES.get(type_name or "system")
    if cls is None:
        raise PortError(f"unknown interface type {type_name!r}")
    return cls


_link_hook = None


def set_link_hook(fn):
    """The daemon's wake-up call. Kernel interfaces announce link changes
    over rtnetlink; a port whose link follows something else (a vhost-user
    peer) calls link_changed() so that the daemon notices at once."""
    global _link_hook
    _link_hook = fn


def link_changed():
    if _link_hook is not None:
        _link_hook()


def load_types():
    # Importing a type module registers it; done lazily to keep imports light.
    import importlib
    for mod in ("dummy", "afpacket", "tap", "internal", "vhost.port", "patch", "vxlan"):
        try:
            importlib.import_module(f"pyvswitch.ports.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"pyvswitch.ports.{mod}":
                raise


class Port:
    type_name = "?"
    n_rxq = 1
    quiesce = staticmethod(contextlib.nullcontext)

    def __init__(self, name, options=None):
        self.name = name
        self.options = dict(options or {})

    def open(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def rx_io(self, queue):
        raise NotImplementedError

    def tx_io(self, pmd_id):
        raise NotImplementedError

    def poll_fds(self):
        return []

    def link_up(self):
        return True

    mac = None
    mtu = 1500

    def set_mtu(self, mtu):
        self.mtu = mtu

    def status(self):
        return {}

    def run(self, now):
        pass
