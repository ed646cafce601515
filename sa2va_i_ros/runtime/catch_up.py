"""A new object's way from its first prompted frame to the live stream, one frame per step.

The frames ahead of it are the grounding window from its first prompted frame,
then every frame that arrived since the window was taken (held here, so that
buffer eviction never loses one). Each ``step`` processes one frame, chosen by
``scheduling.next_catch_up_frame``: prompted frames, the newest window frame
(the reply's frame) and the newest frame are never skipped; the rest may be
thinned to meet the deadline; the joining objects (one per [SEG] of the answer)
process it together, with one image encoder pass. The catch-up is ``done`` when the object has
processed the newest frame there is: it then joins the tracked objects.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from sa2va_i_ros.runtime.frame_buffer import Frame
from sa2va_i_ros.runtime.scheduling import next_catch_up_frame
from sa2va_i_ros.tracking import FrameResult


@dataclass
class Ahead:
    frame: Frame
    window_index: int | None  # None: a frame that arrived after the window
    prompt: bool = False


@dataclass
class Step:
    """What one catch-up step did."""

    result: FrameResult  # every joining object on the processed frame
    frame: Frame
    skipped: int  # frames thinned out before it
    window_end: bool  # the processed frame is the newest window frame (the reply's frame)
    tracked: bool  # a tracked frame (False: a prompt frame, which outputs its mask)
    seconds: float = 0.0


def resized(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` at (h, w) ``size`` (tracks keep the size they were grounded on)."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size[1], size[0]), Image.BILINEAR))


@dataclass
class CatchUp:
    prepared: list  # PreparedObject per joining object (they step together on the same frames)
    window: tuple[Frame, ...]
    deadline: float
    max_held: int  # frames held beyond the window at most (older ones are thinned when exceeded)
    ahead: deque = field(default_factory=deque)
    reached_window_end: bool = False
    skipped: int = 0
    tracked: int = 0
    last_stamp_ns: int = -1
    frozen: bool = False  # the camera's clock restarted: no frame of the new clock joins this catch-up

    def __post_init__(self) -> None:
        g = self.prepared[0].grounding
        for t in range(g.first_prompt, len(self.window)):
            self.ahead.append(Ahead(self.window[t], t, t in g.prompts))
        self.window_end_ns = self.window[-1].stamp_ns
        self.size = g.frame_size

    def add(self, frame: Frame) -> int:
        """A frame that arrived; returns how many held frames were dropped to stay within ``max_held``."""
        if frame.stamp_ns <= max(self.last_stamp_ns, self.window_end_ns) or \
                (self.ahead and frame.stamp_ns <= self.ahead[-1].frame.stamp_ns):
            return 0
        self.ahead.append(Ahead(frame, None))
        later = [a for a in self.ahead if a.window_index is None]
        if len(later) <= self.max_held:
            return 0
        drop = {id(a) for a in later[:-1:2]}  # every second one, never the newest: still evenly spread
        self.ahead = deque(a for a in self.ahead if id(a) not in drop)
        self.skipped += len(drop)
        return len(drop)

    @property
    def done(self) -> bool:
        return self.reached_window_end and not self.ahead

    def mandatory(self) -> list[bool]:
        last = len(self.ahead) - 1
        return [a.prompt or a.window_index == len(self.window) - 1 or k == last for k, a in enumerate(self.ahead)]

    def step(self, tracker, affordable: float) -> Step:
        """Process the next frame by the thinning rule for ``affordable`` tracked frames."""
        k = next_catch_up_frame([a.prompt for a in self.ahead], self.mandatory(), affordable)
        for _ in range(k):
            self.ahead.popleft()
        item = self.ahead.popleft()
        self.skipped += k
        where = {"window_index": item.window_index} if item.window_index is not None else \
            {"frame": resized(item.frame.rgb, self.size), "stamp": item.frame.header}
        results = tracker.advance_objects(self.prepared, **where)  # one encoder pass for all of them
        for p in self.prepared:  # the tracker keeps each output (offline use); here they went out already
            del p.frames[:-1]
        merged = FrameResult(results[0].stamp, {i: o for r in results for i, o in r.objects.items()},
                             tuple(e for r in results for e in r.events))
        window_end = item.window_index == len(self.window) - 1
        self.reached_window_end |= window_end
        self.last_stamp_ns = item.frame.stamp_ns
        self.tracked += not item.prompt
        return Step(merged, item.frame, k, window_end, not item.prompt)
