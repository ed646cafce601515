"""The simulation with several cameras: one stand-in model, a camera worker each, one thread between them.

As ``Simulation`` (``driver.py``), with ``CameraWorkers`` in place of one
``PerceptionWorker``: each camera sends frames at its own rate (and may stall),
the cameras' sessions share one stand-in engine and one asynchronous device,
each has its own stand-in tracker (its objects), and outputs, events and
requests are recorded per camera.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentRequest, Settings
from sa2va_i_ros.runtime.worker.cameras import CameraReplies, CameraWorkers, build_sessions
from sa2va_i_ros.testing.simulation.clock import SimClock
from sa2va_i_ros.testing.simulation.device import AsyncDevice
from sa2va_i_ros.testing.simulation.driver import SIM_FRAME, Event, Output
from sa2va_i_ros.testing.simulation.profiles import Profile
from sa2va_i_ros.testing.simulation.standins import StandInEngine, StandInTracker


@dataclass(frozen=True)
class Camera:
    hz: float
    stalls: tuple[tuple[float, float], ...] = ()  # (start, end): the camera sends nothing
    start: float = 0.0  # its first frame (cameras are not in phase)


@dataclass
class CameraRequest:
    query: str
    camera: str
    at: float
    tickets: dict = field(default_factory=dict)
    replies: list[tuple[float, CameraReplies]] = field(default_factory=list)
    done: list[tuple[float, CameraReplies]] = field(default_factory=list)


class _CameraEmitter:
    def __init__(self, sim: CameraSimulation, camera: str):
        self.sim, self.camera = sim, camera

    def output(self, out, frame) -> None:
        self.sim.clock.advance(self.sim.profile.publish_s)
        self.sim.outputs[self.camera].append(Output(self.sim.clock.now(), frame.stamp_ns,
                                                    tuple(o.track_id for o in out.objects)))

    def event(self, header, track_id: int, query: str, kind: str, score: float) -> None:
        stamp = header["stamp_ns"] if isinstance(header, dict) else None
        self.sim.events[self.camera].append(Event(self.sim.clock.now(), stamp, track_id, kind, query))


class CameraSimulation:
    def __init__(self, profile: Profile, cameras: dict[str, Camera], settings: Settings | None = None,
                 asynchronous: bool = True, answer: str = "Sure, [SEG].", buffer_frames: int = 300):
        self.clock = SimClock()
        self.profile, self.cameras = profile, cameras
        settings = settings or Settings(prefill_chunk_tokens=128, vision_frames_per_step=1)
        self.device = AsyncDevice(self.clock, asynchronous)
        self.engine = StandInEngine(self.clock, profile, answer=answer, device=self.device)
        self.sessions = build_sessions(self.engine, list(cameras),
                                       lambda: FrameBuffer(max_frames=buffer_frames, max_seconds=30.0),
                                       settings, tracker=lambda: StandInTracker(self.clock, profile,
                                                                                device=self.device))
        self.outputs: dict[str, list[Output]] = {c: [] for c in cameras}
        self.events: dict[str, list[Event]] = {c: [] for c in cameras}
        self.workers = CameraWorkers(self.sessions, {c: _CameraEmitter(self, c) for c in cameras}, self.clock,
                                     threaded=False)
        for worker in self.workers.workers.values():
            worker.step_log = deque(maxlen=200_000)
        self.requests: list[CameraRequest] = []
        self.frames_sent: dict[str, int] = dict.fromkeys(cameras, 0)
        self._next = {c: spec.start for c, spec in cameras.items()}
        self._agenda: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._rgb = np.zeros((*SIM_FRAME, 3), np.uint8)
        self.clock.on_advance = self._frames

    # -- scripting ----------------------------------------------------------------------------------------
    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._agenda, (when, next(self._order), action))

    def request(self, when: float, query: str, camera: str = "", **kw) -> CameraRequest:
        req = CameraRequest(query, camera, when)
        self.requests.append(req)

        def submit() -> None:
            req.tickets = self.workers.submit(camera, SegmentRequest(query, **kw),
                                              on_reply=lambda r: req.replies.append((self.clock.now(), r)),
                                              on_done=lambda r: req.done.append((self.clock.now(), r)))
        self.at(when, submit)
        return req

    def stop(self, when: float, track_id: int = 0, camera: str = "") -> None:
        self.at(when, lambda: self.workers.stop(track_id, camera))

    # -- running ------------------------------------------------------------------------------------------
    def _frames(self) -> None:
        now = self.clock.now()
        for camera, spec in self.cameras.items():
            period = 1.0 / spec.hz
            while self._next[camera] <= now:
                t = self._next[camera]
                self._next[camera] = round(t + period, 9)
                if any(a <= t < b for a, b in spec.stalls):
                    continue
                stamp = round(t * 1e9)
                self.workers[camera].offer_frame({"stamp_ns": stamp}, stamp, self._rgb)
                self.frames_sent[camera] += 1

    def _deliver(self) -> None:
        self._frames()
        now = self.clock.now()
        while self._agenda and self._agenda[0][0] <= now:
            heapq.heappop(self._agenda)[2]()

    def run(self, until: float) -> CameraSimulation:
        while self.clock.now() < until:
            self._deliver()
            if not self.workers.run_once():
                upcoming = list(self._next.values()) + ([self._agenda[0][0]] if self._agenda else [])
                self.clock.advance_to(min(min(upcoming), until))
        self._deliver()
        return self

    # -- measurements -------------------------------------------------------------------------------------
    def rate(self, camera: str, start: float, end: float) -> float:
        """Outputs per second of ``camera`` published in [start, end)."""
        return sum(start <= o.time < end for o in self.outputs[camera]) / (end - start)

    def max_gap(self, camera: str, start: float, end: float) -> float:
        times = [o.time for o in self.outputs[camera] if start <= o.time < end]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def longest_step(self, kind: str | None = None) -> float:
        return max((b - a for w in self.workers.workers.values() for k, a, b in w.step_log
                    if kind is None or k == kind), default=0.0)
