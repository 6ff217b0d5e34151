"""Fixtures for the switch's system tests: a daemon, namespaces, raw sockets.

`Net` is one pvs-vswitchd instance with its own rundir and database (set in
`env` as PVS_RUNDIR for every CLI call) plus the hosts attached to it: each
host is a namespace with a veth pair whose root end is an afpacket port of
the bridge. Names carry a short prefix that is unique per test module and
per pytest process (Linux names <= 15 characters), so concurrent runs never
share a namespace, a link or a bridge (a bridge's internal port is a device
in the root namespace).

Everything is owned by a `Lab` (pyvswitch/tools/lab.py): `Lab.close()` in the
fixture's teardown kills the daemons by PID and deletes links, namespaces and
run directories even when a test fails.

`Wire` is a raw AF_PACKET socket inside a namespace, to inject frames and to
capture them with their 802.1Q tags (the kernel moves a received tag into
PACKET_AUXDATA; Wire puts it back into the frame). Test frames use the IEEE
local experimental ethertype 0x88B5 (the kernel ignores them) and carry a
4-byte tag id and sequence number, so captures only count what the test sent.

The `net_factory` fixture builds module- or test-scoped topologies:
    net = net_factory("sw")            # starts a daemon, creates bridge net.br
    a = net.host("a", ip="10.9.0.1/24", tag=10)
    net.wait_ready(a, b)               # link_state up and a first ping through
"""

import contextlib
import ctypes
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from pyvswitch.tools.lab import Lab, sh, tool

TEST_ET = 0x88B5
ETH_P_ALL = 3
SOL_PACKET, PACKET_AUXDATA = 263, 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def unique_prefix(tag):
    """A short name prefix: the tag plus 3 hex digits of the pid."""
    return f"{tag}{os.getpid() % 4096:03x}"


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def mac_text(b):
    return ":".join(f"{x:02x}" for x in b)


def frame(dst, src, tag_id, seq, size=60, vlan=None):
    """A test frame: dst/src MAC text, optional 802.1Q tag, 0x88B5 payload."""
    hdr = mac_bytes(dst) + mac_bytes(src)
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, vlan)
    hdr += struct.pack("!HII", TEST_ET, tag_id, seq)
    return hdr + bytes((seq + k) & 0xFF for k in range(max(0, size - len(hdr))))


def parse_frame(data):
    """(dst, src, vlan or None, tag_id, seq) of a test frame, else None."""
    if len(data) < 14:
        return None
    vlan, p = None, 12
    et = struct.unpack_from("!H", data, p)[0]
    if et == 0x8100 and len(data) >= 18:
        vlan = struct.unpack_from("!H", data, 14)[0] & 0xFFF
        p = 16
        et = struct.unpack_from("!H", data, p)[0]
    if et != TEST_ET or len(data) < p + 10:
        return None
    tag_id, seq = struct.unpack_from("!II", data, p + 2)
    return mac_text(data[0:6]), mac_text(data[6:12]), vlan, tag_id, seq


@contextlib.contextmanager
def in_netns(ns):
    """Run the block with this thread inside network namespace `ns`."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            assert _libc.setns(here, CLONE_NEWNET) == 0
    finally:
        os.close(here)
        os.close(there)


class Wire:
    """A raw socket on `ifname` in namespace `ns`: send frames, capture the
    incoming ones (tags re-inserted from PACKET_AUXDATA, outgoing skipped)."""

    def __init__(self, ns, ifname="eth0"):
        self.ns, self.ifname = ns, ifname
        with in_netns(ns):
            self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.bind((ifname, ETH_P_ALL))

    def send(self, data):
        self.s.send(data)

    def send_test(self, dst, src, tag_id, seq, size=60, vlan=None):
        """Send one test frame (see frame())."""
        self.s.send(frame(dst, src, tag_id, seq, size=size, vlan=vlan))

    def _read(self, timeout):
        if not select.select([self.s], [], [], max(0.0, timeout))[0]:
            return None
        data, anc, _, addr = self.s.recvmsg(65536, 256)
        if addr[2] == PACKET_OUTGOING:
            return b""
        for level, kind, val in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                st, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", val[:20])
                if st & TP_STATUS_VLAN_VALID:
                    tpid = tpid if st & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        return data

    def clear(self):
        while self._read(0) is not None:
            pass

    def recv(self, tag_id, count=1000000, timeout=1.0, quiet=None):
        """Parsed test frames with this tag id, until `count` arrived or
        `timeout` passed (or `quiet` seconds passed with none arriving)."""
        out, deadline = [], time.monotonic() + timeout
        last = time.monotonic()
        while len(out) < count:
            now = time.monotonic()
            left = deadline - now
            if quiet is not None:
                left = min(left, last + quiet - now)
            if left <= 0:
                break
            data = self._read(left)
            if data is None:
                break
            f = parse_frame(data) if data else None
            if f is not None and f[3] == tag_id:
                out.append(f)
                last = time.monotonic()
        return out

    def close(self):
        self.s.close()


class Host:
    def __init__(self, net, name, ns, port, mac, ip):
        self.net, self.name, self.ns, self.port = net, name, ns, port
        self.mac, self.ip = mac, ip
        self.addr = ip.split("/")[0] if ip else None

    def sh(self, *args, check=True, timeout=60):
        return sh(*args, ns=self.ns, check=check, timeout=timeout)

    def ofport(self):
        return int(self.net.vsctl("get", "Interface", self.port, "ofport").strip())

    def wire(self, ifname="eth0"):
        w = Wire(self.ns, ifname)
        self.net.lab_wires.append(w)
        return w

    def ping(self, dst, count=3, interval=0.2, wait=1):
        r = self.sh("ping", "-c", count, "-i", interval, "-W", wait, "-q", dst, check=False)
        return r.returncode == 0

    def rx_packets(self, ifname="eth0"):
        return int(self.sh("cat", f"/sys/class/net/{ifname}/statistics/rx_packets").stdout)


class CliError(AssertionError):
    pass


class Net:
    """One daemon (own rundir, own database), its bridge and its hosts."""

    def __init__(self, lab, sub="", start=True, bridge=True):
        self.lab, self.sub, self.prefix = lab, sub, lab.prefix + sub
        self.rundir = lab.tempdir("run")
        self.env = {k: v for k, v in os.environ.items() if k != "PVS_DB"}
        self.env["PVS_RUNDIR"] = self.rundir
        self.br = f"{self.prefix}br"
        self.hosts = {}
        self.lab_wires = []
        self.pid = None
        if start:
            self.start()
            if bridge:
                self.vsctl("add-br", self.br, "--", "set", "bridge", self.br, "datapath_type=netdev")

    # --- the daemon ------------------------------------------------------
    def start(self):
        self.pid = self.lab.start_daemon(self.rundir, env=self.env)
        return self.pid

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the daemon and wait until it is gone; True if it exited."""
        pid, self.pid = self.pid, None
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.02)
        return False

    def alive(self):
        return self.pid is not None and self.run("pvs-appctl", "version", check=False).returncode == 0

    @property
    def log(self):
        try:
            with open(os.path.join(self.rundir, "pvs-vswitchd.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # --- the CLIs ----------------------------------------------------------
    def run(self, prog, *args, check=True, timeout=60, stdin=None):
        r = subprocess.run([tool(prog)] + [str(a) for a in args], env=self.env, capture_output=True,
                           text=True, timeout=timeout, input=stdin)
        if check and r.returncode != 0:
            raise CliError(f"{prog} {' '.join(map(str, args))}: exit {r.returncode}\n"
                           f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def vsctl(self, *args, **kw):
        return self.run("pvs-vsctl", *args, **kw).stdout

    def ofctl(self, *args, **kw):
        return self.run("pvs-ofctl", *args, **kw).stdout

    def appctl(self, *args, **kw):
        return self.run("pvs-appctl", *args, **kw).stdout

    # --- topology ----------------------------------------------------------
    def host(self, name, ip=None, mac=None, tag=None, trunks=None, settings=(), add=True):
        """A namespace `<prefix>-<name>` whose eth0 is a veth peer; the root end
        `<prefix>-<name>` is added to the bridge as an afpacket port (unless
        add=False: then only the namespace and the veth pair are made)."""
        ns = self.lab.netns(self.sub + name)
        port = f"{self.prefix}-{name}"
        mac = mac or f"02:00:00:00:{sum(map(ord, self.sub)) & 0xff:02x}:{len(self.hosts) + 1:02x}"
        self.lab.veth_to_ns(port, ns, ip=ip, mac=mac)
        extra = list(settings)
        if tag is not None:
            extra.append(f"tag={tag}")
        if trunks is not None:
            extra.append(f"trunks={trunks}")
        if add:
            self.vsctl("add-port", self.br, port, *extra, "--", "set", "Interface", port, "type=afpacket")
        h = Host(self, name, ns, port, mac, ip)
        self.hosts[name] = h
        return h

    def wait_for(self, cond, timeout=10.0, interval=0.05, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(interval)

    def wait_link(self, *hosts, timeout=10.0):
        for h in hosts:
            self.wait_for(lambda: self.vsctl("get", "Interface", h.port, "link_state").strip() == "up",
                          timeout, 0.1, f"link_state up on {h.port}")

    def wait_ready(self, *hosts, timeout=15.0):
        """Every host's port is up and the first host pings each other one
        (the first packets after a port is added may be lost)."""
        self.wait_link(*hosts)
        first = hosts[0]
        for h in hosts[1:]:
            self.wait_for(lambda: first.ping(h.addr, count=1, wait=1), timeout, 0.1,
                          f"ping {first.name} -> {h.name}")

    # --- what the switch says -----------------------------------------------
    def ofports(self):
        """{interface name: ofport} as the daemon wrote them to the database."""
        out = self.vsctl("--bare", "--columns=name,ofport", "list", "Interface")
        names = {}
        for block in out.strip().split("\n\n"):
            f = block.split("\n")
            if len(f) == 2 and f[1].strip().lstrip("-").isdigit():
                names[f[0].strip()] = int(f[1])
        return names

    def port_stats(self):
        """{port name: {"rx_pkts": n, "tx_pkts": n, "tx_drop": n, ...}} from
        dump-ports (whether it labels ports by name or by number)."""
        out, stats, name = self.ofctl("dump-ports", self.br), {}, None
        by_number = {str(n): name for name, n in self.ofports().items()}
        by_number["LOCAL"] = self.br
        for line in out.splitlines():
            m = re.match(r'\s*port\s+"?([^":]+?)"?:\s*rx (.*)', line)
            if m:
                name = m.group(1).strip()
                name = by_number.get(name, name)
                stats[name] = {f"rx_{k}": int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
                continue
            m = re.match(r"\s*tx (.*)", line)
            if m and name:
                stats[name].update({f"tx_{k}": int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))})
        return stats

    def fdb(self):
        """[(ofport, vlan, mac, age)] from fdb/show."""
        rows = []
        for line in self.appctl("fdb/show", self.br).splitlines()[1:]:
            f = line.split()
            if len(f) == 4:
                rows.append((int(f[0]), int(f[1]), f[2], int(f[3])))
        return rows

    def fdb_entry(self, mac, vlan=None):
        hits = [r for r in self.fdb() if r[2] == mac and (vlan is None or r[1] == vlan)]
        return hits[0] if hits else None

    def cpu_ticks(self, pid=None):
        with open(f"/proc/{pid or self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])     # utime + stime

    def thread_ticks(self):
        """{(tid, thread name): utime + stime} of the daemon's threads."""
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            out[(int(tid), name)] = int(fields[11]) + int(fields[12])
        return out


class Sender(threading.Thread):
    """Sends numbered test frames every `interval` seconds from a Wire until
    stopped; `seq` is the number of the last frame sent."""

    def __init__(self, wire, dst, src, tag_id, interval=0.002):
        super().__init__(daemon=True)
        self.wire, self.dst, self.src, self.tag_id = wire, dst, src, tag_id
        self.interval = interval
        self.seq = 0
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            self.seq += 1
            self.wire.send(frame(self.dst, self.src, self.tag_id, self.seq))
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(5)


def _close_wires(nets):
    for n in nets:
        for w in n.lab_wires:
            w.close()
        n.lab_wires.clear()


@contextlib.contextmanager
def _lab_context(prefix):
    lab = Lab(prefix=prefix)
    nets = []
    try:
        def make(start=True, bridge=True, sub=""):
            n = Net(lab, sub, start=start, bridge=bridge)
            nets.append(n)
            return n
        yield lab, make
    finally:
        _close_wires(nets)
        lab.close()


@pytest.fixture(scope="module")
def module_net_factory(request):
    """make() -> Net, shared by the tests of one module; torn down at its end."""
    tag = getattr(request.module, "PREFIX", "sx")
    with _lab_context(unique_prefix(tag)) as (lab, make):
        yield make


@pytest.fixture
def net_factory(request):
    """make() -> Net for one test; the prefix is the module's PREFIX + 'f'."""
    tag = getattr(request.module, "PREFIX", "sx") + "f"
    with _lab_context(unique_prefix(tag)) as (lab, make):
        yield make


@pytest.fixture
def sender():
    """Sender(...) factory; every sender is stopped at the end of the test."""
    made = []

    def make(*args, **kw):
        s = Sender(*args, **kw)
        made.append(s)
        s.start()
        return s
    yield make
    for s in made:
        s.stop()
