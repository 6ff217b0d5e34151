"""pyvswitch/tools/guest.py without QEMU or apt: the cpio writer, module
resolution, the PVH kernel extraction, command lines, serial parsing, the cache."""

import gzip
import json
import lzma
import os
import stat
import struct
import subprocess

import pytest

from pyvswitch.tools import guest as G


def test_cpio_newc_bytes_of_one_file():
    blob = G.cpio_newc([("/a", stat.S_IFREG | 0o644, b"hi", None)])
    hdr = b"070701" + b"".join(b"%08X" % v for v in (1, 0o100644, 0, 0, 1, 0, 2, 0, 0, 0, 0, 2, 0))
    assert blob.startswith(hdr + b"a\0" + b"hi\0\0")         # 110 + 2 is aligned; data padded to 4
    trailer = b"070701" + b"".join(b"%08X" % v for v in (0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0))
    assert blob[len(hdr) + 6:] == trailer + b"TRAILER!!!\0" + b"\0" * (-(110 + 11) % 4)
    assert len(blob) % 4 == 0


def test_cpio_newc_round_trip_and_alignment():
    entries = [("bin", stat.S_IFDIR | 0o755, b"", None),
               ("bin/busybox", stat.S_IFREG | 0o755, bytes(range(256)) * 3 + b"x", None),
               ("bin/sh", stat.S_IFLNK | 0o777, "busybox", None),
               ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
               ("init", stat.S_IFREG | 0o755, "#!/bin/sh\n", None),
               ("odd-name-length", stat.S_IFREG | 0o644, b"abc", None)]
    blob = G.cpio_newc(entries)
    back = G.parse_cpio_newc(blob)
    assert [(n, m) for n, m, _, _ in back] == [(n, m) for n, m, _, _ in entries]
    assert back[1][2] == entries[1][2] and back[2][2] == b"busybox" and back[4][2] == b"#!/bin/sh\n"
    assert back[3][3] == (5, 1)
    p = 0
    while p < len(blob):          # every header starts 4-aligned
        assert p % 4 == 0 and blob[p:p + 6] == b"070701"
        namesize, filesize = int(blob[p + 94:p + 102], 16), int(blob[p + 54:p + 62], 16)
        if blob[p + 110:p + 110 + namesize - 1] == b"TRAILER!!!":
            break
        p += 110 + namesize
        p += -p % 4
        p += filesize
        p += -p % 4


def _ko(path, depends):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x7fELF junk\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=6.1\0")


def _tree(tmp_path):
    m = tmp_path / "lib" / "modules" / "6.1.0-test"
    _ko(str(m / "kernel/drivers/net/virtio_net.ko"), "virtio_ring,virtio,net_failover")
    _ko(str(m / "kernel/drivers/net/net_failover.ko"), "failover")
    _ko(str(m / "kernel/net/core/failover.ko"), "")
    _ko(str(m / "kernel/drivers/virtio/virtio_ring.ko"), "")
    _ko(str(m / "kernel/drivers/virtio/virtio.ko"), "")
    _ko(str(m / "kernel/drivers/virtio/virtio_pci.ko"), "virtio_ring,virtio_pci-modern-dev,virtio")
    _ko(str(m / "kernel/drivers/virtio/virtio_pci_modern_dev.ko"), "")
    return str(m)


def test_resolve_modules_from_modinfo_dependencies_first(tmp_path):
    moddir = _tree(tmp_path)
    order = [n for n, _ in G.resolve_modules(moddir, G.MODULES)]
    assert sorted(order) == sorted(["virtio_net", "virtio_ring", "virtio", "net_failover", "failover",
                                    "virtio_pci", "virtio_pci_modern_dev"])
    assert len(order) == len(set(order))
    for mod, dep in [("virtio_net", "virtio_ring"), ("virtio_net", "net_failover"),
                     ("net_failover", "failover"), ("virtio_pci", "virtio_pci_modern_dev")]:
        assert order.index(dep) < order.index(mod)


def test_resolve_modules_prefers_modules_dep_and_skips_builtin(tmp_path):
    moddir = _tree(tmp_path)
    with open(os.path.join(moddir, "modules.dep"), "w") as f:
        f.write("kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko\n"
                "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
                "kernel/net/core/failover.ko:\n")
    with open(os.path.join(moddir, "modules.builtin"), "w") as f:
        f.write("kernel/net/core/failover.ko\n")
    assert [n for n, _ in G.resolve_modules(moddir, ["virtio_net"])] == ["net_failover", "virtio_net"]


def test_resolve_modules_errors(tmp_path):
    moddir = _tree(tmp_path)
    with pytest.raises(G.GuestError, match="e1000 not found"):
        G.resolve_modules(moddir, ["e1000"])
    _ko(os.path.join(moddir, "kernel/a.ko"), "b")
    _ko(os.path.join(moddir, "kernel/b.ko"), "a")
    with pytest.raises(G.GuestError, match="loop"):
        G.resolve_modules(moddir, ["a"])


def test_resolve_modules_reads_xz_modules(tmp_path):
    m = tmp_path / "mods"
    (m / "kernel").mkdir(parents=True)
    (m / "kernel" / "x.ko.xz").write_bytes(lzma.compress(b"\0depends=y\0"))
    (m / "kernel" / "y.ko").write_bytes(b"\0depends=\0")
    assert [n for n, _ in G.resolve_modules(str(m), ["x"])] == ["y", "x"]


def _elf_with_note(name, ntype):
    desc = struct.pack("<I", 0x1000000)
    n = name + b"\0"
    note = struct.pack("<III", len(n), len(desc), ntype) + n + b"\0" * (-len(n) % 4) + desc
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, 64)                  # e_phoff
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)              # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(note), len(note), 4)
    return bytes(ehdr) + phdr + note


def test_pvh_vmlinux_extracts_the_elf_with_a_pvh_note(tmp_path):
    elf = _elf_with_note(b"Xen", 18)
    assert G._has_pvh_note(elf)
    assert not G._has_pvh_note(_elf_with_note(b"Xen", 5))
    assert not G._has_pvh_note(_elf_with_note(b"GNU", 18))
    for comp in (lzma.compress, gzip.compress):
        bz = tmp_path / "vmlinuz"
        bz.write_bytes(b"\0" * 0x400 + b"HdrS" + comp(elf) + b"\0" * 64)
        assert G.pvh_vmlinux(str(bz)) == elf
    bz.write_bytes(b"\0" * 0x400 + lzma.compress(_elf_with_note(b"Xen", 5)))
    assert G.pvh_vmlinux(str(bz)) is None


def test_cmdline_and_parse_serial():
    c = G.cmdline(ip="10.0.0.1/24", mac="52:54:00:00:00:01", ping="10.0.0.2", count=3,
                  run=["ip", "addr"])
    assert "console=ttyS0" in c and "pvs.ip=10.0.0.1/24" in c and "pvs.ping=10.0.0.2" in c
    assert "pvs.count=3" in c and "pvs.run=ip,addr" in c and "pvs.stay" not in c
    with pytest.raises(ValueError):
        G.cmdline(run="echo a,b")
    text = ("SeaBIOS\nPVS-READY eth0 ip=10.0.0.1/24 mac=52:54:00:00:00:01 uptime=3.1\n"
            "PVS-RESULT ping peer=10.0.0.2 transmitted=3 received=2\nPVS-RESULT run rc=0\nPVS-POWEROFF\n")
    r = G.parse_serial(text)
    assert r["ready"] and r["poweroff"] and r["run_rc"] == 0 and not r["errors"]
    assert r["ping"] == {"peer": "10.0.0.2", "transmitted": 3, "received": 2, "error": None}
    r = G.parse_serial("PVS-RESULT ping peer=1.2.3.4 transmitted=0 received=0 error=no-reply-within-60s\n"
                       "PVS-ERROR insmod virtio_net: x\n")
    assert r["ping"]["error"] == "no-reply-within-60s" and len(r["errors"]) == 1 and not r["ready"]


def test_init_script_is_valid_shell():
    if not os.path.exists("/bin/sh"):
        pytest.skip("no /bin/sh")
    r = subprocess.run(["/bin/sh", "-n"], input=G.INIT, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr


def test_qemu_argv_shared_memory_and_vhost_user():
    g = G.Guest("/k", "/i", "6.1")
    a = G.qemu_argv(g, "/s", "console=ttyS0", "/log", "52:54:00:00:00:09", server=True, accel_name="tcg")
    s = " ".join(a)
    assert "memory-backend-memfd,id=mem,size=256M,share=on" in s and "node,memdev=mem" in s
    assert "socket,id=c0,path=/s,server=on,wait=off" in s and "vhost-user,id=n0,chardev=c0" in s
    assert "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:09,romfile=,vectors=0" in s
    assert a[a.index("-accel") + 1] == "tcg" and "-cpu" not in a
    k = G.qemu_argv(g, "/s", "x", "/log", "52:54:00:00:00:09", accel_name="kvm")
    assert "server=on" not in " ".join(k) and k[k.index("-cpu") + 1] == "host"
    assert not any("vectors=0" in x for x in k)


def test_accel_override(monkeypatch):
    monkeypatch.setenv("PVS_GUEST_ACCEL", "tcg")
    assert G.accel()[0] == "tcg"
    monkeypatch.delenv("PVS_GUEST_ACCEL")
    kind, why = G.accel()
    assert kind in ("kvm", "tcg") and why


def test_build_reuses_the_cache_without_apt(tmp_path, monkeypatch):
    def no_apt(*a, **k):
        raise AssertionError("apt must not run on a cache hit")
    monkeypatch.setattr(G, "_run", no_apt)
    d = tmp_path / "6.1.0-x"
    d.mkdir()
    (d / "vmlinux").write_bytes(b"k")
    (d / "initrd-1.img").write_bytes(b"i")
    bb = "busybox-static_1_amd64.deb"
    (tmp_path / "guest.json").write_text(json.dumps({
        "kernel_pkg": "linux-image-6.1.0-x-amd64", "kver": "6.1.0-x", "busybox_deb": bb,
        "recipe": G._recipe_hash("linux-image-6.1.0-x-amd64", bb),
        "kernel": "6.1.0-x/vmlinux", "initrd": "6.1.0-x/initrd-1.img"}))
    g = G.build(str(tmp_path))
    assert g.kernel == str(d / "vmlinux") and g.initrd == str(d / "initrd-1.img") and g.kver == "6.1.0-x"
    # a stale recipe (INIT changed) means a rebuild, which needs apt
    m = json.loads((tmp_path / "guest.json").read_text())
    m["recipe"] = "stale"
    (tmp_path / "guest.json").write_text(json.dumps(m))
    with pytest.raises(AssertionError, match="apt must not run"):
        G.build(str(tmp_path))
