"""Time as an input (STYLE rule 7): code asks a Clock, tests advance one.

    Clock.now()      monotonic seconds (float)
    Clock.now_ns()   monotonic nanoseconds (int)
    Clock.wall()     wall-clock seconds since the epoch (for log lines)

ManualClock starts at a fixed time and moves only when `advance(seconds)` is
called. Both are safe to read from any thread.
"""

import threading
import time


class Clock:
    def now(self):
        return time.monotonic()

    def now_ns(self):
        return time.monotonic_ns()

    def wall(self):
        return time.time()


class ManualClock(Clock):
    def __init__(self, start=1000.0, wall_start=1_795_248_000.0):
        self._ns = int(start * 1e9)
        self._wall0 = wall_start
        self._start_ns = self._ns
        self._lock = threading.Lock()

    def now(self):
        return self._ns / 1e9

    def now_ns(self):
        return self._ns

    def wall(self):
        return self._wall0 + (self._ns - self._start_ns) / 1e9

    def advance(self, seconds):
        with self._lock:
            self._ns += int(seconds * 1e9)


SYSTEM = Clock()
