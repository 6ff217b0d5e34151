"""pvs-vswitchd: the switch daemon's command line.

    pvs-vswitchd [--rundir DIR] [--db FILE] [--detach] [--pidfile[=FILE]]
                 [--log-file[=FILE]] [-v MODULE:LEVEL ...]

Runs in the foreground unless --detach. SIGTERM or SIGINT (or `pvs-appctl
exit`) shuts down cleanly: PMD threads stop, ports close, sockets and the
pidfile are removed. Several daemons can run side by side when each has its own
--rundir (and database).
"""

import argparse
import os
import resource
import signal
import sys

from pyvswitch.core import paths
from pyvswitch.vswitchd.process import Detacher, Pidfile, StartupError


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pvs-vswitchd", description="pyvswitch switch daemon")
    p.add_argument("--rundir", help="run directory (default $PVS_RUNDIR or /var/run/pyvswitch)")
    p.add_argument("--db", help="configuration database file")
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--pidfile", nargs="?", const="", default=None, help="write a pidfile (default <rundir>/pvs-vswitchd.pid)")
    p.add_argument("--log-file", nargs="?", const="", default=None, help="log to a file (default <rundir>/pvs-vswitchd.log)")
    p.add_argument("-v", "--verbose", action="append", default=[], metavar="MODULE:LEVEL",
                   help="log level, e.g. -v dbg or -v dpif:dbg")
    return p.parse_args(argv)


def raise_fd_limit(want=65536):
    """Every port holds descriptors (a socket or tap, eventfds, a vhost-user
    socket and its memory): lift the soft limit towards the hard one, as
    ovs-vswitchd does, so that a host with many ports does not run out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    raise_fd_limit()
    rundir = paths.rundir(a.rundir)
    db = paths.db_path(a.db, a.rundir)
    os.makedirs(rundir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)
    # Always hold the rundir's pidfile lock: it is what keeps two daemons
    # from sharing one rundir. --pidfile only chooses another path. The lock
    # is taken after detaching: fcntl record locks do not survive fork().
    pidfile = Pidfile(a.pidfile or os.path.join(rundir, paths.PID_NAME))
    detacher = Detacher()
    if a.detach:
        detacher.detach()
    try:
        pidfile.acquire()
    except StartupError as e:
        detacher.failed(f"pvs-vswitchd: {e}\n")
        if not a.detach:
            print(f"pvs-vswitchd: {e}", file=sys.stderr)
        return 1
    pidfile.write(os.getpid())
    log_file = None if a.log_file is None else (a.log_file or os.path.join(rundir, "pvs-vswitchd.log"))

    from pyvswitch.vswitchd.daemon import Switch  # heavy imports after detaching
    try:
        switch = Switch(rundir=rundir, db_path=db, log_file=log_file, verbose=a.verbose)
        switch.start()
    except Exception as e:  # start-up failure: report to the waiting parent
        detacher.failed(f"pvs-vswitchd: {e}\n")
        pidfile.release()
        if not a.detach:
            print(f"pvs-vswitchd: {e}", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: switch.request_exit())
    detacher.ready()
    try:
        switch.run()
    finally:
        switch.close()
        pidfile.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
