"""Little-endian loads and stores of 16/32/64-bit fields at byte offsets of a
uint8 array, for the virtqueue kernels.

Why not `mem.view(np.uint16)`: in numba a view costs ~33 ns each time it is
made (measured), several per packet; and ring fields shared with the guest
need single (untorn) 16-bit atomic loads and stores. These helpers compile to
one (unaligned-capable) load or store through a bitcast pointer:

    ld16(m, off) / ld32(m, off) -> int64 (zero-extended); ld64(m, off) -> int64
    st16(m, off, v) / st32(m, off, v)
    ld16_acquire(m, off)        load atomic i16 acquire (avail.idx)
    ld16_relaxed(m, off)        load atomic i16 monotonic (flags, used_event)
    st16_release(m, off, v)     store atomic i16 release (used.idx)

Offsets are not checked here: callers check them (ring offsets come from the
control thread, already validated). With PVS_JIT=0 the Python bodies run.
"""

import numpy as np

from pyvswitch.core.jit import JIT


def _ld(m, off, n):
    v = 0
    for k in range(n - 1, -1, -1):
        v = (v << 8) | int(m[off + k])
    return v


def ld16(m, off):
    return _ld(m, off, 2)


def ld32(m, off):
    return _ld(m, off, 4)


def ld64(m, off):
    v = _ld(m, off, 8)
    return v - (1 << 64) if v >= 1 << 63 else v


def ld16_acquire(m, off):
    return _ld(m, off, 2)


def ld16_relaxed(m, off):
    return _ld(m, off, 2)


def _st(m, off, v, n):
    v = int(v)
    for k in range(n):
        m[off + k] = (v >> (8 * k)) & 0xFF


def st16(m, off, v):
    _st(m, off, v, 2)


def st32(m, off, v):
    _st(m, off, v, 4)


def st16_release(m, off, v):
    _st(m, off, v, 2)


def st64(m, off, v):
    _st(m, off, v, 8)


def cw(m, word):
    """Control word `word` (int64 at byte 8 * word)."""
    return ld64(m, 8 * word)


def cset(m, word, v):
    st64(m, 8 * word, v)


def cadd(m, word, v):
    st64(m, 8 * word, ld64(m, 8 * word) + v)


if JIT:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload

    def _ptr(context, builder, arrty, arr, idx, idxty, bits):
        ary = context.make_array(arrty)(context, builder, arr)
        i = context.cast(builder, idx, idxty, types.intp)
        p = cgutils.get_item_pointer(context, builder, arrty, ary, [i], wraparound=False)
        return builder.bitcast(p, ir.IntType(bits).as_pointer())

    def _load(bits, order, signed):
        def impl(typingctx, arr, off):
            def codegen(context, builder, sig, args):
                p = _ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], bits)
                if order is None:
                    v = builder.load(p, align=1)
                else:
                    v = builder.load_atomic(p, order, bits // 8)
                if bits == 64:
                    return v
                return builder.sext(v, ir.IntType(64)) if signed else builder.zext(v, ir.IntType(64))
            return types.int64(arr, off), codegen
        return intrinsic(impl)

    def _store(bits, order):
        def impl(typingctx, arr, off, val):
            def codegen(context, builder, sig, args):
                p = _ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], bits)
                v = context.cast(builder, args[2], sig.args[2], types.int64)
                v = builder.trunc(v, ir.IntType(bits)) if bits < 64 else v
                if order is None:
                    builder.store(v, p, align=1)
                else:
                    builder.store_atomic(v, p, order, bits // 8)
                return context.get_dummy_value()
            return types.void(arr, off, val), codegen
        return intrinsic(impl)

    _IMPLS = {ld16: _load(16, None, False), ld32: _load(32, None, False),
              ld64: _load(64, None, True), ld16_acquire: _load(16, "acquire", False),
              ld16_relaxed: _load(16, "monotonic", False), st16: _store(16, None),
              st32: _store(32, None), st16_release: _store(16, "release"),
              st64: _store(64, None)}

    def _bind(pyfn, intr):
        nargs = pyfn.__code__.co_argcount
        if nargs == 2:
            def typer(m, off):
                return lambda m, off: intr(m, off)
        else:
            def typer(m, off, v):
                return lambda m, off, v: intr(m, off, v)
        overload(pyfn, inline="always")(typer)

    for _f, _i in _IMPLS.items():
        _bind(_f, _i)

    from numba import njit as _njit
    cw = _njit(inline="always")(cw)
    cset = _njit(inline="always")(cset)
    cadd = _njit(inline="always")(cadd)

_unused = np
