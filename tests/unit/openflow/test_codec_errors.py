"""Robustness: malformed messages map to the right OFPT_ERROR, and no input
makes the decoder raise anything but wire.OFError (hypothesis fuzz)."""

import glob
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvswitch.openflow import actions as A
from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire
from pyvswitch.openflow.match import Match
from pyvswitch.openflow.text import parse_flow

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "ofctl")
SAMPLES = [m for f in sorted(glob.glob(os.path.join(GOLDEN, "*.bin")))
           for m in wire.split(open(f, "rb").read())]
SAMPLES += [wire.encode(m, v) for v, m in [
    (4, M.FlowStatsReply((M.FlowStats(1, Match({"reg0": 1}), 1, (A.Output(2),)),))),
    (1, M.FlowStatsReply((M.FlowStats(1, Match({"reg0": 1}), 1, (A.Output(2),)),),
                         nxm=True)),
    (4, M.PacketIn(data=b"x" * 20)), (4, M.GroupDescReply((M.GroupDesc(
        "select", 1, (M.Bucket((A.Output(1),), 2),)),))),
    (4, M.MeterConfigReply((M.MeterConfig(1, 2, (M.MeterBand("drop", 1, 2),)),))),
    (4, M.TableFeaturesReply((M.TableFeatures(0, "t", properties=((0, b"ab"),)),))),
    (4, M.PortDescReply((M.PortDesc(1, 2, "p"),))),
    (1, M.FeaturesReply(ports=(M.PortDesc(1, 2, "p"),))),
]]


def fm13(text, command="add"):
    return wire.encode(parse_flow(text, command), 4)


def set_len(data):
    return data[:2] + struct.pack("!H", len(data)) + data[4:]


def error_of(data, **kw):
    with pytest.raises(wire.OFError) as e:
        wire.decode(data, **kw)
    return e.value.name


def replace(data, old, new):
    assert old in data
    return data.replace(old, new, 1)


def test_truncated_flow_mod_is_bad_len():
    data = fm13("in_port=1,actions=output:2")
    for n in (9, 20, 50, 56):
        assert error_of(set_len(data[:n])) in ("OFPBRC_BAD_LEN", "OFPBMC_BAD_LEN")


def test_wrong_header_length_is_bad_len():
    data = fm13("actions=drop")
    assert error_of(data[:2] + struct.pack("!H", len(data) + 8) + data[4:]) == \
        "OFPBRC_BAD_LEN"


def test_fixed_size_message_with_extra_bytes_is_bad_len():
    assert error_of(set_len(wire.encode(M.BarrierRequest(), 4) + b"\0" * 8)) == \
        "OFPBRC_BAD_LEN"
    assert error_of(set_len(wire.encode(M.SetConfig(), 1) + b"\0")) == "OFPBRC_BAD_LEN"


def test_unknown_oxm_field_is_bad_field():
    data = fm13("in_port=1,actions=drop")
    assert error_of(replace(data, bytes.fromhex("80000004"), bytes.fromhex("80007e04"))) \
        == "OFPBMC_BAD_FIELD"


def with_match(tlvs, text="actions=drop"):
    """A 1.3 flow mod of `text` whose OXM fields are replaced by `tlvs`."""
    data = fm13(text)
    old_len = struct.unpack_from("!H", data, 50)[0]
    old_end = 48 + (old_len + 7) // 8 * 8
    match = struct.pack("!HH", 1, 4 + len(tlvs)) + tlvs
    match += bytes(-len(match) % 8)
    return set_len(data[:48] + match + data[old_end:])


IN_PORT = bytes.fromhex("8000000400000001")
ETH_IP = bytes.fromhex("80000a020800")
IP_TCP = bytes.fromhex("8000140106")
TCP_DST = bytes.fromhex("80001c020050")


def test_match_builder_is_faithful():
    m = wire.decode(with_match(IN_PORT + ETH_IP + IP_TCP + TCP_DST))[2].match
    assert m.key_mask() == parse_flow("in_port=1,tcp,tp_dst=80", "dump").match.key_mask()


def test_missing_prerequisite_is_bad_prereq():
    assert error_of(with_match(ETH_IP + bytes.fromhex("8000140111") + TCP_DST)) == \
        "OFPBMC_BAD_PREREQ"                      # tcp_dst under udp
    assert error_of(with_match(IP_TCP + TCP_DST)) == "OFPBMC_BAD_PREREQ"   # no eth_type
    assert error_of(with_match(bytes.fromhex("80001804") + bytes(4))) == \
        "OFPBMC_BAD_PREREQ"                      # ipv4_dst without eth_type


def test_duplicate_mask_length_value_errors():
    assert error_of(with_match(IN_PORT + IN_PORT)) == "OFPBMC_DUP_FIELD"
    assert error_of(with_match(bytes.fromhex("8000010800000001ffffffff"))) == \
        "OFPBMC_BAD_MASK"                        # in_port is not maskable
    assert error_of(with_match(bytes.fromhex("800000030000"))) == "OFPBMC_BAD_LEN"
    assert error_of(with_match(bytes.fromhex("80000004000000"))) == "OFPBMC_BAD_LEN"
    assert error_of(with_match(bytes.fromhex("80000b04"))) == "OFPBMC_BAD_LEN"
    assert error_of(with_match(bytes.fromhex("80000704") + bytes(4))) == "OFPBMC_BAD_LEN"
    assert error_of(with_match(bytes.fromhex("80000e0109"))) == "OFPBMC_BAD_VALUE"
    assert error_of(with_match(bytes.fromhex("800017080a000001ff000000"))) == \
        "OFPBMC_BAD_WILDCARDS"
    assert error_of(with_match(bytes.fromhex("ffff0008") + bytes(8))) == "OFPBMC_BAD_FIELD"
    data = bytearray(with_match(IN_PORT))
    data[48:50] = b"\x00\x00"                 # OFPMT_STANDARD
    assert error_of(bytes(data)) == "OFPBMC_BAD_TYPE"


def test_unknown_action_and_bad_port_and_unknown_instruction():
    data = fm13("actions=output:2")
    out = bytes.fromhex("0000001000000002")
    assert error_of(replace(data, out, bytes.fromhex("0063001000000002"))) == "OFPBAC_BAD_TYPE"
    assert error_of(replace(data, out, bytes.fromhex("00000010fffff000"))) == \
        "OFPBAC_BAD_OUT_PORT"
    assert error_of(replace(data, bytes.fromhex("00040018"), bytes.fromhex("00630018"))) \
        == "OFPBIC_UNKNOWN_INST"
    assert error_of(replace(data, out, bytes.fromhex("0000001200000002"))) == "OFPBAC_BAD_LEN"


def test_unknown_multipart_and_stats_types():
    assert error_of(wire.encode(M.DescRequest(), 4)[:8 + 0] + b"") == "OFPBRC_BAD_LEN"
    data = bytearray(wire.encode(M.DescRequest(), 4))
    data[9] = 99
    assert error_of(bytes(data)) == "OFPBRC_BAD_MULTIPART"
    data = bytearray(wire.encode(M.DescRequest(), 1))
    data[9] = 99
    assert error_of(bytes(data)) == "OFPBRC_BAD_MULTIPART"


def test_openflow10_match_and_action_errors():
    data = wire.encode(parse_flow("actions=output:2"), 1)
    assert error_of(replace(data, bytes.fromhex("0000000800020000"),
                            bytes.fromhex("0000000800000000"))) == "OFPBAC_BAD_OUT_PORT"
    assert error_of(replace(data, bytes.fromhex("0000000800020000"),
                            bytes.fromhex("0004001000000000"))) in (
        "OFPBAC_BAD_TYPE", "OFPBAC_BAD_LEN")
    assert error_of(replace(data, bytes.fromhex("0000000800020000"),
                            bytes.fromhex("0063000800000000"))) == "OFPBAC_BAD_TYPE"
    with pytest.raises(wire.OFError) as e:
        wire.decode(replace(data, bytes.fromhex("0000000800020000"),
                            bytes.fromhex("0000000800000000")))
    assert (e.value.type, e.value.code) == (2, 4)


def test_table_id_in_command_needs_the_extension():
    data = wire.encode(parse_flow("table=3,actions=drop"), 1)
    assert error_of(data) == "OFPFMFC_BAD_COMMAND"
    assert wire.decode(data, flow_mod_table_id=True)[2].table == 3


# --- fuzz -----------------------------------------------------------------------------
def check(data):
    try:
        version, xid, msg = wire.decode(data)
    except wire.OFError as e:
        assert e.name in wire.ERROR_CODES[4] or e.name in wire.ERROR_CODES[1]
        wire.error_for(e)
        return
    try:
        wire.encode(msg, version, xid)
    except wire.EncodeError:
        pass


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from([1, 4, 2, 6]), st.integers(0, 35), st.binary(max_size=300))
def test_fuzz_random_bodies(version, mtype, body):
    check(struct.pack("!BBHI", version, mtype, 8 + len(body), 1) + body)


@settings(max_examples=4000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)),
                                          max_size=6),
       st.integers(0, 2**16), st.booleans())
def test_fuzz_mutated_golden(data, flips, cut, fix_length):
    b = bytearray(data)
    for pos, val in flips:
        b[pos % len(b)] = val
    if cut % 3 == 0:
        b = b[:8 + cut % max(1, len(b) - 7)]
    if fix_length:
        b[2:4] = struct.pack("!H", len(b))
    b[0] = data[0] if fix_length else b[0]
    check(bytes(b))
    framer = wire.Framer()
    try:
        for m in framer.feed(bytes(b)):
            check(m)
    except wire.FramingError:
        pass
