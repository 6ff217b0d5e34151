"""Nicira extension actions (vendor 0x2320), shared by OpenFlow 1.0 and 1.3.

What: `decode(subtype, body, acts)` turns one NX action (`body` = the bytes
after the 2-byte subtype) into an actions.py object; `encode(action, acts)`
gives the whole NX action (header included) or None when the action is not
an NX one here. `acts` is the version's (decode_actions, encode_actions)
pair, for ct's nested actions.

| subtype | action | object |
|---|---|---|
| 1, 14 | resubmit, resubmit(port,table) | Resubmit |
| 2, 9 | set_tunnel, set_tunnel64 | SetField(tun_id, spelling set_tunnel[64]) |
| 6 | reg_move | Move |
| 7, 33 | reg_load, reg_load2 | SetField(spelling load) |
| 8 | note | Note |
| 15 | output_reg | OutputReg |
| 18, 21 | dec_ttl, dec_ttl_cnt_ids | DecTtl |
| 20 | controller | Controller (reason, max_len, id; no userdata) |
| 34 | conjunction | Conjunction (clause 1-based here, 0-based on the wire) |
| 35 (+36 nat inside) | ct | Ct (commit, force, zone, table, alg, exec, nat with IPv4 ranges) |
| 43 | ct_clear | CtClear |
| 16 | learn | Learn (nxlearn.py) |

Subfields (move, load, output_reg, ct zone) name their field by its NXM
header (or OXM when it has no NXM id), with ofs_nbits = ofs << 6 | n_bits - 1.
Errors: OFPBAC_BAD_LEN, OFPBAC_BAD_ARGUMENT, OFPBAC_BAD_SET_TYPE (unknown
field), OFPBAC_BAD_EXP_TYPE (unknown subtype). Pure functions.
"""

import ipaddress
import struct

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import fields as F
from pyvswitch.openflow import oxm
from pyvswitch.openflow.wire import EncodeError, OFError

NX_VENDOR = 0x00002320
(RESUBMIT, SET_TUNNEL, REG_MOVE, REG_LOAD, NOTE, SET_TUNNEL64, OUTPUT_REG,
 RESUBMIT_TABLE, DEC_TTL, CONTROLLER, DEC_TTL_CNT_IDS, REG_LOAD2, CONJUNCTION,
 CT, NAT, CT_CLEAR) = 1, 2, 6, 7, 8, 9, 15, 14, 18, 20, 21, 33, 34, 35, 36, 43
REASONS = {0: "no_match", 1: "action", 2: "invalid_ttl"}
REASON_IDS = {v: k for k, v in REASONS.items()}
CT_COMMIT, CT_FORCE = 1, 2
CT_NO_RECIRC = 255
ALGS = {21: "ftp", 69: "tftp"}
ALG_IDS = {v: k for k, v in ALGS.items()}
NAT_FLAGS = (("src", 1), ("dst", 2), ("persistent", 4), ("hash", 8), ("random", 16))


def _err(name, detail):
    return OFError(name, detail)


def _need(body, n, what):
    if len(body) < n:
        raise _err("OFPBAC_BAD_LEN", f"{what}: {len(body)} bytes")


def _zero_pad(body, start):
    if any(body[start:]):
        raise _err("OFPBAC_BAD_ARGUMENT", "nonzero padding")


def wrap(subtype, body):
    """An NX action: header + subtype + body, padded to 8 bytes."""
    n = 10 + len(body)
    pad = -n % 8
    return struct.pack("!HHIH", 0xFFFF, n + pad, NX_VENDOR, subtype) + body + bytes(pad)


# --- subfields ---------------------------------------------------------------------------
def _field_by_header(header):
    cls, fh = header >> 16, (header >> 8) & 0xFF
    name = oxm.BY_ID.get((cls, fh >> 1))
    if name is None or fh & 1:
        raise _err("OFPBAC_BAD_SET_TYPE", f"field header {header:#010x}")
    return name


def _header(name):
    cf = oxm._cf_for(name, False)
    return struct.unpack("!I", oxm.pack_header(cf, False, oxm.wire_len(cf)))[0]


def _subfield(header, ofs_nbits):
    name = _field_by_header(header)
    ofs, n = ofs_nbits >> 6, (ofs_nbits & 63) + 1
    if ofs + n > F.FIELDS[name].bits:
        raise _err("OFPBAC_BAD_ARGUMENT", f"{name}[{ofs}..{ofs + n - 1}] out of range")
    return name, ofs, n


def _ofs_nbits(start, n_bits):
    return start << 6 | (n_bits - 1)


def _contiguous(mask):
    start = (mask & -mask).bit_length() - 1
    n = mask.bit_length() - start
    return start, n, mask == ((1 << n) - 1) << start


# --- decoding -------------------------------------------------------------------------------
def decode(subtype, body, acts=None):
    if subtype == 16:                        # learn: nxlearn.py
        from pyvswitch.openflow import nxlearn
        return nxlearn.decode(body, acts)
    fn = _DECODERS.get(subtype)
    if fn is None:
        raise _err("OFPBAC_BAD_EXP_TYPE", f"NX action subtype {subtype}")
    return fn(body, acts)


def _d_resubmit(body, acts):
    _need(body, 6, "resubmit")
    return A.Resubmit(struct.unpack_from("!H", body)[0], 255)


def _d_resubmit_table(body, acts):
    _need(body, 6, "resubmit_table")
    port, table = struct.unpack_from("!HB", body)
    return A.Resubmit(port, table)


def _d_set_tunnel(body, acts):
    _need(body, 6, "set_tunnel")
    return A.SetField("tun_id", struct.unpack_from("!2xI", body)[0], 2**64 - 1, "set_tunnel")


def _d_set_tunnel64(body, acts):
    _need(body, 14, "set_tunnel64")
    return A.SetField("tun_id", struct.unpack_from("!6xQ", body)[0], 2**64 - 1, "set_tunnel64")


def _d_move(body, acts):
    _need(body, 14, "reg_move")
    n_bits, src_ofs, dst_ofs, src, dst = struct.unpack_from("!HHHII", body)
    if n_bits == 0:
        raise _err("OFPBAC_BAD_ARGUMENT", "reg_move of 0 bits")
    sname, dname = _field_by_header(src), _field_by_header(dst)
    for name, ofs in ((sname, src_ofs), (dname, dst_ofs)):
        if ofs + n_bits > F.FIELDS[name].bits:
            raise _err("OFPBAC_BAD_ARGUMENT", f"{name}: bits {ofs}+{n_bits} out of range")
    return A.Move(sname, src_ofs, dname, dst_ofs, n_bits)


def _d_load(body, acts):
    _need(body, 14, "reg_load")
    ofs_nbits, dst, value = struct.unpack_from("!HIQ", body)
    name, ofs, n = _subfield(dst, ofs_nbits)
    if value >> n:
        raise _err("OFPBAC_BAD_ARGUMENT", f"value {value:#x} wider than {n} bits")
    return A.SetField(name, value << ofs, ((1 << n) - 1) << ofs, "load")


def _d_load2(body, acts):
    try:
        cf, hasmask, value, mask, end = oxm.decode_tlv(bytes(body), 0)
    except OFError as e:
        raise _err("OFPBAC_BAD_SET_TYPE", e.detail) from None
    _zero_pad(body, end)
    name = oxm.BY_ID[cf]
    full = F.FIELDS[name].all_ones
    mask = full if not hasmask else mask
    if value & ~mask or mask & ~full:
        raise _err("OFPBAC_BAD_SET_ARGUMENT", f"{name}: value outside mask")
    return A.SetField(name, value, mask, "load" if mask != full else "set_field")


def _d_note(body, acts):
    return A.Note(bytes(body))          # padding included, as Open vSwitch keeps it


def _d_output_reg(body, acts):
    _need(body, 14, "output_reg")
    ofs_nbits, src, max_len = struct.unpack_from("!HIH", body)
    _zero_pad(body, 8)
    name, ofs, n = _subfield(src, ofs_nbits)
    return A.OutputReg(name, ofs, n, max_len)


def _d_dec_ttl(body, acts):
    _zero_pad(body, 0)
    return A.DecTtl()


def _d_dec_ttl_ids(body, acts):
    _need(body, 6, "dec_ttl_cnt_ids")
    n = struct.unpack_from("!H", body)[0]
    if len(body) < 6 + 2 * n:
        raise _err("OFPBAC_BAD_LEN", "dec_ttl controller ids")
    ids = struct.unpack_from(f"!{n}H", body, 6)
    return A.DecTtl(tuple(ids))


def _d_controller(body, acts):
    _need(body, 6, "controller")
    max_len, cid, reason = struct.unpack_from("!HHB", body)
    if reason not in REASONS:
        raise _err("OFPBAC_BAD_ARGUMENT", f"controller reason {reason}")
    return A.Controller(max_len, REASONS[reason], cid)


def _d_conjunction(body, acts):
    _need(body, 6, "conjunction")
    clause, n, conj_id = struct.unpack_from("!BBI", body)
    if not 2 <= n <= 64 or clause >= n:
        raise _err("OFPBAC_BAD_ARGUMENT", f"conjunction clause {clause}/{n}")
    return A.Conjunction(conj_id, clause + 1, n)


_CT = struct.Struct("!HIHB3xH")


def _d_ct(body, acts):
    _need(body, _CT.size, "ct")
    flags, zone_src, zone, table, alg = _CT.unpack_from(body)
    if flags & ~(CT_COMMIT | CT_FORCE):
        raise _err("OFPBAC_BAD_ARGUMENT", f"ct flags {flags:#x}")
    zone_field = None
    if zone_src:
        zone_field = _subfield(zone_src, zone)
        zone = None
    elif zone == 0:
        zone = None                    # the default zone, as written without zone=
    nat, exec_actions = None, []
    rest, off = bytes(body[_CT.size:]), 0
    while off < len(rest):             # nested actions: nat here, the rest by the codec
        _need(rest[off:], 8, "ct nested action")
        atype, length = struct.unpack_from("!HH", rest, off)
        if length < 8 or length % 8 or off + length > len(rest):
            raise _err("OFPBAC_BAD_LEN", f"ct nested action length {length}")
        one = rest[off:off + length]
        if atype == 0xFFFF and length >= 16 and struct.unpack_from("!IH", one, 4) == (
                NX_VENDOR, NAT):
            nat = _d_nat(one[10:])
        elif acts is None:
            raise _err("OFPBAC_BAD_ARGUMENT", "ct exec actions")
        else:
            exec_actions += acts[0](one)
        off += length
    return A.Ct(bool(flags & CT_COMMIT), bool(flags & CT_FORCE), zone, zone_field,
                None if table == CT_NO_RECIRC else table, ALGS.get(alg) if alg else None,
                nat, tuple(exec_actions))


def _d_nat(body):
    _need(body, 6, "nat")
    flags, present = struct.unpack_from("!2xHH", body)
    p = 6
    vals = {}
    for bit, size, key in ((1, 4, "ip_min"), (2, 4, "ip_max"), (4, 16, "ip6_min"),
                           (8, 16, "ip6_max"), (16, 2, "port_min"), (32, 2, "port_max")):
        if present & bit:
            if p + size > len(body):
                raise _err("OFPBAC_BAD_LEN", "nat range")
            vals[key] = int.from_bytes(body[p:p + size], "big")
            p += size
    return _nat_text(flags, vals)


def _nat_text(flags, vals):
    kind = "src" if flags & 1 else "dst" if flags & 2 else None
    if kind is None:
        return ""
    text = kind
    if "ip_min" in vals:
        text += "=" + str(ipaddress.IPv4Address(vals["ip_min"]))
        if "ip_max" in vals:
            text += "-" + str(ipaddress.IPv4Address(vals["ip_max"]))
        if "port_min" in vals:
            text += f":{vals['port_min']}"
            if "port_max" in vals:
                text += f"-{vals['port_max']}"
    for word, bit in NAT_FLAGS[2:]:
        if flags & bit:
            text += "," + word
    return text


def _d_ct_clear(body, acts):
    _zero_pad(body, 0)
    return A.CtClear()


_DECODERS = {
    RESUBMIT: _d_resubmit, RESUBMIT_TABLE: _d_resubmit_table, SET_TUNNEL: _d_set_tunnel,
    SET_TUNNEL64: _d_set_tunnel64, REG_MOVE: _d_move, REG_LOAD: _d_load,
    REG_LOAD2: _d_load2, NOTE: _d_note, OUTPUT_REG: _d_output_reg, DEC_TTL: _d_dec_ttl,
    DEC_TTL_CNT_IDS: _d_dec_ttl_ids, CONTROLLER: _d_controller,
    CONJUNCTION: _d_conjunction, CT: _d_ct, CT_CLEAR: _d_ct_clear,
}


# --- encoding --------------------------------------------------------------------------------
def encode(a, acts=None):
    """The NX action for `a`, or None if it has no NX form here."""
    if isinstance(a, A.Resubmit):
        if a.table == 255:
            return wrap(RESUBMIT, struct.pack("!H4x", a.port))
        return wrap(RESUBMIT_TABLE, struct.pack("!HB3x", a.port, a.table))
    if isinstance(a, A.GotoTable):
        return wrap(RESUBMIT_TABLE, struct.pack("!HB3x", F.OFPP_IN_PORT, a.table))
    if isinstance(a, A.SetField):
        return encode_load(a)
    if isinstance(a, A.Move):
        return wrap(REG_MOVE, struct.pack("!HHHII", a.n_bits, a.src_start, a.dst_start,
                                          _header(a.src), _header(a.dst)))
    if isinstance(a, A.Note):
        return wrap(NOTE, a.data.ljust(6, b"\0"))
    if isinstance(a, A.OutputReg):
        return wrap(OUTPUT_REG, struct.pack("!HIH6x", _ofs_nbits(a.start, a.n_bits),
                                            _header(a.field), a.max_len))
    if isinstance(a, A.DecTtl):
        if not a.controller_ids:
            return wrap(DEC_TTL, bytes(6))
        n = len(a.controller_ids)
        return wrap(DEC_TTL_CNT_IDS, struct.pack(f"!H4x{n}H", n, *a.controller_ids))
    if isinstance(a, A.Controller):
        if a.userdata:
            raise EncodeError("controller(userdata=...) needs NXAST_CONTROLLER2")
        return wrap(CONTROLLER, struct.pack("!HHBx", a.max_len, a.controller_id,
                                            REASON_IDS[a.reason]))
    if isinstance(a, A.Conjunction):
        return wrap(CONJUNCTION, struct.pack("!BBI", a.clause - 1, a.n_clauses, a.conj_id))
    if isinstance(a, A.Ct):
        return _encode_ct(a, acts)
    if isinstance(a, A.CtClear):
        return wrap(CT_CLEAR, bytes(6))
    if isinstance(a, A.Learn):
        from pyvswitch.openflow import nxlearn
        return nxlearn.encode(a)
    return None


def encode_load(a):
    """reg_load (<= 64 contiguous bits) or reg_load2 (an OXM TLV with mask)."""
    if a.spelling == "set_tunnel":
        return wrap(SET_TUNNEL, struct.pack("!2xI", a.value))
    if a.spelling == "set_tunnel64":
        return wrap(SET_TUNNEL64, struct.pack("!6xQ", a.value))
    start, n, contiguous = _contiguous(a.mask)
    if contiguous and n <= 64:
        return wrap(REG_LOAD, struct.pack("!HIQ", _ofs_nbits(start, n), _header(a.field),
                                          a.value >> start))
    cf = oxm._cf_for(a.field, True)
    full = F.FIELDS[a.field].all_ones
    return wrap(REG_LOAD2, oxm._tlv(cf, a.value, a.mask, full))


def _encode_ct(a, acts):
    flags = (CT_COMMIT if a.commit else 0) | (CT_FORCE if a.force else 0)
    if a.zone_field is not None:
        name, start, n = a.zone_field
        zone_src, zone = _header(name), _ofs_nbits(start, n)
    else:
        zone_src, zone = 0, a.zone or 0
    alg = ALG_IDS.get(a.alg, 0) if a.alg else 0
    if a.alg and not alg:
        raise EncodeError(f"ct alg {a.alg}")
    nested = acts[1](a.exec_actions) if (acts and a.exec_actions) else b""
    if a.exec_actions and not acts:
        raise EncodeError("ct exec without an action codec")
    if a.nat is not None:
        nested += _encode_nat(a.nat)
    body = _CT.pack(flags, zone_src, zone, CT_NO_RECIRC if a.table is None else a.table,
                    alg) + nested
    return struct.pack("!HHIH", 0xFFFF, 10 + len(body), NX_VENDOR, CT) + body


def _encode_nat(text):
    flags, present, ranges = 0, 0, b""
    words = [w for w in text.split(",") if w] if text else []
    for w in words:
        kind, _, arg = w.partition("=")
        if kind in ("src", "dst"):
            flags |= 1 if kind == "src" else 2
            if arg:
                present, ranges = _nat_range(arg)
        else:
            bit = dict(NAT_FLAGS).get(kind)
            if bit is None or kind in ("src", "dst"):
                raise EncodeError(f"nat option {w}")
            flags |= bit
    body = struct.pack("!2xHH", flags, present) + ranges
    return wrap(NAT, body)


def _nat_range(arg):
    addrs, _, ports = arg.partition(":")
    lo, _, hi = addrs.partition("-")
    try:
        out = ipaddress.IPv4Address(lo).packed
        present = 1
        if hi:
            out += ipaddress.IPv4Address(hi).packed
            present |= 2
    except ValueError:
        raise EncodeError(f"nat range {arg}: IPv4 only") from None
    if ports:
        plo, _, phi = ports.partition("-")
        out += struct.pack("!H", int(plo))
        present |= 16
        if phi:
            out += struct.pack("!H", int(phi))
            present |= 32
    return present, out
