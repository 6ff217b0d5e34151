"""The back-end side of one vhost-user session: messages in, ring state out.

    dev = Device(gm, max_qp, quiesce, counters)
    reply = dev.handle(msg)      msg: protocol.Msg; returns (request, payload)
                                 to send or None; raises ProtocolError to
                                 make the caller close the connection
    dev.reset()                  the peer left: stop every ring, unmap, close fds
    dev.link_up() / dev.n_qp / dev.broken()

Ring state (per vring) is kept here in Python; what the PMD kernels read is
written into the control words of gm.mem by _commit(), always inside
`quiesce()` (every PMD parked), and only when it changed. Ring indices
(V_LAST_AVAIL, V_USED_IDX) are owned by the kernels while a ring runs; they
are initialised from SET_VRING_BASE when a ring first becomes ready and
re-synchronised with used->idx in guest memory when the two disagree (DPDK
virtio-user sends base 0 after a reconnect). A ring that stops for a while
(SET_VRING_ENABLE 0 around a run-time SET_MEM_TABLE) keeps its indices.

ready(ring) = memory mapped, addresses translated and aligned, kick received
(fd or "no fd"), enabled (SET_VRING_ENABLE 1, or PROTOCOL_FEATURES not
negotiated), not broken. Messages may come in any order; every per-ring
index is checked against the rings we allow (2 * max_qp). Runs on the port's
events thread only.
"""

import os

from pyvswitch.core import vlog
from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost import protocol as P
from pyvswitch.ports.vhost.memory import MemError

log = vlog.Module("vhost_user")

OFFERED = ((1 << L.F_VERSION_1) | (1 << L.F_MRG_RXBUF) | (1 << L.F_PROTOCOL_FEATURES)
           | (1 << L.F_MQ) | (1 << L.F_EVENT_IDX) | (1 << L.F_LOG_ALL) | (1 << L.F_ANY_LAYOUT)
           | (1 << L.F_IN_ORDER))
OFFERED_PROTO = ((1 << P.PF_MQ) | (1 << P.PF_LOG_SHMFD) | (1 << P.PF_RARP)
                 | (1 << P.PF_REPLY_ACK) | (1 << P.PF_STATUS) | (1 << P.PF_MTU))
RUNNING_CHANGEABLE = 1 << L.F_LOG_ALL

PROTO_ERRORS = ("bad_message", "too_many_regions", "bad_mem_table", "bad_fds",
                "bad_ring_index", "bad_ring_addr", "bad_features", "broken_ring_disconnects",
                "unknown_requests")


class _Ring:
    def __init__(self):
        self.num = 0
        self.base = 0
        self.addr = None          # (flags, desc, used, avail, log_guest_addr) user addresses
        self.kick = None          # fd, -1 for "no fd", None before SET_VRING_KICK
        self.call = -1
        self.enabled = None       # None: never set
        self.need_init = True

    def close_fds(self):
        for fd in (self.kick, self.call):
            if fd is not None and fd >= 0:
                os.close(fd)
        self.kick, self.call = None, -1


def _expected_fds(msg):
    r = msg.req
    if r == P.SET_MEM_TABLE:
        return len(msg.payload) // P.REGION.size if len(msg.payload) >= P.MEMHDR.size else 0
    if r in (P.SET_VRING_KICK, P.SET_VRING_CALL, P.SET_VRING_ERR):
        return 0 if len(msg.payload) < 8 or msg.u64() & P.VRING_NOFD else 1
    if r in (P.SET_LOG_BASE, P.SET_LOG_FD, P.SET_BACKEND_REQ_FD, P.SET_INFLIGHT_FD, P.ADD_MEM_REG):
        return 1
    return 0


class Device:
    def __init__(self, gm, max_qp, quiesce, counters):
        self.gm, self.max_qp, self.quiesce, self.counters = gm, max_qp, quiesce, counters
        self.rings = [_Ring() for _ in range(2 * max_qp)]
        self.features = 0
        self.proto = 0
        self.status = 0
        self.mtu = None
        self.log_fd = None
        self._live = {}           # ring -> True when its control words say ready
        self.on_change = None     # fn() after ring state changed (link state)

    # -- session
    def reset(self):
        with self.quiesce():
            self._stop_all()
            self.gm.ctl[L.G_RARP] = 0            # a pending announcement goes with the peer
            self.gm.clear()
            self.gm.clear_log()
        for r in self.rings:
            r.close_fds()
        self.rings = [_Ring() for _ in range(2 * self.max_qp)]
        self.features = self.proto = self.status = 0
        if self.log_fd is not None:
            os.close(self.log_fd)
            self.log_fd = None
        self._changed()

    def _stop_all(self):
        c = self.gm.ctl
        for i in range(L.MAX_VRINGS):
            c[L.vr(i) + L.V_READY] = 0
            c[L.vr(i) + L.V_CALL_FD] = -1
            c[L.vr(i) + L.V_BROKEN] = 0
        c[L.G_NTXV] = 0
        self._live = {}

    def n_qp(self):
        return sum(1 for i in self._live if i % 2 == 1)

    def link_up(self):
        return bool(self._live)

    def broken(self):
        c = self.gm.ctl
        return any(c[L.vr(i) + L.V_BROKEN] for i in range(len(self.rings)))

    def _changed(self):
        if self.on_change is not None:
            self.on_change()

    def _count(self, name):
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- messages
    def handle(self, msg):
        try:
            if msg.req == P.SET_MEM_TABLE:
                self._check_mem_table(msg)
            want = _expected_fds(msg)
            if len(msg.fds) != want:
                self._count("bad_fds")
                raise P.ProtocolError(f"{msg!r}: expected {want} fds")
            size = P.PAYLOAD_SIZE.get(msg.req)
            if size is not None and len(msg.payload) != size:
                self._count("bad_message")
                raise P.ProtocolError(f"{msg!r}: payload must be {size} bytes")
            fn = _HANDLERS.get(msg.req)
            if fn is None:
                self._count("unknown_requests")
                log.warn("unknown vhost-user request %d", msg.req)
                return self._ack(msg, False)
            return fn(self, msg)
        finally:
            msg.close_fds()

    def _ack(self, msg, ok=True):
        if msg.need_reply and self.proto & (1 << P.PF_REPLY_ACK):
            return msg.req, P.U64.pack(0 if ok else 1)
        if not ok and msg.need_reply:
            return msg.req, P.U64.pack(1)
        return None

    def _ring(self, msg, index):
        if index >= len(self.rings):
            self._count("bad_ring_index")
            raise P.ProtocolError(f"{msg!r}: vring {index} (we allow {len(self.rings)})")
        return self.rings[index]

    def _get_features(self, msg):
        return msg.req, P.U64.pack(OFFERED)

    def _set_features(self, msg):
        f = msg.u64()
        if f & ~OFFERED:
            self._count("bad_features")
            raise P.ProtocolError(f"features {f:#x} not offered")
        if self._live and (f ^ self.features) & ~RUNNING_CHANGEABLE:
            self._count("bad_features")
            return self._ack(msg, False)
        self.features = f
        self._commit()
        return self._ack(msg)

    def _get_proto(self, msg):
        return msg.req, P.U64.pack(OFFERED_PROTO)

    def _set_proto(self, msg):
        self.proto = msg.u64() & OFFERED_PROTO
        return self._ack(msg)

    def _get_queue_num(self, msg):
        return msg.req, P.U64.pack(self.max_qp)

    def _nothing(self, msg):
        return self._ack(msg)

    def _reset_owner(self, msg):
        with self.quiesce():
            self._stop_all()
        for r in self.rings:
            r.enabled, r.need_init = None, True
        self._changed()
        return self._ack(msg)

    def _check_mem_table(self, msg):
        try:
            return P.unpack_mem_table(msg.payload)
        except P.ProtocolError:
            n = P.MEMHDR.unpack_from(msg.payload)[0] if len(msg.payload) >= P.MEMHDR.size else 0
            self._count("too_many_regions" if n > P.MAX_REGIONS else "bad_mem_table")
            raise

    def _set_mem_table(self, msg):
        regions = P.unpack_mem_table(msg.payload)
        ok = True
        # a run-time remap: rings were set up on the old table (running, or
        # paused by SET_VRING_ENABLE 0 as virtio-user does around it)
        remap = self.gm.regions and any(r.addr is not None for r in self.rings)
        with self.quiesce():
            self._stop_all()
            try:
                self.gm.set_table(regions, msg.fds)
            except MemError as e:
                log.warn("SET_MEM_TABLE refused: %s", e)
                self._count("bad_mem_table")
                ok = False
            self._commit(locked=True)
        if ok:
            self._count("mem_table_remaps" if remap else "mem_tables")
        log.info("memory table%s: %s", " (remap)" if remap else "",
                 ", ".join(f"gpa={g:#x} size={s:#x} uva={u:#x}" for g, s, u, _ in regions))
        if not ok and not msg.need_reply:
            raise P.ProtocolError("bad memory table")
        return self._ack(msg, ok)

    def _set_log_base(self, msg):
        size, offset = P.LOG.unpack(msg.payload)
        with self.quiesce():
            try:
                self.gm.set_log(msg.fds[0], size, offset)
            except MemError as e:
                log.warn("SET_LOG_BASE refused: %s", e)
                self._count("bad_mem_table")
            self._commit(locked=True)
        return msg.req, b""

    def _set_log_fd(self, msg):
        if self.log_fd is not None:
            os.close(self.log_fd)
        self.log_fd = msg.take_fd()
        return self._ack(msg)

    def _set_vring_num(self, msg):
        index, num = msg.state()
        r = self._ring(msg, index)
        if num == 0 or num > 32768 or num & (num - 1):
            self._count("bad_ring_addr")
            raise P.ProtocolError(f"vring {index}: size {num}")
        r.num, r.need_init = num, True
        self._commit()
        return self._ack(msg)

    def _set_vring_addr(self, msg):
        index, flags, desc, used, avail, logaddr = P.ADDR.unpack(msg.payload)
        r = self._ring(msg, index)
        r.addr = (flags, desc, used, avail, logaddr)
        self._commit(force=True)
        return self._ack(msg)

    def _set_vring_base(self, msg):
        index, base = msg.state()
        r = self._ring(msg, index)
        r.base, r.need_init = base & 0xFFFF, True
        self._commit()
        return self._ack(msg)

    def _get_vring_base(self, msg):
        index, _ = msg.state()
        r = self._ring(msg, index)
        with self.quiesce():
            last = r.base if r.need_init else int(self.gm.ctl[L.vr(index) + L.V_LAST_AVAIL])
            r.kick, r.enabled, r.need_init = None, False, True
            self._commit(locked=True)
        r.close_fds()
        r.base = last & 0xFFFF
        return msg.req, P.STATE.pack(index, last & 0xFFFF)

    def _set_vring_fd(self, msg):
        v = msg.u64()
        r = self._ring(msg, v & P.VRING_IDX_MASK)
        fd = -1 if v & P.VRING_NOFD else msg.take_fd()
        if msg.req == P.SET_VRING_ERR:
            if fd >= 0:
                os.close(fd)
            return self._ack(msg)
        # force: the PMDs must stop using the old fd (a sleeping PMD polls the
        # kick fd) before it is closed
        if msg.req == P.SET_VRING_KICK:
            old, r.kick = r.kick, fd
        else:
            old, r.call = r.call, fd
        self._commit(force=True)
        if old is not None and old >= 0:
            os.close(old)
        return self._ack(msg)

    def _set_vring_enable(self, msg):
        index, num = msg.state()
        self._ring(msg, index).enabled = bool(num)
        self._commit()
        return self._ack(msg)

    def _set_status(self, msg):
        self.status = msg.u64() & 0xFF
        return self._ack(msg)

    def _get_status(self, msg):
        return msg.req, P.U64.pack(self.status)

    def _net_set_mtu(self, msg):
        self.mtu = msg.u64()
        return self._ack(msg)

    def _get_max_mem_slots(self, msg):
        return msg.req, P.U64.pack(L.MAX_REGIONS)

    def _send_rarp(self, msg):
        """Inject a RARP from the guest MAC (rarp.py): the PMD polling queue 0
        puts it in front of the guest's frames, now or once the ring runs."""
        if not self.proto & (1 << P.PF_RARP):
            self._count("unknown_requests")
            log.warn("SEND_RARP without the RARP protocol feature: ignored")
            return self._ack(msg, False)
        mac = msg.payload[:6]
        self._count("rarp_requests")
        with self.quiesce():
            self.gm.ctl[L.G_RARP_MAC] = int.from_bytes(mac, "little")
            self.gm.ctl[L.G_RARP] = 1
        log.info("SEND_RARP: announcing %s", ":".join(f"{b:02x}" for b in mac))
        return self._ack(msg)

    # -- ring state -> control words
    def _enabled(self, r):
        if r.enabled is None:
            return not self.features & (1 << L.F_PROTOCOL_FEATURES)
        return r.enabled

    def _translate(self, i, r):
        """(desc, avail, used) mem offsets, or None if the ring cannot run."""
        if r.addr is None or r.num == 0 or not self.gm.regions:
            return None
        flags, desc, used, avail, _ = r.addr
        n = r.num
        d, a, u = self.gm.uva_off(desc, 16 * n), self.gm.uva_off(avail, 6 + 2 * n), \
            self.gm.uva_off(used, 6 + 8 * n)
        if d < 0 or a < 0 or u < 0 or d % 16 or a % 2 or u % 4:
            self._count("bad_ring_addr")
            log.warn("vring %d: ring addresses outside guest memory or misaligned", i)
            return None
        return d, a, u

    def _commit(self, force=False, locked=False):
        """Write every ring's state into the control words (under quiesce)."""
        want = {}
        for i, r in enumerate(self.rings):
            if r.kick is None or not self._enabled(r):
                continue
            t = self._translate(i, r)
            if t is not None:
                want[i] = t
        c = self.gm.ctl
        hdr = 12 if self.features & ((1 << L.F_VERSION_1) | (1 << L.F_MRG_RXBUF)) else 10
        log_on = int(bool(self.features & (1 << L.F_LOG_ALL)) and self.gm.has_log())
        glob = (hdr, log_on, int(bool(self.features & (1 << L.F_MRG_RXBUF))),
                int(bool(self.features & (1 << L.F_EVENT_IDX))))
        if not force and want == self._live and glob == self._glob():
            return
        if not locked:
            with self.quiesce():
                return self._commit(force, locked=True)
        c[L.G_HDR_LEN], c[L.G_LOG_ON], c[L.G_MRG], c[L.G_EVENT_IDX] = glob
        c[L.G_ONE] = 1
        for i in range(len(self.rings)):
            self._write_ring(i, want.get(i))
        tx = sorted(i for i in want if i % 2 == 0)
        for k, i in enumerate(tx):
            c[L.TXMAP_BASE + k] = i
        c[L.G_NTXV] = len(tx)
        self._live = want
        self._changed()

    def _glob(self):
        c = self.gm.ctl
        return (int(c[L.G_HDR_LEN]), int(c[L.G_LOG_ON]), int(c[L.G_MRG]), int(c[L.G_EVENT_IDX]))

    def _write_ring(self, i, t):
        c, v, r = self.gm.ctl, L.vr(i), self.rings[i]
        if t is None:
            c[v + L.V_READY] = 0
            c[v + L.V_CALL_FD] = -1
            return
        d, a, u = t
        n = r.num
        c[v + L.V_N], c[v + L.V_DESC], c[v + L.V_AVAIL], c[v + L.V_USED] = n, d, a, u
        c[v + L.V_CALL_FD] = r.call
        c[v + L.V_KICK_FD] = r.kick
        flags, _, _, _, logaddr = r.addr
        c[v + L.V_LOG_USED] = logaddr if flags & P.VRING_F_LOG else -1
        mem = self.gm.mem
        if r.need_init:
            guest_used = int(mem[u + 2]) | int(mem[u + 3]) << 8
            start = r.base
            if guest_used != start:
                log.info("vring %d: base %d but used->idx %d: resuming from used->idx",
                         i, start, guest_used)
                start = guest_used
            for w in (L.V_LAST_AVAIL, L.V_USED_IDX, L.V_PUBLISHED, L.V_SIGNALLED):
                c[v + w] = start
            r.need_init = False
        c[v + L.V_BROKEN] = 0
        c[v + L.V_LOCK] = 0
        if not self.features & (1 << L.F_EVENT_IDX):
            mem[u] |= L.VRING_USED_F_NO_NOTIFY        # we poll: no kicks please
        c[v + L.V_READY] = 1


_HANDLERS = {
    P.GET_FEATURES: Device._get_features, P.SET_FEATURES: Device._set_features,
    P.SET_OWNER: Device._nothing, P.RESET_OWNER: Device._reset_owner,
    P.SET_MEM_TABLE: Device._set_mem_table, P.SET_LOG_BASE: Device._set_log_base,
    P.SET_LOG_FD: Device._set_log_fd, P.SET_VRING_NUM: Device._set_vring_num,
    P.SET_VRING_ADDR: Device._set_vring_addr, P.SET_VRING_BASE: Device._set_vring_base,
    P.GET_VRING_BASE: Device._get_vring_base, P.SET_VRING_KICK: Device._set_vring_fd,
    P.SET_VRING_CALL: Device._set_vring_fd, P.SET_VRING_ERR: Device._set_vring_fd,
    P.GET_PROTOCOL_FEATURES: Device._get_proto, P.SET_PROTOCOL_FEATURES: Device._set_proto,
    P.GET_QUEUE_NUM: Device._get_queue_num, P.SET_VRING_ENABLE: Device._set_vring_enable,
    P.SEND_RARP: Device._send_rarp, P.NET_SET_MTU: Device._net_set_mtu,
    P.SET_STATUS: Device._set_status, P.GET_STATUS: Device._get_status,
    P.RESET_DEVICE: Device._reset_owner, P.GET_MAX_MEM_SLOTS: Device._get_max_mem_slots,
}
