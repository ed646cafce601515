"""Which camera frames may become the buffer's reference when stamps or sizes jump.

A single stray frame (stamped far in the past or the future, or of another
size) must neither clear the buffer nor become its newest frame, or it poisons
what follows (real frames would then look late and be dropped). A real change
(a bag played in a loop, a restarted camera, a new resolution, a camera that
resumes after a stall) shows as several frames that agree with each other and
not with the buffer. So a frame that does not fit the stream is held back, and
only ``confirm`` consecutive frames that fit each other make the change: they
then enter the buffer in order (after clearing it when they are older than its
frames). Frames of the stream arriving meanwhile discard the held ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONFIRM_FRAMES = 3
BACK_NS = 1_000_000_000  # further back than this is not a late frame but another clock
FORWARD_MIN_NS = 250_000_000  # a jump ahead is suspect beyond max(this, FORWARD_PERIODS frame periods)
FORWARD_PERIODS = 5


@dataclass
class Held:
    header: Any
    stamp_ns: int
    rgb: np.ndarray
    size: tuple[int, int]


@dataclass
class Verdict:
    """``pass``: push as usual; ``held``: not pushed (``reason``); ``change``: push ``frames``
    (after clearing the buffer if ``clear``)."""

    kind: str
    reason: str = ""
    frames: list[Held] = field(default_factory=list)
    clear: bool = False


class StampGate:
    def __init__(self, confirm: int = CONFIRM_FRAMES, back_ns: int = BACK_NS, forward_min_ns: int = FORWARD_MIN_NS,
                 forward_periods: float = FORWARD_PERIODS):
        self.confirm, self.back_ns = confirm, back_ns
        self.forward_min_ns, self.forward_periods = forward_min_ns, forward_periods
        self.period_ns: float | None = None  # running estimate of the stream's stamp period
        self._held: list[Held] = []

    def forward_limit(self) -> float:
        return max(self.forward_min_ns, self.forward_periods * (self.period_ns or 0.0))

    def _fits(self, prev_stamp: int, prev_size, stamp: int, size) -> bool:
        jump = stamp - prev_stamp
        return size == prev_size and -self.back_ns <= jump <= self.forward_limit()

    def check(self, header, stamp_ns: int, rgb: np.ndarray, newest) -> Verdict:
        """Judge one frame against ``newest`` (the buffer's newest ``Frame`` or None)."""
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        if newest is None or self._fits(newest.stamp_ns, newest.size, stamp_ns, size):
            self._held.clear()
            if newest is not None and stamp_ns > newest.stamp_ns:
                step = stamp_ns - newest.stamp_ns
                self.period_ns = step if self.period_ns is None else 0.8 * self.period_ns + 0.2 * step
            return Verdict("pass")
        frame = Held(header, stamp_ns, np.array(rgb), size)  # a copy: the message buffer is reused
        last = self._held[-1] if self._held else None
        if last is not None and last.stamp_ns < stamp_ns and self._fits(last.stamp_ns, last.size, stamp_ns, size):
            self._held.append(frame)
        else:
            self._held = [frame]
        if len(self._held) >= self.confirm:
            frames, self._held = self._held, []
            return Verdict("change", frames=frames, clear=frames[0].stamp_ns <= newest.stamp_ns)
        jump_s = (stamp_ns - newest.stamp_ns) / 1e9
        what = (f"of size {size[1]}x{size[0]} (the stream is {newest.size[1]}x{newest.size[0]})"
                if size != newest.size else f"stamped {jump_s:+.3f} s from the newest frame")
        return Verdict("held", f"frame {what}: held until {self.confirm} consistent frames confirm the change "
                               f"({len(self._held)} so far)")

    def clear(self) -> None:
        self._held.clear()
