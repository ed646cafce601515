"""When to re-ask a lost track's query: the schedule of automatic re-grounding, ROS-free and clock-free.

SAM2 rarely re-finds an object that left the view and came back. The node
knows when a track is lost and keeps its query and the recent frames, so after
a track has been lost for ``after_sec`` it grounds the query again on the
newest frames; if the model finds the object, the same track id goes on
(``regrounded``), otherwise it tries again after a growing wait, and after
``max_attempts`` misses it reports ``gave_up`` once and stops trying (the track
stays; SAM2 may still find it, the user may stop it). A track found again by
the tracker itself, or stopped, leaves the schedule.

Times are frame stamps in nanoseconds, never the wall clock: the schedule of a
replayed bag does not depend on how fast the machine is, and tests drive it
with a simulated clock. Attempt k (0-based) is due ``after_sec * backoff**k``
after the loss (k = 0) or after the previous miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NS = 1_000_000_000
LOG_MAX = 1000  # entries Regrounder.log keeps (the newest)


class BoundedLog(list):
    """A list that keeps only its newest ``maxlen`` entries (a node runs for days)."""

    def __init__(self, maxlen: int = LOG_MAX):
        super().__init__()
        self.maxlen = maxlen

    def append(self, item) -> None:
        super().append(item)
        if len(self) > self.maxlen:
            del self[: len(self) - self.maxlen]


@dataclass(frozen=True)
class RegroundSettings:
    after_sec: float = 0.0  # 0 disables re-grounding
    max_attempts: int = 3
    backoff: float = 2.0  # each wait is this many times the previous one
    window_sec: float = 1.0  # how far back the re-grounding looks (recent frames only: the object came back)

    def __post_init__(self):
        if not (math.isfinite(self.after_sec) and self.after_sec >= 0):
            raise ValueError(f"reground_after_sec must be a finite number >= 0, got {self.after_sec}")
        if self.max_attempts < 1:
            raise ValueError(f"reground_max_attempts must be >= 1, got {self.max_attempts}")
        if not (math.isfinite(self.backoff) and self.backoff >= 1):
            raise ValueError(f"reground_backoff must be >= 1, got {self.backoff}")
        if not (math.isfinite(self.window_sec) and self.window_sec > 0):
            raise ValueError(f"reground_window_sec must be > 0, got {self.window_sec}")

    @property
    def enabled(self) -> bool:
        return self.after_sec > 0

    def wait_ns(self, attempt: int) -> int:
        return round(self.after_sec * self.backoff ** attempt * NS)


@dataclass
class _Lost:
    since_ns: int
    attempts: int = 0  # misses so far
    due_ns: int = 0
    running: bool = False
    gave_up: bool = False


class RegroundPlan:
    """Per lost track: since when, how many misses, when the next attempt is due."""

    def __init__(self, settings: RegroundSettings | None = None):
        self.settings = settings or RegroundSettings()
        self._lost: dict[int, _Lost] = {}

    def configure(self, settings: RegroundSettings) -> None:
        """New settings apply to the next waits (a live parameter change)."""
        self.settings = settings

    # -- what the tracker reports -------------------------------------------------------------------
    def lost(self, track_id: int, stamp_ns: int) -> None:
        self._lost[track_id] = _Lost(stamp_ns, due_ns=stamp_ns + self.settings.wait_ns(0))

    def restart(self, now_ns: int) -> None:
        """The camera's clock started over: every wait restarts from ``now_ns`` (misses are kept)."""
        for state in self._lost.values():
            state.since_ns = now_ns
            state.due_ns = now_ns + self.settings.wait_ns(state.attempts)

    def found(self, track_id: int) -> None:
        """The tracker saw it again (or re-grounding found it): off the schedule."""
        self._lost.pop(track_id, None)

    def removed(self, track_id: int) -> None:
        self._lost.pop(track_id, None)

    # -- what the worker asks -----------------------------------------------------------------------
    def due(self, now_ns: int) -> list[int]:
        """Lost tracks whose next attempt is due at ``now_ns``, most overdue first (none while disabled)."""
        if not self.settings.enabled:
            return []
        ready = [(s.due_ns, i) for i, s in self._lost.items() if not s.running and not s.gave_up
                 and s.due_ns <= now_ns]
        return [i for _, i in sorted(ready)]

    def start(self, track_id: int) -> int:
        """An attempt begins; returns its number (1-based)."""
        state = self._lost[track_id]
        state.running = True
        return state.attempts + 1

    def missed(self, track_id: int, now_ns: int) -> bool:
        """The attempt did not find the object; True when this was the last one (report gave_up)."""
        state = self._lost.get(track_id)
        if state is None:  # found or stopped meanwhile
            return False
        state.running = False
        state.attempts += 1
        if state.attempts >= self.settings.max_attempts:
            state.gave_up = True
            return True
        state.due_ns = now_ns + self.settings.wait_ns(state.attempts)
        return False

    def abandon(self, track_id: int) -> None:
        """The attempt could not run (e.g. no frames): try again when next due, without counting a miss."""
        state = self._lost.get(track_id)
        if state is not None:
            state.running = False

    def is_lost(self, track_id: int) -> bool:
        return track_id in self._lost

    def attempts(self, track_id: int) -> int:
        state = self._lost.get(track_id)
        return state.attempts if state else 0


class Regrounder:
    """Drives re-grounding from what the worker reports; one re-grounding at a time, user requests first.

    The worker calls ``event`` for every track event it publishes and ``frame``
    after every live step (with the frame's stamp and the announced tracks);
    ``submit(track_id, query, on_done)`` queues a low-priority request that
    re-grounds ``query`` on the recent frames and, when found, re-seeds the same
    track id (the worker publishes ``regrounded``); it must call
    ``on_done(found, stamp_ns)`` once, or ``on_done(None, stamp_ns)`` when the
    attempt could not run (a user request pre-empted it, no frames) so that it
    is retried without counting a miss. ``gave_up(track_id, query)`` publishes
    the event after the last miss.
    """

    def __init__(self, plan: RegroundPlan, submit, gave_up):
        self.plan, self._submit, self._gave_up = plan, submit, gave_up
        self.running: int | None = None  # the track being re-grounded
        self.log: list[tuple[str, int, int]] = BoundedLog()  # (what, track id, stamp), the newest LOG_MAX

    def event(self, track_id: int, kind: str, stamp_ns: int) -> None:
        if kind == "lost":
            self.plan.lost(track_id, stamp_ns)
        elif kind in ("found", "regrounded"):
            self.plan.found(track_id)
        elif kind == "stopped":
            self.plan.removed(track_id)

    def frame(self, stamp_ns: int, queries: dict[int, str]) -> None:
        if self.running is not None:
            return
        for track_id in self.plan.due(stamp_ns):
            if track_id not in queries:
                self.plan.removed(track_id)
                continue
            self.running = track_id
            self.plan.start(track_id)
            self.log.append(("attempt", track_id, stamp_ns))
            self._submit(track_id, queries[track_id], lambda found, ns, t=track_id: self._done(t, found, ns))
            return

    def _done(self, track_id: int, found: bool | None, stamp_ns: int) -> None:
        if self.running == track_id:
            self.running = None
        if found is None:
            self.plan.abandon(track_id)
            self.log.append(("deferred", track_id, stamp_ns))
        elif found:
            self.plan.found(track_id)
            self.log.append(("found", track_id, stamp_ns))
        elif self.plan.missed(track_id, stamp_ns):
            self.log.append(("gave_up", track_id, stamp_ns))
            self._gave_up(track_id)
        else:
            self.log.append(("missed", track_id, stamp_ns))
