"""Several cameras, one model: a perception worker per camera, all driven by one thread, the stalest first.

Each camera has its own ``Session`` (frame buffer, stamp gate, tracker state)
and its own ``PerceptionWorker`` (inbox, request queue, tracks, cost model);
the sessions share one grounding engine and one set of SAM2 weights
(``build_sessions``), and one thread makes every model call. Each unit of work
goes to the camera whose work has waited longest (``WorkerLoop.work_since``),
and a camera that was just served waits behind the others, so:

* a camera that sends nothing costs nothing (it has no work) and never slows
  the others;
* each camera is served at its own frame rate: it has work only when its
  frames arrive;
* with every camera busy, the cameras take turns: a tracked object waits at
  most one unit of every other camera between two of its own live steps.

Groundings queue across cameras as they do on one camera: one request at a
time (the engine's memory is held once), in the order they were submitted
(user requests before internal re-groundings). Track ids come from one counter,
so they are unique across cameras.

A query for every camera (``ALL``) is one request per camera; its callers get
one answer per camera (``CameraReplies``), once every camera answered.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sa2va_i_ros.runtime.clock import Clock, MonotonicClock
from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentReply, SegmentRequest, Session, Settings
from sa2va_i_ros.runtime.worker.intake import USER, Ticket
from sa2va_i_ros.runtime.worker.worker import PerceptionWorker

ALL = "*"  # a request's camera: every camera
CameraReplies = dict[str, SegmentReply]  # camera -> its answer, in the cameras' order


def build_sessions(engine, cameras: list[str], buffer: Callable[[], FrameBuffer], settings: Settings | None = None,
                   tracker: Callable[[], Any] | None = None, track_ids: Iterator[int] | None = None,
                   **session_kw) -> dict[str, Session]:
    """One session per camera on one engine: its own buffer (``buffer()``) and tracker state, the model and
    SAM2 weights shared, the track ids from one counter. ``tracker()`` (tests, the simulator) builds a
    camera's tracker; by default every camera's streaming tracker runs the same SAM2 module (the first
    session's, so a tracker other than the checkpoint's own is loaded once)."""
    if not cameras or len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras must be distinct names, at least one: {cameras}")
    ids = track_ids if track_ids is not None else itertools.count(1)
    sessions: dict[str, Session] = {}
    for camera in cameras:
        first = next(iter(sessions.values()), None)
        kw = dict(session_kw)
        if tracker is not None:
            kw["tracker"] = tracker()
        elif first is not None:
            kw["tracker"] = first.tracker.sibling()
        sessions[camera] = Session(engine, buffer(), settings=settings, track_ids=ids, **kw)
    return sessions


class CameraWorkers:
    """The workers of several cameras and the one thread that runs their steps."""

    def __init__(self, sessions: Mapping[str, Session], emitters: Mapping[str, Any] | None = None,
                 clock: Clock | None = None, threaded: bool = True, name: str = "perception-worker"):
        if not sessions:
            raise ValueError("at least one camera")
        self.clock = clock or MonotonicClock()
        self.lock = threading.Condition()  # every camera's worker's lock
        self.workers: dict[str, PerceptionWorker] = {}
        for camera, session in sessions.items():
            worker = PerceptionWorker(session, (emitters or {}).get(camera), self.clock, threaded=False,
                                      name=f"{name}-{camera}", lock=self.lock)
            worker.may_start_job = functools.partial(self._may_start, worker)
            self.workers[camera] = worker
        self.default = next(iter(self.workers))
        self.closed = False
        self._waiting = False
        self._exited = False
        self._then: Callable[[], None] | None = None
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def __getitem__(self, camera: str) -> PerceptionWorker:
        return self.workers[camera or self.default]

    def cameras_of(self, camera: str) -> list[str]:
        """The cameras a request names: ``""`` the default, ``ALL`` every one; ValueError for an unknown one."""
        if camera == ALL:
            return list(self.workers)
        if not camera:
            return [self.default]
        if camera not in self.workers:
            raise ValueError(f"unknown camera {camera!r} (cameras: {', '.join(self.workers)})")
        return [camera]

    def camera_of_track(self, track_id: int) -> str | None:
        """The camera a track (announced or catching up) belongs to."""
        for camera, worker in self.workers.items():
            if track_id in worker.tracks:
                return camera
        return None

    # -- callers' API (any thread) ------------------------------------------------------------------------
    def submit(self, camera: str, request: SegmentRequest, on_reply: Callable[[CameraReplies], None],
               on_done: Callable[[CameraReplies], None] | None = None,
               progress: Callable[[str, float, str], None] | None = None,
               priority: int = USER) -> dict[str, Ticket]:
        """Queue ``request`` on ``camera`` (``""``: the default, ``ALL``: each camera). ``on_reply`` and
        ``on_done`` are called once, with every named camera's answer; an unknown camera is answered at once."""
        try:
            cameras = self.cameras_of(camera)
        except ValueError as exc:
            failed = {camera: SegmentReply(False, str(exc))}
            on_reply(failed)
            if on_done is not None:
                on_done(failed)
            return {}
        replies, dones = _Gather(cameras, on_reply), _Gather(cameras, on_done)
        tickets = {}
        for name in cameras:
            tickets[name] = self.workers[name].submit(
                request, functools.partial(replies.add, name),
                functools.partial(dones.add, name) if on_done is not None else None,
                _tagged(progress, name, len(cameras)), priority)
        return tickets

    def cancel(self, tickets: Mapping[str, Ticket]) -> None:
        for camera, ticket in tickets.items():
            self.workers[camera].cancel(ticket)

    def stop(self, track_id: int = 0, camera: str = "") -> list[int]:
        """Stop one track (on whichever camera holds it), or every track of ``camera`` (``ALL``: of all)."""
        if track_id:  # a track no camera holds: the default camera's worker says so (ValueError)
            return self.workers[self.camera_of_track(track_id) or self.default].stop(track_id)
        return [i for name in self.cameras_of(camera) for i in self.workers[name].stop(0)]

    def update(self, **changes) -> None:
        for worker in self.workers.values():
            worker.update(**changes)

    @property
    def idle(self) -> bool:
        with self.lock:
            return (self._waiting or self._thread is None) and not self.closed \
                and not any(w._has_work() for w in self.workers.values())

    def close(self, reason: str, timeout: float = 30.0, then: Callable[[], None] | None = None) -> bool:
        """As ``PerceptionWorker.close``, for every camera: requests answered, tracks STOPPED, ``then`` once
        no step runs (now, or as the step that outlived ``timeout`` ends). True when the thread ended."""
        with self.lock:
            self.closed = True
            for worker in self.workers.values():
                worker.closed = True
            self.lock.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self.lock:
            ended = thread is None or self._exited
            if not ended:
                self._then = then
        for worker in self.workers.values():
            worker.close(reason, timeout=0.0)
        if ended and then is not None:
            then()
        return ended

    # -- the worker thread --------------------------------------------------------------------------------
    def run_once(self) -> bool:
        """One unit of work of the camera that waited longest; False when no camera had work."""
        with self.lock:
            if self.closed:
                return False
            camera = self._pick()
        if camera is None:
            return False
        worker = self.workers[camera]
        ran = worker.step()
        with self.lock:
            worker.work_since = self.clock.now() if worker._has_work() else None  # behind the others now
        return ran

    def run_until_idle(self, max_steps: int = 1_000_000) -> int:
        for n in range(max_steps):
            if not self.run_once():
                return n
        raise RuntimeError(f"still busy after {max_steps} steps")

    def _pick(self) -> str | None:
        """(Under ``lock``.) The camera with work whose work waits since longest."""
        ready = []
        for k, (camera, worker) in enumerate(self.workers.items()):
            if worker._has_work():
                if worker.work_since is None:  # work that became possible meanwhile (another camera's
                    worker.mark_work()          # grounding ended): it waits in line from now
                ready.append((worker.work_since, k, camera))
        return min(ready)[2] if ready else None

    def _may_start(self, worker: PerceptionWorker) -> bool:
        """Whether ``worker`` may start its next queued request: no camera runs one, and its next request was
        submitted before every other camera's (user requests first)."""
        with self.lock:
            if any(w.job is not None for w in self.workers.values() if w is not worker):
                return False
            heads = [(w.intake.queue[0].priority, w.intake.queue[0].submitted, k)
                     for k, w in enumerate(self.workers.values()) if w.intake]
            mine = next(k for k, w in enumerate(self.workers.values()) if w is worker)
            return bool(heads) and min(heads)[2] == mine

    def _all_closed(self) -> bool:
        """(Under ``lock``.) Closed as a whole, or every camera's worker closed on its own."""
        return self.closed or all(w.closed for w in self.workers.values())

    def _run(self) -> None:
        try:
            while True:
                with self.lock:
                    while not self._all_closed() and self._pick() is None:
                        self._waiting = True
                        self.lock.wait(0.5)
                    self._waiting = False
                    if self._all_closed():
                        return
                self.run_once()
        finally:
            with self.lock:
                self._exited = True
                then, self._then = self._then, None
            if then is not None:
                PerceptionWorker.call(then)


class _Gather:
    """Collects one answer per camera and calls ``callback`` once with all of them."""

    def __init__(self, cameras: list[str], callback: Callable[[CameraReplies], None] | None):
        self.cameras, self.callback = cameras, callback
        self.got: CameraReplies = {}
        self._lock = threading.Lock()

    def add(self, camera: str, reply: SegmentReply) -> None:
        with self._lock:
            self.got[camera] = reply
            complete = len(self.got) == len(self.cameras)
        if complete and self.callback is not None:
            self.callback({c: self.got[c] for c in self.cameras})


def _tagged(progress, camera: str, cameras: int):
    """A camera's progress, named by its camera when a request went to several."""
    if progress is None or cameras == 1:
        return progress
    return lambda stage, fraction, text: progress(stage, fraction, f"{camera}: {text}")
