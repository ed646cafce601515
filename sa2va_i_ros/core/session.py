"""A perception session: frame buffer + grounding engine + streaming tracker, ROS-free.

The ROS node only converts messages and calls this class, so everything a user
can do to the node (send frames, ask queries, stop tracks, hit bad input) is
implemented and tested here without ROS:

* ``on_frame`` (camera thread): buffer the frame; when objects are tracked,
  track them on it and return their outputs at the camera's size.
* ``segment`` (request thread): validate the request, ground on a snapshot of the
  buffer while live tracking continues, then seed a track that catches up on
  the frames that arrived meanwhile (``gap_policy``).
* ``stop``: end one track or all.

One grounding runs at a time; up to ``max_queued_requests`` wait, later ones get
``Busy``. A lock serialises every tracker call; grounding itself runs outside it.
Headers are opaque: they are carried from ``on_frame`` to every output unchanged.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from .errors import Cancelled, FramesError, QueryError, Sa2VAError
from .frame_buffer import FrameBuffer, Push
from .grounding import GroundingEngine, GroundingOptions
from .sampling import SAMPLING_MODES
from .tracker import FrameResult, Grounding, StreamingTracker, TrackerConfig

PROMPT_FRAMES = ("all", "first")
GAP_POLICIES = ("catch_up", "skip")
# A stamp this much older than the newest buffered frame is a clock reset (a bag
# played in a loop, a restarted camera), not a late frame: the buffer restarts.
CLOCK_RESET_NS = 1_000_000_000


class Busy(Sa2VAError):
    """Another grounding is running and the waiting queue is full."""


class RequestError(Sa2VAError):
    """The request cannot be served as given (bad option, no frames, too many tracks)."""


@dataclass(frozen=True)
class Settings:
    """Live-tunable behaviour (the node maps its parameters onto these)."""

    num_frames: int = 5
    max_num_frames: int = 32
    sampling: str = "uniform"
    prompt_frames: str = "all"
    max_query_chars: int = 1000
    max_queued_requests: int = 0
    max_tracks: int = 8
    gap_policy: str = "catch_up"
    max_new_tokens: int = 2048


@dataclass(frozen=True)
class SegmentRequest:
    query: str
    num_frames: int = 0  # 0: the default
    sampling: str = ""  # "": the default
    prompt_frames: str = ""  # "": the default
    track: bool = True
    window_sec: float = 0.0  # 0: the whole buffer


@dataclass
class ObjectOutput:
    """One tracked object on one camera frame, mask at the camera's size."""

    track_id: int
    query: str
    header: Any
    mask: np.ndarray
    score: float
    visible: bool


@dataclass
class FrameOutput:
    """Everything a frame produced: the frame's header, objects, presence events."""

    header: Any
    objects: list[ObjectOutput]
    events: list[tuple[int, str, float]]  # (track_id, "lost" | "found", score)


@dataclass
class SegmentReply:
    success: bool
    message: str = ""
    track_id: int = 0
    answer: str = ""
    window_frames: int = 0
    sampled_indices: list[int] = field(default_factory=list)
    sampled_headers: list[Any] = field(default_factory=list)
    newest: ObjectOutput | None = None
    caught_up: list[FrameOutput] = field(default_factory=list)  # outputs on frames newer than the window
    replaced: list[int] = field(default_factory=list)  # tracks of the same query this one replaced
    timing_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class FrameIn:
    """What ``on_frame`` did with a frame."""

    push: Push
    output: FrameOutput | None  # None when nothing is tracked or the frame was rejected
    clock_reset: bool = False
    track_ms: float = 0.0  # time in the tracker (the rest of a frame's cost is the node's overhead)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(img) > 127


class Session:
    def __init__(self, engine: GroundingEngine, buffer: FrameBuffer, tracker_config: TrackerConfig | None = None,
                 settings: Settings | None = None):
        self.engine, self.buffer = engine, buffer
        self.settings = settings or Settings()
        config = replace(tracker_config or TrackerConfig(), prompt_policy="all",
                         max_prompt_frames=max(64, (tracker_config or TrackerConfig()).max_prompt_frames))
        self.tracker = StreamingTracker(engine.model.sam2, config)
        self.queries: dict[int, str] = {}
        self._lock = threading.Lock()  # every tracker call
        self._gate = threading.Condition()  # one grounding at a time
        self._running = False
        self._waiting = 0
        self._next_id = 1
        self._tracked_size: tuple[int, int] | None = None  # frame size the tracks were grounded on

    # -- settings -------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        self.settings = replace(self.settings, **changes)

    @property
    def grounding_running(self) -> bool:
        return self._running

    # -- frames ---------------------------------------------------------------------------------
    def on_frame(self, header: Any, stamp_ns: int, rgb: np.ndarray) -> FrameIn:
        push = self.buffer.push(header, stamp_ns, rgb)
        reset = False
        if not push.accepted and push.code == "out_of_order":
            newest = self.buffer.latest()
            if newest is not None and newest.stamp_ns - stamp_ns > CLOCK_RESET_NS:
                self.buffer.clear()
                push, reset = self.buffer.push(header, stamp_ns, rgb), True
        if not push.accepted:
            return FrameIn(push, None, reset)
        with self._lock:
            if not self.tracker.object_ids:
                return FrameIn(push, None, reset)
            frame = self.buffer.latest()
            t0 = time.perf_counter()
            result = self.tracker.step(self._tracker_frame(frame.rgb), header)
            track_ms = (time.perf_counter() - t0) * 1e3
            return FrameIn(push, self._output(result, frame.size), reset, track_ms)

    def _tracker_frame(self, rgb: np.ndarray) -> np.ndarray:
        """Tracks keep the frame size they were grounded on; a new camera size is resized to it."""
        size = self._tracked_size
        if size is None or rgb.shape[:2] == size:
            return rgb
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size[1], size[0]), Image.BILINEAR))

    def _output(self, result: FrameResult, camera_size: tuple[int, int]) -> FrameOutput:
        objects = [ObjectOutput(i, self.queries.get(i, ""), result.stamp, _resize_mask(r.mask, camera_size),
                                float(r.score), bool(r.visible)) for i, r in result.objects.items()]
        events = [(e.obj_id, e.kind, float(e.score)) for e in result.events]
        return FrameOutput(result.stamp, objects, events)

    # -- requests -------------------------------------------------------------------------------
    def check_request(self, req: SegmentRequest) -> tuple[GroundingOptions, str]:
        """Grounding options and prompt policy for a request; RequestError/QueryError when invalid."""
        s = self.settings
        query = req.query if isinstance(req.query, str) else ""
        if not query.strip():
            raise QueryError("the query is empty")
        if len(query) > s.max_query_chars:
            raise QueryError(f"the query has {len(query)} characters; max_query_chars is {s.max_query_chars}")
        if "\ufffd" in query:
            raise QueryError("the query is not valid UTF-8 (it holds replacement characters)")
        if any(ord(c) < 32 and c not in "\t\n\r" for c in query):
            raise QueryError("the query holds control characters")
        num = req.num_frames or s.num_frames
        if not 1 <= num <= s.max_num_frames:
            raise RequestError(f"num_frames {num} is outside [1, {s.max_num_frames}] (max_num_frames)")
        sampling = req.sampling or s.sampling
        if sampling not in SAMPLING_MODES:
            raise RequestError(f"sampling must be one of {', '.join(SAMPLING_MODES)}; got {sampling!r}")
        policy = req.prompt_frames or s.prompt_frames
        if policy not in PROMPT_FRAMES:
            raise RequestError(f"prompt_frames must be one of {', '.join(PROMPT_FRAMES)}; got {policy!r}")
        if not (math.isfinite(req.window_sec) and req.window_sec >= 0):
            raise RequestError(f"window_sec must be a finite number >= 0; got {req.window_sec}")
        return GroundingOptions(num_frames=num, sampling=sampling, max_new_tokens=s.max_new_tokens), policy

    def segment(self, req: SegmentRequest, progress: Callable[[str, float, str], None] | None = None,
                cancelled: Callable[[], bool] | None = None,
                on_started: Callable[[SegmentReply], None] | None = None) -> SegmentReply:
        """Serve one request; never raises for bad input (the reply says why).

        ``on_started`` is called with the reply (``caught_up`` filled) when a track
        has just joined, before any later live frame is tracked.
        """
        t0 = time.perf_counter()
        report = progress or (lambda stage, fraction, detail: None)
        try:
            options, policy = self.check_request(req)
            if req.track and len(self.tracker.object_ids) >= self.settings.max_tracks \
                    and req.query not in self.queries.values():
                raise RequestError(f"already tracking {len(self.tracker.object_ids)} objects (max_tracks); "
                                   "stop one first")
            self._enter(report, cancelled)
        except (Sa2VAError, Cancelled) as exc:
            return SegmentReply(False, str(exc))
        try:
            reply = self._segment(req, options, policy, report, cancelled, on_started)
        except Cancelled as exc:
            reply = SegmentReply(False, f"cancelled ({exc})")
        except Sa2VAError as exc:
            reply = SegmentReply(False, str(exc))
        finally:
            self._leave()
        reply.timing_ms["queue"] = reply.timing_ms.get("queue", 0.0)
        reply.timing_ms["total"] = (time.perf_counter() - t0) * 1e3
        return reply

    def _enter(self, report, cancelled) -> None:
        with self._gate:
            if self._running:
                if self._waiting >= self.settings.max_queued_requests:
                    raise Busy(f"busy: a grounding request is running and {self._waiting} wait "
                               f"(max_queued_requests={self.settings.max_queued_requests}); try again")
                self._waiting += 1
                report("queued", 0.0, "waiting for the running grounding request")
                try:
                    while self._running:
                        if cancelled is not None and cancelled():
                            raise Cancelled("cancelled while queued")
                        self._gate.wait(0.05)
                finally:
                    self._waiting -= 1
            self._running = True

    def _leave(self) -> None:
        with self._gate:
            self._running = False
            self._gate.notify_all()

    def _segment(self, req, options, policy, report, cancelled, on_started) -> SegmentReply:
        t0 = time.perf_counter()
        window = self.buffer.window(req.window_sec)
        if not window:
            raise FramesError("no frames buffered yet: is the image topic publishing (and remapped)?")
        frames = [f.rgb for f in window]
        result = self.engine.ground(frames, req.query, options, report, cancelled)
        timing = {"queue": 0.0, **result.timings_ms}
        timing.pop("total", None)
        reply = SegmentReply(False, result.reason, answer=result.answer, window_frames=len(window),
                             sampled_indices=list(result.sampled_indices),
                             sampled_headers=[window[i].header for i in result.sampled_indices], timing_ms=timing)
        if not result.has_mask:
            return reply
        if cancelled is not None and cancelled():
            raise Cancelled("cancelled after grounding")
        grounding = result.tracker_grounding(frames, [f.header for f in window], policy)
        sampled = grounding.sampled_indices
        report("catching_up", 0.9, f"propagating through {len(window)} buffered frames")
        t1 = time.perf_counter()

        def joined(added, track_id, replaced):
            self._fill_track(reply, added, window, sampled, req, track_id)
            reply.replaced = replaced
            reply.message = f"replaced track {', '.join(map(str, replaced))}" if replaced else ""
            if on_started is not None:
                on_started(reply)

        added, track_id = self._add(grounding, window, req, joined, cancelled)
        timing["propagate"] = (time.perf_counter() - t1) * 1e3
        if not req.track:
            self._fill_track(reply, added, window, sampled, req, 0)
        report("tracking" if req.track else "done", 1.0, f"track {track_id}" if req.track else "not tracking")
        timing["total"] = (time.perf_counter() - t0) * 1e3
        return reply

    def _fill_track(self, reply: SegmentReply, added, window, sampled, req: SegmentRequest, track_id: int) -> None:
        outputs = [self._output(r, window[-1].size) for r in added.frames]
        in_window = len(window) - min(sampled)  # add_object starts at the first prompted frame
        newest = outputs[in_window - 1].objects[0]
        newest.query = req.query
        reply.success, reply.message = True, ""
        reply.track_id, reply.newest = track_id, newest
        reply.caught_up = outputs[in_window:] if req.track else []

    def _add(self, grounding: Grounding, window, req: SegmentRequest, on_joined, cancelled):
        """Seed the track, catch it up on newer frames, and join it to the live tracker.

        The catch-up through the window (and the frames buffered so far) runs
        without the lock, so live tracking of other objects goes on; only the
        last few frames and the join itself hold it. ``on_joined`` sees the
        outputs on frames newer than the window while the lock is still held,
        so they are published before any live frame that follows them.
        """
        size, newest_ns = window[-1].size, window[-1].stamp_ns
        catch_up = self.settings.gap_policy == "catch_up"

        def newer(ns: int):
            return [f for f in self.buffer.window() if f.stamp_ns > ns and f.size == size]

        with self._lock:
            track_id = self._next_id
            self._next_id += 1
        early = newer(newest_ns) if catch_up else []
        try:
            prepared = self.tracker.prepare_object(grounding, obj_id=track_id,
                                                   later=[(f.rgb, f.header) for f in early], cancelled=cancelled)
        except ValueError as exc:
            raise RequestError(f"cannot start the track: {exc}") from exc
        if cancelled is not None and cancelled():
            raise Cancelled("cancelled before the track joined")
        with self._lock:
            rest = newer(early[-1].stamp_ns if early else newest_ns)
            try:
                added = self.tracker.join(prepared, later=[(f.rgb, f.header) for f in rest],
                                          gap_policy=self.settings.gap_policy)
            except ValueError as exc:
                raise RequestError(f"cannot start the track: {exc}") from exc
            if req.track:
                # a query asked again replaces its track: one track per query
                replaced = [i for i, q in self.queries.items() if q == req.query]
                for i in replaced:
                    self.tracker.remove_object(i)
                    del self.queries[i]
                self.queries[track_id] = req.query
                self._tracked_size = window[-1].rgb.shape[:2]
                if on_joined is not None:
                    on_joined(added, track_id, replaced)
            else:
                self.tracker.remove_object(track_id)
        return added, track_id

    # -- tracks ---------------------------------------------------------------------------------
    def stop(self, track_id: int = 0) -> list[int]:
        """Stop one track (or all with 0); returns the stopped ids. ValueError for an unknown id."""
        with self._lock:
            ids = list(self.tracker.object_ids) if track_id == 0 else [track_id]
            if track_id and track_id not in self.tracker.object_ids:
                raise ValueError(f"no track {track_id}; tracking {sorted(self.tracker.object_ids) or 'nothing'}")
            for i in ids:
                self.tracker.remove_object(i)
                self.queries.pop(i, None)
            if not self.tracker.object_ids:
                self._tracked_size = None
            return ids

    @property
    def track_ids(self) -> list[int]:
        return list(self.tracker.object_ids)
