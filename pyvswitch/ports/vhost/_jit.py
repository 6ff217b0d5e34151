"""`hot`: the decorator of the vhost kernels - pyvswitch.core.jit.kernel
compiled without numba's reference counting (NRT). With NRT every call of a
helper that takes arrays does an atomic incref/decref per array (measured
here: rx_burst 90 ns and tx_one 295 ns per packet with NRT, see the commit
log); these kernels never allocate, so they need none. Uses core.jit's
`kernel(nrt=False)` when it has that option, else the same thing locally.
"""

from pyvswitch.core import jit as _jit


def _make():
    try:
        return _jit.kernel(nrt=False)
    except TypeError:
        pass
    if not _jit.JIT:
        return _jit.kernel
    import numba

    def hot(fn):
        disp = numba.njit(nogil=True, cache=True, _nrt=False)(fn)
        disp._cache = _jit._DepsCache(disp.py_func)
        return disp
    return hot


hot = _make()
