"""New connections per second through a stateful firewall, pyvswitch and OVS-DPDK.

The switches are pvp.py's (two vhost-user ports, OVS-DPDK in its own
namespace and rundir) with switches.FIREWALL_FLOWS: every IP packet goes
through ct(), and a +new one is committed. pvs-pktgen sends one batch of
`batch` UDP frames on vhu0, each a new 5-tuple (--flows = --count: it varies
the low 16 bits of the source IP and the source port, so at most 65,536
tuples per batch; each batch gets its own /16 through --src-ip), and counts
what comes out of vhu1.

Per batch: committed = ct-get-nconns after - before, rate = committed / the
generator's sending time. The generator waits for room in the vhost ring, so
when the switch is the slower side the sending time is the switch's time.
Both tables get the same ct-set-maxconns (`maxconns`); with `fill` the OVS
table is then filled on up to `fill` entries to weigh its memory (VmRSS
growth of ovs-vswitchd per entry, from before its first connection) next to
ct_memory.py's pyvswitch figure. Last, one batch through in_port flows (no
conntrack) shows how far the generator itself goes.
"""

import json
import os
import subprocess

from . import cpu, system
from .pvp import ANCHOR

MAX_BATCH = 65536          # pvs-pktgen varies 16 bits of the source


def appctl(sw, *args):
    """pvs-appctl or ovs-appctl on the switch's own control socket."""
    if sw.name == ANCHOR:
        return sw.appctl("ovs-vswitchd", *args).stdout
    return sw.ctl("pvs-appctl", *args).stdout


def nconns(sw):
    return int(appctl(sw, "dpctl/ct-get-nconns").strip())


def set_maxconns(sw, n):
    appctl(sw, "dpctl/ct-set-maxconns", str(n))
    got = int(appctl(sw, "dpctl/ct-get-maxconns").strip())
    if got != n:
        raise RuntimeError(f"{sw.name}: ct-set-maxconns {n} left maxconns at {got}")


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def send_batch(args, sw, index, count, rawdir):
    """One pvs-pktgen run of `count` new 5-tuples in source /16 number `index`."""
    cmd = ["taskset", "-c", str(args.gen_cpu), system.tool("pvs-pktgen"),
           "--tx", f"path={sw.socket(0)}", "--rx", f"path={sw.socket(1)}",
           "--count", str(count), "--flows", str(count), "--src-ip", f"10.{index % 250 + 1}.0.1",
           "--dst-ip", "172.16.0.1", "--size", "64", "--rate", "0", "--warmup", "10",
           "--drain", "1", "--lat-samples", "1", "--timeout", "60", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    with open(os.path.join(rawdir, f"pktgen-ct-{sw.name}.log"), "a") as f:
        f.write(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"pvs-pktgen failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def one_batch(args, sw, index, rawdir):
    """Send a batch and read the table around it: a record of the rate."""
    before = nconns(sw)
    s0 = cpu.snapshot()
    res = send_batch(args, sw, index, args.batch, rawdir)
    s1 = cpu.snapshot()
    after = nconns(sw)
    committed = after - before
    secs = res["seconds"]
    return {"type": "batch", "switch": sw.name, "batch": index, "sent": res["tx"],
            "forwarded": res["rx"], "committed": committed, "nconns": after, "seconds": secs,
            "conns_per_s": committed / secs if secs > 0 else None,
            "foreign_cpu_pct": round(foreign_pct(s0, s1, sw), 1), "loadavg": os.getloadavg()[0]}


def foreign_pct(s0, s1, sw):
    """cpu.foreign, less the generator: it ran and was reaped inside the
    window, so its CPU shows only in our cutime, which cpu.foreign's /proc/stat
    estimate does not count as ours."""
    me = os.getpid()
    f, _ = cpu.foreign(s0, s1, [me, *sw.bench_pids()])
    if me not in s0["procs"] or me not in s1["procs"]:
        return f
    reaped = s1["procs"][me]["cticks"] - s0["procs"][me]["cticks"]
    return max(0.0, f - 100.0 * reaped / cpu.HZ / (s1["t"] - s0["t"]))


def switch_pid(sw):
    return sw.vswitchd_pid if sw.name == ANCHOR else sw.pid


def fill_memory(args, sw, first_index, start, rawdir, emit):
    """Fill the switch's table to args.fill entries (on top of the batches'):
    VmRSS growth per entry since `start` = (VmRSS, entries) before the first
    connection. No flush on the way: freed memory the allocator keeps would
    hide the cost of the entries that reuse it."""
    set_maxconns(sw, args.fill)
    index = first_index
    while nconns(sw) < args.fill and index < first_index + 2 * args.fill // args.batch + 2:
        send_batch(args, sw, index, min(args.batch, args.fill - nconns(sw)), rawdir)
        index += 1
    rss1, n1 = vm_rss_kb(switch_pid(sw)), nconns(sw)
    rss0, n0 = start
    rec = {"type": "fill", "switch": sw.name, "entries": n1 - n0, "rss_before_kb": rss0,
           "rss_after_kb": rss1,
           "bytes_per_entry": (rss1 - rss0) * 1024 / (n1 - n0) if n1 > n0 else None}
    emit(rec)
    return rec


def without_firewall(args, sw, first_index, rawdir, emit):
    """The same batch with in_port flows instead of the firewall: how fast the
    generator and the switch go without conntrack (is the generator the limit?)."""
    ofctl = sw.ofctl if sw.name == ANCHOR else (lambda *a: sw.ctl("pvs-ofctl", *a))
    ofctl("del-flows", system.BRIDGE)
    ofctl("add-flow", system.BRIDGE, "in_port=1,actions=output:2")
    ofctl("add-flow", system.BRIDGE, "in_port=2,actions=output:1")
    res = send_batch(args, sw, first_index, args.batch, rawdir)
    rec = {"type": "no_firewall", "switch": sw.name, "sent": res["tx"], "forwarded": res["rx"],
           "seconds": res["seconds"], "pps": res["tx"] / res["seconds"] if res["seconds"] > 0 else None}
    emit(rec)
    return rec


def measure(args, sw, rawdir, emit):
    """The batches of one switch; then, for OVS, the memory fill; last the
    same batch without the firewall."""
    appctl(sw, "dpctl/flush-conntrack")
    set_maxconns(sw, args.maxconns)
    start = vm_rss_kb(switch_pid(sw)), nconns(sw)
    for i in range(args.batches):
        rec = one_batch(args, sw, i, rawdir)
        emit(rec)
        system.log(f"  {sw.name} batch {i}: {rec['committed']} committed in {rec['seconds']:.3f} s "
                   f"= {rec['conns_per_s'] or 0:,.0f} conn/s (table {rec['nconns']}, "
                   f"foreign CPU {rec['foreign_cpu_pct']} %)")
    if args.fill and sw.name == ANCHOR:
        rec = fill_memory(args, sw, args.batches, start, rawdir, emit)
        system.log(f"  {sw.name}: {rec['entries']} entries, VmRSS +{rec['rss_after_kb'] - rec['rss_before_kb']} kB"
                   f" = {rec['bytes_per_entry'] or 0:.0f} B/entry")
    rec = without_firewall(args, sw, 200, rawdir, emit)
    system.log(f"  {sw.name} without the firewall: {rec['pps'] or 0:,.0f} packets/s")
