"""libc calls that compiled kernels make.

Compiled kernels call libc through numba ExternalFunction declarations: the
symbol is bound by name when the kernel is linked, so kernels that make
system calls still hit numba's on-disk cache (a ctypes function pointer is a
"dynamic global" that disables caching and costs a recompile at every start).
With PVS_JIT=0 the same names are ctypes functions, so the kernels' Python
bodies run unchanged. Pointer arguments are integers (`arr.ctypes.data +
offset`); integer arguments are converted to the declared C types.

Only kernels call these; Python code uses the os/socket modules.
"""

import ctypes

from pyvswitch.core.jit import JIT

MSG_DONTWAIT = 0x40
POLLIN = 0x1
EAGAIN = 11

# name: (restype, argtypes) in ctypes terms; pointers are c_ssize_t
_SIGNATURES = {
    "read": (ctypes.c_ssize_t, (ctypes.c_int, ctypes.c_ssize_t, ctypes.c_size_t)),
    "write": (ctypes.c_ssize_t, (ctypes.c_int, ctypes.c_ssize_t, ctypes.c_size_t)),
    "send": (ctypes.c_ssize_t, (ctypes.c_int, ctypes.c_ssize_t, ctypes.c_size_t, ctypes.c_int)),
    "recv": (ctypes.c_ssize_t, (ctypes.c_int, ctypes.c_ssize_t, ctypes.c_size_t, ctypes.c_int)),
    "ppoll": (ctypes.c_int, (ctypes.c_ssize_t, ctypes.c_size_t, ctypes.c_ssize_t, ctypes.c_ssize_t)),
    "usleep": (ctypes.c_int, (ctypes.c_uint,)),
}


def _ctypes_fn(name):
    restype, argtypes = _SIGNATURES[name]
    f = getattr(ctypes.CDLL(None, use_errno=True), name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


def _external_fn(name):
    from numba import types
    conv = {ctypes.c_int: types.int32, ctypes.c_uint: types.uint32,
            ctypes.c_ssize_t: types.intp, ctypes.c_size_t: types.uintp}
    restype, argtypes = _SIGNATURES[name]
    return types.ExternalFunction(name, conv[restype](*[conv[a] for a in argtypes]))


_make = _external_fn if JIT else _ctypes_fn

c_read = _make("read")
c_write = _make("write")
c_send = _make("send")
c_recv = _make("recv")
c_ppoll = _make("ppoll")
c_usleep = _make("usleep")
