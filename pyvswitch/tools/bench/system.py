"""Commands, processes by PID, the cleanup stack, the veth topology, machine info.

Everything the harness creates is registered on a `Cleanup` stack *before* it
is created, and the stack is unwound in a finally block (also on Ctrl-C and
SIGTERM, which the command line turns into an exception). Processes are only
ever stopped by their PID, after checking that the PID still runs the program
we started (so a recycled PID is never signalled). A state file records the
PIDs of running daemons, so that a run killed with SIGKILL is cleaned up by the
next run.
"""

import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

VENV_BIN = os.path.dirname(sys.executable)
STATE_DIR = "/run/pvb-bench"
STATE_FILE = os.path.join(STATE_DIR, "state.json")
LOCK_FILE = os.path.join(STATE_DIR, "lock")

# ------------------------------------------------------------------ names
PREFIX = "pvb"
NS1, NS2 = "pvb-ns1", "pvb-ns2"
NS_OVS = "pvb-ovs"                 # OVS-DPDK runs here (its netdev datapath owns a tap)
V1, V2 = "pvbv1", "pvbv2"          # namespace ends
V1R, V2R = "pvbv1r", "pvbv2r"      # root ends, the switch's ports
BRIDGE = "pvbbr0"                  # bridge name for all three switches
MAC1, MAC2 = "02:00:00:00:01:01", "02:00:00:00:02:02"
MAC_NOBODY = "02:00:00:00:00:99"   # generator's dst MAC: owned by nobody
IP1, IP2 = "10.99.7.1", "10.99.7.2"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(*args, check=True, ns=None, timeout=60, env=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=None if env is None else dict(os.environ, **env))
    if check and r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).replace("\n", " | ")[:400]
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({r.returncode}): {msg}")
    return r


def tool(name):
    """A console script next to the running interpreter (the venv), else PATH."""
    p = os.path.join(VENV_BIN, name)
    return p if os.path.exists(p) else (shutil.which(name) or name)


# ------------------------------------------------------------------ processes
def pid_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


def stop_pid(pid, expect, sig=signal.SIGTERM, timeout=10.0, popen=None):
    """Stop one process by PID if its command line still contains `expect`:
    `sig`, then SIGKILL after `timeout`. Reaps it when it is our child."""
    cmd = pid_cmdline(pid)
    if cmd is None or expect not in cmd:
        if popen is not None:
            popen.poll()
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            return
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    else:
        try:
            log(f"pid {pid} ({expect}) still alive after {timeout:.0f}s: SIGKILL")
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if popen is not None:
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------ state
class State:
    """PIDs of daemons we started, on disk, for cleanup after a SIGKILLed run."""

    def __init__(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        self.pids = {}

    def add(self, pid, expect):
        self.pids[str(pid)] = expect
        self._write()

    def remove(self, pid):
        self.pids.pop(str(pid), None)
        self._write()

    def _write(self):
        tmp = STATE_FILE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.pids, f)
        os.replace(tmp, STATE_FILE)

    @staticmethod
    def leftovers():
        try:
            with open(STATE_FILE) as f:
                return {int(k): v for k, v in json.load(f).items()}
        except (OSError, ValueError):
            return {}


class Lock:
    """One harness at a time (the names are fixed)."""

    def __enter__(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        self.f = open(LOCK_FILE, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit("another pyvswitch bench run holds " + LOCK_FILE)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


class Cleanup:
    """A stack of undo actions; `unwind()` runs them newest first, each one
    guarded so that a failing step does not skip the others."""

    def __init__(self):
        self.stack = []

    def push(self, desc, fn, *args, **kw):
        self.stack.append((desc, fn, args, kw))
        return len(self.stack)

    def unwind(self, to=0):
        while len(self.stack) > to:
            desc, fn, args, kw = self.stack.pop()
            try:
                fn(*args, **kw)
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                log(f"cleanup step '{desc}' failed: {e}")


class Interrupted(Exception):
    """SIGTERM/SIGHUP during a run (Ctrl-C arrives as KeyboardInterrupt)."""


def _on_term(signum, frame):
    raise Interrupted(f"signal {signum}")


def run_blocks(names, reps, block, emit, prepare=None):
    """The A/B/A/B schedule of a benchmark run, with its cleanup discipline.

    For rep 1..reps and each name: block(name, rep, cleanup, stage) runs one
    block (set up a switch, measure, ...) pushing its undo steps on `cleanup`;
    whatever it pushed is unwound after it, also on errors. `stage` is a
    one-element list the block updates ("switch set-up", "measurement") so a
    failure is reported with where it happened: logged and emitted as
    {"type": "error", "switch", "rep", "stage", "message"}; the run goes on
    with the next block. SIGTERM, SIGHUP and Ctrl-C stop the run after the
    cleanup. prepare() runs after earlier runs' leftovers are removed.
    Returns the reason of an interruption, or None."""
    old = {s: signal.signal(s, _on_term) for s in (signal.SIGTERM, signal.SIGHUP)}
    # started in the background by a non-interactive shell, SIGINT arrives
    # ignored and Python keeps it ignored: make Ctrl-C / kill -INT always work
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    cleanup = Cleanup()
    interrupted = None
    try:
        remove_leftovers()
        if prepare is not None:
            prepare()
        for rep in range(1, reps + 1):
            for name in names:
                mark = len(cleanup.stack)
                log(f"rep {rep}/{reps}: {name}")
                stage = ["switch set-up"]
                try:
                    block(name, rep, cleanup, stage)
                except (KeyboardInterrupt, Interrupted):
                    raise
                except Exception as e:  # noqa: BLE001 - a broken switch must not stop the others
                    msg = f"{stage[0]}: {type(e).__name__}: {e}".replace("\n", " ")[:500]
                    log(f"  {name} rep {rep} FAILED: {msg}")
                    emit({"type": "error", "switch": name, "rep": rep, "stage": stage[0], "message": msg})
                finally:
                    # also on Ctrl-C: a second Ctrl-C must not cut the cleanup short
                    prev = signal.signal(signal.SIGINT, signal.SIG_IGN)
                    try:
                        cleanup.unwind(mark)
                    finally:
                        signal.signal(signal.SIGINT, prev)
    except (KeyboardInterrupt, Interrupted) as e:
        interrupted = str(e) or "Ctrl-C"
        log(f"interrupted ({interrupted}); cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cleanup.unwind()
        remove_leftovers()
        for s, h in old.items():
            signal.signal(s, h)
    return interrupted


def remove_leftovers():
    """Remove what a previous (killed) run may have left: our daemons by PID
    (checked against their command line), our links and namespaces by name."""
    for pid, expect in State.leftovers().items():
        if pid_alive(pid) and expect in (pid_cmdline(pid) or ""):
            log(f"stopping leftover {expect} pid {pid} from an earlier run")
            stop_pid(pid, expect)
    try:
        os.unlink(STATE_FILE)
    except OSError:
        pass
    for link in (BRIDGE, V1R, V2R):
        if os.path.exists(f"/sys/class/net/{link}"):
            log(f"removing leftover link {link}")
            run("ip", "link", "del", link, check=False)
    for ns in (NS1, NS2, NS_OVS):
        if os.path.exists(f"/run/netns/{ns}"):
            log(f"removing leftover namespace {ns}")
            run("ip", "netns", "del", ns, check=False)


# ------------------------------------------------------------------ topology
def topology_up(cleanup):
    """pvb-ns1/pvbv1 <-> pvbv1r [switch] pvbv2r <-> pvbv2/pvb-ns2, offloads off
    on the namespace ends, static neighbours, no IPv6 chatter."""
    for ns in (NS1, NS2):
        cleanup.push(f"netns {ns}", run, "ip", "netns", "del", ns, check=False)
        run("ip", "netns", "add", ns)
        run("ip", "link", "set", "lo", "up", ns=ns)
        run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1", ns=ns, check=False)
    for root, peer, ns, mac, ip in ((V1R, V1, NS1, MAC1, IP1), (V2R, V2, NS2, MAC2, IP2)):
        cleanup.push(f"link {root}", run, "ip", "link", "del", root, check=False)
        run("ip", "link", "add", root, "type", "veth", "peer", "name", peer, "netns", ns)
        run("sysctl", "-qw", f"net.ipv6.conf.{root}.disable_ipv6=1", check=False)
        run("ip", "link", "set", root, "up")
        run("ip", "link", "set", peer, "address", mac, ns=ns)
        run("ethtool", "-K", peer, "tx", "off", "tso", "off", "gso", "off", ns=ns)
        run("ip", "link", "set", peer, "up", ns=ns)
        run("ip", "addr", "add", f"{ip}/24", "dev", peer, ns=ns)
    run("ip", "neigh", "replace", IP2, "lladdr", MAC2, "dev", V1, "nud", "permanent", ns=NS1)
    run("ip", "neigh", "replace", IP1, "lladdr", MAC1, "dev", V2, "nud", "permanent", ns=NS2)


def link_stats(ns, dev):
    """stats64 of a link in a namespace: {"rx": {...}, "tx": {...}}."""
    r = run("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev)
    return json.loads(r.stdout)[0]["stats64"]


def softnet_drops():
    """Backlog drops summed over CPUs (2nd column of /proc/net/softnet_stat)."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(line.split()[1], 16) for line in f if line.strip())


def thread_affinity(pid):
    """[(tid, comm, allowed CPUs, last CPU)] of every thread of `pid`."""
    out = []
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
            comm = st[st.index("(") + 1: st.rindex(")")]
            last = int(st[st.rindex(")") + 2:].split()[36])
            allowed = ",".join(str(c) for c in sorted(os.sched_getaffinity(tid)))
        except (OSError, ValueError, IndexError):
            continue
        out.append((tid, comm, allowed, last))
    return out


# ------------------------------------------------------------------ machine
def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    hp_total = hp_free = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("HugePages_Total"):
                    hp_total = int(line.split()[1])
                elif line.startswith("HugePages_Free"):
                    hp_free = int(line.split()[1])
    except OSError:
        pass
    info = {
        "nproc": os.cpu_count(),
        "CPU model": model,
        "kernel": platform.release(),
        "hugepages (2 MB) total/free": f"{hp_total}/{hp_free}",
    }
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            info["bridge-nf-call-iptables"] = f.read().strip()
    except OSError:
        info["bridge-nf-call-iptables"] = "n/a"
    for name, cmd in (("OVS", ["ovs-vswitchd", "--version"]), ("dpdk-testpmd", ["dpkg-query", "-W", "-f=${Version}", "dpdk-dev"])):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            info[name] = (r.stdout.strip().splitlines() or ["?"])[0]
        except (OSError, subprocess.TimeoutExpired):
            info[name] = "not installed"
    info["python"] = platform.python_version()
    return info


def free_hugepage_mb():
    try:
        with open("/proc/meminfo") as f:
            vals = {l.split(":")[0]: l.split()[1] for l in f}
        return int(vals.get("HugePages_Free", 0)) * int(vals.get("Hugepagesize", 0)) // 1024
    except (OSError, ValueError):
        return 0
