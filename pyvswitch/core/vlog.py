"""Logging with runtime levels per module, the Open vSwitch way.

    log = vlog.Module("dpif")            # once, at import
    log.info("port %s added", name)      # emer / err / warn / info / dbg

Each line reads `2026-11-21T08:00:00.123Z|00001|dpif|INFO|port p1 added`
(UTC time, a process-wide sequence number, module, level, message). Each
module has one level per destination (console = stderr, file = the log file
opened by `set_file`); a message goes to every destination whose level admits
it. `set_levels("dpif:file:dbg")` / `list_levels()` back the `vlog/set` and
`vlog/list` appctl commands (same syntax: words separated by ':' or spaces, a
module name or "ANY", a destination or "ANY", a level; omitted parts mean ANY).

The time comes from a Clock (tests pass a ManualClock). Thread-safe: a lock
around the sequence number and the writes. PMD threads must not log per packet.
"""

import sys
import threading
import time

from pyvswitch.core.clock import SYSTEM

LEVELS = ("off", "emer", "err", "warn", "info", "dbg")
DESTINATIONS = ("console", "file")
DEFAULT = {"console": "warn", "file": "info"}

_lock = threading.Lock()
_modules = {}
_state = {"seq": 0, "file": None, "path": None, "clock": SYSTEM, "console": None}


class Module:
    def __new__(cls, name):
        with _lock:
            mod = _modules.get(name)
            if mod is None:
                mod = super().__new__(cls)
                mod.name = name
                mod.levels = dict(DEFAULT)
                _modules[name] = mod
            return mod

    def enabled(self, level):
        n = LEVELS.index(level)
        return any(LEVELS.index(lv) >= n for lv in self.levels.values())

    def log(self, level, msg, *args):
        n = LEVELS.index(level)
        dests = [d for d, lv in self.levels.items() if LEVELS.index(lv) >= n]
        if not dests:
            return
        text = msg % args if args else msg
        with _lock:
            _state["seq"] += 1
            line = format_line(_state["clock"].wall(), _state["seq"], self.name, level, text)
            for d in dests:
                out = _state["file"] if d == "file" else (_state["console"] or sys.stderr)
                if out is not None:
                    out.write(line + "\n")
                    out.flush()

    def emer(self, msg, *a): self.log("emer", msg, *a)
    def err(self, msg, *a): self.log("err", msg, *a)
    def warn(self, msg, *a): self.log("warn", msg, *a)
    def info(self, msg, *a): self.log("info", msg, *a)
    def dbg(self, msg, *a): self.log("dbg", msg, *a)


def format_line(wall, seq, module, level, text):
    ms = int(wall * 1000) % 1000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall))
    return f"{stamp}.{ms:03d}Z|{seq:05d}|{module}|{level.upper()}|{text}"


def set_clock(clock):
    _state["clock"] = clock


def set_console(stream):
    """Where 'console' goes (default sys.stderr; tests pass a StringIO)."""
    _state["console"] = stream


def set_file(path):
    """Open (or reopen, for log rotation) the 'file' destination; None closes."""
    with _lock:
        if _state["file"] is not None:
            _state["file"].close()
        _state["file"] = open(path, "a") if path else None
        _state["path"] = path


def set_levels(spec):
    """Apply a vlog/set spec like 'dpif:file:dbg' or 'ANY:console:off'.
    Returns '' on success or an error message."""
    words = [w for w in spec.replace(":", " ").split() if w]
    module, dest, level = "ANY", "ANY", None
    for w in words:
        lw = w.lower()
        if lw in LEVELS:
            level = lw
        elif lw in DESTINATIONS or lw == "syslog":
            dest = lw
        elif w == "ANY" or lw == "any":
            continue
        elif w in _modules:
            module = w
        else:
            return f"unknown module, destination or level \"{w}\""
    if level is None:
        return "no level given"
    mods = list(_modules.values()) if module == "ANY" else [_modules[module]]
    dests = DESTINATIONS if dest == "ANY" else ((dest,) if dest != "syslog" else ())
    for m in mods:
        for d in dests:
            m.levels[d] = level
    return ""


def list_levels():
    """The vlog/list table."""
    lines = ["                 console    syslog    file",
             "                 -------    ------    ------"]
    for name in sorted(_modules):
        lv = _modules[name].levels
        lines.append(f"{name:<19}{lv['console'].upper():<10}{'OFF':<10}{lv['file'].upper()}")
    return "\n".join(lines) + "\n"
