"""SCTP port rewrites carry the CRC32c along (kernel and twin), as Open
vSwitch's packet_set_sctp_port: a good checksum stays good, a bad one stays
exactly as bad."""

import numpy as np
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData

from pyvswitch.datapath.kernels import setfield as SF

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _frames():
    out = []
    for l2 in (ETH, ETH / Dot1Q(vlan=7)):
        for l3 in (IP(src="10.0.0.1", dst="10.0.0.2"), IPv6(src="2001:db8::1", dst="2001:db8::2")):
            out.append(bytes(l2 / l3 / SCTP(sport=5000, dport=6000) /
                             SCTPChunkData(data=b"payload-" * 5)))
    return out


def _sctp_off(frame):
    p = Ether(frame)
    return len(frame) - len(bytes(p[SCTP]))


def _good(frame):
    """The frame as scapy encodes it with the SCTP checksum recomputed."""
    p = Ether(frame)
    p[SCTP].chksum = None
    return bytes(p.__class__(bytes(p)))


def _kernel(frame, fid, value, mask):
    buf = np.zeros(len(frame) + 64, np.uint8)
    buf[16:16 + len(frame)] = np.frombuffer(frame, np.uint8)
    SF.set_field(buf, 16, len(frame), fid, value, mask, 0, 0)
    return bytes(buf[16:16 + len(frame)])


def _twin(frame, fid, value, mask):
    fr = bytearray(frame)
    SF.set_field_ref(fr, fid, value, mask)
    return bytes(fr)


def test_crc32c_check_value():
    assert SF.crc32c_ref(b"123456789") == 0xE3069283


@pytest.mark.parametrize("run", [_kernel, _twin], ids=["kernel", "twin"])
@pytest.mark.parametrize("fid,value,mask", [(SF.F_SCTP_SRC, 4242, 0xFFFF),
                                            (SF.F_SCTP_DST, 0x1F00, 0xFF00)])
def test_port_rewrite_keeps_the_checksum_right(run, fid, value, mask):
    for frame in _frames():
        assert _good(frame) == frame
        out = run(frame, fid, value, mask)
        p = Ether(out)
        port = p[SCTP].sport if fid == SF.F_SCTP_SRC else p[SCTP].dport
        assert port & mask == value and out != frame
        assert _good(out) == out, p.summary()


@pytest.mark.parametrize("run", [_kernel, _twin], ids=["kernel", "twin"])
def test_a_bad_checksum_stays_exactly_as_bad(run):
    for frame in _frames():
        at = _sctp_off(frame) + 8
        bad = bytearray(frame)
        bad[at] ^= 0x5A
        out = run(bytes(bad), SF.F_SCTP_DST, 99, 0xFFFF)
        good = _good(out)
        assert Ether(out)[SCTP].dport == 99
        assert out[at] == good[at] ^ 0x5A and out[at + 1:at + 4] == good[at + 1:at + 4]


def test_kernel_equals_twin_and_other_protocols_untouched():
    for frame in _frames():
        for fid in (SF.F_SCTP_SRC, SF.F_SCTP_DST):
            assert _kernel(frame, fid, 7, 0xFFFF) == _twin(frame, fid, 7, 0xFFFF)
        # a TCP/UDP port action leaves an SCTP packet alone
        assert _kernel(frame, SF.F_TCP_SRC, 7, 0xFFFF) == frame
        assert _twin(frame, SF.F_UDP_DST, 7, 0xFFFF) == frame
    truncated = _frames()[0][:14 + 20 + 10]          # SCTP header cut short
    assert _kernel(truncated, SF.F_SCTP_SRC, 1, 0xFFFF) == truncated
