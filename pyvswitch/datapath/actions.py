"""Datapath actions: Python tuples <-> the int64 programs kernels execute.

An action list is a list of tuples; an empty list means drop:
    ('output', dp_port)          send a copy to that port (tx on this PMD's txq)
    ('push_vlan', tci)           push an 802.1Q tag. tci is the TCI as the key
                                 holds it: the 0x1000 (CFI, "tag present") bit
                                 may be set or not; it is cleared on the wire
    ('pop_vlan',)                remove the outer 802.1Q tag (no-op if none)
    ('set_vlan', tci)            rewrite the tag's TCI (no-op if untagged)
    ('set_eth_src', mac_int) / ('set_eth_dst', mac_int)
    ('set', field, value, mask)  masked rewrite of one header field, checksums
                                 updated (kernels/setfield.py): field is one
                                 of SET_FIELDS (eth_src, ipv4_dst, ipv6_src,
                                 tcp_dst, ...); value/mask are ints of its width
    ('meter', addr)              pass the packet through a token bucket
                                 (kernels/meter.py) whose int64 row is at
                                 addr (owned by ofproto, never freed); a
                                 packet over the rate stops here
    ('userspace', arg)           a copy goes to Python with arg (int, 0..2^62):
                                 controller / slow path
    ('recirc', id)               another datapath pass with recirc_id = id
                                 (headers parsed again, metadata kept)
    ('tnl_push', tnl_port, header, out_port)   prepend the outer header
                                 (bytes: kernels/tunnel.vxlan_header) with
                                 lengths, IPv4 checksum and UDP source port
                                 filled in; tnl_port/out_port are for display
    ('tnl_pop', tnl_port, dst_port)   strip Ethernet/IPv4/UDP(dst_port)/VXLAN,
                                 set tun_id/tun_src/tun_dst and in_port =
                                 tnl_port, and give the inner frame another pass
    ('clone', [actions])         run the nested actions on a copy (one level)
    ('ct', zone, commit, mark, label)   connection tracking (conntrack/table.py):
                                 sets ct_state, ct_zone and ct_mark in the
                                 packet's metadata for what follows (usually
                                 recirc); commit creates the connection and
                                 then sets mark/label = (value, mask) or None
    ('ct_clear',)                forget the packet's conntrack metadata
    ('drop',)                    stop here (later actions are not run)

Encoding: two int64 words per action, (opcode, argument); 'set' is
(OP_SET, field id) followed by (value, mask) words, twice for 128-bit fields
(high halves first; 64-bit halves as two's-complement int64). tnl_push is
(OP_TNL_PUSH, tnl_port | out_port << 16 | len << 32) and the header bytes in
ceil(len / 8) little-endian words; tnl_pop (OP_TNL_POP, port | dst_port << 16);
clone (OP_CLONE, n) and the n words of its nested program; ct (OP_CT, zone |
commit << 16 | has_mark << 17 | has_label << 18) and 6 words: mark value,
mask, label value high/low, label mask high/low. Programs live in the
PMD's `actions` array (dpcls megaflows point at offset/length).
`format_actions` writes the dpctl text (`push_vlan(vid=10,pcp=0),3,pop_vlan,4`),
`parse_actions` reads it back. Pure Python; any thread.
"""

import ipaddress
import re

import numpy as np

from pyvswitch.datapath.kernels import setfield as SF
from pyvswitch.datapath.kernels import tunnel as TN

OP_OUTPUT, OP_PUSH_VLAN, OP_POP_VLAN, OP_SET_VLAN = 1, 2, 3, 4
OP_USERSPACE, OP_RECIRC, OP_DROP, OP_SET_ETH_SRC, OP_SET_ETH_DST = 5, 6, 7, 8, 9
_OPS = {"output": OP_OUTPUT, "push_vlan": OP_PUSH_VLAN, "pop_vlan": OP_POP_VLAN,
        "set_vlan": OP_SET_VLAN, "userspace": OP_USERSPACE, "recirc": OP_RECIRC,
        "drop": OP_DROP, "set_eth_src": OP_SET_ETH_SRC, "set_eth_dst": OP_SET_ETH_DST}
OP_SET, OP_METER = 10, 11
OP_TNL_PUSH, OP_TNL_POP, OP_CLONE = 12, 13, 14
OP_CT, OP_CT_CLEAR = 15, 16
CT_WORDS = 6
_OPS["set"] = OP_SET
_OPS["meter"] = OP_METER
_OPS["tnl_push"] = OP_TNL_PUSH
_OPS["tnl_pop"] = OP_TNL_POP
_OPS["clone"] = OP_CLONE
_OPS["ct"] = OP_CT
_OPS["ct_clear"] = OP_CT_CLEAR
_NAMES = {v: k for k, v in _OPS.items()}

# 'set' fields: name -> (id, bits, dpctl header, dpctl key, text kind)
SET_FIELDS = {
    "eth_src": (SF.F_ETH_SRC, 48, "eth", "src", "mac"),
    "eth_dst": (SF.F_ETH_DST, 48, "eth", "dst", "mac"),
    "ipv4_src": (SF.F_IPV4_SRC, 32, "ipv4", "src", "ipv4"),
    "ipv4_dst": (SF.F_IPV4_DST, 32, "ipv4", "dst", "ipv4"),
    "ipv4_tos": (SF.F_IPV4_TOS, 8, "ipv4", "tos", "hex"),
    "ipv4_ttl": (SF.F_IPV4_TTL, 8, "ipv4", "ttl", "int"),
    "ipv6_src": (SF.F_IPV6_SRC, 128, "ipv6", "src", "ipv6"),
    "ipv6_dst": (SF.F_IPV6_DST, 128, "ipv6", "dst", "ipv6"),
    "ipv6_tclass": (SF.F_IPV6_TC, 8, "ipv6", "tclass", "hex"),
    "ipv6_label": (SF.F_IPV6_LABEL, 20, "ipv6", "label", "hex"),
    "ipv6_hlimit": (SF.F_IPV6_HLIMIT, 8, "ipv6", "hlimit", "int"),
    "tcp_src": (SF.F_TCP_SRC, 16, "tcp", "src", "int"),
    "tcp_dst": (SF.F_TCP_DST, 16, "tcp", "dst", "int"),
    "udp_src": (SF.F_UDP_SRC, 16, "udp", "src", "int"),
    "udp_dst": (SF.F_UDP_DST, 16, "udp", "dst", "int"),
    "sctp_src": (SF.F_SCTP_SRC, 16, "sctp", "src", "int"),
    "sctp_dst": (SF.F_SCTP_DST, 16, "sctp", "dst", "int"),
}
_SET_BY_ID = {v[0]: k for k, v in SET_FIELDS.items()}
_SET_BY_TEXT = {(v[2], v[3]): k for k, v in SET_FIELDS.items()}
_M64 = (1 << 64) - 1


def _s64(x):
    return x - (1 << 64) if x >> 63 else x


def set_words(name, value, mask):
    """The 2 or 4 int64 words after (OP_SET, id): value/mask pairs."""
    fid, bits, *_ = SET_FIELDS[name]
    full = (1 << bits) - 1
    if not 0 <= mask <= full or value & ~mask or value < 0:
        raise ValueError(f"set {name}: value {value:#x}/mask {mask:#x} out of range")
    if bits == 128:
        return [_s64(value >> 64), _s64(mask >> 64), _s64(value & _M64), _s64(mask & _M64)]
    return [value, mask]
_NOARG = {"pop_vlan", "drop", "ct_clear"}
_LIMIT = {"output": 0xFFFF, "push_vlan": 0xFFFF, "set_vlan": 0xFFFF, "userspace": (1 << 62) - 1,
          "recirc": 0xFFFFFFFF, "set_eth_src": (1 << 48) - 1, "set_eth_dst": (1 << 48) - 1,
          "meter": (1 << 62) - 1}


def encode_actions(actions, _nested=False):
    """list of tuples -> int64 array (ValueError on unknown or out-of-range)."""
    words = []
    for act in actions:
        name = act[0]
        if name not in _OPS:
            raise ValueError(f"unknown datapath action {name!r}")
        if name == "clone":
            if _nested or len(act) != 2:
                raise ValueError("clone takes one action list and does not nest")
            inner = encode_actions(act[1], _nested=True)
            words += [OP_CLONE, len(inner), *inner.tolist()]
            continue
        if name == "tnl_push":
            if len(act) != 4 or not isinstance(act[2], (bytes, bytearray)) or len(act[2]) != TN.VXLAN_HLEN \
                    or not (0 <= act[1] <= 0xFFFF and 0 <= act[3] <= 0xFFFF):
                raise ValueError(f"bad tnl_push action {act!r}")
            words += [OP_TNL_PUSH, act[1] | act[3] << 16 | len(act[2]) << 32, *TN.header_words(act[2])]
            continue
        if name == "ct":
            words += _encode_ct(act)
            continue
        if name == "tnl_pop":
            if len(act) != 3 or not (0 <= act[1] <= 0xFFFF and 0 < act[2] <= 0xFFFF):
                raise ValueError(f"bad tnl_pop action {act!r}")
            words += [OP_TNL_POP, act[1] | act[2] << 16]
            continue
        if name == "set":
            if len(act) != 4 or act[1] not in SET_FIELDS:
                raise ValueError(f"bad set action {act!r}")
            words += [OP_SET, SET_FIELDS[act[1]][0], *set_words(*act[1:])]
            continue
        if name in _NOARG:
            if len(act) != 1:
                raise ValueError(f"{name} takes no argument")
            arg = 0
        else:
            if len(act) != 2:
                raise ValueError(f"{name} takes one argument")
            arg = int(act[1])
            if not 0 <= arg <= _LIMIT[name]:
                raise ValueError(f"{name} argument {arg:#x} out of range")
        words += [_OPS[name], arg]
    return np.array(words, dtype=np.int64)


def _encode_ct(act):
    if len(act) != 5 or not 0 <= act[1] <= 0xFFFF:
        raise ValueError(f"bad ct action {act!r}")
    _, zone, commit, mark, label = act
    flags = zone | (bool(commit) << 16) | ((mark is not None) << 17) | ((label is not None) << 18)
    mv, mm = mark if mark is not None else (0, 0)
    lv, lm = label if label is not None else (0, 0)
    if not (0 <= mv <= 0xFFFFFFFF and 0 <= mm <= 0xFFFFFFFF and 0 <= lv < 1 << 128 and 0 <= lm < 1 << 128) \
            or mv & ~mm or lv & ~lm:
        raise ValueError(f"bad ct mark/label in {act!r}")
    if (mark is not None or label is not None) and not commit:
        raise ValueError("ct: mark and label need commit")
    return [OP_CT, flags, mv, mm, _s64(lv >> 64), _s64(lv & _M64), _s64(lm >> 64), _s64(lm & _M64)]


def decode_actions(prog):
    out = []
    i = 0
    while i < len(prog) - 1:
        name = _NAMES.get(int(prog[i]))
        if name is None:
            raise ValueError(f"bad opcode {int(prog[i])}")
        if name == "clone":
            n = int(prog[i + 1])
            out.append(("clone", decode_actions(prog[i + 2:i + 2 + n])))
            i += 2 + n
            continue
        if name == "tnl_push":
            arg = int(prog[i + 1])
            n = (arg >> 32) & 0xFFFF
            nw = (n + 7) // 8
            out.append(("tnl_push", arg & 0xFFFF, TN.header_bytes(prog[i + 2:i + 2 + nw], n),
                        (arg >> 16) & 0xFFFF))
            i += 2 + nw
            continue
        if name == "tnl_pop":
            arg = int(prog[i + 1])
            out.append(("tnl_pop", arg & 0xFFFF, (arg >> 16) & 0xFFFF))
            i += 2
            continue
        if name == "ct":
            f = int(prog[i + 1])
            w = [int(x) & _M64 for x in prog[i + 2:i + 2 + CT_WORDS]]
            mark = (w[0], w[1]) if f >> 17 & 1 else None
            label = ((w[2] << 64) | w[3], (w[4] << 64) | w[5]) if f >> 18 & 1 else None
            out.append(("ct", f & 0xFFFF, bool(f >> 16 & 1), mark, label))
            i += 2 + CT_WORDS
            continue
        if name == "set":
            field = _SET_BY_ID[int(prog[i + 1])]
            w = [int(x) & _M64 for x in prog[i + 2:i + 6]]
            if SET_FIELDS[field][1] == 128:
                out.append(("set", field, w[0] << 64 | w[2], w[1] << 64 | w[3]))
                i += 6
            else:
                out.append(("set", field, w[0], w[1]))
                i += 4
            continue
        out.append((name,) if name in _NOARG else (name, int(prog[i + 1])))
        i += 2
    return out


def _set_value_text(kind, bits, v):
    if kind == "mac":
        return _mac(v)
    if kind in ("ipv4", "ipv6"):
        return str(ipaddress.ip_address(v) if kind == "ipv4" else ipaddress.IPv6Address(v))
    return f"{v:#x}" if kind == "hex" else str(v)


def _format_set(field, value, mask):
    _, bits, hdr, key, kind = SET_FIELDS[field]
    text = _set_value_text(kind, bits, value)
    if mask != (1 << bits) - 1:
        text += "/" + _set_value_text(kind, bits, mask)
    return f"set({hdr}({key}={text}))"


def _parse_set_value(kind, text):
    if kind == "mac":
        return int(text.replace(":", ""), 16)
    if kind == "ipv4":
        return int(ipaddress.IPv4Address(text))
    if kind == "ipv6":
        return int(ipaddress.IPv6Address(text))
    return int(text, 0)


def _mac(v):
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def _tci(t):
    return f"vid={t & 0xFFF},pcp={t >> 13}"


def format_actions(actions):
    """OVS dpctl text for a list of tuples (or an encoded program)."""
    if isinstance(actions, np.ndarray):
        actions = decode_actions(actions)
    parts = []
    for act in actions:
        name = act[0]
        if name == "output":
            parts.append(str(act[1]))
        elif name == "push_vlan":
            parts.append(f"push_vlan({_tci(act[1])})")
        elif name == "set_vlan":
            parts.append(f"set(vlan({_tci(act[1])}))")
        elif name in ("set_eth_src", "set_eth_dst"):
            parts.append(f"set(eth({name[-3:]}={_mac(act[1])}))")
        elif name == "set":
            parts.append(_format_set(*act[1:]))
        elif name == "userspace":
            parts.append(f"userspace(pid=0,userdata({act[1]:016x}))")
        elif name == "recirc":
            parts.append(f"recirc({act[1]:#x})")
        elif name == "tnl_push":
            parts.append(_format_tnl_push(*act[1:]))
        elif name == "tnl_pop":
            parts.append(f"tnl_pop({act[1]})" if act[2] == 4789 else f"tnl_pop({act[1]},dst_port={act[2]})")
        elif name == "clone":
            parts.append(f"clone({format_actions(act[1])})")
        elif name == "ct":
            parts.append(_format_ct(*act[1:]))
        elif name == "meter":
            parts.append(f"meter({act[1]:#x})")
        else:
            parts.append(name)
    return ",".join(parts) if parts else "drop"


def _format_ct(zone, commit, mark, label):
    """OVS's dpctl text: ct(commit,zone=5,mark=0xab/0xff,label=0x1/0x1)."""
    args = ["commit"] if commit else []
    if zone:
        args.append(f"zone={zone}")
    for name, v in (("mark", mark), ("label", label)):
        if v is not None:
            args.append(f"{name}={v[0]:#x}/{v[1]:#x}")
    return "ct(" + ",".join(args) + ")" if args else "ct"


def _c_hex(v):
    """C's %#x: 0 prints as 0."""
    return f"{v:#x}" if v else "0"


def _format_tnl_push(tnl_port, hdr, out_port):
    """OVS's dpctl text of a VXLAN tnl_push."""
    dst, src = int.from_bytes(hdr[0:6], "big"), int.from_bytes(hdr[6:12], "big")
    tos, frag, ttl, proto = hdr[15], int.from_bytes(hdr[20:22], "big"), hdr[22], hdr[23]
    ip_src, ip_dst = ipaddress.IPv4Address(hdr[26:30]), ipaddress.IPv4Address(hdr[30:34])
    udp_dst = int.from_bytes(hdr[36:38], "big")
    flags, vni = int.from_bytes(hdr[42:46], "big"), int.from_bytes(hdr[46:50], "big") >> 8
    return (f"tnl_push(tnl_port({tnl_port}),header(size={len(hdr)},type=4,"
            f"eth(dst={_mac(dst)},src={_mac(src)},dl_type=0x0800),"
            f"ipv4(src={ip_src},dst={ip_dst},proto={proto},tos={_c_hex(tos)},ttl={ttl},frag={frag:#x}),"
            f"udp(src=0,dst={udp_dst},csum=0x0),vxlan(flags={flags:#x},vni={vni:#x})),"
            f"out_port({out_port}))")


_TNL_PUSH = re.compile(
    r"tnl_push\(tnl_port\((\d+)\),header\(size=50,type=4,eth\(dst=([0-9a-f:]{17}),src=([0-9a-f:]{17}),"
    r"dl_type=0x0800\),ipv4\(src=([\d.]+),dst=([\d.]+),proto=17,tos=(0x[0-9a-f]+|\d+),ttl=(\d+),"
    r"frag=(0x[0-9a-f]+|\d+)\),udp\(src=0,dst=(\d+),csum=0x0\),vxlan\(flags=0x8000000,vni=(0x[0-9a-f]+|\d+)\)\),"
    r"out_port\((\d+)\)\)")


def _parse_ct(tok):
    zone, commit, mark, label = 0, False, None, None
    for arg in _split_top(tok[3:-1]) if tok != "ct" else []:
        if arg == "commit":
            commit = True
        elif arg.startswith("zone="):
            zone = int(arg[5:], 0)
        elif arg.startswith(("mark=", "label=")):
            name, val = arg.split("=", 1)
            v, _, m = val.partition("/")
            pair = (int(v, 0), int(m, 0) if m else (0xFFFFFFFF if name == "mark" else (1 << 128) - 1))
            if name == "mark":
                mark = pair
            else:
                label = pair
        else:
            raise ValueError(f"cannot parse ct argument {arg!r}")
    return ("ct", zone, commit, mark, label)


def _split_top(text):
    """Split at the commas outside parentheses."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            raise ValueError(f"unbalanced parentheses in {text!r}")
        cur.append(ch)
    if depth:
        raise ValueError(f"unbalanced parentheses in {text!r}")
    out.append("".join(cur))
    return [t for t in out if t]


def parse_actions(text):
    """Inverse of format_actions."""
    text = text.strip()
    if text in ("", "drop"):
        return []
    out = []
    for tok in _split_top(text):
        if tok.startswith("clone(") and tok.endswith(")"):
            out.append(("clone", parse_actions(tok[6:-1])))
        elif m := _TNL_PUSH.fullmatch(tok):
            g = m.groups()
            hdr = TN.vxlan_header(int(g[1].replace(":", ""), 16), int(g[2].replace(":", ""), 16),
                                  int(ipaddress.IPv4Address(g[3])), int(ipaddress.IPv4Address(g[4])),
                                  int(g[9], 0), int(g[8]), int(g[5], 0), int(g[6]), bool(int(g[7], 0) & 0x4000))
            out.append(("tnl_push", int(g[0]), hdr, int(g[10])))
        elif tok == "ct" or tok.startswith("ct("):
            out.append(_parse_ct(tok))
        elif tok == "ct_clear":
            out.append(("ct_clear",))
        elif m := re.fullmatch(r"tnl_pop\((\d+)(?:,dst_port=(\d+))?\)", tok):
            out.append(("tnl_pop", int(m.group(1)), int(m.group(2) or 4789)))
        elif tok.isdigit():
            out.append(("output", int(tok)))
        elif tok == "pop_vlan":
            out.append(("pop_vlan",))
        elif tok == "drop":
            out.append(("drop",))
        elif m := re.fullmatch(r"(push_vlan|set\(vlan)\(vid=(\d+),pcp=(\d+)\)\)?", tok):
            name = "push_vlan" if m.group(1) == "push_vlan" else "set_vlan"
            out.append((name, int(m.group(2)) | (int(m.group(3)) << 13)))
        elif (m := re.fullmatch(r"set\((\w+)\((\w+)=([^/()]+)(?:/([^/()]+))?\)\)", tok)) \
                and (m.group(1), m.group(2)) in _SET_BY_TEXT and m.group(1) != "vlan":
            field = _SET_BY_TEXT[(m.group(1), m.group(2))]
            _, bits, _, _, kind = SET_FIELDS[field]
            value = _parse_set_value(kind, m.group(3))
            mask = _parse_set_value(kind, m.group(4)) if m.group(4) else (1 << bits) - 1
            out.append(("set", field, value, mask))
        elif m := re.fullmatch(r"set\(eth\((src|dst)=([0-9a-f:]{17})\)\)", tok):
            out.append((f"set_eth_{m.group(1)}", int(m.group(2).replace(":", ""), 16)))
        elif m := re.fullmatch(r"userspace\(pid=\d+,userdata\(([0-9a-f]+)\)\)", tok):
            out.append(("userspace", int(m.group(1), 16)))
        elif m := re.fullmatch(r"(recirc|meter)\((0x[0-9a-f]+|\d+)\)", tok):
            out.append((m.group(1), int(m.group(2), 0)))
        else:
            raise ValueError(f"cannot parse datapath action {tok!r}")
    return out
