"""The daemon's side of native tunnels: keeping ofproto/tunnel.Tunnels in
step with the bridges and the kernel, and the appctl commands.

    sync(sw)        after every reconfiguration: tunnel ports (ofproto Port
                    .tunnel), one datapath vport per dst_port in use
                    (`vxlan_sys_<port>`, added/removed here), the bridges'
                    internal devices, and a fresh read of the kernel's
                    addresses and routes (netlink.py)
    run(sw, now, refresh)   main loop: re-read addresses/routes every
                    `refresh` seconds and after refresh_soon(sw), send the ARP requests translations
                    asked for (a packet-out from the output bridge's internal
                    port through its tables: NORMAL floods it out of the
                    uplink), and return True when translations must be
                    revalidated (routes, endpoints or neighbours changed)
    register(sw, reg)   ovs/route/{show,add,del,lookup},
                    tnl/neigh/{show,set,flush} (tnl/arp/* aliases),
                    tnl/ports/show, tnl/drops/show
Main thread; Tunnels is changed under the switch lock.
"""

import ipaddress

from pyvswitch.core import vlog
from pyvswitch.datapath.kernels.parse import parse_packet_ref
from pyvswitch.ofproto import tunnel as TN
from pyvswitch.ports import netdev
from pyvswitch.ports.vxlan import VxlanVport
from pyvswitch.vswitchd import netlink as NL
from pyvswitch.ofproto.neigh import mac_text, parse_mac
from pyvswitch.ofproto.route import ip_text, parse_prefix
from pyvswitch.vswitchd.unixctl import CommandError

log = vlog.Module("tunnel")
REFRESH = 2.0            # re-read period when nothing announces changes
REFRESH_NOTIFIED = 30.0  # ... when rtnetlink does (refresh_soon): a safety net


class State:
    def __init__(self):
        self.next_refresh = 0.0
        self.version = 0
        self.vport_objs = {}      # dst_port -> VxlanVport


def _state(sw):
    st = getattr(sw, "_tnl_state", None)
    if st is None:
        st = sw._tnl_state = State()
    return st


def sync(sw):
    tnl, st = sw.tnl, _state(sw)
    want_ports, devs = [], {}
    for br in sw.bridges.values():
        br.ofproto.tnl = tnl
        for i in br.ifaces.values():
            if i.port is None:
                continue
            if i.type == "vxlan" and getattr(i.port, "cfg", None) is not None:
                want_ports.append((br, i))
            elif i.type == "internal" and i.dp_port >= 0 and i.port.mac:
                devs[i.name] = TN.Dev(br.ofproto, i.ofport, i.dp_port, _mac(i.name, i.port.mac))
    need = {i.port.cfg.dst_port for _, i in want_ports}
    for dst in sorted(need - set(st.vport_objs)):
        vp = VxlanVport(dst)
        try:
            dp = sw.dpif.add_port(vp)
        except (ValueError, OSError) as e:
            log.warn("could not add tunnel port %s to the datapath (%s)", vp.name, e)
            continue
        st.vport_objs[dst] = (vp, dp)
    for dst in sorted(set(st.vport_objs) - need):
        vp, dp = st.vport_objs.pop(dst)
        sw.dpif.del_port(dp)
    addrs, routes = _read_kernel()
    with sw.lock:
        tnl.vports = {dst: dp for dst, (_, dp) in st.vport_objs.items()}
        tnl.vport_dst = {dp: dst for dst, dp in tnl.vports.items()}
        ports = []
        for br, i in want_ports:
            p = br.ofproto.ports.get(i.ofport)
            if p is None:
                continue
            p.tunnel = TN.TnlPort(br.ofproto, i.ofport, i.name, i.port.cfg, i.port)
            ports.append(p.tunnel)
        tnl.ports = ports
        tnl.set_devices(devs)
        if addrs is not None:
            tnl.set_system(addrs, routes)
        tnl.bump()
    st.next_refresh = sw.clock.now() + REFRESH


def _mac(name, default):
    """The device's MAC as the kernel has it now (`ip link set br-phy
    address ...` changes it behind the port's back)."""
    try:
        return int.from_bytes(netdev.get_mac(name), "big")
    except OSError:
        return int.from_bytes(default or bytes(6), "big")


def _read_kernel():
    try:
        return NL.dump_addrs(), NL.dump_routes()
    except (OSError, NL.NetlinkError) as e:
        log.warn("reading routes over netlink failed: %s", e)
        return None, None


def refresh_soon(sw):
    """The kernel said a link, address or route changed (a device's MAC
    among them): read them at the next run."""
    _state(sw).next_refresh = 0.0


def run(sw, now, refresh=REFRESH):
    tnl, st = sw.tnl, _state(sw)
    if now >= st.next_refresh:
        st.next_refresh = now + refresh
        addrs, routes = _read_kernel()
        macs = {name: _mac(name, None) for name in tnl.devs}
        with sw.lock:
            for name, mac in macs.items():
                dev = tnl.devs.get(name)
                if dev is not None and mac and dev.mac != mac:
                    dev.mac = mac
                    tnl.bump()
            if addrs is not None:
                tnl.set_system(addrs, routes)
    with sw.lock:
        pending, tnl.pending = tnl.pending, []
    for dev, frame in pending:
        _packet_out(sw, dev, frame, now)
    if tnl.version != st.version:
        st.version = tnl.version
        return True
    return False


def _packet_out(sw, dev, frame, now):
    from pyvswitch.ofproto.xlate import xlate
    key = parse_packet_ref(frame, dev.dp_port)
    with sw.lock:
        r = xlate(dev.ofp, key, now, learn=False)
    if r.actions:
        sw.dpif.execute(frame, r.actions, in_port=dev.dp_port)


# --- appctl ---------------------------------------------------------------------
def register(sw, reg):
    reg("ovs/route/show", "", 0, 0, lambda a: _locked(sw, lambda: sw.tnl.routes.show()))
    reg("ovs/route/add", "ip/plen output_bridge [gw] [src=ip]", 2, 4, lambda a: _route_add(sw, a))
    reg("ovs/route/del", "ip/plen", 1, 2, lambda a: _route_del(sw, a))
    reg("ovs/route/lookup", "ip_addr", 1, 2, lambda a: _route_lookup(sw, a))
    for ns in ("neigh", "arp"):
        reg(f"tnl/{ns}/show", "", 0, 0, lambda a: _locked(sw, lambda: sw.tnl.neigh.show(sw.clock.now())))
        reg(f"tnl/{ns}/set", "BRIDGE IP MAC", 3, 3, lambda a: _neigh_set(sw, a))
        reg(f"tnl/{ns}/flush", "", 0, 0, lambda a: _neigh_flush(sw))
    reg("tnl/ports/show", "", 0, 1, lambda a: _ports_show(sw))
    reg("tnl/drops/show", "", 0, 0, lambda a: _locked(sw, lambda: _drops_show(sw)))


def _drops_show(sw):
    """Tunnel drops by reason, then the frames ports dropped for their MTU: an
    encapsulated frame longer than the underlay's MTU is not fragmented and
    no ICMP goes back, whatever its DF bit (as OVS's userspace datapath)."""
    per_port = []
    for br in sw.bridges.values():
        for name, iface in sorted(br.ifaces.items()):
            if iface.dp_port < 0 and not callable(getattr(iface.port, "counters", None)):
                continue
            n = int(br.iface_stats(iface).get("ovs_tx_mtu_exceeded_drops", 0))
            if n:
                per_port.append((name, n))
    return (sw.tnl.drops_show() + f"mtu_exceeded: {sum(n for _, n in per_port)}\n"
            + "".join(f"  {name}: {n}\n" for name, n in per_port))


def _locked(sw, fn):
    with sw.lock:
        return fn()


def _ip(text):
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        raise CommandError("Invalid parameters") from None


def _route_add(sw, a):
    try:
        prefix, plen = parse_prefix(a[0])
    except ValueError:
        raise CommandError("Invalid parameters") from None
    gw = src = 0
    for extra in a[2:]:
        if extra.startswith("src="):
            src = _ip(extra[4:])
        elif extra.startswith("pkt_mark="):
            raise CommandError("pkt_mark is not supported")
        else:
            try:
                gw = int(ipaddress.IPv4Address(extra))
            except ValueError:
                raise CommandError("Invalid pkt_mark or gateway") from None
    with sw.lock:
        err = sw.tnl.routes.add(prefix, plen, a[1], gw, src)
        if err is None:
            sw.tnl.bump()
    if err:
        raise CommandError(err)
    sw.wake()
    return "OK\n"


def _route_del(sw, a):
    try:
        prefix, plen = parse_prefix(a[0])
    except ValueError:
        raise CommandError("Invalid parameters") from None
    with sw.lock:
        ok = sw.tnl.routes.delete(prefix, plen)
        if ok:
            sw.tnl.bump()
    if not ok:
        raise CommandError("Not found")
    sw.wake()
    return "OK\n"


def _route_lookup(sw, a):
    ip = _ip(a[0])
    with sw.lock:
        e = sw.tnl.routes.lookup(ip)
    if e is None:
        raise CommandError("Not found")
    return f"src {ip_text(e.src)}\ngateway {ip_text(e.gw) if e.gw else '::'}\ndev {e.dev}\n"


def _neigh_set(sw, a):
    if a[0] not in sw.bridges:
        raise CommandError(f"no such bridge \"{a[0]}\"")
    try:
        ip = int(ipaddress.IPv4Address(a[1]))
    except ValueError:
        raise CommandError("bad IP address") from None
    try:
        mac = parse_mac(a[2])
    except ValueError:
        raise CommandError("bad MAC address") from None
    with sw.lock:
        sw.tnl.neigh.set(a[0], ip, mac)
        sw.tnl.bump()
    sw.wake()
    return "OK\n"


def _neigh_flush(sw):
    with sw.lock:
        sw.tnl.neigh.flush()
        sw.tnl.bump()
    sw.wake()
    return "OK\n"


def _ports_show(sw):
    lines = ["Listening ports:"]
    with sw.lock:
        tnl = sw.tnl
        for dst, dp in sorted(tnl.vports.items()):
            lines.append(f"vxlan_sys_{dst} ({dp}) ref_cnt={sum(t.cfg.dst_port == dst for t in tnl.ports)}")
        for ip, dev in sorted(tnl.endpoints.items()):
            lines.append(f"  endpoint {ip_text(ip)} on {dev.ofp.name} ({mac_text(dev.mac)})")
        for t in tnl.ports:
            c = t.cfg
            lines.append(f"  {t.ofp.name} {t.name} ({t.ofport}): remote_ip="
                         f"{'flow' if c.remote_ip is None else ip_text(c.remote_ip)} key="
                         f"{'flow' if c.out_key is None else c.out_key} dst_port={c.dst_port}")
    return "\n".join(lines) + "\n"
