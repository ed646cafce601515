"""Simulated time: it moves only when a stand-in spends it or the simulation jumps to its next event."""

from __future__ import annotations


class SimClock:
    def __init__(self, start: float = 0.0):
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot go back ({seconds} s)")
        self._now += seconds

    def advance_to(self, when: float) -> None:
        self._now = max(self._now, float(when))
