"""VXLAN tunnel port (`type=vxlan`) and the datapath's tunnel vport.

What, as Open vSwitch's userspace (netdev) tunnelling:

  * VxlanPort: the Interface on an OpenFlow bridge (vx0 on br-int). No device,
    no rx/tx queues and no datapath port of its own (n_rxq 0, like a patch
    port). Its options are parsed and checked at open() with Open vSwitch's
    messages (netdev-vport.c set_tunnel_config); ofproto/tunnel.py uses the
    parsed `cfg` to encapsulate (output) and to map decapsulated packets back
    to this port (receive).
  * VxlanVport: the one datapath port per UDP destination port, named as
    OVS's `vxlan_sys_4789`. Nothing is ever received or sent on it: the
    datapath's ('tnl_pop', vport, dst_port) action makes it the in_port of
    the inner frame's second pass. Its tx rows are of type PT_NONE (an
    output to it drops).

Options (all strings, as in the database):
    remote_ip   IPv4 address or `flow` (required)
    local_ip    IPv4 address (or `flow`; default: from the route)
    key         0..2^24-1 or `flow` (default 0); in_key / out_key the same
    dst_port    UDP port (default 4789)
    tos         0..255 (default 0); ttl 1..255 (default 64)
    df_default  true|false (default true)
Main thread only.
"""

import contextlib
import ipaddress
from dataclasses import dataclass

import numpy as np

from pyvswitch.ports import io as pio
from pyvswitch.ports.base import Port, PortError, register
from pyvswitch.ports.patch import Counter

VXLAN_PORT = 4789
_KNOWN = {"remote_ip", "local_ip", "key", "in_key", "out_key", "dst_port", "tos", "ttl",
          "df_default", "csum", "egress_pkt_mark", "packet_type", "exts"}
FLOW = None          # a cfg field that comes from the flow (remote_ip=flow, key=flow)


@dataclass(frozen=True)
class TunnelConfig:
    remote_ip: int | None       # None: flow
    local_ip: int | None        # None: from the route (or flow)
    in_key: int | None          # None: flow
    out_key: int | None
    dst_port: int = VXLAN_PORT
    tos: int = 0
    ttl: int = 64
    df: bool = True
    local_flow: bool = False

    @property
    def remote_flow(self):
        return self.remote_ip is None


def _ip(name, what, text, typ="vxlan"):
    try:
        a = ipaddress.IPv4Address(text)
    except ValueError:
        raise PortError(f"{name}: bad {typ} '{what}'") from None
    if a.is_multicast and what == "remote_ip":
        raise PortError(f"{name}: multicast remote_ip={text} not allowed")
    return int(a)


def _key(name, text):
    if text == "flow":
        return FLOW
    try:
        v = int(text, 0)
    except ValueError:
        raise PortError(f"{name}: bad vxlan key '{text}'") from None
    if not 0 <= v < 1 << 64:
        raise PortError(f"{name}: bad vxlan key '{text}'")
    return v & 0xFFFFFF            # VXLAN carries 24 bits (OVS masks the same way)


def parse_options(name, options):
    """TunnelConfig from Interface options; PortError with OVS's text."""
    o = dict(options or {})
    for k in o:
        if k not in _KNOWN:
            raise PortError(f"{name}: unknown vxlan argument '{k}'")
    remote = o.get("remote_ip")
    if not remote:
        raise PortError(f"{name}: vxlan type requires valid 'remote_ip' argument")
    remote_ip = FLOW if remote == "flow" else _ip(name, "remote_ip", remote)
    local = o.get("local_ip")
    local_flow = local == "flow"
    local_ip = None if not local or local_flow else _ip(name, "local_ip", local)
    key = o.get("key")
    in_key = _key(name, o.get("in_key", key or "0"))
    out_key = _key(name, o.get("out_key", key or "0"))
    try:
        dst_port = int(o.get("dst_port", VXLAN_PORT))
    except ValueError:
        dst_port = 0
    if not 0 < dst_port < 65536:
        raise PortError(f"{name}: bad vxlan 'dst_port' {o.get('dst_port')}")
    tos, ttl = o.get("tos", "0"), o.get("ttl", "64")
    try:
        tos_v = int(tos, 0)
        if not 0 <= tos_v <= 255:
            raise ValueError
    except ValueError:
        raise PortError(f"{name}: invalid TOS {tos}") from None
    try:
        ttl_v = int(ttl, 0)
        if not 0 < ttl_v <= 255:
            raise ValueError
    except ValueError:
        raise PortError(f"{name}: invalid TTL {ttl}") from None
    df = o.get("df_default", "true")
    if df not in ("true", "false"):
        raise PortError(f"{name}: invalid df_default {df}")
    return TunnelConfig(remote_ip, local_ip, in_key, out_key, dst_port, tos_v, ttl_v,
                        df == "true", local_flow)


@register("vxlan")
class VxlanPort(Port):
    """A tunnel Interface: configuration and counters only (no datapath port)."""
    n_rxq = 0
    quiesce = staticmethod(contextlib.nullcontext)

    def __init__(self, name, options=None):
        super().__init__(name, options)
        self.cfg = None
        self.tx, self.rx = Counter(), Counter()     # credited by the revalidator

    def open(self):
        self.cfg = parse_options(self.name, self.options)

    def close(self):
        pass

    def rx_io(self, queue):
        raise PortError(f"{self.name}: a tunnel port has no rx queue")

    def tx_io(self, pmd_id):
        raise PortError(f"{self.name}: a tunnel port has no tx queue")

    def counters(self):
        return {"rx_packets": self.rx.n_packets, "rx_bytes": self.rx.n_bytes,
                "tx_packets": self.tx.n_packets, "tx_bytes": self.tx.n_bytes,
                "rx_dropped": 0, "rx_errors": 0, "tx_dropped": 0, "tx_errors": 0}

    def status(self):
        c = self.cfg
        if c is None:
            return {}
        st = {"tunnel_egress_iface": "", "dst_port": str(c.dst_port)}
        return {k: v for k, v in st.items() if v}


class VxlanVport(Port):
    """The datapath port `vxlan_sys_<dst_port>` decapsulated packets come in on."""
    type_name = "vxlan_vport"
    n_rxq = 0

    def __init__(self, dst_port):
        super().__init__(f"vxlan_sys_{dst_port}", {})
        self.dst_port = dst_port
        self._mem = np.zeros(1, np.uint8)

    def open(self):
        pass

    def close(self):
        pass

    def rx_io(self, queue):
        raise PortError(f"{self.name}: a tunnel vport has no rx queue")

    def tx_io(self, pmd_id):
        return pio.new_io_row(pio.PT_NONE, queue=pmd_id), self._mem
