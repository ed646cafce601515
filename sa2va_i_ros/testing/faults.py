"""A fault-injection double: an engine and a tracker that raise at the k-th call of a phase.

``FaultPlan.arm(phase, k, error)`` makes the k-th call of ``phase`` from now
raise ``error`` (once). Phases, as the worker meets them:

* ``grounding``: one step of ``engine.ground_steps`` (the generator's ``next``);
* ``seeding``: ``tracker.seed_object``, or one step of ``tracker.seed_steps``
  (one model call: a prompted frame's encoder pass or its prompt);
* ``catch_up``: ``tracker.advance_object`` or ``advance_objects`` (a new
  object's, or one answer's objects', catch-up frame);
* ``live``: ``tracker.step`` (the shared part of the live step: every object);
* ``live_object``: ``tracker.step`` failing for one object only, as the real
  tracker reports it (``ObjectFault``); ``arm(..., obj_id=i)``.

Errors are what real hardware raises: ``out_of_memory()`` (the RuntimeError
torch raises when CUDA runs out of memory) or any ValueError. ``delay_s`` makes
every wrapped call also sleep (real time), so threaded tests see the worker in
the middle of a step. Everything else is the wrapped object's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from sa2va_i_ros.errors import ObjectFault

PHASES = ("grounding", "seeding", "catch_up", "live", "live_object")


def out_of_memory() -> RuntimeError:
    return RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.60 GiB total capacity; "
                        "6.10 GiB already allocated) [injected]")


class FaultPlan:
    def __init__(self, delay_s: float = 0.0, now=None):
        """``now``: a clock whose time each raise records in ``raised_at`` (benchmarks)."""
        self.delay_s, self.now = delay_s, now
        self.calls: Counter[str] = Counter()
        self.raised: list[tuple[str, BaseException]] = []
        self.raised_at: list[float] = []
        self._armed: dict[str, tuple[int, BaseException, int | None]] = {}
        self._lock = threading.Lock()

    def arm(self, phase: str, k: int, error: BaseException, obj_id: int | None = None) -> None:
        """The k-th call (1: the next) of ``phase`` from now raises ``error``."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        with self._lock:
            self._armed[phase] = (self.calls[phase] + k, error, obj_id)

    def armed(self, phase: str) -> bool:
        with self._lock:
            return phase in self._armed

    def call(self, phase: str, wait: bool = True) -> tuple[BaseException, int | None] | None:
        """Count a call of ``phase``; the error (and object) to raise when this is the armed call."""
        if self.delay_s and wait:
            time.sleep(self.delay_s)
        with self._lock:
            self.calls[phase] += 1
            due = self._armed.get(phase)
            if due is None or self.calls[phase] < due[0]:
                return None
            del self._armed[phase]
            self.raised.append((phase, due[1]))
            if self.now is not None:
                self.raised_at.append(self.now())
            return due[1], due[2]

    def check(self, phase: str) -> None:
        hit = self.call(phase)
        if hit is not None:
            raise hit[0]


class FaultyEngine:
    """The grounding engine, with ``grounding`` faults between its steps."""

    def __init__(self, engine, plan: FaultPlan):
        self._engine, self.plan = engine, plan

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def ground_steps(self, *args, **kwargs):
        steps = self._engine.ground_steps(*args, **kwargs)
        while True:
            self.plan.check("grounding")
            try:
                yield next(steps)
            except StopIteration as done:
                return done.value


class FaultyTracker:
    """The streaming tracker (or a stand-in), with ``seeding``, ``catch_up``, ``live`` and ``live_object``
    faults; a failed call changes nothing (it raises before the wrapped one runs)."""

    def __init__(self, tracker, plan: FaultPlan):
        self._tracker, self.plan = tracker, plan

    def __getattr__(self, name):
        return getattr(self._tracker, name)

    @property
    def object_ids(self) -> list[int]:
        return self._tracker.object_ids

    def seed_object(self, grounding, *, obj_id: int):
        self.plan.check("seeding")
        return self._tracker.seed_object(grounding, obj_id=obj_id)

    def seed_steps(self, grounding, *, obj_id: int):
        steps = self._tracker.seed_steps(grounding, obj_id=obj_id)
        while True:
            self.plan.check("seeding")
            try:
                step = next(steps)
            except StopIteration as done:
                return done.value
            yield step

    def advance_object(self, prepared, **kwargs):
        self.plan.check("catch_up")
        return self._tracker.advance_object(prepared, **kwargs)

    def advance_objects(self, prepared, **kwargs):
        self.plan.check("catch_up")
        return self._tracker.advance_objects(prepared, **kwargs)

    def step(self, frame, stamp):
        self.plan.check("live")
        hit = self.plan.call("live_object", wait=False)
        if hit is not None:
            error, obj_id = hit
            raise ObjectFault(obj_id if obj_id is not None else self._tracker.object_ids[-1], error)
        return self._tracker.step(frame, stamp)
