"""The event loop: a camera, requests and lifecycle events at simulated times, the worker in between.

Between two units of work the loop delivers everything due by the clock
(requests, cancels, stops, a cleanup), then runs one unit (which advances the
clock by what its model calls cost: host time at once, device time when the
worker synchronises or reads a result back, ``device.py``); when the worker is
idle the clock jumps to the next event. Camera frames reach the worker as soon
as the clock passes their capture time, also in the middle of a unit, as they
reach the real worker's inbox from the camera callback; publishing a frame's
messages costs the profile's ``publish_s`` on the worker's thread.

Everything published is recorded with its simulated time: ``outputs``
(time, stamp, track ids), ``events`` (time, stamp, track id, kind, query) and
the replies of the requests.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentReply, SegmentRequest, Session, Settings
from sa2va_i_ros.runtime.worker import PerceptionWorker, Ticket
from sa2va_i_ros.testing.simulation.clock import SimClock
from sa2va_i_ros.testing.simulation.device import AsyncDevice
from sa2va_i_ros.testing.simulation.profiles import Profile
from sa2va_i_ros.testing.simulation.standins import Scene, StandInEngine, StandInTracker, always_visible

SIM_FRAME = (6, 8)  # frames are tiny: the simulation never looks at pixels


@dataclass
class Output:
    time: float
    stamp_ns: int
    track_ids: tuple[int, ...]


@dataclass
class Event:
    time: float
    stamp_ns: int | None
    track_id: int
    kind: str
    query: str


@dataclass
class Request:
    """A request in the simulation and what happened to it."""

    query: str
    at: float
    ticket: Ticket | None = None
    replies: list[tuple[float, SegmentReply]] = field(default_factory=list)
    done: list[tuple[float, SegmentReply]] = field(default_factory=list)

    @property
    def reply(self) -> SegmentReply | None:
        return self.replies[0][1] if self.replies else None


class Simulation:
    def __init__(self, profile: Profile, camera_hz: float, settings: Settings | None = None,
                 scene: Scene = always_visible, buffer_frames: int = 300, buffer_seconds: float = 30.0,
                 stalls: tuple[tuple[float, float], ...] = (), asynchronous: bool = True,
                 frame_size: tuple[int, int] = SIM_FRAME, answer: str = "Sure, [SEG]."):
        """``stalls``: (start, end) times during which the camera sends nothing; ``asynchronous``: the model
        calls run on an asynchronous device stand-in (``device.py``), else synchronously; ``frame_size``: the
        camera's (h, w); ``answer``: the model's answer (one object per [SEG])."""
        self.clock = SimClock()
        self.profile, self.period = profile, 1.0 / camera_hz
        settings = settings or Settings(prefill_chunk_tokens=128, vision_frames_per_step=1)
        self.device = AsyncDevice(self.clock, asynchronous)
        self.engine = StandInEngine(self.clock, profile, answer=answer, device=self.device)
        self.tracker = StandInTracker(self.clock, profile, scene=scene, device=self.device)
        self.session = Session(self.engine, FrameBuffer(max_frames=buffer_frames, max_seconds=buffer_seconds),
                               settings=settings, tracker=self.tracker)
        self.worker = PerceptionWorker(self.session, self, self.clock, threaded=False)
        from collections import deque

        self.worker.step_log = deque(maxlen=200_000)
        self.stalls = stalls
        self.outputs: list[Output] = []
        self.events: list[Event] = []
        self.requests: list[Request] = []
        self.frames_sent = 0
        self.max_inbox = 0
        self._agenda: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._next_frame = 0.0
        self._rgb = np.zeros((*frame_size, 3), np.uint8)
        self.clock.on_advance = self._camera  # frames arrive while a step runs, as from the camera callback

    # -- Emitter ------------------------------------------------------------------------------------------
    def output(self, out, frame) -> None:
        self.clock.advance(self.profile.publish_s)  # messages built and published on the worker's thread
        self.outputs.append(Output(self.clock.now(), frame.stamp_ns, tuple(o.track_id for o in out.objects)))

    def event(self, header, track_id: int, query: str, kind: str, score: float) -> None:
        stamp = header["stamp_ns"] if isinstance(header, dict) else None
        self.events.append(Event(self.clock.now(), stamp, track_id, kind, query))

    # -- scripting ----------------------------------------------------------------------------------------
    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._agenda, (when, next(self._order), action))

    def request(self, when: float, query: str, **kw) -> Request:
        req = Request(query, when)
        self.requests.append(req)

        def submit() -> None:
            req.ticket = self.worker.submit(SegmentRequest(query, **kw),
                                            on_reply=lambda r: req.replies.append((self.clock.now(), r)),
                                            on_done=lambda r: req.done.append((self.clock.now(), r)))
        self.at(when, submit)
        return req

    def cancel(self, when: float, req: Request) -> None:
        self.at(when, lambda: self.worker.cancel(req.ticket))

    def stop(self, when: float, track_id: int = 0) -> None:
        self.at(when, lambda: self.worker.stop(track_id))

    def close(self, when: float, reason: str = "the node was cleaned up") -> None:
        self.at(when, lambda: self.worker.close(reason))

    # -- running ------------------------------------------------------------------------------------------
    def _stalled(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.stalls)

    def _camera(self) -> None:
        """Every frame captured by now reaches the worker (also in the middle of a step)."""
        now = self.clock.now()
        while self._next_frame <= now:
            t = self._next_frame
            self._next_frame = round((round(t / self.period) + 1) * self.period, 9)
            if self._stalled(t):
                continue
            stamp = round(t * 1e9)
            self.worker.offer_frame({"stamp_ns": stamp}, stamp, self._rgb)
            self.frames_sent += 1
        self.max_inbox = max(self.max_inbox, len(self.worker._inbox))

    def _deliver(self) -> None:
        """Frames, then requests, cancels, stops and cleanups due by now (between two units of work)."""
        self._camera()
        now = self.clock.now()
        while self._agenda and self._agenda[0][0] <= now:
            heapq.heappop(self._agenda)[2]()
        self.max_inbox = max(self.max_inbox, len(self.worker._inbox))

    def run(self, until: float) -> Simulation:
        while self.clock.now() < until:
            self._deliver()
            if not self.worker.run_once():
                upcoming = [self._next_frame] + ([self._agenda[0][0]] if self._agenda else [])
                self.clock.advance_to(min(min(upcoming), until))
        self._deliver()
        return self

    # -- measurements -------------------------------------------------------------------------------------
    def track_outputs(self, track_id: int) -> list[Output]:
        return [o for o in self.outputs if track_id in o.track_ids]

    def max_gap(self, track_id: int, start: float, end: float) -> float:
        """Largest time between two consecutive outputs of ``track_id`` that overlap [start, end]."""
        times = [o.time for o in self.track_outputs(track_id)]
        gaps = [b - a for a, b in itertools.pairwise(times) if b >= start and a <= end]
        return max(gaps, default=0.0)

    def longest_background_step(self) -> float:
        return max((b - a for kind, a, b in self.worker.step_log if kind == "background"), default=0.0)

    def first_live(self, req: Request) -> float | None:
        return req.ticket.record.first_live if req.ticket and req.ticket.record else None

    def join_live_s(self, req: Request) -> float | None:
        """From the reply to the first live output holding the new track."""
        first = self.first_live(req)
        return None if first is None or not req.replies else first - req.replies[0][0]

    def summary(self) -> dict[str, Any]:
        return {"frames_sent": self.frames_sent, "outputs": len(self.outputs), **self.worker.counts}
