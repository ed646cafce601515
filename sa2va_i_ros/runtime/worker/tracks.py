"""Announced tracks and what goes out: stamp order, STOPPED at once, nothing of a stopped track after.

A track is announced when its request is answered (STARTED) and stays until it is
stopped, replaced or its request fails. Every output and event leaves through
``TrackRegistry`` under its lock, so a ``~/stop_tracking`` from another thread
publishes STOPPED before anything later of that track, and outputs leave with
strictly increasing stamps (after a camera clock reset they start over).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from sa2va_i_ros.runtime.frame_buffer import Frame
from sa2va_i_ros.runtime.session import FrameOutput


class Emitter(Protocol):
    """What the worker publishes (called on the worker's thread, in order)."""

    def output(self, out: FrameOutput, frame: Frame) -> None:
        """One frame's objects; stamps strictly increase (after a clock reset they start over)."""

    def event(self, header: Any, track_id: int, query: str, kind: str, score: float) -> None:
        """``kind``: started, lost, found, regrounded, gave_up or stopped."""


class NullEmitter:
    def output(self, out, frame) -> None:
        pass

    def event(self, header, track_id, query, kind, score) -> None:
        pass


class TrackRegistry:
    """Track id -> query of the announced tracks, the ones being stopped, the newest stamp out.

    ``observe(track_id, kind, stamp_ns)`` hears every event that went out (the
    re-grounding schedule). ``lock`` is re-entrant: a caller that must announce
    or drop several tracks atomically holds it around its calls.
    """

    def __init__(self, emitter, observe: Callable[[int, str, int], None]):
        self.emit = emitter
        self.observe = observe
        self.lock = threading.RLock()
        self.queries: dict[int, str] = {}  # announced (joined or catching up)
        self.stopping: set[int] = set()  # STOPPED is out; the worker has yet to remove them
        self.last_out_ns = -1

    def live(self) -> dict[int, str]:
        """Announced tracks not being stopped, and their queries."""
        with self.lock:
            return {i: q for i, q in self.queries.items() if i not in self.stopping}

    def all(self) -> dict[int, str]:
        with self.lock:
            return dict(self.queries)

    def is_live(self, track_id: int) -> bool:
        with self.lock:
            return track_id in self.queries and track_id not in self.stopping

    def stop(self, track_id: int, header: Any) -> list[int]:
        """Stop one announced track (or all with 0): STOPPED goes out now; ValueError for an unknown id."""
        with self.lock:
            live = [i for i in self.queries if i not in self.stopping]
            if track_id and track_id not in live:
                raise ValueError(f"no track {track_id}; tracking {sorted(live) or 'nothing'}")
            ids = live if track_id == 0 else [track_id]
            for i in ids:
                self.stopping.add(i)
                self.emit.event(header, i, self.queries[i], "stopped", 0.0)
            return ids

    def stops_pending(self) -> set[int]:
        with self.lock:
            return set(self.stopping)

    def stopped(self, ids: set[int]) -> None:
        """The worker removed these tracks from the tracker: they are gone."""
        with self.lock:
            for i in ids:
                self.queries.pop(i, None)
                self.observe(i, "stopped", 0)
            self.stopping -= ids

    def announce(self, track_id: int, query: str, header: Any, score: float) -> None:
        with self.lock:
            self.queries[track_id] = query
            self.emit.event(header, track_id, query, "started", score)

    def drop(self, track_id: int, header: Any, query: str) -> bool:
        """An announced track ends without a stop request (replaced, its request failed): STOPPED."""
        with self.lock:
            if self.queries.pop(track_id, None) is None:
                return False
            self.emit.event(header, track_id, query, "stopped", 0.0)
            return True

    def replaced(self, track_id: int, header: Any, query: str) -> None:
        """A track replaced by a new answer to the same query: STOPPED, and it leaves the schedule."""
        with self.lock:
            self.emit.event(header, track_id, self.queries.pop(track_id, query), "stopped", 0.0)
            self.observe(track_id, "stopped", 0)

    def event(self, header: Any, track_id: int, kind: str, score: float, stamp_ns: int, query: str = "") -> None:
        """A track's event (lost, found, regrounded, gave_up), unless it is not live; ``query`` for a track
        announced in the same breath."""
        with self.lock:
            if not query and not self.is_live(track_id):
                return
            self.emit.event(header, track_id, query or self.queries[track_id], kind, score)
            self.observe(track_id, kind, stamp_ns)

    def publish(self, out: FrameOutput, frame: Frame, events: bool = True) -> None:
        """One frame's events and live objects; the objects only if its stamp is newer than the last out."""
        with self.lock:
            if events:
                for track_id, kind, score in out.events:
                    self.event(out.header, track_id, kind, score, frame.stamp_ns)
            objects = [o for o in out.objects if self.is_live(o.track_id)]
            if not objects or frame.stamp_ns <= self.last_out_ns:
                return
            self.last_out_ns = frame.stamp_ns
            self.emit.output(FrameOutput(out.header, objects, []), frame)

    def restart_order(self) -> None:
        """The camera's clock started over: the next stamps may be lower."""
        with self.lock:
            self.last_out_ns = -1
