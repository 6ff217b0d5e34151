"""Where a daemon keeps its files, for the daemon and the CLIs alike.

rundir: --rundir, else $PVS_RUNDIR, else /var/run/pyvswitch. It holds the
management socket (pvs-vswitchd.ctl), the pidfile, per-bridge OpenFlow sockets
and, by default, vhost-user sockets.
db: --db, else $PVS_DB, else <rundir>/conf.db when a rundir was chosen
explicitly (so one variable isolates a test instance), else
/etc/pyvswitch/conf.db.
"""

import os

DEFAULT_RUNDIR = "/var/run/pyvswitch"
DEFAULT_DB = "/etc/pyvswitch/conf.db"
CTL_NAME = "pvs-vswitchd.ctl"
PID_NAME = "pvs-vswitchd.pid"


def rundir(explicit=None):
    return explicit or os.environ.get("PVS_RUNDIR") or DEFAULT_RUNDIR


def db_path(explicit=None, rundir_explicit=None):
    if explicit:
        return explicit
    if os.environ.get("PVS_DB"):
        return os.environ["PVS_DB"]
    chosen = rundir_explicit or os.environ.get("PVS_RUNDIR")
    return os.path.join(chosen, "conf.db") if chosen else DEFAULT_DB


def ctl_path(rd=None):
    return os.path.join(rundir(rd), CTL_NAME)
