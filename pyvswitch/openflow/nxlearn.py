"""NXAST_LEARN (Nicira action subtype 16): the learn action on the wire.

What: `decode(body)` (body = the bytes after the 2-byte subtype) -> an
actions.Learn; `encode(learn)` -> the whole NX action. Layout (Open vSwitch's
nx_action_learn): idle_timeout, hard_timeout, priority (16 bits each),
cookie (64), flags (16: send_flow_rem 1, delete_learned 2), table_id (8),
pad, fin_idle_timeout, fin_hard_timeout (16 each; pyvswitch keeps 0), then
flow_mod_spec elements up to a zero header (padding):

    header: src (bit 13: 0 field, 1 immediate), dst (bits 11-12: 0 match,
            1 load, 2 output), n_bits (bits 0-10)
    src:    field: NXM/OXM header (32) + ofs (16); immediate: the value in
            ceil(n_bits / 16) 16-bit words
    dst:    match, load: header (32) + ofs (16); output: nothing

Errors: OFPBAC_BAD_LEN, OFPBAC_BAD_ARGUMENT (unknown flags, bad spec),
OFPBAC_BAD_SET_TYPE (unknown field). Pure functions.
"""

import struct

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import nxact
from pyvswitch.openflow.wire import OFError

LEARN = 16
_HEAD = struct.Struct("!HHHQHBxHH")
FLAGS = {"send_flow_rem": 1, "delete_learned": 2}
SRC_IMM, DST_LOAD, DST_OUTPUT = 1 << 13, 1 << 11, 2 << 11
_SUBFIELD = struct.Struct("!IH")


def _field(header, ofs, n_bits):
    name = nxact._field_by_header(header)
    if ofs + n_bits > F.FIELDS[name].bits:
        raise OFError("OFPBAC_BAD_ARGUMENT", f"learn: {name}[{ofs}..] out of range")
    return name


def decode(body, acts=None):
    if len(body) < _HEAD.size:
        raise OFError("OFPBAC_BAD_LEN", f"learn: {len(body)} bytes")
    idle, hard, prio, cookie, flags, table, fin_idle, fin_hard = _HEAD.unpack_from(body)
    if flags & ~sum(FLAGS.values()):
        raise OFError("OFPBAC_BAD_ARGUMENT", f"learn flags {flags:#x}")
    if table == 255:
        raise OFError("OFPBAC_BAD_ARGUMENT", "learn into table 255")
    specs, off = [], _HEAD.size
    while off + 2 <= len(body):
        head = struct.unpack_from("!H", body, off)[0]
        if head == 0:
            if any(body[off:]):
                raise OFError("OFPBAC_BAD_ARGUMENT", "learn: nonzero padding")
            break
        off += 2
        n_bits, dst_kind = head & 0x7FF, head & (3 << 11)
        if not n_bits or head & ~0x3FFF or dst_kind == 3 << 11:
            raise OFError("OFPBAC_BAD_ARGUMENT", f"learn spec header {head:#06x}")
        if head & SRC_IMM:
            n = (n_bits + 15) // 16 * 2
            if off + n > len(body):
                raise OFError("OFPBAC_BAD_LEN", "learn immediate")
            src = ("imm", int.from_bytes(body[off:off + n], "big"))
            off += n
        else:
            if off + _SUBFIELD.size > len(body):
                raise OFError("OFPBAC_BAD_LEN", "learn source")
            header, ofs = _SUBFIELD.unpack_from(body, off)
            off += _SUBFIELD.size
            src = ("field", _field(header, ofs, n_bits), ofs)
        if dst_kind == DST_OUTPUT:
            if src[0] != "field":
                raise OFError("OFPBAC_BAD_ARGUMENT", "learn output from an immediate")
            specs.append(("output", src[1], src[2], n_bits))
            continue
        if off + _SUBFIELD.size > len(body):
            raise OFError("OFPBAC_BAD_LEN", "learn destination")
        header, ofs = _SUBFIELD.unpack_from(body, off)
        off += _SUBFIELD.size
        dst = _field(header, ofs, n_bits)
        specs.append(("load" if dst_kind == DST_LOAD else "match", dst, ofs, n_bits, src))
    return A.Learn(table=table, priority=prio, idle_timeout=idle, hard_timeout=hard,
                   cookie=cookie, flags=frozenset(w for w, b in FLAGS.items() if flags & b),
                   specs=tuple(specs))


def _spec(spec):
    kind = spec[0]
    if kind == "output":
        _, field, start, n = spec
        return (struct.pack("!H", DST_OUTPUT | n)
                + _SUBFIELD.pack(nxact._header(field), start))
    _, dst, start, n, src = spec
    head = (DST_LOAD if kind == "load" else 0) | n
    if src[0] == "imm":
        words = (n + 15) // 16 * 2
        out = struct.pack("!H", head | SRC_IMM) + src[1].to_bytes(words, "big")
    else:
        out = struct.pack("!H", head) + _SUBFIELD.pack(nxact._header(src[1]), src[2])
    return out + _SUBFIELD.pack(nxact._header(dst), start)


def encode(a):
    flags = sum(FLAGS[w] for w in a.flags)
    body = _HEAD.pack(a.idle_timeout, a.hard_timeout, a.priority, a.cookie, flags,
                      a.table, 0, 0)
    return nxact.wrap(LEARN, body + b"".join(_spec(s) for s in a.specs))
