"""The switches under test. Each one bridges pvbv1r and pvbv2r.

`setup(cleanup)` registers every undo step on the cleanup stack before doing
it; the caller unwinds the stack after the switch's block of measurements.
`bench_pids()` are processes whose CPU belongs to the benchmark (not foreign),
`switch_pids()` those whose utime+stime is the switch's CPU per packet.
"""

import json
import os
import shutil
import tempfile
import time

from . import system
from .system import BRIDGE, V1R, V2R, log, run

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


FIREWALL_FLOWS = (
    "table=0,priority=10,ip,actions=ct(table=1,zone=1)",
    "table=0,priority=0,actions=drop",
    "table=1,priority=10,ct_state=+trk+new,ip,in_port=1,actions=ct(commit,zone=1),output:2",
    "table=1,priority=10,ct_state=+trk+new,ip,in_port=2,actions=ct(commit,zone=1),output:1",
    "table=1,priority=10,ct_state=+trk+est,ip,in_port=1,actions=output:2",
    "table=1,priority=10,ct_state=+trk+est,ip,in_port=2,actions=output:1",
    "table=1,priority=0,actions=drop",
)


def _cpu_mask(cpu):
    return hex(1 << cpu)


def _fresh_netns(cleanup, ns):
    """A namespace of our own, removed on unwind; one left by a killed run is
    removed first (the bench lock says no other run uses it)."""
    if os.path.exists(f"/run/netns/{ns}"):
        log(f"removing leftover namespace {ns}")
        run("ip", "netns", "del", ns, check=False)
    cleanup.push(f"netns {ns}", run, "ip", "netns", "del", ns, check=False)
    run("ip", "netns", "add", ns)
    run("ip", "link", "set", "lo", "up", ns=ns)


# ----------------------------------------------------------------- VXLAN loop
VXLAN_IPS = {"a": "172.31.255.1", "b": "172.31.255.2"}        # endpoints of br-phy-a, br-phy-b
VXLAN_HWADDRS = {"a": "02:00:00:00:ff:01", "b": "02:00:00:00:ff:02"}
VXLAN_KEY = 100           # guest k's tunnels: key 100 + k
VXLAN_OVERHEAD = 50        # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
VXLAN_TRACE = "in_port={p},udp,dl_src=00:00:00:00:00:{p:02x},nw_src=198.18.0.1,nw_dst=198.18.0.2,udp_src=9,udp_dst=9"


def _other(side):
    return "b" if side == "a" else "a"


def vxlan_port(side, k, guests=1):
    """(name, ofport) of guest k's tunnel port on side a (to B) or b (to A):
    vxlan-a/vxlan-b on 11/12 for the first guest, as in the script; past
    the guests' vhost-user ports (1..2*guests) when there are more than 5."""
    suffix = str(k) if k else ""
    base = max(11, 2 * guests + 1)
    return f"vxlan-{side}{suffix}", base + 2 * k + (side == "b")


class VxlanLoop:
    """../shared/bench-anchors/ovs_dpdk_pvp_vxlan.sh inside one switch:

        vhu0 -> vxlan-a: tnl_push(A->B) -> br-phy-a (LOCAL -> pa) ==patch==
        br-phy-b (pb -> LOCAL owning B): tnl_pop -> vxlan-b -> vhu1, and back.

    The integration bridge (`bridge`) already has vhu0/vhu1 as ports 1 and 2.
    vsctl/ofctl/appctl are the switch's own tools; `ns` is the namespace of
    its daemon, where the br-phy devices live. pkt_mark: OVS's local /32 of
    the other endpoint beats a user route of the same length, so its routes
    are marked and the tunnel ports set egress_pkt_mark (the script's fix)."""

    def __init__(self, bridge, vsctl, ofctl, appctl, ns, pkt_mark, guests=1):
        self.bridge, self.ns, self.pkt_mark, self.guests = bridge, ns, pkt_mark, guests
        self.vsctl, self.ofctl, self.appctl = vsctl, ofctl, appctl
        self.traces = []

    def build(self):
        self._tunnel_ports()
        self._underlay_bridges()
        self._endpoints()
        self._routes_and_neighbours()
        self._flows()

    def _mark(self, side):
        return 1 if side == "a" else 2

    def _tunnel_ports(self):
        # no local_ip: with a mark, OVS also wants local_ip to be local under it
        for k in range(self.guests):
            for s in "ab":
                name, ofport = vxlan_port(s, k, self.guests)
                extra = [f"options:egress_pkt_mark={self._mark(s)}"] if self.pkt_mark else []
                self.vsctl("add-port", self.bridge, name, "--", "set", "Interface", name,
                           "type=vxlan", f"ofport_request={ofport}",
                           f"options:remote_ip={VXLAN_IPS[_other(s)]}", f"options:key={VXLAN_KEY + k}",
                           *extra)

    def _underlay_bridges(self):
        for s in "ab":
            self.vsctl("add-br", f"br-phy-{s}", "--", "set", "bridge", f"br-phy-{s}",
                       "datapath_type=netdev", f"other_config:hwaddr={VXLAN_HWADDRS[s]}")
        for s in "ab":
            self.vsctl("add-port", f"br-phy-{s}", f"p{s}", "--", "set", "Interface", f"p{s}",
                       "type=patch", f"options:peer=p{_other(s)}", "ofport_request=1")

    def _endpoints(self):
        # both in one /24: OVS refuses a user route to an address outside the
        # output bridge's subnets (no source address)
        for s in "ab":
            # no IPv6 chatter from the kernel through the underlay
            run("sysctl", "-qw", f"net.ipv6.conf.br-phy-{s}.disable_ipv6=1", ns=self.ns, check=False)
            run("ip", "addr", "add", f"{VXLAN_IPS[s]}/24", "dev", f"br-phy-{s}", ns=self.ns)
            run("ip", "link", "set", f"br-phy-{s}", "up", ns=self.ns)

    def _routes_and_neighbours(self):
        for s in "ab":
            mark = [f"pkt_mark={self._mark(s)}"] if self.pkt_mark else []
            self._route_add(f"{VXLAN_IPS[_other(s)]}/32", f"br-phy-{s}", *mark)
        for s in "ab":
            o = _other(s)
            self.appctl("tnl/arp/set", f"br-phy-{s}", VXLAN_IPS[o], self._mac(f"br-phy-{o}"))

    def _route_add(self, *args, wait=15.0):
        """The switch learns the new endpoint address from the kernel a moment
        later (pyvswitch re-reads every 2 s); until then the route has no
        source address and is refused."""
        end = time.monotonic() + wait
        while True:
            r = self.appctl("ovs/route/add", *args, check=False)
            if r.returncode == 0:
                return
            if time.monotonic() > end:
                raise RuntimeError(f"ovs/route/add {' '.join(args)}: {(r.stderr or r.stdout).strip()}")
            time.sleep(0.5)

    def _mac(self, dev):
        """The device's MAC as the kernel has it: what an ARP reply would say."""
        r = run("ip", "-j", "link", "show", "dev", dev, ns=self.ns)
        return json.loads(r.stdout)[0]["address"]

    def _flows(self):
        for br in (self.bridge, "br-phy-a", "br-phy-b"):
            self.ofctl("del-flows", br)
        for k in range(self.guests):
            p0, p1 = 2 * k + 1, 2 * k + 2          # the guest's two vhost-user ports
            a, b = vxlan_port("a", k, self.guests)[1], vxlan_port("b", k, self.guests)[1]
            for flow in (f"in_port={p0},actions=output:{a}", f"in_port={b},actions=output:{p1}",
                         f"in_port={p1},actions=output:{b}", f"in_port={a},actions=output:{p0}"):
                self.ofctl("add-flow", self.bridge, flow)
        for s in "ab":
            self.ofctl("add-flow", f"br-phy-{s}", "in_port=LOCAL,actions=output:1")
            self.ofctl("add-flow", f"br-phy-{s}", "in_port=1,actions=LOCAL")

    def check(self):
        """Both directions must encapsulate and decapsulate (ofproto/trace), as
        the script checks; otherwise the loop would measure drops."""
        self.traces = []
        for p in range(1, 2 * self.guests + 1):
            r = self.appctl("ofproto/trace", self.bridge, VXLAN_TRACE.format(p=p), check=False)
            text = r.stdout + r.stderr
            self.traces.append(text)
            acts = [l for l in text.splitlines() if l.startswith("Datapath actions:")]
            if not acts or "tnl_push(" not in acts[-1] or "tnl_pop(" not in acts[-1]:
                got = acts[-1] if acts else text.strip()[-400:]
                raise RuntimeError(f"VXLAN loop broken: ofproto/trace from port {p} shows no "
                                   f"tnl_push and tnl_pop ({got})")

    def describe(self):
        out = []
        for cmd in (("ovs/route/show",), ("tnl/arp/show",), ("tnl/ports/show",)):
            r = self.appctl(*cmd, check=False)
            out.append(r.stdout + r.stderr)
        for br in ("br-phy-a", "br-phy-b"):
            out.append(self.ofctl("dump-flows", br).stdout)
        return "".join(out) + "".join(self.traces)


class Switch:
    name = "?"
    layout = ""

    def __init__(self, opts, rawdir, state):
        self.opts = opts          # switch_cpu, main_cpu, flows ("ports" | "normal")
        self.rawdir = rawdir
        self.state = state

    def bench_pids(self):
        return []

    def switch_pids(self):
        return []

    def pmd_clear(self):
        pass

    def pmd_show(self):
        return None

    def describe(self):
        """Text for the raw directory after set-up (configuration, affinity)."""
        return ""

    def health(self):
        """Problems the switch reported itself (e.g. ERR lines of its log)."""
        return []

    @staticmethod
    def _log_errors(path, levels=("|ERR|", "|EMER|")):
        """First line of each distinct ERR/EMER message of a daemon log, without
        the timestamp and sequence number."""
        out = []
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if any(l in line for l in levels):
                        msg = line.strip().split("|", 2)[-1][:200]
                        if msg not in out:
                            out.append(msg)
        except OSError:
            pass
        return out

    def _flows(self, ofctl):
        ofctl("del-flows", BRIDGE)
        if self.opts.flows == "normal":
            ofctl("add-flow", BRIDGE, "actions=NORMAL")
        elif self.opts.flows == "firewall":
            # a stateful firewall: every IP packet through conntrack and a second pass
            for flow in FIREWALL_FLOWS:
                ofctl("add-flow", BRIDGE, flow)
        else:
            ofctl("add-flow", BRIDGE, "in_port=1,actions=output:2")
            ofctl("add-flow", BRIDGE, "in_port=2,actions=output:1")

    def _daemon(self, cleanup, pidfile, expect, stop):
        """Register the stop of a detached daemon known by its pidfile."""
        def _stop():
            pid = system.read_pidfile(pidfile)
            if pid is None:
                return
            stop(pid)
            system.stop_pid(pid, expect)  # no-op if the polite stop worked
            self.state.remove(pid)
        cleanup.push(f"stop {expect}", _stop)

    def _started(self, pidfile, expect):
        pid = system.read_pidfile(pidfile)
        if pid is None:
            raise RuntimeError(f"{expect} wrote no pidfile {pidfile}")
        self.state.add(pid, expect)
        return pid

    @staticmethod
    def _affinity_text(label, pid):
        lines = [f"{label} pid {pid}: tid comm allowed-cpus last-cpu"]
        for tid, comm, allowed, last in system.thread_affinity(pid):
            lines.append(f"  {tid:>8} {comm:<18} {allowed:<6} {last}")
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- Linux bridge
class LinuxBridge(Switch):
    name = "linux-bridge"

    @property
    def layout(self):
        return (f"kernel bridge; RPS on {V1R}/{V2R} (rps_cpus={_cpu_mask(self.opts.switch_cpu)[2:]}) "
                f"moves bridge forwarding + ns2 receive (softirq) to core {self.opts.switch_cpu}")

    def setup(self, cleanup):
        cleanup.push(f"bridge {BRIDGE}", run, "ip", "link", "del", BRIDGE, check=False)
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("sysctl", "-qw", f"net.ipv6.conf.{BRIDGE}.disable_ipv6=1", check=False)
        for port in (V1R, V2R):
            run("ip", "link", "set", port, "master", BRIDGE)
            with open(f"/sys/class/net/{port}/queues/rx-0/rps_cpus", "w") as f:
                f.write(_cpu_mask(self.opts.switch_cpu)[2:])
        run("ip", "link", "set", BRIDGE, "up")

    def describe(self):
        out = run("ip", "-d", "link", "show", "master", BRIDGE, check=False).stdout
        for port in (V1R, V2R):
            with open(f"/sys/class/net/{port}/queues/rx-0/rps_cpus") as f:
                out += f"{port} rps_cpus={f.read().strip()}\n"
        return out


# ----------------------------------------------------------------- OVS netdev / AF_PACKET
class OvsSystem(Switch):
    name = "ovs-system"

    @property
    def layout(self):
        return (f"ovsdb-server on core {self.opts.main_cpu}; all of ovs-vswitchd on core "
                f"{self.opts.switch_cpu} (`taskset`; its main thread polls the type=system "
                f"AF_PACKET ports) + softirq of its transmissions")

    def __init__(self, *a):
        super().__init__(*a)
        self.dir = None
        self.vswitchd_pid = None
        self.ovsdb_pid = None

    def _env(self):
        d = self.dir
        return {"OVS_RUNDIR": d, "OVS_LOGDIR": d, "OVS_DBDIR": d, "OVS_SYSCONFDIR": d,
                "OVS_PKGDATADIR": "/usr/share/openvswitch"}

    def vsctl(self, *args, **kw):
        return run("ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--timeout=30", *args,
                   env=self._env(), **kw)

    def ofctl(self, *args):
        return run("ovs-ofctl", *args, env=self._env())

    def appctl(self, target, *args, **kw):
        return run("ovs-appctl", "-t", f"{self.dir}/{target}.ctl", "--timeout=20", *args,
                   env=self._env(), **kw)

    netns = None        # run the daemons in a namespace of their own (see OvsDpdk)

    def setup(self, cleanup):
        self.dir = tempfile.mkdtemp(prefix="pvb-ovs-")
        cleanup.push("ovs dir", self._save_and_remove_dir)
        run("ovsdb-tool", "create", f"{self.dir}/conf.db", OVS_SCHEMA)
        d = self.dir
        if self.netns:
            cleanup.push(f"netns {self.netns}", run, "ip", "netns", "del", self.netns, check=False)
            run("ip", "netns", "add", self.netns)
        self._daemon(cleanup, f"{d}/ovsdb-server.pid", "ovsdb-server",
                     lambda pid: self.appctl("ovsdb-server", "exit", check=False))
        run("taskset", "-c", self.opts.main_cpu, "ovsdb-server", f"{d}/conf.db",
            f"--remote=punix:{d}/db.sock", f"--pidfile={d}/ovsdb-server.pid", "--detach",
            f"--log-file={d}/ovsdb-server.log", f"--unixctl={d}/ovsdb-server.ctl",
            "-vconsole:off", env=self._env(), ns=self.netns)
        self.ovsdb_pid = self._started(f"{d}/ovsdb-server.pid", "ovsdb-server")
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   f"other_config:pmd-cpu-mask={_cpu_mask(self.opts.switch_cpu)}",
                   *self.db_config())
        self._daemon(cleanup, f"{d}/ovs-vswitchd.pid", "ovs-vswitchd", self._stop_vswitchd)
        run("taskset", "-c", self.vswitchd_cpu, self.vswitchd_binary, f"unix:{d}/db.sock",
            f"--pidfile={d}/ovs-vswitchd.pid", "--detach", f"--log-file={d}/ovs-vswitchd.log",
            f"--unixctl={d}/ovs-vswitchd.ctl", "-vconsole:off", env=self._env(), timeout=120,
            ns=self.netns)
        self.vswitchd_pid = self._started(f"{d}/ovs-vswitchd.pid", "ovs-vswitchd")
        self.vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev")
        for name, ofport, iface_args in self.ports():
            self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name,
                       f"ofport_request={ofport}", *iface_args)
        self._flows(self.ofctl)
        errs = self.vsctl("--columns=name,error", "--format=csv", "list", "Interface").stdout
        bad = [l for l in errs.splitlines()[1:] if l.split(",", 1)[1].strip() not in ("", "[]")]
        if bad:
            raise RuntimeError(f"OVS interface errors: {'; '.join(bad)}")
        time.sleep(1)

    vswitchd_binary = "ovs-vswitchd"

    @property
    def vswitchd_cpu(self):
        return self.opts.switch_cpu      # the whole daemon: its main thread polls AF_PACKET

    def db_config(self):
        """Extra Open_vSwitch other_config settings (before ovs-vswitchd starts)."""
        return []

    def ports(self):
        """[(name, ofport, extra Interface settings)]."""
        return [(V1R, 1, []), (V2R, 2, [])]

    def _stop_vswitchd(self, pid):
        self.appctl("ovs-vswitchd", "exit", "--cleanup", check=False)
        for _ in range(50):
            if not system.pid_alive(pid):
                return
            time.sleep(0.1)

    def _save_and_remove_dir(self):
        if self.dir and os.path.isdir(self.dir):
            for name in ("ovs-vswitchd.log", "ovsdb-server.log"):
                src = os.path.join(self.dir, name)
                if os.path.exists(src) and self.rawdir:
                    shutil.copy(src, os.path.join(self.rawdir, f"{self.name}-{name}"))
            shutil.rmtree(self.dir, ignore_errors=True)

    def bench_pids(self):
        return [p for p in (self.vswitchd_pid, self.ovsdb_pid) if p]

    def switch_pids(self):
        return [self.vswitchd_pid] if self.vswitchd_pid else []

    def pmd_clear(self):
        self.appctl("ovs-vswitchd", "dpif-netdev/pmd-stats-clear", check=False)

    def pmd_show(self):
        r = self.appctl("ovs-vswitchd", "dpif-netdev/pmd-stats-show", check=False)
        return r.stdout + r.stderr

    def describe(self):
        out = self.vsctl("show", check=False).stdout
        out += self.ofctl("dump-flows", BRIDGE).stdout
        out += self._affinity_text("ovs-vswitchd", self.vswitchd_pid)
        out += self._affinity_text("ovsdb-server", self.ovsdb_pid)
        return out


# ----------------------------------------------------------------- pyvswitch
class PyVSwitch(Switch):
    name = "pyvswitch"

    @property
    def layout(self):
        return (f"pmd-cpu-mask={_cpu_mask(self.opts.switch_cpu)}: PMD thread on core {self.opts.switch_cpu}; "
                f"after set-up the harness moves every other pvs-vswitchd thread to core "
                f"{self.opts.main_cpu} (pvs-vswitchd intersects pmd-cpu-mask with its own CPU "
                f"affinity, so it is started with all CPUs allowed)")

    netns = None        # run the daemon in a namespace of its own (pvp --flows vxlan)

    def __init__(self, *a):
        super().__init__(*a)
        self.dir = None
        self.pid = None

    def _env(self):
        return {"PVS_RUNDIR": self.dir}

    def ctl(self, prog, *args, **kw):
        kw.setdefault("timeout", 30)
        return run(system.tool(prog), *args, env=self._env(), **kw)

    def setup(self, cleanup):
        self.dir = tempfile.mkdtemp(prefix="pvb-pvs-")
        cleanup.push("pvs dir", self._save_and_remove_dir)
        if self.netns:
            _fresh_netns(cleanup, self.netns)
        pidfile = os.path.join(self.dir, "pvs-vswitchd.pid")
        self._daemon(cleanup, pidfile, "pvs-vswitchd", lambda pid: None)
        # with all CPUs (the harness itself is pinned to core 0 and children
        # inherit that): pvs-vswitchd only uses pmd-cpu-mask cores that are in
        # its own affinity, so under taskset -c 0 its PMD ran on core 0
        all_cpus = ",".join(str(c) for c in range(os.cpu_count() or 1))
        run("taskset", "-c", all_cpus, system.tool("pvs-vswitchd"), "--rundir", self.dir,
            "--detach", "--log-file", env=self._env(), timeout=120, ns=self.netns)
        self.pid = self._started(pidfile, "pvs-vswitchd")
        # the first bridge starts a PMD, which compiles its loop on a cold numba
        # cache (minutes): wait for it here rather than in a measurement
        self.ctl("pvs-vsctl", "--timeout=900", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE,
                 "datapath_type=netdev", timeout=960)
        self.ctl("pvs-vsctl", "set", "Open_vSwitch", ".",
                 f"other_config:pmd-cpu-mask={_cpu_mask(self.opts.switch_cpu)}")
        for name, ofport, iface_args in self.ports():
            self.ctl("pvs-vsctl", "add-port", BRIDGE, name, "--", "set", "Interface", name,
                     f"ofport_request={ofport}", *iface_args)
        self._flows(lambda *a: self.ctl("pvs-ofctl", *a))
        time.sleep(1)
        # the non-PMD threads go to the generator's core, like OVS's
        for tid, _, allowed, _ in system.thread_affinity(self.pid):
            if allowed != str(self.opts.switch_cpu):
                try:
                    os.sched_setaffinity(tid, {self.opts.main_cpu})
                except OSError:
                    pass

    def ports(self):
        """[(name, ofport, extra Interface settings)]."""
        return [(V1R, 1, ["type=afpacket"]), (V2R, 2, ["type=afpacket"])]

    def _save_and_remove_dir(self):
        if self.dir and os.path.isdir(self.dir):
            src = os.path.join(self.dir, "pvs-vswitchd.log")
            if os.path.exists(src) and self.rawdir:
                shutil.copy(src, os.path.join(self.rawdir, "pyvswitch-pvs-vswitchd.log"))
            shutil.rmtree(self.dir, ignore_errors=True)

    def bench_pids(self):
        return [self.pid] if self.pid else []

    def health(self):
        errs = self._log_errors(os.path.join(self.dir, "pvs-vswitchd.log")) if self.dir else []
        if self.pid:
            threads = system.thread_affinity(self.pid)
            cpu = str(self.opts.switch_cpu)
            if not any(allowed == cpu for _, _, allowed, _ in threads):
                errs.append(f"no pvs-vswitchd thread is pinned to core {cpu} "
                            f"(threads: {len(threads)}); is the PMD running?")
        return errs

    def switch_pids(self):
        return self.bench_pids()

    def pmd_clear(self):
        self.ctl("pvs-appctl", "dpif-netdev/pmd-stats-clear", check=False)

    def pmd_show(self):
        r = self.ctl("pvs-appctl", "dpif-netdev/pmd-stats-show", check=False)
        return r.stdout + r.stderr

    def describe(self):
        out = self.ctl("pvs-vsctl", "show", check=False)
        text = out.stdout + out.stderr
        fl = self.ctl("pvs-ofctl", "dump-flows", BRIDGE, check=False)
        text += fl.stdout + fl.stderr
        if self.pid:
            text += self._affinity_text("pvs-vswitchd", self.pid)
        return text


SWITCHES = {c.name: c for c in (PyVSwitch, LinuxBridge, OvsSystem)}
