"""Scheduling rules of the perception worker, as plain functions of measured costs.

* ``CostModel`` keeps running estimates (exponential moving averages) of what
  the worker measures: seconds per tracked frame and object, and the camera's
  frame period.
* ``affordable_frames``: how many frames a joining object can still track
  before its catch-up deadline, given that live steps of the tracked objects
  are interleaved with its own (at most one live step per catch-up step, and
  at most one per camera frame).
* ``next_catch_up_frame``: the thinning rule. Of the frames still ahead of the
  joining object, prompted frames and the newest one are never skipped; when
  the others do not all fit, evenly spaced ones are kept, and the next one to
  process is the first kept one. The rule is applied again after every frame,
  with the measured costs and the frames that arrived meanwhile, so the
  catch-up ends on the newest frame by the deadline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class CostModel:
    """Running estimates; ``None`` until measured."""

    alpha: float = 0.3
    per_object_s: float | None = None  # one tracked frame of one object (encoder share included)
    frame_period_s: float | None = None  # camera inter-arrival time
    _last_arrival: float | None = None

    def tracked(self, seconds: float, objects: int) -> None:
        """A step that tracked ``objects`` objects on one frame took ``seconds``."""
        if objects <= 0 or seconds < 0:
            return
        value = seconds / objects
        self.per_object_s = value if self.per_object_s is None else \
            (1 - self.alpha) * self.per_object_s + self.alpha * value

    def arrived(self, now: float) -> None:
        """A camera frame arrived at ``now`` (worker clock)."""
        if self._last_arrival is not None and now > self._last_arrival:
            gap = now - self._last_arrival
            self.frame_period_s = gap if self.frame_period_s is None else \
                (1 - self.alpha) * self.frame_period_s + self.alpha * gap
        self._last_arrival = now

    def step_s(self, objects: int) -> float | None:
        """Estimated seconds of one frame for ``objects`` objects (linear in the count)."""
        return None if self.per_object_s is None else self.per_object_s * objects


def affordable_frames(remaining_s: float, own_s: float, live_s: float, period_s: float | None) -> float:
    """Frames of ``own_s`` seconds each that fit in ``remaining_s`` with live steps of ``live_s`` interleaved.

    With n own frames in time D the worker also runs min(n, D / period) live
    steps (it alternates, and a live step needs a new frame): n * own +
    live * min(n, D / period) <= D.
    """
    if remaining_s <= 0:
        return 0.0
    if own_s <= 0:
        return math.inf
    if live_s <= 0:
        return remaining_s / own_s
    alternating = remaining_s / (own_s + live_s)
    camera_bound = math.inf if not period_s else remaining_s / period_s
    if alternating <= camera_bound:
        return alternating
    return max(0.0, (remaining_s - live_s * camera_bound) / own_s)


def next_catch_up_frame(prompted: Sequence[bool], mandatory: Sequence[bool], affordable: float) -> int:
    """Index (into the frames still ahead, oldest first) of the next frame the joining object processes.

    ``prompted[i]``: frame i is a prompt (costs no tracking); ``mandatory[i]``:
    it may not be skipped (prompts, the newest window frame, the newest frame).
    ``affordable``: tracked (non-prompt) frames that fit before the deadline.
    Frames before the returned index are skipped.
    """
    n = len(prompted)
    if n == 0:
        raise ValueError("no frame ahead")
    tracked_mandatory = sum(1 for p, m in zip(prompted, mandatory, strict=True) if m and not p)
    optional = [i for i in range(n) if not mandatory[i]]
    keep = int(max(0.0, min(len(optional), affordable - tracked_mandatory)))
    first_mandatory = next(i for i in range(n) if mandatory[i]) if any(mandatory) else n
    if keep == len(optional):
        return 0
    if keep == 0:
        return first_mandatory
    first_kept = optional[len(optional) // (keep + 1)]  # evenly spaced: every (len / (keep + 1))-th
    return min(first_kept, first_mandatory)
