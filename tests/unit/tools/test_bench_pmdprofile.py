"""pvs-bench pmd-profile's attribution: samples at offsets of a compiled
object map to the source lines of its DWARF line table, innermost line and
call path. The whole command (a debug build of the PMD loop, minutes of
compiling, perf on the PMD's core) is a developer's tool and not run here."""

import inspect
import shutil
import subprocess

import numba
import numpy as np
import pytest

from pyvswitch.tools.bench import pmdprofile as PP


def _helper(x):
    return x * np.uint64(0x9E3779B97F4A7C15)


_helper_jit = numba.njit(debug=True, boundscheck=False, forceinline=True)(_helper)


def _outer(a):
    s = np.uint64(0)
    for i in range(a.shape[0]):
        s ^= _helper_jit(a[i])
    return s


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    if shutil.which("objdump") is None or shutil.which("nm") is None:
        pytest.skip("needs binutils (objdump, nm)")
    fn = numba.njit(debug=True, boundscheck=False)(_outer)
    fn(np.arange(4, dtype=np.uint64))
    cres = fn.overloads[fn.signatures[0]]
    obj = tmp_path_factory.mktemp("prof") / "f.o"
    obj.write_bytes(cres.library._get_compiled_object())
    start, size = PP._symbol(str(obj), cres.fndesc.llvm_func_name)
    asm = subprocess.run(["objdump", "-d", "-l", "--inlines", "--no-show-raw-insn",
                          f"--start-address={start}", f"--stop-address={start + size}", str(obj)],
                         capture_output=True, text=True, check=True).stdout
    return PP.line_table(asm), start, size


def _line_of(fn, text):
    src, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(src) if text in line)


def test_every_instruction_has_a_place_and_the_multiply_is_the_helpers(compiled):
    table, start, size = compiled
    offs = [o for o in table if start <= o < start + size]
    assert offs and all(table[o] for o in offs[1:])
    mul_line = _line_of(_helper, "return x *")
    inlined = [p for p in table.values() if p and p[0][1] == mul_line and p[0][0] == __file__]
    assert inlined, "the helper's multiply should appear as its own line"
    assert any(len(p) >= 2 and p[1] == (__file__, _line_of(_outer, "_helper_jit(a[i])")) for p in inlined)


def test_samples_are_counted_by_innermost_line_and_path(compiled):
    table, start, size = compiled
    mul_line = _line_of(_helper, "return x *")
    mul_off = next(o for o, p in sorted(table.items()) if p and p[0][1] == mul_line)
    other = next(o for o, p in sorted(table.items()) if p and p[0][1] != mul_line and start <= o < start + size)
    samples = {mul_off: 7, other: 3, start + size + 100: 5}          # the last is outside the function
    inner, paths, n = PP.attribute(table, start, start + size, samples)
    assert n == 10
    assert inner[(__file__, mul_line)] == 7
    assert sum(paths.values()) == 10
    text = PP.report(inner, paths, n, 15, top=5)
    assert "samples in pmd_loop: 10 of 15" in text and f"test_bench_pmdprofile.py:{mul_line}" in text
    assert "70.0 %" in text


def test_refuses_a_bad_size():
    with pytest.raises(SystemExit):
        PP.main(["--size", "20"])
