"""pvs-bench pmd-cycles: the PMD loop's cycles per packet, measured in process.

A developer's measurement, not a comparison (no anchor switch): it isolates
the compiled datapath from the guests and from the machine's noise. One
process holds a datapath with two vhost-user ports and the built-in front-end
as both guests; the PMD thread is parked and its loop is called directly.

Each repetition: the guest side, on --guest-cpu, queues 256 frames on the
first port's TX ring and empties the second port's RX ring; then the PMD loop,
on --pmd-cpu, forwards them. The figure is the PMD's busy cycles (rdtsc)
over the packets it received, as `pvs-appctl dpif-netdev/pmd-stats-show`
counts them. With the guest on the other core the rings are cache misses, as
with a real guest, and the figure tracks the PVP benchmark's within a few
percent; --same-core shows the work without them.

    --flows ports    in_port=1 -> output:2 (and back)
    --flows vxlan    clone(tnl_push, tnl_pop) and, on the second pass,
                     output:2: the VXLAN loop of `pvs-bench pvp --flows vxlan`

Found with it (docs/BENCHMARKS.md, PVP section): numba's calls between
kernels (fixed by forceinline) and the guests' cache misses (fixed by
prefetching).
"""

import argparse
import os
import statistics
import struct
import sys
import tempfile
import threading
import time

from pyvswitch.datapath import layout as DL
from pyvswitch.datapath.kernels import state as S
from pyvswitch.datapath.kernels import tunnel as TN

RING = 256
TNL_PORT = 9                                   # the VXLAN loop's datapath port of the popped packets
MASK = DL.pack_key({"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF})
HDR = TN.vxlan_header(0x020000000002, 0x020000000001, 0xAC1FFF01, 0xAC1FFF02, 100, tos=0, ttl=64)


def udp_frame(size):
    """A UDP/IPv4 frame of `size` bytes (without FCS), as testpmd's tx_first."""
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size - 14, 0, 0, 64, 17, 0,
                     bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    udp = struct.pack("!HHHH", 1024, 1024, size - 34, 0)
    return (eth + ip + udp).ljust(size, b"\0")


def actions(flows, in_port):
    if flows == "vxlan" and in_port == 1:
        return [("clone", [("tnl_push", TNL_PORT, HDR, 3), ("tnl_pop", TNL_PORT, 4789)])]
    if in_port in (1, TNL_PORT):
        return [("output", 2)]
    return [("output", 1)]


def on_cpu(cpu, fn):
    """fn() on a thread pinned to `cpu` (None: here); its result."""
    if cpu is None:
        return fn()
    box = []

    def run():
        os.sched_setaffinity(0, {cpu})
        box.append(fn())
    th = threading.Thread(target=run)
    th.start()
    th.join()
    return box[0]


class Rig:
    """A datapath with vhost-user ports 1 and 2 and a front-end on each; the
    upcall handler answers every miss (tests use it too)."""

    def __init__(self, rundir, upcall, pmd_cpus=None, mtu=1500, sleep_max_us=1000):
        from pyvswitch.datapath.dpif import Dpif
        from pyvswitch.ports.vhost.frontend import VirtioUser
        from pyvswitch.ports.vhost.port import VhostUserPort
        self.dp = Dpif("br-cycles", rundir, pmd_cpus=pmd_cpus, sleep_max_us=sleep_max_us)
        self.dp.set_upcall_handler(upcall)
        self.ports, self.fes = [], []
        for i in range(2):
            p = VhostUserPort(f"vhu{i}", {"vhost-sock-dir": rundir})
            p.quiesce = self.dp.quiesce
            p.open()
            p.set_mtu(mtu)
            self.dp.add_port(p, i + 1)
            self.ports.append(p)
        for p in self.ports:
            fe = VirtioUser(p.path, qsize=RING)
            fe.start()
            self.fes.append(fe)
        end = time.monotonic() + 30
        while not all(p.link_up() for p in self.ports):
            if time.monotonic() > end:
                raise RuntimeError("the vhost-user ports did not come up")
            time.sleep(0.01)

    def first_frame(self, frame, timeout):
        """One frame port 1 -> port 2 (installs the megaflows); True if it came."""
        self.fes[0].send([frame])
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.fes[1].recv():
                return True
            time.sleep(0.01)
        return False

    def close(self):
        for fe in self.fes:
            fe.close()
        self.dp.close()
        for p in self.ports:
            p.close()


def flows_rig(rundir, flows, pmd_cpu):
    """A Rig whose upcalls install `actions(flows, in_port)` under MASK."""
    return Rig(rundir, lambda keys, in_ports, pk: [(actions(flows, int(ip)), MASK) for ip in in_ports],
               pmd_cpus=[pmd_cpu])


def measure(rig, frame, reps, guest_cpu):
    pmd = rig.dp.pmds[0]
    pmd.park()
    p, t = pmd.p, pmd.t
    saved = int(p.ctl[S.C_MAX_ITER]), int(p.ctl[S.C_SPIN_POLLS])
    p.ctl[S.C_MAX_ITER] = RING // S.BURST + 1              # every burst, then one empty poll
    p.ctl[S.C_SPIN_POLLS] = 1 << 40                        # never sleep
    from pyvswitch.datapath.kernels.pmdloop import pmd_loop
    fe0, fe1 = rig.fes
    frames = [frame] * RING
    out = []
    try:
        for _ in range(reps):
            on_cpu(guest_cpu, lambda: (fe0.send(frames), fe1.recv()))
            pmd.stamp_time()
            b0, k0 = int(p.stats[S.S_BUSY_CYC]), int(p.stats[S.S_PACKETS])
            pmd_loop(p, t)
            b1, k1 = int(p.stats[S.S_BUSY_CYC]), int(p.stats[S.S_PACKETS])
            got = on_cpu(guest_cpu, fe1.recv)
            if k1 > k0 and len(got) == k1 - k0:
                out.append((b1 - b0) / (k1 - k0))
    finally:
        p.ctl[S.C_MAX_ITER], p.ctl[S.C_SPIN_POLLS] = saved
        pmd.release()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="pvs-bench pmd-cycles", description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", choices=("ports", "vxlan"), default="ports")
    ap.add_argument("--size", type=int, default=60, help="frame bytes without FCS (default 60)")
    ap.add_argument("--reps", type=int, default=400, help="bursts of 256 frames (default 400)")
    ap.add_argument("--pmd-cpu", type=int, default=1)
    ap.add_argument("--guest-cpu", type=int, default=0)
    ap.add_argument("--same-core", action="store_true", help="the guest side runs on the PMD's core")
    a = ap.parse_args(argv)
    if not 60 <= a.size <= 1514:
        ap.error("--size must be 60..1514")
    os.sched_setaffinity(0, {a.pmd_cpu})
    frame = udp_frame(a.size)
    with tempfile.TemporaryDirectory(prefix="pvs-cycles-") as d:
        rig = flows_rig(d, a.flows, a.pmd_cpu)
        try:
            if not rig.first_frame(frame, timeout=600):        # a cold numba cache compiles first
                print("pvs-bench pmd-cycles: the first frame did not cross", file=sys.stderr)
                return 1
            got = measure(rig, frame, a.reps, None if a.same_core else a.guest_cpu)
        finally:
            rig.close()
    if not got:
        print("pvs-bench pmd-cycles: no complete repetition", file=sys.stderr)
        return 1
    q = statistics.quantiles(got, n=4) if len(got) > 1 else [got[0]] * 3
    where = "same core" if a.same_core else f"guest on cpu {a.guest_cpu}"
    print(f"flows {a.flows}, {a.size} B, {where}: PMD cycles/pkt median {statistics.median(got):.1f} "
          f"(p25 {q[0]:.1f}, p75 {q[2]:.1f}, {len(got)} of {a.reps} repetitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
