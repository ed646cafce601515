"""A perception session: frame buffer + grounding engine + streaming tracker, ROS-free.

The session holds the state (buffered frames, tracked objects, their queries,
settings) and the units of work the perception worker (``worker.py``) runs one
at a time on its thread: ``push_frame`` (any thread: the buffer is locked),
``live_step``, ``start_grounding``, ``seed``, ``join``, ``stop``. It is not
thread-safe beyond ``push_frame``: only the worker calls the rest.

Headers are opaque: they are carried from ``push_frame`` to every output unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from sa2va_i_ros.errors import FramesError, QueryError, Sa2VAError
from sa2va_i_ros.grounding.engine import GroundingOptions
from sa2va_i_ros.model.generation import drain
from sa2va_i_ros.model.sampling import SAMPLING_MODES
from sa2va_i_ros.runtime.catch_up import CatchUp, resized
from sa2va_i_ros.runtime.frame_buffer import Frame, FrameBuffer, Push, check_rgb
from sa2va_i_ros.runtime.stamp_gate import StampGate
from sa2va_i_ros.tracking import FrameResult, StreamingTracker, TrackerChoice, TrackerConfig, tracker_sam2

PROMPT_FRAMES = ("all", "first")
GAP_POLICIES = ("catch_up", "skip")
MAX_WINDOW_SEC = 1e6  # a longer window_sec is refused (the buffer holds at most an hour anyway)


class Busy(Sa2VAError):
    """The worker runs a request and the waiting queue is full."""


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
    max_catch_up_sec: float = 1.0
    prefill_chunk_tokens: int = 0
    vision_frames_per_step: int = 0
    presence_threshold: float = 0.5
    lost_after_frames: int = 10
    found_after_frames: int = 1
    reground_after_sec: float = 0.0  # automatic re-grounding of lost tracks (regrounding.py); 0: off
    reground_max_attempts: int = 3
    reground_backoff: float = 2.0
    reground_window_sec: float = 1.0
    sasasa2va_mode: str = "uniform"  # SaSaSa2VA checkpoints only (docs/SASASA2VA.md, "In the node")


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
    track_id: int = 0  # the first of track_ids (clients that know one track per request)
    answer: str = ""
    window_frames: int = 0
    sampled_indices: list[int] = field(default_factory=list)
    sampled_headers: list[Any] = field(default_factory=list)
    newest: ObjectOutput | None = None  # the first object on the newest window frame (objects[0])
    replaced: list[int] = field(default_factory=list)  # tracks of the same query this one replaced
    timing_ms: dict[str, float] = field(default_factory=dict)
    track_ids: list[int] = field(default_factory=list)  # one track per [SEG] of the answer, in answer order
    objects: list[ObjectOutput] = field(default_factory=list)  # every object on the newest window frame


@dataclass
class FrameIn:
    """What ``push_frame`` did with a frame."""

    push: Push
    frame: Frame | None  # the buffered frame (None when rejected or held)
    clock_reset: bool = False
    pushed: list[Frame] = field(default_factory=list)  # frames that entered the buffer (held ones on a change)


@dataclass
class Grounding:
    """A request between its window snapshot and its seeded tracks."""

    request: SegmentRequest
    policy: str
    window: tuple[Frame, ...]
    steps: Iterator  # engine.ground_steps(...)
    result: Any = None


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(img) > 127


class Session:
    def __init__(self, engine, buffer: FrameBuffer, tracker_config: TrackerConfig | None = None,
                 settings: Settings | None = None, tracker: StreamingTracker | None = None,
                 track_ids: Iterator[int] | None = None, tracker_model: TrackerChoice | None = None):
        """``tracker``: a tracker (or a stand-in) instead of one on the engine's SAM2;
        ``track_ids``: where new ids come from (the node keeps one counter for its lifetime);
        ``tracker_model``: the SAM2 to propagate with (default: the checkpoint's own, exactly
        Sa2VA-i; another is loaded here, ``TrackerModelError`` when it cannot be)."""
        self.engine, self.buffer = engine, buffer
        self.settings = settings or Settings()
        base = tracker_config or TrackerConfig(threshold=self.settings.presence_threshold,
                                               lost_after=self.settings.lost_after_frames,
                                               found_after=self.settings.found_after_frames)
        config = replace(base, prompt_policy="all", max_prompt_frames=max(64, base.max_prompt_frames))
        if tracker is None:
            sam2 = tracker_sam2(tracker_model or TrackerChoice(), engine.model.sam2, engine.device)
            tracker = StreamingTracker(sam2, config)
        self.tracker = tracker
        self.queries: dict[int, str] = {}
        self.gate = StampGate()
        self._ids = track_ids if track_ids is not None else itertools.count(1)
        self._tracked_size: tuple[int, int] | None = None  # buffered frame size the tracks use
        self._last_step_ns = -1  # newest frame the tracked objects processed

    # -- settings -------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        self.settings = replace(self.settings, **changes)

    # -- frames (any thread) --------------------------------------------------------------------
    def push_frame(self, header: Any, stamp_ns: int, rgb: np.ndarray) -> FrameIn:
        """Buffer a frame, or hold it while its stamp or size does not fit the stream (``stamp_gate``)."""
        check_rgb(rgb)
        verdict = self.gate.check(header, int(stamp_ns), rgb, self.buffer.latest())
        if verdict.kind == "pass":
            push = self.buffer.push(header, stamp_ns, rgb)
            frame = self.buffer.latest() if push.accepted else None
            return FrameIn(push, frame, pushed=[frame] if frame is not None else [])
        if verdict.kind == "held":
            return FrameIn(Push(False, "held", verdict.reason, 0), None)
        dropped = self.buffer.clear() if verdict.clear else 0
        pushed, results = [], []
        for held in verdict.frames:
            results.append(self.buffer.push(held.header, held.stamp_ns, held.rgb))
            if results[-1].accepted:
                pushed.append(self.buffer.latest())
        first = next((r for r in results if r.code != "ok"), results[-1])  # the size change, if any
        code = "clock_reset" if verdict.clear else first.code
        reason = (f"stamps jumped back: buffer restarted ({dropped} frames dropped)" if verdict.clear
                  else first.reason)
        push = Push(bool(pushed), code, reason, dropped + sum(r.dropped for r in results))
        return FrameIn(push, pushed[-1] if pushed else None, verdict.clear, pushed)

    # -- live tracking --------------------------------------------------------------------------
    @property
    def track_ids(self) -> list[int]:
        return list(self.tracker.object_ids)

    def live_step(self, frame: Frame) -> FrameOutput | None:
        """Track every tracked object on ``frame``; None when nothing is tracked or it is not newer."""
        if not self.tracker.object_ids or frame.stamp_ns <= self._last_step_ns:
            return None
        result = self.tracker.step(resized(frame.rgb, self._tracked_size or frame.rgb.shape[:2]), frame.header)
        self._last_step_ns = frame.stamp_ns
        return self.output(result, frame.size)

    def skip_frame(self, frame: Frame) -> None:
        """The live step on ``frame`` failed: tracking goes on from the next frame, not this one again."""
        self._last_step_ns = max(self._last_step_ns, frame.stamp_ns)

    def output(self, result: FrameResult, camera_size: tuple[int, int]) -> FrameOutput:
        objects = [ObjectOutput(i, self.queries.get(i, ""), result.stamp, _resize_mask(r.mask, camera_size),
                                float(r.score), bool(r.visible)) for i, r in result.objects.items()]
        events = [(e.obj_id, e.kind, float(e.score)) for e in result.events]
        return FrameOutput(result.stamp, objects, events)

    def clock_reset(self) -> None:
        """The camera's stamps started over: live tracking goes on from the new stamps."""
        self._last_step_ns = -1

    def set_presence(self, also=()) -> None:
        s = self.settings
        self.tracker.set_presence(s.presence_threshold, s.lost_after_frames, s.found_after_frames, also=also)

    # -- requests -------------------------------------------------------------------------------
    def check_request(self, req: SegmentRequest, pending: int = 0,
                      tracks: dict[int, str] | None = None) -> tuple[GroundingOptions, str]:
        """Grounding options and prompt policy for a request; RequestError/QueryError when invalid.

        ``pending``: tracks promised to requests that run or wait; ``tracks``: the
        announced tracks and their queries (default: this session's, worker thread only).
        """
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
        self.engine.check_query(query)
        if getattr(self.engine, "kind", "sa2va") == "sasasa2va":
            if req.num_frames or req.sampling:
                raise RequestError("a SaSaSa2VA checkpoint always shows the language model 100 frames sampled "
                                   f"by the sasasa2va_mode parameter ({s.sasasa2va_mode}); leave num_frames 0 "
                                   "and sampling empty")
            req = replace(req, num_frames=min(s.num_frames, s.max_num_frames))  # unused by SaSaSa2VA
        num = req.num_frames or s.num_frames
        if not 1 <= num <= s.max_num_frames:
            raise RequestError(f"num_frames {num} is outside [1, {s.max_num_frames}] (max_num_frames)")
        sampling = req.sampling or s.sampling
        if sampling not in SAMPLING_MODES:
            raise RequestError(f"sampling must be one of {', '.join(SAMPLING_MODES)}; got {sampling!r}")
        policy = req.prompt_frames or s.prompt_frames
        if policy not in PROMPT_FRAMES:
            raise RequestError(f"prompt_frames must be one of {', '.join(PROMPT_FRAMES)}; got {policy!r}")
        if not (math.isfinite(req.window_sec) and 0 <= req.window_sec <= MAX_WINDOW_SEC):
            raise RequestError(f"window_sec must be a finite number in [0, {MAX_WINDOW_SEC:g}]; got {req.window_sec}")
        tracks = dict(self.queries) if tracks is None else tracks
        tracked = len(tracks) + pending  # a request counts one track here; seed() checks its answer's objects
        if req.track and tracked >= s.max_tracks and query not in tracks.values():
            raise RequestError(f"already tracking {tracked} objects (max_tracks, counting requests under way); "
                               "stop one first")
        return GroundingOptions(num_frames=num, sampling=sampling, max_new_tokens=s.max_new_tokens,
                                prefill_chunk=s.prefill_chunk_tokens,
                                vision_frames_per_step=s.vision_frames_per_step,
                                sasasa2va_mode=s.sasasa2va_mode), policy

    def start_grounding(self, req: SegmentRequest, progress: Callable[[str, float, str], None] | None = None,
                        cancelled: Callable[[], bool] | None = None) -> Grounding:
        """Snapshot the window and create the grounding's steps; raises for bad requests."""
        options, policy = self.check_request(req, tracks={i: q for i, q in self.queries.items()
                                                           if i in self.tracker.object_ids})
        window = self.buffer.window(req.window_sec)
        if not window:
            raise FramesError("no frames buffered yet: is the image topic publishing (and remapped)?")
        steps = self.engine.ground_steps([f.rgb for f in window], req.query, options, progress, cancelled)
        return Grounding(req, policy, window, steps)

    def found(self, g: Grounding) -> bool:
        """Whether a finished grounding's mask is non-empty on at least one frame it would prompt the tracker with
        (what re-grounding calls finding the object again)."""
        grounding = g.result.tracker_grounding([f.rgb for f in g.window], [f.header for f in g.window], g.policy)
        return any(np.asarray(m).any() for m in grounding.masks)

    def seed(self, g: Grounding, deadline: float, max_held: int, obj_id: int | None = None) -> CatchUp:
        """``seed_steps`` all at once."""
        return drain(self.seed_steps(g, deadline, max_held, obj_id))

    def seed_steps(self, g: Grounding, deadline: float, max_held: int,
                   obj_id: int | None = None) -> Generator[int, None, CatchUp]:
        """Seed the objects of a finished grounding, one per [SEG] of the answer (each its own track id, in
        answer order), one model call per ``next`` (a prompted frame's encoder pass, yielding None, or its
        prompt, yielding its window index: the worker interleaves live steps); the returned catch-up brings them
        to the live stream together.

        ``obj_id``: re-seed a tracked object under its own id (re-grounding; it replaces that object at
        ``join``) from the answer's first [SEG]; default: new ids."""
        result, window = g.result, g.window
        if self._tracked_size is not None and window[-1].rgb.shape[:2] != self._tracked_size:
            raise RequestError(f"the window's frames are {window[-1].rgb.shape[:2]}, the tracked objects use "
                               f"{self._tracked_size}; stop them to track at the new size")
        n = result.num_objects
        if g.request.track and obj_id is None:
            kept = [i for i in self.tracker.object_ids if self.queries.get(i) != g.request.query]  # not replaced
            if len(kept) + n > self.settings.max_tracks:
                raise RequestError(f"the answer holds {n} objects ({n} [SEG]) and {len(kept)} other tracks run: "
                                   f"more than max_tracks ({self.settings.max_tracks}); stop some first")
        frames, headers = [f.rgb for f in window], [f.header for f in window]
        # a tracker on another SAM2 than the checkpoint's encodes the frames itself (its features differ)
        sam2 = getattr(self.tracker, "sam2", None)  # stand-in trackers (simulation) have none
        own = {} if sam2 is None else {"tracker_sam2": sam2}
        prepared = []  # a failure here is the worker's fault to contain
        for k in range(n) if obj_id is None else range(min(n, 1)):
            grounding = result.tracker_grounding(frames, headers, g.policy, seg=k, **own)
            prepared.append((yield from self.tracker.seed_steps(
                grounding, obj_id=next(self._ids) if obj_id is None else obj_id)))
        self.set_presence(also=prepared)
        return CatchUp(prepared, window, deadline, max_held)

    def announce(self, catch_up: CatchUp, query: str) -> list[int]:
        """The new object(s) get their query (the request was answered); returns the tracks of the same
        query they replace, which stop now (one track per query)."""
        replaced = [i for i, q in self.queries.items() if q == query and i in self.tracker.object_ids]
        for i in replaced:
            self.stop(i)
        for p in catch_up.prepared:
            self.queries[p.obj_id] = query
        return replaced

    def join(self, catch_up: CatchUp) -> None:
        """Add the caught-up object(s) to the tracked ones (a re-seeded one replaces the object of its id)."""
        for p in catch_up.prepared:
            if p.obj_id in self.tracker.object_ids:
                self.tracker.remove_object(p.obj_id)
            self.tracker.join(p)
        self._tracked_size = tuple(catch_up.size)
        self._last_step_ns = max(self._last_step_ns, catch_up.last_stamp_ns)

    def forget(self, catch_up: CatchUp, only: set[int] | None = None) -> None:
        """Drop the object(s) of an abandoned catch-up (cancelled, stopped, node cleaned up); ``only``: just
        these ids, which leave the catch-up (the request's other objects go on)."""
        for p in catch_up.prepared:
            if only is None or p.obj_id in only:
                self.queries.pop(p.obj_id, None)
        if only is not None:
            catch_up.prepared = [p for p in catch_up.prepared if p.obj_id not in only]

    def stop(self, track_id: int = 0) -> list[int]:
        """Stop one track (or all with 0); returns the stopped ids. ValueError for an unknown id."""
        ids = list(self.tracker.object_ids) if track_id == 0 else [track_id]
        if track_id and track_id not in self.tracker.object_ids:
            raise ValueError(f"no track {track_id}; tracking {sorted(self.tracker.object_ids) or 'nothing'}")
        for i in ids:
            self.tracker.remove_object(i)
            self.queries.pop(i, None)
        if not self.tracker.object_ids:
            self._tracked_size = None
        return ids
