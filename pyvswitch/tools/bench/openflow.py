"""OpenFlow benchmark: flow-mods per second and packet-ins per second, for
pyvswitch and, in the same run and with the same client, Open vSwitch.

    python -m pyvswitch.tools.bench.openflow [--switch pyvswitch,ovs] [--flows 100000]
        [--reps 3] [--pin-rates 20000,50000,0] [--pin-seconds 5] [--quick]

The client is ours (pyvswitch.openflow codec) and plays the controller: it
listens on a unix socket and the switch under test connects to it
(`set-controller unix:PATH`, fail_mode=secure, protocols=OpenFlow13).

flow-mods: N OpenFlow 1.3 OFPFC_ADD messages (`priority=100,ip,nw_dst=<N
distinct addresses>,actions=output:1`), encoded before the clock starts,
written back to back on the connection (pipelined, no waiting), then one
barrier; rate = N / (barrier reply received - first byte sent). An aggregate
request then checks that the switch holds N flows; a delete-all + barrier is
timed too.

packet-ins: the only flow is `priority=0,actions=CONTROLLER:65535` (table
miss -> controller). A generator process (raw AF_PACKET socket, paced) writes
64-byte UDP frames into a veth pair whose other end is switch port 1
(pyvswitch: type=afpacket; Open vSwitch: datapath_type=netdev, a system
port). Once the first packet-in arrived and after a 1-second warm-up, the
controller counts the packet-ins it receives in a window; offered = frames
the generator sent in the same window (it prints its counter every 0.1 s).
Rate 0 = as fast as the generator can (one Python process).

--quick: 20,000 flows, 1 rep, packet-ins at 20,000 pps and flat out, 3 s
windows (under 2 minutes).

Open vSwitch is Debian's ovs-vswitchd and ovsdb-server, in a run directory
and database of their own and in a network namespace of their own (only one
ovs-vswitchd with a netdev bridge works per namespace: others may be running
one), stopped by PID afterwards; the veth's switch end moves into that
namespace, the generator's end stays outside. CPU layout on a 2-core
machine: the client and the generator on core 0 (taskset/sched_setaffinity);
pyvswitch's PMD thread on core 1 (pmd-cpu-mask), its other threads and all of
ovs-vswitchd and ovsdb-server unpinned.

Writes bench/results/openflow-latest.json and .md (and raw data under
bench/results/raw/openflow-<stamp>/). Root only (veth, daemons).
"""

import argparse
import datetime
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

from . import system
from .system import log, run

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "bench", "results")
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
LOCK_FILE = "/run/pvof-bench.lock"
TAG = f"{os.getpid() % 1000:03d}"
VETH_SW, VETH_GEN = f"pvofa{TAG}", f"pvofb{TAG}"    # switch end, generator end
OVS_NETNS = f"pvofns{TAG}"
OFP13 = 4
BLOB_XID = 0x10000000            # xids of the pre-encoded flow mods start here
T_ERROR, T_ECHO_REQ, T_ECHO_REP, T_PACKET_IN, T_MP_REPLY, T_BARRIER_REP = 1, 2, 3, 10, 19, 21
FRAME = (bytes.fromhex("020000000099" "020000000098" "0800")
         + bytes.fromhex("45000032000100004011" "0000" "0a630701" "0a630702")
         + struct.pack("!HHHH", 1000, 2000, 30, 0) + bytes(22))


# ------------------------------------------------------------------ generator
def generate(iface, rate, seconds, out=sys.stdout, every=0.1):
    """Send FRAME on iface at `rate` pps (0: as fast as possible) for
    `seconds`, printing "<CLOCK_MONOTONIC seconds> <frames sent>" every
    `every` seconds (the parent's time.monotonic() is the same clock)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    send, frame = s.send, FRAME
    burst = 32
    t0 = time.monotonic()
    end, next_mark = t0 + seconds, t0
    sent = 0
    while True:
        now = time.monotonic()
        if now >= next_mark:
            out.write(f"{now:.6f} {sent}\n")
            out.flush()
            next_mark = now + every
        if now >= end:
            if next_mark != now + every:       # the last mark carries the final count
                out.write(f"{now:.6f} {sent}\n")
                out.flush()
            break
        if rate:
            due = (now - t0) * rate
            if sent >= due:
                time.sleep(min(0.001, (sent - due) / rate + 1e-5))
                continue
        for _ in range(burst):
            try:
                send(frame)
            except OSError:          # ENOBUFS: the veth queue is full
                break
            sent += 1


class Generator:
    """The generator process and the (time, sent) marks it prints."""

    def __init__(self, rate, seconds):
        self.marks = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyvswitch.tools.bench.openflow", "--generate", VETH_GEN,
             str(rate), str(seconds)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            t, n = line.split()
            self.marks.append((float(t), int(n)))

    def sent_at(self, t):
        """Frames sent by time t (linear between the marks around it)."""
        marks = list(self.marks)
        before = [m for m in marks if m[0] <= t]
        after = [m for m in marks if m[0] >= t]
        if not before:
            return 0
        if not after:
            return before[-1][1]
        (ta, na), (tb, nb) = before[-1], after[0]
        return na if tb == ta else na + (nb - na) * (t - ta) / (tb - ta)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)


# ------------------------------------------------------------------ controller
class Controller:
    """The switch's OpenFlow 1.3 controller connection: a reader thread
    answers echoes, counts packet-ins (per-second time stamps), and hands
    every other reply to whoever waits for its xid."""

    def __init__(self, sock):
        from pyvswitch.openflow import messages as M
        from pyvswitch.openflow import wire
        self.M, self.wire = M, wire
        self.sock = sock
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_lock = threading.Lock()
        self.cond = threading.Condition()
        self.replies = {}          # xid -> [decoded messages]
        self.errors = []
        self.pi_count = 0
        self.pi_marks = []         # (time, count) snapshots
        self.closed = None
        self.xid = 100
        self._hello()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # -- wire
    def _recv_one(self):
        hdr = self._recv_exact(8)
        length = struct.unpack_from("!H", hdr, 2)[0]
        return hdr + self._recv_exact(length - 8)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            data = self.sock.recv(n - len(buf))
            if not data:
                raise ConnectionError("switch closed the connection")
            buf += data
        return buf

    def _hello(self):
        self.sock.settimeout(30)
        self.sock.sendall(self.wire.encode(self.M.Hello((OFP13,)), OFP13, 1))
        msg = self._recv_one()
        if msg[1] != 0:
            raise RuntimeError(f"expected a hello, got type {msg[1]}")
        self.sock.settimeout(None)

    def send_raw(self, data, chunk=1 << 16):
        with memoryview(data) as mv:
            for off in range(0, len(data), chunk):
                with self.send_lock:
                    self.sock.sendall(mv[off:off + chunk])

    def next_xid(self):
        self.xid += 1
        return self.xid

    def encode(self, msg, xid=None):
        return self.wire.encode(msg, OFP13, self.next_xid() if xid is None else xid)

    def request(self, msg, timeout=600.0, want=None):
        """Send msg; wait until its reply (the last part of a multipart) is in."""
        xid = self.next_xid()
        data = self.wire.encode(msg, OFP13, xid)
        self.send_raw(data)
        return xid, self.wait(xid, timeout)

    def wait(self, xid, timeout=600.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                parts = self.replies.get(xid, [])
                if parts and (isinstance(parts[-1], self.M.Error)
                              or not getattr(parts[-1], "flags", 0) & 1):
                    return self.replies.pop(xid)
                if self.closed:
                    raise ConnectionError(self.closed)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply to xid {xid} in {timeout:g} s")
                self.cond.wait(min(left, 1.0))

    def _read(self):
        buf = bytearray()
        recv = self.sock.recv
        try:
            while True:
                data = recv(1 << 20)
                if not data:
                    raise ConnectionError("switch closed the connection")
                buf += data
                off, n, pis = 0, len(buf), 0
                while n - off >= 8:
                    length = (buf[off + 2] << 8) | buf[off + 3]
                    if length < 8:
                        raise ConnectionError("bad length from the switch")
                    if n - off < length:
                        break
                    mtype = buf[off + 1]
                    if mtype == T_PACKET_IN:
                        pis += 1
                    else:
                        self._other(bytes(buf[off:off + length]), mtype)
                    off += length
                del buf[:off]
                if pis:
                    self.pi_count += pis
        except (OSError, ConnectionError) as e:
            with self.cond:
                self.closed = str(e) or type(e).__name__
                self.cond.notify_all()

    def _other(self, raw, mtype):
        xid = struct.unpack_from("!I", raw, 4)[0]
        if mtype == T_ECHO_REQ:
            reply = bytearray(raw)
            reply[1] = T_ECHO_REP
            with self.send_lock:
                self.sock.sendall(bytes(reply))
            return
        if mtype not in (T_ERROR, T_MP_REPLY, T_BARRIER_REP):
            return                       # port status, flow removed...
        try:
            msg = self.wire.decode(raw)[2]
        except self.wire.OFError as e:
            msg = self.M.Error(name=f"undecodable reply: {e}")
        with self.cond:
            if isinstance(msg, self.M.Error):
                self.errors.append((xid, msg.name))
            if xid < BLOB_XID:
                self.replies.setdefault(xid, []).append(msg)
            self.cond.notify_all()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def flow_mods(n):
    """N distinct OFPFC_ADD flow mods (FlowMod objects)."""
    import dataclasses
    from pyvswitch.openflow.text import parse_flow
    base = parse_flow("priority=100,ip,nw_dst=10.0.0.0,actions=output:1", "add")
    return [dataclasses.replace(base, match=base.match.with_field("nw_dst", (10 << 24) | (i + 1)))
            for i in range(n)]


# ------------------------------------------------------------------ switches
class Switch:
    name = "?"

    def __init__(self, args, rawdir):
        self.args, self.rawdir = args, rawdir
        self.dir = None
        self.pids = []               # (pid, expect)

    def stop(self):
        for pid, expect in reversed(self.pids):
            system.stop_pid(pid, expect)
        self.pids.clear()

    def _pid(self, path, expect, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = system.read_pidfile(path)
            if pid and expect in (system.pid_cmdline(pid) or ""):
                self.pids.append((pid, expect))
                return pid
            time.sleep(0.05)
        raise RuntimeError(f"{expect} did not write {path}")

    def save_logs(self, names):
        if not (self.dir and os.path.isdir(self.dir)):
            return
        for name in names:
            src = os.path.join(self.dir, name)
            if os.path.exists(src) and self.rawdir:
                shutil.copy(src, os.path.join(self.rawdir, f"{self.name}-{name}"))


class PyVSwitch(Switch):
    name = "pyvswitch"
    bridge = f"pvofp{TAG}"

    def _env(self):
        return {"PVS_RUNDIR": self.dir}

    def ctl(self, prog, *args, **kw):
        # generous: a cold numba cache makes the first reconfiguration slow
        return run(system.tool(prog), *args, env=self._env(), timeout=kw.pop("timeout", 600), **kw)

    def start(self, target):
        all_cpus = ",".join(str(c) for c in range(os.cpu_count() or 1))
        run("taskset", "-c", all_cpus, system.tool("pvs-vswitchd"), "--rundir", self.dir,
            "--detach", "--log-file", env=self._env(), timeout=120)
        self.pid = self._pid(os.path.join(self.dir, "pvs-vswitchd.pid"), "pvs-vswitchd")
        pmd = hex(1 << self.args.switch_cpu)
        self.ctl("pvs-vsctl", "set", "Open_vSwitch", ".", f"other_config:pmd-cpu-mask={pmd}")
        self.ctl("pvs-vsctl", "add-br", self.bridge, "--", "set", "bridge", self.bridge,
                 "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
                 "--", "add-port", self.bridge, VETH_SW, "--", "set", "Interface", VETH_SW,
                 "type=afpacket", "ofport_request=1")
        self.ctl("pvs-vsctl", "set-controller", self.bridge, target)

    def describe(self):
        r = self.ctl("pvs-vsctl", "show", check=False)
        return r.stdout + r.stderr

    def version(self):
        r = self.ctl("pvs-appctl", "version", check=False)
        return r.stdout.strip()

    def stop(self):
        super().stop()
        self.save_logs(["pvs-vswitchd.log"])
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Ovs(Switch):
    name = "ovs"
    bridge = f"pvofo{TAG}"

    def _env(self):
        d = self.dir
        return {"OVS_RUNDIR": d, "OVS_LOGDIR": d, "OVS_DBDIR": d, "OVS_SYSCONFDIR": d,
                "OVS_PKGDATADIR": "/usr/share/openvswitch"}

    def vsctl(self, *args, **kw):
        return run("ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--timeout=120", *args,
                   env=self._env(), timeout=180, **kw)

    def appctl(self, target, *args, **kw):
        return run("ovs-appctl", "-t", f"{self.dir}/{target}.ctl", "--timeout=20", *args,
                   env=self._env(), **kw)

    def start(self, target):
        d = self.dir
        if os.path.exists(f"/run/netns/{OVS_NETNS}"):
            run("ip", "netns", "del", OVS_NETNS, check=False)
        run("ip", "netns", "add", OVS_NETNS)
        self.netns = OVS_NETNS
        run("ip", "-n", OVS_NETNS, "link", "set", "lo", "up")
        run("ip", "link", "set", VETH_SW, "netns", OVS_NETNS)
        run("ip", "-n", OVS_NETNS, "link", "set", VETH_SW, "up")
        run("ovsdb-tool", "create", f"{d}/conf.db", OVS_SCHEMA)
        run("ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
            f"--pidfile={d}/ovsdb-server.pid", "--detach", f"--log-file={d}/ovsdb-server.log",
            f"--unixctl={d}/ovsdb-server.ctl", "-vconsole:off", env=self._env(), ns=OVS_NETNS)
        self._pid(f"{d}/ovsdb-server.pid", "ovsdb-server")
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   f"other_config:pmd-cpu-mask={hex(1 << self.args.switch_cpu)}")
        run("ovs-vswitchd", f"unix:{d}/db.sock", f"--pidfile={d}/ovs-vswitchd.pid", "--detach",
            f"--log-file={d}/ovs-vswitchd.log", f"--unixctl={d}/ovs-vswitchd.ctl",
            "-vconsole:off", env=self._env(), timeout=120, ns=OVS_NETNS)
        self.pid = self._pid(f"{d}/ovs-vswitchd.pid", "ovs-vswitchd")
        self.vsctl("add-br", self.bridge, "--", "set", "bridge", self.bridge,
                   "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
                   "--", "add-port", self.bridge, VETH_SW, "--", "set", "Interface", VETH_SW,
                   "ofport_request=1")
        self.vsctl("set-controller", self.bridge, target, "--", "set",
                   "Controller", self.bridge, "connection_mode=out-of-band")

    def describe(self):
        return self.vsctl("show", check=False).stdout

    def version(self):
        r = run("ovs-vswitchd", "--version", check=False)
        return (r.stdout.strip().splitlines() or ["?"])[0]

    def stop(self):
        if self.dir and self.pids:
            self.appctl("ovs-vswitchd", "exit", "--cleanup", check=False)
            self.appctl("ovsdb-server", "exit", check=False)
            time.sleep(0.5)
        super().stop()
        self.save_logs(["ovs-vswitchd.log", "ovsdb-server.log"])
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if getattr(self, "netns", None):      # takes the veth's switch end with it
            run("ip", "netns", "del", self.netns, check=False)


SWITCHES = {"pyvswitch": PyVSwitch, "ovs": Ovs}


# ------------------------------------------------------------------ measurements
def accept_controller(server, timeout=300.0):
    server.settimeout(timeout)
    sock, _ = server.accept()
    sock.settimeout(None)
    return Controller(sock)


def clear_flows(ctl):
    from pyvswitch.openflow.text import parse_flow
    t0 = time.monotonic()
    ctl.send_raw(ctl.encode(parse_flow("", "delete")))
    ctl.request(ctl.M.BarrierRequest())
    return time.monotonic() - t0


def flow_count(ctl):
    _, parts = ctl.request(ctl.M.AggregateStatsRequest())
    msg = parts[-1]
    if isinstance(msg, ctl.M.Error):
        raise RuntimeError(f"aggregate stats: {msg.name}")
    return msg.flow_count


def measure_flow_mods(ctl, blob, n):
    clear_flows(ctl)
    errors0 = len(ctl.errors)
    t0 = time.monotonic()
    ctl.send_raw(blob)
    t_sent = time.monotonic()
    _, parts = ctl.request(ctl.M.BarrierRequest(), timeout=1800)
    t1 = time.monotonic()
    count = flow_count(ctl)
    t_del = clear_flows(ctl)
    errs = ctl.errors[errors0:]
    return {"flows": n, "seconds": round(t1 - t0, 4), "send_seconds": round(t_sent - t0, 4),
            "flow_mods_per_s": round(n / (t1 - t0), 1), "flow_count_after": count,
            "errors": len(errs), "first_error": errs[0][1] if errs else None,
            "delete_all_seconds": round(t_del, 4), "ok": count == n and not errs}


def measure_packet_ins(ctl, rate, seconds, warmup=1.0, first_timeout=30.0):
    """Table miss -> controller; the generator runs until the first
    packet-in arrives (at most first_timeout s), then `warmup`, then the
    window of `seconds` in which packet-ins and sent frames are counted."""
    from pyvswitch.openflow.text import parse_flow
    clear_flows(ctl)
    ctl.send_raw(ctl.encode(parse_flow("priority=0,actions=CONTROLLER:65535", "add")))
    ctl.request(ctl.M.BarrierRequest())
    gen = Generator(rate, first_timeout + warmup + seconds + 5)
    try:
        t_start, c_start = time.monotonic(), ctl.pi_count
        while ctl.pi_count == c_start and time.monotonic() - t_start < first_timeout:
            time.sleep(0.01)
        first = time.monotonic() - t_start
        time.sleep(warmup)
        c0, t0 = ctl.pi_count, time.monotonic()
        time.sleep(seconds)
        c1, t1 = ctl.pi_count, time.monotonic()
        time.sleep(0.2)                       # a mark after t1
        offered = (gen.sent_at(t1) - gen.sent_at(t0)) / (t1 - t0)
    finally:
        gen.stop()
    time.sleep(0.5)
    got = (c1 - c0) / (t1 - t0)
    return {"rate_asked": rate, "window_s": round(t1 - t0, 3),
            "first_packet_in_s": round(first, 3) if c1 > c_start else None,
            "offered_pps": round(offered, 1), "packet_ins_per_s": round(got, 1),
            "delivered_pct": round(100.0 * got / offered, 1) if offered else None,
            "generator_sent": gen.marks[-1][1] if gen.marks else 0,
            "packet_ins_total": ctl.pi_count}


def veth_up(cleanup):
    for dev in (VETH_SW, VETH_GEN):
        if os.path.exists(f"/sys/class/net/{dev}"):
            run("ip", "link", "del", dev, check=False)
    cleanup.append(lambda: run("ip", "link", "del", VETH_GEN, check=False))
    run("ip", "link", "add", VETH_SW, "type", "veth", "peer", "name", VETH_GEN)
    for dev in (VETH_SW, VETH_GEN):
        run("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
        run("ip", "link", "set", dev, "up")


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def bench_switch(args, name, rawdir, blob):
    sw = SWITCHES[name](args, rawdir)
    res = {"switch": name, "flow_mods": [], "packet_ins": [], "errors": []}
    # the controller socket in the switch's run directory (Open vSwitch only
    # connects to unix: controllers there)
    sw.dir = tempfile.mkdtemp(prefix=f"pvof-{name}-")
    path = os.path.join(sw.dir, "controller.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    ctl = None
    try:
        log(f"{name}: starting (controller unix:{path})")
        sw.start(f"unix:{path}")
        res["version"] = sw.version()
        ctl = accept_controller(server)
        time.sleep(0.5)
        with open(os.path.join(rawdir, f"{name}-config.txt"), "w") as f:
            f.write(sw.describe())
        for rep in range(1, args.reps + 1):
            r = measure_flow_mods(ctl, blob, args.flows)
            r["rep"] = rep
            res["flow_mods"].append(r)
            log(f"  {name} flow-mods rep {rep}: {r['flows']} in {r['seconds']:.3f} s = "
                f"{r['flow_mods_per_s']:.0f}/s (count {r['flow_count_after']}, "
                f"errors {r['errors']}, delete-all {r['delete_all_seconds']:.3f} s)")
        for rate in args.pin_rate_list:
            for rep in range(1, args.reps + 1):
                r = measure_packet_ins(ctl, rate, args.pin_seconds)
                r["rep"] = rep
                res["packet_ins"].append(r)
                log(f"  {name} packet-in rate {rate or 'max'} rep {rep}: offered "
                    f"{r['offered_pps']:.0f}/s, packet-ins {r['packet_ins_per_s']:.0f}/s")
        if ctl.closed:
            res["errors"].append(f"controller connection: {ctl.closed}")
    except Exception as e:  # noqa: BLE001 - report and go on with the other switch
        msg = f"{type(e).__name__}: {e}".replace("\n", " ")[:500]
        log(f"{name} FAILED: {msg}")
        res["errors"].append(msg)
    finally:
        if ctl is not None:
            ctl.close()
        server.close()
        sw.stop()
    return res


def summarize(results):
    out = {}
    for res in results:
        fm = [r["flow_mods_per_s"] for r in res["flow_mods"] if r["ok"]]
        s = {"version": res.get("version"), "errors": res["errors"]}
        if fm:
            s["flow_mods_per_s"] = {"median": statistics.median(fm), "min": min(fm),
                                    "max": max(fm), "n": len(fm)}
            s["delete_all_s_median"] = statistics.median(
                r["delete_all_seconds"] for r in res["flow_mods"] if r["ok"])
        pis = {}
        for r in res["packet_ins"]:
            pis.setdefault(r["rate_asked"], []).append(r)
        s["packet_ins"] = [{
            "rate_asked": rate,
            "offered_pps_median": statistics.median(r["offered_pps"] for r in rs),
            "packet_ins_per_s_median": statistics.median(r["packet_ins_per_s"] for r in rs),
            "packet_ins_per_s_min": min(r["packet_ins_per_s"] for r in rs),
            "packet_ins_per_s_max": max(r["packet_ins_per_s"] for r in rs),
            "n": len(rs)} for rate, rs in pis.items()]
        out[res["switch"]] = s
    return out


def render_markdown(summary, meta):
    lines = ["# OpenFlow benchmark: flow-mods and packet-ins (pyvswitch vs Open vSwitch)", "",
             f"Command: `{meta['command']}`  ", f"Date: {meta['date']}  ",
             f"Machine load before: `{meta['uptime_before']}`  ",
             f"Machine load after: `{meta['uptime_after']}`  ",
             f"Total time: {meta['elapsed_s']:.0f} s", ""]
    names = list(summary)
    lines += ["## Flow-mods over the wire (OpenFlow 1.3, pipelined, barrier at the end)", "",
              f"{meta['flows']} OFPFC_ADD flow mods, one connection (unix socket), median of "
              f"{meta['reps']} rep(s) [min-max].", "",
              "| switch | flow-mods/s | delete-all + barrier (s) |", "|---|---|---|"]
    for n in names:
        s = summary[n]
        f = s.get("flow_mods_per_s")
        cell = f"**{f['median']:,.0f}** [{f['min']:,.0f}-{f['max']:,.0f}]" if f else "failed"
        dl = f"{s['delete_all_s_median']:.3f}" if f else "-"
        lines.append(f"| {n} | {cell} | {dl} |")
    if all(summary[n].get("flow_mods_per_s") for n in names) and len(names) == 2:
        a, b = (summary[n]["flow_mods_per_s"]["median"] for n in names)
        lines += ["", f"{names[0]} / {names[1]}: {a / b:.3f}x"]
    lines += ["", "## Packet-ins delivered to the controller (table miss -> controller)", "",
              f"64-byte frames into a veth port, {meta['pin_seconds']:g} s window after 1 s "
              f"warm-up, median of {meta['reps']} rep(s) [min-max]; rate asked 0 = "
              "generator flat out.", "",
              "| switch | rate asked (pps) | offered (pps) | packet-ins/s |", "|---|---|---|---|"]
    for n in names:
        for p in summary[n]["packet_ins"]:
            lines.append(f"| {n} | {p['rate_asked'] or 'max'} | {p['offered_pps_median']:,.0f} | "
                         f"**{p['packet_ins_per_s_median']:,.0f}** "
                         f"[{p['packet_ins_per_s_min']:,.0f}-{p['packet_ins_per_s_max']:,.0f}] |")
    lines += ["", "## Set-up", ""]
    for k, v in meta["setup"].items():
        lines.append(f"- {k}: {v}")
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in meta["machine"].items()]
    errs = [(n, e) for n in names for e in summary[n]["errors"]]
    if errs:
        lines += ["", "## Errors", ""] + [f"- {n}: {e}" for n, e in errs]
    return "\n".join(lines)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m pyvswitch.tools.bench.openflow",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--switch", default="pyvswitch,ovs", help="pyvswitch,ovs (default both)")
    ap.add_argument("--flows", type=int, help="flow mods per rep (default 100000)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3)")
    ap.add_argument("--pin-rates", help="generator rates in pps, 0 = flat out "
                    "(default 20000,50000,0)")
    ap.add_argument("--pin-seconds", type=float, help="packet-in window (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="20,000 flows, 1 rep, packet-ins at 20000 pps and flat out for 3 s: "
                    "< 2 minutes")
    ap.add_argument("--gen-cpu", type=int, default=0)
    ap.add_argument("--switch-cpu", type=int, default=1)
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    quick = a.quick
    a.flows = a.flows or (20000 if quick else 100000)
    a.reps = a.reps or (1 if quick else 3)
    a.pin_rates = a.pin_rates or ("20000,0" if quick else "20000,50000,0")
    a.pin_seconds = a.pin_seconds or (3.0 if quick else 5.0)
    a.pin_rate_list = [int(float(x)) for x in a.pin_rates.split(",") if x.strip()]
    a.switches = [s.strip() for s in a.switch.split(",") if s.strip()]
    for s in a.switches:
        if s not in SWITCHES:
            ap.error(f"unknown switch {s} (known: {', '.join(SWITCHES)})")
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--generate"]:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        generate(argv[1], float(argv[2]), float(argv[3]))
        return 0
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (veth, daemons)")
    for prog in ("ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl"):
        if "ovs" in args.switches and not shutil.which(prog):
            raise SystemExit(f"{prog} not found: apt-get install openvswitch-switch")
    os.sched_setaffinity(0, {args.gen_cpu})       # client and generator on core 0
    lock = open(LOCK_FILE, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another openflow bench run holds {LOCK_FILE}") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rawdir = os.path.join(args.out, "raw", f"openflow-{stamp}")
    os.makedirs(rawdir, exist_ok=True)
    command = "python -m pyvswitch.tools.bench.openflow " + shlex.join(argv)
    meta = {"command": command.strip(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "uptime_before": uptime(), "machine": system.machine_info(),
            "flows": args.flows, "reps": args.reps, "pin_seconds": args.pin_seconds,
            "raw_dir": os.path.relpath(rawdir, REPO)}
    meta["setup"] = {
        "client": "pyvswitch.openflow codec, one process; the switch connects to it as its "
                  "controller (unix socket, fail_mode=secure, protocols=OpenFlow13)",
        "flow mods": "priority=100,ip,nw_dst=10.0.0.1..N,actions=output:1; encoded before "
                     "the clock starts, written back to back, then one barrier",
        "packet-in": "only flow priority=0,actions=CONTROLLER:65535; generator: raw AF_PACKET "
                     "socket in a separate Python process, 64-byte UDP frames into a veth "
                     "pair, switch end = port 1 (pyvswitch type=afpacket, OVS "
                     "datapath_type=netdev system port, OVS in a netns of its own)",
        "CPU": f"client and generator on core {args.gen_cpu}; pmd-cpu-mask core "
               f"{args.switch_cpu} for both switches; other switch threads unpinned "
               f"({os.cpu_count()} CPUs)",
    }
    log(f"encoding {args.flows} flow mods")
    from pyvswitch.openflow import wire
    mods = flow_mods(args.flows)
    blob = b"".join(wire.encode(fm, OFP13, BLOB_XID + i) for i, fm in enumerate(mods))
    del mods
    t_start = time.monotonic()
    results, cleanup = [], []
    old = {s: signal.signal(s, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
           for s in (signal.SIGTERM, signal.SIGHUP)}
    interrupted = None
    try:
        for name in args.switches:
            veth_up(cleanup)                  # afresh: OVS's netns took the last one
            results.append(bench_switch(args, name, rawdir, blob))
    except KeyboardInterrupt:
        interrupted = "interrupted"
        log("interrupted; cleaning up")
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {e}")
        for s, h in old.items():
            signal.signal(s, h)
    meta["uptime_after"] = uptime()
    meta["elapsed_s"] = time.monotonic() - t_start
    if interrupted:
        meta["interrupted"] = interrupted
    summary = summarize(results)
    doc = {"meta": meta, "summary": summary, "runs": results}
    md = render_markdown(summary, meta)
    for path in (os.path.join(rawdir, "summary.json"), os.path.join(args.out, "openflow-latest.json")):
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
    for path in (os.path.join(rawdir, "summary.md"), os.path.join(args.out, "openflow-latest.md")):
        with open(path, "w") as f:
            f.write(md + "\n")
    print(md)
    return 130 if interrupted else (1 if any(r["errors"] for r in results) else 0)


if __name__ == "__main__":
    sys.exit(main())
