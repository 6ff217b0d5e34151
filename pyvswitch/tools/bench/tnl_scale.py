"""pvs-bench tunnels: one host at tunnel scale (issue 6, beyond seed 001's host).

    pvs-bench tunnels [--endpoints 20000] [--vnis 1000000] [--macs 100000]
                      [--samples 200] [--quick] [--out bench/results]

One pvs-vswitchd, in a network namespace of its own, configured the way a
cloud host with flow-based tunnels is:

    br-phy   uplink `up0` (a dummy port: frames are injected and captured with
             netdev-dummy/*), LOCAL owns the endpoint 172.31.0.1/16; the
             remote endpoints 10.64.0.0/10 are routed through 172.31.255.254,
             a static neighbour (ovs/route/add, tnl/neigh/set)
    br-int   `vx` type=vxlan options:remote_ip=flow options:key=flow, and
             guest ports g0..g3 (dummy)
             egress:  --macs flows in_port=g0,dl_dst=MAC(k) ->
                      set_field:EP(k)->tun_dst, set_field:VNI(k)->tun_id, output:vx
                      over --endpoints distinct endpoints (EP(k) = endpoint k % E)
             ingress: --vnis flows in_port=vx,tun_id=V -> output:g(1 + V % 3)
    br-l2    NORMAL with mac-table-size above --macs, ports l0, l1, l2 (dummy):
             --macs source MACs arrive on l0 and are learned

Measured: the time to configure the bridges, to add each flow set
(pvs-ofctl add-flows, until the call returns), to learn the MACs (until
fdb/show lists them all), and the daemon's RSS after each step. Then
forwarding is checked at that size on --samples random entries of each kind:
an inner frame from g0 to MAC(k) must leave up0 as VXLAN to EP(k) with
VNI(k) (outer headers decoded); a VXLAN frame with VNI V arriving on up0 must
come out of g(1 + V % 3) alone; a frame to a learned MAC on br-l2 must leave
by l0 alone (not flooded). Results: tunnels-latest.json / .md.
"""

import argparse
import datetime
import ipaddress
import json
import os
import random
import shlex
import struct
import subprocess
import sys
import tempfile
import time

from pyvswitch.core import paths
from pyvswitch.core.unixrpc import call
from pyvswitch.tools.lab import Lab, daemon_env, sh, tool

from . import system
from .flows import rss_kb, settled_rss_kb
from .system import log

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "bench", "results")
LOCAL_IP, GATEWAY_IP, GATEWAY_MAC = "172.31.0.1", "172.31.255.254", "02:ee:00:00:00:01"
ENDPOINTS_NET = int(ipaddress.IPv4Address("10.64.0.0"))
FULL = {"endpoints": 20000, "vnis": 1000000, "macs": 100000, "samples": 200}
QUICK = {"endpoints": 2000, "vnis": 20000, "macs": 5000, "samples": 40}
BATCH = 60                   # frames per netdev-dummy/receive call (it takes at most 63)


# ------------------------------------------------------------------ the tables (pure)
def endpoint(k, endpoints):
    return str(ipaddress.IPv4Address(ENDPOINTS_NET + 1 + k % endpoints))


def vni(k, vnis):
    return 1 + k % vnis


def mac(k, prefix=0x02AA):
    return ":".join(f"{b:02x}" for b in struct.pack(">HI", prefix, k))


def egress_flows(macs, endpoints, vnis):
    for k in range(macs):
        yield (f"table=0,priority=10,in_port=g0,dl_dst={mac(k)},actions=set_field:{endpoint(k, endpoints)}"
               f"->tun_dst,set_field:{vni(k, vnis)}->tun_id,output:vx")


def ingress_flows(vnis):
    for v in range(1, vnis + 1):
        yield f"table=0,priority=10,in_port=vx,tun_id={v},actions=output:g{1 + v % 3}"


def eth(dst, src, ethertype, payload):
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + \
        struct.pack(">H", ethertype) + payload


def ipv4_udp(src, dst, sport, dport, payload):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    s = sum(struct.unpack(">10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack(">H", ~s & 0xFFFF) + hdr[12:] + udp


def inner(dst, src=None, tag=0):
    return eth(dst, src or "02:00:00:00:00:01", 0x0800,
               ipv4_udp("192.168.0.1", "192.168.0.2", 1000 + tag % 50000, 2000, b"scale" + bytes(14)))


def vxlan_frame(dst_mac, src_ip, vni_, payload):
    vx = struct.pack(">II", 0x08000000, vni_ << 8) + payload
    return eth(dst_mac, GATEWAY_MAC, 0x0800, ipv4_udp(src_ip, LOCAL_IP, 49152, 4789, vx))


def decode_vxlan(frame):
    """(outer dst MAC, outer dst IP, UDP dport, VNI, inner frame) or None."""
    if len(frame) < 50 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0xF) * 4
    udp = 14 + ihl
    dport = struct.unpack_from(">H", frame, udp + 2)[0]
    flags, word = struct.unpack_from(">II", frame, udp + 8)
    return (":".join(f"{b:02x}" for b in frame[:6]), str(ipaddress.IPv4Address(frame[30:34])), dport,
            word >> 8 if flags & 0x08000000 else None, frame[udp + 16:])


# ------------------------------------------------------------------ the switch
class Host:
    def __init__(self, lab):
        self.lab = lab
        self.ns = lab.netns("h")
        self.dir = lab.tempdir("run")
        self.env = daemon_env(self.dir)
        self.pid = lab.start_daemon(self.dir, ns=self.ns, timeout=300)

    def ctl(self, prog, *args, timeout=1800):
        r = subprocess.run([tool(prog), *map(str, args)], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"{prog} {shlex.join(map(str, args))[:200]}: {r.stderr.strip()[-500:]}")
        return r.stdout

    def rpc(self, method, *params):
        return call(paths.ctl_path(self.dir), method, list(params), timeout=600)

    def receive(self, port, frames):
        """Inject every frame; a full rx ring refuses the tail of a batch,
        which is sent again once the PMD has made room."""
        i = 0
        while i < len(frames):
            batch = frames[i:i + BATCH]
            out = self.rpc("netdev-dummy/receive", port, *[f.hex() for f in batch])
            lost = int(out.split()[0]) if out.strip() else 0
            i += len(batch) - lost
            if lost:
                time.sleep(0.01)

    def capture(self, port):
        return [bytes.fromhex(h) for h in self.rpc("netdev-dummy/capture", port).split()]

    def add_flows(self, br, lines):
        with tempfile.NamedTemporaryFile("w", suffix=".flows", delete=False) as f:
            for line in lines:
                f.write(line + "\n")
        try:
            t0 = time.monotonic()
            self.ctl("pvs-ofctl", "--timeout", "3600", "add-flows", br, f.name, timeout=3600)
            return time.monotonic() - t0
        finally:
            os.unlink(f.name)


def configure(h, macs):
    dummy = lambda br, p: ["--", "add-port", br, p, "--", "set", "Interface", p, "type=dummy"]  # noqa: E731
    h.ctl("pvs-vsctl", "add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
          *dummy("br-phy", "up0"))
    sh("ip", "addr", "add", f"{LOCAL_IP}/16", "dev", "br-phy", ns=h.ns)
    sh("ip", "link", "set", "br-phy", "up", ns=h.ns)
    h.ctl("pvs-vsctl", "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev",
          "--", "add-port", "br-int", "vx", "--", "set", "Interface", "vx", "type=vxlan",
          "options:remote_ip=flow", "options:key=flow", *sum((dummy("br-int", f"g{i}") for i in range(4)), []))
    h.ctl("pvs-vsctl", "add-br", "br-l2", "--", "set", "Bridge", "br-l2", "datapath_type=netdev",
          f"other_config:mac-table-size={2 * macs}", "other_config:mac-aging-time=3600",
          *sum((dummy("br-l2", f"l{i}") for i in range(3)), []))
    h.ctl("pvs-appctl", "ovs/route/add", "10.64.0.0/10", "br-phy", GATEWAY_IP)
    h.ctl("pvs-appctl", "tnl/neigh/set", "br-phy", GATEWAY_IP, GATEWAY_MAC)
    h.ctl("pvs-ofctl", "del-flows", "br-int")


def learn(h, macs):
    """--macs source MACs arrive on l0; seconds until fdb/show lists them all."""
    t0 = time.monotonic()
    frames = [inner("ff:ff:ff:ff:ff:ff", mac(k, 0x02BB), k) for k in range(macs)]
    h.receive("l0", frames)
    deadline = time.monotonic() + 1800
    n = 0
    while time.monotonic() < deadline:
        n = sum(1 for line in h.ctl("pvs-appctl", "fdb/show", "br-l2").splitlines()[1:] if line.strip())
        if n >= macs:
            break
        time.sleep(5)      # fdb/show of 100,000 lines holds the switch's main thread
    for p in ("l0", "l1", "l2"):
        h.capture(p)                                   # the floods of the learning frames
    return time.monotonic() - t0, n


def br_phy_mac(h):
    out = sh("cat", "/sys/class/net/br-phy/address", ns=h.ns).stdout.strip()
    return out


def check(h, a, rnd):
    """Forwarding at scale: (ok, total) per kind, with the first failure."""
    res = {}
    ks = rnd.sample(range(a.macs), min(a.samples, a.macs))
    h.capture("up0")
    h.receive("g0", [inner(mac(k), tag=k) for k in ks])
    time.sleep(1)
    got, ok, bad = h.capture("up0"), 0, None
    by_inner = {}
    for f in got:
        d = decode_vxlan(f)
        if d is not None:
            by_inner.setdefault(d[4][:6], []).append(d)
    for k in ks:
        want = (GATEWAY_MAC, endpoint(k, a.endpoints), 4789, vni(k, a.vnis))
        seen = [d[:4] for d in by_inner.get(bytes.fromhex(mac(k).replace(":", "")), [])]
        if seen == [want]:
            ok += 1
        elif bad is None:
            bad = f"MAC {mac(k)}: expected {want}, got {seen}"
    res["egress"] = {"ok": ok, "total": len(ks), "first_failure": bad}

    vs = rnd.sample(range(1, a.vnis + 1), min(a.samples, a.vnis))
    local_mac = br_phy_mac(h)
    for p in ("g1", "g2", "g3"):
        h.capture(p)
    h.receive("up0", [vxlan_frame(local_mac, endpoint(v, a.endpoints), v, inner("02:00:00:00:00:02",
                                                                              mac(v, 0x02CC), v))
                      for v in vs])
    time.sleep(1)
    outs = {p: h.capture(p) for p in ("g1", "g2", "g3")}
    ok, bad = 0, None
    for v in vs:
        src = bytes.fromhex(mac(v, 0x02CC).replace(":", ""))
        where = sorted(p for p, fs in outs.items() for f in fs if f[6:12] == src)
        if where == [f"g{1 + v % 3}"]:
            ok += 1
        elif bad is None:
            bad = f"VNI {v}: expected g{1 + v % 3}, seen on {where}"
    res["ingress"] = {"ok": ok, "total": len(vs), "first_failure": bad}

    ls = rnd.sample(range(a.macs), min(a.samples, a.macs))
    for p in ("l0", "l1", "l2"):
        h.capture(p)
    h.receive("l1", [inner(mac(k, 0x02BB), "02:00:00:00:00:0f", k) for k in ls])
    time.sleep(1)
    outs = {p: h.capture(p) for p in ("l0", "l2")}
    ok, bad = 0, None
    for k in ls:
        dst = bytes.fromhex(mac(k, 0x02BB).replace(":", ""))
        where = sorted(p for p, fs in outs.items() for f in fs if f[:6] == dst)
        if where == ["l0"]:
            ok += 1
        elif bad is None:
            bad = f"learned MAC {mac(k, 0x02BB)}: expected l0 alone, seen on {where}"
    res["learned"] = {"ok": ok, "total": len(ls), "first_failure": bad}
    return res


# ------------------------------------------------------------------ report
def render(doc):
    m, r = doc["meta"], doc["summary"]
    mb = lambda kb: f"{kb / 1024:,.0f} MB"  # noqa: E731
    L = ["# Tunnels at scale: one pyvswitch host", "", f"Command: `{m['command']}`", "",
         f"Date: {m['date']}", "", "| step | seconds | daemon RSS after |", "|---|---|---|",
         f"| start (3 bridges, 8 ports, route, neighbour) | {r['configure_s']:.1f} | {mb(r['rss_kb']['configured'])} |",
         f"| {m['macs']:,} egress flows over {m['endpoints']:,} endpoints (add-flows) | {r['egress_add_s']:.1f} "
         f"| {mb(r['rss_kb']['egress'])} |",
         f"| {m['vnis']:,} VNI-to-network flows (add-flows) | {r['ingress_add_s']:.1f} | {mb(r['rss_kb']['ingress'])} |",
         f"| {m['macs']:,} MACs learned by NORMAL ({r['learned_macs']:,} in fdb/show) | {r['learn_s']:.1f} "
         f"| {mb(r['rss_kb']['learned'])} |", "",
         f"Bytes per flow: {r['bytes_per_flow']:,.0f} (RSS growth over both flow sets / flows).", "",
         "| forwarding check at that size | correct |", "|---|---|"]
    for kind, text in (("egress", "g0 -> MAC(k): VXLAN to EP(k), VNI(k), UDP 4789, gateway MAC"),
                       ("ingress", "VXLAN VNI V on the uplink -> g(1 + V % 3) alone"),
                       ("learned", "frame to a learned MAC -> its port alone, not flooded")):
        c = r["checks"][kind]
        L.append(f"| {text} | {c['ok']}/{c['total']}{'' if c['ok'] == c['total'] else ' (' + str(c['first_failure']) + ')'} |")
    return "\n".join(L) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="pvs-bench tunnels", description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoints", type=int)
    p.add_argument("--vnis", type=int)
    p.add_argument("--macs", type=int)
    p.add_argument("--samples", type=int)
    p.add_argument("--quick", action="store_true", help=f"{QUICK}")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=DEFAULT_OUT)
    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if min(a.endpoints, a.vnis, a.macs, a.samples) < 1 or a.vnis >= 1 << 24:
        p.error("counts must be positive, --vnis below 2^24")
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespace)")
    meta = {"command": "pvs-bench tunnels " + shlex.join(argv), "endpoints": a.endpoints, "vnis": a.vnis,
            "macs": a.macs, "samples": a.samples,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": system.machine_info()}
    rnd = random.Random(a.seed)
    with Lab(prefix="pvbts") as lab:
        t0 = time.monotonic()
        h = Host(lab)
        configure(h, a.macs)
        s = {"configure_s": time.monotonic() - t0, "rss_kb": {"configured": settled_rss_kb(h.pid)}}
        log(f"configured in {s['configure_s']:.1f} s; adding {a.macs} egress flows")
        s["egress_add_s"] = h.add_flows("br-int", egress_flows(a.macs, a.endpoints, a.vnis))
        s["rss_kb"]["egress"] = settled_rss_kb(h.pid)
        log(f"egress flows in {s['egress_add_s']:.1f} s; adding {a.vnis} VNI flows")
        s["ingress_add_s"] = h.add_flows("br-int", ingress_flows(a.vnis))
        s["rss_kb"]["ingress"] = settled_rss_kb(h.pid)
        s["bytes_per_flow"] = (s["rss_kb"]["ingress"] - s["rss_kb"]["configured"]) * 1024 / (a.macs + a.vnis)
        log(f"VNI flows in {s['ingress_add_s']:.1f} s; learning {a.macs} MACs")
        s["learn_s"], s["learned_macs"] = learn(h, a.macs)
        s["rss_kb"]["learned"] = rss_kb(h.pid)
        log(f"learned {s['learned_macs']} MACs in {s['learn_s']:.1f} s; checking forwarding")
        s["checks"] = check(h, a, rnd)
        with open(os.path.join(h.dir, "pvs-vswitchd.log")) as f:
            log_tail = f.read()[-3000:]
    doc = {"meta": meta, "summary": s, "daemon_log_tail": log_tail}
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, "tunnels-latest")
    with open(stem + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    md = render(doc)
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0 if all(c["ok"] == c["total"] for c in s["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
