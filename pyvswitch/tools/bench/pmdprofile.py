"""pvs-bench pmd-profile: where the PMD loop's cycles go, by source line.

A developer's tool beside pmd-cycles. perf on these VMs has no hardware
counters and cannot name numba's JIT code, but its timer samples (cpu-clock)
on the PMD's core still land in it. This command:

1. runs itself again with numba's debug info on (NUMBA_DEBUGINFO=1,
   NUMBA_BOUNDSCHECK=0) and a numba cache directory of its own under --out
   (numba's cache key does not include the flag: sharing the project's cache
   would hand the debug build to every later run), which compiles the PMD
   loop once more (minutes);
2. builds pvs-bench pmd-cycles' rig (--flows, --size, the guest on
   --guest-cpu), keeps the compiled object of pmd_loop and the address it
   was loaded at, and runs the loop for --reps repetitions under
   `perf record -C <pmd cpu> -e cpu-clock`;
3. maps every sample that fell in pmd_loop to the DWARF line table of that
   object (`objdump -dl --inlines`) and prints the innermost source lines
   and the call paths from pmd_loop down (outermost 3 frames), by share of
   the samples.

Reading it: a timer sample lands on the instruction after the one that
stalled; kernels with inline=True are inlined by numba itself and their
lines show under the file of their caller (emc.py's lines as pmdloop.py's).
Found with it (docs/BENCHMARKS.md, VXLAN section): the EMC hash's chained
multiplies, a store-forwarding stall and a division per packet.
"""

import argparse
import bisect
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

LOC = re.compile(r"^(/\S+?):(\d+)")
INLINED = re.compile(r"^inlined by (/\S+?):(\d+)")
INSN = re.compile(r"^\s+([0-9a-f]+):\t")


def line_table(asm):
    """{offset: call path} from `objdump -dl --inlines` text; a call path is
    a tuple of (file, line), innermost first."""
    table, path, pending = {}, (), None
    for text in asm.splitlines():
        m = INSN.match(text)
        if m:
            if pending is not None:
                path, pending = tuple(pending), None
            table[int(m.group(1), 16)] = path
            continue
        m = INLINED.match(text)
        if m and pending is not None:
            pending.append((m.group(1), int(m.group(2))))
            continue
        m = LOC.match(text)
        if m:
            pending = [(m.group(1), int(m.group(2)))]
    return table


def attribute(table, start, end, samples):
    """(counts by innermost line, counts by outermost-3 path, samples in
    [start, end)) for sample offsets (object offsets) in `samples`."""
    offs = sorted(o for o in table if start <= o < end)
    inner, paths, n = collections.Counter(), collections.Counter(), 0
    for off, k in samples.items():
        if not offs or not offs[0] <= off < end:
            continue
        path = table[offs[bisect.bisect_right(offs, off) - 1]]
        n += k
        inner[path[0] if path else None] += k
        paths[tuple(reversed(path))[:3]] += k
    return inner, paths, n


def _source(loc, cache={}):
    if loc is None:
        return ""
    f, ln = loc
    if f not in cache:
        try:
            with open(f) as fh:
                cache[f] = fh.read().splitlines()
        except OSError:
            cache[f] = []
    lines = cache[f]
    return lines[ln - 1].strip()[:70] if 0 < ln <= len(lines) else ""


def _name(loc):
    return "?" if loc is None else f"{os.path.basename(loc[0])}:{loc[1]}"


def report(inner, paths, n, total, top):
    out = [f"samples in pmd_loop: {n} of {total} on the PMD's core"]
    if n == 0:
        return "\n".join(out)
    out.append("\ninnermost source lines:")
    for loc, k in inner.most_common(top):
        out.append(f"{100 * k / n:5.1f} %  {_name(loc):22s} {_source(loc)}")
    out.append("\ncall paths from pmd_loop (outermost 3 frames):")
    for path, k in paths.most_common(top):
        out.append(f"{100 * k / n:5.1f} %  {' > '.join(_name(x) for x in path)}")
    return "\n".join(out)


def _symbol(obj, name):
    """(value, size) of symbol `name` in object file `obj`."""
    nm = subprocess.run(["nm", "-S", obj], capture_output=True, text=True, check=True).stdout
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[0], 16), int(parts[1], 16)
    raise RuntimeError(f"{name} not in {obj}")


def _loaded_pmd_loop():
    """(object file bytes, entry address, symbol name) of the compiled pmd_loop."""
    from pyvswitch.datapath.kernels.pmdloop import pmd_loop
    cres = pmd_loop.overloads[pmd_loop.signatures[0]]
    name = cres.fndesc.llvm_func_name
    return cres.library._get_compiled_object(), cres.library.get_pointer_to_function(name), name


def child(a):
    from pyvswitch.tools.bench import pmdcycles as PC
    os.sched_setaffinity(0, {a.pmd_cpu})
    frame = PC.udp_frame(a.size)
    with tempfile.TemporaryDirectory(prefix="pvs-profile-") as d:
        rig = PC.flows_rig(d, a.flows, a.pmd_cpu)
        try:
            if not rig.first_frame(frame, timeout=1800):     # the debug build compiles first
                print("pvs-bench pmd-profile: the first frame did not cross", file=sys.stderr)
                return 1
            PC.measure(rig, frame, 20, a.guest_cpu)
            obj, addr, name = _loaded_pmd_loop()
            with open(os.path.join(a.out, "pmd_loop.o"), "wb") as f:
                f.write(obj)
            data = os.path.join(a.out, "perf.data")
            perf = subprocess.Popen(["perf", "record", "-q", "-C", str(a.pmd_cpu), "-e", "cpu-clock",
                                     "-F", str(a.freq), "-o", data],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            got = PC.measure(rig, frame, a.reps, a.guest_cpu)
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        finally:
            rig.close()
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"addr": addr, "name": name}, f)
    print(f"flows {a.flows}, {a.size} B: PMD cycles/pkt median "
          f"{statistics.median(got) if got else 0:.1f} while sampled (perf adds its own cost)")
    return analyse(a.out, a.top)


def analyse(out, top):
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    obj = os.path.join(out, "pmd_loop.o")
    start, size = _symbol(obj, meta["name"])
    ips = subprocess.run(["perf", "script", "-i", os.path.join(out, "perf.data"), "-F", "ip"],
                         capture_output=True, text=True, check=True).stdout.split()
    samples = collections.Counter(int(x, 16) - meta["addr"] + start for x in ips)
    asm = subprocess.run(["objdump", "-d", "-l", "--inlines", "--no-show-raw-insn",
                          f"--start-address={start}", f"--stop-address={start + size}", obj],
                         capture_output=True, text=True, check=True).stdout
    inner, paths, n = attribute(line_table(asm), start, start + size, samples)
    text = report(inner, paths, n, len(ips), top)
    with open(os.path.join(out, "profile.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    print(f"\n(written to {out}/profile.txt; perf.data and pmd_loop.o beside it)")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="pvs-bench pmd-profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", choices=("ports", "vxlan"), default="ports")
    ap.add_argument("--size", type=int, default=60, help="frame bytes without FCS (default 60)")
    ap.add_argument("--reps", type=int, default=8000, help="bursts of 256 frames while sampling (default 8000)")
    ap.add_argument("--freq", type=int, default=20000, help="samples per second (default 20000)")
    ap.add_argument("--pmd-cpu", type=int, default=1)
    ap.add_argument("--guest-cpu", type=int, default=0)
    ap.add_argument("--top", type=int, default=25, help="lines and paths to print (default 25)")
    ap.add_argument("--out", help="directory for perf.data, pmd_loop.o, profile.txt "
                                  "and the debug build's numba cache (default: a new one in /tmp)")
    a = ap.parse_args(argv)
    if not 60 <= a.size <= 1514:
        ap.error("--size must be 60..1514")
    if os.environ.get("PVS_PROFILE_CHILD") == "1":
        return child(a)
    missing = [t for t in ("perf", "objdump", "nm") if shutil.which(t) is None]
    if missing:
        print(f"pvs-bench pmd-profile: needs {', '.join(missing)} (Debian: linux-perf, binutils)",
              file=sys.stderr)
        return 1
    a.out = os.path.abspath(a.out or tempfile.mkdtemp(prefix="pvs-pmd-profile-"))
    os.makedirs(a.out, exist_ok=True)
    env = dict(os.environ, PVS_PROFILE_CHILD="1", NUMBA_DEBUGINFO="1", NUMBA_BOUNDSCHECK="0",
               NUMBA_CACHE_DIR=os.path.join(a.out, "numba-cache"))
    args = ["--flows", a.flows, "--size", str(a.size), "--reps", str(a.reps), "--freq", str(a.freq),
            "--pmd-cpu", str(a.pmd_cpu), "--guest-cpu", str(a.guest_cpu), "--top", str(a.top), "--out", a.out]
    return subprocess.call([sys.executable, "-m", "pyvswitch.tools.bench.pmdprofile"] + args, env=env)


if __name__ == "__main__":
    sys.exit(main())
