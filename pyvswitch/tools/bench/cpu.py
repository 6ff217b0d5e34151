"""CPU accounting from /proc: foreign load, the switch's own CPU, per-core split.

Same method as the anchors' cpuwatch.py. Foreign CPU = all user+nice+system
time of all CPUs (from /proc/stat, so processes that start and exit inside the
window are caught too) minus the time of the benchmark's processes (given PIDs
and their descendants) and of kernel threads. irq/softirq time is not charged
to any process and belongs to whoever generated the packets, so it is not
foreign. 100 % = one full core.

`snapshot()` reads /proc; everything else works on snapshots (plain dicts) and
is unit-tested with synthetic ones.
"""

import os
import time

HZ = os.sysconf("SC_CLK_TCK")
# /proc/stat cpuN columns
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _read(path):
    with open(path) as f:
        return f.read()


def parse_proc_stat_line(s):
    """(comm, ppid, utime+stime ticks, cutime+cstime ticks) from /proc/PID/stat."""
    comm = s[s.index("(") + 1: s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def parse_cpu_lines(text):
    """{"cpu0": {"user": ticks, ...}, ...} from /proc/stat (per-CPU lines only)."""
    cpus = {}
    for line in text.splitlines():
        if line.startswith("cpu") and len(line) > 3 and line[3].isdigit():
            v = line.split()
            cpus[v[0]] = dict(zip(CPU_FIELDS, (int(x) for x in v[1:9])))
    return cpus


def snapshot():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            comm, ppid, ticks, cticks = parse_proc_stat_line(_read(f"/proc/{d}/stat"))
        except (OSError, ValueError, IndexError):
            continue
        kthread = int(d) == 2 or ppid == 2
        procs[int(d)] = {"comm": comm, "ppid": ppid, "ticks": ticks, "cticks": cticks,
                         "kthread": kthread}
    return {"t": time.monotonic(), "procs": procs, "cpus": parse_cpu_lines(_read("/proc/stat"))}


def descendants(roots, procs):
    out = {int(r) for r in roots}
    changed = True
    while changed:
        changed = False
        for pid, p in procs.items():
            if pid not in out and p["ppid"] in out:
                out.add(pid)
                changed = True
    return out


def proc_seconds(a, b, pids):
    """CPU seconds (utime+stime, all threads) used by `pids` and their
    descendants between snapshots a and b."""
    mine = descendants(pids, b["procs"]) | descendants(pids, a["procs"])
    ticks = 0
    for pid in mine:
        if pid in b["procs"]:
            t0 = a["procs"][pid]["ticks"] if pid in a["procs"] else 0
            ticks += b["procs"][pid]["ticks"] - t0
    return ticks / HZ


def core_split(a, b, cpu):
    """Shares (percent of wall time) of one core between snapshots, plus its
    busy seconds (everything but idle, iowait and steal)."""
    v0 = a["cpus"].get(f"cpu{cpu}")
    v1 = b["cpus"].get(f"cpu{cpu}")
    if not v0 or not v1:
        return None
    d = {k: v1[k] - v0[k] for k in CPU_FIELDS}
    tot = sum(d.values()) or 1
    out = {k + "_pct": 100.0 * d[k] / tot for k in CPU_FIELDS}
    busy = d["user"] + d["nice"] + d["system"] + d["irq"] + d["softirq"]
    out["busy_s"] = busy / HZ
    return out


def foreign(a, b, mine):
    """(foreign CPU %, top foreign processes [(pct, pid, comm)]), 100 % = one core.

    Two estimates, the larger one wins:
    * direct: the tick deltas of every live process that is neither ours nor a
      kernel thread, plus the growth of its cutime+cstime (children it reaped
      inside the window, so short-lived processes count too) minus what those
      children had already used before the window (their ticks in `a`);
    * the anchors' cpuwatch.py: user+nice+system of /proc/stat minus our and
      kernel threads' ticks. With tick-based accounting (this kernel: no
      IRQ_TIME_ACCOUNTING) softirq ticks are charged to the interrupted task
      too, so the generator's and the switch's softirq time is subtracted from
      a total that does not contain it: this estimate alone can hide a foreign
      load as large as the benchmark's softirq share.
    """
    dt = b["t"] - a["t"]
    if dt <= 0:
        return 0.0, []
    mine = descendants(mine, b["procs"]) | descendants(mine, a["procs"])
    ours = 0.0
    direct = 0.0
    top = []
    # CPU used before the window by processes that were reaped inside it: it
    # shows up in their parent's cutime/cstime and must not count
    # (recursively: a reaped child's cutime grows by its own reaped children)
    gone_pids = {pid for pid in a["procs"] if pid not in b["procs"]}
    pre = {}

    def _pre(pid):
        if pid not in pre:
            p = a["procs"][pid]
            pre[pid] = p["ticks"] + p.get("cticks", 0) + sum(
                _pre(c) for c in gone_pids if a["procs"][c]["ppid"] == pid)
        return pre[pid]

    gone = {}
    for pid in gone_pids:
        ppid = a["procs"][pid]["ppid"]
        if ppid not in gone_pids:
            gone[ppid] = gone.get(ppid, 0) + _pre(pid)
    for pid, p in b["procs"].items():
        old = a["procs"].get(pid)
        t0 = old["ticks"] if old else 0
        c0 = old["cticks"] if old else 0
        pct = 100.0 * (p["ticks"] - t0) / HZ / dt
        cpct = 100.0 * max(0, p.get("cticks", 0) - c0 - gone.get(pid, 0)) / HZ / dt
        if pid in mine or p["kthread"]:
            ours += pct + cpct     # our children reaped in the window (one generator run per trial) are ours
            continue
        direct += pct + cpct
        if pct + cpct >= 1.0:
            top.append((round(pct + cpct, 1), pid, p["comm"]))
    busy = 0
    for c, v1 in b["cpus"].items():
        v0 = a["cpus"].get(c)
        if v0:
            busy += sum(v1[k] - v0[k] for k in ("user", "nice", "system"))
    procstat = 100.0 * busy / HZ / dt - ours
    top.sort(reverse=True)
    return max(0.0, direct, procstat), top[:8]


def wait_quiet(mine, threshold=5.0, max_wait=300.0, interval=1.0, need=1, log=None):
    """Sample `interval`-second windows until foreign CPU < threshold in `need`
    consecutive ones (other people's test runs come in bursts with short gaps).
    Returns (quiet?, seconds waited, last foreign %, top). Never kills anything."""
    start = time.monotonic()
    last_report = start
    streak = 0
    b = snapshot()
    while True:
        a = b
        time.sleep(interval)
        b = snapshot()
        f, top = foreign(a, b, mine() if callable(mine) else mine)
        waited = time.monotonic() - start
        streak = streak + 1 if f < threshold else 0
        if streak >= need:
            return True, waited, f, top
        if waited > max_wait:
            return False, waited, f, top
        if log and time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            log(f"waiting for a quiet machine: foreign CPU {f:.0f}% "
                f"[{', '.join(f'{c}({p})={x:.0f}%' for x, p, c in top[:4])}]")
