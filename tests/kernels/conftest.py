import os

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "numba"))


def pytest_configure(config):
    # PVS_JIT=0: interpreted uint64 hash arithmetic wraps like the compiled code
    config.addinivalue_line("filterwarnings", "ignore:overflow encountered:RuntimeWarning")
