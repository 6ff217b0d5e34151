"""libc calls that compiled kernels make (and Python may make too).

numba calls ctypes functions with declared argtypes in nopython mode. Pointer
arguments are declared as c_ssize_t so a kernel can pass `arr.ctypes.data +
offset` (an integer); on x86-64 and aarch64 the ABI passes both in the same
register. errno is read back with `get_errno()` from Python only.
"""

import ctypes

_libc = ctypes.CDLL(None, use_errno=True)


def _fn(name, restype, *argtypes):
    f = getattr(_libc, name)
    f.argtypes = list(argtypes)
    f.restype = restype
    return f


_I, _SZ, _SSZ = ctypes.c_int, ctypes.c_size_t, ctypes.c_ssize_t

c_read = _fn("read", _SSZ, _I, _SSZ, _SZ)            # read(fd, buf, n)
c_write = _fn("write", _SSZ, _I, _SSZ, _SZ)          # write(fd, buf, n)
c_send = _fn("send", _SSZ, _I, _SSZ, _SZ, _I)        # send(fd, buf, n, flags)
c_recv = _fn("recv", _SSZ, _I, _SSZ, _SZ, _I)        # recv(fd, buf, n, flags)
c_ppoll = _fn("ppoll", _I, _SSZ, _SZ, _SSZ, _SSZ)    # ppoll(fds, nfds, timespec*, sigmask*)
c_usleep = _fn("usleep", _I, ctypes.c_uint)

MSG_DONTWAIT = 0x40
POLLIN = 0x1
EAGAIN = 11


def get_errno():
    return ctypes.get_errno()
