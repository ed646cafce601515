"""The perception worker: the one thread that calls the model and the tracker.

Callers (the ROS node's callbacks, tests, the simulator) never wait on a model
call. They hand frames over (``offer_frame``: buffer push plus the worker's
inbox), submit requests (``submit``: a bounded queue; beyond it the request is
answered "busy" at once), stop tracks (``stop``) and change settings
(``update``); the worker answers through callbacks and publishes what it
produced through an ``Emitter``. No lock is held across a model call.

One unit of work at a time, chosen by ``run_once``:

* a live step (every tracked object on the newest frame; older unprocessed
  frames are dropped and counted) whenever a new frame waits and objects are
  tracked; while background work exists, live and background steps alternate,
  so a tracked object's output gap is at most one background step plus one
  live step;
* otherwise one background step of the current request: its start (window
  snapshot), one grounding step (``GroundingEngine.ground_steps``), seeding the
  tracker, or one catch-up frame (``catch_up.py``), until the new object joins;
  then the next queued request (user requests before internal ones).

Automatic re-grounding (``regrounding.py``) is such an internal request: when
a track has been lost for ``reground_after_sec`` (frame stamps), its query is
grounded again on the last ``reground_window_sec`` of frames, one re-grounding
at a time, through the same interleaved steps. A user request that arrives
while it is still grounding pre-empts it (the attempt is retried later and
does not count as a miss). If the model finds the object (a non-empty mask on
a prompted frame, and the re-seeded object still visible once it caught up),
the re-seeded object replaces the lost one under the SAME track id
(``regrounded``); after ``reground_max_attempts`` misses, ``gave_up``.

Time comes from an injectable clock and every model call goes through the
session's engine and tracker, so a discrete-event simulation can drive
``run_once`` with stand-ins that advance a simulated clock
(``sa2va_i_ros/testing/simulation``).
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sa2va_i_ros.errors import Cancelled, Sa2VAError
from sa2va_i_ros.runtime.catch_up import CatchUp
from sa2va_i_ros.runtime.clock import Clock, MonotonicClock
from sa2va_i_ros.runtime.frame_buffer import Frame
from sa2va_i_ros.runtime.regrounding import Regrounder, RegroundPlan, RegroundSettings
from sa2va_i_ros.runtime.scheduling import CostModel, affordable_frames
from sa2va_i_ros.runtime.session import FrameIn, FrameOutput, Grounding, SegmentReply, SegmentRequest, Session

USER, INTERNAL = 0, 1  # request priorities: user requests go first
TURN_SHARE = 0.25  # background time between two live steps, at least, as a share of a live step


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


@dataclass
class Ticket:
    """A submitted request. ``on_reply`` gets the answer once the object is grounded and tracked to the
    newest window frame (or the failure); ``on_done`` once it joined the live stream (or failed)."""

    request: SegmentRequest
    on_reply: Callable[[SegmentReply], None]
    on_done: Callable[[SegmentReply], None] | None = None
    progress: Callable[[str, float, str], None] | None = None
    priority: int = USER
    id: int = 0
    submitted: float = 0.0
    cancelled: bool = False
    reply: SegmentReply | None = None
    done: bool = False
    record: Record | None = None
    reseed: int = 0  # an internal re-grounding: the lost track it re-seeds under the same id
    outcome: str = ""  # a re-grounding's end: found, missed, or "" (could not run: tried again later)


@dataclass
class Record:
    """When things happened to one request (worker clock), for the simulator and the benchmarks."""

    ticket_id: int
    submitted: float
    started: float | None = None
    seeded: float | None = None
    replied: float | None = None
    joined: float | None = None
    first_live: float | None = None  # first live output holding the new track
    track_ids: list[int] = field(default_factory=list)
    tracked: int = 0
    skipped: int = 0
    success: bool = False


@dataclass
class Job:
    ticket: Ticket
    record: Record
    grounding: Grounding | None = None
    catch_up: CatchUp | None = None
    phase: str = "start"  # start, grounding, seeding, catching_up
    held: list = field(default_factory=list)  # frames that arrived while grounding ran
    pending_events: list = field(default_factory=list)  # catch-up events before the reply (header, stamp, ...)
    announced: bool = False


class PerceptionWorker:
    def __init__(self, session: Session, emitter: Emitter | None = None, clock: Clock | None = None,
                 threaded: bool = True, name: str = "perception-worker"):
        self.session = session
        self.emit = emitter or NullEmitter()
        self.clock = clock or MonotonicClock()
        self.costs = CostModel()
        self.counts: dict[str, int] = {k: 0 for k in (
            "frames_in", "frames_live", "frames_dropped_stale", "frames_catch_up", "frames_thinned",
            "requests", "requests_busy", "requests_failed", "longest_step_ms",
            "reground_attempts", "reground_deferred", "regrounded", "reground_missed", "reground_gave_up")}
        self.records: deque[Record] = deque(maxlen=100)
        self.step_log: deque[tuple[str, float, float]] | None = None  # (kind, start, end), for the simulator
        self._lock = threading.Condition()  # inbox, queue, settings changes
        self._publish = threading.RLock()  # output order, stops, the live-track view
        self._inbox: list[tuple[Frame, bool]] = []
        self._queue: list[Ticket] = []
        self._job: Job | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self._presence_dirty = False
        self._tracks: dict[int, str] = {}  # announced tracks (joined or catching up) -> query
        self._stopping: set[int] = set()
        self._newest: Frame | None = None
        self._since_live = 0  # frames that arrived since the last live step while objects were tracked
        self._last_out_ns = -1
        self._turn: float | None = None  # background seconds since the last live step
        self.regrounder = Regrounder(RegroundPlan(reground_settings(session.settings)), self._submit_reground,
                                     self._gave_up)
        self._waiting = False  # the worker thread waits for work (set and read under _lock)
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    # -- any thread ---------------------------------------------------------------------------------------
    def offer_frame(self, header: Any, stamp_ns: int, rgb) -> FrameIn:
        """Buffer a camera frame and hand it to the worker (one producer thread; never waits on the model)."""
        fi = self.session.push_frame(header, stamp_ns, rgb)
        if fi.pushed:
            with self._lock:
                self._inbox += [(f, fi.clock_reset and k == 0) for k, f in enumerate(fi.pushed)]
                for f in fi.pushed:  # the camera's period, from its stamps
                    self.costs.arrived(f.stamp_ns / 1e9)
                self.counts["frames_in"] += len(fi.pushed)
                self._lock.notify_all()
        return fi

    def submit(self, request: SegmentRequest, on_reply: Callable[[SegmentReply], None],
               on_done: Callable[[SegmentReply], None] | None = None,
               progress: Callable[[str, float, str], None] | None = None, priority: int = USER) -> Ticket:
        """Queue a request. Bad input and a full queue are answered at once (``on_reply`` and ``on_done``)."""
        ticket = Ticket(request, on_reply, on_done, progress, priority, next(self._ids), self.clock.now())
        with self._lock:
            self.counts["requests"] += 1
            why = None
            if self._closed:
                why = "the perception worker is shut down"
            else:
                try:
                    with self._publish:
                        tracked = dict(self._tracks)
                    self.session.check_request(request, pending=self._pending_tracks(), tracks=tracked)
                except Sa2VAError as exc:
                    why = str(exc)
            # only user requests make a user wait or busy: an internal re-grounding gives way (_preempt)
            users = [t for t in self._queue if t.priority == USER]
            running = (self._job is not None and self._job.ticket.priority == USER) or bool(users)
            waiting = len(users) - (bool(users) and not running_user(self._job))  # the head runs next
            if why is None and running and waiting >= self.session.settings.max_queued_requests:
                self.counts["requests_busy"] += 1
                why = (f"busy: a grounding request is running and {waiting} wait "
                       f"(max_queued_requests={self.session.settings.max_queued_requests}); try again")
            if why is None:
                self._queue.append(ticket)
                self._queue.sort(key=lambda t: (t.priority, t.id))
                ticket.record = Record(ticket.id, ticket.submitted)
                self.records.append(ticket.record)
                if running and progress is not None:
                    progress("queued", 0.0, f"waiting for {len(self._queue) - 1 + (self._job is not None)} "
                                            "request(s) ahead")
                self._lock.notify_all()
        if why is not None:
            self._finish(ticket, SegmentReply(False, why))
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Ask to cancel a request (action cancel); it is answered "cancelled" at the next step boundary."""
        with self._lock:
            ticket.cancelled = True
            self._lock.notify_all()

    def stop(self, track_id: int = 0) -> list[int]:
        """Stop one announced track (or all with 0): STOPPED is published now, nothing of it after."""
        with self._publish:
            live = [i for i in self._tracks if i not in self._stopping]
            if track_id and track_id not in live:
                raise ValueError(f"no track {track_id}; tracking {sorted(live) or 'nothing'}")
            ids = live if track_id == 0 else [track_id]
            header = self._newest.header if self._newest is not None else None
            for i in ids:
                self._stopping.add(i)
                self.emit.event(header, i, self._tracks[i], "stopped", 0.0)
        with self._lock:
            self._lock.notify_all()
        return ids

    def clear_frames(self) -> None:
        """Forget the stream: buffered frames and the stamp order (the next frames may start over)."""
        with self._lock:
            self.session.buffer.clear()
            self.session.gate.clear()
            self._inbox.append((None, True))
            self._lock.notify_all()

    def update(self, **changes) -> None:
        """New settings; presence settings reach every tracked object before its next frame, re-grounding
        settings apply to the next wait."""
        with self._lock:
            self.session.update(**changes)
            if {"presence_threshold", "lost_after_frames", "found_after_frames"} & set(changes):
                self._presence_dirty = True
            if any(k.startswith("reground_") for k in changes):
                self.regrounder.plan.configure(reground_settings(self.session.settings))

    @property
    def tracks(self) -> dict[int, str]:
        """Announced tracks (tracked or catching up) and their queries."""
        with self._publish:
            return {i: q for i, q in self._tracks.items() if i not in self._stopping}

    def is_visible(self, track_id: int) -> bool:
        """The presence state of a track (a track still catching up counts its own frames)."""
        try:
            return self.session.tracker.is_visible(track_id)
        except (ValueError, KeyError):
            job = self._job
            prepared = job.catch_up.prepared if job is not None and job.catch_up is not None else []
            return next((p.track.presence.visible for p in prepared if p.obj_id == track_id), True)

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def newest_header(self) -> Any:
        """Header of the newest frame handed over (None before the first)."""
        newest = self._newest
        return newest.header if newest is not None else None

    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing left to do with what it was handed: every frame is out, dropped or thinned, no request runs
        or waits. (Threaded: only while the thread waits for work, so never in the middle of a step.)"""
        with self._lock:
            return (self._waiting or self._thread is None) and not self._closed and not self._has_work()

    def close(self, reason: str, timeout: float = 30.0) -> None:
        """Stop the worker: every waiting or running request is answered with ``reason``, every track gets
        STOPPED. Waits (up to ``timeout``) for the step under way to end, never for a whole request."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            tickets = ([self._job.ticket] if self._job is not None else []) + list(self._queue)
            self._queue.clear()
            self._job = None
        for t in tickets:
            self._finish(t, SegmentReply(False, reason))
        self.stop(0)

    # -- the worker thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._has_work():
                    self._waiting = True
                    self._lock.wait(0.5)
                self._waiting = False
                if self._closed:
                    return
            try:
                self.run_once()
            except Exception:  # a bug in one step must not end the thread: log it and go on
                traceback.print_exc()

    def _has_work(self) -> bool:
        return bool(self._inbox) or bool(self._queue) or self._job is not None or self._presence_dirty \
            or bool(self._stopping) or self._live_ready()

    def _live_ready(self) -> bool:
        newest = self._newest
        return newest is not None and bool(self.session.tracker.object_ids) \
            and newest.stamp_ns > self.session._last_step_ns

    def run_once(self) -> bool:
        """Do one unit of work; False when there was nothing to do."""
        with self._lock:
            if self._closed:
                return False
            arrived, self._inbox = self._inbox, []
            presence, self._presence_dirty = self._presence_dirty, False
        self._apply_stops()
        if presence:
            self.session.set_presence(also=self._job.catch_up.prepared if self._job and self._job.catch_up else ())
        for frame, reset in arrived:
            self._arrived(frame, reset)
        background = self._job is not None or bool(self._queue)
        if self._live_ready() and not (background and self._turn_open()):
            self._timed("live", self._live_step)
            self._turn = 0.0
            self.regrounder.frame(self._newest.stamp_ns, self.tracks)  # may queue a re-grounding
            return True
        if background:
            t0 = self.clock.now()
            self._timed("background", self._background_step)
            self._turn = (self._turn or 0.0) + self.clock.now() - t0
            return True
        return bool(arrived) or presence

    def _turn_open(self) -> bool:
        """Whether background work goes on before the next live step.

        After a live step, background steps run until they have used a quarter of
        a live step's time (so cheap steps, such as prompted frames of a catch-up
        or one frame's preprocessing, do not each cost a live step), then the live
        step comes: a tracked object waits at most one live step, this quarter and
        one background step.
        """
        if self._turn is None:
            return False  # no live step yet since the background work began: the live step first
        live = self.costs.step_s(len(self.session.tracker.object_ids)) or 0.0
        return self._turn < TURN_SHARE * live

    def run_until_idle(self, max_steps: int = 1_000_000) -> int:
        """Run units until none is left (synchronous use: tests, tools); returns how many ran."""
        for n in range(max_steps):
            if not self.run_once():
                return n
        raise RuntimeError(f"still busy after {max_steps} steps")

    def _timed(self, kind: str, work: Callable[[], None]) -> None:
        t0 = self.clock.now()
        work()
        t1 = self.clock.now()
        self.counts["longest_step_ms"] = max(self.counts["longest_step_ms"], round((t1 - t0) * 1e3))
        if self.step_log is not None:
            self.step_log.append((kind, t0, t1))

    def _arrived(self, frame: Frame | None, reset: bool) -> None:
        if reset:  # the camera's clock restarted: outputs restart from the new stamps
            self.session.clock_reset()
            with self._publish:
                self._last_out_ns = -1
            if frame is not None:  # re-grounding waits start over on the new clock
                self.regrounder.plan.restart(frame.stamp_ns)
            if self._job is not None and self._job.catch_up is not None:
                self._job.catch_up.frozen = True  # it ends on the frames of the old clock
        if frame is None:  # clear_frames()
            self._newest = None
            return
        job = self._job
        if job is not None and job.catch_up is not None and not job.catch_up.frozen:
            self.counts["frames_thinned"] += job.catch_up.add(frame)
        elif job is not None and job.phase in ("grounding", "seeding"):
            job.held.append(frame)
        if self.session.tracker.object_ids:
            self._since_live += 1
        self._newest = frame

    def _pending_tracks(self) -> int:
        queued = sum(1 for t in self._queue if t.request.track and not t.reseed)
        running = 1 if self._job is not None and self._job.ticket.request.track and not self._job.announced else 0
        return queued + running

    # -- live ---------------------------------------------------------------------------------------------
    def _live_step(self) -> None:
        frame, objects = self._newest, len(self.session.tracker.object_ids)
        self.counts["frames_dropped_stale"] += max(0, self._since_live - 1)
        self._since_live = 0
        t0 = self.clock.now()
        out = self.session.live_step(frame)
        self.costs.tracked(self.clock.now() - t0, objects)
        if out is None:
            return
        self.counts["frames_live"] += 1
        self._publish_output(out, frame)
        now = self.clock.now()
        ids = {o.track_id for o in out.objects}
        for rec in self.records:
            if rec.joined is not None and rec.first_live is None and ids & set(rec.track_ids):
                rec.first_live = now

    def _publish_output(self, out: FrameOutput, frame: Frame, events: bool = True) -> None:
        with self._publish:
            if events:
                for track_id, kind, score in out.events:
                    if track_id in self._tracks and track_id not in self._stopping:
                        self.emit.event(out.header, track_id, self._tracks[track_id], kind, score)
                        self.regrounder.event(track_id, kind, frame.stamp_ns)
            objects = [o for o in out.objects if o.track_id in self._tracks and o.track_id not in self._stopping]
            if not objects or frame.stamp_ns <= self._last_out_ns:
                return
            self._last_out_ns = frame.stamp_ns
            self.emit.output(FrameOutput(out.header, objects, []), frame)

    def _apply_stops(self) -> None:
        with self._publish:
            stopping = set(self._stopping)
        if not stopping:
            return
        for i in stopping & set(self.session.tracker.object_ids):
            self.session.stop(i)
        job = self._job
        cu = job.catch_up if job is not None else None
        if cu is not None and {p.obj_id for p in cu.prepared} & stopping:
            self.session.forget(cu, only=stopping)  # the request's other objects go on
            if not cu.prepared:
                self._end_job(SegmentReply(False, "stopped with ~/stop_tracking before it joined the live stream",
                                           track_id=job.record.track_ids[0], track_ids=list(job.record.track_ids)))
        with self._publish:
            for i in stopping:
                self._tracks.pop(i, None)
                self.regrounder.event(i, "stopped", 0)
            self._stopping -= stopping

    # -- background ---------------------------------------------------------------------------------------
    def _background_step(self) -> None:
        job = self._job
        if job is not None and self._preempt(job):
            job = None
        if job is None:
            with self._lock:
                ticket = self._queue.pop(0)
            job = self._job = Job(ticket, ticket.record)
            job.record.started = self.clock.now()
        ticket = job.ticket
        try:
            if ticket.cancelled:
                raise Cancelled(f"cancelled while {'queued' if job.phase == 'start' else job.phase}")
            getattr(self, f"_{job.phase}")(job)
        except Cancelled as exc:
            self._abandon(job, f"cancelled ({exc})")
        except Sa2VAError as exc:
            self._abandon(job, str(exc))

    def _start(self, job: Job) -> None:
        ticket = job.ticket
        if ticket.reseed:
            if ticket.reseed not in self.session.tracker.object_ids or ticket.reseed not in self.tracks:
                raise Cancelled(f"track {ticket.reseed} is not tracked any more")  # stopped, or not joined yet
            self.counts["reground_attempts"] += 1
        job.grounding = self.session.start_grounding(ticket.request, ticket.progress, lambda: ticket.cancelled)
        job.phase = "grounding"

    def _grounding(self, job: Job) -> None:
        g = job.grounding
        try:
            next(g.steps)
            return
        except StopIteration as done:
            g.result = done.value
        result = g.result
        if not result.has_mask:
            raise Sa2VAError(result.reason)
        if job.ticket.reseed and not self.session.found(g):
            raise Sa2VAError(f"re-grounding track {job.ticket.reseed}: the model's masks on the last "
                             f"{len(g.window)} frames are empty")
        job.phase = "seeding"

    def _seeding(self, job: Job) -> None:
        now = self.clock.now()
        settings = self.session.settings
        if job.ticket.reseed and job.ticket.reseed not in self.tracks:
            raise Cancelled(f"track {job.ticket.reseed} was stopped during its re-grounding")
        cu = self.session.seed(job.grounding, now + settings.max_catch_up_sec, self.session.buffer.max_frames,
                               obj_id=job.ticket.reseed or None)
        job.record.seeded, job.record.track_ids = now, [p.obj_id for p in cu.prepared]
        job.catch_up, job.phase = cu, "catching_up"
        if settings.gap_policy == "skip" and job.held:  # only the newest frame that came during grounding
            self.counts["frames_thinned"] += len(job.held) - 1
            cu.skipped += len(job.held) - 1
            job.held = job.held[-1:]
        for f in job.held:
            self.counts["frames_thinned"] += cu.add(f)
        job.held = []
        if job.ticket.progress is not None:
            job.ticket.progress("catching_up", 0.9, f"propagating from the first prompted frame to the newest "
                                                    f"of {len(cu.ahead)} frames within {settings.max_catch_up_sec} s")

    def _affordable(self, cu: CatchUp) -> float:
        own = self.costs.step_s(len(cu.prepared))
        if own is None:
            return float("inf")  # nothing measured yet: this frame is tracked and measured
        tracked = len(self.session.tracker.object_ids)
        live = self.costs.step_s(tracked) or 0.0
        joined_live = self.costs.step_s(tracked + len(cu.prepared)) or 0.0
        # room for the first live step with the new object, and one more live step (prompted frames' turn)
        remaining = cu.deadline - self.clock.now() - joined_live - live
        return affordable_frames(remaining, own, live, self.costs.frame_period_s)

    def _catching_up(self, job: Job) -> None:
        cu, ticket = job.catch_up, job.ticket
        t0 = self.clock.now()
        step = cu.step(self.session.tracker, self._affordable(cu))
        if step.tracked:
            self.costs.tracked(self.clock.now() - t0, len(cu.prepared))
        self.counts["frames_catch_up"] += 1
        self.counts["frames_thinned"] += step.skipped
        out = self.session.output(step.result, step.frame.size)
        if ticket.reseed:  # the lost track goes on live meanwhile: nothing of the re-seeded one goes out yet
            if cu.done:
                self._rejoin(job, out, step.frame)
            return
        if job.announced:
            self._catch_up_output(job, out, step.frame)
        else:
            job.pending_events += [(out.header, step.frame.stamp_ns, *e) for e in out.events]
        if step.window_end:
            self._reply(job, out)
            if not ticket.request.track:
                self.session.forget(cu)
                self._end_job(ticket.reply)
                return
        if cu.done and job.announced:
            self._join(job)

    def _catch_up_output(self, job: Job, out: FrameOutput, frame: Frame) -> None:
        """Events always; the frame's objects only while nothing else is tracked and it is newer than the
        window (with other objects tracked, frames before the join are already out without it)."""
        alone = not self.session.tracker.object_ids
        self._publish_output(out if alone and frame.stamp_ns > job.catch_up.window_end_ns else
                             FrameOutput(out.header, [], out.events), frame)

    def _reply(self, job: Job, out: FrameOutput) -> None:
        g, ticket, rec = job.grounding, job.ticket, job.record
        now = self.clock.now()
        rec.replied = now
        result = g.result
        by_id = {o.track_id: o for o in out.objects}
        objects = [by_id[i] for i in rec.track_ids]  # answer order
        for o in objects:
            o.query = ticket.request.query
        timing = {"queue": (rec.started - rec.submitted) * 1e3, **result.timings_ms,
                  "propagate": (now - rec.seeded) * 1e3, "total": (now - rec.submitted) * 1e3}
        track_ids = list(rec.track_ids) if ticket.request.track else []
        reply = SegmentReply(True, "", track_ids[0] if track_ids else 0, result.answer,
                             len(g.window), list(result.sampled_indices),
                             [g.window[i].header for i in result.sampled_indices], objects[0], [], timing,
                             track_ids, objects)
        if ticket.request.track:
            with self._publish:
                replaced = self.session.announce(job.catch_up, ticket.request.query)
                for old in replaced:
                    self.emit.event(out.header, old, self._tracks.pop(old, ticket.request.query), "stopped", 0.0)
                    self.regrounder.event(old, "stopped", 0)
                for p in job.catch_up.prepared:
                    self._tracks[p.obj_id] = ticket.request.query
                    self.emit.event(out.header, p.obj_id, ticket.request.query, "started", by_id[p.obj_id].score)
                job.announced = True
                for header, stamp_ns, track_id, kind, score in job.pending_events:
                    self.emit.event(header, track_id, ticket.request.query, kind, score)
                    self.regrounder.event(track_id, kind, stamp_ns)
                job.pending_events = []
            reply.replaced = replaced
            reply.message = f"replaced track {', '.join(map(str, replaced))}" if replaced else ""
        ticket.reply = reply
        rec.success = True
        self._call(ticket.on_reply, reply)
        if ticket.progress is not None and ticket.request.track:
            ticket.progress("catching_up", 0.95, f"track {', '.join(map(str, track_ids))} answered; joining the "
                                                 "live stream")

    def _join(self, job: Job) -> None:
        cu, rec = job.catch_up, job.record
        self.session.join(cu)
        rec.joined, rec.tracked, rec.skipped = self.clock.now(), cu.tracked, cu.skipped
        if job.ticket.progress is not None:
            job.ticket.progress("tracking", 1.0, f"track {', '.join(str(p.obj_id) for p in cu.prepared)} on the "
                                                 "live stream")
        self._end_job(job.ticket.reply)

    def _abandon(self, job: Job, message: str) -> None:
        """End a request that failed, was cancelled or stopped; an announced track gets STOPPED.

        A re-grounding that failed counts as a miss; one that could not run (its
        track stopped, cancelled) does not (``outcome`` stays "")."""
        if job.ticket.reseed:
            if not message.startswith("cancelled"):
                job.ticket.outcome = "missed"
            self._end_job(SegmentReply(False, message, track_id=job.ticket.reseed))
            return
        if job.catch_up is not None:
            self.session.forget(job.catch_up)
            if job.announced:
                with self._publish:
                    header = self._newest.header if self._newest is not None else None
                    for p in job.catch_up.prepared:
                        if self._tracks.pop(p.obj_id, None) is not None:
                            self.emit.event(header, p.obj_id, job.ticket.request.query, "stopped", 0.0)
        answer = job.grounding.result.answer if job.grounding is not None and job.grounding.result else ""
        self.counts["requests_failed"] += 1
        self._end_job(SegmentReply(False, message, answer=answer))

    # -- re-grounding (internal requests) -------------------------------------------------------------
    def _submit_reground(self, track_id: int, query: str, on_done: Callable[[bool | None, int], None]) -> None:
        """Queue a low-priority request that grounds ``query`` on the recent frames to re-seed ``track_id``;
        ``on_done(found, stamp_ns)`` (found None: it could not run, try again)."""
        settings = self.session.settings
        request = SegmentRequest(query, window_sec=settings.reground_window_sec)

        def done(reply: SegmentReply) -> None:
            found = {"found": True, "missed": False}.get(ticket.outcome)
            self.counts["regrounded" if found else "reground_missed" if found is False else "reground_deferred"] += 1
            newest = self._newest
            on_done(found, newest.stamp_ns if newest is not None else 0)

        ticket = Ticket(request, lambda reply: None, done, None, INTERNAL, next(self._ids), self.clock.now(),
                        reseed=track_id)
        with self._lock:
            if self._closed:
                ticket.done = True
                return
            ticket.record = Record(ticket.id, ticket.submitted)
            self._queue.append(ticket)
            self._queue.sort(key=lambda t: (t.priority, t.id))
            self._lock.notify_all()

    def _preempt(self, job: Job) -> bool:
        """A re-grounding still grounding gives way to a waiting user request (it is tried again later)."""
        if job.ticket.priority != INTERNAL or job.phase not in ("start", "grounding"):
            return False
        with self._lock:
            if not any(t.priority == USER for t in self._queue):
                return False
        self._end_job(SegmentReply(False, "a user request goes first", track_id=job.ticket.reseed))
        return True

    def _rejoin(self, job: Job, out: FrameOutput, frame: Frame) -> None:
        """The re-seeded object caught up: it replaces the lost track under the same id (``regrounded``), if
        that track is still lost and the new object is visible; else it is dropped."""
        ticket, cu, track_id = job.ticket, job.catch_up, job.ticket.reseed
        new = next((o for o in out.objects if o.track_id == track_id), None)
        with self._publish:
            tracked = track_id in self._tracks and track_id not in self._stopping \
                and track_id in self.session.tracker.object_ids
            if not tracked or self.session.tracker.is_visible(track_id):
                why = "stopped" if not tracked else "found by the tracker meanwhile"
                self._end_job(SegmentReply(False, f"track {track_id} {why}", track_id=track_id))
                return
            if new is None or not new.visible:
                ticket.outcome = "missed"
                self._end_job(SegmentReply(False, f"track {track_id}: the re-seeded object was lost again while it "
                                                  "caught up", track_id=track_id))
                return
            self.session.join(cu)
            ticket.outcome = "found"
            job.record.joined = self.clock.now()
            self.emit.event(out.header, track_id, self._tracks[track_id], "regrounded", new.score)
            self.regrounder.event(track_id, "regrounded", frame.stamp_ns)
            alone = self.session.tracker.object_ids == [track_id]
            if alone:  # its newest frame: out now when no other object's output of it is due
                self._publish_output(FrameOutput(out.header, [new], []), frame, events=False)
        self._end_job(SegmentReply(True, "regrounded", track_id=track_id))

    def _gave_up(self, track_id: int) -> None:
        with self._publish:
            query = self._tracks.get(track_id)
            if query is None or track_id in self._stopping:
                return
            self.counts["reground_gave_up"] += 1
            self.emit.event(self.newest_header, track_id, query, "gave_up", 0.0)

    def _end_job(self, reply: SegmentReply) -> None:
        job, self._job = self._job, None
        if job is not None:
            self._finish(job.ticket, reply)

    def _finish(self, ticket: Ticket, reply: SegmentReply) -> None:
        """Answer a ticket: ``on_reply`` unless it was answered already, then ``on_done`` (once)."""
        if ticket.done:
            return
        ticket.done = True
        reply.timing_ms.setdefault("total", (self.clock.now() - ticket.submitted) * 1e3)
        if ticket.reply is None:
            ticket.reply = reply
            self._call(ticket.on_reply, reply)
        if ticket.on_done is not None:
            self._call(ticket.on_done, reply)

    @staticmethod
    def _call(callback, *args) -> None:
        try:
            callback(*args)
        except Exception:  # a caller's callback must not break the worker
            traceback.print_exc()


def running_user(job: Job | None) -> bool:
    return job is not None and job.ticket.priority == USER


def reground_settings(settings) -> RegroundSettings:
    """The re-grounding schedule's settings from the session's."""
    return RegroundSettings(settings.reground_after_sec, settings.reground_max_attempts, settings.reground_backoff,
                            settings.reground_window_sec)
