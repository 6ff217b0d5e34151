"""vhost-user ports: `dpdkvhostuser` (the switch listens) and
`dpdkvhostuserclient` (the front-end listens, the switch connects and keeps
reconnecting).

    add-port br0 vhu0 -- set Interface vhu0 type=dpdkvhostuser
        socket <sock dir>/vhu0; sock dir = options:vhost-sock-dir, else
        set_default_sock_dir(path) (the daemon's rundir), else $PVS_RUNDIR,
        else /var/run/pyvswitch
    add-port br0 vhc0 -- set Interface vhc0 type=dpdkvhostuserclient \
        options:vhost-server-path=/path/sock
    options (both): n_rxq = the most queue pairs the guest may use (default
        1, <= 16): the datapath polls n_rxq rx queues from the start (it cannot
        change a port's rxq count at run time), a guest that enables fewer
        leaves the others idle; vhost-mem-window = GiB of guest address space
        reserved (default 64, virtual only).

Threads: one "vhost-events" thread per port owns the socket: it accepts or
connects (back-off 0.1 s doubling to 1 s, forever, in client mode), reads
each message, lets device.Device answer it at once (front-ends block on the
replies), and disconnects the peer on a protocol error or a ring the
kernels marked broken (checked every 100 ms). Every change to what the PMDs
read happens inside `self.quiesce()` (Dpif.quiesce: all PMDs parked). The
PMDs only ever see gm.mem (one array for the port's life) and the io rows.
Link state (IO_LINK_UP in every row) follows the peer: up while a ring runs.
Only the client mode survives a switch restart (DPDK virtio-user reconnects
only as a server; QEMU needs reconnect= as a client).
"""

import os
import selectors
import socket
import threading
import time

from pyvswitch.core import paths, vlog
from pyvswitch.ports import io as pio
from pyvswitch.ports import base
from pyvswitch.ports.base import Port, PortError, register
from pyvswitch.ports.vhost import layout as L
from pyvswitch.ports.vhost import protocol as P
from pyvswitch.ports.vhost.device import PROTO_ERRORS, Device
from pyvswitch.ports.vhost.memory import GuestMemory, MemError

log = vlog.Module("netdev_dpdk")
_default_sock_dir = None
RECV_TIMEOUT = 5.0
BACKOFF_MIN, BACKOFF_MAX = 0.1, 1.0


def set_default_sock_dir(path):
    """Where dpdkvhostuser sockets go when options:vhost-sock-dir is not set
    (the daemon calls this with other_config:vhost-sock-dir or its rundir)."""
    global _default_sock_dir
    _default_sock_dir = path or None


def sock_dir(options):
    return (options.get("vhost-sock-dir") or _default_sock_dir or os.environ.get("PVS_RUNDIR")
            or paths.DEFAULT_RUNDIR)


class _VhostPort(Port):
    client = False
    KNOWN = {"n_rxq", "vhost-mem-window", "vhost-sock-dir"}

    def __init__(self, name, options=None):
        super().__init__(name, options)
        bad = set(self.options) - self.KNOWN
        if bad:
            raise PortError(f"{name}: unknown option(s) {', '.join(sorted(bad))} "
                            f"(known: {', '.join(sorted(self.KNOWN))})")
        try:
            self.n_rxq = int(self.options.get("n_rxq", 1))
            self.window = int(float(self.options.get("vhost-mem-window", 64)) * (1 << 30))
        except ValueError as e:
            raise PortError(f"{name}: bad option value ({e})") from None
        if not 1 <= self.n_rxq <= L.MAX_QP or self.window < (1 << 20):
            raise PortError(f"{name}: n_rxq must be in [1, {L.MAX_QP}]")
        self.path = self._path()
        self.gm = self.dev = None
        self.ctl_counters = {k: 0 for k in PROTO_ERRORS}
        self.ctl_counters.update(connections=0, reconnect_attempts=0, rejected_connections=0,
                                 rarp_requests=0, mem_tables=0, mem_table_remaps=0)
        self._rx, self._tx = {}, {}
        self._thread = None
        self._conn = self._listen = None
        self._stop = False
        self._wake_r = self._wake_w = -1
        self.mtu = 1500

    # -- life cycle
    def open(self):
        if self.gm is not None:
            return
        try:
            self.gm = GuestMemory(self.window)
        except MemError as e:
            raise PortError(f"{self.name}: {e}") from None
        self.gm.reset_ctl()
        self.dev = Device(self.gm, self.n_rxq, self.quiesce, self.ctl_counters)
        self.dev.on_change = self._link_changed
        try:
            if not self.client:
                self._listen = self._bind()
        except OSError as e:
            self.gm.close()
            self.gm = None
            raise PortError(f"{self.name}: could not listen on {self.path} ({e.strerror or e})") from None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"vhost-events/{self.name}", daemon=True)
        self._thread.start()
        log.info("%s: vhost-user %s socket %s", self.name, "client" if self.client else "server",
                 self.path)

    def _bind(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.bind(self.path)
        s.listen(4)
        return s

    def close(self):
        if self.gm is None:
            return
        self._stop = True
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(10)
        alive = self._thread is not None and self._thread.is_alive()
        if not alive:
            self._disconnect()
            if self._listen is not None:
                self._listen.close()
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
            self.gm.close()
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._listen, self._thread, self.gm = None, None, None

    # -- datapath hand-out
    def _row(self, queue):
        row = pio.new_io_row(pio.PT_VHOST, queue=queue)
        row[pio.IO_MTU] = self.mtu
        row[pio.IO_LINK_UP] = int(self.dev.link_up())
        return row

    def rx_io(self, queue):
        if self.gm is None:
            raise PortError(f"{self.name}: port is not open")
        row = self._rx.get(queue)
        if row is None:
            row = self._rx[queue] = self._row(queue)
            row[L.X_VRING] = 2 * queue + 1
            row[pio.IO_FD] = pio.IO_FD_ARM            # an idle PMD sleeps on the kick fd
            row[L.X_ARMED] = -1
        return row, self.gm.mem

    def tx_io(self, pmd_id):
        if self.gm is None:
            raise PortError(f"{self.name}: port is not open")
        row = self._tx.get(pmd_id)
        if row is None:
            row = self._tx[pmd_id] = self._row(pmd_id)
            row[L.X_TXHINT] = len(self._tx) - 1
        return row, self.gm.mem

    def _link_changed(self):
        up = int(self.dev.link_up())
        for row in list(self._rx.values()) + list(self._tx.values()):
            row[pio.IO_LINK_UP] = up
        base.link_changed()

    def link_up(self):
        return self.dev is not None and self.dev.link_up()

    def set_mtu(self, mtu):
        self.mtu = int(mtu)
        for row in list(self._rx.values()) + list(self._tx.values()):
            row[pio.IO_MTU] = self.mtu

    def status(self):
        st = {"mode": "client" if self.client else "server", "socket": self.path,
              "status": "connected" if self._conn is not None else "disconnected",
              "n_rxq": str(self.n_rxq)}
        if self.dev is not None and self.gm is not None:
            c = self.gm.ctl
            st["features"] = f"{self.dev.features:#x}"
            st["protocol_features"] = f"{self.dev.proto:#x}"
            st["queue_pairs"] = str(self.dev.n_qp())
            st["num_of_vrings"] = str(len(self.dev._live))
            for i, name in enumerate(L.ERR_NAMES):
                st[name] = str(int(c[L.ERR_BASE + i]))
            st["guest_calls"] = str(sum(int(c[L.vr(i) + L.V_CALLS]) for i in range(L.MAX_VRINGS)))
            st["rx_by_reference"] = str(sum(int(c[L.vr(i) + L.V_SPLIT]) for i in range(L.MAX_VRINGS)))
        for k, v in self.ctl_counters.items():
            st[k] = str(v)
        return st

    def error_counters(self):
        """{name: int} of every named error (kernel and protocol)."""
        st = self.status()
        return {k: int(st[k]) for k in L.ERR_NAMES + PROTO_ERRORS if k in st}

    # -- events thread
    def _run(self):
        backoff = BACKOFF_MIN
        while not self._stop:
            try:
                if self._conn is None and self.client:
                    if self._connect():
                        backoff = BACKOFF_MIN
                    else:
                        self._wait(backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                self._poll()
            except Exception as e:              # never let the thread die
                log.err("%s: events thread: %r", self.name, e)
                self._disconnect()
                time.sleep(0.1)

    def _wait(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        sel.select(timeout)
        sel.close()

    def _connect(self):
        self.ctl_counters["reconnect_attempts"] += 1
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            return False
        self._accepted(s)
        return True

    def _accepted(self, s):
        s.settimeout(RECV_TIMEOUT)
        self._conn = s
        self.ctl_counters["connections"] += 1
        log.info("%s: vhost-user peer connected (%s)", self.name, self.path)

    def _poll(self):
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self._listen is not None:
            sel.register(self._listen, selectors.EVENT_READ, "listen")
        if self._conn is not None:
            sel.register(self._conn, selectors.EVENT_READ, "conn")
        try:
            events = sel.select(0.1)
        finally:
            sel.close()
        for key, _ in events:
            if key.data == "wake":
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass
            elif key.data == "listen":
                s, _ = self._listen.accept()
                if self._conn is not None:
                    self.ctl_counters["rejected_connections"] += 1
                    s.close()
                else:
                    self._accepted(s)
            elif key.data == "conn" and self._conn is not None:
                self._message()
        if self._conn is not None and self.dev.broken():
            self.ctl_counters["broken_ring_disconnects"] += 1
            log.warn("%s: guest ring broken: disconnecting", self.name)
            self._disconnect()

    def _message(self):
        try:
            msg = P.recv_msg(self._conn)
        except P.PeerClosed:
            log.info("%s: vhost-user peer closed the connection", self.name)
            self._disconnect()
            return
        except P.ProtocolError as e:
            self.ctl_counters["bad_message"] += 1
            log.warn("%s: %s: disconnecting", self.name, e)
            self._disconnect()
            return
        except OSError as e:
            log.warn("%s: vhost-user socket: %s", self.name, e)
            self._disconnect()
            return
        try:
            reply = self.dev.handle(msg)
            if reply is not None:
                P.send_reply(self._conn, *reply)
        except P.ProtocolError as e:
            log.warn("%s: %s: disconnecting", self.name, e)
            self._disconnect()
        except OSError as e:
            log.warn("%s: vhost-user reply: %s", self.name, e)
            self._disconnect()

    def _disconnect(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.dev is not None and self.gm is not None:
            self.dev.reset()


@register("dpdkvhostuser")
class VhostUserPort(_VhostPort):
    def _path(self):
        return os.path.join(sock_dir(self.options), self.name)


@register("dpdkvhostuserclient")
class VhostUserClientPort(_VhostPort):
    client = True
    KNOWN = {"n_rxq", "vhost-mem-window", "vhost-server-path"}

    def _path(self):
        p = self.options.get("vhost-server-path")
        if not p:
            raise PortError(f"{self.name}: options:vhost-server-path is required")
        return p
