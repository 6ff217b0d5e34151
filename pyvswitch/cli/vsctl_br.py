"""pvs-vsctl bridge, port, interface, controller and fail-mode commands.

ovs-vsctl(8) semantics on the transaction in Context: a bridge is a Bridge
row listed in Open_vSwitch.bridges with a local Port and an internal
Interface of the same name; a port is a Port row listed in Bridge.ports
with one Interface (add-port) or several (add-bond). Deleting only unlinks:
the store's garbage collection removes rows no longer referenced.
Fake (VLAN) bridges are not supported: br-to-vlan prints 0, br-to-parent
prints the bridge itself.
"""

from pyvswitch.db.schema import TABLES, ROOT
from pyvswitch.cli.vsctl_ctx import VsctlError, Exit
from pyvswitch.cli.vsctl_db import set_value

CONTROLLER_PREFIXES = ("tcp:", "ssl:", "unix:", "ptcp:", "pssl:", "punix:")


def _link(ctx, table, u, column, add=(), remove=()):
    row = ctx.txn.get(table, u)
    value = tuple(x for x in row[column] if x not in remove) + tuple(add)
    ctx.txn.update(table, u, {column: value})


# ---- bridges -------------------------------------------------------------

def cmd_add_br(ctx):
    if len(ctx.args) == 3:
        raise VsctlError("fake bridges (add-br BRIDGE PARENT VLAN) are not supported")
    if len(ctx.args) == 2:
        raise VsctlError("'add-br' command takes exactly 1 or 3 arguments")
    name = ctx.args[0]
    if ctx.has("--may-exist") and ctx.bridge(name, must_exist=False):
        return
    ctx.check_conflicts(name, f"cannot create a bridge named {name}")
    iface = ctx.txn.insert("Interface", {"name": name, "type": "internal"})
    port = ctx.txn.insert("Port", {"name": name, "interfaces": [iface]})
    br = ctx.txn.insert("Bridge", {"name": name, "ports": [port]})
    _link(ctx, ROOT, ctx.txn.root()[0], "bridges", add=[br])


def cmd_del_br(ctx):
    found = ctx.bridge(ctx.args[0], must_exist=not ctx.has("--if-exists"))
    if found:
        _link(ctx, ROOT, ctx.txn.root()[0], "bridges", remove=[found[0]])


def cmd_list_br(ctx):
    for name in sorted(ctx.bridges()):
        ctx.print(name)


def cmd_br_exists(ctx):
    if not ctx.bridge(ctx.args[0], must_exist=False):
        raise Exit(2)


def cmd_br_to_vlan(ctx):
    ctx.bridge(ctx.args[0])
    ctx.print("0")


def cmd_br_to_parent(ctx):
    ctx.bridge(ctx.args[0])
    ctx.print(ctx.args[0])


def cmd_br_set_external_id(ctx):
    u, row = ctx.bridge(ctx.args[0])
    ids = dict(row["external_ids"])
    if len(ctx.args) == 3:
        ids[ctx.args[1]] = ctx.args[2]
    else:
        ids.pop(ctx.args[1], None)
    ctx.txn.update("Bridge", u, {"external_ids": ids})


def cmd_br_get_external_id(ctx):
    _, row = ctx.bridge(ctx.args[0])
    ids = row["external_ids"]
    if len(ctx.args) == 2:
        if ctx.args[1] in ids:
            ctx.print(ids[ctx.args[1]])
    else:
        for k, v in ids.items():
            ctx.print(f"{k}={v}")


# ---- ports and interfaces ------------------------------------------------

def _add_port(ctx, br_name, port_name, iface_names, settings, fake_iface=False):
    if ctx.has("--may-exist") and _port_may_exist(ctx, br_name, port_name, iface_names):
        return
    bu, _ = ctx.bridge(br_name)
    ctx.check_conflicts(port_name, f"cannot create a port named {port_name}")
    for name in iface_names:
        if name != port_name:
            ctx.check_conflicts(name, f"cannot create an interface named {name}")
    if len(set(iface_names)) != len(iface_names):
        raise VsctlError(f"cannot create a port named {port_name} with duplicate interfaces")
    ifaces = [ctx.txn.insert("Interface", {"name": n}) for n in iface_names]
    values = {"name": port_name, "interfaces": ifaces}
    if fake_iface:
        values["bond_fake_iface"] = True
    pu = ctx.txn.insert("Port", values)
    for arg in settings:
        set_value(ctx, TABLES["Port"], pu, arg)
    _link(ctx, "Bridge", bu, "ports", add=[pu])


def _port_may_exist(ctx, br_name, port_name, iface_names):
    found = ctx.ports().get(port_name)
    if found is None:
        return False
    pu, prow, _, brow = found
    cmd = f'"--may-exist {ctx.name} {br_name} {port_name}"'
    if brow["name"] != br_name:
        raise VsctlError(f"{cmd} but {port_name} is actually attached to bridge "
                         f"{brow['name']}")
    have = sorted(ctx.txn.get("Interface", i)["name"] for i in prow["interfaces"])
    if have != sorted(iface_names):
        raise VsctlError(f"{cmd} but {port_name} actually has interface(s) "
                         f"{', '.join(have)}")
    return True


def cmd_add_port(ctx):
    br, port = ctx.args[:2]
    _add_port(ctx, br, port, [port], ctx.args[2:])


def cmd_add_bond(ctx):
    br, port = ctx.args[:2]
    rest = ctx.args[2:]
    n = next((i for i, a in enumerate(rest) if "=" in a), len(rest))
    ifaces, settings = rest[:n], rest[n:]
    fake = ctx.has("--fake-iface")
    if len(ifaces) < 2 and not fake:
        raise VsctlError(f"add-bond requires at least 2 interfaces, but only "
                         f"{len(ifaces)} were specified")
    if not ifaces:
        raise VsctlError("add-bond requires at least 1 interface")
    _add_port(ctx, br, port, ifaces, settings, fake_iface=fake)


def cmd_del_port(ctx):
    name = ctx.args[-1]
    found = ctx.ports().get(name)
    if found is None and ctx.has("--with-iface"):
        iface = ctx.ifaces().get(name)
        if iface:
            found = ctx.ports()[iface[2]["name"]]
    if len(ctx.args) == 2:
        bu, brow = ctx.bridge(ctx.args[0])
    if found is None:
        if ctx.has("--if-exists"):
            return
        what = "port or interface" if ctx.has("--with-iface") else "port"
        raise VsctlError(f"no {what} named {name}")
    pu, prow, pbu, pbrow = found
    if len(ctx.args) == 2 and pbu != bu:
        raise VsctlError(f"bridge {ctx.args[0]} does not have a port {name}")
    if prow["name"] == pbrow["name"]:
        raise VsctlError(f"cannot delete port {prow['name']} because it is the local port "
                         f"for bridge {pbrow['name']} (deleting this port requires deleting "
                         f"the entire bridge)")
    _link(ctx, "Bridge", pbu, "ports", remove=[pu])


def cmd_list_ports(ctx):
    bu, brow = ctx.bridge(ctx.args[0])
    names = (ctx.txn.get("Port", p)["name"] for p in brow["ports"])
    for n in sorted(n for n in names if n != brow["name"]):
        ctx.print(n)


def cmd_list_ifaces(ctx):
    bu, brow = ctx.bridge(ctx.args[0])
    names = []
    for p in brow["ports"]:
        for i in ctx.txn.get("Port", p)["interfaces"]:
            names.append(ctx.txn.get("Interface", i)["name"])
    for n in sorted(n for n in names if n != brow["name"]):
        ctx.print(n)


def cmd_port_to_br(ctx):
    found = ctx.ports().get(ctx.args[0])
    if found is None:
        raise VsctlError(f"no port named {ctx.args[0]}")
    ctx.print(found[3]["name"])


def cmd_iface_to_br(ctx):
    found = ctx.ifaces().get(ctx.args[0])
    if found is None:
        raise VsctlError(f"no interface named {ctx.args[0]}")
    ctx.print(found[3]["name"])


# ---- controllers and fail mode -------------------------------------------

def cmd_set_controller(ctx):
    bu, _ = ctx.bridge(ctx.args[0])
    for target in ctx.args[1:]:
        if not target.startswith(CONTROLLER_PREFIXES):
            raise VsctlError(f'"{target}": not a valid controller target '
                             f'(use tcp:IP[:PORT], ssl:..., unix:FILE or ptcp:[PORT])')
    ctrls = [ctx.txn.insert("Controller", {"target": t}) for t in ctx.args[1:]]
    ctx.txn.update("Bridge", bu, {"controller": ctrls})


def cmd_del_controller(ctx):
    bu, _ = ctx.bridge(ctx.args[0])
    ctx.txn.update("Bridge", bu, {"controller": ()})


def cmd_get_controller(ctx):
    _, brow = ctx.bridge(ctx.args[0])
    targets = (ctx.txn.get("Controller", c)["target"] for c in brow["controller"])
    for t in sorted(targets):
        ctx.print(t)


def cmd_set_fail_mode(ctx):
    bu, _ = ctx.bridge(ctx.args[0])
    mode = ctx.args[1]
    if mode not in ("standalone", "secure"):
        raise VsctlError('fail-mode must be "standalone" or "secure"')
    ctx.txn.update("Bridge", bu, {"fail_mode": mode})


def cmd_get_fail_mode(ctx):
    _, brow = ctx.bridge(ctx.args[0])
    if brow["fail_mode"]:
        ctx.print(brow["fail_mode"])


def cmd_del_fail_mode(ctx):
    bu, _ = ctx.bridge(ctx.args[0])
    ctx.txn.update("Bridge", bu, {"fail_mode": None})
