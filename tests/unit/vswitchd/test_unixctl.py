"""The management socket: dispatch, errors, deferred replies, permissions."""

import json
import os
import selectors
import socket
import stat
import threading

import pytest

from pyvswitch.core.unixrpc import RpcError, RpcUnavailable, call
from pyvswitch.vswitchd.unixctl import CommandError, Deferred, UnixctlServer


@pytest.fixture
def server(tmp_path):
    srv = UnixctlServer(str(tmp_path / "t.ctl"))
    srv.listen()
    sel = selectors.DefaultSelector()
    srv.register_with(sel)
    stop = threading.Event()
    pending = []

    def later(args):
        d = Deferred()
        pending.append(d)
        return d

    def fail(args):
        raise CommandError("it failed: " + " ".join(args))

    srv.register("echo", "ARG...", 0, 3, lambda a: " ".join(a) + "\n")
    srv.register("fail", "", 0, 2, fail)
    srv.register("later", "", 0, 0, later)
    srv.register("secret", "", 0, 0, lambda a: "x", hidden=True)

    def loop():
        while not stop.is_set():
            for key, _ in sel.select(0.05):
                key.data(key.fileobj)
            while pending:
                pending.pop().complete("done")

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv
    stop.set()
    t.join()
    srv.close()


def test_echo_and_socket_mode(server):
    assert call(server.path, "echo", ["a", "b"]) == "a b\n"
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600


def test_list_commands_hides_hidden(server):
    out = call(server.path, "list-commands")
    assert "echo" in out and "list-commands" in out and "secret" not in out


def test_unknown_command(server):
    with pytest.raises(RpcError, match='"nope" is not a valid command'):
        call(server.path, "nope")


def test_argument_count(server):
    with pytest.raises(RpcError, match="at most 3"):
        call(server.path, "echo", ["1", "2", "3", "4"])


def test_command_error(server):
    with pytest.raises(RpcError, match="it failed: x"):
        call(server.path, "fail", ["x"])


def test_deferred_reply(server):
    assert call(server.path, "later") == "done"


def test_malformed_requests_do_not_disturb_server(server):
    for junk in (b"not json\n", b'{"params": []}\n', b'{"method": 5}\n', b"[1,2]\n"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(server.path)
        s.sendall(junk)
        reply = json.loads(s.makefile().readline())
        assert reply["error"] == "malformed request"
        s.close()
    assert call(server.path, "echo", ["ok"]) == "ok\n"


def test_client_disconnect_mid_request(server):
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.path)
    s.sendall(b'{"id": 1, "method": "ech')
    s.close()
    assert call(server.path, "echo", ["still"]) == "still\n"


def test_unavailable(tmp_path):
    with pytest.raises(RpcUnavailable):
        call(str(tmp_path / "none.ctl"), "echo")


def test_handler_bug_is_an_error_reply_not_a_crash(server):
    server.register("buggy", "", 0, 0, lambda a: {}["missing"])
    with pytest.raises(RpcError, match="buggy: internal error .KeyError"):
        call(server.path, "buggy")
    assert call(server.path, "echo", ["alive"]) == "alive\n"
