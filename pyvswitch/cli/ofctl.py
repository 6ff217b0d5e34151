"""pvs-ofctl: OpenFlow management of a bridge (ovs-ofctl syntax).

    pvs-ofctl [--rundir DIR] COMMAND BRIDGE [ARG...]

Commands: show, dump-ports BR [PORT], dump-flows BR [FLOWS], add-flow BR FLOW,
add-flows BR FILE ('-' for stdin), del-flows BR [FLOWS] (--strict),
mod-flows BR FLOW (--strict), dump-tables BR.

Port names or numbers in the output follow ovs-ofctl: names when stdout is a
terminal, numbers otherwise; --names / --no-names choose.

This version talks to the daemon over its management socket (the bridge's
OpenFlow state lives there); the flow text is parsed by the daemon with
pyvswitch.openflow.text, so errors read the same from every client.
"""

import argparse
import sys

from pyvswitch.core import paths
from pyvswitch.core.unixrpc import RpcError, RpcUnavailable, call

# command -> (min extra args after BRIDGE, max extra args)
COMMANDS = {
    "show": (0, 0),
    "dump-ports": (0, 1),
    "dump-ports-desc": (0, 0),
    "dump-flows": (0, 1),
    "dump-aggregate": (0, 1),
    "add-flow": (1, 1),
    "add-flows": (1, 1),
    "mod-flows": (1, 1),
    "del-flows": (0, 1),
    "dump-tables": (0, 0),
}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pvs-ofctl", description="OpenFlow management of a pyvswitch bridge.")
    p.add_argument("--rundir", help="daemon run directory (default $PVS_RUNDIR or /var/run/pyvswitch)")
    p.add_argument("--strict", action="store_true", help="match wildcards and priority exactly")
    p.add_argument("-O", "--protocols", help="accepted for ovs-ofctl compatibility")
    names = p.add_mutually_exclusive_group()
    names.add_argument("--names", dest="names", action="store_true", default=None,
                       help="show port names (default when printing to a terminal)")
    names.add_argument("--no-names", dest="names", action="store_false",
                       help="show port numbers (default otherwise)")
    p.add_argument("-t", "--timeout", type=float, default=30.0)
    p.add_argument("command")
    p.add_argument("bridge", nargs="?")
    p.add_argument("args", nargs="*")
    return p.parse_intermixed_args(argv)   # options anywhere, as ovs-ofctl


def _read_flows(arg):
    f = sys.stdin if arg == "-" else open(arg)
    with f:
        lines = [ln.strip() for ln in f]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.command not in COMMANDS:
        print(f"pvs-ofctl: unknown command '{a.command}'; use --help for help", file=sys.stderr)
        return 1
    lo, hi = COMMANDS[a.command]
    if a.bridge is None or not lo <= len(a.args) <= hi:
        print(f"pvs-ofctl: '{a.command}' command requires at least {lo + 1} arguments", file=sys.stderr)
        return 1
    names = sys.stdout.isatty() if a.names is None else a.names
    params = [a.bridge, "1" if names else "0"] + a.args
    method = a.command
    if a.command == "add-flows":
        try:
            params = params[:2] + _read_flows(a.args[0])
        except OSError as e:
            print(f"pvs-ofctl: {a.args[0]}: open failed ({e.strerror})", file=sys.stderr)
            return 1
    if a.strict and a.command in ("del-flows", "mod-flows"):
        method += "-strict"
    try:
        out = call(paths.ctl_path(a.rundir), "ofctl/" + method, params, timeout=a.timeout)
    except RpcUnavailable as e:
        print(f"pvs-ofctl: {a.bridge}: failed to connect to the switch ({e})", file=sys.stderr)
        return 1
    except RpcError as e:
        print(f"pvs-ofctl: {e}", file=sys.stderr)
        return 1
    if out:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
