"""vhost-user wire format: message ids, header, payload layouts, fd passing.

A message is a 12-byte header (u32 request, u32 flags, u32 size) plus `size`
payload bytes, little-endian; file descriptors travel as one SCM_RIGHTS
control message with the header (at most 8). Replies carry flags exactly
0x5 (version 1 | REPLY): QEMU and DPDK drop the connection otherwise.

recv_msg() reads the header with recvmsg (room for 8 fds, MSG_CMSG_CLOEXEC;
socket.recv_fds ignores its flags), then exactly `size` bytes. Anything
malformed raises ProtocolError after closing the fds received with it: the
caller closes that connection only. Shared by the back-end (port.py) and the
front-end (frontend.py). Any thread; no state.
"""

import array
import os
import socket
import struct

# front-end -> back-end requests
GET_FEATURES = 1
SET_FEATURES = 2
SET_OWNER = 3
RESET_OWNER = 4
SET_MEM_TABLE = 5
SET_LOG_BASE = 6
SET_LOG_FD = 7
SET_VRING_NUM = 8
SET_VRING_ADDR = 9
SET_VRING_BASE = 10
GET_VRING_BASE = 11
SET_VRING_KICK = 12
SET_VRING_CALL = 13
SET_VRING_ERR = 14
GET_PROTOCOL_FEATURES = 15
SET_PROTOCOL_FEATURES = 16
GET_QUEUE_NUM = 17
SET_VRING_ENABLE = 18
SEND_RARP = 19
NET_SET_MTU = 20
SET_BACKEND_REQ_FD = 21
IOTLB_MSG = 22
GET_CONFIG = 24
SET_CONFIG = 25
GET_INFLIGHT_FD = 31
SET_INFLIGHT_FD = 32
RESET_DEVICE = 34
GET_MAX_MEM_SLOTS = 36
ADD_MEM_REG = 37
REM_MEM_REG = 38
SET_STATUS = 39
GET_STATUS = 40

NAMES = {v: k for k, v in globals().items() if k.isupper() and isinstance(v, int)}

# flags
VERSION = 0x1
REPLY = 0x4
NEED_REPLY = 0x8
REPLY_FLAGS = VERSION | REPLY

# protocol features
PF_MQ = 0
PF_LOG_SHMFD = 1
PF_RARP = 2
PF_REPLY_ACK = 3
PF_MTU = 4
PF_RESET_DEVICE = 13
PF_STATUS = 16

VRING_IDX_MASK = 0xFF
VRING_NOFD = 0x100
VRING_F_LOG = 0x1

HDR = struct.Struct("<III")
U64 = struct.Struct("<Q")
STATE = struct.Struct("<II")
ADDR = struct.Struct("<IIQQQQ")       # index, flags, desc, used, avail, log_guest_addr
REGION = struct.Struct("<QQQQ")       # guest_phys_addr, memory_size, userspace_addr, mmap_offset
MEMHDR = struct.Struct("<II")
LOG = struct.Struct("<QQ")            # mmap_size, mmap_offset
MAX_FDS = 8
MAX_REGIONS = 8
MAX_PAYLOAD = 4096                    # largest legitimate: GET/SET_CONFIG 12 + 256

# payload sizes the back-end requires, per request (None: any up to MAX_PAYLOAD)
PAYLOAD_SIZE = {
    GET_FEATURES: 0, SET_FEATURES: 8, SET_OWNER: 0, RESET_OWNER: 0, SET_LOG_BASE: 16,
    SET_LOG_FD: 0, SET_VRING_NUM: 8, SET_VRING_ADDR: 40, SET_VRING_BASE: 8, GET_VRING_BASE: 8,
    SET_VRING_KICK: 8, SET_VRING_CALL: 8, SET_VRING_ERR: 8, GET_PROTOCOL_FEATURES: 0,
    SET_PROTOCOL_FEATURES: 8, GET_QUEUE_NUM: 0, SET_VRING_ENABLE: 8, SEND_RARP: 8,
    NET_SET_MTU: 8, GET_STATUS: 0, SET_STATUS: 8, RESET_DEVICE: 0, GET_MAX_MEM_SLOTS: 0,
}


class ProtocolError(Exception):
    """The peer sent something we cannot accept: close that connection."""


class PeerClosed(Exception):
    """The peer closed the connection (EOF)."""


class Msg:
    __slots__ = ("req", "flags", "payload", "fds")

    def __init__(self, req, flags, payload, fds):
        self.req, self.flags, self.payload, self.fds = req, flags, payload, fds

    @property
    def need_reply(self):
        return bool(self.flags & NEED_REPLY)

    def u64(self):
        return U64.unpack_from(self.payload)[0]

    def state(self):
        return STATE.unpack_from(self.payload)

    def take_fd(self):
        """The one fd of the message (ownership moves to the caller), or None."""
        return self.fds.pop(0) if self.fds else None

    def close_fds(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __repr__(self):
        return f"<{NAMES.get(self.req, self.req)} flags={self.flags:#x} size={len(self.payload)} fds={len(self.fds)}>"


def _recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise PeerClosed()
        out += chunk
    return bytes(out)


def recv_msg(sock):
    """One message from a blocking socket; PeerClosed at EOF, ProtocolError if malformed."""
    fdsize = array.array("i").itemsize
    data, anc, flags, _ = sock.recvmsg(HDR.size, socket.CMSG_SPACE(MAX_FDS * fdsize),
                                       socket.MSG_WAITALL | socket.MSG_CMSG_CLOEXEC)
    fds = []
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(cdata[:len(cdata) - len(cdata) % fdsize])
            fds.extend(a)
    msg = Msg(0, 0, b"", fds)
    if not data:
        msg.close_fds()
        raise PeerClosed()
    if flags & socket.MSG_CTRUNC:
        msg.close_fds()
        raise ProtocolError("control data truncated (too many fds)")
    if len(data) < HDR.size:
        data += _recv_exact(sock, HDR.size - len(data))
    msg.req, msg.flags, size = HDR.unpack(data)
    if size > MAX_PAYLOAD:
        msg.close_fds()
        raise ProtocolError(f"request {msg.req}: payload of {size} bytes")
    if (msg.flags & 0x3) != VERSION:
        msg.close_fds()
        raise ProtocolError(f"request {msg.req}: bad flags {msg.flags:#x}")
    try:
        msg.payload = _recv_exact(sock, size) if size else b""
    except (PeerClosed, OSError):
        msg.close_fds()
        raise
    return msg


def send_msg(sock, req, payload=b"", fds=(), flags=VERSION):
    data = HDR.pack(req, flags, len(payload)) + payload
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def send_reply(sock, req, payload=b""):
    send_msg(sock, req, payload, flags=REPLY_FLAGS)


def pack_mem_table(regions):
    """regions: [(gpa, size, uva, mmap_offset)] -> SET_MEM_TABLE payload."""
    return MEMHDR.pack(len(regions), 0) + b"".join(REGION.pack(*r) for r in regions)


def unpack_mem_table(payload):
    if len(payload) < MEMHDR.size:
        raise ProtocolError("SET_MEM_TABLE: short payload")
    n, _ = MEMHDR.unpack_from(payload)
    if n > MAX_REGIONS:
        raise ProtocolError(f"SET_MEM_TABLE: {n} regions (at most {MAX_REGIONS})")
    if len(payload) != MEMHDR.size + n * REGION.size:
        raise ProtocolError(f"SET_MEM_TABLE: {len(payload)} bytes for {n} regions")
    return [REGION.unpack_from(payload, MEMHDR.size + i * REGION.size) for i in range(n)]
