#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root):
# Debian packages the switch and its tests use, installed only when missing,
# then a virtualenv with pyvswitch in editable mode.
set -euo pipefail
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

DEBS="iproute2 ethtool iputils-ping tcpdump iperf3 netcat-openbsd procps psmisc dpdk-dev openvswitch-common qemu-system-x86"
DEBS="$DEBS ${EXTRA_DEBS:-}"
missing=()
for p in $DEBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# pip extras: test (always), bench (matplotlib: make bench)
EXTRAS=${PIP_EXTRAS:-test}
stamp="$VENV/.pyvswitch-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! grep -qF -- "$EXTRAS" "$stamp"; then
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q -e ".[$EXTRAS]"
    echo "$EXTRAS" > "$stamp"
fi
