"""The management socket: appctl commands over newline-delimited JSON.

`UnixctlServer` listens on <rundir>/pvs-vswitchd.ctl (mode 0600, as OVS's
control socket) and dispatches requests to a registry of commands, each with
a name, a usage string, an argument count range and a handler that returns
text (or JSON-able data) or raises CommandError. Protocol: core/unixrpc.py.

The server is driven by the daemon's main-thread event loop (a selectors
selector): `register_with(sel)` adds the listening socket, and `on_ready`
handles one readable socket. Handlers run on the main thread. A handler may
return a `Deferred`: the reply is sent when the deferred is completed (used by
vsctl/apply, which waits for reconfiguration). Malformed requests get an error
reply and never reach a handler; a client that disconnects is forgotten.
"""

import json
import os
import selectors
import socket
import traceback

from pyvswitch.core import vlog

log = vlog.Module("unixctl")

MAX_REQUEST = 1 << 20


class CommandError(Exception):
    """A command failed; str(e) is the message the client prints."""


class Deferred:
    """A reply that will be sent later with complete(result) or fail(msg)."""

    def __init__(self):
        self._send = None
        self._done = None

    def complete(self, result=None):
        self._finish({"result": result, "error": None})

    def fail(self, message):
        self._finish({"result": None, "error": str(message)})

    def _finish(self, reply):
        if self._send is None:
            self._done = reply
        else:
            self._send(reply)
            self._send = None

    def _bind(self, send):
        if self._done is not None:
            send(self._done)
        else:
            self._send = send


class Command:
    def __init__(self, name, usage, min_args, max_args, handler, hidden=False):
        self.name, self.usage = name, usage
        self.min_args, self.max_args = min_args, max_args
        self.handler, self.hidden = handler, hidden


class UnixctlServer:
    def __init__(self, path):
        self.path = path
        self.commands = {}
        self.sel = None
        self._bufs = {}
        self.register("list-commands", "", 0, 0, self._list_commands)

    def register(self, name, usage, min_args, max_args, handler, hidden=False):
        self.commands[name] = Command(name, usage, min_args, max_args, handler, hidden)

    def _list_commands(self, args):
        lines = ["The available commands are:"]
        for name in sorted(self.commands):
            c = self.commands[name]
            if not c.hidden:
                lines.append(f"  {name:<32}{c.usage}".rstrip())
        return "\n".join(lines) + "\n"

    def listen(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # mode 0600 from the first instant
        try:
            self.sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.sock.listen(16)
        self.sock.setblocking(False)

    def register_with(self, sel):
        self.sel = sel
        sel.register(self.sock, selectors.EVENT_READ, self._accept)

    def close(self):
        if self.sel:
            for conn in list(self._bufs):
                self._drop(conn)
            self.sel.unregister(self.sock)
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _accept(self, sock):
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self._bufs[conn] = b""
        self.sel.register(conn, selectors.EVENT_READ, self._read)

    def _drop(self, conn):
        self._bufs.pop(conn, None)
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _read(self, conn):
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        buf = self._bufs[conn] + data
        if len(buf) > MAX_REQUEST:
            self._reply(conn, None, {"result": None, "error": "request too long"})
            self._drop(conn)
            return
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            self._dispatch(conn, line)
        if conn in self._bufs:
            self._bufs[conn] = buf

    def _reply(self, conn, rid, body):
        body = dict(body, id=rid)
        try:
            conn.setblocking(True)
            conn.sendall(json.dumps(body).encode() + b"\n")
            conn.setblocking(False)
        except OSError:
            self._drop(conn)

    def _dispatch(self, conn, line):
        try:
            req = json.loads(line)
            rid, method, params = req.get("id"), req["method"], req.get("params", [])
            if not isinstance(method, str) or not isinstance(params, list):
                raise ValueError
            params = [str(p) for p in params]
        except (ValueError, KeyError, TypeError, AttributeError):
            self._reply(conn, None, {"result": None, "error": "malformed request"})
            return
        self._reply_to(conn, rid, self.execute(method, params))

    def _reply_to(self, conn, rid, outcome):
        if isinstance(outcome, Deferred):
            outcome._bind(lambda body: self._reply(conn, rid, body))
        else:
            self._reply(conn, rid, outcome)

    def execute(self, method, params):
        """Run a command; returns a reply body or a Deferred."""
        cmd = self.commands.get(method)
        if cmd is None:
            return {"result": None,
                    "error": f'"{method}" is not a valid command (use "list-commands" to see a list of valid commands)'}
        if not cmd.min_args <= len(params) <= cmd.max_args:
            return {"result": None, "error": f'"{method}" command takes at least {cmd.min_args} '
                    f'arguments and at most {cmd.max_args}'}
        try:
            result = cmd.handler(params)
        except CommandError as e:
            return {"result": None, "error": str(e)}
        except Exception as e:   # a bug in a handler must not take the daemon down
            log.err("%s: internal error: %s", method, traceback.format_exc())
            return {"result": None, "error": f"{method}: internal error ({type(e).__name__}: {e})"}
        if isinstance(result, Deferred):
            return result
        return {"result": result, "error": None}
