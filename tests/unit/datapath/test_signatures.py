"""Compiled kernels carry no float types where int64/uint64 are meant
(datapath-feasibility.md pitfall 3: uint64 + int64 mixing)."""

import importlib
import pkgutil

import numpy as np
import pytest

from pyvswitch.core.jit import JIT
from pyvswitch.datapath import layout as L
from pyvswitch.datapath.kernels.hash import hash_key, hash_masked

from .conftest import IN_PORT_MASK, Capture
from .test_dpif import FRAME, one_to_two


def _dispatchers():
    import pyvswitch.datapath.kernels as pkg
    mods = [importlib.import_module(f"pyvswitch.datapath.kernels.{m.name}")
            for m in pkgutil.iter_modules(pkg.__path__)]
    mods.append(importlib.import_module("pyvswitch.ports.dummy"))
    for mod in mods:
        for name, obj in vars(mod).items():
            if hasattr(obj, "nopython_signatures") and getattr(obj, "__module__", "") == mod.__name__:
                yield f"{mod.__name__}.{name}", obj


@pytest.mark.skipif(not JIT, reason="signatures exist only when compiled")
def test_no_float_in_kernel_signatures(switch):
    dp, ports = switch
    dp.set_upcall_handler(one_to_two)
    cap = Capture(ports[2])
    for _ in range(3):
        ports[1].inject(FRAME)
    cap.wait(3)
    key = L.pack_key({"in_port": 1})
    assert isinstance(hash_masked(key, IN_PORT_MASK, 3), int)
    hash_key(key)
    checked = 0
    for name, disp in _dispatchers():
        for sig in disp.nopython_signatures:
            text = str(sig.args) + str(sig.return_type)
            assert "float" not in text, f"{name}{sig}"
            checked += 1
        if name.endswith(("hash_key", "hash_masked")):
            assert all(str(s.return_type) == "uint64" for s in disp.nopython_signatures), name
    assert checked >= 3
    assert all(str(s.return_type) == "int64" for s in
               __import__("pyvswitch.datapath.kernels.pmdloop", fromlist=["x"]).pmd_loop.nopython_signatures)
    _ = np
