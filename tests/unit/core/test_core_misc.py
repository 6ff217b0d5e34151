import io
import os

import numpy as np

from pyvswitch.core import vlog
from pyvswitch.core.clock import ManualClock
from pyvswitch.core.pool import HEADROOM, Pool, data_size_for_mtu
from pyvswitch.core.shm import Arena, arena_name


def test_arena_views_share_memory(tmp_path):
    a = Arena("t", 10000, rundir=str(tmp_path))
    x = a.alloc(np.int64, (4,))
    y = a.alloc(np.uint8, (100,))
    x[:] = 7
    assert a.kind in ("memfd", "hugetlbfs")
    assert x.ctypes.data % 64 == 0 and y.ctypes.data % 64 == 0
    # the fd maps the same bytes
    import mmap
    mm = mmap.mmap(a.fd, a.size)
    assert np.frombuffer(mm, np.int64, 1)[0] == 7
    del mm
    a.close()


def test_arena_names_unique_per_daemon(tmp_path):
    n1 = arena_name("pool", str(tmp_path / "a"))
    n2 = arena_name("pool", str(tmp_path / "b"))
    assert n1 != n2 and str(os.getpid()) in n1


def test_pool_layout():
    p = Pool(64)
    assert p.buf.shape == (64, HEADROOM + 2048)
    assert data_size_for_mtu(9000) >= 9000 + 18
    parts = p.partition(3)
    assert sum(f.count for f in parts) == 64
    assert sorted(np.concatenate([f.slots for f in parts]).tolist()) == list(range(64))


def test_manual_clock():
    c = ManualClock(start=5)
    assert c.now() == 5
    c.advance(1.5)
    assert c.now_ns() == 6_500_000_000


def test_vlog_levels_and_format():
    out = io.StringIO()
    vlog.set_console(out)
    vlog.set_clock(ManualClock(wall_start=1795248000.123))
    log = vlog.Module("unit_mod")
    log.info("hidden")
    assert out.getvalue() == ""
    assert vlog.set_levels("unit_mod:console:dbg") == ""
    log.dbg("x=%d", 3)
    line = out.getvalue().strip()
    assert line.endswith("|unit_mod|DBG|x=3")
    assert line.startswith("2026-11-21T08:00:00.123Z|")
    assert "unit_mod           DBG" in vlog.list_levels()
    assert vlog.set_levels("bogus:file:info").startswith("unknown")
    vlog.set_levels("unit_mod:console:off")
    log.emer("no")
    assert out.getvalue().count("\n") == 1
    vlog.set_console(None)
    vlog.set_clock(__import__("pyvswitch.core.clock").core.clock.SYSTEM)


def test_kernel_cache_key_covers_imported_constants():
    """hash_key reads KEY_WORDS, an int imported from layout.py: a change of
    layout.py must invalidate its cached machine code."""
    from pyvswitch.core.jit import deps_stamp
    from pyvswitch.datapath.kernels.hash import hash_key
    files = [f for f, _, _ in deps_stamp(hash_key)]
    assert any(f.endswith("datapath/layout.py") for f in files)
    assert any(f.endswith("datapath/kernels/hash.py") for f in files)
