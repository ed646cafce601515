"""/diagnostics for the segment node: rates, stamp lag, model state, per-track presence.

``diagnostic_updater`` is not available from PyPI, so the node builds the
``DiagnosticArray`` itself from these small pieces.
"""

from __future__ import annotations

import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class RateMeter:
    """Events per second over the last ``window`` seconds (monotonic clock)."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        return len(self._times) / self.window


class Percentiles:
    """p50/p95 of the last ``n`` values (a cheap sliding window)."""

    def __init__(self, n: int = 200):
        self._values: deque[float] = deque(maxlen=n)

    def add(self, value: float) -> None:
        self._values.append(value)

    def get(self, q: float) -> float:
        if not self._values:
            return float("nan")
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def status(name: str, level: int, message: str, values: dict) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id="sa2va_i_ros",
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def diagnostic_array(stamp, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=_header(stamp), status=statuses)


def _header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp)
