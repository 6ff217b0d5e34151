# The README's two commands: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
PYTEST_ARGS ?=

.PHONY: install test test-fast test-boundscheck demo bench clean

install:
	@VENV=$(VENV) ./scripts/install-deps.sh

# Unit, kernel, end-to-end and system tests; then the kernel tests again with
# numba's bounds checks on (an out-of-range index becomes an IndexError).
test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)
	NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(CURDIR)/.cache/numba-bc $(PY) -m pytest -q -x tests/kernels tests/unit

test-fast: install
	$(PY) -m pytest -q -m "not system" $(PYTEST_ARGS)

demo: install
	$(PY) -m pyvswitch.tools.demo $(DEMO_ARGS)

# pvs-bench COMMAND (rfc2544, pvp, veth, flows, openflow): BENCH="pvp --quick" etc.
BENCH ?= pvp
bench:
	@EXTRA_DEBS="dpdk-dev openvswitch-switch openvswitch-switch-dpdk" PIP_EXTRAS=test,bench \
		VENV=$(VENV) ./scripts/install-deps.sh
	$(VENV)/bin/pvs-bench $(BENCH) $(BENCH_ARGS)

clean:
	rm -rf .cache build *.egg-info
