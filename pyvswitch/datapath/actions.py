"""Datapath actions: Python tuples <-> the int64 programs kernels execute.

An action list is a list of tuples; an empty list means drop:
    ('output', dp_port)          send a copy to that port (tx on this PMD's txq)
    ('push_vlan', tci)           push an 802.1Q tag. tci is the TCI as the key
                                 holds it: the 0x1000 (CFI, "tag present") bit
                                 may be set or not; it is cleared on the wire
    ('pop_vlan',)                remove the outer 802.1Q tag (no-op if none)
    ('set_vlan', tci)            rewrite the tag's TCI (no-op if untagged)
    ('set_eth_src', mac_int) / ('set_eth_dst', mac_int)
    ('userspace', arg)           a copy goes to Python with arg (int, 0..2^62):
                                 controller / slow path
    ('recirc', id)               reserved: recirculation; today counted and dropped
    ('drop',)                    stop here (later actions are not run)

Encoding: two int64 words per action, (opcode, argument). Programs live in the
PMD's `actions` array (dpcls megaflows point at offset/length).
`format_actions` writes the dpctl text (`push_vlan(vid=10,pcp=0),3,pop_vlan,4`),
`parse_actions` reads it back. Pure Python; any thread.
"""

import re

import numpy as np

OP_OUTPUT, OP_PUSH_VLAN, OP_POP_VLAN, OP_SET_VLAN = 1, 2, 3, 4
OP_USERSPACE, OP_RECIRC, OP_DROP, OP_SET_ETH_SRC, OP_SET_ETH_DST = 5, 6, 7, 8, 9
_OPS = {"output": OP_OUTPUT, "push_vlan": OP_PUSH_VLAN, "pop_vlan": OP_POP_VLAN,
        "set_vlan": OP_SET_VLAN, "userspace": OP_USERSPACE, "recirc": OP_RECIRC,
        "drop": OP_DROP, "set_eth_src": OP_SET_ETH_SRC, "set_eth_dst": OP_SET_ETH_DST}
_NAMES = {v: k for k, v in _OPS.items()}
_NOARG = {"pop_vlan", "drop"}
_LIMIT = {"output": 0xFFFF, "push_vlan": 0xFFFF, "set_vlan": 0xFFFF, "userspace": (1 << 62) - 1,
          "recirc": 0xFFFFFFFF, "set_eth_src": (1 << 48) - 1, "set_eth_dst": (1 << 48) - 1}


def encode_actions(actions):
    """list of tuples -> int64 array (ValueError on unknown or out-of-range)."""
    out = np.zeros(2 * len(actions), np.int64)
    for i, act in enumerate(actions):
        name = act[0]
        if name not in _OPS:
            raise ValueError(f"unknown datapath action {name!r}")
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
        out[2 * i], out[2 * i + 1] = _OPS[name], arg
    return out


def decode_actions(prog):
    out = []
    for i in range(0, len(prog) - 1, 2):
        name = _NAMES.get(int(prog[i]))
        if name is None:
            raise ValueError(f"bad opcode {int(prog[i])}")
        out.append((name,) if name in _NOARG else (name, int(prog[i + 1])))
    return out


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
        elif name == "userspace":
            parts.append(f"userspace(pid=0,userdata({act[1]:016x}))")
        elif name == "recirc":
            parts.append(f"recirc({act[1]:#x})")
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
        elif m := re.fullmatch(r"set\(eth\((src|dst)=([0-9a-f:]{17})\)\)", tok):
            out.append((f"set_eth_{m.group(1)}", int(m.group(2).replace(":", ""), 16)))
        elif m := re.fullmatch(r"userspace\(pid=\d+,userdata\(([0-9a-f]+)\)\)", tok):
            out.append(("userspace", int(m.group(1), 16)))
        elif m := re.fullmatch(r"recirc\((0x[0-9a-f]+|\d+)\)", tok):
            out.append(("recirc", int(m.group(1), 0)))
        else:
            raise ValueError(f"cannot parse datapath action {tok!r}")
    return out
