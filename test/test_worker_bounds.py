"""Nothing the worker keeps grows without bound: frames held during a grounding, the re-grounding log, the
catch-up's prepared outputs; and the records deque is never iterated while another thread appends to it.

The worker runs synchronously (``run_once``) on the simulation's stand-ins so
that the test sees the state between units of work; one frame arrives per unit.
"""

from __future__ import annotations

import numpy as np

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.regrounding import LOG_MAX, Regrounder, RegroundPlan, RegroundSettings
from sa2va_i_ros.runtime.session import SegmentRequest, Session, Settings
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.runtime.worker.job import Phase, held_bytes
from sa2va_i_ros.testing.simulation import JETSON, SimClock, StandInEngine, StandInTracker

NS = 1_000_000_000
SIZE = (24, 32)
FRAME_BYTES = SIZE[0] * SIZE[1] * 3


class Worker:
    def __init__(self, buffer: FrameBuffer):
        self.clock = SimClock()
        settings = Settings(max_tracks=4, prefill_chunk_tokens=128, vision_frames_per_step=1)
        self.session = Session(StandInEngine(self.clock, JETSON), buffer, settings=settings,
                               tracker=StandInTracker(self.clock, JETSON))
        self.worker = PerceptionWorker(self.session, None, self.clock, threaded=False)
        self.index = 0

    def frame(self) -> None:
        self.index += 1
        ns = self.index * NS // 30
        self.worker.offer_frame({"stamp_ns": ns}, ns, np.zeros((*SIZE, 3), np.uint8))

    def units(self, until, watch, limit: int = 5000) -> None:
        """One frame, one unit of work, ``watch()`` between units, until ``until()``."""
        for _ in range(limit):
            if until():
                return
            self.frame()
            self.worker.run_once()
            watch()
        raise AssertionError("not reached")


def test_frames_held_during_a_grounding_stay_within_the_buffers_byte_budget():
    """A long grounding (Jetson stand-in, one frame per step) with a buffer of 5 frames' bytes: the frames
    held for the catch-up never exceed that budget (they are thinned, never the newest), and the request
    still joins on the newest frame."""
    w = Worker(FrameBuffer(max_frames=100, max_seconds=100.0, max_bytes=5 * FRAME_BYTES))
    for _ in range(5):
        w.frame()
    replies = []
    ticket = w.worker.submit(SegmentRequest("the cup"), on_reply=replies.append)
    peak, held_max, grounding_units = [0], [0], [0]

    def watch():
        job = w.worker.job
        if job is not None and job.holds_frames:
            grounding_units[0] += 1
            peak[0] = max(peak[0], held_bytes(job.held))
            held_max[0] = max(held_max[0], len(job.held))

    w.units(lambda: ticket.done, watch)
    assert grounding_units[0] > 10  # the grounding saw far more frames than the budget holds
    assert 0 < peak[0] <= 5 * FRAME_BYTES and held_max[0] <= 5
    assert replies[0].success and w.worker.counts["frames_thinned"] > 0
    w.units(lambda: w.worker.counts["frames_live"] > 0, lambda: None)
    assert w.session.track_ids == replies[0].track_ids


def test_the_job_keeps_the_newest_held_frame_within_a_frame_count():
    from sa2va_i_ros.runtime.frame_buffer import Frame
    from sa2va_i_ros.runtime.worker.job import Job

    job = Job(None, None)
    frames = [Frame(None, k, np.zeros((2, 2, 3), np.uint8), (2, 2)) for k in range(40)]
    dropped = sum(job.hold(f, 8, 10**9) for f in frames)
    assert len(job.held) <= 8 and job.held[-1] is frames[-1] and dropped == 40 - len(job.held)
    stamps = [f.stamp_ns for f in job.held]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_the_regrounding_log_keeps_only_its_newest_entries():
    """Re-grounding attempts that never run (deferred) for a long time: the log stays at LOG_MAX entries."""
    plan = RegroundPlan(RegroundSettings(after_sec=0.1))
    queued = []
    r = Regrounder(plan, lambda track_id, query, on_done: queued.append(on_done), lambda track_id: None)
    r.event(7, "lost", 0)
    for k in range(1, 3 * LOG_MAX):
        r.frame(k * NS, {7: "the cup"})
        queued.pop()(None, k * NS)  # a user request went first: deferred, tried again
    assert len(r.log) == LOG_MAX
    assert r.log[-1] == ("deferred", 7, (3 * LOG_MAX - 1) * NS)


def test_a_catch_up_keeps_no_prepared_output_behind_it():
    """The tracker appends every catch-up output to the prepared object (offline use); the worker's
    catch-up has published them already and keeps at most the newest."""
    w = Worker(FrameBuffer(max_frames=100, max_seconds=100.0))
    for _ in range(60):
        w.frame()
    ticket = w.worker.submit(SegmentRequest("the cup", num_frames=2), on_reply=lambda r: None)
    longest, steps = [0], [0]

    def watch():
        job = w.worker.job
        if job is not None and job.phase is Phase.CATCHING_UP:
            steps[0] += 1
            longest[0] = max(longest[0], *(len(p.frames) for p in job.catch_up.prepared))

    w.units(lambda: ticket.done, watch)
    assert steps[0] >= 5 and longest[0] == 1


def test_records_are_not_iterated_while_a_request_is_submitted():
    """``submit`` (a service thread) appends to the records the live step iterates: the live step reads a
    copy. Here the append happens inside that iteration (deterministically): once it raised "deque
    mutated during iteration"."""
    w = Worker(FrameBuffer(max_frames=100, max_seconds=100.0))
    for _ in range(10):
        w.frame()
    ticket = w.worker.submit(SegmentRequest("the cup"), on_reply=lambda r: None)
    w.units(lambda: ticket.done, lambda: None)

    class Submitting(list):
        def __iter__(self):
            w.worker.submit(SegmentRequest("the bowl"), on_reply=lambda r: None)  # "another thread"
            return super().__iter__()

    rec = w.worker.records[0]
    rec.track_ids, rec.first_live = Submitting(rec.track_ids), None
    w.frame()
    w.worker.run_once()  # the live step
    assert rec.first_live is not None and len(w.worker.records) == 2
