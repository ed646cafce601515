"""Lost/found hysteresis, so one noisy frame does not flip an object in and out."""

from __future__ import annotations

from typing import Any

from sa2va_i_ros.tracking.results import TrackEvent


class PresenceMonitor:
    """Turns per-frame presence scores into a ``visible`` state and events.

    ``visible`` starts True when the object is added (the grounding found it).
    A visible object becomes lost after ``lost_after`` consecutive frames with
    ``score < threshold``; a lost object is found again after ``found_after``
    consecutive frames with ``score >= threshold``. ``visible`` changes only on
    those two transitions, and each emits exactly one event on its frame.
    """

    def __init__(self, obj_id: int, threshold: float, lost_after: int, found_after: int) -> None:
        self.obj_id = obj_id
        self.threshold = float(threshold)
        self.lost_after = int(lost_after)
        self.found_after = int(found_after)
        self.visible = True
        self._run = 0  # consecutive frames that argue against the current state

    def configure(self, threshold: float, lost_after: int, found_after: int) -> None:
        """New hysteresis settings, effective from the next frame (the current run of frames is kept)."""
        self.threshold, self.lost_after, self.found_after = float(threshold), int(lost_after), int(found_after)

    def update(self, score: float, stamp: Any) -> TrackEvent | None:
        present = score >= self.threshold
        if present == self.visible:
            self._run = 0
            return None
        self._run += 1
        if self._run < (self.lost_after if self.visible else self.found_after):
            return None
        self.visible = present
        self._run = 0
        return TrackEvent(self.obj_id, "found" if present else "lost", stamp, float(score))
