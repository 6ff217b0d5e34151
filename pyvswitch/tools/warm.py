"""Compile the datapath's kernels into numba's on-disk cache, once.

The first PMD of a machine (or after an upgrade) compiles the poll loop and
every kernel it reaches: one to several minutes of one core. pvs-vswitchd
does that on its first start (add-br waits for it); the test suite calls
`warm_datapath()` before its first test so that no test's timing window pays
for it, and so can a packager: `python -m pyvswitch.tools.warm`.

It builds a throw-away datapath with a dummy and a vhost-user port (every
port type shares one poll loop), sends a packet through an upcall, a
recirculation and a packet-out, and returns when all of that ran.
"""

import sys
import tempfile
import time

from pyvswitch.datapath import layout as L

FRAME = bytes.fromhex("000000000002000000000001080045000020000100004011f9c80a0000010a000002"
                      "00010002000c0000") + b"warm" + bytes(14)


def warm_datapath(timeout=1800.0, log=None):
    from pyvswitch.datapath.dpif import Dpif
    from pyvswitch.ports.dummy import DummyPort
    from pyvswitch.ports.vhost.port import VhostUserPort

    t0 = time.monotonic()
    mask = L.pack_key({"in_port": 0xFFFF, "recirc_id": 0xFFFFFFFF})
    with tempfile.TemporaryDirectory(prefix="pvs-warm-") as d:
        dp = Dpif("warm", d, pmd_cpus=[0])
        ports = []
        try:
            a, b = DummyPort("warm-a"), DummyPort("warm-b")
            v = VhostUserPort("warm-v", {"vhost-sock-dir": d})
            for p in (a, b, v):
                p.open()
                ports.append(p)
                dp.add_port(p)

            def handler(keys, in_ports, packets):
                return [([("recirc", 1)], mask) if L.get_field(k, "recirc_id") == 0 else
                        ([("ct", 0, False, None, None), ("output", 2)], mask) for k in keys]

            dp.set_upcall_handler(handler)
            a.inject(FRAME)
            end = time.monotonic() + timeout
            got = []
            while not got and time.monotonic() < end:
                got = b.capture()
                time.sleep(0.05)
            if not got:
                raise RuntimeError(f"the datapath did not forward within {timeout:g} s")
            dp.execute(FRAME, [("output", 2)], in_port=1)
        finally:
            dp.close()
            for p in ports:
                p.close()
    if log:
        log(f"datapath kernels ready ({time.monotonic() - t0:.1f} s)")
    return time.monotonic() - t0


if __name__ == "__main__":
    print(f"compiled in {warm_datapath(log=None):.1f} s (numba cache: NUMBA_CACHE_DIR)")
    sys.exit(0)
