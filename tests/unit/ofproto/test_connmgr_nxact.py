"""Nicira actions (openflow/nxact.py) as connmgr receives them: every NX
action round-trips in both versions, and random bodies raise only OFError."""

import dataclasses
import random
import struct

import pytest

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import codec10, codec13, nxact, wire
from pyvswitch.openflow.text import parse_actions

ACTIONS = [
    "load:0x5->NXM_NX_REG0[0..3]", "set_field:7->reg1", "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
    "dec_ttl", "dec_ttl(1,2)", "controller(reason=no_match,max_len=100,id=3)",
    "note:01.02.03.04.05.06", "output:NXM_NX_REG0[0..15]", "conjunction(5,1/2)",
    "ct(commit,zone=5,table=3,exec(set_field:0x1->ct_mark))",
    "ct(table=3,zone=NXM_NX_REG1[0..15],nat)", "ct(commit,nat(src=10.0.0.1-10.0.0.2:100-200,random))",
    "ct_clear", "set_tunnel:0x10", "resubmit(,3)", "mod_dl_src:00:11:22:33:44:55",
    "mod_nw_src:1.2.3.4", "mod_tp_dst:80",
]


@pytest.mark.parametrize("codec", [codec10, codec13])
@pytest.mark.parametrize("text", ACTIONS)
def test_round_trip(codec, text):
    acts = parse_actions(text)
    raw = codec.encode_actions(acts)
    back = codec.decode_actions(raw)
    assert codec.encode_actions(back) == raw
    assert [_norm(a) for a in back] == [_norm(a) for a in acts]


def _norm(a):
    """Equal up to spelling (set_field vs load vs mod_*: the same action)."""
    if isinstance(a, A.SetField):
        return (a.field, a.value, a.mask)
    if isinstance(a, A.Ct):
        return dataclasses.replace(a, exec_actions=tuple(_norm(x) for x in a.exec_actions))
    return a


@pytest.mark.parametrize("subtype", sorted(nxact._DECODERS) + [99])
def test_random_bodies_only_raise_oferror(subtype):
    rnd = random.Random(subtype)
    for _ in range(300):
        body = bytes(rnd.randrange(256) for _ in range(rnd.choice((0, 2, 6, 14, 22, 30, 46))))
        for acts in (None, codec13.ACTS, codec10.ACTS):
            try:
                nxact.decode(subtype, body, acts)
            except wire.OFError:
                pass


def test_hostile_lengths_in_codecs():
    for codec in (codec10, codec13):
        for n in range(0, 64, 8):
            raw = struct.pack("!HHIH", 0xFFFF, 16 + n, nxact.NX_VENDOR, nxact.CT) + bytes(6 + n)
            try:
                codec.decode_actions(raw)
            except wire.OFError:
                pass
