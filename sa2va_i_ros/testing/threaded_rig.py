"""The real threaded ``PerceptionWorker`` on stand-in models with fault injection: fault, stress and bench rigs.

The worker runs on its own thread exactly as in the node; the engine and the
tracker are the simulation's stand-ins (``testing/simulation``: they cost
simulated time on a ``SimClock`` and compute nothing) wrapped in the
fault-injection double (``testing/faults.py``), whose ``delay_s`` makes every
model call also take real time so that frames, requests and stops from other
threads arrive in the middle of steps. ``Recorder`` is the emitter: it keeps
what went out and checks, as it goes, that each track's output stamps increase.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from types import SimpleNamespace

import numpy as np

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentReply, SegmentRequest, Session, Settings
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.testing.faults import FaultPlan, FaultyEngine, FaultyTracker
from sa2va_i_ros.testing.simulation import DESKTOP_GPU, Profile, SimClock, StandInEngine, StandInTracker

NS = 1_000_000_000


class Header(dict):
    """A frame's header: the stand-ins read ``["stamp_ns"]``, the node's diagnostics ``.stamp.sec/nanosec``."""

    @property
    def stamp(self) -> SimpleNamespace:
        return SimpleNamespace(sec=self["stamp_ns"] // NS, nanosec=self["stamp_ns"] % NS)


class Recorder:
    """Everything published: outputs (stamp, track ids) and events (track id, kind); stamp order checked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outputs: list[tuple[int, tuple[int, ...]]] = []
        self.events: list[tuple[int, str, str]] = []
        self.last_ns: dict[int, int] = defaultdict(lambda: -1)
        self.disorder: list[str] = []

    def output(self, out, frame) -> None:
        with self.lock:
            ids = tuple(o.track_id for o in out.objects)
            for i in ids:
                if frame.stamp_ns <= self.last_ns[i]:
                    self.disorder.append(f"track {i}: stamp {frame.stamp_ns} after {self.last_ns[i]}")
                self.last_ns[i] = frame.stamp_ns
            self.outputs.append((frame.stamp_ns, ids))

    def event(self, header, track_id, query, kind, score) -> None:
        with self.lock:
            self.events.append((track_id, query, kind))

    def outputs_of(self, track_id: int, after_ns: int = -1) -> int:
        with self.lock:
            return sum(1 for ns, ids in self.outputs if track_id in ids and ns > after_ns)

    def kinds(self, track_id: int) -> list[str]:
        with self.lock:
            return [k for i, _, k in self.events if i == track_id]


class Rig:
    """One threaded worker on stand-ins; ``frame()`` offers the next camera frame (``period_s`` apart)."""

    def __init__(self, settings: Settings | None = None, delay_s: float = 0.0005, profile: Profile = DESKTOP_GPU,
                 size: tuple[int, int] = (24, 32), buffer: FrameBuffer | None = None, period_s: float = 1 / 30):
        self.clock = SimClock()
        self.plan = FaultPlan(delay_s)
        self.engine = FaultyEngine(StandInEngine(self.clock, profile), self.plan)
        self.tracker = FaultyTracker(StandInTracker(self.clock, profile), self.plan)
        self.buffer = buffer if buffer is not None else FrameBuffer(max_frames=60, max_seconds=10.0)
        self.session = Session(self.engine, self.buffer,
                               settings=settings or Settings(max_tracks=4, prefill_chunk_tokens=128,
                                                             vision_frames_per_step=1),
                               tracker=self.tracker)
        self.rec = Recorder()
        self.worker = PerceptionWorker(self.session, self.rec, self.clock, threaded=True)
        self.size, self.period_ns, self.index = size, round(period_s * NS), 0
        self._rgb = np.zeros((*size, 3), np.uint8)

    def frame(self):
        self.index += 1
        ns = self.index * self.period_ns
        return self.worker.offer_frame(Header(i=self.index, stamp_ns=ns), ns, self._rgb)

    def submit(self, query: str, **kw) -> tuple:
        replies: list[SegmentReply] = []
        done: list[SegmentReply] = []
        ticket = self.worker.submit(SegmentRequest(query, **kw), on_reply=replies.append, on_done=done.append)
        return ticket, replies, done

    def pump_until(self, condition, max_frames: int = 2000, pause_s: float = 0.002) -> int:
        """Offer frames until ``condition()`` holds (AssertionError after ``max_frames``); returns how many."""
        for n in range(max_frames):
            if condition():
                return n
            self.frame()
            time.sleep(pause_s)
        raise AssertionError(f"not reached after {max_frames} frames")

    def segment(self, query: str, **kw) -> SegmentReply:
        """A request served to its end (joined, or failed); its final answer."""
        ticket, replies, done = self.submit(query, **kw)
        self.pump_until(lambda: ticket.done)
        assert len(replies) == 1 and len(done) == 1, (replies, done)
        return done[0]

    def settle(self, limit_s: float = 30.0) -> None:
        """Wait until the worker is idle (no frame pending, nothing running)."""
        end = time.monotonic() + limit_s
        while not self.worker.idle:
            if time.monotonic() > end:
                raise AssertionError("the worker did not become idle")
            time.sleep(0.001)

    def close(self) -> None:
        self.worker.close("the test ended")
