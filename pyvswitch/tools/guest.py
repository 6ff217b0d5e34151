"""A tiny bootable QEMU guest from Debian packages, for vhost-user tests.

    python -m pyvswitch.tools.guest build            # prints kernel, initrd
    python -m pyvswitch.tools.guest run --sock PATH [--server] --ip 10.9.0.1/24 \\
        --ping 10.9.0.2 --count 5                     # one guest, serial on stdout

Nothing is installed into the host system: `apt-get download` fetches the
kernel package that `linux-image-amd64` depends on (e.g.
linux-image-6.1.0-56-amd64) and `busybox-static` into a cache directory
(default <repo>/.cache/guest, or $PVS_GUEST_CACHE), `dpkg-deb -x` unpacks them
into a scratch directory, and build() keeps only the kernel image and writes an
initramfs (cpio "newc", gzip, written here in Python) holding busybox, the
virtio-net / virtio-pci / failover / net_failover modules with their
dependencies (modules.dep when the tree has one, else each module's modinfo
`depends=`), loaded in dependency order, and /init (INIT below).

/init reads its orders from the kernel command line (see cmdline()):

    pvs.ip=ADDR/LEN   pvs.mac=MAC      address of eth0 (the MAC is QEMU's anyway)
    pvs.ping=IP       pvs.count=N      wait until IP answers (pvs.timeout=S, default 60),
                      pvs.interval=S   then ping it N times
    pvs.run=a,b,c                      run "a b c" (commas become spaces)
    pvs.stay=S                         stay up S seconds before powering off

and prints one line per step on the serial console, ending with

    PVS-RESULT ping peer=10.9.0.2 transmitted=5 received=5
    PVS-RESULT run rc=0
    PVS-POWEROFF

before `poweroff -f`. A second build() reuses the cached kernel and
initramfs; the initramfs is rebuilt (from the cached .deb files) when INIT or
the module list changes. A lock file serialises concurrent builds.

The kernel kept is the ELF inside the bzImage when it has a PVH entry
(pvh_vmlinux(): QEMU boots it without the decompressor, seconds faster under
TCG), else the bzImage.

qemu_argv() is the command line the tests use (and docs/port-vhost-user.md
shows): shared memfd guest memory (vhost-user needs it), one virtio-net-pci on
a vhost-user netdev, serial console to a file, KVM when /dev/kvm is backed by
VMX/SVM, else TCG (accel() says why). Under TCG the NIC gets vectors=0 (no
MSI-X): QEMU 7.2 segfaults in msix_set_vector_notifiers <- vhost_net_start
when a TCG guest starts a vhost-user virtio-net-pci with MSI-X (with DPDK's
vhost PMD as the back-end too).
"""

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

KERNEL_META = "linux-image-amd64"
BUSYBOX = "busybox-static"
MODULES = ("virtio_net", "virtio_pci", "failover", "net_failover")
QEMU = "qemu-system-x86_64"
BUILD_VERSION = 2            # bump when the initramfs layout changes

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say() { echo "$@" > /dev/console; }
finish() { say "PVS-POWEROFF"; sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }
for m in $(cat /lib/modules/order); do
    insmod /lib/modules/$m.ko 2>/tmp/insmod.err || say "PVS-ERROR insmod $m: $(cat /tmp/insmod.err)"
done
ip= mac= peer= count=5 interval=0.2 timeout=60 run= stay=0
for a in $(cat /proc/cmdline); do
    case "$a" in
        pvs.ip=*) ip=${a#pvs.ip=} ;;
        pvs.mac=*) mac=${a#pvs.mac=} ;;
        pvs.ping=*) peer=${a#pvs.ping=} ;;
        pvs.count=*) count=${a#pvs.count=} ;;
        pvs.interval=*) interval=${a#pvs.interval=} ;;
        pvs.timeout=*) timeout=${a#pvs.timeout=} ;;
        pvs.run=*) run=${a#pvs.run=} ;;
        pvs.stay=*) stay=${a#pvs.stay=} ;;
    esac
done
ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ]; do
    n=$((n + 1))
    if [ $n -gt 100 ]; then
        say "PVS-ERROR no eth0 after 10 s: $(ls /sys/class/net | tr '\n' ' ')"
        finish
    fi
    sleep 0.1
done
[ -n "$mac" ] && ip link set eth0 address "$mac"
[ -n "$ip" ] && ip addr add "$ip" dev eth0
ip link set eth0 up
say "PVS-READY eth0 ip=$ip mac=$(cat /sys/class/net/eth0/address) uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -n "$peer" ]; then
    t0=$(cut -d. -f1 /proc/uptime)
    until ping -c 1 -W 1 "$peer" >/dev/null 2>&1; do
        if [ $(($(cut -d. -f1 /proc/uptime) - t0)) -ge "$timeout" ]; then
            say "PVS-RESULT ping peer=$peer transmitted=0 received=0 error=no-reply-within-${timeout}s"
            finish
        fi
    done
    say "PVS-PEER-UP $peer after $(($(cut -d. -f1 /proc/uptime) - t0)) s"
    ping -c "$count" -i "$interval" -W 2 "$peer" > /tmp/ping.out 2>&1
    while read -r line; do say "  $line"; done < /tmp/ping.out
    tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/ping.out)
    rx=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)
    say "PVS-RESULT ping peer=$peer transmitted=${tx:-0} received=${rx:-0}"
fi
if [ -n "$run" ]; then
    cmd=$(echo "$run" | tr ',' ' ')
    say "PVS-RUN $cmd"
    sh -c "$cmd" > /dev/console 2>&1
    say "PVS-RESULT run rc=$?"
fi
[ "$stay" -gt 0 ] 2>/dev/null && sleep "$stay"
finish
"""


class GuestError(RuntimeError):
    """The guest cannot be built (the message says exactly why)."""


class Guest:
    def __init__(self, kernel, initrd, kver):
        self.kernel, self.initrd, self.kver = kernel, initrd, kver

    def __repr__(self):
        return f"Guest(kernel={self.kernel!r}, initrd={self.initrd!r}, kver={self.kver!r})"


def default_cache_dir():
    env = os.environ.get("PVS_GUEST_CACHE")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.exists(os.path.join(repo, "pyproject.toml")):
        return os.path.join(repo, ".cache", "guest")
    return os.path.join(os.path.expanduser("~"), ".cache", "pyvswitch", "guest")


# --- cpio "newc" ------------------------------------------------------------
def cpio_newc(entries):
    """The bytes of a cpio archive in the "newc" format (what the kernel's
    initramfs unpacker reads). entries: (name, mode, data, rdev) with `mode`
    including the file type bits (stat.S_IFREG | 0o755 ...); `data` is the
    file contents or the symlink target (bytes or str); rdev is (major, minor)
    for device nodes, else None. Owner root, mtime 0, inode numbers from 1."""
    out = io.BytesIO()

    def pad(n):
        out.write(b"\0" * (-n % 4))

    def entry(ino, name, mode, data, rdev):
        name_b = name.encode() + b"\0"
        data = data.encode() if isinstance(data, str) else (data or b"")
        major, minor = rdev or (0, 0)
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, major, minor, len(name_b), 0)
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(hdr + name_b)
        pad(len(hdr) + len(name_b))
        out.write(data)
        pad(len(data))

    for ino, (name, mode, data, rdev) in enumerate(entries, 1):
        entry(ino, name.lstrip("/"), mode, data, rdev)
    entry(0, "TRAILER!!!", 0, b"", None)
    return out.getvalue()


def parse_cpio_newc(blob):
    """[(name, mode, data, (rdevmajor, rdevminor))] of a newc archive (for tests)."""
    out, p = [], 0
    while True:
        if blob[p:p + 6] != b"070701":
            raise ValueError(f"bad cpio magic at {p}")
        f = [int(blob[p + 6 + 8 * i:p + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        p += 110
        name = blob[p:p + namesize - 1].decode()
        p += namesize + (-(110 + namesize) % 4)
        data = blob[p:p + filesize]
        p += filesize + (-filesize % 4)
        if name == "TRAILER!!!":
            return out
        out.append((name, f[1], data, (f[9], f[10])))


# --- kernel modules -----------------------------------------------------------
def _modinfo(data, key):
    m = re.search(rb"(?:^|\0)" + re.escape(key.encode()) + rb"=([^\0]*)\0", data)
    return m.group(1).decode() if m else None


def _read_module(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".zst"):
        r = subprocess.run(["zstd", "-dc", path], capture_output=True)
        if r.returncode != 0:
            raise GuestError(f"{path}: zstd-compressed and `zstd -dc` failed")
        return r.stdout
    if path.endswith(".gz"):
        return gzip.decompress(data)
    return data


def _modname(path):
    base = os.path.basename(path)
    return base.split(".ko")[0].replace("-", "_")


def resolve_modules(moddir, wanted):
    """[(name, path)] of the modules in `wanted` and everything they depend
    on, dependencies first. Built-in modules (modules.builtin) are skipped.
    Uses modules.dep when present, else the modinfo `depends=` fields."""
    builtin = set()
    bf = os.path.join(moddir, "modules.builtin")
    if os.path.exists(bf):
        with open(bf) as f:
            builtin = {_modname(line.strip()) for line in f if line.strip()}
    paths = {}
    for root, _, files in os.walk(os.path.join(moddir, "kernel")):
        for fn in files:
            if ".ko" in fn:
                paths.setdefault(_modname(fn), os.path.join(root, fn))
    deps = {}
    depfile = os.path.join(moddir, "modules.dep")
    if os.path.exists(depfile):
        with open(depfile) as f:
            for line in f:
                if ":" in line:
                    mod, rest = line.split(":", 1)
                    deps[_modname(mod)] = [_modname(d) for d in rest.split()]

    def depends(name):
        if name in deps:
            return deps[name]
        d = _modinfo(_read_module(paths[name]), "depends")
        return [x for x in (d or "").split(",") if x]

    order, seen = [], set()

    def visit(name, chain):
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        if name in chain:
            raise GuestError(f"module dependency loop: {' -> '.join(chain + [name])}")
        if name not in paths:
            raise GuestError(f"kernel module {name} not found under {moddir}")
        for d in depends(name):
            visit(d, chain + [name])
        seen.add(name)
        order.append((name, paths[name]))

    for w in wanted:
        visit(w, [])
    return order


# --- Debian packages ------------------------------------------------------------
def _run(cmd, what, cwd=None, timeout=600):
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise GuestError(f"{what}: {cmd[0]} not found (a Debian host is needed)") from None
    except subprocess.TimeoutExpired:
        raise GuestError(f"{what}: `{' '.join(cmd)}` took more than {timeout} s") from None
    if r.returncode != 0:
        raise GuestError(f"{what}: `{' '.join(cmd)}` failed ({r.returncode}): "
                         f"{(r.stderr or r.stdout).strip()[-600:]}")
    return r.stdout


def kernel_package(meta=KERNEL_META):
    """The versioned kernel package the meta-package depends on."""
    out = _run(["apt-cache", "depends", meta], f"resolving {meta}")
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    raise GuestError(f"`apt-cache depends {meta}` names no linux-image-* package "
                     "(run apt-get update?)")


def download(pkg, debdir):
    """The cached .deb of `pkg` (apt-get download into debdir when missing)."""
    os.makedirs(debdir, exist_ok=True)
    have = sorted(f for f in os.listdir(debdir) if f.startswith(pkg + "_") and f.endswith(".deb"))
    if have:
        return os.path.join(debdir, have[-1])
    tmp = tempfile.mkdtemp(dir=debdir, prefix=".dl-")
    try:
        os.chmod(tmp, 0o755)      # apt's _apt user may write there (else a warning only)
        _run(["apt-get", "download", "-q", pkg], f"downloading {pkg}", cwd=tmp)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if len(debs) != 1:
            raise GuestError(f"apt-get download {pkg} left {debs}")
        os.replace(os.path.join(tmp, debs[0]), os.path.join(debdir, debs[0]))
        return os.path.join(debdir, debs[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract(deb, dest):
    _run(["dpkg-deb", "-x", deb, dest], f"unpacking {os.path.basename(deb)}")


# --- the kernel image ------------------------------------------------------------
XEN_ELFNOTE_PHYS32_ENTRY = 18


def pvh_vmlinux(bzimage):
    """The uncompressed ELF kernel inside a bzImage when it has a PVH entry
    point (a Xen ELF note 18; Debian's CONFIG_PVH=y), else None. QEMU boots
    such an ELF directly (-kernel vmlinux): no real-mode set-up, no
    decompressor, which under TCG saves seconds per boot (xz is slow there)."""
    with open(bzimage, "rb") as f:
        data = f.read()
    payload = None
    for magic, unpack in ((b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)),
                          (b"\x1f\x8b\x08", lambda b: gzip.GzipFile(fileobj=io.BytesIO(b)).read())):
        i = data.find(magic, 0x200)
        if i < 0:
            continue
        try:
            payload = unpack(data[i:])
        except (lzma.LZMAError, OSError, EOFError):
            continue
        break
    if not payload or payload[:4] != b"\x7fELF" or not _has_pvh_note(payload):
        return None
    return payload


def _has_pvh_note(elf):
    """True if the 64-bit little-endian ELF has a PT_NOTE "Xen" note of type 18."""
    if elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for k in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + k * phentsize)
        if p_type != 4:                    # PT_NOTE
            continue
        q, end = p_offset, p_offset + p_filesz
        while q + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, q)
            name = elf[q + 12:q + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            q += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


# --- build ------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(cache):
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _recipe_hash(kpkg, bbdeb):
    h = hashlib.sha256()
    for part in (str(BUILD_VERSION), INIT, ",".join(MODULES), kpkg, os.path.basename(bbdeb)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:12]


def _manifest(cache):
    try:
        with open(os.path.join(cache, "guest.json")) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    if all(os.path.exists(os.path.join(cache, m.get(k, "\0"))) for k in ("kernel", "initrd")):
        return m
    return None


def build(cache_dir=None, kernel_pkg=None, rebuild=False, log=None):
    """A Guest (kernel and initramfs paths) from the cache, built when missing.

    With no kernel_pkg, an existing build whose recipe (INIT, modules) is
    current is reused without asking apt (works offline)."""
    cache = os.path.abspath(cache_dir or default_cache_dir())
    say = log or (lambda msg: None)
    with _locked(cache):
        m = _manifest(cache)
        if (m and not rebuild and (kernel_pkg is None or m["kernel_pkg"] == kernel_pkg)
                and m.get("recipe") == _recipe_hash(m["kernel_pkg"], m["busybox_deb"])):
            return Guest(os.path.join(cache, m["kernel"]), os.path.join(cache, m["initrd"]), m["kver"])
        kpkg = kernel_pkg or kernel_package()
        debdir = os.path.join(cache, "debs")
        say(f"guest: fetching {kpkg} and {BUSYBOX} into {debdir}")
        kdeb, bbdeb = download(kpkg, debdir), download(BUSYBOX, debdir)
        recipe = _recipe_hash(kpkg, bbdeb)
        scratch = tempfile.mkdtemp(dir=cache, prefix=".build-")
        try:
            say(f"guest: unpacking {os.path.basename(kdeb)}")
            _extract(kdeb, os.path.join(scratch, "k"))
            _extract(bbdeb, os.path.join(scratch, "bb"))
            boot = os.path.join(scratch, "k", "boot")
            images = sorted(f for f in os.listdir(boot) if f.startswith("vmlinuz-"))
            if not images:
                raise GuestError(f"{os.path.basename(kdeb)} holds no boot/vmlinuz-*")
            kver = images[-1][len("vmlinuz-"):]
            moddir = None
            for base in ("lib", "usr/lib"):
                d = os.path.join(scratch, "k", base, "modules", kver)
                if os.path.isdir(d):
                    moddir = d
            if moddir is None:
                raise GuestError(f"{os.path.basename(kdeb)} holds no modules for {kver}")
            mods = resolve_modules(moddir, MODULES)
            busybox = os.path.join(scratch, "bb", "bin", "busybox")
            with open(busybox, "rb") as f:
                bb = f.read()
            entries = [(d, stat.S_IFDIR | 0o755, b"", None)
                       for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules")]
            entries += [("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
                        ("dev/null", stat.S_IFCHR | 0o666, b"", (1, 3)),
                        ("bin/busybox", stat.S_IFREG | 0o755, bb, None),
                        ("bin/sh", stat.S_IFLNK | 0o777, "busybox", None),
                        ("init", stat.S_IFREG | 0o755, INIT, None),
                        ("lib/modules/order", stat.S_IFREG | 0o644,
                         "".join(n + "\n" for n, _ in mods), None)]
            entries += [(f"lib/modules/{n}.ko", stat.S_IFREG | 0o644, _read_module(p), None)
                        for n, p in mods]
            outdir = os.path.join(cache, kver)
            os.makedirs(outdir, exist_ok=True)
            kernel = os.path.join(outdir, "vmlinuz")
            shutil.copyfile(os.path.join(boot, images[-1]), kernel + ".tmp")
            os.replace(kernel + ".tmp", kernel)
            elf = pvh_vmlinux(kernel)
            if elf is not None:
                kernel = os.path.join(outdir, "vmlinux")
                with open(kernel + ".tmp", "wb") as f:
                    f.write(elf)
                os.replace(kernel + ".tmp", kernel)
            initrd = os.path.join(outdir, f"initrd-{recipe}.img")
            with open(initrd + ".tmp", "wb") as f:
                f.write(gzip.compress(cpio_newc(entries), compresslevel=6, mtime=0))
            os.replace(initrd + ".tmp", initrd)
            for old in os.listdir(outdir):
                if old.startswith("initrd-") and old != os.path.basename(initrd):
                    os.unlink(os.path.join(outdir, old))
            m = {"kernel_pkg": kpkg, "kver": kver, "busybox_deb": os.path.basename(bbdeb),
                 "modules": [n for n, _ in mods], "recipe": recipe,
                 "kernel": os.path.relpath(kernel, cache), "initrd": os.path.relpath(initrd, cache)}
            with open(os.path.join(cache, "guest.json.tmp"), "w") as f:
                json.dump(m, f, indent=1)
            os.replace(os.path.join(cache, "guest.json.tmp"), os.path.join(cache, "guest.json"))
            say(f"guest: built {kernel} and {initrd} (modules: {', '.join(m['modules'])})")
            return Guest(kernel, initrd, kver)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


# --- QEMU -------------------------------------------------------------------------
KVM_GET_API_VERSION = 0xAE00


def accel():
    """("kvm", why) when /dev/kvm opens, answers KVM_GET_API_VERSION = 12 and
    is backed by hardware virtualisation (kvm_intel or kvm_amd loaded), else
    ("tcg", why not). $PVS_GUEST_ACCEL=kvm|tcg overrides.

    A /dev/kvm without kvm_intel/kvm_amd is some other back-end: on a cloud
    VM without nested VMX it can be kvm_pvm (pagetable-based virtualisation),
    which runs only PVM-enabled guest kernels at speed; a stock Debian kernel
    there is emulated instruction by instruction (measured: still in the
    decompressor after 120 s), so TCG is far faster."""
    forced = os.environ.get("PVS_GUEST_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, f"PVS_GUEST_ACCEL={forced}"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "tcg", f"/dev/kvm: {e.strerror}"
    try:
        v = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as e:
        return "tcg", f"/dev/kvm: KVM_GET_API_VERSION: {e.strerror}"
    finally:
        os.close(fd)
    if v != 12:
        return "tcg", f"/dev/kvm: KVM_GET_API_VERSION = {v}, not 12"
    hw = [m for m in ("kvm_intel", "kvm_amd") if os.path.isdir(f"/sys/module/{m}")]
    if not hw:
        others = sorted(m for m in os.listdir("/sys/module") if m.startswith("kvm_"))
        return "tcg", ("/dev/kvm answers KVM_GET_API_VERSION = 12 but neither kvm_intel nor kvm_amd "
                       f"is loaded (KVM back-end modules: {', '.join(others) or 'none'}): "
                       "no hardware virtualisation for an unmodified guest kernel")
    return "kvm", f"/dev/kvm: KVM_GET_API_VERSION = 12 ({hw[0]})"


def qemu_problem(qemu=QEMU):
    """None when `qemu` runs and has what the vhost-user guest needs, else why not."""
    path = shutil.which(qemu)
    if path is None:
        return f"{qemu} not found (Debian package qemu-system-x86; scripts/install-deps.sh installs it)"
    try:
        v = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        n = subprocess.run([path, "-netdev", "help"], capture_output=True, text=True, timeout=30)
        o = subprocess.run([path, "-object", "help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{path} cannot run: {e}"
    if v.returncode != 0:
        return f"`{path} --version` failed ({v.returncode}): {(v.stderr or v.stdout).strip()[-300:]}"
    if "vhost-user" not in n.stdout:
        return f"{path} has no vhost-user netdev (`-netdev help`: {n.stdout.split()})"
    if "memory-backend-memfd" not in o.stdout:
        return f"{path} has no memory-backend-memfd object"
    return None


def cmdline(ip=None, mac=None, ping=None, count=None, interval=None, timeout=None, run=None,
            stay=None, extra=()):
    """The kernel command line for /init (see the module docstring)."""
    args = ["console=ttyS0", "panic=-1", "quiet"]
    for key, val in (("ip", ip), ("mac", mac), ("ping", ping), ("count", count),
                     ("interval", interval), ("timeout", timeout), ("stay", stay)):
        if val is not None:
            args.append(f"pvs.{key}={val}")
    if run:
        words = run.split() if isinstance(run, str) else list(run)
        if any("," in w for w in words):
            raise ValueError("pvs.run: words must not contain commas")
        args.append("pvs.run=" + ",".join(words))
    return " ".join(args + list(extra))


def qemu_argv(guest, sock, append, serial, mac, server=False, mem_mb=256, accel_name=None,
              name="pvs-guest", qemu=QEMU, queues=1, reconnect=None):
    """qemu-system-x86_64 arguments: one virtio-net-pci on vhost-user socket
    `sock` (QEMU listens when server=True: the switch's dpdkvhostuserclient
    port connects; else QEMU connects to the switch's dpdkvhostuser socket),
    shared memfd memory, serial console into the file `serial` ("stdio": on
    stdout). reconnect=N (client only): QEMU reconnects N seconds after the
    switch went away (QEMU 7.2 syntax; 9.2 and later: reconnect-ms)."""
    kind = accel_name or accel()[0]
    chardev = f"socket,id=c0,path={sock}" + (",server=on,wait=off" if server else "")
    if reconnect and not server:
        chardev += f",reconnect={reconnect}"
    argv = [qemu, "-name", name, "-nodefaults", "-nographic", "-no-user-config", "-no-reboot",
            "-machine", "pc", "-accel", kind]
    if kind == "kvm":
        argv += ["-cpu", "host"]
    argv += ["-smp", "1", "-m", str(mem_mb),
             "-object", f"memory-backend-memfd,id=mem,size={mem_mb}M,share=on",
             "-numa", "node,memdev=mem",
             "-kernel", guest.kernel, "-initrd", guest.initrd, "-append", append,
             "-serial", f"file:{serial}" if serial != "stdio" else "stdio",
             "-chardev", chardev,
             "-netdev", f"vhost-user,id=n0,chardev=c0,queues={queues}",
             "-device", f"virtio-net-pci,netdev=n0,mac={mac},romfile=" + (",vectors=0" if kind == "tcg" else "")]
    return argv


def parse_serial(text):
    """{"ready": bool, "ping": {peer, transmitted, received, error} or None,
    "run_rc": int or None, "poweroff": bool, "errors": [lines]} from a serial log."""
    out = {"ready": "PVS-READY" in text, "ping": None, "run_rc": None,
           "poweroff": "PVS-POWEROFF" in text, "errors": []}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"PVS-RESULT ping peer=(\S+) transmitted=(\d+) received=(\d+)(?: error=(\S+))?", line)
        if m:
            out["ping"] = {"peer": m.group(1), "transmitted": int(m.group(2)),
                           "received": int(m.group(3)), "error": m.group(4)}
        m = re.match(r"PVS-RESULT run rc=(\d+)", line)
        if m:
            out["run_rc"] = int(m.group(1))
        if line.startswith("PVS-ERROR") or "Kernel panic" in line:
            out["errors"].append(line)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pyvswitch.tools.guest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help="cache directory (default: %(default)s)", default=default_cache_dir())
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="fetch packages and build kernel + initramfs (cached)")
    b.add_argument("--kernel-pkg", help="a linux-image-* package (default: what linux-image-amd64 depends on)")
    b.add_argument("--rebuild", action="store_true")
    r = sub.add_parser("run", help="run one guest on a vhost-user socket, serial on stdout")
    r.add_argument("--sock", required=True, help="vhost-user socket path")
    r.add_argument("--server", action="store_true", help="QEMU listens (switch port type dpdkvhostuserclient)")
    r.add_argument("--ip", required=True, help="e.g. 10.9.0.1/24")
    r.add_argument("--mac", default="52:54:00:00:00:01")
    r.add_argument("--ping", help="peer IP to ping")
    r.add_argument("--count", type=int, default=5)
    r.add_argument("--stay", type=int, help="seconds to stay up at the end")
    r.add_argument("--run", help="a command for the guest's shell (no commas)")
    r.add_argument("--reconnect", type=int, help="client only: reconnect N s after the switch went away")
    r.add_argument("--mem", type=int, default=256, help="MiB")
    r.add_argument("--accel", choices=("kvm", "tcg"))
    r.add_argument("--print", action="store_true", help="print the QEMU command line only")
    a = ap.parse_args(argv)
    try:
        g = build(a.cache, getattr(a, "kernel_pkg", None), getattr(a, "rebuild", False),
                  log=lambda s: print(s, file=sys.stderr))
    except GuestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if a.cmd == "build":
        print(f"kernel {g.kernel}\ninitrd {g.initrd}")
        return 0
    append = cmdline(ip=a.ip, mac=a.mac, ping=a.ping, count=a.count if a.ping else None,
                     stay=a.stay, run=a.run)
    argv_ = qemu_argv(g, a.sock, append, "stdio", a.mac, server=a.server, mem_mb=a.mem,
                      accel_name=a.accel, reconnect=a.reconnect)
    if a.print:
        print(" ".join(f"'{x}'" if " " in x or x == "" else x for x in argv_))
        return 0
    os.execvp(argv_[0], argv_)


if __name__ == "__main__":
    sys.exit(main())
