"""The intrinsics emit the LLVM the design relies on, and behave in Python."""

import threading
import time

import numpy as np
import pytest

from pyvswitch.core import intrinsics as I
from pyvswitch.core.jit import JIT, kernel


@kernel
def _ordering(a):
    x = I.load_acquire(a, 0)
    I.store_release(a, 1, x + 1)
    I.fence_acquire()
    I.fence_release()
    I.fence_seq_cst()
    I.compiler_barrier()
    return x + I.load_relaxed(a, 2)


@kernel
def _or_copy(a, dst, src, n):
    I.atomic_or(a, 3, np.int64(4))         # result unused: stays one atomicrmw
    I.memcpy_u8(dst, 2, src, 1, n)


@kernel
def _cycles():
    return I.rdtsc()


@kernel
def _spin(flag, limit):
    # The hoisting trap: without an atomic load this loop never ends.
    n = 0
    while I.load_acquire(flag, 0) == 0:
        n += 1
        if n == limit:
            break
    return n


def _ir(disp, *args):
    # A fresh, uncached compile: cached code carries no IR to inspect.
    import numba
    fresh = numba.njit(nogil=True)(disp.py_func)
    fresh(*args)
    return "\n".join(fresh.inspect_llvm().values())


def _run_all():
    a = np.zeros(8, np.int64)
    a[0] = 5
    a[2] = 7
    assert _ordering(a) == 12 and a[1] == 6
    src = np.arange(16, dtype=np.uint8)
    dst = np.zeros(16, np.uint8)
    _or_copy(a, dst, src, 5)
    assert a[3] == 4 and list(dst[2:7]) == [1, 2, 3, 4, 5] and dst[7] == 0
    t0 = _cycles()
    assert _cycles() >= t0 > 0


def test_behaviour():
    _run_all()
    assert I.read_tsc() > 0


def test_python_fallbacks():
    a = np.zeros(4, np.uint64)
    I.store_release(a, 1, np.uint64(3))
    assert I.load_acquire(a, 1) == 3 and I.load_relaxed(a, 1) == 3
    assert I.atomic_or(a, 1, np.uint64(4)) == 3 and a[1] == 7
    b = np.zeros(8, np.uint8)
    I.memcpy_u8(b, 4, np.arange(8, dtype=np.uint8), 0, 3)
    assert list(b) == [0, 0, 0, 0, 0, 1, 2, 0]
    I.fence_seq_cst(); I.fence_acquire(); I.fence_release(); I.compiler_barrier()
    assert I.rdtsc() > 0


@pytest.mark.skipif(not JIT, reason="IR only exists when compiled")
def test_llvm_ir():
    ir = _ir(_ordering, np.zeros(4, np.int64))
    assert "load atomic i64" in ir and " acquire" in ir
    assert "store atomic i64" in ir and " release" in ir
    assert "fence seq_cst" in ir
    assert "monotonic" in ir                      # load_relaxed
    assert 'asm sideeffect ""' in ir
    ir2 = _ir(_or_copy, np.zeros(4, np.int64), np.zeros(8, np.uint8), np.zeros(8, np.uint8), 3)
    assert "atomicrmw or" in ir2
    assert "llvm.memcpy" in ir2
    assert "readcyclecounter" in _ir(_cycles)


def test_poll_loop_sees_other_thread():
    flag = np.zeros(1, np.int64)
    _spin(flag, 1000)                           # compile first
    flag[0] = 0
    t = threading.Timer(0.05, lambda: I.store_release(flag, 0, 1))
    start = time.monotonic()
    t.start()
    n = _spin(flag, -1)                          # -1: no limit, only the flag ends it
    t.join()
    assert flag[0] == 1 and n > 0
    assert time.monotonic() - start < 5


@kernel(nrt=False)
def _views(tab):
    a = I.view_i64(tab[0], 4)
    b = I.view_u8(tab[1], tab[2])
    a[1] += 7
    b[2] = 9
    return a[0] + b.shape[0]


def test_views_from_addresses():
    x = np.arange(4, dtype=np.int64)
    y = np.zeros(5, np.uint8)
    tab = np.array([x.ctypes.data, y.ctypes.data, 5], np.int64)
    assert _views(tab) == 5 and x[1] == 8 and y[2] == 9
    assert list(I.view_i64_py(x.ctypes.data, 4)) == [0, 8, 2, 3]
    assert I.view_u8_py(y.ctypes.data, 5)[2] == 9


@kernel
def _prefetches(a, i):
    I.prefetch(a, i)
    I.prefetch_w(a, i)
    return a[0]


def test_prefetch_is_a_hint_that_never_faults():
    """Kernels prefetch at indexes a guest chose (checked only on use): far
    outside the array, even in unmapped memory, nothing happens."""
    a = np.arange(4, dtype=np.int64)
    for i in (0, 3, 4, -1, 1 << 40, -(1 << 40)):
        assert _prefetches(a, i) == 0
    assert list(a) == [0, 1, 2, 3]


@pytest.mark.skipif(not JIT, reason="IR only exists when compiled")
def test_prefetch_ir():
    ir = _ir(_prefetches, np.zeros(4, np.int64), 1)
    assert "llvm.prefetch" in ir and ", i32 0, i32 3, i32 1)" in ir and ", i32 1, i32 3, i32 1)" in ir


@kernel
def _mum(a, b):
    return I.mum(a, b)


def test_mum_is_the_folded_128_bit_product():
    """Compiled and in Python: high half XOR low half of a * b."""
    m = (1 << 64) - 1
    for a, b in ((0, 0), (1, 1), (m, m), (m, 2), (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9), (1 << 63, 3)):
        p = a * b
        want = (p >> 64) ^ (p & m)
        assert int(_mum(np.uint64(a), np.uint64(b))) == want
        assert int(I.mum(np.uint64(a), np.uint64(b))) == want


@pytest.mark.skipif(not JIT, reason="IR only exists when compiled")
def test_mum_ir():
    ir = _ir(_mum, np.uint64(3), np.uint64(5))
    assert "mul i128" in ir or "mul nuw i128" in ir
