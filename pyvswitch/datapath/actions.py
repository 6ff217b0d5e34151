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
    ('recirc', id)               reserved: recirculation; today counted and dropped
    ('drop',)                    stop here (later actions are not run)

Encoding: two int64 words per action, (opcode, argument); 'set' is
(OP_SET, field id) followed by (value, mask) words, twice for 128-bit fields
(high halves first; 64-bit halves as two's-complement int64). Programs live in the
PMD's `actions` array (dpcls megaflows point at offset/length).
`format_actions` writes the dpctl text (`push_vlan(vid=10,pcp=0),3,pop_vlan,4`),
`parse_actions` reads it back. Pure Python; any thread.
"""

import ipaddress
import re

import numpy as np

from pyvswitch.datapath.kernels import setfield as SF

OP_OUTPUT, OP_PUSH_VLAN, OP_POP_VLAN, OP_SET_VLAN = 1, 2, 3, 4
OP_USERSPACE, OP_RECIRC, OP_DROP, OP_SET_ETH_SRC, OP_SET_ETH_DST = 5, 6, 7, 8, 9
_OPS = {"output": OP_OUTPUT, "push_vlan": OP_PUSH_VLAN, "pop_vlan": OP_POP_VLAN,
        "set_vlan": OP_SET_VLAN, "userspace": OP_USERSPACE, "recirc": OP_RECIRC,
        "drop": OP_DROP, "set_eth_src": OP_SET_ETH_SRC, "set_eth_dst": OP_SET_ETH_DST}
OP_SET, OP_METER = 10, 11
_OPS["set"] = OP_SET
_OPS["meter"] = OP_METER
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
_NOARG = {"pop_vlan", "drop"}
_LIMIT = {"output": 0xFFFF, "push_vlan": 0xFFFF, "set_vlan": 0xFFFF, "userspace": (1 << 62) - 1,
          "recirc": 0xFFFFFFFF, "set_eth_src": (1 << 48) - 1, "set_eth_dst": (1 << 48) - 1,
          "meter": (1 << 62) - 1}


def encode_actions(actions):
    """list of tuples -> int64 array (ValueError on unknown or out-of-range)."""
    words = []
    for act in actions:
        name = act[0]
        if name not in _OPS:
            raise ValueError(f"unknown datapath action {name!r}")
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


def decode_actions(prog):
    out = []
    i = 0
    while i < len(prog) - 1:
        name = _NAMES.get(int(prog[i]))
        if name is None:
            raise ValueError(f"bad opcode {int(prog[i])}")
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
        elif name == "meter":
            parts.append(f"meter({act[1]:#x})")
        else:
            parts.append(name)
    return ",".join(parts) if parts else "drop"


_TOKEN = re.compile(r"[a-z_]+\([^()]*(?:\([^()]*\))?[^()]*\)|[^,]+")


def parse_actions(text):
    """Inverse of format_actions."""
    text = text.strip()
    if text in ("", "drop"):
        return []
    out = []
    for tok in _TOKEN.findall(text):
        if tok.isdigit():
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
