"""Management RPC over a unix socket: newline-delimited JSON.

Request:  {"id": 1, "method": "fdb/show", "params": ["br0"]}
Response: {"id": 1, "result": <json>, "error": null}
      or  {"id": 1, "result": null, "error": "message"}

The daemon serves it on <rundir>/pvs-vswitchd.ctl (mode 0600); pvs-appctl,
pvs-ofctl and pvs-vsctl are clients. Any thread may use `call`.
"""

import json
import socket


class RpcError(Exception):
    """The server answered with an error (str(e) is its message)."""


class RpcUnavailable(RpcError):
    """No server is listening at the path."""


def call(path, method, params=(), timeout=30.0):
    """One request, one response. Raises RpcUnavailable or RpcError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise RpcUnavailable(f"{path}: cannot connect to daemon ({e.strerror})") from None
        s.sendall(json.dumps({"id": 1, "method": method, "params": list(params)}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise RpcError(f"{path}: connection closed by daemon")
            buf += chunk
    except socket.timeout:
        raise RpcError(f"{path}: timed out waiting for the daemon") from None
    finally:
        s.close()
    reply = json.loads(buf)
    if reply.get("error") is not None:
        raise RpcError(reply["error"])
    return reply.get("result")
