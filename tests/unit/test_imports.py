"""The layering of ARCHITECTURE.md, enforced on the source text.

core <- proto <- ports <- datapath <- ofproto <- vswitchd; openflow beside
proto (used by ofproto and the CLIs); conntrack called by datapath; db depends
only on core; cli never imports the datapath (or ports, ofproto, vswitchd).
The exceptions: datapath.layout, the flow-key field table (constants that
openflow maps its match fields onto), and datapath.actions for ofproto (the
datapath actions' tuples and their dpctl text: pure Python).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "pyvswitch"

# package -> packages it may import (besides itself)
ALLOWED = {
    "core": set(),
    "proto": {"core"},
    "openflow": {"core", "proto", "datapath.layout"},  # layout: constants only
    "ports": {"core", "proto"},
    "conntrack": {"core", "proto", "datapath.layout"},  # layout: the key's field positions
    "datapath": {"core", "proto", "ports", "conntrack"},
    "ofproto": {"core", "proto", "openflow", "datapath.layout", "datapath.actions"},  # constants, text
    "db": {"core"},
    "vswitchd": {"core", "proto", "ports", "datapath", "openflow", "ofproto", "conntrack", "db"},
    "cli": {"core", "proto", "openflow", "db", "datapath.layout"},
    "cloud": {"core", "proto", "openflow", "db"},
    # tools (benchmarks, generators, the lab) sit on top: they may use any layer below
    "tools": {"core", "proto", "ports", "datapath", "openflow", "db", "cli", "conntrack", "cloud"},
}


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def allowed(pkg, target):
    """target is a dotted name below pyvswitch (e.g. 'datapath.layout.FIELDS')."""
    if target.split(".")[0] in ("", pkg):
        return True
    return any(target == a or target.startswith(a + ".") for a in ALLOWED[pkg])


def sources():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if len(rel.parts) > 1:
            yield rel.parts[0], path


@pytest.mark.parametrize("pkg,path", list(sources()), ids=lambda x: str(x))
def test_import_direction(pkg, path):
    assert pkg in ALLOWED, f"package pyvswitch.{pkg} is not in the layering table"
    for mod in imported_modules(path):
        if mod.startswith("pyvswitch."):
            target = mod[len("pyvswitch."):]
            assert allowed(pkg, target), f"{path.relative_to(ROOT)} imports pyvswitch.{target}"


def test_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pyvswitch.datapath import dpif\n")
    mods = list(imported_modules(bad))
    assert not allowed("cli", mods[0][len("pyvswitch."):])
    assert allowed("vswitchd", mods[0][len("pyvswitch."):])
