"""Framing and the error vocabulary (wire.py)."""

import struct

import pytest

from pyvswitch.openflow import messages as M
from pyvswitch.openflow import wire


def msg(version, mtype, body=b"", xid=1, length=None):
    n = 8 + len(body) if length is None else length
    return struct.pack("!BBHI", version, mtype, n, xid) + body


def test_framer_splits_a_stream_fed_byte_by_byte():
    stream = msg(4, 2, b"abc") + msg(4, 20) + msg(1, 3, b"x" * 100)
    framer, out = wire.Framer(), []
    for i in range(len(stream)):
        out += framer.feed(stream[i:i + 1])
    assert out == [msg(4, 2, b"abc"), msg(4, 20), msg(1, 3, b"x" * 100)]
    assert framer.pending == 0


def test_framer_keeps_partial_message():
    framer = wire.Framer()
    assert framer.feed(msg(4, 2, b"abcd")[:10]) == []
    assert framer.pending == 10


@pytest.mark.parametrize("length", [0, 1, 7])
def test_framer_refuses_short_length(length):
    with pytest.raises(wire.FramingError) as e:
        wire.Framer().feed(msg(4, 0, length=length))
    assert (e.value.name, e.value.type, e.value.code) == ("OFPBRC_BAD_LEN", 1, 6)


def test_framer_refuses_length_above_its_maximum():
    with pytest.raises(wire.FramingError):
        wire.Framer(max_len=1024).feed(msg(4, 2, length=4000))
    assert wire.Framer().feed(msg(4, 2, b"\0" * (0xFFFF - 8))) != []


def test_split_refuses_truncated_tail():
    with pytest.raises(wire.FramingError):
        wire.split(msg(4, 2, b"abc") + b"\x04\x02")


def test_decode_checks_header_length():
    with pytest.raises(wire.OFError) as e:
        wire.decode(msg(4, 2, b"abc", length=10))
    assert e.value.name == "OFPBRC_BAD_LEN"


def test_bad_version_but_hello_of_any_version_decodes():
    with pytest.raises(wire.OFError) as e:
        wire.decode(msg(5, 2))
    assert e.value.name == "OFPBRC_BAD_VERSION"
    assert wire.decode(msg(6, 0, bytes.fromhex("0001000800000050")))[2] == M.Hello((4, 6))


@pytest.mark.parametrize("version,mtype", [(1, 20), (1, 99), (4, 30), (4, 255)])
def test_unknown_type(version, mtype):
    with pytest.raises(wire.OFError) as e:
        wire.decode(msg(version, mtype))
    assert (e.value.type, e.value.code) == (1, 1)
    assert e.value.data == msg(version, mtype) and e.value.xid == 1


def test_error_codes_per_version():
    assert wire.codes("OFPBMC_BAD_PREREQ", 4) == (4, 9)
    assert wire.codes("OFPBMC_BAD_PREREQ", 1) == (1, 260)
    assert wire.codes("OFPBIC_UNKNOWN_INST", 1) == (1, 521)   # NXBRC_UNENCODABLE_ERROR
    assert wire.codes("OFPFMFC_TABLE_FULL", 1) == (3, 0)
    assert wire.codes("OFPMMFC_BAD_BAND", 4) == (12, 8)
    assert wire.error_name(4, 2, 4) == "OFPBAC_BAD_OUT_PORT"
    assert wire.error_name(1, 1, 5) == "OFPBRC_EPERM"


def test_error_for_echoes_64_bytes():
    bad = msg(4, 99, b"z" * 100)
    with pytest.raises(wire.OFError) as e:
        wire.decode(bad)
    err = wire.error_for(e.value)
    assert err == M.Error("OFPBRC_BAD_TYPE", bad[:64])
    data = wire.encode(err, 4, e.value.xid)
    assert data[:12] == bytes.fromhex("0401004c00000001") + bytes.fromhex("00010001")


def test_unsupported_experimenter_helper():
    _, _, m = wire.decode(msg(4, 4, bytes.fromhex("00abcdef00000007") + b"data"))
    assert m == M.Experimenter(0xABCDEF, 7, b"data")
    assert M.unsupported_experimenter(m).name == "OFPBRC_BAD_EXPERIMENTER"
    assert M.unsupported_experimenter(M.Experimenter(0x2320, 99)).name == \
        "OFPBRC_BAD_EXP_TYPE"
    with pytest.raises(wire.OFError) as e:      # Nicira subtype we do not know
        wire.decode(msg(4, 4, bytes.fromhex("0000232000000063")))
    assert e.value.name == "OFPBRC_BAD_EXP_TYPE"
