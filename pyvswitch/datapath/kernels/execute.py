"""execute: run a datapath action program (actions.py) over one packet.

The packet is pool[slot, off:off+length], or, held by reference (vhost-user
receive, state.py's split table), its headers there and the rest in the
guest's buffer: output sends it as it is, tnl_push and tnl_pop change only
the slot's part (the VXLAN loop copies a long payload once, guest to guest),
actions that rewrite or keep it make it whole first (`whole`). push_vlan
moves the 12 MAC bytes 4 bytes back into the headroom and writes the tag (no room: the packet is
dropped, S_LOST); pop_vlan moves them forward; set_vlan/set_eth rewrite in
place; set (a masked header field, with checksum updates) is setfield.py's;
meter runs the token bucket of meter.py at the action's address (a packet
over the rate stops there), timed by the PMD's stamped clock plus the TSC. output calls portio.tx_one on this PMD's tx row for the port (txmap)
and marks the row touched, so the loop flushes it once per burst. userspace
copies the packet (as it is at that point) into a fresh slot on the upcall
queue with the action's argument; the Python side hands it on. recirc puts
the packet on the PMD's recirculation queue with its key (metadata kept,
recirc_id = the argument) for another datapath pass in the same burst: as
the last action the slot itself moves there (no copy), otherwise a copy goes.
Deeper than MAX_RECIRC_DEPTH, or with the queue full, it is dropped
(S_RECIRC_DROP). execute_actions returns 1 when the slot moved (the caller
must not free it), else 0; otherwise the slot is not freed here.

`execute_ref(actions, frame)` is the twin over bytes: it returns the
(dp_port, frame) outputs and (arg, frame) userspace copies in order.
Called by the PMD loop and by `execute_upcalls` (PMD thread only).
"""

import struct

import numpy as np

from pyvswitch.conntrack import table as CTT
from pyvswitch.core.intrinsics import memcpy_u8, rdtsc, view_i64, view_i64_py, view_u8
from pyvswitch.core.jit import kernel
from pyvswitch.datapath import actions as A
from pyvswitch.datapath import layout as L
from pyvswitch.datapath.actions import encode_actions  # noqa: F401  (the brief's name)
from pyvswitch.datapath.kernels import meter as MT
from pyvswitch.datapath.kernels import portio
from pyvswitch.datapath.kernels import setfield as SF
from pyvswitch.datapath.kernels import state as S
from pyvswitch.datapath.kernels import tunnel as TN
from pyvswitch.datapath.layout import (MAX_RECIRC_DEPTH, META_MASK, S_IN_PORT, W_DL_DST, W_DL_SRC,
                                       W_IN_PORT, W_NW_ADDR, W_RECIRC, W_TP, W_TUN_ADDR,
                                       W_TUN_ID)
from pyvswitch.ports.io import IO_COLS, XS_ADDR, XS_HDR, headers_fit

W_CT, S_CT_STATE, S_CT_ZONE = L.FIELDS["ct_state"][0], L.FIELDS["ct_state"][1], L.FIELDS["ct_zone"][1]
CT_KEY_MASK = np.uint64(((1 << 8) - 1) << S_CT_STATE | ((1 << 16) - 1) << S_CT_ZONE)
assert L.FIELDS["ct_zone"][0] == W_CT and L.FIELDS["ct_mark"] == (W_RECIRC, 32, 32)

VLAN_CFI = 0x1000


@kernel(nrt=False, inline=True)
def tx_row(p, r, slot, off, length):
    """portio.tx_one on io row r of the PMD's address tables."""
    return portio.tx_one(view_u8(p.memptr[r, 0], p.memptr[r, 1]), view_i64(p.rowptr[r], IO_COLS),
                         p.pool, slot, off, length, p.qstats[r])


@kernel(nrt=False, inline=True)
def _put_rest(p, dst, slot, off, length):
    """Copy the part of a frame held by reference (split table) into pool[dst]
    at its place after the headers."""
    hl = p.xs[2 * slot + XS_HDR]
    memcpy_u8(p.pool[dst], off + hl, view_u8(p.xs[2 * slot + XS_ADDR], length - hl), 0, length - hl)


@kernel(nrt=False, inline=True)
def whole(p, slot, off, length):
    """Make a frame held by reference (split table, state.py) whole in its
    slot: before anything that rewrites it, keeps it past the burst, or sends
    it to a port that needs it in one piece."""
    if p.xs[2 * slot + XS_HDR] > 0:
        _put_rest(p, slot, slot, off, length)
        p.xs[2 * slot + XS_HDR] = 0
        p.stats[S.S_SPLIT_COPY] += 1


@kernel(nrt=False)
def _tx_split(p, r, slot, off, length):
    """Output of a frame held by reference: straight from the guest's buffer
    into a vhost-user port (one copy), else made whole first."""
    io = view_i64(p.rowptr[r], IO_COLS)
    mem = view_u8(p.memptr[r, 0], p.memptr[r, 1])
    if portio.tx_split(mem, io, p.pool, slot, off, p.xs[2 * slot + XS_HDR], p.xs[2 * slot + XS_ADDR],
                       length, p.qstats[r]) == -2:
        whole(p, slot, off, length)
        portio.tx_one(mem, io, p.pool, slot, off, length, p.qstats[r])


@kernel(nrt=False, inline=True)
def _output(p, port, slot, off, length):
    if port < 0 or port >= p.txmap.shape[0] or p.txmap[port] < 0:
        p.stats[S.S_TX_NOPORT] += 1
        return
    r = p.txmap[port]
    if p.xs[2 * slot + XS_HDR] > 0:
        _tx_split(p, r, slot, off, length)
    else:
        tx_row(p, r, slot, off, length)
    p.stats[S.S_TX_PACKETS] += 1
    if p.touched[r] == 0:
        p.touched[r] = 1
        p.tlist[p.ctl[S.C_NTOUCHED]] = r
        p.ctl[S.C_NTOUCHED] += 1


@kernel(nrt=False, inline=True)
def _to_userspace(p, slot, off, length, key, in_port, arg):
    n = p.ctl[S.C_UPQ_N]
    new = _copy_slot(p, slot, off, length) if n < p.upq_meta.shape[0] else -1
    if new < 0:
        p.stats[S.S_LOST] += 1
        return
    for w in range(p.upq_key.shape[1]):
        p.upq_key[n, w] = key[w]
    m = p.upq_meta[n]
    m[S.U_SLOT], m[S.U_OFF], m[S.U_LEN], m[S.U_IN_PORT] = new, off, length, in_port
    m[S.U_KIND], m[S.U_ARG] = S.KIND_USERSPACE, arg
    p.ctl[S.C_UPQ_N] = n + 1
    p.stats[S.S_USERSPACE] += 1


@kernel(nrt=False, inline=True)
def _now_ns(p):
    return p.ctl[S.C_NOW_NS] + (rdtsc() - p.ctl[S.C_NOW_TSC]) * 1000 // max(p.ctl[S.C_CYC_PER_US], 1)


@kernel(nrt=False, inline=True)
def _rcq_put(p, slot, off, length, move):
    """The recirculation queue row for the packet's next pass (its key is the
    caller's to write), or -1: too deep, queue full or no slot for the copy
    (dropped, S_RECIRC_DROP). move: the slot itself goes, else a copy."""
    n = p.ctl[S.C_RCQ_N]
    depth = p.ctl[S.C_DEPTH]
    if depth >= MAX_RECIRC_DEPTH or n >= p.rcq_meta.shape[0]:
        p.stats[S.S_RECIRC_DROP] += 1
        return -1
    if not move:
        slot = _copy_slot(p, slot, off, length)
        if slot < 0:
            p.stats[S.S_RECIRC_DROP] += 1
            return -1
    m = p.rcq_meta[n]
    m[S.RC_SLOT], m[S.RC_OFF], m[S.RC_LEN], m[S.RC_DEPTH] = slot, off, length, depth + 1
    p.ctl[S.C_RCQ_N] = n + 1
    p.stats[S.S_RECIRC] += 1
    return n


@kernel(nrt=False, inline=True)
def _recirc(p, slot, off, length, key, rid, move):
    """Queue the packet for another pass with recirc_id = rid; returns 1 if the
    slot itself moved to the queue."""
    n = _rcq_put(p, slot, off, length, move)
    if n < 0:
        return 0
    row = p.rcq_key[n]
    for w in range(row.shape[0]):
        row[w] = key[w]
    row[W_RECIRC] = (key[W_RECIRC] & ~np.uint64(0xFFFFFFFF)) | np.uint64(rid & 0xFFFFFFFF)
    return 1 if move else 0


@kernel(nrt=False, inline=True)
def _take_slot(p):
    top = p.ctl[S.C_FREE_TOP]
    if top == 0:
        return -1
    p.ctl[S.C_FREE_TOP] = top - 1
    return p.free[top - 1]


@kernel(nrt=False, inline=True)
def _give_slot(p, slot):
    p.xs[2 * slot + XS_HDR] = 0
    p.free[p.ctl[S.C_FREE_TOP]] = slot
    p.ctl[S.C_FREE_TOP] += 1


@kernel(nrt=False, inline=True)
def _copy_slot(p, slot, off, length):
    """A free slot holding a whole copy of the frame (same offset), or -1."""
    new = _take_slot(p)
    if new >= 0:
        hl = p.xs[2 * slot + XS_HDR]
        memcpy_u8(p.pool[new], off, p.pool[slot], off, hl if hl > 0 else length)
        if hl > 0:
            _put_rest(p, new, slot, off, length)
    return new


@kernel(nrt=False, inline=True)
def _flow_hash(key):
    """Hash of the inner flow (addresses, protocol, ports) for the tunnel's UDP
    source port: packets of one flow take one underlay path."""
    h = (np.uint64(0x9E3779B97F4A7C15) ^ (key[0] >> np.uint64(32))) * np.uint64(0xBF58476D1CE4E5B9)
    for w in (W_DL_DST, W_DL_SRC, W_NW_ADDR, W_TP):
        h = (h ^ key[w]) * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(31))
    return h


@kernel(nrt=False, inline=True)
def _tnl_pop(p, slot, off, length, key, arg, move):
    """Strip the outer headers, set the tunnel metadata and in_port, and give
    the inner frame another pass (returns 1 if the slot moved, -1 if the frame
    is no VXLAN packet for this port: it is dropped). A frame held by
    reference stays so when the slot itself moves on and the inner frame's
    headers are in the slot's part (io.headers_fit); else it is made whole."""
    hl = p.xs[2 * slot + XS_HDR]
    if hl > 0 and (not move or hl < TN.POP_READS):
        whole(p, slot, off, length)
        hl = 0
    dst_port = (arg >> 16) & 0xFFFF
    inner = TN.tnl_pop(p.pool[slot], off, length, dst_port, p.tnl_out)
    if inner < 0:
        p.stats[S.S_TNL_POP_ERR] += 1
        return -1
    if hl > 0:
        rest = hl - (inner - off)
        if headers_fit(p.pool[slot], inner, rest):
            p.xs[2 * slot + XS_HDR] = rest
        else:
            whole(p, slot, off, length)
    o = p.tnl_out
    n = _rcq_put(p, slot, inner, o[5], move)
    if n < 0:
        return 0
    # Fresh metadata (ct state, marks: cleared) but the tunnel's; the header
    # bits do not matter, the next pass parses the inner frame again.
    row = p.rcq_key[n]
    for w in range(row.shape[0]):
        row[w] = key[w] & ~META_MASK[w]
    row[W_IN_PORT] |= np.uint64(arg & 0xFFFF) << np.uint64(S_IN_PORT)
    row[W_TUN_ID] = np.uint64(o[0])
    row[W_TUN_ADDR] = np.uint64(o[1]) | (np.uint64(o[2]) << np.uint64(32))
    row[W_RECIRC] = (row[W_RECIRC] & ~np.uint64(0xFFFFFFFF)) | (key[W_RECIRC] & np.uint64(0xFFFFFFFF))
    return 1 if move else 0


@kernel(nrt=False)
def _ct(p, b, off, length, key, arg, acts, i):
    """ct(zone, commit, mark, label): track the packet, then write ct_state,
    ct_zone and ct_mark into its key (the metadata a recirc carries on)."""
    zone = arg & 0xFFFF
    commit = (arg >> 16) & 1
    st = CTT.ct_process(p.ct, b, off, length, key, zone, commit == 1, _now_ns(p), p.ct_out, p.ct_q)
    o = p.ct_out
    if commit == 1 and o[0] >= 0 and st & CTT.CS_INV == 0:
        if (arg >> 17) & 1:
            CTT.ct_set_mark(p.ct, o[0], acts[i], acts[i + 1])
            o[1] = (o[1] & ~acts[i + 1]) | (acts[i] & acts[i + 1])
        if (arg >> 18) & 1:
            CTT.ct_set_label(p.ct, o[0], acts[i + 2], acts[i + 3], acts[i + 4], acts[i + 5])
    key[W_CT] = (key[W_CT] & ~CT_KEY_MASK) | (np.uint64(st & 0xFF) << np.uint64(S_CT_STATE)) \
        | (np.uint64(zone) << np.uint64(S_CT_ZONE))
    key[W_RECIRC] = (key[W_RECIRC] & np.uint64(0xFFFFFFFF)) | (np.uint64(o[1] & 0xFFFFFFFF) << np.uint64(32))
    if o[0] >= 0:
        key[L.W_CT_LABEL_HI] = np.uint64(p.ct.conn[o[0], CTT.C_LABEL_HI])
        key[L.W_CT_LABEL_LO] = np.uint64(p.ct.conn[o[0], CTT.C_LABEL_LO])
    else:
        key[L.W_CT_LABEL_HI] = np.uint64(0)
        key[L.W_CT_LABEL_LO] = np.uint64(0)


@kernel(nrt=False, inline=True)
def _needs_whole(op):
    """Actions that work on a frame held by reference without making it whole:
    they read or rewrite only the headers (in the slot), or copy it whole
    themselves (userspace, clone). The rest move or rewrite bytes past them."""
    return not (op == A.OP_OUTPUT or op == A.OP_CT or op == A.OP_CT_CLEAR or op == A.OP_RECIRC
                or op == A.OP_METER or op == A.OP_SET_ETH_SRC or op == A.OP_SET_ETH_DST
                or op == A.OP_SET_VLAN or op == A.OP_USERSPACE or op == A.OP_CLONE
                or op == A.OP_TNL_PUSH or op == A.OP_TNL_POP)


@kernel(nrt=False, inline=True)
def execute_actions(p, acts, a_off, a_len, slot, off, length, key, in_port):
    """Run acts[a_off:a_off+a_len] over the packet; bounds are checked.
    Returns 1 if the slot moved to the recirculation queue, else 0.

    clone(n words) runs the next n words on a copy of the packet (in place
    when nothing follows it); a drop inside a clone ends only the clone.
    Clones do not nest (encode_actions refuses it)."""
    end = min(a_off + a_len, acts.shape[0])
    i = max(a_off, 0)
    c_end, c_slot, c_off, c_len, c_moved = -1, -1, 0, 0, False   # the open clone, if any
    while True:
        if c_end >= 0 and i >= c_end:        # back to the original packet
            if not c_moved:
                _give_slot(p, slot)
            slot, off, length, c_end = c_slot, c_off, c_len, -1
        if i >= end - 1:
            break
        b = p.pool[slot]
        op, arg = acts[i], acts[i + 1]
        i += 2
        ok = True
        if p.xs[2 * slot + XS_HDR] > 0 and _needs_whole(op):
            whole(p, slot, off, length)
        if op == A.OP_OUTPUT:
            _output(p, arg, slot, off, length)
        elif op == A.OP_PUSH_VLAN:
            if off < 4 or length < 12:
                p.stats[S.S_LOST] += 1
                ok = False
            else:
                for k in range(12):
                    b[off - 4 + k] = b[off + k]
                off -= 4
                length += 4
                tci = arg & ~VLAN_CFI
                b[off + 12], b[off + 13] = 0x81, 0x00
                b[off + 14], b[off + 15] = (tci >> 8) & 0xFF, tci & 0xFF
        elif op == A.OP_POP_VLAN or op == A.OP_SET_VLAN:
            if length >= 18 and b[off + 12] == 0x81 and b[off + 13] == 0x00:
                if op == A.OP_SET_VLAN:
                    tci = arg & ~VLAN_CFI
                    b[off + 14], b[off + 15] = (tci >> 8) & 0xFF, tci & 0xFF
                else:
                    for k in range(11, -1, -1):
                        b[off + 4 + k] = b[off + k]
                    off += 4
                    length -= 4
        elif op == A.OP_SET_ETH_SRC or op == A.OP_SET_ETH_DST:
            if length >= 14:
                at = off + (6 if op == A.OP_SET_ETH_SRC else 0)
                for k in range(6):
                    b[at + k] = (arg >> (40 - 8 * k)) & 0xFF
        elif op == A.OP_SET:
            wide = arg == SF.F_IPV6_SRC or arg == SF.F_IPV6_DST
            n = 4 if wide else 2
            if i + n > end:
                ok = False
            else:
                v1 = acts[i + 2] if wide else 0
                m1 = acts[i + 3] if wide else 0
                SF.set_field(b, off, length, arg, acts[i], acts[i + 1], v1, m1)
                i += n
        elif op == A.OP_METER:
            ok = MT.meter_pass(view_i64(arg, MT.METER_COLS), length, _now_ns(p))
        elif op == A.OP_USERSPACE:
            _to_userspace(p, slot, off, length, key, in_port, arg)
        elif op == A.OP_RECIRC or op == A.OP_TNL_POP:
            last = i >= end - 1 or (c_end >= 0 and i >= c_end)
            if op == A.OP_RECIRC:
                moved = _recirc(p, slot, off, length, key, arg, last)
            else:
                moved = _tnl_pop(p, slot, off, length, key, arg, last)
            if moved < 0:
                ok = False
            elif moved == 1:
                if c_end < 0:
                    return 1
                c_moved = True              # the clone's copy went on: keep it
                i = c_end
        elif op == A.OP_TNL_PUSH:
            hlen = (arg >> 32) & 0xFFFF
            nw = (hlen + 7) // 8
            if i + nw > end:
                ok = False
            else:
                hdr = view_u8(acts.ctypes.data + 8 * i, hlen)
                new = TN.tnl_push(b, off, length, hdr, hlen, TN.udp_sport(_flow_hash(key)))
                i += nw
                if new < 0:
                    p.stats[S.S_TNL_PUSH_ERR] += 1
                    ok = False
                else:
                    if p.xs[2 * slot + XS_HDR] > 0:
                        p.xs[2 * slot + XS_HDR] += off - new     # the outer header joins the slot's part
                    length += off - new
                    off = new
        elif op == A.OP_CT:
            if i + A.CT_WORDS > end:
                ok = False
            else:
                _ct(p, b, off, length, key, arg, acts, i)
                i += A.CT_WORDS
        elif op == A.OP_CT_CLEAR:
            key[W_CT] &= ~CT_KEY_MASK
            key[W_RECIRC] &= np.uint64(0xFFFFFFFF)          # ct_mark: the high half
            key[L.W_CT_LABEL_HI] = np.uint64(0)
            key[L.W_CT_LABEL_LO] = np.uint64(0)
        elif op == A.OP_CLONE:
            if c_end >= 0 or arg < 0 or i + arg > end:
                ok = False
            elif i + arg < end:              # something follows: work on a copy
                new = _copy_slot(p, slot, off, length)
                if new < 0:
                    p.stats[S.S_LOST] += 1
                    i += arg                 # skip the clone, go on with the original
                else:
                    c_end, c_slot, c_off, c_len, c_moved = i + arg, slot, off, length, False
                    slot = new
        else:
            ok = False
        if not ok:
            if c_end < 0:
                return 0
            i = c_end                        # a drop inside a clone ends the clone
    return 0


@kernel(nrt=False)
def execute_actions_call(p, acts, a_off, a_len, slot, off, length, key, in_port):
    """execute_actions as a real call, for the slow paths (upcalls, second
    passes): one compiled copy there instead of one per caller."""
    return execute_actions(p, acts, a_off, a_len, slot, off, length, key, in_port)


@kernel(nrt=False, inline=True)
def flush_touched(p):
    """tx_flush every row an output touched since the last flush."""
    n = p.ctl[S.C_NTOUCHED]
    for j in range(n):
        r = p.tlist[j]
        portio.tx_flush(view_u8(p.memptr[r, 0], p.memptr[r, 1]), view_i64(p.rowptr[r], IO_COLS),
                        p.qstats[r])
        p.touched[r] = 0
    if n > 0:
        p.stats[S.S_TX_BATCHES] += n
    p.ctl[S.C_NTOUCHED] = 0


def flow_hash_ref(key):
    m = (1 << 64) - 1
    h = ((0x9E3779B97F4A7C15 ^ (int(key[0]) >> 32)) * 0xBF58476D1CE4E5B9) & m
    for w in (W_DL_DST, W_DL_SRC, W_NW_ADDR, W_TP):
        h = ((h ^ int(key[w])) * 0xBF58476D1CE4E5B9) & m
        h ^= h >> 31
    return h


def execute_ref(actions, frame, now=0, recircs=None, key=None):
    """Twin: (outputs [(port, bytes)], userspace [(arg, bytes)]) of the actions;
    meters update their rows (at the action's address) as of time `now`;
    recirculations are appended to `recircs` as (recirc_id, bytes), tunnel
    pops as ("tnl_pop", port, (vni, src, dst, tos, ttl), inner bytes); `key`
    (the flow's key) gives tnl_push its UDP source port. Headroom is not
    modelled (the kernel needs 50 free bytes in front for tnl_push)."""
    outs, ups = [], []
    fr = bytearray(frame)
    key = np.zeros(L.KEY_WORDS, np.uint64) if key is None else key
    for act in actions:
        name = act[0]
        if name == "clone":
            o, u = execute_ref(act[1], bytes(fr), now, recircs, key)
            outs += o
            ups += u
        elif name == "tnl_push":
            fr = bytearray(TN.tnl_push_ref(fr, act[2], TN.udp_sport_ref(flow_hash_ref(key))))
        elif name == "tnl_pop":
            r = TN.tnl_pop_ref(fr, act[2])
            if isinstance(r, int):
                return outs, ups
            if recircs is not None:
                recircs.append(("tnl_pop", act[1], r[1], r[0]))
        elif name == "output":
            outs.append((act[1], bytes(fr)))
        elif name == "push_vlan":
            if len(fr) < 12:
                return outs, ups
            fr[12:12] = struct.pack("!HH", 0x8100, act[1] & ~VLAN_CFI)
        elif name in ("pop_vlan", "set_vlan"):
            if len(fr) >= 18 and fr[12:14] == b"\x81\x00":
                if name == "pop_vlan":
                    del fr[12:16]
                else:
                    fr[14:16] = struct.pack("!H", act[1] & ~VLAN_CFI)
        elif name in ("set_eth_src", "set_eth_dst"):
            if len(fr) >= 14:
                at = 6 if name == "set_eth_src" else 0
                fr[at:at + 6] = act[1].to_bytes(6, "big")
        elif name == "set":
            SF.set_field_ref(fr, A.SET_FIELDS[act[1]][0], act[2], act[3])
        elif name == "meter":
            if not MT.meter_pass_ref(view_i64_py(act[1], MT.METER_COLS), len(fr), now):
                return outs, ups
        elif name == "userspace":
            ups.append((act[1], bytes(fr)))
        elif name == "recirc":
            if recircs is not None:
                recircs.append((act[1], bytes(fr)))
        elif name in ("ct", "ct_clear"):
            pass                         # metadata only: the frame is unchanged
        else:                            # drop
            return outs, ups
    return outs, ups
