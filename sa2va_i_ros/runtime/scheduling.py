"""Scheduling rules of the perception worker, as plain functions of measured costs.

* ``CostModel`` keeps running estimates of what the worker measures, shaped
  like the tracker: a live step costs one encoder pass plus a part per object
  (``StepFit``, least squares over recent steps), a catch-up frame the same
  shape fitted apart, seeding a time per prompted frame; and the camera's
  frame period. ``expected_join_s``: the least time a catch-up can take.
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
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field


class StepFit:
    """Seconds of a step as ``base + per_object * n``, fitted by least squares over the last ``window`` steps.

    A live step runs SAM2's image encoder once for every tracked object (the
    ``base``) and memory attention, decoder and memory encoder per object. With
    one object count seen so far the two parts cannot be told apart: the
    prediction is then the mean for fewer objects and proportional for more
    (an upper bound either way, since both parts are non-negative).
    """

    def __init__(self, window: int = 32):
        self.samples: deque[tuple[int, float]] = deque(maxlen=window)

    def add(self, objects: int, seconds: float) -> None:
        if objects > 0 and seconds >= 0:
            self.samples.append((objects, seconds))

    def parts(self) -> tuple[float, float] | None:
        """(base, per_object) seconds fitted; None until two different object counts were measured."""
        if not self.samples:
            return None
        n = [float(k) for k, _ in self.samples]
        s = [v for _, v in self.samples]
        mean_n, mean_s = sum(n) / len(n), sum(s) / len(s)
        var = sum((x - mean_n) ** 2 for x in n)
        if var == 0:
            return None
        slope = sum((x - mean_n) * (y - mean_s) for x, y in zip(n, s, strict=True)) / var
        base = mean_s - slope * mean_n
        if slope < 0:  # noise: no per-object part measurable
            return mean_s, 0.0
        if base < 0:  # through the origin
            return 0.0, sum(x * y for x, y in zip(n, s, strict=True)) / sum(x * x for x in n)
        return base, slope

    def predict(self, objects: int) -> float | None:
        if not self.samples:
            return None
        fitted = self.parts()
        if fitted is not None:
            return fitted[0] + fitted[1] * objects
        n0 = self.samples[-1][0]
        mean = sum(v for _, v in self.samples) / len(self.samples)
        return mean if objects <= n0 else mean * objects / n0


@dataclass
class CostModel:
    """Running estimates of what the worker measures (device time: see ``device_time.py``); ``None`` until
    measured.

    * live steps: one encoder pass for all tracked objects plus a per-object part (``StepFit``);
    * catch-up steps: the joining objects process a frame together (one encoder pass, a part per object),
      fitted apart (their frames are not the live ones); before the first one, ``objects`` times a live step
      of one object (an upper bound);
    * seeding: seconds per prompted frame, publishing: seconds per frame (exponential moving averages);
    * the camera's frame period (an exponential moving average of the arrival gaps).
    """

    alpha: float = 0.3
    frame_period_s: float | None = None  # camera inter-arrival time
    seed_prompt_s: float | None = None  # one prompted frame of one object seeded
    publish_s: float = 0.0  # building and publishing one frame's messages on the worker's thread
    live_fit: StepFit = field(default_factory=StepFit)
    catch_up_fit: StepFit = field(default_factory=StepFit)
    _last_arrival: float | None = None

    def tracked(self, seconds: float, objects: int) -> None:
        """A live step that tracked ``objects`` objects on one frame took ``seconds``."""
        self.live_fit.add(objects, seconds)

    def caught_up(self, seconds: float, objects: int) -> None:
        """A catch-up step that tracked ``objects`` joining objects on one frame took ``seconds``."""
        self.catch_up_fit.add(objects, seconds)

    def seeded(self, seconds: float, prompts: int = 1) -> None:
        if prompts > 0 and seconds >= 0:
            value = seconds / prompts
            self.seed_prompt_s = value if self.seed_prompt_s is None else \
                (1 - self.alpha) * self.seed_prompt_s + self.alpha * value

    def published(self, seconds: float) -> None:
        if seconds >= 0:
            self.publish_s = (1 - self.alpha) * self.publish_s + self.alpha * seconds if self.publish_s else seconds

    def arrived(self, now: float) -> None:
        """A camera frame arrived at ``now`` (worker clock)."""
        if self._last_arrival is not None and now > self._last_arrival:
            gap = now - self._last_arrival
            self.frame_period_s = gap if self.frame_period_s is None else \
                (1 - self.alpha) * self.frame_period_s + self.alpha * gap
        self._last_arrival = now

    def step_s(self, objects: int) -> float | None:
        """Estimated seconds of one live step for ``objects`` tracked objects (0 objects: no step)."""
        if objects <= 0:
            return 0.0 if self.live_fit.samples or self.catch_up_fit.samples else None
        if not self.live_fit.samples:  # only catch-up frames so far: one encoder pass each (an upper bound)
            return self.catch_up_fit.predict(objects)
        return self.live_fit.predict(objects)

    def catch_up_s(self, objects: int) -> float | None:
        """Estimated seconds of one tracked catch-up frame for ``objects`` joining objects."""
        if self.catch_up_fit.samples:
            return self.catch_up_fit.predict(objects)
        one = self.live_fit.predict(1)
        return None if one is None else one * objects


def expected_join_s(costs: CostModel, objects: int, tracked: int, prompts: int, tracked_frames: int) -> float | None:
    """The least time a catch-up of ``objects`` new objects can still take until their first live output, by
    the measured costs: seeding ``prompts`` more prompted frames (all objects together) with a live step of
    the ``tracked`` objects after each live step's worth of seeding, a live step for the prompted frames'
    turn, the ``tracked_frames`` frames it may not skip (the reply's frame, the newest one) with a live step
    between two, and the first live step with the new objects. None before anything was measured."""
    own, live, joined = costs.catch_up_s(objects), costs.step_s(tracked), costs.step_s(tracked + objects)
    if own is None or live is None or joined is None:
        return None
    seeding = (costs.seed_prompt_s or 0.0) * prompts
    if tracked:
        live += costs.publish_s
        lives = (math.ceil(seeding / live) if live > 0 else 0) + 1 + max(0, tracked_frames - 1)
    else:
        lives = 0
    return seeding + lives * live + tracked_frames * own + joined + costs.publish_s


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
