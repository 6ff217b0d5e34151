"""Benchmark harness for pyvswitch on kernel interfaces.

`python -m pyvswitch.tools.bench.veth` measures forwarding between two veth
ports (peers in two network namespaces) for pyvswitch and two anchors, the
Linux bridge and the Open vSwitch userspace datapath over AF_PACKET, in the
same run, alternating between them. See bench/README.md.

Modules:
  stats     pure computations: rates from counters, min/median/max, ratios,
            pmd-stats parsing, summary and Markdown rendering (unit-tested)
  cpu       /proc snapshots: foreign CPU, per-process CPU, per-core split
  system    commands, processes by PID, cleanup stack, topology, machine info
  switches  the three switches under test (set up / tear down)
  veth      the command line and the measurement loop
"""
