"""A small lab of network namespaces and veth pairs, for the demo and tests.

`Lab` records everything it creates (namespaces, root-side links, daemons by
PID) and removes it all in `close()`, which tests call from finally blocks and
fixtures, so nothing leaks even when a test fails. Names get the lab's prefix;
Linux limits interface names to 15 characters.

Traffic in a lab only ever goes to interfaces inside namespaces the lab made.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

VENV_BIN = os.path.dirname(sys.executable)


def sh(*args, check=True, ns=None, capture=True, timeout=60):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def tool(name):
    """Path of a pyvswitch console script next to the running interpreter."""
    path = os.path.join(VENV_BIN, name)
    return path if os.path.exists(path) else shutil.which(name) or name


class Lab:
    def __init__(self, prefix="pvl"):
        self.prefix = prefix
        self.namespaces = []
        self.links = []
        self.pids = []
        self.dirs = []

    # --- topology -------------------------------------------------------
    def netns(self, name):
        full = f"{self.prefix}-{name}"
        sh("ip", "netns", "del", full, check=False)
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "link", "set", "lo", "up", ns=full)
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=full, check=False)
        return full

    def veth_to_ns(self, root_name, ns, ns_name="eth0", ip=None, mac=None, offloads=False):
        """A veth pair: `root_name` stays in the root namespace (for the switch),
        `ns_name` goes into `ns` with an optional address. Offloads are turned
        off on the namespace end (an AF_PACKET switch sees what the peer sends)."""
        sh("ip", "link", "del", root_name, check=False)
        sh("ip", "link", "add", root_name, "type", "veth", "peer", "name", ns_name, "netns", ns)
        self.links.append(root_name)
        sh("sysctl", "-qw", f"net.ipv6.conf.{root_name}.disable_ipv6=1", check=False)
        sh("ip", "link", "set", root_name, "up")
        if mac:
            sh("ip", "link", "set", ns_name, "address", mac, ns=ns)
        if not offloads:
            sh("ethtool", "-K", ns_name, "tx", "off", "tso", "off", "gso", "off", ns=ns, check=False)
        sh("ip", "link", "set", ns_name, "up", ns=ns)
        if ip:
            sh("ip", "addr", "add", ip, "dev", ns_name, ns=ns)
        return root_name

    def tempdir(self, tag="run"):
        d = tempfile.mkdtemp(prefix=f"{self.prefix}-{tag}-")
        self.dirs.append(d)
        return d

    # --- processes -------------------------------------------------------
    def track(self, pid):
        self.pids.append(pid)
        return pid

    def start_daemon(self, rundir, extra=(), env=None, ns=None, timeout=120):
        """Start pvs-vswitchd detached in `rundir` (inside network namespace
        `ns` if given); returns its pid. It uses the database of its rundir
        unless `env` names another (PVS_DB)."""
        e = dict(daemon_env(rundir), **(env or {}))
        r = subprocess.run((["ip", "netns", "exec", ns] if ns else []) +
                           [tool("pvs-vswitchd"), "--rundir", rundir, "--detach", "--log-file", *extra],
                           env=e, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"pvs-vswitchd failed to start: {r.stderr.strip()}")
        with open(os.path.join(rundir, "pvs-vswitchd.pid")) as f:
            return self.track(int(f.read()))

    def stop_pid(self, pid, timeout=10.0):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # --- cleanup ---------------------------------------------------------
    def close(self):
        for pid in reversed(self.pids):
            self.stop_pid(pid)
        self.pids.clear()
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        self.links.clear()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def daemon_env(rundir):
    """The environment that drives the daemon of `rundir` (a PVS_DB of the
    caller's would point the CLIs at another database)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PVS_DB", "PVS_RUNDIR")}
    return dict(env, PVS_RUNDIR=rundir)


def ping(ns, dst, count=3, interval=0.2, timeout=1):
    """True when at least one reply came back."""
    r = sh("ping", "-c", count, "-i", interval, "-W", timeout, dst, ns=ns, check=False)
    return r.returncode == 0, r.stdout
