"""The scheduling loop: one unit of work per ``run_once``, live steps interleaved with background turns.

A *live step* (every tracked object on the newest frame; frames that arrived
since the last one and were not tracked are dropped and counted) runs whenever a
new frame waits and objects are tracked. While a request is served, live steps
alternate with *turns* of background work (``job.advance``), a turn lasting at
least ``TURN_SHARE`` of a live step, so cheap steps share a turn and a tracked
object waits at most one live step, a quarter of one and one background step.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable

from sa2va_i_ros.errors import ObjectFault
from sa2va_i_ros.runtime.clock import Clock, MonotonicClock
from sa2va_i_ros.runtime.device_time import DeviceTime, session_devices, synchronizer
from sa2va_i_ros.runtime.faults import LIVE_FAULTS_BEFORE_ENDING, Health, describe, device_of, release
from sa2va_i_ros.runtime.frame_buffer import Frame
from sa2va_i_ros.runtime.regrounding import Regrounder, RegroundPlan
from sa2va_i_ros.runtime.scheduling import CostModel
from sa2va_i_ros.runtime.session import SegmentReply, Session
from sa2va_i_ros.runtime.worker.intake import Intake, Record, Ticket
from sa2va_i_ros.runtime.worker.job import Job, Phase, advance
from sa2va_i_ros.runtime.worker.regrounds import gave_up, preempt, reground_settings, submit
from sa2va_i_ros.runtime.worker.tracks import NullEmitter, TrackRegistry

TURN_SHARE = 0.25  # background time between two live steps, at least, as a share of a live step
SEEDING_SHARE = 1.0  # the same while a request seeds (one model call per step; its catch-up deadline runs)
COUNTS = ("frames_in", "frames_live", "frames_dropped_stale", "frames_catch_up", "frames_thinned",
          "requests", "requests_busy", "requests_failed", "longest_step_ms", "device_sync_ms",
          "reground_attempts", "reground_deferred", "regrounded", "reground_missed", "reground_gave_up")


class WorkerLoop:
    """The worker's state and its units of work; ``PerceptionWorker`` adds the thread and the callers' API."""

    def __init__(self, session: Session, emitter=None, clock: Clock | None = None,
                 lock: threading.Condition | None = None):
        """``lock``: shared by the workers of several cameras driven by one thread (``cameras.py``)."""
        self.session = session
        self.clock = clock or MonotonicClock()
        self.costs = CostModel()
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)  # fixed keys; read a copy with ``counts_now``
        self.records: deque[Record] = deque(maxlen=100)  # appended and iterated under ``lock``
        self.health = Health()  # faults, for /diagnostics (faults.py)
        self.device = device_of(session)
        self.device_time = DeviceTime(synchronizer(*session_devices(session)), self.clock)  # steps end synchronised
        self.step_log: deque[tuple[str, float, float]] | None = None  # (kind, start, end), for the simulator
        self.lock = lock or threading.Condition()  # inbox, queue, settings changes, closed
        self.intake = Intake()
        self.regrounder = Regrounder(RegroundPlan(reground_settings(session.settings)),
                                     lambda *a: submit(self, *a),
                                     lambda track_id: gave_up(self, track_id))
        self.registry = TrackRegistry(emitter or NullEmitter(), self.regrounder.event)
        self.job: Job | None = None
        self.budget: tuple[float, float] | None = None  # (expected join s, max_catch_up_sec) of the last seeding
        self.newest: Frame | None = None
        self.closed = False
        self._inbox: list[tuple[Frame | None, bool]] = []
        self._presence_dirty = False
        self._since_live = 0  # frames that arrived since the last live step while objects were tracked
        self._turn: float | None = None  # background seconds since the last live step
        self.on_fault: Callable[[str], None] | None = None  # also told every contained fault (the node's log)
        # several cameras, one model (cameras.py): whether a queued request may start now (one grounding at a
        # time across cameras), and since when this camera's oldest unserved work waits (the stalest goes first)
        self.may_start_job: Callable[[], bool] = lambda: True
        self.work_since: float | None = None

    @property
    def tracks(self) -> dict[int, str]:
        """Announced tracks (tracked or catching up) and their queries."""
        return self.registry.live()

    @property
    def newest_header(self):
        """Header of the newest frame handed over (None before the first)."""
        newest = self.newest
        return newest.header if newest is not None else None

    # -- one unit of work ---------------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Do one unit of work; False when there was nothing to do."""
        with self.lock:
            if self.closed:
                return False
            arrived, self._inbox = self._inbox, []
            presence, self._presence_dirty = self._presence_dirty, False
        self._apply_stops()
        if presence:
            job = self.job
            self.session.set_presence(also=job.catch_up.prepared if job and job.catch_up else ())
        for frame, reset in arrived:
            self._arrived(frame, reset)
        background = self.job is not None or (bool(self.intake) and self.may_start_job())
        if self._live_ready() and not (background and self._turn_open()):
            newest = self.newest
            if self._timed("live", self._live_step):
                self.health.good_step()
            self._turn = 0.0
            self.regrounder.frame(newest.stamp_ns, self.tracks)  # may queue a re-grounding
            return True
        if background:
            t0 = self.clock.now()
            if self._timed("background", self._background_step):
                self.health.good_step()
            self._turn = (self._turn or 0.0) + self.clock.now() - t0
            return True
        return bool(arrived) or presence

    def run_until_idle(self, max_steps: int = 1_000_000) -> int:
        """Run units until none is left (synchronous use: tests, tools); returns how many ran."""
        for n in range(max_steps):
            if not self.run_once():
                return n
        raise RuntimeError(f"still busy after {max_steps} steps")

    def _has_work(self) -> bool:
        return bool(self._inbox) or (bool(self.intake) and self.may_start_job()) or self.job is not None \
            or self._presence_dirty \
            or bool(self.registry.stopping) or self._live_ready()

    def mark_work(self) -> None:
        """Work was handed over (under ``lock``): this camera waits from now, unless it already did."""
        if self.work_since is None:
            self.work_since = self.clock.now()

    def _live_ready(self) -> bool:
        newest = self.newest
        return newest is not None and bool(self.session.tracker.object_ids) \
            and newest.stamp_ns > self.session._last_step_ns

    def _turn_open(self) -> bool:
        """Whether background work goes on before the next live step.

        After a live step, background steps run until they have used a quarter of
        a live step's time (so cheap steps, such as prompted frames of a catch-up
        or one frame's preprocessing, do not each cost a live step), then the live
        step comes: a tracked object waits at most one live step, this quarter and
        one background step. While a request seeds, its catch-up deadline runs: a turn lasts a whole live
        step (``SEEDING_SHARE``), so a tracked object waits at most two live steps and one seeding step.
        """
        if self._turn is None:
            return False  # no live step yet since the background work began: the live step first
        live = self.costs.step_s(len(self.session.tracker.object_ids)) or 0.0
        job = self.job
        share = SEEDING_SHARE if job is not None and job.phase is Phase.SEEDING else TURN_SHARE
        return self._turn < share * live

    def _timed(self, kind: str, work: Callable[[], bool]) -> bool:
        t0 = self.clock.now()
        good = work()
        self.device_time.sync()  # the step's device work is done: it is charged to this step (device_time.py)
        t1 = self.clock.now()
        self.counts["longest_step_ms"] = max(self.counts["longest_step_ms"], round((t1 - t0) * 1e3))
        self.counts["device_sync_ms"] = round(self.device_time.total_s * 1e3)
        if self.step_log is not None:
            self.step_log.append((kind, t0, t1))
        return good

    def counts_now(self) -> dict[str, int]:
        """A copy of the counters (any thread)."""
        with self.lock:
            return dict(self.counts)

    def _arrived(self, frame: Frame | None, reset: bool) -> None:
        job = self.job
        if reset:  # the camera's clock restarted: outputs restart from the new stamps
            self.session.clock_reset()
            self.registry.restart_order()
            if frame is not None:  # re-grounding waits start over on the new clock
                self.regrounder.plan.restart(frame.stamp_ns)
            if job is not None and job.catch_up is not None:
                job.catch_up.frozen = True  # it ends on the frames of the old clock
        if frame is None:  # clear_frames()
            self.newest = None
            return
        if job is not None and job.catch_up is not None and not job.catch_up.frozen:
            self.counts["frames_thinned"] += job.catch_up.add(frame)
        elif job is not None and job.holds_frames:
            buffer = self.session.buffer
            self.counts["frames_thinned"] += job.hold(frame, buffer.max_frames, buffer.max_bytes)
        if self.session.tracker.object_ids:
            self._since_live += 1
        self.newest = frame

    def _live_step(self) -> bool:
        """Track every object on the newest frame; False when it failed (the fault is contained)."""
        frame, objects = self.newest, len(self.session.tracker.object_ids)
        self.counts["frames_dropped_stale"] += max(0, self._since_live - 1)
        self._since_live = 0
        t0 = self.clock.now()
        try:
            out = self.session.live_step(frame)
            self.device_time.sync()  # device time: the step is charged what it ran (device_time.py)
        except ObjectFault as fault:
            self._object_fault(fault, frame)
            return False
        except Exception as exc:  # the shared part (encoder, batched decoder): this frame is lost for all
            self._live_fault(exc, frame)
            return False
        self.health.live_faults_in_row = 0
        if out is None:
            return True
        self.costs.tracked(self.clock.now() - t0, objects)
        self.counts["frames_live"] += 1
        try:
            self.publish(out, frame)
        except Exception as exc:  # this frame's messages are lost; tracking goes on
            message = describe(f"publishing the outputs of track {', '.join(str(o.track_id) for o in out.objects)}",
                               exc, self.device)
            self.health.fault("publishing", message, [o.track_id for o in out.objects])
            self.faults_log(message)
            return False
        now = self.clock.now()
        ids = {o.track_id for o in out.objects}
        with self.lock:
            records = list(self.records)
        for rec in records:
            if rec.joined is not None and rec.first_live is None and ids & set(rec.track_ids):
                rec.first_live = now
        return True

    def _object_fault(self, fault: ObjectFault, frame: Frame) -> None:
        """One object's part of the live step failed: that object ends (STOPPED), the others go on."""
        release(self.device)
        track_id = fault.obj_id
        message = describe(f"tracking track {track_id}", fault.cause, self.device)
        self.session.skip_frame(frame)
        if track_id in self.session.tracker.object_ids:
            query = self.session.queries.get(track_id, "")
            self.session.stop(track_id)
            with self.registry.lock:
                self.registry.drop(track_id, frame.header, query)
                self.registry.observe(track_id, "stopped", frame.stamp_ns)
        self.health.fault("live", message, (track_id,))
        self.faults_log(message)

    def _live_fault(self, exc: Exception, frame: Frame) -> None:
        """The live step's shared work failed: no output on this frame; after a few in a row, every track
        ends (its output would stop anyway)."""
        release(self.device)
        self.session.skip_frame(frame)
        self.health.live_faults_in_row += 1
        ids = list(self.session.tracker.object_ids)
        message = describe(f"the live step of track {', '.join(map(str, ids))}", exc, self.device)
        if self.health.live_faults_in_row >= LIVE_FAULTS_BEFORE_ENDING:
            message += f" ({LIVE_FAULTS_BEFORE_ENDING} frames in a row: the tracks are ended)"
            with self.registry.lock:
                for track_id in ids:
                    query = self.session.queries.get(track_id, "")
                    self.session.stop(track_id)
                    self.registry.drop(track_id, frame.header, query)
                    self.registry.observe(track_id, "stopped", frame.stamp_ns)
            self.health.live_faults_in_row = 0
        self.health.fault("live", message, ids)
        self.faults_log(message)

    def faults_log(self, message: str) -> None:
        """Where a contained fault is told besides /diagnostics (the node sets its logger)."""
        if self.on_fault is not None:
            self.call(self.on_fault, message)

    def publish(self, out, frame) -> None:
        """Publish a frame's outputs; the time it takes on this thread is measured (``CostModel.published``)."""
        t0 = self.clock.now()
        self.registry.publish(out, frame)
        self.costs.published(self.clock.now() - t0)

    def _apply_stops(self) -> None:
        stopping = self.registry.stops_pending()
        if not stopping:
            return
        for i in stopping & set(self.session.tracker.object_ids):
            self.session.stop(i)
        job = self.job
        cu = job.catch_up if job is not None else None
        if cu is not None and {p.obj_id for p in cu.prepared} & stopping:
            self.session.forget(cu, only=stopping)  # the request's other objects go on
            if not cu.prepared:
                self.end_job(SegmentReply(False, "stopped with ~/stop_tracking before it joined the live stream",
                                          track_id=job.record.track_ids[0], track_ids=list(job.record.track_ids)))
        self.registry.stopped(stopping)

    def _background_step(self) -> bool:
        job = self.job
        if job is not None and preempt(self, job):
            job = None
        if job is None:
            with self.lock:
                if not self.intake:  # cancelled meanwhile: nothing ran
                    return False
                ticket = self.intake.pop()
                job = self.job = Job(ticket, ticket.record)
            job.record.started = self.clock.now()
        return advance(self, job)

    # -- answers ------------------------------------------------------------------------------------------
    def end_job(self, reply: SegmentReply) -> None:
        with self.lock:
            job, self.job = self.job, None
        if job is not None:
            self.finish(job.ticket, reply)

    def finish(self, ticket: Ticket, reply: SegmentReply) -> None:
        """Answer a ticket: ``on_reply`` unless it was answered already, then ``on_done`` (once)."""
        if ticket.done:
            return
        ticket.done = True
        reply.timing_ms.setdefault("total", (self.clock.now() - ticket.submitted) * 1e3)
        if ticket.reply is None:
            ticket.reply = reply
            self.call(ticket.on_reply, reply)
        if ticket.on_done is not None:
            self.call(ticket.on_done, reply)

    @staticmethod
    def call(callback, *args) -> None:
        try:
            callback(*args)
        except Exception:  # a caller's callback must not break the worker
            traceback.print_exc()
