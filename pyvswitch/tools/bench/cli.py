"""pvs-bench: the project's benchmarks behind one command.

    pvs-bench rfc2544 ...   RFC 2544 throughput / latency / loss through two
                            vhost-user ports (pyvswitch and OVS-DPDK)
    pvs-bench pvp ...       PVP loopback with dpdk-testpmd (pyvswitch and OVS-DPDK)
    pvs-bench veth ...      forwarding between veth ports (pyvswitch, Linux
                            bridge, OVS AF_PACKET)
    pvs-bench flows ...     flow table install / upcall / many-rule forwarding
    pvs-bench openflow ...  flow-mods and packet-ins over the wire
    pvs-bench conntrack ... new connections/s through a firewall (pyvswitch and
                            OVS-DPDK), memory per connection, security-group apply
    pvs-bench tunnels ...   one host at tunnel scale: 20,000 endpoints, 1M VNI
                            flows, 100,000 learned MACs; time, memory, correctness
    pvs-bench pmd-cycles ... the PMD loop's cycles per packet, in process (a
                            developer's measurement: no anchor switch)
    pvs-bench pmd-profile ... where those cycles go, by source line (perf
                            timer samples on the PMD's core, numba debug info)
    pvs-bench report ...    rewrite the result tables of docs/BENCHMARKS.md from
                            bench/results/*-latest.json (--check: only compare)

`pvs-bench COMMAND --help` describes each; every one writes JSON and Markdown
under bench/results/ and says how its figures were measured.
"""

import importlib
import sys

COMMANDS = {"rfc2544": "rfc2544", "pvp": "pvp", "veth": "veth", "flows": "flows", "openflow": "openflow",
            "conntrack": "ct_bench", "tunnels": "tnl_scale", "pmd-cycles": "pmdcycles",
            "pmd-profile": "pmdprofile", "report": "report"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"pvs-bench: unknown command {argv[0]!r} (one of {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    mod = importlib.import_module(f"pyvswitch.tools.bench.{COMMANDS[argv[0]]}")
    return mod.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
