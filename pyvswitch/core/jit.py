"""The one decorator for compiled kernels.

`kernel` compiles a module-level function with numba (nopython, nogil, cached)
so PMD threads run it without the GIL. With PVS_JIT=0 it returns the function
unchanged: the kernel then runs as plain Python (slow, but the same code), which
is how the test suite checks kernels against their reference twins without a
compiler, and the fallback when numba is unavailable.

Kernels must be defined at module level: a kernel built inside a factory
function never hits numba's on-disk cache (datapath-feasibility.md, sec. 1).
"""

import os

JIT = os.environ.get("PVS_JIT", "1") != "0"

if JIT:
    import numba

    def kernel(fn):
        return numba.njit(nogil=True, cache=True)(fn)
else:
    def kernel(fn):
        return fn


def py_func(fn):
    """The interpreted body of a kernel (the function itself when JIT is off)."""
    return getattr(fn, "py_func", fn)
