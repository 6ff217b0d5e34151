"""The one decorator for compiled kernels.

`kernel` compiles a module-level function with numba (nopython, nogil, cached)
so PMD threads run it without the GIL. With PVS_JIT=0 it returns the function
unchanged: the kernel then runs as plain Python (slow, but the same code), which
is how the test suite checks kernels against their reference twins without a
compiler, and the fallback when numba is unavailable.

Every kernel is compiled with numba's `forceinline` (LLVM's alwaysinline):
without it numba calls a kernel from another kernel through an absolute
address, each array argument passed as seven scalars and the result through
memory, and LLVM never inlined even two-line helpers (parse._be48). With it,
the PMD loop went from 420 to 275 cycles per 64-byte packet in-process
(single thread, guests' rings hot in cache) and from 548 to 472 in the PVP
benchmark; compiling every kernel (tools/warm.py) took 91 s instead of 85.
`inline=True` inlines at numba's IR level instead.

Kernels must be defined at module level: a kernel built inside a factory
function never hits numba's on-disk cache (datapath-feasibility.md, sec. 1).

`@kernel(nrt=False)` compiles without numba's reference counting. With it,
every call of a helper that takes arrays (worse: a namedtuple of arrays) does
an atomic NRT incref/decref per array: measured 25 ns per call with two
arrays, 130 ns with the 11-array flow tables, i.e. microseconds per packet.
Hot-path kernels use nrt=False, so they must not allocate (np.zeros, typed
lists, returning new arrays); they reach port rings through address tables
and intrinsics.view_i64/view_u8 instead of typed lists.

Cache and other files: numba's cache key covers only the kernel's own source
file, so a kernel that calls a kernel of another module (the PMD loop calls
parse, emc, execute and every port type) would keep running stale code after
that module changed. `kernel` therefore adds to the cache key a stamp of every
pyvswitch source file the kernel reaches through its globals (transitively).
"""

import os
import sys
import types as _pytypes

JIT = os.environ.get("PVS_JIT", "1") != "0"


_IMPORTS = {}


def _imported_files(path):
    """Files of the pyvswitch modules a source file imports at module level:
    `from pyvswitch.datapath.layout import KEY_WORDS` leaves only an int in
    the globals, but the kernel depends on layout.py all the same."""
    if path not in _IMPORTS:
        out = set()
        try:
            import ast
            with open(path) as f:
                tree = ast.parse(f.read(), filename=path)
        except (OSError, SyntaxError, ValueError):
            tree = None
        for node in tree.body if tree is not None else ():
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                m = sys.modules.get(name)
                if name.startswith("pyvswitch") and m is not None and getattr(m, "__file__", None):
                    out.add(m.__file__)
        _IMPORTS[path] = out
    return _IMPORTS[path]


def _dep_files(fn, seen_fns, files):
    """Source files of pyvswitch functions/modules reachable from fn's globals,
    and of the modules its own module imports."""
    fn = getattr(fn, "py_func", fn)
    if id(fn) in seen_fns or not hasattr(fn, "__code__"):
        return
    seen_fns.add(id(fn))
    files.add(fn.__code__.co_filename)
    files.update(_imported_files(fn.__code__.co_filename))
    names = set(fn.__code__.co_names)
    g = fn.__globals__
    for name in names:
        obj = g.get(name)
        if obj is None:
            continue
        if isinstance(obj, _pytypes.ModuleType):
            if obj.__name__.startswith("pyvswitch") and getattr(obj, "__file__", None):
                files.add(obj.__file__)
                for attr in names:
                    sub = getattr(obj, attr, None)
                    if sub is not None and getattr(sub, "__module__", "").startswith("pyvswitch"):
                        _dep_files(sub, seen_fns, files)
            continue
        mod = getattr(obj, "__module__", None) or ""
        if mod.startswith("pyvswitch"):
            if callable(obj):
                _dep_files(obj, seen_fns, files)
            m = sys.modules.get(mod)
            if m is not None and getattr(m, "__file__", None):
                files.add(m.__file__)


def deps_stamp(fn):
    """(path, mtime_ns, size) of every pyvswitch file fn depends on."""
    files = set()
    _dep_files(fn, set(), files)
    out = []
    for f in sorted(files):
        try:
            st = os.stat(f)
            out.append((f, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((f, 0, 0))
    return tuple(out)


if JIT:
    import numba
    from numba.core.caching import FunctionCache

    class _DepsCache(FunctionCache):
        def _index_key(self, sig, codegen):
            return super()._index_key(sig, codegen) + (deps_stamp(self._py_func),)

    def kernel(fn=None, *, inline=False, nrt=True):
        if fn is None:
            return lambda f: kernel(f, inline=inline, nrt=nrt)
        opts = {"inline": "always"} if inline else {"forceinline": True}
        if not nrt:
            opts["_nrt"] = False
        disp = numba.njit(nogil=True, cache=True, **opts)(fn)
        disp._cache = _DepsCache(disp.py_func)
        return disp
else:
    import warnings as _warnings
    # Interpreted kernels do uint64 arithmetic on numpy scalars, which wraps
    # like the compiled code but warns on every overflow: silence that (in
    # every thread: numpy's seterr is per thread).
    _warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)

    def kernel(fn=None, *, inline=False, nrt=True):
        if fn is None:
            return lambda f: f
        return fn


def py_func(fn):
    """The interpreted body of a kernel (the function itself when JIT is off)."""
    return getattr(fn, "py_func", fn)
