"""`pvs-vsctl show`: the ovs-vsctl show layout.

    <Open_vSwitch uuid>
        Bridge br0
            Controller "tcp:127.0.0.1:6653"
                is_connected: true
            fail_mode: secure
            datapath_type: netdev
            Port p1
                tag: 10
                Interface p1
                    type: afpacket
                    options: {peer=p2}
                    error: "could not open p1"
        ovs_version: "0.1.0"

Like ovs-vsctl: each record prints its name column, then the listed columns
that differ from their default ("key: value" in ovsdb text syntax), and the
records it references, indented by four spaces per level. Bridges, ports,
interfaces and controllers are sorted by name.
"""

from pyvswitch.db import datum, schema
from pyvswitch.db.schema import TABLES, ROOT

# table -> (name column, [(column, child table or None)])
LAYOUT = {
    ROOT: (None, [("bridges", "Bridge"), ("ovs_version", None)]),
    "Bridge": ("name", [("controller", "Controller"), ("fail_mode", None),
                        ("datapath_type", None), ("ports", "Port")]),
    "Port": ("name", [("tag", None), ("trunks", None), ("interfaces", "Interface")]),
    "Interface": ("name", [("type", None), ("options", None), ("error", None)]),
    "Controller": ("target", [("is_connected", None)]),
}


def show(txn):
    """The show text as a list of lines."""
    ru, root = txn.root()
    lines = [ru]
    _body(txn, ROOT, root, 1, lines)
    return lines


def _body(txn, table, row, depth, lines):
    pad = "    " * depth
    columns = TABLES[table].columns
    for cname, child in LAYOUT[table][1]:
        col = columns[cname]
        value = row[cname]
        if child is not None:
            _children(txn, child, value, depth, lines)
        elif value != schema.default(col.type):
            lines.append(f"{pad}{cname}: {datum.format_value(col.type, value)}")


def _children(txn, table, uuids, depth, lines):
    name_col = LAYOUT[table][0]
    rows = [txn.get(table, u) for u in uuids]
    rows = sorted((r for r in rows if r is not None), key=lambda r: r[name_col])
    col = TABLES[table].columns[name_col]
    for r in rows:
        lines.append(f"{'    ' * depth}{table} {datum.format_value(col.type, r[name_col])}")
        _body(txn, table, r, depth + 1, lines)


def cmd_show(ctx):
    for line in show(ctx.txn):
        ctx.print(line)
