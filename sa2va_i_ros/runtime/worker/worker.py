"""``PerceptionWorker``: the thread that owns the model and the tracker, and the API its callers use.

Callers (the node's callbacks, tests, the simulator) never wait on a model call:
they hand frames over (``offer_frame``), submit requests (``submit``), cancel
them, stop tracks (``stop``) and change settings (``update``); no lock is held
across a model call. The thread runs ``run_once`` (``loop.py``) whenever there
is work, and ``close`` answers everything still under way.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from sa2va_i_ros.errors import Sa2VAError
from sa2va_i_ros.runtime.clock import Clock
from sa2va_i_ros.runtime.faults import describe
from sa2va_i_ros.runtime.session import FrameIn, SegmentReply, SegmentRequest, Session
from sa2va_i_ros.runtime.worker.intake import USER, Ticket
from sa2va_i_ros.runtime.worker.loop import WorkerLoop
from sa2va_i_ros.runtime.worker.regrounds import reground_settings


class PerceptionWorker(WorkerLoop):
    def __init__(self, session: Session, emitter=None, clock: Clock | None = None, threaded: bool = True,
                 name: str = "perception-worker", lock: threading.Condition | None = None):
        """``threaded``: a thread of its own runs the steps (else the caller runs ``run_once``: tests, the
        simulator, or ``CameraWorkers``, whose thread serves several cameras' workers sharing ``lock``)."""
        super().__init__(session, emitter, clock, lock)
        self._waiting = False  # the worker thread waits for work (set and read under the lock)
        self._then: Callable[[], None] | None = None  # close()'s release, when a step outlived its timeout
        self._exited = False  # the thread left its loop (set under the lock)
        self.errors: deque[Exception] = deque(maxlen=20)  # exceptions that escaped a step (a bug): tests read it
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    # -- any thread ---------------------------------------------------------------------------------------
    def offer_frame(self, header: Any, stamp_ns: int, rgb) -> FrameIn:
        """Buffer a camera frame and hand it to the worker (one producer thread; never waits on the model)."""
        fi = self.session.push_frame(header, stamp_ns, rgb)
        if fi.pushed:
            with self.lock:
                self._inbox += [(f, fi.clock_reset and k == 0) for k, f in enumerate(fi.pushed)]
                for f in fi.pushed:  # the camera's period, from its stamps
                    self.costs.arrived(f.stamp_ns / 1e9)
                self.counts["frames_in"] += len(fi.pushed)
                self.mark_work()
                self.lock.notify_all()
        return fi

    def submit(self, request: SegmentRequest, on_reply: Callable[[SegmentReply], None],
               on_done: Callable[[SegmentReply], None] | None = None,
               progress: Callable[[str, float, str], None] | None = None, priority: int = USER) -> Ticket:
        """Queue a request. Bad input and a full queue are answered at once (``on_reply`` and ``on_done``)."""
        with self.lock:
            ticket = self.intake.ticket(request, on_reply, on_done, progress, priority, self.clock.now())
            self.counts["requests"] += 1
            why = None
            if self.closed:
                why = "the perception worker is shut down"
            else:
                try:
                    pending = self.intake.pending_tracks() + self._running_new_tracks()
                    self.session.check_request(request, pending=pending, tracks=self.registry.all())
                except Sa2VAError as exc:
                    why = str(exc)
            # only user requests make a user wait or busy: an internal re-grounding gives way (regrounds.preempt)
            occupied, waiting = self.intake.users_ahead(self.job.ticket if self.job is not None else None)
            limit = self.session.settings.max_queued_requests
            if why is None and occupied and waiting >= limit:
                self.counts["requests_busy"] += 1
                why = (f"busy: a grounding request is running and {waiting} wait (max_queued_requests={limit}); "
                       "try again")
            if why is None:
                self.records.append(self.intake.add(ticket))
                self.mark_work()
                if occupied and progress is not None:
                    progress("queued", 0.0, f"waiting for {len(self.intake) - 1 + (self.job is not None)} "
                                            "request(s) ahead")
                self.lock.notify_all()
        if why is not None:
            self.finish(ticket, SegmentReply(False, why))
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Cancel a request (action cancel): one still queued is answered "cancelled" now; the one running at
        its next step boundary (a grounding polls it between its steps)."""
        with self.lock:
            ticket.cancelled = True
            queued = self.intake.remove(ticket)
            self.lock.notify_all()
        if queued:
            self.finish(ticket, SegmentReply(False, "cancelled (cancelled while queued)"))

    def stop(self, track_id: int = 0) -> list[int]:
        """Stop one announced track (or all with 0): STOPPED is published now, nothing of it after."""
        ids = self.registry.stop(track_id, self.newest_header)
        with self.lock:
            self.mark_work()
            self.lock.notify_all()
        return ids

    def clear_frames(self) -> None:
        """Forget the stream: buffered frames and the stamp order (the next frames may start over)."""
        with self.lock:
            self.session.buffer.clear()
            self.session.gate.clear()
            self._inbox.append((None, True))
            self.mark_work()
            self.lock.notify_all()

    def update(self, **changes) -> None:
        """New settings; presence settings reach every tracked object before its next frame, re-grounding
        settings apply to the next wait."""
        with self.lock:
            self.session.update(**changes)
            if {"presence_threshold", "lost_after_frames", "found_after_frames"} & set(changes):
                self._presence_dirty = True
                self.mark_work()
            if any(k.startswith("reground_") for k in changes):
                self.regrounder.plan.configure(reground_settings(self.session.settings))

    def is_visible(self, track_id: int) -> bool:
        """The presence state of a track (a track still catching up counts its own frames)."""
        try:
            return self.session.tracker.is_visible(track_id)
        except (ValueError, KeyError):
            job = self.job
            prepared = job.catch_up.prepared if job is not None and job.catch_up is not None else []
            return next((p.track.presence.visible for p in prepared if p.obj_id == track_id), True)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def queue_length(self) -> int:
        return len(self.intake)

    @property
    def idle(self) -> bool:
        """Nothing left to do with what it was handed: every frame is out, dropped or thinned, no request runs
        or waits. (Threaded: only while the thread waits for work, so never in the middle of a step.)"""
        with self.lock:
            return (self._waiting or self._thread is None) and not self.closed and not self._has_work()

    def close(self, reason: str, timeout: float = 30.0, then: Callable[[], None] | None = None) -> bool:
        """Stop the worker: every waiting or running request is answered with ``reason``, every track gets
        STOPPED. The step under way is asked to stop (a grounding polls it between its steps) and waited for
        (up to ``timeout``), never a whole request. ``then`` (freeing the model) runs once no step runs: now,
        or, when the step outlived ``timeout``, on the worker thread as that step ends. True when the thread
        ended within ``timeout``."""
        with self.lock:
            self.closed = True
            self.lock.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self.lock:
            tickets = ([self.job.ticket] if self.job is not None else []) + self.intake.take_all()
            self.job = None
            ended = thread is None or self._exited
            if not ended:  # a step outlived the timeout: the thread frees the model as it ends
                self._then = then
        for t in tickets:
            self.finish(t, SegmentReply(False, reason))
        self.stop(0)
        if ended and then is not None:
            then()
        return ended

    # -- the worker thread --------------------------------------------------------------------------------
    def step(self) -> bool:
        """``run_once`` on the worker thread: a bug in one step must not end the thread; it is reported."""
        try:
            return self.run_once()
        except Exception as exc:
            self.errors.append(exc)
            traceback.print_exc()
            message = describe("a worker step", exc, self.device)
            self.health.fault("worker", message)
            self.faults_log(message)
            return True

    def _run(self) -> None:
        try:
            while True:
                with self.lock:
                    while not self.closed and not self._has_work():
                        self._waiting = True
                        self.lock.wait(0.5)
                    self._waiting = False
                    if self.closed:
                        return
                self.step()
        finally:
            with self.lock:  # close() timed out under a step: the model is freed now that it ended
                self._exited = True
                then, self._then = self._then, None
            if then is not None:
                self.call(then)

    def _running_new_tracks(self) -> int:
        job = self.job
        return 1 if job is not None and job.ticket.request.track and not job.announced else 0
