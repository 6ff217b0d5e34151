"""Hypothesis strategies for frames: well-formed stacks, then truncated/corrupted."""

import struct

from hypothesis import strategies as st

ETYPES = [0x0800, 0x86DD, 0x0806, 0x8100, 0x88CC, 0x0100]


@st.composite
def l4(draw, proto):
    if proto == 6:
        doff = draw(st.sampled_from([5, 5, 6, 15, 4, 0]))
        hdr = struct.pack("!HHIIHHHH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535)),
                          0, 0, (doff << 12) | draw(st.integers(0, 0xFFF)), 0, 0, 0)
        return hdr + bytes(max(0, doff * 4 - 20))
    if proto in (17, 132):
        return struct.pack("!HH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535))) + bytes(8)
    if proto in (1, 58):
        return bytes([draw(st.integers(0, 255)), draw(st.integers(0, 255))]) + bytes(6)
    return draw(st.binary(max_size=20))


@st.composite
def ipv4(draw):
    proto = draw(st.sampled_from([6, 17, 1, 132, 58, 47]))
    ihl = draw(st.sampled_from([5, 5, 6, 15, 4]))
    payload = draw(l4(proto)) + draw(st.binary(max_size=8))
    tot = draw(st.sampled_from([None, None, 0, 10, 2000]))
    tot = ihl * 4 + len(payload) if tot is None else tot
    fo = draw(st.sampled_from([0, 0, 0x2000, 0x0010, 0x2010, 0x4000]))
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, draw(st.integers(0, 255)), tot & 0xFFFF,
                      0, fo, draw(st.integers(0, 255)), proto, 0,
                      draw(st.binary(min_size=4, max_size=4)), draw(st.binary(min_size=4, max_size=4)))
    return hdr + bytes(max(0, ihl * 4 - 20)) + payload


@st.composite
def ipv6(draw):
    exts = draw(st.lists(st.sampled_from([0, 43, 60, 51, 44]), max_size=10))
    proto = draw(st.sampled_from([6, 17, 58, 1, 132, 59]))
    chain = exts + [proto]
    body = b""
    for i, e in enumerate(exts):
        nxt = chain[i + 1]
        if e == 44:
            body += struct.pack("!BBHI", nxt, 0, draw(st.sampled_from([0, 1, 8, 9, 6])), 0)
        elif e == 51:
            body += bytes([nxt, 1]) + bytes(10)
        else:
            n = draw(st.integers(0, 2))
            body += bytes([nxt, n]) + bytes(6 + 8 * n)
    body += draw(l4(proto))
    plen = draw(st.sampled_from([None, None, 3, 4000]))
    plen = len(body) if plen is None else plen
    hdr = struct.pack("!IHBB", (6 << 28) | draw(st.integers(0, 0xFFFFFFF)), plen, chain[0],
                      draw(st.integers(0, 255)))
    return hdr + draw(st.binary(min_size=32, max_size=32)) + body


@st.composite
def arp(draw):
    htype = draw(st.sampled_from([1, 1, 6]))
    return struct.pack("!HHBBH", htype, 0x0800, 6, 4, draw(st.integers(0, 0x1FF))) + \
        draw(st.binary(min_size=20, max_size=20))


@st.composite
def frames(draw):
    eth = draw(st.binary(min_size=12, max_size=12))
    if draw(st.booleans()):
        eth += struct.pack("!HH", 0x8100, draw(st.integers(0, 65535)))
    kind = draw(st.sampled_from(["ip", "ip6", "arp", "other"]))
    if kind == "ip":
        frame = eth + b"\x08\x00" + draw(ipv4())
    elif kind == "ip6":
        frame = eth + b"\x86\xdd" + draw(ipv6())
    elif kind == "arp":
        frame = eth + b"\x08\x06" + draw(arp())
    else:
        frame = eth + struct.pack("!H", draw(st.sampled_from(ETYPES))) + draw(st.binary(max_size=40))
    mode = draw(st.sampled_from(["keep", "keep", "truncate", "corrupt"]))
    if mode == "truncate":
        frame = frame[:draw(st.integers(0, len(frame)))]
    elif mode == "corrupt" and frame:
        i = draw(st.integers(0, len(frame) - 1))
        frame = frame[:i] + bytes([draw(st.integers(0, 255))]) + frame[i + 1:]
    return frame


any_frame = st.one_of(frames(), st.binary(max_size=120))
