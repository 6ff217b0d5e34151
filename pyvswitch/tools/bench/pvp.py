"""PVP loopback ("PVP without a VM"): pyvswitch against Open vSwitch with DPDK.

    python -m pyvswitch.tools.bench.pvp [--switch pyvswitch,ovs-dpdk] [--sizes 64,1518]
        [--reps 3] [--duration 10] [--warmup 3] [--bursts 8]
        [--flows ports|normal|firewall|vxlan] [--guests 1] [--quick]

Topology (the method of ../shared/bench-anchors/ovs_dpdk_pvp.sh)::

    dpdk-testpmd (core 0, io forwarding)       switch under test (PMD on core 1)
      virtio_user0 ==vhost-user== vhu0 (ofport 1) --flow--> vhu1 (ofport 2)
      virtio_user1 ==vhost-user== vhu1 (ofport 2) --flow--> vhu0 (ofport 1)
      and testpmd forwards p0 -> p1, p1 -> p0: a closed loop

testpmd injects `--bursts` bursts of 32 packets per port (`start tx_first N`) and
then forwards whatever comes back; the rate is the sum over both testpmd ports
of the RX-packets delta over the window (`show port stats all` once a second),
i.e. packets the switch forwarded per second. Before `start` the harness waits
for both ports' link_state=up (otherwise one direction of the loop stays empty)
and measures the switch's CPU while the guests are connected but silent
("idle CPU": 100 % for a busy-polling PMD).

--flows vxlan runs the loop through VXLAN inside the switch (the topology of
../shared/bench-anchors/ovs_dpdk_pvp_vxlan.sh, switches.VxlanLoop): vhu0 ->
vxlan-a -> tnl_push -> br-phy-a -> patch -> br-phy-b's LOCAL -> tnl_pop ->
vxlan-b -> vhu1 and back, checked with ofproto/trace before measuring.
--guests N gives every switch N such pairs of ports (vhu0..vhu<2N-1>).

The switches alternate per repetition (A/B/A/B); every block starts a fresh
switch and tears it down. Windows with foreign CPU above --clean-max-foreign
are kept in the raw data, retried and left out of the summary.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time

from . import cpu, stats, system
from .switches import VXLAN_OVERHEAD, OvsSystem, PyVSwitch, VxlanLoop, _cpu_mask
from .system import BRIDGE, log

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "bench", "results")
OVS_DPDK_BINARY = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
SUBJECT, ANCHOR = "pyvswitch", "ovs-dpdk"
MAX_GUESTS = 8            # vhost-user port pairs (--guests): seed 001 has 1, 4 and 6 VMs
TESTPMD_MB = 512          # testpmd's memory (huge pages when there are enough)
OVS_SOCKET_MB = 1024      # dpdk-socket-mem of OVS
NS_PVS = "pvb-pvs"        # pyvswitch's namespace for --flows vxlan (its br-phy devices)

QUICK = {"reps": 1, "duration": 3.0, "warmup": 2.0, "sizes": "64", "retries": 1,
         "quiet_max_wait": 30.0, "idle": 2.0}
DEFAULTS = {"reps": 3, "duration": 10.0, "warmup": 3.0, "sizes": "64,1518", "retries": 3,
            "quiet_max_wait": 300.0, "idle": 5.0}


# ------------------------------------------------------------------ switches
def guest_mac(i):
    """The MAC of testpmd's port i: 00:00:00:00:00:01, ...:02, ..."""
    return f"00:00:00:00:00:{i + 1:02x}"


class _VhostPorts:
    """dpdkvhostuser ports vhu0, vhu1, ... (two per guest, --guests) whose
    sockets live in the switch's rundir; vhu<2k> and vhu<2k+1> are looped."""

    @property
    def nports(self):
        return 2 * getattr(self.opts, "guests", 1)

    def ports(self):
        return [(f"vhu{i}", i + 1, ["type=dpdkvhostuser"]) for i in range(self.nports)]

    def socket(self, i):
        return os.path.join(self.dir, f"vhu{i}")

    def links_up(self):
        return all(self._link_state(f"vhu{i}") == "up" for i in range(self.nports))

    # --flows vxlan: the anchor's VXLAN loop on top of vhu0/vhu1
    vxlan = None

    def _flows(self, ofctl):
        guests = getattr(self.opts, "guests", 1)
        if self.opts.flows == "vxlan":
            vsctl, appctl = self._vxlan_tools()
            self.vxlan = VxlanLoop(BRIDGE, vsctl, ofctl, appctl, self.netns, self.vxlan_pkt_mark,
                                   guests)
            self.vxlan.build()
        elif guests > 1:                 # ports: each guest's pair looped, as vhu0/vhu1
            ofctl("del-flows", BRIDGE)
            for k in range(guests):
                ofctl("add-flow", BRIDGE, f"in_port={2 * k + 1},actions=output:{2 * k + 2}")
                ofctl("add-flow", BRIDGE, f"in_port={2 * k + 2},actions=output:{2 * k + 1}")
        else:
            super()._flows(ofctl)

    def setup(self, cleanup):
        super().setup(cleanup)
        if self.vxlan is not None:
            self.vxlan.check()

    def describe(self):
        text = super().describe()
        return text + self.vxlan.describe() if self.vxlan is not None else text


class PvpPyVSwitch(_VhostPorts, PyVSwitch):
    name = SUBJECT
    vxlan_pkt_mark = False     # a user route beats the kernel's at the same length

    def __init__(self, *a):
        super().__init__(*a)
        if self.opts.flows == "vxlan":
            self.netns = NS_PVS    # br-phy-a/b and their addresses stay out of the host's routes

    def _vxlan_tools(self):
        return (lambda *a, **kw: self.ctl("pvs-vsctl", *a, **kw),
                lambda *a, **kw: self.ctl("pvs-appctl", *a, **kw))

    def _link_state(self, port):
        r = self.ctl("pvs-vsctl", "get", "Interface", port, "link_state", check=False)
        return r.stdout.strip().strip('"')


class OvsDpdk(_VhostPorts, OvsSystem):
    name = ANCHOR
    vswitchd_binary = OVS_DPDK_BINARY
    # a netdev datapath creates the tap "ovs-netdev": one per network namespace,
    # so an OVS started by someone else in the root namespace does not collide
    netns = system.NS_OVS
    vxlan_pkt_mark = True      # its kernel-learned local /32 wins otherwise

    def _vxlan_tools(self):
        return self.vsctl, lambda *a, **kw: self.appctl("ovs-vswitchd", *a, **kw)

    @property
    def layout(self):
        return (f"Open vSwitch with DPDK: dpdk-lcore-mask and all non-PMD threads on core "
                f"{self.opts.main_cpu}, pmd-cpu-mask={_cpu_mask(self.opts.switch_cpu)} (one PMD on "
                f"core {self.opts.switch_cpu}), dpdk-socket-mem={OVS_SOCKET_MB} MB of huge pages")

    @property
    def vswitchd_cpu(self):
        return self.opts.main_cpu        # the PMD re-pins itself to pmd-cpu-mask

    def db_config(self):
        return ["other_config:dpdk-init=true",
                f"other_config:dpdk-lcore-mask={_cpu_mask(self.opts.main_cpu)}",
                f"other_config:dpdk-socket-mem={OVS_SOCKET_MB}",
                "other_config:dpdk-extra=--no-pci --file-prefix=pvb-ovs"]

    def _link_state(self, port):
        r = self.vsctl("get", "Interface", port, "link_state", check=False)
        return r.stdout.strip().strip('"')

    def describe(self):
        out = self.vsctl("get", "Open_vSwitch", ".", "dpdk_initialized", "dpdk_version",
                         check=False).stdout
        return out + super().describe()


SWITCHES = {SUBJECT: PvpPyVSwitch, ANCHOR: OvsDpdk}


# ------------------------------------------------------------------ huge pages
def hugepages_mb():
    """(free MB of 2 MB huge pages, whether hugetlbfs is mounted)."""
    mounted = False
    try:
        with open("/proc/mounts") as f:
            mounted = any(line.split()[2] == "hugetlbfs" for line in f)
    except OSError:
        pass
    return system.free_hugepage_mb(), mounted


def ensure_hugepages(need_mb):
    """Reserve 2 MB pages until `need_mb` are free and mount hugetlbfs if needed.
    Returns None when done, else why not."""
    free, mounted = hugepages_mb()
    if free < need_mb:
        try:
            with open("/proc/sys/vm/nr_hugepages") as f:
                total = int(f.read())
            with open("/proc/sys/vm/nr_hugepages", "w") as f:
                f.write(str(total + (need_mb - free + 1) // 2))
        except (OSError, ValueError) as e:
            return f"cannot reserve huge pages: {e}"
        free, mounted = hugepages_mb()
        if free < need_mb:
            return f"only {free} MB of huge pages free after reserving (need {need_mb})"
    if not mounted:
        os.makedirs("/dev/hugepages", exist_ok=True)
        r = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", "/dev/hugepages"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return f"cannot mount hugetlbfs: {r.stderr.strip()}"
    return None


# ------------------------------------------------------------------ testpmd
_BLOCK_RE = re.compile(r"NIC statistics for port (\d+)\s+#+(.*?)#{20,}", re.S)


def parse_port_stats(text):
    """{port: [{"RX-packets": n, "Rx-pps": n, ...}, ...]} from testpmd's
    `show port stats all` blocks, in order of appearance."""
    blocks = {}
    for m in _BLOCK_RE.finditer(text):
        d = {}
        for key in ("RX-packets", "TX-packets", "RX-missed", "RX-nombuf", "TX-errors", "Rx-pps", "Tx-pps"):
            mm = re.search(re.escape(key) + r":\s+(\d+)", m.group(2))
            if mm:
                d[key] = int(mm.group(1))
        blocks.setdefault(int(m.group(1)), []).append(d)
    return blocks


def window_rates(blocks, dt):
    """Rates of a window from its first (baseline) and last stats block per port:
    {"mpps": total, "mpps_p<N>": per port, "sec_min_mpps"/"sec_max_mpps"}."""
    if dt <= 0:
        raise ValueError("window length must be positive")
    out = {}
    total = 0
    for port, bl in sorted(blocks.items()):
        if len(bl) < 2 or "RX-packets" not in bl[0] or "RX-packets" not in bl[-1]:
            raise ValueError(f"port {port}: fewer than two stats blocks")
        d = bl[-1]["RX-packets"] - bl[0]["RX-packets"]
        if d < 0:
            raise ValueError(f"port {port}: RX-packets went backwards")
        out[f"mpps_p{port}"] = d / dt / 1e6
        total += d
        out[f"rx_missed_p{port}"] = bl[-1].get("RX-missed", 0) - bl[0].get("RX-missed", 0)
    out["mpps"] = total / dt / 1e6
    out["rx_packets"] = total
    # testpmd's own per-interval Rx-pps, summed over the ports (after the baseline)
    n = min(len(bl) for bl in blocks.values())
    secs = [sum(blocks[p][i].get("Rx-pps", 0) for p in blocks) / 1e6 for i in range(1, n)]
    out["sec_min_mpps"] = min(secs) if secs else None
    out["sec_max_mpps"] = max(secs) if secs else None
    return out


class TestPmd:
    """Interactive dpdk-testpmd with virtio-user ports (two per guest) on one core, io forwarding."""

    def __init__(self, gen_cpu, sockets, size, logpath, memory_args):
        # io forwarding pairs port 2k with 2k+1; each sends to its partner's MAC
        self.cmdline = [
            "stdbuf", "-oL", "taskset", "-c", str(gen_cpu), system.tool("dpdk-testpmd"),
            "--lcores", f"0@{gen_cpu},1@{gen_cpu}", "--no-pci", "--file-prefix", "pvb-tp",
            *memory_args,
            *(a for i, s in enumerate(sockets)
              for a in ("--vdev", f"net_virtio_user{i},path={s},queues=1,mac={guest_mac(i)}")),
            "--", "-i", "--nb-cores=1", "--forward-mode=io", f"--txpkts={size}",
            *(f"--eth-peer={i},{guest_mac(i ^ 1)}" for i in range(len(sockets)))]
        self.logpath = logpath
        self.proc = None

    def start(self, cleanup, state):
        cleanup.push("dpdk-testpmd", self.stop)
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(self.cmdline, stdin=subprocess.PIPE, stdout=self.log,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        state.add(self.proc.pid, "dpdk-testpmd")
        self.state = state
        return self.proc.pid

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def wait_prompt(self, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "testpmd> " in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"dpdk-testpmd did not come up: {self.text()[-600:]!r}")

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return time.monotonic()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.alive():
            try:
                self.cmd("stop")
                time.sleep(0.5)
                self.cmd("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                system.stop_pid(self.proc.pid, "dpdk-testpmd", popen=self.proc)
        self.state.remove(self.proc.pid)
        self.log.close()
        self.proc = None


# ------------------------------------------------------------------ one window
def wait_links(sw, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sw.links_up():
            return
        time.sleep(0.1)
    raise RuntimeError("the vhost-user ports did not come up (link_state != up)")


def measure(args, sw, size, rep, attempt, rawdir, cleanup, state):
    tag = f"{sw.name}-size{size}-rep{rep}.{attempt}"
    bench = lambda extra=(): [os.getpid(), *sw.bench_pids(), *extra]  # noqa: E731
    quiet, waited, f_before, _ = cpu.wait_quiet(bench, threshold=args.quiet_threshold,
                                                max_wait=args.quiet_max_wait, need=2, log=log)
    tp = TestPmd(args.gen_cpu, [sw.socket(i) for i in range(sw.nports)], size,
                 os.path.join(rawdir, f"testpmd-{tag}.log"), args.memory_args)
    mark = len(cleanup.stack)
    tpid = tp.start(cleanup, state)
    rec = {"type": "run", "switch": sw.name, "size": size, "rep": rep, "attempt": attempt,
           "flows": args.flows, "time": datetime.datetime.now().isoformat(timespec="seconds"),
           "testpmd_memory": " ".join(args.memory_args)}
    try:
        tp.wait_prompt()
        wait_links(sw)
        time.sleep(1)                  # the PMD picks up the enabled vrings
        # connected but silent guests: what does the switch burn?
        i0 = cpu.snapshot()
        time.sleep(args.idle)
        i1 = cpu.snapshot()
        rec["idle_switch_cpu_pct"] = 100.0 * cpu.proc_seconds(i0, i1, sw.switch_pids()) / (i1["t"] - i0["t"])
        tp.cmd(f"start tx_first {args.bursts}")
        time.sleep(args.warmup)
        sw.pmd_clear()
        s0 = cpu.snapshot()
        t0 = tp.cmd("show port stats all")
        end = t0 + args.duration
        while time.monotonic() < end - 0.05:
            time.sleep(min(1.0, end - time.monotonic()))
            t1 = tp.cmd("show port stats all")
        s1 = cpu.snapshot()
        time.sleep(0.5)                # let testpmd print the last block
        pmd_text = sw.pmd_show()
        alive = tp.alive()
        log_text = tp.text()
        health = sw.health()
    finally:
        cleanup.unwind(mark)
    rec.update(window_rates(parse_port_stats(log_text), t1 - t0))
    rec["window_s"] = round(t1 - t0, 3)
    rec["gbps"] = rec["mpps"] * size * 8 / 1e3
    secs = cpu.proc_seconds(s0, s1, sw.switch_pids())
    rec["switch_cpu_pct"] = 100.0 * secs / (s1["t"] - s0["t"])
    rec["switch_cpu_ns_per_pkt"] = stats.ns_per_pkt(secs, rec["rx_packets"])
    foreign, top = cpu.foreign(s0, s1, bench([tpid]))
    rec["foreign_cpu_pct"] = round(foreign, 2)
    rec["foreign_top"] = [f"{c}({p})={x}%" for x, p, c in top]
    rec["quiet_before"] = {"ok": quiet, "waited_s": round(waited, 1), "foreign_pct": round(f_before, 1)}
    both = all(rec.get(f"mpps_p{p}", 0) > 0 for p in range(sw.nports))
    rec["both_directions"] = both
    rec["testpmd_alive"] = alive
    rec["clean"] = stats.is_clean(foreign, args.clean_max_foreign) and alive and both
    rec["switch_problems"] = health
    if args.flows == "vxlan":
        rec["outer_size"] = size + VXLAN_OVERHEAD
    rec["pmd_cycles_per_pkt"] = None
    if pmd_text is not None:
        with open(os.path.join(rawdir, f"pmd-stats-{tag}.txt"), "w") as f:
            f.write(pmd_text)
        rec["pmd_cycles_per_pkt"] = stats.pmd_cycles_per_pkt(stats.parse_pmd_stats(pmd_text))
    return rec


# ------------------------------------------------------------------ summary
# seed 001's VXLAN forwarding table (a DPDK-optimised OVS 1.1.10, E5-2620 v2,
# 82599 NICs, Spirent tester): frame B -> (pps, Mbps) with 1, 4 and 6 VMs
SEED_001_VXLAN = {
    128: ((274355, 320), (653746, 770), (1021211, 1200)),
    512: ((182049, 770), (597685, 2540), (895388, 3800)),
    1024: ((187008, 1560), (531861, 4440), (750891, 6200)),
    1518: ((178362, 2190), (532352, 6550), (669144, 8200)),
}


def vxlan_markdown(summary):
    """Inner and underlay frame sizes, our medians and seed 001's figures."""
    f = stats.fmt
    med = {(c["switch"], c["size"]): c["mpps"][1] if c["mpps"] else None for c in summary["cells"]}
    L = ["", "## VXLAN: frame sizes and seed 001", "",
         "Every packet is encapsulated (tnl_push) on its way out of the integration bridge and "
         "decapsulated (tnl_pop) at the other underlay bridge's LOCAL port, inside the one switch "
         "(../shared/bench-anchors/ovs_dpdk_pvp_vxlan.sh). Frame B is the inner frame testpmd sends; "
         f"the encapsulated frame on the patch pair is {VXLAN_OVERHEAD} bytes longer. Seed 001: one "
         "host with a physical tester, Mpps (Mbps) with 1 / 4 / 6 VMs.", "",
         "| frame B | encapsulated B | pyvswitch Mpps | OVS-DPDK Mpps | seed 001, 1 VM | 4 VMs | 6 VMs |",
         "|---|---|---|---|---|---|---|"]
    for size in summary["sizes"]:
        seed = SEED_001_VXLAN.get(size)
        cols = [f"{pps / 1e6:.3f} ({mbps})" for pps, mbps in seed] if seed else ["-"] * 3
        L.append(f"| {size} | {size + VXLAN_OVERHEAD} | {f(med.get((SUBJECT, size)))} "
                 f"| {f(med.get((ANCHOR, size)))} | {' | '.join(cols)} |")
    return L


FIELDS = ("mpps", "sec_max_mpps", "gbps", "pmd_cycles_per_pkt", "switch_cpu_ns_per_pkt",
          "idle_switch_cpu_pct", "foreign_cpu_pct")


def summarize(records, switches, sizes):
    cells = []
    for sw in switches:
        for size in sizes:
            runs = [r for r in records if r.get("type") == "run" and r["switch"] == sw and r["size"] == size]
            clean = [r for r in runs if r.get("clean")]
            cell = {"switch": sw, "size": size, "runs": len(runs), "clean_runs": len(clean)}
            for f in FIELDS:
                cell[f] = stats.mmm(r.get(f) for r in clean)
            cell["mpps_all"] = stats.mmm(r.get("mpps") for r in runs)
            cells.append(cell)
    med = {(c["switch"], c["size"]): c["mpps"][1] if c["mpps"] else None for c in cells}
    med_all = {(c["switch"], c["size"]): c["mpps_all"][1] if c["mpps_all"] else None for c in cells}
    ratios = []
    if SUBJECT in switches and ANCHOR in switches:
        for size in sizes:
            ratios.append({"size": size, "pyvswitch_mpps": med[(SUBJECT, size)],
                           "ovs_dpdk_mpps": med[(ANCHOR, size)],
                           "ratio": stats.ratio(med[(SUBJECT, size)], med[(ANCHOR, size)]),
                           "ratio_all_windows": stats.ratio(med_all[(SUBJECT, size)], med_all[(ANCHOR, size)])})
    errors = {}
    for r in records:
        if r.get("type") == "error":
            errors.setdefault(r["switch"], set()).add(r["message"])
    return {"switches": list(switches), "sizes": list(sizes), "cells": cells, "ratios": ratios,
            "errors": {k: sorted(v) for k, v in errors.items()}}


def render_markdown(summary, meta):
    f, fm = stats.fmt, stats.fmt_mmm
    title = "# pyvswitch PVP loopback benchmark (vhost-user) vs Open vSwitch with DPDK"
    if meta.get("flows") == "vxlan":
        title += ", every packet through VXLAN"
    L = [title, "",
         f"Command: `{meta['command']}`", "",
         f"Date: {meta['date']}; raw data: `{meta['raw_dir']}`", "", "## Machine", "",
         "| item | value |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in meta["machine"].items()]
    L += ["", "## CPU layout", "", "| what | where |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in meta["layout"].items()]
    L += ["", "## Results (clean runs: min / **median** / max)", "",
          "Mpps = packets the switch forwarded per second (both directions, RX-packets delta of "
          "testpmd's two ports over the window); peak 1 s = best 1-second interval; switch CPU = "
          "utime+stime of the switch's processes per packet; idle CPU = the switch's CPU while both "
          "guests are connected and silent (100 % = one core).", "",
          "| switch | frame B | clean/runs | Mpps | peak 1 s Mpps | Gbps | PMD cycles/pkt "
          "| switch CPU ns/pkt | idle CPU % | foreign CPU % |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for c in summary["cells"]:
        L.append(f"| {c['switch']} | {c['size']} | {c['clean_runs']}/{c['runs']} | {fm(c['mpps'])} "
                 f"| {f(c['sec_max_mpps'][2] if c['sec_max_mpps'] else None)} | {fm(c['gbps'], 2, False)} "
                 f"| {fm(c['pmd_cycles_per_pkt'], 0, False)} | {fm(c['switch_cpu_ns_per_pkt'], 0, False)} "
                 f"| {fm(c['idle_switch_cpu_pct'], 1, False)} | {fm(c['foreign_cpu_pct'], 1, False)} |")
    if summary["ratios"]:
        L += ["", "## pyvswitch / OVS-DPDK (median Mpps, same run)", "",
              "| frame B | pyvswitch Mpps | OVS-DPDK Mpps | ratio | ratio, all windows |",
              "|---|---|---|---|---|"]
        for r in summary["ratios"]:
            L.append(f"| {r['size']} | {f(r['pyvswitch_mpps'])} | {f(r['ovs_dpdk_mpps'])} "
                     f"| {f(r['ratio'])} | {f(r['ratio_all_windows'])} |")
    if meta.get("flows") == "vxlan":
        L += vxlan_markdown(summary)
    if any(c["runs"] > c["clean_runs"] for c in summary["cells"]):
        L += ["", "## All windows, including unclean ones (indicative only)", "",
              "| switch | frame B | windows | Mpps (all) |", "|---|---|---|---|"]
        L += [f"| {c['switch']} | {c['size']} | {c['runs']} | {fm(c['mpps_all'])} |" for c in summary["cells"]]
    if summary["errors"]:
        L += ["", "## Errors", ""]
        L += [f"* {sw}: {m}" for sw, ms in summary["errors"].items() for m in ms]
    if meta.get("notes"):
        L += ["", "## Notes", ""] + [f"* {n}" for n in meta["notes"]]
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ command line
def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m pyvswitch.tools.bench.pvp",
                                description="PVP loopback through two vhost-user ports: pyvswitch "
                                            "vs Open vSwitch with DPDK, alternating in one run.")
    p.add_argument("--switch", default=f"{SUBJECT},{ANCHOR}", help="pyvswitch,ovs-dpdk (default both)")
    p.add_argument("--sizes", help="frame sizes without FCS (default 64,1518)")
    p.add_argument("--reps", type=int, help="repetitions per switch (default 3)")
    p.add_argument("--duration", type=float, help="measurement window in s (default 10)")
    p.add_argument("--warmup", type=float, help="s of traffic before the window (default 3)")
    p.add_argument("--idle", type=float, help="s of idle-CPU measurement with silent guests (default 5)")
    p.add_argument("--bursts", type=int, default=8, help="tx_first bursts of 32 per port (default 8)")
    p.add_argument("--flows", choices=("ports", "normal", "firewall", "vxlan"), default="ports",
                   help="in_port rules (default), actions=NORMAL, a stateful conntrack firewall, or "
                        "VXLAN encapsulation and decapsulation of every packet inside the switch")
    p.add_argument("--guests", type=int, default=1,
                   help=f"guests: vhost-user port pairs, each looped by testpmd (1..{MAX_GUESTS}, default 1; "
                        "--flows ports or vxlan)")
    p.add_argument("--quick", action="store_true", help="1 rep, 3 s, 64 B, 1 attempt (for CI)")
    p.add_argument("--retries", type=int, help="attempts per window when foreign CPU is too high")
    p.add_argument("--clean-max-foreign", type=float, default=10.0)
    p.add_argument("--quiet-threshold", type=float, default=5.0)
    p.add_argument("--quiet-max-wait", type=float)
    p.add_argument("--gen-cpu", type=int, default=0)
    p.add_argument("--switch-cpu", type=int, default=1)
    p.add_argument("--no-huge", action="store_true", help="testpmd with --no-huge (memfd) even when "
                   "huge pages could be reserved (OVS-DPDK then cannot run)")
    p.add_argument("--out", default=DEFAULT_OUT)
    a = resolve_args(p, p.parse_args(argv), QUICK, DEFAULTS)
    if a.reps < 1 or a.retries < 1 or a.duration <= 0 or a.bursts < 1:
        p.error("--reps, --retries, --bursts must be >= 1 and --duration > 0")
    if not 1 <= a.guests <= MAX_GUESTS:
        p.error(f"--guests: 1..{MAX_GUESTS}")
    if a.guests > 1 and a.flows not in ("ports", "vxlan"):
        p.error("--guests above 1 needs --flows ports or vxlan (per-guest in_port rules)")
    return a


def resolve_args(p, a, quick, defaults):
    """What the vhost-user benchmarks (pvp, rfc2544) check alike: --quick or
    default values for what was not given, the switch list, the frame sizes
    (a.size_list) and the cores (a.main_cpu = the generator's)."""
    for k, v in (quick if a.quick else defaults).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.switches = [s for s in a.switch.split(",") if s]
    if not a.switches or any(s not in SWITCHES for s in a.switches) or len(set(a.switches)) != len(a.switches):
        p.error(f"--switch: a list of {', '.join(SWITCHES)} without repeats")
    try:
        a.size_list = stats.parse_sizes(a.sizes, 1518, "vhost-user ports with a 1500-byte MTU; no FCS")
    except ValueError as e:
        p.error(str(e))
    ncpu = os.cpu_count() or 1
    if not (0 <= a.gen_cpu < ncpu and 0 <= a.switch_cpu < ncpu):
        p.error(f"cores must be below nproc={ncpu}")
    a.main_cpu = a.gen_cpu
    return a


def choose_memory(args):
    """Same testpmd memory for every switch: huge pages if they can be had, else memfd."""
    need = TESTPMD_MB + (OVS_SOCKET_MB if ANCHOR in args.switches else 0)
    why = "--no-huge asked" if args.no_huge else ensure_hugepages(need)
    if why is None:
        return ["--in-memory", "--single-file-segments", "--socket-mem", str(TESTPMD_MB)], None
    return ["--no-huge", "-m", str(TESTPMD_MB)], why


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (huge pages, daemons)")
    os.sched_setaffinity(0, {args.main_cpu})
    args.memory_args, why_no_huge = choose_memory(args)
    notes = []
    if why_no_huge:
        notes.append(f"testpmd without huge pages ({why_no_huge})")
        if ANCHOR in args.switches:
            log(f"no huge pages ({why_no_huge}): OVS-DPDK left out")
            args.switches.remove(ANCHOR)
            notes.append("OVS-DPDK left out: it needs huge pages")
        if not args.switches:
            raise SystemExit("nothing to run")
    if ANCHOR in args.switches and not os.path.exists(OVS_DPDK_BINARY):
        raise SystemExit(f"{OVS_DPDK_BINARY} missing: apt-get install openvswitch-switch-dpdk")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rawdir = os.path.join(args.out, "raw", f"pvp-{stamp}")
    os.makedirs(rawdir, exist_ok=True)
    command = "python -m pyvswitch.tools.bench.pvp " + shlex.join(argv)
    meta = {"command": command, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "raw_dir": os.path.relpath(rawdir, REPO), "machine": system.machine_info()}
    if args.flows == "vxlan":
        meta["flows"] = "vxlan"
    if args.guests > 1:
        meta["guests"] = args.guests
    records = []
    jl = open(os.path.join(rawdir, "runs.jsonl"), "w")

    def emit(rec):
        records.append(rec)
        jl.write(json.dumps(rec) + "\n")
        jl.flush()

    emit({"type": "meta", **meta, "args": {k: v for k, v in vars(args).items()}})
    t_start = time.monotonic()
    sws = {}

    def prepare():
        state = system.State()
        sws.update({n: SWITCHES[n](args, rawdir, state) for n in args.switches})

    def block(name, rep, cleanup, stage):
        sw = sws[name]
        sw.setup(cleanup)
        with open(os.path.join(rawdir, f"{name}-rep{rep}-config.txt"), "w") as f:
            f.write(sw.describe())
        stage[0] = "measurement"
        for size in args.size_list:
            for attempt in range(1, args.retries + 1):
                rec = measure(args, sw, size, rep, attempt, rawdir, cleanup, sw.state)
                emit(rec)
                log(f"  {name} {size}B rep {rep}.{attempt}: {rec['mpps']:.3f} Mpps "
                    f"(p0 {rec['mpps_p0']:.2f} p1 {rec['mpps_p1']:.2f}) idle CPU "
                    f"{rec['idle_switch_cpu_pct']:.1f}% foreign {rec['foreign_cpu_pct']:.1f}% "
                    f"clean={int(rec['clean'])}")
                if rec["clean"]:
                    break

    with system.Lock():
        interrupted = system.run_blocks(args.switches, args.reps, block, emit, prepare)
    jl.close()
    meta["layout"] = {
        f"core {args.gen_cpu}": f"dpdk-testpmd (`--lcores 0@{args.gen_cpu},1@{args.gen_cpu}`, io "
                                f"forwarding, {' '.join(args.memory_args)}), the harness",
        **{s.name: s.layout for s in sws.values()}}
    notes += [f"{args.reps} rep(s) x {len(args.size_list)} size(s) per switch, alternating "
              f"{' / '.join(args.switches)}; window {args.duration:g} s after {args.warmup:g} s of "
              f"traffic; tx_first {args.bursts} bursts of 32 per port; flows: {args.flows}; "
              f"total {time.monotonic() - t_start:.0f} s.",
              f"clean = foreign CPU <= {args.clean_max_foreign:g} % (100 % = one core), testpmd alive "
              "and both directions of the loop carrying traffic."]
    if args.guests > 1:
        notes.append(f"{args.guests} guests: {2 * args.guests} vhost-user ports (vhu0..vhu{2 * args.guests - 1}), "
                     f"testpmd's one forwarding core loops each pair; Mpps is the sum over all ports"
                     + ("; guest k's tunnels use key 100+k" if args.flows == "vxlan" else "") + ".")
    if interrupted:
        notes.append(f"INTERRUPTED ({interrupted}): partial results.")
    meta["notes"] = notes
    summary = summarize(records, args.switches, args.size_list)
    md = render_markdown(summary, meta)
    base = "pvp" if args.flows == "ports" else f"pvp-{args.flows}"
    stem = (base if args.guests == 1 else f"{base}-{args.guests}guests") + "-latest"
    for base in (os.path.join(rawdir, "summary"), os.path.join(args.out, stem)):
        with open(base + ".json", "w") as f:
            json.dump({"meta": meta, "summary": summary}, f, indent=1)
        with open(base + ".md", "w") as f:
            f.write(md)
    print(md)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
