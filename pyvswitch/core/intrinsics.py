"""Atomics, fences, memcpy and the cycle counter for kernels and for Python.

numba has no atomics, and LLVM hoists a plain load of shared memory out of a
poll loop (the loop then never sees the other thread's write: measured in
datapath-feasibility.md sec. 3). Every word shared between threads is read
with load_acquire/load_relaxed and written with store_release.

Each helper is a plain Python function (used as is when PVS_JIT=0, and by
Python code such as test injectors: under the GIL and on x86 plain loads and
stores already have these orderings) plus a numba overload that emits the LLVM
instruction through an @intrinsic:

    load_acquire(a, i)       load atomic ... acquire
    load_relaxed(a, i)       load atomic ... monotonic
    store_release(a, i, v)   store atomic ... release
    fence_acquire() / fence_release() / fence_seq_cst()
    compiler_barrier()       asm sideeffect "" ~{memory}
    atomic_or(a, i, v)       atomicrmw or ... monotonic (returns the old value)
    memcpy_u8(dst, doff, src, soff, n)   llvm.memcpy of n bytes (no overlap)
    prefetch(a, i) / prefetch_w(a, i)    llvm.prefetch of a[i]'s cache line, to
                             read / to write (a hint: never faults, so an
                             index from a guest needs no check)
    rdtsc()                  llvm.readcyclecounter (Python: perf_counter_ns)
    mum(a, b)                the 128-bit product of two uint64, its high half
                             XOR its low half (one `mul`: a hash's mixing step)

Indices are not bounds-checked here: callers check them (STYLE: explicit
bounds checks in the kernel). From Python, call `read_tsc()` to get the same
counter compiled kernels see.
"""

import time

import numpy as np

from llvmlite import ir

from pyvswitch.core.jit import JIT, kernel


def load_acquire(a, i):
    return a[i]


def load_relaxed(a, i):
    return a[i]


def store_release(a, i, v):
    a[i] = v


def fence_acquire():
    pass


def fence_release():
    pass


def fence_seq_cst():
    pass


def compiler_barrier():
    pass


def atomic_or(a, i, v):
    old = a[i]
    a[i] = old | v
    return old


def prefetch(a, i):
    pass


def prefetch_w(a, i):
    pass


def memcpy_u8(dst, doff, src, soff, n):
    if n > 0:
        dst[doff:doff + n] = src[soff:soff + n]


def rdtsc():
    return time.perf_counter_ns()


_M64 = (1 << 64) - 1


def mum(a, b):
    p = int(a) * int(b)
    return np.uint64((p >> 64) ^ (p & _M64))


if JIT:
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload

    def _ptr(context, builder, arrty, arr, idx, idxty):
        ary = context.make_array(arrty)(context, builder, arr)
        i = context.cast(builder, idx, idxty, types.intp)
        return cgutils.get_item_pointer(context, builder, arrty, ary, [i], wraparound=False)

    def _size(context, arrty):
        return context.get_abi_sizeof(context.get_data_type(arrty.dtype))

    def _load_intr(order):
        def impl(typingctx, arr, idx):
            def codegen(context, builder, sig, args):
                ptr = _ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
                return builder.load_atomic(ptr, order, _size(context, sig.args[0]))
            return arr.dtype(arr, idx), codegen
        return intrinsic(impl)

    _i_load_acquire = _load_intr("acquire")
    _i_load_relaxed = _load_intr("monotonic")

    @intrinsic
    def _i_store_release(typingctx, arr, idx, val):
        def codegen(context, builder, sig, args):
            arrty = sig.args[0]
            ptr = _ptr(context, builder, arrty, args[0], args[1], sig.args[1])
            v = context.cast(builder, args[2], sig.args[2], arrty.dtype)
            builder.store_atomic(v, ptr, "release", _size(context, arrty))
            return context.get_dummy_value()
        return types.void(arr, idx, val), codegen

    @intrinsic
    def _i_atomic_or(typingctx, arr, idx, val):
        def codegen(context, builder, sig, args):
            arrty = sig.args[0]
            ptr = _ptr(context, builder, arrty, args[0], args[1], sig.args[1])
            v = context.cast(builder, args[2], sig.args[2], arrty.dtype)
            return builder.atomic_rmw("or", ptr, v, "monotonic")
        return arr.dtype(arr, idx, val), codegen

    def _fence_intr(order):
        def impl(typingctx):
            def codegen(context, builder, sig, args):
                builder.fence(order)
                return context.get_dummy_value()
            return types.void(), codegen
        return intrinsic(impl)

    _i_fence_acquire = _fence_intr("acquire")
    _i_fence_release = _fence_intr("release")
    _i_fence_seq_cst = _fence_intr("seq_cst")

    @intrinsic
    def _i_compiler_barrier(typingctx):
        def codegen(context, builder, sig, args):
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.asm(fnty, "", "~{memory}", [], side_effect=True)
            return context.get_dummy_value()
        return types.void(), codegen

    @intrinsic
    def _i_rdtsc(typingctx):
        def codegen(context, builder, sig, args):
            fnty = ir.FunctionType(ir.IntType(64), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
            return builder.call(fn, [])
        return types.int64(), codegen

    def _prefetch_intr(rw):
        def impl(typingctx, arr, idx):
            def codegen(context, builder, sig, args):
                ary = context.make_array(sig.args[0])(context, builder, args[0])
                i = context.cast(builder, args[1], sig.args[1], types.intp)
                # the address without a bounds check or wraparound: a prefetch never faults
                p = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()),
                                [builder.mul(i, context.get_constant(types.intp, _size(context, sig.args[0])))])
                i32 = ir.IntType(32)
                fnty = ir.FunctionType(ir.VoidType(), [p.type, i32, i32, i32])
                fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
                builder.call(fn, [p, i32(rw), i32(3), i32(1)])
                return context.get_dummy_value()
            return types.void(arr, idx), codegen
        return intrinsic(impl)

    _i_prefetch = _prefetch_intr(0)
    _i_prefetch_w = _prefetch_intr(1)

    @intrinsic
    def _i_memcpy(typingctx, dst, doff, src, soff, n):
        def codegen(context, builder, sig, args):
            dty, oty, sty, soty, nty = sig.args
            dptr = _ptr(context, builder, dty, args[0], args[1], oty)
            sptr = _ptr(context, builder, sty, args[2], args[3], soty)
            length = context.cast(builder, args[4], nty, types.int64)
            cgutils.raw_memcpy(builder, dptr, sptr, length, 1)
            return context.get_dummy_value()
        return types.void(dst, doff, src, soff, n), codegen

    @intrinsic
    def _i_mum(typingctx, a, b):
        def codegen(context, builder, sig, args):
            i64, i128 = ir.IntType(64), ir.IntType(128)
            x = builder.zext(context.cast(builder, args[0], sig.args[0], types.uint64), i128)
            y = builder.zext(context.cast(builder, args[1], sig.args[1], types.uint64), i128)
            p = builder.mul(x, y)
            return builder.xor(builder.trunc(builder.lshr(p, i128(64)), i64), builder.trunc(p, i64))
        return types.uint64(a, b), codegen

    def _simple_overload(pyfn, intr):
        # An overload whose implementation forwards its arguments to `intr`.
        nargs = pyfn.__code__.co_argcount
        names = pyfn.__code__.co_varnames[:nargs]
        args = ", ".join(names)
        src = (f"def _impl({args}):\n    return _intr({args})\n"
               f"def _typer({args}):\n    return _impl\n")
        ns = {"_intr": intr}
        exec(src, ns)
        overload(pyfn, inline="always")(ns["_typer"])

    for _pyfn, _intr in ((load_acquire, _i_load_acquire), (load_relaxed, _i_load_relaxed),
                         (store_release, _i_store_release), (atomic_or, _i_atomic_or),
                         (fence_acquire, _i_fence_acquire), (fence_release, _i_fence_release),
                         (fence_seq_cst, _i_fence_seq_cst),
                         (compiler_barrier, _i_compiler_barrier),
                         (memcpy_u8, _i_memcpy), (rdtsc, _i_rdtsc),
                         (prefetch, _i_prefetch), (prefetch_w, _i_prefetch_w), (mum, _i_mum)):
        _simple_overload(_pyfn, _intr)


@kernel
def read_tsc():
    """The cycle counter compiled kernels read (rdtsc), callable from Python."""
    return rdtsc()


# ------------------------------------------------------- arrays from addresses
# Kernels compiled without NRT cannot take typed lists; they reach memories of
# varying size (port rings, io rows) through tables of (address, length). The
# Python owner keeps the arrays alive while their addresses are published.

def view_i64_py(addr, n):
    """int64[n] at address addr (Python side; kernels call view_i64)."""
    import ctypes
    return np.ctypeslib.as_array(ctypes.cast(int(addr), ctypes.POINTER(ctypes.c_int64)), (int(n),))


def view_u8_py(addr, n):
    """uint8[n] at address addr (Python side; kernels call view_u8)."""
    import ctypes
    return np.ctypeslib.as_array(ctypes.cast(int(addr), ctypes.POINTER(ctypes.c_uint8)), (int(n),))


view_i64, view_u8 = view_i64_py, view_u8_py


if JIT:
    from numba.np.arrayobj import populate_array

    def _view_intr(nbtype):
        def impl(typingctx, addr, n):
            arrty = types.Array(nbtype, 1, "C")

            def codegen(context, builder, sig, args):
                ary = context.make_array(arrty)(context, builder)
                ptrty = context.get_value_type(types.CPointer(nbtype))
                addr_v = context.cast(builder, args[0], sig.args[0], types.int64)
                n_v = context.cast(builder, args[1], sig.args[1], types.intp)
                itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
                    context.get_data_type(nbtype)))
                populate_array(ary, data=builder.inttoptr(addr_v, ptrty),
                               shape=cgutils.pack_array(builder, [n_v]),
                               strides=cgutils.pack_array(builder, [itemsize]),
                               itemsize=itemsize, meminfo=None)
                return ary._getvalue()
            return arrty(addr, n), codegen
        return intrinsic(impl)

    # Bound to the intrinsics themselves: an overload returning an array it
    # did not receive is refused without NRT. From Python use view_*_py.
    view_i64 = _view_intr(types.int64)
    view_u8 = _view_intr(types.uint8)
