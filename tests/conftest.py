"""Shared pytest set-up: system tests need root and network namespaces."""

import os
import shutil
import subprocess

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "numba"))


def _netns_ok():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    return r.returncode == 0


NETNS_OK = _netns_ok()


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs root and network namespaces")
    for item in items:
        if "system" in item.keywords and not NETNS_OK:
            item.add_marker(skip)
