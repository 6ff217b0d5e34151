"""pvs-vsctl: configure pvs-vswitchd through its database (ovs-vsctl syntax).

    pvs-vsctl [OPTIONS] COMMAND [ARG...] [-- [OPTIONS] COMMAND [ARG...]]...

How: parse global options, split the rest into commands at `--`, open the
store (pyvswitch.db.store) and run every command inside ONE transaction: if
any command fails, nothing is written. Before committing, the values it adds
or changes that the switch reads are checked (pyvswitch.db.config_keys:
other_config keys such as mac-aging-time, and interface types against
Open_vSwitch.iface_types). The transaction bumps
Open_vSwitch.next_cfg when it changed something. Then, unless --no-wait,
ask the daemon to apply that configuration:
    unixrpc.call(<rundir>/pvs-vswitchd.ctl, "vsctl/apply", [next_cfg], timeout)
No daemon listening: success (it reads the database when it starts). The
daemon answers an error or drops the connection: printed as a warning, exit
0 (the change stands).
--timeout bounds both the lock wait and the daemon wait ("timeout expired").

Exit status: 0 ok, 1 error (message on stderr, database unchanged),
2 from br-exists when the bridge does not exist.
"""

import sqlite3
import sys
import time

from pyvswitch.core import paths, unixrpc
from pyvswitch.db import config_keys
from pyvswitch.db.schema import SchemaError
from pyvswitch.db.store import Store, StoreBusy
from pyvswitch.db.txn import StoreError
from pyvswitch.cli import vsctl_br as br, vsctl_db as db
from pyvswitch.cli.vsctl_ctx import Context, VsctlError, Exit
from pyvswitch.cli.vsctl_show import cmd_show

PROG = "pvs-vsctl"
MAYBE, IFX = "--may-exist", "--if-exists"


def cmd_init(ctx):
    """The store creates the Open_vSwitch row on first open: nothing to do."""


# name: (min args, max args, function, options, writes, usage)
COMMANDS = {
    "init": (0, 0, cmd_init, (), False, "initialize database, if not yet initialized"),
    "show": (0, 0, cmd_show, (), False, "print overview of database contents"),
    "add-br": (1, 3, br.cmd_add_br, (MAYBE,), True, "BRIDGE  create a new bridge"),
    "del-br": (1, 1, br.cmd_del_br, (IFX,), True, "BRIDGE  delete BRIDGE and all of its ports"),
    "list-br": (0, 0, br.cmd_list_br, (), False, "print the names of all the bridges"),
    "br-exists": (1, 1, br.cmd_br_exists, (), False, "BRIDGE  exit 2 if BRIDGE does not exist"),
    "br-to-vlan": (1, 1, br.cmd_br_to_vlan, (), False, "BRIDGE  print the VLAN of BRIDGE (0)"),
    "br-to-parent": (1, 1, br.cmd_br_to_parent, (), False, "BRIDGE  print the parent of BRIDGE"),
    "br-set-external-id": (2, 3, br.cmd_br_set_external_id, (), True,
                           "BRIDGE KEY [VALUE]  set or unset KEY on BRIDGE"),
    "br-get-external-id": (1, 2, br.cmd_br_get_external_id, (), False,
                           "BRIDGE [KEY]  print KEY (or all keys) on BRIDGE"),
    "add-port": (2, None, br.cmd_add_port, (MAYBE,), True,
                 "BRIDGE PORT [COLUMN[:KEY]=VALUE]...  add PORT to BRIDGE"),
    "add-bond": (3, None, br.cmd_add_bond, (MAYBE, "--fake-iface"), True,
                 "BRIDGE PORT IFACE... [COLUMN[:KEY]=VALUE]...  add bonded PORT"),
    "del-port": (1, 2, br.cmd_del_port, (IFX, "--with-iface"), True,
                 "[BRIDGE] PORT  delete PORT (which may be bonded) from BRIDGE"),
    "list-ports": (1, 1, br.cmd_list_ports, (), False, "BRIDGE  print the ports on BRIDGE"),
    "port-to-br": (1, 1, br.cmd_port_to_br, (), False, "PORT  print the bridge of PORT"),
    "list-ifaces": (1, 1, br.cmd_list_ifaces, (), False, "BRIDGE  print the interfaces on BRIDGE"),
    "iface-to-br": (1, 1, br.cmd_iface_to_br, (), False, "IFACE  print the bridge of IFACE"),
    "set-controller": (2, None, br.cmd_set_controller, (), True,
                       "BRIDGE TARGET...  set the controllers for BRIDGE"),
    "del-controller": (1, 1, br.cmd_del_controller, (), True, "BRIDGE  delete the controllers"),
    "get-controller": (1, 1, br.cmd_get_controller, (), False, "BRIDGE  print the controllers"),
    "set-fail-mode": (2, 2, br.cmd_set_fail_mode, (), True,
                      "BRIDGE standalone|secure  set the fail-mode"),
    "get-fail-mode": (1, 1, br.cmd_get_fail_mode, (), False, "BRIDGE  print the fail-mode"),
    "del-fail-mode": (1, 1, br.cmd_del_fail_mode, (), True, "BRIDGE  delete the fail-mode"),
    "get": (2, None, db.cmd_get, (IFX, "--id"), False,
            "TBL REC COL[:KEY]...  print values of COLumns in RECord in TBL"),
    "set": (3, None, db.cmd_set, (IFX,), True, "TBL REC COL[:KEY]=VALUE...  set COLumn values"),
    "list": (1, None, db.cmd_list, (IFX, "--columns"), False, "TBL [REC...]  list RECords"),
    "find": (1, None, db.cmd_find, ("--columns",), False,
             "TBL CONDITION...  list records satisfying CONDITION (COL[:KEY]=VALUE...)"),
    "clear": (3, None, db.cmd_clear, (IFX,), True, "TBL REC COL...  clear COLumn values"),
    "add": (4, None, db.cmd_add, (IFX,), True, "TBL REC COL [KEY=]VALUE...  add to a set or map"),
    "remove": (4, None, db.cmd_remove, (IFX,), True,
               "TBL REC COL [KEY=]VALUE|KEY...  remove from a set or map"),
    "create": (2, None, db.cmd_create, ("--id",), True, "TBL COL[:KEY]=VALUE...  create a record"),
    "destroy": (1, None, db.cmd_destroy, (IFX, "--all"), True, "TBL REC...  delete RECords"),
}

GLOBAL_FLAGS = ("--no-wait", "--bare")
GLOBAL_VALUES = ("--db", "--rundir", "--timeout", "--format")


class UsageError(VsctlError):
    pass


class Invocation:
    def __init__(self):
        self.db = self.rundir = self.timeout = None
        self.no_wait = self.bare = self.help = False
        self.commands = []     # [(name, args, opts)]


def parse_argv(argv):
    inv = Invocation()
    i, first_opts = 0, {}
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        i = _global_option(inv, argv, i, first_opts)
    if inv.help:
        return inv
    inv.commands = _split_commands(argv[i:], first_opts)
    return inv


def _global_option(inv, argv, i, local):
    arg = argv[i]
    name, eq, val = arg.partition("=")
    if arg in ("-h", "--help"):
        inv.help = True
        return i + 1
    if arg.startswith("-t") and len(arg) > 2 and not arg.startswith("--"):
        inv.timeout = _timeout(arg[2:])
        return i + 1
    if name in ("-t",) + GLOBAL_VALUES:
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"option '{name}' requires an argument")
            val, i = argv[i + 1], i + 1
        if name in ("-t", "--timeout"):
            inv.timeout = _timeout(val)
        elif name == "--format":
            _check_format(val)
        else:
            setattr(inv, name[2:], val)
        return i + 1
    if arg in GLOBAL_FLAGS:
        inv.no_wait |= arg == "--no-wait"
        inv.bare |= arg == "--bare"
        return i + 1
    local[name] = val if eq else True      # a per-command option for the first command
    return i + 1


def _timeout(val):
    try:
        t = float(val)
    except ValueError:
        raise UsageError(f"value {val} on -t or --timeout is invalid") from None
    if t < 0:
        raise UsageError(f"value {val} on -t or --timeout is invalid")
    return t or None


def _check_format(val):
    if val != "list":
        raise UsageError(f'{val}: unsupported --format (only "list" is supported)')


def _split_commands(args, first_opts):
    commands, cur, opts = [], [], dict(first_opts)
    for a in args + ["--"]:
        if a == "--":
            if cur:
                commands.append(_command(cur, opts))
            elif opts:
                raise UsageError("missing command name (use --help for help)")
            cur, opts = [], {}
        elif not cur and a.startswith("--"):
            name, eq, val = a.partition("=")
            opts[name] = val if eq else True
        else:
            cur.append(a)
    if not commands:
        raise UsageError("missing command name (use --help for help)")
    return commands


def _command(words, opts):
    name, args = words[0], words[1:]
    spec = COMMANDS.get(name)
    if spec is None:
        raise UsageError(f"unknown command '{name}'; use --help for help")
    lo, hi, _, allowed, _, _ = spec
    if len(args) < lo:
        raise UsageError(f"'{name}' command requires at least {lo} arguments")
    if hi is not None and len(args) > hi:
        raise UsageError(f"'{name}' command takes at most {hi} arguments")
    for o in opts:
        if o not in allowed:
            raise UsageError(f"'{name}' command has no '{o}' option")
    return name, args, opts


def usage():
    lines = [f"{PROG}: configure pvs-vswitchd through its database",
             f"usage: {PROG} [OPTIONS] COMMAND [ARG...] [-- [OPTIONS] COMMAND [ARG...]]...",
             "", "Commands:"]
    for name, spec in COMMANDS.items():
        lines.append(f"  {name} {spec[5]}")
    lines += ["", "Options:",
              "  --db=PATH            database file (else $PVS_DB, <rundir>/conf.db)",
              "  --rundir=DIR         daemon run directory (else $PVS_RUNDIR)",
              "  --no-wait            do not wait for pvs-vswitchd to reconfigure",
              "  -t, --timeout=SECS   wait at most SECS seconds (lock and daemon)",
              "  --bare               print values without quotes and column names",
              "  --if-exists, --may-exist, --with-iface, --columns=COL,..., --id=@NAME,",
              "  --all, --fake-iface  per-command options (see docs/pvs-vsctl.md)",
              "  -h, --help           display this help message"]
    return "\n".join(lines)


def run(inv):
    """Run the commands in one transaction; returns (output lines, next_cfg|None)."""
    store = Store(paths.db_path(inv.db, inv.rundir), timeout=inv.timeout or 60.0)
    try:
        write = any(COMMANDS[name][4] for name, _, _ in inv.commands)
        symtab, created, out = {}, set(), []
        with store.transaction(write=write) as txn:
            for name, args, opts in inv.commands:
                ctx = Context(txn, name, args, opts, symtab, bare=inv.bare)
                ctx.created = created
                COMMANDS[name][2](ctx)
                out.extend(ctx.out)
            for sym in symtab:
                if sym not in created and symtab[sym] not in _all_uuids(txn):
                    raise VsctlError(f'row id "{sym}" is referenced but never created '
                                     f'(e.g. with "-- --id={sym} create ...")')
            if write:
                _check_values(txn)
            inv.new_ifaces = sorted(r["name"] for u, r in txn.rows("Interface").items()
                                    if txn.original("Interface", u) is None)
        return out, (txn.next_cfg if txn.changed else None)
    finally:
        store.close()


def report_iface_errors(inv):
    """As ovs-vsctl after add-port/add-bond/add-br: an interface the daemon
    could not set up is reported (the command still succeeds)."""
    names = getattr(inv, "new_ifaces", ())
    if not names:
        return
    store = Store(paths.db_path(inv.db, inv.rundir), timeout=inv.timeout or 60.0)
    try:
        with store.transaction(write=False) as txn:
            errors = {r["name"]: r["error"] for r in txn.rows("Interface").values()
                      if r["name"] in names and r["error"]}
    finally:
        store.close()
    for name in names:
        if name in errors:
            print(f"{PROG}: Error detected while setting up '{name}': {errors[name]}.  "
                  f"See pvs-vswitchd log for details.", file=sys.stderr)
    if errors:
        print(f'{PROG}: The default log directory is "{paths.rundir(inv.rundir)}".', file=sys.stderr)


def _check_values(txn):
    """Values the switch would not understand (other_config keys it reads,
    interface types it lacks) are refused before anything is committed."""
    try:
        config_keys.check_changes(txn.tables, txn.original)
    except SchemaError as e:
        raise VsctlError(str(e)) from None


def _all_uuids(txn):
    return {u for rows in txn.tables.values() for u in rows}


def wait_for_daemon(inv, next_cfg, deadline):
    remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
    try:
        unixrpc.call(paths.ctl_path(inv.rundir), "vsctl/apply", [next_cfg], remaining)
        return True
    except unixrpc.RpcUnavailable:
        return False
    except unixrpc.RpcError as e:
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            raise VsctlError("timeout expired") from None
        print(f"{PROG}: warning: {e}", file=sys.stderr)
    except OSError as e:     # the daemon went away while we waited
        print(f"{PROG}: warning: {paths.ctl_path(inv.rundir)}: connection to the daemon failed "
              f"({e.strerror or e})", file=sys.stderr)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    inv = None
    try:
        inv = parse_argv(argv)
        if inv.help:
            print(usage())
            return 0
        deadline = None if inv.timeout is None else time.monotonic() + inv.timeout
        out, next_cfg = run(inv)
        for line in out:
            print(line)
        sys.stdout.flush()
        if next_cfg is not None and not inv.no_wait:
            if wait_for_daemon(inv, next_cfg, deadline):
                report_iface_errors(inv)
        return 0
    except Exit as e:
        return e.status
    except StoreBusy:
        msg = "timeout expired" if inv and inv.timeout is not None else "database is locked"
        print(f"{PROG}: {msg}", file=sys.stderr)
        return 1
    except (VsctlError, StoreError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except sqlite3.Error as e:
        path = paths.db_path(inv.db, inv.rundir) if inv else "database"
        print(f"{PROG}: {path}: database connection failed ({e})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
