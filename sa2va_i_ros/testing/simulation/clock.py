"""Simulated time: it moves only when a stand-in spends it or the simulation jumps to its next event.

``WallClock``: the same interface in real time, for the stand-ins under the threaded worker.
"""

from __future__ import annotations

import time


class SimClock:
    def __init__(self, start: float = 0.0):
        self._now = float(start)
        self.on_advance = None  # called after the clock moved (the simulation delivers camera frames then)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot go back ({seconds} s)")
        self._now += seconds
        self._moved()

    def advance_to(self, when: float) -> None:
        if when > self._now:
            self._now = float(when)
            self._moved()

    def _moved(self) -> None:
        if self.on_advance is not None:
            self.on_advance()


class WallClock:
    """Real time for the threaded worker: the stand-ins' host time is slept, the device's waited for."""

    on_advance = None

    def now(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot go back ({seconds} s)")
        time.sleep(seconds)

    def advance_to(self, when: float) -> None:
        wait = when - time.monotonic()
        if wait > 0:
            time.sleep(wait)
