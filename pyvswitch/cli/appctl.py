"""pvs-appctl: send a command to a running pvs-vswitchd (like ovs-appctl).

    pvs-appctl [--rundir DIR | -t TARGET] [--timeout SECS] COMMAND [ARG...]

TARGET is a control socket path. The command's text output is printed as is;
an error is printed on stderr and the exit status is 2, as ovs-appctl does.
"""

import argparse
import json
import sys

from pyvswitch.core import paths
from pyvswitch.core.unixrpc import RpcError, RpcUnavailable, call


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pvs-appctl", description="Control a running pvs-vswitchd.")
    p.add_argument("--rundir", help="daemon run directory (default $PVS_RUNDIR or /var/run/pyvswitch)")
    p.add_argument("-t", "--target", help="control socket path")
    p.add_argument("-T", "--timeout", type=float, default=30.0, help="seconds to wait for a reply")
    p.add_argument("command")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p.parse_args(argv)


def render(result):
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    return json.dumps(result, indent=2) + "\n"


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    target = a.target or paths.ctl_path(a.rundir)
    try:
        result = call(target, a.command, a.args, timeout=a.timeout)
    except RpcUnavailable as e:
        print(f"pvs-appctl: {e}", file=sys.stderr)
        return 1
    except RpcError as e:
        msg = str(e)
        print(msg if msg.endswith("\n") else msg + "\n", end="", file=sys.stderr)
        print("pvs-appctl: pvs-vswitchd: server returned an error", file=sys.stderr)
        return 2
    sys.stdout.write(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
