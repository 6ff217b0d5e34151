"""One bridge in the daemon: its ofproto, its ports and their interfaces.

Owned by the main thread. `Bridge` applies reconcile operations for one
bridge: it opens Port objects (ports/), adds them to the datapath (dpif),
allocates OpenFlow port numbers, and keeps ofproto's port map and VLAN
configuration in step. Failures never raise out of here: they are recorded as
the interface's `error` (the text Open vSwitch would write) and the interface
is marked failed so the next reconfiguration retries it.

Threads: main thread only. PMD threads read ofproto during upcalls under the
switch lock, so every ofproto change here takes that lock -- and no datapath
call (which may wait for PMDs to park) is ever made while holding it: a PMD
waiting for the lock in an upcall could never park.
"""

import time
from dataclasses import dataclass, field

from pyvswitch.core import vlog
from pyvswitch.ofproto import bond as B
from pyvswitch.ofproto import lacp as LACP
from pyvswitch.ofproto import normal as N
from pyvswitch.openflow.fields import OFPP_LOCAL
from pyvswitch.ofproto import mirror as MI
from pyvswitch.ports.base import PortError, port_class
from pyvswitch.ports.internal import stable_mac

log = vlog.Module("bridge")

OFPORT_MAX = 65279


@dataclass
class Iface:
    name: str
    port_name: str
    type: str
    config: dict
    port: object = None        # the opened ports/ Port, None when failed
    dp_port: int = -1
    ofport: int = -1
    error: str = ""
    live: bool = True          # link state last told to ofproto
    added: float = 0.0         # monotonic time it joined the datapath (port stats duration)
    stats: dict = field(default_factory=dict)


class Bridge:
    def __init__(self, name, dpif, ofproto, lock):
        self.name = name
        self.lock = lock
        self.dpif = dpif
        self.ofproto = ofproto
        self.config = {}    # datapath_type, fail_mode, other_config
        self.ports = {}     # port name -> port config (tag, trunks, vlan_mode, ...)
        self.ifaces = {}    # iface name -> Iface
        self.hints = {}     # iface name -> ofport it had before (database)
        self.bonds = {}     # port name -> bond.Bond (ports with 2+ interfaces)
        self.bond_macs = {}  # port name -> bond_active_slave from the database
        self.hwaddr_set = False   # the LOCAL port has other_config:hwaddr

    def configure(self, config):
        self.config = dict(config)
        oc = config.get("other_config") or {}
        with self.lock:
            self.ofproto.set_mac_config(_int_or(oc.get("mac-aging-time"), 300),
                                        _int_or(oc.get("mac-table-size"), 8192))
        self.apply_hwaddr()

    def apply_hwaddr(self):
        """The LOCAL port takes other_config:hwaddr, as in Open vSwitch (the
        tunnelling recipes give each br-phy a known MAC); when the setting
        goes away the port gets its own stable MAC back."""
        local = self.ifaces.get(self.name)
        if local is None or local.port is None or local.type != "internal":
            return
        want = _hwaddr((self.config.get("other_config") or {}).get("hwaddr"))
        if want is None:
            if not self.hwaddr_set:
                return        # leave a MAC set with `ip link` alone
            want = stable_mac(self.name)
        if local.port.mac != want:
            try:
                local.port.set_mac(want)
            except PortError as e:
                log.warn("%s: %s", self.name, e)
                return
        self.hwaddr_set = want != stable_mac(self.name)

    def datapath_id(self):
        """16 hex digits: other_config:datapath-id, else from the LOCAL port's MAC."""
        dpid = (self.config.get("other_config") or {}).get("datapath-id")
        if dpid:
            return dpid.lower()
        local = self.ifaces.get(self.name)
        mac = local.port.mac if local is not None and local.port is not None else None
        return "0000" + (mac.hex() if mac else "000000000000")

    # --- mirrors --------------------------------------------------------
    def apply_mirrors(self):
        """The bridge's Mirror rows (config "mirrors", ports by name) as
        ofproto Mirrors over the ofports its ports have now. A mirror with no
        output (its output port is missing and it has no output_vlan) or that
        selects nothing is left out, as Open vSwitch leaves it."""
        ofports = {}
        for i in self.ifaces.values():
            if i.ofport > 0 and i.port is not None:
                ofports.setdefault(i.port_name, []).append(i.ofport)

        def sel(names):
            return frozenset(o for n in names for o in ofports.get(n, ()))
        mirrors = []
        for c in self.config.get("mirrors") or ():
            src, dst = sel(c["select_src_port"]), sel(c["select_dst_port"])
            out = min(ofports.get(c["output_port"], ()), default=None)
            if out is None and c["output_vlan"] is None or not (c["select_all"] or src or dst):
                continue
            mirrors.append(MI.Mirror(c["name"], out, src, dst, bool(c["select_all"]),
                                     frozenset(c["select_vlan"]),
                                     c["output_vlan"] if out is None else None))
        with self.lock:
            self.ofproto.set_mirrors(mirrors)

    # --- ports ----------------------------------------------------------
    def set_port(self, name, config):
        self.ports[name] = dict(config)
        with self.lock:
            for iface in self.ifaces.values():
                if iface.port_name == name and iface.port is not None:
                    self.ofproto.set_port_vlan(iface.name, **_vlan_cfg(config, name))

    def del_port(self, name):
        self.ports.pop(name, None)

    # --- interfaces -----------------------------------------------------
    def add_iface(self, port_name, name, config):
        """Open the interface and attach it; returns the Iface (maybe failed)."""
        itype = config.get("type") or "system"
        if name == self.name and itype != "internal":
            itype = "internal"
        iface = Iface(name, port_name, itype, dict(config))
        self.ifaces[name] = iface
        try:
            cls = port_class(itype)
        except PortError:
            iface.error = f"could not open network device {name} (Address family not supported by protocol)"
            return iface
        try:
            port = cls(name, config.get("options") or {})
            port.quiesce = self.dpif.quiesce
            port.open()
        except PortError as e:
            iface.error = str(e)
            return iface
        except OSError as e:
            iface.error = f"could not open network device {name} ({e.strerror or e})"
            return iface
        try:
            if config.get("mtu_request"):
                port.set_mtu(int(config["mtu_request"]))
            iface.ofport = self._alloc_ofport(name, config.get("ofport_request"))
            if port.n_rxq:                 # a patch port has no datapath port
                iface.dp_port = self.dpif.add_port(port)
        except (PortError, OSError, ValueError) as e:
            port.close()
            iface.error = f"could not add network device {name} to ofproto ({e})"
            iface.ofport = -1
            return iface
        iface.port = port
        iface.added = time.monotonic()
        if name == self.name:
            self.apply_hwaddr()
        with self.lock:
            self.ofproto.add_port(name, iface.dp_port if iface.dp_port >= 0 else None,
                                  ofport=iface.ofport, bundle=port_name,
                                  patch=port if itype == "patch" else None,
                                  **_vlan_cfg(self.ports.get(port_name, {}), port_name))
        return iface

    def del_iface(self, name):
        iface = self.ifaces.pop(name, None)
        if iface is None or iface.port is None:
            return
        with self.lock:
            self.ofproto.del_port(iface.name)
        if iface.dp_port >= 0:
            self.dpif.del_port(iface.dp_port)
        iface.port.close()

    def iface_stats(self, iface):
        """Interface counters: the datapath's, or a patch port's own."""
        own = getattr(iface.port, "counters", None)
        return own() if callable(own) else self.dpif.port_stats(iface.dp_port)

    # --- bonds ------------------------------------------------------------
    def sync_bonds(self, now):
        """Make a Bond for every Port with 2+ interfaces (and drop the others'),
        with the Port's settings and its opened interfaces as members."""
        want = {}
        for pname, pcfg in self.ports.items():
            ifaces = [i for i in self.ifaces.values() if i.port_name == pname]
            if len(ifaces) < 2:
                continue
            bond = self.bonds.get(pname)
            if bond is None:
                bond = B.Bond(pname)
                mac = self.bond_macs.get(pname)
                if mac:
                    bond.active_mac = _mac_bytes(mac)
            settings = B.settings_from_port(dict(pcfg, name=pname))
            live = [i for i in ifaces if i.port is not None]
            with self.lock:
                bond.reconfigure(settings, now)
                self._configure_lacp(bond, pcfg, live)
                bond.set_members([(i.name, i.ofport, i.port.mac) for i in live],
                                 {i.ofport: i.port.link_up() for i in live}, now)
                bond.run(now, {i.ofport: i.port.link_up() for i in live})
            want[pname] = bond
        with self.lock:
            self.bonds = want
            self.ofproto.set_bonds(want)
            self.ofproto.bump()

    def _configure_lacp(self, bond, pcfg, live):
        """A Lacp for lacp=active|passive (system id: other_config:lacp-system-id,
        else the bridge's MAC; lacp-time fast|slow). Caller holds the lock."""
        mode = pcfg.get("lacp") or "off"
        if mode == "off":
            bond.lacp = None
            return
        oc = pcfg.get("other_config") or {}
        sys_id = _mac_bytes(oc["lacp-system-id"]) if oc.get("lacp-system-id") else bytes.fromhex(
            self.datapath_id()[4:])
        fast = oc.get("lacp-time") == "fast"
        if bond.lacp is None:
            bond.lacp = LACP.Lacp(bond.name, sys_id, mode == "active", fast,
                                  priority=B._int(oc.get("lacp-system-priority"), 65534))
        bond.lacp.configure(sys_id, mode == "active", fast)
        bond.lacp.set_members([(i.name, i.ofport) for i in live])

    def lacp_rx(self, dp_port, frame, now):
        """A LACPDU from xlate's slow path (PMD thread, under the lock)."""
        port = self.ofproto.port_by_dp(dp_port)
        bond = self.bonds.get(port.bundle or port.name) if port is not None else None
        return bond is not None and bond.lacp_rx(port.ofport, frame, now)

    def run_bonds(self, now):
        """Carrier monitoring and rebalancing; returns [(bond, [packets to
        send: (dp_port, frame)])] for bonds that changed."""
        out = []
        for bond in self.bonds.values():
            carriers = {i.ofport: i.port.link_up() for i in self.ifaces.values()
                        if i.port is not None and i.port_name == bond.name}
            with self.lock:
                pdus = []
                if bond.lacp is not None:
                    _, pdus = bond.lacp.run(now)
                changed = bond.run(now, carriers)
                changed |= bond.rebalance(now)
                # each member sends from its own MAC, as OVS
                pdus = [(p.dp_port, frame[:6] + (_port_mac(self, p) or frame[6:12]) + frame[12:])
                        for o, frame in pdus if (p := self.ofproto.ports.get(o)) is not None
                        and p.dp_port is not None]
                if changed:
                    self.ofproto.bump()
                learning = self._learning_packets(bond) if bond.take_learning() else []
            if changed or learning or pdus:
                out.append((bond, learning + pdus))
        return out

    def _learning_packets(self, bond):
        """Gratuitous RARPs from every MAC learned on other bundles, out of
        the active member, so the physical network learns the new path (OVS's
        bundle_send_learning_packets). Caller holds the lock."""
        ofp = self.ofproto
        active = ofp.ports.get(bond.active.ofport) if bond.active else None
        if active is None or active.dp_port is None:
            return []
        out = []
        for (vlan, mac), entry in list(ofp.fdb.entries.items()):
            port = ofp.ports.get(entry.port)
            if port is None or (port.bundle or port.name) == bond.name:
                continue
            if not N.includes_vlan(active, vlan):
                continue
            out.append((active.dp_port, rarp(mac, N.output_tci(active, vlan, 0))))
        return out

    def set_mtu(self, name, mtu):
        iface = self.ifaces.get(name)
        if iface is None or iface.port is None:
            return
        try:
            self.dpif.fit_mtu(int(mtu) if mtu else 1500)     # jumbo frames need bigger slots
            iface.port.set_mtu(int(mtu) if mtu else 1500)
            iface.config["mtu_request"] = mtu
        except (PortError, OSError, ValueError) as e:
            iface.error = f"could not set MTU of {name} ({e})"

    def _alloc_ofport(self, name, requested):
        """ofport_request if free, else the number the interface had before
        (kept across restarts, as OVS), else the lowest number nobody holds
        or is known to come back to."""
        if name == self.name:
            return OFPP_LOCAL
        used = {i.ofport for i in self.ifaces.values() if i.ofport > 0}
        if requested and int(requested) not in used:
            return int(requested)
        hint = self.hints.get(name)
        if hint and hint not in used:
            return hint
        taken = used | {h for n, h in self.hints.items() if n != name}
        taken |= {int(i.config["ofport_request"]) for i in self.ifaces.values()
                  if i.name != name and i.config.get("ofport_request")}
        for n in range(1, OFPORT_MAX + 1):
            if n not in taken:
                return n
        raise ValueError("no free OpenFlow port number")

    def close(self):
        for name in list(self.ifaces):
            self.del_iface(name)


def _vlan_cfg(port_cfg, name="?"):
    oc = port_cfg.get("other_config") or {}
    mode = port_cfg.get("vlan_mode")
    if mode not in (None, *N.VLAN_MODES):
        log.warn("port %s: vlan_mode %s is not supported (the datapath carries one 802.1Q "
                 "tag), falling back to access", name, mode)
        mode = "access"
    return {"tag": port_cfg.get("tag"), "trunks": list(port_cfg.get("trunks") or []),
            "vlan_mode": mode, "priority_tags": oc.get("priority-tags")}


def rarp(mac, tci=0):
    """OVS's compose_rarp: a broadcast reverse-ARP request from `mac`, with
    an 802.1Q tag when tci is not 0."""
    src = mac.to_bytes(6, "big")
    tag = (0x8100).to_bytes(2, "big") + (tci & ~0x1000).to_bytes(2, "big") if tci else b""
    body = (bytes.fromhex("0001" "0800" "06" "04" "0003") + src + bytes(4) + src + bytes(4))
    frame = b"\xff" * 6 + src + tag + (0x8035).to_bytes(2, "big") + body
    return frame + bytes(max(0, 60 - len(frame)))


def _port_mac(bridge, port):
    iface = bridge.ifaces.get(port.name)
    return iface.port.mac if iface is not None and iface.port is not None else None


def _hwaddr(text):
    """other_config:hwaddr as 6 bytes; None unless it is a unicast, non-zero
    xx:xx:xx:xx:xx:xx (Open vSwitch ignores anything else)."""
    parts = (text or "").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        return None
    try:
        mac = bytes.fromhex("".join(parts))
    except ValueError:
        return None
    return mac if any(mac) and not mac[0] & 1 else None


def _mac_bytes(text):
    try:
        return bytes.fromhex(text.replace(":", ""))
    except ValueError:
        return bytes(6)


def _int_or(text, default):
    """other_config numbers: a malformed value falls back to the default, as OVS."""
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
