"""Internal port (`type=internal`): the bridge's LOCAL port.

What: a tap device named after the port -- for the LOCAL port that is the
bridge's own name (`br0`), as in Open vSwitch -- through which the host's
network stack sends and receives on the bridge. Same kernels and io rows as a
tap (imported from tap.py, dispatched as PT_TAP); the differences are
control-side only:

  * MAC: stable across restarts, derived from the name (locally administered,
    unicast: 02:xx:xx:xx:xx:xx from a SHA-256 of the name), set before the
    device is brought up. set_mac() changes it (e.g. to the bridge's hwaddr).
  * Admin state: left to the user, as in Open vSwitch (`ip link set br0 up`);
    open() does not bring the device up. link_up() follows the admin state.

Threads: as tap.py.
"""

import hashlib
import os

from pyvswitch.ports import netdev
from pyvswitch.ports.base import register
from pyvswitch.ports.tap import TapPort, rx_burst, tx_flush, tx_one  # noqa: F401 (the kernels)


def _netns_id():
    """The network namespace's inode: two hosts (namespaces) with a bridge of
    the same name (br-phy on each, as the tunnelling recipe has it) must not
    share its MAC."""
    try:
        return b"@%d" % os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return b""


def stable_mac(name):
    """A locally administered unicast MAC derived from the port name and the
    network namespace (stable across restarts in the same namespace)."""
    h = bytearray(hashlib.sha256(b"pyvswitch-internal:" + name.encode() + _netns_id()).digest()[:6])
    h[0] = (h[0] & 0xFC) | 0x02
    return bytes(h)


@register("internal")
class InternalPort(TapPort):
    """The bridge's LOCAL port (or any internal interface). No options."""

    bring_up = False

    def _configure(self):
        netdev.set_mac(self.name, stable_mac(self.name))

    def link_up(self):
        try:
            return netdev.is_up(self.name)
        except OSError:
            return False

    def status(self):
        return {"driver_name": "tun", "type": "internal",
                "created": "true" if self.created else "false"}
